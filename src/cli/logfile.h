/*
 * logfile.h — the three small files `amp` keeps for the transparency log
 * (docs/transparency.md "Files on the client", PROTOCOL.md §11), as pure
 * code: a formatter and a strict parser for each, and the offline check
 * of a receipt.  No I/O, no globals, no clock: text in, a result or a
 * refusal with a static reason out.  The commands that read and write
 * the files are cmd-log.c and cli-heads.c.
 *
 * Seen head, HOME/heads/<log DID> (cli-heads.c), five lines in this
 * order, each ending in LF:
 *     log DID \n size N \n root HEX64 \n time N \n sig HEX128 \n
 * Monitor state, HOME/monitor/<DID> (`amp log monitor`): a comment line,
 * then one line per key, each ending in LF:
 *     log DID, did DID, size N (<= 2^63 - 1), exists 0|1, revoked 0|1,
 *     version N (32 bits), subject HEX64, sign_pk HEX64, enc_pk HEX64,
 *     since N, changed N, index N
 * then "frontier L HEX64" for each set bit L of size, lowest first.
 * Receipt (`amp receipt get|verify`), JSON, indented by 2, ending in LF:
 *     {"format": "aftersmtp-receipt-1", "log": DID, "node_key": B64URL,
 *      "digest": HEX64, "head": {"size", "root", "time", "sig"},
 *      "index": N, "leaf": HEX, "path": [HEX64, ...]}
 * The formatters write exactly these bytes (what the commands wrote
 * before this module existed, so every existing file still loads).
 *
 * The parsers refuse: input over its LOGFILE_*_MAX; a NUL byte; in the
 * line formats a line without its LF (so every truncation), a line over
 * LOGFILE_LINE_MAX, a line without "key value", an unknown or repeated
 * key, a missing key; a DID that is not canonical (amp_did_parse: no
 * upper case); hex of another length; a number out of range (decimal,
 * util_parse_u64); in the monitor state a frontier hash missing or extra
 * for a bit of size, revoked without exists, an existing identity whose
 * subject is not the DID's hash or whose last change is not below size,
 * an absent one with any key, time or index set.  A receipt must be one
 * JSON object without duplicate keys (at any depth), with every member
 * above of its type: integers >= 0, a leaf of 1..AMP_LOG_LEAF_MAX bytes,
 * at most AMP_LOG_PROOF_MAX path hashes, the canonical base64url of a
 * 32-byte key.
 * Lenient, as the commands always were: hex digits in either case; a
 * number with leading zeros; the seen-head lines in any order; comment
 * ('#') and empty lines in the monitor state, and its lines in any
 * order; members of a receipt this version does not know, and any JSON
 * spacing (a receipt written by another tool, or without its final LF).
 *
 * Every function here is thread-safe and does not block.
 */
#ifndef AMP_CLI_LOGFILE_H
#define AMP_CLI_LOGFILE_H

#include "amp/amp-log.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGFILE_HEAD_MAX 1024u               /* bytes of a seen-head file */
#define LOGFILE_MONITOR_MAX 8192u            /* bytes of a monitor state */
#define LOGFILE_RECEIPT_MAX (64u * 1024u)    /* bytes of a receipt file */
#define LOGFILE_LINE_MAX 512u                /* bytes of a line, with LF */
#define LOGFILE_RECEIPT_FORMAT "aftersmtp-receipt-1"

/* ------------------------------------------------------------ seen head */

/* The text of h into out[cap], NUL-terminated: 0 and its length in
 * *len_r (< cap), or -1 when h->log is not a canonical DID or cap is too
 * small (LOGFILE_HEAD_MAX always fits). */
int logfile_head_format(const amp_log_head *h, char *out, size_t cap,
			size_t *len_r) __attribute__((warn_unused_result));
/* Parse text[0..len): 0 and *h_r, or -1 with *error_r a static sentence
 * and *h_r untouched.  The caller compares h_r->log with the log it
 * expects. */
int logfile_head_parse(const char *text, size_t len, amp_log_head *h_r,
		       const char **error_r) __attribute__((warn_unused_result));

