/*
 * test_config_bad.c — one rejection rule of train/config per run: loads the fixture given as the
 * argument (tests/configs/NAME.yaml) with config_load inside a fresh sandbox directory and checks
 *   - that loading fails,
 *   - the message, exactly: the fixture's "# expect: " line, with $FILE standing for the fixture's
 *     path (a trailing "..." makes it a prefix match, for long lists of known keys),
 *   - that the message has the "expected ..., found ..." form,
 *   - that nothing in the sandbox (run dirs included) was created, changed or removed,
 *   - that the Config is left empty (config_free on it is safe).
 * "# set: KEY=VALUE" lines become --set overrides, in order.
 */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp, scandir (test_config_sandbox.h) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_config_sandbox.h"
#include "train/config.h"

#define MAX_SETS 8

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "test: cannot open fixture %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) exit(1);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Copies `line` (up to the newline) into a fresh string. */
static char *dup_line(const char *line) {
    size_t n = strcspn(line, "\n");
    char *s = malloc(n + 1);
    memcpy(s, line, n);
    s[n] = '\0';
    return s;
}

/* `tmpl` with every $FILE replaced by `file`. */
static char *expand(const char *tmpl, const char *file) {
    size_t cap = strlen(tmpl) + 8 * strlen(file) + 1, len = 0;
    char *out = malloc(cap);
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, "$FILE", 5)) {
            len += (size_t)snprintf(out + len, cap - len, "%s", file);
            p += 5;
        } else {
            out[len++] = *p++;
        }
    }
    out[len] = '\0';
    return out;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_config_bad FIXTURE.yaml\n");
        return 2;
    }
    const char *fixture = argv[1];
    char *text = read_all(fixture);
    char *expect = NULL, *sets[MAX_SETS];
    int n_sets = 0;
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, "# expect: ", 10)) {
            char *raw = dup_line(line + 10);
            expect = expand(raw, fixture);
            free(raw);
        } else if (!strncmp(line, "# set: ", 7)) {
            if (n_sets == MAX_SETS) return fprintf(stderr, "test: too many # set: lines\n"), 1;
            sets[n_sets++] = dup_line(line + 7);
        }
    }
    free(text);
    if (!expect) {
        fprintf(stderr, "test: %s has no '# expect: ' line\n", fixture);
        return 1;
    }

    sandbox_enter();
    char *before = sandbox_snapshot();
    Config cfg;
    Status st = config_load(fixture, n_sets, sets, &cfg);
    char *after = sandbox_snapshot();
    int fails = 0;
    if (st == DISTILL_OK) {
        fprintf(stderr, "FAIL: %s loaded, expected the error\n  %s\n", fixture, expect);
        fails++;
    } else {
        const char *msg = distill_error();
        size_t n = strlen(expect);
        bool prefix = n > 3 && !strcmp(expect + n - 3, "...");
        bool same = prefix ? !strncmp(msg, expect, n - 3) : !strcmp(msg, expect);
        if (!same) {
            fprintf(stderr, "FAIL: message differs\n  expected: %s\n  found:    %s\n", expect, msg);
            fails++;
        }
        if (!strstr(msg, "expected ") || !strstr(msg, ", found ")) {
            fprintf(stderr, "FAIL: message lacks 'expected ..., found ...': %s\n", msg);
            fails++;
        }
        if (cfg.source || cfg.losses || cfg.run.dir || cfg.locations) {
            fprintf(stderr, "FAIL: the Config was not left empty after the error\n");
            fails++;
        }
    }
    if (strcmp(before, after)) {
        fprintf(stderr, "FAIL: loading changed the sandbox\n--- before\n%s--- after\n%s", before, after);
        fails++;
    }
    config_free(&cfg);
    free(before);
    free(after);
    sandbox_leave();
    free(expect);
    for (int i = 0; i < n_sets; i++) free(sets[i]);
    if (!fails) printf("ok: %s\n", fixture);
    return fails ? 1 : 0;
}
