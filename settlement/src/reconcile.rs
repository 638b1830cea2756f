//! Reconciliation: checks the round's invariants against what is in Redis,
//! and reports each violation it can prove.
//!
//! Run by `crowdgate reconcile` (non-zero exit on any violation) and by each
//! settlement worker at startup (logged). It reads; it never repairs: a
//! violation means a bug, and a person should look before money moves.
//!
//! A round keeps moving while it is checked (investments are accepted and
//! settled between any two reads), and a scan of every investment cannot be
//! one atomic read. Comparing numbers read at different moments would report
//! violations that never existed, so the checks come in two kinds:
//!
//! - **Instant** checks hold at every moment, so they are sound on a moving
//!   round. The counters they compare are read together in one `MULTI`/`EXEC`
//!   (a [`Snapshot`]). The scan adds only what a later read cannot contradict:
//!   the streams are append-only (a duplicate in what was read is a real
//!   duplicate), a record is written in the same script that publishes it,
//!   and an investment is journalled in the same script that marks it settled
//!   (records are read before the journal, so a settled one must be there).
//! - **Quiet** checks compare the counters with sums over the investment
//!   records and with the stream contents. They count only when a snapshot
//!   taken before the scan equals one taken after it: every script that
//!   changes a record, a stream or a total also bumps a counter that only
//!   grows (`accepted_count`, `settled_count`, `failed_count`, a stream's
//!   length), so equal snapshots mean nothing moved while the scan ran.
//!
//! Reconciliation retries a few times, each after the round looks still; a
//! round that never holds still within the wait is reported in [`Mode::Live`]
//! with the list of what was and was not checked.
//!
//! What is read, and how it is decoded, is the store's
//! ([`crowdgate_store::snapshot`]); what it must satisfy is decided here.

use crowdgate_protocol::api::InvestmentStatus;
use crowdgate_store::Redis;
use crowdgate_store::layout::{entry as E, journal as J};
use crowdgate_store::snapshot::PAGE;
use crowdgate_store::{Counters, InvestmentSummary, Settlement, StoreResult};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
/// At most this many full scans per run: a scan reads every investment, so a
/// busy round is not scanned over and over.
const MAX_SCANS: u32 = 5;
/// Before another scan, the round must look still for this long.
const QUIET_WINDOW: Duration = Duration::from_millis(50);

/// The invariants checked on any snapshot, moving round or not.
pub const INSTANT_CHECKS: &[&str] = &[
    "raised ≤ cap",
    "raised = accepted − released",
    "ledger debits = credits",
    "accepted_count = settlement stream length",
    "journal length = settled_count",
    "released = ledger failed_pence",
    "settled_count + failed_count ≤ accepted_count",
    "no investment published to the settlement stream twice",
    "no investment journalled twice",
    "every stream entry names a recorded investment with a known status",
    "every settled investment has its journal posting",
    "no negative balance",
];

/// The invariants checked only when nothing moved during the scan.
pub const QUIET_CHECKS: &[&str] = &[
    "raised = Σ live investments",
    "released = Σ failed investments",
    "accepted_count = investments in the stream",
    "escrow = Σ settled investments",
    "each investor's recorded total = Σ their live investments",
    "journal postings = settled investments, each naming a settled investment",
];

/// How much of the round could be checked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing changed while the scan ran: every invariant was checked.
    #[default]
    Full,
    /// The round kept changing: only [`INSTANT_CHECKS`] were checked, and
    /// the counts are as scanned, not one moment's.
    Live,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::Live => "live",
        })
    }
}

/// How long to wait for a still round.
#[derive(Debug, Clone)]
pub struct Options {
    /// Give up waiting for a still round after this long and report in
    /// [`Mode::Live`]. Zero: one scan, full only if nothing moved during it.
    pub wait_quiet: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wait_quiet: Duration::from_secs(5),
        }
    }
}

