//! The investors: each one an HTTP client on the real edge, behaving as the
//! waiting-room page or an app does.
//!
//! An investor arrives at their time, signs in (an identity token from the
//! platform's key), joins, polls status no sooner than `poll_after_ms`
//! says, takes a pass once admitted, thinks, invests with an
//! Idempotency-Key, and retries any 503 with the same request (the same key
//! for an investment). Refused because the round has less left than they
//! wanted, they invest what is left. Told the round will probably sell out
//! before their turn, some leave the queue. Every request is timed per
//! endpoint and every answer that is not a success is counted by kind
//! ([`Recorder`]); what happened to each investor is their
//! [`InvestorRecord`].

use crate::scenario::{Clients, InvestorPlan};
use crowdgate_identity::dev::DevSigner;
use crowdgate_protocol::api::{EtaUncertainty, Status, VisitorState};
use crowdgate_protocol::routes::REMAINING_PENCE_HEADER;
use hdrhistogram::Histogram;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// The endpoints investors call, as the report names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Join,
    Status,
    Pass,
    Invest,
    Leave,
    /// Not an endpoint: how long requests waited for one of the clients'
    /// connections (`clients.connections`) before they were sent. Real
    /// browsers do not share connections; long waits here mean the
    /// rehearsal's own load generator, not the system, held requests back.
    ConnectionWait,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Join => "join",
            Endpoint::Status => "status",
            Endpoint::Pass => "pass",
            Endpoint::Invest => "invest",
            Endpoint::Leave => "leave",
            Endpoint::ConnectionWait => "(client connection wait)",
        }
    }
}

/// Who signs investors in: the platform's key, issuer and audience, as the
/// edge is configured to trust them.
#[derive(Clone)]
pub struct Platform {
    pub signer: DevSigner,
    pub issuer: String,
    pub audience: String,
}

impl Platform {
    /// A fresh identity token for `investor`, valid ten minutes.
    fn identity_token(&self, investor: &str) -> String {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = DevSigner::claims(&self.issuer, &self.audience, investor, now_s, 600);
        self.signer.mint(&claims)
    }
}

/// Counts the terminal shows while the round runs (see [`crate::progress`]).
#[derive(Debug, Default)]
pub struct Counters {
    pub joined: AtomicU64,
    pub waiting: AtomicU64,
    pub admitted: AtomicU64,
    pub invested: AtomicU64,
    pub left: AtomicU64,
    pub sold_out: AtomicU64,
    pub requests: AtomicU64,
    pub designed_errors: AtomicU64,
    pub unexpected_errors: AtomicU64,
    pub finished: AtomicU64,
}

/// An answer that was not a success, counted by kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorKind {
    pub endpoint: Endpoint,
    /// 0: no answer at all.
    pub status: u16,
    pub code: String,
}

impl ErrorKind {
    /// Whether the system answers this way by design, with a client
    /// behaviour for it: a 503 or 429 to retry, the round full or closed,
    /// a pass whose time ran out. Anything else is a fault.
    pub fn designed(&self) -> bool {
        matches!(
            (self.status, self.code.as_str()),
            (503, _)
                | (429, "room_full_now")
                | (409, "round_full" | "round_closed")
                | (410, "pass_expired")
        )
    }
}

/// Everything measured across investors.
pub struct Recorder {
    started: Instant,
    pub counters: Counters,
    latency: Mutex<HashMap<Endpoint, Histogram<u64>>>,
    errors: Mutex<HashMap<ErrorKind, u64>>,
    /// Wall ms (from start) of each 201 to an investment.
    accepted_at: Mutex<Vec<u64>>,
    /// Wall ms (from start) of each answered investment call.
    invest_calls_at: Mutex<Vec<u64>>,
}

