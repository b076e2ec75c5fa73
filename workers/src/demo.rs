//! The five seed pairs of the demo, against the sandbox fakes: SmartBill+CDON, SmartBill+Cel.ro
//! (one merchant, one SmartBill account, two channels sharing its stock), WinMentor+CDON,
//! Charisma+CDON and lexoffice+Cel.ro. Each tenant gets its own marketplace account in the
//! fakes, encrypted credentials, connector settings pointing at the fakes, the default mappings
//! with the Cel.ro category and brand tables filled for its articles, a shipper for DHL, and
//! (for the ERPs without stock) the stock the product holds. The demo's exchange rates are
//! **demo figures**, stored with source `demo`.
//!
//! Used by `megzo demo` and by the full-cycle tests.

use std::sync::Arc;

use anyhow::Context as _;
use canonical::{Contact, Country, Courier, Erp, Marketplace, Sku};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::db::mappings::Direction;
use crate::db::{self, Connection, Tenant};
use crate::sandbox::Sandbox;
use crate::vault::{Credentials, Vault};

/// One seeded connection, with what a test or the demo needs to drive it.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// `smartbill+cdon`, …
    pub label: &'static str,
    pub tenant: Tenant,
    pub conn: Connection,
    /// The marketplace account in its fake (CDON merchant id, Cel.ro username).
    pub account: String,
    /// Articles an order may be placed for: SKU and units a buyer takes.
    pub skus: Vec<Sku>,
    /// The ERP account in its fake: SmartBill's e-mail, lexoffice's API key, Charisma's
    /// application id; WinMentor's exchange directory.
    pub erp_account: String,
}

/// Which copy of the pairs [`seed_with`] makes, and how its connectors talk.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// 0: the demo's own tenants on the fakes' demo accounts (all five pairs). `n > 0`: another
    /// merchant of every pair but WinMentor (the sandbox has one exchange directory), with its
    /// own tenants (`demo-smartbill-n`, …) and its own accounts in every fake, so its API limits
    /// are its own. Seed copy 0 first.
    pub copy: usize,
    /// The connectors' HTTP settings (timeouts, inline retries).
    pub http: Value,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            copy: 0,
            http: http_fast(),
        }
    }
}

/// The seed pairs by label.
pub const PAIRS: [&str; 5] = [
    "smartbill+cdon",
    "winmentor+cdon",
    "charisma+cdon",
    "smartbill+celro",
    "lexoffice+celro",
];

fn sku(s: &str) -> anyhow::Result<Sku> {
    Sku::new(s).map_err(|e| anyhow::anyhow!("demo SKU {s}: {e}"))
}

fn shipper() -> Value {
    json!(Contact {
        name: "Depozit MEGZO".into(),
        company: Some("MEGZO Demo SRL".into()),
        email: Some("depozit@megzo.example".into()),
        phone: Some("+40722000000".into()),
        address_line1: "Str. Fabricii 10".into(),
        address_line2: None,
        city: "Cluj-Napoca".into(),
        postal_code: "400001".into(),
        region: Some("Cluj".into()),
        country: Some(Country::RO),
        tax_id: Some("RO12345678".into()),
    })
}

/// Short timeouts and few inline retries: the fakes are on loopback.
pub fn http_fast() -> Value {
    json!({"timeout_ms": 5000, "connect_timeout_ms": 1000, "inline_retries": 2,
           "max_inline_wait_ms": 3000, "backoff_base_ms": 50})
}

/// Today's demo rates (EUR against RON, SEK, NOK, DKK). Demo figures, not a bank's.
pub async fn seed_rates(pool: &PgPool) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    let rates: Vec<db::rates::FxRate> = [
        ("RON", Decimal::new(49750, 4)),
        ("SEK", Decimal::new(112000, 4)),
        ("NOK", Decimal::new(116500, 4)),
        ("DKK", Decimal::new(74600, 4)),
    ]
    .into_iter()
    .map(|(q, rate)| db::rates::FxRate {
        date: today,
        base: "EUR".into(),
        quote: q.into(),
        rate,
        source: "demo".into(),
    })
    .collect();
    db::rates::upsert_rates(pool, &rates).await?;
    Ok(())
}

