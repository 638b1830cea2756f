//! The achieved admission rate `advance.lua` keeps for honest wait
//! estimates: measured while people wait, over elapsed time, once however
//! many replicas call.

use crate::support::{Fixture, T0, settings};
use crowdgate_protocol::api::EtaUncertainty;
use crowdgate_protocol::queue::status_of;
use crowdgate_store::{Advance, Change, ChangeVerdict, RoundRecord, RoundSettings};

/// The admission controller's tick.
const TICK_MS: u64 = 100;

async fn join(f: &Fixture, n: u64, now: u64) {
    for i in 0..n {
        crate::join(&f.store, &format!("t{now}-{i}"), now).await;
    }
}

/// One replica's ticks from `from` (inclusive) to `to` (exclusive).
async fn tick(f: &Fixture, from: u64, to: u64) {
    for now in (from..to).step_by(TICK_MS as usize) {
        f.store.advance(now).await.unwrap();
    }
}

/// The achieved rate in people per minute.
fn achieved(round: &RoundRecord) -> f64 {
    round.achieved_rate_milli_per_minute as f64 / 1000.0
}

/// The measurement fields, to compare two rounds' by.
fn measurement(round: &RoundRecord) -> (u64, u64, u64) {
    (
        round.achieved_rate_milli_per_minute,
        round.achieved_rate_at_ms,
        round.achieved_rate_measured_ms,
    )
}

#[tokio::test]
async fn the_achieved_rate_converges_to_the_configured_rate_while_admission_flows() {
    // 600 a minute in 1 s batches, far more waiting than three minutes admit.
    let f = Fixture::new(settings()).await;
    join(&f, 2_000, T0).await;
    // The first batch is measured over its whole interval, so it counts whole.
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(10));
    let round = f.round().await;
    assert_eq!(
        measurement(&round),
        (600_000, T0, 1_000),
        "10 in one 1 s interval"
    );
    tick(&f, T0 + TICK_MS, T0 + 30_000).await;
    let round = f.round().await;
    assert!((570.0..=630.0).contains(&achieved(&round)), "{round:?}");
    // Every millisecond since the first interval's start, measured once.
    assert_eq!(round.achieved_rate_measured_ms, 30_900);
    tick(&f, T0 + 30_000, T0 + 180_000).await;
    let round = f.round().await;
    assert!((585.0..=615.0).contains(&achieved(&round)), "{round:?}");
    assert_eq!(round.admitted_up_to, 1_800);
    // What the edge is told: a sure estimate close to position ÷ rate.
    let room = f.store.room_state(T0 + 180_000).await.unwrap().unwrap();
    assert_eq!(room.achieved_rate_history_seconds, 180);
    let status = status_of(1_800 + 600, &room, 1);
    let eta = status.eta_seconds.unwrap();
    assert!((57..=63).contains(&eta), "{status:?}");
    assert_eq!(status.eta_uncertain, None);
}

#[tokio::test]
async fn admission_keeps_to_its_rate_when_ticks_do_not_divide_the_interval() {
    // 600 a minute in 1 s batches, offered every 130 ms (a tick and a bit):
    // timed from the tick that took each batch, batches came every 1.04 s.
    let f = Fixture::new(settings()).await;
    join(&f, 2_000, T0).await;
    for now in (T0..T0 + 60_000).step_by(130) {
        f.store.advance(now).await.unwrap();
    }
    let round = f.round().await;
    assert_eq!(round.admitted_up_to, 600, "{round:?}");
    // A long gap restarts the schedule: no burst to catch up.
    let later = T0 + 120_000;
    assert_eq!(f.store.advance(later).await.unwrap(), Advance::Admitted(10));
    assert_eq!(f.store.advance(later + 300).await.unwrap(), Advance::NotDue);
}

