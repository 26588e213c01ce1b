/*
 * fuzz_config.c: libFuzzer target for the configuration parser
 * (lib/config.c, config_values.c), the first thing mtlsd runs on a file an
 * operator (or a reload) hands it.
 *
 * The input is written to a memfd and parsed exactly as a file on disk;
 * whatever parses is validated and freed, so a leak on any error path
 * fails the run (LeakSanitizer). Config errors must always come with a
 * message: a parse failure with an empty err buffer is a bug (the operator
 * would be told nothing).
 * Built by tests/fuzz/run.sh against the instrumented lib/ library.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "config.h"
#include "log.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Errors are returned to us; their logging is noise at 100k execs/s. */
	log_set_level(LOG_LVL_ERR);
	fd = memfd_create("fuzz_config", 0);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mtlsd_config cfg;
	char err[512];
	int r;

	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	config_init(&cfg);
	err[0] = '\0';
	r = config_load_file(&cfg, path, err, sizeof(err));
	if (r < 0 && err[0] == '\0')
		abort();
	if (r == 0) {
		err[0] = '\0';
		if (config_validate(&cfg, err, sizeof(err)) < 0 && err[0] == '\0')
			abort();
	}
	config_free(&cfg);
	return 0;
}
