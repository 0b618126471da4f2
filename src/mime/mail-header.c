/*
 * mail-header.c — the header section iterator and field helpers
 * (mail-header.h).
 *
 * Each call looks at the line at it->pos once: it finds the line's end
 * with memchr, decides field / malformed field / end of the header from
 * its first bytes, then takes the continuation lines that follow.  Every
 * byte of the header section is looked at a bounded number of times (the
 * line scan, the name scan, the NUL scan), so a header of a million
 * fields or one field of ten megabytes costs the same per byte.  Nothing
 * is allocated and nothing is buffered: fields are offsets into msg.
 *
 * Limits: none here; the header section is what it is.  Callers cap the
 * number of fields and the bytes (mime.c: mime_limits.max_header).
 */
#include "mail-header.h"

#include <stdlib.h>
#include <string.h>

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* A byte of a field name: printable ASCII except ':' (RFC 5322 ftext). */
static bool is_ftext(uint8_t c)
{
	return c >= 33 && c <= 126 && c != ':';
}

/* The line starting at pos (< len): *next_r is the offset after its LF (or
 * len), and the return value the end of its content (before CRLF, LF, or a
 * CR that ends msg). */
static size_t line_at(const uint8_t *msg, size_t len, size_t pos,
		      size_t *next_r)
{
	const uint8_t *lf = memchr(msg + pos, '\n', len - pos);
	size_t ce;
	if (lf != NULL) {
		ce = (size_t)(lf - msg);
		*next_r = ce + 1;
	} else {
		ce = len;
		*next_r = len;
	}
	if (ce > pos && msg[ce - 1] == '\r')
		ce--;
	return ce;
}

void mail_header_iter_init(mail_header_iter *it, const uint8_t *msg,
			   size_t len)
{
	memset(it, 0, sizeof(*it));
	it->msg = msg;
	it->len = len;
}

static int header_end(mail_header_iter *it, size_t body_off, bool separator)
{
	it->done = true;
	it->body_off = body_off;
	it->no_separator = !separator;
	it->pos = body_off;
	return 0;
}

int mail_header_next(mail_header_iter *it, mail_field *f_r)
{
	const uint8_t *msg = it->msg;
	size_t len = it->len, pos = it->pos, next;

	if (it->done)
		return 0;
	if (pos >= len)
		return header_end(it, len, false);
	size_t ce = line_at(msg, len, pos, &next);
	if (ce == pos) /* an empty line */
		return header_end(it, next, true);

	memset(f_r, 0, sizeof(*f_r));
	f_r->off = pos;
	f_r->value_off = pos;
	if (is_blank(msg[pos])) {
		/* only possible on the first line: any later line that starts
		 * with a blank was taken as a continuation */
		f_r->malformed = true;
	} else {
		size_t i = pos;
		while (i < ce && is_ftext(msg[i]))
			i++;
		size_t name_end = i;
		while (i < ce && is_blank(msg[i]))
			i++;
		if (name_end > pos && i < ce && msg[i] == ':') {
			f_r->name_len = name_end - pos;
			f_r->value_off = i + 1;
		} else if (ce - pos >= 5 && memcmp(msg + pos, "From ", 5) == 0) {
			f_r->malformed = true;
		} else {
			/* neither a field nor a continuation: the body starts
			 * here (Postfix) */
			return header_end(it, pos, false);
		}
	}
	/* continuation lines */
	while (next < len && is_blank(msg[next]))
		(void)line_at(msg, len, next, &next);
	f_r->len = next - pos;
	f_r->nul = memchr(msg + pos, '\0', f_r->len) != NULL;
	it->pos = next;
	it->fields++;
	if (f_r->nul)
		it->nul_seen = true;
	if (f_r->malformed)
		it->malformed_seen = true;
	return 1;
}

static uint8_t ascii_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

bool mail_field_is(const uint8_t *msg, const mail_field *f, const char *name)
{
	size_t n = strlen(name);
	if (f->malformed || f->name_len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(msg[f->off + i]) !=
		    ascii_lower((uint8_t)name[i]))
			return false;
	return true;
}

