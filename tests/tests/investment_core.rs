//! The investment core's promises, tested with real processes and real
//! kills: the cap is never exceeded, every acknowledged investment is recorded
//! exactly once, and nothing acknowledged is lost when Redis or core is
//! killed with SIGKILL mid-load.

use crowdgate_tests::{
    ROUND, RoundOptions, System, Visitor, core_http, json_of, now_s, pass_token,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A valid pass for ticket `tk-<n>` held by investor `investor-<n>` (as
/// core signs after admission).
fn pass_for(n: usize) -> String {
    pass_token(&format!("tk-{n}"), n as u64, &format!("investor-{n}"))
}

/// What one investor finally got.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: serde_json::Value,
}

/// Invests and keeps retrying the SAME request (same Idempotency-Key) through
/// 503s and connection errors, as a client should, until a definitive answer.
async fn invest_until_answered(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    amount: i64,
    give_up: Duration,
) -> Answer {
    invest_counting_retries(http, url, n, amount, give_up, &AtomicUsize::new(0)).await
}

/// [`invest_until_answered`], counting each retry in `retries` as it happens.
async fn invest_counting_retries(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    amount: i64,
    give_up: Duration,
    retries: &AtomicUsize,
) -> Answer {
    // The investor is the pass's (`investor-<n>`): the body names none.
    let pass = pass_for(n);
    let deadline = Instant::now() + give_up;
    loop {
        let sent = http
            .post(url)
            .bearer_auth(&pass)
            .header("idempotency-key", format!("key-{n}"))
            .json(&json!({"amount_pence": amount}))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            if status != 503 && status != 502 {
                let (status, body) = json_of(response).await;
                return Answer { status, body };
            }
            assert!(
                response.headers().contains_key("retry-after") || status == 502,
                "503 without Retry-After"
            );
        }
        retries.fetch_add(1, Ordering::SeqCst);
        assert!(
            Instant::now() < deadline,
            "investor {n} got no definitive answer within {give_up:?}"
        );
        // The client's pause before it retries: pacing, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the books against what clients were told: every 201 is recorded and
/// in the settlement stream exactly once, nothing else is, and
/// raised = Σ recorded amounts.
async fn check_books(system: &System, answers: &[Answer]) {
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == 201).collect();
    let mut redis = system.redis().await;
    let entries: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(crowdgate_store::RoundKeys::new(ROUND).settlement_stream())
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let stream: redis::streams::StreamRangeReply =
        redis::FromRedisValue::from_redis_value(redis::Value::Array(entries)).unwrap();
    let mut in_stream: HashMap<String, usize> = HashMap::new();
    let mut stream_total = 0i64;
    for entry in &stream.ids {
        let id: String = entry.get("investment_id").unwrap();
        let amount: i64 = entry.get("amount_pence").unwrap();
        stream_total += amount;
        *in_stream.entry(id).or_default() += 1;
    }
    for answer in &accepted {
        let id = answer.body["investment_id"].as_str().unwrap();
        assert_eq!(
            in_stream.get(id),
            Some(&1),
            "acknowledged {id} must be in the stream exactly once"
        );
    }
    let acked: HashSet<&str> = accepted
        .iter()
        .map(|a| a.body["investment_id"].as_str().unwrap())
        .collect();
    for id in in_stream.keys() {
        assert!(
            acked.contains(id.as_str()),
            "{id} is in the stream but no client was told 201"
        );
    }
    let raised = system.round_field("raised_pence").await;
    let told: i64 = accepted
        .iter()
        .map(|a| a.body["amount_pence"].as_i64().unwrap())
        .sum();
    assert_eq!(raised, told, "raised = Σ acknowledged amounts");
    assert_eq!(raised, stream_total, "raised = Σ recorded amounts");
    assert_eq!(
        system.round_field("accepted_count").await as usize,
        accepted.len()
    );
    assert!(
        raised <= system.round_field("cap_pence").await,
        "raised ≤ cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_investors_fill_the_cap_exactly_and_never_beyond() {
    const INVESTORS: usize = 2_000;
    const AMOUNT: i64 = 5_000;
    const FIT: usize = 1_000;
    let system = System::start_with(
        RoundOptions {
            cap_pence: AMOUNT * FIT as i64,
            ..Default::default()
        },
        false,
    )
    .await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let url = format!("{}/api/investments", system.edge_url);
    let tasks: Vec<_> = (0..INVESTORS)
        .map(|n| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                invest_until_answered(&http, &url, n, AMOUNT, Duration::from_secs(120)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let accepted = answers.iter().filter(|a| a.status == 201).count();
    let full = answers
        .iter()
        .filter(|a| a.status == 409 && a.body["error"] == "round_full")
        .count();
    let other: Vec<_> = answers
        .iter()
        .filter(|a| a.status != 201 && a.status != 409)
        .collect();
    assert!(
        other.is_empty(),
        "unexpected answers: {:?}",
        &other[..other.len().min(3)]
    );
    assert_eq!((accepted, full), (FIT, INVESTORS - FIT));
    assert_eq!(
        system.round_field("raised_pence").await,
        AMOUNT * FIT as i64,
        "raised == cap exactly"
    );
    let mut redis = system.redis().await;
    let phase: String = redis::cmd("HGET")
        .arg(crowdgate_store::RoundKeys::new(ROUND).round())
        .arg("phase")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(phase, "full");
    check_books(&system, &answers).await;
}

/// `investors` investors, 16 at a time, each retrying until answered.
struct Load {
    acked: Arc<AtomicUsize>,
    /// Requests retried (503, 502 or no connection) so far.
    retries: Arc<AtomicUsize>,
    workers: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

impl Load {
    fn start(url: String, investors: usize) -> Load {
        let http = core_http();
        let acked = Arc::new(AtomicUsize::new(0));
        let retries = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let workers = (0..16)
            .map(|_| {
                let (http, url, acked, next) =
                    (http.clone(), url.clone(), acked.clone(), next.clone());
                let retries = retries.clone();
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= investors {
                            return answers;
                        }
                        let amount = 1_000 + (n as i64 % 5) * 100;
                        let answer = invest_counting_retries(
                            &http,
                            &url,
                            n,
                            amount,
                            Duration::from_secs(90),
                            &retries,
                        )
                        .await;
                        if answer.status == 201 {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        answers.push(answer);
                    }
                })
            })
            .collect();
        Load {
            acked,
            retries,
            workers,
        }
    }

    /// Waits until the clients have retried `count` more requests than
    /// `since` (a [`Load::retried`] reading).
    async fn wait_for_retries(&self, since: usize, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.retried() < since + count {
            assert!(
                Instant::now() < deadline,
                "the load did not retry {count} requests"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn retried(&self) -> usize {
        self.retries.load(Ordering::SeqCst)
    }

    /// Waits until `count` investments have been acknowledged.
    async fn wait_for_acks(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acked.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "load did not reach {count} acknowledgements"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(self) -> Vec<Answer> {
        let mut answers = Vec::new();
        for worker in self.workers {
            answers.extend(worker.await.unwrap());
        }
        answers
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_investments_survive_kill_9_of_redis() {
    let mut system = System::start_with(RoundOptions::default(), false).await;
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let load = Load::start(url, 600);
    load.wait_for_acks(150).await;
    system.redis.kill();
    system.redis.restart().expect("redis restarts from its AOF");
    let answers = load.finish().await;
    assert_eq!(answers.len(), 600);
    assert!(
        answers.iter().all(|a| a.status == 201),
        "every investor is eventually accepted"
    );
    check_books(&system, &answers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_investments_survive_kill_9_of_core() {
    let mut system = System::start_with(RoundOptions::default(), false).await;
    // Through the edge: while core is down the edge answers 503 + Retry-After
    // and investors keep their pass.
    let url = format!("{}/api/investments", system.edge_url);
    let load = Load::start(url, 400);
    load.wait_for_acks(100).await;
    let retried = load.retried();
    system.kill_core();
    // Down until the clients have retried 32 requests against the outage
    // (16 clients: about two each).
    load.wait_for_retries(retried, 32).await;
    system.restart_core().await;
    let answers = load.finish().await;
    assert_eq!(answers.len(), 400);
    assert!(
        answers.iter().all(|a| a.status == 201),
        "every investor is eventually accepted"
    );
    check_books(&system, &answers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_answers_503_with_retry_after_while_core_is_down() {
    let mut system = System::start_with(RoundOptions::default(), false).await;
    system.kill_core();
    let http = core_http();
    let response = http
        .post(format!("{}/api/investments", system.edge_url))
        .bearer_auth(pass_for(1))
        .header("idempotency-key", "k")
        .json(&json!({"amount_pence": 5_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = json_of(response).await;
    assert_eq!(body["error"], "unavailable");
    // The same pass works once core is back.
    system.restart_core().await;
    let answer = invest_until_answered(
        &http,
        &format!("{}/api/investments", system.edge_url),
        1,
        5_000,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
}

/// Regression: a core that is hung (stopped, not gone) used to hold the
/// edge's call until the host's 30 s request timeout, ending in a 500. The
/// edge now gives up on core after `CORE_TIMEOUT` (10 s) and answers 503 with
/// `Retry-After`; the same request succeeds once core runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_answers_503_soon_while_core_is_hung() {
    let system = System::start_with(RoundOptions::default(), false).await;
    system.core.signal(libc::SIGSTOP);
    let http = core_http();
    let started = Instant::now();
    let response = http
        .post(format!("{}/api/investments", system.edge_url))
        .bearer_auth(pass_for(1))
        .header("idempotency-key", "k")
        .json(&json!({"amount_pence": 5_000}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503, "after {took:?}");
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = json_of(response).await;
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "the edge waited {took:?} on a hung core (deadline 10 s)"
    );
    system.core.signal(libc::SIGCONT);
    let answer = invest_until_answered(
        &http,
        &format!("{}/api/investments", system.edge_url),
        1,
        5_000,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
}

/// Regression: with core hung, every status poll past the edge's one-second
/// cache waited out the 10 s core deadline before answering from the stale
/// state. Now one refresh waits; after it fails, polls answer from the
/// stale state at once for a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polls_answer_at_once_while_core_is_hung() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let visitor = Visitor::new(&system.edge_url);
    let (code, body) = visitor.join().await;
    assert_eq!(code, 201, "{body}");
    system.core.signal(libc::SIGSTOP);
    // Poll until one poll has waited on core (the cache went stale).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let started = Instant::now();
        let (code, body) = visitor.status().await;
        assert_eq!(code, 200, "{body}");
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no poll ever waited on the hung core"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The next polls answer at once, from the stale state.
    for n in 0..5 {
        let started = Instant::now();
        let (code, body) = visitor.status().await;
        let took = started.elapsed();
        assert_eq!(code, 200, "{body}");
        assert!(
            took < Duration::from_secs(2),
            "poll {n} waited {took:?} on a hung core"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    system.core.signal(libc::SIGCONT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_round_opens_and_closes_on_time() {
    let at = |offset_s: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(now_s() + offset_s),
        )
        .to_string()
    };
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(at(4)),
            closes_at: Some(at(8)),
            ..Default::default()
        },
        false,
    )
    .await;
    let http = core_http();
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let early = invest_until_answered(&http, &url, 1, 5_000, Duration::from_secs(5)).await;
    assert_eq!(
        (early.status, early.body["error"].as_str()),
        (409, Some("round_not_open"))
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let answer = invest_until_answered(&http, &url, 2, 5_000, Duration::from_secs(5)).await;
        if answer.status == 201 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "round never opened: {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(open.body["status"], "accepted");

    let deadline = Instant::now() + Duration::from_secs(10);
    // A new investor each time: an accepted request would replay its 201.
    for n in 100.. {
        let answer = invest_until_answered(&http, &url, n, 5_000, Duration::from_secs(5)).await;
        if answer.status == 409 {
            assert_eq!(answer.body["error"], "round_closed");
            break;
        }
        assert!(Instant::now() < deadline, "round never closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // invest.lua applies the closing time itself; the admission controller
    // records the phase on its next tick (every 100 ms), so wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let phase = system.room_state().await["phase"].clone();
        if phase == "closed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "phase stayed {phase} after closing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_refuses_a_redis_that_could_lose_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, port) = crowdgate_tests::spawn_redis_server(
        "unsafe-redis",
        dir.path(),
        &["--appendonly", "no", "--save", ""],
    )
    .await;
    let config = dir.path().join("round.toml");
    std::fs::write(&config, "[round]\nid = \"x\"\nname = \"x\"\ncap_pence = 1000\nmin_investment_pence = 100\nmax_investment_pence = 1000\nshare_price_pence = 100\n").unwrap();
    let output = std::process::Command::new(crowdgate_tests::crowdgate_bin())
        .arg("core")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("CROWDGATE_REDIS_URL", format!("redis://127.0.0.1:{port}/"))
        .env("CROWDGATE_SIGNING_KEYS", crowdgate_tests::SIGNING_KEYS)
        .env(
            "CROWDGATE_OPS_TOKENS",
            format!("t:{}", crowdgate_tests::OPS_TOKEN),
        )
        .env(
            "CROWDGATE_EDGE_TOKENS",
            format!("e:{}", crowdgate_tests::EDGE_TOKEN),
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("appendfsync") && stderr.contains("--allow-unsafe-redis"),
        "{stderr}"
    );
    redis.kill();
}