async fn tenant(pool: &PgPool, slug: &str, name: &str) -> anyhow::Result<Tenant> {
    Ok(match db::find_tenant(pool, slug).await? {
        Some(t) => t,
        None => db::add_tenant(pool, slug, name).await?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    pool: &PgPool,
    vault: &Vault,
    t: &Tenant,
    erp: Erp,
    market: Marketplace,
    settings: Value,
    creds: Value,
    lookups: &[(&str, &str)],
    order_vat: &str,
) -> anyhow::Result<Connection> {
    let existing = db::list_connections(pool, Some(t.id))
        .await?
        .into_iter()
        .find(|c| c.erp == erp && c.marketplace == market);
    if let Some(c) = existing {
        return Ok(c);
    }
    let conn = db::add_connection(pool, t.id, erp, market, Some(Courier::Dhl), settings).await?;
    let Value::Object(fields) = creds else {
        anyhow::bail!("demo credentials must be an object");
    };
    db::store_credentials(pool, vault, conn.id, &Credentials::new(fields)).await?;
    crate::mapping::install_defaults(pool, &conn, "demo")
        .await
        .map_err(|e| anyhow::anyhow!("demo mappings of {erp}+{market}: {e}"))?;
    // What the merchant adds to the defaults in a real setup: each article's image (CDON
    // requires one) and, for Cel.ro, the category and brand tables.
    let active = db::mappings::active_mapping(pool, conn.id, Direction::ErpToMarketplace)
        .await?
        .context("the default catalog mapping is installed")?;
    let mut rules = active.rules.clone();
    if let Some(list) = rules["rules"].as_array_mut() {
        list.push(json!({"id": "image", "target": "image",
                         "source": {"template": "https://img.megzo.example/{sku}.jpg"}}));
    }
    for (s, category) in lookups {
        rules["tables"]["celro_categories"]["entries"][*s] = json!({ "text": category });
        rules["tables"]["celro_brands"]["entries"][*s] = json!({ "text": "MEGZO" });
    }
    let feed = crate::rates::RatesCache::new(pool.clone(), crate::rates::MappingConfig::default())
        .feed()
        .await?;
    let (dir, version) = crate::mapping::save_validated(
        pool,
        &conn,
        &rules,
        &feed,
        "demo",
        "demo: images, and the Cel.ro categories and brands of the demo articles",
    )
    .await
    .map_err(|e| anyhow::anyhow!("demo mapping of {erp}+{market}: {e}"))?;
    db::mappings::activate_mapping(pool, conn.id, dir, version, "demo", "demo articles").await?;
    // The demo merchants sell below the EU distance-sales threshold: their own country's VAT
    // applies to every order, whatever the buyer's country (above it, OSS: the buyer's rate,
    // which the ERP account must then know).
    let active = db::mappings::active_mapping(pool, conn.id, Direction::MarketplaceToErp)
        .await?
        .context("the default order mapping is installed")?;
    let mut rules = active.rules.clone();
    if let Some(list) = rules["rules"].as_array_mut() {
        for r in list.iter_mut() {
            if r["id"] == "vat_percent" {
                r["source"] = json!({"literal": {"decimal": order_vat}});
            }
            // Charisma keeps RON and EUR only: CDON's SEK and DKK orders are booked in EUR at the
            // order date's rate.
            if erp == Erp::Charisma && r["id"] == "unit_price_gross" {
                r["ops"] = json!([
                    { "op": "convert", "to": "EUR", "from": { "field": "currency" },
                      "date": { "field": "order_date" } },
                    { "op": "round", "mode": "half_up", "step": "0.01" }
                ]);
            }
            if erp == Erp::Charisma && r["id"] == "currency" {
                r["source"] = json!({"literal": {"text": "EUR"}});
            }
        }
    }
    let (dir, version) = crate::mapping::save_validated(
        pool,
        &conn,
        &rules,
        &feed,
        "demo",
        &format!(
            "demo: {order_vat} % VAT (the seller's country, below the distance-sales threshold)"
        ),
    )
    .await
    .map_err(|e| anyhow::anyhow!("demo order mapping of {erp}+{market}: {e}"))?;
    db::mappings::activate_mapping(pool, conn.id, dir, version, "demo", "demo VAT").await?;
    Ok(conn)
}

/// Seeds the five pairs against `sb` (its fakes get the accounts and articles). Idempotent per
/// tenant slug: a second call finds what the first made.
pub async fn seed(pool: &PgPool, vault: &Vault, sb: &Sandbox) -> anyhow::Result<Vec<Seeded>> {
    seed_with(pool, vault, sb, &SeedOptions::default()).await
}

/// Seeds one copy of the pairs (see [`SeedOptions`]).
pub async fn seed_with(
    pool: &PgPool,
    vault: &Vault,
    sb: &Sandbox,
    opts: &SeedOptions,
) -> anyhow::Result<Vec<Seeded>> {
    use connectors::{charisma, dhl, lexoffice, smartbill};
    seed_rates(pool).await?;
    let copy = opts.copy;
    let sfx = if copy == 0 {
        String::new()
    } else {
        format!("-{copy}")
    };
    let http = || opts.http.clone();
    let dhl_settings = json!({
        "base_url": format!("{}/mydhlapi", sb.dhl_server.base_url()),
        "shipper_account": dhl::DEMO_ACCOUNT,
        "http": http(),
    });
    let dhl_creds = json!({"username": dhl::DEMO_USERNAME, "password": dhl::DEMO_PASSWORD});
    let cdon_settings = |markets: &[&str]| {
        json!({"base_url": format!("{}/api/", sb.cdon_server.base_url()), "markets": markets,
               "http": http()})
    };
    let celro_settings = |pickup: u64| {
        json!({"base_url": sb.celro_server.base_url(),
               "pickup_address_id": pickup, "http": http()})
    };
    let flows = json!({"shipper": shipper(), "parcel_weight_kg": "1.2"});
    let mut out = Vec::new();

    // SmartBill: one merchant on CDON and Cel.ro, sharing the SmartBill stock.
    let (sb_email, sb_token) = if copy == 0 {
        (
            smartbill::DEMO_EMAIL.to_owned(),
            smartbill::DEMO_TOKEN.to_owned(),
        )
    } else {
        let email = format!("shop{copy}@megzo.example");
        let token = format!("demo-smartbill-token{sfx}");
        sb.smartbill
            .add_account(&email, &token, smartbill::DEMO_CIF);
        (email, token)
    };
    let sb_items = [
        ("MGZ-MUG-01", "Cana ceramica 350 ml", 4990, 40),
        ("MGZ-LAMP-02", "Lampa de birou LED", 18900, 12),
        ("MGZ-VASE-03", "Vaza sticla", 7450, 5),
    ];
    for (s, name, cents, qty) in sb_items {
        sb.smartbill
            .seed_item_with(&smartbill::fake::SeedItem {
                email: Some(sb_email.clone()),
                sku: s.into(),
                name: name.into(),
                gross: Decimal::new(cents, 2),
                quantity: Decimal::from(qty),
                warehouse: "Depozit".into(),
                unit: None,
            })
            .map_err(anyhow::Error::msg)?;
    }
    let price_list: Vec<Value> = sb_items
        .iter()
        .map(|(s, n, c, _)| json!({"sku": s, "gross": Decimal::new(*c, 2), "vat": 21, "name": n}))
        .collect();
    let slug = format!("demo-smartbill{sfx}");
    let t = tenant(pool, &slug, "Demo SmartBill shop").await?;
    // The SmartBill tenant's settings, with the marketplace's entry (`cdon` or `celro`).
    let sb_settings = |market: &str, settings: Value| {
        let mut all = json!({
            "smartbill": {"base_url": format!("{}/SBORO/api/", sb.smartbill_server.base_url()),
                          "cif": smartbill::DEMO_CIF, "proforma_series": "PRO", "price_list": price_list, "http": http()},
            "dhl": dhl_settings, "flows": flows,
        });
        all[market] = settings;
        all
    };
    let sb_creds = json!({"email": sb_email, "token": sb_token});
    let mp_token = format!("{slug}-token");
    sb.cdon.add_merchant(&slug, &mp_token);
    let conn = connection(
        pool,
        vault,
        &t,
        Erp::SmartBill,
        Marketplace::Cdon,
        sb_settings("cdon", cdon_settings(&["SE", "NO", "DK", "FI"])),
        json!({"smartbill": sb_creds, "dhl": dhl_creds,
               "cdon": {"merchant_id": slug, "token": mp_token}}),
        &[],
        "21",
    )
    .await?;
    let skus = sb_items
        .iter()
        .map(|i| sku(i.0))
        .collect::<anyhow::Result<Vec<Sku>>>()?;
    out.push(Seeded {
        label: "smartbill+cdon",
        tenant: t.clone(),
        conn,
        account: slug.clone(),
        skus: skus.clone(),
        erp_account: sb_email.clone(),
    });
    let mp_pass = format!("{slug}-pass");
    sb.celro.add_account(&slug, &mp_pass, 11);
    let lookups: Vec<(&str, &str)> = sb_items.iter().map(|i| (i.0, "1000")).collect();
    let conn = connection(
        pool,
        vault,
        &t,
        Erp::SmartBill,
        Marketplace::Celro,
        sb_settings("celro", celro_settings(11)),
        json!({"smartbill": sb_creds, "dhl": dhl_creds,
               "celro": {"username": slug, "password": mp_pass}}),
        &lookups,
        "21",
    )
    .await?;
    out.push(Seeded {
        label: "smartbill+celro",
        tenant: t,
        conn,
        account: slug,
        skus,
        erp_account: sb_email,
    });

    if copy == 0 {
        out.push(
            seed_winmentor(
                pool,
                vault,
                sb,
                &dhl_settings,
                &dhl_creds,
                &flows,
                &cdon_settings(&["SE", "DK"]),
            )
            .await?,
        );
    }

    // Charisma: no stock operation, so the product holds the stock.
    let app_id = if copy == 0 {
        sb.charisma.seed_demo();
        charisma::DEMO_APPLICATION_ID.to_owned()
    } else {
        let id = format!("demo-charisma-app{sfx}");
        sb.charisma.add_application_id(&id);
        id
    };
    let slug = format!("demo-charisma{sfx}");
    let t = tenant(pool, &slug, "Demo Charisma shop").await?;
    let mut ch = serde_json::to_value(charisma::Config {
        endpoint: format!(
            "{}{}",
            sb.charisma_server.base_url(),
            charisma::fake::SERVICE_PATH
        ),
        partner: charisma::PartnerStrategy::Generic {
            partner_id: charisma::fake::GENERIC_PARTNER_ID.into(),
            billing_address_id: Some(charisma::fake::GENERIC_ADDRESS_ID.into()),
        },
        ..charisma::Config::default()
    })?;
    ch["vat_ids"] = json!({"19": "28", "21": "32"});
    ch["currency_ids"] = json!({"RON": "25", "EUR": "26"});
    let mp_token = format!("{slug}-token");
    sb.cdon.add_merchant(&slug, &mp_token);
    let conn = connection(
        pool,
        vault,
        &t,
        Erp::Charisma,
        Marketplace::Cdon,
        json!({"charisma": ch, "cdon": cdon_settings(&["SE", "DK"]), "dhl": dhl_settings, "flows": flows}),
        json!({"charisma": {"application_id": app_id}, "dhl": dhl_creds,
               "cdon": {"merchant_id": slug, "token": mp_token}}),
        &[],
        "21",
    )
    .await?;
    let ch_skus = vec![sku("MGZ-MUG-01")?, sku("MGZ-LAMP-02")?];
    for s in &ch_skus {
        db::flows::set_held_stock(pool, t.id, s, 25).await?;
    }
    out.push(Seeded {
        label: "charisma+cdon",
        tenant: t,
        conn,
        account: slug,
        skus: ch_skus,
        erp_account: app_id,
    });

    // lexoffice (EUR, no stock) on Cel.ro (RON).
    let api_key = if copy == 0 {
        lexoffice::DEMO_API_KEY.to_owned()
    } else {
        format!("demo-lexoffice-key{sfx}")
    };
    sb.lexoffice.seed_demo_for(&api_key);
    let slug = format!("demo-lexoffice{sfx}");
    let t = tenant(pool, &slug, "Demo lexoffice shop").await?;
    let mp_pass = format!("{slug}-pass");
    sb.celro.add_account(&slug, &mp_pass, 12);
    let lx_skus = vec![sku("MUG-BLUE")?, sku("LAMP-DESK")?];
    let lookups: Vec<(&str, &str)> = vec![
        ("MUG-BLUE", "1000"),
        ("LAMP-DESK", "1000"),
        ("CHAIR-OAK", "1000"),
    ];
    let conn = connection(
        pool,
        vault,
        &t,
        Erp::Lexoffice,
        Marketplace::Celro,
        json!({"lexoffice": {"base_url": sb.lexoffice_server.base_url(), "http": http()},
               "celro": celro_settings(12), "dhl": dhl_settings, "flows": flows}),
        json!({"lexoffice": {"api_key": api_key}, "dhl": dhl_creds,
               "celro": {"username": slug, "password": mp_pass}}),
        &lookups,
        "19",
    )
    .await?;
    for s in &lx_skus {
        db::flows::set_held_stock(pool, t.id, s, 20).await?;
    }
    out.push(Seeded {
        label: "lexoffice+celro",
        tenant: t,
        conn,
        account: slug,
        skus: lx_skus,
        erp_account: api_key,
    });
    Ok(out)
}

/// WinMentor+CDON on the sandbox's exchange directory (copy 0 only).
async fn seed_winmentor(
    pool: &PgPool,
    vault: &Vault,
    sb: &Sandbox,
    dhl_settings: &Value,
    dhl_creds: &Value,
    flows: &Value,
    cdon_settings: &Value,
) -> anyhow::Result<Seeded> {
    use connectors::conformance::ErpFake as _;
    use connectors::winmentor;
    let wm_items = [
        ("MGZ-MUG-01", "Cana ceramica 350 ml", 4990, 40),
        ("MGZ-LAMP-02", "Lampa de birou LED", 18900, 12),
    ];
    for (s, name, cents, qty) in wm_items {
        sb.winmentor
            .seed_item(&sku(s)?, name, Decimal::new(cents, 2), qty, "Depozit");
    }
    let t = tenant(pool, "demo-winmentor", "Demo WinMentor shop").await?;
    let mut wm = serde_json::to_value(winmentor::Config::new(
        sb.winmentor_dir.clone(),
        winmentor::config::ClientCode::Constant {
            code: "CLIENTI MARKETPLACE".into(),
        },
    ))?;
    wm["result_timeout_ms"] = json!(5000);
    wm["result_poll_ms"] = json!(20);
    sb.cdon
        .add_merchant("demo-winmentor", "demo-winmentor-token");
    let conn = connection(
        pool,
        vault,
        &t,
        Erp::WinMentor,
        Marketplace::Cdon,
        json!({"winmentor": wm, "cdon": cdon_settings, "dhl": dhl_settings, "flows": flows}),
        json!({"dhl": dhl_creds, "cdon": {"merchant_id": "demo-winmentor", "token": "demo-winmentor-token"}}),
        &[],
        "21",
    )
    .await?;
    Ok(Seeded {
        label: "winmentor+cdon",
        tenant: t,
        conn,
        account: "demo-winmentor".into(),
        skus: wm_items
            .iter()
            .map(|i| sku(i.0))
            .collect::<anyhow::Result<_>>()?,
        erp_account: sb.winmentor_dir.display().to_string(),
    })
}

/// Places one buyer's order for `sku` on the seeded connection's marketplace fake; returns the
/// marketplace's order id.
pub fn place_order(sb: &Sandbox, s: &Seeded, sku: &Sku, quantity: u32) -> anyhow::Result<String> {
    match s.conn.marketplace {
        Marketplace::Cdon => sb
            .cdon
            .seed_order_with(&connectors::cdon::fake::SeedOrder {
                merchant_id: Some(s.account.clone()),
                sku: sku.as_str().into(),
                quantity,
                ..Default::default()
            })
            .map_err(anyhow::Error::msg),
        Marketplace::Celro => sb
            .celro
            .seed_order_for(&s.account, sku.as_str(), quantity)
            .map(|id| id.to_string())
            .context("unknown Cel.ro account"),
        Marketplace::Noop => anyhow::bail!("the no-op marketplace takes no orders"),
    }
}

/// A vault for the demo when `MEGZO_CREDENTIAL_KEYS` is not set: a fresh key of this run (the
/// demo's credentials are the fakes' and open nothing real).
pub fn demo_vault() -> anyhow::Result<Arc<Vault>> {
    match Vault::from_env() {
        Ok(v) => Ok(Arc::new(v)),
        Err(_) => Ok(Arc::new(Vault::parse(&Vault::generate_key())?)),
    }
}

/// The merchants' and buyers' side of the demo, step `n`: the merchant issues the invoice of
/// documented orders in SmartBill and lexoffice (the product never does), every 10th step a
/// buyer cancels an accepted CDON order before it ships, every 15th a buyer returns a shipped
/// Cel.ro order.
pub async fn act_as_merchants(
    pool: &PgPool,
    sb: &Sandbox,
    seeded: &[Seeded],
    n: usize,
) -> anyhow::Result<()> {
    use connectors::conformance::ErpFake;
    for s in seeded {
        let rows = db::flows::orders_needing(pool, s.conn.id, db::flows::Need::Invoice, 5).await?;
        let fake: Option<&dyn ErpFake> = match s.conn.erp {
            Erp::SmartBill => Some(sb.smartbill.as_ref()),
            Erp::Lexoffice => Some(sb.lexoffice.as_ref()),
            _ => None,
        };
        if let Some(fake) = fake {
            for row in rows.iter().filter(|r| r.invoice_state.is_none()) {
                let Some(doc) = row
                    .document_json
                    .clone()
                    .and_then(|d| serde_json::from_value::<canonical::SalesDocument>(d).ok())
                else {
                    continue;
                };
                // The fakes panic on a document they do not know; keep the demo running.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    fake.merchant_invoices(&doc);
                }));
            }
        }
        if n.is_multiple_of(10) && s.conn.marketplace == Marketplace::Cdon {
            let rows = db::flows::orders_needing(pool, s.conn.id, db::flows::Need::Awb, 1).await?;
            if let Some(r) = rows.first() {
                sb.cdon
                    .cancel_order_as_cdon(Some(&s.account), &r.channel_order_id);
            }
        }
        if n.is_multiple_of(15) && s.conn.marketplace == Marketplace::Celro {
            let shipped = db::flows::orders_in(pool, s.conn.id, &["created"], 500).await?;
            if let Some(r) = shipped.iter().rev().find(|r| r.shipped_at.is_some())
                && let (Ok(id), Some(sku)) = (r.channel_order_id.parse::<u64>(), s.skus.first())
            {
                let _ = sb.celro.add_return_request(
                    &s.account,
                    id,
                    sku.as_str(),
                    1,
                    "demo: nu se potriveste",
                );
            }
        }
    }
    Ok(())
}
