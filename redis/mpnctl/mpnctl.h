/*
 * mpnctl: shared declarations of the operator CLI's files.
 */

#ifndef MPNCTL_H
#define MPNCTL_H

#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <hiredis/hiredis.h>


#define MPNCTL_MAX_ARGS     64
#define MPNCTL_DAY          86400
#define MPNCTL_MAX_LINE     65536   /* MPN_RECORD_MAX_JSON */
#define MPNCTL_MAX_ADDRS    16
#define MPNCTL_CONNECT_TIMEOUT  5000    /* ms */
#define MPNCTL_IO_TIMEOUT   60          /* s, for each read and write */

/* options, as a mask of what a command accepts */
#define MPNCTL_O_REDIS      0x0001
#define MPNCTL_O_DB         0x0002
#define MPNCTL_O_PASSWORD   0x0004
#define MPNCTL_O_PREFIX     0x0008
#define MPNCTL_O_CHANNEL    0x0010
#define MPNCTL_O_NOW        0x0020
#define MPNCTL_O_WITHIN     0x0040
#define MPNCTL_O_BENEFITS   0x0080
#define MPNCTL_O_JSON       0x0100
#define MPNCTL_O_QUIET      0x0200
#define MPNCTL_O_JWKS       0x0400
#define MPNCTL_O_KID        0x0800
#define MPNCTL_O_ALG        0x1000
#define MPNCTL_O_SUB        0x2000
#define MPNCTL_O_EXP        0x4000
#define MPNCTL_O_CLAIM      0x8000
#define MPNCTL_O_MARKER     0x10000
#define MPNCTL_O_REV        0x20000
#define MPNCTL_O_ANY_SUB    0x40000
#define MPNCTL_O_CONN       0x80000     /* --tls-*, --sentinel* */
#define MPNCTL_O_RESET      0x100000
#define MPNCTL_O_USAGE      0x200000    /* --usage-prefix */
#define MPNCTL_O_CLUSTER    0x400000    /* --cluster */

#define MPNCTL_DEFAULT_USAGE_PREFIX  "mpn:usage:"

#define MPNCTL_DEFAULT_MARKER  "mpn:meta"


/* one Redis (or Sentinel) address */
typedef struct {
    char          *buf;             /* the parsed text, owned */
    const char    *host;            /* NULL with unix_path */
    int            port;
    const char    *unix_path;
} mpnctl_addr_t;


typedef struct {
    const char    *ca;              /* NULL: the system's trust store */
    const char    *cert;            /* client certificate, with key */
    const char    *key;
    const char    *name;            /* NULL: the address's host */
} mpnctl_tls_t;


typedef struct mpnctl_conn_s  mpnctl_conn_t;
typedef struct mpnctl_cluster_s  mpnctl_cluster_t;


typedef struct {
    /* Redis */
    mpnctl_addr_t  addrs[MPNCTL_MAX_ADDRS];
    int            naddrs;
    unsigned       addrs_given:1;   /* a --redis was seen */
    unsigned       tls_on:1;        /* rediss:// */
    const char    *user;
    int            db;
    const char    *password_file;
    mpnctl_tls_t   tls;
    const char    *sentinel;        /* the primary's name at the Sentinels */
    const char    *sentinel_user;
    const char    *sentinel_password_file;
    const char    *prefix;
    const char    *channel;         /* NULL: the library's default */
    const char    *marker;          /* the dataset marker key */
    const char    *usage_prefix;    /* mpn_usage_prefix */
    const char    *reset;           /* usage --reset BENEFIT */
    const char    *rev;             /* REV n for the library, or NULL */
    mpnctl_conn_t *redis;
    unsigned       cluster:1;       /* --cluster: the address is a seed */
    mpnctl_cluster_t *cluster_state; /* the slot map, node connections */

    /* command options */
    int64_t        now;
    int64_t        within;
    int64_t        exp;
    const char    *benefits;
    unsigned       json:1;
    unsigned       quiet:1;
    unsigned       any_sub:1;
    const char    *jwks;
    const char    *kid;
    const char    *alg;
    const char    *sub;
    const char    *claims[MPNCTL_MAX_ARGS];
    int            nclaims;

    /* positional arguments, the command first */
    char          *args[MPNCTL_MAX_ARGS];
    int            nargs;
} mpnctl_t;


