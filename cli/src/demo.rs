//! Demo investor accounts for `crowdgate up`: enough funded investors to walk
//! through a round, plus one with too little money to show a failed
//! settlement releasing its amount.
//!
//! The development identity provider signs these same investors in; the few
//! it shows as one-click buttons ([`SIGN_IN_DEMO_INVESTORS`]) carry a display
//! name, and one a KYC limit, so the page shows what those claims do.

use crowdgate_settlement::accounts::Account;

/// What each of `demo-001` … `demo-200` holds: £5,000.
pub const DEMO_BALANCE_PENCE: i64 = 500_000;
/// What `demo-skint` holds: £5, too little for any investment.
pub const SKINT_BALANCE_PENCE: i64 = 500;

/// Investors `demo-001` … `demo-200` with £5,000 each, and `demo-skint` with £5.
pub fn accounts() -> Vec<Account> {
    let account = |investor_id: String, balance_pence| Account {
        investor_id,
        balance_pence,
    };
    let mut accounts: Vec<Account> = (1..=200)
        .map(|n| account(format!("demo-{n:03}"), DEMO_BALANCE_PENCE))
        .collect();
    accounts.push(account("demo-skint".to_string(), SKINT_BALANCE_PENCE));
    accounts
}

/// A demo investor as the development identity provider knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoInvestor {
    pub investor_id: &'static str,
    /// The `name` claim.
    pub name: &'static str,
    /// The account's opening balance (what [`accounts`] opens).
    pub balance_pence: i64,
    /// The `max_investment_pence` claim (a KYC tier's limit), if any.
    pub max_investment_pence: Option<i64>,
}

const fn funded(investor_id: &'static str, name: &'static str) -> DemoInvestor {
    DemoInvestor {
        investor_id,
        name,
        balance_pence: DEMO_BALANCE_PENCE,
        max_investment_pence: None,
    }
}

/// The demo investors the sign-in page offers as one-click buttons.
pub const SIGN_IN_DEMO_INVESTORS: [DemoInvestor; 11] = [
    funded("demo-001", "Ada Lovelace"),
    DemoInvestor {
        // A lower KYC tier: the token's limit claim caps what she may invest.
        max_investment_pence: Some(50_000),
        ..funded("demo-002", "Mary Somerville")
    },
    funded("demo-003", "Grace Hopper"),
    funded("demo-004", "Alan Turing"),
    funded("demo-005", "Katherine Johnson"),
    funded("demo-006", "Charles Babbage"),
    funded("demo-007", "Hedy Lamarr"),
    funded("demo-008", "Tim Berners-Lee"),
    funded("demo-009", "Margaret Hamilton"),
    funded("demo-010", "Edsger Dijkstra"),
    DemoInvestor {
        investor_id: "demo-skint",
        name: "Sam Skint",
        balance_pence: SKINT_BALANCE_PENCE,
        max_investment_pence: None,
    },
];

/// The sign-in button's demo investor with this id, if there is one.
pub fn sign_in_demo_investor(investor_id: &str) -> Option<&'static DemoInvestor> {
    SIGN_IN_DEMO_INVESTORS
        .iter()
        .find(|d| d.investor_id == investor_id)
}

/// The display name the development provider gives `investor_id` when none
/// is typed: the button's name, "Demo Investor 042" for the other demo
/// accounts, else none.
pub fn default_name(investor_id: &str) -> Option<String> {
    if let Some(demo) = sign_in_demo_investor(investor_id) {
        return Some(demo.name.to_string());
    }
    let number = investor_id.strip_prefix("demo-")?;
    (number.len() == 3 && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("Demo Investor {number}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sign_in_button_is_an_account_with_its_balance() {
        let accounts = accounts();
        for demo in SIGN_IN_DEMO_INVESTORS {
            let account = accounts
                .iter()
                .find(|a| a.investor_id == demo.investor_id)
                .unwrap_or_else(|| panic!("{} has an account", demo.investor_id));
            assert_eq!(account.balance_pence, demo.balance_pence);
            assert!(crowdgate_protocol::invest::validate_investor_id(demo.investor_id).is_ok());
        }
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name("demo-001").as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            default_name("demo-042").as_deref(),
            Some("Demo Investor 042")
        );
        assert_eq!(default_name("demo-1234"), None);
        assert_eq!(default_name("someone@example.com"), None);
    }
}
