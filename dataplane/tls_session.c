/* dataplane/tls_session.c: being written */
