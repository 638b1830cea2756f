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
    /// The round's name as investors know it ("Demo Bank plc — community
    /// round"); the id when the round has none.
    #[serde(default)]
    pub name: String,
    /// Whether joining needs a signed-in investor (investing always does).
    #[serde(default)]
    pub identity: IdentityMode,
    pub phase: RoomPhase,
    /// Every queue number `<=` this is admitted.
    pub admitted_up_to: u64,
    /// Queue numbers handed out so far (the last one issued).
    pub issued: u64,
    /// Admission rate ops set, people per minute.
    pub rate_per_minute: u64,
    /// The admission rate achieved while people wait, smoothed over about a
    /// minute: people per minute × 1000. Below `rate_per_minute` when the
    /// room is full (`max_active`) holds admission back. Measured by
    /// core's admission step; 0 from a core that does not measure it.
    #[serde(default)]
    pub achieved_rate_milli_per_minute: u64,
    /// How many seconds of measurement the achieved rate rests on since the
    /// round last opened or resumed, or ops changed its rate (0: none yet).
    #[serde(default)]
    pub achieved_rate_history_seconds: u64,
    /// When ops last changed `rate_per_minute` (Unix ms; 0 = never).
    #[serde(default)]
    pub rate_changed_at_ms: u64,
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
    /// People admitted whose turn is still under way: a live pass not yet
    /// used up, or a reservation inside its claim window (what counts
    /// against `max_active`). The sell-out forecast counts them as coming
    /// before anyone waiting. 0 from a core that does not say.
    #[serde(default)]
    pub deciding: u64,
    /// Every amount ever accepted, and what failed settlements gave back
    /// of it (`raised` = accepted − released). Their ratio is the share of
    /// an accepted amount that comes back: the sell-out forecast expects
    /// that share of what is raised to return. 0 from a core that does
    /// not say.
    #[serde(default)]
    pub accepted_pence: i64,
    #[serde(default)]
    pub released_pence: i64,
    /// The pre-queue draw as published: its commitment from the start, and
    /// once the pre-queue is sealed what makes every number computable and
    /// checkable ([`crate::draw`]). `None` from a round seeded without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<PublicDraw>,
    /// Unix milliseconds when core produced this state.
    pub as_of_ms: u64,
}

/// The pre-queue draw, as anyone may see it (`GET /api/draw`, and in the
/// room state the edge caches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicDraw {
    /// SHA-256 of the draw's secret (hex): fixed when the round was set up,
    /// before anyone could join.
    pub commitment: String,
    /// Published once the pre-queue is sealed (the round opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealed: Option<DrawReveal>,
}

/// `GET /api/draw`: the published draw, and the asking visitor's own
/// entry and number when they present a pre-queue ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawStatus {
    #[serde(flatten)]
    pub draw: PublicDraw,
    /// The visitor's pre-queue entry (join order), from their ticket.
    pub your_entry: Option<u64>,
    /// The number that entry drew, once the draw is revealed.
    pub your_number: Option<u64>,
}

/// What the seal publishes: enough to recompute every pre-queue number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawReveal {
    /// The secret behind the commitment (64 hex digits).
    pub secret: String,
    /// The hash chain over the pre-queue's ticket ids in entry order.
    pub entries_digest: String,
    /// HMAC-SHA256(secret, "crowdgate-draw-key:" ‖ entries digest), hex.
    pub key: String,
    /// How many entries the pre-queue held when sealed (its numbers are
    /// 1..=size).
    pub size: u64,
}

impl DrawReveal {
    /// The number pre-queue entry `entry` drew under this reveal's key.
    pub fn number(&self, entry: u64) -> Result<u64, crate::draw::DrawError> {
        let key = crate::draw::DrawKey::from_hex(&self.key)?;
        crate::draw::number(&key, self.size, entry)
    }
}

/// Who may join a round's queue. Investing always needs a signed-in
/// investor; an anonymous room is for waiting rooms in front of pages that
/// take no investment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Only investors signed in by the platform queue: one place each.
    #[default]
    Required,
    /// Anyone may queue; a place per ticket, and no investments.
    Anonymous,
}

impl IdentityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::Required => "required",
            IdentityMode::Anonymous => "anonymous",
        }
    }

    pub fn parse(text: &str) -> Option<IdentityMode> {
        match text {
            "required" => Some(IdentityMode::Required),
            "anonymous" => Some(IdentityMode::Anonymous),
            _ => None,
        }
    }
}

/// The edge's request for a place (`POST /v1/rounds/{round}/queue`): the
/// verified investor, or none in an anonymous room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investor_id: Option<String>,
    /// The investor's own maximum from this sign-in, pence: the latest
    /// sign-in's limit is the one their investments are held to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_investment_pence: Option<i64>,
}

