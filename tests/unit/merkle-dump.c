/*
 * merkle-dump.c — a test tool (not a test): builds the log of the leaves
 * L_i = "leaf-" + decimal i, i = 0 .. N-1, with the frontier of
 * src/lib/amp-log.c, keeping every subtree it emits, and prints every root
 * and every proof of every smaller tree for an independent checker
 * (tests/e2e/test_log_rfc9162.py with tests/e2e/rfc9162.py).
 *
 *   merkle-dump [N]        N: 1 .. 4096, default 300
 *
 * Output, one item per line, hashes in lowercase hex, fields separated by
 * one space:
 *   size N
 *   leaf I HASH            leaf_hash(L_I), I = 0 .. N-1
 *   root S HASH            MTH of the first S leaves, S = 0 .. N
 *   incl I S H1 ... Hk     PATH(I, D[S]), every 0 <= I < S <= N
 *   cons M S H1 ... Hk     PROOF(M, D[S]), every 1 <= M <= S <= N
 *   end
 * Exit status 0, or 1 with a message on stderr (bad N, a library error).
 */
#include "amp/amp-log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_MAX 4096u
#define DUMP_LEVELS 13u /* 2^12 = 4096 */

typedef struct dump_tree {
	uint8_t (*node[DUMP_LEVELS])[32]; /* node[l][i]: subtree (l, i) */
} dump_tree;

static int dump_emit(void *ctx, unsigned level, uint64_t index,
		     const uint8_t hash[32])
{
	dump_tree *t = ctx;
	if (level >= DUMP_LEVELS || index >= (DUMP_MAX >> level))
		return -1;
	memcpy(t->node[level][index], hash, 32);
	return 0;
}

static int dump_node(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
	dump_tree *t = ctx;
	if (level >= DUMP_LEVELS || index >= (DUMP_MAX >> level))
		return -1;
	memcpy(out, t->node[level][index], 32);
	return 0;
}

static void put_hash(const uint8_t h[32])
{
	static const char hx[] = "0123456789abcdef";
	char s[66];
	s[0] = ' ';
	for (int i = 0; i < 32; i++) {
		s[1 + 2 * i] = hx[h[i] >> 4];
		s[2 + 2 * i] = hx[h[i] & 15];
	}
	s[65] = '\0';
	fputs(s, stdout);
}

static int fail(const char *what, amp_err e)
{
	fprintf(stderr, "merkle-dump: %s: %s\n", what, amp_err_name(e));
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t n = 300;
	dump_tree t;
	amp_log_frontier f;
	uint8_t h[32], path[AMP_LOG_PROOF_MAX][32];
	size_t len;
	amp_err e;

	if (argc > 2) {
		fprintf(stderr, "usage: merkle-dump [N]\n");
		return 1;
	}
	if (argc == 2) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(argv[1], &end, 10);
		if (errno != 0 || end == argv[1] || *end != '\0' ||
		    argv[1][0] == '-' || v < 1 || v > DUMP_MAX) {
			fprintf(stderr, "merkle-dump: N must be 1 .. %u\n",
				DUMP_MAX);
			return 1;
		}
		n = v;
	}
	if (amp_init() != AMP_OK)
		return fail("amp_init", AMP_E_INVALID_ARG);
	for (unsigned l = 0; l < DUMP_LEVELS; l++) {
		t.node[l] = calloc(DUMP_MAX >> l, 32);
		if (t.node[l] == NULL) {
			fprintf(stderr, "merkle-dump: out of memory\n");
			return 1;
		}
	}

	printf("size %llu\n", (unsigned long long)n);
	amp_log_frontier_init(&f);
	amp_log_frontier_root(&f, h);
	printf("root 0");
	put_hash(h);
	putchar('\n');
	for (uint64_t i = 0; i < n; i++) {
		char leaf[32];
		int ll = snprintf(leaf, sizeof(leaf), "leaf-%llu",
				  (unsigned long long)i);
		if (ll < 0 || (size_t)ll >= sizeof(leaf))
			return fail("leaf name", AMP_E_TOO_LARGE);
		amp_log_leaf_hash((const uint8_t *)leaf, (size_t)ll, h);
		printf("leaf %llu", (unsigned long long)i);
		put_hash(h);
		putchar('\n');
		e = amp_log_frontier_push(&f, h, dump_emit, &t);
		if (e != AMP_OK)
			return fail("amp_log_frontier_push", e);
		amp_log_frontier_root(&f, h);
		printf("root %llu", (unsigned long long)(i + 1));
		put_hash(h);
		putchar('\n');
	}
	for (uint64_t s = 1; s <= n; s++) {
		for (uint64_t i = 0; i < s; i++) {
			e = amp_log_inclusion_proof(i, s, dump_node, &t, path,
						    &len);
			if (e != AMP_OK)
				return fail("amp_log_inclusion_proof", e);
			printf("incl %llu %llu", (unsigned long long)i,
			       (unsigned long long)s);
			for (size_t k = 0; k < len; k++)
				put_hash(path[k]);
			putchar('\n');
		}
		for (uint64_t m = 1; m <= s; m++) {
			e = amp_log_consistency_proof(m, s, dump_node, &t, path,
						      &len);
			if (e != AMP_OK)
				return fail("amp_log_consistency_proof", e);
			printf("cons %llu %llu", (unsigned long long)m,
			       (unsigned long long)s);
			for (size_t k = 0; k < len; k++)
				put_hash(path[k]);
			putchar('\n');
		}
	}
	printf("end\n");
	for (unsigned l = 0; l < DUMP_LEVELS; l++)
		free(t.node[l]);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "merkle-dump: write error\n");
		return 1;
	}
	return 0;
}
