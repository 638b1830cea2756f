//! core's view of a round in Redis: seeding it, reading the room state, handing
//! out queue numbers and running the invest and admission scripts.
//!
//! Scripts run through `redis::Script`, which sends `EVALSHA` and falls back to
//! `EVAL` on `NOSCRIPT`, so a restarted Redis (empty script cache) costs one
//! extra round trip, never an error.

use crate::round_config::RoundConfig;
use crowdgate_protocol::api::{Investment, InvestmentStatus};
use crowdgate_protocol::keys::RoundKeys;
use crowdgate_protocol::{RoomPhase, RoomState};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::collections::HashMap;

/// The invest script's source (also run by the benchmarks).
pub const INVEST_SCRIPT: &str = include_str!("scripts/invest.lua");
/// The admission step's source.
pub const ADVANCE_SCRIPT: &str = include_str!("scripts/advance.lua");
const JOIN_SCRIPT: &str = include_str!("scripts/join.lua");
const CLAIM_SCRIPT: &str = include_str!("scripts/claim.lua");

/// A round's data in Redis.
#[derive(Clone)]
pub struct RoundStore {
    pub round: String,
    keys: RoundKeys,
    redis: ConnectionManager,
    invest: Script,
    advance: Script,
    join: Script,
    claim: Script,
}

/// Where a join put the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Before opening: a lottery score in the pre-queue, number drawn at opening.
    Prequeue,
    /// A queue number.
    Numbered(u64),
}

/// The outcome of a pass claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed (now or before); the pass lasts until this Unix ms.
    Granted {
        expires_at_ms: u64,
    },
    NotAdmitted,
    /// The ticket's pass expired at this Unix ms.
    Expired {
        expired_at_ms: u64,
    },
    RoundClosed,
    /// Admitted, but the claim window lapsed and the room is full right now.
    RoomFull,
}

/// What the invest script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvestOutcome {
    pub status: u16,
    pub code: String,
    pub investment_id: String,
    pub amount_pence: i64,
    pub shares: i64,
    pub accepted_at_ms: u64,
    /// Meaning depends on `code` (remaining pence, the minimum, ...).
    pub extra: i64,
}

/// The fields of a new investment the script needs.
pub struct NewInvestment<'a> {
    pub investment_id: &'a str,
    pub ticket_id: &'a str,
    pub investor_id: &'a str,
    pub amount_pence: i64,
    pub fingerprint: &'a str,
    pub now_ms: u64,
    pub binding_ttl_s: u64,
}

impl RoundStore {
    pub fn new(round: &str, redis: ConnectionManager) -> RoundStore {
        RoundStore {
            round: round.to_string(),
            keys: RoundKeys::new(round),
            redis,
            invest: Script::new(INVEST_SCRIPT),
            advance: Script::new(ADVANCE_SCRIPT),
            join: Script::new(JOIN_SCRIPT),
            claim: Script::new(CLAIM_SCRIPT),
        }
    }