/// What reconciliation found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub mode: Mode,
    /// Scans made (a scan is retried when the round moved during it).
    pub scans: u32,
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
    /// Each broken invariant, in words. Only proven violations: in live mode
    /// nothing is reported that the round's movement could explain.
    pub violations: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode {
            Mode::Full => writeln!(
                f,
                "mode                   full (nothing moved during the scan; every invariant checked)"
            )?,
            Mode::Live => {
                writeln!(
                    f,
                    "mode                   live (the round kept moving through {} scan(s); counts are as scanned)",
                    self.scans
                )?;
                writeln!(f, "checked:")?;
                for check in INSTANT_CHECKS {
                    writeln!(f, "  - {check}")?;
                }
                writeln!(f, "not checked (needs a still round):")?;
                for check in QUIET_CHECKS {
                    writeln!(f, "  - {check}")?;
                }
            }
        }
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
        match (self.violations.is_empty(), self.mode) {
            (true, Mode::Full) => write!(f, "OK: every invariant holds"),
            (true, Mode::Live) => write!(
                f,
                "OK: every invariant checked holds (run again on a still round for the rest)"
            ),
            (false, _) => {
                writeln!(f, "VIOLATIONS ({}):", self.violations.len())?;
                for v in &self.violations {
                    writeln!(f, "  - {v}")?;
                }
                Ok(())
            }
        }
    }
}

/// Checks round `round`, waiting up to `options.wait_quiet` for a still
/// round so that every invariant can be checked.
pub async fn reconcile(redis: &mut Redis, round: &str, options: &Options) -> StoreResult<Report> {
    let settlement = Settlement::new(round);
    let deadline = Instant::now() + options.wait_quiet;
    let mut scans = 0;
    loop {
        scans += 1;
        let before = Snapshot::read(redis, &settlement).await?;
        let scan = Scan::read(redis, &settlement).await?;
        let after = Snapshot::read(redis, &settlement).await?;
        let still = before == after;
        if still
            || scans >= MAX_SCANS
            || !wait_until_still(redis, &settlement, after.clone(), deadline).await?
        {
            return Ok(report(&before, &after, scan, still, scans));
        }
    }
}

/// Polls snapshots until one equals the one taken [`QUIET_WINDOW`] before
/// it (true), or until `deadline` (false).
async fn wait_until_still(
    redis: &mut Redis,
    settlement: &Settlement,
    mut last: Snapshot,
    deadline: Instant,
) -> StoreResult<bool> {
    while Instant::now() + QUIET_WINDOW <= deadline {
        tokio::time::sleep(QUIET_WINDOW).await;
        let now = Snapshot::read(redis, settlement).await?;
        if now == last {
            return Ok(true);
        }
        last = now;
    }
    Ok(false)
}

/// The round's counters, read in one `MULTI`/`EXEC`: one moment's values,
/// and (through its ever-growing counts) the round's version.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Snapshot {
    raised: i64,
    cap: i64,
    accepted_pence: i64,
    released: i64,
    accepted_count: i64,
    debits: i64,
    credits: i64,
    escrow: i64,
    settled_count: i64,
    failed_count: i64,
    failed_pence: i64,
    stream_len: i64,
    journal_len: i64,
    dead_len: i64,
}

impl Snapshot {
    async fn read(redis: &mut Redis, settlement: &Settlement) -> StoreResult<Self> {
        Ok(Snapshot::of(&settlement.counters(redis).await?))
    }

    /// The counters reconciliation compares, out of one moment's reading.
    fn of(c: &Counters) -> Snapshot {
        Snapshot {
            raised: c.round.raised_pence,
            cap: c.round.cap_pence,
            accepted_pence: c.round.accepted_pence,
            released: c.round.released_pence,
            accepted_count: c.round.accepted_count,
            debits: c.ledger.debits_pence,
            credits: c.ledger.credits_pence,
            escrow: c.ledger.escrow_pence,
            settled_count: c.ledger.settled_count,
            failed_count: c.ledger.failed_count,
            failed_pence: c.ledger.failed_pence,
            stream_len: c.settlement_len,
            journal_len: c.journal_len,
            dead_len: c.dead_letter_len,
        }
    }

