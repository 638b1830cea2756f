//! The statistics a rehearsal report rests on, as pure functions of plain
//! data: rank correlation and χ² independence for the pre-queue lottery,
//! FIFO inversions for the queue after opening, percentiles, and the
//! per-minute view of the timeline that the first chart draws.
//!
//! They are kept apart from the code that drives the round so each can be
//! tested on fixed data, and so the report's claims ("no sign that arriving
//! early helped", "0 inversions") stand on code that is checked by itself.
//! None of them panics on odd input (empty, constant, NaN): they answer
//! `None`, zero or an empty table instead.

use std::cmp::Ordering;

use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::report::{Minute, Sample};

/// Fewer pairs than this and a rank correlation says nothing useful.
const MIN_SPEARMAN_PAIRS: usize = 10;

/// Ranks of `values`, 1-based, in the order given; tied values share the
/// average of the ranks they span (so `[10, 20, 20, 30]` ranks as
/// `[1, 2.5, 2.5, 4]`). NaNs sort last (IEEE total order).
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));

    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let end = end_of_tie(values, &order, start);
        // Positions start..end (0-based) hold ranks start+1..=end.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = average_rank;
        }
        start = end;
    }
    ranks
}

/// One past the last position in `order` (from `start`) whose value ties
/// with the value at `start`.
fn end_of_tie(values: &[f64], order: &[usize], start: usize) -> usize {
    let first = values[order[start]];
    let tied = order[start..]
        .iter()
        .take_while(|&&index| values[index].total_cmp(&first) == Ordering::Equal)
        .count();
    start + tied
}

/// Spearman's rank correlation: the Pearson correlation of the ranks.
/// `None` when the series differ in length, hold fewer than 10 pairs, or
/// either is constant (the correlation is undefined).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < MIN_SPEARMAN_PAIRS {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// Pearson correlation; `None` for a constant series or a non-finite result.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let mut covariance = 0.0;
    let mut variance_x = 0.0;
    let mut variance_y = 0.0;
    for (a, b) in x.iter().zip(y) {
        let dx = a - mean_x;
        let dy = b - mean_y;
        covariance += dx * dy;
        variance_x += dx * dx;
        variance_y += dy * dy;
    }
    if variance_x <= 0.0 || variance_y <= 0.0 {
        return None;
    }
    let r = covariance / (variance_x * variance_y).sqrt();
    // Rounding can push a perfect correlation a hair past ±1.
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// Pearson's χ² test of independence on a contingency table (rows of
/// counts; ragged rows are padded with zeros). Rows and columns that are
/// all zero carry no information and are left out. Returns the statistic
/// and its degrees of freedom, (rows − 1)(columns − 1) of what is left;
/// `None` when fewer than two rows or two columns remain.
pub fn chi_square_independence(table: &[Vec<u64>]) -> Option<(f64, u64)> {
    let columns = table.iter().map(Vec::len).max().unwrap_or(0);
    let cell = |row: usize, column: usize| table[row].get(column).copied().unwrap_or(0);

    let row_totals: Vec<u64> = table.iter().map(|row| row.iter().sum()).collect();
    let column_totals: Vec<u64> = (0..columns)
        .map(|column| (0..table.len()).map(|row| cell(row, column)).sum())
        .collect();
    let kept_rows: Vec<usize> = (0..table.len()).filter(|&r| row_totals[r] > 0).collect();
    let kept_columns: Vec<usize> = (0..columns).filter(|&c| column_totals[c] > 0).collect();
    if kept_rows.len() < 2 || kept_columns.len() < 2 {
        return None;
    }

    let total: f64 = row_totals.iter().map(|&t| t as f64).sum();
    let mut statistic = 0.0;
    for &row in &kept_rows {
        for &column in &kept_columns {
            let expected = row_totals[row] as f64 * column_totals[column] as f64 / total;
            let difference = cell(row, column) as f64 - expected;
            statistic += difference * difference / expected;
        }
    }
    let df = (kept_rows.len() as u64 - 1) * (kept_columns.len() as u64 - 1);
    statistic.is_finite().then_some((statistic, df))
}

