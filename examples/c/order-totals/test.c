/*
 * Native unit tests of order-totals, the twins of the Rust example's tests.
 * Built and run by scripts/build-c-examples.sh --test (or see README.md):
 *
 *   test_order_totals examples/events/orders.jsonl examples/events/orders.expected.json
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector_testing.h"

static const char *sample_path, *expected_path;

static pj_event ev(uint64_t offset, const char *json) {
    return pj_testing_event("orders", offset, json, strlen(json));
}

static void check_query(const char *args, const char *want) {
    pj_buf reply;
    pj_error *error = pj_testing_query("top-customers", args, &reply);
    PJ_CHECK(error == NULL);
    if (error) {
        fprintf(stderr, "top-customers %s: %s\n", args, error->message);
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
    PJ_CHECK(pj_testing_handle_lines("orders", pj_buf_view(&sample), NULL, NULL));
    pj_testing_compact(pj_buf_view(&expected), &want);
    pj_buf_push(&want, 0);
    pj_testing_state_json(&state);
    PJ_CHECK_BYTES(state.ptr, state.len, (const char *)want.ptr);
    check_query("{\"n\": 3}", "[{\"customer\":\"carol\",\"total_cents\":32472},{\"customer\":\"bob\",\"total_cents\":18490},"
                              "{\"customer\":\"dave\",\"total_cents\":18349}]");
    pj_buf_free(&sample);
    pj_buf_free(&expected);
    pj_buf_free(&want);
    pj_buf_free(&state);
}

static void cancel_uses_the_remembered_order(void) {
    pj_event events[] = {
        ev(0, "{\"type\": \"OrderPlaced\", \"order_id\": \"1\", \"customer\": \"ann\", \"amount_cents\": 500}"),
        ev(1, "{\"type\": \"OrderPlaced\", \"order_id\": \"2\", \"customer\": \"ann\", \"amount_cents\": 700}"),
        ev(2, "{\"type\": \"OrderCancelled\", \"order_id\": \"1\", \"customer\": \"bea\", \"amount_cents\": 1}"),
        ev(3, "{\"type\": \"OrderCancelled\", \"order_id\": \"1\"}"),
        ev(4, "{\"type\": \"OrderCancelled\", \"order_id\": \"404\"}"),
        ev(5, "{\"type\": \"OrderPlaced\", \"order_id\": \"2\", \"customer\": \"bea\", \"amount_cents\": 9}"),
    };
    PJ_CHECK(pj_testing_handle(events, 6, NULL, NULL));
    check_state("{\"customer/ann\":{\"orders\":1,\"total_cents\":700},"
                "\"order/1\":{\"customer\":\"ann\",\"amount_cents\":500,\"cancelled\":true},"
                "\"order/2\":{\"customer\":\"ann\",\"amount_cents\":700,\"cancelled\":false}}");
}

static void unknown_types_are_skipped_and_bad_payloads_fail(void) {
    pj_event skipped = ev(0, "{\"type\": \"OrderShipped\", \"order_id\": 7, \"carrier\": [\"x\"]}");
    PJ_CHECK(pj_testing_handle(&skipped, 1, NULL, NULL));
    check_state("{}");
    const char *bad[] = {
        "{\"type\": \"OrderPlaced\", \"order_id\": \"1\", \"amount_cents\": 5}",
        "{\"type\": \"OrderPlaced\", \"order_id\": \"1\", \"customer\": \"a\", \"amount_cents\": -5}",
        "{\"type\": \"OrderCancelled\"}",
        "{\"order_id\": \"1\"}",
        "[1, 2]",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pj_event events[] = {
            ev(0, "{\"type\": \"OrderPlaced\", \"order_id\": \"ok\", \"customer\": \"a\", \"amount_cents\": 1}"),
            ev(1, bad[i]),
        };
        uint32_t index = 99;
        char *message = NULL;
        PJ_CHECK(!pj_testing_handle(events, 2, &index, &message));
        PJ_CHECK(index == 1);
        PJ_CHECK(message != NULL && strstr(message, "event orders/0@1") != NULL);
        free(message);
        /* The failed batch left no trace. */
        check_state("{}");
    }
    pj_event tombstone = pj_testing_event("orders", 0, NULL, 0);
    char *message = NULL;
    PJ_CHECK(!pj_testing_handle(&tombstone, 1, NULL, &message));
    PJ_CHECK(message != NULL && strstr(message, "tombstone") != NULL);
    free(message);
}

