/*
 * Redis Cluster without I/O: key slots, the slot map, redirects.
 *
 * The slot map is one allocation: counts, a slot -> node table and the
 * nodes, primaries first.  A replica's "primary" is the index of the node
 * it replicates, so the replicas of a slot's primary are found without a
 * second table.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpn_cluster.h"
#include "mpn_err.h"


/* while parsing: a slot whose primary has no known endpoint */
#define MPN_CLUSTER_UNREACHABLE  0xfffe


static int mpn_cluster_entry_valid(const redisReply *e, char *err,
    size_t err_len);
static int mpn_cluster_node_addr(const redisReply *n, const char *origin,
    size_t origin_len, const char **host, size_t *host_len,
    unsigned *port);
static int mpn_cluster_add_node(mpn_cluster_map_t *map, size_t max,
    const char *host, size_t host_len, unsigned port, int primary);
static int mpn_cluster_parse_uint(const char *s, size_t len,
    unsigned max, unsigned *out);


uint16_t
mpn_cluster_crc16(const char *buf, size_t len)
{
    size_t    i;
    unsigned  bit;
    uint16_t  crc;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) ((unsigned char) buf[i] << 8);

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


unsigned
mpn_cluster_slot(const char *key, size_t len)
{
    size_t  s, e;

    /* the first '{', then the first '}' after it; an empty tag hashes all */

    for (s = 0; s < len; s++) {
        if (key[s] == '{') {
            break;
        }
    }

    if (s < len) {
        for (e = s + 1; e < len; e++) {
            if (key[e] == '}') {
                break;
            }
        }

        if (e < len && e != s + 1) {
            return mpn_cluster_crc16(key + s + 1, e - s - 1) & 16383;
        }
    }

    return mpn_cluster_crc16(key, len) & 16383;
}


mpn_cluster_map_t *
mpn_cluster_map_parse(const redisReply *reply, const char *origin_host,
    size_t origin_len, char *err, size_t err_len)
{
    int                  p, idx;
    size_t               i, j, max, slot;
    unsigned             port, start, end;
    const char          *host;
    size_t               host_len;
    const redisReply    *e;
    mpn_cluster_map_t   *map;

    if (err != NULL && err_len > 0) {
        err[0] = '\0';
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        mpn_err(err, err_len, "CLUSTER SLOTS reply is not an array");
        return NULL;
    }

    if (reply->elements == 0) {
        mpn_err(err, err_len, "CLUSTER SLOTS names no slot");
        return NULL;
    }

    max = 0;

    for (i = 0; i < reply->elements; i++) {
        if (mpn_cluster_entry_valid(reply->element[i], err, err_len) != 0) {
            return NULL;
        }

        max += reply->element[i]->elements - 2;

        if (max > MPN_CLUSTER_MAX_NODES) {
            mpn_err(err, err_len,
                              "CLUSTER SLOTS names over %d nodes",
                              MPN_CLUSTER_MAX_NODES);
            return NULL;
        }
    }

    if (origin_host == NULL || origin_len > MPN_CLUSTER_HOST_MAX) {
        origin_host = "";
        origin_len = 0;
    }

    map = malloc(sizeof(mpn_cluster_map_t) + max * sizeof(mpn_cluster_node_t));
    if (map == NULL) {
        mpn_err(err, err_len, "out of memory");
        return NULL;
    }

    map->nnodes = 0;
    map->nprimaries = 0;
    map->nslots = 0;

    for (slot = 0; slot < MPN_CLUSTER_SLOTS; slot++) {
        map->slot[slot] = MPN_CLUSTER_NONE;
    }

    /* the primaries and their slots */

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];
        start = (unsigned) e->element[0]->integer;
        end = (unsigned) e->element[1]->integer;

        p = mpn_cluster_node_addr(e->element[2], origin_host, origin_len,
                                  &host, &host_len, &port);
        if (p == -1) {
            mpn_err(err, err_len,
                              "bad node address in CLUSTER SLOTS range "
                              "%u-%u", start, end);
            goto failed;
        }

        idx = -1;

        if (p == 0) {
            idx = mpn_cluster_add_node(map, max, host, host_len, port, -1);
            map->nprimaries = map->nnodes;
        }

        for (slot = start; slot <= end; slot++) {
            if (map->slot[slot] != MPN_CLUSTER_NONE) {
                goto twice;
            }

            if (idx >= 0) {
                map->slot[slot] = (uint16_t) idx;
                map->nslots++;

            } else {
                map->slot[slot] = MPN_CLUSTER_UNREACHABLE;
            }
        }
    }

    for (slot = 0; slot < MPN_CLUSTER_SLOTS; slot++) {
        if (map->slot[slot] == MPN_CLUSTER_UNREACHABLE) {
            map->slot[slot] = MPN_CLUSTER_NONE;
        }
    }

    /* the replicas, each tied to its primary */

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (mpn_cluster_node_addr(e->element[2], origin_host, origin_len,
                                  &host, &host_len, &port)
            != 0)
        {
            continue;
        }

        p = mpn_cluster_map_find(map, host, host_len, port);

        for (j = 3; j < e->elements; j++) {
            if (mpn_cluster_node_addr(e->element[j], origin_host, origin_len,
                                      &host, &host_len, &port)
                != 0)
            {
                continue;
            }

            idx = mpn_cluster_map_find(map, host, host_len, port);

            if (idx >= 0 && (size_t) idx < map->nprimaries) {
                mpn_err(err, err_len,
                                  "node %.*s:%u is a primary and a replica",
                                  (int) host_len, host, port);
                goto failed;
            }

            if (idx >= 0 && map->nodes[idx].primary != p) {
                mpn_err(err, err_len,
                                  "node %.*s:%u replicates two primaries",
                                  (int) host_len, host, port);
                goto failed;
            }

            if (idx < 0) {
                (void) mpn_cluster_add_node(map, max, host, host_len, port,
                                            p);
            }
        }
    }

    return map;

