//! One rehearsal against one target: check it is safe to use, open the
//! investors' accounts, schedule the opening, let the crowd in, watch the
//! round until it is over, wait for settlement, check the books, and hand
//! everything recorded to [`crate::analysis`].

use crate::analysis::{self, Recorded};
use crate::driver::{Crowd, InvestorRecord, Platform, Recorder};
use crate::progress::Progress;
use crate::report::Report;
use crate::scenario::{InvestorPlan, RoundTerms, Scenario};
use crate::watch::{Figures, OpsClient, SAMPLE_INTERVAL};
use anyhow::{Context, bail};
use crowdgate_settlement::accounts::{Account, ImportError};
use crowdgate_store::Redis;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Semaphore, watch};

/// What a rehearsal runs against.
pub struct Target {
    /// `local`, or the edge URL, for the report.
    pub label: String,
    /// The investor-facing edge.
    pub edge_url: String,
    pub ops: OpsClient,
    pub round: String,
    /// The platform whose identity tokens the edge trusts.
    pub platform: Platform,
    /// The round's Redis: the investors' accounts are opened in it and the
    /// books are checked in it at the end.
    pub redis: Redis,
}

/// How to run it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Draw live progress on the terminal.
    pub progress: bool,
    /// Run even though the round already holds people or investments (or,
    /// against a deployment, is scheduled: the rehearsal moves its opening).
    pub i_know: bool,
    /// The target is a deployment, not a system the rehearsal started.
    pub deployment: bool,
    /// The scenario file as given and the SHA-256 of its bytes, for the
    /// report's record of what was rehearsed.
    pub scenario_file: (String, String),
}

/// Samples failing in a row (a quarter second apart) before the rehearsal
/// gives up on core's ops API rather than wait for ever.
const MAX_FAILED_SAMPLES: u32 = 40;

/// A round is over this long after nothing more can change (sold out and
/// settled, or everyone's visit ended).
const STILL_FOR: Duration = Duration::from_secs(2);
/// How long before the first arrival the opening is scheduled from now
/// (the opening itself comes `before_opening_seconds` of scenario later).
const LEAD: Duration = Duration::from_secs(2);

