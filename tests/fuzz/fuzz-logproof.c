/*
 * fuzz-logproof.c — libFuzzer target for the transparency log's Merkle
 * proofs (src/lib/amp-log.c, RFC 9162 §2.1): the verifiers on hostile
 * proofs, and the frontier and proof generators on trees made from the
 * input.
 *
 * Input (short inputs are zero-padded):
 *   u8 flags ‖ u64 a ‖ u64 b ‖ h0[32] ‖ h1[32] ‖ path: the rest, 32 bytes
 *   a hash (a partial last hash is dropped); at most 80 hashes are used.
 *
 * Properties (abort() on violation):
 *  - amp_log_verify_inclusion(a, b, h0, path, h1) and
 *    amp_log_verify_consistency(a, b, h0, h1, path), also with a and b
 *    reduced below 256: never crash, give the same answer twice, refuse
 *    more than AMP_LOG_PROOF_MAX hashes, and accept only a proof exactly
 *    as long as RFC 9162's PATH / PROOF for those sizes (a reference
 *    count written here);
 *  - a tree of 1 + b % 300 leaves made from the input: an emit failure
 *    injected at a push leaves the frontier unchanged; the frontier root
 *    equals amp_log_root over the emitted subtrees; the inclusion proof of
 *    a leaf and the consistency proof from a smaller size, both from a,
 *    verify and have the reference length, and the same proof with one
 *    bit flipped (chosen by h0) does not; a node read failing makes the
 *    generator fail with AMP_E_IO;
 *  - proofs over a synthetic store for the raw sizes a, b (up to 2^64 - 1)
 *    have the reference length and read at most 65 * 65 subtrees.
 */
#include "fuzz-common.h"

#include "amp/amp-log.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-logproof"
#define HDR (1u + 8u + 8u + 32u + 32u)
#define PATH_IN_MAX 80u
#define TREE_MAX 300u
#define TREE_LEVELS 10u /* 2^9 = 512 > 300 */

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Largest power of two below n (n >= 2). */
static uint64_t split(uint64_t n)
{
	uint64_t k = 1;
	while (k < n - k)
		k <<= 1;
	return k;
}

/* |PATH(m, D[n])| and |PROOF(m, D[n])| by RFC 9162's recursion. */
static size_t path_len(uint64_t m, uint64_t n)
{
	size_t c = 0;
	while (n > 1) {
		uint64_t k = split(n);
		if (m < k) {
			n = k;
		} else {
			m -= k;
			n -= k;
		}
		c++;
	}
	return c;
}

static size_t proof_len(uint64_t m, uint64_t n)
{
	size_t c = 0;
	bool whole = true;
	while (m != n) {
		uint64_t k = split(n);
		if (m <= k) {
			n = k;
		} else {
			m -= k;
			n -= k;
			whole = false;
		}
		c++;
	}
	return c + (whole ? 0 : 1);
}

static void check_verifiers(uint64_t a, uint64_t b, const uint8_t h0[32],
			    const uint8_t h1[32], const uint8_t (*path)[32],
			    size_t n)
{
	amp_err i1 = amp_log_verify_inclusion(a, b, h0, path, n, h1);
	amp_err i2 = amp_log_verify_inclusion(a, b, h0, path, n, h1);
	amp_err c1 = amp_log_verify_consistency(a, b, h0, h1, path, n);
	amp_err c2 = amp_log_verify_consistency(a, b, h0, h1, path, n);
	if (i1 != i2 || c1 != c2)
		fuzz_fail(T, "a verifier is not deterministic");
	if ((i1 != AMP_OK && i1 != AMP_E_BAD_PROOF) ||
	    (c1 != AMP_OK && c1 != AMP_E_BAD_PROOF))
		fuzz_fail(T, "a verifier gave an unexpected code");
	if (i1 == AMP_OK && (a >= b || n > AMP_LOG_PROOF_MAX ||
			     n != path_len(a, b)))
		fuzz_fail(T, "an inclusion proof of the wrong shape verified");
	if (c1 == AMP_OK && (a == 0 || a > b || n > AMP_LOG_PROOF_MAX ||
			     n != proof_len(a, b)))
		fuzz_fail(T, "a consistency proof of the wrong shape verified");
}

