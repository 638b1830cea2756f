//! The one decoder of each stored hash: the round, the ledger, an
//! investment. Every reader (core's room state, the ops figures,
//! reconciliation) goes through these, so a field is parsed one way.
//!
//! A missing counter reads as 0 (a field written later than the round was
//! seeded); a value that is there but does not parse is an error
//! ([`StoreError::Corrupt`]), never a silent 0.

use crate::error::{StoreError, StoreResult};
use crate::layout::{investment as I, ledger as L, phase, round as R, status};
use crowdgate_protocol::api::{DrawReveal, IdentityMode, Investment, InvestmentStatus, PublicDraw};
use crowdgate_protocol::draw::DrawKey;
use crowdgate_protocol::{RoomPhase, RoomState};
use std::collections::HashMap;
use std::str::FromStr;

/// The raw fields of one hash, as `HGETALL` returns them.
pub type Fields = HashMap<String, String>;

/// Reads typed fields out of one hash, naming the key in any error.
struct Decoder<'a> {
    key: &'a str,
    fields: &'a Fields,
}

impl Decoder<'_> {
    /// A number; absent reads as zero.
    fn num<T: FromStr + Default>(&self, field: &str) -> StoreResult<T> {
        match self.fields.get(field) {
            None => Ok(T::default()),
            Some(value) => value
                .parse()
                .map_err(|_| self.corrupt(field, "a whole number")),
        }
    }

    /// A number that may be absent.
    fn opt_num<T: FromStr>(&self, field: &str) -> StoreResult<Option<T>> {
        self.fields
            .get(field)
            .map(|v| v.parse().map_err(|_| self.corrupt(field, "a whole number")))
            .transpose()
    }

    fn text(&self, field: &str) -> String {
        self.fields.get(field).cloned().unwrap_or_default()
    }

    fn corrupt(&self, field: &str, expected: &'static str) -> StoreError {
        StoreError::Corrupt {
            key: self.key.to_string(),
            field: field.to_string(),
            value: self.fields.get(field).cloned().unwrap_or_default(),
            expected,
        }
    }
}

/// A phase word as stored (see [`crate::layout::phase`]).
pub fn parse_phase(text: &str) -> Option<RoomPhase> {
    Some(match text {
        phase::SCHEDULED => RoomPhase::Scheduled,
        phase::OPEN => RoomPhase::Open,
        phase::PAUSED => RoomPhase::Paused,
        phase::FULL => RoomPhase::Full,
        phase::CLOSED => RoomPhase::Closed,
        _ => return None,
    })
}

/// An investment status as stored (see [`crate::layout::status`]).
pub fn parse_status(text: &str) -> Option<InvestmentStatus> {
    Some(match text {
        status::ACCEPTED => InvestmentStatus::Accepted,
        status::SETTLED => InvestmentStatus::Settled,
        status::FAILED => InvestmentStatus::Failed,
        _ => return None,
    })
}

/// The round hash, decoded: its config and live counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRecord {
    pub name: String,
    pub identity: IdentityMode,
    pub phase: RoomPhase,
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    pub rate_per_minute: u64,
    pub batch_interval_ms: u64,
    pub max_active: u64,
    pub pass_ttl_seconds: u64,
    pub claim_window_seconds: u64,
    /// accepted − released; `raised_pence ≤ cap_pence` always.
    pub raised_pence: i64,
    pub accepted_pence: i64,
    pub released_pence: i64,
    pub accepted_count: i64,
    pub investor_count: i64,
    /// The last queue number handed out.
    pub issued: u64,
    /// Every number up to this one is admitted; never above `issued`.
    pub admitted_up_to: u64,
    pub last_advance_ms: u64,
    /// Unix ms; 0 when not set.
    pub opens_at_ms: u64,
    /// Unix ms; 0 when not set.
    pub closes_at_ms: u64,
    /// The pre-queue's numbers are drawn (1..=`prequeue_size`).
    pub prequeue_sealed: bool,
    pub prequeue_size: u64,
    /// The admission rate achieved while people wait, smoothed over about a
    /// minute, people per minute × 1000 (kept by `advance.lua`).
    pub achieved_rate_milli_per_minute: u64,
    /// When it was last measured (Unix ms); 0 while not measuring.
    pub achieved_rate_at_ms: u64,
    /// The measured time it rests on since the round last opened or
    /// resumed, or its rate changed (ms).
    pub achieved_rate_measured_ms: u64,
    /// When ops last changed the rate (Unix ms; 0 = never).
    pub rate_changed_at_ms: u64,
    /// The pre-queue draw's secret (shown to nobody until the seal).
    pub draw_secret: Option<DrawSecret>,
    /// SHA-256 of the secret, hex (public from the start).
    pub draw_commitment: Option<String>,
    /// The hash chain over the pre-queue's entries so far.
    pub draw_entries_digest: Option<String>,
}

