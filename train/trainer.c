/* trainer.c — the Trainer: construction, the step, distributed evaluation, save and resume (see
 * trainer.h). */
#define _GNU_SOURCE
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../checkpoints/ckpt.h"
#include "../engine/backend.h"
#include "../engine/ops.h"
#include "../losses/losses.h"
#include "config.h"
#include "config_tree.h"
#include "runtime.h"
#include "setup.h"

/* Slots after the K loss terms in the step's all-reduce (see StepAcc). */
#define RED_EXTRA 6

/* ------------------------------------------------------------------ batches and evaluation */

void batch_to_input(Ctx *c, const Batch *b, BertInput *in) {
    int shape2[2] = {b->rows, b->seq}, shape1[1] = {b->rows};
    in->input_ids = ctx_from_host(c, DT_I32, 2, shape2, b->input_ids);
    in->token_type_ids = ctx_from_host(c, DT_I32, 2, shape2, b->token_type_ids);
    in->lengths = ctx_from_host(c, DT_I32, 1, shape1, b->lengths);
    in->lengths_host = b->lengths;
}

static Status check_eval_labels(const Bert *m, const Dataset *ds) {
    if (ds->label_kind == LABELS_NONE) {
        distill_set_error("%s: evaluation needs labels, the file has none", ds->path);
        return DISTILL_ERR;
    }
    bool regression = ds->label_kind == LABELS_REGRESSION;
    int C = m->cfg.num_labels;
    if (C < 1 || (regression && C != 1) || (!regression && C < 2)) {
        distill_set_error("%s: the model has %d outputs, the file's labels need %s", ds->path, C,
                          regression ? "1 (regression)" : "one per class");
        return DISTILL_ERR;
    }
    if (!regression && ds->num_labels > C) {
        distill_set_error("%s: labels go up to %d but the model has %d classes", ds->path, ds->num_labels - 1, C);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

/* Adds rows [0, n) of logits (n x C, in file order) to the metrics, `batch` rows at a time. */
static void add_metrics(Metrics *mt, const Dataset *ds, const float *logits, int64_t r0, int n, int C) {
    double loss = 0;
    if (ds->label_kind == LABELS_REGRESSION) {
        for (int r = 0; r < n; r++) {
            double d = logits[r] - ds->targets[r0 + r];
            loss += d * d;
        }
        metrics_add_regression(mt, logits, ds->targets + r0, n, loss / n);
    } else {
        for (int r = 0; r < n; r++) {
            const float *z = logits + (size_t)r * C;
            double mx = z[0], se = 0;
            for (int k = 1; k < C; k++) mx = z[k] > mx ? z[k] : mx;
            for (int k = 0; k < C; k++) se += exp((double)z[k] - mx);
            loss += mx + log(se) - z[ds->labels[r0 + r]];
        }
        metrics_add_class(mt, logits, ds->labels + r0, n, loss / n);
    }
}

Status model_logits(Ctx *c, Bert *m, const Dataset *ds, int batch, int rank, int world, float *all) {
    LoaderOptions lo = {.batch_size = batch, .rank = rank, .world = world, .seed = 0, .shuffle = false, .drop_last = false};
    Loader *ld;
    if (loader_new(&ld, ds, &lo) != DISTILL_OK) return DISTILL_ERR;
    int C = m->cfg.num_labels;
    bool old_rec = ctx_set_record(c, false), old_train = c->training;
    c->training = false;
    int64_t steps = loader_steps_per_epoch(ld);
    float *logits = xmalloc((size_t)batch * C * sizeof(float));
    for (int64_t s = 0; s < steps; s++) {
        Batch b;
        loader_next(ld, &b);
        if (b.rows == 0) continue;
        ctx_reset(c);
        BertInput in;
        batch_to_input(c, &b, &in);
        BertRequest req = {0};
        BertOutput o;
        bert_forward(c, m, &in, &req, &o);
        tensor_to_host(o.logits, logits);
        for (int r = 0; r < b.rows; r++)
            memcpy(all + (size_t)b.row_index[r] * C, logits + (size_t)r * C, (size_t)C * sizeof(float));
    }
    free(logits);
    ctx_reset(c);
    ctx_set_record(c, old_rec);
    c->training = old_train;
    loader_free(ld);
    return DISTILL_OK;
}

static Status evaluate_split(Ctx *c, Comm *comm, Bert *m, const Dataset *ds, int batch, MetricValues *out) {
    if (check_eval_labels(m, ds) != DISTILL_OK) return DISTILL_ERR;
    int C = m->cfg.num_labels, rank = comm ? comm->rank : 0, world = comm ? comm->world : 1;
    float *all = xcalloc((size_t)ds->rows * C, sizeof(float));
    Status st = model_logits(c, m, ds, batch, rank, world, all);
    /* each row was filled by exactly one rank and is 0 elsewhere: the sum is exact */
    if (comm && comm_any(comm, st != DISTILL_OK, "the evaluation status")) {
        if (st == DISTILL_OK) distill_set_error("evaluation failed on another rank");
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK && comm) comm_allreduce_f32(comm, all, (size_t)ds->rows * C, false, "the evaluation gather");
    if (st == DISTILL_OK) {
        Metrics mt;
        metrics_init(&mt, ds->label_kind == LABELS_REGRESSION ? 0 : C);
        for (int64_t r0 = 0; r0 < ds->rows; r0 += batch) {
            int n = (int)(ds->rows - r0 < batch ? ds->rows - r0 : batch);
            add_metrics(&mt, ds, all + (size_t)r0 * C, r0, n, C);
        }
        *out = metrics_compute(&mt);
        metrics_free(&mt);
    }
    free(all);
    return st;
}

Status evaluate_model(Ctx *c, Bert *m, const Dataset *ds, int batch, MetricValues *out) {
    return evaluate_split(c, NULL, m, ds, batch, out);
}

Status trainer_evaluate(Trainer *t, Bert *m, const Dataset *ds, MetricValues *out) {
    /* the student is evaluated at its training precision */
    bool old = t->c->bf16;
    t->c->bf16 = t->cfg.student.precision == CONFIG_PRECISION_BF16;
    Status st = evaluate_split(t->c, t->comm, m ? m : t->student, ds, t->cfg.data.eval_batch_size, out);
    t->c->bf16 = old;
    return st;
}

/* ------------------------------------------------------------------ construction */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* A hash of a file's bytes (0 with an error when it cannot be read). */
static Status hash_file(const char *path, uint64_t *h) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        distill_set_error("%s: cannot read", path);
        return DISTILL_ERR;
    }
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) *h = fnv1a(*h, buf, n);
    fclose(f);
    return DISTILL_OK;
}

