/*
 * test-smtp-server.c — the inbound ESMTP session state machine, driven
 * through its API as the daemon will drive it: bytes in, replies and
 * callbacks out.  Each test names the TESTING.md row it shows.
 */
#include "test-common.h"

#include "smtp-server.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct drv {
	smtp_session *s;
	char out[1 << 20];
	size_t out_len;
	char data[1 << 16];
	size_t data_len;
	unsigned mails, rcpts, begins, ends, aborts, tls;
	bool auto_reply;            /* decide at once in the callbacks */
	unsigned rcpt_code;         /* what to answer RCPT with */
	unsigned auths;             /* AUTH callbacks */
	char authzid[256], user[256], pass[256];
	size_t pass_len;
	bool check_sender;          /* MAIL FROM must be the AUTH user (B2) */
} drv;

static void take_output(drv *d)
{
	const uint8_t *o;
	size_t n;
	while ((n = smtp_session_output(d->s, &o)) > 0) {
		assert_true(d->out_len + n < sizeof(d->out));
		memcpy(d->out + d->out_len, o, n);
		d->out_len += n;
		d->out[d->out_len] = '\0';
		smtp_session_output_consumed(d->s, n);
	}
}

static void cb_mail(void *arg, const smtp_path *from, const smtp_mail_params *p)
{
	drv *d = arg;
	(void)p;
	d->mails++;
	/* as a submission driver does (Postfix reject_sender_login_mismatch) */
	const char *u = smtp_session_user(d->s);
	char addr[600];
	snprintf(addr, sizeof(addr), "%s@%s", from->local, from->domain);
	if (d->check_sender && (u == NULL || strcmp(u, addr) != 0)) {
		smtp_session_reply(d->s, 553, "5.7.1", "Sender address not owned by the user");
		return;
	}
	if (d->auto_reply)
		smtp_session_reply(d->s, 250, "2.1.0", "Ok");
}

static void cb_rcpt(void *arg, const smtp_path *to, const smtp_rcpt_params *p)
{
	drv *d = arg;
	(void)to;
	(void)p;
	d->rcpts++;
	if (d->auto_reply)
		smtp_session_reply(d->s, d->rcpt_code, d->rcpt_code < 400 ? "2.1.5" : "5.1.1",
				   d->rcpt_code < 400 ? "Ok" : "No such user");
}

static void cb_begin(void *arg)
{
	drv *d = arg;
	d->begins++;
	d->data_len = 0;
}

static void cb_chunk(void *arg, const uint8_t *data, size_t len)
{
	drv *d = arg;
	assert_true(d->data_len + len < sizeof(d->data));
	memcpy(d->data + d->data_len, data, len);
	d->data_len += len;
}

static void cb_end(void *arg)
{
	drv *d = arg;
	d->ends++;
	if (d->auto_reply)
		smtp_session_reply(d->s, 250, "2.0.0", "Ok: queued");
}

static void cb_abort(void *arg)
{
	drv *d = arg;
	d->aborts++;
}

static void cb_tls(void *arg)
{
	drv *d = arg;
	d->tls++;
}

/* AUTH: the password "secret" is right; auto_reply answers at once. */
static void cb_auth(void *arg, const char *authzid, const char *user,
		    const char *pass, size_t len)
{
	drv *d = arg;
	d->auths++;
	assert_true(len < sizeof(d->pass));
	assert_int_equal(strlen(pass), len);
	snprintf(d->authzid, sizeof(d->authzid), "%s", authzid);
	snprintf(d->user, sizeof(d->user), "%s", user);
	memcpy(d->pass, pass, len);
	d->pass[len] = '\0';
	d->pass_len = len;
	if (d->auto_reply)
		smtp_session_auth_done(d->s, strcmp(pass, "secret") == 0);
}

static const smtp_callbacks cbs = {
	.mail = cb_mail, .rcpt = cb_rcpt, .data_begin = cb_begin,
	.data_chunk = cb_chunk, .data_end = cb_end, .abort = cb_abort,
	.starttls = cb_tls, .auth = cb_auth,
};

static smtp_settings default_settings(void)
{
	smtp_settings set = {
		.hostname = "mx.alpha.test",
		.line_max = 1000,
		.max_rcpt = 100,
		.soft_errors = 10, .error_delay_ms = 1000,
		.hard_errors = 20,
		.offer = { .size_max = 10000, .chunking = true, .smtputf8 = true,
			   .dsn = true, .eightbit = true },
		.starttls = true,
	};
	return set;
}

