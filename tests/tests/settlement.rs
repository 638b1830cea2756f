//! Durable settlement with real worker processes and real kills: every
//! accepted investment is settled exactly once (or failed and released, or
//! dead-lettered), whatever is killed or stopped; a restarted worker settles
//! what it held at once; and `crowdgate reconcile` finds every invariant
//! holding, reports a broken one, and never reports one that is not broken
//! while the round is moving.

use crowdgate_tests::{
    Proc, ROUND, RoundOptions, System, core_http, crowdgate_bin, json_of, pass_token,
    wait_for_investment, without_colours,
};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamInfoConsumersReply;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Funds `investors` investors, `inv-0`.., with £1m each.
async fn fund_investors(system: &System, investors: usize) {
    let accounts: Vec<(String, i64)> = (0..investors)
        .map(|i| (format!("inv-{i}"), 100_000_000))
        .collect();
    let refs: Vec<(&str, i64)> = accounts.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    system.fund(&refs).await;
}

/// Investment number `n`: £10 from one of `investors` funded investors,
/// straight through core (settlement is what is under test here).
async fn invest(http: &reqwest::Client, url: &str, n: usize, investors: usize) {
    let investor = n % investors;
    let pass = pass_token(
        &format!("tk-{investor}"),
        investor as u64 + 1,
        &format!("inv-{investor}"),
    );
    let (code, body) = json_of(
        http.post(url)
            .bearer_auth(pass)
            .header("idempotency-key", format!("k-{n}"))
            .json(&json!({"amount_pence": 1_000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

/// Accepts `count` investments of £10 from `investors` funded investors.
async fn accept_investments(system: &System, count: usize, investors: usize) {
    fund_investors(system, investors).await;
    let http = core_http();
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
                    invest(&http, &url, n, investors).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Investments accepted by concurrent clients, each pausing between its
/// investments, until [`Load::stop`].
struct Load {
    stop: Arc<AtomicBool>,
    next: Arc<AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(system: &System, clients: usize, investors: usize, pause: Duration) -> Load {
        fund_investors(system, investors).await;
        let http = core_http();
        let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|_| {
                let (http, url) = (http.clone(), url.clone());
                let (stop, next) = (stop.clone(), next.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        invest(&http, &url, n, investors).await;
                        // The client's think time: pacing, not a wait.
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            next,
            clients,
        }
    }

    fn accepted(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }

    /// Stops the clients; returns how many investments were accepted.
    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
        self.next.load(Ordering::SeqCst)
    }
}

/// A settlement worker under its default consumer name (host name and
/// worker index); `log` names its log file.
fn spawn_worker_named_by_host(system: &System, log: &str, flags: &[&str]) -> Proc {
    Proc::spawn(
        log,
        Command::new(crowdgate_bin())
            .args(["settle", "--round", ROUND])
            .args(flags)
            .env("CROWDGATE_REDIS_URL", system.redis.url()),
        system.dir.path(),
    )
}

/// This machine's host name, read as the worker reads it.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0, "gethostname failed");
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).trim().to_string()
}

/// The settlement group's consumers as (name, pending entries), by name;
/// none before a worker has created the group.
async fn consumers(redis: &mut MultiplexedConnection) -> Vec<(String, usize)> {
    let reply: StreamInfoConsumersReply = match redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(crowdgate_store::RoundKeys::new(ROUND).settlement_stream())
        .arg("settlement")
        .query_async(redis)
        .await
    {
        Err(err) if err.code() == Some("NOGROUP") => return Vec::new(),
        reply => reply.unwrap(),
    };
    let mut consumers: Vec<_> = reply
        .consumers
        .into_iter()
        .map(|c| (c.name, c.pending))
        .collect();
    consumers.sort();
    consumers
}

/// The entries pending for `consumer`.
async fn pending_of(redis: &mut MultiplexedConnection, consumer: &str) -> usize {
    consumers(redis)
        .await
        .into_iter()
        .find(|(name, _)| name == consumer)
        .map_or(0, |(_, pending)| pending)
}

/// Redis's clients (`CLIENT LIST` lines) connected from loopback `ports`.
async fn clients_from(redis: &mut MultiplexedConnection, ports: &[u16]) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(redis)
        .await
        .unwrap();
    list.lines()
        .filter(|client| {
            client.split(' ').any(|field| {
                field
                    .strip_prefix("addr=127.0.0.1:")
                    .and_then(|port| port.parse().ok())
                    .is_some_and(|port: u16| ports.contains(&port))
            })
        })
        .map(str::to_string)
        .collect()
}

/// kill -9 of `worker`, then waits until Redis has dropped its connections,
/// which it does only after running all they sent: what the worker held is
/// final then (a batch sent just before it died may still have been running).
async fn kill_and_drain(worker: &mut Proc, system: &System, redis: &mut MultiplexedConnection) {
    let ports = worker.connections_to(system.redis.port);
    assert!(!ports.is_empty(), "{} has no Redis connection", worker.name);
    worker.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = clients_from(redis, &ports).await;
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis kept the killed worker's connections: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `worker` is blocked reading new entries: it has finished
/// whatever batch it was settling.
async fn wait_until_reading(worker: &Proc, system: &System) {
    let mut redis = system.redis().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ports = worker.connections_to(system.redis.port);
        let clients = clients_from(&mut redis, &ports).await;
        let blocked_reading = |client: &String| {
            let mut fields = client.split(' ');
            let blocked = fields
                .clone()
                .any(|f| f.strip_prefix("flags=").is_some_and(|f| f.contains('b')));
            blocked && fields.any(|f| f == "cmd=xreadgroup")
        };
        if clients.iter().any(blocked_reading) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never went back to reading: {clients:?}",
            worker.name
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `proc` has logged `needle`; returns its log without terminal
/// colours.
async fn wait_for_log(proc: &Proc, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let log = without_colours(&proc.log());
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not log {needle:?} within {within:?}:\n{log}",
            proc.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `crowdgate reconcile --wait-quiet-ms wait_ms`: (success, stdout, stderr).
fn reconcile(system: &System, wait_ms: u64) -> (bool, String, String) {
    let wait = wait_ms.to_string();
    tokio::task::block_in_place(|| {
        system.crowdgate(&["reconcile", "--round", ROUND, "--wait-quiet-ms", &wait])
    })
}

/// The mode a reconciliation printed: "full" or "live".
fn mode_of(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("mode "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
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

/// A still round reconciles in full, every invariant holding.
fn assert_reconciles(system: &System) {
    let (ok, stdout, stderr) = system.crowdgate(&["reconcile", "--round", ROUND]);
    assert!(ok, "reconcile found violations:\n{stdout}\n{stderr}");
    assert_eq!(mode_of(&stdout), "full", "{stdout}");
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
    identity: None,
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
    b.stop().await; // SIGSTOP: hung, holding its entries
    let _c = system.spawn_worker_with("worker-c", &flags);
    // c finishes the stream, and after 2 s reclaims what a and b held.
    let mut redis = system.redis().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held: Vec<_> = consumers(&mut redis)
            .await
            .into_iter()
            .filter(|(name, pending)| {
                ["worker-a", "worker-b"].contains(&name.as_str()) && *pending > 0
            })
            .collect();
        if held.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never reclaimed: {held:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.signal(libc::SIGCONT); // b wakes up and races c for the same entries
    wait_until_all_done(&system, COUNT as i64, Duration::from_secs(60)).await;
    wait_until_reading(&b, &system).await; // b has finished its batch
    assert_eq!(system.ledger_field("settled_count").await, COUNT as i64);
    assert_reconciles(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_redis_during_settlement_loses_and_doubles_nothing() {
    const COUNT: usize = 3_000;
    let mut system = System::start_with(BIG_ROUND, false).await;
    accept_investments(&system, COUNT, 100).await;
    let worker = system.spawn_worker_with("worker", &["--batch", "20"]);
    wait_until_settled_at_least(&system, 300).await;
    system.redis.kill();
    // Down until the worker has met the outage.
    wait_for_log(&worker, "settlement step failed", Duration::from_secs(30)).await;
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
    let http = core_http();
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let invest = |ticket: &str, investor: &str, amount: i64| {
        let pass = pass_token(ticket, 1, investor);
        http.post(&url)
            .bearer_auth(pass)
            .header("idempotency-key", format!("{investor}-{amount}"))
            .json(&json!({"amount_pence": amount}))
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
    let stream = crowdgate_store::RoundKeys::new(ROUND).settlement_stream();
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
        .arg(crowdgate_store::RoundKeys::new(ROUND).investment("inv_corrupt"))
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
        .arg(crowdgate_store::RoundKeys::new(ROUND).round())
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
    let balances = crowdgate_store::keys::deployment::BALANCES;
    let len: u64 = redis::cmd("HLEN")
        .arg(balances)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 0, "nothing half-imported");

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "investor_id,balance_pence\nann,1000\nbob,2500\n").unwrap();
    // Regression: a round that does not exist (a typo) or cannot exist (a
    // bad id) is refused, not created as a new empty round.
    for (round, says) in [
        ("no-such-round", "has no data in this Redis"),
        ("Bad Round", "must be 1-32 characters"),
    ] {
        let (ok, _, stderr) = system.crowdgate(&[
            "accounts",
            "import",
            good.to_str().unwrap(),
            "--round",
            round,
        ]);
        assert!(!ok && stderr.contains(says), "{round}: {stderr}");
        let (ok, _, stderr) = system.crowdgate(&["reconcile", "--round", round]);
        assert!(!ok && stderr.contains(says), "reconcile {round}: {stderr}");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("*{{{round}}}*"))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(keys.is_empty(), "{round}: {keys:?}");
    }
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
        .arg(balances)
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
        .arg(balances)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_of_a_moving_round_reports_only_real_violations() {
    let system = System::start_with(BIG_ROUND, false).await;
    // About a hundred investments a second, each settled soon after: the round
    // never holds still for long, and a scan stays short.
    let load = Load::start(&system, 3, 200, Duration::from_millis(20)).await;
    // Small batches, so the ledger moves all the time too.
    let flags = ["--batch", "20"];
    let mut worker = system.spawn_worker_with("worker-0", &flags);
    wait_until_settled_at_least(&system, 100).await;

    let mut modes = Vec::new();
    for restart in 1..=2 {
        // kill -9 and restart: the new worker reconciles the moving round.
        worker.kill();
        worker = system.spawn_worker_with(&format!("worker-{restart}"), &flags);
        let log = wait_for_log(
            &worker,
            "reconciliation at startup",
            Duration::from_secs(60),
        )
        .await;
        assert!(!log.contains("ERROR"), "a false alarm at startup:\n{log}");
        assert!(log.contains("reconciliation at startup: clean"), "{log}");
        modes.push(
            if log.contains("mode=live") {
                "live"
            } else {
                "full"
            }
            .to_string(),
        );
        for _ in 0..3 {
            let (ok, stdout, stderr) = reconcile(&system, 200);
            assert!(ok, "a false violation under load:\n{stdout}\n{stderr}");
            modes.push(mode_of(&stdout).to_string());
        }
    }
    eprintln!(
        "modes under load: {modes:?}; {} investments accepted so far",
        load.accepted()
    );
    assert!(
        modes.iter().any(|m| m == "live"),
        "the round never moved during a check, so this test proved nothing: {modes:?}"
    );

    // A real violation is still reported on the moving round, and a worker
    // starting then logs it as an ERROR.
    let mut redis = system.redis().await;
    let ledger = crowdgate_store::RoundKeys::new(ROUND).ledger();
    let tamper = async |redis: &mut redis::aio::MultiplexedConnection, by: i64| {
        let _: i64 = redis::cmd("HINCRBY")
            .arg(&ledger)
            .arg("debits_pence")
            .arg(by)
            .query_async(redis)
            .await
            .unwrap();
    };
    tamper(&mut redis, 1).await;
    let (ok, stdout, stderr) = reconcile(&system, 200);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("≠ credits"), "{stdout}");
    assert!(stderr.contains("violation"), "{stderr}");
    worker.kill();
    worker = system.spawn_worker_with("worker-tampered", &flags);
    let log = wait_for_log(
        &worker,
        "reconciliation at startup",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        log.contains("ERROR") && log.contains("found violations") && log.contains("≠ credits"),
        "{log}"
    );
    tamper(&mut redis, -1).await;

    let accepted = load.stop().await;
    wait_until_all_done(&system, accepted as i64, Duration::from_secs(60)).await;
    assert_reconciles(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_settles_its_own_pending_entries_at_once() {
    const COUNT: usize = 6_000;
    let system = System::start_with(BIG_ROUND, false).await;
    accept_investments(&system, COUNT, 100).await;
    // Nobody reclaims for ten minutes: only the worker itself, under the same
    // name, can settle what it held when it died.
    let flags = ["--claim-idle-ms", "600000", "--batch", "100"];
    let mut first = spawn_worker_named_by_host(&system, "by-host-1", &flags);
    let mut redis = system.redis().await;

    // Stop it as soon as it holds a whole batch, which is mostly before it
    // has sent the batch's settle scripts, and kill -9 it there. If Redis
    // still settled it all, start it again and try again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stops = 0;
    let (name, held) = loop {
        let holder = consumers(&mut redis)
            .await
            .into_iter()
            .find(|(_, pending)| *pending == 100);
        let Some((name, _)) = holder else {
            assert!(
                Instant::now() < deadline,
                "the worker was never caught holding entries ({stops} stops)"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // SIGSTOP first: its connections can then be read while it can
        // change nothing.
        first.stop().await;
        stops += 1;
        kill_and_drain(&mut first, &system, &mut redis).await;
        let held = pending_of(&mut redis, &name).await;
        if held > 0 {
            break (name, held);
        }
        first = spawn_worker_named_by_host(&system, &format!("by-host-1-{stops}"), &flags);
    };
    assert_eq!(consumers(&mut redis).await, vec![(name.clone(), held)]);

    let restarted = Instant::now();
    let second = spawn_worker_named_by_host(&system, "by-host-2", &flags);
    wait_until_all_done(&system, COUNT as i64, Duration::from_secs(60)).await;
    eprintln!(
        "caught after {stops} stop(s) holding {held} entries; all settled {:?} after the restart",
        restarted.elapsed()
    );
    let log = wait_for_log(
        &second,
        "own pending entries finished",
        Duration::from_secs(10),
    )
    .await;
    assert!(log.contains(&format!("consumer={name}")), "{log}");
    assert_eq!(
        consumers(&mut redis).await,
        vec![(name.clone(), 0)],
        "one consumer name across the restart, nothing left pending"
    );
    assert_eq!(name, format!("{}-0", host_name()), "host name and index 0");
    assert_reconciles(&system);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_holding_nothing_are_forgotten_and_holders_kept() {
    let system = System::start_with(RoundOptions::default(), false).await;
    accept_investments(&system, 20, 5).await;
    let mut redis = system.redis().await;
    let stream = crowdgate_store::RoundKeys::new(ROUND).settlement_stream();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("settlement")
        .arg("0")
        .query_async(&mut redis)
        .await
        .unwrap();
    // Two dead workers: one held nothing, one died holding five entries.
    let create = async |redis: &mut redis::aio::MultiplexedConnection, name: &str| {
        let _: i64 = redis::cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(&stream)
            .arg("settlement")
            .arg(name)
            .query_async(redis)
            .await
            .unwrap();
    };
    create(&mut redis, "gone-empty").await;
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("settlement")
        .arg("gone-holding")
        .arg("COUNT")
        .arg(5)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();

    let worker = system.spawn_worker_with(
        "keeper",
        &[
            "--claim-idle-ms",
            "600000",
            "--forget-idle-consumers-ms",
            "1000",
        ],
    );
    wait_until_all_done(&system, 15, Duration::from_secs(30)).await;
    let forgotten = async |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut redis = system.redis().await;
        while consumers(&mut redis).await.iter().any(|(n, _)| n == name) {
            assert!(Instant::now() < deadline, "{name} was never forgotten");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    forgotten("gone-empty").await;
    // Another one, so that more passes run while the holder is idle long.
    create(&mut redis, "gone-later").await;
    forgotten("gone-later").await;
    assert_eq!(
        consumers(&mut redis).await,
        vec![("gone-holding".to_string(), 5), ("keeper".to_string(), 0)],
        "the holder and the worker itself are kept"
    );
    let log = without_colours(&worker.log());
    assert!(log.contains("consumer=gone-empty"), "{log}");
    assert!(!log.contains("consumer=gone-holding"), "{log}");
}
