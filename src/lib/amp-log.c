/*
 * amp-log.c — the transparency log's pure parts (PROTOCOL.md §11).
 *
 * - RFC 9162 §2.1 hashing (SHA-256, 0x00 leaf / 0x01 node prefixes).
 * - The frontier (compact range): the roots of the complete subtrees on a
 *   tree's right edge; pushing a leaf tells the caller every complete
 *   subtree the append finishes, so a store keeps a table of them.
 * - PATH and PROOF (RFC 9162 §2.1.3.1, §2.1.4.1) generated over the
 *   caller's table of complete subtrees (amp_log_node_fn): every range the
 *   RFC's recursion needs is either a complete aligned subtree or the fold
 *   of the complete subtrees of its set bits, so a proof costs at most
 *   O(log^2 n) node reads.
 * - The verification algorithms of §2.1.3.2 and §2.1.4.2, bounded: a proof
 *   longer than AMP_LOG_PROOF_MAX, an index outside the tree, sizes 0 or
 *   first > second are refused before any hash is read.
 * - Leaves (§11.2): canonical encoding and strict decoding; the key_input /
 *   revoke_input signatures; the key-history rules (AMP-R-060).
 * - Signed tree heads and witness cosignatures (§11.3).
 *
 * No I/O, no allocation, no global state: every function is thread-safe.
 * Callbacks are never called after a function has decided to fail.
 */
#include "amp-private.h"
#include "amp/amp-log.h"

#include <sodium.h>

#define LEAF_HDR (1u + 1u + 8u + 32u)                  /* 42 */
#define LEAF_REGISTER_LEN (LEAF_HDR + 4u + 32u + 32u + 64u)    /* 174 */
#define LEAF_ROTATE_LEN (LEAF_REGISTER_LEN + 64u)              /* 238 */
#define LEAF_REVOKE_LEN (LEAF_HDR + 4u + 64u)                  /* 110 */
#define LEAF_RECEIPT_MIN (LEAF_HDR + 4u)                       /* + DID */

#define TAG_DID "AMPv1-log-did"
#define TAG_KEY "AMPv1-log-key"
#define TAG_REVOKE "AMPv1-log-revoke"
#define TAG_HEAD "AMPv1-tree-head"
#define TAG_COSIGN "AMPv1-cosign"

/* key_input 113 bytes, revoke_input 52, head_input <= 399,
 * cosign_input <= 755: one size fits all. */
#define SIGN_INPUT_MAX 1024u

/* ---------------------------------------------------------------- hashing */

void amp_log_leaf_hash(const uint8_t *leaf, size_t len, uint8_t out[32])
{
	crypto_hash_sha256_state st;
	const uint8_t zero = 0x00;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &zero, 1);
	if (len > 0)
		crypto_hash_sha256_update(&st, leaf, len);
	crypto_hash_sha256_final(&st, out);
}

void amp_log_node_hash(const uint8_t left[32], const uint8_t right[32],
		       uint8_t out[32])
{
	uint8_t b[65];
	b[0] = 0x01;
	memcpy(b + 1, left, 32);
	memcpy(b + 33, right, 32);
	crypto_hash_sha256(out, b, sizeof(b));
}

void amp_log_empty_root(uint8_t out[32])
{
	crypto_hash_sha256(out, (const uint8_t *)"", 0);
}

void amp_log_did_hash(const char *did, uint8_t out[32])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)TAG_DID,
				  sizeof(TAG_DID) - 1);
	crypto_hash_sha256_update(&st, (const uint8_t *)did, strlen(did));
	crypto_hash_sha256_final(&st, out);
}

void amp_log_envelope_digest(const uint8_t *env, size_t len, uint8_t out[32])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	if (len > 0)
		crypto_hash_sha256_update(&st, env, len);
	crypto_hash_sha256_final(&st, out);
}

/* ------------------------------------------------------------- frontier */

void amp_log_frontier_init(amp_log_frontier *f)
{
	memset(f, 0, sizeof(*f));
}

