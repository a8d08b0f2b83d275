/*
 * cmd_eval.c — `distill eval`: accuracy, F1 and MCC of a model on a prepared file, and its
 * inference latency per sample at batch 1 and batch 32.
 *
 * Latency is measured on the file's own rows (the first rows, in order, dynamic padding as in
 * training), tape off, dropout off, after one warm-up pass; the figure is the median over
 * repetitions of (wall time of the batch forward) / (rows in the batch). `--random L,H,A,I` times
 * a randomly initialised model of that shape (e.g. BERT-base 12,768,12,3072) instead: for latency
 * only, its accuracy is meaningless and not printed.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../data/loader.h"
#include "../engine/ops.h"
#include "cli.h"
#include "model_io.h"
#include "runtime.h"
#include "trainer.h"

static int usage(FILE *f, int rc) {
    fprintf(f,
            "usage: distill eval (--model DIR|CKPT.h5 | --random L,H,A,I) --data FILE.h5 [options]\n"
            "  --model PATH        a Hugging Face folder or a training checkpoint\n"
            "  --random L,H,A,I    a random model of that shape (layers, hidden, heads, FFN): latency only\n"
            "  --data FILE.h5      a prepared file with labels (distill prepare)\n"
            "  --batch-size N      evaluation batch (default 32)\n"
            "  --latency-rows N    rows timed at batch 1 (default 64; batch 32 times 4 batches)\n"
            "  --no-latency        skip the latency measurement\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "  --device D          cpu | cuda | auto (default cpu)\n"
            "  --json              one JSON object on stdout instead of the text report\n");
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per sample of forwards at batch `bs` over the first rows of ds. */
static double time_latency(Ctx *c, Bert *m, const Dataset *ds, int bs, int rows, int reps) {
    LoaderOptions lo = {.batch_size = bs, .rank = 0, .world = 1, .seed = 0, .shuffle = false, .drop_last = false};
    Loader *ld;
    if (loader_new(&ld, ds, &lo) != DISTILL_OK) return NAN;
    int nb = (rows + bs - 1) / bs;
    if (nb > loader_steps_per_epoch(ld)) nb = (int)loader_steps_per_epoch(ld);
    double *samples = xmalloc((size_t)(nb * reps + 1) * sizeof(double));
    int ns = 0;
    bool old = ctx_set_record(c, false);
    c->training = false;
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
        LoaderCursor start = {0, 0};
        loader_seek(ld, start);
        for (int i = 0; i < nb; i++) {
            Batch b;
            loader_next(ld, &b);
            if (b.rows == 0) continue;
            ctx_reset(c);
            double t0 = now_seconds();
            BertInput in;
            batch_to_input(c, &b, &in);
            BertRequest req = {0};
            BertOutput o;
            bert_forward(c, m, &in, &req, &o);
            (void)o;
            c->be->sync(); /* waits for the device */
            double dt = now_seconds() - t0;
            if (rep >= 0) samples[ns++] = dt / b.rows;
        }
    }
    ctx_reset(c);
    ctx_set_record(c, old);
    loader_free(ld);
    qsort(samples, (size_t)ns, sizeof *samples, cmp_double);
    double med = ns ? samples[ns / 2] : NAN;
    free(samples);
    return med;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *data_path = NULL, *random_shape = NULL, *device_name = "cpu";
    int batch = 32, latency_rows = 64, threads = 0;
    bool latency = true, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model_path = argv[++i];
        else if (!strcmp(a, "--random") && has) random_shape = argv[++i];
        else if (!strcmp(a, "--data") && has) data_path = argv[++i];
        else if (!strcmp(a, "--batch-size") && has) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--latency-rows") && has) latency_rows = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--device") && has) device_name = argv[++i];
        else if (!strcmp(a, "--no-latency")) latency = false;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        else {
            fprintf(stderr, "distill: error: eval: unexpected argument '%s'\n", a);
            return usage(stderr, 2);
        }
    }
    if ((!model_path) == (!random_shape) || !data_path || batch < 1 || latency_rows < 1) return usage(stderr, 2);
    runtime_set_threads(threads);
    Device dev;
    if (runtime_pick_device(device_name, &dev) != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    Dataset *ds = NULL;
    LoadedModel lm;
    memset(&lm, 0, sizeof lm);
    Bert *m = NULL;
    int rc = 1;
    if (dataset_open(&ds, data_path, true) != DISTILL_OK) goto done;
    long long size_bytes = -1;
    if (model_path) {
        ModelOpenOptions mo = {.device = dev, .quiet = true, .need_tokenizer = false};
        if (model_open(model_path, &mo, &lm) != DISTILL_OK) goto done;
        m = lm.model;
        char p[4200];
        snprintf(p, sizeof p, "%s/model.safetensors", model_path);
        size_bytes = file_size(p);
        if (size_bytes < 0) size_bytes = file_size(model_path);
    } else {
        int L, H, A, I;
        if (sscanf(random_shape, "%d,%d,%d,%d", &L, &H, &A, &I) != 4 || L < 1 || H < 1 || A < 1 || I < 1 || H % A) {
            distill_set_error("--random: expected L,H,A,I (layers, hidden, heads, FFN; heads divide hidden), found '%s'",
                              random_shape);
            goto done;
        }
        BertConfig c = bert_config_default();
        c.num_hidden_layers = L;
        c.hidden_size = H;
        c.num_attention_heads = A;
        c.intermediate_size = I;
        c.vocab_size = ds->vocab_size;
        c.num_labels = ds->label_kind == LABELS_REGRESSION ? 1 : (ds->num_labels > 1 ? ds->num_labels : 2);
        m = bert_build(&c, dev);
        bert_init(m, 1234);
        size_bytes = (long long)bert_config_param_count(&c) * 4; /* what an F32 safetensors holds */
    }
    Ctx *c = ctx_new(dev, 0);
    MetricValues v;
    memset(&v, 0, sizeof v);
    bool have_metrics = model_path != NULL && ds->label_kind != LABELS_NONE && m->cfg.num_labels > 0;
    if (have_metrics && evaluate_model(c, m, ds, batch, &v) != DISTILL_OK) {
        ctx_free(c);
        goto done;
    }
    double lat1 = NAN, lat32 = NAN;
    if (latency) {
        lat1 = time_latency(c, m, ds, 1, latency_rows, 3);
        lat32 = time_latency(c, m, ds, 32, 4 * 32, 3);
    }
    ctx_free(c);
    size_t nparams = params_count(m->params, "");
    if (json) {
        printf("{\"model\":\"%s\",\"data\":\"%s\",\"rows\":%lld,\"parameters\":%zu,\"file_bytes\":%lld,"
               "\"layers\":%d,\"hidden\":%d,\"heads\":%d,\"intermediate\":%d,\"threads\":%d",
               model_path ? model_path : random_shape, data_path, (long long)ds->rows, nparams, size_bytes,
               m->cfg.num_hidden_layers, m->cfg.hidden_size, m->cfg.num_attention_heads, m->cfg.intermediate_size,
               runtime_threads());
        if (have_metrics && m->cfg.num_labels == 1)
            printf(",\"loss\":%.6g,\"mse\":%.6g,\"pearson\":%.6g,\"spearman\":%.6g", v.loss, v.mse, v.pearson, v.spearman);
        else if (have_metrics)
            printf(",\"loss\":%.6g,\"accuracy\":%.6g,\"f1\":%.6g,\"mcc\":%.6g", v.loss, v.accuracy, v.f1, v.mcc);
        if (latency) printf(",\"latency_ms_b1\":%.4f,\"latency_ms_b32\":%.4f", lat1 * 1e3, lat32 * 1e3);
        printf("}\n");
    } else {
        printf("model      %s (%d layers, hidden %d, %d heads, FFN %d; %.2fM parameters)\n",
               model_path ? model_path : random_shape, m->cfg.num_hidden_layers, m->cfg.hidden_size,
               m->cfg.num_attention_heads, m->cfg.intermediate_size, (double)nparams / 1e6);
        printf("data       %s (%lld rows)\n", data_path, (long long)ds->rows);
        if (have_metrics && m->cfg.num_labels == 1)
            printf("loss %.4f  mse %.4f  pearson %.4f  spearman %.4f\n", v.loss, v.mse, v.pearson, v.spearman);
        else if (have_metrics)
            printf("loss %.4f  accuracy %.4f  f1 %.4f  mcc %.4f\n", v.loss, v.accuracy, v.f1, v.mcc);
        if (latency)
            printf("latency per sample (%d threads): batch 1 %.3f ms, batch 32 %.3f ms\n", runtime_threads(),
                   lat1 * 1e3, lat32 * 1e3);
    }
    rc = 0;
done:
    if (rc) distill_print_error(distill_error());
    if (model_path) model_close(&lm);
    else bert_free(m);
    dataset_free(ds);
    return rc;
}
