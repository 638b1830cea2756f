//! Opening investor accounts (`open_accounts.lua`): all or none, never
//! overwriting a balance.

use crate::Connection;
use crate::error::StoreResult;
use crate::scripts::{OPEN_ACCOUNTS_LUA, ScriptCall, unknown};
use crate::stream::Settlement;

/// What opening a set of accounts did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenAccounts {
    /// Every account was opened.
    Opened,
    /// These investors already have an account; nothing was written.
    AlreadyExist(Vec<String>),
}

impl Settlement {
    /// Opens `(investor id, balance pence)` accounts, all or none.
    pub async fn open_accounts<C: Connection>(
        &self,
        redis: &mut C,
        accounts: &[(&str, i64)],
    ) -> StoreResult<OpenAccounts> {
        let call = ScriptCall {
            keys: vec![self.keys.balances()],
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
}
