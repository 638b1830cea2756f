//! Outbound HTTP from components: the allow-list and the pooled client.
//!
//! Every `wasi:http/outgoing-handler` request goes through
//! [`OutboundHttp::send_request`]. A request whose scheme, host and port are
//! not covered by the component's `allowed_outbound_hosts` fails with
//! `HttpRequestDenied` (the guest sees `ErrorCode::HttpRequestDenied`);
//! nothing touches the network.
//!
//! Allowed plain-HTTP requests share one connection pool for the whole host
//! (hyper-util's pooling client), so the hot path — one call from the edge to
//! core per join or investment — reuses warm keep-alive connections instead
//! of paying a TCP handshake per request; instances are per request, the
//! pool is not. HTTPS requests use wasmtime-wasi-http's default sender (a
//! fresh TLS connection each time): Crowdgate's components only call core
//! over plain HTTP inside the deployment.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How long an idle pooled connection is kept before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream host.
const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// Time allowed to establish a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the response headers when the guest sets no timeout.
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);

/// One `allowed_outbound_hosts` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` for `*://`.
    scheme: Option<Scheme>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com` → `.example.com`: any subdomain, not the domain itself.
    Subdomain(String),
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// No port written: the scheme's default port.
    Default,
    Exact(u16),
}

impl AllowedHost {
    /// Parses an entry such as `http://127.0.0.1:8080`, `http://localhost:*`,
    /// `https://*.example.com` or `*://*:*`.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let bad = |why: &str| format!("allowed_outbound_hosts entry `{entry}`: {why}");
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| bad("expected `scheme://host[:port]`"))?;
        let scheme = match scheme {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            "*" => None,
            _ => return Err(bad("scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("paths are not allowed"));
        }
        let (host, port) = split_host_port(rest);
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(p.parse().map_err(|_| bad("invalid port"))?),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            HostPattern::Subdomain(format!(".{domain}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(bad("invalid host"));
        } else if host == "self" {
            return Err(bad(
                "`self` is not supported by this host; name the address",
            ));
        } else {
            HostPattern::Exact(host)
        };
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomain(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostPattern::Exact(h) => h == host,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => port == scheme.default_port(),
            PortPattern::Exact(p) => p == port,
        };
        scheme_ok && host_ok && port_ok
    }
}

/// `host:port` → (`host`, `Some(port)`); handles `[v6]:port`.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(v6) = authority.strip_prefix('[')
        && let Some((host, rest)) = v6.split_once(']')
    {
        return (host, rest.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// A component's outbound allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<AllowedHost>,
}

impl AllowList {
    /// Parses already-expanded `allowed_outbound_hosts` entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let entries = entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether a request to the absolute `uri` may be sent.
    pub fn allows(&self, uri: &Uri) -> bool {
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return false,
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        self.entries.iter().any(|e| e.allows(scheme, &host, port))
    }
}

/// The host-wide outbound HTTP client; cheap to clone (shares its pool).
#[derive(Clone, Debug)]
pub struct OutboundClient {
    client: Client<HttpConnector, WasiBody>,
}

impl OutboundClient {
    /// Builds the pooled client. Must be called inside a tokio runtime only
    /// when requests are sent; construction itself does no I/O.
    pub fn new() -> OutboundClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .build(connector);
        OutboundClient { client }
    }
}

impl Default for OutboundClient {
    fn default() -> Self {
        OutboundClient::new()
    }
}

/// The per-instance `wasi:http` hooks: applies the component's allow-list
/// and sends allowed requests through the shared client.
pub struct OutboundHttp {
    /// The calling component's allow-list.
    pub allow: Arc<AllowList>,
    /// The host-wide pooled client.
    pub client: OutboundClient,
    /// The calling component's id, for logs.
    pub component: Arc<str>,
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        if !self.allow.allows(request.uri()) {
            tracing::warn!(
                component = %self.component,
                uri = %request.uri(),
                "outbound request denied: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if request.uri().scheme_str() == Some("https") {
            return Box::new(async move {
                let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
                Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as IoFuture))
            });
        }
        let client = self.client.client.clone();
        let first_byte = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);
        Box::new(async move {
            let response = tokio::time::timeout(first_byte, client.request(request))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?
                .map_err(|e| {
                    tracing::warn!(error = ?e, "outbound request failed");
                    if e.is_connect() {
                        Error::ConnectionRefused
                    } else {
                        Error::HttpProtocolError
                    }
                })?;
            let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
            // The pool drives the connection itself; there is no per-request
            // I/O task to report on.
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], uri: &str) -> bool {
        AllowList::parse(entries)
            .unwrap()
            .allows(&uri.parse().unwrap())
    }

    #[test]
    fn exact_entry_matches_scheme_host_and_port() {
        let e = ["http://127.0.0.1:8080"];
        assert!(allows(&e, "http://127.0.0.1:8080/api/join"));
        assert!(!allows(&e, "http://127.0.0.1:8081/"));
        assert!(!allows(&e, "https://127.0.0.1:8080/"));
        assert!(!allows(&e, "http://localhost:8080/"));
    }

    #[test]
    fn missing_port_means_the_default_port() {
        let e = ["https://api.example.com"];
        assert!(allows(&e, "https://api.example.com/x"));
        assert!(allows(&e, "https://API.example.com:443/x"));
        assert!(!allows(&e, "https://api.example.com:8443/x"));
    }

    #[test]
    fn wildcards() {
        assert!(allows(&["http://localhost:*"], "http://localhost:3000/"));
        assert!(allows(&["http://localhost:*"], "http://localhost/"));
        let sub = ["https://*.example.com"];
        assert!(allows(&sub, "https://a.example.com/"));
        assert!(allows(&sub, "https://a.b.example.com/"));
        assert!(!allows(&sub, "https://example.com/"));
        assert!(!allows(&sub, "https://badexample.com/"));
        assert!(allows(&["*://*:*"], "http://anything:1/"));
        assert!(allows(&["*://*:*"], "https://anything/"));
        assert!(allows(&["http://[::1]:8080"], "http://[::1]:8080/"));
    }

    #[test]
    fn empty_list_denies_everything() {
        assert!(!allows(&[], "http://127.0.0.1/"));
    }

    #[test]
    fn invalid_entries_are_rejected() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://x:port",
            "http://x/path",
            "http://a*b",
            "http://self",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
