/*
 * didsig.c — the AMP-DID-Signature field (didsig.h), signing and
 * verification.
 *
 * Both sides walk the header section once with mail-header.h's iterator
 * into a table of at most DIDSIG_MAX_FIELDS fields (the only allocations
 * besides that table: the set, the field we write, one parsed tag list
 * and one DIDSIG_FIELD_MAX scratch buffer); each h= name is then found by scanning that table from the
 * bottom, and both sides hash the same way (hash_input), so what the
 * signer hashes is by construction what the verifier hashes.  The
 * canonical forms (dkim-sign.h's relaxed canonicalisers) are never
 * stored: the header hash input streams into libsodium's SHA-256, the
 * body into dkim-common.h's (GnuTLS).  The tag list is parsed by
 * dkim-tags.h, also on the signer's side (the b= value is found and cut
 * the same way).  The helpers DKIM, ARC and this field share (h= lists,
 * the field table, the b= cut, folding) are dkim-common.h's.
 *
 * Keys: the node's Ed25519 secret key is only read by crypto_sign_detached
 * during didsig_sign; nothing of it is copied.
 */
#include "didsig.h"

#include "dkim-common.h"
#include "dkim-sign.h"
#include "dkim-tags.h"
#include "mail-header.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define DID_PREFIX "did:aftersmtp:"
#define DID_PREFIX_LEN 14u
#define DID_DOMAIN_MAX 253u
#define DID_LABEL_MAX 63u
#define DID_LOCAL_MAX 64u
#define CONTEXT "AMPv1-didsig" /* and its NUL: 13 bytes hashed first */
#define CONTEXT_LEN 13u
#define B64_MAX 128 /* base64 of 64 bytes is 88 */

/* The fields the signer covers, in h= order, each once more than present. */
static const char *const signed_names[] = {
	"from", "to", "cc", "subject", "date", "message-id", "reply-to",
	"mime-version", "content-type",
};
#define N_SIGNED (sizeof(signed_names) / sizeof(signed_names[0]))

_Static_assert(DIDSIG_MAX_H == DKC_MAX_H, "h= lists share dkc_hlist");

/* The header section of a message. */
typedef struct header {
	mail_field *f; /* DIDSIG_MAX_FIELDS entries */
	size_t nf, body_off, from_count;
} header;

/* ---- small helpers ---- */

static bool let_dig(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static void sha_emit(void *ctx, const uint8_t *p, size_t n)
{
	crypto_hash_sha256_update(ctx, p, n);
}

const char *didsig_status_name(didsig_status st)
{
	switch (st) {
	case DIDSIG_PENDING:
		return "pending";
	case DIDSIG_PASS:
		return "pass";
	case DIDSIG_FAIL:
		return "fail";
	case DIDSIG_PERMERROR:
		return "permerror";
	case DIDSIG_TEMPERROR:
		return "temperror";
	case DIDSIG_NONE:
		return "none";
	}
	return "?";
}

/* ---- DIDs (PROTOCOL.md §3.1) ---- */

static bool domain_ok(const char *s, size_t len)
{
	size_t start = 0;
	if (len == 0 || len > DID_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			if (!let_dig((uint8_t)s[i]) && s[i] != '-')
				return false;
			continue;
		}
		size_t l = i - start;
		if (l == 0 || l > DID_LABEL_MAX ||
		    !let_dig((uint8_t)s[start]) || !let_dig((uint8_t)s[i - 1]))
			return false;
		start = i + 1;
	}
	return true;
}

static bool local_ok(const char *s, size_t len)
{
	if (len == 0 || len > DID_LOCAL_MAX || !let_dig((uint8_t)s[0]) ||
	    !let_dig((uint8_t)s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)s[i];
		if (!let_dig(c) && c != '.' && c != '-' && c != '_')
			return false;
		if (c == '.' && i + 1 < len && s[i + 1] == '.')
			return false;
	}
	return true;
}

/* The length of the DOMAIN of a canonical DID. */
static size_t did_domain_len(const char *s, size_t n)
{
	const char *colon = memchr(s + DID_PREFIX_LEN, ':', n - DID_PREFIX_LEN);
	return (size_t)(colon - s) - DID_PREFIX_LEN;
}

bool didsig_did_ok(const char *s, size_t n)
{
	const char *colon;
	size_t dl;
	if (n <= DID_PREFIX_LEN || n > DIDSIG_DID_MAX ||
	    memcmp(s, DID_PREFIX, DID_PREFIX_LEN) != 0)
		return false;
	colon = memchr(s + DID_PREFIX_LEN, ':', n - DID_PREFIX_LEN);
	if (colon == NULL)
		return false;
	dl = (size_t)(colon - s) - DID_PREFIX_LEN;
	return domain_ok(s + DID_PREFIX_LEN, dl) &&
	       local_ok(colon + 1, n - DID_PREFIX_LEN - dl - 1);
}

