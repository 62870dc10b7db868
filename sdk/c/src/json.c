/*
 * Errors, buffers and JSON for the Projector C SDK. Pure C (no host calls),
 * so it is unit-tested natively (sdk/c/tests/test_json.c).
 *
 * The reader follows serde_json 1.x with serde's derive, rule for rule, for
 * the value kinds the SDK decodes (see pj_field_type): which inputs it
 * accepts and refuses matters, the wording of its messages does not. It
 * never recurses, so skipping an unknown field nested 100,000 deep is fine,
 * as it is in serde_json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------- errors ---------------- */

static void *xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size == 0 ? 1 : size);
    if (p == NULL)
        abort();
    return p;
}

pj_error *pj_error_new(pj_error_kind kind, const char *format, va_list args) {
    pj_error *error = xrealloc(NULL, sizeof *error);
    error->kind = kind;
    va_list copy;
    va_copy(copy, args);
    char probe[1];
    int n = vsnprintf(probe, sizeof probe, format, copy);
    va_end(copy);
    if (n < 0)
        n = 0;
    error->message = xrealloc(NULL, (size_t)n + 1);
    vsnprintf(error->message, (size_t)n + 1, format, args);
    return error;
}

pj_error *pj_fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    pj_error *error = pj_error_new(PJ_FAILED, format, args);
    va_end(args);
    return error;
}

pj_error *pj_bad_args(const char *format, ...) {
    va_list args;
    va_start(args, format);
    pj_error *error = pj_error_new(PJ_BAD_ARGS, format, args);
    va_end(args);
    return error;
}

pj_error *pj_unknown_query(void) {
    pj_error *error = pj_fail("unknown query");
    error->kind = PJ_UNKNOWN_QUERY;
    return error;
}

void pj_error_free(pj_error *error) {
    if (error != NULL) {
        free(error->message);
        free(error);
    }
}

/* ---------------- strings and buffers ---------------- */

void pj_str_free(pj_str *s) {
    free(s->ptr);
    s->ptr = NULL;
    s->len = 0;
}

bool pj_str_eq(pj_str s, const char *text) {
    size_t n = strlen(text);
    return s.ptr != NULL && s.len == n && memcmp(s.ptr, text, n) == 0;
}

pj_str pj_str_from(const char *text) {
    size_t n = strlen(text);
    pj_str s = {xrealloc(NULL, n + 1), n};
    memcpy(s.ptr, text, n + 1);
    return s;
}

pj_view pj_str_view(pj_str s) {
    pj_view v = {(const uint8_t *)s.ptr, s.len};
    return v;
}

pj_view pj_cstr_view(const char *text) {
    pj_view v = {(const uint8_t *)text, strlen(text)};
    return v;
}

static void buf_reserve(pj_buf *buf, size_t extra) {
    if (buf->cap - buf->len >= extra)
        return;
    size_t cap = buf->cap < 64 ? 64 : buf->cap;
    while (cap - buf->len < extra)
        cap *= 2;
    buf->ptr = xrealloc(buf->ptr, cap);
    buf->cap = cap;
}

void pj_buf_append(pj_buf *buf, const void *bytes, size_t len) {
    if (len == 0)
        return;
    buf_reserve(buf, len);
    memcpy(buf->ptr + buf->len, bytes, len);
    buf->len += len;
}

void pj_buf_puts(pj_buf *buf, const char *text) { pj_buf_append(buf, text, strlen(text)); }

void pj_buf_push(pj_buf *buf, uint8_t byte) {
    buf_reserve(buf, 1);
    buf->ptr[buf->len++] = byte;
}

void pj_buf_printf(pj_buf *buf, const char *format, ...) {
    va_list args, copy;
    va_start(args, format);
    va_copy(copy, args);
    char probe[1];
    int n = vsnprintf(probe, sizeof probe, format, copy);
    va_end(copy);
    if (n > 0) {
        buf_reserve(buf, (size_t)n + 1);
        vsnprintf((char *)buf->ptr + buf->len, (size_t)n + 1, format, args);
        buf->len += (size_t)n;
    }
    va_end(args);
}

void pj_buf_clear(pj_buf *buf) { buf->len = 0; }

void pj_buf_free(pj_buf *buf) {
    free(buf->ptr);
    buf->ptr = NULL;
    buf->len = buf->cap = 0;
}

pj_view pj_buf_view(const pj_buf *buf) {
    pj_view v = {buf->ptr, buf->len};
    return v;
}

