/*
 * config.h — the run configuration of DESIGN §6: one YAML file (parsed with libyaml), overridden
 * from the command line (`--set key.sub=value`), validated, and printed back fully resolved.
 * Every key, its type, default and meaning is documented in configs/README.md.
 *
 * Promises:
 * - Every field of Config is typed and holds a value after a successful load: the user's, or the
 *   documented default, or CONFIG_AUTO where the value comes from a model or data file the trainer
 *   reads later ("from the checkpoint", "from the data").
 * - Every rejection sets one message through distill_set_error, of the form
 *     FILE:LINE:COLUMN: KEY: expected ..., found ...
 *   (or `--set KEY=VALUE: KEY: expected ..., found ...` when an override is at fault), where KEY is
 *   the dotted path (`optimizer.lr`, `losses[2].temperature.over`). Unknown keys get the closest
 *   known key as a suggestion.
 * - Loading reads the config file and stats the paths it names; it never creates, writes or
 *   removes anything.
 * - config_write_yaml prints every key (defaults included) so that loading its output gives the
 *   same Config again.
 *
 * Conventions in the file: layer numbers count encoder layers from 1 (layer N is Hugging Face's
 * `encoder.layer.{N-1}`) and 0 is the embedding output; relative paths are relative to the
 * current directory; YAML null (`~`, `null`, or nothing) for any key means "the default".
 *
 * Checks split in three, by what they need:
 *   config_parse        the YAML alone: syntax, keys, types, ranges, combinations;
 *   config_check_paths  the file system: data.train (and dev/test) exist, teacher.path and a
 *                       student init path exist, a resume path exists, the run dir is new or
 *                       empty unless resuming or run.overwrite;
 *   config_check_models the facts the trainer knows after reading the models' configs and the
 *                       data files' attributes: vocab sizes, max positions, head counts, widths,
 *                       layer counts, labels, world size, the resolved device.
 * config_load = config_parse + config_check_paths; `distill bench` may use config_parse alone.
 */
#ifndef DISTILL_CONFIG_H
#define DISTILL_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "../engine/common.h"
#include "../losses/losses.h"

/* "Not set here: take it from the checkpoint, the teacher or the data" (ints and doubles). */
#define CONFIG_AUTO (-1)

typedef enum { CONFIG_TASK_DISTILL = 0, CONFIG_TASK_FINETUNE } ConfigTask;
typedef enum { CONFIG_DEVICE_CPU = 0, CONFIG_DEVICE_CUDA, CONFIG_DEVICE_AUTO } ConfigDevice;
typedef enum { CONFIG_PRECISION_FP32 = 0, CONFIG_PRECISION_BF16 } ConfigPrecision;
/* teacher.cache: whether a run takes the teacher's logits from the train file's /teacher_logits
 * (written by `distill cache`) instead of running the teacher. AUTO: when every loss needs only
 * the logits and the file has a cache (a cache of another teacher, vocabulary, max_seq or
 * precision is an error); OFF: always the live teacher; REQUIRED: the cache, or an error. */
typedef enum { CONFIG_CACHE_AUTO = 0, CONFIG_CACHE_OFF, CONFIG_CACHE_REQUIRED } ConfigTeacherCache;

/* How a model's weights start. NONE only for an absent teacher (task finetune). */
typedef enum {
    CONFIG_INIT_NONE = 0,
    CONFIG_INIT_RANDOM,         /* Hugging Face's initialisation of the configured shape */
    CONFIG_INIT_PATH,           /* a Hugging Face folder or a training checkpoint */
    CONFIG_INIT_TEACHER_LAYERS, /* student only: the teacher's embeddings + the listed layers */
} ConfigInit;

