/*
 * cmd_train.c — `distill --config FILE`: argument handling and the loop around the Trainer.
 *
 * Order of work: join the job (comm.h), load and check the config, build the Trainer (data,
 * models, losses, checks: nothing written yet), find the resume point, then (rank 0 only) the
 * resolved config and vocabulary into the run directory. The loop: trainer_step, logging,
 * evaluations (best model kept as a Hugging Face folder `best/`), checkpoints (`ckpt-<step>.h5`,
 * atomic, last K kept); at the end the final model (`final/`) and a test evaluation when
 * `data.test` is set. Only rank 0 logs and writes; evaluations are split over the ranks, so every
 * rank agrees on the best model and on early stopping.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../checkpoints/ckpt.h"
#include "../engine/backend.h"
#include "../checkpoints/hf.h"
#include "../io/atomic.h"
#include "../losses/losses.h"
#include "cli.h"
#include "comm.h"
#include "config.h"
#include "config_tree.h"
#include "progress.h"
#include "runtime.h"
#include "signals.h"
#include "trainer.h"

typedef struct Run {
    Trainer *t;
    Comm *comm;
    bool rank0;
    Progress prog;
    char *config_yaml;
    char vocab_path[4200];
    int evals_without_improvement;
    char *resume_cmd;   /* the command line that resumes this run */
    bool stopped;       /* a stop signal ended the loop after a checkpoint */
} Run;

/* Rank 0's status, known to every rank (a failed write on rank 0 stops all of them). */
static Status agree(Run *r, Status st, const char *what) {
    if (r->comm->world == 1) return st;
    bool bad = comm_any(r->comm, st != DISTILL_OK, what);
    if (bad && st == DISTILL_OK) distill_set_error("rank 0 failed: %s (see its message)", what);
    return bad ? DISTILL_ERR : DISTILL_OK;
}

static void log_eval(Run *r, const char *split, const MetricValues *v, bool better) {
    if (!r->rank0) return;
    if (r->t->student->cfg.num_labels == 1)
        progress_eval_regression(&r->prog, r->t->step, split, v->loss, v->pearson, v->spearman, v->mse, v->n, better);
    else
        progress_eval(&r->prog, r->t->step, split, v, better);
}

static Status do_eval(Run *r) {
    Trainer *t = r->t;
    MetricValues v;
    if (trainer_evaluate(t, NULL, t->dev, &v) != DISTILL_OK) return DISTILL_ERR;
    static const char *metric_names[] = {"accuracy", "f1", "mcc", "pearson", "spearman", "loss"};
    double value;
    bool higher;
    metrics_pick(&v, metric_names[t->cfg.train.metric], &value, &higher);
    bool better = isnan(t->best_metric) || (higher ? value > t->best_metric : value < t->best_metric);
    Status st = DISTILL_OK;
    if (better) {
        t->best_metric = value;
        t->best_step = t->step;
        r->evals_without_improvement = 0;
        if (t->cfg.train.save_best && r->rank0) {
            char dir[4300];
            snprintf(dir, sizeof dir, "%s/best", t->cfg.run.dir);
            st = hf_save(dir, t->student, r->vocab_path);
        }
        if (t->cfg.train.save_best) st = agree(r, st, "saving the best model");
    } else {
        r->evals_without_improvement++;
    }
    log_eval(r, "dev", &v, better);
    return st;
}

static void print_model(const char *role, const Bert *m) {
    char b[32];
    printf("%s: %d layers, hidden %d, %d heads, FFN %d, vocab %d, %d labels — %s parameters\n", role,
           m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_attention_heads, m->cfg.intermediate_size,
           m->cfg.vocab_size, m->cfg.num_labels, fmt_count(params_count(m->params, ""), b, sizeof b));
}

