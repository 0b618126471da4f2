/*
 * test-merkle.c — the transparency log's pure library (src/lib/amp-log.c,
 * PROTOCOL.md §11): RFC 9162 hashing, the frontier and the subtrees it
 * emits, proof generation over a table of complete subtrees and the
 * bounded verifiers, leaf encoding, key histories, heads and cosignatures.
 * tests/vectors/log.json (written by the independent Python generator
 * make-log-vectors.py) must be reproduced exactly.
 */
#include "test-common.h"

#include "amp/amp-log.h"

/* ------------------------------------------------------------ a tree store
 * Every complete subtree the frontier emits, by (level, index), as a store
 * keeps them; plus a reference MTH computed by the RFC's recursion. */
#define T_MAX_LEAVES 1024u

typedef struct t_tree {
	uint64_t size;
	uint8_t leaf[T_MAX_LEAVES][32];              /* leaf hashes */
	uint8_t node[11][T_MAX_LEAVES][32];          /* level 0..10 */
	bool have[11][T_MAX_LEAVES];
	amp_log_frontier f;
	uint8_t memo[11][T_MAX_LEAVES][32];          /* t_mth's, complete */
	bool have_memo[11][T_MAX_LEAVES];
	unsigned emits;                               /* calls this push */
	unsigned reads;                               /* node() calls */
	int fail_emit_at;                             /* -1: never */
} t_tree;

static int t_emit(void *ctx, unsigned level, uint64_t index,
		  const uint8_t hash[32])
{
	t_tree *t = ctx;
	if (t->fail_emit_at >= 0 && (int)t->emits == t->fail_emit_at)
		return -1;
	t->emits++;
	assert_true(level < 11);
	assert_true(index < T_MAX_LEAVES);
	assert_false(t->have[level][index]);
	memcpy(t->node[level][index], hash, 32);
	t->have[level][index] = true;
	return 0;
}

static int t_node(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
	t_tree *t = ctx;
	t->reads++;
	/* only subtrees of the tree asked about, only complete ones */
	if (level >= 11 || index >= T_MAX_LEAVES || !t->have[level][index])
		return -1;
	memcpy(out, t->node[level][index], 32);
	return 0;
}

/* The reference MTH: RFC 9162 §2.1.1's recursion over the leaf hashes. */
/* (Memoised for complete aligned ranges, so that checking every proof of
 * every size stays fast; the memo is the test's own, not the emitted
 * subtrees.) */
static void t_mth(t_tree *t, uint64_t start, uint64_t n, uint8_t out[32])
{
	if (n == 0) {
		amp_log_empty_root(out);
		return;
	}
	if (n == 1) {
		memcpy(out, t->leaf[start], 32);
		return;
	}
	unsigned lv = 0;
	while ((UINT64_C(1) << lv) < n)
		lv++;
	bool complete = (UINT64_C(1) << lv) == n && lv < 11 &&
			start % n == 0 && start / n < T_MAX_LEAVES;
	if (complete && t->have_memo[lv][start / n]) {
		memcpy(out, t->memo[lv][start / n], 32);
		return;
	}
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	uint8_t l[32], r[32];
	t_mth(t, start, k, l);
	t_mth(t, start + k, n - k, r);
	amp_log_node_hash(l, r, out);
	if (complete) {
		memcpy(t->memo[lv][start / n], out, 32);
		t->have_memo[lv][start / n] = true;
	}
}

static void t_leaf_of(uint64_t i, uint8_t out[32])
{
	char s[32];
	int n = snprintf(s, sizeof(s), "leaf-%llu", (unsigned long long)i);
	assert_true(n > 0 && (size_t)n < sizeof(s));
	amp_log_leaf_hash((const uint8_t *)s, (size_t)n, out);
}

static t_tree *t_tree_build(uint64_t n)
{
	t_tree *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	assert_true(n <= T_MAX_LEAVES);
	amp_log_frontier_init(&t->f);
	t->fail_emit_at = -1;
	for (uint64_t i = 0; i < n; i++) {
		t_leaf_of(i, t->leaf[i]);
		t->emits = 0;
		assert_int_equal(amp_log_frontier_push(&t->f, t->leaf[i], t_emit,
						       t),
				 AMP_OK);
		t->size++;
	}
	return t;
}

/* ---------------------------------------------------------------- hashing */

