//! The courier trait: mint an AWB with its label, find it again by our reference, track it.
//!
//! **No courier API here has an idempotency key**, so [`Courier::create_shipment`] is the
//! dangerous call: an ambiguous failure is [`ConnectorError::InDoubt`](crate::ConnectorError)
//! and the flow must call [`Courier::find_by_reference`] before any new create. The reference
//! is deterministic per order, so the lookup finds what the lost call made.

use async_trait::async_trait;
use canonical::{Courier as System, Shipment, ShipmentRequest, TrackingStatus};
use chrono::{DateTime, Utc};

use crate::Capabilities;
use crate::error::Result;

#[async_trait]
pub trait Courier: Send + Sync + std::fmt::Debug {
    fn system(&self) -> System;

    fn capabilities(&self) -> Capabilities;

    /// Creates the shipment: AWB and label PDF. Never retried after an ambiguous outcome.
    async fn create_shipment(&self, request: &ShipmentRequest) -> Result<Shipment>;

    /// The shipment created with `reference` around `shipped_around` (the courier searches a
    /// date window), if any. The recovery path after an in-doubt create.
    async fn find_by_reference(
        &self,
        reference: &str,
        shipped_around: DateTime<Utc>,
    ) -> Result<Option<Shipment>>;

    /// Where the parcel is.
    async fn tracking(&self, awb: &str) -> Result<TrackingStatus>;
}
