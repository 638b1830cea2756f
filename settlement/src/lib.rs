//! crowdgate-settlement: the durable worker that turns accepted investments
//! into ledger postings.
//!
//! core publishes every accepted investment to the round's settlement stream
//! in the same atomic script that records it. Any number of workers read that
//! stream in one consumer group; each investment is posted and acked by one
//! idempotent script, so a crash at any point loses nothing and doubles
//! nothing.
//!
//! # Layout
//! - [`ledger`]: balances, escrow, shares and journal, and the settle script
//!   (`scripts/settle.lua`, headed by its keys, arguments and invariants).
//! - [`worker`]: the [`worker::SettlementWorker`] loop: own pending first, then
//!   reclaim abandoned entries, then new ones; backoff on Redis outages;
//!   poison entries to the dead-letter stream.
//! - [`reconcile`]: checks every invariant and reports violations.
//! - [`accounts`]: investor accounts from CSV, imported all or nothing.

pub mod accounts;
pub mod ledger;
pub mod reconcile;
pub mod worker;

pub use ledger::{Ledger, Posting};
pub use worker::{SettlementWorker, WorkerSettings};
