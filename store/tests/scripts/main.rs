//! The round's scripts, driven through their typed wrappers on a fixed
//! clock (every script takes `now` as an argument) against a real
//! redis-server started per test. Each test is a deterministic walk through
//! the state machine and runs in milliseconds.

mod admission;
mod invest;
mod ops;
mod phases;
mod prequeue;
mod settle;
mod support;

use crowdgate_store::{InvestVerdict, NewInvestment, RoundStore};

/// Investment `id` of `amount` pence by `investor` on ticket `ticket`
/// (the request's fingerprint is investor and amount, as core's is).
pub async fn invest_on(
    store: &RoundStore,
    id: &str,
    ticket: &str,
    investor: &str,
    amount: i64,
    now_ms: u64,
) -> InvestVerdict {
    let fingerprint = format!("{investor}/{amount}");
    store
        .invest(&NewInvestment {
            investment_id: id,
            ticket_id: ticket,
            investor_id: investor,
            amount_pence: amount,
            fingerprint: &fingerprint,
            now_ms,
            binding_ttl_s: 600,
        })
        .await
        .unwrap()
}

/// [`invest_on`] with a ticket of the investor's own.
pub async fn invest(
    store: &RoundStore,
    id: &str,
    investor: &str,
    amount: i64,
    now_ms: u64,
) -> InvestVerdict {
    invest_on(
        store,
        id,
        &format!("ticket-{investor}"),
        investor,
        amount,
        now_ms,
    )
    .await
}
