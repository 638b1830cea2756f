//! The edge↔core contract's addresses: core's `/v1` routes, the paths the
//! edge calls, and the headers both sides read.
//!
//! core registers [`route`] patterns with axum and the edge builds
//! [`CorePath`]s from the same table, so a route cannot be renamed on one
//! side only. Path segments the edge fills in (a ticket id, an investment
//! id) are already validated ids, so no escaping is needed.

/// Why `round` cannot be a round id, if it cannot: round ids are 1-32
/// characters of a-z, 0-9 and `-`, because they stand inside every Redis
/// key name, in tokens and in investors' URLs, so nothing else may reach
/// them.
pub fn check_round_id(round: &str) -> Result<(), &'static str> {
    let ok = !round.is_empty()
        && round.len() <= 32
        && round
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("must be 1-32 characters of a-z, 0-9 and -")
    }
}

/// Investors' URLs at the edge: `/r/{round}/…` names the round (the page at
/// `/r/{round}/`, its API at `/r/{round}/api/…`); the bare paths (`/`,
/// `/api/…`) are the deployment's default round, if it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundPath<'a> {
    /// The round the request is for.
    pub round: &'a str,
    /// The path below the round's base (`/`, `/api/status`, …).
    pub rest: &'a str,
    /// Where the round's URLs start: `/r/{round}`, or empty for the bare
    /// paths of the default round.
    pub base: &'a str,
}

/// Why a path names no round the edge can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundPathError {
    /// `/r/{round}` with something that cannot be a round id.
    BadRoundId,
    /// A bare path on a deployment with no default round.
    NoDefaultRound,
}

/// The prefix of a round's URLs.
pub const ROUND_PATH_PREFIX: &str = "/r/";

impl<'a> RoundPath<'a> {
    /// Splits `path` into its round and the rest; `default_round` (empty:
    /// none) serves the bare paths.
    pub fn parse(path: &'a str, default_round: &'a str) -> Result<RoundPath<'a>, RoundPathError> {
        let Some(after) = path.strip_prefix(ROUND_PATH_PREFIX) else {
            if default_round.is_empty() {
                return Err(RoundPathError::NoDefaultRound);
            }
            return Ok(RoundPath {
                round: default_round,
                rest: path,
                base: "",
            });
        };
        let end = after.find('/').unwrap_or(after.len());
        let round = &after[..end];
        check_round_id(round).map_err(|_| RoundPathError::BadRoundId)?;
        let rest = match &after[end..] {
            "" => "/",
            rest => rest,
        };
        Ok(RoundPath {
            round,
            rest,
            base: &path[..ROUND_PATH_PREFIX.len() + end],
        })
    }
}

/// The header in which an edge component presents its service token on
/// every call to core's `/v1` API (core answers 401 without a valid one).
pub const EDGE_TOKEN_HEADER: &str = "x-crowdgate-edge-token";
/// The header naming one investment attempt; every retry repeats it.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// On a `round_full` refusal: the pence the round can still take.
pub const REMAINING_PENCE_HEADER: &str = "x-crowdgate-remaining-pence";

/// core's `/v1` route patterns, in axum's `{param}` syntax.
pub mod route {
    /// `GET`: the ids of every round core runs, live or archived
    /// ([`crate::api::RoundIds`]): the edge's list of rounds it may serve.
    pub const ROUNDS: &str = "/v1/rounds";
    /// `POST`: a fresh place at the back of the queue ([`crate::api::QueuePlace`]).
    pub const QUEUE: &str = "/v1/rounds/{round}/queue";
    /// `GET`: the room state the edge caches ([`crate::RoomState`]).
    pub const STATE: &str = "/v1/rounds/{round}/state";
    /// `GET`: the number a pre-queue ticket drew ([`crate::api::PrequeueNumber`]).
    pub const PREQUEUE: &str = "/v1/rounds/{round}/prequeue/{ticket}";
    /// `POST` with a ticket: claim the pass ([`crate::api::PassGrant`]).
    pub const PASSES: &str = "/v1/rounds/{round}/passes";
    /// `POST` with a ticket: give its place up ([`crate::api::Left`]).
    pub const LEAVE: &str = "/v1/rounds/{round}/queue/leave";
    /// `POST` with a pass: invest ([`crate::api::Investment`]).
    pub const INVESTMENTS: &str = "/v1/rounds/{round}/investments";
    /// `GET`: one investment ([`crate::api::Investment`]).
    pub const INVESTMENT: &str = "/v1/rounds/{round}/investments/{id}";
}

