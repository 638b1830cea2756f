//! Watching the round through core's ops API (`GET /ops/v1/rounds/{round}`,
//! what the dashboard polls), a few times a second.
//!
//! The samples are the report's timeline; they also say when the round is
//! over (sold out, or drained, with every investment settled) and when each
//! queue number was really admitted, which the wait estimate is judged
//! against.

use anyhow::{Context, bail};
use serde_json::Value;
use std::time::Duration;

/// How often the round is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);

/// core's ops API for one round.
#[derive(Clone)]
pub struct OpsClient {
    http: reqwest::Client,
    core_url: String,
    round: String,
    token: String,
}

/// The round's figures at one instant, as the ops API reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Wall ms from the rehearsal's start: midway between asking and the
    /// answer.
    pub at_ms: u64,
    pub phase: String,
    pub issued: u64,
    pub admitted_up_to: u64,
    pub prequeue: u64,
    pub active: u64,
    pub rate_per_minute: f64,
    pub achieved_rate_per_minute: f64,
    pub max_active: u64,
    pub opens_at_ms: u64,
    pub raised_pence: i64,
    pub cap_pence: i64,
    pub accepted_count: u64,
    pub investor_count: u64,
    pub settled_count: u64,
    pub failed_count: u64,
    /// Accepted investments not yet settled (pending + undelivered).
    pub backlog: u64,
    pub oldest_unsettled_age_ms: u64,
    pub dead_letters: u64,
    /// The round's stored fields as the ops API lists them (`fields`).
    pub fields: serde_json::Map<String, Value>,
    /// The rehearsal's own investors still waiting at this instant (set by
    /// the rehearsal, not the ops API, whose queue length still counts
    /// those who left).
    pub clients_waiting: Option<u64>,
}

impl Figures {
    /// A whole-number field of the round's record (`fields`), if present.
    pub fn raw_field(&self, name: &str) -> Option<i64> {
        match self.fields.get(name)? {
            Value::String(text) => text.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// Not yet admitted: the rehearsal's investors still waiting when it
    /// counted them, else the queue (and before opening the pre-queue).
    pub fn waiting(&self) -> u64 {
        if let Some(waiting) = self.clients_waiting {
            return waiting;
        }
        let queue = self.issued.saturating_sub(self.admitted_up_to);
        if self.phase == "scheduled" {
            queue + self.prequeue
        } else {
            queue
        }
    }

    /// Every accepted investment has settled or failed (the counts, and the
    /// stream's backlog, which is read in two steps and so alone could
    /// show 0 for a moment while an entry moves).
    pub fn settled_up(&self) -> bool {
        self.backlog == 0 && self.settled_count + self.failed_count >= self.accepted_count
    }

    /// Too little is left under the cap for anyone to invest.
    pub fn sold_out(&self, min_investment_pence: i64) -> bool {
        self.phase == "full" || self.cap_pence - self.raised_pence < min_investment_pence
    }

    fn parse(at_ms: u64, v: &Value) -> anyhow::Result<Figures> {
        let u = |path: &[&str]| -> u64 { pick(v, path).as_u64().unwrap_or(0) };
        let i = |path: &[&str]| -> i64 { pick(v, path).as_i64().unwrap_or(0) };
        let f = |path: &[&str]| -> f64 { pick(v, path).as_f64().unwrap_or(0.0) };
        let Some(phase) = v["phase"].as_str() else {
            bail!("the ops status has no phase: {v}");
        };
        Ok(Figures {
            at_ms,
            phase: phase.to_string(),
            issued: u(&["queue", "issued"]),
            admitted_up_to: u(&["queue", "admitted_up_to"]),
            prequeue: u(&["queue", "prequeue"]),
            active: u(&["queue", "active_investors"]),
            rate_per_minute: f(&["admission", "rate_per_minute"]),
            achieved_rate_per_minute: f(&["admission", "achieved_rate_per_minute"]),
            max_active: u(&["admission", "max_active"]),
            opens_at_ms: u(&["schedule", "opens_at_ms"]),
            raised_pence: i(&["money", "raised_pence"]),
            cap_pence: i(&["money", "cap_pence"]),
            accepted_count: u(&["money", "accepted_count"]),
            investor_count: u(&["money", "investor_count"]),
            settled_count: u(&["settlement", "settled_count"]),
            failed_count: u(&["settlement", "failed_count"]),
            backlog: u(&["settlement", "backlog"]),
            oldest_unsettled_age_ms: u(&["settlement", "oldest_unsettled_age_ms"]),
            dead_letters: u(&["settlement", "dead_letters"]),
            fields: v["fields"].as_object().cloned().unwrap_or_default(),
            clients_waiting: None,
        })
    }
}

fn pick<'v>(v: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(v, |v, key| &v[*key])
}

impl OpsClient {
    pub fn new(core_url: &str, round: &str, token: &str) -> anyhow::Result<OpsClient> {
        Ok(OpsClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            core_url: core_url.trim_end_matches('/').to_string(),
            round: round.to_string(),
            token: token.to_string(),
        })
    }

