//! Component settings from Spin application variables.
//!
//! Variables are read per request (a fresh instance serves each request, and
//! reading a variable is a cheap host call), so ops can rotate keys by
//! restarting the host with new `SPIN_VARIABLE_*` values.

use crowdgate_protocol::routes::{RoundPath, RoundPathError};
use crowdgate_protocol::{ApiError, ErrorCode, Keyring};

/// What a component needs to know about its deployment and the round a
/// request is for.
pub struct Settings {
    /// Base URL of core, e.g. `http://127.0.0.1:8080`.
    pub core_url: String,
    /// The round this request is for: named by its URL (`/r/{round}/…`),
    /// or the deployment's default round for the bare paths.
    pub round: String,
    /// Where this round's URLs start: `/r/{round}`, or empty for the bare
    /// paths. Every link and redirect the edge makes starts with it.
    pub base: String,
    /// The deployment's default round (`round_id`; empty: none).
    pub default_round: String,
    /// Keys that sign and verify tickets and passes. Never logged.
    pub keyring: Keyring,
    /// This edge's credential on core's `/v1` API. Never logged.
    pub edge_token: String,
}

impl Settings {
    /// Reads `core_url`, `round_id` (the default round), `signing_keys` and
    /// `edge_token`, and finds the round `path` is for. Returns the settings
    /// and the path below the round's base. A missing or bad variable is a
    /// deployment fault, reported as a 500 with the variable's name (never
    /// its value); a path that names no round is a 404.
    pub fn for_path(path: &str) -> Result<(Settings, String), ApiError> {
        let default_round = variable("round_id")?.trim().to_string();
        let round_path = RoundPath::parse(path, &default_round).map_err(|err| match err {
            RoundPathError::BadRoundId => ApiError::for_field(
                ErrorCode::NotFound,
                "round",
                format!("no such round: round URLs are /r/<round id>/, and {path:?} names none"),
            ),
            RoundPathError::NoDefaultRound => ApiError::for_field(
                ErrorCode::NotFound,
                "round",
                "this edge serves its rounds at /r/<round id>/ (it has no default round)",
            ),
        })?;
        let (round, base, rest) = (
            round_path.round.to_string(),
            round_path.base.to_string(),
            round_path.rest.to_string(),
        );
        let core_url = variable("core_url")?.trim_end_matches('/').to_string();
        let keyring = Keyring::parse(&variable("signing_keys")?).map_err(|e| {
            ApiError::new(
                ErrorCode::Misconfigured,
                format!("variable signing_keys is invalid: {e}"),
            )
        })?;
        let edge_token = variable("edge_token")?;
        let settings = Settings {
            core_url,
            round,
            base,
            default_round,
            keyring,
            edge_token,
        };
        Ok((settings, rest))
    }

    /// The browser cookie holding this round's ticket: `cg_ticket` for the
    /// default round (whichever URL reaches it), `cg_ticket_<round>` for
    /// the others, so one browser holds a place in each round it joins.
    pub fn ticket_cookie(&self) -> String {
        if self.round == self.default_round {
            "cg_ticket".to_string()
        } else {
            format!("cg_ticket_{}", self.round)
        }
    }

    /// `path` (from `/`) under this round's base: `/r/{round}/api/status`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
