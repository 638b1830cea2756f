//! The rehearsal report as one self-contained HTML page: the verdict first,
//! then what happened to the round, charts of the queue, the money, latency
//! and settlement, and the tables behind them.
//!
//! The page is a single file with inline CSS and inline SVG and nothing else
//! (no scripts, no links, no fonts to fetch) so it can be attached to a
//! ticket, opened offline years later, or printed for a launch meeting and
//! still read the same. Every piece of text that comes from the report is
//! escaped: the scenario name is user input. Stable ids (`verdict`,
//! `chart-queue`, `table-outcome`, …) let tests and people find things.

use crowdgate_protocol::money::{group_digits, pounds};

use crate::report::{
    EndpointLatency, ErrorCount, Fairness, ForecastOutcome, Invariants, Minute, Outcome, Report,
    Sample, WaitEstimate,
};

/// What the page shows for a value that is absent.
const DASH: &str = "—";

/// The wait estimate's goal: median relative error under this percentage.
const WAIT_ESTIMATE_GOAL_PERCENT: f64 = 20.0;

/// A p-value under this says arrival order shows through the lottery (the
/// bar the verdict uses).
const LOTTERY_P_THRESHOLD: f64 = crate::analysis::FAIRNESS_P_VALUE;

/// |ρ|·√(n − 1) beyond this is a two-sided p under 10⁻⁶ for Spearman's ρ
/// (normal approximation), the same bar as the χ² test.
const SPEARMAN_Z_THRESHOLD: f64 = 4.89;

/// Render the whole report as an HTML5 page.
pub fn render(report: &Report) -> String {
    let mut page = String::with_capacity(64 * 1024);
    page.push_str(&head(&report.scenario.name));
    page.push_str("<body>\n<main>\n");
    page.push_str(&header(report));
    page.push_str("<section>\n<h2>Outcome</h2>\n");
    page.push_str(&outcome_table(&report.outcome));
    page.push_str("</section>\n<section>\n<h2>Charts</h2>\n");
    page.push_str(&queue_chart(&report.minutes));
    page.push_str(&raised_chart(&report.timeline, report.outcome.cap_pence));
    page.push_str(&latency_chart(&report.latency));
    page.push_str(&settlement_chart(&report.timeline));
    page.push_str("</section>\n<section>\n<h2>Details</h2>\n");
    page.push_str(&latency_table(&report.latency));
    page.push_str(&errors_table(&report.errors));
    page.push_str(&fairness_table(&report.fairness));
    page.push_str(&wait_estimate_table(&report.wait_estimate));
    page.push_str(&forecast_table(&report.sell_out_forecast));
    page.push_str(&invariants_section(&report.invariants));
    page.push_str("</section>\n</main>\n</body>\n</html>\n");
    page
}

// ---------------------------------------------------------------------------
// Page frame

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1b1b1b; background: #fff; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .75rem; border-bottom: 1px solid #ccc; }
#verdict { font-size: 1.15rem; font-weight: 600; padding: .6rem .9rem; border-radius: 4px;
           border: 2px solid; margin: .5rem 0; }
#verdict.pass { background: #e6f4ea; border-color: #2e7d32; color: #1b5e20; }
#verdict.fail { background: #fdecea; border-color: #c62828; color: #8e1b1b; }
#problems { margin: .25rem 0 1rem; color: #8e1b1b; }
.summary { margin: .25rem 0; color: #333; }
figure { margin: 1.25rem 0; break-inside: avoid; page-break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: .9rem; color: #444; margin-top: .25rem; }
table { border-collapse: collapse; margin: 1.25rem 0; min-width: 60%; break-inside: avoid;
        page-break-inside: avoid; }
caption { text-align: left; font-weight: 600; padding-bottom: .35rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: left; vertical-align: top; }
thead th { background: #f2f2f2; }
tbody th { font-weight: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.held, td.designed { color: #1b5e20; }
td.untested { color: #6d4c00; }
td.broken, td.unexpected, td.bad { color: #8e1b1b; font-weight: 600; }
td.note { color: #555; font-style: italic; }
pre#reconcile { background: #f7f7f7; border: 1px solid #ddd; padding: .6rem; overflow-x: auto;
                white-space: pre-wrap; font-size: .85rem; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; page-break-after: avoid; }
}
"#;

fn head(scenario_name: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rehearsal: {}</title>\n<style>{STYLE}</style>\n</head>\n",
        escape(scenario_name)
    )
}

/// Title, verdict (and why it failed), and what was rehearsed.
fn header(report: &Report) -> String {
    let scenario = &report.scenario;
    let verdict = &report.verdict;
    let class = if verdict.passed { "pass" } else { "fail" };
    let mut html = format!(
        "<header>\n<h1>Rehearsal: {}</h1>\n<p id=\"verdict\" class=\"{class}\">{}</p>\n",
        escape(&scenario.name),
        escape(&verdict.line)
    );
    if !verdict.problems.is_empty() {
        html.push_str("<ul id=\"problems\">\n");
        for problem in &verdict.problems {
            html.push_str(&format!("<li>{}</li>\n", escape(problem)));
        }
        html.push_str("</ul>\n");
    }
    let run = [
        format!("Target {}", report.target),
        format!("started {}", report.started_at),
        format!("{} investors", count(scenario.investors)),
        format!("{}× time compression", plain(scenario.compression)),
        format!("{} wall", duration(report.wall_seconds)),
    ];
    html.push_str(&format!(
        "<p id=\"summary\" class=\"summary\">{}</p>\n",
        escape(&run.join(" · "))
    ));
    html.push_str(&format!(
        "<p id=\"round\" class=\"summary\">{}</p>\n</header>\n",
        escape(&round_line(report))
    ));
    html
}

/// The round's set-up in one line: cap, demand, limits, admission.
fn round_line(report: &Report) -> String {
    let scenario = &report.scenario;
    let demand_share = percent_of(scenario.demand_pence as f64, scenario.cap_pence as f64);
    [
        format!("Cap {}", pounds(scenario.cap_pence)),
        format!(
            "demand {} ({} % of cap)",
            pounds(scenario.demand_pence),
            optional(demand_share, 0)
        ),
        format!(
            "investments {} to {}",
            pounds(scenario.min_investment_pence),
            pounds(scenario.max_investment_pence)
        ),
        format!(
            "admission {} people/min, at most {} active",
            plain(scenario.rate_per_minute),
            count(scenario.max_active)
        ),
        format!("pre-queue {}", duration(scenario.prequeue_seconds)),
        format!("seed {}", scenario.seed),
    ]
    .join(" · ")
}

// ---------------------------------------------------------------------------
// Text and numbers for people

/// Escape text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

fn count(n: u64) -> String {
    group_digits(&n.to_string())
}

/// A number with thousands separators and `decimals` places; "—" when it
/// is not finite. Negative numbers take a real minus sign, and a value that
/// rounds to zero never shows as "−0".
fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return DASH.to_string();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text.as_str(), None),
    };
    let rounds_to_zero = text.chars().all(|c| c == '0' || c == '.');
    let sign = if value < 0.0 && !rounds_to_zero {
        "−"
    } else {
        ""
    };
    match fraction {
        Some(fraction) => format!("{sign}{}.{fraction}", group_digits(whole)),
        None => format!("{sign}{}", group_digits(whole)),
    }
}

/// A number as people say it: "30", "2.5" (no needless ".0").
fn plain(value: f64) -> String {
    let decimals = if value.fract() == 0.0 { 0 } else { 1 };
    number(value, decimals)
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| DASH.to_string(), |v| number(v, decimals))
}

/// Whole pounds for an axis label: "£1,234,567".
fn pounds_label(pounds: f64) -> String {
    let sign = if pounds < -0.5 { "−" } else { "" };
    format!("{sign}£{}", number(pounds.abs(), 0))
}

/// `part` as a percentage of `whole`; `None` when that means nothing.
fn percent_of(part: f64, whole: f64) -> Option<f64> {
    let share = part / whole * 100.0;
    (whole != 0.0 && share.is_finite()).then_some(share)
}

/// Seconds for people: "42.5 s", "12 min 05 s", "2 h 03 min".
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return DASH.to_string();
    }
    let sign = if seconds < 0.0 { "−" } else { "" };
    let magnitude = seconds.abs();
    if magnitude < 60.0 {
        return format!("{sign}{magnitude:.1} s");
    }
    let whole = magnitude.round() as u64;
    if whole < 3600 {
        format!("{sign}{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{sign}{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

fn optional_duration(seconds: Option<f64>, when_absent: &str) -> String {
    seconds.map_or_else(|| when_absent.to_string(), duration)
}

// ---------------------------------------------------------------------------
// Tables

/// One table cell: its text (escaped when written) and an optional class.
struct Cell {
    text: String,
    class: Option<&'static str>,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        class: None,
    }
}

/// A right-aligned number cell.
fn num(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        class: Some("num"),
    }
}

