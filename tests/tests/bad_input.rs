//! Every endpoint built so far, fed bad input: it must answer 4xx with a JSON
//! body naming the problem (and the field, where there is one), never 500,
//! and record nothing.

use crowdgate_protocol::api::EDGE_TOKEN_HEADER;
use crowdgate_protocol::{Investor, Pass, Ticket};
use crowdgate_tests::{
    OPS_TOKEN, ROUND, RoundOptions, System, Visitor, core_http, get_text, json_of, keyring, now_s,
    raw_http,
};
use serde_json::json;
use std::time::{Duration, Instant};

/// The signed-in investor the tickets and passes below belong to.
fn eve() -> Option<Investor> {
    Some(Investor {
        id: "eve".into(),
        name: None,
        max_investment_pence: None,
    })
}

fn ticket(round: &str, number: u64, expires_at: u64) -> Ticket {
    Ticket {
        round: round.into(),
        id: format!("tk{number}"),
        number: Some(number),
        entry: None,
        issued_at: now_s() - 10,
        expires_at,
        investor: eve(),
    }
}

fn pass(round: &str, expires_at: u64) -> Pass {
    Pass {
        round: round.into(),
        ticket: "tk1".into(),
        number: 1,
        issued_at: now_s() - 10,
        expires_at,
        investor: eve(),
    }
}

/// Sends `request`, asserts the status, a JSON error body, and the error code.
async fn expect(request: reqwest::RequestBuilder, status: u16, code: &str) -> serde_json::Value {
    let (got, body) = json_of(request.send().await.unwrap()).await;
    assert_eq!(got, status, "expected {status} {code}, got {got}: {body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_and_passes_are_checked_at_the_edge() {
    // Rate 0: nobody is admitted, so a valid ticket cannot get a pass.
    let system = System::start(RoundOptions {
        rate_per_minute: 0,
        ..Default::default()
    })
    .await;
    let edge = &system.edge_url;
    let http = core_http();
    let ring = keyring();
    let forger =
        crowdgate_protocol::Keyring::parse("t1:not-the-real-key-0123456789abcdef0123").unwrap();

    // Status: missing, malformed, forged, expired, other round.
    expect(
        http.get(format!("{edge}/api/status")),
        401,
        "missing_ticket",
    )
    .await;
    expect(
        http.get(format!("{edge}/api/status"))
            .bearer_auth("v1.garbage"),
        400,
        "token_malformed",
    )
    .await;
    // Garbage is a malformed ticket here as at core (only a JWT's shape is
    // taken for an identity token, which apps send in the same header).
    expect(
        http.get(format!("{edge}/api/status"))
            .bearer_auth("garbage"),
        400,
        "token_malformed",
    )
    .await;
    let (code, body) = json_of(
        core_http()
            .post(format!("{}/v1/rounds/{ROUND}/passes", system.core_url))
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("token_malformed")),
        "{body}"
    );
    let forged = forger.sign(&ticket(ROUND, 1, now_s() + 600));
    expect(
        http.get(format!("{edge}/api/status")).bearer_auth(&forged),
        403,
        "token_invalid",
    )
    .await;
    let expired = ring.sign(&ticket(ROUND, 1, now_s() - 1));
    expect(
        http.get(format!("{edge}/api/status")).bearer_auth(&expired),
        401,
        "token_expired",
    )
    .await;
    let other_round = ring.sign(&ticket("other", 1, now_s() + 600));
    expect(
        http.get(format!("{edge}/api/status"))
            .bearer_auth(&other_round),
        403,
        "token_wrong_round",
    )
    .await;
    // A pass is not a ticket.
    let a_pass = ring.sign(&pass(ROUND, now_s() + 600));
    expect(
        http.get(format!("{edge}/api/status")).bearer_auth(&a_pass),
        403,
        "token_wrong_kind",
    )
    .await;
    // A forged cookie is refused the same way.
    expect(
        http.get(format!("{edge}/api/status"))
            .header("cookie", format!("cg_ticket={forged}")),
        403,
        "token_invalid",
    )
    .await;

    // Wrong methods and unknown routes.
    expect(
        http.get(format!("{edge}/api/join")),
        405,
        "method_not_allowed",
    )
    .await;
    expect(
        http.delete(format!("{edge}/api/status")),
        405,
        "method_not_allowed",
    )
    .await;
    expect(
        http.get(format!("{edge}/api/nothing-here")),
        404,
        "not_found",
    )
    .await;
    expect(
        http.get(format!("{edge}/api/investments")),
        405,
        "method_not_allowed",
    )
    .await;
    expect(
        http.get(format!("{edge}/api/investments/not%20an%20id")),
        400,
        "invalid_field",
    )
    .await;
    // An investment is shown only to its investor's pass or ticket.
    let unknown = format!("{edge}/api/investments/inv_000000000000000000000000");
    expect(http.get(&unknown), 401, "missing_ticket").await;
    expect(
        http.get(&unknown).bearer_auth("v1.garbage"),
        400,
        "token_malformed",
    )
    .await;
    expect(
        http.get(&unknown).bearer_auth(&forged),
        403,
        "token_invalid",
    )
    .await;
    let valid = ring.sign(&ticket(ROUND, 1, now_s() + 600));
    expect(http.get(&unknown).bearer_auth(&valid), 404, "not_found").await;

    // A pass before admission is refused.
    let visitor = Visitor::new(edge);
    let (code, _) = visitor.join().await;
    assert_eq!(code, 201);
    expect(
        visitor.http.post(format!("{edge}/api/pass")),
        409,
        "not_admitted",
    )
    .await;
    expect(http.post(format!("{edge}/api/pass")), 401, "missing_ticket").await;

    // Leaving: a ticket is needed, and only a genuine one leaves; nobody's
    // place is given up by a bad request.
    let leave = format!("{edge}/api/leave");
    expect(http.post(&leave), 401, "missing_ticket").await;
    expect(
        http.post(&leave).bearer_auth("v1.garbage"),
        400,
        "token_malformed",
    )
    .await;
    expect(http.post(&leave).bearer_auth(&forged), 403, "token_invalid").await;
    expect(
        http.post(&leave).bearer_auth(&a_pass),
        403,
        "token_wrong_kind",
    )
    .await;
    expect(http.get(&leave), 405, "method_not_allowed").await;
    let (code, status) = visitor.status().await;
    assert_eq!(
        (code, &status["state"]),
        (200, &serde_json::json!("waiting")),
        "{status}"
    );
}

