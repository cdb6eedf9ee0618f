/*
 * mpnctl: argument parsing and file reading.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mpnctl.h"
#include "mpn_time.h"


int
mpnctl_parse_int(const char *s, int min, int max, int *out)
{
    long   v;
    char  *end;

    if (*s == '\0') {
        return -1;
    }

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }

    *out = (int) v;
    return 0;
}


/* Unix seconds ("1767225600") or RFC 3339 ("2026-01-01T00:00:00Z") */
int
mpnctl_parse_time(const char *s, int64_t *out)
{
    long long   v;
    char       *end;

    if (*s >= '0' && *s <= '9' && strspn(s, "0123456789") == strlen(s)) {
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || v > 253402300799LL) {
            return -1;
        }
        *out = v;
        return 0;
    }

    return mpn_time_parse(s, strlen(s), out);
}


/* "30d", "12h", "15m", "90s", "2w" or plain seconds */
int
mpnctl_parse_duration(const char *s, int64_t *out)
{
    long long   v;
    char       *end;
    int64_t     unit;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0) {
        return -1;
    }

    switch (*end) {
    case '\0':
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = MPNCTL_DAY;
        break;
    case 'w':
        unit = 7 * MPNCTL_DAY;
        break;
    default:
        return -1;
    }

    if (*end != '\0' && end[1] != '\0') {
        return -1;
    }

    if (v > 100LL * 366 * MPNCTL_DAY / unit) {
        return -1;
    }

    *out = (int64_t) v * unit;
    return 0;
}


/* Reads a whole file, or stdin for "-"; data is NUL-terminated. */
int
mpnctl_read_file(const char *path, char **data, size_t *len)
{
    FILE    *f;
    char    *buf, *nbuf;
    size_t   n, cap;

    if (strcmp(path, "-") == 0) {
        f = stdin;
    } else {
        f = fopen(path, "r");
        if (f == NULL) {
            mpnctl_error("cannot open \"%s\": %s", path, strerror(errno));
            return -1;
        }
    }

    cap = 4096;
    n = 0;
    buf = malloc(cap);

    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) {
            break;
        }
        cap *= 2;
        nbuf = realloc(buf, cap);
        if (nbuf == NULL) {
            free(buf);
        }
        buf = nbuf;
    }

    if (buf == NULL) {
        mpnctl_error("out of memory");
        if (f != stdin) {
            fclose(f);
        }
        return -1;
    }

    if (ferror(f)) {
        mpnctl_error("cannot read \"%s\": %s", path, strerror(errno));
        free(buf);
        if (f != stdin) {
            fclose(f);
        }
        return -1;
    }

    if (f != stdin) {
        fclose(f);
    }

    buf[n] = '\0';
    *data = buf;
    *len = n;

    return 0;
}


/* a SCAN pattern for keys starting with prefix and then more: the prefix
 * and more with glob characters escaped, then "*" */
char *
mpnctl_glob_prefix(const char *prefix, const char *more)
{
    char        *pattern, *p;
    const char  *s, *part[2];
    int          i;

    pattern = malloc((strlen(prefix) + strlen(more)) * 2 + 2);
    if (pattern == NULL) {
        mpnctl_error("out of memory");
        exit(1);
    }

    part[0] = prefix;
    part[1] = more;
    p = pattern;

    for (i = 0; i < 2; i++) {
        for (s = part[i]; *s != '\0'; s++) {
            if (strchr("*?[]\\", *s) != NULL) {
                *p++ = '\\';
            }
            *p++ = *s;
        }
    }

    *p++ = '*';
    *p = '\0';

    return pattern;
}


/* one JSON object as one line on stdout; takes o */
void
mpnctl_print_json(json_t *o)
{
    char  *s;

    s = (o != NULL) ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)
                    : NULL;
    if (s == NULL) {
        mpnctl_error("out of memory");
        exit(1);
    }

    printf("%s\n", s);
    free(s);
    json_decref(o);
}
