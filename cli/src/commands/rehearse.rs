//! `crowdgate rehearse`: rehearse a whole round before launch day.
//!
//! By default it starts a system of its own, as `crowdgate up` does but in a
//! fresh temporary directory on free ports (Redis, core, a settlement
//! worker, the Wasm edge trusting a platform key made for the rehearsal),
//! runs the scenario's round on it, and stops it. With `--edge` it
//! rehearses a running deployment instead, refusing a round that already
//! holds people or investments unless told `--i-know`.
//!
//! The rehearsal itself is [`crowdgate_rehearse`]; this module sets up the
//! target, writes the report (JSON and HTML) and turns the verdict into the
//! exit status.

use super::up::{Part, absolute_file, spawn, wait_until_ok};
use anyhow::{Context, bail};
use clap::Args;
use crowdgate::local_redis::LocalRedis;
use crowdgate::secrets::Secrets;
use crowdgate::supervisor;
use crowdgate_core::round_config::{ADMISSION_LIMITS, AdmissionSettings, RoundConfig, RoundTerms};
use crowdgate_identity::dev::DevSigner;
use crowdgate_protocol::money::pounds;
use crowdgate_rehearse::driver::Platform;
use crowdgate_rehearse::rehearsal::{self, Options, Target};
use crowdgate_rehearse::report::Report;
use crowdgate_rehearse::scenario::{Overrides, Scenario};
use crowdgate_rehearse::watch::OpsClient;
use crowdgate_store::RedisConfig;
use crowdgate_store::layout::round as R;
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The round a local rehearsal runs.
const LOCAL_ROUND: &str = "rehearsal";
/// The platform a local rehearsal's edge trusts.
const LOCAL_ISSUER: &str = "https://rehearsal.crowdgate.invalid";

#[derive(Args)]
pub struct RehearseArgs {
    /// The scenario (TOML).
    #[arg(long, default_value = "rehearsals/reference-round.toml")]
    pub scenario: PathBuf,
    /// How many investors (default: the scenario's). The round scales with
    /// them (the cap, the admission rate, max_active), so a small rehearsal
    /// has the full one's shape, unless --keep-round.
    #[arg(long)]
    pub investors: Option<u64>,
    /// Keep the scenario's cap, rate and max_active when --investors
    /// changes the size.
    #[arg(long)]
    pub keep_round: bool,
    /// Scenario seconds per wall second (default: the scenario's).
    #[arg(long)]
    pub compression: Option<f64>,
    /// Seed of who the investors are (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where report.json and report.html are written.
    #[arg(long, default_value = "rehearsal-report")]
    pub report_dir: PathBuf,

    /// Rehearse a broken setup: run the local system without its
    /// settlement worker (the verdict must fail: nothing settles).
    #[arg(long, conflicts_with = "edge")]
    pub no_settlement_worker: bool,
    /// Spin manifest of the local system's edge.
    #[arg(long, default_value = "spin.toml", conflicts_with = "edge")]
    pub manifest: PathBuf,
    /// Keep the local system's directory (data and logs) afterwards.
    #[arg(long, conflicts_with = "edge")]
    pub keep_data: bool,

    /// Rehearse a running deployment: its investor-facing edge URL.
    #[arg(long, requires_all = ["core_url", "ops_token", "identity_key"])]
    pub edge: Option<String>,
    /// The deployment's core (its ops API).
    #[arg(long, requires = "edge")]
    pub core_url: Option<String>,
    /// An ops token of the deployment.
    #[arg(long, env = "CROWDGATE_OPS_TOKEN", hide_env_values = true)]
    pub ops_token: Option<String>,
    /// The round to rehearse on (default: the one core serves).
    #[arg(long, requires = "edge")]
    pub round: Option<String>,
    /// The platform's identity signing key the edge trusts (PKCS#8
    /// Ed25519 private key, PEM), for signing the investors in.
    #[arg(long, requires = "edge")]
    pub identity_key: Option<PathBuf>,
    /// The issuer (`iss`) the edge expects.
    #[arg(long, requires = "edge")]
    pub identity_issuer: Option<String>,
    /// The audience (`aud`) the edge expects (default: the round id).
    #[arg(long, requires = "edge")]
    pub identity_audience: Option<String>,
    /// Rehearse even though the round already holds people or investments.
    #[arg(long, requires = "edge")]
    pub i_know: bool,
    #[command(flatten)]
    pub redis: super::RedisArgs,
}

