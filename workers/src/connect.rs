//! From a connection's stored settings and credentials to live connector clients, and from a
//! connector's failure to what the queue does with the job.
//!
//! A connection's `settings` (Postgres `connections.settings`, JSON) and its decrypted
//! credentials are both **objects keyed by system name**, one entry per system the connection
//! uses:
//!
//! ```json
//! settings:    {"cdon": {"markets": ["SE", "NO"]}, "dhl": {"shipper_account": "123456789"}}
//! credentials: {"cdon": {"merchant_id": "…", "token": "…"}, "dhl": {"username": "…", "password": "…"}}
//! ```
//!
//! Each system's entry is validated by its connector (`Config::validate`,
//! `Credentials::from_map`) before a client is built; a missing entry means defaults for
//! settings, and a `Config` error naming the system for credentials.

use std::sync::Arc;

use canonical::{Courier, Erp, Marketplace};
use connectors::gate::CallGate;
use connectors::{Capabilities, ConnectorError, ErrorClass};
use serde_json::{Map, Value};

use crate::queue::service::JobError;
use crate::vault::Credentials;

/// Every system's declared capabilities, in display order. SmartBill's catalog depends on the
/// connection (it needs the tenant's price list); the matrix shows a connection without one.
pub fn capability_matrix() -> Vec<Capabilities> {
    vec![
        connectors::smartbill::capabilities(false),
        connectors::lexoffice::capabilities(),
        connectors::winmentor::capabilities(),
        connectors::charisma::capabilities(),
        connectors::cdon::capabilities(),
        connectors::celro::capabilities(),
        connectors::dhl::capabilities(),
        connectors::noop::capabilities(),
    ]
}

/// The entry of `system` in a settings or credentials object.
fn entry<'a>(obj: &'a Map<String, Value>, system: &str) -> Option<&'a Value> {
    obj.get(system).filter(|v| !v.is_null())
}

fn credentials_of<'a>(
    creds: Option<&'a Credentials>,
    system: &'static str,
) -> Result<&'a Map<String, Value>, ConnectorError> {
    let missing = || {
        ConnectorError::config(
            system,
            format!(
                "no credentials stored for {system}: store {{\"{system}\": {{…}}}} with `megzo connections set-credentials`"
            ),
        )
    };
    let all = creds.ok_or_else(missing)?.expose();
    match entry(all, system) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(ConnectorError::config(
            system,
            format!("credentials entry {system:?} must be an object"),
        )),
        None => Err(missing()),
    }
}

fn settings_of(settings: &Map<String, Value>, system: &str) -> Value {
    entry(settings, system).cloned().unwrap_or(Value::Null)
}

/// The marketplace client of a connection. `Noop` has no client (the no-op flows need none).
pub fn marketplace(
    system: Marketplace,
    settings: &Map<String, Value>,
    creds: Option<&Credentials>,
    gate: Option<Arc<dyn CallGate>>,
) -> Result<Option<Arc<dyn connectors::Marketplace>>, ConnectorError> {
    Ok(match system {
        Marketplace::Cdon => {
            let c = credentials_of(creds, "cdon")?;
            let client =
                connectors::cdon::CdonClient::from_json(settings_of(settings, "cdon"), c, gate)?;
            Some(Arc::new(client))
        }
        Marketplace::Celro => {
            let c = credentials_of(creds, "celro")?;
            let client =
                connectors::celro::CelroClient::from_json(settings_of(settings, "celro"), c, gate)?;
            Some(Arc::new(client))
        }
        Marketplace::Noop => None,
    })
}

/// The ERP client of a connection. `Noop` has no client. WinMentor exchanges files and takes
/// no credentials (its entry may be absent).
pub fn erp(
    system: Erp,
    settings: &Map<String, Value>,
    creds: Option<&Credentials>,
    gate: Option<Arc<dyn CallGate>>,
) -> Result<Option<Arc<dyn connectors::Erp>>, ConnectorError> {
    use connectors::{charisma, lexoffice, smartbill, winmentor};
    Ok(match system {
        Erp::SmartBill => {
            let c = credentials_of(creds, "smartbill")?;
            let config = settings_of(settings, "smartbill");
            Some(Arc::new(smartbill::SmartBillClient::from_json(
                config, c, gate,
            )?))
        }
        Erp::Lexoffice => {
            let c = credentials_of(creds, "lexoffice")?;
            let config = settings_of(settings, "lexoffice");
            Some(Arc::new(lexoffice::LexofficeClient::from_json(
                config, c, gate,
            )?))
        }
        Erp::WinMentor => {
            let empty = Map::new();
            let c = match creds
                .map(Credentials::expose)
                .and_then(|m| entry(m, "winmentor"))
            {
                Some(Value::Object(m)) => m,
                _ => &empty,
            };
            let config = settings_of(settings, "winmentor");
            Some(Arc::new(winmentor::WinMentorClient::from_json(
                config, c, gate,
            )?))
        }
        Erp::Charisma => {
            let c = credentials_of(creds, "charisma")?;
            let config = settings_of(settings, "charisma");
            Some(Arc::new(charisma::CharismaClient::from_json(
                config, c, gate,
            )?))
        }
        Erp::Noop => None,
    })
}

/// The courier client of a connection. `Noop` has no client.
pub fn courier(
    system: Courier,
    settings: &Map<String, Value>,
    creds: Option<&Credentials>,
    gate: Option<Arc<dyn CallGate>>,
) -> Result<Option<Arc<dyn connectors::Courier>>, ConnectorError> {
    Ok(match system {
        Courier::Dhl => {
            let c = credentials_of(creds, "dhl")?;
            let client =
                connectors::dhl::DhlClient::from_json(settings_of(settings, "dhl"), c, gate)?;
            Some(Arc::new(client))
        }
        Courier::Noop => None,
    })
}

/// What the queue does with a connector failure: retry (after the API's hint), or the dead set
/// with the reason. **In-doubt is never retried here**: a flow that can resolve it (a lookup by
/// reference, the order's state) does so before returning; one that reaches the queue needs a
/// person, and the dead job carries the reason for the replay.
impl From<ConnectorError> for JobError {
    fn from(e: ConnectorError) -> Self {
        match e.class() {
            ErrorClass::Retryable => match e.retry_after() {
                Some(after) => JobError::retry_after(e, after),
                None => JobError::retryable(e),
            },
            ErrorClass::Permanent
            | ErrorClass::Auth
            | ErrorClass::InDoubt
            | ErrorClass::Unsupported
            | ErrorClass::Config => JobError::permanent(e),
        }
    }
}
