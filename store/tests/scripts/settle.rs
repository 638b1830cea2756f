//! Settling: postings, failures that release the cap, and the consumer
//! group's housekeeping.

use crate::invest;
use crate::support::{Fixture, ROUND, T0, settings};
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::api::InvestmentStatus;
use crowdgate_store::{Forget, InvestVerdict, OpenAccounts, Posting, RoundKeys, inspect};
use std::time::Duration;

/// Reads every new entry for `consumer` and settles them at `now`.
async fn settle_all(f: &Fixture, consumer: &str, now: u64) -> Vec<Posting> {
    let mut conn = f.conn.clone();
    f.settlement.ensure_group(&mut conn).await.unwrap();
    let entries = f
        .settlement
        .read(&mut conn, consumer, ">", 100, None)
        .await
        .unwrap();
    let batch: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.investment_id().unwrap(), e.id.as_str()))
        .collect();
    f.settlement
        .settle_batch(&mut conn, &batch, now)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn a_settlement_posts_once_and_a_failure_releases_the_cap_and_reopens() {
    let f = Fixture::new(settings()).await;
    let mut conn = f.conn.clone();
    assert_eq!(
        crowdgate_store::open_accounts(&mut conn, &[("ann", 6_000), ("bob", 100)])
            .await
            .unwrap(),
        OpenAccounts::Opened
    );
    assert_eq!(
        crowdgate_store::open_accounts(&mut conn, &[("cat", 1), ("ann", 5)])
            .await
            .unwrap(),
        OpenAccounts::AlreadyExist(vec!["ann".into()])
    );
    assert!(matches!(
        invest(&f.store, "a", "ann", 6_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    assert!(matches!(
        invest(&f.store, "b", "bob", 4_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(f.phase().await, RoomPhase::Full);

    assert_eq!(
        settle_all(&f, "w1", T0 + 1).await,
        vec![
            Posting::Settled,
            Posting::Failed("insufficient_funds".into())
        ]
    );
    let round = f.round().await;
    assert_eq!(
        round.phase,
        RoomPhase::Open,
        "the release reopened the round"
    );
    assert_eq!(
        (
            round.raised_pence,
            round.accepted_pence,
            round.released_pence
        ),
        (6_000, 10_000, 4_000)
    );
    let counters = f.settlement.counters(&mut conn).await.unwrap();
    let ledger = counters.ledger;
    assert_eq!(
        (
            ledger.debits_pence,
            ledger.credits_pence,
            ledger.escrow_pence
        ),
        (6_000, 6_000, 6_000)
    );
    assert_eq!(
        (
            ledger.settled_count,
            ledger.failed_count,
            ledger.failed_pence
        ),
        (1, 1, 4_000)
    );
    assert_eq!((counters.journal_len, counters.settlement_len), (1, 2));
    assert_eq!(
        crowdgate_store::accounts_snapshot(&mut conn, &[])
            .await
            .unwrap()
            .balances["ann"],
        0
    );
    assert_eq!(
        f.settlement.investor_totals(&mut conn).await.unwrap()["bob"],
        0
    );
    let failed = f.store.investment("b").await.unwrap().unwrap();
    assert_eq!(failed.status, InvestmentStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("insufficient_funds"));

    // Redelivered (a reclaimed entry): acked again, nothing posted twice.
    let mut conn2 = f.conn.clone();
    let stream = RoundKeys::new(ROUND).settlement_stream();
    let ids: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn2)
        .await
        .unwrap();
    let again: Vec<(&str, &str)> = vec![("a", ids[0].0.as_str()), ("b", ids[1].0.as_str())];
    let postings = f
        .settlement
        .settle_batch(&mut conn, &again, T0 + 2)
        .await
        .unwrap();
    assert!(postings.iter().all(|p| matches!(p, Ok(Posting::Already))));
    let ledger = f.settlement.counters(&mut conn).await.unwrap().ledger;
    assert_eq!((ledger.debits_pence, ledger.settled_count), (6_000, 1));
}

#[tokio::test]
async fn an_entry_naming_nothing_is_missing_and_a_corrupt_record_fails_alone() {
    let f = Fixture::new(settings()).await;
    let mut conn = f.conn.clone();
    let keys = RoundKeys::new(ROUND);
    inspect::set_balances(&mut conn, &[("ann", 10_000)])
        .await
        .unwrap();
    assert!(matches!(
        invest(&f.store, "ok", "ann", 1_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    let _: () = redis::cmd("HSET")
        .arg(keys.investment("bad"))
        .arg("status")
        .arg("accepted")
        .arg("amount_pence")
        .arg("lots")
        .query_async(&mut conn)
        .await
        .unwrap();
    let results = f
        .settlement
        .settle_batch(
            &mut conn,
            &[("ghost", "1-0"), ("bad", "2-0"), ("ok", "3-0")],
            T0,
        )
        .await
        .unwrap();
    assert!(matches!(results[0], Ok(Posting::Missing)));
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("has amount lots"), "{err}");
    assert!(matches!(results[2], Ok(Posting::Settled)));
}

#[tokio::test]
async fn only_an_idle_consumer_holding_nothing_is_forgotten() {
    let f = Fixture::new(settings()).await;
    let mut conn = f.conn.clone();
    f.settlement.ensure_group(&mut conn).await.unwrap();
    f.settlement.ensure_group(&mut conn).await.unwrap();
    assert!(matches!(
        invest(&f.store, "a", "ann", 1_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    // "holder" takes the entry and keeps it; "idle" reads nothing.
    assert_eq!(
        f.settlement
            .read(&mut conn, "holder", ">", 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(RoundKeys::new(ROUND).settlement_stream())
        .arg("settlement")
        .arg("idle")
        .query_async(&mut conn)
        .await
        .unwrap();
    let long = Duration::from_secs(3_600);
    let s = &f.settlement;
    assert_eq!(
        s.forget_consumer(&mut conn, "holder", Duration::ZERO)
            .await
            .unwrap(),
        Forget::HoldsPending
    );
    assert_eq!(
        s.forget_consumer(&mut conn, "idle", long).await.unwrap(),
        Forget::Active
    );
    assert_eq!(
        s.forget_consumer(&mut conn, "nobody", Duration::ZERO)
            .await
            .unwrap(),
        Forget::Gone
    );
    assert_eq!(
        s.forget_idle_consumers(&mut conn, "me", Duration::ZERO)
            .await
            .unwrap(),
        vec!["idle".to_string()]
    );
    let entry = &s.read(&mut conn, "holder", "0", 10, None).await.unwrap()[0];
    assert_eq!(s.deliveries(&mut conn, &entry.id).await.unwrap(), 2);
    s.dead_letter(&mut conn, entry, "test").await.unwrap();
    assert_eq!(s.deliveries(&mut conn, &entry.id).await.unwrap(), 0);
    let counters = s.counters(&mut conn).await.unwrap();
    assert_eq!(counters.dead_letter_len, 1);
}
