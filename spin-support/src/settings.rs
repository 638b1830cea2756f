//! Component settings from Spin application variables.
//!
//! Variables are read per request (a fresh instance serves each request, and
//! reading a variable is a cheap host call), so ops can rotate keys by
//! restarting the host with new `SPIN_VARIABLE_*` values.

use crowdgate_protocol::{ApiError, ErrorCode, Keyring};

/// What a component needs to know about its deployment.
pub struct Settings {
    /// Base URL of core, e.g. `http://127.0.0.1:8080`.
    pub core_url: String,
    /// The round this edge serves.
    pub round: String,
    /// Keys that sign and verify tickets and passes. Never logged.
    pub keyring: Keyring,
    /// This edge's credential on core's `/v1` API. Never logged.
    pub edge_token: String,
}

impl Settings {
    /// Reads `core_url`, `round_id`, `signing_keys` and `edge_token`. A missing or bad
    /// variable is a deployment fault, reported as a 500 with the variable's
    /// name (never its value).
    pub fn load() -> Result<Settings, ApiError> {
        let core_url = variable("core_url")?.trim_end_matches('/').to_string();
        let round = variable("round_id")?;
        let keyring = Keyring::parse(&variable("signing_keys")?).map_err(|e| {
            ApiError::new(
                ErrorCode::Misconfigured,
                format!("variable signing_keys is invalid: {e}"),
            )
        })?;
        let edge_token = variable("edge_token")?;
        Ok(Settings {
            core_url,
            round,
            keyring,
            edge_token,
        })
    }
}

/// A variable's value, or a 500 naming it when it is unavailable.
pub(crate) fn variable(name: &str) -> Result<String, ApiError> {
    spin_sdk::variables::get(name).map_err(|e| {
        ApiError::new(
            ErrorCode::Misconfigured,
            format!("variable {name} is unavailable: {e:?}"),
        )
    })
}

/// A variable that may be left empty: `None` when it is (or is whitespace).
pub(crate) fn optional_variable(name: &str) -> Result<Option<String>, ApiError> {
    let value = variable(name)?;
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_string()))
}
