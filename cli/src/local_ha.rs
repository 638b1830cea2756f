//! A local Redis high-availability set on loopback: a primary and two
//! replicas, each a durable [`LocalRedis`], watched by three Sentinels that
//! promote a replica when the primary dies. `crowdgate up --ha` runs one,
//! and the end-to-end tests start one to kill -9 or SIGSTOP nodes under
//! load.
//!
//! Every data node runs `min-replicas-to-write 1` (and a configurable
//! `min-replicas-max-lag`), and core acknowledges a write once one replica
//! holds it: whichever node is primary refuses writes once it has had no
//! replica for that long, so a primary cut off from the others (a
//! SIGSTOPped one that wakes up, say) cannot take writes the promoted
//! replica never sees. With two replicas that costs nothing while one node
//! is lost for good: a lost replica leaves the primary one to write with, a
//! lost primary leaves the promoted replica the other. Only with two nodes
//! down are writes refused (docs/DEPLOY.md has the reasoning).
//!
//! # Layout and ports
//!
//! Under its directory: `node-0/` … `node-2/` (data nodes: AOF,
//! `redis.conf`, `redis.pid`, `redis.log`), `sentinel-0/` … `sentinel-2/`
//! (`sentinel.conf`, `redis.pid`, `redis.log`), and `ha.toml` (the ports and
//! settings of the last start). From a base port B ([`HaPorts::from_base`]):
//! node-0 on B, node-1 on B+1, node-2 on B+2, the Sentinels on B+10, B+11
//! and B+12. Base 0 picks free ports.
//!
//! # Why the data nodes run from a config file
//!
//! Sentinel changes a node's role with REPLICAOF and persists it with CONFIG
//! REWRITE, in one MULTI. Redis 7.0 started from flags alone refuses the
//! rewrite ("The server is running without a config file") but still obeys
//! the REPLICAOF, so the change lasts only until a restart: the node comes
//! back with the role its flags gave it, possibly a replica of a node that is
//! now its own replica. So each node runs from `redis.conf`, which says only
//! its role (`replicaof` or nothing); everything else is flags, which
//! override the file. A node restarted alone ([`HaNode::restart`]) comes
//! back with the role Sentinel last wrote.
//!
//! # Starting again on the same directory
//!
//! The Sentinels rewrite their own config files too (the current primary,
//! the known replicas and Sentinels, epochs). [`LocalHa::start`] reads which
//! node they last named primary and starts that one as primary and the
//! others as its replicas, rewriting every node's `redis.conf` (a node that
//! was down during a failover still calls itself primary in its own). The Sentinel
//! configs are kept when the ports and settings are those of the last start,
//! and written afresh otherwise.

use crate::local_redis::{LocalRedis, RedisOptions, which_redis};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How far above the base port the first Sentinel listens.
pub const SENTINEL_PORT_OFFSET: u16 = 10;

/// How many Sentinels run; a failover needs a majority of them.
const SENTINELS: usize = 3;

/// How many data nodes run: a primary and two replicas, so that losing any
/// one of them for good leaves a primary with a replica to write with.
pub const DATA_NODES: usize = 3;

/// How often conditions are polled while waiting.
const POLL: Duration = Duration::from_millis(50);

/// How long one command may take: a SIGSTOPped server accepts connections
/// (the kernel does) but never answers.
const QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of a [`LocalHa`]. The defaults suit one machine: a dead primary
/// is replaced within a few seconds.
#[derive(Clone, Debug)]
pub struct HaOptions {
    /// Ports from this base ([`HaPorts::from_base`]); 0 picks free ports.
    pub base_port: u16,
    /// The name the Sentinels know the set by (`--redis-master`).
    pub master_name: String,
    /// How long a node must not answer before a Sentinel thinks it down.
    /// The default, 1.5 s, puts a kill -9 of the primary at under 3 s of
    /// refused writes on this machine; a primary that stalls that long for
    /// any reason is failed over too (safe, but a window of its own: 1 s
    /// failed over a live primary once on a loaded test machine).
    pub down_after_ms: u64,
    /// Sentinel's failover-timeout: how long a promotion may take before it
    /// is abandoned, and (doubled) how long before the same primary is
    /// failed over again, e.g. after a split vote.
    pub failover_timeout_ms: u64,
    /// `min-replicas-max-lag` of every data node, in seconds.
    pub min_replicas_max_lag_s: u64,
    /// How long [`LocalHa::start`] waits for everything to be ready.
    pub start_timeout: Duration,
}

