/*
 * smtp-server.c — see smtp-server.h.  One bounded input buffer; commands
 * are taken from it a line at a time, and DATA/BDAT content is streamed
 * through it without accumulating.  A decision the driver owes (MAIL,
 * RCPT, end of message, TLS) stops processing until smtp_session_reply or
 * smtp_session_tls_started.  AUTH (RFC 4954): the exchange lines after a
 * 334 are read in ST_AUTH; every command line is wiped from the buffers
 * once handled, so no base64 password stays in memory.
 */
#include "smtp-server.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { ST_GREET_WAIT, ST_CMD, ST_DATA, ST_BDAT, ST_AUTH, ST_CLOSED };
enum { P_NONE, P_MAIL, P_RCPT, P_DATA_END, P_TLS, P_AUTH };
enum { AUTH_PLAIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS }; /* what ST_AUTH reads */

struct smtp_session {
	smtp_settings set;
	char hostname[256];
	smtp_callbacks cb;
	void *arg;
	int state, pending;
	bool helo_done, esmtp, in_tx, data_started, closing, skipping;
	bool bdat_used, bdat_last, bdat_discard, bdat_too_big;
	bool in_process;               /* process() is on the stack */
	bool authed;                   /* AUTH succeeded (until STARTTLS) */
	int auth_step;                 /* AUTH_PLAIN, AUTH_LOGIN_* */
	char user[SMTP_AUTH_FIELD_MAX + 1]; /* LOGIN's user, then the authed one */
	unsigned rcpt_ok, errors;
	uint64_t bdat_left, bdat_size;
	unsigned bdat_reply;            /* reply code to give after a skipped chunk */
	smtp_mail_params mp;
	smtp_data_reader dr;
	uint8_t *in;                   /* grows to SMTP_INPUT_MAX */
	size_t in_len, in_cap;
	uint8_t *out;                  /* grows to SMTP_OUTPUT_MAX */
	size_t out_cap;
	size_t out_off, out_len;
};

/* ------------------------------------------------------------- output */

static void out_put(smtp_session *s, const char *text, size_t n)
{
	if (s->out_off > 0 && s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (n > SMTP_OUTPUT_MAX - s->out_len) {
		/* a client that never reads its replies: give up on it */
		s->closing = true;
		s->state = ST_CLOSED;
		return;
	}
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap;
		while (cap < s->out_len + n)
			cap *= 2;
		if (cap > SMTP_OUTPUT_MAX)
			cap = SMTP_OUTPUT_MAX;
		uint8_t *o = realloc(s->out, cap);
		if (o == NULL)
			abort();
		s->out = o;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, text, n);
	s->out_len += n;
}