static void test_hashing(void **state)
{
	(void)state;
	uint8_t h[32], want[32];
	/* SHA256("") */
	t_unhex_fixed("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		      want, 32);
	amp_log_empty_root(h);
	assert_memory_equal(h, want, 32);
	/* SHA256(0x00) */
	t_unhex_fixed("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		      want, 32);
	amp_log_leaf_hash(NULL, 0, h);
	assert_memory_equal(h, want, 32);
	/* node_hash = SHA256(0x01 || l || r) */
	uint8_t l[32], r[32], b[65];
	memset(l, 0xaa, 32);
	memset(r, 0x55, 32);
	b[0] = 1;
	memcpy(b + 1, l, 32);
	memcpy(b + 33, r, 32);
	crypto_hash_sha256(want, b, 65);
	amp_log_node_hash(l, r, h);
	assert_memory_equal(h, want, 32);
	/* envelope digest = SHA256(env) */
	crypto_hash_sha256(want, (const uint8_t *)"abc", 3);
	amp_log_envelope_digest((const uint8_t *)"abc", 3, h);
	assert_memory_equal(h, want, 32);
	/* did_hash = SHA256("AMPv1-log-did" || did) */
	const char *did = "did:aftersmtp:example.org:alice";
	uint8_t db[128];
	memcpy(db, "AMPv1-log-did", 13);
	memcpy(db + 13, did, strlen(did));
	crypto_hash_sha256(want, db, 13 + strlen(did));
	amp_log_did_hash(did, h);
	assert_memory_equal(h, want, 32);
}

/* --------------------------------------------------------------- frontier */

typedef struct emit_rec {
	unsigned n;
	unsigned level[70];
	uint64_t index[70];
} emit_rec;

static int rec_emit(void *ctx, unsigned level, uint64_t index,
		    const uint8_t hash[32])
{
	(void)hash;
	emit_rec *r = ctx;
	assert_true(r->n < 70);
	r->level[r->n] = level;
	r->index[r->n] = index;
	r->n++;
	return 0;
}

/* Frontier root == reference MTH == amp_log_root over the emitted nodes,
 * for every size up to 1000; emit is told exactly the subtrees completed. */
static void test_frontier(void **state)
{
	(void)state;
	t_tree *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	amp_log_frontier_init(&t->f);
	t->fail_emit_at = -1;
	uint8_t r1[32], r2[32], r3[32];
	amp_log_frontier_root(&t->f, r1);
	amp_log_empty_root(r2);
	assert_memory_equal(r1, r2, 32);
	assert_int_equal(amp_log_root(0, t_node, t, r3), AMP_OK);
	assert_memory_equal(r3, r2, 32);
	for (uint64_t i = 0; i < 1000; i++) {
		t_leaf_of(i, t->leaf[i]);
		/* which subtrees end at leaf i: levels 0..tz(i + 1) */
		emit_rec rec = { 0 };
		amp_log_frontier f2 = t->f;
		assert_int_equal(amp_log_frontier_push(&f2, t->leaf[i],
						       rec_emit, &rec),
				 AMP_OK);
		unsigned want = 1;
		while (((i + 1) & ((UINT64_C(1) << want) - 1)) == 0)
			want++;
		assert_int_equal(rec.n, want);
		for (unsigned k = 0; k < rec.n; k++) {
			assert_int_equal(rec.level[k], k);
			assert_int_equal(rec.index[k], i >> k);
		}
		t->emits = 0;
		assert_int_equal(amp_log_frontier_push(&t->f, t->leaf[i],
						       t_emit, t),
				 AMP_OK);
		assert_memory_equal(&f2, &t->f, sizeof(f2));
		t->size = i + 1;
		/* each emitted hash is the MTH of its range */
		for (unsigned k = 0; k < rec.n; k++) {
			uint64_t w = UINT64_C(1) << k, idx = i >> k;
			t_mth(t, idx * w, w, r1);
			assert_memory_equal(t->node[k][idx], r1, 32);
		}
		amp_log_frontier_root(&t->f, r1);
		t_mth(t, 0, i + 1, r2);
		assert_memory_equal(r1, r2, 32);
		assert_int_equal(amp_log_root(i + 1, t_node, t, r3), AMP_OK);
		assert_memory_equal(r3, r2, 32);
	}
	free(t);
}

/* An emit failing at any point of a push leaves the frontier unchanged. */
static void test_frontier_emit_fails(void **state)
{
	(void)state;
	t_tree *t = t_tree_build(255);
	for (int at = 0; at < 9; at++) {
		amp_log_frontier before = t->f;
		/* a scratch store: the failed push must not have to be undone */
		t_tree *s = calloc(1, sizeof(*s));
		assert_non_null(s);
		s->fail_emit_at = at;
		uint8_t h[32];
		t_leaf_of(255, h);
		assert_int_equal(amp_log_frontier_push(&t->f, h, t_emit, s),
				 AMP_E_IO);
		assert_int_equal(s->emits, at);
		assert_memory_equal(&before, &t->f, sizeof(before));
		free(s);
	}
	/* and then it works, emitting 9 subtrees (256 = 2^8) */
	uint8_t h[32];
	t_leaf_of(255, h);
	t->emits = 0;
	assert_int_equal(amp_log_frontier_push(&t->f, h, t_emit, t), AMP_OK);
	assert_int_equal(t->emits, 9);
	assert_int_equal(t->f.size, 256);
	/* NULL emit is allowed */
	t_leaf_of(256, h);
	assert_int_equal(amp_log_frontier_push(&t->f, h, NULL, NULL), AMP_OK);
	/* the size limit */
	amp_log_frontier big;
	amp_log_frontier_init(&big);
	big.size = UINT64_C(1) << 63;
	assert_int_equal(amp_log_frontier_push(&big, h, NULL, NULL),
			 AMP_E_TOO_LARGE);
	assert_int_equal(big.size, UINT64_C(1) << 63);
	free(t);
}

/* ------------------------------------------------------------------ proofs */

/* The reference PATH and PROOF, by the RFC's recursion. */
static size_t t_path(t_tree *t, uint64_t m, uint64_t start, uint64_t n,
		     uint8_t out[][32])
{
	if (n <= 1)
		return 0;
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	size_t c;
	if (m < k) {
		c = t_path(t, m, start, k, out);
		t_mth(t, start + k, n - k, out[c]);
	} else {
		c = t_path(t, m - k, start + k, n - k, out);
		t_mth(t, start, k, out[c]);
	}
	return c + 1;
}

static size_t t_subproof(t_tree *t, uint64_t m, uint64_t start,
			 uint64_t n, bool b, uint8_t out[][32])
{
	if (m == n) {
		if (b)
			return 0;
		t_mth(t, start, n, out[0]);
		return 1;
	}
	uint64_t k = 1;
	while (k * 2 < n)
		k *= 2;
	size_t c;
	if (m <= k) {
		c = t_subproof(t, m, start, k, b, out);
		t_mth(t, start + k, n - k, out[c]);
	} else {
		c = t_subproof(t, m - k, start + k, n - k, false, out);
		t_mth(t, start, k, out[c]);
	}
	return c + 1;
}

static unsigned t_log2ceil(uint64_t n)
{
	unsigned l = 0;
	while ((UINT64_C(1) << l) < n)
		l++;
	return l;
}

/* Inclusion: every index of every size 1..300, generated == reference,
 * verifies, and a flipped bit / wrong index / wrong size / short or long
 * path does not. */
static void test_inclusion_all(void **state)
{
	(void)state;
	t_tree *t = t_tree_build(301);
	uint8_t path[AMP_LOG_PROOF_MAX + 1][32], ref[AMP_LOG_PROOF_MAX][32];
	uint8_t root[32];
	for (uint64_t n = 1; n <= 300; n++) {
		assert_int_equal(amp_log_root(n, t_node, t, root), AMP_OK);
		for (uint64_t m = 0; m < n; m++) {
			size_t len = 99;
			t->reads = 0;
			assert_int_equal(amp_log_inclusion_proof(m, n, t_node, t,
								 path, &len),
					 AMP_OK);
			unsigned lg = t_log2ceil(n);
			assert_true(t->reads <= lg * (lg + 1));
			size_t rl = t_path(t, m, 0, n, ref);
			assert_int_equal(len, rl);
			assert_memory_equal(path, ref, len * 32);
			assert_int_equal(amp_log_verify_inclusion(m, n, t->leaf[m],
								  (const uint8_t(*)[32])path,
								  len, root),
					 AMP_OK);
			if (n > 40 && m % 7 != 0)
				continue; /* the mutations below: a sample */
			const uint8_t(*cp)[32] = (const uint8_t(*)[32])path;
			uint8_t bad[32];
			memcpy(bad, root, 32);
			bad[m % 32] ^= 4;
			assert_int_equal(amp_log_verify_inclusion(m, n, t->leaf[m],
								  cp, len, bad),
					 AMP_E_BAD_PROOF);
			if (m + 1 < n)
				assert_int_equal(amp_log_verify_inclusion(m + 1, n,
						t->leaf[m], cp, len, root),
						 AMP_E_BAD_PROOF);
			/* (a proof for size n may verify as one for n + 1
			 * against the same root: RFC 9162's verifier binds no
			 * size; the signed head does) */
			uint8_t next[32];
			t_mth(t, 0, n + 1, next);
			assert_int_equal(amp_log_verify_inclusion(m, n + 1,
					t->leaf[m], cp, len, next),
					 AMP_E_BAD_PROOF);
			if (len > 0)
				assert_int_equal(amp_log_verify_inclusion(m, n,
						t->leaf[m], cp, len - 1, root),
						 AMP_E_BAD_PROOF);
			memcpy(path[len], root, 32);
			assert_int_equal(amp_log_verify_inclusion(m, n, t->leaf[m],
								  cp, len + 1, root),
					 AMP_E_BAD_PROOF);
			for (size_t i = 0; i < len; i++) {
				path[i][i % 32] ^= 0x80;
				assert_int_equal(amp_log_verify_inclusion(m, n,
						t->leaf[m], cp, len, root),
						 AMP_E_BAD_PROOF);
				path[i][i % 32] ^= 0x80;
			}
		}
	}
	/* not a request: index >= size, size 0 */
	size_t len;
	assert_int_equal(amp_log_inclusion_proof(5, 5, t_node, t, path, &len),
			 AMP_E_INVALID_ARG);
	assert_int_equal(amp_log_inclusion_proof(0, 0, t_node, t, path, &len),
			 AMP_E_INVALID_ARG);
	/* a store that cannot read: AMP_E_IO */
	assert_int_equal(amp_log_inclusion_proof(0, 400, t_node, t, path, &len),
			 AMP_E_IO);
	free(t);
}

/* Consistency: every 1 <= first <= size <= 300. */
static void test_consistency_all(void **state)
{
	(void)state;
	t_tree *t = t_tree_build(301);
	uint8_t path[AMP_LOG_PROOF_MAX + 1][32], ref[AMP_LOG_PROOF_MAX][32];
	static uint8_t roots[302][32];
	for (uint64_t n = 0; n <= 301; n++)
		assert_int_equal(amp_log_root(n, t_node, t, roots[n]), AMP_OK);
	for (uint64_t n = 1; n <= 300; n++) {
		for (uint64_t m = 1; m <= n; m++) {
			size_t len = 99;
			t->reads = 0;
			assert_int_equal(amp_log_consistency_proof(m, n, t_node, t,
								   path, &len),
					 AMP_OK);
			unsigned lg = t_log2ceil(n);
			assert_true(t->reads <= (lg + 1) * (lg + 1));
			size_t rl = t_subproof(t, m, 0, n, true, ref);
			assert_int_equal(len, rl);
			assert_memory_equal(path, ref, len * 32);
			const uint8_t(*cp)[32] = (const uint8_t(*)[32])path;
			assert_int_equal(amp_log_verify_consistency(m, n, roots[m],
								    roots[n], cp, len),
					 AMP_OK);
			if (n > 60 && (m % 5 != 0 || n % 3 != 0))
				continue;
			assert_int_equal(amp_log_verify_consistency(m, n, roots[n],
								    roots[m], cp, len),
					 m == n ? AMP_OK : AMP_E_BAD_PROOF);
			if (m > 1)
				assert_int_equal(amp_log_verify_consistency(m - 1, n,
						roots[m - 1], roots[n], cp, len),
						 AMP_E_BAD_PROOF);
			if (m < n) {
				assert_int_equal(amp_log_verify_consistency(m, n - 1,
						roots[m], roots[n - 1], cp, len),
						 AMP_E_BAD_PROOF);
				assert_int_equal(amp_log_verify_consistency(m, n + 1,
						roots[m], roots[n + 1], cp, len),
						 AMP_E_BAD_PROOF);
			}
			if (len > 0)
				assert_int_equal(amp_log_verify_consistency(m, n,
						roots[m], roots[n], cp, len - 1),
						 AMP_E_BAD_PROOF);
			memcpy(path[len], roots[n], 32);
			assert_int_equal(amp_log_verify_consistency(m, n, roots[m],
								    roots[n], cp, len + 1),
					 AMP_E_BAD_PROOF);
			for (size_t i = 0; i < len; i++) {
				path[i][31 - i % 32] ^= 1;
				assert_int_equal(amp_log_verify_consistency(m, n,
						roots[m], roots[n], cp, len),
						 AMP_E_BAD_PROOF);
				path[i][31 - i % 32] ^= 1;
			}
		}
	}
	size_t len;
	assert_int_equal(amp_log_consistency_proof(0, 5, t_node, t, path, &len),
			 AMP_E_INVALID_ARG);
	assert_int_equal(amp_log_consistency_proof(6, 5, t_node, t, path, &len),
			 AMP_E_INVALID_ARG);
	assert_int_equal(amp_log_consistency_proof(3, 400, t_node, t, path, &len),
			 AMP_E_IO);
	free(t);
}

/* The verifiers' bounds: nothing is read past n, sizes 0 and inverted
 * sizes are refused, over-long proofs refused before any hashing. */
static void test_verify_bounds(void **state)
{
	(void)state;
	uint8_t h[32] = { 0 }, big[AMP_LOG_PROOF_MAX + 2][32];
	memset(big, 0, sizeof(big));
	const uint8_t(*cp)[32] = (const uint8_t(*)[32])big;
	assert_int_equal(amp_log_verify_inclusion(0, 0, h, cp, 0, h),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_inclusion(0, 1, h, NULL, 0, h), AMP_OK);
	assert_int_equal(amp_log_verify_inclusion(1, 1, h, NULL, 0, h),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_inclusion(UINT64_MAX, UINT64_MAX, h, cp,
						  64, h),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_inclusion(0, UINT64_MAX, h, cp,
						  AMP_LOG_PROOF_MAX + 1, h),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(0, 0, h, h, NULL, 0),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(0, 5, h, h, cp, 3),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(6, 5, h, h, cp, 3),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(5, 5, h, h, NULL, 0), AMP_OK);
	assert_int_equal(amp_log_verify_consistency(5, 5, h, h, cp, 1),
			 AMP_E_BAD_PROOF);
	uint8_t h2[32] = { 1 };
	assert_int_equal(amp_log_verify_consistency(5, 5, h, h2, NULL, 0),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(4, 8, h, h2, NULL, 0),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(1, UINT64_MAX, h, h2, cp,
						    AMP_LOG_PROOF_MAX + 1),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(UINT64_MAX - 1, UINT64_MAX,
						    h, h2, cp, AMP_LOG_PROOF_MAX),
			 AMP_E_BAD_PROOF);
	assert_int_equal(amp_log_verify_consistency(UINT64_C(1) << 63,
						    UINT64_MAX, h, h2, cp,
						    AMP_LOG_PROOF_MAX),
			 AMP_E_BAD_PROOF);
}

/* Proofs in a huge tree: a synthetic store whose subtree (l, i) hash is
 * derived from (l, i) alone stays consistent with itself, so generated
 * proofs of sizes near 2^64 must verify against amp_log_root. */
static int synth_node(void *ctx, unsigned level, uint64_t index,
		      uint8_t out[32])
{
	unsigned *reads = ctx;
	(*reads)++;
	uint8_t b[9];
	b[0] = (uint8_t)level;
	for (int i = 0; i < 8; i++)
		b[1 + i] = (uint8_t)(index >> (56 - 8 * i));
	crypto_hash_sha256(out, b, sizeof(b));
	return 0;
}

static void test_huge_sizes(void **state)
{
	(void)state;
	/* synth_node is not a real tree (parent != hash of children), so only
	 * the proofs of the same-size root verify: inclusion against
	 * amp_log_root(size) over the same store needs a consistent leaf
	 * position, which the store supplies as subtree (0, index). */
	static const uint64_t sizes[] = { UINT64_C(1) << 63,
		(UINT64_C(1) << 63) + 1, UINT64_MAX, UINT64_MAX - 1,
		UINT64_C(1000000), UINT64_C(1) << 40 };
	uint8_t path[AMP_LOG_PROOF_MAX][32], root[32], leaf[32];
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t n = sizes[s];
		unsigned reads = 0;
		assert_int_equal(amp_log_root(n, synth_node, &reads, root),
				 AMP_OK);
		uint64_t idx[] = { 0, n / 3, n - 1, n / 2 };
		for (size_t j = 0; j < 4; j++) {
			size_t len;
			reads = 0;
			assert_int_equal(amp_log_inclusion_proof(idx[j], n,
								 synth_node, &reads,
								 path, &len),
					 AMP_OK);
			assert_true(len <= 64);
			assert_true(reads <= 64 * 65);
			synth_node(&reads, 0, idx[j], leaf);
			/* only complete subtree hashes are used, so the
			 * fold over them reproduces root exactly when the
			 * proof's right parts equal amp_log_root's parts:
			 * true for the last leaf's path */
			if (idx[j] == n - 1 && (n & 1)) {
				/* the path of the last leaf in an odd tree is
				 * the left subtrees of the frontier */
				assert_int_equal(amp_log_verify_inclusion(idx[j],
						n, leaf, (const uint8_t(*)[32])path,
						len, root),
						 AMP_OK);
			}
		}
		for (uint64_t m = 1; m < 3 && m <= n; m++) {
			size_t len;
			assert_int_equal(amp_log_consistency_proof(m, n,
								   synth_node, &reads,
								   path, &len),
					 AMP_OK);
			assert_true(len <= AMP_LOG_PROOF_MAX);
		}
		size_t len;
		assert_int_equal(amp_log_consistency_proof(n - 1, n, synth_node,
							   &reads, path, &len),
				 n == 1 ? AMP_E_INVALID_ARG : AMP_OK);
	}
}

/* ---------------------------------------------------------- the vectors */

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	if (s == NULL)
		fail_msg("vector field %s missing", k);
	return s;
}

