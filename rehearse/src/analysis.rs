//! From what a rehearsal recorded to its [`Report`]: the timeline in round
//! time, the outcome, latency and errors, fairness, the wait estimate's
//! accuracy, how the sell-out forecast served people, the invariants, and
//! the verdict. Pure: everything comes in through [`Recorded`].

use crate::driver::{InvestorRecord, Recorder, VisitOutcome};
use crate::report::*;
use crate::scenario::{InvestorPlan, RoundTerms, Scenario};
use crate::stats;
use crate::watch::{self, Figures};
use crowdgate_protocol::money::{grouped, pounds};
use crowdgate_settlement::reconcile::Report as Books;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

/// A wait shorter than this (round time) is not judged...
pub const MIN_JUDGED_WAIT_SECONDS: f64 = 60.0;
/// ...nor one shorter than this on the wall clock: estimates are whole
/// wall seconds, so a wait of a few seconds would be judged by its rounding.
pub const MIN_JUDGED_WAIT_WALL_SECONDS: f64 = 10.0;
/// A lottery whose χ² p-value is below this shows arrival order through.
/// A fair lottery's p-value is uniform, so this fails one fair rehearsal in
/// a million (a release gate must not fail by chance), while a lottery that
/// leaks arrival order at a real pre-queue's size scores far below it.
pub const FAIRNESS_P_VALUE: f64 = 1e-6;

/// Everything a rehearsal recorded.
pub struct Recorded<'a> {
    pub scenario: &'a Scenario,
    /// The scenario file as given, and the SHA-256 of its bytes.
    pub scenario_file: (String, String),
    pub target: &'a str,
    pub started_at: String,
    pub wall_seconds: f64,
    /// Wall ms from the start to the opening.
    pub opening_ms: u64,
    pub prequeue_rehearsed: bool,
    pub plans: &'a [InvestorPlan],
    pub records: &'a [InvestorRecord],
    pub samples: &'a [Figures],
    pub recorder: &'a Recorder,
    pub terms: &'a RoundTerms,
    /// Investments core had accepted before the rehearsal (a re-run).
    pub accepted_before: u64,
    pub books: &'a Books,
    /// Problems found while running (a timeout, settlement that never ended).
    pub problems: Vec<String>,
}

impl Recorded<'_> {
    fn c(&self) -> f64 {
        self.scenario.compression()
    }

    /// Wall ms from the start → round seconds from opening.
    fn round_seconds(&self, at_ms: f64) -> f64 {
        (at_ms - self.opening_ms as f64) / 1000.0 * self.c()
    }
}

/// The report of `recorded`.
pub fn build(recorded: Recorded<'_>) -> Report {
    let timeline = timeline(&recorded);
    let minutes = stats::minutes(&timeline);
    let outcome = outcome(&recorded);
    let fairness = fairness(&recorded);
    let errors = errors(recorded.recorder);
    let invariants = invariants(&recorded, &outcome, &fairness, &errors);
    let verdict = verdict(&recorded, &outcome, &invariants);
    Report {
        schema_version: SCHEMA_VERSION,
        crowdgate_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: summary(&recorded),
        target: recorded.target.to_string(),
        started_at: recorded.started_at.clone(),
        wall_seconds: recorded.wall_seconds,
        verdict,
        outcome,
        timeline,
        sample_interval_wall_ms: watch::SAMPLE_INTERVAL.as_millis() as u64,
        minutes,
        latency: latency(recorded.recorder),
        errors,
        fairness,
        wait_estimate: wait_estimate(&recorded),
        sell_out_forecast: forecast(&recorded),
        invariants,
    }
}