/* Every rank must train the same job: the resolved config and the data files, hashed. */
static Status check_same_job(Trainer *t) {
    if (t->comm->world == 1) return DISTILL_OK;
    char *text = config_yaml_string(&t->cfg);
    uint64_t h = 0xcbf29ce484222325ull;
    Status st = text ? DISTILL_OK : DISTILL_ERR;
    if (text) h = fnv1a(h, text, strlen(text));
    free(text);
    bool bad = st != DISTILL_OK;
    if (comm_any(t->comm, bad, "the config check")) return DISTILL_ERR;
    if (comm_check_same(t->comm, h, "config (after --set overrides)") != DISTILL_OK) return DISTILL_ERR;
    const char *files[3] = {t->cfg.data.train, t->cfg.data.dev, t->cfg.data.test};
    uint64_t fh = 0xcbf29ce484222325ull;
    for (int i = 0; i < 3 && t->train; i++)
        if (files[i] && hash_file(files[i], &fh) != DISTILL_OK) bad = true;
    if (comm_any(t->comm, bad, "the data file check")) {
        if (!bad) distill_set_error("rank %d: another rank could not read its data files", t->comm->rank);
        return DISTILL_ERR;
    }
    return comm_check_same(t->comm, fh, "data files (data.train, data.dev, data.test contents)");
}

/* True when the current loss set needs the teacher's logits and nothing else from it. */
static bool logits_only(const Trainer *t) {
    return loss_set_needs_teacher(t->losses) && !t->treq.no_logits && !t->treq.hidden && !t->treq.scores &&
           !t->treq.probs;
}

bool trainer_uses_cache(const Trainer *t) { return t->teacher_cached && logits_only(t); }

/* teacher.cache (configs/README.md): sets t->teacher_cached when the train file has a teacher-logit
 * cache made by this run's teacher for this file (vocabulary, max_seq), at the teacher's precision,
 * with its classifier's width. Checked whenever the run has a teacher and the file a cache (unless
 * teacher.cache is off), whatever the losses, so no stage can use an unchecked cache: a mismatch
 * is an error. The steps then use it whenever their losses need only the logits
 * (trainer_uses_cache). Every rank reads the same file (check_same_job) and decides alike. */
static Status use_teacher_cache(Trainer *t) {
    const Config *cfg = &t->cfg;
    const Dataset *ds = t->train;
    const int mode = cfg->teacher.cache;
    if (!t->teacher || !ds || mode == CONFIG_CACHE_OFF) return DISTILL_OK;
    const char *key = config_where(cfg, "teacher.cache");
    const bool required = mode == CONFIG_CACHE_REQUIRED;
    const char *fix = required ? "set teacher.cache: off to run the teacher" : "set teacher.cache: off to run the "
                                                                              "teacher and ignore the cache";
    const char *tp = cfg->teacher.path ? cfg->teacher.path : "(init: random)";
    if (!ds->teacher_logits) {
        if (!required) return DISTILL_OK;
        distill_set_error("%s: teacher.cache: required, but %s has no teacher-logit cache (/teacher_logits); make "
                          "it with `distill cache --teacher %s --data %s`", key, ds->path, tp, ds->path);
        return DISTILL_ERR;
    }
    if (cfg->n_teachers > 1) {
        if (!required) return DISTILL_OK; /* the cache holds one teacher's logits */
        distill_set_error("%s: teacher.cache: required, but the run has %d teachers and the cache holds one "
                          "teacher's logits", key, cfg->n_teachers);
        return DISTILL_ERR;
    }
    if (required && !logits_only(t)) {
        distill_set_error("%s: teacher.cache: required, but the losses need the teacher's hidden states or "
                          "attention, which the cache (logits only) does not hold", key);
        return DISTILL_ERR;
    }
    const TeacherCacheId *id = &ds->teacher_cache;
    char sha[65];
    ckpt_model_sha256(t->teacher, sha);
    const char *prec = CONFIG_PRECISION_NAMES[cfg->teacher.precision];
    int run_seq = cfg->data.max_seq ? cfg->data.max_seq : ds->max_seq;
    const char *made = id->teacher_path && id->teacher_path[0] ? id->teacher_path : "(path not recorded)";
    if (!id->known)
        distill_set_error("%s: %s's /teacher_logits has no teacher identity (it was not made by `distill cache`), so "
                          "it cannot be checked against the run's teacher; remake it with `distill cache`, or %s",
                          key, ds->path, fix);
    else if (strcmp(id->teacher_sha256, sha))
        distill_set_error("%s: the teacher-logit cache in %s was made by another teacher: %s (sha256 %.16s...), the "
                          "run's teacher is %s (sha256 %.16s...); remake it with `distill cache --teacher %s --data %s`, "
                          "or %s", key, ds->path, made, id->teacher_sha256, tp, sha, tp, ds->path, fix);
    else if (strcmp(id->vocab_sha256, ds->vocab_sha256))
        distill_set_error("%s: the teacher-logit cache in %s was made for another vocabulary: sha256 %.16s..., the "
                          "file's vocabulary is sha256 %.16s...; remake it with `distill cache`, or %s", key, ds->path,
                          id->vocab_sha256, ds->vocab_sha256, fix);
    else if (id->max_seq != run_seq)
        distill_set_error("%s: the teacher-logit cache in %s was made for max_seq %d, the run's max_seq is %d (%s); "
                          "remake it with `distill cache`, or %s", key, ds->path, id->max_seq, run_seq,
                          cfg->data.max_seq ? "data.max_seq" : "the file's", fix);
    else if (strcmp(id->precision, prec))
        distill_set_error("%s: the teacher-logit cache in %s was computed at %s precision, the run's "
                          "teacher.precision is %s; remake it with `distill cache --precision %s`, or %s", key,
                          ds->path, id->precision, prec, prec, fix);
    else if (ds->teacher_classes != t->teacher->cfg.num_labels)
        distill_set_error("%s: the teacher-logit cache in %s holds %d logits per row, the run's teacher has %d "
                          "outputs; remake it with `distill cache`, or %s", key, ds->path, ds->teacher_classes,
                          t->teacher->cfg.num_labels, fix);
    else {
        t->teacher_cached = true;
        if (!logits_only(t) && loss_set_needs_teacher(t->losses) && t->comm->rank == 0)
            fprintf(stderr, "distill: note: %s has a teacher-logit cache, but the losses need the teacher's hidden "
                            "states or attention: the teacher runs\n", ds->path);
        return DISTILL_OK;
    }
    return DISTILL_ERR;
}