static drv *start(const smtp_settings *set)
{
	drv *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->auto_reply = true;
	d->rcpt_code = 250;
	assert_int_equal(smtp_session_new(set, &cbs, d, &d->s), 0);
	smtp_session_greet(d->s);
	take_output(d);
	assert_true(strncmp(d->out, "220 mx.alpha.test", 17) == 0);
	d->out_len = 0;
	return d;
}

static void stop(drv *d)
{
	smtp_session_free(&d->s);
	free(d);
}

static void send_str(drv *d, const char *text)
{
	size_t n = strlen(text);
	size_t taken = smtp_session_feed(d->s, (const uint8_t *)text, n);
	assert_int_equal(taken, n);
	take_output(d);
}

static void send_bytes(drv *d, const void *data, size_t n)
{
	assert_int_equal(smtp_session_feed(d->s, data, n), n);
	take_output(d);
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void clear(drv *d)
{
	d->out_len = 0;
	d->out[0] = '\0';
}

/* ---------------------------------------------------------------- tests */

static void test_ehlo_and_a_message(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "EHLO client.example\r\n");
	assert_non_null(strstr(d->out, "250-mx.alpha.test\r\n"));
	assert_non_null(strstr(d->out, "250-PIPELINING\r\n"));
	assert_non_null(strstr(d->out, "250-SIZE 10000\r\n"));
	assert_non_null(strstr(d->out, "250-CHUNKING\r\n"));
	assert_non_null(strstr(d->out, "250 STARTTLS\r\n"));
	clear(d);
	/* pipelined MAIL, RCPT, DATA (allowed after EHLO) */
	send_str(d, "MAIL FROM:<a@example.net> SIZE=100\r\nRCPT TO:<bob@alpha.test>\r\nDATA\r\n");
	assert_string_equal(d->out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	clear(d);
	send_str(d, "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n");
	assert_string_equal(d->out, "250 2.0.0 Ok: queued\r\n");
	assert_int_equal(d->ends, 1);
	assert_int_equal(d->data_len, strlen("Subject: hi\r\n\r\n.dot\r\nbody\r\n"));
	assert_memory_equal(d->data, "Subject: hi\r\n\r\n.dot\r\nbody\r\n", d->data_len);
	clear(d);
	send_str(d, "QUIT\r\n");
	assert_string_equal(d->out, "221 2.0.0 Bye\r\n");
	assert_true(smtp_session_closing(d->s));
	stop(d);
}

static void test_s5_early_talker(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	assert_int_equal(smtp_session_new(&set, &cbs, d, &d->s), 0);
	send_str(d, "EHLO too.early\r\n");
	smtp_session_greet(d->s);
	take_output(d);
	assert_true(strncmp(d->out, "554 5.5.0", 9) == 0);
	assert_true(smtp_session_closing(d->s));
	stop(d);
}

static void test_s5_unauthorised_pipelining(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	/* HELO: no PIPELINING; MAIL, RCPT, DATA and text in one packet */
	send_str(d, "HELO client.example\r\n");
	clear(d);
	send_str(d, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@alpha.test>\r\nDATA\r\nhello\r\n.\r\n");
	assert_true(strncmp(d->out, "554 5.5.0 Improper command pipelining", 37) == 0);
	assert_true(smtp_session_closing(d->s));
	assert_int_equal(d->ends, 0);
	stop(d);

	/* EHLO, but text sent with DATA before the 354 */
	d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	clear(d);
	send_str(d, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@alpha.test>\r\nDATA\r\nhello\r\n.\r\n");
	assert_non_null(strstr(d->out, "554 5.5.0"));
	assert_null(strstr(d->out, "354"));
	assert_int_equal(d->ends, 0);
	stop(d);
}

static void test_s6_sequence(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "MAIL FROM:<a@b.example>\r\n");
	assert_string_equal(d->out, "503 5.5.1 Send HELO or EHLO first\r\n");
	clear(d);
	send_str(d, "EHLO c.example\r\n");
	clear(d);
	send_str(d, "RCPT TO:<bob@alpha.test>\r\n");
	assert_string_equal(d->out, "503 5.5.1 Need MAIL before RCPT\r\n");
	clear(d);
	send_str(d, "DATA\r\n");
	assert_string_equal(d->out, "503 5.5.1 Need MAIL before DATA\r\n");
	clear(d);
	d->rcpt_code = 550;
	send_str(d, "MAIL FROM:<>\r\n");
	send_str(d, "RCPT TO:<nobody@alpha.test>\r\n");
	clear(d);
	send_str(d, "DATA\r\n");
	assert_string_equal(d->out, "554 5.5.1 No valid recipients\r\n");
	clear(d);
	send_str(d, "MAIL FROM:<x@y.example>\r\n");
	assert_string_equal(d->out, "503 5.5.1 Nested MAIL command\r\n");
	clear(d);
	send_str(d, "RSET\r\n");
	assert_string_equal(d->out, "250 2.0.0 Ok\r\n");
	assert_true(d->aborts >= 1);
	stop(d);
}

/* S3: every smuggling variant is content; exactly one end, and the
 * smuggled commands never run. */
static void test_s3_smuggling(void **state)
{
	(void)state;
	static const char *const ends[] = {
		"\n.\n", "\r.\r", "\r.\n", "\n.\r", "\n.\r\n", "\r\n.\n",
		"\r.\r\n", "\r\n.\r", "\r\n\0.\r\n", "\r\n.\0\r\n",
	};
	static const size_t lens[] = { 3, 3, 3, 3, 4, 4, 4, 4, 6, 6 };
	const char *smuggled = "MAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@alpha.test>\r\n"
			       "DATA\r\nsmuggled\r\n";
	for (size_t v = 0; v < sizeof(ends) / sizeof(ends[0]); v++) {
		for (int policy = 0; policy < 2; policy++) {
			smtp_settings set = default_settings();
			set.bare_policy = policy ? SMTP_DATA_NORMALISE : SMTP_DATA_REJECT_BARE;
			drv *d = start(&set);
			send_str(d, "EHLO c.example\r\n");
			send_str(d, "MAIL FROM:<a@b.example>\r\n");
			send_str(d, "RCPT TO:<bob@alpha.test>\r\n");
			send_str(d, "DATA\r\n");
			clear(d);
			char msg[512];
			size_t n = 0;
			memcpy(msg + n, "Subject: x\r\n\r\nhi", 16);
			n += 16;
			memcpy(msg + n, ends[v], lens[v]);
			n += lens[v];
			memcpy(msg + n, smuggled, strlen(smuggled));
			n += strlen(smuggled);
			memcpy(msg + n, "\r\n.\r\n", 5);
			n += 5;
			send_bytes(d, msg, n);
			/* one answer to one message, never a second 354 */
			assert_int_equal(count(d->out, "354"), 0);
			assert_int_equal(count(d->out, "\r\n"), 1);
			/* the NUL variants have no bare CR or LF: plain content */
			bool has_bare = v < 8;
			if (policy == 0 && has_bare) {
				assert_true(strncmp(d->out, "550 5.5.2", 9) == 0);
				assert_int_equal(d->ends, 0);
			} else {
				assert_true(strncmp(d->out, "250 2.0.0", 9) == 0);
				assert_int_equal(d->ends, 1);
				assert_int_equal(d->mails, 1);
			}
			/* the session is in sync: a next command works */
			clear(d);
			send_str(d, "NOOP\r\n");
			assert_string_equal(d->out, "250 2.0.0 Ok\r\n");
			stop(d);
		}
	}
}

static void test_s1_s4_lines(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	char *big = malloc(1u << 20);
	assert_non_null(big);
	memset(big, 'A', 2049);
	memcpy(big + 2049, "\r\n", 2);
	send_bytes(d, big, 2051);
	assert_string_equal(d->out, "500 5.5.2 Line too long\r\n");
	clear(d);
	/* 1 MB with no LF: one refusal, nothing buffered without bound */
	memset(big, 'B', 1u << 20);
	send_bytes(d, big, 1u << 20);
	assert_int_equal(count(d->out, "500 5.5.2 Line too long"), 1);
	clear(d);
	send_str(d, "\r\nNOOP\r\n");
	assert_string_equal(d->out, "250 2.0.0 Ok\r\n");
	clear(d);
	/* S4: bare LF, CR inside a line, NUL */
	send_str(d, "EHLO x.example\n");
	assert_string_equal(d->out, "501 5.5.2 Lines must end with <CR><LF> and contain no <CR> or NUL\r\n");
	clear(d);
	send_str(d, "NOOP\rNOOP\r\n");
	assert_true(strncmp(d->out, "501 5.5.2", 9) == 0);
	clear(d);
	send_bytes(d, "NO\0OP\r\n", 7);
	assert_true(strncmp(d->out, "501 5.5.2", 9) == 0);
	free(big);
	stop(d);
}

static void test_s7_helo_argument(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"EHLO \r\n", "EHLO\r\n", "EHLO [1.2.3.321]\r\n", "EHLO [1..2.3.4]\r\n",
		"EHLO [1.2.3.4.5.]\r\n", "EHLO a..b\r\n", "HELO -bad.example\r\n",
	};
	smtp_settings set = default_settings();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		drv *d = start(&set);
		send_str(d, bad[i]);
		assert_true(strncmp(d->out, "501 5.5.4", 9) == 0);
		stop(d);
	}
	drv *d = start(&set);
	char name[320];
	memset(name, 'a', 300);
	memcpy(name, "EHLO ", 5);
	memcpy(name + 300, "\r\n", 3);
	send_str(d, name);
	assert_true(strncmp(d->out, "501 5.5.4", 9) == 0);
	clear(d);
	send_str(d, "EHLO [192.0.2.1]\r\n");
	assert_true(strncmp(d->out, "250-mx.alpha.test", 17) == 0);
	stop(d);
}

