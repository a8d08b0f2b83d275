/* engine/cpu/cpu_kernels.c — being written (issue 2). */