/* commands in their own files */
int mpnctl_import(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_expiring(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_token(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_verify(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_keygen(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_pubkeys(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_init(mpnctl_t *ctl, int argc, char **argv);
int mpnctl_usage_show(mpnctl_t *ctl, int argc, char **argv);

/* mpnctl_marker.c */
int mpnctl_marker_write(mpnctl_t *ctl, int *created);
int mpnctl_library_check(mpnctl_t *ctl, const char *what);

/* mpnctl_redis.c: addresses, AUTH, SELECT, Sentinel */
int mpnctl_parse_redis(mpnctl_t *ctl, const char *spec, int from_option);
void mpnctl_addr_format(const mpnctl_addr_t *a, char *buf, size_t len);
mpnctl_conn_t *mpnctl_connect(mpnctl_t *ctl);
void mpnctl_disconnect(mpnctl_t *ctl);
typedef int (*mpnctl_scan_page_pt)(mpnctl_t *ctl, redisReply *keys,
    void *arg);
int mpnctl_scan(mpnctl_t *ctl, mpnctl_conn_t *c, const char *what,
    const char *pattern, mpnctl_scan_page_pt page, void *arg);

/* mpnctl_conn.c: one blocking connection, plain or TLS */
mpnctl_conn_t *mpnctl_conn_open(const mpnctl_addr_t *a,
    const mpnctl_tls_t *tls, int timeout_ms, char *err, size_t err_len);
void mpnctl_conn_close(mpnctl_conn_t *c);
const char *mpnctl_conn_errstr(mpnctl_conn_t *c);
const char *mpnctl_conn_name(mpnctl_conn_t *c);
int mpnctl_append(mpnctl_conn_t *c, int argc, const char **argv,
    const size_t *lens);
int mpnctl_get_reply(mpnctl_conn_t *c, redisReply **reply);
int mpnctl_conn_flush(mpnctl_conn_t *c);
redisReply *mpnctl_command(mpnctl_conn_t *c, int argc, const char **argv,
    const size_t *lens);

/* mpnctl_cluster.c: routing by key slot with --cluster */
int mpnctl_cluster_open(mpnctl_t *ctl);
void mpnctl_cluster_close(mpnctl_t *ctl);
mpnctl_conn_t *mpnctl_node_of(mpnctl_t *ctl, const char *key, size_t len);
redisReply *mpnctl_key_command(mpnctl_t *ctl, const char *key,
    size_t key_len, int argc, const char **argv, const size_t *lens);
int mpnctl_cluster_flush(mpnctl_t *ctl);
size_t mpnctl_primaries(mpnctl_t *ctl);
mpnctl_conn_t *mpnctl_primary(mpnctl_t *ctl, size_t i, char *name,
    size_t name_len);

/* mpnctl_functions.c */
int mpnctl_functions(mpnctl_t *ctl, int argc, char **argv);

/* mpnctl.c */
void mpnctl_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
int mpnctl_reply_error(mpnctl_t *ctl, redisReply *r, const char *what);
int mpnctl_library_missing(const char *reply);
char *mpnctl_key(mpnctl_t *ctl, const char *id, size_t len);
int mpnctl_fcall_argv(mpnctl_t *ctl, const char *fn, const char *key,
    int nargs, const char **args, const char **argv);

/* mpnctl_util.c */
int mpnctl_parse_int(const char *s, int min, int max, int *out);
int mpnctl_parse_time(const char *s, int64_t *out);
int mpnctl_parse_duration(const char *s, int64_t *out);
int mpnctl_read_file(const char *path, char **data, size_t *len);
char *mpnctl_glob_prefix(const char *prefix, const char *more);
struct json_t;
void mpnctl_print_json(struct json_t *o);

#endif /* MPNCTL_H */
