//! The waiting-room page in a real headless Chromium, as an investor uses it:
//! it asks them to sign in, they sign in with one click on the development
//! identity provider (whose JWKS the waiting room fetches like a real
//! platform's), come back to a clean URL that says who they are and names
//! the round, wait in the queue, are admitted ("It's your turn", the pass
//! counting down), see what their amount buys, invest, and watch the receipt
//! turn from accepted to settled; then the round fills and closes, and the
//! page says so plainly. Screenshots go to `tests/artifacts/`.

use crowdgate_tests::browser::{Browser, non_empty};
use crowdgate_tests::{
    Proc, ROUND, RoundOptions, System, core_http, crowdgate_bin, identity_claims, identity_signer,
    json_of, now_s, wait_for,
};
use fantoccini::Locator;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// A port nobody listens on now (the provider must be named before it runs).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_queues_invests_and_sees_it_settle() {
    let provider = format!("http://127.0.0.1:{}", free_port());
    // One admitted every 500 ms, with six people already ahead.
    let system = System::start_with_host_env(
        RoundOptions {
            rate_per_minute: 120,
            batch_interval_ms: 500,
            ..Default::default()
        },
        true,
        vec![
            ("SPIN_VARIABLE_IDENTITY_ISSUER", provider.clone()),
            ("SPIN_VARIABLE_IDENTITY_PROVIDER_URL", provider.clone()),
            ("SPIN_VARIABLE_IDENTITY_SIGN_IN_URL", format!("{provider}/")),
        ],
    )
    .await;
    let mut identity = Proc::spawn(
        "dev-identity",
        Command::new(crowdgate_bin())
            .arg("dev-identity")
            .args(["--listen", provider.trim_start_matches("http://")])
            .arg("--dir")
            .arg(system.dir.path().join("dev-identity"))
            .args(["--audience", ROUND])
            .args(["--return-to", &format!("{}/signin", system.edge_url)]),
        system.dir.path(),
    );
    wait_for(&format!("{provider}/healthz"), &mut [&mut identity]).await;
    system.fund(&[("demo-001", 1_000_000)]).await;

    // Six investors already queue, and admission waits for the opening.
    let http = core_http();
    let mut redis = system.redis().await;
    let round_key = crowdgate_store::RoundKeys::new(ROUND).round();
    let _: () = redis::cmd("HSET")
        .arg(&round_key)
        .arg("phase")
        .arg("paused")
        .query_async(&mut redis)
        .await
        .unwrap();
    for n in 0..6 {
        let (code, body) = json_of(
            http.post(format!("{}/v1/rounds/{ROUND}/queue", system.core_url))
                .json(&json!({ "investor_id": format!("early-{n}") }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }

    // Not signed in: the page says so and links to the platform's sign-in.
    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("{}/", system.edge_url))
        .await
        .unwrap();
    browser
        .wait_for_text("#heading", Duration::from_secs(10), |t| {
            t == "Sign in to join the queue"
        })
        .await;
    browser.screenshot("waiting-room-sign-in").await;
    browser.click("#sign-in-link").await;

    // One click on the development provider signs in as Ada Lovelace.
    browser
        .client
        .find(Locator::XPath(
            "//form[input[@name='investor' and @value='demo-001']]//button",
        ))
        .await
        .expect("the provider lists demo-001")
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#investor", Duration::from_secs(20), |t| {
            t == "Investing as Ada Lovelace"
        })
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(
        url.as_str(),
        format!("{}/", system.edge_url),
        "the identity token never stays in the address bar"
    );
    browser
        .wait_for_text("#round-name", Duration::from_secs(5), |t| t == "Test round")
        .await;
    let first = browser
        .wait_for_text("#position", Duration::from_secs(20), |t| {
            t.parse::<u64>().is_ok()
        })
        .await;
    assert_eq!(first, "7", "six people ahead");
    browser
        .wait_for_text("#heading", Duration::from_secs(5), |t| {
            t == "You are in the queue"
        })
        .await;
    browser.screenshot("waiting-room-queued").await;

    // Open the room: the position falls and the visitor is admitted.
    let _: () = redis::cmd("HSET")
        .arg(&round_key)
        .arg("phase")
        .arg("open")
        .query_async(&mut redis)
        .await
        .unwrap();
    browser
        .wait_for_text("#heading", Duration::from_secs(30), |t| {
            t == "It's your turn"
        })
        .await;
    let countdown = browser
        .wait_for_text("#pass-countdown", Duration::from_secs(10), |t| {
            is_minutes_seconds(t)
        })
        .await;
    let form = browser.client.find(Locator::Css("#invest")).await.unwrap();
    assert!(form.is_displayed().await.unwrap(), "the form is shown");
    assert!(
        browser
            .client
            .find(Locator::Css("#invest input[name=investor_id]"))
            .await
            .is_err(),
        "there is no investor field: the investment is for who signed in"
    );
    let shot = browser.screenshot("waiting-room-admitted").await;
    assert!(non_empty(&shot));

    // The amount's shares, before submitting (£1 a share).
    let amount = browser.client.find(Locator::Css("#amount")).await.unwrap();
    amount.send_keys("150.50").await.unwrap();
    browser
        .wait_for_text("#shares-preview", Duration::from_secs(5), |t| {
            t.contains("Not a whole number of shares")
        })
        .await;
    amount.clear().await.unwrap();
    amount.send_keys("150").await.unwrap();
    browser
        .wait_for_text("#shares-preview", Duration::from_secs(5), |t| {
            t.contains("£150.00 buys 150 shares")
        })
        .await;
    let later = browser
        .wait_for_text("#pass-countdown", Duration::from_secs(5), |t| {
            is_minutes_seconds(t) && t < countdown.as_str()
        })
        .await;
    assert!(
        later < countdown,
        "the pass counts down: {countdown} → {later}"
    );

    browser.click("#submit").await;
    browser
        .wait_for_text("#receipt-amount", Duration::from_secs(20), |t| {
            t.contains("£150.00")
        })
        .await;
    browser
        .wait_for_text("#receipt-status", Duration::from_secs(30), |t| {
            t == "settled"
        })
        .await;
    browser
        .wait_for_text("#heading", Duration::from_secs(5), |t| {
            t == "You have invested"
        })
        .await;
    let receipt_id = browser
        .wait_for_text("#receipt-id", Duration::from_secs(5), |t| !t.is_empty())
        .await;
    // The round's figures catch up with the investment (the edge's room
    // state is cached for about a second).
    browser
        .wait_for_text("#raised", Duration::from_secs(10), |t| t == "£150.00")
        .await;
    browser.screenshot("waiting-room-settled").await;
    assert_eq!(system.round_field("raised_pence").await, 15_000);
    let (code, investment) = json_of(
        http.get(format!(
            "{}/v1/rounds/{ROUND}/investments/{receipt_id}",
            system.core_url
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{investment}");
    assert_eq!(investment["investor_id"], "demo-001", "{investment}");

    // A full round, then a closed one: the page says so plainly, with no
    // queue figures and no form.
    for (phase, heading, shot) in [
        ("full", "This round is full", "waiting-room-full"),
        ("closed", "This round is closed", "waiting-room-closed"),
    ] {
        let _: () = redis::cmd("HSET")
            .arg(&round_key)
            .arg("phase")
            .arg(phase)
            .query_async(&mut redis)
            .await
            .unwrap();
        // The edge caches the room state for about a second: reload until
        // the page shows the new phase.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            browser
                .client
                .goto(&format!("{}/", system.edge_url))
                .await
                .unwrap();
            let shown = browser
                .client
                .find(Locator::Css("#heading"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if shown == heading {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page never said {heading:?}; it says {shown:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let form = browser.client.find(Locator::Css("#invest")).await.unwrap();
        assert!(
            !form.is_displayed().await.unwrap(),
            "{phase}: no invest form"
        );
        let queue = browser.client.find(Locator::Css("#queue")).await.unwrap();
        assert!(
            !queue.is_displayed().await.unwrap(),
            "{phase}: no queue figures"
        );
        browser.screenshot(shot).await;
    }
    browser.close().await;
    identity.stop().await;
}

/// `mm:ss`, as the pass countdown shows it.
fn is_minutes_seconds(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 5
        && bytes[2] == b':'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit())
}

/// Signs `browser` in as `investor` named `name` (own maximum
/// `max_pence`), as the platform's link would: `/signin?identity_token=…`.
async fn sign_in(
    browser: &Browser,
    edge: &str,
    investor: &str,
    name: &str,
    max_pence: Option<i64>,
) {
    let mut claims = identity_claims(investor);
    claims.name = Some(name.to_string());
    claims.max_investment_pence = max_pence;
    let token = identity_signer().mint(&claims);
    browser
        .client
        .goto(&format!("{edge}/signin?identity_token={token}"))
        .await
        .unwrap();
    browser
        .wait_for_exact(
            "#investor",
            Duration::from_secs(10),
            &format!("Investing as {name}"),
        )
        .await;
}

/// Waits until it is the visitor's turn and the invest form can be used.
async fn wait_for_the_form(browser: &Browser) {
    browser
        .wait_for_exact("#heading", Duration::from_secs(30), "It's your turn")
        .await;
    browser.wait_until_enabled("#amount", true).await;
    browser.wait_until_enabled("#submit", true).await;
}

/// Sets the round's phase in Redis (as ops would, without the audit).
async fn set_phase(system: &System, phase: &str) {
    let mut redis = system.redis().await;
    let _: () = redis::cmd("HSET")
        .arg(system.keys().round())
        .arg("phase")
        .arg(phase)
        .query_async(&mut redis)
        .await
        .unwrap();
}

/// Regressions from issue 22 ("what people trip over"), with JavaScript:
/// at the front of a paused queue the progress bar looked full (a turn
/// about to come); the Invest button stayed enabled under "Above your
/// maximum"; the receipt named the investor by id, gave no time, and
/// offered no way to invest more while the pass ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_says_only_what_is_true_from_the_queue_to_the_receipt() {
    let system = System::start(RoundOptions {
        initial_phase: Some("paused"),
        ..Default::default()
    })
    .await;
    let edge = &system.edge_url;
    system.fund(&[("ada", 1_000_000)]).await;
    let browser = Browser::start().await;
    // Her own maximum, £500, is below the round's £2,000.
    sign_in(&browser, edge, "ada", "Ada Lovelace", Some(50_000)).await;

    // First in the queue, but admission is paused: no bar promising a turn.
    browser
        .wait_for_exact("#position", Duration::from_secs(20), "1")
        .await;
    browser
        .wait_for_text("#state", Duration::from_secs(5), |t| {
            t.contains("Admission is paused")
        })
        .await;
    assert!(
        !browser.is_shown("#queue-progress").await,
        "a paused queue shows a progress bar"
    );
    browser.screenshot("waiting-room-paused-at-the-front").await;

    set_phase(&system, "open").await;
    wait_for_the_form(&browser).await;

    // Over her maximum: the preview says so and the button cannot be used.
    let amount = browser.client.find(Locator::Css("#amount")).await.unwrap();
    amount.send_keys("600").await.unwrap();
    browser
        .wait_for_text("#amount-check", Duration::from_secs(5), |t| {
            t.starts_with("Above your maximum of £500.00")
        })
        .await;
    browser.wait_until_enabled("#submit", false).await;
    browser.screenshot("waiting-room-above-maximum").await;
    // Fixed: usable again.
    amount.clear().await.unwrap();
    amount.send_keys("150").await.unwrap();
    browser
        .wait_for_text("#amount-check", Duration::from_secs(5), str::is_empty)
        .await;
    browser.wait_until_enabled("#submit", true).await;
    browser.click("#submit").await;

    // The receipt names her and says when; her pass still runs.
    browser
        .wait_for_exact("#receipt-amount", Duration::from_secs(20), "£150.00")
        .await;
    browser
        .wait_for_exact("#receipt-investor", Duration::from_secs(5), "Ada Lovelace")
        .await;
    let year = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..4]
        .to_string();
    browser
        .wait_for_text("#receipt-time", Duration::from_secs(5), |t| {
            t.contains(&year)
        })
        .await;
    assert!(
        browser.is_shown("#invest-more").await,
        "no way to invest more"
    );
    browser.screenshot("waiting-room-receipt").await;

    // Investing more: the form again, and a second receipt.
    browser.click("#invest-more").await;
    wait_for_the_form(&browser).await;
    let amount = browser.client.find(Locator::Css("#amount")).await.unwrap();
    amount.send_keys("50").await.unwrap();
    browser.wait_until_enabled("#submit", true).await;
    browser.click("#submit").await;
    browser
        .wait_for_exact("#receipt-amount", Duration::from_secs(20), "£50.00")
        .await;
    assert_eq!(system.round_field("raised_pence").await, 20_000);
    browser.close().await;
}

/// Regressions from issue 22, without JavaScript: the admitted page gave no
/// pass time; the "busy" page lost the amount typed; the receipt was gone
/// after a reload (it was the answer to a POST), named the investor by id
/// and gave no time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_pass_time_the_amount_and_the_receipt_stay() {
    let mut system = System::start(RoundOptions::default()).await;
    let edge = system.edge_url.clone();
    system.fund(&[("nojs-ada", 1_000_000)]).await;
    let browser = Browser::start_without_javascript().await;
    sign_in(&browser, &edge, "nojs-ada", "Ada Lovelace", None).await;
    browser.click("form[action='api/join'] button").await;
    // The page refreshes itself until it is her turn.
    browser
        .wait_for_exact("#heading", Duration::from_secs(30), "It's your turn")
        .await;
    browser
        .wait_for_text("#nojs-pass", Duration::from_secs(5), |t| {
            t.starts_with("Your pass expires at ") && t.contains(" UTC (about 10 minutes")
        })
        .await;
    browser.screenshot("waiting-room-nojs-admitted").await;
    let key = form_key(&browser).await;

    // core is away when she presses Invest: busy, and what she typed stays,
    // under the same key (pressing again is the same attempt).
    system.kill_core();
    type_and_submit_nojs_form(&browser, "125").await;
    browser
        .wait_for_text("#state", Duration::from_secs(15), |t| {
            t.starts_with("Investments are busy right now")
        })
        .await;
    let field = browser
        .client
        .find(Locator::Css("#nojs-amount"))
        .await
        .unwrap();
    assert_eq!(field.prop("value").await.unwrap().as_deref(), Some("125"));
    assert_eq!(form_key(&browser).await, key);
    browser
        .wait_for_text("#nojs-pass", Duration::from_secs(1), |t| {
            t.contains("about 10 minutes")
        })
        .await;
    browser.screenshot("waiting-room-nojs-busy").await;

    // core is back: pressing Invest again (as the page says) goes through
    // to the receipt's own address.
    system.restart_core().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !browser
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/receipt/")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never accepted after core came back"
        );
        submit_nojs_form(&browser).await;
    }
    check_receipt(&browser).await;
    browser.screenshot("waiting-room-nojs-receipt").await;

    // A reload shows the receipt again, and, reloaded again, it settles.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        browser.client.refresh().await.unwrap();
        check_receipt(&browser).await;
        let status = browser
            .wait_for_text("#receipt-status", Duration::from_secs(1), |_| true)
            .await;
        if status == "settled" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(system.round_field("raised_pence").await, 12_500);

    // Her pass still runs: she invests more from the receipt.
    browser
        .wait_for_exact("#nojs-submit", Duration::from_secs(1), "Invest more")
        .await;
    type_and_submit_nojs_form(&browser, "25").await;
    browser
        .wait_for_exact("#receipt-amount", Duration::from_secs(10), "£25.00")
        .await;
    assert_eq!(system.round_field("raised_pence").await, 15_000);
    browser.close().await;
}

