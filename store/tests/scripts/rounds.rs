//! The deployment's rounds: creating one through ops, seeding one from a
//! file, archiving a closed one, and the live set core drives.

use crate::support::{DRAW_RANDOM, Redis, T0, settings};
use crowdgate_protocol::RoomPhase;
use crowdgate_store::rounds::{archived_rounds, exists, live_rounds};
use crowdgate_store::{Archived, Change, ChangeVerdict, Created, Posting, RoundStore, Settlement};

#[tokio::test]
async fn a_created_round_is_live_audited_and_its_id_never_reused() {
    let redis = Redis::start();
    let mut conn = redis.manager().await;
    let spring = RoundStore::new("spring", conn.clone());
    let Created::Created { audit_id } = spring
        .create(&settings(), &DRAW_RANDOM, "ann", T0)
        .await
        .unwrap()
    else {
        panic!("a new id creates a round");
    };
    assert_eq!(live_rounds(&mut conn).await.unwrap(), vec!["spring"]);
    let round = spring.round_record().await.unwrap().unwrap().0;
    assert_eq!(
        (round.phase, round.cap_pence, round.raised_pence),
        (RoomPhase::Open, 10_000, 0)
    );
    assert!(
        round.sealed_draw().is_none(),
        "a draw is sealed only at opening"
    );
    let entries = spring.audit_entries(10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (
            &entries[0].id,
            entries[0].action.as_str(),
            entries[0].operator.as_str()
        ),
        (&audit_id, "create", "ann")
    );
    let changed: Vec<&str> = entries[0]
        .changes
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert!(changed.contains(&"cap_pence"), "{changed:?}");
    assert!(
        !changed.iter().any(|f| f.contains("secret")),
        "the audit never holds the draw's secret: {changed:?}"
    );

    // The same id again, with other settings: refused, nothing changes.
    let other = crowdgate_store::RoundSettings {
        cap_pence: 50_000,
        ..settings()
    };
    assert_eq!(
        spring
            .create(&other, &DRAW_RANDOM, "bob", T0)
            .await
            .unwrap(),
        Created::Exists
    );
    assert_eq!(
        spring.round_record().await.unwrap().unwrap().0.cap_pence,
        10_000
    );
    assert_eq!(spring.audit_entries(10).await.unwrap().len(), 1);

    // Archived once closed; then its id stays taken.
    assert_eq!(
        spring.archive("ann", T0 + 1).await.unwrap(),
        Archived::WrongPhase {
            phase: RoomPhase::Open
        }
    );
    assert!(matches!(
        spring.change(&Change::Close, "ann", T0 + 2).await.unwrap(),
        ChangeVerdict::Changed { .. }
    ));
    assert!(matches!(
        spring.archive("ann", T0 + 3).await.unwrap(),
        Archived::Archived { .. }
    ));
    assert_eq!(
        spring.archive("ann", T0 + 4).await.unwrap(),
        Archived::Already
    );
    assert!(live_rounds(&mut conn).await.unwrap().is_empty());
    assert_eq!(archived_rounds(&mut conn).await.unwrap(), vec!["spring"]);
    assert!(exists(&mut conn, "spring").await.unwrap());
    assert_eq!(
        spring
            .create(&settings(), &DRAW_RANDOM, "bob", T0 + 5)
            .await
            .unwrap(),
        Created::Exists
    );
    // Seeding it from a file again neither revives nor re-registers it.
    assert!(!spring.seed(&settings(), &DRAW_RANDOM).await.unwrap());
    assert!(live_rounds(&mut conn).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_seeded_round_joins_the_live_set_and_two_rounds_keep_apart() {
    let redis = Redis::start();
    let mut conn = redis.manager().await;
    let demo = RoundStore::new("demo", conn.clone());
    assert!(demo.seed(&settings(), &DRAW_RANDOM).await.unwrap());
    assert!(
        !demo.seed(&settings(), &DRAW_RANDOM).await.unwrap(),
        "seeded once"
    );
    let bond = RoundStore::new("bond", conn.clone());
    let bond_settings = crowdgate_store::RoundSettings {
        cap_pence: 5_000,
        ..settings()
    };
    assert!(matches!(
        bond.create(&bond_settings, &DRAW_RANDOM, "ann", T0)
            .await
            .unwrap(),
        Created::Created { .. }
    ));
    assert_eq!(live_rounds(&mut conn).await.unwrap(), vec!["bond", "demo"]);
    assert!(!exists(&mut conn, "nope").await.unwrap());

    // Filling one leaves the other untouched.
    assert!(matches!(
        crate::invest(&bond, "b1", "ann", 5_000, T0).await,
        crowdgate_store::InvestVerdict::Accepted(_)
    ));
    let (bond_round, demo_round) = (
        bond.round_record().await.unwrap().unwrap().0,
        demo.round_record().await.unwrap().unwrap().0,
    );
    assert_eq!(
        (bond_round.phase, bond_round.raised_pence),
        (RoomPhase::Full, 5_000)
    );
    assert_eq!(
        (demo_round.phase, demo_round.raised_pence),
        (RoomPhase::Open, 0)
    );
    assert!(matches!(
        crate::invest(&demo, "d1", "ann", 5_000, T0).await,
        crowdgate_store::InvestVerdict::Accepted(_)
    ));
}

/// An investor's balance is theirs, not a round's: investing in two rounds
/// spends one balance, and whichever way the two settlements interleave it
/// never goes below zero; the accounts' totals stay whole.
#[tokio::test]
async fn an_investor_in_two_rounds_spends_one_balance_and_never_below_zero() {
    let redis = Redis::start();
    let mut conn = redis.manager().await;
    let (shares, bonds) = (
        RoundStore::new("shares", conn.clone()),
        RoundStore::new("bonds", conn.clone()),
    );
    for store in [&shares, &bonds] {
        assert!(store.seed(&settings(), &DRAW_RANDOM).await.unwrap());
    }
    assert_eq!(
        crowdgate_store::open_accounts(&mut conn, &[("ann", 1_500), ("bob", 5_000)])
            .await
            .unwrap(),
        crowdgate_store::OpenAccounts::Opened
    );
    // ann has £15 and invests £10 in each round; bob £20 in each of £50.
    for (store, id) in [(&shares, "s"), (&bonds, "b")] {
        for (investor, amount) in [("ann", 1_000), ("bob", 2_000)] {
            assert!(matches!(
                crate::invest(store, &format!("{id}-{investor}"), investor, amount, T0).await,
                crowdgate_store::InvestVerdict::Accepted(_)
            ));
        }
    }
    // Settle the two rounds' entries interleaved, one at a time.
    let (s, b) = (Settlement::new("shares"), Settlement::new("bonds"));
    let mut postings = Vec::new();
    for settlement in [&s, &b] {
        settlement.ensure_group(&mut conn).await.unwrap();
    }
    let entries_s = s.read(&mut conn, "w", ">", 10, None).await.unwrap();
    let entries_b = b.read(&mut conn, "w", ">", 10, None).await.unwrap();
    for (e_s, e_b) in entries_s.iter().zip(&entries_b) {
        for (settlement, entry) in [(&b, e_b), (&s, e_s)] {
            let batch = [(entry.investment_id().unwrap(), entry.id.as_str())];
            let posting = settlement
                .settle_batch(&mut conn, &batch, T0 + 1)
                .await
                .unwrap()
                .remove(0)
                .unwrap();
            postings.push((entry.investment_id().unwrap().to_string(), posting));
        }
    }
    // ann's first settlement (the bonds one, settled first) took £10 of her
    // £15; the shares one failed for want of funds. bob's both settled.
    let failed: Vec<&str> = postings
        .iter()
        .filter(|(_, p)| matches!(p, Posting::Failed(_)))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(failed, vec!["s-ann"], "{postings:?}");
    let accounts =
        crowdgate_store::accounts_snapshot(&mut conn, &["shares".to_string(), "bonds".to_string()])
            .await
            .unwrap();
    assert_eq!(accounts.balances["ann"], 500);
    assert_eq!(accounts.balances["bob"], 1_000);
    assert_eq!(accounts.opened_pence, 6_500);
    assert_eq!(accounts.debited_pence, 1_000 + 4_000);
    assert_eq!(accounts.rounds_debits_pence, accounts.debited_pence);
    assert_eq!(
        accounts.balances.values().sum::<i64>() + accounts.debited_pence,
        accounts.opened_pence
    );
    // The failed amount went back to its own round only.
    assert_eq!(
        shares.round_record().await.unwrap().unwrap().0.raised_pence,
        2_000
    );
    assert_eq!(
        bonds.round_record().await.unwrap().unwrap().0.raised_pence,
        3_000
    );
}
