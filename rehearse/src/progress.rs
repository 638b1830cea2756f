//! Live progress in the terminal while a rehearsal runs (indicatif): one bar
//! of investors who have finished their visit, and a line of the round's
//! figures — joined, waiting, admitted, invested, settled, raised against
//! the cap, errors by kind and the admission rate now.
//!
//! Hidden when stderr is not a terminal (CI logs get a line every few
//! seconds instead, from the caller's tracing).

use crate::driver::Counters;
use crate::watch::Figures;
use crowdgate_protocol::money::pounds;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;

/// The two lines.
pub struct Progress {
    visits: ProgressBar,
    round: ProgressBar,
}

impl Progress {
    pub fn new(investors: u64, visible: bool) -> Progress {
        let target = || {
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            }
        };
        let multi = indicatif::MultiProgress::with_draw_target(target());
        let visits = multi.add(ProgressBar::new(investors));
        visits.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:32}] {pos}/{len} visits done  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let round = multi.add(ProgressBar::new_spinner());
        round.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Progress { visits, round }
    }

    /// Redraws from the counters and the latest sample of the round.
    pub fn update(&self, counters: &Counters, figures: Option<&Figures>, compression: f64) {
        let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        self.visits.set_position(n(&counters.finished));
        self.visits.set_message(format!(
            "joined {}  waiting {}  admitted {}  invested {}  left {}  errors: {} designed, {} unexpected",
            n(&counters.joined),
            n(&counters.waiting),
            n(&counters.admitted),
            n(&counters.invested),
            n(&counters.left),
            n(&counters.designed_errors),
            n(&counters.unexpected_errors),
        ));
        if let Some(f) = figures {
            self.round.set_message(format!(
                "round {}: raised {} of {} ({:.1}%)  settled {} failed {} backlog {}  admitting {:.0}/min (achieved {:.0}/min, round time)",
                f.phase,
                pounds(f.raised_pence),
                pounds(f.cap_pence),
                if f.cap_pence > 0 {
                    100.0 * f.raised_pence as f64 / f.cap_pence as f64
                } else {
                    0.0
                },
                f.settled_count,
                f.failed_count,
                f.backlog,
                f.rate_per_minute / compression,
                f.achieved_rate_per_minute / compression,
            ));
        }
        self.round.tick();
    }

    pub fn finish(&self) {
        self.visits.finish();
        self.round.finish();
    }
}
