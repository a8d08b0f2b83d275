/*
 * setup.h — builds the teacher and the student a config asks for: random weights of a shape, a
 * Hugging Face folder, a training checkpoint, or (student) chosen layers of the teacher.
 *
 * Promises: on success the model lives on `device` with its dropout set as the config says; on
 * failure nothing is allocated and the message names the config key at fault.
 */
#ifndef DISTILL_SETUP_H
#define DISTILL_SETUP_H

#include "../models/bert.h"
#include "config.h"

/* What the data says, for the keys left to CONFIG_AUTO. */
typedef struct SetupData {
    int vocab_size;     /* the train file's vocab size */
    int num_labels;     /* classes (>= 2), 1 for regression, 0 when unlabeled */
    char **label_names; /* (num_labels) or NULL */
} SetupData;

/* Loads a model from a Hugging Face folder or a training checkpoint. num_labels: -1 = as saved. */
Status setup_load_path(const char *path, Device device, int num_labels, uint64_t seed, Bert **out);

/* The teacher of a distill run (NULL for finetune, not an error). Dropout is irrelevant: the
 * teacher always runs in evaluation mode. */
Status setup_teacher(const Config *cfg, Device device, const SetupData *data, Bert **out);
/* Teacher k (0-based) of cfg (config_teacher); a random teacher k > 0 draws from its own seed, so
 * two random teachers differ. Messages name teachers[K] (or teacher). */
Status setup_teacher_at(const Config *cfg, int k, Device device, const SetupData *data, Bert **out);
/* The model being trained. */
Status setup_student(const Config *cfg, Device device, const SetupData *data, const Bert *teacher,
                     Bert **out);

/* The facts config_check_models wants, from a built model. */
ConfigModelFacts setup_facts(const Bert *m);

#endif