/* Both canonical DIDs name the same domain. */
static bool same_domain(const char *a, size_t an, const char *b, size_t bn)
{
	size_t al = did_domain_len(a, an), bl = did_domain_len(b, bn);
	return al == bl && memcmp(a + DID_PREFIX_LEN, b + DID_PREFIX_LEN,
				  al) == 0;
}

/* ---- The header section ---- */

static int header_read(const uint8_t *msg, size_t len, header *h,
		       const char **error_r)
{
	if (dkc_fields_read(msg, len, DKIM_MAX_HEADER, DIDSIG_MAX_FIELDS,
			    &h->f, &h->nf, &h->body_off, error_r) < 0) {
		h->f = NULL;
		return -1;
	}
	h->from_count = 0;
	for (size_t k = 0; k < h->nf; k++)
		if (mail_field_is(msg, &h->f[k], "from"))
			h->from_count++;
	return 0;
}

/* The signed hash: context, the h= fields, then the signature field sf
 * (in text sfmsg, tags parsed in tg) with b='s value cut out, using
 * scratch (DIDSIG_FIELD_MAX bytes). */
static void hash_input(const uint8_t *msg, const header *h,
		       const dkc_hlist *hl, const uint8_t *sfmsg,
		       const mail_field *sf, const dkim_tags *tg,
		       uint8_t *scratch, uint8_t digest[32])
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)CONTEXT, CONTEXT_LEN);
	dkc_hash_fields(msg, h->f, h->nf, hl, true, sha_emit, &st);
	dkc_canon_without_b(sfmsg, sf, tg, true, scratch, sha_emit, &st);
	crypto_hash_sha256_final(&st, digest);
}

/* ---- Signing ---- */

int didsig_sign(const uint8_t sign_sk[64], const char *sender_did,
		const char *node_did, const uint8_t *msg, size_t len,
		uint64_t t, char **field_r, const char **error_r)
{
	size_t sl = strlen(sender_did), nl = strlen(node_did);
	size_t counts[N_SIGNED] = {0};
	header h;
	dkc_hlist hl;
	dkc_fold *sb = NULL;
	uint8_t digest[32], sig[64], *scratch = NULL;
	char b64[B64_MAX];
	dkim_tags *tg = NULL;
	mail_header_iter it;
	mail_field sf;
	int rc = -1;

	if (sodium_init() < 0)
		abort();
	if (!didsig_did_ok(sender_did, sl) || !didsig_did_ok(node_did, nl)) {
		*error_r = "DID not in canonical form";
		return -1;
	}
	if (!same_domain(sender_did, sl, node_did, nl)) {
		*error_r = "the node may only vouch for a DID of its domain";
		return -1;
	}
	if (header_read(msg, len, &h, error_r) < 0)
		return -1;
	if (h.from_count != 1) {
		*error_r = h.from_count == 0 ? "message has no From field"
					     : "message has more than one From";
		goto out;
	}
	for (size_t k = 0; k < h.nf; k++)
		for (size_t i = 0; i < N_SIGNED; i++)
			if (mail_field_is(msg, &h.f[k], signed_names[i]))
				counts[i]++;
	memset(&hl, 0, sizeof(hl));
	for (size_t i = 0; i < N_SIGNED; i++) {
		if (counts[i] + 1 > DIDSIG_MAX_H - hl.n) {
			*error_r = "too many signed fields for h=";
			goto out;
		}
		for (size_t c = 0; c <= counts[i]; c++) {
			hl.h[hl.n].p = (const uint8_t *)signed_names[i];
			hl.h[hl.n].n = strlen(signed_names[i]);
			hl.n++;
		}
	}

	sb = dkc_fold_create(DIDSIG_FIELD_MAX);
	dkc_fold_raw(sb, DIDSIG_FIELD_NAME ":", sizeof(DIDSIG_FIELD_NAME));
	dkc_fold_str(sb, "v=1;", true);
	dkc_fold_str(sb, "a=ed25519-sha256;", true);
	dkc_fold_fmt(sb, true, "d=%s;", sender_did);
	dkc_fold_fmt(sb, true, "n=%s;", node_did);
	dkc_fold_fmt(sb, true, "t=%llu;", (unsigned long long)t);
	for (size_t j = 0; j < hl.n; j++)
		dkc_fold_fmt(sb, j == 0, "%s%s%s", j == 0 ? "h=" : "",
			     (const char *)hl.h[j].p, j + 1 == hl.n ? ";" : ":");
	dkc_body_digest(msg + h.body_off, len - h.body_off, true, false, 0,
			digest, NULL);
	sodium_bin2base64(b64, sizeof(b64), digest, 32,
			  sodium_base64_VARIANT_ORIGINAL);
	dkc_fold_fmt(sb, true, "bh=%s;", b64);
	dkc_fold_str(sb, "b=", true);
	if (sb->overflow) {
		*error_r = "AMP-DID-Signature field too long";
		goto out;
	}

	/* Hash this text exactly as the verifier will read it. */
	tg = malloc(sizeof(*tg));
	scratch = malloc(DIDSIG_FIELD_MAX);
	if (tg == NULL || scratch == NULL)
		abort();
	mail_header_iter_init(&it, (const uint8_t *)sb->s, sb->n);
	if (mail_header_next(&it, &sf) != 1 || sf.malformed ||
	    sf.len != sb->n ||
	    dkc_field_tags((const uint8_t *)sb->s, &sf, tg, error_r) < 0)
		abort(); /* we wrote it: a bug */
	hash_input(msg, &h, &hl, (const uint8_t *)sb->s, &sf, tg, scratch,
		   digest);
	if (crypto_sign_detached(sig, NULL, digest, 32, sign_sk) != 0)
		abort();
	sodium_bin2base64(b64, sizeof(b64), sig, 64,
			  sodium_base64_VARIANT_ORIGINAL);
	dkc_fold_b64(sb, b64);
	dkc_fold_raw(sb, "\r\n", 2);
	if (sb->overflow) {
		*error_r = "AMP-DID-Signature field too long";
		goto out;
	}
	*field_r = malloc(sb->n + 1);
	if (*field_r == NULL)
		abort();
	memcpy(*field_r, sb->s, sb->n + 1);
	rc = 0;
out:
	free(scratch);
	free(tg);
	dkc_fold_destroy(&sb);
	free(h.f);
	return rc;
}

