/*
 * test-srs.c — the Sender Rewriting Scheme (src/smtp/srs.c): SRS0 and
 * SRS1 forms written exactly, round trips (forward then reverse, also
 * through a second forwarder and back), case changes on the way back,
 * '+'/'-' separators, forgery (another key, every one-character change of
 * the hash, a swapped domain or local part), expiry at max_age and the
 * 1024-day wrap, the 64-octet local-part limit, refused addresses and
 * configurations.
 */
#include "test-common.h"

#include "srs.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY UINT64_C(86400)

static srs_config cfg(const char *domain, uint8_t keybyte)
{
	srs_config c;
	memset(&c, 0, sizeof(c));
	memset(c.key, keybyte, sizeof(c.key));
	c.domain = domain;
	return c;
}

static const char *fwd(const srs_config *c, const char *s, uint64_t now,
		       char out[SRS_ADDR_MAX + 1])
{
	const char *err = NULL;
	if (srs_forward(c, s, now, out, &err) != 0)
		fail_msg("forward %s refused: %s", s, err);
	return out;
}

static const char *rev(const srs_config *c, const char *s, uint64_t now,
		       char out[SRS_ADDR_MAX + 1])
{
	const char *err = NULL;
	if (srs_reverse(c, s, now, out, &err) != 0)
		fail_msg("reverse %s refused: %s", s, err);
	return out;
}

static const char *rev_err(const srs_config *c, const char *s, uint64_t now)
{
	char out[SRS_ADDR_MAX + 1];
	const char *err = NULL;
	if (srs_reverse(c, s, now, out, &err) == 0)
		fail_msg("reverse %s accepted: %s", s, out);
	assert_string_equal(out, "");
	assert_non_null(err);
	return err;
}

static void test_srs0_form(void **state)
{
	(void)state;
	srs_config c = cfg("fwd.example", 1);
	char out[SRS_ADDR_MAX + 1], back[SRS_ADDR_MAX + 1];
	/* day 20454 = 2026-01-01: 20454 % 1024 = 998 = 31*32 + 6: "7G" */
	fwd(&c, "alice@example.com", T_NOW, out);
	assert_int_equal(strlen(out), strlen("SRS0=HHHHHH=7G=example.com=alice"
					     "@fwd.example"));
	assert_true(strncmp(out, "SRS0=", 5) == 0);
	assert_true(strcmp(out + 11, "=7G=example.com=alice@fwd.example") ==
		    0);
	for (int i = 5; i < 11; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
				       out[i]));
	assert_true(srs_is_srs(out));
	assert_string_equal(rev(&c, out, T_NOW, back), "alice@example.com");
	/* deterministic; another key, another hash */
	char again[SRS_ADDR_MAX + 1];
	assert_string_equal(fwd(&c, "alice@example.com", T_NOW, again), out);
	srs_config c2 = cfg("fwd.example", 2);
	fwd(&c2, "alice@example.com", T_NOW, again);
	assert_string_not_equal(again, out);
	/* hash lengths */
	for (unsigned hl = SRS_HASH_MIN; hl <= SRS_HASH_MAX; hl++) {
		c.hash_len = hl;
		fwd(&c, "alice@example.com", T_NOW, out);
		assert_int_equal(strchr(out + 5, '=') - (out + 5), hl);
		assert_string_equal(rev(&c, out, T_NOW, back),
				    "alice@example.com");
	}
	/* our own domain: unchanged */
	c.hash_len = 0;
	assert_string_equal(fwd(&c, "bob@FWD.example", T_NOW, out),
			    "bob@FWD.example");
	/* local parts with '=', '+', 8-bit */
	assert_string_equal(rev(&c, fwd(&c, "a=b+c@example.com", T_NOW, out),
				T_NOW, back), "a=b+c@example.com");
	assert_string_equal(rev(&c, fwd(&c, "j\xc3\xb6rg@b\xc3\xbc" "cher.de",
					T_NOW, out), T_NOW, back),
			    "j\xc3\xb6rg@b\xc3\xbc" "cher.de");
}

