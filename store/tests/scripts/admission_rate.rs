//! Admission keeps exactly to the rate ops set, for every rate and batch
//! interval: after k due batches, exactly ⌊k × rate × interval / 1 min⌋
//! people are admitted (within one person of rate × time), whether a batch
//! is a fraction of a person or thousands, through a rate change, with
//! several core replicas stepping at once, and never past `max_active`.
//!
//! The controller is played as core plays it: a step every 100 ms on the
//! store's fixed clock. Queues are made by setting `issued` (admission
//! needs numbers, not tickets).

use crate::support::{Fixture, ROUND, T0, settings};
use crowdgate_store::{Advance, Change, RoundKeys, RoundSettings, RoundStore};

/// core's admission tick (core/src/admission.rs).
const TICK_MS: u64 = 100;
const MINUTE_MS: u64 = 60_000;

/// A queue of `people` numbers, all waiting.
async fn queue_of(f: &Fixture, round: &str, people: u64) {
    let mut conn = f.conn.clone();
    let _: () = redis::cmd("HSET")
        .arg(RoundKeys::new(round).round())
        .arg("issued")
        .arg(people)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// What one simulated run saw: due batches and people admitted.
#[derive(Debug, Default)]
struct Run {
    batches: u64,
    admitted: u64,
}

impl Run {
    /// Folds one step's verdict in; true for a due batch.
    fn count(&mut self, step: Advance) -> bool {
        match step {
            Advance::Admitted(n) => {
                self.batches += 1;
                self.admitted += n;
                true
            }
            Advance::Accruing => {
                self.batches += 1;
                true
            }
            Advance::NotDue => false,
            other => panic!("unexpected step {other:?}"),
        }
    }
}

/// Steps `store` every tick for `window_ms` (from `start`), checking after
/// every due batch that exactly the whole people owed so far are admitted
/// (`owed_units` people × ms per minute, per batch, from the rate in force).
async fn run_exact(
    store: &RoundStore,
    start: u64,
    window_ms: u64,
    rate: u64,
    interval: u64,
) -> Run {
    let mut run = Run::default();
    let mut now = start;
    while now < start + window_ms {
        if run.count(store.advance(now).await.unwrap()) {
            let owed = run.batches * rate * interval / MINUTE_MS;
            assert_eq!(
                run.admitted, owed,
                "rate {rate}/min, {interval} ms batches: after {} batches {} admitted, {owed} owed",
                run.batches, run.admitted
            );
        }
        now += TICK_MS;
    }
    run
}

#[tokio::test]
async fn every_rate_and_interval_admits_exactly_rate_times_time() {
    let rates = [1, 6, 7, 90, 150, 1_250, 99_999, 1_000_000];
    let intervals = [100, 250, 1_000, 3_000, 10_000];
    let f = Fixture::new(settings()).await;
    for (i, &rate) in rates.iter().enumerate() {
        for (j, &interval) in intervals.iter().enumerate() {
            let round = format!("grid-{i}-{j}");
            let store = RoundStore::new(&round, f.conn.clone());
            assert!(
                store
                    .seed(
                        &RoundSettings {
                            rate_per_minute: rate,
                            batch_interval_ms: interval,
                            max_active: 1_000_000,
                            ..settings()
                        },
                        &crate::support::DRAW_RANDOM
                    )
                    .await
                    .unwrap()
            );
            // Long enough for at least 12 batches and, at slow rates, a few
            // whole people; short enough to stay under ~200,000 admissions.
            let window = (5 * MINUTE_MS / rate)
                .clamp(12 * interval, (5 * MINUTE_MS).max(12 * interval))
                .min((200_000 * MINUTE_MS / rate).max(2 * interval));
            queue_of(&f, &round, rate * window / MINUTE_MS + 10).await;
            let run = run_exact(&store, T0, window, rate, interval).await;
            // The batches keep their schedule: one per interval.
            assert_eq!(
                run.batches,
                window.div_ceil(interval),
                "rate {rate}/min, {interval} ms: batches in {window} ms"
            );
            let expected =
                rate as f64 * window.div_ceil(interval) as f64 * interval as f64 / MINUTE_MS as f64;
            assert!(
                (run.admitted as f64 - expected).abs() < 1.0,
                "rate {rate}/min, {interval} ms: {} admitted in {window} ms, {expected:.2} owed",
                run.admitted
            );
        }
    }
}

#[tokio::test]
async fn a_rate_below_one_person_a_batch_admits_one_every_few_batches() {
    // 6 a minute in 1 s batches: one person every 10 s, not one a second.
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 6,
        ..settings()
    })
    .await;
    queue_of(&f, ROUND, 100).await;
    let mut admitted_at = Vec::new();
    for second in 0..60 {
        let now = T0 + second * 1_000;
        match f.store.advance(now).await.unwrap() {
            Advance::Admitted(1) => admitted_at.push(second),
            Advance::Accruing => {}
            other => panic!("second {second}: {other:?}"),
        }
    }
    assert_eq!(admitted_at, [9, 19, 29, 39, 49, 59]);
    assert_eq!(f.round().await.admitted_up_to, 6);
}

