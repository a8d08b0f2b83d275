/*
 * cli.h — the `distill` subcommands. Each takes the arguments after its name (argv[0] is the
 * subcommand name) and returns the process exit code: 0 on success, 1 on a reported error
 * (already printed as "distill: error: ..."), 2 on a usage error.
 */
#ifndef DISTILL_CLI_H
#define DISTILL_CLI_H

int cmd_train(int argc, char **argv);   /* distill --config FILE [--set k=v ...] [--resume auto|PATH] */
int cmd_prepare(int argc, char **argv); /* distill prepare ... */
int cmd_info(int argc, char **argv);    /* distill info PATH */
int cmd_eval(int argc, char **argv);    /* distill eval ... */
int cmd_export(int argc, char **argv);  /* distill export ... */
int cmd_predict(int argc, char **argv); /* distill predict ... */
int cmd_bench(int argc, char **argv);   /* distill bench ... */

#endif
