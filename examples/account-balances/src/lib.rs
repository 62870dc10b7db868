//! Account balances, from the `accounts` topic.
//!
//! Events are JSON objects:
//! - `{"type": "AccountOpened", "account": str, "owner": str}`
//! - `{"type": "Deposited", "account": str, "amount_cents": int}`
//! - `{"type": "Withdrawn", "account": str, "amount_cents": int}`
//!
//! A withdrawal larger than the balance is an overdraft attempt: it is
//! counted, with the amount attempted, but not applied. Amounts must be
//! non-negative integers; anything else fails the event.
//!
//! State `account/<id>`: `{"owner": str|null, "balance_cents": int,
//! "deposits": int, "withdrawals": int, "overdraft_attempts": int,
//! "overdraft_attempted_cents": int}`. `withdrawals` counts applied
//! withdrawals only.
//!
//! Queries: `balance` with `{"account": str}` answers the account object or
//! `null`; `overdrawn-attempts` (no arguments) answers
//! `[{"account": str, "overdraft_attempts": int}]` for every account with at
//! least one attempt, by account id.

use projector_sdk::{Error, Event, Projection, QueryError, export_projection, log, query, state};
use serde::{Deserialize, Serialize};

pub struct AccountBalances;

export_projection!(AccountBalances);

impl Projection for AccountBalances {
    const NAME: &'static str = "account-balances";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SOURCES: &'static [&'static str] = &["accounts"];
    const STATE_VERSION: u32 = 1;
    const QUERIES: &'static [&'static str] = &["balance", "overdrawn-attempts"];

    fn handle(event: &Event) -> Result<(), Error> {
        // Read the type first so that event types added later are skipped
        // whatever their other fields look like.
        let EventType { kind } = event.payload_json()?;
        match kind.as_str() {
            "AccountOpened" => opened(event.payload_json()?),
            "Deposited" => deposited(event.payload_json()?),
            "Withdrawn" => withdrawn(event.payload_json()?),
            _ => Ok(()),
        }
    }

    fn query(name: &str, args: &[u8]) -> Result<Vec<u8>, QueryError> {
        match name {
            "balance" => {
                let BalanceArgs { account } = query::args_json(args)?;
                query::reply_json(&state::get_json::<Account>(&account_key(&account))?)
            }
            "overdrawn-attempts" => {
                let NoArgs {} = query::args_json(args)?;
                query::reply_json(&overdrawn_attempts()?)
            }
            _ => Err(QueryError::UnknownQuery),
        }
    }
}

