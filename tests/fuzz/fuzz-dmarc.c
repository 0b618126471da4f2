/*
 * fuzz-dmarc.c — libFuzzer target for src/mime/dmarc.c (DMARC, RFC 7489):
 * what a sending domain controls, its _dmarc TXT record and the domains
 * of its mail (From, MAIL FROM, DKIM d=).
 *
 * Input: byte 0 is flags (SPF result, the discovery status, partial DKIM
 * signatures), byte 1 the pct random value; the rest is cut at NUL bytes:
 * the record, then the From domain, the SPF domain and up to 20 DKIM
 * domains.
 *
 * Properties:
 *  - record: a refusal has a reason and leaves the defaults (p=none,
 *    pct=100, ri=86400, fo "0", rf "afrf"); what parses is within its
 *    limits (pct <= 100, rua/ruf/fo/rf NUL-terminated within their sizes),
 *    sp equals p when not given, a defaulted p has p = sp = none; the same
 *    record with every ';' spelt " ;\r\n\t" (blanks and folding) parses the
 *    same; dmarc_txt_select on it alone agrees;
 *  - domains: the organisational domain of a name is a suffix of it (lower
 *    case) and its own organisational domain; dmarc_query_names gives
 *    "_dmarc." + the name and, for 2, the organisational domain; strict
 *    alignment implies relaxed, both are symmetric, a valid name aligns
 *    with itself;
 *  - evaluation: the result and disposition in range, the disposition
 *    none unless fail, pass exactly when SPF (passed) or a whole-body DKIM
 *    signature is aligned as dmarc_aligned says, a partial signature never
 *    counts, and sampled_out only with random >= pct.
 */
#include "dmarc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-dmarc: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

#define MAX_DKIM 20

static bool defaults(const dmarc_record *r)
{
	return r->p == DMARC_POLICY_NONE && r->sp == DMARC_POLICY_NONE &&
	       r->pct == 100 && r->ri == 86400 && !r->adkim_strict &&
	       !r->aspf_strict && strcmp(r->fo, "0") == 0 &&
	       strcmp(r->rf, "afrf") == 0 && r->rua[0] == '\0' &&
	       r->ruf[0] == '\0';
}

static bool same_record(const dmarc_record *a, const dmarc_record *b)
{
	return a->p == b->p && a->sp == b->sp && a->sp_given == b->sp_given &&
	       a->pct == b->pct && a->adkim_strict == b->adkim_strict &&
	       a->aspf_strict == b->aspf_strict && a->ri == b->ri &&
	       a->warnings == b->warnings && strcmp(a->fo, b->fo) == 0 &&
	       strcmp(a->rf, b->rf) == 0;
}

static void check_record(const uint8_t *rec, size_t len, dmarc_record *r,
			 int *rc_r)
{
	const char *err = NULL;
	int rc = dmarc_record_parse(rec, len, r, &err);
	*rc_r = rc;
	CHECK(rc == 0 || rc == -1);
	if (rc != 0) {
		CHECK(err != NULL);
		CHECK(defaults(r));
		return;
	}
	CHECK(r->pct <= 100);
	CHECK(strlen(r->rua) <= DMARC_URIS_MAX);
	CHECK(strlen(r->ruf) <= DMARC_URIS_MAX);
	CHECK(strlen(r->fo) <= DMARC_FO_MAX && r->fo[0] != '\0');
	CHECK(strlen(r->rf) <= DMARC_RF_MAX && r->rf[0] != '\0');
	CHECK(r->p <= DMARC_POLICY_REJECT && r->sp <= DMARC_POLICY_REJECT);
	if (!r->sp_given)
		CHECK(r->sp == r->p);
	if (r->warnings & DMARC_REC_P_DEFAULTED)
		CHECK(r->p == DMARC_POLICY_NONE && r->sp == DMARC_POLICY_NONE &&
		      r->rua[0] != '\0');

	/* ';' spelt with blanks and folding around it: the same */
	static uint8_t wide[DMARC_RECORD_MAX * 6];
	size_t w = 0;
	for (size_t i = 0; i < len; i++) {
		if (rec[i] == ';') {
			memcpy(wide + w, " ;\r\n\t", 5);
			w += 5;
		} else {
			wide[w++] = rec[i];
		}
	}
	if (w <= DMARC_RECORD_MAX) {
		dmarc_record r2;
		CHECK(dmarc_record_parse(wide, w, &r2, &err) == 0);
		CHECK(same_record(r, &r2));
		CHECK(strcmp(r->rua, r2.rua) == 0);
	}
	/* the record alone among TXT answers (no NUL inside: it is one) */
	if (memchr(rec, '\0', len) == NULL) {
		char *s = malloc(len + 1);
		CHECK(s != NULL);
		memcpy(s, rec, len);
		s[len] = '\0';
		const char *txt[] = { "v=spf1 -all", s };
		dmarc_record r3;
		dmarc_txt_status st = dmarc_txt_select(txt, 2, &r3, &err);
		CHECK(st == DMARC_TXT_OK);
		CHECK(same_record(r, &r3));
		free(s);
	}
}

