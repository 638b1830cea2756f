//! [`Redis`]: the connection to a round's Redis primary, whatever the
//! [`Topology`], and the one place that knows what "acknowledged" means.
//!
//! # Finding the primary
//! A single node is at its URL. Under Sentinel the primary is whatever the
//! sentinels name now (the `redis` crate's Sentinel client asks them and
//! checks the node's `ROLE`); no failover protocol is written here. One
//! multiplexed connection serves every caller. When a call on it fails in a
//! way that says the node is gone or no longer the primary (connection
//! dropped, timed out, `READONLY`, `NOREPLICAS`, `MASTERDOWN`), that
//! connection is forgotten and the next call finds the primary again, so
//! core, the workers and the admission controller follow a failover by
//! themselves. The failed call itself is not retried: its caller answers
//! 503 and the client retries with the same idempotency key.
//!
//! # Acknowledged means replicated
//! With [`Replication::replicas`] > 0, a write a client will be told about
//! is confirmed with [`Redis::confirm`] after it returns: one task per
//! process batches every pending confirmation into `INCR marker` + `WAIT n
//! timeout` on a connection of its own. Why this is enough:
//! - the marker is written after each waiting write has completed on the
//!   same primary, and a replica applies the primary's stream in order, so a
//!   replica that holds the marker holds those writes (and anything a replay
//!   read, which is why replays are confirmed too);
//! - "same primary" is checked, not assumed: every connection belongs to a
//!   *generation*, opened together against one resolved node; a write made
//!   on an older generation than the confirming connection's is reported
//!   [`StoreError::NotReplicated`], never confirmed by another node's `WAIT`;
//! - `WAIT` blocks the connection that sends it, so it never runs on the
//!   connection that serves everything else; a missing replica delays
//!   confirmations by at most the timeout, not the whole process.

use crate::error::{StoreError, StoreResult};
use crate::topology::{RedisConfig, Replication, Topology};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Longest wait to open a connection (or ask the sentinels) before the call
/// fails as unavailable: a stopped node accepts TCP but never answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one reply. Above the settlement worker's 1 s blocking
/// read and the default replica timeout.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed attempt to reach the primary, calls fail at once for this
/// long instead of each trying again. (Calls that arrive while an attempt is
/// under way wait for its outcome: one attempt at a time.)
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How often, under Sentinel, the primary the Sentinels name is compared
/// with the node in use: a node can be demoted (or a second primary appear)
/// without any call on its connection failing.
const PRIMARY_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The key `confirm` increments so its `WAIT` covers the writes before it.
pub const REPLICATION_MARKER: &str = "crowdgate:replication_marker";

/// The round's Redis primary. Cheap to clone (everything is shared).
#[derive(Clone)]
pub struct Redis {
    shared: Arc<Shared>,
}

struct Shared {
    topology: Topology,
    replication: Replication,
    source: Source,
    config: AsyncConnectionConfig,
    /// For the confirming connection.
    confirm_config: AsyncConnectionConfig,
    /// The connections in use, `None` after a failure until the next call.
    current: Mutex<Option<Current>>,
    /// The last failed attempt to reach the primary, for [`RETRY_BACKOFF`].
    last_failure: Mutex<Option<(Instant, RedisError)>>,
    /// The node of the last connection, to notice a new primary.
    last_node: Mutex<Option<String>>,
    /// One reconnect at a time; the others wait for its result.
    reconnecting: tokio::sync::Mutex<u64>,
    /// Pending confirmations, batched by the confirmer task.
    confirmations: Option<mpsc::UnboundedSender<Confirmation>>,
}

