//! The console's commands: `megzo serve` and `megzo users …` (console users and their API
//! tokens). Creating a user or a token from the CLI is audited as `via = cli`.

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use secrecy::zeroize::Zeroizing;
use sqlx::PgPool;

use crate::console::{self, auth};
use crate::db::console::{self as store, NewAudit, Role};

/// `megzo serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub addr: String,
    /// Session cookies without the `Secure` flag. Only for a console served over plain HTTP on
    /// a host other than localhost (browsers accept Secure cookies from http://localhost);
    /// put a TLS proxy in front instead wherever you can.
    #[arg(long)]
    pub insecure_cookies: bool,
}

/// `megzo users`.
#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a console user. The password is read from stdin (one line) with --password-stdin;
    /// without it the user signs in with API tokens only.
    Add {
        username: String,
        #[arg(long)]
        role: Role,
        /// The vendor's tenant (id or slug); vendors only.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List console users.
    List,
    /// Set a user's password (read from stdin).
    Password { username: String },
    /// Disable a user: its tokens and sessions stop working at once.
    Disable { username: String },
    /// Enable a disabled user again.
    Enable { username: String },
    /// Make an API token for a user; printed once (store it now).
    Token {
        username: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
}

fn read_password() -> anyhow::Result<Zeroizing<String>> {
    let mut s = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the password from stdin")?;
    let trimmed = Zeroizing::new(s.trim_end_matches(['\r', '\n']).to_owned());
    if trimmed.chars().count() < 12 {
        bail!("the password must be at least 12 characters long");
    }
    if trimmed.len() > 1024 {
        bail!("the password must be at most 1024 bytes long");
    }
    Ok(trimmed)
}

async fn audit_cli(
    pool: &PgPool,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let actor = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
    store::insert_audit(
        pool,
        &NewAudit {
            actor: &actor,
            role: "cli",
            via: "cli",
            action,
            tenant_id: None,
            target: Some(target),
            outcome: "done",
            detail,
        },
    )
    .await?;
    Ok(())
}

pub async fn users(pool: &PgPool, cmd: UsersCmd) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::Add {
            username,
            role,
            tenant,
            password_stdin,
        } => {
            let tenant = match tenant {
                Some(t) => Some(
                    crate::db::find_tenant(pool, &t)
                        .await?
                        .with_context(|| {
                            format!("no tenant {t:?} (by id or slug; see `megzo tenants list`)")
                        })?
                        .id,
                ),
                None => None,
            };
            let hash = if password_stdin {
                let pw = read_password()?;
                Some(auth::hash_secret(&pw).map_err(|e| anyhow::anyhow!(e.message))?)
            } else {
                None
            };
            let u = store::create_user(pool, &username, role, tenant, hash.as_deref()).await?;
            audit_cli(
                pool,
                "user.add",
                &u.username,
                serde_json::json!({"role": role, "tenant": tenant}),
            )
            .await?;
            println!(
                "added {} ({}){}",
                u.username,
                u.role,
                tenant
                    .map(|t| format!(" of tenant {t}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        UsersCmd::List => {
            for u in store::list_users(pool).await? {
                println!(
                    "{:<24} {:<9} {}{}",
                    u.username,
                    u.role.as_str(),
                    u.tenant_id
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    if u.disabled { "  (disabled)" } else { "" }
                );
            }
            Ok(())
        }
        UsersCmd::Password { username } => {
            let pw = read_password()?;
            let hash = auth::hash_secret(&pw).map_err(|e| anyhow::anyhow!(e.message))?;
            store::set_password_hash(pool, &username, Some(&hash)).await?;
            audit_cli(pool, "user.password", &username, serde_json::json!({})).await?;
            println!("password of {username} set");
            Ok(())
        }
        UsersCmd::Disable { username } => {
            store::set_disabled(pool, &username, true).await?;
            audit_cli(pool, "user.disable", &username, serde_json::json!({})).await?;
            println!("{username} disabled: its tokens and sessions no longer work");
            Ok(())
        }
        UsersCmd::Enable { username } => {
            store::set_disabled(pool, &username, false).await?;
            audit_cli(pool, "user.enable", &username, serde_json::json!({})).await?;
            println!("{username} enabled");
            Ok(())
        }
        UsersCmd::Token {
            username,
            name,
            expires_in_days,
        } => {
            let (user, _) = store::user_for_login(pool, &username)
                .await?
                .with_context(|| {
                    format!("no console user {username:?} (see `megzo users list`)")
                })?;
            let expires =
                expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let (id, token) = auth::create_token(pool, &user, &name, expires)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            audit_cli(
                pool,
                "token.create",
                &id.to_string(),
                serde_json::json!({"user": username, "name": name}),
            )
            .await?;
            println!("{token}");
            eprintln!("token {id} for {username}: shown once, store it now");
            Ok(())
        }
    }
}

/// Runs the console until `shutdown` resolves.
pub async fn serve(
    pool: PgPool,
    queue: crate::queue::Queue,
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let vault = crate::vault::Vault::from_env()
        .ok()
        .map(std::sync::Arc::new);
    if vault.is_none() {
        tracing::warn!("no credential keys: the console cannot cancel orders on marketplaces");
    }
    let state =
        console::AppState::new(pool, queue, vault).with_insecure_cookies(args.insecure_cookies);
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("binding the console to {}", args.addr))?;
    println!(
        "console on http://{} (API /api/v1, OpenAPI /api/openapi.json, pages /ui/)",
        listener.local_addr()?
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        c.cancel();
    });
    console::serve(listener, state, cancel).await?;
    Ok(())
}

/// The console of `megzo demo`: a support user `demo-support` and a vendor `demo-vendor` (of the
/// SmartBill + CDON demo tenant) with a fresh random password each run, printed once. A port
/// already taken is reported and the demo goes on without a console.
pub async fn demo_console(
    pool: &PgPool,
    queue: &crate::queue::Queue,
    vault: std::sync::Arc<crate::vault::Vault>,
    addr: &str,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            println!(
                "console: cannot listen on {addr} ({e}); the demo runs without it (--console ADDR)"
            );
            return Ok(());
        }
    };
    let password = auth::random_secret();
    let hash = auth::hash_secret(&password).map_err(|e| anyhow::anyhow!(e.message))?;
    let vendor_tenant = crate::db::find_tenant(pool, "demo-smartbill")
        .await?
        .map(|t| t.id);
    for (name, role, tenant) in [
        ("demo-support", Role::Support, None),
        ("demo-vendor", Role::Vendor, vendor_tenant),
    ] {
        if role == Role::Vendor && tenant.is_none() {
            continue;
        }
        // The demo's users are made again each run (with this run's password).
        sqlx::query("DELETE FROM console_users WHERE username = $1")
            .bind(name)
            .execute(pool)
            .await?;
        store::create_user(pool, name, role, tenant, Some(&hash)).await?;
    }
    let url = format!("http://localhost:{}", listener.local_addr()?.port());
    println!(
        "console on {url}/ui/ : sign in as demo-support (all tenants) or demo-vendor (demo-smartbill only), password {password}"
    );
    let state = console::AppState::new(pool.clone(), queue.clone(), Some(vault));
    tokio::spawn(async move {
        if let Err(e) = console::serve(listener, state, cancel).await {
            tracing::error!(error = %e, "demo console stopped");
        }
    });
    Ok(())
}
