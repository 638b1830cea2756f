//! Lowercase hex, the one encoding of bytes in our identifiers, digests and
//! published draw values (ticket ids, investment ids, the draw's secret and
//! key, identity memo digests).

/// `bytes` as lowercase hex, two digits a byte.
pub fn encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// 32 bytes from exactly 64 lowercase hex digits; `None` for anything else.
pub fn decode32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_lowercase_hex_of_32_bytes() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 9) as u8);
        let text = encode(&bytes);
        assert_eq!(&text[..6], "000912");
        assert_eq!(decode32(&text), Some(bytes));
        assert_eq!(decode32(&text.to_uppercase()), None);
        assert_eq!(decode32(&text[..62]), None);
        assert_eq!(encode(&[]), "");
    }
}
