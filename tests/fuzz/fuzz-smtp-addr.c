/*
 * fuzz-smtp-addr.c — libFuzzer target for src/smtp/smtp-addr.c (TESTING.md
 * F1 and F5): RFC 5321 paths and ESMTP parameters, as the argument of
 * MAIL FROM: / RCPT TO: arrives.
 *
 * Input: byte 0 chooses the context (bit 0: MAIL, so <> is allowed; bit 1:
 * SMTPUTF8 for the path; bits 2-5: the offer's CHUNKING, SMTPUTF8, DSN,
 * 8BITMIME; bits 6-7: the SIZE limit); the rest is the argument: a path,
 * then the parameters (when the path fails, the whole argument is parsed
 * as parameters).
 *
 * Properties, each checked in this file without the module's help:
 *  - an accepted path lies within 256 octets from "<" to ">", its parts
 *    within their limits, free of controls, 8-bit only with SMTPUTF8 and
 *    then flagged; its domain is LDH labels or an address literal; an
 *    IPv4 literal is accepted exactly when inet_pton(AF_INET) takes it, an
 *    IPv6 one exactly when inet_pton(AF_INET6) takes it and RFC 5321's
 *    group counts hold ("::" stands for two groups or more); domain_lc is
 *    the ASCII lower case of domain;
 *  - "<" canonical ">" parses to the same path (round trip), and ASCII
 *    paths parse the same with or without SMTPUTF8;
 *  - accepted parameters are well formed, upper-cased, unique, and print
 *    back to a line that parses to the same parameters;
 *  - the MAIL and RCPT checks accept only keywords of offered extensions,
 *    report a first unknown keyword as unknown, keep SIZE within the
 *    limit, decode ENVID as a plain xtext decoder does, never combine
 *    NOTIFY=NEVER, and accept no less when more is offered;
 *  - every refusal carries a reason.
 */
#include "smtp-addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-smtp-addr: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                          \
	do {                                 \
		if (!(cond))                 \
			fail(#cond, __LINE__); \
	} while (0)

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static bool is_ldh(char c)
{
	c = lower(c);
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* ------------------------------------------------------------------ paths */

/* The RFC 5321 IPv6 literal, told with inet_pton and counting groups. */
static bool ipv6_reference(const char *x)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET6, x, buf) != 1)
		return false;
	if (strstr(x, "::") == NULL)
		return true; /* inet_pton wants 8 groups, or 6 and IPv4 */
	size_t groups = 0;
	bool v4 = strchr(x, '.') != NULL;
	for (const char *p = x; *p != '\0';) {
		size_t n = strcspn(p, ":");
		if (n > 0 && memchr(p, '.', n) == NULL)
			groups++;
		p += n;
		if (*p == ':')
			p++;
	}
	return groups <= (v4 ? 4u : 6u);
}

static bool literal_reference(const char *x)
{
	unsigned char buf[16];
	if (strncasecmp(x, "IPv6:", 5) == 0)
		return ipv6_reference(x + 5);
	return strchr(x, ':') == NULL && inet_pton(AF_INET, x, buf) == 1;
}

static void check_domain(const smtp_path *p, bool utf8)
{
	const char *d = p->domain;
	size_t n = strlen(d);
	CHECK(n <= SMTP_DOMAIN_MAX);
	for (size_t i = 0; i <= n; i++)
		CHECK(p->domain_lc[i] == lower(d[i]));
	CHECK(p->literal == (n > 0 && d[0] == '['));
	if (n == 0)
		return;
	if (p->literal) {
		char x[SMTP_DOMAIN_MAX + 1];
		CHECK(n >= 3 && d[n - 1] == ']');
		memcpy(x, d + 1, n - 2);
		x[n - 2] = '\0';
		CHECK(literal_reference(x));
		return;
	}
	/* LDH labels (UTF-8 octets only with SMTPUTF8), 1..63 octets */
	const char *l = d;
	for (;;) {
		size_t k = strcspn(l, ".");
		CHECK(k >= 1 && k <= 63);
		CHECK(l[0] != '-' && l[k - 1] != '-');
		for (size_t i = 0; i < k; i++) {
			if ((unsigned char)l[i] >= 0x80)
				CHECK(utf8);
			else
				CHECK(is_ldh(l[i]));
		}
		if (l[k] == '\0')
			break;
		l += k + 1;
	}
}

