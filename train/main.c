/* main.c — `distill` entry point: dispatches to the subcommands of cli.h; help texts live in help.c. */
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/h5.h"
#include "cli.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} Command;

/* One line per subcommand that has landed. */
static const Command commands[] = {
    {"prepare", cmd_prepare},
    {"predict", cmd_predict},
    {"info", cmd_info},
    {"export", cmd_export},
    {"eval", cmd_eval},
    {"bench", cmd_bench},
    {"cache", cmd_cache},
    {NULL, NULL},
};

static bool is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* Training arguments (argv[0] is "train" or the program): checks that --config, --set and
 * --resume have a value, and answers --help anywhere among them (`distill --config --help`,
 * `distill train --help`, `distill --config tiny.yaml --help`) with help_train. Returns -1 when
 * cmd_train should run, else the exit code. */
static int train_prescan(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) return help_train(stdout, 0);
        if (strcmp(a, "--config") && strcmp(a, "--set") && strcmp(a, "--resume")) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "distill: error: %s needs a value (%s)\n", a,
                    !strcmp(a, "--config") ? "the run's YAML file, e.g. --config configs/tiny.yaml"
                    : !strcmp(a, "--set")  ? "KEY=VALUE, e.g. --set optimizer.lr=3e-4"
                                           : "auto, none or the path of a checkpoint");
            fprintf(stderr, "(see distill train --help)\n");
            return 2;
        }
        if (is_help(argv[i + 1])) return help_train(stdout, 0);
        if (!strncmp(argv[i + 1], "--", 2)) {
            fprintf(stderr, "distill: error: %s needs a value, found the option '%s'\n"
                            "(see distill train --help)\n", a, argv[i + 1]);
            return 2;
        }
        i++;
    }
    return -1;
}

int main(int argc, char **argv) {
    /* OpenMP threads that spin between parallel loops fight OpenBLAS's own threads for the cores
     * (measured: 2 threads ran 3x slower than 1 with the default policy, and faster than 1 with
     * passive waiting). The user's own setting wins. Must happen before the first OpenMP call. */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    /* A write past a file-size limit (ulimit -f) fails with EFBIG and is reported like a full
     * disk, instead of SIGXFSZ killing the process with half a file written. */
    signal(SIGXFSZ, SIG_IGN);
    h5_setup();
    if (argc < 2) return help_usage(stderr, 2);
    if (is_help(argv[1])) return help_usage(stdout, 0);
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) return help_version(stdout);
    if (!strcmp(argv[1], "help")) {
        if (argc > 3) {
            fprintf(stderr, "distill: error: help: expected at most one COMMAND, found '%s' and '%s'\n",
                    argv[2], argv[3]);
            return 2;
        }
        return help_command(argc == 3 ? argv[2] : NULL, stdout);
    }
    /* `distill --config FILE` (and `distill train --config FILE`) train. */
    bool train = !strcmp(argv[1], "train");
    if (train || !strncmp(argv[1], "--", 2)) {
        int ac = train ? argc - 1 : argc;
        char **av = train ? argv + 1 : argv;
        int rc = train_prescan(ac, av);
        return rc >= 0 ? rc : cmd_train(ac, av);
    }
    for (const Command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "distill: error: unknown command '%s'\n", argv[1]);
    return help_usage(stderr, 2);
}
