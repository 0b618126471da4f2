/*
 * test-imap-session.c — the IMAP4rev1 state machine (src/imap/
 * imap-session.c) driven as the bridge's driver does, over the store in
 * memory (imap-memstore.c): each command's answers and errors, commands
 * refused in the wrong state, LOGIN/AUTHENTICATE and the failure limit,
 * STARTTLS with a pipelined command (I6), pre-auth literal limit (I1),
 * nesting (I2), NUL (I3), bounded sets/ORs/LIST patterns (I8, timed),
 * bad mailbox names (I9), IDLE and EXPUNGE ordering against another
 * session (I11), and FETCH over 10,000 messages produced in chunks.
 */
#include "test-common.h"

#include "imap-memstore.h"
#include "imap-session.h"

#include <time.h>

#define M1 "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\n" \
	   "Subject: hello world\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n" \
	   "Message-ID: <1@example.org>\r\n\r\nHi Bob, the body text is here.\r\n"
#define M2 "From: bob@example.org\r\nTo: alice@example.org\r\nCc: carol@example.net\r\n" \
	   "Subject: parts\r\nDate: Tue, 8 Feb 1994 10:00:00 +0000\r\n" \
	   "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" \
	   "--XX\r\nContent-Type: text/plain\r\n\r\nfirst part zebra\r\n" \
	   "--XX\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--XX--\r\n"
#define M3 "From: carol@example.net\r\nTo: alice@example.org\r\nSubject: third\r\n" \
	   "Date: Wed, 9 Feb 1994 10:00:00 +0000\r\n\r\n" \
	   "A longer body, long enough to be the largest of the three messages, " \
	   "with some more words to make it so.\r\n"

/* 1994-02-08 12:00 UTC and a day later */
#define T1 INT64_C(760708800)

typedef struct cli {
	imap_session *s;
	memstore *ms;
	bool async;             /* login answered later by the test */
	unsigned logins, tls;
	char user[64], pass[64];
	char *out;              /* everything sent so far */
	size_t out_len, max_piece;
} cli;

static void on_login(void *arg, const char *user, const char *pw, size_t len)
{
	cli *c = arg;
	c->logins++;
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->pass, sizeof(c->pass), "%.*s", (int)len, pw);
	if (c->async)
		return;
	bool ok = strcmp(user, "u") == 0 && strcmp(c->pass, "p") == 0;
	imap_session_login_done(c->s, ok, &memstore_ops, c->ms);
}

static void on_starttls(void *arg)
{
	((cli *)arg)->tls++;
}

static const imap_session_callbacks cbs = {
	.login = on_login, .starttls = on_starttls,
};

static void drain(cli *c)
{
	const uint8_t *p;
	size_t n;
	while ((n = imap_session_output(c->s, &p)) > 0) {
		if (n > c->max_piece)
			c->max_piece = n;
		c->out = realloc(c->out, c->out_len + n + 1);
		assert_non_null(c->out);
		memcpy(c->out + c->out_len, p, n);
		c->out_len += n;
		c->out[c->out_len] = '\0';
		imap_session_output_consumed(c->s, n);
	}
}

static void cli_init(cli *c, const imap_session_settings *set, memstore *ms)
{
	memset(c, 0, sizeof(*c));
	c->ms = ms;
	assert_int_equal(imap_session_new(set, &cbs, c, &c->s), 0);
	imap_session_greet(c->s);
	drain(c);
}

static void cli_free(cli *c)
{
	imap_session_free(&c->s);
	assert_null(c->s);
	free(c->out);
	c->out = NULL;
}

/* Send bytes, return what came back (valid until the next call). */
static const char *sendn(cli *c, const char *in, size_t len)
{
	size_t off = 0;
	free(c->out);
	c->out = NULL;
	c->out_len = 0;
	for (;;) {
		size_t k = imap_session_feed(c->s, (const uint8_t *)in + off, len - off);
		off += k;
		size_t before = c->out_len;
		drain(c);
		if (off == len || imap_session_closing(c->s))
			break;
		if (k == 0 && c->out_len == before)
			break;  /* blocked (login pending) */
	}
	return c->out != NULL ? c->out : "";
}

static const char *sendc(cli *c, const char *in)
{
	return sendn(c, in, strlen(in));
}

#define HAS(out, s) do { \
	if (strstr((out), (s)) == NULL) \
		fail_msg("missing \"%s\" in:\n%s", (s), (out)); \
} while (0)
#define HASNT(out, s) do { \
	if (strstr((out), (s)) != NULL) \
		fail_msg("unexpected \"%s\" in:\n%s", (s), (out)); \
} while (0)

static memstore *store3(void)
{
	memstore *ms = memstore_new();
	assert_non_null(ms);
	assert_int_equal(memstore_add(ms, "INBOX", M1, 0, T1), 1);
	assert_int_equal(memstore_add(ms, "INBOX", M2, IMAP_FLAG_SEEN, T1 + 86400), 2);
	assert_int_equal(memstore_add(ms, "INBOX", M3, IMAP_FLAG_FLAGGED, T1 + 2 * 86400), 3);
	return ms;
}

static void logged_in(cli *c, memstore *ms)
{
	cli_init(c, NULL, ms);
	HAS(sendc(c, "l LOGIN u p\r\n"), "l OK [CAPABILITY IMAP4rev1");
}

