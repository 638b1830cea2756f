//! The names inside a round's keys — the fields of its hashes and stream
//! entries, its phases and investment statuses — each spelled once.
//!
//! The list below is expanded twice: into the Rust constants of this module
//! (`layout::round::RAISED_PENCE`, ...) and into Lua tables (`R.RAISED_PENCE`,
//! ...) that [`crate::scripts`] puts in front of every script at build time.
//! So Rust and Lua cannot disagree on a name, and in Lua the tables are
//! strict: a misspelt name stops the script instead of reading `nil`.

/// The one list of names; `$then` is the macro that expands it.
macro_rules! layout {
    ($then:ident) => {
        $then! {
            /// The round hash ([`crate::RoundKeys::round`]): config, set when
            /// the round is seeded or by ops, and live counters, kept by the
            /// scripts. Decoded by [`crate::RoundRecord`].
            round ("R", "the round hash") {
                /// Shown to investors.
                NAME = "name",
                /// Who may join: "required" (signed-in investors, one place
                /// each) or "anonymous". Absent reads as "required".
                IDENTITY = "identity",
                /// Where the round is in its life (see [`crate::layout::phase`]).
                PHASE = "phase",
                /// The most the round may raise.
                CAP_PENCE = "cap_pence",
                MIN_INVESTMENT_PENCE = "min_investment_pence",
                /// A total per investor.
                MAX_INVESTMENT_PENCE = "max_investment_pence",
                SHARE_PRICE_PENCE = "share_price_pence",
                /// People admitted per minute.
                RATE_PER_MINUTE = "rate_per_minute",
                /// One admission batch every this many ms.
                BATCH_INTERVAL_MS = "batch_interval_ms",
                /// Most active investors (claimed passes + reservations) at once.
                MAX_ACTIVE = "max_active",
                PASS_TTL_SECONDS = "pass_ttl_seconds",
                /// How long an admitted number's place is held for its claim.
                CLAIM_WINDOW_SECONDS = "claim_window_seconds",
                /// accepted − released; never above the cap.
                RAISED_PENCE = "raised_pence",
                /// Every accepted investment's amount, ever (only grows).
                ACCEPTED_PENCE = "accepted_pence",
                /// Amounts given back by failed settlements (only grows).
                RELEASED_PENCE = "released_pence",
                /// Investments accepted (= settlement stream length).
                ACCEPTED_COUNT = "accepted_count",
                /// Investors with at least one accepted investment.
                INVESTOR_COUNT = "investor_count",
                /// The last queue number handed out.
                ISSUED = "issued",
                /// Every number up to this one is admitted.
                ADMITTED_UP_TO = "admitted_up_to",
                /// When the last admission batch was due (Unix ms).
                LAST_ADVANCE_MS = "last_advance_ms",
                /// The part of a person admission still owes, carried from
                /// batch to batch so that batches of rate × interval that
                /// are not whole people add up to the rate exactly: in
                /// people × ms per minute (0 ≤ carry < 60,000 = one person).
                ADMISSION_CARRY = "admission_carry",
                /// When a scheduled round opens (Unix ms, 0 = not set).
                OPENS_AT_MS = "opens_at_ms",
                /// When the round closes (Unix ms, 0 = not set).
                CLOSES_AT_MS = "closes_at_ms",
                /// "1" once the pre-queue's numbers are drawn.
                PREQUEUE_SEALED = "prequeue_sealed",
                /// How many were in the pre-queue when it was sealed.
                PREQUEUE_SIZE = "prequeue_size",
                /// The pre-queue draw's secret (64 hex digits, from core's
                /// CSPRNG at seeding): never shown until the seal, then
                /// published (`crowdgate_protocol::draw`).
                DRAW_SECRET = "draw_secret",
                /// SHA-256 of the secret, hex: published from the start.
                DRAW_COMMITMENT = "draw_commitment",
                /// The hash chain over pre-queue entries in join order,
                /// from the commitment (`join.lua` extends it per entry).
                DRAW_ENTRIES_DIGEST = "draw_entries_digest",
                /// The admission rate achieved while people wait, smoothed
                /// over about a minute: people per minute × 1000 (kept by
                /// `advance.lua`; a normalised exponentially weighted mean).
                ACHIEVED_RATE_MILLI_PER_MINUTE = "achieved_rate_milli_per_minute",
                /// When the achieved rate was last measured (Unix ms); 0
                /// while it is not being measured (nobody waits, or the
                /// round is not open), so such a gap never counts.
                ACHIEVED_RATE_AT_MS = "achieved_rate_at_ms",
                /// How much measured time (ms) the achieved rate rests on
                /// since the round last opened or resumed, or its rate was
                /// changed.
                ACHIEVED_RATE_MEASURED_MS = "achieved_rate_measured_ms",
                /// When ops last changed `rate_per_minute` (Unix ms, 0 = never).
                RATE_CHANGED_AT_MS = "rate_changed_at_ms",
            }
            /// One investment's record ([`crate::RoundKeys::investment`]).
            investment ("I", "an investment record") {
                INVESTMENT_ID = "investment_id",
                INVESTOR_ID = "investor_id",
                AMOUNT_PENCE = "amount_pence",
                SHARES = "shares",
                /// See [`crate::layout::status`].
                STATUS = "status",
                ACCEPTED_AT_MS = "accepted_at_ms",
                SETTLED_AT_MS = "settled_at_ms",
                FAILURE_REASON = "failure_reason",
                /// Hash of the request (investor, amount): a replay must match it.
                FINGERPRINT = "fingerprint",
            }
            /// The ledger totals hash ([`crate::RoundKeys::ledger`]).
            ledger ("L", "the ledger hash") {
                ESCROW_PENCE = "escrow_pence",
                DEBITS_PENCE = "debits_pence",
                CREDITS_PENCE = "credits_pence",
                SETTLED_COUNT = "settled_count",
                FAILED_COUNT = "failed_count",
                FAILED_PENCE = "failed_pence",
                SHARES_ALLOCATED = "shares_allocated",
            }
            /// The deployment's accounts totals ([`crate::keys::deployment::ACCOUNTS`]):
            /// what was opened and what settlement has debited, in every round.
            /// Σ balances + debited = opened, at every moment.
            accounts ("AC", "the accounts totals") {
                /// Σ opening balances of every account.
                OPENED_PENCE = "opened_pence",
                OPENED_COUNT = "opened_count",
                /// Σ settled investments, every round (= Σ rounds' ledger debits).
                DEBITED_PENCE = "debited_pence",
            }
            /// An entry of the settlement stream (and, with `SOURCE_ENTRY`
            /// and `REASON`, of its dead-letter stream).
            entry ("E", "a settlement stream entry") {
                INVESTMENT_ID = "investment_id",
                INVESTOR_ID = "investor_id",
                AMOUNT_PENCE = "amount_pence",
                SHARES = "shares",
                ACCEPTED_AT_MS = "accepted_at_ms",
                /// Dead letters: the id of the entry in the settlement stream.
                SOURCE_ENTRY = "source_entry",
                /// Dead letters: why it was given up.
                REASON = "reason",
            }
            /// An entry of the journal stream ([`crate::RoundKeys::journal`]).
            journal ("J", "a journal entry") {
                INVESTMENT_ID = "investment_id",
                DEBIT = "debit",
                CREDIT = "credit",
                AMOUNT_PENCE = "amount_pence",
                SHARES = "shares",
                AT_MS = "at_ms",
            }
            /// An entry of the audit stream ([`crate::RoundKeys::audit`]): plus,
            /// per changed field, `<field>.old` and `<field>.new`.
            audit ("A", "an audit entry") {
                AT_MS = "at_ms",
                OPERATOR = "operator",
                ACTION = "action",
                OLD_SUFFIX = ".old",
                NEW_SUFFIX = ".new",
            }
            /// The values of [`crate::layout::round::PHASE`]; the same words as
            /// `crowdgate_protocol::RoomPhase` (a test checks).
            phase ("P", "the phases") {
                SCHEDULED = "scheduled",
                OPEN = "open",
                PAUSED = "paused",
                FULL = "full",
                CLOSED = "closed",
            }
            /// The values of [`crate::layout::investment::STATUS`].
            status ("S", "the investment statuses") {
                ACCEPTED = "accepted",
                SETTLED = "settled",
                FAILED = "failed",
            }
        }
    };
}

