//! What reconciliation reads: the counters in one `MULTI`/`EXEC` (one
//! moment's values), and scans of the streams and records.
//!
//! Reading is all this does; judging what was read is
//! `crowdgate_settlement::reconcile`'s job.

use crate::Connection;
use crate::error::StoreResult;
use crate::record::{Fields, InvestmentSummary, LedgerRecord, RoundRecord, SUMMARY_FIELDS};
use crate::stream::Settlement;
use redis::AsyncCommands;
use std::collections::HashMap;

/// Entries fetched per `XRANGE` page, and records per pipeline.
pub const PAGE: usize = 1_000;

/// The round's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// The round hash (all zero when the round has no data).
    pub round: RoundRecord,
    pub ledger: LedgerRecord,
    pub settlement_len: i64,
    pub journal_len: i64,
    pub dead_letter_len: i64,
}

impl Settlement {
    /// The counters, read in one `MULTI`/`EXEC`.
    pub async fn counters<C: Connection>(&self, redis: &mut C) -> StoreResult<Counters> {
        type Raw = (Fields, Fields, i64, i64, i64);
        let keys = &self.keys;
        let (round, ledger, settlement_len, journal_len, dead_letter_len): Raw = redis::pipe()
            .atomic()
            .hgetall(keys.round())
            .hgetall(keys.ledger())
            .xlen(keys.settlement_stream())
            .xlen(keys.journal())
            .xlen(keys.dead_letters())
            .query_async(redis)
            .await?;
        Ok(Counters {
            round: RoundRecord::decode(&keys.round(), &round)?.unwrap_or_default(),
            ledger: LedgerRecord::decode(&keys.ledger(), &ledger)?,
            settlement_len,
            journal_len,
            dead_letter_len,
        })
    }

    /// Every value of `field` in stream `key`, oldest first ("" where an
    /// entry lacks it).
    pub async fn field_values<C: Connection>(
        &self,
        redis: &mut C,
        key: &str,
        field: &str,
    ) -> StoreResult<Vec<String>> {
        let mut values = Vec::new();
        let mut start = "-".to_string();
        loop {
            // (id, [field, value, ...]): cheaper to read than a map per entry.
            let page: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(redis)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(values);
            };
            let next = format!("({last}");
            let full = page.len() == PAGE;
            for (_, fields) in page {
                let value = fields
                    .chunks(2)
                    .find(|pair| pair[0] == field)
                    .and_then(|pair| pair.get(1).cloned());
                values.push(value.unwrap_or_default());
            }
            if !full {
                return Ok(values);
            }
            start = next;
        }
    }

    /// What reconciliation needs of each investment in `ids`, in order
    /// (pipelined, [`PAGE`] at a time by the caller).
    pub async fn summaries<C: Connection>(
        &self,
        redis: &mut C,
        ids: &[String],
    ) -> StoreResult<Vec<InvestmentSummary>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.keys.investment(id))
                .arg(&SUMMARY_FIELDS[..]);
        }
        let records: Vec<(Option<String>, Option<String>, Option<String>)> =
            pipe.query_async(redis).await?;
        Ok(records
            .into_iter()
            .map(|(status, investor, amount)| InvestmentSummary::decode([status, investor, amount]))
            .collect())
    }

    /// Investor → total accepted pence (values that are not numbers left out).
    pub async fn investor_totals<C: Connection>(
        &self,
        redis: &mut C,
    ) -> StoreResult<HashMap<String, i64>> {
        Ok(int_fields(
            redis.hgetall(self.keys.investor_totals()).await?,
        ))
    }
}

fn int_fields(raw: Fields) -> HashMap<String, i64> {
    raw.into_iter()
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
        .collect()
}
