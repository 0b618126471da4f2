/*
 * test-dns-rdata.c — src/dns/dns-rdata: the pure decoders of DNS record
 * data (issue 5).  Tables of valid and invalid query names; wire-format
 * names (case folding, the root, the 255-octet limit at its edge,
 * compression pointers and pointer loops, reserved label types, octets
 * that are not host-name characters); MX (null MX, trailing bytes), TLSA
 * (the 1024-octet data limit), TXT (strings joined, > 255 split strings,
 * NUL refused, the output bound) and A/AAAA.  Every valid encoding is
 * also cut short at each length: every proper prefix must be refused
 * cleanly (the decoders' "one byte at a time").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dns-rdata.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ query names */

typedef struct ncase {
	const char *name;
	bool service;
	bool ok;
} ncase;

static const ncase name_cases[] = {
	{ "example.org", false, true },
	{ "a", false, true },
	{ "EXAMPLE.Org", false, true },
	{ "mx-1.example.org", false, true },
	{ "1.2.3.4", false, true }, /* an IP literal is LDH: the caller refuses it */
	{ "xn--bcher-kva.example", false, true },
	{ "_25._tcp.mx.example.org", true, true },
	{ "_dmarc.example.org", true, true },
	{ "_25._tcp.mx.example.org", false, false },
	{ "under_score.example.org", false, false },
	{ "", false, false },
	{ ".", false, false },
	{ "example.org.", false, false },
	{ ".example.org", false, false },
	{ "a..b", false, false },
	{ "-a.example.org", false, false },
	{ "a-.example.org", false, false },
	{ "a.-.org", false, false },
	{ "a b.org", false, false },
	{ "a\\.b.org", true, false },
	{ "a*.org", true, false },
	{ "*.example.org", true, false },
	{ "caf\xc3\xa9.example", true, false },
	{ "a\tb", true, false },
};

static void test_name_ok_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const ncase *c = &name_cases[i];
		const char *why = NULL;
		bool ok = dns_name_ok(c->name, c->service, &why);
		if (ok != c->ok)
			fail_msg("dns_name_ok(\"%s\", %d) = %d", c->name,
				 c->service, ok);
		if (!ok)
			assert_non_null(why);
	}
	assert_false(dns_name_ok(NULL, true, NULL));
}

static void test_name_ok_lengths(void **state)
{
	char name[300];
	(void)state;
	/* a 63-character label is fine, 64 is not */
	memset(name, 'a', 63);
	memcpy(name + 63, ".org", 5);
	assert_true(dns_name_ok(name, false, NULL));
	memset(name, 'a', 64);
	memcpy(name + 64, ".org", 5);
	assert_false(dns_name_ok(name, false, NULL));
	/* 253 characters are fine, 254 are not */
	snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.61s",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		 "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	assert_int_equal(strlen(name), 253);
	assert_true(dns_name_ok(name, false, NULL));
	name[253] = 'd';
	name[254] = '\0';
	assert_int_equal(strlen(name), 254);
	assert_false(dns_name_ok(name, false, NULL));
}

/* ------------------------------------------------------------ wire names */

typedef struct wcase {
	const char *wire;   /* bytes */
	size_t len;
	const char *text;   /* NULL: refused */
	size_t used;
} wcase;

#define W(s, text, used) { s, sizeof(s) - 1, text, used }

static const wcase wire_cases[] = {
	W("\7example\3org\0", "example.org", 13),
	W("\7EXAMPLE\3Org\0", "example.org", 13),
	W("\0", ".", 1),
	W("\3_25\4_tcp\2mx\0", "_25._tcp.mx", 13),
	W("\4mx-1\0trailing", "mx-1", 6),
	W("\0011\0012\0013\0014\0", "1.2.3.4", 9),
	/* compression pointers: never in rdata from libunbound, and loops */
	W("\300\014", NULL, 0),
	W("\300\000", NULL, 0),
	W("\3abc\300\000", NULL, 0),
	/* reserved / extended label types */
	W("\100abc", NULL, 0),
	W("\200abc", NULL, 0),
	/* truncated */
	W("", NULL, 0),
	W("\3ab", NULL, 0),
	W("\3abc", NULL, 0),
	W("\77", NULL, 0),
	/* octets no host name has */
	W("\3a.b\0", NULL, 0),
	W("\3a b\0", NULL, 0),
	W("\3a\000b\0", NULL, 0),
	W("\1*\0", NULL, 0),
	W("\2\303\251\0", NULL, 0),
	W("\1\377\0", NULL, 0),
};

