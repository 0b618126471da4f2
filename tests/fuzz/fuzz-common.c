/*
 * fuzz-common.c — helpers shared by the libFuzzer targets and make-seeds:
 * one-time library initialisation, the fixed identities (alice, bob, carol
 * and the node of example.org) made with amp_identity_from_secrets from
 * constant seeds, and the fixed node-protocol session values.
 *
 * Not thread-safe: libFuzzer calls a target from one thread.  The
 * identities are never freed; they stay reachable through static pointers
 * until exit, which LeakSanitizer does not count as a leak.
 */
#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const dids[] = {
	[FUZZ_ALICE] = FUZZ_DID_ALICE,
	[FUZZ_BOB] = FUZZ_DID_BOB,
	[FUZZ_CAROL] = FUZZ_DID_CAROL,
	[FUZZ_NODE] = FUZZ_DID_NODE,
};
#define N_WHO (sizeof(dids) / sizeof(dids[0]))

void fuzz_fail(const char *target, const char *what)
{
	fprintf(stderr, "%s: property violated: %s\n", target, what);
	abort();
}

void fuzz_init(void)
{
	static int done;

	if (done)
		return;
	if (amp_init() != AMP_OK)
		fuzz_fail("fuzz", "amp_init failed");
	done = 1;
}

/* Seeds are fixed patterns, distinct per identity and per key. */
void fuzz_secrets(fuzz_who who, uint8_t sign_seed[32], uint8_t enc_sk[32])
{
	for (unsigned i = 0; i < 32; i++) {
		sign_seed[i] = (uint8_t)(0x10 * (unsigned)who + i);
		enc_sk[i] = (uint8_t)(0x80 + 0x10 * (unsigned)who + i);
	}
}

const amp_identity *fuzz_identity(fuzz_who who)
{
	static amp_identity *ids[N_WHO];
	uint8_t seed[32], esk[32];
	const char *err = NULL;

	if ((unsigned)who >= N_WHO)
		fuzz_fail("fuzz", "no such fixed identity");
	if (ids[who] != NULL)
		return ids[who];
	fuzz_init();
	fuzz_secrets(who, seed, esk);
	if (amp_identity_from_secrets(dids[who], seed, esk, &ids[who], &err) !=
	    AMP_OK)
		fuzz_fail("fuzz", err != NULL ? err : "cannot make identity");
	return ids[who];
}

void fuzz_session(uint8_t x[32], uint8_t challenge[32])
{
	for (unsigned i = 0; i < 32; i++) {
		x[i] = (uint8_t)(0x5a ^ i);
		challenge[i] = (uint8_t)(0xc3 ^ (7 * i));
	}
}

void fuzz_invite_key(uint8_t key[32])
{
	for (unsigned i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x3c + 3 * i);
}
