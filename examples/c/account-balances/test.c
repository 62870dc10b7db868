/*
 * Native unit tests of account-balances, the twins of the Rust example's
 * tests. Built and run by scripts/build-c-examples.sh --test:
 *
 *   test_account_balances examples/events/accounts.jsonl examples/events/accounts.expected.json
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector_testing.h"

static const char *sample_path, *expected_path;

static pj_event ev(uint64_t offset, const char *json) {
    return pj_testing_event("accounts", offset, json, strlen(json));
}

static void ask(const char *name, const char *args, const char *want) {
    pj_buf reply;
    pj_error *error = pj_testing_query(name, args, &reply);
    PJ_CHECK(error == NULL);
    if (error) {
        fprintf(stderr, "%s %s: %s\n", name, args, error->message);
        pj_error_free(error);
        return;
    }
    PJ_CHECK_BYTES(reply.ptr, reply.len, want);
    pj_buf_free(&reply);
}

static void check_state(const char *want) {
    pj_buf state;
    pj_testing_state_json(&state);
    PJ_CHECK_BYTES(state.ptr, state.len, want);
    pj_buf_free(&state);
}

static void sample_events_fold_to_the_expected_state(void) {
    pj_buf sample, expected, want, state;
    PJ_CHECK(pj_testing_read_file(sample_path, &sample));
    PJ_CHECK(pj_testing_read_file(expected_path, &expected));
    PJ_CHECK(pj_testing_handle_lines("accounts", pj_buf_view(&sample), NULL, NULL));
    pj_testing_compact(pj_buf_view(&expected), &want);
    pj_buf_push(&want, 0);
    pj_testing_state_json(&state);
    PJ_CHECK_BYTES(state.ptr, state.len, (const char *)want.ptr);
    ask("balance", "{\"account\": \"acc-999\"}", "null");
    const char *attempts = "[{\"account\":\"acc-200\",\"overdraft_attempts\":2},"
                           "{\"account\":\"acc-300\",\"overdraft_attempts\":1},"
                           "{\"account\":\"acc-400\",\"overdraft_attempts\":1},"
                           "{\"account\":\"acc-500\",\"overdraft_attempts\":1},"
                           "{\"account\":\"acc-600\",\"overdraft_attempts\":1}]";
    ask("overdrawn-attempts", "", attempts);
    ask("overdrawn-attempts", "{}", attempts);
    ask("overdrawn-attempts", " \n", attempts);
    ask("overdrawn-attempts", "[]", attempts);
    pj_buf_free(&sample);
    pj_buf_free(&expected);
    pj_buf_free(&want);
    pj_buf_free(&state);
}

static void overdrafts_are_counted_not_applied(void) {
    pj_event events[] = {
        ev(0, "{\"type\": \"Deposited\", \"account\": \"a\", \"amount_cents\": 100}"),
        ev(1, "{\"type\": \"Withdrawn\", \"account\": \"a\", \"amount_cents\": 101}"),
        ev(2, "{\"type\": \"Withdrawn\", \"account\": \"a\", \"amount_cents\": 100}"),
        ev(3, "{\"type\": \"AccountOpened\", \"account\": \"a\", \"owner\": \"ann\"}"),
        ev(4, "{\"type\": \"AccountOpened\", \"account\": \"a\", \"owner\": \"bea\"}"),
    };
    PJ_CHECK(pj_testing_handle(events, 5, NULL, NULL));
    const char *a = "{\"owner\":\"ann\",\"balance_cents\":0,\"deposits\":1,\"withdrawals\":1,"
                    "\"overdraft_attempts\":1,\"overdraft_attempted_cents\":101}";
    char want[512];
    snprintf(want, sizeof want, "{\"account/a\":%s}", a);
    check_state(want);
    ask("balance", "{\"account\": \"a\"}", a);
    ask("balance", "[\"a\"]", a);
}

static void money_before_the_open_has_no_owner(void) {
    pj_event events[] = {
        ev(0, "{\"type\": \"Deposited\", \"account\": \"d\", \"amount_cents\": 18446744073709551615}"),
        ev(1, "{\"type\": \"Withdrawn\", \"account\": \"e\", \"amount_cents\": 18446744073709551615}"),
    };
    PJ_CHECK(pj_testing_handle(events, 2, NULL, NULL));
    check_state("{\"account/d\":{\"owner\":null,\"balance_cents\":18446744073709551615,\"deposits\":1,\"withdrawals\":0,"
                "\"overdraft_attempts\":0,\"overdraft_attempted_cents\":0},"
                "\"account/e\":{\"owner\":null,\"balance_cents\":0,\"deposits\":0,\"withdrawals\":0,"
                "\"overdraft_attempts\":1,\"overdraft_attempted_cents\":18446744073709551615}}");
    const char *overflowing[] = {
        "{\"type\": \"Deposited\", \"account\": \"d\", \"amount_cents\": 1}",
        "{\"type\": \"Withdrawn\", \"account\": \"e\", \"amount_cents\": 1}",
    };
    for (size_t i = 0; i < 2; i++) {
        pj_event e = ev(2, overflowing[i]);
        char *message = NULL;
        PJ_CHECK(!pj_testing_handle(&e, 1, NULL, &message));
        PJ_CHECK(message && strstr(message, "overflows"));
        free(message);
    }
    ask("overdrawn-attempts", "", "[{\"account\":\"e\",\"overdraft_attempts\":1}]");
}

static void bad_amounts_fail_and_unknown_types_are_skipped(void) {
    pj_event skipped = ev(0, "{\"type\": \"InterestAccrued\", \"account\": 1, \"rate\": \"high\"}");
    PJ_CHECK(pj_testing_handle(&skipped, 1, NULL, NULL));
    check_state("{}");
    const char *bad[] = {
        "{\"type\": \"Deposited\", \"account\": \"a\", \"amount_cents\": -1}",
        "{\"type\": \"Withdrawn\", \"account\": \"a\", \"amount_cents\": 1.5}",
        "{\"type\": \"Deposited\", \"account\": \"a\", \"amount_cents\": \"10\"}",
        "{\"type\": \"Deposited\", \"account\": \"a\", \"amount_cents\": 1e1}",
        "{\"type\": \"Deposited\", \"account\": \"a\"}",
        "{\"type\": \"AccountOpened\", \"account\": \"a\"}",
        "{\"type\": \"AccountOpened\", \"account\": \"b\", \"owner\": null}",
        "[\"AccountOpened\"]",
        "[\"Deposited\"]",
        "\"Deposited\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pj_event e = ev(0, bad[i]);
        uint32_t index = 9;
        PJ_CHECK(!pj_testing_handle(&e, 1, &index, NULL));
        PJ_CHECK(index == 0);
        check_state("{}");
    }
    pj_event other = ev(0, "[\"Other\"]");
    PJ_CHECK(pj_testing_handle(&other, 1, NULL, NULL));
}

static void queries_check_their_arguments(void) {
    const char *cases[][2] = {
        {"balance", ""},
        {"balance", "{\"account\": 5}"},
        {"balance", "{}"},
        {"overdrawn-attempts", "{\"limit\": 5}"},
        {"overdrawn-attempts", "nonsense"},
        {"overdrawn-attempts", "[1]"},
        {"overdrawn-attempts", "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pj_buf reply;
        pj_error *error = pj_testing_query(cases[i][0], cases[i][1], &reply);
        PJ_CHECK(error != NULL && error->kind == PJ_BAD_ARGS);
        pj_error_free(error);
    }
    pj_buf reply;
    pj_error *error = pj_testing_query("balances", "{}", &reply);
    PJ_CHECK(error != NULL && error->kind == PJ_UNKNOWN_QUERY);
    pj_error_free(error);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s accounts.jsonl accounts.expected.json\n", argv[0]);
        return 2;
    }
    sample_path = argv[1];
    expected_path = argv[2];
    PJ_RUN(sample_events_fold_to_the_expected_state);
    PJ_RUN(overdrafts_are_counted_not_applied);
    PJ_RUN(money_before_the_open_has_no_owner);
    PJ_RUN(bad_amounts_fail_and_unknown_types_are_skipped);
    PJ_RUN(queries_check_their_arguments);
    return pj_test_summary();
}
