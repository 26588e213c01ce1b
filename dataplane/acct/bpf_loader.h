/*
 * bpf_loader.h: load the accounting BPF program into mtlsd and attach it to
 * mtlsd's own USDT probe.
 *
 * open -> set rodata -> load (pinning or reusing the maps under
 * /sys/fs/bpf/mtlsd/<instance>/) -> attach -> ... -> destroy, with one
 * cleanup path (libbpf-bootstrap style). The links die with the process;
 * the pinned maps do not, so counts survive a restart and can be read while
 * mtlsd is down.
 */
#ifndef MTLSD_BPF_LOADER_H
#define MTLSD_BPF_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "guard.h"

struct bpf_loader;

/*
 * Whether this process may load and attach tracing programs: CAP_SYS_ADMIN
 * (root), or CAP_BPF and CAP_PERFMON. When not, why names what is missing.
 */
bool bpf_loader_privileged(char *why, size_t len);

/*
 * Mount bpffs if needed, load the program with its maps pinned for
 * instance (an existing pin with the same layout is reused), and attach it
 * to mtlsd:handshake_end in this process's executable. On success *out owns
 * everything; on failure returns -errno and why says what failed and what
 * to do (the caller logs it once and falls back to in-process counters).
 */
int bpf_loader_start(const char *instance, struct bpf_loader **out, char *why, size_t len) MUST_CHECK;

/* fds of the pinned maps: acct_meta (user space writes names into it),
 * acct_stats and acct_totals (read for /metrics). Owned by l. */
int bpf_loader_meta_fd(const struct bpf_loader *l);
int bpf_loader_stats_fd(const struct bpf_loader *l);
int bpf_loader_totals_fd(const struct bpf_loader *l);

/* "/sys/fs/bpf/mtlsd/<instance>" */
const char *bpf_loader_pin_dir(const struct bpf_loader *l);

/* Detach and unload. The pinned maps stay. NULL is fine. */
void bpf_loader_stop(struct bpf_loader *l);

#endif
