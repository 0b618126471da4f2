/*
 * fuzz-dkim-verify.c — libFuzzer target for src/mime/dkim-verify.c:
 * dkim_verify_prepare on arbitrary messages, dkim_verify_finish with
 * arbitrary key records.
 *
 * Input: byte 0 is flags (bit 0: sign the message here with the target's
 * own Ed25519 key first; bit 1: also give the finish the input's key
 * record; bits 2-3: limits.max_sigs 0/1/2/8; bit 4: limits.now 1e9);
 * then the input's key record, a NUL, and the message (no NUL: all
 * message, no key record).
 *
 * The target's keys (one Ed25519, one RSA 2048) are generated at start,
 * so no input can hold a signature made with them.
 *
 * Properties:
 *  - prepare refuses only with a reason; n = min(found, max_sigs);
 *    a signature that needs a key has a query name "s._domainkey.d";
 *  - every finish gives a status other than PENDING and NOT_CHECKED and a
 *    reason; PASS only with crypto_ok, no partial, exactly one From;
 *  - with the target's own key records (and no lookup failure) no
 *    signature passes or even verifies, except the one the target made
 *    itself (index 0 when bit 0 is set), which must pass when the message has exactly one
 *    From, prepare accepted it and the message does not start with a
 *    blank (which would continue our field);
 *  - a failed lookup (txt NULL) gives TEMPERROR, no record PERMERROR.
 */
#include "dkim-sign.h"
#include "dkim-verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-dkim-verify: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

static dkim_key *ed_key;
static char *ed_txt, *rsa_txt;

static void init(void)
{
	char *pem;
	const char *err;
	if (ed_key != NULL)
		return;
	if (dkim_keygen(DKIM_ED25519, &pem, &ed_txt, &err) < 0 ||
	    dkim_key_load_pem(pem, strlen(pem), &ed_key, &err) < 0)
		abort();
	dkim_pem_free(&pem);
	if (dkim_keygen(DKIM_RSA2048, &pem, &rsa_txt, &err) < 0)
		abort();
	dkim_pem_free(&pem);
}

static void check_result(const dkim_verify_set *set,
			 const dkim_verify_result *r)
{
	CHECK(r->reason != NULL);
	CHECK(r->status != DKIM_PENDING && r->status != DKIM_NOT_CHECKED);
	if (r->status == DKIM_PASS)
		CHECK(r->crypto_ok && !r->partial && set->from_count == 1);
	CHECK(r->multiple_from == (set->from_count > 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxs[4] = {0, 1, 2, 8};
	dkim_verify_limits lim = {0};
	dkim_verify_set *set = NULL;
	const char *err = NULL;
	const uint8_t *key = NULL, *msg;
	size_t key_len = 0, msg_len;
	uint8_t *signed_msg = NULL;
	bool we_signed = false, signed_it = false;

	if (size < 1)
		return 0;
	init();
	uint8_t flags = data[0];
	data++;
	size--;
	const uint8_t *nul = memchr(data, 0, size);
	if (nul != NULL) {
		key = data;
		key_len = (size_t)(nul - data);
		msg = nul + 1;
		msg_len = size - key_len - 1;
	} else {
		msg = data;
		msg_len = size;
	}
	lim.max_sigs = maxs[(flags >> 2) & 3];
	lim.now = (flags & 16) ? 1000000000u : 0;
	if (flags & 1) {
		char *hdr = NULL;
		if (dkim_sign(ed_key, "example.org", "fuzz", msg, msg_len, 1,
			      &hdr, &err) == 0) {
			size_t hl = strlen(hdr);
			signed_msg = malloc(hl + msg_len + 1);
			if (signed_msg == NULL)
				abort();
			memcpy(signed_msg, hdr, hl);
			memcpy(signed_msg + hl, msg, msg_len);
			signed_it = true;
			we_signed = msg_len == 0 ||
				    (msg[0] != ' ' && msg[0] != '\t');
			msg = signed_msg;
			msg_len += hl;
			free(hdr);
		}
	}

	if (dkim_verify_prepare(msg, msg_len, &lim, &set, &err) < 0) {
		CHECK(err != NULL && set == NULL);
		free(signed_msg);
		return 0;
	}
	size_t maxn = lim.max_sigs == 0 ? DKIM_VERIFY_MAX : lim.max_sigs;
	CHECK(set->n == (set->found < maxn ? set->found : maxn));
	for (size_t i = 0; i < set->n; i++) {
		const dkim_verify_sig *sig = &set->sig[i];
		if (sig->need_key) {
			size_t dl = strlen(sig->d), sl = strlen(sig->s);
			CHECK(dl > 0 && sl > 0);
			CHECK(strlen(sig->query) == sl + 12 + dl);
			CHECK(memcmp(sig->query, sig->s, sl) == 0);
			CHECK(memcmp(sig->query + sl, "._domainkey.", 12) == 0);
			CHECK(strcmp(sig->query + sl + 12, sig->d) == 0);
		} else {
			CHECK(sig->result.status != DKIM_PENDING);
		}
	}

	/* Our keys: only our own signature may pass; then the input's key
	 * record; then the lookup outcomes.  Each on a fresh set. */
	for (int round = 0; round < 4; round++) {
		dkim_verify_set *s2 = NULL;
		if (round > 0 &&
		    dkim_verify_prepare(msg, msg_len, &lim, &s2, &err) < 0)
			abort(); /* the same input was accepted above */
		dkim_verify_set *cur = round == 0 ? set : s2;
		for (size_t i = 0; i < cur->n; i++) {
			const uint8_t *txt[3];
			size_t tl[3], n = 0;
			dkim_verify_result r;
			bool pending = cur->sig[i].need_key;
			if (round == 0) {
				txt[n] = (const uint8_t *)ed_txt;
				tl[n++] = strlen(ed_txt);
				txt[n] = (const uint8_t *)rsa_txt;
				tl[n++] = strlen(rsa_txt);
			} else if (round == 1) {
				if (!(flags & 2) || key == NULL)
					continue;
				txt[n] = key;
				tl[n++] = key_len;
			}
			dkim_verify_finish(cur, i, round == 3 ? NULL : txt, tl,
					   n, &r);
			check_result(cur, &r);
			if (round == 0) {
				if (we_signed && i == 0 &&
				    cur->from_count == 1)
					CHECK(r.status == DKIM_PASS);
				if (!(signed_it && i == 0))
					CHECK(r.status != DKIM_PASS &&
					      !r.crypto_ok);
			}
			if (round == 2 && pending)
				CHECK(r.status == DKIM_PERMERROR);
			if (round == 3 && pending)
				CHECK(r.status == DKIM_TEMPERROR);
		}
		if (round > 0)
			dkim_verify_set_free(&s2);
	}
	dkim_verify_set_free(&set);
	free(signed_msg);
	return 0;
}
