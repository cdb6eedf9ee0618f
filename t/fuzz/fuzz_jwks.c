/*
 * libFuzzer target for the key set loader: arbitrary bytes as the contents
 * of an mpn_token_keys file.  A file nginx -t reads must never crash it,
 * only be refused with a message.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mpn_token.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           err[256];
    mpn_keyset_t  *ks;

    ks = mpn_keyset_load((const char *) data, size, err, sizeof(err), NULL,
                         NULL);

    if (ks == NULL) {
        /* the message is a C string that fits */
        if (strlen(err) >= sizeof(err)) {
            __builtin_trap();
        }

        return 0;
    }

    (void) mpn_keyset_count(ks);
    mpn_keyset_free(ks);

    return 0;
}
