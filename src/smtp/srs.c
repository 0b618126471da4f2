/*
 * srs.c — Sender Rewriting Scheme (srs.h): SRS0/SRS1 rewrite and
 * reversal.  Pure: fixed buffers on the stack; the keyed hash is
 * libsodium's crypto_generichash (BLAKE2b), compared with sodium_memcmp.
 */
#include "srs.h"

#include "util.h"

#include <sodium.h>
#include <string.h>

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

static uint8_t upper(uint8_t c)
{
	return c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
}

static bool is_alnum(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* -1, or the value 0..31 of a base32 character (either case). */
static int b32_val(uint8_t c)
{
	c = upper(c);
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

static unsigned hash_len(const srs_config *c)
{
	return c->hash_len == 0 ? SRS_HASH_DEFAULT : c->hash_len;
}

static unsigned max_age(const srs_config *c)
{
	return c->max_age == 0 ? SRS_MAX_AGE_DEFAULT : c->max_age;
}

/* valid UTF-8 bytes of s[0..n) at i: the sequence length, 0 if bad */
static size_t utf8_at(const char *s, size_t n, size_t i)
{
	uint32_t cp;
	return util_utf8_seq((const uint8_t *)s + i, n - i, &cp);
}

static bool local_ok(const char *s, size_t n)
{
	if (n == 0 || n > SRS_LOCAL_MAX)
		return false;
	for (size_t i = 0; i < n;) {
		uint8_t c = (uint8_t)s[i];
		if (c >= 0x80) {
			size_t k = utf8_at(s, n, i);
			if (k == 0)
				return false;
			i += k;
			continue;
		}
		if (!is_alnum(c) && c != '.' &&
		    strchr("!#$%&'*+-/=?^_`{|}~", c) == NULL)
			return false;
		if (c == 0)
			return false;
		i++;
	}
	return true;
}

static bool domain_ok(const char *s, size_t n)
{
	if (n == 0 || n > SRS_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n;) {
		uint8_t c = (uint8_t)s[i];
		if (c >= 0x80) {
			size_t k = utf8_at(s, n, i);
			if (k == 0)
				return false;
			i += k;
			continue;
		}
		if (c == '.' && s[i + 1] == '.')
			return false;
		if (!is_alnum(c) && c != '-' && c != '.' && c != '_')
			return false;
		i++;
	}
	return true;
}

static bool same_ci(const char *a, size_t na, const char *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
			return false;
	return true;
}

/* Split addr at its last '@'. */
static int split(const char *addr, const char **local, size_t *ln,
		 const char **dom, size_t *dn, const char **error_r)
{
	if (addr == NULL || addr[0] == '\0') {
		*error_r = "the null sender is not rewritten";
		return -1;
	}
	size_t n = strnlen(addr, SRS_ADDR_MAX + 1);
	if (n > SRS_ADDR_MAX) {
		*error_r = "the address is too long";
		return -1;
	}
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (addr[i] == '@')
			at = addr + i;
	if (at == NULL) {
		*error_r = "the address has no '@'";
		return -1;
	}
	*local = addr;
	*ln = (size_t)(at - addr);
	*dom = at + 1;
	*dn = n - *ln - 1;
	if (!local_ok(*local, *ln)) {
		*error_r = "the address's local part is not accepted";
		return -1;
	}
	if (!domain_ok(*dom, *dn)) {
		*error_r = "the address's domain is not accepted";
		return -1;
	}
	return 0;
}

/* The hash of the given fields: hash_len base32 characters into out. */
static void make_hash(const srs_config *c, char tag, const char *const *f,
		      const size_t *fn, size_t nf, char out[SRS_HASH_MAX])
{
	crypto_generichash_state st;
	uint8_t h[16], buf[2 + SRS_ADDR_MAX];
	crypto_generichash_init(&st, c->key, SRS_KEY_LEN, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)&tag, 1);
	for (size_t i = 0; i < nf; i++) {
		size_t n = fn[i];      /* <= SRS_ADDR_MAX (callers) */
		buf[0] = (uint8_t)(n >> 8);
		buf[1] = (uint8_t)n;
		for (size_t k = 0; k < n; k++)
			buf[2 + k] = lower((uint8_t)f[i][k]);
		crypto_generichash_update(&st, buf, 2 + n);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	/* 16 bytes = 128 bits >= 16 * 5 */
	unsigned hl = hash_len(c);
	for (unsigned i = 0; i < hl; i++) {
		unsigned bit = i * 5, v = 0;
		for (unsigned k = 0; k < 5; k++, bit++)
			v = (v << 1) | ((h[bit / 8] >> (7 - bit % 8)) & 1u);
		out[i] = b32[v];
	}
	sodium_memzero(&st, sizeof(st));
}

static bool hash_ok(const srs_config *c, char tag, const char *const *f,
		    const size_t *fn, size_t nf, const char *given, size_t gn)
{
	char want[SRS_HASH_MAX], got[SRS_HASH_MAX];
	unsigned hl = hash_len(c);
	if (gn != hl)
		return false;
	make_hash(c, tag, f, fn, nf, want);
	for (unsigned i = 0; i < hl; i++)
		got[i] = (char)upper((uint8_t)given[i]);
	return sodium_memcmp(want, got, hl) == 0;
}

static int config_ok(const srs_config *c, const char **error_r)
{
	unsigned hl = hash_len(c), age = max_age(c);
	if (hl < SRS_HASH_MIN || hl > SRS_HASH_MAX) {
		*error_r = "the SRS hash length is not 4..16";
		return -1;
	}
	if (age >= SRS_DAYS) {
		*error_r = "the SRS maximum age is not 1..1023 days";
		return -1;
	}
	if (c->domain == NULL ||
	    !domain_ok(c->domain, strnlen(c->domain, SRS_DOMAIN_MAX + 1))) {
		*error_r = "our SRS domain is not accepted";
		return -1;
	}
	return 0;
}

static bool is_sep(char c)
{
	return c == '=' || c == '+' || c == '-';
}

/* "SRS0" or "SRS1" and a separator: 0 or 1, else -1. */
static int srs_kind(const char *local, size_t ln)
{
	if (ln < 5 || lower((uint8_t)local[0]) != 's' ||
	    lower((uint8_t)local[1]) != 'r' || lower((uint8_t)local[2]) != 's' ||
	    (local[3] != '0' && local[3] != '1') || !is_sep(local[4]))
		return -1;
	return local[3] - '0';
}

/* The i-th '='-separated field of s[0..n) from `from`: start and length;
 * false if there is no '=' after it (when need_eq). */
static bool next_field(const char *s, size_t n, size_t *pos, size_t *start,
		       size_t *len)
{
	const char *eq = memchr(s + *pos, '=', n - *pos);
	if (eq == NULL)
		return false;
	*start = *pos;
	*len = (size_t)(eq - s) - *pos;
	*pos = (size_t)(eq - s) + 1;
	return true;
}

/* Write "prefix=hash=..." pieces into out with a length check of the
 * local part. */
typedef struct ob {
	char *p;
	size_t n;
	bool over;
} ob;

static void ob_put(ob *o, const char *s, size_t n)
{
	if (o->over || n > SRS_ADDR_MAX - o->n) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
	o->p[o->n] = '\0';
}

int srs_forward(const srs_config *c, const char *sender, uint64_t now,
		char out_r[SRS_ADDR_MAX + 1], const char **error_r)
{
	const char *local, *dom;
	size_t ln, dn;
	char hash[SRS_HASH_MAX];
	ob o = { .p = out_r, .n = 0, .over = false };
	out_r[0] = '\0';
	if (config_ok(c, error_r) != 0 ||
	    split(sender, &local, &ln, &dom, &dn, error_r) != 0)
		return -1;
	size_t ourn = strlen(c->domain);
	unsigned hl = hash_len(c);
	if (same_ci(dom, dn, c->domain, ourn)) {
		ob_put(&o, sender, ln + 1 + dn);
		return 0;
	}
	int kind = srs_kind(local, ln);
	if (kind == 0 && ln > 5) {
		/* SRS0 of another host: SRS1=HASH=host=<sep>rest */
		const char *rest = local + 4;
		size_t rn = ln - 4;
		const char *f[] = { dom, rest };
		size_t fn[] = { dn, rn };
		make_hash(c, '1', f, fn, 2, hash);
		ob_put(&o, "SRS1=", 5);
		ob_put(&o, hash, hl);
		ob_put(&o, "=", 1);
		ob_put(&o, dom, dn);
		ob_put(&o, "=", 1);
		ob_put(&o, rest, rn);
		goto done;
	}
	if (kind == 1) {
		/* SRS1=HHH=host=<sep>rest of another host: new hash */
		size_t pos = 5, hs, hn, ss, sn;
		if (next_field(local, ln, &pos, &hs, &hn) &&
		    next_field(local, ln, &pos, &ss, &sn) && sn > 0 &&
		    pos < ln && is_sep(local[pos]) && pos + 1 < ln) {
			const char *host = local + ss;
			const char *rest = local + pos;
			size_t rn = ln - pos;
			const char *f[] = { host, rest };
			size_t fn[] = { sn, rn };
			make_hash(c, '1', f, fn, 2, hash);
			ob_put(&o, "SRS1=", 5);
			ob_put(&o, hash, hl);
			ob_put(&o, "=", 1);
			ob_put(&o, host, sn);
			ob_put(&o, "=", 1);
			ob_put(&o, rest, rn);
			goto done;
		}
		/* not an SRS1 after all: an ordinary sender */
	}
	{
		unsigned day = (unsigned)((now / 86400) % SRS_DAYS);
		char tt[2] = { b32[day >> 5], b32[day & 31] };
		const char *f[] = { tt, dom, local };
		size_t fn[] = { 2, dn, ln };
		make_hash(c, '0', f, fn, 3, hash);
		ob_put(&o, "SRS0=", 5);
		ob_put(&o, hash, hl);
		ob_put(&o, "=", 1);
		ob_put(&o, tt, 2);
		ob_put(&o, "=", 1);
		ob_put(&o, dom, dn);
		ob_put(&o, "=", 1);
		ob_put(&o, local, ln);
	}
done:
	if (o.over || o.n > SRS_LOCAL_MAX) {
		out_r[0] = '\0';
		*error_r = "the rewritten local part would be longer than 64 "
			   "octets";
		return -1;
	}
	ob_put(&o, "@", 1);
	ob_put(&o, c->domain, ourn);
	if (o.over) {
		out_r[0] = '\0';
		*error_r = "the rewritten address is too long";
		return -1;
	}
	return 0;
}

int srs_reverse(const srs_config *c, const char *addr, uint64_t now,
		char out_r[SRS_ADDR_MAX + 1], const char **error_r)
{
	const char *local, *dom;
	size_t ln, dn, pos = 5;
	ob o = { .p = out_r, .n = 0, .over = false };
	out_r[0] = '\0';
	if (config_ok(c, error_r) != 0 ||
	    split(addr, &local, &ln, &dom, &dn, error_r) != 0)
		return -1;
	if (!same_ci(dom, dn, c->domain, strlen(c->domain))) {
		*error_r = "the address is not at our SRS domain";
		return -1;
	}
	int kind = srs_kind(local, ln);
	if (kind < 0) {
		*error_r = "the address is not an SRS address";
		return -1;
	}
	if (kind == 0) {
		size_t hs, hn, ts, tn, ds, dln;
		if (!next_field(local, ln, &pos, &hs, &hn) ||
		    !next_field(local, ln, &pos, &ts, &tn) ||
		    !next_field(local, ln, &pos, &ds, &dln) || pos == ln ||
		    tn != 2 || dln == 0) {
			*error_r = "the SRS0 address is malformed";
			return -1;
		}
		const char *tt = local + ts, *od = local + ds;
		const char *ol = local + pos;
		size_t oln = ln - pos;
		const char *f[] = { tt, od, ol };
		size_t fn[] = { 2, dln, oln };
		if (!hash_ok(c, '0', f, fn, 3, local + hs, hn)) {
			*error_r = "the SRS0 address's hash is wrong";
			return -1;
		}
		int hi = b32_val((uint8_t)tt[0]), lo = b32_val((uint8_t)tt[1]);
		if (hi < 0 || lo < 0) {
			*error_r = "the SRS0 address's time stamp is malformed";
			return -1;
		}
		unsigned then = (unsigned)(hi << 5 | lo);
		unsigned today = (unsigned)((now / 86400) % SRS_DAYS);
		unsigned age = (today + SRS_DAYS - then) % SRS_DAYS;
		if (age > max_age(c)) {
			*error_r = "the SRS0 address has expired";
			return -1;
		}
		if (!local_ok(ol, oln) || !domain_ok(od, dln)) {
			*error_r = "the SRS0 address's original is malformed";
			return -1;
		}
		ob_put(&o, ol, oln);
		ob_put(&o, "@", 1);
		ob_put(&o, od, dln);
	} else {
		size_t hs, hn, ss, sn;
		if (!next_field(local, ln, &pos, &hs, &hn) ||
		    !next_field(local, ln, &pos, &ss, &sn) || sn == 0 ||
		    pos >= ln || !is_sep(local[pos]) || pos + 1 == ln) {
			*error_r = "the SRS1 address is malformed";
			return -1;
		}
		const char *host = local + ss, *rest = local + pos;
		size_t rn = ln - pos;
		const char *f[] = { host, rest };
		size_t fn[] = { sn, rn };
		if (!hash_ok(c, '1', f, fn, 2, local + hs, hn)) {
			*error_r = "the SRS1 address's hash is wrong";
			return -1;
		}
		if (!domain_ok(host, sn) || 4 + rn > SRS_LOCAL_MAX) {
			*error_r = "the SRS1 address's original is malformed";
			return -1;
		}
		ob_put(&o, "SRS0", 4);
		ob_put(&o, rest, rn);
		ob_put(&o, "@", 1);
		ob_put(&o, host, sn);
	}
	if (o.over) {
		out_r[0] = '\0';
		*error_r = "the original address is too long";
		return -1;
	}
	return 0;
}

bool srs_is_srs(const char *addr)
{
	if (addr == NULL)
		return false;
	size_t n = strnlen(addr, SRS_ADDR_MAX + 1);
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (addr[i] == '@')
			at = addr + i;
	size_t ln = at != NULL ? (size_t)(at - addr) : n;
	return srs_kind(addr, ln) >= 0;
}

void srs_key_derive(const uint8_t *secret, size_t secret_len,
		    uint8_t key_r[SRS_KEY_LEN])
{
	static const char what[] = "AMPv1-srs-key";
	crypto_generichash(key_r, SRS_KEY_LEN, (const uint8_t *)what,
			   sizeof(what) - 1, secret, secret_len);
}
