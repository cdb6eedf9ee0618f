/*
 * What Sentinel says, read with no I/O: the +switch-master message and an
 * entry of SENTINEL REPLICAS (replies as hiredis's redisReader gives
 * them), so the module and its tests read them alike.
 */

#ifndef MPN_SENTINEL_H
#define MPN_SENTINEL_H

#include <stddef.h>

#include <hiredis/hiredis.h>


/* a server as Sentinel names it; host points into the text read */
typedef struct {
    const char  *host;
    size_t       host_len;
    int          port;
} mpn_sentinel_addr_t;


/*
 * "MASTER old-ip old-port new-ip new-port": 0 and the new address when the
 * message is about master `name`, -1 otherwise (another master, or not
 * five fields, or a port that is no port).
 */
int mpn_sentinel_switch(const char *msg, size_t len, const char *name,
    size_t name_len, mpn_sentinel_addr_t *to);

/*
 * An entry of SENTINEL REPLICAS (field/value pairs): 1 and its address
 * when it may be read (not flagged s_down, o_down or disconnected), 0 when
 * it may not, -1 when it lacks ip, port or flags.
 */
int mpn_sentinel_replica(const redisReply *r, mpn_sentinel_addr_t *addr);

/* a port as Redis writes it: 1..65535, else -1 */
int mpn_sentinel_port(const char *s, size_t len);

#endif /* MPN_SENTINEL_H */
