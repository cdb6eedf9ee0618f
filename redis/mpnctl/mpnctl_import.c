/*
 * mpnctl import: JSON lines in, FCALL mpn_put per line, pipelined with up
 * to MPNCTL_INFLIGHT commands in flight.
 *
 * Lines are queued in order in a ring; a line found bad before sending
 * (not JSON, no usable partner_id) takes its place in the ring with its
 * reason, so every bad line is reported in line order, whether Redis or
 * mpnctl refused it.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "mpnctl.h"
#include "mpn_record.h"


#define MPNCTL_INFLIGHT   1000
#define MPNCTL_PROGRESS   100000      /* microseconds between redraws */
#define MPNCTL_BAR        24


typedef struct {
    size_t          line;
    int             sent;           /* a command was sent: read its reply */
    char           *error;          /* not sent: why (NULL: no memory) */
    mpnctl_conn_t  *redis;          /* where it was sent */
    char           *key;            /* --cluster: to send it again after */
    char           *text;           /* a MOVED or an ASK */
    size_t          len;
} mpnctl_queued_t;


typedef struct {
    mpnctl_t         *ctl;
    mpnctl_conn_t    *redis;

    mpnctl_queued_t   ring[MPNCTL_INFLIGHT];
    size_t            head;
    size_t            count;

    size_t            lines;        /* records seen (non-blank lines) */
    size_t            imported;
    size_t            bad;
    size_t            redirected;   /* lines sent again (MOVED, ASK) */

    int               progress;     /* draw the progress bar */
    int               drawn;        /* a progress line is on screen */
    double            started;
    double            last_draw;
    off_t             total_bytes;  /* 0: unknown (a pipe) */
    off_t             read_bytes;
} mpnctl_import_t;


static int mpnctl_import_line(mpnctl_import_t *im, size_t line, char *text,
    size_t len);
static int mpnctl_import_queue(mpnctl_import_t *im, size_t line,
    const char *error, mpnctl_conn_t *c, char *key, const char *text,
    size_t len);
static redisReply *mpnctl_import_redirected(mpnctl_import_t *im,
    mpnctl_queued_t *q, redisReply *r);
static int mpnctl_import_settle(mpnctl_import_t *im);
static void mpnctl_import_bad(mpnctl_import_t *im, size_t line,
    const char *reason);
static void mpnctl_import_progress(mpnctl_import_t *im, int force);
static void mpnctl_import_clear(mpnctl_import_t *im);
static double mpnctl_now(void);


int
mpnctl_import(mpnctl_t *ctl, int argc, char **argv)
{
    int               rc, created;
    FILE             *f;
    char             *text;
    size_t            cap, line;
    ssize_t           n;
    double            secs;
    const char       *path;
    struct stat       st;
    mpnctl_import_t  *im;

    path = (argc > 0) ? argv[0] : "-";

    if (strcmp(path, "-") == 0) {
        f = stdin;
    } else {
        f = fopen(path, "r");
        if (f == NULL) {
            mpnctl_error("import: cannot open \"%s\": %s", path,
                         strerror(errno));
            return 1;
        }
    }

    im = calloc(1, sizeof(mpnctl_import_t));
    if (im == NULL) {
        mpnctl_error("out of memory");
        return 1;
    }

    im->ctl = ctl;
    im->redis = mpnctl_connect(ctl);
    if (im->redis == NULL || mpnctl_library_check(ctl, "import") != 0) {
        free(im);
        return 1;
    }

    im->progress = !ctl->quiet && isatty(STDERR_FILENO);
    im->started = mpnctl_now();

    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        im->total_bytes = st.st_size;
    }

    text = NULL;
    cap = 0;
    line = 0;
    rc = 0;

    while ((n = getline(&text, &cap, f)) != -1) {
        line++;
        im->read_bytes += n;

        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
            text[--n] = '\0';
        }

        if (strspn(text, " \t") == (size_t) n) {
            continue;               /* blank lines are not records */
        }

        if (mpnctl_import_line(im, line, text, (size_t) n) != 0) {
            rc = -1;
            break;
        }

        if (im->progress) {
            mpnctl_import_progress(im, 0);
        }
    }

    if (rc == 0 && ferror(f)) {
        mpnctl_import_clear(im);
        mpnctl_error("import: cannot read \"%s\": %s", path,
                     strerror(errno));
        rc = -1;
    }

    while (rc == 0 && im->count > 0) {
        rc = mpnctl_import_settle(im);
    }

    free(text);
    if (f != stdin) {
        fclose(f);
    }

    if (im->progress) {
        mpnctl_import_progress(im, 1);
        mpnctl_import_clear(im);
    }

    secs = mpnctl_now() - im->started;

    if (rc == 0 && im->imported > 0) {
        /* the records are there: the gate may serve them */
        if (mpnctl_marker_write(ctl, &created) != 0) {
            rc = -1;
        } else if (created) {
            printf("marker %s written\n", ctl->marker);
        }
    }

    if (rc != 0) {
        printf("import stopped at line %zu: %zu records imported, %zu bad "
               "lines\n", line, im->imported, im->bad);
        free(im);
        return 1;
    }

    printf("imported %zu of %zu records, %zu bad line%s, in %.2f s "
           "(%.0f records/s)", im->imported, im->lines, im->bad,
           im->bad == 1 ? "" : "s", secs,
           secs > 0 ? (double) im->imported / secs : 0.0);

    if (ctl->cluster) {
        printf(" across %zu primaries, %zu sent again after a redirect",
               mpnctl_primaries(ctl), im->redirected);
    }

    printf("\n");

    rc = (im->bad > 0) ? 1 : 0;
    free(im);

    return rc;
}


