//! Reconciliation: checks every invariant of the brief against what is
//! actually in Redis, and reports each violation.
//!
//! Run by `crowdgate reconcile` (non-zero exit on any violation) and by each
//! settlement worker at startup (logged). It reads; it never repairs: a
//! violation means a bug, and a person should look before money moves.
//!
//! The settlement stream is never trimmed, so it lists every investment ever
//! accepted; each is looked up and classified. Reads are not one atomic
//! snapshot, so run it on a quiet round (or expect in-flight settlements to
//! show as pending).

use crowdgate_protocol::keys::RoundKeys;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use std::collections::{HashMap, HashSet};

/// Entries fetched per XRANGE page.
const PAGE: usize = 1_000;

/// What reconciliation found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub accepted: u64,
    pub settled: u64,
    pub failed: u64,
    /// Accepted and not yet settled or failed (in the stream or a worker's hands).
    pub pending: u64,
    /// Accepted, not settled, and moved to the dead-letter stream.
    pub dead_lettered: u64,
    pub raised_pence: i64,
    pub cap_pence: i64,
    pub accepted_pence: i64,
    pub released_pence: i64,
    pub debits_pence: i64,
    pub credits_pence: i64,
    pub escrow_pence: i64,
    pub journal_entries: u64,
    pub accounts: u64,
    /// Each broken invariant, in words.
    pub violations: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "investments accepted   {}", self.accepted)?;
        writeln!(f, "  settled              {}", self.settled)?;
        writeln!(f, "  failed               {}", self.failed)?;
        writeln!(f, "  pending              {}", self.pending)?;
        writeln!(f, "  dead-lettered        {}", self.dead_lettered)?;
        writeln!(
            f,
            "raised / cap           {} / {} pence",
            self.raised_pence, self.cap_pence
        )?;
        writeln!(
            f,
            "accepted − released    {} − {} pence",
            self.accepted_pence, self.released_pence
        )?;
        writeln!(
            f,
            "debits / credits       {} / {} pence",
            self.debits_pence, self.credits_pence
        )?;
        writeln!(f, "escrow                 {} pence", self.escrow_pence)?;
        writeln!(f, "journal entries        {}", self.journal_entries)?;
        writeln!(f, "accounts               {}", self.accounts)?;
        if self.violations.is_empty() {
            write!(f, "OK: every invariant holds")
        } else {
            writeln!(f, "VIOLATIONS ({}):", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  - {v}")?;
            }
            Ok(())
        }
    }
}

