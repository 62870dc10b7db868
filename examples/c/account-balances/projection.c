/*
 * Account balances, from the `accounts` topic: the C twin of
 * examples/account-balances (Rust), writing the same state byte for byte.
 *
 * Events are JSON objects:
 * - {"type": "AccountOpened", "account": str, "owner": str}
 * - {"type": "Deposited", "account": str, "amount_cents": int}
 * - {"type": "Withdrawn", "account": str, "amount_cents": int}
 *
 * A withdrawal larger than the balance is an overdraft attempt: it is
 * counted, with the amount attempted, but not applied. Amounts must be
 * non-negative integers; anything else fails the event.
 *
 * State `account/<id>`: {"owner": str|null, "balance_cents": int,
 * "deposits": int, "withdrawals": int, "overdraft_attempts": int,
 * "overdraft_attempted_cents": int}. `withdrawals` counts applied
 * withdrawals only.
 *
 * Queries: `balance` with {"account": str} answers the account object or
 * null; `overdrawn-attempts` (no arguments) answers
 * [{"account": str, "overdraft_attempts": int}] for every account with at
 * least one attempt, by account id.
 */
#include "projector.h"

typedef struct {
    pj_str kind;
} EventType;
static const pj_field event_type_fields[] = {PJ_FIELD_AS(EventType, kind, "type", PJ_STR)};
static const pj_struct event_type = PJ_STRUCT(EventType, event_type_fields);

typedef struct {
    pj_str account;
    pj_str owner;
} AccountOpened;
static const pj_field account_opened_fields[] = {
    PJ_FIELD(AccountOpened, account, PJ_STR),
    PJ_FIELD(AccountOpened, owner, PJ_STR),
};
static const pj_struct account_opened = PJ_STRUCT(AccountOpened, account_opened_fields);

/* Deposited and Withdrawn. Unsigned, so that a negative amount fails the
 * event instead of turning a deposit into a withdrawal. */
typedef struct {
    pj_str account;
    uint64_t amount_cents;
} Movement;
static const pj_field movement_fields[] = {
    PJ_FIELD(Movement, account, PJ_STR),
    PJ_FIELD(Movement, amount_cents, PJ_U64),
};
static const pj_struct movement = PJ_STRUCT(Movement, movement_fields);

typedef struct {
    pj_str owner; /* ptr == NULL: null */
    uint64_t balance_cents;
    uint64_t deposits;
    uint64_t withdrawals;
    uint64_t overdraft_attempts;
    uint64_t overdraft_attempted_cents;
} Account;
static const pj_field account_fields[] = {
    PJ_FIELD(Account, owner, PJ_OPT_STR),
    PJ_FIELD(Account, balance_cents, PJ_U64),
    PJ_FIELD(Account, deposits, PJ_U64),
    PJ_FIELD(Account, withdrawals, PJ_U64),
    PJ_FIELD(Account, overdraft_attempts, PJ_U64),
    PJ_FIELD(Account, overdraft_attempted_cents, PJ_U64),
};
static const pj_struct account_type = PJ_STRUCT(Account, account_fields);

typedef struct {
    pj_str account;
} BalanceArgs;
static const pj_field balance_args_fields[] = {PJ_FIELD(BalanceArgs, account, PJ_STR)};
static const pj_struct balance_args = PJ_STRUCT(BalanceArgs, balance_args_fields);

/* No arguments, and no unknown ones either. */
static const pj_struct no_args = PJ_STRUCT_EMPTY("NoArgs", true);

/* Money can arrive for an account before its AccountOpened (partitions
 * interleave, or the producer never sent one): the movement is still
 * recorded, under an account whose owner stays null until it is opened.
 * A missing account loads as all zeros. */
static pj_error *load(pj_view key, Account *account) {
    bool found;
    return pj_state_get_json(key, &account_type, account, &found);
}

static pj_error *opened(const AccountOpened *event) {
    pj_buf key = pj_key("account/", event->account);
    Account account;
    pj_error *error = load(pj_buf_view(&key), &account);
    if (!error) {
        if (account.owner.ptr != NULL) {
            /* A repeated open must not hand the account to someone else. */
            pj_warn("ignoring AccountOpened for %.*s by %.*s: already opened by %.*s", (int)event->account.len,
                    event->account.ptr, (int)event->owner.len, event->owner.ptr, (int)account.owner.len,
                    account.owner.ptr);
        } else {
            account.owner = event->owner; /* borrowed: not freed below */
            pj_state_put_json(pj_buf_view(&key), &account_type, &account);
            account.owner.ptr = NULL;
        }
    }
    pj_json_free(&account_type, &account);
    pj_buf_free(&key);
    return error;
}

