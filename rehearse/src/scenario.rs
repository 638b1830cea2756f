//! The scenario file (TOML), and the investors it describes.
//!
//! A scenario is written in the round's own time: how many investors, what
//! they invest, when they arrive relative to opening, how many never come
//! back for their turn, how many cannot pay, how clients behave. Flags
//! override its size, compression and seed ([`Overrides`]). The investors
//! are drawn from it with a seeded generator ([`Scenario::investors`]), so
//! the same scenario and seed rehearse the same people.

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The shortest batch interval worth asking for: core's admission
/// controller offers to advance every 100 ms.
pub const MIN_BATCH_INTERVAL_MS: u64 = 100;

/// The shortest claim window worth asking for (wall seconds). Clients learn
/// they are admitted on their next poll; the edge never asks for polls more
/// often than once a second, and at opening the whole pre-queue polls at
/// once, so a busy machine answers the front of the queue seconds late. A
/// window compressed to a second or two lapses before they can claim, and
/// admission hands their places to the next numbers faster than their
/// retries come (measured: nobody invested for the first 20 s after
/// opening). The real round, with a minute's window, never sees that.
pub const MIN_CLAIM_WINDOW_SECONDS: u64 = 15;

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown at the top of the report.
    pub name: String,
    pub round: RoundTerms,
    pub admission: Admission,
    pub investors: Investors,
    #[serde(default)]
    pub clients: Clients,
    #[serde(default)]
    pub rehearsal: Rehearsal,
}

/// The round's terms: the scenario's (a local rehearsal runs a round with
/// these), or a deployment's as the rehearsal finds them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundTerms {
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
}

/// Admission as ops set it at opening, in the round's own time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    pub rate_per_minute: u64,
    pub batch_interval_ms: u64,
    pub max_active: u64,
    pub pass_ttl_seconds: u64,
    pub claim_window_seconds: u64,
}

/// Who the investors are and how they behave.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Investors {
    pub count: u64,
    /// Half of investors want less than this (pence).
    pub amount_median_pence: i64,
    /// Nine in ten want less than this: with the median it sets the skew
    /// (amounts are log-normal, cut to the round's minimum and maximum and
    /// rounded down to whole shares).
    pub amount_p90_pence: i64,
    /// Share who arrive before opening (they enter the pre-queue lottery).
    pub before_opening: f64,
    /// The first arrival is this long before opening; arrivals thicken
    /// towards the opening.
    pub before_opening_seconds: f64,
    /// After opening, arrivals thin out: the mean time from opening.
    pub after_opening_mean_seconds: f64,
    /// Share who join but never come back for their turn.
    pub no_show: f64,
    /// Share whose account holds less than they invest (their settlement
    /// fails and releases the amount under the cap).
    pub insufficient_funds: f64,
    /// Share who leave the queue when told the round will probably sell
    /// out before their turn.
    pub leave_when_told: f64,
    /// From taking the pass to sending the investment (filling in the
    /// form), seconds.
    #[serde(default = "default_think_seconds")]
    pub think_seconds: f64,
}

fn default_think_seconds() -> f64 {
    20.0
}

/// How the client apps behave. Wall-clock times: these are the clients'.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clients {
    /// After a 503 without `Retry-After` (or a 429), try again after this.
    pub retry_after_ms: u64,
    /// Stop retrying one request after this long.
    pub give_up_after_seconds: u64,
    /// Poll status no sooner than `poll_after_ms` says, and no more often
    /// than this. 0: exactly as told. One machine cannot poll as tens of
    /// thousands of browsers do at many times their speed, so a large
    /// rehearsal sets a floor and the report says so.
    pub min_poll_interval_ms: u64,
    /// Requests in flight at once, across all investors (their HTTP
    /// connections).
    pub connections: usize,
    /// A request without an answer after this long is a failure.
    pub request_timeout_seconds: u64,
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            retry_after_ms: 500,
            give_up_after_seconds: 60,
            min_poll_interval_ms: 0,
            connections: 256,
            request_timeout_seconds: 10,
        }
    }
}

/// How the rehearsal runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rehearsal {
    /// Scenario seconds per wall second.
    pub compression: f64,
    /// Seeds who the investors are (amounts, arrivals, who no-shows).
    pub seed: u64,
    /// After the round is over, wait this long (wall) for every accepted
    /// investment to settle before calling settlement broken.
    pub settle_timeout_seconds: u64,
    /// Give up on a round that has not finished after this long (wall).
    pub timeout_seconds: u64,
}