    /// Violations of the invariants that hold at every instant.
    fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.raised > self.cap {
            v.push(format!("raised {} exceeds cap {}", self.raised, self.cap));
        }
        if self.raised != self.accepted_pence - self.released {
            v.push(format!(
                "raised {} ≠ accepted {} − released {}",
                self.raised, self.accepted_pence, self.released
            ));
        }
        if self.debits != self.credits {
            v.push(format!("debits {} ≠ credits {}", self.debits, self.credits));
        }
        // invest.lua counts and publishes in one script.
        if self.accepted_count != self.stream_len {
            v.push(format!(
                "accepted_count {} ≠ settlement stream length {}",
                self.accepted_count, self.stream_len
            ));
        }
        // settle.lua journals and counts a settlement in one script, and
        // counts and releases a failure in one script.
        if self.journal_len != self.settled_count {
            v.push(format!(
                "journal length {} ≠ settled_count {}",
                self.journal_len, self.settled_count
            ));
        }
        if self.released != self.failed_pence {
            v.push(format!(
                "released {} ≠ ledger failed_pence {}",
                self.released, self.failed_pence
            ));
        }
        if self.settled_count + self.failed_count > self.accepted_count {
            v.push(format!(
                "settled_count {} + failed_count {} exceeds accepted_count {}",
                self.settled_count, self.failed_count, self.accepted_count
            ));
        }
        v
    }
}

/// What one pass over the streams and the investment records found.
#[derive(Default)]
struct Scan {
    accepted: u64,
    settled: u64,
    failed: u64,
    pending: u64,
    dead_lettered: u64,
    sum_live: i64,
    sum_failed: i64,
    sum_settled: i64,
    totals_by_investor: HashMap<String, i64>,
    recorded_totals: HashMap<String, i64>,
    settled_ids: HashSet<String>,
    postings: Vec<String>,
    accounts: u64,
    /// Violations the scan proves even on a moving round.
    violations: Vec<String>,
}

impl Scan {
    /// Reads, in this order: dead letters, the settlement stream with each
    /// investment's record, investor totals, the journal, balances. The
    /// journal comes after the records so that every investment seen settled
    /// must already have its posting.
    async fn read(redis: &mut Redis, settlement: &Settlement) -> StoreResult<Self> {
        let keys = settlement.keys();
        let mut scan = Scan::default();
        let dead: HashSet<String> = settlement
            .field_values(redis, &keys.dead_letters(), E::INVESTMENT_ID)
            .await?
            .into_iter()
            .collect();
        let stream_ids = settlement
            .field_values(redis, &keys.settlement_stream(), E::INVESTMENT_ID)
            .await?;
        let mut seen = HashSet::new();
        for chunk in stream_ids.chunks(PAGE) {
            let records = settlement.summaries(redis, chunk).await?;
            for (id, record) in chunk.iter().zip(records) {
                if !seen.insert(id.clone()) {
                    scan.violations.push(format!(
                        "investment {id} was published to the settlement stream twice"
                    ));
                    continue;
                }
                scan.classify(id, record, dead.contains(id));
            }
        }
        scan.recorded_totals = settlement.investor_totals(redis).await?;

        // Settled exactly once: one journal posting per settled investment.
        scan.postings = settlement
            .field_values(redis, &keys.journal(), J::INVESTMENT_ID)
            .await?;
        let mut posted = HashSet::new();
        for id in &scan.postings {
            if !posted.insert(id.as_str()) {
                scan.violations
                    .push(format!("investment {id} was posted to the journal twice"));
            }
        }
        let mut unposted: Vec<&String> = scan
            .settled_ids
            .iter()
            .filter(|id| !posted.contains(id.as_str()))
            .collect();
        unposted.sort();
        for id in unposted {
            scan.violations.push(format!(
                "investment {id} is settled but has no journal posting"
            ));
        }

        // Balances are the investors', every round's (checked as a whole by
        // `reconcile_deployment`); none may be negative.
        let balances = crowdgate_store::accounts_snapshot(redis, &[])
            .await?
            .balances;
        scan.accounts = balances.len() as u64;
        for (investor, balance) in &balances {
            if *balance < 0 {
                scan.violations
                    .push(format!("account {investor} is negative: {balance}"));
            }
        }
        Ok(scan)
    }

