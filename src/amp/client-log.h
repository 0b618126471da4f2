/*
 * client-log.h — the transparency log's operations (PROTOCOL.md §11.4) for
 * clients: the `amp` command and the node's witness thread (tlog.c).
 * Every answer is checked before it is returned: a head's signature with
 * the node key of the connection's hello (which the caller pinned), its
 * log name, a leaf's encoding, an inclusion proof against its head, a
 * consistency proof between a head seen before and a new one.  So a
 * caller that gets 0 holds verified data.
 */
#ifndef AMP_CLIENT_LOG_H
#define AMP_CLIENT_LOG_H

#include "client.h"

#include "amp/amp-log.h"

/* -2: the node proved itself inconsistent (a signed head contradicts a
 * head seen before); the evidence is in the result. */
#define NLOG_INCONSISTENT (-2)

/* A LogHead message into h (no cosignatures): -1 when a field is
 * malformed. */
int nlog_head_from_pb(const Amp__V1__LogHead *m, amp_log_head *h)
	__attribute__((warn_unused_result));
/* m points into h. */
void nlog_head_to_pb(const amp_log_head *h, Amp__V1__LogHead *m);

/* The latest head, its signature checked.  *cosigs_r (may be NULL): the
 * response, whose log_head->cosignatures the caller may check (free with
 * amp__v1__response__free_unpacked). */
int nlog_head(nclient *c, amp_log_head *h_r, Amp__V1__Response **resp_r,
	      int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

typedef struct nlog_proved {
	amp_log_head head;
	uint64_t index;
	uint8_t leaf[AMP_LOG_LEAF_MAX];
	size_t leaf_len;
	amp_log_leaf l;                     /* decoded */
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	size_t n_path;
} nlog_proved;

/* Check a LogProof message against a verified head into p (p->head is
 * set to *h).  0, or -1 with *error_r. */
int nlog_proof_check(const Amp__V1__LogProof *m, const amp_log_head *h,
		     nlog_proved *p, const char **error_r)
	__attribute__((warn_unused_result));

/* log_proof by subject (32 bytes) when subject != NULL, else by index,
 * against the head of tree_size (0: the latest); all checked.  log_node:
 * NULL for the log of the node we are connected to; another node (its
 * DID and key): our node asks it for us (we must be authenticated as its
 * user) and the head must be that node's, signed by its key. */
int nlog_proof(nclient *c, const amp_public_identity *log_node,
	       uint64_t index, const uint8_t *subject, uint64_t tree_size,
	       nlog_proved *p_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

/* A head `had` seen before (verified) and the node's head of size
 * `second` (0: the latest): fetch the consistency proof and check it.
 * 0 and *new_r when consistent; NLOG_INCONSISTENT with *new_r the
 * contradicting signed head; -1 when the check could not be made. */
int nlog_consistent(nclient *c, const amp_log_head *had, uint64_t second,
		    amp_log_head *new_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

/* log_consistency between the node's signed heads of sizes first and
 * second (0: the latest): both heads checked, the proof (into path, *n_r
 * hashes) verified between their roots.  0; NLOG_INCONSISTENT with both
 * heads when the proof fails; -1 when it could not be checked. */
int nlog_consistency(nclient *c, uint64_t first, uint64_t second,
		     amp_log_head *h1, amp_log_head *h2, uint8_t path[][32],
		     size_t *n_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

/* log_entries: *resp_r->log_entries (unchecked bytes: decode them). */
int nlog_entries(nclient *c, uint64_t start, uint32_t count,
		 Amp__V1__Response **resp_r, int *status_r,
		 const char **error_r) __attribute__((warn_unused_result));

/* Send a cosignature of h (a head of the node we are connected to) by
 * witness (our node DID; the connection must be authenticated as it). */
int nlog_cosign(nclient *c, const amp_log_head *h, const char *witness,
		uint64_t cotime, const uint8_t sig[64], int *status_r,
		const char **error_r) __attribute__((warn_unused_result));

/* rotate from the identity `old` (version v-1) to `nu` (version v, same
 * DID): both sign the §11.2 key statement. */
int nlog_rotate(nclient *c, const amp_identity *old, const amp_identity *nu,
		uint32_t version, uint64_t *index_r, int *status_r,
		const char **error_r) __attribute__((warn_unused_result));
int nlog_revoke(nclient *c, const amp_identity *id, uint32_t version,
		uint64_t *index_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

/* lookup with history: the document and the DID's key history from the
 * log of log_node (the DID's home node; NULL: the node we are connected
 * to, for its own users; another: our node passes that node's answer
 * through, §11.4), every leaf's proof checked against the head, which
 * must be log_node's and signed by its key, the history folded
 * with amp_log_identity_apply (AMP-R-060) into *st_r, and the document's
 * keys equal to the history's current keys.  *doc_r malloc'ed; *proofs_r
 * (may be NULL) a malloc'ed array of *n_r checked proofs. */
int nlog_lookup_history(nclient *c, const char *did,
			const amp_public_identity *log_node, char **doc_r,
			amp_log_identity *st_r, nlog_proved **proofs_r,
			size_t *n_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

#endif
