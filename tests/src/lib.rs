//! Test support for Crowdgate's end-to-end tests: start the real system —
//! a real redis-server on a free loopback port with a temp dir, the real
//! `crowdgate` binary's core, settlement worker and Wasm host serving the
//! repository's own `spin.toml` — and talk to it over real HTTP.
//!
//! The binaries and components must be built first; `./dev test` does that
//! (`cargo build -p crowdgate` and
//! `cargo build --target wasm32-wasip2 --profile component -p waiting-room -p edge`).
//!
//! When a test panics, the logs of every process it started are printed, so a
//! failure in CI explains itself.

pub mod browser;
pub use crowdgate::local_redis::{LocalRedis, free_port};
use crowdgate_protocol::Keyring;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Signing keys every test system uses, so tests can mint tokens (expired,
/// other round, ...) that the system will verify.
pub const SIGNING_KEYS: &str = "t1:test-signing-key-0123456789abcdef0123456789";
/// The ops token of every test system.
pub const OPS_TOKEN: &str = "test-ops-token-0123456789abcdef";
/// The token the edge presents to core's `/v1` API in every test system.
pub const EDGE_TOKEN: &str = "test-edge-token-0123456789abcdef";

/// An HTTP client that presents the edge token, as the edge components do:
/// for tests that call core's `/v1` API directly (it also talks to the edge,
/// which ignores the header).
pub fn core_http() -> reqwest::Client {
    core_http_builder().build().expect("a reqwest client")
}

/// [`core_http`]'s builder, for clients that need more settings.
pub fn core_http_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        crowdgate_protocol::api::EDGE_TOKEN_HEADER,
        reqwest::header::HeaderValue::from_static(EDGE_TOKEN),
    );
    reqwest::Client::builder().default_headers(headers)
}

/// The workspace root (where spin.toml lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The `crowdgate` binary: `$CROWDGATE_BIN` if set (benchmarks use the
/// release build), else the one built by `cargo build -p crowdgate`.
pub fn crowdgate_bin() -> PathBuf {
    let bin = std::env::var_os("CROWDGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug").join("crowdgate"));
    assert!(
        bin.is_file(),
        "{} is missing: run `./dev test`, or `cargo build -p crowdgate` first",
        bin.display()
    );
    bin
}

/// A built Wasm component, e.g. `wasm("waiting_room")`. Components are
/// built with the `component` profile (release, no debug info).
pub fn wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/component")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `./dev test`, or `cargo build --target wasm32-wasip2 --profile component -p waiting-room -p edge -p host-probe` first",
        path.display()
    );
    path
}

pub fn keyring() -> Keyring {
    Keyring::parse(SIGNING_KEYS).expect("test keys are valid")
}

/// A ticket for `id`/`number`, signed as the waiting room would, valid an hour.
pub fn ticket_token(id: &str, number: u64) -> String {
    keyring().sign(&crowdgate_protocol::Ticket {
        round: ROUND.into(),
        id: id.into(),
        number: Some(number),
        issued_at: now_s(),
        expires_at: now_s() + 3_600,
    })
}

/// A pass for ticket `ticket`, signed as core signs one after a claim,
/// valid an hour.
pub fn pass_token(ticket: &str, number: u64) -> String {
    keyring().sign(&crowdgate_protocol::Pass {
        round: ROUND.into(),
        ticket: ticket.into(),
        number,
        issued_at: now_s(),
        expires_at: now_s() + 3_600,
    })
}

/// Unix seconds now.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A child process whose output goes to a log file; killed on drop.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("can create log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, signal);
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill();
    }
}

/// Round settings for a test system.
#[derive(Debug, Clone)]
pub struct RoundOptions {
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    /// `None`: the config's default (scheduled if `opens_at` is set, else open).
    pub initial_phase: Option<&'static str>,
    /// RFC 3339 opening and closing times.
    pub opens_at: Option<String>,
    pub closes_at: Option<String>,
    pub rate_per_minute: u64,
    pub batch_interval_ms: u64,
    pub max_active: u64,
    pub claim_window_seconds: u64,
}

impl Default for RoundOptions {
    fn default() -> Self {
        RoundOptions {
            cap_pence: 10_000_000,
            min_investment_pence: 1_000,
            max_investment_pence: 200_000,
            share_price_pence: 100,
            initial_phase: None,
            opens_at: None,
            closes_at: None,
            rate_per_minute: 60_000,
            batch_interval_ms: 200,
            max_active: 100_000,
            claim_window_seconds: 60,
        }
    }
}

impl RoundOptions {
    fn to_toml(&self) -> String {
        let mut toml = format!(
            "[round]\nid = \"{ROUND}\"\nname = \"Test round\"\ncap_pence = {}\nmin_investment_pence = {}\n\
             max_investment_pence = {}\nshare_price_pence = {}\n",
            self.cap_pence,
            self.min_investment_pence,
            self.max_investment_pence,
            self.share_price_pence,
        );
        for (key, value) in [
            ("initial_phase", self.initial_phase.map(str::to_string)),
            ("opens_at", self.opens_at.clone()),
            ("closes_at", self.closes_at.clone()),
        ] {
            if let Some(value) = value {
                toml.push_str(&format!("{key} = \"{value}\"\n"));
            }
        }
        toml.push_str(&format!(
            "[admission]\nrate_per_minute = {}\nbatch_interval_ms = {}\nmax_active = {}\npass_ttl_seconds = 600\nclaim_window_seconds = {}\n",
            self.rate_per_minute, self.batch_interval_ms, self.max_active, self.claim_window_seconds,
        ));
        toml
    }
}

