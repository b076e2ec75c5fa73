//! `megzo sandbox`: every fake external system on loopback, seeded with demo data, for the demo,
//! manual exploration and the benchmarks. Each HTTP fake speaks its system's contract (see
//! `docs/connectors/`) plus `/_control` (stats, faults, limits, and its own seed/read routes);
//! the WinMentor fake watches an exchange directory.

use std::path::PathBuf;
use std::sync::Arc;

use canonical::Sku;
use connectors::cdon::fake::CdonFake;
use connectors::celro::fake::CelroFake;
use connectors::charisma::fake::CharismaFake;
use connectors::conformance::ErpFake as _;
use connectors::dhl::fake::DhlFake;
use connectors::fake::{Running, serve};
use connectors::lexoffice::fake::LexofficeFake;
use connectors::smartbill::fake::SmartBillFake;
use connectors::winmentor::fake::{FakeOptions, WinMentorFake};
use rust_decimal::Decimal;
use tokio::task::JoinHandle;

/// Where each fake listens (`127.0.0.1:0`: any free port).
#[derive(Debug, Clone)]
pub struct Addrs {
    pub cdon: String,
    pub celro: String,
    pub dhl: String,
    pub smartbill: String,
    pub lexoffice: String,
    pub charisma: String,
    /// The WinMentor exchange directory.
    pub winmentor_dir: PathBuf,
}

impl Default for Addrs {
    fn default() -> Self {
        Self {
            cdon: "127.0.0.1:7401".into(),
            celro: "127.0.0.1:7402".into(),
            dhl: "127.0.0.1:7403".into(),
            smartbill: "127.0.0.1:7404".into(),
            lexoffice: "127.0.0.1:7405".into(),
            charisma: "127.0.0.1:7406".into(),
            winmentor_dir: std::env::temp_dir().join("megzo-sandbox-winmentor"),
        }
    }
}

impl Addrs {
    /// Free ports for all and a fresh WinMentor directory (tests).
    pub fn any() -> Self {
        let any = || "127.0.0.1:0".to_owned();
        let dir = format!("megzo-sandbox-winmentor-{}", uuid::Uuid::new_v4().simple());
        Self {
            cdon: any(),
            celro: any(),
            dhl: any(),
            smartbill: any(),
            lexoffice: any(),
            charisma: any(),
            winmentor_dir: std::env::temp_dir().join(dir),
        }
    }
}

/// The running fakes. Dropping it stops them.
#[derive(Debug)]
pub struct Sandbox {
    pub cdon: Arc<CdonFake>,
    pub celro: Arc<CelroFake>,
    pub dhl: Arc<DhlFake>,
    pub smartbill: Arc<SmartBillFake>,
    pub lexoffice: Arc<LexofficeFake>,
    pub charisma: Arc<CharismaFake>,
    pub winmentor: Arc<WinMentorFake>,
    pub winmentor_dir: PathBuf,
    pub cdon_server: Running,
    pub celro_server: Running,
    pub dhl_server: Running,
    pub smartbill_server: Running,
    pub lexoffice_server: Running,
    pub charisma_server: Running,
    winmentor_task: JoinHandle<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.winmentor_task.abort();
    }
}

impl Sandbox {
    /// Starts every fake; seeds demo data when `seed`.
    pub async fn start(addrs: &Addrs, seed: bool) -> anyhow::Result<Self> {
        let (cdon, celro, dhl) = (CdonFake::new(), CelroFake::new(), DhlFake::new());
        let (smartbill, lexoffice, charisma) = (
            SmartBillFake::new(),
            LexofficeFake::new(),
            CharismaFake::new(),
        );
        std::fs::create_dir_all(&addrs.winmentor_dir).map_err(|e| {
            anyhow::anyhow!(
                "the WinMentor exchange directory {} cannot be created: {e}",
                addrs.winmentor_dir.display()
            )
        })?;
        let (winmentor, winmentor_task) =
            WinMentorFake::start(addrs.winmentor_dir.clone(), FakeOptions::default());
        if seed {
            cdon.seed_demo();
            celro.seed_demo();
            smartbill.seed_demo();
            lexoffice.seed_demo();
            charisma.seed_demo();
            for (sku, name, cents, qty) in [
                ("MGZ-MUG-01", "Cană ceramică 350 ml", 4990, 40),
                ("MGZ-LAMP-02", "Lampă de birou LED", 18900, 12),
            ] {
                let sku = Sku::new(sku).map_err(anyhow::Error::msg)?;
                winmentor.seed_item(&sku, name, Decimal::new(cents, 2), qty, "Depozit");
            }
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
        let smartbill_server = serve(smartbill.router(), &addrs.smartbill)
            .await
            .map_err(|e| bind("SmartBill", &addrs.smartbill, e))?;
        let lexoffice_server = serve(lexoffice.router(), &addrs.lexoffice)
            .await
            .map_err(|e| bind("lexoffice", &addrs.lexoffice, e))?;
        let charisma_server = serve(charisma.router(), &addrs.charisma)
            .await
            .map_err(|e| bind("Charisma", &addrs.charisma, e))?;
        Ok(Self {
            cdon,
            celro,
            dhl,
            smartbill,
            lexoffice,
            charisma,
            winmentor,
            winmentor_dir: addrs.winmentor_dir.clone(),
            cdon_server,
            celro_server,
            dhl_server,
            smartbill_server,
            lexoffice_server,
            charisma_server,
            winmentor_task,
        })
    }

    /// What an operator needs to point a connection at the fakes.
    pub fn describe(&self) -> String {
        use connectors::{cdon, celro, charisma, dhl, lexoffice, smartbill};
        let (c, r, d) = (
            self.cdon_server.base_url(),
            self.celro_server.base_url(),
            self.dhl_server.base_url(),
        );
        let (s, l, h) = (
            self.smartbill_server.base_url(),
            self.lexoffice_server.base_url(),
            self.charisma_server.base_url(),
        );
        format!(
            "CDON Merchants API  {c}/api/      merchant_id={} token={}\n\
             Cel.ro market_api   {r}/market_api/  username={} password={}\n\
             DHL MyDHL API       {d}/mydhlapi   username={} password={} account={}\n\
             SmartBill API       {s}/SBORO/api/   email={} token={} cif={}\n\
             lexoffice API       {l}   api_key={}\n\
             Charisma SOAP       {h}{}   application_id={}\n\
             WinMentor exchange  {}\n\
             control: GET <url>/_control/stats, GET|PUT <url>/_control/faults, POST <url>/_control/limits\n\
             (demo credentials of the fakes only; they open nothing real)",
            cdon::fake::DEMO_MERCHANT_ID,
            cdon::fake::DEMO_TOKEN,
            celro::fake::DEMO_USERNAME,
            celro::fake::DEMO_PASSWORD,
            dhl::fake::DEMO_USERNAME,
            dhl::fake::DEMO_PASSWORD,
            dhl::fake::DEMO_ACCOUNT,
            smartbill::fake::DEMO_EMAIL,
            smartbill::fake::DEMO_TOKEN,
            smartbill::fake::DEMO_CIF,
            lexoffice::fake::DEMO_API_KEY,
            charisma::fake::SERVICE_PATH,
            charisma::fake::DEMO_APPLICATION_ID,
            self.winmentor_dir.display(),
        )
    }
}
