//! Investor identity at the edge: the deployment's identity settings (Spin
//! variables), the provider's keys, and verifying an identity token with
//! them. Deciding whether a token is good is `crowdgate_identity`'s; this
//! module only finds the keys.
//!
//! Keys are static when any of these is set (all that are set count):
//! `identity_jwks` (a JWKS document), `identity_public_key` (one PEM public
//! key) and `identity_shared_secret` (one HS256 secret). Otherwise they are
//! the provider's JWKS, fetched from `identity_provider_url` +
//! `identity_jwks_path` (the origin must be in `allowed_outbound_hosts`).
//!
//! A fetched JWKS is cached in Spin key-value for
//! `identity_jwks_max_age_seconds` (so a key the provider removes stops
//! working within that time). Fetches give up after [`FETCH_TIMEOUT`] at
//! each step, and while one is under way other requests keep using the
//! stale copy. A token naming a key the cache lacks (the
//! provider rotated) fetches again at once — at most once per
//! `identity_jwks_refetch_seconds`, so a flood of made-up key ids cannot turn
//! the edge into a load generator against the provider. If the provider
//! cannot be reached, a cached JWKS up to [`STALE_USABLE_MS`] old still
//! verifies; with none, a failed fetch is not tried again for
//! [`FAILED_FETCH_BACKOFF_MS`], and joins meanwhile are answered 503 at
//! once rather than each waiting out [`FETCH_TIMEOUT`] on the provider.
//!
//! A token that verified is remembered in key-value for a short while
//! ([`crowdgate_identity::memo`]: by its digest, bounded, at most a minute,
//! never past its expiry nor past the fetched JWKS's max age), so a
//! visitor's later requests skip the signature check, the dearest step of a
//! signed-in request.

use crate::settings::{optional_variable, variable};
use crowdgate_identity::memo::{self, MemoKey};
use crowdgate_identity::{Identity, KeySet, Verifier};
use crowdgate_protocol::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::key_value::Store;