    /// Writes the round's config fields that are not there yet. Live values
    /// (raised, cursor, and anything ops changed) are never overwritten, so a
    /// restart keeps the round where it was.
    pub async fn seed(&self, config: &RoundConfig) -> redis::RedisResult<bool> {
        let r = &config.round;
        let a = &config.admission;
        let fields: Vec<(&str, String)> = vec![
            ("name", r.name.clone()),
            ("cap_pence", r.cap_pence.to_string()),
            ("min_investment_pence", r.min_investment_pence.to_string()),
            ("max_investment_pence", r.max_investment_pence.to_string()),
            ("share_price_pence", r.share_price_pence.to_string()),
            ("phase", config.initial_phase().as_str().to_string()),
            ("rate_per_minute", a.rate_per_minute.to_string()),
            ("batch_interval_ms", a.batch_interval_ms.to_string()),
            ("max_active", a.max_active.to_string()),
            ("pass_ttl_seconds", a.pass_ttl_seconds.to_string()),
            ("claim_window_seconds", a.claim_window_seconds.to_string()),
            ("raised_pence", "0".into()),
            ("accepted_pence", "0".into()),
            ("released_pence", "0".into()),
            ("accepted_count", "0".into()),
            ("investor_count", "0".into()),
            ("issued", "0".into()),
            ("admitted_up_to", "0".into()),
            ("last_advance_ms", "0".into()),
            ("opens_at_ms", config.opens_at_ms().unwrap_or(0).to_string()),
            (
                "closes_at_ms",
                config.closes_at_ms().unwrap_or(0).to_string(),
            ),
        ];
        let key = self.keys.round();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, value) in &fields {
            pipe.hset_nx(&key, field, value);
        }
        let written: Vec<bool> = pipe.query_async(&mut self.redis.clone()).await?;
        Ok(written.iter().any(|w| *w))
    }

    /// The room state the edge caches.
    pub async fn room_state(&self, now_ms: u64) -> redis::RedisResult<Option<RoomState>> {
        // One round trip, one snapshot: the hash and the pre-queue's size.
        let (fields, registered): (HashMap<String, String>, u64) = redis::pipe()
            .atomic()
            .hgetall(self.keys.round())
            .zcard(self.keys.prequeue())
            .query_async(&mut self.redis.clone())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let int = |name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let phase = fields
            .get("phase")
            .and_then(|p| RoomPhase::parse(p))
            .unwrap_or(RoomPhase::Closed);
        Ok(Some(RoomState {
            round: self.round.clone(),
            phase,
            admitted_up_to: int("admitted_up_to").max(0) as u64,
            issued: int("issued").max(0) as u64,
            rate_per_minute: int("rate_per_minute").max(0) as u64,
            raised_pence: int("raised_pence"),
            investor_count: int("investor_count").max(0) as u64,
            cap_pence: int("cap_pence"),
            min_investment_pence: int("min_investment_pence"),
            max_investment_pence: int("max_investment_pence"),
            share_price_pence: int("share_price_pence"),
            pass_ttl_seconds: int("pass_ttl_seconds").max(0) as u64,
            opens_at_ms: int("opens_at_ms").max(0) as u64,
            // Sealed: the final size. Before the draw: registered so far.
            prequeue_size: if fields.get("prequeue_sealed").map(String::as_str) == Some("1") {
                int("prequeue_size").max(0) as u64
            } else {
                registered
            },
            as_of_ms: now_ms,
        }))
    }

    /// Places a new ticket: in the pre-queue with lottery `score` before
    /// opening, else the next number (unique and increasing across replicas).
    pub async fn join(
        &self,
        ticket_id: &str,
        score: u64,
        now_ms: u64,
    ) -> redis::RedisResult<Placement> {
        let (numbered, number): (u8, u64) = self
            .join
            .key(self.keys.round())
            .key(self.keys.prequeue())
            .arg(ticket_id)
            .arg(score)
            .arg(now_ms)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(if numbered == 1 {
            Placement::Numbered(number)
        } else {
            Placement::Prequeue
        })
    }

    /// The number a pre-queue ticket drew, once the pre-queue is sealed at
    /// opening: its rank by lottery score, 1-based. `Ok(None)` while the draw
    /// has not happened; an error-free `Some(None)` for an unknown ticket.
    pub async fn prequeue_number(
        &self,
        ticket_id: &str,
    ) -> redis::RedisResult<Option<Option<u64>>> {
        let mut redis = self.redis.clone();
        let sealed: Option<String> = redis.hget(self.keys.round(), "prequeue_sealed").await?;
        if sealed.as_deref() != Some("1") {
            return Ok(None);
        }
        // After sealing nothing is added to the pre-queue, so ranks are final.
        let rank: Option<u64> = redis.zrank(self.keys.prequeue(), ticket_id).await?;
        Ok(Some(rank.map(|r| r + 1)))
    }

    /// Records a ticket's pass claim (once) and returns its expiry.
    pub async fn claim_pass(
        &self,
        ticket_id: &str,
        number: u64,
        now_ms: u64,
    ) -> redis::RedisResult<Claim> {
        let (status, at): (u16, u64) = self
            .claim
            .key(self.keys.round())
            .key(self.keys.pass_claims())
            .key(self.keys.active_passes())
            .key(self.keys.reserved())
            .arg(ticket_id)
            .arg(number)
            .arg(now_ms)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match status {
            200 => Claim::Granted { expires_at_ms: at },
            409 => Claim::NotAdmitted,
            410 => Claim::Expired { expired_at_ms: at },
            429 => Claim::RoomFull,
            _ => Claim::RoundClosed,
        })
    }

    /// Runs the admission controller's step; returns how many were admitted.
    pub async fn advance_admission(&self, now_ms: u64) -> redis::RedisResult<u64> {
        self.advance
            .key(self.keys.round())
            .key(self.keys.prequeue())
            .key(self.keys.active_passes())
            .key(self.keys.reserved())
            .arg(now_ms)
            .invoke_async(&mut self.redis.clone())
            .await
    }

    /// Runs the invest script.
    pub async fn invest(&self, new: &NewInvestment<'_>) -> redis::RedisResult<InvestOutcome> {
        let (status, code, investment_id, amount_pence, shares, accepted_at_ms, extra): (
            u16,
            String,
            String,
            i64,
            i64,
            u64,
            i64,
        ) = self
            .invest
            .key(self.keys.round())
            .key(self.keys.investor_totals())
            .key(self.keys.pass_binding(new.ticket_id))
            .key(self.keys.investment(new.investment_id))
            .key(self.keys.settlement_stream())
            .key(self.keys.active_passes())
            .arg(new.investment_id)
            .arg(new.investor_id)
            .arg(new.amount_pence)
            .arg(new.fingerprint)
            .arg(new.now_ms)
            .arg(new.binding_ttl_s)
            .arg(new.ticket_id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(InvestOutcome {
            status,
            code,
            investment_id,
            amount_pence,
            shares,
            accepted_at_ms,
            extra,
        })
    }

    /// One investment's record, if it exists.
    pub async fn investment(&self, investment_id: &str) -> redis::RedisResult<Option<Investment>> {
        let f: HashMap<String, String> = self
            .redis
            .clone()
            .hgetall(self.keys.investment(investment_id))
            .await?;
        if f.is_empty() {
            return Ok(None);
        }
        let int = |name: &str| f.get(name).and_then(|v| v.parse::<i64>().ok());
        let status = match f.get("status").map(String::as_str) {
            Some("settled") => InvestmentStatus::Settled,
            Some("failed") => InvestmentStatus::Failed,
            _ => InvestmentStatus::Accepted,
        };
        Ok(Some(Investment {
            investment_id: investment_id.to_string(),
            round: self.round.clone(),
            investor_id: f.get("investor_id").cloned().unwrap_or_default(),
            amount_pence: int("amount_pence").unwrap_or(0),
            shares: int("shares").unwrap_or(0),
            status,
            accepted_at_ms: int("accepted_at_ms").unwrap_or(0) as u64,
            settled_at_ms: int("settled_at_ms").map(|v| v as u64),
            failure_reason: f.get("failure_reason").cloned(),
        }))
    }

    /// Round trip to Redis, for health checks.
    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async(&mut self.redis.clone())
            .await
    }
}

/// Refuses a Redis that could lose an acknowledged investment on a crash.
pub async fn check_durability(redis: &mut ConnectionManager) -> Result<(), String> {
    let appendonly: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(redis)
        .await
        .map_err(|e| format!("cannot read Redis config (CONFIG GET appendonly): {e}"))?;
    let fsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(redis)
        .await
        .map_err(|e| format!("cannot read Redis config (CONFIG GET appendfsync): {e}"))?;
    let appendonly = appendonly.get(1).map(String::as_str).unwrap_or("");
    let fsync = fsync.get(1).map(String::as_str).unwrap_or("");
    if appendonly != "yes" || fsync != "always" {
        return Err(format!(
            "Redis has appendonly={appendonly}, appendfsync={fsync}: an acknowledged investment could be lost \
             in a crash. Start redis-server with `--appendonly yes --appendfsync always` \
             (or pass --allow-unsafe-redis to core for a throwaway test)"
        ));
    }
    Ok(())
}
