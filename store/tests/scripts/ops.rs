//! Ops changes and their audit trail.

use crate::support::{Fixture, T0, settings};
use crowdgate_store::{AuditEntry, Change, ChangeVerdict, FieldChange};

/// `change` by alice at `at_ms`, which must be applied: its audit entry.
async fn applied(f: &Fixture, change: &Change, at_ms: u64) -> AuditEntry {
    let verdict = f.store.change(change, "alice", at_ms).await.unwrap();
    let ChangeVerdict::Changed { audit_id } = verdict else {
        panic!("refused: {verdict:?}");
    };
    f.store.audit_entry(&audit_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_change_and_its_audit_entry_are_written_together_and_refusals_not_at_all() {
    let f = Fixture::new(settings()).await;
    let change = Change::Admission(vec![("rate_per_minute", 120), ("max_active", 5)]);
    let entry = applied(&f, &change, T0).await;
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

#[tokio::test]
async fn a_value_already_in_place_is_no_change_and_not_audited() {
    let f = Fixture::new(settings()).await;
    let same = Change::Admission(vec![("rate_per_minute", 600)]);
    assert_eq!(
        f.store.change(&same, "alice", T0).await.unwrap(),
        ChangeVerdict::Unchanged
    );
    assert!(f.store.audit_entries(10).await.unwrap().is_empty());
    let changed_at = f.round().await.rate_changed_at_ms;
    // With a real change, only what changes is recorded.
    let change = Change::Admission(vec![("rate_per_minute", 600), ("max_active", 5)]);
    let entry = applied(&f, &change, T0 + 1).await;
    assert_eq!(
        entry.changes,
        vec![FieldChange {
            field: "max_active".into(),
            old: "1000".into(),
            new: "5".into()
        }]
    );
    // The rate did not change, so its measurement is not restarted.
    assert_eq!(f.round().await.rate_changed_at_ms, changed_at);
    assert_eq!(
        f.store
            .change(
                &Change::SetCap {
                    cap_pence: f.round().await.cap_pence
                },
                "bob",
                T0 + 2
            )
            .await
            .unwrap(),
        ChangeVerdict::Unchanged
    );
    assert_eq!(f.store.audit_entries(10).await.unwrap().len(), 1);
}
