/*
 * fuzz-imap-msg.c — TESTING.md F10b: what IMAP shows of a message
 * (src/imap/imap-msg.c) for arbitrary bytes taken as the message.
 *
 * Input layout: byte 0 picks a needle length (0..15) taken from the end
 * of the input; the rest is the message.
 *
 * Invariants checked (abort on violation):
 *  - imap_msg_analyze succeeds (the input is far below the output cap) and
 *    gives three strings that are well-formed IMAP: balanced parentheses
 *    outside strings, quoted strings closed with only \" and \\ escapes
 *    and no CR, LF or NUL, literals "{n}\r\n" followed by n bytes, nothing
 *    after the last ')'; the ENVELOPE is a list of exactly 10 elements;
 *    each string within IMAP_MSG_CACHE_MAX; analysing twice gives the
 *    same strings;
 *  - every section kind (whole, HEADER, TEXT, part numbers, MIME,
 *    HEADER.FIELDS, .NOT) succeeds; a slice lies inside the message, a
 *    built result is at most the header plus CRLF; malformed sections
 *    fail with an error;
 *  - the SEARCH helpers do not crash; an empty needle matches every
 *    message with TEXT, and a field with HEADER exactly when it exists.
 */
#include "imap-msg.h"
#include "mail-header.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks s[0..n) as one IMAP value; returns the number of top-level
 * elements of the outer list. */
static size_t check_imap(const char *s, size_t n)
{
	size_t i = 0, depth = 0, top = 0;
	bool closed = false;
	while (i < n) {
		char c = s[i];
		if (closed)
			abort(); /* something after the final ')' */
		if (c == '(') {
			if (depth == 1)
				top++;
			depth++;
			i++;
		} else if (c == ')') {
			if (depth == 0)
				abort();
			if (--depth == 0)
				closed = true;
			i++;
		} else if (c == ' ') {
			if (depth == 0)
				abort();
			i++;
		} else if (c == '"') {
			if (depth == 1)
				top++;
			i++;
			while (i < n && s[i] != '"') {
				if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
					abort();
				if (s[i] == '\\') {
					if (i + 1 >= n ||
					    (s[i + 1] != '"' && s[i + 1] != '\\'))
						abort();
					i++;
				}
				i++;
			}
			if (i >= n)
				abort();
			i++;
		} else if (c == '{') {
			if (depth == 1)
				top++;
			size_t len = 0;
			i++;
			if (i >= n || s[i] < '0' || s[i] > '9')
				abort();
			while (i < n && s[i] >= '0' && s[i] <= '9') {
				len = len * 10 + (size_t)(s[i] - '0');
				if (len > n)
					abort();
				i++;
			}
			if (n - i < 3 || memcmp(s + i, "}\r\n", 3) != 0)
				abort();
			i += 3;
			if (n - i < len)
				abort();
			i += len;
		} else {
			/* an atom: NIL or a number */
			if (depth == 1)
				top++;
			size_t a = i;
			while (i < n && s[i] != ' ' && s[i] != ')' && s[i] != '(')
				i++;
			if (i - a == 3 && memcmp(s + a, "NIL", 3) == 0)
				continue;
			for (size_t k = a; k < i; k++)
				if (s[k] < '0' || s[k] > '9')
					abort();
			if (i == a)
				abort();
		}
	}
	if (!closed)
		abort();
	return top;
}

static void section(const uint8_t *msg, size_t len, const char *s, bool ok)
{
	const uint8_t *out;
	size_t n;
	uint8_t *alloc;
	const char *error = NULL;
	int r = imap_msg_section(msg, len, s, strlen(s), &out, &n, &alloc,
				 &error);
	if (!ok) {
		if (r != -1 || error == NULL)
			abort();
		return;
	}
	if (r != 0)
		abort();
	if (alloc == NULL) {
		if (n > 0 && (out < msg || n > len || out + n > msg + len))
			abort();
	} else {
		if (out != alloc || n > len + 2)
			abort();
		free(alloc);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t nl = data[0] & 15;
	const uint8_t *msg = data + 1;
	size_t len = size - 1;
	if (nl > len)
		nl = len;
	char needle[16];
	memcpy(needle, msg + len - nl, nl);
	needle[nl] = '\0';

	imap_msg_info a, b;
	const char *error = NULL;
	if (imap_msg_analyze(msg, len, &a, &error) != 0)
		abort();
	if (imap_msg_analyze(msg, len, &b, &error) != 0)
		abort();
	const char *sa[] = { a.envelope, a.body, a.bodystructure };
	const char *sb[] = { b.envelope, b.body, b.bodystructure };
	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(sa[k]);
		if (n > IMAP_MSG_CACHE_MAX || strcmp(sa[k], sb[k]) != 0)
			abort();
		size_t top = check_imap(sa[k], n);
		if (k == 0 && top != 10)
			abort();
	}
	if (a.sent != b.sent)
		abort();
	imap_msg_info_free(&a);
	imap_msg_info_free(&b);

	static const char *const good[] = {
		"", "HEADER", "TEXT", "1", "2", "1.MIME", "2.MIME", "1.1",
		"1.2", "2.1", "1.1.1", "3.2.1.MIME", "1.HEADER", "2.TEXT",
		"1.1.HEADER.FIELDS (Subject)", "HEADER.FIELDS (From To)",
		"HEADER.FIELDS.NOT (Received \"Subject\")", "4294967296",
	};
	static const char *const bad[] = {
		"0", "1.", "BODY", "MIME", "1.X", "HEADER.FIELDS",
		"HEADER.FIELDS From", "TEXT ", "1..2",
	};
	for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
		section(msg, len, good[k], true);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		section(msg, len, bad[k], false);

	(void)imap_msg_text_has(msg, len, false, needle, nl);
	(void)imap_msg_header_has(msg, len, "Subject", needle, nl);
	if (!imap_msg_text_has(msg, len, true, "", 0))
		abort();
	mail_header_iter it;
	mail_field f;
	bool has_from = false;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1)
		if (mail_field_is(msg, &f, "From"))
			has_from = true;
	if (imap_msg_header_has(msg, len, "From", "", 0) != has_from)
		abort();
	return 0;
}