/* ---- Verification ---- */

static void decide(didsig_sig *sig, didsig_status st, const char *why)
{
	sig->result.status = st;
	sig->result.reason = why;
	sig->need_key = false;
}

/* base64 tag value (FWS removed) decoded to exactly want bytes. */
static bool b64_tag(const dkim_tags *tg, const dkim_tag *t, uint8_t *out,
		    size_t want)
{
	size_t got = 0;
	return dkc_b64_tag(tg, t, out, want, &got) && got == want;
}

/* A DID tag into out (empty if absent or not canonical). */
static bool did_tag(const dkim_tags *tg, const char *name, char *out)
{
	const dkim_tag *t = dkim_tags_get(tg, name);
	out[0] = '\0';
	if (t == NULL ||
	    !didsig_did_ok((const char *)tg->text + t->value_off, t->value_len))
		return false;
	memcpy(out, tg->text + t->value_off, t->value_len);
	out[t->value_len] = '\0';
	return true;
}

static void check_sig(const uint8_t *msg, size_t len, const header *h,
		      const mail_field *f, uint8_t *scratch, dkim_tags *tg,
		      didsig_sig *sig)
{
	static const char *const required[] = {"v", "a", "d", "n",
					       "t", "h", "bh", "b"};
	static const char *const missing[] = {
		"no v= tag", "no a= tag", "no d= tag", "no n= tag",
		"no t= tag", "no h= tag", "no bh= tag", "no b= tag",
	};
	const char *err;
	dkc_hlist hl;
	uint8_t bh[32], digest[32];
	bool d_ok, n_ok;

	sig->need_key = false;
	if (f->len > DIDSIG_FIELD_MAX)
		return decide(sig, DIDSIG_PERMERROR,
			      "AMP-DID-Signature field too long");
	if (dkc_field_tags(msg, f, tg, &err) < 0)
		return decide(sig, DIDSIG_PERMERROR, err);
	/* The DIDs first, so that even a refused field names them. */
	d_ok = did_tag(tg, "d", sig->sender);
	n_ok = did_tag(tg, "n", sig->node);
	for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++)
		if (dkim_tags_get(tg, required[k]) == NULL)
			return decide(sig, DIDSIG_PERMERROR, missing[k]);
	if (!dkim_tag_value_is(tg, dkim_tags_get(tg, "v"), "1"))
		return decide(sig, DIDSIG_PERMERROR, "unknown v= version");
	if (!dkim_tag_value_is(tg, dkim_tags_get(tg, "a"), "ed25519-sha256"))
		return decide(sig, DIDSIG_PERMERROR, "unknown a= algorithm");
	if (!d_ok)
		return decide(sig, DIDSIG_PERMERROR, "d= is not a canonical DID");
	if (!n_ok)
		return decide(sig, DIDSIG_PERMERROR, "n= is not a canonical DID");
	if (!dkc_parse_num(tg, dkim_tags_get(tg, "t"), &sig->t))
		return decide(sig, DIDSIG_PERMERROR, "bad t= value");
	memset(&hl, 0, sizeof(hl));
	if (dkim_tag_value_split(tg, dkim_tags_get(tg, "h"), dkc_hlist_add,
				 &hl) != 0)
		return decide(sig, DIDSIG_PERMERROR,
			      hl.too_many ? "too many names in h="
					  : "bad h= value");
	if (!hl.has_from)
		return decide(sig, DIDSIG_PERMERROR, "h= does not list from");
	if (!b64_tag(tg, dkim_tags_get(tg, "bh"), bh, sizeof(bh)))
		return decide(sig, DIDSIG_PERMERROR, "bad bh= value");
	if (!b64_tag(tg, dkim_tags_get(tg, "b"), sig->b, sizeof(sig->b)))
		return decide(sig, DIDSIG_PERMERROR, "bad b= value");

	if (!same_domain(sig->sender, strlen(sig->sender), sig->node,
			 strlen(sig->node)))
		return decide(sig, DIDSIG_FAIL,
			      "d= is not of the signing node's domain");
	dkc_body_digest(msg + h->body_off, len - h->body_off, true, false, 0,
			digest, NULL);
	if (sodium_memcmp(digest, bh, 32) != 0)
		return decide(sig, DIDSIG_FAIL, "body hash mismatch");
	hash_input(msg, h, &hl, msg, f, tg, scratch, sig->hdr_digest);
	sig->need_key = true;
	sig->result.status = DIDSIG_PENDING;
	sig->result.reason = "waiting for the node's key";
}