impl PlaceRequest {
    /// Reads the body core receives: empty (an anonymous join) or one JSON
    /// object whose `investor_id`, when present, is a valid investor id.
    pub fn parse(body: &[u8]) -> Result<PlaceRequest, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(PlaceRequest::default());
        }
        let object = crate::json::parse_object(body)?;
        let investor_id = match object.get("investor_id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(id)) => {
                crate::invest::validate_investor_id(id)?;
                Some(id.clone())
            }
            Some(_) => {
                return Err(ApiError::for_field(
                    ErrorCode::InvalidField,
                    "investor_id",
                    "investor_id must be a string",
                ));
            }
        };
        let max_investment_pence = match object.get("max_investment_pence") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n))
                if n.as_i64()
                    .is_some_and(|p| (0..=crate::invest::MAX_AMOUNT_PENCE).contains(&p)) =>
            {
                n.as_i64()
            }
            Some(_) => {
                return Err(ApiError::for_field(
                    ErrorCode::InvalidField,
                    "max_investment_pence",
                    "max_investment_pence must be a whole number of pence, 0 or more",
                ));
            }
        };
        Ok(PlaceRequest {
            investor_id,
            max_investment_pence,
        })
    }
}

/// core's answer to a join: a fresh place at the back of the queue, or a
/// place in the pre-queue (`queue_number` is `None`) before opening; for an
/// investor who already holds a live place, that same place (`rejoined`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePlace {
    pub ticket_id: String,
    pub queue_number: Option<u64>,
    /// A pre-queue place's entry (join order, 1..): its number is drawn
    /// from it at opening ([`crate::draw`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prequeue_entry: Option<u64>,
    /// The investor already held this place (another browser, device or
    /// app): same ticket id, same number or pre-queue entry.
    #[serde(default)]
    pub rejoined: bool,
}

impl RoomState {
    /// The name to show people: the round's name, or its id when unnamed.
    pub fn display_name(&self) -> &str {
        if self.name.trim().is_empty() {
            &self.round
        } else {
            &self.name
        }
    }
}

/// core's answer to a pre-queue ticket asking which number it drew
/// (`GET /v1/rounds/{round}/prequeue/{ticket}`, once the round opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrequeueNumber {
    pub ticket_id: String,
    pub queue_number: u64,
}

/// core's answer to `GET /v1/rounds`: every round it runs, live or
/// archived, sorted. The edge serves `/r/<round>/` only for these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundIds {
    pub rounds: Vec<String>,
}

/// core's answer to `GET /healthz` when Redis answers (otherwise 503
/// `unhealthy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The round of core's config file (it serves every round of the
    /// deployment: `GET /ops/v1/rounds`).
    pub round: String,
}

/// Public progress of a round (`GET /api/round` on the waiting room).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundProgress {
    pub round: String,
    /// The round's name, for people.
    pub name: String,
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
            name: room.display_name().to_string(),
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
    /// The round's name, for people.
    #[serde(default)]
    pub round_name: String,
    /// The signed-in investor holding this place (absent in an anonymous
    /// room): the page says "Investing as …".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub investor_name: Option<String>,
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
    /// Seconds until admission, estimated from the rate admission has
    /// actually achieved over about the last minute (the configured rate
    /// until there is half a minute of it); `None` when unknown (paused, or
    /// nobody is being admitted). 0 once admitted.
    pub eta_seconds: Option<u64>,
    /// Why `eta_seconds` may be well off; `None` when it rests on a steady,
    /// measured rate. Absent from an older edge: read as `None`.
    #[serde(default)]
    pub eta_uncertain: Option<EtaUncertainty>,
    /// Present when the round will probably sell out before this visitor's
    /// turn: what is left under the cap is worth fewer investments (at the
    /// average so far) than the people ahead are expected to make
    /// ([`crate::queue::sell_out_forecast`]). Only for a visitor waiting
    /// (or paused) with a number; absent otherwise, and from an older edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sell_out: Option<SellOutForecast>,
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

/// The round will probably sell out before this visitor's turn
/// ([`Status::sell_out`]): the figures behind it, for a sentence such as
/// "about 120 investments' worth left; 4,000 people ahead of you".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellOutForecast {
    /// What the round can still take, pence (cap − raised).
    pub remaining_pence: i64,
    /// The average accepted investment so far, pence: raised ÷ investors
    /// (what one admitted investor has taken, all their investments
    /// together).
    pub average_investment_pence: i64,
    /// About how many investments' worth is left: remaining ÷ average,
    /// rounded down.
    pub investments_left: u64,
    /// People ahead of this visitor in the queue.
    pub people_ahead: u64,
}

