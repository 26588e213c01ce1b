/* dataplane/audit.c: being written */
