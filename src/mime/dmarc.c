/*
 * dmarc.c — DMARC (RFC 7489): record parser, organisational domain,
 * discovery names, alignment and evaluation.  See dmarc.h for the grammar
 * accepted, what is refused and the limits.  Pure: no I/O, no allocation
 * (libpsl's built-in list is static data; psl_registrable_domain returns a
 * pointer into its argument), stack buffers of fixed size only.
 */
#include "dmarc.h"
#include "mail-header.h"

#include <libpsl.h>
#include <stdlib.h>
#include <string.h>

static bool is_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* VALCHAR of RFC 6376 §3.2: %x21-3A / %x3C-7E (no ';', space, controls). */
static bool valchar(uint8_t c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

/* Case-insensitive s[0..len) == lit. */
static bool same_ci(const uint8_t *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != (uint8_t)lit[i])
			return false;
	return true;
}

static bool same(const uint8_t *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len == n && memcmp(s, lit, n) == 0;
}

/* Skip WSP and folding (CRLF or LF followed by WSP) from pos. */
static size_t skip_fws(const uint8_t *s, size_t len, size_t pos)
{
	for (;;) {
		if (pos < len && is_wsp(s[pos])) {
			pos++;
		} else if (pos + 2 < len && s[pos] == '\r' &&
			   s[pos + 1] == '\n' && is_wsp(s[pos + 2])) {
			pos += 3;
		} else if (pos + 1 < len && s[pos] == '\n' &&
			   is_wsp(s[pos + 1])) {
			pos += 2;
		} else {
			return pos;
		}
	}
}

/* "v" *WSP "=" *WSP "DMARC1": the offset after it, or 0. */
static size_t version_end(const uint8_t *s, size_t len)
{
	if (len == 0 || s[0] != 'v')
		return 0;
	size_t pos = skip_fws(s, len, 1);
	if (pos >= len || s[pos] != '=')
		return 0;
	pos = skip_fws(s, len, pos + 1);
	if (len - pos < 6 || memcmp(s + pos, "DMARC1", 6) != 0)
		return 0;
	return pos + 6;
}

static int parse_policy(const uint8_t *v, size_t n, dmarc_policy *p_r)
{
	if (same_ci(v, n, "none"))
		*p_r = DMARC_POLICY_NONE;
	else if (same_ci(v, n, "quarantine"))
		*p_r = DMARC_POLICY_QUARANTINE;
	else if (same_ci(v, n, "reject"))
		*p_r = DMARC_POLICY_REJECT;
	else
		return -1;
	return 0;
}

/* 1*DIGIT within [0, max] (leading zeros allowed, at most 10 digits). */
static int parse_num(const uint8_t *v, size_t n, uint32_t max, uint32_t *r)
{
	uint64_t x = 0;
	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(v[i]))
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > max)
		return -1;
	*r = (uint32_t)x;
	return 0;
}

/* fo: ("0" / "1" / "d" / "s") *(*WSP ":" *WSP the same). */
static bool fo_ok(const uint8_t *v, size_t n)
{
	bool want_opt = true;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = lower(v[i]);
		if (is_wsp(c))
			continue;
		if (want_opt) {
			if (c != '0' && c != '1' && c != 'd' && c != 's')
				return false;
			want_opt = false;
		} else {
			if (c != ':')
				return false;
			want_opt = true;
		}
	}
	return !want_opt;
}

/* rf: Keyword *(*WSP ":" *WSP Keyword), Keyword = ALPHA/DIGIT/"-"
 * starting with a letter or digit (RFC 5321's Keyword). */
static bool rf_ok(const uint8_t *v, size_t n)
{
	size_t kw = 0;
	bool after_wsp = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = v[i];
		if (is_wsp(c)) {
			after_wsp = kw > 0;
			continue;
		}
		if (c == ':') {
			if (kw == 0)
				return false;
			kw = 0;
			after_wsp = false;
			continue;
		}
		if (after_wsp)
			return false;   /* "a b" */
		if (!(is_alpha(c) || is_digit(c) || (c == '-' && kw > 0)))
			return false;
		kw++;
	}
	return kw > 0;
}

