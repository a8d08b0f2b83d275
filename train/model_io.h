/*
 * model_io.h — opening a model for inference or export, whatever form it comes in: a Hugging Face
 * folder (config.json + model.safetensors + vocab.txt [+ tokenizer_config.json]) or a training
 * checkpoint (.h5, checkpoints/ckpt.h), together with the tokenizer it was trained with.
 *
 * Promises:
 * - The kind is detected from the path: a directory is a Hugging Face folder, a file that
 *   ckpt_is_checkpoint accepts is a checkpoint; anything else is an error that says what was
 *   expected and what was found.
 * - The tokenizer is the one `distill prepare` would use for the same model: a folder's vocab.txt
 *   with do_lower_case / strip_accents / tokenize_chinese_chars from its tokenizer_config.json
 *   (Hugging Face's BertTokenizer defaults, lower-casing on, when that file or a key is absent);
 *   a checkpoint's stored /vocab with its stored do_lower_case.
 * - A folder whose model.safetensors holds no classifier is opened as a BertModel (num_labels 0):
 *   no randomly initialised classifier is ever used for predictions. With a classifier but no
 *   pooler, hf_load's freshly initialised pooler is reported with a warning on stderr.
 * - Label names for each class: the model's id2label, else (checkpoints) the data's label names
 *   when their count matches — copied into the model's id2label too, so a folder exported from
 *   it names classes as predict does — else Hugging Face's "LABEL_i".
 * - On failure *out holds nothing (no leak) and distill_error() names the path and the problem.
 */
#ifndef DISTILL_TRAIN_MODEL_IO_H
#define DISTILL_TRAIN_MODEL_IO_H

#include "data/tokenizer.h"
#include "models/bert.h"

typedef enum { MODEL_HF = 1, MODEL_CHECKPOINT = 2 } ModelKind;

typedef struct LoadedModel {
    ModelKind kind;
    Bert *model;            /* on `device`; cfg.num_labels 0 = embeddings only */
    Tokenizer *tok;         /* NULL unless need_tokenizer */
    bool do_lower_case;
    char **labels;          /* (model->cfg.num_labels) display names, owned */
    char **vocab;           /* (n_vocab) tokens in id order (checkpoints); NULL for folders */
    int n_vocab;
    char vocab_path[4096];  /* folders: their vocab.txt; "" for checkpoints */
    Device device;
} LoadedModel;

typedef struct ModelOpenOptions {
    Device device;          /* where the model lives */
    bool quiet;             /* hide hf_load's notes and warnings (predict); export shows them */
    bool need_tokenizer;    /* build the tokenizer (tok), and fail when there is no vocabulary;
                               false: tok stays NULL (export, info) */
} ModelOpenOptions;

/* Opens `path` (see the promises above). */
Status model_open(const char *path, const ModelOpenOptions *opt, LoadedModel *out);
void model_close(LoadedModel *m);

/* Writes the model's vocabulary, one token per line in id order, to a new temporary file in
 * `dir` (e.g. $TMPDIR) and puts its name in path_out: for hf_save, which copies a vocab.txt. The
 * caller unlinks it. Folders return their own vocab.txt (nothing written; *temp false).
 * DISTILL_ERR when there is no vocabulary or the file cannot be written. */
Status model_vocab_file(const LoadedModel *m, const char *dir, char *path_out, size_t n,
                        bool *temp);


#endif