/* Teachers 2.. of `teachers:` (the first is t->teacher), each at its own precision. */
static Status load_more_teachers(Trainer *t, const SetupData *sd) {
    const Config *cfg = &t->cfg;
    t->n_teachers = t->teacher ? (cfg->n_teachers > 0 ? cfg->n_teachers : 1) : 0;
    if (t->teacher) {
        t->teachers[0] = t->teacher;
        t->teacher_cfgs[0] = &t->teacher->cfg;
    }
    for (int k = 1; k < t->n_teachers; k++) {
        if (setup_teacher_at(cfg, k, t->device, sd, &t->teachers[k]) != DISTILL_OK) {
            t->n_teachers = k; /* trainer_free frees the ones loaded */
            return DISTILL_ERR;
        }
        t->teacher_cfgs[k] = &t->teachers[k]->cfg;
        if (config_teacher(cfg, k)->precision != CONFIG_PRECISION_BF16) continue;
        char why[256], key[64];
        if (!backend_bf16_supported(t->device, why, sizeof why)) {
            snprintf(key, sizeof key, "teachers[%d].precision", k);
            distill_set_error("%s: %s: bf16 cannot run here: %s; use fp32", config_where(cfg, key), key, why);
            return DISTILL_ERR;
        }
        params_make_bf16(t->teachers[k]->params); /* rounded once: a teacher never changes */
    }
    return DISTILL_OK;
}

/* Which teachers run and what each returns, for the current loss set: teacher k runs when a
 * hidden-state or attention term reads it, or when the logits terms need the combined logits and
 * its weight in them is not 0. */
static void teacher_requests(Trainer *t) {
    const Config *cfg = &t->cfg;
    bool logits = loss_set_needs_teacher_logits(t->losses);
    bool weighted = cfg->teacher_logits != CONFIG_TEACHER_LOGITS_MEAN;
    float w[CONFIG_MAX_TEACHERS];
    for (int k = 0; k < t->n_teachers; k++) w[k] = weighted ? (float)config_teacher(cfg, k)->weight : 1.0f;
    if (t->n_teachers > 0)
        loss_set_teacher_mix(t->losses, cfg->teacher_logits == CONFIG_TEACHER_LOGITS_PROBS ? LOSS_MIX_PROBS
                                                                                          : LOSS_MIX_LOGITS, w);
    for (int k = 0; k < t->n_teachers && k < loss_set_teachers(t->losses); k++) {
        BertRequest *q = &t->treqs[k];
        loss_set_request_teacher(t->losses, k, q);
        bool own = q->hidden || q->scores || q->probs;
        bool in_logits = logits && (!weighted || config_teacher(cfg, k)->weight > 0);
        q->no_logits = !in_logits;
        t->teacher_runs[k] = own || in_logits;
    }
}

/* The logits the logits terms read: sum_k w_k z_k / sum_k w_k over the teachers that ran with
 * logits (w_k = 1 for teacher_logits: mean), off the tape. (teacher_logits: probs mixes the
 * distributions in the loss set instead, at each term's temperature.) */
static Tensor *combine_teacher_logits(Trainer *t, const BertOutput *tos) {
    const Config *cfg = &t->cfg;
    bool weighted = cfg->teacher_logits == CONFIG_TEACHER_LOGITS_WEIGHTED;
    double total = 0;
    for (int k = 0; k < t->n_teachers; k++)
        if (!t->treqs[k].no_logits) total += weighted ? config_teacher(cfg, k)->weight : 1.0;
    Tensor *z = NULL;
    for (int k = 0; k < t->n_teachers; k++) {
        if (t->treqs[k].no_logits || !tos[k].logits) continue;
        double w = (weighted ? config_teacher(cfg, k)->weight : 1.0) / total;
        Tensor *term = op_scale(t->c, tos[k].logits, (float)w);
        z = z ? op_add(t->c, z, term) : term;
    }
    return z;
}

void trainer_free(Trainer *t) {
    if (!t) return;
    loader_free(t->loader);
    free(t->stage_len);
    for (int i = 0; i < 2; i++) adamw_free(t->opt[i]);
    loss_set_free(t->losses);
    bert_free(t->student);
    bert_free(t->teacher);
    for (int k = 1; k < t->n_teachers; k++) bert_free(t->teachers[k]);
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i]);
    free(t->vocab);
    dataset_free(t->train);
    dataset_free(t->dev);
    dataset_free(t->test);
    if (t->c) ctx_device_free(t->c, t->step_dev);
    free(t->step_host);
    free(t->step_micro);
    ctx_free(t->c);
    free(t->term_names);
    free(t->last.terms);
    free(t->step_red);
    free(t->step_terms);
    free(t->step_rows);
    config_free(&t->cfg);
    free(t);
}

/* ------------------------------------------------------------------ stages */

const ConfigStage *trainer_stage(const Trainer *t, ConfigStage *tmp) { return config_stage(&t->cfg, t->stage, tmp); }

bool trainer_stage_done(const Trainer *t) {
    return t->stage + 1 < t->n_stages && t->step - t->stage_begin >= t->stage_len[t->stage];
}

/* The current stage's warmup (its own fraction of its own length). */
static void stage_schedule(Trainer *t) {
    ConfigStage tmp;
    const ConfigOptimizer *o = &trainer_stage(t, &tmp)->optimizer;
    int64_t len = t->stage_len[t->stage];
    t->warmup_steps = o->warmup_steps > 0 ? o->warmup_steps : (int64_t)ceil(o->warmup_ratio * (double)len);
}

/* Builds stage s's loss set, projections, optimizers and the per-step arrays sized by its terms,
 * replacing the current ones. Projection tensors of the old set with the same name and shape
 * carry their values over; the rest start as a fresh run starts them (the same seed). */