static void upper_str(char *s)
{
	for (; *s; s++)
		*s = (char)toupper((unsigned char)*s);
}

static void lower_str(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void test_case_insensitive(void **state)
{
	(void)state;
	srs_config c = cfg("fwd.example", 3);
	char out[SRS_ADDR_MAX + 1], back[SRS_ADDR_MAX + 1];
	fwd(&c, "Alice@Example.com", T_NOW, out);
	upper_str(out);
	assert_string_equal(rev(&c, out, T_NOW, back), "ALICE@EXAMPLE.COM");
	lower_str(out);
	assert_string_equal(rev(&c, out, T_NOW, back), "alice@example.com");
	assert_true(srs_is_srs("srs0=x@y"));
	assert_true(srs_is_srs("SrS1+x@y"));
	assert_false(srs_is_srs("SRS2=x@y"));
	assert_false(srs_is_srs("SRS0x@y"));
	assert_false(srs_is_srs("SRS0@y"));
	assert_false(srs_is_srs(NULL));
}

static void test_srs1_chain(void **state)
{
	(void)state;
	srs_config a = cfg("first.example", 4), b = cfg("second.example", 5),
		   d = cfg("third.example", 6);
	char s0[SRS_ADDR_MAX + 1], s1[SRS_ADDR_MAX + 1], s1b[SRS_ADDR_MAX + 1];
	char back[SRS_ADDR_MAX + 1], orig[SRS_ADDR_MAX + 1];
	fwd(&a, "u@origin.example", T_NOW, s0);
	/* the second forwarder makes SRS1 */
	fwd(&b, s0, T_NOW, s1);
	const char *s0_local_tail = strchr(s0, '=');   /* "=HHH=TT=..." */
	char want[SRS_ADDR_MAX + 1];
	size_t tail_len = (size_t)(strchr(s0, '@') - s0_local_tail);
	snprintf(want, sizeof(want), "=first.example=%.*s@second.example",
		 (int)tail_len, s0_local_tail);
	assert_true(strncmp(s1, "SRS1=", 5) == 0);
	assert_string_equal(s1 + 5 + SRS_HASH_DEFAULT, want);
	/* a third forwarder rewrites SRS1 into SRS1 with its own hash, the
	 * original host kept */
	fwd(&d, s1, T_NOW, s1b);
	assert_true(strncmp(s1b, "SRS1=", 5) == 0);
	assert_non_null(strstr(s1b, "=first.example=="));
	assert_true(strstr(s1b, "@third.example") != NULL);
	/* bounces come back: third -> first directly (SRS1 names the host
	 * that made the SRS0), first -> origin */
	rev(&d, s1b, T_NOW, back);
	assert_string_equal(back, s0);
	rev(&b, s1, T_NOW, back);
	assert_string_equal(back, s0);
	assert_string_equal(rev(&a, back, T_NOW, orig), "u@origin.example");
	/* SRS1 carries no stamp: no expiry at the second forwarder */
	rev(&b, s1, T_NOW + 500 * DAY, back);
	assert_string_equal(back, s0);
	/* the SRS0 inside it does expire at the first */
	rev_err(&a, s0, T_NOW + 22 * DAY);
	/* another key cannot reverse SRS1 */
	rev_err(&d, s1, T_NOW);
	/* '+' and '-' separators on input */
	char plus[SRS_ADDR_MAX + 1];
	snprintf(plus, sizeof(plus), "SRS0+%s", s0 + 5);
	fwd(&b, plus, T_NOW, s1);
	assert_true(strncmp(s1, "SRS1=", 5) == 0);
	rev(&b, s1, T_NOW, back);
	assert_string_equal(back, plus);
	/* an SRS1-looking local part that does not parse: plain SRS0 */
	fwd(&b, "SRS1=nothing@else.example", T_NOW, s1);
	assert_true(strncmp(s1, "SRS0=", 5) == 0);
	rev(&b, s1, T_NOW, back);
	assert_string_equal(back, "SRS1=nothing@else.example");
}

static void test_forgery(void **state)
{
	(void)state;
	srs_config c = cfg("fwd.example", 7), other = cfg("fwd.example", 8);
	char out[SRS_ADDR_MAX + 1], tmp[SRS_ADDR_MAX + 1];
	fwd(&c, "alice@example.com", T_NOW, out);
	rev_err(&other, out, T_NOW);
	/* every other character in every hash position */
	for (int i = 5; i < 5 + (int)SRS_HASH_DEFAULT; i++) {
		for (const char *p = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"; *p;
		     p++) {
			if (*p == out[i])
				continue;
			memcpy(tmp, out, strlen(out) + 1);
			tmp[i] = *p;
			rev_err(&c, tmp, T_NOW);
		}
	}
	/* a changed domain, local part or stamp */
	static const char *const edits[][2] = {
		{ "example.com", "example.org" },
		{ "=alice@", "=alicf@" },
		{ "=7G=", "=7H=" },
	};
	for (size_t i = 0; i < 3; i++) {
		memcpy(tmp, out, strlen(out) + 1);
		char *at = strstr(tmp, edits[i][0]);
		assert_non_null(at);
		memcpy(at, edits[i][1], strlen(edits[i][1]));
		assert_string_equal(rev_err(&c, tmp, T_NOW),
				    "the SRS0 address's hash is wrong");
	}
	/* shorter or longer hash */
	char h[2 * SRS_ADDR_MAX];
	snprintf(h, sizeof(h), "SRS0=%.5s%s", out + 5, out + 11);
	rev_err(&c, h, T_NOW);
	snprintf(h, sizeof(h), "SRS0=%.6sA%s", out + 5, out + 11);
	rev_err(&c, h, T_NOW);
	/* malformed */
	static const char *const bad[] = {
		"alice@fwd.example", "SRS0=@fwd.example",
		"SRS0=AAAAAA=7G=example.com@fwd.example",
		"SRS0=AAAAAA=7G=example.com=@fwd.example",
		"SRS0=AAAAAA=7=example.com=a@fwd.example",
		"SRS0=AAAAAA=7G==a@fwd.example",
		"SRS1=AAAAAA=host.example@fwd.example",
		"SRS1=AAAAAA==x@fwd.example",
		"SRS1=AAAAAA=host.example=x@fwd.example",
		"SRS1=AAAAAA=host.example==@fwd.example",
		"", "fwd.example", "@fwd.example",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rev_err(&c, bad[i], T_NOW);
	/* a genuine address at another domain */
	memcpy(tmp, out, strlen(out) + 1);
	memcpy(strchr(tmp, '@'), "@elsewhere.example", sizeof("@elsewhere.example"));
	assert_string_equal(rev_err(&c, tmp, T_NOW),
			    "the address is not at our SRS domain");
}

static void test_expiry(void **state)
{
	(void)state;
	srs_config c = cfg("fwd.example", 9);
	char out[SRS_ADDR_MAX + 1], back[SRS_ADDR_MAX + 1];
	uint64_t t0 = T_NOW + 3600;     /* any time of day */
	fwd(&c, "alice@example.com", t0, out);
	for (unsigned d = 0; d <= SRS_MAX_AGE_DEFAULT; d++)
		rev(&c, out, t0 + d * DAY, back);
	assert_string_equal(rev_err(&c, out, t0 + 22 * DAY),
			    "the SRS0 address has expired");
	rev_err(&c, out, t0 - DAY);     /* from the future */
	rev_err(&c, out, t0 + 1000 * DAY);
	/* the 1024-day wrap: valid again after 1024 days (the scheme's
	 * known limit; the hash is the same) */
	rev(&c, out, t0 + 1024 * DAY, back);
	/* stamps across the wrap of the day counter */
	uint64_t wrap = (UINT64_C(20480) - 1) * DAY;   /* day % 1024 == 1023 */
	fwd(&c, "alice@example.com", wrap, out);
	rev(&c, out, wrap + 5 * DAY, back);
	/* a configured max_age */
	c.max_age = 1;
	fwd(&c, "alice@example.com", t0, out);
	rev(&c, out, t0 + DAY, back);
	rev_err(&c, out, t0 + 2 * DAY);
}

static void test_limits(void **state)
{
	(void)state;
	srs_config c = cfg("fwd.example", 10);
	char out[SRS_ADDR_MAX + 1], back[SRS_ADDR_MAX + 1];
	const char *err = NULL;
	/* "SRS0=" 5 + hash 6 + "=" + TT 2 + "=" + domain + "=" + local:
	 * 16 + 11 + 37 = 64 */
	char addr[300];
	memset(addr, 'l', 37);
	memcpy(addr + 37, "@example.com", sizeof("@example.com"));
	fwd(&c, addr, T_NOW, out);
	assert_int_equal(strchr(out, '@') - out, 64);
	assert_string_equal(rev(&c, out, T_NOW, back), addr);
	memset(addr, 'l', 38);
	memcpy(addr + 38, "@example.com", sizeof("@example.com"));
	assert_int_equal(srs_forward(&c, addr, T_NOW, out, &err), -1);
	assert_string_equal(err, "the rewritten local part would be longer "
			    "than 64 octets");
	assert_string_equal(out, "");
	/* SRS1 from a long SRS0 */
	memset(addr, 'x', 60);
	memcpy(addr + 60, "@h.example", sizeof("@h.example"));
	memcpy(addr, "SRS0=", 5);
	assert_int_equal(srs_forward(&c, addr, T_NOW, out, &err), -1);
	/* refused senders */
	static const char *const bad[] = {
		"", "nobody", "@example.com", "a@", "a b@example.com",
		"\"a\"@example.com", "a@exa mple.com", "a@[192.0.2.1]",
		"a@ex=ample.com", "a@.example.com", "a@example..com",
		"a@example.com.", "a\r\n@example.com", "a@ex\xff.com",
		"\xc3@example.com",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (srs_forward(&c, bad[i], T_NOW, out, &err) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(err);
		assert_string_equal(out, "");
	}
	assert_int_equal(srs_forward(&c, NULL, T_NOW, out, &err), -1);
	char l65[80];
	memset(l65, 'a', 65);
	memcpy(l65 + 65, "@b", sizeof("@b"));
	assert_int_equal(srs_forward(&c, l65, T_NOW, out, &err), -1);
	/* configurations */
	srs_config bc = c;
	bc.hash_len = 3;
	assert_int_equal(srs_forward(&bc, "a@b.example", T_NOW, out, &err), -1);
	bc.hash_len = 17;
	assert_int_equal(srs_reverse(&bc, "a@b.example", T_NOW, out, &err), -1);
	bc = c;
	bc.max_age = SRS_DAYS;
	assert_int_equal(srs_forward(&bc, "a@b.example", T_NOW, out, &err), -1);
	bc = c;
	bc.domain = NULL;
	assert_int_equal(srs_forward(&bc, "a@b.example", T_NOW, out, &err), -1);
	bc.domain = "bad domain";
	assert_int_equal(srs_forward(&bc, "a@b.example", T_NOW, out, &err), -1);
	/* the longest accepted domain */
	char dom[SRS_DOMAIN_MAX + 1];
	for (size_t i = 0; i < SRS_DOMAIN_MAX - 1; i += 2)
		memcpy(dom + i, "a.", 2);
	dom[SRS_DOMAIN_MAX - 1] = 'a';
	dom[SRS_DOMAIN_MAX] = '\0';
	bc = c;
	bc.domain = dom;
	fwd(&bc, "a@b.example", T_NOW, out);
	assert_int_equal(strlen(out), strchr(out, '@') - out + 1 +
			 SRS_DOMAIN_MAX);
	assert_string_equal(rev(&bc, out, T_NOW, back), "a@b.example");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_srs0_form),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_srs1_chain),
		cmocka_unit_test(test_forgery),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
