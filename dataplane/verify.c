/* dataplane/verify.c: being written */
