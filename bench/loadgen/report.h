/*
 * report.h: the load generator's one JSON object.
 */
#ifndef LG_REPORT_H
#define LG_REPORT_H

#include <stdio.h>

#include "loadgen.h"

/* Merge the threads' counters and print one JSON object (and a newline). */
void lg_report(FILE *out, const struct lg_options *o, const struct lg_thread *th, unsigned n);

#endif
