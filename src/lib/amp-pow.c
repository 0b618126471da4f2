/*
 * amp-pow.c — the registration proof of work (PROTOCOL.md §6): mint, check
 * (AMP-R-020) and the text form "amp-pow-v1:<bits>:<timestamp>:<counter>".
 *
 * The digest input is built once; minting only rewrites the trailing
 * 8-byte counter, so each try costs one BLAKE2b of ~100-400 bytes.
 */
#include "amp-private.h"

#include <sodium.h>
#include <stdio.h>

#define POW_INPUT_MAX (9 + 4 + AMP_DID_MAX + 32 + 32 + 8 + 1 + 8)
#define POW_PREFIX "amp-pow-v1:"

/* Input with a zero counter; returns its length (counter is the last 8). */
static size_t pow_input(const amp_public_identity *pub, uint32_t bits,
			uint64_t timestamp, uint8_t buf[POW_INPUT_MAX])
{
	amp_wbuf w;
	amp_wbuf_init(&w, buf, POW_INPUT_MAX);
	amp_wbuf_str(&w, "AMPv1-pow");
	amp_wbuf_lp(&w, pub->did, strlen(pub->did));
	amp_wbuf_put(&w, pub->sign_pk, 32);
	amp_wbuf_put(&w, pub->enc_pk, 32);
	amp_wbuf_u64(&w, timestamp);
	amp_wbuf_u8(&w, (uint8_t)bits);
	amp_wbuf_u64(&w, 0);
	return w.len;
}

static void set_counter(uint8_t *tail8, uint64_t c)
{
	for (int i = 7; i >= 0; i--) {
		tail8[i] = (uint8_t)c;
		c >>= 8;
	}
}

/* Are the first `bits` bits of d zero? */
static bool leading_zero_bits(const uint8_t d[32], uint32_t bits)
{
	uint32_t full = bits / 8, rest = bits % 8;
	for (uint32_t i = 0; i < full; i++) {
		if (d[i] != 0)
			return false;
	}
	return rest == 0 || (d[full] >> (8 - rest)) == 0;
}

