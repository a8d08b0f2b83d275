/* arena.c — bump allocator over backend memory (see arena.h). */
#include "arena.h"

#include <stdlib.h>

#define ARENA_ALIGN 64

static ArenaBlock *block_new(const Backend *be, size_t size) {
    ArenaBlock *b = xcalloc(1, sizeof *b);
    b->base = be->alloc(size);
    b->size = size;
    return b;
}

Arena *arena_new(const Backend *be, size_t initial_bytes) {
    Arena *a = xcalloc(1, sizeof *a);
    a->be = be;
    a->head = block_new(be, initial_bytes < 4096 ? 4096 : initial_bytes);
    return a;
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    ArenaBlock *b = a->head;
    if (b->used + need > b->size) {
        size_t size = b->size * 2 > need ? b->size * 2 : need;
        ArenaBlock *nb = block_new(a->be, size);
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->base + b->used;
    b->used += need;
    a->in_use += need;
    if (a->in_use > a->high_water) a->high_water = a->in_use;
    return p;
}

void *arena_alloc_zero(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    a->be->zero(p, bytes);
    return p;
}

void arena_reset(Arena *a) {
    if (a->head->next) {
        /* Merge: free every block, allocate one of the high-water size. */
        ArenaBlock *b = a->head;
        while (b) {
            ArenaBlock *n = b->next;
            a->be->free(b->base);
            free(b);
            b = n;
        }
        a->head = block_new(a->be, a->high_water + a->high_water / 8);
    }
    a->head->used = 0;
    a->in_use = 0;
}

void arena_free(Arena *a) {
    if (!a) return;
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *n = b->next;
        a->be->free(b->base);
        free(b);
        b = n;
    }
    free(a);
}
