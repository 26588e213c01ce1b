/*
 * config_flags.c: mtlsd's command-line flags, applied on top of the file.
 *
 * A flag is a key of the tables in config.c with '-' for '_' (and
 * --client-ca for the partner's ca): [mtlsd] keys set the daemon,
 * --cert/--key fill server certificates, and partner keys fill the partner
 * named "default", the single-partner case. A repeatable flag (--listen,
 * --crl, --allow-*) replaces what the file gave the first time it appears and
 * accumulates after that; config->flag_resets remembers which already did.
 */
#include "config_internal.h"

#include <stdio.h>
#include <string.h>

#define FLAG_RESET_PARTNER_BASE MAX_SECTION_KEYS
#define FLAG_RESET_CERTS (UINT64_C(1) << 63)

/* Key `name` of a section kind's table, and its index there, or NULL. */
static const struct key_desc *find_key(enum section_kind kind, const char *name, size_t *idx)
{
	size_t n;
	const struct key_desc *keys = config_section_keys(kind, &n);

	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

/*
 * --cert and --key come in pairs, in either order: each fills the newest
 * server certificate still missing that half, or starts a new one. The
 * first of them replaces the [server_cert] sections of the file.
 */
static int flag_server_cert(struct parse_state *ps, const struct key_desc *k, const char *value,
			    char *why, size_t wl)
{
	struct mtlsd_config *cfg = ps->cfg;

	if (!(cfg->flag_resets & FLAG_RESET_CERTS)) {
		for (size_t i = 0; i < cfg->n_certs; i++) {
			free(cfg->certs[i].cert_path);
			free(cfg->certs[i].key_path);
		}
		memset(cfg->certs, 0, sizeof(cfg->certs));
		cfg->n_certs = 0;
		cfg->flag_resets |= FLAG_RESET_CERTS;
	}
	struct cfg_server_cert *c = cfg->n_certs ? &cfg->certs[cfg->n_certs - 1] : NULL;
	if (!c || *(char **)((char *)c + k->offset) != NULL) {
		if (cfg->n_certs == CFG_MAX_SERVER_CERTS) {
			snprintf(why, wl, "more than %d server certificates; one per key type is enough",
				 CFG_MAX_SERVER_CERTS);
			return -E2BIG;
		}
		c = &cfg->certs[cfg->n_certs++];
	}
	return config_apply_value(ps, k, c, value, why, wl);
}

int config_apply_flag(struct mtlsd_config *cfg, const char *name, const char *value,
		      char *err, size_t errlen)
{
	struct parse_state ps = { .cfg = cfg };
	const struct key_desc *k;
	char key[64], why[512] = "";
	void *obj = cfg;
	uint64_t bit = 0;
	bool is_server_cert = false;
	size_t idx;
	int rc;

	if (strlen(name) >= sizeof(key)) {
		snprintf(err, errlen, "--%s: unknown option", name);
		return -EINVAL;
	}
	for (size_t i = 0; (key[i] = name[i] == '-' ? '_' : name[i]) != '\0'; i++)
		;
	if (strcmp(key, "client_ca") == 0)
		strcpy(key, "ca");

	if ((k = find_key(SEC_MTLSD, key, &idx))) {
		bit = UINT64_C(1) << idx;
	} else if ((k = find_key(SEC_SERVER_CERT, key, &idx))) {
		is_server_cert = true;
	} else if ((k = find_key(SEC_PARTNER, key, &idx))) {
		obj = config_partner_find(cfg, "default");
		if (!obj)
			obj = config_partner_add(cfg, "default", 0);
		ENSURE(obj != NULL, ENOMEM);
		bit = UINT64_C(1) << (FLAG_RESET_PARTNER_BASE + idx);
	} else {
		snprintf(err, errlen, "--%s: unknown option; see mtlsd --help", name);
		return -EINVAL;
	}
	if (!value && k->kind == V_BOOL)
		value = "yes";
	if (!value) {
		snprintf(err, errlen, "--%s: needs a value", name);
		return -EINVAL;
	}

	if (is_server_cert) {
		rc = flag_server_cert(&ps, k, value, why, sizeof(why));
	} else {
		/* A repeatable flag replaces what the file gave, then accumulates. */
		if (k->repeatable && !(cfg->flag_resets & bit)) {
			if (k->kind == V_LISTEN)
				cfg->n_listen = 0;
			else
				config_clear_field(k, (char *)obj + k->offset);
			cfg->flag_resets |= bit;
		}
		rc = config_apply_value(&ps, k, obj, value, why, sizeof(why));
	}
	if (rc < 0)
		snprintf(err, errlen, "--%s: %s", name, why[0] ? why : strerror(-rc));
	return rc;
}

size_t config_list_flags(struct config_flag *out, size_t cap)
{
	static const enum section_kind kinds[] = { SEC_MTLSD, SEC_SERVER_CERT, SEC_PARTNER };
	size_t count = 0;

	for (size_t s = 0; s < ARRAY_SIZE(kinds); s++) {
		size_t n;
		const struct key_desc *keys = config_section_keys(kinds[s], &n);
		for (size_t i = 0; i < n; i++) {
			struct config_flag f = { .is_bool = keys[i].kind == V_BOOL };
			/* The partner's CA is --client-ca: "--ca" alone would be
			 * ambiguous next to the server's --cert. */
			const char *key = kinds[s] == SEC_PARTNER && strcmp(keys[i].name, "ca") == 0 ?
						  "client_ca" : keys[i].name;
			for (size_t j = 0; key[j] && j < sizeof(f.name) - 1; j++)
				f.name[j] = key[j] == '_' ? '-' : key[j];
			if (count < cap)
				out[count] = f;
			count++;
		}
	}
	return count;
}