/* Checks one line and sends FCALL mpn_put for it, or queues its reason. */
static int
mpnctl_import_line(mpnctl_import_t *im, size_t line, char *text, size_t len)
{
    int            argc, i;
    char          *key, reason[256];
    size_t         lens[16];
    json_t        *rec, *id;
    const char    *argv[16], *args[1];
    json_error_t   jerr;
    mpnctl_conn_t *c;

    im->lines++;

    if (len > MPNCTL_MAX_LINE) {
        snprintf(reason, sizeof(reason), "BAD_RECORD longer than %d bytes",
                 MPNCTL_MAX_LINE);
        return mpnctl_import_queue(im, line, reason, NULL, NULL, NULL, 0);
    }

    rec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (rec == NULL) {
        snprintf(reason, sizeof(reason), "BAD_RECORD not JSON: %s "
                 "(column %d)", jerr.text, jerr.column);
        return mpnctl_import_queue(im, line, reason, NULL, NULL, NULL, 0);
    }

    id = json_is_object(rec) ? json_object_get(rec, "partner_id") : NULL;

    if (!json_is_string(id)
        || !mpn_partner_id_valid(json_string_value(id),
                                 json_string_length(id)))
    {
        json_decref(rec);
        return mpnctl_import_queue(im, line,
                                   "BAD_RECORD partner_id missing or not "
                                   "^[A-Za-z0-9._-]{1,64}$",
                                   NULL, NULL, NULL, 0);
    }

    key = mpnctl_key(im->ctl, json_string_value(id), json_string_length(id));
    json_decref(rec);

    args[0] = text;
    argc = mpnctl_fcall_argv(im->ctl, "mpn_put", key, 1, args, argv);

    for (i = 0; i < argc; i++) {
        lens[i] = (argv[i] == text) ? len : strlen(argv[i]);
    }

    /* with --cluster, pipelined per node: each key to its slot's node */

    c = mpnctl_node_of(im->ctl, key, strlen(key));
    if (c == NULL) {
        free(key);
        mpnctl_import_clear(im);
        return -1;
    }

    if (mpnctl_append(c, argc, argv, lens) != 0) {
        free(key);
        mpnctl_import_clear(im);
        mpnctl_error("import: line %zu: Redis connection to %s: %s", line,
                     mpnctl_conn_name(c), mpnctl_conn_errstr(c));
        return -1;
    }

    return mpnctl_import_queue(im, line, NULL, c, key, text, len);
}


/*
 * Adds a line to the ring, first settling the oldest one when it is full:
 * a command sent on c (error NULL; key is the ring's) or a line refused
 * here, with its reason.  With --cluster the line is kept, to be sent again
 * where a MOVED or an ASK says.
 */
static int
mpnctl_import_queue(mpnctl_import_t *im, size_t line, const char *error,
    mpnctl_conn_t *c, char *key, const char *text, size_t len)
{
    mpnctl_queued_t  *q;

    if (im->count == MPNCTL_INFLIGHT && mpnctl_import_settle(im) != 0) {
        free(key);
        return -1;
    }

    q = &im->ring[(im->head + im->count) % MPNCTL_INFLIGHT];
    q->line = line;
    q->sent = (error == NULL);
    q->error = (error != NULL) ? strdup(error) : NULL;
    q->redis = c;
    q->key = NULL;
    q->text = NULL;
    q->len = len;

    if (im->ctl->cluster && key != NULL) {
        q->key = key;
        q->text = malloc(len + 1);
        if (q->text == NULL) {
            mpnctl_error("out of memory");
            exit(1);
        }
        memcpy(q->text, text, len);
        q->text[len] = '\0';

    } else {
        free(key);
    }

    im->count++;

    return 0;
}