fn classed(text: impl Into<String>, class: &'static str) -> Cell {
    Cell {
        text: text.into(),
        class: Some(class),
    }
}

enum Row {
    /// One cell per column; the first is the row's header.
    Cells(Vec<Cell>),
    /// A single note spanning every column ("none", "no data").
    Note(String),
}

struct Table<'a> {
    id: &'a str,
    caption: &'a str,
    headers: &'a [&'a str],
    rows: Vec<Row>,
}

impl Table<'_> {
    fn render(&self) -> String {
        let mut html = format!(
            "<table id=\"{}\">\n<caption>{}</caption>\n<thead><tr>",
            self.id,
            escape(self.caption)
        );
        for header in self.headers {
            html.push_str(&format!("<th scope=\"col\">{}</th>", escape(header)));
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            html.push_str(&self.render_row(row));
        }
        html.push_str("</tbody>\n</table>\n");
        html
    }

    fn render_row(&self, row: &Row) -> String {
        match row {
            Row::Note(text) => format!(
                "<tr><td class=\"note\" colspan=\"{}\">{}</td></tr>\n",
                self.headers.len().max(1),
                escape(text)
            ),
            Row::Cells(cells) => {
                let mut html = String::from("<tr>");
                for (i, cell) in cells.iter().enumerate() {
                    // The first cell names the row: a row header for screen readers.
                    let tag = if i == 0 { "th scope=\"row\"" } else { "td" };
                    let close = if i == 0 { "th" } else { "td" };
                    let class = cell
                        .class
                        .map(|c| format!(" class=\"{c}\""))
                        .unwrap_or_default();
                    html.push_str(&format!("<{tag}{class}>{}</{close}>", escape(&cell.text)));
                }
                html.push_str("</tr>\n");
                html
            }
        }
    }
}

fn measure(name: &str, value: Cell) -> Row {
    Row::Cells(vec![cell(name), value])
}

fn outcome_table(outcome: &Outcome) -> String {
    let raised_share = percent_of(outcome.raised_pence as f64, outcome.cap_pence as f64);
    let highest = if outcome.max_raised_seen_pence > outcome.cap_pence {
        classed(
            format!("{} (ABOVE THE CAP)", pounds(outcome.max_raised_seen_pence)),
            "bad",
        )
    } else {
        num(pounds(outcome.max_raised_seen_pence))
    };
    let accepted_class = if outcome.accepted_investments == outcome.accepted_by_core {
        "num"
    } else {
        "bad"
    };
    let rows = vec![
        measure(
            "Time to sell out (scenario)",
            num(optional_duration(
                outcome.time_to_sell_out_seconds,
                "did not sell out",
            )),
        ),
        measure(
            "Time to sell out (wall)",
            num(optional_duration(
                outcome.time_to_sell_out_wall_seconds,
                DASH,
            )),
        ),
        measure(
            "Raised of cap",
            num(format!(
                "{} of {} ({} %)",
                pounds(outcome.raised_pence),
                pounds(outcome.cap_pence),
                optional(raised_share, 1)
            )),
        ),
        measure("Highest raised seen", highest),
        measure(
            "Accepted investments (clients; core)",
            classed(
                format!(
                    "{}; core {}",
                    count(outcome.accepted_investments),
                    count(outcome.accepted_by_core)
                ),
                accepted_class,
            ),
        ),
        measure(
            "Peak accepted investments per second",
            num(count(outcome.peak_accepted_per_second)),
        ),
        measure(
            "Peak investment calls per second",
            num(count(outcome.peak_invest_calls_per_second)),
        ),
        measure("Joined", num(count(outcome.joined))),
        measure(
            "Joined before opening",
            num(count(outcome.joined_before_opening)),
        ),
        measure("Admitted", num(count(outcome.admitted))),
        measure("Invested", num(count(outcome.invested))),
        measure("No-shows", num(count(outcome.no_shows))),
        measure("Left the queue", num(count(outcome.left_queue))),
        measure(
            "Sold out before their turn",
            num(count(outcome.sold_out_before_their_turn)),
        ),
        measure(
            "Settled (failed)",
            num(format!(
                "{} ({} failed)",
                count(outcome.settled),
                count(outcome.failed_settlements)
            )),
        ),
        measure("Requests", num(count(outcome.requests))),
        measure(
            "Settlement drain (wall)",
            num(optional_duration(
                outcome.settlement_drain_wall_seconds,
                DASH,
            )),
        ),
    ];
    Table {
        id: "table-outcome",
        caption: "What happened to the round and its investors",
        headers: &["Measure", "Value"],
        rows,
    }
    .render()
}

fn latency_table(latency: &[EndpointLatency]) -> String {
    let rows = if latency.is_empty() {
        vec![Row::Note("no data".into())]
    } else {
        latency
            .iter()
            .map(|endpoint| {
                Row::Cells(vec![
                    cell(endpoint.endpoint.as_str()),
                    num(count(endpoint.count)),
                    num(number(endpoint.p50_ms, 1)),
                    num(number(endpoint.p90_ms, 1)),
                    num(number(endpoint.p99_ms, 1)),
                    num(number(endpoint.max_ms, 1)),
                ])
            })
            .collect()
    };
    Table {
        id: "table-latency",
        caption: "Latency per endpoint, as the clients measured it (wall milliseconds)",
        headers: &[
            "Endpoint", "Requests", "p50 ms", "p90 ms", "p99 ms", "max ms",
        ],
        rows,
    }
    .render()
}

fn errors_table(errors: &[ErrorCount]) -> String {
    let mut sorted: Vec<&ErrorCount> = errors.iter().collect();
    // Designed answers first (they are expected), then the biggest counts.
    sorted.sort_by(|a, b| {
        b.designed
            .cmp(&a.designed)
            .then(b.count.cmp(&a.count))
            .then(a.endpoint.cmp(&b.endpoint))
    });
    let rows = if sorted.is_empty() {
        vec![Row::Note("none".into())]
    } else {
        sorted.into_iter().map(error_row).collect()
    };
    Table {
        id: "table-errors",
        caption: "Answers other than success",
        headers: &["Endpoint", "Status", "Code", "Kind", "Count"],
        rows,
    }
    .render()
}