/* "stage 2/2 (prediction): steps 101..150, ..." on entering a stage of a staged run (rank 0). */
static void print_stage(Run *r) {
    Trainer *t = r->t;
    if (t->n_stages < 2) return;
    ConfigStage tmp;
    const ConfigStage *st = trainer_stage(t, &tmp);
    progress_break(&r->prog);
    printf("stage %d/%d (%s): steps %lld..%lld, losses", t->stage + 1, t->n_stages, st->name,
           (long long)t->stage_begin + 1, (long long)(t->stage_begin + t->stage_len[t->stage]));
    for (int i = 0; i < t->n_terms; i++) printf("%s %s", i ? "," : "", t->term_names[i]);
    printf("; lr %g, warmup %lld, %s schedule; fresh optimizer state", st->optimizer.lr, (long long)t->warmup_steps,
           schedule_name((SchedKind)st->optimizer.schedule));
    if (t->stage_carried || t->stage_fresh)
        printf("; projections: %d tensors carried over, %d new", t->stage_carried, t->stage_fresh);
    printf("\n");
    r->prog.stage = st->name;
    fflush(stdout);
}

static void print_run(Run *r) {
    Trainer *t = r->t;
    const Config *cfg = &t->cfg;
    Comm *comm = r->comm;
    char devname[32];
    device_str(t->device, devname, sizeof devname);
    /* the world first: how many processes, how they talk, on what */
    if (comm->world > 1)
        printf("world: %d ranks (launcher variable %s), %d on this node; gradients all-reduced with %s; "
               "devices: %s on every rank (rank 0: %s), %d threads per rank\n",
               comm->world, comm_describe(comm), comm->local_world, comm_kind_name(comm->kind),
               t->device.type == DEV_CUDA ? "cuda:<local rank>" : "cpu", devname, runtime_threads());
    else
        printf("world: 1 rank; device: %s, %d threads\n", devname, runtime_threads());
    printf("precision: teacher %s, student %s (GEMMs: %s)\n", t->teacher ? CONFIG_PRECISION_NAMES[cfg->teacher.precision] : "none",
           CONFIG_PRECISION_NAMES[cfg->student.precision], backend_gemm_library(t->device));
    printf("# distill: resolved config (%s)\n%s", cfg->source, r->config_yaml);
    if (t->n_teachers > 1) { /* teachers: each with its name, precision and logit weight */
        printf("teachers: %d, logits combined by %s\n", t->n_teachers, CONFIG_TEACHER_LOGITS_NAMES[cfg->teacher_logits]);
        for (int k = 0; k < t->n_teachers; k++) {
            const ConfigModel *m = config_teacher(cfg, k);
            char role[96];
            if (cfg->teacher_logits != CONFIG_TEACHER_LOGITS_MEAN)
                snprintf(role, sizeof role, "teacher %d (%s, %s, weight %g)", k + 1, m->name,
                         CONFIG_PRECISION_NAMES[m->precision], m->weight);
            else
                snprintf(role, sizeof role, "teacher %d (%s, %s)", k + 1, m->name, CONFIG_PRECISION_NAMES[m->precision]);
            print_model(role, t->teachers[k]);
        }
    } else if (t->teacher) {
        print_model("teacher", t->teacher);
    }
    if (trainer_uses_cache(t))
        printf("teacher: logits from the cache in %s (teacher sha256 %.16s...): the teacher is not run\n",
               cfg->data.train, t->train->teacher_cache.teacher_sha256);
    print_model("student", t->student);
    char b[32];
    ConfigStage tmp;
    if (t->stores[1]) printf("projections: %s parameters\n", fmt_count(params_count(t->stores[1], ""), b, sizeof b));
    printf("losses:\n");
    loss_set_print(t->losses, stdout);
    int64_t spe = loader_steps_per_epoch(t->loader);
    printf("data: %lld train rows (%lld batches of %d per epoch", (long long)t->train->rows, (long long)spe,
           cfg->data.batch_size);
    if (comm->world > 1) printf(", %d rows per rank", cfg->data.batch_size / comm->world);
    printf(")%s%s; %lld optimizer steps, warmup %lld, %s schedule\n", t->dev ? ", dev " : "",
           t->dev ? cfg->data.dev : "", (long long)t->total_steps, (long long)t->warmup_steps,
           schedule_name((SchedKind)trainer_stage(t, &tmp)->optimizer.schedule));
    if (t->n_stages > 1) {
        printf("stages: %d (the steps above are their sum; each stage restarts the data order, the optimizer "
               "state and the schedule; dev evaluations in the last stage only)\n", t->n_stages);
        for (int s = 0; s < t->n_stages; s++)
            printf("  %d. %s: %lld steps\n", s + 1, t->cfg.stages[s].name, (long long)t->stage_len[s]);
        print_stage(r);
    }
    fflush(stdout);
}

