/*
 * test-smtp-client.c — the outbound SMTP client state machine
 * (src/smtp/smtp-client.c) and the egress body writer
 * (src/smtp/dotstuff.c), driven as the daemon's driver will: scripted
 * server replies in, the exact commands written checked.  Each test names
 * the TESTING.md row it shows (E1-E4, T5, T6, F4).
 */
#include "test-common.h"

#include "dotstuff.h"
#include "smtp-client.h"
#include "smtp-data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ harness */

typedef struct t {
	smtp_client *c;
	char *out;              /* written since the last expect() */
	size_t out_len, out_cap;
} t;

static const smtpc_rcpt two_rcpts[] = {
	{ .addr = "b@example.net" },
	{ .addr = "c@example.net" },
};

#define BODY "Subject: t\r\n\r\nhello\r\n"

static smtpc_settings settings(void)
{
	smtpc_settings s = { .helo = "client.example", .tls = SMTPC_TLS_NONE };
	return s;
}

static smtpc_message message(void)
{
	smtpc_message m = {
		.mail_from = "a@example.org",
		.rcpts = two_rcpts,
		.n_rcpts = 2,
		.body = (const uint8_t *)BODY,
		.body_len = sizeof(BODY) - 1,
	};
	return m;
}

static t *start(const smtpc_settings *s, const smtpc_message *m)
{
	t *x = calloc(1, sizeof(*x));
	const char *err = NULL;
	assert_non_null(x);
	x->out_cap = 16u << 20;
	x->out = malloc(x->out_cap + 1);
	x->out[0] = '\0';
	assert_int_equal(smtp_client_new(s, m, &x->c, &err), 0);
	assert_null(err);
	assert_false(smtp_client_done(x->c));
	return x;
}

static void stop(t *x)
{
	smtp_client_free(&x->c);
	assert_null(x->c);
	smtp_client_free(&x->c); /* NULL is fine */
	free(x->out);
	free(x);
}

/* Take all output, as a driver that writes everything at once. */
static void pump(t *x)
{
	const uint8_t *o;
	size_t n;
	while ((n = smtp_client_output(x->c, &o)) > 0) {
		assert_true(n <= SMTPC_OUT_MAX);
		assert_true(x->out_len + n <= x->out_cap);
		memcpy(x->out + x->out_len, o, n);
		x->out_len += n;
		x->out[x->out_len] = '\0';
		smtp_client_output_consumed(x->c, n);
	}
}

/* The server sends s (output taken first and after). */
static void srv(t *x, const char *s)
{
	pump(x);
	smtp_client_feed(x->c, (const uint8_t *)s, strlen(s));
	pump(x);
}

/* What the client wrote since the last expect() is exactly s. */
static void expect(t *x, const char *s)
{
	pump(x);
	assert_string_equal(x->out, s);
	x->out_len = 0;
	x->out[0] = '\0';
}

static void expect_result(t *x, size_t i, unsigned code, const char *enh,
			  smtpc_phase phase, const char *text)
{
	const smtpc_result *r = smtp_client_result(x->c, i);
	assert_int_equal(r->code, code);
	assert_string_equal(r->enh, enh);
	assert_int_equal(r->phase, phase);
	if (text != NULL)
		assert_string_equal(r->text, text);
}

