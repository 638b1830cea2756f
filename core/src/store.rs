//! core's side of the round's data in Redis. The layout, the scripts and
//! their verdicts belong to `crowdgate-store` ([`RoundStore`] and friends);
//! here is only what is core's: the settings a round is seeded with (from
//! its config file), and what a store failure means to a client.

use crate::error::Failure;
use crate::round_config::RoundConfig;
use crowdgate_protocol::ErrorCode;
use crowdgate_store::{RoundSettings, StoreError};

pub use crowdgate_store::{
    Advance, ClaimVerdict, InvestVerdict, Joined, Joiner, LeaveVerdict, NewInvestment, Placement,
    PrequeueNumber, RoundStore,
};

/// The settings a round is seeded with the first time core starts on it.
pub fn settings(config: &RoundConfig) -> RoundSettings {
    let r = &config.round;
    let a = &config.admission;
    RoundSettings {
        name: r.name.clone(),
        identity: config.identity(),
        cap_pence: r.cap_pence,
        min_investment_pence: r.min_investment_pence,
        max_investment_pence: r.max_investment_pence,
        share_price_pence: r.share_price_pence,
        initial_phase: config.initial_phase(),
        rate_per_minute: a.rate_per_minute,
        batch_interval_ms: a.batch_interval_ms,
        max_active: a.max_active,
        pass_ttl_seconds: a.pass_ttl_seconds,
        claim_window_seconds: a.claim_window_seconds,
        opens_at_ms: config.opens_at_ms().unwrap_or(0),
        closes_at_ms: config.closes_at_ms().unwrap_or(0),
    }
}

impl From<StoreError> for Failure {
    /// Redis away: 503, try again (nothing was done, or a retry replays it).
    /// Not confirmed by enough replicas in time, or refused by a primary
    /// short of replicas (`NOREPLICAS`): 503 too — the write may be undone
    /// by a failover, so it is not reported done; the retry (same
    /// idempotency key) confirms it again. No round data: 404. Stored data
    /// the store cannot read, or a verdict it does not know: a bug, 500,
    /// logged loudly.
    fn from(err: StoreError) -> Failure {
        match err {
            StoreError::Redis(err) if is_noreplicas(&err) => not_replicated(0, None),
            StoreError::Redis(err) => Failure::from(err),
            StoreError::NotReplicated { acked, wanted } => not_replicated(acked, Some(wanted)),
            StoreError::NotSeeded { round } => Failure::new(
                ErrorCode::RoundNotSeeded,
                format!("round {round:?} has no data in Redis yet"),
            ),
            other => {
                tracing::error!(error = %other, "the store and its data disagree");
                Failure::new(
                    ErrorCode::InternalError,
                    "the round's data could not be read; this is a bug, and it is logged",
                )
            }
        }
    }
}

/// The primary refused the write for want of replicas (`min-replicas-to-write`).
fn is_noreplicas(err: &redis::RedisError) -> bool {
    err.code() == Some("NOREPLICAS") || err.to_string().contains("NOREPLICAS")
}

/// 503 for a write no replica holds yet (or that the primary refused for
/// want of them), counted in `crowdgate_not_replicated_total`.
fn not_replicated(acked: u32, wanted: Option<u32>) -> Failure {
    metrics::counter!(NOT_REPLICATED_TOTAL).increment(1);
    let why = match wanted {
        Some(wanted) => format!("{acked} of {wanted} replicas confirmed it in time"),
        None => "the primary has no replica to hold it".to_string(),
    };
    Failure::unavailable(format!(
        "the write is not yet safe on a replica ({why}); retry shortly \
         (an investment: with the same Idempotency-Key)"
    ))
}

/// Writes answered 503 because no replica held them.
pub const NOT_REPLICATED_TOTAL: &str = "crowdgate_not_replicated_total";

#[cfg(test)]
mod tests {
    use super::*;
    use crowdgate_protocol::api::IdentityMode;

    const ROUND: &str = "[round]\nid = \"demo\"\nname = \"Demo plc\"\ncap_pence = 100000\nmin_investment_pence = 1000\nmax_investment_pence = 20000\nshare_price_pence = 100\n";

    #[test]
    fn the_round_is_seeded_with_its_identity_mode() {
        let config = RoundConfig::parse(ROUND).unwrap();
        assert_eq!(settings(&config).identity, IdentityMode::Required);
        let anonymous = RoundConfig::parse(&format!("{ROUND}identity = \"anonymous\"\n")).unwrap();
        let seeded = settings(&anonymous);
        assert_eq!(seeded.identity, IdentityMode::Anonymous);
        assert!(
            seeded
                .fields()
                .contains(&(crowdgate_store::layout::round::IDENTITY, "anonymous".into()))
        );
    }
}
