/*
 * model_io.c — opening a Hugging Face folder or a training checkpoint for inference and export,
 * with its tokenizer (promises in model_io.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "model_io.h"

#include "checkpoints/ckpt.h"
#include "checkpoints/hf.h"
#include "checkpoints/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The display name of each class into m->labels (names from the data also go into the model's
 * id2label). */
static void fill_labels(LoadedModel *m, char **data_names, int n_data) {
    const BertConfig *c = &m->model->cfg;
    int n = c->num_labels;
    if (n <= 0) return;
    m->labels = xcalloc((size_t)n, sizeof *m->labels);
    bool use_data = data_names && n_data == n;
    for (int i = 0; i < n; i++) {
        if (i < BERT_MAX_LABELS && c->id2label[i]) {
            m->labels[i] = xstrdup(c->id2label[i]);
        } else if (use_data) {
            m->labels[i] = xstrdup(data_names[i]);
            /* The model carries the name too, so an export says what predict says. */
            if (i < BERT_MAX_LABELS) m->model->cfg.id2label[i] = xstrdup(data_names[i]);
        } else {
            char buf[32];
            snprintf(buf, sizeof buf, "LABEL_%d", i);
            m->labels[i] = xstrdup(buf);
        }
    }
}

/* tokenizer_config.json options; absent file or keys keep BertTokenizer's defaults. */
static Status read_tokenizer_config(const char *dir, TokenizerOptions *o) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    *o = tokenizer_default_options();
    FILE *f = fopen(path, "rb");
    if (!f) return DISTILL_OK;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xmalloc((size_t)(len > 0 ? len : 0) + 1);
    size_t got = fread(text, 1, (size_t)(len > 0 ? len : 0), f);
    fclose(f);
    text[got] = '\0';
    cJSON *root = cJSON_ParseWithLength(text, got);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        distill_set_error("%s: expected a JSON object, found %s", path,
                          root ? "another JSON value" : "invalid JSON");
        cJSON_Delete(root);
        return DISTILL_ERR;
    }
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(root, "do_lower_case");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(root, "strip_accents");
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(root, "tokenize_chinese_chars");
    if (cJSON_IsBool(lc)) o->do_lower_case = cJSON_IsTrue(lc);
    if (cJSON_IsBool(sa)) o->strip_accents = cJSON_IsTrue(sa) ? 1 : 0;
    if (cJSON_IsBool(cc)) o->tokenize_chinese_chars = cJSON_IsTrue(cc);
    cJSON_Delete(root);
    return DISTILL_OK;
}

static Status open_folder(const char *dir, const ModelOpenOptions *opt, LoadedModel *out) {
    HfLoadOptions lo = hf_load_defaults();
    lo.quiet = opt->quiet;
    /* Only a classifier the checkpoint holds is used: without one, open as BertModel. */
    char st_path[4200];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    if (is_file(st_path)) {
        StFile *sf;
        if (st_open(st_path, &sf)) return DISTILL_ERR;
        bool has_cls = st_find(sf, "classifier.weight") || st_find(sf, "bert.classifier.weight");
        st_close(sf);
        if (!has_cls) lo.num_labels = 0;
    }
    HfLoadReport rep;
    if (hf_load(dir, opt->device, &lo, &out->model, &rep)) return DISTILL_ERR;
    if (rep.new_pooler && out->model->cfg.num_labels > 0)
        fprintf(stderr, "distill: warning: %s: the checkpoint has a classifier but no pooler; the "
                "pooler is freshly initialised, so logits are not the trained model's\n", dir);
    TokenizerOptions to;
    if (read_tokenizer_config(dir, &to)) return DISTILL_ERR;
    out->do_lower_case = to.do_lower_case;
    if (rep.vocab_path[0]) {
        snprintf(out->vocab_path, sizeof out->vocab_path, "%s", rep.vocab_path);
        if (opt->need_tokenizer && tokenizer_load(&out->tok, rep.vocab_path, &to))
            return DISTILL_ERR;
    } else if (opt->need_tokenizer) {
        distill_set_error("%s/vocab.txt: no such file: the model folder needs the WordPiece "
                          "vocabulary (a folder with only tokenizer.json is not supported)", dir);
        return DISTILL_ERR;
    }
    fill_labels(out, NULL, 0);
    return DISTILL_OK;
}