amp_err amp_log_frontier_push(amp_log_frontier *f, const uint8_t leaf_hash[32],
			      amp_log_emit_fn *emit, void *ctx)
{
	uint64_t s = f->size;
	uint8_t cur[32];
	unsigned l = 0;

	if (s >= (UINT64_C(1) << 63))
		return AMP_E_TOO_LARGE;
	memcpy(cur, leaf_hash, 32);
	if (emit != NULL && emit(ctx, 0, s, cur) != 0)
		return AMP_E_IO;
	/* Each set low bit of the old size is a complete subtree that the
	 * new leaf's subtree now pairs with.  Nothing is written to f before
	 * every emit has succeeded. */
	while (s & (UINT64_C(1) << l)) {
		amp_log_node_hash(f->hash[l], cur, cur);
		l++;
		if (emit != NULL && emit(ctx, l, s >> l, cur) != 0)
			return AMP_E_IO;
	}
	memcpy(f->hash[l], cur, 32);
	f->size = s + 1;
	return AMP_OK;
}

void amp_log_frontier_root(const amp_log_frontier *f, uint8_t root[32])
{
	bool have = false;
	if (f->size == 0) {
		amp_log_empty_root(root);
		return;
	}
	/* MTH splits at the largest power of two: the smallest subtree is the
	 * innermost right child, the largest the outermost left one. */
	for (unsigned l = 0; l < AMP_LOG_LEVELS; l++) {
		if (!(f->size & (UINT64_C(1) << l)))
			continue;
		if (!have) {
			memcpy(root, f->hash[l], 32);
			have = true;
		} else {
			amp_log_node_hash(f->hash[l], root, root);
		}
	}
}

/* ------------------------------------------------------ proof generation */

/* Largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
	uint64_t k = 1;
	while (k < n - k)
		k <<= 1;
	return k;
}

/* MTH(D[start : start + n]) for a range of the RFC's recursion (n >= 1,
 * start a multiple of the largest power of two <= n, so each set bit of n,
 * from the highest, is a complete aligned subtree). */
static amp_err range_hash(uint64_t start, uint64_t n, amp_log_node_fn *node,
			  void *ctx, uint8_t out[32])
{
	uint8_t sub[AMP_LOG_LEVELS][32];
	unsigned cnt = 0;
	uint64_t at = start;
	for (unsigned l = AMP_LOG_LEVELS; l-- > 0;) {
		uint64_t w = UINT64_C(1) << l;
		if (!(n & w))
			continue;
		if (node(ctx, l, at >> l, sub[cnt]) != 0)
			return AMP_E_IO;
		cnt++;
		at += w;
	}
	memcpy(out, sub[cnt - 1], 32);
	for (unsigned i = cnt - 1; i-- > 0;)
		amp_log_node_hash(sub[i], out, out);
	return AMP_OK;
}

amp_err amp_log_root(uint64_t size, amp_log_node_fn *node, void *ctx,
		     uint8_t root[32])
{
	if (size == 0) {
		amp_log_empty_root(root);
		return AMP_OK;
	}
	if (node == NULL)
		return AMP_E_INVALID_ARG;
	return range_hash(0, size, node, ctx, root);
}

/* path holds n hashes in the order they were found (outermost first);
 * the RFC's PATH and PROOF list them innermost first. */
static void reverse_path(uint8_t path[][32], size_t n)
{
	uint8_t t[32];
	for (size_t i = 0; i < n / 2; i++) {
		memcpy(t, path[i], 32);
		memcpy(path[i], path[n - 1 - i], 32);
		memcpy(path[n - 1 - i], t, 32);
	}
}

