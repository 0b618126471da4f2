/*
 * dsn.c — delivery status notifications (dsn.h).
 *
 * The three parts are written into their own buffers first; then a
 * boundary that none of them contains is chosen ("dsn_" and the hex of
 * random16, a "_N" suffix added while it is found), and the message is
 * put together.  Text from outside (the remote reply, host names, the
 * envelope id, addresses) goes through one of the sanitisers below before
 * it is written, so it never holds a CR, LF or NUL, and field lines are
 * folded or cut to stay within 998 octets.
 *
 * Memory: each buffer has a maximum fixed before the first byte (the part
 * sizes are bounded by the caps in dsn.h); out of memory aborts
 * (STYLE.md).  Work: O(original + recipients), plus one scan of the parts
 * per boundary tried.
 */
#include "dsn.h"

#include "obuf.h"

#include "mail-date.h"
#include "mail-header.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_OCTETS 998u  /* RFC 5322 §2.1.1 */
#define FOLD_AT 78u           /* preferred line length */
#define WRAP_AT 76u           /* the human part */
#define WORD_CHUNK 900u       /* longer words are split */
#define HOST_MAX 255u
#define ENVID_MAX 100u        /* RFC 3461 §4.4 */
#define XADDR_MAX 900u        /* an address written in a field */
#define RCPT_BUDGET (16u * 1024u) /* both parts' bytes for one recipient */
#define BOUNDARY_TRIES 100u


/* ---- Sanitisers ---- */

static bool is_print(uint8_t c)
{
	return c >= 0x20 && c < 0x7f;
}

static bool is_alnum(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* The remote reply as one line of printable ASCII: CR, LF, HTAB and SP
 * runs become one SP, other bytes '?', no blank at either end, at most
 * DSN_DIAG_MAX bytes ("..." marks a cut).  out has DSN_DIAG_MAX + 4. */
static size_t clean_diag(const char *s, char *out)
{
	size_t k = 0;
	bool sp = false;
	for (size_t i = 0; s[i] != '\0'; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			sp = k > 0;
			continue;
		}
		if (k + (sp ? 2 : 1) > DSN_DIAG_MAX) {
			memcpy(out + k, "...", 3);
			k += 3;
			break;
		}
		if (sp)
			out[k++] = ' ';
		sp = false;
		out[k++] = is_print(c) ? (char)c : '?';
	}
	out[k] = '\0';
	return k;
}

/* A host name: bytes outside [A-Za-z0-9.-:[]_] as '?', at most HOST_MAX.
 * out has HOST_MAX + 1. */
static size_t clean_host(const char *s, char *out)
{
	size_t k = 0;
	for (; s[k] != '\0' && k < HOST_MAX; k++) {
		uint8_t c = (uint8_t)s[k];
		out[k] = is_alnum(c) || (c != 0 && strchr(".-:[]_", c)) ?
			(char)c : '?';
	}
	out[k] = '\0';
	return k;
}

/* Printable ASCII, other bytes '?', at most max bytes.  out has max + 1. */
static size_t clean_text(const char *s, size_t max, char *out)
{
	size_t k = 0;
	for (; s[k] != '\0' && k < max; k++)
		out[k] = is_print((uint8_t)s[k]) ? s[k] : '?';
	out[k] = '\0';
	return k;
}

static bool all_graphic(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)s[i] < 0x21 || (uint8_t)s[i] > 0x7e)
			return false;
	return true;
}

/* addr[0..n) as RFC 6533 utf-8-addr-xtext: QCHAR as is, everything else
 * \x{HEX} of its code point (invalid UTF-8: U+FFFD a byte); stops before
 * XADDR_MAX bytes. */