pj_buf pj_key(const char *prefix, pj_str s) {
    pj_buf key = {0};
    pj_buf_puts(&key, prefix);
    pj_buf_append(&key, s.ptr, s.len);
    return key;
}

/* ---------------- JSON writer ---------------- */

/* A comma is due before a value or key unless the output is empty or ends a
 * key (':') or opens a container. */
static void json_sep(pj_json *w) {
    if (w->buf.len == 0)
        return;
    uint8_t last = w->buf.ptr[w->buf.len - 1];
    if (last != ':' && last != '[' && last != '{')
        pj_buf_push(&w->buf, ',');
}

void pj_json_object_begin(pj_json *w) {
    json_sep(w);
    pj_buf_push(&w->buf, '{');
}

void pj_json_object_end(pj_json *w) { pj_buf_push(&w->buf, '}'); }

void pj_json_array_begin(pj_json *w) {
    json_sep(w);
    pj_buf_push(&w->buf, '[');
}

void pj_json_array_end(pj_json *w) { pj_buf_push(&w->buf, ']'); }

static void json_escaped(pj_buf *buf, const uint8_t *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    pj_buf_push(buf, '"');
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        char esc = 0;
        if (c == '"')
            esc = '"';
        else if (c == '\\')
            esc = '\\';
        else if (c < 0x20)
            esc = c == '\b' ? 'b' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\f' ? 'f' : c == '\r' ? 'r' : 'u';
        else
            continue;
        pj_buf_append(buf, s + start, i - start);
        start = i + 1;
        if (esc == 'u') {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pj_buf_append(buf, u, 6);
        } else {
            char e[2] = {'\\', esc};
            pj_buf_append(buf, e, 2);
        }
    }
    pj_buf_append(buf, s + start, len - start);
    pj_buf_push(buf, '"');
}

void pj_json_key(pj_json *w, const char *name) {
    json_sep(w);
    json_escaped(&w->buf, (const uint8_t *)name, strlen(name));
    pj_buf_push(&w->buf, ':');
}

void pj_json_string(pj_json *w, const void *utf8, size_t len) {
    json_sep(w);
    json_escaped(&w->buf, utf8, len);
}

void pj_json_cstring(pj_json *w, const char *text) { pj_json_string(w, text, strlen(text)); }

void pj_json_str(pj_json *w, pj_str s) {
    if (s.ptr == NULL)
        pj_json_null(w);
    else
        pj_json_string(w, s.ptr, s.len);
}

void pj_json_u64(pj_json *w, uint64_t n) {
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    json_sep(w);
    pj_buf_append(&w->buf, digits + i, sizeof digits - i);
}

void pj_json_i64(pj_json *w, int64_t n) {
    if (n >= 0) {
        pj_json_u64(w, (uint64_t)n);
        return;
    }
    json_sep(w);
    pj_buf_push(&w->buf, '-');
    /* Write the magnitude without the comma check: the '-' is not a value end. */
    uint64_t m = (uint64_t)0 - (uint64_t)n;
    char digits[20];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    pj_buf_append(&w->buf, digits + i, sizeof digits - i);
}

void pj_json_bool(pj_json *w, bool b) {
    json_sep(w);
    pj_buf_puts(&w->buf, b ? "true" : "false");
}

void pj_json_null(pj_json *w) {
    json_sep(w);
    pj_buf_puts(&w->buf, "null");
}

void pj_json_struct(pj_json *w, const pj_struct *type, const void *value) {
    const char *base = value;
    pj_json_object_begin(w);
    for (size_t i = 0; i < type->count; i++) {
        const pj_field *f = &type->fields[i];
        const void *p = base + f->offset;
        pj_json_key(w, f->name);
        switch (f->type) {
        case PJ_STR:
        case PJ_OPT_STR:
            pj_json_str(w, *(const pj_str *)p);
            break;
        case PJ_U64:
            pj_json_u64(w, *(const uint64_t *)p);
            break;
        case PJ_U32:
            pj_json_u64(w, *(const uint32_t *)p);
            break;
        case PJ_BOOL:
            pj_json_bool(w, *(const bool *)p);
            break;
        }
    }
    pj_json_object_end(w);
}

/* ---------------- JSON reader ---------------- */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const char *type; /* struct name, for messages */
} reader;

static pj_error *syntax(reader *r, const char *what) {
    return pj_fail("invalid JSON for %s: %s", r->type, what);
}

static void skip_ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

/* The next byte after whitespace, or -1 at the end. */
static int peek_ws(reader *r) {
    skip_ws(r);
    return r->p < r->end ? *r->p : -1;
}

