/*
 * Where and how the Redis connections connect: the mpn_redis directive
 * (an address, credentials, TLS), the address of each attempt (resolved
 * at configuration time, or again at every reconnect through the http
 * block's resolver), and the TLS side of a connection: nginx's OpenSSL
 * layer with the trust and name checks of proxy_ssl_verify.
 *
 * A topology that finds its servers at run time (Sentinel, Cluster,
 * replicas) gives a connection its own locate callback instead of
 * ngx_http_mpn_redis_locate().
 */

#include "ngx_http_mpn_redis.h"


#define NGX_HTTP_MPN_TLS_VERIFY_DEPTH  8


static char *ngx_http_mpn_redis_address(ngx_conf_t *cf,
    ngx_http_mpn_redis_conf_t *rc, ngx_str_t *value);
static char *ngx_http_mpn_redis_seed(ngx_conf_t *cf,
    ngx_http_mpn_redis_conf_t *rc, ngx_str_t *value);
static char *ngx_http_mpn_redis_password(ngx_conf_t *cf, ngx_str_t *path,
    const char *what, ngx_str_t *password);
static char *ngx_http_mpn_redis_tls(ngx_conf_t *cf,
    ngx_http_mpn_redis_conf_t *rc);
static void ngx_http_mpn_redis_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_mpn_redis_connect_to(ngx_http_mpn_redis_conn_t *rc,
    ngx_addr_t *addr);


/*
 * mpn_redis ADDRESS... [db=N] [user=NAME] [password_file=PATH] [tls]
 *           [tls_ca=PATH] [tls_cert=PATH tls_key=PATH] [tls_name=NAME]
 *           [tls_verify=on|off] [sentinel=MASTER] [sentinel_user=NAME]
 *           [sentinel_password_file=PATH] [cluster] [read=primary|replica]
 *           [marker=KEY|off] [connect_timeout=T] [timeout=T]
 */