amp_err amp_pow_mint(const amp_public_identity *pub, uint32_t bits,
		     uint64_t timestamp, uint64_t max_tries,
		     amp_pow_stamp *stamp_r, const char **error_r)
{
	uint8_t buf[POW_INPUT_MAX], d[32];

	if (pub == NULL || stamp_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no identity given");
	if (bits == 0 || bits > AMP_POW_BITS_MAX)
		AMP_FAIL(AMP_E_INVALID_ARG, "difficulty must be 1-64 bits");
	if (!amp_did_is_canonical(pub->did, strnlen(pub->did, AMP_DID_MAX + 1)))
		AMP_FAIL(AMP_E_BAD_DID, "identity DID is not canonical");
	if (timestamp == 0)
		timestamp = amp_now();
	size_t n = pow_input(pub, bits, timestamp, buf);
	for (uint64_t c = 0; max_tries == 0 || c < max_tries; c++) {
		set_counter(buf + n - 8, c);
		crypto_generichash(d, sizeof(d), buf, n, NULL, 0);
		if (leading_zero_bits(d, bits)) {
			stamp_r->bits = bits;
			stamp_r->timestamp = timestamp;
			stamp_r->counter = c;
			return AMP_OK;
		}
		if (c == UINT64_MAX)
			break;
	}
	AMP_FAIL(AMP_E_TOO_LARGE, "no stamp found within the allowed tries");
}

amp_err amp_pow_check(const amp_public_identity *pub,
		      const amp_pow_stamp *stamp, uint32_t required_bits,
		      uint64_t now, const char **error_r)
{
	uint8_t buf[POW_INPUT_MAX], d[32];

	if (pub == NULL || stamp == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no identity or stamp given");
	if (!amp_did_is_canonical(pub->did, strnlen(pub->did, AMP_DID_MAX + 1)))
		AMP_FAIL(AMP_E_BAD_DID, "identity DID is not canonical");
	if (stamp->bits == 0 || stamp->bits > AMP_POW_BITS_MAX)
		AMP_FAIL(AMP_E_MALFORMED, "stamp difficulty is not 1-64 bits");
	if (stamp->bits < required_bits)
		AMP_FAIL(AMP_E_POW_INSUFFICIENT,
			 "stamp has fewer bits than required");
	size_t n = pow_input(pub, stamp->bits, stamp->timestamp, buf);
	set_counter(buf + n - 8, stamp->counter);
	crypto_generichash(d, sizeof(d), buf, n, NULL, 0);
	if (!leading_zero_bits(d, stamp->bits))
		AMP_FAIL(AMP_E_POW_INSUFFICIENT,
			 "stamp digest does not have the claimed zero bits "
			 "(wrong identity, keys or counter)");
	if (now == 0)
		now = amp_now();
	if (stamp->timestamp > now && stamp->timestamp - now > AMP_POW_SKEW_MAX)
		AMP_FAIL(AMP_E_FUTURE, "stamp is dated in the future");
	if (now > stamp->timestamp && now - stamp->timestamp > AMP_POW_VALID_FOR)
		AMP_FAIL(AMP_E_POW_STALE, "stamp is older than 24 hours");
	return AMP_OK;
}

amp_err amp_pow_format(const amp_pow_stamp *stamp, char *out, size_t out_size)
{
	int n = snprintf(out, out_size, POW_PREFIX "%u:%llu:%016llx",
			 (unsigned)stamp->bits,
			 (unsigned long long)stamp->timestamp,
			 (unsigned long long)stamp->counter);
	if (n < 0 || (size_t)n >= out_size)
		return AMP_E_INVALID_ARG;
	return AMP_OK;
}

/* Decimal without leading zeros (a lone "0" allowed), at most max. */
static bool parse_dec(const char *s, size_t len, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = v;
	return true;
}

amp_err amp_pow_parse(const char *s, size_t len, amp_pow_stamp *stamp_r,
		      const char **error_r)
{
	const size_t plen = sizeof(POW_PREFIX) - 1;
	const char *bad = "stamp is not amp-pow-v1:<bits>:<timestamp>:<16 hex>";
	uint64_t bits, ts, ctr = 0;

	if (s == NULL || stamp_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no stamp given");
	if (len > AMP_POW_TEXT_MAX) /* a syntax limit: PROTOCOL.md §2 */
		AMP_FAIL(AMP_E_MALFORMED, "stamp text is too long");
	if (len < plen || memcmp(s, POW_PREFIX, plen) != 0)
		AMP_FAIL(AMP_E_MALFORMED, bad);
	const char *p = s + plen, *end = s + len;
	const char *c1 = memchr(p, ':', (size_t)(end - p));
	if (c1 == NULL)
		AMP_FAIL(AMP_E_MALFORMED, bad);
	const char *c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	if (c2 == NULL || !parse_dec(p, (size_t)(c1 - p), AMP_POW_BITS_MAX, &bits) ||
	    bits == 0 ||
	    !parse_dec(c1 + 1, (size_t)(c2 - c1 - 1), UINT64_MAX, &ts) ||
	    end - (c2 + 1) != 16)
		AMP_FAIL(AMP_E_MALFORMED, bad);
	for (const char *q = c2 + 1; q < end; q++) {
		int d;
		if (*q >= '0' && *q <= '9')
			d = *q - '0';
		else if (*q >= 'a' && *q <= 'f')
			d = *q - 'a' + 10;
		else
			AMP_FAIL(AMP_E_MALFORMED, bad);
		ctr = (ctr << 4) | (uint64_t)d;
	}
	stamp_r->bits = (uint32_t)bits;
	stamp_r->timestamp = ts;
	stamp_r->counter = ctr;
	return AMP_OK;
}