/// How to find the primary.
enum Source {
    Single(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// The primary's view of its replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationStatus {
    /// `master` or `slave` (the node's own word).
    pub role: String,
    /// Each connected replica as `host:port state lag`.
    pub replicas: Vec<String>,
}

impl ReplicationStatus {
    /// From `INFO replication` text.
    pub fn parse(info: &str) -> ReplicationStatus {
        let mut status = ReplicationStatus::default();
        for line in info.lines().map(str::trim) {
            if let Some(role) = line.strip_prefix("role:") {
                status.role = role.to_string();
            } else if let Some((name, fields)) = line.split_once(':')
                && name.starts_with("slave")
                && name[5..].parse::<u32>().is_ok()
            {
                let field = |key: &str| {
                    fields
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                        .unwrap_or("?")
                };
                status.replicas.push(format!(
                    "{}:{} {} lag {}s",
                    field("ip"),
                    field("port"),
                    field("state"),
                    field("lag")
                ));
            }
        }
        status
    }
}

/// Connections opened together against one node.
#[derive(Clone)]
struct Current {
    generation: u64,
    /// The node, `host:port`.
    node: String,
    /// Serves every call.
    main: MultiplexedConnection,
    /// Sends only `INCR marker` + `WAIT` (which blocks its connection).
    confirm: MultiplexedConnection,
}

/// One write waiting to be confirmed, made on `generation`.
struct Confirmation {
    generation: u64,
    done: oneshot::Sender<StoreResult<()>>,
}

impl Redis {
    /// Connects to the primary (so a wrong address fails here, clearly) and,
    /// when writes wait for replicas, starts the confirmer task.
    pub async fn connect(config: &RedisConfig) -> StoreResult<Redis> {
        let redis = Redis::new(config)?;
        redis.pin().await?;
        Ok(redis)
    }

    /// Like [`Redis::connect`], but while the primary cannot be reached
    /// (a failover, a node being replaced) waits, saying why (see
    /// [`Redis::wait_for_primary`]), instead of failing. Fails only on a
    /// configuration that can never work (an address that is not one).
    pub async fn connect_waiting(config: &RedisConfig, what: &str) -> StoreResult<Redis> {
        let redis = Redis::new(config)?;
        redis.wait_for_primary(what).await;
        Ok(redis)
    }

    /// The round's Redis as configured, not reached yet: the first call
    /// finds the primary. Starts the confirmer task (when writes wait for
    /// replicas) and, under Sentinel, the task that follows the primary.
    pub fn new(config: &RedisConfig) -> StoreResult<Redis> {
        let source = match &config.topology {
            Topology::Single { url } => Source::Single(redis::Client::open(url.as_str())?),
            Topology::Sentinel {
                sentinels,
                master,
                password,
            } => {
                let mut node = redis::RedisConnectionInfo::default();
                if let Some(password) = password {
                    node = node.set_password(password.as_str());
                }
                let info = SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
                Source::Sentinel(tokio::sync::Mutex::new(SentinelClient::build(
                    sentinels.clone(),
                    master.clone(),
                    Some(info),
                    SentinelServerType::Master,
                )?))
            }
        };
        let (tx, rx) = match config.replication.replicas {
            0 => (None, None),
            _ => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
        };
        let redis = Redis {
            shared: Arc::new(Shared {
                topology: config.topology.clone(),
                replication: config.replication,
                source,
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT)),
                // `WAIT` answers after up to the replica timeout.
                confirm_config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(config.replication.timeout + RESPONSE_TIMEOUT)),
                current: Mutex::new(None),
                last_failure: Mutex::new(None),
                last_node: Mutex::new(None),
                reconnecting: tokio::sync::Mutex::new(0),
                confirmations: tx,
            }),
        };
        // The tasks hold only a weak handle: they end with the last Redis.
        if let Some(rx) = rx {
            tokio::spawn(confirmer(Arc::downgrade(&redis.shared), rx));
        }
        if matches!(redis.shared.source, Source::Sentinel(_)) {
            tokio::spawn(watch_primary(Arc::downgrade(&redis.shared)));
        }
        Ok(redis)
    }

    /// Where the round's Redis is configured to be.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// How many replicas acknowledged writes wait for.
    pub fn replication(&self) -> Replication {
        self.shared.replication
    }

    /// The node in use as primary now (`host:port`), if connected.
    pub fn primary(&self) -> Option<String> {
        lock(&self.shared.current).as_ref().map(|c| c.node.clone())
    }

    /// What the primary in use says about its replicas (`INFO replication`).
    pub async fn replication_status(&self) -> StoreResult<ReplicationStatus> {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut self.clone())
            .await?;
        Ok(ReplicationStatus::parse(&info))
    }

    /// A handle on the connection in use now, connecting first if needed.
    /// Calls made through one [`Pinned`] all reach the same node; pass its
    /// [`Pinned::generation`] to [`Redis::confirm`] after a write.
    pub async fn pin(&self) -> StoreResult<Pinned> {
        Ok(self.shared.pin().await?)
    }

    /// Returns once `replicas` replicas hold every write made on generation
    /// `generation` (see the module doc), or [`StoreError::NotReplicated`].
    /// Without replication, at once.
    pub async fn confirm(&self, generation: u64) -> StoreResult<()> {
        let Some(confirmations) = &self.shared.confirmations else {
            return Ok(());
        };
        let (done, answer) = oneshot::channel();
        let lost = || StoreError::NotReplicated {
            acked: 0,
            wanted: self.shared.replication.replicas,
        };
        confirmations
            .send(Confirmation { generation, done })
            .map_err(|_| lost())?;
        answer.await.unwrap_or_else(|_| Err(lost()))
    }
}

