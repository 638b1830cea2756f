//! Leaving the queue (`leave.lua`) and admission passing over the numbers
//! that left (`advance.lua`): a pre-queue place is not drawn, a waiting
//! number takes no place in a batch, an admitted number's reservation is
//! freed at once; the ticket is spent (a claim answers expired, a join
//! takes a new place at the back), and leaving twice answers the same.

use crate::join;
use crate::support::{Fixture, ROUND, T0, settings};
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::api::IdentityMode;
use crowdgate_store::{
    Advance, ClaimVerdict, Joined, Joiner, LeaveVerdict, Placement, PrequeueNumber, RoundKeys,
    RoundSettings,
};
use redis::AsyncCommands;

/// `n` anonymous joins at `now`: tickets `t<first>`.. hold numbers
/// `first`.. (the round is open and nobody else joins).
async fn join_numbered(f: &Fixture, first: u64, n: u64, now: u64) {
    for number in first..first + n {
        assert_eq!(
            join(&f.store, &format!("t{number}"), now).await,
            Placement::Numbered(number)
        );
    }
}

/// Ticket `t<number>` leaves at `now` (anonymous: no investor).
async fn leave(f: &Fixture, number: u64, now: u64) -> LeaveVerdict {
    f.store
        .leave(&format!("t{number}"), Some(number), None, now)
        .await
        .unwrap()
}

fn left(number: u64) -> LeaveVerdict {
    LeaveVerdict::Left {
        queue_number: Some(number),
    }
}

/// The admitted numbers holding a reservation, in order.
async fn reserved(f: &Fixture) -> Vec<u64> {
    let mut conn = f.conn.clone();
    let members: Vec<u64> = conn
        .zrange(RoundKeys::new(ROUND).reserved(), 0, -1)
        .await
        .unwrap();
    let mut members = members;
    members.sort_unstable();
    members
}

#[tokio::test]
async fn a_prequeue_place_left_before_the_draw_is_passed_over() {
    let f = Fixture::new(RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0 + 10_000,
        ..settings()
    })
    .await;
    for (entry, ticket) in [(1, "a"), (2, "b"), (3, "c")] {
        assert_eq!(
            join(&f.store, ticket, T0).await,
            Placement::Prequeue { entry }
        );
    }
    let gone = LeaveVerdict::Left { queue_number: None };
    assert_eq!(f.store.leave("a", None, None, T0 + 1).await.unwrap(), gone);
    // Leaving again answers the same.
    assert_eq!(f.store.leave("a", None, None, T0 + 2).await.unwrap(), gone);
    // Those still registered.
    assert_eq!(
        f.store
            .room_state(T0 + 2)
            .await
            .unwrap()
            .unwrap()
            .prequeue_size,
        2
    );
    // The draw at opening covers all three entries (nobody else's number
    // depends on who left), and a's number is passed over: 2 admitted.
    assert_eq!(
        f.store.advance(T0 + 10_000).await.unwrap(),
        Advance::Admitted(2)
    );
    let [a, b, c] = [
        crate::drawn(&f, 1).await,
        crate::drawn(&f, 2).await,
        crate::drawn(&f, 3).await,
    ];
    for (ticket, number) in [("b", b), ("c", c)] {
        assert_eq!(
            f.store.prequeue_number(ticket).await.unwrap(),
            PrequeueNumber::Drawn(number)
        );
    }
    assert_eq!(
        f.store.prequeue_number("a").await.unwrap(),
        PrequeueNumber::Left
    );
    // a's drawn number is recorded as given up, and never reserved.
    let mut conn = f.conn.clone();
    let given_up: Option<u64> = conn
        .zscore(RoundKeys::new(ROUND).left(), "a")
        .await
        .unwrap();
    assert_eq!(given_up, Some(a));
    let mut expected = vec![b, c];
    expected.sort_unstable();
    assert_eq!(reserved(&f).await, expected);
    assert_eq!(
        f.store.leave("a", None, None, T0 + 10_001).await.unwrap(),
        LeaveVerdict::Left {
            queue_number: Some(a)
        }
    );
    let round = f.round().await;
    assert_eq!((round.issued, round.admitted_up_to), (3, 3));
    // A pass cannot be claimed with it either.
    assert!(matches!(
        f.store.claim_pass("a", a, T0 + 10_002).await.unwrap(),
        ClaimVerdict::Expired { .. }
    ));
}

