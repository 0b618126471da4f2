/*
 * test-route.c — src/daemon/route.c: the transport map parser
 * (router_parse; format in route.h) with a table of valid maps and one of
 * malformed lines, each refused with the number of the line it is on;
 * then router_create / router_reload / router_find / router_pinned_key on
 * map files (map hits only: nothing here asks DNS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "route.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t pin[32];
static char pin64[64];

static route_entry *parse_ok(const char *text, size_t *n_r)
{
	route_entry *e = NULL;
	char err[256] = "";
	int r = router_parse(text, strlen(text), &e, n_r, err, sizeof(err));
	if (r != 0)
		fail_msg("router_parse failed: %s", err);
	return e;
}

static void parse_err(const char *text, const char *want)
{
	route_entry *e = NULL;
	size_t n = 0;
	char err[256] = "";
	int r = router_parse(text, strlen(text), &e, &n, err, sizeof(err));
	if (r != -1 || strcmp(err, want) != 0)
		fail_msg("%s\n  gave %d \"%s\", want \"%s\"", text, r, err, want);
}

static void test_valid(void **state)
{
	(void)state;
	char text[1024];
	snprintf(text, sizeof(text),
		 "# transport map\n"
		 "\n"
		 "example.org   mx.example.org:4434\n"
		 "   \t  \n"
		 "Example.NET\t[::1]:4434\tquic\tkey=%s   # pinned, v6\n"
		 "mail.example.com 192.0.2.1:443 tls\r\n"
		 "   # indented comment\n"
		 "v6.example [2001:db8::1]:65535 key=%s quic\n"
		 "a.b h:1 quic tls\n"
		 "last.example host.example:1",
		 pin64, pin64);
	size_t n;
	route_entry *e = parse_ok(text, &n);
	assert_int_equal(n, 6);

	assert_string_equal(e[0].domain, "example.org");
	assert_string_equal(e[0].r.host, "mx.example.org");
	assert_int_equal(e[0].r.port, 4434);
	assert_int_equal(e[0].r.transport, NCLIENT_TLS);
	assert_false(e[0].r.pinned);
	assert_true(e[0].r.from_map);

	assert_string_equal(e[1].domain, "example.net"); /* lower-cased */
	assert_string_equal(e[1].r.host, "::1");
	assert_int_equal(e[1].r.port, 4434);
	assert_int_equal(e[1].r.transport, NCLIENT_QUIC);
	assert_true(e[1].r.pinned);
	assert_memory_equal(e[1].r.pin, pin, 32);

	assert_string_equal(e[2].domain, "mail.example.com");
	assert_string_equal(e[2].r.host, "192.0.2.1");
	assert_int_equal(e[2].r.port, 443);
	assert_int_equal(e[2].r.transport, NCLIENT_TLS);

	assert_string_equal(e[3].r.host, "2001:db8::1");
	assert_int_equal(e[3].r.port, 65535);
	assert_int_equal(e[3].r.transport, NCLIENT_QUIC);
	assert_true(e[3].r.pinned);

	/* the last transport word wins */
	assert_string_equal(e[4].domain, "a.b");
	assert_int_equal(e[4].r.transport, NCLIENT_TLS);
	assert_int_equal(e[4].r.port, 1);

	/* a last line without a newline is read */
	assert_string_equal(e[5].domain, "last.example");
	assert_string_equal(e[5].r.host, "host.example");
	free(e);

	/* alone too */
	e = parse_ok("example.org h:2", &n);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].r.port, 2);
	free(e);
}

static void test_empty(void **state)
{
	(void)state;
	static const char *const empties[] = { "", "\n", "\n\n\n", "# x\n",
					       "  \t\r\n#\n", "#tls quic\n" };
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		size_t n = 99;
		route_entry *e = parse_ok(empties[i], &n);
		assert_int_equal(n, 0);
		free(e);
	}
}

static void test_many(void **state)
{
	(void)state;
	/* more than the first allocation (16 entries) */
	size_t cap = 100 * 40;
	char *text = malloc(cap), *p = text;
	for (int i = 0; i < 100; i++)
		p += snprintf(p, cap - (size_t)(p - text), "d%d.example h%d:%d\n", i,
			      i, i + 1);
	size_t n;
	route_entry *e = parse_ok(text, &n);
	assert_int_equal(n, 100);
	assert_string_equal(e[99].domain, "d99.example");
	assert_string_equal(e[99].r.host, "h99");
	assert_int_equal(e[99].r.port, 100);
	free(e);
	free(text);
}

