//! Demo investor accounts for `crowdgate up`: enough funded investors to walk
//! through a round, plus one with too little money to show a failed
//! settlement releasing its amount.

use crowdgate_settlement::accounts::Account;

/// Investors `demo-001` … `demo-200` with £5,000 each, and `demo-skint` with £5.
pub fn accounts() -> Vec<Account> {
    let account = |investor_id: String, balance_pence| Account {
        investor_id,
        balance_pence,
    };
    let mut accounts: Vec<Account> = (1..=200)
        .map(|n| account(format!("demo-{n:03}"), 500_000))
        .collect();
    accounts.push(account("demo-skint".to_string(), 500));
    accounts
}