static void put_xaddr(obuf *o, const char *addr, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n;) {
		uint8_t c = (uint8_t)addr[i];
		char e[16];
		size_t el;
		if (c >= 0x21 && c <= 0x7e && c != '+' && c != '=' &&
		    c != '\\') {
			e[0] = (char)c;
			el = 1;
			i++;
		} else {
			uint32_t cp = 0xfffd;
			size_t sl = 1;
			if (c < 0x80) {
				cp = c;
			} else {
				size_t q = util_utf8_seq((const uint8_t *)addr +
							 i, n - i, &cp);
				if (q == 0)
					cp = 0xfffd;
				else
					sl = q;
			}
			int r = snprintf(e, sizeof(e), "\\x{%X}", (unsigned)cp);
			if (r < 0 || (size_t)r >= sizeof(e))
				abort();
			el = (size_t)r;
			i += sl;
		}
		if (w + el > XADDR_MAX)
			return;
		ob_put(o, e, el);
		w += el;
	}
}

/* "rfc822; addr" when addr is printable ASCII without blanks, else
 * "utf-8; " and its utf-8-addr-xtext. */
static void put_typed_addr(obuf *o, const char *addr, size_t n)
{
	if (all_graphic(addr, n) && n <= XADDR_MAX) {
		ob_str(o, "rfc822; ");
		ob_put(o, addr, n);
	} else {
		ob_str(o, "utf-8; ");
		put_xaddr(o, addr, n);
	}
}

/* orcpt "TYPE;address" (decoded).  A type that is not an atom, or none,
 * makes the whole an rfc822 address. */
static void put_orcpt(obuf *o, const char *s)
{
	size_t n = strlen(s), t = 0;
	while (t < n && t <= 32 && (is_alnum((uint8_t)s[t]) || s[t] == '-'))
		t++;
	if (t == 0 || t > 32 || t >= n || s[t] != ';') {
		put_typed_addr(o, s, n);
		return;
	}
	const char *a = s + t + 1;
	size_t an = n - t - 1;
	while (an > 0 && (*a == ' ' || *a == '\t')) {
		a++;
		an--;
	}
	bool rfc822 = t == 6 && strncasecmp(s, "rfc822", 6) == 0;
	bool utf8 = t == 5 && strncasecmp(s, "utf-8", 5) == 0;
	if (rfc822 || utf8) {
		if (utf8 && all_graphic(a, an) && an <= XADDR_MAX) {
			ob_str(o, "utf-8; "); /* already utf-8-addr-xtext */
			ob_put(o, a, an);
		} else {
			put_typed_addr(o, a, an);
		}
		return;
	}
	ob_put(o, s, t);
	ob_str(o, "; ");
	for (size_t i = 0; i < an && i < XADDR_MAX; i++)
		ob_byte(o, all_graphic(a + i, 1) ? (uint8_t)a[i] : '?');
}

/* ---- Folding and wrapping ---- */

/* "Name:" then the words of text (single SP between words, none at the
 * ends), each after a SP, folded before a word that would pass FOLD_AT;
 * words over WORD_CHUNK are split.  Then CRLF. */
static void put_folded(obuf *o, const char *name, const char *text,
		       size_t n)
{
	size_t col = strlen(name) + 1;
	ob_str(o, name);
	ob_byte(o, ':');
	for (size_t i = 0; i < n;) {
		size_t e = i;
		while (e < n && text[e] != ' ')
			e++;
		while (i < e) {
			size_t w = e - i < WORD_CHUNK ? e - i : WORD_CHUNK;
			if (col + 1 + w > FOLD_AT && col > strlen(name) + 1) {
				ob_str(o, "\r\n");
				col = 0;
			}
			ob_byte(o, ' ');
			ob_put(o, text + i, w);
			col += 1 + w;
			i += w;
		}
		i = e + 1;
	}
	ob_str(o, "\r\n");
}

/* text (printable ASCII, single blanks) wrapped at WRAP_AT with `indent`
 * spaces before each line; words longer than a line are split. */
static void put_wrapped(obuf *o, size_t indent, const char *text, size_t n)
{
	size_t width = WRAP_AT - indent, col = 0;
	for (size_t i = 0; i < n;) {
		size_t e = i;
		while (e < n && text[e] != ' ')
			e++;
		while (i < e) {
			size_t w = e - i < width ? e - i : width;
			if (col > 0 && col + 1 + w > width) {
				ob_str(o, "\r\n");
				col = 0;
			}
			if (col == 0) {
				for (size_t k = 0; k < indent; k++)
					ob_byte(o, ' ');
			} else {
				ob_byte(o, ' ');
				col++;
			}
			ob_put(o, text + i, w);
			col += w;
			i += w;
		}
		i = e + 1;
	}
	if (col > 0)
		ob_str(o, "\r\n");
}