static uint64_t jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		fail_msg("vector field %s missing", k);
	return (uint64_t)json_integer_value(v);
}

static void jhex(json_t *o, const char *k, uint8_t *out, size_t n)
{
	t_unhex_fixed(jstr(o, k), out, n);
}

/* A JSON array of hex hashes into path; returns its length. */
static size_t jpath(json_t *a, uint8_t path[][32], size_t max)
{
	size_t n = json_array_size(a);
	assert_true(n <= max);
	for (size_t i = 0; i < n; i++)
		t_unhex_fixed(json_string_value(json_array_get(a, i)), path[i],
			      32);
	return n;
}

/* The tree of the vectors' leaves, built with the frontier. */
static t_tree *t_vector_tree(json_t *v)
{
	json_t *leaves = json_object_get(v, "leaves");
	json_t *lh = json_object_get(v, "leaf_hashes");
	size_t n = json_array_size(leaves);
	assert_int_equal(n, 40);
	t_tree *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	amp_log_frontier_init(&t->f);
	t->fail_emit_at = -1;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *d = t_unhex(json_string_value(json_array_get(leaves, i)),
				     &len);
		assert_int_equal(len, i);
		amp_log_leaf_hash(d, len, t->leaf[i]);
		free(d);
		uint8_t want[32];
		t_unhex_fixed(json_string_value(json_array_get(lh, i)), want, 32);
		assert_memory_equal(t->leaf[i], want, 32);
		assert_int_equal(amp_log_frontier_push(&t->f, t->leaf[i], t_emit,
						       t),
				 AMP_OK);
		t->size++;
	}
	return t;
}

