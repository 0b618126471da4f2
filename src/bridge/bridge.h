/*
 * bridge.h — the `amp bridge` process (issue 6, docs/amp-bridge.md): one
 * libuv loop on the main thread holding the user's store (bstore.c), the
 * IMAP listener (bimap.c) and the submission listener (bsubmit.c), both
 * on 127.0.0.1; the sync (bsync.c) on its own thread; password checks and
 * sending on libuv's thread pool.
 *
 * What it keeps, under HOME/bridge/ (0700):
 *   store.db    the mail, sealed with a key derived from the identity's
 *               secret signing key: BLAKE2b-256 of it (keyed
 *               "amp-bridge-store") as the master key of crypto_kdf,
 *               subkey 1, context "ampbrdg1".  After `amp key rotate` the
 *               retired identities' keys are tried in turn.
 *   password    the bridge password's Argon2id hash (crypto_pwhash_str),
 *               0600, written by `amp bridge password`; read at every
 *               login, so a new password takes effect at once.
 *   tls.pem     the local certificate for STARTTLS (made on first run for
 *   tls.key     "localhost"; the key 0600).
 *
 * Logins (IMAP LOGIN/AUTHENTICATE, SMTP AUTH): the user name is the
 * identity's mail address local@domain (any case), the address the home
 * node's canonical_maps give it (learnt by the sync at each connection),
 * or its DID; the same addresses are accepted as MAIL FROM.  Wrong
 * passwords are answered after a delay that doubles with each failure
 * in a row (BRIDGE_BACKOFF_MIN_MS .. BRIDGE_BACKOFF_MAX_MS), whichever
 * connection they come from; a success resets it.
 */
#ifndef AMP_BRIDGE_H
#define AMP_BRIDGE_H

#include "cli.h"

#include <stdint.h>

#define BRIDGE_IMAP_PORT_DEFAULT 1143u
#define BRIDGE_SMTP_PORT_DEFAULT 1025u
#define BRIDGE_BACKOFF_MIN_MS 1000u
#define BRIDGE_BACKOFF_MAX_MS 16000u
#define BRIDGE_PASSWORD_CHARS 24u  /* "xxxxx-xxxxx-xxxxx-xxxxx" (+NUL) */

typedef struct bridge_settings {
	cli_env *env;
	cli_conn_opts conn;         /* the home node: client.conf's default */
	uint16_t imap_port;         /* 0: any free port (see the ready line) */
	uint16_t smtp_port;
	unsigned poll_wait_ms;      /* the sync's long poll, 0: its default */
	bool no_sync;               /* serve the store only (offline) */
} bridge_settings;

/* Run the bridge until SIGINT or SIGTERM: prints "bridge ready
 * imap=127.0.0.1:P smtp=127.0.0.1:Q" on standard output once both
 * listen.  CLI_OK after a clean stop, CLI_FAIL (reported) when it cannot
 * start. */
int bridge_run(const bridge_settings *set) __attribute__((warn_unused_result));

/* A new random bridge password (BRIDGE_PASSWORD_CHARS - 1 characters
 * into out) whose hash is stored in HOME/bridge/password.  CLI_OK or
 * CLI_FAIL (reported). */
int bridge_password_new(cli_env *env, char out[BRIDGE_PASSWORD_CHARS])
	__attribute__((warn_unused_result));

/* HOME/bridge/NAME into out; false when it does not fit. */
bool bridge_path(const cli_env *env, const char *name, char *out, size_t size);

#endif
