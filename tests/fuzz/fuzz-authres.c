/*
 * fuzz-authres.c — libFuzzer target for src/mime/authres.c
 * (Authentication-Results, RFC 8601; TESTING.md S20, D11, F8).
 *
 * Input: byte 0 picks what the rest is:
 *   even   a received field value: authres_parse_id (plain, and ARC when
 *          bit 1 is set), authres_claims_id, authres_scan over it as the
 *          value of an Authentication-Results field of a message
 *   odd    material for our own field: pieces cut at NUL give the
 *          authserv-id (its token bytes only), the SPF, DKIM and DMARC
 *          values; bits of byte 0 and the piece count pick which methods
 *          and results appear
 *
 * Properties:
 *  - reading: a refusal has a reason and an empty id; an id read is
 *    1..255 bytes without NUL, the ARC instance 1..50 (0 for a plain
 *    field), the field then claims that id (unless it is only "."), in
 *    either case of letters; authres_scan lists the field exactly when
 *    claims says so;
 *  - building: a refusal only for a cap too small (never with
 *    AUTHRES_FIELD_MAX) or the id "."; the field ends in CRLF, has no other CR or LF
 *    than CRLF followed by a blank, no NUL or other control bytes; read
 *    as a message it is exactly one Authentication-Results field whose
 *    authserv-id parses back to ours (and authres_scan finds it, once);
 *    built again it is the same bytes.
 */
#include "authres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-authres: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

static void flip_case(char *s)
{
	for (; *s; s++) {
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 32);
		else if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
	}
}

static void read_side(const uint8_t *v, size_t len, bool arc)
{
	char id[AUTHRES_ID_MAX + 1];
	unsigned inst = 77, ver = 77;
	const char *err = NULL;
	int rc = authres_parse_id(v, len, arc, id, &inst, &ver, &err);
	CHECK(rc == 0 || rc == -1);
	if (rc != 0) {
		CHECK(err != NULL && id[0] == '\0' && inst == 0);
		return;
	}
	size_t n = strlen(id);
	CHECK(n >= 1 && n <= AUTHRES_ID_MAX);
	if (arc)
		CHECK(inst >= 1 && inst <= AUTHRES_ARC_I_MAX);
	else
		CHECK(inst == 0);
	if (strcmp(id, ".") != 0) {
		CHECK(authres_claims_id(v, len, arc, id));
		flip_case(id);
		CHECK(authres_claims_id(v, len, arc, id));
	}
}

static void scan_side(const uint8_t *v, size_t len)
{
	/* "Authentication-Results:" + value as a message, when the value
	 * keeps to one field (no line end that is not followed by a blank) */
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '\n' && (i + 1 == len || (v[i + 1] != ' ' &&
						      v[i + 1] != '\t')))
			return;
		if (v[i] == '\0' || (v[i] == '\r' &&
				     (i + 1 == len || v[i + 1] != '\n')))
			return;
	}
	static const char name[] = "Authentication-Results:";
	size_t n = sizeof(name) - 1;
	uint8_t *msg = malloc(n + len + 4);
	CHECK(msg != NULL);
	memcpy(msg, name, n);
	memcpy(msg + n, v, len);
	memcpy(msg + n + len, "\r\n\r\n", 4);
	static const char *const ids[] = { "mx.ours.example", "a", "." };
	for (size_t k = 0; k < 3; k++) {
		mail_field f[2];
		bool claims = authres_claims_id(v, len, false, ids[k]);
		size_t found = authres_scan(msg, n + len + 4, ids[k], false, f,
					    2);
		CHECK(found == (claims ? 1u : 0u));
		if (found == 1)
			CHECK(f[0].off == 0);
	}
	free(msg);
}

static const char *const spf_r[] = { "none", "neutral", "pass", "fail",
	"softfail", "temperror", "permerror", "policy" };
static const char *const dkim_r[] = { "none", "pass", "fail", "policy",
	"neutral", "temperror", "permerror" };
static const char *const dmarc_r[] = { "none", "pass", "fail", "temperror",
	"permerror" };
static const char *const arc_r[] = { "none", "pass", "fail" };