#[derive(Deserialize)]
struct EventType {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct AccountOpened {
    account: String,
    owner: String,
}

/// `Deposited` and `Withdrawn`. Unsigned, so that a negative amount fails the
/// event instead of turning a deposit into a withdrawal.
#[derive(Deserialize)]
struct Movement {
    account: String,
    amount_cents: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Account {
    owner: Option<String>,
    balance_cents: u64,
    deposits: u64,
    withdrawals: u64,
    overdraft_attempts: u64,
    overdraft_attempted_cents: u64,
}

#[derive(Deserialize)]
struct BalanceArgs {
    account: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Serialize)]
struct OverdraftAttempts {
    account: String,
    overdraft_attempts: u64,
}

fn account_key(account: &str) -> String {
    format!("account/{account}")
}

/// Money can arrive for an account before its AccountOpened (partitions
/// interleave, or the producer never sent one): the movement is still
/// recorded, under an account whose owner stays `null` until it is opened.
fn load(account: &str) -> Result<Account, Error> {
    Ok(state::get_json(&account_key(account))?.unwrap_or_default())
}

fn store(account: &str, value: &Account) -> Result<(), Error> {
    state::put_json(&account_key(account), value)
}

fn opened(event: AccountOpened) -> Result<(), Error> {
    let mut account = load(&event.account)?;
    match &account.owner {
        // A repeated open must not hand the account to someone else.
        Some(owner) => {
            log::warn!(
                "ignoring AccountOpened for {} by {}: already opened by {owner}",
                event.account,
                event.owner
            );
            Ok(())
        }
        None => {
            account.owner = Some(event.owner);
            store(&event.account, &account)
        }
    }
}

fn deposited(event: Movement) -> Result<(), Error> {
    let mut account = load(&event.account)?;
    account.balance_cents = account
        .balance_cents
        .checked_add(event.amount_cents)
        .ok_or_else(|| format!("balance of account {} overflows", event.account))?;
    account.deposits += 1;
    store(&event.account, &account)
}

fn withdrawn(event: Movement) -> Result<(), Error> {
    let mut account = load(&event.account)?;
    if event.amount_cents > account.balance_cents {
        account.overdraft_attempts += 1;
        account.overdraft_attempted_cents = account
            .overdraft_attempted_cents
            .checked_add(event.amount_cents)
            .ok_or_else(|| format!("overdraft total of account {} overflows", event.account))?;
    } else {
        account.balance_cents -= event.amount_cents;
        account.withdrawals += 1;
    }
    store(&event.account, &account)
}

fn overdrawn_attempts() -> Result<Vec<OverdraftAttempts>, Error> {
    // Keys come back in ascending order, which is account id order.
    let mut found = Vec::new();
    for entry in state::iter_json::<Account>("account/") {
        let (key, account) = entry?;
        if account.overdraft_attempts > 0 {
            found.push(OverdraftAttempts {
                account: key.strip_prefix("account/").unwrap_or(&key).to_owned(),
                overdraft_attempts: account.overdraft_attempts,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use projector_sdk::testing;
    use serde_json::{Value, json};

    use super::*;

    fn events(lines: &[Value]) -> Vec<Event> {
        (0u64..)
            .zip(lines)
            .map(|(offset, line)| testing::event("accounts", offset, line.to_string()))
            .collect()
    }

    fn ask(name: &str, args: &str) -> Value {
        serde_json::from_slice(&testing::query::<AccountBalances>(name, args.as_bytes()).unwrap())
            .unwrap()
    }

    #[test]
    fn sample_events_fold_to_the_expected_state() {
        testing::reset();
        let sample = include_str!("../../events/accounts.jsonl");
        let events: Vec<Event> = (0u64..)
            .zip(sample.lines())
            .map(|(offset, line)| testing::event("accounts", offset, line))
            .collect();
        testing::handle::<AccountBalances>(&events).unwrap();
        let expected: Value =
            serde_json::from_str(include_str!("../../events/accounts.expected.json")).unwrap();
        assert_eq!(testing::state_json(), expected);

        assert_eq!(
            ask("balance", r#"{"account": "acc-300"}"#),
            expected["account/acc-300"]
        );
        assert_eq!(ask("balance", r#"{"account": "acc-999"}"#), Value::Null);
        let attempts = json!([
            {"account": "acc-200", "overdraft_attempts": 2},
            {"account": "acc-300", "overdraft_attempts": 1},
            {"account": "acc-400", "overdraft_attempts": 1},
            {"account": "acc-500", "overdraft_attempts": 1},
            {"account": "acc-600", "overdraft_attempts": 1},
        ]);
        assert_eq!(ask("overdrawn-attempts", ""), attempts);
        assert_eq!(ask("overdrawn-attempts", "{}"), attempts);
    }

    #[test]
    fn overdrafts_are_counted_not_applied() {
        testing::reset();
        testing::handle::<AccountBalances>(&events(&[
            json!({"type": "Deposited", "account": "a", "amount_cents": 100}),
            json!({"type": "Withdrawn", "account": "a", "amount_cents": 101}),
            json!({"type": "Withdrawn", "account": "a", "amount_cents": 100}),
            json!({"type": "AccountOpened", "account": "a", "owner": "ann"}),
            json!({"type": "AccountOpened", "account": "a", "owner": "bea"}),
        ]))
        .unwrap();
        assert_eq!(
            testing::state_json(),
            json!({"account/a": {
                "owner": "ann",
                "balance_cents": 0,
                "deposits": 1,
                "withdrawals": 1,
                "overdraft_attempts": 1,
                "overdraft_attempted_cents": 101,
            }})
        );
    }

    #[test]
    fn bad_amounts_fail_and_unknown_types_are_skipped() {
        testing::reset();
        testing::handle::<AccountBalances>(&events(&[
            json!({"type": "InterestAccrued", "account": 1, "rate": "high"}),
        ]))
        .unwrap();
        assert_eq!(testing::state_json(), json!({}));

        for payload in [
            json!({"type": "Deposited", "account": "a", "amount_cents": -1}),
            json!({"type": "Withdrawn", "account": "a", "amount_cents": 1.5}),
            json!({"type": "Deposited", "account": "a", "amount_cents": "10"}),
            json!({"type": "Deposited", "account": "a"}),
            json!({"type": "AccountOpened", "account": "a"}),
            json!("Deposited"),
        ] {
            let error = testing::handle::<AccountBalances>(&events(std::slice::from_ref(&payload)))
                .unwrap_err();
            assert_eq!(error.index, 0, "{payload}");
            assert_eq!(testing::state_json(), json!({}), "{payload}");
        }
    }

    #[test]
    fn queries_check_their_arguments() {
        testing::reset();
        for (name, args) in [
            ("balance", ""),
            ("balance", r#"{"account": 5}"#),
            ("overdrawn-attempts", r#"{"limit": 5}"#),
            ("overdrawn-attempts", "nonsense"),
        ] {
            assert!(
                matches!(
                    testing::query::<AccountBalances>(name, args.as_bytes()),
                    Err(QueryError::BadArgs(_))
                ),
                "{name} {args}"
            );
        }
        assert_eq!(
            testing::query::<AccountBalances>("balances", b"{}"),
            Err(QueryError::UnknownQuery)
        );
    }
}
