//! The round's configuration file (TOML): what is being raised, the limits per
//! investor, and how fast the waiting room admits people.
//!
//! Loaded by `crowdgate up` and by core; validated at load so a typo fails at
//! start with the field's name, not at 10:00 on the morning of the round.

use crate::clock::rfc3339_ms;
use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::api::IdentityMode;
use crowdgate_store::layout::round as R;

/// The admission settings ops may change at run time, with their allowed
/// ranges (inclusive): one table for the config file (checked at load) and
/// the ops API (checked on each change). Names are the round hash's fields.
pub const ADMISSION_LIMITS: [(&str, u64, u64); 4] = [
    (R::RATE_PER_MINUTE, 0, 1_000_000),
    (R::BATCH_INTERVAL_MS, 100, 60_000),
    (R::MAX_ACTIVE, 1, 10_000_000),
    (R::PASS_TTL_SECONDS, 30, MAX_PASS_TTL_SECONDS),
];

/// The longest a pass may live: a day.
pub const MAX_PASS_TTL_SECONDS: u64 = 86_400;

/// The largest cap a round may have, in the file or set by ops.
pub const MAX_CAP_PENCE: i64 = crowdgate_protocol::invest::MAX_AMOUNT_PENCE * 1000;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A configuration problem, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read round config {path}: {reason}")]
    Read {
        path: String,
        /// Not a `source`: the message says it once already.
        reason: std::io::Error,
    },
    /// Not TOML, or not a round file's shape (a missing or unknown field,
    /// a value of the wrong type): toml's message names the line.
    #[error("round config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("round config: `{field}` {problem}")]
    Invalid { field: String, problem: String },
}

/// The whole file (also written: `crowdgate rehearse` writes its round's).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoundConfig {
    pub round: RoundTerms,
    #[serde(default)]
    pub admission: AdmissionSettings,
}

/// What is raised and on what terms. Money in pence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoundTerms {
    /// Round id: `[a-z0-9-]`, used in tokens and Redis keys.
    pub id: String,
    /// Name shown to investors.
    pub name: String,
    /// Who may join the queue: `required` (default: investors signed in by
    /// the platform, one place each) or `anonymous` (a waiting room in front
    /// of pages that take no investment). Investing always needs a
    /// signed-in investor.
    #[serde(default)]
    pub identity: Option<String>,
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    /// Phase the round starts in the first time it is seeded. Default:
    /// `scheduled` when `opens_at` is set, else `open`.
    #[serde(default)]
    pub initial_phase: Option<String>,
    /// When a scheduled round opens, RFC 3339 (e.g. `2026-12-01T10:00:00Z`).
    #[serde(default)]
    pub opens_at: Option<String>,
    /// When the round closes, RFC 3339.
    #[serde(default)]
    pub closes_at: Option<String>,
}

/// How the waiting room admits people; ops can change these live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionSettings {
    /// People admitted per minute.
    pub rate_per_minute: u64,
    /// One batch every this many milliseconds.
    pub batch_interval_ms: u64,
    /// Most investors holding a live pass at once.
    pub max_active: u64,
    /// How long a pass lasts once handed out.
    pub pass_ttl_seconds: u64,
    /// How long an admitted visitor's place among the active investors is
    /// held for them to claim their pass; a no-show frees it after this.
    pub claim_window_seconds: u64,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            rate_per_minute: 600,
            batch_interval_ms: 1_000,
            max_active: 1_000,
            pass_ttl_seconds: 900,
            claim_window_seconds: 60,
        }
    }
}