static void build_side(uint8_t flags, const uint8_t *data, size_t size)
{
	enum { MAXP = 12 };
	static char piece[MAXP][400];
	size_t np = 0, start = 0;
	for (size_t i = 0; i <= size && np < MAXP; i++) {
		if (i == size || data[i] == '\0') {
			size_t n = i - start < 399 ? i - start : 399;
			memcpy(piece[np], data + start, n);
			piece[np][n] = '\0';
			np++;
			start = i + 1;
		}
	}
	for (size_t i = np; i < MAXP; i++)
		piece[i][0] = '\0';
	/* the id: the token bytes of piece 0, or "mx" */
	char id[AUTHRES_ID_MAX + 1];
	size_t o = 0;
	for (const char *p = piece[0]; *p && o < AUTHRES_ID_MAX; p++) {
		unsigned char c = (unsigned char)*p;
		if (c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c))
			id[o++] = (char)c;
	}
	if (o == 0)
		id[o++] = 'x';
	id[o] = '\0';
	if (strcmp(id, ".") == 0) {
		/* refused: no id can be equal to it */
		size_t l;
		const char *e = NULL;
		static char tiny[64];
		authres_results none = { 0 };
		CHECK(authres_build(id, &none, tiny, sizeof(tiny), &l, &e) ==
		      -1 && e != NULL);
		id[0] = 'x';
	}

	authres_dkim dk[4];
	size_t nd = np > 4 ? (np - 4) / 3 : 0;
	if (nd > 4)
		nd = 4;
	for (size_t i = 0; i < nd; i++) {
		dk[i] = (authres_dkim){
			.result = dkim_r[(flags + i) % 7],
			.d = piece[4 + 3 * i], .s = piece[5 + 3 * i],
			.b = piece[6 + 3 * i],
			.i = (flags & 0x20) ? piece[4 + 3 * i] : NULL,
			.a = (flags & 0x40) ? "rsa-sha256" : NULL,
		};
	}
	authres_results r = {
		.spf = (flags & 2) ? spf_r[(flags >> 2) % 8] : NULL,
		.spf_mailfrom = np > 1 ? piece[1] : NULL,
		.spf_helo = piece[2],
		.dkim = dk, .n_dkim = nd,
		.dmarc = (flags & 4) ? dmarc_r[(flags >> 3) % 5] : NULL,
		.dmarc_from = np > 3 ? piece[3] : NULL,
		.arc = (flags & 0x80) ? arc_r[(flags >> 4) % 3] : NULL,
		/* amp-did with an arbitrary header.d (a quoted value) */
		.amp_did = (flags & 1) ? dmarc_r[(flags >> 5) % 5] : NULL,
		.amp_did_d = np > 3 ? piece[np - 1] : NULL,
	};
	static char out[AUTHRES_FIELD_MAX], again[AUTHRES_FIELD_MAX];
	size_t len = 0, len2 = 0;
	const char *err = NULL;
	CHECK(authres_build(id, &r, out, sizeof(out), &len, &err) == 0);
	CHECK(len == strlen(out) && len >= 2);
	CHECK(out[len - 2] == '\r' && out[len - 1] == '\n');
	for (size_t i = 0; i + 2 < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c == '\r') {
			CHECK(out[i + 1] == '\n' && out[i + 2] == ' ');
			continue;
		}
		if (c == '\n') {
			CHECK(i > 0 && out[i - 1] == '\r');
			continue;
		}
		CHECK(c >= 0x20 && c != 0x7f);
	}
	/* one field, our id */
	mail_field f[2];
	CHECK(authres_scan((const uint8_t *)out, len, id, false, f, 2) == 1);
	CHECK(f[0].off == 0 && f[0].len == len);
	char got[AUTHRES_ID_MAX + 1];
	unsigned inst, ver;
	const char *v = out + strlen("Authentication-Results:");
	CHECK(authres_parse_id((const uint8_t *)v, strlen(v), false, got,
			       &inst, &ver, &err) == 0);
	CHECK(strcmp(got, id) == 0 && ver == 1);
	/* deterministic; a buffer one byte short is refused, exact is not */
	CHECK(authres_build(id, &r, again, sizeof(again), &len2, &err) == 0);
	CHECK(len2 == len && memcmp(out, again, len) == 0);
	CHECK(authres_build(id, &r, again, len, &len2, &err) == -1);
	CHECK(again[0] == '\0' && err != NULL);
	CHECK(authres_build(id, &r, again, len + 1, &len2, &err) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	if (flags & 1) {
		build_side(flags, data + 1, size - 1);
		return 0;
	}
	read_side(data + 1, size - 1, (flags & 2) != 0);
	if (!(flags & 2))
		scan_side(data + 1, size - 1);
	return 0;
}
