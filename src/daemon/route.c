/*
 * route.c — see route.h.  The map is parsed into an array searched
 * linearly (maps are short); DNS SRV through the system resolver
 * (res_query), taking the record with the lowest priority.
 */
#include "route.h"

#include "util.h"

#include "amp-private.h"

#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 4434u

struct router {
	pthread_rwlock_t lock;
	route_entry *e;
	size_t n;
};

static bool domain_ok(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253)
		return false;
	for (const char *p = d; *p != '\0'; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
		      *p == '-' || *p == '.'))
			return false;
	return true;
}

/* "host:port" or "[v6]:port" */
static bool parse_hostport(const char *s, route *r)
{
	const char *colon;
	size_t hl;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return false;
		hl = (size_t)(end - s - 1);
		s++;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return false;
		hl = (size_t)(colon - s);
	}
	uint64_t port;
	if (hl == 0 || hl > ROUTE_HOST_MAX ||
	    !util_parse_u64(colon + 1, 1, 65535, &port))
		return false;
	for (size_t i = 0; i < hl; i++) /* a name or an address, nothing else */
		if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' ||
		      s[i] == ':' || s[i] == '_'))
			return false;
	memcpy(r->host, s, hl);
	r->host[hl] = '\0';
	r->port = (uint16_t)port;
	return true;
}

int router_parse(const char *text, size_t len, route_entry **e_r, size_t *n_r,
		 char *err, size_t errlen)
{
	route_entry *e = NULL;
	size_t n = 0, cap = 0;
	unsigned lineno = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;
		char line[1024];
		lineno++;
		size_t ll = (size_t)(le - p);
		if (ll >= sizeof(line)) {
			snprintf(err, errlen, "line %u: too long", lineno);
			goto fail;
		}
		memcpy(line, p, ll);
		line[ll] = '\0';
		p = nl != NULL ? nl + 1 : end;
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *save = NULL, *w[5];
		int nw = 0;
		for (char *tok = strtok_r(line, " \t\r", &save);
		     tok != NULL && nw < 5; tok = strtok_r(NULL, " \t\r", &save))
			w[nw++] = tok;
		if (nw == 0)
			continue;
		route_entry en = { 0 };
		en.r.transport = NCLIENT_TLS;
		en.r.from_map = true;
		if (nw < 2 || nw > 4) {
			snprintf(err, errlen, "line %u: expected DOMAIN HOST:PORT "
				 "[tls|quic] [key=KEY]", lineno);
			goto fail;
		}
		for (char *q = w[0]; *q != '\0'; q++)
			*q = (char)tolower((unsigned char)*q);
		if (!domain_ok(w[0])) {
			snprintf(err, errlen, "line %u: not a domain name", lineno);
			goto fail;
		}
		memcpy(en.domain, w[0], strlen(w[0]) + 1);
		if (!parse_hostport(w[1], &en.r)) {
			snprintf(err, errlen, "line %u: expected HOST:PORT", lineno);
			goto fail;
		}
		for (int i = 2; i < nw; i++) {
			if (strncmp(w[i], "key=", 4) == 0) {
				if (!amp_b64u_decode_exact(w[i] + 4, en.r.pin, 32)) {
					snprintf(err, errlen, "line %u: key= is not "
						 "a base64url Ed25519 key", lineno);
					goto fail;
				}
				en.r.pinned = true;
			} else if (!nclient_transport_parse(w[i], &en.r.transport)) {
				snprintf(err, errlen, "line %u: unknown word (want "
					 "tls, quic or key=)", lineno);
				goto fail;
			}
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			route_entry *ne = realloc(e, cap * sizeof(*e));
			if (ne == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			e = ne;
		}
		e[n++] = en;
	}
	*e_r = e;
	*n_r = n;
	return 0;
fail:
	free(e);
	return -1;
}