/// The draw's secret: kept out of `Debug` output, so a logged record never
/// gives the draw away before the seal.
#[derive(Clone, PartialEq, Eq)]
pub struct DrawSecret(pub String);

impl std::fmt::Debug for DrawSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DrawSecret(…)")
    }
}

impl Default for RoundRecord {
    /// A round with no data: closed, nothing raised, nobody queued.
    fn default() -> Self {
        RoundRecord {
            name: String::new(),
            identity: IdentityMode::Required,
            phase: RoomPhase::Closed,
            cap_pence: 0,
            min_investment_pence: 0,
            max_investment_pence: 0,
            share_price_pence: 0,
            rate_per_minute: 0,
            batch_interval_ms: 0,
            max_active: 0,
            pass_ttl_seconds: 0,
            claim_window_seconds: 0,
            raised_pence: 0,
            accepted_pence: 0,
            released_pence: 0,
            accepted_count: 0,
            investor_count: 0,
            issued: 0,
            admitted_up_to: 0,
            last_advance_ms: 0,
            opens_at_ms: 0,
            closes_at_ms: 0,
            prequeue_sealed: false,
            prequeue_size: 0,
            achieved_rate_milli_per_minute: 0,
            achieved_rate_at_ms: 0,
            achieved_rate_measured_ms: 0,
            rate_changed_at_ms: 0,
            draw_secret: None,
            draw_commitment: None,
            draw_entries_digest: None,
        }
    }
}