/* msg[i] (i < end) is part of a line end: an LF, a CR before an LF, or a
 * CR at the end of the field (a message cut between CR and LF). */
static bool is_eol_at(const uint8_t *msg, size_t i, size_t end)
{
	return msg[i] == '\n' ||
	       (msg[i] == '\r' && (i + 1 == end || msg[i + 1] == '\n'));
}

size_t mail_field_unfold(const uint8_t *msg, const mail_field *f, char *out,
			 size_t out_size)
{
	size_t end = f->off + f->len;
	size_t a = f->value_off, b = end;
	while (a < end && (is_blank(msg[a]) || is_eol_at(msg, a, end)))
		a++;
	while (b > a && (is_blank(msg[b - 1]) || is_eol_at(msg, b - 1, end)))
		b--;
	size_t n = 0;
	for (size_t i = a; i < b; i++) {
		if (is_eol_at(msg, i, end))
			continue;
		if (n + 1 < out_size)
			out[n] = (char)msg[i];
		n++;
	}
	if (out_size > 0)
		out[n < out_size ? n : out_size - 1] = '\0';
	return n;
}

/* the mailbox-list reader's blank */
static bool mb_wsp(char c)
{
	return c == ' ' || c == '\t';
}

long mail_mailbox_list(const char *v, size_t n, char *first,
		       size_t *first_len_r, const char **why_r)
{
	char *bare = malloc(n + 1), *angle = malloc(n + 1);
	size_t nb = 0, na = 0;
	bool in_angle = false, had_angle = false;
	long count = 0;
	if (bare == NULL || angle == NULL)
		abort();
	*first_len_r = 0;
	for (size_t i = 0; i <= n; i++) {
		char ch = i < n ? v[i] : ',';
		if (i == n && in_angle) {
			*why_r = "an unclosed '<'";
			goto bad;
		}
		if (ch == '(') {
			size_t depth = 0;
			for (; i < n; i++) {
				if (v[i] == '\\') {
					i++;
				} else if (v[i] == '(') {
					depth++;
				} else if (v[i] == ')' && --depth == 0) {
					break;
				}
			}
			if (i >= n) {
				*why_r = "an unclosed comment";
				goto bad;
			}
			continue;
		}
		char *dst = in_angle ? angle : bare;
		size_t *dn = in_angle ? &na : &nb;
		if (ch == '"' || ch == '[') {
			char close = ch == '"' ? '"' : ']';
			dst[(*dn)++] = ch;
			for (i++; i < n && v[i] != close; i++) {
				if (v[i] == '\\' && i + 1 < n)
					dst[(*dn)++] = v[i++];
				dst[(*dn)++] = v[i];
			}
			if (i >= n) {
				*why_r = "an unclosed quoted string or literal";
				goto bad;
			}
			dst[(*dn)++] = close;
		} else if (ch == '<') {
			if (in_angle || had_angle) {
				*why_r = "a second '<' in one mailbox";
				goto bad;
			}
			in_angle = had_angle = true;
		} else if (ch == '>') {
			if (!in_angle) {
				*why_r = "a '>' without '<'";
				goto bad;
			}
			in_angle = false;
		} else if ((ch == ':' || ch == ';') && !in_angle) {
			*why_r = "a group, not a mailbox";
			goto bad;
		} else if (ch == ',' && !in_angle) {
			const char *a = had_angle ? angle : bare;
			size_t an = had_angle ? na : nb;
			if (an > 0 || had_angle) {
				if (count == 0) {
					memcpy(first, a, an);
					*first_len_r = an;
				}
				count++;
			}
			nb = na = 0;
			had_angle = false;
		} else if (!mb_wsp(ch) && ch != '\r' && ch != '\n') {
			dst[(*dn)++] = ch;
		}
	}
	free(bare);
	free(angle);
	return count;
bad:
	free(bare);
	free(angle);
	return -1;
}
