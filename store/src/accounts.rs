//! Investors' accounts: opening them (`open_accounts.lua`, all or none,
//! never overwriting a balance) and reading them. An account belongs to the
//! investor, not to a round: every round's settlement debits the one
//! balance ([`deployment::BALANCES`]), and the deployment's totals
//! ([`deployment::ACCOUNTS`]) say what was opened and what was debited.

use crate::Connection;
use crate::error::StoreResult;
use crate::keys::{RoundKeys, deployment};
use crate::layout::accounts as AC;
use crate::layout::ledger as L;
use crate::scripts::{OPEN_ACCOUNTS_LUA, ScriptCall, unknown};
use std::collections::HashMap;

/// A hash as read: field → value.
type Fields = HashMap<String, String>;

/// What opening a set of accounts did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAccounts {
    /// Every account was opened.
    Opened,
    /// These investors already have an account; nothing was written.
    AlreadyExist(Vec<String>),
}

/// Opens `(investor id, balance pence)` accounts, all or none.
pub async fn open_accounts<C: Connection>(
    redis: &mut C,
    accounts: &[(&str, i64)],
) -> StoreResult<OpenAccounts> {
    let call = ScriptCall {
        keys: vec![
            deployment::BALANCES.to_string(),
            deployment::ACCOUNTS.to_string(),
        ],
        args: accounts
            .iter()
            .flat_map(|(investor, pence)| [investor.to_string(), pence.to_string()])
            .collect(),
    };
    let mut answer: Vec<String> = call.invoke(&OPEN_ACCOUNTS_LUA, redis).await?;
    let verdict = if answer.is_empty() {
        String::new()
    } else {
        answer.remove(0)
    };
    match verdict.as_str() {
        "opened" => Ok(OpenAccounts::Opened),
        "exists" => Ok(OpenAccounts::AlreadyExist(answer)),
        other => Err(unknown(&OPEN_ACCOUNTS_LUA, other)),
    }
}

/// The accounts at one moment: every balance and the totals, with the
/// ledger debits of the rounds asked for, read in one `MULTI`/`EXEC`, so
/// Σ balances + debited = opened and debited = Σ rounds' debits can be
/// checked on a deployment that keeps settling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountsSnapshot {
    /// Investor → balance pence (values that are not numbers left out).
    pub balances: HashMap<String, i64>,
    pub opened_pence: i64,
    pub opened_count: i64,
    pub debited_pence: i64,
    /// Σ the ledger debits of the rounds named to [`accounts_snapshot`].
    pub rounds_debits_pence: i64,
}

/// Reads [`AccountsSnapshot`], with the ledger debits of `rounds`.
pub async fn accounts_snapshot<C: Connection>(
    redis: &mut C,
    rounds: &[String],
) -> StoreResult<AccountsSnapshot> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .hgetall(deployment::BALANCES)
        .hgetall(deployment::ACCOUNTS);
    for round in rounds {
        pipe.hget(RoundKeys::new(round).ledger(), L::DEBITS_PENCE);
    }
    let (balances, totals, debits): (Fields, Fields, Vec<Option<i64>>) = if rounds.is_empty() {
        let (balances, totals) = pipe.query_async(redis).await?;
        (balances, totals, Vec::new())
    } else {
        let mut answers: Vec<redis::Value> = pipe.query_async(redis).await?;
        let debits = answers.split_off(2);
        let mut answers = answers.into_iter();
        let mut next = || answers.next().unwrap_or(redis::Value::Nil);
        let parse = |value| redis::from_redis_value(value).map_err(redis::RedisError::from);
        (
            parse(next())?,
            parse(next())?,
            debits
                .into_iter()
                .map(|value| redis::from_redis_value(value).map_err(redis::RedisError::from))
                .collect::<Result<_, _>>()?,
        )
    };
    let total = |field: &str| totals.get(field).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(AccountsSnapshot {
        balances: balances
            .into_iter()
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
            .collect(),
        opened_pence: total(AC::OPENED_PENCE),
        opened_count: total(AC::OPENED_COUNT),
        debited_pence: total(AC::DEBITED_PENCE),
        rounds_debits_pence: debits.into_iter().flatten().sum(),
    })
}
