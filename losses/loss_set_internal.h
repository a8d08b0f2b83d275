/*
 * loss_set_internal.h — the LossSet layout, shared by loss_set.c (building, validation, layer maps,
 * projections, requests), loss_forward.c (the terms) and loss_table.c. Private to losses/.
 */
#ifndef DISTILL_LOSS_SET_INTERNAL_H
#define DISTILL_LOSS_SET_INTERNAL_H

#include "losses.h"

typedef struct LossTerm {
    LossSpec spec;          /* resolved: name, temperature, target filled in */
    int n_pairs;
    LossLayerPair *pairs;   /* (n_pairs): hidden-state indices, or 1-based encoder layers for
                               attention terms (array index = layer - 1) */
    Tensor **proj_w;        /* (n_pairs), each (H_t, H_s) or NULL where no projection */
    Tensor **proj_b;        /* (n_pairs), each (H_t) or NULL */
} LossTerm;

/* What the set reads of one teacher's forward. */
typedef struct LossTeacher {
    int layers;             /* N of this teacher */
    int width;              /* its hidden width */
    bool read;              /* some term reads this teacher (logits terms read every teacher) */
    bool *hidden;           /* (N + 1) */
    bool *scores, *probs;   /* (N) */
} LossTeacher;

struct LossSet {
    int n;
    LossTerm *terms;        /* (n) */
    ParamStore *params;     /* projections, or NULL when none */
    LossLabels labels;
    bool needs_teacher;
    int student_layers;     /* M */
    int student_width;
    int n_teachers;
    LossTeacher *teachers;  /* (n_teachers) */
    LossTeacherMix mix;     /* how the logits terms combine the teachers (loss_set_teacher_mix) */
    float *mix_weights;     /* (n_teachers) normalised to sum 1 */
    /* What each forward must return (BertRequest arrays point here). */
    bool student_logits, teacher_logits;
    bool *student_hidden;   /* (M + 1) */
    bool *student_scores, *student_probs; /* (M) */
};

/* The table's facts, by type. */
static inline bool loss_is_logits(LossType t) { /* reads the teacher's logits */
    const LossTypeInfo *i = loss_type_info(t);
    return i->reads == LOSS_READS_LOGITS && i->needs_teacher;
}
static inline bool loss_is_label(LossType t) { return loss_type_info(t)->labels != LOSS_LABELS_NONE; }
static inline bool loss_is_attention(LossType t) {
    return loss_type_info(t)->reads == LOSS_READS_ATTENTION;
}
/* Terms on hidden states: they may carry projections. */
static inline bool loss_is_hidden(LossType t) { return loss_type_info(t)->reads == LOSS_READS_HIDDEN; }

#endif
