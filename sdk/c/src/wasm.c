/*
 * The component backend: the handler exports and the state and log imports,
 * on top of the bindings `wit-bindgen c` generates from wit/projection.wit
 * (projection.h, projection.c, projection_component_type.o; build outputs,
 * see build-component.sh).
 *
 * Ownership follows wit-bindgen's C convention: an export owns its
 * arguments and frees them; what it returns is freed by the generated
 * post-return functions, so it is allocated with malloc; an import's
 * results belong to the caller.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "projection.h"

/* ---------------- imports ---------------- */

static projection_list_u8_t list_of(pj_view v) {
    /* The host only reads import arguments. */
    projection_list_u8_t l = {(uint8_t *)v.ptr, v.len};
    return l;
}

/* An owned list as a pj_buf (same allocator: malloc). */
static pj_buf buf_of(projection_list_u8_t l) {
    pj_buf b = {l.ptr, l.len, l.len};
    return b;
}

bool pj_state_get(pj_view key, pj_buf *value) {
    projection_list_u8_t k = list_of(key), v = {0};
    bool found = projector_projection_state_get(&k, &v);
    *value = found ? buf_of(v) : (pj_buf){0};
    return found;
}

void pj_state_put(pj_view key, pj_view value) {
    projection_list_u8_t k = list_of(key), v = list_of(value);
    projector_projection_state_put(&k, &v);
}

void pj_state_delete(pj_view key) {
    projection_list_u8_t k = list_of(key);
    projector_projection_state_delete(&k);
}

pj_entries pj_state_scan(pj_view prefix, const pj_view *start_after, uint32_t limit) {
    projection_list_u8_t p = list_of(prefix), after = {0};
    if (start_after)
        after = list_of(*start_after);
    projection_list_tuple2_list_u8_list_u8_t ret = {0};
    projector_projection_state_scan(&p, start_after ? &after : NULL, limit, &ret);
    pj_entries out = {0};
    if (ret.len == 0) {
        free(ret.ptr);
        return out;
    }
    out.entries = malloc(ret.len * sizeof *out.entries);
    if (out.entries == NULL)
        abort();
    for (size_t i = 0; i < ret.len; i++) {
        out.entries[i].key = buf_of(ret.ptr[i].f0);
        out.entries[i].value = buf_of(ret.ptr[i].f1);
    }
    out.len = ret.len;
    free(ret.ptr);
    return out;
}

void pj_log_bytes(pj_level level, pj_view message) {
    projection_string_t m = {(uint8_t *)message.ptr, message.len};
    projector_projection_log_log((projector_projection_log_level_t)level, &m);
}

/* ---------------- exports ---------------- */

static projection_string_t string_copy(const char *text) {
    size_t n = strlen(text);
    projection_string_t s = {malloc(n ? n : 1), n};
    if (s.ptr == NULL)
        abort();
    memcpy(s.ptr, text, n);
    return s;
}

static projection_list_string_t strings_copy(const char *const *list) {
    projection_list_string_t out = {0};
    size_t n = 0;
    while (list && list[n])
        n++;
    out.ptr = malloc((n ? n : 1) * sizeof *out.ptr);
    if (out.ptr == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        out.ptr[i] = string_copy(list[i]);
    out.len = n;
    return out;
}

void exports_projector_projection_handler_describe(exports_projector_projection_handler_descriptor_t *ret) {
    const pj_projection *p = pj_exported_projection;
    ret->name = string_copy(p->name);
    ret->version = string_copy(p->version);
    ret->sources = strings_copy(p->sources);
    ret->state_version = p->state_version;
    size_t n = 0;
    while (p->queries && p->queries[n].name)
        n++;
    ret->queries.ptr = malloc((n ? n : 1) * sizeof *ret->queries.ptr);
    if (ret->queries.ptr == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        ret->queries.ptr[i] = string_copy(p->queries[i].name);
    ret->queries.len = n;
}

static pj_view view_of(const uint8_t *ptr, size_t len) {
    pj_view v = {ptr, len};
    return v;
}

bool exports_projector_projection_handler_handle(exports_projector_projection_handler_list_event_t *events,
                                                 exports_projector_projection_handler_handle_error_t *err) {
    size_t count = events->len;
    pj_event *batch = malloc((count ? count : 1) * sizeof *batch);
    size_t headers = 0;
    for (size_t i = 0; i < count; i++)
        headers += events->ptr[i].headers.len;
    pj_header *all_headers = malloc((headers ? headers : 1) * sizeof *all_headers);
    pj_header *header = all_headers;
    if (batch == NULL || all_headers == NULL)
        abort();
    for (size_t i = 0; i < count; i++) {
        const exports_projector_projection_handler_event_t *e = &events->ptr[i];
        pj_event *b = &batch[i];
        b->source = view_of(e->source.ptr, e->source.len);
        b->partition = e->partition;
        b->offset = e->offset;
        b->has_key = e->key.is_some;
        b->key = e->key.is_some ? view_of(e->key.val.ptr, e->key.val.len) : view_of(NULL, 0);
        b->has_payload = e->payload.is_some;
        b->payload = e->payload.is_some ? view_of(e->payload.val.ptr, e->payload.val.len) : view_of(NULL, 0);
        b->timestamp_ms = e->timestamp_ms;
        b->headers = header;
        b->header_count = e->headers.len;
        for (size_t h = 0; h < e->headers.len; h++, header++) {
            header->name = view_of(e->headers.ptr[h].f0.ptr, e->headers.ptr[h].f0.len);
            header->value = view_of(e->headers.ptr[h].f1.ptr, e->headers.ptr[h].f1.len);
        }
    }
    uint32_t index = 0;
    char *message = NULL;
    bool ok = pj_run_batch(batch, count, &index, &message);
    if (!ok) {
        err->index = index;
        err->message.ptr = (uint8_t *)message;
        err->message.len = strlen(message);
    }
    free(all_headers);
    free(batch);
    exports_projector_projection_handler_list_event_free(events);
    return ok;
}

bool exports_projector_projection_handler_query(projection_string_t *name, projection_list_u8_t *args,
                                                projection_list_u8_t *ret,
                                                exports_projector_projection_handler_query_error_t *err) {
    pj_json reply = {0};
    pj_error *error = pj_run_query(view_of(name->ptr, name->len), view_of(args->ptr, args->len), &reply);
    projection_string_free(name);
    projection_list_u8_free(args);
    if (error == NULL) {
        ret->ptr = reply.buf.ptr;
        ret->len = reply.buf.len;
        return true;
    }
    pj_buf_free(&reply.buf);
    projection_string_t message = {(uint8_t *)error->message, strlen(error->message)};
    switch (error->kind) {
    case PJ_UNKNOWN_QUERY:
        err->tag = PROJECTOR_PROJECTION_TYPES_QUERY_ERROR_UNKNOWN_QUERY;
        free(error->message);
        break;
    case PJ_BAD_ARGS:
        err->tag = PROJECTOR_PROJECTION_TYPES_QUERY_ERROR_BAD_ARGS;
        err->val.bad_args = message;
        break;
    default:
        err->tag = PROJECTOR_PROJECTION_TYPES_QUERY_ERROR_FAILED;
        err->val.failed = message;
        break;
    }
    free(error);
    return false;
}