    fn url(&self, verb: &str) -> String {
        format!("{}/ops/v1/rounds/{}{verb}", self.core_url, self.round)
    }

    /// The round's figures now, stamped in wall ms since `since`.
    pub async fn figures(&self, since: std::time::Instant) -> anyhow::Result<Figures> {
        let asked = since.elapsed();
        let response = self
            .http
            .get(self.url(""))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach core's ops API at {}", self.core_url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "core's ops API answered {status} for round {:?}: {}",
                self.round,
                body["message"].as_str().unwrap_or("no message")
            );
        }
        let at_ms = ((asked + since.elapsed()) / 2).as_millis() as u64;
        Figures::parse(at_ms, &body)
    }

    /// Schedules the opening for `opens_at` (RFC 3339), or opens now.
    pub async fn open(&self, opens_at: Option<&str>) -> anyhow::Result<()> {
        let body = match opens_at {
            Some(at) => serde_json::json!({ "opens_at": at }),
            None => serde_json::json!({}),
        };
        let response = self
            .http
            .post(self.url("/open"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .context("cannot reach core's ops API")?;
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            bail!(
                "core refused to open the round ({status}): {}",
                body["message"].as_str().unwrap_or("no message")
            );
        }
        Ok(())
    }
}

/// When number `number` was admitted: the midpoint between the last sample
/// before it and the first at or after it (wall ms), if it ever was.
pub fn admitted_at_ms(samples: &[Figures], number: u64) -> Option<f64> {
    let first = samples.partition_point(|s| s.admitted_up_to < number);
    let at = samples.get(first)?;
    let before = first
        .checked_sub(1)
        .map(|i| samples[i].at_ms)
        .unwrap_or(at.at_ms);
    Some((before + at.at_ms) as f64 / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, admitted_up_to: u64) -> Figures {
        Figures {
            at_ms,
            phase: "open".into(),
            issued: 100,
            admitted_up_to,
            prequeue: 0,
            active: 0,
            rate_per_minute: 60.0,
            achieved_rate_per_minute: 0.0,
            max_active: 10,
            opens_at_ms: 0,
            raised_pence: 0,
            cap_pence: 1_000,
            accepted_count: 0,
            investor_count: 0,
            settled_count: 0,
            failed_count: 0,
            backlog: 0,
            oldest_unsettled_age_ms: 0,
            dead_letters: 0,
            fields: Default::default(),
            clients_waiting: None,
        }
    }

    #[test]
    fn a_number_is_admitted_between_the_samples_that_saw_it_pass() {
        let samples = [sample(0, 0), sample(250, 5), sample(500, 10)];
        assert_eq!(admitted_at_ms(&samples, 3), Some(125.0));
        assert_eq!(admitted_at_ms(&samples, 10), Some(375.0));
        assert_eq!(admitted_at_ms(&samples, 11), None);
    }

    #[test]
    fn sold_out_when_less_than_the_minimum_is_left() {
        let mut s = sample(0, 0);
        s.raised_pence = 995;
        assert!(s.sold_out(10));
        assert!(!s.sold_out(1));
    }
}
