/*
 * mpnctl expiring: the partners to remind.  SCANs the record keys (never
 * KEYS, so a large keyspace does not stall Redis), GETs each page and lists
 * the active subscriptions whose end falls in [now, now + within).
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
    char     *id;
    char     *offer;
    int64_t   end;
    int       auto_renew;
} mpnctl_expiring_row_t;


typedef struct {
    mpnctl_conn_t          *conn;
    mpnctl_expiring_row_t  *rows;
    size_t                  nrows;
    size_t                  cap;
    size_t                  nbad;
} mpnctl_expiring_t;


static int mpnctl_expiring_page(mpnctl_t *ctl, redisReply *keys,
    void *arg);
static void mpnctl_expiring_record(mpnctl_t *ctl, mpnctl_expiring_t *ex,
    const char *key, size_t key_len, const redisReply *value);
static int mpnctl_expiring_cmp(const void *a, const void *b);
static void mpnctl_expiring_print(mpnctl_t *ctl,
    const mpnctl_expiring_row_t *row);


int
mpnctl_expiring(mpnctl_t *ctl, int argc, char **argv)
{
    int                 rc;
    char               *pattern, node[300];
    size_t              i;
    mpnctl_conn_t      *c;
    mpnctl_expiring_t   ex;

    (void) argc;
    (void) argv;

    pattern = mpnctl_glob_prefix(ctl->prefix, "");
    memset(&ex, 0, sizeof(mpnctl_expiring_t));
    rc = 0;

    /* the server, or with --cluster every primary: each holds its keys */

    for (i = 0; rc == 0 && i < mpnctl_primaries(ctl); i++) {
        c = mpnctl_primary(ctl, i, node, sizeof(node));
        if (c == NULL) {
            rc = 1;
            break;
        }

        ex.conn = c;
        rc = mpnctl_scan(ctl, c, "expiring", pattern, mpnctl_expiring_page,
                         &ex)
             == 0 ? 0 : 1;
    }

    free(pattern);

    if (rc == 0) {
        /* soonest first; SCAN may return a key twice: print it once */
        qsort(ex.rows, ex.nrows, sizeof(mpnctl_expiring_row_t),
              mpnctl_expiring_cmp);

        for (i = 0; i < ex.nrows; i++) {
            if (i > 0 && mpnctl_expiring_cmp(&ex.rows[i - 1], &ex.rows[i])
                         == 0)
            {
                continue;
            }
            mpnctl_expiring_print(ctl, &ex.rows[i]);
        }

        if (ex.nbad > 0) {
            mpnctl_error("expiring: %zu unreadable record%s skipped",
                         ex.nbad, ex.nbad == 1 ? "" : "s");
        }
    }

    for (i = 0; i < ex.nrows; i++) {
        free(ex.rows[i].id);
        free(ex.rows[i].offer);
    }
    free(ex.rows);

    return rc;
}


/*
 * One SCAN page: GET its records, pipelined (not MGET: a cluster node
 * refuses one across slots), keep the subscriptions in the window.
 */
static int
mpnctl_expiring_page(mpnctl_t *ctl, redisReply *keys, void *arg)
{
    size_t              i, lens[2];
    const char         *argv[2];
    redisReply         *value;
    mpnctl_expiring_t  *ex = arg;

    argv[0] = "GET";
    lens[0] = 3;

    for (i = 0; i < keys->elements; i++) {
        argv[1] = keys->element[i]->str;
        lens[1] = keys->element[i]->len;

        if (mpnctl_append(ex->conn, 2, argv, lens) != 0) {
            mpnctl_error("expiring: GET: Redis connection to %s: %s",
                         mpnctl_conn_name(ex->conn),
                         mpnctl_conn_errstr(ex->conn));
            return -1;
        }
    }

    for (i = 0; i < keys->elements; i++) {
        if (mpnctl_get_reply(ex->conn, &value) != 0) {
            mpnctl_error("expiring: GET: Redis connection to %s: %s",
                         mpnctl_conn_name(ex->conn),
                         mpnctl_conn_errstr(ex->conn));
            return -1;
        }

        if (value->type == REDIS_REPLY_ERROR) {
            (void) mpnctl_reply_error(ctl, value, "expiring: GET");
            freeReplyObject(value);
            return -1;
        }

        mpnctl_expiring_record(ctl, ex, keys->element[i]->str,
                               keys->element[i]->len, value);
        freeReplyObject(value);
    }

    return 0;
}


