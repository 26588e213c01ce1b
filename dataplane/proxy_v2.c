/* dataplane/proxy_v2.c: being written */