fn error_row(error: &ErrorCount) -> Row {
    let status = match error.status {
        0 => "no answer".to_string(),
        status => status.to_string(),
    };
    let kind = if error.designed {
        classed("designed", "designed")
    } else {
        classed("unexpected", "unexpected")
    };
    Row::Cells(vec![
        cell(error.endpoint.as_str()),
        num(status),
        cell(error.code.as_str()),
        kind,
        num(count(error.count)),
    ])
}

fn fairness_table(fairness: &Fairness) -> String {
    let chi_square = match fairness.chi_square {
        Some(statistic) => format!(
            "{} ({} df)",
            number(statistic, 2),
            count(fairness.chi_square_df)
        ),
        None => DASH.to_string(),
    };
    let inversions_reading = match fairness.fifo_inversions {
        0 => classed("first come, first served held", "held"),
        n => classed(format!("{} pairs served out of order", count(n)), "bad"),
    };
    let rows = vec![
        Row::Cells(vec![
            cell("Pre-queue drawn"),
            num(count(fairness.prequeue_drawn)),
            cell("joined before opening and drew a number"),
        ]),
        Row::Cells(vec![
            cell("Spearman ρ (arrival order vs number)"),
            num(optional(fairness.spearman, 3)),
            spearman_reading(fairness.spearman, fairness.prequeue_drawn),
        ]),
        Row::Cells(vec![
            cell("χ² (arrival quintile × number decile)"),
            num(chi_square),
            cell("independence of arrival and number"),
        ]),
        Row::Cells(vec![
            cell("p-value"),
            num(p_value(fairness.chi_square_p)),
            p_value_reading(fairness.chi_square_p),
        ]),
        Row::Cells(vec![
            cell("FIFO checked"),
            num(count(fairness.fifo_checked)),
            cell("joined after opening"),
        ]),
        Row::Cells(vec![
            cell("FIFO inversions"),
            num(count(fairness.fifo_inversions)),
            inversions_reading,
        ]),
    ];
    Table {
        id: "table-fairness",
        caption: "Fairness: the pre-queue lottery and first come, first served after opening",
        headers: &["Measure", "Value", "Reading"],
        rows,
    }
    .render()
}

fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() && p < 0.0001 => "< 0.0001".to_string(),
        other => optional(other, 4),
    }
}

/// What ρ says in plain words. Arrival rank 0 is the first to arrive and a
/// low number is served first, so a clearly positive ρ means arriving early
/// bought a better place.
fn spearman_reading(spearman: Option<f64>, drawn: u64) -> Cell {
    let Some(rho) = spearman.filter(|rho| rho.is_finite()) else {
        return cell("too few drawn to tell");
    };
    let z = rho * (drawn.saturating_sub(1) as f64).sqrt();
    if z.abs() < SPEARMAN_Z_THRESHOLD {
        classed("no sign that arriving early helped", "held")
    } else if rho > 0.0 {
        classed(
            "early arrivals drew lower numbers: arriving early helped",
            "bad",
        )
    } else {
        classed(
            "early arrivals drew higher numbers: arriving early hurt",
            "bad",
        )
    }
}

fn p_value_reading(p: Option<f64>) -> Cell {
    match p {
        Some(p) if p.is_finite() && p < LOTTERY_P_THRESHOLD => {
            classed("arrival order shows through the lottery", "bad")
        }
        Some(p) if p.is_finite() => classed("no sign that arriving early helped", "held"),
        _ => cell("too few drawn to test"),
    }
}

fn wait_estimate_table(estimate: &WaitEstimate) -> String {
    let goal = match estimate.median_error_percent {
        Some(median) if median.is_finite() && median < WAIT_ESTIMATE_GOAL_PERCENT => {
            classed("under 20 %: met", "held")
        }
        Some(median) if median.is_finite() => classed("under 20 %: missed", "bad"),
        _ => cell("under 20 %"),
    };
    let bias = estimate.median_bias_percent.filter(|b| b.is_finite());
    let bias_text = match bias {
        Some(b) if b > 0.0 => format!("+{} % (estimates ran long)", number(b, 1)),
        Some(b) if b < 0.0 => format!("{} % (estimates ran short)", number(b, 1)),
        Some(b) => format!("{} %", number(b, 1)),
        None => DASH.to_string(),
    };
    let uncertain_share = percent_of(estimate.marked_uncertain as f64, estimate.samples as f64);
    let rows = vec![
        Row::Cells(vec![
            cell("Samples"),
            num(count(estimate.samples)),
            cell(format!(
                "real waits of at least {}",
                duration(estimate.min_wait_seconds)
            )),
        ]),
        Row::Cells(vec![
            cell("Median error"),
            num(percent(estimate.median_error_percent)),
            goal,
        ]),
        Row::Cells(vec![
            cell("p90 error"),
            num(percent(estimate.p90_error_percent)),
            cell(""),
        ]),
        Row::Cells(vec![cell("Median bias"), num(bias_text), cell("")]),
        Row::Cells(vec![
            cell("Marked uncertain"),
            num(format!(
                "{} ({} %)",
                count(estimate.marked_uncertain),
                optional(uncertain_share, 1)
            )),
            cell(uncertain_reasons(estimate)),
        ]),
    ];
    Table {
        id: "table-wait-estimate",
        caption: "Wait estimate at join against the real wait",
        headers: &["Measure", "Value", "Goal"],
        rows,
    }
    .render()
}

/// "little_history 1,200 · room_full 35": why estimates were marked uncertain.
fn uncertain_reasons(estimate: &WaitEstimate) -> String {
    estimate
        .uncertain_by_reason
        .iter()
        .map(|(reason, n)| format!("{reason} {}", count(*n)))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn percent(value: Option<f64>) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(v) => format!("{} %", number(v, 1)),
        None => DASH.to_string(),
    }
}

fn forecast_table(forecast: &ForecastOutcome) -> String {
    let rows = vec![
        measure(
            "Told it would probably sell out before their turn",
            num(count(forecast.told)),
        ),
        measure("Told, and left", num(count(forecast.told_and_left))),
        measure(
            "Told, but would have got in",
            num(count(forecast.told_but_would_have_got_in)),
        ),
        measure(
            "Waited until sell-out, never told",
            num(count(forecast.waited_until_sell_out_untold)),
        ),
    ];
    Table {
        id: "table-forecast",
        caption: "Sell-out forecast: whom it told, and whether it was right",
        headers: &["Measure", "Investors"],
        rows,
    }
    .render()
}

fn invariants_section(invariants: &Invariants) -> String {
    let rows = if invariants.checks.is_empty() {
        vec![Row::Note("no checks ran".into())]
    } else {
        invariants
            .checks
            .iter()
            .map(|check| {
                let result = if !check.tested {
                    classed("not tested", "untested")
                } else if check.passed {
                    classed("held", "held")
                } else {
                    classed("BROKEN", "broken")
                };
                Row::Cells(vec![
                    cell(check.name.as_str()),
                    result,
                    cell(check.detail.as_str()),
                ])
            })
            .collect()
    };
    let table = Table {
        id: "table-invariants",
        caption: "Invariants checked at the end",
        headers: &["Check", "Result", "Detail"],
        rows,
    }
    .render();
    let reconcile = if invariants.reconcile.trim().is_empty() {
        "(reconcile printed nothing)"
    } else {
        invariants.reconcile.as_str()
    };
    format!(
        "{table}<h3>Reconcile</h3>\n<pre id=\"reconcile\">{}</pre>\n",
        escape(reconcile)
    )
}

// ---------------------------------------------------------------------------
// Charts: inline SVG, drawn in a fixed 880 × 340 box scaled by CSS.