#[tokio::test]
async fn a_rate_change_mid_window_keeps_the_owed_fraction() {
    // 90 a minute in 1 s batches (1.5 a batch), then 7 a minute: the people
    // owed are the sum of each batch's rate × interval, carried across.
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 90,
        ..settings()
    })
    .await;
    queue_of(&f, ROUND, 10_000).await;
    let mut run = Run::default();
    let mut owed_units = 0;
    let mut rate = 90;
    for tick in 0..1_200 {
        let now = T0 + tick * TICK_MS;
        if tick == 305 {
            rate = 7;
            let change = Change::Admission(vec![("rate_per_minute", rate)]);
            f.store.change(&change, "ops", now).await.unwrap();
        }
        if run.count(f.store.advance(now).await.unwrap()) {
            owed_units += rate * 1_000;
            assert_eq!(run.admitted, owed_units / MINUTE_MS, "tick {tick}");
        }
    }
    // 31 batches at 1.5 (46.5), then 89 at 7/60 (10.38): 56 people.
    assert_eq!((run.batches, run.admitted), (120, 56));
}

#[tokio::test]
async fn replicas_stepping_at_once_admit_one_batch_an_interval() {
    // Three core replicas offer every tick, a little out of step: 1,250 a
    // minute in 1 s batches is 20.83 a batch, and exactly that is admitted.
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 1_250,
        max_active: 1_000_000,
        ..settings()
    })
    .await;
    queue_of(&f, ROUND, 100_000).await;
    let [a, b, c] = [0, 1, 2].map(|_| RoundStore::new(ROUND, f.conn.clone()));
    let mut run = Run::default();
    for tick in 0..600 {
        let now = T0 + tick * TICK_MS;
        let steps = tokio::join!(a.advance(now), b.advance(now + 7), c.advance(now + 14));
        let due = [steps.0, steps.1, steps.2].map(|s| run.count(s.unwrap()));
        assert!(
            due.iter().filter(|d| **d).count() <= 1,
            "tick {tick}: {due:?}"
        );
    }
    assert_eq!(run.batches, 60);
    assert_eq!(run.admitted, 60 * 1_250 * 1_000 / MINUTE_MS);
    assert_eq!(f.round().await.admitted_up_to, 1_250);
}

#[tokio::test]
async fn a_full_room_holds_admission_back_without_a_burst_after() {
    // 7,000 a minute in 1 s batches is 116.67 a batch; the room holds 150,
    // and reservations lapse after a 5 s claim window.
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 7_000,
        max_active: 150,
        claim_window_seconds: 5,
        ..settings()
    })
    .await;
    queue_of(&f, ROUND, 100_000).await;
    let mut batches = Vec::new();
    for tick in 0..300 {
        let now = T0 + tick * TICK_MS;
        let step = f.store.advance(now).await.unwrap();
        if let Advance::Admitted(n) = step {
            batches.push(n);
        }
        let round = f.round().await;
        let mut conn = f.conn.clone();
        let reserved: u64 = redis::cmd("ZCOUNT")
            .arg(RoundKeys::new(ROUND).reserved())
            .arg(now + 1)
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(reserved <= 150, "tick {tick}: {reserved} active, room 150");
        assert!(round.admitted_up_to <= 100_000);
    }
    // Never more than one batch's whole people at once, even when the room
    // empties after a full spell: what the room held back is not owed.
    assert!(batches.iter().all(|&n| n <= 117), "{batches:?}");
    assert_eq!(batches[..2], [116, 34]);
    // Each time the reservations lapse (every 5 s) the room refills: 150
    // admitted per 5 s, far below the rate, as the room dictates.
    let total: u64 = batches.iter().sum();
    assert!(
        (150 * 6..=150 * 7).contains(&total),
        "{total} admitted: {batches:?}"
    );
}
