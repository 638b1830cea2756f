//! The secrets `crowdgate up` needs: the token signing keys and the ops token.
//!
//! Generated from the OS CSPRNG on first run and kept in
//! `<data-dir>/secrets.toml` (mode 0600), so tickets and passes stay valid
//! across restarts. Never printed except the ops token, which `up` shows once
//! so the operator can open the dashboard.

use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    /// `kid:secret[,kid:secret]` for tickets and passes.
    pub signing_keys: String,
    /// `name:token` pairs for the ops API.
    pub ops_tokens: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<secret>)")
    }
}

impl Secrets {
    /// Loads `path`, or creates it with fresh random secrets.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Secrets> {
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return toml::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; delete it to make new secrets",
                    path.display()
                )
            });
        }
        let secrets = Secrets::generate();
        let text = toml::to_string(&secrets)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        Ok(secrets)
    }

    pub fn generate() -> Secrets {
        Secrets {
            signing_keys: format!("k1:{}", random_hex(32)),
            ops_tokens: format!("ops:{}", random_hex(24)),
        }
    }

    /// The token part of the first ops token.
    pub fn first_ops_token(&self) -> &str {
        self.ops_tokens
            .split(',')
            .next()
            .and_then(|pair| pair.split_once(':'))
            .map(|(_, token)| token)
            .unwrap_or("")
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