const CHART_WIDTH: f64 = 880.0;
const CHART_HEIGHT: f64 = 340.0;
const PLOT_LEFT: f64 = 92.0;
const PLOT_RIGHT: f64 = CHART_WIDTH - 80.0;
const PLOT_TOP: f64 = 44.0;
const PLOT_BOTTOM: f64 = CHART_HEIGHT - 52.0;
const PLOT_WIDTH: f64 = PLOT_RIGHT - PLOT_LEFT;
const PLOT_HEIGHT: f64 = PLOT_BOTTOM - PLOT_TOP;

const BLUE: &str = "#1f5fa8";
const LIGHT_BLUE: &str = "#c9dcf2";
const GREEN: &str = "#4e9a3a";
const ORANGE: &str = "#d9822b";
const RED: &str = "#c0392b";
const PURPLE: &str = "#7b3fa0";
const GREY: &str = "#555";
const PERCENTILE_COLOURS: [&str; 3] = ["#9ecae1", "#4292c6", "#08519c"];

/// A linear scale over data values, widened to round tick values.
#[derive(Clone, Debug)]
struct Scale {
    min: f64,
    max: f64,
    ticks: Vec<f64>,
    /// Decimal places the tick labels need.
    decimals: usize,
}

impl Scale {
    /// A scale covering `low..=high` with about five round ticks; a
    /// degenerate or non-finite range becomes a small sensible one.
    fn covering(low: f64, high: f64) -> Scale {
        let (mut low, mut high) = if low.is_finite() && high.is_finite() && low <= high {
            (low, high)
        } else {
            (0.0, 1.0)
        };
        if high - low < 1e-9 * high.abs().max(1.0) {
            high = low + (low.abs() * 0.1).max(1.0);
        }
        let step = nice_step((high - low) / 5.0);
        low = (low / step).floor() * step;
        high = (high / step).ceil() * step;
        let steps = ((high - low) / step).round() as usize;
        let ticks = (0..=steps.min(20)).map(|i| low + i as f64 * step).collect();
        let decimals = decimals_for(step);
        Scale {
            min: low,
            max: high,
            ticks,
            decimals,
        }
    }

    /// Exactly `min..max`, no ticks (category axes).
    fn exact(min: f64, max: f64) -> Scale {
        let max = if max > min { max } else { min + 1.0 };
        Scale {
            min,
            max,
            ticks: Vec::new(),
            decimals: 0,
        }
    }

    /// Where `value` falls, 0.0 at `min` to 1.0 at `max` (clamped, so a
    /// stray value is drawn at the edge rather than outside the chart).
    fn fraction(&self, value: f64) -> f64 {
        ((value - self.min) / (self.max - self.min)).clamp(0.0, 1.0)
    }
}

/// The fewest decimal places (up to 3) that write multiples of `step`
/// exactly: 2 for 0.25, 0 for 500.
fn decimals_for(step: f64) -> usize {
    (0..3)
        .find(|&places| {
            let scaled = step * 10f64.powi(places as i32);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(3)
}

/// A round step (1, 2, 2.5 or 5 × a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalised = raw / magnitude;
    let nice = if normalised <= 1.0 {
        1.0
    } else if normalised <= 2.0 {
        2.0
    } else if normalised <= 2.5 {
        2.5
    } else if normalised <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Which vertical axis a series is drawn against.
#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

/// How tick values are written.
#[derive(Clone, Copy)]
enum TickFormat {
    Number,
    Pounds,
}

/// How a legend entry is drawn.
enum Swatch {
    Line { colour: &'static str, dashed: bool },
    Block(&'static str),
}

/// One chart being drawn: the scales and the SVG elements so far.
struct Chart {
    body: String,
    x: Scale,
    left: Scale,
    right: Scale,
}

impl Chart {
    fn new(x: Scale, left: Scale, right: Scale) -> Chart {
        Chart {
            body: String::new(),
            x,
            left,
            right,
        }
    }

    fn x_px(&self, x: f64) -> f64 {
        PLOT_LEFT + self.x.fraction(x) * PLOT_WIDTH
    }

    fn y_px(&self, side: Side, y: f64) -> f64 {
        PLOT_BOTTOM - self.scale(side).fraction(y) * PLOT_HEIGHT
    }

    fn scale(&self, side: Side) -> &Scale {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, content: &str) {
        self.body.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" font-size=\"12\" fill=\"#222\">{}</text>\n",
            escape(content)
        ));
    }

    /// Tick labels, grid lines (left axis only) and the axis title.
    fn y_axis(&mut self, side: Side, title: &str, format: TickFormat) {
        let scale = self.scale(side).clone();
        let (edge, anchor, label_x) = match side {
            Side::Left => (PLOT_LEFT, "end", PLOT_LEFT - 6.0),
            Side::Right => (PLOT_RIGHT, "start", PLOT_RIGHT + 6.0),
        };
        for &tick in &scale.ticks {
            let y = self.y_px(side, tick);
            if matches!(side, Side::Left) {
                self.body.push_str(&format!(
                    "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" stroke=\"#e3e3e3\"/>\n"
                ));
            }
            self.text(label_x, y + 4.0, anchor, &tick_label(tick, &scale, format));
        }
        self.body.push_str(&format!(
            "<line x1=\"{edge}\" y1=\"{PLOT_TOP}\" x2=\"{edge}\" y2=\"{PLOT_BOTTOM}\" stroke=\"{GREY}\"/>\n"
        ));
        let (title_x, angle) = match side {
            Side::Left => (16.0, -90),
            Side::Right => (CHART_WIDTH - 14.0, 90),
        };
        let title_y = PLOT_TOP + PLOT_HEIGHT / 2.0;
        self.body.push_str(&format!(
            "<text transform=\"translate({title_x:.1} {title_y:.1}) rotate({angle})\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222\">{}</text>\n",
            escape(title)
        ));
    }

    /// The bottom axis with its ticks (if the scale has any) and title.
    fn x_axis(&mut self, title: &str) {
        let scale = self.x.clone();
        for &tick in &scale.ticks {
            let x = self.x_px(tick);
            self.body.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{PLOT_BOTTOM}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{GREY}\"/>\n",
                PLOT_BOTTOM + 5.0
            ));
            let label = tick_label(tick, &scale, TickFormat::Number);
            self.text(x, PLOT_BOTTOM + 18.0, "middle", &label);
        }
        self.body.push_str(&format!(
            "<line x1=\"{PLOT_LEFT}\" y1=\"{PLOT_BOTTOM}\" x2=\"{PLOT_RIGHT}\" y2=\"{PLOT_BOTTOM}\" stroke=\"{GREY}\"/>\n"
        ));
        self.text(
            PLOT_LEFT + PLOT_WIDTH / 2.0,
            CHART_HEIGHT - 10.0,
            "middle",
            title,
        );
    }

    /// A data line; non-finite points are dropped.
    fn line(&mut self, side: Side, points: &[(f64, f64)], colour: &str, dashed: bool, title: &str) {
        let coordinates = self.coordinates(side, points);
        if coordinates.is_empty() {
            return;
        }
        let dash = if dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        self.body.push_str(&format!(
            "<polyline class=\"series\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}><title>{}</title></polyline>\n",
            coordinates.join(" "),
            escape(title)
        ));
    }

    /// A filled area from the x axis up to the data line.
    fn area(&mut self, side: Side, points: &[(f64, f64)], colour: &str, title: &str) {
        let coordinates = self.coordinates(side, points);
        let finite: Vec<&(f64, f64)> = points.iter().filter(|p| is_finite_point(p)).collect();
        let (Some(first), Some(last)) = (finite.first(), finite.last()) else {
            return;
        };
        let path = format!(
            "M{:.1},{PLOT_BOTTOM} L{} L{:.1},{PLOT_BOTTOM} Z",
            self.x_px(first.0),
            coordinates.join(" L"),
            self.x_px(last.0)
        );
        self.body.push_str(&format!(
            "<path class=\"series\" d=\"{path}\" fill=\"{colour}\" stroke=\"none\"><title>{}</title></path>\n",
            escape(title)
        ));
    }

    fn coordinates(&self, side: Side, points: &[(f64, f64)]) -> Vec<String> {
        points
            .iter()
            .filter(|p| is_finite_point(p))
            .map(|&(x, y)| format!("{:.1},{:.1}", self.x_px(x), self.y_px(side, y)))
            .collect()
    }

    /// A bar from the x axis to `value`, between `x0` and `x1`.
    fn bar(&mut self, side: Side, x0: f64, x1: f64, value: f64, colour: &str, title: &str) {
        if !(x0.is_finite() && x1.is_finite() && value.is_finite()) {
            return;
        }
        let left = self.x_px(x0);
        let width = (self.x_px(x1) - left).max(0.5);
        let top = self.y_px(side, value.max(self.scale(side).min));
        let height = (PLOT_BOTTOM - top).max(0.0);
        self.body.push_str(&format!(
            "<rect class=\"series\" x=\"{left:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"{colour}\"><title>{}</title></rect>\n",
            escape(title)
        ));
    }

    /// A labelled vertical marker (the opening) if `x` is on the chart.
    fn vertical_marker(&mut self, x: f64, label: &str) {
        if x < self.x.min || x > self.x.max {
            return;
        }
        let px = self.x_px(x);
        self.body.push_str(&format!(
            "<line class=\"marker\" x1=\"{px:.1}\" y1=\"{PLOT_TOP}\" x2=\"{px:.1}\" y2=\"{PLOT_BOTTOM}\" stroke=\"#222\" stroke-dasharray=\"2 3\"/>\n"
        ));
        // Above the plot, where no data line can hide it.
        self.text(px, PLOT_TOP - 6.0, "middle", label);
    }

    /// A labelled horizontal marker (the cap).
    fn horizontal_marker(&mut self, side: Side, y: f64, colour: &str, label: &str) {
        if !y.is_finite() {
            return;
        }
        let py = self.y_px(side, y);
        self.body.push_str(&format!(
            "<line class=\"marker\" x1=\"{PLOT_LEFT}\" y1=\"{py:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{py:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"8 4\"/>\n"
        ));
        self.text(PLOT_RIGHT - 4.0, py - 5.0, "end", label);
    }

    /// The legend, one row across the top.
    fn legend(&mut self, entries: &[(&str, Swatch)]) {
        let mut x = PLOT_LEFT;
        let y = 20.0;
        self.body.push_str("<g class=\"legend\">\n");
        for (label, swatch) in entries {
            match swatch {
                Swatch::Line { colour, dashed } => {
                    let dash = if *dashed {
                        " stroke-dasharray=\"6 4\""
                    } else {
                        ""
                    };
                    self.body.push_str(&format!(
                        "<line x1=\"{x:.1}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
                        x + 18.0
                    ));
                }
                Swatch::Block(colour) => self.body.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"18\" height=\"10\" fill=\"{colour}\"/>\n",
                    y - 5.0
                )),
            }
            self.text(x + 24.0, y + 4.0, "start", label);
            // Roughly the label's width at 12 px, then a gap.
            x += 24.0 + label.chars().count() as f64 * 6.6 + 18.0;
        }
        self.body.push_str("</g>\n");
    }

    fn no_data(&mut self) {
        self.body.push_str(&format!(
            "<text class=\"no-data\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"18\" fill=\"#777\">no data</text>\n",
            PLOT_LEFT + PLOT_WIDTH / 2.0,
            PLOT_TOP + PLOT_HEIGHT / 2.0
        ));
    }

    /// The finished `<svg>`, titled and described for screen readers.
    fn finish(self, id: &str, title: &str, description: &str) -> String {
        format!(
            "<svg viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" font-family=\"system-ui, sans-serif\">\n\
             <title id=\"{id}-title\">{}</title>\n<desc id=\"{id}-desc\">{}</desc>\n{}</svg>",
            escape(title),
            escape(description),
            self.body
        )
    }
}

