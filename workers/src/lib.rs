//! `workers`: the library behind the `megzo` binary.
//!
//! Layout:
//! - [`db`]: Postgres, the system of record (tenants, runs, dead jobs, orders, cursors);
//! - [`queue`]: the durable Redis queue and the apalis backend over it;
//! - [`runtime`]: an apalis worker (Monitor + WorkerBuilder) over the queue, with any handler;
//! - [`process`]: what runs beside it in a worker process: run history, dead-job sync to
//!   Postgres, housekeeping, `/healthz` `/readyz` `/metrics`;
//! - [`flows`]: the six flow handlers (today: the built-in no-op connector);
//! - [`heartbeat`]: the idempotent heartbeat enqueuer and scheduler loop;
//! - [`wakeup`]: the wake-up URLs: a marketplace callback (or a signed lexoffice webhook)
//!   turned into an immediate, debounced job;
//! - [`freshness`]: time since each flow's last success per tenant (gauges, `tenants status`);
//! - [`lock`]: the Redis order-lock with fencing tokens;
//! - [`mapping`]: the active field-mapping rule sets, compiled and reloaded live per job;
//! - [`rates`]: the exchange-rate feed (ECB/BNR/CSV imports into Postgres, cached per process);
//! - [`ratelimit`]: fleet-wide limits of external APIs per account (GCRA rate limiter and
//!   semaphore in Redis) and each system's contract limits;
//! - [`gate`]: the connectors' `CallGate` over those limits (what every external call passes);
//! - [`connect`]: connector clients from a connection's settings and credentials, the
//!   capability matrix, and connector failures mapped to queue outcomes;
//! - [`sandbox`]: every fake external system on loopback (`megzo sandbox`);
//! - [`vault`]: encryption at rest of connection credentials (keys from
//!   `MEGZO_CREDENTIAL_KEYS`, ChaCha20-Poly1305 bound to the connection id);
//! - [`config`]: layered typed configuration;
//! - [`telemetry`]: JSON logs and Prometheus metrics.
//!
//! [`cli`] is the `megzo` command line (the binary is `src/main.rs` over it; the fault tests
//! build the same entry point into their own worker binary); it is the only place that uses
//! `anyhow`-style error reporting for the user, beside the thin process-assembly functions.

pub mod cli;
pub mod cli_console;
pub mod config;
pub mod connect;
pub mod console;
pub mod db;
pub mod demo;
pub mod flows;
pub mod freshness;
pub mod gate;
pub mod gdpr;
pub mod heartbeat;
pub mod leader;
pub mod lock;
pub mod mapping;
pub mod process;
pub mod queue;
pub mod ratelimit;
pub mod rates;
pub mod runtime;
pub mod sandbox;
pub mod support;
pub mod telemetry;
pub mod vault;
pub mod wakeup;
