/*
 * smtp-client.c — the outbound SMTP transaction (smtp-client.h).
 *
 * One fixed output buffer (SMTPC_OUT_MAX) holds the commands and, during
 * DATA, the next piece of the dot-stuffed body, produced only when the
 * driver asks for output (so a 50 MB message never sits in memory twice).
 * Octets are counted as they are produced and as the driver hands them
 * over; each command remembers the count at its end, so a reply can be
 * checked against "has its command gone out yet?" (E2's premature
 * replies, and a server that answers ahead of our commands).
 *
 * The transaction is a sequence MAIL, RCPT 1..n, DATA: seq_sent commands
 * queued, seq_done replies read.  With PIPELINING the sequence is queued
 * as far as the buffer allows, else one at a time; replies are matched
 * strictly in order.
 */
#include "smtp-client.h"

#include "dotstuff.h"
#include "smtp-addr.h"
#include "smtp-reply.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum cstate {
	CS_GREETING,   /* waiting for the 220 */
	CS_EHLO,       /* EHLO sent */
	CS_HELO,       /* HELO sent (EHLO refused) */
	CS_STARTTLS,   /* STARTTLS sent */
	CS_TLS_WAIT,   /* the driver does the handshake */
	CS_AUTH,       /* an AUTH step sent */
	CS_TX,         /* MAIL / RCPT / DATA */
	CS_BODY,       /* writing the body and the final dot */
	CS_DATA_END,   /* waiting for the reply to the dot */
	CS_QUIT,       /* QUIT queued: done once handed over */
	CS_DONE,
};

enum { AUTH_PLAIN, AUTH_LOGIN, AUTH_LOGIN_USER, AUTH_LOGIN_PASS };

/* The longest command line we write, CRLF included: an RCPT with a
 * 254-octet address, every NOTIFY keyword and a 500-octet ORCPT is about
 * 800; AUTH PLAIN with 255-octet user and password, 700. */
#define CMD_MAX 1024u

struct smtp_client {
	smtpc_settings set;
	smtpc_message msg;
	unsigned t_greeting, t_command, t_data_init, t_data_block, t_data_end;
	int state, auth_step;
	bool tls_now, tls_used, tls_tried;
	bool failed, failed_perm;
	smtpc_caps caps;
	char caps_text[256];
	char greeting[SMTPC_TEXT_MAX];
	char last_reply[SMTPC_TEXT_MAX];
	char reason[SMTPC_TEXT_MAX];
	smtp_reply_parser rp;
	/* output: out[out_off..out_len) not yet handed over */
	uint8_t *out;
	size_t out_off, out_len;
	uint64_t produced, consumed;  /* octets ever queued / handed over */
	uint64_t cmd_end;             /* end of the command a reply answers */
	uint64_t secret_end;          /* AUTH data in the buffer up to here */
	/* the transaction */
	uint64_t msg_size;            /* RFC 1870 size */
	size_t n_seq, seq_sent, seq_done, n_accepted;
	bool seq_stop, mail_ok;
	uint64_t *seq_end;            /* per command of the sequence */
	bool *accepted;
	smtpc_result *res;
	/* the body */
	dotstuff ds;
	size_t body_off;
};

/* ------------------------------------------------------------- texts */

/* Append src[0..n) to dst (size cap, NUL kept) at *pos: printable ASCII;
 * a tab becomes a space, any other octet '?'. */
static void put_clean(char *dst, size_t cap, size_t *pos, const char *src,
		      size_t n)
{
	for (size_t i = 0; i < n && *pos + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (ch == '\t')
			ch = ' ';
		else if (ch < 0x20 || ch > 0x7e)
			ch = '?';
		dst[(*pos)++] = (char)ch;
	}
	dst[*pos] = '\0';
}

/* The reply's text, lines joined by a space, each line's leading copy of
 * the enhanced code left out. */
static void reply_text(const smtp_reply *r, char *dst, size_t cap)
{
	size_t pos = 0, elen = strlen(r->enh);
	dst[0] = '\0';
	for (size_t i = 0; i < r->n_lines; i++) {
		size_t n;
		const char *t = smtp_reply_line_text(r, i, &n);
		if (elen > 0 && n >= elen && memcmp(t, r->enh, elen) == 0 &&
		    (n == elen || t[elen] == ' ')) {
			t += elen;
			n -= elen;
		}
		while (n > 0 && *t == ' ') {
			t++;
			n--;
		}
		if (n == 0)
			continue;
		if (pos > 0)
			put_clean(dst, cap, &pos, " ", 1);
		put_clean(dst, cap, &pos, t, n);
	}
}

static void cat(char *dst, size_t cap, size_t *pos, const char *s)
{
	put_clean(dst, cap, pos, s, strlen(s));
}

static void set_last_reply(smtp_client *c, const smtp_reply *r)
{
	char text[SMTPC_TEXT_MAX], code[16];
	size_t pos = 0;
	snprintf(code, sizeof(code), "%u", r->code);
	reply_text(r, text, sizeof(text));
	cat(c->last_reply, sizeof(c->last_reply), &pos, code);
	if (r->enh[0] != '\0') {
		cat(c->last_reply, sizeof(c->last_reply), &pos, " ");
		cat(c->last_reply, sizeof(c->last_reply), &pos, r->enh);
	}
	if (text[0] != '\0') {
		cat(c->last_reply, sizeof(c->last_reply), &pos, " ");
		cat(c->last_reply, sizeof(c->last_reply), &pos, text);
	}
}

