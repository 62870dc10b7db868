/*
 * Unit tests of {{name}}, run natively by ./test.sh: the sample events give
 * expected.json, and the query and the failure rules hold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector_testing.h"

static void sample_events_fold_to_the_expected_state(void) {
    pj_buf sample, expected, want, state;
    PJ_CHECK(pj_testing_read_file("events.jsonl", &sample));
    PJ_CHECK(pj_testing_read_file("expected.json", &expected));
    PJ_CHECK(pj_testing_handle_lines("events", pj_buf_view(&sample), NULL, NULL));
    pj_testing_compact(pj_buf_view(&expected), &want);
    pj_buf_push(&want, 0);
    pj_testing_state_json(&state);
    PJ_CHECK_BYTES(state.ptr, state.len, (const char *)want.ptr);
    pj_buf_free(&sample);
    pj_buf_free(&expected);
    pj_buf_free(&want);
    pj_buf_free(&state);
}

static void count_answers_the_count_or_null(void) {
    const char *login = "{\"type\": \"login\"}";
    pj_event e = pj_testing_event("events", 0, login, strlen(login));
    PJ_CHECK(pj_testing_handle(&e, 1, NULL, NULL));
    pj_buf reply;
    PJ_CHECK(pj_testing_query("count", "{\"type\": \"login\"}", &reply) == NULL);
    PJ_CHECK_BYTES(reply.ptr, reply.len, "{\"count\":1}");
    pj_buf_free(&reply);
    PJ_CHECK(pj_testing_query("count", "{\"type\": \"logout\"}", &reply) == NULL);
    PJ_CHECK_BYTES(reply.ptr, reply.len, "null");
    pj_buf_free(&reply);
    pj_error *error = pj_testing_query("count", "{}", &reply);
    PJ_CHECK(error != NULL && error->kind == PJ_BAD_ARGS);
    pj_error_free(error);
    error = pj_testing_query("nope", "{}", &reply);
    PJ_CHECK(error != NULL && error->kind == PJ_UNKNOWN_QUERY);
    pj_error_free(error);
}

static void an_event_without_a_type_fails_the_batch(void) {
    const char *ok = "{\"type\": \"login\"}", *bad = "{\"user\": \"ann\"}";
    pj_event events[] = {
        pj_testing_event("events", 0, ok, strlen(ok)),
        pj_testing_event("events", 1, bad, strlen(bad)),
    };
    uint32_t index = 0;
    char *message = NULL;
    PJ_CHECK(!pj_testing_handle(events, 2, &index, &message));
    PJ_CHECK(index == 1);
    free(message);
    /* The failed batch left no trace. */
    PJ_CHECK(pj_testing_state_len() == 0);
}

int main(void) {
    PJ_RUN(sample_events_fold_to_the_expected_state);
    PJ_RUN(count_answers_the_count_or_null);
    PJ_RUN(an_event_without_a_type_fails_the_batch);
    return pj_test_summary();
}
