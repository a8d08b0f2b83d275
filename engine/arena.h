/*
 * arena.h — the per-step activation arena: bump allocation, reset (not freed) after each step.
 *
 * Memory comes from the device's backend. When a step needs more than the current block, extra
 * blocks are chained; at the next reset they are merged into one block of the high-water size, so
 * a run reaches one allocation per arena at steady state. Pointers are 64-byte aligned.
 */
#ifndef DISTILL_ARENA_H
#define DISTILL_ARENA_H

#include "backend.h"

typedef struct ArenaBlock {
    char *base;
    size_t size, used;
    struct ArenaBlock *next;
} ArenaBlock;

typedef struct Arena {
    const Backend *be; /* memory source */
    ArenaBlock *head;  /* current block first */
    size_t high_water; /* most bytes used in one step so far */
    size_t in_use;     /* bytes handed out since the last reset */
} Arena;

Arena *arena_new(const Backend *be, size_t initial_bytes);
void *arena_alloc(Arena *a, size_t bytes);       /* uninitialised */
void *arena_alloc_zero(Arena *a, size_t bytes);  /* zero-filled */
void arena_reset(Arena *a);
void arena_free(Arena *a);

#endif
