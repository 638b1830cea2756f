//! The development identity provider's signer (cargo feature `dev-signer`).
//!
//! On a developer's machine there is no crowdfunding platform to sign
//! investors in, so `crowdgate dev-identity` and `crowdgate dev-token` play
//! its part: they mint identity tokens for any investor with one Ed25519 key
//! and publish its public half as a JWKS, exactly as a real provider would.
//! The edge then verifies them with the same [`crate::Verifier`] and
//! [`crate::KeySet`] it uses in production, so the sign-in path under test is
//! the real one; only the signer is a stand-in.
//!
//! The key lives in a small PEM file (PKCS#8, mode 0600) so the provider and
//! `dev-token` sign with the same key and tokens survive restarts. It is
//! created atomically (written aside, then linked into place, so two
//! processes starting at once agree on one key) and a damaged file is
//! refused, never replaced.
//!
//! The JOSE and the curve are libraries' work (`jsonwebtoken`, with the key
//! from `ed25519-dalek`); nothing here signs or encodes by hand. Anyone who
//! can read the key file can sign in as anyone: this is for local
//! development only.

use crate::IdentityClaims;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Characters of the public key's base64url SHA-256 kept as the key id.
pub const KID_LEN: usize = 16;

/// Why the development signer could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DevSignerError {
    #[error("cannot read the development identity key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the development identity key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a development identity key ({why}); delete it and a new key is made on the next start (tokens signed with the old key stop working)"
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// An Ed25519 signing key with its key id: mints identity tokens.
#[derive(Clone)]
pub struct DevSigner {
    signing: SigningKey,
    encoding: EncodingKey,
    kid: String,
}

impl std::fmt::Debug for DevSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevSigner {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<DevSigner, DevSignerError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| DevSignerError::Random(e.to_string()))?;
        Ok(DevSigner::from_seed(seed))
    }

    /// The key with this secret seed (deterministic: for tests).
    pub fn from_seed(seed: [u8; 32]) -> DevSigner {
        DevSigner::from_signing_key(SigningKey::from_bytes(&seed))
    }

    /// Loads the key file at `path`, or creates it (and its directory) with a
    /// fresh key. A file that is not a PKCS#8 Ed25519 key is an error: it is
    /// never overwritten.
    pub fn load_or_create(path: &Path) -> Result<DevSigner, DevSignerError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return DevSigner::from_pem(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DevSignerError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let signer = DevSigner::generate()?;
        let pem =
            signer
                .signing
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| DevSignerError::Write {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        if write_new(path, pem.as_bytes())? {
            Ok(signer)
        } else {
            // Another process created it first: use theirs, so both agree.
            let text = std::fs::read_to_string(path).map_err(|source| DevSignerError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            DevSigner::from_pem(&text, path)
        }
    }

    /// Loads the PKCS#8 Ed25519 private key (PEM) at `path`; never creates
    /// one (for `crowdgate rehearse --identity-key`: the platform's key).
    pub fn load(path: &Path) -> Result<DevSigner, DevSignerError> {
        let text = std::fs::read_to_string(path).map_err(|source| DevSignerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        DevSigner::from_pem(&text, path)
    }

    /// The private key as PKCS#8 PEM, as [`DevSigner::load`] reads it.
    pub fn to_pkcs8_pem(&self) -> String {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key always encodes as PKCS#8")
            .to_string()
    }

    /// The key id: the first [`KID_LEN`] base64url characters of the
    /// public key's SHA-256, so a new key always has a new id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS document, as the provider publishes it at
    /// `/.well-known/jwks.json`.
    pub fn jwks_json(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes());
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": self.kid,
                "x": x,
            }]
        })
        .to_string()
    }

    /// Signs `claims` as an EdDSA JWT whose header names [`DevSigner::kid`].
    /// The claims are signed as given (tests mint expired or foreign ones on
    /// purpose); [`DevSigner::claims`] makes well-formed ones.
    pub fn mint(&self, claims: &IdentityClaims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        // Neither step can fail: the claims are plain data that always
        // serialise, and the key is a PKCS#8 Ed25519 key we encoded ourselves.
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .expect("an Ed25519 key we encoded signs any IdentityClaims")
    }

    /// Claims for `investor`, issued at `now_s` (Unix seconds) and expiring
    /// `ttl_s` later, with no name, limit or `nbf` (set those on the result).
    pub fn claims(
        issuer: &str,
        audience: &str,
        investor: &str,
        now_s: u64,
        ttl_s: u64,
    ) -> IdentityClaims {
        IdentityClaims {
            iss: issuer.to_string(),
            aud: audience.into(),
            sub: investor.to_string(),
            exp: now_s.saturating_add(ttl_s),
            iat: now_s,
            nbf: None,
            name: None,
            max_investment_pence: None,
        }
    }

    fn from_signing_key(signing: SigningKey) -> DevSigner {
        let der = signing
            .to_pkcs8_der()
            .expect("an Ed25519 key always encodes as PKCS#8");
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let digest = Sha256::digest(signing.verifying_key().as_bytes());
        let kid = URL_SAFE_NO_PAD.encode(digest)[..KID_LEN].to_string();
        DevSigner {
            signing,
            encoding,
            kid,
        }
    }

    fn from_pem(text: &str, path: &Path) -> Result<DevSigner, DevSignerError> {
        SigningKey::from_pkcs8_pem(text)
            .map(DevSigner::from_signing_key)
            .map_err(|e| DevSignerError::Corrupt {
                path: path.to_path_buf(),
                why: format!("not a PKCS#8 Ed25519 private key in PEM: {e}"),
            })
    }
}

