//! The deployment's rounds: which exist, creating one from ops' settings,
//! and archiving a closed one. One deployment runs many rounds side by
//! side; each keeps its own keys ([`RoundKeys`]) and every guarantee it
//! has alone, and the set of live round ids ([`deployment::ROUNDS`]) is
//! what core drives and serves.

use crate::Connection;
use crate::error::StoreResult;
use crate::keys::{RoundKeys, deployment};
use crate::round::{RoundSettings, RoundStore, draw_fields};
use crate::scripts::{ARCHIVE_LUA, CREATE_LUA, ScriptCall, unknown};
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::draw;
use redis::AsyncCommands;

/// What creating a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The round exists now; its audit entry's id.
    Created { audit_id: String },
    /// A round with this id exists already (live or archived): nothing
    /// was written. Ids are never reused.
    Exists,
}

/// What archiving a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archived {
    Archived {
        audit_id: String,
    },
    /// Archived before: nothing written.
    Already,
    /// Only a closed round is archived.
    WrongPhase {
        phase: RoomPhase,
    },
}

/// The ids of the live rounds (created or seeded, not archived), sorted.
pub async fn live_rounds(conn: &mut impl Connection) -> StoreResult<Vec<String>> {
    let mut ids: Vec<String> = conn.smembers(deployment::ROUNDS).await?;
    ids.sort();
    Ok(ids)
}

/// The ids of the archived rounds, sorted.
pub async fn archived_rounds(conn: &mut impl Connection) -> StoreResult<Vec<String>> {
    let mut ids: Vec<String> = conn.smembers(deployment::ARCHIVED_ROUNDS).await?;
    ids.sort();
    Ok(ids)
}

/// Every round of the deployment, live and archived, sorted: what
/// reconciliation checks and the edge may serve (an archived round's
/// investments and receipts are still read).
pub async fn every_round(conn: &mut impl Connection) -> StoreResult<Vec<String>> {
    let (mut live, archived): (Vec<String>, Vec<String>) = redis::pipe()
        .smembers(deployment::ROUNDS)
        .smembers(deployment::ARCHIVED_ROUNDS)
        .query_async(conn)
        .await?;
    live.extend(archived);
    live.sort();
    Ok(live)
}

/// Whether `round` names a round of this deployment, live or archived
/// (an archived round's investments and receipts are still read).
pub async fn exists(conn: &mut impl Connection, round: &str) -> StoreResult<bool> {
    let (live, archived): (bool, bool) = redis::pipe()
        .sismember(deployment::ROUNDS, round)
        .sismember(deployment::ARCHIVED_ROUNDS, round)
        .query_async(conn)
        .await?;
    Ok(live || archived)
}

/// `create.lua`'s KEYS and ARGV.
pub fn create_call(
    round: &str,
    settings: &RoundSettings,
    draw_random: &[u8; draw::SECRET_BYTES],
    operator: &str,
    now_ms: u64,
) -> ScriptCall {
    let keys = RoundKeys::new(round);
    let mut args = vec![operator.to_string(), now_ms.to_string()];
    for (field, value) in settings
        .fields()
        .into_iter()
        .chain(draw_fields(draw_random))
    {
        args.push(field.to_string());
        args.push(value);
    }
    ScriptCall {
        keys: vec![
            keys.round(),
            keys.audit(),
            deployment::ROUNDS.to_string(),
            deployment::ARCHIVED_ROUNDS.to_string(),
        ],
        args,
    }
}

impl RoundStore {
    /// Creates this round with `settings` (ops, through the API), unless a
    /// round with its id exists. `draw_random`: 32 bytes from the caller's
    /// CSPRNG, the pre-queue draw's secret.
    pub async fn create(
        &self,
        settings: &RoundSettings,
        draw_random: &[u8; draw::SECRET_BYTES],
        operator: &str,
        now_ms: u64,
    ) -> StoreResult<Created> {
        let mut conn = self.redis.pin().await?;
        let (verdict, detail): (String, String) =
            create_call(&self.round, settings, draw_random, operator, now_ms)
                .invoke(&CREATE_LUA, &mut conn)
                .await?;
        self.redis.confirm(conn.generation()).await?;
        match verdict.as_str() {
            "created" => Ok(Created::Created { audit_id: detail }),
            "exists" => Ok(Created::Exists),
            other => Err(unknown(&CREATE_LUA, other)),
        }
    }

    /// Archives this round if it is closed.
    pub async fn archive(&self, operator: &str, now_ms: u64) -> StoreResult<Archived> {
        let mut conn = self.redis.pin().await?;
        let call = ScriptCall {
            keys: vec![
                self.keys.round(),
                self.keys.audit(),
                deployment::ROUNDS.to_string(),
                deployment::ARCHIVED_ROUNDS.to_string(),
            ],
            args: vec![operator.to_string(), now_ms.to_string()],
        };
        let (verdict, detail): (String, String) = call.invoke(&ARCHIVE_LUA, &mut conn).await?;
        self.redis.confirm(conn.generation()).await?;
        match verdict.as_str() {
            "archived" => Ok(Archived::Archived { audit_id: detail }),
            "already" => Ok(Archived::Already),
            "wrong_phase" => Ok(Archived::WrongPhase {
                phase: RoomPhase::parse(&detail)
                    .ok_or_else(|| unknown(&ARCHIVE_LUA, &format!("{verdict} {detail}")))?,
            }),
            "not_seeded" => Err(self.not_seeded()),
            other => Err(unknown(&ARCHIVE_LUA, other)),
        }
    }
}