static void selected(cli *c, memstore *ms)
{
	logged_in(c, ms);
	HAS(sendc(c, "s SELECT INBOX\r\n"), "s OK [READ-WRITE] Select completed.");
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ------------------------------------------------------------------ */

static void test_states(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	cli_init(&c, NULL, ms);
	HAS(c.out, "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ IDLE UIDPLUS MOVE "
		   "NAMESPACE SPECIAL-USE AUTH=PLAIN AUTH=LOGIN] ");
	const char *o = sendc(&c, "a CAPABILITY\r\n");
	HAS(o, "* CAPABILITY IMAP4rev1 ");
	HAS(o, "a OK Capability completed.");
	HAS(sendc(&c, "b SELECT INBOX\r\n"), "b BAD Please log in first.");
	HAS(sendc(&c, "b2 FETCH 1 FLAGS\r\n"), "b2 BAD Please log in first.");
	HAS(sendc(&c, "c NOOP\r\n"), "c OK NOOP completed.");
	HAS(sendc(&c, "d LOGIN u wrong\r\n"), "d NO [AUTHENTICATIONFAILED]");
	o = sendc(&c, "e LOGIN u p\r\n");
	HAS(o, "e OK [CAPABILITY IMAP4rev1");
	HASNT(o, "AUTH=PLAIN");
	HAS(sendc(&c, "f LOGIN u p\r\n"), "f BAD Already logged in.");
	HAS(sendc(&c, "f2 STARTTLS\r\n"), "f2 BAD Already logged in.");
	HAS(sendc(&c, "g FETCH 1 FLAGS\r\n"), "g BAD No mailbox selected.");
	HAS(sendc(&c, "g2 CHECK\r\n"), "g2 BAD No mailbox selected.");
	HAS(sendc(&c, "h FOO\r\n"), "h BAD");
	assert_null(imap_session_selected(c.s));
	HAS(sendc(&c, "i SELECT inbox\r\n"), "i OK [READ-WRITE]");
	assert_string_equal(imap_session_selected(c.s), "INBOX");
	HAS(sendc(&c, "i2 CHECK\r\n"), "i2 OK Check completed.");
	o = sendc(&c, "j LOGOUT\r\nk NOOP\r\n");
	HAS(o, "* BYE Logging out\r\nj OK Logout completed.\r\n");
	HASNT(o, "k ");
	assert_true(imap_session_closing(c.s));
	cli_free(&c);
	/* timeout */
	cli_init(&c, NULL, ms);
	imap_session_timeout(c.s);
	drain(&c);
	HAS(c.out, "* BYE Disconnected for inactivity.");
	assert_true(imap_session_closing(c.s));
	cli_free(&c);
	memstore_free(&ms);
}

static void test_login_limits(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	imap_session_settings set = { .auth_fail_max = 2 };
	cli_init(&c, &set, ms);
	HAS(sendc(&c, "a LOGIN u x\r\n"), "a NO [AUTHENTICATIONFAILED]");
	assert_false(imap_session_closing(c.s));
	const char *o = sendc(&c, "b LOGIN u y\r\nc NOOP\r\n");
	HAS(o, "b NO [AUTHENTICATIONFAILED]");
	HAS(o, "* BYE Too many invalid authentication attempts.");
	HASNT(o, "c OK");
	assert_true(imap_session_closing(c.s));
	cli_free(&c);

	/* asynchronous: nothing more is read until the answer */
	cli_init(&c, NULL, ms);
	c.async = true;
	const char *in = "a LOGIN \"u\" {1+}\r\np\r\nb NOOP\r\n";
	size_t k = imap_session_feed(c.s, (const uint8_t *)in, strlen(in));
	assert_int_equal(k, strlen("a LOGIN \"u\" {1+}\r\np\r\n"));
	assert_int_equal(c.logins, 1);
	assert_string_equal(c.user, "u");
	assert_string_equal(c.pass, "p");
	assert_int_equal(imap_session_feed(c.s, (const uint8_t *)in + k, strlen(in) - k), 0);
	free(c.out);
	c.out = NULL;
	c.out_len = 0;
	drain(&c);
	assert_null(c.out);
	imap_session_login_done(c.s, true, &memstore_ops, ms);
	drain(&c);
	HAS(c.out, "a OK [CAPABILITY");
	HAS(sendc(&c, in + k), "b OK");
	cli_free(&c);

	/* LOGINDISABLED before TLS */
	imap_session_settings set2 = { .login_needs_tls = true, .starttls = true };
	cli_init(&c, &set2, ms);
	HAS(c.out, "STARTTLS LOGINDISABLED]");
	HAS(sendc(&c, "a LOGIN u p\r\n"), "a NO [PRIVACYREQUIRED]");
	HAS(sendc(&c, "b AUTHENTICATE PLAIN AHUAcA==\r\n"), "b NO [PRIVACYREQUIRED]");
	assert_int_equal(c.logins, 0);
	cli_free(&c);
	memstore_free(&ms);
}

static void test_authenticate(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	/* SASL-IR: "\0u\0p" */
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a AUTHENTICATE PLAIN AHUAcA==\r\n"), "a OK [CAPABILITY");
	cli_free(&c);
	/* continuation */
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
	HAS(sendc(&c, "dQB1AHA=\r\n"), "a OK [CAPABILITY");   /* "u\0u\0p" */
	cli_free(&c);
	/* wrong authzid, abort, bad base64, unknown mechanism */
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a AUTHENTICATE PLAIN dgB1AHA=\r\n"), "a NO [AUTHORIZATIONFAILED]");
	HAS(sendc(&c, "b AUTHENTICATE PLAIN\r\n*\r\n"), "b BAD Authentication aborted");
	HAS(sendc(&c, "c AUTHENTICATE PLAIN\r\n!!!!\r\n"), "c BAD Invalid base64");
	HAS(sendc(&c, "d AUTHENTICATE CRAM-MD5\r\n"), "d NO Unsupported authentication");
	cli_free(&c);
	/* LOGIN mechanism */
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a AUTHENTICATE LOGIN\r\n"), "+ VXNlcm5hbWU6\r\n");
	HAS(sendc(&c, "dQ==\r\n"), "+ UGFzc3dvcmQ6\r\n");
	HAS(sendc(&c, "cA==\r\n"), "a OK [CAPABILITY");
	assert_string_equal(c.user, "u");
	cli_free(&c);
	memstore_free(&ms);
}

static void test_starttls(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a STARTTLS\r\n"), "a BAD TLS support isn't enabled.");
	cli_free(&c);

	/* I6: the command pipelined after STARTTLS is never answered */
	imap_session_settings set = { .starttls = true };
	cli_init(&c, &set, ms);
	HAS(c.out, " STARTTLS ");
	const char *in = "a STARTTLS\r\nb CAPABILITY\r\n";
	size_t k = imap_session_feed(c.s, (const uint8_t *)in, strlen(in));
	assert_int_equal(k, strlen("a STARTTLS\r\n"));
	assert_int_equal(c.tls, 1);
	free(c.out);
	c.out = NULL;
	c.out_len = 0;
	drain(&c);
	assert_string_equal(c.out, "a OK Begin TLS negotiation now.\r\n");
	/* the driver discards "b CAPABILITY" and starts TLS */
	assert_int_equal(imap_session_feed(c.s, (const uint8_t *)in + k, strlen(in) - k), 0);
	imap_session_tls_started(c.s);
	const char *o = sendc(&c, "c CAPABILITY\r\n");
	HAS(o, "c OK");
	HASNT(o, "b OK");
	HASNT(o, "STARTTLS");
	HAS(sendc(&c, "d STARTTLS\r\n"), "d BAD TLS is already active.");
	cli_free(&c);
	memstore_free(&ms);
}

static void test_input_limits(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	/* I1 */
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a LOGIN {4294967295}\r\n"), "* BYE Literal size too large");
	assert_true(imap_session_closing(c.s));
	cli_free(&c);
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a LOGIN {100000000+}\r\n"), "* BYE Literal size too large");
	cli_free(&c);
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a LOGIN {9000}\r\n"), "* BYE Literal size too large");
	cli_free(&c);
	/* after login a larger literal is fine */
	logged_in(&c, ms);
	char *big = malloc(20000 + 64);
	assert_non_null(big);
	size_t h = (size_t)snprintf(big, 64, "a APPEND Drafts {20000+}\r\n");
	memset(big + h, 'x', 20000);
	memcpy(big + h, "Subject: x\r\n\r\n", 14);
	memcpy(big + h + 20000 - 2, "\r\n\r\n", 4);
	HAS(sendn(&c, big, h + 20000 + 2), "a OK [APPENDUID ");
	free(big);
	cli_free(&c);
	/* I2, I3 */
	cli_init(&c, NULL, ms);
	char deep[4200];
	memcpy(deep, "a NOOP ", 7);
	memset(deep + 7, '(', 2000);
	memset(deep + 2007, ')', 2000);
	memcpy(deep + 4007, "\r\n", 2);
	HAS(sendn(&c, deep, 4009), "a BAD Error in IMAP command: Too many '('");
	HAS(sendn(&c, "b LOGIN \"ali\0ce\" \"x\"\r\n", 22), "b BAD Error in IMAP command: NULs not allowed in strings");
	HAS(sendc(&c, "c NOOP\r\n"), "c OK");
	/* before login one level of list is all (TESTING.md I2) */
	HAS(sendc(&c, "d NOOP ((x))\r\n"), "d BAD Error in IMAP command: Too many '('");
	assert_int_equal(c.logins, 0);
	cli_free(&c);
	/* I5: a bare LF ends a line (as Dovecot); I4: a 100 KB line is the end */
	cli_init(&c, NULL, ms);
	HAS(sendc(&c, "a CAPABILITY\n"), "a OK Capability completed.");
	char *line = malloc(100 * 1024 + 16);
	assert_non_null(line);
	memcpy(line, "b NOOP ", 7);
	memset(line + 7, 'x', 100 * 1024);
	memcpy(line + 7 + 100 * 1024, "\r\n", 2);
	HAS(sendn(&c, line, 7 + 100 * 1024 + 2), "* BYE Input line too long");
	assert_true(imap_session_closing(c.s));
	free(line);
	cli_free(&c);
	memstore_free(&ms);
}

static void test_select_fetch(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	logged_in(&c, ms);
	const char *o = sendc(&c, "s SELECT INBOX\r\n");
	HAS(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
	       "Flags permitted.\r\n* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
	       "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 4] Predicted next UID\r\n"
	       "s OK [READ-WRITE] Select completed.\r\n");
	o = sendc(&c, "a FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)\r\n");
	HAS(o, "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 177 INTERNALDATE \" 8-Feb-1994 12:00:00 +0000\")\r\n");
	HAS(o, "* 2 FETCH (UID 2 FLAGS (\\Seen) ");
	HAS(o, "* 3 FETCH (UID 3 FLAGS (\\Flagged) ");
	HAS(o, "a OK Fetch completed.");
	o = sendc(&c, "b FETCH 1 (ENVELOPE BODY.PEEK[HEADER.FIELDS (subject)])\r\n");
	HAS(o, "* 1 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"hello world\" ");
	HAS(o, "BODY[HEADER.FIELDS (SUBJECT)] {24}\r\nSubject: hello world\r\n\r\n)\r\n");
	HASNT(o, "\\Seen");
	o = sendc(&c, "c FETCH 1 BODY[TEXT]<3.3>\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Seen) BODY[TEXT]<3> {3}\r\nBob)\r\nc OK Fetch completed.");
	o = sendc(&c, "d UID FETCH 2 (BODYSTRUCTURE BODY[1] RFC822.HEADER)\r\n");
	HAS(o, "* 2 FETCH (UID 2 BODYSTRUCTURE ((\"text\" \"plain\"");
	HAS(o, "BODY[1] {16}\r\nfirst part zebra RFC822.HEADER {");
	HAS(o, "RFC822.HEADER {");
	o = sendc(&c, "e FETCH 3 FAST\r\ne2 FETCH 3 ALL\r\ne3 FETCH 3 FULL\r\n");
	HAS(o, "* 3 FETCH (FLAGS (\\Flagged) INTERNALDATE \"10-Feb-1994 12:00:00 +0000\" RFC822.SIZE ");
	HAS(o, "e2 OK");
	HAS(o, " BODY (\"text\" \"plain\"");
	/* UID FETCH of UIDs that do not exist: nothing, OK */
	o = sendc(&c, "f UID FETCH 7:9 FLAGS\r\n");
	assert_string_equal(o, "f OK Fetch completed.\r\n");
	o = sendc(&c, "f2 UID FETCH 9:* FLAGS\r\n");
	assert_string_equal(o, "* 3 FETCH (UID 3 FLAGS (\\Flagged))\r\nf2 OK Fetch completed.\r\n");
	/* sequence numbers out of range (Dovecot: BAD Invalid messageset) */
	HAS(sendc(&c, "g FETCH 4 FLAGS\r\n"), "g BAD Error in IMAP command FETCH: Invalid messageset");
	HAS(sendc(&c, "g2 FETCH 0 FLAGS\r\n"), "g2 BAD");
	HAS(sendc(&c, "g3 FETCH 1 MODSEQ\r\n"), "g3 BAD");
	HAS(sendc(&c, "g4 FETCH 1 (FLAGS) (CHANGEDSINCE 1)\r\n"), "g4 BAD");
	/* RFC822 sets \Seen */
	o = sendc(&c, "h FETCH 3 RFC822\r\n");
	HAS(o, "* 3 FETCH (FLAGS (\\Flagged \\Seen) RFC822 {");
	/* EXAMINE: read-only, no \Seen set */
	o = sendc(&c, "i EXAMINE Sent\r\n");
	HAS(o, "* OK [CLOSED] Previous mailbox closed.");
	HAS(o, "* OK [PERMANENTFLAGS ()] Read-only mailbox.");
	HAS(o, "* 0 EXISTS");
	HAS(o, "i OK [READ-ONLY] Examine completed.");
	HAS(sendc(&c, "j FETCH 1:* FLAGS\r\n"), "j BAD");
	HAS(sendc(&c, "j2 UID FETCH 1:* FLAGS\r\n"), "j2 OK");
	HAS(sendc(&c, "k SELECT Nope\r\n"), "k NO [NONEXISTENT] Mailbox doesn't exist: Nope");
	assert_null(imap_session_selected(c.s));
	cli_free(&c);
	memstore_free(&ms);
}

static void test_store_copy_move(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	selected(&c, ms);
	const char *o = sendc(&c, "a STORE 1 +FLAGS (\\Deleted $Junk)\r\n");
	HAS(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk \\*)] "
	       "Flags permitted.\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Deleted $Junk))\r\na OK Store completed.");
	HASNT(sendc(&c, "a2 STORE 1 +FLAGS.SILENT ($Junk)\r\n"), "* FLAGS");
	o = sendc(&c, "b UID STORE 2:3 -FLAGS.SILENT \\Seen\r\n");
	assert_string_equal(o, "b OK Store completed.\r\n");
	o = sendc(&c, "c STORE 2 FLAGS (\\Answered)\r\n");
	assert_string_equal(o, "* 2 FETCH (FLAGS (\\Answered))\r\nc OK Store completed.\r\n");
	o = sendc(&c, "c2 UID STORE 2 +FLAGS (\\Draft)\r\n");
	HAS(o, "* 2 FETCH (UID 2 FLAGS (\\Answered \\Draft))");
	HAS(sendc(&c, "d STORE 1 +FLAGS (\\Recent)\r\n"), "d BAD Error in IMAP command STORE: Invalid system flag \\RECENT");
	HAS(sendc(&c, "d2 STORE 1 +FLAGS (\\Bogus)\r\n"), "d2 BAD");
	HAS(sendc(&c, "d3 STORE 1 +FLAGS (UNCHANGEDSINCE 3) (\\Seen)\r\n"), "d3 BAD");
	HAS(sendc(&c, "e SEARCH KEYWORD $junk\r\n"), "* SEARCH 1\r\n");
	o = sendc(&c, "s2 SELECT INBOX\r\n");
	HAS(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)");
	HAS(o, "\\Draft $Junk \\*)]");
	/* COPY */
	o = sendc(&c, "f COPY 1:2 Trash\r\n");
	HAS(o, "f OK [COPYUID 1700000002 1:2 1:2] Copy completed.");
	HAS(sendc(&c, "g COPY 1 Nope\r\n"), "g NO [TRYCREATE] Mailbox doesn't exist: Nope");
	HAS(sendc(&c, "g2 COPY 5 Trash\r\n"), "g2 BAD");
	o = sendc(&c, "h UID COPY 3 INBOX\r\n");
	HAS(o, "* 4 EXISTS\r\nh OK [COPYUID 1700000000 3 4] Copy completed.");
	/* MOVE: COPYUID untagged, then EXPUNGE, then OK */
	o = sendc(&c, "i MOVE 2:3 Trash\r\n");
	assert_string_equal(o, "* OK [COPYUID 1700000002 2:3 3:4] Moved UIDs.\r\n"
			       "* 3 EXPUNGE\r\n* 2 EXPUNGE\r\ni OK Move completed.\r\n");
	/* MOVE into the selected mailbox itself */
	o = sendc(&c, "i2 MOVE 2 INBOX\r\n");
	assert_string_equal(o, "* OK [COPYUID 1700000000 4 5] Moved UIDs.\r\n"
			       "* 2 EXPUNGE\r\n* 2 EXISTS\r\ni2 OK Move completed.\r\n");
	HAS(sendc(&c, "i3 UID MOVE 5 INBOX\r\n"), "* OK [COPYUID 1700000000 5 6] Moved UIDs.");
	/* EXPUNGE: 1 is \Deleted */
	o = sendc(&c, "j EXPUNGE\r\n");
	assert_string_equal(o, "* 1 EXPUNGE\r\nj OK Expunge completed.\r\n");
	o = sendc(&c, "k FETCH 1 UID\r\n");
	HAS(o, "* 1 FETCH (UID 6)");
	sendc(&c, "l STORE 1 +FLAGS.SILENT \\Deleted\r\n");
	o = sendc(&c, "m UID EXPUNGE 1:3\r\n");
	assert_string_equal(o, "m OK Expunge completed.\r\n");
	o = sendc(&c, "n UID EXPUNGE 6\r\n");
	assert_string_equal(o, "* 1 EXPUNGE\r\nn OK Expunge completed.\r\n");
	/* CLOSE expunges silently */
	o = sendc(&c, "o SELECT Trash\r\np STORE 1 +FLAGS.SILENT \\Deleted\r\nq CLOSE\r\n");
	HAS(o, "q OK Close completed.\r\n");
	HASNT(o, "EXPUNGE");
	assert_null(imap_session_selected(c.s));
	HAS(sendc(&c, "r STATUS Trash (MESSAGES)\r\n"), "* STATUS \"Trash\" (MESSAGES 3)");
	/* read-only: STORE ignored, MOVE refused */
	o = sendc(&c, "t EXAMINE Trash\r\nu STORE 1 +FLAGS \\Deleted\r\nv MOVE 1 INBOX\r\n");
	HAS(o, "u OK Store ignored with read-only mailbox.");
	HAS(o, "v NO Mailbox is read-only.");
	cli_free(&c);
	memstore_free(&ms);
}