char *
ngx_http_mpn_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpn_main_conf_t *mcf = conf;

    ngx_str_t                  *value, s;
    ngx_uint_t                  i;
    ngx_msec_t                  t;
    ngx_http_mpn_redis_conf_t  *rc;

    if (mcf->redis != NULL) {
        return "is duplicate";
    }

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpn_redis_conf_t));
    if (rc == NULL) {
        return NGX_CONF_ERROR;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rc->db = 0;
     *     rc->user = { 0, NULL };
     *     rc->password = { 0, NULL };
     *     rc->tls = 0;
     *     rc->tls_ca, tls_cert, tls_key, tls_name = { 0, NULL };
     *     rc->ssl = NULL;
     *     rc->resolver = NULL;
     */

    rc->connect_timeout = 200;
    rc->timeout = 100;
    rc->tls_verify = 1;
    ngx_str_set(&rc->marker, "mpn:meta");

    rc->seeds = ngx_array_create(cf->pool, 1,
                                 sizeof(ngx_http_mpn_redis_seed_t));
    if (rc->seeds == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (ngx_http_mpn_redis_address(cf, rc, &value[1]) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (value[i].len == 7
            && ngx_strncmp(value[i].data, "cluster", 7) == 0)
        {
            rc->cluster = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "read=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (s.len == 7 && ngx_strncmp(s.data, "primary", 7) == 0) {
                rc->read_replica = 0;

            } else if (s.len == 7 && ngx_strncmp(s.data, "replica", 7) == 0) {
                rc->read_replica = 1;

            } else {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            rc->sentinel.data = value[i].data + 9;
            rc->sentinel.len = value[i].len - 9;

            if (rc->sentinel.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_user=", 14) == 0) {
            rc->sentinel_user.data = value[i].data + 14;
            rc->sentinel_user.len = value[i].len - 14;

            if (rc->sentinel_user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_password_file=", 23) == 0) {
            s.data = value[i].data + 23;
            s.len = value[i].len - 23;

            if (ngx_http_mpn_redis_password(cf, &s, "sentinel_password_file",
                                            &rc->sentinel_password)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            == NULL
            && !(value[i].len == 3
                 && ngx_strncmp(value[i].data, "tls", 3) == 0))
        {
            /* another address: a seed node of a cluster */
            if (ngx_http_mpn_redis_seed(cf, rc, &value[i]) != NGX_CONF_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            rc->db = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (rc->db == NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rc->user.data = value[i].data + 5;
            rc->user.len = value[i].len - 5;

            if (rc->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            s.data = value[i].data + 14;
            s.len = value[i].len - 14;

            if (ngx_http_mpn_redis_password(cf, &s, "password_file",
                                            &rc->password)
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len == 3 && ngx_strncmp(value[i].data, "tls", 3) == 0) {
            rc->tls = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_ca=", 7) == 0) {
            rc->tls_ca.data = value[i].data + 7;
            rc->tls_ca.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_cert=", 9) == 0) {
            rc->tls_cert.data = value[i].data + 9;
            rc->tls_cert.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_key=", 8) == 0) {
            rc->tls_key.data = value[i].data + 8;
            rc->tls_key.len = value[i].len - 8;
            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_name=", 9) == 0) {
            rc->tls_name.data = value[i].data + 9;
            rc->tls_name.len = value[i].len - 9;

            if (rc->tls_name.len == 0) {
                goto invalid;
            }

            rc->tls_name_set = 1;

            continue;
        }

        if (ngx_strncmp(value[i].data, "tls_verify=", 11) == 0) {
            s.data = value[i].data + 11;
            s.len = value[i].len - 11;

            if (s.len == 2 && ngx_strncmp(s.data, "on", 2) == 0) {
                rc->tls_verify = 1;

            } else if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                rc->tls_verify = 0;

            } else {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "marker=", 7) == 0) {
            rc->marker.data = value[i].data + 7;
            rc->marker.len = value[i].len - 7;

            if (rc->marker.len == 0) {
                goto invalid;
            }

            if (rc->marker.len == 3
                && ngx_strncmp(rc->marker.data, "off", 3) == 0)
            {
                rc->marker.len = 0;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            t = ngx_parse_time(&s, 0);
            if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
                goto invalid;
            }

            rc->connect_timeout = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            t = ngx_parse_time(&s, 0);
            if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
                goto invalid;
            }

            rc->timeout = t;
            continue;
        }

        goto invalid;
    }

    if (rc->seeds->nelts > 1 && !rc->cluster && rc->sentinel.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "several addresses in \"mpn_redis\" need "
                           "\"sentinel=\" (they are Sentinels) or "
                           "\"cluster\" (they are its seed nodes)");
        return NGX_CONF_ERROR;
    }

    if (rc->read_replica && !rc->cluster && rc->sentinel.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"read=replica\" in \"mpn_redis\" needs "
                           "\"sentinel=\" or \"cluster\": they name "
                           "the replicas");
        return NGX_CONF_ERROR;
    }

    if (rc->sentinel.len && rc->cluster) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel=\" and \"cluster\" in "
                           "\"mpn_redis\" cannot go together");
        return NGX_CONF_ERROR;
    }

    if (rc->sentinel.len == 0
        && (rc->sentinel_user.len || rc->sentinel_password.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_*\" parameters of \"mpn_redis\" "
                           "need \"sentinel=\"");
        return NGX_CONF_ERROR;
    }

    if (rc->sentinel.len && rc->is_unix) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel=\" in \"mpn_redis\" needs "
                           "host:port Sentinels, not \"%V\"",
                           &rc->addr_text);
        return NGX_CONF_ERROR;
    }

    if (rc->sentinel_user.len && rc->sentinel_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"sentinel_user=\" in \"mpn_redis\" needs "
                           "\"sentinel_password_file=\"");
        return NGX_CONF_ERROR;
    }

    if (rc->cluster && rc->db != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"db=\" in \"mpn_redis\" cannot go with "
                           "\"cluster\": a Redis Cluster has only "
                           "database 0");
        return NGX_CONF_ERROR;
    }

    if (rc->cluster && rc->is_unix) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cluster\" in \"mpn_redis\" needs host:port "
                           "seeds, not \"%V\"", &rc->addr_text);
        return NGX_CONF_ERROR;
    }

    if (rc->user.len && rc->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" in \"mpn_redis\" needs "
                           "\"password_file=\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_mpn_redis_tls(cf, rc) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (rc->sentinel.len) {
        /* the data is the master's, wherever it is: logs and the cache's
         * source name it, not the first Sentinel */
        rc->addr_text = rc->sentinel;
    }

    mcf->redis = rc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"mpn_redis\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