impl RoundRecord {
    /// Decodes `HGETALL` of the round hash `key`; `None` for an empty hash
    /// (the round was never seeded).
    pub fn decode(key: &str, fields: &Fields) -> StoreResult<Option<RoundRecord>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let d = Decoder { key, fields };
        let phase = fields
            .get(R::PHASE)
            .and_then(|p| parse_phase(p))
            .ok_or_else(|| d.corrupt(R::PHASE, "a phase"))?;
        // A round seeded before identity existed needs sign-in: the safe reading.
        let identity = match fields.get(R::IDENTITY) {
            None => IdentityMode::Required,
            Some(text) => IdentityMode::parse(text)
                .ok_or_else(|| d.corrupt(R::IDENTITY, "an identity mode"))?,
        };
        Ok(Some(RoundRecord {
            name: d.text(R::NAME),
            identity,
            phase,
            cap_pence: d.num(R::CAP_PENCE)?,
            min_investment_pence: d.num(R::MIN_INVESTMENT_PENCE)?,
            max_investment_pence: d.num(R::MAX_INVESTMENT_PENCE)?,
            share_price_pence: d.num(R::SHARE_PRICE_PENCE)?,
            rate_per_minute: d.num(R::RATE_PER_MINUTE)?,
            batch_interval_ms: d.num(R::BATCH_INTERVAL_MS)?,
            max_active: d.num(R::MAX_ACTIVE)?,
            pass_ttl_seconds: d.num(R::PASS_TTL_SECONDS)?,
            claim_window_seconds: d.num(R::CLAIM_WINDOW_SECONDS)?,
            raised_pence: d.num(R::RAISED_PENCE)?,
            accepted_pence: d.num(R::ACCEPTED_PENCE)?,
            released_pence: d.num(R::RELEASED_PENCE)?,
            accepted_count: d.num(R::ACCEPTED_COUNT)?,
            investor_count: d.num(R::INVESTOR_COUNT)?,
            issued: d.num(R::ISSUED)?,
            admitted_up_to: d.num(R::ADMITTED_UP_TO)?,
            last_advance_ms: d.num(R::LAST_ADVANCE_MS)?,
            opens_at_ms: d.num(R::OPENS_AT_MS)?,
            closes_at_ms: d.num(R::CLOSES_AT_MS)?,
            prequeue_sealed: fields.get(R::PREQUEUE_SEALED).map(String::as_str) == Some("1"),
            prequeue_size: d.num(R::PREQUEUE_SIZE)?,
            achieved_rate_milli_per_minute: d.num(R::ACHIEVED_RATE_MILLI_PER_MINUTE)?,
            achieved_rate_at_ms: d.num(R::ACHIEVED_RATE_AT_MS)?,
            achieved_rate_measured_ms: d.num(R::ACHIEVED_RATE_MEASURED_MS)?,
            rate_changed_at_ms: d.num(R::RATE_CHANGED_AT_MS)?,
            draw_secret: fields.get(R::DRAW_SECRET).cloned().map(DrawSecret),
            draw_commitment: fields.get(R::DRAW_COMMITMENT).cloned(),
            draw_entries_digest: fields.get(R::DRAW_ENTRIES_DIGEST).cloned(),
        }))
    }

    /// The sealed pre-queue's draw: its key and size, once sealed (`None`
    /// before, or for a round seeded without a draw secret).
    pub fn sealed_draw(&self) -> Option<SealedDraw> {
        if !self.prequeue_sealed {
            return None;
        }
        let secret = self.draw_secret.as_ref()?;
        let digest = self.draw_entries_digest.as_deref()?;
        let key = DrawKey::derive(&secret.0, digest).ok()?;
        Some(SealedDraw {
            key,
            size: self.prequeue_size,
        })
    }

    /// The draw as anyone may see it: the commitment, and after the seal
    /// the secret, the digest and the key.
    pub fn public_draw(&self) -> Option<PublicDraw> {
        let commitment = self.draw_commitment.clone()?;
        let revealed = self.sealed_draw().map(|sealed| DrawReveal {
            secret: self.draw_secret.clone().map(|s| s.0).unwrap_or_default(),
            entries_digest: self.draw_entries_digest.clone().unwrap_or_default(),
            key: sealed.key.to_hex(),
            size: sealed.size,
        });
        Some(PublicDraw {
            commitment,
            revealed,
        })
    }

    /// The room state the edge caches. `registered` is the pre-queue's size
    /// now, shown until the draw; afterwards the sealed size is. `deciding`
    /// is how many admitted people's turns are under way.
    pub fn room_state(
        &self,
        round: &str,
        registered: u64,
        deciding: u64,
        now_ms: u64,
    ) -> RoomState {
        RoomState {
            round: round.to_string(),
            name: self.name.clone(),
            identity: self.identity,
            phase: self.phase,
            admitted_up_to: self.admitted_up_to,
            issued: self.issued,
            rate_per_minute: self.rate_per_minute,
            achieved_rate_milli_per_minute: self.achieved_rate_milli_per_minute,
            achieved_rate_history_seconds: self.achieved_rate_measured_ms / 1000,
            rate_changed_at_ms: self.rate_changed_at_ms,
            raised_pence: self.raised_pence,
            investor_count: self.investor_count.max(0) as u64,
            cap_pence: self.cap_pence,
            min_investment_pence: self.min_investment_pence,
            max_investment_pence: self.max_investment_pence,
            share_price_pence: self.share_price_pence,
            pass_ttl_seconds: self.pass_ttl_seconds,
            opens_at_ms: self.opens_at_ms,
            prequeue_size: if self.prequeue_sealed {
                self.prequeue_size
            } else {
                registered
            },
            deciding,
            accepted_pence: self.accepted_pence,
            released_pence: self.released_pence,
            draw: self.public_draw(),
            as_of_ms: now_ms,
        }
    }
}