pub async fn run(args: RehearseArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        investors: args.investors,
        compression: args.compression,
        seed: args.seed,
        scale_round: !args.keep_round,
    };
    if !args.scenario.is_file() {
        bail!(
            "--scenario {}: no such file (run crowdgate rehearse from the repository root, or pass --scenario)",
            args.scenario.display()
        );
    }
    let scenario = Scenario::load(&args.scenario)?.with(&overrides)?;
    // Before anything runs: a report directory that cannot be written fails
    // now, not after the rehearsal; and a report of an earlier run never
    // survives this one (a CI job reading it must not see an old PASS).
    clear_report(&args.report_dir)?;
    let bytes = std::fs::read(&args.scenario)
        .with_context(|| format!("cannot read the scenario {}", args.scenario.display()))?;
    let options = Options {
        progress: std::io::stderr().is_terminal(),
        i_know: args.i_know,
        deployment: args.edge.is_some(),
        scenario_file: (
            args.scenario.display().to_string(),
            format!("{:x}", Sha256::digest(&bytes)),
        ),
    };
    eprintln!(
        "crowdgate rehearse: {:?}, {} investors at {}× time compression",
        scenario.name,
        scenario.investors.count,
        scenario.compression()
    );
    let report = match &args.edge {
        Some(edge) => rehearse_deployment(&args, edge, &scenario, &options).await?,
        None => rehearse_locally(&args, &scenario, &options).await?,
    };
    let (json, html) = write_report(&report, &args.report_dir)?;
    print_summary(&report, &json, &html);
    if !report.verdict.passed {
        bail!("the rehearsal failed (the verdict above)");
    }
    Ok(())
}

