/*
 * test-egress.c — src/mime/egress: the outbound rewrite of a user's
 * message.  Whole messages in, exact bytes out: a realistic message with
 * two AMP-Egress-To fields and a Bcc; DIDs in To with display names and
 * angle brackets; a mapped From; From / Sender that are not the sender;
 * Date and Message-ID added; duplicate fields; bare LF; 8-bit and
 * SMTPUTF8 flags; recipients missing, invalid, duplicated, too many; a
 * header without body; the header limits; DID token edges.  The DID
 * scanner is compared with libamp's amp_did_parse on the committed
 * vectors (tests/vectors/did.json) and on generated strings.  The
 * fuzz target tests/fuzz/fuzz-egress.c feeds random bytes.
 */
#include "test-common.h"

#include "egress.h"

#define SENDER "did:aftersmtp:example.org:alice"
static const uint8_t rnd[16] = {
	0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03,
	0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
};
#define RND_HEX "deadbeef000102030405060708090a0b"
#define ADDED_DATE "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
#define ADDED_ID "Message-ID: <" RND_HEX "@gw.example.org>\r\n"

/* The map: alice at corp.example when `mapped`; bob always. */
typedef struct map_arg {
	bool mapped;
	const char *bad; /* returned for carol when set */
	size_t calls;
} map_arg;

static const char *map(void *arg, const char *did, char *buf, size_t cap)
{
	map_arg *a = arg;
	a->calls++;
	const char *to = NULL;
	if (strcmp(did, "did:aftersmtp:example.org:alice") == 0 && a->mapped)
		to = "Alice.Smith@corp.example";
	else if (strcmp(did, "did:aftersmtp:example.net:bob") == 0)
		to = "robert@bob.example";
	else if (strcmp(did, "did:aftersmtp:example.net:carol") == 0)
		to = a->bad;
	if (to == NULL)
		return NULL;
	assert_true(strlen(to) < cap);
	memcpy(buf, to, strlen(to) + 1);
	return buf;
}

static void run_ok(const char *in, map_arg *ma, egress_result *res)
{
	const char *err = NULL;
	int rc = egress_prepare((const uint8_t *)in, strlen(in), SENDER, map,
				ma, "gw.example.org", rnd, T_NOW, res, &err);
	if (rc != 0)
		fail_msg("egress_prepare: %s", err);
	/* CRLF only */
	for (size_t i = 0; i < res->len; i++) {
		if (res->msg[i] == '\r')
			assert_true(i + 1 < res->len && res->msg[i + 1] == '\n');
		if (res->msg[i] == '\n')
			assert_true(i > 0 && res->msg[i - 1] == '\r');
	}
}

static void expect(const char *in, map_arg *ma, const char *out)
{
	egress_result res;
	run_ok(in, ma, &res);
	if (res.len != strlen(out) || memcmp(res.msg, out, res.len) != 0)
		fail_msg("got:\n%.*s\nwant:\n%s", (int)res.len, res.msg, out);
	egress_result_free(&res);
}

static void expect_fail(const char *in, map_arg *ma, const char *why)
{
	egress_result res;
	const char *err = NULL;
	assert_int_equal(egress_prepare((const uint8_t *)in, strlen(in),
					SENDER, map, ma, "gw.example.org", rnd,
					T_NOW, &res, &err),
			 -1);
	assert_null(res.msg);
	assert_null(res.rcpts);
	assert_null(res.from_domain);
	assert_non_null(err);
	if (strstr(err, why) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" for:\n%s", err, why, in);
}

