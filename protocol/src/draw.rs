//! The pre-queue draw: which queue number each pre-queue entry gets when the
//! round opens, computed by anyone from public values once the pre-queue is
//! sealed — by every edge for its own visitors (so opening sends no crowd to
//! core), and by any visitor who wants to check that nobody moved them.
//!
//! Everyone who joins before opening gets an *entry*: their place in join
//! order, 1, 2, 3, … . At opening the pre-queue of `size` entries is sealed
//! and entry `e` gets queue number `number(key, size, e)`, a keyed
//! pseudorandom permutation of 1..=size. The draw is fixed before anyone
//! can know it and checkable after:
//!
//! 1. When the round is seeded, core picks a 32-byte `secret` (CSPRNG) and
//!    publishes only its [`commitment`], SHA-256(secret), from the first
//!    moment anyone can join.
//! 2. Each pre-queue join extends a hash chain over the entries in join
//!    order ([`entries_digest_step`]; Redis computes it as each entry is
//!    taken), starting from the commitment. Its final value depends on every
//!    entry's ticket id, which core draws at random: even someone who could
//!    read the secret could not tell, before the seal, which entry will draw
//!    which number.
//! 3. At the seal core reveals the secret and the final digest. The draw's
//!    [`key`] is HMAC-SHA256(secret, "crowdgate-draw-key:" ‖ digest).
//!
//! A visitor holding their ticket (its entry) checks that SHA-256(secret)
//! is the commitment shown before opening and recomputes their number; with
//! the list of entries in order, anyone recomputes the digest, the key and
//! every number. docs/ARCHITECTURE.md ("The pre-queue draw") spells the
//! computation out for an independent implementation.
//!
//! The permutation is an 8-round balanced Feistel network on 2h bits (the
//! smallest even width with 4^h ≥ size), each round's function the first 8
//! bytes of HMAC-SHA256(key, round ‖ half), with cycle walking: a value
//! outside 0..size is enciphered again until it lands inside, which keeps
//! it a permutation of 0..size. Entries are mapped as `e - 1` and numbers
//! returned as the result + 1.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How many Feistel rounds the permutation takes.
const ROUNDS: u8 = 8;

/// The secret's length in bytes (its hex form is twice this).
pub const SECRET_BYTES: usize = 32;

/// Why a published draw value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrawError {
    #[error("the draw secret must be {SECRET_BYTES} bytes as 64 lowercase hex digits")]
    BadSecret,
    #[error("the draw key must be 32 bytes as 64 lowercase hex digits")]
    BadKey,
    #[error("entry {entry} is outside the pre-queue's 1..={size}")]
    NoSuchEntry { entry: u64, size: u64 },
}

/// The draw's key: what [`number`] permutes with.
#[derive(Clone, PartialEq, Eq)]
pub struct DrawKey([u8; 32]);

impl std::fmt::Debug for DrawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DrawKey({})", self.to_hex())
    }
}

impl DrawKey {
    /// The key of a sealed pre-queue: HMAC-SHA256(secret,
    /// "crowdgate-draw-key:" ‖ entries digest).
    pub fn derive(secret_hex: &str, entries_digest: &str) -> Result<DrawKey, DrawError> {
        let secret = crate::hex::decode32(secret_hex).ok_or(DrawError::BadSecret)?;
        let mut mac = HmacSha256::new_from_slice(&secret).expect("HMAC takes any key length");
        mac.update(b"crowdgate-draw-key:");
        mac.update(entries_digest.as_bytes());
        Ok(DrawKey(mac.finalize().into_bytes().into()))
    }

