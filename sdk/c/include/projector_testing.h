/*
 * projector_testing.h: unit-test a C projection natively, without a host.
 *
 * Build the projection with the SDK's native backend (src/native.c instead
 * of src/wasm.c; see README.md): state is an in-memory map and log lines go
 * to stderr. pj_testing_handle and pj_testing_query follow the host's rules:
 * a failed batch leaves no trace, and state is read-only during a query (a
 * write aborts the test program, as it traps the module in the host).
 */
#ifndef PROJECTOR_TESTING_H
#define PROJECTOR_TESTING_H

#include "projector.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Empty the state. */
void pj_testing_reset(void);

/* An event of `source` at `offset` in partition 0 whose payload is the
 * `len` bytes at `payload` (borrowed, not copied); a tombstone when
 * `payload` is NULL. */
pj_event pj_testing_event(const char *source, uint64_t offset, const void *payload, size_t len);

/* Run a batch as the host does. True on success; on failure the state is
 * restored to what it was before the batch, and `*index` and `*message` (free
 * it) tell the failing event, when those pointers are not NULL. */
bool pj_testing_handle(const pj_event *events, size_t count, uint32_t *index, char **message);

/* Run a query with state read-only. The answer goes to `*reply` (free it
 * with pj_buf_free); an error is returned as the host would get it. */
pj_error *pj_testing_query(const char *name, const char *args, pj_buf *reply);

/* The state as one JSON object, keys ascending, each value's stored bytes
 * as they are: `{"key":value,...}`. Keys are written as JSON strings. */
void pj_testing_state_json(pj_buf *out);

/* Number of keys in the state. */
size_t pj_testing_state_len(void);

/* The bytes of the file at `path` into `*out`; false if it cannot be read. */
bool pj_testing_read_file(const char *path, pj_buf *out);

/* Run `text` as one batch of events of `source`, one per line (offsets from
 * 0; a trailing newline ends the last line), as pj_testing_handle does.
 * Blank lines are skipped, as `projector test` and `projector publish` skip
 * them. */
bool pj_testing_handle_lines(const char *source, pj_view text, uint32_t *index, char **message);

/* `json` without the whitespace outside strings, so that a pretty-printed
 * expected state compares byte for byte with pj_testing_state_json (whose
 * keys are ascending and whose values are stored compact). */
void pj_testing_compact(pj_view json, pj_buf *out);

/* ---- a tiny test runner ----
 *
 *     static void test_something(void) { PJ_CHECK(1 + 1 == 2); }
 *     int main(void) {
 *         PJ_RUN(test_something);
 *         return pj_test_summary();
 *     }
 *
 * pj_test_summary prints "N passed, M failed" and returns the exit code. */
extern int pj_test_passed, pj_test_failed, pj_test_current_failed;
#define PJ_CHECK(cond)                                                              \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            pj_test_current_failed = 1;                                             \
        }                                                                           \
    } while (0)
/* Compare a buffer or view's bytes with a C string, printing both on failure. */
#define PJ_CHECK_BYTES(ptr_, len_, want_) pj_test_check_bytes(__FILE__, __LINE__, (ptr_), (len_), (want_))
#define PJ_RUN(test)                                                         \
    do {                                                                     \
        pj_test_current_failed = 0;                                          \
        pj_testing_reset();                                                  \
        test();                                                              \
        if (pj_test_current_failed) {                                        \
            pj_test_failed++;                                                \
            fprintf(stderr, "FAILED %s\n", #test);                           \
        } else {                                                             \
            pj_test_passed++;                                                \
        }                                                                    \
    } while (0)
void pj_test_check_bytes(const char *file, int line, const void *ptr, size_t len, const char *want);
int pj_test_summary(void);

#ifdef __cplusplus
}
#endif

#endif
