/*
 * mpnctl: where Redis is and how to get in (spec section 11).  Parses the
 * --redis forms, opens the connection (mpnctl_conn.c), asks Sentinels for
 * the primary, authenticates and selects the database.
 *
 *   redis://[user@]host[:port][/db]     plain TCP (port 6379 by default)
 *   rediss://[user@]host[:port][/db]    TLS
 *   unix:/path                          a unix socket
 *   host:port, [v6]:port                as mpn_redis, optionally followed by
 *                                       " db=N" and " password_file=PATH"
 *
 * A password never goes on the command line (ps and shell history show
 * it): "user:password@" is refused; --password-file names a file.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpnctl.h"


#define MPNCTL_REDIS_PORT     6379


static int mpnctl_parse_url(mpnctl_t *ctl, mpnctl_addr_t *a, char *url,
    const char *spec);
static int mpnctl_parse_hostport(mpnctl_addr_t *a, char *s, int url);
static int mpnctl_read_password(const char *path, char **out);
static int mpnctl_auth(mpnctl_conn_t *c, const char *what, const char *user,
    const char *password_file);
static int mpnctl_sentinel_primary(mpnctl_t *ctl, mpnctl_addr_t *primary,
    char *host, size_t host_len);
static int mpnctl_check_role(mpnctl_t *ctl, mpnctl_conn_t *c);


/*
 * One --redis value.  The first --redis replaces the default ($MPN_REDIS
 * or 127.0.0.1:6379); later ones add addresses (Sentinels, with
 * --sentinel).
 */
int
mpnctl_parse_redis(mpnctl_t *ctl, const char *spec, int from_option)
{
    char           *buf, *word, *save;
    mpnctl_addr_t  *a;

    if (from_option && !ctl->addrs_given) {
        /* (the default's text stays allocated: options may point in it) */
        ctl->naddrs = 0;
        ctl->tls_on = 0;
        ctl->user = NULL;
        ctl->addrs_given = 1;
    }

    if (ctl->naddrs == MPNCTL_MAX_ADDRS) {
        mpnctl_error("BAD_ARGUMENT more than %d Redis addresses",
                     MPNCTL_MAX_ADDRS);
        return -1;
    }

    buf = strdup(spec);
    if (buf == NULL) {
        mpnctl_error("out of memory");
        return -1;
    }

    a = &ctl->addrs[ctl->naddrs];
    memset(a, 0, sizeof(mpnctl_addr_t));
    a->buf = buf;

    word = strtok_r(buf, " \t", &save);
    if (word == NULL) {
        goto bad;
    }

    if (strncmp(word, "redis://", 8) == 0 || strncmp(word, "rediss://", 9)
                                             == 0)
    {
        if (mpnctl_parse_url(ctl, a, word, spec) != 0) {
            free(buf);
            return -1;
        }
        if (strtok_r(NULL, " \t", &save) != NULL) {
            goto bad;
        }
        ctl->naddrs++;
        return 0;
    }

    if (strncmp(word, "unix:", 5) == 0) {
        if (word[5] == '\0') {
            goto bad;
        }
        a->unix_path = word + 5;

    } else if (mpnctl_parse_hostport(a, word, 0) != 0) {
        goto bad;
    }

    while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
        if (strncmp(word, "db=", 3) == 0) {
            if (mpnctl_parse_int(word + 3, 0, INT_MAX, &ctl->db) != 0) {
                goto bad;
            }
        } else if (strncmp(word, "password_file=", 14) == 0) {
            ctl->password_file = word + 14;
        } else {
            goto bad;
        }
    }

    ctl->naddrs++;
    return 0;

bad:

    free(buf);
    mpnctl_error("BAD_ARGUMENT invalid Redis address \"%s\" (expected "
                 "redis://[user@]host:port[/db], rediss://..., unix:/path "
                 "or host:port)", spec);
    return -1;
}


