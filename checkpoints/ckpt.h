/*
 * ckpt.h — HDF5 training checkpoints (DESIGN §7): save with atomic replace, load for resume or for
 * eval/export, keep the last K, find the newest valid one, and describe one for `distill info`.
 *
 * File layout (one HDF5 file, every float little-endian f32, every string UTF-8):
 *
 *   /                          attributes: format = "distill-checkpoint", format_version = 1,
 *                              step, epoch, batch_cursor, samples_seen, optimizer_steps,
 *                              best_step, metrics_offset, bad_steps, stage, stage_step (int64;
 *                              bad_steps absent in files older than it, read as 0; stage and
 *                              stage_step written only when stage > 0, absent read as 0 and
 *                              step); rng_seed, rng_counter,
 *                              data_seed (uint64); best_metric (float64); do_lower_case (uint8);
 *                              label_names (string [n], absent when n = 0);
 *                              student_sha256, sha256 (hex strings); complete = 1 (written last)
 *   /config_yaml               string, scalar: the resolved run config (absent when NULL)
 *   /vocab                     string [V]: the vocabulary, in id order (absent when V = 0)
 *   /student                   group; attributes: every BertConfig field by its Hugging Face
 *                              name, id2label (string [min(num_labels, 64)], "" = LABEL_i),
 *                              names (string [n], declaration order), no_decay (uint8 [n])
 *   /student/<hf name>         f32, the tensor's shape, e.g. /student/bert.embeddings.word_embeddings.weight
 *   /projections               group as /student without config (absent without projections),
 *   /projections/<name>        e.g. /projections/projections.hidden.0.weight
 *   /optim/m/student/<name>    f32 AdamW first moments, the same shape as the parameter
 *   /optim/v/student/<name>    second moments; /optim/{m,v}/projections/<name> likewise
 *
 * Every tensor dataset carries a "sha256" attribute (its own bytes, to name a damaged tensor).
 * student_sha256 covers the student config, the student tensors, vocab, do_lower_case and label
 * names; sha256 covers student_sha256 and everything else (projections, moments, every state field,
 * the config YAML). Loading recomputes both from the bytes read and rejects any difference.
 *
 * Promises:
 * - ckpt_save never leaves a half-written file at `path`: it writes `path.tmp-<pid>-<n>` (the
 *   temporary name of io/atomic.h), flushes and fsyncs it, renames it over `path` and fsyncs the
 *   directory. A crash at any instant leaves the
 *   previous checkpoint at `path` intact (and at worst a stale .tmp file that loaders ignore and
 *   ckpt_rotate removes). On error nothing is left behind.
 * - Save then load is bit-exact: every tensor, moment, state field and string comes back identical
 *   (one normalisation: an id2label entry "" is stored like NULL, "LABEL_i", and loads as NULL).
 * - Every failure returns DISTILL_ERR with a message (distill_error()) that starts with the file's
 *   path and says what was expected and what was found; a truncated, corrupted or incomplete file
 *   never loads. Nothing is printed except the warnings of ckpt_find_latest.
 */
#ifndef DISTILL_CKPT_H
#define DISTILL_CKPT_H

#include <stdio.h>

#include "../models/bert.h"

#define CKPT_FORMAT "distill-checkpoint"
#define CKPT_FORMAT_VERSION 1

typedef struct TrainCheckpoint {
    /* ---- model ---- */
    Bert *student;            /* config in student->cfg (num_labels, id2label), params in
                                 student->params; NULL only for ckpt_info-style partial reads */
    ParamStore *projections;  /* NULL when the run has no projections; names like
                                 "projections.hidden.0.weight" */

    /* ---- AdamW moments: (store->total) floats each, on the store's device, laid out by the
     *      store's offsets (train/optim.h); NULL = not saved (e.g. before the first step) ---- */
    float *m_student, *v_student; /* (student->params->total) */
    float *m_proj, *v_proj;       /* (projections->total); NULL when projections is NULL */

    /* ---- progress and random state ---- */
    int64_t step;             /* training steps completed */
    int64_t epoch;            /* current epoch, 0-based */
    int64_t batch_cursor;     /* batches of this epoch already consumed (the loader's cursor) */
    int64_t samples_seen;     /* training rows consumed, all ranks together */
    int64_t optimizer_steps;  /* AdamW t (also drives the LR and temperature schedules) */
    uint64_t rng_seed;        /* dropout generator (engine/rng.h): seed ... */
    uint64_t rng_counter;     /* ... and the next counter */
    uint64_t data_seed;       /* the loader's shuffle seed */
    double best_metric;       /* best evaluation metric so far (NAN when none) */
    int64_t best_step;        /* step it was reached at; -1 when none */
    int64_t metrics_offset;   /* bytes of metrics.jsonl written at this step: a resumed run
                                 truncates the log to this length */
    int64_t bad_steps;        /* consecutive skipped (non-finite) steps just before this one */
    int64_t stage;            /* the config's stage (0-based; 0 without stages:) this state is in */
    int64_t stage_step;       /* optimizer steps taken in that stage (= step in single-stage runs) */

    /* ---- text (owned strings) ---- */
    char *config_yaml;        /* the resolved config, or NULL */
    char **vocab;             /* (n_vocab) tokens in id order, so export needs only the file */
    int n_vocab;
    bool do_lower_case;
    char **label_names;       /* (n_label_names) the data's label names, or NULL */
    int n_label_names;

    /* ---- set by ckpt_load / ckpt_load_model_only ---- */
    Device device;            /* where the loaded student, projections and moments live */
    bool owned;               /* true after a load: ckpt_free releases every member */
} TrainCheckpoint;