amp_err amp_log_inclusion_proof(uint64_t index, uint64_t size,
				amp_log_node_fn *node, void *ctx,
				uint8_t path[][32], size_t *n_r)
{
	uint64_t start = 0, m = index, n = size;
	size_t cnt = 0;
	amp_err e;

	if (index >= size || node == NULL || path == NULL || n_r == NULL)
		return AMP_E_INVALID_ARG;
	/* PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])      m < k
	 *               = PATH(m - k, D[k:n]) : MTH(D[0:k])  m >= k */
	while (n > 1) {
		uint64_t k = split_point(n);
		if (cnt >= AMP_LOG_PROOF_MAX)
			return AMP_E_INVALID_ARG; /* unreachable: n < 2^64 */
		if (m < k) {
			e = range_hash(start + k, n - k, node, ctx, path[cnt]);
			n = k;
		} else {
			e = range_hash(start, k, node, ctx, path[cnt]);
			start += k;
			m -= k;
			n -= k;
		}
		if (e != AMP_OK)
			return e;
		cnt++;
	}
	reverse_path(path, cnt);
	*n_r = cnt;
	return AMP_OK;
}

amp_err amp_log_consistency_proof(uint64_t first, uint64_t second,
				  amp_log_node_fn *node, void *ctx,
				  uint8_t path[][32], size_t *n_r)
{
	uint64_t start = 0, m = first, n = second;
	bool whole = true;
	size_t cnt = 0;
	amp_err e;

	if (first == 0 || first > second || node == NULL || path == NULL ||
	    n_r == NULL)
		return AMP_E_INVALID_ARG;
	/* SUBPROOF(m, D[m], true)  = {}
	 * SUBPROOF(m, D[m], false) = {MTH(D[m])}
	 * SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])  m <= k
	 *                      = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) */
	while (m != n) {
		uint64_t k = split_point(n);
		if (cnt >= AMP_LOG_PROOF_MAX)
			return AMP_E_INVALID_ARG; /* unreachable */
		if (m <= k) {
			e = range_hash(start + k, n - k, node, ctx, path[cnt]);
			n = k;
		} else {
			e = range_hash(start, k, node, ctx, path[cnt]);
			start += k;
			m -= k;
			n -= k;
			whole = false;
		}
		if (e != AMP_OK)
			return e;
		cnt++;
	}
	if (!whole) {
		if (cnt >= AMP_LOG_PROOF_MAX)
			return AMP_E_INVALID_ARG; /* unreachable */
		e = range_hash(start, n, node, ctx, path[cnt]);
		if (e != AMP_OK)
			return e;
		cnt++;
	}
	reverse_path(path, cnt);
	*n_r = cnt;
	return AMP_OK;
}

/* --------------------------------------------------- proof verification */