/// Expands the list into one module of constants per group.
macro_rules! rust_consts {
    ($(
        $(#[$group_doc:meta])*
        $group:ident ($lua:literal, $what:literal) {
            $( $(#[$doc:meta])* $name:ident = $value:literal, )*
        }
    )*) => {
        $(
            $(#[$group_doc])*
            pub mod $group {
                $( $(#[$doc])* pub const $name: &str = $value; )*
                /// Every name of this group, in the order above.
                pub const ALL: &[&str] = &[$($value),*];
            }
        )*
    };
}

/// Expands the list into Lua: a strict table per group (a string literal,
/// so it can be `concat!`ed with the scripts' sources).
macro_rules! lua_tables {
    ($(
        $(#[$group_doc:meta])*
        $group:ident ($lua:literal, $what:literal) {
            $( $(#[$doc:meta])* $name:ident = $value:literal, )*
        }
    )*) => {
        concat!(
            "-- Generated by crowdgate-store (layout.rs): the names of the round's fields,\n",
            "-- phases and statuses. Reading a name that is not there stops the script.\n",
            "local function strict(what, names)\n",
            "  return setmetatable(names, {__index = function(_, name)\n",
            "    error(what .. ' has no name ' .. tostring(name), 2)\n",
            "  end})\n",
            "end\n",
            $(
                "local ", $lua, " = strict('", $what, "', {",
                $( stringify!($name), " = '", $value, "', ", )*
                "})\n",
            )*
        )
    };
}

layout!(rust_consts);

#[cfg(test)]
mod tests {
    use super::*;
    use crowdgate_protocol::RoomPhase;

    #[test]
    fn phases_are_the_protocols_words() {
        for p in [
            RoomPhase::Scheduled,
            RoomPhase::Open,
            RoomPhase::Paused,
            RoomPhase::Full,
            RoomPhase::Closed,
        ] {
            assert!(phase::ALL.contains(&p.as_str()), "{p:?}");
        }
        assert_eq!(phase::ALL.len(), 5);
    }

    #[test]
    fn names_are_unique_within_a_group() {
        for group in [
            round::ALL,
            investment::ALL,
            ledger::ALL,
            accounts::ALL,
            entry::ALL,
            journal::ALL,
            audit::ALL,
        ] {
            let mut names = group.to_vec();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), group.len(), "{group:?}");
        }
    }

    #[test]
    fn the_lua_tables_name_every_field() {
        let lua = layout!(lua_tables);
        assert!(lua.contains("local R = strict('the round hash', {NAME = 'name', "));
        assert!(lua.contains("RAISED_PENCE = 'raised_pence'"));
        assert!(lua.contains("local S = strict('the investment statuses', {"));
    }
}
