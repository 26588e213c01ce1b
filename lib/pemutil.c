/* lib/pemutil.c: being written */