static Status stage_losses(Trainer *t, int s) {
    const Config *cfg = &t->cfg;
    ConfigStage tmp;
    const ConfigStage *st = config_stage(cfg, s, &tmp);
    struct LossSet *ls = NULL;
    if (loss_set_build_teachers(st->losses, st->n_losses, &t->student->cfg, t->teacher_cfgs, t->n_teachers, t->device,
                       cfg->run.seed ^ 0x9B0Full, &ls) != DISTILL_OK)
        return DISTILL_ERR;
    ParamStore *old = t->losses ? loss_set_params(t->losses) : NULL, *nw = loss_set_params(ls);
    t->stage_carried = t->stage_fresh = 0;
    for (int i = 0; nw && i < nw->n; i++) {
        const Tensor *x = nw->tensors[i];
        int j = old ? params_index(old, x->name) : -1;
        bool same = j >= 0 && old->tensors[j]->ndim == x->ndim;
        for (int d = 0; same && d < x->ndim; d++) same = old->tensors[j]->shape[d] == x->shape[d];
        if (same) {
            params_buffer_copy(nw, nw->data + nw->offsets[i], old, old->data + old->offsets[j], x->numel);
            t->stage_carried++;
        } else {
            t->stage_fresh++;
        }
    }
    for (int i = 0; i < 2; i++) {
        adamw_free(t->opt[i]);
        t->opt[i] = NULL;
    }
    loss_set_free(t->losses);
    t->losses = ls;
    t->stage = s;
    t->stores[0] = t->student->params;
    t->stores[1] = nw;
    t->n_stores = nw ? 2 : 1;
    const ConfigOptimizer *o = &st->optimizer;
    for (int i = 0; i < t->n_stores; i++)
        t->opt[i] = adamw_new(t->stores[i], (float)o->beta1, (float)o->beta2, (float)o->eps, (float)o->weight_decay);
    memset(&t->sreq, 0, sizeof t->sreq);
    memset(&t->treq, 0, sizeof t->treq);
    loss_set_request(t->losses, &t->sreq, &t->treq);
    teacher_requests(t);
    t->n_terms = loss_set_size(t->losses);
    free(t->term_names);
    free(t->last.terms);
    free(t->step_red);
    free(t->step_terms);
    t->term_names = xcalloc((size_t)t->n_terms, sizeof *t->term_names);
    for (int i = 0; i < t->n_terms; i++) t->term_names[i] = loss_set_spec(t->losses, i)->name;
    t->last.terms = xcalloc((size_t)t->n_terms, sizeof *t->last.terms);
    t->step_red = xcalloc((size_t)t->n_terms + RED_EXTRA, sizeof *t->step_red);
    t->step_terms = xcalloc((size_t)t->n_terms, sizeof *t->step_terms);
    return DISTILL_OK;
}

/* Enters stage s at the current step. */
static Status stage_enter(Trainer *t, int s) {
    if (stage_losses(t, s) != DISTILL_OK) return DISTILL_ERR;
    t->stage_begin = t->step;
    t->bad_steps = 0;
    stage_schedule(t);
    /* the teacher-logit cache serves a stage whose losses read only the teacher's logits */
    t->teacher_cached = false;
    if (t->train && use_teacher_cache(t) != DISTILL_OK) return DISTILL_ERR;
    /* the data order as a fresh run sees it: epoch 0, batch 0 */
    LoaderCursor zero = {0, 0};
    return t->loader ? loader_seek(t->loader, zero) : DISTILL_OK;
}

Status trainer_next_stage(Trainer *t) {
    if (t->stage + 1 >= t->n_stages) {
        distill_set_error("stage %d is the last of %d", t->stage + 1, t->n_stages);
        return DISTILL_ERR;
    }
    return stage_enter(t, t->stage + 1);
}

