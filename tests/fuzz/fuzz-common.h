/*
 * fuzz-common.h — what the libFuzzer targets in tests/fuzz and the seed
 * generator (make-seeds.c) share: the fixed identities, the fixed clock, the
 * keystore passphrase, and a few helpers.
 *
 * The seeds in tests/fuzz/corpus are made by make-seeds from exactly these
 * constants.  Change a secret, the DID, FUZZ_NOW or FUZZ_PASSPHRASE and the
 * committed corpus no longer reaches the signature, unwrap and decrypt
 * paths: regenerate it (see README.md).
 */
#ifndef AMP_FUZZ_COMMON_H
#define AMP_FUZZ_COMMON_H

#include "amp/amp.h"

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point; declared here for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The identity every target verifies and opens with ("me" and the sender). */
#define FUZZ_DID_ALICE "did:aftersmtp:example.org:alice"
/* Two more, for multi-recipient and not-a-recipient seeds. */
#define FUZZ_DID_BOB "did:aftersmtp:example.org:bob"
#define FUZZ_DID_CAROL "did:aftersmtp:mail.example.net:carol.c"
/* The node that alice and bob register with (node protocol targets). */
#define FUZZ_DID_NODE "did:aftersmtp:example.org:node"

/* The clock the targets run at: 2026-01-01T00:00:00Z.  A fixed "now" keeps
 * every execution deterministic; seeds are dated around it. */
#define FUZZ_NOW UINT64_C(1767225600)

/* Passphrase of the keystore seeds (amp_keystore_open in fuzz-keystore). */
#define FUZZ_PASSPHRASE "fuzz passphrase"

typedef enum fuzz_who {
	FUZZ_ALICE = 0,
	FUZZ_BOB = 1,
	FUZZ_CAROL = 2,
	FUZZ_NODE = 3,
} fuzz_who;

/* amp_init() once per process; aborts if libsodium cannot start. */
void fuzz_init(void);

/* The fixed identity `who`, made once from fixed seeds and kept for the
 * life of the process (reachable, so LeakSanitizer does not report it). */
const amp_identity *fuzz_identity(fuzz_who who);

/* The fixed secrets of `who` (for make-seeds, which re-signs envelopes). */
void fuzz_secrets(fuzz_who who, uint8_t sign_seed[32], uint8_t enc_sk[32]);

/* The node protocol session the request and response seeds are signed
 * for (PROTOCOL.md §9): the TLS exporter value x, the node's challenge
 * (fixed patterns), and the node's invite key (nodeproto.h). */
void fuzz_session(uint8_t x[32], uint8_t challenge[32]);
void fuzz_invite_key(uint8_t key[32]);

/* Print what broke and abort(), so libFuzzer saves the input. */
void fuzz_fail(const char *target, const char *what)
	__attribute__((noreturn));

#endif