/* Greeting and a plain EHLO reply with the given keyword lines. */
static void hello(t *x, const char *ehlo_reply)
{
	assert_int_equal(smtp_client_timeout_ms(x->c), SMTPC_GREETING_MS);
	srv(x, "220 mx.example.net ESMTP\r\n");
	expect(x, "EHLO client.example\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), SMTPC_COMMAND_MS);
	srv(x, ehlo_reply);
}

#define EHLO_PLAIN "250-mx.example.net\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"
#define EHLO_PIPE                                                       \
	"250-mx.example.net hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n" \
	"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n"

/* ------------------------------------------------------ transactions */

static void test_no_pipelining(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PLAIN);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	assert_string_equal(smtp_client_caps_text(x->c), "SIZE=1000000 8BITMIME");
	assert_false(smtp_client_caps(x->c)->pipelining);
	srv(x, "250 2.1.0 Ok\r\n");
	expect(x, "RCPT TO:<b@example.net>\r\n");
	srv(x, "250 2.1.5 Ok\r\n");
	expect(x, "RCPT TO:<c@example.net>\r\n");
	srv(x, "250 2.1.5 Ok\r\n");
	expect(x, "DATA\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), SMTPC_DATA_INIT_MS);
	srv(x, "354 End data with <CR><LF>.<CR><LF>\r\n");
	expect(x, BODY ".\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), SMTPC_DATA_END_MS);
	assert_false(smtp_client_done(x->c));
	srv(x, "250 2.0.0 Ok: queued as 12345\r\n");
	expect(x, "QUIT\r\n");
	assert_true(smtp_client_done(x->c));
	assert_int_equal(smtp_client_timeout_ms(x->c), 0);
	expect_result(x, 0, 250, "2.0.0", SMTPC_PHASE_DATA, "Ok: queued as 12345");
	expect_result(x, 1, 250, "2.0.0", SMTPC_PHASE_DATA, "Ok: queued as 12345");
	assert_false(smtp_client_failed(x->c));
	assert_string_equal(smtp_client_reason(x->c), "");
	assert_string_equal(smtp_client_greeting(x->c), "mx.example.net ESMTP");
	assert_string_equal(smtp_client_last_reply(x->c),
			    "250 2.0.0 Ok: queued as 12345");
	assert_false(smtp_client_tls_used(x->c));
	/* the 221 and the close change nothing */
	srv(x, "221 2.0.0 Bye\r\n");
	smtp_client_eof(x->c);
	expect(x, "");
	assert_true(smtp_client_done(x->c));
	assert_int_equal(smtp_client_timeout_ms(x->c), 0);
	expect_result(x, 0, 250, "2.0.0", SMTPC_PHASE_DATA, NULL);
	stop(x);
}

/* RFC 2920: MAIL, RCPTs and DATA in one group, replies in order; a
 * partial RCPT failure gives per-recipient results. */
static void test_pipelining(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_rcpt r3[] = {
		{ .addr = "b@example.net", .notify = SMTPC_NOTIFY_SUCCESS | SMTPC_NOTIFY_DELAY,
		  .orcpt = "rfc822;b+2Bx@example.net" },
		{ .addr = "c@example.net", .notify = SMTPC_NOTIFY_NEVER },
		{ .addr = "d@example.net", .notify = 0xe },
	};
	smtpc_message m = message();
	m.rcpts = r3;
	m.n_rcpts = 3;
	m.envid = "QQ314159";
	m.ret = SMTPC_RET_HDRS;
	m.eightbit = true;
	t *x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21 BODY=8BITMIME RET=HDRS ENVID=QQ314159\r\n"
		  "RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@example.net\r\n"
		  "RCPT TO:<c@example.net> NOTIFY=NEVER\r\n"
		  "RCPT TO:<d@example.net> NOTIFY=SUCCESS,FAILURE,DELAY\r\n"
		  "DATA\r\n");
	assert_string_equal(smtp_client_caps_text(x->c),
			    "PIPELINING SIZE=1000000 8BITMIME DSN ENHANCEDSTATUSCODES");
	srv(x, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 <c@example.net>:\r\n"
	       "550 5.1.1 no such user\r\n250 2.1.5 Ok\r\n354 go ahead\r\n");
	expect(x, BODY ".\r\n");
	srv(x, "250 2.0.0 queued\r\n");
	expect(x, "QUIT\r\n");
	assert_true(smtp_client_done(x->c));
	expect_result(x, 0, 250, "2.0.0", SMTPC_PHASE_DATA, "queued");
	expect_result(x, 1, 550, "5.1.1", SMTPC_PHASE_RCPT,
		      "<c@example.net>: no such user");
	expect_result(x, 2, 250, "2.0.0", SMTPC_PHASE_DATA, "queued");
	assert_false(smtp_client_result(x->c, 1)->local);
	stop(x);
}

/* E1: the pipelined replies split at every offset give the same
 * results. */
static void test_pipelining_split(void **state)
{
	(void)state;
	static const char replies[] =
		"250 2.1.0 Ok\r\n550 5.1.1 no\r\n250-2.1.5 a\r\n250 2.1.5 b\r\n"
		"354 go\r\n";
	size_t n = strlen(replies);
	for (size_t cut = 0; cut <= n; cut++) {
		smtpc_settings s = settings();
		smtpc_message m = message();
		t *x = start(&s, &m);
		hello(x, EHLO_PIPE);
		expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
			  "RCPT TO:<c@example.net>\r\nDATA\r\n");
		smtp_client_feed(x->c, (const uint8_t *)replies, cut);
		smtp_client_feed(x->c, (const uint8_t *)replies + cut, n - cut);
		expect(x, BODY ".\r\n");
		srv(x, "250 ok\r\n");
		expect(x, "QUIT\r\n");
		expect_result(x, 0, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
		expect_result(x, 1, 250, "2.0.0", SMTPC_PHASE_DATA, "ok");
		stop(x);
	}
}

/* All recipients refused, with PIPELINING: DATA's 354 gets an empty
 * message (RFC 2920 §3.1), never the body. */
static void test_pipelining_all_refused(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
		  "RCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(x, "250 Ok\r\n550 5.1.1 no\r\n450 4.2.0 later\r\n354 go\r\n");
	expect(x, ".\r\nQUIT\r\n");
	assert_true(smtp_client_done(x->c));
	expect_result(x, 0, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
	expect_result(x, 1, 450, "4.2.0", SMTPC_PHASE_RCPT, "later");
	stop(x);

	/* the usual case: DATA refused too */
	x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
		  "RCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(x, "250 Ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
	expect_result(x, 1, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
	stop(x);
}

/* Without PIPELINING: no DATA when nobody was accepted. */
static void test_all_refused(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PLAIN);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	srv(x, "250 ok\r\n");
	expect(x, "RCPT TO:<b@example.net>\r\n");
	srv(x, "550 no\r\n");
	expect(x, "RCPT TO:<c@example.net>\r\n");
	srv(x, "551 not here\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 550, "5.0.0", SMTPC_PHASE_RCPT, "no");
	expect_result(x, 1, 551, "5.0.0", SMTPC_PHASE_RCPT, "not here");
	assert_true(smtp_client_done(x->c));
	stop(x);
}

static void test_mail_refused(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PLAIN);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	srv(x, "451 4.3.2 try later\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 451, "4.3.2", SMTPC_PHASE_MAIL, "try later");
	expect_result(x, 1, 451, "4.3.2", SMTPC_PHASE_MAIL, "try later");
	stop(x);

	/* pipelined: the RCPT and DATA replies are read, and change nothing */
	x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
		  "RCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(x, "553 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n");
	expect(x, "");
	srv(x, "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 553, "5.7.1", SMTPC_PHASE_MAIL, "sender refused");
	expect_result(x, 1, 553, "5.7.1", SMTPC_PHASE_MAIL, "sender refused");
	stop(x);
}

/* 5xx and 4xx after the dot: for every accepted recipient. */
static void test_end_of_data_refused(void **state)
{
	(void)state;
	static const struct {
		const char *reply;
		unsigned code;
		const char *enh;
	} cases[] = {
		{ "554 5.7.1 spam\r\n", 554, "5.7.1" },
		{ "452 4.3.1 out of space\r\n", 452, "4.3.1" },
		{ "552 too big\r\n", 552, "5.0.0" },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		smtpc_settings s = settings();
		smtpc_message m = message();
		t *x = start(&s, &m);
		hello(x, EHLO_PIPE);
		expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
			  "RCPT TO:<c@example.net>\r\nDATA\r\n");
		srv(x, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n354 go\r\n");
		expect(x, BODY ".\r\n");
		srv(x, cases[k].reply);
		expect(x, "QUIT\r\n");
		expect_result(x, 0, cases[k].code, cases[k].enh, SMTPC_PHASE_DATA, NULL);
		expect_result(x, 1, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
		assert_false(smtp_client_failed(x->c));
		stop(x);
	}
}

/* DATA itself refused (not pipelined): the accepted ones get it. */
static void test_data_refused(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PLAIN);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	srv(x, "250 ok\r\n");
	expect(x, "RCPT TO:<b@example.net>\r\n");
	srv(x, "250 ok\r\n");
	expect(x, "RCPT TO:<c@example.net>\r\n");
	srv(x, "550 5.1.1 no\r\n");
	expect(x, "DATA\r\n");
	srv(x, "451 4.3.0 not now\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 451, "4.3.0", SMTPC_PHASE_DATA, "not now");
	expect_result(x, 1, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
	stop(x);
}

/* EHLO refused: HELO, then no extensions (no SIZE=, no BODY=). */
static void test_helo_fallback(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, "502 5.5.2 what\r\n");
	expect(x, "HELO client.example\r\n");
	srv(x, "250 hi\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	assert_false(smtp_client_caps(x->c)->esmtp);
	stop(x);

	/* HELO refused as well: permanent */
	x = start(&s, &m);
	hello(x, "500 no\r\n");
	expect(x, "HELO client.example\r\n");
	srv(x, "550 5.7.1 go away\r\n");
	expect(x, "QUIT\r\n");
	assert_true(smtp_client_failed(x->c));
	assert_true(smtp_client_failed_permanent(x->c));
	expect_result(x, 0, 550, "5.7.1", SMTPC_PHASE_SESSION, "go away");
	assert_string_equal(smtp_client_reason(x->c), "HELO refused: 550 5.7.1 go away");
	stop(x);

	/* EHLO 4xx: temporary */
	x = start(&s, &m);
	hello(x, "450 4.7.1 later\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 1, 450, "4.7.1", SMTPC_PHASE_SESSION, "later");
	assert_false(smtp_client_failed_permanent(x->c));
	stop(x);
}

/* The null sender, and the reverse path as given. */
static void test_null_sender(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	m.mail_from = "";
	t *x = start(&s, &m);
	hello(x, "250 mx\r\n");
	expect(x, "MAIL FROM:<>\r\n");
	stop(x);
}

/* ------------------------------------------------- refusals before MAIL */

static void test_local_refusals(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	/* 8-bit body, no 8BITMIME: 5.6.3, nothing stripped, nothing sent */
	m.eightbit = true;
	t *x = start(&s, &m);
	hello(x, "250-mx\r\n250 SIZE 100\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 554, "5.6.3", SMTPC_PHASE_MAIL, NULL);
	expect_result(x, 1, 554, "5.6.3", SMTPC_PHASE_MAIL, NULL);
	assert_true(smtp_client_result(x->c, 0)->local);
	assert_non_null(strstr(smtp_client_result(x->c, 0)->text, "8BITMIME"));
	assert_true(smtp_client_done(x->c));
	stop(x);

	/* SMTPUTF8 message, no SMTPUTF8: 5.6.7 */
	m = message();
	m.smtputf8 = true;
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 8BITMIME\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 554, "5.6.7", SMTPC_PHASE_MAIL, NULL);
	assert_non_null(strstr(smtp_client_result(x->c, 1)->text, "SMTPUTF8"));
	stop(x);

	/* offered: SMTPUTF8 and BODY=8BITMIME sent, UTF-8 addresses fine */
	static const smtpc_rcpt ur[] = { { .addr = "j\xc3\xb6rg@b\xc3\xbc" "cher.example" } };
	m.rcpts = ur;
	m.n_rcpts = 1;
	m.eightbit = true;
	x = start(&s, &m);
	hello(x, "250-mx\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
	expect(x, "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8\r\n");
	srv(x, "250 ok\r\n");
	expect(x, "RCPT TO:<j\xc3\xb6rg@b\xc3\xbc" "cher.example>\r\n");
	stop(x);

	/* SIZE: 21 octets over a limit of 20: 5.3.4; 21 fits */
	m = message();
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 SIZE 20\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 552, "5.3.4", SMTPC_PHASE_MAIL,
		      "the message (21 octets) is larger than the server's SIZE limit (20)");
	stop(x);
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 SIZE 21\r\n");
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	stop(x);

	/* SIZE counts line ends as CRLF: "a\nb" is 6 octets on the wire */
	m.body = (const uint8_t *)"a\nb";
	m.body_len = 3;
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 SIZE\r\n");
	expect(x, "MAIL FROM:<a@example.org> SIZE=6\r\n");
	stop(x);
}

/* ------------------------------------------------------- TLS: T5, T6 */

static void test_starttls_injection(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	s.tls = SMTPC_TLS_MAY;
	t *x = start(&s, &m);
	hello(x, "250-mx\r\n250-SIZE 10\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	expect(x, "STARTTLS\r\n");
	assert_false(smtp_client_want_tls(x->c));
	/* T5: the 220 and a fake EHLO reply in one segment */
	srv(x, "220 2.0.0 go ahead\r\n250 fake-EHLO\r\n");
	expect(x, "");
	assert_true(smtp_client_want_tls(x->c));
	/* more cleartext before the handshake: dropped too */
	srv(x, "250-more\r\n250 fake\r\n");
	expect(x, "");
	assert_int_equal(smtp_client_timeout_ms(x->c), SMTPC_COMMAND_MS);
	smtp_client_tls_started(x->c);
	assert_false(smtp_client_want_tls(x->c));
	/* EHLO again; nothing was taken as its reply */
	expect(x, "EHLO client.example\r\n");
	assert_false(smtp_client_caps(x->c)->starttls);
	assert_string_equal(smtp_client_caps_text(x->c), "");
	/* the new capabilities, not the old ones (SIZE 10 is gone) */
	srv(x, "250-mx\r\n250 8BITMIME\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	assert_true(smtp_client_tls_used(x->c));
	assert_false(smtp_client_caps(x->c)->pipelining);
	srv(x, "250 ok\r\n");
	expect(x, "RCPT TO:<b@example.net>\r\n");
	stop(x);

	/* the fake reply in a later read, before tls_started: also dropped */
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "STARTTLS\r\n");
	srv(x, "220 go");
	srv(x, " ahead\r\n");
	assert_true(smtp_client_want_tls(x->c));
	srv(x, "250 fake\r\n");
	smtp_client_tls_started(x->c);
	expect(x, "EHLO client.example\r\n");
	srv(x, "250 mx\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	stop(x);
}

/* T6: MUST without STARTTLS, with STARTTLS refused, with a failed
 * handshake: temporary, never cleartext. */
static void test_must_tls(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	s.tls = SMTPC_TLS_MUST;
	t *x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 451, "4.7.4", SMTPC_PHASE_SESSION,
		      "TLS is required but the server does not offer STARTTLS");
	expect_result(x, 1, 451, "4.7.4", SMTPC_PHASE_SESSION, NULL);
	assert_true(smtp_client_failed(x->c));
	assert_false(smtp_client_failed_permanent(x->c));
	assert_true(smtp_client_result(x->c, 0)->local);
	stop(x);

	/* STARTTLS refused with 5xx: 4xx for us */
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "STARTTLS\r\n");
	srv(x, "554 5.7.0 no TLS for you\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 454, "4.7.0", SMTPC_PHASE_SESSION, "no TLS for you");
	assert_false(smtp_client_failed_permanent(x->c));
	stop(x);

	/* the handshake fails (bad certificate) */
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "STARTTLS\r\n");
	srv(x, "220 go\r\n");
	smtp_client_tls_failed(x->c, "certificate\r\nverify failed");
	expect(x, "");
	assert_true(smtp_client_done(x->c));
	expect_result(x, 0, 451, "4.7.0", SMTPC_PHASE_SESSION,
		      "TLS handshake failed: certificate??verify failed");
	stop(x);

	/* MAY: a refused STARTTLS goes on in cleartext */
	s.tls = SMTPC_TLS_MAY;
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "STARTTLS\r\n");
	srv(x, "454 4.7.0 TLS not available\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	assert_false(smtp_client_tls_used(x->c));
	stop(x);

	/* NONE: STARTTLS never sent */
	s.tls = SMTPC_TLS_NONE;
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	stop(x);

	/* implicit TLS (465): no STARTTLS even if offered */
	s.tls = SMTPC_TLS_MUST;
	s.tls_active = true;
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	assert_true(smtp_client_tls_used(x->c));
	stop(x);
}

/* ------------------------------------------------------------- AUTH */

static t *auth_start(const char *mechs, smtpc_tls_policy tls, bool active)
{
	smtpc_settings s = settings();
	smtpc_message m = message();
	s.tls = tls;
	s.tls_active = active;
	s.auth_user = "user";
	s.auth_pass = "pass";
	t *x = start(&s, &m);
	if (active) {
		hello(x, mechs);
		return x;
	}
	hello(x, "250-mx\r\n250 STARTTLS\r\n");
	expect(x, "STARTTLS\r\n");
	srv(x, "220 go\r\n");
	smtp_client_tls_started(x->c);
	expect(x, "EHLO client.example\r\n");
	srv(x, mechs);
	return x;
}

static void test_auth_plain(void **state)
{
	(void)state;
	t *x = auth_start("250-mx\r\n250-AUTH LOGIN PLAIN CRAM-MD5\r\n250 8BITMIME\r\n",
			  SMTPC_TLS_MUST, false);
	/* base64("\0user\0pass") */
	expect(x, "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	assert_string_equal(smtp_client_caps_text(x->c),
			    "8BITMIME AUTH PLAIN LOGIN (other)");
	srv(x, "235 2.7.0 Authentication successful\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	stop(x);

	/* implicit TLS, old "AUTH=" syntax */
	x = auth_start("250-mx\r\n250 AUTH=PLAIN\r\n", SMTPC_TLS_NONE, true);
	expect(x, "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	stop(x);
}

static void test_auth_login(void **state)
{
	(void)state;
	t *x = auth_start("250-mx\r\n250 AUTH LOGIN\r\n", SMTPC_TLS_MAY, false);
	expect(x, "AUTH LOGIN\r\n");
	srv(x, "334 VXNlcm5hbWU6\r\n");
	expect(x, "dXNlcg==\r\n");
	srv(x, "334 UGFzc3dvcmQ6\r\n");
	expect(x, "cGFzcw==\r\n");
	srv(x, "235 2.7.0 ok\r\n");
	expect(x, "MAIL FROM:<a@example.org>\r\n");
	stop(x);
}

static void test_auth_failures(void **state)
{
	(void)state;
	/* 535: permanent, 5.7.8 */
	t *x = auth_start("250-mx\r\n250 AUTH PLAIN\r\n", SMTPC_TLS_MUST, false);
	expect(x, "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
	srv(x, "535 Authentication credentials invalid\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 535, "5.7.8", SMTPC_PHASE_SESSION,
		      "Authentication credentials invalid");
	assert_true(smtp_client_failed_permanent(x->c));
	stop(x);

	/* 454: temporary */
	x = auth_start("250-mx\r\n250 AUTH LOGIN\r\n", SMTPC_TLS_MUST, false);
	expect(x, "AUTH LOGIN\r\n");
	srv(x, "334 VXNlcm5hbWU6\r\n");
	expect(x, "dXNlcg==\r\n");
	srv(x, "454 4.7.0 Temporary authentication failure\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 1, 454, "4.7.0", SMTPC_PHASE_SESSION, NULL);
	assert_false(smtp_client_failed_permanent(x->c));
	stop(x);

	/* neither PLAIN nor LOGIN */
	x = auth_start("250-mx\r\n250 AUTH CRAM-MD5\r\n", SMTPC_TLS_MUST, false);
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 451, "4.7.0", SMTPC_PHASE_SESSION, NULL);
	stop(x);

	/* AUTH over cleartext: never */
	smtpc_settings s = settings();
	smtpc_message m = message();
	s.tls = SMTPC_TLS_MAY;
	s.auth_user = "user";
	s.auth_pass = "pass";
	x = start(&s, &m);
	hello(x, "250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 451, "4.7.0", SMTPC_PHASE_SESSION, "AUTH needs TLS");
	assert_string_equal(smtp_client_reason(x->c), "AUTH needs TLS");
	stop(x);
}

/* -------------------------------------------------------------- E1 */

static void expect_protocol_error(t *x, const char *reason)
{
	expect(x, ""); /* out of step: no QUIT */
	assert_true(smtp_client_done(x->c));
	assert_true(smtp_client_failed(x->c));
	assert_false(smtp_client_failed_permanent(x->c));
	assert_string_equal(smtp_client_reason(x->c), reason);
	for (size_t i = 0; i < 2; i++) {
		const smtpc_result *r = smtp_client_result(x->c, i);
		assert_int_equal(r->code, 451);
		assert_int_equal(r->phase, SMTPC_PHASE_SESSION);
		assert_true(r->local);
	}
}

static void test_e1_bad_replies(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();

	/* 10,000 continuation lines */
	t *x = start(&s, &m);
	srv(x, "220 mx\r\n");
	expect(x, "EHLO client.example\r\n");
	for (unsigned i = 0; i < 10000; i++)
		srv(x, "250-X-LINE\r\n");
	expect_protocol_error(x, "protocol error: too many lines in one reply");
	expect_result(x, 0, 451, "4.5.0", SMTPC_PHASE_SESSION, NULL);
	stop(x);

	/* a line over the limit */
	x = start(&s, &m);
	char *big = malloc(5000);
	memset(big, 'a', 4999);
	memcpy(big, "220 ", 4);
	big[4999] = '\0';
	srv(x, big);
	free(big);
	expect_protocol_error(x, "protocol error: reply line too long");
	stop(x);

	/* continuation with a different code */
	x = start(&s, &m);
	hello(x, "250-mx\r\n251 PIPELINING\r\n");
	expect_protocol_error(x, "protocol error: continuation with a different code");
	stop(x);

	/* non-digits */
	x = start(&s, &m);
	srv(x, "2x0 hello\r\n");
	expect_protocol_error(x, "protocol error: reply code is not three digits");
	stop(x);

	/* "250-" and no last line, then the connection closes */
	x = start(&s, &m);
	hello(x, "250-mx\r\n250-PIPELINING\r\n");
	expect(x, "");
	assert_false(smtp_client_done(x->c));
	smtp_client_eof(x->c);
	expect(x, "");
	assert_true(smtp_client_done(x->c));
	assert_string_equal(smtp_client_reason(x->c),
			    "connection closed in the middle of a reply");
	expect_result(x, 1, 451, "4.4.2", SMTPC_PHASE_SESSION, NULL);
	stop(x);
}

/* E1: a whole session whose replies are split at every offset. */
static void test_e1_split_session(void **state)
{
	(void)state;
	static const char *const script[] = {
		"220-mx.example.net\r\n220 ESMTP\r\n",
		"250-mx\r\n250-SIZE 1000\r\n250 8BITMIME\r\n",
		"250 2.1.0 Ok\r\n",
		"250 2.1.5 Ok\r\n",
		"550 5.1.1 no\r\n",
		"354 go\r\n",
		"250 2.0.0 queued\r\n",
	};
	for (size_t step = 0; step < sizeof(script) / sizeof(script[0]); step++) {
		size_t n = strlen(script[step]);
		for (size_t cut = 0; cut <= n; cut++) {
			smtpc_settings s = settings();
			smtpc_message m = message();
			t *x = start(&s, &m);
			for (size_t k = 0; k < sizeof(script) / sizeof(script[0]); k++) {
				pump(x);
				if (k == step) {
					smtp_client_feed(x->c, (const uint8_t *)script[k], cut);
					pump(x);
					smtp_client_feed(x->c, (const uint8_t *)script[k] + cut,
							 n - cut);
				} else {
					srv(x, script[k]);
				}
			}
			pump(x);
			assert_true(smtp_client_done(x->c));
			assert_false(smtp_client_failed(x->c));
			expect_result(x, 0, 250, "2.0.0", SMTPC_PHASE_DATA, "queued");
			expect_result(x, 1, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
			stop(x);
		}
	}
}

/* -------------------------------------------------------------- E2 */

static void test_e2_drop_after_dot(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
		  "RCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(x, "250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n");
	expect(x, BODY ".\r\n");
	smtp_client_eof(x->c);
	expect(x, "");
	assert_true(smtp_client_done(x->c));
	/* never delivered: as if 451 (RFC 5321 §4.2.5) */
	expect_result(x, 0, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
	expect_result(x, 1, 451, "4.4.2", SMTPC_PHASE_SESSION,
		      "connection closed after the end of data, before the reply");
	stop(x);
}

/* A reply while the body is still being sent. */
static void test_e2_premature_reply(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	size_t blen = 300000;
	uint8_t *body = malloc(blen);
	for (size_t i = 0; i < blen; i++)
		body[i] = (i % 70 == 69) ? '\n' : 'x';
	m.body = body;
	m.body_len = blen;
	t *x = start(&s, &m);
	hello(x, EHLO_PIPE);
	char want[256];
	/* 4285 bare LFs, and a CRLF added at the end */
	assert_int_equal(dotstuff_size(body, blen), 300000 + 4285 + 2);
	snprintf(want, sizeof(want),
		 "MAIL FROM:<a@example.org> SIZE=304287\r\nRCPT TO:<b@example.net>\r\n"
		 "RCPT TO:<c@example.net>\r\nDATA\r\n");
	expect(x, want);
	smtp_client_feed(x->c, (const uint8_t *)"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", 32);
	/* one block of the body goes out */
	const uint8_t *o;
	size_t n = smtp_client_output(x->c, &o);
	assert_true(n > 0 && n <= SMTPC_OUT_MAX);
	smtp_client_output_consumed(x->c, n);
	assert_int_equal(smtp_client_timeout_ms(x->c), SMTPC_DATA_BLOCK_MS);
	smtp_client_feed(x->c, (const uint8_t *)"5", 1);
	assert_true(smtp_client_done(x->c));
	assert_int_equal(smtp_client_output(x->c, &o), 0);
	assert_string_equal(smtp_client_reason(x->c),
			    "protocol error: premature reply during DATA");
	expect_result(x, 0, 451, "4.5.0", SMTPC_PHASE_SESSION, NULL);
	expect_result(x, 1, 451, "4.5.0", SMTPC_PHASE_SESSION, NULL);
	stop(x);
	free(body);
}

/* A reply before its command was handed over: out of step. */
static void test_e2_early_reply(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	/* the greeting and an EHLO reply in one segment */
	smtp_client_feed(x->c, (const uint8_t *)"220 mx\r\n250 mx\r\n", 16);
	assert_true(smtp_client_done(x->c));
	assert_string_equal(smtp_client_reason(x->c),
			    "protocol error: reply before its command was sent");
	stop(x);

	/* one more reply than commands (not pipelined) */
	x = start(&s, &m);
	hello(x, EHLO_PLAIN);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	smtp_client_feed(x->c, (const uint8_t *)"250 ok\r\n250 ok\r\n", 16);
	assert_true(smtp_client_done(x->c));
	assert_string_equal(smtp_client_reason(x->c),
			    "protocol error: reply before its command was sent");
	stop(x);
}

static void test_e2_bad_greeting(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	/* 554: temporary for this MX (the driver tries the next) */
	t *x = start(&s, &m);
	srv(x, "554 5.7.1 no service for you\r\n");
	expect(x, "QUIT\r\n");
	assert_true(smtp_client_done(x->c));
	assert_true(smtp_client_failed(x->c));
	assert_false(smtp_client_failed_permanent(x->c));
	expect_result(x, 0, 454, "4.7.1", SMTPC_PHASE_SESSION, "no service for you");
	assert_string_equal(smtp_client_reason(x->c),
			    "greeting refused: 554 5.7.1 no service for you");
	assert_string_equal(smtp_client_greeting(x->c), "no service for you");
	stop(x);

	/* 4xx greeting */
	x = start(&s, &m);
	srv(x, "450 busy\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 450, "4.0.0", SMTPC_PHASE_SESSION, "busy");
	stop(x);

	/* garbage */
	x = start(&s, &m);
	srv(x, "SSH-2.0-OpenSSH_9.2\r\n");
	expect_protocol_error(x, "protocol error: reply code is not three digits");
	stop(x);

	/* a 2xx that is not 220 */
	x = start(&s, &m);
	srv(x, "250 hello\r\n");
	expect(x, "QUIT\r\n");
	expect_result(x, 0, 451, "4.5.0", SMTPC_PHASE_SESSION, NULL);
	stop(x);

	/* 421 greeting: no QUIT */
	x = start(&s, &m);
	srv(x, "421 4.3.2 shutting down\r\n");
	expect(x, "");
	assert_true(smtp_client_done(x->c));
	expect_result(x, 0, 421, "4.3.2", SMTPC_PHASE_SESSION, "shutting down");
	stop(x);
}

static void test_e2_421_mid_session(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	t *x = start(&s, &m);
	hello(x, EHLO_PLAIN);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\n");
	srv(x, "250 ok\r\n");
	expect(x, "RCPT TO:<b@example.net>\r\n");
	srv(x, "550 5.1.1 no\r\n");
	expect(x, "RCPT TO:<c@example.net>\r\n");
	srv(x, "421 4.4.2 timeout, closing\r\n");
	expect(x, "");
	assert_true(smtp_client_done(x->c));
	expect_result(x, 0, 550, "5.1.1", SMTPC_PHASE_RCPT, "no");
	expect_result(x, 1, 421, "4.4.2", SMTPC_PHASE_SESSION, "timeout, closing");
	assert_string_equal(smtp_client_reason(x->c),
			    "the server is closing: 421 4.4.2 timeout, closing");
	stop(x);

	/* 421 after the dot */
	x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=21\r\nRCPT TO:<b@example.net>\r\n"
		  "RCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(x, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	expect(x, BODY ".\r\n");
	srv(x, "421 bye\r\n");
	expect(x, "");
	expect_result(x, 0, 421, "4.0.0", SMTPC_PHASE_SESSION, "bye");
	expect_result(x, 1, 421, "4.0.0", SMTPC_PHASE_SESSION, "bye");
	stop(x);
}

/* --------------------------------------------------------- timeouts */

static void test_timeouts(void **state)
{
	(void)state;
	smtpc_settings s = settings();
	smtpc_message m = message();
	s.greeting_ms = 11;
	s.command_ms = 12;
	s.data_init_ms = 13;
	s.data_block_ms = 14;
	s.data_end_ms = 15;
	s.tls = SMTPC_TLS_MAY;

	/* each state's timer */
	t *x = start(&s, &m);
	assert_int_equal(smtp_client_timeout_ms(x->c), 11);
	srv(x, "220 mx\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), 12);
	srv(x, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), 12);
	srv(x, "220 go\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), 12); /* handshake */
	smtp_client_tls_started(x->c);
	assert_int_equal(smtp_client_timeout_ms(x->c), 12);
	srv(x, "250-mx\r\n250 PIPELINING\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), 12); /* MAIL */
	srv(x, "250 ok\r\n250 ok\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), 12); /* RCPT */
	srv(x, "250 ok\r\n");
	assert_int_equal(smtp_client_timeout_ms(x->c), 13); /* DATA */
	smtp_client_feed(x->c, (const uint8_t *)"354 go\r\n", 8);
	assert_int_equal(smtp_client_timeout_ms(x->c), 14); /* body */
	pump(x);
	assert_int_equal(smtp_client_timeout_ms(x->c), 15); /* after the dot */
	smtp_client_timeout(x->c);
	assert_true(smtp_client_done(x->c));
	assert_int_equal(smtp_client_timeout_ms(x->c), 0);
	expect_result(x, 0, 451, "4.4.2", SMTPC_PHASE_SESSION,
		      "timeout waiting for the reply to the end of data");
	expect_result(x, 1, 451, "4.4.2", SMTPC_PHASE_SESSION, NULL);
	pump(x);
	assert_null(strstr(x->out, "QUIT"));
	stop(x);

	/* timeouts in other states */
	static const struct {
		int upto;
		const char *reason;
	} cases[] = {
		{ 0, "timeout waiting for the greeting" },
		{ 1, "timeout waiting for the reply to EHLO" },
		{ 2, "timeout waiting for the reply to STARTTLS" },
		{ 3, "timeout during the TLS handshake" },
		{ 4, "timeout waiting for the reply to EHLO" },
		{ 5, "timeout waiting for the reply to MAIL" },
		{ 6, "timeout waiting for the reply to RCPT" },
		{ 7, "timeout waiting for the reply to DATA" },
	};
	static const char *const steps[] = {
		"220 mx\r\n", "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
		"220 go\r\n", NULL, "250-mx\r\n250 PIPELINING\r\n", "250 ok\r\n",
		"250 ok\r\n250 ok\r\n",
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		x = start(&s, &m);
		for (int i = 0; i < cases[k].upto; i++) {
			if (steps[i] == NULL)
				smtp_client_tls_started(x->c);
			else
				srv(x, steps[i]);
		}
		pump(x);
		smtp_client_timeout(x->c);
		pump(x);
		assert_true(smtp_client_done(x->c));
		assert_string_equal(smtp_client_reason(x->c), cases[k].reason);
		expect_result(x, 0, 451, "4.4.2", SMTPC_PHASE_SESSION, cases[k].reason);
		expect_result(x, 1, 451, "4.4.2", SMTPC_PHASE_SESSION, NULL);
		stop(x);
	}

	/* a timeout while the body is being written */
	size_t blen = 200000;
	uint8_t *body = malloc(blen);
	memset(body, 'y', blen);
	m.body = body;
	m.body_len = blen;
	s.tls = SMTPC_TLS_NONE;
	x = start(&s, &m);
	srv(x, "220 mx\r\n");
	srv(x, "250-mx\r\n250 PIPELINING\r\n");
	srv(x, "250 ok\r\n250 ok\r\n");
	smtp_client_feed(x->c, (const uint8_t *)"250 ok\r\n354 go\r\n", 16);
	assert_int_equal(smtp_client_timeout_ms(x->c), 14);
	smtp_client_timeout(x->c);
	assert_true(smtp_client_done(x->c));
	assert_string_equal(smtp_client_reason(x->c), "timeout sending the message");
	stop(x);
	free(body);

	/* after QUIT: the timer only ends the session */
	m = message();
	x = start(&s, &m);
	srv(x, "");
	smtp_client_feed(x->c, (const uint8_t *)"554 no\r\n", 8);
	const uint8_t *o;
	assert_int_equal(smtp_client_output(x->c, &o), 6); /* QUIT not taken */
	assert_false(smtp_client_done(x->c));
	smtp_client_timeout(x->c);
	assert_true(smtp_client_done(x->c));
	expect_result(x, 0, 454, "4.0.0", SMTPC_PHASE_SESSION, "no");
	stop(x);
}

/* -------------------------------------------------------------- E4 */

static void test_e4_refused_at_creation(void **state)
{
	(void)state;
	static const char *const bad_addrs[] = {
		"a@b>\r\nRCPT TO:<x@y",
		"a@b\r\n",
		"a@b\n",
		"a b@c",
		"<a@b>",
		"a@b>",
		"a@\x01x",
		"a\x7f@b",
		"",                        /* an empty recipient */
		"no-at-sign",
		"a@-bad-.example",
		"j\xc3\xb6rg@example.org", /* 8-bit without smtputf8 */
	};
	smtpc_settings s = settings();
	smtpc_message m = message();
	smtp_client *c = (smtp_client *)&c;
	const char *err;
	for (size_t i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++) {
		smtpc_rcpt r[1] = { { .addr = bad_addrs[i] } };
		m = message();
		m.rcpts = r;
		m.n_rcpts = 1;
		err = NULL;
		assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
		assert_null(c);
		assert_non_null(err);
		/* the same as a sender (except the null sender) */
		if (bad_addrs[i][0] != '\0') {
			m = message();
			m.mail_from = bad_addrs[i];
			err = NULL;
			assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
			assert_non_null(err);
		}
	}
	/* a long address */
	char longaddr[300];
	memset(longaddr, 'a', sizeof(longaddr));
	memcpy(longaddr + 240, "@example.org", 13);
	m = message();
	m.mail_from = longaddr;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);

	/* the HELO name (E4 with nodemailer's EHLO name) */
	static const char *const bad_helo[] = {
		"client.example\r\nMAIL FROM:<x@y>", "client example", "client\n",
		"client\x7f", "", "caf\xc3\xa9.example", "-bad.example",
	};
	for (size_t i = 0; i < sizeof(bad_helo) / sizeof(bad_helo[0]); i++) {
		s = settings();
		s.helo = bad_helo[i];
		m = message();
		err = NULL;
		assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
		assert_non_null(err);
	}
	s = settings();
	s.helo = "[192.0.2.1]";
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), 0);
	smtp_client_free(&c);
	s.helo = NULL;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);

	/* DSN values, RET, NOTIFY, counts, AUTH, policy */
	s = settings();
	smtpc_rcpt r[1] = { { .addr = "b@example.net" } };
	static const char *const bad_orcpt[] = {
		"rfc822;a@b\r\nRCPT TO:<x@y>", "rfc822;a b", "rfc822;a=b",
		"rfc822;a+2", "rfc822;a+zz", "a@b", ";a@b", "",
	};
	for (size_t i = 0; i < sizeof(bad_orcpt) / sizeof(bad_orcpt[0]); i++) {
		m = message();
		r[0].orcpt = bad_orcpt[i];
		m.rcpts = r;
		m.n_rcpts = 1;
		assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	}
	r[0].orcpt = "rfc822;a+2Bb@example.net";
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), 0);
	smtp_client_free(&c);
	r[0].orcpt = NULL;
	r[0].notify = SMTPC_NOTIFY_NEVER | SMTPC_NOTIFY_FAILURE;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	r[0].notify = 0x10;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	r[0].notify = 0;
	m.envid = "a\r\nb";
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	m.envid = "a=b";
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	m.envid = NULL;
	m.ret = 3;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	m = message();
	m.n_rcpts = 0;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	m.n_rcpts = SMTPC_RCPT_MAX + 1;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	m = message();
	m.body = NULL;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	m = message();
	s.auth_user = "u";
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	s.auth_pass = "";
	s.auth_user = "";
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
	s = settings();
	s.tls = (smtpc_tls_policy)7;
	assert_int_equal(smtp_client_new(&s, &m, &c, &err), -1);
}

/* ------------------------------------------- E3 / F4: the body writer */

/* The input with every line end made CRLF and a final CRLF if missing:
 * what a receiver must get back after unstuffing. */
static size_t normalise(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r') {
			out[o++] = '\r';
			out[o++] = '\n';
			if (i + 1 < n && in[i + 1] == '\n')
				i++;
		} else if (in[i] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
		} else {
			out[o++] = in[i];
		}
	}
	if (o > 0 && out[o - 1] != '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	return o;
}

/* Stuff in with output buffers of size cap. */
static size_t stuff(const uint8_t *in, size_t n, size_t cap, uint8_t *out)
{
	dotstuff st;
	size_t off = 0, o = 0;
	uint8_t *buf = malloc(cap);
	dotstuff_init(&st);
	while (off < n) {
		size_t used, w;
		dotstuff_run(&st, in + off, n - off, &used, buf, cap, &w);
		assert_true(w <= cap);
		assert_true(used > 0 || w > 0);
		if (used == 0 && w == 0)
			break;
		memcpy(out + o, buf, w);
		o += w;
		off += used;
	}
	assert_int_equal(off, n);
	for (;;) {
		size_t w;
		bool end = dotstuff_finish(&st, buf, cap, &w);
		memcpy(out + o, buf, w);
		o += w;
		if (end)
			break;
		assert_true(w > 0);
	}
	free(buf);
	return o;
}

typedef struct sink {
	uint8_t *b;
	size_t n;
} sink;

static void sink_out(void *arg, const uint8_t *d, size_t n)
{
	sink *s = arg;
	memcpy(s->b + s->n, d, n);
	s->n += n;
}

/* F4: the stuffed form read back by our DATA reader (REJECT_BARE: any bare
 * CR or LF would be flagged) is the normalised input, ending exactly at
 * the end of what we wrote. */
static void round_trip(const uint8_t *in, size_t n)
{
	static const size_t caps[] = { 2, 3, 5, 64, 100000 };
	uint8_t *norm = malloc(2 * n + 8), *got = malloc(2 * n + 16);
	size_t nn = normalise(in, n, norm);
	assert_int_equal(dotstuff_size(in, n), nn);
	for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		uint8_t *wire = malloc(3 * n + 16);
		size_t wn = stuff(in, n, caps[k], wire);
		/* no bare CR, no bare LF */
		for (size_t i = 0; i < wn; i++) {
			if (wire[i] == '\r')
				assert_true(i + 1 < wn && wire[i + 1] == '\n');
			if (wire[i] == '\n')
				assert_true(i > 0 && wire[i - 1] == '\r');
		}
		assert_true(wn >= 3);
		assert_memory_equal(wire + wn - 3, ".\r\n", 3);
		smtp_data_reader r;
		sink s = { .b = got, .n = 0 };
		bool done = false;
		smtp_data_init(&r, SMTP_DATA_REJECT_BARE, 0, 0, sink_out, &s);
		size_t used = smtp_data_feed(&r, wire, wn, &done);
		assert_true(done);
		assert_int_equal(used, wn); /* not ended early */
		assert_false(r.bare_seen);
		assert_int_equal(s.n, nn);
		assert_memory_equal(s.b, norm, nn);
		free(wire);
	}
	free(norm);
	free(got);
}

static void check_stuff(const char *in, const char *want)
{
	size_t n = strlen(in);
	uint8_t out[512];
	size_t o = stuff((const uint8_t *)in, n, 2, out);
	out[o] = '\0';
	assert_string_equal((char *)out, want);
	o = stuff((const uint8_t *)in, n, 4096, out);
	out[o] = '\0';
	assert_string_equal((char *)out, want);
	round_trip((const uint8_t *)in, n);
}

static void test_e3_dotstuff(void **state)
{
	(void)state;
	check_stuff("", ".\r\n");
	check_stuff("a", "a\r\n.\r\n");
	check_stuff("a\r\n", "a\r\n.\r\n");
	check_stuff(".", "..\r\n.\r\n");
	check_stuff(".\r\n", "..\r\n.\r\n");
	check_stuff("a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n");
	check_stuff("..a\r\n", "...a\r\n.\r\n");
	check_stuff("a.b\r\n.", "a.b\r\n..\r\n.\r\n");
	/* bare LF and bare CR become CRLF; a dot after either is stuffed */
	check_stuff("a\nb", "a\r\nb\r\n.\r\n");
	check_stuff("a\n.\nb", "a\r\n..\r\nb\r\n.\r\n");
	check_stuff("a\rb", "a\r\nb\r\n.\r\n");
	check_stuff("a\r.\r", "a\r\n..\r\n.\r\n");      /* CVE-2026-33604 */
	check_stuff("a\r.\rb\r\n", "a\r\n..\r\nb\r\n.\r\n");
	check_stuff("\r", "\r\n.\r\n");
	check_stuff("\n", "\r\n.\r\n");
	check_stuff("\r\r\n", "\r\n\r\n.\r\n");
	check_stuff("\n\r", "\r\n\r\n.\r\n");
	check_stuff("\r\n.\r\n", "\r\n..\r\n.\r\n");
	check_stuff("x\n.\r\n", "x\r\n..\r\n.\r\n");    /* "\n.\r\n" smuggling */
	check_stuff("x\r\n.\n", "x\r\n..\r\n.\r\n");
	check_stuff("x\r.\r\n", "x\r\n..\r\n.\r\n");
	check_stuff("a\r\n\r\n", "a\r\n\r\n.\r\n");

	/* every string over the alphabet {a, ., CR, LF} up to 7 octets */
	static const uint8_t alpha[4] = { 'a', '.', '\r', '\n' };
	uint8_t in[8];
	for (size_t len = 0; len <= 7; len++) {
		size_t total = (size_t)1 << (2 * len);
		for (size_t v = 0; v < total; v++) {
			for (size_t i = 0; i < len; i++)
				in[i] = alpha[(v >> (2 * i)) & 3];
			round_trip(in, len);
		}
	}
}

/* E3 through the client: the wire body is stuffed and normalised, and
 * SIZE counts the normalised form. */
static void test_e3_client_body(void **state)
{
	(void)state;
	static const char body[] = ".first\nsecond\r.third\r\n..\rend";
	smtpc_settings s = settings();
	smtpc_message m = message();
	m.body = (const uint8_t *)body;
	m.body_len = strlen(body);
	t *x = start(&s, &m);
	hello(x, EHLO_PIPE);
	expect(x, "MAIL FROM:<a@example.org> SIZE=33\r\nRCPT TO:<b@example.net>\r\n"
		  "RCPT TO:<c@example.net>\r\nDATA\r\n");
	srv(x, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	expect(x, "..first\r\nsecond\r\n..third\r\n...\r\nend\r\n.\r\n");
	stop(x);
}

/* A 5 MB body streamed through the 64 KiB buffer, read back by
 * smtp-data. */
static void test_large_body(void **state)
{
	(void)state;
	size_t blen = 5u << 20;
	uint8_t *body = malloc(blen);
	uint32_t v = 12345;
	for (size_t i = 0; i < blen; i++) {
		v = v * 1103515245u + 12345u;
		uint8_t r = (uint8_t)(v >> 24);
		body[i] = r < 8 ? '\n' : r < 10 ? '\r' : r < 20 ? '.' : (uint8_t)('a' + r % 26);
	}
	smtpc_settings s = settings();
	smtpc_message m = message();
	m.body = body;
	m.body_len = blen;
	t *x = start(&s, &m);
	hello(x, "250-mx\r\n250 PIPELINING\r\n");
	srv(x, "250 ok\r\n250 ok\r\n250 ok\r\n");
	x->out_len = 0;
	srv(x, "354 go\r\n");
	uint8_t *got = malloc(2 * blen + 8), *norm = malloc(2 * blen + 8);
	sink sk = { .b = got, .n = 0 };
	smtp_data_reader r;
	bool done = false;
	smtp_data_init(&r, SMTP_DATA_REJECT_BARE, 0, 0, sink_out, &sk);
	assert_int_equal(smtp_data_feed(&r, (uint8_t *)x->out, x->out_len, &done),
			 x->out_len);
	assert_true(done);
	assert_false(r.bare_seen);
	size_t nn = normalise(body, blen, norm);
	assert_int_equal(sk.n, nn);
	assert_memory_equal(got, norm, nn);
	x->out_len = 0;
	srv(x, "250 ok\r\n");
	expect(x, "QUIT\r\n");
	free(got);
	free(norm);
	free(body);
	stop(x);
}

/* The driver hands over output a few octets at a time; PIPELINING with
 * many recipients goes out in windows of the buffer. */
static void test_many_recipients(void **state)
{
	(void)state;
	size_t n = SMTPC_RCPT_MAX;
	smtpc_rcpt *r = calloc(n, sizeof(*r));
	char (*addr)[64] = calloc(n, 64);
	for (size_t i = 0; i < n; i++) {
		snprintf(addr[i], 64, "user%zu@example.net", i);
		r[i].addr = addr[i];
		r[i].notify = SMTPC_NOTIFY_FAILURE;
		r[i].orcpt = "rfc822;someone-with-a-long-original-address@example.org";
	}
	smtpc_settings s = settings();
	smtpc_message m = message();
	m.rcpts = r;
	m.n_rcpts = n;
	t *x = start(&s, &m);
	srv(x, "220 mx\r\n");
	expect(x, "EHLO client.example\r\n");
	smtp_client_feed(x->c, (const uint8_t *)EHLO_PIPE, strlen(EHLO_PIPE));
	/* the first window: as much as the buffer holds, not everything */
	const uint8_t *o;
	size_t first = smtp_client_output(x->c, &o);
	assert_true(first > SMTPC_OUT_MAX - 1024 && first <= SMTPC_OUT_MAX);
	/* hand it over 7 octets at a time, answering as lines complete */
	size_t mail_seen = 0, rcpt_seen = 0, replies = 0, data_seen = 0;
	char line[2048];
	size_t ll = 0;
	for (;;) {
		size_t k = smtp_client_output(x->c, &o);
		if (k == 0)
			break;
		if (k > 7)
			k = 7;
		for (size_t i = 0; i < k; i++) {
			assert_true(ll < sizeof(line));
			line[ll++] = (char)o[i];
			if (o[i] == '\n') {
				if (strncmp(line, "MAIL FROM:", 10) == 0)
					mail_seen++;
				if (strncmp(line, "RCPT TO:", 8) == 0)
					rcpt_seen++;
				if (strncmp(line, "DATA\r\n", 6) == 0)
					data_seen++;
				ll = 0;
			}
		}
		smtp_client_output_consumed(x->c, k);
		/* answer every whole command handed over so far */
		while (replies < mail_seen + rcpt_seen + data_seen) {
			const char *rep = replies == 0 ? "250 ok\r\n"
					  : replies <= n ? (replies % 2 ? "250 ok\r\n" : "550 no\r\n")
							 : "354 go\r\n";
			smtp_client_feed(x->c, (const uint8_t *)rep, strlen(rep));
			replies++;
		}
		if (data_seen)
			break;
	}
	assert_int_equal(rcpt_seen, n);
	assert_int_equal(data_seen, 1);
	pump(x);
	srv(x, "250 2.0.0 done\r\n");
	assert_true(smtp_client_done(x->c));
	for (size_t i = 0; i < n; i++) {
		const smtpc_result *res = smtp_client_result(x->c, i);
		if (i % 2 == 0)
			assert_int_equal(res->code, 250);
		else
			assert_int_equal(res->code, 550);
	}
	stop(x);
	free(addr);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_pipelining),
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_pipelining_split),
		cmocka_unit_test(test_pipelining_all_refused),
		cmocka_unit_test(test_all_refused),
		cmocka_unit_test(test_mail_refused),
		cmocka_unit_test(test_end_of_data_refused),
		cmocka_unit_test(test_data_refused),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_null_sender),
		cmocka_unit_test(test_local_refusals),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_must_tls),
		cmocka_unit_test(test_auth_plain),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_failures),
		cmocka_unit_test(test_e1_bad_replies),
		cmocka_unit_test(test_e1_split_session),
		cmocka_unit_test(test_e2_drop_after_dot),
		cmocka_unit_test(test_e2_premature_reply),
		cmocka_unit_test(test_e2_early_reply),
		cmocka_unit_test(test_e2_bad_greeting),
		cmocka_unit_test(test_e2_421_mid_session),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_e4_refused_at_creation),
		cmocka_unit_test(test_e3_dotstuff),
		cmocka_unit_test(test_e3_client_body),
		cmocka_unit_test(test_large_body),
		cmocka_unit_test(test_many_recipients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
