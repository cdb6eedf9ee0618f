/*
 * mpnctl functions load: the mpn Functions library (redis/mpn.lua) into
 * Redis with FUNCTION LOAD REPLACE.  Functions live per node, so with
 * --cluster it goes to every primary (replicas get it by replication).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpnctl.h"


#define MPNCTL_LIBRARY            "redis/mpn.lua"      /* a checkout */
#define MPNCTL_LIBRARY_INSTALLED  "/usr/share/mpn/mpn.lua"


int
mpnctl_functions(mpnctl_t *ctl, int argc, char **argv)
{
    int            rc;
    char          *code, node[300];
    size_t         i, len, lens[4];
    const char    *path, *cargv[4];
    redisReply     *r;
    mpnctl_conn_t  *c;

    if (strcmp(argv[0], "load") != 0) {
        mpnctl_error("functions: unknown subcommand \"%s\" (expected load)",
                     argv[0]);
        return 2;
    }

    if (argc > 1) {
        path = argv[1];

    } else {
        path = (access(MPNCTL_LIBRARY, R_OK) == 0) ? MPNCTL_LIBRARY
                                                   : MPNCTL_LIBRARY_INSTALLED;
    }

    if (mpnctl_read_file(path, &code, &len) != 0) {
        return 1;
    }

    cargv[0] = "FUNCTION";
    lens[0] = 8;
    cargv[1] = "LOAD";
    lens[1] = 4;
    cargv[2] = "REPLACE";
    lens[2] = 7;
    cargv[3] = code;
    lens[3] = len;

    rc = 0;

    for (i = 0; i < mpnctl_primaries(ctl); i++) {
        c = mpnctl_primary(ctl, i, node, sizeof(node));
        if (c == NULL) {
            rc = 1;
            break;
        }

        r = mpnctl_command(c, 4, cargv, lens);

        if (r == NULL) {
            mpnctl_error("functions load: Redis connection to %s: %s", node,
                         mpnctl_conn_errstr(c));
            rc = 1;
            break;
        }

        if (r->type == REDIS_REPLY_ERROR) {
            mpnctl_error("functions load: %s: %s", node, r->str);
            freeReplyObject(r);
            rc = 1;
            break;
        }

        printf("loaded library %.*s from %s on %s\n",
               r->type == REDIS_REPLY_STRING ? (int) r->len : 3,
               r->type == REDIS_REPLY_STRING ? r->str : "mpn", path, node);
        freeReplyObject(r);
    }

    free(code);

    return rc;
}
