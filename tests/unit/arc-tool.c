/*
 * arc-tool.c — a test tool, not a test: src/mime/arc on the message on
 * stdin (at most 64 MiB), for tests/e2e/test_arc_oracle.py.
 *
 *     arc-tool verify [--tempfail NAME] [--key NAME=TXT]... < message
 *         prints  cv=pass|fail|none|temperror instances=N reason="..."
 *         and, for a pass, one line per instance "i=K d=SEALER".  Key
 *         records come from --key (repeatable, also for one name); a
 *         name given none has no record; --tempfail NAME fails its
 *         lookup.
 *     arc-tool seal --key-file PEM --domain D --selector S
 *                   --cv none|pass|fail --authres PAYLOAD [--t T] < message
 *         prints the three ARC fields, then the message.
 *
 * Exit 0 when done, 1 when prepare or the seal refused (reason on
 * stderr), 2 on usage.
 */
#include "arc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IN_MAX (64u << 20)
#define KEYS_MAX 64

static int usage(void)
{
	fprintf(stderr,
		"usage: arc-tool verify [--tempfail NAME] [--key NAME=TXT]... "
		"< message\n"
		"       arc-tool seal --key-file PEM --domain D --selector S "
		"--cv none|pass|fail --authres PAYLOAD [--t T] < message\n");
	return 2;
}

static uint8_t *read_all(FILE *fp, size_t max, size_t *len_r)
{
	size_t len = 0, cap = 1 << 16;
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		abort();
	for (;;) {
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				return NULL;
			}
			cap *= 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		size_t n = fread(buf + len, 1, cap - len, fp);
		if (n == 0)
			break;
		len += n;
	}
	*len_r = len;
	return buf;
}

static int verify(int argc, char **argv, const uint8_t *msg, size_t len)
{
	const char *key_name[KEYS_MAX], *key_txt[KEYS_MAX];
	const char *tempfail[KEYS_MAX];
	size_t nkeys = 0, ntemp = 0;
	arc_verify_limits lim = {0};
	arc_verify_set *set = NULL;
	arc_verify_result r;
	arc_key_answer ans[ARC_MAX_QUERIES];
	const uint8_t *txt[ARC_MAX_QUERIES][KEYS_MAX];
	size_t tlen[ARC_MAX_QUERIES][KEYS_MAX];
	const char *err;

	for (int i = 2; i < argc; i++) {
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
		} else {
			return usage();
		}
	}
	if (arc_verify_prepare(msg, len, &lim, &set, &err) < 0) {
		fprintf(stderr, "arc-tool: %s\n", err);
		printf("cv=fail instances=0 reason=\"%s\"\n", err);
		return 1;
	}
	for (size_t q = 0; q < set->nq; q++) {
		bool temp = false;
		ans[q].n = 0;
		for (size_t k = 0; k < ntemp; k++)
			if (strcasecmp(tempfail[k], set->query[q]) == 0)
				temp = true;
		for (size_t k = 0; k < nkeys; k++)
			if (strcasecmp(key_name[k], set->query[q]) == 0) {
				txt[q][ans[q].n] = (const uint8_t *)key_txt[k];
				tlen[q][ans[q].n++] = strlen(key_txt[k]);
			}
		ans[q].txt = temp ? NULL : txt[q];
		ans[q].len = tlen[q];
	}
	arc_verify_finish(set, ans, &r);
	printf("cv=%s instances=%zu reason=\"%s\"\n", arc_cv_name(r.cv),
	       r.instances, r.reason);
	if (r.cv == ARC_CV_PASS)
		for (size_t i = 1; i <= r.instances; i++)
			printf("i=%zu d=%s\n", i, r.sealer[i]);
	arc_verify_set_free(&set);
	return 0;
}

static int seal(int argc, char **argv, const uint8_t *msg, size_t len)
{
	const char *key_file = NULL, *domain = NULL, *selector = NULL;
	const char *authres = NULL, *cvs = NULL, *err;
	unsigned long long t = 0;
	arc_cv cv;
	dkim_key *key = NULL;
	char *fields = NULL;
	uint8_t *pem;
	size_t pem_len;
	FILE *fp;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			return usage();
		if (strcmp(a, "--key-file") == 0)
			key_file = argv[++i];
		else if (strcmp(a, "--domain") == 0)
			domain = argv[++i];
		else if (strcmp(a, "--selector") == 0)
			selector = argv[++i];
		else if (strcmp(a, "--authres") == 0)
			authres = argv[++i];
		else if (strcmp(a, "--cv") == 0)
			cvs = argv[++i];
		else if (strcmp(a, "--t") == 0) {
			char *end;
			t = strtoull(argv[++i], &end, 10);
			if (*end != '\0')
				return usage();
		} else
			return usage();
	}
	if (key_file == NULL || domain == NULL || selector == NULL ||
	    authres == NULL || cvs == NULL)
		return usage();
	if (strcmp(cvs, "none") == 0)
		cv = ARC_CV_NONE;
	else if (strcmp(cvs, "pass") == 0)
		cv = ARC_CV_PASS;
	else if (strcmp(cvs, "fail") == 0)
		cv = ARC_CV_FAIL;
	else
		return usage();
	fp = fopen(key_file, "rb");
	if (fp == NULL) {
		perror(key_file);
		return 1;
	}
	pem = read_all(fp, 1 << 16, &pem_len);
	fclose(fp);
	if (pem == NULL ||
	    dkim_key_load_pem((const char *)pem, pem_len, &key, &err) < 0) {
		fprintf(stderr, "arc-tool: %s: %s\n", key_file,
			pem == NULL ? "too large" : err);
		free(pem);
		return 1;
	}
	free(pem);
	if (arc_seal(msg, len, key, domain, selector, authres, cv, t, &fields,
		     &err) < 0) {
		fprintf(stderr, "arc-tool: %s\n", err);
		dkim_key_free(&key);
		return 1;
	}
	fputs(fields, stdout);
	fwrite(msg, 1, len, stdout);
	free(fields);
	dkim_key_free(&key);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t *msg;
	size_t len;
	int rc;

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "seal") != 0)
		return usage();
	msg = read_all(stdin, IN_MAX, &len);
	if (msg == NULL) {
		fprintf(stderr, "arc-tool: message over 64 MiB\n");
		return 1;
	}
	if (strcmp(argv[1], "verify") == 0)
		rc = verify(argc, argv, msg, len);
	else
		rc = seal(argc, argv, msg, len);
	free(msg);
	return rc;
}
