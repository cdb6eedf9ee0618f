/*
 * mpnctl --cluster: the slot map from the --redis address (a seed node),
 * a connection per node opened when first used, each key's command on its
 * node with MOVED and ASK followed, and the primaries for what runs on
 * every one of them (expiring, functions load, the library check).
 * Without --cluster every function here falls back to the one connection
 * of mpnctl_connect().
 *
 * A node's connection is made by mpnctl_connect() itself, pointed for the
 * moment at the node's address, so AUTH and TLS (the CA, a client
 * certificate, --tls-name) are the same for every node.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpnctl.h"
#include "mpn_cluster.h"


#define MPNCTL_REDIRECTS  5


struct mpnctl_cluster_s {
    mpn_cluster_map_t   *map;
    mpnctl_conn_t       **nodes;         /* by the map's index */
    mpnctl_conn_t       **others;        /* nodes a redirect named */
    size_t               nothers;
};


static int mpnctl_cluster_load(mpnctl_t *ctl, mpnctl_conn_t *from);
static mpnctl_conn_t *mpnctl_cluster_connect(mpnctl_t *ctl,
    const char *host, int port);
static mpnctl_conn_t *mpnctl_cluster_at(mpnctl_t *ctl, const char *host,
    size_t host_len, unsigned port);


/* the map, asked of the --redis address; 0 or -1 (said why) */

int
mpnctl_cluster_open(mpnctl_t *ctl)
{
    mpnctl_conn_t  *seed;

    if (ctl->sentinel != NULL || ctl->naddrs != 1) {
        mpnctl_error("BAD_ARGUMENT --cluster takes one --redis address (a "
                     "seed node), and no --sentinel");
        return -1;
    }

    if (ctl->addrs[0].unix_path != NULL) {
        mpnctl_error("BAD_ARGUMENT --cluster needs a host:port seed, not "
                     "unix:%s", ctl->addrs[0].unix_path);
        return -1;
    }

    if (ctl->db != 0) {
        mpnctl_error("BAD_ARGUMENT --cluster: a Redis Cluster has only "
                     "database 0");
        return -1;
    }

    ctl->cluster_state = calloc(1, sizeof(mpnctl_cluster_t));
    if (ctl->cluster_state == NULL) {
        mpnctl_error("out of memory");
        return -1;
    }

    seed = mpnctl_connect(ctl);
    if (seed == NULL) {
        return -1;
    }

    return mpnctl_cluster_load(ctl, seed);
}


void
mpnctl_cluster_close(mpnctl_t *ctl)
{
    size_t             i;
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    if (cl == NULL) {
        return;
    }

    for (i = 0; cl->map != NULL && i < cl->map->nnodes; i++) {
        if (cl->nodes[i] != NULL && cl->nodes[i] != ctl->redis) {
            mpnctl_conn_close(cl->nodes[i]);
        }
    }

    for (i = 0; i < cl->nothers; i++) {
        mpnctl_conn_close(cl->others[i]);
    }

    free(cl->others);
    free(cl->nodes);
    free(cl->map);
    free(cl);
    ctl->cluster_state = NULL;
}


/* the map from a node; connections already open stay with their node */