/* host:port (a name is resolved here, once) or unix:/path */

static char *
ngx_http_mpn_redis_address(ngx_conf_t *cf, ngx_http_mpn_redis_conf_t *rc,
    ngx_str_t *value)
{
    ngx_url_t  u;

    rc->addr_text = *value;

    if (value->len > 5 && ngx_strncmp(value->data, "unix:", 5) == 0
        && value->data[5] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"mpn_redis\": "
                           "a unix socket path must be absolute", value);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.no_resolve = 0;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0
        || (u.family != AF_UNIX && (u.no_port || u.uri.len)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"mpn_redis\"%s%s, "
                           "expected host:port or unix:/path",
                           value, u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    rc->addr = u.addrs[0];
    rc->is_unix = (u.family == AF_UNIX);

    if (ngx_http_mpn_redis_seed(cf, rc, value) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!rc->is_unix) {
        rc->host = u.host;
        rc->port = u.port;

        /* a literal address needs no resolver */
        rc->numeric = (ngx_inet_addr(u.host.data, u.host.len) != INADDR_NONE
                       || (u.host.len && u.host.data[0] == '['));
    }

    return NGX_CONF_OK;
}


/* host:port of a cluster seed, resolved here (the first is the address) */

static char *
ngx_http_mpn_redis_seed(ngx_conf_t *cf, ngx_http_mpn_redis_conf_t *rc,
    ngx_str_t *value)
{
    ngx_url_t                   u;
    ngx_http_mpn_redis_seed_t  *seed;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.no_resolve = 0;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0
        || (u.family != AF_UNIX && (u.no_port || u.uri.len))
        || (rc->seeds->nelts > 0 && u.family == AF_UNIX))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"mpn_redis\"%s%s, "
                           "expected host:port", value,
                           u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    seed = ngx_array_push(rc->seeds);
    if (seed == NULL) {
        return NGX_CONF_ERROR;
    }

    seed->text = *value;
    seed->host = u.host;
    seed->port = u.port;
    seed->addr = u.addrs[0];

    return NGX_CONF_OK;
}


/* the first line of the file; the password itself is never logged */

static char *
ngx_http_mpn_redis_password(ngx_conf_t *cf, ngx_str_t *path,
    const char *what, ngx_str_t *password)
{
    u_char     *p, *last;
    ngx_str_t   text;

    if (ngx_http_mpn_conf_read_file(cf, path, 1024, what, "mpn_redis",
                                    &text)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    last = text.data + text.len;

    for (p = text.data; p < last; p++) {
        if (*p == CR || *p == LF) {
            break;
        }
    }

    if (p == text.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty %s \"%V\" in \"mpn_redis\"", what,
                           path);
        return NGX_CONF_ERROR;
    }

    password->data = text.data;
    password->len = p - text.data;

    /* nothing past the first line stays in memory */
    ngx_explicit_memzero(p, last - p);

    return NGX_CONF_OK;
}


/* the client side of proxy_ssl_*: one SSL_CTX for every connection */

