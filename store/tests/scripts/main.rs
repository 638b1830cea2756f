//! The round's scripts, driven through their typed wrappers on a fixed
//! clock (every script takes `now` as an argument) against a real
//! redis-server started per test. Each test is a deterministic walk through
//! the state machine and runs in milliseconds.

mod achieved_rate;
mod admission;
mod admission_rate;
mod identity;
mod invest;
mod leave;
mod ops;
mod phases;
mod prequeue;
mod replication;
mod rounds;
mod settle;
mod support;

use crowdgate_store::{InvestVerdict, Joined, NewInvestment, Placement, RoundStore};

/// An anonymous join (the test rounds are anonymous rooms): a new place for
/// `ticket`, never a rejoin.
pub async fn join(store: &RoundStore, ticket: &str, now_ms: u64) -> Placement {
    let joined = store.join(ticket, now_ms, None).await.unwrap();
    let Some(Joined {
        placement,
        ticket_id,
        rejoined: false,
    }) = joined
    else {
        panic!("an anonymous join is a new place: {joined:?}");
    };
    assert_eq!(ticket_id, ticket);
    placement
}

/// The number pre-queue entry `entry` drew in the fixture's sealed round.
pub async fn drawn(f: &support::Fixture, entry: u64) -> u64 {
    let round = f.round().await;
    let sealed = round.sealed_draw().expect("the pre-queue is sealed");
    sealed.number(entry).expect("an entry of the pre-queue")
}

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
    invest_capped(store, id, ticket, investor, amount, None, now_ms).await
}

/// [`invest_on`] for an investor whose identity carries their own maximum.
pub async fn invest_capped(
    store: &RoundStore,
    id: &str,
    ticket: &str,
    investor: &str,
    amount: i64,
    investor_max_pence: Option<i64>,
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
            investor_max_pence,
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