/* Writes config.yaml and vocab.txt into the run directory (rank 0). */
static Status write_run_dir(Run *r) {
    Trainer *t = r->t;
    const char *dir = t->cfg.run.dir;
    char path[4200];
    if (io_mkdir_p(dir) != DISTILL_OK) return DISTILL_ERR;
    /* what a killed earlier run was writing (a checkpoint, final/, best/): best effort */
    if (io_clean_stale_temps(dir) != DISTILL_OK) fprintf(stderr, "distill: warning: %s\n", distill_error());
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    if (io_write_file_atomic(path, r->config_yaml, strlen(r->config_yaml)) != DISTILL_OK) return DISTILL_ERR;
    size_t cap = 1, len = 0;
    for (int i = 0; i < t->n_vocab; i++) cap += strlen(t->vocab[i]) + 1;
    char *text = xmalloc(cap);
    text[0] = 0;
    for (int i = 0; i < t->n_vocab; i++) len += (size_t)sprintf(text + len, "%s\n", t->vocab[i]);
    Status st = io_write_file_atomic(r->vocab_path, text, len);
    free(text);
    return st;
}

static Status final_model_and_test(Run *r) {
    Trainer *t = r->t;
    const Config *cfg = &t->cfg;
    char dir[4300], bdir[4300];
    snprintf(dir, sizeof dir, "%s/final", cfg->run.dir);
    snprintf(bdir, sizeof bdir, "%s/best", cfg->run.dir);
    Status st = r->rank0 ? hf_save(dir, t->student, r->vocab_path) : DISTILL_OK;
    if (agree(r, st, "saving the final model") != DISTILL_OK) return DISTILL_ERR;
    if (r->rank0) {
        printf("final model: %s\n", dir);
        if (t->best_step >= 0) printf("best model: %s (step %lld, dev %.4f)\n", bdir, (long long)t->best_step, t->best_metric);
        if (t->teacher) printf("teacher forwards: %lld (this process)\n", (long long)t->teacher_forwards);
    }
    if (!t->test) return DISTILL_OK;
    /* the test split is scored with the best model when one was kept (every rank reads it) */
    Bert *best = NULL;
    if (t->best_step >= 0 && cfg->train.save_best) {
        HfLoadOptions opt = hf_load_defaults();
        if (hf_load(bdir, t->device, &opt, &best, NULL) != DISTILL_OK) return DISTILL_ERR;
    }
    MetricValues v;
    st = trainer_evaluate(t, best, t->test, &v);
    bert_free(best);
    if (st != DISTILL_OK) return DISTILL_ERR;
    log_eval(r, "test", &v, false);
    return DISTILL_OK;
}

/* The checkpoint to resume from, agreed by all ranks (rank 0 looks; the others take its answer). */
static void resume_point(Run *r, char *path, size_t n) {
    const Config *cfg = &r->t->cfg;
    path[0] = 0;
    if (cfg->resume == CONFIG_RESUME_PATH) snprintf(path, n, "%s", cfg->resume_path);
    else if (cfg->resume == CONFIG_RESUME_AUTO && r->rank0 && ckpt_find_latest(cfg->run.dir, path, n) != DISTILL_OK)
        path[0] = 0;
    comm_bcast(r->comm, path, n, 0, "the resume point");
}

/* ckpt-<step>.h5 of the current state (rank 0 writes, every rank learns whether it worked); a
 * failed write stops the run: it never goes on without checkpoints. */