typedef struct ConfigModel {
    ConfigInit init;
    char *path;             /* init PATH: the folder or checkpoint; NULL otherwise */
    int n_init_layers;      /* init TEACHER_LAYERS: how many teacher layers are copied */
    int *init_layers;       /* (n_init_layers) teacher layer numbers, 1-based, in student order */
    /* Shape. With init RANDOM every one is resolved (BERT-base defaults, intermediate = 4*hidden)
     * except vocab_size and num_labels, which may stay CONFIG_AUTO (= from the data). With init
     * PATH or TEACHER_LAYERS, CONFIG_AUTO means "from the checkpoint / the teacher"; an explicit
     * value must agree with it (checked by config_check_models). */
    int layers;             /* encoder layers */
    int hidden;             /* hidden width H; a multiple of heads */
    int heads;              /* attention heads */
    int intermediate;       /* FFN width */
    int max_position;       /* position embeddings */
    int vocab_size;
    int type_vocab_size;
    int num_labels;         /* classifier outputs: 0 none, 1 regression, >= 2 classes */
    /* Student only (the teacher runs without dropout); CONFIG_AUTO = from the checkpoint. With a
     * path, an explicit value overrides the checkpoint's (as from_pretrained(dropout=...)). */
    double dropout;         /* hidden_dropout_prob, [0, 1) */
    double attention_dropout; /* attention_probs_dropout_prob, [0, 1) */
    double layer_norm_eps;  /* > 0 */
    double initializer_range; /* std of the normal initialisation, > 0 */
    /* ConfigPrecision of this model's GEMMs; after loading never CONFIG_AUTO: an absent key takes
     * the top-level `precision` (teacher.precision / student.precision override it). */
    int precision;
    /* Teachers of a `teachers:` list only (NULL / 1 otherwise). */
    char *name;             /* [A-Za-z0-9_-], unique among the teachers; default "teacher<N>" */
    double weight;          /* >= 0, its weight in teacher_logits: weighted or probs; default 1 */
    int cache;              /* teacher only: ConfigTeacherCache (default AUTO) */
} ConfigModel;

/* How several teachers' logits become the one the logits losses read. */
typedef enum {
    CONFIG_TEACHER_LOGITS_MEAN = 0, /* the plain average */
    CONFIG_TEACHER_LOGITS_WEIGHTED, /* sum_k w_k z_k / sum_k w_k */
    CONFIG_TEACHER_LOGITS_PROBS,    /* sum_k w_k softmax(z_k/T) / sum_k w_k at each loss's T */
} ConfigTeacherLogits;

#define CONFIG_MAX_TEACHERS 8
extern const char *const CONFIG_TEACHER_LOGITS_NAMES[]; /* "mean", "weighted", "probs", NULL */

typedef struct ConfigRun {
    char *name;             /* default: the config file's name without extension */
    char *dir;              /* default: runs/<name> */
    uint64_t seed;          /* one seed for init, dropout and shuffling */
    bool overwrite;         /* allow a non-empty run dir with resume: none */
} ConfigRun;

typedef struct ConfigData {
    char *train;            /* HDF5 from `distill prepare`; required */
    char *dev;              /* NULL: no evaluation */
    char *test;             /* NULL: no final test evaluation */
    int batch_size;         /* global examples per micro-step, over all ranks */
    int eval_batch_size;    /* resolved: batch_size when not given */
    bool shuffle;           /* a seeded permutation per epoch */
    bool drop_last;         /* drop the last partial batch of an epoch */
    int max_seq;            /* 0: the file's max_seq; else truncate rows to this length */
} ConfigData;

typedef enum { CONFIG_SCHEDULE_LINEAR = 0, CONFIG_SCHEDULE_COSINE, CONFIG_SCHEDULE_CONSTANT } ConfigSchedule;

typedef struct ConfigOptimizer {  /* AdamW */
    double lr;              /* peak learning rate, > 0 */
    double weight_decay;    /* decoupled; biases and LayerNorm weights excluded */
    double beta1, beta2;    /* [0, 1) */
    double eps;             /* > 0 */
    int64_t warmup_steps;   /* linear warmup from 0; at most one of steps / ratio is > 0 */
    double warmup_ratio;    /* fraction of the total optimizer steps, [0, 1) */
    ConfigSchedule schedule;/* after warmup: linear to 0, cosine to 0, or constant */
    double max_grad_norm;   /* global L2 clipping; 0 = off */
} ConfigOptimizer;

