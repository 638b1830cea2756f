//! Partitions under load: every part of the system on a machine of its own
//! (a network namespace on a private bridge, `crowdgate_tests::netns`) —
//! three Redis data nodes (a primary and two replicas, `min-replicas-to-write
//! 1`, AOF with `appendfsync always`), three Sentinels, core, the
//! settlement worker and the edge host — while investors join, take passes
//! and invest through the edge, retrying every 503 with the same
//! Idempotency-Key. Links are cut the ways real networks fail: the primary
//! isolated from everyone; the primary cut off from the Sentinels and the
//! replicas but still reachable by core (the split brain
//! `min-replicas-to-write` is for); core cut off from Redis; the edge cut
//! off from core; a flapping link. After each the network heals and the
//! books must hold what the clients were told: every acknowledged
//! investment present once and settled once, no queue number given twice,
//! the cap held, `crowdgate reconcile` passing.
//!
//! Each test prints its write-unavailability window: from the cut until an
//! investment sent after it is acknowledged (and, where the cut itself
//! stops writes, from the heal), the figures for BENCHMARKS.md. Run them
//! with `cargo nextest run -p crowdgate-tests --test partition
//! --no-capture` to see them.

use crowdgate::local_ha::HaOptions;
use crowdgate_tests::ha::{Load, Outcome, check_books_with, investor_names};
use crowdgate_tests::netns::{Network, TESTER};
use crowdgate_tests::{
    CORE, HOST, Proc, RoundOptions, SETTLE, Visitor, identity_env, json_of, run_crowdgate,
    start_services_in,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The data nodes' hosts; the first starts as primary.
const NODES: [&str; 3] = ["redis-0", "redis-1", "redis-2"];
const SENTINELS: [&str; 3] = ["sentinel-0", "sentinel-1", "sentinel-2"];
/// Every host is a machine of its own, so each uses the standard ports.
const REDIS_PORT: u16 = 6379;
const SENTINEL_PORT: u16 = 26379;
const MASTER: &str = "crowdgate";

const CAP_PENCE: i64 = 1_000_000_000;
/// Funded investors: more than a scenario's clients can visit, so the load
/// lasts until it is stopped.
const INVESTORS: usize = 4_000;
const CLIENTS: usize = 8;
/// Investors who hold a pass when a link is cut and invest at once
/// ([`Ready`]), per cut.
const READY: usize = 3;
/// A visit still refused after this long fails the test: writes must come
/// back once the network heals.
const GIVE_UP: Duration = Duration::from_secs(60);
/// How long to wait for the set to agree on a primary with two synced
/// replicas, at start and after a heal (Sentinel waits a few seconds before
/// it demotes a returning old primary).
const CONVERGE: Duration = Duration::from_secs(40);

/// The Redis set on its network: three data nodes and three Sentinels,
/// each a host of its own. Fields drop in order: the processes before the
/// network they run in.
struct RedisSet {
    _sentinels: Vec<Proc>,
    _nodes: Vec<Proc>,
    net: Network,
    /// Sentinel timing, as `crowdgate up --ha` uses it.
    ha: HaOptions,
}

/// The whole system in namespaces: the set, then core, the worker and the
/// edge host on hosts of their own.
struct NetSystem {
    core: Proc,
    settle: Option<Proc>,
    _host: Proc,
    edge_url: String,
    set: RedisSet,
    /// Logs and data; deleted last.
    _dir: TempDir,
}

impl NetSystem {
    /// Starts the set (primary on [`NODES`]`[0]`), funds [`INVESTORS`]
    /// investors, then the services, each ready.
    async fn start() -> NetSystem {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut hosts: Vec<&str> = NODES.iter().chain(&SENTINELS).copied().collect();
        hosts.extend([CORE, SETTLE, HOST]);
        let net = Network::new(&hosts);
        let ha = HaOptions::default();
        let primary = net.ip(NODES[0]);
        let mut nodes = Vec::new();
        for (i, node) in NODES.iter().enumerate() {
            nodes.push(spawn_node(&net, &dir, node, (i > 0).then_some(primary), &ha).await);
        }
        let mut sentinels = Vec::new();
        for sentinel in SENTINELS {
            sentinels.push(spawn_sentinel(&net, &dir, sentinel, primary, &ha).await);
        }
        let set = RedisSet {
            _sentinels: sentinels,
            _nodes: nodes,
            net,
            ha,
        };
        set.wait_until_converged().await;
        let mut investors = investor_names("investor", INVESTORS);
        investors.extend(investor_names("ready", READY * FLAPS.len()));
        let funded: Vec<(&str, i64)> = investors.iter().map(|n| (n.as_str(), 1_000_000)).collect();
        crowdgate_store::inspect::set_balances(&mut set.primary().await, &funded)
            .await
            .unwrap();
        let round = RoundOptions {
            cap_pence: CAP_PENCE,
            ..Default::default()
        };
        let (core, _, settle, host, edge_url) = start_services_in(
            &set.net,
            &round,
            &set.client_env(),
            dir.path(),
            true,
            identity_env(),
        )
        .await;
        NetSystem {
            core,
            settle,
            _host: host,
            edge_url,
            set,
            _dir: dir,
        }
    }

    /// A system with the load under way ([`WARM_UP`] investments made),
    /// [`Ready`] investors holding passes, and the primary it runs on.
    async fn under_load() -> (NetSystem, Load, Ready, &'static str) {
        let system = NetSystem::start().await;
        let load = system.load();
        load.wait_for(WARM_UP, GIVE_UP).await;
        let ready = Ready::prepare(&system.edge_url, 0).await;
        let primary = system.set.wait_for_primary(None, CONVERGE).await;
        (system, load, ready, primary)
    }

    fn net(&mut self) -> &mut Network {
        &mut self.set.net
    }

    /// Clients visiting the edge as the funded investors.
    fn load(&self) -> Load {
        Load::start_funded(
            &self.edge_url,
            investor_names("investor", INVESTORS),
            CLIENTS,
            GIVE_UP,
        )
    }

    /// Heals the network and waits until the set is whole again; when the
    /// network healed.
    async fn heal(&mut self) -> Instant {
        self.net().heal();
        let healed_at = Instant::now();
        self.set.wait_until_converged().await;
        healed_at
    }

    /// Ends the load (after `more` further investments, so the healed
    /// system is seen taking money) and checks the books against every
    /// outcome, the [`Ready`] investors' too.
    async fn finish(&self, load: Load, more: usize, ready: Vec<Outcome>) -> Vec<Outcome> {
        load.wait_for(load.acknowledged() + more, GIVE_UP).await;
        load.stop();
        let mut outcomes = load.finish().await;
        outcomes.extend(ready);
        let env = self.set.client_env();
        let services: Vec<&Proc> = [Some(&self.core), self.settle.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        check_books_with(
            async || self.set.primary().await,
            |args| run_crowdgate(&env, args),
            &services,
            &outcomes,
            CAP_PENCE,
        )
        .await;
        outcomes
    }
}

impl RedisSet {
    /// How `crowdgate` processes reach the set: its Sentinels.
    fn client_env(&self) -> Vec<(&'static str, String)> {
        let sentinels: Vec<String> = SENTINELS
            .iter()
            .map(|s| format!("{}:{SENTINEL_PORT}", self.net.ip(s)))
            .collect();
        vec![
            ("CROWDGATE_REDIS_SENTINELS", sentinels.join(",")),
            ("CROWDGATE_REDIS_MASTER", MASTER.to_string()),
        ]
    }

    /// The data node a majority of the Sentinels name primary, if they do.
    async fn named_primary(&self) -> Option<&'static str> {
        let mut named = Vec::new();
        for sentinel in SENTINELS {
            let addr = SocketAddr::from((self.net.ip(sentinel), SENTINEL_PORT));
            let answer: anyhow::Result<Option<(String, u16)>> = query(
                addr,
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(MASTER),
            )
            .await;
            if let Ok(Some((ip, _))) = answer {
                named.push(ip);
            }
        }
        NODES.into_iter().find(|node| {
            let ip = self.net.ip(node).to_string();
            // A majority of the three.
            named.iter().filter(|n| **n == ip).count() > SENTINELS.len() / 2
        })
    }

    /// Waits until a majority of the Sentinels name a primary other than
    /// `old` (`None`: any), and returns it.
    async fn wait_for_primary(&self, old: Option<&str>, within: Duration) -> &'static str {
        let deadline = Instant::now() + within;
        loop {
            if let Some(new) = self.named_primary().await.filter(|p| Some(*p) != old) {
                return new;
            }
            assert!(
                Instant::now() < deadline,
                "no majority of the Sentinels named a primary other than {old:?} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A connection to the primary the Sentinels name.
    async fn primary(&self) -> redis::aio::MultiplexedConnection {
        let node = self.wait_for_primary(None, CONVERGE).await;
        let url = format!("redis://{}:{REDIS_PORT}/", self.net.ip(node));
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("a connection to the primary")
    }

    /// Waits until the set is whole: a majority of the Sentinels name one
    /// primary, which says it is primary with both other nodes as online
    /// replicas, each of which says so too. Returns the primary.
    async fn wait_until_converged(&self) -> &'static str {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let why = match self.named_primary().await {
                None => "no majority of the Sentinels names a primary".to_string(),
                Some(p) => match self.replication_problem(p).await {
                    None => return p,
                    Some(why) => why,
                },
            };
            assert!(
                Instant::now() < deadline,
                "the Redis set did not converge within {CONVERGE:?}: {why} (cuts: {:?})",
                self.net.describe_cuts()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Why `primary` and the other nodes are not a primary with two synced
    /// replicas, if they are not.
    async fn replication_problem(&self, primary: &str) -> Option<String> {
        let info = |node: &str| {
            let addr = SocketAddr::from((self.net.ip(node), REDIS_PORT));
            async move {
                let text: String = query(addr, redis::cmd("INFO").arg("replication")).await?;
                anyhow::Ok(
                    text.lines()
                        .filter_map(|l| l.trim_end().split_once(':'))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<HashMap<_, _>>(),
                )
            }
        };
        let fields = match info(primary).await {
            Ok(fields) => fields,
            Err(err) => return Some(format!("{primary}: {err}")),
        };
        let online = (0..NODES.len())
            .filter_map(|i| fields.get(&format!("slave{i}")))
            .filter(|v| v.contains("state=online"))
            .count();
        if fields.get("role").map(String::as_str) != Some("master") || online < 2 {
            return Some(format!(
                "{primary} is {:?} with {online} online replicas",
                fields.get("role")
            ));
        }
        let primary_ip = self.net.ip(primary).to_string();
        for node in NODES.into_iter().filter(|n| *n != primary) {
            match info(node).await {
                Ok(f)
                    if f.get("role").map(String::as_str) == Some("slave")
                        && f.get("master_host") == Some(&primary_ip)
                        && f.get("master_link_status").map(String::as_str) == Some("up") => {}
                Ok(f) => {
                    return Some(format!(
                        "{node} is {:?} of {:?}, link {:?}",
                        f.get("role"),
                        f.get("master_host"),
                        f.get("master_link_status")
                    ));
                }
                Err(err) => return Some(format!("{node}: {err}")),
            }
        }
        None
    }
}

/// Starts a durable data node on `host`, as a replica of `replica_of` or
/// as the primary, from a config file of its own (Sentinel persists a role
/// change with CONFIG REWRITE).
async fn spawn_node(
    net: &Network,
    dir: &TempDir,
    host: &str,
    replica_of: Option<Ipv4Addr>,
    ha: &HaOptions,
) -> Proc {
    let node_dir = dir.path().join(host);
    std::fs::create_dir_all(&node_dir).unwrap();
    let config = node_dir.join("redis.conf");
    let role = replica_of.map_or(String::new(), |p| format!("replicaof {p} {REDIS_PORT}\n"));
    std::fs::write(&config, role).unwrap();
    let lag = ha.min_replicas_max_lag_s.to_string();
    let mut command = net.command(host, "redis-server");
    command
        .arg(&config)
        .args(["--bind", &net.ip(host).to_string()])
        .args(["--port", &REDIS_PORT.to_string(), "--protected-mode", "no"])
        .arg("--dir")
        .arg(&node_dir)
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(["--aof-load-truncated", "no", "--save", ""])
        .args([
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            &lag,
        ])
        .args(["--repl-diskless-sync-delay", "0"]);
    let mut node = Proc::spawn(host, &mut command, dir.path());
    wait_for_log(&mut node, "Ready to accept connections").await;
    node
}

/// Starts a Sentinel on `host` watching the primary at `primary`.
async fn spawn_sentinel(
    net: &Network,
    dir: &TempDir,
    host: &str,
    primary: Ipv4Addr,
    ha: &HaOptions,
) -> Proc {
    let sentinel_dir = dir.path().join(host);
    std::fs::create_dir_all(&sentinel_dir).unwrap();
    let config = sentinel_dir.join("sentinel.conf");
    let quorum = SENTINELS.len() / 2 + 1;
    std::fs::write(
        &config,
        format!(
            "sentinel monitor {MASTER} {primary} {REDIS_PORT} {quorum}\n\
             sentinel down-after-milliseconds {MASTER} {}\n\
             sentinel failover-timeout {MASTER} {}\n\
             sentinel parallel-syncs {MASTER} 1\n",
            ha.down_after_ms, ha.failover_timeout_ms
        ),
    )
    .unwrap();
    let mut command = net.command(host, "redis-server");
    command
        .arg(&config)
        .arg("--sentinel")
        .args(["--bind", &net.ip(host).to_string()])
        .args([
            "--port",
            &SENTINEL_PORT.to_string(),
            "--protected-mode",
            "no",
        ])
        .arg("--dir")
        .arg(&sentinel_dir);
    let mut sentinel = Proc::spawn(host, &mut command, dir.path());
    wait_for_log(&mut sentinel, "Sentinel ID is").await;
    sentinel
}

async fn wait_for_log(proc: &mut Proc, line: &str) {
    let ready = proc
        .wait_for_line(line, Duration::from_secs(20), |l| {
            l.contains(line).then_some(())
        })
        .await;
    assert!(ready.is_some(), "{} exited:\n{}", proc.name, proc.log());
}

/// One command to the server at `addr` on a connection of its own, within
/// a second (a cut-off server never answers).
async fn query<T: redis::FromRedisValue>(addr: SocketAddr, cmd: &redis::Cmd) -> anyhow::Result<T> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let answer = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut connection).await
    };
    Ok(tokio::time::timeout(Duration::from_secs(1), answer).await??)
}

