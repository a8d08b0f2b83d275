/*
 * cmd_prepare.c — `distill prepare`: parses the arguments and runs data/prepare.h.
 *
 *   distill prepare --vocab vocab.txt --input FILE --output FILE.h5 [--max-seq 128]
 *                   [--format tsv|csv|jsonl] [--text COL] [--text-pair COL] [--label COL]
 *                   [--no-label] [--labels a,b,c] [--regression] [--no-lower-case] [--skip-bad-rows]
 *
 * Exit codes as train/cli.h says: 0 done, 1 a reported error (nothing written), 2 a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data/prepare.h"

int cmd_prepare(int argc, char **argv) {
    PrepareOptions o = prepare_default_options();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        char key[64];
        size_t kn = eq && a[0] == '-' ? (size_t)(eq - a) : strlen(a);
        snprintf(key, sizeof key, "%.*s", (int)(kn < sizeof key ? kn : sizeof key - 1), a);
        const char *val = eq && a[0] == '-' ? eq + 1 : NULL;
        bool takes = !strcmp(key, "--vocab") || !strcmp(key, "--input") || !strcmp(key, "--output") ||
                     !strcmp(key, "--max-seq") || !strcmp(key, "--format") || !strcmp(key, "--text") ||
                     !strcmp(key, "--text-pair") || !strcmp(key, "--label") || !strcmp(key, "--labels");
        if (takes && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "distill: error: %s needs a value\n", key);
                return 2;
            }
            val = argv[++i];
        }
        if (!strcmp(key, "-h") || !strcmp(key, "--help")) {
            help_prepare(stdout, 0);
            return 0;
        } else if (!strcmp(key, "--vocab")) o.vocab_path = val;
        else if (!strcmp(key, "--input")) o.input_path = val;
        else if (!strcmp(key, "--output")) o.output_path = val;
        else if (!strcmp(key, "--text")) o.text_col = val;
        else if (!strcmp(key, "--text-pair")) o.pair_col = val;
        else if (!strcmp(key, "--label")) o.label_col = val;
        else if (!strcmp(key, "--labels")) o.labels = val;
        else if (!strcmp(key, "--max-seq")) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*end || end == val || v < 3 || v > 65536) {
                fprintf(stderr, "distill: error: --max-seq: expected an integer from 3 to 65536, found '%s'\n", val);
                return 2;
            }
            o.max_seq = (int)v;
        } else if (!strcmp(key, "--format")) {
            o.format = text_format_parse(val);
            if (o.format == TEXT_AUTO) {
                fprintf(stderr, "distill: error: --format: expected tsv, csv or jsonl, found '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(key, "--no-label") && !val) o.no_label = true;
        else if (!strcmp(key, "--regression") && !val) o.regression = true;
        else if (!strcmp(key, "--no-lower-case") && !val) o.do_lower_case = false;
        else if (!strcmp(key, "--skip-bad-rows") && !val) o.skip_bad_rows = true;
        else {
            fprintf(stderr, "distill: error: prepare: unknown argument '%s'\n", a);
            help_prepare(stderr, 2);
            return 2;
        }
    }
    if (!o.vocab_path || !o.input_path || !o.output_path) {
        fprintf(stderr, "distill: error: prepare needs --vocab, --input and --output\n");
        help_prepare(stderr, 2);
        return 2;
    }
    /* the command line, recorded in the file */
    size_t n = 64;
    for (int i = 1; i < argc; i++) n += strlen(argv[i]) + 1;
    char *cmdline = xmalloc(n);
    strcpy(cmdline, "distill prepare");
    for (int i = 1; i < argc; i++) strcat(strcat(cmdline, " "), argv[i]);
    o.created_by = cmdline;

    PrepareStats st;
    Status s = prepare_run(&o, &st);
    free(cmdline);
    if (s != DISTILL_OK) {
        distill_print_error(distill_error());
        return 1;
    }
    printf("distill prepare: %ld rows -> %s (max_seq %d, %s", st.rows, o.output_path, o.max_seq, st.columns);
    if (st.num_labels) printf(", %d classes", st.num_labels);
    printf(", %ld truncated", st.truncated);
    if (st.skipped) printf(", %ld bad rows skipped", st.skipped);
    printf(") in %.2f s, %.0f rows/s\n", st.seconds, st.seconds > 0 ? st.rows / st.seconds : 0.0);
    return 0;
}
