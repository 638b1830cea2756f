//! Joining the queue (`join.lua`): a number, or a place in the pre-queue
//! before the round opens.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::round::RoundStore;
use crate::scripts::{JOIN_LUA, ScriptCall, unknown};

/// Where a join put the visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Before opening: pre-queue entry `entry` (join order); its number is
    /// drawn from it at opening (`crowdgate_protocol::draw`).
    Prequeue { entry: u64 },
    /// A queue number.
    Numbered(u64),
}

/// A join's answer: the place, the ticket that holds it, and whether it is
/// the investor's existing place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub placement: Placement,
    pub ticket_id: String,
    /// The investor already held this live place (another browser, device
    /// or app): no new place was taken.
    pub rejoined: bool,
}

/// Who joins: the signed-in investor and their own maximum (pence) from
/// this sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joiner<'a> {
    pub investor_id: &'a str,
    pub max_investment_pence: Option<i64>,
}

/// `join.lua`'s KEYS and ARGV; `joiner` is `None` in an anonymous room.
pub fn join_call(
    keys: &RoundKeys,
    ticket_id: &str,
    now_ms: u64,
    joiner: Option<Joiner<'_>>,
) -> ScriptCall {
    ScriptCall {
        keys: vec![
            keys.round(),
            keys.prequeue(),
            keys.investor_places(),
            keys.pass_claims(),
            keys.investor_limits(),
        ],
        args: vec![
            ticket_id.to_string(),
            now_ms.to_string(),
            joiner
                .map(|j| j.investor_id)
                .unwrap_or_default()
                .to_string(),
            joiner
                .and_then(|j| j.max_investment_pence)
                .unwrap_or(-1)
                .to_string(),
        ],
    }
}

impl RoundStore {
    /// The investor's live place if they hold one, else a new place for
    /// `ticket_id`: the next pre-queue entry before opening, else the next
    /// number (unique and increasing across
    /// replicas). Records the joiner's own maximum (the latest sign-in's
    /// wins). Without an investor, a new place if the round is anonymous,
    /// else `None`: the round needs a signed-in investor.
    pub async fn join(
        &self,
        ticket_id: &str,
        now_ms: u64,
        joiner: Option<Joiner<'_>>,
    ) -> StoreResult<Option<Joined>> {
        let mut conn = self.redis.pin().await?;
        let (verdict, number, ticket, entry): (String, u64, String, u64) =
            join_call(&self.keys, ticket_id, now_ms, joiner)
                .invoke(&JOIN_LUA, &mut conn)
                .await?;
        // The visitor is told their place: it must outlive a failover.
        self.redis.confirm(conn.generation()).await?;
        let placement = |number| match number {
            0 => Placement::Prequeue { entry },
            n => Placement::Numbered(n),
        };
        let (placement, rejoined) = match verdict.as_str() {
            "prequeue" => (Placement::Prequeue { entry }, false),
            "numbered" => (Placement::Numbered(number), false),
            "rejoined" => (placement(number), true),
            "identity_required" => return Ok(None),
            "not_seeded" => return Err(self.not_seeded()),
            other => return Err(unknown(&JOIN_LUA, other)),
        };
        Ok(Some(Joined {
            placement,
            ticket_id: ticket,
            rejoined,
        }))
    }
}
