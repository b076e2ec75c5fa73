//! The GDPR duties against a real Postgres (one database per test): the retention purge, erasure
//! of a tenant and of one data subject, the per-tenant export, their idempotency, the command
//! line and the scheduler's loop. Orders are written the way the flows write them (claim, payload,
//! fenced states, document, invoice, AWB, returns, job history), then aged by moving their
//! timestamps back.

use std::time::Duration as StdDuration;

use canonical::{
    ChannelOrderId, Contact, Country, Courier, Currency, Erp, Marketplace, Order, OrderLine,
    OrderStatus, SalesDocument, SalesDocumentKind, Sku, TenantId, VatRate,
};
use chrono::{DateTime, Duration, Utc};
use clap::Parser as _;
use queue_schema::{AttemptError, ErrorClass, JobId, JobKind, JobPayload, Scope, Trigger};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;
use workers::db::{self, Claim, Connection, OrderState, Tenant};
use workers::gdpr::{
    self, ERASED, ERROR_TEXT_ERASED, GdprCmd, erase_tenant, erasure_preview, export_tenant,
    purge_expired, purge_preview,
};
use workers::vault::{Credentials, Vault};

const CHANNEL: &str = "celro";

/// A buyer's personal data, and every string of it that must go.
struct Buyer {
    contact: Contact,
    strings: &'static [&'static str],
}

fn ziggy() -> Buyer {
    Buyer {
        contact: Contact {
            name: "Ziggy Personaldata".into(),
            company: Some("Ziggy Zeta PFA".into()),
            email: Some("ziggy.pd@example.test".into()),
            phone: Some("+40 799 123 456".into()),
            address_line1: "Strada Zorilor 42".into(),
            address_line2: Some("ap. 7".into()),
            city: "Zigtown".into(),
            postal_code: "077999".into(),
            region: Some("Ilfov".into()),
            country: Some(Country::RO),
            tax_id: Some("RO99887766".into()),
        },
        strings: &[
            "ziggy",
            "personaldata",
            "ziggy.pd@example.test",
            "zeta pfa",
            "799 123 456",
            "zorilor",
            "zigtown",
            "077999",
            "ro99887766",
        ],
    }
}

fn olga() -> Buyer {
    Buyer {
        contact: Contact {
            name: "Olga Otherbuyer".into(),
            email: Some("olga.ob@example.test".into()),
            phone: Some("+40 711 222 333".into()),
            address_line1: "Bulevardul Olteniei 5".into(),
            city: "Oltown".into(),
            postal_code: "011111".into(),
            country: Some(Country::RO),
            ..Contact::default()
        },
        strings: &[
            "olga",
            "otherbuyer",
            "olga.ob@example.test",
            "711 222 333",
            "olteniei",
            "oltown",
        ],
    }
}

struct Shop {
    tenant: Tenant,
    conn: Connection,
}

async fn shop(pool: &PgPool, slug: &str) -> Shop {
    let tenant = db::add_tenant(pool, slug, &format!("Shop {slug}"))
        .await
        .unwrap();
    let conn = db::add_connection(
        pool,
        tenant.id,
        Erp::SmartBill,
        Marketplace::Celro,
        Some(Courier::Dhl),
        json!({
            "celro": {"base_url": "http://127.0.0.1:9/", "pickup_address_id": 11,
                      "password": format!("settings-password-{slug}")},
            "flows": {"shipper": {"name": "Depozit MEGZO", "city": "Cluj-Napoca"}},
        }),
    )
    .await
    .unwrap();
    Shop { tenant, conn }
}

fn order(id: &str, buyer: &Contact) -> Order {
    Order {
        id: ChannelOrderId::new(id).unwrap(),
        group_id: None,
        status: OrderStatus::New,
        raw_status: "1".into(),
        market: Country::RO,
        currency: Currency::Ron,
        placed_at: Utc::now(),
        updated_at: None,
        ship_by: None,
        lines: vec![OrderLine {
            line_id: Some(format!("{id}-1")),
            sku: Sku::new("MGZ-MUG-01").unwrap(),
            title: "Cana ceramica".into(),
            quantity: 2,
            unit_price_gross: Decimal::new(4990, 2),
            vat: VatRate::percent(Decimal::from(21)).unwrap(),
        }],
        shipping_fee_gross: Decimal::new(1500, 2),
        total_gross: Decimal::new(11480, 2),
        customer: buyer.clone(),
        ship_to: buyer.clone(),
        tracking: vec![],
    }
}

/// Where an order is in the flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Document, invoice, AWB and tracking: complete.
    Shipped,
    /// Cancelled before the ERP (its reason quotes the buyer, as an ERP's refusal can).
    Cancelled,
    /// Parked for support.
    NeedsReview,
    /// Document made and accepted, AWB not minted yet.
    AwaitingAwb,
}

