//! `megzo connections set-credentials`, `connections credentials-status`, `credentials new-key`
//! and `credentials rotate` as an operator runs them, against a fresh Postgres database per test:
//! a distinctive secret goes in through a file or stdin and must never come out again, not in
//! stdout, not in JSON debug logs, not in the status listing, not in the stored row.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use sqlx::PgPool;
use workers::db;
use workers::vault::Vault;

mod support;
use support::{megzo_command, noop_tenant, stdout};

const SECRET: &str = "s3cr3t-token-XYZ";

/// `megzo` with JSON debug logs (the noisiest output there is) and no ambient key list.
fn megzo(pool: &PgPool, keys: Option<&str>, args: &[&str]) -> Command {
    let mut c = megzo_command(pool, "json");
    c.args(args)
        .env("RUST_LOG", "debug")
        .env_remove("MEGZO_CREDENTIAL_KEYS");
    if let Some(k) = keys {
        c.env("MEGZO_CREDENTIAL_KEYS", k);
    }
    c
}

/// Everything the process wrote, stdout then stderr.
fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the secret: {text}");
    assert!(
        !text.contains("s3cr3t"),
        "{what} leaks part of the secret: {text}"
    );
}

/// A temporary file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "megzo-creds-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A key made by `megzo credentials new-key`.
fn new_key(pool: &PgPool) -> String {
    let out = stdout(
        &megzo(pool, None, &["credentials", "new-key"])
            .output()
            .unwrap(),
    );
    let line = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "one line on stdout: {out}");
    Vault::parse(&line).expect("new-key prints a usable key");
    line
}

fn key_id(key: &str) -> &str {
    key.split_once(':').unwrap().0
}