/* Zeroes *ck and sets "none" values: best_metric NAN, best_step -1, device cpu. */
void ckpt_init(TrainCheckpoint *ck);

/* Releases what a load allocated (student, projections, moments, strings) and re-inits *ck. To
 * keep a member (e.g. the student), copy its pointer and set the field to NULL first. On a
 * checkpoint the caller filled itself (owned == false) it only re-inits. */
void ckpt_free(TrainCheckpoint *ck);

/* Writes `ck` to `path` atomically (see the promises above). ck->student is required; moments,
 * projections, strings may be NULL. Parameters are read through the store's backend when not on
 * the CPU. Errors: unwritable or missing directory, disk full, inconsistent input (m without v,
 * moments without a store). */
Status ckpt_save(const char *path, const TrainCheckpoint *ck);

/* Reads a whole checkpoint for resume: validates format, the complete marker, every shape and
 * both hashes; builds the student with bert_build on `device` and fills it, builds the
 * projections store (names, shapes, no_decay and order as saved), allocates and fills the moments
 * on `device`, and copies state and strings. `out` is initialised first; on failure it holds
 * nothing (no leak) and the message names the file and what failed. Free with ckpt_free. */
Status ckpt_load(const char *path, Device device, TrainCheckpoint *out);

/* For eval and export: the student (config + parameters), vocab, do_lower_case, label names,
 * config YAML and state scalars; no projections, no moments. Checks the complete marker and
 * student_sha256 only (the optimizer state is not read). */
Status ckpt_load_model_only(const char *path, Device device, TrainCheckpoint *out);

/* Full validation without keeping anything: a ckpt_load onto the CPU (so it needs host memory
 * for the student, projections and moments) that is freed at once. DISTILL_OK when ckpt_load
 * would succeed (bar running out of device memory). */
Status ckpt_verify(const char *path);

/* Copies parameters (and moments) from `src` into an existing store `dst` by name, across
 * devices: for a trainer that built its own student/projections/optimizer and resumes into them.
 * The two stores must hold the same names with the same shapes (either order); otherwise an
 * error names the first mismatch. dst_m/dst_v may be NULL (not copied); when src_m/src_v are
 * NULL and dst_m/dst_v are not, dst moments are zero-filled (a fresh optimizer). */
Status ckpt_copy_store(ParamStore *dst, float *dst_m, float *dst_v,
                       const ParamStore *src, const float *src_m, const float *src_v);

/* Keeps the newest `keep_last` files named exactly ckpt-<step>.h5 in `dir` (by step, numerically)
 * and deletes older ones; never touches best.h5 or any other name. Also removes, best effort,
 * the temporaries in `dir` of writers that no longer run on this host (io_clean_stale_temps:
 * "<name>.tmp-<pid>-<n>" files and folders, left by a crash during ckpt_save, an export or any
 * other atomic write). keep_last <= 0 keeps every checkpoint. */
Status ckpt_rotate(const char *dir, int keep_last);

/* Writes to path_out the newest ckpt-<step>.h5 in `dir` that passes ckpt_verify, skipping broken
 * ones with a "distill: warning: ..." line on stderr each. DISTILL_ERR when there is none (or the
 * directory cannot be read, or the path does not fit in n). */
Status ckpt_find_latest(const char *dir, char *path_out, size_t n);

/* "<dir>/ckpt-<step>.h5" into buf (the name ckpt_rotate and ckpt_find_latest look for). */
const char *ckpt_step_path(const char *dir, int64_t step, char *buf, size_t n);

/* Prints what a checkpoint holds: step, epoch, progress, best metric, student config summary,
 * parameter counts per group, moments present, vocab, hash status. Returns 0 when the file is a
 * complete checkpoint whose hashes match, 1 otherwise (the error is set; what could be read is
 * still printed). */
int ckpt_info_print(const char *path, FILE *out);

/* The identity of a model's forward, for the teacher-logit cache (`distill cache`): the SHA-256 of
 * what its outputs depend on, as 64 hex digits. Fed, in the checkpoints' hash encoding: a format
 * tag, the architecture fields of the config (vocab, hidden, layers, heads, FFN, positions, type
 * vocab, num_labels, layer_norm_eps, pad id, pooler) and every parameter (name, shape, fp32 bytes)
 * in name order. Not fed: dropout rates, initializer_range, label names and the file it came from,
 * so the same weights give the same hash from a Hugging Face folder or a checkpoint. */
void ckpt_model_sha256(const Bert *m, char out[65]);

/* Cheap: true when `path` is an HDF5 file whose root says format = "distill-checkpoint". Reads
 * no tensor. Never prints. */
bool ckpt_is_checkpoint(const char *path);

/* Testing hook: when set, ckpt_save calls it at each stage of writing ("created", "tensors",
 * "state", "marker", "closed", "synced", "renamed") so a test can kill the process there and
 * check that a crash at that instant leaves the previous checkpoint intact. NULL in production. */
extern void (*ckpt_test_stage_hook)(const char *stage);

#endif