/* Takes the oldest line off the ring: reports its reason, or reads its
 * reply. */
static int
mpnctl_import_settle(mpnctl_import_t *im)
{
    redisReply       *r;
    mpnctl_queued_t  *q;

    q = &im->ring[im->head];
    im->head = (im->head + 1) % MPNCTL_INFLIGHT;
    im->count--;

    if (!q->sent) {
        mpnctl_import_bad(im, q->line,
                          q->error != NULL ? q->error : "out of memory");
        free(q->error);
        q->error = NULL;
        return 0;
    }

    /* every node's pipeline goes out before one is waited on */

    if (mpnctl_cluster_flush(im->ctl) != 0
        || mpnctl_get_reply(q->redis, &r) != 0)
    {
        mpnctl_import_clear(im);
        mpnctl_error("import: line %zu: Redis connection to %s: %s", q->line,
                     mpnctl_conn_name(q->redis),
                     mpnctl_conn_errstr(q->redis));
        return -1;
    }

    if (q->key != NULL) {
        r = mpnctl_import_redirected(im, q, r);
        free(q->key);
        free(q->text);
        q->key = NULL;
        q->text = NULL;

        if (r == NULL) {
            mpnctl_import_clear(im);
            return -1;
        }
    }

    if (r->type == REDIS_REPLY_ERROR) {
        if (mpnctl_library_missing(r->str)) {
            mpnctl_import_clear(im);
            (void) mpnctl_reply_error(im->ctl, r, "import");
            freeReplyObject(r);
            return -1;
        }
        mpnctl_import_bad(im, q->line, r->str);

    } else {
        im->imported++;
    }

    freeReplyObject(r);

    return 0;
}


/* a MOVED or an ASK: the line goes again where it says (the map follows) */
static redisReply *
mpnctl_import_redirected(mpnctl_import_t *im, mpnctl_queued_t *q,
    redisReply *r)
{
    int          argc, i;
    size_t       lens[16];
    const char  *argv[16], *args[1];

    if (r->type != REDIS_REPLY_ERROR
        || (strncmp(r->str, "MOVED ", 6) != 0
            && strncmp(r->str, "ASK ", 4) != 0))
    {
        return r;
    }

    freeReplyObject(r);

    args[0] = q->text;
    argc = mpnctl_fcall_argv(im->ctl, "mpn_put", q->key, 1, args, argv);

    for (i = 0; i < argc; i++) {
        lens[i] = (argv[i] == q->text) ? q->len : strlen(argv[i]);
    }

    im->redirected++;

    return mpnctl_key_command(im->ctl, q->key, strlen(q->key), argc, argv,
                              lens);
}


static void
mpnctl_import_bad(mpnctl_import_t *im, size_t line, const char *reason)
{
    im->bad++;
    mpnctl_import_clear(im);
    fflush(stdout);
    fprintf(stderr, "mpnctl: line %zu: %s\n", line, reason);
}


/*
 *   [#########...............]  45120 records  12345/s  37%  ETA 0:04
 * ETA and percentage only when the input is a regular file.
 */
static void
mpnctl_import_progress(mpnctl_import_t *im, int force)
{
    int     i, filled;
    char    bar[MPNCTL_BAR + 1];
    double  now, rate, frac, eta;

    now = mpnctl_now();
    if (!force && now - im->last_draw < MPNCTL_PROGRESS / 1e6) {
        return;
    }
    im->last_draw = now;

    rate = (now > im->started) ? im->lines / (now - im->started) : 0;

    if (im->total_bytes > 0) {
        frac = (double) im->read_bytes / (double) im->total_bytes;
        if (frac > 1) {
            frac = 1;
        }
        filled = (int) (frac * MPNCTL_BAR);
        for (i = 0; i < MPNCTL_BAR; i++) {
            bar[i] = (i < filled) ? '#' : '.';
        }
        bar[MPNCTL_BAR] = '\0';
        eta = (frac > 0) ? (now - im->started) * (1 - frac) / frac : 0;

        fprintf(stderr, "\r\033[K[%s] %zu records  %.0f/s  %3.0f%%  "
                "ETA %d:%02d", bar, im->lines, rate, frac * 100,
                (int) eta / 60, (int) eta % 60);
    } else {
        fprintf(stderr, "\r\033[K%zu records  %.0f/s", im->lines, rate);
    }

    im->drawn = 1;
}


static void
mpnctl_import_clear(mpnctl_import_t *im)
{
    if (im->drawn) {
        fprintf(stderr, "\r\033[K");
        im->drawn = 0;
    }
}


static double
mpnctl_now(void)
{
    struct timeval  tv;

    gettimeofday(&tv, NULL);

    return tv.tv_sec + tv.tv_usec / 1e6;
}
