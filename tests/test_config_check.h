/*
 * test_config_check.h — what tests/test_config.c and tests/test_config_models.c share: the failure
 * count, CHECK macros, and loading a YAML text in the sandbox (checking that loading wrote nothing).
 */
#ifndef DISTILL_TEST_CONFIG_CHECK_H
#define DISTILL_TEST_CONFIG_CHECK_H

#include <stdio.h>
#include <string.h>

#include "train/config.h"

extern int failures;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            failures++;                                                           \
        }                                                                         \
    } while (0)

#define CHECK_STR(a, b)                                                                        \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        if (!((a_ == NULL && b_ == NULL) || (a_ && b_ && !strcmp(a_, b_)))) {                  \
            fprintf(stderr, "FAIL %s:%d: %s is '%s', expected '%s'\n", __FILE__, __LINE__, #a, \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                   \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

/* Values set from decimal text must compare equal to the same literal parsed by the compiler
 * (both are strtod's correctly rounded double), so exact comparison is right here. */
#define CHECK_NUM(a, b) CHECK((a) == (b))

/* Writes `yaml` to cfg.yaml in the sandbox and loads it; checks that loading wrote nothing. */
Status load_text(const char *yaml, int n, const char *const *sets, Config *c);
/* Counts a failure when the message differs. */
void expect_message(const char *found, const char *expected);

/* test_config_models.c: one case per config_check_models rule (config_models_<rule>); false when
 * `name` is none of them. */
bool case_models(const char *name);

#endif
