//! `crowdgate dev-identity` and `crowdgate dev-token`: a stand-in for the
//! crowdfunding platform's sign-in, for local development only.
//!
//! In production the platform signs investors in and hands each a
//! short-lived identity token; the edge verifies it with the platform's
//! JWKS. On one machine there is no platform, so `dev-identity` serves a
//! sign-in page where anyone can be any investor (one click), answers with
//! the token on a redirect to the edge's `/signin`, and publishes its key at
//! `/.well-known/jwks.json`; `dev-token` prints the same kind of token for
//! scripts (`curl -H "Authorization: Bearer $(crowdgate dev-token demo-001)"`).
//! Both sign with one key file (`<dir>/dev-identity.key`), so tokens from
//! either verify against the provider's JWKS.
//!
//! Everything that signs is `crowdgate_identity::dev::DevSigner`'s; this
//! module is the HTTP and the flags. It never logs a token.

use anyhow::Context;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use crowdgate::demo::{self, DemoInvestor};
use crowdgate_identity::IdentityClaims;
use crowdgate_identity::dev::DevSigner;
use crowdgate_protocol::html::escape;
use crowdgate_protocol::invest::{MAX_AMOUNT_PENCE, validate_investor_id};
use crowdgate_protocol::money::pounds;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;

/// The key file's name inside `--dir`.
pub const KEY_FILE: &str = "dev-identity.key";
/// Longest token lifetime the flags accept: a day (real ones are minutes).
const MAX_TTL_SECONDS: u64 = 24 * 60 * 60;

#[derive(Args)]
pub struct DevIdentityArgs {
    /// Address to serve the sign-in page and the JWKS on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// Directory of the signing key (`<dir>/dev-identity.key`, created if absent).
    #[arg(long, default_value = ".crowdgate")]
    pub dir: PathBuf,
    /// The tokens' `iss` [default: http://<listen>].
    #[arg(long, value_parser = non_empty)]
    pub issuer: Option<String>,
    /// The tokens' `aud`: the audience the edge accepts (`crowdgate up`'s
    /// edge accepts `demo` in every round; an edge with no audience of its
    /// own accepts a round's id in that round).
    #[arg(long, default_value = "demo", value_parser = non_empty)]
    pub audience: String,
    /// Where a signed-in investor is sent, with `?identity_token=<JWT>` added.
    #[arg(long, default_value = "http://127.0.0.1:3000/signin", value_parser = parse_return_to)]
    pub return_to: Url,
    /// Lifetime of each token, in seconds (1 to 86400).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS))]
    pub token_ttl_seconds: u64,
}

#[derive(Args)]
pub struct DevTokenArgs {
    /// The investor id (the token's `sub`), e.g. demo-001.
    #[arg(value_parser = parse_investor)]
    pub investor: String,
    /// Directory of the signing key, as for `crowdgate dev-identity` (created if absent).
    #[arg(long, default_value = ".crowdgate")]
    pub dir: PathBuf,
    /// The token's `iss`: the provider's issuer.
    #[arg(long, default_value = "http://127.0.0.1:3001", value_parser = non_empty)]
    pub issuer: String,
    /// The token's `aud`: the audience the edge accepts (`crowdgate up`'s
    /// edge accepts `demo` in every round; an edge with no audience of its
    /// own accepts a round's id in that round).
    #[arg(long, default_value = "demo", value_parser = non_empty)]
    pub audience: String,
    /// Lifetime of the token, in seconds (1 to 86400; tokens are accepted up to 30 s past expiry, for clock skew).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS))]
    pub ttl_seconds: u64,
    /// The token's `name` [default: the demo investor's name, if any].
    #[arg(long)]
    pub name: Option<String>,
    /// The investor's own maximum, pence (`max_investment_pence`)
    /// [default: the demo investor's limit, if any].
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=MAX_AMOUNT_PENCE))]
    pub max_investment_pence: Option<i64>,
}