static void test_name_decode_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wire_cases) / sizeof(wire_cases[0]); i++) {
		const wcase *c = &wire_cases[i];
		char out[DNS_NAME_BUF];
		size_t used = 12345;
		const char *why = NULL;
		memset(out, 'Z', sizeof(out));
		int rc = dns_name_decode((const uint8_t *)c->wire, c->len, &used,
					 out, &why);
		if (c->text == NULL) {
			if (rc != -1)
				fail_msg("case %zu accepted as \"%s\"", i, out);
			assert_non_null(why);
			assert_string_equal(out, "");
			assert_int_equal(used, 12345);
		} else {
			if (rc != 0)
				fail_msg("case %zu refused: %s", i, why);
			assert_string_equal(out, c->text);
			assert_int_equal(used, c->used);
		}
	}
}

/* Write labels of the given lengths ('a'...) then the root label. */
static size_t make_name(uint8_t *wire, const size_t *labels, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		wire[o++] = (uint8_t)labels[i];
		memset(wire + o, 'a' + (int)(i % 26), labels[i]);
		o += labels[i];
	}
	wire[o++] = 0;
	return o;
}

static void test_name_decode_limits(void **state)
{
	uint8_t wire[600];
	char out[DNS_NAME_BUF];
	size_t used;
	const char *why;
	(void)state;

	/* 63+63+63+61 = 4 labels: wire 1+63+1+63+1+63+1+61+1 = 255 */
	const size_t edge[] = { 63, 63, 63, 61 };
	size_t len = make_name(wire, edge, 4);
	assert_int_equal(len, 255);
	assert_int_equal(dns_name_decode(wire, len, &used, out, &why), 0);
	assert_int_equal(used, 255);
	assert_int_equal(strlen(out), 253);

	/* one octet more: 256 */
	const size_t over[] = { 63, 63, 63, 62 };
	len = make_name(wire, over, 4);
	assert_int_equal(len, 256);
	assert_int_equal(dns_name_decode(wire, len, &used, out, &why), -1);
	assert_string_equal(out, "");

	/* many short labels: 127 one-octet labels are 255 octets */
	size_t ones[200];
	for (size_t i = 0; i < 200; i++)
		ones[i] = 1;
	len = make_name(wire, ones, 127);
	assert_int_equal(len, 255);
	assert_int_equal(dns_name_decode(wire, len, &used, out, &why), 0);
	assert_int_equal(strlen(out), 253);
	len = make_name(wire, ones, 128);
	assert_int_equal(dns_name_decode(wire, len, &used, out, &why), -1);
	len = make_name(wire, ones, 200);
	assert_int_equal(dns_name_decode(wire, len, &used, out, &why), -1);
}

/* Every proper prefix of a valid name is refused, never read past. */
static void test_name_decode_prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wire_cases) / sizeof(wire_cases[0]); i++) {
		const wcase *c = &wire_cases[i];
		if (c->text == NULL)
			continue;
		for (size_t k = 0; k < c->used; k++) {
			/* a heap copy of exactly k bytes: ASan sees any overread */
			uint8_t *p = malloc(k == 0 ? 1 : k);
			char out[DNS_NAME_BUF];
			size_t used;
			const char *why;
			assert_non_null(p);
			memcpy(p, c->wire, k);
			assert_int_equal(dns_name_decode(p, k, &used, out, &why), -1);
			free(p);
		}
	}
}

/* ---------------------------------------------------------------------- MX */

