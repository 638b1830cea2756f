//! `crowdgate rehearse`: rehearse a whole round before launch day.
//!
//! A rehearsal drives a round through the real edge over HTTP as its
//! investors would (sign in, join, poll as `poll_after_ms` says, take a
//! pass, invest, retry a 503 with the same Idempotency-Key, leave when told
//! the round will sell out first), watches the round through core's ops API,
//! and at the end checks the books. It writes what it found as JSON and as
//! one self-contained HTML page, and gives a verdict a release can gate on.
//!
//! Time compression: a scenario is written in the round's own time (arrivals
//! over the ten minutes before opening, 1,200 people a minute, …). Run with
//! compression `c`, every duration is divided by `c` and every rate
//! multiplied by it, so a 30-minute round runs in a minute; the report
//! multiplies the wall clock back and speaks in scenario time.
//!
//! # Layout
//! - [`scenario`]: the scenario file, and the investors it describes.
//! - [`driver`]: the investors, each an HTTP client.
//! - [`rehearsal`]: one rehearsal against one target, start to books.
//! - [`watch`]: samples the round through the ops API.
//! - [`analysis`]: from what was recorded to a [`report::Report`].
//! - [`stats`]: the statistics (Spearman, χ², FIFO inversions, percentiles).
//! - [`report`]: the report's data; [`html`]: its page.
//! - [`progress`]: the live progress lines in the terminal.

pub mod analysis;
pub mod driver;
pub mod html;
pub mod progress;
pub mod rehearsal;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod watch;
