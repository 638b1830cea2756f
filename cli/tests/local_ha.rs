//! `LocalHa` with real redis-server processes (no mocks): the Sentinels
//! promote a replica when the primary is killed or hangs, the promoted one
//! takes writes at once (the other replica is there to confirm them), the
//! old primary comes back as a replica, a lost replica stops nothing, and a
//! new start on the same directory keeps the topology the Sentinels last
//! recorded. The end-to-end tests build on this, so it is checked here on
//! its own first.

use crowdgate::local_ha::{HaOptions, LocalHa, Role};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A failover on one machine takes down-after (1 s) and an election; 15 s
/// leaves room for a split vote and a loaded machine.
const FAILOVER: Duration = Duration::from_secs(15);

/// Redis 7.0 Sentinel waits about 8 s after an old primary is reachable
/// again before making it a replica.
const REJOIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_killed_primary_is_replaced_and_comes_back_as_a_replica() {
    let dir = TestDir::new("kill");
    let started = Instant::now();
    let mut ha = LocalHa::start(dir.path(), HaOptions::default())
        .await
        .expect("the set starts");
    println!("started in {:?}", started.elapsed());
    let old = ha
        .primary_port()
        .await
        .expect("the Sentinels name a primary");
    assert_eq!(
        old,
        ha.node(0).port,
        "a fresh set starts with node-0 primary"
    );
    let replicas = [ha.node(1).port, ha.node(2).port];
    assert_eq!(ha.nodes().len(), 3);
    assert_eq!(ha.sentinel_addrs().len(), 3);
    assert_eq!(ha.sentinels_arg().split(',').count(), 3);

    set_and_wait_for_replicas(old, "before", "1", 2).await;

    ha.node_on(old).expect("our node").kill();
    let killed = Instant::now();
    let new = ha
        .wait_for_primary_change(old, FAILOVER)
        .await
        .expect("the Sentinels promote the replica");
    println!("failover after kill -9 took {:?}", killed.elapsed());
    assert!(replicas.contains(&new), "{new} is not one of {replicas:?}");
    assert_eq!(get(new, "before").await.as_deref(), Some("1"));
    // The other replica follows the new primary, so it takes writes while
    // the old one is still down (min-replicas-to-write 1 is met).
    set_and_wait_for_replicas(new, "during", "1", 1).await;

    ha.node_on(old)
        .expect("our node")
        .restart()
        .expect("restarts");
    let restarted = Instant::now();
    ha.wait_until_replicating(REJOIN)
        .await
        .expect("the old primary becomes a replica of the new one");
    println!(
        "old primary replicating {:?} after its restart",
        restarted.elapsed()
    );
    // The primary now: the promoted node, unless a loaded machine made the
    // Sentinels fail over once more meanwhile (safe, and not what this
    // test is about).
    let primary = ha.primary_port().await.expect("a primary");
    assert_ne!(primary, old, "the killed node is primary again");
    let old_node = ha.node_on(old).expect("our node");
    assert_eq!(
        old_node.role().await.unwrap(),
        Role::Replica {
            of: primary,
            link_up: true
        }
    );
    set_and_wait_for_replicas(primary, "after", "2", 2).await;
    assert_eq!(get(old, "after").await.as_deref(), Some("2"));

    // Sentinel persisted the new role in the node's own config file.
    let config = std::fs::read_to_string(ha.node_on(old).unwrap().config_file()).unwrap();
    assert!(
        config.contains(&format!("replicaof 127.0.0.1 {primary}")),
        "{config}"
    );

    // A new start on the same directory keeps what the Sentinels recorded:
    // the node that is primary now stays primary, and nothing written is
    // lost.
    let promoted = ha
        .nodes()
        .iter()
        .position(|node| node.port == primary)
        .unwrap();
    let pids = ha.pids();
    assert_eq!(pids.len(), 6);
    ha.stop();
    drop(ha);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "redis-server {pid} still runs after stop"
        );
    }
    let ha = LocalHa::start(dir.path(), HaOptions::default())
        .await
        .expect("the set starts again");
    let primary = ha.primary_port().await.unwrap();
    assert_eq!(
        primary,
        ha.node(promoted).port,
        "node-{promoted} stays primary"
    );
    assert_eq!(get(primary, "before").await.as_deref(), Some("1"));
    assert_eq!(get(primary, "during").await.as_deref(), Some("1"));
    assert_eq!(get(ha.node(0).port, "after").await.as_deref(), Some("2"));
    set_and_wait_for_replicas(primary, "again", "3", 2).await;
}

