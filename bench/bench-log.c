/*
 * bench-log.c — amp-bench-log: what the transparency log (issue 8,
 * src/store/store-log.c) costs the node, on a real store (SQLite, WAL,
 * synchronous=FULL) in a fresh directory:
 *
 * 1. Appends: deliveries per second through store_deliver with a receipt
 *    leaf, next to the same deliveries without one (the baseline: the
 *    difference is the log's cost), from --submitters threads that each
 *    wait for their delivery's commit before the next (as the daemon's
 *    requests do), so the writer's group commits batch them.  At each
 *    size the store is first filled to that many leaves (deliveries with
 *    receipts and small envelopes, many in flight), then --rounds rounds
 *    each time one slice with receipts and one without, alternating
 *    which goes first; the rates are medians over the rounds.
 * 2. Proofs at exactly that size (before the append windows): the time of
 *    store_log_inclusion (random index) and store_log_consistency
 *    (random first size) over --proofs calls, median and p99, the proof
 *    length in hashes next to ceil(log2 n); every proof is verified
 *    (outside the clock) against the root.  Baselines: store_log_state
 *    (the root from the stored subtrees: the floor of any answer read
 *    from the table), the client's verification of the proof, and the
 *    root recomputed from every leaf (what a store without the subtree
 *    table would do per proof; once per size).
 *
 *   amp-bench-log [--quick] [--markdown] [--dir DIR] [--sizes N,N,...]
 *                 [--rounds R] [--slice S] [--submitters T] [--proofs P]
 *                 [--env-size BYTES]
 *
 * Defaults: sizes 1000,100000,1000000; 5 rounds; slices of 2000
 * deliveries (at most size/rounds, at least 100); 32 submitters; 1000
 * proofs; 1024-byte envelopes in the windows (64 when filling).
 * --quick: sizes 1000,10000, 3 rounds of at most 500, 200 proofs.
 * Output: key=value lines, or Markdown tables with --markdown.  The
 * database is removed at the end.
 */
#include "store.h"

#include "amp/amp-log.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIZES_MAX 8
#define FILL_INFLIGHT 1024
#define FILL_ENV 64u
#define NODE_DID "did:aftersmtp:bench.test:node"
#define SENDER_DID "did:aftersmtp:sender.test:bench"
#define RCPT_DID "did:aftersmtp:bench.test:user"

typedef struct opts {
	bool quick, markdown;
	const char *dir;
	uint64_t sizes[SIZES_MAX];
	size_t n_sizes;
	unsigned rounds, slice, submitters, proofs;
	size_t env_size;
} opts;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "amp-bench-log: %s\n", what);
	exit(1);
}

/* ------------------------------------------------------- deliveries */

static uint32_t next_id;              /* envelope ids: unique per run */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t take_id(void)
{
	pthread_mutex_lock(&id_lock);
	uint32_t id = next_id++;
	pthread_mutex_unlock(&id_lock);
	return id;
}

typedef struct pending {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inflight;
	unsigned failures;
} pending;