impl Shared {
    async fn pin(self: &Arc<Self>) -> Result<Pinned, RedisError> {
        let current = self.current().await?;
        Ok(Pinned {
            shared: self.clone(),
            generation: current.generation,
            connection: current.main,
        })
    }

    /// The connections in use, opening new ones if there are none.
    async fn current(&self) -> Result<Current, RedisError> {
        if let Some(current) = lock(&self.current).clone() {
            return Ok(current);
        }
        let mut generation = self.reconnecting.lock().await;
        // Another call may have reconnected while this one waited.
        if let Some(current) = lock(&self.current).clone() {
            return Ok(current);
        }
        if let Some((at, err)) = lock(&self.last_failure).as_ref()
            && at.elapsed() < RETRY_BACKOFF
        {
            return Err(err.clone());
        }
        match self.open(*generation + 1).await {
            Ok(current) => {
                *generation = current.generation;
                tracing::info!(
                    node = %current.node,
                    generation = current.generation,
                    topology = %self.topology,
                    "connected to the Redis primary"
                );
                *lock(&self.last_failure) = None;
                *lock(&self.current) = Some(current.clone());
                let previous = lock(&self.last_node).replace(current.node.clone());
                if previous.is_some_and(|node| node != current.node) {
                    // core checked the first primary before serving; a
                    // promoted one is checked here, and only reported: the
                    // round is better served by it than by nothing.
                    tokio::spawn(check_new_primary(current.clone(), self.replication));
                }
                Ok(current)
            }
            Err(err) => {
                tracing::warn!(error = %err, topology = %self.topology, "cannot reach the Redis primary");
                *lock(&self.last_failure) = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    /// Finds the primary and opens both connections to it.
    async fn open(&self, generation: u64) -> Result<Current, RedisError> {
        let client = match &self.source {
            Source::Single(client) => client.clone(),
            Source::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                within(CONNECT_TIMEOUT, sentinel.async_get_client()).await?
            }
        };
        let node = client.get_connection_info().addr().to_string();
        let main = within(
            CONNECT_TIMEOUT,
            client.get_multiplexed_async_connection_with_config(&self.config),
        )
        .await?;
        let confirm = match self.replication.replicas {
            0 => main.clone(),
            _ => {
                within(
                    CONNECT_TIMEOUT,
                    client.get_multiplexed_async_connection_with_config(&self.confirm_config),
                )
                .await?
            }
        };
        Ok(Current {
            generation,
            node,
            main,
            confirm,
        })
    }

    /// After `err` on a connection of `generation`: forget that generation
    /// if the error says the node is gone or no longer the primary.
    fn failed(&self, generation: u64, err: &RedisError) {
        if means_new_primary(err) {
            self.retire(generation, &err.to_string());
        }
    }

    /// After a reply on a connection of `generation`: an error reply (they
    /// arrive as values, not errors, from this layer) that says the node is
    /// not a usable primary retires the generation too.
    fn answered(&self, generation: u64, values: &[Value]) {
        for value in values {
            if let Value::ServerError(err) = value
                && is_not_primary_code(err.code())
            {
                self.retire(
                    generation,
                    &format!("{}: {}", err.code(), err.details().unwrap_or("")),
                );
                return;
            }
        }
    }

    fn retire(&self, generation: u64, why: &str) {
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            tracing::warn!(error = %why, generation, "lost the Redis primary; will find it again");
            *current = None;
        }
    }
}

/// After a failover: says loudly (ERROR) if the promoted node could lose
/// acknowledged writes (no `appendfsync always`, or no
/// `min-replicas-to-write` while writes wait for replicas).
async fn check_new_primary(current: Current, replication: Replication) {
    let mut connection = current.main;
    match crate::safety::primary_problems(&mut connection, replication.replicas).await {
        Ok(problems) => {
            for problem in problems {
                tracing::error!(node = %current.node, %problem, "the new Redis primary could lose acknowledged writes");
            }
        }
        Err(err) => {
            tracing::warn!(node = %current.node, error = %err, "could not check the new Redis primary's durability settings");
        }
    }
}

/// Under Sentinel: once a [`PRIMARY_CHECK_EVERY`], asks the Sentinels which
/// node is primary and leaves the node in use if it is another (a demoted
/// node keeps its connections and answers reads; a split brain has two
/// primaries).
async fn watch_primary(shared: std::sync::Weak<Shared>) {
    let mut ticker = tokio::time::interval(PRIMARY_CHECK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Source::Sentinel(sentinel) = &shared.source else {
            return;
        };
        let Some(current) = lock(&shared.current).clone() else {
            continue;
        };
        let named = {
            let mut sentinel = sentinel.lock().await;
            within(CONNECT_TIMEOUT, sentinel.async_get_client()).await
        };
        // No answer (mid-failover, say): calls on the node decide.
        let Ok(client) = named else {
            continue;
        };
        let node = client.get_connection_info().addr().to_string();
        if node != current.node {
            let mut in_use = lock(&shared.current);
            if in_use
                .as_ref()
                .is_some_and(|c| c.generation == current.generation)
            {
                tracing::warn!(
                    old = %current.node,
                    new = %node,
                    "the Sentinels name another Redis primary; leaving this one"
                );
                *in_use = None;
            }
        }
    }
}

/// Batches confirmations: each round takes every pending one, writes the
/// marker and waits for the replicas once for all of them.
async fn confirmer(
    shared: std::sync::Weak<Shared>,
    mut pending: mpsc::UnboundedReceiver<Confirmation>,
) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = pending.try_recv() {
            batch.push(next);
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let wanted = shared.replication.replicas;
        // No connection now: the writes were made on one this process has
        // left, and no other node's WAIT can vouch for them. (No reconnect
        // here: it could only end in the same answer, later.)
        let Some(current) = lock(&shared.current).clone() else {
            for confirmation in batch {
                let _ = confirmation
                    .done
                    .send(Err(StoreError::NotReplicated { acked: 0, wanted }));
            }
            continue;
        };
        let outcome = wait_for_replicas(&shared, &current)
            .await
            .map(|acked| (current.generation, acked));
        if let Ok((_, acked)) = &outcome
            && *acked < wanted
        {
            tracing::warn!(
                acked,
                wanted,
                writes = batch.len(),
                "replicas did not confirm writes in time; answering 503"
            );
        }
        for confirmation in batch {
            let answer = match &outcome {
                Ok((generation, acked)) if *generation == confirmation.generation => {
                    if *acked >= wanted {
                        Ok(())
                    } else {
                        Err(StoreError::NotReplicated {
                            acked: *acked,
                            wanted,
                        })
                    }
                }
                // Made on a primary this process has since left: nothing
                // here can vouch for it.
                Ok(_) => Err(StoreError::NotReplicated { acked: 0, wanted }),
                Err(err) => Err(StoreError::Redis(err.clone())),
            };
            let _ = confirmation.done.send(answer);
        }
    }
}

