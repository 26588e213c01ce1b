/*
 * cmd_stats.c: `mtlsctl stats`, handshake counts per client certificate.
 *
 * Reads the accounting records of one mtlsd instance straight from where
 * mtlsd leaves them (the pinned BPF maps, or the fallback snapshot: see
 * stats_source.h), so it works while mtlsd is down or hung, and prints them
 * as a table (most failures first) or JSON. --watch redraws in place.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf/acct_prom.h"
#include "cmd.h"
#include "log.h"
#include "stats_render.h"
#include "stats_source.h"

struct stats_opts {
	const char *instance;
	const char *runtime_root;
	enum stats_source_kind source;
	enum stats_sort sort;
	struct stats_filter filter;
	bool json;
	bool prometheus;
	unsigned watch_s;          /* 0: print once */
};

extern const struct ctl_command cmd_stats;

/* One load + print. Returns an exit code; in watch mode a load error is
 * printed in the frame instead of the log. */
static int stats_once(const struct stats_opts *o, FILE *out)
{
	struct stats_view v;
	char err[1024];

	int rc = stats_load(o->instance, o->runtime_root, o->source, &v, err, sizeof(err));
	if (rc < 0) {
		if (o->watch_s)
			fprintf(out, "mtlsctl stats: %s\n", err);
		else
			log_err("stats for instance '%s': %s", o->instance, err);
		return CTL_EXIT_CHECK_FAILED;
	}
	stats_select(&v, &o->filter, o->sort);
	if (o->prometheus) {
		struct acct_view av = { .source = stats_source_name(v.kind), .recs = v.recs,
					.n = v.n, .n_present = v.n_present, .totals = v.totals, .capacity = v.capacity };
		rc = acct_prom_render(out, &av);
	} else if (o->json) {
		stats_print_json(out, &v);
	} else {
		stats_print_table(out, &v);
	}
	stats_view_free(&v);
	if (rc < 0) {
		log_err("stats: %s", strerror(-rc));
		return CTL_EXIT_CHECK_FAILED;
	}
	return CTL_EXIT_OK;
}

/* Render each frame off screen, then clear and draw it in one write, so
 * the terminal never shows a half-drawn table. With --json, print one
 * document per line instead, never clearing. */
static int stats_watch(const struct stats_opts *o)
{
	for (;;) {
		char *frame = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&frame, &len);
		if (!mem) {
			log_err("stats --watch: out of memory");
			return CTL_EXIT_CHECK_FAILED;
		}
		(void)stats_once(o, mem);
		fclose(mem);
		/* JSON becomes a stream of one-line documents for programs. */
		if (!o->json)
			fputs("\033[H\033[2J", stdout);
		fwrite(frame, 1, len, stdout);
		fflush(stdout);
		free(frame);
		sleep(o->watch_s);
	}
}

static int parse_opts(int argc, char **argv, struct stats_opts *o)
{
	static const struct option longopts[] = {
		{ "instance", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'P' },
		{ "partner", required_argument, NULL, 'p' },
		{ "serial", required_argument, NULL, 's' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "source", required_argument, NULL, 'S' },
		{ "sort", required_argument, NULL, 'o' },
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	char norm[128];
	int ch;

	while ((ch = getopt_long(argc, argv, "i:jp:s:w::", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i': o->instance = optarg; break;
		case 'j': o->json = true; break;
		case 'P': o->prometheus = true; break;
		case 'p': o->filter.partner = optarg; break;
		case 's':
			if (stats_serial_normalize(optarg, norm, sizeof(norm)) < 0) {
				log_err("--serial '%s': not a hex serial (e.g. 4F:A2:01 or 4fa201)", optarg);
				return -EINVAL;
			}
			o->filter.serial = optarg;
			break;
		case 'w': {
			char *end;
			long s = optarg ? strtol(optarg, &end, 10) : 2;
			if (optarg && (*end || s < 1 || s > 3600)) {
				log_err("--watch=%s: give a refresh interval in seconds, 1 to 3600", optarg);
				return -EINVAL;
			}
			o->watch_s = (unsigned)s;
			break;
		}
		case 'S':
			if (stats_source_parse(optarg, &o->source) < 0) {
				log_err("--source '%s': use auto, bpf or fallback", optarg);
				return -EINVAL;
			}
			break;
		case 'o':
			if (stats_sort_parse(optarg, &o->sort) < 0) {
				log_err("--sort '%s': use failures, total or last-seen", optarg);
				return -EINVAL;
			}
			break;
		case 'r': o->runtime_root = optarg; break;
		default: return -EINVAL;
		}
	}
	if (optind < argc) {
		log_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (o->json && o->prometheus) {
		log_err("--json and --prometheus: choose one format");
		return -EINVAL;
	}
	return 0;
}

static int stats_run(int argc, char **argv)
{
	struct stats_opts o = { .instance = ACCT_DEFAULT_INSTANCE };

	if (parse_opts(argc, argv, &o) < 0)
		return ctl_usage(&cmd_stats);
	if (o.watch_s)
		return stats_watch(&o);
	return stats_once(&o, stdout);
}

const struct ctl_command cmd_stats = {
	.group = "stats",
	.name = "",
	.args = "[--instance NAME] [--json|--prometheus] [--partner NAME] [--serial HEX] [--watch[=SECONDS]]",
	.summary = "handshake counts, failures and latency per client certificate",
	.help =
		"  -i, --instance NAME   mtlsd instance (default \"default\")\n"
		"  -j, --json            one JSON document instead of the table\n"
		"      --prometheus      the Prometheus text format (node_exporter textfile);\n"
		"                        --partner and --serial apply, sums cover what is shown\n"
		"  -p, --partner NAME    only this partner (name or index)\n"
		"  -s, --serial HEX      only this serial (colons and case ignored)\n"
		"  -w, --watch[=SECS]    redraw every SECS seconds (default 2) until interrupted;\n"
		"                        with --json, one document per line\n"
		"      --sort KEY        failures (default), total or last-seen\n"
		"      --source SRC      auto (default), bpf (pinned maps) or fallback (snapshot)\n"
		"      --runtime-dir DIR where the fallback snapshot lives (default\n"
		"                        $RUNTIME_DIRECTORY, else /run/mtlsd)\n"
		"Reads /sys/fs/bpf/mtlsd/NAME/ (needs root or CAP_BPF) or DIR/NAME/stats.bin;\n"
		"the first line says which. Exit 1 when neither can be read.\n",
	.run = stats_run,
};