static void on_done(void *arg, int result, bool duplicate)
{
	pending *p = arg;
	pthread_mutex_lock(&p->lock);
	if (result != 0 || duplicate)
		p->failures++;
	p->inflight--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Queue delivery number id (envelope of len bytes; with its receipt
 * when receipt): the callback goes to p. */
static void submit(store *s, uint32_t id, uint8_t *env, size_t len,
		   bool receipt, pending *p)
{
	uint8_t eid[16] = { 0 };
	memcpy(eid, &id, sizeof(id));
	memcpy(env, &id, sizeof(id));  /* distinct envelopes, digests */
	uint8_t leaf[AMP_LOG_LEAF_MAX];
	size_t leaf_len = 0;
	if (receipt) {
		amp_log_leaf l;
		memset(&l, 0, sizeof(l));
		l.type = AMP_LOG_RECEIPT;
		l.time = (uint64_t)time(NULL);
		amp_log_envelope_digest(env, len, l.subject);
		snprintf(l.node, sizeof(l.node), "%s", NODE_DID);
		if (amp_log_leaf_encode(&l, leaf, sizeof(leaf), &leaf_len) !=
		    AMP_OK)
			die("amp_log_leaf_encode failed");
	}
	const char *local[1] = { RCPT_DID };
	store_delivery d = { .sender = SENDER_DID, .envelope_id = eid,
			     .env = env, .env_len = len,
			     .received = (uint64_t)time(NULL),
			     .local = local, .n_local = 1 };
	if (receipt) {
		d.receipt = leaf;
		d.receipt_len = leaf_len;
	}
	pthread_mutex_lock(&p->lock);
	p->inflight++;
	pthread_mutex_unlock(&p->lock);
	if (store_deliver(s, &d, on_done, p) != 0)
		die("store_deliver refused a delivery");
}

static void wait_below(pending *p, unsigned max)
{
	pthread_mutex_lock(&p->lock);
	while (p->inflight > max)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

/* Deliveries with receipts (FILL_ENV-byte envelopes, up to
 * FILL_INFLIGHT in flight) until the log holds size leaves. */
static void fill(store *s, uint64_t size)
{
	uint64_t have;
	uint8_t root[32];
	if (store_log_state(s, &have, root) != 0)
		die("store_log_state failed");
	pending p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	uint8_t env[FILL_ENV];
	memset(env, 'f', sizeof(env));
	for (; have < size; have++) {
		wait_below(&p, FILL_INFLIGHT - 1);
		submit(s, take_id(), env, sizeof(env), true, &p);
	}
	wait_below(&p, 0);
	if (p.failures != 0)
		die("a delivery failed while filling");
}

typedef struct submitter {
	store *s;
	size_t env_size;
	bool receipt;
	unsigned n;
	pthread_barrier_t *go;
} submitter;

/* n deliveries, one at a time: each waits for its commit. */
static void *submitter_main(void *arg)
{
	submitter *t = arg;
	uint8_t *env = malloc(t->env_size);
	if (env == NULL)
		die("out of memory");
	memset(env, 'w', t->env_size);
	pending p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	pthread_barrier_wait(t->go);
	for (unsigned i = 0; i < t->n; i++) {
		submit(t->s, take_id(), env, t->env_size, t->receipt, &p);
		wait_below(&p, 0);
	}
	if (p.failures != 0)
		die("a delivery failed");
	free(env);
	return NULL;
}

typedef struct slice_result {
	double rate;            /* deliveries per second */
	double batch;           /* writes per commit */
} slice_result;

/* One slice of n deliveries from o->submitters threads. */
static slice_result run_slice(store *s, const opts *o, unsigned n,
			      bool receipt)
{
	unsigned t_n = o->submitters;
	pthread_t *th = calloc(t_n, sizeof(*th));
	submitter *sub = calloc(t_n, sizeof(*sub));
	if (th == NULL || sub == NULL)
		die("out of memory");
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, t_n + 1);
	for (unsigned i = 0; i < t_n; i++) {
		sub[i] = (submitter){ s, o->env_size, receipt,
				      n / t_n + (i < n % t_n ? 1 : 0), &go };
		if (pthread_create(&th[i], NULL, submitter_main, &sub[i]) != 0)
			die("pthread_create failed");
	}
	store_stats st0, st1;
	store_get_stats(s, &st0);
	pthread_barrier_wait(&go);
	double t0 = now_s();
	for (unsigned i = 0; i < t_n; i++)
		pthread_join(th[i], NULL);
	double t1 = now_s();
	store_get_stats(s, &st1);
	pthread_barrier_destroy(&go);
	free(th);
	free(sub);
	uint64_t commits = st1.commits - st0.commits;
	slice_result r = { n / (t1 - t0),
			   commits > 0 ? (double)(st1.writes - st0.writes) /
					 (double)commits : 0 };
	return r;
}

/* ---------------------------------------------------------- statistics */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y ? 1 : 0;
}

/* The q-quantile (nearest rank) of v[n], sorted in place. */
static double quantile(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), cmp_double);
	size_t k = (size_t)ceil(q * (double)n);
	return v[k == 0 ? 0 : k - 1];
}

