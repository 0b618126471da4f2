/*
 * dkimkeys.h — the node's DKIM signing keys (config `dkim_keys`), one per
 * signing domain, loaded before the privilege drop and kept in memory.
 * Used by the gateway (every message leaving for a legacy address) and by
 * the SMTP server (unsigned mail relayed for smtp_relay_networks; the ARC
 * seal of mail it forwards, arc_seal_domain).
 * Thread-safe: signing with one key is serialised by its own mutex.
 */
#ifndef AMP_DKIMKEYS_H
#define AMP_DKIMKEYS_H

#include "arc.h"
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dkimkeys dkimkeys;

/* Read every `domain:selector:/path/key.pem` of dkim_keys.  0 (an empty
 * list gives an empty set), or -1 with err filled (which entry, why). */
int dkimkeys_load(const cfg *conf, dkimkeys **k_r, char *err, size_t err_size)
	__attribute__((warn_unused_result));
void dkimkeys_free(dkimkeys **k);
size_t dkimkeys_count(const dkimkeys *k);

/* The message signed for domain (case-insensitive): a malloc'd copy with
 * the DKIM-Signature field in front.  1 signed, 0 no key for that domain
 * (nothing allocated), -1 with *why_r (a static reason). */
int dkimkeys_sign(dkimkeys *k, const char *domain, const uint8_t *msg,
		  size_t len, uint64_t now, uint8_t **out_r, size_t *out_len_r,
		  const char **why_r) __attribute__((warn_unused_result));

/* Whether domain (case-insensitive) has a key. */
bool dkimkeys_has(const dkimkeys *k, const char *domain)
	__attribute__((warn_unused_result));

/* ARC-seal msg (arc.h arc_seal) with the key and selector of domain,
 * d=domain: the three ARC fields to prepend in *fields_r (malloc'd,
 * the caller frees).  1 sealed, 0 no key for that domain (nothing
 * allocated), -1 with *why_r (a static reason). */
int dkimkeys_arc_seal(dkimkeys *k, const char *domain, const uint8_t *msg,
		      size_t len, const char *authres_payload, arc_cv cv,
		      uint64_t now, char **fields_r, const char **why_r)
	__attribute__((warn_unused_result));

#endif