Status trainer_new(Config *cfg_in, Comm *comm, bool with_data, Trainer **out) {
    *out = NULL;
    Trainer *t = xcalloc(1, sizeof *t);
    t->cfg = *cfg_in;
    memset(cfg_in, 0, sizeof *cfg_in);
    t->comm = comm;
    t->best_metric = NAN;
    t->best_step = -1;
    t->hang_rank = -1;
    const char *hang = getenv("DISTILL_TEST_HANG");
    if (hang && sscanf(hang, "%d:%lld", &t->hang_rank, &t->hang_step) != 2) t->hang_rank = -1;
    /* Testing hook (DISTILL_TEST_NAN=RANK:STEP[:COUNT[:grad]]): that rank's loss reads as NaN at
     * COUNT (default 1) steps from STEP on; with ":grad" its gradient gets a NaN instead (before
     * the all-reduce), with a finite loss. */
    t->nan_rank = -1;
    const char *nan_at = getenv("DISTILL_TEST_NAN");
    if (nan_at) {
        char kind[8] = "";
        t->nan_count = 1;
        int got = sscanf(nan_at, "%d:%lld:%lld:%7s", &t->nan_rank, &t->nan_step, &t->nan_count, kind);
        if (got < 2 || t->nan_count < 1) t->nan_rank = -1;
        t->nan_grad = !strcmp(kind, "grad");
    }
    Config *cfg = &t->cfg;
    const int R = comm->world;

    /* ---- threads: this rank's share of the node's cores, unless the config says ---- */
    int threads = cfg->threads;
    if (threads <= 0 && comm->local_world > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cores / comm->local_world);
        if (threads < 1) threads = 1;
    }
    runtime_set_threads(threads);
    backend_set_tf32(cfg->tf32); /* CUDA fp32 GEMMs: TF32 only when the config asks */

    /* ---- device: one GPU per local rank ---- */
    bool gpu = cfg->device == CONFIG_DEVICE_CUDA || (cfg->device == CONFIG_DEVICE_AUTO && backend_cuda_available());
    char devname[32];
    if (!gpu) snprintf(devname, sizeof devname, "cpu");
    else if (R > 1) snprintf(devname, sizeof devname, "cuda:%d", comm->local_rank);
    else snprintf(devname, sizeof devname, "cuda");
    if (runtime_pick_device(devname, &t->device) != DISTILL_OK) goto fail;
    if (comm_use_device(comm, t->device) != DISTILL_OK) goto fail;
    t->c = ctx_new(t->device, cfg->run.seed);

    /* ---- data ---- */
    SetupData sd = {.vocab_size = 30522, .num_labels = 2, .label_names = NULL};
    if (with_data) {
        if (dataset_open(&t->train, cfg->data.train, true) != DISTILL_OK) goto fail;
        if (cfg->data.dev && dataset_open(&t->dev, cfg->data.dev, true) != DISTILL_OK) goto fail;
        if (cfg->data.test && dataset_open(&t->test, cfg->data.test, true) != DISTILL_OK) goto fail;
        if (dataset_read_vocab(cfg->data.train, &t->vocab, &t->n_vocab) != DISTILL_OK) goto fail;
        sd.vocab_size = t->train->vocab_size;
        sd.num_labels = t->train->label_kind == LABELS_CLASS ? t->train->num_labels
                        : t->train->label_kind == LABELS_REGRESSION ? 1 : 0;
        sd.label_names = t->train->n_label_names == sd.num_labels ? t->train->label_names : NULL;
    }
    if (check_same_job(t) != DISTILL_OK) goto fail;

    /* ---- models and losses (all checks before anything is written) ---- */
    if (setup_teacher(cfg, t->device, &sd, &t->teacher) != DISTILL_OK) goto fail;
    if (load_more_teachers(t, &sd) != DISTILL_OK) goto fail;
    if (setup_student(cfg, t->device, &sd, t->teacher, &t->student) != DISTILL_OK) goto fail;
    /* a bf16 teacher's weights are rounded once, here (it never changes) */
    if (t->teacher && cfg->teacher.precision == CONFIG_PRECISION_BF16 &&
        backend_bf16_supported(t->device, NULL, 0))
        params_make_bf16(t->teacher->params);
    if (with_data) {
        ConfigFacts facts;
        memset(&facts, 0, sizeof facts);
        facts.has_teacher = t->teacher != NULL;
        if (t->teacher) facts.teacher = setup_facts(t->teacher);
        for (int k = 1; k < t->n_teachers; k++) facts.more_teachers[k - 1] = setup_facts(t->teachers[k]);
        facts.student = setup_facts(t->student);
        facts.has_data = true;
        facts.data_vocab_size = t->train->vocab_size;
        facts.data_max_seq = t->train->max_seq;
        facts.data_has_labels = t->train->label_kind != LABELS_NONE;
        facts.data_regression = t->train->label_kind == LABELS_REGRESSION;
        facts.data_num_labels = t->train->label_kind == LABELS_CLASS ? t->train->num_labels : 0;
        facts.dev_has_labels = t->dev && t->dev->label_kind != LABELS_NONE;
        facts.world_size = R;
        facts.on_cuda = t->device.type == DEV_CUDA;
        if (config_check_models(cfg, &facts) != DISTILL_OK) goto fail;
    }
    {
        /* bf16 where the hardware runs it natively, else a clear refusal (no silent emulation) */
        bool want = cfg->student.precision == CONFIG_PRECISION_BF16 ||
                    (t->teacher && cfg->teacher.precision == CONFIG_PRECISION_BF16);
        char why[256];
        if (want && !backend_bf16_supported(t->device, why, sizeof why)) {
            const char *key = cfg->student.precision == CONFIG_PRECISION_BF16 ? "student.precision" : "teacher.precision";
            distill_set_error("%s: %s: bf16 cannot run here: %s; use fp32", config_where(cfg, key), key, why);
            goto fail;
        }
    }
    t->n_stages = config_stage_count(cfg);
    t->stage_len = xcalloc((size_t)t->n_stages, sizeof *t->stage_len);
    if (stage_losses(t, 0) != DISTILL_OK) goto fail;
    if (with_data && use_teacher_cache(t) != DISTILL_OK) goto fail;
    t->cap_step_rows = (cfg->data.batch_size / R + 1) * cfg->train.grad_accum;
    t->step_rows = xcalloc((size_t)t->cap_step_rows, sizeof *t->step_rows);

    /* ---- this rank's loader and the schedule ---- */
    int accum = cfg->train.grad_accum;
    int64_t spe = 1;
    if (with_data) {
        LoaderOptions lo = {.batch_size = cfg->data.batch_size / R, .rank = comm->rank, .world = R,
                            .seed = cfg->run.seed, .shuffle = cfg->data.shuffle, .drop_last = cfg->data.drop_last};
        if (loader_new(&t->loader, t->train, &lo) != DISTILL_OK) goto fail;
        spe = loader_steps_per_epoch(t->loader);
    }
    t->total_steps = 0;
    for (int s = 0; s < t->n_stages; s++) {
        ConfigStage tmp;
        const ConfigStage *st = config_stage(cfg, s, &tmp);
        t->stage_len[s] = st->max_steps > 0 ? st->max_steps : (int64_t)st->epochs * ((spe + accum - 1) / accum);
        t->total_steps += t->stage_len[s];
    }
    stage_schedule(t);
    *out = t;
    return DISTILL_OK;
fail:
    trainer_free(t);
    return DISTILL_ERR;
}

/* ------------------------------------------------------------------ the step
 *
 * The host waits on the device once per step, at its end (single process): a micro-step leaves its
 * weighted terms and loss in device slots (ctx_store_scalar, no wait), the gradient norm's per-store
 * sums of squares go to the same buffer (grad_sumsq_to), and step_read brings it all back in one
 * readback; the range checks of ids, lengths and labels read the host copies their uploads keep
 * (engine/ops.c), and the teacher is timed with device marks read after that readback. The values
 * are folded on the host exactly as they were summed before (the same f64 sums in the same order),
 * so the logged loss, terms and norm are bit for bit what a readback per term gave. With several
 * ranks the loss all-reduce needs the losses before the gradients are reduced: the slots are read
 * before it, and the norm's parts after the gradient all-reduce (whose ctx_sync stays). */

#define STEP_PARTS 2 /* doubles at the start of the step buffer: one per parameter store */

/* What a micro-step left on the host for step_read. */
typedef struct StepMicro {
    bool stored;     /* its terms and loss are in its slots */
    bool timed;      /* it ran a teacher forward between marks 2a and 2a+1 */
    double share;    /* its rows' share of the step's mean */
    int64_t tokens;  /* its valid tokens */
} StepMicro;

/* The step buffer for n micro-steps of the current loss set (grown when a step or a stage needs
 * more; a run at steady state allocates nothing). */
static void step_buffer(Trainer *t, int n) {
    DCHECK(t->n_stores <= STEP_PARTS && n >= 1);
    size_t bytes = STEP_PARTS * sizeof(double) + (size_t)n * (size_t)(t->n_terms + 1) * sizeof(float);
    if (bytes > t->step_bytes) {
        ctx_device_free(t->c, t->step_dev);
        free(t->step_host);
        t->step_dev = ctx_device_alloc(t->c, bytes);
        t->step_host = xcalloc(1, bytes);
        t->step_bytes = bytes;
    }
    if (n > t->step_cap) {
        t->step_micro = xrealloc(t->step_micro, (size_t)n * sizeof *t->step_micro);
        t->step_cap = n;
    }
    memset(t->step_micro, 0, (size_t)n * sizeof *t->step_micro);
}

static double *step_parts_dev(Trainer *t) { return (double *)t->step_dev; }
/* Micro-step a's slots: K weighted terms, then the loss. */
static float *step_slots(void *base, int K, int a) {
    return (float *)((char *)base + STEP_PARTS * sizeof(double)) + (size_t)a * (size_t)(K + 1);
}

