//! The README's commands, typed as a newcomer would type them.
//!
//! Nothing the README tells a person to run goes untested: these tests copy
//! the working tree into a fresh directory (what git tracks, plus new files
//! it does not ignore: a fresh clone of this change) and run, from its root,
//! - `./dev up` exactly as written, with its default arguments and ports,
//!   then every command its banner prints and the day-to-day commands the
//!   README lists, each line as printed, with no `crowdgate` on the PATH;
//! - `./dev up --ha` exactly as written, and a kill -9 of its primary;
//! - `./dev rehearse` with the README's flags for a small rehearsal;
//! - the "Running the parts yourself" block line by line (only its ports
//!   changed, so it can run beside anything else).
//!
//! Each then behaves as an investor would: joins through the edge, waits to
//! be admitted, takes a pass, invests and sees the investment settle.
//!
//! `cargo test` holds cargo's build lock while tests run, and `./dev` builds
//! with cargo, so run these under `cargo nextest` (as `./dev test` does),
//! which builds first and releases the lock before running tests.

use crowdgate_tests::{Visitor, crowdgate_bin, free_port, target_dir, workspace_root};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ports `./dev up` uses by default (`crowdgate up --help`).
const UP_PORTS: [u16; 6] = [3000, 3001, 8080, 6390, 9101, 9102];

