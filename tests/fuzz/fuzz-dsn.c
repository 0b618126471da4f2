/*
 * fuzz-dsn.c — libFuzzer target for src/mime/dsn.c (issue 5): delivery
 * status notifications (RFC 3464) built from what a peer controls — the
 * remote reply, the MX name, ENVID, the recipients, ORCPT and the
 * original message.
 *
 * Input: byte 0 is a set of options (bit 0: two recipients instead of
 * one; bits 0-1 and 2-3: the recipients' actions, failed, delayed,
 * delivered or relayed; bit 3 also: max_original 100 bytes; bit 6: status
 * 4.4.1 instead of 5.1.1; bit 7: RET=FULL); then up to five
 * NUL-terminated strings: diag, remote_mta, envid, final_rcpt
 * (empty: b@example.net), orcpt; the rest is the original message.  A
 * missing string is NULL.
 *
 * Properties, checked without the module's help:
 *  - a refusal has a reason, and is one of those the inputs can cause (an
 *    address over DSN_ADDR_MAX, no boundary free of collisions);
 *  - the output has CRLF line ends only and no line over 998 octets;
 *  - it is 8-bit only if the original is;
 *  - mime_parse reads it: a multipart/report of three parts, no boundary
 *    collision and no unterminated multipart at depth 0 or 1;
 *  - the message/delivery-status part holds 1 + n blocks (per-message,
 *    then one per recipient), each line a "Name:" field or a
 *    continuation;
 *  - the same report built again gives the same bytes.
 * (The UBSan finding fixed in 83ab57e — pointer arithmetic on an empty
 * part buffer — came from an earlier form of this target.)
 */
#include "dsn.h"
#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-dsn: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

#define N_STRINGS 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t rnd[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
					 9, 10, 11, 12, 13, 14, 15, 16 };
	if (size < 2)
		return 0;
	uint8_t opt = data[0];
	/* the strings: a NUL-terminated copy of the rest, cut at each NUL */
	size_t rest = size - 1;
	char *buf = malloc(rest + 1);
	CHECK(buf != NULL);
	memcpy(buf, data + 1, rest);
	buf[rest] = '\0';
	char *s[N_STRINGS] = { 0 };
	const uint8_t *orig = NULL;
	size_t olen = 0, pos = 0;
	for (unsigned k = 0; k < N_STRINGS; k++) {
		const char *z = memchr(buf + pos, '\0', rest - pos);
		s[k] = buf + pos;
		if (z == NULL) {
			pos = rest;  /* the last string runs to the end */
			break;
		}
		pos = (size_t)(z - buf) + 1;
		if (k == N_STRINGS - 1) {
			orig = data + 1 + pos;
			olen = rest - pos;
		}
	}

	dsn_rcpt rc[2];
	for (unsigned i = 0; i < 2; i++) {
		rc[i] = (dsn_rcpt){
			.final_rcpt = s[3] != NULL && s[3][0] != '\0' ? s[3]
								     : "b@example.net",
			.orcpt = s[4],
			.action = (dsn_action)((opt >> (i * 2)) & 3),
			.status = (opt & 64) ? "4.4.1" : "5.1.1",
			.remote_mta = s[1],
			.diag = s[0],
			.last_attempt = 1767225600,
			.will_retry_until = 1767325600,
		};
	}
	dsn_report r = {
		.reporting_mta = "mx.example.org",
		.from = "MAILER-DAEMON@mx.example.org",
		.to = "alice@example.org",
		.envid = s[2],
		.msgid_domain = "mx.example.org",
		.random16 = rnd,
		.arrival = 1767225600,
		.now = 1767225600,
		.original = orig,
		.original_len = olen,
		.full = (opt & 128) != 0,
		.max_original = (opt & 8) ? 100 : 1u << 20,
		.rcpts = rc,
		.n = 1 + (opt & 1),
	};
	uint8_t *out = NULL;
	size_t len = 0;
	const char *err = NULL;
	if (dsn_build(&r, &out, &len, &err) < 0) {
		CHECK(err != NULL && out == NULL && len == 0);
		CHECK(strstr(err, "recipient") != NULL ||
		      strstr(err, "boundary") != NULL);
		free(buf);
		return 0;
	}

	/* CRLF only, lines of at most 998 octets, 8-bit only from the
	 * original */
	bool orig8 = false, out8 = false;
	for (size_t i = 0; i < olen; i++)
		orig8 |= orig[i] >= 0x80;
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		out8 |= out[i] >= 0x80;
		if (out[i] == '\r') {
			CHECK(i + 1 < len && out[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		CHECK(out[i] != '\n');
		CHECK(++col <= 998);
	}
	CHECK(!out8 || orig8);

	mime_tree *t = NULL;
	CHECK(mime_parse(out, len, NULL, &t, NULL) == MIME_OK);
	CHECK(strcmp(t->parts[0].type, "multipart") == 0 &&
	      strcmp(t->parts[0].subtype, "report") == 0);
	CHECK(t->parts[0].n_children == 3);
	for (size_t i = 0; i < t->n; i++) {
		if (t->parts[i].depth <= 1)
			CHECK((t->parts[i].flags & (MIME_PART_BOUNDARY_COLLISION |
						    MIME_PART_UNTERMINATED)) == 0);
	}
	/* the delivery-status part: 1 + n blocks of fields */
	const mime_part *ds =
		&t->parts[t->parts[t->parts[0].first_child].next_sibling];
	CHECK(strcmp(ds->type, "message") == 0 &&
	      strcmp(ds->subtype, "delivery-status") == 0);
	size_t blocks = 0;
	bool in_block = false;
	for (size_t i = ds->body_off; i < ds->end;) {
		const uint8_t *e = memchr(out + i, '\n', ds->end - i);
		size_t le = e != NULL ? (size_t)(e - out) : ds->end;
		bool empty = le == i || (le == i + 1 && out[i] == '\r');
		if (!empty && !in_block) {
			blocks++;
			in_block = true;
			CHECK(out[i] != ' ');
		}
		if (empty)
			in_block = false;
		if (!empty && out[i] != ' ') { /* a field name, then ':' */
			size_t j = i;
			while (j < le && out[j] != ':' && out[j] != ' ')
				j++;
			CHECK(j < le && out[j] == ':');
		}
		i = le + 1;
	}
	CHECK(blocks == 1 + r.n);
	mime_tree_destroy(&t);

	/* deterministic */
	uint8_t *again = NULL;
	size_t len2 = 0;
	CHECK(dsn_build(&r, &again, &len2, &err) == 0);
	CHECK(len2 == len && memcmp(again, out, len) == 0);
	free(again);
	free(out);
	free(buf);
	return 0;
}