/// A fetched JWKS stays usable this long when the provider is unreachable.
pub const STALE_USABLE_MS: u64 = 3_600_000;
/// Largest JWKS document read (real ones are a few KB).
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a JWKS fetch may take at each step (connect, first byte, between
/// bytes): a provider that hangs costs a join this much, not the host's
/// whole request timeout.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// While one request fetches an expired JWKS, others keep verifying with
/// the stale copy for this long instead of all fetching at once.
const REFRESH_LEASE_MS: u64 = 10_000;
/// With no usable JWKS, how long after a fetch was tried (and failed, or
/// is still under way) the provider is left alone: checks meanwhile fail
/// at once with 503 `unavailable`.
pub const FAILED_FETCH_BACKOFF_MS: u64 = 5_000;

/// Where the keys come from.
enum KeySource {
    Static(KeySet),
    Fetched {
        url: String,
        max_age_ms: u64,
        refetch_ms: u64,
    },
}

/// The deployment's identity settings.
pub struct IdentitySettings {
    pub verifier: Verifier,
    /// The platform's sign-in page, linked from every identity refusal.
    pub sign_in_url: Option<String>,
    source: KeySource,
    /// What decides a check besides the token (issuer, audience, which
    /// keys): part of every memo's key, so changing any of it orphans them.
    memo_context: String,
}

impl IdentitySettings {
    /// Reads the `identity_*` variables. `None` when no issuer is set: this
    /// deployment verifies no identities (an anonymous room, or a
    /// misconfiguration the caller reports).
    pub fn load(settings: &crate::Settings) -> Result<Option<IdentitySettings>, ApiError> {
        let Some(issuer) = optional_variable("identity_issuer")? else {
            return Ok(None);
        };
        let audience =
            optional_variable("identity_audience")?.unwrap_or_else(|| settings.round.clone());
        let sign_in_url = optional_variable("identity_sign_in_url")?
            .map(|url| sign_in_url_for(&url, &settings.round, &settings.default_round));
        let shared_secret = optional_variable("identity_shared_secret")?.map(String::into_bytes);
        let jwks = optional_variable("identity_jwks")?;
        let public_key = optional_variable("identity_public_key")?;
        let keys_fingerprint = memo::fingerprint(&[
            jwks.as_deref().map(str::as_bytes),
            public_key.as_deref().map(str::as_bytes),
            shared_secret.as_deref(),
        ]);
        let source = if jwks.is_none() && public_key.is_none() && shared_secret.is_none() {
            KeySource::Fetched {
                url: format!(
                    "{}{}",
                    variable("identity_provider_url")?.trim_end_matches('/'),
                    variable("identity_jwks_path")?
                ),
                max_age_ms: seconds("identity_jwks_max_age_seconds")? * 1000,
                refetch_ms: seconds("identity_jwks_refetch_seconds")? * 1000,
            }
        } else {
            let mut keys = match jwks {
                Some(jwks) => {
                    KeySet::from_jwks(&jwks).map_err(|e| misconfigured("identity_jwks", e))?
                }
                None => KeySet::default(),
            };
            if let Some(pem) = public_key {
                keys = keys
                    .with_public_key_pem(None, &pem)
                    .map_err(|e| misconfigured("identity_public_key", e))?;
            }
            KeySource::Static(with_secret(keys, shared_secret.as_deref())?)
        };
        let memo_context = match &source {
            // A fetched JWKS may change under the same URL: memos are
            // bounded in time instead (`memo::MEMO_TTL_S`).
            KeySource::Fetched { url, .. } => format!("{issuer}\n{audience}\nfetched {url}"),
            KeySource::Static(_) => format!("{issuer}\n{audience}\nstatic {keys_fingerprint}"),
        };
        Ok(Some(IdentitySettings {
            verifier: Verifier { issuer, audience },
            sign_in_url,
            source,
            memo_context,
        }))
    }

    /// Verifies `token` at `now_ms`. A refusal is the 401 the visitor gets
    /// (with the sign-in link); keys that cannot be had are a 503. A token
    /// that verified moments ago is recalled from its memo instead.
    pub async fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, ApiError> {
        let now_s = now_ms / 1000;
        let key = MemoKey::new(&self.memo_context, token);
        // Without key-value (not granted) every request checks in full.
        let store = Store::open_default().ok();
        let recalled = store
            .as_ref()
            .and_then(|store| store.get(&key.slot).ok().flatten())
            .and_then(|stored| key.recall(&stored, now_s));
        if let Some(identity) = recalled {
            return Ok(identity);
        }
        let identity = self.check(token, now_ms).await?;
        // Fetched keys are trusted until the cached JWKS reaches its max
        // age (a withdrawn key stops working then): so is the memo.
        let keys_trusted_until = match &self.source {
            KeySource::Static(_) => None,
            KeySource::Fetched {
                url, max_age_ms, ..
            } => Some(
                (JwksCache { url }.cached())
                    .map_or(0, |c| c.fetched_at_ms.saturating_add(*max_age_ms) / 1000),
            ),
        };
        let good_until = memo::good_until(now_s, keys_trusted_until);
        if let Some(store) = &store
            && good_until > now_s
        {
            let _ = store.set(&key.slot, &key.memo(&identity, good_until));
        }
        Ok(identity)
    }

    /// The full check of `token`: keys, signature, claims.
    async fn check(&self, token: &str, now_ms: u64) -> Result<Identity, ApiError> {
        let now_s = now_ms / 1000;
        let refuse = |err: crowdgate_identity::IdentityError| self.refusal(err.refusal());
        match &self.source {
            KeySource::Static(keys) => self.verifier.verify(token, keys, now_s).map_err(refuse),
            KeySource::Fetched {
                url,
                max_age_ms,
                refetch_ms,
            } => {
                let cache = JwksCache { url };
                let keys = cache.keys(now_ms, *max_age_ms).await?;
                match self.verifier.verify(token, &keys, now_s) {
                    Err(err)
                        if err.wants_fresh_keys() && cache.may_refetch(now_ms, *refetch_ms) =>
                    {
                        let keys = cache.refresh(now_ms).await?;
                        self.verifier.verify(token, &keys, now_s).map_err(refuse)
                    }
                    result => result.map_err(refuse),
                }
            }
        }
    }

    /// `error` with the sign-in link added to its message.
    pub fn refusal(&self, error: ApiError) -> ApiError {
        with_sign_in_link(error, self.sign_in_url.as_deref())
    }
}

/// The platform's sign-in page, when this deployment verifies identities
/// and names one: what [`IdentitySettings::load`] would say, from two
/// variables and without reading any keys (pages show it on every render).
pub fn sign_in_url(settings: &crate::Settings) -> Option<String> {
    optional_variable("identity_issuer").ok().flatten()?;
    let url = optional_variable("identity_sign_in_url").ok().flatten()?;
    Some(sign_in_url_for(
        &url,
        &settings.round,
        &settings.default_round,
    ))
}

/// The platform's sign-in link for `round`: as configured for the default
/// round; for any other, with `round=<id>` added to its query, so the
/// platform can send the browser back to that round's sign-in,
/// `/r/<id>/signin?identity_token=…` (docs/INTEGRATION.md).
pub fn sign_in_url_for(url: &str, round: &str, default_round: &str) -> String {
    if round == default_round {
        return url.to_string();
    }
    // A round id is a-z, 0-9 and `-`: nothing to escape.
    let (base, fragment) = url.split_once('#').unwrap_or((url, ""));
    let joiner = if base.contains('?') { '&' } else { '?' };
    let fragment = if fragment.is_empty() {
        String::new()
    } else {
        format!("#{fragment}")
    };
    format!("{base}{joiner}round={round}{fragment}")
}

#[cfg(test)]
mod tests {
    use super::sign_in_url_for;

    #[test]
    fn another_rounds_sign_in_link_names_the_round() {
        let url = "https://platform.example/login";
        assert_eq!(sign_in_url_for(url, "demo", "demo"), url);
        assert_eq!(
            sign_in_url_for(url, "bond", "demo"),
            "https://platform.example/login?round=bond"
        );
        assert_eq!(
            sign_in_url_for("https://p.example/login?next=a#top", "bond", ""),
            "https://p.example/login?next=a&round=bond#top"
        );
    }
}

/// `error` with the sign-in link, when there is one, ending its message.
pub fn with_sign_in_link(mut error: ApiError, url: Option<&str>) -> ApiError {
    if let Some(url) = url {
        error.message = format!("{} at {url}", error.message);
    }
    error
}

/// The JWKS of one URL in key-value.
struct JwksCache<'a> {
    url: &'a str,
}

