/*
 * ctx.h — the execution context: device, backend, activation arena, autograd tape, RNG.
 *
 * Autograd is a tape. While `record` is on, every op whose output requires a gradient appends a
 * TapeEntry (backward function, inputs, output, saved tensors, scalar arguments). ctx_backward
 * walks the tape in reverse. With `record` off (the teacher, evaluation) nothing is appended and
 * no activations are saved beyond what the caller keeps.
 *
 * Lifetime: everything allocated through a Ctx (tensor structs and activation data) lives until
 * ctx_reset, which empties the tape and resets both arenas. Parameters live elsewhere
 * (engine/params.h) and survive resets.
 */
#ifndef DISTILL_CTX_H
#define DISTILL_CTX_H

#include "arena.h"
#include "backend.h"

struct Ctx;
struct TapeEntry;
typedef void (*BackwardFn)(struct Ctx *c, struct TapeEntry *e);

#define TAPE_MAX_IN 4
#define TAPE_MAX_SAVED 4

typedef struct TapeEntry {
    const char *op;                 /* op name, for error messages */
    BackwardFn backward;
    Tensor *out;
    Tensor *in[TAPE_MAX_IN];        /* inputs; NULL where absent */
    Tensor *saved[TAPE_MAX_SAVED];  /* extra tensors the backward needs (mean, rstd, probs, ...) */
    float f[4];                     /* scalar arguments (eps, scale, p, 1/T, ...) */
    long long i[6];                 /* integer arguments (heads, seed, offset, ...) */
} TapeEntry;

typedef struct Tape {
    TapeEntry *entries;
    int n, cap;
} Tape;

typedef struct Ctx {
    Device device;
    const Backend *be;
    Arena *arena;       /* activation data, on the device */
    Arena *meta;        /* Tensor structs, on the host */
    Tape tape;
    bool record;        /* append to the tape */
    bool training;      /* dropout active */
    bool bf16;          /* matrix products (forward and backward) with bf16 inputs, fp32 accumulation */
    uint64_t seed;      /* dropout RNG seed */
    uint64_t rng_counter; /* next unused counter value; advanced by each dropout */
    /* Row window for dropout (see ctx_set_rows). rows_total == 0: off, each dropout draws
     * counters [rng_counter, rng_counter + numel). */
    int64_t rows_here, rows_before, rows_total;
    /* Layer scopes (ctx_scope_begin): activations go to `scratch`, emptied at each scope's end. */
    Arena *scratch;
    bool in_scope;
} Ctx;

/* Declares that the activations computed next hold rows [before, before + here) of a batch of
 * `total` rows, with the row as the outermost dimension of every tensor dropout sees. Dropout then
 * draws the counters the whole batch would use and takes this window's share, so a batch split
 * over several contexts (processes) gets exactly the masks one context with the whole batch gets.
 * ctx_set_rows(c, 0, 0, 0) turns the window off. */
void ctx_set_rows(Ctx *c, int64_t here, int64_t before, int64_t total);

/* Creates a context on `device` (its backend must exist and be initialised). */
Ctx *ctx_new(Device device, uint64_t seed);
void ctx_free(Ctx *c);
/* Waits until the device has finished all work queued so far (a no-op on the CPU). */
void ctx_sync(Ctx *c);
/* Device timing without a wait (Backend.mark): ctx_mark records in `slot` when the device reaches
 * the work queued so far; ctx_mark_seconds is the time between two marks, to be asked after a
 * later readback or sync (on the CPU: host clock readings, as a host timer would take them). */
void ctx_mark(Ctx *c, int slot);
double ctx_mark_seconds(Ctx *c, int a, int b);
/* Empties the tape and resets both arenas; all activation tensors become invalid. */
void ctx_reset(Ctx *c);

/* Activation memory (uninitialised): the arena, or the scope's scratch inside a layer scope. */
void *ctx_alloc(Ctx *c, size_t bytes);

/* Layer scopes, for forwards that record nothing (a teacher, evaluation): between
 * ctx_scope_begin and ctx_scope_end every new activation goes to a scratch arena, which
 * ctx_scope_end empties, so a model's layers reuse one layer's worth of memory. What must outlive
 * the scope (the layer's output, a hidden state or attention map a loss reads) is copied out
 * first with ctx_keep, which returns the copy in the step's arena. Scopes do not nest and need
 * recording off. */
void ctx_scope_begin(Ctx *c);
Tensor *ctx_keep(Ctx *c, Tensor *t);
void ctx_scope_end(Ctx *c);

/* A new activation tensor in the arena (data uninitialised / zero-filled). An i32 tensor on a
 * device made by ctx_zeros or ctx_from_host keeps a host copy of its values (Tensor.host_i32). */
Tensor *ctx_tensor(Ctx *c, DType dt, int ndim, const int *shape);
Tensor *ctx_zeros(Ctx *c, DType dt, int ndim, const int *shape);
/* A new activation tensor holding a copy of host data. */
Tensor *ctx_from_host(Ctx *c, DType dt, int ndim, const int *shape, const void *host);
/* A tensor struct (in the meta arena) viewing existing memory. */
Tensor *ctx_view(Ctx *c, Tensor *base, int ndim, const int *shape);

/* Copies a tensor's data to host memory (any device): a readback (backend_readbacks). */
void tensor_to_host(const Tensor *t, void *host);
/* Copies host memory into a tensor's data (and into its host copy, Tensor.host_i32, if it has one). */
void tensor_from_host(Tensor *t, const void *host);
/* The values of an i32 tensor, readable on the host, for range checks: its data on the CPU, its
 * host copy (Tensor.host_i32) on a device, else a copy read back from the device (a readback;
 * *own is then that copy, for the caller to free; NULL otherwise). */
const int32_t *tensor_i32_host(const Tensor *t, int32_t **own);

/* Device memory outside the arenas (ctx_reset leaves it alone), zero-filled, for buffers that
 * outlive a step; ctx_device_free returns it. */
void *ctx_device_alloc(Ctx *c, size_t bytes);
void ctx_device_free(Ctx *c, void *p);
/* Queues a copy of a scalar tensor's value (f32 [1]) into device memory `dst` (no wait). */
void ctx_store_scalar(Ctx *c, float *dst, const Tensor *scalar);
/* Copies `bytes` of device memory (from ctx_device_alloc) to the host: a readback
 * (backend_readbacks), which waits for the work queued before it. */
void ctx_read(Ctx *c, void *host, const void *dev, size_t bytes);

/* The gradient buffer of t, allocated zero-filled in the arena on first use. */
Tensor *ctx_grad(Ctx *c, Tensor *t);

/* Appends an entry; returns it for the caller to fill. Only call when c->record. */
TapeEntry *ctx_push(Ctx *c, const char *op, BackwardFn fn, Tensor *out);

/* Backward from a scalar: seeds d(loss)/d(loss) = 1 and walks the tape in reverse. Parameter
 * gradients accumulate into their gradient buffers. The tape is left intact (ctx_reset clears). */
void ctx_backward(Ctx *c, Tensor *loss);

/* Scoped recording switch: returns the previous value. */
static inline bool ctx_set_record(Ctx *c, bool on) { bool old = c->record; c->record = on; return old; }

#endif
