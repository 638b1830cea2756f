//! One deployment, many rounds: rounds created through the ops API while
//! another is open, served by the same core and the same Wasm edge (each
//! at `/r/<round>/`), each with its own cap, queue, tickets and passes.

use crowdgate_tests::{
    OPS_TOKEN, ROUND, RoundOptions, System, Visitor, core_http, core_requests, get_text,
    identity_token_for, json_of, pass_token_for,
};
use serde_json::{Value, json};
use std::time::Duration;

/// A round file's settings as JSON: an open round `id` with cap `cap_pence`,
/// £10 to £100 each in £1 shares, admitting quickly.
fn round_settings(id: &str, cap_pence: i64) -> Value {
    json!({
        "round": {
            "id": id,
            "name": format!("Round {id}"),
            "cap_pence": cap_pence,
            "min_investment_pence": 1_000,
            "max_investment_pence": 10_000,
            "share_price_pence": 100,
        },
        "admission": { "rate_per_minute": 60_000, "batch_interval_ms": 200 }
    })
}

/// Every live round as `GET /ops/v1/rounds` lists it, by id.
async fn rounds(system: &System) -> Vec<Value> {
    let (code, body) = json_of(
        core_http()
            .get(format!("{}/ops/v1/rounds", system.core_url))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["rounds"].as_array().unwrap().clone()
}

async fn listed(system: &System, round: &str) -> Value {
    rounds(system)
        .await
        .into_iter()
        .find(|r| r["round"] == round)
        .unwrap_or_else(|| panic!("round {round} is not listed"))
}

async fn ops(system: &System, round: &str, action: &str) -> (u16, Value) {
    json_of(
        core_http()
            .post(format!(
                "{}/ops/v1/rounds/{round}/{action}",
                system.core_url
            ))
            .bearer_auth(OPS_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_created_while_another_is_open_sells_through_the_same_edge_with_its_own_cap() {
    // No settlement worker: what is raised stays raised (unfunded investors'
    // settlements would fail and give the amounts back).
    let system = System::start_with(RoundOptions::default(), false).await;
    // The default round is open and selling.
    let (code, body) = Visitor::new(&system.edge_url)
        .join_and_invest("dee", 5_000, "dee-1")
        .await;
    assert_eq!(code, 201, "{body}");

    // A round created through ops, no restart: £100 cap.
    let (code, created) = system.create_round(round_settings("bond", 10_000)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["applied"]["action"], "create");
    assert_eq!(created["applied"]["new"]["cap_pence"], 10_000);
    let (code, again) = system.create_round(round_settings("bond", 99_000)).await;
    assert_eq!(
        (code, again["error"].as_str()),
        (409, Some("round_exists")),
        "{again}"
    );
    let (code, bad) = system
        .create_round(json!({"round": {"id": "Bad Id"}}))
        .await;
    assert_eq!(code, 422, "{bad}");
    // The list's query is checked like every ops query.
    for (query, field) in [("archived=maybe", "archived"), ("archve=true", "archve")] {
        let (code, body) = json_of(
            core_http()
                .get(format!("{}/ops/v1/rounds?{query}", system.core_url))
                .bearer_auth(OPS_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((code, body["field"].as_str()), (422, Some(field)), "{body}");
    }
    // A body that is not JSON: 400, nothing created.
    let (code, body) = json_of(
        core_http()
            .post(format!("{}/ops/v1/rounds", system.core_url))
            .bearer_auth(OPS_TOKEN)
            .header("content-type", "application/json")
            .body("hello")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("malformed_json")),
        "{body}"
    );
    assert_eq!(
        rounds(&system).await.len(),
        2,
        "the default round and bond only"
    );

    let bond = system.round_url("bond");
    // Its page is its own: named, and every address under /r/bond/.
    let page = get_text(&core_http(), &format!("{bond}/")).await;
    assert!(page.contains(r#"<base href="/r/bond/">"#), "{page}");
    assert!(page.contains("Round bond"), "{page}");
    // Its sign-in link names the round, so the platform can send the
    // browser back to it; the default round's link is as configured.
    assert!(page.contains("sign-in?round=bond"), "{page}");
    let default_page = get_text(&core_http(), &format!("{}/", system.edge_url)).await;
    assert!(!default_page.contains("?round="), "{default_page}");

    // Twelve investors race for the £100 at £10 each: exactly ten get in.
    let racers: Vec<_> = (0..12)
        .map(|i| {
            let bond = bond.clone();
            tokio::spawn(async move {
                let visitor = Visitor::new(&bond);
                let investor = format!("racer-{i}");
                visitor
                    .join_and_invest(&investor, 1_000, &format!("race-{i}"))
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for racer in racers {
        let (code, body) = racer.await.unwrap();
        match code {
            201 => accepted += 1,
            409 => assert_eq!(body["error"], "round_full", "{body}"),
            _ => panic!("{code} {body}"),
        }
    }
    assert_eq!(accepted, 10);
    let bond_listed = listed(&system, "bond").await;
    assert_eq!(
        (&bond_listed["phase"], &bond_listed["raised_pence"]),
        (&json!("full"), &json!(10_000)),
        "{bond_listed}"
    );
    // The default round was untouched by the race, and still sells.
    let default_listed = listed(&system, ROUND).await;
    assert_eq!(
        (&default_listed["phase"], &default_listed["raised_pence"]),
        (&json!("open"), &json!(5_000)),
        "{default_listed}"
    );
    let (code, body) = Visitor::new(&system.edge_url)
        .join_and_invest("eve", 2_000, "eve-1")
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(listed(&system, ROUND).await["raised_pence"], 7_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_and_passes_stay_in_their_round_and_closing_one_leaves_the_other_selling() {
    let system = System::start(RoundOptions::default()).await;
    let (code, created) = system.create_round(round_settings("bond", 1_000_000)).await;
    assert_eq!(code, 201, "{created}");
    let bond = system.round_url("bond");

    // One browser (one cookie jar) holds a place in each round.
    let browser = Visitor::signed_in(&bond, "fay");
    let (code, in_bond) = browser.join().await;
    assert_eq!(code, 201, "{in_bond}");
    let in_default = browser.same_browser_at(&system.edge_url);
    let (code, joined_default) = in_default.join().await;
    assert_eq!(code, 201, "{joined_default}");
    assert_ne!(in_bond["ticket"], joined_default["ticket"]);
    for visitor in [&browser, &in_default] {
        let (code, status) = visitor.status().await;
        assert_eq!(
            code, 200,
            "each round reads its own ticket cookie: {status}"
        );
    }

    // A bond pass is refused by the default round, and a bond ticket too.
    browser.wait_until_admitted(Duration::from_secs(10)).await;
    let pass = browser.pass().await;
    let (code, body) = in_default
        .invest(&pass, "fay-x", json!({"amount_pence": 1_000}))
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("token_wrong_round")),
        "{body}"
    );
    let (code, body) = json_of(
        core_http()
            .get(format!("{}/api/status", system.edge_url))
            .bearer_auth(in_bond["ticket"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("token_wrong_round")),
        "{body}"
    );
    // In its own round the pass invests.
    let (code, body) = browser
        .invest(&pass, "fay-1", json!({"amount_pence": 1_000}))
        .await;
    assert_eq!(code, 201, "{body}");

    // An identity token minted for another round is refused: with no
    // deployment-wide audience, a token names the round it is for.
    let (code, body) = json_of(
        core_http()
            .post(format!("{bond}/api/join"))
            .bearer_auth(identity_token_for("gus", ROUND))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("identity_invalid")),
        "{body}"
    );

    // Closing the bond round leaves the default round selling.
    let (code, body) = ops(&system, "bond", "close").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = Visitor::new(&system.edge_url)
        .join_and_invest("hal", 1_000, "hal-1")
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = Visitor::new(&bond).join().await;
    assert_eq!(
        (code, &body["status"]["state"]),
        (201, &json!("closed")),
        "{body}"
    );

    // Archived, it leaves the list; its investments stay readable.
    let (code, body) = ops(&system, "bond", "archive").await;
    assert_eq!(code, 200, "{body}");
    let ids: Vec<String> = rounds(&system)
        .await
        .iter()
        .map(|r| r["round"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![ROUND.to_string()]);
    let (code, body) = ops(&system, ROUND, "archive").await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("invalid_transition")),
        "{body}"
    );

    // A round nobody created is a 404, at the edge and at core.
    let (code, body) = Visitor::new(&system.round_url("nope")).join().await;
    assert_eq!(
        (code, body["field"].as_str()),
        (404, Some("round")),
        "{body}"
    );
    let (code, body) = json_of(
        core_http()
            .get(format!("{}/r/Not-A-Round/api/status", system.edge_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404, "{body}");

    // Made-up round ids are answered at the edge from its list of rounds:
    // however many arrive, core is asked at most about once a second.
    let before = core_requests(&system.core_url, None).await;
    let started = std::time::Instant::now();
    for i in 0..200 {
        let (code, body) = json_of(
            core_http()
                .get(format!("{}/r/made-up-{i}/api/status", system.edge_url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 404, "{body}");
    }
    let calls = core_requests(&system.core_url, None).await - before;
    let allowed = started.elapsed().as_secs() + 2;
    assert!(
        calls <= allowed,
        "{calls} calls to core for 200 made-up rounds (at most {allowed})"
    );
}

/// One investment by investor `n` in `round` through the edge at
/// `invest_url`, retried with the same key through 503s and dropped
/// connections (a core being killed) until a definitive answer.
async fn invest_until_answered(
    http: &reqwest::Client,
    invest_url: &str,
    round: &str,
    n: usize,
    amount: i64,
) -> (u16, Value) {
    let pass = pass_token_for(
        round,
        &format!("tk-{round}-{n}"),
        n as u64,
        &format!("inv-{n}"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sent = http
            .post(invest_url)
            .bearer_auth(&pass)
            .header("idempotency-key", format!("{round}-{n}"))
            .json(&json!({"amount_pence": amount}))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent
            && !matches!(response.status().as_u16(), 502 | 503)
        {
            return json_of(response).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{round} #{n}: no answer in 60 s"
        );
        // The client's pause before it retries: pacing, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The investment ids in `round`'s settlement stream, with how often each
/// appears.
async fn stream_ids(system: &System, round: &str) -> std::collections::HashMap<String, usize> {
    let mut redis = system.redis().await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(crowdgate_store::RoundKeys::new(round).settlement_stream())
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut ids = std::collections::HashMap::new();
    for entry in &reply.ids {
        let id: String = entry.get("investment_id").unwrap();
        *ids.entry(id).or_default() += 1;
    }
    ids
}

/// Investors in two live rounds at once, each with money for only one of
/// their two investments; core and the settlement worker are killed -9
/// (and restarted) while they invest. Nothing acknowledged is lost or
/// doubled in either round, each investor's one balance settles exactly one
/// of the two and never goes below zero, and reconcile passes for both
/// rounds and the accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_core_and_the_worker_during_two_live_rounds_loses_and_doubles_nothing() {
    const INVESTORS: usize = 400;
    const AMOUNT: i64 = 2_000;
    let big = RoundOptions {
        cap_pence: 1_000_000_000,
        max_investment_pence: 1_000_000,
        ..RoundOptions::default()
    };
    let mut system = System::start_with(big, false).await;
    let mut bond = round_settings("bond", 1_000_000_000);
    bond["round"]["max_investment_pence"] = json!(1_000_000);
    let (code, created) = system.create_round(bond).await;
    assert_eq!(code, 201, "{created}");
    let accounts: Vec<(String, i64)> = (0..INVESTORS)
        .map(|n| (format!("inv-{n}"), AMOUNT * 3 / 2))
        .collect();
    let accounts: Vec<(&str, i64)> = accounts.iter().map(|(i, p)| (i.as_str(), *p)).collect();
    system.fund(&accounts).await;
    let mut worker = system.spawn_worker("worker-a");

    let http = reqwest::Client::new();
    let urls = [
        (
            ROUND.to_string(),
            format!("{}/api/investments", system.edge_url),
        ),
        (
            "bond".to_string(),
            format!("{}/api/investments", system.round_url("bond")),
        ),
    ];
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut load = tokio::task::JoinSet::new();
    // Sixteen clients at a time, each investing in both rounds in turn.
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..16 {
        let (http, urls, next, answered) =
            (http.clone(), urls.clone(), next.clone(), answered.clone());
        load.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= INVESTORS {
                    return answers;
                }
                for (round, url) in &urls {
                    let answer = invest_until_answered(&http, url, round, n, AMOUNT).await;
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    answers.push((round.clone(), n, answer));
                }
            }
        });
    }
    let wait_for_answers = async |count: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while answered.load(std::sync::atomic::Ordering::SeqCst) < count {
            assert!(
                std::time::Instant::now() < deadline,
                "fewer than {count} answers"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // Faults while the load runs: core killed -9 a quarter of the way in,
    // the worker (settling both rounds) half-way.
    wait_for_answers(INVESTORS / 2).await;
    system.kill_core();
    system.restart_core().await;
    wait_for_answers(INVESTORS).await;
    worker.kill();
    worker = system.spawn_worker("worker-b");
    assert!(
        answered.load(std::sync::atomic::Ordering::SeqCst) < 2 * INVESTORS,
        "the faults came after the load"
    );

    let mut acked: Vec<(String, String)> = Vec::new();
    while let Some(done) = load.join_next().await {
        for (round, n, (code, body)) in done.unwrap() {
            assert_eq!(code, 201, "{round} #{n}: {body}");
            acked.push((round, body["investment_id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(acked.len(), 2 * INVESTORS);
    // Every acknowledged investment is in its own round's stream exactly
    // once, and nothing else is.
    for (round, _) in &urls {
        let ids = stream_ids(&system, round).await;
        let told: Vec<&String> = acked
            .iter()
            .filter(|(r, _)| r == round)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(ids.len(), told.len(), "{round}");
        for id in told {
            assert_eq!(ids.get(id), Some(&1), "{round}: {id}");
        }
    }
    // Everything settles: per investor exactly one of two (their money runs
    // to one), so as many settled as failed across the two rounds.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ledger = |round: &'static str, field: &'static str| {
        let system = &system;
        async move {
            let mut redis = system.redis().await;
            let v: Option<i64> = redis::cmd("HGET")
                .arg(crowdgate_store::RoundKeys::new(round).ledger())
                .arg(field)
                .query_async(&mut redis)
                .await
                .unwrap();
            v.unwrap_or(0)
        }
    };
    loop {
        let done = ledger(ROUND, "settled_count").await
            + ledger(ROUND, "failed_count").await
            + ledger("bond", "settled_count").await
            + ledger("bond", "failed_count").await;
        if done == 2 * INVESTORS as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} settled of {}",
            2 * INVESTORS
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = ledger(ROUND, "settled_count").await + ledger("bond", "settled_count").await;
    assert_eq!(
        settled, INVESTORS as i64,
        "one settled investment per investor"
    );
    let mut redis = system.redis().await;
    let balances: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(crowdgate_store::keys::deployment::BALANCES)
        .query_async(&mut redis)
        .await
        .unwrap();
    for n in 0..INVESTORS {
        assert_eq!(balances[&format!("inv-{n}")], AMOUNT / 2, "inv-{n}");
    }
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        system.crowdgate(&["reconcile", "--wait-quiet-ms", "10000"])
    });
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("round bond") && stdout.contains(&format!("round {ROUND}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("OK: every account invariant holds"),
        "{stdout}"
    );
    drop(worker);
}

/// `PATCH /ops/v1/rounds/{round}`: a scheduled round's terms change (with
/// the round file's checks and an audit entry), an opened round's do not;
/// the CLI does the same and explains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rounds_terms_are_edited_and_an_opened_rounds_are_fixed() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let mut spring = round_settings("spring", 1_000_000);
    spring["round"]["opens_at"] = json!(
        humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + Duration::from_secs(3_600)
        )
        .to_string()
    );
    let (code, created) = system.create_round(spring).await;
    assert_eq!(code, 201, "{created}");
    let edit = async |body: Value| {
        json_of(
            core_http()
                .patch(format!("{}/ops/v1/rounds/spring", system.core_url))
                .bearer_auth(OPS_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (code, body) = edit(json!({"cap_pence": 2_000_000, "name": "Spring, bigger"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"]["action"], "edit");
    assert_eq!(body["applied"]["old"]["cap_pence"], 1_000_000);
    assert_eq!(body["applied"]["new"]["cap_pence"], 2_000_000);
    let listed = listed(&system, "spring").await;
    assert_eq!(
        (&listed["cap_pence"], &listed["name"]),
        (&json!(2_000_000), &json!("Spring, bigger"))
    );
    for (bad, field) in [
        (
            json!({"min_investment_pence": 50_000}),
            "max_investment_pence",
        ),
        (json!({"capp_pence": 5}), "capp_pence"),
        (json!({"closes_at": "yesterday"}), "closes_at"),
    ] {
        let (code, body) = edit(bad).await;
        assert_eq!((code, body["field"].as_str()), (422, Some(field)), "{body}");
    }
    // The CLI: the same edit, and a refusal explained.
    let cli = |extra: &[&str]| {
        let mut args = vec![
            "ops",
            "--core-url",
            &system.core_url,
            "--token",
            OPS_TOKEN,
            "--round",
            "spring",
            "rounds",
        ];
        args.extend_from_slice(extra);
        tokio::task::block_in_place(|| system.crowdgate(&args))
    };
    let (ok, stdout, stderr) = cli(&["edit", "--max-investment-pence", "20000"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("edit") && stdout.contains("20000"),
        "{stdout}"
    );
    let (ok, _, stderr) = cli(&["edit"]);
    assert!(!ok && stderr.contains("nothing to edit"), "{stderr}");
    let (ok, stdout, _) = cli(&["list"]);
    assert!(
        ok && stdout.contains("spring") && stdout.contains("scheduled"),
        "{stdout}"
    );

    // Once open, its terms are what investors were shown.
    let (code, body) = ops(&system, "spring", "open").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = edit(json!({"cap_pence": 3_000_000})).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("invalid_transition")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("fixed once it opens"),
        "{body}"
    );
}

/// The dashboard in a real browser: it lists the rounds, creates one from
/// its form (opened at once), refuses to edit an opened round's terms with
/// core's reason, switches between rounds, and archives a closed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_creates_switches_and_archives_rounds() {
    use crowdgate_tests::browser::Browser;
    let system = System::start_with(RoundOptions::default(), false).await;
    let browser = Browser::start().await;
    let within = Duration::from_secs(10);
    browser
        .client
        .goto(&format!("{}/ops", system.core_url))
        .await
        .unwrap();
    browser.type_into("#token", OPS_TOKEN).await;
    browser.click("#sign-in").await;
    browser.wait_for_exact("#round-id", within, ROUND).await;
    browser
        .wait_for_text("#rounds", within, |t| {
            t.contains(ROUND) && t.contains("open")
        })
        .await;

    // A new round from the form: created, listed and opened below.
    browser.click("#new-round summary").await;
    for (css, text) in [
        ("#new-id", "bond"),
        ("#new-name", "Bond round"),
        ("#new-cap", "100"),
        ("#new-min", "10"),
        ("#new-max", "100"),
        ("#new-price", "1"),
    ] {
        browser.type_into(css, text).await;
    }
    browser.click("#create").await;
    browser
        .wait_for_text("#message", within, |t| t.contains("Created round bond"))
        .await;
    browser.wait_for_exact("#round-id", within, "bond").await;
    browser.wait_for_exact("#phase", within, "open").await;
    browser
        .wait_for_text("#rounds", within, |t| {
            t.contains("bond") && t.contains(ROUND)
        })
        .await;
    assert_eq!(listed(&system, "bond").await["cap_pence"], 10_000);

    // An opened round's terms are fixed: core's reason is shown.
    browser.type_into("#terms-cap", "200").await;
    browser.click("#edit-terms").await;
    browser
        .wait_for_text("#message", within, |t| t.contains("fixed once it opens"))
        .await;

    // Back to the first round from the list, then archive the new one.
    browser
        .click(&format!("#rounds button[data-round='{ROUND}']"))
        .await;
    browser.wait_for_exact("#round-id", within, ROUND).await;
    browser.click("#rounds button[data-round='bond']").await;
    browser.wait_for_exact("#round-id", within, "bond").await;
    browser.click("#close").await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_for_exact("#phase", within, "closed").await;
    browser.click("#archive").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_for_text("#message", within, |t| t.contains("archive"))
        .await;
    browser
        .wait_for_text("#rounds", within, |t| !t.contains("bond"))
        .await;
    browser.close().await;
}
