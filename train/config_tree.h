/*
 * config_tree.h — private to train/config*.c: the YAML of a config as a small tree that remembers
 * where every node came from (file line:column, or which --set override), the --set overrides
 * applied to that tree, YAML core-schema typing of plain scalars, and the error helpers that
 * produce "WHERE: KEY: expected ..., found ..." messages.
 *
 * Promise: loading reads the file through libyaml's document API and copies it; duplicate keys,
 * more than one document, nesting deeper than YTREE_MAX_DEPTH (alias loops) and more than
 * YTREE_MAX_NODES nodes are rejected with a located message. Nothing is written anywhere.
 */
#ifndef DISTILL_CONFIG_TREE_H
#define DISTILL_CONFIG_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"

#define YTREE_MAX_DEPTH 32
#define YTREE_MAX_NODES 100000

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } YKind;

typedef struct YNode {
    YKind kind;
    char *text;             /* scalar: its value after YAML unescaping */
    bool plain;             /* scalar written plain: typed as null/bool/int/float; else a string */
    int line, col;          /* 1-based position in the config file (0 for overrides) */
    int origin;             /* -1: the config file; i >= 0: overrides[i] */
    int n, cap;             /* SEQ: items; MAP: pairs */
    struct YNode **keys;    /* MAP: (n) key scalars */
    struct YNode **vals;    /* MAP: (n) values; SEQ: (n) items */
} YNode;

/* Where the nodes come from, for messages. */
typedef struct YSrc {
    const char *file;       /* the config path, or "(no file)" */
    int n_over;
    char **over;            /* the override strings, as given */
} YSrc;

/* Loads src->file (a NULL file gives *root = NULL). An empty document gives *root = NULL. */
Status ytree_load_file(const YSrc *src, YNode **root);
/* Applies src->over[i] ("a.b[2].c=value") to *root, creating mappings on the way. */
Status ytree_apply_override(const YSrc *src, YNode **root, int i);
void ytree_free(YNode *n);

/* "FILE:LINE:COLUMN", or "--set a.b=v" for override nodes, or "FILE" for at == NULL. */
void ywhere(const YSrc *src, const YNode *at, char *buf, size_t cap);
/* What a node is, for "found ...": nothing, a list, a mapping, 3, true, 'text', the string '3'. */
void ydescribe(const YNode *n, char *buf, size_t cap);
/* Sets "WHERE: KEY: <fmt>" and returns DISTILL_ERR. */
Status yfail(const YSrc *src, const YNode *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* NULL pointer or a null scalar. */
bool yis_null(const YNode *n);
/* The value of `key` in a mapping (NULL when absent); *key_node gets the key scalar. */
YNode *ymap_get(const YNode *map, const char *key, const YNode **key_node);

/* Core-schema typing of a plain scalar; false when the node is not one of that kind. */
bool yscalar_bool(const YNode *n, bool *out);
bool yscalar_int(const YNode *n, int64_t *out);   /* also integral floats such as 1e3 */
bool yscalar_num(const YNode *n, double *out);    /* finite ints and floats */
/* True if `text` written plain would read as something other than a string (null, bool,
 * number) — such strings must be quoted when written back. */
bool ytext_is_typed(const char *text);

/* The candidate closest to `word` by edit distance (case-insensitive), or NULL if none is close
 * enough to be a plausible typo. `cands` is NULL-terminated. */
const char *yclosest(const char *word, const char *const *cands);

/* ------------------------------------------------------------------ shared by config*.c */

/* Names of the config's enums, indexed by their values, NULL-terminated. */
extern const char *const CONFIG_TASK_NAMES[];
extern const char *const CONFIG_DEVICE_NAMES[];
extern const char *const CONFIG_PRECISION_NAMES[];
extern const char *const CONFIG_CACHE_NAMES[];  /* teacher.cache: ConfigTeacherCache */
extern const char *const CONFIG_SCHEDULE_NAMES[];
extern const char *const CONFIG_METRIC_NAMES[];

/* Where each key was set (config_where); owned by the Config. */
struct ConfigLocations {
    int n, cap;
    char **keys;
    char **where;
};

#endif
