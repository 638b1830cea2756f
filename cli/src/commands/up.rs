//! `crowdgate up`: the whole system on this machine in one process tree.
//!
//! Starts a durable redis-server (data under `--data-dir`), core, a settlement
//! worker, the development identity provider (`crowdgate dev-identity`: on
//! one machine there is no platform to sign investors in, so anyone can sign
//! in as any investor) and the Wasm edge host serving `spin.toml`, told to
//! trust that provider; seeds the demo round and accounts; prints where to
//! go. Ctrl-C stops every child. Running it again keeps the data (Redis AOF,
//! the generated secrets and the identity provider's key).
//!
//! With `--ha`, Redis is a local high-availability set instead
//! ([`crowdgate::local_ha`]: a primary, two replicas, three Sentinels), core and
//! the worker find the primary through the Sentinels, and a data node that
//! dies is restarted, so a `kill -9` of the primary shows a whole failover.
//!
//! The commands the banner prints run as printed from where `up` was
//! started: they name this binary as the person can run it ([`self_command`]:
//! `./dev crowdgate` under `./dev up`, else this executable's path), never a
//! bare `crowdgate` that a fresh clone does not have on its `PATH`.

use anyhow::{Context, bail};
use clap::Args;
use crowdgate::local_ha::{HaOptions, HaPorts, LocalHa};
use crowdgate::local_redis::LocalRedis;
use crowdgate::secrets::Secrets;
use crowdgate::supervisor;
use crowdgate_core::RoundConfig;
use crowdgate_store::{RedisConfig, Topology};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct UpArgs {
    /// Round config file (TOML).
    #[arg(long, default_value = "crowdgate.toml")]
    pub config: PathBuf,
    /// Spin manifest whose components the edge host serves.
    #[arg(long, default_value = "spin.toml")]
    pub manifest: PathBuf,
    /// Where Redis data and generated secrets live.
    #[arg(long, default_value = ".crowdgate")]
    pub data_dir: PathBuf,
    /// Investor-facing address (the Wasm edge).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// core's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub core_listen: SocketAddr,
    /// Port of our own redis-server (loopback only). With --ha, the base of
    /// the HA set's ports (see --ha).
    #[arg(long, default_value_t = 6390)]
    pub redis_port: u16,
    /// Run Redis as a local high-availability set instead of one server,
    /// all on 127.0.0.1: three data nodes on --redis-port, +1 and +2
    /// (first run: the first is primary, the others its replicas; later
    /// runs keep the roles the Sentinels last recorded; a primary refuses
    /// writes while it has no replica, so losing any one node leaves writes
    /// going), and three Sentinels on --redis-port+10, +11 and +12 (master
    /// name "crowdgate"), which promote a replica when the primary fails.
    /// Data under <data-dir>/ha/. core and the settlement worker get
    /// CROWDGATE_REDIS_SENTINELS and CROWDGATE_REDIS_MASTER instead of
    /// CROWDGATE_REDIS_URL. A data node that dies is restarted (once the
    /// Sentinels have promoted another) and rejoins as a replica.
    #[arg(long)]
    pub ha: bool,
    /// Prometheus metrics of the edge host.
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub host_metrics: SocketAddr,
    /// Prometheus metrics of the settlement worker.
    #[arg(long, default_value = "127.0.0.1:9102")]
    pub settle_metrics: SocketAddr,
    /// Port of the development identity provider (loopback only).
    #[arg(long, default_value_t = 3001)]
    pub identity_port: u16,
}

/// A named child process.
pub(super) struct Part {
    pub(super) name: &'static str,
    pub(super) child: Child,
}

/// Our Redis: one server, or the HA set of `--ha`.
enum Redis {
    Single(LocalRedis),
    Ha(LocalHa),
}