/// A concrete core path for one round, built from the [`route`] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePath(String);

impl CorePath {
    pub fn rounds() -> CorePath {
        CorePath(route::ROUNDS.to_string())
    }

    pub fn queue(round: &str) -> CorePath {
        CorePath::fill(route::QUEUE, round, None)
    }

    pub fn state(round: &str) -> CorePath {
        CorePath::fill(route::STATE, round, None)
    }

    pub fn prequeue(round: &str, ticket_id: &str) -> CorePath {
        CorePath::fill(route::PREQUEUE, round, Some(("{ticket}", ticket_id)))
    }

    pub fn passes(round: &str) -> CorePath {
        CorePath::fill(route::PASSES, round, None)
    }

    pub fn leave(round: &str) -> CorePath {
        CorePath::fill(route::LEAVE, round, None)
    }

    pub fn investments(round: &str) -> CorePath {
        CorePath::fill(route::INVESTMENTS, round, None)
    }

    pub fn investment(round: &str, id: &crate::InvestmentId) -> CorePath {
        CorePath::fill(route::INVESTMENT, round, Some(("{id}", id.as_str())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn fill(pattern: &str, round: &str, param: Option<(&str, &str)>) -> CorePath {
        let path = pattern.replace("{round}", round);
        CorePath(match param {
            Some((name, value)) => path.replace(name, value),
            None => path,
        })
    }
}

impl std::fmt::Display for CorePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvestmentId;

    #[test]
    fn investor_paths_name_their_round_or_the_default() {
        let parse = |path, default| RoundPath::parse(path, default);
        assert_eq!(
            parse("/r/spring-27/api/status", "demo"),
            Ok(RoundPath {
                round: "spring-27",
                rest: "/api/status",
                base: "/r/spring-27"
            })
        );
        assert_eq!(parse("/r/bond/", "").unwrap().rest, "/");
        assert_eq!(parse("/r/bond", "").unwrap().rest, "/", "no trailing slash");
        assert_eq!(
            parse("/api/status", "demo"),
            Ok(RoundPath {
                round: "demo",
                rest: "/api/status",
                base: ""
            })
        );
        assert_eq!(parse("/", ""), Err(RoundPathError::NoDefaultRound));
        for bad in ["/r/", "/r//x", "/r/Spring/", "/r/a%2Fb/", "/r/../x"] {
            assert_eq!(parse(bad, "demo"), Err(RoundPathError::BadRoundId), "{bad}");
        }
        assert_eq!(
            check_round_id(&"a".repeat(33)),
            Err("must be 1-32 characters of a-z, 0-9 and -")
        );
    }

    #[test]
    fn paths_follow_the_route_table() {
        assert_eq!(CorePath::queue("r1").as_str(), "/v1/rounds/r1/queue");
        assert_eq!(CorePath::state("r1").as_str(), "/v1/rounds/r1/state");
        assert_eq!(
            CorePath::prequeue("r1", "abc").as_str(),
            "/v1/rounds/r1/prequeue/abc"
        );
        assert_eq!(CorePath::passes("r1").as_str(), "/v1/rounds/r1/passes");
        assert_eq!(CorePath::leave("r1").as_str(), "/v1/rounds/r1/queue/leave");
        assert_eq!(
            CorePath::investments("r1").as_str(),
            "/v1/rounds/r1/investments"
        );
        let id = InvestmentId::derive("r1", "t", "k");
        assert_eq!(
            CorePath::investment("r1", &id).to_string(),
            format!("/v1/rounds/r1/investments/{id}")
        );
    }
}