static uint64_t rand_below(uint64_t n)
{
	uint64_t r;
	randombytes_buf(&r, sizeof(r));
	return r % n;
}

static unsigned ceil_log2(uint64_t n)
{
	unsigned l = 0;
	while (l < 64 && (UINT64_C(1) << l) < n)
		l++;
	return l;
}

/* ---------------------------------------------------------- one size */

typedef struct row {
	uint64_t size, grown_to;
	unsigned slice, rounds;
	double with_rate, without_rate, ratio, with_batch, without_batch;
	double cost_us;                     /* per delivery: the log's */
	double inc_med, inc_p99, inc_len_med, inc_len_max;
	double con_med, con_p99, con_len_med, con_len_max;
	double state_med, state_p99, verify_inc_med, verify_con_med;
	double full_root_ms;
	unsigned log2n;
	double fill_s;
} row;

typedef struct pick {
	uint64_t m;                         /* an older size, 1 .. n */
	uint8_t root[32];                   /* MTH(m), from the leaves */
} pick;

static int cmp_pick(const void *a, const void *b)
{
	uint64_t x = ((const pick *)a)->m, y = ((const pick *)b)->m;
	return x < y ? -1 : x > y ? 1 : 0;
}

/* Every leaf read back (store_log_entries, 1000 at a time) and hashed
 * into a frontier: the root of the whole log the slow way (the baseline
 * of a store without the subtree table), and on the way MTH(m) of each
 * pick (sorted).  Returns the seconds it took. */
static double roots_from_leaves(store *s, uint64_t n, pick *picks, size_t np,
				uint8_t root[32])
{
	amp_log_frontier f;
	amp_log_frontier_init(&f);
	size_t next = 0;
	double t0 = now_s();
	for (uint64_t start = 0; start < n; start += 1000) {
		uint8_t **leaves;
		size_t *lens, got;
		unsigned count = n - start < 1000 ? (unsigned)(n - start) : 1000;
		if (store_log_entries(s, start, count, &leaves, &lens, &got) != 0 ||
		    got != count)
			die("store_log_entries failed");
		for (size_t i = 0; i < got; i++) {
			uint8_t h[32];
			amp_log_leaf_hash(leaves[i], lens[i], h);
			if (amp_log_frontier_push(&f, h, NULL, NULL) != AMP_OK)
				die("amp_log_frontier_push failed");
			while (next < np && picks[next].m == f.size)
				amp_log_frontier_root(&f, picks[next++].root);
		}
		store_log_leaves_free(leaves, lens, got);
	}
	amp_log_frontier_root(&f, root);
	return now_s() - t0;
}

