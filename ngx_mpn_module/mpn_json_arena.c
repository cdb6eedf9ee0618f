/*
 * The arena is a static block handed out by bumping a pointer; a request
 * that does not fit goes to malloc().  Freeing is a no-op inside the block
 * (the block is reset when the tree is gone) and free() outside it.  The
 * allocation functions are jansson's only while it parses or frees an
 * arena tree, so every other jansson object in the process is allocated
 * and freed by malloc() as before.
 */

#include <stdint.h>
#include <stdlib.h>

#include "mpn_json_arena.h"


/* a typical record's tree takes about 10 KB */
#define MPN_JSON_ARENA_SIZE  (128 * 1024)

/*
 * Under AddressSanitizer the arena is poisoned but for the nodes handed
 * out, each followed by a poisoned gap, and poisoned again when the tree is
 * gone: an overrun or a use after the free is caught as with malloc().
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MPN_JSON_ARENA_ASAN  1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MPN_JSON_ARENA_ASAN  1
#endif

#if defined(MPN_JSON_ARENA_ASAN)
#include <sanitizer/asan_interface.h>
#define MPN_JSON_ARENA_GAP  16
#define mpn_json_arena_poison(p, n)    ASAN_POISON_MEMORY_REGION(p, n)
#define mpn_json_arena_unpoison(p, n)  ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MPN_JSON_ARENA_GAP  0
#define mpn_json_arena_poison(p, n)
#define mpn_json_arena_unpoison(p, n)
#endif


static void *mpn_json_arena_malloc(size_t size);
static void mpn_json_arena_release(void *p);
static void mpn_json_arena_use(void);
static void mpn_json_arena_done(void);
static void mpn_json_arena_reset(void);


static unsigned char   mpn_json_arena[MPN_JSON_ARENA_SIZE]
                           __attribute__((aligned(16)));
static size_t          mpn_json_arena_used;
static json_t         *mpn_json_arena_root;   /* the tree living in it */
static int             mpn_json_arena_ready;
static json_malloc_t   mpn_json_saved_malloc;
static json_free_t     mpn_json_saved_free;


json_t *
mpn_json_arena_load(const char *buf, size_t len, size_t flags,
    json_error_t *error)
{
    json_t  *root;

    if (mpn_json_arena_root != NULL) {
        return json_loadb(buf, len, flags, error);
    }

    mpn_json_arena_use();
    root = json_loadb(buf, len, flags, error);
    mpn_json_arena_done();

    if (root == NULL) {
        /* whatever the parser kept is freed already */
        mpn_json_arena_reset();
        return NULL;
    }

    mpn_json_arena_root = root;

    return root;
}


void
mpn_json_arena_free(json_t *root)
{
    if (root == NULL) {
        return;
    }

    if (root != mpn_json_arena_root) {
        json_decref(root);
        return;
    }

    mpn_json_arena_use();
    json_decref(root);
    mpn_json_arena_done();

    mpn_json_arena_root = NULL;
    mpn_json_arena_reset();
}


static void *
mpn_json_arena_malloc(size_t size)
{
    void    *p;
    size_t   n;

    n = (size + 15) & ~(size_t) 15;

    n += MPN_JSON_ARENA_GAP;

    if (n < size || n > MPN_JSON_ARENA_SIZE - mpn_json_arena_used) {
        return malloc(size);
    }

    p = mpn_json_arena + mpn_json_arena_used;
    mpn_json_arena_used += n;

    mpn_json_arena_unpoison(p, size);

    return p;
}


static void
mpn_json_arena_release(void *p)
{
    uintptr_t  a;

    a = (uintptr_t) p;

    if (a >= (uintptr_t) mpn_json_arena
        && a < (uintptr_t) mpn_json_arena + MPN_JSON_ARENA_SIZE)
    {
        return;
    }

    free(p);
}


static void
mpn_json_arena_reset(void)
{
    mpn_json_arena_poison(mpn_json_arena, mpn_json_arena_used);
    mpn_json_arena_used = 0;
}


static void
mpn_json_arena_use(void)
{
    if (!mpn_json_arena_ready) {
        mpn_json_arena_poison(mpn_json_arena, MPN_JSON_ARENA_SIZE);
        mpn_json_arena_ready = 1;
    }

    json_get_alloc_funcs(&mpn_json_saved_malloc, &mpn_json_saved_free);
    json_set_alloc_funcs(mpn_json_arena_malloc, mpn_json_arena_release);
}


static void
mpn_json_arena_done(void)
{
    json_set_alloc_funcs(mpn_json_saved_malloc, mpn_json_saved_free);
}