impl Default for Rehearsal {
    fn default() -> Self {
        Rehearsal {
            compression: 1.0,
            seed: 1,
            settle_timeout_seconds: 30,
            timeout_seconds: 600,
        }
    }
}

/// What flags may change.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub investors: Option<u64>,
    pub compression: Option<f64>,
    pub seed: Option<u64>,
    /// When `investors` changes the size, scale the round with it — the
    /// cap, the admission rate and `max_active` — so a small rehearsal has
    /// the full one's shape: as oversubscribed, its queue as long in time.
    pub scale_round: bool,
}

/// One investor as the scenario draws them.
#[derive(Debug, Clone, PartialEq)]
pub struct InvestorPlan {
    /// The investor id (`rehearsal-<run>-00042`): the identity token's
    /// subject and the account settlement debits.
    pub id: String,
    /// Arrival, scenario seconds from opening (negative: before it).
    pub arrival_seconds: f64,
    pub amount_pence: i64,
    /// What their account holds.
    pub balance_pence: i64,
    pub no_show: bool,
    pub leaves_when_told: bool,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scenario {}", path.display()))?;
        let scenario: Scenario = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid scenario", path.display()))?;
        scenario
            .check()
            .with_context(|| format!("{}", path.display()))?;
        Ok(scenario)
    }

    /// The scenario with the flags' overrides applied (and checked again).
    /// A new size is said in the name (the report's title), so a small
    /// rehearsal of a large round is never titled as the large one.
    pub fn with(mut self, overrides: &Overrides) -> anyhow::Result<Scenario> {
        if let Some(count) = overrides.investors {
            if count != self.investors.count {
                let round = if overrides.scale_round {
                    "the round scaled to them"
                } else {
                    "the round as written"
                };
                self.name = format!(
                    "{} — rehearsed with {} investors, {round}",
                    self.name,
                    crowdgate_protocol::money::grouped(count as i64)
                );
            }
            if overrides.scale_round && self.investors.count > 0 {
                let scale = count as f64 / self.investors.count as f64;
                let cap = (self.round.cap_pence as f64 * scale) as i64;
                self.round.cap_pence = whole_shares(cap, self.round.share_price_pence)
                    .max(self.round.max_investment_pence);
                let rate = self.admission.rate_per_minute as f64 * scale;
                self.admission.rate_per_minute = (rate.round() as u64).max(1);
                let active = self.admission.max_active as f64 * scale;
                self.admission.max_active = (active.ceil() as u64).max(1);
            }
            self.investors.count = count;
        }
        if let Some(compression) = overrides.compression {
            self.rehearsal.compression = compression;
        }
        if let Some(seed) = overrides.seed {
            self.rehearsal.seed = seed;
        }
        self.check()?;
        Ok(self)
    }

    /// Every value in range, each refusal naming its field.
    pub fn check(&self) -> anyhow::Result<()> {
        let r = &self.round;
        let i = &self.investors;
        if r.cap_pence <= 0 {
            bail!("round.cap_pence must be above 0");
        }
        if r.cap_pence < r.min_investment_pence {
            bail!("round.cap_pence must be at least min_investment_pence (nobody could invest)");
        }
        if r.share_price_pence <= 0 {
            bail!("round.share_price_pence must be above 0");
        }
        if r.min_investment_pence <= 0 || r.min_investment_pence > r.max_investment_pence {
            bail!("round.min_investment_pence must be above 0 and at most max_investment_pence");
        }
        if self.admission.rate_per_minute == 0 {
            bail!("admission.rate_per_minute must be above 0 (nobody would be admitted)");
        }
        if self.admission.max_active == 0 {
            bail!("admission.max_active must be above 0");
        }
        if i.count == 0 || i.count > 1_000_000 {
            bail!(
                "investors.count (--investors) must be from 1 to 1,000,000, not {}",
                i.count
            );
        }
        if i.amount_median_pence <= 0 || i.amount_p90_pence < i.amount_median_pence {
            bail!("investors.amount_p90_pence must be at least amount_median_pence (> 0)");
        }
        for (name, share) in [
            ("investors.before_opening", i.before_opening),
            ("investors.no_show", i.no_show),
            ("investors.insufficient_funds", i.insufficient_funds),
            ("investors.leave_when_told", i.leave_when_told),
        ] {
            if !(0.0..=1.0).contains(&share) {
                bail!("{name} must be a share from 0 to 1, not {share}");
            }
        }
        for (name, seconds) in [
            ("investors.before_opening_seconds", i.before_opening_seconds),
            (
                "investors.after_opening_mean_seconds",
                i.after_opening_mean_seconds,
            ),
            ("investors.think_seconds", i.think_seconds),
        ] {
            if !(seconds.is_finite() && seconds >= 0.0) {
                bail!("{name} must be 0 or more seconds");
            }
        }
        let c = self.rehearsal.compression;
        if !(c.is_finite() && (1.0..=1000.0).contains(&c)) {
            bail!("rehearsal.compression (--compression) must be from 1 to 1000, not {c}");
        }
        if self.clients.connections == 0 {
            bail!("clients.connections must be above 0");
        }
        Ok(())
    }

    /// The compression factor.
    pub fn compression(&self) -> f64 {
        self.rehearsal.compression
    }

    /// A scenario duration as wall time.
    pub fn wall(&self, scenario_seconds: f64) -> Duration {
        Duration::from_secs_f64((scenario_seconds / self.compression()).max(0.0))
    }

    /// Admission as the compressed round runs it: rates times the
    /// compression, durations divided by it (a batch interval no shorter
    /// than core's tick; a claim window of at least
    /// [`MIN_CLAIM_WINDOW_SECONDS`]).
    pub fn compressed_admission(&self) -> Admission {
        let c = self.compression();
        let a = &self.admission;
        let rate_per_minute = (a.rate_per_minute as f64 * c).round() as u64;
        // Never a batch interval that admits under one person a batch: core
        // admits at least one, which would run faster than the rate.
        let batch_interval_ms = ((a.batch_interval_ms as f64 / c).round() as u64)
            .max(MIN_BATCH_INTERVAL_MS)
            .max(60_000u64.div_ceil(rate_per_minute.max(1)));
        Admission {
            rate_per_minute,
            batch_interval_ms,
            max_active: a.max_active,
            pass_ttl_seconds: ((a.pass_ttl_seconds as f64 / c).ceil() as u64).max(5),
            claim_window_seconds: ((a.claim_window_seconds as f64 / c).ceil() as u64)
                .max(MIN_CLAIM_WINDOW_SECONDS),
        }
    }

    /// The investors, drawn with the scenario's seed: the same scenario and
    /// seed give the same people (amounts, arrivals, behaviour); `run` goes
    /// into their ids, so each run's investors are new to the round.
    pub fn investors(&self, run: &str) -> Vec<InvestorPlan> {
        let i = &self.investors;
        let r = &self.round;
        let mut rng = StdRng::seed_from_u64(self.rehearsal.seed);
        // Log-normal: ln(amount) ~ N(ln median, sigma), sigma from the p90.
        let mu = (i.amount_median_pence as f64).ln();
        let sigma =
            ((i.amount_p90_pence as f64) / (i.amount_median_pence as f64)).ln() / 1.281_551_6;
        (0..i.count)
            .map(|n| {
                let raw = (mu + sigma * standard_normal(&mut rng)).exp();
                let amount = whole_shares(
                    (raw as i64).clamp(r.min_investment_pence, r.max_investment_pence),
                    r.share_price_pence,
                )
                .max(r.min_investment_pence);
                let arrival_seconds = if rng.random_bool(i.before_opening) {
                    // Density rising linearly towards opening.
                    -i.before_opening_seconds * (1.0 - rng.random::<f64>().sqrt())
                } else {
                    -i.after_opening_mean_seconds * (1.0 - rng.random::<f64>()).ln()
                };
                let cannot_pay = rng.random_bool(i.insufficient_funds);
                InvestorPlan {
                    id: format!("rehearsal-{run}-{n:05}"),
                    arrival_seconds,
                    amount_pence: amount,
                    // Enough for anything they might invest, or a pound too
                    // little for their amount.
                    balance_pence: if cannot_pay {
                        (amount - 100).max(0)
                    } else {
                        r.max_investment_pence * 2
                    },
                    no_show: rng.random_bool(i.no_show),
                    leaves_when_told: rng.random_bool(i.leave_when_told),
                }
            })
            .collect()
    }
}