static void test_mailboxes(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	logged_in(&c, ms);
	HAS(sendc(&c, "a CREATE Work/\r\n"), "a OK Create completed.");
	HAS(sendc(&c, "a2 CREATE Work/Projects\r\n"), "a2 OK");
	HAS(sendc(&c, "b CREATE work/projects\r\n"), "b OK");
	HAS(sendc(&c, "c CREATE Work\r\n"), "c NO [ALREADYEXISTS] Mailbox already exists");
	HAS(sendc(&c, "c2 CREATE inbox\r\n"), "c2 NO [ALREADYEXISTS]");
	const char *o = sendc(&c, "d LIST \"\" *\r\n");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"\r\n");
	HAS(o, "* LIST (\\HasChildren) \"/\" \"Work\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"Work/Projects\"\r\n");
	HAS(o, "d OK List completed.");
	o = sendc(&c, "e LIST \"\" %\r\n");
	HASNT(o, "Work/Projects");
	HAS(o, "\"Work\"");
	o = sendc(&c, "e2 LIST Work/ %\r\n");
	HAS(o, "\"Work/Projects\"");
	HASNT(o, "INBOX");
	o = sendc(&c, "e3 LIST \"\" inbox\r\n");
	HAS(o, "\"INBOX\"");
	o = sendc(&c, "e4 LIST \"\" \"\"\r\n");
	assert_string_equal(o, "* LIST (\\Noselect) \"/\" \"\"\r\ne4 OK List completed.\r\n");
	o = sendc(&c, "e5 LIST \"\" W*s\r\n");
	HAS(o, "\"Work/Projects\"");
	HASNT(o, "\"Work\"");
	/* SUBSCRIBE / LSUB */
	HAS(sendc(&c, "f UNSUBSCRIBE Work\r\n"), "f OK Unsubscribe completed.");
	o = sendc(&c, "g LSUB \"\" *\r\n");
	HASNT(o, "\"Work\"");
	HAS(o, "* LSUB () \"/\" \"Work/Projects\"");
	HAS(sendc(&c, "g2 SUBSCRIBE Nope\r\n"), "g2 NO [NONEXISTENT]");
	/* RENAME, DELETE */
	HAS(sendc(&c, "h RENAME Work Job\r\n"), "h OK Rename completed.");
	o = sendc(&c, "i LIST \"\" J*\r\n");
	HAS(o, "\"Job/Projects\"");
	HAS(sendc(&c, "j RENAME Nope X\r\n"), "j NO [NONEXISTENT]");
	HAS(sendc(&c, "j2 RENAME Job Sent\r\n"), "j2 NO [ALREADYEXISTS]");
	HAS(sendc(&c, "k DELETE Job/Projects\r\n"), "k OK Delete completed.");
	HAS(sendc(&c, "k2 DELETE Job/Projects\r\n"), "k2 NO [NONEXISTENT]");
	HAS(sendc(&c, "k3 DELETE INBOX\r\n"), "k3 NO");
	HAS(sendc(&c, "k4 DELETE Sent\r\n"), "k4 NO Special-use");
	/* STATUS, NAMESPACE */
	o = sendc(&c, "l STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)\r\n");
	HAS(o, "* STATUS \"INBOX\" (MESSAGES 3 RECENT 0 UIDNEXT 4 UIDVALIDITY 1700000000 UNSEEN 2)\r\n");
	HAS(sendc(&c, "l2 STATUS INBOX (SIZE)\r\n"), "l2 BAD");
	HAS(sendc(&c, "l3 STATUS Nope (MESSAGES)\r\n"), "l3 NO [NONEXISTENT]");
	HAS(sendc(&c, "m NAMESPACE\r\n"), "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nm OK");
	/* APPEND */
	o = sendc(&c, "n APPEND Drafts (\\Draft kw1) \" 5-Mar-2020 10:11:12 +0100\" {14}\r\n"
		      "Subject: d\r\n\r\n\r\n");
	HAS(o, "+ OK\r\n");
	HAS(o, "n OK [APPENDUID 1700000003 1] Append completed.");
	o = sendc(&c, "n2 SELECT Drafts\r\nn3 FETCH 1 (FLAGS INTERNALDATE)\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Draft kw1) INTERNALDATE \" 5-Mar-2020 10:11:12 +0100\")");
	o = sendc(&c, "n4 APPEND Drafts {8+}\r\nSubject:\r\n");
	HAS(o, "* 2 EXISTS\r\nn4 OK [APPENDUID 1700000003 2]");
	HAS(sendc(&c, "o APPEND Nope {1+}\r\nx\r\n"), "o NO [TRYCREATE]");
	HAS(sendc(&c, "o2 APPEND Drafts \"bad date\" {1+}\r\nx\r\n"), "o2 BAD");
	HAS(sendc(&c, "o3 APPEND Drafts (\\Recent) {1+}\r\nx\r\n"), "o3 BAD");
	HAS(sendc(&c, "o4 APPEND Drafts {0+}\r\n\r\n"), "o4 NO");
	/* deleting the selected mailbox is allowed (Dovecot too): unselected */
	HAS(sendc(&c, "p CREATE tmp\r\np2 SELECT tmp\r\np3 DELETE tmp\r\n"), "p3 OK");
	assert_null(imap_session_selected(c.s));
	cli_free(&c);
	memstore_free(&ms);
}

