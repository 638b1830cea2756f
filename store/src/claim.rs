//! Claiming a pass (`claim.lua`): once per ticket, turning the number's
//! reservation into an active place.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::round::RoundStore;
use crate::scripts::{CLAIM_LUA, ScriptCall, unknown};

/// What a pass claim got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimVerdict {
    /// Claimed (now or before); the pass lasts until this Unix ms.
    Granted { expires_at_ms: u64 },
    /// The ticket's number is not admitted yet.
    NotAdmitted,
    /// The ticket's pass expired at this Unix ms; it is never claimed again.
    Expired { expired_at_ms: u64 },
    /// The round is closed (or past its closing time).
    RoundClosed,
    /// Admitted, but the claim window lapsed and the room is full right now.
    RoomFull,
}

/// `claim.lua`'s KEYS and ARGV.
pub fn claim_call(keys: &RoundKeys, ticket_id: &str, number: u64, now_ms: u64) -> ScriptCall {
    ScriptCall {
        keys: vec![
            keys.round(),
            keys.pass_claims(),
            keys.active_passes(),
            keys.reserved(),
        ],
        args: vec![
            ticket_id.to_string(),
            number.to_string(),
            now_ms.to_string(),
        ],
    }
}

impl RoundStore {
    /// Records ticket `ticket_id`'s (number `number`) pass claim, once.
    pub async fn claim_pass(
        &self,
        ticket_id: &str,
        number: u64,
        now_ms: u64,
    ) -> StoreResult<ClaimVerdict> {
        let mut conn = self.redis.pin().await?;
        let (verdict, at): (String, u64) = claim_call(&self.keys, ticket_id, number, now_ms)
            .invoke(&CLAIM_LUA, &mut conn)
            .await?;
        // A pass is handed out (or refused) only on replicated state.
        self.redis.confirm(conn.generation()).await?;
        match verdict.as_str() {
            "granted" => Ok(ClaimVerdict::Granted { expires_at_ms: at }),
            "not_admitted" => Ok(ClaimVerdict::NotAdmitted),
            "expired" => Ok(ClaimVerdict::Expired { expired_at_ms: at }),
            "round_closed" => Ok(ClaimVerdict::RoundClosed),
            "room_full" => Ok(ClaimVerdict::RoomFull),
            "not_seeded" => Err(self.not_seeded()),
            other => Err(unknown(&CLAIM_LUA, other)),
        }
    }
}
