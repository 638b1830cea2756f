//! Every error Crowdgate answers with: one [`ErrorCode`] enum naming each
//! code any process emits, its HTTP status, and the JSON body [`ApiError`].
//!
//! Codes used to be free strings compared in several places (core, the edge,
//! the status of a refused body), so the edge and core could disagree on the
//! status of one mistake. Now a code *is* its status: the edge, the waiting
//! room and core all answer `code.http_status()`, and a new code cannot be
//! emitted without deciding its status here once.
//!
//! On the wire a code is its snake_case name (`"token_expired"`), unchanged
//! from the strings clients already match on.

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Every machine-readable `error` code a Crowdgate process emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // --- The request's shape (400) ---
    /// The body is not one JSON object.
    MalformedJson,
    /// A JSON field appears twice (`{"amount_pence":1,"amount_pence":2}`).
    DuplicateField,
    /// A pass or ticket that is not even a token.
    TokenMalformed,
    /// A path segment that cannot be an id (an investment or ticket id).
    /// On the wire it is `invalid_field`, like any other field at fault,
    /// but a malformed path is a 400 where a wrong body value is a 422.
    InvalidId,
    /// A request too malformed to say more (the host, axum's rejections).
    BadRequest,

    // --- Credentials ---
    /// No pass in `Authorization` (401).
    MissingPass,
    /// No ticket in the cookie or `Authorization` (401).
    MissingTicket,
    /// The ticket or pass has expired: go back for a new one (401).
    TokenExpired,
    /// Signed with a key we do not hold, or the signature is wrong (403).
    TokenInvalid,
    /// A ticket presented as a pass, or the other way round (403).
    TokenWrongKind,
    /// A token of another round (403).
    TokenWrongRound,
    /// A service caller (edge or ops) did not prove who it is (401).
    Unauthorized,
    /// No identity token where the round needs a signed-in investor (401):
    /// sign in on the platform.
    IdentityRequired,
    /// The identity token has expired: sign in again (401).
    IdentityExpired,
    /// The identity token is forged, for someone else, or unreadable (401).
    IdentityInvalid,
    /// A body names another investor than the one signed in (403).
    InvestorMismatch,
    /// A request that changes what this browser holds (signing out) came
    /// from another site (403): only the page itself may send it.
    CrossSiteRequest,

    // --- Body values (422) ---
    /// A required field (or the `Idempotency-Key` header) is absent.
    MissingField,
    /// A field's value is not acceptable.
    InvalidField,
    /// An amount that is not a positive whole number of pence in range.
    InvalidAmount,
    /// A field the endpoint does not take (ops).
    UnknownField,
    /// axum refused a body it could parse but not use.
    InvalidRequest,
    /// The same `Idempotency-Key` with a different body.
    IdempotencyKeyReused,
    /// Below the round's minimum investment.
    AmountBelowMinimum,
    /// Not a whole number of shares.
    AmountNotWholeShares,
    /// Past the per-investor maximum.
    InvestorLimitExceeded,

    // --- Where the round or the visitor is (403, 404, 409, 410, 429) ---
    /// The pass is already bound to another investor (403).
    PassBoundToOtherInvestor,
    /// No such route, round or record (404).
    NotFound,
    /// The round has no data in Redis yet (404, ops).
    RoundNotSeeded,
    /// Not this ticket's turn yet (409).
    NotAdmitted,
    /// A pre-queue ticket asked for a pass before its number was drawn (409).
    NumberNotDrawn,
    /// Pre-queue numbers are drawn at opening; not yet (409).
    NotDrawnYet,
    /// The round has not opened (409).
    RoundNotOpen,
    /// The round is closed (409).
    RoundClosed,
    /// The cap is reached, or this amount would pass it (409).
    RoundFull,
    /// A phase change that is not allowed from the current phase (409, ops).
    InvalidTransition,
    /// Creating a round whose id is taken, live or archived (409, ops).
    RoundExists,
    /// The ticket's one claim window has passed: join again (410).
    PassExpired,
    /// Leaving the queue with a ticket that claimed its pass: its turn is
    /// under way, and leaving would give up nothing (409).
    TurnUnderWay,
    /// It is the visitor's turn but the room is at its active limit (429).
    RoomFullNow,

    // --- Methods and media (405, 408, 413, 414, 415, 431) ---
    MethodNotAllowed,
    /// The body did not arrive in time (host).
    BodyTimeout,
    /// The body is larger than the route accepts.
    BodyTooLarge,
    /// The request target is too long (host).
    UriTooLong,
    /// The body is not `application/json`.
    UnsupportedContentType,
    /// The request line and headers are too large (host).
    HeadersTooLarge,

    // --- Ours, not the client's (500, 502, 503) ---
    /// Something failed that should not have.
    InternalError,
    /// A deployment setting is missing or invalid.
    Misconfigured,
    /// A component trapped (host).
    ComponentFailed,
    /// core answered something the edge cannot read.
    CoreError,
    /// A dependency (core, Redis) is away for a moment: retry.
    Unavailable,
    /// At capacity: shedding load rather than queueing it.
    Overloaded,
    /// The health check failed.
    Unhealthy,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 53] = [
        ErrorCode::MalformedJson,
        ErrorCode::DuplicateField,
        ErrorCode::TokenMalformed,
        ErrorCode::InvalidId,
        ErrorCode::BadRequest,
        ErrorCode::MissingPass,
        ErrorCode::MissingTicket,
        ErrorCode::TokenExpired,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenWrongKind,
        ErrorCode::TokenWrongRound,
        ErrorCode::Unauthorized,
        ErrorCode::IdentityRequired,
        ErrorCode::IdentityExpired,
        ErrorCode::IdentityInvalid,
        ErrorCode::InvestorMismatch,
        ErrorCode::CrossSiteRequest,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::InvalidAmount,
        ErrorCode::UnknownField,
        ErrorCode::InvalidRequest,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::AmountBelowMinimum,
        ErrorCode::AmountNotWholeShares,
        ErrorCode::InvestorLimitExceeded,
        ErrorCode::PassBoundToOtherInvestor,
        ErrorCode::NotFound,
        ErrorCode::RoundNotSeeded,
        ErrorCode::NotAdmitted,
        ErrorCode::NumberNotDrawn,
        ErrorCode::NotDrawnYet,
        ErrorCode::RoundNotOpen,
        ErrorCode::RoundClosed,
        ErrorCode::RoundFull,
        ErrorCode::InvalidTransition,
        ErrorCode::RoundExists,
        ErrorCode::PassExpired,
        ErrorCode::TurnUnderWay,
        ErrorCode::RoomFullNow,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BodyTimeout,
        ErrorCode::BodyTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::UnsupportedContentType,
        ErrorCode::HeadersTooLarge,
        ErrorCode::InternalError,
        ErrorCode::Misconfigured,
        ErrorCode::ComponentFailed,
        ErrorCode::CoreError,
        ErrorCode::Unavailable,
        ErrorCode::Overloaded,
        ErrorCode::Unhealthy,
    ];

    /// The HTTP status every process answers this code with.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson | DuplicateField | TokenMalformed | InvalidId | BadRequest => 400,
            MissingPass | MissingTicket | TokenExpired | Unauthorized | IdentityRequired
            | IdentityExpired | IdentityInvalid => 401,
            TokenInvalid
            | TokenWrongKind
            | TokenWrongRound
            | PassBoundToOtherInvestor
            | InvestorMismatch
            | CrossSiteRequest => 403,
            NotFound | RoundNotSeeded => 404,
            MethodNotAllowed => 405,
            BodyTimeout => 408,
            NotAdmitted | NumberNotDrawn | NotDrawnYet | RoundNotOpen | RoundClosed | RoundFull
            | InvalidTransition | RoundExists | TurnUnderWay => 409,
            PassExpired => 410,
            BodyTooLarge => 413,
            UriTooLong => 414,
            UnsupportedContentType => 415,
            MissingField
            | InvalidField
            | InvalidAmount
            | UnknownField
            | InvalidRequest
            | IdempotencyKeyReused
            | AmountBelowMinimum
            | AmountNotWholeShares
            | InvestorLimitExceeded => 422,
            RoomFullNow => 429,
            HeadersTooLarge => 431,
            InternalError | Misconfigured | ComponentFailed => 500,
            CoreError => 502,
            Unavailable | Overloaded | Unhealthy => 503,
        }
    }

    /// The code as it appears in the JSON `error` field.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            DuplicateField => "duplicate_field",
            TokenMalformed => "token_malformed",
            // A malformed path segment is an invalid field to the client.
            InvalidId | InvalidField => "invalid_field",
            BadRequest => "bad_request",
            MissingPass => "missing_pass",
            MissingTicket => "missing_ticket",
            TokenExpired => "token_expired",
            TokenInvalid => "token_invalid",
            TokenWrongKind => "token_wrong_kind",
            TokenWrongRound => "token_wrong_round",
            Unauthorized => "unauthorized",
            IdentityRequired => "identity_required",
            IdentityExpired => "identity_expired",
            IdentityInvalid => "identity_invalid",
            InvestorMismatch => "investor_mismatch",
            CrossSiteRequest => "cross_site_request",
            MissingField => "missing_field",
            InvalidAmount => "invalid_amount",
            UnknownField => "unknown_field",
            InvalidRequest => "invalid_request",
            IdempotencyKeyReused => "idempotency_key_reused",
            AmountBelowMinimum => "amount_below_minimum",
            AmountNotWholeShares => "amount_not_whole_shares",
            InvestorLimitExceeded => "investor_limit_exceeded",
            PassBoundToOtherInvestor => "pass_bound_to_other_investor",
            NotFound => "not_found",
            RoundNotSeeded => "round_not_seeded",
            NotAdmitted => "not_admitted",
            NumberNotDrawn => "number_not_drawn",
            NotDrawnYet => "not_drawn_yet",
            RoundNotOpen => "round_not_open",
            RoundClosed => "round_closed",
            RoundFull => "round_full",
            InvalidTransition => "invalid_transition",
            RoundExists => "round_exists",
            PassExpired => "pass_expired",
            TurnUnderWay => "turn_under_way",
            RoomFullNow => "room_full_now",
            MethodNotAllowed => "method_not_allowed",
            BodyTimeout => "body_timeout",
            BodyTooLarge => "body_too_large",
            UriTooLong => "uri_too_long",
            UnsupportedContentType => "unsupported_content_type",
            HeadersTooLarge => "headers_too_large",
            InternalError => "internal_error",
            Misconfigured => "misconfigured",
            ComponentFailed => "component_failed",
            CoreError => "core_error",
            Unavailable => "unavailable",
            Overloaded => "overloaded",
            Unhealthy => "unhealthy",
        }
    }

    /// The code named `text` on the wire (for codes that arrive as text:
    /// a Redis script's verdict, a relayed error body). `invalid_field`
    /// reads as [`ErrorCode::InvalidField`].
    pub fn parse(text: &str) -> Option<ErrorCode> {
        if text == "invalid_field" {
            return Some(ErrorCode::InvalidField);
        }
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(text: &str) -> Result<ErrorCode, UnknownErrorCode> {
        ErrorCode::parse(text).ok_or_else(|| UnknownErrorCode(text.to_string()))
    }
}

