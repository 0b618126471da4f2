/*
 * fuzz-logfile.c — libFuzzer target for the transparency log's client
 * files (src/cli/logfile.c; issue 8): the seen head, the monitor state
 * and the receipt, and the offline check of a receipt.
 *
 * Input: byte 0 picks the format (0 seen head, 1 monitor state,
 * 2 receipt; modulo 3), the rest is the file.
 *
 * Properties (abort() on violation):
 *  - a refusal has a reason and leaves the output as it was;
 *  - what parses is within its LOGFILE_*_MAX and holds what the parser
 *    promises (canonical DIDs; the monitor's frontier one hash per set bit
 *    of size, an existing identity's subject the DID's hash and its last
 *    change below size, an absent one all zero; a receipt's leaf of
 *    1..512 bytes, at most 65 path hashes, numbers below 2^63);
 *  - format(parse(x)) succeeds within the limit, parses to the same value,
 *    and formats again to the same bytes; the formatted text cut short
 *    (at every line end of the line formats, and a few places in a
 *    receipt) is refused;
 *  - the receipt check never crashes on what parses; it gives the same
 *    answer with no key and with the file's own key, refuses any other
 *    key, is deterministic, and when it passes the leaf is a receipt of
 *    the digest naming the log's node at an index below size.
 */
#include "fuzz-common.h"

#include "logfile.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define T "fuzz-logfile"

static bool is_did(const char *s)
{
	size_t n = strnlen(s, AMP_DID_MAX + 1);
	return n <= AMP_DID_MAX &&
	       amp_did_parse(s, n, &(amp_did){ 0 }, NULL) == AMP_OK;
}

static bool is_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static bool head_eq(const amp_log_head *a, const amp_log_head *b)
{
	return strcmp(a->log, b->log) == 0 && a->size == b->size &&
	       memcmp(a->root, b->root, 32) == 0 && a->time == b->time &&
	       memcmp(a->sig, b->sig, 64) == 0;
}

static bool mon_eq(const logfile_monitor *a, const logfile_monitor *b)
{
	const amp_log_identity *x = &a->id, *y = &b->id;
	if (strcmp(a->log, b->log) != 0 || strcmp(a->did, b->did) != 0 ||
	    a->f.size != b->f.size || x->exists != y->exists ||
	    x->revoked != y->revoked || x->version != y->version ||
	    memcmp(x->subject, y->subject, 32) != 0 ||
	    memcmp(x->sign_pk, y->sign_pk, 32) != 0 ||
	    memcmp(x->enc_pk, y->enc_pk, 32) != 0 || x->since != y->since ||
	    a->changed != b->changed || a->index != b->index)
		return false;
	/* unset levels: zero after a parse */
	return memcmp(a->f.hash, b->f.hash, sizeof(a->f.hash)) == 0;
}

static bool receipt_eq(const logfile_receipt *a, const logfile_receipt *b)
{
	return memcmp(a->node_key, b->node_key, 32) == 0 &&
	       memcmp(a->digest, b->digest, 32) == 0 &&
	       head_eq(&a->head, &b->head) && a->index == b->index &&
	       a->leaf_len == b->leaf_len &&
	       memcmp(a->leaf, b->leaf, a->leaf_len) == 0 &&
	       a->n_path == b->n_path &&
	       memcmp(a->path, b->path, a->n_path * 32) == 0;
}

/* ---------------------------------------------------------------- head */