/* ------------------------------------------------------------- output */

static size_t out_room(smtp_client *c)
{
	if (c->out_off > 0 && SMTPC_OUT_MAX - c->out_len < CMD_MAX) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	return SMTPC_OUT_MAX - c->out_len;
}

/* Queue one command line (CRLF added); it answers the next reply. */
static void put_line(smtp_client *c, const char *s, size_t n, bool secret)
{
	if (n + 2 > CMD_MAX || out_room(c) < n + 2)
		abort(); /* a bug: commands are bounded, the buffer is checked */
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\r';
	c->out[c->out_len + n + 1] = '\n';
	c->out_len += n + 2;
	c->produced += n + 2;
	c->cmd_end = c->produced;
	if (secret)
		c->secret_end = c->produced;
}

static void cmd(smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cmd(smtp_client *c, const char *fmt, ...)
{
	char line[CMD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		abort(); /* a bug: every part is checked at creation */
	put_line(c, line, (size_t)n, false);
}

/* ----------------------------------------------------------- results */

/* enh has 12 octets; given and dflt are at most "5.999.999". */
static void synth_enh(char *enh, unsigned code, const char *given,
		      const char *dflt)
{
	const char *e = given != NULL && given[0] != '\0' ? given : dflt;
	if (e != NULL) {
		size_t n = strnlen(e, 11);
		memcpy(enh, e, n);
		enh[n] = '\0';
	} else {
		enh[0] = (char)('0' + code / 100 % 10);
		memcpy(enh + 1, ".0.0", 5);
	}
}

/* Recipient i's final result from a reply.  downgrade: a 5xx counts as
 * 4xx (the greeting, a refused STARTTLS under MUST). */
static void result_reply(smtp_client *c, size_t i, const smtp_reply *r,
			 smtpc_phase phase, bool downgrade, const char *dflt_enh)
{
	smtpc_result *res = &c->res[i];
	res->code = r->code;
	synth_enh(res->enh, r->code, r->enh, dflt_enh);
	if (downgrade && res->code >= 500) {
		res->code -= 100;
		res->enh[0] = '4';
	}
	reply_text(r, res->text, sizeof(res->text));
	res->phase = phase;
	res->local = false;
}

static void result_local(smtp_client *c, size_t i, unsigned code,
			 const char *enh, smtpc_phase phase, const char *text)
{
	smtpc_result *res = &c->res[i];
	size_t pos = 0;
	res->code = code;
	synth_enh(res->enh, code, enh, NULL);
	put_clean(res->text, sizeof(res->text), &pos, text, strlen(text));
	res->phase = phase;
	res->local = true;
}

/* Every recipient without a final result gets this reply. */
static void all_reply(smtp_client *c, const smtp_reply *r, smtpc_phase phase,
		      bool downgrade, const char *dflt_enh)
{
	for (size_t i = 0; i < c->msg.n_rcpts; i++)
		if (c->res[i].phase == SMTPC_PHASE_NONE)
			result_reply(c, i, r, phase, downgrade, dflt_enh);
}

static void all_local(smtp_client *c, unsigned code, const char *enh,
		      smtpc_phase phase, const char *text)
{
	for (size_t i = 0; i < c->msg.n_rcpts; i++)
		if (c->res[i].phase == SMTPC_PHASE_NONE)
			result_local(c, i, code, enh, phase, text);
}

/* ------------------------------------------------------ the session */

/* The end: QUIT when the stream is still in step, else just close. */
static void end_session(smtp_client *c, bool quit)
{
	/* every recipient has a result by now; this only guards a bug */
	all_local(c, 451, "4.3.0", SMTPC_PHASE_SESSION,
		  "internal error: no result");
	if (quit && c->state != CS_QUIT && c->state != CS_DONE) {
		cmd(c, "QUIT");
		c->state = CS_QUIT;
	} else if (c->state != CS_QUIT) {
		c->state = CS_DONE;
	}
}

static void fail_local(smtp_client *c, unsigned code, const char *enh,
		       bool quit, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void fail_local(smtp_client *c, unsigned code, const char *enh,
		       bool quit, const char *fmt, ...)
{
	char text[SMTPC_TEXT_MAX];
	size_t pos = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	put_clean(c->reason, sizeof(c->reason), &pos, text, strlen(text));
	c->failed = true;
	c->failed_perm = code >= 500;
	all_local(c, code, enh, SMTPC_PHASE_SESSION, c->reason);
	end_session(c, quit);
}

/* A session failure on the peer's reply r. */
static void fail_reply(smtp_client *c, const smtp_reply *r, bool downgrade,
		       bool quit, const char *what, const char *dflt_enh)
{
	size_t pos = 0;
	cat(c->reason, sizeof(c->reason), &pos, what);
	cat(c->reason, sizeof(c->reason), &pos, ": ");
	cat(c->reason, sizeof(c->reason), &pos, c->last_reply);
	c->failed = true;
	c->failed_perm = r->code >= 500 && !downgrade;
	all_reply(c, r, SMTPC_PHASE_SESSION, downgrade, dflt_enh);
	end_session(c, quit);
}

static void protocol_error(smtp_client *c, const char *what)
{
	fail_local(c, 451, "4.5.0", false, "protocol error: %s: %s", what,
		   c->last_reply);
}

static void send_ehlo(smtp_client *c)
{
	cmd(c, "EHLO %s", c->set.helo);
	c->state = CS_EHLO;
}

static bool word_is(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);
	return n == k && strncasecmp(s, w, k) == 0;
}

/* The capabilities as one line for logs. */
static void caps_word(char *dst, size_t cap, size_t *pos, bool on,
		      const char *w)
{
	if (!on)
		return;
	if (*pos > 0)
		put_clean(dst, cap, pos, " ", 1);
	put_clean(dst, cap, pos, w, strlen(w));
}

static void caps_describe(smtp_client *c)
{
	const smtpc_caps *k = &c->caps;
	char size[40];
	size_t pos = 0, cap = sizeof(c->caps_text);
	char *d = c->caps_text;
	d[0] = '\0';
	if (k->size_max > 0)
		snprintf(size, sizeof(size), "SIZE=%llu",
			 (unsigned long long)k->size_max);
	else
		snprintf(size, sizeof(size), "SIZE");
	caps_word(d, cap, &pos, k->pipelining, "PIPELINING");
	caps_word(d, cap, &pos, k->size, size);
	caps_word(d, cap, &pos, k->eightbitmime, "8BITMIME");
	caps_word(d, cap, &pos, k->smtputf8, "SMTPUTF8");
	caps_word(d, cap, &pos, k->dsn, "DSN");
	caps_word(d, cap, &pos, k->starttls, "STARTTLS");
	caps_word(d, cap, &pos, k->enhancedstatuscodes, "ENHANCEDSTATUSCODES");
	caps_word(d, cap, &pos, k->chunking, "CHUNKING");
	caps_word(d, cap, &pos, k->auth_plain || k->auth_login || k->auth_other,
		  "AUTH");
	caps_word(d, cap, &pos, k->auth_plain, "PLAIN");
	caps_word(d, cap, &pos, k->auth_login, "LOGIN");
	caps_word(d, cap, &pos, k->auth_other, "(other)");
}

/* The EHLO keywords (lines after the first). */
static void parse_caps(smtp_client *c, const smtp_reply *r)
{
	smtpc_caps *k = &c->caps;
	memset(k, 0, sizeof(*k));
	k->esmtp = true;
	for (size_t i = 1; i < r->n_lines; i++) {
		size_t n, w = 0;
		const char *t = smtp_reply_line_text(r, i, &n);
		while (w < n && t[w] != ' ' && t[w] != '=')
			w++;
		const char *arg = t + w + (w < n ? 1 : 0);
		size_t alen = w < n ? n - w - 1 : 0;
		if (word_is(t, w, "PIPELINING")) {
			k->pipelining = true;
		} else if (word_is(t, w, "8BITMIME")) {
			k->eightbitmime = true;
		} else if (word_is(t, w, "SMTPUTF8")) {
			k->smtputf8 = true;
		} else if (word_is(t, w, "DSN")) {
			k->dsn = true;
		} else if (word_is(t, w, "STARTTLS")) {
			k->starttls = true;
		} else if (word_is(t, w, "ENHANCEDSTATUSCODES")) {
			k->enhancedstatuscodes = true;
		} else if (word_is(t, w, "CHUNKING")) {
			k->chunking = true;
		} else if (word_is(t, w, "SIZE")) {
			uint64_t v = 0;
			size_t j = 0;
			bool ok = alen > 0;
			for (; j < alen && arg[j] != ' '; j++) {
				unsigned d = (unsigned)(arg[j] - '0');
				if (d > 9 || v > (UINT64_MAX - d) / 10) {
					ok = false;
					break;
				}
				v = v * 10 + d;
			}
			k->size = true;
			k->size_max = ok ? v : 0;
		} else if (word_is(t, w, "AUTH")) {
			size_t j = 0;
			while (j < alen) {
				size_t e = j;
				while (e < alen && arg[e] != ' ')
					e++;
				if (word_is(arg + j, e - j, "PLAIN"))
					k->auth_plain = true;
				else if (word_is(arg + j, e - j, "LOGIN"))
					k->auth_login = true;
				else if (e > j)
					k->auth_other = true;
				j = e + 1;
			}
		}
	}
	caps_describe(c);
}

static void wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

static void send_b64(smtp_client *c, const char *prefix, const uint8_t *raw,
		     size_t n)
{
	char line[CMD_MAX];
	size_t plen = strlen(prefix);
	/* n <= 2 + 2 * SMTPC_AUTH_MAX = 512: 684 octets of base64 */
	if (plen + sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL) >
	    sizeof(line) - 2)
		abort();
	memcpy(line, prefix, plen);
	sodium_bin2base64(line + plen, sizeof(line) - plen, raw, n,
			  sodium_base64_VARIANT_ORIGINAL);
	put_line(c, line, strlen(line), true);
	wipe(line, sizeof(line));
}

static void start_auth(smtp_client *c)
{
	if (c->caps.auth_plain) {
		uint8_t raw[2 + 2 * SMTPC_AUTH_MAX];
		size_t ul = strlen(c->set.auth_user), pl = strlen(c->set.auth_pass);
		raw[0] = 0; /* no authorisation identity */
		memcpy(raw + 1, c->set.auth_user, ul);
		raw[1 + ul] = 0;
		memcpy(raw + 2 + ul, c->set.auth_pass, pl);
		send_b64(c, "AUTH PLAIN ", raw, 2 + ul + pl);
		wipe(raw, sizeof(raw));
		c->auth_step = AUTH_PLAIN;
	} else {
		cmd(c, "AUTH LOGIN");
		c->auth_step = AUTH_LOGIN;
	}
	c->state = CS_AUTH;
}

static void tx_advance(smtp_client *c);

static void start_tx(smtp_client *c)
{
	const smtpc_caps *k = &c->caps;
	char text[200];
	if (c->msg.smtputf8 && !k->smtputf8) {
		all_local(c, 554, "5.6.7", SMTPC_PHASE_MAIL,
			  "the message needs SMTPUTF8, which the server does not offer");
		end_session(c, true);
		return;
	}
	if (c->msg.eightbit && !k->eightbitmime) {
		all_local(c, 554, "5.6.3",
			  SMTPC_PHASE_MAIL,
			  "the message has 8-bit content and the server does not offer 8BITMIME");
		end_session(c, true);
		return;
	}
	if (k->size && k->size_max > 0 && c->msg_size > k->size_max) {
		snprintf(text, sizeof(text),
			 "the message (%llu octets) is larger than the server's SIZE limit (%llu)",
			 (unsigned long long)c->msg_size,
			 (unsigned long long)k->size_max);
		all_local(c, 552, "5.3.4", SMTPC_PHASE_MAIL, text);
		end_session(c, true);
		return;
	}
	c->state = CS_TX;
	c->seq_sent = c->seq_done = c->n_accepted = 0;
	c->seq_stop = c->mail_ok = false;
	tx_advance(c);
}

/* After EHLO or HELO: STARTTLS, AUTH or the transaction. */
static void after_hello(smtp_client *c)
{
	if (!c->tls_now && c->set.tls != SMTPC_TLS_NONE && c->caps.starttls &&
	    !c->tls_tried) {
		c->tls_tried = true;
		cmd(c, "STARTTLS");
		c->state = CS_STARTTLS;
		return;
	}
	if (!c->tls_now && c->set.tls == SMTPC_TLS_MUST) {
		fail_local(c, 451, "4.7.4", true,
			   "TLS is required but the server does not offer STARTTLS");
		return;
	}
	if (c->set.auth_user != NULL) {
		if (!c->tls_now) {
			fail_local(c, 451, "4.7.0", true, "AUTH needs TLS");
			return;
		}
		if (!c->caps.auth_plain && !c->caps.auth_login) {
			fail_local(c, 451, "4.7.0", true,
				   "AUTH PLAIN or LOGIN is not offered by the server");
			return;
		}
		start_auth(c);
		return;
	}
	start_tx(c);
}

/* ------------------------------------------------------ transaction */

/* Append str to the line p[0..*pos) (CMD_MAX octets): every part is
 * bounded at creation, so a line that does not fit is a bug. */
static void add(char *p, size_t *pos, const char *str)
{
	size_t n = strlen(str);
	if (n >= CMD_MAX - 2 - *pos)
		abort();
	memcpy(p + *pos, str, n + 1);
	*pos += n;
}

static void send_seq(smtp_client *c, size_t k)
{
	static const struct {
		unsigned bit;
		const char *word;
	} notify[] = {
		{ SMTPC_NOTIFY_SUCCESS, "SUCCESS" },
		{ SMTPC_NOTIFY_FAILURE, "FAILURE" },
		{ SMTPC_NOTIFY_DELAY, "DELAY" },
	};
	const smtpc_caps *caps = &c->caps;
	const smtpc_message *m = &c->msg;
	char p[CMD_MAX];
	size_t pos = 0;
	if (k == 0) {
		char size[32];
		snprintf(size, sizeof(size), " SIZE=%llu",
			 (unsigned long long)c->msg_size);
		add(p, &pos, "MAIL FROM:<");
		add(p, &pos, m->mail_from);
		add(p, &pos, ">");
		if (caps->size)
			add(p, &pos, size);
		if (m->eightbit)
			add(p, &pos, " BODY=8BITMIME");
		if (m->smtputf8)
			add(p, &pos, " SMTPUTF8");
		if (caps->dsn && m->ret != SMTPC_RET_NONE)
			add(p, &pos, m->ret == SMTPC_RET_FULL ? " RET=FULL" : " RET=HDRS");
		if (caps->dsn && m->envid != NULL) {
			add(p, &pos, " ENVID=");
			add(p, &pos, m->envid);
		}
	} else if (k <= m->n_rcpts) {
		const smtpc_rcpt *r = &m->rcpts[k - 1];
		add(p, &pos, "RCPT TO:<");
		add(p, &pos, r->addr);
		add(p, &pos, ">");
		if (caps->dsn && (r->notify & SMTPC_NOTIFY_NEVER)) {
			add(p, &pos, " NOTIFY=NEVER");
		} else if (caps->dsn) {
			const char *sep = " NOTIFY=";
			for (size_t i = 0; i < sizeof(notify) / sizeof(notify[0]); i++) {
				if (r->notify & notify[i].bit) {
					add(p, &pos, sep);
					add(p, &pos, notify[i].word);
					sep = ",";
				}
			}
		}
		if (caps->dsn && r->orcpt != NULL) {
			add(p, &pos, " ORCPT=");
			add(p, &pos, r->orcpt);
		}
	} else {
		add(p, &pos, "DATA");
	}
	put_line(c, p, pos, false);
	c->seq_end[k] = c->produced;
}

/* Queue what may be queued; end the session when the sequence is over
 * without a body. */
static void tx_advance(smtp_client *c)
{
	size_t last = c->n_seq - 1; /* DATA */
	if (c->state != CS_TX)
		return;
	while (!c->seq_stop && c->seq_sent < c->n_seq &&
	       (c->caps.pipelining || c->seq_sent == c->seq_done)) {
		if (c->seq_sent == last && c->seq_done == last &&
		    c->n_accepted == 0) {
			c->seq_stop = true; /* nobody to send it to */
			break;
		}
		if (out_room(c) < CMD_MAX)
			break;
		send_seq(c, c->seq_sent);
		c->seq_sent++;
	}
	if (c->seq_done == c->seq_sent && (c->seq_stop || c->seq_sent == c->n_seq))
		end_session(c, true);
}

static void tx_reply(smtp_client *c, const smtp_reply *r)
{
	size_t k = c->seq_done++;
	unsigned cls = r->code / 100;
	if (k == 0) {
		if (cls == 2) {
			c->mail_ok = true;
		} else if (cls == 4 || cls == 5) {
			c->seq_stop = true;
			all_reply(c, r, SMTPC_PHASE_MAIL, false, NULL);
		} else {
			protocol_error(c, "unexpected reply to MAIL");
			return;
		}
	} else if (k <= c->msg.n_rcpts) {
		size_t i = k - 1;
		if (cls == 3) {
			protocol_error(c, "unexpected reply to RCPT");
			return;
		}
		if (c->mail_ok) {
			if (cls == 2) {
				c->accepted[i] = true;
				c->n_accepted++;
			} else {
				result_reply(c, i, r, SMTPC_PHASE_RCPT, false, NULL);
			}
		}
	} else {
		bool have = c->mail_ok && c->n_accepted > 0;
		if (r->code == 354) {
			if (have) {
				c->state = CS_BODY;
				dotstuff_init(&c->ds);
				c->body_off = 0;
				return;
			}
			/* RFC 2920 §3.1: DATA accepted with no valid
			 * recipient; end an empty message */
			cmd(c, ".");
		} else if (cls == 4 || cls == 5) {
			if (have)
				all_reply(c, r, SMTPC_PHASE_DATA, false, NULL);
		} else {
			protocol_error(c, "unexpected reply to DATA");
			return;
		}
	}
	tx_advance(c);
}

/* Produce body output while there is room. */
static void body_fill(smtp_client *c)
{
	while (c->state == CS_BODY) {
		size_t room = SMTPC_OUT_MAX - c->out_len, used, w;
		if (room == 0)
			break;
		if (c->body_off < c->msg.body_len) {
			dotstuff_run(&c->ds, c->msg.body + c->body_off,
				     c->msg.body_len - c->body_off, &used,
				     c->out + c->out_len, room, &w);
			c->body_off += used;
			c->out_len += w;
			c->produced += w;
			if (used == 0 && w == 0)
				break;
		} else {
			bool end = dotstuff_finish(&c->ds, c->out + c->out_len,
						   room, &w);
			c->out_len += w;
			c->produced += w;
			if (!end)
				break;
			c->cmd_end = c->produced;
			c->state = CS_DATA_END;
		}
	}
}

/* ---------------------------------------------------------- replies */

static void auth_failed(smtp_client *c, const smtp_reply *r)
{
	fail_reply(c, r, false, true, "AUTH failed",
		   r->code >= 500 ? "5.7.8" : NULL);
}

static void on_reply(smtp_client *c, const smtp_reply *r)
{
	unsigned cls = r->code / 100;
	set_last_reply(c, r);
	if (r->code == 421) {
		fail_reply(c, r, false, false, "the server is closing", NULL);
		return;
	}
	switch (c->state) {
	case CS_GREETING: {
		size_t pos = 0;
		char text[SMTPC_TEXT_MAX];
		reply_text(r, text, sizeof(text));
		put_clean(c->greeting, sizeof(c->greeting), &pos, text,
			  strlen(text));
		if (r->code == 220)
			send_ehlo(c);
		else if (cls == 4 || cls == 5)
			fail_reply(c, r, true, true, "greeting refused", NULL);
		else
			fail_local(c, 451, "4.5.0", true,
				   "protocol error: bad greeting: %s", c->last_reply);
		break;
	}
	case CS_EHLO:
		if (cls == 2) {
			parse_caps(c, r);
			after_hello(c);
		} else if (cls == 5) {
			cmd(c, "HELO %s", c->set.helo);
			c->state = CS_HELO;
		} else if (cls == 4) {
			fail_reply(c, r, false, true, "EHLO refused", NULL);
		} else {
			protocol_error(c, "unexpected reply to EHLO");
		}
		break;
	case CS_HELO:
		if (cls == 2) {
			memset(&c->caps, 0, sizeof(c->caps));
			c->caps_text[0] = '\0';
			after_hello(c);
		} else if (cls == 4 || cls == 5) {
			fail_reply(c, r, false, true, "HELO refused", NULL);
		} else {
			protocol_error(c, "unexpected reply to HELO");
		}
		break;
	case CS_STARTTLS:
		if (r->code == 220) {
			/* T5: nothing read after this reply is ever parsed */
			smtp_reply_parser_init(&c->rp);
			c->state = CS_TLS_WAIT;
		} else if (cls == 4 || cls == 5) {
			if (c->set.tls == SMTPC_TLS_MUST)
				fail_reply(c, r, true, true, "STARTTLS refused",
					   "4.7.0");
			else
				after_hello(c); /* MAY: on in cleartext */
		} else {
			protocol_error(c, "unexpected reply to STARTTLS");
		}
		break;
	case CS_AUTH:
		if (cls == 4 || cls == 5) {
			auth_failed(c, r);
		} else if (cls == 2 && c->auth_step != AUTH_LOGIN &&
			   c->auth_step != AUTH_LOGIN_USER) {
			start_tx(c);
		} else if (r->code == 334 && c->auth_step == AUTH_LOGIN) {
			send_b64(c, "", (const uint8_t *)c->set.auth_user,
				 strlen(c->set.auth_user));
			c->auth_step = AUTH_LOGIN_USER;
		} else if (r->code == 334 && c->auth_step == AUTH_LOGIN_USER) {
			send_b64(c, "", (const uint8_t *)c->set.auth_pass,
				 strlen(c->set.auth_pass));
			c->auth_step = AUTH_LOGIN_PASS;
		} else {
			protocol_error(c, "unexpected reply to AUTH");
		}
		break;
	case CS_TX:
		tx_reply(c, r);
		break;
	case CS_DATA_END:
		if (cls == 2 || cls == 4 || cls == 5) {
			all_reply(c, r, SMTPC_PHASE_DATA, false, NULL);
			end_session(c, true);
		} else {
			protocol_error(c, "unexpected reply to the end of data");
		}
		break;
	default:
		abort(); /* feed never parses in the other states */
	}
}

/* May a reply start now?  Only when one is due and the command it
 * answers has been handed over. */
static bool reply_due(const smtp_client *c)
{
	switch (c->state) {
	case CS_GREETING:
		return true;
	case CS_EHLO:
	case CS_HELO:
	case CS_STARTTLS:
	case CS_AUTH:
	case CS_DATA_END:
		return c->consumed >= c->cmd_end;
	case CS_TX:
		return c->seq_done < c->seq_sent &&
		       c->consumed >= c->seq_end[c->seq_done];
	default:
		return false;
	}
}

void smtp_client_feed(smtp_client *c, const uint8_t *data, size_t len)
{
	while (len > 0) {
		const smtp_reply *r;
		size_t used;
		if (c->state == CS_QUIT || c->state == CS_DONE ||
		    c->state == CS_TLS_WAIT)
			return; /* dropped (T5 for TLS_WAIT) */
		if (smtp_reply_parser_idle(&c->rp) && !reply_due(c)) {
			c->last_reply[0] = '\0';
			fail_local(c, 451, "4.5.0", false, "%s",
				   c->state == CS_BODY
					   ? "protocol error: premature reply during DATA"
					   : "protocol error: reply before its command was sent");
			return;
		}
		smtp_reply_status st = smtp_reply_parse(&c->rp, data, len,
							&used, &r);
		data += used;
		len -= used;
		if (st == SMTP_REPLY_ERROR) {
			fail_local(c, 451, "4.5.0", false, "protocol error: %s",
				   smtp_reply_parser_error(&c->rp));
			return;
		}
		if (st == SMTP_REPLY_NEED_MORE)
			return;
		on_reply(c, r);
	}
}

/* ------------------------------------------------------------ driver */

size_t smtp_client_output(smtp_client *c, const uint8_t **out_r)
{
	if (c->state == CS_DONE) {
		*out_r = c->out;
		return 0;
	}
	if (c->state == CS_TX)
		tx_advance(c);
	if (c->state == CS_BODY)
		body_fill(c);
	*out_r = c->out + c->out_off;
	return c->out_len - c->out_off;
}

void smtp_client_output_consumed(smtp_client *c, size_t n)
{
	if (n > c->out_len - c->out_off)
		abort(); /* the driver's bug */
	if (c->consumed < c->secret_end)
		wipe(c->out + c->out_off, n);
	c->out_off += n;
	c->consumed += n;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
}

bool smtp_client_want_tls(const smtp_client *c)
{
	return c->state == CS_TLS_WAIT && c->out_off == c->out_len;
}

void smtp_client_tls_started(smtp_client *c)
{
	if (c->state != CS_TLS_WAIT)
		return;
	c->tls_now = c->tls_used = true;
	memset(&c->caps, 0, sizeof(c->caps));
	c->caps_text[0] = '\0';
	smtp_reply_parser_init(&c->rp);
	send_ehlo(c);
}

void smtp_client_tls_failed(smtp_client *c, const char *why)
{
	char text[200];
	size_t pos = 0;
	if (c->state != CS_TLS_WAIT)
		return;
	text[0] = '\0';
	if (why != NULL)
		put_clean(text, sizeof(text), &pos, why, strlen(why));
	fail_local(c, 451, "4.7.0", false, "TLS handshake failed: %s", text);
}

unsigned smtp_client_timeout_ms(const smtp_client *c)
{
	if (smtp_client_done(c))
		return 0;
	switch (c->state) {
	case CS_GREETING:
		return c->t_greeting;
	case CS_TX:
		if (c->seq_done < c->seq_sent && c->seq_done == c->n_seq - 1)
			return c->t_data_init;
		return c->t_command;
	case CS_BODY:
		return c->t_data_block;
	case CS_DATA_END:
		return c->t_data_end;
	default:
		return c->t_command;
	}
}

void smtp_client_timeout(smtp_client *c)
{
	static const char *const what[] = {
		[CS_GREETING] = "waiting for the greeting",
		[CS_EHLO] = "waiting for the reply to EHLO",
		[CS_HELO] = "waiting for the reply to HELO",
		[CS_STARTTLS] = "waiting for the reply to STARTTLS",
		[CS_TLS_WAIT] = "during the TLS handshake",
		[CS_AUTH] = "waiting for the reply to AUTH",
		[CS_TX] = "waiting for the reply to MAIL, RCPT or DATA",
		[CS_BODY] = "sending the message",
		[CS_DATA_END] = "waiting for the reply to the end of data",
	};
	if (c->state == CS_QUIT || c->state == CS_DONE) {
		c->state = CS_DONE;
		return;
	}
	const char *w = what[c->state];
	if (c->state == CS_TX && c->seq_done < c->seq_sent)
		w = c->seq_done == 0 ? "waiting for the reply to MAIL"
		    : c->seq_done == c->n_seq - 1 ? "waiting for the reply to DATA"
						   : "waiting for the reply to RCPT";
	fail_local(c, 451, "4.4.2", false, "timeout %s", w);
}

void smtp_client_eof(smtp_client *c)
{
	if (c->state == CS_QUIT || c->state == CS_DONE) {
		c->state = CS_DONE;
		return;
	}
	fail_local(c, 451, "4.4.2", false, "%s",
		   !smtp_reply_parser_idle(&c->rp)
			   ? "connection closed in the middle of a reply"
		   : c->state == CS_DATA_END
			   ? "connection closed after the end of data, before the reply"
			   : "connection closed by the server");
}

bool smtp_client_done(const smtp_client *c)
{
	return c->state == CS_DONE ||
	       (c->state == CS_QUIT && c->out_off == c->out_len);
}

const smtpc_result *smtp_client_result(const smtp_client *c, size_t i)
{
	if (i >= c->msg.n_rcpts)
		abort();
	return &c->res[i];
}

bool smtp_client_transaction(const smtp_client *c)
{
	return c->mail_ok;
}

bool smtp_client_failed(const smtp_client *c)
{
	return c->failed;
}

bool smtp_client_failed_permanent(const smtp_client *c)
{
	return c->failed && c->failed_perm;
}

const char *smtp_client_reason(const smtp_client *c)
{
	return c->reason;
}

const smtpc_caps *smtp_client_caps(const smtp_client *c)
{
	return &c->caps;
}

const char *smtp_client_caps_text(const smtp_client *c)
{
	return c->caps_text;
}

bool smtp_client_tls_used(const smtp_client *c)
{
	return c->tls_used;
}

const char *smtp_client_greeting(const smtp_client *c)
{
	return c->greeting;
}

const char *smtp_client_last_reply(const smtp_client *c)
{
	return c->last_reply;
}

/* ---------------------------------------------------------- creation */

/* An address (without <>): E4's octet checks, then smtp-addr's parser. */
static const char *check_addr(const char *a, bool allow_null, bool utf8)
{
	char buf[SMTP_PATH_MAX + 1];
	smtp_path p;
	size_t n, used;
	const char *why;
	if (a == NULL)
		return "an address is missing";
	n = strnlen(a, SMTP_PATH_MAX);
	if (n > SMTP_PATH_MAX - 2)
		return "an address is too long";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a[i];
		if (ch < 0x20 || ch == 0x7f)
			return "CR, LF or another control character in an address";
		if (ch == ' ' || ch == '<' || ch == '>')
			return "a space or an angle bracket in an address";
		if (ch >= 0x80 && !utf8)
			return "an 8-bit address in a message without smtputf8";
	}
	if (n == 0)
		return allow_null ? NULL : "an empty recipient address";
	buf[0] = '<';
	memcpy(buf + 1, a, n);
	buf[n + 1] = '>';
	if (smtp_path_parse(buf, n + 2, allow_null, utf8, &p, &used, &why) !=
		    SMTP_ADDR_OK ||
	    used != n + 2)
		return "an address is not a valid RFC 5321 mailbox";
	return NULL;
}

