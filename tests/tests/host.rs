//! Integration tests for `crowdgate-wasm-host`: real wasm, real HTTP.
//!
//! Each test writes a `spin.toml` into a temporary directory pointing at the
//! prebuilt probe component (`tests/components/host-probe`), loads a `Host`,
//! serves it on an ephemeral port and talks to it with reqwest, or with a
//! raw `TcpStream` where a test sends what an HTTP client would not (huge
//! heads, garbage, a body it never finishes). The restart tests run the real
//! `crowdgate host` binary. Build the probe first:
//! `cargo build --target wasm32-wasip2 --profile component -p host-probe`
//! (or `--release`), and the binary with `cargo build -p crowdgate`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crowdgate_tests::raw_http::{answer, assert_closed, exchange};
use crowdgate_tests::{Proc, crowdgate_bin, wait_for};
use crowdgate_wasm_host::{CacheOutcome, Host, HostConfig, LoadError, LoadReport};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Path of the prebuilt probe component: the newest of the `release` and
/// `component` profiles' outputs (components may be built with either).
fn probe_wasm() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let built = ["component", "release"]
        .iter()
        .map(|profile| {
            target
                .join("wasm32-wasip2")
                .join(profile)
                .join("host_probe.wasm")
        })
        .filter_map(|wasm| Some((wasm.metadata().ok()?.modified().ok()?, wasm)))
        .max();
    match built {
        Some((_, wasm)) => wasm,
        None => panic!(
            "{} is missing: run `cargo build --target wasm32-wasip2 --profile component -p host-probe` first",
            target
                .join("wasm32-wasip2/component/host_probe.wasm")
                .display()
        ),
    }
}

/// The default test app. `{wasm}` and `{port}` are filled in by [`start`].
const APP: &str = r#"
spin_manifest_version = 2

[application]
name = "host-test"

[variables]
greeting = { default = "hi" }
api_key = { default = "k3y", secret = true }

[[trigger.http]]
route = "/..."
component = "probe"

[[trigger.http]]
route = "/locked/..."
component = "locked"

[[trigger.http]]
route = "/exact"
component = "locked"

[component.probe]
source = "{wasm}"
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]
key_value_stores = ["default"]

[component.probe.variables]
greeting = "{{ greeting }}"
auth = "Bearer {{ api_key }}"

[component.probe.build]
command = "cargo build --target wasm32-wasip2 --release -p host-probe"

[component.locked]
source = "{wasm}"
"#;

