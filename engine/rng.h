/*
 * rng.h — counter-based random numbers: the value for (seed, counter) is a pure function, so
 * dropout masks are the same on any thread count and any backend, can be regenerated in the
 * backward pass instead of stored, and resume needs only (seed, counter).
 *
 * Also a small sequential generator (Rng) for host-side use: initialisation and shuffling.
 */
#ifndef DISTILL_RNG_H
#define DISTILL_RNG_H

#include <stdint.h>
#include <math.h>

#ifdef __CUDACC__
#define RNG_FN __host__ __device__ static inline
#else
#define RNG_FN static inline
#endif

/* splitmix64 finaliser: a bijective 64-bit mix with good avalanche. */
RNG_FN uint64_t rng_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits, for (seed, counter). */
RNG_FN float rng_uniform_at(uint64_t seed, uint64_t counter) {
    uint64_t h = rng_mix64(seed ^ rng_mix64(counter));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* Dropout: element kept iff its uniform >= p. */
RNG_FN int dropout_keep(uint64_t seed, uint64_t counter, float p) {
    return rng_uniform_at(seed, counter) >= p;
}

/* Sequential host generator: state advances by one per draw. */
typedef struct { uint64_t seed, counter; } Rng;

static inline Rng rng_new(uint64_t seed) { Rng r = {seed, 0}; return r; }
static inline uint64_t rng_next_u64(Rng *r) { return rng_mix64(r->seed ^ rng_mix64(r->counter++)); }
/* Uniform in [0, 1) with 53 bits. */
static inline double rng_next_double(Rng *r) { return (double)(rng_next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
/* Standard normal by Box–Muller (uses two draws). */
static inline double rng_next_normal(Rng *r) {
    double u1 = rng_next_double(r), u2 = rng_next_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
/* Uniform integer in [0, n). */
static inline uint64_t rng_next_below(Rng *r, uint64_t n) { return n ? rng_next_u64(r) % n : 0; }

#endif
