/*
 * fuzz-envelope.c — libFuzzer target for the envelope decoder
 * (amp_envelope_decode, PROTOCOL.md §5.6 steps 1-3) and everything a
 * receiver does after it: header accessors, signature and time checks,
 * unwrap, decrypt, unpad and bounded decompression (steps 4-9), and the
 * replay guard (§5.7).
 *
 * Input: one binary envelope, arbitrary bytes.  The verifying and opening
 * identity is fixed (fuzz-common.h: alice, used as both the sender's public
 * identity and "me") and so is the clock (FUZZ_NOW), so every execution is
 * deterministic.  Mutated inputs almost never carry a valid signature; the
 * paths behind it are reached by the seeds in corpus/envelope, which
 * make-seeds seals and signs with alice's fixed keys.
 *
 * Properties (abort() on violation):
 *  - amp_envelope_recipient(i) is a non-NULL DID for i < n_recipients and
 *    NULL at n_recipients; the header fields obey §5.1's bounds.
 *  - amp_envelope_open succeeds only if amp_envelope_verify does, and the
 *    body it releases is at most AMP_BODY_MAX bytes.
 *  - the replay guard accepts an id once, then refuses it (AMP_E_REPLAY).
 */
#include "fuzz-common.h"

#include <stdlib.h>
#include <string.h>

#define T "fuzz-envelope"

static void check_info(const amp_envelope *env, amp_envelope_info *info)
{
	amp_envelope_get_info(env, info);
	if (info->version != AMP_PROTOCOL_VERSION)
		fuzz_fail(T, "decoded envelope has version != 1");
	if (info->n_recipients == 0 || info->n_recipients > AMP_RECIPIENTS_MAX)
		fuzz_fail(T, "decoded envelope has 0 or > 1000 recipients");
	if (info->sender == NULL || info->envelope_id == NULL ||
	    info->content_type == NULL)
		fuzz_fail(T, "decoded envelope lacks sender, id or content type");
	if (strlen(info->sender) > AMP_DID_MAX ||
	    strlen(info->content_type) > AMP_CONTENT_TYPE_MAX)
		fuzz_fail(T, "decoded envelope has an over-long string");
	if (info->expires != 0 && info->expires <= info->created)
		fuzz_fail(T, "decoded envelope expires before it was created");
	if ((unsigned)info->lane > AMP_LANE_BULK)
		fuzz_fail(T, "decoded envelope has an unknown lane");
	if (info->padded_size < 256 || info->padded_size > AMP_PADDED_MAX)
		fuzz_fail(T, "decoded envelope has padded_size out of bounds");
	for (size_t i = 0; i < info->n_recipients; i++) {
		const char *r = amp_envelope_recipient(env, i);
		if (r == NULL || strlen(r) > AMP_DID_MAX)
			fuzz_fail(T, "recipient i < n is NULL or over-long");
	}
	if (amp_envelope_recipient(env, info->n_recipients) != NULL)
		fuzz_fail(T, "recipient n_recipients is not NULL");
}

static void check_replay(const amp_envelope *env)
{
	amp_replay_guard *g = NULL;
	const char *err = NULL;

	if (amp_replay_guard_create(2, 3600, &g) != AMP_OK)
		fuzz_fail(T, "cannot create replay guard");
	if (amp_replay_guard_check(g, env, FUZZ_NOW, &err) != AMP_OK)
		fuzz_fail(T, "replay guard refused an id it never saw");
	if (amp_replay_guard_check(g, env, FUZZ_NOW, &err) != AMP_E_REPLAY)
		fuzz_fail(T, "replay guard accepted the same id twice");
	amp_replay_guard_destroy(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static amp_ctx *ctx;
	const amp_identity *me = fuzz_identity(FUZZ_ALICE);
	amp_envelope *env = NULL;
	amp_envelope_info info;
	const char *err = NULL;
	uint8_t *body = NULL;
	size_t body_len = 0;

	/* One small cache for the process, so amp-cache.c runs too. */
	if (ctx == NULL && amp_ctx_create(4, &ctx) != AMP_OK)
		fuzz_fail(T, "cannot create amp_ctx");

	if (amp_envelope_decode(data, size, &env, &err) != AMP_OK)
		return 0;
	check_info(env, &info);

	amp_err ve = amp_envelope_verify(env, &me->pub, FUZZ_NOW, &err);
	amp_err oe = amp_envelope_open(ctx, env, me, &me->pub, FUZZ_NOW, &body,
				       &body_len, &err);
	if (oe == AMP_OK) {
		if (ve != AMP_OK)
			fuzz_fail(T, "open succeeded where verify failed");
		if (body_len > AMP_BODY_MAX)
			fuzz_fail(T, "open released more than 32 MiB");
		amp_free(body);
	}
	check_replay(env);
	amp_envelope_free(&env);
	if (env != NULL)
		fuzz_fail(T, "amp_envelope_free did not clear the pointer");
	return 0;
}