/// Waits until an investment sent at or after `since` is acknowledged;
/// how long after `since` that was.
async fn writes_resume(load: &Load, since: Instant, within: Duration, what: &str) -> Duration {
    let deadline = since + within;
    loop {
        if let Some(at) = load.tally.acknowledged_after(since) {
            return at - since;
        }
        assert!(
            Instant::now() < deadline,
            "no investment acknowledged within {within:?} {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Investors who already hold a pass when a link is cut and invest the
/// moment it happens, retrying 503s: how soon the write path alone takes
/// money again, without joining or waiting for admission (which the
/// [`Load`]'s new visitors measure).
struct Ready {
    edge_url: String,
    /// Investor, their client, their pass, the queue number they were given.
    investors: Vec<(String, Visitor, String, Option<u64>)>,
    /// When each of their 503s was answered.
    refused: Arc<Mutex<Vec<Instant>>>,
}

impl Ready {
    /// Signs in as `ready-<first>` … and takes each a pass.
    async fn prepare(edge_url: &str, first: usize) -> Ready {
        let mut investors = Vec::new();
        for name in investor_names("ready", first + READY).split_off(first) {
            let visitor = Visitor::signed_in(edge_url, &name);
            let (code, joined) = visitor.join_retrying().await;
            assert!(code == 200 || code == 201, "{name}: join {code} {joined}");
            visitor.wait_until_admitted(GIVE_UP).await;
            let pass = visitor.pass().await;
            let number = joined["status"]["queue_number"].as_u64();
            investors.push((name, visitor, pass, number));
        }
        Ready {
            edge_url: edge_url.to_string(),
            investors,
            refused: Arc::default(),
        }
    }

    /// Waits until one of them is refused (503) at or after `since`: the
    /// cut is felt where it matters, by someone trying to invest.
    fn refused_since(
        &self,
        since: Instant,
        within: Duration,
        what: &str,
    ) -> impl Future<Output = ()> + use<> {
        let refused = self.refused.clone();
        let what = what.to_string();
        async move {
            let deadline = since + within;
            while !refused.lock().unwrap().iter().any(|at| *at >= since) {
                assert!(
                    Instant::now() < deadline,
                    "no investment was refused within {within:?} of {what}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Each invests now, retrying every 503 after 100 ms; their outcomes,
    /// and how long after `since` the first was acknowledged.
    async fn invest(self, since: Instant) -> (Vec<Outcome>, Duration) {
        let url = format!("{}/api/investments", self.edge_url);
        let tasks: Vec<_> = self
            .investors
            .into_iter()
            .map(|(investor, visitor, pass, queue_number)| {
                let url = url.clone();
                let refused = self.refused.clone();
                tokio::spawn(async move {
                    let mut unavailable_at = Vec::new();
                    loop {
                        let response = visitor
                            .http
                            .post(&url)
                            .bearer_auth(&pass)
                            .header("idempotency-key", format!("{investor}-invest"))
                            .json(&serde_json::json!({"amount_pence": 2_000}))
                            .send()
                            .await
                            .unwrap();
                        let (code, body) = json_of(response).await;
                        if code == 201 || code == 200 {
                            let outcome = Outcome {
                                investor,
                                amount_pence: 2_000,
                                investment: body,
                                unavailable_at,
                                status_unavailable: 0,
                                queue_number,
                            };
                            return (outcome, Instant::now());
                        }
                        assert_eq!(code, 503, "{investor}: invest answered {code}: {body}");
                        assert!(since.elapsed() < GIVE_UP, "{investor}: still 503: {body}");
                        unavailable_at.push(Instant::now());
                        refused.lock().unwrap().push(Instant::now());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        let mut first = None::<Instant>;
        for task in tasks {
            let (outcome, at) = task.await.expect("a ready investor panicked");
            outcomes.push(outcome);
            first = Some(first.map_or(at, |f| f.min(at)));
        }
        (outcomes, first.expect("ready investors") - since)
    }
}

/// How many visits met a 503 (for the report line).
fn refused_visits(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| !o.unavailable_at.is_empty())
        .count()
}

/// Investments acknowledged before any cut, so the load is under way.
const WARM_UP: usize = 30;
/// How long a cut that stops writes by itself (no failover ends it) is
/// held once clients feel it: the partition's length is the scenario's
/// input, not a wait for something.
const OUTAGE: Duration = Duration::from_secs(3);

#[test]
fn the_harness_cuts_and_restores_links_and_cleans_up() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::new(&["a", "b"]);
    let prefix = format!("cgpt{}-", net.slot());
    let ha = HaOptions::default();
    let _a = runtime.block_on(spawn_node(&net, &dir, "a", None, &ha));
    let _b = runtime.block_on(spawn_node(&net, &dir, "b", None, &ha));
    let (a, b) = (net.ip("a"), net.ip("b"));
    // From the test process, and from one namespace to another (redis-cli
    // run inside "a").
    let ping_from_tester = |ip: Ipv4Addr| {
        runtime
            .block_on(query::<String>(
                SocketAddr::from((ip, REDIS_PORT)),
                &redis::cmd("PING"),
            ))
            .is_ok()
    };
    let ping_a_to_b = |net: &Network| {
        net.command("a", "timeout")
            .args(["2", "redis-cli", "-h", &b.to_string()])
            .args(["-p", &REDIS_PORT.to_string(), "PING"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
    };
    assert!(
        ping_from_tester(a) && ping_from_tester(b),
        "the tester reaches both"
    );
    assert!(ping_a_to_b(&net), "a reaches b");

    net.cut(&["a"], &["b"]);
    assert!(!ping_a_to_b(&net), "a reaches b through a cut");
    assert!(
        ping_from_tester(a) && ping_from_tester(b),
        "only a–b is cut"
    );
    net.restore(&["a"], &["b"]);
    assert!(ping_a_to_b(&net));

    // One way: a's packets to b are dropped; the tester still reaches b.
    net.cut_one_way(&["a"], &["b"]);
    assert!(!ping_a_to_b(&net));
    net.heal();
    assert!(ping_a_to_b(&net));

    net.isolate("b");
    assert!(!ping_from_tester(b) && !ping_a_to_b(&net) && ping_from_tester(a));
    net.heal();
    net.link_down("a");
    assert!(!ping_from_tester(a) && ping_from_tester(b));
    net.link_up("a");
    assert!(ping_from_tester(a) && ping_a_to_b(&net));
    assert_eq!(net.host(TESTER).netns, None);

    drop((_a, _b));
    drop(net);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&prefix)),
        "namespaces left behind:\n{left}"
    );
}

/// Cuts the primary off by `cut` (given the network and the primary)
/// under load and waits for the Sentinels to promote a replica and for
/// investments to be acknowledged again, with the old primary still cut
/// off: the other replica keeps the new primary writable. Then heals and
/// checks the books; prints the windows.
async fn fail_over_and_check(what: &str, cut: impl FnOnce(&mut Network, &'static str)) {
    let (mut system, load, ready, old) = NetSystem::under_load().await;
    let cut_at = Instant::now();
    cut(system.net(), old);
    let (ready, invest_window) = ready.invest(cut_at).await;
    let new = system.set.wait_for_primary(Some(old), CONVERGE).await;
    let window = writes_resume(&load, cut_at, GIVE_UP, "after the cut").await;
    system.heal().await;
    let outcomes = system.finish(load, 20, ready).await;
    println!(
        "partition window: {what} ({old}), {new} promoted: a pass holder's investment \
         acknowledged {invest_window:?} after the cut, a new visitor's {window:?}; \
         {} of {} visits met a 503",
        refused_visits(&outcomes),
        outcomes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_isolated_from_everyone() {
    fail_over_and_check("the primary isolated by its veth down", |net, primary| {
        net.link_down(primary)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_cut_off_from_the_sentinels_and_replicas_but_not_from_core() {
    // core (and the worker, the edge, the test) still reach the old primary,
    // which still calls itself primary: what core writes there no replica
    // confirms, so none of it may be acknowledged, and core must move to the
    // node the Sentinels promote.
    let what = "the primary cut off from the Sentinels and replicas, not from core";
    fail_over_and_check(what, |net, primary| {
        let others: Vec<&str> = NODES
            .iter()
            .chain(&SENTINELS)
            .copied()
            .filter(|h| *h != primary)
            .collect();
        net.cut(&[primary], &others);
    })
    .await;
}

/// Cuts `a` off from `b` under load, holds the cut for [`OUTAGE`] once an
/// investment is refused, heals, and checks the books; prints the windows.
async fn cut_heal_and_check(what: &str, a: &[&str], b: &[&str]) -> Vec<Outcome> {
    let (mut system, load, ready, primary) = NetSystem::under_load().await;
    let cut_at = Instant::now();
    system.net().cut(a, b);
    let refused = ready.refused_since(cut_at, Duration::from_secs(15), what);
    let invested = tokio::spawn(ready.invest(cut_at));
    refused.await;
    let felt_after = cut_at.elapsed();
    tokio::time::sleep(OUTAGE).await;
    let healed_at = system.heal().await;
    let after_heal = writes_resume(&load, healed_at, GIVE_UP, "after the heal").await;
    let (ready, invest_window) = invested.await.expect("the ready investors");
    // Redis itself saw nothing wrong: no failover.
    assert_eq!(system.set.named_primary().await, Some(primary));
    let outcomes = system.finish(load, 20, ready).await;
    println!(
        "partition window: {what} for {:?} (clients refused from {felt_after:?}): a pass holder's \
         investment acknowledged {invest_window:?} after the cut, {:?} after the heal; a new \
         visitor's {after_heal:?} after the heal; {} of {} visits met a 503",
        healed_at - cut_at,
        (cut_at + invest_window).saturating_duration_since(healed_at),
        refused_visits(&outcomes),
        outcomes.len()
    );
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_cut_off_from_redis() {
    let redis: Vec<&str> = NODES.iter().chain(&SENTINELS).copied().collect();
    cut_heal_and_check("core cut off from Redis", &[CORE], &redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_cut_off_from_core() {
    let outcomes = cut_heal_and_check("the edge cut off from core", &[HOST], &[CORE]).await;
    // Status polls are answered from the edge's cached room state.
    let status_503s: usize = outcomes.iter().map(|o| o.status_unavailable).sum();
    assert_eq!(status_503s, 0, "status polls failed while core was away");
}

/// A flapping link: how long each cut lasts, in Sentinel down-afters —
/// shorter and longer than it takes to declare the primary down, so some
/// cuts end before a failover and some after one.
const FLAPS: [f64; 4] = [0.5, 2.0, 0.25, 0.5];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_to_the_primary() {
    let mut system = NetSystem::start().await;
    let load = system.load();
    load.wait_for(WARM_UP, GIVE_UP).await;

    let down_after = Duration::from_millis(system.set.ha.down_after_ms);
    let mut windows = Vec::new();
    let mut ready_outcomes = Vec::new();
    for (i, flap) in FLAPS.iter().enumerate() {
        let ready = Ready::prepare(&system.edge_url, i * READY).await;
        let primary = system.set.wait_for_primary(None, CONVERGE).await;
        let hold = down_after.mul_f64(*flap);
        let cut_at = Instant::now();
        system.net().isolate(primary);
        let invested = tokio::spawn(ready.invest(cut_at));
        // The flap's timing is the scenario: a sleep, not a wait.
        tokio::time::sleep(hold).await;
        system.net().heal();
        let window = writes_resume(&load, cut_at, GIVE_UP, "after a flap").await;
        let (ready, invest_window) = invested.await.expect("the ready investors");
        ready_outcomes.extend(ready);
        windows.push(format!(
            "{primary} cut {hold:?}: pass holder {invest_window:?}, new visitor {window:?}"
        ));
    }
    system.set.wait_until_converged().await;
    let outcomes = system.finish(load, 20, ready_outcomes).await;
    println!(
        "partition window: a flapping link to the primary, investments acknowledged again after \
         each cut: {}; {} of {} visits met a 503",
        windows.join("; "),
        refused_visits(&outcomes),
        outcomes.len()
    );
}
