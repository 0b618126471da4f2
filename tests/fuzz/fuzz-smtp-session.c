/*
 * fuzz-smtp-session.c — TESTING.md F2: a whole inbound SMTP session
 * (src/smtp/smtp-server.c) driven by the input, with small limits.
 *
 * Input layout: byte 0 chooses the settings (bare-CR/LF policy,
 * CHUNKING/SMTPUTF8/STARTTLS offered, whether decisions are immediate or
 * delayed, AUTH offered and required), byte 1 seeds the chunk sizes (its
 * low bit: AUTH only under TLS); the rest is what the client sends, cut
 * into pieces.  Decisions: RCPT to a local part starting with 'x' is
 * refused, everything else accepted; a STARTTLS is completed; AUTH
 * succeeds when the password is "secret".
 *
 * Invariants checked (abort on violation):
 *  - at most one end of message per 354 or BDAT transaction, and none
 *    without a data_begin;
 *  - the output stays under the session's bound and every reply line
 *    ends with CRLF and starts with a three-digit code;
 *  - nothing is processed after the session closed;
 *  - AUTH gives a user of 1..255 octets and a password of the length
 *    said; with AUTH required, no MAIL reaches the driver without an
 *    authenticated user; no AUTH reaches it before TLS when AUTH needs
 *    TLS.
 */
#include "smtp-server.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct fz {
	smtp_session *s;
	bool delayed, began, auth_required, needs_tls, tls_up;
	unsigned begins, ends, pend_code;
	int pend;                   /* 0 none, 1 decision owed, 2 AUTH owed */
	bool auth_ok;
} fz;

static void decide(fz *f, unsigned code, const char *enh)
{
	if (f->delayed) {
		f->pend = 1;
		f->pend_code = code;
		return;
	}
	smtp_session_reply(f->s, code, enh, "fuzz");
}

static void cb_mail(void *arg, const smtp_path *p, const smtp_mail_params *mp)
{
	fz *f = arg;
	(void)p;
	(void)mp;
	if (f->auth_required && smtp_session_user(f->s) == NULL)
		abort();
	decide(arg, 250, "2.1.0");
}

static void cb_auth(void *arg, const char *authzid, const char *user,
		    const char *pass, size_t len)
{
	fz *f = arg;
	size_t ul = strlen(user);
	if (ul == 0 || ul > SMTP_AUTH_FIELD_MAX || strlen(authzid) > SMTP_AUTH_FIELD_MAX ||
	    len > SMTP_AUTH_FIELD_MAX || strlen(pass) != len)
		abort();
	if (f->needs_tls && !f->tls_up)
		abort();
	bool ok = len == 6 && memcmp(pass, "secret", 6) == 0;
	if (f->delayed) {
		f->pend = 2;
		f->auth_ok = ok;
		return;
	}
	smtp_session_auth_done(f->s, ok);
}

static void cb_rcpt(void *arg, const smtp_path *p, const smtp_rcpt_params *rp)
{
	(void)rp;
	decide(arg, p->local[0] == 'x' ? 550 : 250, p->local[0] == 'x' ? "5.1.1" : "2.1.5");
}

static void cb_begin(void *arg)
{
	fz *f = arg;
	f->began = true;
	f->begins++;
}

static void cb_chunk(void *arg, const uint8_t *d, size_t n)
{
	fz *f = arg;
	(void)d;
	if (!f->began || n == 0)
		abort();
}

static void cb_end(void *arg)
{
	fz *f = arg;
	if (!f->began)
		abort();
	f->began = false;
	f->ends++;
	if (f->ends > f->begins)
		abort();
	decide(f, 250, "2.0.0");
}

static void cb_abort(void *arg)
{
	fz *f = arg;
	f->began = false;
}

static void cb_tls(void *arg)
{
	(void)arg;
}

static const smtp_callbacks cbs = {
	.mail = cb_mail, .rcpt = cb_rcpt, .data_begin = cb_begin,
	.data_chunk = cb_chunk, .data_end = cb_end, .abort = cb_abort,
	.starttls = cb_tls, .auth = cb_auth,
};

static void drain(smtp_session *s)
{
	const uint8_t *o;
	size_t n;
	while ((n = smtp_session_output(s, &o)) > 0) {
		if (n > SMTP_OUTPUT_MAX || n < 4 || o[n - 1] != '\n' || o[n - 2] != '\r')
			abort();
		for (int i = 0; i < 3; i++)
			if (o[i] < '0' || o[i] > '9')
				abort();
		smtp_session_output_consumed(s, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0], seed = data[1];
	data += 2;
	size -= 2;
	smtp_settings set = {
		.hostname = "mx.fuzz.test",
		.line_max = 512,
		.text_line_max = (mode & 0x40) ? 1000 : 0,
		.max_rcpt = 100,
		.soft_errors = 5,
		.hard_errors = 10,
		.offer = { .size_max = 4096, .chunking = mode & 1, .smtputf8 = mode & 2,
			   .dsn = mode & 4, .eightbit = true },
		.starttls = mode & 8,
		.bare_policy = (mode & 16) ? SMTP_DATA_NORMALISE : SMTP_DATA_REJECT_BARE,
		.auth = mode & 0x80, .auth_required = mode & 0x80,
		.auth_needs_tls = (mode & 0x80) && (seed & 1),
	};
	fz f = { .delayed = mode & 32, .auth_required = mode & 0x80,
		 .needs_tls = set.auth_needs_tls };
	if (smtp_session_new(&set, &cbs, &f, &f.s) != 0)
		abort();
	smtp_session_greet(f.s);
	drain(f.s);
	size_t off = 0;
	unsigned step = seed | 1u;
	while (off < size && !smtp_session_closing(f.s)) {
		size_t piece = 1 + (step % 97);
		step = step * 1103515245u + 12345u;
		if (piece > size - off)
			piece = size - off;
		size_t taken = smtp_session_feed(f.s, data + off, piece);
		if (taken > piece)
			abort();
		off += taken;
		drain(f.s);
		if (f.pend == 2) {
			f.pend = 0;
			smtp_session_auth_done(f.s, f.auth_ok);
			drain(f.s);
		} else if (f.pend) {
			f.pend = 0;
			smtp_session_reply(f.s, f.pend_code, f.pend_code < 400 ? "2.0.0" : "5.0.0",
					   "later");
			drain(f.s);
		} else if (smtp_session_pending(f.s)) {
			/* the only other decision: a STARTTLS to complete */
			f.tls_up = true;
			smtp_session_tls_started(f.s);
			drain(f.s);
		} else if (taken == 0) {
			abort(); /* nothing owed, yet input refused */
		}
	}
	smtp_session_free(&f.s);
	return 0;
}
