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
pub mod ha;
pub mod netns;
pub mod raw_http;
pub use crowdgate::local_redis::{LocalRedis, free_port};
use crowdgate_identity::IdentityClaims;
use crowdgate_identity::dev::DevSigner;
use crowdgate_protocol::Keyring;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// A ticket for `id`/`number` held by `investor`, signed as the waiting
/// room would, valid an hour.
pub fn ticket_token(id: &str, number: u64, investor: &str) -> String {
    keyring().sign(&crowdgate_protocol::Ticket {
        round: ROUND.into(),
        id: id.into(),
        number: Some(number),
        entry: None,
        issued_at: now_s(),
        expires_at: now_s() + 3_600,
        investor: Some(investor_claim(investor)),
    })
}

/// A pre-queue ticket (entry `entry`, no number yet) for `investor`, signed
/// as the edge signs one at a pre-queue join, valid an hour.
pub fn prequeue_ticket_token(id: &str, entry: u64, investor: &str) -> String {
    prequeue_ticket_token_for(ROUND, id, entry, investor)
}

/// [`prequeue_ticket_token`] for round `round`.
pub fn prequeue_ticket_token_for(round: &str, id: &str, entry: u64, investor: &str) -> String {
    keyring().sign(&crowdgate_protocol::Ticket {
        round: round.into(),
        id: id.into(),
        number: None,
        entry: Some(entry),
        issued_at: now_s(),
        expires_at: now_s() + 3_600,
        investor: Some(investor_claim(investor)),
    })
}

