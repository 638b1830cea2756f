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
//! - [`consumers`]: forgets consumers that hold nothing and have been idle
//!   long (`scripts/forget_consumer.lua`: check and delete in one step).
//! - [`reconcile`]: checks the invariants and reports only proven
//!   violations: in full on a still round, the every-instant ones on a
//!   moving round.
//! - [`accounts`]: investor accounts from CSV, imported all or nothing.

pub mod accounts;
pub mod consumers;
pub mod ledger;
pub mod reconcile;
pub mod worker;

pub use ledger::{Ledger, Posting};
pub use worker::{SettlementWorker, WorkerSettings};