static void check_domain(const char *d)
{
	char org[DMARC_DOMAIN_MAX + 1], org2[DMARC_DOMAIN_MAX + 1];
	char names[2][DMARC_NAME_MAX + 1];
	const char *err = NULL;
	int rc = dmarc_org_domain(NULL, d, org, &err);
	int nq = dmarc_query_names(NULL, d, names, &err);
	if (rc < 0) {
		CHECK(org[0] == '\0' && err != NULL);
		CHECK(nq == -1);
		CHECK(!dmarc_aligned(NULL, d, d, false));
		return;
	}
	CHECK(nq == 1 || nq == 2);
	CHECK(strncmp(names[0], "_dmarc.", 7) == 0);
	size_t n = strlen(names[0] + 7);
	CHECK(n >= 1 && n <= DMARC_DOMAIN_MAX);
	CHECK(dmarc_aligned(NULL, d, d, true));
	CHECK(dmarc_aligned(NULL, d, names[0] + 7, true));
	if (rc == 0) {
		CHECK(org[0] == '\0');
		CHECK(nq == 1);
		return;
	}
	size_t on = strlen(org);
	CHECK(on >= 1 && on <= n);
	/* a suffix of the lower-cased name, on a label boundary */
	CHECK(strcmp(names[0] + 7 + n - on, org) == 0);
	CHECK(on == n || names[0][7 + n - on - 1] == '.');
	CHECK(dmarc_org_domain(NULL, org, org2, &err) == 1);
	CHECK(strcmp(org, org2) == 0);
	if (nq == 2) {
		CHECK(strcmp(names[1] + 7, org) == 0 && on < n);
	} else {
		CHECK(on == n);
	}
	CHECK(dmarc_aligned(NULL, d, org, false));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	unsigned rnd = data[1];
	data += 2;
	size -= 2;

	/* the whole input as a message: the From fields DMARC reads */
	dmarc_from fr;
	dmarc_from_get(data, size, &fr);
	size_t dl = strlen(fr.domain);
	CHECK(dl <= DMARC_DOMAIN_MAX);
	CHECK(dl == 0 || (fr.fields == 1 && fr.mailboxes == 1));
	for (size_t i = 0; i < dl; i++)
		CHECK(fr.domain[i] < 'A' || fr.domain[i] > 'Z');
	CHECK(dl == 0 || fr.domain[dl - 1] != '.');

	/* pieces at NUL */
	const uint8_t *piece[3 + MAX_DKIM];
	size_t plen[3 + MAX_DKIM], np = 0, start = 0;
	for (size_t i = 0; i <= size && np < 3 + MAX_DKIM; i++) {
		if (i == size || data[i] == '\0') {
			piece[np] = data + start;
			plen[np] = i - start;
			np++;
			start = i + 1;
		}
	}
	dmarc_record rec;
	int rc;
	check_record(piece[0], plen[0], &rec, &rc);

	/* the domains, NUL-terminated copies */
	static char dom[3 + MAX_DKIM][512];
	for (size_t i = 1; i < np; i++) {
		size_t n = plen[i] < 511 ? plen[i] : 511;
		memcpy(dom[i], piece[i], n);
		dom[i][n] = '\0';
		check_domain(dom[i]);
	}
	if (np < 2)
		return 0;
	const char *from = dom[1];
	const char *spf_dom = np > 2 ? dom[2] : NULL;
	dmarc_dkim dk[MAX_DKIM];
	size_t nd = 0;
	for (size_t i = 3; i < np; i++, nd++) {
		dk[nd].d = dom[i];
		dk[nd].partial = (flags >> (nd % 3)) & 1;
	}
	if (np > 2) {
		bool s = dmarc_aligned(NULL, from, spf_dom, true);
		bool r = dmarc_aligned(NULL, from, spf_dom, false);
		CHECK(!s || r);
		CHECK(s == dmarc_aligned(NULL, spf_dom, from, true));
		CHECK(r == dmarc_aligned(NULL, spf_dom, from, false));
	}

	dmarc_input in;
	memset(&in, 0, sizeof(in));
	in.from_fields = 1;
	in.from_mailboxes = 1;
	in.from_domain = from;
	in.spf = (dmarc_spf)(flags % 7);
	in.spf_domain = spf_dom;
	in.dkim = dk;
	in.n_dkim = nd;
	in.found = rc == 0 ? ((flags & 0x40) ? DMARC_FOUND_ORG :
			      DMARC_FOUND_FROM) :
		   (dmarc_found)((flags >> 3) % 5);
	in.rec = &rec;
	in.random = rnd;
	dmarc_verdict v;
	dmarc_evaluate(NULL, &in, &v);
	CHECK(v.reason != NULL);
	CHECK(dmarc_result_name(v.result) != NULL);
	CHECK(dmarc_policy_name(v.disposition) != NULL);
	char org[DMARC_DOMAIN_MAX + 1];
	const char *err;
	bool from_ok = dmarc_org_domain(NULL, from, org, &err) >= 0;
	if (!from_ok) {
		CHECK(v.result == DMARC_FAIL &&
		      v.disposition == DMARC_POLICY_REJECT);
		return 0;
	}
	if (v.result != DMARC_FAIL)
		CHECK(v.disposition == DMARC_POLICY_NONE);
	if (in.found != DMARC_FOUND_FROM && in.found != DMARC_FOUND_ORG) {
		CHECK(v.result != DMARC_PASS && v.result != DMARC_FAIL);
		return 0;
	}
	bool spf_al = in.spf == DMARC_SPF_PASS && spf_dom != NULL &&
		      dmarc_aligned(NULL, spf_dom, from, rec.aspf_strict);
	bool dkim_al = false;
	size_t first = 0;
	for (size_t i = 0; i < nd && i < DMARC_DKIM_MAX; i++) {
		if (!dk[i].partial &&
		    dmarc_aligned(NULL, dk[i].d, from, rec.adkim_strict)) {
			dkim_al = true;
			first = i;
			break;
		}
	}
	CHECK(v.spf_aligned == spf_al);
	CHECK(v.dkim_aligned == dkim_al);
	if (dkim_al)
		CHECK(v.dkim_index == first);
	CHECK((v.result == DMARC_PASS) == (spf_al || dkim_al));
	CHECK(v.result == DMARC_PASS || v.result == DMARC_FAIL);
	if (v.sampled_out)
		CHECK(rnd >= rec.pct && v.result == DMARC_FAIL);
	if (v.result == DMARC_FAIL && !v.sampled_out)
		CHECK(v.disposition == v.policy);
	CHECK(v.policy == (v.subdomain_policy ? rec.sp : rec.p));
	return 0;
}
