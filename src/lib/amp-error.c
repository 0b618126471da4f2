/*
 * amp-error.c — names and generic texts of libamp's error codes, library
 * initialisation and the small helpers every libamp file uses.
 */
#include "amp-private.h"

#include <sodium.h>
#include <time.h>

static const struct {
	const char *name;
	const char *text;
} err_table[AMP_E__COUNT] = {
	[AMP_OK] = { "AMP_OK", "success" },
	[AMP_E_INVALID_ARG] = { "AMP_E_INVALID_ARG", "invalid argument" },
	[AMP_E_NOMEM] = { "AMP_E_NOMEM", "out of memory" },
	[AMP_E_TRUNCATED] = { "AMP_E_TRUNCATED", "input is truncated" },
	[AMP_E_TOO_LARGE] = { "AMP_E_TOO_LARGE", "input exceeds a limit" },
	[AMP_E_MALFORMED] = { "AMP_E_MALFORMED", "input is malformed" },
	[AMP_E_NONCANONICAL] = { "AMP_E_NONCANONICAL",
				 "input is not in canonical encoding" },
	[AMP_E_VERSION] = { "AMP_E_VERSION", "unsupported protocol version" },
	[AMP_E_UNSUPPORTED] = { "AMP_E_UNSUPPORTED", "unsupported feature" },
	[AMP_E_BAD_DID] = { "AMP_E_BAD_DID", "invalid DID" },
	[AMP_E_BAD_KEY] = { "AMP_E_BAD_KEY", "invalid public key" },
	[AMP_E_BAD_SIGNATURE] = { "AMP_E_BAD_SIGNATURE",
				  "signature does not verify" },
	[AMP_E_SENDER_MISMATCH] = { "AMP_E_SENDER_MISMATCH",
				    "sender does not match the given identity" },
	[AMP_E_DUPLICATE_RECIPIENT] = { "AMP_E_DUPLICATE_RECIPIENT",
					"recipient listed twice" },
	[AMP_E_NOT_RECIPIENT] = { "AMP_E_NOT_RECIPIENT",
				  "not a recipient of this envelope" },
	[AMP_E_KEY_UNWRAP] = { "AMP_E_KEY_UNWRAP",
			       "wrapped content key does not authenticate" },
	[AMP_E_DECRYPT] = { "AMP_E_DECRYPT", "payload does not authenticate" },
	[AMP_E_PADDING] = { "AMP_E_PADDING", "invalid payload padding" },
	[AMP_E_DECOMPRESS] = { "AMP_E_DECOMPRESS", "payload does not decompress" },
	[AMP_E_EXPIRED] = { "AMP_E_EXPIRED", "envelope has expired" },
	[AMP_E_FUTURE] = { "AMP_E_FUTURE", "timestamp is in the future" },
	[AMP_E_REPLAY] = { "AMP_E_REPLAY", "envelope was already seen" },
	[AMP_E_POW_INSUFFICIENT] = { "AMP_E_POW_INSUFFICIENT",
				     "proof of work below the required difficulty" },
	[AMP_E_POW_STALE] = { "AMP_E_POW_STALE", "proof of work is too old" },
	[AMP_E_PASSPHRASE] = { "AMP_E_PASSPHRASE",
			       "wrong passphrase or tampered keystore" },
	[AMP_E_KEYSTORE] = { "AMP_E_KEYSTORE", "not a valid keystore" },
	[AMP_E_IO] = { "AMP_E_IO", "input/output error" },
	[AMP_E_BAD_PROOF] = { "AMP_E_BAD_PROOF",
			       "a Merkle proof does not verify" },
};

const char *amp_err_name(amp_err e)
{
	if ((unsigned)e >= AMP_E__COUNT)
		return "AMP_E_UNKNOWN";
	return err_table[e].name;
}

const char *amp_strerror(amp_err e)
{
	if ((unsigned)e >= AMP_E__COUNT)
		return "unknown error";
	return err_table[e].text;
}

amp_err amp_init(void)
{
	return sodium_init() < 0 ? AMP_E_INVALID_ARG : AMP_OK;
}

void *amp_malloc(size_t n)
{
	if (n == 0 || n > AMP_ALLOC_MAX)
		return NULL;
	return malloc(n);
}

void amp_free(void *p)
{
	free(p);
}

bool amp_b64u_decode_exact(const char *s, uint8_t *out, size_t n)
{
	/* Only the canonical spelling: libsodium 1.0.18 reads bytes 0x80-0xff
	 * as '_' and ignores non-zero trailing bits, so one value would have
	 * many spellings.  Decode, re-encode and compare. */
	size_t len, sl;
	char again[256];
	if (s == NULL || (sl = strlen(s)) >= sizeof(again) ||
	    sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) >
		    sizeof(again))
		return false;
	if (sodium_base642bin(out, n, s, sl, NULL, &len, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    len != n)
		return false;
	sodium_bin2base64(again, sizeof(again), out, n,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return strcmp(again, s) == 0;
}

uint64_t amp_now(void)
{
	time_t t = time(NULL);
	return t < 0 ? 0 : (uint64_t)t;
}
