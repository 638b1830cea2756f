//! Crowdgate's shared language: the signed tokens, the JSON API types and the
//! queue arithmetic that both the Wasm components (wasm32-wasip2) and the
//! native services use.
//!
//! Everything here is pure: no I/O, no clocks, no randomness. Callers pass the
//! current time in, so the same code is unit-tested on the host and runs
//! unchanged inside a Spin component.
//!
//! # Layout
//! - [`token`]: HMAC-SHA256 signed tokens with key ids for rotation
//!   ([`Keyring`]), and the two kinds we sign: [`Ticket`] and [`Pass`].
//! - [`api`]: request and response bodies shared by edge, waiting room and core,
//!   including the JSON error shape ([`ApiError`]).
//! - [`json`]: strict JSON objects (a repeated key is refused, not guessed).
//! - [`invest`]: parsing and validating an investment request, naming the field
//!   at fault.
//! - [`queue`]: position, people ahead, ETA and poll interval from a ticket and
//!   the room state.
//! - [`keys`]: the Redis key layout of a round, one hash-tag slot per round.

pub mod api;
pub mod invest;
pub mod json;
pub mod keys;
pub mod queue;
pub mod token;

pub use api::{ApiError, RoomPhase, RoomState, Status};
pub use token::{Keyring, Pass, Ticket, TokenError};
