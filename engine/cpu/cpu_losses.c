/* engine/cpu/cpu_losses.c — being written (issue 2). */
