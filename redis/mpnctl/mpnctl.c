/*
 * mpnctl: the operator's command line for partner records in Redis.
 *
 * Record writes go through the mpn Functions library (redis/mpn.lua), so
 * the lifecycle rules hold whoever writes; this tool only reads records
 * itself (get, expiring).  docs/mpnctl.md is the manual.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "mpnctl.h"
#include "mpn_record.h"


#define MPNCTL_DEFAULT_REDIS   "127.0.0.1:6379"
#define MPNCTL_DEFAULT_PREFIX  "mpn:partner:"


typedef struct {
    const char   *name;
    int         (*handler)(mpnctl_t *ctl, int argc, char **argv);
    unsigned      options;      /* MPNCTL_O_* the command accepts */
    int           min_args;
    int           max_args;
    const char   *usage;
} mpnctl_command_t;


static int mpnctl_get(mpnctl_t *ctl, int argc, char **argv);
static int mpnctl_put(mpnctl_t *ctl, int argc, char **argv);
static int mpnctl_subscribe(mpnctl_t *ctl, int argc, char **argv);
static int mpnctl_renew(mpnctl_t *ctl, int argc, char **argv);
static int mpnctl_auto_renew(mpnctl_t *ctl, int argc, char **argv);
static int mpnctl_cancel(mpnctl_t *ctl, int argc, char **argv);
static int mpnctl_fcall_write(mpnctl_t *ctl, const char *what,
    const char *fn, const char *id, int nargs, const char **args);
static void mpnctl_usage(FILE *f, const mpnctl_command_t *cmd);


#define MPNCTL_REDIS_OPTS                                                     \
    (MPNCTL_O_REDIS | MPNCTL_O_DB | MPNCTL_O_PASSWORD | MPNCTL_O_PREFIX       \
     | MPNCTL_O_CONN | MPNCTL_O_CLUSTER)
#define MPNCTL_WRITE_OPTS  (MPNCTL_REDIS_OPTS | MPNCTL_O_CHANNEL | MPNCTL_O_REV)


