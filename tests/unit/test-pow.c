/*
 * test-pow.c — proof of work (PROTOCOL.md §6): mint/check, every refusal
 * of AMP-R-020, and the text form's parser (valid and invalid tables).
 */
#include "test-common.h"

static amp_public_identity pub_of(const char *did)
{
	amp_identity *id = t_identity(did);
	amp_public_identity p = id->pub;
	amp_identity_destroy(&id);
	return p;
}

static void test_mint_check(void **state)
{
	(void)state;
	amp_public_identity a = pub_of("did:aftersmtp:example.org:alice");
	amp_pow_stamp st;
	assert_int_equal(amp_pow_mint(&a, 12, T_NOW, 0, &st, NULL), AMP_OK);
	assert_int_equal(amp_pow_check(&a, &st, 12, T_NOW, NULL), AMP_OK);
	/* More bits than required is fine; fewer is not. */
	assert_int_equal(amp_pow_check(&a, &st, 8, T_NOW, NULL), AMP_OK);
	const char *err = NULL;
	assert_int_equal(amp_pow_check(&a, &st, 13, T_NOW, &err),
			 AMP_E_POW_INSUFFICIENT);
	assert_non_null(err);
	/* Claiming more bits than the digest has. */
	amp_pow_stamp lie = st;
	lie.bits = 40;
	assert_int_equal(amp_pow_check(&a, &lie, 12, T_NOW, NULL),
			 AMP_E_POW_INSUFFICIENT);
	/* The stamp is bound to the DID and to both keys. */
	amp_public_identity b = a;
	memcpy(b.did, "did:aftersmtp:example.org:alicf", 32);
	assert_int_equal(amp_pow_check(&b, &st, 12, T_NOW, NULL),
			 AMP_E_POW_INSUFFICIENT);
	b = a;
	b.enc_pk[31] ^= 1;
	assert_int_equal(amp_pow_check(&b, &st, 12, T_NOW, NULL),
			 AMP_E_POW_INSUFFICIENT);
	b = a;
	b.sign_pk[0] ^= 1;
	assert_int_equal(amp_pow_check(&b, &st, 12, T_NOW, NULL),
			 AMP_E_POW_INSUFFICIENT);
	/* Time window: 300 s into the future, 24 h into the past. */
	assert_int_equal(amp_pow_check(&a, &st, 12, T_NOW - 300, NULL), AMP_OK);
	assert_int_equal(amp_pow_check(&a, &st, 12, T_NOW - 301, NULL),
			 AMP_E_FUTURE);
	assert_int_equal(amp_pow_check(&a, &st, 12, T_NOW + 86400, NULL), AMP_OK);
	assert_int_equal(amp_pow_check(&a, &st, 12, T_NOW + 86401, NULL),
			 AMP_E_POW_STALE);
}

static void test_mint_limits(void **state)
{
	(void)state;
	amp_public_identity a = pub_of("did:aftersmtp:example.org:alice");
	amp_pow_stamp st;
	assert_int_equal(amp_pow_mint(&a, 0, T_NOW, 0, &st, NULL), AMP_E_INVALID_ARG);
	assert_int_equal(amp_pow_mint(&a, 65, T_NOW, 0, &st, NULL), AMP_E_INVALID_ARG);
	/* 40 bits in 1000 tries: gives up instead of spinning. */
	assert_int_equal(amp_pow_mint(&a, 40, T_NOW, 1000, &st, NULL), AMP_E_TOO_LARGE);
	/* The expected work is 2^bits: 16 bits averages 65536 tries. */
	uint64_t total = 0;
	for (uint64_t t = 0; t < 16; t++) {
		assert_int_equal(amp_pow_mint(&a, 10, T_NOW + t, 0, &st, NULL), AMP_OK);
		total += st.counter + 1;
	}
	assert_true(total / 16 > 128 && total / 16 < 8192);
}

static void test_parse(void **state)
{
	(void)state;
	static const struct { const char *s; uint32_t bits; uint64_t ts, ctr; } ok[] = {
		{ "amp-pow-v1:20:1767225600:00000000000a1b2c", 20, 1767225600, 0xa1b2c },
		{ "amp-pow-v1:1:0:0000000000000000", 1, 0, 0 },
		{ "amp-pow-v1:64:18446744073709551615:ffffffffffffffff", 64,
		  UINT64_MAX, UINT64_MAX },
	};
	static const char *bad[] = {
		"", "amp-pow-v1:", "amp-pow-v2:20:1:0000000000000000",
		"amp-pow-v1:0:1:0000000000000000",       /* 0 bits */
		"amp-pow-v1:65:1:0000000000000000",      /* > 64 */
		"amp-pow-v1:020:1:0000000000000000",     /* leading zero */
		"amp-pow-v1:20:01:0000000000000000",
		"amp-pow-v1:20:18446744073709551616:0000000000000000", /* overflow */
		"amp-pow-v1:20:1:000000000000000",       /* 15 hex */
		"amp-pow-v1:20:1:00000000000000000",     /* 17 hex */
		"amp-pow-v1:20:1:000000000000000G",
		"amp-pow-v1:20:1:000000000000000A",      /* uppercase hex */
		"amp-pow-v1:20:-1:0000000000000000",
		"amp-pow-v1:20:1",
		"amp-pow-v1:20:1:0000000000000000:x",
		"amp-pow-v1: 20:1:0000000000000000",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		amp_pow_stamp st;
		char back[AMP_POW_TEXT_MAX + 1];
		assert_int_equal(amp_pow_parse(ok[i].s, strlen(ok[i].s), &st, NULL),
				 AMP_OK);
		assert_int_equal(st.bits, ok[i].bits);
		assert_int_equal(st.timestamp, ok[i].ts);
		assert_int_equal(st.counter, ok[i].ctr);
		assert_int_equal(amp_pow_format(&st, back, sizeof(back)), AMP_OK);
		assert_string_equal(back, ok[i].s);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		amp_pow_stamp st;
		const char *err = NULL;
		amp_err e = amp_pow_parse(bad[i], strlen(bad[i]), &st, &err);
		if (e != AMP_E_MALFORMED)
			fail_msg("'%s' gave %s", bad[i], amp_err_name(e));
		assert_non_null(err);
	}
	char longs[200];
	memset(longs, '1', sizeof(longs));
	amp_pow_stamp st;
	assert_int_equal(amp_pow_parse(longs, sizeof(longs), &st, NULL),
			 AMP_E_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mint_check),
		cmocka_unit_test(test_mint_limits),
		cmocka_unit_test(test_parse),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
