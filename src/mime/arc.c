/*
 * arc.c — ARC chain validation and sealing (arc.h, RFC 8617).
 *
 * Both halves start with chain_collect: one walk of the header section
 * with mail-header.h's iterator into a table of at most
 * DKIM_VERIFY_MAX_FIELDS fields, noting for each instance 1..50 which
 * field is its AAR, AMS and AS and how many of each there are.  The tag
 * lists are parsed with dkim-tags.h, the fields canonicalised with
 * dkim-sign.h's building blocks, straight into SHA-256 (GnuTLS); the
 * seals' hash inputs share their prefix: one running hash over sets
 * 1..i-1, copied (gnutls_hash_copy) for set i, so N seals cost one pass
 * over the ARC fields, not N^2/2.  Signatures are checked by
 * dkim_verify_digest and made by dkim_sign_digest, so the RSA and
 * Ed25519 code (and its key rules) is dkim-verify's and dkim-sign's; the
 * tag, h= and hashing helpers and the folded field writer are
 * dkim-common.h's, shared with them and didsig.c.
 *
 * Memory: the field table and one DKIM_VERIFY_SIG_MAX scratch buffer
 * while preparing or sealing; the set keeps per instance the decoded b=
 * values, digests, d= and the unfolded AAR (at most DKIM_VERIFY_SIG_MAX
 * bytes each).
 */
#include "arc.h"

#include "dkim-common.h"
#include "dkim-tags.h"
#include "mail-header.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE ((size_t)-1)
#define FOLD_MAX 16384 /* bytes of one field we write */

enum { K_AAR, K_AMS, K_AS };
static const char *const kind_name[] = {
	"ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal",
};

struct arc_inst {
	/* AS of this instance */
	dkim_verify_alg as_alg;
	uint8_t as_b[DKIM_VERIFY_B_MAX];
	size_t as_b_len, as_q;
	uint8_t as_digest[32];
	char as_d[DKIM_VERIFY_NAME_MAX + 1];
	/* AMS (only instance N's is verified) */
	dkim_verify_alg ams_alg;
	uint8_t ams_b[DKIM_VERIFY_B_MAX];
	size_t ams_b_len, ams_q;
	uint8_t ams_digest[32];
};

typedef struct chain {
	const uint8_t *msg;
	size_t len, body_off;
	mail_field *fields;
	size_t nf;
	size_t arc_fields; /* ARC fields seen */
	size_t n;          /* highest i= in 1..50 */
	size_t f[ARC_MAX_INSTANCES + 1][3];   /* field index, or NONE */
	unsigned cnt[ARC_MAX_INSTANCES + 1][3];
	const char *bad; /* a structural failure found while collecting */
	size_t bad_kind;
	bool bad_over;   /* i= over 50 */
} chain;

static bool is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* i= at the start of an AAR value: optional FWS, "i", FWS, "=", FWS,
 * 1..3 digits, FWS, then ";" or the end.  0 when it is not there or not
 * a number. */
static size_t parse_i(const uint8_t *p, size_t n)
{
	size_t k = 0, v = 0, digits = 0;
	while (k < n && is_blank(p[k]))
		k++;
	if (k == n || p[k] != 'i')
		return 0;
	k++;
	while (k < n && is_blank(p[k]))
		k++;
	if (k == n || p[k] != '=')
		return 0;
	k++;
	while (k < n && is_blank(p[k]))
		k++;
	while (k < n && p[k] >= '0' && p[k] <= '9') {
		if (++digits > 3)
			return 0;
		v = v * 10 + (size_t)(p[k] - '0');
		k++;
	}
	if (digits == 0)
		return 0;
	while (k < n && is_blank(p[k]))
		k++;
	if (k < n && p[k] != ';')
		return 0;
	return v;
}

/* i= of an AAR: the first thing in its value (RFC 8617 §4.1.1). */
static size_t aar_i(const uint8_t *msg, const mail_field *f)
{
	return parse_i(msg + f->value_off,
		       dkc_value_end(msg, f) - f->value_off);
}

