// Account balances, from the `accounts` topic: the TypeScript twin of
// examples/account-balances (Rust), writing byte-identical state and answers.
//
// Events are JSON objects:
// - `{"type": "AccountOpened", "account": str, "owner": str}`
// - `{"type": "Deposited", "account": str, "amount_cents": int}`
// - `{"type": "Withdrawn", "account": str, "amount_cents": int}`
//
// A withdrawal larger than the balance is an overdraft attempt: it is
// counted, with the amount attempted, but not applied. Amounts must be
// non-negative integers; anything else fails the event.
//
// State `account/<id>`: `{"owner": str|null, "balance_cents": int,
// "deposits": int, "withdrawals": int, "overdraft_attempts": int,
// "overdraft_attempted_cents": int}`. `withdrawals` counts applied
// withdrawals only.
//
// Queries: `balance` with `{"account": str}` answers the account object or
// `null`; `overdrawn-attempts` (no arguments) answers
// `[{"account": str, "overdraft_attempts": int}]` for every account with at
// least one attempt, by account id.

import {
  type Event,
  type Infer,
  ProjectionError,
  QueryError,
  defineProjection,
  log,
  query,
  state,
  t,
  u64,
} from '@projector/sdk';

// Read the type first so that event types added later are skipped whatever
// their other fields look like.
const EventType = t.struct('EventType', { type: t.string });

const AccountOpened = t.struct('AccountOpened', { account: t.string, owner: t.string });
type AccountOpened = Infer<typeof AccountOpened>;

// `Deposited` and `Withdrawn`. Unsigned, so that a negative amount fails the
// event instead of turning a deposit into a withdrawal.
const Movement = t.struct('Movement', { account: t.string, amount_cents: t.u64 });
type Movement = Infer<typeof Movement>;

const Account = t.struct('Account', {
  owner: t.optional(t.string),
  balance_cents: t.u64,
  deposits: t.u64,
  withdrawals: t.u64,
  overdraft_attempts: t.u64,
  overdraft_attempted_cents: t.u64,
});
type Account = Infer<typeof Account>;

const BalanceArgs = t.struct('BalanceArgs', { account: t.string });
const NoArgs = t.struct('NoArgs', {}, { denyUnknownFields: true });
const OverdraftAttempts = t.struct('OverdraftAttempts', { account: t.string, overdraft_attempts: t.u64 });
type OverdraftAttempts = Infer<typeof OverdraftAttempts>;

const accountKey = (account: string): string => `account/${account}`;

// Money can arrive for an account before its AccountOpened (partitions
// interleave, or the producer never sent one): the movement is still
// recorded, under an account whose owner stays null until it is opened.
function load(account: string): Account {
  return state.getJson(accountKey(account), Account) ?? Account.default();
}

function store(account: string, value: Account): void {
  state.putJson(accountKey(account), value, Account);
}

function opened(event: AccountOpened): void {
  const account = load(event.account);
  if (account.owner !== null) {
    // A repeated open must not hand the account to someone else.
    log.warn(`ignoring AccountOpened for ${event.account} by ${event.owner}: already opened by ${account.owner}`);
    return;
  }
  account.owner = event.owner;
  store(event.account, account);
}

function deposited(event: Movement): void {
  const account = load(event.account);
  const balance = u64.checkedAdd(account.balance_cents, event.amount_cents);
  if (balance === undefined) {
    throw new ProjectionError(`balance of account ${event.account} overflows`);
  }
  account.balance_cents = balance;
  account.deposits = u64.add(account.deposits, 1);
  store(event.account, account);
}

function withdrawn(event: Movement): void {
  const account = load(event.account);
  if (event.amount_cents > account.balance_cents) {
    const attempted = u64.checkedAdd(account.overdraft_attempted_cents, event.amount_cents);
    if (attempted === undefined) {
      throw new ProjectionError(`overdraft total of account ${event.account} overflows`);
    }
    account.overdraft_attempts = u64.add(account.overdraft_attempts, 1);
    account.overdraft_attempted_cents = attempted;
  } else {
    account.balance_cents = u64.sub(account.balance_cents, event.amount_cents);
    account.withdrawals = u64.add(account.withdrawals, 1);
  }
  store(event.account, account);
}

function overdrawnAttempts(): OverdraftAttempts[] {
  // Keys come back in ascending order, which is account id order.
  const found: OverdraftAttempts[] = [];
  for (const [key, account] of state.iterJson('account/', Account)) {
    if (account.overdraft_attempts > 0) {
      found.push({ account: key.slice('account/'.length), overdraft_attempts: account.overdraft_attempts });
    }
  }
  return found;
}

export const handler = defineProjection({
  name: 'account-balances',
  version: '0.1.0',
  sources: ['accounts'],
  stateVersion: 1,
  queries: ['balance', 'overdrawn-attempts'],

  handle(event: Event): void {
    const { type } = event.decode(EventType);
    switch (type) {
      case 'AccountOpened':
        return opened(event.decode(AccountOpened));
      case 'Deposited':
        return deposited(event.decode(Movement));
      case 'Withdrawn':
        return withdrawn(event.decode(Movement));
      default:
        return undefined;
    }
  },

  query(name: string, args: Uint8Array): Uint8Array {
    switch (name) {
      case 'balance': {
        const { account } = query.argsJson(args, BalanceArgs);
        return query.replyJson(state.getJson(accountKey(account), Account) ?? null, t.optional(Account));
      }
      case 'overdrawn-attempts': {
        query.argsJson(args, NoArgs);
        return query.replyJson(overdrawnAttempts(), t.array(OverdraftAttempts));
      }
      default:
        throw QueryError.unknownQuery();
    }
  },
});