int didsig_verify_prepare(const uint8_t *msg, size_t len, didsig_set **set_r,
			  const char **error_r)
{
	header h;
	didsig_set *set;
	uint8_t *scratch;
	dkim_tags *tg;

	if (sodium_init() < 0)
		abort();
	if (header_read(msg, len, &h, error_r) < 0)
		return -1;
	set = calloc(1, sizeof(*set));
	scratch = malloc(DIDSIG_FIELD_MAX);
	tg = malloc(sizeof(*tg));
	if (set == NULL || scratch == NULL || tg == NULL)
		abort();
	set->from_count = h.from_count;
	for (size_t k = 0; k < h.nf; k++) {
		if (!mail_field_is(msg, &h.f[k], DIDSIG_FIELD_NAME))
			continue;
		set->found++;
		if (set->n == DIDSIG_VERIFY_MAX)
			continue;
		didsig_sig *sig = &set->sig[set->n++];
		sig->result.multiple_from = h.from_count > 1;
		check_sig(msg, len, &h, &h.f[k], scratch, tg, sig);
	}
	free(tg);
	free(scratch);
	free(h.f);
	*set_r = set;
	return 0;
}

void didsig_verify_finish(didsig_set *set, size_t i, const uint8_t *pk,
			  uint64_t now, didsig_result *result_r)
{
	didsig_sig *sig;

	if (i >= set->n)
		abort(); /* the caller's bug */
	sig = &set->sig[i];
	if (!sig->need_key) {
		*result_r = sig->result;
		return;
	}
	if (pk == NULL) {
		decide(sig, DIDSIG_TEMPERROR, "node DID not resolved");
	} else if (crypto_sign_verify_detached(sig->b, sig->hdr_digest, 32,
					       pk) != 0) {
		decide(sig, DIDSIG_FAIL, "bad signature");
	} else {
		sig->result.crypto_ok = true;
		if (set->from_count > 1)
			decide(sig, DIDSIG_FAIL, "multiple From");
		else if (set->from_count == 0)
			decide(sig, DIDSIG_FAIL, "no From field");
		else if (now != 0 && sig->t > now &&
			 sig->t - now > DIDSIG_FUTURE_MAX)
			decide(sig, DIDSIG_FAIL, "t= is in the future");
		else
			decide(sig, DIDSIG_PASS, "ok");
	}
	*result_r = sig->result;
}

didsig_status didsig_verify_verdict(const didsig_set *set, size_t *index_r)
{
	static const didsig_status order[] = {DIDSIG_PASS, DIDSIG_TEMPERROR,
					      DIDSIG_FAIL};
	size_t idx = 0;
	didsig_status st = DIDSIG_NONE;

	if (set != NULL && set->n > 0) {
		st = DIDSIG_PERMERROR;
		for (size_t o = 0; o < 3 && st == DIDSIG_PERMERROR; o++)
			for (size_t i = 0; i < set->n; i++) {
				didsig_status s = set->sig[i].result.status;
				if (s == DIDSIG_PENDING)
					s = DIDSIG_TEMPERROR;
				if (s == order[o]) {
					st = s;
					idx = i;
					break;
				}
			}
	}
	if (index_r != NULL)
		*index_r = idx;
	return st;
}

void didsig_set_free(didsig_set **set)
{
	if (set == NULL || *set == NULL)
		return;
	free(*set);
	*set = NULL;
}