/* redis[s]://[user@]host[:port][/db] */
static int
mpnctl_parse_url(mpnctl_t *ctl, mpnctl_addr_t *a, char *url,
    const char *spec)
{
    char  *p, *at, *slash;

    if (url[5] == 's') {
        ctl->tls_on = 1;
        p = url + 9;
    } else {
        p = url + 8;
    }

    slash = strchr(p, '/');
    if (slash != NULL) {
        *slash++ = '\0';
        if (*slash != '\0'
            && mpnctl_parse_int(slash, 0, INT_MAX, &ctl->db) != 0)
        {
            goto bad;
        }
    }

    at = strrchr(p, '@');
    if (at != NULL) {
        *at = '\0';
        if (strchr(p, ':') != NULL) {
            mpnctl_error("BAD_ARGUMENT a password never goes on the command "
                         "line (ps and shell history would show it): give "
                         "redis://USER@host:port and --password-file FILE");
            return -1;
        }
        if (*p == '\0') {
            goto bad;
        }
        ctl->user = p;
        p = at + 1;
    }

    if (mpnctl_parse_hostport(a, p, 1) != 0) {
        goto bad;
    }

    return 0;

bad:

    mpnctl_error("BAD_ARGUMENT invalid Redis URL \"%s\" (expected "
                 "redis[s]://[user@]host[:port][/db])", spec);
    return -1;
}


/* host:port or [v6]:port; in a URL the port may be left out */
static int
mpnctl_parse_hostport(mpnctl_addr_t *a, char *s, int url)
{
    char  *colon, *end, *p;
    long   port;

    if (s[0] == '[') {
        p = strchr(s, ']');
        if (p == NULL || p == s + 1) {
            return -1;
        }
        *p = '\0';
        a->host = s + 1;
        colon = (p[1] == ':') ? p + 1 : NULL;
        if (colon == NULL && p[1] != '\0') {
            return -1;
        }

    } else {
        colon = strrchr(s, ':');
        if (colon == s || *s == '\0') {
            return -1;
        }
        if (colon != NULL) {
            *colon = '\0';
        }
        a->host = s;
    }

    if (colon == NULL) {
        if (!url) {
            return -1;
        }
        a->port = MPNCTL_REDIS_PORT;
        return 0;
    }

    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || colon[1] == '\0' || port < 1
        || port > 65535)
    {
        return -1;
    }

    a->port = (int) port;

    return 0;
}


void
mpnctl_addr_format(const mpnctl_addr_t *a, char *buf, size_t len)
{
    if (a->unix_path != NULL) {
        snprintf(buf, len, "unix:%s", a->unix_path);
    } else if (strchr(a->host, ':') != NULL) {
        snprintf(buf, len, "[%s]:%d", a->host, a->port);
    } else {
        snprintf(buf, len, "%s:%d", a->host, a->port);
    }
}


/*
 * The connection the commands use: to the one address, or to the primary
 * a Sentinel names; authenticated, the database selected.
 */
