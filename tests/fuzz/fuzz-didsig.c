/*
 * fuzz-didsig.c — libFuzzer target for src/mime/didsig.c:
 * didsig_verify_prepare on arbitrary messages, didsig_verify_finish with
 * the target's own key, an arbitrary key from the input and no key.
 *
 * Input: byte 0 is flags (bit 0: sign the message here first with the
 * target's own node key, as did:aftersmtp:example.org:node for
 * did:aftersmtp:example.org:alice at t=1; bit 1: now = 1e9, else 0); then
 * 32 bytes of an Ed25519 public key (when the input is long enough, else
 * no input key); then the message.
 *
 * The target's key is generated at start, so no input can hold a
 * signature made with it.
 *
 * Properties:
 *  - prepare refuses only with a reason and no set; n = min(found, 4);
 *  - a field waiting for its key has canonical DIDs of one domain in
 *    sender and node;
 *  - every finish gives a final status (not PENDING, not NONE) with a
 *    reason; PASS only with crypto_ok and exactly one From; a pending
 *    field finished without key is TEMPERROR;
 *  - with the target's key nothing passes or even verifies, except the
 *    field the target made itself (index 0 when bit 0 is set and signing
 *    worked), which must pass when the message does not start with a
 *    blank (that would continue our field);
 *  - the verdict is PASS exactly when a field passed, with the index of
 *    the first one; NONE exactly when no field was found;
 *  - signing twice gives the same field (Ed25519 is deterministic), in
 *    lines of at most 78 bytes (the DIDs here are short), ending in
 *    CRLF.
 */
#include "didsig.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ALICE "did:aftersmtp:example.org:alice"
#define NODE "did:aftersmtp:example.org:node"

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-didsig: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

static uint8_t our_pk[32], our_sk[64];
static bool ready;

static void init(void)
{
	if (ready)
		return;
	if (sodium_init() < 0)
		abort();
	crypto_sign_keypair(our_pk, our_sk);
	ready = true;
}

static void check_result(const didsig_set *set, const didsig_result *r)
{
	CHECK(r->reason != NULL);
	CHECK(r->status != DIDSIG_PENDING && r->status != DIDSIG_NONE);
	if (r->status == DIDSIG_PASS)
		CHECK(r->crypto_ok && set->from_count == 1);
	CHECK(r->multiple_from == (set->from_count > 1));
}

static void check_field(const char *f)
{
	size_t n = strlen(f);
	CHECK(n >= 2 && f[n - 2] == '\r' && f[n - 1] == '\n');
	for (const char *p = f; *p != '\0';) {
		const char *nl = strstr(p, "\r\n");
		CHECK(nl != NULL);
		CHECK(nl - p <= 78); /* our DIDs are short */
		p = nl + 2;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *in_pk = NULL, *msg;
	size_t msg_len;
	uint8_t *signed_msg = NULL;
	bool signed_it = false, must_pass = false;
	const char *err = NULL;
	didsig_set *set = NULL;
	uint64_t now;

	if (size < 1)
		return 0;
	init();
	uint8_t flags = data[0];
	data++;
	size--;
	if (size >= 32) {
		in_pk = data;
		data += 32;
		size -= 32;
	}
	msg = data;
	msg_len = size;
	now = (flags & 2) ? 1000000000u : 0;

	if (flags & 1) {
		char *field = NULL, *again = NULL;
		if (didsig_sign(our_sk, ALICE, NODE, msg, msg_len, 1, &field,
				&err) == 0) {
			CHECK(didsig_sign(our_sk, ALICE, NODE, msg, msg_len, 1,
					  &again, &err) == 0);
			CHECK(strcmp(field, again) == 0);
			free(again);
			check_field(field);
			size_t fl = strlen(field);
			signed_msg = malloc(fl + msg_len + 1);
			if (signed_msg == NULL)
				abort();
			memcpy(signed_msg, field, fl);
			if (msg_len > 0)
				memcpy(signed_msg + fl, msg, msg_len);
			signed_it = true;
			must_pass = msg_len == 0 ||
				    (msg[0] != ' ' && msg[0] != '\t');
			msg = signed_msg;
			msg_len += fl;
			free(field);
		} else {
			CHECK(err != NULL && field == NULL);
		}
	}

	for (int round = 0; round < 3; round++) {
		if (didsig_verify_prepare(msg, msg_len, &set, &err) < 0) {
			CHECK(err != NULL && set == NULL);
			break;
		}
		CHECK(set->n == (set->found < DIDSIG_VERIFY_MAX
					 ? set->found
					 : DIDSIG_VERIFY_MAX));
		bool any_pass = false;
		size_t first_pass = 0;
		for (size_t i = 0; i < set->n; i++) {
			didsig_sig *sig = &set->sig[i];
			bool pending = sig->need_key;
			didsig_result r;
			if (pending) {
				size_t sl = strlen(sig->sender);
				size_t nl = strlen(sig->node);
				CHECK(didsig_did_ok(sig->sender, sl));
				CHECK(didsig_did_ok(sig->node, nl));
				const char *a = strchr(sig->sender + 14, ':');
				const char *b = strchr(sig->node + 14, ':');
				CHECK(a - sig->sender == b - sig->node);
				CHECK(memcmp(sig->sender, sig->node,
					     (size_t)(a - sig->sender)) == 0);
			} else {
				CHECK(sig->result.status != DIDSIG_PENDING);
			}
			const uint8_t *k = round == 0 ? our_pk
					   : round == 1 ? in_pk
							: NULL;
			if (round == 1 && in_pk == NULL)
				k = our_pk;
			didsig_verify_finish(set, i, k, now, &r);
			check_result(set, &r);
			if (round == 2 && pending)
				CHECK(r.status == DIDSIG_TEMPERROR);
			if (round == 0) {
				if (!(signed_it && i == 0))
					CHECK(r.status != DIDSIG_PASS &&
					      !r.crypto_ok);
				else if (must_pass && set->from_count == 1)
					CHECK(r.status == DIDSIG_PASS);
			}
			if (r.status == DIDSIG_PASS && !any_pass) {
				any_pass = true;
				first_pass = i;
			}
		}
		size_t idx = 99;
		didsig_status v = didsig_verify_verdict(set, &idx);
		CHECK((v == DIDSIG_PASS) == any_pass);
		if (any_pass)
			CHECK(idx == first_pass);
		CHECK((v == DIDSIG_NONE) == (set->found == 0));
		CHECK(idx < (set->n > 0 ? set->n : 1));
		didsig_set_free(&set);
		CHECK(set == NULL);
	}
	free(signed_msg);
	return 0;
}