#[tokio::test(flavor = "multi_thread")]
async fn dev_up_as_the_readme_says_runs_a_round_end_to_end() {
    let (checkout, log, mut up, banner) = dev_up("dev-up", &[], &UP_PORTS).await;
    let ops_token = banner_line(&banner, "Ops token:");
    assert!(
        banner.contains("Investors:  http://127.0.0.1:3000/"),
        "{banner}"
    );
    assert!(
        checkout.join(".crowdgate/redis/appendonlydir").is_dir(),
        "Redis keeps its data under .crowdgate/ in the checkout"
    );

    // An investor, as the README describes: join, wait, invest, see it settle.
    invest_and_settle("http://127.0.0.1:3000", "http://127.0.0.1:3001", "demo-001").await;

    // Every command the banner prints, run as printed from the checkout
    // (nothing named `crowdgate` on the PATH, as on a fresh clone).
    let commands = banner_commands(&banner);
    assert_eq!(commands.len(), 4, "{commands:?}\n{banner}");
    for command in &commands {
        let (ok, out) = run_as_printed(&checkout, command, None);
        assert!(ok, "the banner's `{command}` failed:\n{out}");
        if command.contains("dev-token") && !command.starts_with("curl") {
            assert_eq!(out.trim().split('.').count(), 3, "a JWT: {out}");
        } else if command.contains("/api/join") {
            let joined: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|_| panic!("`{command}`: {out}"));
            assert_eq!(joined["status"]["investor_id"], "demo-001", "{joined}");
        } else {
            assert!(out.contains("demo"), "`{command}`: {out}");
        }
    }

    // The README's day-to-day commands, each line exactly as written.
    let readme = std::fs::read_to_string(checkout.join("README.md")).unwrap();
    let lines = sh_block_after(&readme, "## Day-to-day commands");
    assert!(
        lines.iter().any(|l| l.contains("ops set-rate 1200")),
        "{lines:?}"
    );
    std::fs::write(
        checkout.join("investors.csv"),
        "investor_id,balance_pence\nreadme-new-investor,250000\n",
    )
    .unwrap();
    for line in &lines {
        let command = line.split(" # ").next().unwrap().trim();
        let (ok, out) = run_as_printed(&checkout, command, Some(&ops_token));
        assert!(ok, "the README's `{command}` failed:\n{out}");
        if command.ends_with("ops set-rate 1200") {
            let (_, status) =
                run_as_printed(&checkout, "./dev crowdgate ops status", Some(&ops_token));
            assert!(status.contains("1200"), "{status}");
        } else if command.ends_with("ops status") {
            assert!(out.contains("demo"), "{out}");
        } else if command.contains("rounds create") {
            // Live at once, at the edge too.
            assert!(out.contains("create"), "{out}");
            let page = reqwest::get("http://127.0.0.1:3000/r/bond/").await.unwrap();
            assert_eq!(page.status(), 200);
            assert!(page.text().await.unwrap().contains("mini-bond"));
        } else if command.ends_with("rounds list") {
            assert!(out.contains("bond") && out.contains("demo"), "{out}");
        } else if command.ends_with("reconcile") {
            assert!(
                out.contains("round bond") && out.contains("OK: every account invariant holds"),
                "{out}"
            );
        } else if command.starts_with("curl") {
            // demo-001 holds a place already: the same one comes back.
            let joined: serde_json::Value =
                serde_json::from_str(&out).unwrap_or_else(|_| panic!("`{command}`: {out}"));
            assert_eq!(joined["status"]["investor_id"], "demo-001", "{joined}");
        }
    }

    // Ctrl-C stops everything and keeps the data.
    up.interrupt();
    let (success, output) = up.wait_exit(&log, Duration::from_secs(60)).await;
    assert!(success, "`./dev up` did not stop cleanly:\n{output}");
    assert!(output.contains("data kept in"), "{output}");
    for port in UP_PORTS {
        assert!(
            port_is_free(port),
            "port {port} still in use after Ctrl-C: a child outlived `./dev up`"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn running_the_parts_yourself_as_the_readme_says() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let lines = sh_block_after(&readme, "## Running the parts yourself");
    assert!(
        lines.iter().any(|l| l.starts_with("redis-server")),
        "the README's block lost its redis-server line: {lines:?}"
    );
    let (redis, core, edge, metrics) = (free_port(), free_port(), free_port(), free_port());
    let identity = free_port();
    let ports = |line: &str| {
        line.replace("6390", &redis.to_string())
            .replace("8080", &core.to_string())
            .replace("3000", &edge.to_string())
            .replace("3001", &identity.to_string())
            .replace("9102", &metrics.to_string())
    };

    let mut script = String::from(
        "set -euo pipefail\n\
         wait_port() { for _ in $(seq 1 1200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo \"nothing listens on $1\" >&2; exit 1; }\n",
    );
    for (n, line) in lines.iter().enumerate() {
        let line = ports(line);
        let listens_on = if line.starts_with("redis-server") {
            Some(redis)
        } else if line.contains("crowdgate core") {
            Some(core)
        } else if line.contains("crowdgate settle") {
            Some(metrics)
        } else if line.contains("crowdgate host") {
            Some(edge)
        } else if line.contains("crowdgate dev-identity") {
            Some(identity)
        } else {
            None
        };
        match listens_on {
            // A long-running part: its own "terminal", then wait until it serves.
            Some(port) => script.push_str(&format!(
                "( {line} ) > part-{n}.log 2>&1 &\nwait_port {port}\n"
            )),
            None => script.push_str(&format!("{line}\n")),
        }
    }
    script.push_str("echo ALL-PARTS-UP\nwait\n");

    let checkout = fresh_checkout("parts");
    let log = checkout.join("parts.log");
    // As on a fresh clone: no `crowdgate` on the PATH (the block runs it
    // through ./dev).
    let mut parts = Group::spawn(
        Command::new("bash")
            .args(["-c", &script])
            .current_dir(&checkout)
            .env("PATH", path_without_crowdgate())
            .env("CARGO_TARGET_DIR", target_dir()),
        &log,
    );
    parts
        .wait_for_output(&log, "ALL-PARTS-UP", Duration::from_secs(15 * 60))
        .await;
    invest_and_settle(
        &format!("http://127.0.0.1:{edge}"),
        &format!("http://127.0.0.1:{identity}"),
        "demo-003",
    )
    .await;
    assert!(
        checkout.join(".crowdgate/redis/appendonlydir").is_dir(),
        "the documented redis-server line keeps its data in .crowdgate/redis"
    );
    assert!(
        !checkout.join("appendonlydir").exists(),
        "redis-server wrote into the repository root"
    );
    drop(parts);
}

/// The ports `./dev up --ha` uses by default: the same, with the HA set's
/// three data nodes (6390–6392) and three Sentinels (6400–6402).
const UP_HA_PORTS: [u16; 11] = [
    3000, 3001, 8080, 9101, 9102, 6390, 6391, 6392, 6400, 6401, 6402,
];

/// `./dev up --ha` exactly as the README says, then what it invites: kill -9
/// the primary with the banner's line, watch `crowdgate ops status` name the
/// new primary, and invest again.
#[tokio::test(flavor = "multi_thread")]
async fn dev_up_ha_as_the_readme_says_survives_killing_the_primary() {
    let (checkout, log, mut up, banner) = dev_up("dev-up-ha", &["--ha"], &UP_HA_PORTS).await;
    let readme = std::fs::read_to_string(checkout.join("README.md")).unwrap();
    assert!(
        readme.contains("`./dev up --ha`"),
        "the README offers ./dev up --ha"
    );
    let ops_token = banner_line(&banner, "Ops token:");
    let kill_line = banner_line(&banner, "Failover:");
    invest_and_settle("http://127.0.0.1:3000", "http://127.0.0.1:3001", "demo-001").await;

    // As the README says to watch it.
    let ops_status = || run_as_printed(&checkout, "./dev crowdgate ops status", Some(&ops_token));
    let (ok, before) = ops_status();
    assert!(ok && before.contains("primary 127.0.0.1:6390"), "{before}");
    assert!(
        before.contains("127.0.0.1:6391 online") && before.contains("127.0.0.1:6392 online"),
        "{before}"
    );

    let killed = Command::new("bash")
        .args(["-c", &kill_line])
        .current_dir(&checkout)
        .status()
        .expect("bash runs");
    assert!(killed.success(), "{kill_line}");
    // The Sentinels promote a replica; `up` restarts the killed node as a
    // replica of it; ops status says so.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, after) = ops_status();
        let promoted =
            after.contains("primary 127.0.0.1:6391") || after.contains("primary 127.0.0.1:6392");
        if ok && promoted && after.contains("127.0.0.1:6390 online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failover seen in ops status within 60 s:\n{after}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    invest_and_settle("http://127.0.0.1:3000", "http://127.0.0.1:3001", "demo-003").await;
    let reconcile = Command::new(crowdgate_bin())
        .args([
            "reconcile",
            "--redis-sentinels",
            "127.0.0.1:6400,127.0.0.1:6401,127.0.0.1:6402",
        ])
        .current_dir(&checkout)
        .output()
        .expect("crowdgate runs");
    assert!(
        reconcile.status.success(),
        "{}{}",
        String::from_utf8_lossy(&reconcile.stdout),
        String::from_utf8_lossy(&reconcile.stderr)
    );

    up.interrupt();
    let (success, output) = up.wait_exit(&log, Duration::from_secs(60)).await;
    assert!(success, "`./dev up --ha` did not stop cleanly:\n{output}");
    for port in UP_HA_PORTS {
        assert!(
            port_is_free(port),
            "port {port} still in use after Ctrl-C: a child outlived `./dev up --ha`"
        );
    }
}

/// The README's small rehearsal, exactly as written, from a fresh checkout:
/// it passes, says so last, and leaves the report where the README says.
#[tokio::test(flavor = "multi_thread")]
async fn dev_rehearse_as_the_readme_says_passes_and_writes_its_report() {
    let checkout = fresh_checkout("dev-rehearse");
    let readme = std::fs::read_to_string(checkout.join("README.md")).unwrap();
    let line = sh_block_after(&readme, "**Rehearsing a round.**")
        .into_iter()
        .find(|line| line.starts_with("./dev rehearse --investors"))
        .expect("the README offers a small rehearsal");
    let command = line.split('#').next().unwrap().trim().to_string();
    let output = Command::new("bash")
        .args(["-c", &command])
        .current_dir(&checkout)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("CROWDGATE_OPS_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`{command}` failed:\n{stdout}\n{stderr}"
    );
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("PASS: "), "{stdout}");
    let report = std::fs::read_to_string(checkout.join("rehearsal-report/report.html"))
        .expect("the report is where the README says");
    assert!(
        report.contains(verdict.trim()),
        "the page carries the verdict"
    );
    assert!(checkout.join("rehearsal-report/report.json").is_file());
}

/// `./dev up <args>` from a fresh checkout named `name`, once `ports` (its
/// defaults) are free, up to its banner: (checkout, log, the process group,
/// the banner).
async fn dev_up(name: &str, args: &[&str], ports: &[u16]) -> (PathBuf, PathBuf, Group, String) {
    for &port in ports {
        assert!(
            port_is_free(port),
            "port {port} is in use: this test runs `./dev up {}` with its default ports; \
             stop whatever uses them (your own `./dev up`?) and run it again",
            args.join(" ")
        );
    }
    let checkout = fresh_checkout(name);
    let log = checkout.join(format!("{name}.log"));
    let mut up = Group::spawn(
        Command::new("./dev")
            .arg("up")
            .args(args)
            .current_dir(&checkout)
            .env("CARGO_TARGET_DIR", target_dir()),
        &log,
    );
    // A cold release build takes many minutes; `./dev test` builds first.
    let banner = up
        .wait_for_output(&log, "Press Ctrl-C to stop.", Duration::from_secs(30 * 60))
        .await;
    (checkout, log, up, banner)
}

/// What the banner line starting `label` says.
fn banner_line(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("the banner has no {label:?} line:\n{banner}"))
        .to_string()
}

