//! Investing (`invest.lua`): replay check, pass binding, phase, limits and
//! the cap, then the record, the settlement stream entry and the counters,
//! in one atomic step.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::round::RoundStore;
use crate::scripts::{INVEST_LUA, ScriptCall, unknown};
use crowdgate_protocol::api::{Investment, InvestmentStatus};

/// The fields of a new investment the script needs.
#[derive(Debug, Clone, Copy)]
pub struct NewInvestment<'a> {
    /// Derived from (round, ticket, Idempotency-Key): every retry of one
    /// request names one record.
    pub investment_id: &'a str,
    /// The ticket of the pass.
    pub ticket_id: &'a str,
    pub investor_id: &'a str,
    pub amount_pence: i64,
    /// Hash of the request: a replay with another body is refused.
    pub fingerprint: &'a str,
    pub now_ms: u64,
    /// How long the pass stays bound to its first investor, seconds.
    pub binding_ttl_s: u64,
    /// The investor's own maximum from their identity (a KYC tier's limit),
    /// pence: the script applies the smaller of this and the round's.
    pub investor_max_pence: Option<i64>,
}

/// What the invest script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvestVerdict {
    /// A new investment, recorded and published for settlement.
    Accepted(Investment),
    /// This request was made before: the investment it made.
    Replayed(Investment),
    /// This Idempotency-Key made a different investment.
    KeyReused,
    /// The pass is bound to another investor.
    PassBoundToOther,
    /// The round has not opened.
    NotOpen,
    /// The round is closed (or past its closing time).
    Closed,
    /// Over the cap: only this much is left.
    RoundFull { left_pence: i64 },
    /// Under the minimum investment.
    BelowMinimum { minimum_pence: i64 },
    /// Not a whole number of shares at this price.
    NotWholeShares { share_price_pence: i64 },
    /// Over the per-investor maximum: this investor may invest this much more.
    OverInvestorLimit { left_pence: i64 },
}

impl InvestVerdict {
    /// The script's name for this verdict (for logs and metrics).
    pub fn name(&self) -> &'static str {
        match self {
            InvestVerdict::Accepted(_) => "accepted",
            InvestVerdict::Replayed(_) => "replayed",
            InvestVerdict::KeyReused => "key_reused",
            InvestVerdict::PassBoundToOther => "pass_bound_to_other",
            InvestVerdict::NotOpen => "not_open",
            InvestVerdict::Closed => "closed",
            InvestVerdict::RoundFull { .. } => "round_full",
            InvestVerdict::BelowMinimum { .. } => "below_minimum",
            InvestVerdict::NotWholeShares { .. } => "not_whole_shares",
            InvestVerdict::OverInvestorLimit { .. } => "over_investor_limit",
        }
    }
}

/// `invest.lua`'s KEYS and ARGV: the one encoding of its interface.
pub fn invest_call(keys: &RoundKeys, new: &NewInvestment<'_>) -> ScriptCall {
    ScriptCall {
        keys: vec![
            keys.round(),
            keys.investor_totals(),
            keys.pass_binding(new.ticket_id),
            keys.investment(new.investment_id),
            keys.settlement_stream(),
            keys.active_passes(),
            keys.investor_limits(),
        ],
        args: vec![
            new.investment_id.to_string(),
            new.investor_id.to_string(),
            new.amount_pence.to_string(),
            new.fingerprint.to_string(),
            new.now_ms.to_string(),
            new.binding_ttl_s.to_string(),
            new.ticket_id.to_string(),
            new.investor_max_pence.unwrap_or(-1).to_string(),
        ],
    }
}

/// The script's answer: verdict, investor, amount, shares, accepted at, detail.
type Answer = (String, String, i64, i64, u64, i64);

impl RoundStore {
    /// Runs the invest script. Safe to retry after an unclear failure: the
    /// investment id makes a retry a replay.
    pub async fn invest(&self, new: &NewInvestment<'_>) -> StoreResult<InvestVerdict> {
        let mut conn = self.redis.pin().await?;
        let (verdict, investor_id, amount_pence, shares, accepted_at_ms, detail): Answer =
            invest_call(&self.keys, new)
                .invoke(&INVEST_LUA, &mut conn)
                .await?;
        let investment = || Investment {
            investment_id: new.investment_id.to_string(),
            round: self.round.clone(),
            investor_id: investor_id.clone(),
            amount_pence,
            shares,
            status: InvestmentStatus::Accepted,
            accepted_at_ms,
            settled_at_ms: None,
            failure_reason: None,
        };
        // Every answer waits for the replicas: an investment (new, or a
        // replay, whose first answer may have been a 503) only once
        // replicated, and a refusal only on replicated state (a "full" that
        // a failover could undo is not said).
        self.redis.confirm(conn.generation()).await?;
        Ok(match verdict.as_str() {
            "accepted" => InvestVerdict::Accepted(investment()),
            "replayed" => InvestVerdict::Replayed(investment()),
            "key_reused" => InvestVerdict::KeyReused,
            "pass_bound_to_other" => InvestVerdict::PassBoundToOther,
            "not_open" => InvestVerdict::NotOpen,
            "closed" => InvestVerdict::Closed,
            "round_full" => InvestVerdict::RoundFull { left_pence: detail },
            "below_minimum" => InvestVerdict::BelowMinimum {
                minimum_pence: detail,
            },
            "not_whole_shares" => InvestVerdict::NotWholeShares {
                share_price_pence: detail,
            },
            "over_investor_limit" => InvestVerdict::OverInvestorLimit { left_pence: detail },
            "not_seeded" => return Err(self.not_seeded()),
            other => return Err(unknown(&INVEST_LUA, other)),
        })
    }
}