static bool has8(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static void check_path(const char *s, size_t len, bool mail, bool utf8)
{
	smtp_path p, q;
	size_t used = 1, qused;
	const char *why = NULL;
	smtp_addr_err e = smtp_path_parse(s, len, mail, utf8, &p, &used, &why);
	if (e != SMTP_ADDR_OK) {
		CHECK(why != NULL && used == 0);
		CHECK(e == SMTP_ADDR_SYNTAX || e == SMTP_ADDR_TOO_LONG ||
		      e == SMTP_ADDR_8BIT || e == SMTP_ADDR_ROUTE);
		if (e == SMTP_ADDR_8BIT)
			CHECK(!utf8);
		/* 8BIT only when there is an 8-bit octet */
		if (e == SMTP_ADDR_8BIT) {
			bool any = false;
			for (size_t i = 0; i < len; i++)
				any |= (unsigned char)s[i] >= 0x80;
			CHECK(any);
		}
		return;
	}
	CHECK(why == NULL);
	CHECK(used >= 2 && used <= len && used <= SMTP_PATH_MAX);
	CHECK(s[0] == '<' && s[used - 1] == '>');
	if (p.null) {
		CHECK(mail && used == 2);
		CHECK(p.local[0] == '\0' && p.domain[0] == '\0');
		return;
	}
	size_t ll = strlen(p.local);
	CHECK(ll >= 1 && ll <= SMTP_LOCAL_MAX);
	for (size_t i = 0; i < ll; i++) {
		unsigned char c = (unsigned char)p.local[i];
		CHECK(c >= 32 && c != 127);
		CHECK(c < 0x80 || utf8);
	}
	CHECK(p.utf8 == (has8(p.local) || has8(p.domain)));
	if (p.domain[0] == '\0')
		CHECK(!mail && strcasecmp(p.local, "postmaster") == 0);
	check_domain(&p, utf8);

	/* round trip through the canonical form */
	char out[SMTP_PATH_MAX + 1], again[SMTP_PATH_MAX + 3];
	CHECK(smtp_path_format(&p, out, sizeof(out)));
	size_t ol = strlen(out);
	CHECK(ol + 2 <= used);
	again[0] = '<';
	memcpy(again + 1, out, ol);
	again[ol + 1] = '>';
	CHECK(smtp_path_parse(again, ol + 2, mail, utf8, &q, &qused, &why) ==
	      SMTP_ADDR_OK);
	CHECK(qused == ol + 2);
	CHECK(memcmp(&p, &q, sizeof(p)) == 0);

	/* SMTPUTF8 changes nothing for ASCII, and 8-bit needs it */
	e = smtp_path_parse(s, len, mail, !utf8, &q, &qused, &why);
	if (!p.utf8) {
		CHECK(e == SMTP_ADDR_OK && qused == used);
		CHECK(memcmp(&p, &q, sizeof(p)) == 0);
	} else {
		CHECK(e == SMTP_ADDR_8BIT);
	}
}

/* Literals straight from the input: "<a@[" x "]>" is accepted exactly when
 * the reference takes x. */
static void check_literal(const char *s, size_t len)
{
	char x[64], path[80];
	smtp_path p;
	size_t used;
	const char *why;
	if (len == 0 || len >= sizeof(x))
		return;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == '[' || s[i] == ']' ||
		    s[i] == '\\')
			return;
	memcpy(x, s, len);
	x[len] = '\0';
	int n = snprintf(path, sizeof(path), "<a@[%s]>", x);
	CHECK(n > 0 && (size_t)n < sizeof(path));
	bool ok = smtp_path_parse(path, (size_t)n, false, false, &p, &used,
				  &why) == SMTP_ADDR_OK;
	CHECK(ok == literal_reference(x));
}

/* ------------------------------------------------------------- parameters */

static bool value_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > SMTP_PARAM_VALUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 33 || c == '=' || c == 127)
			return false;
	}
	return true;
}

/* The plain reading of xtext: "+XX" is a hex octet, anything else itself;
 * NULL when malformed. */
static const char *xtext_reference(const char *v, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; v[i] != '\0'; i++) {
		unsigned x;
		char c = v[i];
		if (c == '+') {
			char hex[3] = { v[i + 1], v[i + 1] ? v[i + 2] : 0, 0 };
			char *end;
			if (hex[0] == 0 || hex[1] == 0 || hex[0] == '-' ||
			    hex[0] == '+' || hex[0] == ' ' || hex[1] == ' ')
				return NULL;
			x = (unsigned)strtoul(hex, &end, 16);
			if (*end != '\0')
				return NULL;
			c = (char)x;
			i += 2;
		}
		if (o + 1 >= size)
			return NULL;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

static const char *const mail_keys[] = { "SIZE", "BODY", "SMTPUTF8", "RET",
					  "ENVID" };

static bool is_mail_key(const char *k)
{
	for (size_t i = 0; i < 5; i++)
		if (strcmp(k, mail_keys[i]) == 0)
			return true;
	return false;
}

static const smtp_param *find(const smtp_params *ps, const char *k)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i].key, k) == 0)
			return &ps->p[i];
	return NULL;
}

