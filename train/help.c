/*
 * help.c — every usage and help text of `distill`, and `distill --version`.
 *
 * One place for the texts, so the top-level usage and each command's --help cannot drift apart:
 * the top-level usage lists every command with all its current flags; each help_X prints the full
 * help of one command. Examples use the paths that `bash scripts/demo.sh` leaves behind:
 *   runs/demo/data/sst2/{train,dev,test}.h5   prepared SST-2 (vocabulary: bert-base-uncased)
 *   runs/demo/teacher/{best,final}/      the fine-tuned teacher (Hugging Face folders)
 *   runs/demo/tiny/{best,final}/         the distilled student; runs/demo/tiny/ckpt-400.h5 its
 *                                        last checkpoint (checkpoint_every 100, keep_last 2)
 *   ../shared/data/sst2/test.tsv         the raw text the test file was prepared from
 * Each help_X(f, rc) writes to f and returns rc, so callers can `return help_X(stderr, 2);`.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>
#include <utf8proc.h>
#include <yaml.h>

#include "../engine/backend.h"
#include "cli.h"
#include "distill_version.h" /* generated at build time: train/version.cmake */

/* OpenBLAS's own description ("OpenBLAS 0.3.21 DYNAMIC_ARCH ... MAX_THREADS=64"); declared here
 * so help.c does not need OpenBLAS's cblas.h (the engine links the library). */
extern char *openblas_get_config(void);

#ifndef DISTILL_SOURCE_DIR
#define DISTILL_SOURCE_DIR "."
#endif

int help_usage(FILE *f, int rc) {
    fputs("usage: distill COMMAND [options]        `distill help COMMAND` for one command's options\n"
          "\n"
          "  distill --config FILE [--set KEY=VALUE ...] [--resume auto|none|PATH]\n"
          "                      train: fine-tune or distil (also `distill train --config FILE ...`)\n"
          "  distill prepare --vocab vocab.txt --input FILE --output FILE.h5 [--max-seq N]\n"
          "                  [--format tsv|csv|jsonl] [--text COL] [--text-pair COL]\n"
          "                  [--label COL | --no-label] [--labels a,b,c] [--regression]\n"
          "                  [--no-lower-case] [--skip-bad-rows]\n"
          "  distill eval --model DIR|CKPT.h5 --data FILE.h5 [--max-seq N] [--allow-vocab-mismatch]\n"
          "               [--batch-size N] [--latency-rows N] [--no-latency] [--threads N]\n"
          "               [--device cpu|cuda|auto] [--json]\n"
          "  distill eval --random L,H,A,I --data FILE.h5 [same options]   latency of a random model\n"
          "  distill export (--checkpoint CKPT.h5 | --model DIR) [--hf OUT_DIR]\n"
          "                 [--onnx FILE [--fp16] [--opset N]] [--device D]\n"
          "  distill predict --model DIR|CKPT.h5 (--text T [--text-pair T2] | --input FILE\n"
          "                  [--format tsv|csv|jsonl] [--text COL] [--text-pair COL])\n"
          "                  [--output logits|probs|label|embedding] [--pooling cls|mean] [--normalize]\n"
          "                  [--out FILE] [--batch-size N] [--max-seq N] [--threads N] [--device D]\n"
          "  distill cache --teacher DIR|CKPT.h5 --data FILE.h5 [--batch-size N] [--precision fp32|bf16]\n"
          "                [--threads N] [--device cpu|cuda|auto]\n"
          "  distill info PATH [--tensors]\n"
          "  distill bench --config FILE [--set KEY=VALUE ...] [--steps N] [--seq S] [--from-data] [--json]\n"
          "  distill help [COMMAND]\n"
          "  distill --version\n"
          "\n"
          "After `bash scripts/demo.sh`, for example:\n"
          "  distill eval --model runs/demo/tiny/best --data runs/demo/data/sst2/test.h5\n"
          "  distill predict --model runs/demo/tiny/best --text 'A gripping, funny film.'\n",
          f);
    return rc;
}

