/*
 * dkim-sign-tool.c — a test tool (not installed) over src/mime/dkim-sign.h,
 * driven by tests/e2e/test_dkim.py so that python3-dkim can check our
 * signatures independently.
 *
 *   dkim-sign-tool keygen rsa|ed25519 KEYFILE
 *       generate a key with dkim_keygen, write it to KEYFILE (mode 0600,
 *       refused if it exists) and print the DNS TXT record text.
 *   dkim-sign-tool sign KEYFILE DOMAIN SELECTOR UNIXTIME
 *       read a message on stdin (at most 64 MiB), turn bare LF line ends
 *       into CRLF (as it would go on the wire), and print the
 *       DKIM-Signature field followed by that message.
 *
 * Exit 0 on success, 1 on a refused input, 2 on a usage error.
 */
#include "dkim-sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define TOOL_MAX_INPUT (64u * 1024 * 1024)

static int usage(void)
{
	fprintf(stderr, "usage: dkim-sign-tool keygen rsa|ed25519 KEYFILE\n"
			"       dkim-sign-tool sign KEYFILE DOMAIN SELECTOR "
			"UNIXTIME < msg\n");
	return 2;
}

/* Read all of fp up to max bytes into *buf_r / *len_r. */
static int read_all(FILE *fp, size_t max, char **buf_r, size_t *len_r)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	if (buf == NULL)
		abort();
	for (;;) {
		size_t n;
		if (len == cap) {
			if (cap >= max) {
				free(buf);
				return -1;
			}
			cap = cap * 2 > max ? max : cap * 2;
			buf = realloc(buf, cap + 1);
			if (buf == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
}

static int cmd_keygen(const char *alg, const char *path)
{
	char *pem = NULL, *txt = NULL;
	const char *error;
	dkim_alg a;
	int fd;
	size_t n;

	if (strcmp(alg, "rsa") == 0)
		a = DKIM_RSA2048;
	else if (strcmp(alg, "ed25519") == 0)
		a = DKIM_ED25519;
	else
		return usage();
	if (dkim_keygen(a, &pem, &txt, &error) < 0) {
		fprintf(stderr, "dkim-sign-tool: %s\n", error);
		return 1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	n = strlen(pem);
	if (fd < 0 || write(fd, pem, n) != (ssize_t)n || close(fd) < 0) {
		fprintf(stderr, "dkim-sign-tool: %s: %s\n", path,
			strerror(errno));
		dkim_pem_free(&pem);
		free(txt);
		return 1;
	}
	dkim_pem_free(&pem);
	printf("%s\n", txt);
	free(txt);
	return 0;
}

static int cmd_sign(const char *keyfile, const char *domain,
		    const char *selector, const char *when)
{
	char *pem = NULL, *in = NULL, *msg, *hdr = NULL, *end;
	size_t pem_len, in_len, len = 0;
	const char *error;
	dkim_key *k = NULL;
	unsigned long long t;
	FILE *fp;
	int rc;

	errno = 0;
	t = strtoull(when, &end, 10);
	if (errno != 0 || end == when || *end != '\0')
		return usage();
	fp = fopen(keyfile, "rb");
	if (fp == NULL) {
		fprintf(stderr, "dkim-sign-tool: %s: %s\n", keyfile,
			strerror(errno));
		return 1;
	}
	rc = read_all(fp, 65536, &pem, &pem_len);
	fclose(fp);
	if (rc < 0) {
		fprintf(stderr, "dkim-sign-tool: %s: unreadable\n", keyfile);
		return 1;
	}
	rc = dkim_key_load_pem(pem, pem_len, &k, &error);
	sodium_memzero(pem, pem_len);
	free(pem);
	if (rc < 0) {
		fprintf(stderr, "dkim-sign-tool: %s: %s\n", keyfile, error);
		return 1;
	}
	if (read_all(stdin, TOOL_MAX_INPUT, &in, &in_len) < 0) {
		fprintf(stderr, "dkim-sign-tool: input unreadable or too big\n");
		dkim_key_free(&k);
		return 1;
	}
	msg = malloc(in_len * 2 + 1);
	if (msg == NULL)
		abort();
	for (size_t i = 0; i < in_len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			msg[len++] = '\r';
		msg[len++] = in[i];
	}
	free(in);
	rc = dkim_sign(k, domain, selector, (const uint8_t *)msg, len, t,
		       &hdr, &error);
	dkim_key_free(&k);
	if (rc < 0) {
		fprintf(stderr, "dkim-sign-tool: %s\n", error);
		free(msg);
		return 1;
	}
	fputs(hdr, stdout);
	fwrite(msg, 1, len, stdout);
	free(hdr);
	free(msg);
	return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argv[2], argv[3], argv[4], argv[5]);
	return usage();
}
