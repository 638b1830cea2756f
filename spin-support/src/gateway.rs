//! The one investment gateway: every investment that enters through a
//! component — the edge's `POST /api/investments` and the waiting room's
//! no-JavaScript form — passes here.
//!
//! [`invest`] runs every check ([`Attempt::check`]: body size, pass,
//! content type, `Idempotency-Key`, body) before core is called, so forged
//! passes and bad bodies cost core nothing and no entrance can skip a
//! check or quietly repair a value (a too-long key is refused, never
//! truncated into another key). core checks it all again.

use crate::core_client::{CoreClient, CoreError};
use crate::refusal::Refusal;
use crate::{Settings, now_ms};
use crowdgate_protocol::api::Investment;
use crowdgate_protocol::attempt::Attempt;

/// Checks `attempt` and, if it passes, invests through core. A refusal is
/// [`CoreError::Refused`] whether the checks here or core made it, with the
/// same status either way.
pub async fn invest(settings: &Settings, attempt: Attempt<'_>) -> Result<Investment, CoreError> {
    let checked = attempt
        .check(&settings.keyring, &settings.round, now_ms() / 1000)
        .map_err(Refusal::from)?;
    // `check` verified the pass, so there is one.
    let pass_token = attempt.pass.unwrap_or_default();
    CoreClient::new(settings)
        .invest(pass_token, &checked.idempotency_key, attempt.body)
        .await
        .inspect_err(|err| {
            if let CoreError::Unavailable(why) = err {
                eprintln!(
                    "gateway: core unavailable for ticket {}: {}",
                    checked.pass.ticket, why.0
                );
            }
        })
}