/* Every single-bit flip of every hash of the path, of the leaf hash and
 * of the root, every shortening and lengthening, and every other index
 * and size, are refused. */
static void check_inclusion_mutations(const t_tree *t, uint64_t m, uint64_t n,
				      uint8_t path[][32], size_t len,
				      uint8_t roots[][32])
{
	const uint8_t(*cp)[32] = (const uint8_t(*)[32])path;
	uint8_t leaf[32], root[32];
	memcpy(leaf, t->leaf[m], 32);
	memcpy(root, roots[n], 32);
	assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp, len, root),
			 AMP_OK);
	for (size_t i = 0; i < len; i++)
		for (unsigned bit = 0; bit < 256; bit++) {
			path[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp,
								  len, root),
					 AMP_E_BAD_PROOF);
			path[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	for (unsigned bit = 0; bit < 256; bit++) {
		leaf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp, len,
							  root),
				 AMP_E_BAD_PROOF);
		leaf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		root[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp, len,
							  root),
				 AMP_E_BAD_PROOF);
		root[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t k = 0; k < len; k++) {
		assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp, k, root),
				 AMP_E_BAD_PROOF);
		assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp + len - k,
							  k, root),
				 AMP_E_BAD_PROOF);
	}
	for (size_t k = 0; k < 3; k++) {
		/* appended: zeros, a copy of the last, the root */
		if (k == 0)
			memset(path[len], 0, 32);
		else if (k == 1 && len > 0)
			memcpy(path[len], path[len - 1], 32);
		else
			memcpy(path[len], root, 32);
		assert_int_equal(amp_log_verify_inclusion(m, n, leaf, cp, len + 1,
							  root),
				 AMP_E_BAD_PROOF);
	}
	for (uint64_t j = 0; j <= n + 2; j++)
		if (j != m)
			assert_int_equal(amp_log_verify_inclusion(j, n, leaf, cp,
								  len, root),
					 AMP_E_BAD_PROOF);
	for (uint64_t sz = m + 1; sz <= 40; sz++)
		if (sz != n)
			assert_int_equal(amp_log_verify_inclusion(m, sz, leaf, cp,
								  len, roots[sz]),
					 AMP_E_BAD_PROOF);
}