static const mpnctl_command_t  mpnctl_commands[] = {

    { "get", mpnctl_get, MPNCTL_REDIS_OPTS, 1, 1,
      "get ID\n"
      "  Prints the record stored for partner ID (one line of JSON).\n" },

    { "put", mpnctl_put, MPNCTL_WRITE_OPTS, 0, 1,
      "put [FILE|-]\n"
      "  Stores one whole record (a JSON object, read from FILE or stdin)\n"
      "  through mpn_put under the id in its \"partner_id\"; prints the new\n"
      "  rev.\n" },

    { "import", mpnctl_import,
      MPNCTL_REDIS_OPTS | MPNCTL_O_CHANNEL | MPNCTL_O_QUIET | MPNCTL_O_MARKER,
      0, 1,
      "import [FILE|-] [--marker KEY]\n"
      "  Stores records from JSON lines (one record a line) through\n"
      "  mpn_put, up to 1000 commands in flight.  Bad lines are reported by\n"
      "  number and skipped; the last line is a summary.  Exits 1 when any\n"
      "  line was bad.  A progress bar is drawn when stderr is a terminal\n"
      "  (not with --quiet).  Writes the dataset marker (as init) when it\n"
      "  is missing.\n" },

    { "init", mpnctl_init, MPNCTL_REDIS_OPTS | MPNCTL_O_MARKER | MPNCTL_O_NOW,
      0, 0,
      "init [--marker KEY] [--now TIME]\n"
      "  Writes the dataset marker (default key mpn:meta), a small JSON\n"
      "  document {\"v\":1,\"created_at\":...}: the gate serves lookups from\n"
      "  a database only while it holds the marker.  An existing marker is\n"
      "  left as it is.\n" },

    { "subscribe", mpnctl_subscribe,
      MPNCTL_WRITE_OPTS | MPNCTL_O_NOW | MPNCTL_O_BENEFITS, 2, 2,
      "subscribe ID OFFER [--now TIME] [--benefits JSON]\n"
      "  Starts subscription OFFER now, for one year, auto-renew on.  Only\n"
      "  network members (NOT_MEMBER); refused while OFFER is current\n"
      "  (ALREADY_ACTIVE).  Benefits default to Action Pack's for\n"
      "  action_pack.\n" },

    { "renew", mpnctl_renew, MPNCTL_WRITE_OPTS | MPNCTL_O_NOW, 2, 2,
      "renew ID OFFER [--now TIME]\n"
      "  New end = max(end, now) + 1 year; status active; auto-renew on.\n" },

    { "auto-renew", mpnctl_auto_renew, MPNCTL_WRITE_OPTS, 3, 3,
      "auto-renew ID OFFER on|off\n"
      "  Turns auto-renew off (always allowed) or on (RENEW_REQUIRED once it\n"
      "  was turned off, until the subscription is renewed).\n" },

    { "cancel", mpnctl_cancel, MPNCTL_WRITE_OPTS, 2, 2,
      "cancel ID OFFER\n"
      "  Cancels subscription OFFER (support only).\n" },

    { "expiring", mpnctl_expiring,
      MPNCTL_REDIS_OPTS | MPNCTL_O_WITHIN | MPNCTL_O_NOW | MPNCTL_O_JSON,
      0, 0,
      "expiring [--within 30d] [--now TIME] [--json]\n"
      "  Lists active subscriptions ending within the window (the partners\n"
      "  to remind), soonest first, one a line:\n"
      "    ID OFFER END DAYS_LEFT auto-renew=on|off\n"
      "  or one JSON object a line with --json.  Uses SCAN, never KEYS.\n" },

    { "functions", mpnctl_functions, MPNCTL_REDIS_OPTS, 1, 2,
      "functions load [FILE]\n"
      "  Loads the mpn Functions library (FILE, default redis/mpn.lua, else\n"
      "  /usr/share/mpn/mpn.lua) with\n"
      "  FUNCTION LOAD REPLACE: on the server, or with --cluster on every\n"
      "  primary (FUNCTION LOAD is per node).  Prints each node loaded.\n" },

    { "usage", mpnctl_usage_show,
      MPNCTL_REDIS_OPTS | MPNCTL_O_RESET | MPNCTL_O_USAGE | MPNCTL_O_JSON,
      1, 1,
      "usage ID [--reset BENEFIT] [--usage-prefix PREFIX] [--json]\n"
      "  Lists the usage of every metered benefit of partner ID (the keys\n"
      "  PREFIX<ID>:<benefit>:<period start> that mpn_consume writes, term\n"
      "  and month periods alike), one a line:\n"
      "    BENEFIT PERIOD_START used=N tokens=K expires=TIME\n"
      "  With --reset BENEFIT, clears that benefit's usage (every period).\n"
      "  PREFIX defaults to mpn:usage: (the module's mpn_usage_prefix).\n" },

    { "token", mpnctl_token,
      MPNCTL_O_JWKS | MPNCTL_O_KID | MPNCTL_O_ALG | MPNCTL_O_SUB
      | MPNCTL_O_EXP | MPNCTL_O_CLAIM | MPNCTL_O_NOW | MPNCTL_O_ANY_SUB, 0, 0,
      "token --jwks FILE --sub ID [--kid KID] [--alg ALG] [--exp 1h]\n"
      "      [--claim NAME=VALUE]... [--now TIME] [--any-sub]\n"
      "  Signs a test or demo token (JWS compact form) with a key from a\n"
      "  JWKS file: HS256/384/512, RS256/384/512, PS256, ES256/384, EdDSA.\n"
      "  Claims: sub, iat = now, exp = now + --exp, and each --claim (VALUE\n"
      "  is parsed as JSON when it is JSON, else taken as a string; a NAME\n"
      "  of sub, iat or exp replaces that claim).  A sub that is not a\n"
      "  partner id is refused, unless --any-sub (tokens the gate must\n"
      "  refuse, for tests).\n" },

    { "verify", mpnctl_verify, MPNCTL_O_JWKS | MPNCTL_O_NOW, 1, 1,
      "verify --jwks FILE [--now TIME] TOKEN\n"
      "  Checks TOKEN as the module does (mpn_token_claim sub, no issuer or\n"
      "  audience, no leeway); prints the partner id, or the reason\n"
      "  (bad_token, token_expired) and exits 1.\n" },

    { "pubkeys", mpnctl_pubkeys, 0, 1, 1,
      "pubkeys FILE\n"
      "  Prints the public half of the JWKS in FILE (\"-\": stdin): each\n"
      "  RSA, EC and OKP key without its private members.  oct (HMAC) keys\n"
      "  have no public half: they are left out, with a note on stderr.\n"
      "  Give nginx's mpn_token_keys this output, never the signer's file.\n"
      "  Exits 1 when no key is left.\n" },

    { "keygen", mpnctl_keygen, MPNCTL_O_KID | MPNCTL_O_ALG, 0, 0,
      "keygen [--alg ES256] [--kid KID]\n"
      "  Prints a new JWKS holding one private key for ALG (HS256 ...\n"
      "  EdDSA), for `token --jwks`.  The module needs only the public\n"
      "  members, but ignores the private ones.\n" },

    { NULL, NULL, 0, 0, 0, NULL }
};


