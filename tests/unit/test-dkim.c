/*
 * test-dkim.c — src/mime/dkim-sign: relaxed canonicalisation tables (RFC
 * 6376 §3.4.5 and edge cases), the RFC 8463 Appendix A example (our bh=
 * and b= equal the published ones: Ed25519 is deterministic), the h=
 * list (bottom-most instance, From over-signed), the folded output, the
 * refusals, and key generation round trips.  python3-dkim checks the
 * signatures independently in tests/e2e/test_dkim.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dkim-sign.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink {
	char b[8192];
	size_t n;
} sink;

static void sink_emit(void *ctx, const uint8_t *p, size_t n)
{
	sink *s = ctx;
	assert_true(s->n + n < sizeof(s->b));
	memcpy(s->b + s->n, p, n);
	s->n += n;
	s->b[s->n] = '\0';
}

/* The relaxed canonical header section (all fields) and body of msg. */
static void canon(const char *msg, sink *h, sink *b)
{
	const uint8_t *m = (const uint8_t *)msg;
	mail_header_iter it;
	mail_field f;

	h->n = b->n = 0;
	h->b[0] = b->b[0] = '\0';
	mail_header_iter_init(&it, m, strlen(msg));
	while (mail_header_next(&it, &f) == 1)
		dkim_canon_header_relaxed(m, &f, true, sink_emit, h);
	dkim_canon_body_relaxed(m + it.body_off, strlen(msg) - it.body_off,
				sink_emit, b);
}

static void test_canon_rfc6376(void **state)
{
	(void)state;
	sink h, b;
	/* RFC 6376 §3.4.5 */
	canon("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n",
	      &h, &b);
	assert_string_equal(h.b, "a:X\r\nb:Y Z\r\n");
	assert_string_equal(b.b, " C\r\nD E\r\n");
}

