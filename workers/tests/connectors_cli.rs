//! `megzo connectors` prints the capability matrix with the reasons, and `megzo sandbox` serves
//! every fake on loopback with demo data that the real clients can read.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use connectors::Marketplace as _;
use connectors::cdon::fake::{DEMO_MERCHANT_ID, DEMO_TOKEN};
use connectors::cdon::{CdonClient, Config as CdonConfig, Credentials as CdonCredentials};

mod support;
use support::stdout;

fn megzo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_megzo"));
    c.env_remove("MEGZO_CONFIG");
    c
}

#[test]
fn connectors_prints_every_system_and_why_not() {
    let out = stdout(&megzo().arg("connectors").output().unwrap());
    for system in [
        "smartbill",
        "lexoffice",
        "winmentor",
        "charisma",
        "cdon",
        "celro",
        "dhl",
        "noop",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(system)),
            "{system} row missing:\n{out}"
        );
    }
    assert!(
        out.contains("cdon invoice_attach: CDON"),
        "the reason is printed:\n{out}"
    );
    let json = stdout(&megzo().args(["connectors", "--json"]).output().unwrap());
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let cdon = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["system"] == "cdon")
        .unwrap();
    let invoice = cdon["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == "invoice_attach")
        .unwrap();
    assert_eq!(invoice[1]["support"], "unsupported", "{invoice}");
}

#[tokio::test]
async fn sandbox_serves_the_fakes_with_demo_data() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("megzo-wm-{}", uuid::Uuid::new_v4().simple()));
    let mut child = megzo()
        .args([
            "sandbox",
            "--cdon",
            &format!("127.0.0.1:{port}"),
            "--celro",
            "127.0.0.1:0",
            "--dhl",
            "127.0.0.1:0",
            "--smartbill",
            "127.0.0.1:0",
            "--lexoffice",
            "127.0.0.1:0",
            "--charisma",
            "127.0.0.1:0",
            "--winmentor-dir",
            dir.to_str().unwrap(),
            "--duration-secs",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("CDON Merchants API"), "{first}");
    assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");

    let config: CdonConfig = serde_json::from_value(serde_json::json!({
        "base_url": format!("http://127.0.0.1:{port}/api/")
    }))
    .unwrap();
    let creds = serde_json::json!({ "merchant_id": DEMO_MERCHANT_ID, "token": DEMO_TOKEN });
    let creds = CdonCredentials::from_map(creds.as_object().unwrap()).unwrap();
    let client = CdonClient::new(&config, creds, None).unwrap();
    let page = client.list_orders(None).await.expect("the sandbox answers");
    assert!(!page.orders.is_empty(), "demo orders are seeded");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dir.join("exports").is_dir(),
        "the WinMentor fake set up its directory"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
