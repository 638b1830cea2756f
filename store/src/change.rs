//! Ops changes (`change.lua`): admission settings, the phase and the cap,
//! each written with its audit entry in one atomic step.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::layout::round as R;
use crate::record::parse_phase;
use crate::round::RoundStore;
use crate::scripts::{CHANGE_LUA, ScriptCall, unknown};
use crowdgate_protocol::RoomPhase;

/// The admission settings ops may change (round hash fields).
pub const ADMISSION_FIELDS: [&str; 4] = [
    R::RATE_PER_MINUTE,
    R::BATCH_INTERVAL_MS,
    R::MAX_ACTIVE,
    R::PASS_TTL_SECONDS,
];

/// The terms of a round ops may edit while it is scheduled (round hash
/// fields): once it opens they are what investors were shown and invested
/// on, and stay.
pub const TERMS_FIELDS: [&str; 7] = [
    R::NAME,
    R::IDENTITY,
    R::CAP_PENCE,
    R::MIN_INVESTMENT_PENCE,
    R::MAX_INVESTMENT_PENCE,
    R::SHARE_PRICE_PENCE,
    R::CLOSES_AT_MS,
];

/// One ops change, its values already range-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New admission settings (only the fields given; each one of
    /// [`ADMISSION_FIELDS`]).
    Admission(Vec<(&'static str, u64)>),
    /// open → paused.
    Pause,
    /// paused → open.
    Resume,
    /// scheduled → open now.
    OpenNow,
    /// scheduled → scheduled, opening at this time (Unix ms).
    OpenAt { opens_at_ms: u64 },
    /// any but closed → closed.
    Close,
    /// A new cap (must exceed raised; checked by the script).
    SetCap { cap_pence: i64 },
    /// New terms for a scheduled round (each one of [`TERMS_FIELDS`]; the
    /// combination already checked against the round's other terms).
    EditTerms(Vec<(&'static str, String)>),
}

impl Change {
    /// The script's action name, also recorded in the audit entry.
    pub fn action(&self) -> &'static str {
        match self {
            Change::Admission(_) => "admission",
            Change::Pause => "pause",
            Change::Resume => "resume",
            Change::OpenNow => "open",
            Change::OpenAt { .. } => "schedule",
            Change::Close => "close",
            Change::SetCap { .. } => "set_cap",
            Change::EditTerms(_) => "edit",
        }
    }

    /// The field, value pairs the script writes (the phase is the script's).
    fn fields(&self) -> Vec<(&'static str, String)> {
        match self {
            Change::Admission(values) => {
                for (field, _) in values {
                    assert!(
                        ADMISSION_FIELDS.contains(field),
                        "not an admission field: {field}"
                    );
                }
                values.iter().map(|(f, v)| (*f, v.to_string())).collect()
            }
            Change::OpenAt { opens_at_ms } => vec![(R::OPENS_AT_MS, opens_at_ms.to_string())],
            Change::SetCap { cap_pence } => vec![(R::CAP_PENCE, cap_pence.to_string())],
            Change::EditTerms(values) => {
                for (field, _) in values {
                    assert!(TERMS_FIELDS.contains(field), "not a term: {field}");
                }
                values.clone()
            }
            Change::Pause | Change::Resume | Change::OpenNow | Change::Close => vec![],
        }
    }
}

/// What the change script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeVerdict {
    /// Written, with the audit entry of this stream id.
    Changed { audit_id: String },
    /// Every value given already had that value: nothing was written and
    /// no audit entry was made.
    Unchanged,
    /// The action is not allowed while the round is in `phase`.
    WrongPhase { phase: RoomPhase },
    /// Opening or resuming after the round's closing time.
    PastClosing,
    /// The new opening time is not before the closing time.
    OpensAfterClosing { closes_at_ms: u64 },
    /// A cap must be above what is already raised.
    CapNotAboveRaised { raised_pence: i64 },
    /// A cap must be a whole number of shares.
    CapNotWholeShares { share_price_pence: i64 },
    /// A cap must be at least the minimum investment.
    CapBelowMinimum { minimum_pence: i64 },
    /// A cap must leave room above what is raised for the smallest
    /// investment (the minimum in whole shares): `lowest_cap_pence` would.
    CapLeavesNoRoom { lowest_cap_pence: i64 },
}

/// `change.lua`'s KEYS and ARGV.
pub fn change_call(keys: &RoundKeys, change: &Change, operator: &str, now_ms: u64) -> ScriptCall {
    let mut args = vec![
        change.action().to_string(),
        operator.to_string(),
        now_ms.to_string(),
    ];
    for (field, value) in change.fields() {
        args.push(field.to_string());
        args.push(value);
    }
    ScriptCall {
        keys: vec![keys.round(), keys.audit()],
        args,
    }
}

impl RoundStore {
    /// Applies `change` by `operator` at `now_ms`, with its audit entry.
    pub async fn change(
        &self,
        change: &Change,
        operator: &str,
        now_ms: u64,
    ) -> StoreResult<ChangeVerdict> {
        let mut conn = self.redis.pin().await?;
        let (verdict, detail): (String, String) = change_call(&self.keys, change, operator, now_ms)
            .invoke(&CHANGE_LUA, &mut conn)
            .await?;
        // Ops are told "done" only once a failover cannot undo it, and
        // "refused" only on replicated state (a retried pause that finds
        // the round paused confirms the first one).
        self.redis.confirm(conn.generation()).await?;
        let number = || {
            detail
                .parse::<i64>()
                .map_err(|_| unknown(&CHANGE_LUA, &format!("{verdict} {detail}")))
        };
        Ok(match verdict.as_str() {
            "changed" => ChangeVerdict::Changed { audit_id: detail },
            "unchanged" => ChangeVerdict::Unchanged,
            "wrong_phase" => ChangeVerdict::WrongPhase {
                phase: parse_phase(&detail)
                    .ok_or_else(|| unknown(&CHANGE_LUA, &format!("{verdict} {detail}")))?,
            },
            "past_closing" => ChangeVerdict::PastClosing,
            "opens_after_closing" => ChangeVerdict::OpensAfterClosing {
                closes_at_ms: number()? as u64,
            },
            "cap_not_above_raised" => ChangeVerdict::CapNotAboveRaised {
                raised_pence: number()?,
            },
            "cap_not_whole_shares" => ChangeVerdict::CapNotWholeShares {
                share_price_pence: number()?,
            },
            "cap_below_minimum" => ChangeVerdict::CapBelowMinimum {
                minimum_pence: number()?,
            },
            "cap_leaves_no_room" => ChangeVerdict::CapLeavesNoRoom {
                lowest_cap_pence: number()?,
            },
            "not_seeded" => return Err(self.not_seeded()),
            other => return Err(unknown(&CHANGE_LUA, other)),
        })
    }
}
