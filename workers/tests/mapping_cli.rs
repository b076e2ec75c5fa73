//! `megzo mapping` as an operator runs it: validate a file (errors name rule and field), save it
//! as a version, activate, list, show, roll back, read the history.

use std::path::PathBuf;

use canonical::{Erp, Marketplace};
use serde_json::json;
use sqlx::PgPool;
use workers::db;

mod support;
use support::{megzo_command, stderr_of_failure, stdout};

/// A SmartBill → CDON rule set in YAML, valid against the connection's schemas.
const FIXTURE: &str = include_str!("fixtures/smartbill_to_cdon.yaml");

fn fixture_json() -> serde_json::Value {
    workers::mapping::files::parse_yaml(FIXTURE).unwrap()
}

fn file_named(contents: &str, ext: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "megzo-rules-{}.{ext}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&p, contents).unwrap();
    p
}

fn file(contents: &str) -> PathBuf {
    file_named(contents, "json")
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn validate_save_activate_rollback_from_the_command_line(pool: PgPool) {
    let t = db::add_tenant(&pool, "cli-map", "Shop").await.unwrap();
    let c = db::add_connection(
        &pool,
        t.id,
        Erp::SmartBill,
        Marketplace::Cdon,
        None,
        json!({}),
    )
    .await
    .unwrap()
    .id
    .to_string();
    let megzo = |args: &[&str]| megzo_command(&pool, "json").args(args).output().unwrap();
    let good = file_named(FIXTURE, "yaml");
    let good = good.to_str().unwrap();

    let out = stdout(&megzo(&["mapping", "validate", good]));
    assert!(out.contains("valid ("), "{out}");
    let out = stdout(&megzo(&["mapping", "validate", good, "--connection", &c]));
    assert!(
        out.contains("valid for smartbill ⇄ cdon erp_to_marketplace (9 rules)"),
        "{out}"
    );

    // Against the connection, a rule set missing CDON's Swedish description and reading a
    // field SmartBill does not have is refused, naming rule and field.
    let mut wrong = fixture_json();
    wrong["rules"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["id"] != "description");
    wrong["rules"][0]["source"] = json!({"template": "{brand} {name}"});
    let wrong_file = file(&wrong.to_string());
    let err = stderr_of_failure(&megzo(&[
        "mapping",
        "validate",
        wrong_file.to_str().unwrap(),
        "--connection",
        &c,
    ]));
    assert!(
        err.contains(
            "rule `(no rule)`, field `description.sv-SE`: required target is written by no rule"
        ),
        "{err}"
    );
    assert!(
        err.contains("rule `title`, field `brand`: unknown source field"),
        "{err}"
    );

    // A broken rule set: the error names the rule and the field.
    let mut bad = fixture_json();
    let first = bad["rules"][0]["id"].as_str().unwrap().to_owned();
    let twin = bad["rules"][0].clone();
    bad["rules"].as_array_mut().unwrap().push(twin);
    let bad_file = file(&bad.to_string());
    let err = stderr_of_failure(&megzo(&[
        "mapping",
        "save",
        &c,
        "--file",
        bad_file.to_str().unwrap(),
        "--author",
        "ana",
    ]));
    assert!(
        err.contains(&format!("rule `{first}`")) && err.contains("field `"),
        "{err}"
    );

    let out = stdout(&megzo(&[
        "mapping",
        "save",
        &c,
        "--file",
        good,
        "--author",
        "ana",
        "--comment",
        "first",
    ]));
    assert!(out.contains("saved erp_to_marketplace version 1"), "{out}");
    stdout(&megzo(&[
        "mapping", "save", &c, "--file", good, "--author", "ion",
    ]));
    let out = stdout(&megzo(&["mapping", "activate", &c, "1", "--actor", "ana"]));
    assert!(out.contains("v1 is active (was none)"), "{out}");
    let out = stdout(&megzo(&["mapping", "activate", &c, "2", "--actor", "ion"]));
    assert!(out.contains("v2 is active (was v1)"), "{out}");
    let out = stdout(&megzo(&["mapping", "list", &c]));
    assert!(out.lines().next().unwrap().starts_with("* v2"), "{out}");
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&megzo(&["mapping", "show", &c, "--version", "1"]))).unwrap();
    assert_eq!(shown, fixture_json());
    // The same version as YAML reads back to the same rule set.
    let yaml = stdout(&megzo(&[
        "mapping",
        "show",
        &c,
        "--version",
        "1",
        "--format",
        "yaml",
    ]));
    assert_eq!(
        workers::mapping::files::parse_yaml(&yaml).unwrap(),
        fixture_json()
    );
    let out = stdout(&megzo(&[
        "mapping",
        "rollback",
        &c,
        "--actor",
        "ion",
        "--comment",
        "oops",
    ]));
    assert!(out.contains("v1 is active"), "{out}");
    let out = stdout(&megzo(&["mapping", "history", &c]));
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        out.lines().last().unwrap().contains("rollback") && out.contains("oops"),
        "{out}"
    );
    // Preview a draft with another SEK rate against the active version, on a sample file.
    let mut draft = fixture_json();
    for r in draft["rates"].as_array_mut().unwrap() {
        if r["to"] == "SEK" {
            r["rate"] = json!("3.00");
        }
    }
    let draft_file = file(&draft.to_string());
    let sample = file(
        &json!([{
            "sku": "CANA-01", "name": "Cana ceramica 350 ml", "price": 99.90,
            "price_includes_vat": false, "price_net": 99.90, "vat_percent": 19,
            "currency": "RON", "unit": "buc", "stock": 7
        }])
        .to_string(),
    );
    let out = stdout(&megzo(&[
        "mapping",
        "preview",
        &c,
        "--file",
        draft_file.to_str().unwrap(),
        "--sample",
        sample.to_str().unwrap(),
    ]));
    assert!(out.starts_with("1 items, "), "{out}");
    assert!(out.contains("against active v1"), "{out}");
    let changed: Vec<&str> = out.lines().skip(1).collect();
    assert!(
        !changed.is_empty() && changed.iter().all(|l| l.starts_with("CANA-01")),
        "{out}"
    );
    assert!(
        changed.iter().any(|l| l.contains("price.SE")),
        "the SEK price changes: {out}"
    );
    assert!(
        !changed.iter().any(|l| l.contains("price.FI")),
        "EUR prices do not: {out}"
    );

    let err = stderr_of_failure(&megzo(&["mapping", "activate", &c, "9", "--actor", "ana"]));
    assert!(
        err.contains("no erp_to_marketplace mapping version 9"),
        "{err}"
    );
    let _ = std::fs::remove_file(good);
    let _ = std::fs::remove_file(bad_file);
    let _ = std::fs::remove_file(wrong_file);
    let _ = std::fs::remove_file(draft_file);
    let _ = std::fs::remove_file(sample);
}
