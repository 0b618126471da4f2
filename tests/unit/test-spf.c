/*
 * test-spf.c — SPF (RFC 7208), the pure evaluator (src/smtp/spf.c).
 * Each test writes its zone as data and drives the evaluator with a tiny
 * DNS in this file (zone_run): exact names, NODATA when the name has other
 * records, NXDOMAIN when it has none, SERVFAIL / TIMEOUT when the zone
 * says so.  Covered: RFC 7208 Appendix A's zone and records (A.1 exactly;
 * A.3's mobile / remote users; A.4 and A.5's "-include" forms, judged by
 * the rules of §5.2), §7.4's macro examples exactly, every mechanism and
 * qualifier, modifiers, record selection, syntax errors, each limit (10
 * lookups, 2 void lookups, 10 MX names, 10 PTR names, include and
 * redirect loops, bounded macro output), IPv6 CIDR edges, temperror on
 * SERVFAIL / TIMEOUT, and the step / answer protocol.
 */
#include "test-common.h"

#include "spf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ------------------------------------------------------------ tiny DNS */

typedef struct zrr {
	const char *name;
	const char *type;       /* TXT A AAAA MX PTR, or SERVFAIL TIMEOUT */
	const char *data;
} zrr;

#define ZMAX 64

typedef struct run_info {
	spf_outcome out;
	unsigned steps;
	char log[4096];         /* "TYPE name;" for each query */
} run_info;

static const char *qtype_name(spf_qtype t)
{
	switch (t) {
	case SPF_Q_TXT:
		return "TXT";
	case SPF_Q_A:
		return "A";
	case SPF_Q_AAAA:
		return "AAAA";
	case SPF_Q_MX:
		return "MX";
	case SPF_Q_PTR:
		return "PTR";
	}
	return "?";
}

static spf_ip ip_of(const char *s)
{
	spf_ip ip;
	memset(&ip, 0, sizeof(ip));
	if (inet_pton(AF_INET, s, ip.addr) == 1)
		ip.family = AF_INET;
	else if (inet_pton(AF_INET6, s, ip.addr) == 1)
		ip.family = AF_INET6;
	else
		fail_msg("bad address %s", s);
	return ip;
}

static void zone_answer(spf_eval *ev, const zrr *zone, const spf_query *q)
{
	spf_rr rr[ZMAX];
	uint8_t bin[ZMAX][16];
	size_t n = 0;
	bool name_seen = false;
	const char *type = qtype_name(q->type);
	for (const zrr *z = zone; z != NULL && z->name != NULL; z++) {
		if (strcasecmp(z->name, q->name) != 0)
			continue;
		name_seen = true;
		if (strcmp(z->type, "SERVFAIL") == 0) {
			assert_int_equal(spf_answer(ev, SPF_DNS_SERVFAIL, NULL, 0),
					 0);
			return;
		}
		if (strcmp(z->type, "TIMEOUT") == 0) {
			assert_int_equal(spf_answer(ev, SPF_DNS_TIMEOUT, NULL, 0),
					 0);
			return;
		}
		if (strcmp(z->type, type) != 0)
			continue;
		assert_true(n < ZMAX);
		if (q->type == SPF_Q_A) {
			assert_int_equal(inet_pton(AF_INET, z->data, bin[n]), 1);
			rr[n].data = bin[n];
			rr[n].len = 4;
		} else if (q->type == SPF_Q_AAAA) {
			assert_int_equal(inet_pton(AF_INET6, z->data, bin[n]),
					 1);
			rr[n].data = bin[n];
			rr[n].len = 16;
		} else {
			rr[n].data = (const uint8_t *)z->data;
			rr[n].len = strlen(z->data);
		}
		n++;
	}
	spf_dns_status st = n > 0 ? SPF_DNS_OK
			    : name_seen ? SPF_DNS_NODATA : SPF_DNS_NXDOMAIN;
	assert_int_equal(spf_answer(ev, st, rr, n), 0);
}

static spf_result zone_run_lim(const zrr *zone, const char *ip,
			       const char *domain, const char *local,
			       const spf_limits *lim, run_info *ri)
{
	spf_ip a = ip_of(ip);
	const char *err = NULL;
	spf_eval *ev = spf_new(&a, domain, local, "helo.example", "mx.test",
			       T_NOW, lim, &err);
	if (ev == NULL)
		fail_msg("spf_new: %s", err);
	memset(ri, 0, sizeof(*ri));
	spf_query q;
	size_t lp = 0;
	while (spf_step(ev, &q) == SPF_NEED_DNS) {
		ri->steps++;
		assert_true(ri->steps <= SPF_QUERY_MAX);
		/* the query is a name as promised */
		size_t nl = strlen(q.name);
		assert_true(nl >= 1 && nl <= SPF_NAME_MAX);
		assert_true(q.name[nl - 1] != '.');
		spf_query again;
		assert_int_equal(spf_step(ev, &again), SPF_NEED_DNS);
		assert_string_equal(again.name, q.name);
		assert_int_equal(again.type, q.type);
		int w = snprintf(ri->log + lp, sizeof(ri->log) - lp, "%s %s;",
				 qtype_name(q.type), q.name);
		if (w > 0 && (size_t)w < sizeof(ri->log) - lp)
			lp += (size_t)w;
		zone_answer(ev, zone, &q);
	}
	const spf_outcome *o = spf_outcome_get(ev);
	assert_non_null(o);
	assert_non_null(o->reason);
	ri->out = *o;
	assert_int_equal(o->queries, ri->steps);
	/* nothing is waiting any more */
	assert_int_equal(spf_answer(ev, SPF_DNS_OK, NULL, 0), -1);
	spf_free(&ev);
	assert_null(ev);
	return ri->out.result;
}

static spf_result zone_run(const zrr *zone, const char *ip,
			   const char *domain, run_info *ri)
{
	return zone_run_lim(zone, ip, domain, "user", NULL, ri);
}

#define EXPECT(zone, ip, domain, want)                                      \
	do {                                                                \
		run_info ri_;                                               \
		spf_result got_ = zone_run(zone, ip, domain, &ri_);         \
		if (got_ != (want))                                         \
			fail_msg("%s from %s: %s (%s), want %s; queries: %s", \
				 domain, ip, spf_result_name(got_),         \
				 ri_.out.reason, spf_result_name(want),     \
				 ri_.log);                                  \
	} while (0)

/* ------------------------------------------------- RFC 7208 Appendix A */

/* A.1's zone; the record of example.com is set per case. */
#define A1_ZONE(rec)                                                        \
	{ "example.com", "TXT", rec },                                      \
	{ "example.com", "MX", "mail-a.example.com" },                      \
	{ "example.com", "MX", "mail-b.example.com." },                     \
	{ "example.com", "A", "192.0.2.10" },                               \
	{ "example.com", "A", "192.0.2.11" },                               \
	{ "amy.example.com", "A", "192.0.2.65" },                           \
	{ "bob.example.com", "A", "192.0.2.66" },                           \
	{ "mail-a.example.com", "A", "192.0.2.129" },                       \
	{ "mail-b.example.com", "A", "192.0.2.130" },                       \
	{ "example.org", "MX", "mail-c.example.org" },                      \
	{ "mail-c.example.org", "A", "192.0.2.140" },                       \
	{ "10.2.0.192.in-addr.arpa", "PTR", "example.com" },                \
	{ "11.2.0.192.in-addr.arpa", "PTR", "example.com" },                \
	{ "65.2.0.192.in-addr.arpa", "PTR", "amy.example.com" },            \
	{ "66.2.0.192.in-addr.arpa", "PTR", "bob.example.com" },            \
	{ "129.2.0.192.in-addr.arpa", "PTR", "mail-a.example.com" },        \
	{ "130.2.0.192.in-addr.arpa", "PTR", "mail-b.example.com" },        \
	{ "140.2.0.192.in-addr.arpa", "PTR", "mail-c.example.org" },        \
	{ "4.0.0.10.in-addr.arpa", "PTR", "bob.example.com" },              \
	{ NULL, NULL, NULL }