    /// Counts one investment by its record's status.
    fn classify(&mut self, id: &str, record: InvestmentSummary, dead_lettered: bool) {
        let (status, investor, amount) = match record {
            InvestmentSummary::Missing => {
                self.violations.push(format!(
                    "stream entry names investment {id}, which has no record"
                ));
                return;
            }
            InvestmentSummary::Corrupt(what) => {
                self.accepted += 1;
                self.violations.push(format!("investment {id} {what}"));
                return;
            }
            InvestmentSummary::Found {
                status,
                investor_id,
                amount_pence,
            } => (status, investor_id, amount_pence),
        };
        self.accepted += 1;
        let live = match status {
            InvestmentStatus::Settled => {
                self.settled += 1;
                self.sum_settled += amount;
                self.settled_ids.insert(id.to_string());
                true
            }
            InvestmentStatus::Failed => {
                self.failed += 1;
                self.sum_failed += amount;
                false
            }
            InvestmentStatus::Accepted if dead_lettered => {
                self.dead_lettered += 1;
                true
            }
            InvestmentStatus::Accepted => {
                self.pending += 1;
                true
            }
        };
        if live {
            self.sum_live += amount;
            *self.totals_by_investor.entry(investor).or_default() += amount;
        }
    }

    /// Violations of the invariants that compare counters with the scan;
    /// valid only when `snapshot` was taken both before and after the scan.
    fn quiet_violations(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut v = Vec::new();
        if snapshot.raised != self.sum_live {
            v.push(format!(
                "raised {} ≠ Σ live investments {}",
                snapshot.raised, self.sum_live
            ));
        }
        if snapshot.released != self.sum_failed {
            v.push(format!(
                "released {} ≠ Σ failed investments {}",
                snapshot.released, self.sum_failed
            ));
        }
        if snapshot.accepted_count != self.accepted as i64 {
            v.push(format!(
                "accepted_count {} ≠ {} investments in the stream",
                snapshot.accepted_count, self.accepted
            ));
        }
        if snapshot.escrow != self.sum_settled {
            v.push(format!(
                "escrow {} ≠ Σ settled investments {}",
                snapshot.escrow, self.sum_settled
            ));
        }
        let mut investors: Vec<(&String, &i64)> = self.recorded_totals.iter().collect();
        investors.sort();
        for (investor, total) in investors {
            let expected = self.totals_by_investor.get(investor).copied().unwrap_or(0);
            if *total != expected {
                v.push(format!(
                    "investor {investor}: recorded total {total} ≠ Σ live investments {expected}"
                ));
            }
        }
        if self.postings.len() as u64 != self.settled {
            v.push(format!(
                "{} journal postings ≠ {} settled investments",
                self.postings.len(),
                self.settled
            ));
        }
        for id in &self.postings {
            if !self.settled_ids.contains(id) {
                v.push(format!(
                    "journal posting names investment {id}, which is not settled"
                ));
            }
        }
        v
    }
}

/// The report of one scan between two snapshots; `still` when they agree.
fn report(before: &Snapshot, after: &Snapshot, scan: Scan, still: bool, scans: u32) -> Report {
    let mut violations = before.violations();
    for v in after.violations() {
        if !violations.contains(&v) {
            violations.push(v);
        }
    }
    violations.extend(scan.violations.iter().cloned());
    if still {
        violations.extend(scan.quiet_violations(after));
    }
    Report {
        mode: if still { Mode::Full } else { Mode::Live },
        scans,
        accepted: scan.accepted,
        settled: scan.settled,
        failed: scan.failed,
        pending: scan.pending,
        dead_lettered: scan.dead_lettered,
        raised_pence: after.raised,
        cap_pence: after.cap,
        accepted_pence: after.accepted_pence,
        released_pence: after.released,
        debits_pence: after.debits,
        credits_pence: after.credits,
        escrow_pence: after.escrow,
        journal_entries: scan.postings.len() as u64,
        accounts: scan.accounts,
        violations,
    }
}

/// The invariants of the deployment's accounts against every round's books.
pub const DEPLOYMENT_CHECKS: &[&str] = &[
    "Σ balances + debited = opened",
    "debited = Σ every round's ledger debits",
    "no negative balance",
];

/// What the check of the deployment's accounts found. Each figure is one
/// moment's: they are read together in one `MULTI`/`EXEC`, so the checks
/// hold on a deployment that keeps settling.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountsReport {
    pub rounds: usize,
    pub accounts: u64,
    pub opened_pence: i64,
    pub balances_pence: i64,
    pub debited_pence: i64,
    pub rounds_debits_pence: i64,
    pub violations: Vec<String>,
}