/* ------------------------------------------------------ a tree in memory */
typedef struct lp_tree {
	uint8_t node[TREE_LEVELS][TREE_MAX][32];
	unsigned emits, fail_at; /* fail the emit numbered fail_at */
	unsigned reads, read_fail_at;
} lp_tree;

static lp_tree tree;

static int lp_emit(void *ctx, unsigned level, uint64_t index,
		   const uint8_t hash[32])
{
	lp_tree *t = ctx;
	if (t->emits++ == t->fail_at)
		return -1;
	if (level >= TREE_LEVELS || index >= TREE_MAX)
		fuzz_fail(T, "emit of a subtree outside the tree");
	memcpy(t->node[level][index], hash, 32);
	return 0;
}

static int lp_node(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
	lp_tree *t = ctx;
	if (t->reads++ == t->read_fail_at)
		return -1;
	if (level >= TREE_LEVELS || index >= TREE_MAX)
		fuzz_fail(T, "read of a subtree outside the tree");
	memcpy(out, t->node[level][index], 32);
	return 0;
}

/* A store of subtree hashes made up from (level, index) alone. */
static int synth_node(void *ctx, unsigned level, uint64_t index,
		      uint8_t out[32])
{
	unsigned *reads = ctx;
	uint8_t b[9];
	(*reads)++;
	b[0] = (uint8_t)level;
	for (int i = 0; i < 8; i++)
		b[1 + i] = (uint8_t)(index >> (56 - 8 * i));
	crypto_hash_sha256(out, b, sizeof(b));
	return 0;
}

