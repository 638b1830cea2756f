//! Investor identity: the platform signs its investors in and hands each a
//! short-lived identity token (a JWT); Crowdgate checks it once, when the
//! investor joins, and from then on the investor id travels inside our own
//! signed ticket and pass.
//!
//! This crate only *decides*: given the keys ([`KeySet`], from a JWKS), the
//! expected issuer and audience ([`Verifier`]) and the time, is this token an
//! [`Identity`], and if not, why ([`IdentityError`], which fixes the HTTP
//! answer through [`crowdgate_protocol::ErrorCode`]). Fetching and caching
//! the JWKS is the component's (`spin_support::identity`); minting tokens is
//! the platform's (and the development provider's, with [`IdentityClaims`]).
//! [`memo`] says how a successful check is remembered, so the same token
//! is not checked again on each request (the component keeps the memos).
//!
//! The JOSE work is `jsonwebtoken`'s (RustCrypto backend, so it builds for
//! wasm32-wasip2). What is ours is the policy:
//! - the algorithm comes from the key, never from the token: each key allows
//!   exactly one algorithm, so `alg: none` and HS256-signed-with-the-public-
//!   key are refused by construction;
//! - `iss`, `aud`, `sub`, `exp` and `iat` are required; `exp`, `nbf` and `iat`
//!   are checked on the caller's clock (so tests run on a fixed one);
//! - `sub` must be a valid investor id, and a limit claim can only lower the
//!   round's maximum (core takes the smaller).

mod claims;
#[cfg(feature = "dev-signer")]
pub mod dev;
mod keys;
pub mod memo;

pub use claims::{Identity, IdentityClaims, MAX_NAME_CHARS};
pub use jsonwebtoken::Algorithm;
pub use keys::{KeySet, KeySetError, MIN_SHARED_SECRET_LEN};

use crowdgate_protocol::{ApiError, ErrorCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};

/// Clock skew we tolerate on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_S: u64 = 30;
/// Claims every identity token must carry.
const REQUIRED_CLAIMS: [&str; 5] = ["iss", "aud", "sub", "exp", "iat"];
/// Longest identity token we even try to read; real ones are under 2 KB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why an identity token was refused. Each is a clear 4xx for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the identity token is not a JWT (or is larger than 8 KB)")]
    Malformed,
    #[error("the identity token's claims have the wrong types: {0}")]
    WrongClaimTypes(String),
    #[error("the identity token names key {0:?}, which the identity provider does not publish")]
    UnknownKey(String),
    #[error("the identity token names no key (kid), and the provider publishes several")]
    NoKeyId,
    #[error("the identity token's algorithm {0} is not the one its key is for")]
    WrongAlgorithm(String),
    #[error("the identity token's signature is invalid")]
    BadSignature,
    #[error("the identity token has expired")]
    Expired,
    #[error("the identity token is not valid yet")]
    NotYetValid,
    #[error("the identity token was issued by someone else")]
    WrongIssuer,
    #[error("the identity token is for another audience (round or deployment)")]
    WrongAudience,
    #[error("the identity token has no {0} claim")]
    MissingClaim(String),
    #[error("the identity token's {claim} claim is invalid: {why}")]
    InvalidClaim { claim: &'static str, why: String },
}

impl IdentityError {
    /// The error code: expired → 401 `identity_expired` (sign in again);
    /// everything else → 401 `identity_invalid`. Both mean "go back to the
    /// platform and sign in"; neither ever yields an anonymous place.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            IdentityError::Expired => ErrorCode::IdentityExpired,
            _ => ErrorCode::IdentityInvalid,
        }
    }

    /// Whether fetching the provider's keys again might help (a key we have
    /// not seen yet: the provider may have rotated).
    pub fn wants_fresh_keys(&self) -> bool {
        matches!(self, IdentityError::UnknownKey(_))
    }

    /// The JSON error, naming `identity` as the field at fault.
    pub fn refusal(&self) -> ApiError {
        ApiError::for_field(
            self.error_code(),
            "identity",
            format!("{self}: sign in again"),
        )
    }
}

/// What a deployment expects of identity tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// The only `iss` accepted.
    pub issuer: String,
    /// The only `aud` accepted (the round id, or the deployment's name).
    pub audience: String,
}

impl Verifier {
    /// Verifies `token` with `keys` at `now_s` (Unix seconds).
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        now_s: u64,
    ) -> Result<Identity, IdentityError> {
        if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
            return Err(IdentityError::Malformed);
        }
        let header = decode_header(token).map_err(|e| from_jose(e.kind()))?;
        let key = keys.find(header.kid.as_deref())?;
        // One algorithm per key, whatever the token's header claims.
        if header.alg != key.algorithm {
            return Err(IdentityError::WrongAlgorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        // Required claims are checked below: jsonwebtoken deserialises the
        // claims before it checks the required ones (and counts a claim of
        // the wrong type as absent).
        validation.set_required_spec_claims::<&str>(&[]);
        // Times are checked below on the caller's clock, not the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = decode::<serde_json::Value>(token, &key.decoding, &validation)
            .map_err(|e| from_jose(e.kind()))?;
        for claim in REQUIRED_CLAIMS {
            if data
                .claims
                .get(claim)
                .is_none_or(serde_json::Value::is_null)
            {
                return Err(IdentityError::MissingClaim(claim.to_string()));
            }
        }
        let claims: IdentityClaims = serde_json::from_value(data.claims)
            .map_err(|e| IdentityError::WrongClaimTypes(e.to_string()))?;
        claims.identity(now_s)
    }
}

/// The `sub` a token *claims*, unverified. Only ever used to notice that a
/// browser now signs in as someone other than its ticket's holder, so that
/// ticket is set aside (which a forged token can do no harm by: it grants
/// nothing; joining verifies the token in full). Never to grant anything.
pub fn unverified_subject(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Subject {
        sub: String,
    }
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Subject>(token)
        .ok()
        .map(|s| s.sub)
}

/// The key id a token names, if it names one, read before any
/// verification (for diagnostics; whether to fetch the provider's keys
/// again is [`IdentityError::wants_fresh_keys`]).
pub fn key_id_of(token: &str) -> Option<String> {
    decode_header(token).ok().and_then(|h| h.kid)
}

fn from_jose(kind: &ErrorKind) -> IdentityError {
    match kind {
        ErrorKind::InvalidSignature => IdentityError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            IdentityError::WrongAlgorithm("not allowed".into())
        }
        ErrorKind::InvalidIssuer => IdentityError::WrongIssuer,
        ErrorKind::InvalidAudience => IdentityError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => IdentityError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => IdentityError::InvalidClaim {
            claim: "a time",
            why: format!("{claim} is not a number"),
        },
        ErrorKind::ExpiredSignature => IdentityError::Expired,
        ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
        // An unreadable token, or claims of the wrong JSON type.
        _ => IdentityError::Malformed,
    }
}
