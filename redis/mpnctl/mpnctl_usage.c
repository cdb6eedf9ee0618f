/*
 * mpnctl usage ID [--reset BENEFIT]: the usage of a partner's metered
 * benefits (spec section 12).  Usage keys are
 * <usage prefix><id>:<benefit>:<period start, Unix seconds>, hashes with
 * "used" and one "idem:<token>" field per recorded token, made by the
 * library's mpn_consume.  Found with SCAN (never KEYS): on the server,
 * or with --cluster on every primary, since each benefit and period is a
 * key of its own slot; then each key is read (or cleared) on its node.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mpnctl.h"
#include "mpn_record.h"
#include "mpn_time.h"


typedef struct {
    char       *key;
    char       *benefit;        /* points into key */
    int64_t     start;
    long long   used;
    long long   tokens;
    long long   expires;        /* EXPIRETIME: -1 none, -2 gone */
} mpnctl_usage_row_t;


typedef struct {
    mpnctl_usage_row_t  *rows;
    size_t               n;
    size_t               cap;
    size_t               skip;      /* length of <prefix><id>: */
} mpnctl_usage_t;


static int mpnctl_usage_scan(mpnctl_t *ctl, const char *id,
    mpnctl_usage_t *u);
static int mpnctl_usage_page(mpnctl_t *ctl, redisReply *keys, void *arg);
static void mpnctl_usage_dedupe(mpnctl_usage_t *u);
static int mpnctl_usage_read(mpnctl_t *ctl, mpnctl_usage_t *u);
static redisReply *mpnctl_usage_command(mpnctl_t *ctl,
    mpnctl_usage_row_t *row, const char *cmd, const char *field);
static int mpnctl_usage_reset(mpnctl_t *ctl, const char *id,
    mpnctl_usage_t *u);
static void mpnctl_usage_print(mpnctl_t *ctl, const mpnctl_usage_row_t *row);
static int mpnctl_usage_cmp(const void *a, const void *b);


int
mpnctl_usage_show(mpnctl_t *ctl, int argc, char **argv)
{
    int              rc;
    size_t           i;
    mpnctl_usage_t   u;

    (void) argc;

    if (!mpn_partner_id_valid(argv[0], strlen(argv[0]))) {
        mpnctl_error("usage: BAD_ARGUMENT partner id \"%s\" does not match "
                     "^[A-Za-z0-9._-]{1,64}$", argv[0]);
        return 1;
    }

    memset(&u, 0, sizeof(mpnctl_usage_t));

    rc = mpnctl_usage_scan(ctl, argv[0], &u);

    if (rc == 0 && ctl->reset != NULL) {
        rc = mpnctl_usage_reset(ctl, argv[0], &u);

    } else if (rc == 0) {
        rc = mpnctl_usage_read(ctl, &u);
        if (rc == 0) {
            for (i = 0; i < u.n; i++) {
                if (u.rows[i].expires != -2) {      /* expired meanwhile */
                    mpnctl_usage_print(ctl, &u.rows[i]);
                }
            }
            if (u.n == 0) {
                mpnctl_error("usage: no usage recorded for %s", argv[0]);
            }
        }
    }

    for (i = 0; i < u.n; i++) {
        free(u.rows[i].key);
    }
    free(u.rows);

    return rc == 0 ? 0 : 1;
}


/* every usage key of the partner: <prefix><id>:<benefit>:<start> */
static int
mpnctl_usage_scan(mpnctl_t *ctl, const char *id, mpnctl_usage_t *u)
{
    int             rc;
    char           *pattern, *more, node[300];
    size_t          i;
    mpnctl_conn_t  *c;

    more = malloc(strlen(id) + 2);
    if (more == NULL) {
        mpnctl_error("out of memory");
        exit(1);
    }
    sprintf(more, "%s:", id);
    pattern = mpnctl_glob_prefix(ctl->usage_prefix, more);
    free(more);

    u->skip = strlen(ctl->usage_prefix) + strlen(id) + 1;
    rc = 0;

    for (i = 0; rc == 0 && i < mpnctl_primaries(ctl); i++) {
        c = mpnctl_primary(ctl, i, node, sizeof(node));
        rc = (c != NULL)
             ? mpnctl_scan(ctl, c, "usage", pattern, mpnctl_usage_page, u)
             : -1;
    }

    free(pattern);

    if (rc == 0) {
        /* by benefit and period; SCAN may return a key twice */
        qsort(u->rows, u->n, sizeof(mpnctl_usage_row_t), mpnctl_usage_cmp);
        mpnctl_usage_dedupe(u);
    }

    return rc;
}


static int
mpnctl_usage_page(mpnctl_t *ctl, redisReply *keys, void *arg)
{
    char                *colon, *end, *key;
    size_t               i, skip;
    long long            start;
    mpnctl_usage_t      *u = arg;
    mpnctl_usage_row_t  *row;

    (void) ctl;

    skip = u->skip;

    for (i = 0; i < keys->elements; i++) {
        if (keys->element[i]->len <= skip) {
            continue;
        }

        key = strndup(keys->element[i]->str, keys->element[i]->len);
        if (key == NULL) {
            mpnctl_error("out of memory");
            exit(1);
        }

        /* <benefit>:<start>: the benefit may hold ':', the start not */
        colon = strrchr(key + skip, ':');
        start = (colon != NULL) ? strtoll(colon + 1, &end, 10) : -1;
        if (colon == NULL || colon == key + skip || colon[1] == '\0'
            || *end != '\0' || start < 0)
        {
            free(key);          /* not a usage key of this form */
            continue;
        }

        if (u->n == u->cap) {
            u->cap = u->cap ? u->cap * 2 : 16;
            u->rows = realloc(u->rows, u->cap * sizeof(mpnctl_usage_row_t));
            if (u->rows == NULL) {
                mpnctl_error("out of memory");
                exit(1);
            }
        }

        row = &u->rows[u->n++];
        memset(row, 0, sizeof(mpnctl_usage_row_t));
        row->key = key;
        *colon = '\0';
        row->benefit = key + skip;
        row->start = start;
    }

    return 0;
}


