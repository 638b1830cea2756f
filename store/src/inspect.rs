//! Direct reads and writes for tests, benchmarks and tools: one field, one
//! stream's length, a balance set outright. They bypass the scripts'
//! checks, so production code never uses them.

use crate::Connection;
use crate::error::StoreResult;
use crate::keys::RoundKeys;
use redis::AsyncCommands;

/// A hash field as an integer (absent: 0).
pub async fn int_field<C: Connection>(redis: &mut C, key: &str, field: &str) -> StoreResult<i64> {
    let value: Option<i64> = redis.hget(key, field).await?;
    Ok(value.unwrap_or(0))
}

/// A stream's length (absent: 0).
pub async fn stream_len<C: Connection>(redis: &mut C, key: &str) -> StoreResult<u64> {
    Ok(redis.xlen(key).await?)
}

/// Sets investors' balances outright (a test's funding; the real import is
/// [`crate::Settlement::open_accounts`], all or none).
pub async fn set_balances<C: Connection>(
    redis: &mut C,
    keys: &RoundKeys,
    accounts: &[(&str, i64)],
) -> StoreResult<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let _: () = redis.hset_multiple(keys.balances(), accounts).await?;
    Ok(())
}
