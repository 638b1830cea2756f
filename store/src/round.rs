//! [`RoundStore`]: a handle on one round's data, what core holds. Seeding,
//! reading the round and its investments, and checking Redis is durable live
//! here; each script's call lives in its own module (`join`, `admission`,
//! `claim`, `invest`, `change`) as a method of this type.

use crate::Connection;
use crate::connection::Redis;
use crate::error::{StoreError, StoreResult};
use crate::keys::{RoundKeys, deployment};
use crate::layout::round as R;
use crate::record::{Fields, InvestmentRecord, RoundRecord};
use crowdgate_protocol::api::{IdentityMode, Investment};
use crowdgate_protocol::draw;
use crowdgate_protocol::{RoomPhase, RoomState};
use redis::AsyncCommands;

/// A round's data in Redis. Cheap to clone (the connection is shared).
#[derive(Clone)]
pub struct RoundStore {
    pub round: String,
    pub(crate) keys: RoundKeys,
    pub(crate) redis: Redis,
}

/// What a round is seeded with: its config, written once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundSettings {
    pub name: String,
    /// Whether joining needs a signed-in investor.
    pub identity: IdentityMode,
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    pub initial_phase: RoomPhase,
    pub rate_per_minute: u64,
    pub batch_interval_ms: u64,
    pub max_active: u64,
    pub pass_ttl_seconds: u64,
    pub claim_window_seconds: u64,
    /// Unix ms; 0 = not set.
    pub opens_at_ms: u64,
    /// Unix ms; 0 = not set.
    pub closes_at_ms: u64,
}

impl RoundSettings {
    /// Every field of a freshly seeded round hash: the config, and the
    /// counters at zero.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            (R::NAME, self.name.clone()),
            (R::IDENTITY, self.identity.as_str().to_string()),
            (R::CAP_PENCE, self.cap_pence.to_string()),
            (
                R::MIN_INVESTMENT_PENCE,
                self.min_investment_pence.to_string(),
            ),
            (
                R::MAX_INVESTMENT_PENCE,
                self.max_investment_pence.to_string(),
            ),
            (R::SHARE_PRICE_PENCE, self.share_price_pence.to_string()),
            (R::PHASE, self.initial_phase.as_str().to_string()),
            (R::RATE_PER_MINUTE, self.rate_per_minute.to_string()),
            (R::BATCH_INTERVAL_MS, self.batch_interval_ms.to_string()),
            (R::MAX_ACTIVE, self.max_active.to_string()),
            (R::PASS_TTL_SECONDS, self.pass_ttl_seconds.to_string()),
            (
                R::CLAIM_WINDOW_SECONDS,
                self.claim_window_seconds.to_string(),
            ),
            (R::RAISED_PENCE, "0".into()),
            (R::ACCEPTED_PENCE, "0".into()),
            (R::RELEASED_PENCE, "0".into()),
            (R::ACCEPTED_COUNT, "0".into()),
            (R::INVESTOR_COUNT, "0".into()),
            (R::ISSUED, "0".into()),
            (R::ADMITTED_UP_TO, "0".into()),
            (R::LAST_ADVANCE_MS, "0".into()),
            (R::OPENS_AT_MS, self.opens_at_ms.to_string()),
            (R::CLOSES_AT_MS, self.closes_at_ms.to_string()),
        ]
    }
}

/// A new draw secret's round fields: the secret, its commitment, and the
/// entries' hash chain starting from the commitment
/// (`crowdgate_protocol::draw`). `random` is 32 bytes from the caller's
/// CSPRNG.
pub(crate) fn draw_fields(random: &[u8; draw::SECRET_BYTES]) -> Vec<(&'static str, String)> {
    let secret = draw::secret_hex(random);
    let commitment = draw::commitment(&secret).expect("a secret made from 32 bytes is valid");
    vec![
        (R::DRAW_SECRET, secret),
        (R::DRAW_COMMITMENT, commitment.clone()),
        (R::DRAW_ENTRIES_DIGEST, commitment),
    ]
}

impl RoundStore {
    pub fn new(round: &str, redis: Redis) -> RoundStore {
        RoundStore {
            round: round.to_string(),
            keys: RoundKeys::new(round),
            redis,
        }
    }

    /// The round's key names.
    pub fn keys(&self) -> &RoundKeys {
        &self.keys
    }

    /// A handle on the connection, for calls that take one.
    pub(crate) fn conn(&self) -> Redis {
        self.redis.clone()
    }

    /// The round's Redis (for its topology and the primary in use).
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub(crate) fn not_seeded(&self) -> StoreError {
        StoreError::NotSeeded {
            round: self.round.clone(),
        }
    }