static int load(const char *path, route_entry **e_r, size_t *n_r, char *err,
		size_t errlen)
{
	*e_r = NULL;
	*n_r = 0;
	if (path == NULL || *path == '\0')
		return 0;
	uint8_t *text;
	size_t len;
	if (util_read_file(path, ROUTE_MAP_MAX, &text, &len) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int r = router_parse((const char *)text, len, e_r, n_r, err, errlen);
	free(text);
	return r;
}

int router_create(const char *path, router **r_r, char *err, size_t errlen)
{
	router *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (load(path, &r->e, &r->n, err, errlen) != 0) {
		free(r);
		return -1;
	}
	pthread_rwlock_init(&r->lock, NULL);
	*r_r = r;
	return 0;
}

int router_reload(router *r, const char *path, char *err, size_t errlen)
{
	route_entry *e;
	size_t n;
	if (load(path, &e, &n, err, errlen) != 0)
		return -1;
	pthread_rwlock_wrlock(&r->lock);
	free(r->e);
	r->e = e;
	r->n = n;
	pthread_rwlock_unlock(&r->lock);
	return 0;
}

void router_free(router **rp)
{
	router *r = *rp;
	if (r == NULL)
		return;
	pthread_rwlock_destroy(&r->lock);
	free(r->e);
	free(r);
	*rp = NULL;
}

static bool map_find(router *r, const char *domain, route *out)
{
	bool found = false;
	pthread_rwlock_rdlock(&r->lock);
	for (size_t i = 0; i < r->n && !found; i++) {
		if (strcmp(r->e[i].domain, domain) == 0) {
			*out = r->e[i].r;
			found = true;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	return found;
}

bool router_pinned_key(router *r, const char *domain, uint8_t pk[32])
{
	route rt;
	if (!map_find(r, domain, &rt) || !rt.pinned)
		return false;
	memcpy(pk, rt.pin, 32);
	return true;
}

/* The best (lowest priority, then highest weight) SRV target. */
static bool srv_find(const char *name, route *out)
{
	uint8_t ans[4096];
	struct __res_state rs;
	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0)
		return false;
	int len = res_nquery(&rs, name, ns_c_in, ns_t_srv, ans, sizeof(ans));
	res_nclose(&rs);
	if (len <= 0 || len > (int)sizeof(ans))
		return false;
	ns_msg msg;
	if (ns_initparse(ans, len, &msg) != 0)
		return false;
	int best_prio = 70000, best_weight = -1;
	bool found = false;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 ||
		    ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
			continue;
		const uint8_t *rd = ns_rr_rdata(rr);
		int prio = rd[0] << 8 | rd[1], weight = rd[2] << 8 | rd[3];
		int port = rd[4] << 8 | rd[5];
		char target[NS_MAXDNAME];
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 6,
				       target, sizeof(target)) < 0 ||
		    strlen(target) > ROUTE_HOST_MAX || port == 0 ||
		    strcmp(target, ".") == 0 || target[0] == '\0')
			continue;
		if (prio < best_prio || (prio == best_prio && weight > best_weight)) {
			best_prio = prio;
			best_weight = weight;
			memcpy(out->host, target, strlen(target) + 1);
			out->port = (uint16_t)port;
			found = true;
		}
	}
	return found;
}

int router_find(router *r, const char *domain, route *out, const char **error_r)
{
	memset(out, 0, sizeof(*out));
	if (!domain_ok(domain)) {
		*error_r = "not a domain name";
		return -1;
	}
	if (map_find(r, domain, out))
		return 0;
	char name[300];
	snprintf(name, sizeof(name), "_amp._udp.%s", domain);
	if (srv_find(name, out)) {
		out->transport = NCLIENT_QUIC;
		return 0;
	}
	snprintf(name, sizeof(name), "_amp._tcp.%s", domain);
	if (srv_find(name, out)) {
		out->transport = NCLIENT_TLS;
		return 0;
	}
	/* No SRV: the domain itself, the default port, TLS. */
	snprintf(out->host, sizeof(out->host), "%s", domain);
	out->port = DEFAULT_PORT;
	out->transport = NCLIENT_TLS;
	out->fallback = true;
	return 0;
}
