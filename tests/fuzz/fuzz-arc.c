/*
 * fuzz-arc.c — libFuzzer target for src/mime/arc.c: arc_verify_prepare on
 * arbitrary messages, arc_verify_finish with arbitrary key records, and
 * arc_seal on arbitrary messages with a key made here.
 *
 * Input: byte 0 is flags (bit 0: seal the message here first, cv=none
 * when it has no ARC field, else cv=fail; bit 1: seal once more, cv=pass
 * after a pass, else fail; bit 2: answer every key query with the input's
 * key record instead of the target's own; bit 3: every lookup fails;
 * bit 4: seal with the RSA key instead of the Ed25519 one); then the
 * input's key record, a NUL, and the message (no NUL: all message).
 *
 * The target's keys (Ed25519 at fuzz-ed._domainkey.example.org, RSA
 * 2048 at fuzz-rsa._domainkey.example.org; other names have no record)
 * are made at start, so no input holds a signature made with them.  Three
 * fields added on top may push a message over DKIM_VERIFY_MAX_FIELDS:
 * the pass properties hold only when prepare accepted it.
 *
 * Properties:
 *  - prepare refuses only with a reason; a set has at most
 *    ARC_MAX_QUERIES queries, each "..._domainkey....";
 *  - finish gives a reason; NONE exactly when there are no instances;
 *    PASS gives every sealer and AAR; TEMPERROR only when a lookup failed;
 *  - with the target's own key records, nothing passes unless every seal
 *    was made here (PASS means instances == the seals made here), and a
 *    message the target sealed with cv=none (one that had no ARC field,
 *    whose first byte does not continue our last field) passes, and so
 *    does its second seal with cv=pass.
 */
#include "arc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-arc: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

#define ED_Q "fuzz-ed._domainkey.example.org"
#define RSA_Q "fuzz-rsa._domainkey.example.org"

static dkim_key *ed_key, *rsa_key;
static char *ed_txt, *rsa_txt;

static void init(void)
{
	char *pem;
	const char *err;
	if (ed_key != NULL)
		return;
	if (dkim_keygen(DKIM_ED25519, &pem, &ed_txt, &err) < 0 ||
	    dkim_key_load_pem(pem, strlen(pem), &ed_key, &err) < 0)
		abort();
	dkim_pem_free(&pem);
	if (dkim_keygen(DKIM_RSA2048, &pem, &rsa_txt, &err) < 0 ||
	    dkim_key_load_pem(pem, strlen(pem), &rsa_key, &err) < 0)
		abort();
	dkim_pem_free(&pem);
}

typedef struct run {
	const uint8_t *key;
	size_t key_len;
	bool input_key, tempfail;
} run;

/* Verify msg; returns the verdict. */
static arc_cv verify(const run *r, const uint8_t *msg, size_t len,
		     size_t *instances_r, bool *refused_r)
{
	arc_verify_limits lim = {0};
	arc_verify_set *set = NULL;
	arc_verify_result res;
	arc_key_answer ans[ARC_MAX_QUERIES];
	const uint8_t *own[2] = {(const uint8_t *)ed_txt,
				 (const uint8_t *)rsa_txt};
	size_t own_len[2] = {strlen(ed_txt), strlen(rsa_txt)};
	const char *err = NULL;
	arc_cv cv;

	*refused_r = false;
	if (arc_verify_prepare(msg, len, &lim, &set, &err) != 0) {
		CHECK(err != NULL && set == NULL);
		*instances_r = 0;
		*refused_r = true;
		return ARC_CV_FAIL;
	}
	CHECK(set->nq <= ARC_MAX_QUERIES);
	for (size_t q = 0; q < set->nq; q++) {
		CHECK(strstr(set->query[q], "._domainkey.") != NULL);
		if (r->tempfail) {
			ans[q].txt = NULL;
			ans[q].len = NULL;
			ans[q].n = 0;
		} else if (r->input_key) {
			ans[q].txt = &r->key;
			ans[q].len = &r->key_len;
			ans[q].n = r->key != NULL ? 1 : 0;
		} else {
			bool e = strcmp(set->query[q], ED_Q) == 0;
			bool k = strcmp(set->query[q], RSA_Q) == 0;
			ans[q].txt = k ? &own[1] : own;
			ans[q].len = k ? &own_len[1] : own_len;
			ans[q].n = e || k ? 1 : 0;
		}
	}
	arc_verify_finish(set, ans, &res);
	CHECK(res.reason != NULL);
	CHECK(res.instances == set->instances);
	CHECK(res.instances <= ARC_MAX_INSTANCES);
	if (res.cv == ARC_CV_NONE)
		CHECK(res.instances == 0 && set->nq == 0);
	if (res.cv == ARC_CV_PASS)
		for (size_t i = 1; i <= res.instances; i++)
			CHECK(res.sealer[i] != NULL && res.aar[i] != NULL &&
			      strncmp(res.aar[i], "i=", 2) == 0);
	if (res.cv == ARC_CV_TEMPERROR)
		CHECK(r->tempfail);
	cv = res.cv;
	*instances_r = res.instances;
	arc_verify_set_free(&set);
	CHECK(set == NULL);
	return cv;
}

