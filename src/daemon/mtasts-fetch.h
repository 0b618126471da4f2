/*
 * mtasts-fetch.h — MTA-STS policy discovery for outbound delivery
 * (RFC 8461 §3, §5; issue 5): for a recipient domain, the `_mta-sts` TXT
 * record through the node's resolver (src/dns/dns.h), then the policy
 * from https://mta-sts.DOMAIN/.well-known/mta-sts.txt with libcurl, parsed
 * by src/smtp/mtasts.h, cached in memory and in a small SQLite file so
 * that policies survive restarts.
 *
 * One request (mtasts_fetch_get), on the loop thread:
 *  1. TXT _mta-sts.DOMAIN (asked on every request; libunbound caches it).
 *  2. Exactly one valid record with the id of the cached, unexpired
 *     policy: the cached policy, nothing fetched.
 *  3. A valid record with another id (or nothing cached, or the cached
 *     policy expired): the policy is fetched — unless a fetch of this
 *     domain failed less than retry_s ago — and replaces the cached one.
 *  4. No record, an invalid one, a failed lookup, or a failed fetch: the
 *     cached policy while it has not expired (§5.1: it is used until
 *     max_age even if the TXT record disappears; a failed refetch keeps
 *     it), else no policy (deliver as if the domain had none, §3.3).
 * Requests for a domain whose lookup is already running wait for it (one
 * TXT query and at most one fetch per domain at a time).
 *
 * The fetch (§3.3): HTTPS only, TLS 1.2 or later, the certificate must be
 * valid for mta-sts.DOMAIN under the system's CAs (or only those of
 * ca_file), no redirects (a 3xx is a failure), status 200, Content-Type
 * text/plain (parameters ignored), at most MTASTS_POLICY_MAX bytes, the
 * whole transfer within timeout_ms; no proxy (the environment's proxy
 * variables are ignored), no cookies, no HTTP cache.  The address of
 * mta-sts.DOMAIN comes from dns_query_addr and is handed to curl
 * (CURLOPT_RESOLVE): curl does no DNS of its own.  The transfer is a
 * blocking libcurl easy transfer on libuv's thread pool (uv_queue_work),
 * at most `parallel` at once (the pool is shared with the store); the
 * policy is written to the database by the same pool thread.
 *
 * The database (<data_dir>/mtasts.db): one row per domain with its id,
 * fetch time, expiry (fetch time + max_age) and the policy text as
 * fetched.  Read once at mtasts_fetch_new (blocking, at start-up):
 * expired rows are deleted, the others parsed again and cached (a row
 * that no longer parses is deleted).
 *
 * Limits: at most cache_max domains in memory (the entry expiring first
 * is dropped for a new one); a domain name of at most MTASTS_FETCH_DOMAIN_MAX
 * characters (so that _mta-sts.DOMAIN is a valid name).
 *
 * Not thread-safe: every function is called on the loop's thread, and
 * callbacks run there, always after mtasts_fetch_get has returned.
 */
#ifndef AMP_MTASTS_FETCH_H
#define AMP_MTASTS_FETCH_H

#include "dns.h"
#include "mtasts.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define MTASTS_FETCH_DOMAIN_MAX 244u        /* 253 - strlen("_mta-sts.") */
#define MTASTS_FETCH_TIMEOUT_DEFAULT_MS 10000u
#define MTASTS_FETCH_RETRY_DEFAULT_S 300u
#define MTASTS_FETCH_PARALLEL_DEFAULT 2u
#define MTASTS_FETCH_CACHE_DEFAULT 10000u
#define MTASTS_FETCH_WHY_MAX 512u           /* bytes of a `why` text */

typedef struct mtasts_fetcher mtasts_fetcher;
typedef struct mtasts_fetch_req mtasts_fetch_req;

typedef struct mtasts_fetch_settings {
	uv_loop_t *loop;
	dns_resolver *dns;      /* borrowed: must outlive the fetcher (free
				   the fetcher first) */
	const char *db_path;    /* e.g. <data_dir>/mtasts.db, created if
				   missing; NULL: memory only */
	const char *ca_file;    /* PEM CA certificates to trust instead of
				   the system's; NULL or "": the system's */
	unsigned port;          /* HTTPS port of mta-sts.DOMAIN; 0: 443 (other
				   values are for tests: mta_sts_port) */
	unsigned timeout_ms;    /* one HTTPS transfer, connection included;
				   0: MTASTS_FETCH_TIMEOUT_DEFAULT_MS */
	unsigned retry_s;       /* after a failed fetch of a domain, no new
				   fetch of it for this long (the cached
				   policy, if any, is used meanwhile); 0: fetch
				   again on the next request */
	unsigned parallel;      /* fetches at once; 0: default (2) */
	size_t cache_max;       /* domains kept; 0: default (10000) */
} mtasts_fetch_settings;

/* A fetcher on s->loop (the strings are copied).  Opens and reads the
 * database (blocking).  0, or -1 with a message in err (the database
 * cannot be opened or created, libcurl cannot start). */
int mtasts_fetch_new(const mtasts_fetch_settings *s, mtasts_fetcher **f_r,
		     char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* Cancels every request WITHOUT calling its callback and every DNS query
 * of the fetcher.  A transfer running on the thread pool cannot be
 * stopped: it ends within timeout_ms and its result is dropped; the
 * memory is released then, so run the loop afterwards (uv_run until it
 * returns 0) before closing it.  Call it before dns_free on the resolver.
 * NULL is fine; *f becomes NULL.  May be called from inside a callback. */
void mtasts_fetch_free(mtasts_fetcher **f);

/* The answer to one request.
 *   p    the policy to apply, or NULL: the domain has no usable policy
 *        (deliver without MTA-STS).  A policy with mode
 *        MTASTS_MODE_NONE means the same (§5).  Valid only during the
 *        callback: keep a copy with mtasts_policy_dup.  p->id, p->fetched
 *        and p->expires say which fetch it came from.
 *   why  always set: a short sentence for logs, e.g. "policy fetched",
 *        "cached policy (TXT id unchanged)", "no _mta-sts TXT record",
 *        "policy fetch failed: HTTP 404; cached policy used until it
 *        expires".  Peer-supplied text in it (a Location header, a
 *        server's error) is made printable ASCII and cut. */
typedef void mtasts_fetch_cb(void *arg, const mtasts_policy *p,
			     const char *why);

/* Look the policy of `domain` up (a DNS name without trailing dot, case
 * ignored).  0 and *r_r set (the callback runs later, exactly once unless
 * cancelled), or -1 with no callback: the domain is not a valid host name
 * (LDH labels of 1..63, at most MTASTS_FETCH_DOMAIN_MAX characters), the
 * fetcher is being freed, or the DNS query could not be started.  r_r may
 * be NULL.  The handle is gone once the callback has returned. */
int mtasts_fetch_get(mtasts_fetcher *f, const char *domain,
		     mtasts_fetch_cb *cb, void *arg, mtasts_fetch_req **r_r)
	__attribute__((warn_unused_result));

/* Before its callback has run: no callback will run.  The lookup itself
 * goes on and its result is cached.  NULL is fine.  Not from inside the
 * request's own callback. */
void mtasts_fetch_cancel(mtasts_fetch_req *r);

typedef struct mtasts_fetch_stats {
	uint64_t requests, fetches, fetch_failures, cache_hits;
	size_t cached;          /* domains in memory now */
} mtasts_fetch_stats;
void mtasts_fetch_get_stats(const mtasts_fetcher *f, mtasts_fetch_stats *st);

#endif