twice:

    mpn_err(err, err_len,
                      "slot %zu in two CLUSTER SLOTS ranges", slot);

failed:

    free(map);

    return NULL;
}


int
mpn_cluster_map_find(const mpn_cluster_map_t *map, const char *host,
    size_t host_len, unsigned port)
{
    size_t  i;

    for (i = 0; i < map->nnodes; i++) {
        if (map->nodes[i].port == port && map->nodes[i].host_len == host_len
            && memcmp(map->nodes[i].host, host, host_len) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


int
mpn_cluster_redirect_parse(const char *s, size_t len,
    mpn_cluster_redirect_t *r)
{
    size_t       i, sp, colon;
    const char  *addr;

    memset(r, 0, sizeof(mpn_cluster_redirect_t));

    if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        r->kind = MPN_CLUSTER_MOVED;
        s += 6;
        len -= 6;

    } else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
        r->kind = MPN_CLUSTER_ASK;
        s += 4;
        len -= 4;

    } else {
        return -1;
    }

    for (sp = 0; sp < len; sp++) {
        if (s[sp] == ' ') {
            break;
        }
    }

    if (sp == len
        || mpn_cluster_parse_uint(s, sp, MPN_CLUSTER_SLOTS - 1, &r->slot)
           != 0)
    {
        return -1;
    }

    /* host:port, split at the last ':' (an IPv6 host is not bracketed) */

    addr = s + sp + 1;
    len -= sp + 1;
    colon = len;

    for (i = 0; i < len; i++) {
        if (addr[i] == ':') {
            colon = i;
        }
    }

    if (colon == len
        || mpn_cluster_parse_uint(addr + colon + 1, len - colon - 1, 65535,
                                  &r->port)
           != 0
        || r->port == 0
        || colon > MPN_CLUSTER_HOST_MAX
        || (colon > 0 && mpn_cluster_host_valid(addr, colon) != 0))
    {
        return -1;
    }

    memcpy(r->host, addr, colon);
    r->host[colon] = '\0';
    r->host_len = colon;

    return 0;
}


int
mpn_cluster_host_valid(const char *host, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0 || len > MPN_CLUSTER_HOST_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) host[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '.' || c == '-' || c == '_' || c == ':' || c == '%')
        {
            continue;
        }

        return -1;
    }

    return 0;
}