/* Proof timings at exactly the committed size n. */
static void measure_proofs(store *s, const opts *o, uint64_t n, row *r)
{
	uint64_t size;
	uint8_t root[32], slow_root[32];
	if (store_log_state(s, &size, root) != 0 || size != n)
		die("store_log_state failed or the size moved");
	unsigned p = o->proofs;
	double *inc = calloc(p, sizeof(double)), *con = calloc(p, sizeof(double));
	double *inc_len = calloc(p, sizeof(double));
	double *con_len = calloc(p, sizeof(double));
	double *st = calloc(p, sizeof(double)), *vi = calloc(p, sizeof(double));
	double *vc = calloc(p, sizeof(double));
	pick *picks = calloc(p, sizeof(*picks));
	size_t *order = calloc(p, sizeof(*order));
	if (inc == NULL || con == NULL || inc_len == NULL || con_len == NULL ||
	    st == NULL || vi == NULL || vc == NULL || picks == NULL ||
	    order == NULL)
		die("out of memory");
	for (unsigned i = 0; i < p; i++)
		picks[i].m = 1 + rand_below(n);
	qsort(picks, p, sizeof(*picks), cmp_pick);
	r->full_root_ms = roots_from_leaves(s, n, picks, p, slow_root) * 1e3;
	if (memcmp(slow_root, root, 32) != 0)
		die("the root from the leaves is not store_log_state's");
	/* the picks in a random order, so that one proof does not warm the
	 * page cache for the next */
	for (unsigned i = 0; i < p; i++)
		order[i] = i;
	for (unsigned i = p; i > 1; i--) {
		size_t k = (size_t)rand_below(i), t = order[i - 1];
		order[i - 1] = order[k];
		order[k] = t;
	}
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	size_t len;
	for (unsigned i = 0; i < p; i++) {
		/* inclusion of a random leaf */
		uint64_t k = rand_below(n);
		double t0 = now_s();
		if (store_log_inclusion(s, k, n, path, &len) != 0)
			die("store_log_inclusion failed");
		inc[i] = (now_s() - t0) * 1e6;
		inc_len[i] = (double)len;
		uint8_t *leaf, h[32];
		size_t leaf_len;
		if (store_log_leaf(s, k, &leaf, &leaf_len) != 1)
			die("store_log_leaf failed");
		amp_log_leaf_hash(leaf, leaf_len, h);
		free(leaf);
		t0 = now_s();
		amp_err e = amp_log_verify_inclusion(k, n, h,
						     (const uint8_t (*)[32])path,
						     len, root);
		vi[i] = (now_s() - t0) * 1e6;
		if (e != AMP_OK)
			die("an inclusion proof did not verify");
		/* consistency from a random older size m to n */
		const pick *pk = &picks[order[i]];
		t0 = now_s();
		if (store_log_consistency(s, pk->m, n, path, &len) != 0)
			die("store_log_consistency failed");
		con[i] = (now_s() - t0) * 1e6;
		con_len[i] = (double)len;
		t0 = now_s();
		e = amp_log_verify_consistency(pk->m, n, pk->root, root,
					       (const uint8_t (*)[32])path, len);
		vc[i] = (now_s() - t0) * 1e6;
		if (e != AMP_OK)
			die("a consistency proof did not verify");
		/* the baseline: the current root from the stored subtrees */
		uint64_t sz;
		uint8_t rt[32];
		t0 = now_s();
		if (store_log_state(s, &sz, rt) != 0)
			die("store_log_state failed");
		st[i] = (now_s() - t0) * 1e6;
	}
	r->inc_med = quantile(inc, p, 0.5);
	r->inc_p99 = quantile(inc, p, 0.99);
	r->inc_len_med = quantile(inc_len, p, 0.5);
	r->inc_len_max = quantile(inc_len, p, 1.0);
	r->con_med = quantile(con, p, 0.5);
	r->con_p99 = quantile(con, p, 0.99);
	r->con_len_med = quantile(con_len, p, 0.5);
	r->con_len_max = quantile(con_len, p, 1.0);
	r->state_med = quantile(st, p, 0.5);
	r->state_p99 = quantile(st, p, 0.99);
	r->verify_inc_med = quantile(vi, p, 0.5);
	r->verify_con_med = quantile(vc, p, 0.5);
	r->log2n = ceil_log2(n);
	free(inc);
	free(con);
	free(inc_len);
	free(con_len);
	free(st);
	free(vi);
	free(vc);
	free(picks);
	free(order);
}

/* Append windows at the current size: rounds of one slice with receipts
 * and one without, alternating which goes first. */
static void measure_appends(store *s, const opts *o, uint64_t n, row *r)
{
	unsigned slice = o->slice;
	if (slice > n / o->rounds)
		slice = (unsigned)(n / o->rounds);
	if (slice < 100)
		slice = 100;
	if (slice < o->submitters)
		slice = o->submitters;
	double *with = calloc(o->rounds, sizeof(double));
	double *without = calloc(o->rounds, sizeof(double));
	double *ratio = calloc(o->rounds, sizeof(double));
	double *bw = calloc(o->rounds, sizeof(double));
	double *bo = calloc(o->rounds, sizeof(double));
	if (with == NULL || without == NULL || ratio == NULL || bw == NULL ||
	    bo == NULL)
		die("out of memory");
	for (unsigned i = 0; i < o->rounds; i++) {
		slice_result a, b;
		if (i % 2 == 0) {
			a = run_slice(s, o, slice, true);
			b = run_slice(s, o, slice, false);
		} else {
			b = run_slice(s, o, slice, false);
			a = run_slice(s, o, slice, true);
		}
		with[i] = a.rate;
		without[i] = b.rate;
		ratio[i] = b.rate / a.rate;
		bw[i] = a.batch;
		bo[i] = b.batch;
	}
	uint64_t size;
	uint8_t root[32];
	if (store_log_state(s, &size, root) != 0)
		die("store_log_state failed");
	r->grown_to = size;
	r->slice = slice;
	r->rounds = o->rounds;
	r->with_rate = quantile(with, o->rounds, 0.5);
	r->without_rate = quantile(without, o->rounds, 0.5);
	r->ratio = quantile(ratio, o->rounds, 0.5);
	r->with_batch = quantile(bw, o->rounds, 0.5);
	r->without_batch = quantile(bo, o->rounds, 0.5);
	r->cost_us = (1.0 / r->with_rate - 1.0 / r->without_rate) * 1e6;
	free(with);
	free(without);
	free(ratio);
	free(bw);
	free(bo);
}

