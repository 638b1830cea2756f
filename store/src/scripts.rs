//! Every Lua script of a round, assembled at build time, and the one way a
//! script is called.
//!
//! A script's source is three parts joined with `concat!`: the layout's name
//! tables (generated from [`crate::layout`]), the shared prelude
//! (`lua/prelude.lua`: the clock, the phase machine, sealing the pre-queue),
//! then the script itself (`lua/<name>.lua`, headed by its KEYS, ARGV, what
//! it returns and the invariant it keeps). So each helper and each name
//! exists once in source.
//!
//! Scripts run through `redis::Script`, which sends `EVALSHA` and falls back
//! to `EVAL` on `NOSCRIPT`: a restarted Redis (empty script cache) costs one
//! extra round trip, never an error.

use crate::Connection;
use crate::error::{StoreError, StoreResult};
use redis::{FromRedisValue, Script};
use std::sync::LazyLock;

macro_rules! script_source {
    ($file:literal) => {
        concat!(
            layout!(lua_tables),
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file))
        )
    };
}

/// The layout's names and the prelude alone: what every script starts
/// with (tests run the phase machine through it directly).
pub const PRELUDE: &str = concat!(layout!(lua_tables), include_str!("lua/prelude.lua"));

/// `join.lua`: a queue number, or a place in the pre-queue.
pub const JOIN: &str = script_source!("join.lua");
/// `advance.lua`: the clock and one admission batch.
pub const ADVANCE: &str = script_source!("advance.lua");
/// `claim.lua`: a ticket's one pass claim.
pub const CLAIM: &str = script_source!("claim.lua");
/// `leave.lua`: a visitor gives up their place.
pub const LEAVE: &str = script_source!("leave.lua");
/// `draw_leavers.lua`: the drawn numbers of pre-queue entries that left.
pub const DRAW_LEAVERS: &str = script_source!("draw_leavers.lua");
/// `invest.lua`: one investment against the cap.
pub const INVEST: &str = script_source!("invest.lua");
/// `change.lua`: one audited ops change.
pub const CHANGE: &str = script_source!("change.lua");
/// `settle.lua`: one settlement posting, acked.
pub const SETTLE: &str = script_source!("settle.lua");
/// `forget_consumer.lua`: removes an idle consumer holding nothing.
pub const FORGET_CONSUMER: &str = script_source!("forget_consumer.lua");
/// `create.lua`: a new round and its audit entry.
pub const CREATE: &str = script_source!("create.lua");
/// `archive.lua`: a closed round leaves the live set.
pub const ARCHIVE: &str = script_source!("archive.lua");
/// `open_accounts.lua`: investor accounts, all or none.
pub const OPEN_ACCOUNTS: &str = script_source!("open_accounts.lua");

/// A script by name, with its SHA-1 computed once per process.
pub struct Lua {
    pub name: &'static str,
    pub script: LazyLock<Script>,
}

macro_rules! lua {
    ($name:literal, $source:expr) => {
        Lua {
            name: $name,
            script: LazyLock::new(|| Script::new($source)),
        }
    };
}

pub static JOIN_LUA: Lua = lua!("join.lua", JOIN);
pub static ADVANCE_LUA: Lua = lua!("advance.lua", ADVANCE);
pub static CLAIM_LUA: Lua = lua!("claim.lua", CLAIM);
pub static LEAVE_LUA: Lua = lua!("leave.lua", LEAVE);
pub static DRAW_LEAVERS_LUA: Lua = lua!("draw_leavers.lua", DRAW_LEAVERS);
pub static INVEST_LUA: Lua = lua!("invest.lua", INVEST);
pub static CHANGE_LUA: Lua = lua!("change.lua", CHANGE);
pub static SETTLE_LUA: Lua = lua!("settle.lua", SETTLE);
pub static FORGET_CONSUMER_LUA: Lua = lua!("forget_consumer.lua", FORGET_CONSUMER);
pub static CREATE_LUA: Lua = lua!("create.lua", CREATE);
pub static ARCHIVE_LUA: Lua = lua!("archive.lua", ARCHIVE);
pub static OPEN_ACCOUNTS_LUA: Lua = lua!("open_accounts.lua", OPEN_ACCOUNTS);

/// One call of a script: its KEYS and ARGV in the script's order. Each
/// wrapper builds its call in one function, the only encoding of that
/// script's interface (the benchmark uses the same function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCall {
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

impl ScriptCall {
    /// Runs `lua` with this call's keys and arguments.
    pub async fn invoke<T, C>(&self, lua: &Lua, redis: &mut C) -> StoreResult<T>
    where
        T: FromRedisValue,
        C: Connection,
    {
        let mut invocation = lua.script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in &self.args {
            invocation.arg(arg);
        }
        Ok(invocation.invoke_async(redis).await?)
    }

    /// Appends this call to `pipe` as `EVALSHA` (the caller loads the script
    /// on `NOSCRIPT`).
    pub fn add_to(&self, lua: &Lua, pipe: &mut redis::Pipeline) {
        pipe.cmd("EVALSHA")
            .arg(lua.script.get_hash())
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
    }
}

/// The error for a verdict name `script` does not return.
pub(crate) fn unknown(lua: &Lua, verdict: &str) -> StoreError {
    StoreError::UnknownVerdict {
        script: lua.name,
        verdict: verdict.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_script_is_names_then_prelude_then_its_own_header() {
        for (source, name) in [
            (JOIN, "join.lua"),
            (ADVANCE, "advance.lua"),
            (CLAIM, "claim.lua"),
            (LEAVE, "leave.lua"),
            (DRAW_LEAVERS, "draw_leavers.lua"),
            (INVEST, "invest.lua"),
            (CHANGE, "change.lua"),
            (SETTLE, "settle.lua"),
            (FORGET_CONSUMER, "forget_consumer.lua"),
            (OPEN_ACCOUNTS, "open_accounts.lua"),
            (CREATE, "create.lua"),
            (ARCHIVE, "archive.lua"),
        ] {
            let names = source.find("local R = strict(").unwrap();
            let prelude = source.find("-- prelude.lua:").unwrap();
            let own = source.find(&format!("-- {name}:")).unwrap();
            assert!(names < prelude && prelude < own, "{name}");
            // The prelude is defined once, in front, and nowhere else.
            assert_eq!(source.matches("local function move_phase").count(), 1);
        }
    }
}
