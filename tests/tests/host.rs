//! Integration tests for `crowdgate-wasm-host`: real wasm, real HTTP.
//!
//! Each test writes a `spin.toml` into a temporary directory pointing at the
//! prebuilt probe component (`tests/components/host-probe`), loads a `Host`,
//! serves it on an ephemeral port and talks to it with reqwest. Build the
//! probe first: `cargo build --target wasm32-wasip2 --release -p host-probe`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crowdgate_wasm_host::{Host, HostConfig, LoadError};

/// Path of the prebuilt probe component.
fn probe_wasm() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let wasm = target.join("wasm32-wasip2/release/host_probe.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: run `cargo build --target wasm32-wasip2 --release -p host-probe` first",
        wasm.display()
    );
    wasm
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
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(host.serve(listener, async {
        let _ = rx.await;
    }));
    TestHost {
        addr,
        client: reqwest::Client::new(),
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
    let (client, url) = (host.client.clone(), host.url("/loop"));
    let busy = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = host.client.get(host.url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
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