#define E_SYNTAX "expected DOMAIN HOST:PORT [tls|quic] [key=KEY]"
#define E_HOSTPORT "expected HOST:PORT"
#define E_DOMAIN "not a domain name"
#define E_KEY "key= is not a base64url Ed25519 key"
#define E_WORD "unknown word (want tls, quic or key=)"

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *line, *reason;
	} bad[] = {
		{ "example.org mx.example.org", E_HOSTPORT },      /* no port */
		{ "example.org mx.example.org:", E_HOSTPORT },
		{ "example.org :4434", E_HOSTPORT },               /* no host */
		{ "example.org mx:0", E_HOSTPORT },
		{ "example.org mx:70000", E_HOSTPORT },
		{ "example.org mx:65536", E_HOSTPORT },
		{ "example.org mx:-1", E_HOSTPORT },
		{ "example.org mx:+1", E_HOSTPORT },
		{ "example.org mx:1x", E_HOSTPORT },
		{ "example.org mx:99999999999999999999999", E_HOSTPORT },
		{ "example.org [::1]", E_HOSTPORT },
		{ "example.org [::1:4434", E_HOSTPORT },
		{ "example.org []:4434", E_HOSTPORT },
		{ "example.org [::1]4434", E_HOSTPORT },
		{ "exa_mple.org mx:1", E_DOMAIN },
		{ "example.org/x mx:1", E_DOMAIN },
		{ "\xc3\xa9xample.org mx:1", E_DOMAIN },
		{ "example.org mx:1 key=abc", E_KEY },
		{ "example.org mx:1 key=", E_KEY },
		{ "example.org mx:1 udp", E_WORD },
		{ "example.org mx:1 TLS", E_WORD },
		{ "example.org mx:1 tls key=x quic", E_SYNTAX },   /* 5 words */
		{ "example.org mx:1 tls tls tls tls tls", E_SYNTAX },
		{ "example.org", E_SYNTAX },                       /* 1 word */
	};
	char text[2048], want[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* alone on line 1, then as line 4 after a comment, a blank
		 * line and a good route, then followed by more lines */
		snprintf(want, sizeof(want), "line 1: %s", bad[i].reason);
		parse_err(bad[i].line, want);
		snprintf(text, sizeof(text), "# map\n\nok.example h:1\n%s\n"
			 "after.example h:2\n", bad[i].line);
		snprintf(want, sizeof(want), "line 4: %s", bad[i].reason);
		parse_err(text, want);
	}

	/* a key of 31 and of 33 bytes, and standard (not url-safe) base64 */
	uint8_t k[33];
	char k64[64];
	memset(k, 0xfb, sizeof(k));
	const size_t klens[] = { 31, 33 };
	for (int i = 0; i < 2; i++) {
		sodium_bin2base64(k64, sizeof(k64), k, klens[i],
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		snprintf(text, sizeof(text), "x.example h:1 key=%s\n", k64);
		parse_err(text, "line 1: " E_KEY);
	}
	sodium_bin2base64(k64, sizeof(k64), k, 32,
			  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(text, sizeof(text), "x.example h:1 key=%s\n", k64);
	parse_err(text, "line 1: " E_KEY);
	sodium_bin2base64(k64, sizeof(k64), k, 32,
			  sodium_base64_VARIANT_URLSAFE);                 /* padded */
	snprintf(text, sizeof(text), "x.example h:1 key=%s\n", k64);
	parse_err(text, "line 1: " E_KEY);

	/* a domain of 253 bytes is fine, 254 is not */
	char dom[300];
	memset(dom, 'a', sizeof(dom));
	for (size_t i = 63; i < sizeof(dom); i += 64)
		dom[i] = '.';
	snprintf(text, sizeof(text), "%.253s h:1\n", dom);
	size_t n;
	route_entry *e = parse_ok(text, &n);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(e[0].domain), 253);
	free(e);
	snprintf(text, sizeof(text), "%.254s h:1\n", dom);
	parse_err(text, "line 1: " E_DOMAIN);
	/* a host of 255 bytes is fine, 256 is not */
	char host[300];
	memset(host, 'h', sizeof(host));
	snprintf(text, sizeof(text), "x.example %.255s:1\n", host);
	e = parse_ok(text, &n);
	assert_int_equal(strlen(e[0].r.host), ROUTE_HOST_MAX);
	free(e);
	snprintf(text, sizeof(text), "x.example %.256s:1\n", host);
	parse_err(text, "line 1: " E_HOSTPORT);
	snprintf(text, sizeof(text), "x.example [%.256s]:1\n", host);
	parse_err(text, "line 1: " E_HOSTPORT);
}

