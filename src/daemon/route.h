/*
 * route.h — where a peer domain's node is: the transport map first (a
 * file the operator writes), then DNS SRV (_amp._udp.<domain> for QUIC,
 * then _amp._tcp.<domain> for TLS), then the domain itself on port 4434
 * over TLS.  A map entry may pin the peer node's signing key.
 *
 * Map file, one route per line ('#' comments, blank lines ignored):
 *     DOMAIN  HOST:PORT  [tls|quic]  [key=BASE64URL_ED25519_KEY]
 * HOST may be [v6]:PORT.  Thread-safe; router_reload swaps the map.
 */
#ifndef AMP_ROUTE_H
#define AMP_ROUTE_H

#include "client.h"

#include <stdbool.h>
#include <stdint.h>

#define ROUTE_MAP_MAX (1024u * 1024u)      /* map file bytes */
#define ROUTE_HOST_MAX 255u

typedef struct route {
	char host[ROUTE_HOST_MAX + 1];
	uint16_t port;
	nclient_transport transport;
	bool pinned;
	uint8_t pin[32];
	bool from_map;
	bool fallback;      /* neither map nor SRV: the domain itself */
} route;

typedef struct router router;

/* path may be "" (no map).  On a syntax error: -1 and "LINE: reason" in
 * err. */
int router_create(const char *path, router **r_r, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int router_reload(router *r, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void router_free(router **r);

typedef struct route_entry {
	char domain[254];
	route r;
} route_entry;

/* Parse a map text (pure; for tests and the loader).  *e_r: free(). */
int router_parse(const char *text, size_t len, route_entry **e_r, size_t *n_r,
		 char *err, size_t errlen) __attribute__((warn_unused_result));

/* Find the route to domain's node.  0, or -1 with *error_r. */
int router_find(router *r, const char *domain, route *out,
		const char **error_r) __attribute__((warn_unused_result));

/* The pinned signing key of domain's node, from the map. */
bool router_pinned_key(router *r, const char *domain, uint8_t pk[32]);

#endif