/// `crowdgate dev-token`: prints one token (and a newline) on stdout.
pub async fn token(args: DevTokenArgs) -> anyhow::Result<()> {
    // A token signed with a key no provider publishes is refused by the
    // waiting room; so use the running provider's key, never a new one.
    let key = args.dir.join(KEY_FILE);
    if !key.exists() {
        anyhow::bail!(
            "no development identity key at {}: start `./dev up` (or `./dev crowdgate dev-identity`) first, \
             or pass the --dir it uses",
            key.display()
        );
    }
    let signer = load_signer(&args.dir)?;
    let claims = claims_for(
        &args.issuer,
        &args.audience,
        &args.investor,
        args.name.as_deref(),
        args.max_investment_pence,
        now_s()?,
        args.ttl_seconds,
    );
    println!("{}", signer.mint(&claims));
    Ok(())
}

/// `crowdgate dev-identity`: serves until Ctrl-C/SIGTERM.
pub async fn run(args: DevIdentityArgs) -> anyhow::Result<()> {
    let signer = load_signer(&args.dir)?;
    let issuer = args
        .issuer
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}: is it in use?", args.listen))?;
    tracing::warn!(
        listen = %args.listen,
        %issuer,
        audience = %args.audience,
        kid = %signer.kid(),
        "the DEVELOPMENT identity provider is on: anyone can sign in as any investor. \
         It is for local development only and must never run in production"
    );
    let provider = Provider::new(
        signer,
        issuer,
        args.audience,
        args.return_to,
        args.token_ttl_seconds,
    );
    axum::serve(listener, router(Arc::new(provider)))
        .with_graceful_shutdown(super::shutdown_signal())
        .await
        .context("the development identity provider stopped")
}

/// The key both commands sign with.
fn load_signer(dir: &Path) -> anyhow::Result<DevSigner> {
    Ok(DevSigner::load_or_create(&dir.join(KEY_FILE))?)
}

/// The claims for `investor`: the demo investor's name and limit unless
/// `name` / `max_investment_pence` say otherwise.
fn claims_for(
    issuer: &str,
    audience: &str,
    investor: &str,
    name: Option<&str>,
    max_investment_pence: Option<i64>,
    now_s: u64,
    ttl_s: u64,
) -> IdentityClaims {
    let mut claims = DevSigner::claims(issuer, audience, investor, now_s, ttl_s);
    claims.name = name
        .and_then(clean_name)
        .or_else(|| demo::default_name(investor));
    claims.max_investment_pence = max_investment_pence
        .or_else(|| demo::sign_in_demo_investor(investor).and_then(|d| d.max_investment_pence));
    claims
}

/// A typed name fit for the `name` claim: control characters dropped,
/// trimmed, cut to what the verifier keeps; `None` if nothing is left.
fn clean_name(name: &str) -> Option<String> {
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(crowdgate_identity::MAX_NAME_CHARS)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

fn now_s() -> anyhow::Result<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .context("the system clock is before 1970")
}

fn non_empty(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(text.to_string())
}

fn parse_investor(text: &str) -> Result<String, String> {
    validate_investor_id(text).map_err(|e| {
        format!(
            "{}; for example demo-001 (`crowdgate up` opens demo-001 … demo-200 and demo-skint)",
            e.message.replacen("investor_id", "the investor id", 1)
        )
    })?;
    Ok(text.to_string())
}

fn parse_return_to(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL, e.g. http://127.0.0.1:3000/signin".into());
    }
    Ok(url)
}

/// What the handlers share.
struct Provider {
    signer: DevSigner,
    issuer: String,
    audience: String,
    return_to: Url,
    ttl_s: u64,
    /// The JWKS document, made once.
    jwks: String,
    /// The page's Content-Security-Policy: nothing but inline style, and
    /// forms only to ourselves and on to `return_to`.
    csp: HeaderValue,
}

impl Provider {
    fn new(
        signer: DevSigner,
        issuer: String,
        audience: String,
        return_to: Url,
        ttl_s: u64,
    ) -> Provider {
        let jwks = signer.jwks_json();
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; \
             frame-ancestors 'none'; base-uri 'none'",
            return_to.origin().ascii_serialization()
        );
        Provider {
            signer,
            issuer,
            audience,
            return_to,
            ttl_s,
            jwks,
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    }
}

type Shared = Arc<Provider>;

fn router(provider: Shared) -> Router {
    Router::new()
        .route("/", get(sign_in_page))
        .route("/sign-in", post(sign_in))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/healthz", get(healthz))
        .with_state(provider)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn jwks(State(provider): State<Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        provider.jwks.clone(),
    )
        .into_response()
}