#[derive(Serialize, Deserialize)]
struct CachedJwks {
    fetched_at_ms: u64,
    jwks: String,
}

impl JwksCache<'_> {
    fn store() -> Option<Store> {
        Store::open_default().ok()
    }

    fn cached(&self) -> Option<CachedJwks> {
        let bytes = Self::store()?.get(&format!("jwks:{}", self.url)).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// The keys: cached if younger than `max_age_ms`, else fetched (or the
    /// stale copy if the provider cannot be reached).
    async fn keys(&self, now_ms: u64, max_age_ms: u64) -> Result<KeySet, ApiError> {
        let cached = self.cached();
        if let Some(entry) = &cached
            && now_ms.saturating_sub(entry.fetched_at_ms) < max_age_ms
            && let Ok(keys) = KeySet::from_jwks(&entry.jwks)
        {
            return Ok(keys);
        }
        // Another request is fetching it (or just failed to): meanwhile the
        // stale copy verifies, so a slow provider is waited on once, not by
        // every join.
        let refreshing = |entry: &CachedJwks| {
            self.last_attempt_ms().is_some_and(|at| {
                at > entry.fetched_at_ms && now_ms.saturating_sub(at) < REFRESH_LEASE_MS
            })
        };
        if let Some(entry) = &cached
            && now_ms.saturating_sub(entry.fetched_at_ms) < STALE_USABLE_MS
            && refreshing(entry)
            && let Ok(keys) = KeySet::from_jwks(&entry.jwks)
        {
            return Ok(keys);
        }
        // No keys to fall back on, and the provider was just tried: do not
        // make this check wait on it again.
        let usable = cached
            .as_ref()
            .is_some_and(|entry| now_ms.saturating_sub(entry.fetched_at_ms) < STALE_USABLE_MS);
        let backing_off = self
            .last_attempt_ms()
            .is_some_and(|at| now_ms.saturating_sub(at) < FAILED_FETCH_BACKOFF_MS);
        if !usable && backing_off {
            return Err(keys_unavailable());
        }
        match self.refresh(now_ms).await {
            Ok(keys) => Ok(keys),
            Err(err) => match cached {
                Some(entry) if now_ms.saturating_sub(entry.fetched_at_ms) < STALE_USABLE_MS => {
                    KeySet::from_jwks(&entry.jwks).map_err(|_| err)
                }
                _ => Err(err),
            },
        }
    }

    /// When a fetch was last tried (it may still be under way, or have
    /// failed: a success also moves the cached copy's `fetched_at_ms`).
    fn last_attempt_ms(&self) -> Option<u64> {
        Self::store()
            .and_then(|s| s.get(&format!("jwks-attempt:{}", self.url)).ok().flatten())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.parse::<u64>().ok())
    }

    /// Whether a fetch may be tried now: none in the last `refetch_ms`.
    fn may_refetch(&self, now_ms: u64, refetch_ms: u64) -> bool {
        self.last_attempt_ms()
            .is_none_or(|at| now_ms.saturating_sub(at) >= refetch_ms)
    }

    /// Records that a fetch is tried at `at_ms`.
    fn attempted(&self, at_ms: u64) {
        if let Some(store) = Self::store() {
            let _ = store.set(
                &format!("jwks-attempt:{}", self.url),
                at_ms.to_string().as_bytes(),
            );
        }
    }

    /// Fetches the JWKS, checks it, and caches it.
    async fn refresh(&self, now_ms: u64) -> Result<KeySet, ApiError> {
        self.attempted(now_ms);
        let jwks = fetch(self.url).await.map_err(|why| {
            eprintln!(
                "identity: cannot fetch the provider's keys from {}: {why}",
                self.url
            );
            // The backoff runs from the failure, not from when the fetch
            // began: it may itself have taken the whole fetch timeout.
            self.attempted(crate::now_ms());
            keys_unavailable()
        })?;
        let keys = KeySet::from_jwks(&jwks).map_err(|e| {
            eprintln!("identity: the JWKS at {} is unusable: {e}", self.url);
            ApiError::new(
                ErrorCode::Unavailable,
                "sign-in cannot be checked for a moment (the identity provider's keys are unusable)",
            )
        })?;
        // Once per fetch, what the provider publishes that cannot verify.
        for why in keys.skipped() {
            eprintln!(
                "identity: a key in the JWKS at {} is not used: {why}",
                self.url
            );
        }
        if let Some(store) = Self::store()
            && let Ok(bytes) = serde_json::to_vec(&CachedJwks {
                fetched_at_ms: now_ms,
                jwks,
            })
        {
            let _ = store.set(&format!("jwks:{}", self.url), &bytes);
        }
        Ok(keys)
    }
}

