//! A memo of identity tokens already verified, so a visitor's token is not
//! checked again on each of their requests.
//!
//! Checking a token's signature is the dearest thing the edge does: an
//! Ed25519 check takes about 140 µs in Wasm, a third of a signed-in join.
//! The same visitor presents the same token again and again (every join,
//! pass and page while signed in), so the component remembers the outcome
//! of a successful check in Spin key-value, which outlives the instance.
//!
//! This module is the pure part: the slot a token lands in and what is kept
//! there. The component does the key-value reads and writes.
//!
//! - **Keyed by a digest, never the token.** A slot holds the SHA-256 of the
//!   token together with everything that decided the check (issuer,
//!   audience, the keys' fingerprint — the caller's `context`), so a memo
//!   is only found by presenting that very token under that very
//!   configuration, and the token itself is never stored.
//! - **Bounded.** Tokens land in one of [`SLOTS`] slots by their digest; a
//!   newer token simply replaces an older one in its slot, so key-value
//!   holds at most [`SLOTS`] memos however many visitors come.
//! - **Short-lived.** A memo is good until the token expires (with the same
//!   leeway as the check), at most [`MEMO_TTL_S`] after the check, and never
//!   longer than the keys that checked it are trusted (a fetched JWKS: until
//!   its max age runs out), so a key the provider withdraws stops admitting
//!   memoized tokens exactly when it stops admitting them at all.
//! - Only successes are memoized: a refused token is checked in full every
//!   time, and says why.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Identity, LEEWAY_S};

/// How many key-value slots memos spread over (the most memos kept).
pub const SLOTS: u16 = 4096;
/// Longest a memo is trusted after the token was checked, seconds.
pub const MEMO_TTL_S: u64 = 60;

/// Where one token's memo lives and how it is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoKey {
    /// The key-value key of its slot, `identity-memo:<slot>`.
    pub slot: String,
    /// Hex SHA-256 of the context and the token: who may use the memo.
    digest: String,
}

/// What a slot holds.
#[derive(Serialize, Deserialize)]
struct Memo {
    digest: String,
    investor_id: String,
    name: Option<String>,
    max_investment_pence: Option<i64>,
    expires_at: u64,
    /// Unix seconds after which the memo is not used.
    good_until: u64,
}

impl MemoKey {
    /// The memo key of `token` checked under `context` (issuer, audience
    /// and a fingerprint of the keys: anything that changes the verdict).
    pub fn new(context: &str, token: &str) -> MemoKey {
        let digest = Sha256::new()
            .chain_update((context.len() as u64).to_be_bytes())
            .chain_update(context.as_bytes())
            .chain_update(token.as_bytes())
            .finalize();
        let slot = u16::from_be_bytes([digest[0], digest[1]]) % SLOTS;
        MemoKey {
            slot: format!("identity-memo:{slot:03x}"),
            digest: crowdgate_protocol::hex::encode(&digest),
        }
    }

    /// The bytes to store in [`MemoKey::slot`] for `identity`, good until
    /// `good_until` (see [`good_until`]).
    pub fn memo(&self, identity: &Identity, good_until: u64) -> Vec<u8> {
        let memo = Memo {
            digest: self.digest.clone(),
            investor_id: identity.investor_id.clone(),
            name: identity.name.clone(),
            max_investment_pence: identity.max_investment_pence,
            expires_at: identity.expires_at,
            good_until,
        };
        serde_json::to_vec(&memo).unwrap_or_default()
    }

    /// The identity remembered in `stored` (what the slot held), if it is
    /// this token's and still good at `now_s`.
    pub fn recall(&self, stored: &[u8], now_s: u64) -> Option<Identity> {
        let memo: Memo = serde_json::from_slice(stored).ok()?;
        let fresh = now_s < memo.good_until
            // The check's own expiry rule (see `IdentityClaims::identity`).
            && now_s < memo.expires_at.saturating_add(LEEWAY_S);
        (memo.digest == self.digest && fresh).then_some(Identity {
            investor_id: memo.investor_id,
            name: memo.name,
            max_investment_pence: memo.max_investment_pence,
            expires_at: memo.expires_at,
        })
    }
}