    /// A key from its published hex form.
    pub fn from_hex(hex: &str) -> Result<DrawKey, DrawError> {
        crate::hex::decode32(hex)
            .map(DrawKey)
            .ok_or(DrawError::BadKey)
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

/// The commitment published before the pre-queue opens: SHA-256 of the
/// secret's 32 bytes, in hex.
pub fn commitment(secret_hex: &str) -> Result<String, DrawError> {
    let secret = crate::hex::decode32(secret_hex).ok_or(DrawError::BadSecret)?;
    Ok(crate::hex::encode(&Sha256::digest(secret)))
}

/// A fresh secret's hex form from 32 random bytes (the caller's CSPRNG:
/// this crate draws no randomness).
pub fn secret_hex(random: &[u8; SECRET_BYTES]) -> String {
    crate::hex::encode(random)
}

/// One step of the entries' hash chain: the digest after the entry whose
/// ticket id is `ticket_id`, from the digest before it (the first entry
/// starts from the commitment). SHA-1 hex of `previous ‖ " " ‖ ticket id`,
/// because that is what Redis's Lua can compute (`redis.sha1hex`) as each
/// join takes its entry; it only has to be unpredictable until the last
/// entry is in, which it is, since every ticket id is random.
pub fn entries_digest_step(previous: &str, ticket_id: &str) -> String {
    use sha1::Digest as _;
    let mut hasher = sha1::Sha1::new();
    hasher.update(previous.as_bytes());
    hasher.update(b" ");
    hasher.update(ticket_id.as_bytes());
    crate::hex::encode(&hasher.finalize())
}

/// The digest of a whole pre-queue: the chain over its ticket ids in entry
/// order, from the commitment.
pub fn entries_digest<'a>(
    commitment: &str,
    ticket_ids_in_entry_order: impl IntoIterator<Item = &'a str>,
) -> String {
    ticket_ids_in_entry_order
        .into_iter()
        .fold(commitment.to_string(), |digest, ticket| {
            entries_digest_step(&digest, ticket)
        })
}

/// The queue number drawn by pre-queue entry `entry` (1-based) of a sealed
/// pre-queue of `size` entries: a permutation of 1..=size under `key`.
pub fn number(key: &DrawKey, size: u64, entry: u64) -> Result<u64, DrawError> {
    if entry == 0 || entry > size {
        return Err(DrawError::NoSuchEntry { entry, size });
    }
    let permutation = Permutation::new(key, size);
    Ok(permutation.apply(entry - 1) + 1)
}

/// The keyed permutation of 0..size (see the module's header).
struct Permutation {
    mac: HmacSha256,
    size: u64,
    half_bits: u32,
}

impl Permutation {
    fn new(key: &DrawKey, size: u64) -> Permutation {
        assert!(size > 0, "a permutation of nothing");
        // The smallest h >= 1 with 4^h >= size (size <= 2^64 - 1, so h <= 32).
        let mut half_bits = 1;
        while half_bits < 32 && (1u128 << (2 * half_bits)) < size as u128 {
            half_bits += 1;
        }
        Permutation {
            mac: HmacSha256::new_from_slice(&key.0).expect("HMAC takes any key length"),
            size,
            half_bits,
        }
    }

    fn apply(&self, x: u64) -> u64 {
        assert!(x < self.size, "invariant: a value inside the domain");
        // Cycle walking: the Feistel network permutes 0..4^h, so walking
        // from a value inside 0..size always comes back inside, and the
        // walk is one-to-one. 4^h < 4 × size, so fewer than 4 steps on
        // average.
        let mut y = self.feistel(x);
        while y >= self.size {
            y = self.feistel(y);
        }
        y
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for round in 0..ROUNDS {
            let f = self.round_function(round, right) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << self.half_bits) | right
    }

