/*
 * A pure part's error text (mpn_err.h).
 */

#include <stdarg.h>
#include <stdio.h>

#include "mpn_err.h"


void
mpn_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    mpn_verr(err, err_len, fmt, args);
    va_end(args);
}


void
mpn_verr(char *err, size_t err_len, const char *fmt, va_list args)
{
    if (err == NULL || err_len == 0) {
        return;
    }

    (void) vsnprintf(err, err_len, fmt, args);
}
