//! Money as people read it: `£1,250.00`. Amounts are integer pence
//! everywhere; this is only how the pages and the messages show them, one
//! way (the page's script formats the same way with `toLocaleString`).

/// Pence as pounds with thousands separators: `£1,234,567.89`, `-£10.00`.
pub fn pounds(pence: i64) -> String {
    let sign = if pence < 0 { "-" } else { "" };
    let pence = pence.unsigned_abs();
    format!("{sign}£{}.{:02}", grouped_digits(pence / 100), pence % 100)
}

/// A whole number with thousands separators: `12,345`.
pub fn grouped(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", grouped_digits(n.unsigned_abs()))
}

fn grouped_digits(n: u64) -> String {
    group_digits(&n.to_string())
}

/// A run of decimal digits with thousands separators: `"1234567"` →
/// `"1,234,567"` (for numbers formatted elsewhere, e.g. with decimals).
pub fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pounds_and_counts_group_thousands() {
        assert_eq!(pounds(0), "£0.00");
        assert_eq!(pounds(5), "£0.05");
        assert_eq!(pounds(175_000), "£1,750.00");
        assert_eq!(pounds(123_456_789), "£1,234,567.89");
        assert_eq!(pounds(-100_000), "-£1,000.00");
        assert_eq!(pounds(i64::MIN), "-£92,233,720,368,547,758.08");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(-1234), "-1,234");
    }
}