int help_train(FILE *f, int rc) {
    fputs("usage: distill --config FILE [--set KEY=VALUE ...] [--resume auto|none|PATH]\n"
          "       distill train --config FILE [...]          (the same)\n"
          "\n"
          "Trains as the config says: `task: distill` runs a teacher and trains a student on the mix\n"
          "of losses the config lists; `task: finetune` trains one model on the labels.\n"
          "\n"
          "  --config FILE       the run's YAML config. Shipped configs: configs/ in the source tree\n"
          "                      (" DISTILL_SOURCE_DIR "/configs):\n"
          "                        configs/finetune-teacher.yaml   fine-tune all-MiniLM-L6-v2 on SST-2\n"
          "                        configs/tiny.yaml               distil it into a TinyBERT-4 student\n"
          "                      every key, its type, default and meaning: configs/README.md\n"
          "  --set KEY=VALUE     override one key by its dotted path, after the file, in order;\n"
          "                      repeatable: --set optimizer.lr=3e-4 --set losses[1].weight=2\n"
          "                      --set data.dev= (nothing after '=') restores the default\n"
          "  --resume MODE       auto: continue from the newest complete checkpoint in run.dir\n"
          "                            (run.dir/ckpt-STEP.h5), or start fresh when there is none;\n"
          "                      none: start fresh (the default);\n"
          "                      PATH: continue from that checkpoint. Resuming restores the model,\n"
          "                            the optimizer moments, the step, the RNG and the data position,\n"
          "                            and says which checkpoint and step it continued from.\n"
          "                      (the same as --set resume=MODE)\n"
          "\n"
          "The run directory (run.dir, default runs/<run.name>) must be new or empty, unless\n"
          "resuming or `--set run.overwrite=true`, which lets a fresh run write into a non-empty\n"
          "folder (its old checkpoints and metrics.jsonl are replaced as the new run writes them).\n"
          "A run writes there: config.yaml (resolved), vocab.txt, metrics.jsonl, ckpt-STEP.h5, and\n"
          "the student as Hugging Face folders best/ (best dev metric) and final/.\n"
          "\n"
          "Examples (from the source tree, after `bash scripts/demo.sh` has prepared the data):\n"
          "  distill --config configs/tiny.yaml --set run.dir=runs/tiny2 \\\n"
          "          --set teacher.path=runs/demo/teacher/best --set train.max_steps=50\n"
          "  distill --config configs/tiny.yaml --set run.dir=runs/tiny2 --resume auto\n",
          f);
    return rc;
}

int help_prepare(FILE *f, int rc) {
    fputs("usage: distill prepare --vocab vocab.txt --input FILE --output FILE.h5 [options]\n"
          "\n"
          "Tokenises a text file into a prepared HDF5 file for training, eval and info.\n"
          "\n"
          "  --max-seq N           tokens per row, [CLS] and [SEP] included (default 128); longer rows\n"
          "                        are truncated (longest segment first) and counted\n"
          "  --format F            tsv, csv or jsonl (default: from the input's extension)\n"
          "  --text COL            text column: a header name or a 0-based index (JSONL: a key)\n"
          "  --text-pair COL       second text of a pair (optional)\n"
          "  --label COL           label column (default: 'label', or the last column)\n"
          "  --no-label            unlabelled text (no /labels)\n"
          "  --labels a,b,c        label names, mapped to 0, 1, 2 in this order\n"
          "  --regression          labels are numbers (float32 /labels)\n"
          "  --no-lower-case       keep case and accents (a cased vocabulary)\n"
          "  --skip-bad-rows       report and skip bad rows instead of stopping\n"
          "\n"
          "Example (what scripts/demo.sh runs):\n"
          "  distill prepare --vocab ../shared/data/vocab/bert-base-uncased-vocab.txt \\\n"
          "                  --input ../shared/data/sst2/test.tsv --output runs/demo/data/sst2/test.h5 \\\n"
          "                  --max-seq 128 --labels 0,1\n",
          f);
    return rc;
}