typedef enum {
    CONFIG_METRIC_ACCURACY = 0, CONFIG_METRIC_F1, CONFIG_METRIC_MCC, CONFIG_METRIC_PEARSON,
    CONFIG_METRIC_SPEARMAN, CONFIG_METRIC_LOSS
} ConfigMetric;

typedef struct ConfigTrain {
    int epochs;             /* used when max_steps == 0 */
    int64_t max_steps;      /* optimizer steps; > 0 overrides epochs */
    int grad_accum;         /* micro-steps per optimizer step */
    int64_t eval_every;     /* optimizer steps between dev evaluations; 0 = each epoch's end */
    int64_t log_every;      /* optimizer steps between log lines */
    int64_t checkpoint_every; /* optimizer steps between checkpoints; 0 = each epoch's end */
    int keep_last;          /* checkpoints kept; 0 = all */
    ConfigMetric metric;    /* selects `best`; loss: lower is better, others higher */
    bool save_best;         /* keep the best dev model as <run.dir>/best (needs data.dev) */
    int early_stopping_patience; /* stop after this many evaluations without improvement; 0 = off */
    int max_bad_steps;      /* a non-finite loss or gradient skips the update; this many in a row stop the run */
} ConfigTrain;

/* One entry of `stages:` (configs/README.md, "Staged distillation"), fully resolved: every field
 * holds the stage's own value or the top-level one it inherits. */
typedef struct ConfigStage {
    char *name;             /* default "stage<N>" (1-based); [A-Za-z0-9_-], unique */
    int n_losses;           /* >= 1: a stage lists its own losses */
    LossSpec *losses;       /* (n_losses) as Config.losses */
    ConfigOptimizer optimizer; /* the top-level optimizer with this stage's keys over it */
    int epochs;             /* used when max_steps == 0 */
    int64_t max_steps;      /* optimizer steps of this stage; > 0 overrides epochs */
} ConfigStage;

typedef enum { CONFIG_RESUME_NONE = 0, CONFIG_RESUME_AUTO, CONFIG_RESUME_PATH } ConfigResume;

typedef struct Config {
    char *source;           /* the config file as given ("(no file)" when loaded from NULL) */
    ConfigTask task;
    ConfigRun run;
    ConfigDevice device;
    ConfigPrecision precision;
    int threads;            /* CPU threads per process; 0 = all cores */
    bool tf32;              /* CUDA fp32 GEMMs may round inputs to TF32 (backend_set_tf32); default false */
    ConfigModel teacher;    /* the teacher, or the first of `teachers:`; init NONE when there is
                               no teacher (task finetune) */
    int n_teachers;         /* 0 (no teacher), 1, or the length of `teachers:` (1..CONFIG_MAX_TEACHERS) */
    bool teacher_list;      /* the config used `teachers:` (written back that way) */
    ConfigModel *more_teachers; /* (n_teachers - 1) teachers 2.. of the list, or NULL */
    ConfigTeacherLogits teacher_logits; /* how the teachers' logits combine (mean with one teacher) */
    ConfigModel student;
    ConfigData data;
    int n_losses;
    /* (n_losses), at least one: losses/'s own specs, ready for loss_set_build. The reader starts
     * each from loss_spec_default and fills the keys the type's row of the loss table takes;
     * every field holds its resolved value (name = the type's by default, temperature_end =
     * temperature without a schedule; `layers: last` stays LOSS_MAP_LAST, which the set resolves
     * to (M, N) when the models are known). weight and temperatures are float, as the terms use
     * them. */
    LossSpec *losses;       /* NULL (n_losses 0) when the config has stages: */
    ConfigOptimizer optimizer;
    ConfigTrain train;
    /* `stages:` (0 = none: the config is one implicit stage made of losses, optimizer and
     * train.epochs/max_steps). With stages, top-level `losses` is rejected and each stage's
     * losses, optimizer and length are resolved here; read them through config_stage. */
    int n_stages;
    ConfigStage *stages;
    ConfigResume resume;
    char *resume_path;      /* resume PATH; NULL otherwise */
    struct ConfigLocations *locations; /* where each key was set, for run-time messages */
} Config;

