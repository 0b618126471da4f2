/*
 * fuzz-imap-session.c — TESTING.md F10 (session level): arbitrary client
 * bytes into the IMAP session (src/imap/imap-session.c) over the store
 * in memory of the unit tests (tests/unit/imap-memstore.c), with the
 * real parser and imap-msg underneath.
 *
 * Input layout: byte 0 picks the start (bit 0: not logged in, else
 * logged in with INBOX selected; bit 1: STARTTLS offered; bit 2:
 * LOGINDISABLED before TLS; bit 3: another session changes INBOX
 * between chunks: a message appended, the first one expunged, flags
 * toggled, then imap_session_changed()), byte 1 seeds the chunk sizes;
 * the rest is what the client sends.  LOGIN u p succeeds.
 *
 * Invariants checked (abort on violation):
 *  - feed never takes more than it was given; a session that takes
 *    nothing and says nothing is closing or waiting for TLS (no hang);
 *  - no piece of output is larger than IMAP_OUT_CHUNK plus one
 *    message's answer (messages are capped by literal_max here);
 *  - outside literals ({n} announced), every LF comes after a CR;
 *  - after closing, feed takes everything and nothing more is produced.
 */
#include "imap-memstore.h"
#include "imap-session.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LITERAL_MAX 16384u
#define PIECE_MAX (IMAP_OUT_CHUNK + 8u * LITERAL_MAX + 65536u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz {
	imap_session *s;
	memstore *ms;
	bool tls_wanted;
} fz;

static void on_login(void *arg, const char *user, const char *pw, size_t len)
{
	fz *f = arg;
	bool ok = strcmp(user, "u") == 0 && len == 1 && pw[0] == 'p';
	imap_session_login_done(f->s, ok, &memstore_ops, f->ms);
}

static void on_starttls(void *arg)
{
	((fz *)arg)->tls_wanted = true;
}

typedef struct outst {
	uint64_t lit_left;      /* literal bytes still to come */
	bool cr;                /* the last byte outside a literal was CR */
} outst;

/* Take all output; check its pieces and that outside literals every LF
 * follows a CR. */
static size_t drain(fz *f, outst *o)
{
	const uint8_t *p;
	size_t n, total = 0;
	while ((n = imap_session_output(f->s, &p)) > 0) {
		if (n > PIECE_MAX)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (o->lit_left > 0) {
				o->lit_left--;
				continue;
			}
			if (p[i] == '\n' && !o->cr)
				abort();
			o->cr = p[i] == '\r';
			/* "{n}\r\n" announces n literal bytes */
			if (p[i] == '}' && i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
				size_t k = i;
				uint64_t v = 0, mul = 1;
				while (k > 0 && p[k - 1] >= '0' && p[k - 1] <= '9' &&
				       mul < UINT64_C(1000000000000)) {
					v += (uint64_t)(p[k - 1] - '0') * mul;
					mul *= 10;
					k--;
				}
				if (k > 0 && p[k - 1] == '{' && k < i) {
					o->lit_left = v;
					o->cr = false;
					i += 2;
				}
			}
		}
		total += n;
		imap_session_output_consumed(f->s, n);
	}
	return total;
}

static void other_session(memstore *ms)
{
	const char *e;
	imap_mbox_view v;
	if (memstore_add(ms, "INBOX", "Subject: new\r\n\r\nnew mail\r\n", 0, 0) == 0)
		return;
	if (memstore_ops.view(ms, "INBOX", &v, &e) != 0)
		return;
	if (v.n > 2) {
		(void)memstore_ops.expunge(ms, "INBOX", &v.uids[0], 1, &e);
		uint64_t nf;
		(void)memstore_ops.store(ms, "INBOX", &v.uids[1], 1, IMAP_STORE_SET,
					 v.flags[1] ^ IMAP_FLAG_SEEN, &nf, &e);
	}
	imap_mbox_view_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0], seed = data[1];
	data += 2;
	size -= 2;
	fz f = { 0 };
	f.ms = memstore_new();
	if (f.ms == NULL)
		return 0;
	memstore_set_max(f.ms, 64);
	static const char *const msgs[] = {
		"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n"
		"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nHello Bob.\r\n",
		"From: bob@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
		"Content-Type: text/plain\r\n\r\none\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\n"
		"Subject: inner\r\n\r\ninner body\r\n--XX--\r\n",
		"Subject: =?UTF-8?B?w6k=?=\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		(void)memstore_add(f.ms, "INBOX", msgs[i], i == 1 ? IMAP_FLAG_SEEN : 0,
				   760708800 + (int64_t)i * 86400);
	imap_session_settings set = {
		.starttls = (mode & 2) != 0,
		.login_needs_tls = (mode & 4) != 0,
		.literal_max_pre_auth = 1024,
		.literal_max = LITERAL_MAX,
	};
	imap_session_callbacks cb = { .login = on_login, .starttls = on_starttls };
	if (imap_session_new(&set, &cb, &f, &f.s) != 0) {
		memstore_free(&f.ms);
		return 0;
	}
	outst lit = { 0 };
	imap_session_greet(f.s);
	drain(&f, &lit);
	if (!(mode & 1)) {
		static const char pre[] = "0 LOGIN u p\r\n0 SELECT INBOX\r\n";
		if (imap_session_feed(f.s, (const uint8_t *)pre, sizeof(pre) - 1) != sizeof(pre) - 1)
			abort();
		drain(&f, &lit);
	}
	size_t off = 0;
	uint32_t r = seed * 2654435761u + 1;
	while (off < size) {
		r = r * 1103515245u + 12345u;
		size_t chunk = 1 + (r >> 16) % 64;
		if ((r >> 8) & 1)
			chunk = size - off;
		if (chunk > size - off)
			chunk = size - off;
		size_t k = imap_session_feed(f.s, data + off, chunk);
		if (k > chunk)
			abort();
		bool closing = imap_session_closing(f.s);
		size_t out = drain(&f, &lit);
		if (closing) {
			/* everything is taken, nothing more said */
			if (imap_session_feed(f.s, data, size) != size || drain(&f, &lit) != 0)
				abort();
			break;
		}
		if (f.tls_wanted) {
			/* the driver discards what it holds and starts TLS */
			f.tls_wanted = false;
			imap_session_tls_started(f.s);
			off += chunk;
			continue;
		}
		if (k == 0 && out == 0)
			abort();            /* stuck */
		off += k;
		if (mode & 8) {
			other_session(f.ms);
			imap_session_changed(f.s);
			drain(&f, &lit);
		}
	}
	imap_session_timeout(f.s);
	drain(&f, &lit);
	if (!imap_session_closing(f.s))
		abort();
	imap_session_free(&f.s);
	memstore_free(&f.ms);
	return 0;
}
