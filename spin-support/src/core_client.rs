//! The edge's typed client for core's `/v1` API: one method per core route,
//! each returning protocol's reply type or a [`CoreError`].
//!
//! No component builds a core path or reads core's JSON by hand: paths come
//! from protocol's route table ([`CorePath`]) and every reply is parsed into
//! the type core serialised it from, so a renamed field or route breaks the
//! build, not production.
//!
//! Every call carries this edge's token ([`EDGE_TOKEN_HEADER`]): core's
//! `/v1` API answers nobody else. A call that fails (core down, hung past
//! [`CORE_TIMEOUT`], refused by the host's allow-list, shedding with 503) is
//! [`CoreError::Unavailable`],
//! which the components answer with 503 and `Retry-After`: the visitor
//! keeps their place and retries. Any other error answer is core's verdict,
//! [`CoreError::Refused`] with core's status and body.

use crate::Settings;
use crate::refusal::Refusal;
use crowdgate_protocol::api::{
    Investment, Left, PassGrant, PlaceRequest, PrequeueNumber, QueuePlace, RoundIds,
};
use crowdgate_protocol::routes::{
    EDGE_TOKEN_HEADER, IDEMPOTENCY_KEY_HEADER, REMAINING_PENCE_HEADER,
};
use crowdgate_protocol::{ApiError, CorePath, ErrorCode, InvestmentId, Investor, RoomState};
use serde::de::DeserializeOwned;
use spin_sdk::http::{Method, Request, Response};

/// How long a call to core may take at each step (connect, first byte,
/// between bytes). core answers in milliseconds, and sheds load with a quick
/// 503 rather than queueing; one that has not answered by now is hung (say,
/// stopped), and the visitor is better served by a 503 to retry — an
/// investment retried with its `Idempotency-Key` can never count twice.
pub const CORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// core could not be reached or is shedding load.
#[derive(Debug)]
pub struct CoreUnavailable(pub String);

/// Why a call to core produced no reply.
#[derive(Debug)]
pub enum CoreError {
    /// core (or, for the gateway, the edge's own checks) refused the request:
    /// answer with this refusal as it is.
    Refused(Refusal),
    /// core is away or shedding: answer 503, the client retries.
    Unavailable(CoreUnavailable),
}

impl CoreError {
    /// The answer for a visitor: the refusal, or 503 with `Retry-After` and
    /// `busy` (a sentence saying what is kept, e.g. the visitor's place).
    pub fn into_response(self, busy: &str) -> Response {
        match self {
            CoreError::Refused(refusal) => refusal.into_response(),
            CoreError::Unavailable(_) => crate::respond::unavailable(busy),
        }
    }

    /// For what a cache fetches (`what`: "the room state"): any failure, a
    /// refusal included, counts as core being unavailable, and the caller
    /// falls back to what it has.
    pub fn as_unavailable(self, what: &str) -> CoreUnavailable {
        match self {
            CoreError::Unavailable(why) => why,
            CoreError::Refused(refusal) => CoreUnavailable(format!(
                "core answered {} for {what}: {}",
                refusal.status, refusal.body
            )),
        }
    }

    /// The error code of a refusal (`None` when core was unavailable).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CoreError::Refused(refusal) => Some(refusal.body.error),
            CoreError::Unavailable(_) => None,
        }
    }
}

impl From<Refusal> for CoreError {
    fn from(refusal: Refusal) -> CoreError {
        CoreError::Refused(refusal)
    }
}

/// core's `/v1` API for the round in [`Settings`].
pub struct CoreClient<'a> {
    settings: &'a Settings,
}