#[tokio::test]
async fn batches_as_short_as_a_tick_keep_their_rate_through_jitter() {
    // 6,000 a minute in 100 ms batches of 10, offered every 100 ms give or
    // take 2 ms: a tick a moment early must not cost a batch.
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 6_000,
        batch_interval_ms: 100,
        max_active: 10_000,
        ..settings()
    })
    .await;
    join(&f, 7_000, T0).await;
    for k in 0..600u64 {
        let jitter = if k % 2 == 0 { 2 } else { 0 };
        f.store.advance(T0 + k * 100 + jitter).await.unwrap();
    }
    let round = f.round().await;
    assert!(round.admitted_up_to >= 5_990, "{round:?}");
}

#[tokio::test]
async fn the_achieved_rate_falls_when_the_room_is_full() {
    // 600 a minute configured, but only 20 may be active and nobody claims:
    // 20 places come free every 60 s claim window, about 20 a minute.
    let f = Fixture::new(RoundSettings {
        max_active: 20,
        ..settings()
    })
    .await;
    join(&f, 500, T0).await;
    tick(&f, T0, T0 + 180_000).await;
    let round = f.round().await;
    assert!(round.admitted_up_to <= 20 * 4, "{round:?}");
    assert!((10.0..=40.0).contains(&achieved(&round)), "{round:?}");
    // Room-full steps count as time with nobody admitted.
    assert_eq!(round.achieved_rate_measured_ms, 180_900);
    // The edge estimates from that and says the room is full.
    let room = f.store.room_state(T0 + 180_000).await.unwrap().unwrap();
    let status = status_of(round.admitted_up_to + 100, &room, 1);
    assert_eq!(status.eta_uncertain, Some(EtaUncertainty::RoomFull));
    // 100 people at about 20 a minute: minutes, not the 10 s that
    // position ÷ configured rate says.
    assert!(status.eta_seconds.unwrap() >= 150, "{status:?}");
}

#[tokio::test]
async fn an_empty_queue_is_not_measured_and_does_not_drag_the_rate_down() {
    let f = Fixture::new(settings()).await;
    join(&f, 25, T0).await;
    tick(&f, T0, T0 + 3_000).await;
    let drained = f.round().await;
    assert_eq!(drained.admitted_up_to, 25);
    // The queue ran out in the third batch (5 of 10): still a whole batch,
    // since admission was not what held it back.
    assert_eq!(drained.achieved_rate_at_ms, 0, "measuring stopped");
    let rate = achieved(&drained);
    assert!((550.0..=650.0).contains(&rate), "{drained:?}");
    // Five idle minutes: nothing measured, nothing written.
    tick(&f, T0 + 3_000, T0 + 300_000).await;
    let idle = f.round().await;
    assert_eq!(measurement(&idle), measurement(&drained));
    // Someone joins: measuring resumes from the start of this batch
    // interval, and the idle minutes never count as zero admissions.
    join(&f, 30, T0 + 300_050).await;
    tick(&f, T0 + 300_050, T0 + 303_050).await;
    let busy = f.round().await;
    assert_eq!(busy.admitted_up_to, 55);
    assert!((550.0..=650.0).contains(&achieved(&busy)), "{busy:?}");
    assert!(
        busy.achieved_rate_measured_ms < drained.achieved_rate_measured_ms + 4_000,
        "{busy:?}"
    );
}

