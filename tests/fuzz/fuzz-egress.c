/*
 * fuzz-egress.c — libFuzzer target for src/mime/egress.c (issue 5): the
 * outbound rewrite of a message an AMP user sealed to the gateway, fed
 * any bytes.
 *
 * Input: byte 0 picks the map (bit 0: the sender is mapped to
 * alice.mapped@corp.example; bit 1: DIDs whose local part starts with 'x'
 * map to an invalid address; bit 2: no map function at all; DIDs whose
 * local part starts with 'm' map to m-LOCAL@mapped.example otherwise);
 * the rest is the message.  The sender is did:aftersmtp:example.org:alice.
 *
 * Properties, checked without the module's help:
 *  - a failure has a reason and leaves nothing allocated in the result;
 *  - the output has CRLF line ends only; its header section (read with
 *    mail-header.c) ends at an empty line, has no malformed field, no
 *    AMP-* and no Bcc field, exactly one From, Date and Message-ID;
 *  - the body is the input's body with its line ends made CRLF;
 *  - 1..1000 recipients, each accepted by egress_addr_ok, no two the
 *    same (domain case aside); an 8-bit recipient sets smtputf8;
 *  - from_domain is set and lower case; eightbit says whether the output
 *    has a byte >= 0x80;
 *  - idempotence: the output with one AMP-Egress-To field per recipient
 *    put back on top gives the same output and the same recipients (when
 *    that stays within the header limits).
 */
#include "egress.h"
#include "mail-header.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SENDER "did:aftersmtp:example.org:alice"

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-egress: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

static const char *map(void *arg, const char *did, char *buf, size_t cap)
{
	unsigned opt = *(const unsigned *)arg;
	const char *local = strrchr(did, ':');
	CHECK(local != NULL && strncmp(did, "did:aftersmtp:", 14) == 0);
	local++;
	if ((opt & 1) && strcmp(did, SENDER) == 0) {
		snprintf(buf, cap, "alice.mapped@corp.example");
		return buf;
	}
	if ((opt & 2) && local[0] == 'x')
		return "not an address";
	if (local[0] == 'm') {
		int n = snprintf(buf, cap, "m-%s@mapped.example", local);
		CHECK(n > 0 && (size_t)n < cap);
		return buf;
	}
	return NULL;
}

/* m[a..b) with bare LF and a final CR as CRLF, into a new buffer. */
static uint8_t *norm(const uint8_t *m, size_t len, size_t a, size_t *n_r)
{
	uint8_t *o = malloc(2 * (len - a) + 1);
	size_t k = 0;
	CHECK(o != NULL);
	for (size_t i = a; i < len; i++) {
		if ((m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) ||
		    (m[i] == '\r' && i + 1 == len)) {
			o[k++] = '\r';
			o[k++] = '\n';
		} else {
			o[k++] = m[i];
		}
	}
	*n_r = k;
	return o;
}

static bool same_addr(const char *a, const char *b)
{
	const char *x = strrchr(a, '@'), *y = strrchr(b, '@');
	CHECK(x != NULL && y != NULL);
	return x - a == y - b && memcmp(a, b, (size_t)(x - a)) == 0 &&
	       strcasecmp(x, y) == 0;
}

