/*
 * trainer.c — `distill --config FILE`: fine-tuning and distillation runs (see trainer.h).
 *
 * Order of work: load and check the config (nothing written yet), open the data, build the
 * teacher and student, check the models against the config, build the losses — all before the
 * run directory is touched. Then: resolved config and vocabulary into the run directory, resume
 * if asked, the loop, evaluations (best model kept as a Hugging Face folder `best/`), checkpoints
 * (`ckpt-<step>.h5`, atomic, last K kept), and at the end the final model (`final/`) and a test
 * evaluation when `data.test` is set.
 */
#define _GNU_SOURCE
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../checkpoints/ckpt.h"
#include "../checkpoints/hf.h"
#include "../data/loader.h"
#include "../engine/ops.h"
#include "../losses/losses.h"
#include "cli.h"
#include "config.h"
#include "optim.h"
#include "progress.h"
#include "runtime.h"
#include "setup.h"

/* ------------------------------------------------------------------ batches */

/* Uploads a host batch and fills the BertInput. */
void batch_to_input(Ctx *c, const Batch *b, BertInput *in) {
    int shape2[2] = {b->rows, b->seq}, shape1[1] = {b->rows};
    in->input_ids = ctx_from_host(c, DT_I32, 2, shape2, b->input_ids);
    in->token_type_ids = ctx_from_host(c, DT_I32, 2, shape2, b->token_type_ids);
    in->lengths = ctx_from_host(c, DT_I32, 1, shape1, b->lengths);
    in->lengths_host = b->lengths;
}

Status evaluate_model(Ctx *c, Bert *m, const Dataset *ds, int batch, MetricValues *out) {
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
    LoaderOptions lo = {.batch_size = batch, .rank = 0, .world = 1, .seed = 0, .shuffle = false, .drop_last = false};
    Loader *ld;
    if (loader_new(&ld, ds, &lo) != DISTILL_OK) return DISTILL_ERR;
    Metrics mt;
    metrics_init(&mt, regression ? 0 : C);
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
        double loss = 0;
        if (regression) {
            for (int r = 0; r < b.rows; r++) {
                double d = logits[r] - b.targets[r];
                loss += d * d;
            }
            metrics_add_regression(&mt, logits, b.targets, b.rows, loss / b.rows);
        } else {
            for (int r = 0; r < b.rows; r++) {
                const float *z = logits + (size_t)r * C;
                double mx = z[0], se = 0;
                for (int k = 1; k < C; k++) mx = z[k] > mx ? z[k] : mx;
                for (int k = 0; k < C; k++) se += exp((double)z[k] - mx);
                loss += mx + log(se) - z[b.labels[r]];
            }
            metrics_add_class(&mt, logits, b.labels, b.rows, loss / b.rows);
        }
    }
    free(logits);
    ctx_reset(c);
    ctx_set_record(c, old_rec);
    c->training = old_train;
    *out = metrics_compute(&mt);
    metrics_free(&mt);
    loader_free(ld);
    return DISTILL_OK;
}

/* ------------------------------------------------------------------ run directory */

static Status mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) goto fail;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) goto fail;
    return DISTILL_OK;
fail:
    distill_set_error("%s: cannot create directory: %s", buf, strerror(errno));
    return DISTILL_ERR;
}