fn summary(r: &Recorded<'_>) -> ScenarioSummary {
    let s = r.scenario;
    ScenarioSummary {
        name: s.name.clone(),
        file: r.scenario_file.0.clone(),
        file_sha256: r.scenario_file.1.clone(),
        investors: r.plans.len() as u64,
        compression: r.c(),
        seed: s.rehearsal.seed,
        cap_pence: r.terms.cap_pence,
        min_investment_pence: r.terms.min_investment_pence,
        max_investment_pence: r.terms.max_investment_pence,
        demand_pence: r.plans.iter().map(|p| p.amount_pence).sum(),
        rate_per_minute: r
            .samples
            .first()
            .map_or(s.admission.rate_per_minute as f64, |f| {
                f.rate_per_minute / r.c()
            }),
        max_active: r
            .samples
            .first()
            .map_or(s.admission.max_active, |f| f.max_active),
        prequeue_seconds: if r.prequeue_rehearsed {
            s.investors.before_opening_seconds
        } else {
            0.0
        },
    }
}

fn timeline(r: &Recorded<'_>) -> Vec<Sample> {
    let c = r.c();
    r.samples
        .iter()
        .map(|f| Sample {
            t: r.round_seconds(f.at_ms as f64),
            phase: f.phase.clone(),
            waiting: f.waiting(),
            admitted_up_to: f.admitted_up_to,
            active: f.active,
            rate_per_minute: f.rate_per_minute / c,
            achieved_rate_per_minute: f.achieved_rate_per_minute / c,
            raised_pence: f.raised_pence,
            accepted: f.accepted_count,
            settled: f.settled_count,
            failed: f.failed_count,
            settlement_lag_seconds: f.oldest_unsettled_age_ms as f64 / 1000.0 * c,
        })
        .collect()
}

/// The most events in any one wall second.
fn peak_per_second(at_ms: &[u64]) -> u64 {
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for at in at_ms {
        *per_second.entry(at / 1000).or_insert(0) += 1;
    }
    per_second.values().copied().max().unwrap_or(0)
}

fn outcome(r: &Recorded<'_>) -> Outcome {
    let counters = &r.recorder.counters;
    let count = |wanted: fn(&VisitOutcome) -> bool| {
        r.records.iter().filter(|x| wanted(&x.outcome)).count() as u64
    };
    let sold_out_at = sold_out_at_ms(r);
    let last = r.samples.last();
    let accepted_at = r.recorder.accepted_at();
    let last_accepted = accepted_at.iter().copied().max();
    let drained_at = last_accepted.and_then(|last_accepted| {
        r.samples
            .iter()
            .find(|f| f.at_ms >= last_accepted && f.backlog == 0)
            .map(|f| f.at_ms)
            .map(|drained| drained.saturating_sub(last_accepted) as f64 / 1000.0)
    });
    Outcome {
        time_to_sell_out_seconds: sold_out_at.map(|at| r.round_seconds(at as f64)),
        time_to_sell_out_wall_seconds: sold_out_at
            .map(|at| at.saturating_sub(r.opening_ms) as f64 / 1000.0),
        raised_pence: last.map_or(0, |f| f.raised_pence),
        cap_pence: last.map_or(r.terms.cap_pence, |f| f.cap_pence),
        max_raised_seen_pence: r.samples.iter().map(|f| f.raised_pence).max().unwrap_or(0),
        joined: counters.joined.load(Ordering::Relaxed),
        joined_before_opening: r.records.iter().filter(|x| x.prequeue).count() as u64,
        admitted: counters.admitted.load(Ordering::Relaxed),
        invested: count(|o| matches!(o, VisitOutcome::Invested { .. })),
        accepted_investments: accepted_ids(r).len() as u64,
        accepted_by_core: last
            .map_or(0, |f| f.accepted_count)
            .saturating_sub(r.accepted_before),
        settled: last.map_or(0, |f| f.settled_count),
        failed_settlements: last.map_or(0, |f| f.failed_count),
        no_shows: count(|o| matches!(o, VisitOutcome::NoShow)),
        left_queue: count(|o| matches!(o, VisitOutcome::Left)),
        sold_out_before_their_turn: count(|o| {
            matches!(o, VisitOutcome::SoldOut | VisitOutcome::StillWaiting)
        }),
        peak_accepted_per_second: peak_per_second(&accepted_at),
        peak_invest_calls_per_second: peak_per_second(&r.recorder.invest_calls_at()),
        requests: counters.requests.load(Ordering::Relaxed),
        settlement_drain_wall_seconds: drained_at,
    }
}

