//! The secrets `crowdgate up` needs: the token signing keys, the ops token
//! and the edge token (the edge's credential towards core).
//!
//! Generated from the OS CSPRNG on first run and kept in
//! `<data-dir>/secrets.toml` (mode 0600), so tickets and passes stay valid
//! across restarts; a secret added in a later version is generated and
//! written back the first time it is missing. Never printed except the ops
//! token, which `up` shows once so the operator can open the dashboard.

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
    /// `name:token` pairs core accepts from the edge on `/v1`.
    #[serde(default)]
    pub edge_tokens: String,
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
            let mut secrets: Secrets = toml::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; delete it to make new secrets",
                    path.display()
                )
            })?;
            if secrets.edge_tokens.is_empty() {
                secrets.edge_tokens = Secrets::generate().edge_tokens;
                secrets.write(path)?;
            }
            return Ok(secrets);
        }
        let secrets = Secrets::generate();
        secrets.write(path)?;
        Ok(secrets)
    }

    /// Writes the file (mode 0600) through a temp file and a rename, so a
    /// crash never leaves half a secrets file.
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self)?;
        let temp = path.with_extension("toml.tmp");
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("cannot create {}", temp.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn generate() -> Secrets {
        Secrets {
            signing_keys: format!("k1:{}", random_hex(32)),
            ops_tokens: format!("ops:{}", random_hex(24)),
            edge_tokens: format!("edge:{}", random_hex(24)),
        }
    }

    /// The token the edge presents (the first edge token).
    pub fn edge_token(&self) -> &str {
        first_token(&self.edge_tokens)
    }

    /// The token part of the first ops token.
    pub fn first_ops_token(&self) -> &str {
        first_token(&self.ops_tokens)
    }
}

/// The token part of the first `name:token` pair.
fn first_token(pairs: &str) -> &str {
    pairs
        .split(',')
        .next()
        .and_then(|pair| pair.split_once(':'))
        .map(|(_, token)| token)
        .unwrap_or("")
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    crowdgate_protocol::hex::encode(&buf)
}
