/*
 * signals.c — the stop flag set by SIGTERM / SIGINT / SIGUSR1; see signals.h.
 */
#define _GNU_SOURCE
#include "signals.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../io/atomic.h"

static volatile sig_atomic_t g_first; /* the first stop signal, 0 until one arrives */
static volatile sig_atomic_t g_count;
static bool g_installed;

static void write_str(const char *s) {
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void on_stop(int sig) {
    if (g_count++ == 0) {
        g_first = sig;
        write_str("\ndistill: ");
        write_str(signals_name(sig));
        write_str(" received: stopping after this step with a checkpoint (send it again to stop at once)\n");
        return;
    }
    /* Second signal: leave at once. Only async-signal-safe calls from here. */
    io_atomic_discard_live();
    write_str("distill: ");
    write_str(signals_name(sig));
    write_str(" received again: exiting now; resume from the last checkpoint\n");
    _exit(128 + sig);
}

void signals_install(void) {
    if (g_installed) return;
    g_installed = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* interrupted reads and writes go on; the loop polls the flag */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

int signals_pending(void) { return g_first; }

const char *signals_name(int sig) {
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
    }
}
