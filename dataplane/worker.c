/* dataplane/worker.c: being written */
