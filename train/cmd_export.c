/*
 * cmd_export.c — `distill export`: write a trained student for deployment.
 *
 *   --hf DIR      a Hugging Face folder (config.json, model.safetensors, vocab.txt, tokenizer
 *                 files) through hf_save, so `transformers` loads it unchanged;
 *   --onnx FILE   an ONNX inference graph through onnx_export (checkpoints/onnx_export.h), with
 *                 --fp16 (float16 weights and compute) and --opset N (14-17, default 17); the
 *                 metadata records the config, the vocabulary's sha256 and the source.
 *
 * The source is a training checkpoint (--checkpoint CKPT.h5: the student only; projections and
 * optimizer state are not even read) or a Hugging Face folder (--model DIR: a re-export, e.g. to
 * normalise a folder or drop what it holds beyond the model). The vocabulary comes from the
 * checkpoint's /vocab (through a temporary file, which is removed) or the folder's vocab.txt.
 *
 * Promises: every target is written atomically by its writer (hf_save: temporary folder + rename);
 * an error leaves no target half-written. Each export target is one branch of run_exports().
 */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "model_io.h"
#include "runtime.h"

#include "checkpoints/ckpt.h"
#include "checkpoints/hf.h"
#include "checkpoints/onnx_export.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *checkpoint, *model, *hf_dir, *onnx_path, *device, *opset;
    bool fp16;
} ExportArgs;

static int usage_error(const char *msg) {
    fprintf(stderr, "distill: error: export: %s\n(see distill export --help)\n", msg);
    return 2;
}

static int fail(void) {
    distill_print_error(distill_error());
    return 1;
}

static int parse_args(int argc, char **argv, ExportArgs *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            help_export(stdout, 0);
            return -1;
        }
        if (!strcmp(k, "--fp16")) {
            a->fp16 = true;
            continue;
        }
        const char **slot = !strcmp(k, "--checkpoint") ? &a->checkpoint
                            : !strcmp(k, "--model")    ? &a->model
                            : !strcmp(k, "--hf")       ? &a->hf_dir
                            : !strcmp(k, "--onnx")     ? &a->onnx_path
                            : !strcmp(k, "--device")   ? &a->device
                            : !strcmp(k, "--opset")    ? &a->opset
                                                       : NULL;
        if (!slot) {
            fprintf(stderr, "distill: error: export: unknown option '%s'\n"
                    "(see distill export --help)\n", k);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "distill: error: export: %s needs a value\n", k);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!a->checkpoint == !a->model)
        return usage_error("give the source: --checkpoint CKPT.h5 or --model DIR (one of them)");
    if (!a->hf_dir && !a->onnx_path) return usage_error("give a target: --hf OUT_DIR or --onnx FILE");
    if ((a->fp16 || a->opset) && !a->onnx_path) return usage_error("--fp16 and --opset need --onnx FILE");
    return 0;
}

