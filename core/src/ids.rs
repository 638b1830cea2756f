//! Random identifiers core hands out.

use rand::Rng;

/// A ticket id: 96 random bits, hex. Unguessable, so a ticket id in a URL or
/// log does not let anyone take over a place.
pub fn new_ticket_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A pre-queue lottery score: uniform over [0, 2^52), so it is exact as a
/// Redis sorted-set score (a double). Drawn server-side from the thread-local
/// CSPRNG (ChaCha, seeded by the OS), so a visitor cannot choose or predict
/// their place.
pub fn lottery_score() -> u64 {
    rand::rng().random::<u64>() >> 12
}
