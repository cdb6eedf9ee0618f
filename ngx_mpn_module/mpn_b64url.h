/*
 * base64url without padding (RFC 7515 section 2), strict: only the
 * canonical encoding of some byte string is accepted.
 */

#ifndef MPN_B64URL_H
#define MPN_B64URL_H

#include <stddef.h>


/* bytes needed to decode / encode len characters / bytes */
#define MPN_B64URL_DECODED_LEN(len)  ((len) / 4 * 3 + 2)
#define MPN_B64URL_ENCODED_LEN(len)  (((len) + 2) / 3 * 4)

/* Decodes len characters into out (MPN_B64URL_DECODED_LEN(len) bytes).
 * Returns 0, or -1 for padding, a character outside A-Z a-z 0-9 - _,
 * a length of 4n+1 or non-zero unused bits in the last character. */
int mpn_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t *out_len);

/* Encodes len bytes into out (MPN_B64URL_ENCODED_LEN(len) bytes, no NUL
 * is added); returns the number of characters written. */
size_t mpn_b64url_encode(const unsigned char *in, size_t len, char *out);

#endif /* MPN_B64URL_H */