static void check_consistency_mutations(uint64_t m, uint64_t n,
					uint8_t path[][32], size_t len,
					uint8_t roots[][32])
{
	const uint8_t(*cp)[32] = (const uint8_t(*)[32])path;
	uint8_t r1[32], r2[32];
	memcpy(r1, roots[m], 32);
	memcpy(r2, roots[n], 32);
	assert_int_equal(amp_log_verify_consistency(m, n, r1, r2, cp, len),
			 AMP_OK);
	for (size_t i = 0; i < len; i++)
		for (unsigned bit = 0; bit < 256; bit++) {
			path[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(amp_log_verify_consistency(m, n, r1, r2,
								    cp, len),
					 AMP_E_BAD_PROOF);
			path[i][bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	for (unsigned bit = 0; bit < 256; bit++) {
		r1[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(amp_log_verify_consistency(m, n, r1, r2, cp, len),
				 AMP_E_BAD_PROOF);
		r1[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		r2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(amp_log_verify_consistency(m, n, r1, r2, cp, len),
				 AMP_E_BAD_PROOF);
		r2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	for (size_t k = 0; k < len; k++) {
		assert_int_equal(amp_log_verify_consistency(m, n, r1, r2, cp, k),
				 AMP_E_BAD_PROOF);
		assert_int_equal(amp_log_verify_consistency(m, n, r1, r2,
							    cp + len - k, k),
				 AMP_E_BAD_PROOF);
	}
	memset(path[len], 0, 32);
	assert_int_equal(amp_log_verify_consistency(m, n, r1, r2, cp, len + 1),
			 AMP_E_BAD_PROOF);
	memcpy(path[len], r2, 32);
	assert_int_equal(amp_log_verify_consistency(m, n, r1, r2, cp, len + 1),
			 AMP_E_BAD_PROOF);
	/* any other pair of sizes, with the true roots of those sizes */
	for (uint64_t a = 0; a <= 40; a++)
		for (uint64_t b = a; b <= 40; b++) {
			if (a == m && b == n)
				continue;
			if (a == b && len == 0 &&
			    memcmp(roots[a], roots[b], 32) == 0)
				continue; /* (a, a) with the empty proof holds */
			assert_int_equal(amp_log_verify_consistency(a, b, roots[a],
								    roots[b], cp, len),
					 AMP_E_BAD_PROOF);
		}
}

static void test_vectors_merkle(void **state)
{
	(void)state;
	json_t *v = t_load_vectors("log.json");
	t_tree *t = t_vector_tree(v);
	static uint8_t roots[41][32];
	uint8_t path[AMP_LOG_PROOF_MAX + 1][32], want[AMP_LOG_PROOF_MAX][32];
	json_t *jr = json_object_get(v, "roots");
	assert_int_equal(json_array_size(jr), 41);
	/* roots of sizes 0..40: the vector, amp_log_root over the stored
	 * subtrees, and a frontier rebuilt to that size */
	amp_log_frontier f;
	amp_log_frontier_init(&f);
	for (uint64_t n = 0; n <= 40; n++) {
		uint8_t r[32];
		t_unhex_fixed(json_string_value(json_array_get(jr, n)), roots[n],
			      32);
		assert_int_equal(amp_log_root(n, t_node, t, r), AMP_OK);
		assert_memory_equal(r, roots[n], 32);
		amp_log_frontier_root(&f, r);
		assert_memory_equal(r, roots[n], 32);
		if (n < 40)
			assert_int_equal(amp_log_frontier_push(&f, t->leaf[n],
							       NULL, NULL),
					 AMP_OK);
	}
	json_t *inc = json_object_get(v, "inclusion");
	size_t i;
	json_t *p;
	assert_true(json_array_size(inc) > 100);
	json_array_foreach(inc, i, p) {
		uint64_t m = jint(p, "index"), n = jint(p, "size");
		size_t wl = jpath(json_object_get(p, "path"), want,
				  AMP_LOG_PROOF_MAX);
		size_t len;
		assert_int_equal(amp_log_inclusion_proof(m, n, t_node, t, path,
							 &len),
				 AMP_OK);
		assert_int_equal(len, wl);
		assert_memory_equal(path, want, len * 32);
		check_inclusion_mutations(t, m, n, path, len, roots);
	}
	json_t *con = json_object_get(v, "consistency");
	assert_true(json_array_size(con) > 100);
	json_array_foreach(con, i, p) {
		uint64_t m = jint(p, "first"), n = jint(p, "second");
		size_t wl = jpath(json_object_get(p, "proof"), want,
				  AMP_LOG_PROOF_MAX);
		size_t len;
		assert_int_equal(amp_log_consistency_proof(m, n, t_node, t, path,
							   &len),
				 AMP_OK);
		assert_int_equal(len, wl);
		assert_memory_equal(path, want, len * 32);
		check_consistency_mutations(m, n, path, len, roots);
	}

	/* RFC 9162 §2.1.5's tree of seven leaves, node by node */
	json_t *ex = json_object_get(v, "rfc9162_example");
	json_t *nodes = json_object_get(ex, "nodes");
	static const struct {
		const char *name;
		unsigned level;
		uint64_t index;
	} named[] = { { "a", 0, 0 }, { "b", 0, 1 }, { "c", 0, 2 },
		      { "d", 0, 3 }, { "e", 0, 4 }, { "f", 0, 5 },
		      { "j", 0, 6 }, { "g", 1, 0 }, { "h", 1, 1 },
		      { "i", 1, 2 }, { "k", 2, 0 } };
	for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
		uint8_t h[32];
		jhex(nodes, named[k].name, h, 32);
		assert_memory_equal(t->node[named[k].level][named[k].index], h,
				    32);
	}
	uint8_t h[32], r7[32];
	jhex(nodes, "root", h, 32);
	assert_memory_equal(roots[7], h, 32);
	/* l = MTH(d4..d6) is not a complete subtree: the fold of i and j */
	jhex(nodes, "l", h, 32);
	amp_log_node_hash(t->node[1][2], t->node[0][6], r7);
	assert_memory_equal(r7, h, 32);
	json_array_foreach(json_object_get(ex, "inclusion"), i, p) {
		size_t len, wl = jpath(json_object_get(p, "path"), want, 4);
		assert_int_equal(amp_log_inclusion_proof(jint(p, "index"), 7,
							 t_node, t, path, &len),
				 AMP_OK);
		assert_int_equal(len, wl);
		assert_memory_equal(path, want, len * 32);
	}
	json_array_foreach(json_object_get(ex, "consistency"), i, p) {
		size_t len, wl = jpath(json_object_get(p, "proof"), want, 4);
		uint64_t m = jint(p, "first");
		jhex(p, "first_root", h, 32);
		assert_memory_equal(roots[m], h, 32);
		assert_int_equal(amp_log_consistency_proof(m, 7, t_node, t, path,
							   &len),
				 AMP_OK);
		assert_int_equal(len, wl);
		assert_memory_equal(path, want, len * 32);
	}
	free(t);
	json_decref(v);
}

/* The keys of the vectors, from their seeds. */
typedef struct t_key {
	uint8_t pk[32], sk[64], epk[32];
} t_key;

static void t_vector_key(json_t *v, const char *name, t_key *k)
{
	json_t *o = json_object_get(json_object_get(v, "keys"), name);
	uint8_t seed[32], want[32];
	assert_non_null(o);
	jhex(o, "sign_seed", seed, 32);
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	jhex(o, "sign_pk", want, 32);
	assert_memory_equal(k->pk, want, 32);
	memset(k->epk, 0, 32);
	if (json_object_get(o, "enc_seed") != NULL) {
		jhex(o, "enc_seed", seed, 32);
		assert_int_equal(crypto_scalarmult_base(k->epk, seed), 0);
		jhex(o, "enc_pk", want, 32);
		assert_memory_equal(k->epk, want, 32);
	}
}

static void test_vectors_leaves(void **state)
{
	(void)state;
	json_t *v = t_load_vectors("log.json");
	uint8_t dh[32], want[64], buf[AMP_LOG_LEAF_MAX], sig[64];
	const char *did = jstr(v, "did");
	amp_log_did_hash(did, dh);
	jhex(v, "did_hash", want, 32);
	assert_memory_equal(dh, want, 32);

	amp_log_identity st;
	memset(&st, 0, sizeof(st));
	size_t i;
	json_t *p;
	t_key prev = { 0 };
	json_array_foreach(json_object_get(v, "log_leaves"), i, p) {
		size_t len, elen;
		uint8_t *raw = t_unhex(jstr(p, "leaf"), &len);
		amp_log_leaf l;
		const char *err = NULL;
		amp_err e = amp_log_leaf_decode(raw, len, &l, &err);
		if (e != AMP_OK)
			fail_msg("leaf %zu: %s: %s", i, amp_err_name(e), err);
		assert_int_equal(amp_log_leaf_encode(&l, buf, sizeof(buf), &elen),
				 AMP_OK);
		assert_int_equal(elen, len);
		assert_memory_equal(buf, raw, len);
		/* and too small a buffer */
		assert_int_equal(amp_log_leaf_encode(&l, buf, len - 1, &elen),
				 AMP_E_TOO_LARGE);
		uint8_t lh[32];
		amp_log_leaf_hash(raw, len, lh);
		jhex(p, "leaf_hash", want, 32);
		assert_memory_equal(lh, want, 32);
		assert_int_equal(l.time, jint(p, "time"));
		const char *type = jstr(p, "type");
		if (strcmp(type, "receipt") == 0) {
			size_t envlen;
			uint8_t *env = t_unhex(jstr(p, "envelope"), &envlen);
			amp_log_envelope_digest(env, envlen, lh);
			free(env);
			jhex(p, "digest", want, 32);
			assert_memory_equal(lh, want, 32);
			assert_memory_equal(l.subject, want, 32);
			assert_int_equal(l.type, AMP_LOG_RECEIPT);
			assert_string_equal(l.node, jstr(p, "node"));
			/* not an identity leaf */
			amp_log_identity before = st;
			assert_int_equal(amp_log_identity_apply(&st, &l, &err),
					 AMP_E_MALFORMED);
			assert_memory_equal(&before, &st, sizeof(st));
			free(raw);
			continue;
		}
		assert_memory_equal(l.subject, dh, 32);
		assert_int_equal(l.version, jint(p, "version"));
		t_key k;
		t_vector_key(v, jstr(p, "key"), &k);
		if (strcmp(type, "revoke") == 0) {
			assert_int_equal(l.type, AMP_LOG_REVOKE);
			amp_log_sign_revoke(k.sk, dh, l.version, sig);
			jhex(p, "sig", want, 64);
			assert_memory_equal(sig, want, 64);
			assert_memory_equal(l.sig, want, 64);
			assert_true(amp_log_verify_revoke(k.pk, dh, l.version,
							  sig));
			t_key o;
			t_vector_key(v, "alice/0", &o);
			assert_false(amp_log_verify_revoke(o.pk, dh, l.version,
							   sig));
			assert_false(amp_log_verify_revoke(k.pk, dh,
							   l.version + 1, sig));
		} else {
			assert_int_equal(l.type, strcmp(type, "register") == 0 ?
					 AMP_LOG_REGISTER : AMP_LOG_ROTATE);
			assert_memory_equal(l.sign_pk, k.pk, 32);
			assert_memory_equal(l.enc_pk, k.epk, 32);
			amp_log_sign_key(k.sk, dh, l.version, k.pk, k.epk, sig);
			jhex(p, "self_sig", want, 64);
			assert_memory_equal(sig, want, 64);
			assert_memory_equal(l.sig, want, 64);
			assert_true(amp_log_verify_key(k.pk, dh, l.version, k.pk,
						       k.epk, sig));
			assert_false(amp_log_verify_key(k.pk, dh, l.version, k.epk,
							k.epk, sig));
			if (l.type == AMP_LOG_ROTATE) {
				amp_log_sign_key(prev.sk, dh, l.version, k.pk,
						 k.epk, sig);
				jhex(p, "prev_sig", want, 64);
				assert_memory_equal(sig, want, 64);
				assert_memory_equal(l.prev_sig, want, 64);
			}
		}
		e = amp_log_identity_apply(&st, &l, &err);
		if (e != AMP_OK)
			fail_msg("leaf %zu: %s: %s", i, amp_err_name(e), err);
		assert_int_equal(st.version, l.version);
		prev = k;
		free(raw);
	}
	assert_true(st.exists && st.revoked);
	assert_int_equal(st.version, 2);

	/* the signed head and its cosignature */
	json_t *jh = json_object_get(v, "head");
	amp_log_head h;
	memset(&h, 0, sizeof(h));
	snprintf(h.log, sizeof(h.log), "%s", jstr(jh, "log"));
	h.size = jint(jh, "size");
	h.time = jint(jh, "time");
	jhex(jh, "root", h.root, 32);
	uint8_t r40[32];
	t_unhex_fixed(json_string_value(json_array_get(json_object_get(v,
								       "roots"), 40)),
		      r40, 32);
	assert_memory_equal(h.root, r40, 32);
	t_key nk, wk;
	t_vector_key(v, jstr(jh, "key"), &nk);
	assert_int_equal(amp_log_head_sign(&h, nk.sk), AMP_OK);
	jhex(jh, "sig", want, 64);
	assert_memory_equal(h.sig, want, 64);
	assert_true(amp_log_head_verify(&h, nk.pk));
	json_t *jc = json_object_get(v, "cosignature");
	const char *witness = jstr(jc, "witness");
	uint64_t cotime = jint(jc, "cotime");
	t_vector_key(v, jstr(jc, "key"), &wk);
	assert_int_equal(amp_log_cosign(&h, witness, cotime, wk.sk, sig),
			 AMP_OK);
	jhex(jc, "sig", want, 64);
	assert_memory_equal(sig, want, 64);
	assert_true(amp_log_cosign_verify(&h, witness, cotime, wk.pk, sig));

	/* every field is signed */
	assert_false(amp_log_head_verify(&h, wk.pk));
	assert_false(amp_log_cosign_verify(&h, witness, cotime + 1, wk.pk, sig));
	assert_false(amp_log_cosign_verify(&h, "did:aftersmtp:example.com:node",
					   cotime, wk.pk, sig));
	assert_false(amp_log_cosign_verify(&h, witness, cotime, nk.pk, sig));
	amp_log_head h2 = h;
	h2.size++;
	assert_false(amp_log_head_verify(&h2, nk.pk));
	assert_false(amp_log_cosign_verify(&h2, witness, cotime, wk.pk, sig));
	h2 = h;
	h2.time++;
	assert_false(amp_log_head_verify(&h2, nk.pk));
	h2 = h;
	h2.root[31] ^= 1;
	assert_false(amp_log_head_verify(&h2, nk.pk));
	assert_false(amp_log_cosign_verify(&h2, witness, cotime, wk.pk, sig));
	h2 = h;
	h2.sig[0] ^= 1;
	assert_false(amp_log_head_verify(&h2, nk.pk));
	h2 = h;
	h2.log[14] = 'f'; /* did:aftersmtp:fxample.org:node */
	assert_false(amp_log_head_verify(&h2, nk.pk));
	/* names that are not DIDs */
	h2 = h;
	snprintf(h2.log, sizeof(h2.log), "did:aftersmtp:Example.org:node");
	assert_int_equal(amp_log_head_sign(&h2, nk.sk), AMP_E_INVALID_ARG);
	assert_false(amp_log_head_verify(&h2, nk.pk));
	h2.log[0] = '\0';
	assert_int_equal(amp_log_head_sign(&h2, nk.sk), AMP_E_INVALID_ARG);
	memset(h2.log, 'a', sizeof(h2.log)); /* no NUL at all */
	assert_int_equal(amp_log_head_sign(&h2, nk.sk), AMP_E_INVALID_ARG);
	assert_false(amp_log_head_verify(&h2, nk.pk));
	assert_int_equal(amp_log_cosign(&h, "example.net", cotime, wk.sk, sig),
			 AMP_E_INVALID_ARG);

	/* leaves a strict decoder refuses */
	json_array_foreach(json_object_get(v, "bad_leaves"), i, p) {
		size_t len;
		uint8_t *raw = t_unhex(jstr(p, "leaf"), &len);
		amp_log_leaf l;
		const char *err = NULL;
		amp_err e = amp_log_leaf_decode(raw, len, &l, &err);
		if (strcmp(amp_err_name(e), jstr(p, "error")) != 0)
			fail_msg("%s: %s, want %s", jstr(p, "name"),
				 amp_err_name(e), jstr(p, "error"));
		assert_non_null(err);
		free(raw);
	}
	json_decref(v);
}

/* ------------------------------------------------------------------ leaves */

/* Every truncation of every leaf type, and every version and type byte
 * other than its own, is refused; decode writes nothing on failure. */
static void test_leaf_strict(void **state)
{
	(void)state;
	amp_log_leaf ls[4];
	memset(ls, 0, sizeof(ls));
	for (int k = 0; k < 4; k++) {
		ls[k].type = (amp_log_type)(k + 1);
		ls[k].time = UINT64_C(0x0102030405060708);
		memset(ls[k].subject, 0x11 * (k + 1), 32);
		memset(ls[k].sign_pk, 0x21, 32);
		memset(ls[k].enc_pk, 0x22, 32);
		memset(ls[k].sig, 0x23, 64);
		memset(ls[k].prev_sig, 0x24, 64);
	}
	ls[1].version = 7;
	ls[2].version = 0; /* a revoke of the registration key */
	snprintf(ls[3].node, sizeof(ls[3].node), "did:aftersmtp:a.example:node");
	static const size_t lens[4] = { 174, 238, 110, 46 + 28 };
	for (int k = 0; k < 4; k++) {
		/* fields a type does not carry are not encoded */
		amp_log_leaf x = ls[k];
		if (x.type != AMP_LOG_ROTATE)
			memset(x.prev_sig, 0, 64);
		if (x.type == AMP_LOG_REVOKE || x.type == AMP_LOG_RECEIPT) {
			memset(x.sign_pk, 0, 32);
			memset(x.enc_pk, 0, 32);
		}
		if (x.type == AMP_LOG_RECEIPT)
			memset(x.sig, 0, 64);
		uint8_t b[AMP_LOG_LEAF_MAX + 1];
		size_t len;
		assert_int_equal(amp_log_leaf_encode(&ls[k], b, sizeof(b), &len),
				 AMP_OK);
		assert_int_equal(len, lens[k]);
		amp_log_leaf d, sentinel;
		memset(&sentinel, 0x5a, sizeof(sentinel));
		const char *err = NULL;
		assert_int_equal(amp_log_leaf_decode(b, len, &d, &err), AMP_OK);
		assert_memory_equal(&d, &x, sizeof(d));
		assert_int_equal(amp_log_leaf_decode(b, len, NULL, NULL), AMP_OK);
		for (size_t cut = 0; cut < len; cut++) {
			d = sentinel;
			err = NULL;
			amp_err e = amp_log_leaf_decode(b, cut, &d, &err);
			assert_int_equal(e, k == 3 && cut >= 46 ?
					 AMP_E_TRUNCATED : AMP_E_TRUNCATED);
			assert_non_null(err);
			assert_memory_equal(&d, &sentinel, sizeof(d));
		}
		/* one byte more: trailing bytes */
		b[len] = 0;
		assert_int_equal(amp_log_leaf_decode(b, len + 1, &d, NULL),
				 AMP_E_MALFORMED);
		for (unsigned vb = 0; vb < 256; vb++) {
			uint8_t o = b[0];
			if (vb == 1)
				continue;
			b[0] = (uint8_t)vb;
			assert_int_equal(amp_log_leaf_decode(b, len, &d, NULL),
					 AMP_E_VERSION);
			b[0] = o;
		}
		for (unsigned tb = 0; tb < 256; tb++) {
			uint8_t o = b[1];
			if (tb == b[1])
				continue;
			b[1] = (uint8_t)tb;
			d = sentinel;
			amp_err e = amp_log_leaf_decode(b, len, &d, NULL);
			assert_int_not_equal(e, AMP_OK);
			assert_memory_equal(&d, &sentinel, sizeof(d));
			b[1] = o;
		}
	}
	/* the versions a type allows */
	amp_log_leaf x = ls[0];
	uint8_t b[AMP_LOG_LEAF_MAX];
	size_t len;
	x.version = 1;
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len),
			 AMP_E_INVALID_ARG);
	x = ls[1];
	x.version = 0;
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len),
			 AMP_E_INVALID_ARG);
	x.type = (amp_log_type)5;
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len),
			 AMP_E_INVALID_ARG);
	x = ls[3];
	snprintf(x.node, sizeof(x.node), "did:aftersmtp:A.example:node");
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len),
			 AMP_E_INVALID_ARG);
	memset(x.node, 'a', sizeof(x.node)); /* no NUL */
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len),
			 AMP_E_INVALID_ARG);
	x.node[0] = '\0';
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len),
			 AMP_E_INVALID_ARG);
	/* the longest receipt: a 332-byte DID, 378 bytes */
	x = ls[3];
	char dom[254];
	memset(dom, 'a', 253);
	for (int k = 63; k < 253; k += 64)
		dom[k] = '.';
	dom[253] = '\0';
	char loc[65];
	memset(loc, 'b', 64);
	loc[64] = '\0';
	assert_int_equal(amp_did_format(dom, loc, x.node, sizeof(x.node), NULL),
			 AMP_OK);
	assert_int_equal(strlen(x.node), AMP_DID_MAX);
	assert_int_equal(amp_log_leaf_encode(&x, b, sizeof(b), &len), AMP_OK);
	assert_int_equal(len, 46 + AMP_DID_MAX);
	amp_log_leaf d;
	assert_int_equal(amp_log_leaf_decode(b, len, &d, NULL), AMP_OK);
	assert_string_equal(d.node, x.node);
	/* a NUL inside the DID */
	b[60] = 0;
	assert_int_equal(amp_log_leaf_decode(b, len, &d, NULL), AMP_E_BAD_DID);
}

