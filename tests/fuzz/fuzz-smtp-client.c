/*
 * fuzz-smtp-client.c — a whole outbound SMTP session
 * (src/smtp/smtp-client.c, with smtp-reply.c and dotstuff.c) driven by a
 * hostile server: the input is what the server sends (TESTING.md E1, E2,
 * T5).
 *
 * Input layout: byte 0 picks the settings and the message (TLS policy,
 * implicit TLS, AUTH, 8-bit body, SMTPUTF8, null sender, DSN
 * parameters); byte 1 the number of recipients (1..8, bits 0-2), whether
 * the server's bytes arrive a line per read (bit 3) or in random pieces,
 * and seeds the driver's choices (how much output it takes at a time,
 * whether a TLS handshake succeeds, when a timer fires); the rest is the
 * server's byte stream.  At its end the connection closes.
 *
 * Invariants checked (abort on violation):
 *  - the output never holds a bare CR or LF; no command line (outside the
 *    body) is longer than 1024 octets; each piece fits SMTPC_OUT_MAX;
 *  - nothing is written while TLS is awaited; AUTH is never written before
 *    TLS; the commands after STARTTLS's 220 start with EHLO;
 *  - once the connection closed, the session is done; every recipient then
 *    has a result: a code of 200..599, 2xx only for phase DATA and only
 *    after the full body and its dot were written, an enhanced code of the
 *    code's class, printable ASCII texts within their bounds;
 *  - the timer is 0 exactly when the session is done.
 */
#include "smtp-client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-smtp-client: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

typedef struct drv {
	smtp_client *c;
	uint64_t x;                 /* the driver's random choices */
	bool tls;                   /* TLS is up */
	bool in_body;               /* between "DATA" and the dot */
	bool dot_sent;              /* "\r\n.\r\n" was written */
	bool after_tls;             /* the next command must be EHLO */
	uint8_t prev;               /* last octet written */
	char line[1100];            /* the command line being written */
	size_t line_len;
	bool long_line;
	uint8_t win[5];             /* the last five octets written */
} drv;

static unsigned next(drv *d, unsigned mod)
{
	d->x = d->x * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((d->x >> 33) % mod);
}

static void printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	CHECK(n < max);
	for (size_t i = 0; i < n; i++)
		CHECK(s[i] >= 0x20 && s[i] <= 0x7e);
}

/* One command line complete (CRLF included in line_len). */
static void command(drv *d)
{
	const char *l = d->line;
	if (d->in_body)
		return;
	CHECK(!d->long_line);
	if (d->after_tls) {
		CHECK(strncmp(l, "EHLO ", 5) == 0);
		d->after_tls = false;
	}
	if (strncmp(l, "AUTH ", 5) == 0)
		CHECK(d->tls);
	if (d->line_len == 6 && memcmp(l, "DATA\r\n", 6) == 0)
		d->in_body = true; /* what follows may be the body */
}

static void written(drv *d, const uint8_t *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = o[i];
		if (ch == '\n')
			CHECK(d->prev == '\r');
		if (d->prev == '\r')
			CHECK(ch == '\n');
		d->prev = ch;
		memmove(d->win, d->win + 1, 4);
		d->win[4] = ch;
		if (memcmp(d->win, "\r\n.\r\n", 5) == 0) {
			d->dot_sent = true;
			d->in_body = false;
			d->line_len = 0;
			d->long_line = false;
			continue;
		}
		if (d->line_len < sizeof(d->line) - 1)
			d->line[d->line_len++] = (char)ch;
		else
			d->long_line = true;
		if (ch == '\n') {
			d->line[d->line_len] = '\0';
			command(d);
			d->line_len = 0;
			d->long_line = false;
		}
	}
}

/* The driver takes output: all of it, or a part (then the rest stays). */
static void take(drv *d, bool all)
{
	const uint8_t *o;
	size_t n;
	while ((n = smtp_client_output(d->c, &o)) > 0) {
		CHECK(n <= SMTPC_OUT_MAX);
		CHECK(!smtp_client_want_tls(d->c));
		size_t k = n;
		if (!all && next(d, 4) == 0)
			k = 1 + next(d, (unsigned)(n < 4096 ? n : 4096));
		written(d, o, k);
		smtp_client_output_consumed(d->c, k);
		if (k < n)
			break;
	}
}

static void tls_step(drv *d, bool ok)
{
	const uint8_t *o;
	if (!smtp_client_want_tls(d->c))
		return;
	CHECK(smtp_client_output(d->c, &o) == 0);
	if (ok) {
		smtp_client_tls_started(d->c);
		d->tls = true;
		d->after_tls = true;
	} else {
		smtp_client_tls_failed(d->c, "fuzz\r\nfailure");
		CHECK(smtp_client_done(d->c));
	}
}