#[tokio::test]
async fn a_drawn_prequeue_place_left_keeps_the_others_numbers_and_is_passed_over() {
    let f = Fixture::new(RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0 + 10_000,
        rate_per_minute: 60,
        ..settings()
    })
    .await;
    for ticket in ["a", "b", "c"] {
        join(&f.store, ticket, T0).await;
    }
    // After opening (the leave applies the clock and seals): b's pre-queue
    // ticket, given without its number, gives up the number it drew, and
    // nobody else's moves.
    let left_b = f.store.leave("b", None, None, T0 + 10_000).await.unwrap();
    let [a, b, c] = [
        crate::drawn(&f, 1).await,
        crate::drawn(&f, 2).await,
        crate::drawn(&f, 3).await,
    ];
    assert_eq!(left_b, left(b));
    assert_eq!(
        f.store.prequeue_number("c").await.unwrap(),
        PrequeueNumber::Drawn(c)
    );
    // One a second: the two who stayed, b's number passed over.
    for now in [T0 + 10_000, T0 + 11_000, T0 + 12_000] {
        f.store.advance(now).await.unwrap();
    }
    assert_eq!(f.round().await.admitted_up_to, 3);
    let mut expected = vec![a, c];
    expected.sort_unstable();
    assert_eq!(reserved(&f).await, expected);
}

#[tokio::test]
async fn a_waiting_number_that_left_is_skipped_and_the_next_person_takes_its_place_in_the_batch() {
    // 10 a batch.
    let f = Fixture::new(settings()).await;
    join_numbered(&f, 1, 25, T0).await;
    assert_eq!(leave(&f, 3, T0).await, left(3));
    assert_eq!(leave(&f, 11, T0).await, left(11));
    // Ten people: 1..12 without 3 and 11.
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(10));
    assert_eq!(f.round().await.admitted_up_to, 12);
    let admitted = reserved(&f).await;
    assert_eq!(admitted, vec![1, 2, 4, 5, 6, 7, 8, 9, 10, 12]);
    // The batch was measured as the 12 numbers it moved the cursor, since
    // positions and waits are in numbers: 12 in a 1 s interval.
    assert_eq!(f.round().await.achieved_rate_milli_per_minute, 720_000);
    // A run of leavers at the end: the cursor passes all of them, and a
    // queue of nobody but leavers is nobody waiting.
    for number in 20..=25 {
        leave(&f, number, T0 + 500).await;
    }
    assert_eq!(
        f.store.advance(T0 + 1_000).await.unwrap(),
        Advance::Admitted(7)
    );
    assert_eq!(f.round().await.admitted_up_to, 25);
    assert_eq!(
        f.store.advance(T0 + 2_000).await.unwrap(),
        Advance::NobodyWaiting
    );
    assert!(!reserved(&f).await.iter().any(|n| (20..=25).contains(n)));
}

#[tokio::test]
async fn only_leavers_left_is_nobody_waiting_and_the_cursor_moves_past_them() {
    let f = Fixture::new(settings()).await;
    join_numbered(&f, 1, 3, T0).await;
    for number in 1..=3 {
        leave(&f, number, T0).await;
    }
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::NobodyWaiting);
    let round = f.round().await;
    assert_eq!((round.admitted_up_to, round.issued), (3, 3));
    assert!(reserved(&f).await.is_empty());
}

#[tokio::test]
async fn an_admitted_number_that_left_frees_its_place_for_the_next_batch() {
    let f = Fixture::new(RoundSettings {
        rate_per_minute: 60_000,
        max_active: 2,
        ..settings()
    })
    .await;
    join_numbered(&f, 1, 5, T0).await;
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(2));
    assert_eq!(
        f.store.advance(T0 + 1_000).await.unwrap(),
        Advance::RoomFull
    );
    // 1 leaves without claiming: its place is free now, not after the
    // 60 s claim window.
    assert_eq!(leave(&f, 1, T0 + 1_500).await, left(1));
    assert_eq!(
        f.store.advance(T0 + 1_501).await.unwrap(),
        Advance::Admitted(1)
    );
    assert_eq!(f.round().await.admitted_up_to, 3);
    assert_eq!(reserved(&f).await, vec![2, 3]);
    // Its pass can no longer be claimed: its turn is given up.
    assert_eq!(
        f.store.claim_pass("t1", 1, T0 + 2_000).await.unwrap(),
        ClaimVerdict::Expired {
            expired_at_ms: T0 + 1_500
        }
    );
    assert_eq!(reserved(&f).await, vec![2, 3]);
}

