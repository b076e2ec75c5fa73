//! [`DhlClient`]: the MyDHL API client behind [`crate::courier::Courier`].
//!
//! Every call goes through [`Http`] (gate, timeouts, `Retry-After`, inline retries of safe
//! calls) with HTTP Basic, `x-version` and a `Message-Reference` derived from the customer
//! reference (or the AWB). Creating a shipment is [`Safety::NonIdempotent`]: MyDHL has no
//! idempotency key, so a timeout or 500/502/504 after sending is
//! [`ConnectorError::InDoubt`], never repeated; the flow then calls
//! [`Courier::find_by_reference`] (or [`DhlClient::resolve_in_doubt`], which applies the
//! tracking-lag rule below) before anything else.
//!
//! **In-doubt rule.** A brand-new shipment may take 10-30 minutes to show in `GET /tracking`.
//! After an in-doubt create: found → use it (never create again); not found and less than
//! `in_doubt_settle_minutes` since the attempt → look again at the end of that window; not
//! found after it → manual reconcile (never an automatic second create).

use std::sync::Arc;

use async_trait::async_trait;
use canonical::{Courier as System, Shipment, ShipmentRequest, TrackingStatus};
use chrono::{DateTime, Duration, Utc};
use reqwest::header::ACCEPT;
use reqwest::{Method, RequestBuilder};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::SYSTEM;
use super::config::{Config, Credentials};
use super::convert;
use super::errors::{error_body, is_problem_message};
use super::wire::{CreateShipmentResponse, TrackingResponse};
use crate::Capabilities;
use crate::courier::Courier;
use crate::error::{ConnectorError, Result};
use crate::gate::CallGate;
use crate::http::{Http, Safety};

const OP_CREATE: &str = "create_shipment";
const OP_VALIDATE: &str = "validate_shipment";
const OP_FIND: &str = "find_by_reference";
const OP_TRACK: &str = "tracking";

/// What to do after an in-doubt create, once the reference lookup has answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The lost create made this shipment: use it, never create again.
    Found(Shipment),
    /// Nothing visible yet, and the tracking-lag window since the attempt is still open: look
    /// again at this time (no create meanwhile).
    LookAgainAt(DateTime<Utc>),
    /// Nothing found after the window: a person decides (DHL's portal, the shipper's account).
    /// Never an automatic second create.
    ManualReconcile { reason: String },
}