static void test_bad_names(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	logged_in(&c, ms);
	static const char *const bad[] = {
		"\"&-&\"", "\"&AGE\"", "../x", "a/../b", "a/./b", "a//b", "\"/a\"", "\"a//\"",
		"\"a*b\"", "\"a%b\"", "\"\"", "\"&AGE-&AGE-x&\"", "\"&AEE-\"" /* 'A' shifted */,
		"\"&2AA-\"" /* lone surrogate */, "\"a&\"", "\"&Jjo!-\"",
	};
	char cmd[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd), "x CREATE %s\r\n", bad[i]);
		const char *o = sendc(&c, cmd);
		if (strncmp(o, "x NO ", 5) != 0)
			fail_msg("%s accepted: %s", bad[i], o);
		snprintf(cmd, sizeof(cmd), "y SELECT %s\r\n", bad[i]);
		o = sendc(&c, cmd);
		if (strncmp(o, "y NO ", 5) != 0)
			fail_msg("%s selected: %s", bad[i], o);
	}
	HAS(sendc(&c, "z CREATE \"&-&\"\r\n"), "z NO Mailbox name is not valid mUTF-7");
	/* 10 KB name */
	char *big = malloc(10300);
	assert_non_null(big);
	int h = snprintf(big, 64, "a CREATE {10240+}\r\n");
	memset(big + h, 'n', 10240);
	memcpy(big + h + 10240, "\r\n", 2);
	HAS(sendn(&c, big, (size_t)h + 10242), "a NO Invalid mailbox name: Name is too long");
	free(big);
	/* valid modified UTF-7 and '&' */
	HAS(sendc(&c, "b CREATE \"Entw&APw-rfe\"\r\n"), "b OK");
	HAS(sendc(&c, "c CREATE \"A&-B\"\r\n"), "c OK");
	HAS(sendc(&c, "d CREATE \"&2D3eAQ-\"\r\n"), "d OK");  /* U+1F701 as a pair */
	const char *o = sendc(&c, "e LIST \"\" *\r\n");
	HAS(o, "\"Entw&APw-rfe\"");
	HAS(o, "\"A&-B\"");
	cli_free(&c);
	memstore_free(&ms);
}