/* A URI as DMARC needs it: scheme ":" 1*char (RFC 3986 scheme = ALPHA
 * *(ALPHA / DIGIT / "+" / "-" / ".")), optionally "!" 1*DIGIT [k/m/g/t]
 * at the end.  No WSP inside (the list is split at ',' and trimmed). */
static bool uri_ok(const uint8_t *u, size_t n)
{
	size_t i = 0;
	if (n == 0 || !is_alpha(u[0]))
		return false;
	while (i < n && (is_alpha(u[i]) || is_digit(u[i]) || u[i] == '+' ||
			 u[i] == '-' || u[i] == '.'))
		i++;
	if (i == n || u[i] != ':' || i + 1 == n)
		return false;
	size_t end = n;
	for (size_t j = i + 1; j < n; j++) {
		if (is_wsp(u[j]) || u[j] == '\r' || u[j] == '\n')
			return false;
		if (u[j] == '!' && end == n)
			end = j;
	}
	if (end == i + 1)
		return false;
	if (end < n) {          /* the size limit */
		size_t j = end + 1, d = 0;
		while (j < n && is_digit(u[j])) {
			j++;
			d++;
		}
		if (d == 0)
			return false;
		if (j < n && strchr("kmgtKMGT", u[j]) != NULL)
			j++;
		if (j != n)
			return false;
	}
	return true;
}

/* At least one element of the comma-separated list is a valid URI. */
static bool uris_any_ok(const uint8_t *v, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ',')
			continue;
		size_t a = start, b = i;
		while (a < b && (is_wsp(v[a]) || v[a] == '\r' || v[a] == '\n'))
			a++;
		while (b > a && (is_wsp(v[b - 1]) || v[b - 1] == '\r' ||
				 v[b - 1] == '\n'))
			b--;
		if (uri_ok(v + a, b - a))
			return true;
		start = i + 1;
	}
	return false;
}

