//! The identity provider's public keys, read from a JWKS (RFC 7517), plus an
//! optional shared secret for HS256.
//!
//! Each key allows exactly one algorithm: the JWK's `alg` when it names one,
//! else the one its type implies (RSA → RS256, EC P-256 → ES256, OKP Ed25519
//! → EdDSA, oct → HS256). A token must use its key's algorithm, so an
//! attacker cannot choose a weaker one (HS256 keyed with a public key, or
//! `none`). Keys meant for encryption, and types we do not verify with, are
//! skipped and reported rather than failing the whole set: a provider's JWKS
//! may carry keys for other uses.

use crate::IdentityError;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Shortest HS256 secret accepted: 32 bytes, as for our own signing keys.
pub const MIN_SHARED_SECRET_LEN: usize = 32;

/// Why a key set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("the JWKS is not valid JSON of the form {{\"keys\": [...]}}: {0}")]
    NotJwks(String),
    #[error("the JWKS has no key usable for signatures ({0})")]
    NoUsableKey(String),
    #[error("the shared secret is shorter than {MIN_SHARED_SECRET_LEN} bytes")]
    SecretTooShort,
    #[error("key {0:?} appears twice")]
    DuplicateKeyId(String),
    #[error("that is a private key: give the public key (`openssl pkey -in key.pem -pubout`)")]
    PrivateKey,
    #[error("not a PEM public key of a supported type (RSA, EC P-256 or Ed25519)")]
    NotAPublicKey,
}

/// One verification key.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) decoding: DecodingKey,
}

/// The keys identity tokens may be signed with.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Keys of the JWKS that were not taken, and why (for a log line).
    skipped: Vec<String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{}:{:?}", k.kid.as_deref().unwrap_or("-"), k.algorithm))
            .collect();
        f.debug_struct("KeySet").field("keys", &keys).finish()
    }
}

impl KeySet {
    /// Reads a JWKS document. Keys that cannot verify signatures are
    /// skipped ([`KeySet::skipped`]); a set left with none is an error.
    pub fn from_jwks(json: &str) -> Result<KeySet, KeySetError> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| KeySetError::NotJwks(e.to_string()))?;
        let mut keys = KeySet::default();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            let name = kid.clone().unwrap_or_else(|| "(no kid)".into());
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                keys.skipped.push(format!("{name}: not a signature key"));
                continue;
            }
            let Some(algorithm) = algorithm_of(&jwk.algorithm, jwk.common.key_algorithm) else {
                keys.skipped
                    .push(format!("{name}: unsupported key type or algorithm"));
                continue;
            };
            if let AlgorithmParameters::OctetKey(_) = jwk.algorithm {
                let long_enough = DecodingKey::from_jwk(jwk)
                    .ok()
                    .and_then(|k| k.try_get_as_bytes().map(|b| b.len()).ok())
                    .is_some_and(|len| len >= MIN_SHARED_SECRET_LEN);
                if !long_enough {
                    keys.skipped
                        .push(format!("{name}: shared secret under 32 bytes"));
                    continue;
                }
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(decoding) => keys.push(Key {
                    kid,
                    algorithm,
                    decoding,
                })?,
                Err(e) => keys.skipped.push(format!("{name}: {e}")),
            }
        }
        if keys.keys.is_empty() {
            return Err(KeySetError::NoUsableKey(keys.skipped.join("; ")));
        }
        Ok(keys)
    }

    /// Adds an HS256 shared secret, under `kid` (or for tokens naming none).
    pub fn with_shared_secret(
        mut self,
        kid: Option<&str>,
        secret: &[u8],
    ) -> Result<KeySet, KeySetError> {
        if secret.len() < MIN_SHARED_SECRET_LEN {
            return Err(KeySetError::SecretTooShort);
        }
        self.push(Key {
            kid: kid.map(str::to_string),
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
        })?;
        Ok(self)
    }

    /// Adds a public key given as PEM (`-----BEGIN PUBLIC KEY-----`, or
    /// `RSA PUBLIC KEY`), under `kid` or none: RSA allows RS256, EC allows
    /// ES256, Ed25519 allows EdDSA. A private key is refused: the edge must
    /// never hold the platform's signing key.
    pub fn with_public_key_pem(
        mut self,
        kid: Option<&str>,
        pem: &str,
    ) -> Result<KeySet, KeySetError> {
        if pem.contains("PRIVATE KEY") {
            return Err(KeySetError::PrivateKey);
        }
        let bytes = pem.trim().as_bytes();
        let (algorithm, decoding) = if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
            (Algorithm::ES256, key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
            (Algorithm::EdDSA, key)
        } else {
            return Err(KeySetError::NotAPublicKey);
        };
        self.push(Key {
            kid: kid.map(str::to_string),
            algorithm,
            decoding,
        })?;
        Ok(self)
    }

    /// Keys of the document that were not taken, and why.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// How many keys verify.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this id is in the set.
    pub fn has_key_id(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    fn push(&mut self, key: Key) -> Result<(), KeySetError> {
        if let Some(kid) = &key.kid
            && self.has_key_id(kid)
        {
            return Err(KeySetError::DuplicateKeyId(kid.clone()));
        }
        self.keys.push(key);
        Ok(())
    }

    /// The key a token names. A token without `kid` is accepted only when
    /// the set holds exactly one key (otherwise which one is a guess); so is
    /// a token naming a `kid` when the one key has none (a key configured as
    /// bare PEM or secret is *the* key, whatever id the platform stamps).
    pub(crate) fn find(&self, kid: Option<&str>) -> Result<&Key, IdentityError> {
        let only_unnamed = || match self.keys.as_slice() {
            [key] if key.kid.is_none() => Some(key),
            _ => None,
        };
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .or_else(only_unnamed)
                // The id is the token's: keep only a little of it for the message.
                .ok_or_else(|| IdentityError::UnknownKey(kid.chars().take(64).collect())),
            None if self.keys.len() == 1 => Ok(&self.keys[0]),
            None => Err(IdentityError::NoKeyId),
        }
    }
}

/// The one algorithm a JWK allows (the four we support), or `None`.
fn algorithm_of(params: &AlgorithmParameters, named: Option<KeyAlgorithm>) -> Option<Algorithm> {
    let implied = match params {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
        _ => return None,
    };
    let named = match named {
        None => return Some(implied),
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(KeyAlgorithm::HS256) => Algorithm::HS256,
        Some(_) => return None,
    };
    // A JWK whose `alg` contradicts its type is refused, not guessed at.
    (named == implied).then_some(named)
}
