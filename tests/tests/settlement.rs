//! Durable settlement with real worker processes and real kills: every
//! accepted investment is settled exactly once (or failed and released, or
//! dead-lettered), whatever is killed or stopped, and `crowdgate reconcile`
//! finds every invariant holding.

use crowdgate_tests::{ROUND, RoundOptions, System, json_of, pass_token, wait_for_investment};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Accepts `count` investments of £10 from `investors` funded investors,
/// straight through core (settlement is what is under test here).
async fn accept_investments(system: &System, count: usize, investors: usize) {
    let accounts: Vec<(String, i64)> = (0..investors)
        .map(|i| (format!("inv-{i}"), 100_000_000))
        .collect();
    let refs: Vec<(&str, i64)> = accounts.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    system.fund(&refs).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (http, url, next) = (http.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= count {
                        return;
                    }
                    let investor = n % investors;
                    let pass = pass_token(&format!("tk-{investor}"), investor as u64 + 1);
                    let (code, body) = json_of(
                        http.post(&url)
                            .bearer_auth(pass)
                            .header("idempotency-key", format!("k-{n}"))
                            .json(&json!({"investor_id": format!("inv-{investor}"), "amount_pence": 1_000}))
                            .send()
                            .await
                            .unwrap(),
                    )
                    .await;
                    assert_eq!(code, 201, "{body}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Waits until `settled_count + failed_count` reaches `count`.
async fn wait_until_all_done(system: &System, count: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let done =
            system.ledger_field("settled_count").await + system.ledger_field("failed_count").await;
        if done >= count {
            assert_eq!(done, count, "more postings than investments");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {count} settled within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until_settled_at_least(system: &System, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while system.ledger_field("settled_count").await < count {
        assert!(Instant::now() < deadline, "fewer than {count} settled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn assert_reconciles(system: &System) {
    let (ok, stdout, stderr) = system.crowdgate(&["reconcile", "--round", ROUND]);
    assert!(ok, "reconcile found violations:\n{stdout}\n{stderr}");
    assert!(stdout.contains("OK: every invariant holds"), "{stdout}");
}

const BIG_ROUND: RoundOptions = RoundOptions {
    cap_pence: 1_000_000_000,
    min_investment_pence: 1_000,
    max_investment_pence: 100_000_000,
    share_price_pence: 100,
    initial_phase: None,
    opens_at: None,
    closes_at: None,
    rate_per_minute: 60_000,
    batch_interval_ms: 200,
    max_active: 100_000,
    claim_window_seconds: 60,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_stopped_workers_lose_and_double_nothing() {
    const COUNT: usize = 4_000;
    let system = System::start_with(BIG_ROUND, false).await;
    accept_investments(&system, COUNT, 200).await;

    // Small batches, so a killed worker dies holding unacked entries.
    let flags = ["--batch", "20"];
    let mut a = system.spawn_worker_with("worker-a", &flags);
    wait_until_settled_at_least(&system, 200).await;
    a.kill(); // kill -9 mid-stream

    let b = system.spawn_worker_with("worker-b", &flags);
    wait_until_settled_at_least(&system, 1_000).await;
    b.signal(libc::SIGSTOP); // hung, holding its entries
    let _c = system.spawn_worker_with("worker-c", &flags);
    // c finishes the stream, and after 2 s reclaims what a and b held.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    b.signal(libc::SIGCONT); // b wakes up and races c for the same entries
    wait_until_all_done(&system, COUNT as i64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let b finish its batch
    assert_eq!(system.ledger_field("settled_count").await, COUNT as i64);
    assert_reconciles(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_during_settlement_loses_and_doubles_nothing() {
    const COUNT: usize = 3_000;
    let mut system = System::start_with(BIG_ROUND, false).await;
    accept_investments(&system, COUNT, 100).await;
    let _worker = system.spawn_worker_with("worker", &["--batch", "20"]);
    wait_until_settled_at_least(&system, 300).await;
    system.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.redis.restart().expect("redis restarts from its AOF");
    wait_until_all_done(&system, COUNT as i64, Duration::from_secs(60)).await;
    assert_reconciles(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_fails_releases_and_reopens_a_full_round() {
    let system = System::start_with(
        RoundOptions {
            cap_pence: 10_000,
            ..Default::default()
        },
        false,
    )
    .await;
    system.fund(&[("poor", 100), ("rich", 1_000_000)]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let invest = |ticket: &str, investor: &str, amount: i64| {
        let pass = pass_token(ticket, 1);
        http.post(&url)
            .bearer_auth(pass)
            .header("idempotency-key", format!("{investor}-{amount}"))
            .json(&json!({"investor_id": investor, "amount_pence": amount}))
            .send()
    };
    let (code, poor) = json_of(invest("t-poor", "poor", 10_000).await.unwrap()).await;
    assert_eq!(code, 201, "{poor}");
    let (code, refused) = json_of(invest("t-rich", "rich", 5_000).await.unwrap()).await;
    assert_eq!((code, refused["error"].as_str()), (409, Some("round_full")));

    let _worker = system.spawn_worker("worker");
    let id = poor["investment_id"].as_str().unwrap();
    let failed =
        wait_for_investment(&format!("{url}/{id}"), "failed", Duration::from_secs(20)).await;
    assert_eq!(failed["failure_reason"], "insufficient_funds");
    let state = system.room_state().await;
    assert_eq!(
        (state["phase"].as_str(), state["raised_pence"].as_i64()),
        (Some("open"), Some(0))
    );
    let (code, body) = json_of(invest("t-rich", "rich", 5_000).await.unwrap()).await;
    assert_eq!(
        code, 201,
        "the reopened round takes the next investor: {body}"
    );
    wait_until_all_done(&system, 2, Duration::from_secs(20)).await;
    assert_reconciles(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_go_to_the_dead_letter_stream() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let mut redis = system.redis().await;
    let stream = format!("cg:{{{ROUND}}}:settlement");
    // An entry naming no investment, and one whose record is corrupt.
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("investment_id")
        .arg("inv_ghost")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("cg:{{{ROUND}}}:investment:inv_corrupt"))
        .arg("status")
        .arg("accepted")
        .arg("investor_id")
        .arg("x")
        .arg("amount_pence")
        .arg("lots")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("investment_id")
        .arg("inv_corrupt")
        .query_async(&mut redis)
        .await
        .unwrap();

    let _worker = system.spawn_worker_with(
        "worker",
        &["--claim-idle-ms", "300", "--max-deliveries", "3"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dead: u64 = redis::cmd("XLEN")
            .arg(format!("{stream}:dead"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if dead == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "dead letters: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("settlement")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        pending.first(),
        Some(&redis::Value::Int(0)),
        "dead letters are acked"
    );
    let reasons: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{stream}:dead"))
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let reasons: Vec<String> = reasons
        .ids
        .iter()
        .map(|e| e.get("reason").unwrap())
        .collect();
    assert!(reasons[0].contains("no such investment"), "{reasons:?}");
    assert!(reasons[1].contains("failed 3 times"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_a_broken_invariant() {
    let system = System::start_with(RoundOptions::default(), false).await;
    assert_reconciles(&system);
    let mut redis = system.redis().await;
    let _: i64 = redis::cmd("HINCRBY")
        .arg(format!("cg:{{{ROUND}}}:round"))
        .arg("raised_pence")
        .arg(100)
        .query_async(&mut redis)
        .await
        .unwrap();
    let (ok, stdout, stderr) = system.crowdgate(&["reconcile", "--round", ROUND]);
    assert!(!ok);
    assert!(
        stdout.contains("raised 100 ≠ accepted 0 − released 0"),
        "{stdout}"
    );
    assert!(stderr.contains("violation"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_import_is_all_or_nothing() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "investor_id,balance_pence\nann,1000\nbad id,5\nbob,-3\nann,7\n",
    )
    .unwrap();
    let (ok, _, stderr) = system.crowdgate(&[
        "accounts",
        "import",
        bad.to_str().unwrap(),
        "--round",
        ROUND,
    ]);
    assert!(!ok);
    for line in ["line 3", "line 4", "line 5", "nothing was imported"] {
        assert!(stderr.contains(line), "{line}: {stderr}");
    }
    let mut redis = system.redis().await;
    let balances = format!("cg:{{{ROUND}}}:balances");
    let len: u64 = redis::cmd("HLEN")
        .arg(&balances)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 0, "nothing half-imported");

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "investor_id,balance_pence\nann,1000\nbob,2500\n").unwrap();
    let (ok, stdout, stderr) = system.crowdgate(&[
        "accounts",
        "import",
        good.to_str().unwrap(),
        "--round",
        ROUND,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported 2 accounts"), "{stdout}");
    let bob: i64 = redis::cmd("HGET")
        .arg(&balances)
        .arg("bob")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(bob, 2_500);

    // Importing again would overwrite balances: refused, nothing changed.
    std::fs::write(&good, "investor_id,balance_pence\ncarol,5\nbob,1\n").unwrap();
    let (ok, _, stderr) = system.crowdgate(&[
        "accounts",
        "import",
        good.to_str().unwrap(),
        "--round",
        ROUND,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("already exist") && stderr.contains("bob"),
        "{stderr}"
    );
    let len: u64 = redis::cmd("HLEN")
        .arg(&balances)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 2);
}
