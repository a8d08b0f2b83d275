/*
 * fuzz_hf_config_json.c — libFuzzer harness for a Hugging Face folder's JSON and vocabulary
 * (checkpoints/hf.c: hf_read_config, what `init: PATH`, `distill eval --model`, `predict` and
 * `info` read first).
 *
 * Input: config.json, then optionally a NUL and tokenizer_config.json, then optionally a NUL and
 * vocab.txt; a file whose part is absent is not in the folder. hf_read_config parses config.json
 * with cJSON, checks every field HF's BertConfig has, counts vocab.txt against vocab_size and reads
 * do_lower_case. A config it accepts then goes through bert_config_validate and, when valid,
 * bert_config_param_count, as hf_load and `distill info` use it; and hf_load runs on the folder,
 * whose model.safetensors is the tiny random model LLVMFuzzerInitialize exports (hidden 8,
 * 1 layer, 2 heads, FFN 12, 30 tokens, 16 positions, 2 labels: the shape of the seed's config), so
 * a fuzzed config.json meets real tensors (names, shapes, heads, labels, layers).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoints/hf.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    BertConfig cfg = bert_config_default();
    cfg.vocab_size = 30;
    cfg.hidden_size = 8;
    cfg.num_hidden_layers = 1;
    cfg.num_attention_heads = 2;
    cfg.intermediate_size = 12;
    cfg.max_position_embeddings = 16;
    cfg.num_labels = 2;
    Bert *m = bert_build(&cfg, device_cpu());
    bert_init(m, 7);
    char dir[600], from[700], to[600];
    fuzz_path("export", dir, sizeof dir);
    snprintf(from, sizeof from, "%s/model.safetensors", dir);
    if (hf_save(dir, m, NULL) || rename(from, fuzz_path("model.safetensors", to, sizeof to))) {
        fprintf(stderr, "fuzz_hf_config_json: cannot export the tiny model: %s\n", distill_error());
        abort();
    }
    bert_free(m);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3];
    size_t len[3];
    int parts = fuzz_split(data, size, 3, part, len);
    fuzz_write_opt("config.json", true, part[0], len[0]);
    fuzz_write_opt("tokenizer_config.json", parts >= 2, part[1], len[1]);
    fuzz_write_opt("vocab.txt", parts >= 3, part[2], len[2]);

    BertConfig cfg;
    HfLoadReport rep;
    if (fuzz_said("hf_read_config", hf_read_config(fuzz_dir(), &cfg, &rep) == DISTILL_OK)) {
        if (bert_config_validate(&cfg) == DISTILL_OK) (void)bert_config_param_count(&cfg);
        bert_config_free_labels(&cfg);
        HfLoadOptions opt = hf_load_defaults();
        opt.quiet = true;
        Bert *m = NULL;
        if (fuzz_said("hf_load", hf_load(fuzz_dir(), device_cpu(), &opt, &m, &rep) == DISTILL_OK))
            bert_free(m);
    }
    return 0;
}