/// `INCR marker` + `WAIT n timeout` on the confirming connection: how many
/// replicas hold everything the primary had when the marker was written.
async fn wait_for_replicas(shared: &Shared, current: &Current) -> Result<u32, RedisError> {
    let replication = shared.replication;
    let mut connection = current.confirm.clone();
    let answer: Result<(i64, u32), RedisError> = redis::pipe()
        .incr(REPLICATION_MARKER, 1)
        .cmd("WAIT")
        .arg(replication.replicas)
        .arg(replication.timeout.as_millis() as u64)
        .query_async(&mut connection)
        .await;
    match answer {
        Ok((_, acked)) => Ok(acked),
        Err(err) => {
            shared.failed(current.generation, &err);
            Err(err)
        }
    }
}

/// A connection of one generation. Every call through it reaches the same
/// node; a failure that means the primary moved retires the generation.
pub struct Pinned {
    shared: Arc<Shared>,
    generation: u64,
    connection: MultiplexedConnection,
}

impl Pinned {
    /// The generation to pass to [`Redis::confirm`].
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl ConnectionLike for Pinned {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let answer = self.connection.req_packed_command(cmd).await;
            match &answer {
                Err(err) => self.shared.failed(self.generation, err),
                Ok(value) => self
                    .shared
                    .answered(self.generation, std::slice::from_ref(value)),
            }
            answer
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let answer = self
                .connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            match &answer {
                Err(err) => self.shared.failed(self.generation, err),
                Ok(values) => self.shared.answered(self.generation, values),
            }
            answer
        })
    }

    fn get_db(&self) -> i64 {
        self.connection.get_db()
    }
}

