/*
 * fuzz.h: the entry points libFuzzer calls, declared once for every target
 * (LLVMFuzzerInitialize is optional: only targets that set up state once
 * define it).
 */
#ifndef MTLS_FUZZ_H
#define MTLS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
