/*
 * ktls.c: decide, count and install the kernel TLS handoff.
 *
 * The record sequence numbers the kernel must continue from are the
 * numbers of records each side has sent in the current epoch. OpenSSL does
 * not expose them, so mtlsd counts record headers with the message callback
 * (SSL3_RT_HEADER, one call per record read or written) and restarts the
 * count where the epoch changes: TLS 1.2 after the ChangeCipherSpec record
 * (the Finished is then record 0), TLS 1.3 after the Finished (the traffic keys change right
 * after it; NewSessionTickets are records 0, 1...). TLS 1.3 traffic
 * secrets come from the keylog callback, the only place OpenSSL 3.0 shows
 * them; they stay in struct ktls_conn until it is cleared, for KeyUpdate.
 */
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exdata.h"
#include "host_probe.h"
#include "ktls_internal.h"
#include "log.h"
#include "string_table.h"

static int real_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	return setsockopt(fd, level, name, val, len);
}

static const struct ktls_ops real_ops = {
	.setsockopt = real_setsockopt,
	.recvmsg = recvmsg,
	.sendmsg = sendmsg,
};
const struct ktls_ops *ktls_sys = &real_ops;

/* The registry's kTLS slot (exdata.h), copied here once secret capture
 * is on (kTLS not off): -1 means off, so every reader tests just this. */
static int ex_index = -1;
static bool ulp_available;
static enum ktls_mode global_mode = KTLS_MODE_OFF;
static _Atomic uint64_t decisions[KTLS_DECISION_MAX];
static _Atomic uint64_t events[KTLS_EVENT_MAX];
static atomic_bool decision_logged[KTLS_DECISION_MAX];

static const char *const decision_names[KTLS_DECISION_MAX] = {
	[KTLS_OFFLOAD] = "offloaded",
	[KTLS_DECLINE_MODE_OFF] = "disabled",
	[KTLS_DECLINE_NO_ULP] = "no_tls_ulp",
	[KTLS_DECLINE_VERSION] = "unsupported_version",
	[KTLS_DECLINE_CIPHER] = "unsupported_cipher",
	[KTLS_DECLINE_NO_SECRETS] = "no_secrets",
	[KTLS_DECLINE_REKEYED] = "rekeyed_in_userspace",
	[KTLS_DECLINE_KERNEL] = "kernel_refused",
};

/* The one log line per reason: what it means for the operator. */
static const char *const decision_help[KTLS_DECISION_MAX] = {
	[KTLS_OFFLOAD] = "sessions are handed to kernel TLS",
	[KTLS_DECLINE_MODE_OFF] = "ktls = off: sessions stay in user space",
	[KTLS_DECLINE_NO_ULP] = "the kernel has no tls ULP (modprobe tls): sessions stay in user space",
	[KTLS_DECLINE_VERSION] = "kernel TLS takes TLS 1.2 and 1.3 only: such sessions stay in user space",
	[KTLS_DECLINE_CIPHER] = "kernel TLS takes AES-GCM and ChaCha20-Poly1305 only: other ciphers stay in user space",
	[KTLS_DECLINE_NO_SECRETS] = "the TLS 1.3 traffic secrets were not captured (ktls_ctx_prepare not called on the SSL_CTX?): sessions stay in user space",
	[KTLS_DECLINE_REKEYED] = "the session was rekeyed before the handoff: it stays in user space",
	[KTLS_DECLINE_KERNEL] = "the kernel refused a key (is the cipher's crypto module loadable?): sessions stay in user space",
};

static const char *const event_names[KTLS_EVENT_MAX] = {
	[KTLS_EV_HANDOFF] = "handoff",
	[KTLS_EV_CLOSE_NOTIFY] = "close_notify",
	[KTLS_EV_ALERT] = "alert",
	[KTLS_EV_TICKET_IGNORED] = "client_ticket_ignored",
	[KTLS_EV_KEYUPDATE] = "keyupdate",
	[KTLS_EV_KEYUPDATE_UNSUPPORTED] = "keyupdate_unsupported",
	[KTLS_EV_DECRYPT_ERROR] = "decrypt_error",
	[KTLS_EV_BAD_RECORD] = "bad_record",
};

DEFINE_STRING_TABLE(ktls_decision, enum ktls_decision, decision_names, "unknown")
DEFINE_STRING_TABLE(ktls_event, enum ktls_event, event_names, "unknown")

void ktls_count_event(enum ktls_event e)
{
	if ((unsigned)e < KTLS_EVENT_MAX)
		atomic_fetch_add_explicit(&events[e], 1, memory_order_relaxed);
}

void ktls_count_decision(enum ktls_decision d)
{
	if ((unsigned)d >= KTLS_DECISION_MAX)
		return;
	atomic_fetch_add_explicit(&decisions[d], 1, memory_order_relaxed);
	if (!atomic_exchange(&decision_logged[d], true))
		log_info("ktls: %s (counter ktls_%s; logged once)", decision_help[d],
			 decision_names[d]);
}

