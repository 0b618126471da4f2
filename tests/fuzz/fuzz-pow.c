/*
 * fuzz-pow.c — libFuzzer target for the proof-of-work stamp text form
 * (amp_pow_parse, amp_pow_format; PROTOCOL.md §6.3) and the checker
 * (amp_pow_check, §6.2, AMP-R-020) against the fixed identity alice at the
 * fixed clock FUZZ_NOW.
 *
 * Input: arbitrary bytes as stamp text (the parser refuses more than
 * AMP_POW_TEXT_MAX bytes unread).
 *
 * Properties (abort() on violation):
 *  - parse succeeds => format(stamp) equals the input exactly (the text
 *    form has one spelling per stamp) and parses back to the same stamp;
 *  - amp_pow_check's verdict equals an independent evaluation of §6.1-6.2
 *    written here from the protocol text: digest of pow_input, leading
 *    zero bits, then the future and staleness windows, in that order.
 */
#include "fuzz-common.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-pow"

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* §6.1-6.2 from the text: what amp_pow_check must return. */
static amp_err expected_verdict(const amp_public_identity *pub,
				const amp_pow_stamp *s, uint32_t required,
				uint64_t now)
{
	uint8_t in[9 + 4 + AMP_DID_MAX + 32 + 32 + 8 + 1 + 8], d[32];
	size_t dl = strlen(pub->did), n = 0;

	if (s->bits == 0 || s->bits > AMP_POW_BITS_MAX)
		return AMP_E_MALFORMED;
	if (s->bits < required)
		return AMP_E_POW_INSUFFICIENT;
	memcpy(in, "AMPv1-pow", 9);
	n = 9;
	in[n++] = (uint8_t)(dl >> 24);
	in[n++] = (uint8_t)(dl >> 16);
	in[n++] = (uint8_t)(dl >> 8);
	in[n++] = (uint8_t)dl;
	memcpy(in + n, pub->did, dl);
	n += dl;
	memcpy(in + n, pub->sign_pk, 32);
	n += 32;
	memcpy(in + n, pub->enc_pk, 32);
	n += 32;
	put_u64(in + n, s->timestamp);
	n += 8;
	in[n++] = (uint8_t)s->bits;
	put_u64(in + n, s->counter);
	n += 8;
	crypto_generichash(d, sizeof(d), in, n, NULL, 0);
	for (uint32_t i = 0; i < s->bits; i++) {
		if (d[i / 8] & (0x80u >> (i % 8)))
			return AMP_E_POW_INSUFFICIENT;
	}
	if (s->timestamp > now && s->timestamp - now > AMP_POW_SKEW_MAX)
		return AMP_E_FUTURE;
	if (now > s->timestamp && now - s->timestamp > AMP_POW_VALID_FOR)
		return AMP_E_POW_STALE;
	return AMP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const amp_identity *id = fuzz_identity(FUZZ_ALICE);
	amp_pow_stamp st, st2;
	char text[AMP_POW_TEXT_MAX + 1];
	const char *err = NULL;

	if (amp_pow_parse((const char *)data, size, &st, &err) != AMP_OK)
		return 0;
	if (amp_pow_format(&st, text, sizeof(text)) != AMP_OK)
		fuzz_fail(T, "a parsed stamp does not format");
	if (strlen(text) != size || memcmp(text, data, size) != 0)
		fuzz_fail(T, "format(parse(s)) != s");
	if (amp_pow_parse(text, strlen(text), &st2, &err) != AMP_OK)
		fuzz_fail(T, "a formatted stamp does not parse");
	if (st.bits != st2.bits || st.timestamp != st2.timestamp ||
	    st.counter != st2.counter)
		fuzz_fail(T, "parse(format(stamp)) != stamp");

	/* Check at the stamp's own difficulty and at a fixed 8 bits. */
	const uint32_t req[2] = { st.bits, 8 };
	for (int i = 0; i < 2; i++) {
		amp_err got = amp_pow_check(&id->pub, &st, req[i], FUZZ_NOW, &err);
		if (got != expected_verdict(&id->pub, &st, req[i], FUZZ_NOW))
			fuzz_fail(T, "amp_pow_check disagrees with §6.2");
	}
	return 0;
}
