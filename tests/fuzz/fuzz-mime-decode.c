/*
 * fuzz-mime-decode.c — libFuzzer target for src/mime (TESTING.md F7): the
 * quoted-printable, base64 and RFC 2047 decoders (mime-decode.c) and the
 * RFC 5322 date parser and formatter (mail-date.c), all on every input.
 *
 * Input: the bytes to decode; byte 0 also picks a short output capacity,
 * the first 8 bytes a time for the formatter.
 *
 * Properties:
 *  - every decoder: the returned length does not depend on the capacity;
 *    with a shorter buffer the output is a prefix of the whole one and
 *    MIME_DEC_TRUNCATED is set exactly when it did not fit; QP output is
 *    never longer than its input, base64 never more than 3/4 of it,
 *    RFC 2047 never more than MIME_DECODE_WORDS_SIZE;
 *  - base64, differential with libsodium: the input encoded by
 *    sodium_bin2base64 (and folded at 76 columns with CRLF) decodes back
 *    to the input with no finding; so does the decoder's own output; and
 *    an ASCII input without NUL that sodium_base642bin accepts (ignoring
 *    blanks and line ends) decodes to the same bytes here, with no
 *    finding;
 *  - RFC 2047: no control byte and no invalid UTF-8 appear that were not
 *    in the input (decoded words are clean UTF-8), and the output is
 *    NUL-terminated;
 *  - dates: a parsed date is within years 1900..9999 shifted by its zone
 *    (at most 99:59), formatted at its own zone it parses back to the same
 *    instant and zone; mail_date_format agrees with strftime in the C
 *    locale, succeeds exactly for years 1900..9999, and its output parses
 *    back to the same time with zone 0 and no flags.
 */
#include "mail-date.h"
#include "mime-decode.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-mime-decode: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

#define T_MIN INT64_C(-2208988800)  /* 1900-01-01T00:00:00Z */
#define T_MAX INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

typedef size_t decode_fn(const uint8_t *in, size_t len, uint8_t *out,
			 size_t out_cap, unsigned *flags_r);

static size_t words(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		    unsigned *flags_r)
{
	return mime_decode_words(in, len, (char *)out, cap, flags_r);
}

/* Decode in with a full buffer, then with cap; returns the whole output
 * (malloc'd, *n_r its length, *flags_r the findings). */
static uint8_t *decode_both(decode_fn *fn, bool nul, const uint8_t *in,
			    size_t len, size_t full, size_t cap, size_t *n_r,
			    unsigned *flags_r)
{
	uint8_t *out = malloc(full + 1);
	CHECK(out != NULL);
	unsigned flags;
	size_t n = fn(in, len, out, full, &flags);
	CHECK((flags & MIME_DEC_TRUNCATED) == 0);
	CHECK(n + (nul ? 1 : 0) <= full);
	if (nul)
		CHECK(out[n] == 0);
	uint8_t *small = malloc(cap + 1);
	CHECK(small != NULL);
	unsigned f2;
	size_t n2 = fn(in, len, cap == 0 && !nul ? NULL : small, cap, &f2);
	CHECK(n2 == n);
	size_t room = nul ? (cap > 0 ? cap - 1 : 0) : cap;
	CHECK((f2 & ~MIME_DEC_TRUNCATED) == flags);
	CHECK(((f2 & MIME_DEC_TRUNCATED) != 0) == (n > room));
	size_t kept = n < room ? n : room;
	CHECK(kept == 0 || memcmp(small, out, kept) == 0);
	if (nul && cap > 0)
		CHECK(small[kept] == 0);
	free(small);
	*n_r = n;
	*flags_r = flags;
	return out;
}

static bool is_control(uint8_t c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Length of the valid UTF-8 prefix. */
static size_t utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t b = s[i];
		size_t k;
		uint32_t cp, min;
		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			k = 1;
			cp = b & 0x1f;
			min = 0x80;
		} else if (b >= 0xe0 && b <= 0xef) {
			k = 2;
			cp = b & 0x0f;
			min = 0x800;
		} else if (b >= 0xf0 && b <= 0xf4) {
			k = 3;
			cp = b & 0x07;
			min = 0x10000;
		} else {
			return i;
		}
		if (n - i <= k)
			return i;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + j] & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += k + 1;
	}
	return n;
}

static void check_base64_roundtrip(const uint8_t *bin, size_t n)
{
	size_t el = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	char *enc = malloc(el);
	uint8_t *back = malloc(n + 1);
	char *folded = malloc(el + 2 * (el / 76) + 1);
	CHECK(enc != NULL && back != NULL && folded != NULL);
	sodium_bin2base64(enc, el, bin, n, sodium_base64_VARIANT_ORIGINAL);
	size_t len = strlen(enc), fl = 0;
	for (size_t k = 0; k < len; k++) {
		if (k > 0 && k % 76 == 0) {
			folded[fl++] = '\r';
			folded[fl++] = '\n';
		}
		folded[fl++] = enc[k];
	}
	unsigned flags;
	size_t m = mime_decode_base64((uint8_t *)enc, len, back, n + 1, &flags);
	CHECK(m == n && flags == 0 && (n == 0 || memcmp(back, bin, n) == 0));
	m = mime_decode_base64((uint8_t *)folded, fl, back, n + 1, &flags);
	CHECK(m == n && flags == 0 && (n == 0 || memcmp(back, bin, n) == 0));
	free(folded);
	free(back);
	free(enc);
}

