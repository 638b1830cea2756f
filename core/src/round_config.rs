//! The round's configuration file (TOML): what is being raised, the limits per
//! investor, and how fast the waiting room admits people.
//!
//! Loaded by `crowdgate up` and by core; validated at load so a typo fails at
//! start with the field's name, not at 10:00 on the morning of the round.

use crowdgate_protocol::RoomPhase;
use serde::Deserialize;
use std::path::Path;

/// A configuration problem, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read round config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("round config {path} is not valid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("round config: `{field}` {problem}")]
    Invalid { field: &'static str, problem: String },
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundConfig {
    pub round: RoundTerms,
    #[serde(default)]
    pub admission: AdmissionSettings,
}

/// What is raised and on what terms. Money in pence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundTerms {
    /// Round id: `[a-z0-9-]`, used in tokens and Redis keys.
    pub id: String,
    /// Name shown to investors.
    pub name: String,
    pub cap_pence: i64,
    pub min_investment_pence: i64,
    pub max_investment_pence: i64,
    pub share_price_pence: i64,
    /// Phase the round starts in the first time it is seeded.
    #[serde(default = "default_phase")]
    pub initial_phase: String,
}

fn default_phase() -> String {
    "open".to_string()
}

/// How the waiting room admits people; ops can change these live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            rate_per_minute: 600,
            batch_interval_ms: 1_000,
            max_active: 1_000,
            pass_ttl_seconds: 900,
        }
    }
}

impl RoundConfig {
    pub fn load(path: &Path) -> Result<RoundConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
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
        RoomPhase::parse(&self.round.initial_phase).expect("validated at load")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.round;
        let invalid = |field, problem: &str| ConfigError::Invalid {
            field,
            problem: problem.to_string(),
        };
        let id_ok = !r.id.is_empty()
            && r.id.len() <= 32
            && r.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(invalid("round.id", "must be 1-32 characters of a-z, 0-9 and -"));
        }
        if r.name.trim().is_empty() {
            return Err(invalid("round.name", "must not be empty"));
        }
        if r.share_price_pence <= 0 {
            return Err(invalid("round.share_price_pence", "must be greater than zero"));
        }
        if r.min_investment_pence <= 0 {
            return Err(invalid("round.min_investment_pence", "must be greater than zero"));
        }
        if r.max_investment_pence < r.min_investment_pence {
            return Err(invalid("round.max_investment_pence", "must be at least min_investment_pence"));
        }
        if r.cap_pence < r.min_investment_pence {
            return Err(invalid("round.cap_pence", "must be at least min_investment_pence"));
        }
        if r.cap_pence > crowdgate_protocol::invest::MAX_AMOUNT_PENCE * 1000 {
            return Err(invalid("round.cap_pence", "is implausibly large"));
        }
        for (field, value) in [
            ("round.cap_pence", r.cap_pence),
            ("round.min_investment_pence", r.min_investment_pence),
            ("round.max_investment_pence", r.max_investment_pence),
        ] {
            if value % r.share_price_pence != 0 {
                return Err(invalid(field, "must be a whole number of shares (a multiple of share_price_pence)"));
            }
        }
        if RoomPhase::parse(&r.initial_phase).is_none() {
            return Err(invalid(
                "round.initial_phase",
                "must be one of scheduled, open, paused, closed",
            ));
        }
        let a = &self.admission;
        if a.batch_interval_ms < 100 || a.batch_interval_ms > 60_000 {
            return Err(invalid("admission.batch_interval_ms", "must be between 100 and 60000"));
        }
        if a.rate_per_minute > 1_000_000 {
            return Err(invalid("admission.rate_per_minute", "must be at most 1000000"));
        }
        if a.max_active == 0 {
            return Err(invalid("admission.max_active", "must be at least 1"));
        }
        if !(30..=86_400).contains(&a.pass_ttl_seconds) {
            return Err(invalid("admission.pass_ttl_seconds", "must be between 30 and 86400"));
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
            ("share_price_pence = 100", "share_price_pence = 0", "round.share_price_pence"),
            ("max_investment_pence = 20000", "max_investment_pence = 500", "round.max_investment_pence"),
            ("cap_pence = 100000", "cap_pence = 100050", "round.cap_pence"),
            ("batch_interval_ms = 500", "batch_interval_ms = 5", "admission.batch_interval_ms"),
            ("pass_ttl_seconds = 600", "pass_ttl_seconds = 1", "admission.pass_ttl_seconds"),
        ];
        for (from, to, field) in cases {
            let err = RoundConfig::parse(&GOOD.replace(from, to)).unwrap_err().to_string();
            assert!(err.contains(field), "{to}: {err}");
        }
    }

    #[test]
    fn unknown_and_missing_fields_are_errors() {
        assert!(RoundConfig::parse(&GOOD.replace("cap_pence", "cap_pounds")).is_err());
        assert!(RoundConfig::parse("[round]\nid = \"x\"").is_err());
    }
}
