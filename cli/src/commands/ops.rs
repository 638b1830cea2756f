//! `crowdgate ops ...`: live control of a round through core's ops API.
//!
//! Every verb is one HTTP call to core (`--core-url`) with the ops bearer
//! token (`--token` or `CROWDGATE_OPS_TOKEN`). Output is for people by
//! default; `--json` prints core's answer as it came. Failures say what to
//! fix. See docs/OPS.md.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Args)]
pub struct OpsArgs {
    /// Base URL of core.
    #[arg(
        long,
        global = true,
        env = "CROWDGATE_CORE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub core_url: String,
    /// Ops bearer token (the one `crowdgate up` printed).
    #[arg(
        long,
        global = true,
        env = "CROWDGATE_OPS_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Round id.
    #[arg(long, global = true, default_value = "demo")]
    pub round: String,
    /// Print core's JSON answer instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: OpsCommand,
}

#[derive(Subcommand)]
pub enum OpsCommand {
    /// Live figures: phase, queue, admission, money, settlement.
    Status,
    /// Set how many people are admitted per minute (and optionally the other
    /// admission settings).
    SetRate {
        /// People admitted per minute (0 stops admission without pausing).
        per_minute: u64,
        /// One batch every this many milliseconds (100–60000).
        #[arg(long)]
        batch_interval_ms: Option<u64>,
        /// Most investors holding a live pass at once.
        #[arg(long)]
        max_active: Option<u64>,
        /// How long a pass lasts, seconds (30–86400).
        #[arg(long)]
        pass_ttl_seconds: Option<u64>,
    },
    /// Stop admitting people (open → paused). Passes already given stay valid.
    Pause,
    /// Admit people again (paused → open).
    Resume,
    /// Open a scheduled round now, or at `--at`.
    Open {
        /// RFC 3339 time, e.g. 2026-12-01T10:00:00Z.
        #[arg(long)]
        at: Option<String>,
    },
    /// Close the round for good: no more investments.
    Close,
    /// Set the cap in pence; must leave room above what is raised for the smallest investment. A full
    /// round reopens.
    SetCap {
        /// The new cap, pence.
        cap_pence: i64,
    },
    /// Recent ops changes, newest first.
    Audit {
        /// How many entries (1–1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The deployment's rounds: list, create from a round file, archive.
    Rounds {
        #[command(subcommand)]
        command: RoundsCommand,
    },
}

#[derive(Subcommand)]
pub enum RoundsCommand {
    /// Every live round with its phase, raised against cap, queue and rate.
    List {
        /// Also list archived rounds.
        #[arg(long)]
        archived: bool,
    },
    /// Create a round from a round file (the TOML `crowdgate.toml` has).
    /// Every core serves it at once; no restart.
    Create {
        /// The round file.
        file: std::path::PathBuf,
    },
    /// Change the terms of a round that has not opened (`--round`); each
    /// is checked with the round's other terms, as in a round file.
    Edit {
        /// Shown to investors.
        #[arg(long)]
        name: Option<String>,
        /// `required` (signed-in investors) or `anonymous`.
        #[arg(long)]
        identity: Option<String>,
        /// The most the round may raise, pence.
        #[arg(long)]
        cap_pence: Option<i64>,
        /// The smallest investment, pence.
        #[arg(long)]
        min_investment_pence: Option<i64>,
        /// The most one investor may invest in the round, pence.
        #[arg(long)]
        max_investment_pence: Option<i64>,
        /// Amounts must be whole shares of this price, pence.
        #[arg(long)]
        share_price_pence: Option<i64>,
        /// When it closes, RFC 3339 (e.g. 2027-03-01T16:00:00Z); `none` for
        /// no closing time.
        #[arg(long)]
        closes_at: Option<String>,
    },
    /// Archive a closed round (`--round`): it leaves the list and is no
    /// longer driven; its records and books stay.
    Archive,
}

pub async fn run(args: OpsArgs) -> anyhow::Result<()> {
    let client = OpsClient::new(&args)?;
    let round = &args.round;
    let (method, path, body) = match &args.command {
        OpsCommand::Status => (reqwest::Method::GET, format!("rounds/{round}"), None),
        OpsCommand::SetRate {
            per_minute,
            batch_interval_ms,
            max_active,
            pass_ttl_seconds,
        } => {
            let mut body = json!({ "rate_per_minute": per_minute });
            for (name, value) in [
                ("batch_interval_ms", batch_interval_ms),
                ("max_active", max_active),
                ("pass_ttl_seconds", pass_ttl_seconds),
            ] {
                if let Some(v) = value {
                    body[name] = json!(v);
                }
            }
            (
                reqwest::Method::PATCH,
                format!("rounds/{round}/admission"),
                Some(body),
            )
        }
        OpsCommand::Pause => (
            reqwest::Method::POST,
            format!("rounds/{round}/pause"),
            Some(json!({})),
        ),
        OpsCommand::Resume => (
            reqwest::Method::POST,
            format!("rounds/{round}/resume"),
            Some(json!({})),
        ),
        OpsCommand::Open { at } => {
            let body = match at {
                Some(at) => json!({ "opens_at": at }),
                None => json!({}),
            };
            (
                reqwest::Method::POST,
                format!("rounds/{round}/open"),
                Some(body),
            )
        }
        OpsCommand::Close => (
            reqwest::Method::POST,
            format!("rounds/{round}/close"),
            Some(json!({})),
        ),
        OpsCommand::SetCap { cap_pence } => (
            reqwest::Method::PUT,
            format!("rounds/{round}/cap"),
            Some(json!({ "cap_pence": cap_pence })),
        ),
        OpsCommand::Audit { limit } => (
            reqwest::Method::GET,
            format!("rounds/{round}/audit?limit={limit}"),
            None,
        ),
        OpsCommand::Rounds { command } => match command {
            RoundsCommand::List { archived } => (
                reqwest::Method::GET,
                format!("rounds?archived={archived}"),
                None,
            ),
            RoundsCommand::Create { file } => {
                // Checked here first, so a mistake names the file's line.
                let config = crowdgate_core::RoundConfig::load(file)?;
                (
                    reqwest::Method::POST,
                    "rounds".to_string(),
                    Some(serde_json::to_value(&config)?),
                )
            }
            RoundsCommand::Edit {
                name,
                identity,
                cap_pence,
                min_investment_pence,
                max_investment_pence,
                share_price_pence,
                closes_at,
            } => {
                let mut body = serde_json::Map::new();
                let mut put = |field: &str, value: Option<Value>| {
                    if let Some(value) = value {
                        body.insert(field.to_string(), value);
                    }
                };
                put("name", name.clone().map(Value::from));
                put("identity", identity.clone().map(Value::from));
                put("cap_pence", cap_pence.map(Value::from));
                put(
                    "min_investment_pence",
                    min_investment_pence.map(Value::from),
                );
                put(
                    "max_investment_pence",
                    max_investment_pence.map(Value::from),
                );
                put("share_price_pence", share_price_pence.map(Value::from));
                put(
                    "closes_at",
                    closes_at.clone().map(|t| match t.as_str() {
                        "none" => Value::Null,
                        _ => Value::from(t),
                    }),
                );
                if body.is_empty() {
                    anyhow::bail!(
                        "nothing to edit: give at least one of --name, --identity, --cap-pence, --min-investment-pence, --max-investment-pence, --share-price-pence, --closes-at"
                    );
                }
                (
                    reqwest::Method::PATCH,
                    format!("rounds/{round}"),
                    Some(Value::Object(body)),
                )
            }
            RoundsCommand::Archive => (
                reqwest::Method::POST,
                format!("rounds/{round}/archive"),
                Some(json!({})),
            ),
        },
    };
    let answer = client.call(method, &path, body).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    match &args.command {
        OpsCommand::Status => print!("{}", render_status(&answer)),
        OpsCommand::Rounds {
            command: RoundsCommand::List { .. },
        } => print!("{}", render_rounds(&answer)),
        OpsCommand::Rounds {
            command: RoundsCommand::Create { .. },
        } => {
            let id = answer["round"].as_str().unwrap_or("?");
            let new = &answer["applied"]["new"];
            println!(
                "created round {id} ({}): {} at the edge's /r/{id}/; audited as entry {}",
                new["name"].as_str().unwrap_or(""),
                new["phase"].as_str().unwrap_or("?"),
                answer["applied"]["id"].as_str().unwrap_or("?")
            );
        }
        OpsCommand::Rounds {
            command: RoundsCommand::Archive,
        } if !answer["applied"].is_null() => {
            println!(
                "archived round {round}: no longer listed or run; its records and books stay ({})",
                render_entry(&answer["applied"])
            );
        }
        OpsCommand::Audit { .. } => {
            let entries = answer["entries"].as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                println!("no ops changes recorded for round {round}");
            }
            for entry in &entries {
                println!("{}", render_entry(entry));
            }
        }
        // A value already in place is no change: core says so, audits nothing.
        _ if answer["applied"].is_null() => {
            println!(
                "{}",
                answer["message"].as_str().unwrap_or("nothing changed")
            )
        }
        _ => println!("{}", render_entry(&answer["applied"])),
    }
    Ok(())
}

