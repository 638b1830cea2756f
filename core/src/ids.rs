//! Random identifiers core hands out.

use rand::Rng;

/// A ticket id: 96 random bits, hex. Unguessable, so a ticket id in a URL or
/// log does not let anyone take over a place.
pub fn new_ticket_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    crowdgate_protocol::hex::encode(&bytes)
}

/// The randomness a round's pre-queue draw secret is made from (see
/// `crowdgate_protocol::draw`): 256 bits from the thread-local CSPRNG
/// (ChaCha, seeded by the OS), so nobody can predict the draw.
pub fn draw_random() -> [u8; crowdgate_protocol::draw::SECRET_BYTES] {
    rand::rng().random()
}