static void copy_text(char *dst, const uint8_t *v, size_t n)
{
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static void record_defaults(dmarc_record *r)
{
	memset(r, 0, sizeof(*r));
	r->p = DMARC_POLICY_NONE;
	r->sp = DMARC_POLICY_NONE;
	r->pct = 100;
	r->ri = 86400;
	memcpy(r->fo, "0", 2);
	memcpy(r->rf, "afrf", 5);
}

enum {
	T_P, T_SP, T_PCT, T_ADKIM, T_ASPF, T_RUA, T_RUF, T_FO, T_RF, T_RI,
	T_COUNT
};
static const char *const tag_names[T_COUNT] = {
	"p", "sp", "pct", "adkim", "aspf", "rua", "ruf", "fo", "rf", "ri",
};

int dmarc_record_parse(const uint8_t *txt, size_t len, dmarc_record *rec_r,
		       const char **error_r)
{
	bool seen[T_COUNT] = { false };
	bool p_ok = false, sp_bad = false;
	record_defaults(rec_r);
	if (len > DMARC_RECORD_MAX) {
		*error_r = "the DMARC record is longer than 2048 bytes";
		return -1;
	}
	size_t pos = version_end(txt, len);
	if (pos == 0) {
		*error_r = "the record does not begin with v=DMARC1";
		return -1;
	}
	for (;;) {
		pos = skip_fws(txt, len, pos);
		if (pos == len)
			break;
		if (txt[pos] != ';') {
			*error_r = "the record's tags are not separated by ';'";
			goto fail;
		}
		pos = skip_fws(txt, len, pos + 1);
		if (pos == len)
			break;          /* a final ';' */
		/* tag-name */
		size_t ns = pos;
		if (!is_alpha(txt[pos])) {
			*error_r = txt[pos] == ';' ?
				"the record has an empty tag" :
				"a tag name of the record is malformed";
			goto fail;
		}
		while (pos < len && (is_alpha(txt[pos]) || is_digit(txt[pos]) ||
				     txt[pos] == '_'))
			pos++;
		size_t nn = pos - ns;
		pos = skip_fws(txt, len, pos);
		if (pos == len || txt[pos] != '=') {
			*error_r = "a tag of the record is not name=value";
			goto fail;
		}
		pos = skip_fws(txt, len, pos + 1);
		/* tag-value: tval *(FWS tval), trailing FWS not included */
		size_t vs = pos, ve = pos;
		for (;;) {
			size_t t = pos;
			while (t < len && valchar(txt[t]))
				t++;
			if (t == pos)
				break;
			ve = t;
			pos = skip_fws(txt, len, t);
		}
		pos = ve > vs ? ve : vs;
		if (ve == vs) {
			*error_r = "a tag of the record has an empty value";
			goto fail;
		}
		if (same(txt + ns, nn, "v")) {
			*error_r = "the record has v= twice";
			goto fail;
		}
		const uint8_t *v = txt + vs;
		size_t vn = ve - vs;
		int t;
		for (t = 0; t < T_COUNT; t++)
			if (same(txt + ns, nn, tag_names[t]))
				break;
		if (t == T_COUNT)
			continue;       /* unknown: ignored */
		if (seen[t]) {
			*error_r = "a tag of the record is given twice";
			goto fail;
		}
		seen[t] = true;
		uint32_t num;
		switch (t) {
		case T_P:
			p_ok = parse_policy(v, vn, &rec_r->p) == 0;
			break;
		case T_SP:
			sp_bad = parse_policy(v, vn, &rec_r->sp) != 0;
			rec_r->sp_given = !sp_bad;
			break;
		case T_PCT:
			if (parse_num(v, vn, 100, &num) == 0)
				rec_r->pct = (uint8_t)num;
			else
				rec_r->warnings |= DMARC_REC_BAD_PCT;
			break;
		case T_ADKIM:
		case T_ASPF: {
			bool *strict = t == T_ADKIM ? &rec_r->adkim_strict :
						      &rec_r->aspf_strict;
			if (same_ci(v, vn, "s"))
				*strict = true;
			else if (!same_ci(v, vn, "r"))
				rec_r->warnings |= t == T_ADKIM ?
					DMARC_REC_BAD_ADKIM : DMARC_REC_BAD_ASPF;
			break;
		}
		case T_RUA:
		case T_RUF:
			if (vn > DMARC_URIS_MAX) {
				*error_r = "rua or ruf of the record is longer "
					   "than 1024 bytes";
				goto fail;
			}
			copy_text(t == T_RUA ? rec_r->rua : rec_r->ruf, v, vn);
			break;
		case T_FO:
			if (vn <= DMARC_FO_MAX && fo_ok(v, vn))
				copy_text(rec_r->fo, v, vn);
			else
				rec_r->warnings |= DMARC_REC_BAD_FO;
			break;
		case T_RF:
			if (vn <= DMARC_RF_MAX && rf_ok(v, vn))
				copy_text(rec_r->rf, v, vn);
			else
				rec_r->warnings |= DMARC_REC_BAD_RF;
			break;
		case T_RI:
			if (parse_num(v, vn, UINT32_MAX, &num) == 0)
				rec_r->ri = num;
			else
				rec_r->warnings |= DMARC_REC_BAD_RI;
			break;
		default:
			break;
		}
	}
	if (!p_ok || sp_bad) {
		/* §6.6.3 step 6 */
		if (!uris_any_ok((const uint8_t *)rec_r->rua,
				 strlen(rec_r->rua))) {
			*error_r = !p_ok ?
				"the record has no valid p= and no valid rua=" :
				"the record's sp= is not valid and it has no "
				"valid rua=";
			goto fail;
		}
		rec_r->p = DMARC_POLICY_NONE;
		rec_r->sp = DMARC_POLICY_NONE;
		rec_r->sp_given = false;
		rec_r->warnings |= DMARC_REC_P_DEFAULTED;
		return 0;
	}
	if (!rec_r->sp_given)
		rec_r->sp = rec_r->p;
	return 0;
fail:
	record_defaults(rec_r);
	return -1;
}

/* The record selection test of §6.6.3 step 3. */
static bool is_dmarc(const char *s)
{
	size_t len = strlen(s);
	size_t pos = version_end((const uint8_t *)s, len);
	if (pos == 0)
		return false;
	pos = skip_fws((const uint8_t *)s, len, pos);
	return pos == len || s[pos] == ';';
}

dmarc_txt_status dmarc_txt_select(const char *const *txt, size_t n,
				  dmarc_record *rec_r, const char **error_r)
{
	const char *one = NULL;
	size_t found = 0;
	record_defaults(rec_r);
	for (size_t i = 0; i < n; i++) {
		if (txt[i] != NULL && is_dmarc(txt[i])) {
			found++;
			one = txt[i];
		}
	}
	if (found == 0) {
		*error_r = "no TXT record begins with v=DMARC1";
		return DMARC_TXT_NONE;
	}
	if (found > 1) {
		*error_r = "more than one TXT record begins with v=DMARC1";
		return DMARC_TXT_INVALID;
	}
	if (dmarc_record_parse((const uint8_t *)one, strlen(one), rec_r,
			       error_r) != 0)
		return DMARC_TXT_INVALID;
	return DMARC_TXT_OK;
}

/* ------------------------------------------------------------- domains */

/* domain checked (see dmarc.h) and written lower case without a trailing
 * dot to out.  0, or -1 with *error_r. */
static int norm_domain(const char *domain, char out[DMARC_DOMAIN_MAX + 1],
		       const char **error_r)
{
	out[0] = '\0';
	if (domain == NULL) {
		*error_r = "no domain";
		return -1;
	}
	size_t n = strnlen(domain, DMARC_DOMAIN_MAX + 2);
	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0) {
		*error_r = "the domain is empty";
		return -1;
	}
	if (n > DMARC_DOMAIN_MAX) {
		*error_r = "the domain is longer than 253 bytes";
		return -1;
	}
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)domain[i];
		if (c == '.') {
			if (label == 0) {
				*error_r = "the domain has an empty label";
				return -1;
			}
			label = 0;
		} else if (c < 0x21 || c > 0x7e) {
			*error_r = "the domain has a byte that is not "
				   "printable ASCII (U-labels must be A-labels)";
			return -1;
		} else if (++label > 63) {
			*error_r = "a label of the domain is longer than 63 "
				   "bytes";
			return -1;
		}
		out[i] = (char)lower(c);
	}
	if (label == 0) {
		*error_r = "the domain has an empty label";
		return -1;
	}
	out[n] = '\0';
	return 0;
}