/// Writes an order the way the flows do; returns its row id.
async fn place(pool: &PgPool, s: &Shop, id: &str, buyer: &Contact, fate: Fate) -> i64 {
    let Claim::New(row) = db::claim_order(pool, s.tenant.id, CHANNEL, id)
        .await
        .unwrap()
    else {
        panic!("order {id} existed");
    };
    let json = serde_json::to_value(order(id, buyer)).unwrap();
    db::flows::store_order_payload(pool, row.id, s.conn.id, &json)
        .await
        .unwrap();
    let set = |state, doc: Option<String>, reason: Option<String>| async move {
        assert!(
            db::fenced_set_order_state(
                pool,
                s.tenant.id,
                CHANNEL,
                id,
                state,
                1,
                doc.as_deref(),
                reason.as_deref()
            )
            .await
            .unwrap()
        );
    };
    match fate {
        Fate::Cancelled => {
            let why = format!(
                "the ERP refused the order: client {} <{}> has no tax id",
                buyer.name,
                buyer.email.clone().unwrap_or_default()
            );
            set(OrderState::Cancelled, None, Some(why)).await;
        }
        Fate::NeedsReview => {
            let why = format!("lookup ambiguous: two proformas name {}", buyer.name);
            set(OrderState::NeedsReview, None, Some(why)).await;
        }
        Fate::Shipped | Fate::AwaitingAwb => {
            set(OrderState::ErpPending, None, None).await;
            let erp_id = format!("PRO-{id}");
            set(OrderState::Created, Some(erp_id.clone()), None).await;
            let doc = SalesDocument {
                kind: SalesDocumentKind::Proforma,
                order_id: ChannelOrderId::new(id).unwrap(),
                erp_id,
                series: Some("PRO".into()),
                number: Some(id.into()),
                total_gross: Decimal::new(11480, 2),
                currency: Currency::Ron,
                exchange_rate: None,
            };
            db::flows::store_document(pool, row.id, &serde_json::to_value(&doc).unwrap())
                .await
                .unwrap();
            db::flows::mark_accepted(pool, row.id).await.unwrap();
            let series = Some("FCT".to_owned());
            let number = format!("INV-{id}");
            db::flows::set_invoice(
                pool,
                row.id,
                "unsupported",
                Some((&series, number.as_str())),
                Some(&format!("Cel.ro refused the PDF of {}", buyer.name)),
            )
            .await
            .unwrap();
            if fate == Fate::Shipped {
                let reference = format!("MGZ-CELRO-{id}");
                db::flows::awb_intent(pool, row.id, &reference)
                    .await
                    .unwrap()
                    .expect("a created order takes an AWB intent");
                assert!(
                    db::flows::awb_created(pool, row.id, &format!("AWB{id}-{}", s.tenant.slug))
                        .await
                        .unwrap()
                );
                db::flows::mark_shipped(pool, row.id).await.unwrap();
            } else {
                // The courier refused the address once, quoting it.
                db::flows::awb_parked(
                    pool,
                    row.id,
                    "needs_review",
                    &format!(
                        "DHL 1001: Postal code {} of receiverDetails is invalid",
                        buyer.postal_code
                    ),
                )
                .await
                .unwrap();
            }
        }
    }
    row.id
}

/// Moves every timestamp of an order (and of its return items) `days` into the past.
async fn age(pool: &PgPool, row: i64, days: i32) {
    sqlx::query(
        "UPDATE orders SET created_at = created_at - make_interval(days => $2),
                updated_at = updated_at - make_interval(days => $2),
                accepted_at = accepted_at - make_interval(days => $2),
                shipped_at = shipped_at - make_interval(days => $2),
                awb_intent_at = awb_intent_at - make_interval(days => $2)
         WHERE id = $1",
    )
    .bind(row)
    .bind(days)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE return_items r SET created_at = r.created_at - make_interval(days => $2),
                closed_at = r.closed_at - make_interval(days => $2)
         FROM orders o WHERE o.id = $1 AND r.connection_id = o.connection_id
           AND r.channel_order_id = o.channel_order_id",
    )
    .bind(row)
    .bind(days)
    .execute(pool)
    .await
    .unwrap();
}

/// A return item of an order, its evidence quoting the buyer's return reason.
async fn returned(pool: &PgPool, s: &Shop, id: &str, kind: &str, buyer: &Contact, open: bool) {
    assert!(
        db::flows::record_return(
            pool,
            s.tenant.id,
            s.conn.id,
            &format!("ret-{id}-{kind}"),
            id,
            kind,
            "for_merchant",
            None,
            Some(&format!(
                "order {id} was returned (reason: \"{} wants a refund, call {}\"): issue the credit note for invoice INV-{id}",
                buyer.name,
                buyer.phone.clone().unwrap_or_default()
            )),
            open,
        )
        .await
        .unwrap()
    );
}

