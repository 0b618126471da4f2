/*
 * test-log.c — src/core/log: the line format, level filtering, one line
 * per event whatever the text, and log_quote on hostile peer bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_quote(void **state)
{
	(void)state;
	char q[LOG_QUOTE_MAX];
	assert_string_equal(log_quote("hello", 5, q), "\"hello\"");
	assert_string_equal(log_quote("a\"b\\c", 5, q), "\"a\\\"b\\\\c\"");
	assert_string_equal(log_quote("a\r\nb\0c", 6, q), "\"a\\x0d\\x0ab\\x00c\"");
	assert_string_equal(log_quote("\x7f", 1, q), "\"\\x7f\"");
	/* valid UTF-8 kept, invalid escaped */
	assert_string_equal(log_quote("gr\xc3\xbc\xc3\x9f", 6, q), "\"gr\xc3\xbc\xc3\x9f\"");
	assert_string_equal(log_quote("\xc3", 1, q), "\"\\xc3\"");
	assert_string_equal(log_quote("\xc0\xaf", 2, q), "\"\\xc0\\xaf\"");   /* overlong */
	assert_string_equal(log_quote("\xed\xa0\x80", 3, q), "\"\\xed\\xa0\\x80\""); /* surrogate */
	assert_string_equal(log_quote("\xf4\x90\x80\x80", 4, q), "\"\\xf4\\x90\\x80\\x80\"");
	/* truncation; worst case fits */
	uint8_t worst[1000];
	memset(worst, 0x01, sizeof(worst));
	const char *r = log_quote(worst, sizeof(worst), q);
	assert_int_equal(strlen(r), 1 + LOG_QUOTE_IN_MAX * 4 + 3 + 1);
	assert_non_null(strstr(r, "...\""));
}

static char *capture(void (*fn)(void))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	log_init(p[1], LOG_INFO, "testd");
	fn();
	close(p[1]);
	static char buf[65536];
	size_t n = 0;
	ssize_t r;
	while ((r = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(p[0]);
	log_init(2, LOG_INFO, "testd");
	return buf;
}

static void emit_some(void)
{
	char q[LOG_QUOTE_MAX];
	log_msg(LOG_DEBUG, "msg=\"hidden\"");
	log_msg(LOG_INFO, "session=1 peer=%s msg=\"hello\"", log_quote("x\ny", 3, q));
	log_msg(LOG_ERR, "raw=%s", "two\nlines");
}

static void emit_long(void)
{
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_msg(LOG_WARN, "big=%s", big);
}

static void test_lines(void **state)
{
	(void)state;
	char *out = capture(emit_some);
	assert_null(strstr(out, "hidden"));
	/* exactly two lines, each with the format */
	char *nl1 = strchr(out, '\n');
	assert_non_null(nl1);
	char *nl2 = strchr(nl1 + 1, '\n');
	assert_non_null(nl2);
	assert_int_equal(nl2[1], '\0');
	assert_non_null(strstr(out, "Z testd["));
	assert_non_null(strstr(out, "]: level=info session=1 peer=\"x\\x0ay\" msg=\"hello\"\n"));
	assert_non_null(strstr(out, "level=err raw=two lines\n"));
	out = capture(emit_long);
	assert_true(strlen(out) <= LOG_LINE_MAX + 1);
	assert_non_null(strstr(out, "\xe2\x80\xa6\n"));
	log_level l;
	assert_true(log_level_parse("warn", &l) && l == LOG_WARN);
	assert_false(log_level_parse("loud", &l));
	assert_string_equal(log_level_name(LOG_CRIT), "crit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