static const psl_ctx_t *ctx_or_builtin(const struct psl_ctx_st *psl)
{
	return psl != NULL ? psl : psl_builtin();
}

/* org_r from an already normalised name: 1 found, 0 public suffix. */
static int org_of(const struct psl_ctx_st *psl, const char *norm,
		  char org_r[DMARC_DOMAIN_MAX + 1])
{
	const psl_ctx_t *ctx = ctx_or_builtin(psl);
	const char *r = ctx != NULL ? psl_registrable_domain(ctx, norm) : NULL;
	if (r == NULL) {
		org_r[0] = '\0';
		return 0;
	}
	/* r points into norm */
	size_t n = strlen(r);
	memmove(org_r, r, n + 1);
	return 1;
}

int dmarc_org_domain(const struct psl_ctx_st *psl, const char *domain,
		     char org_r[DMARC_DOMAIN_MAX + 1], const char **error_r)
{
	char norm[DMARC_DOMAIN_MAX + 1];
	if (norm_domain(domain, norm, error_r) != 0) {
		org_r[0] = '\0';
		return -1;
	}
	return org_of(psl, norm, org_r);
}

int dmarc_query_names(const struct psl_ctx_st *psl, const char *from_domain,
		      char names_r[2][DMARC_NAME_MAX + 1],
		      const char **error_r)
{
	char norm[DMARC_DOMAIN_MAX + 1], org[DMARC_DOMAIN_MAX + 1];
	names_r[0][0] = names_r[1][0] = '\0';
	if (norm_domain(from_domain, norm, error_r) != 0)
		return -1;
	memcpy(names_r[0], "_dmarc.", 7);
	memcpy(names_r[0] + 7, norm, strlen(norm) + 1);
	if (org_of(psl, norm, org) == 0 || strcmp(org, norm) == 0)
		return 1;
	memcpy(names_r[1], "_dmarc.", 7);
	memcpy(names_r[1] + 7, org, strlen(org) + 1);
	return 2;
}