/* -------------------------------------------------------- monitor state */

/* What `amp log monitor DID` saw in its last round. */
typedef struct logfile_monitor {
	char log[AMP_DID_MAX + 1];      /* the log scanned (its node's DID) */
	char did[AMP_DID_MAX + 1];      /* the identity watched */
	amp_log_frontier f;             /* f.size: leaves scanned; hashes of
					   the set bits of f.size */
	amp_log_identity id;            /* the DID's key state */
	uint64_t changed, index;        /* time, log index of its last change */
} logfile_monitor;

/* As logfile_head_format; -1 also for a state the parser would refuse
 * (LOGFILE_MONITOR_MAX always fits a valid one). */
int logfile_monitor_format(const logfile_monitor *m, char *out, size_t cap,
			   size_t *len_r) __attribute__((warn_unused_result));
/* As logfile_head_parse.  The hashes of the frontier's unset bits are
 * zero.  The caller compares m_r->did with the DID it monitors. */
int logfile_monitor_parse(const char *text, size_t len, logfile_monitor *m_r,
			  const char **error_r)
	__attribute__((warn_unused_result));

/* -------------------------------------------------------------- receipt */

/* A self-contained proof that a node accepted an envelope (§11.2): its
 * signed tree head, the receipt leaf and the leaf's inclusion proof. */
typedef struct logfile_receipt {
	uint8_t node_key[32];           /* the log node's Ed25519 key */
	uint8_t digest[32];             /* SHA-256 of the envelope */
	amp_log_head head;              /* head.log: the log's node DID */
	uint64_t index;                 /* the leaf's index */
	uint8_t leaf[AMP_LOG_LEAF_MAX];
	size_t leaf_len;                /* 1..AMP_LOG_LEAF_MAX */
	uint8_t path[AMP_LOG_PROOF_MAX][32];
	size_t n_path;                  /* 0..AMP_LOG_PROOF_MAX */
} logfile_receipt;

/* The file's text into out[cap], as logfile_head_format; -1 also when a
 * field is out of range (a number over 2^63 - 1, a DID not canonical, a
 * leaf or path too long) or out of memory.  LOGFILE_RECEIPT_MAX always
 * fits. */
int logfile_receipt_format(const logfile_receipt *r, char *out, size_t cap,
			   size_t *len_r) __attribute__((warn_unused_result));
/* As logfile_head_parse (text need not be NUL-terminated).  The parse
 * says nothing of the signature, the leaf or the proof: see
 * logfile_receipt_check. */
int logfile_receipt_parse(const char *text, size_t len, logfile_receipt *r_r,
			  const char **error_r)
	__attribute__((warn_unused_result));
/* The check `amp receipt verify` makes, offline: key (NULL: none given)
 * equals the file's node key; the head's signature verifies with it; the
 * leaf decodes strictly as a receipt of r->digest naming the log's node;
 * index < size and the inclusion proof leads to the signed root.
 * 0 and *leaf_r (may be NULL) the decoded leaf, or -1 with *error_r a
 * static sentence and *detail_r (may be NULL; set to NULL when there is
 * none) amp_log_leaf_decode's reason. */
int logfile_receipt_check(const logfile_receipt *r, const uint8_t *key,
			  amp_log_leaf *leaf_r, const char **error_r,
			  const char **detail_r)
	__attribute__((warn_unused_result));

/* ------------------------------------------------- JSON building blocks
 * Shared with the --json output of `amp log`.  Each returns a new
 * reference, or NULL (a value out of range, out of memory). */

/* n <= AMP_LOG_LEAF_MAX bytes as lower-case hex. */
json_t *logfile_json_hex(const uint8_t *b, size_t n);
/* v as a JSON integer; NULL over INT64_MAX (JSON has no uint64). */
json_t *logfile_json_u64(uint64_t v);
/* {log, size, root, time, sig} (log only when with_log): the head
 * dictionary of tests/e2e/rfc9162.py. */
json_t *logfile_json_head(const amp_log_head *h, bool with_log);
/* [HEX64, ...] */
json_t *logfile_json_path(const uint8_t (*path)[32], size_t n);

#endif