static void test_long_lines(void **state)
{
	(void)state;
	/* 1023 bytes is the longest line (a comment may fill it); 1024 is
	 * refused even if it is only a comment */
	char *text = malloc(4096);
	memset(text, '#', 1023);
	memcpy(text + 1023, "\nx.example h:1\n", 16);
	size_t n;
	route_entry *e = parse_ok(text, &n);
	assert_int_equal(n, 1);
	free(e);
	memset(text, '#', 1024);
	memcpy(text + 1024, "\nx.example h:1\n", 16);
	parse_err(text, "line 1: too long");
	/* as line 3, and as a last line without a newline */
	memcpy(text, "a.example h:1\n\n", 15);
	memset(text + 15, 'a', 2000);
	text[2015] = '\0';
	parse_err(text, "line 3: too long");
	free(text);
}

/* The map text given as bytes: NUL bytes end a line's words. */
static void test_nul_bytes(void **state)
{
	(void)state;
	static const char text[] = "x.example h:1\0 junk\ny.example h:2\n";
	route_entry *e = NULL;
	size_t n;
	char err[128];
	assert_int_equal(router_parse(text, sizeof(text) - 1, &e, &n, err,
				      sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[1].r.port, 2);
	free(e);
	/* the length is honoured: the second line is not read */
	assert_int_equal(router_parse(text, 14, &e, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	free(e);
}

static char *write_map(const char *text)
{
	char *path = strdup("/tmp/amp-test-route-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_router(void **state)
{
	(void)state;
	char text[512], err[256];
	snprintf(text, sizeof(text),
		 "example.net [::1]:4434 quic key=%s\nexample.com 127.0.0.1:1\n",
		 pin64);
	char *path = write_map(text);
	router *r = NULL;
	assert_int_equal(router_create(path, &r, err, sizeof(err)), 0);
	route rt;
	const char *e = NULL;
	assert_int_equal(router_find(r, "example.net", &rt, &e), 0);
	assert_string_equal(rt.host, "::1");
	assert_int_equal(rt.port, 4434);
	assert_int_equal(rt.transport, NCLIENT_QUIC);
	assert_true(rt.from_map);
	uint8_t pk[32];
	assert_true(router_pinned_key(r, "example.net", pk));
	assert_memory_equal(pk, pin, 32);
	assert_false(router_pinned_key(r, "example.com", pk));
	assert_false(router_pinned_key(r, "example.org", pk));
	/* not a domain: refused before any lookup */
	assert_int_equal(router_find(r, "Example.NET", &rt, &e), -1);
	assert_non_null(e);
	assert_int_equal(router_find(r, "", &rt, &e), -1);

	/* a bad reload keeps the old map; a good one replaces it */
	FILE *f = fopen(path, "w");
	fputs("example.com 127.0.0.1:2\nexample.net mx:0\n", f);
	fclose(f);
	assert_int_equal(router_reload(r, path, err, sizeof(err)), -1);
	assert_string_equal(err, "line 2: " E_HOSTPORT);
	assert_true(router_pinned_key(r, "example.net", pk));
	f = fopen(path, "w");
	fputs("example.com 127.0.0.1:3 quic\n", f);
	fclose(f);
	assert_int_equal(router_reload(r, path, err, sizeof(err)), 0);
	assert_false(router_pinned_key(r, "example.net", pk));
	assert_int_equal(router_find(r, "example.com", &rt, &e), 0);
	assert_int_equal(rt.port, 3);
	assert_int_equal(rt.transport, NCLIENT_QUIC);
	router_free(&r);
	assert_null(r);
	router_free(&r);

	/* a missing file and a bad map fail at create; "" is no map */
	unlink(path);
	assert_int_equal(router_create(path, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_null(r);
	free(path);
	path = write_map("\n\nexample.org h:1 nope\n");
	assert_int_equal(router_create(path, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "line 3: " E_WORD);
	unlink(path);
	free(path);
	assert_int_equal(router_create("", &r, err, sizeof(err)), 0);
	assert_false(router_pinned_key(r, "example.org", pk));
	router_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_router),
	};
	if (sodium_init() < 0)
		return 1;
	for (int i = 0; i < 32; i++)
		pin[i] = (uint8_t)(0xf0 ^ (i * 7));
	sodium_bin2base64(pin64, sizeof(pin64), pin, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