static void test_mx(void **state)
{
	unsigned pref = 99;
	char host[DNS_NAME_BUF];
	const char *why = NULL;
	(void)state;

	static const uint8_t mx[] = "\0\12\2mx\7Example\3org\0";
	assert_int_equal(dns_mx_decode(mx, sizeof(mx) - 1, &pref, host, &why), 0);
	assert_int_equal(pref, 10);
	assert_string_equal(host, "mx.example.org");

	static const uint8_t null_mx[] = "\0\0\0";
	assert_int_equal(dns_mx_decode(null_mx, 3, &pref, host, &why), 0);
	assert_int_equal(pref, 0);
	assert_string_equal(host, ".");

	static const uint8_t big[] = "\377\377\1a\0";
	assert_int_equal(dns_mx_decode(big, 5, &pref, host, &why), 0);
	assert_int_equal(pref, 65535);

	static const uint8_t ip[] = "\0\5\003192\0010\0012\0011\0";
	assert_int_equal(dns_mx_decode(ip, sizeof(ip) - 1, &pref, host, &why), 0);
	assert_string_equal(host, "192.0.2.1");

	/* refused: short, trailing bytes, compressed, bad octets */
	assert_int_equal(dns_mx_decode(null_mx, 2, &pref, host, &why), -1);
	assert_int_equal(dns_mx_decode(null_mx, 0, &pref, host, &why), -1);
	static const uint8_t trail[] = "\0\1\1a\0x";
	assert_int_equal(dns_mx_decode(trail, 6, &pref, host, &why), -1);
	assert_string_equal(host, "");
	static const uint8_t ptr[] = "\0\1\300\014";
	assert_int_equal(dns_mx_decode(ptr, 4, &pref, host, &why), -1);
	static const uint8_t bad[] = "\0\1\3a/b\0";
	assert_int_equal(dns_mx_decode(bad, 7, &pref, host, &why), -1);
	assert_non_null(why);

	for (size_t k = 0; k < sizeof(mx) - 1; k++) {
		uint8_t *p = malloc(k == 0 ? 1 : k);
		assert_non_null(p);
		memcpy(p, mx, k);
		assert_int_equal(dns_mx_decode(p, k, &pref, host, &why), -1);
		free(p);
	}
}

/* -------------------------------------------------------------------- TLSA */

static void test_tlsa(void **state)
{
	uint8_t rd[3 + DNS_TLSA_DATA_MAX + 1];
	uint8_t u, s, m;
	const uint8_t *data;
	size_t len;
	const char *why = NULL;
	(void)state;

	rd[0] = 3;
	rd[1] = 1;
	rd[2] = 1;
	for (size_t i = 3; i < sizeof(rd); i++)
		rd[i] = (uint8_t)i;
	assert_int_equal(dns_tlsa_decode(rd, 3 + 32, &u, &s, &m, &data, &len,
					 &why), 0);
	assert_int_equal(u, 3);
	assert_int_equal(s, 1);
	assert_int_equal(m, 1);
	assert_ptr_equal(data, rd + 3);
	assert_int_equal(len, 32);
	/* one octet of data, and the most we take */
	assert_int_equal(dns_tlsa_decode(rd, 4, &u, &s, &m, &data, &len, &why), 0);
	assert_int_equal(len, 1);
	assert_int_equal(dns_tlsa_decode(rd, 3 + DNS_TLSA_DATA_MAX, &u, &s, &m,
					 &data, &len, &why), 0);
	assert_int_equal(len, DNS_TLSA_DATA_MAX);
	/* refused */
	why = NULL;
	assert_int_equal(dns_tlsa_decode(rd, 3 + DNS_TLSA_DATA_MAX + 1, &u, &s,
					 &m, &data, &len, &why), -1);
	assert_non_null(why);
	for (size_t k = 0; k < 4; k++)
		assert_int_equal(dns_tlsa_decode(rd, k, &u, &s, &m, &data, &len,
						 &why), -1);
	/* field values are DANE's business: 255 255 255 decodes */
	memset(rd, 255, 3);
	assert_int_equal(dns_tlsa_decode(rd, 10, &u, &s, &m, &data, &len, &why), 0);
	assert_int_equal(u, 255);
}

/* --------------------------------------------------------------------- TXT */