/// Runs the rehearsal; the report says whether the round held.
pub async fn rehearse(
    scenario: &Scenario,
    target: &Target,
    options: &Options,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let recorder = Arc::new(Recorder::new(started));
    let before = target.ops.figures(started).await?;
    refuse_a_live_round(&before, &target.round, options)?;
    let terms = terms_of(&before, scenario);
    // Each run's investors are its own (a re-run with --i-know must not
    // find the last run's places, limits and accounts).
    let run_id = format!("{:08x}", rand::random::<u32>());
    let plans = fit_to_round(scenario.investors(&run_id), &terms);
    if !matches!(before.phase.as_str(), "scheduled" | "open") {
        bail!(
            "round {:?} is {}: a rehearsal needs a scheduled or open round",
            target.round,
            before.phase
        );
    }
    open_accounts(&target.redis, &plans).await?;

    // The opening: scheduled so the first arrival comes LEAD from now, or
    // now if the round is already open (then nobody arrives before it).
    let (opening, prequeue) = match before.phase.as_str() {
        "scheduled" => {
            let opening =
                Instant::now() + LEAD + scenario.wall(scenario.investors.before_opening_seconds);
            let opens_at = SystemTime::now() + opening.duration_since(Instant::now());
            target
                .ops
                .open(Some(
                    &humantime::format_rfc3339_millis(opens_at).to_string(),
                ))
                .await
                .context("scheduling the rehearsal's opening")?;
            (opening, true)
        }
        _ => (Instant::now(), false),
    };
    if !prequeue {
        tracing::warn!(
            "the round is already open: every investor arrives after opening, so the pre-queue lottery is not rehearsed"
        );
    }

    let (over_tx, over_rx) = watch::channel(false);
    let crowd = Arc::new(Crowd {
        http: Crowd::http_client(&scenario.clients)?,
        edge_url: target.edge_url.trim_end_matches('/').to_string(),
        platform: target.platform.clone(),
        clients: scenario.clients.clone(),
        compression: scenario.compression(),
        think_seconds: scenario.investors.think_seconds,
        share_price_pence: terms.share_price_pence,
        min_investment_pence: terms.min_investment_pence,
        run_id,
        in_flight: Semaphore::new(scenario.clients.connections),
        recorder: recorder.clone(),
        over: over_rx,
    });
    let mut visits = tokio::task::JoinSet::new();
    for (index, plan) in plans.iter().cloned().enumerate() {
        let arrival = scenario.wall(plan.arrival_seconds.abs());
        let arrive_at = if plan.arrival_seconds < 0.0 && prequeue {
            opening.checked_sub(arrival).unwrap_or(opening)
        } else {
            opening
                + if prequeue || plan.arrival_seconds >= 0.0 {
                    arrival
                } else {
                    Duration::ZERO
                }
        };
        visits.spawn(crowd.clone().visit(index, plan, arrive_at));
    }

    // Watch until the round is over.
    let progress = Progress::new(plans.len() as u64, options.progress);
    let mut samples: Vec<Figures> = vec![];
    let mut problems: Vec<String> = vec![];
    let deadline = started + Duration::from_secs(scenario.rehearsal.timeout_seconds);
    // Since when (raised, settled + failed) last changed.
    let mut unchanged_since: (Instant, i64, u64) = (Instant::now(), 0, 0);
    let settle_timeout = Duration::from_secs(scenario.rehearsal.settle_timeout_seconds);
    let mut last_log = Instant::now();
    let mut failed_samples = 0;
    loop {
        tokio::time::sleep(SAMPLE_INTERVAL).await;
        if Instant::now() > deadline {
            problems.push(format!(
                "the round did not finish within {} s (rehearsal.timeout_seconds)",
                scenario.rehearsal.timeout_seconds
            ));
            break;
        }
        let figures = match target.ops.figures(started).await {
            Ok(mut figures) => {
                failed_samples = 0;
                let waiting = &recorder.counters.waiting;
                figures.clients_waiting = Some(waiting.load(std::sync::atomic::Ordering::Relaxed));
                figures
            }
            Err(err) => {
                failed_samples += 1;
                tracing::warn!("sampling the round: {err:#}");
                if failed_samples >= MAX_FAILED_SAMPLES {
                    problems.push(format!(
                        "core's ops API stopped answering ({failed_samples} samples in a row failed; the last: {err:#})"
                    ));
                    break;
                }
                continue;
            }
        };
        progress.update(&recorder.counters, Some(&figures), scenario.compression());
        if !options.progress && last_log.elapsed() > Duration::from_secs(5) {
            last_log = Instant::now();
            let c = &recorder.counters;
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                phase = %figures.phase,
                raised = %crowdgate_protocol::money::pounds(figures.raised_pence),
                visits_done = n(&c.finished),
                waiting = n(&c.waiting),
                invested = n(&c.invested),
                settled = figures.settled_count,
                designed_errors = n(&c.designed_errors),
                unexpected_errors = n(&c.unexpected_errors),
                "rehearsing"
            );
        }
        let all_done = visits.is_empty()
            || recorder
                .counters
                .finished
                .load(std::sync::atomic::Ordering::Relaxed) as usize
                == plans.len();
        let moved = (
            figures.raised_pence,
            figures.settled_count + figures.failed_count,
        );
        if (unchanged_since.1, unchanged_since.2) != moved {
            unchanged_since = (Instant::now(), moved.0, moved.1);
        }
        // Sold out is over once settlement has caught up (a failed
        // settlement would release money and reopen the round), or has
        // stalled: then waiting longer changes nothing, and the settlement
        // check below says what is wrong.
        let still_for = unchanged_since.0.elapsed();
        let sold_out = figures.sold_out(terms.min_investment_pence);
        let over = sold_out
            && ((figures.settled_up() && still_for >= STILL_FOR) || still_for >= settle_timeout);
        samples.push(figures);
        if all_done || over {
            break;
        }
    }
    let _ = over_tx.send(true);
    let mut records: Vec<InvestorRecord> = Vec::with_capacity(plans.len());
    while let Some(joined) = visits.join_next().await {
        match joined {
            Ok(record) => records.push(record),
            Err(err) => problems.push(format!("an investor's task failed: {err}")),
        }
    }
    records.sort_by_key(|r| r.index);

    // Settlement: everything accepted should settle (or fail) soon after.
    let settle_deadline =
        Instant::now() + Duration::from_secs(scenario.rehearsal.settle_timeout_seconds);
    loop {
        let figures = match target.ops.figures(started).await {
            Ok(mut figures) => {
                figures.clients_waiting = Some(0); // every visit has ended
                Some(figures)
            }
            Err(err) => {
                tracing::warn!("sampling the round: {err:#}");
                None
            }
        };
        progress.update(&recorder.counters, figures.as_ref(), scenario.compression());
        let backlog = figures.as_ref().map(|f| f.backlog);
        let drained = figures.as_ref().is_some_and(Figures::settled_up);
        samples.extend(figures);
        if drained {
            break;
        }
        if Instant::now() > settle_deadline {
            let backlog = backlog.map_or("an unknown number of".to_string(), |b| b.to_string());
            problems.push(format!(
                "settlement did not finish: {backlog} accepted investment(s) still unsettled {} s (wall clock) after the round ended (is a settlement worker running?)",
                scenario.rehearsal.settle_timeout_seconds
            ));
            break;
        }
        tokio::time::sleep(SAMPLE_INTERVAL).await;
    }
    progress.finish();

    let mut redis = target.redis.clone();
    let still = crowdgate_settlement::reconcile::Options {
        wait_quiet: Duration::from_secs(5),
    };
    let books = crowdgate_settlement::reconcile::reconcile(&mut redis, &target.round, &still)
        .await
        .context("checking the books (reconcile)")?;

    let opening_ms = opening.saturating_duration_since(started).as_millis() as u64;
    Ok(analysis::build(Recorded {
        scenario,
        scenario_file: options.scenario_file.clone(),
        target: &target.label,
        started_at,
        wall_seconds: started.elapsed().as_secs_f64(),
        opening_ms,
        prequeue_rehearsed: prequeue,
        plans: &plans,
        records: &records,
        samples: &samples,
        recorder: &recorder,
        terms: &terms,
        accepted_before: before.accepted_count,
        books: &books,
        problems,
    }))
}