#[tokio::test]
async fn a_waiting_ticket_that_left_cannot_claim_once_the_cursor_passes() {
    let f = Fixture::new(settings()).await;
    join_numbered(&f, 1, 3, T0).await;
    assert_eq!(leave(&f, 2, T0).await, left(2));
    f.store.advance(T0).await.unwrap();
    assert_eq!(f.round().await.admitted_up_to, 3);
    assert_eq!(
        f.store.claim_pass("t2", 2, T0 + 1).await.unwrap(),
        ClaimVerdict::Expired { expired_at_ms: T0 }
    );
}

#[tokio::test]
async fn leaving_twice_answers_the_same_and_a_claimed_pass_is_kept() {
    let f = Fixture::new(settings()).await;
    join_numbered(&f, 1, 3, T0).await;
    assert_eq!(leave(&f, 3, T0).await, left(3));
    assert_eq!(leave(&f, 3, T0 + 5_000).await, left(3));
    // Even after admission passed it.
    f.store.advance(T0 + 5_000).await.unwrap();
    assert_eq!(leave(&f, 3, T0 + 6_000).await, left(3));
    // A ticket that claimed its pass: its turn is under way, and leaving
    // writes nothing (its pass and place stay).
    assert_eq!(
        f.store.claim_pass("t1", 1, T0 + 6_000).await.unwrap(),
        ClaimVerdict::Granted {
            expires_at_ms: T0 + 6_000 + 600_000
        }
    );
    assert_eq!(
        leave(&f, 1, T0 + 7_000).await,
        LeaveVerdict::Claimed {
            expires_at_ms: T0 + 606_000
        }
    );
    assert_eq!(
        f.store.claim_pass("t1", 1, T0 + 8_000).await.unwrap(),
        ClaimVerdict::Granted {
            expires_at_ms: T0 + 606_000
        }
    );
    let mut conn = f.conn.clone();
    let in_left: Option<f64> = conn
        .zscore(RoundKeys::new(ROUND).left(), "t1")
        .await
        .unwrap();
    assert_eq!(in_left, None);
}

#[tokio::test]
async fn an_investor_who_left_joins_again_at_the_back() {
    let f = Fixture::new(RoundSettings {
        identity: IdentityMode::Required,
        rate_per_minute: 0,
        ..settings()
    })
    .await;
    let join_as = async |investor: &str, ticket: &str, now: u64| -> Joined {
        f.store
            .join(
                ticket,
                now,
                Some(Joiner {
                    investor_id: investor,
                    max_investment_pence: None,
                }),
            )
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        join_as("ann", "a1", T0).await.placement,
        Placement::Numbered(1)
    );
    assert_eq!(
        join_as("bob", "b1", T0).await.placement,
        Placement::Numbered(2)
    );
    assert_eq!(
        f.store
            .leave("a1", Some(1), Some("ann"), T0 + 1)
            .await
            .unwrap(),
        left(1)
    );
    // A new place at the back, not the one given up.
    let again = join_as("ann", "a2", T0 + 2).await;
    assert_eq!(
        again,
        Joined {
            placement: Placement::Numbered(3),
            ticket_id: "a2".into(),
            rejoined: false,
        }
    );
    // The old ticket leaving again neither answers differently nor takes
    // the new place away.
    assert_eq!(
        f.store
            .leave("a1", Some(1), Some("ann"), T0 + 3)
            .await
            .unwrap(),
        left(1)
    );
    let kept = join_as("ann", "a3", T0 + 4).await;
    assert_eq!(
        (kept.placement, kept.ticket_id.as_str(), kept.rejoined),
        (Placement::Numbered(3), "a2", true)
    );
}

#[tokio::test]
async fn admission_passes_over_at_most_a_bounded_run_of_leavers_a_step() {
    let f = Fixture::new(settings()).await;
    join_numbered(&f, 1, 1_210, T0).await;
    for number in 1..=1_200 {
        leave(&f, number, T0).await;
    }
    // The first step looks at 1,000 leavers and stops after the last of
    // them (it cannot know whether 1,001 left without looking).
    assert_eq!(f.store.advance(T0).await.unwrap(), Advance::Admitted(0));
    let round = f.round().await;
    assert_eq!(round.admitted_up_to, 1_000);
    // Measured as the 1,000 numbers it moved in its 1 s interval.
    assert_eq!(round.achieved_rate_milli_per_minute, 60_000_000);
    // The next passes the other 200 and admits a whole batch after them.
    assert_eq!(
        f.store.advance(T0 + 1_000).await.unwrap(),
        Advance::Admitted(10)
    );
    assert_eq!(f.round().await.admitted_up_to, 1_210);
    assert_eq!(reserved(&f).await, (1_201..=1_210).collect::<Vec<_>>());
}
