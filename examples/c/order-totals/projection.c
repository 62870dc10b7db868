/*
 * Orders and spend per customer, from the `orders` topic: the C twin of
 * examples/order-totals (Rust), writing the same state byte for byte.
 *
 * Events are JSON objects
 * {"type": "OrderPlaced" | "OrderCancelled", "order_id", "customer", "amount_cents"}.
 *
 * State:
 * - `customer/<id>`: {"orders": int, "total_cents": int}, the customer's
 *   orders that are not cancelled. A customer whose orders are all cancelled
 *   keeps a record with zeros.
 * - `order/<id>`: {"customer": str, "amount_cents": int, "cancelled": bool},
 *   what a later cancel needs.
 *
 * Query `top-customers` with {"n": int}: the `n` customers with the highest
 * `total_cents`, ties by customer id ascending.
 */
#include <stdlib.h>
#include <string.h>

#include "projector.h"

typedef struct {
    pj_str kind;
} EventType;
static const pj_field event_type_fields[] = {PJ_FIELD_AS(EventType, kind, "type", PJ_STR)};
static const pj_struct event_type = PJ_STRUCT(EventType, event_type_fields);

/* Amounts are unsigned: a negative amount fails the event rather than
 * silently lowering a customer's total. */
typedef struct {
    pj_str order_id;
    pj_str customer;
    uint64_t amount_cents;
} OrderPlaced;
static const pj_field order_placed_fields[] = {
    PJ_FIELD(OrderPlaced, order_id, PJ_STR),
    PJ_FIELD(OrderPlaced, customer, PJ_STR),
    PJ_FIELD(OrderPlaced, amount_cents, PJ_U64),
};
static const pj_struct order_placed = PJ_STRUCT(OrderPlaced, order_placed_fields);

/* Only the order id is read: the customer and amount come from the
 * OrderPlaced the projection remembered, so a cancel cannot move money
 * between customers or take back a different amount. */
typedef struct {
    pj_str order_id;
} OrderCancelled;
static const pj_field order_cancelled_fields[] = {PJ_FIELD(OrderCancelled, order_id, PJ_STR)};
static const pj_struct order_cancelled = PJ_STRUCT(OrderCancelled, order_cancelled_fields);

typedef struct {
    uint64_t orders;
    uint64_t total_cents;
} Customer;
static const pj_field customer_fields[] = {
    PJ_FIELD(Customer, orders, PJ_U64),
    PJ_FIELD(Customer, total_cents, PJ_U64),
};
static const pj_struct customer_type = PJ_STRUCT(Customer, customer_fields);

typedef struct {
    pj_str customer;
    uint64_t amount_cents;
    bool cancelled;
} Order;
static const pj_field order_fields[] = {
    PJ_FIELD(Order, customer, PJ_STR),
    PJ_FIELD(Order, amount_cents, PJ_U64),
    PJ_FIELD(Order, cancelled, PJ_BOOL),
};
static const pj_struct order_type = PJ_STRUCT(Order, order_fields);

/* `usize` in Rust, 32 bits on wasm32. */
typedef struct {
    uint32_t n;
} TopArgs;
static const pj_field top_args_fields[] = {PJ_FIELD(TopArgs, n, PJ_U32)};
static const pj_struct top_args = PJ_STRUCT(TopArgs, top_args_fields);

static pj_error *placed(OrderPlaced *event) {
    pj_buf order_key = pj_key("order/", event->order_id);
    pj_buf customer_key = pj_key("customer/", event->customer);
    pj_buf existing = {0};
    pj_error *error = NULL;
    /* A second OrderPlaced for a known id is a redelivery or a producer bug;
     * counting it again would inflate the total, so the first one wins. */
    if (pj_state_get(pj_buf_view(&order_key), &existing)) {
        pj_warn("ignoring duplicate OrderPlaced for order %.*s", (int)event->order_id.len, event->order_id.ptr);
        goto done;
    }
    Customer customer;
    bool found;
    if ((error = pj_state_get_json(pj_buf_view(&customer_key), &customer_type, &customer, &found)))
        goto done;
    customer.orders += 1;
    if (customer.total_cents > UINT64_MAX - event->amount_cents) {
        error = pj_fail("total of customer %.*s overflows", (int)event->customer.len, event->customer.ptr);
        goto done;
    }
    customer.total_cents += event->amount_cents;
    pj_state_put_json(pj_buf_view(&customer_key), &customer_type, &customer);
    Order order = {event->customer, event->amount_cents, false};
    pj_state_put_json(pj_buf_view(&order_key), &order_type, &order);
done:
    pj_buf_free(&existing);
    pj_buf_free(&order_key);
    pj_buf_free(&customer_key);
    return error;
}

static pj_error *cancelled(OrderCancelled *event) {
    pj_buf order_key = pj_key("order/", event->order_id);
    pj_buf customer_key = {0};
    Order order;
    Customer customer;
    bool found;
    pj_error *error = pj_state_get_json(pj_buf_view(&order_key), &order_type, &order, &found);
    if (error)
        goto done;
    if (!found) {
        pj_warn("ignoring cancel of unknown order %.*s", (int)event->order_id.len, event->order_id.ptr);
        goto done;
    }
    if (order.cancelled)
        goto done;
    customer_key = pj_key("customer/", order.customer);
    if ((error = pj_state_get_json(pj_buf_view(&customer_key), &customer_type, &customer, &found)))
        goto done;
    if (!found) {
        error = pj_fail("order %.*s names customer %.*s with no record", (int)event->order_id.len,
                        event->order_id.ptr, (int)order.customer.len, order.customer.ptr);
        goto done;
    }
    customer.orders -= 1;
    customer.total_cents -= order.amount_cents;
    pj_state_put_json(pj_buf_view(&customer_key), &customer_type, &customer);
    order.cancelled = true;
    pj_state_put_json(pj_buf_view(&order_key), &order_type, &order);
done:
    pj_json_free(&order_type, &order);
    pj_buf_free(&order_key);
    pj_buf_free(&customer_key);
    return error;
}