impl Default for HaOptions {
    fn default() -> HaOptions {
        HaOptions {
            base_port: 0,
            master_name: "crowdgate".to_owned(),
            down_after_ms: 1500,
            failover_timeout_ms: 5000,
            min_replicas_max_lag_s: 5,
            start_timeout: Duration::from_secs(30),
        }
    }
}

impl HaOptions {
    fn check(&self) -> anyhow::Result<()> {
        if self.master_name.is_empty()
            || !self
                .master_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!(
                "master name {:?}: use letters, digits, '-', '_' or '.'",
                self.master_name
            );
        }
        if self.down_after_ms < 100 {
            bail!("down-after-milliseconds must be at least 100 ms");
        }
        // While promoting, Sentinel polls the chosen replica's INFO once a
        // second and abandons the promotion when failover-timeout passes
        // first; it also caps the leader election at this long. Below a
        // couple of seconds, healthy promotions would be abandoned.
        if self.failover_timeout_ms < 2000 {
            bail!("failover-timeout must be at least 2000 ms");
        }
        if self.min_replicas_max_lag_s == 0 {
            bail!("min-replicas-max-lag must be at least 1 s");
        }
        Ok(())
    }
}

/// The ports of a set: data nodes and Sentinels (0 = pick a free one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaPorts {
    pub nodes: [u16; DATA_NODES],
    pub sentinels: [u16; SENTINELS],
}

impl HaPorts {
    /// node-0 on `base`, node-1 on `base`+1, node-2 on `base`+2, the
    /// Sentinels on `base`+10, +11 and +12; all 0 (free ports) for base 0.
    pub fn from_base(base: u16) -> anyhow::Result<HaPorts> {
        if base == 0 {
            return Ok(HaPorts {
                nodes: [0; DATA_NODES],
                sentinels: [0; SENTINELS],
            });
        }
        let at = |offset: u16| {
            base.checked_add(offset)
                .with_context(|| format!("base port {base} leaves no room for port +{offset}"))
        };
        Ok(HaPorts {
            nodes: [at(0)?, at(1)?, at(2)?],
            sentinels: [
                at(SENTINEL_PORT_OFFSET)?,
                at(SENTINEL_PORT_OFFSET + 1)?,
                at(SENTINEL_PORT_OFFSET + 2)?,
            ],
        })
    }

    /// Every port, data nodes first.
    pub fn all(&self) -> Vec<u16> {
        self.nodes.iter().chain(&self.sentinels).copied().collect()
    }
}

/// What a data node says it is (INFO replication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A primary with this many connected replicas (synced or syncing).
    Primary { replicas: usize },
    /// A replica of the node on 127.0.0.1:`of`; `link_up` once it is synced
    /// and connected.
    Replica { of: u16, link_up: bool },
}

/// One data node of a [`LocalHa`].
pub struct HaNode {
    /// Its port on 127.0.0.1; the same across restarts.
    pub port: u16,
    index: usize,
    redis: LocalRedis,
    /// When [`LocalHa::heal`] first found it dead.
    down_since: Option<Instant>,
}

impl HaNode {
    /// `node-0`, `node-1` or `node-2`: its directory's name.
    pub fn name(&self) -> String {
        format!("node-{}", self.index)
    }

    pub fn url(&self) -> String {
        self.redis.url()
    }

    /// Its data directory.
    pub fn dir(&self) -> &Path {
        &self.redis.dir
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.redis.pid()
    }

    /// `<dir>/redis.pid`, for `kill -9 $(cat …)` from a shell.
    pub fn pid_file(&self) -> PathBuf {
        self.redis.pid_file()
    }

    pub fn log_file(&self) -> PathBuf {
        self.redis.log_file()
    }

    /// The `redis.conf` it starts from, which Sentinel rewrites.
    pub fn config_file(&self) -> PathBuf {
        self.redis.dir.join("redis.conf")
    }

