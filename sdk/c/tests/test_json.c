/*
 * Native unit tests of the SDK's JSON reader and writer against what
 * serde_json 1.x (with serde's derive) accepts, refuses and writes.
 *
 *   cc -std=c11 -Wall -Wextra -Werror -Isdk/c/include -Isdk/c/src \
 *      sdk/c/tests/test_json.c sdk/c/src/json.c -o test_json && ./test_json
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "projector.h"

static int passed, failed;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (cond)                                                                 \
            passed++;                                                             \
        else {                                                                    \
            failed++;                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                         \
    } while (0)

typedef struct {
    pj_str order_id;
    pj_str customer;
    uint64_t amount_cents;
} Placed;

static const pj_field placed_fields[] = {
    PJ_FIELD(Placed, order_id, PJ_STR),
    PJ_FIELD(Placed, customer, PJ_STR),
    PJ_FIELD(Placed, amount_cents, PJ_U64),
};
static const pj_struct placed_type = PJ_STRUCT(Placed, placed_fields);

typedef struct {
    pj_str kind;
} Kind;
static const pj_field kind_fields[] = {PJ_FIELD_AS(Kind, kind, "type", PJ_STR)};
static const pj_struct kind_type = PJ_STRUCT(Kind, kind_fields);

typedef struct {
    pj_str owner;
    uint32_t n;
    bool flag;
} Misc;
static const pj_field misc_fields[] = {
    PJ_FIELD(Misc, owner, PJ_OPT_STR),
    PJ_FIELD(Misc, n, PJ_U32),
    PJ_FIELD(Misc, flag, PJ_BOOL),
};
static const pj_struct misc_type = PJ_STRUCT(Misc, misc_fields);

static const pj_struct no_args = PJ_STRUCT_EMPTY("NoArgs", true);
static const pj_struct no_args_lenient = PJ_STRUCT_EMPTY("Empty", false);

/* Whether `json` decodes as `type`; frees what it decoded. */
static bool ok_len(const pj_struct *type, const char *json, size_t len) {
    char out[256];
    pj_error *error = pj_json_decode((const uint8_t *)json, len, type, out);
    if (error) {
        pj_error_free(error);
        return false;
    }
    pj_json_free(type, out);
    return true;
}

static bool ok(const pj_struct *type, const char *json) { return ok_len(type, json, strlen(json)); }

/* The `type` field decoded from `json`, as bytes, or "<error>". */
static void kind_is(const char *json, const char *want, size_t want_len) {
    Kind k;
    pj_error *error = pj_json_decode((const uint8_t *)json, strlen(json), &kind_type, &k);
    if (error) {
        fprintf(stderr, "%s: %s\n", json, error->message);
        pj_error_free(error);
        CHECK(!"decodes");
        return;
    }
    CHECK(k.kind.len == want_len && memcmp(k.kind.ptr, want, want_len) == 0);
    CHECK(k.kind.ptr[k.kind.len] == 0);
    pj_json_free(&kind_type, &k);
    CHECK(k.kind.ptr == NULL);
}