static char *
ngx_http_mpn_redis_tls(ngx_conf_t *cf, ngx_http_mpn_redis_conf_t *rc)
{
#if (NGX_SSL)
    u_char              *p;
    ngx_str_t            none = ngx_null_string;
    ngx_pool_cleanup_t  *cln;
#endif

    if (!rc->tls) {
        if (rc->tls_ca.len || rc->tls_cert.len || rc->tls_key.len
            || rc->tls_name.len || !rc->tls_verify)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"tls_*\" parameters of \"mpn_redis\" "
                               "need \"tls\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

#if !(NGX_SSL)

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"tls\" in \"mpn_redis\" needs an nginx built with "
                       "SSL (--with-http_ssl_module)");
    return NGX_CONF_ERROR;

#else

    if (rc->is_unix) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls\" in \"mpn_redis\" needs a host:port "
                           "address, not \"%V\"", &rc->addr_text);
        return NGX_CONF_ERROR;
    }

    if ((rc->tls_cert.len == 0) != (rc->tls_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tls_cert=\" and \"tls_key=\" in \"mpn_redis\" "
                           "go together");
        return NGX_CONF_ERROR;
    }

    /* the name sent (SNI) and checked: tls_name, else the address's host */

    if (rc->tls_name.len == 0) {
        ngx_http_mpn_redis_tls_name(&rc->tls_name, &rc->host);
    }

    p = ngx_pnalloc(cf->pool, rc->tls_name.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(p, rc->tls_name.data, rc->tls_name.len + 1);
    rc->tls_name.data = p;

    rc->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rc->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->ssl->log = cf->log;

    if (ngx_ssl_create(rc->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rc->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rc->ssl;

    if (rc->tls_cert.len
        && ngx_ssl_certificate(cf, rc->ssl, &rc->tls_cert, &rc->tls_key,
                               NULL)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!rc->tls_verify) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"mpn_redis\" %V: tls_verify=off, the server's "
                           "certificate is not checked: for development "
                           "only", &rc->addr_text);
        return NGX_CONF_OK;
    }

    /* verified after the handshake, as proxy_ssl_verify does */

    if (ngx_ssl_trusted_certificate(cf, rc->ssl,
                                    rc->tls_ca.len ? &rc->tls_ca : &none,
                                    NGX_HTTP_MPN_TLS_VERIFY_DEPTH)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (rc->tls_ca.len == 0
        && SSL_CTX_set_default_verify_paths(rc->ssl->ctx) != 1)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"mpn_redis\" %V: cannot load the system's trusted "
                      "certificates", &rc->addr_text);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#endif
}


/* the name a host is checked against by default: itself, unbracketed */

void
ngx_http_mpn_redis_tls_name(ngx_str_t *name, ngx_str_t *host)
{
    *name = *host;

    if (name->len > 2 && name->data[0] == '[') {
        name->data++;
        name->len -= 2;
    }
}


/* postconfiguration: the http block's resolver, if it has one */

ngx_int_t
ngx_http_mpn_redis_init_conf(ngx_conf_t *cf, ngx_http_mpn_redis_conf_t *rc)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (rc->is_unix || rc->numeric) {
        return NGX_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* nginx gives every http block a resolver, one with no servers if
     * none is configured */

    if (clcf->resolver != NULL && clcf->resolver->connections.nelts) {
        rc->resolver = clcf->resolver;
        rc->resolver_timeout = clcf->resolver_timeout;
    }

    return NGX_OK;
}


/* the address of the next attempt: mpn_redis's, resolved again if it can */

void
ngx_http_mpn_redis_locate(ngx_http_mpn_redis_conn_t *rc)
{
    ngx_resolver_ctx_t         *ctx;
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    if (conf->resolver == NULL) {
        ngx_http_mpn_redis_connect_to(rc, &conf->addr);
        return;
    }

    ctx = ngx_resolve_start(conf->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_http_mpn_redis_connect_to(rc, &conf->addr);
        return;
    }

    ctx->name = conf->host;
    ctx->handler = ngx_http_mpn_redis_resolved;
    ctx->data = rc;
    ctx->timeout = ngx_min(conf->resolver_timeout, conf->connect_timeout);
    ctx->cancelable = 1;

    rc->resolving = ctx;

    /* may answer at once, from the resolver's cache */

    if (ngx_resolve_name(ctx) != NGX_OK) {
        rc->resolving = NULL;
        ngx_http_mpn_redis_connect_to(rc, &conf->addr);
    }
}


void
ngx_http_mpn_redis_locate_cancel(ngx_http_mpn_redis_conn_t *rc)
{
    if (rc->resolving != NULL) {
        ngx_resolve_name_done(rc->resolving);
        rc->resolving = NULL;
    }
}


static void
ngx_http_mpn_redis_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_http_mpn_redis_conn_t  *rc = ctx->data;

    ngx_addr_t                  addr;
    ngx_sockaddr_t              sa;
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    rc->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        /* the last address known will do */
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %s\"%V\" could not be "
                                 "resolved (%i: %s), trying the last "
                                 "address known",
                                 &conf->addr_text, rc->role, &ctx->name,
                                 ctx->state,
                                 ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);

        ngx_http_mpn_redis_connect_to(rc, NULL);
        return;
    }

    ngx_memcpy(&sa, ctx->addrs[0].sockaddr, ctx->addrs[0].socklen);
    addr.sockaddr = &sa.sockaddr;
    addr.socklen = ctx->addrs[0].socklen;

    ngx_resolve_name_done(ctx);

    ngx_http_mpn_redis_connect_to(rc, &addr);
}