static int
mpnctl_cluster_load(mpnctl_t *ctl, mpnctl_conn_t *from)
{
    int                 j;
    char                err[256];
    size_t              i;
    const char         *argv[2];
    redisReply         *r;
    mpnctl_conn_t     **nodes;
    mpnctl_addr_t      *seed = &ctl->addrs[0];
    mpn_cluster_map_t  *map;
    mpnctl_cluster_t   *cl = ctl->cluster_state;

    argv[0] = "CLUSTER";
    argv[1] = "SLOTS";

    r = mpnctl_command(from, 2, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        mpnctl_error("CLUSTER SLOTS on %s: %s (is --redis a node of a Redis "
                     "Cluster?)", mpnctl_conn_name(from),
                     r != NULL ? r->str : mpnctl_conn_errstr(from));
        freeReplyObject(r);
        return -1;
    }

    /* a node announced with no address is at the seed's */
    map = mpn_cluster_map_parse(r, seed->host, strlen(seed->host), err,
                                sizeof(err));
    freeReplyObject(r);

    if (map == NULL) {
        mpnctl_error("CLUSTER SLOTS: %s", err);
        return -1;
    }

    nodes = calloc(map->nnodes ? map->nnodes : 1, sizeof(mpnctl_conn_t *));
    if (nodes == NULL) {
        free(map);
        mpnctl_error("out of memory");
        return -1;
    }

    for (i = 0; cl->map != NULL && i < cl->map->nnodes; i++) {
        if (cl->nodes[i] == NULL) {
            continue;
        }

        j = mpn_cluster_map_find(map, cl->map->nodes[i].host,
                                 cl->map->nodes[i].host_len,
                                 cl->map->nodes[i].port);
        if (j >= 0) {
            nodes[j] = cl->nodes[i];

        } else if (cl->nodes[i] != ctl->redis) {
            mpnctl_conn_close(cl->nodes[i]);
        }
    }

    if (cl->map == NULL) {
        /* the seed's own connection serves as its node's */
        j = mpn_cluster_map_find(map, seed->host, strlen(seed->host),
                                 (unsigned) seed->port);
        if (j >= 0) {
            nodes[j] = ctl->redis;
        }
    }

    free(cl->nodes);
    free(cl->map);
    cl->nodes = nodes;
    cl->map = map;

    return 0;
}


/* the node's connection (made now if need be), NULL when it cannot be */

mpnctl_conn_t *
mpnctl_cluster_node(mpnctl_t *ctl, size_t i)
{
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    if (cl->nodes[i] == NULL) {
        cl->nodes[i] = mpnctl_cluster_connect(ctl, cl->map->nodes[i].host,
                                              (int) cl->map->nodes[i].port);
    }

    return cl->nodes[i];
}


/* mpnctl_connect() aimed at another address for one call */

static mpnctl_conn_t *
mpnctl_cluster_connect(mpnctl_t *ctl, const char *host, int port)
{
    int             saved_port;
    const char     *saved_host;
    mpnctl_conn_t  *saved, *c;

    saved = ctl->redis;
    saved_host = ctl->addrs[0].host;
    saved_port = ctl->addrs[0].port;

    ctl->redis = NULL;
    ctl->addrs[0].host = host;
    ctl->addrs[0].port = port;

    c = mpnctl_connect(ctl);

    if (c == NULL && ctl->redis != NULL) {
        /* connected, but AUTH failed (already said) */
        mpnctl_conn_close(ctl->redis);
    }

    ctl->redis = saved;
    ctl->addrs[0].host = saved_host;
    ctl->addrs[0].port = saved_port;

    return c;
}


/* a connection to host:port, a node of the map or one a redirect named */

static mpnctl_conn_t *
mpnctl_cluster_at(mpnctl_t *ctl, const char *host, size_t host_len,
    unsigned port)
{
    int                i;
    char               name[MPN_CLUSTER_HOST_MAX + 1];
    mpnctl_conn_t     **more, *c;
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    i = mpn_cluster_map_find(cl->map, host, host_len, port);
    if (i >= 0) {
        return mpnctl_cluster_node(ctl, (size_t) i);
    }

    if (host_len > MPN_CLUSTER_HOST_MAX) {
        return NULL;
    }

    memcpy(name, host, host_len);
    name[host_len] = '\0';

    c = mpnctl_cluster_connect(ctl, name, (int) port);
    if (c == NULL) {
        return NULL;
    }

    more = realloc(cl->others, (cl->nothers + 1) * sizeof(mpnctl_conn_t *));
    if (more == NULL) {
        mpnctl_conn_close(c);
        return NULL;
    }

    cl->others = more;
    cl->others[cl->nothers++] = c;

    return c;
}


/* where a key's commands go: its slot's primary, or the one connection */

