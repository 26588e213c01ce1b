/*
 * doctor_render.c: mtlsctl doctor's report as text (one line per check, for
 * people) or JSON (for monitoring and for the VM test).
 */
#include "doctor.h"

#include <string.h>

#include "safetext.h"

void doctor_print_text(FILE *out, const struct doctor_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct doctor_result *r = &rep->r[i];
		fprintf(out, "%-4s  %-42s  %s%s%s\n", doctor_status_name(r->status), r->name, r->detail,
			r->remedy[0] ? "; fix: " : "", r->remedy);
	}
}

/* "key":"escaped value" into buf; false when it does not fit. */
static bool put_field(char *buf, size_t cap, size_t *off, const char *key, const char *val, bool last)
{
	int w = snprintf(buf + *off, cap - *off, "\"%s\":", key);
	if (w < 0 || (size_t)w >= cap - *off)
		return false;
	*off += (size_t)w;
	if (json_put_string(buf, cap, off, val, strlen(val)) < 0)
		return false;
	if (!last && *off + 1 < cap) {
		buf[(*off)++] = ',';
		buf[*off] = '\0';
	}
	return true;
}

void doctor_print_json(FILE *out, const struct doctor_report *rep)
{
	unsigned count[DOCTOR_FAIL + 1] = { 0 };
	char obj[2048];

	fprintf(out, "{\"checks\":[");
	for (size_t i = 0; i < rep->n; i++) {
		const struct doctor_result *r = &rep->r[i];
		size_t off = 1;
		strcpy(obj, "{");
		/* Every field is bounded (256 bytes, escaped at most 6x): obj fits. */
		if (!put_field(obj, sizeof(obj), &off, "name", r->name, false) ||
		    !put_field(obj, sizeof(obj), &off, "status", doctor_status_name(r->status), false) ||
		    !put_field(obj, sizeof(obj), &off, "detail", r->detail, false) ||
		    !put_field(obj, sizeof(obj), &off, "remedy", r->remedy, true))
			continue;
		fprintf(out, "%s%s}", i ? "," : "", obj);
		count[r->status]++;
	}
	fprintf(out, "],\"summary\":{\"pass\":%u,\"skip\":%u,\"warn\":%u,\"fail\":%u},\"exit\":%d}\n",
		count[DOCTOR_PASS], count[DOCTOR_SKIP], count[DOCTOR_WARN], count[DOCTOR_FAIL],
		doctor_exit_code(rep));
}