/* Writes text to dir/name atomically (temp + rename). */
static Status write_file_atomic(const char *dir, const char *name, const char *text, size_t len) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        distill_set_error("%s: cannot write: %s", tmp, strerror(errno));
        return DISTILL_ERR;
    }
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        distill_set_error("%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static char *config_to_string(const Config *cfg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    DCHECK(f != NULL);
    Status st = config_write_yaml(cfg, f);
    fclose(f);
    if (st != DISTILL_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------------ the run */

typedef struct Run {
    Config cfg;
    Device device;
    Ctx *c;
    Dataset *train, *dev, *test;
    char **vocab;
    int n_vocab;
    Bert *teacher, *student;
    LossSet *losses;
    AdamW *opt_s, *opt_p;
    Loader *loader;
    Progress prog;
    char *config_yaml;
    char vocab_path[4096];
    /* state */
    int64_t step, samples_seen;
    int64_t epoch;
    double best_metric;
    int64_t best_step;
    int evals_without_improvement;
    int64_t metrics_offset; /* bytes of metrics.jsonl at the resumed checkpoint */
} Run;

static void run_free(Run *r) {
    progress_close(&r->prog);
    loader_free(r->loader);
    adamw_free(r->opt_s);
    adamw_free(r->opt_p);
    loss_set_free(r->losses);
    bert_free(r->student);
    bert_free(r->teacher);
    for (int i = 0; i < r->n_vocab; i++) free(r->vocab[i]);
    free(r->vocab);
    dataset_free(r->train);
    dataset_free(r->dev);
    dataset_free(r->test);
    ctx_free(r->c);
    free(r->config_yaml);
    config_free(&r->cfg);
}

static Status save_checkpoint(Run *r, const char *path) {
    TrainCheckpoint ck;
    ckpt_init(&ck);
    ck.student = r->student;
    ck.projections = loss_set_params(r->losses);
    ck.m_student = r->opt_s->m;
    ck.v_student = r->opt_s->v;
    if (r->opt_p) {
        ck.m_proj = r->opt_p->m;
        ck.v_proj = r->opt_p->v;
    }
    LoaderCursor cur = loader_cursor(r->loader);
    ck.step = r->step;
    ck.epoch = cur.epoch;
    ck.batch_cursor = cur.step;
    ck.samples_seen = r->samples_seen;
    ck.optimizer_steps = r->opt_s->t;
    ck.rng_seed = r->c->seed;
    ck.rng_counter = r->c->rng_counter;
    ck.data_seed = r->cfg.run.seed;
    ck.best_metric = r->best_metric;
    ck.best_step = r->best_step;
    ck.metrics_offset = progress_offset(&r->prog);
    ck.config_yaml = r->config_yaml;
    ck.vocab = r->vocab;
    ck.n_vocab = r->n_vocab;
    ck.do_lower_case = r->train->do_lower_case;
    ck.label_names = r->train->label_names;
    ck.n_label_names = r->train->n_label_names;
    Status st = ckpt_save(path, &ck);
    return st;
}

static Status resume_from(Run *r, const char *path) {
    TrainCheckpoint ck;
    if (ckpt_load(path, r->device, &ck) != DISTILL_OK) return DISTILL_ERR;
    Status st = ckpt_copy_store(r->student->params, r->opt_s->m, r->opt_s->v, ck.student->params,
                                ck.m_student, ck.v_student);
    ParamStore *pp = loss_set_params(r->losses);
    if (st == DISTILL_OK && (pp != NULL) != (ck.projections != NULL)) {
        distill_set_error("%s: the checkpoint %s projections but the configured losses %s", path,
                          ck.projections ? "has" : "has no", pp ? "need them" : "have none");
        st = DISTILL_ERR;
    }
    if (st == DISTILL_OK && pp)
        st = ckpt_copy_store(pp, r->opt_p->m, r->opt_p->v, ck.projections, ck.m_proj, ck.v_proj);
    if (st == DISTILL_OK) {
        LoaderCursor cur = {ck.epoch, ck.batch_cursor};
        st = loader_seek(r->loader, cur);
    }
    if (st == DISTILL_OK) {
        r->step = ck.step;
        r->epoch = ck.epoch;
        r->samples_seen = ck.samples_seen;
        r->opt_s->t = ck.optimizer_steps;
        if (r->opt_p) r->opt_p->t = ck.optimizer_steps;
        r->c->seed = ck.rng_seed;
        r->c->rng_counter = ck.rng_counter;
        r->best_metric = ck.best_metric;
        r->best_step = ck.best_step;
        r->metrics_offset = ck.metrics_offset;
    }
    ckpt_free(&ck);
    return st;
}

static Status do_eval(Run *r, bool *improved) {
    *improved = false;
    MetricValues v;
    if (evaluate_model(r->c, r->student, r->dev, r->cfg.data.eval_batch_size, &v) != DISTILL_OK) return DISTILL_ERR;
    static const char *metric_names[] = {"accuracy", "f1", "mcc", "pearson", "spearman", "loss"};
    double value;
    bool higher;
    metrics_pick(&v, metric_names[r->cfg.train.metric], &value, &higher);
    bool better = isnan(r->best_metric) || (higher ? value > r->best_metric : value < r->best_metric);
    if (better) {
        r->best_metric = value;
        r->best_step = r->step;
        r->evals_without_improvement = 0;
        *improved = true;
        if (r->cfg.train.save_best) {
            char dir[4200];
            snprintf(dir, sizeof dir, "%s/best", r->cfg.run.dir);
            if (hf_save(dir, r->student, r->vocab_path) != DISTILL_OK) return DISTILL_ERR;
        }
    } else {
        r->evals_without_improvement++;
    }
    if (r->student->cfg.num_labels == 1)
        progress_eval_regression(&r->prog, r->step, "dev", v.loss, v.pearson, v.spearman, v.mse, v.n, better);
    else
        progress_eval(&r->prog, r->step, "dev", v.loss, v.accuracy, v.f1, v.mcc, v.n, better);
    return DISTILL_OK;
}

static void print_model(const char *role, const Bert *m) {
    printf("%s: %d layers, hidden %d, %d heads, FFN %d, vocab %d, %d labels — %.2fM parameters\n", role,
           m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_attention_heads, m->cfg.intermediate_size,
           m->cfg.vocab_size, m->cfg.num_labels, (double)params_count(m->params, "") / 1e6);
}

static int usage_train(void) {
    fprintf(stderr, "usage: distill --config FILE [--set key=value ...] [--resume auto|none|PATH]\n");
    return 2;
}

int cmd_train(int argc, char **argv) {
    const char *config_path = NULL;
    char **overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    int n_over = 0;
    char resume_buf[4200];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strcmp(argv[i], "--set") && i + 1 < argc) overrides[n_over++] = argv[++i];
        else if (!strcmp(argv[i], "--resume") && i + 1 < argc) {
            snprintf(resume_buf, sizeof resume_buf, "resume=%s", argv[++i]);
            overrides[n_over++] = resume_buf;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            free(overrides);
            usage_train();
            return 0;
        } else {
            fprintf(stderr, "distill: error: unexpected argument '%s'\n", argv[i]);
            free(overrides);
            return usage_train();
        }
    }
    if (!config_path) {
        free(overrides);
        return usage_train();
    }
    Run run;
    memset(&run, 0, sizeof run);
    Run *r = &run;
    r->best_metric = NAN;
    r->best_step = -1;
    int rc = 1;
    Status st = config_load(config_path, n_over, overrides, &r->cfg);
    free(overrides);
    if (st != DISTILL_OK) goto fail;
    Config *cfg = &r->cfg;

    /* ---- device, threads ---- */
    runtime_set_threads(cfg->threads);
    if (runtime_pick_device(cfg->device == CONFIG_DEVICE_CPU ? "cpu" : cfg->device == CONFIG_DEVICE_CUDA ? "cuda" : "auto",
                            &r->device) != DISTILL_OK)
        goto fail;
    r->c = ctx_new(r->device, cfg->run.seed);

    /* ---- data ---- */
    if (dataset_open(&r->train, cfg->data.train, true) != DISTILL_OK) goto fail;
    if (cfg->data.dev && dataset_open(&r->dev, cfg->data.dev, true) != DISTILL_OK) goto fail;
    if (cfg->data.test && dataset_open(&r->test, cfg->data.test, true) != DISTILL_OK) goto fail;
    if (dataset_read_vocab(cfg->data.train, &r->vocab, &r->n_vocab) != DISTILL_OK) goto fail;
    SetupData sd = {0};
    sd.vocab_size = r->train->vocab_size;
    sd.num_labels = r->train->label_kind == LABELS_CLASS ? r->train->num_labels
                    : r->train->label_kind == LABELS_REGRESSION ? 1 : 0;
    if (r->train->n_label_names == sd.num_labels) sd.label_names = r->train->label_names;

    /* ---- models and losses (all checks before anything is written) ---- */
    if (setup_teacher(cfg, r->device, &sd, &r->teacher) != DISTILL_OK) goto fail;
    if (setup_student(cfg, r->device, &sd, r->teacher, &r->student) != DISTILL_OK) goto fail;
    ConfigFacts facts;
    memset(&facts, 0, sizeof facts);
    facts.has_teacher = r->teacher != NULL;
    if (r->teacher) facts.teacher = setup_facts(r->teacher);
    facts.student = setup_facts(r->student);
    facts.has_data = true;
    facts.data_vocab_size = r->train->vocab_size;
    facts.data_max_seq = r->train->max_seq;
    facts.data_has_labels = r->train->label_kind != LABELS_NONE;
    facts.data_regression = r->train->label_kind == LABELS_REGRESSION;
    facts.data_num_labels = r->train->label_kind == LABELS_CLASS ? r->train->num_labels : 0;
    facts.dev_has_labels = r->dev && r->dev->label_kind != LABELS_NONE;
    facts.world_size = 1;
    facts.on_cuda = r->device.type == DEV_CUDA;
    if (config_check_models(cfg, &facts) != DISTILL_OK) goto fail;
    if (cfg->precision == CONFIG_PRECISION_BF16) {
        /* Honest refusal: the CUDA backend has no bf16 kernels yet, and silently training in fp32
         * would misreport what ran. */
        distill_set_error("%s: precision: bf16 is not implemented yet (the CUDA backend computes in fp32/TF32); "
                          "use precision: fp32", config_where(cfg, "precision"));
        goto fail;
    }
    LossSpec *specs = xcalloc((size_t)cfg->n_losses, sizeof *specs);
    st = setup_loss_specs(cfg, r->student, r->teacher, specs);
    if (st == DISTILL_OK)
        st = loss_set_build(specs, cfg->n_losses, &r->student->cfg, r->teacher ? &r->teacher->cfg : NULL,
                            r->device, cfg->run.seed ^ 0x9B0Full, &r->losses);
    free(specs);
    if (st != DISTILL_OK) goto fail;
    LoaderOptions lo = {.batch_size = cfg->data.batch_size, .rank = 0, .world = 1, .seed = cfg->run.seed,
                        .shuffle = cfg->data.shuffle, .drop_last = cfg->data.drop_last};
    if (loader_new(&r->loader, r->train, &lo) != DISTILL_OK) goto fail;
    r->opt_s = adamw_new(r->student->params, (float)cfg->optimizer.beta1, (float)cfg->optimizer.beta2,
                         (float)cfg->optimizer.eps, (float)cfg->optimizer.weight_decay);
    if (loss_set_params(r->losses))
        r->opt_p = adamw_new(loss_set_params(r->losses), (float)cfg->optimizer.beta1, (float)cfg->optimizer.beta2,
                             (float)cfg->optimizer.eps, (float)cfg->optimizer.weight_decay);

    /* ---- resume point (read before anything is written) ---- */
    char resume_path[4200] = "";
    if (cfg->resume == CONFIG_RESUME_PATH) snprintf(resume_path, sizeof resume_path, "%s", cfg->resume_path);
    else if (cfg->resume == CONFIG_RESUME_AUTO) {
        if (ckpt_find_latest(cfg->run.dir, resume_path, sizeof resume_path) != DISTILL_OK) resume_path[0] = 0;
    }
    long long metrics_offset = 0;
    if (resume_path[0]) {
        if (resume_from(r, resume_path) != DISTILL_OK) goto fail;
        metrics_offset = (long long)r->metrics_offset;
        /* Early stopping's count is not in the checkpoint: the dev evaluations logged after the
         * best one (up to the checkpoint) are the ones without improvement. */
        char mpath[4200];
        snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", cfg->run.dir);
        r->evals_without_improvement =
            (int)progress_count_evals(mpath, metrics_offset, "dev", (long long)r->best_step);
        fprintf(stderr, "distill: resuming from %s at step %lld\n", resume_path, (long long)r->step);
    } else if (cfg->resume == CONFIG_RESUME_AUTO) {
        fprintf(stderr, "distill: note: resume: auto found no checkpoint in %s; starting fresh\n", cfg->run.dir);
    }

    /* ---- the run directory ---- */
    r->config_yaml = config_to_string(cfg);
    if (!r->config_yaml) goto fail;
    if (mkdir_p(cfg->run.dir) != DISTILL_OK) goto fail;
    if (write_file_atomic(cfg->run.dir, "config.yaml", r->config_yaml, strlen(r->config_yaml)) != DISTILL_OK) goto fail;
    {
        size_t cap = 1, len = 0;
        for (int i = 0; i < r->n_vocab; i++) cap += strlen(r->vocab[i]) + 1;
        char *text = xmalloc(cap);
        for (int i = 0; i < r->n_vocab; i++) len += (size_t)sprintf(text + len, "%s\n", r->vocab[i]);
        st = write_file_atomic(cfg->run.dir, "vocab.txt", text, len);
        free(text);
        if (st != DISTILL_OK) goto fail;
        snprintf(r->vocab_path, sizeof r->vocab_path, "%s/vocab.txt", cfg->run.dir);
    }

    /* ---- what the run is ---- */
    printf("# distill: resolved config (%s)\n%s", cfg->source, r->config_yaml);
    char devname[32];
    printf("device: %s, %d threads\n", device_str(r->device, devname, sizeof devname), runtime_threads());
    if (r->teacher) print_model("teacher", r->teacher);
    print_model("student", r->student);
    if (loss_set_params(r->losses))
        printf("projections: %.3fM parameters\n", (double)params_count(loss_set_params(r->losses), "") / 1e6);
    printf("losses:\n");
    loss_set_print(r->losses, stdout);
    int64_t spe = loader_steps_per_epoch(r->loader);
    int accum = cfg->train.grad_accum;
    int64_t total = cfg->train.max_steps > 0 ? cfg->train.max_steps : (int64_t)cfg->train.epochs * ((spe + accum - 1) / accum);
    int64_t warmup = cfg->optimizer.warmup_steps > 0 ? cfg->optimizer.warmup_steps
                                                   : (int64_t)ceil(cfg->optimizer.warmup_ratio * (double)total);
    printf("data: %lld train rows (%lld batches of %d per epoch)%s%s; %lld optimizer steps, warmup %lld, %s schedule\n",
           (long long)r->train->rows, (long long)spe, cfg->data.batch_size, r->dev ? ", dev " : "",
           r->dev ? cfg->data.dev : "", (long long)total, (long long)warmup,
           schedule_name((SchedKind)cfg->optimizer.schedule));
    fflush(stdout);

    char metrics_path[4200];
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", cfg->run.dir);
    if (!progress_open(&r->prog, metrics_path, total, r->step, resume_path[0] ? metrics_offset : 0)) goto fail;

    /* ---- the loop ---- */
    BertRequest sreq, treq;
    loss_set_request(r->losses, &sreq, &treq);
    ParamStore *stores[2] = {r->student->params, loss_set_params(r->losses)};
    int n_terms = loss_set_size(r->losses);
    const char **names = xcalloc((size_t)n_terms, sizeof *names);
    for (int i = 0; i < n_terms; i++) names[i] = loss_set_spec(r->losses, i)->name;
    float *terms = xcalloc((size_t)n_terms, sizeof *terms), *acc = xcalloc((size_t)n_terms, sizeof *acc);
    LossLabels lk = loss_set_labels(r->losses);
    double t_log = now_seconds();
    long long tokens_since = 0;
    bool stop = false;
    const char *stop_env = getenv("DISTILL_STOP_AFTER_STEP");
    long long stop_after = stop_env ? atoll(stop_env) : 0;
    while (r->step < total && !stop) {
        params_zero_grad(r->student->params);
        if (stores[1]) params_zero_grad(stores[1]);
        memset(acc, 0, (size_t)n_terms * sizeof *acc);
        float loss_sum = 0;
        bool epoch_end = false;
        for (int a = 0; a < accum; a++) {
            Batch b;
            loader_next(r->loader, &b);
            if (b.last_in_epoch) epoch_end = true;
            r->epoch = b.cursor.epoch;
            if (b.rows == 0) continue;
            ctx_reset(r->c);
            /* Dropout masks are a pure function of (seed, micro-step): resume reproduces them. */
            r->c->rng_counter = (uint64_t)(r->step * accum + a) << 32;
            BertInput in;
            batch_to_input(r->c, &b, &in);
            BertOutput to, so;
            memset(&to, 0, sizeof to);
            if (r->teacher && loss_set_needs_teacher(r->losses)) {
                ctx_set_record(r->c, false);
                r->c->training = false;
                bert_forward(r->c, r->teacher, &in, &treq, &to);
            }
            ctx_set_record(r->c, true);
            r->c->training = true;
            bert_forward(r->c, r->student, &in, &sreq, &so);
            Tensor *labels = NULL;
            int s1[1] = {b.rows};
            if (lk == LOSS_LABELS_CLASS) labels = ctx_from_host(r->c, DT_I32, 1, s1, b.labels);
            else if (lk == LOSS_LABELS_REGRESSION) labels = ctx_from_host(r->c, DT_F32, 1, s1, b.targets);
            Tensor *loss = loss_set_forward(r->c, r->losses, &so, r->teacher ? &to : NULL, labels, b.lengths,
                                            (long)r->step, terms);
            if (!loss) goto fail;
            Tensor *scaled = accum > 1 ? op_scale(r->c, loss, 1.0f / (float)accum) : loss;
            ctx_backward(r->c, scaled);
            loss_sum += op_item(loss) / (float)accum;
            for (int i = 0; i < n_terms; i++) acc[i] += terms[i] / (float)accum;
            for (int i = 0; i < b.rows; i++) tokens_since += b.lengths[i];
            r->samples_seen += b.rows;
        }
        ctx_reset(r->c);
        if (!isfinite(loss_sum)) {
            progress_break(&r->prog);
            distill_set_error("step %lld: the loss is %g; stopping (lower optimizer.lr, or check the data)",
                              (long long)r->step + 1, loss_sum);
            goto fail;
        }
        double gnorm = grad_global_norm(stores, stores[1] ? 2 : 1);
        float clip = clip_grad_scale(gnorm, (float)cfg->optimizer.max_grad_norm);
        double lr = cfg->optimizer.lr * schedule_lambda((SchedKind)cfg->optimizer.schedule, r->opt_s->t, warmup, total);
        adamw_step(r->opt_s, (float)lr, clip);
        if (r->opt_p) adamw_step(r->opt_p, (float)lr, clip);
        r->step++;
        bool last = r->step >= total;
        bool log = r->step % cfg->train.log_every == 0 || last;
        double now = now_seconds();
        double tps = (double)tokens_since / (now - t_log > 1e-9 ? now - t_log : 1e-9);
        progress_step(&r->prog, r->step, (int)r->epoch, names, acc, n_terms, loss_sum, lr, gnorm, tps,
                      log || r->prog.tty, log);
        if (log) {
            t_log = now;
            tokens_since = 0;
        }
        bool eval_now = r->dev && (cfg->train.eval_every > 0 ? r->step % cfg->train.eval_every == 0 : epoch_end);
        if (r->dev && last && r->best_step != r->step) eval_now = true;
        if (eval_now) {
            bool improved;
            if (do_eval(r, &improved) != DISTILL_OK) goto fail;
            if (cfg->train.early_stopping_patience > 0 &&
                r->evals_without_improvement >= cfg->train.early_stopping_patience) {
                fprintf(stderr, "distill: early stopping: %d evaluations without improvement\n",
                        r->evals_without_improvement);
                stop = true;
            }
        }
        bool ckpt_now = cfg->train.checkpoint_every > 0 ? r->step % cfg->train.checkpoint_every == 0 : epoch_end;
        if (ckpt_now || last || stop) {
            char path[4300];
            progress_break(&r->prog);
            ckpt_step_path(cfg->run.dir, r->step, path, sizeof path);
            if (save_checkpoint(r, path) != DISTILL_OK) goto fail;
            if (ckpt_rotate(cfg->run.dir, cfg->train.keep_last) != DISTILL_OK) goto fail;
        }
        /* Testing hook: die like a killed process right after this step (and its checkpoint, if
         * one was due), so tests can check that resuming reproduces an uninterrupted run. */
        if (stop_after > 0 && r->step == stop_after) {
            progress_close(&r->prog);
            fprintf(stderr, "distill: DISTILL_STOP_AFTER_STEP=%lld: stopping abruptly\n", stop_after);
            _exit(3);
        }
    }
    free(names);
    free(terms);
    free(acc);
    progress_break(&r->prog);

    /* ---- final model and test evaluation ---- */
    {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/final", cfg->run.dir);
        if (hf_save(dir, r->student, r->vocab_path) != DISTILL_OK) goto fail;
        printf("final model: %s\n", dir);
        if (r->best_step >= 0) printf("best model: %s/best (step %lld, dev %.4f)\n", cfg->run.dir, (long long)r->best_step, r->best_metric);
        if (r->test) {
            Bert *eval_model = r->student, *best = NULL;
            char bdir[4200];
            snprintf(bdir, sizeof bdir, "%s/best", cfg->run.dir);
            if (r->best_step >= 0 && cfg->train.save_best) {
                if (setup_load_path(bdir, r->device, -1, 0, &best) != DISTILL_OK) goto fail;
                eval_model = best;
            }
            MetricValues v;
            st = evaluate_model(r->c, eval_model, r->test, cfg->data.eval_batch_size, &v);
            bert_free(best);
            if (st != DISTILL_OK) goto fail;
            if (r->student->cfg.num_labels == 1)
                progress_eval_regression(&r->prog, r->step, "test", v.loss, v.pearson, v.spearman, v.mse, v.n, false);
            else
                progress_eval(&r->prog, r->step, "test", v.loss, v.accuracy, v.f1, v.mcc, v.n, false);
        }
    }
    rc = 0;
fail:
    if (rc != 0) {
        progress_break(&r->prog);
        distill_print_error(distill_error());
    }
    run_free(r);
    return rc;
}