void ktls_stats_snapshot(struct ktls_stats *out)
{
	for (size_t i = 0; i < KTLS_DECISION_MAX; i++)
		out->declined[i] = atomic_load_explicit(&decisions[i], memory_order_relaxed);
	for (size_t i = 0; i < KTLS_EVENT_MAX; i++)
		out->events[i] = atomic_load_explicit(&events[i], memory_order_relaxed);
}

void ktls_set_ops(const struct ktls_ops *ops)
{
	ktls_sys = ops ? ops : &real_ops;
}

int ktls_global_init(enum ktls_mode mode, char *err, size_t errlen)
{
	global_mode = mode;
	if (mode == KTLS_MODE_OFF) {
		ktls_count_decision(KTLS_DECLINE_MODE_OFF);
		return 0;
	}
	if (ktls_keys_init() < 0) {
		snprintf(err, errlen, "ktls: OpenSSL offers no HKDF/TLS1-PRF KDF; set ktls = off");
		return -ENOSYS;
	}
	if (exdata_init() < 0) {
		snprintf(err, errlen, "ktls: cannot allocate an SSL ex_data index");
		return -ENOMEM;
	}
	ex_index = exdata_index[EXDATA_SSL_KTLS_CONN];
	/* lib/host_probe.h: the same probe as mtlsctl doctor, through the seam. */
	ulp_available = host_probe_tls_ulp(ktls_sys->setsockopt) == 0;
	/* This line is the one per-process explanation of "no_tls_ulp". */
	atomic_store(&decision_logged[KTLS_DECLINE_NO_ULP], true);
	if (!ulp_available && mode == KTLS_MODE_ON) {
		snprintf(err, errlen,
			 "ktls = on but the kernel has no tls ULP: run 'modprobe tls' or set ktls = auto");
		return -ENOPROTOOPT;
	}
	log_info("ktls: %s (ktls = %s)",
		 ulp_available ? "the kernel offers the tls ULP"
			       : "the kernel has no tls ULP: sessions stay in user space",
		 mode == KTLS_MODE_ON ? "on" : "auto");
	return 0;
}

bool ktls_available(void)
{
	return ulp_available;
}

static struct ktls_conn *conn_of(const SSL *ssl)
{
	return ex_index < 0 ? NULL : SSL_get_ex_data(ssl, ex_index);
}

static int hex_decode(const char *hex, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(hex);

	ENSURE(n % 2 == 0 && n / 2 <= max, EINVAL);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = OPENSSL_hexchar2int((unsigned char)hex[2 * i]);
		int lo = OPENSSL_hexchar2int((unsigned char)hex[2 * i + 1]);
		ENSURE(hi >= 0 && lo >= 0, EINVAL);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

/* "LABEL <client_random hex> <secret hex>": keep the two secrets kTLS needs. */
static void keylog_cb(const SSL *ssl, const char *line)
{
	static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
	struct ktls_conn *kc = conn_of(ssl);
	uint8_t *dst;
	bool *have;
	const char *secret;
	size_t len;

	if (!kc)
		return;
	if (strncmp(line, client, sizeof(client) - 1) == 0)
		dst = kc->client_secret, have = &kc->have_client_secret;
	else if (strncmp(line, server, sizeof(server) - 1) == 0)
		dst = kc->server_secret, have = &kc->have_server_secret;
	else
		return;
	secret = strrchr(line, ' ');
	if (!secret || hex_decode(secret + 1, dst, KTLS_SECRET_MAX, &len) < 0) {
		OPENSSL_cleanse(dst, KTLS_SECRET_MAX);
		return;
	}
	kc->secret_len = len;
	*have = true;
}

int ktls_ctx_prepare(SSL_CTX *ctx)
{
	if (global_mode == KTLS_MODE_OFF || !ulp_available)
		return 0;
	SSL_CTX_set_keylog_callback(ctx, keylog_cb);
	return 0;
}

/*
 * One call per record header read or written (before the record is
 * processed), and one per handshake message after it was written or read:
 * restart the count of the direction whose keys change.
 */
void ktls_msg_observer(int write_p, int version, int content_type, const void *buf, size_t len,
		       SSL *ssl, void *arg)
{
	struct ktls_conn *kc = conn_of(ssl);
	const uint8_t *p = buf;
	bool tls13 = SSL_version(ssl) == TLS1_3_VERSION;
	uint64_t *count;
	unsigned *epochs;

	if (!kc)
		return;
	count = write_p ? &kc->tx_records : &kc->rx_records;
	epochs = write_p ? &kc->write_epochs : &kc->read_epochs;
	switch (content_type) {
	case SSL3_RT_HEADER:
		/* OpenSSL 3.0 reports a CCS it reads only as a record header,
		 * so the TLS 1.2 epoch change is taken from the header in both
		 * directions. TLS 1.3's middlebox-compatibility CCS changes
		 * nothing. */
		if (!tls13 && len >= 1 && p[0] == SSL3_RT_CHANGE_CIPHER_SPEC) {
			*count = 0;
			if (++*epochs > 1)
				kc->rekeyed = true; /* renegotiation */
		} else {
			(*count)++;
		}
		break;
	case SSL3_RT_HANDSHAKE:
		if (!tls13 || len < 1)
			break;
		if (p[0] == SSL3_MT_FINISHED) {
			*count = 0;
			++*epochs;
		} else if (p[0] == SSL3_MT_KEY_UPDATE) {
			kc->rekeyed = true;
		}
		break;
	default:
		break;
	}
}

int ktls_conn_attach(struct ktls_conn *kc, SSL *ssl)
{
	memset(kc, 0, sizeof(*kc));
	if (ex_index < 0)
		return 0; /* kTLS off: nothing to capture */
	GUARD_OSSL(SSL_set_ex_data(ssl, ex_index, kc), ENOMEM);
	kc->ssl = ssl;
	return 0;
}

static enum ktls_decision decide(const struct ktls_conn *kc, enum ktls_mode mode)
{
	struct ktls_suite s;
	int version;

	if (mode == KTLS_MODE_OFF || !kc->ssl)
		return KTLS_DECLINE_MODE_OFF;
	if (!ulp_available)
		return KTLS_DECLINE_NO_ULP;
	version = SSL_version(kc->ssl);
	if (version != TLS1_2_VERSION && version != TLS1_3_VERSION)
		return KTLS_DECLINE_VERSION;
	if (ktls_suite_of(kc->ssl, &s) < 0)
		return KTLS_DECLINE_CIPHER;
	if (kc->rekeyed)
		return KTLS_DECLINE_REKEYED;
	if (version == TLS1_3_VERSION && !(kc->have_client_secret && kc->have_server_secret))
		return KTLS_DECLINE_NO_SECRETS;
	return KTLS_OFFLOAD;
}

static void forget_secrets(struct ktls_conn *kc)
{
	OPENSSL_cleanse(kc->client_secret, sizeof(kc->client_secret));
	OPENSSL_cleanse(kc->server_secret, sizeof(kc->server_secret));
	kc->have_client_secret = kc->have_server_secret = false;
}

enum ktls_decision ktls_conn_decide(struct ktls_conn *kc, enum ktls_mode mode)
{
	enum ktls_decision d = decide(kc, mode);

	/* Offloads are counted by ktls_conn_install when they happen. A
	 * session that stays in user space has no use for the secrets. */
	if (d != KTLS_OFFLOAD) {
		ktls_count_decision(d);
		forget_secrets(kc);
	}
	return d;
}

size_t ktls_rx_missing(const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		size_t rec;

		if (len - off < 5)
			return 5 - (len - off);
		rec = 5 + ((size_t)buf[off + 3] << 8 | buf[off + 4]);
		if (len - off < rec)
			return rec - (len - off);
		off += rec;
	}
	return 0;
}

