/*
 * mpnctl's Redis connection: a small blocking client over a TCP or unix
 * socket, optionally through OpenSSL.  hiredis 0.14 has no TLS, so the
 * socket is ours; hiredis still encodes the commands
 * (redisFormatCommandArgv) and parses the replies (a redisReader), whose
 * objects are the usual redisReply (freeReplyObject).
 *
 * Commands are appended to an output buffer and sent when a reply is
 * asked for (or when the buffer grows large), so a caller can pipeline:
 * append N, then read N replies.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mpnctl.h"


#define MPNCTL_FLUSH_AT     (1024 * 1024)   /* send once this much waits */
#define MPNCTL_READ_CHUNK   16384


struct mpnctl_conn_s {
    int            fd;
    SSL_CTX       *ssl_ctx;
    SSL           *ssl;
    redisReader   *reader;
    char          *out;
    size_t         out_len;
    size_t         out_cap;
    char           name[300];       /* "127.0.0.1:6379", for messages */
    char           errstr[512];
};


static int mpnctl_conn_socket(mpnctl_conn_t *c, const mpnctl_addr_t *a,
    int timeout_ms);
static int mpnctl_conn_tls(mpnctl_conn_t *c, const mpnctl_addr_t *a,
    const mpnctl_tls_t *tls);
static void mpnctl_conn_fail(mpnctl_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *mpnctl_ssl_error(void);


/*
 * Connects to a, with TLS when tls is not NULL.  Returns NULL with the
 * reason in err when the connection or the handshake fails.
 */
mpnctl_conn_t *
mpnctl_conn_open(const mpnctl_addr_t *a, const mpnctl_tls_t *tls,
    int timeout_ms, char *err, size_t err_len)
{
    mpnctl_conn_t  *c;

    c = calloc(1, sizeof(mpnctl_conn_t));
    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }

    c->fd = -1;
    mpnctl_addr_format(a, c->name, sizeof(c->name));

    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        snprintf(err, err_len, "out of memory");
        free(c);
        return NULL;
    }

    if (mpnctl_conn_socket(c, a, timeout_ms) != 0
        || (tls != NULL && mpnctl_conn_tls(c, a, tls) != 0))
    {
        snprintf(err, err_len, "%s", c->errstr);
        mpnctl_conn_close(c);
        return NULL;
    }

    return c;
}


void
mpnctl_conn_close(mpnctl_conn_t *c)
{
    if (c == NULL) {
        return;
    }

    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }

    if (c->ssl_ctx != NULL) {
        SSL_CTX_free(c->ssl_ctx);
    }

    if (c->fd != -1) {
        close(c->fd);
    }

    if (c->reader != NULL) {
        redisReaderFree(c->reader);
    }

    if (c->out != NULL) {
        explicit_bzero(c->out, c->out_cap);     /* AUTH went through it */
        free(c->out);
    }

    free(c);
}


const char *
mpnctl_conn_errstr(mpnctl_conn_t *c)
{
    return c->errstr[0] != '\0' ? c->errstr : "connection lost";
}


const char *
mpnctl_conn_name(mpnctl_conn_t *c)
{
    return c->name;
}


/* Queues one command; lens NULL: the arguments are C strings. */
int
mpnctl_append(mpnctl_conn_t *c, int argc, const char **argv,
    const size_t *lens)
{
    int     n;
    char   *cmd, *p;
    size_t  cap, *l, lbuf[16];

    l = (size_t *) lens;

    if (l == NULL) {
        l = (argc <= 16) ? lbuf : malloc(argc * sizeof(size_t));
        if (l == NULL) {
            mpnctl_conn_fail(c, "out of memory");
            return -1;
        }
        for (n = 0; n < argc; n++) {
            l[n] = strlen(argv[n]);
        }
    }

    n = redisFormatCommandArgv(&cmd, argc, argv, l);

    if (l != lens && l != lbuf) {
        free(l);
    }

    if (n < 0) {
        mpnctl_conn_fail(c, "out of memory");
        return -1;
    }

    if (c->out_len + n > c->out_cap) {
        cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n) {
            cap *= 2;
        }
        p = malloc(cap);
        if (p == NULL) {
            redisFreeCommand(cmd);
            mpnctl_conn_fail(c, "out of memory");
            return -1;
        }
        if (c->out != NULL) {
            memcpy(p, c->out, c->out_len);
            explicit_bzero(c->out, c->out_cap);
            free(c->out);
        }
        c->out = p;
        c->out_cap = cap;
    }

    memcpy(c->out + c->out_len, cmd, n);
    c->out_len += n;
    explicit_bzero(cmd, n);
    redisFreeCommand(cmd);

    if (c->out_len >= MPNCTL_FLUSH_AT) {
        return mpnctl_conn_flush(c);
    }

    return 0;
}