static void fuzz_head(const char *text, size_t len)
{
	amp_log_head h, h2, sentinel;
	char out[LOGFILE_HEAD_MAX], again[LOGFILE_HEAD_MAX];
	const char *why = NULL;
	size_t n = 0, n2 = 0;
	memset(&sentinel, 0xa5, sizeof(sentinel));
	h = sentinel;
	if (logfile_head_parse(text, len, &h, &why) != 0) {
		if (why == NULL)
			fuzz_fail(T, "a head refused without a reason");
		if (memcmp(&h, &sentinel, sizeof(h)) != 0)
			fuzz_fail(T, "a refused head wrote its output");
		return;
	}
	if (len > LOGFILE_HEAD_MAX || !is_did(h.log))
		fuzz_fail(T, "an impossible head parsed");
	if (logfile_head_format(&h, out, sizeof(out), &n) != 0)
		fuzz_fail(T, "a parsed head does not format");
	if (n >= sizeof(out) || out[n] != '\0')
		fuzz_fail(T, "a formatted head is not NUL-terminated");
	if (logfile_head_parse(out, n, &h2, &why) != 0 || !head_eq(&h, &h2))
		fuzz_fail(T, "parse(format(head)) differs");
	if (logfile_head_format(&h2, again, sizeof(again), &n2) != 0 ||
	    n2 != n || memcmp(out, again, n) != 0)
		fuzz_fail(T, "a head formats two ways");
	if (logfile_head_format(&h, again, n, &n2) == 0)
		fuzz_fail(T, "a head formatted into too small a buffer");
	for (size_t cut = 0; cut < n; cut++)
		if (logfile_head_parse(out, cut, &h2, &why) == 0)
			fuzz_fail(T, "a cut head parsed");
}

/* ------------------------------------------------------------- monitor */

static void fuzz_monitor(const char *text, size_t len)
{
	logfile_monitor *m = malloc(sizeof(*m)), *m2 = malloc(sizeof(*m2));
	logfile_monitor *sentinel = malloc(sizeof(*sentinel));
	char *out = malloc(LOGFILE_MONITOR_MAX);
	char *again = malloc(LOGFILE_MONITOR_MAX);
	const char *why = NULL;
	size_t n = 0, n2 = 0;
	if (m == NULL || m2 == NULL || sentinel == NULL || out == NULL ||
	    again == NULL)
		fuzz_fail(T, "out of memory");
	memset(sentinel, 0xa5, sizeof(*sentinel));
	*m = *sentinel;
	if (logfile_monitor_parse(text, len, m, &why) != 0) {
		if (why == NULL)
			fuzz_fail(T, "a monitor state refused without a reason");
		if (memcmp(m, sentinel, sizeof(*m)) != 0)
			fuzz_fail(T, "a refused monitor state wrote its output");
		goto out;
	}
	const amp_log_identity *id = &m->id;
	if (len > LOGFILE_MONITOR_MAX || !is_did(m->log) || !is_did(m->did) ||
	    m->f.size > INT64_MAX || (id->revoked && !id->exists))
		fuzz_fail(T, "an impossible monitor state parsed");
	for (unsigned l = 0; l < AMP_LOG_LEVELS; l++)
		if (!(m->f.size >> l & 1) && !is_zero(m->f.hash[l], 32))
			fuzz_fail(T, "a frontier hash of an unset level");
	if (id->exists) {
		uint8_t subject[32];
		amp_log_did_hash(m->did, subject);
		if (memcmp(subject, id->subject, 32) != 0 ||
		    m->index >= m->f.size)
			fuzz_fail(T, "an inconsistent identity parsed");
	} else if (id->version != 0 || !is_zero(id->subject, 32) ||
		   !is_zero(id->sign_pk, 32) || !is_zero(id->enc_pk, 32) ||
		   id->since != 0 || m->changed != 0 || m->index != 0) {
		fuzz_fail(T, "an absent identity with keys parsed");
	}
	if (logfile_monitor_format(m, out, LOGFILE_MONITOR_MAX, &n) != 0)
		fuzz_fail(T, "a parsed monitor state does not format");
	if (logfile_monitor_parse(out, n, m2, &why) != 0 || !mon_eq(m, m2))
		fuzz_fail(T, "parse(format(monitor state)) differs");
	if (logfile_monitor_format(m2, again, LOGFILE_MONITOR_MAX, &n2) != 0 ||
	    n2 != n || memcmp(out, again, n) != 0)
		fuzz_fail(T, "a monitor state formats two ways");
	/* cut at each line end but the last, and inside the last line */
	for (size_t cut = 0; cut + 1 < n; cut++)
		if ((out[cut] == '\n' || cut + 2 == n) &&
		    logfile_monitor_parse(out, cut + 1, m2, &why) == 0)
			fuzz_fail(T, "a cut monitor state parsed");
out:
	free(m);
	free(m2);
	free(sentinel);
	free(out);
	free(again);
}

/* ------------------------------------------------------------- receipt */

