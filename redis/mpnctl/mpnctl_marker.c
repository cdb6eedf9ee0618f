/*
 * mpnctl init and the dataset marker (spec section 11): a small JSON
 * document beside the records which tells the gate that this database
 * holds the real dataset, not an empty or wrong one.  `init` writes it;
 * `import` writes it when missing.  Both never overwrite one.
 */

#include <stdio.h>
#include <string.h>

#include "mpnctl.h"
#include "mpn_time.h"


/*
 * SET marker {"v":1,"created_at":...} NX.  *created is 1 when it was
 * written, 0 when one was there already.
 */
int
mpnctl_marker_write(mpnctl_t *ctl, int *created)
{
    char           doc[64 + MPN_TIME_LEN], at[MPN_TIME_LEN + 1];
    const char    *argv[4];
    redisReply    *r;

    mpn_time_format(ctl->now, at);
    snprintf(doc, sizeof(doc), "{\"v\":1,\"created_at\":\"%s\"}", at);

    argv[0] = "SET";
    argv[1] = ctl->marker;
    argv[2] = doc;
    argv[3] = "NX";

    /* a key like any other: on its slot's node with --cluster */
    r = mpnctl_key_command(ctl, ctl->marker, strlen(ctl->marker), 4, argv,
                           NULL);
    if (r == NULL) {
        return -1;
    }

    if (mpnctl_reply_error(ctl, r, "marker: SET") != 0) {
        freeReplyObject(r);
        return -1;
    }

    *created = (r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);

    return 0;
}


/*
 * Is the mpn library loaded?  FCALL mpn_put with no key is refused by the
 * library itself (BAD_ARGUMENT) and writes nothing; Redis answers
 * "Function not found" when the library is not there.  A Function lives
 * on the node it was loaded on: with --cluster every primary is asked.
 */
int
mpnctl_library_check(mpnctl_t *ctl, const char *what)
{
    int             rc;
    char            node[300];
    size_t          i;
    const char     *argv[3];
    redisReply     *r;
    mpnctl_conn_t  *c;

    argv[0] = "FCALL";
    argv[1] = "mpn_put";
    argv[2] = "0";

    for (i = 0; i < mpnctl_primaries(ctl); i++) {
        c = mpnctl_primary(ctl, i, node, sizeof(node));
        if (c == NULL) {
            return -1;
        }

        r = mpnctl_command(c, 3, argv, NULL);

        if (r != NULL && r->type == REDIS_REPLY_ERROR
            && strncmp(r->str, "BAD_ARGUMENT", 12) == 0)
        {
            rc = 0;

        } else if (r == NULL) {
            mpnctl_error("%s: Redis connection to %s: %s", what, node,
                         mpnctl_conn_errstr(c));
            rc = -1;

        } else if (r->type != REDIS_REPLY_ERROR) {
            mpnctl_error("%s: FCALL mpn_put answered unexpectedly on %s: is "
                         "the loaded library redis/mpn.lua?", what, node);
            rc = -1;

        } else if (ctl->cluster && mpnctl_library_missing(r->str)) {
            mpnctl_error("%s: the mpn Functions library is not loaded in %s "
                         "(load it on every primary: mpnctl --cluster "
                         "functions load)", what, node);
            rc = -1;

        } else {
            (void) mpnctl_reply_error(ctl, r, what);
            rc = -1;
        }

        freeReplyObject(r);

        if (rc != 0) {
            return -1;
        }
    }

    return 0;
}


int
mpnctl_init(mpnctl_t *ctl, int argc, char **argv)
{
    int  created;

    (void) argc;
    (void) argv;

    if (mpnctl_marker_write(ctl, &created) != 0) {
        return 1;
    }

    printf("marker %s %s\n", ctl->marker,
           created ? "written" : "already present (left as it was)");

    return 0;
}