mpnctl_conn_t *
mpnctl_connect(mpnctl_t *ctl)
{
    char                 db[16], host[256], name[300], err[512];
    const char          *argv[2];
    redisReply          *r;
    mpnctl_conn_t       *c;
    mpnctl_addr_t        primary, *a;
    const mpnctl_tls_t  *tls;

    if (ctl->redis != NULL) {
        return ctl->redis;
    }

    tls = ctl->tls_on ? &ctl->tls : NULL;

    if (ctl->sentinel != NULL) {
        if (mpnctl_sentinel_primary(ctl, &primary, host, sizeof(host)) != 0) {
            return NULL;
        }
        a = &primary;

    } else if (ctl->naddrs != 1) {
        mpnctl_error("BAD_ARGUMENT several --redis addresses are Sentinels: "
                     "give --sentinel NAME, or one address");
        return NULL;

    } else {
        a = &ctl->addrs[0];
    }

    c = mpnctl_conn_open(a, tls, MPNCTL_CONNECT_TIMEOUT, err, sizeof(err));
    if (c == NULL) {
        mpnctl_addr_format(a, name, sizeof(name));
        mpnctl_error("cannot connect to Redis at %s: %s", name, err);
        return NULL;
    }

    ctl->redis = c;

    if (mpnctl_auth(c, "AUTH", ctl->user, ctl->password_file) != 0) {
        return NULL;
    }

    if (ctl->sentinel != NULL && mpnctl_check_role(ctl, c) != 0) {
        return NULL;
    }

    if (ctl->db != 0) {
        snprintf(db, sizeof(db), "%d", ctl->db);
        argv[0] = "SELECT";
        argv[1] = db;
        r = mpnctl_command(c, 2, argv, NULL);
        if (mpnctl_reply_error(ctl, r, "SELECT") != 0) {
            freeReplyObject(r);
            return NULL;
        }
        freeReplyObject(r);
    }

    return c;
}


void
mpnctl_disconnect(mpnctl_t *ctl)
{
    mpnctl_conn_close(ctl->redis);
    ctl->redis = NULL;
}


/* AUTH [user] password; the password is read here and wiped after use */
static int
mpnctl_auth(mpnctl_conn_t *c, const char *what, const char *user,
    const char *password_file)
{
    int          argc;
    char        *password;
    const char  *argv[3];
    redisReply  *r;

    if (user == NULL && password_file == NULL) {
        return 0;
    }

    password = NULL;

    if (password_file != NULL
        && mpnctl_read_password(password_file, &password) != 0)
    {
        return -1;
    }

    argc = 0;
    argv[argc++] = "AUTH";
    if (user != NULL) {
        argv[argc++] = user;
    }
    argv[argc++] = (password != NULL) ? password : "";

    r = mpnctl_command(c, argc, argv, NULL);

    if (password != NULL) {
        explicit_bzero(password, strlen(password));
        free(password);
    }

    if (r == NULL) {
        mpnctl_error("%s at %s: %s", what, mpnctl_conn_name(c),
                     mpnctl_conn_errstr(c));
        return -1;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        mpnctl_error("%s at %s%s%s: %s", what, mpnctl_conn_name(c),
                     user != NULL ? " as user " : "",
                     user != NULL ? user : "", r->str);
        freeReplyObject(r);
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


static int
mpnctl_read_password(const char *path, char **out)
{
    FILE    *f;
    char    *line;
    size_t   cap;
    ssize_t  n;

    f = fopen(path, "r");
    if (f == NULL) {
        mpnctl_error("cannot open password file \"%s\": %s", path,
                     strerror(errno));
        return -1;
    }

    line = NULL;
    cap = 0;
    n = getline(&line, &cap, f);
    fclose(f);

    if (n < 0) {
        free(line);
        mpnctl_error("password file \"%s\" is empty", path);
        return -1;
    }

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }

    *out = line;
    return 0;
}


/*
 * SENTINEL GET-MASTER-ADDR-BY-NAME, asked of each Sentinel in turn until
 * one answers with an address.
 */
static int
mpnctl_sentinel_primary(mpnctl_t *ctl, mpnctl_addr_t *primary, char *host,
    size_t host_len)
{
    int             i, port;
    char            name[300], err[512];
    const char     *argv[3];
    redisReply     *r;
    mpnctl_conn_t  *c;

    argv[0] = "SENTINEL";
    argv[1] = "GET-MASTER-ADDR-BY-NAME";
    argv[2] = ctl->sentinel;

    for (i = 0; i < ctl->naddrs; i++) {
        mpnctl_addr_format(&ctl->addrs[i], name, sizeof(name));

        c = mpnctl_conn_open(&ctl->addrs[i], ctl->tls_on ? &ctl->tls : NULL,
                             MPNCTL_CONNECT_TIMEOUT, err, sizeof(err));
        if (c == NULL) {
            mpnctl_error("Sentinel %s: %s", name, err);
            continue;
        }

        if (mpnctl_auth(c, "Sentinel AUTH", ctl->sentinel_user,
                        ctl->sentinel_password_file)
            != 0)
        {
            mpnctl_conn_close(c);
            continue;
        }

        r = mpnctl_command(c, 3, argv, NULL);

        if (r == NULL) {
            mpnctl_error("Sentinel %s: %s", name, mpnctl_conn_errstr(c));

        } else if (r->type == REDIS_REPLY_ERROR) {
            mpnctl_error("Sentinel %s: %s", name, r->str);

        } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
                   || r->element[0]->type != REDIS_REPLY_STRING
                   || r->element[1]->type != REDIS_REPLY_STRING
                   || r->element[0]->len >= host_len
                   || mpnctl_parse_int(r->element[1]->str, 1, 65535, &port)
                      != 0)
        {
            mpnctl_error("Sentinel %s does not know a primary named \"%s\"",
                         name, ctl->sentinel);

        } else {
            memcpy(host, r->element[0]->str, r->element[0]->len);
            host[r->element[0]->len] = '\0';
            memset(primary, 0, sizeof(mpnctl_addr_t));
            primary->host = host;
            primary->port = port;
            freeReplyObject(r);
            mpnctl_conn_close(c);
            return 0;
        }

        freeReplyObject(r);
        mpnctl_conn_close(c);
    }

    mpnctl_error("no Sentinel named the primary of \"%s\"", ctl->sentinel);

    return -1;
}