/* ------------------------------------------------------------ key history */

typedef struct t_hist {
	uint8_t dh[32];
	t_key k[4];
} t_hist;

static void t_hist_init(t_hist *h, const char *did)
{
	amp_log_did_hash(did, h->dh);
	for (int i = 0; i < 4; i++) {
		uint8_t seed[32];
		memset(seed, 0x40 + i, 32);
		seed[0] = (uint8_t)did[strlen(did) - 1];
		crypto_sign_seed_keypair(h->k[i].pk, h->k[i].sk, seed);
		memset(h->k[i].epk, 0x60 + i, 32);
	}
}

static amp_log_leaf t_register(const t_hist *h, int key)
{
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_REGISTER;
	l.time = 100;
	memcpy(l.subject, h->dh, 32);
	memcpy(l.sign_pk, h->k[key].pk, 32);
	memcpy(l.enc_pk, h->k[key].epk, 32);
	amp_log_sign_key(h->k[key].sk, h->dh, 0, l.sign_pk, l.enc_pk, l.sig);
	return l;
}

/* rotate to version v with key `key`, prev_sig by key `by` */
static amp_log_leaf t_rotate(const t_hist *h, uint32_t v, int key, int by)
{
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_ROTATE;
	l.time = 100 + v;
	l.version = v;
	memcpy(l.subject, h->dh, 32);
	memcpy(l.sign_pk, h->k[key].pk, 32);
	memcpy(l.enc_pk, h->k[key].epk, 32);
	amp_log_sign_key(h->k[key].sk, h->dh, v, l.sign_pk, l.enc_pk, l.sig);
	amp_log_sign_key(h->k[by].sk, h->dh, v, l.sign_pk, l.enc_pk,
			 l.prev_sig);
	return l;
}