static void check_tree(const uint8_t *data, size_t size, uint64_t a,
		       uint64_t b, const uint8_t h0[32])
{
	lp_tree *t = &tree;
	amp_log_frontier f, saved;
	uint8_t h[32], root[32], r2[32], path[AMP_LOG_PROOF_MAX][32];
	const uint8_t(*cp)[32] = (const uint8_t(*)[32])path;
	uint64_t n = 1 + b % TREE_MAX;
	uint64_t fail_push = a % (n + 1);
	size_t len;

	amp_log_frontier_init(&f);
	t->fail_at = UINT32_MAX;
	t->read_fail_at = UINT32_MAX;
	for (uint64_t i = 0; i < n; i++) {
		/* leaf i: a slice of the input */
		size_t off = size ? (size_t)((i * 7) % size) : 0;
		size_t ll = (size_t)(i % 16);
		if (off + ll > size)
			ll = size - off;
		amp_log_leaf_hash(data + off, ll, h);
		if (i == fail_push) {
			saved = f;
			t->emits = 0;
			t->fail_at = (unsigned)((a >> 16) % 10);
			amp_err e = amp_log_frontier_push(&f, h, lp_emit, t);
			if (e == AMP_OK) {
				/* fewer subtrees completed than fail_at */
				if (t->emits > t->fail_at)
					fuzz_fail(T, "push ignored a failed emit");
				f = saved;
			} else if (e != AMP_E_IO ||
				   memcmp(&f, &saved, sizeof(f)) != 0) {
				fuzz_fail(T, "a failed push changed the frontier");
			}
			t->fail_at = UINT32_MAX;
		}
		t->emits = 0;
		if (amp_log_frontier_push(&f, h, lp_emit, t) != AMP_OK)
			fuzz_fail(T, "push failed");
	}
	amp_log_frontier_root(&f, root);
	if (amp_log_root(n, lp_node, t, r2) != AMP_OK ||
	    memcmp(root, r2, 32) != 0)
		fuzz_fail(T, "frontier root != amp_log_root");

	/* inclusion of leaf m in a tree of s <= n leaves */
	uint64_t s = 1 + (a >> 24) % n, m = a % s;
	uint8_t rs[32], leaf[32];
	if (amp_log_root(s, lp_node, t, rs) != AMP_OK)
		fuzz_fail(T, "amp_log_root failed");
	if (amp_log_inclusion_proof(m, s, lp_node, t, path, &len) != AMP_OK)
		fuzz_fail(T, "inclusion proof failed");
	if (len != path_len(m, s))
		fuzz_fail(T, "inclusion proof of the wrong length");
	memcpy(leaf, t->node[0][m], 32);
	if (amp_log_verify_inclusion(m, s, leaf, cp, len, rs) != AMP_OK)
		fuzz_fail(T, "a generated inclusion proof does not verify");
	if (len > 0) {
		size_t i = h0[0] % len;
		path[i][h0[1] % 32] ^= (uint8_t)(1u << (h0[2] % 8));
		if (amp_log_verify_inclusion(m, s, leaf, cp, len, rs) == AMP_OK)
			fuzz_fail(T, "a flipped inclusion proof verified");
	}
	/* consistency from first to s */
	uint64_t first = 1 + (a >> 8) % s;
	if (amp_log_root(first, lp_node, t, r2) != AMP_OK)
		fuzz_fail(T, "amp_log_root failed");
	if (amp_log_consistency_proof(first, s, lp_node, t, path, &len) !=
	    AMP_OK)
		fuzz_fail(T, "consistency proof failed");
	if (len != proof_len(first, s))
		fuzz_fail(T, "consistency proof of the wrong length");
	if (amp_log_verify_consistency(first, s, r2, rs, cp, len) != AMP_OK)
		fuzz_fail(T, "a generated consistency proof does not verify");
	if (len > 0) {
		size_t i = h0[3] % len;
		path[i][h0[4] % 32] ^= (uint8_t)(1u << (h0[5] % 8));
		if (amp_log_verify_consistency(first, s, r2, rs, cp, len) ==
		    AMP_OK)
			fuzz_fail(T, "a flipped consistency proof verified");
	}
	/* a store that fails at some read */
	t->reads = 0;
	t->read_fail_at = h0[6] % 8;
	amp_err e = amp_log_consistency_proof(first, s, lp_node, t, path, &len);
	if (t->reads > t->read_fail_at && e != AMP_E_IO)
		fuzz_fail(T, "a failed node read did not fail the proof");
	t->reads = 0;
	e = amp_log_inclusion_proof(m, s, lp_node, t, path, &len);
	if (t->reads > t->read_fail_at && e != AMP_E_IO)
		fuzz_fail(T, "a failed node read did not fail the proof");
	t->read_fail_at = UINT32_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[HDR + PATH_IN_MAX * 32];
	uint8_t path[PATH_IN_MAX][32];
	size_t n;

	fuzz_init();
	memset(in, 0, sizeof(in));
	memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
	uint8_t flags = in[0];
	uint64_t a = rd64(in + 1), b = rd64(in + 9);
	const uint8_t *h0 = in + 17, *h1 = in + 49;
	n = size > HDR ? (size - HDR) / 32 : 0;
	if (n > PATH_IN_MAX)
		n = PATH_IN_MAX;
	memcpy(path, in + HDR, n * 32);
	const uint8_t(*cp)[32] = (const uint8_t(*)[32])path;

	check_verifiers(a, b, h0, h1, cp, n);
	check_verifiers(a & 0xff, b & 0xff, h0, h1, cp, n);
	if (flags & 1) /* h1 taken as the leaf, h0 as the root */
		check_verifiers(a & 0xff, b & 0xff, h1, h0, cp, n);

	check_tree(data, size, a, b, h0);

	/* the generators for the raw sizes, over a synthetic store */
	uint8_t out[AMP_LOG_PROOF_MAX][32];
	size_t len;
	unsigned reads = 0;
	if (b > 0) {
		uint64_t idx = a % b;
		if (amp_log_inclusion_proof(idx, b, synth_node, &reads, out,
					    &len) != AMP_OK ||
		    len != path_len(idx, b) || len > 64)
			fuzz_fail(T, "a synthetic inclusion proof is wrong");
		if (reads > 65 * 65)
			fuzz_fail(T, "too many node reads");
		reads = 0;
		uint64_t first = 1 + a % b;
		if (amp_log_consistency_proof(first, b, synth_node, &reads, out,
					      &len) != AMP_OK ||
		    len != proof_len(first, b) || len > AMP_LOG_PROOF_MAX)
			fuzz_fail(T, "a synthetic consistency proof is wrong");
		if (reads > 65 * 65)
			fuzz_fail(T, "too many node reads");
		uint8_t root[32];
		if (amp_log_root(b, synth_node, &reads, root) != AMP_OK)
			fuzz_fail(T, "amp_log_root failed");
	} else if (amp_log_inclusion_proof(a, 0, synth_node, &reads, out,
					   &len) != AMP_E_INVALID_ARG ||
		   amp_log_consistency_proof(a, 0, synth_node, &reads, out,
					     &len) != AMP_E_INVALID_ARG) {
		fuzz_fail(T, "a proof in an empty tree");
	}
	return 0;
}