/// An HTTP client bound to one core and token.
struct OpsClient {
    http: reqwest::Client,
    base: String,
    token: String,
    round: String,
}

impl OpsClient {
    fn new(args: &OpsArgs) -> anyhow::Result<OpsClient> {
        let token = args.token.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!("no ops token: set CROWDGATE_OPS_TOKEN to the token `crowdgate up` printed, or pass --token")
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(OpsClient {
            http,
            base: format!("{}/ops/v1", args.core_url.trim_end_matches('/')),
            token,
            round: args.round.clone(),
        })
    }

    /// One call; any failure becomes an error that says what to do.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|err| {
            if err.is_connect() || err.is_timeout() {
                anyhow::anyhow!(
                    "cannot reach core at {}: is core running? start it with `./dev up` (or pass --core-url)",
                    self.base.trim_end_matches("/ops/v1")
                )
            } else {
                anyhow::anyhow!("calling core failed: {err}")
            }
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(anyhow::anyhow!(explain(status, &body, &self.round)))
    }
}

/// What went wrong, and what to do about it.
fn explain(status: u16, body: &Value, round: &str) -> String {
    let message = body["message"].as_str().unwrap_or("no details");
    let field = body["field"]
        .as_str()
        .map(|f| format!(" `{f}`"))
        .unwrap_or_default();
    match status {
        401 => "core refused the ops token: set CROWDGATE_OPS_TOKEN to the token `crowdgate up` printed (or pass --token)"
            .to_string(),
        404 => format!("core does not serve round {round:?} ({message}): pass --round with the round id"),
        409 => format!("refused: {message}"),
        400 | 422 => format!("invalid{field}: {message}"),
        503 => format!("core is up but its data store is not: {message}"),
        _ => format!("core answered {status}: {message}"),
    }
}