static void test_realistic(void **state)
{
	(void)state;
	map_arg ma = {0};
	egress_result res;
	const char *in =
		"AMP-Egress-To: bob@example.net, <carol@example.com>\r\n"
		"From: Alice <did:aftersmtp:example.org:alice>\r\n"
		"To: \"Bob B.\" <bob@example.net>,\r\n"
		" did:aftersmtp:example.net:bob (Bob again)\r\n"
		"Bcc: dave@example.com,\r\n"
		"\terin@example.com\r\n"
		"Subject:   keep   this  \r\n"
		"amp-egress-to: Dave@Example.COM,Dave@EXAMPLE.com , "
		"erin@example.com,bob@EXAMPLE.NET\r\n"
		"AMP-Client: x\r\n"
		"X-Mailer: test  (did:aftersmtp:example.org:alice)\r\n"
		"Date: Wed, 31 Dec 2025 10:00:00 +0100\r\n"
		"Message-ID: <m1@example.org>\r\n"
		"\r\n"
		"Hello did:aftersmtp:example.net:bob,\r\n"
		"AMP-Egress-To: not-a-field@body.example\r\n"
		"Bcc: also kept\r\n";
	run_ok(in, &ma, &res);
	const char *out =
		"From: Alice <alice@example.org>\r\n"
		"To: \"Bob B.\" <bob@example.net>,\r\n"
		" robert@bob.example (Bob again)\r\n"
		"Subject:   keep   this  \r\n"
		"X-Mailer: test  (did:aftersmtp:example.org:alice)\r\n"
		"Date: Wed, 31 Dec 2025 10:00:00 +0100\r\n"
		"Message-ID: <m1@example.org>\r\n"
		"\r\n"
		"Hello did:aftersmtp:example.net:bob,\r\n"
		"AMP-Egress-To: not-a-field@body.example\r\n"
		"Bcc: also kept\r\n";
	assert_int_equal(res.len, strlen(out));
	assert_memory_equal(res.msg, out, res.len);
	assert_int_equal(res.n_rcpts, 4);
	assert_string_equal(res.rcpts[0], "bob@example.net");
	assert_string_equal(res.rcpts[1], "carol@example.com");
	assert_string_equal(res.rcpts[2], "Dave@Example.COM");
	assert_string_equal(res.rcpts[3], "erin@example.com");
	assert_string_equal(res.from_domain, "example.org");
	assert_false(res.eightbit);
	assert_false(res.smtputf8);
	/* alice (sender, From) and bob (To) were looked up */
	assert_int_equal(ma.calls, 3);
	egress_result_free(&res);
	assert_null(res.msg);
	egress_result_free(&res); /* twice: harmless */
}

static void test_did_display_names(void **state)
{
	(void)state;
	map_arg ma = {0};
	expect("AMP-Egress-To: x@example.net\r\n"
	       "From: did:aftersmtp:example.org:alice\r\n"
	       "To: Carol <did:aftersmtp:example.net:carol>, \"did:aftersmtp:"
	       "example.net:dan\" <did:aftersmtp:example.net:dan>,\r\n"
	       "\tgroup:did:aftersmtp:a.example:x.y-z_1;\r\n"
	       "Cc: (did:aftersmtp:example.net:eve) did:aftersmtp:example.net:"
	       "eve.\r\n"
	       "Reply-To: Someone <DID:aftersmtp:example.net:up>, "
	       "xdid:aftersmtp:example.net:no, did:aftersmtp:example.net:noX,"
	       " did:aftersmtp:example.net:a..b\r\n"
	       "Resent-To: <did:aftersmtp:example.net:frank>\r\n"
	       "Resent-Cc: did:aftersmtp:example.net:gina@x\r\n"
	       "Subject: did:aftersmtp:example.net:unchanged\r\n"
	       "Date: x\r\nMessage-ID: <y>\r\n\r\nbody\r\n",
	       &ma,
	       "From: alice@example.org\r\n"
	       "To: Carol <carol@example.net>, \"dan@example.net\" "
	       "<dan@example.net>,\r\n"
	       "\tgroup:x.y-z_1@a.example;\r\n"
	       "Cc: (eve@example.net) eve@example.net.\r\n"
	       "Reply-To: Someone <DID:aftersmtp:example.net:up>, "
	       "xdid:aftersmtp:example.net:no, did:aftersmtp:example.net:noX,"
	       " did:aftersmtp:example.net:a..b\r\n"
	       "Resent-To: <frank@example.net>\r\n"
	       "Resent-Cc: did:aftersmtp:example.net:gina@x\r\n"
	       "Subject: did:aftersmtp:example.net:unchanged\r\n"
	       "Date: x\r\nMessage-ID: <y>\r\n\r\nbody\r\n");
}