/// The round id of every test system.
pub const ROUND: &str = "test-round";

/// The whole system, started for one test.
pub struct System {
    pub redis: LocalRedis,
    pub core: Proc,
    pub settle: Option<Proc>,
    pub host: Proc,
    /// Base URL of the Wasm edge (what investors use).
    pub edge_url: String,
    /// Base URL of core.
    pub core_url: String,
    pub dir: TempDir,
}

impl System {
    /// Starts redis, core, one settlement worker and the host with `round`.
    pub async fn start(round: RoundOptions) -> System {
        System::start_with(round, true).await
    }

    pub async fn start_with(round: RoundOptions, with_settlement: bool) -> System {
        let dir = tempfile::tempdir().expect("temp dir");
        let redis =
            LocalRedis::start(free_port(), &dir.path().join("redis")).expect("redis-server starts");
        let config = dir.path().join("round.toml");
        std::fs::write(&config, round.to_toml()).unwrap();

        let core_port = free_port();
        let core_url = format!("http://127.0.0.1:{core_port}");
        let mut core = spawn_core(&redis, dir.path(), core_port, "core");
        wait_for(&format!("{core_url}/healthz"), &mut [&mut core]).await;
        let settle = with_settlement.then(|| spawn_worker(&redis, dir.path(), "settle", &[]));

        let edge_port = free_port();
        let edge_url = format!("http://127.0.0.1:{edge_port}");
        let mut host = Proc::spawn(
            "host",
            Command::new(crowdgate_bin())
                .arg("host")
                .arg("--manifest")
                .arg(workspace_root().join("spin.toml"))
                .args(["--listen", &format!("127.0.0.1:{edge_port}")])
                .env("SPIN_VARIABLE_CORE_URL", &core_url)
                .env("SPIN_VARIABLE_ROUND_ID", ROUND)
                .env("SPIN_VARIABLE_SIGNING_KEYS", SIGNING_KEYS)
                .env("SPIN_VARIABLE_EDGE_TOKEN", EDGE_TOKEN),
            dir.path(),
        );
        wait_for(
            &format!("{edge_url}/api/round"),
            &mut [&mut core, &mut host],
        )
        .await;
        System {
            redis,
            core,
            settle,
            host,
            edge_url,
            core_url,
            dir,
        }
    }

    /// kill -9 of core.
    pub fn kill_core(&mut self) {
        self.core.kill();
    }

    /// Starts core again on the same port (after [`System::kill_core`]).
    pub async fn restart_core(&mut self) {
        let port: u16 = self.core_url.rsplit(':').next().unwrap().parse().unwrap();
        let restarts = self.dir.path().read_dir().unwrap().count();
        self.core = spawn_core(
            &self.redis,
            self.dir.path(),
            port,
            &format!("core-{restarts}"),
        );
        wait_for(&format!("{}/healthz", self.core_url), &mut [&mut self.core]).await;
    }

    /// Starts a second core replica on another port against the same Redis;
    /// returns it and its URL.
    pub async fn spawn_core_replica(&self, name: &str) -> (Proc, String) {
        let port = free_port();
        let mut replica = spawn_core(&self.redis, self.dir.path(), port, name);
        let url = format!("http://127.0.0.1:{port}");
        wait_for(&format!("{url}/healthz"), &mut [&mut replica]).await;
        (replica, url)
    }

    /// Starts another settlement worker named `consumer`.
    pub fn spawn_worker(&self, consumer: &str) -> Proc {
        spawn_worker(&self.redis, self.dir.path(), consumer, &[])
    }

    /// Starts a settlement worker with extra `crowdgate settle` flags.
    pub fn spawn_worker_with(&self, consumer: &str, flags: &[&str]) -> Proc {
        spawn_worker(&self.redis, self.dir.path(), consumer, flags)
    }