/* ------------------------------------------------------------- output */

static void print_rows(const opts *o, const row *rows, size_t n)
{
	if (!o->markdown) {
		for (size_t i = 0; i < n; i++) {
			const row *r = &rows[i];
			printf("leaves=%llu grown_to=%llu fill_s=%.1f "
			       "with_receipt_per_s=%.0f without_per_s=%.0f "
			       "ratio=%.2f log_cost_us=%.1f batch_with=%.1f "
			       "batch_without=%.1f\n",
			       (unsigned long long)r->size,
			       (unsigned long long)r->grown_to, r->fill_s,
			       r->with_rate, r->without_rate, r->ratio,
			       r->cost_us, r->with_batch, r->without_batch);
			printf("leaves=%llu inclusion_us_p50=%.1f p99=%.1f "
			       "hashes_p50=%.0f max=%.0f consistency_us_p50=%.1f "
			       "p99=%.1f hashes_p50=%.0f max=%.0f log2n=%u "
			       "state_us_p50=%.1f p99=%.1f verify_inclusion_us=%.1f "
			       "verify_consistency_us=%.1f root_from_leaves_ms=%.1f\n",
			       (unsigned long long)r->size, r->inc_med, r->inc_p99,
			       r->inc_len_med, r->inc_len_max, r->con_med,
			       r->con_p99, r->con_len_med, r->con_len_max,
			       r->log2n, r->state_med, r->state_p99,
			       r->verify_inc_med, r->verify_con_med,
			       r->full_root_ms);
		}
		return;
	}
	printf("- store: a fresh SQLite database (WAL, synchronous=FULL: "
	       "every commit fsync'd), the node's group commit "
	       "(STORE_BATCH_MAX %u)\n", STORE_BATCH_MAX);
	printf("- fill: deliveries with receipts (%u-byte envelopes, up to "
	       "%u in flight) until the log holds the row's leaves; then the "
	       "proofs at exactly that size, then the append windows\n",
	       FILL_ENV, FILL_INFLIGHT);
	printf("- append windows: %u rounds per size, each one slice with a "
	       "receipt and one without (which goes first alternates); a "
	       "slice is min(%u, leaves/rounds), at least 100, deliveries "
	       "from %u threads that each wait for their delivery's commit; "
	       "every delivery new (distinct envelope id), one local "
	       "recipient, %zu-byte envelope; rates and the ratio are "
	       "medians over the rounds; the log's cost per delivery = "
	       "1/with - 1/without\n", o->rounds, o->slice, o->submitters,
	       o->env_size);
	printf("- proofs: %u inclusion proofs of random leaves and %u "
	       "consistency proofs from random older sizes, against the "
	       "row's size, timed per call (CLOCK_MONOTONIC) on the read "
	       "connection, each verified afterwards with amp_log_verify_*; "
	       "baselines: store_log_state (the root from the stored "
	       "subtrees, popcount(n) point reads), the client's verification, "
	       "and the root recomputed from every leaf read back (once)\n\n",
	       o->proofs, o->proofs);
	printf("**Appends** (deliveries/s through store_deliver, %u "
	       "submitters each waiting for its commit; %zu-byte envelopes, "
	       "one local recipient; median of the rounds)\n\n",
	       o->submitters, o->env_size);
	printf("| leaves | during the windows | rounds x slice | with receipt "
	       "/s | without (baseline) /s | baseline/with (median of the "
	       "rounds' ratios) | log's cost "
	       "µs/delivery | writes/commit with, without | fill s |\n");
	printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < n; i++) {
		const row *r = &rows[i];
		printf("| %llu | %llu -> %llu | %u x %u x 2 | %.0f | %.0f | "
		       "%.2fx | %.1f | %.0f, %.0f | %.0f |\n",
		       (unsigned long long)r->size, (unsigned long long)r->size,
		       (unsigned long long)r->grown_to, r->rounds, r->slice,
		       r->with_rate, r->without_rate, r->ratio, r->cost_us,
		       r->with_batch, r->without_batch, r->fill_s);
	}
	printf("\n**Proofs** at exactly that many leaves (%u random proofs "
	       "each; µs per call on the read connection; every proof "
	       "verified)\n\n", o->proofs);
	printf("| leaves | inclusion p50 / p99 µs | hashes p50 / max | "
	       "consistency p50 / p99 µs | hashes p50 / max | ceil(log2 n) | "
	       "baseline: root from stored subtrees p50 / p99 µs | client "
	       "verify incl. / cons. µs | root from every leaf ms |\n");
	printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (size_t i = 0; i < n; i++) {
		const row *r = &rows[i];
		printf("| %llu | %.1f / %.1f | %.0f / %.0f | %.1f / %.1f | "
		       "%.0f / %.0f | %u | %.1f / %.1f | %.1f / %.1f | %.1f |\n",
		       (unsigned long long)r->size, r->inc_med, r->inc_p99,
		       r->inc_len_med, r->inc_len_max, r->con_med, r->con_p99,
		       r->con_len_med, r->con_len_max, r->log2n, r->state_med,
		       r->state_p99, r->verify_inc_med, r->verify_con_med,
		       r->full_root_ms);
	}
}

