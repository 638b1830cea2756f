//! Leaving the queue (`leave.lua`): a visitor gives up their place for
//! good — passed over at the draw if it leaves the pre-queue, skipped by admission while
//! waiting, or their reservation freed once admitted — and their ticket is
//! spent.

use crate::draw::PrequeueNumber;
use crate::error::{StoreError, StoreResult};
use crate::keys::RoundKeys;
use crate::round::RoundStore;
use crate::scripts::{LEAVE_LUA, ScriptCall, unknown};

/// What leaving the queue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveVerdict {
    /// The place is given up (now, or by an earlier call: leaving again
    /// answers the same). `queue_number` is the number given up; `None` for
    /// a pre-queue place left before the draw.
    Left { queue_number: Option<u64> },
    /// The ticket claimed its pass (its turn is under way, or over at
    /// `expires_at_ms`): leaving gives up nothing, and nothing was written.
    Claimed { expires_at_ms: u64 },
}

/// `leave.lua`'s KEYS and ARGV. `number` is the ticket's queue number
/// (`None` for a pre-queue ticket); `investor_id` its signed-in investor
/// (`None` in an anonymous room).
pub fn leave_call(
    keys: &RoundKeys,
    ticket_id: &str,
    number: Option<u64>,
    investor_id: Option<&str>,
    now_ms: u64,
) -> ScriptCall {
    ScriptCall {
        keys: vec![
            keys.round(),
            keys.prequeue(),
            keys.left(),
            keys.pass_claims(),
            keys.reserved(),
            keys.investor_places(),
        ],
        args: vec![
            ticket_id.to_string(),
            number.unwrap_or(0).to_string(),
            now_ms.to_string(),
            investor_id.unwrap_or_default().to_string(),
        ],
    }
}

impl RoundStore {
    /// Gives up ticket `ticket_id`'s place (number `number`, `None` in the
    /// pre-queue), held by `investor_id`: once; a ticket that claimed its
    /// pass keeps it.
    pub async fn leave(
        &self,
        ticket_id: &str,
        number: Option<u64>,
        investor_id: Option<&str>,
        now_ms: u64,
    ) -> StoreResult<LeaveVerdict> {
        let mut conn = self.redis.pin().await?;
        let (mut verdict, mut at): (String, i64) =
            leave_call(&self.keys, ticket_id, number, investor_id, now_ms)
                .invoke(&LEAVE_LUA, &mut conn)
                .await?;
        if verdict == "needs_number" && number.is_none() {
            // A pre-queue ticket whose number was drawn: leave with it.
            let drawn = match self.prequeue_number(ticket_id).await? {
                PrequeueNumber::Drawn(drawn) => drawn,
                other => {
                    return Err(StoreError::Corrupt {
                        key: self.keys.prequeue(),
                        field: ticket_id.to_string(),
                        value: format!("{other:?}"),
                        expected: "a drawn number for a sealed pre-queue entry",
                    });
                }
            };
            (verdict, at) = leave_call(&self.keys, ticket_id, Some(drawn), investor_id, now_ms)
                .invoke(&LEAVE_LUA, &mut conn)
                .await?;
        }
        // The visitor is told their place is gone (and may join again at
        // the back): that must outlive a failover.
        self.redis.confirm(conn.generation()).await?;
        match verdict.as_str() {
            "left" => Ok(LeaveVerdict::Left {
                queue_number: u64::try_from(at).ok().filter(|n| *n > 0),
            }),
            "claimed" => Ok(LeaveVerdict::Claimed {
                expires_at_ms: at.max(0) as u64,
            }),
            "not_seeded" => Err(self.not_seeded()),
            other => Err(unknown(&LEAVE_LUA, other)),
        }
    }
}