/// Regression: an expired pass was 401 at the edge but 403 in core. Both
/// routes — the edge's API and core's `/v1` — must now give one answer,
/// byte for byte, for an expired pass (investing) and an expired ticket
/// (claiming a pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pass_or_ticket_gets_one_answer_from_edge_and_core() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let (edge, core) = (&system.edge_url, &system.core_url);
    let http = core_http();
    let ring = keyring();
    let answer = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        (status, retry_after, response.text().await.unwrap())
    };

    let expired_pass = ring.sign(&pass(ROUND, now_s() - 1));
    let invest = |url: String| {
        http.post(url)
            .bearer_auth(&expired_pass)
            .header("content-type", "application/json")
            .header("idempotency-key", "k-expired")
            .body(r#"{"investor_id":"eve","amount_pence":5000}"#)
    };
    let at_edge = answer(invest(format!("{edge}/api/investments"))).await;
    let at_core = answer(invest(format!("{core}/v1/rounds/{ROUND}/investments"))).await;
    assert_eq!(
        at_edge, at_core,
        "edge and core disagree on an expired pass"
    );
    let body: serde_json::Value = serde_json::from_str(&at_edge.2).unwrap();
    assert_eq!(
        (at_edge.0, body["error"].as_str(), body["field"].as_str()),
        (401, Some("token_expired"), Some("pass")),
        "{body}"
    );

    let expired_ticket = ring.sign(&ticket(ROUND, 1, now_s() - 1));
    let claim = |url: String| http.post(url).bearer_auth(&expired_ticket);
    let at_edge = answer(claim(format!("{edge}/api/pass"))).await;
    let at_core = answer(claim(format!("{core}/v1/rounds/{ROUND}/passes"))).await;
    assert_eq!(
        at_edge, at_core,
        "edge and core disagree on an expired ticket"
    );
    let body: serde_json::Value = serde_json::from_str(&at_edge.2).unwrap();
    assert_eq!(
        (at_edge.0, body["error"].as_str(), body["field"].as_str()),
        (401, Some("token_expired"), Some("ticket")),
        "{body}"
    );
    assert_eq!(system.stream_len().await, 0, "nothing recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_investments_are_refused_and_record_nothing() {
    // No settlement worker: this test looks at what core recorded.
    let system = System::start_with(RoundOptions::default(), false).await;
    let http = core_http();
    let ring = keyring();
    let good_pass = ring.sign(&pass(ROUND, now_s() + 600));

    // Each case runs against the edge and against core directly: core trusts
    // nothing the edge checked.
    let targets = [
        format!("{}/api/investments", system.edge_url),
        format!("{}/v1/rounds/{ROUND}/investments", system.core_url),
    ];
    for url in &targets {
        let post = |pass: Option<&str>, key: Option<&str>, content_type: &str, body: &str| {
            let mut request = http
                .post(url)
                .header("content-type", content_type)
                .body(body.to_string());
            if let Some(pass) = pass {
                request = request.bearer_auth(pass);
            }
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            request
        };
        let ok_body = r#"{"investor_id":"eve","amount_pence":5000}"#;
        let json = "application/json";

        // Passes.
        expect(post(None, Some("k"), json, ok_body), 401, "missing_pass").await;
        expect(
            post(Some("junk"), Some("k"), json, ok_body),
            400,
            "token_malformed",
        )
        .await;
        let forged = crowdgate_protocol::Keyring::parse("t1:forged-key-0123456789abcdef0123456789")
            .unwrap()
            .sign(&pass(ROUND, now_s() + 600));
        expect(
            post(Some(&forged), Some("k"), json, ok_body),
            403,
            "token_invalid",
        )
        .await;
        // Expired: 401 at the edge and in core alike (go back for a new pass).
        let expired = ring.sign(&pass(ROUND, now_s() - 1));
        let body = expect(
            post(Some(&expired), Some("k"), json, ok_body),
            401,
            "token_expired",
        )
        .await;
        assert_eq!(body["field"], "pass");
        let ticket_as_pass = ring.sign(&ticket(ROUND, 1, now_s() + 600));
        expect(
            post(Some(&ticket_as_pass), Some("k"), json, ok_body),
            403,
            "token_wrong_kind",
        )
        .await;
        let other_round = ring.sign(&pass("elsewhere", now_s() + 600));
        expect(
            post(Some(&other_round), Some("k"), json, ok_body),
            403,
            "token_wrong_round",
        )
        .await;
        // A pass from an anonymous room names no investor: it cannot invest.
        let anonymous = ring.sign(&Pass {
            investor: None,
            ..pass(ROUND, now_s() + 600)
        });
        let body = expect(
            post(
                Some(&anonymous),
                Some("k"),
                json,
                r#"{"amount_pence":5000}"#,
            ),
            401,
            "identity_required",
        )
        .await;
        assert_eq!(body["field"], "pass");

        // Headers.
        let p = Some(good_pass.as_str());
        expect(
            post(p, Some("k"), "text/plain", ok_body),
            415,
            "unsupported_content_type",
        )
        .await;
        let body = expect(post(p, None, json, ok_body), 422, "missing_field").await;
        assert_eq!(body["field"], "Idempotency-Key");

        // Bodies.
        expect(post(p, Some("k"), json, "{not json"), 400, "malformed_json").await;
        expect(post(p, Some("k"), json, "[1,2]"), 400, "malformed_json").await;
        // investor_id is optional (the pass names the investor); one that
        // names someone else is refused, never ignored.
        let body = expect(
            post(
                p,
                Some("k"),
                json,
                r#"{"investor_id":"mallory","amount_pence":5000}"#,
            ),
            403,
            "investor_mismatch",
        )
        .await;
        assert_eq!(body["field"], "investor_id");
        for (body, field, code) in [
            (r#"{"investor_id":"eve"}"#, "amount_pence", "missing_field"),
            (r#"{"amount_pence":0}"#, "amount_pence", "invalid_amount"),
            (
                r#"{"investor_id":"eve","amount_pence":0}"#,
                "amount_pence",
                "invalid_amount",
            ),
            (
                r#"{"investor_id":"eve","amount_pence":-5000}"#,
                "amount_pence",
                "invalid_amount",
            ),
            (
                r#"{"investor_id":"eve","amount_pence":50.5}"#,
                "amount_pence",
                "invalid_amount",
            ),
            (
                r#"{"investor_id":"eve","amount_pence":"5000"}"#,
                "amount_pence",
                "invalid_amount",
            ),
            (
                r#"{"investor_id":"eve","amount_pence":99999999999999999999999}"#,
                "amount_pence",
                "invalid_amount",
            ),
            (
                r#"{"investor_id":"eve","amount_pence":9223372036854775807}"#,
                "amount_pence",
                "invalid_amount",
            ),
            (
                r#"{"investor_id":"","amount_pence":5000}"#,
                "investor_id",
                "invalid_field",
            ),
            (
                r#"{"investor_id":"e v e","amount_pence":5000}"#,
                "investor_id",
                "invalid_field",
            ),
            (
                r#"{"investor_id":12,"amount_pence":5000}"#,
                "investor_id",
                "invalid_field",
            ),
        ] {
            let answer = expect(post(p, Some("k"), json, body), 422, code).await;
            assert_eq!(answer["field"], field, "{body}: {answer}");
        }
        // Round limits, decided by the atomic script.
        for (amount, code) in [
            (500, "amount_below_minimum"),        // minimum is 1,000
            (5_050, "amount_not_whole_shares"),   // share price is 100
            (300_000, "investor_limit_exceeded"), // maximum is 200,000
        ] {
            let body = json!({"investor_id": "eve", "amount_pence": amount}).to_string();
            let answer = expect(
                post(p, Some(&format!("limit-{amount}")), json, &body),
                422,
                code,
            )
            .await;
            assert_eq!(answer["field"], "amount_pence", "{answer}");
        }
    }

    // Nothing of the above was recorded.
    assert_eq!(system.stream_len().await, 0);
    assert_eq!(system.round_field("raised_pence").await, 0);
    assert_eq!(system.round_field("accepted_count").await, 0);

    // Same key, different body → 422; same key, same body → same answer.
    // Leaving investor_id out (the pass names eve) and naming eve are the
    // same request.
    let core_invest = |key: &str, body: serde_json::Value| {
        http.post(&targets[1])
            .bearer_auth(&good_pass)
            .header("idempotency-key", key)
            .json(&body)
    };
    let (code, first) = json_of(
        core_invest("same", json!({"amount_pence": 5_000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{first}");
    assert_eq!(first["investor_id"], "eve", "{first}");
    let (code, replay) = json_of(
        core_invest("same", json!({"investor_id": "eve", "amount_pence": 5_000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, &replay["investment_id"]),
        (201, &first["investment_id"])
    );
    let answer = expect(
        core_invest("same", json!({"amount_pence": 6_000})),
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(answer["field"], "Idempotency-Key");
    // The same pass cannot be used by another investor: a body naming one
    // is refused, and a pass for the same ticket signed for another investor
    // (only someone with the signing key could make one) meets the pass's
    // binding to its first investor.
    let other = core_invest(
        "other",
        json!({"investor_id": "mallory", "amount_pence": 5_000}),
    );
    expect(other, 403, "investor_mismatch").await;
    let mallorys = ring.sign(&Pass {
        investor: Some(Investor {
            id: "mallory".into(),
            name: None,
            max_investment_pence: None,
        }),
        ..pass(ROUND, now_s() + 600)
    });
    let other = http
        .post(&targets[1])
        .bearer_auth(&mallorys)
        .header("idempotency-key", "other")
        .json(&json!({"amount_pence": 5_000}));
    expect(other, 403, "pass_bound_to_other_investor").await;
    assert_eq!(system.stream_len().await, 1);
    assert_eq!(system.round_field("raised_pence").await, 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_endpoints_refuse_bad_requests() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let core = &system.core_url;
    let http = core_http();
    expect(
        http.post(format!("{core}/v1/rounds/nope/queue")),
        404,
        "not_found",
    )
    .await;
    expect(
        http.get(format!("{core}/v1/rounds/nope/state")),
        404,
        "not_found",
    )
    .await;
    expect(http.get(format!("{core}/v1/nothing")), 404, "not_found").await;
    expect(
        http.get(format!("{core}/v1/rounds/{ROUND}/investments/bad%20id")),
        400,
        "invalid_field",
    )
    .await;
    // Ops needs a token, compared in constant time.
    expect(
        http.get(format!("{core}/ops/v1/rounds/{ROUND}")),
        401,
        "unauthorized",
    )
    .await;
    expect(
        http.get(format!("{core}/ops/v1/rounds/{ROUND}"))
            .bearer_auth("wrong-token-0123456789abcdef"),
        401,
        "unauthorized",
    )
    .await;
    let (code, body) = json_of(
        http.get(format!("{core}/ops/v1/rounds/{ROUND}"))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["fields"]["cap_pence"], "10000000");
    // What hyper refuses before any route sees it is the same JSON shape.
    let addr: std::net::SocketAddr = core.trim_start_matches("http://").parse().unwrap();
    let too_many_headers: String = (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect();
    for (what, request, status, error) in [
        (
            "a malformed request line",
            b"this is not http\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "150 headers",
            format!("GET /healthz HTTP/1.1\r\nhost: core\r\n{too_many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
    ] {
        let response = raw_http::exchange(addr, &request).await;
        assert_eq!(response.status, status, "{what}: {response:?}");
        let body = response.json_error();
        assert_eq!(body["error"], error, "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
    }
    // Health and metrics are up.
    let health = http.get(format!("{core}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The round gauges appear once the controller publishes them (each second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = get_text(&http, &format!("{core}/metrics")).await;
        if metrics.contains("crowdgate_round_cap_pence") {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_v1_answers_only_the_edge() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let core = &system.core_url;
    let anyone = reqwest::Client::new();
    let calls = [
        (
            reqwest::Method::POST,
            format!("{core}/v1/rounds/{ROUND}/queue"),
        ),
        (
            reqwest::Method::GET,
            format!("{core}/v1/rounds/{ROUND}/state"),
        ),
        (
            reqwest::Method::GET,
            format!("{core}/v1/rounds/{ROUND}/prequeue/abc"),
        ),
        (
            reqwest::Method::POST,
            format!("{core}/v1/rounds/{ROUND}/passes"),
        ),
        (
            reqwest::Method::POST,
            format!("{core}/v1/rounds/{ROUND}/investments"),
        ),
        (
            reqwest::Method::GET,
            format!("{core}/v1/rounds/{ROUND}/investments/inv_1"),
        ),
    ];
    for (method, url) in &calls {
        let answer = expect(anyone.request(method.clone(), url), 401, "unauthorized").await;
        assert_eq!(answer["field"], EDGE_TOKEN_HEADER, "{answer}");
        expect(
            anyone
                .request(method.clone(), url)
                .header(EDGE_TOKEN_HEADER, "not-the-edge-token-0123456789abcdef"),
            401,
            "unauthorized",
        )
        .await;
    }
    assert_eq!(
        system.round_field("issued").await,
        0,
        "no place was handed out"
    );
    // The edge presents its token (it loaded the room state to come up), and
    // health and metrics stay open for the platform.
    assert_eq!(system.room_state().await["round"], ROUND);
    for path in ["/healthz", "/metrics"] {
        let answer = anyone.get(format!("{core}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
}

/// Posts `total` bytes with `Transfer-Encoding: chunked` over a raw socket,
/// writing while it reads, and returns the status and body of the answer
/// (which may come before the body is sent).
async fn post_chunked(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    total: usize,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 16 * 1024];
        let mut sent = 0;
        while sent < total {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
            sent += chunk.len();
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = tokio::time::timeout_at(deadline, reader.read(&mut buf))
            .await
            .expect("an answer within 30 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    sender.abort();
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_ambiguous_bodies_are_refused_not_busy() {
    let system = System::start(RoundOptions::default()).await;
    system.fund(&[("alice", 1_000_000)]).await;
    let edge = &system.edge_url;
    let visitor = Visitor::signed_in(edge, "alice");
    visitor.join().await;
    visitor.wait_until_admitted(Duration::from_secs(20)).await;
    let pass = visitor.pass().await;
    let invest = |body: Vec<u8>, key: &str| {
        visitor
            .http
            .post(format!("{edge}/api/investments"))
            .bearer_auth(&pass)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body)
    };
    let padded = |size: usize| {
        let mut body = br#"{"investor_id":"alice","amount_pence":5000}"#.to_vec();
        body.resize(size, b' ');
        body
    };
    // Just over 64 KiB, and 10 MB: 413 with the JSON shape, never "busy".
    for size in [64 * 1024 + 1, 10 << 20] {
        let (code, body) = json_of(invest(padded(size), "big").send().await.unwrap()).await;
        assert_eq!(
            (code, body["error"].as_str()),
            (413, Some("body_too_large")),
            "{size}: {body}"
        );
    }
    let bearer = format!("Bearer {pass}");
    let (code, body) = post_chunked(
        edge,
        "/api/investments",
        &[("authorization", &bearer), ("idempotency-key", "chunked")],
        10 << 20,
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    // core itself, behind the edge, refuses the same way.
    let core_invest = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let (code, body) = json_of(
        core_http()
            .post(&core_invest)
            .bearer_auth(&pass)
            .header("idempotency-key", "big-core")
            .header("content-type", "application/json")
            .body(padded(100 * 1024))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    let (code, body) = post_chunked(
        &system.core_url,
        &format!("/v1/rounds/{ROUND}/investments"),
        &[
            ("authorization", &bearer),
            ("idempotency-key", "chunked-core"),
            (EDGE_TOKEN_HEADER, crowdgate_tests::EDGE_TOKEN),
        ],
        1 << 20,
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );

    // Money is never guessed: a repeated field is refused, naming it.
    let ambiguous =
        br#"{"investor_id":"alice","amount_pence":1000,"amount_pence":200000}"#.to_vec();
    let answer = expect(invest(ambiguous.clone(), "dup"), 400, "duplicate_field").await;
    assert_eq!(answer["field"], "amount_pence");
    let answer = expect(
        core_http()
            .post(&core_invest)
            .bearer_auth(&pass)
            .header("idempotency-key", "dup-core")
            .header("content-type", "application/json")
            .body(ambiguous),
        400,
        "duplicate_field",
    )
    .await;
    assert_eq!(answer["field"], "amount_pence");
    // Axum's own rejections have the same shape.
    expect(core_http().delete(&core_invest), 405, "method_not_allowed").await;

    // Nothing was recorded, and the pass still works for a proper request.
    assert_eq!(system.stream_len().await, 0);
    assert_eq!(system.round_field("raised_pence").await, 0);
    let (code, body) = json_of(invest(padded(200), "fine").send().await.unwrap()).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["amount_pence"], 5000);
}

/// Regressions from trying core directly with validly signed but strange
/// passes (defence in depth: forging one needs the signing key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strange_but_signed_passes_never_half_record_an_investment() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let url = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let invest = |pass: Pass, key: &str| {
        core_http()
            .post(&url)
            .bearer_auth(keyring().sign(&pass))
            .header("idempotency-key", key)
            .json(&json!({"amount_pence": 5_000}))
    };
    // A ticket id no core hands out would have named a Redis key.
    let mut odd = pass(ROUND, now_s() + 600);
    odd.ticket = "../../x:y*".into();
    let answer = expect(invest(odd, "odd"), 400, "invalid_field").await;
    assert_eq!(answer["field"], "ticket");
    // An expiry at the end of time: the pass binding's lifetime used to be
    // refused by Redis after the investment was already recorded (a "busy"
    // 503 for an investment that had in fact been taken).
    let forever = pass(ROUND, u64::MAX);
    let (code, body) = json_of(invest(forever, "forever").send().await.unwrap()).await;
    assert_eq!(code, 201, "{body}");
    let binding: i64 = redis::cmd("TTL")
        .arg(system.keys().pass_binding("tk1"))
        .query_async(&mut system.redis().await)
        .await
        .unwrap();
    assert!(
        (1..=86_400 + 60).contains(&binding),
        "binding TTL {binding}"
    );
    assert_eq!(system.stream_len().await, 1);
    assert_eq!(system.round_field("raised_pence").await, 5_000);
}

/// Regression: core held a connection whose request head never finished
/// for as long as the client liked (slowloris).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_cuts_off_a_client_that_never_finishes_its_request_head() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let system = System::start_with(RoundOptions::default(), false).await;
    let addr = system.core_url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    // Read until core closes (it may say 408 first); never more than 20 s.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("core still holds the half-sent request after 20 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// `GET /receipt/{id}` (the no-JavaScript receipt page) shows a receipt only
/// to its investor: to a visitor with neither ticket nor sign-in, and for
/// ids that are not investment ids (malformed, overlong, a path), it says
/// there is no receipt here with a 404 page, never a 500, and asks core for
/// nothing it cannot check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_refused_to_strangers_and_for_ids_that_are_not_investments() {
    let system = System::start(RoundOptions::default()).await;
    let http = reqwest::Client::new();
    let long = "a".repeat(5_000);
    for id in [
        "inv_0123456789abcdef01234567",
        "not-an-investment",
        "..%2F..%2Fetc%2Fpasswd",
        "inv_",
        long.as_str(),
    ] {
        let response = http
            .get(format!("{}/receipt/{id}", system.edge_url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let page = response.text().await.unwrap();
        assert_eq!(status, 404, "/receipt/{}: {page}", &id[..id.len().min(40)]);
        assert!(
            page.contains("There is no receipt to show here"),
            "/receipt/{}: {page}",
            &id[..id.len().min(40)]
        );
    }
    assert_eq!(
        crowdgate_tests::core_requests(
            &system.core_url,
            Some(crowdgate_protocol::routes::route::INVESTMENT)
        )
        .await,
        0,
        "a stranger's receipt lookups reached core"
    );
}
