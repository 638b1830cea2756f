//! Surviving the loss of a Redis machine: the system runs on a primary and
//! two replicas under three Sentinels (real redis-server processes on
//! loopback), acknowledging a write only once a replica holds it. Investors
//! keep investing through the edge while the primary is killed (kill -9) or
//! stopped (SIGSTOP, a partition stand-in), or replicas are killed; every
//! investment a client was told was accepted must be on the new primary
//! exactly once, settled once, with the books reconciling. core and the
//! worker started while Redis is down wait for it instead of exiting.

use crowdgate::local_ha::HaNode;
use crowdgate_tests::ha::{HaSystem, Load, Outcome, Tally, check_books, unavailable_window, visit};
use crowdgate_tests::{RoundOptions, Visitor, json_of};
use std::time::{Duration, Instant};

const CAP_PENCE: i64 = 100_000_000;
/// Long enough for a failover and the lost node's return, with margin.
const GIVE_UP: Duration = Duration::from_secs(90);

fn round() -> RoundOptions {
    RoundOptions {
        cap_pence: CAP_PENCE,
        ..Default::default()
    }
}

/// Does `loss` to the primary and waits until the Sentinels promote the
/// replica: (old primary's port, new primary's port, how long it took).
async fn lose_the_primary(
    system: &mut HaSystem,
    loss: impl FnOnce(&mut HaNode),
) -> (u16, u16, Duration) {
    let old = system.ha.primary_port().await.expect("a primary");
    loss(system.ha.node_on(old).unwrap());
    let lost_at = Instant::now();
    let new = system
        .ha
        .wait_for_primary_change(old, Duration::from_secs(30))
        .await
        .unwrap();
    (old, new, lost_at.elapsed())
}

