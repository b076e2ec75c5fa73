//! `megzo sandbox`: every fake external system on loopback, seeded with demo data, for the demo,
//! manual exploration and the benchmarks. Each fake speaks its system's contract (see
//! `docs/connectors/`) plus `/_control` (stats, faults, limits, and its own seed/read routes).

use std::sync::Arc;

use connectors::cdon::fake::CdonFake;
use connectors::celro::fake::CelroFake;
use connectors::dhl::fake::DhlFake;
use connectors::fake::{Running, serve};

/// Where each fake listens (`127.0.0.1:0`: any free port).
#[derive(Debug, Clone)]
pub struct Addrs {
    pub cdon: String,
    pub celro: String,
    pub dhl: String,
}

impl Default for Addrs {
    fn default() -> Self {
        Self {
            cdon: "127.0.0.1:7401".into(),
            celro: "127.0.0.1:7402".into(),
            dhl: "127.0.0.1:7403".into(),
        }
    }
}

impl Addrs {
    /// Free ports for all (tests).
    pub fn any() -> Self {
        let any = || "127.0.0.1:0".to_owned();
        Self {
            cdon: any(),
            celro: any(),
            dhl: any(),
        }
    }
}

/// The running fakes. Dropping it stops them.
#[derive(Debug)]
pub struct Sandbox {
    pub cdon: Arc<CdonFake>,
    pub celro: Arc<CelroFake>,
    pub dhl: Arc<DhlFake>,
    pub cdon_server: Running,
    pub celro_server: Running,
    pub dhl_server: Running,
}

impl Sandbox {
    /// Starts every fake; seeds demo data when `seed`.
    pub async fn start(addrs: &Addrs, seed: bool) -> anyhow::Result<Self> {
        let (cdon, celro, dhl) = (CdonFake::new(), CelroFake::new(), DhlFake::new());
        if seed {
            cdon.seed_demo();
            celro.seed_demo();
        }
        let bind = |what: &str, addr: &str, e: std::io::Error| {
            anyhow::anyhow!("the {what} fake cannot listen on {addr}: {e}")
        };
        let cdon_server = serve(cdon.router(), &addrs.cdon)
            .await
            .map_err(|e| bind("CDON", &addrs.cdon, e))?;
        let celro_server = serve(celro.router(), &addrs.celro)
            .await
            .map_err(|e| bind("Cel.ro", &addrs.celro, e))?;
        let dhl_server = serve(dhl.router(), &addrs.dhl)
            .await
            .map_err(|e| bind("DHL", &addrs.dhl, e))?;
        Ok(Self {
            cdon,
            celro,
            dhl,
            cdon_server,
            celro_server,
            dhl_server,
        })
    }

    /// What an operator needs to point a connection at the fakes.
    pub fn describe(&self) -> String {
        use connectors::{cdon, celro, dhl};
        let (c, r, d) = (
            self.cdon_server.base_url(),
            self.celro_server.base_url(),
            self.dhl_server.base_url(),
        );
        format!(
            "CDON Merchants API  {c}/api/      merchant_id={} token={}\n\
             Cel.ro market_api   {r}/market_api/  username={} password={}\n\
             DHL MyDHL API       {d}/mydhlapi   username={} password={} account={}\n\
             control: GET <url>/_control/stats, GET|PUT <url>/_control/faults, POST <url>/_control/limits\n\
             (demo credentials of the fakes only; they open nothing real)",
            cdon::fake::DEMO_MERCHANT_ID,
            cdon::fake::DEMO_TOKEN,
            celro::fake::DEMO_USERNAME,
            celro::fake::DEMO_PASSWORD,
            dhl::fake::DEMO_USERNAME,
            dhl::fake::DEMO_PASSWORD,
            dhl::fake::DEMO_ACCOUNT,
        )
    }
}
