//! What a rehearsal found, as data: written as JSON (`report.json`) and
//! rendered as one self-contained HTML page ([`crate::html`]).
//!
//! Times are in *scenario* seconds (the round as it would run on the day,
//! the wall clock multiplied back by the compression factor) unless a field
//! says `wall`; rates are per scenario minute unless they say `per_second`
//! (wall: what the machine sustained). Money is integer pence.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The report's format; raised when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the program that wrote it.
    pub schema_version: u32,
    /// The `crowdgate` version that ran the rehearsal.
    pub crowdgate_version: String,
    pub scenario: ScenarioSummary,
    /// `local` (a system the rehearsal started) or the edge URL rehearsed.
    pub target: String,
    /// When the rehearsal started, RFC 3339 (UTC).
    pub started_at: String,
    /// The whole rehearsal, start to verdict, wall seconds.
    pub wall_seconds: f64,
    pub verdict: Verdict,
    pub outcome: Outcome,
    /// One sample of the round every `sample_interval_wall_ms`.
    pub timeline: Vec<Sample>,
    pub sample_interval_wall_ms: u64,
    /// Per scenario minute, from the timeline: what the first chart draws.
    pub minutes: Vec<Minute>,
    pub latency: Vec<EndpointLatency>,
    pub errors: Vec<ErrorCount>,
    pub fairness: Fairness,
    pub wait_estimate: WaitEstimate,
    pub sell_out_forecast: ForecastOutcome,
    pub invariants: Invariants,
}

/// The scenario as it ran (after flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    /// The scenario file as given, and the SHA-256 of its bytes: what was
    /// rehearsed, for the record.
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub file_sha256: String,
    pub investors: u64,
    /// Scenario seconds per wall second.
    pub compression: f64,
    pub seed: u64,
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    /// What all investors together would invest: above the cap when the
    /// round is oversubscribed.
    pub demand_pence: i64,
    /// Admission as ops set it at the start, people per scenario minute.
    pub rate_per_minute: f64,
    pub max_active: u64,
    /// Scenario seconds from the first arrival to the opening.
    pub prequeue_seconds: f64,
}

/// Pass or fail, in one line, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    /// `PASS: …` or `FAIL: …`, the line the terminal prints last.
    pub line: String,
    /// Every reason it failed (empty when it passed).
    pub problems: Vec<String>,
}

/// What happened to the round and its investors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// From opening to the round first reaching its cap (phase `full`);
    /// `None` if it never sold out.
    pub time_to_sell_out_seconds: Option<f64>,
    pub time_to_sell_out_wall_seconds: Option<f64>,
    pub raised_pence: i64,
    pub cap_pence: i64,
    /// Highest `raised` seen in any sample (must never pass the cap).
    pub max_raised_seen_pence: i64,
    pub joined: u64,
    /// Joined before opening (the pre-queue lottery).
    pub joined_before_opening: u64,
    pub admitted: u64,
    pub invested: u64,
    /// 201 answers the clients received (each a distinct investment).
    pub accepted_investments: u64,
    /// Investments core counted as accepted (must equal the clients' 201s).
    pub accepted_by_core: u64,
    pub settled: u64,
    pub failed_settlements: u64,
    pub no_shows: u64,
    pub left_queue: u64,
    /// Reached the front (or held a pass) after the round sold out.
    pub sold_out_before_their_turn: u64,
    /// Peak accepted investments per wall second (any one-second window).
    pub peak_accepted_per_second: u64,
    /// All investment API calls (answered) per wall second at their peak.
    pub peak_invest_calls_per_second: u64,
    /// HTTP requests the clients made, all endpoints.
    pub requests: u64,
    /// From the last accepted investment to the last settlement, wall s.
    pub settlement_drain_wall_seconds: Option<f64>,
}

