//! `crowdgate rehearse`, run as a platform would before launch day: a small
//! rehearsal of the shipped reference round on a local system of its own
//! must pass, and its report must hold the tables and charts people read;
//! a rehearsal of a broken setup (no settlement worker) must fail with a
//! clear verdict; and against a running deployment it must refuse a round
//! that already holds investments unless told `--i-know`.

use crowdgate_tests::*;
use scraper::{Html, Selector};
use std::path::Path;
use std::process::Command;

/// Runs `crowdgate rehearse args` from the repository root (where the
/// shipped scenario and spin.toml are); returns (success, stdout, stderr).
fn rehearse(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(crowdgate_bin())
        .arg("rehearse")
        .args(args)
        .current_dir(workspace_root())
        .env_remove("CROWDGATE_OPS_TOKEN")
        .output()
        .expect("crowdgate rehearse runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// The flags that point `crowdgate rehearse` at `system` as a deployment:
/// its edge, core, ops token, the test platform's key (written to a file in
/// the system's directory), Redis, a small crowd and `report_dir`.
fn deployment_args(system: &System, investors: &str, report_dir: &Path) -> Vec<String> {
    let key = system.dir.path().join("platform-key.pem");
    std::fs::write(&key, identity_signer().to_pkcs8_pem()).unwrap();
    [
        "--edge",
        &system.edge_url,
        "--core-url",
        &system.core_url,
        "--ops-token",
        OPS_TOKEN,
        "--identity-key",
        key.to_str().unwrap(),
        "--identity-issuer",
        IDENTITY_ISSUER,
        "--redis-url",
        &system.redis.url(),
        "--investors",
        investors,
        "--report-dir",
        report_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// [`rehearse`] off the async runtime (it waits for the whole rehearsal).
async fn rehearse_blocking(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rehearse(&args)
    })
    .await
    .unwrap()
}

fn select<'a>(html: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    html.select(&Selector::parse(css).unwrap()).collect()
}

fn text(element: &scraper::ElementRef<'_>) -> String {
    element.text().collect::<Vec<_>>().join("")
}

/// The report page, parsed, with the checks every report must pass: a
/// verdict, the four charts drawing data, every table with rows.
fn read_report(dir: &Path) -> (Html, serde_json::Value) {
    let page = std::fs::read_to_string(dir.join("report.html")).expect("report.html written");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json"))
            .expect("report.json is JSON");
    assert!(
        !page.contains("src=") && !page.contains("href=\"http"),
        "the report is self-contained"
    );
    let html = Html::parse_document(&page);
    for chart in [
        "chart-queue",
        "chart-raised",
        "chart-latency",
        "chart-settlement",
    ] {
        let drawn = select(&html, &format!("figure#{chart} svg .series"));
        assert!(!drawn.is_empty(), "{chart} draws data");
        assert_eq!(
            select(&html, &format!("figure#{chart} figcaption")).len(),
            1
        );
    }
    for table in [
        "table-outcome",
        "table-latency",
        "table-errors",
        "table-fairness",
        "table-wait-estimate",
        "table-forecast",
        "table-invariants",
    ] {
        assert_eq!(
            select(&html, &format!("table#{table} caption")).len(),
            1,
            "{table} has a caption"
        );
        assert!(
            !select(&html, &format!("table#{table} tbody tr")).is_empty(),
            "{table} has rows"
        );
    }
    (html, json)
}

/// The value cell of the outcome table's row named `measure`.
fn outcome_row(html: &Html, measure: &str) -> String {
    select(html, "table#table-outcome tbody tr")
        .into_iter()
        .find(|row| text(row).contains(measure))
        .map(|row| text(&select_in(&row, "td").pop().expect("a value cell")))
        .unwrap_or_else(|| panic!("no outcome row {measure:?}"))
}

fn select_in<'a>(element: &scraper::ElementRef<'a>, css: &str) -> Vec<scraper::ElementRef<'a>> {
    element.select(&Selector::parse(css).unwrap()).collect()
}

