//! Host CPU time per request, endpoint by endpoint, for this build's host
//! and (with `--baseline-bin`) another build's, measured side by side.
//!
//! Requests per second swing with whatever else the shared machine is
//! doing; the CPU time the host process spends per request barely does, so
//! this is the figure to compare builds by. For each endpoint, wrk loads
//! one host at a time; the host's user + system time is read from
//! `/proc/<pid>/stat` before and after, and divided by the requests wrk
//! counted. Both hosts serve the same `spin.toml` against the same core and
//! Redis (so they see the same queue), and take turns endpoint by endpoint,
//! so a noisy minute hits both alike.
//!
//! The endpoints: the trivial component (`GET /hello` of the host-probe
//! component, on a host of its own: the host's fixed cost per request), a
//! status poll, the round totals, the page signed out, and a signed-in
//! investor joining again (identity check + one call to core; core's CPU
//! per request is shown too), and an investment through the edge (pass
//! check + one call to core, which runs the invest script).

use crate::Args;
use crate::edge::join_many;
use crate::wrk::{WrkFigures, write_token_script, wrk_for};
use anyhow::{Context, bail};
use crowdgate_tests::{
    EDGE_TOKEN, Proc, ROUND, RoundOptions, SIGNING_KEYS, System, identity_env, identity_token,
    pass_token, ticket_token, wait_for, workspace_root,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Investors queued (through core) before the loads: their tickets are
/// polled, and they are the signed-in investors joining again.
const INVESTORS: usize = 5_000;
/// Seconds of load before each measured run (not counted): the host's
/// instance slots and connections are warm when the measurement starts.
const WARM_UP_SECONDS: u32 = 2;

/// One endpoint of the table and the µs per request it should reach.
struct Endpoint {
    name: &'static str,
    /// The path on the edge (the trivial component's on the probe host).
    path: &'static str,
    /// The wrk script (bearer tokens), if any.
    script: Option<PathBuf>,
    /// Served by the probe host rather than the application's.
    trivial: bool,
    /// Also report core's CPU per request.
    core: bool,
    /// The goal, when there is one.
    goal_us: Option<f64>,
}

/// One host build under test: its application host and probe host.
struct Build {
    label: String,
    host: Proc,
    edge_url: String,
    probe: Proc,
    probe_url: String,
}

/// CPU per request of one load on one host.
struct Measured {
    host_us: f64,
    core_us: Option<f64>,
    wrk: WrkFigures,
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    crate::require("wrk", "sudo apt-get install wrk")?;
    let system = System::start(RoundOptions {
        // Slow admission: the polled visitors keep waiting.
        rate_per_minute: 60,
        // Room for every investment of every run.
        cap_pence: 1_000_000_000_000,
        max_investment_pence: 1_000_000_000_000,
        ..Default::default()
    })
    .await;
    let places = join_many(&system.core_url, "cpu-investor", INVESTORS).await?;
    let dir = tempfile::tempdir()?;
    let status_script = dir.path().join("status.lua");
    let tickets: Vec<String> = places
        .iter()
        .map(|p| ticket_token(&p.ticket_id, p.number, &p.investor))
        .collect();
    write_token_script(&status_script, "GET", &tickets)?;
    eprintln!("minting {INVESTORS} identity tokens…");
    let identities: Vec<String> = places.iter().map(|p| identity_token(&p.investor)).collect();
    let join_script = dir.path().join("join.lua");
    write_token_script(&join_script, "POST", &identities)?;
    let passes: Vec<String> = places
        .iter()
        .enumerate()
        .map(|(n, p)| pass_token(&format!("cpu-ticket-{n}"), n as u64 + 1, &p.investor))
        .collect();
    let invest_script = dir.path().join("invest.lua");
    write_invest_script(&invest_script, &passes)?;

    let endpoints = [
        Endpoint {
            name: "trivial component (GET /hello, host-probe)",
            path: "/hello",
            script: None,
            trivial: true,
            core: false,
            goal_us: Some(60.0),
        },
        Endpoint {
            name: "status poll (GET /api/status)",
            path: "/api/status",
            script: Some(status_script),
            trivial: false,
            core: false,
            goal_us: Some(100.0),
        },
        Endpoint {
            name: "round totals (GET /api/round)",
            path: "/api/round",
            script: None,
            trivial: false,
            core: false,
            goal_us: Some(80.0),
        },
        Endpoint {
            name: "the page, signed out (GET /)",
            path: "/",
            script: None,
            trivial: false,
            core: false,
            goal_us: Some(150.0),
        },
        Endpoint {
            name: "join again, signed in (POST /api/join)",
            path: "/api/join",
            script: Some(join_script),
            trivial: false,
            core: true,
            goal_us: Some(300.0),
        },
        Endpoint {
            name: "investment (POST /api/investments, edge component)",
            path: "/api/investments",
            script: Some(invest_script),
            trivial: false,
            core: true,
            goal_us: None,
        },
    ];

    let mut bins = Vec::new();
    if let Some(baseline) = &args.baseline_bin {
        let target = args.baseline_target_dir.clone();
        bins.push(("baseline".to_string(), baseline.clone(), target));
    }
    bins.push((
        "this build".to_string(),
        crowdgate_tests::crowdgate_bin(),
        None,
    ));
    let mut builds = Vec::new();
    for (label, bin, target) in bins {
        let build = start_build(&system, dir.path(), label, &bin, target.as_deref()).await?;
        builds.push(build);
    }

    // rows[endpoint][build]
    let mut rows: Vec<Vec<Measured>> = Vec::new();
    for endpoint in &endpoints {
        let mut row = Vec::new();
        for build in &builds {
            let (host, base) = if endpoint.trivial {
                (&build.probe, &build.probe_url)
            } else {
                (&build.host, &build.edge_url)
            };
            let url = format!("{base}{}", endpoint.path);
            let script = endpoint.script.as_deref();
            wrk_for(args, WARM_UP_SECONDS, &url, script)?;
            let core = endpoint.core.then_some(&system.core);
            row.push(measure(args, host, core, &url, script)?);
        }
        rows.push(row);
    }

    print_table(args, &endpoints, &builds, &rows);
    Ok(())
}

/// Starts `bin`'s host serving the repository's `spin.toml` against
/// `system`'s core, and a probe host serving the trivial component; with
/// `target`, both serve the components built there.
async fn start_build(
    system: &System,
    dir: &Path,
    label: String,
    bin: &Path,
    target: Option<&Path>,
) -> anyhow::Result<Build> {
    if !bin.is_file() {
        bail!("{} is not a file", bin.display());
    }
    let target = target.map_or_else(crowdgate_tests::target_dir, Path::to_path_buf);
    let probe_wasm = target.join("wasm32-wasip2/component/host_probe.wasm");
    if !probe_wasm.is_file() {
        bail!("{} is missing", probe_wasm.display());
    }
    let name = label.replace(' ', "-");
    // Quiet per-request logs, but keep the line naming the address.
    let log = "warn,crowdgate::commands::host=info";
    let mut host = Proc::spawn(
        &format!("host-{name}"),
        Command::new(bin)
            .arg("host")
            .arg("--manifest")
            .arg(workspace_root().join("spin.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", log)
            .env("SPIN_VARIABLE_CORE_URL", &system.core_url)
            .env("SPIN_VARIABLE_ROUND_ID", ROUND)
            .env("SPIN_VARIABLE_SIGNING_KEYS", SIGNING_KEYS)
            .env("SPIN_VARIABLE_EDGE_TOKEN", EDGE_TOKEN)
            // spin.toml's component paths under target/ follow it.
            .env("CARGO_TARGET_DIR", &target)
            .envs(identity_env()),
        dir,
    );
    let edge_url = format!(
        "http://{}",
        host.listening_addr("edge host listening").await
    );
    wait_for(&format!("{edge_url}/api/round"), &mut [&mut host]).await;

    let manifest = dir.join(format!("probe-{name}.toml"));
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"{}\"\n",
            probe_wasm.display()
        ),
    )?;
    let mut probe = Proc::spawn(
        &format!("probe-{name}"),
        Command::new(bin)
            .arg("host")
            .arg("--manifest")
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", log),
        dir,
    );
    let probe_url = format!(
        "http://{}",
        probe.listening_addr("edge host listening").await
    );
    wait_for(&format!("{probe_url}/hello"), &mut [&mut probe]).await;
    eprintln!(
        "{label}: {} (host {edge_url}, probe {probe_url})",
        bin.display()
    );
    Ok(Build {
        label,
        host,
        edge_url,
        probe,
        probe_url,
    })
}