/* i= of an AMS or AS: a tag anywhere in its tag list; 0 when the list
 * does not parse or i= is not 1..3 digits. */
static size_t sig_i(const uint8_t *msg, const mail_field *f)
{
	dkim_tags *tg = malloc(sizeof(*tg));
	const dkim_tag *t;
	const char *err;
	uint64_t v = 0;
	if (tg == NULL)
		abort();
	if (dkc_field_tags(msg, f, tg, &err) == 0 &&
	    (t = dkim_tags_get(tg, "i")) != NULL && t->value_len <= 3 &&
	    !dkc_parse_num(tg, t, &v))
		v = 0;
	free(tg);
	return (size_t)v;
}

/* Walk the header section; 0, or -1 with *error_r for the limits. */
static int chain_collect(chain *c, const uint8_t *msg, size_t len,
			 size_t max_header, const char **error_r)
{
	memset(c, 0, sizeof(*c));
	memset(c->f, 0xff, sizeof(c->f));
	c->msg = msg;
	c->len = len;
	if (max_header == 0)
		max_header = DKIM_MAX_HEADER;
	if (dkc_fields_read(msg, len, max_header, DKIM_VERIFY_MAX_FIELDS,
			    &c->fields, &c->nf, &c->body_off, error_r) < 0) {
		c->fields = NULL;
		return -1;
	}
	for (size_t k = 0; k < c->nf; k++) {
		const mail_field *f = &c->fields[k];
		size_t kind;
		if (mail_field_is(msg, f, "arc-authentication-results"))
			kind = K_AAR;
		else if (mail_field_is(msg, f, "arc-message-signature"))
			kind = K_AMS;
		else if (mail_field_is(msg, f, "arc-seal"))
			kind = K_AS;
		else
			continue;
		c->arc_fields++;
		if (c->bad != NULL)
			continue;
		if (c->arc_fields > 3 * ARC_MAX_INSTANCES) {
			c->bad = "more than 150 ARC fields";
			continue;
		}
		if (f->len > DKIM_VERIFY_SIG_MAX) {
			c->bad = "field too long";
			c->bad_kind = kind;
			continue;
		}
		size_t i = kind == K_AAR ? aar_i(msg, f) : sig_i(msg, f);
		if (i == 0) {
			c->bad = "has no valid i=";
			c->bad_kind = kind;
			continue;
		}
		if (i > ARC_MAX_INSTANCES) {
			c->bad_over = true;
			c->bad = "more than 50 ARC sets";
			continue;
		}
		if (i > c->n)
			c->n = i;
		if (c->cnt[i][kind]++ == 0)
			c->f[i][kind] = k;
	}
	return 0;
}

static void chain_free(chain *c)
{
	free(c->fields);
	c->fields = NULL;
}

/* A structural verdict on the chain (no tags looked at), or NULL. */
static const char *chain_structure(const chain *c, char *buf, size_t size)
{
	int m = -1;
	if (c->bad != NULL) {
		if (c->bad_over || c->arc_fields > 3 * ARC_MAX_INSTANCES)
			return c->bad;
		m = snprintf(buf, size, "an %s %s", kind_name[c->bad_kind],
			     c->bad);
	}
	for (size_t i = 1; m < 0 && i <= c->n; i++) {
		if (c->cnt[i][K_AAR] + c->cnt[i][K_AMS] + c->cnt[i][K_AS] == 0) {
			m = snprintf(buf, size, "instance %zu missing", i);
			break;
		}
		for (size_t k = 0; k < 3; k++) {
			if (c->cnt[i][k] == 0) {
				m = snprintf(buf, size,
					     "instance %zu has no %s", i,
					     kind_name[k]);
				break;
			}
			if (c->cnt[i][k] > 1) {
				m = snprintf(buf, size,
					     "instance %zu has two %s fields",
					     i, kind_name[k]);
				break;
			}
		}
	}
	if (m < 0)
		return NULL;
	return buf; /* truncation of a reason is harmless */
}

/* ---- Tags of an AS or AMS ---- */