static Status open_checkpoint(const char *path, const ModelOpenOptions *opt, LoadedModel *out) {
    TrainCheckpoint ck;
    if (ckpt_load_model_only(path, opt->device, &ck)) return DISTILL_ERR;
    out->model = ck.student;
    ck.student = NULL;
    out->vocab = ck.vocab;
    out->n_vocab = ck.n_vocab;
    ck.vocab = NULL;
    ck.n_vocab = 0;
    out->do_lower_case = ck.do_lower_case;
    fill_labels(out, ck.label_names, ck.n_label_names);
    ckpt_free(&ck);
    if (out->n_vocab > out->model->cfg.vocab_size) {
        distill_set_error("%s: /vocab holds %d tokens but the student's vocab_size is %d", path,
                          out->n_vocab, out->model->cfg.vocab_size);
        return DISTILL_ERR;
    }
    if (out->n_vocab > 0 && opt->need_tokenizer) {
        TokenizerOptions to = tokenizer_default_options();
        to.do_lower_case = out->do_lower_case;
        if (tokenizer_from_tokens(&out->tok, (const char *const *)out->vocab, out->n_vocab, &to)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", distill_error());
            distill_set_error("%s: /vocab: %s", path, msg);
            return DISTILL_ERR;
        }
    } else if (opt->need_tokenizer) {
        distill_set_error("%s: expected a /vocab dataset (the training vocabulary), found none",
                          path);
        return DISTILL_ERR;
    }
    return DISTILL_OK;
}

Status model_open(const char *path, const ModelOpenOptions *opt, LoadedModel *out) {
    memset(out, 0, sizeof *out);
    out->device = opt->device;
    Status s;
    if (is_dir(path)) {
        out->kind = MODEL_HF;
        s = open_folder(path, opt, out);
    } else if (is_file(path) && ckpt_is_checkpoint(path)) {
        out->kind = MODEL_CHECKPOINT;
        s = open_checkpoint(path, opt, out);
    } else if (!is_file(path)) {
        struct stat st;
        int e = stat(path, &st) == 0 ? 0 : errno;
        distill_set_error("%s: expected a Hugging Face model folder or a training checkpoint "
                          "(.h5), found %s", path,
                          e == ENOENT ? "nothing at that path" : e ? strerror(e) : "something else");
        s = DISTILL_ERR;
    } else {
        distill_set_error("%s: expected a Hugging Face model folder or a training checkpoint "
                          "(.h5), found a file that is not a distill checkpoint", path);
        s = DISTILL_ERR;
    }
    if (s != DISTILL_OK) model_close(out);
    return s;
}

void model_close(LoadedModel *m) {
    if (m->model) {
        for (int i = 0; m->labels && i < m->model->cfg.num_labels; i++) free(m->labels[i]);
        bert_free(m->model);
    }
    free(m->labels);
    for (int i = 0; i < m->n_vocab; i++) free(m->vocab[i]);
    free(m->vocab);
    tokenizer_free(m->tok);
    memset(m, 0, sizeof *m);
}

Status model_vocab_file(const LoadedModel *m, const char *dir, char *path_out, size_t n,
                        bool *temp) {
    *temp = false;
    if (m->vocab_path[0]) {
        snprintf(path_out, n, "%s", m->vocab_path);
        return DISTILL_OK;
    }
    if (m->n_vocab == 0) {
        distill_set_error("the model has no vocabulary to export");
        return DISTILL_ERR;
    }
    if ((size_t)snprintf(path_out, n, "%s/distill-vocab-XXXXXX", dir) >= n) {
        distill_set_error("%s: path too long", dir);
        return DISTILL_ERR;
    }
    int fd = mkstemp(path_out);
    if (fd < 0) {
        distill_set_error("%s: cannot create a temporary vocabulary file: %s", path_out,
                          strerror(errno));
        return DISTILL_ERR;
    }
    FILE *f = fdopen(fd, "w");
    bool ok = f != NULL;
    for (int i = 0; ok && i < m->n_vocab; i++)
        ok = fputs(m->vocab[i], f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = false;
    if (!f) close(fd);
    if (!ok) {
        distill_set_error("%s: cannot write the temporary vocabulary file: %s", path_out,
                          strerror(errno));
        unlink(path_out);
        return DISTILL_ERR;
    }
    *temp = true;
    return DISTILL_OK;
}