static uint8_t *seal(const uint8_t *msg, size_t len, bool rsa, arc_cv cv,
		     size_t *len_r)
{
	char *fields = NULL;
	const char *err = NULL;
	uint8_t *out;
	if (arc_seal(msg, len, rsa ? rsa_key : ed_key, "example.org",
		     rsa ? "fuzz-rsa" : "fuzz-ed",
		     "mx.example.org; arc=pass", cv, 1, &fields, &err) != 0) {
		CHECK(err != NULL);
		return NULL;
	}
	size_t fl = strlen(fields);
	out = malloc(fl + len + 1);
	if (out == NULL)
		abort();
	memcpy(out, fields, fl);
	memcpy(out + fl, msg, len);
	*len_r = fl + len;
	free(fields);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run r = {0};
	const uint8_t *msg;
	size_t msg_len, inst;
	uint8_t *m1 = NULL, *m2 = NULL;
	size_t m1_len = 0, m2_len = 0, ours = 0;
	bool refused;
	arc_cv cv0, cv;

	if (size < 1)
		return 0;
	init();
	uint8_t flags = data[0];
	data++;
	size--;
	const uint8_t *nul = memchr(data, 0, size);
	if (nul != NULL) {
		r.key = data;
		r.key_len = (size_t)(nul - data);
		msg = nul + 1;
		msg_len = size - r.key_len - 1;
	} else {
		msg = data;
		msg_len = size;
	}
	r.input_key = (flags & 4) != 0;
	r.tempfail = (flags & 8) != 0;
	bool rsa = (flags & 16) != 0;

	/* The input as it is: with our keys nothing of it can pass. */
	cv0 = verify(&r, msg, msg_len, &inst, &refused);
	if (!r.input_key && !r.tempfail)
		CHECK(cv0 != ARC_CV_PASS);
	if (!(flags & 1))
		return 0;

	/* Seal it as a sealer would: none without a chain, else fail. */
	bool clean = cv0 == ARC_CV_NONE;
	bool joins = msg_len == 0 || (msg[0] != ' ' && msg[0] != '\t');
	m1 = seal(msg, msg_len, rsa, clean ? ARC_CV_NONE : ARC_CV_FAIL,
		  &m1_len);
	if (m1 == NULL)
		return 0;
	ours = 1;
	cv = verify(&r, m1, m1_len, &inst, &refused);
	if (!r.input_key && !r.tempfail && !refused) {
		if (cv == ARC_CV_PASS)
			CHECK(inst == ours);
		if (clean && joins)
			CHECK(cv == ARC_CV_PASS);
	}
	if (flags & 2) {
		m2 = seal(m1, m1_len, !rsa,
			  cv == ARC_CV_PASS ? ARC_CV_PASS : ARC_CV_FAIL,
			  &m2_len);
		if (m2 != NULL) {
			ours = 2;
			arc_cv cv2 = verify(&r, m2, m2_len, &inst, &refused);
			if (!r.input_key && !r.tempfail && !refused) {
				if (cv2 == ARC_CV_PASS)
					CHECK(inst == ours);
				if (clean && joins && cv == ARC_CV_PASS)
					CHECK(cv2 == ARC_CV_PASS);
			}
		}
	}
	free(m1);
	free(m2);
	return 0;
}
