/* lib/certinfo.c: being written */
