/* engine/cpu/cpu_backend.c — being written (issue 2). */