/// Checks round `round`.
pub async fn reconcile(redis: &mut ConnectionManager, round: &str) -> redis::RedisResult<Report> {
    let keys = RoundKeys::new(round);
    let mut report = Report::default();
    let round_hash: HashMap<String, i64> = int_fields(redis.hgetall(keys.round()).await?);
    let ledger: HashMap<String, i64> = int_fields(redis.hgetall(keys.ledger()).await?);
    let get = |m: &HashMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    report.raised_pence = get(&round_hash, "raised_pence");
    report.cap_pence = get(&round_hash, "cap_pence");
    report.accepted_pence = get(&round_hash, "accepted_pence");
    report.released_pence = get(&round_hash, "released_pence");
    report.debits_pence = get(&ledger, "debits_pence");
    report.credits_pence = get(&ledger, "credits_pence");
    report.escrow_pence = get(&ledger, "escrow_pence");
    let mut violations = Vec::new();

    // Every accepted investment, from the stream.
    let stream_ids = all_field_values(redis, &keys.settlement_stream(), "investment_id").await?;
    let dead: HashSet<String> = all_field_values(redis, &keys.dead_letters(), "investment_id")
        .await?
        .into_iter()
        .collect();
    let mut seen = HashSet::new();
    let (mut sum_live, mut sum_failed, mut sum_settled) = (0i64, 0i64, 0i64);
    let mut totals_by_investor: HashMap<String, i64> = HashMap::new();
    for chunk in stream_ids.chunks(PAGE) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.hgetall(keys.investment(id));
        }
        let records: Vec<HashMap<String, String>> = pipe.query_async(redis).await?;
        for (id, record) in chunk.iter().zip(records) {
            if !seen.insert(id.clone()) {
                violations.push(format!(
                    "investment {id} was published to the settlement stream twice"
                ));
                continue;
            }
            if record.is_empty() {
                violations.push(format!(
                    "stream entry names investment {id}, which has no record"
                ));
                continue;
            }
            report.accepted += 1;
            let amount: i64 = record
                .get("amount_pence")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let investor = record.get("investor_id").cloned().unwrap_or_default();
            match record.get("status").map(String::as_str) {
                Some("settled") => {
                    report.settled += 1;
                    sum_settled += amount;
                    sum_live += amount;
                    *totals_by_investor.entry(investor).or_default() += amount;
                }
                Some("failed") => {
                    report.failed += 1;
                    sum_failed += amount;
                }
                Some("accepted") if dead.contains(id) => {
                    report.dead_lettered += 1;
                    sum_live += amount;
                    *totals_by_investor.entry(investor).or_default() += amount;
                }
                Some("accepted") => {
                    report.pending += 1;
                    sum_live += amount;
                    *totals_by_investor.entry(investor).or_default() += amount;
                }
                other => violations.push(format!("investment {id} has unknown status {other:?}")),
            }
        }
    }

    if report.raised_pence > report.cap_pence {
        violations.push(format!(
            "raised {} exceeds cap {}",
            report.raised_pence, report.cap_pence
        ));
    }
    if report.raised_pence != report.accepted_pence - report.released_pence {
        violations.push(format!(
            "raised {} ≠ accepted {} − released {}",
            report.raised_pence, report.accepted_pence, report.released_pence
        ));
    }
    if report.raised_pence != sum_live {
        violations.push(format!(
            "raised {} ≠ Σ live investments {}",
            report.raised_pence, sum_live
        ));
    }
    if report.released_pence != sum_failed {
        violations.push(format!(
            "released {} ≠ Σ failed investments {}",
            report.released_pence, sum_failed
        ));
    }
    let accepted_count = get(&round_hash, "accepted_count");
    if accepted_count != report.accepted as i64 {
        violations.push(format!(
            "accepted_count {accepted_count} ≠ {} investments in the stream",
            report.accepted
        ));
    }
    if report.debits_pence != report.credits_pence {
        violations.push(format!(
            "debits {} ≠ credits {}",
            report.debits_pence, report.credits_pence
        ));
    }
    if report.escrow_pence != sum_settled {
        violations.push(format!(
            "escrow {} ≠ Σ settled investments {}",
            report.escrow_pence, sum_settled
        ));
    }
    let recorded_totals: HashMap<String, i64> =
        int_fields(redis.hgetall(keys.investor_totals()).await?);
    for (investor, total) in &recorded_totals {
        let expected = totals_by_investor.get(investor).copied().unwrap_or(0);
        if *total != expected {
            violations.push(format!(
                "investor {investor}: recorded total {total} ≠ Σ live investments {expected}"
            ));
        }
    }

    // Settled exactly once: one journal posting per settled investment.
    let postings = all_field_values(redis, &keys.journal(), "investment_id").await?;
    report.journal_entries = postings.len() as u64;
    let mut posted = HashSet::new();
    for id in &postings {
        if !posted.insert(id) {
            violations.push(format!("investment {id} was posted to the journal twice"));
        }
    }
    if report.journal_entries != report.settled {
        violations.push(format!(
            "{} journal postings ≠ {} settled investments",
            report.journal_entries, report.settled
        ));
    }

    let balances: HashMap<String, i64> = int_fields(redis.hgetall(keys.balances()).await?);
    report.accounts = balances.len() as u64;
    for (investor, balance) in &balances {
        if *balance < 0 {
            violations.push(format!("account {investor} is negative: {balance}"));
        }
    }

    report.violations = violations;
    Ok(report)
}

fn int_fields(raw: HashMap<String, String>) -> HashMap<String, i64> {
    raw.into_iter()
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
        .collect()
}

/// Every value of `field` in stream `key`, oldest first.
async fn all_field_values(
    redis: &mut ConnectionManager,
    key: &str,
    field: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut values = Vec::new();
    let mut start = "-".to_string();
    loop {
        let page: StreamRangeReply = redis.xrange_count(key, &start, "+", PAGE).await?;
        let Some(last) = page.ids.last() else {
            return Ok(values);
        };
        let next = format!("({}", last.id);
        let full = page.ids.len() == PAGE;
        for entry in &page.ids {
            values.push(entry.get::<String>(field).unwrap_or_default());
        }
        if !full {
            return Ok(values);
        }
        start = next;
    }
}
