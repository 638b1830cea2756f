//! The ops API, CLI and dashboard against the real system: every control
//! needs a token, names the bad field, is audited with who / old / new,
//! respects the phase transitions and the cap, and takes effect at the edge.

use crowdgate_tests::browser::{Browser, non_empty};
use crowdgate_tests::{
    OPS_TOKEN, ROUND, RoundOptions, System, Visitor, core_http, get_text, json_of,
};
use fantoccini::Locator;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every control: (method, path under the round, a valid body).
fn controls() -> Vec<(reqwest::Method, &'static str, Value)> {
    use reqwest::Method;
    vec![
        (Method::PATCH, "admission", json!({"rate_per_minute": 10})),
        (Method::POST, "pause", json!({})),
        (Method::POST, "resume", json!({})),
        (Method::POST, "open", json!({})),
        (Method::POST, "close", json!({})),
        (Method::PUT, "cap", json!({"cap_pence": 20_000_000})),
    ]
}

/// A client for one system's ops API.
struct Ops {
    http: reqwest::Client,
    base: String,
}

impl Ops {
    fn new(system: &System) -> Ops {
        Ops {
            http: core_http(),
            base: format!("{}/ops/v1/rounds/{ROUND}", system.core_url),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.is_empty() || path.starts_with('?') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        }
    }