    /// Whether its process is alive (a SIGSTOPped one is).
    pub fn is_running(&mut self) -> bool {
        self.redis.is_running()
    }

    /// SIGKILL, and reap it: a crash.
    pub fn kill(&mut self) {
        self.redis.kill();
    }

    /// Starts it again after [`HaNode::kill`]: same port, same data, from its
    /// own `redis.conf`. A node that was primary when it died comes back as
    /// a primary (with no replica, so it refuses writes); the Sentinels
    /// then make it a replica of the node they promoted (Redis 7.0 waits
    /// about 8 s after it is reachable again before doing so;
    /// [`LocalHa::wait_until_replicating`] waits for that).
    /// [`LocalHa::restart_node`] brings it back as a replica at once. A node
    /// that was a replica comes back as a replica of the node Sentinel last
    /// told it.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.redis
            .restart()
            .with_context(|| format!("restarting {}", self.name()))?;
        self.down_since = None;
        Ok(())
    }

    /// SIGSTOP: it hangs, holding its connections, as a stalled machine
    /// would. Not the graceful stop; [`LocalHa::stop`] is.
    pub fn stop(&self) {
        self.redis.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`HaNode::stop`].
    pub fn cont(&self) {
        self.redis.signal(libc::SIGCONT);
    }

    /// What it says it is now (INFO replication).
    pub async fn role(&self) -> anyhow::Result<Role> {
        let info: String = query(self.port, redis::cmd("INFO").arg("replication")).await?;
        let fields = info_fields(&info);
        let field = |name: &str| {
            fields
                .get(name)
                .with_context(|| format!("{}: INFO replication has no {name}", self.name()))
        };
        match field("role")?.as_str() {
            "master" => Ok(Role::Primary {
                replicas: field("connected_slaves")?.parse()?,
            }),
            _ => Ok(Role::Replica {
                of: field("master_port")?.parse()?,
                link_up: field("master_link_status")? == "up",
            }),
        }
    }
}

/// A running set: three data nodes and three Sentinels. Drop kills them all.
pub struct LocalHa {
    // Declared (and so dropped) before the nodes: Sentinels that outlive
    // the nodes for a moment would fail over to a dying node.
    sentinels: Vec<LocalRedis>,
    nodes: Vec<HaNode>,
    dir: PathBuf,
    options: HaOptions,
}

/// What `ha.toml` records about the last start, to tell whether the
/// Sentinels' config files still fit.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LastStart {
    ports: HaPorts,
    master_name: String,
    down_after_ms: u64,
    failover_timeout_ms: u64,
}