static bool aligned_norm(const struct psl_ctx_st *psl, const char *a,
			 const char *b, bool strict)
{
	char oa[DMARC_DOMAIN_MAX + 1], ob[DMARC_DOMAIN_MAX + 1];
	if (strcmp(a, b) == 0)
		return true;
	if (strict)
		return false;
	if (org_of(psl, a, oa) == 0 || org_of(psl, b, ob) == 0)
		return false;
	return strcmp(oa, ob) == 0;
}

bool dmarc_aligned(const struct psl_ctx_st *psl, const char *a,
		   const char *b, bool strict)
{
	char na[DMARC_DOMAIN_MAX + 1], nb[DMARC_DOMAIN_MAX + 1];
	const char *err;
	if (norm_domain(a, na, &err) != 0 || norm_domain(b, nb, &err) != 0)
		return false;
	return aligned_norm(psl, na, nb, strict);
}

/* ---------------------------------------------------------- evaluation */

void dmarc_evaluate(const struct psl_ctx_st *psl, const dmarc_input *in,
		    dmarc_verdict *v)
{
	char from[DMARC_DOMAIN_MAX + 1], d[DMARC_DOMAIN_MAX + 1];
	const char *err;
	memset(v, 0, sizeof(*v));
	v->result = DMARC_FAIL;
	v->policy = DMARC_POLICY_NONE;
	v->disposition = DMARC_POLICY_REJECT;
	if (in->from_fields != 1) {
		v->reason = in->from_fields == 0 ? "the message has no From" :
			"the message has more than one From";
		return;
	}
	if (in->from_mailboxes != 1) {
		v->reason = in->from_mailboxes == 0 ?
			"the From field has no address" :
			"the From field has more than one address";
		return;
	}
	if (norm_domain(in->from_domain, from, &err) != 0) {
		v->reason = "the From address has no usable domain";
		return;
	}
	v->disposition = DMARC_POLICY_NONE;
	switch (in->found) {
	case DMARC_FOUND_NONE:
		v->result = DMARC_NONE;
		v->reason = "no DMARC record";
		return;
	case DMARC_FOUND_TEMPERROR:
		v->result = DMARC_TEMPERROR;
		v->reason = "the DMARC record could not be looked up";
		return;
	case DMARC_FOUND_PERMERROR:
		v->result = DMARC_PERMERROR;
		v->reason = "the DMARC record is not valid";
		return;
	case DMARC_FOUND_FROM:
	case DMARC_FOUND_ORG:
		break;
	default:
		v->result = DMARC_PERMERROR;
		v->reason = "bad discovery status";
		return;
	}
	const dmarc_record *rec = in->rec;
	if (rec == NULL) {
		v->result = DMARC_PERMERROR;
		v->reason = "no record given";
		return;
	}
	/* which policy applies: sp for a subdomain covered by the record at
	 * the organisational domain (§6.3 "sp") */
	v->policy = rec->p;
	if (in->found == DMARC_FOUND_ORG) {
		char org[DMARC_DOMAIN_MAX + 1];
		if (org_of(psl, from, org) == 1 && strcmp(org, from) != 0) {
			v->policy = rec->sp;
			v->subdomain_policy = true;
		}
	}
	/* alignment */
	if (in->spf == DMARC_SPF_PASS && in->spf_domain != NULL &&
	    norm_domain(in->spf_domain, d, &err) == 0 &&
	    aligned_norm(psl, d, from, rec->aspf_strict))
		v->spf_aligned = true;
	size_t nd = in->n_dkim < DMARC_DKIM_MAX ? in->n_dkim : DMARC_DKIM_MAX;
	for (size_t i = 0; in->dkim != NULL && i < nd; i++) {
		if (in->dkim[i].partial ||
		    norm_domain(in->dkim[i].d, d, &err) != 0)
			continue;
		if (aligned_norm(psl, d, from, rec->adkim_strict)) {
			v->dkim_aligned = true;
			v->dkim_index = i;
			break;
		}
	}
	if (v->spf_aligned || v->dkim_aligned) {
		v->result = DMARC_PASS;
		v->reason = v->dkim_aligned ? "aligned DKIM pass" :
			"aligned SPF pass";
		return;
	}
	v->result = DMARC_FAIL;
	v->disposition = v->policy;
	v->reason = "neither SPF nor DKIM passed for an aligned domain";
	if (v->policy != DMARC_POLICY_NONE && in->random >= rec->pct) {
		/* §6.6.4: not sampled, one step down */
		v->sampled_out = true;
		v->disposition = v->policy == DMARC_POLICY_REJECT ?
			DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
	}
}

