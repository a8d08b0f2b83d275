/* models/bert.c — being written (issue 2). */
