/*
 * libFuzzer target: bytes as what a cluster node answers.  They are read
 * with hiredis's reader as the module reads them; every reply goes to the
 * slot map parser and every error or string to the redirect parser, and
 * the raw bytes are hashed as a key.  A map that parses must route each
 * slot to a primary inside it, and each replica to a primary.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpn_cluster.h"


static void fuzz_check_map(const mpn_cluster_map_t *map);
static int fuzz_huge_array(const uint8_t *data, size_t size);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      n;
    char                     err[256];
    void                    *reply;
    redisReply              *r;
    redisReader             *reader;
    mpn_cluster_map_t       *map;
    mpn_cluster_redirect_t   redirect;

    if (mpn_cluster_slot((const char *) data, size) >= MPN_CLUSTER_SLOTS) {
        abort();
    }

    if (mpn_cluster_redirect_parse((const char *) data, size, &redirect)
        == 0)
    {
        if (redirect.slot >= MPN_CLUSTER_SLOTS || redirect.port == 0
            || redirect.port > 65535
            || redirect.host_len != strlen(redirect.host))
        {
            abort();
        }
    }

    /* hiredis 0.14 callocs an array's count as read: not this target's */
    if (fuzz_huge_array(data, size)) {
        return 0;
    }

    reader = redisReaderCreate();
    if (reader == NULL) {
        return 0;
    }

    if (redisReaderFeed(reader, (const char *) data, size) != REDIS_OK) {
        redisReaderFree(reader);
        return 0;
    }

    for (n = 0; n < 16; n++) {
        if (redisReaderGetReply(reader, &reply) != REDIS_OK
            || reply == NULL)
        {
            break;
        }

        r = reply;

        map = mpn_cluster_map_parse(r, "127.0.0.1", 9, err, sizeof(err));

        if (map != NULL) {
            fuzz_check_map(map);
            free(map);

        } else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
            abort();
        }

        if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STRING) {
            (void) mpn_cluster_redirect_parse(r->str, r->len, &redirect);
        }

        freeReplyObject(reply);
    }

    redisReaderFree(reader);

    return 0;
}


static void
fuzz_check_map(const mpn_cluster_map_t *map)
{
    size_t  i, served;

    served = 0;

    if (map->nprimaries > map->nnodes
        || map->nnodes > MPN_CLUSTER_MAX_NODES)
    {
        abort();
    }

    for (i = 0; i < MPN_CLUSTER_SLOTS; i++) {
        if (map->slot[i] == MPN_CLUSTER_NONE) {
            continue;
        }

        if (map->slot[i] >= map->nprimaries) {
            abort();
        }

        served++;
    }

    if (served != map->nslots) {
        abort();
    }

    for (i = 0; i < map->nnodes; i++) {
        if (map->nodes[i].port == 0 || map->nodes[i].port > 65535
            || map->nodes[i].host_len == 0
            || map->nodes[i].host_len != strlen(map->nodes[i].host)
            || mpn_cluster_host_valid(map->nodes[i].host,
                                      map->nodes[i].host_len) != 0
            || (i < map->nprimaries && map->nodes[i].primary != i)
            || (i >= map->nprimaries
                && map->nodes[i].primary >= map->nprimaries))
        {
            abort();
        }
    }
}


static int
fuzz_huge_array(const uint8_t *data, size_t size)
{
    size_t  i, digits;

    for (i = 0; i < size; i++) {
        if (data[i] != '*') {
            continue;
        }

        for (digits = 0; i + 1 + digits < size; digits++) {
            if (data[i + 1 + digits] < '0' || data[i + 1 + digits] > '9') {
                break;
            }
        }

        if (digits > 5) {
            return 1;
        }
    }

    return 0;
}