/// The probability of a χ² at least `statistic` with `df` degrees of
/// freedom if the null hypothesis held (the upper tail). A degenerate input
/// (zero df, a negative or non-finite statistic) answers 1.0: no evidence.
pub fn chi_square_p_value(statistic: f64, df: u64) -> f64 {
    if df == 0 || !statistic.is_finite() || statistic <= 0.0 {
        return 1.0;
    }
    match ChiSquared::new(df as f64) {
        Ok(distribution) => {
            let p = distribution.sf(statistic);
            if p.is_finite() {
                p.clamp(0.0, 1.0)
            } else {
                1.0
            }
        }
        Err(_) => 1.0,
    }
}

/// The lottery's contingency table: for each pre-queue member its arrival
/// rank (0-based) and the queue number it drew, counted by arrival group
/// (rows) × number group (columns), e.g. quintiles × deciles.
///
/// Groups are by position among the members, not by the raw values, so
/// each group holds the same number of members (±1) however sparse the
/// ranks or numbers are. Equal numbers keep their arrival order. Zero
/// groups on either side gives an empty table.
pub fn lottery_table(
    arrival_rank_and_number: &[(u64, u64)],
    arrival_groups: usize,
    number_groups: usize,
) -> Vec<Vec<u64>> {
    if arrival_groups == 0 || number_groups == 0 {
        return Vec::new();
    }
    let arrival_group = group_by_position(arrival_rank_and_number, arrival_groups, |m| m.0);
    let number_group = group_by_position(arrival_rank_and_number, number_groups, |m| m.1);

    let mut table = vec![vec![0; number_groups]; arrival_groups];
    for (row, column) in arrival_group.into_iter().zip(number_group) {
        table[row][column] += 1;
    }
    table
}

/// For each member (in input order), the group its `key` falls in when the
/// members are sorted by it and cut into `groups` equal runs.
fn group_by_position<F>(members: &[(u64, u64)], groups: usize, key: F) -> Vec<usize>
where
    F: Fn(&(u64, u64)) -> u64,
{
    let mut order: Vec<usize> = (0..members.len()).collect();
    // Stable, and by arrival rank second, so ties split reproducibly.
    order.sort_by_key(|&index| (key(&members[index]), members[index].0));
    let mut group = vec![0; members.len()];
    for (position, index) in order.into_iter().enumerate() {
        group[index] = position * groups / members.len();
    }
    group
}

/// Count the FIFO inversions among joins after opening. Each join is
/// (request sent at, answer received at, queue number), times in µs. A pair
/// (i, j) is an inversion when i's answer was received strictly before j's
/// request was sent — so i was first beyond doubt — yet i drew the higher
/// number. Overlapping requests may be served in either order and are never
/// counted.
///
/// O(n log n): sweep the joins by send time, adding every join answered
/// before that instant to a Fenwick tree over the (compressed) numbers, and
/// count the added numbers above the current join's.
pub fn fifo_inversions(joins: &[(u64, u64, u64)]) -> u64 {
    let mut numbers: Vec<u64> = joins.iter().map(|join| join.2).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let slot = |number: u64| numbers.partition_point(|&n| n < number);

    let mut by_sent: Vec<&(u64, u64, u64)> = joins.iter().collect();
    by_sent.sort_unstable_by_key(|join| join.0);
    let mut by_received: Vec<&(u64, u64, u64)> = joins.iter().collect();
    by_received.sort_unstable_by_key(|join| join.1);

    let mut answered = Fenwick::new(numbers.len());
    let mut answered_count = 0u64;
    let mut next_answered = 0;
    let mut inversions = 0u64;
    for join in by_sent {
        while next_answered < by_received.len() && by_received[next_answered].1 < join.0 {
            answered.add(slot(by_received[next_answered].2));
            answered_count += 1;
            next_answered += 1;
        }
        let at_or_below = answered.count_up_to(slot(join.2));
        inversions += answered_count - at_or_below;
    }
    inversions
}

/// A Fenwick (binary indexed) tree of counts over slots 0..size.
struct Fenwick {
    tree: Vec<u64>,
}

impl Fenwick {
    fn new(size: usize) -> Self {
        Fenwick {
            tree: vec![0; size + 1],
        }
    }