/// A failed attempt of `s`'s order pull `days` ago whose error quotes `text`; also recorded as the
/// flow's latest failure.
async fn failed_run(pool: &PgPool, s: &Shop, days: i64, text: &str) {
    let at = Utc::now() - Duration::days(days);
    let run = db::RunRecord {
        job_id: JobId::new(),
        attempt: 1,
        kind: JobKind::OrderPull,
        tenant_id: s.tenant.id,
        connection_id: s.conn.id,
        trigger: "manual".into(),
        payload: serde_json::to_value(JobPayload::v1(
            s.tenant.id,
            s.conn.id,
            Scope::All,
            Trigger::Manual,
        ))
        .unwrap(),
        outcome: db::RunOutcome::Retried,
        error: Some(attempt_error(at, text)),
        started_at: at,
        finished_at: at + Duration::seconds(1),
        worker: "w-1".into(),
        mapping_version: None,
    };
    assert_eq!(
        db::insert_runs(pool, std::slice::from_ref(&run))
            .await
            .unwrap(),
        1
    );
    db::record_flow_status(pool, &[run]).await.unwrap();
}

fn attempt_error(at: DateTime<Utc>, text: &str) -> AttemptError {
    AttemptError {
        attempt: 1,
        at_ms: at.timestamp_millis() as u64,
        worker: "w-1".into(),
        class: ErrorClass::Retryable,
        chain: vec![format!("1 orders not finished: {text}"), text.to_owned()],
        retry_after_ms: None,
    }
}

async fn dead_job(pool: &PgPool, s: &Shop, days: i64, text: &str) {
    let at = Utc::now() - Duration::days(days);
    let job = db::DeadJob {
        job_id: JobId::new(),
        kind: JobKind::AwbPush,
        tenant_id: s.tenant.id,
        connection_id: s.conn.id,
        payload: serde_json::to_value(JobPayload::v1(
            s.tenant.id,
            s.conn.id,
            Scope::All,
            Trigger::Manual,
        ))
        .unwrap(),
        attempts: 2,
        max_attempts: 2,
        errors: vec![attempt_error(at, text), attempt_error(at, "SmartBill 503")],
        enqueued_at: at,
        died_at: at,
        replayed_at: None,
        replayed_as: None,
    };
    assert_eq!(db::insert_dead(pool, &[job]).await.unwrap(), 1);
}

