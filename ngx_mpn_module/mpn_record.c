/*
 * The partner record (spec section 5): JSON bytes in, a compact flat blob
 * out.  No nginx dependency.
 *
 * The JSON is walked twice by the same code: the first pass validates it
 * and counts grants, benefits and name bytes, the second fills a blob
 * allocated in one piece from those counts.  Only the fields the decision
 * reads are looked at; anything else is ignored.  jansson rejects duplicate
 * keys (JSON_REJECT_DUPLICATES) and nesting deeper than its parser limit
 * (JSON_PARSER_MAX_DEPTH, 2048 in jansson 2.14) with an error, not a crash,
 * and the size cap keeps any parse small.
 */

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mpn_err.h"
#include "mpn_record.h"
#include "mpn_time.h"
#include "mpn_json_arena.h"


typedef struct {
    mpn_record_t   *rec;        /* NULL in the counting pass */
    mpn_grant_t    *grants;
    mpn_benefit_t  *benefits;
    uint32_t        ngrants;
    uint32_t        nbenefits;
    uint32_t        names;      /* name bytes; in the fill pass the offset
                                   of the next name */
    char           *err;
    size_t          err_len;
} mpn_record_ctx_t;


static int mpn_record_walk(mpn_record_ctx_t *ctx, json_t *root);
static int mpn_record_parse_grants(mpn_record_ctx_t *ctx, json_t *obj,
    const char *what, unsigned kind);
static int mpn_record_parse_grant(mpn_record_ctx_t *ctx, const char *what,
    const char *name, size_t name_len, json_t *v, unsigned kind);
static int mpn_record_parse_benefits(mpn_record_ctx_t *ctx, const char *what,
    const char *name, size_t name_len, json_t *v, mpn_grant_t *g);
static int mpn_record_time(json_t *v, int64_t *out);
static int mpn_record_name_valid(const char *s, size_t len);
static uint32_t mpn_record_add_name(mpn_record_ctx_t *ctx, const char *s,
    size_t len);