    /// Writes the round's fields that are not there yet. Live values
    /// (raised, cursor, and anything ops changed) are never overwritten, so a
    /// restart keeps the round where it was. True when anything was written.
    /// `draw_random` (32 bytes from the caller's CSPRNG) makes the pre-queue
    /// draw's secret of a round seeded now; a seeded round keeps its own.
    ///
    /// A seeded round is registered in the deployment's live rounds (unless
    /// archived), so a round from a config file is driven and listed like
    /// one created through the ops API.
    ///
    /// A round that already has every field is only read: a process
    /// restarting while the primary refuses writes (no replica in reach,
    /// `NOREPLICAS`) starts without needing one.
    pub async fn seed(
        &self,
        settings: &RoundSettings,
        draw_random: &[u8; draw::SECRET_BYTES],
    ) -> StoreResult<bool> {
        let key = self.keys.round();
        let fields = settings.fields();
        // Which of them, whether the draw's secret, and whether the round
        // is in the deployment's registry (live or archived).
        let present: Vec<bool> = {
            let mut pipe = redis::pipe();
            for (field, _) in &fields {
                pipe.hexists(&key, field);
            }
            pipe.hexists(&key, R::DRAW_SECRET);
            pipe.sismember(deployment::ROUNDS, &self.round);
            pipe.sismember(deployment::ARCHIVED_ROUNDS, &self.round);
            pipe.query_async(&mut self.conn()).await?
        };
        let [present @ .., has_secret, live, archived] = present.as_slice() else {
            unreachable!("one answer per command");
        };
        let registered = *live || *archived;
        let mut missing: Vec<(&str, String)> = fields
            .into_iter()
            .zip(present)
            .filter(|(_, present)| !**present)
            .map(|(field, _)| field)
            .collect();
        // The secret, its commitment and the chain's start go together: a
        // round that has a secret keeps all three.
        if !has_secret {
            missing.extend(draw_fields(draw_random));
        }
        if missing.is_empty() && registered {
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, value) in &missing {
            pipe.hset_nx(&key, *field, value);
        }
        if !registered {
            pipe.sadd(deployment::ROUNDS, &self.round);
        }
        let written: Vec<bool> = pipe.query_async(&mut self.conn()).await?;
        Ok(written.iter().any(|w| *w))
    }

    /// The round hash and how many are registered in the pre-queue (its
    /// entries less those that left), read in one snapshot; `None`
    /// when the round was never seeded.
    pub async fn round_record(&self) -> StoreResult<Option<(RoundRecord, u64)>> {
        self.round_record_on(&mut self.conn()).await
    }

    /// [`RoundStore::round_record`] on a given connection.
    async fn round_record_on(
        &self,
        conn: &mut impl Connection,
    ) -> StoreResult<Option<(RoundRecord, u64)>> {
        let (fields, entries, left_before_draw): (Fields, u64, u64) = redis::pipe()
            .atomic()
            .hgetall(self.keys.round())
            .zcard(self.keys.prequeue())
            .zcount(self.keys.left(), 0, 0)
            .query_async(conn)
            .await?;
        // Those registered: entries that have not left (until the draw,
        // when leavers' numbers are written, the two are told apart by 0).
        let registered = entries.saturating_sub(left_before_draw);
        Ok(RoundRecord::decode(&self.keys.round(), &fields)?.map(|round| (round, registered)))
    }

    /// The room state the edge caches, once a replica holds everything it
    /// shows: visitors are told their turn from it, so it must not show an
    /// admission a failover could take back.
    pub async fn room_state(&self, now_ms: u64) -> StoreResult<Option<RoomState>> {
        let mut conn = self.redis.pin().await?;
        let Some((round, registered)) = self.round_record_on(&mut conn).await? else {
            return Ok(None);
        };
        // Those whose turn is under way: what counts against max_active
        // (live passes and reservations; expired ones are pruned by the
        // scripts, so they are left out by time here).
        let live = format!("({now_ms}");
        let (passes, reservations): (u64, u64) = redis::pipe()
            .zcount(self.keys.active_passes(), &live, "+inf")
            .zcount(self.keys.reserved(), &live, "+inf")
            .query_async(&mut conn)
            .await?;
        self.redis.confirm(conn.generation()).await?;
        Ok(Some(round.room_state(
            &self.round,
            registered,
            passes + reservations,
            now_ms,
        )))
    }

    /// One investment's record, if it exists.
    pub async fn investment(&self, investment_id: &str) -> StoreResult<Option<Investment>> {
        let key = self.keys.investment(investment_id);
        let fields: Fields = self.conn().hgetall(&key).await?;
        Ok(InvestmentRecord::decode(investment_id, &key, &fields)?
            .map(|record| record.into_investment(&self.round)))
    }

    /// Round trip to Redis, for health checks.
    pub async fn ping(&self) -> StoreResult<()> {
        Ok(redis::cmd("PING").query_async(&mut self.conn()).await?)
    }
}