/// Any call on [`Redis`] goes to the primary in use now.
impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.shared.pin().await?.req_packed_command(cmd).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut pinned = self.shared.pin().await?;
            pinned.req_packed_commands(pipeline, offset, count).await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Whether `err` says the node this connection reaches is gone or is not
/// the primary any more, so the primary must be found again.
///
/// `NOREPLICAS` is not one: the node is the primary, only short of
/// replicas; finding it again would answer the same (the primary watch
/// catches a promotion elsewhere).
fn means_new_primary(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || err.code().is_some_and(is_not_primary_code)
}

/// Error codes from a node that is not (or not yet) a usable primary.
fn is_not_primary_code(code: &str) -> bool {
    matches!(code, "READONLY" | "MASTERDOWN" | "LOADING")
}

/// `future`, or a timeout error after `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                ErrorKind::Io,
                "timed out reaching Redis",
                format!("no answer within {} ms", limit.as_millis()),
            )))
        })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_status_reads_info_replication() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=6391,state=online,offset=42,lag=0\r\nmaster_repl_offset:42\r\n";
        assert_eq!(
            ReplicationStatus::parse(info),
            ReplicationStatus {
                role: "master".into(),
                replicas: vec!["127.0.0.1:6391 online lag 0s".into()],
            }
        );
        assert!(
            ReplicationStatus::parse("role:slave\r\nslave_read_only:1\r\n")
                .replicas
                .is_empty()
        );
    }
}
