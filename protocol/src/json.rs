//! Strict JSON objects for request bodies that move money or change a round.
//!
//! `serde_json` keeps the last of two equal keys, so
//! `{"amount_pence":1000,"amount_pence":200000}` would quietly mean £2,000.
//! An ambiguous body is refused instead, naming the field, with 400
//! `duplicate_field`: a client must say what it means once.

use crate::error::{ApiError, ErrorCode};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Parses `body` as one JSON object whose keys are all distinct. Errors are
/// `malformed_json` (not JSON, or not an object) or `duplicate_field` (with
/// the field named).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = deserializer
        .deserialize_any(StrictObjectVisitor)
        .and_then(|object| deserializer.end().map(|()| object));
    match parsed {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(duplicate)) => Err(ApiError::for_field(
            ErrorCode::DuplicateField,
            &duplicate,
            format!("{duplicate} appears more than once in the body; send each field once"),
        )),
        Err(err) if err.is_data() => Err(ApiError::for_field(
            ErrorCode::MalformedJson,
            "body",
            "request body must be a JSON object",
        )),
        Err(err) => Err(ApiError::new(
            ErrorCode::MalformedJson,
            format!("request body is not valid JSON: {err}"),
        )),
    }
}

/// Builds the object, or stops at the first repeated key (`Err(key)`).
struct StrictObjectVisitor;

impl<'de> Visitor<'de> for StrictObjectVisitor {
    type Value = Result<Map<String, Value>, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value: Value = access.next_value()?;
            if object.contains_key(&key) {
                // Drain the rest so the syntax of the whole body is still checked.
                while access
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                return Ok(Err(key));
            }
            object.insert(key, value);
        }
        Ok(Ok(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_an_object_with_distinct_keys() {
        let object = parse_object(br#"{"a":1,"b":{"a":2,"a":3}}"#).unwrap();
        assert_eq!(object["a"], 1);
    }

    #[test]
    fn refuses_a_repeated_key_naming_it() {
        let err = parse_object(br#"{"amount_pence":1000,"amount_pence":200000}"#).unwrap_err();
        assert_eq!(err.error, ErrorCode::DuplicateField);
        assert_eq!(err.field.as_deref(), Some("amount_pence"));
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for body in [
            &b"[1]"[..],
            b"1",
            b"\"x\"",
            b"{",
            b"{}{}",
            b"",
            b"{\"a\":1,\"a\":",
        ] {
            let err = parse_object(body).unwrap_err();
            assert_eq!(
                err.error,
                ErrorCode::MalformedJson,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