/// The commands `./dev up`'s banner prints for a person to run: every line
/// (after its label, if any) that starts as a shell command does.
fn banner_commands(banner: &str) -> Vec<String> {
    banner
        .lines()
        .map(|line| {
            let line = line.trim();
            match line.split_once(':') {
                Some((label, rest))
                    if !label.contains(' ') && !label.contains('=') && rest.starts_with(' ') =>
                {
                    rest.trim()
                }
                _ => line,
            }
        })
        .filter(|line| {
            ["./dev ", "curl ", "CROWDGATE_OPS_TOKEN=", "crowdgate "]
                .iter()
                .any(|start| line.starts_with(start))
        })
        .map(str::to_string)
        .collect()
}

/// Runs `command` with bash in `checkout` as a person on a fresh clone
/// would: no `crowdgate` on the PATH (a folder holding one is left out),
/// the build where CI keeps it (`CARGO_TARGET_DIR`), and the ops token in
/// the environment when given. Returns (success, stdout and stderr).
fn run_as_printed(checkout: &Path, command: &str, ops_token: Option<&str>) -> (bool, String) {
    let mut bash = Command::new("bash");
    bash.args(["-c", command])
        .current_dir(checkout)
        .env("PATH", path_without_crowdgate())
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("CROWDGATE_OPS_TOKEN");
    if let Some(token) = ops_token {
        bash.env("CROWDGATE_OPS_TOKEN", token);
    }
    let output = bash.output().expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Commands whose output is parsed get their stdout alone.
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (
        output.status.success(),
        if output.status.success() {
            stdout
        } else {
            text
        },
    )
}