/// Every row of the credentials table, as JSON text.
async fn stored_rows(pool: &PgPool) -> String {
    sqlx::query_scalar::<_, Option<String>>(
        "SELECT string_agg(row_to_json(cc)::text, ' ') FROM connection_credentials cc",
    )
    .fetch_one(pool)
    .await
    .unwrap()
    .unwrap_or_default()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn set_credentials_never_shows_the_secret(pool: PgPool) {
    let (_, c) = noop_tenant(&pool, "cred-shop").await;
    let (_, other) = noop_tenant(&pool, "bare-shop").await;
    let key = new_key(&pool);
    let id = key_id(&key);
    let file = TempFile::new(&format!(
        r#"{{"api_token": "{SECRET}", "user": "shop-api"}}"#
    ));
    let conn = c.id.to_string();

    let out = megzo(
        &pool,
        Some(&key),
        &[
            "connections",
            "set-credentials",
            &conn,
            "--from-file",
            file.path(),
        ],
    )
    .output()
    .unwrap();
    let printed = stdout(&out);
    assert_eq!(
        printed.trim(),
        format!("credentials stored (encrypted with key {id})")
    );
    let everything = all_output(&out);
    assert!(
        everything.contains("\"level\":\"DEBUG\"") || everything.contains("\"level\":\"INFO\""),
        "debug JSON logs were on: {everything}"
    );
    assert_no_secret("set-credentials output", &everything);
    assert!(
        !everything.contains(key.split_once(':').unwrap().1),
        "the key leaked"
    );

    // The row holds no plaintext, and the library opens it with the same key.
    let rows = stored_rows(&pool).await;
    assert!(rows.contains(id), "{rows}");
    assert_no_secret("the stored row", &rows);
    assert!(!rows.contains("shop-api"), "{rows}");
    let vault = Vault::parse(&key).unwrap();
    let creds = db::load_credentials(&pool, &vault, c.id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(creds.expose()["api_token"], SECRET);

    let status = megzo(&pool, Some(&key), &["connections", "credentials-status"])
        .output()
        .unwrap();
    let listing = stdout(&status);
    assert_no_secret("credentials-status", &all_output(&status));
    let mine = listing.lines().find(|l| l.contains(&conn)).unwrap();
    assert!(
        mine.contains(&format!("encrypted with key {id} (active)")),
        "{listing}"
    );
    assert!(mine.contains("cred-shop"), "{listing}");
    let bare = listing
        .lines()
        .find(|l| l.contains(&other.id.to_string()))
        .unwrap();
    assert!(bare.contains("no credentials"), "{listing}");
    assert!(
        listing.contains("2 connections: 1 with credentials, 1 without; 0 not on the active key"),
        "{listing}"
    );

    // Without the key list, the status still shows key ids, and says why it cannot say more.
    let listing = stdout(
        &megzo(&pool, None, &["connections", "credentials-status"])
            .output()
            .unwrap(),
    );
    assert!(
        listing.contains(&format!("encrypted with key {id}")),
        "{listing}"
    );
    assert!(
        listing.contains("MEGZO_CREDENTIAL_KEYS not set"),
        "{listing}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn stdin_works_and_bad_input_is_refused_without_echo(pool: PgPool) {
    let (_, c) = noop_tenant(&pool, "stdin-shop").await;
    let key = new_key(&pool);
    let conn = c.id.to_string();
    let set = |keys: Option<&str>, input: &str| -> Output {
        let mut child = megzo(
            &pool,
            keys,
            &["connections", "set-credentials", &conn, "--from-file", "-"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let ok = set(Some(&key), &format!(r#"{{"password": "{SECRET}"}}"#));
    assert!(stdout(&ok).contains("credentials stored"));
    assert_no_secret("set-credentials from stdin", &all_output(&ok));

    for (input, needle) in [
        (format!(r#"{{"password": "{SECRET}""#), "EOF while parsing"),
        (format!(r#""{SECRET}""#), "found a string"),
        (format!(r#"["{SECRET}"]"#), "found an array"),
        (format!(r#"{{"password": {SECRET}}}"#), "line 1 column"),
    ] {
        let bad = set(Some(&key), &input);
        assert!(!bad.status.success(), "{input} was accepted");
        let text = all_output(&bad);
        assert!(text.contains("credentials must be a JSON object"), "{text}");
        assert!(text.contains(needle), "{text}");
        assert!(text.contains("stdin"), "{text}");
        assert_no_secret("a refused input", &text);
    }

    // No key list: refused before anything is read, with how to make a key.
    let none = set(None, &format!(r#"{{"password": "{SECRET}"}}"#));
    assert!(!none.status.success());
    let text = all_output(&none);
    assert!(text.contains("MEGZO_CREDENTIAL_KEYS is not set"), "{text}");
    assert!(text.contains("megzo credentials new-key"), "{text}");
    assert_no_secret("the missing-key error", &text);

    // A malformed key list is named and not echoed.
    let material = key.split_once(':').unwrap().1;
    let broken = format!("{material},other:{material}");
    let bad = set(Some(&broken), "{}");
    assert!(!bad.status.success());
    let text = all_output(&bad);
    assert!(text.contains("entry #1 has no ':'"), "{text}");
    assert!(!text.contains(material), "{text}");

    // Unknown connection.
    let ghost = canonical::ConnectionId::new().to_string();
    let out = megzo(
        &pool,
        Some(&key),
        &["connections", "set-credentials", &ghost, "--from-file", "-"],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(!out.status.success());

    // The stored value is still the good one.
    let rows = stored_rows(&pool).await;
    assert_no_secret("the stored row", &rows);
    let got = db::load_credentials(&pool, &Vault::parse(&key).unwrap(), c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expose()["password"], SECRET);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn rotation_from_the_command_line(pool: PgPool) {
    let (key_a, key_b) = (new_key(&pool), new_key(&pool));
    let (a, b) = (key_id(&key_a), key_id(&key_b));
    let mut conns = Vec::new();
    for i in 0..3 {
        let (_, c) = noop_tenant(&pool, &format!("rot-{i}")).await;
        let file = TempFile::new(&format!(r#"{{"token": "{SECRET}-{i}"}}"#));
        stdout(
            &megzo(
                &pool,
                Some(&key_a),
                &[
                    "connections",
                    "set-credentials",
                    &c.id.to_string(),
                    "--from-file",
                    file.path(),
                ],
            )
            .output()
            .unwrap(),
        );
        conns.push(c.id);
    }
    let both = format!("{key_b},{key_a}");
    let listing = stdout(
        &megzo(&pool, Some(&both), &["connections", "credentials-status"])
            .output()
            .unwrap(),
    );
    assert!(listing.contains("3 not on the active key"), "{listing}");

    let out = megzo(
        &pool,
        Some(&both),
        &["credentials", "rotate", "--batch", "2"],
    )
    .output()
    .unwrap();
    assert_no_secret("rotate", &all_output(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("3 rotated, 0 already current (active key {b})")
    );
    let again = stdout(
        &megzo(&pool, Some(&both), &["credentials", "rotate"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        again.trim(),
        format!("0 rotated, 3 already current (active key {b})")
    );

    // Key A removed: everything still opens.
    let only_b = Vault::parse(&key_b).unwrap();
    for (i, c) in conns.iter().enumerate() {
        let got = db::load_credentials(&pool, &only_b, *c)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.expose()["token"], format!("{SECRET}-{i}"));
    }
    let rows = stored_rows(&pool).await;
    assert!(
        rows.contains(b) && !rows.contains(&format!("\"{a}\"")),
        "{rows}"
    );

    // Rotating to A alone (B missing) fails with the key named.
    let out = megzo(&pool, Some(&key_a), &["credentials", "rotate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = all_output(&out);
    assert!(
        text.contains(&format!(
            "key {b} is not in MEGZO_CREDENTIAL_KEYS; was it removed before rotation finished?"
        )),
        "{text}"
    );
    let zero = megzo(
        &pool,
        Some(&both),
        &["credentials", "rotate", "--batch", "0"],
    )
    .output()
    .unwrap();
    assert!(!zero.status.success(), "a zero batch is refused by clap");
}