impl AccountsReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for AccountsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "rounds                 {}", self.rounds)?;
        writeln!(f, "accounts               {}", self.accounts)?;
        writeln!(
            f,
            "balances + debited     {} + {} pence (opened {})",
            self.balances_pence, self.debited_pence, self.opened_pence
        )?;
        writeln!(
            f,
            "rounds' debits         {} pence",
            self.rounds_debits_pence
        )?;
        if self.violations.is_empty() {
            write!(f, "OK: every account invariant holds")
        } else {
            writeln!(f, "VIOLATIONS ({}):", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  - {v}")?;
            }
            Ok(())
        }
    }
}

/// Checks the investors' accounts against the books of `rounds` (every
/// round of the deployment, live and archived: each settled investment
/// debited one balance, whichever round it was in).
pub async fn reconcile_accounts(
    redis: &mut Redis,
    rounds: &[String],
) -> StoreResult<AccountsReport> {
    let snapshot = crowdgate_store::accounts_snapshot(redis, rounds).await?;
    let balances_pence: i64 = snapshot.balances.values().sum();
    let mut violations = Vec::new();
    if balances_pence + snapshot.debited_pence != snapshot.opened_pence {
        violations.push(format!(
            "balances {} + debited {} ≠ opened {}",
            balances_pence, snapshot.debited_pence, snapshot.opened_pence
        ));
    }
    if snapshot.debited_pence != snapshot.rounds_debits_pence {
        violations.push(format!(
            "debited {} ≠ Σ the rounds' ledger debits {}",
            snapshot.debited_pence, snapshot.rounds_debits_pence
        ));
    }
    let mut negative: Vec<_> = snapshot.balances.iter().filter(|(_, b)| **b < 0).collect();
    negative.sort();
    for (investor, balance) in negative {
        violations.push(format!("account {investor} is negative: {balance}"));
    }
    Ok(AccountsReport {
        rounds: rounds.len(),
        accounts: snapshot.balances.len() as u64,
        opened_pence: snapshot.opened_pence,
        balances_pence,
        debited_pence: snapshot.debited_pence,
        rounds_debits_pence: snapshot.rounds_debits_pence,
        violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consistent() -> Snapshot {
        Snapshot {
            raised: 3_000,
            cap: 10_000,
            accepted_pence: 4_000,
            released: 1_000,
            accepted_count: 4,
            debits: 2_000,
            credits: 2_000,
            escrow: 2_000,
            settled_count: 2,
            failed_count: 1,
            failed_pence: 1_000,
            stream_len: 4,
            journal_len: 2,
            dead_len: 0,
        }
    }

    #[test]
    fn a_consistent_snapshot_has_no_violations() {
        assert_eq!(consistent().violations(), Vec::<String>::new());
    }

    #[test]
    fn each_broken_instant_invariant_is_reported() {
        let broken = Snapshot {
            raised: 11_000,
            debits: 2_001,
            journal_len: 3,
            failed_count: 3,
            ..consistent()
        };
        let v = broken.violations();
        assert!(
            v.contains(&"raised 11000 exceeds cap 10000".to_string()),
            "{v:?}"
        );
        assert!(
            v.iter().any(|v| v.starts_with("raised 11000 ≠ accepted")),
            "{v:?}"
        );
        assert!(
            v.contains(&"debits 2001 ≠ credits 2000".to_string()),
            "{v:?}"
        );
        assert!(
            v.contains(&"journal length 3 ≠ settled_count 2".to_string()),
            "{v:?}"
        );
        assert!(
            v.iter().any(|v| v.contains("exceeds accepted_count")),
            "{v:?}"
        );
    }

    #[test]
    fn a_live_report_leaves_out_the_quiet_checks() {
        let scan = Scan::default(); // sums of zero: every quiet check would fail
        let (before, after) = (consistent(), consistent());
        let live = report(&before, &after, Scan::default(), false, 3);
        assert_eq!((live.mode, live.violations.len()), (Mode::Live, 0));
        let full = report(&before, &after, scan, true, 1);
        assert_eq!(full.mode, Mode::Full);
        assert!(
            full.violations
                .iter()
                .any(|v| v.starts_with("raised 3000 ≠ Σ live"))
        );
    }
}