/// Answer to leaving the queue (`POST /api/leave` at the edge, core's
/// `POST /v1/rounds/{round}/queue/leave`): the place is given up for good;
/// leaving again answers the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    /// Always `true`.
    pub left: bool,
    /// The number given up; `null` for a place in the pre-queue left
    /// before the draw.
    pub queue_number: Option<u64>,
}

/// Answer to a sign-in asked for as JSON (`GET|POST /signin` with
/// `Accept: application/json`): who the identity token names. The token is
/// kept in the `cg_identity` cookie as for a browser's sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The investor the token names (its `sub`).
    pub investor_id: String,
    /// Their name, when the platform gave one.
    pub investor_name: Option<String>,
    /// When the sign-in ends (the token's `exp`), Unix seconds.
    pub expires_at: u64,
}

/// Why a wait estimate ([`Status::eta_seconds`]) may be well off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtaUncertainty {
    /// Admission has run for under half a minute since the round opened or
    /// resumed: the estimate uses the configured rate, not a measured one.
    LittleHistory,
    /// Ops changed the admission rate under half a minute ago: the
    /// estimate uses the new rate until it is measured.
    RateChanged,
    /// Admission runs far below the configured rate because the room is
    /// full (`max_active`): people are let in only as others finish, so the
    /// wait depends on how fast they do.
    RoomFull,
    /// Admission is paused (or its rate set to 0): no estimate until it
    /// resumes.
    Paused,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_request_is_empty_or_names_a_valid_investor() {
        for empty in ["", " ", "\r\n", "{}", r#"{"investor_id":null}"#] {
            assert_eq!(
                PlaceRequest::parse(empty.as_bytes()).unwrap(),
                PlaceRequest::default(),
                "{empty:?}"
            );
        }
        assert_eq!(
            PlaceRequest::parse(br#"{"investor_id":"ann@example.com"}"#)
                .unwrap()
                .investor_id
                .as_deref(),
            Some("ann@example.com")
        );
        // What the edge sends is what core reads.
        let request = PlaceRequest {
            investor_id: Some("inv-1".into()),
            max_investment_pence: Some(50_000),
        };
        let json = serde_json::to_vec(&request).unwrap();
        assert_eq!(PlaceRequest::parse(&json).unwrap(), request);
        assert_eq!(
            serde_json::to_string(&PlaceRequest::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_place_requests_limit_is_a_whole_number_of_pence_from_zero() {
        for (body, field) in [
            (
                r#"{"investor_id":"a","max_investment_pence":-1}"#,
                "max_investment_pence",
            ),
            (
                r#"{"investor_id":"a","max_investment_pence":1.5}"#,
                "max_investment_pence",
            ),
            (
                r#"{"investor_id":"a","max_investment_pence":"5"}"#,
                "max_investment_pence",
            ),
        ] {
            let err = PlaceRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{body}");
        }
        let zero = PlaceRequest::parse(br#"{"investor_id":"a","max_investment_pence":0}"#);
        assert_eq!(zero.unwrap().max_investment_pence, Some(0));
    }

    #[test]
    fn a_bad_place_request_is_refused_naming_the_field() {
        for body in [
            r#"{"investor_id":""}"#,
            r#"{"investor_id":"ann smith"}"#,
            r#"{"investor_id":"a:b*{c}"}"#,
            r#"{"investor_id":7}"#,
        ] {
            let err = PlaceRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(
                (err.http_status(), err.field.as_deref()),
                (422, Some("investor_id")),
                "{body}"
            );
        }
        // Two investors in one body: refused, never guessed.
        let err = PlaceRequest::parse(br#"{"investor_id":"ann","investor_id":"bob"}"#).unwrap_err();
        assert_eq!(
            (err.error, err.http_status(), err.field.as_deref()),
            (ErrorCode::DuplicateField, 400, Some("investor_id"))
        );
        for body in ["{", "[]", "\"ann\"", "null"] {
            let err = PlaceRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.error, ErrorCode::MalformedJson, "{body}");
        }
    }

    #[test]
    fn identity_modes_by_name() {
        for mode in [IdentityMode::Required, IdentityMode::Anonymous] {
            assert_eq!(IdentityMode::parse(mode.as_str()), Some(mode));
            assert_eq!(
                serde_json::to_string(&mode).unwrap(),
                format!("\"{}\"", mode.as_str())
            );
        }
        assert_eq!(IdentityMode::default(), IdentityMode::Required);
        assert_eq!(IdentityMode::parse("Anonymous"), None);
        assert_eq!(IdentityMode::parse(""), None);
    }

    fn room_json(extra: &str) -> String {
        format!(
            r#"{{"round":"r1",{extra}"phase":"open","admitted_up_to":3,"issued":5,
            "rate_per_minute":60,"raised_pence":0,"investor_count":0,"cap_pence":100,
            "min_investment_pence":1,"max_investment_pence":100,"share_price_pence":1,
            "pass_ttl_seconds":60,"opens_at_ms":0,"prequeue_size":0,"as_of_ms":0}}"#
        )
    }

    #[test]
    fn a_room_state_from_before_names_and_identity_needs_sign_in() {
        // An edge reading a cached state written by an older core.
        let old: RoomState = serde_json::from_str(&room_json("")).unwrap();
        assert_eq!(
            (old.name.as_str(), old.identity, old.display_name()),
            ("", IdentityMode::Required, "r1")
        );
        let new: RoomState = serde_json::from_str(&room_json(
            r#""name":"Demo Bank plc","identity":"anonymous","#,
        ))
        .unwrap();
        assert_eq!(
            (new.display_name(), new.identity),
            ("Demo Bank plc", IdentityMode::Anonymous)
        );
        assert_eq!(
            serde_json::from_str::<RoomState>(&serde_json::to_string(&new).unwrap()).unwrap(),
            new
        );
        assert_eq!(RoundProgress::of(&old).name, "r1");
        // ... and no measured admission rate: the configured one is used.
        assert_eq!(
            (
                old.achieved_rate_milli_per_minute,
                old.achieved_rate_history_seconds,
                old.rate_changed_at_ms
            ),
            (0, 0, 0)
        );
        assert!(serde_json::from_str::<RoomState>(&room_json(r#""identity":"maybe","#)).is_err());
    }

    #[test]
    fn a_status_says_why_its_estimate_is_uncertain_and_reads_older_ones() {
        let json = r#"{"round":"r1","state":"waiting","queue_number":9,"position":4,
            "people_ahead":3,"eta_seconds":240,"poll_after_ms":5000,"raised_pence":0,
            "cap_pence":100}"#;
        let old: Status = serde_json::from_str(json).unwrap();
        assert_eq!((old.eta_seconds, old.eta_uncertain), (Some(240), None));
        let mut new = old.clone();
        new.eta_uncertain = Some(EtaUncertainty::RoomFull);
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains(r#""eta_uncertain":"room_full""#), "{text}");
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), new);
        let text = serde_json::to_string(&old).unwrap();
        assert!(text.contains(r#""eta_uncertain":null"#), "{text}");
        for (doubt, word) in [
            (EtaUncertainty::LittleHistory, "little_history"),
            (EtaUncertainty::RateChanged, "rate_changed"),
            (EtaUncertainty::RoomFull, "room_full"),
            (EtaUncertainty::Paused, "paused"),
        ] {
            assert_eq!(
                serde_json::to_string(&doubt).unwrap(),
                format!("\"{word}\"")
            );
        }
    }

    #[test]
    fn a_sell_out_forecast_is_in_the_status_only_when_made() {
        let json = r#"{"round":"r1","state":"waiting","queue_number":9,"position":4,
            "people_ahead":3,"eta_seconds":240,"poll_after_ms":5000,"raised_pence":0,
            "cap_pence":100}"#;
        // From an older edge: none.
        let mut status: Status = serde_json::from_str(json).unwrap();
        assert_eq!(status.sell_out, None);
        let text = serde_json::to_string(&status).unwrap();
        assert!(!text.contains("sell_out"), "{text}");
        status.sell_out = Some(SellOutForecast {
            remaining_pence: 6_000_000,
            average_investment_pence: 50_000,
            investments_left: 120,
            people_ahead: 4_000,
        });
        let text = serde_json::to_string(&status).unwrap();
        assert!(
            text.contains(
                r#""sell_out":{"remaining_pence":6000000,"average_investment_pence":50000,"investments_left":120,"people_ahead":4000}"#
            ),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), status);
    }

    #[test]
    fn leaving_answers_the_number_given_up() {
        let left = Left {
            left: true,
            queue_number: Some(42),
        };
        assert_eq!(
            serde_json::to_string(&left).unwrap(),
            r#"{"left":true,"queue_number":42}"#
        );
        let prequeue: Left = serde_json::from_str(r#"{"left":true,"queue_number":null}"#).unwrap();
        assert_eq!(prequeue.queue_number, None);
    }

    #[test]
    fn a_queue_place_is_new_unless_it_says_rejoined() {
        let place: QueuePlace =
            serde_json::from_str(r#"{"ticket_id":"t1","queue_number":4}"#).unwrap();
        assert!(!place.rejoined);
        let place: QueuePlace =
            serde_json::from_str(r#"{"ticket_id":"t1","queue_number":null,"rejoined":true}"#)
                .unwrap();
        assert_eq!((place.queue_number, place.rejoined), (None, true));
    }
}
