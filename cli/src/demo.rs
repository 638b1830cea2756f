//! Demo investor accounts for `crowdgate up`: enough funded investors to walk
//! through a round, plus one with too little money to show a failed
//! settlement releasing its amount.

/// Investors `demo-001` … `demo-200` with £5,000 each, and `demo-skint` with £5.
pub fn accounts() -> Vec<(String, i64)> {
    let mut accounts: Vec<(String, i64)> = (1..=200).map(|n| (format!("demo-{n:03}"), 500_000)).collect();
    accounts.push(("demo-skint".to_string(), 500));
    accounts
}