/// Writes `bytes` to `path` (mode 0600) only if `path` does not exist yet:
/// through a temporary file in the same directory, hard-linked into place,
/// so nobody ever reads half a key. `Ok(false)` when `path` already existed.
fn write_new(path: &Path, bytes: &[u8]) -> Result<bool, DevSignerError> {
    let write_error = |source| DevSignerError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    // Unique per process and call, so concurrent creators never share one.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(format!(".{}-{call}.tmp", std::process::id()));
    let temp = PathBuf::from(temp_name);
    let _ = std::fs::remove_file(&temp);
    let written = write_private(&temp, bytes).and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(write_error(e)),
    }
}

/// Creates `path` (which must not exist) readable by its owner only, and
/// syncs it to disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdentityError, KeySet, Verifier};

    const NOW: u64 = 1_800_000_000;

    fn verifier() -> Verifier {
        Verifier {
            issuer: "http://127.0.0.1:3001".into(),
            audience: "demo".into(),
        }
    }

    /// A directory of its own under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            let dir = std::env::temp_dir().join(format!(
                "crowdgate-dev-signer-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("can create a temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_minted_token_verifies_with_the_published_jwks() {
        let signer = DevSigner::from_seed([7; 32]);
        let mut claims = DevSigner::claims("http://127.0.0.1:3001", "demo", "demo-002", NOW, 600);
        claims.name = Some("Alan Turing".into());
        claims.max_investment_pence = Some(50_000);
        let token = signer.mint(&claims);

        let keys = KeySet::from_jwks(&signer.jwks_json()).expect("our JWKS reads");
        assert!(keys.has_key_id(signer.kid()));
        assert_eq!(crate::key_id_of(&token).as_deref(), Some(signer.kid()));
        let identity = verifier()
            .verify(&token, &keys, NOW + 10)
            .expect("verifies");
        assert_eq!(identity.investor_id, "demo-002");
        assert_eq!(identity.name.as_deref(), Some("Alan Turing"));
        assert_eq!(identity.max_investment_pence, Some(50_000));
        assert_eq!(identity.expires_at, NOW + 600);
    }

    #[test]
    fn the_token_expires_after_its_ttl() {
        let signer = DevSigner::from_seed([7; 32]);
        let token = signer.mint(&DevSigner::claims(
            "http://127.0.0.1:3001",
            "demo",
            "demo-001",
            NOW,
            600,
        ));
        let keys = KeySet::from_jwks(&signer.jwks_json()).expect("our JWKS reads");
        let late = NOW + 600 + crate::LEEWAY_S;
        assert_eq!(
            verifier().verify(&token, &keys, late),
            Err(IdentityError::Expired)
        );
    }

    #[test]
    fn another_keys_token_is_refused() {
        let ours = DevSigner::from_seed([1; 32]);
        let theirs = DevSigner::from_seed([2; 32]);
        assert_ne!(ours.kid(), theirs.kid());
        let token = theirs.mint(&DevSigner::claims(
            "http://127.0.0.1:3001",
            "demo",
            "demo-001",
            NOW,
            600,
        ));
        let keys = KeySet::from_jwks(&ours.jwks_json()).expect("our JWKS reads");
        assert_eq!(
            verifier().verify(&token, &keys, NOW),
            Err(IdentityError::UnknownKey(theirs.kid().to_string()))
        );
    }

    #[test]
    fn the_jwks_is_one_ed25519_signature_key() {
        let signer = DevSigner::from_seed([3; 32]);
        let jwks: serde_json::Value = serde_json::from_str(&signer.jwks_json()).expect("JSON");
        let key = &jwks["keys"][0];
        assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], signer.kid());
        assert_eq!(signer.kid().len(), KID_LEN);
        assert!(key.get("d").is_none(), "never the private key");
        // Deterministic from the seed.
        assert_eq!(DevSigner::from_seed([3; 32]).kid(), signer.kid());
    }

    #[test]
    fn load_or_create_round_trips() {
        let dir = TempDir::new("round-trip");
        let path = dir.0.join("nested").join("dev-identity.key");
        let created = DevSigner::load_or_create(&path).expect("creates");
        let loaded = DevSigner::load_or_create(&path).expect("loads");
        assert_eq!(created.kid(), loaded.kid());
        assert_eq!(created.jwks_json(), loaded.jwks_json());
        // A token from the first verifies against the second's keys.
        let token = created.mint(&DevSigner::claims(
            "http://127.0.0.1:3001",
            "demo",
            "demo-001",
            NOW,
            600,
        ));
        let keys = KeySet::from_jwks(&loaded.jwks_json()).expect("reads");
        assert!(verifier().verify(&token, &keys, NOW).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("has a parent"))
            .expect("lists")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("dev-identity.key")]
        );
    }

    #[test]
    fn a_corrupt_key_file_is_refused_and_kept() {
        let dir = TempDir::new("corrupt");
        let path = dir.0.join("dev-identity.key");
        std::fs::write(&path, "not a key\n").expect("writes");
        let err = DevSigner::load_or_create(&path).expect_err("refused");
        assert!(matches!(err, DevSignerError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("delete it"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("still there"),
            "not a key\n"
        );
    }

    #[test]
    fn concurrent_creators_agree_on_one_key() {
        let dir = TempDir::new("race");
        let path = dir.0.join("dev-identity.key");
        let kids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| DevSigner::load_or_create(&path).map(|s| s.kid().to_string()))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic").expect("loads or creates"))
                .collect()
        });
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
    }

    #[test]
    fn generated_keys_differ() {
        let a = DevSigner::generate().expect("random");
        let b = DevSigner::generate().expect("random");
        assert_ne!(a.kid(), b.kid());
    }
}
