/*
 * maps-value.c — the syntax of keys and values: domains, local parts,
 * address items (addresses, DIDs, @domain), access_map actions and
 * transport_maps destinations.  Pure string checks on bounded input (a
 * logical line is at most MAPS_LINE_MAX bytes); nothing here allocates.
 *
 * Refused: control characters and invalid UTF-8 anywhere; non-ASCII in
 * reply texts (they go into SMTP replies); reply codes outside 4NN/5NN;
 * an enhanced status code whose class differs from the reply code's;
 * transports other than amp, smtp, error and the empty one.
 */
#include "maps-private.h"

#include "amp/amp.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

bool maps_utf8_valid(const char *str, size_t len)
{
	const uint8_t *s = (const uint8_t *)str;
	uint32_t cp;
	for (size_t i = 0, n; i < len; i += n)
		if ((n = util_utf8_seq(s + i, len - i, &cp)) == 0)
			return false;
	return true;
}

static bool label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c >= 0x80;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" */
static bool literal_valid(const char *s, size_t len)
{
	char buf[64];
	uint8_t a[16];
	if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof(buf))
		return false;
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	if (strncasecmp(buf, "ipv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, a) == 1;
	return inet_pton(AF_INET, buf, a) == 1;
}

bool maps_domain_valid(const char *s, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	if (s[0] == '[')
		return literal_valid(s, len);
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (i - start == 0 || i - start > 63)
				return false;
			start = i + 1;
		} else if (!label_char((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

bool maps_local_valid(const char *s, size_t len)
{
	if (len == 0 || len > MAPS_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || c == ',')
			return false;
	}
	return true;
}

bool maps_is_did(const char *s)
{
	return strncasecmp(s, "did:", 4) == 0;
}

const char *maps_item_check(char *item, size_t len, bool at_ok)
{
	if (len == 0)
		return "empty address";
	if (len > MAPS_ADDR_MAX)
		return "address longer than 512 bytes";
	if (maps_is_did(item)) {
		const char *why = NULL;
		for (size_t i = 0; i < len; i++)
			item[i] = maps_lc(item[i]);
		if (amp_did_parse(item, len, NULL, &why) != AMP_OK)
			return why != NULL ? why : "not a valid DID";
		return NULL;
	}
	const char *at = NULL;
	for (size_t i = len; i > 0; i--)
		if (item[i - 1] == '@') {
			at = item + i - 1;
			break;
		}
	if (at == NULL)
		return "not an address (user@domain) or a DID (did:aftersmtp:...)";
	size_t ll = (size_t)(at - item), dl = len - ll - 1;
	if (ll == 0) {
		if (!at_ok)
			return "@domain is allowed only as the first address of "
			       "a value";
	} else if (!maps_local_valid(item, ll)) {
		return "invalid local part";
	}
	if (!maps_domain_valid(at + 1, dl))
		return "invalid domain";
	return NULL;
}

/* ------------------------------------------------------------ access */
const char *maps_action_name(maps_action a)
{
	switch (a) {
	case MAPS_ACT_NONE: return "none";
	case MAPS_ACT_OK: return "OK";
	case MAPS_ACT_REJECT: return "REJECT";
	case MAPS_ACT_DEFER: return "DEFER";
	case MAPS_ACT_DISCARD: return "DISCARD";
	case MAPS_ACT_HOLD: return "HOLD";
	case MAPS_ACT_DUNNO: return "DUNNO";
	}
	return "?";
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An RFC 3463 status "C.S.D" (S, D of 1-3 digits) at s, followed by the
 * end or a blank: its length, else 0. */
static size_t dsn_len(const char *s)
{
	size_t i = 0, d;
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	if (s[1] != '.')
		return 0;
	i = 2;
	for (d = 0; is_digit(s[i]) && d < 4; d++)
		i++;
	if (d == 0 || d > 3 || s[i] != '.')
		return 0;
	i++;
	for (d = 0; is_digit(s[i]) && d < 4; d++)
		i++;
	if (d == 0 || d > 3 || (s[i] != '\0' && !maps_blank(s[i])))
		return 0;
	return i;
}

static const char *text_check(const char *s)
{
	size_t n = strlen(s);
	if (n > MAPS_TEXT_MAX)
		return "text longer than 400 bytes";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return "text must be printable ASCII (it goes into an "
			       "SMTP reply)";
	return NULL;
}

static const char *skip_blanks(const char *s)
{
	while (maps_blank(*s))
		s++;
	return s;
}

/* The text after an action word: for a reply (cls '4' or '5') an optional
 * status code of that class, then text; DISCARD and HOLD (cls 0) take the
 * text as it is (it is only logged). */
static const char *take_text(const char *s, char cls, maps_access *r)
{
	s = skip_blanks(s);
	size_t dl = cls != 0 ? dsn_len(s) : 0;
	if (dl > 0) {
		if (s[0] != cls)
			return "the enhanced status code's class differs from "
			       "the reply code's";
		memcpy(r->dsn, s, dl);
		r->dsn[dl] = '\0';
		r->dsn_given = true;
		s = skip_blanks(s + dl);
	} else if (cls != 0) {
		snprintf(r->dsn, sizeof(r->dsn), "%c.7.1", cls);
	}
	const char *why = text_check(s);
	if (why != NULL)
		return why;
	size_t n = strlen(s);
	while (n > 0 && maps_blank(s[n - 1]))
		n--;
	memcpy(r->text, s, n);
	r->text[n] = '\0';
	return NULL;
}

int maps_access_parse(const char *value, maps_access *r, const char **why_r)
{
	static const struct {
		const char *word;
		maps_action action;
		unsigned code;
		char cls;     /* status class; 0: no code */
		bool text_ok;
	} words[] = {
		{ "OK", MAPS_ACT_OK, 0, 0, false },
		{ "REJECT", MAPS_ACT_REJECT, MAPS_REJECT_CODE, '5', true },
		{ "DEFER", MAPS_ACT_DEFER, MAPS_DEFER_CODE, '4', true },
		{ "DISCARD", MAPS_ACT_DISCARD, 0, 0, true },
		{ "HOLD", MAPS_ACT_HOLD, 0, 0, true },
		{ "DUNNO", MAPS_ACT_DUNNO, 0, 0, false },
	};
	const char *why = NULL;
	memset(r, 0, sizeof(*r));
	const char *s = skip_blanks(value);
	size_t wl = 0;
	while (s[wl] != '\0' && !maps_blank(s[wl]))
		wl++;
	if (wl == 0) {
		why = "empty action";
		goto fail;
	}
	/* All digits: OK (Postfix), except a bare 4NN / 5NN, which looks like
	 * a reply code with its text forgotten. */
	bool digits = true;
	for (size_t i = 0; i < wl; i++)
		digits = digits && is_digit(s[i]);
	if (digits) {
		if (wl == 3 && (s[0] == '4' || s[0] == '5')) {
			if (*skip_blanks(s + 3) == '\0') {
				why = "a reply code needs a text (4NN text, 5NN "
				      "text); an all-numerical value means OK";
				goto fail;
			}
			r->action = s[0] == '4' ? MAPS_ACT_DEFER : MAPS_ACT_REJECT;
			r->code = (unsigned)((s[0] - '0') * 100 +
					     (s[1] - '0') * 10 + (s[2] - '0'));
			why = take_text(s + 3, s[0], r);
			if (why == NULL && r->text[0] == '\0')
				why = "a reply code needs a text";
			if (why != NULL)
				goto fail;
			return 0;
		}
		if (*skip_blanks(s + wl) != '\0') {
			why = "reply codes are 4NN or 5NN";
			goto fail;
		}
		r->action = MAPS_ACT_OK;
		return 0;
	}
	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
		if (strlen(words[k].word) != wl ||
		    strncasecmp(s, words[k].word, wl) != 0)
			continue;
		r->action = words[k].action;
		r->code = words[k].code;
		if (!words[k].text_ok) {
			if (*skip_blanks(s + wl) != '\0') {
				why = "this action takes no text";
				goto fail;
			}
			return 0;
		}
		why = take_text(s + wl, words[k].cls, r);
		if (why != NULL)
			goto fail;
		return 0;
	}
	why = "unknown action (OK, REJECT, DEFER, DISCARD, HOLD, DUNNO, "
	      "4NN text, 5NN text, or all-numerical)";
fail:
	memset(r, 0, sizeof(*r));
	if (why_r != NULL)
		*why_r = why;
	return -1;
}

/* ------------------------------------------------------------ transport */
static bool host_char(char c, bool bracketed)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       is_digit(c) || c == '.' || c == '-' || c == '_' ||
	       (bracketed && c == ':');
}

static bool port_parse(const char *s, uint16_t *port_r)
{
	uint64_t v;
	if (s[0] == '0' || !util_parse_u64(s, 1, 65535, &v))
		return false;
	*port_r = (uint16_t)v;
	return true;
}

int maps_transport_parse(const char *value, maps_transport *r,
			 const char **why_r)
{
	const char *why = NULL;
	memset(r, 0, sizeof(*r));
	const char *s = skip_blanks(value);
	size_t n = strlen(s);
	while (n > 0 && maps_blank(s[n - 1]))
		n--;
	const char *colon = memchr(s, ':', n);
	size_t tl = colon != NULL ? (size_t)(colon - s) : n;
	if (tl >= sizeof(r->transport)) {
		why = "unknown transport (amp, smtp, error, or none)";
		goto fail;
	}
	for (size_t i = 0; i < tl; i++)
		r->transport[i] = maps_lc(s[i]);
	r->transport[tl] = '\0';
	if (strcmp(r->transport, "") != 0 && strcmp(r->transport, "amp") != 0 &&
	    strcmp(r->transport, "smtp") != 0 &&
	    strcmp(r->transport, "error") != 0) {
		why = "unknown transport (amp, smtp, error, or none)";
		goto fail;
	}
	const char *nh = colon != NULL ? colon + 1 : s + n;
	size_t nl = (size_t)(s + n - nh);
	if (strcmp(r->transport, "error") == 0) {
		char text[MAPS_TEXT_MAX + 2];
		if (nl > MAPS_TEXT_MAX) {
			why = "text longer than 400 bytes";
			goto fail;
		}
		memcpy(text, nh, nl);
		text[nl] = '\0';
		if ((why = text_check(text)) != NULL)
			goto fail;
		memcpy(r->text, text, nl + 1);
		return 0;
	}
	if (nl == 0)
		return 0;
	const char *host = nh, *rest;
	size_t hl;
	if (nh[0] == '[') {
		const char *close = memchr(nh, ']', nl);
		if (close == NULL) {
			why = "no ']' after '[host'";
			goto fail;
		}
		host = nh + 1;
		hl = (size_t)(close - host);
		rest = close + 1;
		r->brackets = true;
	} else {
		const char *c2 = memchr(nh, ':', nl);
		hl = c2 != NULL ? (size_t)(c2 - nh) : nl;
		rest = nh + hl;
	}
	if (hl == 0 || hl > MAPS_HOST_MAX) {
		why = "the nexthop host is empty or longer than 255 bytes";
		goto fail;
	}
	for (size_t i = 0; i < hl; i++)
		if (!host_char(host[i], r->brackets)) {
			why = "the nexthop host has a character outside "
			      "A-Z a-z 0-9 . - _ (and ':' inside [])";
			goto fail;
		}
	size_t restl = (size_t)(s + n - rest);
	if (restl > 0) {
		char port[8];
		if (rest[0] != ':' || restl - 1 >= sizeof(port)) {
			why = "expected :PORT after the host";
			goto fail;
		}
		memcpy(port, rest + 1, restl - 1);
		port[restl - 1] = '\0';
		if (!port_parse(port, &r->port)) {
			why = "the port must be a number from 1 to 65535";
			goto fail;
		}
	}
	for (size_t i = 0; i < hl; i++)
		r->host[i] = maps_lc(host[i]);
	r->host[hl] = '\0';
	return 0;
fail:
	memset(r, 0, sizeof(*r));
	if (why_r != NULL)
		*why_r = why;
	return -1;
}