static void test_struct_shapes(void) {
    Placed p;
    const char *json = "{\"type\": \"OrderPlaced\", \"order_id\": \"o1\", \"customer\": \"ann\", \"amount_cents\": 500}";
    pj_error *error = pj_json_decode((const uint8_t *)json, strlen(json), &placed_type, &p);
    CHECK(error == NULL);
    CHECK(pj_str_eq(p.order_id, "o1") && pj_str_eq(p.customer, "ann") && p.amount_cents == 500);
    pj_json_free(&placed_type, &p);

    /* Fields in any order, whitespace anywhere JSON allows it. */
    CHECK(ok(&placed_type, " \n\t\r{ \"amount_cents\" : 1 , \"customer\":\"a\",\"order_id\":\"b\" } \n"));
    /* Missing, duplicate, wrong type. */
    CHECK(!ok(&placed_type, "{\"order_id\": \"1\", \"amount_cents\": 5}"));
    CHECK(!ok(&placed_type, "{\"order_id\": \"1\", \"order_id\": \"2\", \"customer\": \"a\", \"amount_cents\": 5}"));
    CHECK(!ok(&placed_type, "{\"order_id\": 5, \"customer\": \"a\", \"amount_cents\": 5}"));
    CHECK(!ok(&placed_type, "{\"order_id\": null, \"customer\": \"a\", \"amount_cents\": 5}"));
    /* Unknown fields are skipped, duplicates of them too. */
    CHECK(ok(&placed_type, "{\"x\": 1, \"x\": [], \"order_id\": \"1\", \"customer\": \"a\", \"amount_cents\": 5}"));
    /* An array of the fields in order. */
    CHECK(ok(&placed_type, "[\"1\", \"a\", 5]"));
    CHECK(!ok(&placed_type, "[\"1\", \"a\"]"));
    CHECK(!ok(&placed_type, "[\"1\", \"a\", 5, 6]"));
    CHECK(!ok(&placed_type, "[\"1\", \"a\", 5,]"));
    CHECK(!ok(&kind_type, "[]"));
    kind_is("[\"Other\"]", "Other", 5);
    CHECK(!ok(&kind_type, "[\"Other\", 1]"));
    CHECK(!ok(&kind_type, "[1, 2]"));
    /* Other shapes. */
    CHECK(!ok(&kind_type, "\"OrderPlaced\""));
    CHECK(!ok(&kind_type, "null"));
    CHECK(!ok(&kind_type, "5"));
    CHECK(!ok(&kind_type, "{}"));
    CHECK(!ok(&kind_type, "{\"type\": 5}"));
    CHECK(!ok(&kind_type, "{\"type\": \"OrderPlaced\""));
    CHECK(!ok(&kind_type, "{\"type\": \"a\",}"));
    CHECK(!ok(&kind_type, "{\"type\": \"a\"} x"));
    CHECK(!ok(&kind_type, "{\"type\": \"a\"}{}"));
    CHECK(!ok(&kind_type, "{type: \"a\"}"));
    CHECK(!ok(&kind_type, "{\"type\" \"a\"}"));
    CHECK(!ok(&kind_type, "\xef\xbb\xbf{\"type\": \"Other\"}"));
    CHECK(!ok(&kind_type, ""));
    CHECK(!ok(&kind_type, "   "));
    CHECK(!ok(&kind_type, "{\"type\": \"a\" \"b\": 1}"));
    CHECK(ok(&kind_type, " \n {\"type\": \"Other\"} \t"));
    /* Form feed is not JSON whitespace. */
    CHECK(!ok(&kind_type, "\f{\"type\": \"Other\"}"));
    /* A key that is an escape of the field name matches it. */
    kind_is("{\"t\\u0079pe\": \"X\"}", "X", 1);
    /* Empty structs: {} and [], unknown fields refused when denied. */
    CHECK(ok(&no_args, "{}"));
    CHECK(ok(&no_args, "[]"));
    CHECK(ok(&no_args, " [ ] "));
    CHECK(!ok(&no_args, "[1]"));
    CHECK(!ok(&no_args, "null"));
    CHECK(!ok(&no_args, "{\"limit\": 5}"));
    CHECK(ok(&no_args_lenient, "{\"limit\": 5}"));
    CHECK(!ok(&no_args, "nonsense"));
}

static void test_integers(void) {
    const char *good[] = {"0", "1", "500", "9007199254740993", "18446744073709551615"};
    const char *bad[] = {"-5", "-0", "5.0", "5e0", "1E2", "1.5", "\"5\"", "null", "true", "[]", "{}",
                         "18446744073709551616", "99999999999999999999999", "05", "00", "-", "1.", "1e",
                         "1e+", ".5", "+1", "0x10", "Infinity", "NaN"};
    char json[128];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(json, sizeof json, "{\"order_id\": \"1\", \"customer\": \"a\", \"amount_cents\": %s}", good[i]);
        Placed p;
        pj_error *error = pj_json_decode((const uint8_t *)json, strlen(json), &placed_type, &p);
        CHECK(error == NULL);
        if (!error) {
            CHECK(p.amount_cents == strtoull(good[i], NULL, 10));
            pj_json_free(&placed_type, &p);
        }
        pj_error_free(error);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(json, sizeof json, "{\"order_id\": \"1\", \"customer\": \"a\", \"amount_cents\": %s}", bad[i]);
        if (ok(&placed_type, json)) {
            fprintf(stderr, "accepted amount %s\n", bad[i]);
            CHECK(!"refused");
        } else {
            passed++;
        }
    }
    /* u32 (usize on wasm32). */
    CHECK(ok(&misc_type, "{\"n\": 4294967295, \"flag\": true}"));
    CHECK(!ok(&misc_type, "{\"n\": 4294967296, \"flag\": true}"));
    CHECK(!ok(&misc_type, "{\"n\": -1, \"flag\": true}"));
    CHECK(!ok(&misc_type, "{\"n\": 1.0, \"flag\": true}"));
    CHECK(ok(&misc_type, "[null, 4, false]"));
    /* Option: null or missing is absent; a string is present. */
    Misc m;
    CHECK(pj_json_decode((const uint8_t *)"{\"n\":1,\"flag\":false}", 20, &misc_type, &m) == NULL);
    CHECK(m.owner.ptr == NULL && m.n == 1 && !m.flag);
    CHECK(pj_json_decode((const uint8_t *)"{\"owner\":\"x\",\"n\":1,\"flag\":true}", 31, &misc_type, &m) == NULL);
    CHECK(pj_str_eq(m.owner, "x") && m.flag);
    pj_json_free(&misc_type, &m);
    CHECK(!ok(&misc_type, "{\"owner\": nul, \"n\": 1, \"flag\": true}"));
    CHECK(!ok(&misc_type, "{\"owner\": 1, \"n\": 1, \"flag\": true}"));
    CHECK(!ok(&misc_type, "{\"n\": 1, \"flag\": 1}"));
    CHECK(!ok(&misc_type, "{\"n\": 1, \"flag\": True}"));
}