    /// The first 8 bytes (big-endian) of HMAC-SHA256(key, round ‖ half as
    /// 8 big-endian bytes).
    fn round_function(&self, round: u8, half: u64) -> u64 {
        let mut mac = self.mac.clone();
        mac.update(&[round]);
        mac.update(&half.to_be_bytes());
        let out = mac.finalize().into_bytes();
        u64::from_be_bytes(out[..8].try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> DrawKey {
        DrawKey::derive(SECRET, "digest").unwrap()
    }

    #[test]
    fn every_size_is_a_permutation_of_one_to_size() {
        for size in [1u64, 2, 3, 4, 5, 15, 16, 17, 100, 1_000, 4_097] {
            let mut seen = vec![false; size as usize + 1];
            for entry in 1..=size {
                let n = number(&key(), size, entry).unwrap();
                assert!((1..=size).contains(&n), "size {size}: entry {entry} -> {n}");
                assert!(!seen[n as usize], "size {size}: number {n} drawn twice");
                seen[n as usize] = true;
            }
        }
    }

    #[test]
    fn entries_outside_the_prequeue_have_no_number() {
        assert_eq!(
            number(&key(), 10, 0),
            Err(DrawError::NoSuchEntry { entry: 0, size: 10 })
        );
        assert_eq!(
            number(&key(), 10, 11),
            Err(DrawError::NoSuchEntry {
                entry: 11,
                size: 10
            })
        );
    }

    #[test]
    fn the_key_decides_and_another_digest_is_another_draw() {
        let other = DrawKey::derive(SECRET, "digest2").unwrap();
        let draw = |k: &DrawKey| {
            (1..=50)
                .map(|e| number(k, 50, e).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&key()), draw(&key()));
        assert_ne!(draw(&key()), draw(&other));
        // The order is not join order.
        assert_ne!(draw(&key()), (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn known_answers_pin_the_published_algorithm() {
        // These values are what docs/ARCHITECTURE.md's recipe gives; an
        // independent implementation can check itself against them.
        assert_eq!(
            commitment(SECRET).unwrap(),
            "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
        );
        assert_eq!(
            entries_digest_step("c", "t1"),
            crate::hex::encode(&<sha1::Sha1 as sha1::Digest>::digest(b"c t1"))
        );
        // Computed independently (a Python transcription of the recipe in
        // docs/ARCHITECTURE.md, with hmac and hashlib).
        let k = key();
        assert_eq!(
            k.to_hex(),
            "7ce043507c9bec9f4bc833e923afd930f2f31714f2c269d572a3bd94cac429e9"
        );
        let numbers: Vec<u64> = (1..=5).map(|e| number(&k, 5, e).unwrap()).collect();
        assert_eq!(numbers, [4, 3, 5, 2, 1]);
        let numbers: Vec<u64> = [1, 2, 500, 1_000]
            .iter()
            .map(|&e| number(&k, 1_000, e).unwrap())
            .collect();
        assert_eq!(numbers, [255, 655, 981, 326]);
        assert_eq!(number(&k, 1, 1).unwrap(), 1);
        assert_eq!(DrawKey::from_hex(&k.to_hex()).unwrap(), k);
    }

    #[test]
    fn the_draw_is_uniform_across_keys() {
        // Where entry 1 lands over many keys: every number about equally
        // often (chi-squared, 9 degrees of freedom, far below the 0.1 %
        // critical value of 27.9).
        let size = 10u64;
        let trials = 5_000;
        let mut counts = [0u64; 10];
        for t in 0..trials {
            let k = DrawKey::derive(SECRET, &format!("digest-{t}")).unwrap();
            counts[(number(&k, size, 1).unwrap() - 1) as usize] += 1;
        }
        let expected = trials as f64 / size as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 27.9, "chi2 {chi2}: {counts:?}");
    }

    #[test]
    fn bad_published_values_are_refused() {
        assert_eq!(commitment("zz"), Err(DrawError::BadSecret));
        assert_eq!(
            DrawKey::derive(&"A".repeat(64), "d"),
            Err(DrawError::BadSecret)
        );
        assert_eq!(DrawKey::from_hex("00"), Err(DrawError::BadKey));
        assert_eq!(secret_hex(&[0xab; 32]).len(), 64);
    }

    #[test]
    fn the_digest_chains_from_the_commitment() {
        let d = entries_digest("c0", ["a", "b"]);
        assert_eq!(d, entries_digest_step(&entries_digest_step("c0", "a"), "b"));
        assert_eq!(entries_digest("c0", []), "c0");
    }
}
