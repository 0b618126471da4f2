/*
 * gateway.h — the node's gateway identity (did:aftersmtp:<domain>:gateway,
 * PROTOCOL.md §10.9): AMP users seal mail for legacy addresses to it; the
 * node opens it here, in memory, turns it into the message that leaves
 * over SMTP (src/mime/egress.c: AMP-Egress-To recipients, AMP-* and Bcc
 * removed, DIDs rewritten through canonical_maps), adds the gateway's
 * AMP-DID-Signature naming the verified sender DID (src/mime/didsig.h,
 * PROTOCOL.md §12), signs it with DKIM and hands back a mail queue
 * entry.  The plaintext is never written to disk
 * except as a sealed queue body.
 */
#ifndef AMP_GATEWAY_H
#define AMP_GATEWAY_H

#include "amp/amp.h"
#include "dkimkeys.h"
#include "lanes.h"
#include "mapset.h"
#include "store.h"

typedef struct gateway gateway;

typedef struct gateway_params {
	const amp_identity *id;      /* the gateway identity (caller's) */
	mapset *maps;                /* canonical_maps: DID -> address */
	dkimkeys *dkim;              /* may be NULL or empty: no signing */
	const char *hostname;        /* Message-ID domain of added IDs */
	const lanes *lanes;          /* lanes by sender (may be NULL) */
	bool didsig_sign;            /* add AMP-DID-Signature (didsig_sign) */
} gateway_params;

int gateway_new(const gateway_params *p, gateway **g_r, const char **error_r)
	__attribute__((warn_unused_result));
void gateway_free(gateway **g);

const amp_public_identity *gateway_pub(const gateway *g);
const char *gateway_document(const gateway *g);

/* A queue entry made from one envelope; owns everything it points to. */
typedef struct gateway_msg {
	mailq_msg q;
	mailq_rcpt *rcpts;
	char *sender, *sender_did;
	uint8_t *body;               /* wiped when freed */
	size_t body_len;
	char *msgid;
	bool signed_;                /* a DKIM signature was added */
	bool did_signed;             /* an AMP-DID-Signature was added */
} gateway_msg;

/* Worker thread: env is addressed to the gateway and verified (sender is
 * its sender's public identity).  0 with *m filled, or -1 with the reason
 * for the sender ("From does not match the sender", a refused recipient
 * named) written into why (why_size bytes, NUL-terminated). */
int gateway_prepare(gateway *g, const amp_envelope *env,
		    const amp_public_identity *sender, uint64_t now,
		    uint64_t lifetime, gateway_msg *m, char *why, size_t why_size)
	__attribute__((warn_unused_result));
void gateway_msg_free(gateway_msg *m);

/* The mail address of a DID: its canonical_maps reverse entry, else
 * user@domain.  0, or -1 if out is too small or did is not a DID. */
int gateway_address(gateway *g, const char *did, char *out, size_t out_size)
	__attribute__((warn_unused_result));

#endif
