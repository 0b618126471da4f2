/*
 * test-common.h — helpers shared by the cmocka unit tests: fixed
 * identities, sealing shortcuts, reading the vector files.
 * Header-only (static functions) so each test is one self-contained binary.
 */
#ifndef AMP_TEST_COMMON_H
#define AMP_TEST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#include "amp-private.h"
#include "amp.pb-c.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define T_NOW UINT64_C(1767225600) /* 2026-01-01T00:00:00Z */

static inline amp_identity *t_identity(const char *did)
{
	uint8_t seed[32], esk[32];
	amp_identity *id = NULL;
	crypto_generichash(seed, 32, (const uint8_t *)did, strlen(did),
			   (const uint8_t *)"sign", 4);
	crypto_generichash(esk, 32, (const uint8_t *)did, strlen(did),
			   (const uint8_t *)"enc", 3);
	assert_int_equal(amp_identity_from_secrets(did, seed, esk, &id, NULL),
			 AMP_OK);
	return id;
}

/* Seal body for the n identities in rcpt (public halves), created T_NOW. */
static inline void t_seal(amp_ctx *ctx, const amp_identity *from,
			  amp_identity **rcpt, size_t n, const void *body,
			  size_t len, uint64_t expires, uint8_t **env_r,
			  size_t *env_len_r)
{
	amp_public_identity pubs[16];
	const char *err = NULL;
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		pubs[i] = rcpt[i]->pub;
	amp_seal_params p = { .created = T_NOW, .expires = expires };
	amp_err e = amp_seal(ctx, from, pubs, n, &p, body, len, env_r,
			     env_len_r, &err);
	if (e != AMP_OK)
		fail_msg("amp_seal: %s: %s", amp_err_name(e), err);
}

/* Decode + open; returns the amp_err and the body on success. */
static inline amp_err t_open(amp_ctx *ctx, const uint8_t *env, size_t len,
			     const amp_identity *me,
			     const amp_public_identity *sender, uint64_t now,
			     uint8_t **body_r, size_t *body_len_r)
{
	amp_envelope *e = NULL;
	const char *err = NULL;
	amp_err r = amp_envelope_decode(env, len, &e, &err);
	if (r != AMP_OK)
		return r;
	r = amp_envelope_open(ctx, e, me, sender, now, body_r, body_len_r,
			      &err);
	amp_envelope_free(&e);
	return r;
}

/* Path of a file in the vector directory (env AMP_TEST_VECTORS). */
static inline json_t *t_load_vectors(const char *name)
{
	const char *dir = getenv("AMP_TEST_VECTORS");
	char path[4096];
	json_error_t jerr;
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	json_t *j = json_load_file(path, 0, &jerr);
	if (j == NULL)
		fail_msg("%s: %s", path, jerr.text);
	return j;
}

/* Hex string -> new buffer. */
static inline uint8_t *t_unhex(const char *hex, size_t *len_r)
{
	size_t n = strlen(hex) / 2;
	uint8_t *b = malloc(n + 1);
	assert_non_null(b);
	assert_int_equal(sodium_hex2bin(b, n + 1, hex, strlen(hex), NULL, len_r,
					NULL),
			 0);
	return b;
}

static inline void t_unhex_fixed(const char *hex, uint8_t *out, size_t n)
{
	size_t len;
	assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &len,
					NULL),
			 0);
	assert_int_equal(len, n);
}

#endif