#[test]
fn a_small_rehearsal_of_the_reference_round_passes_with_a_full_report() {
    let out = tempfile::tempdir().unwrap();
    let report_dir = out.path().join("report");
    let (ok, stdout, stderr) = rehearse(&[
        "--investors",
        "300",
        "--compression",
        "60",
        "--report-dir",
        report_dir.to_str().unwrap(),
    ]);
    assert!(ok, "the rehearsal passes:\n{stdout}\n{stderr}");
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("PASS: sold out"), "{stdout}");

    let (html, json) = read_report(&report_dir);
    // Titled for what was rehearsed, not the full-size round's 36,000.
    let title = text(&select(&html, "h1")[0]);
    assert!(
        title.ends_with("rehearsed with 300 investors, the round scaled to them"),
        "{title}"
    );
    let shown = select(&html, "#verdict");
    assert_eq!(text(&shown[0]).trim(), verdict);
    assert_eq!(shown[0].value().attr("class"), Some("pass"));

    // What the round did: sold out, every 201 counted
    // once by core and settled or failed; the pre-queue and the queue after
    // it were exercised.
    let o = &json["outcome"];
    // Sold out: less than the minimum investment (£10) left under the cap.
    let left = o["cap_pence"].as_i64().unwrap() - o["raised_pence"].as_i64().unwrap();
    assert!((0..1_000).contains(&left), "{o}");
    assert_eq!(o["accepted_investments"], o["accepted_by_core"]);
    let accepted = o["accepted_investments"].as_u64().unwrap();
    assert!(accepted > 50, "{o}");
    assert_eq!(
        o["settled"].as_u64().unwrap() + o["failed_settlements"].as_u64().unwrap(),
        accepted
    );
    assert!(o["joined_before_opening"].as_u64().unwrap() > 100, "{o}");
    assert!(
        o["sold_out_before_their_turn"].as_u64().unwrap() > 0,
        "oversubscribed: {o}"
    );
    assert!(outcome_row(&html, "Time to sell out (scenario)").contains("min"));

    // Every invariant held, reconcile's output is in the page.
    let checks = select(&html, "table#table-invariants tbody tr");
    assert!(checks.len() >= 6, "{} checks", checks.len());
    for check in json["invariants"]["checks"].as_array().unwrap() {
        assert_eq!(check["passed"], true, "{check}");
        assert_eq!(check["tested"], true, "{check}");
    }
    assert!(text(&select(&html, "pre#reconcile")[0]).contains("OK: every invariant"));

    // Latency for the endpoints investors used, and no unexpected error.
    let endpoints: Vec<&str> = json["latency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["endpoint"].as_str().unwrap())
        .collect();
    for endpoint in ["join", "status", "pass", "invest"] {
        assert!(endpoints.contains(&endpoint), "{endpoints:?}");
    }
    assert!(
        json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["designed"] == true),
        "{}",
        json["errors"]
    );

    // What was rehearsed, for the record.
    assert_eq!(json["schema_version"], 1);
    assert!(
        json["crowdgate_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(json["scenario"]["file"], "rehearsals/reference-round.toml");
    assert_eq!(json["scenario"]["file_sha256"].as_str().unwrap().len(), 64);

    // Fairness and the figures the issue asks for were measured.
    let fairness = &json["fairness"];
    assert!(fairness["prequeue_drawn"].as_u64().unwrap() > 100);
    assert!(fairness["chi_square_p"].as_f64().is_some(), "{fairness}");
    assert_eq!(fairness["fifo_inversions"], 0);
    assert!(json["wait_estimate"]["samples"].as_u64().unwrap() > 0);
    assert!(json["sell_out_forecast"]["told"].as_u64().unwrap() > 0);
}

#[test]
fn a_rehearsal_without_a_settlement_worker_fails_with_a_clear_verdict() {
    let out = tempfile::tempdir().unwrap();
    let scenario = out.path().join("small.toml");
    // A small round of its own, and a short wait for settlement.
    let reference =
        std::fs::read_to_string(workspace_root().join("rehearsals/reference-round.toml")).unwrap();
    std::fs::write(
        &scenario,
        reference.replace("settle_timeout_seconds = 30", "settle_timeout_seconds = 3"),
    )
    .unwrap();
    let report_dir = out.path().join("report");
    let (ok, stdout, stderr) = rehearse(&[
        "--scenario",
        scenario.to_str().unwrap(),
        "--investors",
        "80",
        "--compression",
        "120",
        "--no-settlement-worker",
        "--report-dir",
        report_dir.to_str().unwrap(),
    ]);
    assert!(
        !ok,
        "a round whose investments never settle fails:\n{stdout}"
    );
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("FAIL: settlement did not finish")
            && verdict.contains("is a settlement worker running?"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("the rehearsal failed"), "{stderr}");
    let (html, json) = read_report(&report_dir);
    let shown = select(&html, "#verdict");
    assert_eq!(shown[0].value().attr("class"), Some("fail"));
    let broken: Vec<&str> = json["invariants"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(broken, ["every accepted investment settled or failed"]);
    assert!(!select(&html, "ul#problems li").is_empty());
}

#[tokio::test]
async fn a_deployment_is_rehearsed_only_if_its_round_is_fresh_or_told_i_know() {
    let system = System::start(RoundOptions {
        // Not sold out by the first rehearsal, so a second can run.
        cap_pence: 100_000_000,
        rate_per_minute: 600,
        batch_interval_ms: 200,
        max_active: 1_000,
        ..RoundOptions::default()
    })
    .await;
    let report_dir = system.dir.path().join("report");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = deployment_args(&system, "60", &report_dir);
        args.extend(["--compression".to_string(), "60".to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let (ok, stdout, stderr) = rehearse_blocking(args(&[])).await;
    assert!(ok, "a fresh round is rehearsed:\n{stdout}\n{stderr}");
    let (_, json) = read_report(&report_dir);
    assert_eq!(json["target"], system.edge_url.as_str());
    assert!(json["outcome"]["accepted_investments"].as_u64().unwrap() > 0);
    // The round was already open: no pre-queue, and the report says the
    // lottery was not tested rather than that it held.
    let lottery = json["invariants"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "arriving early buys nothing in the pre-queue")
        .expect("the lottery check is listed");
    assert_eq!(lottery["tested"], false, "{lottery}");
    assert!(
        lottery["detail"]
            .as_str()
            .unwrap()
            .starts_with("not tested")
    );

    // Now the round holds investments: refused, saying why and what to do,
    // and nothing is added to it.
    let before = system.round_field("accepted_count").await;
    let (ok, stdout, stderr) = rehearse_blocking(args(&[])).await;
    assert!(!ok, "a round holding investments is refused:\n{stdout}");
    assert!(
        stderr.contains("already holds") && stderr.contains("--i-know"),
        "{stderr}"
    );
    assert_eq!(system.round_field("accepted_count").await, before);

    // Told --i-know, it runs (its investors find the round sold out).
    let (ok, stdout, stderr) = rehearse_blocking(args(&["--i-know"])).await;
    assert!(
        stdout.contains("PASS") || stdout.contains("FAIL"),
        "with --i-know it runs to a verdict:\n{stdout}\n{stderr}"
    );
    let _ = ok;
}

#[tokio::test]
async fn a_deployments_scheduled_round_is_not_reopened_without_i_know() {
    // A round scheduled for tomorrow, with nobody in it yet: a rehearsal
    // would move its opening to now.
    let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(24 * 3600);
    let system = System::start(RoundOptions {
        opens_at: Some(humantime::format_rfc3339_seconds(tomorrow).to_string()),
        ..RoundOptions::default()
    })
    .await;
    let report_dir = system.dir.path().join("report");
    let (ok, stdout, stderr) = rehearse_blocking(deployment_args(&system, "20", &report_dir)).await;
    assert!(!ok, "refused:\n{stdout}");
    assert!(
        stderr.contains("is scheduled to open at") && stderr.contains("--i-know"),
        "{stderr}"
    );
    // Nothing was touched: still scheduled for tomorrow, nobody in it.
    let state = system.room_state().await;
    assert_eq!(state["phase"], "scheduled", "{state}");
    assert_eq!(state["prequeue_size"], 0, "{state}");
    assert!(!report_dir.join("report.json").exists());
}
