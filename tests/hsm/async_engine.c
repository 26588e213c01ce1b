/*
 * async_engine.c: a test engine whose ECDSA signatures pause, the way an
 * accelerator (Intel QAT) hands work to hardware and waits for it.
 *
 * OpenSSL's own dasync engine does this but Debian does not ship it. Load
 * with the dynamic engine (engine = dynamic, engine_ctrl = SO_PATH:this.so,
 * engine_ctrl = LOAD) and name the key "asynctest:/path/key.pem". Every
 * signature made inside an async job registers an eventfd as the job's
 * wait fd, makes it readable, and pauses the job with ASYNC_pause_job():
 * SSL_do_handshake() returns SSL_ERROR_WANT_ASYNC and nothing more happens
 * until the application polls that fd and calls it again. Outside a job the
 * signature is made at once. While the file named by MTLSD_ASYNC_ENGINE_STALL
 * exists, the fd is never made readable: a hung accelerator. Each event is appended as one line ("paused",
 * "resumed", "sync") to the file named by MTLSD_ASYNC_ENGINE_LOG, so a test
 * can tell which path a handshake took.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/async.h>
#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const char engine_id[] = "mtlsd-async-test";
static const char engine_name[] = "mtlsd test engine: ECDSA signatures pause the async job";
static EC_KEY_METHOD *pausing_method;

typedef int (*sign_fn)(int, const unsigned char *, int, unsigned char *, unsigned int *,
		       const BIGNUM *, const BIGNUM *, EC_KEY *);
typedef ECDSA_SIG *(*sign_sig_fn)(const unsigned char *, int, const BIGNUM *, const BIGNUM *, EC_KEY *);
static sign_fn default_sign;
static sign_sig_fn default_sign_sig;

static void note(const char *event)
{
	const char *path = getenv("MTLSD_ASYNC_ENGINE_LOG");
	FILE *f = path ? fopen(path, "a") : NULL;
	if (f) {
		fprintf(f, "%s\n", event);
		fclose(f);
	}
}

static void close_wait_fd(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD fd, void *custom)
{
	(void)ctx;
	(void)key;
	(void)custom;
	close(fd);
}

/* Inside a job: hand the "hardware" an fd, pause until polled readable. */
static void wait_for_accelerator(void)
{
	ASYNC_JOB *job = ASYNC_get_current_job();
	if (!job) {
		note("sync");
		return;
	}
	ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(job);
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0 || !ASYNC_WAIT_CTX_set_wait_fd(wctx, engine_id, fd, NULL, close_wait_fd)) {
		if (fd >= 0)
			close(fd);
		note("sync");
		return;
	}
	/* The "hardware" answers at once, unless the test made it hang. */
	const char *stall = getenv("MTLSD_ASYNC_ENGINE_STALL");
	uint64_t one = 1;
	if ((!stall || access(stall, F_OK) != 0) && write(fd, &one, sizeof(one)) != sizeof(one))
		note("eventfd write failed");
	note("paused");
	ASYNC_pause_job();
	note("resumed");
	OSSL_ASYNC_FD got;
	void *custom;
	if (ASYNC_WAIT_CTX_get_fd(wctx, engine_id, &got, &custom)) {
		ASYNC_WAIT_CTX_clear_fd(wctx, engine_id);
		close(got);
	}
}

static int pausing_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
			unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
	wait_for_accelerator();
	return default_sign(type, dgst, dlen, sig, siglen, kinv, r, eckey);
}

static ECDSA_SIG *pausing_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
				   const BIGNUM *r, EC_KEY *eckey)
{
	wait_for_accelerator();
	return default_sign_sig(dgst, dlen, kinv, r, eckey);
}

/* "asynctest:/path/key.pem": a PEM EC key, given the pausing method. */
static EVP_PKEY *load_privkey(ENGINE *e, const char *key_id, UI_METHOD *ui, void *cb_data)
{
	(void)ui;
	(void)cb_data;
	const char *path = strncmp(key_id, "asynctest:", 10) == 0 ? key_id + 10 : key_id;
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	EVP_PKEY *file_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	EC_KEY *ec = file_key ? EVP_PKEY_get1_EC_KEY(file_key) : NULL;
	EVP_PKEY_free(file_key);
	EVP_PKEY *pkey = ec ? EVP_PKEY_new() : NULL;
	if (!pkey || !EC_KEY_set_method(ec, pausing_method) || !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
		EVP_PKEY_free(pkey);
		EC_KEY_free(ec);
		return NULL;
	}
	(void)e;
	return pkey;
}

static int bind(ENGINE *e, const char *id)
{
	if (id && strcmp(id, engine_id) != 0)
		return 0;
	pausing_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (!pausing_method)
		return 0;
	EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), &default_sign, NULL, &default_sign_sig);
	int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
	EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), NULL, &sign_setup, NULL);
	EC_KEY_METHOD_set_sign(pausing_method, pausing_sign, sign_setup, pausing_sign_sig);
	return ENGINE_set_id(e, engine_id) && ENGINE_set_name(e, engine_name) &&
	       ENGINE_set_load_privkey_function(e, load_privkey);
}

IMPLEMENT_DYNAMIC_BIND_FN(bind)
IMPLEMENT_DYNAMIC_CHECK_FN()