static amp_log_leaf t_revoke(const t_hist *h, uint32_t v, int by)
{
	amp_log_leaf l;
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_REVOKE;
	l.time = 200;
	l.version = v;
	memcpy(l.subject, h->dh, 32);
	amp_log_sign_revoke(h->k[by].sk, h->dh, v, l.sig);
	return l;
}

static void t_apply_ok(amp_log_identity *st, const amp_log_leaf *l)
{
	const char *err = NULL;
	amp_err e = amp_log_identity_apply(st, l, &err);
	if (e != AMP_OK)
		fail_msg("apply: %s: %s", amp_err_name(e), err);
}

/* The leaf is refused with code e and the state is left as it was. */
static void t_apply_bad(amp_log_identity *st, const amp_log_leaf *l, amp_err e)
{
	amp_log_identity before = *st;
	const char *err = NULL;
	assert_int_equal(amp_log_identity_apply(st, l, &err), e);
	assert_non_null(err);
	assert_memory_equal(&before, st, sizeof(before));
}

static void test_identity(void **state)
{
	(void)state;
	t_hist h, o;
	t_hist_init(&h, "did:aftersmtp:example.org:alice");
	t_hist_init(&o, "did:aftersmtp:example.org:bob");
	amp_log_identity st;
	amp_log_leaf l;

	/* a valid chain: register, rotate 1, rotate 2, revoke 2 */
	memset(&st, 0, sizeof(st));
	t_apply_bad(&st, (l = t_rotate(&h, 1, 1, 0), &l), AMP_E_MALFORMED);
	t_apply_bad(&st, (l = t_revoke(&h, 0, 0), &l), AMP_E_MALFORMED);
	l = t_register(&h, 0);
	l.sig[5] ^= 1;
	t_apply_bad(&st, &l, AMP_E_BAD_SIGNATURE);
	l = t_register(&h, 0);
	l.version = 1;
	t_apply_bad(&st, &l, AMP_E_MALFORMED);
	l = t_register(&h, 0);
	memcpy(l.enc_pk, h.k[1].epk, 32); /* the signature covers enc_pk */
	t_apply_bad(&st, &l, AMP_E_BAD_SIGNATURE);
	t_apply_ok(&st, (l = t_register(&h, 0), &l));
	assert_true(st.exists && !st.revoked);
	assert_int_equal(st.version, 0);
	assert_memory_equal(st.sign_pk, h.k[0].pk, 32);
	assert_memory_equal(st.subject, h.dh, 32);
	assert_int_equal(st.since, 100);
	/* a second register */
	t_apply_bad(&st, (l = t_register(&h, 1), &l), AMP_E_MALFORMED);
	/* another DID's leaf */
	t_apply_bad(&st, (l = t_rotate(&o, 1, 1, 0), &l), AMP_E_MALFORMED);
	/* a receipt */
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_RECEIPT;
	memcpy(l.subject, h.dh, 32);
	t_apply_bad(&st, &l, AMP_E_MALFORMED);
	/* a gap: version 2 after 0 */
	t_apply_bad(&st, (l = t_rotate(&h, 2, 1, 0), &l), AMP_E_MALFORMED);
	/* a reused version */
	t_apply_bad(&st, (l = t_rotate(&h, 0, 1, 0), &l), AMP_E_MALFORMED);
	/* wrong prev_sig: signed by the new key (a swapped key) */
	t_apply_bad(&st, (l = t_rotate(&h, 1, 1, 1), &l), AMP_E_BAD_SIGNATURE);
	/* wrong prev_sig: signed by a stranger's key */
	t_apply_bad(&st, (l = t_rotate(&h, 1, 1, 3), &l), AMP_E_BAD_SIGNATURE);
	/* a corrupted prev_sig, a self_sig by the old key */
	l = t_rotate(&h, 1, 1, 0);
	l.prev_sig[63] ^= 0x10;
	t_apply_bad(&st, &l, AMP_E_BAD_SIGNATURE);
	l = t_rotate(&h, 1, 1, 0);
	amp_log_sign_key(h.k[0].sk, h.dh, 1, l.sign_pk, l.enc_pk, l.sig);
	t_apply_bad(&st, &l, AMP_E_BAD_SIGNATURE);
	/* a swapped key: the leaf names key 2 but carries key 1's sigs */
	l = t_rotate(&h, 1, 1, 0);
	memcpy(l.sign_pk, h.k[2].pk, 32);
	t_apply_bad(&st, &l, AMP_E_BAD_SIGNATURE);
	/* the rotation signed for another version */
	l = t_rotate(&h, 1, 1, 0);
	l.version = 2;
	t_apply_bad(&st, &l, AMP_E_MALFORMED);
	t_apply_ok(&st, (l = t_rotate(&h, 1, 1, 0), &l));
	assert_int_equal(st.version, 1);
	assert_memory_equal(st.sign_pk, h.k[1].pk, 32);
	assert_memory_equal(st.enc_pk, h.k[1].epk, 32);
	assert_int_equal(st.since, 101);
	/* reusing version 1 */
	t_apply_bad(&st, (l = t_rotate(&h, 1, 2, 1), &l), AMP_E_MALFORMED);
	/* the old key can no longer rotate */
	t_apply_bad(&st, (l = t_rotate(&h, 2, 2, 0), &l), AMP_E_BAD_SIGNATURE);
	t_apply_ok(&st, (l = t_rotate(&h, 2, 2, 1), &l));
	/* revoke: the current version, by the current key */
	t_apply_bad(&st, (l = t_revoke(&h, 1, 1), &l), AMP_E_MALFORMED);
	t_apply_bad(&st, (l = t_revoke(&h, 3, 2), &l), AMP_E_MALFORMED);
	t_apply_bad(&st, (l = t_revoke(&h, 2, 1), &l), AMP_E_BAD_SIGNATURE);
	t_apply_ok(&st, (l = t_revoke(&h, 2, 2), &l));
	assert_true(st.revoked);
	assert_int_equal(st.version, 2);
	assert_memory_equal(st.sign_pk, h.k[2].pk, 32);
	/* nothing after a revoke: rotate, revoke, register */
	t_apply_bad(&st, (l = t_rotate(&h, 3, 3, 2), &l), AMP_E_MALFORMED);
	t_apply_bad(&st, (l = t_revoke(&h, 2, 2), &l), AMP_E_MALFORMED);
	t_apply_bad(&st, (l = t_register(&h, 3), &l), AMP_E_MALFORMED);

	/* revoke right after register (version 0) */
	memset(&st, 0, sizeof(st));
	t_apply_ok(&st, (l = t_register(&h, 0), &l));
	t_apply_ok(&st, (l = t_revoke(&h, 0, 0), &l));
	t_apply_bad(&st, (l = t_rotate(&h, 1, 1, 0), &l), AMP_E_MALFORMED);

	/* a version that cannot go further */
	memset(&st, 0, sizeof(st));
	t_apply_ok(&st, (l = t_register(&h, 0), &l));
	st.version = UINT32_MAX;
	t_apply_bad(&st, (l = t_rotate(&h, 0, 1, 0), &l), AMP_E_MALFORMED);
	/* NULLs */
	assert_int_equal(amp_log_identity_apply(NULL, &l, NULL),
			 AMP_E_INVALID_ARG);
	assert_int_equal(amp_log_identity_apply(&st, NULL, NULL),
			 AMP_E_INVALID_ARG);
}

int main(void)
{
	if (amp_init() != AMP_OK)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hashing),
		cmocka_unit_test(test_frontier),
		cmocka_unit_test(test_frontier_emit_fails),
		cmocka_unit_test(test_inclusion_all),
		cmocka_unit_test(test_consistency_all),
		cmocka_unit_test(test_verify_bounds),
		cmocka_unit_test(test_huge_sizes),
		cmocka_unit_test(test_vectors_merkle),
		cmocka_unit_test(test_vectors_leaves),
		cmocka_unit_test(test_leaf_strict),
		cmocka_unit_test(test_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
