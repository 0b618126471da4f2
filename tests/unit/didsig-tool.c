/*
 * didsig-tool.c — a test tool, not a test: signs or verifies the
 * AMP-DID-Signature of the message on stdin (at most 64 MiB) with
 * src/mime/didsig, for tests/e2e/test_didsig_oracle.py.
 *
 *     didsig-tool sign --seed HEX32 --did SENDER --node NODE [--t UNIXTIME]
 *         prints the field followed by the message (t= 0 by default);
 *     didsig-tool verify [--pk HEX32] [--now UNIXTIME] < message
 *         prints "RESULT REASON" (RESULT pass, fail, permerror,
 *         temperror or none): the message's verdict and the reason of the
 *         field it comes from.  Every node DID resolves to --pk; without
 *         --pk no node resolves (temperror).
 *
 * HEX32: 32 bytes in 64 hex digits (the Ed25519 seed, or public key).
 * Exit 0 when the message was read and signed or verified (whatever the
 * result), 1 when didsig refused it, 2 on usage.
 */
#include "didsig.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN_MAX (64u << 20)

static int usage(void)
{
	fprintf(stderr,
		"usage: didsig-tool sign --seed HEX32 --did DID --node DID "
		"[--t UNIXTIME] < message\n"
		"       didsig-tool verify [--pk HEX32] [--now UNIXTIME] "
		"< message\n");
	return 2;
}

static int hex32(const char *s, uint8_t out[32])
{
	size_t n = 0;
	if (strlen(s) != 64 ||
	    sodium_hex2bin(out, 32, s, 64, NULL, &n, NULL) != 0 || n != 32)
		return -1;
	return 0;
}

static int num(const char *s, uint64_t *v_r)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	*v_r = strtoull(s, &end, 10);
	return *end == '\0' ? 0 : -1;
}

static uint8_t *read_all(size_t *len_r)
{
	size_t len = 0, cap = 1 << 16;
	uint8_t *msg = malloc(cap);
	if (msg == NULL)
		abort();
	for (;;) {
		if (len == cap) {
			if (cap >= IN_MAX) {
				free(msg);
				return NULL;
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
	*len_r = len;
	return msg;
}

int main(int argc, char **argv)
{
	const char *did = NULL, *node = NULL, *err;
	uint8_t seed[32], pk[32], sk[64];
	bool have_seed = false, have_pk = false;
	uint64_t t = 0, now = 0;
	uint8_t *msg;
	size_t len;
	int sign;

	if (sodium_init() < 0)
		abort();
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "sign") == 0)
		sign = 1;
	else if (strcmp(argv[1], "verify") == 0)
		sign = 0;
	else
		return usage();
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL)
			return usage();
		i++;
		if (sign && strcmp(o, "--seed") == 0) {
			if (hex32(v, seed) < 0)
				return usage();
			have_seed = true;
		} else if (sign && strcmp(o, "--did") == 0) {
			did = v;
		} else if (sign && strcmp(o, "--node") == 0) {
			node = v;
		} else if (sign && strcmp(o, "--t") == 0) {
			if (num(v, &t) < 0)
				return usage();
		} else if (!sign && strcmp(o, "--pk") == 0) {
			if (hex32(v, pk) < 0)
				return usage();
			have_pk = true;
		} else if (!sign && strcmp(o, "--now") == 0) {
			if (num(v, &now) < 0)
				return usage();
		} else {
			return usage();
		}
	}
	if (sign && (!have_seed || did == NULL || node == NULL))
		return usage();
	msg = read_all(&len);
	if (msg == NULL) {
		fprintf(stderr, "message over 64 MiB\n");
		return 1;
	}
	if (sign) {
		char *field = NULL;
		crypto_sign_seed_keypair(pk, sk, seed);
		int rc = didsig_sign(sk, did, node, msg, len, t, &field, &err);
		sodium_memzero(sk, sizeof(sk));
		sodium_memzero(seed, sizeof(seed));
		if (rc < 0) {
			printf("refused %s\n", err);
			free(msg);
			return 1;
		}
		fwrite(field, 1, strlen(field), stdout);
		fwrite(msg, 1, len, stdout);
		free(field);
	} else {
		didsig_set *set = NULL;
		didsig_result r;
		size_t idx;
		if (didsig_verify_prepare(msg, len, &set, &err) < 0) {
			printf("refused %s\n", err);
			free(msg);
			return 1;
		}
		for (size_t i = 0; i < set->n; i++)
			didsig_verify_finish(set, i, have_pk ? pk : NULL, now,
					     &r);
		didsig_status st = didsig_verify_verdict(set, &idx);
		printf("%s %s\n", didsig_status_name(st),
		       st == DIDSIG_NONE ? "no AMP-DID-Signature field"
					 : set->sig[idx].result.reason);
		didsig_set_free(&set);
	}
	free(msg);
	return 0;
}