/// The no-JavaScript receipt of the £125 investment: her name, today's date
/// (UTC, as the server cannot know her time zone).
async fn check_receipt(browser: &Browser) {
    browser
        .wait_for_exact("#receipt-amount", Duration::from_secs(10), "£125.00")
        .await;
    browser
        .wait_for_exact("#receipt-investor", Duration::from_secs(1), "Ada Lovelace")
        .await;
    let today = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    browser
        .wait_for_text("#receipt-time", Duration::from_secs(1), |t| {
            t.starts_with(&today[..10]) && t.ends_with(" UTC")
        })
        .await;
}

/// The no-JavaScript form's idempotency key.
async fn form_key(browser: &Browser) -> String {
    browser
        .client
        .find(Locator::Css("input[name=key]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .expect("the form has a key")
}

/// Types `amount` into the no-JavaScript form and submits it.
async fn type_and_submit_nojs_form(browser: &Browser, amount: &str) {
    browser
        .client
        .find(Locator::Css("#nojs-amount"))
        .await
        .unwrap()
        .send_keys(amount)
        .await
        .unwrap();
    submit_nojs_form(browser).await;
}

/// Presses the no-JavaScript form's button and waits for the page it leads to.
async fn submit_nojs_form(browser: &Browser) {
    let before = browser.client.find(Locator::Css("html")).await.unwrap();
    browser.click("#nojs-submit").await;
    // The old document goes stale once the next page has loaded.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while before.tag_name().await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the form did not lead anywhere"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page asks the visitor to sign in.
async fn wait_for_sign_in_page(browser: &Browser) {
    let heading = "Sign in to join the queue";
    browser
        .wait_for_exact("#heading", Duration::from_secs(10), heading)
        .await;
}

/// `text` percent-encoded for a `data:` URL.
fn data_url(html: &str) -> String {
    let encoded: String = html
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("data:text/html,{encoded}")
}

/// Whether the browser holds cookie `name` for the page it is on.
async fn holds_cookie(browser: &Browser, name: &str) -> bool {
    browser.client.get_named_cookie(name).await.is_ok()
}

/// Regression from issue 22: a refused sign-in left the identity token in
/// the address bar (the refusal was the answer to the token's URL). Now the
/// browser is sent on to a URL without it, which says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_leaves_no_token_in_the_address_bar() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let browser = Browser::start().await;
    let mut late = identity_claims("late");
    late.exp = now_s() - 600;
    late.iat = now_s() - 1_200;
    let late = identity_signer().mint(&late);
    browser
        .client
        .goto(&format!("{edge}/signin?identity_token={late}"))
        .await
        .unwrap();
    wait_for_sign_in_page(&browser).await;
    let url = browser.client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains("identity_token") && !url.as_str().contains(&late),
        "the refused token stays in the address bar: {url}"
    );
    browser
        .wait_for_exact(
            "#sign-in-reason",
            Duration::from_secs(1),
            "Your sign-in has expired: sign in again.",
        )
        .await;
    assert!(!holds_cookie(&browser, "cg_identity").await);
    browser.screenshot("waiting-room-sign-in-refused").await;
    browser.close().await;
}

/// Regression from issue 22: any other site could sign a visitor out
/// (`GET /signout` by a link, or a form posting to `/signout`). Now only
/// the page's own "Sign out" does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_page_itself_signs_out() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let browser = Browser::start().await;
    sign_in(&browser, edge, "ada", "Ada Lovelace", None).await;
    browser
        .wait_for_text("#position", Duration::from_secs(20), |t| {
            t.parse::<u64>().is_ok()
        })
        .await;
    assert!(holds_cookie(&browser, "cg_ticket").await);

    // Another site sends the browser to /signout: by a link, and by a form.
    for attack in [
        format!(r#"<script>location.href = "{edge}/signout";</script>"#),
        format!(
            r#"<form method="post" action="{edge}/signout"></form><script>document.forms[0].submit();</script>"#
        ),
    ] {
        browser.client.goto(&data_url(&attack)).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !browser
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(edge.as_str())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the other site never sent the browser on: {attack}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser.client.goto(&format!("{edge}/")).await.unwrap();
        browser
            .wait_for_exact(
                "#investor",
                Duration::from_secs(10),
                "Investing as Ada Lovelace",
            )
            .await;
        assert!(
            holds_cookie(&browser, "cg_identity").await
                && holds_cookie(&browser, "cg_ticket").await,
            "another site signed the visitor out: {attack}"
        );
    }

    // The page's own "Sign out" does.
    browser.click("#sign-out-button").await;
    wait_for_sign_in_page(&browser).await;
    assert!(!browser.is_shown("#investor-bar").await);
    assert!(!holds_cookie(&browser, "cg_identity").await);
    assert!(!holds_cookie(&browser, "cg_ticket").await);
    browser.close().await;
}