static void test_search(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	selected(&c, ms);
	static const struct {
		const char *q, *want;
	} cases[] = {
		{ "ALL", "* SEARCH 1 2 3" },
		{ "SEEN", "* SEARCH 2" },
		{ "UNSEEN", "* SEARCH 1 3" },
		{ "FLAGGED", "* SEARCH 3" },
		{ "UNFLAGGED UNSEEN", "* SEARCH 1" },
		{ "ANSWERED", "* SEARCH\r\n" },
		{ "UNANSWERED DELETED", "* SEARCH\r\n" },
		{ "UNDELETED UNDRAFT", "* SEARCH 1 2 3" },
		{ "DRAFT", "* SEARCH\r\n" },
		{ "NEW", "* SEARCH\r\n" },
		{ "RECENT", "* SEARCH\r\n" },
		{ "OLD", "* SEARCH 1 2 3" },
		{ "FROM alice", "* SEARCH 1" },
		{ "TO ALICE", "* SEARCH 2 3" },
		{ "CC carol", "* SEARCH 2" },
		{ "BCC carol", "* SEARCH\r\n" },
		{ "SUBJECT \"hello\"", "* SEARCH 1" },
		{ "HEADER Message-ID example", "* SEARCH 1" },
		{ "HEADER Message-ID \"\"", "* SEARCH 1" },
		{ "BODY zebra", "* SEARCH 2" },
		{ "TEXT zebra", "* SEARCH 2" },
		{ "TEXT third", "* SEARCH 3" },
		{ "BODY third", "* SEARCH\r\n" },
		{ "LARGER 200", "* SEARCH 2 3" },
		{ "SMALLER 200", "* SEARCH 1" },
		{ "BEFORE 9-Feb-1994", "* SEARCH 1" },
		{ "ON 9-Feb-1994", "* SEARCH 2" },
		{ "SINCE 9-Feb-1994", "* SEARCH 2 3" },
		{ "SENTBEFORE 8-Feb-1994", "* SEARCH 1" },
		{ "SENTON 8-Feb-1994", "* SEARCH 2" },
		{ "SENTSINCE \"8-Feb-1994\"", "* SEARCH 2 3" },
		{ "NOT SEEN", "* SEARCH 1 3" },
		{ "OR SEEN FLAGGED", "* SEARCH 2 3" },
		{ "OR (SEEN FROM bob) NOT ALL", "* SEARCH 2" },
		{ "NOT OR SEEN FLAGGED", "* SEARCH 1" },
		{ "2:*", "* SEARCH 2 3" },
		{ "*", "* SEARCH 3" },
		{ "UID 1,3", "* SEARCH 1 3" },
		{ "UID 3:*", "* SEARCH 3" },
		{ "1:2 NOT 1", "* SEARCH 2" },
		{ "KEYWORD nothere", "* SEARCH\r\n" },
		{ "UNKEYWORD nothere", "* SEARCH 1 2 3" },
		{ "CHARSET UTF-8 ALL", "* SEARCH 1 2 3" },
		{ "((SEEN) (ALL))", "* SEARCH 2" },
		{ "((((((((NOT SEEN))))))))", "* SEARCH 1 3" },
	};
	char cmd[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(cmd, sizeof(cmd), "s SEARCH %s\r\n", cases[i].q);
		const char *o = sendc(&c, cmd);
		if (strstr(o, cases[i].want) == NULL || strstr(o, "s OK Search completed.") == NULL)
			fail_msg("SEARCH %s: want %s, got %s", cases[i].q, cases[i].want, o);
	}
	HAS(sendc(&c, "u UID SEARCH FLAGGED\r\n"), "* SEARCH 3\r\nu OK");
	HAS(sendc(&c, "b SEARCH CHARSET KOI8-R ALL\r\n"), "b NO [BADCHARSET (US-ASCII UTF-8)]");
	HAS(sendc(&c, "b2 SEARCH FOO\r\n"), "b2 BAD");
	HAS(sendc(&c, "b3 SEARCH OR SEEN\r\n"), "b3 BAD");
	HAS(sendc(&c, "b4 SEARCH NOT\r\n"), "b4 BAD");
	HAS(sendc(&c, "b5 SEARCH FROM\r\n"), "b5 BAD");
	HAS(sendc(&c, "b6 SEARCH BEFORE 32-Feb-1994\r\n"), "b6 BAD");
	HAS(sendc(&c, "b7 SEARCH LARGER x\r\n"), "b7 BAD");
	HAS(sendc(&c, "b8 SEARCH ()\r\n"), "b8 BAD");
	cli_free(&c);
	memstore_free(&ms);
}