static void reply(smtp_session *s, unsigned code, const char *enh,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply(smtp_session *s, unsigned code, const char *enh,
		  const char *fmt, ...)
{
	char text[SMTP_REPLY_TEXT_MAX], line[SMTP_REPLY_TEXT_MAX + 32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	int n = snprintf(line, sizeof(line), "%u %s%s%s\r\n", code,
			 enh != NULL ? enh : "", enh != NULL ? " " : "", text);
	if (n > 0)
		out_put(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	if (code >= 400)
		s->errors++;
}

static void close_with(smtp_session *s, unsigned code, const char *enh,
		       const char *text)
{
	reply(s, code, enh, "%s", text);
	s->closing = true;
	s->state = ST_CLOSED;
	if (s->in_tx || s->data_started) {
		s->in_tx = s->data_started = false;
		if (s->cb.abort != NULL)
			s->cb.abort(s->arg);
	}
}

/* After a reply: too many errors ends the session (S14). */
static void check_errors(smtp_session *s)
{
	if (!s->closing && s->set.hard_errors > 0 && s->errors >= s->set.hard_errors)
		close_with(s, 421, "4.7.0", "Too many errors, closing the connection");
}

/* ------------------------------------------------------- transactions */

static void end_tx(smtp_session *s, bool aborted)
{
	if (aborted && (s->in_tx || s->data_started) && s->cb.abort != NULL)
		s->cb.abort(s->arg);
	s->in_tx = s->data_started = false;
	s->bdat_used = s->bdat_last = s->bdat_too_big = false;
	s->rcpt_ok = 0;
	s->bdat_size = 0;
	memset(&s->mp, 0, sizeof(s->mp));
}

static void data_out(void *arg, const uint8_t *data, size_t len)
{
	smtp_session *s = arg;
	if (s->cb.data_chunk != NULL && len > 0)
		s->cb.data_chunk(s->arg, data, len);
}

/* The content is read: refuse it by the rules, or ask the driver. */
static void content_done(smtp_session *s, bool too_big, bool bare,
			 bool long_line)
{
	s->state = ST_CMD;
	if (too_big) {
		reply(s, 552, "5.3.4", "Message size exceeds the maximum of %llu octets",
		      (unsigned long long)s->set.offer.size_max);
		end_tx(s, true);
	} else if (bare) {
		reply(s, 550, "5.5.2", "Bare <CR> or <LF> in the message: "
		      "lines must end with <CR><LF>");
		end_tx(s, true);
	} else if (long_line) {
		reply(s, 550, "5.5.2", "Message text line longer than %zu octets",
		      s->set.text_line_max);
		end_tx(s, true);
	} else {
		s->pending = P_DATA_END;
		s->cb.data_end(s->arg);
	}
}

/* ----------------------------------------------------------- commands */

static bool arg_is(const char *arg, const char *word)
{
	size_t n = strlen(word);
	return strncasecmp(arg, word, n) == 0;
}

/* Domain or address literal (EHLO/HELO argument): up to 255 octets
 * (RFC 5321 §4.5.3.1.2), the grammar of a path's domain. */
static bool helo_arg_ok(const char *arg, bool utf8)
{
	return smtp_domain_check(arg, strlen(arg), utf8);
}

static void ehlo_reply(smtp_session *s)
{
	char line[SMTP_DOMAIN_MAX + 16];
	const char *kw[12];
	char sizekw[48];
	size_t n = 0;
	kw[n++] = "PIPELINING";
	snprintf(sizekw, sizeof(sizekw), "SIZE %llu",
		 (unsigned long long)s->set.offer.size_max);
	kw[n++] = sizekw;
	if (s->set.offer.eightbit)
		kw[n++] = "8BITMIME";
	if (s->set.offer.smtputf8)
		kw[n++] = "SMTPUTF8";
	kw[n++] = "ENHANCEDSTATUSCODES";
	if (s->set.offer.dsn)
		kw[n++] = "DSN";
	if (s->set.offer.chunking)
		kw[n++] = "CHUNKING";
	if (s->set.starttls && !s->set.tls_active)
		kw[n++] = "STARTTLS";
	if (s->set.auth && (s->set.tls_active || !s->set.auth_needs_tls))
		kw[n++] = "AUTH PLAIN LOGIN";
	int k = snprintf(line, sizeof(line), "250-%s\r\n", s->hostname);
	if (k < 0 || (size_t)k >= sizeof(line)) /* a hostname over 255 octets */
		k = snprintf(line, sizeof(line), "250-%s\r\n", "localhost");
	out_put(s, line, (size_t)k);
	for (size_t i = 0; i < n; i++) {
		k = snprintf(line, sizeof(line), "250%c%s\r\n",
			     i + 1 == n ? ' ' : '-', kw[i]);
		out_put(s, line, (size_t)k);
	}
}

static void cmd_helo(smtp_session *s, const char *arg, bool esmtp)
{
	if (!helo_arg_ok(arg, s->set.offer.smtputf8)) {
		reply(s, 501, "5.5.4", "Syntax: %s domain-or-address-literal",
		      esmtp ? "EHLO" : "HELO");
		return;
	}
	end_tx(s, true);
	s->helo_done = true;
	s->esmtp = esmtp;
	if (s->cb.helo != NULL)
		s->cb.helo(s->arg, arg, esmtp);
	if (esmtp)
		ehlo_reply(s);
	else
		reply(s, 250, NULL, "%s", s->hostname);
}

/* "FROM:" / "TO:" then optional blanks, then the path and parameters. */
static const char *after_keyword(const char *arg, const char *kw)
{
	if (!arg_is(arg, kw))
		return NULL;
	arg += strlen(kw);
	while (*arg == ' ')
		arg++;
	return arg;
}

static void cmd_mail(smtp_session *s, const char *arg)
{
	if (!s->helo_done) {
		reply(s, 503, "5.5.1", "Send HELO or EHLO first");
		return;
	}
	if (s->set.auth_required && !s->authed) { /* B2 */
		reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if (s->in_tx) {
		reply(s, 503, "5.5.1", "Nested MAIL command");
		return;
	}
	const char *p = after_keyword(arg, "FROM:");
	if (p == NULL) {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	smtp_path path;
	size_t used;
	const char *why = "bad address";
	smtp_addr_err ae = smtp_path_parse(p, strlen(p), true, true, &path, &used, &why);
	if (ae != SMTP_ADDR_OK) {
		reply(s, 501, "5.1.7", "Bad sender address: %s", why);
		return;
	}
	smtp_params ps;
	smtp_mail_params mp;
	memset(&mp, 0, sizeof(mp));
	const char *rest = p + used;
	if (*rest != '\0' && *rest != ' ') {
		reply(s, 501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
		return;
	}
	smtp_param_err pe = smtp_params_parse(rest, strlen(rest), &ps, &why);
	if (pe == SMTP_PARAM_OK && ps.n > 0 && !s->esmtp)
		pe = SMTP_PARAM_UNKNOWN, why = "parameters need EHLO";
	if (pe == SMTP_PARAM_OK)
		pe = smtp_params_check_mail(&ps, &s->set.offer, &mp, &why);
	if (pe != SMTP_PARAM_OK) {
		if (pe == SMTP_PARAM_TOO_BIG)
			reply(s, 552, "5.3.4", "%s", why);
		else if (pe == SMTP_PARAM_UNKNOWN)
			reply(s, 555, "5.5.4", "%s", why);
		else
			reply(s, 501, "5.5.4", "%s", why);
		return;
	}
	if (path.utf8 && !mp.smtputf8) {
		reply(s, 553, "5.6.7", "Non-ASCII address without SMTPUTF8");
		return;
	}
	s->mp = mp;
	s->pending = P_MAIL;
	s->cb.mail(s->arg, &path, &mp);
}

static void cmd_rcpt(smtp_session *s, const char *arg)
{
	if (!s->in_tx) {
		reply(s, 503, "5.5.1", "Need MAIL before RCPT");
		return;
	}
	const char *p = after_keyword(arg, "TO:");
	if (p == NULL) {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (s->rcpt_ok >= s->set.max_rcpt) {
		reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	smtp_path path;
	size_t used;
	const char *why = "bad address";
	if (smtp_path_parse(p, strlen(p), false, s->mp.smtputf8, &path, &used,
			    &why) != SMTP_ADDR_OK) {
		reply(s, 501, "5.1.3", "Bad recipient address: %s", why);
		return;
	}
	const char *rest = p + used;
	smtp_params ps;
	smtp_rcpt_params rp;
	memset(&rp, 0, sizeof(rp));
	if (*rest != '\0' && *rest != ' ') {
		reply(s, 501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]");
		return;
	}
	smtp_param_err pe = smtp_params_parse(rest, strlen(rest), &ps, &why);
	if (pe == SMTP_PARAM_OK && ps.n > 0 && !s->esmtp)
		pe = SMTP_PARAM_UNKNOWN, why = "parameters need EHLO";
	if (pe == SMTP_PARAM_OK)
		pe = smtp_params_check_rcpt(&ps, &s->set.offer, &rp, &why);
	if (pe != SMTP_PARAM_OK) {
		reply(s, pe == SMTP_PARAM_UNKNOWN ? 555 : 501, "5.5.4", "%s", why);
		return;
	}
	s->pending = P_RCPT;
	s->cb.rcpt(s->arg, &path, &rp);
}

static void cmd_data(smtp_session *s, const char *arg)
{
	if (*arg != '\0') {
		reply(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (!s->in_tx) {
		reply(s, 503, "5.5.1", "Need MAIL before DATA");
		return;
	}
	if (s->rcpt_ok == 0) {
		reply(s, 554, "5.5.1", "No valid recipients");
		return;
	}
	if (s->bdat_used || s->mp.body == SMTP_BODY_BINARYMIME) {
		reply(s, 503, "5.5.1", "Use BDAT for this message");
		return;
	}
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	s->data_started = true;
	if (s->cb.data_begin != NULL)
		s->cb.data_begin(s->arg);
	smtp_data_init(&s->dr, s->set.bare_policy, s->set.offer.size_max,
		       s->set.text_line_max, data_out, s);
	s->state = ST_DATA;
}

static void cmd_bdat(smtp_session *s, const char *arg)
{
	if (!s->set.offer.chunking || !s->esmtp) { /* not offered after HELO */
		reply(s, 502, "5.5.1", "BDAT is not offered");
		return;
	}
	/* BDAT SP chunk-size [SP LAST] */
	char num[24];
	size_t i = 0;
	while (arg[i] >= '0' && arg[i] <= '9' && i < sizeof(num) - 1) {
		num[i] = arg[i];
		i++;
	}
	num[i] = '\0';
	const char *rest = arg + i;
	bool last = false;
	if (i == 0 || i >= 20 || (arg[i] >= '0' && arg[i] <= '9')) {
		reply(s, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
		return;
	}
	if (*rest == ' ' && strcasecmp(rest + 1, "LAST") == 0)
		last = true;
	else if (*rest != '\0') {
		reply(s, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
		return;
	}
	uint64_t n = strtoull(num, NULL, 10);
	s->bdat_left = n;
	s->bdat_last = last;
	s->state = ST_BDAT;
	/* A chunk after a refusal is still read (RFC 3030 §2), then refused. */
	if (!s->in_tx || s->rcpt_ok == 0) {
		s->bdat_discard = true;
		s->bdat_reply = !s->in_tx ? 503 : 554;
		return;
	}
	s->bdat_discard = false;
	if (!s->data_started) {
		s->data_started = true;
		s->bdat_used = true;
		if (s->cb.data_begin != NULL)
			s->cb.data_begin(s->arg);
	}
}

static void bdat_chunk_done(smtp_session *s)
{
	s->state = ST_CMD;
	if (s->bdat_discard) {
		if (s->bdat_reply == 503)
			reply(s, 503, "5.5.1", "Need MAIL and RCPT before BDAT");
		else
			reply(s, 554, "5.5.1", "No valid recipients");
		return;
	}
	if (!s->bdat_last) {
		reply(s, 250, "2.0.0", "%llu octets received",
		      (unsigned long long)s->bdat_size);
		return;
	}
	content_done(s, s->bdat_too_big, false, false);
}

static void forget_auth(smtp_session *s);

static void cmd_starttls(smtp_session *s, const char *arg)
{
	if (*arg != '\0') {
		reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (s->set.tls_active) {
		reply(s, 503, "5.5.1", "TLS is already active");
		return;
	}
	if (!s->set.starttls) {
		reply(s, 454, "4.7.0", "TLS not available");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/* T1: nothing sent before the handshake may be executed after it. */
	s->in_len = 0;
	end_tx(s, true);
	s->helo_done = s->esmtp = false;
	forget_auth(s); /* T2 */
	s->pending = P_TLS;
	s->cb.starttls(s->arg);
}

/* ---------------------------------------------------------------- AUTH */

static void forget_auth(smtp_session *s)
{
	s->authed = false;
	sodium_memzero(s->user, sizeof(s->user));
}

/* Base64 (RFC 4648, padded) of an exchange line into out (room for
 * cap - 1 octets and a NUL).  -1: not base64, or too long. */
static int b64_decode(const char *in, uint8_t *out, size_t cap, size_t *len_r)
{
	size_t n = strlen(in), bl = 0;
	const char *end = NULL;
	if (n == 0 || n % 4 != 0 ||
	    sodium_base642bin(out, cap - 1, in, n, NULL, &bl, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + n)
		return -1;
	out[bl] = '\0';
	*len_r = bl;
	return 0;
}

/* Ask the driver; the password is wiped by the caller after this. */
static void auth_ask(smtp_session *s, const char *authzid, const char *user,
		     const char *pass, size_t plen)
{
	s->state = ST_CMD;
	if (user != s->user)
		snprintf(s->user, sizeof(s->user), "%s", user);
	s->pending = P_AUTH;
	s->cb.auth(s->arg, authzid, s->user, pass, plen);
}

/* A field of a response: 1..SMTP_AUTH_FIELD_MAX octets (authzid may be
 * empty) with no NUL. */
static bool auth_field_ok(size_t len, bool may_be_empty)
{
	return (len > 0 || may_be_empty) && len <= SMTP_AUTH_FIELD_MAX;
}

/* A response line: the initial response of AUTH, or a line in ST_AUTH. */
static void auth_response(smtp_session *s, const char *line)
{
	uint8_t dec[SMTP_AUTH_FIELD_MAX * 3 + 8];
	size_t len = 0;
	dec[0] = '\0';
	s->state = ST_CMD; /* whatever happens, unless asked again below */
	if (strcmp(line, "*") == 0) {
		sodium_memzero(s->user, sizeof(s->user));
		reply(s, 501, "5.0.0", "Authentication cancelled");
		return;
	}
	/* "=": an empty initial response (RFC 4954 §4) */
	if (strcmp(line, "=") != 0 &&
	    b64_decode(line, dec, sizeof(dec), &len) != 0) {
		sodium_memzero(s->user, sizeof(s->user));
		reply(s, 501, "5.5.2", "Cannot decode the response");
		return;
	}
	if (s->auth_step == AUTH_LOGIN_USER) {
		if (!auth_field_ok(len, false) || memchr(dec, '\0', len) != NULL) {
			reply(s, 501, "5.5.2", "Malformed user name");
		} else {
			memcpy(s->user, dec, len);
			s->user[len] = '\0';
			s->auth_step = AUTH_LOGIN_PASS;
			s->state = ST_AUTH;
			reply(s, 334, NULL, "UGFzc3dvcmQ6"); /* "Password:" */
		}
	} else if (s->auth_step == AUTH_LOGIN_PASS) {
		if (!auth_field_ok(len, true) || memchr(dec, '\0', len) != NULL) {
			sodium_memzero(s->user, sizeof(s->user));
			reply(s, 501, "5.5.2", "Malformed password");
		} else {
			auth_ask(s, "", s->user, (const char *)dec, len);
		}
	} else {
		/* PLAIN (RFC 4616): authzid NUL authcid NUL passwd */
		const uint8_t *z1 = memchr(dec, '\0', len);
		const uint8_t *z2 = z1 != NULL ? memchr(z1 + 1, '\0', len - (size_t)(z1 + 1 - dec)) : NULL;
		if (z2 == NULL || memchr(z2 + 1, '\0', len - (size_t)(z2 + 1 - dec)) != NULL ||
		    !auth_field_ok((size_t)(z1 - dec), true) ||
		    !auth_field_ok((size_t)(z2 - z1 - 1), false) ||
		    !auth_field_ok(len - (size_t)(z2 + 1 - dec), true)) {
			reply(s, 501, "5.5.2", "Malformed PLAIN response");
		} else {
			auth_ask(s, (const char *)dec, (const char *)z1 + 1,
				 (const char *)z2 + 1, len - (size_t)(z2 + 1 - dec));
		}
	}
	sodium_memzero(dec, sizeof(dec));
}

static void cmd_auth(smtp_session *s, const char *arg)
{
	if (!s->esmtp) {
		reply(s, 503, "5.5.1", "Send EHLO first");
		return;
	}
	if (s->authed) {
		reply(s, 503, "5.5.1", "Already authenticated");
		return;
	}
	if (s->in_tx) {
		reply(s, 503, "5.5.1", "AUTH is not allowed in a mail transaction");
		return;
	}
	if (s->set.auth_needs_tls && !s->set.tls_active) { /* B2 */
		reply(s, 538, "5.7.11", "Encryption required for requested "
		      "authentication mechanism");
		return;
	}
	char mech[16];
	size_t i = 0;
	while (arg[i] != '\0' && arg[i] != ' ' && i < sizeof(mech) - 1) {
		mech[i] = arg[i];
		i++;
	}
	mech[i] = '\0';
	const char *ir = arg[i] == ' ' ? arg + i + 1 : NULL;
	if ((arg[i] != '\0' && arg[i] != ' ') || i == 0 ||
	    (ir != NULL && (*ir == '\0' || strchr(ir, ' ') != NULL))) {
		reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (strcasecmp(mech, "PLAIN") == 0)
		s->auth_step = AUTH_PLAIN;
	else if (strcasecmp(mech, "LOGIN") == 0)
		s->auth_step = AUTH_LOGIN_USER;
	else {
		reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	if (ir != NULL) {
		auth_response(s, ir);
		return;
	}
	s->state = ST_AUTH;
	if (s->auth_step == AUTH_PLAIN)
		reply(s, 334, NULL, "%s", "");
	else
		reply(s, 334, NULL, "VXNlcm5hbWU6"); /* "Username:" */
}

/* Commands that must end a pipelined group (RFC 2920 §3.1, and STARTTLS
 * per RFC 3207): nothing may follow them before their reply. */
static bool must_be_last(const char *verb)
{
	static const char *const last[] = { "EHLO", "HELO", "DATA", "VRFY",
					    "EXPN", "QUIT", "NOOP", "STARTTLS" };
	for (size_t i = 0; i < sizeof(last) / sizeof(last[0]); i++)
		if (strcasecmp(verb, last[i]) == 0)
			return true;
	return false;
}

static void command(smtp_session *s, char *line, bool more_buffered)
{
	char *sp = strchr(line, ' ');
	const char *arg = "";
	if (sp != NULL) {
		*sp = '\0';
		arg = sp + 1;
	}
	const char *verb = line;
	/* S5: commands sent ahead without PIPELINING, or after one that must
	 * come last. */
	if (more_buffered && (!s->esmtp || must_be_last(verb))) {
		close_with(s, 554, "5.5.0", "Improper command pipelining");
		return;
	}
	if (strcasecmp(verb, "EHLO") == 0)
		cmd_helo(s, arg, true);
	else if (strcasecmp(verb, "HELO") == 0)
		cmd_helo(s, arg, false);
	else if (strcasecmp(verb, "MAIL") == 0)
		cmd_mail(s, arg);
	else if (strcasecmp(verb, "RCPT") == 0)
		cmd_rcpt(s, arg);
	else if (strcasecmp(verb, "DATA") == 0)
		cmd_data(s, arg);
	else if (strcasecmp(verb, "BDAT") == 0)
		cmd_bdat(s, arg);
	else if (strcasecmp(verb, "RSET") == 0) {
		end_tx(s, true);
		reply(s, 250, "2.0.0", "Ok");
	} else if (strcasecmp(verb, "NOOP") == 0)
		reply(s, 250, "2.0.0", "Ok");
	else if (strcasecmp(verb, "HELP") == 0)
		reply(s, 214, "2.0.0", "See RFC 5321");
	else if (strcasecmp(verb, "VRFY") == 0)
		reply(s, 252, "2.1.5", "Cannot verify, but will accept the message");
	else if (strcasecmp(verb, "EXPN") == 0)
		reply(s, 502, "5.5.1", "EXPN is not available");
	else if (strcasecmp(verb, "QUIT") == 0) {
		reply(s, 221, "2.0.0", "Bye");
		end_tx(s, true);
		s->closing = true;
		s->state = ST_CLOSED;
	} else if (strcasecmp(verb, "STARTTLS") == 0)
		cmd_starttls(s, arg);
	else if (s->set.auth && strcasecmp(verb, "AUTH") == 0)
		cmd_auth(s, arg);
	else
		reply(s, 500, "5.5.2", "Command unrecognized");
}

/* ------------------------------------------------------------ the loop */

static void consume(smtp_session *s, size_t n)
{
	memmove(s->in, s->in + n, s->in_len - n);
	s->in_len -= n;
}

static void process_loop(smtp_session *s);

static void process(smtp_session *s)
{
	/* A decision given synchronously from a callback (smtp_session_reply
	 * inside cmd_mail, ...) lands here again: the loop below goes on with
	 * the next pipelined command, so no recursion (a long pipelined group
	 * would otherwise nest one frame set per command). */
	if (s->in_process)
		return;
	s->in_process = true;
	process_loop(s);
	s->in_process = false;
}

/* S1, and RFC 4954 §4 for a line of the AUTH exchange (which ends). */
static void line_too_long(smtp_session *s)
{
	if (s->state == ST_AUTH) {
		s->state = ST_CMD;
		sodium_memzero(s->user, sizeof(s->user));
		reply(s, 500, "5.5.6", "Authentication exchange line is too long");
	} else {
		reply(s, 500, "5.5.2", "Line too long");
	}
}

static void process_loop(smtp_session *s)
{
	while (!s->closing && s->pending == P_NONE && s->state != ST_CLOSED) {
		if (s->state == ST_GREET_WAIT) {
			if (s->in_len > 0)
				close_with(s, 554, "5.5.0", "Talking before the greeting");
			return;
		}
		if (s->state == ST_DATA) {
			bool done = false;
			size_t n = smtp_data_feed(&s->dr, s->in, s->in_len, &done);
			consume(s, n);
			if (!done)
				return;
			content_done(s, s->dr.too_big,
				     s->dr.bare_seen && s->set.bare_policy == SMTP_DATA_REJECT_BARE,
				     s->dr.line_too_long && s->set.text_line_max > 0);
			check_errors(s);
			continue;
		}
		if (s->state == ST_BDAT) {
			size_t n = s->in_len < s->bdat_left ? s->in_len : (size_t)s->bdat_left;
			if (!s->bdat_discard) {
				uint64_t room = s->set.offer.size_max > s->bdat_size
						? s->set.offer.size_max - s->bdat_size : 0;
				if (n > room)
					s->bdat_too_big = true;
				if (!s->bdat_too_big && n > 0 && s->cb.data_chunk != NULL)
					s->cb.data_chunk(s->arg, s->in, n);
				s->bdat_size += n;
			}
			consume(s, n);
			s->bdat_left -= n;
			if (s->bdat_left > 0)
				return;
			bdat_chunk_done(s);
			check_errors(s);
			continue;
		}
		/* A command line. */
		if (s->skipping) {
			uint8_t *lf = memchr(s->in, '\n', s->in_len);
			size_t n = lf != NULL ? (size_t)(lf - s->in) + 1 : s->in_len;
			consume(s, n);
			sodium_memzero(s->in + s->in_len, n); /* an over-long AUTH line */
			if (lf == NULL)
				return;
			s->skipping = false;
			continue;
		}
		uint8_t *lf = memchr(s->in, '\n', s->in_len);
		size_t line_max = s->set.line_max;
		if (lf == NULL) {
			if (s->in_len >= line_max) { /* S1 */
				line_too_long(s);
				sodium_memzero(s->in, s->in_len);
				s->in_len = 0;
				s->skipping = true;
				check_errors(s);
			}
			return;
		}
		size_t len = (size_t)(lf - s->in) + 1;
		if (len > line_max) {
			consume(s, len);
			sodium_memzero(s->in + s->in_len, len);
			line_too_long(s);
			check_errors(s);
			continue;
		}
		/* S4: CRLF only; a CR elsewhere in the line, or a bare LF. */
		bool bare = len < 2 || s->in[len - 2] != '\r' ||
			    memchr(s->in, '\r', len - 2) != NULL ||
			    memchr(s->in, '\0', len) != NULL;
		char line[4096];
		size_t cl = len - 2 < sizeof(line) - 1 ? len - 2 : sizeof(line) - 1;
		if (!bare)
			memcpy(line, s->in, cl);
		line[bare ? 0 : cl] = '\0';
		consume(s, len);
		sodium_memzero(s->in + s->in_len, len); /* AUTH's secrets */
		if (bare) {
			if (s->state == ST_AUTH) {
				s->state = ST_CMD;
				sodium_memzero(s->user, sizeof(s->user));
			}
			reply(s, 501, "5.5.2", "Lines must end with <CR><LF> and contain "
			      "no <CR> or NUL");
			check_errors(s);
			continue;
		}
		if (s->state == ST_AUTH)
			auth_response(s, line);
		else
			command(s, line, s->in_len > 0 && s->state == ST_CMD);
		sodium_memzero(line, cl);
		check_errors(s);
	}
}

/* ------------------------------------------------------------------ API */

int smtp_session_new(const smtp_settings *set, const smtp_callbacks *cb,
		     void *arg, smtp_session **s_r)
{
	if (set->line_max < 512 || set->line_max > 4096 || set->max_rcpt < 1 ||
	    cb->mail == NULL || cb->rcpt == NULL || cb->data_end == NULL ||
	    cb->starttls == NULL || (set->auth && cb->auth == NULL))
		return -1;
	smtp_session *s = calloc(1, sizeof(*s));
	/* buffers start small and grow to their maxima: an idle session
	 * costs a few KB, not 320 */
	if (s == NULL || (s->out = malloc(SMTP_BUF_START)) == NULL ||
	    (s->in = malloc(SMTP_BUF_START)) == NULL) {
		if (s != NULL)
			free(s->out);
		free(s);
		return -1;
	}
	s->in_cap = s->out_cap = SMTP_BUF_START;
	s->set = *set;
	snprintf(s->hostname, sizeof(s->hostname), "%s",
		 set->hostname != NULL ? set->hostname : "localhost");
	s->set.hostname = s->hostname;
	s->cb = *cb;
	s->arg = arg;
	s->state = ST_GREET_WAIT;
	*s_r = s;
	return 0;
}

void smtp_session_free(smtp_session **sp)
{
	smtp_session *s = *sp;
	if (s == NULL)
		return;
	sodium_memzero(s->in, s->in_cap);
	forget_auth(s);
	free(s->out);
	free(s->in);
	free(s);
	*sp = NULL;
}

void smtp_session_greet(smtp_session *s)
{
	if (s->state != ST_GREET_WAIT)
		return;
	if (s->in_len > 0) { /* early talker */
		process(s);
		return;
	}
	reply(s, 220, NULL, "%s ESMTP AfterSMTP", s->hostname);
	s->state = ST_CMD;
}

size_t smtp_session_feed(smtp_session *s, const uint8_t *data, size_t len)
{
	if (s->closing || s->state == ST_CLOSED)
		return len; /* discarded: the session is over */
	size_t taken = 0;
	while (taken < len && !s->closing) {
		size_t want = len - taken;
		if (want > s->in_cap - s->in_len && s->in_cap < SMTP_INPUT_MAX) {
			size_t cap = s->in_cap;
			while (cap - s->in_len < want && cap < SMTP_INPUT_MAX)
				cap *= 2;
			if (cap > SMTP_INPUT_MAX)
				cap = SMTP_INPUT_MAX;
			uint8_t *b = realloc(s->in, cap);
			if (b == NULL)
				abort();
			s->in = b;
			s->in_cap = cap;
		}
		size_t room = s->in_cap - s->in_len;
		size_t n = want < room ? want : room;
		if (n == 0)
			break; /* full while a decision is pending */
		memcpy(s->in + s->in_len, data + taken, n);
		s->in_len += n;
		taken += n;
		if (s->state != ST_GREET_WAIT)
			process(s);
		else
			break;
		if (s->pending == P_TLS) {
			/* T1: whatever came with or after STARTTLS is never
			 * run, not even what is left of this read */
			s->in_len = 0;
			return len;
		}
	}
	return s->closing ? len : taken;
}

void smtp_session_reply(smtp_session *s, unsigned code, const char *enh,
			const char *text)
{
	int p = s->pending;
	if (p == P_NONE || p == P_TLS || p == P_AUTH)
		return;
	s->pending = P_NONE;
	reply(s, code, enh, "%s", text != NULL ? text : "");
	if (p == P_MAIL)
		s->in_tx = code < 400;
	else if (p == P_RCPT && code < 400)
		s->rcpt_ok++;
	else if (p == P_DATA_END)
		end_tx(s, code >= 400);
	check_errors(s);
	process(s);
}

void smtp_session_auth_done(smtp_session *s, bool ok)
{
	if (s->pending != P_AUTH)
		return;
	s->pending = P_NONE;
	if (ok) {
		s->authed = true;
		reply(s, 235, "2.7.0", "Authentication successful");
	} else {
		forget_auth(s);
		reply(s, 535, "5.7.8", "Authentication credentials invalid");
	}
	check_errors(s);
	process(s);
}

const char *smtp_session_user(const smtp_session *s)
{
	return s->authed ? s->user : NULL;
}

void smtp_session_tls_started(smtp_session *s)
{
	if (s->pending != P_TLS)
		return;
	s->pending = P_NONE;
	s->set.tls_active = true;
	s->helo_done = s->esmtp = false;
	s->in_len = 0;        /* nothing from before the handshake */
	s->skipping = false;
	process(s);
}

void smtp_session_timeout(smtp_session *s)
{
	if (!s->closing)
		close_with(s, 421, "4.4.2", "Timeout, closing the connection");
}

size_t smtp_session_output(smtp_session *s, const uint8_t **out_r)
{
	*out_r = s->out + s->out_off;
	return s->out_len - s->out_off;
}

void smtp_session_output_consumed(smtp_session *s, size_t n)
{
	s->out_off += n;
	if (s->out_off >= s->out_len)
		s->out_off = s->out_len = 0;
}

bool smtp_session_closing(const smtp_session *s)
{
	return s->closing;
}

bool smtp_session_pending(const smtp_session *s)
{
	return s->pending != P_NONE;
}

unsigned smtp_session_delay_ms(const smtp_session *s)
{
	if (s->set.soft_errors == 0 || s->errors < s->set.soft_errors)
		return 0;
	return s->set.error_delay_ms; /* Postfix smtpd_error_sleep_time */
}

unsigned smtp_session_errors(const smtp_session *s)
{
	return s->errors;
}