typedef struct sigtags {
	dkim_tags tg;
	dkim_verify_alg alg;
	char d[DKIM_VERIFY_NAME_MAX + 1], s[DKIM_VERIFY_NAME_MAX + 1];
	uint8_t b[DKIM_VERIFY_B_MAX];
	size_t b_len;
} sigtags;

/* Parse and check the common tags; NULL or a static reason. */
static const char *sig_parse(const uint8_t *msg, const mail_field *f,
			     bool seal, sigtags *st)
{
	static const char *const need_as[] = {"a", "b", "cv", "d", "s"};
	static const char *const need_ams[] = {"a", "b", "bh", "d", "h", "s"};
	const char *err;
	const dkim_tag *t;

	if (dkc_field_tags(msg, f, &st->tg, &err) < 0)
		return "does not parse";
	if (seal) {
		for (size_t k = 0; k < 5; k++)
			if (dkim_tags_get(&st->tg, need_as[k]) == NULL)
				return "lacks a required tag";
		if (dkim_tags_get(&st->tg, "h") != NULL)
			return "has h= (RFC 8617 §4.1.3)";
	} else {
		for (size_t k = 0; k < 6; k++)
			if (dkim_tags_get(&st->tg, need_ams[k]) == NULL)
				return "lacks a required tag";
	}
	t = dkim_tags_get(&st->tg, "a");
	if (dkim_tag_value_is(&st->tg, t, "rsa-sha256"))
		st->alg = DKIM_VERIFY_RSA_SHA256;
	else if (dkim_tag_value_is(&st->tg, t, "ed25519-sha256"))
		st->alg = DKIM_VERIFY_ED25519_SHA256;
	else
		return "has an unknown a= algorithm";
	t = dkim_tags_get(&st->tg, "d");
	if (!dkc_dname_ok(st->tg.text + t->value_off, t->value_len))
		return "has a bad d=";
	memcpy(st->d, st->tg.text + t->value_off, t->value_len);
	st->d[t->value_len] = '\0';
	t = dkim_tags_get(&st->tg, "s");
	if (!dkc_dname_ok(st->tg.text + t->value_off, t->value_len))
		return "has a bad s=";
	memcpy(st->s, st->tg.text + t->value_off, t->value_len);
	st->s[t->value_len] = '\0';
	if (strlen(st->s) + strlen(st->d) + 12 > DKIM_VERIFY_NAME_MAX)
		return "has a key name too long";
	if (!dkc_b64_tag(&st->tg, dkim_tags_get(&st->tg, "b"), st->b,
			 sizeof(st->b), &st->b_len))
		return "has a bad b=";
	if (st->alg == DKIM_VERIFY_ED25519_SHA256 && st->b_len != 64)
		return "has an ed25519 b= that is not 64 bytes";
	return NULL;
}

/* ---- Verification ---- */

