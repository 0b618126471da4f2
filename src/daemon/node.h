/*
 * node.h — what aftersmtpd's files share: its configuration schema and the
 * node's data directory (keys, certificate, store).
 *
 * Data directory layout (all secrets 0600, the directory 0700):
 *   node.key        the node identity (did:aftersmtp:<domain>:node), a
 *                   libamp keystore (Argon2id-wrapped)
 *   gateway.key     the gateway identity (did:aftersmtp:<domain>:gateway)
 *                   that mail for legacy addresses is sealed to; same
 *                   passphrase as node.key
 *   node.pass       the passphrase of node.key, generated at init; an
 *                   operator may move it (node_key_passphrase_file) to a
 *                   systemd credential or other protected place
 *   storage.key     32 random bytes: keys the hashes and encryption of
 *                   metadata at rest (src/store)
 *   tls.crt/.key    self-signed Ed25519 certificate for the TLS transport
 *   node.db         the store (SQLite, WAL)
 */
#ifndef AMP_NODE_H
#define AMP_NODE_H

#include "config.h"

#include <limits.h>
#include <stdint.h>

#include "amp/amp.h"

extern const cfg_schema node_schema;

/* Create what is missing in the data directory (never replaces a file).
 * domain: the first of `domains`.  Prints one line per file created.
 * 0, or -1 after printing why. */
int node_init_data_dir(const cfg *c, bool quiet);

/* Load the node identity (reads node.key and its passphrase file). */
int node_load_identity(const cfg *c, amp_identity **id_r);
/* Load <data_dir>/name (node.key, gateway.key) with the node passphrase. */
int node_load_key(const cfg *c, const char *name, amp_identity **id_r);

/* Read <data_dir>/storage.key (32 bytes). */
int node_load_storage_key(const cfg *c, uint8_t key[32]);

/* A key for one purpose derived from the storage key:
 * BLAKE2b-256 keyed with the storage key over the label.  Labels:
 * "AMPv1-invite-key" (invite MACs), "AMPv1-token-key" (used tokens). */
void node_subkey(const uint8_t storage_key[32], const char *label,
		 uint8_t out[32]);

/* `aftersmtpd run` (node-run.c): serve until SIGTERM; owns conf.
 * config_path: the file to re-read on SIGHUP, or NULL. */
int node_run_main(cfg *conf, const char *config_path);

/* <data_dir>/name into out; -1 if too long. */
int node_data_path(const cfg *c, const char *name, char out[PATH_MAX]);

#endif
