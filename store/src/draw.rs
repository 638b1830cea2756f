//! The pre-queue draw, as the store keeps it: the number a pre-queue entry
//! drew, and the numbers of entries that left before the draw
//! (`draw_leavers.lua`), which admission must pass over. (The secret a round
//! is seeded with is written by [`RoundStore::seed`].)
//!
//! The draw itself (the keyed permutation, its commitment and key) is
//! `crowdgate_protocol::draw`, computed in Rust: Lua in Redis has no
//! HMAC-SHA256. So the one step that needs drawn numbers inside Redis —
//! knowing which numbers pre-queue leavers held — is done here, between
//! scripts: `advance.lua` admits nobody while a pre-queue leaver's number is
//! unwritten and says so (`draw_unmapped`); [`RoundStore::advance`] then
//! writes them and steps again.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::record::{Fields, RoundRecord};
use crate::round::RoundStore;
use crate::scripts::{DRAW_LEAVERS_LUA, ScriptCall, unknown};

/// The number a pre-queue ticket drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrequeueNumber {
    /// The round has not opened: nothing is drawn yet.
    NotDrawn,
    /// The ticket is not in the pre-queue.
    NotInPrequeue,
    /// The ticket left the queue (`leave.lua`): its number is passed over,
    /// never admitted.
    Left,
    /// Its number.
    Drawn(u64),
}

/// `draw_leavers.lua`'s KEYS and ARGV: each leaver's ticket id and number.
pub fn draw_leavers_call(keys: &RoundKeys, numbers: &[(String, u64)]) -> ScriptCall {
    ScriptCall {
        keys: vec![keys.round(), keys.prequeue(), keys.left()],
        args: numbers
            .iter()
            .flat_map(|(ticket, number)| [ticket.clone(), number.to_string()])
            .collect(),
    }
}

impl RoundStore {
    /// The number pre-queue ticket `ticket_id` drew at opening.
    pub async fn prequeue_number(&self, ticket_id: &str) -> StoreResult<PrequeueNumber> {
        let (fields, entry, left): (Fields, Option<u64>, Option<i64>) = redis::pipe()
            .atomic()
            .hgetall(self.keys.round())
            .zscore(self.keys.prequeue(), ticket_id)
            .zscore(self.keys.left(), ticket_id)
            .query_async(&mut self.conn())
            .await?;
        let Some(round) = RoundRecord::decode(&self.keys.round(), &fields)? else {
            return Err(self.not_seeded());
        };
        let Some(sealed) = round.sealed_draw() else {
            return Ok(PrequeueNumber::NotDrawn);
        };
        Ok(match (entry.and_then(|e| sealed.number(e)), left) {
            (None, _) => PrequeueNumber::NotInPrequeue,
            (Some(_), Some(_)) => PrequeueNumber::Left,
            (Some(number), _) => PrequeueNumber::Drawn(number),
        })
    }

    /// Writes the drawn numbers of every pre-queue entry that left before
    /// the draw into `left`, so admission passes over them. Returns how
    /// many were written (0 when the pre-queue is not sealed).
    pub async fn write_drawn_leavers(&self) -> StoreResult<u64> {
        let (fields, leavers): (Fields, Vec<String>) = redis::pipe()
            .atomic()
            .hgetall(self.keys.round())
            .zrangebyscore(self.keys.left(), 0, 0)
            .query_async(&mut self.conn())
            .await?;
        let Some(round) = RoundRecord::decode(&self.keys.round(), &fields)? else {
            return Err(self.not_seeded());
        };
        let Some(sealed) = round.sealed_draw() else {
            return Ok(0);
        };
        let entries: Vec<Option<u64>> = if leavers.is_empty() {
            Vec::new()
        } else {
            redis::cmd("ZMSCORE")
                .arg(self.keys.prequeue())
                .arg(&leavers)
                .query_async(&mut self.conn())
                .await?
        };
        // A 0 in `left` outside the pre-queue has no entry, so no number:
        // the script marks it -1.
        let numbers: Vec<(String, u64)> = leavers
            .into_iter()
            .zip(entries)
            .filter_map(|(ticket, entry)| Some((ticket, sealed.number(entry?)?)))
            .collect();
        let (verdict, unwritten): (String, u64) = draw_leavers_call(&self.keys, &numbers)
            .invoke(&DRAW_LEAVERS_LUA, &mut self.conn())
            .await?;
        match verdict.as_str() {
            "written" if unwritten == 0 => Ok(numbers.len() as u64),
            "written" => Err(crate::error::StoreError::Corrupt {
                key: self.keys.left(),
                field: "number".into(),
                value: "0".into(),
                expected: "a drawn number for every pre-queue entry that left",
            }),
            "not_sealed" => Ok(0),
            "not_seeded" => Err(self.not_seeded()),
            other => Err(unknown(&DRAW_LEAVERS_LUA, other)),
        }
    }
}
