/*
 * Redis Cluster, the parts with no I/O in them: the hash slot of a key
 * (CRC16/XMODEM, hash tags), the slot map read from a CLUSTER SLOTS reply,
 * and MOVED/ASK error replies.  The module and mpnctl both route with them.
 */

#ifndef MPN_CLUSTER_H
#define MPN_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>


#define MPN_CLUSTER_SLOTS     16384
#define MPN_CLUSTER_HOST_MAX  255    /* a DNS name's length */
#define MPN_CLUSTER_NONE      0xffff /* slot with no usable primary */
#define MPN_CLUSTER_MAX_NODES 4096   /* more in one reply is a bad reply */


enum {
    MPN_CLUSTER_MOVED = 1,
    MPN_CLUSTER_ASK
};


typedef struct {
    char      host[MPN_CLUSTER_HOST_MAX + 1];   /* NUL-terminated */
    size_t    host_len;
    unsigned  port;
    uint16_t  primary;       /* this node's own index for a primary */
} mpn_cluster_node_t;


typedef struct {
    size_t               nnodes;
    size_t               nprimaries;
    size_t               nslots;      /* slots that have a usable primary */
    uint16_t             slot[MPN_CLUSTER_SLOTS];   /* node index or NONE */
    mpn_cluster_node_t   nodes[];     /* primaries first, then replicas */
} mpn_cluster_map_t;


typedef struct {
    unsigned  kind;          /* MPN_CLUSTER_MOVED or MPN_CLUSTER_ASK */
    unsigned  slot;
    char      host[MPN_CLUSTER_HOST_MAX + 1];   /* "" when not announced */
    size_t    host_len;
    unsigned  port;
} mpn_cluster_redirect_t;


/* the hash slot of a key, honouring a non-empty {hash tag} as Redis does */
unsigned mpn_cluster_slot(const char *key, size_t len);

/* CRC16/XMODEM (polynomial 0x1021, initial 0), as Redis computes it */
uint16_t mpn_cluster_crc16(const char *buf, size_t len);

/*
 * A slot map from a CLUSTER SLOTS reply.  A node announced with no
 * endpoint (nil or "") is at origin_host, the host the reply came from; one
 * announced as "?" (unknown endpoint) is left out, so its slots have no
 * primary.  Returns a map to free() or NULL with a reason in err.
 */
mpn_cluster_map_t *mpn_cluster_map_parse(const redisReply *reply,
    const char *origin_host, size_t origin_len, char *err, size_t err_len);

/* index of the node at host:port in the map, or -1 */
int mpn_cluster_map_find(const mpn_cluster_map_t *map, const char *host,
    size_t host_len, unsigned port);

/*
 * An error reply "MOVED <slot> <host>:<port>" or "ASK ...".  Returns 0 and
 * fills r when it is one and well formed, -1 otherwise.  An empty host
 * means the node that answered's own host.
 */
int mpn_cluster_redirect_parse(const char *s, size_t len,
    mpn_cluster_redirect_t *r);

/* a host as a node may announce it: a name, IPv4 or IPv6 (with %zone) */
int mpn_cluster_host_valid(const char *host, size_t len);

#endif /* MPN_CLUSTER_H */
