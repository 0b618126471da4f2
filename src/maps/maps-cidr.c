/*
 * maps-cidr.c — network keys of access_map and their lookup: longest
 * prefix first.
 *
 * Keys: an IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1"), a CIDR
 * block ("192.0.2.0/24", "[2001:db8::]/32"), or a partial IPv4 address of
 * one to three octets ("1.2.3" = 1.2.3.0/24, as Postfix's indexed access
 * tables truncate client addresses).  A block with bits set beyond its
 * prefix is refused (it would not mean what it says), as are leading
 * zeros, prefixes beyond 32 / 128 and IPv6 zone ids.  An IPv4-mapped IPv6
 * key (::ffff:0:0/96 and longer) is stored as the IPv4 network, since
 * lookups of mapped addresses are made as IPv4.  A bracketed address
 * without a prefix ("[192.0.2.1]") is not a network but a domain literal,
 * the domain of user@[192.0.2.1].
 *
 * Index: networks sorted by family, prefix length (longest first) and
 * address, grouped by (family, prefix); a lookup masks the address to
 * each group's prefix, longest first, and binary-searches the group:
 * O(prefix lengths present x log n).  Unlike Postfix's cidr_table, which
 * takes the first match in file order, the order of lines never matters.
 */
#include "maps-private.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0,
				       0, 0, 0, 0, 0xff, 0xff };

/* Copy s[0..len) into buf (size n), dropping "[...]" and an "IPv6:"
 * prefix inside them.  False when it does not fit or the brackets are
 * unbalanced. */
static bool strip_addr(const char *s, size_t len, char *buf, size_t n)
{
	if (len > 0 && s[0] == '[') {
		if (len < 2 || s[len - 1] != ']')
			return false;
		s++;
		len -= 2;
		if (len >= 5 && strncasecmp(s, "ipv6:", 5) == 0) {
			s += 5;
			len -= 5;
		}
	}
	if (len == 0 || len >= n || memchr(s, '%', len) != NULL)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return true;
}

static bool pton(const char *buf, uint8_t addr[16], int *family_r)
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family_r = 4;
		return true;
	}
	if (strchr(buf, ':') != NULL && inet_pton(AF_INET6, buf, addr) == 1) {
		*family_r = 6;
		return true;
	}
	return false;
}

bool maps_ip_parse(const char *s, uint8_t addr[16], int *family_r)
{
	char buf[64];
	if (s == NULL || !strip_addr(s, strlen(s), buf, sizeof(buf)) ||
	    !pton(buf, addr, family_r))
		return false;
	if (*family_r == 6 && memcmp(addr, v4mapped, 12) == 0) {
		memmove(addr, addr + 12, 4);
		memset(addr + 4, 0, 12);
		*family_r = 4;
	}
	return true;
}

static void mask(uint8_t addr[16], unsigned prefix)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;
		if (bits >= 8)
			continue;
		addr[i] &= (uint8_t)(0xff00u >> bits);
	}
}

/* 1 to 3 octets "a[.b[.c]]" of 0..255 without leading zeros. */
static bool partial_v4(const char *s, uint8_t addr[16], unsigned *octets_r)
{
	unsigned n = 0;
	memset(addr, 0, 16);
	for (;;) {
		unsigned v = 0, d = 0;
		while (s[d] >= '0' && s[d] <= '9' && d < 4)
			v = v * 10 + (unsigned)(s[d++] - '0');
		if (d == 0 || d > 3 || v > 255 || (d > 1 && s[0] == '0'))
			return false;
		if (n == 3)
			return false;
		addr[n++] = (uint8_t)v;
		s += d;
		if (*s == '\0')
			break;
		if (*s != '.')
			return false;
		s++;
	}
	*octets_r = n;
	return n >= 1 && n <= 3;
}