impl Redis {
    /// How core and the worker find it. Never both a URL and Sentinels:
    /// core refuses that.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Redis::Single(redis) => vec![("CROWDGATE_REDIS_URL", redis.url())],
            Redis::Ha(ha) => ha.client_env(),
        }
    }

    /// The variables of the other mode, which the children must not
    /// inherit (the user's shell may set them).
    fn env_not(&self) -> &'static [&'static str] {
        match self {
            Redis::Single(_) => &["CROWDGATE_REDIS_SENTINELS", "CROWDGATE_REDIS_MASTER"],
            Redis::Ha(_) => &["CROWDGATE_REDIS_URL"],
        }
    }

    /// `command` told how to find Redis, and nothing of the other mode.
    fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        for name in self.env_not() {
            command.env_remove(name);
        }
        command.envs(self.env())
    }

    /// How this process reaches it: as core does (through the Sentinels,
    /// waiting for one replica, with --ha).
    fn config(&self) -> anyhow::Result<RedisConfig> {
        Ok(match self {
            Redis::Single(redis) => RedisConfig::single(&redis.url()),
            Redis::Ha(ha) => RedisConfig::with_defaults(
                Topology::sentinel(&ha.sentinels_arg(), ha.master_name(), None)
                    .map_err(anyhow::Error::msg)?,
            ),
        })
    }

    fn stop(&mut self) {
        match self {
            Redis::Single(redis) => redis.stop(),
            Redis::Ha(ha) => ha.stop(),
        }
    }
}

pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    // Children get absolute paths: they must not depend on the directory
    // they run in (redis-server, for one, changes into its data directory).
    args.config = absolute_file(&args.config, "--config")?;
    args.manifest = absolute_file(&args.manifest, "--manifest")?;
    let round = RoundConfig::load(&args.config)?;
    let round_id = round.round.id.clone();
    let identity_listen = SocketAddr::from(([127, 0, 0, 1], args.identity_port));
    for addr in [
        args.listen,
        args.core_listen,
        args.host_metrics,
        args.settle_metrics,
        identity_listen,
    ] {
        ensure_free(addr)?;
    }
    let redis_ports = if args.ha {
        HaPorts::from_base(args.redis_port)
            .context("--redis-port with --ha")?
            .all()
    } else {
        vec![args.redis_port]
    };
    for port in redis_ports {
        ensure_free(SocketAddr::from(([127, 0, 0, 1], port)))?;
    }
    // As typed, for the `dev-token` line of the banner (run from here too).
    let data_dir_as_given = args.data_dir.clone();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    args.data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;
    let secrets = Secrets::load_or_create(&args.data_dir.join("secrets.toml"))?;

    let mut redis = if args.ha {
        let options = HaOptions {
            base_port: args.redis_port,
            ..HaOptions::default()
        };
        Redis::Ha(LocalHa::start(&args.data_dir.join("ha"), options).await?)
    } else {
        let redis = LocalRedis::start(args.redis_port, &args.data_dir.join("redis"))?;
        tracing::info!(
            port = args.redis_port,
            "redis-server up (appendonly, fsync always)"
        );
        Redis::Single(redis)
    };

    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let core_url = format!("http://{}", args.core_listen);
    let identity_url = format!("http://{identity_listen}");
    let mut parts: Vec<Part> = Vec::new();

    let result = async {
        parts.push(spawn(
            "core",
            redis
                .configure(&mut Command::new(&exe))
                .arg("core")
                .arg("--config")
                .arg(&args.config)
                .args(["--listen", &args.core_listen.to_string()])
                .env("CROWDGATE_SIGNING_KEYS", &secrets.signing_keys)
                .env("CROWDGATE_OPS_TOKENS", &secrets.ops_tokens)
                .env("CROWDGATE_EDGE_TOKENS", &secrets.edge_tokens),
        )?);
        wait_until_ok(&format!("{core_url}/healthz"), &mut parts).await?;

        seed_demo_accounts(&redis.config()?).await?;

        parts.push(spawn(
            "settle",
            redis
                .configure(&mut Command::new(&exe))
                .arg("settle")
                .args(["--metrics-listen", &args.settle_metrics.to_string()]),
        )?);
        parts.push(spawn(
            "dev-identity",
            Command::new(&exe)
                .arg("dev-identity")
                .args(["--listen", &identity_listen.to_string()])
                .arg("--dir")
                .arg(&args.data_dir)
                .args(["--issuer", &identity_url])
                .args(["--audience", &round_id])
                .args(["--return-to", &format!("http://{}/signin", args.listen)]),
        )?);
        wait_until_ok(&format!("{identity_url}/healthz"), &mut parts).await?;
        parts.push(spawn(
            "host",
            Command::new(&exe)
                .arg("host")
                .arg("--manifest")
                .arg(&args.manifest)
                .args(["--listen", &args.listen.to_string()])
                .args(["--metrics-listen", &args.host_metrics.to_string()])
                .env("SPIN_VARIABLE_CORE_URL", &core_url)
                .env("SPIN_VARIABLE_ROUND_ID", &round_id)
                .env("SPIN_VARIABLE_SIGNING_KEYS", &secrets.signing_keys)
                .env("SPIN_VARIABLE_EDGE_TOKEN", secrets.edge_token())
                .env("SPIN_VARIABLE_IDENTITY_ISSUER", &identity_url)
                .env("SPIN_VARIABLE_IDENTITY_AUDIENCE", &round_id)
                .env("SPIN_VARIABLE_IDENTITY_PROVIDER_URL", &identity_url)
                .env(
                    "SPIN_VARIABLE_IDENTITY_SIGN_IN_URL",
                    format!("{identity_url}/"),
                ),
        )?);
        wait_until_ok(&format!("http://{}/api/round", args.listen), &mut parts).await?;

        let dev_token = dev_token_command(&data_dir_as_given, &identity_url, &round_id);
        print_banner(&args, &round_id, &secrets, &identity_url, &dev_token);
        if let Redis::Ha(ha) = &redis {
            print_ha_banner(ha).await;
        }
        println!("Press Ctrl-C to stop.");
        supervise(&mut parts, &mut redis).await
    }
    .await;

    for part in parts.iter_mut().rev() {
        supervisor::terminate(&mut part.child, Duration::from_secs(10));
    }
    redis.stop();
    eprintln!(
        "crowdgate: stopped; data kept in {}",
        args.data_dir.display()
    );
    result
}