/// The round at one instant (from core's ops status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Scenario seconds from opening (negative before it).
    pub t: f64,
    pub phase: String,
    /// Not yet admitted: queue length, plus the pre-queue before opening.
    pub waiting: u64,
    pub admitted_up_to: u64,
    pub active: u64,
    /// Admission rate ops set, people per scenario minute.
    pub rate_per_minute: f64,
    /// What admission achieved (core's measurement), per scenario minute.
    pub achieved_rate_per_minute: f64,
    pub raised_pence: i64,
    pub accepted: u64,
    pub settled: u64,
    pub failed: u64,
    /// Oldest accepted investment not yet settled, scenario seconds.
    pub settlement_lag_seconds: f64,
}

/// One scenario minute of the round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// Minute index from opening (negative before it).
    pub minute: i64,
    /// Most people waiting at any sample in the minute.
    pub waiting: u64,
    /// People admitted during the minute.
    pub admitted: u64,
    /// The ops rate at the minute's end, people per minute.
    pub rate_per_minute: f64,
}

/// Latency of one endpoint as the clients measured it, wall milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointLatency {
    /// `join`, `status`, `pass`, `invest` or `leave`; or `(client
    /// connection wait)`: how long requests waited for one of the
    /// rehearsal's connections before being sent (the load generator's
    /// own queue, not the system's).
    pub endpoint: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Answers other than success, by endpoint and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub endpoint: String,
    /// HTTP status, 0 when no answer came (connection error, timeout).
    pub status: u16,
    /// The error body's `error` code, or a word for a transport failure.
    pub code: String,
    /// A designed answer (503 retried, 409 sold out, …) rather than a fault.
    pub designed: bool,
    pub count: u64,
}

/// Is the pre-queue lottery fair, and is the queue after opening FIFO?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// Investors who joined before opening and drew a number.
    pub prequeue_drawn: u64,
    /// Spearman's rank correlation of arrival order against drawn number:
    /// near 0 when arriving early buys nothing. `None` under 10 drawn.
    pub spearman: Option<f64>,
    /// χ² of the drawn numbers' deciles within each arrival quintile
    /// (independence; `chi_square_df` degrees of freedom) and its p-value:
    /// a p-value under 0.001 says arrival order shows through.
    pub chi_square: Option<f64>,
    pub chi_square_df: u64,
    pub chi_square_p: Option<f64>,
    /// Investors who joined after opening.
    pub fifo_checked: u64,
    /// Pairs where one join was answered before the other was sent, yet the
    /// earlier got the higher number (must be 0).
    pub fifo_inversions: u64,
}

/// How good the wait estimate at join was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitEstimate {
    /// Investors with an estimate and a real wait of at least
    /// `min_wait_seconds` (shorter waits make relative errors meaningless).
    pub samples: u64,
    pub min_wait_seconds: f64,
    /// |estimate − real wait| ÷ real wait, as a percentage.
    pub median_error_percent: Option<f64>,
    pub p90_error_percent: Option<f64>,
    /// Median of (estimate − real) ÷ real: positive means estimates ran long.
    pub median_bias_percent: Option<f64>,
    /// Estimates marked uncertain (`eta_uncertain`) among the samples.
    pub marked_uncertain: u64,
    /// The same, by the reason given (`little_history`, `room_full`, …).
    #[serde(default)]
    pub uncertain_by_reason: BTreeMap<String, u64>,
}

/// How the sell-out forecast served people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastOutcome {
    /// Told "will probably sell out before your turn" at least once.
    pub told: u64,
    /// Of those, left the queue when told.
    pub told_and_left: u64,
    /// Told, yet would have got in: they invested, or (having left) someone
    /// further back in the queue invested.
    pub told_but_would_have_got_in: u64,
    /// Joined before the round sold out, waited until it did, and were
    /// never told it would.
    pub waited_until_sell_out_untold: u64,
}

/// The invariants checked at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invariants {
    /// Each check and whether it held.
    pub checks: Vec<Check>,
    /// `crowdgate reconcile`'s report, as it prints it.
    pub reconcile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// False when the run gave too little to check (then `passed` is true
    /// and `detail` says why it was not tested).
    #[serde(default = "tested")]
    pub tested: bool,
    pub detail: String,
}

fn tested() -> bool {
    true
}