static void test_mapped_from(void **state)
{
	(void)state;
	map_arg ma = { .mapped = true };
	egress_result res;
	run_ok("AMP-Egress-To: x@example.net\r\n"
	       "From: \"Alice S.\" <did:aftersmtp:example.org:alice>\r\n"
	       "Sender: did:aftersmtp:example.org:alice\r\n"
	       "\r\nhi\r\n", &ma, &res);
	const char *out =
		"From: \"Alice S.\" <Alice.Smith@corp.example>\r\n"
		"Sender: Alice.Smith@corp.example\r\n"
		ADDED_DATE ADDED_ID "\r\nhi\r\n";
	assert_int_equal(res.len, strlen(out));
	assert_memory_equal(res.msg, out, res.len);
	assert_string_equal(res.from_domain, "corp.example");
	egress_result_free(&res);
	/* the mapped address written by hand, domain in another case */
	run_ok("AMP-Egress-To: x@example.net\r\n"
	       "From: Alice.Smith@CORP.Example (me)\r\n\r\n", &ma, &res);
	assert_string_equal(res.from_domain, "corp.example");
	egress_result_free(&res);
	/* with a mapping, the default address is not the sender's */
	expect_fail("AMP-Egress-To: x@example.net\r\n"
		    "From: alice@example.org\r\n\r\n", &ma,
		    "From does not match the sender");
	/* local parts are compared exactly */
	expect_fail("AMP-Egress-To: x@example.net\r\n"
		    "From: alice.smith@corp.example\r\n\r\n", &ma,
		    "From does not match the sender");
}

static void test_from_checks(void **state)
{
	(void)state;
	map_arg ma = {0};
	const char *R = "AMP-Egress-To: x@example.net\r\n";
	char in[1024];
	static const struct {
		const char *from, *why;
	} bad[] = {
		{"From: mallory@example.org\r\n", "From does not match"},
		{"From: did:aftersmtp:example.net:bob\r\n",
		 "From does not match"},
		{"From: Alice <alice@example.org.evil>\r\n",
		 "From does not match"},
		{"From: alice@example.org, bob@example.net\r\n",
		 "exactly one mailbox"},
		{"From: \r\n", "exactly one mailbox"},
		{"From: friends: alice@example.org;\r\n", "group"},
		{"From: <alice@example.org\r\n", "unclosed '<'"},
		{"From: alice@example.org (x\r\n", "unclosed comment"},
		{"From: \"x <alice@example.org>\r\n", "unclosed quoted"},
		{"From: <a@b> <alice@example.org>\r\n", "second '<'"},
		{"From: alice@example.org>\r\n", "'>' without"},
		{"From: alice@example.org\r\nFrom: alice@example.org\r\n",
		 "more than one From"},
		{"To: x@y\r\n", "no From"},
		{"From: alice@example.org\r\nSender: bob@example.net\r\n",
		 "Sender does not match"},
		{"From: alice@example.org\r\nSubject: a\r\nsubject: b\r\n",
		 "more than one Subject"},
		{"From: alice@example.org\r\nDate: a\r\nDATE: b\r\n",
		 "more than one Date"},
		{"From: alice@example.org\r\nMessage-ID: <a>\r\n"
		 "Message-Id: <b>\r\n", "more than one Message-ID"},
		{"From: alice@example.org\r\nTo: a@b\r\nTo: c@d\r\n",
		 "more than one To"},
		{"From: alice@example.org\r\nCc: a@b\r\nCc: c@d\r\n",
		 "more than one Cc"},
		{"From: alice@example.org\r\nReply-To: a@b\r\nReply-To: a@b\r\n",
		 "more than one Reply-To"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "%s%s\r\nbody\r\n", R, bad[i].from);
		expect_fail(in, &ma, bad[i].why);
	}
	static const char *const good[] = {
		"From: alice@example.org\r\n",
		"From: Alice <alice@example.org>\r\n",
		"From: \"Smith, Alice\" <alice@ExAmPlE.org>\r\n",
		"From: (c) alice (d) @ (e) example.org (f)\r\n",
		"From: \"alice\"@example.org\r\n",
		"From: Alice\r\n <alice@example.org>\r\n",
		"From: alice@example.org,\r\n", /* an empty list element */
		"From: <did:aftersmtp:example.org:alice>\r\n"
		"Sender: Alice <alice@example.org>\r\n",
		/* Resent-* and several Bcc are not counted */
		"From: alice@example.org\r\nBcc: a@b\r\nBcc: c@d\r\n"
		"Resent-To: a@b\r\nResent-To: c@d\r\n",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		egress_result res;
		snprintf(in, sizeof(in), "%s%s\r\nbody\r\n", R, good[i]);
		run_ok(in, &ma, &res);
		assert_string_equal(res.from_domain, "example.org");
		egress_result_free(&res);
	}
}

