/*
 * bsend.h — the send path of `amp bridge` and `amp send` (issue 6): a
 * message and its recipients in, one sealed envelope delivered to the home
 * node, one result per recipient out.  Blocking (nclient): run it on a
 * worker thread, one nclient per thread.
 *
 * Recipients (what the mail client typed, or what `amp send` was given):
 *  - a DID: sealed to it (its keys: --doc, HOME/known, else a lookup
 *    through the node, remembered: cli_resolve_via);
 *  - local@domain: sealed to did:aftersmtp:domain:local when that DID is
 *    known or the registry knows it (nclient_lookup through the home
 *    node); otherwise a legacy address: named in one AMP-Egress-To field
 *    added at the top and reached through our node's gateway
 *    did:aftersmtp:<our domain>:gateway (PROTOCOL.md §10.9).
 * Bcc fields (and any AMP- field the client wrote) are removed before
 * sealing: the recipients are the envelope's.  The message is sealed once
 * for the AMP recipients and once, with the AMP-Egress-To field, for the
 * gateway (so an AMP recipient never sees the legacy recipients' list,
 * Bcc'd ones included); each envelope is delivered on c.
 *
 * Lives in the cli layer's terms (cli_env: HOME, --doc files); the bridge
 * links it into the `amp` executable.
 */
#ifndef AMP_BSEND_H
#define AMP_BSEND_H

#include "amp/amp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli_env;
struct nclient;

#define BSEND_TEXT_MAX 256u

/* One recipient's outcome. */
typedef struct bsend_rcpt {
	char did[AMP_DID_MAX + 1]; /* sealed to: its DID, or the gateway's */
	bool legacy;               /* sent through the gateway */
	bool ok;                   /* the home node accepted it */
	bool temporary;            /* not ok, and worth retrying */
	char text[BSEND_TEXT_MAX]; /* "" when ok, else why */
} bsend_rcpt;

typedef struct bsend_opts {
	uint64_t expires;          /* unix time, 0: none */
	amp_lane lane;
	const char *content_type;  /* NULL: message/rfc822 */
} bsend_opts;

/* Send msg (an RFC 5322 message, CRLF or LF lines) from id to rcpts[0..n)
 * (addresses or DIDs, 1..AMP_RECIPIENTS_MAX).  out[0..n) (caller's array)
 * gets each recipient's outcome, in order; a recipient whose DID was
 * resolved once (twice given, or two legacy addresses: one gateway copy)
 * is sealed once.  Returns 0 when every recipient was accepted, 1 when
 * some were not (see out), -1 when nothing was sent (*error_r; every
 * out[i] says the same). */
int bsend_message(struct cli_env *env, struct nclient *c,
		  const amp_identity *id, const bsend_opts *o,
		  const char *const *rcpts, size_t n, const uint8_t *msg,
		  size_t len, bsend_rcpt *out, const char **error_r)
	__attribute__((warn_unused_result));

/* What a submission client is told, from out[0..n): *temporary_r set when
 * every failure was temporary; text: "addr: why; addr: why" (cut to
 * size).  Returns true when all were accepted. */
bool bsend_summary(const char *const *rcpts, const bsend_rcpt *out, size_t n,
		   bool *temporary_r, char *text, size_t size);

/* ---- the pieces `amp send` shares (cmd-node.c) ---- */

/* A new message: "AMP-Egress-To: a, b\r\n" then body.  *out_r malloc'ed
 * (the caller wipes and frees it).  0, or -1 (too large, out of memory). */
int bsend_egress_wrap(const char *const *addrs, size_t n,
		      const uint8_t *body, size_t len, uint8_t **out_r,
		      size_t *out_len_r) __attribute__((warn_unused_result));

/* did:aftersmtp:<domain of id>:gateway, resolved. 0 or -1 (reported). */
int bsend_gateway(struct cli_env *env, struct nclient *c,
		  const amp_identity *id, amp_public_identity *pub_r)
	__attribute__((warn_unused_result));

/* Seal body to rcpts[0..n) (distinct) and deliver it on c.  *resp_r as
 * nclient_deliver (set whenever the node answered with per-recipient
 * results); *env_r and *env_len_r: the envelope (amp_free).  0 delivered (see
 * the results), -1 with *error_r and *status_r (the node's status, -1
 * when it did not answer: sealing or the connection failed). */
struct Amp__V1__Response;
int bsend_seal_deliver(const amp_identity *id, struct nclient *c,
		       const amp_public_identity *rcpts, size_t n,
		       const bsend_opts *o, const uint8_t *body, size_t len,
		       struct Amp__V1__Response **resp_r, uint8_t **env_r,
		       size_t *env_len_r, int *status_r, const char **error_r)
	__attribute__((warn_unused_result));

#endif