const char *dmarc_policy_name(dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_NONE: return "none";
	case DMARC_POLICY_QUARANTINE: return "quarantine";
	case DMARC_POLICY_REJECT: return "reject";
	}
	return NULL;
}

const char *dmarc_result_name(dmarc_result r)
{
	switch (r) {
	case DMARC_NONE: return "none";
	case DMARC_PASS: return "pass";
	case DMARC_FAIL: return "fail";
	case DMARC_TEMPERROR: return "temperror";
	case DMARC_PERMERROR: return "permerror";
	}
	return NULL;
}

void dmarc_from_get(const uint8_t *msg, size_t len, dmarc_from *from_r)
{
	mail_header_iter it;
	mail_field f;
	memset(from_r, 0, sizeof(*from_r));
	mail_header_iter_init(&it, msg, len);
	while (it.fields < DMARC_FROM_FIELDS_MAX &&
	       mail_header_next(&it, &f) == 1) {
		if (!mail_field_is(msg, &f, "From") || ++from_r->fields > 1)
			continue;
		size_t n = mail_field_unfold(msg, &f, NULL, 0);
		char *v = malloc(n + 1), *first = malloc(n + 1);
		if (v == NULL || first == NULL)
			abort();
		size_t fl = 0;
		const char *why;
		mail_field_unfold(msg, &f, v, n + 1);
		long k = mail_mailbox_list(v, n, first, &fl, &why);
		from_r->mailboxes = k > 0 ? (size_t)k : 0;
		/* the domain: after the last '@', a trailing dot dropped */
		size_t at = fl;
		while (at > 0 && first[at - 1] != '@')
			at--;
		size_t dl = fl - at;
		if (dl > 0 && first[fl - 1] == '.')
			dl--;
		/* a name: no control byte or blank, no empty label */
		bool name = dl > 0 && dl <= DMARC_DOMAIN_MAX &&
			    first[at] != '.' && first[at + dl - 1] != '.';
		for (size_t i = at; name && i < at + dl; i++)
			name = (unsigned char)first[i] > ' ' && first[i] != 0x7f &&
			       !(first[i] == '.' && first[i + 1] == '.');
		if (k == 1 && at > 1 && name) {
			for (size_t i = 0; i < dl; i++) {
				char c = first[at + i];
				from_r->domain[i] = c >= 'A' && c <= 'Z'
							    ? (char)(c - 'A' + 'a')
							    : c;
			}
			from_r->domain[dl] = '\0';
		}
		free(v);
		free(first);
	}
	if (from_r->fields != 1 || from_r->mailboxes != 1)
		from_r->domain[0] = '\0';
}