static pj_error *handle(const pj_event *event) {
    /* Read the type first so that event types added later are skipped
     * whatever their other fields look like: old projections must keep
     * running when producers learn new events. */
    EventType type;
    PJ_TRY(pj_event_payload_json(event, &event_type, &type));
    pj_error *error = NULL;
    if (pj_str_eq(type.kind, "OrderPlaced")) {
        OrderPlaced placed_event;
        if (!(error = pj_event_payload_json(event, &order_placed, &placed_event))) {
            error = placed(&placed_event);
            pj_json_free(&order_placed, &placed_event);
        }
    } else if (pj_str_eq(type.kind, "OrderCancelled")) {
        OrderCancelled cancelled_event;
        if (!(error = pj_event_payload_json(event, &order_cancelled, &cancelled_event))) {
            error = cancelled(&cancelled_event);
            pj_json_free(&order_cancelled, &cancelled_event);
        }
    }
    pj_json_free(&event_type, &type);
    return error;
}

/* One ranked customer: the id (after `customer/`) and its total. */
typedef struct {
    uint8_t *id;
    size_t id_len;
    uint64_t total_cents;
} Ranked;

/* Whether a ranks above b: a higher total first, then the lower id. */
static bool ranks_above(const Ranked *a, const Ranked *b) {
    if (a->total_cents != b->total_cents)
        return a->total_cents > b->total_cents;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    int c = n ? memcmp(a->id, b->id, n) : 0;
    return c != 0 ? c < 0 : a->id_len < b->id_len;
}

static int compare_ranked(const void *a, const void *b) {
    return ranks_above(a, b) ? -1 : ranks_above(b, a) ? 1 : 0;
}

/* A min-heap on rank of the best `n` seen so far: the root is the worst. */
static void sift_down(Ranked *heap, size_t len, size_t i) {
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < len && ranks_above(&heap[worst], &heap[l]))
            worst = l;
        if (r < len && ranks_above(&heap[worst], &heap[r]))
            worst = r;
        if (worst == i)
            return;
        Ranked t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

static void sift_up(Ranked *heap, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ranks_above(&heap[parent], &heap[i]))
            return;
        Ranked t = heap[i];
        heap[i] = heap[parent];
        heap[parent] = t;
        i = parent;
    }
}

/* Pages through every customer, keeping only the best `n` in memory. */
static pj_error *top_customers(pj_view args, pj_json *reply) {
    TopArgs a;
    PJ_TRY(pj_query_args(args, &top_args, &a));
    size_t n = a.n, len = 0, cap = 0;
    Ranked *heap = NULL;
    pj_error *error = NULL;
    static const char prefix[] = "customer/";
    pj_iter it;
    pj_iter_init(&it, pj_cstr_view(prefix));
    pj_view key, value;
    while (pj_iter_next(&it, &key, &value)) {
        Customer customer;
        if ((error = pj_json_decode(value.ptr, value.len, &customer_type, &customer))) {
            pj_error *wrapped = pj_fail("state key `%.*s` does not hold JSON for Customer: %s", (int)key.len,
                                        (const char *)key.ptr, error->message);
            pj_error_free(error);
            error = wrapped;
            break;
        }
        /* Compared in place; copied only when it makes the cut. */
        Ranked r = {(uint8_t *)key.ptr + sizeof prefix - 1, key.len - (sizeof prefix - 1), customer.total_cents};
        if (n == 0 || (len == n && !ranks_above(&r, &heap[0])))
            continue;
        r.id = malloc(r.id_len ? r.id_len : 1);
        if (r.id == NULL)
            abort();
        memcpy(r.id, key.ptr + sizeof prefix - 1, r.id_len);
        if (len < n) {
            if (len == cap) {
                cap = cap ? cap * 2 : 16;
                heap = realloc(heap, cap * sizeof *heap);
                if (heap == NULL)
                    abort();
            }
            heap[len] = r;
            sift_up(heap, len++);
        } else {
            free(heap[0].id);
            heap[0] = r;
            sift_down(heap, len, 0);
        }
    }
    pj_iter_free(&it);
    if (!error) {
        if (len > 1)
            qsort(heap, len, sizeof *heap, compare_ranked);
        pj_json_array_begin(reply);
        for (size_t i = 0; i < len; i++) {
            pj_json_object_begin(reply);
            pj_json_key(reply, "customer");
            pj_json_string(reply, heap[i].id, heap[i].id_len);
            pj_json_key(reply, "total_cents");
            pj_json_u64(reply, heap[i].total_cents);
            pj_json_object_end(reply);
        }
        pj_json_array_end(reply);
    }
    for (size_t i = 0; i < len; i++)
        free(heap[i].id);
    free(heap);
    return error;
}

static const char *const sources[] = {"orders", NULL};
static const pj_query queries[] = {
    {"top-customers", top_customers},
    {NULL, NULL},
};

static const pj_projection order_totals = {
    .name = "order-totals",
    .version = "0.1.0",
    .sources = sources,
    .state_version = 1,
    .handle = handle,
    .queries = queries,
};

PJ_EXPORT_PROJECTION(order_totals);