/* ------------------------------------------------------------- main */

static bool parse_sizes(const char *v, opts *o)
{
	o->n_sizes = 0;
	char buf[256];
	if (v == NULL || strlen(v) >= sizeof(buf))
		return false;
	memcpy(buf, v, strlen(v) + 1);
	char *p = buf;
	while (*p != '\0') {
		char *comma = strchr(p, ',');
		if (comma != NULL)
			*comma = '\0';
		uint64_t n;
		if (o->n_sizes >= SIZES_MAX ||
		    !util_parse_u64(p, 1, UINT64_C(1) << 40, &n) ||
		    (o->n_sizes > 0 && n <= o->sizes[o->n_sizes - 1]))
			return false;
		o->sizes[o->n_sizes++] = n;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return o->n_sizes > 0;
}

static void usage(void)
{
	fputs("usage: amp-bench-log [--quick] [--markdown] [--dir DIR]\n"
	      "         [--sizes N,N,...] [--rounds R] [--slice S]\n"
	      "         [--submitters T] [--proofs P] [--env-size BYTES]\n"
	      "  --quick       sizes 1000,10000, 3 rounds, slices <= 500, 200 "
	      "proofs: a smoke test\n"
	      "  --markdown    Markdown tables (bench/log-bench.sh)\n"
	      "  --dir DIR     where the temporary database goes (default "
	      "/var/tmp: a real disk, fsync'd)\n"
	      "  --sizes       leaves at which to measure, ascending "
	      "(default 1000,100000,1000000)\n"
	      "  --rounds R    append rounds per size (default 5)\n"
	      "  --slice S     deliveries per slice (default 2000; at most "
	      "size/R, at least 100)\n"
	      "  --submitters  concurrent submitters (default 32)\n"
	      "  --proofs P    proofs of each kind per size (default 1000)\n"
	      "  --env-size    envelope bytes in the windows (default 1024)\n",
	      stderr);
	exit(2);
}

static void parse(int argc, char **argv, opts *o)
{
	*o = (opts){ .dir = "/var/tmp", .sizes = { 1000, 100000, 1000000 },
		     .n_sizes = 3, .rounds = 5, .slice = 2000, .submitters = 32,
		     .proofs = 1000, .env_size = 1024 };
	bool rounds = false, slice = false, proofs = false, sizes = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t x;
		if (strcmp(a, "--quick") == 0) {
			o->quick = true;
		} else if (strcmp(a, "--markdown") == 0) {
			o->markdown = true;
		} else if (strcmp(a, "--dir") == 0 && v != NULL) {
			o->dir = v;
			i++;
		} else if (strcmp(a, "--sizes") == 0 && parse_sizes(v, o)) {
			sizes = true;
			i++;
		} else if (strcmp(a, "--rounds") == 0 && v != NULL &&
			   util_parse_u64(v, 1, 100, &x)) {
			o->rounds = (unsigned)x;
			rounds = true;
			i++;
		} else if (strcmp(a, "--slice") == 0 && v != NULL &&
			   util_parse_u64(v, 1, 1000000, &x)) {
			o->slice = (unsigned)x;
			slice = true;
			i++;
		} else if (strcmp(a, "--submitters") == 0 && v != NULL &&
			   util_parse_u64(v, 1, 1024, &x)) {
			o->submitters = (unsigned)x;
			i++;
		} else if (strcmp(a, "--proofs") == 0 && v != NULL &&
			   util_parse_u64(v, 1, 1000000, &x)) {
			o->proofs = (unsigned)x;
			proofs = true;
			i++;
		} else if (strcmp(a, "--env-size") == 0 && v != NULL &&
			   util_parse_u64(v, 16, AMP_ENVELOPE_MAX, &x)) {
			o->env_size = (size_t)x;
			i++;
		} else {
			usage();
		}
	}
	if (o->quick) {
		if (!sizes) {
			o->sizes[0] = 1000;
			o->sizes[1] = 10000;
			o->n_sizes = 2;
		}
		if (!rounds)
			o->rounds = 3;
		if (!slice)
			o->slice = 500;
		if (!proofs)
			o->proofs = 200;
	}
}