/* The DISTILL_TEST_NAN hook: true when this rank's current step is one it poisons. */
static bool nan_hook(const Trainer *t) {
    long long s = (long long)t->step + 1;
    return t->nan_rank == t->comm->rank && s >= t->nan_step && s < t->nan_step + t->nan_count;
}

/* One step in progress: sums this rank adds to the global ones. */
typedef struct StepAcc {
    double *red;   /* [0, K): weighted terms x share, K: loss x share, K+1 rows, K+2 tokens, K+3 failed,
                      K+4 non-finite loss, K+5 stop requested (RED_EXTRA = 6 after the K terms) */
    Tensor **terms;
    int n;         /* micro-steps */
    char why[768]; /* this rank's failure, if any */
    double teacher_s;
    bool epoch_end;
} StepAcc;

static void step_begin(Trainer *t, StepAcc *acc, int n) {
    memset(acc, 0, sizeof *acc);
    acc->n = n;
    step_buffer(t, n);
    /* the step's sums live in the trainer: no allocation per step */
    acc->red = t->step_red;
    acc->terms = t->step_terms;
    memset(acc->red, 0, ((size_t)t->n_terms + RED_EXTRA) * sizeof *acc->red);
    t->n_step_rows = 0;
    t->comm->step = (long long)t->step + 1;
    for (int i = 0; i < t->n_stores; i++) params_zero_grad(t->stores[i]);
}

/* Micro-step a of n on this rank's share b: forwards, losses, backward of the scaled loss. */
static void step_micro(Trainer *t, StepAcc *acc, const Batch *b, int a, int n) {
    const int K = t->n_terms;
    Ctx *c = t->c;
    if (b->last_in_epoch) acc->epoch_end = true;
    t->epoch = b->cursor.epoch;
    t->samples_seen += b->global_rows;
    acc->red[K + 1] += b->rows;
    for (int i = 0; i < b->rows && b->row_index && t->n_step_rows < t->cap_step_rows; i++)
        t->step_rows[t->n_step_rows++] = b->row_index[i];
    if (b->rows == 0 || acc->why[0]) return;
    ctx_reset(c);
    /* Dropout masks are a pure function of (seed, micro-step) over the global batch; this rank
     * draws its rows' share of them. */
    c->rng_counter = (uint64_t)((t->step - t->stage_begin) * n + a) << 32; /* from each stage's step 0 */
    ctx_set_rows(c, b->rows, b->global_row0, b->global_rows);
    BertInput in;
    batch_to_input(c, b, &in);
    BertOutput to, so;
    memset(&to, 0, sizeof to);
    /* several teachers: each that some loss reads runs at its own precision; the logits terms
     * read their combination (teacher_logits) */
    BertOutput tos[CONFIG_MAX_TEACHERS];
    memset(tos, 0, sizeof tos);
    Tensor *teacher_logits = NULL;
    const bool multi = t->n_teachers > 1 && loss_set_needs_teacher(t->losses);
    if (multi) {
        ctx_mark(c, 2 * a); /* read at the step's end: no wait here */
        t->step_micro[a].timed = true;
        ctx_set_record(c, false);
        c->training = false;
        for (int k = 0; k < t->n_teachers; k++) {
            if (!t->teacher_runs[k]) continue;
            c->bf16 = config_teacher(&t->cfg, k)->precision == CONFIG_PRECISION_BF16;
            bert_forward(c, t->teachers[k], &in, &t->treqs[k], &tos[k]);
            t->teacher_forwards++;
        }
        if (loss_set_needs_teacher_logits(t->losses) && t->cfg.teacher_logits != CONFIG_TEACHER_LOGITS_PROBS)
            teacher_logits = combine_teacher_logits(t, tos);
        ctx_mark(c, 2 * a + 1);
    }
    if (trainer_uses_cache(t)) {
        /* the cached logits of the batch's rows (use_teacher_cache checked who made them) */
        int s2[2] = {b->rows, b->teacher_classes};
        to.logits = ctx_from_host(c, DT_F32, 2, s2, b->teacher_logits);
    } else if (!multi && t->teacher && loss_set_needs_teacher(t->losses)) {
        t->teacher_forwards++;
        ctx_mark(c, 2 * a);
        t->step_micro[a].timed = true;
        ctx_set_record(c, false);
        c->training = false;
        c->bf16 = t->cfg.teacher.precision == CONFIG_PRECISION_BF16;
        bert_forward(c, t->teacher, &in, &t->treq, &to);
        ctx_mark(c, 2 * a + 1);
    }
    ctx_set_record(c, true);
    c->training = true;
    /* the student's forward, losses (projections included) and backward */
    c->bf16 = t->cfg.student.precision == CONFIG_PRECISION_BF16;
    bert_forward(c, t->student, &in, &t->sreq, &so);
    LossLabels lk = loss_set_labels(t->losses);
    Tensor *labels = NULL;
    int s1[1] = {b->rows};
    if (lk == LOSS_LABELS_CLASS) labels = ctx_from_host(c, DT_I32, 1, s1, b->labels);
    else if (lk == LOSS_LABELS_REGRESSION) labels = ctx_from_host(c, DT_F32, 1, s1, b->targets);
    Tensor *loss = multi ? loss_set_forward_teachers(c, t->losses, &so, tos, t->n_teachers, teacher_logits, labels,
                                                    b->lengths, (long)(t->step - t->stage_begin), acc->terms)
                         : loss_set_forward(c, t->losses, &so, t->teacher ? &to : NULL, labels, b->lengths,
                                            (long)(t->step - t->stage_begin), acc->terms);
    if (!loss) {
        snprintf(acc->why, sizeof acc->why, "%s", distill_error());
        acc->red[K + 3] = 1;
        return;
    }
    /* this rank's share of the global mean over the step's rows, and of the micro-steps */
    double share = (double)b->rows / (double)b->global_rows / (double)n;
    ctx_backward(c, op_scale(c, loss, (float)share));
    /* the values stay on the device until the step's end (step_read) */
    float *slots = step_slots(t->step_dev, K, a);
    for (int i = 0; i < K; i++) ctx_store_scalar(c, slots + i, acc->terms[i]);
    ctx_store_scalar(c, slots + K, loss);
    StepMicro *m = &t->step_micro[a];
    m->stored = true;
    m->share = share;
    for (int i = 0; i < b->rows; i++) m->tokens += b->lengths[i];
}

/* The step's readback: the micro-steps' slots, and the gradient norm's parts when `parts` (else
 * the parts are read later, alone); then each stored micro-step is folded into the sums as it was
 * summed when each value was read on its own: a non-finite loss (or the DISTILL_TEST_NAN hook)
 * flags the step for skipping and adds nothing. Also the teacher's time, from the marks. */
