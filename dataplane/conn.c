/* dataplane/conn.c: being written */
