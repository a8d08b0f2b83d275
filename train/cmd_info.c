/*
 * cmd_info.c — `distill info PATH`: say what a file or folder holds, detecting its kind.
 *
 *   a Hugging Face folder      config summary, parameter counts, model.safetensors' tensors,
 *                              vocabulary and tokenizer settings, and a verdict: does it load?
 *   a training checkpoint      ckpt_info_print (progress, student, projections, hashes)
 *   a prepared data file       data_info_print (rows, max_seq, labels, vocabulary)
 *
 * Promise: exit 0 only when the thing is complete and loads (or verifies); 1 with
 * "distill: error: ..." otherwise (what could be read is still printed first); 2 on usage errors.
 * Nothing is written.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "model_io.h"

#include "checkpoints/ckpt.h"
#include "checkpoints/hf.h"
#include "checkpoints/safetensors.h"
#include "data/dataset.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(void) {
    distill_print_error(distill_error());
    return 1;
}


static void print_config(const BertConfig *c, bool has_cls) {
    printf("model        %d layers, hidden %d, %d heads, intermediate %d, vocab %d, max positions "
           "%d, type vocab %d, %s", c->num_hidden_layers, c->hidden_size,
           c->num_attention_heads, c->intermediate_size, c->vocab_size,
           c->max_position_embeddings, c->type_vocab_size, c->has_pooler ? "pooler" : "no pooler");
    if (!has_cls) {
        printf(", no classifier\n");
        return;
    }
    printf(", %d label%s", c->num_labels, c->num_labels == 1 ? "" : "s");
    int shown = c->num_labels < 8 ? c->num_labels : 8;
    for (int i = 0; i < shown; i++) {
        if (c->id2label[i]) printf("%s%s", i ? ", " : " (", c->id2label[i]);
        else printf("%sLABEL_%d", i ? ", " : " (", i);
    }
    if (shown > 0) printf("%s)", c->num_labels > 8 ? ", ..." : "");
    if (c->problem_type[0]) printf(", %s", c->problem_type);
    printf("\n");
}

/* model.safetensors: counts by dtype, size, and (list) every tensor. Returns whether it holds a
 * classifier; *ok false when the file is missing or malformed (message set). */
static bool print_tensors(const char *dir, bool list, bool *ok) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    StFile *f;
    *ok = true;
    if (st_open(path, &f)) {
        printf("tensors      model.safetensors missing or unreadable (see below)\n");
        *ok = false;
        return false;
    }
    const char *dtypes[16];
    int counts[16], nd = 0;
    bool has_cls = false;
    for (int i = 0; i < f->n; i++) {
        const StTensor *t = &f->tensors[i];
        has_cls |= !strcmp(t->name, "classifier.weight") || !strcmp(t->name, "bert.classifier.weight");
        int k = 0;
        while (k < nd && strcmp(dtypes[k], t->dtype)) k++;
        if (k == nd && nd < 16) dtypes[nd] = t->dtype, counts[nd++] = 0;
        if (k < nd) counts[k]++;
    }
    printf("tensors      model.safetensors: %d tensors (", f->n);
    for (int k = 0; k < nd; k++) printf("%s%s %d", k ? ", " : "", dtypes[k], counts[k]);
    printf("), %.1f MB\n", (double)f->size / 1e6);
    for (int i = 0; list && i < f->n; i++) {
        char shape[128];
        printf("  %-60s %-5s %s\n", f->tensors[i].name, f->tensors[i].dtype,
               st_shape_str(&f->tensors[i], shape, sizeof shape));
    }
    st_close(f);
    return has_cls;
}

static int info_folder(const char *dir, bool list) {
    BertConfig cfg;
    HfLoadReport rep;
    if (hf_read_config(dir, &cfg, &rep)) return fail();
    printf("folder       %s (Hugging Face model)\n", dir);
    printf("architecture %s\n", rep.architecture[0] ? rep.architecture : "(not given)");
    bool st_ok;
    bool has_cls = print_tensors(dir, list, &st_ok);
    if (!st_ok) has_cls = cfg.num_labels > 0; /* as config.json says; the load verdict follows */
    if (!has_cls) cfg.num_labels = 0;
    print_config(&cfg, has_cls);
    bert_config_free_labels(&cfg);
    if (rep.vocab_tokens >= 0) {
        char b[32];
        printf("vocab        %s tokens (vocab.txt), do_lower_case %s\n",
               fmt_count((unsigned long long)rep.vocab_tokens, b, sizeof b),
               rep.do_lower_case < 0 ? "true (default: no tokenizer_config.json)"
               : rep.do_lower_case   ? "true" : "false");
    } else {
        printf("vocab        none (no vocab.txt: distill cannot tokenise for this model)\n");
    }

    /* The verdict: load it as predict and export do. */
    ModelOpenOptions mo = {.device = device_cpu(), .quiet = true, .need_tokenizer = false};
    LoadedModel lm;
    if (model_open(dir, &mo, &lm)) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", distill_error());
        printf("load         FAILED: %s\n", msg);
        distill_set_error("%s", msg);
        return fail();
    }
    const ParamStore *ps = lm.model->params;
    static const char *const groups[][2] = {{"embeddings", "bert.embeddings."},
                                            {"encoder", "bert.encoder."},
                                            {"pooler", "bert.pooler."},
                                            {"classifier", "classifier."}};
    char b[32];
    /* the tensors' own sizes: ps->total also counts the alignment padding between them */
    printf("parameters   %s (", fmt_count(params_count(ps, ""), b, sizeof b));
    for (int g = 0; g < 4; g++) {
        size_t n = params_count(ps, groups[g][1]);
        if (n) printf("%s%s %s", g ? ", " : "", groups[g][0], fmt_count(n, b, sizeof b));
    }
    printf(")\n");
    printf("load         ok\n");
    model_close(&lm);
    return 0;
}

/* True when `path` is an HDF5 file (HDF5's own signature check, errors silenced). */
static bool is_hdf5(const char *path) {
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    htri_t r = H5Fis_hdf5(path);
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return r > 0;
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            return help_info(stdout, 0);
        }
        if (!strcmp(argv[i], "--tensors")) {
            list = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "distill: error: info: unknown option '%s'\n(see distill info --help)\n",
                    argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "distill: error: info: expected one PATH, found '%s' and '%s'\n", path,
                    argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "distill: error: info: expected a PATH\n(see distill info --help)\n");
        return 2;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        distill_set_error("%s: %s", path, strerror(errno));
        return fail();
    }
    if (S_ISDIR(st.st_mode)) return info_folder(path, list);
    if (!S_ISREG(st.st_mode)) {
        distill_set_error("%s: expected a checkpoint, a prepared data file or a Hugging Face "
                          "folder, found neither a regular file nor a folder", path);
        return fail();
    }
    if (ckpt_is_checkpoint(path)) {
        int rc = ckpt_info_print(path, stdout);
        fflush(stdout);
        return rc ? fail() : 0;
    }
    if (is_hdf5(path)) {
        int rc = data_info_print(path, stdout); /* prints its own error */
        fflush(stdout);
        return rc ? 1 : 0;
    }
    distill_set_error("%s: expected a training checkpoint or a prepared data file (HDF5), or a "
                      "Hugging Face model folder; found a file that is not HDF5", path);
    return fail();
}
