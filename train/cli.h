/*
 * cli.h — the `distill` subcommands. Each takes the arguments after its name (argv[0] is the
 * subcommand name) and returns the process exit code: 0 on success, 1 on a reported error
 * (already printed as "distill: error: ..."), 2 on a usage error.
 */
#ifndef DISTILL_CLI_H
#define DISTILL_CLI_H

#include <stdio.h>

int cmd_train(int argc, char **argv);   /* distill --config FILE [--set k=v ...] [--resume auto|none|PATH] */
int cmd_prepare(int argc, char **argv); /* distill prepare ... */
int cmd_info(int argc, char **argv);    /* distill info PATH */
int cmd_eval(int argc, char **argv);    /* distill eval ... */
int cmd_export(int argc, char **argv);  /* distill export ... */
int cmd_predict(int argc, char **argv); /* distill predict ... */
int cmd_bench(int argc, char **argv);   /* distill bench ... */
int cmd_cache(int argc, char **argv);   /* distill cache --teacher PATH --data FILE.h5 ... */

/* Help texts (help.c). Each help_X writes the full help of one command to f and returns rc, so
 * a caller can `return help_X(stderr, 2);` after a usage error or `help_X(stdout, 0)` for --help.
 * help_usage is the top-level usage: every command with all its current flags. */
int help_usage(FILE *f, int rc);
int help_train(FILE *f, int rc);   /* --config, --set, --resume, run.overwrite, shipped configs */
int help_prepare(FILE *f, int rc);
int help_eval(FILE *f, int rc);
int help_export(FILE *f, int rc);
int help_predict(FILE *f, int rc);
int help_info(FILE *f, int rc);
int help_cache(FILE *f, int rc);
/* `distill help [NAME]`: the help of NAME (NULL: the top-level usage) on f; 0, or 2 after an
 * error naming an unknown command. */
int help_command(const char *name, FILE *f);
/* `distill --version`: version, git commit, backends (compiled in, devices present), optional
 * parts, library versions. Returns 0. */
int help_version(FILE *f);

#endif
