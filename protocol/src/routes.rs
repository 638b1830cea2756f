//! The edge↔core contract's addresses: core's `/v1` routes, the paths the
//! edge calls, and the headers both sides read.
//!
//! core registers [`route`] patterns with axum and the edge builds
//! [`CorePath`]s from the same table, so a route cannot be renamed on one
//! side only. Path segments the edge fills in (a ticket id, an investment
//! id) are already validated ids, so no escaping is needed.

/// The header in which an edge component presents its service token on
/// every call to core's `/v1` API (core answers 401 without a valid one).
pub const EDGE_TOKEN_HEADER: &str = "x-crowdgate-edge-token";
/// The header naming one investment attempt; every retry repeats it.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// On a `round_full` refusal: the pence the round can still take.
pub const REMAINING_PENCE_HEADER: &str = "x-crowdgate-remaining-pence";

/// core's `/v1` route patterns, in axum's `{param}` syntax.
pub mod route {
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
