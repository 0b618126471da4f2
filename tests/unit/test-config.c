/*
 * test-config.c — src/core/config: schema checks, the `key = value`
 * parser (valid files, every error kind with its line number, all errors
 * of a file at once), types and units, reload checks, printers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"

#include <stdlib.h>
#include <string.h>

static const cfg_key keys[] = {
	{ "data_dir", CFG_STRING, "/var/lib/aftersmtp", 0, 0, false,
	  "Directory of the store and keys." },
	{ "max_connections", CFG_INT, "1000", 1, 100000, true,
	  "Connections accepted at once." },
	{ "drop_privileges", CFG_BOOL, "yes", 0, 0, false,
	  "Switch to the configured user after binding." },
	{ "idle_timeout", CFG_DURATION, "5m", 1, 86400, true,
	  "Close a connection idle this long." },
	{ "max_frame_size", CFG_SIZE, "1m", 1024, 64 * 1024 * 1024, true,
	  "Largest frame accepted." },
	{ "domains", CFG_LIST, "localhost", 0, 0, true,
	  "Domains this node serves." },
};
static const cfg_schema schema = { "testd", keys, sizeof(keys) / sizeof(keys[0]) };

static cfg *parse_ok(const char *text)
{
	cfg *c = NULL;
	cfg_errors errs;
	if (cfg_parse(&schema, text, strlen(text), &c, &errs) != 0) {
		cfg_print_errors(&errs, "test", stderr);
		fail_msg("parse failed");
	}
	return c;
}

/* Parse expecting failure; return the errors. */
static cfg_errors parse_bad(const char *text, size_t len)
{
	cfg *c = (cfg *)1;
	cfg_errors errs;
	assert_int_equal(cfg_parse(&schema, text, len, &c, &errs), -1);
	assert_null(c);
	assert_true(errs.n >= 1);
	return errs;
}

static bool has_error(const cfg_errors *e, unsigned line, const char *needle)
{
	for (size_t i = 0; i < e->n; i++) {
		if (e->e[i].line == line && strstr(e->e[i].text, needle) != NULL)
			return true;
	}
	return false;
}

static void test_schema_check(void **state)
{
	(void)state;
	cfg_errors errs;
	assert_int_equal(cfg_schema_check(&schema, &errs), 0);
	static const cfg_key bad[] = {
		{ "ok_key", CFG_INT, "5", 1, 10, true, "A documented key." },
		{ "Bad-Name", CFG_INT, "5", 1, 10, true, "A documented key." },
		{ "undocumented", CFG_INT, "5", 1, 10, true, "" },
		{ "ok_key", CFG_INT, "5", 1, 10, true, "A documented key." },
		{ "out_of_range", CFG_INT, "50", 1, 10, true, "A documented key." },
		{ "bad_bool", CFG_BOOL, "maybe", 0, 0, true, "A documented key." },
	};
	cfg_schema s = { "bad", bad, sizeof(bad) / sizeof(bad[0]) };
	assert_int_equal(cfg_schema_check(&s, &errs), -1);
	assert_true(has_error(&errs, 0, "bad key name 'Bad-Name'"));
	assert_true(has_error(&errs, 0, "undocumented has no documentation"));
	assert_true(has_error(&errs, 0, "ok_key twice"));
	assert_true(has_error(&errs, 0, "default of out_of_range"));
	assert_true(has_error(&errs, 0, "default of bad_bool"));
}

static void test_defaults(void **state)
{
	(void)state;
	cfg *c;
	cfg_errors errs;
	assert_int_equal(cfg_defaults(&schema, &c, &errs), 0);
	assert_string_equal(cfg_str(c, "data_dir"), "/var/lib/aftersmtp");
	assert_int_equal(cfg_int(c, "max_connections"), 1000);
	assert_true(cfg_bool(c, "drop_privileges"));
	assert_int_equal(cfg_int(c, "idle_timeout"), 300);
	assert_int_equal(cfg_int(c, "max_frame_size"), 1024 * 1024);
	assert_int_equal(cfg_list_len(c, "domains"), 1);
	assert_string_equal(cfg_list_item(c, "domains", 0), "localhost");
	assert_null(cfg_list_item(c, "domains", 1));
	cfg_free(&c);
	assert_null(c);
	cfg_free(&c);
}

static void test_valid_file(void **state)
{
	(void)state;
	cfg *c = parse_ok(
		"# a comment\r\n"
		"\n"
		"   # an indented comment\n"
		"data_dir = /srv/amp  \r\n"
		"max_connections=42\n"
		"drop_privileges = off\n"
		"idle_timeout = 2h\n"
		"max_frame_size = 16K\n"
		"domains = alpha.test,\n"
		"    beta.test  gamma.test\n"
		"\tdelta.test");
	assert_string_equal(cfg_str(c, "data_dir"), "/srv/amp");
	assert_int_equal(cfg_int(c, "max_connections"), 42);
	assert_false(cfg_bool(c, "drop_privileges"));
	assert_int_equal(cfg_int(c, "idle_timeout"), 7200);
	assert_int_equal(cfg_int(c, "max_frame_size"), 16384);
	assert_int_equal(cfg_list_len(c, "domains"), 4);
	assert_string_equal(cfg_list_item(c, "domains", 1), "beta.test");
	assert_string_equal(cfg_list_item(c, "domains", 3), "delta.test");
	cfg_free(&c);
	/* units */
	static const struct { const char *line; int64_t v; } durations[] = {
		{ "idle_timeout = 30", 30 }, { "idle_timeout = 30s", 30 },
		{ "idle_timeout = 3m", 180 }, { "idle_timeout = 1d", 86400 },
	};
	for (size_t i = 0; i < 4; i++) {
		c = parse_ok(durations[i].line);
		assert_int_equal(cfg_int(c, "idle_timeout"), durations[i].v);
		cfg_free(&c);
	}
	c = parse_ok("max_frame_size = 64M");
	assert_int_equal(cfg_int(c, "max_frame_size"), 64 * 1024 * 1024);
	cfg_free(&c);
}