/// `amount` rounded down to whole shares.
fn whole_shares(amount: i64, share_price: i64) -> i64 {
    amount - amount % share_price
}

/// One draw from N(0, 1) (Box–Muller).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rehearsals/reference-round.toml");
        Scenario::load(&path).expect("the shipped scenario loads")
    }

    #[test]
    fn every_shipped_scenario_loads_and_is_oversubscribed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rehearsals");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let scenario =
                    Scenario::load(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                let investors = scenario.investors("test");
                let demand: i64 = investors.iter().map(|i| i.amount_pence).sum();
                assert!(demand > scenario.round.cap_pence, "{}", path.display());
                loaded += 1;
            }
        }
        assert!(loaded >= 2, "the reference round and the 100,000 crowd");
    }

    #[test]
    fn the_reference_round_is_oversubscribed_with_a_skew() {
        let scenario = reference();
        let investors = scenario.investors("test");
        assert_eq!(investors.len() as u64, scenario.investors.count);
        let demand: i64 = investors.iter().map(|i| i.amount_pence).sum();
        assert!(
            demand > scenario.round.cap_pence * 3 / 2,
            "oversubscribed: demand {demand} vs cap {}",
            scenario.round.cap_pence
        );
        let mut amounts: Vec<i64> = investors.iter().map(|i| i.amount_pence).collect();
        amounts.sort();
        let median = amounts[amounts.len() / 2];
        let mean = demand / amounts.len() as i64;
        assert!(mean > median, "right-skewed: mean {mean} > median {median}");
        assert!(amounts[0] >= scenario.round.min_investment_pence);
        assert!(*amounts.last().unwrap() <= scenario.round.max_investment_pence);
        assert!(
            amounts
                .iter()
                .all(|a| a % scenario.round.share_price_pence == 0)
        );
        let before = investors.iter().filter(|i| i.arrival_seconds < 0.0).count() as f64;
        let share = before / investors.len() as f64;
        assert!(
            (share - scenario.investors.before_opening).abs() < 0.02,
            "{share}"
        );
        let cannot_pay = investors
            .iter()
            .filter(|i| i.balance_pence < i.amount_pence)
            .count();
        assert!(cannot_pay > 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_people() {
        let scenario = reference()
            .with(&Overrides {
                investors: Some(500),
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(scenario.investors("test"), scenario.investors("test"));
        let other = scenario
            .clone()
            .with(&Overrides {
                seed: Some(99),
                ..Overrides::default()
            })
            .unwrap();
        assert_ne!(scenario.investors("test"), other.investors("test"));
    }

    #[test]
    fn a_smaller_rehearsal_keeps_the_shape() {
        let full = reference();
        let small = full
            .clone()
            .with(&Overrides {
                investors: Some(full.investors.count / 100),
                scale_round: true,
                ..Overrides::default()
            })
            .unwrap();
        let ratio = |s: &Scenario| {
            s.investors("test")
                .iter()
                .map(|i| i.amount_pence)
                .sum::<i64>() as f64
                / s.round.cap_pence as f64
        };
        assert!((ratio(&full) / ratio(&small) - 1.0).abs() < 0.2);
        // Its title says what was rehearsed.
        assert_eq!(
            small.name,
            "Reference round: 36,000 investors, oversubscribed — rehearsed with 360 investors, the round scaled to them"
        );
        // The queue takes as long to drain.
        let drain = |s: &Scenario| s.investors.count as f64 / s.admission.rate_per_minute as f64;
        assert!((drain(&full) / drain(&small) - 1.0).abs() < 0.05);
    }

    #[test]
    fn a_slow_rate_gets_batches_of_at_least_one() {
        let mut scenario = reference();
        scenario.admission.rate_per_minute = 10;
        scenario.rehearsal.compression = 6.0;
        let a = scenario.compressed_admission();
        assert_eq!(a.rate_per_minute, 60);
        assert!(
            a.rate_per_minute * a.batch_interval_ms / 60_000 >= 1,
            "{a:?}"
        );
    }

    #[test]
    fn compression_scales_rates_up_and_durations_down() {
        let mut scenario = reference();
        scenario.admission.rate_per_minute = 600;
        scenario.admission.batch_interval_ms = 1_000;
        scenario.admission.claim_window_seconds = 60;
        scenario.rehearsal.compression = 30.0;
        let a = scenario.compressed_admission();
        assert_eq!(a.rate_per_minute, 18_000);
        assert_eq!(a.batch_interval_ms, MIN_BATCH_INTERVAL_MS);
        assert_eq!(a.claim_window_seconds, MIN_CLAIM_WINDOW_SECONDS);
        assert_eq!(scenario.wall(60.0), Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut scenario = reference();
        scenario.investors.no_show = 1.5;
        assert!(format!("{}", scenario.check().unwrap_err()).contains("investors.no_show"));
        let err = reference()
            .with(&Overrides {
                compression: Some(0.5),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("rehearsal.compression"), "{err}");
        let bad = toml::from_str::<Scenario>("name = \"x\"\nsurprise = 1").unwrap_err();
        assert!(bad.to_string().contains("surprise"), "{bad}");
    }
}