static void fuzz_check(const logfile_receipt *r)
{
	amp_log_leaf l, l2;
	uint8_t other[32];
	const char *why = NULL, *why2 = NULL, *detail = NULL;
	int k = logfile_receipt_check(r, NULL, &l, &why, &detail);
	if (k != 0 && why == NULL)
		fuzz_fail(T, "a receipt check failed without a reason");
	if (k == 0 && detail != NULL)
		fuzz_fail(T, "a receipt check passed with a detail");
	int k2 = logfile_receipt_check(r, r->node_key, &l2, &why2, NULL);
	if (k2 != k || (k != 0 && strcmp(why, why2) != 0))
		fuzz_fail(T, "the file's own key changes the check");
	memcpy(other, r->node_key, 32);
	other[0] ^= 0x80;
	if (logfile_receipt_check(r, other, NULL, &why2, NULL) == 0 ||
	    strcmp(why2, "it carries another node key than the one given") != 0)
		fuzz_fail(T, "another key was not refused");
	if (k != 0)
		return;
	if (l.type != l2.type || l.time != l2.time ||
	    memcmp(l.subject, l2.subject, 32) != 0 ||
	    strcmp(l.node, l2.node) != 0)
		fuzz_fail(T, "the check is not deterministic");
	if (l.type != AMP_LOG_RECEIPT || memcmp(l.subject, r->digest, 32) != 0 ||
	    strcmp(l.node, r->head.log) != 0 || r->index >= r->head.size)
		fuzz_fail(T, "a receipt checked that proves something else");
}

static void fuzz_receipt(const char *text, size_t len)
{
	logfile_receipt *r = malloc(sizeof(*r)), *r2 = malloc(sizeof(*r2));
	logfile_receipt *sentinel = malloc(sizeof(*sentinel));
	char *out = malloc(LOGFILE_RECEIPT_MAX);
	char *again = malloc(LOGFILE_RECEIPT_MAX);
	const char *why = NULL;
	size_t n = 0, n2 = 0;
	if (r == NULL || r2 == NULL || sentinel == NULL || out == NULL ||
	    again == NULL)
		fuzz_fail(T, "out of memory");
	memset(sentinel, 0xa5, sizeof(*sentinel));
	*r = *sentinel;
	if (logfile_receipt_parse(text, len, r, &why) != 0) {
		if (why == NULL)
			fuzz_fail(T, "a receipt refused without a reason");
		if (memcmp(r, sentinel, sizeof(*r)) != 0)
			fuzz_fail(T, "a refused receipt wrote its output");
		goto out;
	}
	if (len > LOGFILE_RECEIPT_MAX || !is_did(r->head.log) ||
	    r->leaf_len == 0 || r->leaf_len > AMP_LOG_LEAF_MAX ||
	    r->n_path > AMP_LOG_PROOF_MAX || r->head.size > INT64_MAX ||
	    r->head.time > INT64_MAX || r->index > INT64_MAX)
		fuzz_fail(T, "an impossible receipt parsed");
	fuzz_check(r);
	if (logfile_receipt_format(r, out, LOGFILE_RECEIPT_MAX, &n) != 0)
		fuzz_fail(T, "a parsed receipt does not format");
	if (out[n] != '\0' || out[n - 1] != '\n')
		fuzz_fail(T, "a formatted receipt does not end in LF, NUL");
	if (logfile_receipt_parse(out, n, r2, &why) != 0 || !receipt_eq(r, r2))
		fuzz_fail(T, "parse(format(receipt)) differs");
	if (logfile_receipt_format(r2, again, LOGFILE_RECEIPT_MAX, &n2) != 0 ||
	    n2 != n || memcmp(out, again, n) != 0)
		fuzz_fail(T, "a receipt formats two ways");
	size_t cuts[] = { 0, 1, n / 2, n - 2 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		if (logfile_receipt_parse(out, cuts[i], r2, &why) == 0)
			fuzz_fail(T, "a cut receipt parsed");
out:
	free(r);
	free(r2);
	free(sentinel);
	free(out);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size == 0)
		return 0;
	const char *text = (const char *)data + 1;
	switch (data[0] % 3) {
	case 0: fuzz_head(text, size - 1); break;
	case 1: fuzz_monitor(text, size - 1); break;
	default: fuzz_receipt(text, size - 1); break;
	}
	return 0;
}
