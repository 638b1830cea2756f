//! The `/v1` API the edge components call, one module per resource. Each
//! handler checks the round and the caller's credentials ([`crate::auth`]),
//! asks the store, and turns its verdict into one HTTP answer.
//!
//! - [`rounds`]: the ids of every round, for the edge's list.
//! - [`queue`]: queue places, leaving the queue, and the room state.
//! - [`passes`]: pass claims (once per ticket) and pre-queue numbers.
//! - [`investments`]: the invest endpoint and an investment's status.

pub mod investments;
pub mod passes;
pub mod queue;
pub mod rounds;
