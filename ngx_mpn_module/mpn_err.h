/*
 * A pure part's error text: formatted into the caller's buffer, which may
 * be absent (NULL or empty) when the caller wants no text.
 */

#ifndef MPN_ERR_H
#define MPN_ERR_H

#include <stdarg.h>
#include <stddef.h>


void mpn_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* the same for a part whose own formatter holds the buffer */
void mpn_verr(char *err, size_t err_len, const char *fmt, va_list args)
    __attribute__((format(printf, 3, 0)));

#endif /* MPN_ERR_H */