static void
mpnctl_usage_dedupe(mpnctl_usage_t *u)
{
    size_t  i, n;

    for (i = 0, n = 0; i < u->n; i++) {
        if (n > 0 && mpnctl_usage_cmp(&u->rows[n - 1], &u->rows[i]) == 0) {
            free(u->rows[i].key);
            continue;
        }
        u->rows[n++] = u->rows[i];
    }

    u->n = n;
}


/* used, the number of tokens and the expiry of each key, on its node */
static int
mpnctl_usage_read(mpnctl_t *ctl, mpnctl_usage_t *u)
{
    int           k;
    size_t        i;
    redisReply   *r;

    static const char  *cmds[3] = { "HGET", "HLEN", "EXPIRETIME" };

    for (i = 0; i < u->n; i++) {
        for (k = 0; k < 3; k++) {
            r = mpnctl_usage_command(ctl, &u->rows[i], cmds[k],
                                     k == 0 ? "used" : NULL);
            if (r == NULL) {
                return -1;
            }
            if (mpnctl_reply_error(ctl, r, "usage") != 0) {
                freeReplyObject(r);
                return -1;
            }
            switch (k) {
            case 0:
                u->rows[i].used = (r->type == REDIS_REPLY_STRING)
                                  ? strtoll(r->str, NULL, 10) : 0;
                break;
            case 1:
                u->rows[i].tokens = (r->integer > 0) ? r->integer - 1 : 0;
                break;
            default:
                u->rows[i].expires = r->integer;
            }
            freeReplyObject(r);
        }
    }

    return 0;
}


/*
 * CMD <the row's key> [FIELD] on the key's node (redirects followed with
 * --cluster); NULL when no connection could be had (already said).
 */
static redisReply *
mpnctl_usage_command(mpnctl_t *ctl, mpnctl_usage_row_t *row, const char *cmd,
    const char *field)
{
    size_t        klen;
    const char   *argv[3];
    redisReply   *r;

    /* the key text up to the benefit was cut at the last ':' */
    klen = strlen(row->key);
    row->key[klen] = ':';

    argv[0] = cmd;
    argv[1] = row->key;
    argv[2] = field;

    r = mpnctl_key_command(ctl, row->key, strlen(row->key),
                           field != NULL ? 3 : 2, argv, NULL);

    row->key[klen] = '\0';

    return r;
}


/* --reset BENEFIT: UNLINK every period's key of that benefit */
static int
mpnctl_usage_reset(mpnctl_t *ctl, const char *id, mpnctl_usage_t *u)
{
    size_t        i, n;
    long long     gone;
    redisReply   *r;

    n = 0;
    gone = 0;

    for (i = 0; i < u->n; i++) {
        if (strcmp(u->rows[i].benefit, ctl->reset) != 0) {
            continue;
        }

        r = mpnctl_usage_command(ctl, &u->rows[i], "UNLINK", NULL);
        if (r == NULL) {
            return -1;
        }

        if (mpnctl_reply_error(ctl, r, "usage --reset") != 0) {
            freeReplyObject(r);
            return -1;
        }

        gone += r->integer;
        freeReplyObject(r);
        n++;
    }

    if (n == 0) {
        mpnctl_error("usage --reset: no usage of %s recorded for %s",
                     ctl->reset, id);
        return -1;
    }

    printf("reset %s of %s: %lld period%s cleared\n", ctl->reset, id, gone,
           gone == 1 ? "" : "s");

    return 0;
}


static void
mpnctl_usage_print(mpnctl_t *ctl, const mpnctl_usage_row_t *row)
{
    char     start[MPN_TIME_LEN + 1], expires[MPN_TIME_LEN + 1];
    json_t  *o;

    mpn_time_format(row->start, start);
    if (row->expires >= 0) {
        mpn_time_format(row->expires, expires);
    } else {
        strcpy(expires, "never");
    }

    if (!ctl->json) {
        printf("%s\t%s\tused=%lld\ttokens=%lld\texpires=%s\n", row->benefit,
               start, row->used, row->tokens, expires);
        return;
    }

    o = json_pack("{s:s, s:s, s:I, s:I, s:s}", "benefit", row->benefit,
                  "period_start", start, "used", (json_int_t) row->used,
                  "tokens", (json_int_t) row->tokens, "expires", expires);
    mpnctl_print_json(o);
}


static int
mpnctl_usage_cmp(const void *a, const void *b)
{
    int                        rc;
    const mpnctl_usage_row_t  *x = a, *y = b;

    rc = strcmp(x->benefit, y->benefit);
    if (rc != 0) {
        return rc;
    }

    return (x->start > y->start) - (x->start < y->start);
}