static pj_error *deposited(const Movement *event) {
    pj_buf key = pj_key("account/", event->account);
    Account account;
    pj_error *error = load(pj_buf_view(&key), &account);
    if (!error) {
        if (account.balance_cents > UINT64_MAX - event->amount_cents) {
            error = pj_fail("balance of account %.*s overflows", (int)event->account.len, event->account.ptr);
        } else {
            account.balance_cents += event->amount_cents;
            account.deposits += 1;
            pj_state_put_json(pj_buf_view(&key), &account_type, &account);
        }
    }
    pj_json_free(&account_type, &account);
    pj_buf_free(&key);
    return error;
}

static pj_error *withdrawn(const Movement *event) {
    pj_buf key = pj_key("account/", event->account);
    Account account;
    pj_error *error = load(pj_buf_view(&key), &account);
    if (!error) {
        if (event->amount_cents > account.balance_cents) {
            account.overdraft_attempts += 1;
            if (account.overdraft_attempted_cents > UINT64_MAX - event->amount_cents)
                error = pj_fail("overdraft total of account %.*s overflows", (int)event->account.len,
                                event->account.ptr);
            else
                account.overdraft_attempted_cents += event->amount_cents;
        } else {
            account.balance_cents -= event->amount_cents;
            account.withdrawals += 1;
        }
        if (!error)
            pj_state_put_json(pj_buf_view(&key), &account_type, &account);
    }
    pj_json_free(&account_type, &account);
    pj_buf_free(&key);
    return error;
}

static pj_error *handle(const pj_event *event) {
    /* Read the type first so that event types added later are skipped
     * whatever their other fields look like. */
    EventType type;
    PJ_TRY(pj_event_payload_json(event, &event_type, &type));
    pj_error *error = NULL;
    if (pj_str_eq(type.kind, "AccountOpened")) {
        AccountOpened e;
        if (!(error = pj_event_payload_json(event, &account_opened, &e))) {
            error = opened(&e);
            pj_json_free(&account_opened, &e);
        }
    } else if (pj_str_eq(type.kind, "Deposited") || pj_str_eq(type.kind, "Withdrawn")) {
        Movement e;
        if (!(error = pj_event_payload_json(event, &movement, &e))) {
            error = pj_str_eq(type.kind, "Deposited") ? deposited(&e) : withdrawn(&e);
            pj_json_free(&movement, &e);
        }
    }
    pj_json_free(&event_type, &type);
    return error;
}

static pj_error *balance(pj_view args, pj_json *reply) {
    BalanceArgs a;
    PJ_TRY(pj_query_args(args, &balance_args, &a));
    pj_buf key = pj_key("account/", a.account);
    Account account;
    bool found;
    pj_error *error = pj_state_get_json(pj_buf_view(&key), &account_type, &account, &found);
    if (error) {
        error->kind = PJ_FAILED;
    } else if (found) {
        pj_json_struct(reply, &account_type, &account);
    } else {
        pj_json_null(reply);
    }
    pj_json_free(&account_type, &account);
    pj_json_free(&balance_args, &a);
    pj_buf_free(&key);
    return error;
}

static pj_error *overdrawn_attempts(pj_view args, pj_json *reply) {
    char none;
    PJ_TRY(pj_query_args(args, &no_args, &none));
    static const char prefix[] = "account/";
    pj_error *error = NULL;
    pj_iter it;
    pj_iter_init(&it, pj_cstr_view(prefix));
    pj_view key, value;
    pj_json_array_begin(reply);
    /* Keys come back in ascending order, which is account id order. */
    while (pj_iter_next(&it, &key, &value)) {
        Account account;
        if ((error = pj_json_decode(value.ptr, value.len, &account_type, &account)))
            break;
        if (account.overdraft_attempts > 0) {
            pj_json_object_begin(reply);
            pj_json_key(reply, "account");
            pj_json_string(reply, key.ptr + sizeof prefix - 1, key.len - (sizeof prefix - 1));
            pj_json_key(reply, "overdraft_attempts");
            pj_json_u64(reply, account.overdraft_attempts);
            pj_json_object_end(reply);
        }
        pj_json_free(&account_type, &account);
    }
    pj_json_array_end(reply);
    pj_iter_free(&it);
    return error;
}

static const char *const sources[] = {"accounts", NULL};
static const pj_query queries[] = {
    {"balance", balance},
    {"overdrawn-attempts", overdrawn_attempts},
    {NULL, NULL},
};

static const pj_projection account_balances = {
    .name = "account-balances",
    .version = "0.1.0",
    .sources = sources,
    .state_version = 1,
    .handle = handle,
    .queries = queries,
};

PJ_EXPORT_PROJECTION(account_balances);
