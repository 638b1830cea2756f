//! Live progress in the terminal while a rehearsal runs (indicatif): a bar
//! of investors who have finished their visit, and lines of the round's
//! figures — joined, waiting, admitted, invested, settled, raised against
//! the cap, errors by kind and the admission rate now.
//!
//! Hidden when stderr is not a terminal (CI logs get a line every few
//! seconds instead, from the caller's tracing).

use crate::driver::Counters;
use crate::watch::Figures;
use crowdgate_protocol::money::{grouped, pounds};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;

/// The lines: visits done (a bar), the crowd, errors and admission, the
/// round. Each short enough for an 80–100 column terminal.
pub struct Progress {
    visits: ProgressBar,
    crowd: ProgressBar,
    flow: ProgressBar,
    round: ProgressBar,
}

impl Progress {
    pub fn new(investors: u64, visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = indicatif::MultiProgress::with_draw_target(target);
        let visits = multi.add(ProgressBar::new(investors));
        visits.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} visits done")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let line = || {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        };
        Progress {
            visits,
            crowd: line(),
            flow: line(),
            round: line(),
        }
    }

    /// Redraws from the counters and the latest sample of the round.
    pub fn update(&self, counters: &Counters, figures: Option<&Figures>, compression: f64) {
        let n = |c: &std::sync::atomic::AtomicU64| grouped(c.load(Ordering::Relaxed) as i64);
        self.visits
            .set_position(counters.finished.load(Ordering::Relaxed));
        self.crowd.set_message(format!(
            "joined {} · waiting {} · admitted {} · invested {} · left {}",
            n(&counters.joined),
            n(&counters.waiting),
            n(&counters.admitted),
            n(&counters.invested),
            n(&counters.left),
        ));
        let admission = figures.map_or(String::new(), |f| {
            format!(
                " · admitting {}/min (achieved {}/min, round time)",
                grouped((f.rate_per_minute / compression).round() as i64),
                grouped((f.achieved_rate_per_minute / compression).round() as i64),
            )
        });
        self.flow.set_message(format!(
            "errors {} designed, {} unexpected{admission}",
            n(&counters.designed_errors),
            n(&counters.unexpected_errors),
        ));
        if let Some(f) = figures {
            let share = if f.cap_pence > 0 {
                100.0 * f.raised_pence as f64 / f.cap_pence as f64
            } else {
                0.0
            };
            self.round.set_message(format!(
                "round {} · raised {} of {} ({share:.1}%) · settled {} · failed {} · backlog {}",
                f.phase,
                pounds(f.raised_pence),
                pounds(f.cap_pence),
                grouped(f.settled_count as i64),
                grouped(f.failed_count as i64),
                grouped(f.backlog as i64),
            ));
        }
    }

    pub fn finish(&self) {
        for bar in [&self.visits, &self.crowd, &self.flow, &self.round] {
            bar.finish();
        }
    }
}