static void check_mail(const smtp_params *ps, const smtp_offer *o)
{
	smtp_mail_params m, m2;
	const char *why = NULL;
	smtp_param_err e = smtp_params_check_mail(ps, o, &m, &why);
	CHECK((e == SMTP_PARAM_OK) == (why == NULL));
	if (ps->n > 0 && !is_mail_key(ps->p[0].key))
		CHECK(e == SMTP_PARAM_UNKNOWN);
	if (e != SMTP_PARAM_OK) {
		CHECK(e == SMTP_PARAM_UNKNOWN || e == SMTP_PARAM_BAD_VALUE ||
		      e == SMTP_PARAM_TOO_BIG || e == SMTP_PARAM_DUPLICATE);
		return;
	}
	for (size_t i = 0; i < ps->n; i++)
		CHECK(is_mail_key(ps->p[i].key));
	const smtp_param *p = find(ps, "SIZE");
	if (p != NULL) {
		char *end;
		unsigned long long v = strtoull(p->value, &end, 10);
		CHECK(*end == '\0' && p->value[0] >= '0' && p->value[0] <= '9');
		CHECK(m.size == v);
		CHECK(o->size_max == 0 || m.size <= o->size_max);
	} else {
		CHECK(m.size == 0);
	}
	CHECK(m.body != SMTP_BODY_8BITMIME || o->eightbit);
	CHECK(m.body != SMTP_BODY_BINARYMIME || o->chunking);
	if (find(ps, "BODY") == NULL)
		CHECK(m.body == SMTP_BODY_7BIT);
	else
		CHECK(o->eightbit || o->chunking);
	CHECK(m.smtputf8 == (find(ps, "SMTPUTF8") != NULL));
	CHECK(!m.smtputf8 || o->smtputf8);
	CHECK((m.ret != SMTP_RET_NONE) == (find(ps, "RET") != NULL));
	p = find(ps, "ENVID");
	if (p != NULL) {
		char ref[SMTP_PARAM_VALUE_MAX + 1];
		CHECK(o->dsn);
		CHECK(xtext_reference(p->value, ref, sizeof(ref)) != NULL);
		CHECK(strcmp(ref, m.envid) == 0);
		CHECK(strlen(m.envid) <= 100);
		for (size_t i = 0; m.envid[i] != '\0'; i++)
			CHECK(m.envid[i] >= 32 && m.envid[i] < 127);
	} else {
		CHECK(m.envid[0] == '\0');
	}
	CHECK(m.ret == SMTP_RET_NONE || o->dsn);

	/* offering everything accepts it too, with the same values */
	smtp_offer all = { .size_max = o->size_max, .chunking = true,
			   .smtputf8 = true, .dsn = true, .eightbit = true };
	CHECK(smtp_params_check_mail(ps, &all, &m2, &why) == SMTP_PARAM_OK);
	CHECK(memcmp(&m, &m2, sizeof(m)) == 0);
}