static Status save_checkpoint(Run *r) {
    Trainer *t = r->t;
    Status st = DISTILL_OK;
    if (r->rank0) {
        char path[4300];
        progress_break(&r->prog);
        t->metrics_offset = progress_offset(&r->prog);
        if (!progress_ok(&r->prog)) return agree(r, DISTILL_ERR, "writing metrics.jsonl");
        ckpt_step_path(t->cfg.run.dir, t->step, path, sizeof path);
        st = trainer_save(t, path, r->config_yaml);
        if (st == DISTILL_OK) st = ckpt_rotate(t->cfg.run.dir, t->cfg.train.keep_last);
    }
    return agree(r, st, "writing the checkpoint");
}

/* "distill ARGS... --resume auto": this run's arguments with any --resume replaced, each quoted
 * for a POSIX shell where it needs it. */
static char *resume_command(int argc, char **argv) {
    size_t cap = 64;
    for (int i = 1; i < argc; i++) cap += 4 * strlen(argv[i]) + 4;
    char *s = xmalloc(cap);
    size_t n = (size_t)sprintf(s, "distill");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            i++;
            continue;
        }
        const char *a = argv[i];
        bool plain = a[0] != 0 && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == strlen(a);
        s[n++] = ' ';
        if (plain) {
            n += (size_t)sprintf(s + n, "%s", a);
            continue;
        }
        s[n++] = '\'';
        for (const char *p = a; *p; p++) {
            if (*p == '\'') n += (size_t)sprintf(s + n, "'\\''");
            else s[n++] = *p;
        }
        s[n++] = '\'';
    }
    sprintf(s + n, " --resume auto");
    return s;
}

/* After a stop signal: where the checkpoint is and how to go on (rank 0). */
static void report_stop(Run *r) {
    if (!r->rank0) return;
    Trainer *t = r->t;
    char path[4300];
    ckpt_step_path(t->cfg.run.dir, t->step, path, sizeof path);
    int sig = signals_pending();
    progress_break(&r->prog);
    fprintf(stderr, "distill: stopped by %s%s after step %lld of %lld; checkpoint: %s\n",
            sig ? signals_name(sig) : "a stop signal", sig ? "" : " on another rank", (long long)t->step,
            (long long)t->total_steps, path);
    fprintf(stderr, "distill: exit status %d (stopped, not finished); resume with: %s%s\n", DISTILL_EXIT_STOPPED,
            r->resume_cmd, r->comm->world > 1 ? " (under the same launcher: mpirun/srun)" : "");
    fflush(stderr);
}