/// One loss, one failover: every Sentinel switched master exactly once
/// (a second switch would mean the promoted node was itself taken for dead
/// — two primaries for a while, and a longer outage).
fn assert_one_failover(system: &HaSystem) {
    for log in system.ha.sentinel_logs() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            text.matches("+switch-master").count(),
            1,
            "{}:\n{text}",
            log.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_primary_under_load_loses_and_doubles_nothing_acknowledged() {
    let mut system = HaSystem::start(round()).await;
    let load = Load::start(&system, "kill", 240, 16, GIVE_UP).await;
    load.wait_for(60, Duration::from_secs(60)).await;

    let (old, new, promoted_after) = lose_the_primary(&mut system, |node| node.kill()).await;
    // Its supervisor brings the dead node back; Sentinel makes it a replica
    // of the new primary, and writes (which wait for a replica) resume.
    system.ha.restart_node(old).await.unwrap();
    system
        .ha
        .wait_until_replicating(Duration::from_secs(30))
        .await
        .unwrap();
    let outcomes = load.finish().await;
    assert_eq!(outcomes.len(), 240);
    let window = unavailable_window(&outcomes);
    println!(
        "kill -9 of the primary 127.0.0.1:{old}: replica 127.0.0.1:{new} promoted after {promoted_after:?}; \
         clients saw 503s for {window:?}; {} of 240 visits met a 503",
        outcomes
            .iter()
            .filter(|o| !o.unavailable_at.is_empty())
            .count()
    );
    let status_503s: usize = outcomes.iter().map(|o| o.status_unavailable).sum();
    assert_eq!(
        status_503s, 0,
        "status polls are answered from the edge's cached room state"
    );
    check_books(&system, &outcomes, CAP_PENCE).await;
    assert_one_failover(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_primary_never_acknowledges_what_the_promoted_replica_lacks() {
    let mut system = HaSystem::start(round()).await;
    let load = Load::start(&system, "stop", 200, 16, GIVE_UP).await;
    load.wait_for(50, Duration::from_secs(60)).await;

    let (old, new, promoted_after) = lose_the_primary(&mut system, |node| node.stop()).await;
    // Clients keep trying against both sides meanwhile: core's calls to the
    // stopped node time out and it finds the new primary, which refuses
    // writes until a replica is back (min-replicas-to-write).
    let acknowledged_while_stopped = load.acknowledged();
    // The stopped node wakes up with whatever clients sent it still queued;
    // it may execute those, but no replica confirms them, and Sentinel
    // turns it into a replica of the new primary (discarding them).
    system.ha.node_on(old).unwrap().cont();
    system
        .ha
        .wait_until_replicating(Duration::from_secs(30))
        .await
        .unwrap();
    let outcomes = load.finish().await;
    println!(
        "SIGSTOP of the primary 127.0.0.1:{old}: 127.0.0.1:{new} promoted after {promoted_after:?}; \
         {acknowledged_while_stopped} acknowledged by then; clients saw 503s for {:?}",
        unavailable_window(&outcomes)
    );
    check_books(&system, &outcomes, CAP_PENCE).await;
    assert_one_failover(&system);
}

/// With a replica lost for good, nothing stops: the primary's other
/// replica confirms each write. With both lost, core answers 503 (never a
/// 201 nobody else holds) until they are back; then the client's retry
/// with the same key succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lost_replica_stops_nothing_and_without_any_core_answers_503_not_201() {
    let mut system = HaSystem::start(round()).await;
    system.fund(&[("lonely", 1_000_000)]).await;
    let visitor = Visitor::signed_in(&system.edge_url, "lonely");
    let (code, joined) = visitor.join_retrying().await;
    assert_eq!(code, 201, "{joined}");
    visitor.wait_until_admitted(Duration::from_secs(10)).await;
    let pass = visitor.pass().await;

    let primary = system.ha.primary_port().await.expect("a primary");
    let replicas = system.ha.ports_except(primary);
    let invest = |key: &'static str| {
        let (visitor, pass, edge_url) = (&visitor, &pass, &system.edge_url);
        async move {
            visitor
                .http
                .post(format!("{edge_url}/api/investments"))
                .bearer_auth(pass)
                .header("idempotency-key", key)
                .json(&serde_json::json!({"amount_pence": 5_000}))
                .send()
                .await
                .unwrap()
        }
    };
    // Retries 503 (as a client does) until `key` is accepted.
    let accepted = |key: &'static str, within: Duration| {
        let invest = &invest;
        async move {
            let deadline = Instant::now() + within;
            loop {
                let (code, body) = json_of(invest(key).await).await;
                if code == 201 {
                    return body;
                }
                assert_eq!(code, 503, "{body}");
                assert!(
                    Instant::now() < deadline,
                    "still 503 after {within:?}: {body}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let outcome = |investment| Outcome {
        investor: "lonely".into(),
        amount_pence: 5_000,
        investment,
        unavailable_at: Vec::new(),
        status_unavailable: 0,
        queue_number: joined["status"]["queue_number"].as_u64(),
    };

    // One replica lost: investing goes on (at most a moment of 503 while
    // the primary notices).
    system.ha.node_on(replicas[0]).unwrap().kill();
    let first = accepted("lonely-0", Duration::from_secs(3)).await;

    // Both lost: refused as unavailable, with Retry-After; never 201.
    system.ha.node_on(replicas[1]).unwrap().kill();
    for _ in 0..3 {
        let response = invest("lonely-1").await;
        let retry_after = response.headers().get("retry-after").cloned();
        let (code, body) = json_of(response).await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["error"], "unavailable", "{body}");
        assert!(retry_after.is_some(), "503 without Retry-After: {body}");
    }
    // Joining is a write a visitor is told about: refused the same way.
    let (code, body) = Visitor::signed_in(&system.edge_url, "newcomer")
        .join()
        .await;
    assert_eq!(code, 503, "{body}");
    // Status polls are reads from the edge's cached room state: unaffected.
    let (code, body) = visitor.status().await;
    assert_eq!(code, 200, "{body}");
    // core's ops status says which node is primary and that it has no replica.
    let status = ops_status(&system, &system.core_url);
    assert!(
        status.contains(&format!("primary 127.0.0.1:{primary}")) && status.contains("no replicas"),
        "{status}"
    );

    // The replicas return: the client's retry with the same key succeeds.
    for &replica in &replicas {
        system.ha.restart_node(replica).await.unwrap();
    }
    system
        .ha
        .wait_until_replicating(Duration::from_secs(30))
        .await
        .unwrap();
    let second = accepted("lonely-1", Duration::from_secs(10)).await;
    check_books(&system, &[outcome(first), outcome(second)], CAP_PENCE).await;
}

/// GET `url` as JSON: (status, body).
async fn get_json(url: &str) -> (u16, serde_json::Value) {
    json_of(reqwest::get(url).await.unwrap()).await
}

/// Started while every data node is down (the Sentinels still name the
/// dead primary: no failover can happen), core and a settlement worker
/// neither exit nor pretend: core's `/healthz` answers 503 saying it is
/// starting, its API 503 with Retry-After, and both log what they wait
/// for in words (the named node does not answer), not the `redis` crate's
/// "master name not found". Once the nodes are back, core serves and the
/// worker settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_and_a_worker_started_while_redis_is_down_wait_for_it_instead_of_exiting() {
    let mut system = HaSystem::start(round()).await;
    system.fund(&[("patient", 1_000_000)]).await;
    let primary = system.ha.primary_port().await.expect("a primary");
    let ports: Vec<u16> = system.ha.nodes().iter().map(|n| n.port).collect();
    for &port in &ports {
        system.ha.node_on(port).unwrap().kill();
    }

    let env = system.ha.client_env();
    let dir = system.dir.path().to_path_buf();
    let mut core = crowdgate_tests::spawn_core(&env, &dir, 0, "core-while-down");
    let core_url = format!("http://{}", core.listening_addr("core listening").await);
    let mut worker = crowdgate_tests::spawn_worker(&env, &dir, "worker-while-down", &[]);
    let named = format!("name 127.0.0.1:{primary} as the primary");
    for proc in [&mut core, &mut worker] {
        let said = proc
            .wait_for_line("what it waits for", Duration::from_secs(20), |line| {
                (line.contains("is waiting for the Redis primary") && line.contains(&named))
                    .then_some(())
            })
            .await;
        assert!(said.is_some(), "{} exited:\n{}", proc.name, proc.log());
    }
    let (code, body) = get_json(&format!("{core_url}/healthz")).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"], "unhealthy", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("core is starting"),
        "{body}"
    );
    let response = reqwest::get(format!("{core_url}/v1/rounds/x/state"))
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (code, body) = json_of(response).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(!core.has_exited(), "{}", core.log());
    assert!(!worker.has_exited(), "{}", worker.log());

    // The nodes come back (each with the role it had): core serves.
    for &port in &ports {
        system.ha.node_on(port).unwrap().restart().unwrap();
    }
    system
        .ha
        .wait_until_replicating(Duration::from_secs(30))
        .await
        .unwrap();
    crowdgate_tests::wait_for(
        &format!("{core_url}/healthz"),
        &mut [&mut core, &mut worker],
    )
    .await;
    assert!(core.log().contains("core ready"), "{}", core.log());

    // What is invested now is settled by the worker that waited (the
    // system's own is stopped).
    if let Some(mut first) = system.settle.take() {
        first.kill();
    }
    let outcome = visit(
        &system.edge_url,
        "patient",
        5_000,
        GIVE_UP,
        &Tally::default(),
    )
    .await;
    check_books(&system, &[outcome], CAP_PENCE).await;
    assert!(!worker.has_exited(), "{}", worker.log());
}

