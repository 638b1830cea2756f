//! Admission batches and pass claims.

use crate::invest_on;
use crate::support::{Fixture, T0, settings};
use crowdgate_store::{Advance, ClaimVerdict, InvestVerdict, Placement, RoundSettings};

async fn join(f: &Fixture, n: u64, now: u64) {
    for i in 0..n {
        assert!(matches!(
            crate::join(&f.store, &format!("t{now}-{i}"), now).await,
            Placement::Numbered(_)
        ));
    }
}

#[tokio::test]
async fn one_batch_of_rate_times_interval_per_interval_never_past_issued() {
    // 600 a minute in 1 s batches: 10 a batch.
    let f = Fixture::new(settings()).await;
    join(&f, 25, T0).await;
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(10));
    // N replicas calling within the interval admit nothing more.
    for now in [T0, T0 + 1, T0 + 999] {
        assert_eq!(f.store.advance(now).await.unwrap(), Advance::NotDue);
    }
    assert_eq!(
        f.store.advance(T0 + 1_000).await.unwrap(),
        Advance::Admitted(10)
    );
    assert_eq!(
        f.store.advance(T0 + 2_000).await.unwrap(),
        Advance::Admitted(5)
    );
    assert_eq!(f.round().await.admitted_up_to, 25);
    assert_eq!(
        f.store.advance(T0 + 3_000).await.unwrap(),
        Advance::NobodyWaiting
    );
    join(&f, 1, T0 + 3_500).await;
    // The empty batch used the interval up.
    assert_eq!(f.store.advance(T0 + 3_500).await.unwrap(), Advance::NotDue);
    assert_eq!(
        f.store.advance(T0 + 4_000).await.unwrap(),
        Advance::Admitted(1)
    );
    let round = f.round().await;
    assert_eq!((round.admitted_up_to, round.issued), (26, 26));
}

#[tokio::test]
async fn a_paused_round_admits_nobody() {
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 60,
        ..settings()
    })
    .await;
    join(&f, 3, T0).await;
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(1));
    f.store
        .change(&crowdgate_store::Change::Pause, "op", T0)
        .await
        .unwrap();
    assert_eq!(f.store.advance(T0 + 5_000).await.unwrap(), Advance::NotOpen);
    assert_eq!(f.round().await.admitted_up_to, 1);
}

#[tokio::test]
async fn max_active_counts_reservations_and_claimed_passes() {
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 60_000,
        max_active: 4,
        ..settings()
    })
    .await;
    join(&f, 10, T0).await;
    // A batch would be 1,000; the room holds 4.
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(4));
    // The room state counts them as deciding (the sell-out forecast's
    // input); a lapsed reservation no longer does.
    let deciding = async |now| f.store.room_state(now).await.unwrap().unwrap().deciding;
    assert_eq!(deciding(T0).await, 4);
    assert_eq!(deciding(T0 + 60_000).await, 0);
    assert_eq!(
        f.store.advance(T0 + 1_000).await.unwrap(),
        Advance::RoomFull
    );
    // Claiming turns a reservation into an active pass: still 4 active.
    for (ticket, number) in [("t1", 1), ("t2", 2)] {
        assert_eq!(
            f.store
                .claim_pass(ticket, number, T0 + 1_000)
                .await
                .unwrap(),
            ClaimVerdict::Granted {
                expires_at_ms: T0 + 1_000 + 600_000
            }
        );
    }
    // RoomFull left the interval unused: the next call may try again.
    assert_eq!(
        f.store.advance(T0 + 1_001).await.unwrap(),
        Advance::RoomFull
    );
    // An accepted investment finishes the pass's turn and frees its place.
    assert!(matches!(
        invest_on(&f.store, "i1", "t1", "ann", 1_000, T0 + 1_500).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(
        f.store.advance(T0 + 2_000).await.unwrap(),
        Advance::Admitted(1)
    );
    assert_eq!(f.round().await.admitted_up_to, 5);
}

#[tokio::test]
async fn a_no_shows_reservation_lapses_after_the_claim_window() {
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 60_000,
        max_active: 2,
        claim_window_seconds: 60,
        ..settings()
    })
    .await;
    join(&f, 5, T0).await;
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(2));
    assert_eq!(
        f.store.advance(T0 + 59_999).await.unwrap(),
        Advance::RoomFull
    );
    // Nobody claimed: at T0 + 60 s both places are free again.
    assert_eq!(
        f.store.advance(T0 + 60_000).await.unwrap(),
        Advance::Admitted(2)
    );
    // A late claim needs a free place: the room is full now.
    assert_eq!(
        f.store.claim_pass("late", 1, T0 + 60_001).await.unwrap(),
        ClaimVerdict::RoomFull
    );
    // Once the newer reservations lapse too, the late claim gets in.
    assert_eq!(
        f.store.claim_pass("late", 1, T0 + 120_000).await.unwrap(),
        ClaimVerdict::Granted {
            expires_at_ms: T0 + 120_000 + 600_000
        }
    );
}

#[tokio::test]
async fn a_ticket_claims_once_and_an_expired_pass_stays_expired() {
    let f = Fixture::new(settings()).await;
    join(&f, 12, T0).await;
    f.store.advance(T0).await.unwrap();
    assert_eq!(
        f.store.claim_pass("late", 11, T0).await.unwrap(),
        ClaimVerdict::NotAdmitted
    );
    let granted = ClaimVerdict::Granted {
        expires_at_ms: T0 + 600_000,
    };
    assert_eq!(f.store.claim_pass("t", 3, T0).await.unwrap(), granted);
    // Again: the same lifetime, not a new one.
    assert_eq!(
        f.store.claim_pass("t", 3, T0 + 5_000).await.unwrap(),
        granted
    );
    assert_eq!(
        f.store.claim_pass("t", 3, T0 + 600_000).await.unwrap(),
        ClaimVerdict::Expired {
            expired_at_ms: T0 + 600_000
        }
    );
}
