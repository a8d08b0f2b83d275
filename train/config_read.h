/*
 * config_read.h — inside train/: reading typed values out of the located YAML tree with errors that
 * name file:line:column, the key path and what was expected (config.c decodes the sections with
 * these). Not part of the program's interface.
 */
#ifndef DISTILL_CONFIG_READ_H
#define DISTILL_CONFIG_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_tree.h"

typedef struct Rd {
    YSrc src;
    Config *cfg;
} Rd;

void cfg_loc_add(Rd *r, const char *key, const YNode *at);
const YNode *cfg_at_key(const YNode *map, const char *key);
void cfg_join(char *buf, size_t cap, const char *sec, const char *key);
Status cfg_fail_found(Rd *r, const YNode *at, const char *key, const char *expected);
const YNode *cfg_value_of(Rd *r, const YNode *map, const char *sec, const char *key, char *kp, size_t cap);
Status rd_int64(Rd *r, const YNode *map, const char *sec, const char *key, int64_t lo, int64_t hi, bool auto_ok, int64_t *out);
Status rd_int(Rd *r, const YNode *map, const char *sec, const char *key, int lo, int hi, bool auto_ok, int *out);
Status rd_num(Rd *r, const YNode *map, const char *sec, const char *key, double lo, bool lo_open, double hi, bool hi_open, bool auto_ok, double *out);
Status rd_bool(Rd *r, const YNode *map, const char *sec, const char *key, bool *out);
Status rd_str(Rd *r, const YNode *map, const char *sec, const char *key, const char *what, char **out);
void cfg_list_names(const char *const *names, char *buf, size_t cap);
Status cfg_fail_enum(Rd *r, const YNode *v, const char *kp, const char *const *names);
Status rd_enum(Rd *r, const YNode *map, const char *sec, const char *key, const char *const *names, int *out);
Status cfg_need_map(Rd *r, const YNode *v, const char *key, const char *const *known);
Status cfg_check_keys(Rd *r, const YNode *map, const char *sec, const char *const *known);
Status rd_float(Rd *r, const YNode *map, const char *sec, const char *key, double lo, bool lo_open, float *out);

/* Reads an enum key into an int-typed field. */
#define RD_ENUM(r, map, sec, key, names, field)                                  \
    do {                                                                          \
        int e_ = (int)(field);                                                    \
        if (rd_enum(r, map, sec, key, names, &e_)) return DISTILL_ERR;           \
        (field) = e_;                                                             \
    } while (0)

#endif
