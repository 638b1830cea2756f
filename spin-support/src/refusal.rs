//! An error answer a component gives: a status, the JSON [`ApiError`] body,
//! and the headers clients act on (`Retry-After`, the remaining pence of a
//! nearly full round).
//!
//! A refusal is the same value whether a component's own checks made it or
//! core's verdict was relayed, so an investor sees one answer for one
//! mistake whichever side caught it.

use crowdgate_protocol::ApiError;
use crowdgate_protocol::routes::REMAINING_PENCE_HEADER;
use spin_sdk::http::Response;

/// A refused request, ready to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status: the code's own, or what core answered.
    pub status: u16,
    pub body: ApiError,
    /// Seconds for `Retry-After`.
    pub retry_after_s: Option<u32>,
    /// On `round_full`: pence the round can still take.
    pub remaining_pence: Option<i64>,
}

impl Refusal {
    /// core's error answer, with the status and headers core gave it.
    pub fn relayed(status: u16, body: ApiError) -> Refusal {
        Refusal {
            status,
            body,
            retry_after_s: None,
            remaining_pence: None,
        }
    }

    /// The response: `status`, the JSON body, and the headers.
    pub fn into_response(self) -> Response {
        let mut response = crate::respond::json(self.status, &self.body);
        if let Some(seconds) = self.retry_after_s {
            response.set_header("retry-after", seconds.to_string());
        }
        if let Some(pence) = self.remaining_pence {
            response.set_header(REMAINING_PENCE_HEADER, pence.to_string());
        }
        response
    }
}

impl From<ApiError> for Refusal {
    /// A refusal made here: the status is the code's.
    fn from(body: ApiError) -> Refusal {
        Refusal::relayed(body.http_status(), body)
    }
}
