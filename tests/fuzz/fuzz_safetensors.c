/*
 * fuzz_safetensors.c — libFuzzer harness for `model.safetensors` (checkpoints/safetensors.c) and
 * its use by the Hugging Face import (checkpoints/hf.c).
 *
 * Input: the bytes of a model.safetensors. The harness writes them into a folder beside a fixed
 * config.json of a tiny BERT (hidden 8, 1 layer, 2 heads, FFN 12, 30 tokens, 16 positions,
 * 2 labels: the shape tests/fuzz/make_seeds.c exports, so the seeds load) and runs
 *   1. st_open (the whole header is validated), then for every entry st_find (must find that
 *      entry: names are unique), st_shape_str and, for float tensors, st_read_f32; st_metadata;
 *   2. hf_load of the folder (what --config's `init: PATH` and `distill eval --model` run): the
 *      tensor names, shapes and dtypes matched against the config.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/hf.h"
#include "checkpoints/safetensors.h"
#include "fuzz_util.h"

/* The shape of make_seeds.c's tiny model, as hf_save writes it (the fields hf.c reads). */
static const char TINY_CONFIG[] =
    "{\"architectures\": [\"BertForSequenceClassification\"], \"model_type\": \"bert\",\n"
    " \"vocab_size\": 30, \"hidden_size\": 8, \"num_hidden_layers\": 1,\n"
    " \"num_attention_heads\": 2, \"intermediate_size\": 12, \"max_position_embeddings\": 16,\n"
    " \"type_vocab_size\": 2, \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-12,\n"
    " \"hidden_dropout_prob\": 0.1, \"attention_probs_dropout_prob\": 0.1,\n"
    " \"initializer_range\": 0.02, \"pad_token_id\": 0, \"position_embedding_type\": \"absolute\",\n"
    " \"id2label\": {\"0\": \"negative\", \"1\": \"positive\"},\n"
    " \"label2id\": {\"negative\": 0, \"positive\": 1}}\n";

enum { MAX_READ_FLOATS = 1 << 20 }; /* tensors above this (4 MiB) are listed, not read */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char path[600];
    fuzz_write("config.json", TINY_CONFIG, sizeof TINY_CONFIG - 1, path, sizeof path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600];
    fuzz_write("model.safetensors", data, size, path, sizeof path);

    StFile *f = NULL;
    if (fuzz_said("st_open", st_open(path, &f) == DISTILL_OK)) {
        for (int i = 0; i < f->n; i++) {
            const StTensor *t = &f->tensors[i];
            if (st_find(f, t->name) != t) {
                fprintf(stderr, "fuzz_safetensors: st_find(\"%s\") is not entry %d\n", t->name, i);
                abort();
            }
            char shape[256];
            st_shape_str(t, shape, sizeof shape);
            if (st_is_float(t) && t->numel <= MAX_READ_FLOATS) {
                float *dst = malloc((t->numel ? t->numel : 1) * sizeof(float));
                if (!dst) abort();
                (void)st_read_f32(f, t, dst);
                free(dst);
            }
        }
        (void)st_metadata(f, "format");
        st_close(f);
    }

    HfLoadOptions opt = hf_load_defaults();
    opt.quiet = true;
    Bert *m = NULL;
    HfLoadReport rep;
    if (fuzz_said("hf_load", hf_load(fuzz_dir(), device_cpu(), &opt, &m, &rep) == DISTILL_OK)) bert_free(m);
    return 0;
}