/* [start, end, primary, replica...], each node [host, port, ...] */

static int
mpn_cluster_entry_valid(const redisReply *e, char *err, size_t err_len)
{
    size_t             j;
    const redisReply  *n;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3
        || e->element[0]->type != REDIS_REPLY_INTEGER
        || e->element[1]->type != REDIS_REPLY_INTEGER)
    {
        mpn_err(err, err_len, "malformed CLUSTER SLOTS range");
        return -1;
    }

    if (e->element[0]->integer < 0
        || e->element[1]->integer >= MPN_CLUSTER_SLOTS
        || e->element[0]->integer > e->element[1]->integer)
    {
        mpn_err(err, err_len,
                          "bad slot range %lld-%lld in CLUSTER SLOTS",
                          e->element[0]->integer, e->element[1]->integer);
        return -1;
    }

    for (j = 2; j < e->elements; j++) {
        n = e->element[j];

        if (n->type != REDIS_REPLY_ARRAY || n->elements < 2
            || (n->element[0]->type != REDIS_REPLY_STRING
                && n->element[0]->type != REDIS_REPLY_NIL)
            || n->element[1]->type != REDIS_REPLY_INTEGER
            || n->element[1]->integer <= 0
            || n->element[1]->integer > 65535)
        {
            mpn_err(err, err_len,
                              "malformed node in CLUSTER SLOTS range "
                              "%lld-%lld", e->element[0]->integer,
                              e->element[1]->integer);
            return -1;
        }
    }

    return 0;
}


/*
 * 0 and the address of a node entry; 1 for a node whose endpoint is "?"
 * (unknown: no client can reach it); -1 for a malformed host.
 */

static int
mpn_cluster_node_addr(const redisReply *n, const char *origin,
    size_t origin_len, const char **host, size_t *host_len, unsigned *port)
{
    const redisReply  *h;

    h = n->element[0];
    *port = (unsigned) n->element[1]->integer;

    if (h->type == REDIS_REPLY_NIL || h->len == 0) {
        *host = origin;
        *host_len = origin_len;
        return origin_len > 0 ? 0 : 1;
    }

    if (h->len == 1 && h->str[0] == '?') {
        return 1;
    }

    if (mpn_cluster_host_valid(h->str, h->len) != 0) {
        return -1;
    }

    *host = h->str;
    *host_len = h->len;

    return 0;
}


/* the node's index, added if new; primary -1 makes it a primary */

static int
mpn_cluster_add_node(mpn_cluster_map_t *map, size_t max, const char *host,
    size_t host_len, unsigned port, int primary)
{
    int                  idx;
    mpn_cluster_node_t  *n;

    idx = mpn_cluster_map_find(map, host, host_len, port);
    if (idx >= 0 || map->nnodes == max) {
        return idx;
    }

    n = &map->nodes[map->nnodes];
    memcpy(n->host, host, host_len);
    n->host[host_len] = '\0';
    n->host_len = host_len;
    n->port = port;
    n->primary = (uint16_t) (primary >= 0 ? (size_t) primary : map->nnodes);

    return (int) map->nnodes++;
}


static int
mpn_cluster_parse_uint(const char *s, size_t len, unsigned max,
    unsigned *out)
{
    size_t    i;
    unsigned  v;

    if (len == 0 || len > 5) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (unsigned) (s[i] - '0');
    }

    if (v > max) {
        return -1;
    }

    *out = v;

    return 0;
}