static void test_added_fields(void **state)
{
	(void)state;
	map_arg ma = {0};
	expect("From: alice@example.org\r\nAMP-Egress-To: b@example.net\r\n"
	       "\r\nbody\r\n", &ma,
	       "From: alice@example.org\r\n" ADDED_DATE ADDED_ID
	       "\r\nbody\r\n");
	/* only the missing one */
	expect("From: alice@example.org\r\nAMP-Egress-To: b@example.net\r\n"
	       "Message-ID: <k@x>\r\n\r\n", &ma,
	       "From: alice@example.org\r\nMessage-ID: <k@x>\r\n" ADDED_DATE
	       "\r\n");
	/* a header without body, without even a final line end */
	expect("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org", &ma,
	       "From: alice@example.org\r\n" ADDED_DATE ADDED_ID "\r\n");
	expect("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org\r\n",
	       &ma, "From: alice@example.org\r\n" ADDED_DATE ADDED_ID "\r\n");
	/* the body starts at a line that is not a field: an empty line is
	 * put before it */
	expect("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org\r\n"
	       "this is the body\r\n", &ma,
	       "From: alice@example.org\r\n" ADDED_DATE ADDED_ID
	       "\r\nthis is the body\r\n");
	/* a CR that ends the message */
	expect("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org\r\n"
	       "\r\nx\r", &ma,
	       "From: alice@example.org\r\n" ADDED_DATE ADDED_ID
	       "\r\nx\r\n");
}

static void test_bare_lf(void **state)
{
	(void)state;
	map_arg ma = {0};
	expect("AMP-Egress-To: b@example.net\nFrom: Alice\n"
	       " <did:aftersmtp:example.org:alice>\nSubject: s\n"
	       "Date: d\nMessage-ID: <i>\n\nline 1\n\nline 3\r\nline 4\n\n",
	       &ma,
	       "From: Alice\r\n <alice@example.org>\r\nSubject: s\r\n"
	       "Date: d\r\nMessage-ID: <i>\r\n\r\nline 1\r\n\r\nline 3\r\n"
	       "line 4\r\n\r\n");
}

static void test_8bit(void **state)
{
	(void)state;
	map_arg ma = {0};
	egress_result res;
	run_ok("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org\r\n"
	       "\r\ncaf\xc3\xa9\r\n", &ma, &res);
	assert_true(res.eightbit);
	assert_false(res.smtputf8);
	egress_result_free(&res);
	run_ok("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org\r\n"
	       "Subject: caf\xc3\xa9\r\n\r\nplain\r\n", &ma, &res);
	assert_true(res.eightbit);
	assert_false(res.smtputf8);
	egress_result_free(&res);
	run_ok("AMP-Egress-To: j\xc3\xb6rg@b\xc3\xbc\x63her.example\r\n"
	       "From: alice@example.org\r\n\r\nplain\r\n", &ma, &res);
	assert_false(res.eightbit); /* the AMP-Egress-To field is gone */
	assert_true(res.smtputf8);
	assert_string_equal(res.rcpts[0], "j\xc3\xb6rg@b\xc3\xbc\x63her.example");
	egress_result_free(&res);
	run_ok("AMP-Egress-To: b@example.net\r\nFrom: alice@example.org\r\n"
	       "\r\nplain\r\n", &ma, &res);
	assert_false(res.eightbit);
	assert_false(res.smtputf8);
	egress_result_free(&res);
}

