/* dataplane/ktls.c: being written */