static const smtpc_rcpt rcpts[8] = {
	{ .addr = "b@example.net" },
	{ .addr = "c@example.net", .notify = SMTPC_NOTIFY_NEVER },
	{ .addr = "d@example.net", .notify = 0xe, .orcpt = "rfc822;d+2Bx@example.net" },
	{ .addr = "Postmaster" },
	{ .addr = "\"quoted.local\"@example.net" },
	{ .addr = "f@[192.0.2.1]" },
	{ .addr = "g@example.net", .notify = SMTPC_NOTIFY_DELAY },
	{ .addr = "h@example.net" },
};

static const char body7[] = "Subject: t\r\n\r\n.dot\nbare LF\rbare CR\r\n..\r\nend";
static const char body8[] = "Subject: caf\xc3\xa9\r\n\r\n\xff\xfe.\r\n.\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0], sel = data[1];
	data += 2;
	size -= 2;
	static const smtpc_tls_policy pol[4] = { SMTPC_TLS_NONE, SMTPC_TLS_MAY,
						 SMTPC_TLS_MUST, SMTPC_TLS_MAY };
	smtpc_settings set = {
		.helo = "client.example",
		.tls = pol[mode & 3],
		.tls_active = (mode & 4) != 0,
		.auth_user = (mode & 8) ? "user" : NULL,
		.auth_pass = (mode & 8) ? "secret" : NULL,
		.greeting_ms = 1, .command_ms = 2, .data_init_ms = 3,
		.data_block_ms = 4, .data_end_ms = 5,
	};
	bool eight = (mode & 16) != 0;
	smtpc_message msg = {
		.mail_from = (mode & 64) ? "" : "a@example.org",
		.rcpts = rcpts,
		.n_rcpts = 1 + (sel & 7),
		.envid = (mode & 128) ? "ENV+2B1" : NULL,
		.ret = (mode & 128) ? SMTPC_RET_FULL : SMTPC_RET_NONE,
		.body = (const uint8_t *)(eight ? body8 : body7),
		.body_len = eight ? sizeof(body8) - 1 : sizeof(body7) - 1,
		.eightbit = eight,
		.smtputf8 = (mode & 32) != 0,
	};
	drv d;
	memset(&d, 0, sizeof(d));
	d.tls = set.tls_active;
	d.x = 0x9e3779b97f4a7c15ull * (sel + 1u) + size;
	const char *err = NULL;
	CHECK(smtp_client_new(&set, &msg, &d.c, &err) == 0);

	size_t off = 0;
	while (off < size && !smtp_client_done(d.c)) {
		size_t piece = 1 + next(&d, 64);
		if (sel & 8) {
			/* a polite network: one line per read */
			const uint8_t *nl = memchr(data + off, '\n', size - off);
			piece = nl != NULL ? (size_t)(nl - (data + off)) + 1 : size - off;
		}
		if (piece > size - off)
			piece = size - off;
		tls_step(&d, next(&d, 8) != 0);
		take(&d, next(&d, 8) != 0);
		if (smtp_client_done(d.c))
			break;
		CHECK(smtp_client_timeout_ms(d.c) >= 1 && smtp_client_timeout_ms(d.c) <= 5);
		bool waiting = smtp_client_want_tls(d.c);
		smtp_client_feed(d.c, data + off, piece);
		off += piece;
		if (waiting) {
			/* T5: what arrives before the handshake changes nothing */
			const uint8_t *o;
			CHECK(smtp_client_want_tls(d.c));
			CHECK(smtp_client_output(d.c, &o) == 0);
		}
		if (next(&d, 256) == 0)
			smtp_client_timeout(d.c);
	}
	take(&d, true);
	smtp_client_eof(d.c);
	take(&d, true);
	CHECK(smtp_client_done(d.c));
	CHECK(smtp_client_timeout_ms(d.c) == 0);

	for (size_t i = 0; i < msg.n_rcpts; i++) {
		const smtpc_result *r = smtp_client_result(d.c, i);
		CHECK(r->phase != SMTPC_PHASE_NONE);
		CHECK(r->code >= 200 && r->code <= 599);
		if (r->code < 300) {
			CHECK(r->phase == SMTPC_PHASE_DATA);
			CHECK(d.dot_sent);
		}
		CHECK(r->code < 300 || r->code >= 400);
		CHECK(r->enh[0] == (char)('0' + r->code / 100));
		CHECK(r->enh[1] == '.');
		printable(r->enh, sizeof(r->enh));
		printable(r->text, sizeof(r->text));
	}
	printable(smtp_client_reason(d.c), SMTPC_TEXT_MAX);
	printable(smtp_client_greeting(d.c), SMTPC_TEXT_MAX);
	printable(smtp_client_last_reply(d.c), SMTPC_TEXT_MAX);
	printable(smtp_client_caps_text(d.c), 256);
	CHECK(!smtp_client_failed(d.c) || smtp_client_reason(d.c)[0] != '\0');
	smtp_client_free(&d.c);
	CHECK(d.c == NULL);
	return 0;
}
