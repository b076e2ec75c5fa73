//! The console's pages driven by a real browser: headless Chromium through chromedriver
//! (WebDriver, with fantoccini), against `megzo serve`'s router on a local port, with a
//! database per test (`sqlx::test`) and a Redis queue in a namespace of its own.
//!
//! - Support signs in, finds a dead job in the dead-jobs list, replays it, follows the replay to
//!   the new job and sees the attempt a real in-process worker ran succeed; the audit log names
//!   the replay and who did it.
//! - A vendor lands on its own tenant, sees only its own jobs, gets a 403 page (naming nothing of
//!   the other tenant) for another tenant's page, dead job and job list, and has no Replay.
//! - A wrong password shows the error and sets no session cookie; signing out ends the session
//!   (the old cookie no longer opens a page).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (run `deploy/browser.sh`): without them
//! these tests fail, they do not skip.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use canonical::{ConnectionId, Erp, Marketplace, TenantId};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use queue_schema::{AttemptError, ErrorClass, JobId, JobKind, JobPayload, Scope, Trigger};
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use workers::console::{self, AppState, auth};
use workers::db::console::{Role, create_user};
use workers::db::{self, DeadJob, RunFilter, RunOutcome, RunRecord};
use workers::flows::{FlowDeps, FlowOptions, flow_handler};
use workers::queue::backend::BackendOptions;
use workers::queue::{Queue, QueueConfig};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page element is waited for.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The browser

/// A chromedriver this test started, in a process group of its own: dropping it (also when the
/// test panics) kills the group, so chromedriver and every Chromium it started die with it.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    async fn start() -> anyhow::Result<Self> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            ensure!(
                Path::new(bin).exists(),
                "{bin} is missing: run deploy/browser.sh (it installs chromium and chromium-driver); \
                 the console's browser tests need them"
            );
        }
        // The free port is found by binding it and letting go, so another process may take it in
        // between: then chromedriver exits at once and another port is tried.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .process_group(0)
                .spawn()
                .with_context(|| format!("cannot start {CHROMEDRIVER} (run deploy/browser.sh)"))?;
            let mut me = Self { child, port };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Ok(me);
                }
                if let Some(status) = me.child.try_wait()? {
                    eprintln!("chromedriver on port {port} exited at once ({status}); retrying");
                    break;
                }
                if Instant::now() > deadline {
                    bail!("chromedriver did not answer on port {port} within 15 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        bail!("chromedriver would not start (three tries)")
    }

    /// A new headless Chromium session.
    async fn browser(&self) -> anyhow::Result<Client> {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,1000",
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("cannot open a Chromium session through chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browsers it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn css(s: &str) -> Locator<'_> {
    Locator::Css(s)
}

/// Waits for an element of the page.
async fn wait_for(c: &Client, selector: &str) -> anyhow::Result<fantoccini::elements::Element> {
    match c
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(50))
        .for_element(css(selector))
        .await
    {
        Ok(e) => Ok(e),
        Err(e) => {
            let at = location(c).await.unwrap_or_default();
            Err(anyhow::Error::new(e).context(format!("no {selector} within {WAIT:?} on {at}")))
        }
    }
}

async fn text(c: &Client, selector: &str) -> anyhow::Result<String> {
    Ok(wait_for(c, selector).await?.text().await?)
}

async fn texts(c: &Client, selector: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in c.find_all(css(selector)).await? {
        out.push(e.text().await?);
    }
    Ok(out)
}

async fn present(c: &Client, selector: &str) -> anyhow::Result<bool> {
    Ok(!c.find_all(css(selector)).await?.is_empty())
}

/// The path and query of the page shown.
async fn location(c: &Client) -> anyhow::Result<String> {
    let u = c.current_url().await?;
    Ok(match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    })
}