/// Until when (Unix seconds) a memo made at `now_s` may be used: at most
/// [`MEMO_TTL_S`], and not past `keys_trusted_until` when the keys that
/// checked the token are themselves only trusted until then. A result not
/// after `now_s` means: do not memoize.
pub fn good_until(now_s: u64, keys_trusted_until: Option<u64>) -> u64 {
    let ttl = now_s.saturating_add(MEMO_TTL_S);
    keys_trusted_until.map_or(ttl, |until| until.min(ttl))
}

/// A fingerprint of key material (a JWKS document, a PEM key, a shared
/// secret) for a memo context: changing the keys orphans every memo made
/// with the old ones, and the secret itself never appears in it.
pub fn fingerprint(parts: &[Option<&[u8]>]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        match part {
            Some(bytes) => {
                hash.update([1]);
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            }
            None => hash.update([0]),
        }
    }
    crowdgate_protocol::hex::encode(&hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires_at: u64) -> Identity {
        Identity {
            investor_id: "inv-1".into(),
            name: Some("Ada".into()),
            max_investment_pence: Some(5_000),
            expires_at,
        }
    }

    #[test]
    fn a_memo_returns_the_identity_to_the_same_token_only() {
        let key = MemoKey::new("ctx", "token-a");
        let stored = key.memo(&identity(2_000), good_until(1_000, None));
        assert_eq!(key.recall(&stored, 1_010), Some(identity(2_000)));
        // Another token, or the same one under another configuration, that
        // happens to share the slot is not this memo's.
        let other = MemoKey {
            slot: key.slot.clone(),
            ..MemoKey::new("ctx", "token-b")
        };
        assert_eq!(other.recall(&stored, 1_010), None);
        let other = MemoKey {
            slot: key.slot.clone(),
            ..MemoKey::new("other ctx", "token-a")
        };
        assert_eq!(other.recall(&stored, 1_010), None);
    }

    #[test]
    fn a_memo_expires_with_the_token_and_after_its_ttl() {
        let key = MemoKey::new("ctx", "t");
        let stored = key.memo(&identity(1_020), good_until(1_000, None));
        assert!(key.recall(&stored, 1_020 + LEEWAY_S - 1).is_some());
        assert!(key.recall(&stored, 1_020 + LEEWAY_S).is_none());
        let stored = key.memo(&identity(99_999), good_until(1_000, None));
        assert!(key.recall(&stored, 1_000 + MEMO_TTL_S - 1).is_some());
        assert!(key.recall(&stored, 1_000 + MEMO_TTL_S).is_none());
        // Keys trusted for less time than the TTL bound the memo.
        let stored = key.memo(&identity(99_999), good_until(1_000, Some(1_005)));
        assert!(key.recall(&stored, 1_004).is_some());
        assert!(key.recall(&stored, 1_005).is_none());
        assert!(good_until(1_000, Some(990)) <= 1_000, "stale keys: no memo");
    }

    #[test]
    fn slots_are_bounded_and_keep_no_token() {
        let key = MemoKey::new("ctx", "secret-token");
        let slot = u16::from_str_radix(key.slot.strip_prefix("identity-memo:").unwrap(), 16);
        assert!(slot.unwrap() < SLOTS);
        let stored = String::from_utf8(key.memo(&identity(2_000), 1_060)).unwrap();
        assert!(!stored.contains("secret-token"), "{stored}");
        assert!(key.recall(b"not json", 1_000).is_none());
    }

    #[test]
    fn fingerprints_tell_key_sets_apart() {
        let a = fingerprint(&[Some(b"jwks"), None]);
        assert_eq!(a, fingerprint(&[Some(b"jwks"), None]));
        assert_ne!(a, fingerprint(&[None, Some(b"jwks")]));
        assert_ne!(a, fingerprint(&[Some(b"jwk"), Some(b"s")]));
    }
}