static double secs(clock_t a)
{
	return (double)(clock() - a) / CLOCKS_PER_SEC;
}

static void test_bounded(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli c;
	selected(&c, ms);
	clock_t t0 = clock();
	/* sets: 1:4294967295 (out of range as sequence numbers, fine as UIDs) */
	HAS(sendc(&c, "a FETCH 1:4294967295 UID\r\n"), "a BAD");
	HAS(sendc(&c, "b UID FETCH 1:4294967295 UID\r\n"), "* 3 FETCH (UID 3)\r\nb OK");
	HAS(sendc(&c, "b2 FETCH *:1 UID\r\n"), "* 3 FETCH (UID 3)\r\nb2 OK");
	/* 30,000 elements (the line cap is 64 KiB) */
	size_t n = 30000, len = 0;
	char *big = malloc(80000);
	assert_non_null(big);
	len += (size_t)snprintf(big, 64, "c UID FETCH ");
	for (size_t i = 0; i < n; i++) {
		big[len++] = '1';
		big[len++] = ',';
	}
	len--;
	len += (size_t)snprintf(big + len, 64, " UID\r\n");
	const char *o = sendn(&c, big, len);
	assert_int_equal(count(o, "FETCH (UID"), 1);
	HAS(o, "c OK");
	/* 16,000 elements 1:* in SEARCH */
	len = (size_t)snprintf(big, 64, "d SEARCH ");
	for (size_t i = 0; i < 16000; i++) {
		memcpy(big + len, "1:*,", 4);
		len += 4;
	}
	len--;
	memcpy(big + len, "\r\n", 2);
	len += 2;
	HAS(sendn(&c, big, len), "* SEARCH 1 2 3\r\nd OK");
	/* 10,000 ORs */
	len = (size_t)snprintf(big, 64, "e UID SEARCH ");
	for (size_t i = 0; i < 10000; i++) {
		memcpy(big + len, "OR ", 3);
		len += 3;
	}
	for (size_t i = 0; i < 10001; i++) {
		memcpy(big + len, i % 2 ? "2 " : "9 ", 2);
		len += 2;
	}
	memcpy(big + len - 1, "\r\n", 2);
	len += 1;
	HAS(sendn(&c, big, len), "* SEARCH 2\r\ne OK");
	/* 10,000 NOTs */
	len = (size_t)snprintf(big, 64, "e2 SEARCH ");
	for (size_t i = 0; i < 10000; i++) {
		memcpy(big + len, "NOT ", 4);
		len += 4;
	}
	memcpy(big + len, "SEEN\r\n", 6);
	len += 6;
	HAS(sendn(&c, big, len), "* SEARCH 2\r\ne2 OK");
	free(big);
	/* LIST patterns */
	for (int i = 0; i < 40; i++) {
		char nm[64];
		snprintf(nm, sizeof(nm), "f CREATE a/a%d/aaaaaaaaaaaaaaaaaaaaaa\r\n", i);
		HAS(sendc(&c, nm), "f OK");
	}
	o = sendc(&c, "g LIST \"\" \"%*%*%*%*%*%*%*%*\"\r\n");
	HAS(o, "g OK List completed.");
	assert_int_equal(count(o, "* LIST"), 4 + 40);
	char pat[2100];
	len = 0;
	len += (size_t)snprintf(pat, 64, "h LIST \"\" \"");
	for (int i = 0; i < 500; i++) {
		memcpy(pat + len, "a%", 2);
		len += 2;
	}
	memcpy(pat + len, "b\"\r\n", 5);
	HAS(sendc(&c, pat), "h OK List completed.");
	len = (size_t)snprintf(pat, 64, "i LIST \"\" \"");
	for (int i = 0; i < 1000; i++) {
		memcpy(pat + len, "*a", 2);
		len += 2;
	}
	memcpy(pat + len, "\"\r\n", 4);
	HAS(sendc(&c, pat), "i OK List completed.");
	double el = secs(t0);
	print_message("I8: sets, 10k ORs, LIST patterns: %.3f s CPU\n", el);
	assert_true(el < 5.0);
	cli_free(&c);
	memstore_free(&ms);
}

