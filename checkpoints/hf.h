/*
 * hf.h — Hugging Face model folders in and out: `config.json` + `model.safetensors` + `vocab.txt`.
 *
 * Import (hf_load) promises what `BertForSequenceClassification.from_pretrained(dir)` does:
 *   - config.json is read with HF's field names and defaults; num_labels comes from id2label when
 *     present, else from "num_labels", else 2; settings distill does not implement (hidden_act other
 *     than "gelu", relative position embeddings, decoders, a model_type other than "bert") are errors;
 *   - tensor names are accepted with or without the "bert." prefix (BertModel checkpoints such as
 *     sentence-transformers' have none), and TF-era LayerNorm names (gamma/beta) as HF renames
 *     them; F32, F16 and BF16 tensors load (converted to f32 exactly);
 *   - a missing pooler or classifier is freshly initialised and reported as HF reports newly
 *     initialized weights (a warning that lists them); HF's known extra heads (cls.predictions.*,
 *     cls.seq_relationship.*), the embeddings.position_ids buffer and layers beyond options.num_layers
 *     are skipped with a note; any other missing, unexpected or mis-shaped tensor is an error naming
 *     it and the shapes, before any data is read;
 *   - vocab.txt, when present, is counted and must not hold more tokens than vocab_size.
 * Warnings and notes go to stderr as "distill: warning: ..." / "distill: note: ..." unless quiet;
 * they are also summarised in the HfLoadReport.
 *
 * Export (hf_save) writes a folder that `transformers` loads unchanged as
 * BertForSequenceClassification (BertModel when the model has no classifier): config.json (every
 * BertConfig field under HF's name, id2label/label2id, problem_type, torch_dtype float32),
 * model.safetensors (F32, HF names and shapes, metadata format=pt), vocab.txt (copied),
 * tokenizer_config.json and special_tokens_map.json. Everything is written into a temporary folder
 * beside `dir`, fsynced and renamed into place: an error leaves nothing half-written. An existing
 * `dir` is replaced only if it holds nothing but the files an export writes.
 */
#ifndef DISTILL_HF_H
#define DISTILL_HF_H

#include "../models/bert.h"

typedef struct HfLoadOptions {
    int num_labels;  /* classifier outputs: -1 = from config.json; 0 = no classifier; >0 = this many
                        (must match a classifier the checkpoint holds; a new one is initialised) */
    int num_layers;  /* keep the first k encoder layers (student from a teacher); 0 = all */
    uint64_t seed;   /* for newly initialised pooler / classifier */
    bool quiet;      /* do not print warnings and notes */
} HfLoadOptions;

/* num_labels -1, num_layers 0, seed 42, quiet false. */
HfLoadOptions hf_load_defaults(void);

typedef struct HfLoadReport {
    char architecture[64];  /* config.json architectures[0], "" when absent */
    bool prefixed;          /* checkpoint names carried "bert." */
    bool new_pooler;        /* pooler was not in the checkpoint: freshly initialised */
    bool new_classifier;    /* classifier was not in the checkpoint: freshly initialised */
    int n_loaded;           /* tensors read from the checkpoint */
    int n_skipped;          /* checkpoint tensors not used (known heads, buffers, dropped layers) */
    int vocab_tokens;       /* lines of vocab.txt; -1 when the folder has none */
    int do_lower_case;      /* tokenizer_config.json: 1 / 0; -1 when unknown */
    char vocab_path[4096];  /* dir/vocab.txt, "" when absent */
} HfLoadReport;

/* Reads dir/config.json into *cfg (HF defaults for absent fields; has_pooler true). report may be
 * NULL; when given, architecture, vocab_tokens, do_lower_case and vocab_path are filled. On success
 * the caller owns cfg's labels (bert_config_free_labels). */
Status hf_read_config(const char *dir, BertConfig *cfg, HfLoadReport *report);

/* Builds a Bert on `device` from the folder. opt and report may be NULL (defaults / not wanted). */
Status hf_load(const char *dir, Device device, const HfLoadOptions *opt, Bert **out,
               HfLoadReport *report);

/* Writes the model as a Hugging Face folder at dir (see above). vocab_path is copied as vocab.txt;
 * NULL writes no tokenizer files. do_lower_case in tokenizer_config.json is true unless the
 * vocabulary holds upper-case ASCII letters outside [SPECIAL] tokens (a cased vocabulary). */
Status hf_save(const char *dir, const Bert *model, const char *vocab_path);

#endif