int main(int argc, char **argv)
{
	opts o;
	parse(argc, argv, &o);
	if (sodium_init() < 0)
		die("cannot initialise libsodium");
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s/amp-bench-log.XXXXXX", o.dir) >=
		    (int)sizeof(dir) ||
	    mkdtemp(dir) == NULL)
		die("cannot create the temporary directory (see --dir)");
	char path[4200];
	snprintf(path, sizeof(path), "%s/node.db", dir);
	uint8_t key[STORE_KEY_BYTES];
	randombytes_buf(key, sizeof(key));
	store *s;
	const char *err = NULL;
	store_opts so = { .path = path, .key = key };
	if (store_open(&so, &s, &err) != 0) {
		fprintf(stderr, "amp-bench-log: store_open: %s\n", err);
		return 1;
	}
	if (!o.markdown)
		printf("# amp-bench-log: %s, %u submitters, %u rounds, %u "
		       "proofs%s\n", path, o.submitters, o.rounds, o.proofs,
		       o.quick ? " (--quick: smoke test only)" : "");
	row rows[SIZES_MAX];
	memset(rows, 0, sizeof(rows));
	double t_start = now_s();
	for (size_t i = 0; i < o.n_sizes; i++) {
		row *r = &rows[i];
		r->size = o.sizes[i];
		double t0 = now_s();
		fill(s, r->size);
		r->fill_s = now_s() - t0;
		measure_proofs(s, &o, r->size, r);
		measure_appends(s, &o, r->size, r);
		if (!o.markdown)
			print_rows(&o, r, 1);
		fflush(stdout);
	}
	if (o.markdown)
		print_rows(&o, rows, o.n_sizes);
	store_close(&s);
	char *files[] = { "node.db", "node.db-wal", "node.db-shm" };
	for (size_t i = 0; i < 3; i++) {
		char f[4300];
		snprintf(f, sizeof(f), "%s/%s", dir, files[i]);
		unlink(f);
	}
	rmdir(dir);
	if (!o.markdown)
		printf("# total %.1f s\n", now_s() - t_start);
	return 0;
}