static int install_dir(struct ktls_conn *kc, int fd, enum ktls_dir dir)
{
	union ktls_crypto_info info;
	socklen_t len;
	int rc;

	GUARD_GOTO(ktls_conn_derive(kc, dir, &info, &len), rc, out);
	if (ktls_sys->setsockopt(fd, SOL_TLS, dir == KTLS_DIR_TX ? TLS_TX : TLS_RX, &info, len) < 0)
		rc = -errno;
	kc->version = info.info.version;
	kc->cipher = info.info.cipher_type;
out:
	OPENSSL_cleanse(&info, sizeof(info));
	return rc;
}

int ktls_conn_install(struct ktls_conn *kc, int fd)
{
	int rc = 0;

	ENSURE_PTR(kc->ssl, EINVAL);
	/* A partial record or undelivered plaintext inside OpenSSL would be
	 * lost: the kernel continues at the next record boundary. */
	ENSURE(!SSL_has_pending(kc->ssl), EAGAIN);
	if (ktls_sys->setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0)
		rc = -errno;
	/* Until a key is set the ULP passes bytes through: a TX failure
	 * still leaves a working plain socket for the user-space path. */
	if (rc == 0)
		rc = install_dir(kc, fd, KTLS_DIR_TX);
	if (rc == 0) {
		kc->tx_offloaded = true;
		rc = install_dir(kc, fd, KTLS_DIR_RX);
	}
	if (rc < 0) {
		ktls_count_decision(KTLS_DECLINE_KERNEL);
		return rc;
	}
	kc->rx_offloaded = true;
	kc->suite = SSL_get_current_cipher(kc->ssl);
	ktls_count_decision(KTLS_OFFLOAD);
	ktls_count_event(KTLS_EV_HANDOFF);
	return 0;
}

void ktls_conn_release_ssl(struct ktls_conn *kc)
{
	if (kc->ssl && kc->tx_offloaded && kc->rx_offloaded)
		SSL_free_buffers(kc->ssl);
}

void ktls_conn_detach(struct ktls_conn *kc)
{
	if (!kc->ssl || !kc->tx_offloaded || !kc->rx_offloaded)
		return;
	if (ex_index >= 0) {
		SSL_set_ex_data(kc->ssl, ex_index, NULL);
	}
	SSL_set_shutdown(kc->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	kc->ssl = NULL;
}

void ktls_conn_clear(struct ktls_conn *kc)
{
	if (kc->ssl && ex_index >= 0)
		SSL_set_ex_data(kc->ssl, ex_index, NULL);
	OPENSSL_cleanse(kc, sizeof(*kc));
}
