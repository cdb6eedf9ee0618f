/*
 * Strict base64url (RFC 4648 section 5, no padding).
 */

#include "mpn_b64url.h"

#include <stdint.h>


static const char  mpn_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0xff: not in the alphabet */
static const unsigned char  mpn_b64url_value[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff,   62, 0xff, 0xff,
      52,   53,   54,   55,   56,   57,   58,   59,
      60,   61, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff,    0,    1,    2,    3,    4,    5,    6,
       7,    8,    9,   10,   11,   12,   13,   14,
      15,   16,   17,   18,   19,   20,   21,   22,
      23,   24,   25, 0xff, 0xff, 0xff, 0xff,   63,
    0xff,   26,   27,   28,   29,   30,   31,   32,
      33,   34,   35,   36,   37,   38,   39,   40,
      41,   42,   43,   44,   45,   46,   47,   48,
      49,   50,   51, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
};


int
mpn_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t *out_len)
{
    size_t          i, n, rest;
    uint32_t        v;
    unsigned char   c0, c1, c2, c3;
    const unsigned char  *p;

    p = (const unsigned char *) in;
    rest = len % 4;

    if (rest == 1) {
        return -1;
    }

    n = 0;

    for (i = 0; i + 4 <= len; i += 4) {
        c0 = mpn_b64url_value[p[i]];
        c1 = mpn_b64url_value[p[i + 1]];
        c2 = mpn_b64url_value[p[i + 2]];
        c3 = mpn_b64url_value[p[i + 3]];

        if ((c0 | c1 | c2 | c3) == 0xff) {
            return -1;
        }

        v = ((uint32_t) c0 << 18) | ((uint32_t) c1 << 12)
            | ((uint32_t) c2 << 6) | c3;

        out[n++] = (unsigned char) (v >> 16);
        out[n++] = (unsigned char) (v >> 8);
        out[n++] = (unsigned char) v;
    }

    if (rest != 0) {
        c0 = mpn_b64url_value[p[i]];
        c1 = mpn_b64url_value[p[i + 1]];
        c2 = (rest == 3) ? mpn_b64url_value[p[i + 2]] : 0;

        if ((c0 | c1 | c2) == 0xff) {
            return -1;
        }

        v = ((uint32_t) c0 << 18) | ((uint32_t) c1 << 12)
            | ((uint32_t) c2 << 6);

        out[n++] = (unsigned char) (v >> 16);

        if (rest == 3) {
            out[n++] = (unsigned char) (v >> 8);

            /* the last character carries 2 unused bits */
            if ((c2 & 0x03) != 0) {
                return -1;
            }

        } else if ((c1 & 0x0f) != 0) {
            /* 4 unused bits */
            return -1;
        }
    }

    *out_len = n;

    return 0;
}


size_t
mpn_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t    i, n;
    uint32_t  v;

    n = 0;

    for (i = 0; i + 3 <= len; i += 3) {
        v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8)
            | in[i + 2];

        out[n++] = mpn_b64url_alphabet[(v >> 18) & 0x3f];
        out[n++] = mpn_b64url_alphabet[(v >> 12) & 0x3f];
        out[n++] = mpn_b64url_alphabet[(v >> 6) & 0x3f];
        out[n++] = mpn_b64url_alphabet[v & 0x3f];
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;

        out[n++] = mpn_b64url_alphabet[(v >> 18) & 0x3f];
        out[n++] = mpn_b64url_alphabet[(v >> 12) & 0x3f];

    } else if (len - i == 2) {
        v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8);

        out[n++] = mpn_b64url_alphabet[(v >> 18) & 0x3f];
        out[n++] = mpn_b64url_alphabet[(v >> 12) & 0x3f];
        out[n++] = mpn_b64url_alphabet[(v >> 6) & 0x3f];
    }

    return n;
}