static void
mpnctl_expiring_record(mpnctl_t *ctl, mpnctl_expiring_t *ex,
    const char *key, size_t key_len, const redisReply *value)
{
    size_t                  plen;
    int64_t                 end;
    json_t                 *rec, *subs, *sub, *v;
    const char             *offer, *id;
    json_error_t            jerr;
    mpnctl_expiring_row_t  *row;

    if (value->type != REDIS_REPLY_STRING) {
        return;                 /* deleted since SCAN, or not a string */
    }

    plen = strlen(ctl->prefix);
    id = key + plen;

    if (key_len <= plen || !mpn_partner_id_valid(id, key_len - plen)) {
        return;                 /* some other key under the prefix */
    }

    rec = json_loadb(value->str, value->len, JSON_REJECT_DUPLICATES, &jerr);
    if (rec == NULL || !json_is_object(rec)) {
        json_decref(rec);
        ex->nbad++;
        return;
    }

    subs = json_object_get(rec, "subscriptions");

    json_object_foreach(subs, offer, sub) {
        v = json_object_get(sub, "status");
        if (!json_is_string(v)
            || strcmp(json_string_value(v), "active") != 0)
        {
            continue;
        }

        v = json_object_get(sub, "end");
        if (!json_is_string(v)
            || mpn_time_parse(json_string_value(v), json_string_length(v),
                              &end) != 0)
        {
            ex->nbad++;
            continue;
        }

        if (end < ctl->now || end >= ctl->now + ctl->within) {
            continue;
        }

        if (ex->nrows == ex->cap) {
            ex->cap = ex->cap ? ex->cap * 2 : 64;
            ex->rows = realloc(ex->rows,
                               ex->cap * sizeof(mpnctl_expiring_row_t));
            if (ex->rows == NULL) {
                mpnctl_error("out of memory");
                exit(1);
            }
        }

        row = &ex->rows[ex->nrows++];
        row->id = strndup(id, key_len - plen);
        row->offer = strdup(offer);
        row->end = end;
        row->auto_renew = json_is_true(json_object_get(sub, "auto_renew"));

        if (row->id == NULL || row->offer == NULL) {
            mpnctl_error("out of memory");
            exit(1);
        }
    }

    json_decref(rec);
}


static int
mpnctl_expiring_cmp(const void *a, const void *b)
{
    int                           rc;
    const mpnctl_expiring_row_t  *x = a, *y = b;

    if (x->end != y->end) {
        return x->end < y->end ? -1 : 1;
    }

    rc = strcmp(x->id, y->id);
    if (rc != 0) {
        return rc;
    }

    return strcmp(x->offer, y->offer);
}


static void
mpnctl_expiring_print(mpnctl_t *ctl, const mpnctl_expiring_row_t *row)
{
    char     end[MPN_TIME_LEN + 1];
    json_t  *o;
    int64_t  days;

    mpn_time_format(row->end, end);
    days = mpn_days_floor(row->end - ctl->now);

    if (!ctl->json) {
        printf("%s\t%s\t%s\t%" PRId64 "\tauto-renew=%s\n", row->id,
               row->offer, end, days, row->auto_renew ? "on" : "off");
        return;
    }

    o = json_pack("{s:s, s:s, s:s, s:I, s:b}", "partner_id", row->id,
                  "offer", row->offer, "end", end, "days_left",
                  (json_int_t) days, "auto_renew", row->auto_renew);
    mpnctl_print_json(o);
}