typedef struct a1_case {
	const char *rec;
	const char *ip;
	spf_result want;
} a1_case;

static const a1_case a1_cases[] = {
	{ "v=spf1 +all", "192.0.2.1", SPF_RESULT_PASS },
	{ "v=spf1 +all", "2001:db8::1", SPF_RESULT_PASS },
	{ "v=spf1 a -all", "192.0.2.10", SPF_RESULT_PASS },
	{ "v=spf1 a -all", "192.0.2.11", SPF_RESULT_PASS },
	{ "v=spf1 a -all", "192.0.2.12", SPF_RESULT_FAIL },
	{ "v=spf1 a:example.org -all", "192.0.2.10", SPF_RESULT_FAIL },
	{ "v=spf1 a:example.org -all", "192.0.2.140", SPF_RESULT_FAIL },
	{ "v=spf1 mx -all", "192.0.2.129", SPF_RESULT_PASS },
	{ "v=spf1 mx -all", "192.0.2.130", SPF_RESULT_PASS },
	{ "v=spf1 mx -all", "192.0.2.140", SPF_RESULT_FAIL },
	{ "v=spf1 mx:example.org -all", "192.0.2.140", SPF_RESULT_PASS },
	{ "v=spf1 mx:example.org -all", "192.0.2.129", SPF_RESULT_FAIL },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.129", SPF_RESULT_PASS },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.130", SPF_RESULT_PASS },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.140", SPF_RESULT_PASS },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.141", SPF_RESULT_FAIL },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.131",
	  SPF_RESULT_PASS },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.128",
	  SPF_RESULT_PASS },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.143",
	  SPF_RESULT_PASS },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.144",
	  SPF_RESULT_FAIL },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.132",
	  SPF_RESULT_FAIL },
	/* ptr: 65 -> amy.example.com -> 192.0.2.65 (valid, in example.com);
	 * 140 -> mail-c.example.org (valid, elsewhere); 10.0.0.4 ->
	 * bob.example.com -> 192.0.2.66 (not valid) */
	{ "v=spf1 ptr -all", "192.0.2.65", SPF_RESULT_PASS },
	{ "v=spf1 ptr -all", "192.0.2.140", SPF_RESULT_FAIL },
	{ "v=spf1 ptr -all", "10.0.0.4", SPF_RESULT_FAIL },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.65", SPF_RESULT_FAIL },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.129", SPF_RESULT_PASS },
};

static void test_appendix_a1(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(a1_cases) / sizeof(a1_cases[0]); i++) {
		const a1_case *c = &a1_cases[i];
		const zrr zone[] = { A1_ZONE(c->rec) };
		EXPECT(zone, c->ip, "example.com", c->want);
	}
}

/* A.3: mobile and remote users authorised by name. */
static void test_appendix_a3(void **state)
{
	(void)state;
	static const zrr zone[] = {
		{ "example.com", "TXT",
		  "v=spf1 mx include:mobile-users._spf.%{d} "
		  "include:remote-users._spf.%{d} -all" },
		{ "example.com", "MX", "mail-a.example.com" },
		{ "mail-a.example.com", "A", "192.0.2.129" },
		{ "mobile-users._spf.example.com", "TXT",
		  "v=spf1 exists:%{l1r+}.%{d}" },
		{ "remote-users._spf.example.com", "TXT",
		  "v=spf1 exists:%{ir}.%{l1r+}.%{d}" },
		{ "mary.mobile-users._spf.example.com", "A", "127.0.0.2" },
		{ "fred.mobile-users._spf.example.com", "A", "127.0.0.2" },
		{ "15.15.168.192.joel.remote-users._spf.example.com", "A",
		  "127.0.0.2" },
		{ "16.15.168.192.joel.remote-users._spf.example.com", "A",
		  "127.0.0.2" },
		{ NULL, NULL, NULL },
	};
	run_info ri;
	assert_int_equal(zone_run_lim(zone, "203.0.113.5", "example.com",
				      "mary", NULL, &ri), SPF_RESULT_PASS);
	assert_string_equal(ri.out.mechanism,
			    "include:mobile-users._spf.%{d}");
	/* fred+spam: %{l1r+} is "fred" */
	assert_int_equal(zone_run_lim(zone, "203.0.113.5", "example.com",
				      "fred+spam", NULL, &ri), SPF_RESULT_PASS);
	assert_int_equal(zone_run_lim(zone, "192.168.15.15", "example.com",
				      "joel", NULL, &ri), SPF_RESULT_PASS);
	assert_string_equal(ri.out.mechanism,
			    "include:remote-users._spf.%{d}");
	assert_int_equal(zone_run_lim(zone, "192.168.15.17", "example.com",
				      "joel", NULL, &ri), SPF_RESULT_FAIL);
	assert_string_equal(ri.out.mechanism, "-all");
	assert_int_equal(zone_run_lim(zone, "203.0.113.5", "example.com",
				      "bob", NULL, &ri), SPF_RESULT_FAIL);
	assert_int_equal(zone_run_lim(zone, "192.0.2.129", "example.com",
				      "bob", NULL, &ri), SPF_RESULT_PASS);
	assert_string_equal(ri.out.mechanism, "mx");
}

/* A.4 / A.5: "-include" matches only when the included record passes
 * (§5.2), so these records refuse what the included record allows. */
static void test_appendix_a4_a5(void **state)
{
	(void)state;
	static const zrr a4[] = {
		{ "example.com", "TXT",
		  "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} "
		  "+all" },
		{ "ip4._spf.example.com", "TXT", "v=spf1 -ip4:192.0.2.0/24 +all" },
		{ "ptr._spf.example.com", "TXT", "v=spf1 -ptr +all" },
		{ "1.2.0.192.in-addr.arpa", "PTR", "h.example.com" },
		{ "h.example.com", "A", "192.0.2.1" },
		{ NULL, NULL, NULL },
	};
	/* in 192.0.2.0/24: ip4 record fails -> no match; ptr._spf: ptr
	 * checks names under ptr._spf.example.com: none -> +all -> pass ->
	 * -include matches -> fail */
	EXPECT(a4, "192.0.2.1", "example.com", SPF_RESULT_FAIL);
	/* elsewhere: the ip4 record passes -> -include matches -> fail */
	EXPECT(a4, "198.51.100.1", "example.com", SPF_RESULT_FAIL);
	static const zrr a5[] = {
		{ "example.com", "TXT",
		  "v=spf1 -include:ip4._spf.%{d} include:ptr._spf.%{d} -all" },
		{ "ip4._spf.example.com", "TXT", "v=spf1 -ip4:192.0.2.0/24 +all" },
		{ "ptr._spf.example.com", "TXT", "v=spf1 -ptr:example.com +all" },
		{ "1.2.0.192.in-addr.arpa", "PTR", "h.example.com" },
		{ "h.example.com", "A", "192.0.2.1" },
		{ "2.2.0.192.in-addr.arpa", "PTR", "h.example.net" },
		{ "h.example.net", "A", "192.0.2.2" },
		{ NULL, NULL, NULL },
	};
	/* in the network, PTR in example.com: ptr record fails -> -all */
	EXPECT(a5, "192.0.2.1", "example.com", SPF_RESULT_FAIL);
	/* in the network, PTR elsewhere: ptr record passes -> pass */
	EXPECT(a5, "192.0.2.2", "example.com", SPF_RESULT_PASS);
	/* outside the network: -include matches */
	EXPECT(a5, "198.51.100.1", "example.com", SPF_RESULT_FAIL);
}

/* ------------------------------------------------------------ macros §7.4 */

