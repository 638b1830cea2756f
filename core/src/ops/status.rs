//! `GET /ops/v1/rounds/{round}`: the round's live figures in one answer —
//! what the dashboard polls every second and `crowdgate ops status` prints.
//!
//! Reads only, through the store's [`crowdgate_store::Figures`]: close in
//! time but not one snapshot (fine for watching, not for reconciling —
//! `crowdgate reconcile` does that). Here they become JSON and gauges.

use super::authorize;
use crate::error::Failure;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use crowdgate_store::{Figures, Topology};
use serde_json::{Value, json};

/// `GET /ops/v1/rounds/{round}`
pub async fn show(
    State(state): State<AppState>,
    Path(round): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, Failure> {
    let (_, store) = authorize(&state, &headers, &round).await?;
    let now_ms = crate::clock::now_ms();
    let Some(figures) = store.figures(now_ms).await? else {
        return Err(Failure::not_found(format!("round {round:?} is not seeded")));
    };
    publish_gauges(&round, &figures);
    let mut answer = render(&round, &figures, now_ms);
    answer["redis"] = redis_status(&state).await;
    Ok(Json(answer))
}

/// Which node is the primary now and what it says of its replicas, so a
/// failover can be watched (`crowdgate ops status`).
async fn redis_status(state: &AppState) -> Value {
    let redis = state.rounds.redis();
    let (mode, master) = match redis.topology() {
        Topology::Single { .. } => ("single", None),
        Topology::Sentinel { master, .. } => ("sentinel", Some(master.clone())),
    };
    // The figures were just read, so the primary answers; if it went away
    // in between, say so rather than fail the whole status.
    let replicas = match redis.replication_status().await {
        Ok(status) => json!(status.replicas),
        Err(err) => json!(format!("unknown: {err}")),
    };
    json!({
        "mode": mode,
        "master_name": master,
        "primary": redis.primary(),
        "replicas": replicas,
        "acknowledge_after_replicas": redis.replication().replicas,
        "replica_timeout_ms": redis.replication().timeout.as_millis() as u64,
    })
}

/// The same count the admission controller keeps within max_active.
fn active(f: &Figures) -> u64 {
    f.claimed + f.reserved
}

fn publish_gauges(round: &str, f: &Figures) {
    let backlog = &f.backlog;
    let gauge = |name: &'static str, value: f64| {
        metrics::gauge!(name, "round" => round.to_string()).set(value);
    };
    gauge("crowdgate_round_active_investors", active(f) as f64);
    gauge(
        "crowdgate_settlement_backlog",
        (backlog.pending + backlog.undelivered) as f64,
    );
    gauge("crowdgate_settlement_dead_letters", f.dead_letters as f64);
    gauge(
        "crowdgate_settlement_oldest_unsettled_age_seconds",
        backlog.oldest_age_ms.unwrap_or(0) as f64 / 1000.0,
    );
}

/// The figures as the dashboard and `crowdgate ops status` read them.
fn render(round: &str, f: &Figures, now_ms: u64) -> Value {
    let r = &f.round;
    let backlog = &f.backlog;
    json!({
        "round": round,
        "name": r.name,
        "phase": r.phase.as_str(),
        "as_of_ms": now_ms,
        "admission": {
            "rate_per_minute": r.rate_per_minute,
            // What admission achieved while people waited (smoothed over
            // about a minute), next to what is configured: lower when the
            // room is full (max_active) holds it back.
            "achieved_rate_per_minute": r.achieved_rate_milli_per_minute as f64 / 1000.0,
            "achieved_rate_history_seconds": r.achieved_rate_measured_ms / 1000,
            "rate_changed_at_ms": r.rate_changed_at_ms,
            "batch_interval_ms": r.batch_interval_ms,
            "max_active": r.max_active,
            "pass_ttl_seconds": r.pass_ttl_seconds,
        },
        "schedule": {
            "opens_at_ms": r.opens_at_ms,
            "closes_at_ms": r.closes_at_ms,
        },
        "queue": {
            "issued": r.issued,
            "admitted_up_to": r.admitted_up_to,
            "queue_length": r.issued.saturating_sub(r.admitted_up_to),
            "active_investors": active(f),
            "claimed_passes": f.claimed,
            "reserved_places": f.reserved,
            "prequeue": f.prequeue,
            // Tickets given up (POST /api/leave): admission passes over
            // their numbers, which queue_length still counts.
            "left_queue": f.left,
        },
        "money": {
            "raised_pence": r.raised_pence,
            "cap_pence": r.cap_pence,
            "accepted_pence": r.accepted_pence,
            "released_pence": r.released_pence,
            "accepted_count": r.accepted_count,
            "investor_count": r.investor_count,
        },
        "settlement": {
            "settled_count": f.ledger.settled_count,
            "failed_count": f.ledger.failed_count,
            "stream_length": f.stream_len,
            "pending": backlog.pending,
            "undelivered": backlog.undelivered,
            "backlog": backlog.pending + backlog.undelivered,
            "oldest_unsettled_age_ms": backlog.oldest_age_ms,
            "dead_letters": f.dead_letters,
        },
        "fields": f.raw,
    })
}