static void test_recipients(void **state)
{
	(void)state;
	map_arg ma = {0};
	char in[2048];
	const char *F = "From: alice@example.org\r\n";
	expect_fail("From: alice@example.org\r\n\r\nx\r\n", &ma,
		    "no recipient");
	expect_fail("From: alice@example.org\r\nAMP-Egress-To: \r\n"
		    "AMP-Egress-To: ,\r\n\r\n", &ma, "no recipient");
	/* a Bcc is not a recipient */
	expect_fail("From: alice@example.org\r\nBcc: b@example.net\r\n\r\n",
		    &ma, "no recipient");
	static const char *const bad[] = {
		"a b@example.net", "<a@example.net", "a@example.net>",
		"a@", "@example.net", "a", "a@@example.net",
		"a@-example.net", "a@example-.net", "a@example..net",
		"a.@example.net", ".a@example.net", "a..b@example.net",
		"did:aftersmtp:example.net:bob", "\"a b\"@example.net",
		"\"\"@example.net", "a@[1.2.3.4", "a@exa_mple.net",
		"Bob <b@example.net>", "a\x01@example.net",
		"\xc3@example.net", "a@\xc2\x80.example", "<>",
		"a\"b@example.net", "a@example.net;", "\"a\\\"@x.net",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "%sAMP-Egress-To: ok@example.net, "
			 "%s\r\n\r\n", F, bad[i]);
		expect_fail(in, &ma, "invalid recipient in AMP-Egress-To");
	}
	/* the error names the recipient, sanitised */
	egress_result res;
	const char *err = NULL;
	const char *m = "From: alice@example.org\r\n"
			"AMP-Egress-To: bad\x01one@x\r\n\r\n";
	assert_int_equal(egress_prepare((const uint8_t *)m, strlen(m), SENDER,
					NULL, NULL, "gw.example.org", rnd,
					T_NOW, &res, &err), -1);
	assert_string_equal(err, "invalid recipient in AMP-Egress-To: "
			    "\"bad?one@x\"");
	static const char *const good[] = {
		"a@example.net", "<a@example.net>", "a.b+c@example.net",
		"!#$%&'*+-/=?^_`{|}~@example.net", "\"a.b\"@example.net",
		"\"a,b\"@example.net", "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]",
		"x@localhost", "j\xc3\xb6rg@example.de",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(in, sizeof(in), "%sAMP-Egress-To: %s\r\n\r\n", F,
			 good[i]);
		run_ok(in, &ma, &res);
		assert_int_equal(res.n_rcpts, 1);
		const char *g = good[i][0] == '<' ? "a@example.net" : good[i];
		assert_string_equal(res.rcpts[0], g);
		egress_result_free(&res);
	}
	/* 254 octets is the most: 64 @ 63 . 63 . 61 */
	char addr[300];
	memset(addr, 'a', 64);
	addr[64] = '@';
	memset(addr + 65, 'b', 189);
	addr[65 + 63] = addr[65 + 127] = '.';
	addr[254] = '\0';
	assert_int_equal(strlen(addr), 254);
	assert_true(egress_addr_ok(addr, 254));
	snprintf(in, sizeof(in), "%sAMP-Egress-To: %s\r\n\r\n", F, addr);
	run_ok(in, &ma, &res);
	egress_result_free(&res);
	snprintf(in, sizeof(in), "%sAMP-Egress-To: %sb\r\n\r\n", F, addr);
	expect_fail(in, &ma, "invalid recipient");
	memset(addr, 'a', 65);
	memcpy(addr + 65, "@x.net", 7);
	assert_false(egress_addr_ok(addr, strlen(addr)));
}

static void test_recipient_count(void **state)
{
	(void)state;
	map_arg ma = {0};
	size_t cap = 64 * 1024;
	char *in = malloc(cap);
	assert_non_null(in);
	/* 1000 in 10 fields pass; a 1001st address is refused, even a
	 * duplicate (the count is of what the fields hold) */
	for (int extra = 0; extra < 2; extra++) {
		size_t k = (size_t)snprintf(in, cap, "From: alice@example.org\r\n");
		for (int f = 0; f < 10; f++) {
			k += (size_t)snprintf(in + k, cap - k, "AMP-Egress-To: ");
			for (int i = 0; i < 100; i++)
				k += (size_t)snprintf(in + k, cap - k,
						      "%su%d@example.net",
						      i ? "," : "",
						      f * 100 + i);
			k += (size_t)snprintf(in + k, cap - k, "\r\n");
		}
		if (extra)
			k += (size_t)snprintf(in + k, cap - k,
					      "AMP-Egress-To: u0@example.net\r\n");
		snprintf(in + k, cap - k, "\r\nbody\r\n");
		if (!extra) {
			egress_result res;
			run_ok(in, &ma, &res);
			assert_int_equal(res.n_rcpts, 1000);
			assert_string_equal(res.rcpts[999], "u999@example.net");
			egress_result_free(&res);
		} else {
			expect_fail(in, &ma, "more than 1000");
		}
	}
	free(in);
}

