/*
 * make_seeds.c — writes the generated seeds of the fuzz corpora (tests/fuzz/corpus/<harness>/)
 * with the project's own writers, so every seed is a valid file of today's format:
 *   fuzz_safetensors/tiny.safetensors   hf_save's model.safetensors of a tiny random BERT
 *   fuzz_hf_config_json/tiny            its config.json, NUL, tokenizer_config.json, NUL, vocab.txt
 *   fuzz_h5_ckpt/tiny.h5                ckpt_save of that model (vocab, labels, config text)
 *   fuzz_h5_ckpt/tiny-moments.h5        the same with AdamW moments
 *   fuzz_h5_data/{cls,pair,regression}.h5   prepare_run on a few rows (classes; a text pair with a
 *                                       header; regression, no vocab labels)
 * Usage: make_seeds CORPUS_DIR (run by hand after a format change: `build-fuzz/tests/fuzz/make_seeds
 * tests/fuzz/corpus`; the seeds are committed). The tiny shape is the one fuzz_safetensors.c's
 * config.json declares and fuzz_hf_config_json.c exports; the regress-* inputs beside the seeds
 * are edited files that made a validator abort before its fix (see git log).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/hf.h"
#include "data/prepare.h"
#include "fuzz_util.h"

#define DIE(...) (fprintf(stderr, "make_seeds: " __VA_ARGS__), fprintf(stderr, ": %s\n", distill_error()), exit(1))

static const char VOCAB[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\na\nmovie\nfilm\nis\nwas\ngood\nbad\ngreat\nnot\n"
    "it\n'\ns\n,\n.\n!\nun\n##like\n##ly\n##s\nfun\n##ny\ncaf\n##e\n\xc3\xa9\n"; /* 30 tokens */

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) DIE("%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) DIE("read %s", path);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void put(const char *root, const char *harness, const char *name, const void *d, size_t n) {
    char path[1024];
    mkdir(root, 0755);
    snprintf(path, sizeof path, "%s/%s", root, harness);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, harness, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f)) DIE("write %s", path);
    printf("%s (%zu bytes)\n", path, n);
}

static void copy_in(const char *root, const char *harness, const char *name, const char *from) {
    size_t n;
    char *d = read_all(from, &n);
    put(root, harness, name, d, n);
    free(d);
}

static Bert *tiny_bert(void) {
    BertConfig cfg = bert_config_default();
    cfg.vocab_size = 30;
    cfg.hidden_size = 8;
    cfg.num_hidden_layers = 1;
    cfg.num_attention_heads = 2;
    cfg.intermediate_size = 12;
    cfg.max_position_embeddings = 16;
    cfg.num_labels = 2;
    cfg.id2label[0] = strdup("negative");
    cfg.id2label[1] = strdup("positive");
    snprintf(cfg.problem_type, sizeof cfg.problem_type, "single_label_classification");
    Bert *m = bert_build(&cfg, device_cpu());
    bert_config_free_labels(&cfg);
    bert_init(m, 7);
    return m;
}

static void prepared(const char *root, const char *vocab, const char *name, const char *rows,
                     const char *ext, bool regression, const char *labels) {
    char in[600], out[600], file[64];
    snprintf(file, sizeof file, "rows.%s", ext);
    fuzz_write(file, rows, strlen(rows), in, sizeof in);
    fuzz_path("prepared.h5", out, sizeof out);
    PrepareOptions o = prepare_default_options();
    o.vocab_path = vocab;
    o.input_path = in;
    o.output_path = out;
    o.max_seq = 12;
    o.regression = regression;
    o.labels = labels;
    o.progress = false;
    o.created_by = "make_seeds";
    PrepareStats stats;
    if (prepare_run(&o, &stats)) DIE("prepare %s", name);
    copy_in(root, "fuzz_h5_data", name, out);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    const char *root = argv[1];
    char vocab[600], dir[600], p[700];
    fuzz_write("vocab.txt", VOCAB, sizeof VOCAB - 1, vocab, sizeof vocab);

    /* Hugging Face folder of the tiny model. */
    Bert *m = tiny_bert();
    fuzz_path("hf", dir, sizeof dir);
    if (hf_save(dir, m, vocab)) DIE("hf_save");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    copy_in(root, "fuzz_safetensors", "tiny.safetensors", p);
    size_t n1, n2, n3;
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *cj = read_all(p, &n1);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    char *tc = read_all(p, &n2);
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    char *vt = read_all(p, &n3);
    size_t n = n1 + 1 + n2 + 1 + n3;
    char *all = malloc(n);
    memcpy(all, cj, n1);
    all[n1] = '\0';
    memcpy(all + n1 + 1, tc, n2);
    all[n1 + 1 + n2] = '\0';
    memcpy(all + n1 + 2 + n2, vt, n3);
    put(root, "fuzz_hf_config_json", "tiny", all, n);
    free(all), free(cj), free(tc), free(vt);

    /* Checkpoints: model only, then with projections and moments. */
    TrainCheckpoint ck;
    ckpt_init(&ck);
    ck.student = m;
    ck.step = 3;
    ck.optimizer_steps = 3;
    ck.samples_seen = 96;
    char *tokens[30];
    int nt = 0;
    char *vcopy = strdup(VOCAB);
    for (char *s = NULL, *t = strtok_r(vcopy, "\n", &s); t && nt < 30; t = strtok_r(NULL, "\n", &s))
        tokens[nt++] = t;
    ck.vocab = tokens;
    ck.n_vocab = nt;
    ck.do_lower_case = true;
    char *label_names[2] = {"negative", "positive"};
    ck.label_names = label_names;
    ck.n_label_names = 2;
    ck.config_yaml = "task: distill\n";
    fuzz_path("ckpt.h5", p, sizeof p);
    if (ckpt_save(p, &ck)) DIE("ckpt_save");
    copy_in(root, "fuzz_h5_ckpt", "tiny.h5", p);

    /* (projections too would pass the 64 KiB a seed may take: HDF5 spends ~1 KiB per dataset) */
    size_t ns = m->params->total;
    float *mom = calloc(2 * ns, sizeof(float));
    for (size_t i = 0; i < 2 * ns; i++) mom[i] = 1e-3f * (float)(i % 11);
    ck.m_student = mom;
    ck.v_student = mom + ns;
    if (ckpt_save(p, &ck)) DIE("ckpt_save with moments");
    copy_in(root, "fuzz_h5_ckpt", "tiny-moments.h5", p);
    free(mom);
    free(vcopy);
    bert_free(m);

    /* Prepared data. */
    prepared(root, vocab, "cls.h5",
             "sentence\tlabel\nthe movie was great !\t1\nnot fun\t0\nit 's a bad film .\t0\n"
             "caf\xc3\xa9 unlikely good\t1\n", "tsv", false, "0,1");
    prepared(root, vocab, "pair.h5",
             "sentence1,sentence2,label\n\"the film, it was\",good,yes\nbad,\"not \"\"fun\"\"\",no\n",
             "csv", false, "no,yes");
    prepared(root, vocab, "regression.h5",
             "{\"text\": \"a great movie\", \"label\": 4.5}\n{\"text\": \"bad\", \"label\": 0.25}\n",
             "jsonl", true, NULL);
    return 0;
}
