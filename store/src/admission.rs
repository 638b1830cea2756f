//! One admission step (`advance.lua`): the round's clock, the pre-queue's
//! seal, and at most one batch per batch interval.

use crate::error::StoreResult;
use crate::keys::RoundKeys;
use crate::round::RoundStore;
use crate::scripts::{ADVANCE_LUA, ScriptCall, unknown};

/// What one admission step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// This many more people are admitted (each with a reservation); the
    /// cursor also passed over any numbers whose tickets left the queue,
    /// which are not counted.
    Admitted(u64),
    /// The round is not open (after applying the clock).
    NotOpen,
    /// Less than a batch interval since the last batch.
    NotDue,
    /// A batch was due, but the people it owed (rate × interval, with what
    /// earlier batches carried) are still under one: carried on.
    Accruing,
    /// Active investors are at `max_active`; the next step tries again.
    RoomFull,
    /// Every issued number is already admitted (or its ticket left).
    NobodyWaiting,
}

impl Advance {
    /// How many were admitted (0 unless [`Advance::Admitted`]).
    pub fn admitted(self) -> u64 {
        match self {
            Advance::Admitted(n) => n,
            _ => 0,
        }
    }
}

/// `advance.lua`'s KEYS and ARGV.
pub fn advance_call(keys: &RoundKeys, now_ms: u64) -> ScriptCall {
    ScriptCall {
        keys: vec![
            keys.round(),
            keys.prequeue(),
            keys.active_passes(),
            keys.reserved(),
            keys.left(),
        ],
        args: vec![now_ms.to_string()],
    }
}

impl RoundStore {
    /// Runs one admission step at `now_ms`.
    pub async fn advance(&self, now_ms: u64) -> StoreResult<Advance> {
        let (mut verdict, mut admitted): (String, u64) = advance_call(&self.keys, now_ms)
            .invoke(&ADVANCE_LUA, &mut self.conn())
            .await?;
        if verdict == "draw_unmapped" {
            // The pre-queue was just sealed and some entries left before
            // the draw: write their numbers, then take the step.
            self.write_drawn_leavers().await?;
            (verdict, admitted) = advance_call(&self.keys, now_ms)
                .invoke(&ADVANCE_LUA, &mut self.conn())
                .await?;
        }
        match verdict.as_str() {
            "admitted" => Ok(Advance::Admitted(admitted)),
            "not_open" => Ok(Advance::NotOpen),
            "not_due" => Ok(Advance::NotDue),
            "accruing" => Ok(Advance::Accruing),
            "room_full" => Ok(Advance::RoomFull),
            "nobody_waiting" => Ok(Advance::NobodyWaiting),
            "not_seeded" => Err(self.not_seeded()),
            other => Err(unknown(&ADVANCE_LUA, other)),
        }
    }
}