amp_err amp_log_verify_inclusion(uint64_t index, uint64_t size,
				 const uint8_t leaf_hash[32],
				 const uint8_t path[][32], size_t n,
				 const uint8_t root[32])
{
	uint64_t fn, sn;
	uint8_t r[32];

	if (index >= size || n > AMP_LOG_PROOF_MAX || leaf_hash == NULL ||
	    root == NULL || (n > 0 && path == NULL))
		return AMP_E_BAD_PROOF;
	fn = index;
	sn = size - 1;
	memcpy(r, leaf_hash, 32);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return AMP_E_BAD_PROOF;
		if ((fn & 1) || fn == sn) {
			amp_log_node_hash(path[i], r, r);
			/* at most 63 shifts: fn < 2^64 */
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			amp_log_node_hash(r, path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || sodium_memcmp(r, root, 32) != 0)
		return AMP_E_BAD_PROOF;
	return AMP_OK;
}

amp_err amp_log_verify_consistency(uint64_t first, uint64_t second,
				   const uint8_t first_root[32],
				   const uint8_t second_root[32],
				   const uint8_t path[][32], size_t n)
{
	uint64_t fn, sn;
	uint8_t fr[32], sr[32];
	size_t i;

	if (first == 0 || first > second || n > AMP_LOG_PROOF_MAX ||
	    first_root == NULL || second_root == NULL ||
	    (n > 0 && path == NULL))
		return AMP_E_BAD_PROOF;
	if (first == second) {
		/* PROOF(m, D[m]) is empty; it proves the roots are equal. */
		if (n != 0 || sodium_memcmp(first_root, second_root, 32) != 0)
			return AMP_E_BAD_PROOF;
		return AMP_OK;
	}
	if (n == 0)
		return AMP_E_BAD_PROOF;
	/* When first is a power of two, first_root is the proof's implicit
	 * first element (RFC 9162 §2.1.4.2 step 2). */
	if ((first & (first - 1)) == 0) {
		memcpy(fr, first_root, 32);
		i = 0;
	} else {
		memcpy(fr, path[0], 32);
		i = 1;
	}
	memcpy(sr, fr, 32);
	fn = first - 1;
	sn = second - 1;
	while (fn & 1) { /* at most 63 shifts: fn < 2^64 - 1 */
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < n; i++) {
		if (sn == 0)
			return AMP_E_BAD_PROOF;
		if ((fn & 1) || fn == sn) {
			amp_log_node_hash(path[i], fr, fr);
			amp_log_node_hash(path[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			amp_log_node_hash(sr, path[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || sodium_memcmp(fr, first_root, 32) != 0 ||
	    sodium_memcmp(sr, second_root, 32) != 0)
		return AMP_E_BAD_PROOF;
	return AMP_OK;
}

/* ------------------------------------------------------------- leaves */

static uint32_t rd_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint64_t rd_u64(const uint8_t *p)
{
	return ((uint64_t)rd_u32(p) << 32) | rd_u32(p + 4);
}

/* A canonical DID in a NUL-terminated buffer of AMP_DID_MAX + 1 bytes. */
static bool did_ok(const char *s, size_t *len_r)
{
	size_t len = strnlen(s, AMP_DID_MAX + 1);
	if (len == 0 || len > AMP_DID_MAX ||
	    amp_did_parse(s, len, NULL, NULL) != AMP_OK)
		return false;
	*len_r = len;
	return true;
}

amp_err amp_log_leaf_encode(const amp_log_leaf *l, uint8_t *out, size_t cap,
			    size_t *len_r)
{
	amp_wbuf w;
	size_t dlen = 0;

	if (l == NULL || len_r == NULL || (out == NULL && cap > 0))
		return AMP_E_INVALID_ARG;
	switch (l->type) {
	case AMP_LOG_REGISTER:
		if (l->version != 0)
			return AMP_E_INVALID_ARG;
		break;
	case AMP_LOG_ROTATE:
		if (l->version == 0)
			return AMP_E_INVALID_ARG;
		break;
	case AMP_LOG_REVOKE:
		break;
	case AMP_LOG_RECEIPT:
		if (!did_ok(l->node, &dlen))
			return AMP_E_INVALID_ARG;
		break;
	default:
		return AMP_E_INVALID_ARG;
	}
	amp_wbuf_init(&w, out, cap);
	amp_wbuf_u8(&w, 1);
	amp_wbuf_u8(&w, (uint8_t)l->type);
	amp_wbuf_u64(&w, l->time);
	amp_wbuf_put(&w, l->subject, 32);
	switch (l->type) {
	case AMP_LOG_REGISTER:
	case AMP_LOG_ROTATE:
		amp_wbuf_u32(&w, l->version);
		amp_wbuf_put(&w, l->sign_pk, 32);
		amp_wbuf_put(&w, l->enc_pk, 32);
		amp_wbuf_put(&w, l->sig, 64);
		if (l->type == AMP_LOG_ROTATE)
			amp_wbuf_put(&w, l->prev_sig, 64);
		break;
	case AMP_LOG_REVOKE:
		amp_wbuf_u32(&w, l->version);
		amp_wbuf_put(&w, l->sig, 64);
		break;
	case AMP_LOG_RECEIPT:
		amp_wbuf_lp(&w, l->node, dlen);
		break;
	}
	if (w.overflow)
		return AMP_E_TOO_LARGE;
	*len_r = w.len;
	return AMP_OK;
}

amp_err amp_log_leaf_decode(const uint8_t *buf, size_t len, amp_log_leaf *l_r,
			    const char **error_r)
{
	amp_log_leaf l;
	size_t want;
	const uint8_t *p;

	if (buf == NULL && len > 0)
		AMP_FAIL(AMP_E_INVALID_ARG, "no log leaf given");
	if (len > AMP_LOG_LEAF_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "log leaf is longer than 512 bytes");
	if (len < 2)
		AMP_FAIL(AMP_E_TRUNCATED, "log leaf ends before its type");
	if (buf[0] != 1)
		AMP_FAIL(AMP_E_VERSION, "log leaf version is not 1");
	switch (buf[1]) {
	case AMP_LOG_REGISTER:
		want = LEAF_REGISTER_LEN;
		break;
	case AMP_LOG_ROTATE:
		want = LEAF_ROTATE_LEN;
		break;
	case AMP_LOG_REVOKE:
		want = LEAF_REVOKE_LEN;
		break;
	case AMP_LOG_RECEIPT:
		want = LEAF_RECEIPT_MIN;
		break;
	default:
		AMP_FAIL(AMP_E_MALFORMED, "log leaf has an unknown type");
	}
	if (len < want)
		AMP_FAIL(AMP_E_TRUNCATED, "log leaf is truncated");
	memset(&l, 0, sizeof(l));
	l.type = (amp_log_type)buf[1];
	l.time = rd_u64(buf + 2);
	memcpy(l.subject, buf + 10, 32);
	p = buf + LEAF_HDR;
	if (l.type == AMP_LOG_RECEIPT) {
		uint32_t dlen = rd_u32(p);
		if (dlen > AMP_DID_MAX)
			AMP_FAIL(AMP_E_BAD_DID,
				 "receipt node DID is longer than 332 bytes");
		if (len - want < dlen)
			AMP_FAIL(AMP_E_TRUNCATED, "log leaf is truncated");
		if (len - want > dlen)
			AMP_FAIL(AMP_E_MALFORMED,
				 "log leaf has bytes after its end");
		if (amp_did_parse((const char *)p + 4, dlen, NULL, NULL) !=
		    AMP_OK)
			AMP_FAIL(AMP_E_BAD_DID,
				 "receipt node is not a canonical DID");
		memcpy(l.node, p + 4, dlen);
		l.node[dlen] = '\0';
	} else {
		if (len > want)
			AMP_FAIL(AMP_E_MALFORMED,
				 "log leaf has bytes after its end");
		l.version = rd_u32(p);
		p += 4;
		if (l.type == AMP_LOG_REGISTER && l.version != 0)
			AMP_FAIL(AMP_E_MALFORMED,
				 "register leaf has a key version other than 0");
		if (l.type == AMP_LOG_ROTATE && l.version == 0)
			AMP_FAIL(AMP_E_MALFORMED,
				 "rotate leaf has key version 0");
		if (l.type == AMP_LOG_REVOKE) {
			memcpy(l.sig, p, 64);
		} else {
			memcpy(l.sign_pk, p, 32);
			memcpy(l.enc_pk, p + 32, 32);
			memcpy(l.sig, p + 64, 64);
			if (l.type == AMP_LOG_ROTATE)
				memcpy(l.prev_sig, p + 128, 64);
		}
	}
	if (l_r != NULL)
		*l_r = l;
	return AMP_OK;
}

/* ------------------------------------------------------- key signatures */

static size_t key_input(uint8_t *b, size_t cap, const uint8_t did_hash[32],
			uint32_t version, const uint8_t sign_pk[32],
			const uint8_t enc_pk[32])
{
	amp_wbuf w;
	amp_wbuf_init(&w, b, cap);
	amp_wbuf_str(&w, TAG_KEY);
	amp_wbuf_put(&w, did_hash, 32);
	amp_wbuf_u32(&w, version);
	amp_wbuf_put(&w, sign_pk, 32);
	amp_wbuf_put(&w, enc_pk, 32);
	if (w.overflow)
		abort(); /* the buffer is sized for it */
	return w.len;
}

static size_t revoke_input(uint8_t *b, size_t cap, const uint8_t did_hash[32],
			   uint32_t version)
{
	amp_wbuf w;
	amp_wbuf_init(&w, b, cap);
	amp_wbuf_str(&w, TAG_REVOKE);
	amp_wbuf_put(&w, did_hash, 32);
	amp_wbuf_u32(&w, version);
	if (w.overflow)
		abort();
	return w.len;
}

void amp_log_sign_key(const uint8_t sk[64], const uint8_t did_hash[32],
		      uint32_t version, const uint8_t sign_pk[32],
		      const uint8_t enc_pk[32], uint8_t sig[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	size_t n = key_input(b, sizeof(b), did_hash, version, sign_pk, enc_pk);
	crypto_sign_detached(sig, NULL, b, n, sk);
}

bool amp_log_verify_key(const uint8_t pk[32], const uint8_t did_hash[32],
			uint32_t version, const uint8_t sign_pk[32],
			const uint8_t enc_pk[32], const uint8_t sig[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	size_t n = key_input(b, sizeof(b), did_hash, version, sign_pk, enc_pk);
	return crypto_sign_verify_detached(sig, b, n, pk) == 0;
}

void amp_log_sign_revoke(const uint8_t sk[64], const uint8_t did_hash[32],
			 uint32_t version, uint8_t sig[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	size_t n = revoke_input(b, sizeof(b), did_hash, version);
	crypto_sign_detached(sig, NULL, b, n, sk);
}

bool amp_log_verify_revoke(const uint8_t pk[32], const uint8_t did_hash[32],
			   uint32_t version, const uint8_t sig[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	size_t n = revoke_input(b, sizeof(b), did_hash, version);
	return crypto_sign_verify_detached(sig, b, n, pk) == 0;
}

/* ---------------------------------------------------------- key history */

amp_err amp_log_identity_apply(amp_log_identity *st, const amp_log_leaf *l,
			       const char **error_r)
{
	if (st == NULL || l == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no key history or leaf given");
	if (l->type != AMP_LOG_REGISTER && l->type != AMP_LOG_ROTATE &&
	    l->type != AMP_LOG_REVOKE)
		AMP_FAIL(AMP_E_MALFORMED,
			 "only register, rotate and revoke leaves make a key "
			 "history");
	if (st->exists && memcmp(st->subject, l->subject, 32) != 0)
		AMP_FAIL(AMP_E_MALFORMED,
			 "leaf belongs to another DID's key history");
	if (st->revoked)
		AMP_FAIL(AMP_E_MALFORMED, "key history continues after a revoke");

	switch (l->type) {
	case AMP_LOG_REGISTER:
		/* AMP-R-060 1 */
		if (st->exists)
			AMP_FAIL(AMP_E_MALFORMED,
				 "key history has a second register leaf");
		if (l->version != 0)
			AMP_FAIL(AMP_E_MALFORMED,
				 "register leaf has a key version other than 0");
		if (!amp_log_verify_key(l->sign_pk, l->subject, 0, l->sign_pk,
					l->enc_pk, l->sig))
			AMP_FAIL(AMP_E_BAD_SIGNATURE,
				 "register leaf's self_sig does not verify");
		memcpy(st->subject, l->subject, 32);
		break;
	case AMP_LOG_ROTATE:
		/* AMP-R-060 2 */
		if (!st->exists)
			AMP_FAIL(AMP_E_MALFORMED,
				 "key history does not start with a register "
				 "leaf");
		if ((uint64_t)l->version != (uint64_t)st->version + 1)
			AMP_FAIL(AMP_E_MALFORMED,
				 "rotate leaf's key version is not the "
				 "current one plus one");
		if (!amp_log_verify_key(l->sign_pk, l->subject, l->version,
					l->sign_pk, l->enc_pk, l->sig))
			AMP_FAIL(AMP_E_BAD_SIGNATURE,
				 "rotate leaf's self_sig does not verify");
		if (!amp_log_verify_key(st->sign_pk, l->subject, l->version,
					l->sign_pk, l->enc_pk, l->prev_sig))
			AMP_FAIL(AMP_E_BAD_SIGNATURE,
				 "rotate leaf's prev_sig does not verify with "
				 "the previous key");
		break;
	case AMP_LOG_REVOKE:
		/* AMP-R-060 3 */
		if (!st->exists)
			AMP_FAIL(AMP_E_MALFORMED,
				 "key history does not start with a register "
				 "leaf");
		if (l->version != st->version)
			AMP_FAIL(AMP_E_MALFORMED,
				 "revoke leaf does not name the current key "
				 "version");
		if (!amp_log_verify_revoke(st->sign_pk, l->subject, l->version,
					   l->sig))
			AMP_FAIL(AMP_E_BAD_SIGNATURE,
				 "revoke leaf's sig does not verify with the "
				 "current key");
		st->revoked = true;
		return AMP_OK;
	default:
		break;
	}
	st->exists = true;
	st->version = l->version;
	memcpy(st->sign_pk, l->sign_pk, 32);
	memcpy(st->enc_pk, l->enc_pk, 32);
	st->since = l->time;
	return AMP_OK;
}

/* ------------------------------------------------------------ tree heads */

/* head_input into w; false when the log name is not a canonical DID. */
static bool head_input(amp_wbuf *w, const amp_log_head *h)
{
	size_t dlen;
	if (!did_ok(h->log, &dlen))
		return false;
	amp_wbuf_str(w, TAG_HEAD);
	amp_wbuf_lp(w, h->log, dlen);
	amp_wbuf_u64(w, h->size);
	amp_wbuf_put(w, h->root, 32);
	amp_wbuf_u64(w, h->time);
	return !w->overflow;
}

amp_err amp_log_head_sign(amp_log_head *h, const uint8_t sk[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	amp_wbuf w;
	if (h == NULL || sk == NULL)
		return AMP_E_INVALID_ARG;
	amp_wbuf_init(&w, b, sizeof(b));
	if (!head_input(&w, h))
		return AMP_E_INVALID_ARG;
	crypto_sign_detached(h->sig, NULL, b, w.len, sk);
	return AMP_OK;
}

bool amp_log_head_verify(const amp_log_head *h, const uint8_t pk[32])
{
	uint8_t b[SIGN_INPUT_MAX];
	amp_wbuf w;
	if (h == NULL || pk == NULL)
		return false;
	amp_wbuf_init(&w, b, sizeof(b));
	if (!head_input(&w, h))
		return false;
	return crypto_sign_verify_detached(h->sig, b, w.len, pk) == 0;
}

static bool cosign_input(amp_wbuf *w, const amp_log_head *h,
			 const char *witness, uint64_t cotime)
{
	size_t wlen;
	if (witness == NULL || !did_ok(witness, &wlen))
		return false;
	amp_wbuf_str(w, TAG_COSIGN);
	amp_wbuf_lp(w, witness, wlen);
	if (!head_input(w, h))
		return false;
	amp_wbuf_u64(w, cotime);
	return !w->overflow;
}

amp_err amp_log_cosign(const amp_log_head *h, const char *witness,
		       uint64_t cotime, const uint8_t sk[64], uint8_t sig[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	amp_wbuf w;
	if (h == NULL || sk == NULL || sig == NULL)
		return AMP_E_INVALID_ARG;
	amp_wbuf_init(&w, b, sizeof(b));
	if (!cosign_input(&w, h, witness, cotime))
		return AMP_E_INVALID_ARG;
	crypto_sign_detached(sig, NULL, b, w.len, sk);
	return AMP_OK;
}

bool amp_log_cosign_verify(const amp_log_head *h, const char *witness,
			   uint64_t cotime, const uint8_t pk[32],
			   const uint8_t sig[64])
{
	uint8_t b[SIGN_INPUT_MAX];
	amp_wbuf w;
	if (h == NULL || pk == NULL || sig == NULL)
		return false;
	amp_wbuf_init(&w, b, sizeof(b));
	if (!cosign_input(&w, h, witness, cotime))
		return false;
	return crypto_sign_verify_detached(sig, b, w.len, pk) == 0;
}