static void step_read(Trainer *t, StepAcc *acc, bool parts) {
    const int K = t->n_terms;
    const size_t skip = parts ? 0 : STEP_PARTS * sizeof(double);
    size_t bytes = STEP_PARTS * sizeof(double) + (size_t)acc->n * (size_t)(K + 1) * sizeof(float);
    ctx_read(t->c, (char *)t->step_host + skip, (const char *)t->step_dev + skip, bytes - skip);
    for (int a = 0; a < acc->n; a++) {
        const StepMicro *m = &t->step_micro[a];
        if (m->timed) acc->teacher_s += ctx_mark_seconds(t->c, 2 * a, 2 * a + 1);
        if (!m->stored) continue;
        const float *v = step_slots(t->step_host, K, a);
        float lv = v[K];
        if (nan_hook(t) && !t->nan_grad) lv = NAN;
        if (!isfinite(lv)) {
            acc->red[K + 4] = 1; /* the update is skipped (step_end) */
            continue;
        }
        acc->red[K] += lv * m->share;
        for (int i = 0; i < K; i++) acc->red[i] += v[i] * m->share;
        acc->red[K + 2] += (double)m->tokens;
    }
}

/* The DISTILL_TEST_NAN ":grad" hook: one gradient element becomes NaN. */
static void poison_grad(Trainer *t) {
    const float nan_value = NAN;
    params_buffer_from_host(t->stores[0], t->stores[0]->grad, &nan_value, 1);
}

/* The rows of a skipped step on stderr: "rows 12, 907, ... (N rows)", this rank's. */
static void print_step_rows(const Trainer *t) {
    const int show = 16;
    if (t->comm->world > 1) fprintf(stderr, "distill: warning:   rank %d's rows:", t->comm->rank);
    else fprintf(stderr, "distill: warning:   the batch's rows (0-based, in data.train):");
    for (int i = 0; i < t->n_step_rows && i < show; i++)
        fprintf(stderr, "%s %lld", i ? "," : "", (long long)t->step_rows[i]);
    if (t->n_step_rows > show) fprintf(stderr, ", ... (%d rows)", t->n_step_rows);
    fprintf(stderr, "\n");
}

/* The collectives, clipping and the update. A failure on any rank fails every rank with the
 * failing rank's message. A non-finite loss (any rank) or gradient norm skips the update on every
 * rank; max_bad_steps of them in a row fail the step. */
static Status step_end(Trainer *t, StepAcc *acc, TrainerStep *out) {
    const int K = t->n_terms;
    Comm *comm = t->comm;
    Ctx *c = t->c;
    const bool single = comm->kind == COMM_SINGLE;
    ctx_set_rows(c, 0, 0, 0);
    ctx_reset(c);
    bool mine = acc->red[K + 3] != 0;
    if (single) {
        if (nan_hook(t) && t->nan_grad) poison_grad(t);
        grad_sumsq_to(t->stores, t->n_stores, step_parts_dev(t));
    }
    step_read(t, acc, single); /* single process: the step's one readback */
    bool my_nonfinite = acc->red[K + 4] != 0;
    acc->red[K + 5] = t->stop_request ? 1 : 0;
    /* Testing hook (DISTILL_TEST_HANG=RANK:STEP): this rank stops answering before the step's
     * collectives, as a rank stuck in I/O or a driver would; the others must end the job. */
    if (t->hang_rank == comm->rank && t->hang_step == t->step + 1) {
        fprintf(stderr, "distill: DISTILL_TEST_HANG: rank %d hangs at step %lld\n", comm->rank, (long long)t->step + 1);
        for (;;) pause();
    }
    comm_allreduce_f64(comm, acc->red, (size_t)K + RED_EXTRA, "the loss all-reduce");
    if (acc->red[K + 3] != 0) {
        /* the lowest failing rank tells everyone what happened */
        int64_t *failed = xcalloc((size_t)comm->world, sizeof *failed);
        failed[comm->rank] = mine;
        comm_allreduce_i64(comm, failed, (size_t)comm->world, "the failure report");
        int bad = 0;
        while (bad < comm->world - 1 && !failed[bad]) bad++;
        free(failed);
        comm_bcast(comm, acc->why, sizeof acc->why, bad, "the failure report");
        if (comm->world > 1)
            distill_set_error("step %lld: rank %d: %s; stopping every rank", (long long)t->step + 1, bad, acc->why);
        else
            distill_set_error("step %lld: %s; stopping", (long long)t->step + 1, acc->why);
        return DISTILL_ERR;
    }
    /* The gradient all-reduce: the sum of the ranks' shares is the global mean's gradient. */
    if (!single) {
        ctx_sync(c);
        if (nan_hook(t) && t->nan_grad) poison_grad(t);
        for (int i = 0; i < t->n_stores; i++)
            comm_allreduce_f32(comm, t->stores[i]->grad, t->stores[i]->total, t->device.type == DEV_CUDA,
                               i == 0 ? "the student gradient all-reduce" : "the projection gradient all-reduce");
        grad_sumsq_to(t->stores, t->n_stores, step_parts_dev(t));
        ctx_read(c, t->step_host, t->step_dev, STEP_PARTS * sizeof(double));
    }
    double gnorm = grad_norm_from_parts(t->stores, t->n_stores, (const double *)t->step_host);
    const long long step_no = (long long)t->step + 1;
    TrainerStep *s = &t->last;
    s->stop = acc->red[K + 5] != 0;
    s->rows = (int64_t)acc->red[K + 1];
    s->tokens = (int64_t)acc->red[K + 2];
    s->epoch_end = acc->epoch_end;
    s->teacher_s = acc->teacher_s;
    s->grad_norm = gnorm;
    ConfigStage stmp;
    const ConfigOptimizer *ocfg = &trainer_stage(t, &stmp)->optimizer; /* the stage's, with its own schedule */
    double lr = ocfg->lr * schedule_lambda((SchedKind)ocfg->schedule, t->opt[0]->t, t->warmup_steps,
                                           t->stage_len[t->stage]);
    s->lr = lr;
    s->skipped = acc->red[K + 4] != 0 || !isfinite(gnorm);
    if (s->skipped) {
        /* Every rank agrees (both tests read all-reduced values). The batch is consumed and the
         * step counted (resume stays aligned); the weights, moments and optimizer clock stay. */
        t->bad_steps++;
        t->step++;
        const char *what = acc->red[K + 4] != 0 ? "the loss is not finite" : "the gradient norm is not finite";
        if (comm->rank == 0 || my_nonfinite) {
            if (comm->world > 1 && acc->red[K + 4] != 0)
                fprintf(stderr, "distill: warning: step %lld: %s on %s; the update is skipped (%lld in a row, "
                        "train.max_bad_steps %d)\n", step_no, what, my_nonfinite ? "this rank" : "another rank",
                        (long long)t->bad_steps, t->cfg.train.max_bad_steps);
            else
                fprintf(stderr, "distill: warning: step %lld: %s (gradient norm %g); the update is skipped "
                        "(%lld in a row, train.max_bad_steps %d)\n", step_no, what, gnorm, (long long)t->bad_steps,
                        t->cfg.train.max_bad_steps);
        }
        print_step_rows(t);
        s->loss = NAN;
        for (int i = 0; i < K; i++) s->terms[i] = NAN;
        if (out) *out = *s;
        if (t->bad_steps >= t->cfg.train.max_bad_steps) {
            distill_set_error("step %lld: %lld steps in a row with a non-finite loss or gradient (train.max_bad_steps "
                              "is %d); stopping (lower optimizer.lr, set precision: fp32, or check the rows named above)",
                              step_no, (long long)t->bad_steps, t->cfg.train.max_bad_steps);
            return DISTILL_ERR;
        }
        return DISTILL_OK;
    }
    t->bad_steps = 0;
    float clip = clip_grad_scale(gnorm, (float)ocfg->max_grad_norm);
    for (int i = 0; i < t->n_stores; i++) adamw_step(t->opt[i], (float)lr, clip);
    t->step++;
    s->loss = acc->red[K];
    for (int i = 0; i < K; i++) s->terms[i] = (float)acc->red[i];
    if (out) *out = *s;
    return DISTILL_OK;
}