static void check_base64(const uint8_t *in, size_t len, size_t cap)
{
	size_t n;
	unsigned flags;
	uint8_t *out = decode_both(mime_decode_base64, false, in, len,
				   len * 3 / 4 + 1, cap, &n, &flags);
	CHECK(n <= len * 3 / 4);
	check_base64_roundtrip(in, len);
	check_base64_roundtrip(out, n);
	/* what libsodium's strict decoder accepts, we read the same way;
	 * not with a NUL (libsodium 1.0.18 skips it as an "ignored"
	 * character: strchr(ignore, 0) finds the terminator) nor 8-bit */
	bool ascii = true;
	for (size_t i = 0; i < len; i++)
		ascii = ascii && in[i] < 0x80 && in[i] != 0;
	if (ascii && len > 0) {
		char *s = malloc(len + 1);
		uint8_t *bin = malloc(len + 1);
		CHECK(s != NULL && bin != NULL);
		memcpy(s, in, len);
		s[len] = '\0';
		size_t bl;
		if (sodium_base642bin(bin, len + 1, s, len, " \t\r\n", &bl, NULL,
				      sodium_base64_VARIANT_ORIGINAL) == 0) {
			CHECK(bl == n && flags == 0);
			CHECK(n == 0 || memcmp(bin, out, n) == 0);
		}
		free(bin);
		free(s);
	}
	free(out);
}

static void check_words(const uint8_t *in, size_t len, size_t cap)
{
	size_t n;
	unsigned flags;
	uint8_t *out = decode_both(words, true, in, len,
				   MIME_DECODE_WORDS_SIZE(len), cap, &n, &flags);
	bool in_ctl = false;
	for (size_t i = 0; i < len; i++)
		in_ctl = in_ctl || is_control(in[i]);
	if (!in_ctl)
		for (size_t i = 0; i < n; i++)
			CHECK(!is_control(out[i]));
	if (utf8_ok(in, len) == len)
		CHECK(utf8_ok(out, n) == n);
	free(out);
}

static int64_t read_i64(const uint8_t *d, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8 && i < n; i++)
		v = v << 8 | d[i];
	return (int64_t)v;
}

static void check_format(int64_t t)
{
	char out[MAIL_DATE_FORMAT_SIZE];
	bool ok = mail_date_format((time_t)t, out, sizeof(out));
	CHECK(ok == (t >= T_MIN && t <= T_MAX));
	if (!ok) {
		CHECK(out[0] == '\0');
		return;
	}
	CHECK(strlen(out) == MAIL_DATE_FORMAT_SIZE - 1);
	time_t tt = (time_t)t;
	struct tm tm;
	char ref[64];
	CHECK(gmtime_r(&tt, &tm) != NULL);
	CHECK(strftime(ref, sizeof(ref), "%a, %d %b %Y %H:%M:%S +0000", &tm) > 0);
	CHECK(strcmp(out, ref) == 0);
	mail_date d;
	CHECK(mail_date_parse((uint8_t *)out, strlen(out), &d));
	CHECK((int64_t)d.t == t && d.zone == 0 && d.flags == 0);
	/* too small a buffer: refused, empty */
	CHECK(!mail_date_format((time_t)t, out, sizeof(out) - 1) && out[0] == 0);
}

static void check_date(const uint8_t *in, size_t len)
{
	mail_date d;
	if (!mail_date_parse(in, len, &d))
		return;
	CHECK(d.zone >= -5999 && d.zone <= 5999);
	int64_t t = (int64_t)d.t;
	/* the local time is within 1900..9999 (a leap second adds one) */
	int64_t local = t + (int64_t)d.zone * 60;
	CHECK(local >= T_MIN && local <= T_MAX + 1);
	if ((d.flags & MAIL_DATE_ZONE_UNKNOWN) != 0)
		CHECK(d.zone == 0);
	if (local > T_MAX)
		return;
	/* written again at its own zone, it parses to the same */
	char out[MAIL_DATE_FORMAT_SIZE];
	CHECK(mail_date_format((time_t)local, out, sizeof(out)));
	int z = d.zone < 0 ? -d.zone : d.zone;
	char zs[8];
	CHECK(snprintf(zs, sizeof(zs), "%c%02d%02d", d.zone < 0 ? '-' : '+',
		       z / 60, z % 60) == 5);
	memcpy(out + strlen(out) - 5, zs, 5);
	mail_date d2;
	CHECK(mail_date_parse((uint8_t *)out, strlen(out), &d2));
	CHECK(d2.t == d.t && d2.zone == d.zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		init = true;
	}
	size_t cap = size > 0 ? data[0] % 64 : 0;

	size_t n;
	unsigned flags;
	uint8_t *out = decode_both(mime_decode_qp, false, data, size, size + 1,
				   cap, &n, &flags);
	CHECK(n <= size);
	free(out);

	check_base64(data, size, cap);
	check_words(data, size, cap);
	check_date(data, size);

	int64_t t = read_i64(data, size);
	check_format(t);
	/* and a time inside the range, from the same bytes */
	uint64_t span = (uint64_t)(T_MAX - T_MIN) + 1;
	check_format(T_MIN + (int64_t)((uint64_t)t % span));
	return 0;
}
