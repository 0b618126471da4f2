/*
 * amp-did.c — DID syntax (PROTOCOL.md §3.1) and key ids (§3.2).
 *
 * A pure parser over bytes: examines exactly `len` bytes, needs no NUL,
 * allocates nothing.  Refuses everything but the canonical lowercase form
 * (AMP-R-003, AMP-R-004); amp_did_normalize lower-cases user input first.
 */
#include "amp-private.h"

#include <sodium.h>
#include <stdio.h>

static bool is_letdig(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One domain label: 1..63 let-dig / '-', starting and ending with let-dig. */
static bool label_ok(const char *s, size_t len)
{
	if (len == 0 || len > AMP_DID_LABEL_MAX)
		return false;
	if (!is_letdig(s[0]) || !is_letdig(s[len - 1]))
		return false;
	for (size_t i = 1; i + 1 < len; i++) {
		if (!is_letdig(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

static amp_err domain_check(const char *s, size_t len, const char **error_r)
{
	if (len == 0)
		AMP_FAIL(AMP_E_BAD_DID, "DID domain is empty");
	if (len > AMP_DID_DOMAIN_MAX)
		AMP_FAIL(AMP_E_BAD_DID, "DID domain is longer than 253 bytes");
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!label_ok(s + start, i - start))
				AMP_FAIL(AMP_E_BAD_DID,
					 "DID domain has an invalid label "
					 "(1-63 of a-z 0-9 '-', no '-' at an end)");
			start = i + 1;
		}
	}
	return AMP_OK;
}

static bool is_local_char(char c)
{
	return is_letdig(c) || c == '.' || c == '-' || c == '_';
}

static amp_err local_check(const char *s, size_t len, const char **error_r)
{
	if (len == 0)
		AMP_FAIL(AMP_E_BAD_DID, "DID local part is empty");
	if (len > AMP_DID_LOCAL_MAX)
		AMP_FAIL(AMP_E_BAD_DID, "DID local part is longer than 64 bytes");
	if (!is_letdig(s[0]) || !is_letdig(s[len - 1]))
		AMP_FAIL(AMP_E_BAD_DID,
			 "DID local part must start and end with a-z or 0-9");
	for (size_t i = 0; i < len; i++) {
		if (!is_local_char(s[i]))
			AMP_FAIL(AMP_E_BAD_DID,
				 "DID local part has a character outside "
				 "a-z 0-9 . - _");
		if (s[i] == '.' && i + 1 < len && s[i + 1] == '.')
			AMP_FAIL(AMP_E_BAD_DID,
				 "DID local part has two consecutive dots");
	}
	return AMP_OK;
}

amp_err amp_did_parse(const char *s, size_t len, amp_did *did_r,
		      const char **error_r)
{
	const size_t plen = sizeof(AMP_DID_PREFIX) - 1;

	if (s == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no DID given");
	if (len > AMP_DID_MAX)
		AMP_FAIL(AMP_E_BAD_DID, "DID is longer than 332 bytes");
	if (len < plen || memcmp(s, AMP_DID_PREFIX, plen) != 0)
		AMP_FAIL(AMP_E_BAD_DID, "DID does not start with did:aftersmtp:");
	const char *rest = s + plen;
	size_t rlen = len - plen;
	const char *colon = memchr(rest, ':', rlen);
	if (colon == NULL)
		AMP_FAIL(AMP_E_BAD_DID,
			 "DID has no ':' between domain and local part");
	size_t dlen = (size_t)(colon - rest);
	amp_err e = domain_check(rest, dlen, error_r);
	if (e != AMP_OK)
		return e;
	e = local_check(colon + 1, rlen - dlen - 1, error_r);
	if (e != AMP_OK)
		return e;
	if (did_r != NULL) {
		memcpy(did_r->domain, rest, dlen);
		did_r->domain[dlen] = '\0';
		memcpy(did_r->local, colon + 1, rlen - dlen - 1);
		did_r->local[rlen - dlen - 1] = '\0';
	}
	return AMP_OK;
}

bool amp_did_is_canonical(const char *s, size_t len)
{
	return amp_did_parse(s, len, NULL, NULL) == AMP_OK;
}

amp_err amp_did_normalize(const char *s, char *out, size_t out_size,
			  const char **error_r)
{
	if (s == NULL || out == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no DID given");
	size_t len = strnlen(s, AMP_DID_MAX + 1);
	if (len > AMP_DID_MAX)
		AMP_FAIL(AMP_E_BAD_DID, "DID is longer than 332 bytes");
	if (len + 1 > out_size)
		AMP_FAIL(AMP_E_INVALID_ARG, "output buffer too small for DID");
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return amp_did_parse(out, len, NULL, error_r);
}

amp_err amp_did_format(const char *domain, const char *local, char *out,
		       size_t out_size, const char **error_r)
{
	if (domain == NULL || local == NULL || out == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "missing domain or local part");
	size_t dlen = strnlen(domain, AMP_DID_DOMAIN_MAX + 1);
	size_t llen = strnlen(local, AMP_DID_LOCAL_MAX + 1);
	amp_err e = domain_check(domain, dlen, error_r);
	if (e != AMP_OK)
		return e;
	e = local_check(local, llen, error_r);
	if (e != AMP_OK)
		return e;
	int n = snprintf(out, out_size, AMP_DID_PREFIX "%s:%s", domain, local);
	if (n < 0 || (size_t)n >= out_size)
		AMP_FAIL(AMP_E_INVALID_ARG, "output buffer too small for DID");
	return AMP_OK;
}

void amp_key_id(const uint8_t pk[32], char out[AMP_KEY_ID_HEX + 1])
{
	uint8_t h[AMP_KEY_ID_HEX / 2];
	crypto_generichash(h, sizeof(h), pk, 32, NULL, 0);
	sodium_bin2hex(out, AMP_KEY_ID_HEX + 1, h, sizeof(h));
}