int help_cache(FILE *f, int rc) {
    fputs("usage: distill cache --teacher DIR|CKPT.h5 --data FILE.h5 [options]\n"
          "\n"
          "Runs the teacher once over every row of a prepared file and stores its logits in the file\n"
          "(/teacher_logits, with the teacher's SHA-256, the precision, the vocabulary hash and max_seq).\n"
          "A distillation run on that file whose losses need only the teacher's logits (logits_kd,\n"
          "logits_ce, with hard_ce) then takes them from the file and never runs the teacher; a cache\n"
          "of another teacher, vocabulary, max_seq or precision is refused (see teacher.cache in\n"
          "configs/README.md). The file is replaced atomically; caching again replaces the cache.\n"
          "\n"
          "  --teacher PATH        the run's teacher: a Hugging Face folder or a training checkpoint\n"
          "  --data FILE.h5        a prepared file (distill prepare), usually data.train\n"
          "  --batch-size N        rows per teacher forward (default 32)\n"
          "  --precision P         fp32 (default) or bf16: must be the run's teacher.precision\n"
          "  --threads N           CPU threads (default: all cores)\n"
          "  --device D            cpu (default), cuda or auto\n"
          "\n"
          "Example (after scripts/demo.sh):\n"
          "  distill cache --teacher runs/demo/teacher/best --data runs/demo/data/sst2/train.h5\n",
          f);
    return rc;
}

int help_eval(FILE *f, int rc) {
    fputs("usage: distill eval (--model DIR|CKPT.h5 | --random L,H,A,I) --data FILE.h5 [options]\n"
          "\n"
          "Accuracy, F1 and MCC (regression: MSE, Pearson, Spearman) of a model on a prepared file,\n"
          "and its latency per sample at batch 1 and batch 32.\n"
          "\n"
          "  --model PATH        a Hugging Face folder or a training checkpoint\n"
          "  --random L,H,A,I    a random model of that shape (layers, hidden, heads, FFN): latency only\n"
          "  --data FILE.h5      a prepared file with labels (distill prepare)\n"
          "  --max-seq N         cut rows longer than N tokens (longest segment first, [SEP] kept) and\n"
          "                      say how many were cut; needed when the file's rows are longer than the\n"
          "                      model's position table (max_position_embeddings)\n"
          "  --allow-vocab-mismatch\n"
          "                      evaluate even when the file was prepared with another vocabulary\n"
          "                      than the model's (refused by default: the ids would mean other words)\n"
          "  --batch-size N      evaluation batch (default 32)\n"
          "  --latency-rows N    rows timed at batch 1 (default 64; batch 32 times 4 batches)\n"
          "  --no-latency        skip the latency measurement\n"
          "  --threads N         CPU threads (default: all cores)\n"
          "  --device D          cpu | cuda | auto (default cpu)\n"
          "  --json              one JSON object on stdout instead of the text report\n"
          "\n"
          "Checked before anything runs: the file has labels and the model a classifier (else no\n"
          "metric can be computed: exit 1), the vocabulary hashes agree, every row fits the position\n"
          "table. The report says how many rows `distill prepare` truncated.\n"
          "\n"
          "Examples (after `bash scripts/demo.sh`):\n"
          "  distill eval --model runs/demo/tiny/best --data runs/demo/data/sst2/test.h5\n"
          "  distill eval --model runs/demo/tiny/ckpt-400.h5 --data runs/demo/data/sst2/test.h5 --no-latency\n"
          "  distill eval --random 12,768,12,3072 --data runs/demo/data/sst2/test.h5 --latency-rows 16\n",
          f);
    return rc;
}

int help_export(FILE *f, int rc) {
    fputs("usage: distill export (--checkpoint CKPT.h5 | --model DIR) [--hf OUT_DIR]\n"
          "                      [--onnx FILE [--fp16] [--opset N]] [--device DEV]\n"
          "\n"
          "Exports the student model for deployment.\n"
          "\n"
          "Source (one of):\n"
          "  --checkpoint CKPT   a training checkpoint (.h5); only the student is exported (distillation\n"
          "                      projections and optimizer state are dropped), with the vocabulary\n"
          "                      stored in the checkpoint\n"
          "  --model DIR         a Hugging Face folder, re-exported (config.json normalised, only the\n"
          "                      model's own tensors kept)\n"
          "\n"
          "Targets:\n"
          "  --hf OUT_DIR        a Hugging Face folder: config.json, model.safetensors (F32),\n"
          "                      vocab.txt, tokenizer_config.json, special_tokens_map.json; loads with\n"
          "                      transformers' BertForSequenceClassification (BertModel without a\n"
          "                      classifier). Written to a temporary folder and renamed into place; an\n"
          "                      existing OUT_DIR is replaced only if it holds nothing but such files.\n"
          "  --onnx FILE         an ONNX model: inputs input_ids, attention_mask, token_type_ids\n"
          "                      (int64 [batch, sequence]), output logits (last_hidden_state and\n"
          "                      pooler_output without a classifier); standard operators, opset 17;\n"
          "                      written to a temporary file and renamed into place\n"
          "  --fp16              ONNX in float16 (weights and compute; logits stay float32)\n"
          "  --opset N           ONNX opset 14-17 (default 17; below 17 LayerNorm is spelled out)\n"
          "\n"
          "  --device DEV        where to load the model: cpu (default), cuda or cuda:N\n"
          "\n"
          "Examples (after `bash scripts/demo.sh`):\n"
          "  distill export --checkpoint runs/demo/tiny/ckpt-400.h5 --hf runs/demo/tiny/export --onnx runs/demo/tiny/student.onnx\n"
          "  distill export --model runs/demo/tiny/best --onnx runs/demo/tiny/best.onnx\n",
          f);
    return rc;
}

