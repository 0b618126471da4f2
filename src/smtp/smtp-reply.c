/*
 * smtp-reply.c — the SMTP reply parser (smtp-reply.h).
 *
 * A line is gathered in the parser's fixed line buffer until its LF (never
 * more than SMTP_REPLY_LINE_MAX octets: the check comes before the copy),
 * then checked and its text appended to the reply being built.  The reply
 * is returned when its last line ("NNN " or "NNN") has been read; the
 * octets after it are left to the caller, so a reply never swallows the
 * next one (the client discards them itself after STARTTLS, T5).
 */
#include "smtp-reply.h"

#include <string.h>

void smtp_reply_parser_init(smtp_reply_parser *p)
{
	p->line_len = 0;
	p->fresh = true;
	p->error = NULL;
	p->reply.code = 0;
	p->reply.enh[0] = '\0';
	p->reply.n_lines = 0;
	p->reply.truncated = false;
	p->reply.text[0] = '\0';
	p->reply.text_len = 0;
}

bool smtp_reply_parser_idle(const smtp_reply_parser *p)
{
	return p->line_len == 0 && p->fresh && p->error == NULL;
}

const char *smtp_reply_parser_error(const smtp_reply_parser *p)
{
	return p->error;
}

const char *smtp_reply_line_text(const smtp_reply *r, size_t i, size_t *len_r)
{
	if (i >= r->n_lines) {
		*len_r = 0;
		return "";
	}
	*len_r = r->line[i].len;
	return r->text + r->line[i].off;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* 1-3 digits at s[*i..n); advances *i. */
static bool digits13(const char *s, size_t n, size_t *i)
{
	size_t k = 0;
	while (*i < n && k < 4 && is_digit((uint8_t)s[*i])) {
		(*i)++;
		k++;
	}
	return k >= 1 && k <= 3;
}

/* The enhanced status code at the start of the first line, if any. */
static void take_enh(smtp_reply *r)
{
	const char *s = r->text + r->line[0].off;
	size_t n = r->line[0].len, i = 0;
	r->enh[0] = '\0';
	if (n < 5 || r->code / 100 == 3 ||
	    (unsigned)(s[0] - '0') != r->code / 100)
		return; /* RFC 3463 classes are 2, 4 and 5 */
	i = 1;
	if (s[i++] != '.' || !digits13(s, n, &i))
		return;
	if (i >= n || s[i++] != '.' || !digits13(s, n, &i))
		return;
	if (i < n && s[i] != ' ')
		return;
	/* at most 1 + 1 + 3 + 1 + 3 = 9 octets */
	memcpy(r->enh, s, i);
	r->enh[i] = '\0';
}

/* Append a line's text to the reply, within SMTP_REPLY_KEEP_MAX. */
static void append_text(smtp_reply *r, const uint8_t *t, size_t n)
{
	if (r->n_lines > 0) {
		if (r->text_len < SMTP_REPLY_KEEP_MAX)
			r->text[r->text_len++] = '\n';
		else
			r->truncated = true;
	}
	size_t room = SMTP_REPLY_KEEP_MAX - r->text_len;
	size_t k = n < room ? n : room;
	if (k < n)
		r->truncated = true;
	r->line[r->n_lines].off = (uint32_t)r->text_len;
	r->line[r->n_lines].len = (uint32_t)k;
	memcpy(r->text + r->text_len, t, k);
	r->text_len += k;
	r->text[r->text_len] = '\0';
	r->n_lines++;
}

/* One whole line (without its LF).  Returns false with p->error set. */
static bool take_line(smtp_reply_parser *p, const uint8_t *l, size_t n,
		      bool *complete_r)
{
	smtp_reply *r = &p->reply;
	bool last;
	*complete_r = false;
	if (n > 0 && l[n - 1] == '\r')
		n--;
	for (size_t i = 0; i < n; i++) {
		if (l[i] == '\0') {
			p->error = "NUL byte in a reply";
			return false;
		}
		if (l[i] == '\r') {
			p->error = "bare CR in a reply";
			return false;
		}
	}
	if (n < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2])) {
		p->error = "reply code is not three digits";
		return false;
	}
	unsigned code = (unsigned)(l[0] - '0') * 100 +
			(unsigned)(l[1] - '0') * 10 + (unsigned)(l[2] - '0');
	if (code < 200 || code > 599) {
		p->error = "reply code out of range";
		return false;
	}
	if (n == 3 || l[3] == ' ') {
		last = true;
	} else if (l[3] == '-') {
		last = false;
	} else {
		p->error = "bad separator after the reply code";
		return false;
	}
	if (p->fresh) {
		r->code = code;
		r->enh[0] = '\0';
		r->n_lines = 0;
		r->truncated = false;
		r->text_len = 0;
		r->text[0] = '\0';
		p->fresh = false;
	} else if (code != r->code) {
		p->error = "continuation with a different code";
		return false;
	}
	if (r->n_lines >= SMTP_REPLY_LINES_MAX) {
		p->error = "too many lines in one reply";
		return false;
	}
	append_text(r, l + (n > 3 ? 4 : 3), n > 3 ? n - 4 : 0);
	if (last) {
		take_enh(r);
		p->fresh = true;
		*complete_r = true;
	}
	return true;
}

smtp_reply_status smtp_reply_parse(smtp_reply_parser *p, const uint8_t *data,
				   size_t len, size_t *used_r,
				   const smtp_reply **reply_r)
{
	size_t i = 0;
	*used_r = 0;
	*reply_r = NULL;
	if (p->error != NULL)
		return SMTP_REPLY_ERROR;
	while (i < len) {
		const uint8_t *nl = memchr(data + i, '\n', len - i);
		size_t take = nl != NULL ? (size_t)(nl - (data + i)) : len - i;
		/* room for the line's octets; its LF makes it at most
		 * SMTP_REPLY_LINE_MAX */
		size_t room = SMTP_REPLY_LINE_MAX - 1 - p->line_len;
		if (take > room) {
			p->error = "reply line too long";
			*used_r = i + room;
			return SMTP_REPLY_ERROR;
		}
		memcpy(p->line + p->line_len, data + i, take);
		p->line_len += take;
		i += take;
		if (nl == NULL)
			break;
		i++; /* the LF */
		bool complete;
		bool ok = take_line(p, p->line, p->line_len, &complete);
		p->line_len = 0;
		if (!ok) {
			*used_r = i;
			return SMTP_REPLY_ERROR;
		}
		if (complete) {
			*used_r = i;
			*reply_r = &p->reply;
			return SMTP_REPLY_OK;
		}
	}
	*used_r = len;
	return SMTP_REPLY_NEED_MORE;
}
