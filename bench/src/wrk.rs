//! Running `wrk` and reading its figures.

use crate::Args;
use anyhow::{Context, bail};
use std::path::Path;
use std::process::Command;

/// What wrk reported.
pub struct WrkFigures {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub non_2xx: u64,
}

/// A wrk script that sends each request (`method`, no body) with the next
/// token as a bearer token, cycling through `tokens`.
pub fn write_token_script(path: &Path, method: &str, tokens: &[String]) -> anyhow::Result<()> {
    let mut lua = String::from("local tokens = {\n");
    for token in tokens {
        lua.push_str(&format!("  \"{token}\",\n"));
    }
    lua.push_str(&format!(
        "}}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  \
         return wrk.format(\"{method}\", nil, {{ [\"Authorization\"] = \"Bearer \" .. tokens[i] }})\nend\n",
    ));
    std::fs::write(path, lua)?;
    Ok(())
}

pub fn wrk(args: &Args, url: &str, script: Option<&Path>) -> anyhow::Result<WrkFigures> {
    wrk_for(args, args.seconds, url, script)
}

/// [`wrk`] for `seconds` instead of `--seconds` (warm-ups are shorter).
pub fn wrk_for(
    args: &Args,
    seconds: u32,
    url: &str,
    script: Option<&Path>,
) -> anyhow::Result<WrkFigures> {
    eprintln!("wrk {url} ({seconds} s) …");
    let mut command = Command::new("wrk");
    command
        .args([
            "-t",
            &args.threads.to_string(),
            "-c",
            &args.connections.to_string(),
        ])
        .args(["-d", &format!("{seconds}s"), "--latency"]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command.arg(url).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<WrkFigures> {
    let mut figures = WrkFigures {
        requests_per_s: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        requests: 0,
        non_2xx: 0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => figures.requests_per_s = value.parse().ok()?,
            ["50%", value] => figures.p50_ms = millis(value)?,
            ["99%", value] => figures.p99_ms = millis(value)?,
            [count, "requests", "in", ..] => figures.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                figures.non_2xx = count.parse().ok()?
            }
            _ => {}
        }
    }
    (figures.requests > 0).then_some(figures)
}

/// wrk prints latencies as `512.00us`, `1.25ms` or `2.01s`.
fn millis(value: &str) -> Option<f64> {
    if let Some(us) = value.strip_suffix("us") {
        return us.parse::<f64>().ok().map(|v| v / 1000.0);
    }
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.parse().ok();
    }
    value
        .strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .map(|v| v * 1000.0)
}