static const char  mpnctl_common_help[] =
    "options:\n"
    "  --redis ADDR         redis://[user@]host[:port][/db], rediss://... (TLS),\n"
    "                       unix:/path or host:port; default $MPN_REDIS or "
    MPNCTL_DEFAULT_REDIS "\n"
    "                       (given again with --sentinel: more Sentinels)\n"
    "  --db N               database number (default 0)\n"
    "  --password-file PATH AUTH with the first line of PATH (a password is\n"
    "                       never given on the command line)\n"
    "  --tls-ca FILE        CA certificates for rediss:// (default: the\n"
    "                       system's)\n"
    "  --tls-cert FILE --tls-key FILE   a client certificate\n"
    "  --tls-name NAME      the name sent as SNI and checked in the server's\n"
    "                       certificate (default: the address's host)\n"
    "  --sentinel NAME      the --redis addresses are Sentinels: ask them for\n"
    "                       primary NAME\n"
    "  --sentinel-user NAME --sentinel-password-file PATH   AUTH at Sentinels\n"
    "  --cluster            --redis is a seed node of a Redis Cluster: each\n"
    "                       key goes to its node, MOVED/ASK are followed,\n"
    "                       expiring and functions load run on every primary\n"
    "  --prefix STRING      record key prefix (default " MPNCTL_DEFAULT_PREFIX
    ")\n"
    "  --channel NAME       invalidation channel (default mpn:invalidate)\n"
    "  --rev N              write only if the stored rev is N (else CONFLICT)\n"
    "  --marker KEY         dataset marker key (default "
    MPNCTL_DEFAULT_MARKER ")\n"
    "  --now TIME           Unix seconds or RFC 3339 (default: the clock)\n"
    "  --help               this text, or a command's with COMMAND --help\n";