static void test_strings(void) {
    kind_is("{\"type\": \"q\\\"b\\\\c\\n\\u0001\\u007f\\u2028/\\/\\b\\f\\r\\t\"}", "q\"b\\c\n\x01\x7f\xe2\x80\xa8//\b\f\r\t",
            17);
    kind_is("{\"type\": \"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80", 4);
    kind_is("{\"type\": \"\\uD83D\\uDE00\"}", "\xf0\x9f\x98\x80", 4);
    kind_is("{\"type\": \"\\ue000\"}", "\xee\x80\x80", 3);
    kind_is("{\"type\": \"zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac\"}", "zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac", 11);
    kind_is("{\"type\": \"a\\u0000b\"}", "a\0b", 3);
    kind_is("{\"type\": \"\"}", "", 0);
    /* Lone or misordered surrogates fail in a decoded string. */
    CHECK(!ok(&kind_type, "{\"type\": \"\\ud800\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\udc00\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\ud800x\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\ud800\\n\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\ud800\\ud800\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\ude00\\ud83d\"}"));
    /* Bad escapes, raw control characters, invalid UTF-8. */
    CHECK(!ok(&kind_type, "{\"type\": \"\\x\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\u12\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"\\u12g4\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"a\nb\"}"));
    CHECK(!ok(&kind_type, "{\"type\": \"a\tb\"}"));
    CHECK(ok(&kind_type, "{\"type\": \"a\x7f\"}"));
    const char *bad_utf8[] = {"\xff", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                              "\xf5\x80\x80\x80", "\xc3", "\xe6\x97", "\x80"};
    char json[64];
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        snprintf(json, sizeof json, "{\"type\": \"%s\"}", bad_utf8[i]);
        CHECK(!ok(&kind_type, json));
        /* ... also in a key, which is always decoded ... */
        snprintf(json, sizeof json, "{\"%s\": 1, \"type\": \"a\"}", bad_utf8[i]);
        CHECK(!ok(&kind_type, json));
        /* ... but not inside a skipped value, which serde_json does not check. */
        snprintf(json, sizeof json, "{\"x\": [\"%s\"], \"type\": \"a\"}", bad_utf8[i]);
        CHECK(ok(&kind_type, json));
        snprintf(json, sizeof json, "{\"x\": {\"%s\": 1}, \"type\": \"a\"}", bad_utf8[i]);
        CHECK(ok(&kind_type, json));
    }
    kind_is("{\"type\": \"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf\"}", "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xed\x9f\xbf",
            11);
}

static void test_skipped_values(void) {
    CHECK(ok(&kind_type,
             "{\"type\": \"OrderShipped\", \"order_id\": 7, \"deep\": {\"a\": [1.5, 1e400, -0, 18446744073709551616, "
             "\"\\ud800\"]}}"));
    CHECK(ok(&kind_type, "{\"type\": \"a\", \"x\": [true, false, null, {}, [], {\"a\": {\"b\": []}}, -1.5e-3, 0.0]}"));
    const char *bad[] = {"[1,]", "[1 2]", "{\"a\" 1}", "{\"a\": 1,}", "{1: 2}", "[", "{", "{\"a\"", "{\"a\":",
                         "tru", "nul", "01", "1.", "-", "\"\\x\"", "\"a\nb\"", "[}", "{]", "]", "\"abc",
                         "{\"a\": 1 \"b\": 2}", "\"\\u00\""};
    char json[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(json, sizeof json, "{\"x\": %s, \"type\": \"a\"}", bad[i]);
        if (ok(&kind_type, json)) {
            fprintf(stderr, "accepted skipped value %s\n", bad[i]);
            CHECK(!"refused");
        } else {
            passed++;
        }
    }
    /* Deep nesting is skipped without recursion. */
    for (size_t depth = 5000; depth <= 100000; depth *= 20) {
        pj_buf b = {0};
        pj_buf_puts(&b, "{\"type\": \"Nested\", \"x\": ");
        for (size_t i = 0; i < depth; i++)
            pj_buf_push(&b, '[');
        pj_buf_puts(&b, "1.5");
        for (size_t i = 0; i < depth; i++)
            pj_buf_push(&b, ']');
        pj_buf_push(&b, '}');
        CHECK(ok_len(&kind_type, (const char *)b.ptr, b.len));
        b.len -= 2; /* one bracket short */
        pj_buf_push(&b, '}');
        CHECK(!ok_len(&kind_type, (const char *)b.ptr, b.len));
        pj_buf_free(&b);
    }
}