/* a primary that reports itself a replica (ROLE) is not used */
static int
mpnctl_check_role(mpnctl_t *ctl, mpnctl_conn_t *c)
{
    const char  *argv[1];
    redisReply  *r;

    argv[0] = "ROLE";
    r = mpnctl_command(c, 1, argv, NULL);

    if (mpnctl_reply_error(ctl, r, "ROLE") != 0) {
        freeReplyObject(r);
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1
        || r->element[0]->type != REDIS_REPLY_STRING
        || strcmp(r->element[0]->str, "master") != 0)
    {
        mpnctl_error("the primary Sentinel named for \"%s\", %s, is not a "
                     "primary (a failover in progress?): try again",
                     ctl->sentinel, mpnctl_conn_name(c));
        freeReplyObject(r);
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


/*
 * SCAN MATCH pattern, page by page (never KEYS: a large keyspace does not
 * stall Redis); page() gets each non-empty page's keys (an array reply,
 * freed afterwards) and returns 0 to go on.  SCAN may return a key twice.
 */
int
mpnctl_scan(mpnctl_t *ctl, mpnctl_conn_t *c, const char *what,
    const char *pattern, mpnctl_scan_page_pt page, void *arg)
{
    int          rc;
    char         cursor[32], msg[64];
    const char  *argv[6];
    redisReply  *r;

    strcpy(cursor, "0");
    snprintf(msg, sizeof(msg), "%s: SCAN", what);

    do {
        argv[0] = "SCAN";
        argv[1] = cursor;
        argv[2] = "MATCH";
        argv[3] = pattern;
        argv[4] = "COUNT";
        argv[5] = "1000";

        r = mpnctl_command(c, 6, argv, NULL);
        if (mpnctl_reply_error(ctl, r, msg) != 0) {
            freeReplyObject(r);
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[0]->len >= sizeof(cursor)
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            mpnctl_error("%s: unexpected reply", msg);
            freeReplyObject(r);
            return -1;
        }

        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';

        rc = (r->element[1]->elements > 0) ? page(ctl, r->element[1], arg)
                                           : 0;
        freeReplyObject(r);

        if (rc != 0) {
            return -1;
        }

    } while (strcmp(cursor, "0") != 0);

    return 0;
}
