//! crowdgate-settlement: the durable worker that turns accepted investments
//! into ledger postings.
//!
//! core publishes every accepted investment to its round's settlement stream
//! in the same atomic script that records it. Any number of workers read that
//! stream in one consumer group; each investment is posted and acked by one
//! idempotent script, so a crash at any point loses nothing and doubles
//! nothing.
//!
//! The stream, the consumer group, the ledger's keys and the settle script
//! (`settle.lua`: post and ack in one step) are `crowdgate-store`'s
//! ([`crowdgate_store::Settlement`]); this crate decides what to read when,
//! what to retry, what to give up on, and what the numbers must satisfy.
//!
//! # Layout
//! - [`worker`]: the [`worker::SettlementWorker`] loop: own pending first, then
//!   reclaim abandoned entries, then new ones; backoff on Redis outages;
//!   poison entries to the dead-letter stream; idle consumers forgotten.
//! - [`every_round`]: one worker per round of the deployment, started as
//!   rounds are created, so one process settles them all.
//! - [`reconcile`]: checks the invariants and reports only proven
//!   violations: in full on a still round, the every-instant ones on a
//!   moving round.
//! - [`accounts`]: investor accounts from CSV, imported all or nothing; an
//!   account is the investor's, and every round's settlement debits it.

pub mod accounts;
pub mod every_round;
pub mod reconcile;
pub mod worker;

pub use crowdgate_store::Posting;
pub use worker::{SettlementWorker, WorkerSettings};