/* ---- Checks ---- */

static bool status_ok(const char *s)
{
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (s[i] >= '0' && s[i] <= '9' && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return false;
		if (part == 0 && s[i++] != '.')
			return false;
	}
	return s[i] == '\0';
}

static bool hostname_ok(const char *s, size_t max)
{
	size_t n = s != NULL ? strnlen(s, max + 1) : 0;
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((uint8_t)s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* A mailbox address for a header field: a quoted local part (no CR, LF,
 * NUL, '"' or '\' inside but as a quoted pair) or bytes outside the
 * specials, then the domain; no controls or blanks outside quotes; UTF-8
 * valid. */
static bool header_addr_ok(const char *s)
{
	size_t n = s != NULL ? strnlen(s, DSN_ADDR_MAX + 1) : 0;
	bool quoted = false, at = false;
	if (n == 0 || n > DSN_ADDR_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c >= 0x80) {
			uint32_t cp;
			size_t q = util_utf8_seq((const uint8_t *)s + i, n - i,
						 &cp);
			if (q == 0 || cp < 0xa0)
				return false;
			i += q - 1;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			return false;
		if (quoted) {
			if (c == '\\') {
				if (i + 1 >= n || !is_print((uint8_t)s[i + 1]))
					return false;
				i++;
			} else if (c == '"') {
				quoted = false;
			}
			continue;
		}
		if (c == '"' && i == 0) {
			quoted = true;
		} else if (c == '@') {
			at = true;
		} else if (c == ' ' || strchr("()<>[]:;,\\\"", c) != NULL) {
			return false;
		}
	}
	return !quoted && at;
}

/* ---- Texts ---- */

const char *dsn_action_name(dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	case DSN_EXPANDED:
		return "expanded";
	}
	return NULL;
}

/* What a status code means (RFC 3463), in our words. */
static const char *status_text(const char *status)
{
	static const struct {
		const char *code, *text;
	} known[] = {
		{"1.1", "the mailbox does not exist"},
		{"1.2", "the destination domain does not exist or takes no mail"},
		{"1.3", "the mailbox address is not valid"},
		{"1.6", "the mailbox has moved"},
		{"1.10", "the recipient's domain accepts no mail (null MX)"},
		{"2.1", "the mailbox is disabled"},
		{"2.2", "the mailbox is full"},
		{"2.3", "the message is too long for the mailbox"},
		{"3.4", "the message is too big for the receiving system"},
		{"4.1", "the receiving host did not answer"},
		{"4.2", "the connection to the receiving host failed"},
		{"4.3", "the receiving host's name could not be looked up"},
		{"4.4", "no route to the recipient's domain was found"},
		{"4.6", "the message was looping"},
		{"4.7", "the message was too long in the queue"},
		{"5.3", "too many recipients"},
		{"6.3", "the message needed a conversion that is not "
			"possible"},
		{"7.1", "delivery was refused by policy"},
	};
	static const char *const subject[8] = {
		"the reason was not given",
		"a problem with the address",
		"a problem with the mailbox",
		"a problem with the receiving mail system",
		"a network or routing problem",
		"a mail protocol problem",
		"a problem with the message's content",
		"a security or policy problem",
	};
	const char *rest = status + 2; /* after "C." (status_ok) */
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(rest, known[i].code) == 0)
			return known[i].text;
	if (rest[0] >= '0' && rest[0] <= '7' && rest[1] == '.')
		return subject[rest[0] - '0'];
	return subject[0];
}

static int date_line(obuf *o, const char *name, uint64_t t)
{
	char d[MAIL_DATE_FORMAT_SIZE];
	if (t > INT64_MAX || !mail_date_format((time_t)t, d, sizeof(d)))
		return -1;
	ob_str(o, name);
	ob_str(o, ": ");
	ob_str(o, d);
	ob_str(o, "\r\n");
	return 0;
}

/* The human part (text/plain). */
static int human_part(const dsn_report *r, obuf *o, bool has[5])
{
	static const char *const heading[5] = {
		"Not delivered; nothing more will be tried:",
		"Not delivered yet; the mail system is still trying:",
		"Delivered:",
		"Passed on to a system that sends no delivery reports:",
		"Delivered, and forwarded from there to further addresses:",
	};
	char host[HOST_MAX + 1], *diag = malloc(DSN_DIAG_MAX + 4);
	char line[DSN_ADDR_MAX + DSN_DIAG_MAX + 128];
	if (diag == NULL)
		abort();
	clean_host(r->reporting_mta, host);
	ob_str(o, "This is the mail system at ");
	ob_str(o, host);
	ob_str(o, ".\r\n\r\n");
	const char *intro;
	if (has[DSN_FAILED])
		intro = "Your message could not be delivered to one or more "
			"of its recipients. The reasons are below, then a "
			"report for programs and your message (or its header "
			"section).";
	else if (has[DSN_DELAYED])
		intro = "Your message has not been delivered yet to one or "
			"more of its recipients. The mail system keeps "
			"trying; you do not need to send it again. You will "
			"hear from it again if it has to give up.";
	else
		intro = "Your message was delivered as you asked (you asked "
			"for a report of the delivery).";
	put_wrapped(o, 0, intro, strlen(intro));
	for (int a = 0; a < 5; a++) {
		if (!has[a])
			continue;
		ob_str(o, "\r\n");
		ob_str(o, heading[a]);
		ob_str(o, "\r\n");
		for (size_t i = 0; i < r->n; i++) {
			const dsn_rcpt *p = &r->rcpts[i];
			if ((int)p->action != a)
				continue;
			char addr[DSN_ADDR_MAX + 1];
			clean_text(p->final_rcpt, DSN_ADDR_MAX, addr);
			int k = snprintf(line, sizeof(line), "<%s>", addr);
			if (k < 0 || (size_t)k >= sizeof(line))
				abort();
			ob_str(o, "\r\n");
			put_wrapped(o, 2, line, (size_t)k);
			if (p->diag != NULL && p->diag[0] != '\0') {
				clean_diag(p->diag, diag);
				if (p->remote_mta != NULL &&
				    p->remote_mta[0] != '\0') {
					clean_host(p->remote_mta, host);
					k = snprintf(line, sizeof(line),
						     "%s said: %s", host, diag);
				} else {
					k = snprintf(line, sizeof(line),
						     "the reply was: %s", diag);
				}
			} else if (p->remote_mta != NULL &&
				   p->remote_mta[0] != '\0') {
				clean_host(p->remote_mta, host);
				k = snprintf(line, sizeof(line),
					     "at %s: %s (status %s)", host,
					     status_text(p->status), p->status);
			} else {
				k = snprintf(line, sizeof(line), "%s (status %s)",
					     status_text(p->status), p->status);
			}
			if (k < 0 || (size_t)k >= sizeof(line))
				abort();
			put_wrapped(o, 4, line, (size_t)k);
			if (p->action == DSN_DELAYED &&
			    p->will_retry_until != 0) {
				char d[MAIL_DATE_FORMAT_SIZE];
				if (p->will_retry_until > INT64_MAX ||
				    !mail_date_format((time_t)p->will_retry_until,
						      d, sizeof(d))) {
					free(diag);
					return -1;
				}
				k = snprintf(line, sizeof(line),
					     "it will keep trying until %s", d);
				if (k < 0 || (size_t)k >= sizeof(line))
					abort();
				put_wrapped(o, 4, line, (size_t)k);
			}
		}
	}
	clean_host(r->reporting_mta, host);
	ob_str(o, "\r\n");
	int k = snprintf(line, sizeof(line), "For help, write to "
			 "postmaster@%s and include this report.", host);
	if (k < 0 || (size_t)k >= sizeof(line))
		abort();
	put_wrapped(o, 0, line, (size_t)k);
	free(diag);
	return 0;
}

/* The machine-readable part (message/delivery-status). */
static int status_part(const dsn_report *r, obuf *o)
{
	char host[HOST_MAX + 1], envid[ENVID_MAX + 1];
	char *text = malloc(DSN_DIAG_MAX + 16);
	if (text == NULL)
		abort();
	ob_str(o, "Reporting-MTA: dns; ");
	ob_str(o, r->reporting_mta);
	ob_str(o, "\r\n");
	if (r->envid != NULL && r->envid[0] != '\0') {
		clean_text(r->envid, ENVID_MAX, envid);
		ob_str(o, "Original-Envelope-Id: ");
		ob_str(o, envid);
		ob_str(o, "\r\n");
	}
	if (r->arrival != 0 && date_line(o, "Arrival-Date", r->arrival) < 0)
		goto bad;
	for (size_t i = 0; i < r->n; i++) {
		const dsn_rcpt *p = &r->rcpts[i];
		ob_str(o, "\r\n");
		if (p->orcpt != NULL && p->orcpt[0] != '\0') {
			ob_str(o, "Original-Recipient: ");
			put_orcpt(o, p->orcpt);
			ob_str(o, "\r\n");
		}
		ob_str(o, "Final-Recipient: ");
		put_typed_addr(o, p->final_rcpt, strlen(p->final_rcpt));
		ob_str(o, "\r\nAction: ");
		ob_str(o, dsn_action_name(p->action));
		ob_str(o, "\r\nStatus: ");
		ob_str(o, p->status);
		ob_str(o, "\r\n");
		if (p->remote_mta != NULL && p->remote_mta[0] != '\0') {
			clean_host(p->remote_mta, host);
			ob_str(o, "Remote-MTA: dns; ");
			ob_str(o, host);
			ob_str(o, "\r\n");
		}
		if (p->diag != NULL && p->diag[0] != '\0') {
			memcpy(text, "smtp; ", 6);
			size_t n = clean_diag(p->diag, text + 6);
			if (n > 0)
				put_folded(o, "Diagnostic-Code", text, n + 6);
		}
		if (p->last_attempt != 0 &&
		    date_line(o, "Last-Attempt-Date", p->last_attempt) < 0)
			goto bad;
		if (p->action == DSN_DELAYED && p->will_retry_until != 0 &&
		    date_line(o, "Will-Retry-Until", p->will_retry_until) < 0)
			goto bad;
	}
	free(text);
	return 0;
bad:
	free(text);
	return -1;
}

/* Line ends of m[a..b) as CRLF: CRLF, a bare LF and a bare CR each become
 * CRLF. */
static void copy_crlf(obuf *o, const uint8_t *m, size_t a, size_t b)
{
	size_t run = a;
	for (size_t i = a; i < b; i++) {
		if (m[i] != '\r' && m[i] != '\n')
			continue;
		ob_put(o, m + run, i - run);
		ob_str(o, "\r\n");
		if (m[i] == '\r' && i + 1 < b && m[i + 1] == '\n')
			i++;
		run = i + 1;
	}
	ob_put(o, m + run, b - run);
}

/* m[0..n) could travel as message/rfc822 in 8bit: no NUL, no line over
 * LINE_MAX_OCTETS (any of CRLF, LF, CR ending a line). */
static bool sendable_8bit(const uint8_t *m, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (m[i] == '\0')
			return false;
		if (m[i] == '\r' || m[i] == '\n') {
			col = 0;
			continue;
		}
		if (++col > LINE_MAX_OCTETS)
			return false;
	}
	return true;
}