static void test_canon_table(void **state)
{
	(void)state;
	static const struct {
		const char *in, *hdr, *body;
	} cases[] = {
		/* empty body: the empty string (RFC 6376 errata 3192) */
		{"From: a\r\n\r\n", "from:a\r\n", ""},
		{"From: a\r\n", "from:a\r\n", ""},
		{"From: a\r\n\r\n\r\n\r\n", "from:a\r\n", ""},
		{"From: a\r\n\r\n \t \r\n\r\n", "from:a\r\n", ""},
		/* no final CRLF: one is added */
		{"From: a\r\n\r\nx", "from:a\r\n", "x\r\n"},
		{"From: a\r\n\r\nx  \t", "from:a\r\n", "x\r\n"},
		/* bare LF taken as CRLF */
		{"From: a\n\nx\n\ny \n\n", "from:a\r\n", "x\r\n\r\ny\r\n"},
		/* inner empty lines stay, trailing ones go */
		{"From: a\r\n\r\n\r\n\r\nx\r\n\r\n", "from:a\r\n",
		 "\r\n\r\nx\r\n"},
		/* leading WSP of a line: one SP */
		{"From: a\r\n\r\n\t\tx\ty\r\n", "from:a\r\n", " x y\r\n"},
		/* header: name case, colon blanks, folded value, empty value */
		{"SUBJECT :  a \r\n  b\r\nX-Empty:\r\nTo:\t\r\n\r\n",
		 "subject:a b\r\nx-empty:\r\nto:\r\n", ""},
		/* a CR not before LF is an ordinary byte */
		{"From: a\r\n\r\nx\ry\r\n", "from:a\r\n", "x\ry\r\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sink h, b;
		canon(cases[i].in, &h, &b);
		if (strcmp(h.b, cases[i].hdr) != 0 ||
		    strcmp(b.b, cases[i].body) != 0)
			fail_msg("case %zu: header [%s] body [%s]", i, h.b, b.b);
	}
}

/* hdr without line ends and blanks, to look at the tags. */
static void flatten(const char *hdr, char *out, size_t size)
{
	size_t n = 0;
	for (const char *p = hdr; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n' || *p == ' ')
			continue;
		assert_true(n + 1 < size);
		out[n++] = *p;
	}
	out[n] = '\0';
}

/* Every line of a folded field is at most 78 columns, lines after the
 * first start with a blank, and the field ends in CRLF. */
static void check_folded(const char *hdr)
{
	const char *p = hdr;
	size_t n = strlen(hdr);
	assert_true(n > 2 && strcmp(hdr + n - 2, "\r\n") == 0);
	assert_true(strncmp(hdr, "DKIM-Signature: v=1;", 20) == 0);
	while (*p != '\0') {
		const char *e = strstr(p, "\r\n");
		assert_non_null(e);
		if ((size_t)(e - p) > 78)
			fail_msg("line of %zu columns: %.*s", (size_t)(e - p),
				 (int)(e - p), p);
		if (p != hdr)
			assert_true(*p == ' ');
		p = e + 2;
	}
}

/* RFC 8463 Appendix A: the Ed25519 key (A.1, as PKCS#8) and message. */
static const char rfc8463_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
	"-----END PRIVATE KEY-----\n";
static const char rfc8463_msg[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n";

static void test_rfc8463(void **state)
{
	(void)state;
	static const char *const h[] = {"from", "to", "subject", "date",
					"message-id", "from", "subject",
					"date"};
	const char *sig =
		"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
		" d=football.example.com; i=@football.example.com;\r\n"
		" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
		" subject : date : message-id : from : subject : date;\r\n"
		" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
		" b=";
	const char *error = NULL;
	char bh[DKIM_BH_SIZE], *b = NULL, *hdr = NULL;
	dkim_key *k = NULL;

	assert_int_equal(dkim_key_load_pem(rfc8463_pem, strlen(rfc8463_pem),
					   &k, &error), 0);
	assert_int_equal(dkim_key_alg(k), DKIM_ED25519);
	assert_int_equal(dkim_body_hash((const uint8_t *)rfc8463_msg,
					strlen(rfc8463_msg), bh, &error), 0);
	assert_string_equal(bh, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	assert_int_equal(dkim_sign_raw(k, (const uint8_t *)rfc8463_msg,
				       strlen(rfc8463_msg), h, 8, sig, &b,
				       &error), 0);
	assert_string_equal(b, "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSw"
			       "hEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
	free(b);

	/* Our own field for the same message: h= lists what is present,
	 * From twice; bh= is the same. */
	assert_int_equal(dkim_sign(k, "football.example.com", "brisbane",
				   (const uint8_t *)rfc8463_msg,
				   strlen(rfc8463_msg), 1528637909, &hdr,
				   &error), 0);
	{
		char flat[4096];
		flatten(hdr, flat, sizeof(flat));
		assert_non_null(strstr(flat, "a=ed25519-sha256;"));
		assert_non_null(strstr(
			flat, "h=from:from:to:subject:date:message-id;"));
		assert_non_null(strstr(flat, "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQj"
					     "O6Sn7XIkfJVOzv8=;"));
	}
	check_folded(hdr);
	free(hdr);
	dkim_key_free(&k);
	assert_null(k);
	dkim_key_free(&k);
}

static void test_sign_fields(void **state)
{
	(void)state;
	const char *error = NULL;
	char *pem = NULL, *txt = NULL, *hdr = NULL;
	dkim_key *k = NULL;
	const char *msg =
		"Received: x\r\n"
		"From: first <a@example.org>\r\n"
		"Subject: one\r\n"
		"To: b@example.net\r\n"
		"Subject: two\r\n"
		"X-Not-Signed: y\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"body";

	assert_int_equal(dkim_keygen(DKIM_RSA2048, &pem, &txt, &error), 0);
	assert_true(strncmp(txt, "v=DKIM1; k=rsa; p=MIIB", 22) == 0);
	assert_int_equal(dkim_key_load_pem(pem, strlen(pem), &k, &error), 0);
	assert_int_equal(dkim_key_alg(k), DKIM_RSA2048);
	dkim_pem_free(&pem);
	assert_null(pem);
	assert_int_equal(dkim_sign(k, "example.org", "s2026",
				   (const uint8_t *)msg, strlen(msg), 42, &hdr,
				   &error), 0);
	check_folded(hdr);
	{
		char flat[4096];
		flatten(hdr, flat, sizeof(flat));
		assert_non_null(strstr(flat, "a=rsa-sha256;"));
		assert_non_null(strstr(flat, "d=example.org;s=s2026;t=42;"));
		/* From over-signed, the one To, Subject once (the bottom one
		 * is what a verifier takes), Content-Type */
		assert_non_null(strstr(flat, "h=from:from:to:subject:"
					     "content-type;"));
	}
	free(hdr);

	/* a long To and many fields: still folded */
	{
		char big[4096];
		int n = snprintf(big, sizeof(big),
				 "From: a@example.org\r\nFrom: b@example.org\r\n"
				 "To: %0300d@example.net\r\nCc: c\r\n"
				 "Subject: s\r\nDate: d\r\nMessage-ID: <m>\r\n"
				 "MIME-Version: 1.0\r\nContent-Type: t\r\n"
				 "Content-Transfer-Encoding: 8bit\r\n"
				 "Reply-To: r\r\nIn-Reply-To: <i>\r\n"
				 "References: <i>\r\n\r\nx\r\n", 7);
		assert_true(n > 0 && (size_t)n < sizeof(big));
		assert_int_equal(dkim_sign(k, "a-very-long-signing-domain."
					   "example.org", "selector-2026-11",
					   (const uint8_t *)big, (size_t)n,
					   UINT64_C(4102444800), &hdr, &error),
				 0);
		check_folded(hdr);
		free(hdr);
	}
	dkim_key_free(&k);
	free(txt);
}

static void test_refusals(void **state)
{
	(void)state;
	const char *error = NULL;
	char *hdr = NULL;
	dkim_key *k = NULL;
	const char *ok = "From: a\r\n\r\nx\r\n";

	assert_int_equal(dkim_key_load_pem("junk", 4, &k, &error), -1);
	assert_non_null(error);
	assert_int_equal(dkim_key_load_pem(rfc8463_pem, strlen(rfc8463_pem),
					   &k, &error), 0);
	/* no From */
	assert_int_equal(dkim_sign(k, "example.org", "s",
				   (const uint8_t *)"To: a\r\n\r\n", 9, 0,
				   &hdr, &error), -1);
	/* bad domain / selector */
	assert_int_equal(dkim_sign(k, "exa mple.org", "s",
				   (const uint8_t *)ok, strlen(ok), 0, &hdr,
				   &error), -1);
	assert_int_equal(dkim_sign(k, "example.org", "s;x=1",
				   (const uint8_t *)ok, strlen(ok), 0, &hdr,
				   &error), -1);
	assert_int_equal(dkim_sign(k, "", "s", (const uint8_t *)ok,
				   strlen(ok), 0, &hdr, &error), -1);
	/* too many From */
	{
		char m[512];
		size_t n = 0;
		for (int i = 0; i <= DKIM_MAX_FROM; i++) {
			memcpy(m + n, "From: a\r\n", 9);
			n += 9;
		}
		assert_int_equal(dkim_sign(k, "example.org", "s",
					   (const uint8_t *)m, n, 0, &hdr,
					   &error), -1);
	}
	/* a header section over 1 MiB */
	{
		size_t n = DKIM_MAX_HEADER + 100;
		char *m = malloc(n);
		assert_non_null(m);
		memcpy(m, "From: a\r\nX: ", 12);
		memset(m + 12, 'x', n - 12 - 4);
		memcpy(m + n - 4, "\r\n\r\n", 4);
		assert_int_equal(dkim_sign(k, "example.org", "s",
					   (const uint8_t *)m, n, 0, &hdr,
					   &error), -1);
		assert_string_equal(error, "header section too large to sign");
		free(m);
	}
	/* a big body is fine (hashed in place) */
	{
		size_t n = 8 * 1024 * 1024;
		char *m = malloc(n);
		assert_non_null(m);
		memset(m, 'y', n);
		memcpy(m, "From: a\r\n\r\n", 11);
		for (size_t i = 100; i < n; i += 100)
			memcpy(m + i - 2, "\r\n", 2);
		assert_int_equal(dkim_sign(k, "example.org", "s",
					   (const uint8_t *)m, n, 0, &hdr,
					   &error), 0);
		free(hdr);
		free(m);
	}
	dkim_key_free(&k);
}

static void test_keygen_ed25519(void **state)
{
	(void)state;
	const char *error = NULL;
	char *pem = NULL, *txt = NULL, *hdr = NULL;
	dkim_key *k = NULL;
	const char *msg = "From: a\r\n\r\n";
	uint8_t pk[64];
	size_t pk_len = 0;

	assert_int_equal(dkim_keygen(DKIM_ED25519, &pem, &txt, &error), 0);
	assert_true(strncmp(txt, "v=DKIM1; k=ed25519; p=", 22) == 0);
	assert_int_equal(sodium_base642bin(pk, sizeof(pk), txt + 22,
					   strlen(txt + 22), NULL, &pk_len,
					   NULL,
					   sodium_base64_VARIANT_ORIGINAL), 0);
	assert_int_equal(pk_len, 32);
	assert_non_null(strstr(pem, "BEGIN PRIVATE KEY"));
	assert_int_equal(dkim_key_load_pem(pem, strlen(pem), &k, &error), 0);
	dkim_pem_free(&pem);
	assert_int_equal(dkim_sign(k, "example.org", "s", (const uint8_t *)msg,
				   strlen(msg), 1, &hdr, &error), 0);
	/* empty body: bh of the empty string */
	assert_non_null(strstr(hdr, "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS"
				    "uFU=;"));
	check_folded(hdr);
	free(hdr);
	dkim_key_free(&k);
	free(txt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canon_rfc6376),
		cmocka_unit_test(test_canon_table),
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_sign_fields),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_keygen_ed25519),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