    /// Count one more at `slot`.
    fn add(&mut self, slot: usize) {
        let mut i = slot + 1;
        while i < self.tree.len() {
            self.tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// How many were counted at slots 0..=slot.
    fn count_up_to(&self, slot: usize) -> u64 {
        let mut i = (slot + 1).min(self.tree.len() - 1);
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    }
}

/// The `q` quantile (`q` a fraction, 0.0 ..= 1.0: 0.5 is the median, 0.9
/// the 90th percentile) of already sorted values, by linear interpolation
/// between the closest ranks (the common "type 7" definition, as in
/// numpy's default). `None` when empty, when `q` is outside 0..=1 (a
/// percentage like 90.0 passed by mistake), or when the result is not
/// finite.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    let value = sorted[below] + (sorted[above] - sorted[below]) * fraction;
    value.is_finite().then_some(value)
}

/// The timeline per scenario minute (minute = floor(t / 60), negative
/// before opening), in time order; minutes without a sample are absent.
///
/// - `waiting`: the most people waiting at any sample in the minute;
/// - `admitted`: `admitted_up_to` at the minute's last sample less that at
///   the previous minute's last sample (the first minute counts from its own
///   first sample), never negative;
/// - `rate_per_minute`: the ops rate at the minute's last sample.
///
/// Samples with a non-finite `t` are ignored.
pub fn minutes(timeline: &[Sample]) -> Vec<Minute> {
    let mut samples: Vec<&Sample> = timeline.iter().filter(|s| s.t.is_finite()).collect();
    // The sampler appends in order, but a stable sort costs little and makes
    // "previous minute" mean what it says whatever the input.
    samples.sort_by(|a, b| a.t.total_cmp(&b.t));

    let mut result = Vec::new();
    let mut previous_admitted_up_to: Option<u64> = None;
    for group in samples.chunk_by(|a, b| minute_of(a.t) == minute_of(b.t)) {
        let (first, last) = (group[0], group[group.len() - 1]);
        let counted_from = previous_admitted_up_to.unwrap_or(first.admitted_up_to);
        result.push(Minute {
            minute: minute_of(first.t),
            waiting: group.iter().map(|s| s.waiting).max().unwrap_or(0),
            admitted: last.admitted_up_to.saturating_sub(counted_from),
            rate_per_minute: finite_or_zero(last.rate_per_minute),
        });
        previous_admitted_up_to = Some(last.admitted_up_to);
    }
    result
}

/// The scenario minute a time (scenario seconds from opening) falls in.
fn minute_of(t: f64) -> i64 {
    // `as` saturates for absurd times rather than wrapping.
    (t / 60.0).floor() as i64
}

fn finite_or_zero(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 30.0]), vec![1.0, 2.5, 2.5, 4.0]);
        assert_eq!(ranks(&[3.0, 1.0, 2.0]), vec![3.0, 1.0, 2.0]);
        assert_eq!(ranks(&[5.0, 5.0, 5.0]), vec![2.0, 2.0, 2.0]);
        assert!(ranks(&[]).is_empty());
    }

    #[test]
    fn spearman_of_monotone_series_is_one_and_of_reversed_minus_one() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let rising: Vec<f64> = x.iter().map(|v| v * v + 3.0).collect();
        let falling: Vec<f64> = x.iter().map(|v| -v.powi(3)).collect();
        assert!(close(spearman(&x, &rising).unwrap(), 1.0, 1e-12));
        assert!(close(spearman(&x, &falling).unwrap(), -1.0, 1e-12));
    }

    #[test]
    fn spearman_matches_a_worked_example() {
        // Rank differences d = (0, -1, 1, 0, 0, 0, 0, 0, -1, 1): Σd² = 4, so
        // with no ties ρ = 1 − 6·Σd² / (n(n² − 1)) = 1 − 24/990.
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let y = [1.0, 3.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 9.0];
        let expected = 1.0 - 24.0 / 990.0;
        assert!(close(spearman(&x, &y).unwrap(), expected, 1e-12));
    }

    #[test]
    fn spearman_declines_short_constant_or_mismatched_series() {
        let nine: Vec<f64> = (0..9).map(f64::from).collect();
        assert_eq!(spearman(&nine, &nine), None);
        let ten: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(spearman(&ten, &[7.0; 10]), None);
        assert_eq!(spearman(&ten, &nine), None);
        assert_eq!(spearman(&[], &[]), None);
    }

    #[test]
    fn chi_square_of_a_known_table() {
        // Row totals 50, 50; column totals 40, 60; expected 20, 30 each row.
        // χ² = 2·(10²/20) + 2·(10²/30) = 16.666…
        let table = vec![vec![30, 20], vec![10, 40]];
        let (statistic, df) = chi_square_independence(&table).unwrap();
        assert!(close(statistic, 50.0 / 3.0, 1e-9));
        assert_eq!(df, 1);
    }

    #[test]
    fn chi_square_skips_empty_rows_and_columns() {
        let table = vec![vec![30, 0, 20], vec![0, 0, 0], vec![10, 0, 40]];
        let (statistic, df) = chi_square_independence(&table).unwrap();
        assert!(close(statistic, 50.0 / 3.0, 1e-9));
        assert_eq!(df, 1);
    }

    #[test]
    fn chi_square_of_an_independent_table_is_zero() {
        let table = vec![vec![10, 20, 30], vec![20, 40, 60]];
        let (statistic, df) = chi_square_independence(&table).unwrap();
        assert!(close(statistic, 0.0, 1e-9));
        assert_eq!(df, 2);
    }

    #[test]
    fn chi_square_declines_degenerate_tables() {
        assert_eq!(chi_square_independence(&[]), None);
        assert_eq!(chi_square_independence(&[vec![1, 2, 3]]), None);
        assert_eq!(chi_square_independence(&[vec![0, 0], vec![0, 0]]), None);
        assert_eq!(chi_square_independence(&[vec![5, 0], vec![7, 0]]), None);
        assert_eq!(chi_square_independence(&[vec![], vec![]]), None);
    }

    #[test]
    fn chi_square_p_value_matches_tables() {
        assert!(close(chi_square_p_value(3.841_459, 1), 0.05, 1e-6));
        assert!(close(chi_square_p_value(3.84, 1), 0.05, 2e-4));
        assert!(close(chi_square_p_value(16.918_98, 9), 0.05, 1e-6));
        assert!(close(chi_square_p_value(10.827_57, 1), 0.001, 1e-7));
        assert_eq!(chi_square_p_value(0.0, 4), 1.0);
        assert_eq!(chi_square_p_value(f64::NAN, 4), 1.0);
        assert_eq!(chi_square_p_value(5.0, 0), 1.0);
    }

    #[test]
    fn lottery_table_groups_by_position() {
        // 10 members arriving in order, drawing numbers in reverse: the
        // first half (arrival group 0) drew the top half of numbers.
        let members: Vec<(u64, u64)> = (0..10).map(|rank| (rank, 1000 - rank * 7)).collect();
        let table = lottery_table(&members, 2, 5);
        assert_eq!(table, vec![vec![0, 0, 1, 2, 2], vec![2, 2, 1, 0, 0]]);
        // Equal-sized groups whatever the spread of ranks and numbers.
        let sparse: Vec<(u64, u64)> = (0..50).map(|i| (i * i, (i * 37) % 50 * 1000)).collect();
        let table = lottery_table(&sparse, 5, 10);
        for row in &table {
            assert_eq!(row.iter().sum::<u64>(), 10);
        }
        for column in 0..10 {
            assert_eq!(table.iter().map(|row| row[column]).sum::<u64>(), 5);
        }
    }

    #[test]
    fn lottery_table_of_nothing() {
        assert_eq!(lottery_table(&[], 5, 10), vec![vec![0; 10]; 5]);
        assert!(lottery_table(&[(0, 1)], 0, 10).is_empty());
        assert!(lottery_table(&[(0, 1)], 5, 0).is_empty());
    }

    fn fifo_inversions_brute_force(joins: &[(u64, u64, u64)]) -> u64 {
        let mut count = 0;
        for i in joins {
            for j in joins {
                if i.1 < j.0 && i.2 > j.2 {
                    count += 1;
                }
            }
        }
        count
    }

    #[test]
    fn fifo_inversions_on_small_cases() {
        assert_eq!(fifo_inversions(&[]), 0);
        // Answered before the other was sent, yet a higher number.
        assert_eq!(fifo_inversions(&[(0, 10, 5), (20, 30, 4)]), 1);
        // In order.
        assert_eq!(fifo_inversions(&[(0, 10, 4), (20, 30, 5)]), 0);
        // Overlapping requests may be served either way.
        assert_eq!(fifo_inversions(&[(0, 20, 5), (10, 30, 4)]), 0);
        // Received at the very instant the other was sent: not strictly before.
        assert_eq!(fifo_inversions(&[(0, 10, 5), (10, 30, 4)]), 0);
    }

    #[test]
    fn fifo_inversions_match_brute_force_on_random_data() {
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..40 {
            let n = rng.random_range(0..300);
            let joins: Vec<(u64, u64, u64)> = (0..n)
                .map(|_| {
                    let sent = rng.random_range(0..10_000);
                    let received = sent + rng.random_range(0..500);
                    // Few distinct numbers in some rounds, to exercise ties.
                    let number = rng.random_range(0..if round % 2 == 0 { 20 } else { 100_000 });
                    (sent, received, number)
                })
                .collect();
            assert_eq!(
                fifo_inversions(&joins),
                fifo_inversions_brute_force(&joins),
                "round {round}"
            );
        }
    }

    #[test]
    fn fifo_inversions_scale_to_fifty_thousand() {
        // Numbers handed out in exactly reverse order of strictly sequential
        // joins: every pair is an inversion.
        let n = 50_000u64;
        let joins: Vec<(u64, u64, u64)> = (0..n).map(|i| (i * 10, i * 10 + 5, n - i)).collect();
        assert_eq!(fifo_inversions(&joins), n * (n - 1) / 2);
    }

    #[test]
    fn percentile_interpolates_linearly() {
        let sorted = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(percentile(&sorted, 0.0), Some(10.0));
        assert_eq!(percentile(&sorted, 0.5), Some(30.0));
        assert_eq!(percentile(&sorted, 1.0), Some(50.0));
        assert_eq!(percentile(&sorted, 0.9), Some(46.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&sorted, 90.0), None);
        assert_eq!(percentile(&sorted, f64::NAN), None);
    }

    fn sample(t: f64, waiting: u64, admitted_up_to: u64, rate_per_minute: f64) -> Sample {
        Sample {
            t,
            phase: "open".into(),
            waiting,
            admitted_up_to,
            active: 0,
            rate_per_minute,
            achieved_rate_per_minute: 0.0,
            raised_pence: 0,
            accepted: 0,
            settled: 0,
            failed: 0,
            settlement_lag_seconds: 0.0,
        }
    }

    #[test]
    fn minutes_of_a_small_timeline() {
        let timeline = vec![
            sample(-90.0, 100, 0, 60.0),
            sample(-61.0, 150, 0, 60.0),
            sample(-30.0, 200, 0, 60.0),
            sample(0.0, 200, 5, 60.0),
            sample(30.0, 180, 40, 60.0),
            sample(59.9, 170, 55, 120.0),
            // Minute 1 has no sample; minute 2 counts from minute 0's end.
            sample(150.0, 90, 200, 120.0),
        ];
        let minutes = minutes(&timeline);
        let view: Vec<(i64, u64, u64, f64)> = minutes
            .iter()
            .map(|m| (m.minute, m.waiting, m.admitted, m.rate_per_minute))
            .collect();
        assert_eq!(
            view,
            vec![
                (-2, 150, 0, 60.0),
                (-1, 200, 0, 60.0),
                (0, 200, 55, 120.0),
                (2, 90, 145, 120.0),
            ]
        );
    }

    #[test]
    fn minutes_first_minute_counts_from_its_own_first_sample() {
        let timeline = vec![sample(600.0, 10, 1000, 60.0), sample(630.0, 12, 1030, 60.0)];
        let minutes = minutes(&timeline);
        assert_eq!(minutes.len(), 1);
        assert_eq!(minutes[0].minute, 10);
        assert_eq!(minutes[0].admitted, 30);
    }

    #[test]
    fn minutes_of_odd_timelines() {
        assert!(minutes(&[]).is_empty());
        let odd = vec![
            sample(f64::NAN, 1, 1, 1.0),
            sample(10.0, 5, 9, f64::NAN),
            sample(70.0, 5, 3, 1.0),
        ];
        let minutes = minutes(&odd);
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].rate_per_minute, 0.0);
        // A counter going backwards never makes a negative admission.
        assert_eq!(minutes[1].admitted, 0);
    }
}