    /// A change with the test token; returns (status, body).
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        json_of(
            self.http
                .request(method, self.url(path))
                .bearer_auth(OPS_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn status(&self) -> Value {
        let (code, body) = json_of(
            self.http
                .get(self.url(""))
                .bearer_auth(OPS_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        body
    }

    async fn audit(&self, limit: usize) -> Vec<Value> {
        let url = self.url(&format!("audit?limit={limit}"));
        let (code, body) = json_of(
            self.http
                .get(url)
                .bearer_auth(OPS_TOKEN)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        body["entries"].as_array().unwrap().clone()
    }

    /// Asserts a refusal: status, error code and field.
    async fn refused(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        status: u16,
        field: &str,
    ) -> Value {
        let (code, answer) = self.send(method.clone(), path, body.clone()).await;
        assert_eq!(code, status, "{method} {path} {body}: {answer}");
        assert_eq!(answer["field"], field, "{method} {path} {body}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        answer
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_needs_a_valid_token_and_names_the_bad_field() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let ops = Ops::new(&system);
    let before = system.round_field("rate_per_minute").await;

    // No token, a wrong token, a malformed header: 401 for reads and every control.
    let mut requests: Vec<(reqwest::Method, String, Value)> = controls()
        .into_iter()
        .map(|(m, p, b)| (m, ops.url(p), b))
        .collect();
    requests.push((reqwest::Method::GET, ops.url(""), Value::Null));
    requests.push((reqwest::Method::GET, ops.url("audit"), Value::Null));
    requests.push((
        reqwest::Method::GET,
        format!("{}/ops/v1/rounds", system.core_url),
        Value::Null,
    ));
    for (method, url, body) in &requests {
        for auth in [
            None,
            Some("Bearer wrong-token-0123456789abcdef"),
            Some("Basic abc"),
            Some("Bearer "),
        ] {
            let mut request = ops.http.request(method.clone(), url).json(body);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let (code, answer) = json_of(request.send().await.unwrap()).await;
            assert_eq!(code, 401, "{method} {url} with {auth:?}: {answer}");
            assert_eq!(answer["error"], "unauthorized", "{answer}");
        }
    }

    // Values out of range, of the wrong type, or unknown: 422 naming the field.
    use reqwest::Method;
    let cases = [
        (
            Method::PATCH,
            "admission",
            json!({"rate_per_minute": -1}),
            "rate_per_minute",
        ),
        (
            Method::PATCH,
            "admission",
            json!({"rate_per_minute": 1_000_001}),
            "rate_per_minute",
        ),
        (
            Method::PATCH,
            "admission",
            json!({"rate_per_minute": "fast"}),
            "rate_per_minute",
        ),
        (
            Method::PATCH,
            "admission",
            json!({"batch_interval_ms": 50}),
            "batch_interval_ms",
        ),
        (
            Method::PATCH,
            "admission",
            json!({"max_active": 0}),
            "max_active",
        ),
        (
            Method::PATCH,
            "admission",
            json!({"pass_ttl_seconds": 5}),
            "pass_ttl_seconds",
        ),
        (Method::PATCH, "admission", json!({"speed": 5}), "speed"),
        (Method::PATCH, "admission", json!({}), "body"),
        (Method::POST, "pause", json!({"now": true}), "now"),
        (Method::POST, "resume", json!({"x": 1}), "x"),
        (Method::POST, "close", json!({"x": 1}), "x"),
        (
            Method::POST,
            "open",
            json!({"opens_at": "tomorrow"}),
            "opens_at",
        ),
        (
            Method::POST,
            "open",
            json!({"opens_at": "2001-01-01T00:00:00Z"}),
            "opens_at",
        ),
        (
            Method::POST,
            "open",
            json!({"at": "2099-01-01T00:00:00Z"}),
            "at",
        ),
        (Method::PUT, "cap", json!({}), "cap_pence"),
        (Method::PUT, "cap", json!({"cap_pence": 0}), "cap_pence"),
        (Method::PUT, "cap", json!({"cap_pence": 12.5}), "cap_pence"),
        (
            Method::PUT,
            "cap",
            json!({"cap_pence": 20_000_050}),
            "cap_pence",
        ),
    ];
    for (method, path, body, field) in cases {
        ops.refused(method, path, body, 422, field).await;
    }
    // A body that is not one unambiguous JSON object is a 400 naming it.
    ops.refused(Method::PATCH, "admission", json!([1]), 400, "body")
        .await;
    let (code, answer) = json_of(
        ops.http
            .patch(ops.url("admission"))
            .bearer_auth(OPS_TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"rate_per_minute": 60, "rate_per_minute": 60000}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, answer["error"].as_str(), answer["field"].as_str()),
        (400, Some("duplicate_field"), Some("rate_per_minute")),
        "{answer}"
    );
    // A body that does not say it is JSON is refused (415), as on the
    // investor API, and changes nothing.
    for content_type in [Some("text/plain"), None] {
        let mut request = ops
            .http
            .patch(ops.url("admission"))
            .bearer_auth(OPS_TOKEN)
            .body(r#"{"rate_per_minute": 60}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (code, answer) = json_of(request.send().await.unwrap()).await;
        assert_eq!(
            (code, answer["error"].as_str()),
            (415, Some("unsupported_content_type")),
            "{content_type:?}: {answer}"
        );
    }
    // Bad JSON is a 400 on every control.
    for (method, path, _) in controls() {
        let response = ops
            .http
            .request(method.clone(), ops.url(path))
            .bearer_auth(OPS_TOKEN)
            .header("content-type", "application/json")
            .body("{\"rate_per_minute\": ")
            .send()
            .await
            .unwrap();
        let (code, answer) = json_of(response).await;
        assert_eq!(
            (code, answer["error"].as_str()),
            (400, Some("malformed_json")),
            "{method} {path}: {answer}"
        );
    }
    // A wrong method is a JSON 405.
    let (code, answer) = json_of(
        ops.http
            .get(ops.url("pause"))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (405, Some("method_not_allowed")),
        "{answer}"
    );
    // Another round, an unknown limit: 404 and 422.
    let (code, _) = json_of(
        ops.http
            .get(format!("{}/ops/v1/rounds/nope", system.core_url))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404);
    let (code, answer) = json_of(
        ops.http
            .get(ops.url("audit?limit=0"))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, answer["field"].as_str()),
        (422, Some("limit")),
        "{answer}"
    );
    // A query parameter a route does not take is refused by name, never
    // ignored: a misspelt limit, a parameter on the status, a value sent
    // in the query instead of the body.
    for (method, path, field) in [
        (Method::GET, "audit?limt=5", "limt"),
        (Method::GET, "?verbose=1", "verbose"),
        (
            Method::PATCH,
            "admission?rate_per_minute=5",
            "rate_per_minute",
        ),
    ] {
        let body = json!({"max_active": 7});
        let answer = ops.refused(method, path, body, 422, field).await;
        assert_eq!(answer["error"], "unknown_field", "{answer}");
    }

    // Nothing was changed, and nothing audited.
    assert_eq!(system.round_field("rate_per_minute").await, before);
    assert!(ops.audit(50).await.is_empty());
    let list = json_of(
        ops.http
            .get(format!("{}/ops/v1/rounds", system.core_url))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<&Value> = list.1["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["round"])
        .collect();
    assert_eq!(ids, vec![&json!(ROUND)], "{}", list.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_with_who_old_and_new() {
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 600,
            ..Default::default()
        },
        false,
    )
    .await;
    let ops = Ops::new(&system);
    use reqwest::Method;

    let (code, answer) = ops.send(Method::PATCH, "admission", json!({"rate_per_minute": 1200, "max_active": 40, "batch_interval_ms": 500, "pass_ttl_seconds": 300})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["applied"]["new"]["rate_per_minute"], 1200);
    assert_eq!(answer["applied"]["old"]["rate_per_minute"], 600);
    // The same rate again changes nothing: said so, and not audited.
    let (code, answer) = ops
        .send(Method::PATCH, "admission", json!({"rate_per_minute": 1200}))
        .await;
    assert_eq!((code, &answer["applied"]), (200, &Value::Null), "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("nothing changed")),
        "{answer}"
    );
    assert_eq!(ops.audit(50).await.len(), 1);
    for (method, path, body) in [
        (Method::POST, "pause", json!({})),
        (Method::POST, "resume", json!({})),
        (Method::PUT, "cap", json!({"cap_pence": 20_000_000})),
        (Method::POST, "close", json!({})),
    ] {
        let (code, answer) = ops.send(method, path, body).await;
        assert_eq!(code, 200, "{path}: {answer}");
    }

    // The round hash holds the new values.
    for (field, value) in [
        ("rate_per_minute", 1200),
        ("max_active", 40),
        ("batch_interval_ms", 500),
        ("pass_ttl_seconds", 300),
        ("cap_pence", 20_000_000),
    ] {
        assert_eq!(system.round_field(field).await, value, "{field}");
    }
    let status = ops.status().await;
    assert_eq!(status["phase"], "closed");
    assert_eq!(status["admission"]["rate_per_minute"], 1200);

    // Newest first; who, action, old and new for each.
    let entries = ops.audit(50).await;
    let summary: Vec<(String, Value, Value)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["operator"], "tester", "{e}");
            assert!(e["at_ms"].as_u64().unwrap() > 0);
            (
                e["action"].as_str().unwrap().to_string(),
                e["old"].clone(),
                e["new"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "close".into(),
                json!({"phase": "open"}),
                json!({"phase": "closed"})
            ),
            (
                "set_cap".into(),
                json!({"cap_pence": 10_000_000}),
                json!({"cap_pence": 20_000_000})
            ),
            (
                "resume".into(),
                json!({"phase": "paused"}),
                json!({"phase": "open"})
            ),
            (
                "pause".into(),
                json!({"phase": "open"}),
                json!({"phase": "paused"})
            ),
            (
                "admission".into(),
                json!({"rate_per_minute": 600, "batch_interval_ms": 200, "max_active": 100_000, "pass_ttl_seconds": 600}),
                json!({"rate_per_minute": 1200, "batch_interval_ms": 500, "max_active": 40, "pass_ttl_seconds": 300}),
            ),
        ]
    );
    assert_eq!(ops.audit(2).await.len(), 2);
    // One audit entry per applied change, in the stream itself.
    let mut redis = system.redis().await;
    let len: u64 = redis::cmd("XLEN")
        .arg(crowdgate_store::RoundKeys::new(ROUND).audit())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 5);

    let metrics = get_text(&ops.http, &format!("{}/metrics", system.core_url)).await;
    assert!(metrics.contains("crowdgate_ops_changes_total"), "{metrics}");
    assert!(!metrics.contains(OPS_TOKEN));
    assert!(
        !system.core.log().contains(OPS_TOKEN),
        "core logged the ops token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_transitions_are_checked() {
    let opens_at =
        humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string();
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(opens_at),
            ..Default::default()
        },
        false,
    )
    .await;
    let ops = Ops::new(&system);
    use reqwest::Method;
    assert_eq!(ops.status().await["phase"], "scheduled");

    // A scheduled round can be rescheduled or opened, not paused or resumed.
    ops.refused(Method::POST, "pause", json!({}), 409, "phase")
        .await;
    ops.refused(Method::POST, "resume", json!({}), 409, "phase")
        .await;
    let later = humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(7200))
        .to_string();
    let (code, answer) = ops
        .send(Method::POST, "open", json!({"opens_at": later}))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(ops.status().await["phase"], "scheduled");
    let expected_ms = humantime::parse_rfc3339(&later)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert_eq!(system.round_field("opens_at_ms").await as u128, expected_ms);

    let (code, answer) = ops.send(Method::POST, "open", json!({})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(ops.status().await["phase"], "open");
    let refusal = ops
        .refused(Method::POST, "open", json!({}), 409, "phase")
        .await;
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("already open"),
        "{refusal}"
    );
    ops.refused(Method::POST, "resume", json!({}), 409, "phase")
        .await;

    assert_eq!(ops.send(Method::POST, "pause", json!({})).await.0, 200);
    ops.refused(Method::POST, "pause", json!({}), 409, "phase")
        .await;
    let refusal = ops
        .refused(Method::POST, "open", json!({}), 409, "phase")
        .await;
    assert!(
        refusal["message"].as_str().unwrap().contains("resume"),
        "{refusal}"
    );

    // Closed is final.
    assert_eq!(ops.send(Method::POST, "close", json!({})).await.0, 200);
    for (method, path, body) in controls().into_iter().filter(|(_, p, _)| *p != "admission") {
        let refusal = ops.refused(method, path, body, 409, "phase").await;
        assert!(
            refusal["message"].as_str().unwrap().contains("closed"),
            "{refusal}"
        );
    }
    assert_eq!(ops.status().await["phase"], "closed");
    // Refusals are not audited: reschedule, open, pause, close.
    assert_eq!(ops.audit(50).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_never_goes_to_or_below_raised_and_a_full_round_reopens() {
    // No settlement worker: the investment stays accepted, so raised stays put.
    let round = RoundOptions {
        cap_pence: 10_000,
        ..Default::default()
    };
    let system = System::start_with(round, false).await;
    let ops = Ops::new(&system);
    use reqwest::Method;

    let visitor = Visitor::signed_in(&system.edge_url, "ann");
    let (code, body) = visitor.join_and_invest("ann", 10_000, "k1").await;
    assert_eq!(code, 201, "{body}");
    let status = ops.status().await;
    assert_eq!(
        (
            status["phase"].as_str(),
            status["money"]["raised_pence"].as_i64()
        ),
        (Some("full"), Some(10_000))
    );

    // A full round cannot be resumed or paused.
    let refusal = ops
        .refused(Method::POST, "resume", json!({}), 409, "phase")
        .await;
    assert!(
        refusal["message"].as_str().unwrap().contains("cap"),
        "{refusal}"
    );
    ops.refused(Method::POST, "pause", json!({}), 409, "phase")
        .await;
    // At or below raised: refused, naming cap_pence.
    for cap in [5_000, 10_000] {
        ops.refused(
            Method::PUT,
            "cap",
            json!({"cap_pence": cap}),
            422,
            "cap_pence",
        )
        .await;
    }
    assert_eq!(system.round_field("cap_pence").await, 10_000);
    // Above raised: the round reopens.
    let (code, answer) = ops
        .send(Method::PUT, "cap", json!({"cap_pence": 30_000}))
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["applied"]["new"],
        json!({"cap_pence": 30_000, "phase": "open"})
    );
    assert_eq!(
        answer["applied"]["old"],
        json!({"cap_pence": 10_000, "phase": "full"})
    );
    let status = ops.status().await;
    assert_eq!(
        (
            status["phase"].as_str(),
            status["money"]["cap_pence"].as_i64()
        ),
        (Some("open"), Some(30_000))
    );
    assert_eq!(status["money"]["accepted_count"], 1);
    assert_eq!(status["settlement"]["stream_length"], 1);
    assert_eq!(status["settlement"]["backlog"], 1);
    // Lowering it again is fine while it leaves room for the smallest
    // investment (£10 here); £1 of room would be a round nobody can invest in.
    ops.refused(
        Method::PUT,
        "cap",
        json!({"cap_pence": 10_100}),
        422,
        "cap_pence",
    )
    .await;
    assert_eq!(
        ops.send(Method::PUT, "cap", json!({"cap_pence": 11_000}))
            .await
            .0,
        200
    );
    ops.refused(
        Method::PUT,
        "cap",
        json!({"cap_pence": 9_900}),
        422,
        "cap_pence",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_change_reaches_the_edge_within_seconds_and_pause_holds_the_queue() {
    // Rate 0: nobody is admitted until ops set a rate.
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 0,
            ..Default::default()
        },
        false,
    )
    .await;
    let ops = Ops::new(&system);
    use reqwest::Method;

    let first = Visitor::new(&system.edge_url);
    assert_eq!(first.join().await.0, 201);
    // The controller had its chances to admit, and did not.
    system.wait_for_admission_steps(3).await;
    assert_eq!(system.round_field("admitted_up_to").await, 0);
    let (_, status) = first.status().await;
    assert_eq!(status["state"], "waiting", "{status}");

    let changed = Instant::now();
    let (code, answer) = ops
        .send(Method::PATCH, "admission", json!({"rate_per_minute": 6000}))
        .await;
    assert_eq!(code, 200, "{answer}");
    first.wait_until_admitted(Duration::from_secs(3)).await;
    eprintln!("admitted {:?} after the rate change", changed.elapsed());

    // Paused: a new joiner is not admitted, and sees the pause.
    assert_eq!(ops.send(Method::POST, "pause", json!({})).await.0, 200);
    let second = Visitor::new(&system.edge_url);
    assert_eq!(second.join().await.0, 201);
    system.wait_for_admission_steps(3).await;
    assert_eq!(system.round_field("admitted_up_to").await, 1);
    // The edge shows the pause once its ~1 s room-state cache turns over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = second.status().await;
        assert_ne!(status["state"], "admitted", "{status}");
        if status["state"] == "paused" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge did not show the pause: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(system.round_field("admitted_up_to").await, 1);

    // Resumed: admission continues.
    assert_eq!(ops.send(Method::POST, "resume", json!({})).await.0, 200);
    second.wait_until_admitted(Duration::from_secs(3)).await;
    assert_eq!(system.round_field("admitted_up_to").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_status_sets_the_rate_and_explains_errors() {
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 600,
            ..Default::default()
        },
        false,
    )
    .await;
    let core = system.core_url.as_str();
    let ops = |extra: &[&str]| {
        let mut args = vec![
            "ops",
            "--core-url",
            core,
            "--token",
            OPS_TOKEN,
            "--round",
            ROUND,
        ];
        args.extend_from_slice(extra);
        system.crowdgate(&args)
    };

    let (ok, out, err) = ops(&["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("phase       open"), "{out}");
    assert!(out.contains("600/min"), "{out}");

    let (ok, out, err) = ops(&["set-rate", "120", "--max-active", "50"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("tester") && out.contains("rate_per_minute: 600 → 120"),
        "{out}"
    );
    assert_eq!(system.round_field("rate_per_minute").await, 120);
    assert_eq!(system.round_field("max_active").await, 50);

    let (ok, out, err) = ops(&["--json", "status"]);
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["admission"]["rate_per_minute"], 120);

    for verb in [
        &["pause"][..],
        &["resume"],
        &["set-cap", "20000000"],
        &["close"],
    ] {
        let (ok, _, err) = ops(verb);
        assert!(ok, "{verb:?}: {err}");
    }
    let (ok, out, _) = ops(&["audit", "--limit", "2"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("close") && lines[1].contains("set_cap"),
        "{out}"
    );

    // Mistakes say what to fix.
    let (ok, _, err) = ops(&["open"]);
    assert!(!ok && err.contains("closed"), "{err}");
    let (ok, _, err) = ops(&["set-rate", "5000000"]);
    assert!(!ok && err.contains("`rate_per_minute`"), "{err}");
    let (ok, _, err) = system.crowdgate(&[
        "ops",
        "--core-url",
        core,
        "--token",
        "wrong-token-0123456789abcdef",
        "--round",
        ROUND,
        "status",
    ]);
    assert!(
        !ok && err.contains("set CROWDGATE_OPS_TOKEN to the token `crowdgate up` printed"),
        "{err}"
    );
    let (ok, _, err) = system.crowdgate(&["ops", "--core-url", core, "--round", ROUND, "status"]);
    assert!(!ok && err.contains("CROWDGATE_OPS_TOKEN"), "{err}");
    let closed_port = crowdgate_tests::free_port();
    let (ok, _, err) = system.crowdgate(&[
        "ops",
        "--core-url",
        &format!("http://127.0.0.1:{closed_port}"),
        "--token",
        OPS_TOKEN,
        "status",
    ]);
    assert!(
        !ok && err.contains("is core running? start it with `./dev up`"),
        "{err}"
    );
    let (ok, _, err) = system.crowdgate(&[
        "ops",
        "--core-url",
        core,
        "--token",
        OPS_TOKEN,
        "--round",
        "nope",
        "status",
    ]);
    assert!(!ok && err.contains("--round"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser_changes_the_rate_and_pauses() {
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 0,
            ..Default::default()
        },
        false,
    )
    .await;
    let browser = Browser::start().await;
    let client = &browser.client;
    let visitor = Visitor::new(&system.edge_url);
    assert_eq!(visitor.join().await.0, 201);

    client
        .goto(&format!("{}/ops", system.core_url))
        .await
        .unwrap();
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(OPS_TOKEN)
        .await
        .unwrap();
    client
        .find(Locator::Css("#sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#round-id", Duration::from_secs(10), |t| t == ROUND)
        .await;
    browser
        .wait_for_text("#phase", Duration::from_secs(10), |t| t == "open")
        .await;
    browser
        .wait_for_text("#f-queue", Duration::from_secs(10), |t| t == "1")
        .await;

    // Set the rate; the waiting visitor is admitted.
    let rate = client.find(Locator::Css("#rate_per_minute")).await.unwrap();
    rate.clear().await.unwrap();
    rate.send_keys("6000").await.unwrap();
    client
        .find(Locator::Css("#apply-admission"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#message", Duration::from_secs(5), |t| {
            t.starts_with("Done")
        })
        .await;
    assert_eq!(system.round_field("rate_per_minute").await, 6000);
    visitor.wait_until_admitted(Duration::from_secs(3)).await;

    // Pause, accepting the confirmation.
    client
        .find(Locator::Css("#pause"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let prompt = client.get_alert_text().await.unwrap();
    assert!(prompt.contains("Pause"), "{prompt}");
    client.accept_alert().await.unwrap();
    browser
        .wait_for_text("#phase", Duration::from_secs(5), |t| t == "paused")
        .await;
    assert_eq!(Ops::new(&system).status().await["phase"], "paused");
    // The edge sees it too.
    let late = Visitor::new(&system.edge_url);
    assert_eq!(late.join().await.0, 201);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, s) = late.status().await;
        if s["state"] == "paused" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge did not show the pause: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The audit table shows both changes.
    browser
        .wait_for_text("#audit", Duration::from_secs(8), |t| {
            t.contains("pause") && t.contains("admission")
        })
        .await;

    // Which Redis node is primary (here the one node), for watching a
    // failover.
    let redis_port = system.redis.port;
    browser
        .wait_for_text("#f-redis", Duration::from_secs(5), |t| {
            t.contains(&format!("127.0.0.1:{redis_port}")) && t.contains("single node")
        })
        .await;

    let shot = browser.screenshot("ops-dashboard").await;
    assert!(non_empty(&shot), "{}", shot.display());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_queue_money_and_settlement() {
    let system = System::start(RoundOptions::default()).await;
    system.fund(&[("ann", 100_000)]).await;
    let ops = Ops::new(&system);
    let visitor = Visitor::signed_in(&system.edge_url, "ann");
    assert_eq!(visitor.join().await.0, 201);
    visitor.wait_until_admitted(Duration::from_secs(10)).await;
    let pass = visitor.pass().await;
    let (code, body) = visitor
        .invest(&pass, "k1", json!({"amount_pence": 10_000}))
        .await;
    assert_eq!(code, 201, "{body}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = ops.status().await;
        if status["settlement"]["settled_count"] == 1 {
            break status;
        }
        assert!(Instant::now() < deadline, "not settled: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let q = &status["queue"];
    assert_eq!(
        (
            q["issued"].as_i64(),
            q["admitted_up_to"].as_i64(),
            q["queue_length"].as_i64()
        ),
        (Some(1), Some(1), Some(0)),
        "{status}"
    );
    let m = &status["money"];
    assert_eq!(
        (
            m["raised_pence"].as_i64(),
            m["accepted_count"].as_i64(),
            m["investor_count"].as_i64()
        ),
        (Some(10_000), Some(1), Some(1)),
        "{status}"
    );
    let s = &status["settlement"];
    assert_eq!(s["failed_count"], 0, "{status}");
    assert_eq!(s["stream_length"], 1, "{status}");
    assert_eq!(
        (
            s["pending"].as_u64(),
            s["backlog"].as_u64(),
            s["dead_letters"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{status}"
    );
    assert!(s["oldest_unsettled_age_ms"].is_null(), "{status}");

    // With the worker stopped, the next investment waits: backlog and lag show it.
    let worker = system.settle.as_ref().unwrap();
    worker.stop().await;
    let (code, body) = visitor
        .invest(&pass, "k2", json!({"amount_pence": 10_000}))
        .await;
    assert_eq!(code, 201, "{body}");
    // The lag grows while the entry waits, and the backlog holds it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ops.status().await;
        let s = &status["settlement"];
        assert_eq!(
            (s["stream_length"].as_u64(), s["backlog"].as_u64()),
            (Some(2), Some(1)),
            "{status}"
        );
        let age = s["oldest_unsettled_age_ms"].as_u64();
        assert!(age.is_some(), "{status}");
        if age >= Some(300) {
            break;
        }
        assert!(Instant::now() < deadline, "the lag did not grow: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.signal(libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ops.status().await;
        if status["settlement"]["settled_count"] == 2 && status["settlement"]["backlog"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after SIGCONT: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