static Status loop(Run *r, const char *resume_path) {
    Trainer *t = r->t;
    const Config *cfg = &t->cfg;
    char metrics_path[4200];
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", cfg->run.dir);
    if (r->rank0 &&
        !progress_open(&r->prog, metrics_path, t->total_steps, t->step, resume_path[0] ? t->metrics_offset : 0))
        return DISTILL_ERR;
    if (r->rank0 && t->n_stages > 1) r->prog.stage = t->cfg.stages[t->stage].name;
    double t_log = now_seconds();
    long long tokens_since = 0;
    bool stop = false;
    const char *stop_env = getenv("DISTILL_STOP_AFTER_STEP");
    long long stop_after = stop_env ? atoll(stop_env) : 0;
    /* Testing hook: a pause after each step, so a test can send a signal mid-run. */
    const char *sleep_env = getenv("DISTILL_TEST_STEP_SLEEP_MS");
    long sleep_ms = sleep_env ? atol(sleep_env) : 0;
    while (t->step < t->total_steps && !stop) {
        TrainerStep s;
        if (trainer_stage_done(t)) {
            if (trainer_next_stage(t) != DISTILL_OK) {
                if (r->rank0) progress_break(&r->prog);
                return DISTILL_ERR;
            }
            if (r->rank0) print_stage(r);
        }
        t->stop_request = signals_pending();
        if (r->rank0 && signals_pending()) progress_break(&r->prog);
        if (trainer_step(t, &s) != DISTILL_OK) {
            if (r->rank0) progress_break(&r->prog);
            return DISTILL_ERR;
        }
        tokens_since += s.tokens;
        if (sleep_ms > 0) usleep((useconds_t)sleep_ms * 1000);
        /* a failed metrics.jsonl write (full disk) stops the run: here with one rank, at the next
         * checkpoint (which every rank waits for) with several */
        if (r->comm->world == 1 && !progress_ok(&r->prog)) return DISTILL_ERR;
        bool last = t->step >= t->total_steps;
        bool log = t->step % cfg->train.log_every == 0 || last;
        double now = now_seconds();
        double tps = (double)tokens_since / (now - t_log > 1e-9 ? now - t_log : 1e-9);
        /* a skipped step (non-finite values, warned about by the trainer) has no loss to log */
        if (r->rank0 && !s.skipped)
            progress_step(&r->prog, t->step, (int)t->epoch, t->term_names, s.terms, t->n_terms, (float)s.loss, s.lr,
                          s.grad_norm, tps, log || r->prog.tty, log);
        if (log) {
            t_log = now;
            tokens_since = 0;
        }
        /* dev evaluations, best/ and early stopping belong to the last stage (an earlier one, such as
         * TinyBERT's intermediate-layer stage, need not train the classifier at all) */
        bool last_stage = t->stage == t->n_stages - 1;
        bool stage_end = !last_stage && t->step - t->stage_begin == t->stage_len[t->stage];
        bool eval_now = t->dev && last_stage &&
                        (cfg->train.eval_every > 0 ? t->step % cfg->train.eval_every == 0 : s.epoch_end);
        if (t->dev && last && t->best_step != t->step) eval_now = true;
        if (eval_now) {
            if (do_eval(r) != DISTILL_OK) return DISTILL_ERR;
            if (cfg->train.early_stopping_patience > 0 &&
                r->evals_without_improvement >= cfg->train.early_stopping_patience) {
                if (r->rank0)
                    fprintf(stderr, "distill: early stopping: %d evaluations without improvement\n",
                            r->evals_without_improvement);
                stop = true;
            }
        }
        bool ckpt_now = cfg->train.checkpoint_every > 0 ? t->step % cfg->train.checkpoint_every == 0 : s.epoch_end;
        bool signalled = s.stop && !last && !stop; /* the last step finishes the run normally */
        if ((ckpt_now || last || stop || signalled || stage_end) && save_checkpoint(r) != DISTILL_OK) return DISTILL_ERR;
        if (signalled) {
            /* Preemption: every rank saw the request in the same step's all-reduce, so all stop
             * here, after this step's evaluation (if one was due) and its checkpoint. */
            report_stop(r);
            r->stopped = true;
            return DISTILL_OK;
        }
        /* Testing hook: die like a killed process right after this step (and its checkpoint, if
         * one was due, which every rank has waited for above), so tests can check that resuming
         * reproduces an uninterrupted run. */
        if (stop_after > 0 && t->step == stop_after) {
            if (r->rank0) progress_close(&r->prog);
            fprintf(stderr, "distill: DISTILL_STOP_AFTER_STEP=%lld: stopping abruptly\n", stop_after);
            fflush(NULL);
            _exit(3);
        }
    }
    if (r->rank0) progress_break(&r->prog);
    return final_model_and_test(r);
}