static void top_customers_ranks_by_total_then_id(void) {
    pj_event events[] = {
        ev(0, "{\"type\": \"OrderPlaced\", \"order_id\": \"1\", \"customer\": \"cy\", \"amount_cents\": 300}"),
        ev(1, "{\"type\": \"OrderPlaced\", \"order_id\": \"2\", \"customer\": \"al\", \"amount_cents\": 100}"),
        ev(2, "{\"type\": \"OrderPlaced\", \"order_id\": \"3\", \"customer\": \"bo\", \"amount_cents\": 300}"),
        ev(3, "{\"type\": \"OrderPlaced\", \"order_id\": \"4\", \"customer\": \"di\", \"amount_cents\": 50}"),
    };
    PJ_CHECK(pj_testing_handle(events, 4, NULL, NULL));
    check_query("{\"n\": 10}", "[{\"customer\":\"bo\",\"total_cents\":300},{\"customer\":\"cy\",\"total_cents\":300},"
                               "{\"customer\":\"al\",\"total_cents\":100},{\"customer\":\"di\",\"total_cents\":50}]");
    check_query("{\"n\": 2}", "[{\"customer\":\"bo\",\"total_cents\":300},{\"customer\":\"cy\",\"total_cents\":300}]");
    check_query("[1]", "[{\"customer\":\"bo\",\"total_cents\":300}]");
    check_query("{\"n\": 0}", "[]");
    check_query("{\"n\": 4294967295, \"other\": 1}",
                "[{\"customer\":\"bo\",\"total_cents\":300},{\"customer\":\"cy\",\"total_cents\":300},"
                "{\"customer\":\"al\",\"total_cents\":100},{\"customer\":\"di\",\"total_cents\":50}]");
    const char *bad[] = {"{\"n\": -1}", "", "{\"n\": 1.0}", "{\"n\": \"2\"}", "{\"n\": 4294967296}", "null", "nonsense"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pj_buf reply;
        pj_error *error = pj_testing_query("top-customers", bad[i], &reply);
        PJ_CHECK(error != NULL && error->kind == PJ_BAD_ARGS);
        pj_error_free(error);
    }
    pj_buf reply;
    pj_error *error = pj_testing_query("nope", "{}", &reply);
    PJ_CHECK(error != NULL && error->kind == PJ_UNKNOWN_QUERY);
    pj_error_free(error);
}

static void top_customers_pages_through_many_customers(void) {
    pj_event events[1000];
    char *payloads[1000];
    for (int i = 0; i < 1000; i++) {
        payloads[i] = malloc(128);
        snprintf(payloads[i], 128,
                 "{\"type\": \"OrderPlaced\", \"order_id\": \"%d\", \"customer\": \"c%04d\", \"amount_cents\": %d}", i,
                 i, i % 7);
        events[i] = ev((uint64_t)i, payloads[i]);
    }
    PJ_CHECK(pj_testing_handle(events, 1000, NULL, NULL));
    check_query("{\"n\": 2}", "[{\"customer\":\"c0006\",\"total_cents\":6},{\"customer\":\"c0013\",\"total_cents\":6}]");
    for (int i = 0; i < 1000; i++)
        free(payloads[i]);
}

static void strings_are_reencoded_as_serde_does(void) {
    pj_event events[] = {
        ev(0, "{\"type\": \"OrderPlaced\", \"order_id\": \"c7\", \"customer\": \"q\\\"b\\\\c\\n\\u0001\\u007f\\u2028/\","
              " \"amount_cents\": 300}"),
        ev(1, "{\"type\": \"OrderPlaced\", \"order_id\": \"\\u00e9\", \"customer\": \"\\ud83d\\ude00\", \"amount_cents\": 1}"),
    };
    PJ_CHECK(pj_testing_handle(events, 2, NULL, NULL));
    check_state("{\"customer/q\\\"b\\\\c\\n\\u0001\x7f\xe2\x80\xa8/\":{\"orders\":1,\"total_cents\":300},"
                "\"customer/\xf0\x9f\x98\x80\":{\"orders\":1,\"total_cents\":1},"
                "\"order/c7\":{\"customer\":\"q\\\"b\\\\c\\n\\u0001\x7f\xe2\x80\xa8/\",\"amount_cents\":300,\"cancelled\":false},"
                "\"order/\xc3\xa9\":{\"customer\":\"\xf0\x9f\x98\x80\",\"amount_cents\":1,\"cancelled\":false}}");
}

static void totals_refuse_to_overflow(void) {
    pj_event events[] = {
        ev(0, "{\"type\": \"OrderPlaced\", \"order_id\": \"b1\", \"customer\": \"big\", \"amount_cents\": 9007199254740993}"),
        ev(1, "{\"type\": \"OrderPlaced\", \"order_id\": \"b2\", \"customer\": \"big\", \"amount_cents\": 18437736874454810622}"),
    };
    PJ_CHECK(pj_testing_handle(events, 2, NULL, NULL));
    pj_event more = ev(2, "{\"type\": \"OrderPlaced\", \"order_id\": \"b3\", \"customer\": \"big\", \"amount_cents\": 1}");
    uint32_t index = 9;
    char *message = NULL;
    PJ_CHECK(!pj_testing_handle(&more, 1, &index, &message));
    PJ_CHECK(index == 0 && message && strstr(message, "overflows"));
    free(message);
    check_state("{\"customer/big\":{\"orders\":2,\"total_cents\":18446744073709551615},"
                "\"order/b1\":{\"customer\":\"big\",\"amount_cents\":9007199254740993,\"cancelled\":false},"
                "\"order/b2\":{\"customer\":\"big\",\"amount_cents\":18437736874454810622,\"cancelled\":false}}");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s orders.jsonl orders.expected.json\n", argv[0]);
        return 2;
    }
    sample_path = argv[1];
    expected_path = argv[2];
    PJ_RUN(sample_events_fold_to_the_expected_state);
    PJ_RUN(cancel_uses_the_remembered_order);
    PJ_RUN(unknown_types_are_skipped_and_bad_payloads_fail);
    PJ_RUN(top_customers_ranks_by_total_then_id);
    PJ_RUN(top_customers_pages_through_many_customers);
    PJ_RUN(strings_are_reencoded_as_serde_does);
    PJ_RUN(totals_refuse_to_overflow);
    return pj_test_summary();
}
