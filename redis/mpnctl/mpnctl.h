/*
 * mpnctl: shared declarations of the operator CLI's files.
 */

#ifndef MPNCTL_H
#define MPNCTL_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>


#define MPNCTL_MAX_ARGS     64
#define MPNCTL_DAY          86400
#define MPNCTL_MAX_LINE     65536   /* MPN_RECORD_MAX_JSON */

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

#define MPNCTL_DEFAULT_MARKER  "mpn:meta"


typedef struct {
    /* Redis */
    char          *addr_buf;        /* the parsed --redis text, owned */
    const char    *host;            /* NULL with unix_path */
    int            port;
    const char    *unix_path;
    int            db;
    const char    *password_file;
    const char    *prefix;
    const char    *channel;         /* NULL: the library's default */
    const char    *marker;          /* the dataset marker key */
    const char    *rev;             /* REV n for the library, or NULL */
    redisContext  *redis;

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

/* mpnctl_marker.c */
int mpnctl_marker_write(mpnctl_t *ctl, int *created);
int mpnctl_library_check(mpnctl_t *ctl, const char *what);

/* mpnctl.c */
void mpnctl_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
redisContext *mpnctl_connect(mpnctl_t *ctl);
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

#endif /* MPNCTL_H */
