/*
 * test-armor.c — the text armour of PROTOCOL.md §5.8: round trips of
 * every length 0..300, CRLF and whitespace tolerance, refusals.
 */
#include "test-common.h"

static void test_roundtrip(void **state)
{
	(void)state;
	uint8_t bin[300];
	randombytes_buf(bin, sizeof(bin));
	for (size_t n = 1; n <= sizeof(bin); n++) {
		char *text;
		size_t tlen, blen;
		uint8_t *back;
		assert_int_equal(amp_armor_encode(bin, n, &text, &tlen), AMP_OK);
		assert_int_equal(strlen(text), tlen);
		assert_true(amp_armor_detect((uint8_t *)text, tlen));
		/* Lines are at most 64 characters. */
		for (char *line = text; *line != '\0';) {
			char *nl = strchr(line, '\n');
			assert_non_null(nl);
			assert_true(nl - line <= 64 ||
				    strncmp(line, "-----", 5) == 0);
			line = nl + 1;
		}
		assert_int_equal(amp_armor_decode((uint8_t *)text, tlen, &back,
						  &blen, NULL),
				 AMP_OK);
		assert_int_equal(blen, n);
		assert_memory_equal(back, bin, n);
		free(back);
		amp_free(text);
	}
}

static amp_err dec(const char *s)
{
	uint8_t *b = NULL;
	size_t n;
	const char *err = NULL;
	amp_err e = amp_armor_decode((const uint8_t *)s, strlen(s), &b, &n, &err);
	if (e == AMP_OK) {
		assert_int_equal(n, 3);
		assert_memory_equal(b, "abc", 3);
	} else {
		assert_non_null(err);
	}
	free(b);
	return e;
}

static void test_tolerance_and_refusals(void **state)
{
	(void)state;
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\nYWJj\n-----END AMP ENVELOPE-----\n"), AMP_OK);
	assert_int_equal(dec("\r\n  -----BEGIN AMP ENVELOPE-----\r\n YW Jj \r\n-----END AMP ENVELOPE-----"), AMP_OK);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\nYWJj\n"), AMP_E_TRUNCATED);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----"), AMP_E_TRUNCATED);
	assert_int_equal(dec("YWJj"), AMP_E_MALFORMED);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\nYW*j\n-----END AMP ENVELOPE-----\n"), AMP_E_MALFORMED);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\nYWJ\n-----END AMP ENVELOPE-----\n"), AMP_E_MALFORMED);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\n\n-----END AMP ENVELOPE-----\n"), AMP_E_MALFORMED);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\nYWJj\n-----END AMP ENVELOPE-----\ntrailing"), AMP_E_MALFORMED);
	/* Review finding: BEGIN and END must be lines of their own. */
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----YWJj\n-----END AMP ENVELOPE-----"), AMP_E_MALFORMED);
	assert_int_equal(dec("-----BEGIN AMP ENVELOPE-----\nYWJj-----END AMP ENVELOPE-----"), AMP_E_MALFORMED);
	assert_false(amp_armor_detect((const uint8_t *)"-----BEGIN AMP", 14));
	assert_false(amp_armor_detect((const uint8_t *)"", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tolerance_and_refusals),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