static void test_refusals(void **state)
{
	(void)state;
	map_arg ma = { .bad = "not an address" };
	const char *ok = "AMP-Egress-To: b@example.net\r\n"
			 "From: alice@example.org\r\n\r\nbody\r\n";
	egress_result res;
	const char *err = NULL;

	expect_fail(" leading: blank\r\nAMP-Egress-To: b@example.net\r\n"
		    "From: alice@example.org\r\n\r\n", &ma, "malformed");
	expect_fail("From alice@example.org Thu Jan  1 00:00:00 2026\r\n"
		    "AMP-Egress-To: b@example.net\r\n"
		    "From: alice@example.org\r\n\r\n", &ma, "malformed");
	expect_fail("AMP-Egress-To: b@example.net\r\n"
		    "From: alice@example.org\r\nSubject: a\rb\r\n\r\n", &ma,
		    "bare CR");
	expect_fail("AMP-Egress-To: b@example.net\r\n"
		    "From: alice@example.org\r\n\r\nbody\rmore\r\n", &ma,
		    "bare CR");
	expect_fail("AMP-Egress-To: b@example.net\r\n"
		    "From: alice@example.org\r\nTo: did:aftersmtp:example.net:"
		    "carol\r\n\r\n", &ma, "the map gives an invalid address");
	/* NUL anywhere */
	static const char nul[] = "AMP-Egress-To: b@example.net\r\n"
				  "From: alice@example.org\r\n\r\na\0b\r\n";
	assert_int_equal(egress_prepare((const uint8_t *)nul, sizeof(nul) - 1,
					SENDER, map, &ma, "gw.example.org",
					rnd, T_NOW, &res, &err), -1);
	assert_non_null(strstr(err, "NUL"));
	/* the arguments */
	static const char *const bad_did[] = {
		"", "did:aftersmtp:Example.org:alice", "alice@example.org",
		"did:aftersmtp:example.org:alice ", NULL,
	};
	for (size_t i = 0; i < sizeof(bad_did) / sizeof(bad_did[0]); i++) {
		assert_int_equal(egress_prepare((const uint8_t *)ok, strlen(ok),
						bad_did[i], map, &ma,
						"gw.example.org", rnd, T_NOW,
						&res, &err), -1);
		assert_non_null(strstr(err, "sender is not a canonical DID"));
	}
	assert_int_equal(egress_prepare((const uint8_t *)ok, strlen(ok), SENDER,
					map, &ma, "gw example", rnd, T_NOW,
					&res, &err), -1);
	assert_non_null(strstr(err, "Message-ID domain"));
	assert_int_equal(egress_prepare((const uint8_t *)ok, strlen(ok), SENDER,
					map, &ma, "gw.example.org", NULL, T_NOW,
					&res, &err), -1);
	assert_int_equal(egress_prepare((const uint8_t *)ok, strlen(ok), SENDER,
					map, &ma, "gw.example.org", rnd,
					UINT64_C(253402300800), &res, &err),
			 -1);
	assert_non_null(strstr(err, "1900..9999"));
	assert_int_equal(egress_prepare(NULL, 0, SENDER, map, &ma,
					"gw.example.org", rnd, T_NOW, &res,
					&err), -1);
	assert_non_null(strstr(err, "no From"));
	/* a sender whose default address is too long */
	char longdid[400];
	memset(longdid, 'a', sizeof(longdid));
	memcpy(longdid, "did:aftersmtp:", 14);
	for (size_t i = 14 + 63; i < 14 + 253; i += 64)
		longdid[i] = '.';
	longdid[14 + 253] = ':';
	longdid[14 + 253 + 1 + 64] = '\0';
	assert_int_equal(egress_did_span(longdid, strlen(longdid)),
			 strlen(longdid));
	assert_int_equal(egress_prepare((const uint8_t *)ok, strlen(ok), longdid,
					map, &ma, "gw.example.org", rnd, T_NOW,
					&res, &err), -1);
	assert_non_null(strstr(err, "too long for a mail address"));
}

