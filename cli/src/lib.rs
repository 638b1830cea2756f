//! The `crowdgate` command: one binary that runs every native part of
//! Crowdgate (core, the settlement worker, the Wasm edge host) and `up`, which
//! runs them all together on one machine with their own Redis.
//!
//! # Layout
//! - [`local_redis`]: start and stop a durable redis-server of our own.
//! - [`local_ha`]: a primary, a replica and three Sentinels on loopback.
//! - [`supervisor`]: child processes that die with their parent.
//! - [`secrets`]: the signing keys and ops token `up` generates once and keeps.
//! - [`demo`]: the demo investor accounts `up` seeds.
//! - [`telemetry`]: structured logs and the Prometheus exporter.
//! - `commands/` (in the binary): one module per subcommand.

pub mod demo;
pub mod local_ha;
pub mod local_redis;
pub mod secrets;
pub mod supervisor;
pub mod telemetry;