/// When the round first sold out (wall ms from the start), if it did.
fn sold_out_at_ms(r: &Recorded<'_>) -> Option<u64> {
    r.samples
        .iter()
        .find(|f| f.at_ms >= r.opening_ms && f.sold_out(r.terms.min_investment_pence))
        .map(|f| f.at_ms)
}

/// The ids of the investments the clients were told were accepted.
fn accepted_ids<'a>(r: &'a Recorded<'_>) -> Vec<&'a str> {
    r.records
        .iter()
        .filter_map(|x| match &x.outcome {
            VisitOutcome::Invested { investment_id, .. } => Some(investment_id.as_str()),
            _ => None,
        })
        .collect()
}

fn latency(recorder: &Recorder) -> Vec<EndpointLatency> {
    let ms = |micros: u64| micros as f64 / 1000.0;
    recorder
        .latency()
        .into_iter()
        .map(|(endpoint, h)| EndpointLatency {
            endpoint: endpoint.as_str().to_string(),
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
        .collect()
}

fn errors(recorder: &Recorder) -> Vec<ErrorCount> {
    let mut errors: Vec<ErrorCount> = recorder
        .errors()
        .into_iter()
        .map(|(kind, count)| ErrorCount {
            endpoint: kind.endpoint.as_str().to_string(),
            status: kind.status,
            designed: kind.designed(),
            code: kind.code,
            count,
        })
        .collect();
    errors.sort_by(|a, b| b.designed.cmp(&a.designed).then(b.count.cmp(&a.count)));
    errors
}

fn fairness(r: &Recorded<'_>) -> Fairness {
    // The pre-queue: arrival order (when each join was sent) against the
    // number drawn.
    let mut drawn: Vec<(u64, u64)> = r
        .records
        .iter()
        .filter(|x| x.prequeue)
        .filter_map(|x| Some((x.join_sent_us, x.number?)))
        .collect();
    drawn.sort();
    let ranked: Vec<(u64, u64)> = drawn
        .iter()
        .enumerate()
        .map(|(rank, (_, number))| (rank as u64, *number))
        .collect();
    let arrival: Vec<f64> = ranked.iter().map(|(rank, _)| *rank as f64).collect();
    let numbers: Vec<f64> = ranked.iter().map(|(_, n)| *n as f64).collect();
    let spearman = stats::spearman(&arrival, &numbers);
    let chi = (ranked.len() >= 100)
        .then(|| stats::chi_square_independence(&stats::lottery_table(&ranked, 5, 10)))
        .flatten();
    // After opening: first come, first served.
    let joins: Vec<(u64, u64, u64)> = r
        .records
        .iter()
        .filter(|x| !x.prequeue)
        .filter_map(|x| Some((x.join_sent_us, x.join_answered_us, x.number?)))
        .collect();
    Fairness {
        prequeue_drawn: ranked.len() as u64,
        spearman,
        chi_square: chi.map(|(statistic, _)| statistic),
        chi_square_df: chi.map_or(0, |(_, df)| df),
        chi_square_p: chi.map(|(statistic, df)| stats::chi_square_p_value(statistic, df)),
        fifo_checked: joins.len() as u64,
        fifo_inversions: stats::fifo_inversions(&joins),
    }
}

fn wait_estimate(r: &Recorded<'_>) -> WaitEstimate {
    let min_wait_wall = (MIN_JUDGED_WAIT_SECONDS / r.c()).max(MIN_JUDGED_WAIT_WALL_SECONDS);
    let mut errors = vec![];
    let mut biases = vec![];
    let mut marked_uncertain = 0;
    let mut uncertain_by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for record in r.records {
        let (Some(number), Some(eta)) = (record.number, record.first_eta) else {
            continue;
        };
        let Some(admitted_ms) = watch::admitted_at_ms(r.samples, number) else {
            continue;
        };
        let real = (admitted_ms - eta.at_ms as f64) / 1000.0;
        if real < min_wait_wall {
            continue;
        }
        let estimate = eta.eta_seconds as f64;
        errors.push((estimate - real).abs() / real * 100.0);
        biases.push((estimate - real) / real * 100.0);
        if let Some(reason) = eta.uncertain {
            marked_uncertain += 1;
            let name = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{reason:?}"));
            *uncertain_by_reason.entry(name).or_insert(0) += 1;
        }
    }
    errors.sort_by(f64::total_cmp);
    biases.sort_by(f64::total_cmp);
    WaitEstimate {
        samples: errors.len() as u64,
        min_wait_seconds: min_wait_wall * r.c(),
        median_error_percent: stats::percentile(&errors, 0.5),
        p90_error_percent: stats::percentile(&errors, 0.9),
        median_bias_percent: stats::percentile(&biases, 0.5),
        marked_uncertain,
        uncertain_by_reason,
    }
}

fn forecast(r: &Recorded<'_>) -> ForecastOutcome {
    let sold_out_at_ms = sold_out_at_ms(r);
    let last_invested_number = r
        .records
        .iter()
        .filter(|x| matches!(x.outcome, VisitOutcome::Invested { .. }))
        .filter_map(|x| x.number)
        .max();
    let told: Vec<&InvestorRecord> = r
        .records
        .iter()
        .filter(|x| x.told_at_number.is_some())
        .collect();
    let would_have_got_in = |x: &InvestorRecord| match x.outcome {
        VisitOutcome::Invested { .. } => true,
        VisitOutcome::Left => x
            .number
            .zip(last_invested_number)
            .is_some_and(|(mine, last)| last > mine),
        _ => false,
    };
    ForecastOutcome {
        told: told.len() as u64,
        told_and_left: told
            .iter()
            .filter(|x| x.outcome == VisitOutcome::Left)
            .count() as u64,
        told_but_would_have_got_in: told.iter().filter(|x| would_have_got_in(x)).count() as u64,
        // Joined before the round sold out (a later arrival is told on
        // arrival: the page says the round is full), and never told.
        waited_until_sell_out_untold: r
            .records
            .iter()
            .filter(|x| x.told_at_number.is_none())
            .filter(|x| sold_out_at_ms.is_some_and(|at| x.join_answered_us / 1000 < at))
            .filter(|x| {
                matches!(
                    x.outcome,
                    VisitOutcome::SoldOut | VisitOutcome::StillWaiting
                )
            })
            .count() as u64,
    }
}

fn check(name: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.to_string(),
        passed,
        tested: true,
        detail,
    }
}

/// A check the run gave too little to make: said, not passed off as held.
fn not_tested(name: &str, why: String) -> Check {
    Check {
        name: name.to_string(),
        passed: true,
        tested: false,
        detail: format!("not tested: {why}"),
    }
}

fn invariants(
    r: &Recorded<'_>,
    outcome: &Outcome,
    fairness: &Fairness,
    errors: &[ErrorCount],
) -> Invariants {
    let ids = accepted_ids(r);
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    let unexpected: u64 = errors.iter().filter(|e| !e.designed).map(|e| e.count).sum();
    let failed_visits: Vec<&str> = r
        .records
        .iter()
        .filter_map(|x| match &x.outcome {
            VisitOutcome::Failed(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    let last = r.samples.last();
    let backlog = last.map_or(0, |f| f.backlog);
    let dead = last.map_or(0, |f| f.dead_letters);
    let mut checks = vec![
        check(
            "raised never above the cap",
            outcome.max_raised_seen_pence <= outcome.cap_pence,
            format!(
                "highest raised seen {} pence, cap {} pence",
                outcome.max_raised_seen_pence, outcome.cap_pence
            ),
        ),
        check(
            "every 201 is one investment, counted once by core",
            distinct.len() == ids.len() && distinct.len() as u64 == outcome.accepted_by_core,
            format!(
                "{} answers 201, {} distinct ids, core counted {}",
                ids.len(),
                distinct.len(),
                outcome.accepted_by_core
            ),
        ),
        check(
            "every accepted investment settled or failed",
            backlog == 0 && dead == 0,
            format!(
                "{} settled, {} failed, {backlog} unsettled, {dead} dead-lettered",
                outcome.settled, outcome.failed_settlements
            ),
        ),
        check(
            "the books reconcile",
            r.books.is_clean(),
            if r.books.is_clean() {
                format!("reconcile: clean ({} mode)", r.books.mode)
            } else {
                r.books.violations.join("; ")
            },
        ),
        check(
            "no unexpected errors",
            unexpected == 0 && failed_visits.is_empty(),
            if failed_visits.is_empty() {
                format!("{unexpected} unexpected answer(s)")
            } else {
                format!(
                    "{unexpected} unexpected answer(s); {} visit(s) failed, e.g. {}",
                    failed_visits.len(),
                    failed_visits[0]
                )
            },
        ),
        check(
            "first come, first served after opening",
            fairness.fifo_inversions == 0,
            format!(
                "{} inversion(s) among {} joins",
                fairness.fifo_inversions, fairness.fifo_checked
            ),
        ),
    ];
    const LOTTERY: &str = "arriving early buys nothing in the pre-queue";
    if fairness.chi_square_p.is_none() {
        checks.push(not_tested(
            LOTTERY,
            if r.prequeue_rehearsed {
                format!("{} drawn; the χ² test needs 100", fairness.prequeue_drawn)
            } else {
                "the round was already open: nobody joined a pre-queue".to_string()
            },
        ));
    }
    if let Some(p) = fairness.chi_square_p {
        checks.push(check(
            LOTTERY,
            p >= FAIRNESS_P_VALUE,
            format!(
                "χ² p-value {p:.3} (fails under {FAIRNESS_P_VALUE:e}); Spearman {}",
                fairness
                    .spearman
                    .map_or("—".to_string(), |s| format!("{s:.3}"))
            ),
        ));
    }
    Invariants {
        checks,
        reconcile: r.books.to_string(),
    }
}

fn verdict(r: &Recorded<'_>, outcome: &Outcome, invariants: &Invariants) -> Verdict {
    let mut problems = r.problems.clone();
    problems.extend(
        invariants
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail)),
    );
    let passed = problems.is_empty();
    let line = if passed {
        let sold = match outcome.time_to_sell_out_seconds {
            Some(s) => format!("sold out {} after opening", round_time(s)),
            None => "did not sell out".to_string(),
        };
        format!(
            "PASS: {sold}; {} investments, {} of {}; 0 unexpected errors; the books reconcile",
            grouped(outcome.accepted_investments as i64),
            pounds(outcome.raised_pence),
            pounds(outcome.cap_pence)
        )
    } else {
        let more = if problems.len() > 1 {
            format!(" (and {} more)", problems.len() - 1)
        } else {
            String::new()
        };
        format!("FAIL: {}{more}", problems[0])
    };
    Verdict {
        passed,
        line,
        problems,
    }
}

/// Round seconds as people say them: "14 min 3 s".
pub fn round_time(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_count_the_busiest_second() {
        assert_eq!(peak_per_second(&[]), 0);
        assert_eq!(peak_per_second(&[10, 900, 1_000, 1_500, 1_999, 2_000]), 3);
    }

    #[test]
    fn round_time_reads_as_people_say_it() {
        assert_eq!(round_time(42.4), "42 s");
        assert_eq!(round_time(843.0), "14 min 3 s");
    }
}