/// The round's terms as the target runs them: the cap it reports, and its
/// limits from its stored fields (a local round has the scenario's).
fn terms_of(figures: &Figures, scenario: &Scenario) -> RoundTerms {
    let field = |name: &str, default: i64| figures.raw_field(name).unwrap_or(default);
    let r = &scenario.round;
    RoundTerms {
        cap_pence: figures.cap_pence,
        min_investment_pence: field("min_investment_pence", r.min_investment_pence),
        max_investment_pence: field("max_investment_pence", r.max_investment_pence),
        share_price_pence: field("share_price_pence", r.share_price_pence),
    }
}

/// Never rehearse on a live round by accident: not one holding people or
/// investments, and not (against a deployment) one whose opening time the
/// rehearsal would move.
fn refuse_a_live_round(figures: &Figures, round: &str, options: &Options) -> anyhow::Result<()> {
    if options.i_know {
        return Ok(());
    }
    if options.deployment && figures.phase == "scheduled" && figures.opens_at_ms > 0 {
        let opens_at = std::time::UNIX_EPOCH + Duration::from_millis(figures.opens_at_ms);
        bail!(
            "round {round:?} is scheduled to open at {}: a rehearsal would move its opening to now and fill it \
             with made-up investors. Rehearse against a round made for it, or pass --i-know if this round is a throwaway",
            humantime::format_rfc3339_seconds(opens_at)
        );
    }
    let holds = figures.accepted_count > 0 || figures.issued > 0 || figures.prequeue > 0;
    if holds {
        bail!(
            "round {round:?} already holds {} investment(s) (raised {}) and {} queue place(s): a rehearsal would add \
             thousands of made-up investors to it. Rehearse against a fresh round, or pass --i-know if this round \
             is a throwaway",
            figures.accepted_count,
            crowdgate_protocol::money::pounds(figures.raised_pence),
            figures.issued + figures.prequeue,
        );
    }
    Ok(())
}

/// Amounts within the round's limits, in whole shares.
fn fit_to_round(plans: Vec<InvestorPlan>, terms: &RoundTerms) -> Vec<InvestorPlan> {
    plans
        .into_iter()
        .map(|mut plan| {
            let amount = plan
                .amount_pence
                .clamp(terms.min_investment_pence, terms.max_investment_pence);
            let whole = amount - amount % terms.share_price_pence;
            plan.amount_pence = if whole < terms.min_investment_pence {
                whole + terms.share_price_pence
            } else {
                whole
            };
            plan
        })
        .collect()
}

/// Opens each investor's account (a re-run finds them open and keeps them).
async fn open_accounts(redis: &Redis, plans: &[InvestorPlan]) -> anyhow::Result<()> {
    let accounts: Vec<Account> = plans
        .iter()
        .map(|p| Account {
            investor_id: p.id.clone(),
            balance_pence: p.balance_pence,
        })
        .collect();
    for chunk in accounts.chunks(5_000) {
        match crowdgate_settlement::accounts::open_accounts(redis, chunk).await {
            Ok(()) => {}
            Err(ImportError::AlreadyExist(ids)) => {
                tracing::warn!(
                    accounts = ids.len(),
                    "the investors' accounts already exist (a rehearsal ran on this round before); kept as they are"
                );
            }
            Err(err) => return Err(err).context("opening the investors' accounts"),
        }
    }
    Ok(())
}
