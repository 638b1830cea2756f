//! Direct reads and writes for tests, benchmarks and tools: one field, one
//! stream's length, a balance set outright. They bypass the scripts'
//! checks, so production code never uses them.

use crate::Connection;
use crate::error::StoreResult;
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
///
/// The accounts totals grow with them, as an import's would (the opened
/// total by the balance set, less any balance it replaces), so the books
/// still balance.
pub async fn set_balances<C: Connection>(
    redis: &mut C,
    accounts: &[(&str, i64)],
) -> StoreResult<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    for (investor, pence) in accounts {
        let old: Option<i64> = redis
            .hget(crate::keys::deployment::BALANCES, *investor)
            .await?;
        let _: () = redis::pipe()
            .atomic()
            .hset(crate::keys::deployment::BALANCES, *investor, *pence)
            .hincr(
                crate::keys::deployment::ACCOUNTS,
                crate::layout::accounts::OPENED_PENCE,
                pence - old.unwrap_or(0),
            )
            .query_async(redis)
            .await?;
    }
    Ok(())
}
