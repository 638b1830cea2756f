//! JSON bodies exchanged between browsers/apps, the Wasm components and core.
//!
//! Keeping them in one crate means the edge and core cannot drift apart on a
//! field name: core answers with these types and the components read its
//! replies as these types (never as untyped JSON). Money is always integer
//! pence (`*_pence`, `i64`). The error body is [`ApiError`] (in
//! [`crate::error`]).

use serde::{Deserialize, Serialize};

pub use crate::error::{ApiError, ErrorCode};
pub use crate::routes::EDGE_TOKEN_HEADER;

/// Largest request body the investor-facing API and core accept (64 KiB):
/// an investment is a few dozen bytes, so anything near this is a mistake
/// or an attack, answered with 413 before it is read further.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where a round is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomPhase {
    /// Not yet open: visitors may join, nobody is admitted.
    Scheduled,
    /// Admitting visitors and taking investments.
    Open,
    /// Ops paused admission; passes already handed out stay valid.
    Paused,
    /// The cap is reached; reopens if amounts are released.
    Full,
    /// No more investments.
    Closed,
}

impl RoomPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomPhase::Scheduled => "scheduled",
            RoomPhase::Open => "open",
            RoomPhase::Paused => "paused",
            RoomPhase::Full => "full",
            RoomPhase::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<RoomPhase> {
        Some(match text {
            "scheduled" => RoomPhase::Scheduled,
            "open" => RoomPhase::Open,
            "paused" => RoomPhase::Paused,
            "full" => RoomPhase::Full,
            "closed" => RoomPhase::Closed,
            _ => return None,
        })
    }
}

/// The small shared state the edge caches (about a second) to answer status
/// polls without asking core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    pub round: String,
    pub phase: RoomPhase,
    /// Every queue number `<=` this is admitted.
    pub admitted_up_to: u64,
    /// Queue numbers handed out so far (the last one issued).
    pub issued: u64,
    /// Admission rate ops set, people per minute.
    pub rate_per_minute: u64,
    pub raised_pence: i64,
    /// Investors with at least one accepted investment.
    pub investor_count: u64,
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    /// Lifetime of a pass handed out now.
    pub pass_ttl_seconds: u64,
    /// When a scheduled round opens (Unix ms); 0 when not scheduled.
    #[serde(default)]
    pub opens_at_ms: u64,
    /// How many joined before opening (their numbers are 1..=this); before
    /// the draw, how many have registered so far.
    #[serde(default)]
    pub prequeue_size: u64,
    /// Unix milliseconds when core produced this state.
    pub as_of_ms: u64,
}

/// core's answer to a join: a fresh place at the back of the queue, or a
/// place in the pre-queue (`queue_number` is `None`) before opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePlace {
    pub ticket_id: String,
    pub queue_number: Option<u64>,
}

/// core's answer to a pre-queue ticket asking which number it drew
/// (`GET /v1/rounds/{round}/prequeue/{ticket}`, once the round opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrequeueNumber {
    pub ticket_id: String,
    pub queue_number: u64,
}

/// core's answer to `GET /healthz` when Redis answers (otherwise 503
/// `unhealthy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The round this core serves.
    pub round: String,
}

/// Public progress of a round (`GET /api/round` on the waiting room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundProgress {
    pub round: String,
    pub phase: RoomPhase,
    pub raised_pence: i64,
    pub cap_pence: i64,
    /// What the round can still take: `cap - raised`, never negative.
    pub remaining_pence: i64,
    pub investor_count: u64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    pub opens_at_ms: u64,
}

impl RoundProgress {
    /// The public part of `room`.
    pub fn of(room: &RoomState) -> RoundProgress {
        RoundProgress {
            round: room.round.clone(),
            phase: room.phase,
            raised_pence: room.raised_pence,
            cap_pence: room.cap_pence,
            remaining_pence: (room.cap_pence - room.raised_pence).max(0),
            investor_count: room.investor_count,
            min_investment_pence: room.min_investment_pence,
            max_investment_pence: room.max_investment_pence,
            share_price_pence: room.share_price_pence,
            opens_at_ms: room.opens_at_ms,
        }
    }
}

/// What a visitor's poll returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub round: String,
    /// `waiting`, `admitted`, or the room phase when it overrides
    /// (`scheduled`, `paused`, `full`, `closed`).
    pub state: VisitorState,
    /// `None` while in the pre-queue (drawn at opening).
    pub queue_number: Option<u64>,
    /// 1-based position among those not yet admitted; 0 once admitted.
    /// Absent in the pre-queue: nobody has a position until the draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// Absent in the pre-queue, for the same reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people_ahead: Option<u64>,
    /// In the pre-queue: how many people have registered so far. Their
    /// order is drawn at random when the round opens, so arriving earlier
    /// or refreshing changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<u64>,
    /// Seconds until admission at the current rate; `None` when unknown.
    pub eta_seconds: Option<u64>,
    /// Ask again after this long.
    pub poll_after_ms: u64,
    /// Seconds until a scheduled round opens (pre-queue countdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_in_seconds: Option<u64>,
    /// A re-issued ticket (a pre-queue ticket that just learned its number):
    /// apps should store it in place of the old one. Browsers get it as a
    /// cookie too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    pub raised_pence: i64,
    pub cap_pence: i64,
}

/// A visitor's state as shown on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitorState {
    /// Joined before opening: waiting for the opening lottery.
    Prequeue,
    Scheduled,
    Waiting,
    Admitted,
    Paused,
    Full,
    Closed,
}

/// Answer to join (and to a rejoin with a valid ticket: the same ticket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub ticket: String,
    pub status: Status,
}

/// Answer to a pass request once admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassGrant {
    pub pass: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Lifecycle of one investment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvestmentStatus {
    /// Recorded against the cap, waiting for settlement.
    Accepted,
    /// Debited, escrow credited, shares allocated.
    Settled,
    /// Settlement refused (e.g. insufficient funds); amount released.
    Failed,
}

/// An investment as core reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investment {
    pub investment_id: String,
    pub round: String,
    pub investor_id: String,
    pub amount_pence: i64,
    pub shares: i64,
    pub status: InvestmentStatus,
    pub accepted_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}