/// A host serving on an ephemeral port; shut down when dropped.
struct TestHost {
    addr: SocketAddr,
    client: reqwest::Client,
    /// How its components were loaded.
    report: LoadReport,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl TestHost {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Writes `manifest` (with `{wasm}` and `{port}` replaced) and loads it.
async fn load(
    manifest: &str,
    port: u16,
    configure: impl FnOnce(&mut HostConfig),
) -> (Result<Host, LoadError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.toml");
    let text = manifest
        .replace("{wasm}", &probe_wasm().display().to_string())
        .replace("{port}", &port.to_string());
    std::fs::write(&path, text).unwrap();
    let mut config = HostConfig::new(&path);
    configure(&mut config);
    (Host::load(config).await, dir)
}

/// Loads `manifest` and serves it; panics if loading fails.
async fn start(manifest: &str, configure: impl FnOnce(&mut HostConfig)) -> TestHost {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (host, dir) = load(manifest, addr.port(), configure).await;
    let host = host.expect("test app loads");
    let report = host.load_report().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(host.serve(listener, async {
        let _ = rx.await;
    }));
    TestHost {
        addr,
        client: reqwest::Client::new(),
        report,
        shutdown: Some(tx),
        _dir: dir,
    }
}

/// Loads a manifest that is expected to fail and returns the error text.
async fn load_error(manifest: &str, configure: impl FnOnce(&mut HostConfig)) -> String {
    match load(manifest, 1, configure).await.0 {
        Ok(_) => panic!("load should fail"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn serves_a_component() {
    let host = start(APP, |_| {}).await;
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

#[tokio::test]
async fn variables_default_override_and_undefined() {
    let host = start(APP, |_| {}).await;
    assert_eq!(host.get("/var/greeting").await, (200, "hi".to_string()));
    assert_eq!(host.get("/var/auth").await, (200, "Bearer k3y".to_string()));

    // Not mapped in [component.probe.variables]: the guest gets `undefined`.
    let (status, body) = host.get("/var/api_key").await;
    assert_eq!(status, 404);
    assert!(body.contains("Undefined"), "{body}");
    // A component that maps nothing sees nothing.
    let (status, body) = host.get("/locked/var/greeting").await;
    assert_eq!(status, 404);
    assert!(body.contains("Undefined"), "{body}");

    let overridden = start(APP, |c| {
        c.variable_overrides
            .insert("greeting".into(), "bonjour".into());
    })
    .await;
    assert_eq!(
        overridden.get("/var/greeting").await,
        (200, "bonjour".to_string())
    );
}

#[tokio::test]
async fn missing_required_variable_fails_the_load() {
    let manifest = APP.replace(
        "greeting = { default = \"hi\" }",
        "greeting = { required = true }",
    );
    let err = load_error(&manifest, |_| {}).await;
    assert!(err.contains("greeting"), "{err}");
    assert!(err.contains("SPIN_VARIABLE_GREETING"), "{err}");

    // Supplying it makes the same manifest load.
    let host = start(&manifest, |c| {
        c.variable_overrides.insert("greeting".into(), "yo".into());
    })
    .await;
    assert_eq!(host.get("/var/greeting").await, (200, "yo".to_string()));
}

#[tokio::test]
async fn outbound_allowed_and_denied() {
    let host = start(APP, |_| {}).await;
    let port = host.addr.port();

    // The probe calls its own host, which is on the allow-list; repeat to
    // go through the pooled (reused) connection too.
    for _ in 0..3 {
        let target = format!("http%3A%2F%2F127.0.0.1%3A{port}%2Fhello");
        let (status, body) = host.get(&format!("/outbound?url={target}")).await;
        assert_eq!((status, body.as_str()), (200, "200 hello"));
    }

    // Same port, different host name: not on the list.
    let target = format!("http%3A%2F%2Flocalhost%3A{port}%2Fhello");
    let (status, body) = host.get(&format!("/outbound?url={target}")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // A component with no allow-list may call nothing.
    let target = format!("http%3A%2F%2F127.0.0.1%3A{port}%2Fhello");
    let (status, body) = host.get(&format!("/locked/outbound?url={target}")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

#[tokio::test]
async fn key_value_round_trip_and_access_denied() {
    let host = start(APP, |_| {}).await;
    let resp = host
        .client
        .put(host.url("/kv/round"))
        .body("r1-open")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A later request runs in a fresh instance and still sees the value.
    assert_eq!(host.get("/kv/round").await, (200, "r1-open".to_string()));
    assert_eq!(host.get("/kv/absent").await.0, 404);

    let (status, body) = host.get("/locked/kv/round").await;
    assert_eq!(status, 500);
    assert!(body.contains("AccessDenied"), "{body}");
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let manifest = APP.replace("route = \"/...\"", "route = \"/hello\"");
    let host = start(&manifest, |_| {}).await;
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));

    let resp = host.client.get(host.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "not_found", "message": "no route for /nope"})
    );
}

#[tokio::test]
async fn trap_is_a_500_and_the_host_keeps_serving() {
    let host = start(APP, |_| {}).await;
    let resp = host.client.get(host.url("/trap")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "component_failed");
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

#[tokio::test]
async fn runaway_guest_is_stopped_by_the_request_timeout() {
    let host = start(APP, |c| c.request_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let (status, body) = host.get("/loop").await;
    assert_eq!(status, 500, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

// Multi-threaded so the spinning guest cannot hold up the I/O driver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_instance_pool_answers_503() {
    let host = start(APP, |c| {
        c.max_concurrent_requests = 1;
        c.request_timeout = Duration::from_secs(2);
    })
    .await;
    // Occupy the only instance slot with a guest that spins until the timeout.
    // A 503 means a probe below held the slot just then: ask again.
    let (client, url) = (host.client.clone(), host.url("/loop"));
    let busy = tokio::spawn(async move {
        loop {
            let status = client.get(&url).send().await.unwrap().status();
            if status != 503 {
                return status;
            }
        }
    });
    // Probe until the spinning guest holds the slot: then the answer is 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = loop {
        let resp = host.client.get(host.url("/hello")).send().await.unwrap();
        if resp.status() == 503 {
            break resp;
        }
        assert_eq!(resp.status(), 200, "the slot was free: the probe is served");
        assert!(
            Instant::now() < deadline,
            "the spinning guest never held the slot"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "overloaded");
    assert_eq!(busy.await.unwrap(), 500);
    // The slot is free again.
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

#[tokio::test]
async fn many_concurrent_requests_each_get_an_instance() {
    let host = start(APP, |_| {}).await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (client, url) = (host.client.clone(), host.url("/hello"));
        set.spawn(async move {
            let resp = client.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        });
    }
    for (status, body) in set.join_all().await {
        assert_eq!((status, body.as_str()), (200, "hello"));
    }
}

/// Instances keep no trace of earlier ones. The host keeps each instance
/// slot's memory resident between requests (zeroing what a guest wrote
/// instead of handing the pages back to the kernel, and only up to a limit),
/// so this checks both paths: a global in the data segment and 8 MiB of
/// freshly grown memory, one request after another (the same warm slot
/// again and again) and many at once (slots reused in any order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_never_sees_an_earlier_instances_memory() {
    let host = start(APP, |_| {}).await;
    let clean = (200, "counter=0 dirty=0".to_string());
    for _ in 0..20 {
        assert_eq!(host.get("/residue").await, clean);
    }
    for _ in 0..4 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, url) = (host.client.clone(), host.url("/residue"));
            set.spawn(async move {
                let resp = client.get(url).send().await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            });
        }
        for answer in set.join_all().await {
            assert_eq!(answer, clean);
        }
    }
}

/// A guest still writing its body after the head has gone (the host runs
/// the guest inline until the head, then hands a guest that is not done to
/// a task of its own) delivers the whole body, and the host keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_written_after_the_head_arrives_whole() {
    let host = start(APP, |_| {}).await;
    for _ in 0..3 {
        let (status, body) = host.get("/big").await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), 4 << 20);
        assert!(body.bytes().all(|b| b == b'x'));
    }
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

#[tokio::test]
async fn spin_headers_are_set_and_not_spoofable() {
    let host = start(APP, |_| {}).await;
    let resp = host
        .client
        .get(host.url("/locked/headers?x=1"))
        .header("spin-client-addr", "6.6.6.6:666")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let headers: HashMap<&str, &str> = body.lines().filter_map(|l| l.split_once(": ")).collect();
    assert_eq!(headers["spin-path-info"], "/headers");
    assert_eq!(headers["spin-matched-route"], "/locked/...");
    assert_eq!(headers["spin-component-route"], "/locked");
    assert_eq!(headers["spin-base-path"], "/");
    assert_eq!(
        headers["spin-full-url"],
        format!("http://{}/locked/headers?x=1", host.addr)
    );
    assert!(
        headers["spin-client-addr"].starts_with("127.0.0.1:"),
        "{body}"
    );
}

#[tokio::test]
async fn route_precedence_exact_then_longest_wildcard() {
    let host = start(APP, |_| {}).await;
    // `/exact` is an exact route of `locked`, which has no variables; the
    // catch-all `/...` (probe) would answer /var/greeting with "hi".
    let (status, body) = host.get("/exact").await;
    assert_eq!((status, body.as_str()), (404, "probe: no such endpoint"));
    // `/locked/...` beats `/...`.
    assert_eq!(host.get("/locked/var/greeting").await.0, 404);
    // Everything else falls to the catch-all.
    assert_eq!(host.get("/var/greeting").await, (200, "hi".to_string()));
}

#[tokio::test]
async fn broken_component_source_fails_the_load_naming_the_file() {
    let missing = APP.replace(
        "source = \"{wasm}\"\nallowed",
        "source = \"nope.wasm\"\nallowed",
    );
    let err = load_error(&missing, |_| {}).await;
    assert!(err.contains("`probe`"), "{err}");
    assert!(err.contains("nope.wasm"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let not_wasm = APP.replace(
        "source = \"{wasm}\"\nallowed",
        &format!("source = \"{}\"\nallowed", junk.display()),
    );
    let err = load_error(&not_wasm, |_| {}).await;
    assert!(err.contains("`probe`"), "{err}");
    assert!(err.contains("junk.wasm"), "{err}");
}

#[tokio::test]
async fn invalid_allow_list_entry_fails_the_load() {
    let manifest = APP.replace("\"http://127.0.0.1:{port}\"", "\"127.0.0.1:80\"");
    let err = load_error(&manifest, |_| {}).await;
    assert!(err.contains("`probe`"), "{err}");
    assert!(err.contains("127.0.0.1:80"), "{err}");
}

// ---------------------------------------------------------------------------
// Request limits and the JSON shape of every host error, over raw TCP where
// a normal client would not send such a request.

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

const CHUNKED_PUT: &str =
    "PUT /kv/chunky HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n";

#[tokio::test]
async fn declared_oversized_body_is_refused_at_once_and_the_connection_closed() {
    let host = start(APP, |_| {}).await;
    let (read, mut write) = TcpStream::connect(host.addr).await.unwrap().into_split();
    let head = "PUT /kv/huge HTTP/1.1\r\nhost: test\r\ncontent-length: 10485760\r\n\r\n";
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(&[b'x'; 16 * 1024]).await.unwrap();
    // The rest of the 10 MB is never sent: the answer cannot be waiting for it.
    let mut reader = BufReader::new(read);
    let response = answer(&mut reader).await;
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.headers["connection"], "close");
    let body = response.json_error();
    assert_eq!(body["error"], "body_too_large");
    assert_eq!(body["field"], "body");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("65536") && message.contains("/..."),
        "{message}"
    );
    assert_closed(&mut reader).await;
    drop(write);

    // Nothing reached the guest, and the host serves on.
    assert_eq!(host.get("/kv/huge").await.0, 404);
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

// Multi-threaded: the client uploads while the host answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_post_is_413_never_503() {
    let host = start(APP, |_| {}).await;
    let resp = host
        .client
        .put(host.url("/kv/big"))
        .body(vec![b'x'; 10 << 20])
        .send()
        .await
        .expect("the client gets the answer, not a reset");
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "body_too_large");

    // The default limit is 64 KiB, inclusive.
    let limit = 64 * 1024;
    let put = |key: &str, len: usize| {
        host.client
            .put(host.url(&format!("/kv/{key}")))
            .body(vec![b'y'; len])
            .send()
    };
    assert_eq!(put("fits", limit).await.unwrap().status(), 200);
    let (status, stored) = host.get("/kv/fits").await;
    assert_eq!((status, stored.len()), (200, limit));
    assert_eq!(put("over", limit + 1).await.unwrap().status(), 413);
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

#[tokio::test]
async fn chunked_body_is_buffered_within_the_limit_and_cut_off_past_it() {
    let host = start(APP, |c| c.max_body_bytes = 1000).await;

    // Within the limit: read whole, then handed to the guest.
    let mut request = CHUNKED_PUT.as_bytes().to_vec();
    request.extend(chunk(b"hello"));
    request.extend(chunk(b" world"));
    request.extend_from_slice(b"0\r\n\r\n");
    let response = exchange(host.addr, &request).await;
    assert_eq!((response.status, &response.body[..]), (200, &b"stored"[..]));
    assert_eq!(
        host.get("/kv/chunky").await,
        (200, "hello world".to_string())
    );

    // Past it: 413 as soon as 1001 bytes arrived, though the body never ends.
    let (read, mut write) = TcpStream::connect(host.addr).await.unwrap().into_split();
    write.write_all(CHUNKED_PUT.as_bytes()).await.unwrap();
    for _ in 0..3 {
        write.write_all(&chunk(&[b'z'; 400])).await.unwrap();
    }
    let mut reader = BufReader::new(read);
    let response = answer(&mut reader).await;
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.json_error()["error"], "body_too_large");
    assert_closed(&mut reader).await;
    assert_eq!(
        host.get("/kv/chunky").await,
        (200, "hello world".to_string())
    );
}

#[tokio::test]
async fn stalled_chunked_body_times_out_with_a_json_408() {
    let host = start(APP, |c| c.request_timeout = Duration::from_millis(500)).await;
    let (read, mut write) = TcpStream::connect(host.addr).await.unwrap().into_split();
    write.write_all(CHUNKED_PUT.as_bytes()).await.unwrap();
    write.write_all(&chunk(b"hello")).await.unwrap();
    let mut reader = BufReader::new(read);
    let response = answer(&mut reader).await;
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(response.json_error()["error"], "body_timeout");
    assert_closed(&mut reader).await;
}

/// Regression: a declared body that never fully arrived was streamed to the
/// guest, which waited out the request timeout and answered 500.
#[tokio::test]
async fn stalled_declared_body_times_out_with_a_json_408_before_the_guest_runs() {
    let host = start(APP, |c| c.request_timeout = Duration::from_millis(500)).await;
    let (read, mut write) = TcpStream::connect(host.addr).await.unwrap().into_split();
    write
        .write_all(b"PUT /kv/stalled HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab")
        .await
        .unwrap();
    let mut reader = BufReader::new(read);
    let response = answer(&mut reader).await;
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(response.json_error()["error"], "body_timeout");
    // Nothing was stored: the guest never ran.
    assert_eq!(host.get("/kv/stalled").await.0, 404);
}

#[tokio::test]
async fn route_body_limit_overrides_the_default() {
    let host = start(APP, |c| {
        c.max_body_bytes = 1024;
        c.route_body_limits.insert("/...".into(), 200_000);
    })
    .await;
    let put = |path: &str, len: usize| host.client.put(host.url(path)).body(vec![b'a'; len]).send();

    assert_eq!(put("/kv/big", 100_000).await.unwrap().status(), 200);
    assert_eq!(host.get("/kv/big").await.1.len(), 100_000);
    let resp = put("/kv/too-big", 200_001).await.unwrap();
    assert_eq!(resp.status(), 413);

    // `/locked/...` has no override: the 1 KiB default.
    let resp = put("/locked/kv/x", 2048).await.unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("1024") && message.contains("/locked/..."),
        "{message}"
    );
}

