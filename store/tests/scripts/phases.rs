//! The phase machine: the clock, ops, the cap and releases.

use crate::invest;
use crate::support::{Fixture, T0, settings};
use crowdgate_protocol::RoomPhase;
use crowdgate_store::scripts::PRELUDE;
use crowdgate_store::{Advance, Change, ChangeVerdict, ClaimVerdict, InvestVerdict};

#[tokio::test]
async fn a_scheduled_round_opens_by_the_clock() {
    let f = Fixture::new(crowdgate_store::RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        opens_at_ms: T0 + 1_000,
        ..settings()
    })
    .await;
    assert_eq!(f.store.advance(T0 + 999).await.unwrap(), Advance::NotOpen);
    assert_eq!(f.phase().await, RoomPhase::Scheduled);
    assert!(matches!(
        invest(&f.store, "i1", "ann", 1_000, T0 + 999).await,
        InvestVerdict::NotOpen
    ));
    // Opening at the stroke; nobody queued yet.
    assert_eq!(
        f.store.advance(T0 + 1_000).await.unwrap(),
        Advance::NobodyWaiting
    );
    assert_eq!(f.phase().await, RoomPhase::Open);
}

#[tokio::test]
async fn the_closing_time_closes_the_round_and_binds_before_anyone_notices() {
    let f = Fixture::new(crowdgate_store::RoundSettings {
        closes_at_ms: T0 + 5_000,
        ..settings()
    })
    .await;
    assert!(matches!(
        invest(&f.store, "i1", "ann", 1_000, T0 + 4_999).await,
        InvestVerdict::Accepted(_)
    ));
    // Past the closing time, still stored open: invest and claim refuse, and
    // write nothing.
    assert_eq!(f.phase().await, RoomPhase::Open);
    assert_eq!(
        invest(&f.store, "i2", "bob", 1_000, T0 + 5_000).await,
        InvestVerdict::Closed
    );
    assert_eq!(
        f.store.claim_pass("t", 1, T0 + 5_000).await.unwrap(),
        ClaimVerdict::RoundClosed
    );
    assert_eq!(f.phase().await, RoomPhase::Open);
    // The next script that applies the clock writes it.
    assert_eq!(f.store.advance(T0 + 5_000).await.unwrap(), Advance::NotOpen);
    assert_eq!(f.phase().await, RoomPhase::Closed);
    // Ops cannot open or resume past the closing time either.
    assert_eq!(
        f.store
            .change(&Change::Resume, "op", T0 + 6_000)
            .await
            .unwrap(),
        ChangeVerdict::WrongPhase {
            phase: RoomPhase::Closed
        }
    );
}