fn is_finite_point(point: &(f64, f64)) -> bool {
    point.0.is_finite() && point.1.is_finite()
}

fn tick_label(value: f64, scale: &Scale, format: TickFormat) -> String {
    match format {
        TickFormat::Number => number(value, scale.decimals),
        TickFormat::Pounds => pounds_label(value),
    }
}

fn figure(id: &str, caption: &str, svg: String) -> String {
    format!(
        "<figure id=\"{id}\">\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        escape(caption)
    )
}

/// The lowest and highest of `values` (finite ones only).
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |range, v| match range {
            None => Some((v, v)),
            Some((low, high)) => Some((f64::min(low, v), f64::max(high, v))),
        })
}

/// The highest of `values` (0 when there are none), plus a little room so
/// the top of the data does not sit on the chart's edge.
fn highest(values: impl Iterator<Item = f64>) -> f64 {
    range(values).map_or(0.0, |(_, high)| high * 1.05)
}

/// An x scale of scenario minutes that always includes the opening.
fn minutes_scale(minutes: impl Iterator<Item = f64>) -> Scale {
    match range(minutes) {
        Some((low, high)) => Scale::covering(low.min(0.0), high.max(0.0)),
        None => Scale::covering(0.0, 1.0),
    }
}

/// People waiting, admitted and the ops rate per scenario minute.
fn queue_chart(minutes: &[Minute]) -> String {
    const ID: &str = "chart-queue";
    // Bars span their minute; points sit at its middle.
    let x = minutes_scale(
        minutes
            .iter()
            .flat_map(|m| [m.minute as f64, m.minute as f64 + 1.0]),
    );
    let left = Scale::covering(0.0, highest(minutes.iter().map(|m| m.waiting as f64)));
    let right = Scale::covering(
        0.0,
        highest(
            minutes
                .iter()
                .flat_map(|m| [m.admitted as f64, m.rate_per_minute]),
        ),
    );
    let mut chart = Chart::new(x, left, right);
    chart.legend(&[
        ("waiting (left)", Swatch::Block(LIGHT_BLUE)),
        ("admitted per minute (right)", Swatch::Block(GREEN)),
        (
            "ops rate, people/min (right)",
            Swatch::Line {
                colour: ORANGE,
                dashed: true,
            },
        ),
    ]);
    chart.y_axis(Side::Left, "people waiting", TickFormat::Number);
    chart.y_axis(Side::Right, "people per minute", TickFormat::Number);
    chart.x_axis("scenario minutes from opening");
    if minutes.is_empty() {
        chart.no_data();
    } else {
        draw_queue_series(&mut chart, minutes);
    }
    chart.vertical_marker(0.0, "opening");
    let svg = chart.finish(
        ID,
        "Queue per minute",
        "People waiting, people admitted per minute and the ops admission rate, per scenario minute.",
    );
    figure(
        ID,
        "The queue per scenario minute: most people waiting (area), people admitted (bars) and the admission rate ops set (dashed line). The dotted line marks the opening.",
        svg,
    )
}