static bool is_hex_upper(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F');
}

/* RFC 3461 xtext, 1..max octets. */
static bool xtext_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x21 || ch > 0x7e || ch == '=')
			return false;
		if (ch == '+') {
			if (i + 2 >= n || !is_hex_upper(s[i + 1]) ||
			    !is_hex_upper(s[i + 2]))
				return false;
			i += 2;
		}
	}
	return true;
}

static const char *check(const smtpc_settings *set, const smtpc_message *m)
{
	size_t n;
	if (set->helo == NULL)
		return "no HELO name";
	n = strnlen(set->helo, SMTP_DOMAIN_MAX + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)set->helo[i];
		if (ch <= 0x20 || ch >= 0x7f)
			return "CR, LF, space or another non-printable octet in the HELO name";
	}
	if (!smtp_domain_check(set->helo, n, false))
		return "the HELO name is not a domain or an address literal";
	if (set->tls != SMTPC_TLS_NONE && set->tls != SMTPC_TLS_MAY &&
	    set->tls != SMTPC_TLS_MUST)
		return "unknown TLS policy";
	if ((set->auth_user == NULL) != (set->auth_pass == NULL))
		return "AUTH needs both a user name and a password";
	if (set->auth_user != NULL &&
	    (set->auth_user[0] == '\0' ||
	     strnlen(set->auth_user, SMTPC_AUTH_MAX + 1) > SMTPC_AUTH_MAX ||
	     strnlen(set->auth_pass, SMTPC_AUTH_MAX + 1) > SMTPC_AUTH_MAX))
		return "the AUTH user name or password is empty or too long";
	if (m->mail_from == NULL)
		return "no sender";
	const char *e = check_addr(m->mail_from, true, m->smtputf8);
	if (e != NULL)
		return e;
	if (m->rcpts == NULL || m->n_rcpts == 0 || m->n_rcpts > SMTPC_RCPT_MAX)
		return "the number of recipients is not within 1..SMTPC_RCPT_MAX";
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const smtpc_rcpt *r = &m->rcpts[i];
		e = check_addr(r->addr, false, m->smtputf8);
		if (e != NULL)
			return e;
		if (r->notify > 0xfu ||
		    ((r->notify & SMTPC_NOTIFY_NEVER) && r->notify != SMTPC_NOTIFY_NEVER))
			return "bad NOTIFY (NEVER goes alone)";
		if (r->orcpt != NULL) {
			const char *semi = strchr(r->orcpt, ';');
			if (!xtext_ok(r->orcpt, SMTPC_ORCPT_MAX) || semi == NULL ||
			    semi == r->orcpt)
				return "ORCPT is not \"type;xtext\" within 500 octets";
		}
	}
	if (m->envid != NULL && !xtext_ok(m->envid, SMTPC_ENVID_MAX))
		return "ENVID is not xtext within 100 octets";
	if (m->ret > SMTPC_RET_HDRS)
		return "unknown RET";
	if (m->body == NULL && m->body_len > 0)
		return "no body";
	return NULL;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL)
		abort();
	return p;
}

