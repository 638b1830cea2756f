//! Signed-in investors: one live place each (joining again from another
//! browser, device or app returns the same ticket and number, or the same
//! lottery entry, until the turn is spent), a round that needs sign-in
//! refuses an anonymous join without writing anything, and an investor's own
//! maximum can only lower the round's — the latest sign-in's binds even a
//! pass signed before it.

use crate::support::{Fixture, ROUND, T0, settings};
use crate::{invest_capped, join};
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::api::IdentityMode;
use crowdgate_store::layout::round as R;
use crowdgate_store::{
    Advance, ClaimVerdict, InvestVerdict, Joined, Joiner, Placement, PrequeueNumber, RoundKeys,
    RoundSettings, RoundStore,
};
use redis::AsyncCommands;
use std::collections::HashMap;

/// The production default: only signed-in investors queue.
fn required() -> RoundSettings {
    RoundSettings {
        identity: IdentityMode::Required,
        ..settings()
    }
}

/// `investor` joins, offering `ticket` for a new place.
async fn join_as(store: &RoundStore, investor: &str, ticket: &str, now_ms: u64) -> Joined {
    store
        .join(
            ticket,
            now_ms,
            Some(Joiner {
                investor_id: investor,
                max_investment_pence: None,
            }),
        )
        .await
        .unwrap()
        .expect("an investor always gets a place")
}

fn new_place(placement: Placement, ticket: &str) -> Joined {
    Joined {
        placement,
        ticket_id: ticket.into(),
        rejoined: false,
    }
}

fn same_place(placement: Placement, ticket: &str) -> Joined {
    Joined {
        placement,
        ticket_id: ticket.into(),
        rejoined: true,
    }
}

#[tokio::test]
async fn an_investor_joining_again_gets_the_same_ticket_and_number() {
    let f = Fixture::new(required()).await;
    assert_eq!(
        join_as(&f.store, "ann", "t1", T0).await,
        new_place(Placement::Numbered(1), "t1")
    );
    // Another browser or device: the place ann holds, not a second one.
    for (offered, now) in [("t2", T0 + 1), ("t3", T0 + 60_000)] {
        assert_eq!(
            join_as(&f.store, "ann", offered, now).await,
            same_place(Placement::Numbered(1), "t1")
        );
    }
    // Another investor gets a place of their own, behind ann.
    assert_eq!(
        join_as(&f.store, "bob", "t4", T0 + 2).await,
        new_place(Placement::Numbered(2), "t4")
    );
    assert_eq!(
        join_as(&f.store, "bob", "t5", T0 + 3).await,
        same_place(Placement::Numbered(2), "t4")
    );
    // Only two numbers were ever issued.
    assert_eq!(f.round().await.issued, 2);
}

#[tokio::test]
async fn a_pre_queue_place_is_the_same_lottery_entry_before_and_after_the_draw() {
    let f = Fixture::new(RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0 + 10_000,
        ..required()
    })
    .await;
    assert_eq!(
        join_as(&f.store, "ann", "a", T0).await,
        new_place(Placement::Prequeue { entry: 1 }, "a")
    );
    assert_eq!(
        join_as(&f.store, "bob", "b", T0).await,
        new_place(Placement::Prequeue { entry: 2 }, "b")
    );
    // Joining again enters no second ticket in the lottery: one draw each.
    assert_eq!(
        join_as(&f.store, "ann", "x", T0 + 1).await,
        same_place(Placement::Prequeue { entry: 1 }, "a")
    );
    assert_eq!(
        f.store
            .room_state(T0 + 1)
            .await
            .unwrap()
            .unwrap()
            .prequeue_size,
        2
    );

    // The round opens; the next joiner seals the pre-queue and follows it.
    assert_eq!(
        join_as(&f.store, "cat", "c", T0 + 10_000).await,
        new_place(Placement::Numbered(3), "c")
    );
    // After the draw ann still holds her pre-queue entry, whose number is
    // drawn from it: rejoining neither loses nor improves it.
    assert_eq!(
        join_as(&f.store, "ann", "y", T0 + 10_001).await,
        same_place(Placement::Prequeue { entry: 1 }, "a")
    );
    assert_eq!(
        f.store.prequeue_number("a").await.unwrap(),
        PrequeueNumber::Drawn(crate::drawn(&f, 1).await)
    );
    assert_eq!(
        f.store.prequeue_number("y").await.unwrap(),
        PrequeueNumber::NotInPrequeue
    );
    let round = f.round().await;
    assert_eq!((round.issued, round.prequeue_size), (3, 2));
}

#[tokio::test]
async fn a_spent_place_gives_way_to_a_new_one_at_the_back() {
    let f = Fixture::new(required()).await;
    join_as(&f.store, "ann", "t1", T0).await;
    join_as(&f.store, "bob", "t2", T0).await;
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(2));
    let expires = T0 + 1_000 + 600_000;
    assert_eq!(
        f.store.claim_pass("t1", 1, T0 + 1_000).await.unwrap(),
        ClaimVerdict::Granted {
            expires_at_ms: expires
        }
    );
    // While the pass lives, the turn is ann's: the same place.
    assert_eq!(
        join_as(&f.store, "ann", "t3", expires - 1).await,
        same_place(Placement::Numbered(1), "t1")
    );
    join_as(&f.store, "cat", "t4", expires - 1).await;
    // Once it has expired the turn is over: a new place, behind everyone
    // who joined meanwhile (never the old number again).
    assert_eq!(
        join_as(&f.store, "ann", "t5", expires).await,
        new_place(Placement::Numbered(4), "t5")
    );
    assert_eq!(
        join_as(&f.store, "ann", "t6", expires + 1).await,
        same_place(Placement::Numbered(4), "t5")
    );
    // bob never claimed: his place is still his (a late claim may use it).
    assert_eq!(
        join_as(&f.store, "bob", "t7", expires + 1).await,
        same_place(Placement::Numbered(2), "t2")
    );
    assert_eq!(f.round().await.issued, 4);
}

