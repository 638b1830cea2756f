//! The waiting-room page in a real headless Chromium: it joins, shows the
//! position falling, admits the visitor, shows the investment form, and the
//! investment is accepted and settled. Screenshots go to `tests/artifacts/`.

use crowdgate_tests::browser::{Browser, non_empty};
use crowdgate_tests::{ROUND, RoundOptions, System, core_http};
use fantoccini::Locator;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_walks_from_the_queue_to_a_settled_investment() {
    // One admitted every 500 ms, with six people already ahead.
    let system = System::start(RoundOptions {
        rate_per_minute: 120,
        batch_interval_ms: 500,
        ..Default::default()
    })
    .await;
    system.fund(&[("browser-investor", 1_000_000)]).await;
    let http = core_http();
    let mut redis = system.redis().await;
    let _: () = redis::cmd("HSET")
        .arg(crowdgate_store::RoundKeys::new(ROUND).round())
        .arg("phase")
        .arg("paused")
        .query_async(&mut redis)
        .await
        .unwrap();
    for _ in 0..6 {
        http.post(format!("{}/v1/rounds/{ROUND}/queue", system.core_url))
            .send()
            .await
            .unwrap();
    }

    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("{}/", system.edge_url))
        .await
        .unwrap();
    let first = browser
        .wait_for_text("#position", Duration::from_secs(20), |t| {
            t.parse::<u64>().is_ok()
        })
        .await;
    assert_eq!(first, "7", "six people ahead");
    browser
        .wait_for_text("#ahead", Duration::from_secs(5), |t| t == "6")
        .await;
    browser.screenshot("waiting-room-queued").await;

    // Open the room: the position falls and the visitor is admitted.
    let _: () = redis::cmd("HSET")
        .arg(crowdgate_store::RoundKeys::new(ROUND).round())
        .arg("phase")
        .arg("open")
        .query_async(&mut redis)
        .await
        .unwrap();
    browser
        .wait_for_text("#ahead", Duration::from_secs(20), |t| {
            t.parse::<u64>().is_ok_and(|n| n < 6)
        })
        .await;
    browser
        .wait_for_text("#state", Duration::from_secs(30), |t| {
            t.contains("your turn")
        })
        .await;
    let form = browser.client.find(Locator::Css("#invest")).await.unwrap();
    assert!(
        form.is_displayed().await.unwrap(),
        "the investment form is shown when admitted"
    );
    let shot = browser.screenshot("waiting-room-admitted").await;
    assert!(non_empty(&shot));

    browser
        .client
        .find(Locator::Css("#investor"))
        .await
        .unwrap()
        .send_keys("browser-investor")
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("#amount"))
        .await
        .unwrap()
        .send_keys("150")
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("#submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#result", Duration::from_secs(20), |t| {
            t.contains("Settled")
        })
        .await;
    browser.screenshot("waiting-room-settled").await;
    assert_eq!(system.round_field("raised_pence").await, 15_000);
    browser.close().await;
}