fn draw_queue_series(chart: &mut Chart, minutes: &[Minute]) {
    let middle = |m: &Minute| m.minute as f64 + 0.5;
    let waiting: Vec<(f64, f64)> = minutes
        .iter()
        .map(|m| (middle(m), m.waiting as f64))
        .collect();
    chart.area(Side::Left, &waiting, LIGHT_BLUE, "people waiting");
    chart.line(Side::Left, &waiting, BLUE, false, "people waiting");
    for m in minutes {
        let start = m.minute as f64;
        let title = format!("minute {}: {} admitted", m.minute, count(m.admitted));
        chart.bar(
            Side::Right,
            start + 0.15,
            start + 0.85,
            m.admitted as f64,
            GREEN,
            &title,
        );
    }
    let rate: Vec<(f64, f64)> = minutes
        .iter()
        .map(|m| (middle(m), m.rate_per_minute))
        .collect();
    chart.line(
        Side::Right,
        &rate,
        ORANGE,
        true,
        "ops admission rate, people per minute",
    );
}

/// Money raised over scenario time against the cap.
fn raised_chart(timeline: &[Sample], cap_pence: i64) -> String {
    const ID: &str = "chart-raised";
    let x = minutes_scale(timeline.iter().map(|s| s.t / 60.0));
    let cap_pounds = cap_pence as f64 / 100.0;
    let top = highest(
        timeline
            .iter()
            .map(|s| s.raised_pence as f64 / 100.0)
            .chain([cap_pounds]),
    );
    let money = Scale::covering(0.0, top);
    let mut chart = Chart::new(x, money.clone(), money);
    chart.legend(&[
        (
            "raised",
            Swatch::Line {
                colour: BLUE,
                dashed: false,
            },
        ),
        (
            "cap",
            Swatch::Line {
                colour: RED,
                dashed: true,
            },
        ),
    ]);
    chart.y_axis(Side::Left, "raised (£)", TickFormat::Pounds);
    chart.x_axis("scenario minutes from opening");
    chart.horizontal_marker(
        Side::Left,
        cap_pounds,
        RED,
        &format!("cap {}", pounds(cap_pence)),
    );
    if timeline.is_empty() {
        chart.no_data();
    } else {
        let raised: Vec<(f64, f64)> = timeline
            .iter()
            .map(|s| (s.t / 60.0, s.raised_pence as f64 / 100.0))
            .collect();
        chart.line(Side::Left, &raised, BLUE, false, "raised");
    }
    chart.vertical_marker(0.0, "opening");
    let svg = chart.finish(
        ID,
        "Money raised",
        "Money raised over scenario time, against the round's cap.",
    );
    figure(
        ID,
        "Money raised over scenario time; the dashed line is the cap, which must never be passed.",
        svg,
    )
}

/// p50/p90/p99 per endpoint as grouped bars.
fn latency_chart(latency: &[EndpointLatency]) -> String {
    const ID: &str = "chart-latency";
    let x = Scale::exact(0.0, latency.len().max(1) as f64);
    let top = highest(latency.iter().flat_map(|e| [e.p50_ms, e.p90_ms, e.p99_ms]));
    let milliseconds = Scale::covering(0.0, top);
    let mut chart = Chart::new(x, milliseconds.clone(), milliseconds);
    chart.legend(&[
        ("p50", Swatch::Block(PERCENTILE_COLOURS[0])),
        ("p90", Swatch::Block(PERCENTILE_COLOURS[1])),
        ("p99", Swatch::Block(PERCENTILE_COLOURS[2])),
    ]);
    chart.y_axis(Side::Left, "milliseconds (wall)", TickFormat::Number);
    chart.x_axis("endpoint");
    if latency.is_empty() {
        chart.no_data();
    }
    for (group, endpoint) in latency.iter().enumerate() {
        draw_latency_group(&mut chart, group, endpoint);
    }
    let svg = chart.finish(
        ID,
        "Latency per endpoint",
        "Median, 90th and 99th percentile latency of each endpoint, in wall milliseconds.",
    );
    figure(
        ID,
        "Latency per endpoint as the clients measured it: p50, p90 and p99 in wall milliseconds.",
        svg,
    )
}

fn draw_latency_group(chart: &mut Chart, group: usize, endpoint: &EndpointLatency) {
    let start = group as f64;
    let bar_width = 0.8 / 3.0;
    let percentiles = [
        ("p50", endpoint.p50_ms),
        ("p90", endpoint.p90_ms),
        ("p99", endpoint.p99_ms),
    ];
    for (i, (name, value)) in percentiles.into_iter().enumerate() {
        let x0 = start + 0.1 + i as f64 * bar_width;
        let title = format!("{} {name}: {} ms", endpoint.endpoint, number(value, 1));
        chart.bar(
            Side::Left,
            x0,
            x0 + bar_width * 0.92,
            value,
            PERCENTILE_COLOURS[i],
            &title,
        );
    }
    let label_x = chart.x_px(start + 0.5);
    chart.text(label_x, PLOT_BOTTOM + 18.0, "middle", &endpoint.endpoint);
}

