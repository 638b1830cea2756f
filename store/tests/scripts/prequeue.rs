//! The pre-queue: a lottery before opening, sealed once at opening.

use crate::join;
use crate::support::{Fixture, T0, settings};
use crowdgate_protocol::RoomPhase;
use crowdgate_store::{Advance, Change, ChangeVerdict, Placement, PrequeueNumber, RoundSettings};

fn scheduled() -> RoundSettings {
    RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0 + 10_000,
        ..settings()
    }
}

#[tokio::test]
async fn members_own_one_to_p_by_score_and_later_joiners_follow_in_order() {
    let f = Fixture::new(scheduled()).await;
    // Arrival order is not score order: the draw decides.
    for (ticket, score) in [("c", 30), ("a", 10), ("b", 20)] {
        assert_eq!(join(&f.store, ticket, score, T0).await, Placement::Prequeue);
    }
    // Joining again changes nothing (NX): the first score stands.
    assert_eq!(join(&f.store, "a", 99, T0 + 1).await, Placement::Prequeue);
    assert_eq!(
        f.store.prequeue_number("a").await.unwrap(),
        PrequeueNumber::NotDrawn
    );
    assert_eq!(
        f.store.room_state(T0).await.unwrap().unwrap().prequeue_size,
        3
    );

    // The first joiner after opening seals the pre-queue, then takes P + 1.
    assert_eq!(
        join(&f.store, "d", 1, T0 + 10_000).await,
        Placement::Numbered(4)
    );
    assert_eq!(
        join(&f.store, "e", 0, T0 + 10_001).await,
        Placement::Numbered(5)
    );
    for (ticket, number) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(
            f.store.prequeue_number(ticket).await.unwrap(),
            PrequeueNumber::Drawn(number)
        );
    }
    assert_eq!(
        f.store.prequeue_number("d").await.unwrap(),
        PrequeueNumber::NotInPrequeue
    );
    let round = f.round().await;
    assert_eq!(
        (
            round.phase,
            round.prequeue_sealed,
            round.prequeue_size,
            round.issued
        ),
        (RoomPhase::Open, true, 3, 5)
    );
}

#[tokio::test]
async fn sealing_happens_once_whichever_script_sees_the_opening_first() {
    let f = Fixture::new(scheduled()).await;
    for (ticket, score) in [("a", 1), ("b", 2)] {
        join(&f.store, ticket, score, T0).await;
    }
    // advance sees the opening first: it seals and admits the pre-queue.
    assert_eq!(
        f.store.advance(T0 + 10_000).await.unwrap(),
        Advance::Admitted(2)
    );
    assert_eq!(f.round().await.issued, 2);
    // Nobody added later, whatever runs: the seal is not repeated.
    f.store.advance(T0 + 11_000).await.unwrap();
    assert_eq!(
        join(&f.store, "c", 0, T0 + 11_001).await,
        Placement::Numbered(3)
    );
    let round = f.round().await;
    assert_eq!((round.issued, round.prequeue_size), (3, 2));
    assert_eq!(
        f.store.room_state(T0).await.unwrap().unwrap().prequeue_size,
        2
    );
}

#[tokio::test]
async fn opening_by_ops_seals_on_the_next_step() {
    let f = Fixture::new(scheduled()).await;
    join(&f.store, "a", 5, T0).await;
    assert!(matches!(
        f.store
            .change(&Change::OpenNow, "op", T0 + 1)
            .await
            .unwrap(),
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(join(&f.store, "b", 1, T0 + 2).await, Placement::Numbered(2));
    assert_eq!(
        f.store.prequeue_number("a").await.unwrap(),
        PrequeueNumber::Drawn(1)
    );
}

#[tokio::test]
async fn an_unseeded_round_is_an_error_and_nothing_is_written() {
    let redis = crate::support::Redis::start();
    let conn = redis.manager().await;
    let store = crowdgate_store::RoundStore::new("ghost", conn.clone());
    assert!(matches!(
        store.join("a", 1, T0, None).await,
        Err(crowdgate_store::StoreError::NotSeeded { .. })
    ));
    assert!(matches!(
        store.advance(T0).await,
        Err(crowdgate_store::StoreError::NotSeeded { .. })
    ));
    assert_eq!(store.round_record().await.unwrap(), None);
}
