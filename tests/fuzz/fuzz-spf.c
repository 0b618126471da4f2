/*
 * fuzz-spf.c — libFuzzer target for src/smtp/spf.c (SPF, RFC 7208): what
 * a remote domain controls (its TXT, A, AAAA, MX and PTR records, and
 * whether its servers answer) and what a client controls (address, domain,
 * local part), run through the whole evaluator.
 *
 * Input:
 *   byte 0       bit 0: IPv6 client; bit 1: the local part is NULL;
 *                bit 2: lower limits (3 lookups, 1 void, 3 MX, 3 PTR)
 *   bytes 1..16  the client address (IPv4: the first 4)
 *   then lines (LF):  first "DOMAIN[ LOCAL]", then the zone, one record
 *   a line: "NAME C DATA" with C one of
 *       t TXT (DATA as is)   a A    6 AAAA (DATA as text, else its
 *       first 4 / 16 octets)   m MX   p PTR (DATA a name)
 *       s SERVFAIL   o TIMEOUT (for every type at NAME)
 *   A name with other records but none of the type asked is NODATA, a
 *   name without records NXDOMAIN (as the unit test's tiny DNS does).
 *
 * Properties:
 *  - the evaluation ends within SPF_QUERY_MAX queries (counted here) and
 *    counts them right; it asks only names as spf.h promises (1..253
 *    octets, labels 1..63 of %x21-7E but '\\', no final dot); asking
 *    again before answering gives the same query; an answer with nothing
 *    waiting is refused;
 *  - the outcome is a known result with a reason; lookups and void
 *    lookups within their limits; the mechanism within SPF_TERM_MAX; an
 *    explanation only with fail, printable ASCII within SPF_EXP_MAX;
 *  - the same input evaluated again gives the same outcome;
 *  - every TXT record of the zone, macro-expanded as a domain-spec and as
 *    an explanation (D10, CVE-2021-20314): the output within its buffer
 *    and NUL-terminated, a domain a name within 253 octets, a refusal with
 *    a reason and an empty output.
 */
#include "spf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-spf: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

#define ZMAX 64
#define FIELD_MAX 300

typedef struct zrec {
	char name[FIELD_MAX];
	char type;
	const uint8_t *data;
	size_t len;
} zrec;

typedef struct zone {
	zrec r[ZMAX];
	size_t n;
} zone;

static void copy_field(char *out, const uint8_t *s, size_t len)
{
	if (len >= FIELD_MAX)
		len = FIELD_MAX - 1;
	memcpy(out, s, len);
	out[len] = '\0';
	/* a NUL inside ends the C string there, which is fine */
}

static bool name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (la != lb)
		return false;
	for (size_t i = 0; i < la; i++) {
		int x = a[i], y = b[i];
		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return false;
	}
	return true;
}

static bool query_name_ok(const char *s)
{
	size_t len = strlen(s), label = 0;
	if (len == 0 || len > SPF_NAME_MAX || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (c < 0x21 || c > 0x7e || c == '\\' || ++label > 63) {
			return false;
		}
	}
	return true;
}

static void answer(spf_eval *ev, const zone *z, const spf_query *q)
{
	static const char types[] = { 't', 'a', '6', 'm', 'p' };
	spf_rr rr[ZMAX];
	uint8_t bin[ZMAX][16];
	size_t n = 0;
	bool seen = false;
	char want = types[q->type];
	for (size_t i = 0; i < z->n; i++) {
		const zrec *r = &z->r[i];
		if (!name_eq(r->name, q->name))
			continue;
		seen = true;
		if (r->type == 's' || r->type == 'o') {
			CHECK(spf_answer(ev, r->type == 's' ? SPF_DNS_SERVFAIL
							    : SPF_DNS_TIMEOUT,
					 NULL, 0) == 0);
			return;
		}
		if (r->type != want)
			continue;
		if (want == 'a' || want == '6') {
			char txt[64];
			size_t al = want == 'a' ? 4 : 16;
			copy_field(txt, r->data, r->len < 63 ? r->len : 63);
			if (inet_pton(want == 'a' ? AF_INET : AF_INET6, txt,
				      bin[n]) != 1) {
				memset(bin[n], 0, 16);
				memcpy(bin[n], r->data, r->len < al ? r->len : al);
			}
			rr[n].data = bin[n];
			rr[n].len = al;
		} else {
			rr[n].data = r->data;
			rr[n].len = r->len;
		}
		n++;
	}
	spf_dns_status st = n > 0 ? SPF_DNS_OK
			    : seen ? SPF_DNS_NODATA : SPF_DNS_NXDOMAIN;
	CHECK(spf_answer(ev, st, rr, n) == 0);
}