impl Recorder {
    pub fn new(started: Instant) -> Recorder {
        Recorder {
            started,
            counters: Counters::default(),
            latency: Mutex::new(HashMap::new()),
            errors: Mutex::new(HashMap::new()),
            accepted_at: Mutex::new(Vec::new()),
            invest_calls_at: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the rehearsal started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record_latency(&self, endpoint: Endpoint, elapsed: Duration) {
        let micros = (elapsed.as_micros() as u64).max(1);
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = latency.entry(endpoint).or_insert_with(|| {
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
        });
        histogram.saturating_record(micros);
    }

    fn record_error(&self, kind: ErrorKind) {
        let counter = if kind.designed() {
            &self.counters.designed_errors
        } else {
            &self.counters.unexpected_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind).or_insert(0) += 1;
    }

    /// Per endpoint: the latency histogram (µs).
    pub fn latency(&self) -> Vec<(Endpoint, Histogram<u64>)> {
        let latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = latency.iter().map(|(e, h)| (*e, h.clone())).collect();
        all.sort_by_key(|(e, _)| *e);
        all
    }

    pub fn errors(&self) -> Vec<(ErrorKind, u64)> {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = errors.iter().map(|(k, n)| (k.clone(), *n)).collect();
        all.sort();
        all
    }

    pub fn accepted_at(&self) -> Vec<u64> {
        self.accepted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn invest_calls_at(&self) -> Vec<u64> {
        self.invest_calls_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A wait estimate an investor was shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtaSeen {
    /// Wall ms from the rehearsal's start.
    pub at_ms: u64,
    /// Wall seconds, as the edge said.
    pub eta_seconds: u64,
    pub uncertain: Option<EtaUncertainty>,
}

/// How an investor's visit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitOutcome {
    /// An investment was accepted (201).
    Invested {
        investment_id: String,
        amount_pence: i64,
    },
    /// Their turn came (or they held a pass) after the round sold out.
    SoldOut,
    /// Never came back for their turn.
    NoShow,
    /// Left the queue when told it would sell out first.
    Left,
    /// Still waiting when the round was over.
    StillWaiting,
    /// A request failed and retrying did not help: why.
    Failed(String),
    /// The rehearsal ended before they arrived.
    NeverArrived,
}

/// What happened to one investor.
#[derive(Debug, Clone, PartialEq)]
pub struct InvestorRecord {
    pub index: usize,
    /// Joined while the round was scheduled (the pre-queue lottery).
    pub prequeue: bool,
    /// The join's request sent and answer received, µs from start.
    pub join_sent_us: u64,
    pub join_answered_us: u64,
    pub number: Option<u64>,
    /// The first wait estimate shown once they had a number.
    pub first_eta: Option<EtaSeen>,
    /// Queue number when first told the round will probably sell out
    /// before their turn.
    pub told_at_number: Option<u64>,
    pub outcome: VisitOutcome,
}

impl InvestorRecord {
    fn new(index: usize) -> InvestorRecord {
        InvestorRecord {
            index,
            prequeue: false,
            join_sent_us: 0,
            join_answered_us: 0,
            number: None,
            first_eta: None,
            told_at_number: None,
            outcome: VisitOutcome::NeverArrived,
        }
    }
}

/// What every investor shares: the edge, the platform, the clients'
/// behaviour, the connections and the recorder.
pub struct Crowd {
    pub http: reqwest::Client,
    pub edge_url: String,
    pub platform: Platform,
    pub clients: Clients,
    /// Scenario seconds per wall second (the think time is scenario time).
    pub compression: f64,
    pub think_seconds: f64,
    pub share_price_pence: i64,
    pub min_investment_pence: i64,
    /// Makes this rehearsal's Idempotency-Keys its own: a re-run on the same
    /// round (`--i-know`) must not replay the last run's investments.
    pub run_id: String,
    pub in_flight: Semaphore,
    pub recorder: Arc<Recorder>,
    /// Set when the round is over: investors still waiting stop.
    pub over: watch::Receiver<bool>,
}

/// One answer: the status code (0 when none came), the JSON body, and the
/// headers a client acts on.
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<Duration>,
    /// On a `round_full` refusal: the pence still left under the cap.
    remaining_pence: Option<i64>,
}

impl Answer {
    fn code(&self) -> String {
        if self.status == 0 {
            return self.body.as_str().unwrap_or("no_answer").to_string();
        }
        self.body["error"].as_str().unwrap_or("").to_string()
    }
}

impl Crowd {
    /// Builds the HTTP client the crowd shares.
    pub fn http_client(clients: &Clients) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .pool_max_idle_per_host(clients.connections)
            .timeout(Duration::from_secs(clients.request_timeout_seconds))
            .build()?)
    }

    /// Sleeps `wait`, or less if the round ends; false if it ended.
    async fn sleep_unless_over(&self, wait: Duration) -> bool {
        let mut over = self.over.clone();
        if *over.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => !*self.over.borrow(),
            _ = over.wait_for(|over| *over) => false,
        }
    }

