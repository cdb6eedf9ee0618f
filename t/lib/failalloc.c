/*
 * An LD_PRELOAD shim for the integration tests: malloc() of exactly
 * MPN_FAIL_MALLOC_SIZE bytes fails with ENOMEM, as it does when memory
 * runs out.  A test picks a size that only the allocation it means to
 * fail asks for (a request header of that length), so nginx's other
 * allocations are untouched.  glibc only (__libc_malloc).
 */

#include <errno.h>
#include <stdlib.h>


extern void *__libc_malloc(size_t size);

static size_t  fail_size;


__attribute__((constructor)) static void
failalloc_init(void)
{
    const char  *s;

    s = getenv("MPN_FAIL_MALLOC_SIZE");
    fail_size = (s != NULL) ? (size_t) strtoull(s, NULL, 10) : 0;
}


void *
malloc(size_t size)
{
    if (fail_size != 0 && size == fail_size) {
        errno = ENOMEM;
        return NULL;
    }

    return __libc_malloc(size);
}