static void test_limits(void **state)
{
	(void)state;
	map_arg ma = {0};
	size_t cap = EGRESS_MAX_HEADER + 4096;
	char *in = malloc(cap + 1);
	assert_non_null(in);
	/* 10000 fields pass, 10001 do not */
	for (int over = 0; over < 2; over++) {
		size_t k = (size_t)snprintf(in, cap, "AMP-Egress-To: b@x.net\r\n"
					    "From: alice@example.org\r\n");
		for (int i = 2; i < 10000 + over; i++)
			k += (size_t)snprintf(in + k, cap - k, "X-%d: v\r\n", i);
		snprintf(in + k, cap - k, "\r\nbody\r\n");
		if (over) {
			expect_fail(in, &ma, "more than 10000 header fields");
		} else {
			egress_result res;
			run_ok(in, &ma, &res);
			egress_result_free(&res);
		}
	}
	/* a header section of exactly 1 MiB passes (the empty line
	 * included), one byte more does not */
	for (int over = 0; over < 2; over++) {
		size_t k = (size_t)snprintf(in, cap, "AMP-Egress-To: b@x.net\r\n"
					    "From: alice@example.org\r\nX: ");
		size_t fill = EGRESS_MAX_HEADER - k - 4 + (size_t)over;
		memset(in + k, 'v', fill);
		k += fill;
		memcpy(in + k, "\r\n\r\n", 5);
		if (over) {
			expect_fail(in, &ma, "over 1 MiB");
		} else {
			egress_result res;
			run_ok(in, &ma, &res);
			egress_result_free(&res);
		}
	}
	free(in);
}

/* The DID scanner against libamp's parser. */
static void test_did_span(void **state)
{
	(void)state;
	json_t *j = t_load_vectors("did.json");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(j, "valid"), i, v) {
		const char *s = json_string_value(v);
		assert_int_equal(egress_did_span(s, strlen(s)), strlen(s));
		assert_true(amp_did_is_canonical(s, strlen(s)));
	}
	json_array_foreach(json_object_get(j, "invalid"), i, v) {
		const char *s = json_string_value(json_object_get(v, "did"));
		size_t n = strlen(s);
		assert_false(n > 0 && egress_did_span(s, n) == n);
	}
	json_decref(j);

	static const struct {
		const char *s;
		size_t span;
	} cases[] = {
		{"did:aftersmtp:example.org:alice>", 31},
		{"did:aftersmtp:example.org:alice,x", 31},
		{"did:aftersmtp:example.org:alice)", 31},
		{"did:aftersmtp:example.org:alice;", 31},
		{"did:aftersmtp:example.org:alice\"", 31},
		{"did:aftersmtp:example.org:alice\r\n", 31},
		{"did:aftersmtp:example.org:alice ", 31},
		{"did:aftersmtp:example.org:alice.", 31},
		{"did:aftersmtp:example.org:alice...", 31},
		{"did:aftersmtp:example.org:alice.b", 33},
		{"did:aftersmtp:example.org:alice-", 0},
		{"did:aftersmtp:example.org:alice_", 0},
		{"did:aftersmtp:example.org:aliceX", 0},
		{"did:aftersmtp:example.org:alice@x", 0},
		{"did:aftersmtp:example.org:alice:x", 0},
		{"did:aftersmtp:example.org:alice\xc3\xa9", 0},
		{"did:aftersmtp:example.org:alice+tag", 0},
		{"did:aftersmtp:example.org:", 0},
		{"did:aftersmtp:example.org", 0},
		{"did:aftersmtp::alice", 0},
		{"did:aftersmtp:Example.org:alice", 0},
		{"did:aftersmtp:-x.org:a", 0},
		{"did:aftersmtp:example.org:a..b", 0},
		{"did:web:example.org:alice", 0},
		{"did:aftersmtp", 0},
		{"", 0},
	};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got = egress_did_span(cases[i].s, strlen(cases[i].s));
		if (got != cases[i].span)
			fail_msg("egress_did_span(\"%s\") = %zu, want %zu",
				 cases[i].s, got, cases[i].span);
	}

	/* generated strings: a span of the whole string exactly when libamp
	 * accepts it */
	static const char alphabet[] = "ab0.-_:A";
	uint32_t x = 12345;
	char s[64];
	for (int n = 0; n < 200000; n++) {
		memcpy(s, "did:aftersmtp:", 14);
		x = x * 1103515245u + 12345u;
		size_t len = 14 + (x >> 16) % 12;
		for (size_t k = 14; k < len; k++) {
			x = x * 1103515245u + 12345u;
			s[k] = alphabet[(x >> 16) % (sizeof(alphabet) - 1)];
		}
		s[len] = '\0';
		bool whole = egress_did_span(s, len) == len;
		if (whole != amp_did_is_canonical(s, len))
			fail_msg("disagree on \"%s\"", s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_realistic),
		cmocka_unit_test(test_did_display_names),
		cmocka_unit_test(test_mapped_from),
		cmocka_unit_test(test_from_checks),
		cmocka_unit_test(test_added_fields),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_8bit),
		cmocka_unit_test(test_recipients),
		cmocka_unit_test(test_recipient_count),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_did_span),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
