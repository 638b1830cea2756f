//! A page template split into text and `{{NAME}}` placeholders when the
//! component is compiled, so that filling it in is only copying.
//!
//! Why at compile time: every request runs in a fresh Wasm instance, so
//! nothing parsed at run time outlives the request, and wasm32 has no
//! vectorised substring search: scanning the 28 KB page for `{{` on every
//! request cost about 45 µs, a fifth of serving the page.
//!
//! A placeholder is `{{` + one or more of `A`–`Z`, `0`–`9`, `_` + `}}`;
//! anything else with braces (script, CSS) is text. Values are inserted as
//! given (callers escape them) and never scanned, so a value that looks like
//! a placeholder stays text.

/// Where one placeholder is: the byte range of `{{NAME}}`, braces included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    start: usize,
    end: usize,
}

/// A template and its `N` placeholders, found by [`Template::parse`].
#[derive(Debug)]
pub struct Template<const N: usize> {
    text: &'static str,
    slots: [Slot; N],
}

/// How many placeholders `text` has: the `N` of its [`Template`].
pub const fn slot_count(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut count = 0;
    let mut at = 0;
    while let Some(slot) = next_slot(bytes, at) {
        count += 1;
        at = slot.end;
    }
    count
}

/// The first placeholder at or after byte `from`.
const fn next_slot(bytes: &[u8], from: usize) -> Option<Slot> {
    let mut start = from;
    while start + 1 < bytes.len() {
        if bytes[start] == b'{' && bytes[start + 1] == b'{' {
            let mut end = start + 2;
            while end < bytes.len() && is_name_byte(bytes[end]) {
                end += 1;
            }
            let named = end > start + 2;
            if named && end + 1 < bytes.len() && bytes[end] == b'}' && bytes[end + 1] == b'}' {
                return Some(Slot {
                    start,
                    end: end + 2,
                });
            }
        }
        start += 1;
    }
    None
}

const fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_'
}

impl<const N: usize> Template<N> {
    /// Splits `text`; `N` must be [`slot_count`]`(text)` (a mismatch fails
    /// the build, since this runs in a `const`).
    pub const fn parse(text: &'static str) -> Template<N> {
        let bytes = text.as_bytes();
        let mut slots = [Slot { start: 0, end: 0 }; N];
        let mut found = 0;
        let mut at = 0;
        while let Some(slot) = next_slot(bytes, at) {
            assert!(found < N, "more placeholders than N");
            slots[found] = slot;
            found += 1;
            at = slot.end;
        }
        assert!(found == N, "fewer placeholders than N");
        Template { text, slots }
    }

    /// The placeholders' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.slots
            .iter()
            .map(|slot| &self.text[slot.start + 2..slot.end - 2])
    }

    /// The text with each placeholder replaced by its value in `values`; a
    /// placeholder without a value is left as it is.
    pub fn fill(&self, values: &[(&str, String)]) -> String {
        let extra: usize = values.iter().map(|(_, value)| value.len()).sum();
        let mut out = String::with_capacity(self.text.len() + extra);
        let mut copied = 0;
        for (slot, name) in self.slots.iter().zip(self.names()) {
            out.push_str(&self.text[copied..slot.start]);
            match values.iter().find(|(key, _)| *key == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&self.text[slot.start..slot.end]),
            }
            copied = slot.end;
        }
        out.push_str(&self.text[copied..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "<p>{{A}} and {{B_2}}</p><script>if (x) {{ y }}; {{lower}} {{}}</script>{{A}}";
    const PARSED: Template<{ slot_count(TEXT) }> = Template::parse(TEXT);

    #[test]
    fn only_upper_case_names_are_placeholders() {
        assert_eq!(PARSED.names().collect::<Vec<_>>(), ["A", "B_2", "A"]);
    }

    #[test]
    fn fills_every_occurrence_and_keeps_the_rest() {
        let values = [("A", "1".to_string()), ("B_2", "two".to_string())];
        assert_eq!(
            PARSED.fill(&values),
            "<p>1 and two</p><script>if (x) {{ y }}; {{lower}} {{}}</script>1"
        );
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_stays_text() {
        let values = [("A", "{{B_2}}".to_string()), ("B_2", "x".to_string())];
        assert!(PARSED.fill(&values).starts_with("<p>{{B_2}} and x</p>"));
    }

    #[test]
    fn a_placeholder_without_a_value_is_left_as_it_is() {
        assert_eq!(PARSED.fill(&[]), TEXT);
    }

    #[test]
    fn placeholders_at_the_edges_and_unclosed_braces() {
        const EDGES: &str = "{{X}}{{Y}}{{";
        const T: Template<{ slot_count(EDGES) }> = Template::parse(EDGES);
        let values = [("X", "x".to_string()), ("Y", "y".to_string())];
        assert_eq!(T.fill(&values), "xy{{");
    }
}
