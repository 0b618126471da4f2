/*
 * fuzz-routes.c — libFuzzer target for the transport map parser
 * (router_parse, src/daemon/route.c; format in route.h).
 *
 * Input: arbitrary bytes as map text (NUL bytes included).
 *
 * Properties (abort() on violation):
 *  - a failure says "line N: ..." with 1 <= N <= the number of lines, or
 *    "out of memory"; a success returns at most one entry per line;
 *  - every entry is well formed: domain of 1..253 bytes of [a-z0-9.-],
 *    host of 1..ROUTE_HOST_MAX bytes without whitespace, port 1..65535,
 *    transport tls or quic, from_map set;
 *  - the text parsed one line at a time gives the same entries, and the
 *    same error at the same line (no state leaks from line to line);
 *  - an entry printed back as a map line parses to the same entry.
 */
#include "route.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T "fuzz-routes"

static void fail(const char *what)
{
	fprintf(stderr, "%s: property violated: %s\n", T, what);
	abort();
}

static void check_entry(const route_entry *e)
{
	size_t dl = strnlen(e->domain, sizeof(e->domain));
	if (dl == 0 || dl > 253)
		fail("domain length");
	for (size_t i = 0; i < dl; i++) {
		char c = e->domain[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			fail("a domain byte outside [a-z0-9.-]");
	}
	size_t hl = strnlen(e->r.host, sizeof(e->r.host));
	if (hl == 0 || hl > ROUTE_HOST_MAX)
		fail("host length");
	if (strpbrk(e->r.host, " \t\r\n#") != NULL)
		fail("whitespace or # in a host");
	if (e->r.port == 0)
		fail("port 0");
	if (e->r.transport != NCLIENT_TLS && e->r.transport != NCLIENT_QUIC)
		fail("transport");
	if (!e->r.from_map)
		fail("from_map not set");
}

static bool same_entry(const route_entry *a, const route_entry *b)
{
	return strcmp(a->domain, b->domain) == 0 &&
	       strcmp(a->r.host, b->r.host) == 0 && a->r.port == b->r.port &&
	       a->r.transport == b->r.transport && a->r.pinned == b->r.pinned &&
	       (!a->r.pinned || memcmp(a->r.pin, b->r.pin, 32) == 0);
}

/* The map line for e; false when the host cannot be written back (route.c
 * does not check host syntax: "a]b:c:1" gives the host "a]b:c", which needs
 * brackets and cannot have them). */
static bool print_entry(const route_entry *e, char *out, size_t size)
{
	bool v6 = strchr(e->r.host, ':') != NULL || e->r.host[0] == '[';
	if (v6 && strchr(e->r.host, ']') != NULL)
		return false;
	char key[64] = "";
	if (e->r.pinned) {
		memcpy(key, " key=", 5);
		sodium_bin2base64(key + 5, sizeof(key) - 5, e->r.pin, 32,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	int n = snprintf(out, size, "%s %s%s%s:%u %s%s", e->domain,
			 v6 ? "[" : "", e->r.host, v6 ? "]" : "", e->r.port,
			 e->r.transport == NCLIENT_QUIC ? "quic" : "tls", key);
	return n > 0 && (size_t)n < size;
}

/* "line N: reason" -> N, reason; 0 for other messages. */
static unsigned err_line(const char *err, const char **reason_r)
{
	unsigned n = 0;
	*reason_r = err;
	if (strncmp(err, "line ", 5) != 0)
		return 0;
	const char *p = err + 5;
	while (*p >= '0' && *p <= '9' && n < 100000000u)
		n = n * 10 + (unsigned)(*p++ - '0');
	if (*p != ':')
		return 0;
	*reason_r = p;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy so ASan sees any read past the end. */
	char *text = malloc(size > 0 ? size : 1);
	if (text == NULL)
		abort();
	memcpy(text, data, size);
	unsigned lines = 0;
	for (size_t i = 0; i < size; i++)
		if (text[i] == '\n' || i == size - 1)
			lines++;

	route_entry *e = NULL;
	size_t n = 0;
	char err[256] = "";
	int r = router_parse(text, size, &e, &n, err, sizeof(err));
	unsigned eline = 0;
	const char *ereason = NULL;
	if (r != 0) {
		eline = err_line(err, &ereason);
		if ((eline == 0 || eline > lines) &&
		    strcmp(err, "out of memory") != 0)
			fail("an error without a valid line number");
	} else {
		if (n > lines || (n > 0) != (e != NULL))
			fail("more entries than lines, or entries without an array");
		for (size_t i = 0; i < n; i++)
			check_entry(&e[i]);
	}

	/* one line at a time */
	const char *p = text, *end = text + size;
	size_t k = 0;
	unsigned lineno = 0;
	bool stopped = false;
	while (p < end && !stopped) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (size_t)((nl != NULL ? nl : end) - p);
		lineno++;
		route_entry *le = NULL;
		size_t ln = 0;
		char lerr[256] = "";
		if (router_parse(p, ll, &le, &ln, lerr, sizeof(lerr)) != 0) {
			const char *lreason;
			if (r == 0 || lineno != eline || err_line(lerr, &lreason) != 1 ||
			    strcmp(lreason, ereason) != 0)
				fail("a line alone fails otherwise than in the map");
			stopped = true;
		} else {
			if (ln > 1)
				fail("one line gave more than one entry");
			if (r == 0 && ln == 1 && (k >= n || !same_entry(&le[0], &e[k])))
				fail("a line alone parses otherwise than in the map");
			k += ln;
		}
		free(le);
		p = nl != NULL ? nl + 1 : end;
	}
	if (r == 0 && k != n)
		fail("the lines alone give another number of entries");
	if (r != 0 && !stopped && eline != 0)
		fail("the map fails at a line that parses alone");

	/* printed back */
	for (size_t i = 0; r == 0 && i < n; i++) {
		char line[512];
		if (!print_entry(&e[i], line, sizeof(line)))
			continue;
		route_entry *pe = NULL;
		size_t pn = 0;
		char perr[256];
		if (router_parse(line, strlen(line), &pe, &pn, perr, sizeof(perr)) !=
			    0 ||
		    pn != 1 || !same_entry(&pe[0], &e[i]))
			fail("an entry printed back does not parse to itself");
		free(pe);
	}
	free(e);
	free(text);
	return 0;
}