/// A wrk script investing 10.00 with the next pass each time, under an
/// Idempotency-Key no other request of the whole bench uses (each wrk
/// thread and each run has its own prefix), so each is a new investment.
fn write_invest_script(path: &Path, passes: &[String]) -> anyhow::Result<()> {
    let mut lua = String::from("local passes = {\n");
    for pass in passes {
        lua.push_str(&format!("  \"{pass}\",\n"));
    }
    lua.push_str(
        "}\nlocal threads = 0\n\
         setup = function(thread)\n  threads = threads + 1\n  thread:set(\"tid\", threads)\nend\n\
         local i = 0\nlocal run = nil\n\
         request = function()\n  \
           if run == nil then run = tostring(os.time()) .. \"-\" .. tostring(tid) .. \"-\" .. tostring(math.random(1, 1000000000)) end\n  \
           i = i + 1\n  \
           local pass = passes[(i % #passes) + 1]\n  \
           return wrk.format(\"POST\", nil, { [\"Authorization\"] = \"Bearer \" .. pass, \
             [\"Idempotency-Key\"] = run .. \"-\" .. i, [\"Content-Type\"] = \"application/json\" }, \
             '{\"amount_pence\":1000}')\nend\n",
    );
    std::fs::write(path, lua)?;
    Ok(())
}

