//! The Redis key layout of one round: every key name is built here and
//! nowhere else.
//!
//! Every key of a round carries the hash tag `{<round>}`, so the whole round
//! lives in one cluster slot and a single script may touch any of its keys.

pub use crowdgate_protocol::routes::check_round_id;

/// Names of a round's Redis keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundKeys {
    prefix: String,
}

impl RoundKeys {
    pub fn new(round: &str) -> RoundKeys {
        RoundKeys {
            prefix: format!("cg:{{{round}}}"),
        }
    }

    /// Hash: round config (cap, limits, admission settings) and live counters
    /// (raised, issued, admitted_up_to, phase). One hash so one script reads
    /// it all. Fields: [`crate::layout::round`].
    pub fn round(&self) -> String {
        format!("{}:round", self.prefix)
    }
    /// Hash: investor id → total accepted pence in this round.
    pub fn investor_totals(&self) -> String {
        format!("{}:investor_totals", self.prefix)
    }
    /// Hash: one investment's record. Fields: [`crate::layout::investment`].
    pub fn investment(&self, investment_id: &str) -> String {
        format!("{}:investment:{investment_id}", self.prefix)
    }
    /// String: the investor a pass (by ticket id) is bound to.
    pub fn pass_binding(&self, ticket_id: &str) -> String {
        format!("{}:pass:{ticket_id}", self.prefix)
    }
    /// Hash: investor id → their place, `"<ticket id> <number>"` (number 0
    /// for a pre-queue place): one place per signed-in investor.
    pub fn investor_places(&self) -> String {
        format!("{}:investor_places", self.prefix)
    }
    /// Hash: investor id → their own maximum in pence, from their latest
    /// sign-in (absent: none). The invest script applies it, so a limit the
    /// platform lowers binds even passes signed before.
    pub fn investor_limits(&self) -> String {
        format!("{}:investor_limits", self.prefix)
    }
    /// Sorted set: pre-queue ticket ids scored by their lottery draw.
    pub fn prequeue(&self) -> String {
        format!("{}:prequeue", self.prefix)
    }
    /// Sorted set: tickets whose holders left the queue, scored by the
    /// number they gave up (0: a pre-queue place left before the draw).
    /// Admission skips the numbers above its cursor; leaving again finds
    /// the ticket here and answers the same.
    pub fn left(&self) -> String {
        format!("{}:left", self.prefix)
    }
    /// Hash: ticket id → when its pass claim expires (Unix ms). A ticket
    /// claims a pass once.
    pub fn pass_claims(&self) -> String {
        format!("{}:pass_claims", self.prefix)
    }
    /// Sorted set: tickets holding a live, unfinished pass, scored by expiry
    /// (Unix ms). Its size is the number of active investors.
    pub fn active_passes(&self) -> String {
        format!("{}:active", self.prefix)
    }
    /// Sorted set: admitted queue numbers that have not claimed their pass
    /// yet, scored by when their reservation lapses (Unix ms).
    pub fn reserved(&self) -> String {
        format!("{}:reserved", self.prefix)
    }
    /// Stream: accepted investments waiting for settlement, read by the
    /// consumer group [`SETTLEMENT_GROUP`]. Fields: [`crate::layout::entry`].
    pub fn settlement_stream(&self) -> String {
        format!("{}:settlement", self.prefix)
    }
    /// Stream: settlement entries that kept failing (poison), with the reason.
    pub fn dead_letters(&self) -> String {
        format!("{}:settlement:dead", self.prefix)
    }
    /// Stream: every ops change (who, when, old and new values). Fields:
    /// [`crate::layout::audit`].
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }
    /// Hash: investor id → shares allocated.
    pub fn shares(&self) -> String {
        format!("{}:shares", self.prefix)
    }
    /// Hash: ledger totals (escrow balance, total debits, total credits,
    /// counts). Fields: [`crate::layout::ledger`].
    pub fn ledger(&self) -> String {
        format!("{}:ledger", self.prefix)
    }
    /// Stream: the append-only journal of postings. Fields:
    /// [`crate::layout::journal`].
    pub fn journal(&self) -> String {
        format!("{}:journal", self.prefix)
    }
}

/// Names of the deployment's own keys: those that belong to no one round.
///
/// They carry no round's hash tag, so a script that touches them and a
/// round's keys (creating or archiving a round) needs every key on one
/// primary: the deployment runs on one Redis primary under Sentinel (see
/// docs/DEPLOY.md), never Redis Cluster.
pub mod deployment {
    /// Set: the ids of the rounds this deployment runs (created, not
    /// archived). core drives each one's admission and serves its API.
    pub const ROUNDS: &str = "cg:rounds";
    /// Set: archived round ids: closed, kept for their records and the
    /// books, no longer run or listed by default.
    pub const ARCHIVED_ROUNDS: &str = "cg:rounds:archived";
    /// Hash: investor id → available balance in pence. An investor's money
    /// is theirs, not a round's: every round's settlement debits it.
    pub const BALANCES: &str = "cg:accounts:balances";
    /// Hash: the accounts totals. Fields: [`crate::layout::accounts`].
    pub const ACCOUNTS: &str = "cg:accounts";
}

/// The consumer group settlement workers share.
pub const SETTLEMENT_GROUP: &str = "settlement";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_round_hash_tag() {
        let k = RoundKeys::new("demo");
        for key in [
            k.round(),
            k.investor_totals(),
            k.investment("i"),
            k.pass_binding("t"),
            k.prequeue(),
            k.left(),
            k.pass_claims(),
            k.active_passes(),
            k.reserved(),
            k.settlement_stream(),
            k.dead_letters(),
            k.audit(),
            k.shares(),
            k.ledger(),
            k.journal(),
        ] {
            assert!(key.starts_with("cg:{demo}:"), "{key}");
        }
    }
}