static void test_txt(void **state)
{
	char out[2048];
	size_t len = 0;
	const char *why = NULL;
	(void)state;

	static const uint8_t one[] = "\5hello";
	assert_int_equal(dns_txt_decode(one, 6, out, sizeof(out), &len, &why), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(len, 5);

	static const uint8_t two[] = "\3v=s\4pf1 \0\3end";
	assert_int_equal(dns_txt_decode(two, sizeof(two) - 1, out, sizeof(out),
					&len, &why), 0);
	assert_string_equal(out, "v=spf1 end");

	static const uint8_t empty[] = "\0";
	assert_int_equal(dns_txt_decode(empty, 1, out, sizeof(out), &len, &why), 0);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);

	/* > 255 octets as several strings, joined; out_size == len suffices */
	uint8_t big[3 * 256];
	size_t o = 0;
	for (int i = 0; i < 3; i++) {
		big[o++] = 255;
		memset(big + o, 'a' + i, 255);
		o += 255;
	}
	assert_int_equal(dns_txt_decode(big, o, out, o, &len, &why), 0);
	assert_int_equal(len, 3 * 255);
	assert_int_equal(strlen(out), 3 * 255);
	assert_int_equal(out[0], 'a');
	assert_int_equal(out[255], 'b');
	assert_int_equal(out[3 * 255 - 1], 'c');
	/* a buffer one octet short of the joined text and its NUL */
	assert_int_equal(dns_txt_decode(big, o, out, 3 * 255, &len, &why), -1);
	assert_string_equal(out, "");
	assert_int_equal(dns_txt_decode(one, 6, out, 0, &len, &why), -1);

	/* refused: empty rdata, a string past the end, a NUL */
	assert_int_equal(dns_txt_decode(one, 0, out, sizeof(out), &len, &why), -1);
	static const uint8_t past[] = "\6hello";
	assert_int_equal(dns_txt_decode(past, 6, out, sizeof(out), &len, &why), -1);
	/* a good first string, then a bad one: nothing is left in out */
	static const uint8_t half[] = "\3abc\300";
	assert_int_equal(dns_txt_decode(half, 5, out, sizeof(out), &len, &why), -1);
	assert_string_equal(out, "");
	static const uint8_t nul[] = "\3a\0b";
	why = NULL;
	assert_int_equal(dns_txt_decode(nul, 4, out, sizeof(out), &len, &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, "NUL"));

	/* proper prefixes that cut a string are refused */
	for (size_t k = 1; k < sizeof(two) - 1; k++) {
		uint8_t *p = malloc(k);
		assert_non_null(p);
		memcpy(p, two, k);
		int rc = dns_txt_decode(p, k, out, sizeof(out), &len, &why);
		/* a prefix ending exactly after a string is a shorter record */
		bool boundary = k == 4 || k == 9 || k == 10;
		assert_int_equal(rc, boundary ? 0 : -1);
		free(p);
	}
}

/* ----------------------------------------------------------------- A, AAAA */

static void test_addr(void **state)
{
	struct sockaddr_storage ss;
	char text[INET6_ADDRSTRLEN];
	const char *why;
	(void)state;

	static const uint8_t a[] = { 192, 0, 2, 1 };
	assert_int_equal(dns_addr_decode(DNS_TYPE_A, a, 4, &ss, &why), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
	assert_int_equal(in->sin_port, 0);
	assert_non_null(inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)));
	assert_string_equal(text, "192.0.2.1");

	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	a6[15] = 1;
	assert_int_equal(dns_addr_decode(DNS_TYPE_AAAA, a6, 16, &ss, &why), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
	assert_int_equal(in6->sin6_port, 0);
	assert_non_null(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)));
	assert_string_equal(text, "2001:db8::1");

	assert_int_equal(dns_addr_decode(DNS_TYPE_A, a, 3, &ss, &why), -1);
	assert_int_equal(dns_addr_decode(DNS_TYPE_A, a6, 5, &ss, &why), -1);
	assert_int_equal(dns_addr_decode(DNS_TYPE_AAAA, a6, 15, &ss, &why), -1);
	assert_int_equal(dns_addr_decode(DNS_TYPE_AAAA, a, 4, &ss, &why), -1);
	assert_int_equal(dns_addr_decode(DNS_TYPE_MX, a, 4, &ss, &why), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_ok_table),
		cmocka_unit_test(test_name_ok_lengths),
		cmocka_unit_test(test_name_decode_table),
		cmocka_unit_test(test_name_decode_limits),
		cmocka_unit_test(test_name_decode_prefixes),
		cmocka_unit_test(test_mx),
		cmocka_unit_test(test_tlsa),
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