/* The header section of the original: whole fields while they fit
 * DSN_MAX_HEADERS, each line cut at LINE_MAX_OCTETS, NUL as '?'. */
static void headers_copy(obuf *o, const uint8_t *m, size_t n)
{
	mail_header_iter it;
	mail_field f;
	size_t used = 0;
	mail_header_iter_init(&it, m, n);
	while (mail_header_next(&it, &f) == 1) {
		if (used + f.len > DSN_MAX_HEADERS)
			break;
		used += f.len;
		size_t col = 0;
		for (size_t i = f.off; i < f.off + f.len; i++) {
			uint8_t c = m[i];
			if (c == '\r' || c == '\n') {
				ob_str(o, "\r\n");
				if (c == '\r' && i + 1 < f.off + f.len &&
				    m[i + 1] == '\n')
					i++;
				col = 0;
				continue;
			}
			if (col >= LINE_MAX_OCTETS) /* cut the rest */
				continue;
			ob_byte(o, c == '\0' ? '?' : c);
			col++;
		}
		if (col > 0)
			ob_str(o, "\r\n"); /* the last line of the original */
	}
}

static bool contains(const obuf *o, const char *s, size_t n)
{
	if (o->len < n || n == 0)
		return false;
	const uint8_t *p = o->p, *end = o->p + o->len;
	while ((p = memchr(p, s[0], (size_t)(end - p) - (n - 1))) != NULL) {
		if (memcmp(p, s, n) == 0)
			return true;
		if ((size_t)(end - ++p) < n)
			break;
	}
	return false;
}