static void evaluate(const spf_ip *ip, const char *domain, const char *local,
		     const spf_limits *lim, const zone *z, spf_outcome *out)
{
	const char *err = NULL;
	spf_eval *ev = spf_new(ip, domain, local, "helo.example", "mx.test",
			       1767225600, lim, &err);
	if (ev == NULL) {
		CHECK(err != NULL);
		memset(out, 0, sizeof(*out));
		out->result = (spf_result)-1;
		return;
	}
	unsigned steps = 0;
	spf_query q, again;
	while (spf_step(ev, &q) == SPF_NEED_DNS) {
		CHECK(++steps <= SPF_QUERY_MAX);
		CHECK(q.type <= SPF_Q_PTR);
		CHECK(query_name_ok(q.name));
		CHECK(spf_step(ev, &again) == SPF_NEED_DNS);
		CHECK(again.type == q.type && strcmp(again.name, q.name) == 0);
		answer(ev, z, &q);
	}
	CHECK(spf_answer(ev, SPF_DNS_OK, NULL, 0) == -1);
	const spf_outcome *o = spf_outcome_get(ev);
	CHECK(o != NULL);
	CHECK(spf_result_name(o->result) != NULL);
	CHECK(o->reason != NULL && o->reason[0] != '\0');
	CHECK(o->queries == steps);
	CHECK(o->lookups <= lim->lookups);
	CHECK(o->voids <= lim->voids);
	CHECK(strlen(o->mechanism) <= SPF_TERM_MAX);
	CHECK(strlen(o->domain) <= SPF_NAME_MAX);
	size_t el = strlen(o->explanation);
	CHECK(el <= SPF_EXP_MAX);
	CHECK(el == 0 || o->result == SPF_RESULT_FAIL);
	for (size_t i = 0; i < el; i++)
		CHECK(o->explanation[i] >= 0x20 && o->explanation[i] <= 0x7e);
	*out = *o;
	/* expand every TXT record both ways */
	for (size_t i = 0; i < z->n; i++) {
		if (z->r[i].type != 't')
			continue;
		char d[SPF_NAME_MAX + 1], e[SPF_EXP_MAX + 1];
		memset(d, 'x', sizeof(d));
		memset(e, 'x', sizeof(e));
		int n = spf_expand(ev, NULL, z->r[i].data, z->r[i].len,
				   SPF_EXPAND_DOMAIN, d, sizeof(d), &err);
		if (n < 0) {
			CHECK(err != NULL && d[0] == '\0');
		} else {
			CHECK((size_t)n == strlen(d));
			CHECK(query_name_ok(d));
		}
		n = spf_expand(ev, "d.example", z->r[i].data, z->r[i].len,
			       SPF_EXPAND_EXP, e, sizeof(e), &err);
		if (n < 0) {
			CHECK(err != NULL && e[0] == '\0');
		} else {
			CHECK((size_t)n == strlen(e) && n <= (int)SPF_EXP_MAX);
			for (int k = 0; k < n; k++)
				CHECK(e[k] >= 0x20 && e[k] <= 0x7e);
		}
	}
	spf_free(&ev);
	CHECK(ev == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static zone z;
	if (size < 17)
		return 0;
	uint8_t flags = data[0];
	spf_ip ip;
	memset(&ip, 0, sizeof(ip));
	ip.family = (flags & 1) ? AF_INET6 : AF_INET;
	memcpy(ip.addr, data + 1, (flags & 1) ? 16 : 4);
	spf_limits rfc = { SPF_LOOKUP_LIMIT, SPF_VOID_LIMIT, SPF_MX_LIMIT,
			   SPF_PTR_LIMIT };
	spf_limits low = { 3, 1, 3, 3 };
	const spf_limits *lim = (flags & 4) ? &low : &rfc;

	const uint8_t *p = data + 17, *end = data + size;
	char domain[FIELD_MAX], local[FIELD_MAX];
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	const uint8_t *le = nl != NULL ? nl : end;
	const uint8_t *sp = memchr(p, ' ', (size_t)(le - p));
	copy_field(domain, p, (size_t)((sp != NULL ? sp : le) - p));
	local[0] = '\0';
	if (sp != NULL)
		copy_field(local, sp + 1, (size_t)(le - sp - 1));
	p = nl != NULL ? nl + 1 : end;
	z.n = 0;
	while (p < end && z.n < ZMAX) {
		nl = memchr(p, '\n', (size_t)(end - p));
		le = nl != NULL ? nl : end;
		/* NAME C DATA */
		sp = memchr(p, ' ', (size_t)(le - p));
		if (sp != NULL && le - sp >= 2) {
			zrec *r = &z.r[z.n];
			copy_field(r->name, p, (size_t)(sp - p));
			r->type = (char)sp[1];
			const uint8_t *d = sp + 2;
			if (d < le && *d == ' ')
				d++;
			r->data = d < le ? d : le;
			r->len = d < le ? (size_t)(le - d) : 0;
			if (strchr("ta6mpso", r->type) != NULL && r->type != 0)
				z.n++;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	const char *lp = (flags & 2) ? NULL : local;
	spf_outcome a, b;
	evaluate(&ip, domain, lp, lim, &z, &a);
	evaluate(&ip, domain, lp, lim, &z, &b);
	CHECK(a.result == b.result);
	if ((int)a.result != -1) {
		CHECK(strcmp(a.reason, b.reason) == 0);
		CHECK(strcmp(a.mechanism, b.mechanism) == 0);
		CHECK(strcmp(a.explanation, b.explanation) == 0);
		CHECK(a.queries == b.queries);
	}
	return 0;
}
