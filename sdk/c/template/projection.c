/*
 * {{name}}: counts events by their JSON `type` field.
 *
 * Events from the topic `events` are JSON objects with a string field
 * `type` (other fields are ignored). An event without one fails.
 *
 * State `count/<type>`: {"count": int}.
 * Query `count` with {"type": str}: the count object, or null.
 */
#include "projector.h"

typedef struct {
    pj_str kind;
} EventType;
static const pj_field event_type_fields[] = {PJ_FIELD_AS(EventType, kind, "type", PJ_STR)};
static const pj_struct event_type = PJ_STRUCT(EventType, event_type_fields);

typedef struct {
    uint64_t count;
} Count;
static const pj_field count_fields[] = {PJ_FIELD(Count, count, PJ_U64)};
static const pj_struct count_type = PJ_STRUCT(Count, count_fields);

static pj_error *handle(const pj_event *event) {
    EventType e;
    PJ_TRY(pj_event_payload_json(event, &event_type, &e));
    pj_buf key = pj_key("count/", e.kind);
    Count count;
    bool found;
    pj_error *error = pj_state_get_json(pj_buf_view(&key), &count_type, &count, &found);
    if (!error) {
        count.count += 1;
        pj_state_put_json(pj_buf_view(&key), &count_type, &count);
        if (count.count == 1000000)
            pj_info("a million events of type %.*s", (int)e.kind.len, e.kind.ptr);
    }
    pj_buf_free(&key);
    pj_json_free(&event_type, &e);
    return error;
}

static pj_error *count_query(pj_view args, pj_json *reply) {
    EventType a;
    PJ_TRY(pj_query_args(args, &event_type, &a));
    pj_buf key = pj_key("count/", a.kind);
    Count count;
    bool found;
    pj_error *error = pj_state_get_json(pj_buf_view(&key), &count_type, &count, &found);
    if (!error) {
        if (found)
            pj_json_struct(reply, &count_type, &count);
        else
            pj_json_null(reply);
    }
    pj_buf_free(&key);
    pj_json_free(&event_type, &a);
    return error;
}

static const char *const sources[] = {"events", NULL};
static const pj_query queries[] = {
    {"count", count_query},
    {NULL, NULL},
};

static const pj_projection projection = {
    .name = "{{name}}",
    .version = "0.1.0",
    .sources = sources,
    .state_version = 1,
    .handle = handle,
    .queries = queries,
};

PJ_EXPORT_PROJECTION(projection);