static bool has_8bit(const obuf *o)
{
	for (size_t i = 0; i < o->len; i++)
		if (o->p[i] >= 0x80)
			return true;
	return false;
}

static const char *check(const dsn_report *r)
{
	if (r->n == 0 || r->n > DSN_MAX_RCPTS || r->rcpts == NULL)
		return "a DSN has 1 to 1000 recipients";
	if (!hostname_ok(r->reporting_mta, HOST_MAX))
		return "invalid Reporting-MTA host name";
	if (!hostname_ok(r->msgid_domain, 253))
		return "invalid Message-ID domain";
	if (r->to == NULL || r->to[0] == '\0')
		return "no DSN to the null sender";
	if (!header_addr_ok(r->to))
		return "invalid To address (the original sender)";
	if (!header_addr_ok(r->from))
		return "invalid From address";
	if (r->random16 == NULL)
		return "no random bytes";
	if (r->original == NULL && r->original_len != 0)
		return "no original message";
	if (r->original_len > DSN_MAX_ORIGINAL)
		return "the original is over 1 GiB";
	for (size_t i = 0; i < r->n; i++) {
		const dsn_rcpt *p = &r->rcpts[i];
		if (p->final_rcpt == NULL || p->final_rcpt[0] == '\0' ||
		    strnlen(p->final_rcpt, DSN_ADDR_MAX + 1) > DSN_ADDR_MAX)
			return "a recipient address is missing or too long";
		if (p->orcpt != NULL &&
		    strnlen(p->orcpt, DSN_ADDR_MAX + 1) > DSN_ADDR_MAX)
			return "an original recipient is too long";
		if (dsn_action_name(p->action) == NULL)
			return "invalid action";
		if (!status_ok(p->status))
			return "invalid status (not class.subject.detail)";
	}
	return NULL;
}