/// 503: the provider's keys could not be had just now.
fn keys_unavailable() -> ApiError {
    ApiError::for_field(
        ErrorCode::Unavailable,
        "identity",
        "sign-in cannot be checked for a moment (the identity provider's keys are unavailable); try again shortly",
    )
}

async fn fetch(url: &str) -> Result<String, String> {
    let request = Request::builder()
        .method(Method::Get)
        .uri(url)
        .header("accept", "application/json")
        .build();
    let response: Response = crate::deadline::send_within(request, FETCH_TIMEOUT).await?;
    if *response.status() != 200 {
        return Err(format!("answered {}", response.status()));
    }
    if response.body().len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    String::from_utf8(response.body().to_vec()).map_err(|_| "not UTF-8".to_string())
}

fn with_secret(keys: KeySet, secret: Option<&[u8]>) -> Result<KeySet, ApiError> {
    match secret {
        None => Ok(keys),
        Some(secret) => keys
            .with_shared_secret(None, secret)
            .map_err(|e| misconfigured("identity_shared_secret", e)),
    }
}

fn seconds(name: &str) -> Result<u64, ApiError> {
    variable(name)?
        .trim()
        .parse()
        .map_err(|_| misconfigured(name, "not a whole number of seconds"))
}

fn misconfigured(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::Misconfigured,
        format!("variable {name} is invalid: {why}"),
    )
}