int maps_net_parse(const char *key, maps_net *n, const char **why_r)
{
	const char *slash = strchr(key, '/');
	size_t al = slash != NULL ? (size_t)(slash - key) : strlen(key);
	char buf[64];
	int family = 0;
	memset(n, 0, sizeof(*n));

	bool digits_dots = al > 0;
	for (size_t i = 0; i < al; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || key[i] == '.'))
			digits_dots = false;
	bool colon = memchr(key, ':', al) != NULL;
	if (slash == NULL && ((!digits_dots && !colon) || key[0] == '['))
		return 0; /* a name, or a domain literal [192.0.2.1] */

	if (!strip_addr(key, al, buf, sizeof(buf))) {
		*why_r = "not an IP address or network";
		return -1;
	}
	unsigned octets;
	if (slash == NULL && digits_dots && partial_v4(buf, n->addr, &octets)) {
		n->family = 4;
		n->prefix = (uint8_t)(octets * 8);
		return 1;
	}
	if (!pton(buf, n->addr, &family)) {
		*why_r = "not an IP address or network (no leading zeros, no "
			 "zone id)";
		return -1;
	}
	unsigned max = family == 4 ? 32 : 128, prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		unsigned v = 0, d = 0;
		while (p[d] >= '0' && p[d] <= '9' && d < 4)
			v = v * 10 + (unsigned)(p[d++] - '0');
		if (d == 0 || p[d] != '\0' || (d > 1 && p[0] == '0') || v > max) {
			*why_r = family == 4 ? "prefix length must be 0 to 32"
					     : "prefix length must be 0 to 128";
			return -1;
		}
		prefix = v;
	}
	uint8_t masked[16];
	memcpy(masked, n->addr, 16);
	mask(masked, prefix);
	if (memcmp(masked, n->addr, 16) != 0) {
		*why_r = "the address has bits set beyond the prefix length "
			 "(write the network address)";
		return -1;
	}
	if (family == 6 && prefix >= 96 && memcmp(n->addr, v4mapped, 12) == 0) {
		memmove(n->addr, n->addr + 12, 4);
		memset(n->addr + 4, 0, 12);
		family = 4;
		prefix -= 96;
	}
	n->family = (uint8_t)family;
	n->prefix = (uint8_t)prefix;
	return 1;
}

static int net_cmp(const void *pa, const void *pb)
{
	const maps_net *a = pa, *b = pb;
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	if (a->prefix != b->prefix)
		return a->prefix > b->prefix ? -1 : 1;
	int c = memcmp(a->addr, b->addr, 16);
	if (c != 0)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

const maps_net *maps_net_index(maps_table *t, const maps_net **first_r)
{
	if (t->n_net == 0)
		return NULL;
	qsort(t->net, t->n_net, sizeof(*t->net), net_cmp);
	const maps_net *dup = NULL;
	for (size_t i = 1; i < t->n_net; i++) {
		const maps_net *a = &t->net[i - 1], *b = &t->net[i];
		if (a->family == b->family && a->prefix == b->prefix &&
		    memcmp(a->addr, b->addr, 16) == 0 &&
		    (dup == NULL || b->line < dup->line)) {
			dup = b;
			*first_r = a;
		}
	}
	if (dup != NULL)
		return dup;
	/* at most 33 + 129 groups */
	t->grp = maps_xcalloc(33 + 129, sizeof(*t->grp));
	for (size_t i = 0; i < t->n_net; i++) {
		const maps_net *x = &t->net[i];
		if (t->n_grp > 0 && t->grp[t->n_grp - 1].family == x->family &&
		    t->grp[t->n_grp - 1].prefix == x->prefix) {
			t->grp[t->n_grp - 1].n++;
			continue;
		}
		t->grp[t->n_grp++] = (maps_net_group){ .family = x->family,
						       .prefix = x->prefix,
						       .start = i, .n = 1 };
	}
	return NULL;
}

const maps_net *maps_net_find(const maps_table *t, const uint8_t addr[16],
			      int family)
{
	for (size_t g = 0; g < t->n_grp; g++) {
		const maps_net_group *gr = &t->grp[g];
		if (gr->family != family)
			continue;
		uint8_t a[16];
		memcpy(a, addr, 16);
		mask(a, gr->prefix);
		size_t lo = gr->start, hi = gr->start + gr->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = memcmp(t->net[mid].addr, a, 16);
			if (c == 0)
				return &t->net[mid];
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	return NULL;
}

bool maps_cidr_lookup(const maps_table *t, const char *ip, maps_match *m)
{
	uint8_t a[16];
	int family;
	if (t == NULL || !maps_ip_parse(ip, a, &family))
		return false;
	const maps_net *x = maps_net_find(t, a, family);
	if (x == NULL)
		return false;
	if (m != NULL)
		*m = (maps_match){ .form = MAPS_FORM_NETWORK, .key = x->key,
				   .value = x->value, .line = x->line };
	return true;
}