static const struct option  mpnctl_long_options[] = {
    { "redis",         required_argument, NULL, 'r' },
    { "db",            required_argument, NULL, 'd' },
    { "password-file", required_argument, NULL, 'P' },
    { "prefix",        required_argument, NULL, 'p' },
    { "channel",       required_argument, NULL, 'c' },
    { "now",           required_argument, NULL, 'n' },
    { "within",        required_argument, NULL, 'w' },
    { "benefits",      required_argument, NULL, 'b' },
    { "json",          no_argument,       NULL, 'j' },
    { "quiet",         no_argument,       NULL, 'q' },
    { "jwks",          required_argument, NULL, 'J' },
    { "kid",           required_argument, NULL, 'k' },
    { "alg",           required_argument, NULL, 'a' },
    { "sub",           required_argument, NULL, 's' },
    { "exp",           required_argument, NULL, 'e' },
    { "claim",         required_argument, NULL, 'C' },
    { "marker",        required_argument, NULL, 'M' },
    { "any-sub",       no_argument,       NULL, 'A' },
    { "reset",         required_argument, NULL, 1010 },
    { "usage-prefix",  required_argument, NULL, 1011 },
    { "tls-ca",        required_argument, NULL, 1001 },
    { "tls-cert",      required_argument, NULL, 1002 },
    { "tls-key",       required_argument, NULL, 1003 },
    { "tls-name",      required_argument, NULL, 1004 },
    { "sentinel",      required_argument, NULL, 1005 },
    { "sentinel-user", required_argument, NULL, 1006 },
    { "sentinel-password-file", required_argument, NULL, 1007 },
    { "rev",           required_argument, NULL, 'R' },
    { "cluster",       no_argument,       NULL, 1012 },
    { "help",          no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};


static const struct {
    int       ch;
    unsigned  flag;
    char     *name;
}  mpnctl_option_flags[] = {
    { 'r', MPNCTL_O_REDIS, "--redis" },
    { 'd', MPNCTL_O_DB, "--db" },
    { 'P', MPNCTL_O_PASSWORD, "--password-file" },
    { 'p', MPNCTL_O_PREFIX, "--prefix" },
    { 'c', MPNCTL_O_CHANNEL, "--channel" },
    { 'n', MPNCTL_O_NOW, "--now" },
    { 'w', MPNCTL_O_WITHIN, "--within" },
    { 'b', MPNCTL_O_BENEFITS, "--benefits" },
    { 'j', MPNCTL_O_JSON, "--json" },
    { 'q', MPNCTL_O_QUIET, "--quiet" },
    { 'J', MPNCTL_O_JWKS, "--jwks" },
    { 'k', MPNCTL_O_KID, "--kid" },
    { 'a', MPNCTL_O_ALG, "--alg" },
    { 's', MPNCTL_O_SUB, "--sub" },
    { 'e', MPNCTL_O_EXP, "--exp" },
    { 'C', MPNCTL_O_CLAIM, "--claim" },
    { 'M', MPNCTL_O_MARKER, "--marker" },
    { 'A', MPNCTL_O_ANY_SUB, "--any-sub" },
    { 1010, MPNCTL_O_RESET, "--reset" },
    { 1011, MPNCTL_O_USAGE, "--usage-prefix" },
    { 1001, MPNCTL_O_CONN, "--tls-ca" },
    { 1002, MPNCTL_O_CONN, "--tls-cert" },
    { 1003, MPNCTL_O_CONN, "--tls-key" },
    { 1004, MPNCTL_O_CONN, "--tls-name" },
    { 1005, MPNCTL_O_CONN, "--sentinel" },
    { 1006, MPNCTL_O_CONN, "--sentinel-user" },
    { 1007, MPNCTL_O_CONN, "--sentinel-password-file" },
    { 'R', MPNCTL_O_REV, "--rev" },
    { 1012, MPNCTL_O_CLUSTER, "--cluster" },
    { 0, 0, NULL }
};


int
main(int argc, char **argv)
{
    int                      ch, i, help, rc;
    char                    *cmd_name, *env;
    unsigned                 given;
    mpnctl_t                 ctl;
    const mpnctl_command_t  *cmd;

    memset(&ctl, 0, sizeof(mpnctl_t));
    ctl.prefix = MPNCTL_DEFAULT_PREFIX;
    ctl.channel = NULL;
    ctl.marker = MPNCTL_DEFAULT_MARKER;
    ctl.usage_prefix = MPNCTL_DEFAULT_USAGE_PREFIX;
    ctl.now = -1;
    ctl.within = 30 * MPNCTL_DAY;
    ctl.exp = 3600;

    env = getenv("MPN_REDIS");
    if (mpnctl_parse_redis(&ctl, env != NULL ? env : MPNCTL_DEFAULT_REDIS,
                           0)
        != 0)
    {
        return 2;
    }

    help = 0;
    given = 0;
    opterr = 0;

    while ((ch = getopt_long(argc, argv, "+h", mpnctl_long_options, NULL))
           != -1 || optind < argc)
    {
        if (ch == -1) {
            /* a positional argument: keep it, go on with the options after
             * it (the command's own arguments and options may mix) */
            if (ctl.nargs == MPNCTL_MAX_ARGS) {
                mpnctl_error("too many arguments");
                return 2;
            }
            ctl.args[ctl.nargs++] = argv[optind++];
            continue;
        }

        for (i = 0; mpnctl_option_flags[i].ch != 0; i++) {
            if (mpnctl_option_flags[i].ch == ch) {
                given |= mpnctl_option_flags[i].flag;
            }
        }

        switch (ch) {

        case 'r':
            if (mpnctl_parse_redis(&ctl, optarg, 1) != 0) {
                return 2;
            }
            break;

        case 'd':
            if (mpnctl_parse_int(optarg, 0, INT_MAX, &ctl.db) != 0) {
                mpnctl_error("BAD_ARGUMENT --db: not a number: \"%s\"",
                             optarg);
                return 2;
            }
            break;

        case 'P':
            ctl.password_file = optarg;
            break;

        case 'p':
            ctl.prefix = optarg;
            break;

        case 'c':
            if (optarg[0] == '\0') {
                mpnctl_error("BAD_ARGUMENT --channel: empty name");
                return 2;
            }
            ctl.channel = optarg;
            break;

        case 'n':
            if (mpnctl_parse_time(optarg, &ctl.now) != 0 || ctl.now < 0) {
                mpnctl_error("BAD_ARGUMENT --now: not Unix seconds or "
                             "RFC 3339: \"%s\"", optarg);
                return 2;
            }
            break;

        case 'w':
            if (mpnctl_parse_duration(optarg, &ctl.within) != 0) {
                mpnctl_error("BAD_ARGUMENT --within: not a duration such as "
                             "30d, 12h or 3600: \"%s\"", optarg);
                return 2;
            }
            break;

        case 'e':
            if (mpnctl_parse_duration(optarg, &ctl.exp) != 0) {
                mpnctl_error("BAD_ARGUMENT --exp: not a duration such as "
                             "1h, 30m or 3600: \"%s\"", optarg);
                return 2;
            }
            break;

        case 'b':
            ctl.benefits = optarg;
            break;

        case 'M':
            if (optarg[0] == '\0') {
                mpnctl_error("BAD_ARGUMENT --marker: empty key");
                return 2;
            }
            ctl.marker = optarg;
            break;

        case 'R':
            if (optarg[0] < '0' || optarg[0] > '9'
                || strspn(optarg, "0123456789") != strlen(optarg)
                || strlen(optarg) > 15)
            {
                mpnctl_error("BAD_ARGUMENT --rev: not a non-negative "
                             "integer: \"%s\"", optarg);
                return 2;
            }
            ctl.rev = optarg;
            break;

        case 'j':
            ctl.json = 1;
            break;

        case 'q':
            ctl.quiet = 1;
            break;

        case 'A':
            ctl.any_sub = 1;
            break;

        case 1001:
            ctl.tls.ca = optarg;
            break;

        case 1010:
            if (optarg[0] == '\0') {
                mpnctl_error("BAD_ARGUMENT --reset: empty benefit name");
                return 2;
            }
            ctl.reset = optarg;
            break;

        case 1011:
            ctl.usage_prefix = optarg;
            break;

        case 1012:
            ctl.cluster = 1;
            break;

        case 1002:
            ctl.tls.cert = optarg;
            break;

        case 1003:
            ctl.tls.key = optarg;
            break;

        case 1004:
            ctl.tls.name = optarg;
            break;

        case 1005:
            ctl.sentinel = optarg;
            break;

        case 1006:
            ctl.sentinel_user = optarg;
            break;

        case 1007:
            ctl.sentinel_password_file = optarg;
            break;

        case 'J':
            ctl.jwks = optarg;
            break;

        case 'k':
            ctl.kid = optarg;
            break;

        case 'a':
            ctl.alg = optarg;
            break;

        case 's':
            ctl.sub = optarg;
            break;

        case 'C':
            if (ctl.nclaims == MPNCTL_MAX_ARGS) {
                mpnctl_error("too many --claim options");
                return 2;
            }
            ctl.claims[ctl.nclaims++] = optarg;
            break;

        case 'h':
            help = 1;
            break;

        default:
            if (optopt != 0) {
                mpnctl_error("option -%c is unknown or needs a value",
                             optopt);
            } else {
                mpnctl_error("option %s is unknown or needs a value",
                             argv[optind - 1]);
            }
            fprintf(stderr, "try: mpnctl --help\n");
            return 2;
        }
    }

    if (ctl.nargs == 0) {
        mpnctl_usage(help ? stdout : stderr, NULL);
        return help ? 0 : 2;
    }

    cmd_name = ctl.args[0];

    for (cmd = mpnctl_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, cmd_name) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        if (strcmp(cmd_name, "help") == 0) {
            mpnctl_usage(stdout, NULL);
            return 0;
        }
        mpnctl_error("unknown command \"%s\"", cmd_name);
        mpnctl_usage(stderr, NULL);
        return 2;
    }

    if (help) {
        mpnctl_usage(stdout, cmd);
        return 0;
    }

    for (i = 0; mpnctl_option_flags[i].ch != 0; i++) {
        if ((given & mpnctl_option_flags[i].flag)
            && !(cmd->options & mpnctl_option_flags[i].flag))
        {
            mpnctl_error("%s does not take %s", cmd->name,
                         mpnctl_option_flags[i].name);
            return 2;
        }
    }

    if ((ctl.tls.cert == NULL) != (ctl.tls.key == NULL)) {
        mpnctl_error("BAD_ARGUMENT --tls-cert and --tls-key go together");
        return 2;
    }

    if (!ctl.tls_on && (ctl.tls.ca != NULL || ctl.tls.cert != NULL
                        || ctl.tls.name != NULL))
    {
        mpnctl_error("BAD_ARGUMENT --tls-* options need a rediss:// address");
        return 2;
    }

    if (ctl.nargs - 1 < cmd->min_args || ctl.nargs - 1 > cmd->max_args) {
        mpnctl_error("%s: wrong number of arguments", cmd->name);
        mpnctl_usage(stderr, cmd);
        return 2;
    }

    if (ctl.now < 0) {
        ctl.now = (int64_t) time(NULL);
    }

    if (ctl.cluster && mpnctl_cluster_open(&ctl) != 0) {
        rc = 1;

    } else {
        rc = cmd->handler(&ctl, ctl.nargs - 1, ctl.args + 1);
    }

    mpnctl_cluster_close(&ctl);
    mpnctl_disconnect(&ctl);

    return rc;
}


