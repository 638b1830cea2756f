//! The waiting room's fairness promises, with real core processes and Redis:
//! the pre-queue is a uniform lottery and everyone after opening is served in
//! arrival order (10,000 investors, each signed in and joining through the
//! edge), admission keeps the ops-set rate and maximum of active
//! investors, replicas never double-advance, and no-shows never stall it;
//! the wait estimate follows the rate admission achieves, and says when a
//! full room makes it uncertain; a visitor who leaves the queue frees their
//! place at once, and one whose turn would probably come after the round
//! sells out is told so and can leave.

use crowdgate_protocol::Ticket;
use crowdgate_protocol::draw::{self, DrawKey};
use crowdgate_protocol::routes::route;
use crowdgate_tests::browser::Browser;
use crowdgate_tests::{
    OPS_TOKEN, ROUND, RoundOptions, System, Visitor, core_http, core_requests, get_text,
    identity_token, json_of, keyring, now_s, post_invest_form, ticket_token,
};
use fantoccini::Locator;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rfc3339_in(seconds: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(now_s() + seconds),
    )
    .to_string()
}

/// POST /v1/rounds/{round}/queue for a new signed-in investor of its own
/// (`joiner-<n>`, as the edge sends once it has verified an identity), so
/// every call is another person taking a new place → (ticket id, number or
/// None for pre-queue, investor id).
async fn join_core(http: &reqwest::Client, core: &str) -> (String, Option<u64>, String) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let investor = format!(
        "joiner-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (code, body) = json_of(
        http.post(format!("{core}/v1/rounds/{ROUND}/queue"))
            .json(&serde_json::json!({"investor_id": investor}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    (
        body["ticket_id"].as_str().unwrap().to_string(),
        body["queue_number"].as_u64(),
        investor,
    )
}

/// POST /api/join through the edge as a new investor signed in by the test
/// platform (an app presenting its identity token) → (ticket id, number or
/// None for pre-queue).
async fn join_signed_in(http: &reqwest::Client, edge: &str) -> (String, Option<u64>) {
    let (ticket, _, number) = join_signed_in_with_token(http, edge).await;
    (ticket.id, number)
}

/// [`join_signed_in`], keeping the signed ticket and its token.
async fn join_signed_in_with_token(
    http: &reqwest::Client,
    edge: &str,
) -> (Ticket, String, Option<u64>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let investor = format!(
        "visitor-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (code, body) = json_of(
        http.post(format!("{edge}/api/join"))
            .bearer_auth(identity_token(&investor))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let ticket: Ticket = keyring()
        .verify(body["ticket"].as_str().unwrap(), ROUND, now_s())
        .expect("the edge signs a valid ticket");
    assert_eq!(
        ticket.investor.as_ref().map(|i| i.id.clone()),
        Some(investor)
    );
    let token = body["ticket"].as_str().unwrap().to_string();
    (ticket, token, body["status"]["queue_number"].as_u64())
}

async fn admitted_up_to(http: &reqwest::Client, core: &str) -> u64 {
    let (_, state) = json_of(
        http.get(format!("{core}/v1/rounds/{ROUND}/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    state["admitted_up_to"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prequeue_is_a_uniform_lottery_and_later_joiners_are_fifo() {
    const BEFORE: usize = 5_000;
    const AFTER: usize = 5_000;
    // Scheduled an hour out; once everyone is in the pre-queue, ops move the
    // opening to a moment away, and the clock opens it. (A fixed opening
    // time would have a loaded machine's slow joins arrive after it.)
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(rfc3339_in(3_600)),
            rate_per_minute: 0,
            ..Default::default()
        },
        false,
    )
    .await;
    let http = core_http();
    let core = system.core_url.clone();
    let edge = system.edge_url.clone();

    // Pre-queue: 16 signed-in visitors joining at a time through the edge;
    // arrival order is completion order.
    let arrivals = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(BEFORE)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (http, edge, arrivals, next) =
                (http.clone(), edge.clone(), arrivals.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < BEFORE {
                    let (ticket, token, number) = join_signed_in_with_token(&http, &edge).await;
                    assert_eq!(number, None, "joined before opening: pre-queue");
                    let entry = ticket.entry.expect("a pre-queue ticket carries its entry");
                    arrivals.lock().await.push((ticket.id, token, entry));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let arrivals = Arc::try_unwrap(arrivals).unwrap().into_inner();

    // Before opening, nobody has a number, and the draw shows only its
    // commitment.
    let (code, _) = json_of(
        http.get(format!(
            "{core}/v1/rounds/{ROUND}/prequeue/{}",
            arrivals[0].0
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(code, 409);
    let (code, committed) =
        json_of(http.get(format!("{edge}/api/draw")).send().await.unwrap()).await;
    assert_eq!(code, 200, "{committed}");
    assert!(
        committed["revealed"].is_null(),
        "revealed before opening: {committed}"
    );
    let commitment = committed["commitment"].as_str().unwrap().to_string();
    let (code, body) = json_of(
        http.post(format!("{core}/ops/v1/rounds/{ROUND}/open"))
            .bearer_auth(OPS_TOKEN)
            .json(&serde_json::json!({ "opens_at": rfc3339_in(2) }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // The round opens by its clock (core's controller flips the phase).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = system.room_state().await;
        if state["phase"] == "open" {
            break;
        }
        assert!(Instant::now() < deadline, "the round never opened: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After opening: strictly first come, first served, behind the pre-queue.
    let mut last = BEFORE as u64;
    for _ in 0..AFTER {
        let (_, number) = join_signed_in(&http, &edge).await;
        let number = number.expect("after opening joiners get a number");
        assert_eq!(
            number,
            last + 1,
            "post-open joiners are numbered in arrival order"
        );
        last = number;
    }

    // The pre-queue's numbers, as each visitor learns theirs: a status poll
    // through the edge, which computes it from the published draw without
    // asking core (no pre-queue look-ups, and no more calls to core than
    // the edge's room-state refreshes, whatever the crowd).
    let prequeue_calls = core_requests(&core, Some(route::PREQUEUE)).await;
    let core_calls = core_requests(&core, None).await;
    let polling = Instant::now();
    let mut numbers = Vec::with_capacity(BEFORE);
    for chunk in arrivals.chunks(64) {
        let polls = chunk.iter().map(|(_, token, _)| {
            let (http, url) = (http.clone(), format!("{edge}/api/status"));
            let token = token.clone();
            async move { json_of(http.get(url).bearer_auth(token).send().await.unwrap()).await }
        });
        for (code, body) in futures::future::join_all(polls).await {
            assert_eq!(code, 200, "{body}");
            numbers.push(body["queue_number"].as_u64().expect("drawn at opening"));
        }
    }
    let polled_for = polling.elapsed().as_secs() + 1;
    assert_eq!(
        core_requests(&core, Some(route::PREQUEUE)).await,
        prequeue_calls,
        "the edge asked core for a pre-queue number"
    );
    let calls = core_requests(&core, None).await - core_calls;
    println!("{BEFORE} first polls after opening in {polled_for} s: {calls} calls to core");
    assert!(
        calls <= 4 * polled_for + 4,
        "{calls} calls to core for {BEFORE} polls in {polled_for} s: the crowd reached core"
    );
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=BEFORE as u64).collect::<Vec<_>>());

    // Anyone can check the draw: the secret revealed matches the commitment
    // shown before opening, the entries' digest is the chain over the
    // ticket ids in entry order, the key follows, and every number follows
    // from the key and the ticket's entry.
    let (code, revealed) =
        json_of(http.get(format!("{edge}/api/draw")).send().await.unwrap()).await;
    assert_eq!(code, 200, "{revealed}");
    assert_eq!(revealed["commitment"], commitment.as_str());
    let reveal = &revealed["revealed"];
    let secret = reveal["secret"].as_str().unwrap();
    assert_eq!(draw::commitment(secret).unwrap(), commitment);
    let mut in_entry_order: Vec<&(String, String, u64)> = arrivals.iter().collect();
    in_entry_order.sort_by_key(|(_, _, entry)| *entry);
    assert_eq!(
        in_entry_order
            .iter()
            .map(|(_, _, e)| *e)
            .collect::<Vec<_>>(),
        (1..=BEFORE as u64).collect::<Vec<_>>()
    );
    let digest = draw::entries_digest(
        &commitment,
        in_entry_order.iter().map(|(t, _, _)| t.as_str()),
    );
    assert_eq!(reveal["entries_digest"], digest.as_str());
    let key = DrawKey::derive(secret, &digest).unwrap();
    assert_eq!(reveal["key"], key.to_hex().as_str());
    assert_eq!(reveal["size"], BEFORE as u64);
    for ((_, _, entry), number) in arrivals.iter().zip(&numbers) {
        assert_eq!(draw::number(&key, BEFORE as u64, *entry).unwrap(), *number);
    }
    // A visitor checking with their own ticket is told their entry and number.
    let (code, mine) = json_of(
        http.get(format!("{edge}/api/draw"))
            .bearer_auth(&arrivals[7].1)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{mine}");
    assert_eq!(
        (mine["your_entry"].as_u64(), mine["your_number"].as_u64()),
        (Some(arrivals[7].2), Some(numbers[7]))
    );

    // Uncorrelated with arrival: Spearman's rho of (arrival index, number).
    let n = BEFORE as f64;
    let d2: f64 = numbers
        .iter()
        .enumerate()
        .map(|(i, &num)| ((i + 1) as f64 - num as f64).powi(2))
        .sum();
    let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
    // Independence of arrival decile and number decile: chi-square, 81 dof.
    let mut table = [[0f64; 10]; 10];
    for (i, &num) in numbers.iter().enumerate() {
        table[i * 10 / BEFORE][((num - 1) as usize) * 10 / BEFORE] += 1.0;
    }
    let expected = n / 100.0;
    let chi2: f64 = table
        .iter()
        .flatten()
        .map(|&o| (o - expected).powi(2) / expected)
        .sum();
    println!(
        "pre-queue lottery over {BEFORE} visitors: spearman rho = {rho:.4}, chi-square (81 dof) = {chi2:.1}"
    );
    assert!(
        rho.abs() < 0.06,
        "pre-queue place correlates with join time: rho = {rho}"
    );
    // 81 dof: p = 0.001 at 124.8.
    assert!(
        chi2 < 124.8,
        "arrival decile and place are not independent: chi2 = {chi2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rejoin_and_second_tab_keep_the_place_through_opening() {
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(rfc3339_in(6)),
            ..Default::default()
        },
        false,
    )
    .await;
    let visitor = Visitor::new(&system.edge_url);
    let (code, joined) = visitor.join().await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(joined["status"]["state"], "prequeue");
    assert!(joined["status"]["queue_number"].is_null());
    assert!(joined["status"]["opens_in_seconds"].as_u64().unwrap() <= 6);
    // Rejoin (refresh) and a second tab (same cookie jar): the same ticket.
    let (code, again) = visitor.join().await;
    assert_eq!((code, &again["ticket"]), (200, &joined["ticket"]));
    // An app with the token and no cookies: the same place.
    let app = core_http();
    let (code, status) = json_of(
        app.get(format!("{}/api/status", system.edge_url))
            .bearer_auth(joined["ticket"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, status["state"].as_str()), (200, Some("prequeue")));

    // After opening the ticket learns its number once and is re-issued.
    let deadline = Instant::now() + Duration::from_secs(15);
    let numbered = loop {
        let (code, status) = visitor.status().await;
        assert_eq!(code, 200, "{status}");
        if status["queue_number"].is_u64() {
            break status;
        }
        assert!(Instant::now() < deadline, "never drew a number: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        numbered["queue_number"], 1,
        "the only pre-queue member draws number 1"
    );
    let reissued = numbered["ticket"]
        .as_str()
        .expect("re-issued ticket in the status");
    let (_, again) = visitor.join().await;
    assert_eq!(
        again["ticket"], reissued,
        "the cookie now holds the numbered ticket"
    );
    assert_eq!(again["status"]["queue_number"], 1);
    // A visitor joining now goes behind the pre-queue.
    let (_, later) = Visitor::new(&system.edge_url).join().await;
    assert_eq!(later["status"]["queue_number"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prequeue_says_what_is_true_instead_of_zeros() {
    let system = System::start_with(
        RoundOptions {
            opens_at: Some(rfc3339_in(3_600)),
            ..Default::default()
        },
        false,
    )
    .await;
    let visitors: Vec<Visitor> = (0..3).map(|_| Visitor::new(&system.edge_url)).collect();
    for visitor in &visitors {
        let (code, joined) = visitor.join().await;
        assert_eq!(code, 201, "{joined}");
    }
    // The edge caches the room state for about a second: wait for the count.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let (code, status) = visitors[0].status().await;
        assert_eq!(code, 200, "{status}");
        if status["registered"] == 3 {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "registered never reached 3: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["state"], "prequeue");
    for absent in ["position", "people_ahead", "queue_number"] {
        assert!(
            status[absent].is_null(),
            "no {absent} before the draw: {status}"
        );
    }
    assert!(
        status["opens_in_seconds"].as_u64().unwrap() > 3_500,
        "{status}"
    );

    // The page, as the visitor sees it (no JavaScript): the same facts.
    let page = get_text(&visitors[0].http, &format!("{}/", system.edge_url)).await;
    for text in [
        "3 people have registered so far",
        "drawn at opening",
        "arriving early or refreshing changes nothing",
    ] {
        assert!(page.contains(text), "the page does not say {text:?}");
    }
    assert!(
        !page.contains(r#"<b id="position">0</b>"#),
        "a made-up position"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_keeps_the_rate_and_batch_size_in_queue_order() {
    // 600 people a minute in batches every 500 ms: 5 per batch.
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 600,
            batch_interval_ms: 500,
            ..Default::default()
        },
        false,
    )
    .await;
    let http = core_http();
    for expected in 1..=200u64 {
        assert_eq!(join_core(&http, &system.core_url).await.1, Some(expected));
    }
    let started = Instant::now();
    let mut samples = vec![admitted_up_to(&http, &system.core_url).await];
    while started.elapsed() < Duration::from_secs(5) {
        // The sampling interval of this 5 s measurement, not a wait: well
        // under the 500 ms batch interval, so each batch is its own step.
        tokio::time::sleep(Duration::from_millis(100)).await;
        samples.push(admitted_up_to(&http, &system.core_url).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    for pair in samples.windows(2) {
        assert!(
            pair[1] >= pair[0],
            "the cursor never moves back: {samples:?}"
        );
        assert!(
            pair[1] - pair[0] <= 5,
            "at most one batch of 5 per 100 ms sample: {samples:?}"
        );
    }
    let admitted = samples.last().unwrap() - samples[0];
    let ceiling = 5.0 * (elapsed / 0.5 + 1.0);
    assert!(
        (admitted as f64) <= ceiling,
        "admitted {admitted} in {elapsed:.1} s exceeds the rate"
    );
    assert!(
        (admitted as f64) >= 5.0 * (elapsed / 0.5 - 3.0),
        "admitted only {admitted} in {elapsed:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_core_replicas_admit_one_batch_per_interval() {
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 600,
            batch_interval_ms: 500,
            ..Default::default()
        },
        false,
    )
    .await;
    let (_replica, replica_url) = system.spawn_core_replica("core-replica").await;
    let http = core_http();
    // Joins spread over both replicas still get unique, consecutive numbers.
    let mut numbers = Vec::new();
    for i in 0..300 {
        let core = if i % 2 == 0 {
            &system.core_url
        } else {
            &replica_url
        };
        numbers.push(join_core(&http, core).await.1.unwrap());
    }
    assert_eq!(numbers, (1..=300).collect::<Vec<_>>());
    // Started before the first reading, so every batch counted falls in
    // the time measured.
    let started = Instant::now();
    let start = admitted_up_to(&http, &system.core_url).await;
    // Until 25 more are admitted (five batches), as the other replica sees
    // it: a double advance would get there in about half the time.
    let deadline = started + Duration::from_secs(10);
    let admitted = loop {
        let admitted = admitted_up_to(&http, &replica_url).await - start;
        if admitted >= 25 {
            break admitted;
        }
        assert!(Instant::now() < deadline, "admission stalled: {admitted}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = started.elapsed().as_secs_f64();
    // Two controllers each ticking: still 5 per 500 ms, not 10.
    assert!(
        (admitted as f64) <= 5.0 * (elapsed / 0.5 + 1.0),
        "double advance: {admitted} in {elapsed:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_active_bounds_admission_and_no_shows_do_not_stall() {
    let system = System::start_with(
        RoundOptions {
            max_active: 3,
            claim_window_seconds: 2,
            rate_per_minute: 6_000,
            batch_interval_ms: 200,
            ..Default::default()
        },
        false,
    )
    .await;
    let http = core_http();
    let core = &system.core_url;
    let claim = |id: &str, number: u64, investor: &str| {
        http.post(format!("{core}/v1/rounds/{ROUND}/passes"))
            .bearer_auth(ticket_token(id, number, investor))
            .send()
    };

    // Ten no-shows: three at a time are admitted; each lapses after its 2 s
    // claim window, so the queue keeps moving and never stalls.
    let mut tickets = Vec::new();
    for _ in 0..10 {
        tickets.push(join_core(&http, core).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while admitted_up_to(&http, core).await < 3 {
        assert!(Instant::now() < deadline, "nobody admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The controller had its chances to admit more (well inside the 2 s
    // claim window), and did not.
    system.wait_for_admission_steps(2).await;
    assert_eq!(
        admitted_up_to(&http, core).await,
        3,
        "max_active 3: three admitted"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while admitted_up_to(&http, core).await < 10 {
        assert!(Instant::now() < deadline, "no-shows stalled admission");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Three who do show up claim passes: the room is at max_active.
    for _ in 0..3 {
        tickets.push(join_core(&http, core).await);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while admitted_up_to(&http, core).await < 13 {
        assert!(Instant::now() < deadline, "11..13 never admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut passes = Vec::new();
    for (id, number, investor) in &tickets[10..13] {
        let (code, grant) = json_of(claim(id, number.unwrap(), investor).await.unwrap()).await;
        assert_eq!(code, 200, "{grant}");
        passes.push(grant["pass"].as_str().unwrap().to_string());
    }
    // A claim is recorded once: claiming again returns the same lifetime.
    let (_, again) = json_of(claim(&tickets[10].0, 11, &tickets[10].2).await.unwrap()).await;
    let first_expiry = again["expires_at"].clone();
    let (_, again) = json_of(claim(&tickets[10].0, 11, &tickets[10].2).await.unwrap()).await;
    assert_eq!(again["expires_at"], first_expiry);

    for _ in 0..2 {
        join_core(&http, core).await;
    }
    // Claimed passes hold their places past the claim window, when the
    // places of unclaimed numbers would have lapsed: wait until core's clock
    // has passed it, then give the controller its chances to admit.
    let now_ms = async || system.room_state().await["as_of_ms"].as_u64().unwrap();
    let window_over = now_ms().await + 2_000;
    let deadline = Instant::now() + Duration::from_secs(15);
    while now_ms().await < window_over {
        assert!(Instant::now() < deadline, "core's clock stands still");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.wait_for_admission_steps(2).await;
    assert_eq!(
        admitted_up_to(&http, core).await,
        13,
        "nobody admitted while 3 of 3 are active"
    );

    // One investor finishes (invests, as the pass's investor): exactly one
    // more is admitted, and holds that place for its claim window.
    let (code, body) = json_of(
        http.post(format!("{core}/v1/rounds/{ROUND}/investments"))
            .bearer_auth(&passes[0])
            .header("idempotency-key", "done")
            .json(&serde_json::json!({"amount_pence": 5_000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while admitted_up_to(&http, core).await < 14 {
        assert!(Instant::now() < deadline, "the freed place was not filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    system.wait_for_admission_steps(2).await;
    assert_eq!(
        admitted_up_to(&http, core).await,
        14,
        "one place freed, one admitted"
    );
    // Ops see the same count the controller bounds: 2 claimed + 1 reserved.
    let (_, ops) = json_of(
        http.get(format!("{core}/ops/v1/rounds/{ROUND}"))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ops["queue"]["active_investors"], 3, "{ops}");
    assert_eq!(
        (
            ops["queue"]["claimed_passes"].as_u64(),
            ops["queue"]["reserved_places"].as_u64()
        ),
        (Some(2), Some(1))
    );

    // Not admitted yet → 409; an expired claim → 410 with a clear message.
    let (code, body) = json_of(claim("late", 15, "late-investor").await.unwrap()).await;
    assert_eq!((code, body["error"].as_str()), (409, Some("not_admitted")));
    let mut redis = system.redis().await;
    let _: () = redis::cmd("HSET")
        .arg(crowdgate_store::RoundKeys::new(ROUND).pass_claims())
        .arg(&tickets[11].0)
        .arg(1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let (code, body) = json_of(claim(&tickets[11].0, 12, &tickets[11].2).await.unwrap()).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (410, Some("pass_expired")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("join again"),
        "{body}"
    );
    // A no-show whose window lapsed, with the room full: retry later (429).
    let (code, body) = json_of(claim(&tickets[0].0, 1, &tickets[0].2).await.unwrap()).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (429, Some("room_full_now")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_admission_and_resume_continues() {
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 6_000,
            batch_interval_ms: 200,
            ..Default::default()
        },
        false,
    )
    .await;
    let http = core_http();
    let core = &system.core_url;
    let mut redis = system.redis().await;
    let set_phase = |phase: &'static str| {
        redis::cmd("HSET")
            .arg(crowdgate_store::RoundKeys::new(ROUND).round())
            .arg("phase")
            .arg(phase)
            .clone()
    };
    let _: () = set_phase("paused").query_async(&mut redis).await.unwrap();
    for _ in 0..20 {
        join_core(&http, core).await;
    }
    system.wait_for_admission_steps(3).await;
    assert_eq!(
        admitted_up_to(&http, core).await,
        0,
        "paused: nobody admitted"
    );
    // The edge sees the phase once its ~1 s room-state cache turns over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = format!("{}/api/round", system.edge_url);
        let (_, round) = json_of(http.get(url).send().await.unwrap()).await;
        if round["phase"] == "paused" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge did not see the pause: {round}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let visitor = Visitor::new(&system.edge_url);
    let (_, joined) = visitor.join().await;
    assert_eq!(joined["status"]["state"], "paused");
    let _: () = set_phase("open").query_async(&mut redis).await.unwrap();
    let status = visitor.wait_until_admitted(Duration::from_secs(10)).await;
    assert_eq!(status["queue_number"], 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_and_prequeue_lookups_refuse_bad_input() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let http = core_http();
    let core = &system.core_url;
    let cases = [
        (
            http.post(format!("{core}/v1/rounds/{ROUND}/passes")),
            401,
            "missing_ticket",
        ),
        (
            http.post(format!("{core}/v1/rounds/{ROUND}/passes"))
                .bearer_auth("junk"),
            400,
            "token_malformed",
        ),
        (
            http.post(format!("{core}/v1/rounds/{ROUND}/passes"))
                .bearer_auth(
                    crowdgate_protocol::Keyring::parse("t1:forged-key-0123456789abcdef0123456789")
                        .unwrap()
                        .sign(&Ticket {
                            round: ROUND.into(),
                            id: "x".into(),
                            number: Some(1),
                            entry: None,
                            issued_at: now_s(),
                            expires_at: now_s() + 60,
                            investor: None,
                        }),
                ),
            403,
            "token_invalid",
        ),
        (
            http.get(format!("{core}/v1/rounds/{ROUND}/prequeue/not-a-ticket!")),
            400,
            "invalid_field",
        ),
        (
            http.get(format!("{core}/v1/rounds/{ROUND}/prequeue/abc123")),
            404,
            "not_found",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    // Through the edge: a pass before admission is a 409 with a reason.
    let visitor = Visitor::new(&system.edge_url);
    visitor.join().await;
    let (code, body) = json_of(
        visitor
            .http
            .post(format!("{}/api/pass", system.edge_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        code == 200 || (code == 409 && body["error"] == "not_admitted"),
        "{code} {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_works_without_javascript() {
    let system = System::start(RoundOptions::default()).await;
    system.fund(&[("nojs", 100_000)]).await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let edge = &system.edge_url;
    // Arriving from the platform signed in as `nojs`: the token is kept in
    // an HttpOnly cookie and the browser sent on to the clean page.
    let signed_in = browser
        .get(format!("{edge}/signin"))
        .query(&[("identity_token", identity_token("nojs"))])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/signin/done");
    let page = browser
        .get(format!("{edge}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"action="api/join""#),
        "a join button for browsers without JavaScript"
    );

    // The join form: 303 back to the page, with the ticket cookie.
    let joined = browser
        .post(format!("{edge}/api/join"))
        .form(&[("join", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 303);
    assert_eq!(joined.headers()["location"], "/");
    assert!(
        joined.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );

    // The page renders the status itself and refreshes itself while there
    // is something to wait for (never under a half-typed amount).
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = browser
            .get(format!("{edge}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let refreshes = page.contains(r#"http-equiv="refresh""#);
        if page.contains(r#"action="invest""#) {
            assert!(!refreshes, "the invest form refreshes away:\n{page}");
            break page;
        }
        assert!(refreshes, "a waiting page that does not refresh:\n{page}");
        assert!(Instant::now() < deadline, "never admitted:\n{page}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        page.contains("It&#39;s your turn") || page.contains("It's your turn"),
        "{page}"
    );
    assert!(page.contains("Investing as nojs"), "{page}");
    let key = page
        .split(r#"name="key" value=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();

    let result = post_invest_form(
        &browser,
        edge,
        &[("amount", "125.00"), ("key", key.as_str())],
    )
    .await;
    // The receipt (accepted, or settled already: the worker is quick).
    assert!(
        result.contains("£125.00 for 125 shares (reference "),
        "{result}"
    );
    // Submitting the same form again does not invest twice.
    post_invest_form(
        &browser,
        edge,
        &[("amount", "125.00"), ("key", key.as_str())],
    )
    .await;
    assert_eq!(system.round_field("raised_pence").await, 12_500);
    // Regression: the form used to cut the key to 128 characters, quietly
    // turning it into another key (another investment). It goes through the
    // API's gateway now: a key the API refuses is refused here too.
    let long_key = format!("{key}{}", "x".repeat(129));
    let result = post_invest_form(
        &browser,
        edge,
        &[("amount", "125.00"), ("key", long_key.as_str())],
    )
    .await;
    assert!(
        result.contains("Not accepted: Idempotency-Key must be 1-128 printable ASCII characters"),
        "{result}"
    );
    assert_eq!(system.round_field("raised_pence").await, 12_500);
    // A bad amount is explained, nothing recorded.
    let result = post_invest_form(&browser, edge, &[("amount", "lots"), ("key", "other")]).await;
    assert!(result.contains("enter an amount in pounds"), "{result}");
    // Regression: commas were dropped, so "12,50" invested £1,250.
    let result = post_invest_form(&browser, edge, &[("amount", "12,50"), ("key", "comma")]).await;
    assert!(result.contains("enter an amount in pounds"), "{result}");
    assert_eq!(system.stream_len().await, 1);
}

/// Regression: a visitor whose turn had ended was stuck for good — rejoining
/// returned the same spent ticket, whose pass could never be claimed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_whose_turn_ended_can_join_again() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let visitor = Visitor::new(&system.edge_url);
    let (_, joined) = visitor.join().await;
    let first_number = joined["status"]["queue_number"].as_u64().unwrap();
    visitor.wait_until_admitted(Duration::from_secs(10)).await;
    visitor.pass().await;
    // The turn ends: the claim's expiry passes (set in the past directly,
    // rather than waiting out the shortest pass lifetime of 30 s).
    let ticket_id = {
        let token = joined["ticket"].as_str().unwrap();
        keyring()
            .verify::<crowdgate_protocol::Ticket>(token, ROUND, now_s())
            .unwrap()
            .id
    };
    let mut redis = system.redis().await;
    let _: () = redis::cmd("HSET")
        .arg(system.keys().pass_claims())
        .arg(&ticket_id)
        .arg(1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let answer = visitor
        .http
        .post(format!("{}/api/pass", system.edge_url))
        .send()
        .await
        .unwrap();
    let cookie = answer
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let (code, body) = json_of(answer).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (410, Some("pass_expired")),
        "{body}"
    );
    assert!(
        cookie.starts_with("cg_ticket=;") && cookie.contains("Max-Age=0"),
        "the spent ticket is dropped: {cookie:?}"
    );
    // Joining again now takes a new place at the back, and it works.
    let (code, again) = visitor.join().await;
    assert_eq!(code, 201, "{again}");
    assert!(again["status"]["queue_number"].as_u64().unwrap() > first_number);
    visitor.wait_until_admitted(Duration::from_secs(10)).await;
    visitor.pass().await;
}

/// Joins `ahead` people through core, then a visitor through the edge, and
/// polls the visitor's status until its estimate rests on measured
/// admission (half a minute of it) → that status and the visitor's page.
/// The first status, with nothing measured yet, says so.
async fn measured_status(system: &System, ahead: usize) -> (serde_json::Value, String) {
    let http = core_http();
    for _ in 0..ahead {
        join_core(&http, &system.core_url).await;
    }
    let visitor = Visitor::new(&system.edge_url);
    let (code, joined) = visitor.join().await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(joined["status"]["eta_uncertain"], "little_history");
    // The estimate needs 30 s of measured admission: real time passing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, status) = visitor.status().await;
        assert_eq!(code, 200, "{status}");
        if status["eta_uncertain"] != "little_history" {
            println!("measured: {status}");
            let page = get_text(&visitor.http, &format!("{}/", system.edge_url)).await;
            return (status, page);
        }
        assert!(
            Instant::now() < deadline,
            "never measured 30 s of admission: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_gives_an_honest_uncertain_estimate() {
    // 600 a minute configured, but only 5 may be active and nobody claims
    // within the test (60 s claim window): after the first 5, nobody moves.
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 600,
            batch_interval_ms: 200,
            max_active: 5,
            claim_window_seconds: 60,
            ..Default::default()
        },
        false,
    )
    .await;
    let (status, page) = measured_status(&system, 40).await;
    assert_eq!(status["state"], "waiting", "{status}");
    assert_eq!(status["eta_uncertain"], "room_full", "{status}");
    let position = status["position"].as_u64().unwrap();
    assert_eq!(position, 36, "{status}");
    // Position ÷ configured rate would say 4 s. About 5 got in over half a
    // minute and more: the estimate is minutes.
    let eta = status["eta_seconds"].as_u64().unwrap();
    assert!(eta >= 120, "{status}");
    assert!(
        page.contains("admission is held back while the room is full"),
        "{page}"
    );
    assert!(page.contains(r#"<b id="eta">about "#), "{page}");
    // Ops see the achieved rate next to the configured one.
    let (code, figures) = json_of(
        core_http()
            .get(format!("{}/ops/v1/rounds/{ROUND}", system.core_url))
            .bearer_auth(crowdgate_tests::OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{figures}");
    let admission = &figures["admission"];
    assert_eq!(admission["rate_per_minute"], 600, "{admission}");
    let achieved = admission["achieved_rate_per_minute"].as_f64().unwrap();
    assert!(achieved < 30.0, "{admission}");
    assert!(
        admission["achieved_rate_history_seconds"].as_u64().unwrap() >= 30,
        "{admission}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flowing_round_estimates_position_over_rate_and_is_sure() {
    // 60 a minute, one a second, nothing else holding admission back.
    let system = System::start_with(
        RoundOptions {
            rate_per_minute: 60,
            batch_interval_ms: 1_000,
            ..Default::default()
        },
        false,
    )
    .await;
    let (status, page) = measured_status(&system, 100).await;
    assert_eq!(status["state"], "waiting", "{status}");
    assert!(status["eta_uncertain"].is_null(), "{status}");
    let position = status["position"].as_u64().unwrap();
    let eta = status["eta_seconds"].as_u64().unwrap();
    // One a second: about `position` seconds, within the smoothing's wobble.
    let expected = position as f64;
    assert!(
        (eta as f64 - expected).abs() <= expected * 0.1 + 2.0,
        "eta {eta} s for position {position}: {status}"
    );
    assert!(
        page.contains(r#"<p class="muted" id="eta-note" hidden></p>"#),
        "{page}"
    );
}

/// POST /api/leave as `visitor` (its ticket cookie) → (status code, body,
/// the `Set-Cookie` it got, if any).
async fn leave(visitor: &Visitor) -> (u16, serde_json::Value, String) {
    let answer = visitor
        .http
        .post(format!("{}/api/leave", visitor.edge_url))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&answer);
    let (code, body) = json_of(answer).await;
    (code, body, cookie)
}

fn set_cookie(answer: &reqwest::Response) -> String {
    answer
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn ticket_dropped(cookie: &str) -> bool {
    cookie.starts_with("cg_ticket=;") && cookie.contains("Max-Age=0")
}

/// Joins `visitor` through the edge → (its ticket token, its number).
async fn join_numbered(visitor: &Visitor) -> (String, u64) {
    let (code, joined) = visitor.join().await;
    assert_eq!(code, 201, "{joined}");
    (
        joined["ticket"].as_str().unwrap().to_string(),
        joined["status"]["queue_number"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_who_leaves_gives_their_place_to_the_next_at_once() {
    // One active investor at a time, and an admitted no-show's place is
    // held for its whole minute-long claim window: only leaving frees it
    // sooner.
    let mut system = System::start_with(
        RoundOptions {
            max_active: 1,
            claim_window_seconds: 60,
            rate_per_minute: 6_000,
            batch_interval_ms: 200,
            ..Default::default()
        },
        false,
    )
    .await;
    let (edge, core) = (&system.edge_url.clone(), &system.core_url.clone());
    let http = core_http();
    let first = Visitor::new(edge);
    let (first_ticket, number) = join_numbered(&first).await;
    assert_eq!(number, 1);
    first.wait_until_admitted(Duration::from_secs(10)).await;
    let (second, third, fourth) = (Visitor::new(edge), Visitor::new(edge), Visitor::new(edge));
    assert_eq!(join_numbered(&second).await.1, 2);
    assert_eq!(join_numbered(&third).await.1, 3);

    // The third gives up its place while waiting.
    let (code, left, cookie) = leave(&third).await;
    assert_eq!(
        (code, left),
        (200, serde_json::json!({"left": true, "queue_number": 3}))
    );
    assert!(ticket_dropped(&cookie), "{cookie:?}");
    let (code, body) = third.status().await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("missing_ticket"))
    );

    // The first, admitted, leaves without claiming its pass: the second
    // gets in now, not when the first's claim window ends.
    let started = Instant::now();
    let (code, left, cookie) = leave(&first).await;
    assert_eq!(
        (code, left),
        (200, serde_json::json!({"left": true, "queue_number": 1}))
    );
    assert!(ticket_dropped(&cookie), "{cookie:?}");
    second.wait_until_admitted(Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the second waited for the first's claim window"
    );

    // The second claims its pass: its turn is under way, nothing to leave.
    assert_eq!(join_numbered(&fourth).await.1, 4);
    let pass = second.pass().await;
    let (code, body, cookie) = leave(&second).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("turn_under_way")),
        "{body}"
    );
    assert!(cookie.is_empty(), "the ticket is kept: {cookie:?}");
    // It invests, which frees its place: admission passes over the third
    // (who left) and lets the fourth in.
    let (code, body) = second
        .invest(&pass, "leave-1", serde_json::json!({"amount_pence": 5_000}))
        .await;
    assert_eq!(code, 201, "{body}");
    let status = fourth.wait_until_admitted(Duration::from_secs(10)).await;
    assert_eq!(status["queue_number"], 4);
    assert_eq!(admitted_up_to(&http, core).await, 4);

    // The first's ticket is spent: leaving again answers the same, its pass
    // cannot be claimed, and joining again takes a new place at the back.
    let with_ticket = |path: &str| {
        reqwest::Client::new()
            .post(format!("{edge}{path}"))
            .bearer_auth(&first_ticket)
            .send()
    };
    let (code, again) = json_of(with_ticket("/api/leave").await.unwrap()).await;
    assert_eq!(
        (code, again),
        (200, serde_json::json!({"left": true, "queue_number": 1}))
    );
    let (code, body) = json_of(with_ticket("/api/pass").await.unwrap()).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (410, Some("pass_expired")),
        "{body}"
    );
    let (_, number) = join_numbered(&first).await;
    assert_eq!(number, 5);
    // Ops see who left.
    let (_, ops) = json_of(
        http.get(format!("{core}/ops/v1/rounds/{ROUND}"))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ops["queue"]["left_queue"], 2, "{ops}");

    // With core away, leaving is 503 with Retry-After, and the place kept.
    system.kill_core();
    let answer = first
        .http
        .post(format!("{edge}/api/leave"))
        .send()
        .await
        .unwrap();
    let retry_after = answer.headers().get("retry-after").cloned();
    let cookie = set_cookie(&answer);
    let (code, body) = json_of(answer).await;
    assert_eq!((code, body["error"].as_str()), (503, Some("unavailable")));
    assert!(retry_after.is_some(), "{body}");
    assert!(cookie.is_empty(), "the ticket is kept: {cookie:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_likely_sell_out_is_forecast_and_the_visitor_can_leave() {
    // A £1,000 round; one active investor at a time, and an admitted
    // no-show holds the room for a minute.
    let system = System::start_with(
        RoundOptions {
            cap_pence: 100_000,
            max_active: 1,
            claim_window_seconds: 60,
            rate_per_minute: 6_000,
            batch_interval_ms: 200,
            ..Default::default()
        },
        false,
    )
    .await;
    let edge = &system.edge_url;
    // 20 investors put in £40 each: £800 raised, £200 left, which is about
    // 5 investments' worth.
    for i in 0..20 {
        let visitor = Visitor::new(edge);
        let (code, body) = visitor
            .join_and_invest(&format!("early-{i}"), 4_000, &format!("sell-out-{i}"))
            .await;
        assert_eq!(code, 201, "{body}");
    }
    // 30 more join: the first of them is admitted and holds the room, the
    // others wait; then our visitor, with 29 people ahead (a take-up of 20
    // in 21 so far: about 28 of them will invest).
    let http = core_http();
    for _ in 0..30 {
        join_core(&http, &system.core_url).await;
    }
    let visitor = Visitor::new(edge);
    let (ticket, number) = join_numbered(&visitor).await;
    assert_eq!(number, 51);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        let (code, status) = visitor.status().await;
        assert_eq!(code, 200, "{status}");
        if status["sell_out"].is_object() && status["people_ahead"] == 29 {
            break status;
        }
        assert!(Instant::now() < deadline, "no forecast: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("forecast: {status}");
    assert_eq!(status["state"], "waiting");
    assert_eq!(
        status["sell_out"],
        serde_json::json!({
            "remaining_pence": 20_000,
            "average_investment_pence": 4_000,
            "investments_left": 5,
            "people_ahead": 29,
        })
    );
    // The page says it in words, and offers to leave (the ticket cookie).
    let page = get_text(&visitor.http, &format!("{edge}/")).await;
    assert!(
        page.contains(
            "The round will probably sell out before your turn: about 5 investments&#39; worth left; 29 people ahead of you."
        ),
        "{page}"
    );
    assert!(
        page.contains(r#"<form id="leave" method="post" action="leave">"#),
        "{page}"
    );
    // The form (no JavaScript): 303 back to the page, the ticket forgotten.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser
        .post(format!("{edge}/leave"))
        .header("cookie", format!("cg_ticket={ticket}"))
        .form(&[("leave", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/");
    let cookie = set_cookie(&answer);
    assert!(ticket_dropped(&cookie), "{cookie:?}");
    // Core recorded it: leaving again with the same ticket says so.
    let (code, again) = json_of(
        browser
            .post(format!("{edge}/api/leave"))
            .bearer_auth(&ticket)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, again),
        (200, serde_json::json!({"left": true, "queue_number": 51}))
    );

    // In a real browser, with JavaScript: signed in, the page joins by
    // itself, says the same (number 52: 30 people ahead), and its "Leave
    // the queue" button leaves through /api/leave and stays left.
    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!(
            "{edge}/signin?identity_token={}",
            identity_token("late-browser")
        ))
        .await
        .unwrap();
    browser
        .wait_for_text("#sell-out", Duration::from_secs(20), |t| {
            t == "The round will probably sell out before your turn: about 5 investments' worth left; 30 people ahead of you. You can keep your place in case it does not, or leave the queue."
        })
        .await;
    browser.screenshot("waiting-room-sell-out").await;
    browser
        .client
        .find(Locator::Css("#leave-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#heading", Duration::from_secs(10), |t| {
            t == "You have left the queue"
        })
        .await;
    let rejoin = browser.client.find(Locator::Css("#rejoin")).await.unwrap();
    assert!(
        rejoin.is_displayed().await.unwrap(),
        "it offers a new place"
    );
    // Nothing joins again by itself: give the page time to poll, then
    // count the places and the leavers.
    system.wait_for_admission_steps(20).await;
    let room = system.room_state().await;
    assert_eq!(room["issued"], 52, "{room}");
    let (_, ops) = json_of(
        http.get(format!("{}/ops/v1/rounds/{ROUND}", system.core_url))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ops["queue"]["left_queue"], 2, "{ops}");
    assert_eq!(
        browser
            .client
            .find(Locator::Css("#heading"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "You have left the queue"
    );
    browser.close().await;
}

/// Regression: a join by an investor who already holds a place — from
/// another device, so with an identity and no ticket — while core hangs
/// waited out two core deadlines: the stale room state's refresh, then the
/// place. Now the join that finds core away answers 503 after one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_waits_out_one_core_deadline_when_core_hangs() {
    /// How long the edge waits on core at any step (`spin_support::deadline`).
    const CORE_DEADLINE: Duration = Duration::from_secs(10);
    let mut system = System::start_with(RoundOptions::default(), false).await;
    let edge = system.edge_url.clone();
    let (code, body) = Visitor::signed_in(&edge, "holder").join().await;
    assert_eq!(code, 201, "{body}");

    // core hangs: its address accepts connections and never answers.
    let addr: std::net::SocketAddr = system
        .core_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    system.kill_core();
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        match socket.bind(addr).and_then(|()| socket.listen(64)) {
            Ok(listener) => break listener,
            Err(err) => assert!(Instant::now() < deadline, "cannot take core's port: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    // The edge's cached room state is fresh for a second; once it is older
    // the join refreshes it from core first.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let started = Instant::now();
    let (code, body) = Visitor::signed_in(&edge, "holder").join().await;
    let took = started.elapsed();
    assert_eq!(
        (code, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(
        took < CORE_DEADLINE + Duration::from_secs(4),
        "the join waited {took:?} on a hung core"
    );
    // While core is away, a join answers at once.
    let started = Instant::now();
    let (code, _) = Visitor::signed_in(&edge, "holder").join().await;
    assert_eq!(code, 503);
    assert!(started.elapsed() < Duration::from_secs(2));
    hung.abort();
}

/// After core refused at once (down: connection refused, or a 503 while
/// Redis fails over), the edge leaves it alone for a second, not the 5 s it
/// gives a core that hung: joins work again as soon as core is back.
#[tokio::test]
async fn joins_work_again_within_a_second_of_a_core_that_refused_at_once() {
    let mut system = System::start_with(RoundOptions::default(), false).await;
    let edge = system.edge_url.clone();
    let (code, body) = Visitor::signed_in(&edge, "first").join().await;
    assert_eq!(code, 201, "{body}");

    system.kill_core();
    // The cached room state is fresh for a second; once it is older a join
    // refreshes it first, and that refresh fails at once (refused).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (code, body) = Visitor::signed_in(&edge, "second").join().await;
    let refused_at = Instant::now();
    assert_eq!(code, 503, "{body}");

    system.restart_core().await;
    let ready_at = Instant::now();
    let joined_at = loop {
        let (code, body) = Visitor::signed_in(&edge, "second").join().await;
        if code == 201 {
            break Instant::now();
        }
        assert_eq!(code, 503, "{body}");
        assert!(
            ready_at.elapsed() < Duration::from_secs(10),
            "joins still refused 10 s after core came back: {body}"
        );
        // Poll interval of a retrying client.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Away for a second from the refusal, then joins go through as soon as
    // core answers (a 5 s pause would hold them until refused_at + 5 s).
    let expected = ready_at.max(refused_at + Duration::from_secs(1));
    let late = joined_at.saturating_duration_since(expected);
    assert!(
        late < Duration::from_millis(2_500),
        "the first join after core came back went through {late:?} late"
    );
}
