/* dataplane/generation.c: being written */