/// Creates the report directory and removes an earlier run's report from it.
fn clear_report(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--report-dir {}: cannot create it", dir.display()))?;
    for name in ["report.json", "report.html"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("--report-dir {}: cannot replace {name}", dir.display())
                });
            }
        }
    }
    let probe = dir.join(".crowdgate-rehearse-probe");
    std::fs::write(&probe, b"")
        .with_context(|| format!("--report-dir {}: cannot write to it", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

async fn rehearse_deployment(
    args: &RehearseArgs,
    edge: &str,
    scenario: &Scenario,
    options: &Options,
) -> anyhow::Result<Report> {
    let (Some(core_url), Some(token), Some(key)) =
        (&args.core_url, &args.ops_token, &args.identity_key)
    else {
        bail!("--edge needs --core-url, --ops-token and --identity-key");
    };
    let round = match &args.round {
        Some(round) => round.clone(),
        None => served_round(core_url, token).await?,
    };
    let signer =
        DevSigner::load(key).with_context(|| format!("--identity-key {}", key.display()))?;
    let Some(issuer) = args.identity_issuer.clone() else {
        bail!("--identity-issuer: the issuer (iss) the deployment's edge expects");
    };
    let redis = args.redis.connect().await?;
    super::existing_round(&redis, &round).await?;
    let target = Target {
        label: edge.to_string(),
        edge_url: edge.to_string(),
        ops: OpsClient::new(core_url, &round, token)?,
        platform: Platform {
            signer,
            issuer,
            audience: args.identity_audience.clone().unwrap_or(round.clone()),
        },
        round,
        redis,
    };
    rehearsal::rehearse(scenario, &target, options).await
}

/// The round to rehearse: core's only round, or, when it runs several, the
/// round of its config file (`/healthz`), which `crowdgate up` starts
/// with (`GET /ops/v1/rounds`).
async fn served_round(core_url: &str, token: &str) -> anyhow::Result<String> {
    let url = format!("{}/ops/v1/rounds", core_url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach core at {url}"))?;
    if !response.status().is_success() {
        bail!(
            "core answered {} to {url}: check --ops-token",
            response.status()
        );
    }
    let body: serde_json::Value = response.json().await?;
    let rounds: Vec<String> = body["rounds"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| r["round"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match rounds.as_slice() {
        [] => bail!("core serves no round"),
        [only] => Ok(only.clone()),
        _ => {
            let health: serde_json::Value = reqwest::Client::new()
                .get(format!("{}/healthz", core_url.trim_end_matches('/')))
                .send()
                .await
                .with_context(|| format!("cannot reach core at {core_url}"))?
                .json()
                .await?;
            health["round"]
                .as_str()
                .filter(|round| rounds.iter().any(|r| r == round))
                .map(str::to_string)
                .with_context(|| {
                    format!(
                        "core runs {} rounds and names none of them its own",
                        rounds.len()
                    )
                })
        }
    }
}

/// A free loopback port (the children bind it a moment later).
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?)
}

async fn rehearse_locally(
    args: &RehearseArgs,
    scenario: &Scenario,
    options: &Options,
) -> anyhow::Result<Report> {
    let manifest = absolute_file(&args.manifest, "--manifest")?;
    let dir = tempfile::Builder::new()
        .prefix("crowdgate-rehearsal-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let data = dir.path().to_path_buf();
    let config = data.join("round.toml");
    std::fs::write(&config, round_config(scenario)?)?;
    let secrets = Secrets::load_or_create(&data.join("secrets.toml"))?;
    let signer = DevSigner::generate()?;
    let mut redis = LocalRedis::start(0, &data.join("redis"))?;
    let mut parts: Vec<Part> = Vec::new();
    let result = async {
        let (core, edge) = (free_port()?, free_port()?);
        let exe = std::env::current_exe().context("cannot find our own executable")?;
        let core_url = format!("http://{core}");
        let edge_url = format!("http://{edge}");
        let log = |name: &str| -> anyhow::Result<Stdio> {
            Ok(std::fs::File::create(data.join(format!("{name}.log")))?.into())
        };
        parts.push(spawn(
            "core",
            Command::new(&exe)
                .arg("core")
                .arg("--config")
                .arg(&config)
                .args(["--listen", &core.to_string()])
                .env("CROWDGATE_REDIS_URL", redis.url())
                .env_remove("CROWDGATE_REDIS_SENTINELS")
                .env("CROWDGATE_SIGNING_KEYS", &secrets.signing_keys)
                .env("CROWDGATE_OPS_TOKENS", &secrets.ops_tokens)
                .env("CROWDGATE_EDGE_TOKENS", &secrets.edge_tokens)
                .stdout(log("core")?)
                .stderr(log("core.err")?),
        )?);
        wait_until_ok(&format!("{core_url}/healthz"), &mut parts).await?;
        if !args.no_settlement_worker {
            parts.push(spawn(
                "settle",
                Command::new(&exe)
                    .arg("settle")
                    .args(["--round", LOCAL_ROUND])
                    .env("CROWDGATE_REDIS_URL", redis.url())
                    .env_remove("CROWDGATE_REDIS_SENTINELS")
                    .stdout(log("settle")?)
                    .stderr(log("settle.err")?),
            )?);
        }
        parts.push(spawn(
            "host",
            Command::new(&exe)
                .arg("host")
                .arg("--manifest")
                .arg(&manifest)
                .args(["--listen", &edge.to_string()])
                .env("SPIN_VARIABLE_CORE_URL", &core_url)
                .env("SPIN_VARIABLE_ROUND_ID", LOCAL_ROUND)
                .env("SPIN_VARIABLE_SIGNING_KEYS", &secrets.signing_keys)
                .env("SPIN_VARIABLE_EDGE_TOKEN", secrets.edge_token())
                .env("SPIN_VARIABLE_IDENTITY_ISSUER", LOCAL_ISSUER)
                .env("SPIN_VARIABLE_IDENTITY_AUDIENCE", LOCAL_ROUND)
                .env("SPIN_VARIABLE_IDENTITY_JWKS", signer.jwks_json())
                .env(
                    "SPIN_VARIABLE_IDENTITY_SIGN_IN_URL",
                    format!("{LOCAL_ISSUER}/sign-in"),
                )
                .stdout(log("host")?)
                .stderr(log("host.err")?),
        )?);
        wait_until_ok(&format!("{edge_url}/api/round"), &mut parts).await?;
        let redis_handle = super::connect(&RedisConfig::single(&redis.url())).await?;
        let target = Target {
            label: "local".to_string(),
            edge_url,
            ops: OpsClient::new(&core_url, LOCAL_ROUND, secrets.first_ops_token())?,
            round: LOCAL_ROUND.to_string(),
            platform: Platform {
                signer,
                issuer: LOCAL_ISSUER.to_string(),
                audience: LOCAL_ROUND.to_string(),
            },
            redis: redis_handle,
        };
        let report = tokio::select! {
            report = rehearsal::rehearse(scenario, &target, options) => report?,
            _ = super::shutdown_signal() => bail!("interrupted: no report written"),
        };
        for part in parts.iter_mut() {
            if let Some(status) = part.child.try_wait()? {
                bail!(
                    "{} exited during the rehearsal ({status}); its log is in {}",
                    part.name,
                    data.display()
                );
            }
        }
        Ok(report)
    }
    .await;
    if result.is_err() {
        show_logs_of_the_dead(&mut parts, &data);
    }
    for part in parts.iter_mut().rev() {
        supervisor::terminate(&mut part.child, Duration::from_secs(10));
    }
    redis.stop();
    if args.keep_data || result.is_err() {
        let kept = dir.keep();
        eprintln!(
            "crowdgate rehearse: the system's data and logs are in {}",
            kept.display()
        );
    }
    result
}

/// The last lines each part that exited wrote, on stderr: why it stopped.
fn show_logs_of_the_dead(parts: &mut [Part], dir: &Path) {
    for part in parts.iter_mut() {
        if !matches!(part.child.try_wait(), Ok(Some(_))) {
            continue;
        }
        for log in [
            format!("{}.err.log", part.name),
            format!("{}.log", part.name),
        ] {
            let Ok(text) = std::fs::read_to_string(dir.join(&log)) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                continue;
            }
            eprintln!("--- the last lines of {} ({log}):", part.name);
            for line in &lines[lines.len().saturating_sub(15)..] {
                eprintln!("    {line}");
            }
        }
    }
}

/// The local round: the scenario's terms, scheduled (the rehearsal sets
/// the opening time once everything is up), admission compressed.
fn round_config(scenario: &Scenario) -> anyhow::Result<String> {
    let r = &scenario.round;
    let a = scenario.compressed_admission();
    let mut admission = AdmissionSettings {
        rate_per_minute: a.rate_per_minute,
        batch_interval_ms: a.batch_interval_ms,
        max_active: a.max_active,
        pass_ttl_seconds: a.pass_ttl_seconds,
        claim_window_seconds: a.claim_window_seconds,
    };
    // Compressed values within what core accepts (a pass lasts at least
    // 30 s, say): the nearest allowed value.
    for (field, min, max) in ADMISSION_LIMITS {
        let value = match field {
            R::RATE_PER_MINUTE => &mut admission.rate_per_minute,
            R::BATCH_INTERVAL_MS => &mut admission.batch_interval_ms,
            R::MAX_ACTIVE => &mut admission.max_active,
            R::PASS_TTL_SECONDS => &mut admission.pass_ttl_seconds,
            _ => continue,
        };
        *value = (*value).clamp(min, max);
    }
    // Far enough ahead never to open by itself before the rehearsal
    // schedules the real opening.
    let placeholder = std::time::SystemTime::now() + Duration::from_secs(24 * 3600);
    let config = RoundConfig {
        round: RoundTerms {
            id: LOCAL_ROUND.to_string(),
            name: scenario.name.clone(),
            identity: None,
            cap_pence: r.cap_pence,
            min_investment_pence: r.min_investment_pence,
            max_investment_pence: r.max_investment_pence,
            share_price_pence: r.share_price_pence,
            initial_phase: None,
            opens_at: Some(humantime::format_rfc3339_seconds(placeholder).to_string()),
            closes_at: None,
        },
        admission,
    };
    Ok(toml::to_string(&config)?)
}

fn write_report(report: &Report, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    let json = dir.join("report.json");
    let html = dir.join("report.html");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    std::fs::write(&html, crowdgate_rehearse::html::render(report))
        .with_context(|| format!("cannot write {}", html.display()))?;
    Ok((json, html))
}

fn print_summary(report: &Report, json: &Path, html: &Path) {
    let o = &report.outcome;
    let w = &report.wait_estimate;
    let f = &report.sell_out_forecast;
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}%"));
    println!();
    println!(
        "time to sell out      {}",
        o.time_to_sell_out_seconds
            .map_or("did not sell out".to_string(), |s| format!(
                "{} (round time; {:.1} s wall)",
                crowdgate_rehearse::analysis::round_time(s),
                o.time_to_sell_out_wall_seconds.unwrap_or(0.0)
            ))
    );
    println!(
        "raised                {} of {} from {} investments ({} settled, {} failed)",
        pounds(o.raised_pence),
        pounds(o.cap_pence),
        o.accepted_investments,
        o.settled,
        o.failed_settlements
    );
    println!(
        "peak                  {} accepted investments/s, {} investment calls/s",
        o.peak_accepted_per_second, o.peak_invest_calls_per_second
    );
    for l in &report.latency {
        println!(
            "latency {:<13} p50 {:.1} ms  p99 {:.1} ms  ({} calls)",
            l.endpoint, l.p50_ms, l.p99_ms, l.count
        );
    }
    let unexpected: u64 = report
        .errors
        .iter()
        .filter(|e| !e.designed)
        .map(|e| e.count)
        .sum();
    let designed: u64 = report
        .errors
        .iter()
        .filter(|e| e.designed)
        .map(|e| e.count)
        .sum();
    println!(
        "errors                {designed} designed (retried or refused by design), {unexpected} unexpected"
    );
    println!(
        "wait estimate         median error {}, p90 {} ({} investors)",
        pct(w.median_error_percent),
        pct(w.p90_error_percent),
        w.samples
    );
    println!(
        "sell-out forecast     {} told ({} left, {} would have got in); {} waited until sell-out untold",
        f.told, f.told_and_left, f.told_but_would_have_got_in, f.waited_until_sell_out_untold
    );
    println!("wall time             {:.1} s", report.wall_seconds);
    println!(
        "report                {} and {}",
        html.display(),
        json.display()
    );
    if report.verdict.problems.len() > 1 {
        println!("problems:");
        for problem in &report.verdict.problems {
            println!("  - {problem}");
        }
    }
    println!("{}", report.verdict.line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_round_is_a_config_core_accepts_with_the_compressed_admission() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rehearsals/reference-round.toml");
        let scenario = Scenario::load(&path).unwrap();
        let written = round_config(&scenario).unwrap();
        let config = RoundConfig::parse(&written).expect("core accepts the written round");
        let a = scenario.compressed_admission();
        assert_eq!(config.round.id, LOCAL_ROUND);
        assert_eq!(config.round.name, scenario.name);
        assert_eq!(config.round.cap_pence, scenario.round.cap_pence);
        assert_eq!(config.admission.rate_per_minute, a.rate_per_minute);
        assert_eq!(
            config.admission.claim_window_seconds,
            a.claim_window_seconds
        );
        // Compressed under core's 30 s minimum, a pass lasts 30 s.
        assert_eq!(config.admission.pass_ttl_seconds, 30);
        assert!(config.opens_at_ms().is_some(), "scheduled: {written}");
    }
}