/// A sealed pre-queue's draw: entry e (1..=size) drew
/// `crowdgate_protocol::draw::number(&key, size, e)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDraw {
    pub key: DrawKey,
    pub size: u64,
}

impl SealedDraw {
    /// The number `entry` drew; `None` for an entry outside the pre-queue.
    pub fn number(&self, entry: u64) -> Option<u64> {
        crowdgate_protocol::draw::number(&self.key, self.size, entry).ok()
    }
}

/// The ledger totals hash, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerRecord {
    pub escrow_pence: i64,
    /// Σ investor debits; always equal to `credits_pence`.
    pub debits_pence: i64,
    pub credits_pence: i64,
    pub settled_count: i64,
    pub failed_count: i64,
    pub failed_pence: i64,
    pub shares_allocated: i64,
}

impl LedgerRecord {
    /// Decodes `HGETALL` of the ledger hash `key` (empty: all zero).
    pub fn decode(key: &str, fields: &Fields) -> StoreResult<LedgerRecord> {
        let d = Decoder { key, fields };
        Ok(LedgerRecord {
            escrow_pence: d.num(L::ESCROW_PENCE)?,
            debits_pence: d.num(L::DEBITS_PENCE)?,
            credits_pence: d.num(L::CREDITS_PENCE)?,
            settled_count: d.num(L::SETTLED_COUNT)?,
            failed_count: d.num(L::FAILED_COUNT)?,
            failed_pence: d.num(L::FAILED_PENCE)?,
            shares_allocated: d.num(L::SHARES_ALLOCATED)?,
        })
    }
}

/// One investment's record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvestmentRecord {
    pub investment_id: String,
    pub investor_id: String,
    pub amount_pence: i64,
    pub shares: i64,
    pub status: InvestmentStatus,
    pub accepted_at_ms: u64,
    pub settled_at_ms: Option<u64>,
    pub failure_reason: Option<String>,
}

impl InvestmentRecord {
    /// Decodes `HGETALL` of investment `id`'s record at `key`; `None` for an
    /// empty hash (no such investment).
    pub fn decode(id: &str, key: &str, fields: &Fields) -> StoreResult<Option<InvestmentRecord>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let d = Decoder { key, fields };
        let status = fields
            .get(I::STATUS)
            .and_then(|s| parse_status(s))
            .ok_or_else(|| d.corrupt(I::STATUS, "a status"))?;
        Ok(Some(InvestmentRecord {
            investment_id: id.to_string(),
            investor_id: d.text(I::INVESTOR_ID),
            amount_pence: d.num(I::AMOUNT_PENCE)?,
            shares: d.num(I::SHARES)?,
            status,
            accepted_at_ms: d.num(I::ACCEPTED_AT_MS)?,
            settled_at_ms: d.opt_num(I::SETTLED_AT_MS)?,
            failure_reason: fields.get(I::FAILURE_REASON).cloned(),
        }))
    }

    /// As the API reports it.
    pub fn into_investment(self, round: &str) -> Investment {
        Investment {
            investment_id: self.investment_id,
            round: round.to_string(),
            investor_id: self.investor_id,
            amount_pence: self.amount_pence,
            shares: self.shares,
            status: self.status,
            accepted_at_ms: self.accepted_at_ms,
            settled_at_ms: self.settled_at_ms,
            failure_reason: self.failure_reason,
        }
    }
}

/// What reconciliation reads of each investment: only the fields it sums,
/// so a scan of every record stays cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvestmentSummary {
    /// No record at all.
    Missing,
    /// A record that does not decode; the text says what is wrong.
    Corrupt(String),
    Found {
        status: InvestmentStatus,
        investor_id: String,
        amount_pence: i64,
    },
}

