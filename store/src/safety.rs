//! Is this Redis safe to acknowledge writes on? The checks core makes
//! before it serves, and [`crate::Redis`] makes of each new primary after a
//! failover: durable on its own disk, and, when writes wait for replicas,
//! refusing writes while cut off from them.
//!
//! Apart from the round's data ([`crate::round`]) and from following the
//! primary ([`crate::connection`]), which both use it.

use crate::Connection;
use redis::RedisError;

/// Every reason the primary in use could lose an acknowledged write: not
/// durable on its disk ([`durability_problem`]), or, when writes wait for
/// `replicas`, taking writes while cut off from them
/// ([`replication_problem`]). Checked by core before it serves and by
/// [`crate::Redis`] on each new primary after a failover. An `Err` means the
/// primary could not be asked (it is unreachable: ask again), not that it
/// is unsafe.
pub async fn primary_problems(
    redis: &mut impl Connection,
    replicas: u32,
) -> Result<Vec<String>, RedisError> {
    let durability = durability_problem(redis).await?;
    let replication = replication_problem(redis, replicas).await?;
    Ok(durability.into_iter().chain(replication).collect())
}

/// With writes waiting for replicas, refuses a primary that would keep
/// taking writes when cut off from them (`min-replicas-to-write` 0): such a
/// primary, partitioned away while Sentinel promotes a replica, would
/// accept writes that the failover then discards.
pub async fn replication_problem(
    redis: &mut impl Connection,
    wanted: u32,
) -> Result<Option<String>, RedisError> {
    if wanted == 0 {
        return Ok(None);
    }
    let min_replicas = config_value(redis, "min-replicas-to-write").await?;
    if min_replicas.parse::<u32>().unwrap_or(0) > 0 {
        return Ok(None);
    }
    Ok(Some(
        concat!(
            "the Redis primary has min-replicas-to-write 0: cut off from its replicas it would ",
            "keep taking writes a failover then loses. Set `min-replicas-to-write 1` (and ",
            "`min-replicas-max-lag`) on every data node, or run with --redis-replicas 0"
        )
        .to_string(),
    ))
}

/// Refuses a Redis that could lose an acknowledged investment on a crash.
pub async fn durability_problem(redis: &mut impl Connection) -> Result<Option<String>, RedisError> {
    let appendonly = config_value(redis, "appendonly").await?;
    let fsync = config_value(redis, "appendfsync").await?;
    if appendonly == "yes" && fsync == "always" {
        return Ok(None);
    }
    Ok(Some(format!(
        "Redis has appendonly={appendonly}, appendfsync={fsync}: an acknowledged investment could be lost \
         in a crash. Start redis-server with `--appendonly yes --appendfsync always` \
         (or pass --allow-unsafe-redis to core for a throwaway test)"
    )))
}

/// One setting of the Redis in use (`CONFIG GET`), "" if it has none.
async fn config_value(redis: &mut impl Connection, name: &str) -> Result<String, RedisError> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(redis)
        .await?;
    Ok(pair.into_iter().nth(1).unwrap_or_default())
}
