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
//! - [`error`]: every error code the system emits ([`ErrorCode`]) with its
//!   HTTP status, and the JSON error shape ([`ApiError`]).
//! - [`api`]: request and response bodies shared by edge, waiting room and
//!   core: every reply core sends has a type here.
//! - [`routes`]: core's `/v1` routes, the path builders the edge calls them
//!   by ([`CorePath`]), and the headers of the edge↔core contract.
//! - [`request`]: bearer credentials and the JSON content type, checked
//!   alike by the edge and core.
//! - [`attempt`]: every check of an investment attempt, in the one order
//!   the edge, the no-JavaScript form and core all apply.
//! - [`hex`]: lowercase hex, the one encoding of bytes in ids and digests.
//! - [`investment_id`]: [`InvestmentId`], derived from (round, ticket,
//!   `Idempotency-Key`) and validated by one rule on both sides.
//! - [`json`]: strict JSON objects (a repeated key is refused, not guessed).
//! - [`invest`]: parsing and validating an investment request, naming the field
//!   at fault.
//! - [`draw`]: the pre-queue draw: a keyed permutation of pre-queue entries
//!   into queue numbers, its commitment and its key, computed alike by core,
//!   every edge and anyone checking the draw.
//! - [`queue`]: position, people ahead, ETA and poll interval from a ticket and
//!   the room state.

pub mod api;
pub mod attempt;
pub mod draw;
pub mod error;
pub mod hex;
pub mod html;
pub mod invest;
pub mod investment_id;
pub mod json;
pub mod money;
pub mod queue;
pub mod request;
pub mod routes;
pub mod token;

pub use api::{RoomPhase, RoomState, Status};
pub use error::{ApiError, ErrorCode};
pub use investment_id::InvestmentId;
pub use routes::CorePath;
pub use token::{Credential, Investor, Keyring, Pass, Ticket, TokenError};