int dsn_build(const dsn_report *r, uint8_t **out_r, size_t *len_r,
	      const char **error_r)
{
	static const char hex[] = "0123456789abcdef";
	const char *dummy, *why;
	obuf human = {0}, ds = {0}, orig = {0}, out = {0};
	bool has[5] = {false};
	char id[33], boundary[64];

	if (error_r == NULL)
		error_r = &dummy;
	*out_r = NULL;
	*len_r = 0;
	if (r == NULL) {
		*error_r = "no report";
		return -1;
	}
	if ((why = check(r)) != NULL) {
		*error_r = why;
		return -1;
	}
	for (size_t i = 0; i < r->n; i++)
		has[r->rcpts[i].action] = true;
	for (size_t i = 0; i < 16; i++) {
		id[2 * i] = hex[r->random16[i] >> 4];
		id[2 * i + 1] = hex[r->random16[i] & 15];
	}
	id[32] = '\0';

	human.max = 64 * 1024 + r->n * RCPT_BUDGET;
	ds.max = 64 * 1024 + r->n * RCPT_BUDGET;
	orig.max = 2 * (r->original_len > DSN_MAX_HEADERS ?
			r->original_len : DSN_MAX_HEADERS) + 16;
	if (human_part(r, &human, has) < 0 || status_part(r, &ds) < 0) {
		*error_r = "a date outside 1900..9999";
		goto bad;
	}
	const uint8_t *m = r->original != NULL ? r->original :
		(const uint8_t *)"";
	bool full = r->full && r->original_len <= r->max_original &&
		    sendable_8bit(m, r->original_len);
	if (full) {
		copy_crlf(&orig, m, 0, r->original_len);
		if (orig.len > 0 && orig.p[orig.len - 1] != '\n')
			ob_str(&orig, "\r\n");
	} else {
		headers_copy(&orig, m, r->original_len);
	}

	/* a boundary no part contains */
	size_t bl = 0;
	for (unsigned t = 0;; t++) {
		int k = t == 0 ? snprintf(boundary, sizeof(boundary), "dsn_%s",
					  id)
			       : snprintf(boundary, sizeof(boundary), "dsn_%s_%u",
					  id, t);
		if (k < 0 || (size_t)k >= sizeof(boundary))
			abort();
		bl = (size_t)k;
		if (!contains(&human, boundary, bl) &&
		    !contains(&ds, boundary, bl) &&
		    !contains(&orig, boundary, bl))
			break;
		if (t + 1 == BOUNDARY_TRIES) {
			*error_r = "no boundary found that the parts lack";
			goto bad;
		}
	}

	out.max = human.len + ds.len + orig.len + 8192 + 2 * DSN_ADDR_MAX;
	if (date_line(&out, "Date", r->now) < 0) {
		*error_r = "a date outside 1900..9999";
		goto bad;
	}
	ob_str(&out, "From: Mail Delivery System <");
	ob_str(&out, r->from);
	ob_str(&out, ">\r\nTo: ");
	ob_str(&out, r->to);
	ob_str(&out, "\r\nSubject: ");
	ob_str(&out, has[DSN_FAILED] ? "Undelivered Mail Returned to Sender" :
		     has[DSN_DELAYED] ? "Delayed Mail (still being retried)" :
		     "Successful Mail Delivery Report");
	ob_str(&out, "\r\nMessage-ID: <");
	ob_str(&out, id);
	ob_str(&out, "@");
	ob_str(&out, r->msgid_domain);
	ob_str(&out, ">\r\nAuto-Submitted: auto-replied\r\n"
		     "MIME-Version: 1.0\r\n"
		     "Content-Type: multipart/report; "
		     "report-type=delivery-status;\r\n\tboundary=\"");
	ob_put(&out, boundary, bl);
	ob_str(&out, "\"\r\n\r\nThis is a MIME-encapsulated message.\r\n");

	ob_str(&out, "\r\n--");
	ob_put(&out, boundary, bl);
	ob_str(&out, "\r\nContent-Description: Notification\r\n"
		     "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	ob_put(&out, human.p, human.len);

	ob_str(&out, "\r\n--");
	ob_put(&out, boundary, bl);
	ob_str(&out, "\r\nContent-Description: Delivery report\r\n"
		     "Content-Type: message/delivery-status\r\n\r\n");
	ob_put(&out, ds.p, ds.len);

	ob_str(&out, "\r\n--");
	ob_put(&out, boundary, bl);
	ob_str(&out, full ? "\r\nContent-Description: Original message\r\n"
			    "Content-Type: message/rfc822\r\n"
			  : "\r\nContent-Description: Original message "
			    "header\r\nContent-Type: text/rfc822-headers\r\n");
	if (has_8bit(&orig))
		ob_str(&out, "Content-Transfer-Encoding: 8bit\r\n");
	ob_str(&out, "\r\n");
	ob_put(&out, orig.p, orig.len);

	ob_str(&out, "\r\n--");
	ob_put(&out, boundary, bl);
	ob_str(&out, "--\r\n");

	ob_free(&human);
	ob_free(&ds);
	ob_free(&orig);
	*out_r = out.p;
	*len_r = out.len;
	return 0;
bad:
	ob_free(&human);
	ob_free(&ds);
	ob_free(&orig);
	ob_free(&out);
	return -1;
}
