//! The pre-queue: entries in join order before opening, sealed once at
//! opening, each entry's number drawn by the published, checkable draw
//! (`crowdgate_protocol::draw`).

use crate::join;
use crate::support::{Fixture, T0, settings};
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::draw::{self, DrawKey};
use crowdgate_store::{Advance, Change, ChangeVerdict, Placement, PrequeueNumber, RoundSettings};

fn scheduled() -> RoundSettings {
    RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0 + 10_000,
        ..settings()
    }
}

#[tokio::test]
async fn entries_own_one_to_p_as_drawn_and_later_joiners_follow_in_order() {
    let f = Fixture::new(scheduled()).await;
    for (entry, ticket) in [(1, "c"), (2, "a"), (3, "b")] {
        assert_eq!(
            join(&f.store, ticket, T0).await,
            Placement::Prequeue { entry }
        );
    }
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
        join(&f.store, "d", T0 + 10_000).await,
        Placement::Numbered(4)
    );
    assert_eq!(
        join(&f.store, "e", T0 + 10_001).await,
        Placement::Numbered(5)
    );
    let mut numbers = Vec::new();
    for (entry, ticket) in [(1, "c"), (2, "a"), (3, "b")] {
        let number = crate::drawn(&f, entry).await;
        assert_eq!(
            f.store.prequeue_number(ticket).await.unwrap(),
            PrequeueNumber::Drawn(number)
        );
        numbers.push(number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3]);
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
async fn the_draw_is_committed_before_and_checkable_after_the_seal() {
    let f = Fixture::new(scheduled()).await;
    let tickets: Vec<String> = (0..200).map(|i| format!("ticket-{i:03}")).collect();
    for ticket in &tickets {
        join(&f.store, ticket, T0).await;
    }
    // Before the seal: the commitment only, never the secret.
    let before = f.store.room_state(T0 + 1).await.unwrap().unwrap();
    let published = before.draw.clone().expect("a draw is published");
    assert_eq!(published.revealed, None);
    let json = serde_json::to_string(&before).unwrap();
    let secret = f.round().await.draw_secret.unwrap().0;
    assert!(!json.contains(&secret), "the secret leaked before the seal");

    f.store
        .change(&Change::OpenNow, "op", T0 + 2)
        .await
        .unwrap();
    f.store.advance(T0 + 2).await.unwrap();
    let after = f.store.room_state(T0 + 3).await.unwrap().unwrap();
    let draw = after.draw.expect("a draw is published");
    let revealed = draw.revealed.expect("revealed at the seal");
    // What a visitor checks, from public values alone: the secret matches
    // the commitment shown before opening; the digest is the chain over
    // the entries in join order (computed here in Rust, by Redis's Lua in
    // the round); the key follows from both; every number from the key.
    assert_eq!(draw.commitment, published.commitment);
    assert_eq!(draw::commitment(&revealed.secret).unwrap(), draw.commitment);
    assert_eq!(
        revealed.entries_digest,
        draw::entries_digest(&draw.commitment, tickets.iter().map(String::as_str))
    );
    let key = DrawKey::derive(&revealed.secret, &revealed.entries_digest).unwrap();
    assert_eq!(key.to_hex(), revealed.key);
    assert_eq!(revealed.size, 200);
    let mut seen = vec![false; 201];
    for (i, ticket) in tickets.iter().enumerate() {
        let number = draw::number(&key, 200, i as u64 + 1).unwrap();
        assert_eq!(
            f.store.prequeue_number(ticket).await.unwrap(),
            PrequeueNumber::Drawn(number)
        );
        assert!(!seen[number as usize]);
        seen[number as usize] = true;
    }
    // Join order is not queue order.
    let in_order = (1..=200u64).all(|e| draw::number(&key, 200, e).unwrap() == e);
    assert!(!in_order);
}

#[tokio::test]
async fn each_round_has_its_own_secret_and_a_reseed_keeps_it() {
    let f = Fixture::new(scheduled()).await;
    let first = f.round().await.draw_commitment.unwrap();
    // core restarting seeds again with fresh randomness: the round keeps
    // the secret it was committed to.
    assert!(!f.store.seed(&scheduled(), &[9; 32]).await.unwrap());
    assert_eq!(f.round().await.draw_commitment.unwrap(), first);
    let other = crowdgate_store::RoundStore::new("other", f.conn.clone());
    assert!(other.seed(&scheduled(), &[9; 32]).await.unwrap());
    let (round, _) = other.round_record().await.unwrap().unwrap();
    assert_ne!(round.draw_commitment.unwrap(), first);
}

#[tokio::test]
async fn sealing_happens_once_whichever_script_sees_the_opening_first() {
    let f = Fixture::new(scheduled()).await;
    for ticket in ["a", "b"] {
        join(&f.store, ticket, T0).await;
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
        join(&f.store, "c", T0 + 11_001).await,
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
    join(&f.store, "a", T0).await;
    assert!(matches!(
        f.store
            .change(&Change::OpenNow, "op", T0 + 1)
            .await
            .unwrap(),
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(join(&f.store, "b", T0 + 2).await, Placement::Numbered(2));
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
        store.join("a", T0, None).await,
        Err(crowdgate_store::StoreError::NotSeeded { .. })
    ));
    assert!(matches!(
        store.advance(T0).await,
        Err(crowdgate_store::StoreError::NotSeeded { .. })
    ));
    assert_eq!(store.round_record().await.unwrap(), None);
}