/// The PATH without any folder holding a `crowdgate`: a fresh clone's.
fn path_without_crowdgate() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let kept: Vec<&str> = path
        .split(':')
        .filter(|dir| !Path::new(dir).join("crowdgate").exists())
        .collect();
    kept.join(":")
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Signs in as `investor` on the development identity provider at
/// `provider` (one click, as the README promises), joins through the edge
/// at `edge`, waits to be admitted, takes a pass, invests £100 and waits
/// until it is settled.
async fn invest_and_settle(edge: &str, provider: &str, investor: &str) {
    let visitor = Visitor::anonymous(edge);
    let page = visitor.sign_in_with_provider(provider, investor).await;
    let name = match investor {
        "demo-001" => "Ada Lovelace",
        "demo-003" => "Grace Hopper",
        other => panic!("no demo name known for {other}"),
    };
    assert!(
        page.contains(&format!("Investing as {name}")),
        "the page names who is signed in: {page}"
    );
    let (code, investment) = visitor
        .invest_signed_in(10_000, &format!("readme-{investor}"))
        .await;
    assert_eq!(code, 201, "{investment}");
    assert_eq!(investment["investor_id"], investor, "{investment}");
    let id = investment["investment_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = visitor
            .http
            .get(format!("{edge}/api/investments/{id}"))
            .send()
            .await
            .unwrap();
        let (code, body) = crowdgate_tests::json_of(answer).await;
        assert_eq!(code, 200, "{body}");
        match body["status"].as_str() {
            Some("settled") => {
                assert_eq!(body["amount_pence"], 10_000);
                return;
            }
            Some("accepted") => {}
            _ => panic!("the investment did not settle: {body}"),
        }
        assert!(Instant::now() < deadline, "not settled in 60 s: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lines of the first ```sh block after `heading`.
fn sh_block_after(markdown: &str, heading: &str) -> Vec<String> {
    let section = &markdown[markdown
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))..];
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```sh block follows the heading");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The working tree as a fresh clone of it would be: tracked files and new
/// files git does not ignore, nothing built, no `.crowdgate/`.
///
/// It is laid out anew under the target directory with each file's
/// modification time kept: cargo keys build output by paths inside the
/// workspace and compares source times, so `./dev` there reuses what was
/// built here (a copy with fresh times would rebuild every crate of ours).
fn fresh_checkout(name: &str) -> PathBuf {
    let root = workspace_root();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(&root)
        .output()
        .expect("git runs");
    assert!(listed.status.success(), "git ls-files failed");
    let checkout = target_dir().join("readme-checkouts").join(name);
    if checkout.exists() {
        std::fs::remove_dir_all(&checkout).unwrap();
    }
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = Path::new(std::str::from_utf8(name).unwrap());
        let from = root.join(name);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = checkout.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap(); // keeps the mode: ./dev stays executable
        let modified = from.metadata().and_then(|m| m.modified()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&to)
            .and_then(|file| file.set_modified(modified))
            .unwrap();
    }
    checkout
}

/// A command run in its own process group, so every child it starts can be
/// signalled and nothing outlives the test.
struct Group {
    child: Child,
}

impl Group {
    fn spawn(command: &mut Command, log: &PathBuf) -> Group {
        let file = std::fs::File::create(log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("the command starts");
        Group { child }
    }

    /// Waits until the output contains `marker`; returns the output.
    async fn wait_for_output(&mut self, log: &Path, marker: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let output = std::fs::read_to_string(log).unwrap_or_default();
            if output.contains(marker) {
                return output;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {marker:?}:\n{output}");
            }
            assert!(
                Instant::now() < deadline,
                "no {marker:?} within {within:?}:\n{output}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ctrl-C, as a person at the terminal would.
    fn interrupt(&self) {
        // SAFETY: signalling our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGINT);
        }
    }

    /// Waits for the exit; returns (success, output).
    async fn wait_exit(&mut self, log: &Path, within: Duration) -> (bool, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (
                    status.success(),
                    std::fs::read_to_string(log).unwrap_or_default(),
                );
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {within:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: killing our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