#[tokio::test]
async fn ops_move_the_phase_only_along_the_machine() {
    let f = Fixture::new(crowdgate_store::RoundSettings {
        initial_phase: RoomPhase::Scheduled,
        closes_at_ms: T0 + 60_000,
        ..settings()
    })
    .await;
    let change = async |c: Change, now: u64| f.store.change(&c, "op", now).await.unwrap();
    let wrong = |phase| ChangeVerdict::WrongPhase { phase };
    assert_eq!(change(Change::Pause, T0).await, wrong(RoomPhase::Scheduled));
    assert_eq!(
        change(Change::Resume, T0).await,
        wrong(RoomPhase::Scheduled)
    );
    assert_eq!(
        change(
            Change::OpenAt {
                opens_at_ms: T0 + 60_000
            },
            T0
        )
        .await,
        ChangeVerdict::OpensAfterClosing {
            closes_at_ms: T0 + 60_000
        }
    );
    assert!(matches!(
        change(
            Change::OpenAt {
                opens_at_ms: T0 + 30_000
            },
            T0
        )
        .await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(f.round().await.opens_at_ms, T0 + 30_000);
    assert_eq!(f.phase().await, RoomPhase::Scheduled);
    assert!(matches!(
        change(Change::OpenNow, T0 + 1).await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(f.round().await.opens_at_ms, T0 + 1);
    assert_eq!(
        change(Change::OpenNow, T0 + 2).await,
        wrong(RoomPhase::Open)
    );
    assert_eq!(change(Change::Resume, T0 + 2).await, wrong(RoomPhase::Open));
    assert!(matches!(
        change(Change::Pause, T0 + 3).await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(f.phase().await, RoomPhase::Paused);
    assert_eq!(
        change(Change::Pause, T0 + 4).await,
        wrong(RoomPhase::Paused)
    );
    assert!(matches!(
        change(Change::Resume, T0 + 5).await,
        ChangeVerdict::Changed { .. }
    ));
    assert!(matches!(
        change(Change::Pause, T0 + 6).await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(
        change(Change::Resume, T0 + 60_000).await,
        ChangeVerdict::PastClosing
    );
    assert!(matches!(
        change(Change::Close, T0 + 7).await,
        ChangeVerdict::Changed { .. }
    ));
    // Closed is final; admission settings may still change.
    for c in [
        Change::Pause,
        Change::Resume,
        Change::OpenNow,
        Change::Close,
        Change::SetCap { cap_pence: 20_000 },
    ] {
        assert_eq!(change(c, T0 + 8).await, wrong(RoomPhase::Closed));
    }
    assert!(matches!(
        change(Change::Admission(vec![("max_active", 5)]), T0 + 9).await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(f.round().await.max_active, 5);
}

#[tokio::test]
async fn a_full_round_reopens_when_the_cap_is_raised() {
    let f = Fixture::new(settings()).await;
    assert!(matches!(
        invest(&f.store, "i1", "ann", 10_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(f.phase().await, RoomPhase::Full);
    let change = async |c: Change| f.store.change(&c, "op", T0).await.unwrap();
    assert_eq!(
        change(Change::Resume).await,
        ChangeVerdict::WrongPhase {
            phase: RoomPhase::Full
        }
    );
    assert_eq!(
        change(Change::SetCap { cap_pence: 10_000 }).await,
        ChangeVerdict::CapNotAboveRaised {
            raised_pence: 10_000
        }
    );
    assert_eq!(
        change(Change::SetCap { cap_pence: 10_050 }).await,
        ChangeVerdict::CapNotWholeShares {
            share_price_pence: 100
        }
    );
    assert!(matches!(
        change(Change::SetCap { cap_pence: 20_000 }).await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(f.phase().await, RoomPhase::Open);
    assert_eq!(f.round().await.cap_pence, 20_000);
}

/// The transition table itself, pair by pair, run through the prelude.
#[tokio::test]
async fn the_machine_allows_exactly_its_transitions() {
    let f = Fixture::new(settings()).await;
    let mut conn = f.conn.clone();
    let phases = ["scheduled", "open", "paused", "full", "closed"];
    let allowed = [
        ("scheduled", "open"),
        ("scheduled", "closed"),
        ("open", "paused"),
        ("open", "full"),
        ("open", "closed"),
        ("paused", "open"),
        ("paused", "full"),
        ("paused", "closed"),
        ("full", "open"),
        ("full", "closed"),
    ];
    let script = redis::Script::new(&format!(
        "{PRELUDE}\nredis.call('HSET', KEYS[1], R.PHASE, ARGV[1])\n\
         move_phase(KEYS[1], ARGV[1], ARGV[2])\nreturn redis.call('HGET', KEYS[1], R.PHASE)"
    ));
    for from in phases {
        for to in phases {
            let moved: redis::RedisResult<String> = script
                .key("machine")
                .arg(from)
                .arg(to)
                .invoke_async(&mut conn)
                .await;
            if from == to || allowed.contains(&(from, to)) {
                assert_eq!(moved.unwrap(), to, "{from} -> {to}");
            } else {
                let err = moved.unwrap_err().to_string();
                assert!(err.contains("phase machine"), "{from} -> {to}: {err}");
            }
        }
    }
}

/// A misspelt field name stops a script instead of reading nil.
#[tokio::test]
async fn layout_names_are_strict_in_lua() {
    let f = Fixture::new(settings()).await;
    let script = redis::Script::new(&format!("{PRELUDE}\nreturn R.RAISED"));
    let err = script
        .prepare_invoke()
        .invoke_async::<String>(&mut f.conn.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no name RAISED"), "{err}");
}

/// A round with less left than the smallest investment can take nobody's
/// money, so the investment that leaves it fills the round (a rehearsal
/// ended with £3 left under a £10 minimum and the round still open,
/// admitting people who could only be refused). The smallest investment is
/// the minimum in whole shares: £10.50 with £1.50 shares and a £10 minimum.
#[tokio::test]
async fn an_investment_leaving_less_than_the_smallest_investment_fills_the_round() {
    let shares_of_150 = crowdgate_store::RoundSettings {
        cap_pence: 10_050,
        share_price_pence: 150,
        ..settings()
    };
    let f = Fixture::new(shares_of_150.clone()).await;
    assert!(matches!(
        invest(&f.store, "i1", "ann", 9_000, T0).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(
        f.phase().await,
        RoomPhase::Open,
        "£10.50 left: room for one"
    );
    assert!(matches!(
        invest(&f.store, "i2", "bob", 1_050, T0).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(f.phase().await, RoomPhase::Full, "nothing left");

    let f = Fixture::new(shares_of_150).await;
    assert!(matches!(
        invest(&f.store, "i1", "ann", 9_150, T0).await,
        InvestVerdict::Accepted(_)
    ));
    assert_eq!(
        f.phase().await,
        RoomPhase::Full,
        "£9 left (six shares) is below the £10.50 anyone may invest"
    );
    assert_eq!(
        invest(&f.store, "i2", "bob", 1_050, T0).await,
        InvestVerdict::RoundFull { left_pence: 900 }
    );
    // Raising the cap reopens it only with room for the smallest investment.
    let change = async |c: Change| f.store.change(&c, "op", T0).await.unwrap();
    assert_eq!(
        change(Change::SetCap {
            cap_pence: 9_150 + 150
        })
        .await,
        ChangeVerdict::CapLeavesNoRoom {
            lowest_cap_pence: 9_150 + 1_050
        }
    );
    assert_eq!(f.phase().await, RoomPhase::Full);
    assert!(matches!(
        change(Change::SetCap {
            cap_pence: 9_150 + 1_050
        })
        .await,
        ChangeVerdict::Changed { .. }
    ));
    assert_eq!(f.phase().await, RoomPhase::Open);
}