#[tokio::test]
async fn an_anonymous_room_gives_a_new_place_per_join() {
    let f = Fixture::new(settings()).await;
    assert_eq!(f.round().await.identity, IdentityMode::Anonymous);
    for (ticket, number) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(
            join(&f.store, ticket, T0).await,
            Placement::Numbered(number)
        );
    }
}

#[tokio::test]
async fn a_round_needing_sign_in_refuses_an_anonymous_join_and_writes_nothing() {
    // Scheduled, with its opening time come: even the clock is not applied.
    let f = Fixture::new(RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0,
        ..required()
    })
    .await;
    let keys = RoundKeys::new(ROUND);
    let mut conn = f.conn.clone();
    let before: HashMap<String, String> = conn.hgetall(keys.round()).await.unwrap();
    let mut keys_before: Vec<String> = conn.keys("*").await.unwrap();
    keys_before.sort();
    for now in [T0 - 1, T0] {
        assert_eq!(f.store.join("t1", now, None).await.unwrap(), None);
    }
    let after: HashMap<String, String> = conn.hgetall(keys.round()).await.unwrap();
    let mut keys_after: Vec<String> = conn.keys("*").await.unwrap();
    keys_after.sort();
    assert_eq!(after, before);
    assert_eq!(keys_after, keys_before);
    assert_eq!(f.round().await.identity, IdentityMode::Required);
}

#[tokio::test]
async fn a_round_seeded_before_identity_existed_needs_sign_in() {
    let f = Fixture::new(settings()).await;
    let mut conn = f.conn.clone();
    let _: () = conn
        .hdel(RoundKeys::new(ROUND).round(), R::IDENTITY)
        .await
        .unwrap();
    assert_eq!(f.round().await.identity, IdentityMode::Required);
    assert_eq!(f.store.join("t1", T0, None).await.unwrap(), None);
    assert_eq!(
        join_as(&f.store, "ann", "t2", T0).await,
        new_place(Placement::Numbered(1), "t2")
    );
}

#[tokio::test]
async fn an_investors_own_maximum_lowers_the_rounds_and_never_raises_it() {
    // The round allows £50 each.
    let f = Fixture::new(RoundSettings {
        max_investment_pence: 5_000,
        ..settings()
    })
    .await;
    // ann's identity allows £30.
    let ann = |id: &'static str, amount| {
        invest_capped(&f.store, id, "pass-ann", "ann", amount, Some(3_000), T0)
    };
    assert!(matches!(ann("a1", 2_000).await, InvestVerdict::Accepted(_)));
    assert_eq!(
        ann("a2", 2_000).await,
        InvestVerdict::OverInvestorLimit { left_pence: 1_000 }
    );
    assert!(matches!(ann("a3", 1_000).await, InvestVerdict::Accepted(_)));
    // bob's allows £80: the round's £50 still binds.
    let bob = |id: &'static str, amount| {
        invest_capped(&f.store, id, "pass-bob", "bob", amount, Some(8_000), T0)
    };
    assert_eq!(
        bob("b1", 6_000).await,
        InvestVerdict::OverInvestorLimit { left_pence: 5_000 }
    );
    assert!(matches!(bob("b2", 5_000).await, InvestVerdict::Accepted(_)));
    assert_eq!(
        bob("b3", 1_000).await,
        InvestVerdict::OverInvestorLimit { left_pence: 0 }
    );
    assert_eq!(f.round().await.raised_pence, 8_000);
}

/// Regression: the limit used to travel only in the ticket, so a ticket kept
/// from an earlier sign-in (no limit) still invested past the limit a later
/// sign-in carried. Now every join records the sign-in's limit, and the
/// invest script holds every pass of that investor to it.
#[tokio::test]
async fn the_latest_sign_ins_limit_binds_passes_signed_before_it() {
    let f = Fixture::new(RoundSettings {
        max_investment_pence: 5_000,
        ..required()
    })
    .await;
    let join_with_limit = |limit| {
        f.store.join(
            "t-ann",
            T0,
            Some(Joiner {
                investor_id: "ann",
                max_investment_pence: limit,
            }),
        )
    };
    // ann signs in without a limit, keeps that ticket's pass (no limit on it)...
    join_with_limit(None).await.unwrap().unwrap();
    // ...then signs in again with a £20 limit: the same place.
    let again = join_with_limit(Some(2_000)).await.unwrap().unwrap();
    assert!(again.rejoined);
    let old_pass =
        |id: &'static str, amount| invest_capped(&f.store, id, "t-ann", "ann", amount, None, T0);
    assert_eq!(
        old_pass("a1", 3_000).await,
        InvestVerdict::OverInvestorLimit { left_pence: 2_000 }
    );
    assert!(matches!(
        old_pass("a2", 2_000).await,
        InvestVerdict::Accepted(_)
    ));
    // A later sign-in without a limit lifts it back to the round's.
    join_with_limit(None).await.unwrap().unwrap();
    assert!(matches!(
        old_pass("a3", 3_000).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(f.round().await.raised_pence, 5_000);
}
