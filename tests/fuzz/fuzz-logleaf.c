/*
 * fuzz-logleaf.c — libFuzzer target for the transparency log's leaves
 * (amp_log_leaf_decode, amp_log_leaf_encode, amp_log_identity_apply;
 * PROTOCOL.md §11.2, AMP-R-060).
 *
 * Input: one encoded leaf, as a node serves it in log_entries.
 *
 * Properties (abort() on violation):
 *  - decode fails => an error message, and *l_r untouched;
 *  - decode succeeds => the input is at most 512 bytes, starts with
 *    version 1, and encode(decode(x)) == x byte for byte (the decoder is
 *    strict: one spelling per leaf); a smaller buffer gives AMP_E_TOO_LARGE;
 *  - identity_apply of the leaf, from an empty state and from a state one
 *    version behind / at its version with a fixed key: an error leaves the
 *    state unchanged and has a message; success only for register, rotate
 *    or revoke whose signatures verify with the keys AMP-R-060 names;
 *  - the same leaf re-signed with the fixed keys (self_sig by a new key,
 *    prev_sig / revoke sig by the state's key) is accepted from the state
 *    it follows, and gives the version, keys and time of the leaf.
 */
#include "fuzz-common.h"

#include "amp/amp-log.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-logleaf"

typedef struct lf_key {
	uint8_t pk[32], sk[64];
} lf_key;

static lf_key k_old, k_new;

static void lf_init(void)
{
	static int done;
	uint8_t seed[32];
	if (done)
		return;
	fuzz_init();
	memset(seed, 0x31, sizeof(seed));
	crypto_sign_seed_keypair(k_old.pk, k_old.sk, seed);
	memset(seed, 0x32, sizeof(seed));
	crypto_sign_seed_keypair(k_new.pk, k_new.sk, seed);
	done = 1;
}

/* apply l to *st; check "unchanged on error" and "success only when the
 * signatures verify"; returns the result. */
static amp_err lf_apply(amp_log_identity *st, const amp_log_leaf *l)
{
	amp_log_identity before = *st;
	const char *err = NULL;
	amp_err e = amp_log_identity_apply(st, l, &err);
	if (e != AMP_OK) {
		if (err == NULL)
			fuzz_fail(T, "identity_apply failed without a message");
		if (memcmp(&before, st, sizeof(before)) != 0)
			fuzz_fail(T, "identity_apply changed the state on error");
		return e;
	}
	if (before.revoked)
		fuzz_fail(T, "a leaf was accepted after a revoke");
	if (before.exists && memcmp(before.subject, l->subject, 32) != 0)
		fuzz_fail(T, "another subject's leaf was accepted");
	switch (l->type) {
	case AMP_LOG_REGISTER:
		if (before.exists || l->version != 0 ||
		    !amp_log_verify_key(l->sign_pk, l->subject, 0, l->sign_pk,
					l->enc_pk, l->sig))
			fuzz_fail(T, "a bad register leaf was accepted");
		break;
	case AMP_LOG_ROTATE:
		if (!before.exists ||
		    (uint64_t)l->version != (uint64_t)before.version + 1 ||
		    !amp_log_verify_key(l->sign_pk, l->subject, l->version,
					l->sign_pk, l->enc_pk, l->sig) ||
		    !amp_log_verify_key(before.sign_pk, l->subject, l->version,
					l->sign_pk, l->enc_pk, l->prev_sig))
			fuzz_fail(T, "a bad rotate leaf was accepted");
		break;
	case AMP_LOG_REVOKE:
		if (!before.exists || l->version != before.version ||
		    !amp_log_verify_revoke(before.sign_pk, l->subject,
					   l->version, l->sig) ||
		    !st->revoked)
			fuzz_fail(T, "a bad revoke leaf was accepted");
		return e;
	default:
		fuzz_fail(T, "a receipt was accepted as a key change");
	}
	if (!st->exists || st->version != l->version ||
	    memcmp(st->sign_pk, l->sign_pk, 32) != 0 ||
	    memcmp(st->enc_pk, l->enc_pk, 32) != 0 || st->since != l->time ||
	    memcmp(st->subject, l->subject, 32) != 0)
		fuzz_fail(T, "the state does not hold the accepted key");
	return e;
}

