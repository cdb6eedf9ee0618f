/*
 * What Sentinel says (see mpn_sentinel.h).
 */

#include <string.h>

#include "mpn_sentinel.h"


static int mpn_sentinel_has(const char *s, size_t len, const char *word);


int
mpn_sentinel_switch(const char *msg, size_t len, const char *name,
    size_t name_len, mpn_sentinel_addr_t *to)
{
    size_t       n, l[5];
    const char  *p, *last, *f[5];

    p = msg;
    last = msg + len;

    for (n = 0; n < 5 && p < last; n++) {
        f[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        l[n] = p - f[n];

        if (l[n] == 0) {
            return -1;
        }

        p++;
    }

    if (n != 5 || p < last || l[0] != name_len
        || memcmp(f[0], name, name_len) != 0)
    {
        return -1;
    }

    to->port = mpn_sentinel_port(f[4], l[4]);

    if (to->port == -1) {
        return -1;
    }

    to->host = f[3];
    to->host_len = l[3];

    return 0;
}


int
mpn_sentinel_replica(const redisReply *r, mpn_sentinel_addr_t *addr)
{
    size_t             i;
    const redisReply  *f, *v, *ip, *port, *flags;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return -1;
    }

    ip = NULL;
    port = NULL;
    flags = NULL;

    for (i = 0; i + 1 < r->elements; i += 2) {
        f = r->element[i];
        v = r->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (f->len == 2 && memcmp(f->str, "ip", 2) == 0) {
            ip = v;

        } else if (f->len == 4 && memcmp(f->str, "port", 4) == 0) {
            port = v;

        } else if (f->len == 5 && memcmp(f->str, "flags", 5) == 0) {
            flags = v;
        }
    }

    if (ip == NULL || ip->len == 0 || port == NULL || flags == NULL) {
        return -1;
    }

    addr->port = mpn_sentinel_port(port->str, port->len);

    if (addr->port == -1) {
        return -1;
    }

    addr->host = ip->str;
    addr->host_len = ip->len;

    if (mpn_sentinel_has(flags->str, flags->len, "s_down")
        || mpn_sentinel_has(flags->str, flags->len, "o_down")
        || mpn_sentinel_has(flags->str, flags->len, "disconnected"))
    {
        return 0;
    }

    return 1;
}


int
mpn_sentinel_port(const char *s, size_t len)
{
    int     port;
    size_t  i;

    if (len == 0 || len > 5) {
        return -1;
    }

    port = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        port = port * 10 + (s[i] - '0');
    }

    return (port >= 1 && port <= 65535) ? port : -1;
}


/* one of the comma-separated words of a flags field */

static int
mpn_sentinel_has(const char *s, size_t len, const char *word)
{
    size_t       wl;
    const char  *p, *last, *start;

    wl = strlen(word);
    last = s + len;

    for (p = s; p <= last; p++) {
        start = p;

        while (p < last && *p != ',') {
            p++;
        }

        if ((size_t) (p - start) == wl && memcmp(start, word, wl) == 0) {
            return 1;
        }
    }

    return 0;
}