static void test_idle_and_races(void **state)
{
	(void)state;
	memstore *ms = store3();
	cli a, b;
	selected(&a, ms);
	selected(&b, ms);
	/* IDLE: EXISTS as soon as changed() */
	HAS(sendc(&a, "i IDLE\r\n"), "+ idling\r\n");
	assert_true(imap_session_idling(a.s));
	assert_int_equal(memstore_add(ms, "INBOX", M1, 0, T1), 4);
	free(a.out);
	a.out = NULL;
	a.out_len = 0;
	imap_session_changed(a.s);
	drain(&a);
	assert_string_equal(a.out, "* 4 EXISTS\r\n");
	/* b sees the new message at its next command */
	HAS(sendc(&b, "y NOOP\r\n"), "* 4 EXISTS\r\ny OK");
	/* a flag change by the other session */
	HAS(sendc(&b, "x STORE 4 +FLAGS.SILENT \\Flagged\r\n"), "x OK");
	free(a.out);
	a.out = NULL;
	a.out_len = 0;
	imap_session_changed(a.s);
	drain(&a);
	assert_string_equal(a.out, "* 4 FETCH (FLAGS (\\Flagged))\r\n");
	assert_string_equal(sendc(&a, "DONE\r\n"), "i OK Idle completed.\r\n");
	assert_false(imap_session_idling(a.s));
	HAS(sendc(&a, "j IDLE\r\nnot done\r\n"), "j BAD Expected DONE");

	/* b expunges 2 while a fetches: a's FETCH / STORE / SEARCH get no
	 * EXPUNGE (RFC 3501 §7.4.1), the message is gone (NO), the next
	 * NOOP brings the EXPUNGE */
	HAS(sendc(&b, "z STORE 2 +FLAGS.SILENT \\Deleted\r\nz2 EXPUNGE\r\n"), "* 2 EXPUNGE");
	imap_session_changed(a.s);
	const char *o = sendc(&a, "k FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS (Subject)])\r\n");
	HASNT(o, "EXPUNGE");
	HAS(o, "* 1 FETCH (UID 1 ");
	HASNT(o, "* 2 FETCH");
	HAS(o, "* 3 FETCH (UID 3 ");
	HAS(o, "k NO Some of the requested messages no longer exist.");
	o = sendc(&a, "l SEARCH ALL\r\n");
	HASNT(o, "EXPUNGE");
	HAS(o, "l OK");
	o = sendc(&a, "m STORE 3 +FLAGS (\\Seen)\r\n");
	HASNT(o, "EXPUNGE");
	HAS(o, "* 3 FETCH (FLAGS (\\Flagged \\Seen))");
	o = sendc(&a, "n NOOP\r\n");
	assert_string_equal(o, "* 2 EXPUNGE\r\nn OK NOOP completed.\r\n");
	/* the UID forms may carry the EXPUNGE, before their tagged answer */
	HAS(sendc(&b, "z3 STORE 1 +FLAGS.SILENT \\Deleted\r\nz4 EXPUNGE\r\n"), "* 1 EXPUNGE");
	imap_session_changed(a.s);
	o = sendc(&a, "p UID FETCH 1:* UID\r\n");
	HAS(o, "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\n* 3 FETCH (UID 4)\r\n"
	       "* 1 EXPUNGE\r\np OK");
	/* an IDLE session gets EXPUNGE, EXISTS and FETCH in that order */
	HAS(sendc(&a, "q IDLE\r\n"), "+ idling");
	assert_int_equal(memstore_add(ms, "INBOX", M3, 0, T1), 5);
	HAS(sendc(&b, "z5 NOOP\r\nz6 STORE 1 +FLAGS.SILENT \\Deleted\r\nz7 STORE 2 FLAGS.SILENT ()\r\nz8 EXPUNGE\r\n"), "z8 OK");
	free(a.out);
	a.out = NULL;
	a.out_len = 0;
	imap_session_changed(a.s);
	drain(&a);
	assert_string_equal(a.out, "* 1 EXPUNGE\r\n* 2 EXISTS\r\n* 1 FETCH (FLAGS ())\r\n");
	assert_string_equal(sendc(&a, "DONE\r\n"), "q OK Idle completed.\r\n");
	/* the selected mailbox deleted elsewhere */
	HAS(sendc(&b, "c1 CREATE gone\r\n"), "c1 OK");
	HAS(sendc(&a, "c2 SELECT gone\r\n"), "c2 OK");
	HAS(sendc(&b, "c3 DELETE gone\r\n"), "c3 OK");
	HAS(sendc(&a, "c4 NOOP\r\n"), "* BYE");
	assert_true(imap_session_closing(a.s));
	cli_free(&a);
	/* deleted and created again: another UIDVALIDITY */
	logged_in(&a, ms);
	HAS(sendc(&b, "d1 CREATE again\r\n"), "d1 OK");
	HAS(sendc(&a, "d2 SELECT again\r\n"), "d2 OK");
	HAS(sendc(&b, "d3 DELETE again\r\nd4 CREATE again\r\n"), "d4 OK");
	HAS(sendc(&a, "d5 NOOP\r\n"), "* BYE UIDVALIDITY of the selected mailbox changed.");
	assert_true(imap_session_closing(a.s));
	cli_free(&a);
	cli_free(&b);
	memstore_free(&ms);
}