/// core's count of `/v1` requests on `route` (as written in the route
/// table, e.g. `/v1/rounds/{round}/state`), or on every route when `None`:
/// read from its Prometheus metrics (`crowdgate_core_requests_total`).
pub async fn core_requests(core_url: &str, route: Option<&str>) -> u64 {
    let text = core_http()
        .get(format!("{core_url}/metrics"))
        .send()
        .await
        .expect("core answers /metrics")
        .text()
        .await
        .expect("a metrics page");
    text.lines()
        .filter(|l| l.starts_with("crowdgate_core_requests_total"))
        .filter(|l| route.is_none_or(|r| l.contains(&format!("route=\"{r}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A pass for ticket `ticket` held by `investor`, signed as core signs one
/// after a claim, valid an hour.
pub fn pass_token(ticket: &str, number: u64, investor: &str) -> String {
    pass_token_for(ROUND, ticket, number, investor)
}

/// [`pass_token`] for round `round`.
pub fn pass_token_for(round: &str, ticket: &str, number: u64, investor: &str) -> String {
    keyring().sign(&crowdgate_protocol::Pass {
        round: round.into(),
        ticket: ticket.into(),
        number,
        issued_at: now_s(),
        expires_at: now_s() + 3_600,
        investor: Some(investor_claim(investor)),
    })
}

fn investor_claim(investor: &str) -> crowdgate_protocol::Investor {
    crowdgate_protocol::Investor {
        id: investor.into(),
        name: None,
        max_investment_pence: None,
    }
}

/// The platform every test system trusts to sign investors in: its issuer,
/// its sign-in page, and its key (fixed, so a test can mint tokens).
pub const IDENTITY_ISSUER: &str = "https://platform.test";
pub const SIGN_IN_URL: &str = "https://platform.test/sign-in";

/// The test platform's signing key (Ed25519, from a fixed seed).
pub fn identity_signer() -> DevSigner {
    DevSigner::from_seed([7; 32])
}

/// Claims the test platform would sign for `investor`, valid ten minutes.
pub fn identity_claims(investor: &str) -> IdentityClaims {
    DevSigner::claims(IDENTITY_ISSUER, ROUND, investor, now_s(), 600)
}

/// An identity token for `investor`, as the platform would hand one out.
pub fn identity_token(investor: &str) -> String {
    identity_signer().mint(&identity_claims(investor))
}

/// An identity token for `investor` to join round `round`: its audience is
/// the round (what the edge accepts when the deployment sets no audience of
/// its own: docs/INTEGRATION.md).
pub fn identity_token_for(investor: &str, round: &str) -> String {
    identity_signer().mint(&DevSigner::claims(
        IDENTITY_ISSUER,
        round,
        investor,
        now_s(),
        600,
    ))
}

/// The round an edge URL is for: `<edge>/r/<round>` names it, the bare
/// edge URL is the test systems' default round [`ROUND`].
pub fn round_of_url(edge_url: &str) -> &str {
    match edge_url.split_once("/r/") {
        Some((_, round)) => round.split('/').next().unwrap_or(ROUND),
        None => ROUND,
    }
}

/// Unix seconds now (the store's clock, as core uses it).
pub use crowdgate_store::clock::now_s;

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

    /// Waits until a line of its log (without terminal colours) gives `find`
    /// a value, and returns it; `None` if it exits first. Panics with the
    /// log if neither happens within `within`; `what` names the line there.
    pub async fn wait_for_line<T>(
        &mut self,
        what: &str,
        within: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            // Exited first, then the log: a line written just before the
            // exit is then never missed.
            let exited = self.has_exited();
            let log = without_colours(&self.log());
            if let Some(found) = log.lines().find_map(&find) {
                return Some(found);
            }
            if exited {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {what} within {within:?}:\n{log}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address it listens on, from the line where it logs `message`
    /// with `addr=` (text or JSON logs): servers here bind port 0 and say
    /// which port they got, so no port is picked early and taken meanwhile.
    /// Panics with its log if it exits first.
    pub async fn listening_addr(&mut self, message: &str) -> SocketAddr {
        match self.logged_addr(message).await {
            Some(addr) => addr,
            None => panic!("{} exited before listening:\n{}", self.name, self.log()),
        }
    }

    /// [`Proc::listening_addr`], or `None` if it exits before listening.
    pub async fn logged_addr(&mut self, message: &str) -> Option<SocketAddr> {
        let what = format!("{message:?} with its address");
        self.wait_for_line(&what, STARTUP, |line| {
            if !line.contains(message) {
                return None;
            }
            let (_, rest) = line
                .split_once(" addr=")
                .or_else(|| line.split_once(r#""addr":""#))?;
            rest.split(|c: char| c.is_whitespace() || c == '"')
                .next()?
                .parse()
                .ok()
        })
        .await
    }

    /// SIGSTOP, then waits until the kernel reports it stopped (signals are
    /// delivered asynchronously), so it can do nothing more once this returns.
    pub async fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state is the first field after the (command name).
            if text
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop: {text}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The local ports of its TCP connections to loopback port `port` (its
    /// Redis connections, say), from /proc; read while it is alive.
    pub fn connections_to(&self, port: u16) -> Vec<u16> {
        let pid = self.pid();
        let sockets: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let inode = target.to_str()?.strip_prefix("socket:[")?;
                    Some(inode.strip_suffix(']')?.to_string())
                })
                .collect();
        let port_of = |addr: &str| u16::from_str_radix(addr.rsplit_once(':')?.1, 16).ok();
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
                (sockets.contains(*inode) && port_of(remote)? == port)
                    .then(|| port_of(local))
                    .flatten()
            })
            .collect()
    }
}

/// How long a child may take to start listening (the host compiles its
/// components first, slowly in a debug build on a busy machine).
const STARTUP: Duration = Duration::from_secs(120);

/// `text` without ANSI escape sequences (`ESC [ ... letter`): `tracing`
/// colours its text logs even into a file.
pub fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
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
    /// `[round] identity`: `None` is the config's default (`required`:
    /// joining needs a signed-in investor); `Some("anonymous")` lets anyone
    /// queue (and nobody invest).
    pub identity: Option<&'static str>,
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
            identity: None,
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
            ("identity", self.identity.map(str::to_string)),
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
        System::start_with_host_env(round, with_settlement, identity_env()).await
    }

    /// [`System::start_with`], with `host_env` in place of the host's
    /// [`identity_env`] (any other variables for the host too, e.g.
    /// `RUST_LOG`): for tests of where the identity keys come from.
    pub async fn start_with_host_env(
        round: RoundOptions,
        with_settlement: bool,
        host_env: Vec<(&'static str, String)>,
    ) -> System {
        let dir = tempfile::tempdir().expect("temp dir");
        // Port 0: any free port (redis-server cannot report a port-0 bind,
        // so LocalRedis picks one and retries if it is taken meanwhile).
        let redis = LocalRedis::start(0, &dir.path().join("redis")).expect("redis-server starts");
        let redis_env = single_redis_env(&redis);
        let (core, core_url, settle, host, edge_url) =
            start_services(&round, &redis_env, dir.path(), with_settlement, host_env).await;
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

    /// `POST /ops/v1/rounds`: creates a round (a round file's settings as
    /// JSON) → (status code, body).
    pub async fn create_round(&self, settings: serde_json::Value) -> (u16, serde_json::Value) {
        json_of(
            core_http()
                .post(format!("{}/ops/v1/rounds", self.core_url))
                .bearer_auth(OPS_TOKEN)
                .json(&settings)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The edge's base URL for round `round`: `<edge>/r/<round>`.
    pub fn round_url(&self, round: &str) -> String {
        format!("{}/r/{round}", self.edge_url)
    }

    /// kill -9 of core.
    pub fn kill_core(&mut self) {
        self.core.kill();
    }

    /// Starts core again on the same port (after [`System::kill_core`]): the
    /// edge keeps the URL it knows. While the kernel has not yet released
    /// the port, core cannot bind it and exits; it is started again, for up
    /// to 10 s.
    pub async fn restart_core(&mut self) {
        let port: u16 = self.core_url.rsplit(':').next().unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let restarts = self.dir.path().read_dir().unwrap().count();
            let name = format!("core-{restarts}");
            let mut core = spawn_core(&single_redis_env(&self.redis), self.dir.path(), port, &name);
            match core.logged_addr("core listening").await {
                Some(_) => {
                    self.core = core;
                    break;
                }
                None if core.log().contains("Address already in use")
                    && Instant::now() < deadline =>
                {
                    // Poll interval of the retry, not a wait for an event.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => panic!("{name} did not restart on port {port}:\n{}", core.log()),
            }
        }
        wait_for(&format!("{}/healthz", self.core_url), &mut [&mut self.core]).await;
    }

    /// Starts a second core replica on another port against the same Redis;
    /// returns it and its URL.
    pub async fn spawn_core_replica(&self, name: &str) -> (Proc, String) {
        start_core(&single_redis_env(&self.redis), self.dir.path(), name).await
    }

    /// Starts another settlement worker named `consumer`.
    pub fn spawn_worker(&self, consumer: &str) -> Proc {
        spawn_worker(
            &single_redis_env(&self.redis),
            self.dir.path(),
            consumer,
            &[],
        )
    }

    /// Starts a settlement worker with extra `crowdgate settle` flags.
    pub fn spawn_worker_with(&self, consumer: &str, flags: &[&str]) -> Proc {
        spawn_worker(
            &single_redis_env(&self.redis),
            self.dir.path(),
            consumer,
            flags,
        )
    }

    /// Runs a `crowdgate` subcommand against this system's Redis and round;
    /// returns (success, stdout, stderr).
    pub fn crowdgate(&self, args: &[&str]) -> (bool, String, String) {
        run_crowdgate(&single_redis_env(&self.redis), args)
    }

    /// The test round's Redis key names (the store crate owns them).
    pub fn keys(&self) -> crowdgate_store::RoundKeys {
        crowdgate_store::RoundKeys::new(ROUND)
    }

    /// A field of the ledger hash as an integer (names:
    /// `crowdgate_store::layout::ledger`).
    pub async fn ledger_field(&self, field: &str) -> i64 {
        let mut redis = self.redis().await;
        crowdgate_store::inspect::int_field(&mut redis, &self.keys().ledger(), field)
            .await
            .unwrap()
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
        crowdgate_store::inspect::set_balances(&mut redis, accounts)
            .await
            .unwrap();
    }

    /// A field of the round hash as an integer (names:
    /// `crowdgate_store::layout::round`).
    pub async fn round_field(&self, field: &str) -> i64 {
        let mut redis = self.redis().await;
        crowdgate_store::inspect::int_field(&mut redis, &self.keys().round(), field)
            .await
            .unwrap()
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
        crowdgate_store::inspect::stream_len(&mut redis, &self.keys().settlement_stream())
            .await
            .unwrap()
    }
}

/// Runs `crowdgate args` reaching Redis through `redis_env`; returns
/// (success, stdout, stderr).
pub fn run_crowdgate(
    redis_env: &[(&'static str, String)],
    args: &[&str],
) -> (bool, String, String) {
    let output = Command::new(crowdgate_bin())
        .args(args)
        .envs(redis_env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("crowdgate runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// Submits the page's no-JavaScript investment form (`POST /invest`) as a
/// browser would, with `client`'s cookies; returns the page it answers, or,
/// for an accepted investment (303 to its receipt), the receipt page (also
/// for a client that does not follow redirects by itself).
pub async fn post_invest_form(
    client: &reqwest::Client,
    edge: &str,
    fields: &[(&str, &str)],
) -> String {
    let response = client
        .post(format!("{edge}/invest"))
        .form(fields)
        .send()
        .await
        .unwrap();
    let receipt = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .filter(|l| response.status() == 303 && l.starts_with("/receipt/"))
        .map(str::to_string);
    match receipt {
        Some(path) => get_text(client, &format!("{edge}{path}")).await,
        None => response.text().await.unwrap(),
    }
}

/// How `crowdgate` subcommands reach one [`LocalRedis`].
fn single_redis_env(redis: &LocalRedis) -> Vec<(&'static str, String)> {
    vec![("CROWDGATE_REDIS_URL", redis.url())]
}

/// core, a settlement worker (if `with_settlement`) and the edge host for
/// `round`, reaching Redis through `redis_env`, each ready: returns core,
/// its URL, the worker, the host and the edge's URL.
pub async fn start_services(
    round: &RoundOptions,
    redis_env: &[(&'static str, String)],
    dir: &Path,
    with_settlement: bool,
    host_env: Vec<(&'static str, String)>,
) -> (Proc, String, Option<Proc>, Proc, String) {
    start_services_in(&Loopback, round, redis_env, dir, with_settlement, host_env).await
}

/// [`start_services`] with each service where `placement` puts it.
pub async fn start_services_in(
    placement: &dyn Placement,
    round: &RoundOptions,
    redis_env: &[(&'static str, String)],
    dir: &Path,
    with_settlement: bool,
    host_env: Vec<(&'static str, String)>,
) -> (Proc, String, Option<Proc>, Proc, String) {
    std::fs::write(dir.join("round.toml"), round.to_toml()).unwrap();
    let (mut core, core_url) = start_core_in(placement, redis_env, dir, "core").await;
    let settle = with_settlement.then(|| spawn_worker_in(placement, redis_env, dir, "settle", &[]));
    let mut host = Proc::spawn(
        "host",
        placement
            .command(HOST, crowdgate_bin().as_os_str())
            .arg("host")
            .arg("--manifest")
            .arg(workspace_root().join("spin.toml"))
            .args([
                "--listen",
                &SocketAddr::new(placement.ip(HOST), 0).to_string(),
            ])
            .env("SPIN_VARIABLE_CORE_URL", &core_url)
            .env("SPIN_VARIABLE_ROUND_ID", ROUND)
            .env("SPIN_VARIABLE_SIGNING_KEYS", SIGNING_KEYS)
            .env("SPIN_VARIABLE_EDGE_TOKEN", EDGE_TOKEN)
            .envs(host_env),
        dir,
    );
    let edge_url = format!(
        "http://{}",
        host.listening_addr("edge host listening").await
    );
    wait_for(
        &format!("{edge_url}/api/round"),
        &mut [&mut core, &mut host],
    )
    .await;
    (core, core_url, settle, host, edge_url)
}

/// Where a test system's services run: [`Loopback`] (this machine's own
/// network) or, for partition tests, a [`netns::Network`] that gives each a
/// network namespace of its own.
pub trait Placement {
    /// A command running `program` where `service` ([`CORE`], [`SETTLE`] or
    /// [`HOST`]) runs.
    fn command(&self, service: &str, program: &std::ffi::OsStr) -> Command;
    /// The address `service` listens on (and is reached at).
    fn ip(&self, service: &str) -> IpAddr;
}

/// core's name for a [`Placement`].
pub const CORE: &str = "core";
/// The settlement worker's name for a [`Placement`].
pub const SETTLE: &str = "settle";
/// The edge host's name for a [`Placement`].
pub const HOST: &str = "host";

/// Every service on 127.0.0.1, as this process's own children.
pub struct Loopback;

impl Placement for Loopback {
    fn command(&self, _service: &str, program: &std::ffi::OsStr) -> Command {
        Command::new(program)
    }

    fn ip(&self, _service: &str) -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

impl Placement for netns::Network {
    fn command(&self, service: &str, program: &std::ffi::OsStr) -> Command {
        netns::Network::command(self, service, program)
    }

    fn ip(&self, service: &str) -> IpAddr {
        IpAddr::V4(netns::Network::ip(self, service))
    }
}

/// Starts core on any free port and waits until it serves; returns it and
/// its URL.
pub async fn start_core(
    redis_env: &[(&'static str, String)],
    dir: &Path,
    name: &str,
) -> (Proc, String) {
    start_core_in(&Loopback, redis_env, dir, name).await
}

/// [`start_core`] where `placement` puts [`CORE`].
pub async fn start_core_in(
    placement: &dyn Placement,
    redis_env: &[(&'static str, String)],
    dir: &Path,
    name: &str,
) -> (Proc, String) {
    let mut core = spawn_core_in(placement, redis_env, dir, 0, name);
    let url = format!("http://{}", core.listening_addr("core listening").await);
    wait_for(&format!("{url}/healthz"), &mut [&mut core]).await;
    (core, url)
}

/// Spawns core on 127.0.0.1:`port` (0: the kernel picks; core logs the
/// address it bound) without waiting for it to be ready.
pub fn spawn_core(redis_env: &[(&'static str, String)], dir: &Path, port: u16, name: &str) -> Proc {
    spawn_core_in(&Loopback, redis_env, dir, port, name)
}

/// [`spawn_core`] where `placement` puts [`CORE`].
fn spawn_core_in(
    placement: &dyn Placement,
    redis_env: &[(&'static str, String)],
    dir: &Path,
    port: u16,
    name: &str,
) -> Proc {
    let listen = SocketAddr::new(placement.ip(CORE), port);
    Proc::spawn(
        name,
        placement
            .command(CORE, crowdgate_bin().as_os_str())
            .arg("core")
            .arg("--config")
            .arg(dir.join("round.toml"))
            .args(["--listen", &listen.to_string()])
            .envs(redis_env.iter().map(|(k, v)| (k, v)))
            .env("CROWDGATE_SIGNING_KEYS", SIGNING_KEYS)
            .env("CROWDGATE_OPS_TOKENS", format!("tester:{OPS_TOKEN}"))
            .env("CROWDGATE_EDGE_TOKENS", format!("edge:{EDGE_TOKEN}")),
        dir,
    )
}

/// Starts a settlement worker named `consumer` reaching Redis through
/// `redis_env`, with extra `crowdgate settle` flags.
pub fn spawn_worker(
    redis_env: &[(&'static str, String)],
    log_dir: &Path,
    consumer: &str,
    flags: &[&str],
) -> Proc {
    spawn_worker_in(&Loopback, redis_env, log_dir, consumer, flags)
}

/// [`spawn_worker`] where `placement` puts [`SETTLE`].
pub fn spawn_worker_in(
    placement: &dyn Placement,
    redis_env: &[(&'static str, String)],
    log_dir: &Path,
    consumer: &str,
    flags: &[&str],
) -> Proc {
    Proc::spawn(
        consumer,
        placement
            .command(SETTLE, crowdgate_bin().as_os_str())
            .arg("settle")
            .args(["--consumer", consumer])
            .args(if flags.contains(&"--claim-idle-ms") {
                &[][..]
            } else {
                &["--claim-idle-ms", "2000"][..]
            })
            .args(flags)
            .envs(redis_env.iter().map(|(k, v)| (k, v))),
        log_dir,
    )
}

impl System {
    /// Waits until core's admission controller has completed `steps` more
    /// steps (its `crowdgate_core_admission_steps_total` counter): proof that
    /// time passed for the system, for tests that assert nothing happened
    /// (a paused or full round admits nobody) without a fixed sleep.
    pub async fn wait_for_admission_steps(&self, steps: u32) {
        let http = core_http();
        let url = format!("{}/metrics", self.core_url);
        // Steps of every round (the counter is labelled by round).
        let count = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("crowdgate_core_admission_steps_total"))
                .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        let start = count(&get_text(&http, &url).await);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = count(&get_text(&http, &url).await);
            if now >= start + u64::from(steps) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the admission controller took {} of {steps} steps within 10 s",
                now - start
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a bare redis-server with `flags` (none of [`LocalRedis`]'s
/// durability settings: for tests of what core does with such a server)
/// with its data in `dir`, on a free loopback port; returns it, once it is
/// ready, and its port. redis-server cannot bind port 0 and report the port,
/// so a port is picked here, and another tried if that one is taken first.
pub async fn spawn_redis_server(name: &str, dir: &Path, flags: &[&str]) -> (Proc, u16) {
    for _ in 0..20 {
        let port = free_port();
        let mut redis = Proc::spawn(
            name,
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(flags)
                .arg("--dir")
                .arg(dir),
            dir,
        );
        let ready = redis
            .wait_for_line("that it is ready", STARTUP, |line| {
                line.contains("Ready to accept connections").then_some(())
            })
            .await;
        if ready.is_some() {
            return (redis, port);
        }
        let log = redis.log();
        assert!(
            log.contains("Address already in use"),
            "{name} did not start:\n{log}"
        );
    }
    panic!("{name} found every port it tried taken");
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

/// Polls the investment at core's `url` until its status is `status`;
/// returns it. Every answer must be a 200.
pub async fn wait_for_investment(url: &str, status: &str, within: Duration) -> serde_json::Value {
    wait_for_investment_as(&core_http(), None, url, status, within).await
}

/// [`wait_for_investment`] as `http` (a visitor's client), showing `bearer`
/// (the edge answers only the investment's own investor's pass or ticket).
pub async fn wait_for_investment_as(
    http: &reqwest::Client,
    bearer: Option<&str>,
    url: &str,
    status: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let mut request = http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let (code, body) = json_of(request.send().await.unwrap()).await;
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

/// The host's identity variables for a test system: the test platform's
/// key as a static JWKS.
pub fn identity_env() -> Vec<(&'static str, String)> {
    vec![
        ("SPIN_VARIABLE_IDENTITY_ISSUER", IDENTITY_ISSUER.to_string()),
        ("SPIN_VARIABLE_IDENTITY_JWKS", identity_signer().jwks_json()),
        (
            "SPIN_VARIABLE_IDENTITY_SIGN_IN_URL",
            SIGN_IN_URL.to_string(),
        ),
    ]
}

/// A visitor with a cookie jar, like a browser, signed in by the test
/// platform as an investor: joining presents that investor's identity token
/// as an app would (`Authorization: Bearer`).
pub struct Visitor {
    pub http: reqwest::Client,
    pub edge_url: String,
    investor: std::sync::Mutex<Option<String>>,
}

impl Visitor {
    /// A visitor signed in as a new investor of their own (`visitor-<n>`),
    /// so every visitor is a different person holding one place.
    pub fn new(edge_url: &str) -> Visitor {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Visitor::signed_in(edge_url, &format!("visitor-{n}"))
    }

    /// A visitor signed in as `investor`.
    pub fn signed_in(edge_url: &str, investor: &str) -> Visitor {
        let visitor = Visitor::anonymous(edge_url);
        visitor.sign_in_as(investor);
        visitor
    }

    /// A visitor who has not signed in.
    pub fn anonymous(edge_url: &str) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            edge_url: edge_url.to_string(),
            investor: std::sync::Mutex::new(None),
        }
    }

    /// The same browser (cookie jar, identity) at another edge URL: another
    /// round's page, say.
    pub fn same_browser_at(&self, edge_url: &str) -> Visitor {
        Visitor {
            http: self.http.clone(),
            edge_url: edge_url.to_string(),
            investor: std::sync::Mutex::new(self.investor()),
        }
    }

    /// From now on, joins present an identity token for `investor`.
    pub fn sign_in_as(&self, investor: &str) {
        *self.investor.lock().unwrap() = Some(investor.to_string());
    }

    /// The investor this visitor is signed in as.
    pub fn investor(&self) -> Option<String> {
        self.investor.lock().unwrap().clone()
    }

    /// POST /api/join (with a fresh identity token, if signed in) →
    /// (status code, body).
    pub async fn join(&self) -> (u16, serde_json::Value) {
        let mut request = self.http.post(format!("{}/api/join", self.edge_url));
        if let Some(investor) = self.investor() {
            let round = round_of_url(&self.edge_url);
            request = request.bearer_auth(identity_token_for(&investor, round));
        }
        json_of(request.send().await.unwrap()).await
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

    /// POST /api/pass → the pass token. A 503 (core or Redis busy for a
    /// moment) is retried, as a client would, for up to 10 s.
    pub async fn pass(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, body) = json_of(
                self.http
                    .post(format!("{}/api/pass", self.edge_url))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if code == 503 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert_eq!(code, 200, "pass refused: {body}");
            return body["pass"].as_str().unwrap().to_string();
        }
    }

    /// [`Visitor::join`], retrying a 503 as a client would, for up to 10 s.
    pub async fn join_retrying(&self) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, body) = self.join().await;
            if code != 503 || Instant::now() >= deadline {
                return (code, body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs in as a person would: on the development identity provider at
    /// `provider_url`, picking `investor`; the provider sends the browser
    /// to the waiting room's `/signin`, which keeps the identity in a
    /// cookie and shows the page. Returns the page.
    pub async fn sign_in_with_provider(&self, provider_url: &str, investor: &str) -> String {
        let response = self
            .http
            .post(format!("{provider_url}/sign-in"))
            .form(&[("investor", investor)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("sign in at {provider_url}: {e}"));
        let landed = response.url().clone();
        let code = response.status().as_u16();
        let page = response.text().await.unwrap();
        assert_eq!(code, 200, "sign-in ended at {landed} with {code}: {page}");
        assert!(
            landed.as_str().starts_with(&self.edge_url)
                && !landed.as_str().contains("identity_token"),
            "sign-in should end on the waiting room's clean URL, not {landed}"
        );
        page
    }

    /// Joins (with whatever identity the visitor holds), waits (up to 10 s)
    /// to be admitted, takes a pass and invests `amount_pence` with `key`;
    /// each call's 503 is retried as a client would (the investment with the
    /// same key), for up to 10 s.
    pub async fn invest_signed_in(&self, amount_pence: i64, key: &str) -> (u16, serde_json::Value) {
        let (code, joined) = self.join_retrying().await;
        assert!(code == 201 || code == 200, "join: {code} {joined}");
        self.wait_until_admitted(Duration::from_secs(10)).await;
        let pass = self.pass().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, body) = self
                .invest(
                    &pass,
                    key,
                    serde_json::json!({"amount_pence": amount_pence}),
                )
                .await;
            if code != 503 || Instant::now() >= deadline {
                return (code, body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The whole visit: signs in as `investor`,
    /// joins, waits (up to 10 s) to be admitted, takes a pass and invests
    /// `amount_pence` with key `key` (for the signed-in investor: the body
    /// names none).
    pub async fn join_and_invest(
        &self,
        investor: &str,
        amount_pence: i64,
        key: &str,
    ) -> (u16, serde_json::Value) {
        self.sign_in_as(investor);
        self.invest_signed_in(amount_pence, key).await
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