int cmd_train(int argc, char **argv) {
    const char *config_path = NULL;
    char **overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    int n_over = 0;
    char resume_buf[4200];
    for (int i = 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            free(overrides);
            return help_train(stdout, 0);
        }
        if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "--set") || !strcmp(argv[i], "--resume")) && !has) {
            fprintf(stderr, "distill: error: %s needs a value\n", argv[i]);
            free(overrides);
            return help_train(stderr, 2);
        }
        if (!strcmp(argv[i], "--config")) config_path = argv[++i];
        else if (!strcmp(argv[i], "--set")) {
            overrides[n_over++] = argv[++i];
        }
        else if (!strcmp(argv[i], "--resume")) {
            snprintf(resume_buf, sizeof resume_buf, "resume=%s", argv[++i]);
            overrides[n_over++] = resume_buf;
        } else {
            fprintf(stderr, "distill: error: unexpected argument '%s'\n", argv[i]);
            free(overrides);
            return help_train(stderr, 2);
        }
    }
    if (!config_path) {
        fprintf(stderr, "distill: error: training needs --config FILE\n");
        free(overrides);
        return help_train(stderr, 2);
    }
    Comm comm;
    if (comm_init(&argc, &argv, &comm) != DISTILL_OK) {
        free(overrides);
        distill_print_error(distill_error());
        return 1;
    }
    Run run;
    memset(&run, 0, sizeof run);
    Run *r = &run;
    r->comm = &comm;
    r->rank0 = comm.rank == 0;
    r->resume_cmd = resume_command(argc, argv);
    signals_install();
    int rc = 1;
    Config cfg;
    Status st = config_load(config_path, n_over, overrides, &cfg);
    free(overrides);
    /* a config that fails on one rank fails on all (same files), but say so on every rank */
    if (comm_any(&comm, st != DISTILL_OK, "the config check")) {
        if (st == DISTILL_OK) distill_set_error("another rank rejected the config");
        goto fail;
    }
    st = trainer_new(&cfg, &comm, true, &r->t);
    if (comm_any(&comm, st != DISTILL_OK, "the set-up")) {
        if (st == DISTILL_OK) distill_set_error("set-up failed on another rank (see its message)");
        goto fail;
    }
    Trainer *t = r->t;
    snprintf(r->vocab_path, sizeof r->vocab_path, "%s/vocab.txt", t->cfg.run.dir);

    /* ---- resume point (read before anything is written) ---- */
    char resume_path[4200];
    resume_point(r, resume_path, sizeof resume_path);
    if (resume_path[0]) {
        st = trainer_resume(t, resume_path);
        if (comm_any(&comm, st != DISTILL_OK, "the resume")) {
            if (st == DISTILL_OK) distill_set_error("resuming failed on another rank (see its message)");
            goto fail;
        }
        /* Early stopping's count is not in the checkpoint: the dev evaluations logged after the
         * best one (up to the checkpoint) are the ones without improvement. */
        char mpath[4300];
        snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", t->cfg.run.dir);
        int64_t n_after = r->rank0 ? progress_count_evals(mpath, (long long)t->metrics_offset, "dev", (long long)t->best_step) : 0;
        comm_allreduce_i64(&comm, &n_after, 1, "the early-stopping count");
        r->evals_without_improvement = (int)n_after;
        if (r->rank0)
            fprintf(stderr, "distill: resuming from %s at step %lld of %lld (epoch %lld)\n", resume_path,
                    (long long)t->step, (long long)t->total_steps, (long long)t->epoch);
    } else if (t->cfg.resume == CONFIG_RESUME_AUTO && r->rank0) {
        fprintf(stderr, "distill: note: resume: auto found no checkpoint in %s; starting fresh\n", t->cfg.run.dir);
    }

    /* ---- the run directory (rank 0) ---- */
    r->config_yaml = config_yaml_string(&t->cfg);
    st = r->config_yaml ? DISTILL_OK : DISTILL_ERR;
    if (st == DISTILL_OK && r->rank0) st = write_run_dir(r);
    if (agree(r, st, "writing the run directory") != DISTILL_OK) goto fail;
    if (r->rank0) print_run(r);
    if (loop(r, resume_path) != DISTILL_OK) goto fail;
    rc = r->stopped ? DISTILL_EXIT_STOPPED : 0;
fail:
    if (rc != 0 && !r->stopped) {
        if (r->rank0) progress_break(&r->prog);
        if (comm.world > 1) fprintf(stderr, "distill: error: rank %d: %s\n", comm.rank, distill_error());
        else distill_print_error(distill_error());
    }
    if (r->rank0) progress_close(&r->prog);
    free(r->config_yaml);
    free(r->resume_cmd);
    trainer_free(r->t);
    comm_finalize(&comm);
    return rc;
}