mpnctl_conn_t *
mpnctl_node_of(mpnctl_t *ctl, const char *key, size_t len)
{
    unsigned           node;
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    if (cl == NULL) {
        return mpnctl_connect(ctl);
    }

    node = cl->map->slot[mpn_cluster_slot(key, len)];

    if (node == MPN_CLUSTER_NONE) {
        mpnctl_error("CLUSTERDOWN no node serves the slot of \"%.*s\"",
                     (int) len, key);
        return NULL;
    }

    return mpnctl_cluster_node(ctl, node);
}


/*
 * One command about one key, on the key's node, following MOVED (the map
 * is read again) and ASK (ASKING first, on the node named).  The reply is
 * the caller's; NULL when no connection could be had (already said).
 */

redisReply *
mpnctl_key_command(mpnctl_t *ctl, const char *key, size_t key_len,
    int argc, const char **argv, const size_t *lens)
{
    int                     n, asking;
    const char             *asking_argv[1];
    redisReply             *r, *a;
    mpnctl_conn_t          *c;
    mpn_cluster_redirect_t  rd;

    c = mpnctl_node_of(ctl, key, key_len);
    asking = 0;
    asking_argv[0] = "ASKING";

    for (n = 0; c != NULL; n++) {
        if (asking) {
            a = mpnctl_command(c, 1, asking_argv, NULL);
            freeReplyObject(a);
        }

        r = mpnctl_command(c, argc, argv, lens);

        if (r == NULL) {
            mpnctl_error("%s: Redis connection to %s: %s", argv[0],
                         mpnctl_conn_name(c), mpnctl_conn_errstr(c));
            return NULL;
        }

        if (ctl->cluster_state == NULL || r->type != REDIS_REPLY_ERROR
            || mpn_cluster_redirect_parse(r->str, r->len, &rd) != 0
            || n == MPNCTL_REDIRECTS)
        {
            return r;
        }

        freeReplyObject(r);

        asking = (rd.kind == MPN_CLUSTER_ASK);

        if (!asking && mpnctl_cluster_load(ctl, c) != 0) {
            return NULL;
        }

        if (rd.host_len == 0) {
            /* the node did not announce its host: the seed's */
            c = mpnctl_cluster_at(ctl, ctl->addrs[0].host,
                                  strlen(ctl->addrs[0].host), rd.port);
        } else {
            c = mpnctl_cluster_at(ctl, rd.host, rd.host_len, rd.port);
        }
    }

    return NULL;
}


/*
 * Sends what every node connection has buffered, so a pipeline waits on
 * all nodes at once, not on one after the other.
 */

int
mpnctl_cluster_flush(mpnctl_t *ctl)
{
    size_t             i;
    mpnctl_conn_t     *c;
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    for (i = 0; cl != NULL && i < cl->map->nnodes; i++) {
        c = cl->nodes[i];

        if (c != NULL && mpnctl_conn_flush(c) != 0) {
            mpnctl_error("Redis connection to %s: %s", mpnctl_conn_name(c),
                         mpnctl_conn_errstr(c));
            return -1;
        }
    }

    return 0;
}


/* the primaries: every one of them in a cluster, else the one server */

size_t
mpnctl_primaries(mpnctl_t *ctl)
{
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    return cl != NULL ? cl->map->nprimaries : 1;
}


mpnctl_conn_t *
mpnctl_primary(mpnctl_t *ctl, size_t i, char *name, size_t name_len)
{
    mpnctl_conn_t     *c;
    mpnctl_cluster_t  *cl = ctl->cluster_state;

    if (cl == NULL) {
        c = mpnctl_connect(ctl);
        snprintf(name, name_len, "%s",
                 c != NULL ? mpnctl_conn_name(c) : "Redis");
        return c;
    }

    snprintf(name, name_len, "%s:%u", cl->map->nodes[i].host,
             cl->map->nodes[i].port);

    return mpnctl_cluster_node(ctl, i);
}
