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
    mpnctl_conn_t *c;

    c = mpnctl_connect(ctl);
    if (c == NULL) {
        return -1;
    }

    mpn_time_format(ctl->now, at);
    snprintf(doc, sizeof(doc), "{\"v\":1,\"created_at\":\"%s\"}", at);

    argv[0] = "SET";
    argv[1] = ctl->marker;
    argv[2] = doc;
    argv[3] = "NX";

    r = mpnctl_command(c, 4, argv, NULL);
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
 * "Function not found" when the library is not there.
 */
int
mpnctl_library_check(mpnctl_t *ctl, const char *what)
{
    int            rc;
    const char    *argv[3];
    redisReply    *r;
    mpnctl_conn_t *c;

    c = mpnctl_connect(ctl);
    if (c == NULL) {
        return -1;
    }

    argv[0] = "FCALL";
    argv[1] = "mpn_put";
    argv[2] = "0";

    r = mpnctl_command(c, 3, argv, NULL);

    if (r != NULL && r->type == REDIS_REPLY_ERROR
        && strncmp(r->str, "BAD_ARGUMENT", 12) == 0)
    {
        rc = 0;

    } else {
        if (r != NULL && r->type != REDIS_REPLY_ERROR) {
            mpnctl_error("%s: FCALL mpn_put answered unexpectedly: is the "
                         "loaded library redis/mpn.lua?", what);
        } else {
            (void) mpnctl_reply_error(ctl, r, what);
        }
        rc = -1;
    }

    freeReplyObject(r);

    return rc;
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