/* Refuses writing the folder over its own source. */
static Status check_not_source(const char *src, const char *dst) {
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(src, a) && realpath(dst, b) && !strcmp(a, b)) {
        distill_set_error("%s: the export target is the source folder itself: choose another "
                          "--hf folder", dst);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

static Status export_hf(const ExportArgs *a, const LoadedModel *lm) {
    const char *src = a->checkpoint ? a->checkpoint : a->model;
    if (check_not_source(src, a->hf_dir)) return DISTILL_ERR;
    char vocab[4300];
    bool temp = false;
    const char *tmpdir = getenv("TMPDIR");
    if ((lm->n_vocab > 0 || lm->vocab_path[0]) &&
        model_vocab_file(lm, tmpdir && *tmpdir ? tmpdir : "/tmp", vocab, sizeof vocab, &temp))
        return DISTILL_ERR;
    bool has_vocab = lm->n_vocab > 0 || lm->vocab_path[0];
    if (!has_vocab)
        fprintf(stderr, "distill: warning: %s has no vocabulary: %s gets no vocab.txt or tokenizer "
                "files\n", src, a->hf_dir);
    Status s = hf_save(a->hf_dir, lm->model, has_vocab ? vocab : NULL);
    if (temp) unlink(vocab);
    if (s) return DISTILL_ERR;

    /* hf_save derives do_lower_case from the vocabulary's casing; say so when the training data
     * was tokenised otherwise, since the exported tokenizer would then differ. */
    if (has_vocab) {
        BertConfig cfg;
        HfLoadReport rep;
        if (hf_read_config(a->hf_dir, &cfg, &rep) == DISTILL_OK) {
            if (rep.do_lower_case >= 0 && rep.do_lower_case != (int)lm->do_lower_case)
                fprintf(stderr, "distill: warning: %s/tokenizer_config.json says do_lower_case %s, "
                        "but the model was trained with do_lower_case %s: edit it before use\n",
                        a->hf_dir, rep.do_lower_case ? "true" : "false",
                        lm->do_lower_case ? "true" : "false");
            bert_config_free_labels(&cfg);
        }
    }
    const BertConfig *c = &lm->model->cfg;
    printf("exported %s -> %s (Hugging Face: %d layers, hidden %d, %d label%s, %zu parameters)\n",
           src, a->hf_dir, c->num_hidden_layers, c->hidden_size, c->num_labels,
           c->num_labels == 1 ? "" : "s", params_count(lm->model->params, ""));
    return DISTILL_OK;
}

static Status export_onnx(const ExportArgs *a, const LoadedModel *lm) {
    const char *src = a->checkpoint ? a->checkpoint : a->model;
    OnnxExportOptions o = onnx_export_defaults();
    o.fp16 = a->fp16;
    o.source = src;
    char *end = NULL;
    if (a->opset && ((o.opset = (int)strtol(a->opset, &end, 10)) <= 0 || *end)) {
        distill_set_error("--opset %s: expected a number from %d to %d", a->opset,
                          ONNX_EXPORT_MIN_OPSET, ONNX_EXPORT_MAX_OPSET);
        return DISTILL_ERR;
    }
    /* The vocabulary's hash (as `distill prepare` records it in data files) for the metadata. */
    Tokenizer *tok = NULL;
    TokenizerOptions to = tokenizer_default_options();
    if (lm->n_vocab > 0 && tokenizer_from_tokens(&tok, (const char *const *)lm->vocab, lm->n_vocab, &to))
        return DISTILL_ERR;
    if (lm->n_vocab == 0 && lm->vocab_path[0] && tokenizer_load(&tok, lm->vocab_path, &to))
        return DISTILL_ERR;
    if (tok) o.vocab_sha256 = tokenizer_vocab_sha256(tok);
    Status s = onnx_export(lm->model, a->onnx_path, &o);
    tokenizer_free(tok);
    if (s) return DISTILL_ERR;
    const BertConfig *c = &lm->model->cfg;
    printf("exported %s -> %s (ONNX opset %d, %s: %d layers, hidden %d, %d label%s)\n", src,
           a->onnx_path, o.opset ? o.opset : ONNX_EXPORT_DEFAULT_OPSET, o.fp16 ? "fp16" : "fp32",
           c->num_hidden_layers, c->hidden_size, c->num_labels, c->num_labels == 1 ? "" : "s");
    return DISTILL_OK;
}

/* One branch per export target. */
static Status run_exports(const ExportArgs *a, const LoadedModel *lm) {
    if (a->hf_dir && export_hf(a, lm)) return DISTILL_ERR;
    if (a->onnx_path && export_onnx(a, lm)) return DISTILL_ERR;
    return DISTILL_OK;
}

int cmd_export(int argc, char **argv) {
    ExportArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    if (a.checkpoint) {
        struct stat st;
        if (stat(a.checkpoint, &st) == 0 && S_ISDIR(st.st_mode)) {
            distill_set_error("--checkpoint %s: expected a training checkpoint file (.h5), found a "
                              "folder (for a Hugging Face folder use --model)", a.checkpoint);
            return fail();
        }
    }
    ModelOpenOptions mo = {.device = device_cpu(), .quiet = false, .need_tokenizer = false};
    if (a.device && runtime_pick_device(a.device, &mo.device)) return fail();
    LoadedModel lm;
    if (model_open(a.checkpoint ? a.checkpoint : a.model, &mo, &lm)) return fail();
    Status s = run_exports(&a, &lm);
    model_close(&lm);
    return s == DISTILL_OK ? 0 : fail();
}
