/*
 * fuzz-invite.c — libFuzzer target for invite tokens (np_invite_check,
 * np_invite_make; src/amp/nodeproto.c):
 *     amp-invite-v1:<expires>:<b64u(16-byte nonce)>:<b64u(16-byte mac)>
 *
 * Input: arbitrary bytes, checked as a token (a NUL-terminated copy).  If
 * there are at least 10 bytes, the first 8 (big-endian) are also the
 * expiry of a token made with np_invite_make, and bytes 8 and 9 pick a
 * byte of it to change and how.
 *
 * np_invite_make's nonce comes from libsodium's random source, which this
 * target replaces (before amp_init) by a ChaCha20 stream keyed with a hash
 * of the input, so every input runs the same way each time.
 *
 * Properties (abort() on violation):
 *  - under a key drawn from getrandom() when the process starts, no input is
 *    ever accepted (nothing the fuzzer writes carries its MAC), at any
 *    time; every refusal says why;
 *  - under the fixed key of the seeds (fuzz_invite_key), an accepted
 *    token is exactly what np_invite_make writes for its expiry and
 *    nonce: one spelling per invite (the node's replay guard hashes the
 *    token text, so a second spelling would be a second use);
 *  - an authentic token is accepted until the second before it expires
 *    and refused from then on, with the expiry it carries;
 *  - a made token is accepted with its expiry, and refused once any one
 *    of its bytes is changed.
 */
#include "fuzz-common.h"
#include "nodeproto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define T "fuzz-invite"

static uint8_t fixed_key[32], run_key[32];

/* The random source: a ChaCha20 stream under det_key, restarted for each
 * input. */
static uint8_t det_key[32];
static uint64_t det_counter;

static void det_buf(void *const buf, const size_t size)
{
	uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = { 0 };
	memcpy(nonce, &det_counter, sizeof(det_counter));
	det_counter++;
	crypto_stream_chacha20(buf, size, nonce, det_key);
}

static uint32_t det_random(void)
{
	uint32_t v;
	det_buf(&v, sizeof(v));
	return v;
}

static const char *det_name(void)
{
	return "fuzz-invite";
}

static randombytes_implementation det_impl = {
	.implementation_name = det_name,
	.random = det_random,
	.buf = det_buf,
};

static void setup(const uint8_t *data, size_t size)
{
	static int done;
	if (!done) {
		if (getrandom(run_key, sizeof(run_key), 0) != (ssize_t)sizeof(run_key) ||
		    randombytes_set_implementation(&det_impl) != 0)
			fuzz_fail(T, "cannot set up the random sources");
		fuzz_init();
		fuzz_invite_key(fixed_key);
		done = 1;
	}
	crypto_generichash(det_key, sizeof(det_key), data, size, NULL, 0);
	det_counter = 0;
}

static int check(const uint8_t key[32], const char *tok, uint64_t now,
		 uint64_t *expires_r)
{
	const char *err = NULL;
	uint64_t expires = 0;
	int r = np_invite_check(key, tok, now, &expires, &err);
	if (r != 0 && (err == NULL || *err == '\0'))
		fuzz_fail(T, "a refusal without a reason");
	if (r != 0 && r != -1)
		fuzz_fail(T, "np_invite_check returned other than 0 or -1");
	*expires_r = expires;
	return r;
}

/* The one spelling of (expires, nonce, mac) as np_invite_make writes it. */
static bool canonical(const char *tok, uint64_t expires)
{
	const char *p = tok + strlen(NP_INVITE_PREFIX);
	const char *c1 = strchr(p, ':');
	const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	uint8_t nonce[16], mac[16];
	size_t l1, l2;
	char want[NP_INVITE_MAX], n64[32], m64[32];
	if (c2 == NULL ||
	    sodium_base642bin(nonce, 16, c1 + 1, (size_t)(c2 - c1 - 1), NULL, &l1,
			      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    sodium_base642bin(mac, 16, c2 + 1, strlen(c2 + 1), NULL, &l2, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    l1 != 16 || l2 != 16)
		return false;
	sodium_bin2base64(n64, sizeof(n64), nonce, 16,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(m64, sizeof(m64), mac, 16,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	int n = snprintf(want, sizeof(want), NP_INVITE_PREFIX "%llu:%s:%s",
			 (unsigned long long)expires, n64, m64);
	return n > 0 && (size_t)n < sizeof(want) && strcmp(want, tok) == 0;
}

static void check_authentic(const char *tok, uint64_t expires)
{
	uint64_t e = 0;
	if (!canonical(tok, expires))
		fuzz_fail(T, "an invite accepted in a second spelling");
	if (expires > 0 && (check(fixed_key, tok, expires - 1, &e) != 0 ||
			    e != expires))
		fuzz_fail(T, "an invite refused before it expires");
	if (check(fixed_key, tok, expires, &e) == 0)
		fuzz_fail(T, "an invite accepted when it expires");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup(data, size);
	char *tok = malloc(size + 1);
	if (tok == NULL)
		abort();
	memcpy(tok, data, size);
	tok[size] = '\0';
	uint64_t e;

	if (check(run_key, tok, 0, &e) == 0 ||
	    check(run_key, tok, FUZZ_NOW, &e) == 0)
		fuzz_fail(T, "an invite accepted under a key it was not made with");
	if (check(fixed_key, tok, 0, &e) == 0)
		check_authentic(tok, e);
	else if (check(fixed_key, tok, FUZZ_NOW, &e) == 0)
		fuzz_fail(T, "accepted at FUZZ_NOW but not at 0");
	free(tok);

	if (size < 10)
		return 0;
	uint64_t expires = 0;
	for (int i = 0; i < 8; i++)
		expires = expires << 8 | data[i];
	char made[NP_INVITE_MAX];
	if (np_invite_make(fixed_key, expires, made) != 0)
		fuzz_fail(T, "np_invite_make failed");
	if (check(fixed_key, made, 0, &e) == 0) {
		if (e != expires)
			fuzz_fail(T, "a made invite carries another expiry");
		check_authentic(made, expires);
	} else if (expires != 0) {
		fuzz_fail(T, "a made invite is refused");
	}
	size_t len = strlen(made);
	made[data[8] % len] ^= (char)(data[9] | 1);
	if (check(fixed_key, made, 0, &e) == 0)
		fuzz_fail(T, "a changed invite is accepted");
	return 0;
}