/// Waits until the page shown is `want` (path, and query if given).
async fn wait_location(c: &Client, want: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let at = location(c).await?;
        if at == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the browser is on {at}, not {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The session cookie the browser holds, if any: (value, HttpOnly, Secure, SameSite).
async fn session_cookie(c: &Client) -> anyhow::Result<Option<(String, bool, bool, String)>> {
    Ok(c.get_all_cookies()
        .await?
        .iter()
        .find(|k| k.name() == auth::SESSION_COOKIE)
        .map(|k| {
            (
                k.value().to_owned(),
                k.http_only() == Some(true),
                k.secure() == Some(true),
                format!("{:?}", k.same_site()),
            )
        }))
}

/// Fills the sign-in form and submits it.
async fn sign_in(c: &Client, base: &str, user: &str, password: &str) -> anyhow::Result<()> {
    c.goto(&format!("{base}/ui/login")).await?;
    wait_for(c, "#username").await?.send_keys(user).await?;
    wait_for(c, "#password").await?.send_keys(password).await?;
    wait_for(c, "#sign-in").await?.click().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The product under test

async fn queue(label: &str) -> Queue {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let cfg = QueueConfig {
        namespace: format!("t-{label}-{}", uuid::Uuid::new_v4().simple()),
        ..QueueConfig::default()
    };
    Queue::connect(&url, cfg)
        .await
        .expect("Redis must be running")
}

/// `megzo serve` on a free local port, reached as `http://localhost:<port>`.
struct Console {
    base: String,
    port: u16,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Console {
    async fn start(pool: &PgPool, queue: &Queue) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = AppState::new(pool.clone(), queue.clone(), None);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(console::serve(listener, state, cancel.clone()));
        Ok(Self {
            base: format!("http://localhost:{port}"),
            port,
            cancel,
            task,
        })
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A worker process in this one: the sidecars (the run recorder writes each attempt to
/// Postgres) and one worker running the product's flows on the queue.
struct Fleet {
    sidecars: workers::process::Sidecars,
    cancel: CancellationToken,
    run: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Fleet {
    async fn start(pool: &PgPool, queue: &Queue) -> anyhow::Result<Self> {
        let sidecars = workers::process::Sidecars::start(queue, pool, "127.0.0.1:0").await?;
        let deps = FlowDeps {
            pool: pool.clone(),
            queue: queue.clone(),
            // The no-op connection needs no credentials.
            vault: None,
            limits: Default::default(),
            mapping: Default::default(),
            options: FlowOptions::default(),
        };
        let mut opts = BackendOptions::new("console-browser-worker");
        opts.concurrency = 4;
        opts.poll_interval = Duration::from_millis(20);
        opts.reap_interval = Duration::from_millis(500);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let w = workers::runtime::start_worker(
            queue.clone(),
            opts,
            flow_handler(deps),
            Some(sidecars.reports.clone()),
            async move { c.cancelled().await },
            Duration::from_secs(5),
        );
        Ok(Self {
            sidecars,
            cancel,
            run: tokio::spawn(w.run),
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.run)
            .await
            .context("the worker did not stop within 15 s")???;
        self.sidecars.stop().await;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds

async fn noop_tenant(pool: &PgPool, slug: &str, name: &str) -> (db::Tenant, ConnectionId) {
    let t = db::add_tenant(pool, slug, name).await.expect("tenant");
    let c = db::add_connection(pool, t.id, Erp::Noop, Marketplace::Noop, None, json!({}))
        .await
        .expect("connection");
    (t, c.id)
}

/// A catalog push of `tenant` that died after five attempts, in Postgres as the dead-job sync
/// would have put it.
async fn dead_job(pool: &PgPool, tenant: TenantId, conn: ConnectionId) -> JobId {
    let id = JobId::new();
    let now = chrono::Utc::now();
    let payload = serde_json::to_value(JobPayload::v1(tenant, conn, Scope::All, Trigger::Manual))
        .expect("payload");
    let job = DeadJob {
        job_id: id,
        kind: JobKind::CatalogPush,
        tenant_id: tenant,
        connection_id: conn,
        payload,
        attempts: 5,
        max_attempts: 5,
        errors: vec![AttemptError {
            attempt: 5,
            at_ms: now.timestamp_millis() as u64,
            worker: "w-gone".into(),
            class: ErrorClass::Retryable,
            chain: vec![
                "catalog push failed".into(),
                "marketplace answered 503".into(),
            ],
            retry_after_ms: None,
        }],
        enqueued_at: now - chrono::Duration::minutes(30),
        died_at: now - chrono::Duration::minutes(1),
        replayed_at: None,
        replayed_as: None,
    };
    db::insert_dead(pool, &[job]).await.expect("dead job");
    id
}

/// One succeeded attempt of a catalog push of `tenant`, in the run history.
async fn succeeded_run(pool: &PgPool, tenant: TenantId, conn: ConnectionId) -> JobId {
    let id = JobId::new();
    let now = chrono::Utc::now();
    let payload = serde_json::to_value(JobPayload::v1(tenant, conn, Scope::All, Trigger::Manual))
        .expect("payload");
    let run = RunRecord {
        job_id: id,
        attempt: 1,
        kind: JobKind::CatalogPush,
        tenant_id: tenant,
        connection_id: conn,
        trigger: "manual".into(),
        payload,
        outcome: RunOutcome::Succeeded,
        error: None,
        started_at: now - chrono::Duration::seconds(5),
        finished_at: now - chrono::Duration::seconds(4),
        worker: "w-earlier".into(),
        mapping_version: None,
    };
    db::insert_runs(pool, &[run]).await.expect("run");
    id
}

async fn user(pool: &PgPool, name: &str, role: Role, tenant: Option<TenantId>, password: &str) {
    let hash = auth::hash_secret(password).expect("hash");
    create_user(pool, name, role, tenant, Some(&hash))
        .await
        .expect("user");
}

// ---------------------------------------------------------------------------------------------
// Tests

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn support_replays_a_dead_job_and_sees_it_succeed(pool: PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    let driver = ChromeDriver::start().await?;
    let (tenant, conn) = noop_tenant(&pool, "acme-noop", "Acme Noop Ltd").await;
    let dead = dead_job(&pool, tenant.id, conn).await;
    user(&pool, "sam-support", Role::Support, None, "support-pass-1").await;

    let q = queue("console-browser").await;
    let fleet = Fleet::start(&pool, &q).await?;
    let console = Console::start(&pool, &q).await?;
    let base = console.base.clone();
    let c = driver.browser().await?;

    // Sign in: support lands on the fleet page, with a session cookie the browser keeps.
    sign_in(&c, &base, "sam-support", "support-pass-1").await?;
    let who = text(&c, "#whoami").await?;
    assert_eq!(who, "sam-support (support)");
    wait_location(&c, "/ui/").await?;
    let (_, http_only, secure, same_site) = session_cookie(&c)
        .await?
        .context("no session cookie after signing in")?;
    assert!(
        http_only && secure,
        "the session cookie is HttpOnly and Secure"
    );
    assert!(same_site.contains("Strict"), "SameSite: {same_site}");

    // The dead jobs list, through the header's link: the one dead job, with its last error.
    wait_for(&c, "header a[href='/ui/jobs?state=dead']")
        .await?
        .click()
        .await?;
    wait_location(&c, "/ui/jobs?state=dead").await?;
    wait_for(&c, "#jobs").await?;
    let rows = texts(&c, "#jobs tr.job").await?;
    assert_eq!(rows.len(), 1, "one dead job: {rows:?}");
    assert!(rows[0].contains(&dead.to_string()), "{}", rows[0]);
    assert!(rows[0].contains("catalog_push"), "{}", rows[0]);
    assert!(rows[0].contains("marketplace answered 503"), "{}", rows[0]);

    // Its page, then Replay.
    wait_for(&c, &format!("#jobs tr.job a[href='/ui/jobs/{dead}']"))
        .await?
        .click()
        .await?;
    wait_location(&c, &format!("/ui/jobs/{dead}")).await?;
    let state = text(&c, "#dead-state").await?;
    assert!(state.contains("after 5 attempts"), "{state}");
    wait_for(&c, "#replay-button").await?.click().await?;

    let flash = text(&c, "#flash").await?;
    let new_id = flash
        .strip_prefix("Replayed as ")
        .with_context(|| format!("the flash says {flash:?}"))?
        .trim()
        .to_owned();
    let new_job: JobId = new_id.parse().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_ne!(new_job, dead);
    let link = wait_for(&c, "#replayed-as").await?;
    assert_eq!(link.text().await?, new_id);
    assert!(
        !present(&c, "#replay-button").await?,
        "a replayed job offers no second replay"
    );
    link.click().await?;
    wait_location(&c, &format!("/ui/jobs/{new_id}")).await?;

    // The worker runs the replay; its attempt shows in the history (reloading until it does).
    let polled = Instant::now();
    let deadline = polled + Duration::from_secs(20);
    let attempts = loop {
        let rows = texts(&c, "table.runs tr").await?;
        if rows
            .iter()
            .any(|r| r.contains(&new_id) && r.contains("succeeded"))
        {
            break rows;
        }
        if Instant::now() > deadline {
            bail!(
                "the replayed job's attempt did not show as succeeded within 20 s: {rows:?}\n{}",
                c.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        c.refresh().await?;
    };
    eprintln!(
        "replayed job succeeded on the page {:?} after the replay",
        polled.elapsed()
    );
    assert!(
        attempts.iter().any(|r| r.contains("catalog_push")),
        "{attempts:?}"
    );
    // What the page showed is what Postgres holds.
    let runs = db::list_runs(
        &pool,
        &RunFilter {
            job: Some(new_job),
            limit: 10,
            ..Default::default()
        },
    )
    .await?;
    assert!(
        runs.iter().any(|r| r.outcome == RunOutcome::Succeeded),
        "{runs:?}"
    );
    let d = db::get_dead(&pool, dead).await?.context("the dead job")?;
    assert_eq!(d.replayed_as, Some(new_job));

    // The dead list no longer shows it.
    c.goto(&format!("{base}/ui/jobs?state=dead")).await?;
    wait_for(&c, "#no-jobs").await?;

    // The audit log: the replay, by whom, of which job, into which.
    wait_for(&c, "header a[href='/ui/audit']")
        .await?
        .click()
        .await?;
    wait_for(&c, "#audit").await?;
    let entries = texts(&c, "#audit tr").await?;
    let replay = entries
        .iter()
        .find(|r| r.contains("job.replay"))
        .with_context(|| format!("no job.replay in the audit log: {entries:?}"))?;
    assert!(replay.contains("sam-support (support)"), "{replay}");
    assert!(replay.contains(&dead.to_string()), "{replay}");
    assert!(replay.contains(&new_id), "{replay}");
    assert!(replay.contains("done"), "{replay}");
    assert!(replay.contains("session"), "{replay}");

    c.close().await?;
    console.stop().await;
    fleet.stop().await?;
    drop(driver);
    eprintln!("support replay test took {:?}", started.elapsed());
    Ok(())
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_vendor_sees_its_tenant_and_cannot_reach_another(pool: PgPool) -> anyhow::Result<()> {
    let started = Instant::now();
    let driver = ChromeDriver::start().await?;
    let (a, a_conn) = noop_tenant(&pool, "alpha-goods", "Alpha Goods SRL").await;
    let (b, b_conn) = noop_tenant(&pool, "bravo-market", "Bravo Market GmbH").await;
    let a_dead = dead_job(&pool, a.id, a_conn).await;
    let b_dead = dead_job(&pool, b.id, b_conn).await;
    let a_run = succeeded_run(&pool, a.id, a_conn).await;
    let b_run = succeeded_run(&pool, b.id, b_conn).await;
    user(
        &pool,
        "alice-vendor",
        Role::Vendor,
        Some(a.id),
        "vendor-pass-1",
    )
    .await;

    let q = queue("console-browser").await;
    let console = Console::start(&pool, &q).await?;
    let base = console.base.clone();
    let c = driver.browser().await?;

    // Nothing of B may show anywhere the vendor goes.
    let b_marks = [
        b.name.clone(),
        b.slug.clone(),
        b.id.to_string(),
        b_conn.to_string(),
        b_dead.to_string(),
        b_run.to_string(),
    ];
    let nothing_of_b = |page: &str, source: &str| {
        for m in &b_marks {
            assert!(
                !source.contains(m.as_str()),
                "{page} shows {m:?} of tenant B"
            );
        }
    };

    // Signing in lands on the vendor's own tenant page.
    sign_in(&c, &base, "alice-vendor", "vendor-pass-1").await?;
    assert_eq!(text(&c, "#whoami").await?, "alice-vendor (vendor)");
    wait_location(&c, &format!("/ui/tenants/{}", a.id)).await?;
    let name = text(&c, "#tenant-name").await?;
    assert!(name.contains("Alpha Goods SRL"), "{name}");
    assert!(
        !present(&c, "header a[href='/ui/']").await?,
        "a vendor has no fleet link"
    );
    nothing_of_b("the vendor's tenant page", &c.source().await?);

    // The fleet page sends a vendor to its tenant.
    c.goto(&format!("{base}/ui/")).await?;
    wait_location(&c, &format!("/ui/tenants/{}", a.id)).await?;

    // Another tenant's page (by id and by slug), dead job, job lists, audit: 403, nothing shown.
    for path in [
        format!("/ui/tenants/{}", b.id),
        format!("/ui/tenants/{}", b.slug),
        format!("/ui/jobs/{b_dead}"),
        format!("/ui/jobs/{b_run}"),
        format!("/ui/jobs?tenant={}", b.slug),
        format!("/ui/jobs?state=dead&tenant={}", b.id),
        format!("/ui/audit?tenant={}", b.slug),
        // A tenant that does not exist looks the same to a vendor as one that is not its own.
        "/ui/tenants/no-such-tenant".to_owned(),
    ] {
        c.goto(&format!("{base}{path}")).await?;
        let err = text(&c, "p.error")
            .await
            .with_context(|| format!("{path} shows no error"))?;
        assert!(err.contains("403"), "{path}: {err}");
        assert!(
            !present(&c, "#tenant-name").await? && !present(&c, "#jobs").await?,
            "{path} shows a tenant or jobs"
        );
        nothing_of_b(&path, &c.source().await?);
    }

    // The job lists show only A's jobs.
    c.goto(&format!("{base}/ui/jobs?state=dead")).await?;
    wait_for(&c, "#jobs").await?;
    let rows = texts(&c, "#jobs tr.job").await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains(&a_dead.to_string()), "{rows:?}");
    assert!(
        !present(&c, "#replay-preview").await?,
        "a vendor cannot replay by filter"
    );
    nothing_of_b("the dead jobs list", &c.source().await?);

    c.goto(&format!("{base}/ui/jobs")).await?;
    wait_for(&c, "#jobs").await?;
    let rows = texts(&c, "#jobs tr.job").await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains(&a_run.to_string()), "{rows:?}");
    nothing_of_b("the job history", &c.source().await?);

    c.goto(&format!("{base}/ui/tenants")).await?;
    let tenants = texts(&c, "#tenants tr").await?;
    assert_eq!(tenants.len(), 2, "header and A only: {tenants:?}");
    nothing_of_b("the tenants list", &c.source().await?);

    // Its own dead job: shown, without a Replay button.
    c.goto(&format!("{base}/ui/jobs/{a_dead}")).await?;
    let state = text(&c, "#dead-state").await?;
    assert!(state.contains("after 5 attempts"), "{state}");
    assert!(
        !present(&c, "#replay").await?,
        "a vendor has no replay form"
    );
    assert!(
        !present(&c, "#replay-button").await?,
        "a vendor has no Replay button"
    );

    // Posting the replay anyway (a hand-made form with the session's CSRF token) is refused.
    c.execute(
        "const f = document.createElement('form');
         f.method = 'post';
         f.action = arguments[0];
         const t = document.createElement('input');
         t.type = 'hidden'; t.name = 'csrf';
         t.value = document.querySelector('header input[name=csrf]').value;
         f.appendChild(t);
         document.body.appendChild(f);
         f.submit();",
        vec![json!(format!("/ui/jobs/{a_dead}/replay"))],
    )
    .await?;
    wait_location(&c, &format!("/ui/jobs/{a_dead}/replay")).await?;
    let err = text(&c, "p.error").await?;
    assert!(err.contains("403") && err.contains("support"), "{err}");
    let d = db::get_dead(&pool, a_dead).await?.context("A's dead job")?;
    assert_eq!(d.replayed_as, None, "the vendor's replay did nothing");

    c.close().await?;
    console.stop().await;
    drop(driver);
    eprintln!("vendor test took {:?}", started.elapsed());
    Ok(())
}

/// A GET of the console's `path` with only `cookie`, outside the browser: the status line and
/// headers of the answer.
async fn raw_get(port: u16, path: &str, cookie: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await??;
    let out = String::from_utf8_lossy(&out).into_owned();
    Ok(out.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_wrong_password_is_refused_and_signing_out_ends_the_session(
    pool: PgPool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let driver = ChromeDriver::start().await?;
    user(&pool, "sue-support", Role::Support, None, "right-pass-1").await;
    let q = queue("console-browser").await;
    let console = Console::start(&pool, &q).await?;
    let base = console.base.clone();
    let c = driver.browser().await?;

    // A wrong password, and an unknown user: the same error, no cookie, still on the form.
    for (who, password) in [
        ("sue-support", "wrong-pass"),
        ("nobody-here", "right-pass-1"),
    ] {
        sign_in(&c, &base, who, password).await?;
        let err = text(&c, "#login-error").await?;
        assert!(err.contains("wrong username or password"), "{err}");
        assert_eq!(location(&c).await?, "/ui/login");
        assert!(present(&c, "#sign-in").await? && !present(&c, "#whoami").await?);
        assert!(
            session_cookie(&c).await?.is_none(),
            "a refused sign-in set a session cookie"
        );
    }
    // Pages still send the browser to sign in.
    c.goto(&format!("{base}/ui/jobs")).await?;
    wait_location(&c, "/ui/login").await?;

    // The right password: a session.
    sign_in(&c, &base, "sue-support", "right-pass-1").await?;
    assert_eq!(text(&c, "#whoami").await?, "sue-support (support)");
    let (old, ..) = session_cookie(&c)
        .await?
        .context("no session cookie after signing in")?;
    let before = raw_get(console.port, "/ui/audit", &format!("megzo_session={old}")).await?;
    assert!(
        before.starts_with("HTTP/1.1 200"),
        "the session opens pages: {before}"
    );

    // Sign out with the header's button: back on the sign-in page, the cookie gone.
    wait_for(&c, "header form[action='/ui/logout'] button[type=submit]")
        .await?
        .click()
        .await?;
    wait_location(&c, "/ui/login").await?;
    wait_for(&c, "#sign-in").await?;
    assert!(!present(&c, "#whoami").await?);
    assert!(
        session_cookie(&c).await?.is_none(),
        "the session cookie outlived signing out"
    );

    // The pages seen before now send the browser to sign in.
    for path in ["/ui/", "/ui/jobs?state=dead", "/ui/audit", "/ui/orders"] {
        c.goto(&format!("{base}{path}")).await?;
        wait_location(&c, "/ui/login")
            .await
            .with_context(|| format!("{path} after signing out"))?;
        wait_for(&c, "#sign-in").await?;
    }
    // And the old cookie, replayed by hand, no longer names a session.
    let after = raw_get(console.port, "/ui/audit", &format!("megzo_session={old}")).await?;
    let status = after.lines().next().unwrap_or_default();
    assert!(status.starts_with("HTTP/1.1 303"), "{after}");
    assert!(
        after
            .lines()
            .any(|l| l.eq_ignore_ascii_case("location: /ui/login")),
        "{after}"
    );

    c.close().await?;
    console.stop().await;
    drop(driver);
    eprintln!("sign-in/out test took {:?}", started.elapsed());
    Ok(())
}