int help_predict(FILE *f, int rc) {
    fputs("usage: distill predict --model DIR|CKPT.h5 (--text T [--text-pair T2] | --input FILE)\n"
          "                       [options]\n"
          "\n"
          "Runs a model on text and writes one JSON object per input row (JSONL), in input order.\n"
          "\n"
          "The model:\n"
          "  --model PATH        a Hugging Face folder (config.json, model.safetensors, vocab.txt,\n"
          "                      tokenizer_config.json) or a training checkpoint (.h5); the text is\n"
          "                      tokenised as `distill prepare` does for it (the folder's vocab.txt and\n"
          "                      do_lower_case, or the vocabulary stored in the checkpoint)\n"
          "  --device DEV        cpu (default), cuda or cuda:N\n"
          "  --threads N         CPU threads (default: all cores)\n"
          "\n"
          "The text, either inline:\n"
          "  --text T            one sentence\n"
          "  --text-pair T2      and its second segment ([CLS] T [SEP] T2 [SEP])\n"
          "or from a file:\n"
          "  --input FILE        TSV (with or without a header), CSV (RFC 4180) or JSONL\n"
          "  --format F          tsv|csv|jsonl (default: from the extension)\n"
          "  --text COL          the text column, by name or 0-based index (default: sentence, text or\n"
          "                      sentence1 with a header, else column 0; JSONL: \"sentence\" or \"text\")\n"
          "  --text-pair COL     the second-segment column (default: sentence2 when the text column is\n"
          "                      sentence1, else none)\n"
          "\n"
          "What to write:\n"
          "  --output KIND       logits      {\"logits\":[...]}\n"
          "                      probs       {\"probs\":[...]}  softmax of the logits (sigmoid for\n"
          "                                  multi_label_classification)\n"
          "                      label       {\"label\":\"positive\",\"id\":1,\"score\":0.97}  the argmax\n"
          "                                  class, named by the model's id2label, and its probability\n"
          "                      embedding   {\"embedding\":[...]}  the sentence vector\n"
          "                      (default: label with a classifier, embedding without one; a model with\n"
          "                      no classifier supports only embedding; a regression model only logits)\n"
          "  --pooling P         embedding: cls (last hidden state at [CLS]) or mean (default: the mean\n"
          "                      over the attention mask, as sentence-transformers)\n"
          "  --normalize         embedding: divide by its L2 norm\n"
          "  --out FILE          write here instead of standard output (atomically: complete or not at\n"
          "                      all)\n"
          "\n"
          "Batching:\n"
          "  --batch-size N      rows per forward pass (default 32)\n"
          "  --max-seq N         tokens per row, [CLS] and [SEP] included; longer rows are truncated,\n"
          "                      longest segment first, and counted on stderr (default 128, at most\n"
          "                      the model's max_position_embeddings: a larger N is an error)\n"
          "\n"
          "Examples (after `bash scripts/demo.sh`):\n"
          "  distill predict --model runs/demo/tiny/best --input ../shared/data/sst2/test.tsv --output label\n"
          "  distill predict --model runs/demo/teacher/best --text 'A man plays guitar.' \\\n"
          "                  --output embedding --pooling mean --normalize\n",
          f);
    return rc;
}