static void
mpnctl_usage(FILE *f, const mpnctl_command_t *cmd)
{
    const mpnctl_command_t  *c;

    if (cmd != NULL) {
        fprintf(f, "usage: mpnctl [options] %s\n", cmd->usage);
        if (cmd->options & MPNCTL_O_REDIS) {
            fprintf(f, "%s", mpnctl_common_help);
        }
        return;
    }

    fprintf(f, "usage: mpnctl [options] COMMAND [ARGS]\n\ncommands:\n");

    for (c = mpnctl_commands; c->name != NULL; c++) {
        fprintf(f, "  %.*s\n", (int) strcspn(c->usage, "\n"), c->usage);
    }

    fprintf(f, "\n%s\nmpnctl COMMAND --help describes a command; "
            "docs/mpnctl.md is the manual.\n", mpnctl_common_help);
}


void
mpnctl_error(const char *fmt, ...)
{
    va_list  ap;

    fflush(stdout);
    fprintf(stderr, "mpnctl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}


/* redis ---------------------------------------------------------------- */


/*
 * Reports a failed command: a connection error or an error reply, whose
 * text starts with the code (NOT_MEMBER, ...).  Returns 0 when r is a
 * normal reply.
 */
int
mpnctl_reply_error(mpnctl_t *ctl, redisReply *r, const char *what)
{
    if (r == NULL) {
        mpnctl_error("%s: Redis connection to %s: %s", what,
                     mpnctl_conn_name(ctl->redis),
                     mpnctl_conn_errstr(ctl->redis));
        return -1;
    }

    if (r->type != REDIS_REPLY_ERROR) {
        return 0;
    }

    if (mpnctl_library_missing(r->str)) {
        mpnctl_error("%s: the mpn Functions library is not loaded in this "
                     "Redis (load it: redis-cli -x FUNCTION LOAD REPLACE "
                     "< redis/mpn.lua)", what);
        return -1;
    }

    mpnctl_error("%s: %s", what, r->str);
    return -1;
}


int
mpnctl_library_missing(const char *reply)
{
    return strstr(reply, "Function not found") != NULL;
}


char *
mpnctl_key(mpnctl_t *ctl, const char *id, size_t len)
{
    char    *key;
    size_t   plen;

    plen = strlen(ctl->prefix);
    key = malloc(plen + len + 1);
    if (key == NULL) {
        mpnctl_error("out of memory");
        exit(1);
    }

    memcpy(key, ctl->prefix, plen);
    memcpy(key + plen, id, len);
    key[plen + len] = '\0';

    return key;
}


/*
 * Fills argv for FCALL fn 1 key args... [CHANNEL ch] [REV n]; argv has
 * room for nargs + 8 entries.  Returns argc.
 */
int
mpnctl_fcall_argv(mpnctl_t *ctl, const char *fn, const char *key, int nargs,
    const char **args, const char **argv)
{
    int  argc, i;

    argc = 0;
    argv[argc++] = "FCALL";
    argv[argc++] = fn;
    argv[argc++] = "1";
    argv[argc++] = key;

    for (i = 0; i < nargs; i++) {
        argv[argc++] = args[i];
    }

    if (ctl->channel != NULL) {
        argv[argc++] = "CHANNEL";
        argv[argc++] = ctl->channel;
    }

    if (ctl->rev != NULL) {
        argv[argc++] = "REV";
        argv[argc++] = ctl->rev;
    }

    return argc;
}


static int
mpnctl_fcall_write(mpnctl_t *ctl, const char *what, const char *fn,
    const char *id, int nargs, const char **args)
{
    int            argc, rc;
    char          *key;
    const char    *argv[16];
    redisReply    *r;

    if (!mpn_partner_id_valid(id, strlen(id))) {
        mpnctl_error("BAD_ARGUMENT partner id \"%s\" does not match "
                     "^[A-Za-z0-9._-]{1,64}$", id);
        return 1;
    }

    key = mpnctl_key(ctl, id, strlen(id));
    argc = mpnctl_fcall_argv(ctl, fn, key, nargs, args, argv);

    /* on the key's node with --cluster */
    r = mpnctl_key_command(ctl, key, strlen(key), argc, argv, NULL);
    rc = 1;

    if (r == NULL) {
        free(key);
        return 1;
    }

    if (mpnctl_reply_error(ctl, r, what) == 0) {
        if (r->type == REDIS_REPLY_INTEGER) {
            printf("rev %lld\n", r->integer);
        }
        rc = 0;
    }

    freeReplyObject(r);
    free(key);

    return rc;
}


/* commands ------------------------------------------------------------- */


static int
mpnctl_get(mpnctl_t *ctl, int argc, char **argv)
{
    int            rc;
    char          *key, err[256];
    mpn_record_t  *rec;
    const char    *cargv[2];
    redisReply    *r;

    (void) argc;

    if (!mpn_partner_id_valid(argv[0], strlen(argv[0]))) {
        mpnctl_error("BAD_ARGUMENT partner id \"%s\" does not match "
                     "^[A-Za-z0-9._-]{1,64}$", argv[0]);
        return 1;
    }

    key = mpnctl_key(ctl, argv[0], strlen(argv[0]));
    cargv[0] = "GET";
    cargv[1] = key;
    r = mpnctl_key_command(ctl, key, strlen(key), 2, cargv, NULL);
    rc = 1;

    if (r == NULL) {
        free(key);
        return 1;
    }

    if (mpnctl_reply_error(ctl, r, "get") == 0) {
        if (r->type == REDIS_REPLY_STRING) {
            fwrite(r->str, 1, r->len, stdout);
            fputc('\n', stdout);
            rc = 0;

            /* the module's own parser: would the gate read it? */
            rec = mpn_record_parse(r->str, r->len, argv[0], strlen(argv[0]),
                                   err, sizeof(err));
            if (rec == NULL) {
                mpnctl_error("get: warning: the gate reads this record as "
                             "bad_record: %s", err);
            }
            free(rec);
        } else {
            mpnctl_error("get: NO_SUCH_PARTNER no record at %s", key);
        }
    }

    freeReplyObject(r);
    free(key);

    return rc;
}


static int
mpnctl_put(mpnctl_t *ctl, int argc, char **argv)
{
    int            rc;
    char          *data, *key;
    size_t         len;
    json_t        *rec, *id;
    const char    *path, *args[1], *cargv[16];
    redisReply    *r;
    json_error_t   jerr;

    path = (argc > 0) ? argv[0] : "-";

    if (mpnctl_read_file(path, &data, &len) != 0) {
        return 1;
    }

    rec = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (rec == NULL) {
        mpnctl_error("put: BAD_RECORD not JSON at line %d: %s", jerr.line,
                     jerr.text);
        free(data);
        return 1;
    }

    id = json_is_object(rec) ? json_object_get(rec, "partner_id") : NULL;
    if (!json_is_string(id)
        || !mpn_partner_id_valid(json_string_value(id),
                                 json_string_length(id)))
    {
        mpnctl_error("put: BAD_RECORD partner_id missing or not "
                     "^[A-Za-z0-9._-]{1,64}$");
        json_decref(rec);
        free(data);
        return 1;
    }

    key = mpnctl_key(ctl, json_string_value(id), json_string_length(id));
    args[0] = data;

    {
        size_t  lens[16];
        int     n, i;

        n = mpnctl_fcall_argv(ctl, "mpn_put", key, 1, args, cargv);
        for (i = 0; i < n; i++) {
            lens[i] = (cargv[i] == data) ? len : strlen(cargv[i]);
        }
        r = mpnctl_key_command(ctl, key, strlen(key), n, cargv, lens);
    }

    rc = 1;
    if (r != NULL && mpnctl_reply_error(ctl, r, "put") == 0) {
        printf("rev %lld\n", r->integer);
        rc = 0;
    }

    freeReplyObject(r);
    free(key);
    json_decref(rec);
    free(data);

    return rc;
}


static int
mpnctl_subscribe(mpnctl_t *ctl, int argc, char **argv)
{
    char         now[32];
    const char  *args[3];

    (void) argc;

    snprintf(now, sizeof(now), "%" PRId64, ctl->now);
    args[0] = argv[1];
    args[1] = now;
    args[2] = ctl->benefits;

    return mpnctl_fcall_write(ctl, "subscribe", "mpn_subscribe", argv[0],
                              ctl->benefits != NULL ? 3 : 2, args);
}


static int
mpnctl_renew(mpnctl_t *ctl, int argc, char **argv)
{
    char         now[32];
    const char  *args[2];

    (void) argc;

    snprintf(now, sizeof(now), "%" PRId64, ctl->now);
    args[0] = argv[1];
    args[1] = now;

    return mpnctl_fcall_write(ctl, "renew", "mpn_renew", argv[0], 2, args);
}


static int
mpnctl_auto_renew(mpnctl_t *ctl, int argc, char **argv)
{
    const char  *args[2];

    (void) argc;

    if (strcmp(argv[2], "on") != 0 && strcmp(argv[2], "off") != 0) {
        mpnctl_error("auto-renew: BAD_ARGUMENT expected on or off, got "
                     "\"%s\"", argv[2]);
        return 2;
    }

    args[0] = argv[1];
    args[1] = argv[2];

    return mpnctl_fcall_write(ctl, "auto-renew",
                              "mpn_set_auto_renew", argv[0], 2, args);
}


static int
mpnctl_cancel(mpnctl_t *ctl, int argc, char **argv)
{
    const char  *args[1];

    (void) argc;

    args[0] = argv[1];

    return mpnctl_fcall_write(ctl, "cancel", "mpn_cancel", argv[0], 1, args);
}