static void test_every_error_with_its_line(void **state)
{
	(void)state;
	const char *text =
		"max_connections = 42\n"        /* 1 ok */
		"nosuchkey = 1\n"               /* 2 unknown */
		"max_connections = 43\n"        /* 3 duplicate */
		"just some words\n"             /* 4 no '=' */
		"drop_privileges = maybe\n"     /* 5 bad bool */
		"idle_timeout = 5 weeks\n"      /* 6 bad duration */
		"max_frame_size = 1\n"          /* 7 below min */
		"Bad.Key = 1\n"                 /* 8 bad name */
		"data_dir = a\x01" "b\n";       /* 9 control char */
	cfg_errors e = parse_bad(text, strlen(text));
	assert_true(has_error(&e, 2, "unknown key 'nosuchkey'"));
	assert_true(has_error(&e, 3, "already set on line 1"));
	assert_true(has_error(&e, 4, "expected 'key = value'"));
	assert_true(has_error(&e, 5, "not a valid boolean"));
	assert_true(has_error(&e, 6, "not a valid duration"));
	assert_true(has_error(&e, 7, "outside 1024..67108864"));
	assert_true(has_error(&e, 8, "not a key name"));
	assert_true(has_error(&e, 9, "control character"));
	assert_int_equal(e.n, 8);

	e = parse_bad("  indented first\n", 17);
	assert_true(has_error(&e, 1, "continues no setting"));
	e = parse_bad("data_dir = a\0b\n", 15);
	assert_true(has_error(&e, 1, "NUL"));
	e = parse_bad("max_connections = 99999999999999999999\n", 39);
	assert_true(has_error(&e, 1, "not a valid integer"));
	e = parse_bad("max_connections = -5\n", 21);
	assert_true(has_error(&e, 1, "outside"));

	/* Over-long line, over-long value, whole file too large. */
	size_t big = CFG_LINE_MAX + 100;
	char *s = malloc(CFG_FILE_MAX + 2);
	memcpy(s, "data_dir = ", 11);
	memset(s + 11, 'x', big - 11);
	e = parse_bad(s, big);
	assert_true(has_error(&e, 1, "line longer than"));
	memcpy(s, "data_dir = x\n", 13);
	size_t o = 13;
	for (int i = 0; i < 3; i++) {
		s[o++] = ' ';
		memset(s + o, 'y', 2000);
		o += 2000;
		s[o++] = '\n';
	}
	e = parse_bad(s, o);
	assert_true(has_error(&e, 1, "longer than 4096"));
	memset(s, '#', CFG_FILE_MAX + 1);
	e = parse_bad(s, CFG_FILE_MAX + 1);
	assert_true(has_error(&e, 0, "larger than"));
	/* Many errors: capped, and said so. */
	o = 0;
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(s + o, 100, "bogus%d = 1\n", i);
	e = parse_bad(s, o);
	assert_int_equal(e.n, CFG_ERRORS_MAX);
	assert_true(e.truncated);
	free(s);
}

static void test_reload_and_print(void **state)
{
	(void)state;
	cfg *a = parse_ok("max_connections = 10\n");
	cfg *b = parse_ok("max_connections = 20\n");
	cfg *d = parse_ok("data_dir = /elsewhere\n");
	cfg_errors e;
	assert_int_equal(cfg_reload_check(a, b, &e), 0);   /* reloadable */
	assert_int_equal(cfg_reload_check(a, d, &e), -1);  /* restart needed */
	assert_true(has_error(&e, 1, "data_dir cannot change on reload"));

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cfg_print(a, true, f);
	fclose(f);
	assert_string_equal(buf, "max_connections = 10\n");
	free(buf);
	f = open_memstream(&buf, &len);
	cfg_print(a, false, f);
	fclose(f);
	assert_non_null(strstr(buf, "data_dir = /var/lib/aftersmtp\n"));
	assert_non_null(strstr(buf, "domains = localhost\n"));
	free(buf);
	/* The documentation lists every key with its default. */
	f = open_memstream(&buf, &len);
	cfg_print_doc(&schema, f);
	fclose(f);
	for (size_t i = 0; i < schema.n_keys; i++)
		assert_non_null(strstr(buf, keys[i].name));
	assert_non_null(strstr(buf, "| `idle_timeout` | duration | `5m` | 1 … 86400 | applied |"));
	free(buf);
	f = open_memstream(&buf, &len);
	cfg_print_errors(&e, "/etc/x.conf", f);
	fclose(f);
	assert_non_null(strstr(buf, "/etc/x.conf:1: data_dir cannot change"));
	assert_non_null(strstr(buf, "/etc/x.conf: 1 error\n"));
	free(buf);
	cfg_free(&a);
	cfg_free(&b);
	cfg_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_check),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_valid_file),
		cmocka_unit_test(test_every_error_with_its_line),
		cmocka_unit_test(test_reload_and_print),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