/// `crowdgate ops rounds list` for people: one line per round.
fn render_rounds(answer: &Value) -> String {
    let rounds = answer["rounds"].as_array().cloned().unwrap_or_default();
    if rounds.is_empty() {
        return "no rounds: create one with `crowdgate ops rounds create <file>`\n".to_string();
    }
    let pounds = |v: &Value| format!("£{:.2}", v.as_i64().unwrap_or(0) as f64 / 100.0);
    let mut text = String::new();
    for r in &rounds {
        let archived = if r["archived"].as_bool() == Some(true) {
            " (archived)"
        } else {
            ""
        };
        text.push_str(&format!(
            "{:<24} {:<9} raised {} of {}; {} waiting; {}/min  {}{archived}\n",
            r["round"].as_str().unwrap_or("?"),
            r["phase"].as_str().unwrap_or("no data"),
            pounds(&r["raised_pence"]),
            pounds(&r["cap_pence"]),
            r["queue_length"].as_u64().unwrap_or(0),
            r["rate_per_minute"].as_u64().unwrap_or(0),
            r["name"].as_str().unwrap_or(""),
        ));
    }
    text
}

/// `crowdgate ops status` for people.
fn render_status(s: &Value) -> String {
    let n = |v: &Value| {
        v.as_i64()
            .map(|x| x.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let pounds = |v: &Value| format!("£{:.2}", v.as_i64().unwrap_or(0) as f64 / 100.0);
    let q = &s["queue"];
    let a = &s["admission"];
    let m = &s["money"];
    let st = &s["settlement"];
    let lag = st["oldest_unsettled_age_ms"]
        .as_u64()
        .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "none".into());
    let mut text = format!(
        "round       {} ({})\n\
         phase       {}\n\
         queue       {} waiting; admitted up to {} of {} issued; {} active investors; {} in pre-queue\n\
         admission   {}/min ({}), batch every {} ms, max active {}, pass {} s\n\
         money       raised {} of cap {} from {} investors ({} investments)\n\
         settlement  {} settled, {} failed; backlog {} ({} pending); oldest unsettled {}; {} dead letters\n",
        s["round"].as_str().unwrap_or("?"),
        s["name"].as_str().unwrap_or(""),
        s["phase"].as_str().unwrap_or("?"),
        n(&q["queue_length"]),
        n(&q["admitted_up_to"]),
        n(&q["issued"]),
        n(&q["active_investors"]),
        n(&q["prequeue"]),
        n(&a["rate_per_minute"]),
        achieved(a),
        n(&a["batch_interval_ms"]),
        n(&a["max_active"]),
        n(&a["pass_ttl_seconds"]),
        pounds(&m["raised_pence"]),
        pounds(&m["cap_pence"]),
        n(&m["investor_count"]),
        n(&m["accepted_count"]),
        n(&st["settled_count"]),
        n(&st["failed_count"]),
        n(&st["backlog"]),
        n(&st["pending"]),
        lag,
        n(&st["dead_letters"]),
    );
    text.push_str(&render_redis(&s["redis"]));
    text
}

/// The admission rate achieved while people waited, and how much
/// measurement it rests on (an older core reports none).
fn achieved(a: &Value) -> String {
    match (
        a["achieved_rate_per_minute"].as_f64(),
        a["achieved_rate_history_seconds"].as_u64(),
    ) {
        (Some(rate), Some(seconds)) if seconds > 0 => {
            format!("achieved {rate:.1}/min over the last {seconds} s measured")
        }
        _ => "achieved: not measured yet".to_string(),
    }
}

/// The Redis line: which node is primary now, and its replicas.
fn render_redis(r: &Value) -> String {
    if r.is_null() {
        return String::new();
    }
    let primary = r["primary"].as_str().unwrap_or("not connected");
    let replicas = match &r["replicas"] {
        Value::Array(list) if list.is_empty() => "no replicas".to_string(),
        Value::Array(list) => {
            let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            format!("replicas {}", names.join("; "))
        }
        other => format!("replicas {}", other.as_str().unwrap_or("unknown")),
    };
    let wait = match r["acknowledge_after_replicas"].as_u64().unwrap_or(0) {
        0 => "writes acknowledged on the primary's disk".to_string(),
        n => format!(
            "writes acknowledged once {n} replica(s) hold them (within {} ms)",
            r["replica_timeout_ms"].as_u64().unwrap_or(0)
        ),
    };
    match r["master_name"].as_str() {
        Some(master) => format!(
            "redis       primary {primary} (Sentinel master {master:?}); {replicas}; {wait}\n"
        ),
        None => format!("redis       {primary} (single node); {replicas}; {wait}\n"),
    }
}

/// One audit entry on one line: `when  who  action  field: old → new, ...`.
fn render_entry(e: &Value) -> String {
    let changes: Vec<String> = e["new"]
        .as_object()
        .map(|new| {
            new.iter()
                .map(|(field, value)| {
                    format!("{field}: {} → {}", show(&e["old"][field]), show(value))
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{}  {}  {}  {}",
        e["at"].as_str().unwrap_or("?"),
        e["operator"].as_str().unwrap_or("?"),
        e["action"].as_str().unwrap_or("?"),
        changes.join(", ")
    )
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_failures() {
        assert!(explain(401, &Value::Null, "demo").contains("CROWDGATE_OPS_TOKEN"));
        let body =
            json!({"error": "invalid_field", "field": "cap_pence", "message": "must be above"});
        assert_eq!(
            explain(422, &body, "demo"),
            "invalid `cap_pence`: must be above"
        );
    }

    #[test]
    fn shows_the_achieved_rate_next_to_the_configured_one() {
        let status = json!({"round": "demo", "name": "Demo", "phase": "open",
            "admission": {"rate_per_minute": 600, "achieved_rate_per_minute": 58.26,
                "achieved_rate_history_seconds": 95, "batch_interval_ms": 1000,
                "max_active": 50, "pass_ttl_seconds": 900}});
        let text = render_status(&status);
        assert!(
            text.contains("admission   600/min (achieved 58.3/min over the last 95 s measured), batch every 1000 ms"),
            "{text}"
        );
        let older = json!({"admission": {"rate_per_minute": 600}});
        assert!(
            render_status(&older).contains("600/min (achieved: not measured yet)"),
            "{}",
            render_status(&older)
        );
    }

    #[test]
    fn renders_an_entry() {
        let e = json!({"at": "t", "operator": "ann", "action": "admission",
            "old": {"rate_per_minute": 0}, "new": {"rate_per_minute": 600}});
        assert_eq!(
            render_entry(&e),
            "t  ann  admission  rate_per_minute: 0 → 600"
        );
    }
}