static void test_s10_too_many_recipients(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	send_str(d, "MAIL FROM:<a@b.example>\r\n");
	for (int i = 0; i < 105; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "RCPT TO:<u%d@alpha.test>\r\n", i);
		send_str(d, cmd);
	}
	assert_int_equal(count(d->out, "250 2.1.5"), 100);
	assert_int_equal(count(d->out, "452 4.5.3 Too many recipients"), 5);
	clear(d);
	send_str(d, "DATA\r\n");
	send_str(d, "x\r\n.\r\n");
	assert_non_null(strstr(d->out, "250 2.0.0 Ok: queued"));
	stop(d);
}

static void test_s11_too_big_then_next_message(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	send_str(d, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@alpha.test>\r\nDATA\r\n");
	clear(d);
	char line[82];
	memset(line, 'x', 78);
	memcpy(line + 78, "\r\n", 3);
	for (int i = 0; i < 200; i++) /* 16 KB > 10000 */
		send_str(d, line);
	assert_int_equal(d->out_len, 0); /* nothing until the real end */
	send_str(d, ".\r\n");
	assert_true(strncmp(d->out, "552 5.3.4", 9) == 0);
	assert_int_equal(d->ends, 0);
	clear(d);
	send_str(d, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@alpha.test>\r\nDATA\r\n");
	send_str(d, "small\r\n.\r\n");
	assert_non_null(strstr(d->out, "250 2.0.0 Ok: queued"));
	/* SIZE announced over the limit: refused at MAIL */
	clear(d);
	send_str(d, "MAIL FROM:<a@b.example> SIZE=20000\r\n");
	assert_true(strncmp(d->out, "552 5.3.4", 9) == 0);
	stop(d);
}

static void test_t1_t2_t3_starttls(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	clear(d);
	/* T1: a command pipelined after STARTTLS is never executed */
	send_str(d, "STARTTLS\r\nRSET\r\n");
	assert_int_equal(count(d->out, "250"), 0);
	assert_true(smtp_session_closing(d->s) || d->tls == 1);
	stop(d);

	d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	send_str(d, "MAIL FROM:<a@b.example>\r\n");
	clear(d);
	send_str(d, "STARTTLS arg\r\n");
	assert_string_equal(d->out, "501 5.5.4 Syntax: STARTTLS\r\n");
	clear(d);
	send_str(d, "STARTTLS\r\n");
	assert_string_equal(d->out, "220 2.0.0 Ready to start TLS\r\n");
	assert_int_equal(d->tls, 1);
	smtp_session_tls_started(d->s);
	clear(d);
	/* T2: state forgotten, EHLO needed again, no STARTTLS offered */
	send_str(d, "MAIL FROM:<a@b.example>\r\n");
	assert_string_equal(d->out, "503 5.5.1 Send HELO or EHLO first\r\n");
	clear(d);
	send_str(d, "EHLO c.example\r\n");
	assert_null(strstr(d->out, "STARTTLS"));
	clear(d);
	send_str(d, "STARTTLS\r\n");
	assert_string_equal(d->out, "503 5.5.1 TLS is already active\r\n");
	stop(d);

	set.starttls = false;
	d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	assert_null(strstr(d->out, "STARTTLS"));
	clear(d);
	send_str(d, "STARTTLS\r\n");
	assert_string_equal(d->out, "454 4.7.0 TLS not available\r\n");
	stop(d);
}

static void test_s14_s16_errors_vrfy(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "VRFY bob\r\nEXPN list\r\n");
	/* VRFY must end a pipelined group (RFC 2920): closed */
	assert_true(strncmp(d->out, "554 5.5.0", 9) == 0);
	assert_true(smtp_session_closing(d->s));
	stop(d);
	d = start(&set);
	send_str(d, "VRFY bob\r\n");
	assert_string_equal(d->out, "252 2.1.5 Cannot verify, but will accept the message\r\n");
	clear(d);
	send_str(d, "EXPN list\r\n");
	assert_string_equal(d->out, "502 5.5.1 EXPN is not available\r\n");
	for (int i = 0; i < 30 && !smtp_session_closing(d->s); i++)
		send_str(d, "JUNK\r\n");
	assert_true(smtp_session_closing(d->s));
	assert_non_null(strstr(d->out, "421 4.7.0 Too many errors"));
	assert_true(smtp_session_errors(d->s) >= 20);
	assert_true(smtp_session_delay_ms(d->s) > 0);
	stop(d);
}

static void test_bdat(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	send_str(d, "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<bob@alpha.test>\r\n");
	clear(d);
	send_str(d, "DATA\r\n");
	assert_string_equal(d->out, "503 5.5.1 Use BDAT for this message\r\n");
	clear(d);
	send_str(d, "BDAT 5\r\nhello");
	assert_string_equal(d->out, "250 2.0.0 5 octets received\r\n");
	clear(d);
	send_bytes(d, "BDAT 6 LAST\r\n wor\r\n", 19);
	assert_string_equal(d->out, "250 2.0.0 Ok: queued\r\n");
	assert_int_equal(d->data_len, 11);
	assert_memory_equal(d->data, "hello wor\r\n", 11);
	clear(d);
	/* BDAT 0 LAST ends an empty message; BDAT without MAIL is read, then refused */
	send_str(d, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@alpha.test>\r\nBDAT 0 LAST\r\n");
	assert_non_null(strstr(d->out, "250 2.0.0 Ok: queued"));
	clear(d);
	send_str(d, "BDAT 4\r\nRSET");
	assert_string_equal(d->out, "503 5.5.1 Need MAIL and RCPT before BDAT\r\n");
	stop(d);

	set.offer.chunking = false;
	d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	clear(d);
	send_str(d, "BDAT 4\r\n");
	assert_string_equal(d->out, "502 5.5.1 BDAT is not offered\r\n");
	stop(d);
}

static void test_async_decisions_hold_pipelined_commands(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	d->auto_reply = false;
	send_str(d, "EHLO c.example\r\n");
	clear(d);
	send_str(d, "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@alpha.test>\r\n");
	assert_int_equal(d->out_len, 0);
	assert_true(smtp_session_pending(d->s));
	assert_int_equal(d->rcpts, 0);
	smtp_session_reply(d->s, 250, "2.1.0", "Ok");
	take_output(d);
	assert_int_equal(d->rcpts, 1); /* the pipelined RCPT ran after it */
	smtp_session_reply(d->s, 550, "5.1.1", "No such user here");
	take_output(d);
	assert_string_equal(d->out, "250 2.1.0 Ok\r\n550 5.1.1 No such user here\r\n");
	stop(d);
}

static void test_byte_by_byte_equals_whole(void **state)
{
	(void)state;
	const char *script[] = {
		"EHLO c.example\r\n",
		"MAIL FROM:<a@b.example>\r\n",
		"RCPT TO:<bob@alpha.test>\r\n",
		"DATA\r\n",
		"Subject: s\r\n\r\n.. line\r\nend\r\n.\r\n",
		"QUIT\r\n",
	};
	smtp_settings set = default_settings();
	drv *a = start(&set), *b = start(&set);
	for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
		send_str(a, script[i]);
		for (const char *p = script[i]; *p != '\0'; p++)
			send_bytes(b, p, 1);
	}
	assert_string_equal(a->out, b->out);
	assert_int_equal(a->data_len, b->data_len);
	assert_memory_equal(a->data, b->data, a->data_len);
	stop(a);
	stop(b);
}

/* ----------------------------------------------------------------- AUTH */

/* Send in, check the whole output is want (NULL: anything), clear it. */
static void say(drv *d, const char *in, const char *want)
{
	send_str(d, in);
	if (want != NULL)
		assert_string_equal(d->out, want);
	clear(d);
}

/* The same with the start of the output only. */
static void say_prefix(drv *d, const char *in, const char *want)
{
	send_str(d, in);
	assert_true(strncmp(d->out, want, strlen(want)) == 0);
	clear(d);
}

/* A session past EHLO, its output cleared. */
static drv *start_ehlo(const smtp_settings *set)
{
	drv *d = start(set);
	say(d, "EHLO c.example\r\n", NULL);
	return d;
}

static smtp_settings auth_settings(void)
{
	smtp_settings set = default_settings();
	set.auth = set.auth_required = true;
	return set;
}

/* "AUTH PLAIN " + base64(raw[0..n)) + CRLF, or just the base64 line. */
static void b64_line(char *out, size_t size, const char *prefix,
		     const void *raw, size_t n)
{
	char b[2048];
	assert_true(sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL) <= sizeof(b));
	sodium_bin2base64(b, sizeof(b), raw, n, sodium_base64_VARIANT_ORIGINAL);
	int k = snprintf(out, size, "%s%s\r\n", prefix, b);
	assert_true(k > 0 && (size_t)k < size);
}