/// `path` as an absolute path, or a clear error if there is no such file.
pub(super) fn absolute_file(path: &Path, flag: &str) -> anyhow::Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{flag} {}: no such file (run `crowdgate up` from the repository root, or pass {flag})",
            path.display()
        );
    }
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

pub(super) fn spawn(name: &'static str, command: &mut Command) -> anyhow::Result<Part> {
    command.stdin(Stdio::null());
    supervisor::die_with_parent(command);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    Ok(Part { name, child })
}

/// Polls `url` until it answers 200, failing fast if a child died.
pub(super) async fn wait_until_ok(url: &str, parts: &mut [Part]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for part in parts.iter_mut() {
            if let Some(status) = part.child.try_wait()? {
                bail!(
                    "{} exited during startup ({status}); see its log above",
                    part.name
                );
            }
        }
        if let Ok(response) = client.get(url).timeout(Duration::from_secs(2)).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn seed_demo_accounts(config: &RedisConfig) -> anyhow::Result<()> {
    let redis = super::connect(config).await?;
    let accounts = crowdgate::demo::accounts();
    match crowdgate_settlement::accounts::open_accounts(&redis, &accounts).await {
        Ok(()) => tracing::info!(accounts = accounts.len(), "demo accounts opened"),
        // A re-run: the accounts (and whatever they have spent) are kept.
        Err(crowdgate_settlement::accounts::ImportError::AlreadyExist(_)) => {
            tracing::info!("demo accounts already exist; kept as they are")
        }
        Err(err) => return Err(err).context("seeding demo accounts"),
    }
    Ok(())
}

/// Waits for Ctrl-C/SIGTERM, or for a child to exit on its own (an error).
/// An HA set's dead processes are restarted instead ([`LocalHa::heal`]):
/// losing one is what it is for.
async fn supervise(parts: &mut [Part], redis: &mut Redis) -> anyhow::Result<()> {
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for part in parts.iter_mut() {
            if let Some(status) = part.child.try_wait()? {
                bail!(
                    "{} exited unexpectedly ({status}); stopping everything",
                    part.name
                );
            }
        }
        if let Redis::Ha(ha) = redis {
            ha.heal().await?;
        }
    }
}

fn ensure_free(addr: SocketAddr) -> anyhow::Result<()> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .with_context(|| format!("{addr} is in use: stop what is using it or choose another address (see `crowdgate up --help`)"))
}