#[tokio::test]
async fn body_limit_for_an_unknown_route_fails_the_load() {
    let err = load_error(APP, |c| {
        c.route_body_limits.insert("/api/...".into(), 1);
    })
    .await;
    assert!(err.contains("`/api/...`"), "{err}");
    assert!(err.contains("no such route"), "{err}");
}

#[tokio::test]
async fn oversized_heads_and_garbage_get_json_errors() {
    let host = start(APP, |_| {}).await;
    let get = |target: &str, headers: &str| {
        format!("GET {target} HTTP/1.1\r\nhost: test\r\n{headers}\r\n").into_bytes()
    };
    let filler = |count: usize, size: usize| -> String {
        (0..count)
            .map(|i| format!("x-filler-{i}: {}\r\n", "h".repeat(size)))
            .collect()
    };
    let uri = |len: usize| format!("/{}", "u".repeat(len));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        // Measured by the host itself.
        ("a 20 KB URI", get(&uri(20_000), ""), 414, "uri_too_long"),
        (
            "40 KB of headers",
            get("/hello", &filler(10, 4000)),
            431,
            "headers_too_large",
        ),
        // Refused by hyper, answered in the same JSON.
        ("a 100 KB URI", get(&uri(100_000), ""), 414, "uri_too_long"),
        (
            "1 MB of headers",
            get("/hello", &filler(64, 16_384)),
            431,
            "headers_too_large",
        ),
        (
            "150 headers",
            get("/hello", &filler(150, 8)),
            431,
            "headers_too_large",
        ),
        (
            "a garbage request line",
            b"this is not http\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "binary garbage",
            b"\x16\x03\x01\x02\x00\x01\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (what, request, status, error) in cases {
        let response = exchange(host.addr, &request).await;
        assert_eq!(response.status, status, "{what}: {response:?}");
        let body = response.json_error();
        assert_eq!(body["error"], error, "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
    }
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

#[tokio::test]
async fn garbage_after_good_requests_on_one_connection_is_json() {
    let host = start(APP, |_| {}).await;
    let (read, mut write) = TcpStream::connect(host.addr).await.unwrap().into_split();
    let mut reader = BufReader::new(read);

    write
        .write_all(b"GET /hello HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let response = answer(&mut reader).await;
    assert_eq!((response.status, &response.body[..]), (200, &b"hello"[..]));
    // A component's own 400 is passed through untouched.
    write
        .write_all(b"GET /outbound HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let response = answer(&mut reader).await;
    assert_eq!(
        (response.status, &response.body[..]),
        (400, &b"missing url"[..])
    );
    // Then hyper refuses a request on the same connection: still JSON.
    write.write_all(b"\x00garbage\r\n\r\n").await.unwrap();
    let response = answer(&mut reader).await;
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.json_error()["error"], "bad_request");
    assert_closed(&mut reader).await;
}

#[tokio::test]
async fn expect_continue_is_answered_and_errors_after_it_are_json() {
    let host = start(APP, |_| {}).await;
    let (read, mut write) = TcpStream::connect(host.addr).await.unwrap().into_split();
    let mut reader = BufReader::new(read);
    let head =
        "PUT /kv/cont HTTP/1.1\r\nhost: test\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n";
    write.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(answer(&mut reader).await.status, 100);
    write.write_all(b"hello").await.unwrap();
    let response = answer(&mut reader).await;
    assert_eq!((response.status, &response.body[..]), (200, &b"stored"[..]));
    assert_eq!(host.get("/kv/cont").await, (200, "hello".to_string()));

    write.write_all(b"\x00garbage\r\n\r\n").await.unwrap();
    let response = answer(&mut reader).await;
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.json_error()["error"], "bad_request");
}

// ---------------------------------------------------------------------------
// The compile cache.

fn outcomes(report: &LoadReport) -> Vec<CacheOutcome> {
    report.components.iter().map(|c| c.cache).collect()
}

/// The one compiled entry in `dir` (both test components are the same wasm).
fn cached_artifact(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

/// Replaces `path` the way a writer would (new file, rename), so hosts that
/// still have the old file mapped are unaffected.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("test-tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn compile_cache_serves_the_next_load() {
    use CacheOutcome::*;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("components");
    let with_cache = |c: &mut HostConfig| c.compile_cache = Some(dir.clone());

    let first = start(APP, with_cache).await;
    // The two components are the same wasm: compiled once, then found.
    assert_eq!(outcomes(&first.report), [Miss, Hit]);
    assert_eq!(first.get("/hello").await, (200, "hello".to_string()));
    cached_artifact(&dir);

    let second = start(APP, with_cache).await;
    assert_eq!(outcomes(&second.report), [Hit, Hit]);
    assert_eq!(second.get("/hello").await, (200, "hello".to_string()));
    assert_eq!(second.get("/var/greeting").await, (200, "hi".to_string()));
    assert_eq!(second.get("/locked/var/greeting").await.0, 404);

    let uncached = start(APP, |_| {}).await;
    assert_eq!(outcomes(&uncached.report), [Disabled, Disabled]);
}

#[tokio::test]
async fn corrupted_compile_cache_entry_is_recompiled_and_replaced() {
    use CacheOutcome::*;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("components");
    let with_cache = |c: &mut HostConfig| c.compile_cache = Some(dir.clone());
    drop(start(APP, with_cache).await);
    let artifact = cached_artifact(&dir);

    // Flipped bytes in the middle: caught by the digest.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    replace_file(&artifact, &bytes);
    let host = start(APP, with_cache).await;
    assert_eq!(outcomes(&host.report), [Invalid, Hit]);
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
    // It was replaced: the next load finds it.
    let host = start(APP, with_cache).await;
    assert_eq!(outcomes(&host.report), [Hit, Hit]);

    // Garbage with a matching digest: wasmtime refuses it.
    let garbage = b"not a compiled component";
    replace_file(&artifact, garbage);
    replace_file(
        &artifact.with_extension("sha256"),
        b"b8ae1b0769c5d16b987ea042291aa5162c1ab61785d3df458829a13e3cba7e3d",
    );
    let host = start(APP, with_cache).await;
    assert_eq!(outcomes(&host.report), [Invalid, Hit]);
    assert_eq!(host.get("/hello").await, (200, "hello".to_string()));
}

/// The app of the restart test: one component (so one compilation) on two
/// routes (so route limits can differ).
const ONE_COMPONENT_APP: &str = r#"
spin_manifest_version = 2

[application]
name = "host-restart-test"

[[trigger.http]]
route = "/..."
component = "probe"

[[trigger.http]]
route = "/small/..."
component = "probe"

[component.probe]
source = "{wasm}"
key_value_stores = ["default"]
"#;

/// Starts `crowdgate host` on [`ONE_COMPONENT_APP`] with `flags`; returns
/// it and its URL once it serves.
async fn spawn_host(dir: &Path, name: &str, flags: &[&str]) -> (Proc, String) {
    let manifest = dir.join("spin.toml");
    if !manifest.exists() {
        let text = ONE_COMPONENT_APP.replace("{wasm}", &probe_wasm().display().to_string());
        std::fs::write(&manifest, text).unwrap();
    }
    let mut proc = Proc::spawn(
        name,
        Command::new(crowdgate_bin())
            .arg("host")
            .arg("--manifest")
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env("RUST_LOG", "info")
            .env("CROWDGATE_LOG_FORMAT", "json"),
        dir,
    );
    let url = format!(
        "http://{}",
        proc.listening_addr("edge host listening").await
    );
    wait_for(&format!("{url}/hello"), &mut [&mut proc]).await;
    (proc, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_host_loads_components_from_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache").display().to_string();
    let flags = [
        "--compile-cache",
        &cache,
        "--max-body-bytes",
        "4096",
        "--route-body-limit",
        "/small/...=16",
    ];
    let (mut first, _) = spawn_host(dir.path(), "host-1", &flags).await;
    first.kill();
    let log = first.log();
    assert!(log.contains(r#""cache":"miss""#), "{log}");
    assert!(log.contains(r#""from_cache":0"#), "{log}");

    let started = Instant::now();
    let (second, url) = spawn_host(dir.path(), "host-2", &flags).await;
    eprintln!("the restarted host served within {:?}", started.elapsed());
    let log = second.log();
    assert!(log.contains(r#""cache":"hit""#), "{log}");
    assert!(log.contains(r#""from_cache":1"#), "{log}");

    // The body limit flags reach the host.
    let client = reqwest::Client::new();
    let put = |path: &str, len: usize| {
        client
            .put(format!("{url}{path}"))
            .body(vec![b'b'; len])
            .send()
    };
    assert_eq!(put("/small/kv/x", 17).await.unwrap().status(), 413);
    assert_eq!(put("/small/kv/x", 16).await.unwrap().status(), 200);
    assert_eq!(put("/kv/x", 4096).await.unwrap().status(), 200);
    assert_eq!(put("/kv/x", 4097).await.unwrap().status(), 413);

    // `--no-compile-cache` compiles.
    let (third, _) = spawn_host(dir.path(), "host-3", &["--no-compile-cache"]).await;
    let log = third.log();
    assert!(log.contains(r#""cache":"disabled""#), "{log}");
}
