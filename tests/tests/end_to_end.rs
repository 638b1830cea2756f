//! The whole path over real HTTP, real Redis and real Wasm: a visitor joins
//! through the waiting-room component, polls until admitted, takes a pass,
//! invests through the edge component, and the investment is settled in the
//! ledger by the settlement worker.

use crowdgate_tests::{ROUND, RoundOptions, System, Visitor, json_of, wait_for_investment_as};
use serde_json::json;
use std::time::{Duration, Instant};

/// Polls `GET /api/investments/{id}` at the edge, showing the investor's
/// pass (only its own investor may see an investment), until its status is
/// `status`; returns it.
async fn wait_for_own_investment(
    visitor: &Visitor,
    pass: &str,
    id: &str,
    status: &str,
) -> serde_json::Value {
    let url = format!("{}/api/investments/{id}", visitor.edge_url);
    wait_for_investment_as(
        &visitor.http,
        Some(pass),
        &url,
        status,
        Duration::from_secs(20),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_walks_from_queue_to_settled_investment() {
    let system = System::start(RoundOptions::default()).await;
    system.fund(&[("alice", 100_000)]).await;

    // The page is served by the waiting-room component.
    let page = reqwest::get(format!("{}/", system.edge_url)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains(r#"api("api/join""#));

    let visitor = Visitor::signed_in(&system.edge_url, "alice");
    let (code, joined) = visitor.join().await;
    assert_eq!(code, 201, "{joined}");
    let number = joined["status"]["queue_number"].as_u64().unwrap();
    assert!(number >= 1);
    assert_eq!(joined["status"]["round"], ROUND);

    // Rejoining with the ticket (cookie) keeps the same ticket and place.
    let (code, again) = visitor.join().await;
    assert_eq!(code, 200);
    assert_eq!(again["ticket"], joined["ticket"]);
    assert_eq!(again["status"]["queue_number"], number);

    let admitted = visitor.wait_until_admitted(Duration::from_secs(20)).await;
    assert_eq!(admitted["people_ahead"], 0);
    let pass = visitor.pass().await;

    let (code, accepted) = visitor
        .invest(&pass, "first-try", json!({"amount_pence": 25_000}))
        .await;
    assert_eq!(code, 201, "{accepted}");
    assert_eq!(accepted["amount_pence"], 25_000);
    assert_eq!(accepted["shares"], 250);
    assert_eq!(accepted["status"], "accepted");
    let id = accepted["investment_id"].as_str().unwrap().to_string();

    // Settled by the worker; the status is visible to alice through the edge.
    let settled = wait_for_own_investment(&visitor, &pass, &id, "settled").await;
    assert_eq!(settled["investor_id"], "alice");
    assert!(
        settled["settled_at_ms"].as_u64().unwrap() >= settled["accepted_at_ms"].as_u64().unwrap()
    );

    // The ledger: investor debited, escrow credited, shares allocated.
    let mut redis = system.redis().await;
    let balance: i64 = redis::cmd("HGET")
        .arg(crowdgate_store::keys::deployment::BALANCES)
        .arg("alice")
        .query_async(&mut redis)
        .await
        .unwrap();
    let shares: i64 = redis::cmd("HGET")
        .arg(crowdgate_store::RoundKeys::new(ROUND).shares())
        .arg("alice")
        .query_async(&mut redis)
        .await
        .unwrap();
    let escrow: i64 = redis::cmd("HGET")
        .arg(crowdgate_store::RoundKeys::new(ROUND).ledger())
        .arg("escrow_pence")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!((balance, shares, escrow), (75_000, 250, 25_000));
    assert_eq!(system.round_field("raised_pence").await, 25_000);

    // A retry with the same key replays the first answer and posts nothing new.
    let (code, replay) = visitor
        .invest(&pass, "first-try", json!({"amount_pence": 25_000}))
        .await;
    assert_eq!(code, 201);
    assert_eq!(replay["investment_id"], id.as_str());
    assert_eq!(system.stream_len().await, 1);
    assert_eq!(system.round_field("raised_pence").await, 25_000);

    // The public round total reflects it, once the ~1 s edge cache turns over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, round) = json_of(
            reqwest::get(format!("{}/api/round", system.edge_url))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200);
        if round["raised_pence"] == 25_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the round total did not reach the edge: {round}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_fails_settlement_and_releases_the_amount() {
    let system = System::start(RoundOptions::default()).await;
    system.fund(&[("bob", 500)]).await;
    let visitor = Visitor::signed_in(&system.edge_url, "bob");
    visitor.join().await;
    visitor.wait_until_admitted(Duration::from_secs(20)).await;
    let pass = visitor.pass().await;
    let (code, accepted) = visitor
        .invest(&pass, "k", json!({"amount_pence": 10_000}))
        .await;
    assert_eq!(code, 201, "{accepted}");
    let id = accepted["investment_id"].as_str().unwrap();

    let failed = wait_for_own_investment(&visitor, &pass, id, "failed").await;
    assert_eq!(failed["failure_reason"], "insufficient_funds");
    assert_eq!(
        system.round_field("raised_pence").await,
        0,
        "released from the cap"
    );
    assert_eq!(system.round_field("released_pence").await, 10_000);
    assert_eq!(system.round_field("accepted_pence").await, 10_000);
}