/* How many stages the run has (1 without stages:). */
int config_stage_count(const Config *cfg);
/* Stage s (0-based) of the run: cfg->stages[s], or, without stages:, a view of the top-level
 * losses, optimizer and train.epochs/max_steps in *tmp (name ""). Valid while cfg lives. */
const ConfigStage *config_stage(const Config *cfg, int s, ConfigStage *tmp);

/* Teacher k (0-based, k < n_teachers): &teacher for k 0, else more_teachers[k - 1]. */
const ConfigModel *config_teacher(const Config *cfg, int k);
/* "teacher" (the single form) or "teachers[K]", the key prefix of teacher k in messages. */
const char *config_teacher_key(const Config *cfg, int k, char *buf, size_t cap);

/* Parses and validates everything that needs only the YAML (see the top of this file). `path`
 * may be NULL (start from defaults); overrides are "key.sub=value" / "losses[1].weight=2"
 * strings whose values are typed as YAML scalars (or flow collections). On error *out is left
 * empty (config_free is safe) and the message is set. */
Status config_parse(const char *path, int n_overrides, char **overrides, Config *out);
/* The checks that stat the file system (see above); reads and writes nothing. */
Status config_check_paths(const Config *cfg);
/* config_parse + config_check_paths. */
Status config_load(const char *path, int n_overrides, char **overrides, Config *out);

/* What the trainer knows after reading the models' configs (config.json / checkpoint header)
 * and the data files' attributes, before it allocates or trains anything. */
typedef struct ConfigModelFacts {
    int layers, hidden, heads, intermediate, max_position, vocab_size, type_vocab_size;
    int num_labels;         /* 0: no classifier */
} ConfigModelFacts;

typedef struct ConfigFacts {
    bool has_teacher;
    ConfigModelFacts teacher; /* as loaded (ignored without a teacher); the first of several */
    ConfigModelFacts more_teachers[CONFIG_MAX_TEACHERS - 1]; /* teachers 2..n_teachers, as loaded */
    ConfigModelFacts student; /* as it will be built (init applied, CONFIG_AUTO resolved) */
    bool has_data;          /* false: random data (bench); the data_* fields are ignored */
    int data_vocab_size;    /* the train file's vocab_size attribute */
    int data_max_seq;       /* the train file's max_seq */
    bool data_has_labels;   /* the train file has /labels */
    bool data_regression;   /* its labels are float32 */
    int data_num_labels;    /* label_names count (0 unknown or regression) */
    bool dev_has_labels;    /* data.dev has /labels (ignored without data.dev) */
    int world_size;         /* ranks, >= 1 */
    bool on_cuda;           /* the device the run resolved to */
} ConfigFacts;

/* Rejects what needs the facts: vocab or type-vocab mismatches (teacher, student, data), rows
 * longer than a model's max positions, attention losses on unequal head counts, hidden losses on
 * unequal widths with projection none, layer numbers beyond a model's depth, explicit shape keys
 * that disagree with a checkpoint, logits losses without matching classifiers, label losses and
 * metrics without (or with the wrong kind of) labels, a batch that does not split over the ranks,
 * bf16 on the CPU. Messages point at the key that asked for the failing thing. */
Status config_check_models(const Config *cfg, const ConfigFacts *facts);

/* Prints the fully resolved config as YAML: every key, defaults included. DISTILL_ERR (with a
 * message) if the stream fails. */
Status config_write_yaml(const Config *cfg, FILE *f);
/* The same as a string (malloc'd; NULL with an error). */
char *config_yaml_string(const Config *cfg);

/* "FILE:LINE:COLUMN" (or "--set ...") where `key` (e.g. "student.heads", "losses[1]") or its
 * nearest enclosing key was set; the config file's name when none was. Valid while cfg lives. */
const char *config_where(const Config *cfg, const char *key);

void config_free(Config *cfg);

#endif