impl RoundConfig {
    pub fn load(path: &Path) -> Result<RoundConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.display().to_string(),
            reason,
        })?;
        RoundConfig::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<RoundConfig, ConfigError> {
        let config: RoundConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<text>".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The phase the round is seeded in.
    pub fn initial_phase(&self) -> RoomPhase {
        match &self.round.initial_phase {
            Some(phase) => RoomPhase::parse(phase).expect("validated at load"),
            None if self.round.opens_at.is_some() => RoomPhase::Scheduled,
            None => RoomPhase::Open,
        }
    }

    /// Who may join: `required` unless the file says `anonymous`.
    pub fn identity(&self) -> IdentityMode {
        match &self.round.identity {
            Some(mode) => IdentityMode::parse(mode).expect("validated at load"),
            None => IdentityMode::Required,
        }
    }

    /// Opening time in Unix milliseconds, if scheduled.
    pub fn opens_at_ms(&self) -> Option<u64> {
        self.round
            .opens_at
            .as_deref()
            .map(|t| rfc3339_ms(t).expect("validated at load"))
    }

    /// Closing time in Unix milliseconds, if set.
    pub fn closes_at_ms(&self) -> Option<u64> {
        self.round
            .closes_at
            .as_deref()
            .map(|t| rfc3339_ms(t).expect("validated at load"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.round;
        let invalid = |field: &str, problem: &str| ConfigError::Invalid {
            field: field.to_string(),
            problem: problem.to_string(),
        };
        if let Err(problem) = crowdgate_store::check_round_id(&r.id) {
            return Err(invalid("round.id", problem));
        }
        if r.name.trim().is_empty() {
            return Err(invalid("round.name", "must not be empty"));
        }
        if r.share_price_pence <= 0 {
            return Err(invalid(
                "round.share_price_pence",
                "must be greater than zero",
            ));
        }
        if r.min_investment_pence <= 0 {
            return Err(invalid(
                "round.min_investment_pence",
                "must be greater than zero",
            ));
        }
        if r.max_investment_pence < r.min_investment_pence {
            return Err(invalid(
                "round.max_investment_pence",
                "must be at least min_investment_pence",
            ));
        }
        if r.cap_pence < r.min_investment_pence {
            return Err(invalid(
                "round.cap_pence",
                "must be at least min_investment_pence",
            ));
        }
        if r.cap_pence > MAX_CAP_PENCE {
            return Err(invalid("round.cap_pence", "is implausibly large"));
        }
        for (field, value) in [
            ("round.cap_pence", r.cap_pence),
            ("round.min_investment_pence", r.min_investment_pence),
            ("round.max_investment_pence", r.max_investment_pence),
        ] {
            if value % r.share_price_pence != 0 {
                return Err(invalid(
                    field,
                    "must be a whole number of shares (a multiple of share_price_pence)",
                ));
            }
        }
        if let Some(mode) = &r.identity
            && IdentityMode::parse(mode).is_none()
        {
            return Err(invalid(
                "round.identity",
                "must be \"required\" (signed-in investors only) or \"anonymous\"",
            ));
        }
        if let Some(phase) = &r.initial_phase
            && !matches!(RoomPhase::parse(phase), Some(p) if p != RoomPhase::Full)
        {
            return Err(invalid(
                "round.initial_phase",
                "must be one of scheduled, open, paused, closed",
            ));
        }
        let opens = match &r.opens_at {
            Some(t) => Some(rfc3339_ms(t).ok_or_else(|| {
                invalid(
                    "round.opens_at",
                    "must be an RFC 3339 time such as 2026-12-01T10:00:00Z",
                )
            })?),
            None => None,
        };
        let closes = match &r.closes_at {
            Some(t) => Some(rfc3339_ms(t).ok_or_else(|| {
                invalid(
                    "round.closes_at",
                    "must be an RFC 3339 time such as 2026-12-01T13:00:00Z",
                )
            })?),
            None => None,
        };
        if let (Some(opens), Some(closes)) = (opens, closes)
            && closes <= opens
        {
            return Err(invalid("round.closes_at", "must be after round.opens_at"));
        }
        let a = &self.admission;
        for (field, min, max) in ADMISSION_LIMITS {
            let value = match field {
                R::RATE_PER_MINUTE => a.rate_per_minute,
                R::BATCH_INTERVAL_MS => a.batch_interval_ms,
                R::MAX_ACTIVE => a.max_active,
                R::PASS_TTL_SECONDS => a.pass_ttl_seconds,
                other => unreachable!("ADMISSION_LIMITS names {other}, which the file lacks"),
            };
            if !(min..=max).contains(&value) {
                return Err(invalid(
                    &format!("admission.{field}"),
                    &format!("must be between {min} and {max}"),
                ));
            }
        }
        if !(1..=3_600).contains(&a.claim_window_seconds) {
            return Err(invalid(
                "admission.claim_window_seconds",
                "must be between 1 and 3600",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [round]
        id = "demo"
        name = "Demo plc"
        cap_pence = 100000
        min_investment_pence = 1000
        max_investment_pence = 20000
        share_price_pence = 100
        [admission]
        rate_per_minute = 120
        batch_interval_ms = 500
        max_active = 50
        pass_ttl_seconds = 600
    "#;

    #[test]
    fn parses_a_good_file() {
        let c = RoundConfig::parse(GOOD).unwrap();
        assert_eq!(c.round.cap_pence, 100_000);
        assert_eq!(c.admission.rate_per_minute, 120);
        assert_eq!(c.initial_phase(), RoomPhase::Open);
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            ("id = \"demo\"", "id = \"Bad Id\"", "round.id"),
            (
                "share_price_pence = 100",
                "share_price_pence = 0",
                "round.share_price_pence",
            ),
            (
                "max_investment_pence = 20000",
                "max_investment_pence = 500",
                "round.max_investment_pence",
            ),
            (
                "cap_pence = 100000",
                "cap_pence = 100050",
                "round.cap_pence",
            ),
            (
                "batch_interval_ms = 500",
                "batch_interval_ms = 5",
                "admission.batch_interval_ms",
            ),
            (
                "pass_ttl_seconds = 600",
                "pass_ttl_seconds = 1",
                "admission.pass_ttl_seconds",
            ),
            (
                "share_price_pence = 100",
                "share_price_pence = 100\nopens_at = \"tomorrow\"",
                "round.opens_at",
            ),
            (
                "share_price_pence = 100",
                "share_price_pence = 100\nopens_at = \"2026-12-01T10:00:00Z\"\ncloses_at = \"2026-12-01T09:00:00Z\"",
                "round.closes_at",
            ),
            (
                "share_price_pence = 100",
                "share_price_pence = 100\ninitial_phase = \"full\"",
                "round.initial_phase",
            ),
        ];
        for (from, to, field) in cases {
            let err = RoundConfig::parse(&GOOD.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{to}: {err}");
        }
    }

    #[test]
    fn identity_is_required_unless_the_round_says_anonymous() {
        let c = RoundConfig::parse(GOOD).unwrap();
        assert_eq!(c.identity(), IdentityMode::Required);
        for (value, mode) in [
            ("anonymous", IdentityMode::Anonymous),
            ("required", IdentityMode::Required),
        ] {
            let text = GOOD.replace(
                "share_price_pence = 100",
                &format!("share_price_pence = 100\nidentity = \"{value}\""),
            );
            assert_eq!(RoundConfig::parse(&text).unwrap().identity(), mode);
        }
    }

    #[test]
    fn an_unknown_identity_mode_is_refused_naming_the_field() {
        let text = GOOD.replace(
            "share_price_pence = 100",
            "share_price_pence = 100\nidentity = \"optional\"",
        );
        let err = RoundConfig::parse(&text).unwrap_err().to_string();
        // The field at fault and the values it may take.
        assert!(err.contains("round.identity"), "{err}");
        assert!(
            err.contains("required") && err.contains("anonymous"),
            "{err}"
        );
    }

    #[test]
    fn scheduled_rounds_start_scheduled() {
        let text = GOOD.replace(
            "share_price_pence = 100",
            "share_price_pence = 100\nopens_at = \"2026-12-01T10:00:00Z\"\ncloses_at = \"2026-12-01T13:00:00+00:00\"",
        );
        let c = RoundConfig::parse(&text).unwrap();
        assert_eq!(c.initial_phase(), RoomPhase::Scheduled);
        assert_eq!(c.opens_at_ms(), Some(1_796_119_200_000));
        assert_eq!(c.closes_at_ms(), Some(1_796_119_200_000 + 3 * 3_600_000));
    }

    #[test]
    fn unknown_and_missing_fields_are_errors() {
        assert!(RoundConfig::parse(&GOOD.replace("cap_pence", "cap_pounds")).is_err());
        assert!(RoundConfig::parse("[round]\nid = \"x\"").is_err());
    }
}