    /// Runs a `crowdgate` subcommand against this system's Redis and round;
    /// returns (success, stdout, stderr).
    pub fn crowdgate(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(crowdgate_bin())
            .args(args)
            .env("CROWDGATE_REDIS_URL", self.redis.url())
            .output()
            .expect("crowdgate runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    }

    /// A field of the ledger hash as an integer.
    pub async fn ledger_field(&self, field: &str) -> i64 {
        let mut redis = self.redis().await;
        let value: Option<i64> = redis::cmd("HGET")
            .arg(format!("cg:{{{ROUND}}}:ledger"))
            .arg(field)
            .query_async(&mut redis)
            .await
            .unwrap();
        value.unwrap_or(0)
    }

    /// A Redis connection to the system's own server.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Funds investor accounts directly in the ledger.
    pub async fn fund(&self, accounts: &[(&str, i64)]) {
        let mut redis = self.redis().await;
        for (investor, pence) in accounts {
            let _: () = redis::cmd("HSET")
                .arg(format!("cg:{{{ROUND}}}:balances"))
                .arg(investor)
                .arg(pence)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
    }

    /// A field of the round hash as an integer.
    pub async fn round_field(&self, field: &str) -> i64 {
        let mut redis = self.redis().await;
        let value: Option<i64> = redis::cmd("HGET")
            .arg(format!("cg:{{{ROUND}}}:round"))
            .arg(field)
            .query_async(&mut redis)
            .await
            .unwrap();
        value.unwrap_or(0)
    }

    /// core's room state (`GET /v1/rounds/{round}/state`).
    pub async fn room_state(&self) -> serde_json::Value {
        let url = format!("{}/v1/rounds/{ROUND}/state", self.core_url);
        let (code, state) = json_of(core_http().get(url).send().await.unwrap()).await;
        assert_eq!(code, 200, "{state}");
        state
    }

    /// Entries ever published to the settlement stream.
    pub async fn stream_len(&self) -> u64 {
        let mut redis = self.redis().await;
        redis::cmd("XLEN")
            .arg(format!("cg:{{{ROUND}}}:settlement"))
            .query_async(&mut redis)
            .await
            .unwrap()
    }
}

fn spawn_core(redis: &LocalRedis, dir: &Path, port: u16, name: &str) -> Proc {
    Proc::spawn(
        name,
        Command::new(crowdgate_bin())
            .arg("core")
            .arg("--config")
            .arg(dir.join("round.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CROWDGATE_REDIS_URL", redis.url())
            .env("CROWDGATE_SIGNING_KEYS", SIGNING_KEYS)
            .env("CROWDGATE_OPS_TOKENS", format!("tester:{OPS_TOKEN}"))
            .env("CROWDGATE_EDGE_TOKENS", format!("edge:{EDGE_TOKEN}")),
        dir,
    )
}

fn spawn_worker(redis: &LocalRedis, log_dir: &Path, consumer: &str, flags: &[&str]) -> Proc {
    Proc::spawn(
        consumer,
        Command::new(crowdgate_bin())
            .arg("settle")
            .args(["--round", ROUND, "--consumer", consumer])
            .args(if flags.contains(&"--claim-idle-ms") {
                &[][..]
            } else {
                &["--claim-idle-ms", "2000"][..]
            })
            .args(flags)
            .env("CROWDGATE_REDIS_URL", redis.url()),
        log_dir,
    )
}

/// Polls `url` until it answers 2xx; panics with the log of any of `procs`
/// that exits meanwhile.
pub async fn wait_for(url: &str, procs: &mut [&mut Proc]) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for proc in procs.iter_mut() {
            if proc.has_exited() {
                panic!("{} exited during startup:\n{}", proc.name, proc.log());
            }
        }
        if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not come up within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the investment at `url` (edge `/api/investments/{id}` or core's)
/// until its status is `status`; returns it. Every answer must be a 200.
pub async fn wait_for_investment(url: &str, status: &str, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    let http = core_http();
    loop {
        let (code, body) = json_of(http.get(url).send().await.unwrap()).await;
        assert_eq!(code, 200, "{body}");
        if body["status"] == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "not {status} within {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A visitor with a cookie jar, like a browser.
pub struct Visitor {
    pub http: reqwest::Client,
    pub edge_url: String,
}

impl Visitor {
    pub fn new(edge_url: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            edge_url: edge_url.to_string(),
        }
    }

    /// POST /api/join → (status code, body).
    pub async fn join(&self) -> (u16, serde_json::Value) {
        json_of(
            self.http
                .post(format!("{}/api/join", self.edge_url))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn status(&self) -> (u16, serde_json::Value) {
        json_of(
            self.http
                .get(format!("{}/api/status", self.edge_url))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Polls status (honouring `poll_after_ms`, capped at 500 ms) until admitted.
    pub async fn wait_until_admitted(&self, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let (code, status) = self.status().await;
            assert_eq!(code, 200, "status failed: {status}");
            if status["state"] == "admitted" {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "not admitted within {within:?}: {status}"
            );
            let wait = status["poll_after_ms"].as_u64().unwrap_or(200).min(500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// POST /api/pass → the pass token.
    pub async fn pass(&self) -> String {
        let (code, body) = json_of(
            self.http
                .post(format!("{}/api/pass", self.edge_url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "pass refused: {body}");
        body["pass"].as_str().unwrap().to_string()
    }

    /// POST /api/investments through the edge.
    pub async fn invest(
        &self,
        pass: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        json_of(
            self.http
                .post(format!("{}/api/investments", self.edge_url))
                .bearer_auth(pass)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// The body of `GET url` as text (a page, or Prometheus metrics).
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Status and JSON body of a response; panics if the body is not JSON
/// (every Crowdgate API answer must be).
pub async fn json_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let code = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {code}: body is not JSON: {text:?}"));
    (code, body)
}