static void set_reason(arc_verify_set *set, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_reason(arc_verify_set *set, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(set->reason, sizeof(set->reason), fmt, ap);
	va_end(ap);
	if (m < 0)
		set->reason[0] = '\0';
}

static void decide_fail(arc_verify_set *set)
{
	set->decided = true;
	set->cv = ARC_CV_FAIL;
	set->nq = 0;
}

static size_t add_query(arc_verify_set *set, const char *s, const char *d)
{
	char q[DKIM_VERIFY_NAME_MAX + 1];
	int m = snprintf(q, sizeof(q), "%s._domainkey.%s", s, d);
	if (m < 0 || (size_t)m >= sizeof(q))
		abort(); /* sig_parse bounded it */
	for (size_t k = 0; k < set->nq; k++)
		if (dkc_mem_ieq((const uint8_t *)set->query[k],
			    strlen(set->query[k]), q))
			return k;
	if (set->nq == ARC_MAX_QUERIES)
		abort(); /* one per AS and one AMS at most */
	memcpy(set->query[set->nq], q, (size_t)m + 1);
	return set->nq++;
}

/* AMS of instance N: tags, body hash, header digest. NULL or why not
 * (static, or in set->reason). */
static const char *check_ams(arc_verify_set *set, const chain *c,
			     uint8_t *scratch)
{
	const mail_field *f = &c->fields[c->f[c->n][K_AMS]];
	arc_inst *in = &set->inst[c->n];
	sigtags *st = calloc(1, sizeof(*st));
	const dkim_tag *t;
	const char *why;
	bool hrelaxed = false, brelaxed = false, has_l = false;
	uint64_t lv = 0;
	dkc_hlist hl;
	uint8_t bh[64];
	size_t bh_len;

	if (st == NULL)
		abort();
	why = sig_parse(c->msg, f, false, st);
	if (why != NULL)
		goto out;
	t = dkim_tags_get(&st->tg, "c");
	if (t != NULL && !dkc_parse_c(&st->tg, t, &hrelaxed, &brelaxed)) {
		why = "has a bad c=";
		goto out;
	}
	t = dkim_tags_get(&st->tg, "l");
	if (t != NULL) {
		if (!dkc_parse_num(&st->tg, t, &lv)) {
			why = "has a bad l=";
			goto out;
		}
		has_l = true;
	}
	memset(&hl, 0, sizeof(hl));
	t = dkim_tags_get(&st->tg, "h");
	if (dkim_tag_value_split(&st->tg, t, dkc_hlist_add, &hl) != 0) {
		why = "has a bad h=";
		goto out;
	}
	if (dkc_hlist_has(&hl, "arc-seal")) {
		why = "signs ARC-Seal (RFC 8617 §4.1.2)";
		goto out;
	}
	if (!hl.has_from) {
		why = "does not sign From";
		goto out;
	}
	if (!dkc_b64_tag(&st->tg, dkim_tags_get(&st->tg, "bh"), bh, sizeof(bh),
			 &bh_len) || bh_len != 32) {
		why = "has a bad bh=";
		goto out;
	}
	{
		uint8_t digest[32];
		uint64_t total;
		dkc_body_digest(c->msg + c->body_off, c->len - c->body_off,
				brelaxed, has_l, lv, digest, &total);
		if (has_l && lv != total) {
			why = "l= does not cover the body";
			goto out;
		}
		if (sodium_memcmp(digest, bh, 32) != 0) {
			why = "body hash mismatch";
			goto out;
		}
	}
	{
		gnutls_hash_hd_t hd = dkc_hash_new();
		dkc_hash_fields(c->msg, c->fields, c->nf, &hl, hrelaxed,
				dkc_hash_emit, hd);
		dkc_canon_without_b(c->msg, f, &st->tg, hrelaxed, scratch,
				    dkc_hash_emit, hd);
		gnutls_hash_deinit(hd, in->ams_digest);
	}
	in->ams_alg = st->alg;
	memcpy(in->ams_b, st->b, st->b_len);
	in->ams_b_len = st->b_len;
	in->ams_q = add_query(set, st->s, st->d);
out:
	free(st);
	return why;
}

/* The AS of every instance: tags, cv, digests (one running hash). */
static const char *check_seals(arc_verify_set *set, const chain *c,
			       uint8_t *scratch, size_t *bad_i)
{
	sigtags *st = calloc(1, sizeof(*st));
	gnutls_hash_hd_t run = dkc_hash_new();
	const char *why = NULL;

	if (st == NULL)
		abort();
	/* cv first, over all seals: a cv=fail anywhere ends the chain. */
	for (size_t i = c->n; i >= 1 && why == NULL; i--) {
		const mail_field *f = &c->fields[c->f[i][K_AS]];
		const dkim_tag *t;
		*bad_i = i;
		why = sig_parse(c->msg, f, true, st);
		if (why != NULL)
			break;
		t = dkim_tags_get(&st->tg, "cv");
		if (dkim_tag_value_is(&st->tg, t, "fail"))
			why = "says cv=fail";
		else if (i == 1 && !dkim_tag_value_is(&st->tg, t, "none"))
			why = "is instance 1 but cv is not none";
		else if (i > 1 && !dkim_tag_value_is(&st->tg, t, "pass"))
			why = "has cv other than pass";
	}
	for (size_t i = 1; i <= c->n && why == NULL; i++) {
		const mail_field *aar = &c->fields[c->f[i][K_AAR]];
		const mail_field *ams = &c->fields[c->f[i][K_AMS]];
		const mail_field *as = &c->fields[c->f[i][K_AS]];
		arc_inst *in = &set->inst[i];
		gnutls_hash_hd_t hd;

		*bad_i = i;
		why = sig_parse(c->msg, as, true, st);
		if (why != NULL)
			break; /* checked above: not reached */
		dkim_canon_header_relaxed(c->msg, aar, true, dkc_hash_emit, run);
		dkim_canon_header_relaxed(c->msg, ams, true, dkc_hash_emit, run);
		hd = gnutls_hash_copy(run);
		if (hd == NULL)
			abort();
		dkc_canon_without_b(c->msg, as, &st->tg, true, scratch,
				    dkc_hash_emit, hd);
		gnutls_hash_deinit(hd, in->as_digest);
		dkim_canon_header_relaxed(c->msg, as, true, dkc_hash_emit, run);
		in->as_alg = st->alg;
		memcpy(in->as_b, st->b, st->b_len);
		in->as_b_len = st->b_len;
		memcpy(in->as_d, st->d, strlen(st->d) + 1);
		in->as_q = add_query(set, st->s, st->d);
	}
	gnutls_hash_deinit(run, NULL);
	free(st);
	return why;
}

int arc_verify_prepare(const uint8_t *msg, size_t len,
		       const arc_verify_limits *limits, arc_verify_set **set_r,
		       const char **error_r)
{
	chain *c;
	arc_verify_set *set;
	uint8_t *scratch;
	const char *why;
	size_t bad_i = 0;

	if (sodium_init() < 0)
		abort();
	c = malloc(sizeof(*c));
	if (c == NULL)
		abort();
	if (chain_collect(c, msg, len, limits->max_header, error_r) < 0) {
		free(c);
		return -1;
	}
	set = calloc(1, sizeof(*set));
	if (set == NULL)
		abort();
	set->inst = calloc(ARC_MAX_INSTANCES + 1, sizeof(*set->inst));
	set->aar = calloc(ARC_MAX_INSTANCES + 1, sizeof(*set->aar));
	if (set->inst == NULL || set->aar == NULL)
		abort();
	set->instances = c->n;
	*set_r = set;
	if (c->arc_fields == 0) {
		set->decided = true;
		set->cv = ARC_CV_NONE;
		set_reason(set, "no ARC fields");
		goto done;
	}
	why = chain_structure(c, set->reason, sizeof(set->reason));
	if (why != NULL) {
		if (why != set->reason)
			set_reason(set, "%s", why);
		decide_fail(set);
		goto done;
	}
	scratch = malloc(DKIM_VERIFY_SIG_MAX);
	if (scratch == NULL)
		abort();
	why = check_seals(set, c, scratch, &bad_i);
	if (why != NULL) {
		set_reason(set, "ARC-Seal of instance %zu %s", bad_i, why);
		decide_fail(set);
		free(scratch);
		goto done;
	}
	why = check_ams(set, c, scratch);
	free(scratch);
	if (why != NULL) {
		set_reason(set, "AMS of instance %zu: %s", c->n, why);
		decide_fail(set);
		goto done;
	}
	for (size_t i = 1; i <= c->n; i++) {
		const mail_field *f = &c->fields[c->f[i][K_AAR]];
		size_t n = mail_field_unfold(msg, f, NULL, 0);
		set->aar[i] = malloc(n + 1);
		if (set->aar[i] == NULL)
			abort();
		(void)mail_field_unfold(msg, f, set->aar[i], n + 1);
	}
	set_reason(set, "waiting for the keys");
done:
	chain_free(c);
	free(c);
	return 0;
}

static const arc_key_answer *answer_of(const arc_key_answer *answers,
				       size_t q)
{
	return &answers[q];
}

void arc_verify_finish(arc_verify_set *set, const arc_key_answer *answers,
		       arc_verify_result *result_r)
{
	dkim_verify_result r;
	bool temp = false;
	size_t n = set->instances;

	memset(result_r, 0, sizeof(*result_r));
	result_r->instances = n;
	if (!set->decided) {
		const arc_key_answer *a = answer_of(answers, set->inst[n].ams_q);
		dkim_verify_digest(set->inst[n].ams_alg, set->inst[n].ams_digest,
				   set->inst[n].ams_b, set->inst[n].ams_b_len,
				   a->txt, a->len, a->n, &r);
		if (r.status == DKIM_TEMPERROR) {
			temp = true;
		} else if (r.status != DKIM_PASS) {
			set_reason(set, "AMS of instance %zu does not verify: %s",
				   n, r.reason);
			decide_fail(set);
		}
	}
	for (size_t i = n; i >= 1 && !set->decided; i--) {
		arc_inst *in = &set->inst[i];
		const arc_key_answer *a = answer_of(answers, in->as_q);
		dkim_verify_digest(in->as_alg, in->as_digest, in->as_b,
				   in->as_b_len, a->txt, a->len, a->n, &r);
		if (r.status == DKIM_TEMPERROR) {
			temp = true;
		} else if (r.status != DKIM_PASS) {
			set_reason(set, "ARC-Seal of instance %zu does not "
				   "verify: %s", i, r.reason);
			decide_fail(set);
		}
	}
	if (!set->decided) {
		set->decided = true;
		set->nq = 0;
		if (temp) {
			set->cv = ARC_CV_TEMPERROR;
			set_reason(set, "key lookup failed");
		} else {
			set->cv = ARC_CV_PASS;
			set_reason(set, "ok");
		}
	}
	result_r->cv = set->cv;
	result_r->reason = set->reason;
	if (set->cv == ARC_CV_PASS)
		for (size_t i = 1; i <= n; i++) {
			result_r->sealer[i] = set->inst[i].as_d;
			result_r->aar[i] = set->aar[i];
		}
}

void arc_verify_set_free(arc_verify_set **set)
{
	if (set == NULL || *set == NULL)
		return;
	if ((*set)->aar != NULL)
		for (size_t i = 0; i <= ARC_MAX_INSTANCES; i++)
			free((*set)->aar[i]);
	free((*set)->aar);
	free((*set)->inst);
	free(*set);
	*set = NULL;
}

const char *arc_cv_name(arc_cv cv)
{
	switch (cv) {
	case ARC_CV_NONE:
		return "none";
	case ARC_CV_PASS:
		return "pass";
	case ARC_CV_FAIL:
		return "fail";
	case ARC_CV_TEMPERROR:
		return "temperror";
	}
	return "?";
}

/* ---- Sealing ---- */

static const char *const ams_names[] = {
	"to", "cc", "subject", "date", "message-id", "reply-to",
	"in-reply-to", "references", "mime-version", "content-type",
	"content-transfer-encoding",
};
#define N_AMS_NAMES (sizeof(ams_names) / sizeof(ams_names[0]))
#define SEAL_MAX_H (DKIM_MAX_FROM + 1 + N_AMS_NAMES + ARC_SEAL_MAX_DKIM)

static bool payload_ok(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > ARC_AAR_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)p[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ')
			return true;
	return false;
}

/* The AMS h= list over the message: From n+1 times, the others present,
 * DKIM-Signature as often as it appears (capped). */
static int ams_h(const chain *c, const char **h, size_t *h_count_r,
		 const char **error_r)
{
	size_t from = 0, dkim = 0, cnt[N_AMS_NAMES] = {0}, n = 0;
	for (size_t k = 0; k < c->nf; k++) {
		const mail_field *f = &c->fields[k];
		if (mail_field_is(c->msg, f, "from"))
			from++;
		else if (mail_field_is(c->msg, f, "dkim-signature"))
			dkim++;
		for (size_t j = 0; j < N_AMS_NAMES; j++)
			if (mail_field_is(c->msg, f, ams_names[j]))
				cnt[j]++;
	}
	if (from == 0) {
		*error_r = "message has no From field";
		return -1;
	}
	if (from > DKIM_MAX_FROM) {
		*error_r = "too many From fields";
		return -1;
	}
	for (size_t i = 0; i <= from; i++)
		h[n++] = "from";
	for (size_t j = 0; j < N_AMS_NAMES; j++)
		if (cnt[j] > 0)
			h[n++] = ams_names[j];
	if (dkim > ARC_SEAL_MAX_DKIM)
		dkim = ARC_SEAL_MAX_DKIM;
	for (size_t i = 0; i < dkim; i++)
		h[n++] = "dkim-signature";
	*h_count_r = n;
	return 0;
}

/* The bottom-most unused instance of each h[] into hd (relaxed). */
static void hash_h(const chain *c, const char *const *h, size_t h_count,
		   gnutls_hash_hd_t hd)
{
	dkc_hlist hl;
	memset(&hl, 0, sizeof(hl));
	if (h_count > DKC_MAX_H)
		abort(); /* SEAL_MAX_H bounds it */
	for (size_t j = 0; j < h_count; j++) {
		hl.h[j].p = (const uint8_t *)h[j];
		hl.h[j].n = strlen(h[j]);
	}
	hl.n = h_count;
	dkc_hash_fields(c->msg, c->fields, c->nf, &hl, true, dkc_hash_emit,
			hd);
}

static int sign_into(const dkim_key *key, gnutls_hash_hd_t hd, dkc_fold *fo,
		     const char **error_r)
{
	uint8_t digest[32];
	char *b = NULL;
	gnutls_hash_deinit(hd, digest);
	if (dkim_sign_digest(key, digest, &b, error_r) < 0)
		return -1;
	dkc_fold_b64(fo, b);
	dkc_fold_raw(fo, "\r\n", 2);
	free(b);
	return 0;
}

int arc_seal(const uint8_t *msg, size_t len, const dkim_key *key,
	     const char *domain, const char *selector,
	     const char *authres_payload, arc_cv cv, uint64_t t,
	     char **fields_r, const char **error_r)
{
	arc_verify_limits lim = {0};
	arc_verify_set *set = NULL;
	chain *c = NULL;
	dkc_fold *aar = NULL, *ams = NULL, *as = NULL;
	const char *h[SEAL_MAX_H];
	const char *alg;
	size_t h_count = 0, inst;
	char bh[DKIM_BH_SIZE];
	gnutls_hash_hd_t hd;
	int rc = -1;

	if (!dkim_name_ok(domain) || !dkim_name_ok(selector)) {
		*error_r = "bad ARC domain or selector";
		return -1;
	}
	if (cv != ARC_CV_NONE && cv != ARC_CV_PASS && cv != ARC_CV_FAIL) {
		*error_r = "cv must be none, pass or fail";
		return -1;
	}
	if (!payload_ok(authres_payload)) {
		*error_r = "bad Authentication-Results payload";
		return -1;
	}
	if (arc_verify_prepare(msg, len, &lim, &set, error_r) < 0)
		return -1;
	c = malloc(sizeof(*c));
	if (c == NULL)
		abort();
	if (chain_collect(c, msg, len, 0, error_r) < 0) {
		free(c);
		arc_verify_set_free(&set);
		return -1;
	}
	if (c->n == ARC_MAX_INSTANCES || c->bad_over) {
		*error_r = "the chain already has 50 ARC sets";
		goto out;
	}
	if (cv == ARC_CV_NONE && c->arc_fields > 0) {
		*error_r = "cv=none but the message has ARC fields";
		goto out;
	}
	if (cv == ARC_CV_PASS && c->arc_fields == 0) {
		*error_r = "cv=pass but the message has no ARC fields";
		goto out;
	}
	if (cv == ARC_CV_PASS && set->decided) {
		*error_r = "the chain is broken: seal with cv=fail";
		goto out;
	}
	if (ams_h(c, h, &h_count, error_r) < 0)
		goto out;
	if (dkim_body_hash(msg, len, bh, error_r) < 0)
		goto out;
	inst = c->n + 1;
	alg = dkim_key_alg(key) == DKIM_ED25519 ? "ed25519-sha256"
						: "rsa-sha256";
	aar = dkc_fold_create(FOLD_MAX - 1);
	ams = dkc_fold_create(FOLD_MAX - 1);
	as = dkc_fold_create(FOLD_MAX - 1);

	/* ARC-Authentication-Results: i=K; PAYLOAD, folded at spaces. */
	dkc_fold_raw(aar, "ARC-Authentication-Results:", 27);
	dkc_fold_fmt(aar, true, "i=%zu;", inst);
	for (const char *p = authres_payload; *p != '\0';) {
		const char *sp = strchr(p, ' ');
		size_t n = sp != NULL ? (size_t)(sp - p) : strlen(p);
		if (n > 0)
			dkc_fold_tok(aar, p, n, true);
		p += n;
		while (*p == ' ')
			p++;
	}
	dkc_fold_raw(aar, "\r\n", 2);

	/* ARC-Message-Signature over the message as it is. */
	dkc_fold_raw(ams, "ARC-Message-Signature:", 22);
	dkc_fold_fmt(ams, true, "i=%zu;", inst);
	dkc_fold_fmt(ams, true, "a=%s;", alg);
	dkc_fold_sig_tags(ams, domain, selector, t, h, h_count, bh);
	if (aar->overflow || ams->overflow) {
		*error_r = "ARC field too long";
		goto out;
	}
	hd = dkc_hash_new();
	hash_h(c, h, h_count, hd);
	if (dkc_canon_text(ams->s, false, dkc_hash_emit, hd) < 0) {
		gnutls_hash_deinit(hd, NULL);
		*error_r = "bad ARC-Message-Signature text";
		goto out;
	}
	if (sign_into(key, hd, ams, error_r) < 0)
		goto out;

	/* ARC-Seal over sets 1..K (only K when cv=fail). */
	dkc_fold_raw(as, "ARC-Seal:", 9);
	dkc_fold_fmt(as, true, "i=%zu;", inst);
	dkc_fold_fmt(as, true, "a=%s;", alg);
	dkc_fold_fmt(as, true, "cv=%s;", arc_cv_name(cv));
	dkc_fold_fmt(as, true, "d=%s;", domain);
	dkc_fold_fmt(as, true, "s=%s;", selector);
	dkc_fold_fmt(as, true, "t=%llu;", (unsigned long long)t);
	dkc_fold_str(as, "b=", true);
	hd = dkc_hash_new();
	if (cv != ARC_CV_FAIL)
		for (size_t i = 1; i <= c->n; i++)
			for (size_t k = 0; k < 3; k++)
				dkim_canon_header_relaxed(
					msg, &c->fields[c->f[i][k]], true,
					dkc_hash_emit, hd);
	if (dkc_canon_text(aar->s, true, dkc_hash_emit, hd) < 0 ||
	    dkc_canon_text(ams->s, true, dkc_hash_emit, hd) < 0 ||
	    dkc_canon_text(as->s, false, dkc_hash_emit, hd) < 0) {
		gnutls_hash_deinit(hd, NULL);
		*error_r = "bad ARC field text";
		goto out;
	}
	if (sign_into(key, hd, as, error_r) < 0)
		goto out;
	if (aar->overflow || ams->overflow || as->overflow) {
		*error_r = "ARC field too long";
		goto out;
	}
	{
		size_t n = as->n + ams->n + aar->n;
		char *out = malloc(n + 1);
		if (out == NULL)
			abort();
		memcpy(out, as->s, as->n);
		memcpy(out + as->n, ams->s, ams->n);
		memcpy(out + as->n + ams->n, aar->s, aar->n);
		out[n] = '\0';
		*fields_r = out;
	}
	rc = 0;
out:
	dkc_fold_destroy(&aar);
	dkc_fold_destroy(&ams);
	dkc_fold_destroy(&as);
	chain_free(c);
	free(c);
	arc_verify_set_free(&set);
	return rc;
}