/// The oldest unsettled investment's age, and settlements so far.
fn settlement_chart(timeline: &[Sample]) -> String {
    const ID: &str = "chart-settlement";
    let x = minutes_scale(timeline.iter().map(|s| s.t / 60.0));
    let lag = Scale::covering(
        0.0,
        highest(timeline.iter().map(|s| s.settlement_lag_seconds)),
    );
    let settled = Scale::covering(0.0, highest(timeline.iter().map(|s| s.settled as f64)));
    let mut chart = Chart::new(x, lag, settled);
    chart.legend(&[
        (
            "settlement lag (left)",
            Swatch::Line {
                colour: PURPLE,
                dashed: false,
            },
        ),
        (
            "settled so far (right)",
            Swatch::Line {
                colour: GREEN,
                dashed: true,
            },
        ),
    ]);
    chart.y_axis(Side::Left, "lag (scenario seconds)", TickFormat::Number);
    chart.y_axis(Side::Right, "investments settled", TickFormat::Number);
    chart.x_axis("scenario minutes from opening");
    if timeline.is_empty() {
        chart.no_data();
    } else {
        let lag_points: Vec<(f64, f64)> = timeline
            .iter()
            .map(|s| (s.t / 60.0, s.settlement_lag_seconds))
            .collect();
        let settled_points: Vec<(f64, f64)> = timeline
            .iter()
            .map(|s| (s.t / 60.0, s.settled as f64))
            .collect();
        chart.line(Side::Right, &settled_points, GREEN, true, "settled so far");
        chart.line(Side::Left, &lag_points, PURPLE, false, "settlement lag");
    }
    chart.vertical_marker(0.0, "opening");
    let svg = chart.finish(
        ID,
        "Settlement",
        "Age of the oldest accepted investment not yet settled, and investments settled so far, over scenario time.",
    );
    figure(
        ID,
        "Settlement lag: how old the oldest accepted but unsettled investment was (solid), and investments settled so far (dashed).",
        svg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        Check, EndpointLatency, ErrorCount, Fairness, ForecastOutcome, Invariants, Minute, Outcome,
        Report, Sample, ScenarioSummary, Verdict, WaitEstimate,
    };
    use scraper::{ElementRef, Html, Selector};

    fn select<'a>(document: &'a Html, css: &str) -> Vec<ElementRef<'a>> {
        let selector = Selector::parse(css).expect("valid selector");
        document.select(&selector).collect()
    }

    fn text_of(element: ElementRef<'_>) -> String {
        element.text().collect()
    }

    fn sample(t: f64, waiting: u64, admitted_up_to: u64, raised_pence: i64) -> Sample {
        Sample {
            t,
            phase: if t < 0.0 { "prequeue" } else { "open" }.into(),
            waiting,
            admitted_up_to,
            active: 40,
            rate_per_minute: 600.0,
            achieved_rate_per_minute: 580.0,
            raised_pence,
            accepted: (raised_pence / 50_000) as u64,
            settled: (raised_pence / 80_000) as u64,
            failed: 0,
            settlement_lag_seconds: t.max(0.0) / 10.0,
        }
    }

    fn endpoint(name: &str, count: u64, p50_ms: f64) -> EndpointLatency {
        EndpointLatency {
            endpoint: name.into(),
            count,
            p50_ms,
            p90_ms: p50_ms * 2.0,
            p99_ms: p50_ms * 5.0,
            max_ms: p50_ms * 20.0,
        }
    }

    fn sample_report() -> Report {
        Report {
            schema_version: crate::report::SCHEMA_VERSION,
            crowdgate_version: "0.1.0".into(),
            scenario: ScenarioSummary {
                name: "oversubscribed <script>alert(1)</script> & co".into(),
                file: "rehearsals/test.toml".into(),
                file_sha256: "00".into(),
                investors: 12_000,
                compression: 30.0,
                seed: 42,
                cap_pence: 100_000_000,
                min_investment_pence: 1_000,
                max_investment_pence: 500_000,
                demand_pence: 150_000_000,
                rate_per_minute: 600.0,
                max_active: 400,
                prequeue_seconds: 1_800.0,
            },
            target: "local".into(),
            started_at: "2026-05-01T10:00:00Z".into(),
            wall_seconds: 412.25,
            verdict: Verdict {
                passed: false,
                line: "FAIL: 1 unexpected error".into(),
                problems: vec!["invest answered 500 internal 3 times".into()],
            },
            outcome: Outcome {
                time_to_sell_out_seconds: Some(1_234.5),
                time_to_sell_out_wall_seconds: Some(41.15),
                raised_pence: 100_000_000,
                cap_pence: 100_000_000,
                max_raised_seen_pence: 100_000_000,
                joined: 11_800,
                joined_before_opening: 5_000,
                admitted: 7_000,
                invested: 2_000,
                accepted_investments: 2_000,
                accepted_by_core: 2_000,
                settled: 1_990,
                failed_settlements: 10,
                no_shows: 300,
                left_queue: 150,
                sold_out_before_their_turn: 4_500,
                peak_accepted_per_second: 85,
                peak_invest_calls_per_second: 140,
                requests: 250_000,
                settlement_drain_wall_seconds: None,
            },
            timeline: vec![
                sample(-120.0, 3_000, 0, 0),
                sample(-60.0, 5_000, 0, 0),
                sample(0.0, 5_100, 10, 0),
                sample(60.0, 4_600, 610, 40_000_000),
                sample(120.0, 4_000, 1_210, 90_000_000),
                sample(180.0, 3_500, 1_800, 100_000_000),
            ],
            sample_interval_wall_ms: 250,
            minutes: vec![
                Minute {
                    minute: -2,
                    waiting: 3_000,
                    admitted: 0,
                    rate_per_minute: 600.0,
                },
                Minute {
                    minute: -1,
                    waiting: 5_000,
                    admitted: 0,
                    rate_per_minute: 600.0,
                },
                Minute {
                    minute: 0,
                    waiting: 5_100,
                    admitted: 610,
                    rate_per_minute: 600.0,
                },
                Minute {
                    minute: 1,
                    waiting: 4_600,
                    admitted: 600,
                    rate_per_minute: 900.0,
                },
            ],
            latency: vec![
                endpoint("join", 11_800, 12.5),
                endpoint("status", 200_000, 3.25),
                endpoint("pass", 7_000, 8.0),
                endpoint("invest", 2_500, 40.0),
            ],
            errors: vec![
                ErrorCount {
                    endpoint: "invest".into(),
                    status: 500,
                    code: "internal".into(),
                    designed: false,
                    count: 3,
                },
                ErrorCount {
                    endpoint: "invest".into(),
                    status: 409,
                    code: "sold_out".into(),
                    designed: true,
                    count: 480,
                },
            ],
            fairness: Fairness {
                prequeue_drawn: 5_000,
                spearman: Some(0.012),
                chi_square: Some(31.5),
                chi_square_df: 36,
                chi_square_p: Some(0.68),
                fifo_checked: 6_800,
                fifo_inversions: 0,
            },
            wait_estimate: WaitEstimate {
                samples: 6_000,
                min_wait_seconds: 60.0,
                median_error_percent: Some(12.5),
                p90_error_percent: Some(35.0),
                median_bias_percent: None,
                marked_uncertain: 120,
                uncertain_by_reason: [("little_history".to_string(), 120)].into(),
            },
            sell_out_forecast: ForecastOutcome {
                told: 4_000,
                told_and_left: 100,
                told_but_would_have_got_in: 5,
                waited_until_sell_out_untold: 20,
            },
            invariants: Invariants {
                checks: vec![
                    Check {
                        name: "raised never passed the cap".into(),
                        passed: true,
                        tested: true,
                        detail: "max £1,000,000".into(),
                    },
                    Check {
                        name: "clients' 201s equal core's accepted".into(),
                        passed: true,
                        tested: true,
                        detail: "2,000 = 2,000".into(),
                    },
                    Check {
                        name: "no unexpected errors".into(),
                        passed: false,
                        tested: true,
                        detail: "3 × invest 500".into(),
                    },
                ],
                reconcile: "ledger: 2000 accepted, 1990 settled <ok>\n".into(),
            },
        }
    }

    fn empty_report() -> Report {
        let mut report = sample_report();
        report.scenario.name = "empty".into();
        report.verdict = Verdict {
            passed: true,
            line: "PASS: nothing to see".into(),
            problems: Vec::new(),
        };
        report.timeline.clear();
        report.minutes.clear();
        report.latency.clear();
        report.errors.clear();
        report.invariants.checks.clear();
        report.invariants.reconcile.clear();
        report.fairness.spearman = None;
        report.fairness.chi_square = None;
        report.fairness.chi_square_p = None;
        report.wait_estimate.median_error_percent = None;
        report.outcome.cap_pence = 0;
        report.scenario.cap_pence = 0;
        report
    }

    /// Whether Rust's "NaN" or "inf" leaked into the page (an "inf" inside
    /// a word, like "information", does not count).
    fn shows_non_finite(html: &str) -> bool {
        html.contains("NaN")
            || html.match_indices("inf").any(|(at, _)| {
                let before = html[..at].chars().next_back();
                !before.is_some_and(char::is_alphabetic)
            })
    }

    const CHART_IDS: [&str; 4] = [
        "chart-queue",
        "chart-raised",
        "chart-latency",
        "chart-settlement",
    ];

    #[test]
    fn verdict_shows_line_class_and_problems() {
        let document = Html::parse_document(&render(&sample_report()));
        let verdict = select(&document, "p#verdict");
        assert_eq!(verdict.len(), 1);
        assert_eq!(text_of(verdict[0]), "FAIL: 1 unexpected error");
        assert_eq!(verdict[0].value().attr("class"), Some("fail"));
        assert_eq!(select(&document, "ul#problems > li").len(), 1);
        assert_eq!(select(&document, "h1").len(), 1);
    }

    #[test]
    fn a_pass_has_no_problem_list() {
        let document = Html::parse_document(&render(&empty_report()));
        let verdict = select(&document, "p#verdict");
        assert_eq!(verdict[0].value().attr("class"), Some("pass"));
        assert!(select(&document, "#problems").is_empty());
    }

    #[test]
    fn summary_reads_for_people() {
        let document = Html::parse_document(&render(&sample_report()));
        let summary = text_of(select(&document, "#summary")[0]);
        assert!(summary.contains("Target local"), "{summary}");
        assert!(summary.contains("2026-05-01T10:00:00Z"), "{summary}");
        assert!(summary.contains("12,000 investors"), "{summary}");
        assert!(summary.contains("30× time compression"), "{summary}");
        assert!(summary.contains("6 min 52 s wall"), "{summary}");
    }

    #[test]
    fn every_chart_draws_its_data() {
        let document = Html::parse_document(&render(&sample_report()));
        for id in CHART_IDS {
            let figure = select(&document, &format!("figure#{id}"));
            assert_eq!(figure.len(), 1, "{id}");
            let svg = format!("figure#{id} > svg");
            assert_eq!(select(&document, &svg).len(), 1, "{id} has an svg");
            assert_eq!(
                select(&document, &format!("{svg} > title")).len(),
                1,
                "{id} has a title"
            );
            assert_eq!(
                select(&document, &format!("figure#{id} > figcaption")).len(),
                1
            );
            let series = select(
                &document,
                &format!("{svg} polyline.series, {svg} path.series, {svg} rect.series"),
            );
            assert!(!series.is_empty(), "{id} draws data");
            assert!(
                !select(&document, &format!("{svg} g.legend text")).is_empty(),
                "{id} has a legend"
            );
            assert!(!text_of(figure[0]).contains("no data"), "{id}");
        }
    }

    #[test]
    fn charts_draw_one_bar_per_minute_and_per_percentile() {
        let document = Html::parse_document(&render(&sample_report()));
        assert_eq!(select(&document, "#chart-queue rect.series").len(), 4);
        assert_eq!(select(&document, "#chart-latency rect.series").len(), 12);
        assert_eq!(select(&document, "#chart-raised polyline.series").len(), 1);
        assert_eq!(
            select(&document, "#chart-settlement polyline.series").len(),
            2
        );
    }

    #[test]
    fn raised_axis_is_in_pounds_and_shows_the_cap() {
        let document = Html::parse_document(&render(&sample_report()));
        let text = text_of(select(&document, "#chart-raised svg")[0]);
        assert!(text.contains("£1,000,000"), "{text}");
        assert!(text.contains("cap £1,000,000"), "{text}");
        assert!(text.contains("opening"));
    }

    fn body_rows(document: &Html, id: &str) -> usize {
        assert_eq!(
            select(document, &format!("table#{id} > caption")).len(),
            1,
            "{id} caption"
        );
        assert!(
            !select(document, &format!("table#{id} > thead th")).is_empty(),
            "{id} headers"
        );
        select(document, &format!("table#{id} > tbody > tr")).len()
    }

    #[test]
    fn every_table_has_its_rows() {
        let document = Html::parse_document(&render(&sample_report()));
        let expected = [
            ("table-outcome", 17),
            ("table-latency", 4),
            ("table-errors", 2),
            ("table-fairness", 6),
            ("table-wait-estimate", 5),
            ("table-forecast", 4),
            ("table-invariants", 3),
        ];
        for (id, rows) in expected {
            assert_eq!(body_rows(&document, id), rows, "{id}");
        }
        let reconcile = text_of(select(&document, "pre#reconcile")[0]);
        assert_eq!(reconcile, "ledger: 2000 accepted, 1990 settled <ok>\n");
    }

    #[test]
    fn designed_errors_come_first_and_say_so() {
        let document = Html::parse_document(&render(&sample_report()));
        let rows = select(&document, "table#table-errors > tbody > tr");
        let first = text_of(rows[0]);
        let second = text_of(rows[1]);
        assert!(
            first.contains("409") && first.contains("designed"),
            "{first}"
        );
        assert!(
            second.contains("500") && second.contains("unexpected"),
            "{second}"
        );
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        let document = Html::parse_document(&render(&sample_report()));
        let outcome = text_of(select(&document, "table#table-outcome")[0]);
        assert!(outcome.contains("£1,000,000.00 of £1,000,000.00 (100.0 %)"));
        assert!(outcome.contains("250,000"));
        assert!(outcome.contains("20 min 35 s"));
        assert!(outcome.contains(DASH), "settlement drain is None");
        let fairness = text_of(select(&document, "table#table-fairness")[0]);
        assert!(fairness.contains("no sign that arriving early helped"));
        assert!(fairness.contains("31.50 (36 df)"));
        let latency = text_of(select(&document, "table#table-latency")[0]);
        assert!(latency.contains("200,000") && latency.contains("12.5"));
        let invariants = text_of(select(&document, "table#table-invariants")[0]);
        assert!(invariants.contains("BROKEN") && invariants.contains("held"));
    }

    #[test]
    fn nothing_external_is_referenced() {
        let html = render(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        for forbidden in ["src=", "href=", "<link", "<script", "@import", "url("] {
            assert!(!html.contains(forbidden), "found {forbidden}");
        }
        assert!(!shows_non_finite(&html));
    }

    #[test]
    fn report_text_is_escaped() {
        let html = render(&sample_report());
        assert!(!html.contains("<script>alert(1)</script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        let document = Html::parse_document(&html);
        assert!(select(&document, "script").is_empty());
        let heading = text_of(select(&document, "h1")[0]);
        assert!(heading.contains("<script>alert(1)</script> & co"));
    }

    #[test]
    fn an_empty_report_renders_with_no_data() {
        let html = render(&empty_report());
        let document = Html::parse_document(&html);
        for id in CHART_IDS {
            let figure = select(&document, &format!("figure#{id}"));
            assert!(text_of(figure[0]).contains("no data"), "{id}");
            assert!(
                select(&document, &format!("figure#{id} .series")).is_empty(),
                "{id}"
            );
        }
        assert_eq!(body_rows(&document, "table-latency"), 1);
        assert_eq!(body_rows(&document, "table-errors"), 1);
        assert!(text_of(select(&document, "table#table-errors")[0]).contains("none"));
        assert_eq!(body_rows(&document, "table-invariants"), 1);
        assert!(!shows_non_finite(&html));
    }

    #[test]
    fn odd_numbers_never_show_nan() {
        let mut report = sample_report();
        report.scenario.compression = f64::NAN;
        report.wall_seconds = f64::INFINITY;
        report.latency[0].p99_ms = f64::NAN;
        report.timeline[2].settlement_lag_seconds = f64::INFINITY;
        report.minutes[0].rate_per_minute = f64::NAN;
        report.fairness.spearman = Some(f64::NAN);
        report.wait_estimate.samples = 0;
        report.outcome.cap_pence = 0;
        let html = render(&report);
        assert!(!shows_non_finite(&html));
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(number(-1234.567, 2), "−1,234.57");
        assert_eq!(number(-0.001, 1), "0.0");
        assert_eq!(number(f64::NAN, 1), DASH);
        assert_eq!(pounds_label(1_234_567.4), "£1,234,567");
        assert_eq!(duration(42.25), "42.2 s");
        assert_eq!(duration(725.0), "12 min 05 s");
        assert_eq!(duration(7_380.0), "2 h 03 min");
        assert_eq!(percent_of(1.0, 0.0), None);
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn scales_are_round_and_never_degenerate() {
        let scale = Scale::covering(0.0, 93.0);
        assert_eq!(scale.min, 0.0);
        assert_eq!(scale.max, 100.0);
        assert_eq!(scale.ticks.len(), 6);
        let flat = Scale::covering(0.0, 0.0);
        assert!(flat.max > flat.min);
        let nan = Scale::covering(f64::NAN, 3.0);
        assert!(nan.max > nan.min);
        assert!(Scale::covering(-7.0, 12.0).ticks.contains(&0.0));
        let money = Scale::covering(0.0, 1_050_000.0);
        assert_eq!(money.max, 1_250_000.0);
        let fractional = Scale::covering(0.0, 1.2);
        assert_eq!(fractional.decimals, 2);
        assert_eq!(tick_label(0.25, &fractional, TickFormat::Number), "0.25");
    }
}