typedef struct macro_case {
	const char *in;
	const char *out;        /* NULL: refused */
} macro_case;

static const macro_case macro_v4[] = {
	{ "%{s}", "strong-bad@email.example.com" },
	{ "%{o}", "email.example.com" },
	{ "%{d}", "email.example.com" },
	{ "%{d4}", "email.example.com" },
	{ "%{d3}", "email.example.com" },
	{ "%{d2}", "example.com" },
	{ "%{d1}", "com" },
	{ "%{dr}", "com.example.email" },
	{ "%{d2r}", "example.email" },
	{ "%{l}", "strong-bad" },
	{ "%{l-}", "strong.bad" },
	{ "%{lr}", "strong-bad" },
	{ "%{lr-}", "bad.strong" },
	{ "%{l1r-}", "strong" },
	{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
	{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
	{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
	  "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
	{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
	  "3.2.0.192.in-addr.strong.lp._spf.example.com" },
	{ "%{d2}.trusted-domains.example.net",
	  "example.com.trusted-domains.example.net" },
	/* more: p is "unknown", h the HELO, digits beyond the parts */
	{ "%{p}.x.example", "unknown.x.example" },
	{ "%{h}", "helo.example" },
	{ "%{d100}", "email.example.com" },
	{ "%{d99999999999999999999}", "email.example.com" },
	{ "%{ir}.example.", "3.2.0.192.example" },
	{ "a%%b.example", "a%b.example" },
	/* refused: syntax and what is not a name */
	{ "%{d0}", NULL },
	{ "%{c}.example", NULL },
	{ "%{r}.example", NULL },
	{ "%{t}.example", NULL },
	{ "%{x}.example", NULL },
	{ "%{d", NULL },
	{ "%(d).example", NULL },
	{ "%", NULL },
	{ "example", NULL },            /* no domain-end */
	{ "example.c0m1-", NULL },
	{ "example.123", NULL },
	{ "a_%_b.example", NULL },      /* a space is not in a name */
	{ "", NULL },
	{ NULL, NULL },
};

static spf_eval *macro_eval(const char *ip, const char *local,
			    const char *domain)
{
	spf_ip a = ip_of(ip);
	const char *err = NULL;
	spf_eval *ev = spf_new(&a, domain, local, "helo.example",
			       "mx.example.org", 1400000000, NULL, &err);
	assert_non_null(ev);
	return ev;
}

static void check_macros(spf_eval *ev, const macro_case *cases,
			 spf_expand_kind kind)
{
	for (const macro_case *c = cases; c->in != NULL; c++) {
		char out[SPF_EXP_MAX + 1];
		const char *err = NULL;
		int n = spf_expand(ev, NULL, (const uint8_t *)c->in,
				   strlen(c->in), kind, out, sizeof(out), &err);
		if (c->out == NULL) {
			if (n >= 0)
				fail_msg("%s: expanded to %s, want a refusal",
					 c->in, out);
			assert_non_null(err);
			assert_string_equal(out, "");
			continue;
		}
		if (n < 0)
			fail_msg("%s: %s", c->in, err);
		assert_string_equal(out, c->out);
		assert_int_equal((size_t)n, strlen(c->out));
	}
}

static void test_macro_examples(void **state)
{
	(void)state;
	spf_eval *ev = macro_eval("192.0.2.3", "strong-bad",
				  "email.example.com");
	check_macros(ev, macro_v4, SPF_EXPAND_DOMAIN);
	static const macro_case exp[] = {
		{ "%{S}", "strong-bad%40email.example.com" },
		{ "%{L}%_is%-here", "strong-bad is%20here" },
		{ "%{c} %{r} %{t} %{v}",
		  "192.0.2.3 mx.example.org 1400000000 in-addr" },
		{ "%{ir} %{d2r}", "3.2.0.192 example.email" },
		{ "100%% sure", "100% sure" },
		{ "%{x}", NULL },
		{ "bad%", NULL },
		{ "tab\there", NULL },
		{ NULL, NULL },
	};
	check_macros(ev, exp, SPF_EXPAND_EXP);
	spf_free(&ev);

	ev = macro_eval("2001:db8::cb01", "strong-bad", "email.example.com");
	static const macro_case v6[] = {
		{ "%{ir}.%{v}._spf.%{d2}",
		  "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0."
		  "0.2.ip6._spf.example.com" },
		{ "%{i}.example",
		  "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b."
		  "0.1.example" },
		{ "%{i8r}.example", "8.b.d.0.1.0.0.2.example" },
		{ NULL, NULL },
	};
	check_macros(ev, v6, SPF_EXPAND_DOMAIN);
	static const macro_case v6exp[] = {
		{ "%{c}", "2001:db8::cb01" },
		{ "%{C}", "2001%3Adb8%3A%3Acb01" },
		{ NULL, NULL },
	};
	check_macros(ev, v6exp, SPF_EXPAND_EXP);
	spf_free(&ev);

	/* the null sender: postmaster@the HELO domain */
	ev = macro_eval("192.0.2.3", NULL, "helo.example");
	static const macro_case null_sender[] = {
		{ "%{s}", "postmaster@helo.example" },
		{ "%{l}.%{o}", "postmaster.helo.example" },
		{ NULL, NULL },
	};
	check_macros(ev, null_sender, SPF_EXPAND_DOMAIN);
	spf_free(&ev);
}

/* D10 / CVE-2021-20314: however large, an expansion stays bounded. */
static void test_macro_bounds(void **state)
{
	(void)state;
	char local[SPF_LOCAL_MAX + 1];
	for (size_t i = 0; i < SPF_LOCAL_MAX; i++)
		local[i] = (i % 8 == 7) ? '.' : 'a' + (char)(i % 26);
	local[SPF_LOCAL_MAX - 1] = 'z';         /* no empty label */
	local[SPF_LOCAL_MAX] = '\0';
	spf_eval *ev = macro_eval("192.0.2.3", local, "email.example.com");
	char spec[4096];
	size_t n = 0;
	while (n + 20 < sizeof(spec)) {
		memcpy(spec + n, "%{l}.%{L}%{s}", 13);
		n += 13;
	}
	memcpy(spec + n, ".example.com", 12);
	n += 12;
	char out[SPF_NAME_MAX + 1];
	const char *err = NULL;
	int r = spf_expand(ev, NULL, (const uint8_t *)spec, n,
			   SPF_EXPAND_DOMAIN, out, sizeof(out), &err);
	/* %{s} puts an '@' in; a name of printable octets either way */
	if (r >= 0) {
		assert_true(r <= (int)SPF_NAME_MAX);
		assert_int_equal(strlen(out), (size_t)r);
		assert_true(strlen(out) >= 12);
		assert_string_equal(out + strlen(out) - 12, ".example.com");
	} else {
		assert_non_null(err);
	}
	/* a spec of labels only: cut on the left to at most 253 */
	n = 0;
	while (n + 20 < sizeof(spec)) {
		memcpy(spec + n, "%{l}.%{d}.", 10);
		n += 10;
	}
	memcpy(spec + n, "tail.example", 12);
	n += 12;
	r = spf_expand(ev, NULL, (const uint8_t *)spec, n, SPF_EXPAND_DOMAIN,
		       out, sizeof(out), &err);
	assert_true(r > 0 && r <= (int)SPF_NAME_MAX);
	assert_string_equal(out + r - 12, "tail.example");
	assert_true(r > (int)SPF_NAME_MAX - 64);     /* only whole labels cut */
	/* an explanation is cut at SPF_EXP_MAX */
	char big[SPF_EXP_MAX + 1];
	r = spf_expand(ev, NULL, (const uint8_t *)spec, n, SPF_EXPAND_EXP, big,
		       sizeof(big), &err);
	assert_int_equal(r, (int)SPF_EXP_MAX);
	assert_int_equal(strlen(big), SPF_EXP_MAX);
	/* a small out buffer gets a prefix, NUL-terminated */
	char tiny[5];
	r = spf_expand(ev, NULL, (const uint8_t *)"%{d}", 4, SPF_EXPAND_DOMAIN,
		       tiny, sizeof(tiny), &err);
	assert_int_equal(r, 4);
	assert_string_equal(tiny, "emai");
	spf_free(&ev);

	/* a record of 4096 octets of macros, evaluated */
	static char rec[SPF_RECORD_MAX + 1];
	memcpy(rec, "v=spf1 exists:", 14);
	n = 14;
	while (n + 30 < SPF_RECORD_MAX) {
		memcpy(rec + n, "%{l}%{s}%{L}%{S}%{h}%{i}%{d}", 28);
		n += 28;
	}
	memcpy(rec + n, ".com -all", 9);
	n += 9;
	rec[n] = '\0';
	const zrr zone[] = { { "example.com", "TXT", rec },
			     { NULL, NULL, NULL } };
	run_info ri;
	assert_int_equal(zone_run_lim(zone, "192.0.2.3", "example.com", local,
				      NULL, &ri), SPF_RESULT_FAIL);
}

/* ------------------------------------------------------------ mechanisms */

static void test_mechanisms_and_qualifiers(void **state)
{
	(void)state;
	static const struct {
		const char *rec;
		const char *ip;
		spf_result want;
		const char *mech;
	} cases[] = {
		{ "v=spf1 all", "192.0.2.1", SPF_RESULT_PASS, "all" },
		{ "v=spf1 +all", "192.0.2.1", SPF_RESULT_PASS, "+all" },
		{ "v=spf1 -all", "192.0.2.1", SPF_RESULT_FAIL, "-all" },
		{ "v=spf1 ~all", "192.0.2.1", SPF_RESULT_SOFTFAIL, "~all" },
		{ "v=spf1 ?all", "192.0.2.1", SPF_RESULT_NEUTRAL, "?all" },
		{ "v=spf1", "192.0.2.1", SPF_RESULT_NEUTRAL, "" },
		{ "v=spf1 ", "192.0.2.1", SPF_RESULT_NEUTRAL, "" },
		{ "V=SPF1 -ALL", "192.0.2.1", SPF_RESULT_FAIL, "-ALL" },
		{ "v=spf1 ip4:192.0.2.1 -all", "192.0.2.1", SPF_RESULT_PASS,
		  "ip4:192.0.2.1" },
		{ "v=spf1 -ip4:192.0.2.0/24 +all", "192.0.2.9",
		  SPF_RESULT_FAIL, "-ip4:192.0.2.0/24" },
		{ "v=spf1 ~ip4:192.0.2.0/24", "192.0.2.9",
		  SPF_RESULT_SOFTFAIL, "~ip4:192.0.2.0/24" },
		{ "v=spf1 ?ip4:0.0.0.0/0", "203.0.113.1", SPF_RESULT_NEUTRAL,
		  "?ip4:0.0.0.0/0" },
		{ "v=spf1 ip4:192.0.2.1 -all", "2001:db8::1", SPF_RESULT_FAIL,
		  "-all" },
		{ "v=spf1 ip6:2001:db8::/32 -all", "2001:db8:ffff::1",
		  SPF_RESULT_PASS, "ip6:2001:db8::/32" },
		{ "v=spf1 ip6:2001:db8::/32 -all", "192.0.2.1",
		  SPF_RESULT_FAIL, "-all" },
		{ "v=spf1 a -all", "192.0.2.10", SPF_RESULT_PASS, "a" },
		{ "v=spf1 a/24 -all", "192.0.2.77", SPF_RESULT_PASS, "a/24" },
		{ "v=spf1 a//64 -all", "2001:db8:1:1::99", SPF_RESULT_PASS,
		  "a//64" },
		{ "v=spf1 a/32//64 -all", "2001:db8:1:2::99", SPF_RESULT_FAIL,
		  "-all" },
		{ "v=spf1 a -all", "2001:db8:1:1::10", SPF_RESULT_PASS, "a" },
		{ "v=spf1 a:mail.example.com -all", "192.0.2.20",
		  SPF_RESULT_PASS, "a:mail.example.com" },
		{ "v=spf1 mx -all", "192.0.2.20", SPF_RESULT_PASS, "mx" },
		{ "v=spf1 mx//48 -all", "2001:db8:1:ffff::1", SPF_RESULT_PASS,
		  "mx//48" },
		{ "v=spf1 exists:%{i}.bl.example.com -all", "192.0.2.66",
		  SPF_RESULT_PASS, "exists:%{i}.bl.example.com" },
		/* exists asks A even for an IPv6 client */
		{ "v=spf1 exists:listed.example.com -all", "2001:db8::1",
		  SPF_RESULT_PASS, "exists:listed.example.com" },
		{ "v=spf1 ptr -all", "192.0.2.20", SPF_RESULT_PASS, "ptr" },
		{ "v=spf1 ptr:example.com -all", "192.0.2.20", SPF_RESULT_PASS,
		  "ptr:example.com" },
		{ "v=spf1 ptr:other.example -all", "192.0.2.20",
		  SPF_RESULT_FAIL, "-all" },
		{ "v=spf1 include:inc.example.com -all", "192.0.2.30",
		  SPF_RESULT_PASS, "include:inc.example.com" },
		{ "v=spf1 -include:inc.example.com +all", "192.0.2.30",
		  SPF_RESULT_FAIL, "-include:inc.example.com" },
		/* the included record fails: no match, go on */
		{ "v=spf1 include:inc.example.com ~all", "192.0.2.31",
		  SPF_RESULT_SOFTFAIL, "~all" },
		{ "v=spf1 redirect=inc.example.com", "192.0.2.30",
		  SPF_RESULT_PASS, "+ip4:192.0.2.30" },
		{ "v=spf1 redirect=inc.example.com", "192.0.2.31",
		  SPF_RESULT_FAIL, "-all" },
		/* redirect only when nothing matched; position is free */
		{ "v=spf1 redirect=inc.example.com ip4:192.0.2.31",
		  "192.0.2.31", SPF_RESULT_PASS, "ip4:192.0.2.31" },
		{ "v=spf1 -all redirect=inc.example.com", "192.0.2.30",
		  SPF_RESULT_FAIL, "-all" },
		/* unknown modifiers are ignored */
		{ "v=spf1 foo=bar x-y.z=%{d} -all", "192.0.2.1",
		  SPF_RESULT_FAIL, "-all" },
		{ "v=spf1  ip4:192.0.2.1   -all  ", "192.0.2.1",
		  SPF_RESULT_PASS, "ip4:192.0.2.1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const zrr zone[] = {
			{ "example.com", "TXT", cases[i].rec },
			{ "example.com", "A", "192.0.2.10" },
			{ "example.com", "AAAA", "2001:db8:1:1::10" },
			{ "example.com", "MX", "mail.example.com" },
			{ "mail.example.com", "A", "192.0.2.20" },
			{ "mail.example.com", "AAAA", "2001:db8:1::20" },
			{ "20.2.0.192.in-addr.arpa", "PTR",
			  "mail.example.com" },
			{ "192.0.2.66.bl.example.com", "A", "127.0.0.2" },
			{ "listed.example.com", "A", "127.0.0.2" },
			{ "inc.example.com", "TXT",
			  "v=spf1 +ip4:192.0.2.30 -all" },
			{ NULL, NULL, NULL },
		};
		run_info ri;
		spf_result r = zone_run(zone, cases[i].ip, "example.com", &ri);
		if (r != cases[i].want)
			fail_msg("%s from %s: %s (%s), want %s; %s",
				 cases[i].rec, cases[i].ip,
				 spf_result_name(r), ri.out.reason,
				 spf_result_name(cases[i].want), ri.log);
		assert_string_equal(ri.out.mechanism, cases[i].mech);
	}
}

/* Record selection (§4.5) and the initial domain (§4.3). */
static void test_selection(void **state)
{
	(void)state;
	static const zrr zone[] = {
		{ "none.example", "A", "192.0.2.1" },
		{ "other.example", "TXT", "v=spf10 -all" },
		{ "other.example", "TXT", "google-site-verification=x" },
		{ "two.example", "TXT", "v=spf1 -all" },
		{ "two.example", "TXT", "v=spf1 +all" },
		{ "one.example", "TXT", "something else" },
		{ "one.example", "TXT", "v=spf1 -all" },
		{ "tab.example", "TXT", "v=spf1\t-all" },
		{ "servfail.example", "SERVFAIL", "" },
		{ "timeout.example", "TIMEOUT", "" },
		{ NULL, NULL, NULL },
	};
	run_info ri;
	EXPECT(zone, "192.0.2.1", "nx.example", SPF_RESULT_NONE);
	EXPECT(zone, "192.0.2.1", "none.example", SPF_RESULT_NONE);
	EXPECT(zone, "192.0.2.1", "other.example", SPF_RESULT_NONE);
	EXPECT(zone, "192.0.2.1", "two.example", SPF_RESULT_PERMERROR);
	EXPECT(zone, "192.0.2.1", "one.example", SPF_RESULT_FAIL);
	EXPECT(zone, "192.0.2.1", "ONE.Example.", SPF_RESULT_FAIL);
	/* "v=spf1" ends at SP or the end: a tab makes it no SPF record */
	EXPECT(zone, "192.0.2.1", "tab.example", SPF_RESULT_NONE);
	EXPECT(zone, "192.0.2.1", "servfail.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "timeout.example", SPF_RESULT_TEMPERROR);
	/* malformed or single-label domains: none, no query */
	static const char *bad[] = { "", "com", "a..example", ".example",
				     "[192.0.2.1]", "[192.0.2.1].x", "a b.example",
				     "a+b.example", "a\\b.example", NULL };
	for (size_t i = 0; bad[i] != NULL; i++) {
		assert_int_equal(zone_run(zone, "192.0.2.1", bad[i], &ri),
				 SPF_RESULT_NONE);
		assert_int_equal(ri.steps, 0);
	}
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	for (size_t i = 60; i < sizeof(longname); i += 61)
		longname[i] = '.';
	longname[254] = '\0';       /* 254 octets: too long */
	assert_int_equal(zone_run(zone, "192.0.2.1", longname, &ri),
			 SPF_RESULT_NONE);
	assert_int_equal(ri.steps, 0);
	longname[253] = '\0';
	if (longname[252] == '.')
		longname[252] = 'a';
	assert_int_equal(zone_run(zone, "192.0.2.1", longname, &ri),
			 SPF_RESULT_NONE);     /* asked, NXDOMAIN */
	assert_int_equal(ri.steps, 1);
	/* a 64-octet label */
	char lab[80];
	memset(lab, 'b', 64);
	memcpy(lab + 64, ".example", 9);
	assert_int_equal(zone_run(zone, "192.0.2.1", lab, &ri),
			 SPF_RESULT_NONE);
	assert_int_equal(ri.steps, 0);
	/* a record over SPF_RECORD_MAX */
	static char huge[SPF_RECORD_MAX + 20];
	memcpy(huge, "v=spf1", 6);
	memset(huge + 6, ' ', sizeof(huge) - 7);
	memcpy(huge + sizeof(huge) - 6, "-all", 5);
	const zrr hz[] = { { "huge.example", "TXT", huge },
			   { NULL, NULL, NULL } };
	EXPECT(hz, "192.0.2.1", "huge.example", SPF_RESULT_PERMERROR);
}

/* §4.6: a syntax error anywhere is a permerror, before any lookup. */
static void test_syntax(void **state)
{
	(void)state;
	static const char *bad[] = {
		"v=spf1 -all foo",
		"v=spf1 -all a:",
		"v=spf1 -all a:example",                /* no domain-end */
		"v=spf1 -all a:/24",
		"v=spf1 -all a/33",
		"v=spf1 -all a//129",
		"v=spf1 -all a/024",
		"v=spf1 -all a/24/64",
		"v=spf1 -all mx:example.com//",
		"v=spf1 -all ip4:192.0.2.256",
		"v=spf1 -all ip4:192.0.2",
		"v=spf1 -all ip4:192.0.2.01",
		"v=spf1 -all ip4:192.0.2.1/33",
		"v=spf1 -all ip4:192.0.2.1//64",
		"v=spf1 -all ip4",
		"v=spf1 -all ip6:2001:db8::1/129",
		"v=spf1 -all ip6:2001:db8:::1",
		"v=spf1 -all ip6:192.0.2.1",
		"v=spf1 -all ip6",
		"v=spf1 -all include",
		"v=spf1 -all include:",
		"v=spf1 -all exists",
		"v=spf1 -all allx",
		"v=spf1 -all all:x.example",
		"v=spf1 -all ptr/24",
		"v=spf1 -all +redirect=x.example",
		"v=spf1 -all redirect=x.example redirect=y.example",
		"v=spf1 -all exp=x.example exp=y.example",
		"v=spf1 -all redirect=",
		"v=spf1 -all exp=%{c}.example",
		"v=spf1 -all exists:%{t}.example",
		"v=spf1 -all exists:%{d0}.example",
		"v=spf1 -all exists:%(i).example",
		"v=spf1 -all a:exa%mple.com",
		"v=spf1 -all foo=%",
		"v=spf1 -all =bar",
		"v=spf1 -all 1foo=bar",
		"v=spf1 -all -",
		"v=spf1 -all\t",
		"v=spf1 -all\x80",
		"v=spf1 -all a:example.com\x01",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const zrr zone[] = { { "example.com", "TXT", bad[i] },
				     { NULL, NULL, NULL } };
		run_info ri;
		spf_result r = zone_run(zone, "192.0.2.1", "example.com", &ri);
		if (r != SPF_RESULT_PERMERROR)
			fail_msg("%s: %s (%s)", bad[i], spf_result_name(r),
				 ri.out.reason);
		assert_int_equal(ri.steps, 1);
		assert_int_equal(ri.out.lookups, 0);
	}
	/* what is fine, though unusual */
	static const char *good[] = {
		"v=spf1 -all a:example.com.",
		"v=spf1 -all a:%{d}",
		"v=spf1 -all a:%{d}/24//64",
		"v=spf1 -all a:x.example-2",
		"v=spf1 -all a:x.4-2",
		"v=spf1 -all ip6:::ffff:192.0.2.1/128",
		"v=spf1 -all ip6:::/0 ip4:0.0.0.0/0",
		"v=spf1 -all exp=%{d}",
		"v=spf1 -all unknown.mod_x-y=a%%b%{c}",
		"v=spf1 -all include=notamechanism",
		"v=spf1 -All MX:EXAMPLE.COM PTR Exists:%{D}.Example",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const zrr zone[] = { { "example.com", "TXT", good[i] },
				     { NULL, NULL, NULL } };
		run_info ri;
		spf_result r = zone_run(zone, "192.0.2.1", "example.com", &ri);
		if (r != SPF_RESULT_FAIL)
			fail_msg("%s: %s (%s)", good[i], spf_result_name(r),
				 ri.out.reason);
	}
}

/* ------------------------------------------------------------ limits */

static void test_lookup_limit(void **state)
{
	(void)state;
	/* a chain of includes: 10 is fine, the 11th lookup is not */
	char names[12][32], recs[12][64];
	zrr zone[16];
	for (int k = 0; k <= 11; k++) {
		snprintf(names[k], sizeof(names[k]), "d%d.example", k);
		if (k < 11)
			snprintf(recs[k], sizeof(recs[k]),
				 "v=spf1 include:d%d.example -all", k + 1);
		else
			snprintf(recs[k], sizeof(recs[k]),
				 "v=spf1 ip4:192.0.2.1");
		zone[k] = (zrr){ names[k], "TXT", recs[k] };
	}
	zone[12] = (zrr){ NULL, NULL, NULL };
	run_info ri;
	/* from d1: 10 includes reach d11, which passes */
	assert_int_equal(zone_run(zone, "192.0.2.1", "d1.example", &ri),
			 SPF_RESULT_PASS);
	assert_int_equal(ri.out.lookups, 10);
	/* from d0: the 11th */
	assert_int_equal(zone_run(zone, "192.0.2.1", "d0.example", &ri),
			 SPF_RESULT_PERMERROR);
	assert_int_equal(ri.out.lookups, 10);
	assert_non_null(strstr(ri.out.reason, "10 DNS lookups"));

	/* eleven a mechanisms in one record; ip4 and all are free */
	static const zrr flat[] = {
		{ "ten.example", "TXT",
		  "v=spf1 a a a a a a a a a a ip4:192.0.2.1 -all" },
		{ "eleven.example", "TXT",
		  "v=spf1 a a a a a a a a a a a ip4:192.0.2.1 -all" },
		{ "ten.example", "A", "198.51.100.1" },
		{ "eleven.example", "A", "198.51.100.1" },
		{ "loop.example", "TXT", "v=spf1 include:loop.example -all" },
		{ "r1.example", "TXT", "v=spf1 redirect=r2.example" },
		{ "r2.example", "TXT", "v=spf1 redirect=r1.example" },
		{ "mutual.example", "TXT",
		  "v=spf1 include:mutual2.example -all" },
		{ "mutual2.example", "TXT",
		  "v=spf1 include:mutual.example -all" },
		{ "mix.example", "TXT",
		  "v=spf1 mx ptr exists:x.mix.example include:i.mix.example "
		  "a a a a a redirect=r.mix.example" },
		{ "i.mix.example", "TXT", "v=spf1 ?all" },
		{ "r.mix.example", "TXT", "v=spf1 +all" },
		{ "mix.example", "MX", "mx.mix.example" },
		{ "mix.example", "A", "198.51.100.1" },
		{ "x.mix.example", "AAAA", "2001:db8::1" },
		{ NULL, NULL, NULL },
	};
	EXPECT(flat, "192.0.2.1", "ten.example", SPF_RESULT_PASS);
	EXPECT(flat, "192.0.2.1", "eleven.example", SPF_RESULT_PERMERROR);
	EXPECT(flat, "192.0.2.1", "loop.example", SPF_RESULT_PERMERROR);
	EXPECT(flat, "192.0.2.1", "r1.example", SPF_RESULT_PERMERROR);
	EXPECT(flat, "192.0.2.1", "mutual.example", SPF_RESULT_PERMERROR);
	/* mx ptr exists include a*5 = 9, redirect the 10th: pass; the
	 * void lookups (ptr, exists, mx's host has no A... ) stay at 2 */
	assert_int_equal(zone_run(flat, "192.0.2.1", "mix.example", &ri),
			 SPF_RESULT_PASS);
	assert_int_equal(ri.out.lookups, 10);
	assert_int_equal(ri.out.voids, 2);
	/* a lower limit */
	spf_limits lim = { 3, 2, 10, 10 };
	assert_int_equal(zone_run_lim(flat, "192.0.2.1", "ten.example", "u",
				      &lim, &ri), SPF_RESULT_PERMERROR);
	assert_int_equal(ri.out.lookups, 3);
}

static void test_void_limit(void **state)
{
	(void)state;
	static const zrr zone[] = {
		{ "two.example", "TXT",
		  "v=spf1 a:nx1.example mx:nx2.example ip4:192.0.2.1 -all" },
		{ "three.example", "TXT",
		  "v=spf1 a:nx1.example mx:nx2.example exists:nodata.example "
		  "ip4:192.0.2.1 -all" },
		{ "ptrvoid.example", "TXT",
		  "v=spf1 ptr a:nx1.example a:nodata.example "
		  "ip4:192.0.2.1 -all" },
		{ "nodata.example", "TXT", "not spf" },
		{ NULL, NULL, NULL },
	};
	run_info ri;
	assert_int_equal(zone_run(zone, "192.0.2.1", "two.example", &ri),
			 SPF_RESULT_PASS);
	assert_int_equal(ri.out.voids, 2);
	assert_int_equal(zone_run(zone, "192.0.2.1", "three.example", &ri),
			 SPF_RESULT_PERMERROR);
	assert_non_null(strstr(ri.out.reason, "void"));
	/* the PTR NXDOMAIN counts too */
	assert_int_equal(zone_run(zone, "192.0.2.1", "ptrvoid.example", &ri),
			 SPF_RESULT_PERMERROR);
	spf_limits lim = { 10, 0, 10, 10 };
	assert_int_equal(zone_run_lim(zone, "192.0.2.1", "two.example", "u",
				      &lim, &ri), SPF_RESULT_PERMERROR);
}

static void test_mx_ptr_limits(void **state)
{
	(void)state;
	static char mxn[11][32], ptrn[11][32];
	zrr zone[64];
	size_t k = 0;
	zone[k++] = (zrr){ "ten.example", "TXT", "v=spf1 mx:ten.example -all" };
	zone[k++] = (zrr){ "eleven.example", "TXT",
			   "v=spf1 mx:eleven.example -all" };
	zone[k++] = (zrr){ "p.example", "TXT", "v=spf1 ptr -all" };
	for (int i = 0; i < 11; i++) {
		snprintf(mxn[i], sizeof(mxn[i]), "mx%d.example", i);
		snprintf(ptrn[i], sizeof(ptrn[i]), "h%d.p.example", i);
		if (i < 10)
			zone[k++] = (zrr){ "ten.example", "MX", mxn[i] };
		zone[k++] = (zrr){ "eleven.example", "MX", mxn[i] };
		zone[k++] = (zrr){ "1.2.0.192.in-addr.arpa", "PTR", ptrn[i] };
	}
	zone[k++] = (zrr){ "mx9.example", "A", "192.0.2.9" };
	zone[k++] = (zrr){ "h9.p.example", "A", "192.0.2.1" };
	zone[k++] = (zrr){ "h10.p.example", "A", "192.0.2.2" };
	zone[k] = (zrr){ NULL, NULL, NULL };
	run_info ri;
	assert_int_equal(zone_run(zone, "192.0.2.9", "ten.example", &ri),
			 SPF_RESULT_PASS);
	assert_int_equal(ri.steps, 1 + 1 + 10);
	assert_int_equal(zone_run(zone, "192.0.2.9", "eleven.example", &ri),
			 SPF_RESULT_PERMERROR);
	assert_non_null(strstr(ri.out.reason, "MX"));
	/* the 10th PTR name validates; an 11th would be ignored */
	assert_int_equal(zone_run(zone, "192.0.2.1", "p.example", &ri),
			 SPF_RESULT_PASS);
	assert_int_equal(zone_run(zone, "192.0.2.2", "p.example", &ri),
			 SPF_RESULT_FAIL);
	assert_true(strstr(ri.log, "h10.p.example") == NULL);
	spf_limits lim = { 10, 2, 3, 10 };
	assert_int_equal(zone_run_lim(zone, "192.0.2.9", "ten.example", "u",
				      &lim, &ri), SPF_RESULT_PERMERROR);
}

/* ------------------------------------------------------------ IPv6 */

static void test_ipv6_cidr(void **state)
{
	(void)state;
	static const struct {
		const char *rec;
		const char *ip;
		spf_result want;
	} cases[] = {
		{ "v=spf1 ip6:::/0 -all", "2001:db8::1", SPF_RESULT_PASS },
		{ "v=spf1 ip6:::/0 -all", "192.0.2.1", SPF_RESULT_FAIL },
		{ "v=spf1 ip6:2001:db8::1/128 -all", "2001:db8::1",
		  SPF_RESULT_PASS },
		{ "v=spf1 ip6:2001:db8::1 -all", "2001:db8::2", SPF_RESULT_FAIL },
		{ "v=spf1 ip6:2001:db8::/127 -all", "2001:db8::1",
		  SPF_RESULT_PASS },
		{ "v=spf1 ip6:2001:db8::/127 -all", "2001:db8::2",
		  SPF_RESULT_FAIL },
		{ "v=spf1 ip6:2001:db8::/1 -all", "7fff::1", SPF_RESULT_PASS },
		{ "v=spf1 ip6:2001:db8::/1 -all", "8000::1", SPF_RESULT_FAIL },
		{ "v=spf1 ip6:2001:db8:8000::/33 -all", "2001:db8:ffff::",
		  SPF_RESULT_PASS },
		{ "v=spf1 ip6:2001:db8:8000::/33 -all", "2001:db8:7fff::",
		  SPF_RESULT_FAIL },
		{ "v=spf1 ip6:2001:DB8::/32 -all", "2001:db8::1",
		  SPF_RESULT_PASS },
		/* the host bits of the network are ignored */
		{ "v=spf1 ip6:2001:db8::ffff/64 -all", "2001:db8::1",
		  SPF_RESULT_PASS },
		{ "v=spf1 ip4:192.0.2.255/24 -all", "192.0.2.1",
		  SPF_RESULT_PASS },
		{ "v=spf1 ip4:192.0.2.1/31 -all", "192.0.2.0", SPF_RESULT_PASS },
		{ "v=spf1 ip4:192.0.2.1/31 -all", "192.0.2.2", SPF_RESULT_FAIL },
		/* an IPv4-mapped client is IPv4 */
		{ "v=spf1 ip4:192.0.2.1 -all", "::ffff:192.0.2.1",
		  SPF_RESULT_PASS },
		{ "v=spf1 ip6:::ffff:0:0/96 -all", "::ffff:192.0.2.1",
		  SPF_RESULT_FAIL },
		/* a with both lengths, AAAA for an IPv6 client */
		{ "v=spf1 a/24//126 -all", "2001:db8::13", SPF_RESULT_PASS },
		{ "v=spf1 a/24//127 -all", "2001:db8::13", SPF_RESULT_FAIL },
		{ "v=spf1 a//0 -all", "ffff::1", SPF_RESULT_PASS },
		{ "v=spf1 a/0 -all", "ffff::1", SPF_RESULT_FAIL },
		{ "v=spf1 a/0 -all", "203.0.113.9", SPF_RESULT_PASS },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const zrr zone[] = {
			{ "example.com", "TXT", cases[i].rec },
			{ "example.com", "A", "192.0.2.10" },
			{ "example.com", "AAAA", "2001:db8::10" },
			{ NULL, NULL, NULL },
		};
		run_info ri;
		spf_result r = zone_run(zone, cases[i].ip, "example.com", &ri);
		if (r != cases[i].want)
			fail_msg("%s from %s: %s (%s), want %s", cases[i].rec,
				 cases[i].ip, spf_result_name(r),
				 ri.out.reason,
				 spf_result_name(cases[i].want));
	}
	/* the PTR name of an IPv6 client */
	static const zrr pz[] = {
		{ "example.com", "TXT", "v=spf1 ptr -all" },
		{ "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0."
		  "2.ip6.arpa", "PTR", "h.example.com." },
		{ "h.example.com", "AAAA", "2001:db8::cb01" },
		{ NULL, NULL, NULL },
	};
	EXPECT(pz, "2001:db8::cb01", "example.com", SPF_RESULT_PASS);
}

/* ------------------------------------------------------------ errors */

static void test_temperror(void **state)
{
	(void)state;
	static const zrr zone[] = {
		{ "inc.example", "TXT", "v=spf1 include:sf.example -all" },
		{ "a.example", "TXT", "v=spf1 a:sf.example -all" },
		{ "mx.example", "TXT", "v=spf1 mx:to.example -all" },
		{ "mxhost.example", "TXT", "v=spf1 mx -all" },
		{ "mxhost.example", "MX", "sf.example" },
		{ "ex.example", "TXT", "v=spf1 exists:to.example -all" },
		{ "ptr.example", "TXT", "v=spf1 ptr ip4:192.0.2.1 -all" },
		{ "1.2.0.192.in-addr.arpa", "SERVFAIL", "" },
		{ "ptrname.example", "TXT", "v=spf1 ptr -all" },
		{ "2.2.0.192.in-addr.arpa", "PTR", "sf.ptrname.example" },
		{ "2.2.0.192.in-addr.arpa", "PTR", "ok.ptrname.example" },
		{ "sf.ptrname.example", "SERVFAIL", "" },
		{ "ok.ptrname.example", "A", "192.0.2.2" },
		{ "redir.example", "TXT", "v=spf1 redirect=to.example" },
		{ "sf.example", "SERVFAIL", "" },
		{ "to.example", "TIMEOUT", "" },
		/* none where a record is needed */
		{ "incnone.example", "TXT", "v=spf1 include:nx.example -all" },
		{ "redirnone.example", "TXT", "v=spf1 redirect=nx.example" },
		{ "incperm.example", "TXT", "v=spf1 include:perm.example +all" },
		{ "perm.example", "TXT", "v=spf1 bogus" },
		{ "inctemp.example", "TXT", "v=spf1 include:a.example +all" },
		{ NULL, NULL, NULL },
	};
	EXPECT(zone, "192.0.2.1", "inc.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "a.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "mx.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "mxhost.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "ex.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "redir.example", SPF_RESULT_TEMPERROR);
	EXPECT(zone, "192.0.2.1", "inctemp.example", SPF_RESULT_TEMPERROR);
	/* §5.5: ptr errors do not end the evaluation */
	EXPECT(zone, "192.0.2.1", "ptr.example", SPF_RESULT_PASS);
	EXPECT(zone, "192.0.2.2", "ptrname.example", SPF_RESULT_PASS);
	EXPECT(zone, "192.0.2.1", "incnone.example", SPF_RESULT_PERMERROR);
	EXPECT(zone, "192.0.2.1", "redirnone.example", SPF_RESULT_PERMERROR);
	EXPECT(zone, "192.0.2.1", "incperm.example", SPF_RESULT_PERMERROR);
}

/* ------------------------------------------------------------ exp */

static void test_explanation(void **state)
{
	(void)state;
	static const zrr zone[] = {
		{ "example.com", "TXT",
		  "v=spf1 ip4:192.0.2.1 -all exp=explain._spf.%{d}" },
		{ "explain._spf.example.com", "TXT",
		  "%{i} is not one of %{d}'s designated mail servers; "
		  "see %{r} at %{t}, %{S}" },
		{ "two.example", "TXT", "v=spf1 -all exp=e.two.example" },
		{ "e.two.example", "TXT", "one" },
		{ "e.two.example", "TXT", "two" },
		{ "bad.example", "TXT", "v=spf1 -all exp=e.bad.example" },
		{ "e.bad.example", "TXT", "100% bad" },
		{ "sf.example", "TXT", "v=spf1 -all exp=e.sf.example" },
		{ "e.sf.example", "SERVFAIL", "" },
		{ "nx.example", "TXT", "v=spf1 -all exp=e.nx.example" },
		{ "soft.example", "TXT", "v=spf1 ~all exp=e.two.example" },
		{ "inc.example", "TXT",
		  "v=spf1 include:inner.example -all exp=outer.inc.example" },
		{ "inner.example", "TXT", "v=spf1 -all exp=inner.exp.example" },
		{ "outer.inc.example", "TXT", "outer %{d}" },
		{ "inner.exp.example", "TXT", "inner" },
		{ "redir.example", "TXT",
		  "v=spf1 redirect=target.example exp=orig.exp.example" },
		{ "target.example", "TXT", "v=spf1 -all exp=t.exp.example" },
		{ "orig.exp.example", "TXT", "original" },
		{ "t.exp.example", "TXT", "target %{d} %{o}" },
		{ NULL, NULL, NULL },
	};
	run_info ri;
	assert_int_equal(zone_run_lim(zone, "192.0.2.3", "example.com",
				      "strong-bad", NULL, &ri),
			 SPF_RESULT_FAIL);
	assert_string_equal(ri.out.explanation,
			    "192.0.2.3 is not one of example.com's designated "
			    "mail servers; see mx.test at 1767225600, "
			    "strong-bad%40example.com");
	assert_string_equal(ri.out.mechanism, "-all");
	assert_string_equal(ri.out.domain, "example.com");
	assert_int_equal(ri.out.lookups, 0);     /* exp is not counted */
	assert_int_equal(zone_run(zone, "192.0.2.1", "example.com", &ri),
			 SPF_RESULT_PASS);
	assert_string_equal(ri.out.explanation, "");
	assert_int_equal(ri.steps, 1);           /* no exp lookup on pass */
	static const char *empty[] = { "two.example", "bad.example",
				       "sf.example", "nx.example",
				       "soft.example", NULL };
	for (size_t i = 0; empty[i] != NULL; i++) {
		spf_result r = zone_run(zone, "192.0.2.9", empty[i], &ri);
		assert_true(r == SPF_RESULT_FAIL || r == SPF_RESULT_SOFTFAIL);
		assert_string_equal(ri.out.explanation, "");
	}
	/* an include's exp is never used, the outer record's is */
	assert_int_equal(zone_run(zone, "192.0.2.9", "inc.example", &ri),
			 SPF_RESULT_FAIL);
	assert_string_equal(ri.out.explanation, "outer inc.example");
	/* after a redirect, the target's exp */
	assert_int_equal(zone_run(zone, "192.0.2.9", "redir.example", &ri),
			 SPF_RESULT_FAIL);
	assert_string_equal(ri.out.explanation,
			    "target target.example redir.example");
	assert_string_equal(ri.out.domain, "target.example");
}

/* ------------------------------------------------------------ protocol */

static void test_protocol(void **state)
{
	(void)state;
	spf_ip ip = ip_of("192.0.2.1");
	const char *err = NULL;
	spf_eval *ev = spf_new(&ip, "example.com", "u", "h.example", NULL,
			       T_NOW, NULL, &err);
	assert_non_null(ev);
	assert_null(spf_outcome_get(ev));
	/* nothing asked yet */
	assert_int_equal(spf_answer(ev, SPF_DNS_OK, NULL, 0), -1);
	spf_query q;
	assert_int_equal(spf_step(ev, &q), SPF_NEED_DNS);
	assert_int_equal(q.type, SPF_Q_TXT);
	assert_string_equal(q.name, "example.com");
	/* records of the wrong kind are ignored: a TXT with NULL data */
	spf_rr rr[2] = { { NULL, 5 },
			 { (const uint8_t *)"v=spf1 a -all", 13 } };
	assert_int_equal(spf_answer(ev, SPF_DNS_OK, rr, 2), 0);
	assert_int_equal(spf_answer(ev, SPF_DNS_OK, rr, 2), -1);
	assert_int_equal(spf_step(ev, &q), SPF_NEED_DNS);
	assert_int_equal(q.type, SPF_Q_A);
	/* an AAAA-sized answer to an A query does not match */
	uint8_t a16[16] = { 192, 0, 2, 1 };
	spf_rr ar[2] = { { a16, 16 }, { NULL, 4 } };
	assert_int_equal(spf_answer(ev, SPF_DNS_OK, ar, 2), 0);
	assert_int_equal(spf_step(ev, &q), SPF_DONE);
	assert_int_equal(spf_step(ev, &q), SPF_DONE);
	const spf_outcome *o = spf_outcome_get(ev);
	assert_non_null(o);
	assert_int_equal(o->result, SPF_RESULT_FAIL);
	assert_int_equal(o->queries, 2);
	spf_free(&ev);
	spf_free(&ev);
	spf_free(NULL);

	/* refusals */
	assert_null(spf_new(NULL, "example.com", NULL, NULL, NULL, 0, NULL,
			    &err));
	spf_ip bad = { 0 };
	assert_null(spf_new(&bad, "example.com", NULL, NULL, NULL, 0, NULL,
			    &err));
	char big[SPF_LOCAL_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_null(spf_new(&ip, "example.com", big, NULL, NULL, 0, NULL,
			    &err));
	assert_null(spf_new(&ip, "example.com", "a\nb", NULL, NULL, 0, NULL,
			    &err));
	assert_null(spf_new(&ip, "example.com", "u", big, NULL, 0, NULL,
			    &err));
	spf_limits lim = { 11, 2, 10, 10 };
	assert_null(spf_new(&ip, "example.com", "u", NULL, NULL, 0, &lim,
			    &err));
	lim = (spf_limits){ 10, 3, 10, 10 };
	assert_null(spf_new(&ip, "example.com", "u", NULL, NULL, 0, &lim,
			    &err));
	lim = (spf_limits){ 0, 2, 10, 10 };
	assert_null(spf_new(&ip, "example.com", "u", NULL, NULL, 0, &lim,
			    &err));
	for (int r = SPF_RESULT_NONE; r <= SPF_RESULT_PERMERROR; r++)
		assert_non_null(spf_result_name((spf_result)r));
	assert_null(spf_result_name((spf_result)99));
	assert_string_equal(spf_result_name(SPF_RESULT_SOFTFAIL), "softfail");
}

/* Names the evaluator would not ask for: no match, no query. */
static void test_bad_expanded_names(void **state)
{
	(void)state;
	static const zrr zone[] = {
		{ "example.com", "TXT",
		  "v=spf1 exists:%{l}.x.example.com a:%{l}.example.com "
		  "mx:%{l}.example.com ptr:%{l}.example.com ?all" },
		{ "inc.example", "TXT", "v=spf1 include:%{l}.example.com -all" },
		{ NULL, NULL, NULL },
	};
	run_info ri;
	/* "a..b" makes an empty label */
	assert_int_equal(zone_run_lim(zone, "192.0.2.1", "example.com",
				      "a..b", NULL, &ri), SPF_RESULT_NEUTRAL);
	assert_int_equal(ri.steps, 1);
	assert_int_equal(ri.out.lookups, 4);
	assert_int_equal(zone_run_lim(zone, "192.0.2.1", "inc.example",
				      "a..b", NULL, &ri),
			 SPF_RESULT_PERMERROR);
	/* a backslash is not asked for either */
	assert_int_equal(zone_run_lim(zone, "192.0.2.1", "example.com",
				      "a\\b", NULL, &ri), SPF_RESULT_NEUTRAL);
	assert_int_equal(ri.steps, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_appendix_a1),
		cmocka_unit_test(test_appendix_a3),
		cmocka_unit_test(test_appendix_a4_a5),
		cmocka_unit_test(test_macro_examples),
		cmocka_unit_test(test_macro_bounds),
		cmocka_unit_test(test_mechanisms_and_qualifiers),
		cmocka_unit_test(test_selection),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_lookup_limit),
		cmocka_unit_test(test_void_limit),
		cmocka_unit_test(test_mx_ptr_limits),
		cmocka_unit_test(test_ipv6_cidr),
		cmocka_unit_test(test_temperror),
		cmocka_unit_test(test_explanation),
		cmocka_unit_test(test_protocol),
		cmocka_unit_test(test_bad_expanded_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
