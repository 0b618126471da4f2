/*
 * dkim-verify-tool.c — a test tool, not a test: verifies the DKIM
 * signatures of the message on stdin (at most 64 MiB) with
 * src/mime/dkim-verify and prints one line per DKIM-Signature field, top
 * first:
 *     d=DOMAIN s=SELECTOR RESULT REASON
 * (RESULT pass, fail, permerror, temperror, neutral or not-checked; "-"
 * for a d= or s= that did not parse).  Key records come from the command
 * line; a query name given no --key has no record (NXDOMAIN).
 *
 *     dkim-verify-tool [--now UNIXTIME] [--tempfail NAME]
 *                      [--key NAME=TXT]... < message
 *
 * --key may repeat, also for one name (several TXT records).  --tempfail
 * NAME makes the lookup of NAME fail (temperror).  Exit 0 when the message
 * was read and parsed, 1 when prepare refused it, 2 on usage.  Used by
 * tests/e2e/test_dkim_oracle.py.
 */
#include "dkim-verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IN_MAX (64u << 20)
#define KEYS_MAX 64

static int usage(void)
{
	fprintf(stderr, "usage: dkim-verify-tool [--now UNIXTIME] "
			"[--tempfail NAME] [--key NAME=TXT]... < message\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *key_name[KEYS_MAX], *key_txt[KEYS_MAX];
	const char *tempfail[KEYS_MAX];
	size_t nkeys = 0, ntemp = 0, len = 0, cap = 1 << 16;
	dkim_verify_limits lim = {0};
	dkim_verify_set *set = NULL;
	const char *err;
	uint8_t *msg;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0 && i + 1 < argc &&
		    nkeys < KEYS_MAX) {
			char *eq = strchr(argv[++i], '=');
			if (eq == NULL)
				return usage();
			*eq = '\0';
			key_name[nkeys] = argv[i];
			key_txt[nkeys++] = eq + 1;
		} else if (strcmp(argv[i], "--tempfail") == 0 && i + 1 < argc &&
			   ntemp < KEYS_MAX) {
			tempfail[ntemp++] = argv[++i];
		} else if (strcmp(argv[i], "--now") == 0 && i + 1 < argc) {
			char *end;
			lim.now = strtoull(argv[++i], &end, 10);
			if (*end != '\0')
				return usage();
		} else {
			return usage();
		}
	}
	msg = malloc(cap);
	if (msg == NULL)
		abort();
	for (;;) {
		if (len == cap) {
			if (cap >= IN_MAX) {
				fprintf(stderr, "message over 64 MiB\n");
				return 1;
			}
			cap *= 2;
			msg = realloc(msg, cap);
			if (msg == NULL)
				abort();
		}
		size_t n = fread(msg + len, 1, cap - len, stdin);
		if (n == 0)
			break;
		len += n;
	}
	if (dkim_verify_prepare(msg, len, &lim, &set, &err) < 0) {
		printf("refused %s\n", err);
		free(msg);
		return 1;
	}
	for (size_t i = 0; i < set->n; i++) {
		dkim_verify_sig *sig = &set->sig[i];
		const uint8_t *txt[KEYS_MAX];
		size_t tl[KEYS_MAX], n = 0;
		bool temp = false;
		dkim_verify_result r;

		for (size_t k = 0; sig->need_key && k < ntemp; k++)
			if (strcasecmp(tempfail[k], sig->query) == 0)
				temp = true;
		for (size_t k = 0; sig->need_key && k < nkeys; k++)
			if (strcasecmp(key_name[k], sig->query) == 0) {
				txt[n] = (const uint8_t *)key_txt[k];
				tl[n++] = strlen(key_txt[k]);
			}
		dkim_verify_finish(set, i, temp ? NULL : txt, tl, n, &r);
		printf("d=%s s=%s %s %s\n", sig->d[0] ? sig->d : "-",
		       sig->s[0] ? sig->s : "-", dkim_status_name(r.status),
		       r.reason);
	}
	for (size_t i = set->n; i < set->found; i++)
		printf("d=- s=- not-checked over the limit of %d\n",
		       DKIM_VERIFY_MAX);
	dkim_verify_set_free(&set);
	free(msg);
	return 0;
}