/// Every column of an order row, as JSON.
async fn row_json(pool: &PgPool, row: i64) -> Value {
    sqlx::query_scalar("SELECT to_jsonb(o) FROM orders o WHERE id = $1")
        .bind(row)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Everything of a tenant the anonymisation may touch, as one lowercase text.
async fn tenant_text(pool: &PgPool, tenant: TenantId) -> String {
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT to_jsonb(o)::text FROM orders o WHERE tenant_id = $1
         UNION ALL SELECT to_jsonb(r)::text FROM return_items r WHERE tenant_id = $1
         UNION ALL SELECT to_jsonb(j)::text FROM job_runs j WHERE tenant_id = $1
         UNION ALL SELECT to_jsonb(d)::text FROM dead_jobs d WHERE tenant_id = $1
         UNION ALL SELECT to_jsonb(f)::text FROM flow_status f WHERE tenant_id = $1",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .unwrap();
    parts.join("\n").to_lowercase()
}

fn assert_gone(text: &str, buyer: &Buyer, what: &str) {
    let text = text.to_lowercase();
    for s in buyer.strings {
        assert!(!text.contains(s), "{what}: {s:?} survived: {text}");
    }
}

fn assert_held(text: &str, buyer: &Buyer, what: &str) {
    let text = text.to_lowercase();
    for s in buyer.strings {
        assert!(text.contains(s), "{what}: {s:?} is missing: {text}");
    }
}

/// The business record of an order row: everything but its personal data and the erasure mark.
fn business(row: &Value) -> Value {
    let mut r = row.clone();
    let m = r.as_object_mut().unwrap();
    for k in [
        "review_reason",
        "invoice_note",
        "awb_note",
        "personal_data_erased_at",
    ] {
        m.remove(k);
    }
    if let Some(o) = m.get_mut("order_json").and_then(Value::as_object_mut) {
        o.remove("customer");
        o.remove("ship_to");
    }
    r
}

fn assert_anonymised(before: &Value, after: &Value, buyer: &Buyer) {
    assert_gone(&after.to_string(), buyer, "anonymised row");
    assert_eq!(
        business(before),
        business(after),
        "the business record stays"
    );
    for who in ["customer", "ship_to"] {
        let c: Contact = serde_json::from_value(after["order_json"][who].clone())
            .expect("still a canonical contact");
        assert_eq!(c.name, ERASED);
        assert_eq!(c.country, Some(Country::RO), "the country stays");
        assert!(c.email.is_none() && c.phone.is_none() && c.address_line1.is_empty());
    }
    let order: Order =
        serde_json::from_value(after["order_json"].clone()).expect("still a canonical order");
    assert_eq!(order.total_gross, Decimal::new(11480, 2));
    assert!(after["personal_data_erased_at"].is_string(), "{after}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_retention_purge_anonymises_complete_orders_past_the_retention_only(pool: PgPool) {
    let s = shop(&pool, "shop-a").await;
    let (z, o) = (ziggy(), olga());
    // Complete for 120 days: shipped, cancelled, and shipped with a return closed long ago.
    let shipped = place(&pool, &s, "1001", &z.contact, Fate::Shipped).await;
    let cancelled = place(&pool, &s, "1002", &z.contact, Fate::Cancelled).await;
    let with_return = place(&pool, &s, "1003", &o.contact, Fate::Shipped).await;
    returned(&pool, &s, "1003", "return_request", &o.contact, false).await;
    // Not to be touched: complete only recently; parked; waiting for its AWB; an open return.
    let recent = place(&pool, &s, "1004", &z.contact, Fate::Shipped).await;
    let review = place(&pool, &s, "1005", &z.contact, Fate::NeedsReview).await;
    let waiting = place(&pool, &s, "1006", &z.contact, Fate::AwaitingAwb).await;
    let open_return = place(&pool, &s, "1007", &o.contact, Fate::Shipped).await;
    returned(&pool, &s, "1007", "return_request", &o.contact, true).await;
    for row in [
        shipped,
        cancelled,
        with_return,
        review,
        waiting,
        open_return,
    ] {
        age(&pool, row, 120).await;
    }
    // Job history: old texts quoting the buyer go, recent ones stay (for now).
    failed_run(&pool, &s, 120, "DHL 1001: Postal code 077999 is invalid").await;
    dead_job(&pool, &s, 100, "the ERP refused client Ziggy Personaldata").await;
    failed_run(&pool, &s, 2, "SmartBill 503: try again").await;

    let before: Vec<Value> = {
        let mut v = Vec::new();
        for r in [
            shipped,
            cancelled,
            with_return,
            recent,
            review,
            waiting,
            open_return,
        ] {
            v.push(row_json(&pool, r).await);
        }
        v
    };
    let retention = Duration::days(90);
    let now = Utc::now();

    // A preview counts and changes nothing.
    let preview = purge_preview(&pool, retention, now).await.unwrap();
    for (row, b) in [
        shipped,
        cancelled,
        with_return,
        recent,
        review,
        waiting,
        open_return,
    ]
    .iter()
    .zip(&before)
    {
        assert_eq!(&row_json(&pool, *row).await, b, "the preview changed a row");
    }

    let report = purge_expired(&pool, retention, now).await.unwrap();
    assert_eq!(report.cutoff, now - retention);
    assert_eq!(report.orders.orders_anonymised, 3, "{report:?}");
    // The cancelled order's reason, the shipped orders' invoice notes.
    assert_eq!(report.orders.texts_scrubbed, 3, "{report:?}");
    assert_eq!(report.orders.return_items_scrubbed, 1, "{report:?}");
    assert_eq!(report.job_runs_erased, 1, "{report:?}");
    assert_eq!(report.dead_jobs_erased, 1, "{report:?}");
    assert_eq!(
        report.flow_status_erased, 0,
        "the flow's latest failure is recent"
    );
    let mut preview_cmp = preview;
    preview_cmp.batches = report.batches;
    assert_eq!(
        preview_cmp, report,
        "the preview counted what the purge did"
    );

    // Anonymised, business records kept.
    assert_anonymised(&before[0], &row_json(&pool, shipped).await, &z);
    assert_anonymised(&before[1], &row_json(&pool, cancelled).await, &z);
    assert_anonymised(&before[2], &row_json(&pool, with_return).await, &o);
    let kept = row_json(&pool, shipped).await;
    assert_eq!(kept["channel_order_id"], "1001");
    assert_eq!(kept["erp_document_id"], "PRO-1001");
    assert_eq!(kept["document_json"]["number"], "1001");
    assert_eq!(kept["invoice_number"], "INV-1001");
    assert_eq!(kept["awb"], "AWB1001-shop-a");
    assert_eq!(kept["awb_reference"], "MGZ-CELRO-1001");
    assert_eq!(kept["order_json"]["lines"][0]["sku"], "MGZ-MUG-01");
    assert_eq!(kept["order_json"]["total_gross"], "114.80");
    let reason = row_json(&pool, cancelled).await["review_reason"].clone();
    assert_eq!(
        reason,
        json!("the ERP refused the order: client [erased] <[erased]> has no tax id")
    );
    let items = db::flows::return_items(&pool, s.conn.id, true)
        .await
        .unwrap();
    let closed = items.iter().find(|i| i.channel_order_id == "1003").unwrap();
    let evidence = closed.evidence.clone().unwrap();
    assert_gone(&evidence, &o, "closed return's evidence");
    assert!(
        evidence.contains("INV-1003"),
        "the merchant's instruction stays: {evidence}"
    );
    let open = items.iter().find(|i| i.channel_order_id == "1007").unwrap();
    assert_held(
        open.evidence.as_deref().unwrap(),
        &Buyer {
            contact: o.contact.clone(),
            strings: &["olga otherbuyer", "711 222 333"],
        },
        "open return",
    );

    // Untouched.
    for (i, row) in [(3, recent), (4, review), (5, waiting), (6, open_return)] {
        assert_eq!(
            row_json(&pool, row).await,
            before[i],
            "row {row} was not to be touched"
        );
    }

    // Job history: the old texts are the marker, the class and times stay; the recent one stays.
    let runs: Vec<Value> =
        sqlx::query_scalar("SELECT error FROM job_runs WHERE tenant_id = $1 ORDER BY started_at")
            .bind(s.tenant.id.0)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(runs[0]["chain"], json!([ERROR_TEXT_ERASED]));
    assert_eq!(runs[0]["class"], "retryable");
    assert_eq!(runs[1]["chain"][1], "SmartBill 503: try again");
    let dead: Value = sqlx::query_scalar("SELECT errors FROM dead_jobs WHERE tenant_id = $1")
        .bind(s.tenant.id.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(dead[0]["chain"], json!([ERROR_TEXT_ERASED]));
    assert_eq!(dead[1]["chain"], json!([ERROR_TEXT_ERASED]));
    assert_eq!(dead.as_array().unwrap().len(), 2);

    // Idempotent: a second purge finds nothing and changes nothing.
    let text = tenant_text(&pool, s.tenant.id).await;
    let again = purge_expired(&pool, retention, now).await.unwrap();
    assert_eq!(again.orders, gdpr::OrderCounts::default(), "{again:?}");
    assert_eq!(
        (
            again.job_runs_erased,
            again.dead_jobs_erased,
            again.flow_status_erased
        ),
        (0, 0, 0)
    );
    assert_eq!(tenant_text(&pool, s.tenant.id).await, text);

    // Later, the recent order's retention is over too (and the open return still holds one).
    let later = now + Duration::days(100);
    let r = purge_expired(&pool, retention, later).await.unwrap();
    assert_eq!(
        r.orders.orders_anonymised, 1,
        "only the recently shipped order: {r:?}"
    );
    assert_eq!(r.flow_status_erased, 1, "{r:?}");
    assert_anonymised(&before[3], &row_json(&pool, recent).await, &z);
    for (i, row) in [(4, review), (5, waiting), (6, open_return)] {
        assert_eq!(row_json(&pool, row).await, before[i]);
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn orders_of_a_deleted_connection_are_complete(pool: PgPool) {
    let s = shop(&pool, "shop-gone").await;
    let z = ziggy();
    let row = place(&pool, &s, "3001", &z.contact, Fate::AwaitingAwb).await;
    age(&pool, row, 120).await;
    let r = purge_expired(&pool, Duration::days(90), Utc::now())
        .await
        .unwrap();
    assert_eq!(r.orders.orders_anonymised, 0, "still waiting for its AWB");
    sqlx::query("DELETE FROM connections WHERE id = $1")
        .bind(s.conn.id.0)
        .execute(&pool)
        .await
        .unwrap();
    let r = purge_expired(&pool, Duration::days(90), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        r.orders.orders_anonymised, 1,
        "no flow can reach it any more"
    );
    assert_gone(
        &row_json(&pool, row).await.to_string(),
        &z,
        "orphaned order",
    );
    // The merchant connects the marketplace again: its first pull lists the old order, whose
    // row is found by its key; the anonymised row does not take the buyer back.
    let conn = db::add_connection(
        &pool,
        s.tenant.id,
        Erp::SmartBill,
        Marketplace::Celro,
        None,
        json!({}),
    )
    .await
    .unwrap();
    let Claim::Existing(again) = db::claim_order(&pool, s.tenant.id, CHANNEL, "3001")
        .await
        .unwrap()
    else {
        panic!("the order's row is kept");
    };
    let json = serde_json::to_value(order("3001", &z.contact)).unwrap();
    db::flows::store_order_payload(&pool, again.id, conn.id, &json)
        .await
        .unwrap();
    assert_gone(
        &row_json(&pool, row).await.to_string(),
        &z,
        "re-listed order",
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn erasure_of_one_subject_then_of_the_tenant_leaves_other_tenants_alone(pool: PgPool) {
    let a = shop(&pool, "shop-a").await;
    let b = shop(&pool, "shop-b").await;
    let (z, o) = (ziggy(), olga());
    // Ziggy's e-mail in another case: subjects are matched ignoring case.
    let mut z_upper = z.contact.clone();
    z_upper.email = Some("ZIGGY.PD@Example.Test".into());
    let a_z1 = place(&pool, &a, "2001", &z.contact, Fate::Shipped).await;
    let a_z2 = place(&pool, &a, "2002", &z_upper, Fate::AwaitingAwb).await;
    returned(&pool, &a, "2001", "return_request", &z.contact, true).await;
    let a_o = place(&pool, &a, "2003", &o.contact, Fate::Shipped).await;
    let b_z = place(&pool, &b, "2001", &z.contact, Fate::Shipped).await;
    failed_run(
        &pool,
        &a,
        2,
        "DHL 1001: Postal code 077999 of Ziggy Personaldata",
    )
    .await;
    failed_run(&pool, &a, 1, "lexoffice refused Olga Otherbuyer").await;
    dead_job(&pool, &a, 1, "order 2002: +40 799 123 456 is not a phone").await;
    failed_run(
        &pool,
        &b,
        1,
        "DHL 1001: Postal code 077999 of Ziggy Personaldata",
    )
    .await;
    let b_before = tenant_text(&pool, b.tenant.id).await;
    let o_before = row_json(&pool, a_o).await;
    let before_z1 = row_json(&pool, a_z1).await;
    let before_z2 = row_json(&pool, a_z2).await;

    // Without --yes: counted, nothing changed.
    let a_text = tenant_text(&pool, a.tenant.id).await;
    let preview = erasure_preview(&pool, a.tenant.id, Some("Ziggy.PD@example.test"))
        .await
        .unwrap();
    assert_eq!(tenant_text(&pool, a.tenant.id).await, a_text);

    let r = erase_tenant(&pool, a.tenant.id, Some("Ziggy.PD@example.test"))
        .await
        .unwrap();
    assert_eq!(preview, r, "the preview counted what the erasure did");
    assert!(r.one_subject);
    assert_eq!(r.orders.orders_anonymised, 2, "{r:?}");
    assert_eq!(
        r.orders_in_progress, 1,
        "the order still waiting for its AWB: {r:?}"
    );
    assert_eq!(r.orders.return_items_scrubbed, 1, "{r:?}");
    assert_eq!(r.job_runs_scrubbed, 1, "{r:?}");
    assert_eq!(r.dead_jobs_scrubbed, 1, "{r:?}");
    assert_eq!(r.flow_status_scrubbed, 0, "the latest failure quotes Olga");
    assert_anonymised(&before_z1, &row_json(&pool, a_z1).await, &z);
    assert_anonymised(&before_z2, &row_json(&pool, a_z2).await, &z);
    let text = tenant_text(&pool, a.tenant.id).await;
    assert_gone(&text, &z, "tenant A after the subject's erasure");
    assert_held(&text, &o, "the other buyer of tenant A");
    assert_eq!(
        row_json(&pool, a_o).await,
        o_before,
        "the other buyer's order"
    );
    assert_eq!(
        tenant_text(&pool, b.tenant.id).await,
        b_before,
        "another tenant"
    );
    let runs: Vec<Value> = sqlx::query_scalar(
        "SELECT error FROM job_runs WHERE tenant_id = $1 ORDER BY started_at DESC",
    )
    .bind(a.tenant.id.0)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(runs[0]["chain"][1], "lexoffice refused Olga Otherbuyer");
    assert_eq!(
        runs[1]["chain"][1],
        "DHL 1001: Postal code [erased] of [erased]"
    );

    // Idempotent: nothing of the subject is left to find.
    let text = tenant_text(&pool, a.tenant.id).await;
    let again = erase_tenant(&pool, a.tenant.id, Some("ziggy.pd@example.test"))
        .await
        .unwrap();
    assert_eq!(again.orders, gdpr::OrderCounts::default(), "{again:?}");
    assert_eq!(
        (
            again.job_runs_scrubbed,
            again.dead_jobs_scrubbed,
            again.flow_status_scrubbed
        ),
        (0, 0, 0)
    );
    assert_eq!(tenant_text(&pool, a.tenant.id).await, text);

    // The whole tenant: every buyer and every job history error text.
    let r = erase_tenant(&pool, a.tenant.id, None).await.unwrap();
    assert!(!r.one_subject);
    assert_eq!(
        r.orders.orders_anonymised, 1,
        "only Olga's order was left: {r:?}"
    );
    assert_eq!(r.job_runs_scrubbed, 2, "{r:?}");
    assert_eq!(r.dead_jobs_scrubbed, 1, "{r:?}");
    assert_eq!(r.flow_status_scrubbed, 1, "{r:?}");
    assert_anonymised(&o_before, &row_json(&pool, a_o).await, &o);
    let text = tenant_text(&pool, a.tenant.id).await;
    assert_gone(&text, &z, "tenant A");
    assert_gone(&text, &o, "tenant A");
    for kept in ["pro-2003", "awb2003-shop-a", "inv-2003"] {
        assert!(text.contains(kept), "the business record keeps {kept}");
    }
    assert_eq!(
        tenant_text(&pool, b.tenant.id).await,
        b_before,
        "another tenant"
    );
    assert_held(&b_before, &z, "tenant B");
    let again = erase_tenant(&pool, a.tenant.id, None).await.unwrap();
    assert_eq!(again.orders, gdpr::OrderCounts::default(), "{again:?}");
    assert_eq!(
        (
            again.job_runs_scrubbed,
            again.dead_jobs_scrubbed,
            again.flow_status_scrubbed
        ),
        (0, 0, 0)
    );

    // Refusals name what was wrong.
    let e = erase_tenant(&pool, a.tenant.id, Some("not-an-email"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an e-mail address"), "{e}");
    let e = erase_tenant(&pool, TenantId::new(), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown tenant"), "{e}");
    let _ = b_z;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_export_holds_the_tenants_data_and_never_credentials_or_other_tenants(pool: PgPool) {
    let a = shop(&pool, "shop-a").await;
    let b = shop(&pool, "shop-b").await;
    let vault = Vault::parse(&Vault::generate_key()).unwrap();
    for (s, secret) in [
        (&a, "cred-secret-of-shop-a-1234"),
        (&b, "cred-secret-of-shop-b-5678"),
    ] {
        let fields = json!({"celro": {"username": s.tenant.slug, "password": secret},
                            "dhl": {"username": "dhl-user", "password": format!("{secret}-dhl")}});
        db::store_credentials(
            &pool,
            &vault,
            s.conn.id,
            &Credentials::new(fields.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    }
    let (z, o) = (ziggy(), olga());
    place(&pool, &a, "4001", &z.contact, Fate::Shipped).await;
    place(&pool, &a, "4002", &o.contact, Fate::Shipped).await;
    returned(&pool, &a, "4002", "return_request", &o.contact, true).await;
    let mut bruno = o.contact.clone();
    bruno.name = "Bruno Beeblebrox".into();
    bruno.email = Some("bruno.b@example.test".into());
    place(&pool, &b, "9001", &bruno, Fate::Shipped).await;
    returned(&pool, &b, "9001", "return_request", &bruno, true).await;

    let doc = export_tenant(&pool, a.tenant.id, None).await.unwrap();
    let text = doc.to_string();
    assert_eq!(doc["tenant"]["slug"], "shop-a");
    assert_eq!(doc["connections"].as_array().unwrap().len(), 1);
    assert_eq!(
        doc["connections"][0]["settings"]["celro"]["pickup_address_id"],
        11
    );
    assert_eq!(
        doc["connections"][0]["settings"]["celro"]["password"],
        "[not exported]"
    );
    let ids: Vec<&str> = doc["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["channel_order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["4001", "4002"]);
    assert_eq!(doc["returns"].as_array().unwrap().len(), 1);
    assert_held(&text, &z, "the export (personal data included)");
    assert_held(&text, &o, "the export (personal data included)");
    assert_eq!(doc["orders"][0]["awb"]["number"], "AWB4001-shop-a");
    assert_eq!(doc["orders"][0]["document"]["erp_id"], "PRO-4001");
    for never in [
        "cred-secret-of-shop",
        "settings-password",
        "dhl-user",
        "bruno",
        "shop-b",
        &b.tenant.id.to_string(),
        &b.conn.id.to_string(),
    ] {
        assert!(
            !text.to_lowercase().contains(never),
            "the export holds {never:?}"
        );
    }

    // One data subject (ignoring case): only their order and its return.
    let doc = export_tenant(&pool, a.tenant.id, Some("OLGA.OB@example.test"))
        .await
        .unwrap();
    let orders = doc["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["channel_order_id"], "4002");
    assert_eq!(doc["returns"].as_array().unwrap().len(), 1);
    assert_eq!(doc["subject"]["email"], "OLGA.OB@example.test");
    assert!(!doc.to_string().to_lowercase().contains("ziggy"));
    let none = export_tenant(&pool, a.tenant.id, Some("nobody@example.test"))
        .await
        .unwrap();
    assert!(none["orders"].as_array().unwrap().is_empty());
    assert!(none["returns"].as_array().unwrap().is_empty());

    // After an erasure the export says so, and holds no personal data of that subject.
    erase_tenant(&pool, a.tenant.id, Some("olga.ob@example.test"))
        .await
        .unwrap();
    let doc = export_tenant(&pool, a.tenant.id, None).await.unwrap();
    assert_gone(&doc.to_string(), &o, "export after the erasure");
    assert!(doc["orders"][1]["personal_data_erased_at"].is_string());
    assert!(doc["orders"][0]["personal_data_erased_at"].is_null());
}

/// The commands as `megzo gdpr …` parses and runs them.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: GdprCmd,
}

fn parse(args: &[&str]) -> GdprCmd {
    Cli::try_parse_from(std::iter::once("gdpr").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .cmd
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_commands_export_to_a_private_file_and_erase_only_with_yes(pool: PgPool) {
    let a = shop(&pool, "shop-a").await;
    let z = ziggy();
    let row = place(&pool, &a, "5001", &z.contact, Fate::Shipped).await;
    age(&pool, row, 10).await;

    assert!(matches!(
        parse(&["purge"]),
        GdprCmd::Purge {
            retention_days: 90,
            dry_run: false
        }
    ));
    assert!(
        Cli::try_parse_from(["gdpr", "erase"]).is_err(),
        "a tenant is required"
    );

    let dir = std::env::temp_dir().join(format!("megzo-gdpr-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.json");
    let out = file.to_str().unwrap();
    gdpr::run(&pool, parse(&["export", "shop-a", "--out", out]))
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(doc["orders"][0]["channel_order_id"], "5001");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an export holds personal data: owner only");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let before = row_json(&pool, row).await;
    gdpr::run(
        &pool,
        parse(&["erase", "shop-a", "--subject", "ziggy.pd@example.test"]),
    )
    .await
    .unwrap();
    assert_eq!(
        row_json(&pool, row).await,
        before,
        "nothing is erased without --yes"
    );
    // A 7-day retention covers the order shipped 10 days ago; a dry run changes nothing.
    gdpr::run(
        &pool,
        parse(&["purge", "--retention-days", "7", "--dry-run"]),
    )
    .await
    .unwrap();
    assert_eq!(
        row_json(&pool, row).await,
        before,
        "a dry run changes nothing"
    );
    gdpr::run(
        &pool,
        parse(&[
            "erase",
            &a.tenant.id.to_string(),
            "--subject",
            "ziggy.pd@example.test",
            "--yes",
        ]),
    )
    .await
    .unwrap();
    assert_anonymised(&before, &row_json(&pool, row).await, &z);

    let e = gdpr::run(&pool, parse(&["export", "no-such-shop"]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown tenant no-such-shop"), "{e}");
    let e = gdpr::run(&pool, parse(&["purge", "--retention-days", "0"]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("retention"), "{e}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_purge_loop_purges_and_stops_when_cancelled(pool: PgPool) {
    let a = shop(&pool, "shop-a").await;
    let z = ziggy();
    let row = place(&pool, &a, "6001", &z.contact, Fate::Cancelled).await;
    age(&pool, row, 120).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(gdpr::purge_loop(
        pool.clone(),
        Duration::days(90),
        StdDuration::from_secs(3600),
        cancel.clone(),
    ));
    let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
    loop {
        if row_json(&pool, row).await["personal_data_erased_at"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the loop did not purge"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_gone(
        &row_json(&pool, row).await.to_string(),
        &z,
        "purged by the loop",
    );
    cancel.cancel();
    tokio::time::timeout(StdDuration::from_secs(5), task)
        .await
        .expect("the loop stops when cancelled")
        .unwrap();
}

/// Support's audit entry about an order (action `order.*`, target its row id), as the console
/// writes it, with a reason that quotes the buyer.
async fn audit_note(
    pool: &PgPool,
    s: &Shop,
    row: i64,
    channel_order_id: &str,
    reason: &str,
) -> i64 {
    db::console::insert_audit(
        pool,
        &db::console::NewAudit {
            actor: "sam",
            role: "support",
            via: "session",
            action: "order.cancel",
            tenant_id: Some(s.tenant.id),
            target: Some(&row.to_string()),
            outcome: "done",
            detail: json!({
                "resolution": {"action": "cancel", "reason": reason},
                "channel_order_id": channel_order_id,
            }),
        },
    )
    .await
    .unwrap()
}

async fn audit_detail(pool: &PgPool, id: i64) -> Value {
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn support_notes_about_an_order_lose_the_buyers_values_with_the_order(pool: PgPool) {
    let a = shop(&pool, "shop-audit").await;
    let (z, o) = (ziggy(), olga());
    let z_row = place(&pool, &a, "3001", &z.contact, Fate::Shipped).await;
    let o_row = place(&pool, &a, "3002", &o.contact, Fate::Shipped).await;
    let z_note = audit_note(
        &pool,
        &a,
        z_row,
        "3001",
        "Ziggy Personaldata (ziggy.pd@example.test) called: cancel",
    )
    .await;
    let o_note = audit_note(&pool, &a, o_row, "3002", "Olga Otherbuyer called").await;
    let o_before = audit_detail(&pool, o_note).await;

    // The subject's erasure cleans the note about the subject's order, and only that one.
    let r = erase_tenant(&pool, a.tenant.id, Some("ziggy.pd@example.test"))
        .await
        .unwrap();
    assert_eq!(r.orders.audit_entries_scrubbed, 1, "{r:?}");
    let z_after = audit_detail(&pool, z_note).await;
    assert_gone(&z_after.to_string(), &z, "the note about Ziggy's order");
    assert_eq!(
        z_after["channel_order_id"], "3001",
        "the business record stays"
    );
    assert!(
        z_after["resolution"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("called: cancel"),
        "the rest of the note stays: {z_after}"
    );
    assert_eq!(
        audit_detail(&pool, o_note).await,
        o_before,
        "another buyer's note"
    );

    // The retention purge does the same when it anonymises an order past the retention.
    age(&pool, o_row, 200).await;
    let r = purge_expired(&pool, Duration::days(90), Utc::now())
        .await
        .unwrap();
    assert_eq!(r.orders.audit_entries_scrubbed, 1, "{r:?}");
    assert_gone(
        &audit_detail(&pool, o_note).await.to_string(),
        &o,
        "the note about Olga's order after the purge",
    );
    let again = purge_expired(&pool, Duration::days(90), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        again.orders.audit_entries_scrubbed, 0,
        "idempotent: {again:?}"
    );
}