/// The round a sign-in is for: the waiting room's sign-in link names a
/// round other than its default (`?round=<id>`), and signing in returns
/// there (`/r/<id>/signin` instead of `/signin`).
#[derive(Deserialize, Default)]
struct ForRound {
    #[serde(default)]
    round: String,
}

impl ForRound {
    /// The round, if it can be one (anything else is ignored: the default round).
    fn round(&self) -> Option<&str> {
        let round = self.round.trim();
        crowdgate_protocol::routes::check_round_id(round)
            .ok()
            .map(|_| round)
    }
}

async fn sign_in_page(
    State(provider): State<Shared>,
    Query(for_round): Query<ForRound>,
) -> Response {
    page_response(&provider, StatusCode::OK, None, "", "", for_round.round())
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    investor: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    round: String,
}

/// Where a signed-in investor goes: `return_to`, or for a round other than
/// the default, that round's sign-in (`…/signin` becomes `…/r/<id>/signin`).
fn return_to_for(return_to: &Url, round: Option<&str>) -> Url {
    let mut url = return_to.clone();
    if let Some(round) = round {
        let path = url.path().to_string();
        let (head, last) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        url.set_path(&format!("{head}/r/{round}/{last}"));
    }
    url
}

/// Signs the investor in: 303 to `return_to?identity_token=<JWT>`, or the
/// page again with what is wrong.
async fn sign_in(
    State(provider): State<Shared>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        let message = "The sign-in form could not be read; use the buttons below.";
        return page_response(
            &provider,
            StatusCode::BAD_REQUEST,
            Some(message),
            "",
            "",
            None,
        );
    };
    let for_round = ForRound {
        round: form.round.clone(),
    };
    let round = for_round.round();
    let investor = form.investor.trim();
    if let Err(problem) = validate_investor_id(investor) {
        let message = problem
            .message
            .replacen("investor_id", "The investor id", 1);
        return page_response(
            &provider,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&message),
            investor,
            &form.name,
            round,
        );
    }
    let now = match now_s() {
        Ok(now) => now,
        Err(err) => {
            tracing::error!("cannot sign in: {err:#}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the system clock is wrong",
            )
                .into_response();
        }
    };
    let claims = claims_for(
        &provider.issuer,
        &provider.audience,
        investor,
        Some(&form.name),
        None,
        now,
        provider.ttl_s,
    );
    let token = provider.signer.mint(&claims);
    let mut location = return_to_for(&provider.return_to, round);
    location
        .query_pairs_mut()
        .append_pair("identity_token", &token);
    tracing::info!(investor, "signed in by the development identity provider");
    let Ok(location) = HeaderValue::from_str(location.as_str()) else {
        tracing::error!("the return-to URL with a token is not a valid header value");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

fn page_response(
    provider: &Provider,
    status: StatusCode,
    message: Option<&str>,
    investor: &str,
    name: &str,
    round: Option<&str>,
) -> Response {
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::CONTENT_SECURITY_POLICY, provider.csp.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    let html = page(provider, message, investor, name, round);
    (status, headers, Html(html)).into_response()
}

/// The sign-in page: self-contained (no scripts, no external anything),
/// every variable escaped.
fn page(
    provider: &Provider,
    message: Option<&str>,
    investor: &str,
    name: &str,
    round: Option<&str>,
) -> String {
    // Each form carries the round back (escaped: a round id is a-z0-9-).
    let round_field = round
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"round\" value=\"{}\">",
                escape(r)
            )
        })
        .unwrap_or_default();
    let buttons: String = demo::SIGN_IN_DEMO_INVESTORS
        .iter()
        .map(|demo| demo_button(demo, &round_field))
        .collect();
    let return_to = return_to_for(&provider.return_to, round);
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — development identity provider</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }}
.danger {{ background: #b00020; color: #fff; padding: 1rem 1.5rem; font-size: 1.15rem; border-bottom: 6px solid #ffd600; }}
.danger strong {{ display: block; font-size: 1.4rem; }}
.danger code {{ background: #fff; color: #b00020; }}
main {{ max-width: 46rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }}
.investors {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: .6rem; }}
.investors form {{ margin: 0; }}
.investors button {{ width: 100%; text-align: left; padding: .7rem .8rem; border: 1px solid #bbb; border-radius: .4rem; background: #fff; cursor: pointer; font: inherit; }}
.investors button:hover, .investors button:focus {{ border-color: #1a56db; outline: 2px solid #1a56db; }}
.who {{ display: block; font-weight: 600; }}
.what {{ display: block; font-size: .85rem; color: #555; }}
.error {{ background: #fde8e8; border: 1px solid #b00020; padding: .6rem .8rem; border-radius: .4rem; }}
label {{ display: block; margin: .6rem 0 .2rem; }}
input {{ font: inherit; padding: .4rem; width: 100%; max-width: 22rem; box-sizing: border-box; }}
.typed button {{ margin-top: .8rem; font: inherit; padding: .5rem 1rem; }}
.small {{ font-size: .85rem; color: #555; }}
code {{ background: #eee; padding: 0 .2rem; }}
</style>
</head>
<body>
<div class="danger" role="alert">
<strong>Development identity provider — for local development only; anyone can sign in as anyone.</strong>
It signs identity tokens for audience <code>{audience}</code> as issuer <code>{issuer}</code>. Never run it in production.
</div>
<main>
<h1>Sign in as a demo investor</h1>
{message}
<div class="investors">
{buttons}</div>
<h2>Or as any investor</h2>
<form class="typed" method="post" action="/sign-in">{round_field}
<label for="investor">Investor id (letters, digits, - _ . @)</label>
<input id="investor" name="investor" required maxlength="64" value="{investor}" autocomplete="off" spellcheck="false">
<label for="name">Display name (optional)</label>
<input id="name" name="name" maxlength="{max_name}" value="{name}" autocomplete="off">
<br><button type="submit">Sign in</button>
</form>
<p class="small">Signing in sends you to <code>{return_to}</code> with a token valid for {ttl} seconds.
Scripts: <code>crowdgate dev-token demo-001</code>. Public key: <a href="/.well-known/jwks.json">/.well-known/jwks.json</a>.</p>
</main>
</body>
</html>
"#,
        audience = escape(&provider.audience),
        issuer = escape(&provider.issuer),
        investor = escape(investor),
        name = escape(name),
        max_name = crowdgate_identity::MAX_NAME_CHARS,
        return_to = escape(return_to.as_str()),
        ttl = provider.ttl_s,
    )
}

/// One demo investor's one-click sign-in.
fn demo_button(demo: &DemoInvestor, round_field: &str) -> String {
    let limit = demo
        .max_investment_pence
        .map(|pence| format!(" · KYC limit {}", pounds(pence)))
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"/sign-in\">{round_field}<input type=\"hidden\" name=\"investor\" value=\"{id}\">\
         <button type=\"submit\"><span class=\"who\">{name}</span>\
         <span class=\"what\">{id} · balance {balance}{limit}</span></button></form>\n",
        id = escape(demo.investor_id),
        name = escape(demo.name),
        balance = pounds(demo.balance_pence),
        limit = escape(&limit),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdgate_identity::{KeySet, Verifier};

    const ISSUER: &str = "http://127.0.0.1:3001";

    /// A provider on a free loopback port, with a fixed key.
    async fn serve(return_to: &str) -> (String, tokio::task::JoinHandle<()>) {
        let provider = Provider::new(
            DevSigner::from_seed([9; 32]),
            ISSUER.to_string(),
            "demo".to_string(),
            parse_return_to(return_to).expect("a URL"),
            600,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("has an address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(Arc::new(provider))).await;
        });
        (format!("http://{addr}"), server)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client")
    }

    #[tokio::test]
    async fn signing_in_redirects_with_a_token_the_jwks_verifies() {
        let (base, server) = serve("http://127.0.0.1:3000/signin?from=dev").await;
        let answer = client()
            .post(format!("{base}/sign-in"))
            .form(&[("investor", "demo-002")])
            .send()
            .await
            .expect("answers");
        assert_eq!(answer.status(), 303);
        let location = answer.headers()[header::LOCATION].to_str().expect("ASCII");
        let location = Url::parse(location).expect("a URL");
        assert_eq!(location.path(), "/signin");
        let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("from".to_string(), "dev".to_string()));
        assert_eq!(pairs[1].0, "identity_token");

        let jwks = client()
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .expect("answers");
        assert_eq!(jwks.headers()[header::CACHE_CONTROL], "max-age=60");
        let keys = KeySet::from_jwks(&jwks.text().await.expect("a body")).expect("a JWKS");
        let verifier = Verifier {
            issuer: ISSUER.into(),
            audience: "demo".into(),
        };
        let identity = verifier
            .verify(&pairs[1].1, &keys, now_s().expect("a clock"))
            .expect("verifies");
        assert_eq!(identity.investor_id, "demo-002");
        assert_eq!(identity.name.as_deref(), Some("Mary Somerville"));
        assert_eq!(identity.max_investment_pence, Some(50_000));
        server.abort();
    }

    /// Another round's sign-in link names the round; signing in returns to
    /// that round's sign-in. A value that cannot be a round is ignored.
    #[tokio::test]
    async fn a_sign_in_for_another_round_returns_to_that_round() {
        let (base, server) = serve("http://127.0.0.1:3000/signin").await;
        let page = client()
            .get(format!("{base}/?round=bond"))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("a page");
        assert!(
            page.contains(r#"<input type="hidden" name="round" value="bond">"#)
                && page.contains("http://127.0.0.1:3000/r/bond/signin"),
            "{page}"
        );
        for (round, path) in [
            ("bond", "/r/bond/signin"),
            ("Not A Round", "/signin"),
            ("", "/signin"),
        ] {
            let answer = client()
                .post(format!("{base}/sign-in"))
                .form(&[("investor", "demo-002"), ("round", round)])
                .send()
                .await
                .expect("answers");
            assert_eq!(answer.status(), 303);
            let location = answer.headers()[header::LOCATION].to_str().expect("ASCII");
            assert_eq!(
                Url::parse(location).expect("a URL").path(),
                path,
                "{round:?}"
            );
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_bad_investor_id_gets_the_page_again_escaped() {
        let (base, server) = serve("http://127.0.0.1:3000/signin").await;
        let answer = client()
            .post(format!("{base}/sign-in"))
            .form(&[("investor", "<script>x</script>"), ("name", "\"Eve\"")])
            .send()
            .await
            .expect("answers");
        assert_eq!(answer.status(), 422);
        let page = answer.text().await.expect("a body");
        assert!(page.contains("class=\"error\""), "{page}");
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&quot;Eve&quot;"), "{page}");
        server.abort();
    }

    #[tokio::test]
    async fn the_page_warns_and_offers_the_demo_investors() {
        let (base, server) = serve("http://127.0.0.1:3000/signin").await;
        let answer = client().get(&base).send().await.expect("answers");
        assert_eq!(answer.status(), 200);
        let csp = answer.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ASCII")
            .to_string();
        assert!(
            csp.contains("form-action 'self' http://127.0.0.1:3000"),
            "{csp}"
        );
        let page = answer.text().await.expect("a body");
        assert!(page.contains("anyone can sign in as anyone"), "{page}");
        assert!(page.contains("demo-skint"), "{page}");
        assert!(page.contains("KYC limit £500.00"), "{page}");
        assert!(page.contains("Ada Lovelace"), "{page}");
        let health = client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("answers");
        assert_eq!(health.status(), 200);
        server.abort();
    }

    #[test]
    fn claims_take_the_demo_investors_defaults_unless_told() {
        let claims = claims_for(ISSUER, "demo", "demo-002", None, None, 100, 600);
        assert_eq!(claims.name.as_deref(), Some("Mary Somerville"));
        assert_eq!(claims.max_investment_pence, Some(50_000));
        assert_eq!((claims.iat, claims.exp), (100, 700));
        let claims = claims_for(ISSUER, "demo", "demo-002", Some("  M  "), Some(7), 100, 600);
        assert_eq!(claims.name.as_deref(), Some("M"));
        assert_eq!(claims.max_investment_pence, Some(7));
        let claims = claims_for(
            ISSUER,
            "demo",
            "carol@example.com",
            Some(""),
            None,
            100,
            600,
        );
        assert_eq!(claims.name, None);
        assert_eq!(claims.max_investment_pence, None);
    }

    #[test]
    fn flags_are_checked() {
        assert!(parse_investor("demo-001").is_ok());
        let err = parse_investor("no spaces").expect_err("refused");
        assert!(err.contains("demo-001"), "{err}");
        assert!(parse_return_to("ftp://x/").is_err());
        assert!(parse_return_to("/signin").is_err());
        assert!(non_empty(" ").is_err());
    }
}