/// How a person runs this binary from where `up` was started:
/// `$CROWDGATE_COMMAND` when set (`./dev up` sets `./dev crowdgate`), else
/// this executable's path (which runs whatever the `PATH`).
fn self_command() -> String {
    match std::env::var("CROWDGATE_COMMAND") {
        Ok(command) if !command.trim().is_empty() => command,
        _ => std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "crowdgate".into()),
    }
}

/// The `dev-token` command that signs for this `up`: only the flags whose
/// values differ from its defaults.
fn dev_token_command(data_dir: &Path, identity_url: &str, round: &str) -> String {
    let mut command = format!("{} dev-token demo-001", self_command());
    if data_dir != Path::new(".crowdgate") {
        command.push_str(&format!(" --dir {}", data_dir.display()));
    }
    if identity_url != "http://127.0.0.1:3001" {
        command.push_str(&format!(" --issuer {identity_url}"));
    }
    if round != "demo" {
        command.push_str(&format!(" --audience {round}"));
    }
    command
}

fn print_banner(
    args: &UpArgs,
    round: &str,
    secrets: &Secrets,
    identity_url: &str,
    dev_token: &str,
) {
    let token = secrets.first_ops_token();
    let data_dir = &args.data_dir;
    println!();
    println!("Crowdgate is up — round {round:?}.");
    println!("  Investors:  http://{}/", args.listen);
    println!();
    println!("  !! DEVELOPMENT IDENTITY PROVIDER IS ON: anyone can sign in as any investor.");
    println!("  !! For local development only; never run it in production.");
    println!("  Sign in:    {identity_url}/");
    println!("  Tokens:     {dev_token}");
    println!(
        "              curl -H \"Authorization: Bearer $({dev_token})\" -X POST http://{}/api/join",
        args.listen
    );
    println!();
    println!(
        "  Ops:        http://{}/ops  (dashboard; paste the token)",
        args.core_listen
    );
    println!("  Ops token:  {token}");
    // The command as it works here: name core's address when it is not
    // the one `ops` assumes.
    let core_flag = if args.core_listen.to_string() == "127.0.0.1:8080" {
        String::new()
    } else {
        format!(" --core-url http://{}", args.core_listen)
    };
    println!(
        "              CROWDGATE_OPS_TOKEN={token} {} ops status{core_flag}",
        self_command()
    );
    println!(
        "              curl -H 'Authorization: Bearer {token}' http://{}/ops/v1/rounds/{round}",
        args.core_listen
    );
    println!(
        "  Metrics:    http://{}/metrics  http://{}/metrics  http://{}/metrics",
        args.core_listen, args.host_metrics, args.settle_metrics
    );
    println!("  Demo investors: demo-001 … demo-200 (£5,000 each), demo-skint (£5)");
    println!("  Data:       {} (kept between runs)", data_dir.display());
}

/// The `--ha` part of the banner: who is what, and how to see a failover.
async fn print_ha_banner(ha: &LocalHa) {
    let primary = ha.primary_port().await;
    let master = ha.master_name();
    let sentinel = ha.ports().sentinels[0];
    println!();
    println!("  Redis HA (Sentinel master {master:?}); core and the worker follow the primary:");
    for node in ha.nodes() {
        let role = if Some(node.port) == primary {
            "primary"
        } else {
            "replica"
        };
        println!(
            "    {}  127.0.0.1:{}  {role:<7}  pid file {}",
            node.name(),
            node.port,
            node.pid_file().display()
        );
    }
    println!("    Sentinels  {}", ha.sentinel_addrs().join("  "));
    if let Some(node) = ha.nodes().iter().find(|node| Some(node.port) == primary) {
        println!("  Failover:   kill -9 $(cat {})", node.pid_file().display());
        println!(
            "              (the Sentinels promote a replica within a few seconds and writes resume; up"
        );
        println!("              then restarts the killed node as a replica of the new primary)");
    }
    println!("  Primary:    redis-cli -p {sentinel} SENTINEL get-master-addr-by-name {master}");
    println!(
        "              or `{} ops status` (see Ops above)",
        self_command()
    );
}
