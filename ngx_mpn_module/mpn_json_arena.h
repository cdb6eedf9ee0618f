/*
 * json_loadb with jansson's allocations taken from an arena: a parse whose
 * whole tree is freed before the next one costs a pointer bump per node
 * instead of a malloc() and a free().  One arena per process, used by one
 * thread; a second parse while the first tree lives (never done today)
 * falls back to jansson's own allocator.
 */

#ifndef MPN_JSON_ARENA_H
#define MPN_JSON_ARENA_H

#include <jansson.h>


json_t *mpn_json_arena_load(const char *buf, size_t len, size_t flags,
    json_error_t *error);

/* json_decref of a tree from mpn_json_arena_load; NULL is ignored */
void mpn_json_arena_free(json_t *root);

#endif /* MPN_JSON_ARENA_H */