static unsigned or_default(unsigned v, unsigned dflt)
{
	return v != 0 ? v : dflt;
}

int smtp_client_new(const smtpc_settings *set, const smtpc_message *msg,
		    smtp_client **c_r, const char **error_r)
{
	*c_r = NULL;
	*error_r = check(set, msg);
	if (*error_r != NULL)
		return -1;
	smtp_client *c = xcalloc(1, sizeof(*c));
	c->set = *set;
	c->msg = *msg;
	c->t_greeting = or_default(set->greeting_ms, SMTPC_GREETING_MS);
	c->t_command = or_default(set->command_ms, SMTPC_COMMAND_MS);
	c->t_data_init = or_default(set->data_init_ms, SMTPC_DATA_INIT_MS);
	c->t_data_block = or_default(set->data_block_ms, SMTPC_DATA_BLOCK_MS);
	c->t_data_end = or_default(set->data_end_ms, SMTPC_DATA_END_MS);
	c->tls_now = c->tls_used = set->tls_active;
	c->state = CS_GREETING;
	smtp_reply_parser_init(&c->rp);
	c->out = xcalloc(1, SMTPC_OUT_MAX);
	c->n_seq = msg->n_rcpts + 2;
	c->seq_end = xcalloc(c->n_seq, sizeof(*c->seq_end));
	c->accepted = xcalloc(msg->n_rcpts, sizeof(*c->accepted));
	c->res = xcalloc(msg->n_rcpts, sizeof(*c->res));
	c->msg_size = dotstuff_size(msg->body, msg->body_len);
	*c_r = c;
	return 0;
}

void smtp_client_free(smtp_client **cp)
{
	smtp_client *c = *cp;
	if (c == NULL)
		return;
	wipe(c->out, SMTPC_OUT_MAX);
	free(c->out);
	free(c->seq_end);
	free(c->accepted);
	free(c->res);
	wipe(c, sizeof(*c));
	free(c);
	*cp = NULL;
}
