//! When the Redis primary cannot be reached: why, in words a person can act
//! on, and waiting until it can be.
//!
//! Every process that needs the round's Redis (core, the settlement
//! worker, the CLI's commands) starts by reaching the primary. During a
//! failover, or while a data node's machine is being replaced, that fails
//! for seconds or minutes; a process that exited then would, under
//! Kubernetes, crash-loop with a growing back-off in exactly the event
//! replication is for. So they wait, saying what they wait for.
//!
//! The `redis` crate reports a Sentinel whose named primary is down as
//! "Master with given name not found in sentinel", which reads like a
//! configuration mistake. [`why_unreachable`] asks the Sentinels and the
//! node they name, and says which it is: no Sentinel answers, none monitors
//! that name, the node they name does not answer, or it is not a primary
//! yet.

use crate::connection::Redis;
use crate::connection::within;
use crate::topology::Topology;
use redis::{AsyncConnectionConfig, IntoConnectionInfo, RedisError};
use std::time::{Duration, Instant};

/// First pause between attempts to reach the primary.
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest pause between attempts: short, because the wait ends a
/// failover window for whoever is waiting.
const LONGEST_RETRY: Duration = Duration::from_secs(1);
/// How often a wait that has not changed its reason says it is still
/// waiting.
const REMIND_EVERY: Duration = Duration::from_secs(30);
/// Longest wait for one Sentinel or node while finding out why.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

impl Redis {
    /// Returns once the primary answers, trying again with a back-off
    /// (200 ms doubling up to 1 s) and logging (WARN) why it cannot be
    /// reached each time the reason changes, and every 30 s while it does
    /// not. `what` names the waiter in the log ("core", "the settlement
    /// worker").
    pub async fn wait_for_primary(&self, what: &str) {
        let started = Instant::now();
        let mut pause = FIRST_RETRY;
        let mut said: Option<(String, Instant)> = None;
        loop {
            let err = match self.pin().await {
                Ok(_) => {
                    if said.is_some() {
                        tracing::info!(
                            waited_ms = started.elapsed().as_millis() as u64,
                            primary = self.primary().unwrap_or_default(),
                            "{what} reached the Redis primary"
                        );
                    }
                    return;
                }
                Err(err) => err,
            };
            let reason = why_unreachable(self.topology(), &err.to_string()).await;
            let repeat = said
                .as_ref()
                .is_some_and(|(last, at)| *last == reason && at.elapsed() < REMIND_EVERY);
            if !repeat {
                tracing::warn!(
                    %reason,
                    waited_s = started.elapsed().as_secs(),
                    "{what} is waiting for the Redis primary"
                );
                said = Some((reason, Instant::now()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_RETRY);
        }
    }
}

/// Why the primary of `topology` cannot be reached, given the `error` the
/// last attempt failed with.
pub async fn why_unreachable(topology: &Topology, error: &str) -> String {
    match topology {
        Topology::Single { .. } => {
            format!("Redis at {topology} does not answer ({error}); is it running?")
        }
        Topology::Sentinel {
            sentinels,
            master,
            password,
        } => why_sentinel_primary_unreachable(sentinels, master, password.as_deref(), error).await,
    }
}

/// What the Sentinels say about `master`, and what the node they name
/// says about itself.
async fn why_sentinel_primary_unreachable(
    sentinels: &[String],
    master: &str,
    password: Option<&str>,
    error: &str,
) -> String {
    let mut silent = Vec::new();
    let mut named = None;
    for sentinel in sentinels {
        match primary_named_by(sentinel, master).await {
            Ok(Some(node)) => {
                named = Some(node);
                break;
            }
            Ok(None) => {}
            Err(err) => silent.push(format!("{}: {err}", crate::topology::redact(sentinel))),
        }
    }
    let Some(node) = named else {
        if silent.len() == sentinels.len() {
            return format!(
                "no Sentinel answers ({}); are they running, and is this the right address?",
                silent.join("; ")
            );
        }
        return format!(
            "the Sentinels that answer monitor no master named {master:?}: check the master name \
             (--redis-master / CROWDGATE_REDIS_MASTER) against `sentinel monitor` in their configuration"
        );
    };
    match role_of(&node, password).await {
        Ok(role) if role == "master" => format!(
            "the Sentinels name {node} as the primary of {master:?} and it says it is one, \
             but it could not be used: {error}"
        ),
        Ok(role) => format!(
            "the Sentinels name {node} as the primary of {master:?}, but it is still a {role}: \
             a failover is under way"
        ),
        Err(err) => format!(
            "the Sentinels name {node} as the primary of {master:?}, but it does not answer \
             ({err}): waiting for it to come back or for the Sentinels to promote a replica"
        ),
    }
}

/// `host:port` of the primary `sentinel` names for `master`; `None` when
/// it monitors no such master.
async fn primary_named_by(sentinel: &str, master: &str) -> Result<Option<String>, RedisError> {
    let mut connection = connect(redis::Client::open(sentinel)?).await?;
    let answer: Option<(String, String)> = within(
        ASK_TIMEOUT,
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(master)
            .query_async(&mut connection),
    )
    .await?;
    Ok(answer.map(|(host, port)| format!("{host}:{port}")))
}

/// The first word of `ROLE` on `node` (`master`, `slave`).
async fn role_of(node: &str, password: Option<&str>) -> Result<String, RedisError> {
    let mut info = redis::RedisConnectionInfo::default();
    if let Some(password) = password {
        info = info.set_password(password);
    }
    let (host, port) = node.rsplit_once(':').unwrap_or((node, "6379"));
    let address = redis::ConnectionAddr::Tcp(host.to_string(), port.parse().unwrap_or(6379));
    let client = redis::Client::open(address.into_connection_info()?.set_redis_settings(info))?;
    let mut connection = connect(client).await?;
    let role: Vec<redis::Value> =
        within(ASK_TIMEOUT, redis::cmd("ROLE").query_async(&mut connection)).await?;
    Ok(match role.first() {
        Some(redis::Value::BulkString(word)) => String::from_utf8_lossy(word).into_owned(),
        Some(redis::Value::SimpleString(word)) => word.clone(),
        _ => "node of unknown role".to_string(),
    })
}

async fn connect(client: redis::Client) -> Result<redis::aio::MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(ASK_TIMEOUT))
        .set_response_timeout(Some(ASK_TIMEOUT));
    within(
        ASK_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
}