#[tokio::test]
async fn a_paused_round_is_not_measured_and_starts_afresh_on_resume() {
    let f = Fixture::new(settings()).await;
    join(&f, 1_000, T0).await;
    tick(&f, T0, T0 + 40_000).await;
    let open = f.round().await;
    assert!(open.achieved_rate_measured_ms >= 40_000, "{open:?}");
    f.store
        .change(&Change::Pause, "op", T0 + 40_000)
        .await
        .unwrap();
    tick(&f, T0 + 40_000, T0 + 100_000).await;
    let paused = f.round().await;
    assert_eq!(paused.admitted_up_to, open.admitted_up_to);
    // The last measured rate stays for ops to see; its history is gone and
    // the pause is not counted as zero admissions.
    assert_eq!(
        measurement(&paused),
        (open.achieved_rate_milli_per_minute, 0, 0)
    );
    let room = f.store.room_state(T0 + 100_000).await.unwrap().unwrap();
    assert_eq!(
        status_of(open.admitted_up_to + 10, &room, 1).eta_uncertain,
        Some(EtaUncertainty::Paused)
    );
    f.store
        .change(&Change::Resume, "op", T0 + 100_000)
        .await
        .unwrap();
    tick(&f, T0 + 100_000, T0 + 110_000).await;
    let resumed = f.round().await;
    assert!(
        (10_000..=11_000).contains(&resumed.achieved_rate_measured_ms),
        "{resumed:?}"
    );
    assert!((500.0..=700.0).contains(&achieved(&resumed)), "{resumed:?}");
    // Ten seconds of history: the estimate says it is not sure yet.
    let room = f.store.room_state(T0 + 110_000).await.unwrap().unwrap();
    assert_eq!(
        status_of(resumed.admitted_up_to + 10, &room, 1).eta_uncertain,
        Some(EtaUncertainty::LittleHistory)
    );
}

#[tokio::test]
async fn replicas_calling_at_once_measure_time_once() {
    let one = Fixture::new(settings()).await;
    let two = Fixture::new(settings()).await;
    let three = Fixture::new(settings()).await;
    for f in [&one, &two, &three] {
        join(f, 1_000, T0).await;
    }
    for now in (T0..T0 + 60_000).step_by(TICK_MS as usize) {
        one.store.advance(now).await.unwrap();
        // Two replicas at the same millisecond: the second changes nothing.
        two.store.advance(now).await.unwrap();
        two.store.advance(now).await.unwrap();
        // Three replicas a third of a tick apart, and one whose clock is
        // behind: elapsed time is still counted once.
        for offset in [0, 33, 66] {
            three.store.advance(now + offset).await.unwrap();
        }
        three.store.advance(now + 20).await.unwrap();
    }
    let (one, two, three) = (one.round().await, two.round().await, three.round().await);
    assert_eq!(measurement(&one), measurement(&two));
    assert_eq!(one.admitted_up_to, two.admitted_up_to);
    assert_eq!(
        three.achieved_rate_measured_ms,
        three.achieved_rate_at_ms - (T0 - 1_000)
    );
    assert_eq!(three.admitted_up_to, one.admitted_up_to);
    let (a, b) = (achieved(&one), achieved(&three));
    assert!((a - b).abs() <= a * 0.02, "{a} vs {b}");
}

#[tokio::test]
async fn a_new_rate_is_measured_afresh() {
    let f = Fixture::new(settings()).await;
    join(&f, 1_000, T0).await;
    tick(&f, T0, T0 + 40_000).await;
    let set_rate = |rate: u64| Change::Admission(vec![("rate_per_minute", rate)]);
    // The same rate again is no change of rate (nor a change at all).
    let verdict = f
        .store
        .change(&set_rate(600), "op", T0 + 40_000)
        .await
        .unwrap();
    assert_eq!(verdict, ChangeVerdict::Unchanged);
    let same = f.round().await;
    assert_eq!(
        (same.rate_changed_at_ms, same.achieved_rate_measured_ms > 0),
        (0, true)
    );
    f.store
        .change(&set_rate(60), "op", T0 + 40_000)
        .await
        .unwrap();
    let changed = f.round().await;
    assert_eq!(
        (
            changed.rate_changed_at_ms,
            changed.achieved_rate_measured_ms
        ),
        (T0 + 40_000, 0)
    );
    let room = f.store.room_state(T0 + 40_000).await.unwrap().unwrap();
    let status = status_of(changed.admitted_up_to + 60, &room, 1);
    assert_eq!(
        (status.eta_seconds, status.eta_uncertain),
        (Some(60), Some(EtaUncertainty::RateChanged))
    );
    // Measured at the new rate from here: a minute later it is that rate.
    tick(&f, T0 + 40_000, T0 + 100_000).await;
    let round = f.round().await;
    assert!((54.0..=66.0).contains(&achieved(&round)), "{round:?}");
}
