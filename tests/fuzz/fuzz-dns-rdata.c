/*
 * fuzz-dns-rdata.c — libFuzzer target for src/dns/dns-rdata.c (issue 5):
 * the decoders of the record data libunbound hands over (names, MX,
 * TLSA, TXT, A/AAAA) and the check of query names.
 *
 * Input: byte 0 sizes the TXT output buffer (see below); the rest is the
 * rdata, given to every decoder.
 *
 * Properties, each checked in this file without the module's help:
 *  - a name is accepted exactly when a plain reading of RFC 1035 labels
 *    (no pointers, no reserved types, at most 255 octets, host-name
 *    octets only) accepts it; then the text is the labels lower-cased and
 *    joined by dots ("." for the root), at most 253 characters, and
 *    spelling it back in wire form gives the input's first `used` octets,
 *    lower-cased; a refusal leaves an empty string;
 *  - MX is accepted exactly when the name after the two preference
 *    octets is and fills the rest; the preference is big-endian;
 *  - TLSA is accepted exactly for 4..3+1024 octets, the fields are the
 *    first three octets and the data the rest;
 *  - TXT: accepted exactly when the strings tile the rdata and hold no
 *    NUL, with a buffer of len octets; then the output is the strings
 *    joined; with a smaller buffer (byte 0) the same output or a refusal
 *    with an empty string, refused exactly when the text and its NUL do
 *    not fit;
 *  - A/AAAA accepted exactly for 4/16 octets, giving those octets;
 *  - dns_name_ok agrees with a reference check written here (split on
 *    dots) on the input read as a string, with and without '_'.
 */
#include "dns-rdata.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, int line)
{
	fprintf(stderr, "fuzz-dns-rdata: line %d: %s\n", line, what);
	abort();
}