static void mpn_record_error(mpn_record_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


mpn_record_t *
mpn_record_parse(const char *json, size_t len, const char *id,
    size_t id_len, char *err, size_t err_len)
{
    size_t             size, i;
    json_t            *root, *v;
    json_error_t       jerr;
    mpn_record_t      *rec;
    mpn_record_ctx_t   ctx;

    memset(&ctx, 0, sizeof(mpn_record_ctx_t));
    ctx.err = err;
    ctx.err_len = err_len;

    if (err != NULL && err_len > 0) {
        err[0] = '\0';
    }

    if (len > MPN_RECORD_MAX_JSON) {
        mpn_record_error(&ctx, "too large");
        return NULL;
    }

    /* the tree is gone before this returns: its nodes come from the
     * arena, not from malloc() one by one */
    root = mpn_json_arena_load(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        mpn_record_error(&ctx, "not JSON at line %d: %s", jerr.line,
                         jerr.text);
        goto sanitize;
    }

    if (!json_is_object(root)) {
        mpn_record_error(&ctx, "not a JSON object");
        goto failed;
    }

    v = json_object_get(root, "v");

    if (v == NULL || !json_is_integer(v) || json_integer_value(v) != 1) {
        mpn_record_error(&ctx, "wrong \"v\"");
        goto failed;
    }

    v = json_object_get(root, "partner_id");

    if (v == NULL || !json_is_string(v)
        || json_string_length(v) != id_len
        || memcmp(json_string_value(v), id, id_len) != 0)
    {
        mpn_record_error(&ctx, "partner_id mismatch");
        goto failed;
    }

    if (mpn_record_walk(&ctx, root) != 0) {
        goto failed;
    }

    size = sizeof(mpn_record_t) + ctx.ngrants * sizeof(mpn_grant_t)
           + ctx.nbenefits * sizeof(mpn_benefit_t) + ctx.names;

    rec = calloc(1, size);

    if (rec == NULL) {
        mpn_record_error(&ctx, "out of memory");
        goto failed;
    }

    rec->size = (uint32_t) size;
    rec->ngrants = ctx.ngrants;
    rec->nbenefits = ctx.nbenefits;

    ctx.rec = rec;
    ctx.grants = (mpn_grant_t *) (rec + 1);
    ctx.benefits = (mpn_benefit_t *) (ctx.grants + ctx.ngrants);
    ctx.names = (uint32_t) (size - ctx.names);
    ctx.ngrants = 0;
    ctx.nbenefits = 0;

    if (mpn_record_walk(&ctx, root) != 0) {
        /* cannot happen: the first pass has validated the same tree */
        free(rec);
        goto failed;
    }

    mpn_json_arena_free(root);

    return rec;

failed:

    mpn_json_arena_free(root);

sanitize:

    /* the text may quote the input: keep it printable ASCII for logs */

    if (err != NULL) {
        for (i = 0; i < err_len && err[i] != '\0'; i++) {
            if ((unsigned char) err[i] < 0x20
                || (unsigned char) err[i] > 0x7e)
            {
                err[i] = '?';
            }
        }
    }

    return NULL;
}


int
mpn_partner_id_valid(const char *id, size_t len)
{
    size_t  i;
    char    c;

    if (id == NULL || len == 0 || len > MPN_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = id[i];

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


static int
mpn_record_walk(mpn_record_ctx_t *ctx, json_t *root)
{
    int            suspended, network;
    int64_t        rev;
    json_t        *v;
    const char    *s;

    suspended = 0;
    v = json_object_get(root, "status");

    if (v != NULL) {
        s = json_is_string(v) ? json_string_value(v) : NULL;

        if (s != NULL && strcmp(s, "active") == 0
            && json_string_length(v) == 6)
        {
            suspended = 0;

        } else if (s != NULL && strcmp(s, "suspended") == 0
                   && json_string_length(v) == 9)
        {
            suspended = 1;

        } else {
            mpn_record_error(ctx,
                             "status: not \"active\" or \"suspended\"");
            return -1;
        }
    }

    network = 0;
    v = json_object_get(root, "network");

    if (v != NULL) {
        if (!json_is_boolean(v)) {
            mpn_record_error(ctx, "network: not a boolean");
            return -1;
        }

        network = json_is_true(v);
    }

    rev = 0;
    v = json_object_get(root, "rev");

    if (v != NULL) {
        if (!json_is_integer(v)) {
            mpn_record_error(ctx, "rev: not an integer");
            return -1;
        }

        rev = json_integer_value(v);
    }

    if (ctx->rec != NULL) {
        ctx->rec->network = (uint8_t) network;
        ctx->rec->suspended = (uint8_t) suspended;
        ctx->rec->rev = rev;
    }

    v = json_object_get(root, "subscriptions");

    if (v != NULL
        && mpn_record_parse_grants(ctx, v, "subscriptions",
                                   MPN_GRANT_SUBSCRIPTION)
           != 0)
    {
        return -1;
    }

    v = json_object_get(root, "competencies");

    if (v != NULL
        && mpn_record_parse_grants(ctx, v, "competencies",
                                   MPN_GRANT_COMPETENCY)
           != 0)
    {
        return -1;
    }

    return 0;
}


static int
mpn_record_parse_grants(mpn_record_ctx_t *ctx, json_t *obj,
    const char *what, unsigned kind)
{
    size_t       name_len;
    json_t      *v;
    const char  *name;

    if (!json_is_object(obj)) {
        mpn_record_error(ctx, "%s: not an object", what);
        return -1;
    }

    json_object_keylen_foreach(obj, name, name_len, v) {
        if (mpn_record_parse_grant(ctx, what, name, name_len, v, kind)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
mpn_record_parse_grant(mpn_record_ctx_t *ctx, const char *what,
    const char *name, size_t name_len, json_t *v, unsigned kind)
{
    int           n;
    json_t       *f;
    const char   *s;
    mpn_grant_t   g;

    if (!mpn_record_name_valid(name, name_len)) {
        mpn_record_error(ctx, "%s: bad name", what);
        return -1;
    }

    n = (int) name_len;

    if (ctx->ngrants >= MPN_RECORD_MAX_GRANTS) {
        mpn_record_error(ctx, "too many grants (over %d)",
                         MPN_RECORD_MAX_GRANTS);
        return -1;
    }

    if (!json_is_object(v)) {
        mpn_record_error(ctx, "%s.%.*s: not an object", what, n, name);
        return -1;
    }

    memset(&g, 0, sizeof(mpn_grant_t));
    g.kind = (uint8_t) kind;
    g.status = MPN_SUB_ACTIVE;

    if (kind == MPN_GRANT_SUBSCRIPTION) {

        f = json_object_get(v, "status");
        s = (f != NULL && json_is_string(f)) ? json_string_value(f) : NULL;

        if (s == NULL) {
            mpn_record_error(ctx, "%s.%.*s.status: %s", what, n, name,
                             f == NULL ? "missing" : "not a string");
            return -1;
        }

        if (strcmp(s, "active") == 0 && json_string_length(f) == 6) {
            g.status = MPN_SUB_ACTIVE;

        } else if (strcmp(s, "cancelled") == 0
                   && json_string_length(f) == 9)
        {
            g.status = MPN_SUB_CANCELLED;

        } else if (strcmp(s, "expired") == 0 && json_string_length(f) == 7)
        {
            g.status = MPN_SUB_EXPIRED;

        } else {
            mpn_record_error(ctx, "%s.%.*s.status: not \"active\", "
                             "\"cancelled\" or \"expired\"", what, n, name);
            return -1;
        }

        f = json_object_get(v, "auto_renew");

        if (f != NULL) {
            if (!json_is_boolean(f)) {
                mpn_record_error(ctx, "%s.%.*s.auto_renew: not a boolean",
                                 what, n, name);
                return -1;
            }

            g.auto_renew = (uint8_t) json_is_true(f);
        }

        f = json_object_get(v, "start");

        if (f != NULL && mpn_record_time(f, &g.start) != 0) {
            mpn_record_error(ctx, "%s.%.*s.start: not an RFC 3339 time",
                             what, n, name);
            return -1;
        }

    } else {

        f = json_object_get(v, "level");
        s = (f != NULL && json_is_string(f)) ? json_string_value(f) : NULL;

        if (s == NULL) {
            mpn_record_error(ctx, "%s.%.*s.level: %s", what, n, name,
                             f == NULL ? "missing" : "not a string");
            return -1;
        }

        if (strcmp(s, "silver") == 0 && json_string_length(f) == 6) {
            g.level = MPN_TIER_SILVER;

        } else if (strcmp(s, "gold") == 0 && json_string_length(f) == 4) {
            g.level = MPN_TIER_GOLD;

        } else {
            mpn_record_error(ctx, "%s.%.*s.level: not \"silver\" or \"gold\"",
                             what, n, name);
            return -1;
        }
    }

    f = json_object_get(v, "end");

    if (f == NULL) {
        if (kind == MPN_GRANT_SUBSCRIPTION) {
            mpn_record_error(ctx, "%s.%.*s.end: missing", what, n, name);
            return -1;
        }

    } else {
        if (mpn_record_time(f, &g.end) != 0) {
            mpn_record_error(ctx, "%s.%.*s.end: not an RFC 3339 time",
                             what, n, name);
            return -1;
        }

        g.has_end = 1;
    }

    if (mpn_record_parse_benefits(ctx, what, name, name_len,
                                  json_object_get(v, "benefits"), &g)
        != 0)
    {
        return -1;
    }

    g.name = mpn_record_add_name(ctx, name, name_len);
    g.name_len = (uint16_t) name_len;

    if (ctx->rec != NULL) {
        ctx->grants[ctx->ngrants] = g;
    }

    ctx->ngrants++;

    return 0;
}


static int
mpn_record_parse_benefits(mpn_record_ctx_t *ctx, const char *what,
    const char *name, size_t name_len, json_t *v, mpn_grant_t *g)
{
    int             n;
    size_t          key_len;
    json_t         *q;
    const char     *key;
    mpn_benefit_t  *b;

    n = (int) name_len;

    g->benefits = ctx->nbenefits;
    g->nbenefits = 0;

    if (v == NULL) {
        return 0;
    }

    if (!json_is_object(v)) {
        mpn_record_error(ctx, "%s.%.*s.benefits: not an object",
                         what, n, name);
        return -1;
    }

    json_object_keylen_foreach(v, key, key_len, q) {

        if (!mpn_record_name_valid(key, key_len)) {
            mpn_record_error(ctx, "%s.%.*s.benefits: bad name",
                             what, n, name);
            return -1;
        }

        if (!json_is_integer(q) || json_integer_value(q) < 0) {
            mpn_record_error(ctx, "%s.%.*s.benefits.%.*s: "
                             "not a non-negative integer",
                             what, n, name, (int) key_len, key);
            return -1;
        }

        if (ctx->nbenefits >= MPN_RECORD_MAX_BENEFITS) {
            mpn_record_error(ctx, "too many benefits (over %d)",
                             MPN_RECORD_MAX_BENEFITS);
            return -1;
        }

        if (ctx->rec != NULL) {
            b = &ctx->benefits[ctx->nbenefits];
            b->name = mpn_record_add_name(ctx, key, key_len);
            b->name_len = (uint32_t) key_len;
            b->quantity = json_integer_value(q);

        } else {
            (void) mpn_record_add_name(ctx, key, key_len);
        }

        ctx->nbenefits++;
        g->nbenefits++;
    }

    return 0;
}


static int
mpn_record_time(json_t *v, int64_t *out)
{
    if (!json_is_string(v)) {
        return -1;
    }

    return mpn_time_parse(json_string_value(v), json_string_length(v), out);
}


static int
mpn_record_name_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > MPN_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* counts the name in the first pass, copies it in the second */

static uint32_t
mpn_record_add_name(mpn_record_ctx_t *ctx, const char *s, size_t len)
{
    uint32_t  off;

    off = ctx->names;
    ctx->names += (uint32_t) len + 1;

    if (ctx->rec != NULL) {
        memcpy((char *) ctx->rec + off, s, len);
        ((char *) ctx->rec)[off + len] = '\0';
    }

    return off;
}


static void
mpn_record_error(mpn_record_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    mpn_verr(ctx->err, ctx->err_len, fmt, args);
    va_end(args);
}