/// A code no Crowdgate process emits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ErrorCode, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// The error body every Crowdgate endpoint returns with a 4xx or 5xx:
/// `{"error", "field"?, "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable machine-readable code, e.g. `amount_below_minimum`.
    pub error: ErrorCode,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for a person.
    pub message: String,
}

impl ApiError {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            field: None,
            message: message.into(),
        }
    }

    /// 404 for an investment id: the same words whether it does not exist or
    /// belongs to someone else, so an id tells a stranger nothing.
    pub fn investment_not_found(id: &str, round: &str) -> ApiError {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no investment {id} in round {round}"),
        )
    }

    pub fn for_field(error: ErrorCode, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            error,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with (its code's).
    pub fn http_status(&self) -> u16 {
        self.error.http_status()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ApiError serialises")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field}): {}", self.error, self.message),
            None => write!(f, "{}: {}", self.error, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for code in ErrorCode::ALL {
            let expected = if code == ErrorCode::InvalidId {
                ErrorCode::InvalidField
            } else {
                code
            };
            assert_eq!(ErrorCode::parse(code.as_str()), Some(expected), "{code:?}");
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), expected);
        }
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        // `invalid_id` and `invalid_field` share a wire name.
        assert_eq!(
            names.len(),
            ErrorCode::ALL.len() - 1,
            "a code is listed twice"
        );
        assert_eq!(ErrorCode::parse("nonsense"), None);
        assert!(serde_json::from_str::<ErrorCode>("\"nonsense\"").is_err());
    }

    #[test]
    fn every_code_is_listed_and_is_an_error_status() {
        for code in ErrorCode::ALL {
            let status = code.http_status();
            assert!((400..600).contains(&status), "{code:?} → {status}");
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code:?}"
            );
        }
    }

    #[test]
    fn statuses_clients_rely_on() {
        for (code, status) in [
            (ErrorCode::TokenExpired, 401),
            (ErrorCode::MissingPass, 401),
            (ErrorCode::TokenInvalid, 403),
            (ErrorCode::TokenMalformed, 400),
            (ErrorCode::DuplicateField, 400),
            (ErrorCode::MalformedJson, 400),
            (ErrorCode::InvalidField, 422),
            (ErrorCode::InvalidId, 400),
            (ErrorCode::RoundFull, 409),
            (ErrorCode::PassExpired, 410),
            (ErrorCode::TurnUnderWay, 409),
            (ErrorCode::RoomFullNow, 429),
            (ErrorCode::BodyTooLarge, 413),
            (ErrorCode::Overloaded, 503),
            // Identity: sign in (again) is 401; naming someone else is 403.
            (ErrorCode::IdentityRequired, 401),
            (ErrorCode::IdentityExpired, 401),
            (ErrorCode::IdentityInvalid, 401),
            (ErrorCode::InvestorMismatch, 403),
        ] {
            assert_eq!(code.http_status(), status, "{code:?}");
        }
    }

    #[test]
    fn identity_codes_have_their_wire_names() {
        for (code, name) in [
            (ErrorCode::IdentityRequired, "identity_required"),
            (ErrorCode::IdentityExpired, "identity_expired"),
            (ErrorCode::IdentityInvalid, "identity_invalid"),
            (ErrorCode::InvestorMismatch, "investor_mismatch"),
        ] {
            assert_eq!(code.as_str(), name);
            assert_eq!(ErrorCode::parse(name), Some(code));
            assert!(ErrorCode::ALL.contains(&code), "{code:?} is not in ALL");
        }
    }

    #[test]
    fn json_shape_is_unchanged() {
        let with_field = ApiError::for_field(ErrorCode::MissingPass, "Authorization", "send it");
        assert_eq!(
            with_field.to_json(),
            r#"{"error":"missing_pass","field":"Authorization","message":"send it"}"#
        );
        let without = ApiError::new(ErrorCode::Unavailable, "later");
        assert_eq!(
            without.to_json(),
            r#"{"error":"unavailable","message":"later"}"#
        );
        assert_eq!(
            serde_json::from_str::<ApiError>(&with_field.to_json()).unwrap(),
            with_field
        );
    }
}
