/*
 * amp-armor.c — text armour for envelopes (PROTOCOL.md §5.8):
 * "-----BEGIN AMP ENVELOPE-----", standard base64 in 64-column lines,
 * "-----END AMP ENVELOPE-----".  The decoder accepts LF or CRLF and
 * whitespace around lines, and refuses input over the armoured size of
 * AMP_ENVELOPE_MAX.
 */
#define _GNU_SOURCE /* memmem */
#include "amp-private.h"

#include <sodium.h>

#define BEGIN_LINE "-----BEGIN AMP ENVELOPE-----"
#define END_LINE "-----END AMP ENVELOPE-----"
#define COLS 64u
#define B64 sodium_base64_VARIANT_ORIGINAL
/* Armoured text of a maximal envelope: 4/3 expansion plus newlines. */
#define ARMOR_MAX ((size_t)AMP_ENVELOPE_MAX / 3u * 4u + AMP_ENVELOPE_MAX / 32u + 256u)

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

amp_err amp_armor_encode(const uint8_t *bin, size_t len, char **text_r,
			 size_t *text_len_r)
{
	if (bin == NULL || text_r == NULL || len > AMP_ENVELOPE_MAX)
		return AMP_E_INVALID_ARG;
	size_t b64len = sodium_base64_encoded_len(len, B64); /* includes NUL */
	char *b64 = malloc(b64len);
	size_t cap = sizeof(BEGIN_LINE) + sizeof(END_LINE) + b64len +
		     b64len / COLS + 4;
	char *out = malloc(cap);
	if (b64 == NULL || out == NULL) {
		free(b64);
		free(out);
		return AMP_E_NOMEM;
	}
	sodium_bin2base64(b64, b64len, bin, len, B64);
	size_t n = b64len - 1, o = 0;
	memcpy(out, BEGIN_LINE "\n", sizeof(BEGIN_LINE));
	o += sizeof(BEGIN_LINE);
	for (size_t i = 0; i < n; i += COLS) {
		size_t k = n - i < COLS ? n - i : COLS;
		memcpy(out + o, b64 + i, k);
		o += k;
		out[o++] = '\n';
	}
	memcpy(out + o, END_LINE "\n", sizeof(END_LINE));
	o += sizeof(END_LINE);
	out[o] = '\0';
	free(b64);
	*text_r = out;
	if (text_len_r != NULL)
		*text_len_r = o;
	return AMP_OK;
}

static size_t skip_space(const uint8_t *t, size_t len, size_t i)
{
	while (i < len && is_space(t[i]))
		i++;
	return i;
}

bool amp_armor_detect(const uint8_t *buf, size_t len)
{
	size_t i = skip_space(buf, len, 0);
	const size_t bl = sizeof(BEGIN_LINE) - 1;
	return len - i >= bl && memcmp(buf + i, BEGIN_LINE, bl) == 0;
}

amp_err amp_armor_decode(const uint8_t *t, size_t len, uint8_t **bin_r,
			 size_t *bin_len_r, const char **error_r)
{
	const size_t bl = sizeof(BEGIN_LINE) - 1, el = sizeof(END_LINE) - 1;

	if (t == NULL || bin_r == NULL || bin_len_r == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no armour given");
	if (len > ARMOR_MAX)
		AMP_FAIL(AMP_E_TOO_LARGE, "armoured envelope is too large");
	if (!amp_armor_detect(t, len))
		AMP_FAIL(AMP_E_MALFORMED, "armour does not start with " BEGIN_LINE);
	size_t start = skip_space(t, len, 0) + bl;
	/* Lines: the BEGIN line ends there, the END line starts a line. */
	if (start < len && t[start] != '\n' && t[start] != '\r')
		AMP_FAIL(AMP_E_MALFORMED, BEGIN_LINE " is not a line of its own");
	const uint8_t *endp = memmem(t + start, len - start, END_LINE, el);
	if (endp == NULL)
		AMP_FAIL(AMP_E_TRUNCATED, "armour has no " END_LINE " line");
	size_t end = (size_t)(endp - t);
	if (t[end - 1] != '\n')
		AMP_FAIL(AMP_E_MALFORMED, END_LINE " is not a line of its own");
	/* Nothing but whitespace may follow the END line. */
	if (skip_space(t, len, end + el) != len)
		AMP_FAIL(AMP_E_MALFORMED, "text after " END_LINE);
	/* Copy the base64 characters, dropping whitespace. */
	char *b64 = malloc(end - start + 1);
	if (b64 == NULL)
		AMP_FAIL(AMP_E_NOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = start; i < end; i++) {
		if (!is_space(t[i]))
			b64[n++] = (char)t[i];
	}
	size_t max_bin = n / 4 * 3 + 3;
	uint8_t *bin = malloc(max_bin > 0 ? max_bin : 1);
	size_t bin_len = 0;
	const char *b64_end = NULL;
	int rc = bin == NULL ? -1
			     : sodium_base642bin(bin, max_bin, b64, n, NULL,
						 &bin_len, &b64_end, B64);
	bool complete = rc == 0 && b64_end == b64 + n;
	free(b64);
	if (!complete || bin_len == 0) {
		free(bin);
		AMP_FAIL(AMP_E_MALFORMED, "armour body is not valid base64");
	}
	*bin_r = bin;
	*bin_len_r = bin_len;
	return AMP_OK;
}