/// A replica lost for good costs nothing: the primary keeps taking writes
/// confirmed by the other replica. Only with both replicas gone does it
/// refuse them.
#[tokio::test]
async fn losing_one_replica_leaves_writes_going_and_losing_both_stops_them() {
    let dir = TestDir::new("replica");
    let mut ha = LocalHa::start(dir.path(), HaOptions::default())
        .await
        .expect("the set starts");
    let primary = ha.primary_port().await.unwrap();
    let replicas = ha.ports_except(primary);
    ha.node_on(replicas[0]).unwrap().kill();
    // Once the primary has noticed (its replica count drops to one), it
    // still has a replica to write with.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ha.node_on(primary).unwrap().role().await.unwrap() != (Role::Primary { replicas: 1 }) {
        assert!(
            Instant::now() < deadline,
            "the primary never noticed the lost replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set_and_wait_for_replicas(primary, "one-lost", "1", 1).await;
    assert_eq!(get(replicas[1], "one-lost").await.as_deref(), Some("1"));

    ha.node_on(replicas[1]).unwrap().kill();
    let lag = Duration::from_secs(HaOptions::default().min_replicas_max_lag_s);
    let deadline = Instant::now() + lag + Duration::from_secs(5);
    loop {
        match set(primary, "both-lost", "1").await {
            Err(refused) if refused.contains("NOREPLICAS") => break,
            answer => assert!(
                Instant::now() < deadline,
                "still taking writes with no replica: {answer:?}"
            ),
        }
        // Poll interval: the primary recounts its replicas once a second.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_hung_primary_is_replaced_and_refuses_writes_when_it_wakes() {
    let dir = TestDir::new("stop");
    let mut ha = LocalHa::start(dir.path(), HaOptions::default())
        .await
        .expect("the set starts");
    let old = ha.primary_port().await.unwrap();
    ha.node_on(old).unwrap().stop();
    let stopped = Instant::now();
    let new = ha
        .wait_for_primary_change(old, FAILOVER)
        .await
        .expect("the Sentinels promote the replica");
    println!("failover after SIGSTOP took {:?}", stopped.elapsed());
    ha.node_on(old).unwrap().cont();
    // Awake, it may still think it is primary, but it has no replica: a
    // write to it is refused either way (NOREPLICAS, or READONLY once
    // Sentinel has demoted it).
    let refused = set(old, "stale", "1").await.expect_err("refused");
    assert!(
        refused.contains("NOREPLICAS") || refused.contains("READONLY"),
        "{refused}"
    );
    ha.wait_until_replicating(REJOIN)
        .await
        .expect("the old primary becomes a replica");
    set_and_wait_for_replicas(new, "k", "v", 2).await;
    assert_eq!(get(old, "k").await.as_deref(), Some("v"));
}

/// SET on `port`, then WAIT until `replicas` replicas have it. A primary counts a
/// replica as good for `min-replicas-to-write` only from its next
/// once-a-second replication check after the link comes up, so until then
/// it answers NOREPLICAS: the SET is retried, as a client would, until the
/// primary takes it (within 5 s).
async fn set_and_wait_for_replicas(port: u16, key: &str, value: &str, replicas: i64) {
    // WAIT covers the writes of the connection it is sent on: the same one.
    let mut connection = connect(port).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let written = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut connection)
            .await;
        match written {
            Ok(()) => break,
            Err(err) if err.to_string().contains("NOREPLICAS") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("SET on the primary: {err}"),
        }
    }
    let acked: i64 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(5000)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(acked, replicas, "replicas that acknowledged the write");
}

async fn set(port: u16, key: &str, value: &str) -> Result<(), String> {
    let mut connection = connect(port).await;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async::<()>(&mut connection)
        .await
        .map_err(|err| err.to_string())
}

async fn get(port: u16, key: &str) -> Option<String> {
    let mut connection = connect(port).await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

async fn connect(port: u16) -> redis::aio::MultiplexedConnection {
    // Longer than the 5 s WAIT above (the default answer timeout is shorter).
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// A directory under Cargo's scratch space for integration tests, removed
/// when the test passes (kept, for the logs, when it fails).
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("local_ha-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TestDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