/* The state a leaf of version v follows, keyed with k_old. */
static void lf_state(amp_log_identity *st, const amp_log_leaf *l, uint32_t v)
{
	memset(st, 0, sizeof(*st));
	st->exists = true;
	st->version = v;
	memcpy(st->subject, l->subject, 32);
	memcpy(st->sign_pk, k_old.pk, 32);
	memset(st->enc_pk, 0x77, 32);
	st->since = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	amp_log_leaf l, sentinel;
	uint8_t out[AMP_LOG_LEAF_MAX];
	size_t len;
	const char *err = NULL;
	amp_log_identity st;

	lf_init();
	memset(&sentinel, 0xa5, sizeof(sentinel));
	l = sentinel;
	amp_err e = amp_log_leaf_decode(data, size, &l, &err);
	if (e != AMP_OK) {
		if (err == NULL)
			fuzz_fail(T, "decode failed without a message");
		if (memcmp(&l, &sentinel, sizeof(l)) != 0)
			fuzz_fail(T, "decode wrote its output on failure");
		return 0;
	}
	if (size > AMP_LOG_LEAF_MAX || size < 2 || data[0] != 1)
		fuzz_fail(T, "decode accepted an impossible leaf");
	if (amp_log_leaf_encode(&l, out, sizeof(out), &len) != AMP_OK)
		fuzz_fail(T, "a decoded leaf does not encode");
	if (len != size || memcmp(out, data, size) != 0)
		fuzz_fail(T, "encode(decode(x)) != x");
	if (amp_log_leaf_encode(&l, out, size - 1, &len) != AMP_E_TOO_LARGE)
		fuzz_fail(T, "encode into a short buffer did not refuse");
	/* every shorter prefix is refused */
	for (size_t cut = size > 64 ? size - 64 : 0; cut < size; cut++)
		if (amp_log_leaf_decode(data, cut, NULL, NULL) == AMP_OK)
			fuzz_fail(T, "a prefix of a leaf decoded");

	/* as it is */
	memset(&st, 0, sizeof(st));
	lf_apply(&st, &l);
	if (l.type != AMP_LOG_RECEIPT) {
		lf_state(&st, &l, l.type == AMP_LOG_REVOKE ? l.version :
							     l.version - 1);
		lf_apply(&st, &l);
		st.revoked = true;
		lf_apply(&st, &l);
	}

	/* re-signed with the fixed keys: must be accepted */
	amp_log_leaf r = l;
	switch (l.type) {
	case AMP_LOG_REGISTER:
		memcpy(r.sign_pk, k_new.pk, 32);
		amp_log_sign_key(k_new.sk, r.subject, 0, r.sign_pk, r.enc_pk,
				 r.sig);
		memset(&st, 0, sizeof(st));
		break;
	case AMP_LOG_ROTATE:
		memcpy(r.sign_pk, k_new.pk, 32);
		amp_log_sign_key(k_new.sk, r.subject, r.version, r.sign_pk,
				 r.enc_pk, r.sig);
		amp_log_sign_key(k_old.sk, r.subject, r.version, r.sign_pk,
				 r.enc_pk, r.prev_sig);
		lf_state(&st, &r, r.version - 1);
		break;
	case AMP_LOG_REVOKE:
		amp_log_sign_revoke(k_old.sk, r.subject, r.version, r.sig);
		lf_state(&st, &r, r.version);
		break;
	default:
		return 0;
	}
	if (lf_apply(&st, &r) != AMP_OK)
		fuzz_fail(T, "a correctly signed leaf was refused");
	/* never twice: no second register, no reused version, nothing
	 * after a revoke */
	if (lf_apply(&st, &r) == AMP_OK)
		fuzz_fail(T, "a leaf was accepted twice");
	return 0;
}
