/*
 * test_check.h — the one CHECK macro of the C tests. A failed condition prints
 * "FAIL FILE:LINE: expression: message", is counted in g_failures, and the test goes on, so one
 * run reports every failure; main() returns non-zero when g_failures > 0. REQUIRE prints the same
 * but ends the test at once (exit 1), for failures the rest of a case cannot survive.
 */
#ifndef DISTILL_TEST_CHECK_H
#define DISTILL_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int g_failures = 0;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
            g_failures++;                                                   \
        }                                                                   \
    } while (0)

#define REQUIRE(cond, ...)                                                  \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#endif