#define CHECK(cond)                            \
	do {                                   \
		if (!(cond))                   \
			fail(#cond, __LINE__); \
	} while (0)

static bool host_octet(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* The reference reading: the wire length of the name at p, or 0. */
static size_t name_reference(const uint8_t *p, size_t len)
{
	size_t pos = 0;
	for (;;) {
		if (pos >= len)
			return 0;
		size_t l = p[pos];
		if (l > 63)
			return 0; /* pointers and reserved types alike */
		if (l == 0)
			return pos + 1 <= 255 ? pos + 1 : 0;
		if (pos + 1 + l > len)
			return 0;
		for (size_t i = 0; i < l; i++)
			if (!host_octet(p[pos + 1 + i]))
				return 0;
		pos += 1 + l;
		if (pos + 1 > 255)
			return 0;
	}
}

static void check_name(const uint8_t *p, size_t len)
{
	char out[DNS_NAME_BUF];
	size_t used = 0;
	const char *why = NULL;
	size_t ref = name_reference(p, len);
	int rc = dns_name_decode(p, len, &used, out, &why);
	if (ref == 0) {
		CHECK(rc == -1 && why != NULL && out[0] == '\0');
		return;
	}
	CHECK(rc == 0 && used == ref);
	size_t tl = strlen(out);
	CHECK(tl >= 1 && tl <= DNS_NAME_MAX);
	if (used == 1) {
		CHECK(strcmp(out, ".") == 0);
		return;
	}
	/* spelled back: labels between the dots */
	uint8_t wire[DNS_NAME_WIRE_MAX + 1];
	size_t o = 0;
	const char *s = out;
	for (;;) {
		size_t k = strcspn(s, ".");
		CHECK(k >= 1 && k <= 63 && o + 1 + k <= DNS_NAME_WIRE_MAX);
		wire[o++] = (uint8_t)k;
		for (size_t i = 0; i < k; i++) {
			CHECK(host_octet((uint8_t)s[i]) && lower((uint8_t)s[i]) ==
								 (uint8_t)s[i]);
			wire[o++] = (uint8_t)s[i];
		}
		if (s[k] == '\0')
			break;
		s += k + 1;
	}
	wire[o++] = 0;
	CHECK(o == used);
	for (size_t i = 0; i < used; i++)
		CHECK(wire[i] == lower(p[i]));
}

static void check_mx(const uint8_t *p, size_t len)
{
	unsigned pref = 0;
	char host[DNS_NAME_BUF];
	const char *why = NULL;
	int rc = dns_mx_decode(p, len, &pref, host, &why);
	bool ok = len >= 3 && name_reference(p + 2, len - 2) == len - 2;
	CHECK((rc == 0) == ok);
	if (!ok) {
		CHECK(why != NULL && host[0] == '\0');
		return;
	}
	CHECK(pref == ((unsigned)p[0] << 8 | p[1]));
	CHECK(strlen(host) >= 1);
}

static void check_tlsa(const uint8_t *p, size_t len)
{
	uint8_t u = 0, s = 0, m = 0;
	const uint8_t *d = NULL;
	size_t dl = 0;
	const char *why = NULL;
	int rc = dns_tlsa_decode(p, len, &u, &s, &m, &d, &dl, &why);
	bool ok = len >= 4 && len <= 3 + DNS_TLSA_DATA_MAX;
	CHECK((rc == 0) == ok);
	if (!ok) {
		CHECK(why != NULL);
		return;
	}
	CHECK(u == p[0] && s == p[1] && m == p[2] && d == p + 3 &&
	      dl == len - 3);
}

static void check_txt(const uint8_t *p, size_t len, size_t small)
{
	/* the reference: strings tiling the rdata, no NUL */
	char *ref = malloc(len + 1);
	size_t rl = 0, pos = 0;
	bool ok = len > 0;
	if (ref == NULL)
		abort();
	while (ok && pos < len) {
		size_t l = p[pos++];
		if (l > len - pos || memchr(p + pos, 0, l) != NULL) {
			ok = false;
			break;
		}
		memcpy(ref + rl, p + pos, l);
		rl += l;
		pos += l;
	}
	ref[rl] = '\0';

	/* a buffer of len octets (what dns.c gives is len + 1) */
	size_t cap = len == 0 ? 1 : len;
	char *out = malloc(cap);
	size_t ol = 0;
	const char *why = NULL;
	if (out == NULL)
		abort();
	int rc = dns_txt_decode(p, len, out, cap, &ol, &why);
	CHECK((rc == 0) == ok);
	if (ok) {
		CHECK(ol == rl && memcmp(out, ref, rl + 1) == 0);
	} else {
		CHECK(why != NULL && out[0] == '\0');
	}
	free(out);

	/* a smaller buffer */
	if (small < cap) {
		char *sm = malloc(small == 0 ? 1 : small);
		if (sm == NULL)
			abort();
		rc = dns_txt_decode(p, len, sm, small, &ol, &why);
		if (ok && rl + 1 <= small) {
			CHECK(rc == 0 && ol == rl && memcmp(sm, ref, rl + 1) == 0);
		} else {
			CHECK(rc == -1);
			if (small > 0)
				CHECK(sm[0] == '\0');
		}
		free(sm);
	}
	free(ref);
}

static void check_addr(const uint8_t *p, size_t len)
{
	struct sockaddr_storage ss;
	const char *why;
	int rc = dns_addr_decode(DNS_TYPE_A, p, len, &ss, &why);
	CHECK((rc == 0) == (len == 4));
	if (rc == 0) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		CHECK(in->sin_family == AF_INET && in->sin_port == 0);
		CHECK(memcmp(&in->sin_addr, p, 4) == 0);
	}
	rc = dns_addr_decode(DNS_TYPE_AAAA, p, len, &ss, &why);
	CHECK((rc == 0) == (len == 16));
	if (rc == 0) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		CHECK(in6->sin6_family == AF_INET6 && in6->sin6_port == 0);
		CHECK(memcmp(&in6->sin6_addr, p, 16) == 0);
	}
	CHECK(dns_addr_decode(DNS_TYPE_MX, p, len, &ss, &why) == -1);
}

/* The reference of dns_name_ok: split on dots. */
static bool name_ok_reference(const char *s, bool service)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	const char *l = s;
	for (;;) {
		size_t k = strcspn(l, ".");
		if (k == 0 || k > 63 || l[0] == '-' || l[k - 1] == '-')
			return false;
		for (size_t i = 0; i < k; i++) {
			uint8_t c = (uint8_t)l[i];
			if (c == '_' ? !service : !host_octet(c))
				return false;
		}
		if (l[k] == '\0')
			return true;
		l += k + 1;
	}
}

static void check_name_ok(const uint8_t *p, size_t len)
{
	char s[300];
	if (len >= sizeof(s) || memchr(p, 0, len) != NULL)
		return;
	memcpy(s, p, len);
	s[len] = '\0';
	for (int service = 0; service <= 1; service++) {
		const char *why = NULL;
		bool ok = dns_name_ok(s, service != 0, &why);
		CHECK(ok == name_ok_reference(s, service != 0));
		CHECK(ok || why != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t small = data[0];
	const uint8_t *p = data + 1;
	size_t len = size - 1;

	check_name(p, len);
	check_mx(p, len);
	check_tlsa(p, len);
	check_txt(p, len, small);
	check_addr(p, len);
	check_name_ok(p, len);
	return 0;
}