    /// One request, timed and classified.
    async fn send(&self, endpoint: Endpoint, request: reqwest::RequestBuilder) -> Answer {
        let queued = Instant::now();
        let _permit = self.in_flight.acquire().await;
        let recorder = &self.recorder;
        recorder.record_latency(Endpoint::ConnectionWait, queued.elapsed());
        recorder.counters.requests.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let remaining_pence = response
                    .headers()
                    .get(REMAINING_PENCE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok());
                match response.bytes().await {
                    Ok(bytes) => Answer {
                        status,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                        retry_after,
                        remaining_pence,
                    },
                    Err(_) => Answer {
                        status: 0,
                        body: Value::from("body_cut_off"),
                        retry_after: None,
                        remaining_pence: None,
                    },
                }
            }
            Err(err) => Answer {
                status: 0,
                body: Value::from(if err.is_timeout() {
                    "timeout"
                } else if err.is_connect() {
                    "connect_failed"
                } else {
                    "transport_error"
                }),
                retry_after: None,
                remaining_pence: None,
            },
        };
        if answer.status != 0 {
            recorder.record_latency(endpoint, sent.elapsed());
        }
        if endpoint == Endpoint::Invest && answer.status != 0 {
            let at = recorder.now_ms();
            recorder
                .invest_calls_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(at);
        }
        if !(200..300).contains(&answer.status) {
            recorder.record_error(ErrorKind {
                endpoint,
                status: answer.status,
                code: answer.code(),
            });
        }
        answer
    }

    /// [`Crowd::send`] again while the answer says to retry (503, or 429
    /// room full now) or no answer came (every call here is safe to repeat:
    /// an investment with the same Idempotency-Key is replayed, not made
    /// twice), after `Retry-After` or the scenario's pause, until
    /// `give_up_after_seconds`, or the round is over. `request` builds the
    /// same request each time.
    async fn send_retrying(
        &self,
        endpoint: Endpoint,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Answer {
        let give_up = Instant::now() + Duration::from_secs(self.clients.give_up_after_seconds);
        loop {
            let answer = self.send(endpoint, request()).await;
            let retry = matches!(answer.status, 0 | 429 | 503);
            if !retry || Instant::now() >= give_up {
                return answer;
            }
            let pause = answer
                .retry_after
                .unwrap_or(Duration::from_millis(self.clients.retry_after_ms))
                .min(Duration::from_millis(
                    self.clients.retry_after_ms.max(1_000),
                ));
            // An investment is retried even once the round is over: core
            // may have taken it, and only its answer says so.
            if endpoint == Endpoint::Invest {
                tokio::time::sleep(pause).await;
            } else if !self.sleep_unless_over(pause).await {
                return answer;
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.edge_url)
    }

    /// The whole visit of `plan`, arriving at `arrive_at`.
    pub async fn visit(
        self: Arc<Crowd>,
        index: usize,
        plan: InvestorPlan,
        arrive_at: Instant,
    ) -> InvestorRecord {
        let mut record = InvestorRecord::new(index);
        let wait = arrive_at.saturating_duration_since(Instant::now());
        if !self.sleep_unless_over(wait).await {
            return record;
        }
        record.outcome = self.visit_from_arrival(&plan, &mut record).await;
        let c = &self.recorder.counters;
        c.finished.fetch_add(1, Ordering::Relaxed);
        match record.outcome {
            VisitOutcome::Invested { .. } => c.invested.fetch_add(1, Ordering::Relaxed),
            VisitOutcome::Left => c.left.fetch_add(1, Ordering::Relaxed),
            VisitOutcome::SoldOut | VisitOutcome::StillWaiting => {
                c.sold_out.fetch_add(1, Ordering::Relaxed)
            }
            _ => 0,
        };
        record
    }

    async fn visit_from_arrival(
        &self,
        plan: &InvestorPlan,
        record: &mut InvestorRecord,
    ) -> VisitOutcome {
        let counters = &self.recorder.counters;
        // Join.
        let identity = self.platform.identity_token(&plan.id);
        record.join_sent_us = self.recorder.started.elapsed().as_micros() as u64;
        let joined = self
            .send_retrying(Endpoint::Join, || {
                self.http.post(self.url("/api/join")).bearer_auth(&identity)
            })
            .await;
        record.join_answered_us = self.recorder.started.elapsed().as_micros() as u64;
        if !(joined.status == 200 || joined.status == 201) {
            if *self.over.borrow() {
                // Still retrying when the round ended.
                return VisitOutcome::StillWaiting;
            }
            return VisitOutcome::Failed(format!("join answered {}", joined.status));
        }
        let (Some(mut ticket), Ok(mut status)) = (
            joined.body["ticket"].as_str().map(str::to_string),
            serde_json::from_value::<Status>(joined.body["status"].clone()),
        ) else {
            return VisitOutcome::Failed("join answered without a ticket".into());
        };
        counters.joined.fetch_add(1, Ordering::Relaxed);
        counters.waiting.fetch_add(1, Ordering::Relaxed);
        record.prequeue = status.state == VisitorState::Prequeue;
        let outcome = self
            .wait_for_turn(plan, record, &mut ticket, &mut status)
            .await;
        counters.waiting.fetch_sub(1, Ordering::Relaxed);
        match outcome {
            Some(outcome) => outcome,
            None => {
                counters.admitted.fetch_add(1, Ordering::Relaxed);
                if plan.no_show {
                    return VisitOutcome::NoShow;
                }
                self.take_turn(plan, &ticket).await
            }
        }
    }

    /// Polls until admitted (`None`), or the visit ends while waiting.
    async fn wait_for_turn(
        &self,
        plan: &InvestorPlan,
        record: &mut InvestorRecord,
        ticket: &mut String,
        status: &mut Status,
    ) -> Option<VisitOutcome> {
        loop {
            if let Some(number) = status.queue_number {
                record.number = Some(number);
                if record.first_eta.is_none()
                    && status.state == VisitorState::Waiting
                    && let Some(eta_seconds) = status.eta_seconds
                {
                    record.first_eta = Some(EtaSeen {
                        at_ms: self.recorder.now_ms(),
                        eta_seconds,
                        uncertain: status.eta_uncertain,
                    });
                }
            }
            if status.state == VisitorState::Admitted {
                return None;
            }
            if status.sell_out.is_some() && record.told_at_number.is_none() {
                record.told_at_number = status.queue_number;
                if plan.leaves_when_told && self.leave(ticket).await {
                    return Some(VisitOutcome::Left);
                }
            }
            let wait = self.poll_wait(status);
            if !self.sleep_unless_over(wait).await {
                return Some(VisitOutcome::StillWaiting);
            }
            let answer = self
                .send_retrying(Endpoint::Status, || {
                    self.http.get(self.url("/api/status")).bearer_auth(&*ticket)
                })
                .await;
            if answer.status != 200 {
                if *self.over.borrow() {
                    return Some(VisitOutcome::StillWaiting);
                }
                return Some(VisitOutcome::Failed(format!(
                    "status answered {}",
                    answer.status
                )));
            }
            match serde_json::from_value::<Status>(answer.body) {
                Ok(next) => *status = next,
                Err(err) => return Some(VisitOutcome::Failed(format!("status unreadable: {err}"))),
            }
            if let Some(reissued) = status.ticket.take() {
                *ticket = reissued;
            }
        }
    }

    /// How long to wait before the next poll: as `poll_after_ms` says, but
    /// no more often than `min_poll_interval_ms` — except that a client
    /// never sleeps past most of the time its turn (or the opening) is
    /// expected in, so the floor spares the back of the queue, not the front.
    fn poll_wait(&self, status: &Status) -> Duration {
        let told = Duration::from_millis(status.poll_after_ms);
        let expected_in = status
            .eta_seconds
            .or(status.opens_in_seconds)
            .map(|s| Duration::from_secs(s).mul_f64(0.8));
        let floor = Duration::from_millis(self.clients.min_poll_interval_ms);
        let floor = expected_in.map_or(floor, |expected| floor.min(expected));
        told.max(floor)
    }

    /// Leaves the queue; true when the edge confirmed it.
    async fn leave(&self, ticket: &str) -> bool {
        let answer = self
            .send_retrying(Endpoint::Leave, || {
                self.http.post(self.url("/api/leave")).bearer_auth(ticket)
            })
            .await;
        answer.status == 200
    }

    /// Admitted: take the pass, think, invest (what is left, if less than
    /// wanted is left).
    async fn take_turn(&self, plan: &InvestorPlan, ticket: &str) -> VisitOutcome {
        let granted = self
            .send_retrying(Endpoint::Pass, || {
                self.http.post(self.url("/api/pass")).bearer_auth(ticket)
            })
            .await;
        if granted.status == 409 && granted.code() == "round_closed" {
            return VisitOutcome::SoldOut;
        }
        if granted.status != 200 && *self.over.borrow() {
            // Still asking (a 429: the room is full) when the round ended.
            return VisitOutcome::SoldOut;
        }
        let Some(pass) = granted.body["pass"]
            .as_str()
            .filter(|_| granted.status == 200)
        else {
            return VisitOutcome::Failed(format!("pass answered {}", granted.status));
        };
        let think = Duration::from_secs_f64(self.think_seconds / self.compression);
        if !self.sleep_unless_over(think).await {
            return VisitOutcome::SoldOut;
        }
        let mut amount = plan.amount_pence;
        // At most twice: what they wanted, then what is left.
        for attempt in 0..2 {
            let key = format!("{}-{}-{attempt}", self.run_id, plan.id);
            let body = serde_json::json!({ "amount_pence": amount });
            let answer = self
                .send_retrying(Endpoint::Invest, || {
                    self.http
                        .post(self.url("/api/investments"))
                        .bearer_auth(pass)
                        .header("idempotency-key", &key)
                        .json(&body)
                })
                .await;
            match (answer.status, answer.code().as_str()) {
                (201, _) => {
                    let at = self.recorder.now_ms();
                    self.recorder
                        .accepted_at
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(at);
                    return VisitOutcome::Invested {
                        investment_id: answer.body["investment_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        amount_pence: amount,
                    };
                }
                (409, "round_full") => {
                    let left = answer.remaining_pence.unwrap_or(0);
                    let affordable = left - left % self.share_price_pence;
                    if attempt == 0 && affordable >= self.min_investment_pence {
                        amount = affordable;
                        continue;
                    }
                    return VisitOutcome::SoldOut;
                }
                (409, "round_closed") | (410, _) => return VisitOutcome::SoldOut,
                (status, code) => {
                    return VisitOutcome::Failed(format!("invest answered {status} {code}"));
                }
            }
        }
        VisitOutcome::SoldOut
    }
}