static void test_chunked_fetch(void **state)
{
	(void)state;
	memstore *ms = memstore_new();
	assert_non_null(ms);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(memstore_add(ms, "INBOX", i % 2 ? M1 : M2, 0, T1), (uint32_t)i + 1);
	cli c;
	selected(&c, ms);
	/* the command: the first piece stops near IMAP_OUT_CHUNK */
	const char *in = "a FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)\r\nb NOOP\r\n";
	size_t k = imap_session_feed(c.s, (const uint8_t *)in, strlen(in));
	assert_int_equal(k, strlen("a FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)\r\n"));
	/* more input waits for the answer */
	assert_int_equal(imap_session_feed(c.s, (const uint8_t *)in + k, strlen(in) - k), 0);
	free(c.out);
	c.out = NULL;
	c.out_len = 0;
	c.max_piece = 0;
	size_t pieces = 0, n;
	const uint8_t *p;
	while ((n = imap_session_output(c.s, &p)) > 0) {
		pieces++;
		if (n > c.max_piece)
			c.max_piece = n;
		c.out = realloc(c.out, c.out_len + n + 1);
		assert_non_null(c.out);
		memcpy(c.out + c.out_len, p, n);
		c.out_len += n;
		c.out[c.out_len] = '\0';
		/* consumed in two halves, as a slow socket does: the second
		 * output() gives the rest of the same piece */
		imap_session_output_consumed(c.s, n / 2);
		assert_int_equal(imap_session_output(c.s, &p), n - n / 2);
		imap_session_output_consumed(c.s, n - n / 2);
	}
	print_message("10k FETCH: %zu pieces, largest %zu bytes, %zu bytes in all\n",
		      pieces, c.max_piece, c.out_len);
	assert_true(pieces > 5);
	assert_true(c.max_piece >= IMAP_OUT_CHUNK);
	assert_true(c.max_piece < IMAP_OUT_CHUNK + 4096);
	assert_int_equal(count(c.out, " FETCH (FLAGS () ENVELOPE ("), 10000);
	HAS(c.out, "* 10000 FETCH (FLAGS () ENVELOPE (");
	HAS(c.out, "a OK Fetch completed.\r\n");
	HAS(sendc(&c, in + k), "b OK");
	/* a STORE over all of them is chunked the same way */
	const char *o = sendc(&c, "d STORE 1:* +FLAGS (\\Seen)\r\n");
	assert_int_equal(count(o, " FETCH (FLAGS (\\Seen))"), 10000);
	HAS(o, "d OK Store completed.");
	cli_free(&c);
	memstore_free(&ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_login_limits),
		cmocka_unit_test(test_authenticate),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_input_limits),
		cmocka_unit_test(test_select_fetch),
		cmocka_unit_test(test_store_copy_move),
		cmocka_unit_test(test_mailboxes),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_idle_and_races),
		cmocka_unit_test(test_chunked_fetch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