static void test_writer(void) {
    pj_json w = {0};
    pj_json_object_begin(&w);
    pj_json_key(&w, "customer");
    pj_json_string(&w, "q\"b\\c\n\x01\x7f\xe2\x80\xa8/\b\f\r\t\x1f\0", 18);
    pj_json_key(&w, "amount_cents");
    pj_json_u64(&w, UINT64_MAX);
    pj_json_key(&w, "zero");
    pj_json_u64(&w, 0);
    pj_json_key(&w, "neg");
    pj_json_i64(&w, INT64_MIN);
    pj_json_key(&w, "cancelled");
    pj_json_bool(&w, false);
    pj_json_key(&w, "owner");
    pj_json_null(&w);
    pj_json_key(&w, "list");
    pj_json_array_begin(&w);
    pj_json_array_begin(&w);
    pj_json_array_end(&w);
    pj_json_object_begin(&w);
    pj_json_object_end(&w);
    pj_json_cstring(&w, "zo\xc3\xab");
    pj_json_bool(&w, true);
    pj_json_array_end(&w);
    pj_json_object_end(&w);
    const char *want = "{\"customer\":\"q\\\"b\\\\c\\n\\u0001\x7f\xe2\x80\xa8/\\b\\f\\r\\t\\u001f\\u0000\","
                       "\"amount_cents\":18446744073709551615,\"zero\":0,\"neg\":-9223372036854775808,"
                       "\"cancelled\":false,\"owner\":null,\"list\":[[],{},\"zo\xc3\xab\",true]}";
    CHECK(w.buf.len == strlen(want) && memcmp(w.buf.ptr, want, w.buf.len) == 0);
    if (!(w.buf.len == strlen(want) && memcmp(w.buf.ptr, want, w.buf.len) == 0))
        fprintf(stderr, "got  %.*s\nwant %s\n", (int)w.buf.len, (const char *)w.buf.ptr, want);
    pj_buf_free(&w.buf);

    /* A struct, fields in declaration order; round trip. */
    Misc m = {pj_str_from("ann"), 7, true};
    pj_json_struct(&w, &misc_type, &m);
    CHECK(w.buf.len == 33 && memcmp(w.buf.ptr, "{\"owner\":\"ann\",\"n\":7,\"flag\":true}", 33) == 0);
    Misc back;
    CHECK(pj_json_decode(w.buf.ptr, w.buf.len, &misc_type, &back) == NULL);
    CHECK(pj_str_eq(back.owner, "ann") && back.n == 7 && back.flag);
    pj_json_free(&misc_type, &back);
    pj_str_free(&m.owner);
    pj_buf_clear(&w.buf);
    pj_json_struct(&w, &misc_type, &m);
    CHECK(w.buf.len == 32 && memcmp(w.buf.ptr, "{\"owner\":null,\"n\":7,\"flag\":true}", 32) == 0);
    pj_buf_free(&w.buf);
}

static void test_errors_and_buffers(void) {
    pj_error *e = pj_fail("event %d failed: %s", 3, "why");
    CHECK(e->kind == PJ_FAILED && strcmp(e->message, "event 3 failed: why") == 0);
    pj_error_free(e);
    e = pj_bad_args("n");
    CHECK(e->kind == PJ_BAD_ARGS);
    pj_error_free(e);
    e = pj_unknown_query();
    CHECK(e->kind == PJ_UNKNOWN_QUERY);
    pj_error_free(e);
    pj_str id = {"a\0b", 3};
    pj_buf key = pj_key("order/", id);
    CHECK(key.len == 9 && memcmp(key.ptr, "order/a\0b", 9) == 0);
    pj_buf_printf(&key, "/%u", 42u);
    CHECK(key.len == 12 && memcmp(key.ptr + 9, "/42", 3) == 0);
    pj_buf_free(&key);
    /* A failed decode leaves nothing to free. */
    Placed p;
    e = pj_json_decode((const uint8_t *)"{\"order_id\": \"1\", \"customer\": 5}", 32, &placed_type, &p);
    CHECK(e != NULL && p.order_id.ptr == NULL && p.customer.ptr == NULL);
    pj_error_free(e);
}

int main(void) {
    test_struct_shapes();
    test_integers();
    test_strings();
    test_skipped_values();
    test_writer();
    test_errors_and_buffers();
    printf("json: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
