//! Ops changes and their audit trail.

use crate::support::{Fixture, T0, settings};
use crowdgate_store::{Change, ChangeVerdict, FieldChange};

#[tokio::test]
async fn a_change_and_its_audit_entry_are_written_together_and_refusals_not_at_all() {
    let f = Fixture::new(settings()).await;
    let ChangeVerdict::Changed { audit_id } = f
        .store
        .change(
            &Change::Admission(vec![("rate_per_minute", 120), ("max_active", 5)]),
            "alice",
            T0,
        )
        .await
        .unwrap()
    else {
        panic!("refused");
    };
    let entry = f.store.audit_entry(&audit_id).await.unwrap().unwrap();
    assert_eq!(
        (entry.at_ms, entry.operator.as_str(), entry.action.as_str()),
        (T0, "alice", "admission")
    );
    assert_eq!(
        entry.changes,
        vec![
            FieldChange {
                field: "max_active".into(),
                old: "1000".into(),
                new: "5".into()
            },
            FieldChange {
                field: "rate_per_minute".into(),
                old: "600".into(),
                new: "120".into()
            },
        ]
    );
    // A refusal: no change, no entry.
    assert!(matches!(
        f.store
            .change(&Change::Resume, "bob", T0 + 1)
            .await
            .unwrap(),
        ChangeVerdict::WrongPhase { .. }
    ));
    assert!(matches!(
        f.store
            .change(&Change::SetCap { cap_pence: 500 }, "bob", T0 + 1)
            .await
            .unwrap(),
        ChangeVerdict::CapBelowMinimum {
            minimum_pence: 1_000
        }
    ));
    assert!(matches!(
        f.store.change(&Change::Close, "bob", T0 + 2).await.unwrap(),
        ChangeVerdict::Changed { .. }
    ));
    let entries = f.store.audit_entries(10).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["close", "admission"]
    );
    assert_eq!(
        entries[0].changes,
        vec![FieldChange {
            field: "phase".into(),
            old: "open".into(),
            new: "closed".into()
        }]
    );
    let round = f.round().await;
    assert_eq!((round.rate_per_minute, round.max_active), (120, 5));
}
