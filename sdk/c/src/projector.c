/*
 * What the SDK does the same on wasm32 and natively: events, paging, JSON
 * state, query arguments, log formatting, and running a batch or a query
 * against the exported pj_projection. The host calls (state, log) are in
 * wasm.c (the component) or native.c (unit tests).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Entries fetched per host call by pj_iter. */
#define PJ_PAGE 256

/* ---------------- events ---------------- */

bool pj_event_is_tombstone(const pj_event *event) { return !event->has_payload; }

char *pj_event_position(const pj_event *event) {
    int n = snprintf(NULL, 0, "%.*s/%u@%llu", (int)event->source.len, (const char *)event->source.ptr,
                     (unsigned)event->partition, (unsigned long long)event->offset);
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        abort();
    snprintf(s, (size_t)n + 1, "%.*s/%u@%llu", (int)event->source.len, (const char *)event->source.ptr,
             (unsigned)event->partition, (unsigned long long)event->offset);
    return s;
}

pj_error *pj_event_payload_json(const pj_event *event, const pj_struct *type, void *out) {
    if (!event->has_payload) {
        char *at = pj_event_position(event);
        pj_error *error = pj_fail("event %s has no payload (tombstone), expected JSON for %s", at, type->name);
        free(at);
        pj_json_zero(type, out); /* callers free nothing on error */
        return error;
    }
    pj_error *error = pj_json_decode(event->payload.ptr, event->payload.len, type, out);
    if (error) {
        char *at = pj_event_position(event);
        pj_error *wrapped = pj_fail("event %s payload is not valid JSON for %s: %s", at, type->name, error->message);
        free(at);
        pj_error_free(error);
        return wrapped;
    }
    return NULL;
}

bool pj_event_header(const pj_event *event, const char *name, pj_view *value) {
    size_t n = strlen(name);
    for (size_t i = 0; i < event->header_count; i++) {
        const pj_header *h = &event->headers[i];
        if (h->name.len == n && memcmp(h->name.ptr, name, n) == 0) {
            *value = h->value;
            return true;
        }
    }
    return false;
}

/* ---------------- state ---------------- */

void pj_entries_free(pj_entries *entries) {
    for (size_t i = 0; i < entries->len; i++) {
        pj_buf_free(&entries->entries[i].key);
        pj_buf_free(&entries->entries[i].value);
    }
    free(entries->entries);
    entries->entries = NULL;
    entries->len = 0;
}

void pj_iter_init(pj_iter *it, pj_view prefix) {
    memset(it, 0, sizeof *it);
    pj_buf_append(&it->prefix, prefix.ptr, prefix.len);
}

bool pj_iter_next(pj_iter *it, pj_view *key, pj_view *value) {
    if (it->next >= it->page.len) {
        if (it->done)
            return false;
        pj_view last = pj_buf_view(&it->last);
        pj_entries page = pj_state_scan(pj_buf_view(&it->prefix), it->started ? &last : NULL, PJ_PAGE);
        pj_entries_free(&it->page);
        it->page = page;
        it->next = 0;
        it->started = true;
        if (page.len == 0) {
            it->done = true;
            return false;
        }
        pj_buf_clear(&it->last);
        pj_buf_append(&it->last, page.entries[page.len - 1].key.ptr, page.entries[page.len - 1].key.len);
    }
    pj_entry *e = &it->page.entries[it->next++];
    *key = pj_buf_view(&e->key);
    *value = pj_buf_view(&e->value);
    return true;
}

void pj_iter_free(pj_iter *it) {
    pj_buf_free(&it->prefix);
    pj_buf_free(&it->last);
    pj_entries_free(&it->page);
}

pj_error *pj_state_get_json(pj_view key, const pj_struct *type, void *out, bool *found) {
    pj_buf value = {0};
    *found = pj_state_get(key, &value);
    if (!*found) {
        pj_json_zero(type, out);
        return NULL;
    }
    pj_error *error = pj_json_decode(value.ptr, value.len, type, out);
    pj_buf_free(&value);
    if (error) {
        pj_error *wrapped = pj_fail("state key `%.*s` does not hold JSON for %s: %s", (int)key.len,
                                    (const char *)key.ptr, type->name, error->message);
        pj_error_free(error);
        return wrapped;
    }
    return NULL;
}

void pj_state_put_json(pj_view key, const pj_struct *type, const void *value) {
    pj_json w = {0};
    pj_json_struct(&w, type, value);
    pj_state_put(key, pj_buf_view(&w.buf));
    pj_buf_free(&w.buf);
}

/* ---------------- queries ---------------- */

pj_error *pj_query_args(pj_view args, const pj_struct *type, void *out) {
    /* Rust's u8::is_ascii_whitespace: space, \t, \n, \x0C, \r. */
    bool blank = true;
    for (size_t i = 0; i < args.len && blank; i++) {
        uint8_t c = args.ptr[i];
        blank = c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
    }
    pj_view json = blank ? pj_cstr_view("{}") : args;
    pj_error *error = pj_json_decode(json.ptr, json.len, type, out);
    if (error) {
        pj_error *wrapped = pj_bad_args("expected JSON for %s: %s", type->name, error->message);
        pj_error_free(error);
        return wrapped;
    }
    return NULL;
}

/* ---------------- logging ---------------- */

void pj_log(pj_level level, const char *format, ...) {
    pj_buf message = {0};
    va_list args, copy;
    va_start(args, format);
    va_copy(copy, args);
    char probe[1];
    int n = vsnprintf(probe, sizeof probe, format, copy);
    va_end(copy);
    if (n > 0) {
        message.ptr = malloc((size_t)n + 1);
        if (message.ptr == NULL)
            abort();
        vsnprintf((char *)message.ptr, (size_t)n + 1, format, args);
        message.len = (size_t)n;
    }
    va_end(args);
    pj_log_bytes(level, pj_buf_view(&message));
    free(message.ptr);
}

/* ---------------- running the projection ---------------- */

bool pj_run_batch(const pj_event *events, size_t count, uint32_t *index, char **message) {
    for (size_t i = 0; i < count; i++) {
        pj_error *error = pj_exported_projection->handle(&events[i]);
        if (error) {
            /* The canonical ABI caps list lengths at u32::MAX. */
            *index = i > UINT32_MAX ? UINT32_MAX : (uint32_t)i;
            *message = error->message;
            free(error);
            return false;
        }
    }
    return true;
}

pj_error *pj_run_query(pj_view name, pj_view args, pj_json *reply) {
    const pj_query *q = pj_exported_projection->queries;
    for (; q != NULL && q->name != NULL; q++) {
        if (strlen(q->name) == name.len && memcmp(q->name, name.ptr, name.len) == 0)
            return q->run(args, reply);
    }
    return pj_unknown_query();
}
