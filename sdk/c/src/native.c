/*
 * The native backend: state in memory, logs on stderr, and the testing API
 * (projector_testing.h). Linked instead of wasm.c when a projection is built
 * for the machine it runs on, for unit tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "projector_testing.h"

/* The state: entries sorted by key, bytewise. */
static pj_entry *entries;
static size_t entry_count, entry_cap;
static bool read_only;

static int compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Index of the first entry whose key is >= key (or > key when `after`). */
static size_t lower_bound(pj_view key, bool after) {
    size_t lo = 0, hi = entry_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare(entries[mid].key.ptr, entries[mid].key.len, key.ptr, key.len);
        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool find(pj_view key, size_t *at) {
    *at = lower_bound(key, false);
    return *at < entry_count &&
           compare(entries[*at].key.ptr, entries[*at].key.len, key.ptr, key.len) == 0;
}

bool pj_state_get(pj_view key, pj_buf *value) {
    size_t at;
    memset(value, 0, sizeof *value);
    if (!find(key, &at))
        return false;
    pj_buf_append(value, entries[at].value.ptr, entries[at].value.len);
    if (value->ptr == NULL)
        pj_buf_push(value, 0), value->len = 0;
    return true;
}

static void check_writable(const char *what) {
    if (read_only) {
        fprintf(stderr, "pj_state_%s during a query: state is read-only (the host traps)\n", what);
        abort();
    }
}

void pj_state_put(pj_view key, pj_view value) {
    check_writable("put");
    size_t at;
    if (find(key, &at)) {
        pj_buf_clear(&entries[at].value);
        pj_buf_append(&entries[at].value, value.ptr, value.len);
        return;
    }
    if (entry_count == entry_cap) {
        entry_cap = entry_cap ? entry_cap * 2 : 64;
        entries = realloc(entries, entry_cap * sizeof *entries);
        if (entries == NULL)
            abort();
    }
    memmove(&entries[at + 1], &entries[at], (entry_count - at) * sizeof *entries);
    memset(&entries[at], 0, sizeof *entries);
    pj_buf_append(&entries[at].key, key.ptr, key.len);
    pj_buf_append(&entries[at].value, value.ptr, value.len);
    entry_count++;
}

void pj_state_delete(pj_view key) {
    check_writable("delete");
    size_t at;
    if (!find(key, &at))
        return;
    pj_buf_free(&entries[at].key);
    pj_buf_free(&entries[at].value);
    memmove(&entries[at], &entries[at + 1], (entry_count - at - 1) * sizeof *entries);
    entry_count--;
}

pj_entries pj_state_scan(pj_view prefix, const pj_view *start_after, uint32_t limit) {
    pj_entries out = {0};
    size_t at = start_after && compare(start_after->ptr, start_after->len, prefix.ptr, prefix.len) >= 0
                    ? lower_bound(*start_after, true)
                    : lower_bound(prefix, false);
    /* The host caps pages; a small cap here exercises paging in tests. */
    if (limit > 100)
        limit = 100;
    out.entries = calloc(limit ? limit : 1, sizeof *out.entries);
    if (out.entries == NULL)
        abort();
    for (; at < entry_count && out.len < limit; at++) {
        pj_entry *e = &entries[at];
        if (e->key.len < prefix.len || (prefix.len && memcmp(e->key.ptr, prefix.ptr, prefix.len) != 0))
            break;
        pj_buf_append(&out.entries[out.len].key, e->key.ptr, e->key.len);
        pj_buf_append(&out.entries[out.len].value, e->value.ptr, e->value.len);
        out.len++;
    }
    return out;
}

void pj_log_bytes(pj_level level, pj_view message) {
    static const char *names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
    fprintf(stderr, "[%s] %.*s\n", names[level <= PJ_ERROR ? level : PJ_ERROR], (int)message.len,
            (const char *)message.ptr);
}

/* ---------------- testing API ---------------- */

static void clear_entries(pj_entry *list, size_t count) {
    for (size_t i = 0; i < count; i++) {
        pj_buf_free(&list[i].key);
        pj_buf_free(&list[i].value);
    }
}

void pj_testing_reset(void) {
    clear_entries(entries, entry_count);
    entry_count = 0;
    read_only = false;
}

pj_event pj_testing_event(const char *source, uint64_t offset, const void *payload, size_t len) {
    pj_event e;
    memset(&e, 0, sizeof e);
    e.source = pj_cstr_view(source);
    e.offset = offset;
    e.has_payload = payload != NULL;
    e.payload.ptr = payload;
    e.payload.len = payload ? len : 0;
    return e;
}

bool pj_testing_handle(const pj_event *events, size_t count, uint32_t *index, char **message) {
    /* Snapshot, to roll back a failed batch. */
    pj_entry *saved = calloc(entry_count ? entry_count : 1, sizeof *saved);
    if (saved == NULL)
        abort();
    size_t saved_count = entry_count;
    for (size_t i = 0; i < entry_count; i++) {
        pj_buf_append(&saved[i].key, entries[i].key.ptr, entries[i].key.len);
        pj_buf_append(&saved[i].value, entries[i].value.ptr, entries[i].value.len);
    }
    uint32_t at = 0;
    char *why = NULL;
    bool ok = pj_run_batch(events, count, &at, &why);
    if (ok) {
        clear_entries(saved, saved_count);
        free(saved);
    } else {
        clear_entries(entries, entry_count);
        free(entries);
        entries = saved;
        entry_cap = saved_count ? saved_count : 1;
        entry_count = saved_count;
    }
    if (index)
        *index = at;
    if (message)
        *message = why;
    else
        free(why);
    return ok;
}

pj_error *pj_testing_query(const char *name, const char *args, pj_buf *reply) {
    pj_json w = {0};
    read_only = true;
    pj_error *error = pj_run_query(pj_cstr_view(name), pj_cstr_view(args), &w);
    read_only = false;
    if (error) {
        pj_buf_free(&w.buf);
        memset(reply, 0, sizeof *reply);
        return error;
    }
    *reply = w.buf;
    return NULL;
}

void pj_testing_state_json(pj_buf *out) {
    pj_json w = {0};
    pj_json_object_begin(&w);
    for (size_t i = 0; i < entry_count; i++) {
        pj_json_string(&w, entries[i].key.ptr, entries[i].key.len);
        pj_buf_push(&w.buf, ':');
        pj_buf_append(&w.buf, entries[i].value.ptr, entries[i].value.len);
    }
    pj_json_object_end(&w);
    *out = w.buf;
}

size_t pj_testing_state_len(void) { return entry_count; }

bool pj_testing_read_file(const char *path, pj_buf *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        pj_buf_append(out, chunk, n);
    bool ok = !ferror(f);
    fclose(f);
    return ok;
}

bool pj_testing_handle_lines(const char *source, pj_view text, uint32_t *index, char **message) {
    size_t count = 0, cap = 0;
    pj_event *events = NULL;
    size_t start = 0;
    while (start < text.len) {
        const uint8_t *nl = memchr(text.ptr + start, '\n', text.len - start);
        size_t end = nl ? (size_t)(nl - text.ptr) : text.len;
        size_t first = start;
        while (first < end && (text.ptr[first] == ' ' || text.ptr[first] == '\t' || text.ptr[first] == '\r'))
            first++;
        if (first == end) {
            start = end + 1;
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            events = realloc(events, cap * sizeof *events);
            if (events == NULL)
                abort();
        }
        events[count] = pj_testing_event(source, count, text.ptr + start, end - start);
        count++;
        start = end + 1;
    }
    bool ok = pj_testing_handle(events, count, index, message);
    free(events);
    return ok;
}

void pj_testing_compact(pj_view json, pj_buf *out) {
    memset(out, 0, sizeof *out);
    bool in_string = false;
    for (size_t i = 0; i < json.len; i++) {
        uint8_t c = json.ptr[i];
        if (in_string) {
            pj_buf_push(out, c);
            if (c == '\\' && i + 1 < json.len)
                pj_buf_push(out, json.ptr[++i]);
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
            pj_buf_push(out, c);
        } else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
            pj_buf_push(out, c);
        }
    }
}

/* ---------------- test runner ---------------- */

int pj_test_passed, pj_test_failed, pj_test_current_failed;

void pj_test_check_bytes(const char *file, int line, const void *ptr, size_t len, const char *want) {
    size_t n = strlen(want);
    if (len == n && (n == 0 || memcmp(ptr, want, n) == 0))
        return;
    fprintf(stderr, "%s:%d: bytes differ\n  got:  %.*s\n  want: %s\n", file, line, (int)len,
            ptr ? (const char *)ptr : "", want);
    pj_test_current_failed = 1;
}

int pj_test_summary(void) {
    printf("%d passed, %d failed\n", pj_test_passed, pj_test_failed);
    return pj_test_failed ? 1 : 0;
}
