//! Investor accounts from CSV: `crowdgate accounts import FILE`.
//!
//! The file is `investor_id,balance_pence` with that header. Every row is
//! checked first and every problem reported with its line number; only a
//! file with no problems is imported, in one atomic script (the store's
//! `open_accounts.lua`), so nothing is ever half-imported.

use crowdgate_protocol::invest::{MAX_AMOUNT_PENCE, validate_investor_id};
use crowdgate_store::{OpenAccounts, Redis, StoreError};
use std::collections::HashSet;

/// One account to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub investor_id: String,
    pub balance_pence: i64,
}

/// A problem with one line of the file (1-based, header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} problem(s) in the file; nothing was imported:\n{}", .0.len(), list(.0))]
    BadLines(Vec<LineError>),
    #[error("{} account(s) already exist; nothing was imported: {}", .0.len(), .0.join(", "))]
    AlreadyExist(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(errors: &[LineError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses and checks a CSV file's text.
pub fn parse_csv(text: &str) -> Result<Vec<Account>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut errors = Vec::new();
    let headers = reader.headers().cloned().unwrap_or_default();
    if headers.iter().collect::<Vec<_>>() != ["investor_id", "balance_pence"] {
        errors.push(LineError {
            line: 1,
            message: "the header must be `investor_id,balance_pence`".into(),
        });
        return Err(ImportError::BadLines(errors));
    }
    let mut accounts = Vec::new();
    let mut seen = HashSet::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = err.position().map(|p| p.line()).unwrap_or(0);
                errors.push(LineError {
                    line,
                    message: format!("unreadable: {err}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() != 2 {
            errors.push(LineError {
                line,
                message: format!("expected 2 fields, found {}", record.len()),
            });
            continue;
        }
        let investor_id = record[0].to_string();
        if let Err(err) = validate_investor_id(&investor_id) {
            errors.push(LineError {
                line,
                message: err.message,
            });
            continue;
        }
        let balance_pence = match record[1].parse::<i64>() {
            Ok(pence) if (0..=MAX_AMOUNT_PENCE).contains(&pence) => pence,
            _ => {
                errors.push(LineError {
                    line,
                    message: format!("balance_pence {:?} must be a whole number of pence from 0 to {MAX_AMOUNT_PENCE}", &record[1]),
                });
                continue;
            }
        };
        if !seen.insert(investor_id.clone()) {
            errors.push(LineError {
                line,
                message: format!("investor {investor_id} appears twice"),
            });
            continue;
        }
        accounts.push(Account {
            investor_id,
            balance_pence,
        });
    }
    if accounts.is_empty() && errors.is_empty() {
        errors.push(LineError {
            line: 2,
            message: "the file has no accounts".into(),
        });
    }
    if errors.is_empty() {
        Ok(accounts)
    } else {
        Err(ImportError::BadLines(errors))
    }
}

/// Opens `accounts`, all or none; returns once they are replicated as the
/// deployment's Redis requires. An account is the investor's, whichever
/// rounds they invest in.
pub async fn open_accounts(redis: &Redis, accounts: &[Account]) -> Result<(), ImportError> {
    let accounts: Vec<(&str, i64)> = accounts
        .iter()
        .map(|a| (a.investor_id.as_str(), a.balance_pence))
        .collect();
    let mut conn = redis.pin().await?;
    let opened = crowdgate_store::open_accounts(&mut conn, &accounts).await?;
    // Either answer only on replicated state: "already exist" after a 503
    // confirms the first import.
    redis.confirm(conn.generation()).await?;
    match opened {
        OpenAccounts::Opened => Ok(()),
        OpenAccounts::AlreadyExist(existing) => Err(ImportError::AlreadyExist(existing)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<u64> {
        match parse_csv(text) {
            Err(ImportError::BadLines(errors)) => errors.iter().map(|e| e.line).collect(),
            other => panic!("expected line errors, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_good_file() {
        let accounts = parse_csv("investor_id,balance_pence\nalice,100\n bob , 0\n").unwrap();
        assert_eq!(
            accounts[1],
            Account {
                investor_id: "bob".into(),
                balance_pence: 0
            }
        );
    }

    #[test]
    fn reports_every_bad_line() {
        let text =
            "investor_id,balance_pence\nalice,100\nbad id,5\ncarol,-1\ndave,1.5\nalice,7\nerin\n";
        assert_eq!(lines(text), vec![3, 4, 5, 6, 7]);
        assert_eq!(lines("name,money\nalice,1\n"), vec![1]);
        assert_eq!(lines("investor_id,balance_pence\n"), vec![2]);
    }
}