impl LocalHa {
    /// Starts the data nodes and the three Sentinels with their data under
    /// `dir`, and waits (up to [`HaOptions::start_timeout`]) until a failover
    /// could happen: every node answers, the replicas are synced, and every
    /// Sentinel names the primary and sees the replicas and the other two
    /// Sentinels. A port that is taken is an error (unless it was 0).
    pub async fn start(dir: &Path, options: HaOptions) -> anyhow::Result<LocalHa> {
        options.check()?;
        which_redis()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = std::path::absolute(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let wanted = HaPorts::from_base(options.base_port)?;
        let last = read_last_start(&dir);
        let primary = last
            .as_ref()
            .and_then(|last| recorded_primary(&dir, last))
            .unwrap_or(0);
        let mut nodes = vec![start_node(
            &dir,
            primary,
            wanted.nodes[primary],
            None,
            &options,
        )?];
        let primary_port = nodes[0].port;
        for replica in (0..DATA_NODES).filter(|&i| i != primary) {
            let node = start_node(
                &dir,
                replica,
                wanted.nodes[replica],
                Some(primary_port),
                &options,
            )?;
            nodes.push(node);
        }
        nodes.sort_by_key(|node| node.index);
        let mut ha = LocalHa {
            sentinels: Vec::new(),
            nodes,
            dir,
            options,
        };
        let deadline = Instant::now() + ha.options.start_timeout;
        let replica_ports = ha.ports_except(primary_port);
        for replica in ha.nodes.iter().filter(|node| node.port != primary_port) {
            poll(deadline, async || {
                replicating(&ha.nodes[primary], replica).await
            })
            .await
            .context("a replica did not sync with the primary")?;
        }

        let ports = HaPorts {
            nodes: std::array::from_fn(|i| ha.nodes[i].port),
            sentinels: wanted.sentinels,
        };
        let this_start = LastStart {
            ports,
            master_name: ha.options.master_name.clone(),
            down_after_ms: ha.options.down_after_ms,
            failover_timeout_ms: ha.options.failover_timeout_ms,
        };
        // Free ports are new ports: the old configs name others.
        let keep_configs = !wanted.sentinels.contains(&0) && last.as_ref() == Some(&this_start);
        for (i, &port) in wanted.sentinels.iter().enumerate() {
            let sentinel_dir = ha.dir.join(format!("sentinel-{i}"));
            std::fs::create_dir_all(&sentinel_dir)
                .with_context(|| format!("cannot create {}", sentinel_dir.display()))?;
            let config = sentinel_dir.join("sentinel.conf");
            if !keep_configs || !config.is_file() {
                write_sentinel_config(&config, i, primary_port, &ha.options)?;
            }
            let options = RedisOptions {
                config_file: Some(config),
                sentinel: true,
                extra_args: Vec::new(),
            };
            let sentinel = LocalRedis::start_with(port, &sentinel_dir, options)
                .with_context(|| format!("starting sentinel-{i}"))?;
            ha.sentinels.push(sentinel);
        }
        let recorded = LastStart {
            ports: HaPorts {
                sentinels: std::array::from_fn(|i| ha.sentinels[i].port),
                ..ports
            },
            ..this_start
        };
        let state = ha.dir.join("ha.toml");
        std::fs::write(&state, toml::to_string(&recorded)?)
            .with_context(|| format!("cannot write {}", state.display()))?;

        for sentinel in &ha.sentinels {
            poll(deadline, async || {
                ha.sentinel_ready(sentinel, primary_port, &replica_ports)
                    .await
            })
            .await
            .context("the Sentinels are not ready")?;
        }
        tracing::info!(
            primary = primary_port,
            replicas = ?replica_ports,
            sentinels = ha.sentinels_arg(),
            master = ha.options.master_name,
            "local Redis HA set up"
        );
        Ok(ha)
    }

    /// The directory everything lives under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name the Sentinels know the set by (`CROWDGATE_REDIS_MASTER`).
    pub fn master_name(&self) -> &str {
        &self.options.master_name
    }

    pub fn options(&self) -> &HaOptions {
        &self.options
    }

    /// `127.0.0.1:port` of each Sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The Sentinels comma-joined: the value of `--redis-sentinels` /
    /// `CROWDGATE_REDIS_SENTINELS`.
    pub fn sentinels_arg(&self) -> String {
        self.sentinel_addrs().join(",")
    }

    /// How a `crowdgate` process (core, settle, reconcile) reaches this
    /// set: its Sentinels and master name, as environment.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CROWDGATE_REDIS_SENTINELS", self.sentinels_arg()),
            ("CROWDGATE_REDIS_MASTER", self.master_name().to_owned()),
        ]
    }

    /// The Sentinels' log files, in [`LocalHa::sentinel_addrs`] order.
    pub fn sentinel_logs(&self) -> Vec<PathBuf> {
        self.sentinels.iter().map(LocalRedis::log_file).collect()
    }

    /// Every port in use: data nodes, then Sentinels.
    pub fn ports(&self) -> HaPorts {
        HaPorts {
            nodes: std::array::from_fn(|i| self.nodes[i].port),
            sentinels: std::array::from_fn(|i| self.sentinels[i].port),
        }
    }

    /// The process ids of every running child (nodes and Sentinels), e.g.
    /// to check that none is left after [`LocalHa::stop`].
    pub fn pids(&self) -> Vec<u32> {
        let nodes = self.nodes.iter().filter_map(HaNode::pid);
        nodes
            .chain(self.sentinels.iter().filter_map(LocalRedis::pid))
            .collect()
    }

    /// The data nodes (node-0 … node-2), whatever their roles now.
    pub fn nodes(&self) -> &[HaNode] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [HaNode] {
        &mut self.nodes
    }

    /// Data node `i` (0, 1 or 2).
    pub fn node(&self, i: usize) -> &HaNode {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut HaNode {
        &mut self.nodes[i]
    }

    /// The ports of the data nodes other than the one on `port`: with the
    /// primary's port, its replicas.
    pub fn ports_except(&self, port: u16) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|node| node.port)
            .filter(|&other| other != port)
            .collect()
    }

    /// The data node on `port`, e.g. the one [`LocalHa::primary_port`] names.
    pub fn node_on(&mut self, port: u16) -> Option<&mut HaNode> {
        self.nodes.iter_mut().find(|node| node.port == port)
    }

    /// The port of the primary as the Sentinels say now: the one most of
    /// those answering name (ties: the first Sentinel's), None if none
    /// answers. Mid-failover they may disagree for a moment;
    /// [`LocalHa::wait_for_primary_change`] waits for a majority.
    pub async fn primary_port(&self) -> Option<u16> {
        let named = self.named_primaries().await;
        let mut best: Option<(u16, usize)> = None;
        for &port in &named {
            let votes = named.iter().filter(|&&p| p == port).count();
            if best.is_none_or(|(_, most)| votes > most) {
                best = Some((port, votes));
            }
        }
        best.map(|(port, _)| port)
    }

    /// `redis://` URL of [`LocalHa::primary_port`].
    pub async fn primary_url(&self) -> Option<String> {
        let port = self.primary_port().await?;
        Some(format!("redis://127.0.0.1:{port}/"))
    }

    /// Waits until a majority of the Sentinels name a primary other than
    /// `old_port` and that node says it is primary; its port.
    pub async fn wait_for_primary_change(
        &self,
        old_port: u16,
        within: Duration,
    ) -> anyhow::Result<u16> {
        poll(Instant::now() + within, async || {
            let port = self.majority_primary().await?;
            if port == old_port {
                bail!("the Sentinels still name 127.0.0.1:{old_port} the primary");
            }
            let node = self
                .nodes
                .iter()
                .find(|node| node.port == port)
                .with_context(|| format!("the Sentinels name 127.0.0.1:{port}, not one of ours"))?;
            match node.role().await? {
                Role::Primary { .. } => Ok(port),
                role => bail!(
                    "the Sentinels name {} (127.0.0.1:{port}), which is still {role:?}",
                    node.name()
                ),
            }
        })
        .await
        .with_context(|| {
            format!(
                "no failover away from 127.0.0.1:{old_port} within {within:?} (Sentinel logs: {})",
                self.sentinel_logs_list()
            )
        })
    }

    /// Waits until the primary the Sentinels name (a majority) has every
    /// other data node as a synced replica: INFO replication says
    /// `master_link_status:up` on each, and a majority of the Sentinels see
    /// each up (so it can be promoted in turn).
    pub async fn wait_until_replicating(&self, within: Duration) -> anyhow::Result<()> {
        poll(Instant::now() + within, async || {
            let port = self.majority_primary().await?;
            let primary = self
                .nodes
                .iter()
                .find(|node| node.port == port)
                .with_context(|| format!("the Sentinels name 127.0.0.1:{port}, not one of ours"))?;
            for replica in self.nodes.iter().filter(|node| node.port != port) {
                replicating(primary, replica).await?;
                let mut seen = 0;
                for sentinel in &self.sentinels {
                    if self.sees_replica(sentinel, replica.port).await.is_ok() {
                        seen += 1;
                    }
                }
                if seen < self.majority() {
                    bail!(
                        "{} of the Sentinels see {} (127.0.0.1:{}) up",
                        seen,
                        replica.name(),
                        replica.port
                    );
                }
            }
            Ok(())
        })
        .await
        .with_context(|| {
            let logs: Vec<String> = self
                .nodes
                .iter()
                .map(|node| node.log_file().display().to_string())
                .collect();
            format!(
                "the set was not replicating within {within:?} (node logs: {})",
                logs.join(", ")
            )
        })
    }

    /// Restarts what has died, as a service manager would: a Sentinel at
    /// once; a data node once the Sentinels name another node primary (so
    /// this one comes back from its config as a primary nobody uses, and
    /// Sentinel makes it a replica), or after a grace period if they never
    /// do (no failover possible, e.g. every node died). `crowdgate up --ha`
    /// calls this every 250 ms.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for (i, sentinel) in self.sentinels.iter_mut().enumerate() {
            if !sentinel.is_running() {
                tracing::warn!(
                    sentinel = i,
                    port = sentinel.port,
                    "Sentinel died; restarting it"
                );
                sentinel
                    .restart()
                    .with_context(|| format!("restarting sentinel-{i}"))?;
            }
        }
        if self.nodes.iter_mut().all(HaNode::is_running) {
            return Ok(());
        }
        // A failover can take down-after, an election, and after a split
        // vote twice failover-timeout before the next try.
        let grace = Duration::from_millis(
            self.options.down_after_ms + 3 * self.options.failover_timeout_ms,
        );
        let primary = self.primary_port().await;
        for node in &mut self.nodes {
            if node.is_running() {
                continue;
            }
            let since = match node.down_since {
                Some(since) => since,
                None => {
                    tracing::warn!(node = node.name(), port = node.port, "Redis node died");
                    *node.down_since.insert(Instant::now())
                }
            };
            if primary == Some(node.port) {
                if since.elapsed() < grace {
                    continue;
                }
                tracing::warn!(
                    node = node.name(),
                    port = node.port,
                    "no failover; restarting the dead primary from its config"
                );
            } else {
                tracing::info!(
                    node = node.name(),
                    port = node.port,
                    "restarting Redis node as a replica of the primary"
                );
            }
            restart_as_replica_of(node, primary)?;
        }
        Ok(())
    }

    /// Starts the node on `port` again after [`HaNode::kill`], as its
    /// supervisor would: as a replica of the node the Sentinels name primary
    /// now, when that is another node (written into its `redis.conf` first).
    /// Left to Sentinel, a returning old primary is demoted only after it
    /// has been reachable for about 8 s (a Redis constant), and with
    /// `min-replicas-to-write` every write waits for that.
    pub async fn restart_node(&mut self, port: u16) -> anyhow::Result<()> {
        let primary = self.primary_port().await;
        let node = self
            .node_on(port)
            .with_context(|| format!("no data node on port {port}"))?;
        restart_as_replica_of(node, primary)
    }

    /// Stops everything gracefully (SIGTERM): the Sentinels first, so that
    /// stopping the nodes does not look like a failure to them.
    pub fn stop(&mut self) {
        for sentinel in &mut self.sentinels {
            sentinel.stop();
        }
        for node in &mut self.nodes {
            node.redis.stop();
        }
    }

    fn majority(&self) -> usize {
        self.sentinels.len() / 2 + 1
    }

    fn sentinel_logs_list(&self) -> String {
        self.sentinel_logs()
            .iter()
            .map(|log| log.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The primary each answering Sentinel names, in Sentinel order.
    async fn named_primaries(&self) -> Vec<u16> {
        let mut named = Vec::new();
        for sentinel in &self.sentinels {
            if let Ok(Some(port)) = self.named_primary(sentinel).await {
                named.push(port);
            }
        }
        named
    }

    async fn named_primary(&self, sentinel: &LocalRedis) -> anyhow::Result<Option<u16>> {
        let addr: Option<(String, u16)> = query(
            sentinel.port,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.options.master_name),
        )
        .await?;
        Ok(addr.map(|(_, port)| port))
    }

    /// The port a majority of all Sentinels name, or why there is none.
    async fn majority_primary(&self) -> anyhow::Result<u16> {
        let named = self.named_primaries().await;
        named
            .iter()
            .copied()
            .find(|&port| named.iter().filter(|&&p| p == port).count() >= self.majority())
            .with_context(|| {
                format!(
                    "no majority of the {} Sentinels names one primary (they name {named:?})",
                    self.sentinels.len()
                )
            })
    }

    /// Whether `sentinel` could take part in a failover right now: it names
    /// `primary`, sees every one of `replicas` up, and is in touch with the
    /// other Sentinels (it learns of them through hello messages on the
    /// primary, every 2 s).
    async fn sentinel_ready(
        &self,
        sentinel: &LocalRedis,
        primary: u16,
        replicas: &[u16],
    ) -> anyhow::Result<()> {
        let log = sentinel.log_file();
        let this = format!(
            "sentinel 127.0.0.1:{} (log: {})",
            sentinel.port,
            log.display()
        );
        let named = self.named_primary(sentinel).await?;
        if named != Some(primary) {
            bail!("{this} names {named:?} as the primary, not 127.0.0.1:{primary}");
        }
        for &replica in replicas {
            self.sees_replica(sentinel, replica)
                .await
                .with_context(|| this.clone())?;
        }
        let others: Vec<HashMap<String, String>> = query(
            sentinel.port,
            redis::cmd("SENTINEL")
                .arg("sentinels")
                .arg(&self.options.master_name),
        )
        .await?;
        let up = others.iter().filter(|other| healthy(other)).count();
        let want = self.sentinels.len() - 1;
        if up < want {
            bail!("{this} is in touch with {up} of the {want} other Sentinels");
        }
        Ok(())
    }

    /// Whether `sentinel` lists the replica on `port` and finds it up.
    async fn sees_replica(&self, sentinel: &LocalRedis, port: u16) -> anyhow::Result<()> {
        let replicas: Vec<HashMap<String, String>> = query(
            sentinel.port,
            redis::cmd("SENTINEL")
                .arg("replicas")
                .arg(&self.options.master_name),
        )
        .await?;
        let port = port.to_string();
        match replicas.iter().find(|r| r.get("port") == Some(&port)) {
            Some(replica) if healthy(replica) => Ok(()),
            Some(replica) => bail!(
                "sees the replica 127.0.0.1:{port} as {:?}",
                replica.get("flags")
            ),
            None => bail!("does not know the replica 127.0.0.1:{port} yet"),
        }
    }
}