/// The in-doubt rule, given the lookup's answer (see the module docs).
pub fn recovery_verdict(
    reference: &str,
    found: Option<Shipment>,
    attempted_at: DateTime<Utc>,
    now: DateTime<Utc>,
    settle_minutes: u32,
) -> Recovery {
    if let Some(s) = found {
        return Recovery::Found(s);
    }
    let settled_at = attempted_at + Duration::minutes(i64::from(settle_minutes));
    if now < settled_at {
        Recovery::LookAgainAt(settled_at)
    } else {
        Recovery::ManualReconcile {
            reason: format!(
                "no DHL shipment with reference {reference:?} {settle_minutes} minutes after an in-doubt create at {}: check the shipper account in MyDHL before creating it again",
                attempted_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        }
    }
}

/// The MyDHL API client of one shipper account.
#[derive(Debug, Clone)]
pub struct DhlClient {
    http: Http,
    config: Config,
    credentials: Credentials,
}

impl DhlClient {
    /// Validates the settings and credentials and builds the client.
    pub fn new(
        config: &Config,
        credentials: Credentials,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        config.validate()?;
        if credentials.username.trim().is_empty() {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials: field `username` is blank",
            ));
        }
        if credentials.password.expose_secret().trim().is_empty() {
            return Err(ConnectorError::config(
                SYSTEM,
                "credentials: field `password` is blank",
            ));
        }
        let http = Http::new(SYSTEM, &config.http, gate, error_body)?;
        Ok(Self {
            http,
            config: config.clone(),
            credentials,
        })
    }

    /// Builds the client from a connection's settings and decrypted credentials (JSON).
    pub fn from_json(
        config: Value,
        credentials: &serde_json::Map<String, Value>,
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<Self> {
        let config = Config::from_json(config)?;
        let credentials = Credentials::from_map(credentials)?;
        Self::new(&config, credentials, gate)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn request(&self, method: Method, path: &str, message_reference: &str) -> RequestBuilder {
        self.http
            .request(method, &format!("{}{path}", self.config.root()))
            .basic_auth(
                &self.credentials.username,
                Some(self.credentials.password.expose_secret()),
            )
            .header("x-version", &self.config.x_version)
            .header("Message-Reference", message_reference)
            .header(ACCEPT, "application/json")
    }

    /// Checks a shipment with `POST /shipments?validateDataOnly=true`: DHL validates without
    /// creating anything (safe to repeat). Client-side checks run first.
    pub async fn validate_shipment(&self, request: &ShipmentRequest) -> Result<()> {
        let body = convert::create_request(&self.config, request, Utc::now())?;
        let mref = convert::message_reference("V-", &request.reference);
        self.http
            .send(OP_VALIDATE, Safety::Idempotent, || {
                self.request(Method::POST, "/shipments", &mref)
                    .query(&[("validateDataOnly", "true")])
                    .json(&body)
            })
            .await?;
        Ok(())
    }

    /// After an in-doubt create of `reference` (attempted at `attempted_at`, planned to ship
    /// around `ship_at`): looks it up and applies the in-doubt rule.
    pub async fn resolve_in_doubt(
        &self,
        reference: &str,
        attempted_at: DateTime<Utc>,
        ship_at: DateTime<Utc>,
    ) -> Result<Recovery> {
        let found = self.find_by_reference(reference, ship_at).await?;
        Ok(recovery_verdict(
            reference,
            found,
            attempted_at,
            Utc::now(),
            self.config.in_doubt_settle_minutes,
        ))
    }

    /// A 404 with a MyDHL problem body means "no such shipment"; a 404 from anything else
    /// (a proxy, a wrong path) is reported, with a hint at `base_url`.
    fn not_found(&self, e: ConnectorError) -> Result<(), ConnectorError> {
        match e {
            ConnectorError::Permanent {
                status: Some(404),
                ref message,
                ..
            } if is_problem_message(message) => Ok(()),
            ConnectorError::Permanent {
                system,
                op,
                status: Some(404),
                message,
            } => Err(ConnectorError::Permanent {
                system,
                op,
                status: Some(404),
                message: format!(
                    "{message} (a 404 that is not a MyDHL answer: check base_url {})",
                    self.config.root()
                ),
            }),
            other => Err(other),
        }
    }
}

fn reason_of(e: ConnectorError) -> String {
    match e {
        ConnectorError::Retryable { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[async_trait]
impl Courier for DhlClient {
    fn system(&self) -> System {
        System::Dhl
    }

    fn capabilities(&self) -> Capabilities {
        super::capabilities()
    }

    async fn create_shipment(&self, request: &ShipmentRequest) -> Result<Shipment> {
        let body = convert::create_request(&self.config, request, Utc::now())?;
        if self.config.validate_first {
            self.validate_shipment(request).await?;
        }
        let mref = convert::message_reference("", &request.reference);
        let answer = self
            .http
            .send(OP_CREATE, Safety::NonIdempotent, || {
                self.request(Method::POST, "/shipments", &mref).json(&body)
            })
            .await?;
        let resp: CreateShipmentResponse = answer.json(SYSTEM, OP_CREATE).map_err(|e| {
            ConnectorError::in_doubt(
                SYSTEM,
                OP_CREATE,
                format!(
                    "{} (a 2xx to a create: the shipment may exist, look it up by reference)",
                    reason_of(e)
                ),
            )
        })?;
        let shipment = convert::shipment_from_created(&self.config, &request.reference, resp)?;
        tracing::info!(
            system = SYSTEM,
            reference = %request.reference,
            awb = %shipment.awb,
            invocation_id = answer.header("invocation-id").unwrap_or(""),
            "shipment created"
        );
        Ok(shipment)
    }

    async fn find_by_reference(
        &self,
        reference: &str,
        shipped_around: DateTime<Utc>,
    ) -> Result<Option<Shipment>> {
        convert::check_reference(OP_FIND, reference)?;
        let (from, to) = convert::lookup_window(shipped_around, self.config.reference_lookup_days);
        let account = self.config.shipper_account.trim();
        let query = [
            ("shipmentReference", reference),
            ("shipmentReferenceType", "CU"),
            ("shipperAccountNumber", account),
            ("dateRangeFrom", from.as_str()),
            ("dateRangeTo", to.as_str()),
            ("trackingView", "shipment-details-only"),
            ("levelOfDetail", "shipment"),
        ];
        let mref = convert::message_reference("L-", reference);
        let sent = self
            .http
            .send(OP_FIND, Safety::Idempotent, || {
                self.request(Method::GET, "/tracking", &mref).query(&query)
            })
            .await;
        let answer = match sent {
            Ok(a) => a,
            Err(e) => return self.not_found(e).map(|()| None),
        };
        let resp: TrackingResponse = answer.json(SYSTEM, OP_FIND)?;
        let (found, awbs) = convert::found_shipment(&self.config, reference, &resp);
        if awbs.len() > 1 {
            tracing::warn!(
                system = SYSTEM,
                reference,
                awbs = ?awbs,
                "several DHL shipments carry one reference; using the oldest, the others need reconciling"
            );
        }
        Ok(found)
    }

    async fn tracking(&self, awb: &str) -> Result<TrackingStatus> {
        convert::check_awb(awb)?;
        let path = format!("/shipments/{awb}/tracking");
        let query = [
            ("trackingView", "all-checkpoints"),
            ("levelOfDetail", "shipment"),
            ("requestGMTOffsetPerEvent", "true"),
        ];
        let mref = convert::message_reference("T-", awb);
        let sent = self
            .http
            .send(OP_TRACK, Safety::Idempotent, || {
                self.request(Method::GET, &path, &mref).query(&query)
            })
            .await;
        let answer = match sent {
            Ok(a) => a,
            Err(e) => return self.not_found(e).map(|()| convert::unknown(awb)),
        };
        let resp: TrackingResponse = answer.json(SYSTEM, OP_TRACK)?;
        Ok(convert::tracking_status(awb, &resp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn in_doubt_rule_waits_out_the_lag_then_hands_over() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let s = Shipment {
            awb: "1234567890".into(),
            reference: "R".into(),
            tracking_url: None,
            label_pdf: vec![],
        };
        assert_eq!(
            recovery_verdict("R", Some(s.clone()), at, at, 30),
            Recovery::Found(s)
        );
        assert_eq!(
            recovery_verdict("R", None, at, at + Duration::minutes(5), 30),
            Recovery::LookAgainAt(at + Duration::minutes(30))
        );
        match recovery_verdict("R", None, at, at + Duration::minutes(30), 30) {
            Recovery::ManualReconcile { reason } => assert!(reason.contains("\"R\""), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn construction_refuses_bad_settings_and_credentials() {
        let creds = json!({"username": "u", "password": "p4ss-w0rd"});
        let creds = creds.as_object().unwrap();
        let c = DhlClient::from_json(json!({"shipper_account": "123456789"}), creds, None).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("p4ss-w0rd"), "{shown}");
        let e = DhlClient::from_json(json!({"shipper_account": "x"}), creds, None).unwrap_err();
        assert!(e.to_string().contains("shipper_account"), "{e}");
        let e = DhlClient::new(&Config::new("1"), Credentials::new("u", " "), None).unwrap_err();
        assert!(e.to_string().contains("`password` is blank"), "{e}");
    }
}
