//! Investing: every verdict, replays, and the cap under a race.

use crate::support::{Fixture, ROUND, T0, settings};
use crate::{invest, invest_on};
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::api::InvestmentStatus;
use crowdgate_store::{InvestVerdict, RoundKeys, RoundSettings, inspect};

#[tokio::test]
async fn accepted_then_replayed_and_a_reused_key_is_refused() {
    let f = Fixture::new(settings()).await;
    let InvestVerdict::Accepted(first) = invest(&f.store, "i1", "ann", 2_500, T0).await else {
        panic!("not accepted");
    };
    assert_eq!(
        (
            first.amount_pence,
            first.shares,
            first.accepted_at_ms,
            first.investor_id.as_str()
        ),
        (2_500, 25, T0, "ann")
    );
    // The same request later: the same investment, nothing counted twice.
    assert_eq!(
        invest(&f.store, "i1", "ann", 2_500, T0 + 9_000).await,
        InvestVerdict::Replayed(first.clone())
    );
    // The same key with another body.
    assert_eq!(
        invest(&f.store, "i1", "ann", 3_000, T0).await,
        InvestVerdict::KeyReused
    );
    let round = f.round().await;
    assert_eq!(
        (
            round.raised_pence,
            round.accepted_count,
            round.investor_count
        ),
        (2_500, 1, 1)
    );
    let stored = f.store.investment("i1").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.amount_pence),
        (InvestmentStatus::Accepted, 2_500)
    );
    assert_eq!(f.store.investment("nope").await.unwrap(), None);
}

#[tokio::test]
async fn each_refusal_names_its_reason_and_writes_nothing() {
    let f = Fixture::new(RoundSettings {
        max_investment_pence: 5_000,
        ..settings()
    })
    .await;
    assert!(matches!(
        invest_on(&f.store, "i1", "pass-1", "ann", 4_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    let keys = RoundKeys::new(ROUND);
    let mut conn = f.conn.clone();
    let before = inspect::stream_len(&mut conn, &keys.settlement_stream())
        .await
        .unwrap();
    for (verdict, expected) in [
        (
            invest_on(&f.store, "i2", "pass-1", "bob", 1_000, T0).await,
            InvestVerdict::PassBoundToOther,
        ),
        (
            invest(&f.store, "i3", "cat", 999, T0).await,
            InvestVerdict::BelowMinimum {
                minimum_pence: 1_000,
            },
        ),
        (
            invest(&f.store, "i4", "cat", 1_050, T0).await,
            InvestVerdict::NotWholeShares {
                share_price_pence: 100,
            },
        ),
        (
            invest_on(&f.store, "i5", "pass-1", "ann", 2_000, T0).await,
            InvestVerdict::OverInvestorLimit { left_pence: 1_000 },
        ),
    ] {
        assert_eq!(verdict, expected);
    }
    // Fill to £90 of £100, then ask for £20.
    for (id, investor) in [("f1", "dan"), ("f2", "eve")] {
        assert!(matches!(
            invest(&f.store, id, investor, 2_500, T0).await,
            InvestVerdict::Accepted(_)
        ));
    }
    let after_fill = inspect::stream_len(&mut conn, &keys.settlement_stream())
        .await
        .unwrap();
    assert_eq!(after_fill, before + 2);
    assert_eq!(
        invest(&f.store, "i6", "fay", 2_000, T0).await,
        InvestVerdict::RoundFull { left_pence: 1_000 }
    );
    let round = f.round().await;
    assert_eq!((round.raised_pence, round.accepted_count), (9_000, 3));
    assert_eq!(
        inspect::stream_len(&mut conn, &keys.settlement_stream())
            .await
            .unwrap(),
        after_fill
    );
}

#[tokio::test]
async fn many_investments_racing_for_the_last_places_never_pass_the_cap() {
    // £100 cap, 60 investors each wanting £10 at once: exactly 10 get in.
    let f = Fixture::new(settings()).await;
    let tasks: Vec<_> = (0..60)
        .map(|n| {
            let store = f.store.clone();
            tokio::spawn(async move {
                invest(
                    &store,
                    &format!("race{n}"),
                    &format!("inv{n}"),
                    1_000,
                    T0 + n,
                )
                .await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            InvestVerdict::Accepted(_) => accepted += 1,
            InvestVerdict::RoundFull { left_pence } => assert_eq!(left_pence, 0),
            other => panic!("{other:?}"),
        }
    }
    let round = f.round().await;
    assert_eq!(accepted, 10);
    assert_eq!((round.raised_pence, round.cap_pence), (10_000, 10_000));
    assert_eq!(round.phase, RoomPhase::Full);
    assert_eq!(
        round.accepted_pence - round.released_pence,
        round.raised_pence
    );
}