int help_info(FILE *f, int rc) {
    fputs("usage: distill info PATH [--tensors]\n"
          "\n"
          "Describes PATH, whose kind is detected:\n"
          "  a Hugging Face model folder  config summary, exact parameter counts, the tensors of\n"
          "                               model.safetensors, vocabulary and tokenizer settings, and\n"
          "                               whether it loads\n"
          "  a training checkpoint (.h5)  step, epoch, best metric, student config, exact parameter\n"
          "                               counts, projections, optimizer moments, vocabulary, hash check\n"
          "  a prepared data file (.h5)   rows, max_seq, lengths, labels, vocabulary (distill prepare)\n"
          "\n"
          "  --tensors    folders: list every tensor of model.safetensors (name, dtype, shape)\n"
          "\n"
          "Exits 0 when PATH is complete and valid, 1 otherwise (after printing what could be read).\n"
          "\n"
          "Examples (after `bash scripts/demo.sh`):\n"
          "  distill info runs/demo/tiny/best\n"
          "  distill info runs/demo/tiny/ckpt-400.h5\n"
          "  distill info runs/demo/data/sst2/test.h5\n",
          f);
    return rc;
}

int help_command(const char *name, FILE *f) {
    static const struct {
        const char *name;
        int (*fn)(FILE *, int);
    } texts[] = {{"train", help_train},     {"prepare", help_prepare}, {"eval", help_eval},
                 {"export", help_export},   {"predict", help_predict}, {"info", help_info},
                 {"cache", help_cache},
                 {"help", help_usage},      {NULL, NULL}};
    if (!name) return help_usage(f, 0);
    for (int i = 0; texts[i].name; i++)
        if (!strcmp(name, texts[i].name)) return texts[i].fn(f, 0);
    if (!strcmp(name, "bench")) { /* bench keeps its text beside its parser (cmd_bench.c) */
        char *argv[] = {"bench", "--help", NULL};
        return cmd_bench(2, argv);
    }
    fprintf(stderr, "distill: error: help: unknown command '%s' (commands: train, prepare, eval, "
                    "export, predict, info, bench, cache)\n", name);
    return 2;
}

int help_version(FILE *f) {
    fprintf(f, "distill %s (git %s)\n", DISTILL_VERSION, DISTILL_GIT_COMMIT);
    /* backends: what was compiled in, and what this machine has */
    fprintf(f, "backends:  cpu (%d threads)", backend_cpu_threads());
    const Backend *cuda = backend_cuda();
    if (cuda) {
        int n = cuda->device_count();
        fprintf(f, ", cuda (compiled in; %d device%s%s%s)", n, n == 1 ? "" : "s", n > 0 ? ": " : "",
                n > 0 ? cuda->device_name(0) : "");
    } else {
        fprintf(f, ", cuda (not compiled in)");
    }
    fprintf(f, "\n");
    {
        char why[256];
        bool bf16 = backend_bf16_supported(device_cpu(), why, sizeof why);
        fprintf(f, "GEMMs:     cpu: %s; bf16 %s%s\n", backend_gemm_library(device_cpu()), bf16 ? "available" : "not available: ",
                bf16 ? "" : why);
    }
    fprintf(f, "optional:  cuDNN %s, NCCL %s, MPI %s\n",
#ifdef DISTILL_BUILT_CUDNN
            "linked (unused)",
#else
            "no",
#endif
#ifdef DISTILL_BUILT_NCCL
            "yes",
#else
            "no",
#endif
#ifdef DISTILL_BUILT_MPI
            "yes"
#else
            "no"
#endif
    );
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    fprintf(f, "libraries: %s%s\n", openblas_get_config(),
#ifdef DISTILL_BUILT_OPENBLAS_OPENMP
            " (OpenMP build)"
#else
            ""
#endif
    );
    fprintf(f, "           HDF5 %u.%u.%u, libyaml %s, cJSON %s, utf8proc %s, protobuf-c %s,\n", maj, min,
            rel, yaml_get_version_string(), cJSON_Version(), utf8proc_version(), protobuf_c_version());
#ifdef _OPENMP
    fprintf(f, "           %s, OpenMP %d\n", OpenSSL_version(OPENSSL_VERSION), _OPENMP);
#else
    fprintf(f, "           %s\n", OpenSSL_version(OPENSSL_VERSION));
#endif
    return 0;
}

