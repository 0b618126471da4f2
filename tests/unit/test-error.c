/*
 * test-error.c — the error table: every code has a distinct name of the
 * form AMP_E_* and a sentence; unknown codes are handled.
 */
#include "test-common.h"

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(amp_err_name(AMP_OK), "AMP_OK");
	for (int i = 1; i < AMP_E__COUNT; i++) {
		const char *n = amp_err_name((amp_err)i);
		assert_non_null(n);
		assert_int_equal(strncmp(n, "AMP_E_", 6), 0);
		assert_true(strlen(amp_strerror((amp_err)i)) > 5);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, amp_err_name((amp_err)j));
	}
	assert_string_equal(amp_err_name(AMP_E_NOT_RECIPIENT), "AMP_E_NOT_RECIPIENT");
	assert_string_equal(amp_err_name((amp_err)999), "AMP_E_UNKNOWN");
	assert_string_equal(amp_strerror((amp_err)-1), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