/// One measured wrk run of `url`: `host`'s (and `core`'s) CPU per request.
fn measure(
    args: &Args,
    host: &Proc,
    core: Option<&Proc>,
    url: &str,
    script: Option<&Path>,
) -> anyhow::Result<Measured> {
    let core_before = core.map(|c| cpu_time(c.pid())).transpose()?;
    let before = cpu_time(host.pid())?;
    let wrk = wrk_for(args, args.seconds, url, script)?;
    let host_cpu = cpu_time(host.pid())? - before;
    let core_cpu = match (core, core_before) {
        (Some(core), Some(before)) => Some(cpu_time(core.pid())? - before),
        _ => None,
    };
    let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / wrk.requests.max(1) as f64;
    Ok(Measured {
        host_us: per_request(host_cpu),
        core_us: core_cpu.map(per_request),
        wrk,
    })
}

/// User + system CPU time `pid` has used (all its threads), from
/// `/proc/<pid>/stat` (fields 14 and 15, in clock ticks).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from after it.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .context("unexpected /proc stat format")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|v| v.parse().ok())
            .context("unexpected /proc stat format")
    };
    // Field 3 (the state) is index 0 here, so field 14 is index 11.
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok(Duration::from_secs_f64(total as f64 / per_second as f64))
}

fn print_table(args: &Args, endpoints: &[Endpoint], builds: &[Build], rows: &[Vec<Measured>]) {
    println!(
        "### Host CPU per request (wrk, {} threads, {} connections, {} s per endpoint and build)\n",
        args.threads, args.connections, args.seconds
    );
    let mut head = String::from("| endpoint | goal µs |");
    let mut rule = String::from("|---|---:|");
    for build in builds {
        head.push_str(&format!(" {0} µs | {0} req/s | {0} non-2xx |", build.label));
        rule.push_str("---:|---:|---:|");
    }
    println!("{head}\n{rule}");
    for (endpoint, row) in endpoints.iter().zip(rows) {
        let goal = endpoint
            .goal_us
            .map_or_else(|| "—".to_string(), |g| format!("{g:.0}"));
        let mut line = format!("| {} | {goal} |", endpoint.name);
        for m in row {
            let core = m
                .core_us
                .map(|c| format!(" (+{c:.0} in core)"))
                .unwrap_or_default();
            line.push_str(&format!(
                " {:.0}{core} | {:.0} | {} |",
                m.host_us, m.wrk.requests_per_s, m.wrk.non_2xx
            ));
        }
        println!("{line}");
    }
    println!();
    println!(
        "host CPU µs per request = (utime + stime of the host process, /proc/<pid>/stat) ÷ requests wrk counted; \
         {INVESTORS} investors queued, each polled / joining again in turn; builds: {}",
        builds
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
}