/// Whether a Sentinel's view of an instance (SENTINEL replicas/sentinels)
/// says it is reachable.
fn healthy(instance: &HashMap<String, String>) -> bool {
    instance.get("flags").is_some_and(|flags| {
        !flags
            .split(',')
            .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"))
    })
}

/// Whether `replica` is a synced replica of `primary`; why not otherwise.
async fn replicating(primary: &HaNode, replica: &HaNode) -> anyhow::Result<()> {
    let log = |node: &HaNode| format!("{} (log: {})", node.name(), node.log_file().display());
    match primary.role().await.with_context(|| log(primary))? {
        Role::Primary { replicas } if replicas >= 1 => {}
        role => bail!(
            "{} (127.0.0.1:{}) is {role:?}, not a primary with a replica (log: {})",
            primary.name(),
            primary.port,
            primary.log_file().display()
        ),
    }
    match replica.role().await.with_context(|| log(replica))? {
        Role::Replica { of, link_up: true } if of == primary.port => Ok(()),
        role => bail!(
            "{} (127.0.0.1:{}) is {role:?}, not a synced replica of 127.0.0.1:{} (log: {})",
            replica.name(),
            replica.port,
            primary.port,
            replica.log_file().display()
        ),
    }
}

/// Starts data node `index` on `port` (0: a free one), as a replica of
/// 127.0.0.1:`replica_of` or as a primary.
fn start_node(
    dir: &Path,
    index: usize,
    port: u16,
    replica_of: Option<u16>,
    options: &HaOptions,
) -> anyhow::Result<HaNode> {
    let node_dir = dir.join(format!("node-{index}"));
    std::fs::create_dir_all(&node_dir)
        .with_context(|| format!("cannot create {}", node_dir.display()))?;
    let config = node_dir.join("redis.conf");
    write_node_config(&config, index, replica_of)?;
    let redis_options = RedisOptions {
        config_file: Some(config),
        sentinel: false,
        extra_args: [
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            &options.min_replicas_max_lag_s.to_string(),
            // Redis 7.0 syncs a replica over the socket by default, but
            // first waits 5 s for more replicas to share the transfer: on
            // our own machine that is just 5 s more of refused writes.
            "--repl-diskless-sync-delay",
            "0",
        ]
        .map(str::to_owned)
        .to_vec(),
    };
    let redis = LocalRedis::start_with(port, &node_dir, redis_options)
        .with_context(|| format!("starting node-{index}"))?;
    Ok(HaNode {
        port: redis.port,
        index,
        redis,
        down_since: None,
    })
}