/*
 * Sends what is queued, then reads until the next reply is complete.
 * Returns 0 with *reply set, or -1 (mpnctl_conn_errstr says why).
 */
int
mpnctl_get_reply(mpnctl_conn_t *c, redisReply **reply)
{
    int     n, err;
    char    buf[MPNCTL_READ_CHUNK];
    void   *r;

    *reply = NULL;

    if (mpnctl_conn_flush(c) != 0) {
        return -1;
    }

    for ( ;; ) {
        r = NULL;
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            mpnctl_conn_fail(c, "protocol error: %s", c->reader->errstr);
            return -1;
        }

        if (r != NULL) {
            *reply = r;
            return 0;
        }

        if (c->ssl != NULL) {
            ERR_clear_error();
            n = SSL_read(c->ssl, buf, sizeof(buf));
            if (n <= 0) {
                err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_ZERO_RETURN) {
                    mpnctl_conn_fail(c, "connection closed by the server");
                } else if (err == SSL_ERROR_SYSCALL && errno == 0) {
                    mpnctl_conn_fail(c, "connection closed by the server");
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    mpnctl_conn_fail(c, "timed out waiting for a reply");
                } else {
                    mpnctl_conn_fail(c, "TLS read: %s", mpnctl_ssl_error());
                }
                return -1;
            }

        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n == 0) {
                mpnctl_conn_fail(c, "connection closed by the server");
                return -1;
            }
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                mpnctl_conn_fail(c, "%s", (errno == EAGAIN
                                           || errno == EWOULDBLOCK)
                                          ? "timed out waiting for a reply"
                                          : strerror(errno));
                return -1;
            }
        }

        if (redisReaderFeed(c->reader, buf, n) != REDIS_OK) {
            mpnctl_conn_fail(c, "protocol error: %s", c->reader->errstr);
            return -1;
        }
    }
}


/* One command, its reply; NULL on a connection error. */
redisReply *
mpnctl_command(mpnctl_conn_t *c, int argc, const char **argv,
    const size_t *lens)
{
    redisReply  *r;

    if (mpnctl_append(c, argc, argv, lens) != 0
        || mpnctl_get_reply(c, &r) != 0)
    {
        return NULL;
    }

    return r;
}


/* sends what is buffered now, without waiting for a reply */

int
mpnctl_conn_flush(mpnctl_conn_t *c)
{
    int      n;
    size_t   off;

    off = 0;

    while (off < c->out_len) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            n = SSL_write(c->ssl, c->out + off, (int) (c->out_len - off));
            if (n <= 0) {
                mpnctl_conn_fail(c, "TLS write: %s", mpnctl_ssl_error());
                return -1;
            }

        } else {
            n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                mpnctl_conn_fail(c, "write: %s", strerror(errno));
                return -1;
            }
        }

        off += n;
    }

    explicit_bzero(c->out, c->out_len);
    c->out_len = 0;

    return 0;
}


/* the socket, connected within timeout_ms, then blocking with timeouts */
static int
mpnctl_conn_socket(mpnctl_conn_t *c, const mpnctl_addr_t *a, int timeout_ms)
{
    int                 fd, rc, err, one;
    char                port[16];
    socklen_t           len;
    struct pollfd       pfd;
    struct timeval      tv;
    struct addrinfo     hints, *res, *ai;
    struct sockaddr_un  sun;

    if (a->unix_path != NULL) {
        if (strlen(a->unix_path) >= sizeof(sun.sun_path)) {
            mpnctl_conn_fail(c, "socket path too long");
            return -1;
        }
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        strcpy(sun.sun_path, a->unix_path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd == -1 || connect(fd, (struct sockaddr *) &sun, sizeof(sun))
                        != 0)
        {
            mpnctl_conn_fail(c, "%s", strerror(errno));
            if (fd != -1) {
                close(fd);
            }
            return -1;
        }

        c->fd = fd;
        goto timeouts;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", a->port);

    rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        mpnctl_conn_fail(c, "cannot resolve \"%s\": %s", a->host,
                         gai_strerror(rc));
        return -1;
    }

    err = 0;

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC
                                   | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd == -1) {
            err = errno;
            continue;
        }

        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }

        if (errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            rc = poll(&pfd, 1, timeout_ms);
            len = sizeof(err);
            if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                           == 0 && err == 0)
            {
                c->fd = fd;
                break;
            }
            if (rc == 0) {
                err = ETIMEDOUT;
            }
        } else {
            err = errno;
        }

        close(fd);
    }

    freeaddrinfo(res);

    if (c->fd == -1) {
        mpnctl_conn_fail(c, "%s", strerror(err));
        return -1;
    }

    /* blocking from now on, every wait bounded by the timeouts below */
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
    one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

