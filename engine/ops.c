/* engine/ops.c — being written (issue 2). */
