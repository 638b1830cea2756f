//! Starting without exiting: core listens at once, answers "not ready" until
//! it has reached the Redis primary, checked that it is safe and seeded the
//! round, and waits through a failover instead of exiting.
//!
//! Why: core is most often restarted in the event replication is for (a
//! machine lost with the pods on it). A core that exited while Sentinel was
//! still promoting a replica, or while the new primary had no replica yet
//! and refused writes, would crash-loop with a growing back-off and come
//! back long after Redis did. Waiting, it serves as soon as Redis can.
//!
//! What still stops core: a configuration that can never work (an address
//! that is not one) and a primary that could lose acknowledged writes
//! (`appendfsync`, `min-replicas-to-write`): those need a person.

use crate::error::Failure;
use crate::store::{self, RoundStore};
use crate::{CoreConfig, ids};
use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use crowdgate_protocol::ErrorCode;
use crowdgate_store::Redis;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

/// Longest pause between attempts to check the primary or seed the round
/// while it is unreachable or refuses writes.
const LONGEST_RETRY: Duration = Duration::from_secs(1);

/// What core is waiting for, shown by `/healthz` until it is ready.
#[derive(Clone, Default)]
pub struct Progress {
    waiting_for: Arc<Mutex<String>>,
}

impl Progress {
    fn set(&self, waiting_for: impl Into<String>) {
        *self.waiting_for.lock().unwrap_or_else(|e| e.into_inner()) = waiting_for.into();
    }

    fn get(&self) -> String {
        self.waiting_for
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Serves `ready`'s router once it is set; until then `/healthz` answers 503
/// `unhealthy` saying what core waits for, `/metrics` the metrics, and
/// everything else 503 `unavailable` with `Retry-After` (the edge and
/// clients retry).
pub fn router(
    ready: Arc<OnceLock<Router>>,
    progress: Progress,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Router {
    Router::new().fallback_service(tower::service_fn(move |request: Request| {
        let ready = ready.clone();
        let progress = progress.clone();
        let metrics = metrics.clone();
        async move {
            if let Some(router) = ready.get() {
                return router.clone().oneshot(request).await;
            }
            Ok::<Response, Infallible>(starting_answer(request.uri().path(), &progress, metrics))
        }
    }))
}

fn starting_answer(
    path: &str,
    progress: &Progress,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Response {
    match (path, metrics) {
        ("/metrics", Some(handle)) => handle.render().into_response(),
        ("/healthz", _) => Failure::new(
            ErrorCode::Unhealthy,
            format!("core is starting: {}", progress.get()),
        )
        .with_retry_after(1)
        .into_response(),
        _ => Failure::unavailable("core is starting: it has not reached Redis yet").into_response(),
    }
}

/// Reaches the primary, checks it and seeds the round, waiting (and saying
/// why, in the log and in `progress`) for as long as Redis is unreachable or
/// refuses writes. Fails only on what waiting cannot fix.
pub async fn prepare(config: &CoreConfig, progress: &Progress) -> anyhow::Result<RoundStore> {
    let mut redis = Redis::new(&config.redis)
        .with_context(|| format!("the Redis configuration ({})", config.redis.topology))?;
    let replicas = redis.replication().replicas;
    let mut pause = Duration::from_millis(100);
    loop {
        progress.set(format!(
            "reaching the Redis primary ({})",
            config.redis.topology
        ));
        redis.wait_for_primary("core").await;
        progress.set("checking that the Redis primary is durable");
        match crowdgate_store::primary_problems(&mut redis, replicas).await {
            Ok(problems) => {
                for problem in problems {
                    if config.allow_unsafe_redis {
                        tracing::warn!(%problem, "starting against a Redis that could lose acknowledged writes (--allow-unsafe-redis)");
                    } else {
                        anyhow::bail!(problem);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "core lost the Redis primary while checking it; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_RETRY);
                continue;
            }
        }
        let store = RoundStore::new(&config.round.round.id, redis.clone());
        progress.set("seeding the round");
        match store
            .seed(&store::settings(&config.round), &ids::draw_random())
            .await
        {
            Ok(written) => {
                if written {
                    tracing::info!(round = %store.round, "seeded round config fields");
                }
                return Ok(store);
            }
            Err(err) if err.is_transient() => {
                let reason = format!("the Redis primary refuses to seed the round for now: {err}");
                tracing::warn!(%reason, "core is waiting to seed the round");
                progress.set(reason);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_RETRY);
            }
            Err(err) => return Err(err).context("seeding the round in Redis"),
        }
    }
}