/// A core restarted while the primary has no replica in reach (it refuses
/// every write, `NOREPLICAS`) starts and serves what needs no write: the
/// round is already seeded, so starting writes nothing (it used to exit
/// with "seeding the round in Redis: NOREPLICAS").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_restarted_while_the_primary_refuses_writes_starts_without_writing() {
    let mut system = HaSystem::start(round()).await;
    let primary = system.ha.primary_port().await.expect("a primary");
    let replicas = system.ha.ports_except(primary);
    for &port in &replicas {
        system.ha.node_on(port).unwrap().kill();
    }
    // The primary refuses writes once it has had no replica for
    // min-replicas-max-lag.
    let mut connection = system.primary().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg("crowdgate-test:probe")
            .arg(1)
            .query_async(&mut connection)
            .await;
        if set.is_err_and(|err| err.code() == Some("NOREPLICAS")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the primary kept taking writes without a replica"
        );
        // Poll interval: the primary starts refusing at its next
        // once-a-second replica check past min-replicas-max-lag.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    system.core.kill();
    let env = system.ha.client_env();
    let dir = system.dir.path().to_path_buf();
    let mut core = crowdgate_tests::spawn_core(&env, &dir, 0, "core-norepl");
    let core_url = format!("http://{}", core.listening_addr("core listening").await);
    crowdgate_tests::wait_for(&format!("{core_url}/healthz"), &mut [&mut core]).await;
    let status = ops_status(&system, &core_url);
    assert!(status.contains("no replicas"), "{status}");
}

/// `crowdgate ops status` of the core at `core_url`, which must succeed.
fn ops_status(system: &HaSystem, core_url: &str) -> String {
    let (ok, stdout, stderr) = system.crowdgate(&[
        "ops",
        "--core-url",
        core_url,
        "--token",
        crowdgate_tests::OPS_TOKEN,
        "--round",
        crowdgate_tests::ROUND,
        "status",
    ]);
    assert!(ok, "{stdout}{stderr}");
    stdout
}
