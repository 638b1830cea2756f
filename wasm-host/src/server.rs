//! The HTTP server: accepts connections and runs one fresh instance per request.
//!
//! Each request is routed, given the `spin-*` headers Spin components rely
//! on, and handed to a new instance of its component (instantiation from the
//! pooling allocator is cheap; sharing instances between requests would leak
//! state between visitors). The guest runs inside the request's own future
//! until its response head is ready — no task, no cross-thread wake-up for
//! the usual small answer — and only a guest still writing its body after
//! that moves to a task of its own.
//!
//! Failures stay contained: a guest that traps, times out or never responds
//! turns into a 500 JSON error for that request only, and a full instance
//! pool into 503. An epoch ticker makes running guests yield to the async
//! runtime every [`EPOCH_TICK`] and enforces the request timeout, so one
//! spinning guest can neither starve other requests nor run forever.
//!
//! Oversized requests never reach a guest: the target, head and body limits
//! of [`crate::limits`] are checked first, and answered 414, 431 or 413
//! (never 503, which would tell the client to retry the same request).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::http_error::HostError;
use crate::instance::InstanceState;
use crate::limits::{self, CheckedBody};
use crate::loader::{App, LoadedComponent};
use crowdgate_conn_io::{ConnIo, ConnState};

/// How often running guests are interrupted to yield and check the deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may keep running after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let ticker = EpochTicker::start(app.engine.clone());
    tracing::info!(%local, "serving");

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically out of file descriptors: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let state = Arc::new(ConnState::new(HostError::refused_by_hyper));
        let service = service_fn({
            let state = state.clone();
            move |req| {
                let (app, state) = (app.clone(), state.clone());
                async move {
                    let response = handle(&app, &state, req, peer, local).await;
                    state.response_returned();
                    Ok::<_, Infallible>(response)
                }
            }
        });
        let conn = http1::Builder::new()
            .keep_alive(true)
            // Drop clients that trickle their headers (slowloris).
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            // Above the host's own head limits, so those answer first.
            .max_buf_size(limits::HYPER_MAX_BUF_BYTES)
            .serve_connection(TokioIo::new(ConnIo::new(stream, state)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!("shutting down: waiting for open connections");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
    drop(ticker);
    Ok(())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
///
/// It is a plain thread, not a tokio task: a guest that never yields would
/// otherwise keep the task from running (always on a current-thread
/// runtime) and so never be interrupted.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("can spawn the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Checks, routes and runs one request, and records its log line and metrics.
async fn handle(
    app: &App,
    conn: &ConnState,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let deadline = started + app.config.request_timeout;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let refuse = |error: HostError, component: &str, route: &str, path: &str| {
        if error.closes_connection() {
            conn.linger_on_close();
        }
        let response = error.response();
        record(component, route, &method, path, response.status(), started);
        response
    };

    if let Err(error) = limits::check_head(&req) {
        // The path may be the very thing that is too long: log its start.
        let shown: String = path.chars().take(200).collect();
        return refuse(error, "none", "", &shown);
    }
    let Some(matched) = app.router.route(&path) else {
        return refuse(
            HostError::NotFound { path: path.clone() },
            "none",
            "",
            &path,
        );
    };
    let component = &app.components[matched.component];
    let id = component.config.id.clone();
    let route = matched.matched_route.to_string();

    set_spin_headers(&mut req, &matched, peer, local);
    let (parts, body) = req.into_parts();
    let limit = app.body_limits.for_route(&route);
    let checked = tokio::time::timeout_at(deadline.into(), limits::check_body(body, limit, &route));
    let result = match checked.await {
        Err(_elapsed) => Err(HostError::BodyTimeout),
        Ok(Err(error)) => Err(error),
        Ok(Ok(CheckedBody::Stream(body))) => {
            run(app, component, Request::from_parts(parts, body), deadline).await
        }
        Ok(Ok(CheckedBody::Buffered(body))) => {
            run(app, component, Request::from_parts(parts, body), deadline).await
        }
    };
    let response = match result {
        Ok(response) => response,
        Err(error) => return refuse(error, &id, &route, &path),
    };
    record(&id, &route, &method, &path, response.status(), started);
    response
}

fn record(
    component: &str,
    route: &str,
    method: &http::Method,
    path: &str,
    status: StatusCode,
    started: Instant,
) {
    let elapsed = started.elapsed();
    // Per request, so debug: at thousands of requests a second an info line
    // each would cost more than the request. Metrics count every one.
    tracing::debug!(
        component,
        route,
        %method,
        path,
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    metrics::counter!(
        "crowdgate_host_requests_total",
        "component" => component.to_string(),
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(
        "crowdgate_host_request_duration_seconds",
        "component" => component.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// Replaces any client-sent `spin-*` headers with the host's own, so a
/// client cannot spoof e.g. `spin-client-addr`.
fn set_spin_headers<B>(
    req: &mut Request<B>,
    matched: &crate::routes::RouteMatch<'_>,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let authority = match req.headers().get(HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => host.to_string(),
        None => {
            // HTTP/1.0 clients may omit Host; wasi:http needs an authority.
            let host = local.to_string();
            if let Ok(value) = HeaderValue::from_str(&host) {
                req.headers_mut().insert(HOST, value);
            }
            host
        }
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let headers = req.headers_mut();
    let spoofed: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(
        "spin-full-url",
        &format!("http://{authority}{path_and_query}"),
    );
    set("spin-path-info", &matched.path_info);
    set("spin-matched-route", matched.matched_route);
    set("spin-raw-component-route", matched.matched_route);
    set("spin-component-route", matched.component_route);
    set("spin-base-path", "/");
    set("spin-client-addr", &peer.to_string());
    for (name, value) in &matched.params {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(format!("spin-path-match-{name}").as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Runs `req` in a fresh instance of `component`, until `deadline`.
///
/// Fails with [`HostError::Overloaded`] when the instance pool is exhausted,
/// and [`HostError::ComponentFailed`] when the guest traps, times out, never
/// responds or answers with an error (the details are logged here).
async fn run<B>(
    app: &App,
    component: &LoadedComponent,
    req: Request<B>,
    deadline: Instant,
) -> Result<Response<HyperOutgoingBody>, HostError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let id = component.config.id.clone();
    let failed = |detail: String| {
        tracing::warn!(component = %id, %detail, "component failed");
        HostError::ComponentFailed {
            component: id.to_string(),
        }
    };
    let state = InstanceState::new(
        component.config.clone(),
        app.key_value.clone(),
        app.client.clone(),
    );
    let mut store = Store::new(&app.engine, state);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::format_err!("request timed out"))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let wasi_req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .map_err(|e| failed(format!("bad request: {e:#}")))?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(|e| failed(format!("{e:#}")))?;

    let pre = component.pre.clone();
    let guest_id = id.clone();
    let mut guest = Box::pin(async move {
        let proxy = match pre.instantiate_async(&mut store).await {
            Ok(proxy) => proxy,
            Err(e) => {
                let overloaded = e.is::<wasmtime::PoolConcurrencyLimitError>();
                return Err((overloaded, format!("instantiation failed: {e:#}")));
            }
        };
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, wasi_req, out)
            .await
            .map_err(|e| {
                let detail = format!("{e:?}");
                tracing::warn!(component = %guest_id, error = %detail, "guest trapped");
                (false, detail)
            })
    });

    // The guest runs inside this request's own future until the head of its
    // answer is ready: spawning a task for every request cost an allocation
    // and, on the multi-threaded runtime, usually a wake-up of the other
    // worker thread. The guest is polled first, so one that answers and
    // returns in one go is simply done.
    let first = tokio::time::timeout_at(deadline.into(), async {
        tokio::select! {
            biased;
            done = &mut guest => Err(done),
            head = &mut receiver => Ok(head),
        }
    })
    .await;
    let head = match first {
        Err(_elapsed) => {
            // Dropping the guest frees its instance slot before we answer.
            drop(guest);
            return Err(failed("request timed out".into()));
        }
        // The guest returned: its answer, if it sent one, is in the channel.
        Ok(Err(done)) => match receiver.try_recv() {
            Ok(head) => head,
            Err(_) => {
                return Err(match done {
                    Ok(()) => failed("guest returned without sending a response".into()),
                    Err((true, _)) => HostError::Overloaded,
                    Err((false, detail)) => failed(detail),
                });
            }
        },
        Ok(Ok(Ok(head))) => {
            // The head is here and the guest still runs (writing its body,
            // typically). One more turn usually finishes it; otherwise it
            // moves to a task of its own, since hyper can only send the head
            // (and then read the body) once this future has returned. As in
            // its own task before, the epoch deadline stops it while it runs
            // wasm; one waiting on a client that never reads ends with the
            // connection.
            let finished =
                std::future::poll_fn(|cx| Poll::Ready(guest.as_mut().poll(cx).is_ready()));
            if !finished.await {
                tokio::spawn(guest);
            }
            head
        }
        // The guest dropped its response-outparam unset but kept running.
        Ok(Ok(Err(_))) => {
            return Err(
                match tokio::time::timeout_at(deadline.into(), guest).await {
                    Err(_) => failed("request timed out".into()),
                    Ok(Ok(())) => failed("guest returned without sending a response".into()),
                    Ok(Err((true, _))) => HostError::Overloaded,
                    Ok(Err((false, detail))) => failed(detail),
                },
            );
        }
    };
    head.map_err(|code| failed(format!("guest answered with error code {code:?}")))
}