timeouts:

    tv.tv_sec = MPNCTL_IO_TIMEOUT;
    tv.tv_usec = 0;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    return 0;
}


/*
 * The TLS handshake: the server's chain checked against --tls-ca (or the
 * system's trust store) and its name against --tls-name (or the address's
 * host: a DNS name or an IP address); SNI for names.
 */
static int
mpnctl_conn_tls(mpnctl_conn_t *c, const mpnctl_addr_t *a,
    const mpnctl_tls_t *tls)
{
    int                  rc;
    long                 vr;
    const char          *name;
    unsigned char        ip[16];
    X509_VERIFY_PARAM   *param;

    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (c->ssl_ctx == NULL) {
        mpnctl_conn_fail(c, "TLS: %s", mpnctl_ssl_error());
        return -1;
    }

    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);

    rc = (tls->ca != NULL)
         ? SSL_CTX_load_verify_locations(c->ssl_ctx, tls->ca, NULL)
         : SSL_CTX_set_default_verify_paths(c->ssl_ctx);
    if (rc != 1) {
        mpnctl_conn_fail(c, "TLS: cannot load the CA file \"%s\": %s",
                         tls->ca ? tls->ca : "(system)", mpnctl_ssl_error());
        return -1;
    }

    if (tls->cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, tls->cert) != 1) {
            mpnctl_conn_fail(c, "TLS: cannot load --tls-cert \"%s\": %s",
                             tls->cert, mpnctl_ssl_error());
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(c->ssl_ctx, tls->key,
                                        SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(c->ssl_ctx) != 1)
        {
            mpnctl_conn_fail(c, "TLS: cannot load --tls-key \"%s\" (or it "
                             "does not match the certificate): %s",
                             tls->key, mpnctl_ssl_error());
            return -1;
        }
    }

    c->ssl = SSL_new(c->ssl_ctx);
    if (c->ssl == NULL) {
        mpnctl_conn_fail(c, "TLS: %s", mpnctl_ssl_error());
        return -1;
    }

    name = (tls->name != NULL) ? tls->name : a->host;
    param = SSL_get0_param(c->ssl);

    if (name != NULL) {
        if (inet_pton(AF_INET, name, ip) == 1
            || inet_pton(AF_INET6, name, ip) == 1)
        {
            X509_VERIFY_PARAM_set1_ip_asc(param, name);

        } else {
            SSL_set_tlsext_host_name(c->ssl, name);
            X509_VERIFY_PARAM_set_hostflags(param,
                                      X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(param, name, 0);
        }
    }

    SSL_set_fd(c->ssl, c->fd);
    SSL_set_mode(c->ssl, SSL_MODE_AUTO_RETRY);

    ERR_clear_error();
    rc = SSL_connect(c->ssl);
    if (rc != 1) {
        vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK) {
            mpnctl_conn_fail(c, "TLS: the server's certificate was refused: "
                             "%s%s%s", X509_verify_cert_error_string(vr),
                             vr == X509_V_ERR_HOSTNAME_MISMATCH
                             || vr == X509_V_ERR_IP_ADDRESS_MISMATCH
                             ? " (expected " : "",
                             vr == X509_V_ERR_HOSTNAME_MISMATCH
                             || vr == X509_V_ERR_IP_ADDRESS_MISMATCH
                             ? name : "");
            if (vr == X509_V_ERR_HOSTNAME_MISMATCH
                || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
            {
                strncat(c->errstr, ")", sizeof(c->errstr)
                                        - strlen(c->errstr) - 1);
            }
        } else {
            mpnctl_conn_fail(c, "TLS handshake: %s", mpnctl_ssl_error());
        }
        return -1;
    }

    return 0;
}


static void
mpnctl_conn_fail(mpnctl_conn_t *c, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
}


static const char *
mpnctl_ssl_error(void)
{
    unsigned long  e;
    static char    buf[256];

    e = ERR_peek_last_error();
    if (e == 0) {
        return (errno != 0) ? strerror(errno) : "connection closed";
    }

    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();

    return buf;
}