impl<'a> CoreClient<'a> {
    pub fn new(settings: &'a Settings) -> CoreClient<'a> {
        CoreClient { settings }
    }

    fn round(&self) -> &str {
        &self.settings.round
    }

    /// `POST /queue`: the verified investor's live place again, or a fresh
    /// place (a pre-queue place before opening); `None` only in an
    /// anonymous room.
    pub async fn take_queue_place(
        &self,
        investor: Option<&Investor>,
    ) -> Result<QueuePlace, CoreError> {
        let body = serde_json::to_vec(&PlaceRequest {
            investor_id: investor.map(|i| i.id.clone()),
            max_investment_pence: investor.and_then(|i| i.max_investment_pence),
        })
        .expect("a place request serialises");
        let response = self
            .send(Method::Post, CorePath::queue(self.round()), &[], body)
            .await?;
        read(response, &[200, 201], "queue place")
    }

    /// `GET /v1/rounds`: the ids of every round core runs (callers want the
    /// cached list, [`crate::rounds::round_exists`]).
    pub async fn round_ids(&self) -> Result<RoundIds, CoreError> {
        let response = self
            .send(Method::Get, CorePath::rounds(), &[], vec![])
            .await?;
        read(response, &[200], "round list")
    }

    /// `GET /state`: the room state (callers usually want the cached one,
    /// [`crate::room_cache::room_state`]).
    pub async fn room_state(&self) -> Result<RoomState, CoreError> {
        let response = self
            .send(Method::Get, CorePath::state(self.round()), &[], vec![])
            .await?;
        read(response, &[200], "room state")
    }

    /// `GET /prequeue/{ticket}`: the number a pre-queue ticket drew, or
    /// `None` while the draw has not happened (core's `not_drawn_yet`).
    pub async fn prequeue_number(&self, ticket_id: &str) -> Result<Option<u64>, CoreError> {
        let path = CorePath::prequeue(self.round(), ticket_id);
        let response = self.send(Method::Get, path, &[], vec![]).await?;
        match read::<PrequeueNumber>(response, &[200], "pre-queue number") {
            Ok(drawn) => Ok(Some(drawn.queue_number)),
            Err(err) if err.code() == Some(ErrorCode::NotDrawnYet) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `POST /passes` with the visitor's ticket: the pass, claimed once.
    pub async fn claim_pass(&self, ticket_token: &str) -> Result<PassGrant, CoreError> {
        let authorization = [("authorization", format!("Bearer {ticket_token}"))];
        let response = self
            .send(
                Method::Post,
                CorePath::passes(self.round()),
                &authorization,
                vec![],
            )
            .await?;
        read(response, &[200], "pass")
    }

    /// `POST /queue/leave` with the visitor's ticket: its place given up
    /// for good (the same answer again for a ticket that already left);
    /// core refuses a ticket that claimed its pass (`turn_under_way`, or
    /// `pass_expired` once that pass has expired).
    pub async fn leave_queue(&self, ticket_token: &str) -> Result<Left, CoreError> {
        let authorization = [("authorization", format!("Bearer {ticket_token}"))];
        let response = self
            .send(
                Method::Post,
                CorePath::leave(self.round()),
                &authorization,
                vec![],
            )
            .await?;
        read(response, &[200], "leave")
    }

    /// `POST /investments`: `body` (JSON) under `pass_token` and
    /// `idempotency_key`. Call it through [`crate::gateway::invest`], which
    /// checks the attempt first.
    pub(crate) async fn invest(
        &self,
        pass_token: &str,
        idempotency_key: &str,
        body: &[u8],
    ) -> Result<Investment, CoreError> {
        let headers = [
            ("authorization", format!("Bearer {pass_token}")),
            (IDEMPOTENCY_KEY_HEADER, idempotency_key.to_string()),
        ];
        let response = self
            .send(
                Method::Post,
                CorePath::investments(self.round()),
                &headers,
                body.to_vec(),
            )
            .await?;
        read(response, &[201], "investment")
    }

    /// `GET /investments/{id}`: one investment's status.
    pub async fn investment(&self, id: &InvestmentId) -> Result<Investment, CoreError> {
        let path = CorePath::investment(self.round(), id);
        let response = self.send(Method::Get, path, &[], vec![]).await?;
        read(response, &[200], "investment")
    }

    /// Sends `method path` with the edge token, `headers` and a JSON `body`.
    async fn send(
        &self,
        method: Method,
        path: CorePath,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response, CoreError> {
        let mut builder = Request::builder();
        builder
            .method(method)
            .uri(format!("{}{path}", self.settings.core_url))
            .header(EDGE_TOKEN_HEADER, self.settings.edge_token.as_str());
        for (name, value) in headers {
            builder.header(*name, value.as_str());
        }
        if !body.is_empty() {
            builder.header("content-type", "application/json");
        }
        let request = builder.body(body).build();
        let response = crate::deadline::send_within(request, CORE_TIMEOUT)
            .await
            .map_err(|why| CoreError::Unavailable(CoreUnavailable(why)))?;
        if *response.status() == 503 {
            return Err(CoreError::Unavailable(CoreUnavailable(
                "core is shedding load".into(),
            )));
        }
        Ok(response)
    }
}

/// core's reply as `T` when it answered one of `expected`; its error relayed
/// otherwise. Anything unreadable is a 502 `core_error`: a contract bug,
/// never guessed at.
fn read<T: DeserializeOwned>(
    response: Response,
    expected: &[u16],
    what: &str,
) -> Result<T, CoreError> {
    let status = *response.status();
    if expected.contains(&status) {
        return serde_json::from_slice(response.body())
            .map_err(|e| core_error(format!("core sent an unreadable {what}: {e}")));
    }
    let Ok(body) = serde_json::from_slice::<ApiError>(response.body()) else {
        return Err(core_error(format!("core answered {status} for the {what}")));
    };
    let header = |name: &str| response.header(name).and_then(|v| v.as_str());
    Err(CoreError::Refused(Refusal {
        retry_after_s: header("retry-after").and_then(|v| v.trim().parse().ok()),
        remaining_pence: header(REMAINING_PENCE_HEADER).and_then(|v| v.trim().parse().ok()),
        ..Refusal::relayed(status, body)
    }))
}

fn core_error(message: String) -> CoreError {
    CoreError::Refused(Refusal::from(ApiError::new(ErrorCode::CoreError, message)))
}
