//! Acknowledged means replicated: with `Replication { replicas: 1 }` a
//! write a client is told about returns only once a real replica holds it,
//! and [`StoreError::NotReplicated`] when none confirms in time; the retry
//! (the same join, a replay) is confirmed once the replica is back.

use crate::support::{ROUND, Redis, T0, settings};
use crowdgate_store::{RedisConfig, Replication, RoundStore, StoreError, Topology};
use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// The primary's `INFO replication` counts a replica online (it has sent
/// its first ack after the sync; before that `WAIT` does not count it).
async fn wait_until_linked(primary: &Redis) {
    let mut conn = redis::Client::open(primary.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap();
        if info.contains("state=online") {
            return;
        }
        assert!(Instant::now() < deadline, "replica never linked: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_join_is_answered_only_once_a_replica_holds_it() {
    // No 5 s wait for more replicas before a full sync (Redis 7's default).
    let primary = Redis::start_with(&["--repl-diskless-sync-delay", "0"]);
    let primary_port = primary.port.to_string();
    let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &primary_port]);
    wait_until_linked(&primary).await;

    let config = RedisConfig {
        topology: Topology::Single {
            url: primary.url.clone(),
        },
        // Long enough for a loaded machine (CI runs tests side by side).
        replication: Replication::new(1, 2_000).unwrap(),
    };
    let redis = crowdgate_store::Redis::connect(&config).await.unwrap();
    let store = RoundStore::new(ROUND, redis);
    store
        .seed(&settings(), &crate::support::DRAW_RANDOM)
        .await
        .unwrap();

    // With the replica: answered, and the replica already has the place.
    let joined = store.join("ticket-a", T0, None).await.unwrap().unwrap();
    let mut on_replica = redis::Client::open(replica.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let issued: String = on_replica
        .hget(store.keys().round(), crowdgate_store::layout::round::ISSUED)
        .await
        .unwrap();
    assert_eq!(
        issued, "1",
        "{joined:?} must be on the replica when answered"
    );

    // Without it: the write happens on the primary but is not acknowledged,
    // and the refusal comes after the timeout, not never.
    drop(on_replica);
    drop(replica);
    let started = Instant::now();
    let refused = store.join("ticket-b", T0, None).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::NotReplicated {
                acked: 0,
                wanted: 1
            })
        ),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(refused.unwrap_err().is_transient());

    // A replica again (a fresh one: full resync): the client's retry is
    // confirmed once the primary counts the replica (its first ack can take
    // up to a second after the sync), as a client retrying on 503 sees.
    let _replica = Redis::start_with(&["--replicaof", "127.0.0.1", &primary_port]);
    wait_until_linked(&primary).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.join("ticket-b", T0, None).await {
            Ok(joined) => break assert!(joined.is_some()),
            Err(StoreError::NotReplicated { .. }) if Instant::now() < deadline => continue,
            Err(err) => panic!("the retry was not confirmed: {err}"),
        }
    }
}

#[tokio::test]
async fn without_replication_nothing_waits() {
    let primary = Redis::start();
    let redis = crowdgate_store::Redis::connect(&RedisConfig::single(&primary.url))
        .await
        .unwrap();
    let store = RoundStore::new(ROUND, redis);
    store
        .seed(&settings(), &crate::support::DRAW_RANDOM)
        .await
        .unwrap();
    assert!(store.join("ticket-a", T0, None).await.unwrap().is_some());
}

#[tokio::test]
async fn a_node_demoted_under_a_connection_is_left_at_its_first_refusal() {
    // Error replies (READONLY) reach the connection as values, not errors;
    // they must retire it all the same, or a process would stay on a
    // demoted node until something else broke its connection.
    let node = Redis::start();
    let other = Redis::start();
    let redis = crowdgate_store::Redis::connect(&RedisConfig::single(&node.url))
        .await
        .unwrap();
    let store = RoundStore::new(ROUND, redis.clone());
    store
        .seed(&settings(), &crate::support::DRAW_RANDOM)
        .await
        .unwrap();
    assert!(redis.primary().is_some());

    let mut admin = redis::Client::open(node.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port)
        .query_async(&mut admin)
        .await
        .unwrap();
    // A pipeline (the settlement worker's postings are one): its replies
    // come back as values.
    let written: redis::RedisResult<()> = redis::pipe()
        .set("k", "v")
        .query_async(&mut redis.clone())
        .await;
    assert!(written.is_err());
    assert_eq!(redis.primary(), None, "retired after a pipeline's refusal");
    // A script (every verdict of the round): the same.
    let refused = store.join("ticket-a", T0, None).await;
    assert!(
        matches!(&refused, Err(StoreError::Redis(err)) if err.code() == Some("READONLY")),
        "{refused:?}"
    );
    assert_eq!(redis.primary(), None, "retired after a script's refusal");
}