static void test_auth_off_by_default(void **state)
{
	(void)state;
	smtp_settings set = default_settings();
	drv *d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	assert_null(strstr(d->out, "AUTH"));
	clear(d);
	send_str(d, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	assert_string_equal(d->out, "500 5.5.2 Command unrecognized\r\n");
	assert_int_equal(d->auths, 0);
	stop(d);
}

/* B2: no MAIL before AUTH; PLAIN with an initial response; 553 from the
 * driver for a sender the user does not own; AUTH twice. */
static void test_b2_auth_plain(void **state)
{
	(void)state;
	smtp_settings set = auth_settings();
	drv *d = start(&set);
	d->check_sender = true;
	send_str(d, "EHLO c.example\r\n");
	assert_non_null(strstr(d->out, "250 AUTH PLAIN LOGIN\r\n"));
	clear(d);
	say(d, "MAIL FROM:<alice@alpha.test>\r\n", "530 5.7.0 Authentication required\r\n");
	assert_int_equal(d->mails, 0);
	char line[512];
	b64_line(line, sizeof(line), "AUTH PLAIN ", "\0alice@alpha.test\0wrong", 23);
	say(d, line, "535 5.7.8 Authentication credentials invalid\r\n");
	assert_null(smtp_session_user(d->s));
	b64_line(line, sizeof(line), "auth plain ", "\0alice@alpha.test\0secret", 24);
	say(d, line, "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(d->user, "alice@alpha.test");
	assert_string_equal(d->authzid, "");
	assert_int_equal(d->pass_len, 6);
	assert_string_equal(smtp_session_user(d->s), "alice@alpha.test");
	say(d, "MAIL FROM:<mallory@alpha.test>\r\n", "553 5.7.1 Sender address not owned by the user\r\n");
	say(d, "MAIL FROM:<alice@alpha.test>\r\n", "250 2.1.0 Ok\r\n");
	say(d, line, "503 5.5.1 Already authenticated\r\n");
	/* a new EHLO keeps the authentication (only STARTTLS forgets it) */
	say(d, "EHLO c.example\r\n", NULL);
	send_str(d, "MAIL FROM:<alice@alpha.test>\r\nRCPT TO:<bob@beta.test>\r\n");
	assert_string_equal(d->out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	assert_int_equal(d->auths, 2);
	stop(d);
}

/* LOGIN after 334 prompts, answered later; PLAIN without an initial
 * response; an authzid; a password with any printable bytes. */
static void test_auth_login_async(void **state)
{
	(void)state;
	smtp_settings set = auth_settings();
	drv *d = start_ehlo(&set);
	d->auto_reply = false;
	say(d, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
	char line[512];
	b64_line(line, sizeof(line), "", "bob", 3);
	say(d, line, "334 UGFzc3dvcmQ6\r\n");
	b64_line(line, sizeof(line), "", "p4ss w:rd\"!", 11);
	send_str(d, line);
	assert_int_equal(d->out_len, 0);   /* waits for the driver */
	assert_true(smtp_session_pending(d->s));
	assert_string_equal(d->user, "bob");
	assert_string_equal(d->pass, "p4ss w:rd\"!");
	/* commands sent meanwhile wait */
	send_str(d, "NOOP\r\n");
	assert_int_equal(d->out_len, 0);
	smtp_session_reply(d->s, 250, "2.0.0", "not an answer to AUTH");
	take_output(d);
	assert_int_equal(d->out_len, 0);
	smtp_session_auth_done(d->s, false);
	take_output(d);
	assert_string_equal(d->out, "535 5.7.8 Authentication credentials invalid\r\n"
			    "250 2.0.0 Ok\r\n");
	clear(d);
	say(d, "AUTH PLAIN\r\n", "334 \r\n");
	b64_line(line, sizeof(line), "", "bob\0bob\0secret", 14);
	send_str(d, line);
	assert_string_equal(d->authzid, "bob");
	smtp_session_auth_done(d->s, true);
	take_output(d);
	assert_string_equal(d->out, "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_session_user(d->s), "bob");
	/* LOGIN with the user name as initial response */
	drv *e = start_ehlo(&set);
	b64_line(line, sizeof(line), "AUTH LOGIN ", "carol", 5);
	say(e, line, "334 UGFzc3dvcmQ6\r\n");
	b64_line(line, sizeof(line), "", "secret", 6);
	send_str(e, line);
	assert_string_equal(e->out, "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_session_user(e->s), "carol");
	stop(e);
	stop(d);
}

/* B2 rows of the exchange: cancel, bad base64, malformed and over-long
 * responses, unknown mechanisms, wrong order. */
static void test_b2_auth_bad_input(void **state)
{
	(void)state;
	smtp_settings set = auth_settings();
	drv *d = start(&set);
	say(d, "AUTH PLAIN\r\n", "503 5.5.1 Send EHLO first\r\n");
	say(d, "HELO c.example\r\n", NULL);
	say(d, "AUTH PLAIN\r\n", "503 5.5.1 Send EHLO first\r\n");
	say(d, "EHLO c.example\r\n", NULL);
	say(d, "AUTH LOGIN\r\n*\r\n", "334 VXNlcm5hbWU6\r\n501 5.0.0 Authentication cancelled\r\n");
	say(d, "AUTH PLAIN\r\n", NULL);
	say(d, "*\r\n", "501 5.0.0 Authentication cancelled\r\n");
	static const char *const bad[] = {
		"AUTH PLAIN !!!!\r\n",          /* not base64 */
		"AUTH PLAIN AGFsaWNl\r\n",      /* "\0alice": no password field */
		"AUTH PLAIN Zm9v\r\n",          /* "foo" */
		"AUTH PLAIN AGFsaWNlAHNlY3JldAB4\r\n", /* a third NUL */
		"AUTH PLAIN AABzZWNyZXQ=\r\n",  /* empty user */
		"AUTH PLAIN AGFsaWNlAHNlY3JldA\r\n", /* unpadded */
		"AUTH PLAIN =\r\n",             /* empty initial response */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		say_prefix(d, bad[i], "501 5.5.2 ");
	assert_int_equal(d->auths, 0);
	/* a field over SMTP_AUTH_FIELD_MAX */
	char raw[600], line[1000];
	memset(raw, 'a', sizeof(raw));
	raw[0] = '\0';
	raw[300] = '\0';
	b64_line(line, sizeof(line), "AUTH PLAIN ", raw, 310);
	say(d, line, "501 5.5.2 Malformed PLAIN response\r\n");
	/* an exchange line over line_max ends the exchange, in sync */
	say(d, "AUTH LOGIN\r\n", NULL);
	char big[1500];
	memset(big, 'Q', sizeof(big));
	memcpy(big + sizeof(big) - 7, "\r\nNOOP", 6);
	big[sizeof(big) - 1] = '\0';
	send_str(d, big);
	say(d, "\r\n", "500 5.5.6 Authentication exchange line is too long\r\n"
	    "250 2.0.0 Ok\r\n");
	say(d, "AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication type\r\n");
	say_prefix(d, "AUTH\r\n", "501 5.5.4 ");
	say_prefix(d, "AUTH PLAIN a b\r\n", "501 5.5.4 ");
	/* a bare LF in an exchange line ends it */
	say(d, "AUTH LOGIN\r\n", NULL);
	say_prefix(d, "Ym9i\n", "501 5.5.2 ");
	send_str(d, "NOOP\r\n");
	assert_string_equal(d->out, "250 2.0.0 Ok\r\n");
	assert_int_equal(d->auths, 0);
	stop(d);
}

/* B2 538: AUTH only under TLS (not advertised before); T2: STARTTLS
 * forgets a successful AUTH. */
static void test_b2_t2_auth_and_tls(void **state)
{
	(void)state;
	smtp_settings set = auth_settings();
	set.auth_needs_tls = true;
	drv *d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	assert_null(strstr(d->out, "AUTH"));
	clear(d);
	say(d, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", "538 5.7.11 Encryption required for requested "
			    "authentication mechanism\r\n");
	send_str(d, "STARTTLS\r\n");
	smtp_session_tls_started(d->s);
	clear(d);
	send_str(d, "EHLO c.example\r\n");
	assert_non_null(strstr(d->out, "250 AUTH PLAIN LOGIN\r\n"));
	assert_null(strstr(d->out, "STARTTLS"));
	clear(d);
	send_str(d, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	assert_string_equal(d->out, "235 2.7.0 Authentication successful\r\n");
	stop(d);

	set.auth_needs_tls = false;
	d = start(&set);
	send_str(d, "EHLO c.example\r\n");
	send_str(d, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	assert_non_null(strstr(d->out, "235 2.7.0"));
	assert_string_equal(smtp_session_user(d->s), "alice");
	clear(d);
	send_str(d, "STARTTLS\r\n");
	smtp_session_tls_started(d->s);
	assert_null(smtp_session_user(d->s));
	say(d, "EHLO c.example\r\n", NULL);
	send_str(d, "MAIL FROM:<alice@alpha.test>\r\n");
	assert_string_equal(d->out, "530 5.7.0 Authentication required\r\n");
	stop(d);
}

static void test_auth_byte_by_byte(void **state)
{
	(void)state;
	const char *script[] = {
		"EHLO c.example\r\n", "AUTH LOGIN\r\n", "Ym9i\r\n", "c2VjcmV0\r\n",
		"MAIL FROM:<bob>\r\n", "RSET\r\n", "AUTH PLAIN\r\n", "QUIT\r\n",
	};
	smtp_settings set = auth_settings();
	drv *a = start(&set), *b = start(&set);
	for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
		send_str(a, script[i]);
		for (const char *p = script[i]; *p != '\0'; p++)
			send_bytes(b, p, 1);
	}
	assert_string_equal(a->out, b->out);
	assert_non_null(strstr(a->out, "235 2.7.0"));
	assert_non_null(strstr(a->out, "503 5.5.1 Already authenticated"));
	stop(a);
	stop(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ehlo_and_a_message),
		cmocka_unit_test(test_s5_early_talker),
		cmocka_unit_test(test_s5_unauthorised_pipelining),
		cmocka_unit_test(test_s6_sequence),
		cmocka_unit_test(test_s3_smuggling),
		cmocka_unit_test(test_s1_s4_lines),
		cmocka_unit_test(test_s7_helo_argument),
		cmocka_unit_test(test_s10_too_many_recipients),
		cmocka_unit_test(test_s11_too_big_then_next_message),
		cmocka_unit_test(test_t1_t2_t3_starttls),
		cmocka_unit_test(test_s14_s16_errors_vrfy),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_async_decisions_hold_pipelined_commands),
		cmocka_unit_test(test_byte_by_byte_equals_whole),
		cmocka_unit_test(test_auth_off_by_default),
		cmocka_unit_test(test_b2_auth_plain),
		cmocka_unit_test(test_auth_login_async),
		cmocka_unit_test(test_b2_auth_bad_input),
		cmocka_unit_test(test_b2_t2_auth_and_tls),
		cmocka_unit_test(test_auth_byte_by_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