/// The fields [`InvestmentSummary::decode`] reads, in its order.
pub const SUMMARY_FIELDS: [&str; 3] = [I::STATUS, I::INVESTOR_ID, I::AMOUNT_PENCE];

impl InvestmentSummary {
    /// Decodes an `HMGET` of [`SUMMARY_FIELDS`].
    pub fn decode(values: [Option<String>; 3]) -> InvestmentSummary {
        let [status, investor, amount] = values;
        if status.is_none() && investor.is_none() && amount.is_none() {
            return InvestmentSummary::Missing;
        }
        let Some(status_value) = status.as_deref().and_then(parse_status) else {
            return InvestmentSummary::Corrupt(format!("has unknown status {status:?}"));
        };
        let Some(amount_pence) = amount.as_deref().and_then(|a| a.parse().ok()) else {
            return InvestmentSummary::Corrupt(format!("has amount_pence {amount:?}"));
        };
        InvestmentSummary::Found {
            status: status_value,
            investor_id: investor.unwrap_or_default(),
            amount_pence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_round_hash_is_no_round() {
        assert_eq!(RoundRecord::decode("k", &Fields::new()).unwrap(), None);
    }

    #[test]
    fn missing_counters_read_as_zero_and_bad_ones_are_errors() {
        let round = RoundRecord::decode("k", &fields(&[("phase", "open"), ("issued", "7")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (round.phase, round.issued, round.raised_pence),
            (RoomPhase::Open, 7, 0)
        );
        let err =
            RoundRecord::decode("k", &fields(&[("phase", "open"), ("issued", "x")])).unwrap_err();
        assert!(err.to_string().contains("issued"), "{err}");
        assert!(RoundRecord::decode("k", &fields(&[("phase", "ajar")])).is_err());
    }

    #[test]
    fn the_room_state_shows_registrations_until_the_draw() {
        let mut round = RoundRecord {
            phase: RoomPhase::Scheduled,
            ..RoundRecord::default()
        };
        assert_eq!(round.room_state("r", 5, 0, 1).prequeue_size, 5);
        round.prequeue_sealed = true;
        round.prequeue_size = 4;
        assert_eq!(round.room_state("r", 5, 0, 1).prequeue_size, 4);
    }

    #[test]
    fn the_room_state_carries_the_achieved_rate_and_its_history() {
        let round = RoundRecord::decode(
            "k",
            &fields(&[
                ("phase", "open"),
                ("rate_per_minute", "600"),
                ("achieved_rate_milli_per_minute", "123456"),
                ("achieved_rate_measured_ms", "45999"),
                ("rate_changed_at_ms", "17"),
            ]),
        )
        .unwrap()
        .unwrap();
        let room = round.room_state("r", 0, 0, 1);
        assert_eq!(
            (
                room.achieved_rate_milli_per_minute,
                room.achieved_rate_history_seconds,
                room.rate_changed_at_ms
            ),
            (123_456, 45, 17)
        );
        // A round from before the measurement: none of it, no error.
        let old = RoundRecord::decode("k", &fields(&[("phase", "open")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            old.room_state("r", 0, 0, 1).achieved_rate_history_seconds,
            0
        );
    }

    #[test]
    fn summaries() {
        let s = |v: [Option<&str>; 3]| InvestmentSummary::decode(v.map(|x| x.map(String::from)));
        assert_eq!(s([None, None, None]), InvestmentSummary::Missing);
        assert!(matches!(
            s([Some("accepted"), Some("x"), Some("lots")]),
            InvestmentSummary::Corrupt(_)
        ));
        assert!(matches!(
            s([Some("lost"), Some("x"), Some("5")]),
            InvestmentSummary::Corrupt(_)
        ));
        assert_eq!(
            s([Some("settled"), Some("x"), Some("5")]),
            InvestmentSummary::Found {
                status: InvestmentStatus::Settled,
                investor_id: "x".into(),
                amount_pence: 5
            }
        );
    }
}
