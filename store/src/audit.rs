//! Reading the audit stream: every applied ops change is one entry, written
//! by `change.lua` in the same atomic step as the change.

use crate::error::StoreResult;
use crate::layout::audit as A;
use crate::round::RoundStore;
use redis::streams::{StreamId, StreamRangeReply};

/// One applied ops change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The stream entry id.
    pub id: String,
    pub at_ms: u64,
    pub operator: String,
    pub action: String,
    /// Each changed field with its old value ("" when it had none) and new one.
    pub changes: Vec<FieldChange>,
}

/// One field of an ops change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

impl AuditEntry {
    fn decode(entry: &StreamId) -> AuditEntry {
        let text = |name: &str| entry.get::<String>(name).unwrap_or_default();
        let mut changes: Vec<FieldChange> = entry
            .map
            .keys()
            .filter_map(|key| key.strip_suffix(A::NEW_SUFFIX))
            .map(|field| FieldChange {
                field: field.to_string(),
                old: text(&format!("{field}{}", A::OLD_SUFFIX)),
                new: text(&format!("{field}{}", A::NEW_SUFFIX)),
            })
            .collect();
        changes.sort_by(|a, b| a.field.cmp(&b.field));
        AuditEntry {
            id: entry.id.clone(),
            at_ms: text(A::AT_MS).parse().unwrap_or(0),
            operator: text(A::OPERATOR),
            action: text(A::ACTION),
            changes,
        }
    }
}

impl RoundStore {
    /// The newest `limit` audit entries, newest first.
    pub async fn audit_entries(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.keys.audit())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        Ok(reply.ids.iter().map(AuditEntry::decode).collect())
    }

    /// One audit entry by its stream id.
    pub async fn audit_entry(&self, id: &str) -> StoreResult<Option<AuditEntry>> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.audit())
            .arg(id)
            .arg(id)
            .query_async(&mut self.conn())
            .await?;
        Ok(reply.ids.first().map(AuditEntry::decode))
    }
}