/* Length of the valid UTF-8 sequence at s (Rust's str::from_utf8 rules), or
 * 0 when it is invalid or truncated. */
static size_t utf8_len(const uint8_t *s, const uint8_t *end) {
    size_t avail = (size_t)(end - s);
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    uint8_t lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

static int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex4(reader *r, uint32_t *out) {
    if (r->end - r->p < 4)
        return false;
    uint32_t n = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(r->p[i]);
        if (h < 0)
            return false;
        n = n * 16 + (uint32_t)h;
    }
    r->p += 4;
    *out = n;
    return true;
}

static void push_utf8(pj_buf *out, uint32_t cp) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    pj_buf_append(out, b, n);
}

/*
 * A string whose opening quote was consumed. With `out`, decodes it as
 * serde_json's parse_str does (UTF-8 validated, escapes decoded, surrogates
 * paired); without, skips it as ignore_str does (escapes checked for form
 * only, bytes not validated). Raw control characters fail either way.
 */
static pj_error *read_string(reader *r, pj_buf *out) {
    const uint8_t *start = r->p;
    for (;;) {
        if (r->p >= r->end)
            return syntax(r, "EOF while parsing a string");
        uint8_t c = *r->p;
        if (c == '"' || c == '\\') {
            if (out)
                pj_buf_append(out, start, (size_t)(r->p - start));
            r->p++;
            if (c == '"')
                return NULL;
            if (r->p >= r->end)
                return syntax(r, "EOF while parsing a string");
            uint8_t e = *r->p++;
            uint8_t plain = 0;
            switch (e) {
            case '"': plain = '"'; break;
            case '\\': plain = '\\'; break;
            case '/': plain = '/'; break;
            case 'b': plain = '\b'; break;
            case 'f': plain = '\f'; break;
            case 'n': plain = '\n'; break;
            case 'r': plain = '\r'; break;
            case 't': plain = '\t'; break;
            case 'u': {
                uint32_t n;
                if (!read_hex4(r, &n))
                    return syntax(r, "invalid escape");
                if (!out)
                    break;
                if (n >= 0xDC00 && n <= 0xDFFF)
                    return syntax(r, "lone leading surrogate in hex escape");
                if (n >= 0xD800 && n <= 0xDBFF) {
                    uint32_t n2;
                    if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                        return syntax(r, "unexpected end of hex escape");
                    r->p += 2;
                    if (!read_hex4(r, &n2))
                        return syntax(r, "invalid escape");
                    if (n2 < 0xDC00 || n2 > 0xDFFF)
                        return syntax(r, "lone leading surrogate in hex escape");
                    n = 0x10000 + ((n - 0xD800) << 10) + (n2 - 0xDC00);
                }
                push_utf8(out, n);
                break;
            }
            default:
                return syntax(r, "invalid escape");
            }
            if (plain && out)
                pj_buf_push(out, plain);
            start = r->p;
        } else if (c < 0x20) {
            return syntax(r, "control character (\\u0000-\\u001F) found while parsing a string");
        } else if (c < 0x80 || !out) {
            r->p++;
        } else {
            size_t n = utf8_len(r->p, r->end);
            if (n == 0)
                return syntax(r, "invalid unicode code point");
            r->p += n;
        }
    }
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/*
 * A number at r->p, by JSON's grammar as serde_json reads it. Reports
 * whether it is a plain non-negative integer (no '-', fraction or exponent)
 * and, if so, its value, with `overflow` past 2^64-1.
 */
static pj_error *read_number(reader *r, bool *plain, uint64_t *value, bool *overflow) {
    *plain = true;
    *value = 0;
    *overflow = false;
    if (r->p < r->end && *r->p == '-') {
        *plain = false;
        r->p++;
    }
    if (r->p >= r->end || !is_digit(*r->p))
        return syntax(r, "invalid number");
    if (*r->p == '0') {
        r->p++;
        if (r->p < r->end && is_digit(*r->p))
            return syntax(r, "invalid number");
    } else {
        while (r->p < r->end && is_digit(*r->p)) {
            uint64_t d = (uint64_t)(*r->p - '0');
            if (*value > (UINT64_MAX - d) / 10)
                *overflow = true;
            else
                *value = *value * 10 + d;
            r->p++;
        }
    }
    if (r->p < r->end && *r->p == '.') {
        *plain = false;
        r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return syntax(r, "invalid number");
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        *plain = false;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return syntax(r, "invalid number");
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    }
    return NULL;
}

static bool read_literal(reader *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* Skips one value of any shape and depth without recursion, validating it as
 * serde_json's ignore_value does. */
static pj_error *skip_value(reader *r) {
    pj_buf stack = {0};
    pj_error *error = NULL;
    for (;;) {
        /* A value. */
        int c = peek_ws(r);
        bool done_value = true;
        switch (c) {
        case 'n':
            if (!read_literal(r, "null"))
                error = syntax(r, "expected ident");
            break;
        case 't':
            if (!read_literal(r, "true"))
                error = syntax(r, "expected ident");
            break;
        case 'f':
            if (!read_literal(r, "false"))
                error = syntax(r, "expected ident");
            break;
        case '"':
            r->p++;
            error = read_string(r, NULL);
            break;
        case '[':
            r->p++;
            if (peek_ws(r) == ']') {
                r->p++;
            } else {
                pj_buf_push(&stack, '[');
                done_value = false;
            }
            break;
        case '{':
            r->p++;
            c = peek_ws(r);
            if (c == '}') {
                r->p++;
            } else if (c != '"') {
                error = syntax(r, "key must be a string");
            } else {
                r->p++;
                pj_buf_push(&stack, '{');
                error = read_string(r, NULL);
                if (!error && peek_ws(r) != ':')
                    error = syntax(r, "expected ':'");
                if (!error)
                    r->p++;
                done_value = false;
            }
            break;
        default:
            if (c == '-' || is_digit(c)) {
                bool plain, overflow;
                uint64_t v;
                error = read_number(r, &plain, &v, &overflow);
            } else {
                error = syntax(r, c < 0 ? "EOF while parsing a value" : "expected value");
            }
        }
        if (error)
            break;
        if (!done_value)
            continue;
        /* After a value: close containers or move to the next element. */
        bool next = false;
        while (stack.len > 0 && !next) {
            uint8_t top = stack.ptr[stack.len - 1];
            c = peek_ws(r);
            if (c == ',') {
                r->p++;
                if (top == '{') {
                    if (peek_ws(r) != '"') {
                        error = syntax(r, "key must be a string");
                        break;
                    }
                    r->p++;
                    error = read_string(r, NULL);
                    if (!error && peek_ws(r) != ':')
                        error = syntax(r, "expected ':'");
                    if (error)
                        break;
                    r->p++;
                }
                next = true;
            } else if ((top == '[' && c == ']') || (top == '{' && c == '}')) {
                r->p++;
                stack.len--;
            } else {
                error = syntax(r, c < 0 ? "EOF while parsing a list or object" : "expected ',' or end");
                break;
            }
        }
        if (error || !next)
            break;
    }
    pj_buf_free(&stack);
    return error;
}

static pj_error *read_field(reader *r, const pj_field *f, void *base) {
    void *p = (char *)base + f->offset;
    int c = peek_ws(r);
    switch (f->type) {
    case PJ_OPT_STR:
        if (c == 'n') {
            if (!read_literal(r, "null"))
                return syntax(r, "expected ident");
            ((pj_str *)p)->ptr = NULL;
            return NULL;
        }
        /* fall through */
    case PJ_STR: {
        if (c != '"')
            return pj_fail("invalid type for field `%s` of %s: expected a string", f->name, r->type);
        r->p++;
        pj_buf s = {0};
        pj_error *error = read_string(r, &s);
        if (error) {
            pj_buf_free(&s);
            return error;
        }
        pj_buf_push(&s, 0);
        ((pj_str *)p)->ptr = (char *)s.ptr;
        ((pj_str *)p)->len = s.len - 1;
        return NULL;
    }
    case PJ_U64:
    case PJ_U32: {
        if (c != '-' && !is_digit(c))
            return pj_fail("invalid type for field `%s` of %s: expected an unsigned integer", f->name, r->type);
        bool plain, overflow;
        uint64_t v;
        PJ_TRY(read_number(r, &plain, &v, &overflow));
        if (!plain || overflow)
            return pj_fail("invalid value for field `%s` of %s: expected %s", f->name, r->type,
                           f->type == PJ_U64 ? "u64" : "u32");
        if (f->type == PJ_U32) {
            if (v > UINT32_MAX)
                return pj_fail("invalid value for field `%s` of %s: integer `%llu`, expected u32", f->name,
                               r->type, (unsigned long long)v);
            *(uint32_t *)p = (uint32_t)v;
        } else {
            *(uint64_t *)p = v;
        }
        return NULL;
    }
    case PJ_BOOL:
        if (read_literal(r, "true"))
            *(bool *)p = true;
        else if (read_literal(r, "false"))
            *(bool *)p = false;
        else
            return pj_fail("invalid type for field `%s` of %s: expected a boolean", f->name, r->type);
        return NULL;
    }
    return syntax(r, "unknown field type");
}

static pj_error *read_struct(reader *r, const pj_struct *type, void *out) {
    int c = peek_ws(r);
    if (c == '[') {
        /* serde's derive also reads a struct from an array of its fields. */
        r->p++;
        for (size_t i = 0; i < type->count; i++) {
            c = peek_ws(r);
            if (i > 0) {
                if (c != ',')
                    return pj_fail("invalid length %zu, expected struct %s with %zu elements", i, type->name,
                                   type->count);
                r->p++;
                c = peek_ws(r);
            }
            if (c == ']' || c < 0)
                return pj_fail("invalid length %zu, expected struct %s with %zu elements", i, type->name,
                               type->count);
            PJ_TRY(read_field(r, &type->fields[i], out));
        }
        if (peek_ws(r) != ']')
            return syntax(r, "trailing characters in array");
        r->p++;
        return NULL;
    }
    if (c != '{')
        return pj_fail("invalid type: expected struct %s", type->name);
    r->p++;
    /* Which fields were seen (the examples' structs are small; a struct of
     * more than 64 fields is refused by the first check). */
    uint64_t seen = 0;
    if (type->count > 64)
        return pj_fail("struct %s has more than 64 fields", type->name);
    c = peek_ws(r);
    if (c == '}') {
        r->p++;
    } else {
        pj_buf key = {0};
        pj_error *error = NULL;
        for (;;) {
            if (peek_ws(r) != '"') {
                error = syntax(r, "key must be a string");
                break;
            }
            r->p++;
            pj_buf_clear(&key);
            if ((error = read_string(r, &key)))
                break;
            if (peek_ws(r) != ':') {
                error = syntax(r, "expected ':'");
                break;
            }
            r->p++;
            size_t i = 0;
            for (; i < type->count; i++) {
                const char *name = type->fields[i].name;
                if (strlen(name) == key.len && memcmp(name, key.ptr, key.len) == 0)
                    break;
            }
            if (i < type->count) {
                if (seen & ((uint64_t)1 << i)) {
                    error = pj_fail("duplicate field `%s` in %s", type->fields[i].name, type->name);
                    break;
                }
                seen |= (uint64_t)1 << i;
                if ((error = read_field(r, &type->fields[i], out)))
                    break;
            } else if (type->deny_unknown_fields) {
                error = pj_fail("unknown field `%.*s` in %s, expected none", (int)key.len, (const char *)key.ptr,
                                type->name);
                break;
            } else if ((error = skip_value(r))) {
                break;
            }
            c = peek_ws(r);
            if (c == ',') {
                r->p++;
                continue;
            }
            if (c == '}') {
                r->p++;
                break;
            }
            error = syntax(r, c < 0 ? "EOF while parsing an object" : "expected ',' or '}'");
            break;
        }
        pj_buf_free(&key);
        if (error)
            return error;
    }
    for (size_t i = 0; i < type->count; i++) {
        if (!(seen & ((uint64_t)1 << i)) && type->fields[i].type != PJ_OPT_STR)
            return pj_fail("missing field `%s` in %s", type->fields[i].name, type->name);
    }
    return NULL;
}

void pj_json_free(const pj_struct *type, void *value) {
    for (size_t i = 0; i < type->count; i++) {
        const pj_field *f = &type->fields[i];
        if (f->type == PJ_STR || f->type == PJ_OPT_STR)
            pj_str_free((pj_str *)((char *)value + f->offset));
    }
}

void pj_json_zero(const pj_struct *type, void *out) {
    for (size_t i = 0; i < type->count; i++) {
        const pj_field *f = &type->fields[i];
        size_t n = f->type == PJ_U64 ? 8 : f->type == PJ_U32 ? 4 : f->type == PJ_BOOL ? 1 : sizeof(pj_str);
        memset((char *)out + f->offset, 0, n);
    }
}

pj_error *pj_json_decode(const uint8_t *json, size_t len, const pj_struct *type, void *out) {
    reader r = {json, json + len, type->name};
    /* Zero only the fields: `out` may be a struct with more members. */
    pj_json_zero(type, out);
    pj_error *error = read_struct(&r, type, out);
    if (!error && peek_ws(&r) >= 0)
        error = syntax(&r, "trailing characters");
    if (error) {
        pj_json_free(type, out);
    }
    return error;
}
