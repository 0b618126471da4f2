/*
 * mime-decode.c — quoted-printable, base64 and RFC 2047 decoders
 * (mime-decode.h).
 *
 * All three are single passes with O(1) look-ahead state, writing through
 * a small output helper that counts past the caller's capacity.  Base64
 * is a byte-at-a-time state machine shared by mime_decode_base64 and the
 * "B" encoded-words.  An encoded-word is decoded twice: once into a
 * validator (UTF-8, no controls), then, if that passed, into the output;
 * so nothing is written that would have to be taken back.  Candidate
 * encoded-words that fail to parse cost at most their own bytes: a
 * charset stops after MIME_EW_CHARSET_MAX bytes and a text at its first
 * "?", which also ends any candidate that starts inside it, so the whole
 * value is read a bounded number of times.
 */
#include "mime-decode.h"

#include <string.h>

#define MIME_EW_CHARSET_MAX 64u /* charset and language of a word */

/* ------------------------------------------------------------ output */

typedef struct obuf {
	uint8_t *out;
	size_t cap, n;
} obuf;

static void put(obuf *o, uint8_t b)
{
	if (o->n < o->cap)
		o->out[o->n] = b;
	o->n++;
}

static int hexval(uint8_t ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool is_blank(uint8_t ch)
{
	return ch == ' ' || ch == '\t';
}

/* ------------------------------------------------------------ QP */

size_t mime_decode_qp(const uint8_t *in, size_t len, uint8_t *out,
		      size_t out_cap, unsigned *flags_r)
{
	obuf o = { out, out_cap, 0 };
	unsigned flags = 0;
	size_t i = 0;
	while (i < len) {
		uint8_t ch = in[i];
		if (ch == '=') {
			if (i + 2 < len && hexval(in[i + 1]) >= 0 &&
			    hexval(in[i + 2]) >= 0) {
				put(&o, (uint8_t)(hexval(in[i + 1]) << 4 |
						  hexval(in[i + 2])));
				i += 3;
				continue;
			}
			size_t j = i + 1;
			while (j < len && is_blank(in[j]))
				j++;
			if (j == len || (j + 1 == len && in[j] == '\r')) {
				i = len; /* a soft break at the end */
				continue;
			}
			if (in[j] == '\n') {
				i = j + 1;
				continue;
			}
			if (in[j] == '\r' && in[j + 1] == '\n') {
				i = j + 2;
				continue;
			}
			flags |= MIME_DEC_BAD_ESCAPE;
			put(&o, '=');
			i++;
			continue;
		}
		if (is_blank(ch)) {
			size_t j = i;
			while (j < len && is_blank(in[j]))
				j++;
			bool trailing = j == len || in[j] == '\n' ||
					(in[j] == '\r' &&
					 (j + 1 == len || in[j + 1] == '\n'));
			if (!trailing)
				for (size_t k = i; k < j; k++)
					put(&o, in[k]);
			i = j;
			continue;
		}
		put(&o, ch);
		i++;
	}
	if (o.n > out_cap)
		flags |= MIME_DEC_TRUNCATED;
	if (flags_r != NULL)
		*flags_r = flags;
	return o.n;
}

/* ------------------------------------------------------------ base64 */

typedef struct b64 {
	uint32_t acc;
	unsigned q;        /* sextets in acc */
	unsigned pad_need; /* '=' still expected after a padded quantum */
	bool padded;       /* a padded quantum ended the last run */
	unsigned flags;
} b64;

static int b64val(uint8_t ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Emit the bytes of a partial quantum (q = 2 or 3 sextets). */
static void b64_partial(b64 *s, obuf *o)
{
	if (s->q == 2) {
		put(o, (uint8_t)(s->acc >> 4));
	} else if (s->q == 3) {
		put(o, (uint8_t)(s->acc >> 10));
		put(o, (uint8_t)(s->acc >> 2));
	} else if (s->q == 1) {
		s->flags |= MIME_DEC_BAD_PAD; /* 6 bits make no byte */
	}
	s->acc = 0;
	s->q = 0;
}

static void b64_feed(b64 *s, uint8_t ch, obuf *o)
{
	int v = b64val(ch);
	if (v >= 0) {
		if (s->padded || s->pad_need > 0) {
			s->flags |= MIME_DEC_BAD_PAD; /* data after padding */
			s->padded = false;
			s->pad_need = 0;
		}
		s->acc = s->acc << 6 | (uint32_t)v;
		if (++s->q == 4) {
			put(o, (uint8_t)(s->acc >> 16));
			put(o, (uint8_t)(s->acc >> 8));
			put(o, (uint8_t)s->acc);
			s->acc = 0;
			s->q = 0;
		}
		return;
	}
	if (ch == '=') {
		if (s->q == 2 || s->q == 3) {
			s->pad_need = s->q == 2 ? 1 : 0;
			b64_partial(s, o);
			s->padded = true;
		} else if (s->q == 0 && s->pad_need > 0) {
			s->pad_need--;
		} else {
			s->flags |= MIME_DEC_BAD_PAD;
			if (s->q == 1) { /* the lone sextet is lost */
				s->acc = 0;
				s->q = 0;
			}
		}
		return;
	}
	if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
		return;
	s->flags |= MIME_DEC_GARBAGE;
}

static void b64_end(b64 *s, obuf *o)
{
	if (s->pad_need > 0)
		s->flags |= MIME_DEC_BAD_PAD;
	b64_partial(s, o);
}

size_t mime_decode_base64(const uint8_t *in, size_t len, uint8_t *out,
			  size_t out_cap, unsigned *flags_r)
{
	obuf o = { out, out_cap, 0 };
	b64 s;
	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < len; i++)
		b64_feed(&s, in[i], &o);
	b64_end(&s, &o);
	if (o.n > out_cap)
		s.flags |= MIME_DEC_TRUNCATED;
	if (flags_r != NULL)
		*flags_r = s.flags;
	return o.n;
}

/* ------------------------------------------------------------ RFC 2047 */

enum { CS_UTF8 = 1, CS_LATIN1 = 2 };

typedef struct ew {
	size_t start, end;        /* the whole word in the input */
	size_t cs0, cs_len;       /* the charset (without a language) */
	size_t t0, t1;            /* the encoded text */
	bool b;                   /* B, else Q */
} ew;

/* An encoded-word at in[i] ("=?" known to be there)? */
static bool ew_parse(const uint8_t *in, size_t len, size_t i, ew *w)
{
	size_t j = i + 2, star = 0;
	bool has_star = false;
	while (j < len && in[j] != '?' && j - (i + 2) < MIME_EW_CHARSET_MAX) {
		if (in[j] <= 32 || in[j] >= 127)
			return false;
		if (in[j] == '*' && !has_star) {
			has_star = true;
			star = j;
		}
		j++;
	}
	if (j >= len || in[j] != '?' || j == i + 2)
		return false;
	w->start = i;
	w->cs0 = i + 2;
	w->cs_len = (has_star ? star : j) - w->cs0;
	if (w->cs_len == 0)
		return false;
	if (j + 2 >= len || in[j + 2] != '?')
		return false;
	uint8_t e = in[j + 1];
	if (e == 'B' || e == 'b')
		w->b = true;
	else if (e == 'Q' || e == 'q')
		w->b = false;
	else
		return false;
	j += 3;
	w->t0 = j;
	while (j < len && in[j] != '?') {
		if (in[j] <= 32 || in[j] >= 127)
			return false;
		j++;
	}
	if (j + 1 >= len || in[j + 1] != '=')
		return false;
	w->t1 = j;
	w->end = j + 2;
	return true;
}

static bool cs_is(const uint8_t *s, size_t n, const char *name)
{
	if (strlen(name) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = s[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (uint8_t)(ch + ('a' - 'A'));
		if (ch != (uint8_t)name[i])
			return false;
	}
	return true;
}

static int charset_kind(const uint8_t *s, size_t n)
{
	if (cs_is(s, n, "utf-8") || cs_is(s, n, "utf8") ||
	    cs_is(s, n, "us-ascii") || cs_is(s, n, "ascii"))
		return CS_UTF8;
	if (cs_is(s, n, "iso-8859-1") || cs_is(s, n, "iso_8859-1") ||
	    cs_is(s, n, "latin1"))
		return CS_LATIN1;
	return 0;
}

/* The decoded UTF-8 bytes of a word go to a validator or to the output. */
typedef struct wsink {
	obuf *o;          /* NULL: validate only */
	uint32_t cp, min;
	unsigned need;
	bool bad;
} wsink;

static bool is_control(uint32_t cp)
{
	return (cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f);
}

static void ws_byte(wsink *s, uint8_t b)
{
	if (s->o != NULL) {
		put(s->o, b);
		return;
	}
	if (s->need > 0) {
		if ((b & 0xc0) != 0x80) {
			s->bad = true;
			s->need = 0;
			return;
		}
		s->cp = s->cp << 6 | (b & 0x3fu);
		if (--s->need == 0 &&
		    (s->cp < s->min || s->cp > 0x10ffff ||
		     (s->cp >= 0xd800 && s->cp <= 0xdfff) || is_control(s->cp)))
			s->bad = true;
		return;
	}
	if (b < 0x80) {
		if (is_control(b))
			s->bad = true;
	} else if (b >= 0xc2 && b <= 0xdf) {
		s->cp = b & 0x1fu;
		s->need = 1;
		s->min = 0x80;
	} else if (b >= 0xe0 && b <= 0xef) {
		s->cp = b & 0x0fu;
		s->need = 2;
		s->min = 0x800;
	} else if (b >= 0xf0 && b <= 0xf4) {
		s->cp = b & 0x07u;
		s->need = 3;
		s->min = 0x10000;
	} else {
		s->bad = true;
	}
}

/* A decoded byte of the word's charset. */
static void ws_char(wsink *s, int kind, uint8_t b)
{
	if (kind == CS_LATIN1 && b >= 0x80) {
		ws_byte(s, (uint8_t)(0xc0 | b >> 6));
		ws_byte(s, (uint8_t)(0x80 | (b & 0x3f)));
	} else {
		ws_byte(s, b);
	}
}

/* Decode the text of w into s; returns the findings (escape, base64). */
static unsigned ew_decode(const uint8_t *in, const ew *w, int kind, wsink *s)
{
	unsigned flags = 0;
	if (w->b) {
		/* base64 bytes go through a small buffer to the sink */
		uint8_t tmp[3];
		obuf o = { tmp, sizeof(tmp), 0 };
		b64 st;
		memset(&st, 0, sizeof(st));
		for (size_t i = w->t0; i < w->t1; i++) {
			o.n = 0;
			b64_feed(&st, in[i], &o);
			for (size_t k = 0; k < o.n; k++)
				ws_char(s, kind, tmp[k]);
		}
		o.n = 0;
		b64_end(&st, &o);
		for (size_t k = 0; k < o.n; k++)
			ws_char(s, kind, tmp[k]);
		flags |= st.flags;
	} else {
		size_t i = w->t0;
		while (i < w->t1) {
			uint8_t ch = in[i];
			if (ch == '_') {
				ws_char(s, kind, ' ');
				i++;
			} else if (ch == '=' && i + 2 < w->t1 &&
				   hexval(in[i + 1]) >= 0 &&
				   hexval(in[i + 2]) >= 0) {
				ws_char(s, kind, (uint8_t)(hexval(in[i + 1]) << 4 |
							   hexval(in[i + 2])));
				i += 3;
			} else {
				if (ch == '=')
					flags |= MIME_DEC_BAD_ESCAPE;
				ws_char(s, kind, ch);
				i++;
			}
		}
	}
	if (s->need > 0)
		s->bad = true; /* a cut UTF-8 sequence at the end */
	return flags;
}

static void put_span(obuf *o, const uint8_t *in, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		put(o, in[i]);
}

size_t mime_decode_words(const uint8_t *in, size_t len, char *out,
			 size_t out_size, unsigned *flags_r)
{
	obuf o = { (uint8_t *)out, out_size > 0 ? out_size - 1 : 0, 0 };
	unsigned flags = 0;
	/* blanks seen right after a decoded word, not yet written */
	bool after_word = false;
	size_t ws0 = 0, ws1 = 0;
	size_t i = 0;
	while (i < len) {
		uint8_t ch = in[i];
		ew w;
		if (ch == '=' && i + 1 < len && in[i + 1] == '?' &&
		    ew_parse(in, len, i, &w)) {
			int kind = charset_kind(in + w.cs0, w.cs_len);
			bool ok = false;
			unsigned wf = 0;
			if (kind == 0) {
				flags |= MIME_DEC_CHARSET;
			} else {
				wsink v = { NULL, 0, 0, 0, false };
				wf = ew_decode(in, &w, kind, &v);
				ok = !v.bad;
				if (!ok)
					flags |= MIME_DEC_BAD_WORD;
			}
			if (ok) {
				flags |= wf;
				if (!after_word) /* else adjacent: drop blanks */
					put_span(&o, in, ws0, ws1);
				wsink e = { &o, 0, 0, 0, false };
				(void)ew_decode(in, &w, kind, &e);
			} else {
				put_span(&o, in, ws0, ws1);
				put_span(&o, in, w.start, w.end);
			}
			ws0 = ws1 = 0;
			after_word = ok;
			i = w.end;
			continue;
		}
		if (is_blank(ch) || ch == '\r' || ch == '\n') {
			size_t j = i;
			while (j < len && (is_blank(in[j]) || in[j] == '\r' ||
					   in[j] == '\n'))
				j++;
			if (after_word) {
				ws0 = i; /* held until we know what follows */
				ws1 = j;
			} else {
				put_span(&o, in, i, j);
			}
			i = j;
			continue;
		}
		put_span(&o, in, ws0, ws1);
		ws0 = ws1 = 0;
		after_word = false;
		put(&o, ch);
		i++;
	}
	put_span(&o, in, ws0, ws1);
	if (out_size > 0)
		out[o.n < o.cap ? o.n : o.cap] = '\0';
	if (o.n > o.cap)
		flags |= MIME_DEC_TRUNCATED;
	if (flags_r != NULL)
		*flags_r = flags;
	return o.n;
}