/*
 * Connects to the address (with the configured port), noting a change;
 * NULL: the last address known.
 */

static void
ngx_http_mpn_redis_connect_to(ngx_http_mpn_redis_conn_t *rc,
    ngx_addr_t *addr)
{
    u_char                      text[NGX_SOCKADDR_STRLEN];
    size_t                      len;
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    if (addr == NULL) {
        addr = (rc->addr_len == 0) ? &conf->addr : NULL;
    }

    if (addr != NULL
        && (rc->addr_len == 0
            || ngx_cmp_sockaddr(addr->sockaddr, addr->socklen,
                                &rc->addr.sockaddr, rc->addr_len, 0)
               != NGX_OK))
    {
        ngx_memcpy(&rc->addr, addr->sockaddr, addr->socklen);
        rc->addr_len = addr->socklen;

        if (!conf->is_unix) {
            ngx_inet_set_port(&rc->addr.sockaddr, conf->port);
        }

        len = ngx_sock_ntop(&rc->addr.sockaddr, rc->addr_len, text,
                            NGX_SOCKADDR_STRLEN, !conf->is_unix);

        if (rc->peer_name.len != 0) {
            ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                          "mpn: redis %V: %snow at %*s (was %V)",
                          &conf->addr_text, rc->role, len, text,
                          &rc->peer_name);
        }

        rc->peer_name.len = len;
        ngx_memcpy(rc->peer_name.data, text, len);
    }

    ngx_http_mpn_redis_conn_connect(rc, &rc->addr.sockaddr, rc->addr_len,
                                    &rc->peer_name);
}


#if (NGX_SSL)

/* TLS on a connected socket: SNI, then nginx's handshake */

ngx_int_t
ngx_http_mpn_redis_tls_start(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c)
{
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    if (ngx_ssl_create_connection(conf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        return NGX_ERROR;
    }

    /* as per RFC 6066, literal IPv4 and IPv6 addresses are not sent */

    if (ngx_inet_addr(conf->tls_name.data, conf->tls_name.len) == INADDR_NONE
        && ngx_strlchr(conf->tls_name.data,
                       conf->tls_name.data + conf->tls_name.len, ':')
           == NULL
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) conf->tls_name.data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, rc->log, 0,
                      "mpn: redis %V: SSL_set_tlsext_host_name(\"%V\") "
                      "failed", &conf->addr_text, &conf->tls_name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * After the handshake: the chain (tls_ca or the system's store) and the
 * name, as proxy_ssl_verify does; a literal address is checked against
 * the certificate's IP addresses.
 */

ngx_int_t
ngx_http_mpn_redis_tls_check(ngx_http_mpn_redis_conn_t *rc,
    ngx_connection_t *c)
{
    long                        n;
    X509                       *cert;
    ngx_int_t                   ok;
    ngx_http_mpn_redis_conf_t  *conf = rc->conf;

    if (!conf->tls_verify) {
        return NGX_OK;
    }

    n = SSL_get_verify_result(c->ssl->connection);

    if (n != X509_V_OK) {
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sTLS certificate verify "
                                 "error: (%l:%s)", &conf->addr_text,
                                 rc->role, n,
                                 X509_verify_cert_error_string(n));
        return NGX_ERROR;
    }

    if (ngx_inet_addr(conf->tls_name.data, conf->tls_name.len) != INADDR_NONE
        || ngx_strlchr(conf->tls_name.data,
                       conf->tls_name.data + conf->tls_name.len, ':')
           != NULL)
    {
        cert = SSL_get_peer_certificate(c->ssl->connection);
        ok = (cert != NULL
              && X509_check_ip_asc(cert, (char *) conf->tls_name.data, 0)
                 == 1);
        X509_free(cert);

    } else {
        ok = (ngx_ssl_check_host(c, &conf->tls_name) == NGX_OK);
    }

    if (!ok) {
        ngx_http_mpn_log_limited(&rc->connect_limit, rc->log,
                                 "mpn: redis %V: %sTLS certificate does not "
                                 "match \"%V\"", &conf->addr_text, rc->role,
                                 &conf->tls_name);
        return NGX_ERROR;
    }

    return NGX_OK;
}

#endif