Status trainer_step_on(Trainer *t, Batch *micro, int n, TrainerStep *out) {
    StepAcc acc;
    step_begin(t, &acc, n);
    for (int a = 0; a < n; a++) step_micro(t, &acc, &micro[a], a, n);
    return step_end(t, &acc, out);
}

Status trainer_step(Trainer *t, TrainerStep *out) {
    int n = t->cfg.train.grad_accum;
    StepAcc acc;
    step_begin(t, &acc, n);
    for (int a = 0; a < n; a++) {
        Batch b;
        loader_next(t->loader, &b); /* its arrays are reused by the next call: used at once */
        step_micro(t, &acc, &b, a, n);
    }
    return step_end(t, &acc, out);
}

/* ------------------------------------------------------------------ checkpoints */

Status trainer_save(Trainer *t, const char *path, const char *config_yaml) {
    if (t->comm->rank != 0) return DISTILL_OK;
    TrainCheckpoint ck;
    ckpt_init(&ck);
    ck.student = t->student;
    ck.projections = t->stores[1];
    ck.m_student = t->opt[0]->m;
    ck.v_student = t->opt[0]->v;
    if (t->opt[1]) {
        ck.m_proj = t->opt[1]->m;
        ck.v_proj = t->opt[1]->v;
    }
    LoaderCursor cur = loader_cursor(t->loader);
    ck.step = t->step;
    ck.epoch = cur.epoch;
    ck.batch_cursor = cur.step;
    ck.samples_seen = t->samples_seen;
    ck.optimizer_steps = t->opt[0]->t;
    ck.rng_seed = t->c->seed;
    ck.rng_counter = t->c->rng_counter;
    ck.data_seed = t->cfg.run.seed;
    ck.best_metric = t->best_metric;
    ck.best_step = t->best_step;
    ck.metrics_offset = t->metrics_offset;
    ck.bad_steps = t->bad_steps;
    ck.stage = t->stage;
    ck.stage_step = t->step - t->stage_begin;
    ck.config_yaml = (char *)config_yaml;
    ck.vocab = t->vocab;
    ck.n_vocab = t->n_vocab;
    ck.do_lower_case = t->train->do_lower_case;
    ck.label_names = t->train->label_names;
    ck.n_label_names = t->train->n_label_names;
    return ckpt_save(path, &ck);
}

Status trainer_resume(Trainer *t, const char *path) {
    TrainCheckpoint ck;
    if (ckpt_load(path, t->device, &ck) != DISTILL_OK) return DISTILL_ERR;
    Status st = DISTILL_OK;
    /* the stage it was in: its losses and projections must be in place before the copy */
    int64_t begin = 0;
    for (int s = 0; s < ck.stage && s < t->n_stages; s++) begin += t->stage_len[s];
    if (ck.stage >= t->n_stages || ck.step - ck.stage_step != begin) {
        distill_set_error("%s: the checkpoint is at step %lld of stage %lld (which began at step %lld), but the config "
                          "has %d stage%s%s", path, (long long)ck.stage_step, (long long)ck.stage + 1,
                          (long long)(ck.step - ck.stage_step), t->n_stages, t->n_stages == 1 ? "" : "s",
                          ck.stage < t->n_stages ? " of other lengths (stages: or train lengths changed)" : "");
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK && ck.stage != t->stage) st = stage_enter(t, (int)ck.stage);
    if (st == DISTILL_OK) st = ckpt_copy_store(t->stores[0], t->opt[0]->m, t->opt[0]->v, ck.student->params, ck.m_student,
                                ck.v_student);
    if (st == DISTILL_OK && (t->stores[1] != NULL) != (ck.projections != NULL)) {
        distill_set_error("%s: the checkpoint %s projections but the configured losses %s", path,
                          ck.projections ? "has" : "has no", t->stores[1] ? "need them" : "have none");
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK && t->stores[1])
        st = ckpt_copy_store(t->stores[1], t->opt[1]->m, t->opt[1]->v, ck.projections, ck.m_proj, ck.v_proj);
    if (st == DISTILL_OK) {
        /* The cursor counts global batches: the same position with any rank count. */
        LoaderCursor cur = {ck.epoch, ck.batch_cursor};
        st = loader_seek(t->loader, cur);
    }
    if (st == DISTILL_OK) {
        t->step = ck.step;
        t->stage_begin = ck.step - ck.stage_step;
        t->epoch = ck.epoch;
        t->samples_seen = ck.samples_seen;
        for (int i = 0; i < t->n_stores; i++) t->opt[i]->t = ck.optimizer_steps;
        t->c->seed = ck.rng_seed;
        t->c->rng_counter = ck.rng_counter;
        t->best_metric = ck.best_metric;
        t->best_step = ck.best_step;
        t->metrics_offset = ck.metrics_offset;
        t->bad_steps = ck.bad_steps;
    }
    ckpt_free(&ck);
    return st;
}