/// Restarts `node`, first naming `primary` in its config when that is
/// another node (a node the Sentinels still call primary comes back as one).
fn restart_as_replica_of(node: &mut HaNode, primary: Option<u16>) -> anyhow::Result<()> {
    if let Some(primary) = primary.filter(|p| *p != node.port) {
        write_node_config(&node.config_file(), node.index, Some(primary))?;
    }
    node.restart()
}

fn write_node_config(path: &Path, index: usize, replica_of: Option<u16>) -> anyhow::Result<()> {
    let mut text = format!(
        "# crowdgate local HA data node {index}: written by crowdgate at each start\n\
         # with the role the Sentinels last recorded. While it runs, Sentinel rewrites\n\
         # this file (CONFIG REWRITE) when it changes the node's role, so a restart of\n\
         # this node alone keeps that role. Everything else comes from flags, which\n\
         # override this file.\n"
    );
    if let Some(port) = replica_of {
        text.push_str(&format!("replicaof 127.0.0.1 {port}\n"));
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A fresh Sentinel config. Port, bind address, directory and log file come
/// from flags ([`LocalRedis`]); Sentinel writes them into this file at its
/// first start, with its id, and from then on its view of the set.
fn write_sentinel_config(
    path: &Path,
    index: usize,
    primary: u16,
    options: &HaOptions,
) -> anyhow::Result<()> {
    let name = &options.master_name;
    let quorum = SENTINELS / 2 + 1;
    let text = format!(
        "# crowdgate local HA Sentinel {index}. Sentinel rewrites this file as it learns\n\
         # about the set; crowdgate keeps it across starts on the same ports.\n\
         sentinel monitor {name} 127.0.0.1 {primary} {quorum}\n\
         sentinel down-after-milliseconds {name} {}\n\
         sentinel failover-timeout {name} {}\n\
         sentinel parallel-syncs {name} 1\n",
        options.down_after_ms, options.failover_timeout_ms
    );
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn read_last_start(dir: &Path) -> Option<LastStart> {
    let text = std::fs::read_to_string(dir.join("ha.toml")).ok()?;
    toml::from_str(&text).ok()
}

/// Which node (0, 1 or 2) most Sentinel configs name primary, by the ports
/// of the last start; None if they name none of them.
fn recorded_primary(dir: &Path, last: &LastStart) -> Option<usize> {
    let prefix = format!("sentinel monitor {} ", last.master_name);
    let mut votes = [0usize; DATA_NODES];
    for i in 0..SENTINELS {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("sentinel-{i}/sentinel.conf")))
        else {
            continue;
        };
        // `sentinel monitor <name> <ip> <port> <quorum>`
        let port = text
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|port| port.parse::<u16>().ok());
        if let Some(node) = last.ports.nodes.iter().position(|&p| Some(p) == port) {
            votes[node] += 1;
        }
    }
    // Ties go to the lower index.
    let (node, most) = votes
        .iter()
        .enumerate()
        .max_by_key(|&(node, votes)| (*votes, std::cmp::Reverse(node)))
        .expect("DATA_NODES > 0");
    (*most > 0).then_some(node)
}

/// `key:value` lines of an INFO answer.
fn info_fields(info: &str) -> HashMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// One command to the server on 127.0.0.1:`port`, on a connection of its
/// own, within [`QUERY_TIMEOUT`].
async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> anyhow::Result<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let answer = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut connection).await
    };
    match tokio::time::timeout(QUERY_TIMEOUT, answer).await {
        Ok(answer) => answer.with_context(|| format!("127.0.0.1:{port}")),
        Err(_) => bail!("127.0.0.1:{port} did not answer within {QUERY_TIMEOUT:?}"),
    }
}

/// Runs `check` every [`POLL`] until it succeeds or `deadline` passes; then
/// its last error.
async fn poll<T>(
    deadline: Instant,
    mut check: impl AsyncFnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