static void check_result(const uint8_t *in, size_t len,
			 const egress_result *r)
{
	const uint8_t *o = r->msg;
	bool eight = false;

	/* CRLF only */
	for (size_t i = 0; i < r->len; i++) {
		if (o[i] == '\r')
			CHECK(i + 1 < r->len && o[i + 1] == '\n');
		if (o[i] == '\n')
			CHECK(i > 0 && o[i - 1] == '\r');
		if (o[i] >= 0x80)
			eight = true;
	}
	CHECK(eight == r->eightbit);

	/* the header section */
	mail_header_iter it;
	mail_field f;
	size_t from = 0, date = 0, msgid = 0;
	mail_header_iter_init(&it, o, r->len);
	while (mail_header_next(&it, &f) == 1) {
		CHECK(!f.malformed && !f.nul);
		CHECK(f.name_len < 4 || strncasecmp((const char *)o + f.off,
						    "AMP-", 4) != 0);
		CHECK(!mail_field_is(o, &f, "Bcc"));
		from += mail_field_is(o, &f, "From");
		date += mail_field_is(o, &f, "Date");
		msgid += mail_field_is(o, &f, "Message-ID");
	}
	CHECK(!it.no_separator);
	CHECK(from == 1 && date == 1 && msgid == 1);

	/* the body, unchanged but for its line ends */
	mail_header_iter_init(&it, in, len);
	while (mail_header_next(&it, &f) == 1)
		;
	size_t bn;
	uint8_t *body = norm(in, len, it.body_off, &bn);
	mail_header_iter_init(&it, o, r->len);
	while (mail_header_next(&it, &f) == 1)
		;
	CHECK(r->len - it.body_off == bn);
	CHECK(bn == 0 || memcmp(o + it.body_off, body, bn) == 0);
	free(body);

	/* recipients */
	CHECK(r->n_rcpts >= 1 && r->n_rcpts <= EGRESS_MAX_RCPTS);
	for (size_t i = 0; i < r->n_rcpts; i++) {
		const char *a = r->rcpts[i];
		CHECK(egress_addr_ok(a, strlen(a)));
		for (size_t k = 0; a[k] != '\0'; k++)
			if ((uint8_t)a[k] >= 0x80)
				CHECK(r->smtputf8);
		for (size_t j = 0; j < i; j++)
			CHECK(!same_addr(a, r->rcpts[j]));
	}
	CHECK(r->from_domain != NULL && r->from_domain[0] != '\0');
	for (const char *p = r->from_domain; *p; p++)
		CHECK(!(*p >= 'A' && *p <= 'Z'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t rnd[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
					 9, 10, 11, 12, 13, 14, 15, 16 };
	const uint64_t now = UINT64_C(1767225600);
	if (size < 1)
		return 0;
	unsigned opt = data[0];
	egress_map_fn *fn = (opt & 4) ? NULL : map;
	const uint8_t *in = data + 1;
	size_t len = size - 1;
	egress_result r, r2;
	const char *err = NULL;

	if (egress_prepare(in, len, SENDER, fn, &opt, "gw.example.org", rnd,
			   now, &r, &err) < 0) {
		CHECK(err != NULL && err[0] != '\0');
		CHECK(r.msg == NULL && r.rcpts == NULL && r.n_rcpts == 0 &&
		      r.from_domain == NULL);
		return 0;
	}
	check_result(in, len, &r);

	/* idempotence, when the fields put back keep the header section
	 * within its limits */
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, r.msg, r.len);
	while (mail_header_next(&it, &f) == 1)
		;
	size_t extra = 0;
	for (size_t i = 0; i < r.n_rcpts; i++)
		extra += strlen(r.rcpts[i]) + 19;
	if (it.fields + r.n_rcpts > EGRESS_MAX_FIELDS ||
	    it.body_off + extra > EGRESS_MAX_HEADER) {
		egress_result_free(&r);
		return 0;
	}
	size_t cap = r.len + 1;
	for (size_t i = 0; i < r.n_rcpts; i++)
		cap += strlen(r.rcpts[i]) + 32;
	uint8_t *again = malloc(cap);
	size_t k = 0;
	CHECK(again != NULL);
	for (size_t i = 0; i < r.n_rcpts; i++) {
		int n = snprintf((char *)again + k, cap - k,
				 "AMP-Egress-To: <%s>\r\n", r.rcpts[i]);
		CHECK(n > 0 && (size_t)n < cap - k);
		k += (size_t)n;
	}
	memcpy(again + k, r.msg, r.len);
	k += r.len;
	err = NULL;
	if (egress_prepare(again, k, SENDER, fn, &opt, "gw.example.org", rnd,
			   now + 1, &r2, &err) < 0)
		fail(err, __LINE__);
	CHECK(r2.len == r.len && memcmp(r2.msg, r.msg, r.len) == 0);
	CHECK(r2.n_rcpts == r.n_rcpts);
	for (size_t i = 0; i < r.n_rcpts; i++)
		CHECK(strcmp(r.rcpts[i], r2.rcpts[i]) == 0);
	CHECK(strcmp(r.from_domain, r2.from_domain) == 0);
	CHECK(r.eightbit == r2.eightbit && r.smtputf8 == r2.smtputf8);
	free(again);
	egress_result_free(&r2);
	egress_result_free(&r);
	CHECK(r.msg == NULL);
	return 0;
}
