/*
 * fuzz_config.c — libFuzzer harness for the YAML run config (train/config*.c): config_parse, the
 * reader `distill --config FILE [--set ...]` and `distill bench` use (syntax, keys, types,
 * ranges, combinations; config_check_paths is left out: it only stats paths).
 *
 * Input: the config file's bytes, then optionally a NUL and up to 4 `--set` overrides, one a line
 * (`key.sub=value`). Property checked beyond "no crash, no leak, no sanitizer report": a config
 * that parses prints (config_yaml_string) as YAML that parses again and prints the same text — the
 * promise of config.h ("loading its output gives the same Config again"), but for the comment line
 * naming the source file. A break aborts.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "train/config.h"

enum { MAX_OVERRIDES = 4 };

/* The printed YAML after its "# from: FILE" comment line (the one line that names the source). */
static const char *skip_from(const char *yaml) {
    const char *at = strstr(yaml, "\n# from: ");
    if (!at) return yaml;
    const char *end = strchr(at + 1, '\n');
    return end ? end : yaml;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, 2, part, len);
    char path[600], again[600];
    fuzz_write("config.yaml", part[0], len[0], path, sizeof path);

    char *over_text = fuzz_strndup(part[1], len[1]);
    char *over[MAX_OVERRIDES];
    int n_over = 0;
    for (char *save = NULL, *line = strtok_r(over_text, "\n", &save); line && n_over < MAX_OVERRIDES;
         line = strtok_r(NULL, "\n", &save))
        over[n_over++] = line;

    Config cfg;
    if (fuzz_said("config_parse", config_parse(path, n_over, over, &cfg) == DISTILL_OK)) {
        /* Anything read must be described: where each key came from, for run-time messages. */
        (void)config_where(&cfg, "student.heads");
        (void)config_where(&cfg, "losses[0]");
        char *yaml = config_yaml_string(&cfg);
        if (!yaml) {
            fprintf(stderr, "fuzz_config: config_yaml_string failed on a parsed config: %s\n",
                    distill_error());
            abort();
        }
        fuzz_write("again.yaml", yaml, strlen(yaml), again, sizeof again);
        Config back;
        if (config_parse(again, 0, NULL, &back) != DISTILL_OK) {
            fprintf(stderr, "fuzz_config: the printed config does not parse again: %s\n---\n%s---\n",
                    distill_error(), yaml);
            abort();
        }
        char *yaml2 = config_yaml_string(&back);
        if (!yaml2 || strcmp(skip_from(yaml), skip_from(yaml2)) != 0) {
            fprintf(stderr, "fuzz_config: the printed config reads back differently:\n---\n%s---\n%s---\n",
                    yaml, yaml2 ? yaml2 : "(null)");
            abort();
        }
        free(yaml2);
        config_free(&back);
        free(yaml);
        config_free(&cfg);
    } else {
        /* A rejection leaves nothing behind (config.h: "*out is left empty"). */
        config_free(&cfg);
    }
    free(over_text);
    return 0;
}
