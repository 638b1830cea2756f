//! A tiny Spin component that exercises each capability of Crowdgate's
//! wasmtime host, for the integration tests in `tests/tests/host.rs`.
//!
//! It dispatches on `spin-path-info` (the path below its route), so the same
//! component can be mounted under several wildcard routes; for an exact
//! route (empty path info) it uses the full path. Endpoints:
//!
//! - `GET /hello` → 200 `hello`
//! - `GET /var/<name>` → 200 with the variable's value, or 404 with the error
//! - `GET /outbound?url=<percent-encoded url>` → 200 `<status> <body>` from
//!   the upstream, or 502 with the send error
//! - `PUT /kv/<key>` stores the body in the `default` store; `GET /kv/<key>`
//!   returns it, 404 if absent; either answers 500 if the store cannot open
//! - `GET /trap` panics, which traps the instance
//! - `GET /loop` spins forever (the host's request timeout must stop it)
//! - `GET /headers` echoes the `spin-*` request headers, one per line
//! - `GET /big` → 200 with a body of 4 MiB of `x` (more than the host can
//!   buffer before the client reads: the guest is still writing it after
//!   the head has gone)
//! - `GET /residue` answers `counter=<n> dirty=<bytes>`: a global counter's
//!   value before this request bumps it, and how many bytes of freshly grown
//!   linear memory were not zero; then it dirties both. A host that resets
//!   every instance properly (even one that keeps memory resident between
//!   instances) always answers `counter=0 dirty=0`.

use spin_sdk::http::{IntoResponse, Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = match req.header("spin-path-info").and_then(|v| v.as_str()) {
        Some(info) if !info.is_empty() => info.to_string(),
        _ => req.path().to_string(),
    };
    let method = req.method().clone();
    let response = match (method, path.as_str()) {
        (Method::Get, "/hello") => text(200, "hello"),
        (Method::Get, "/trap") => panic!("probe asked to trap"),
        (Method::Get, "/loop") => loop {
            std::hint::black_box(0u64);
        },
        (Method::Get, "/headers") => headers(&req),
        (Method::Get, "/residue") => residue(),
        (Method::Get, "/big") => text(200, "x".repeat(4 << 20)),
        (Method::Get, "/outbound") => outbound(req.query()).await,
        (Method::Get, p) if p.starts_with("/var/") => variable(&p["/var/".len()..]),
        (Method::Get, p) if p.starts_with("/kv/") => kv_get(&p["/kv/".len()..]),
        (Method::Put, p) if p.starts_with("/kv/") => kv_put(&p["/kv/".len()..], req.body()),
        _ => text(404, "probe: no such endpoint"),
    };
    Ok(response)
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

fn headers(req: &Request) -> Response {
    let mut lines: Vec<String> = req
        .headers()
        .filter(|(name, _)| name.starts_with("spin-"))
        .map(|(name, value)| format!("{name}: {}", value.as_str().unwrap_or("?")))
        .collect();
    lines.sort();
    text(200, lines.join("\n"))
}

/// Bytes of linear memory `/residue` grows and inspects: more than the host
/// keeps resident per instance, so both ways of resetting memory (zeroing
/// in place, handing pages back to the kernel) are checked.
const RESIDUE_BYTES: usize = 8 << 20;

fn residue() -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    // In the data segment: each instance must start from its initial value.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dirty = grown_memory_residue();
    text(200, format!("counter={counter} dirty={dirty}"))
}

/// Grows linear memory by [`RESIDUE_BYTES`], counts the non-zero bytes in
/// the new pages, then fills them with a marker. The pages are grown here,
/// not allocated, so the allocator never clears them: whatever was left in
/// the host's slot by an earlier instance shows.
#[cfg(target_arch = "wasm32")]
fn grown_memory_residue() -> usize {
    const PAGE: usize = 64 * 1024;
    let old_pages = core::arch::wasm32::memory_grow(0, RESIDUE_BYTES / PAGE);
    if old_pages == usize::MAX {
        return usize::MAX;
    }
    let start = old_pages * PAGE;
    // SAFETY: these pages were just added to linear memory by this call and
    // belong to no allocation (the allocator grows memory past them), so
    // nothing else reads or writes them.
    let grown = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, RESIDUE_BYTES) };
    let dirty = grown.iter().filter(|b| **b != 0).count();
    grown.fill(0xA5);
    dirty
}

#[cfg(not(target_arch = "wasm32"))]
fn grown_memory_residue() -> usize {
    0
}

fn variable(name: &str) -> Response {
    match spin_sdk::variables::get(name) {
        Ok(value) => text(200, value),
        Err(e) => text(404, format!("variable error: {e:?}")),
    }
}

async fn outbound(query: &str) -> Response {
    let Some(url) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("url="))
        .map(percent_decode)
    else {
        return text(400, "missing url");
    };
    let request = Request::get(url);
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(resp) => text(
            200,
            format!("{} {}", resp.status(), String::from_utf8_lossy(resp.body())),
        ),
        Err(e) => text(502, format!("send failed: {e:?} ({e})")),
    }
}

fn kv_get(key: &str) -> Response {
    match Store::open_default() {
        Ok(store) => match store.get(key) {
            Ok(Some(value)) => text(200, String::from_utf8_lossy(&value)),
            Ok(None) => text(404, "no such key"),
            Err(e) => text(500, format!("kv error: {e:?}")),
        },
        Err(e) => text(500, format!("kv open error: {e:?}")),
    }
}

fn kv_put(key: &str, body: &[u8]) -> Response {
    match Store::open_default() {
        Ok(store) => match store.set(key, body) {
            Ok(()) => text(200, "stored"),
            Err(e) => text(500, format!("kv error: {e:?}")),
        },
        Err(e) => text(500, format!("kv open error: {e:?}")),
    }
}

/// Decodes `%XX` escapes (and `+` as space); invalid escapes are kept as is.
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