static void check_rcpt(const smtp_params *ps, const smtp_offer *o)
{
	smtp_rcpt_params r, r2;
	const char *why = NULL;
	smtp_param_err e = smtp_params_check_rcpt(ps, o, &r, &why);
	CHECK((e == SMTP_PARAM_OK) == (why == NULL));
	if (ps->n > 0 && strcmp(ps->p[0].key, "NOTIFY") != 0 &&
	    strcmp(ps->p[0].key, "ORCPT") != 0)
		CHECK(e == SMTP_PARAM_UNKNOWN);
	if (ps->n > 0 && !o->dsn)
		CHECK(e == SMTP_PARAM_UNKNOWN);
	if (e != SMTP_PARAM_OK) {
		CHECK(e == SMTP_PARAM_UNKNOWN || e == SMTP_PARAM_BAD_VALUE ||
		      e == SMTP_PARAM_DUPLICATE);
		return;
	}
	CHECK(r.notify <= 15);
	CHECK((r.notify & 1u) == 0 || r.notify == 1); /* NEVER alone */
	CHECK((r.notify != 0) == (find(ps, "NOTIFY") != NULL));
	const smtp_param *p = find(ps, "ORCPT");
	CHECK((r.orcpt[0] != '\0') == (p != NULL));
	if (p != NULL) {
		const char *semi = strchr(r.orcpt, ';');
		CHECK(semi != NULL && semi > r.orcpt && semi[1] != '\0');
		CHECK(strncmp(r.orcpt, p->value, (size_t)(semi - r.orcpt + 1)) ==
		      0);
		char ref[SMTP_PARAM_VALUE_MAX + 1];
		const char *xv = strchr(p->value, ';') + 1;
		CHECK(xtext_reference(xv, ref, sizeof(ref)) != NULL);
		CHECK(strcmp(ref, semi + 1) == 0);
		for (const char *c = semi + 1; *c != '\0'; c++)
			CHECK(*c >= 32 && *c < 127);
		if (semi - r.orcpt == 6 && strncasecmp(r.orcpt, "rfc822", 6) == 0) {
			char path[SMTP_PATH_MAX + 3];
			smtp_path a;
			size_t used, n = strlen(semi + 1);
			CHECK(n <= SMTP_PATH_MAX);
			path[0] = '<';
			memcpy(path + 1, semi + 1, n);
			path[n + 1] = '>';
			CHECK(smtp_path_parse(path, n + 2, false, false, &a, &used,
					      &why) == SMTP_ADDR_OK);
		}
	}
	smtp_offer all = { .size_max = o->size_max, .chunking = true,
			   .smtputf8 = true, .dsn = true, .eightbit = true };
	CHECK(smtp_params_check_rcpt(ps, &all, &r2, &why) == SMTP_PARAM_OK);
	CHECK(memcmp(&r, &r2, sizeof(r)) == 0);
}

static void check_params(const char *s, size_t len, const smtp_offer *o)
{
	smtp_params ps, ps2;
	const char *why = NULL;
	smtp_param_err e = smtp_params_parse(s, len, &ps, &why);
	CHECK((e == SMTP_PARAM_OK) == (why == NULL));
	if (e != SMTP_PARAM_OK) {
		CHECK(e == SMTP_PARAM_SYNTAX || e == SMTP_PARAM_DUPLICATE ||
		      e == SMTP_PARAM_TOO_MANY);
		return;
	}
	CHECK(ps.n <= SMTP_PARAMS_MAX);
	/* well formed and unique; printed back, they parse the same */
	static char line[SMTP_PARAMS_MAX * (SMTP_PARAM_VALUE_MAX + 40)];
	size_t n = 0;
	for (size_t i = 0; i < ps.n; i++) {
		const smtp_param *p = &ps.p[i];
		size_t kl = strlen(p->key);
		CHECK(kl >= 1 && kl < sizeof(p->key) && p->key[0] != '-');
		for (size_t k = 0; k < kl; k++) {
			char c = p->key[k];
			CHECK((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-');
		}
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(ps.p[j].key, p->key) != 0);
		if (p->has_value)
			CHECK(value_ok(p->value));
		else
			CHECK(p->value[0] == '\0');
		line[n++] = ' ';
		memcpy(line + n, p->key, kl);
		n += kl;
		if (p->has_value) {
			line[n++] = '=';
			memcpy(line + n, p->value, strlen(p->value));
			n += strlen(p->value);
		}
	}
	CHECK(smtp_params_parse(line, n, &ps2, &why) == SMTP_PARAM_OK);
	CHECK(ps2.n == ps.n);
	for (size_t i = 0; i < ps.n; i++)
		CHECK(memcmp(&ps.p[i], &ps2.p[i], sizeof(ps.p[i])) == 0);

	check_mail(&ps, o);
	check_rcpt(&ps, o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t limits[4] = { 0, 1000, 10485760, UINT64_MAX };
	if (size < 1)
		return 0;
	uint8_t f = data[0];
	const char *s = (const char *)data + 1;
	size_t len = size - 1;
	bool mail = (f & 1) != 0, utf8 = (f & 2) != 0;
	smtp_offer o = { .size_max = limits[f >> 6],
			 .chunking = (f & 4) != 0,
			 .smtputf8 = (f & 8) != 0,
			 .dsn = (f & 16) != 0,
			 .eightbit = (f & 32) != 0 };

	check_path(s, len, mail, utf8);
	check_literal(s, len);

	smtp_path p;
	size_t used;
	const char *why;
	if (smtp_path_parse(s, len, mail, utf8, &p, &used, &why) == SMTP_ADDR_OK)
		check_params(s + used, len - used, &o);
	else
		check_params(s, len, &o);
	return 0;
}
