/*
 * dns.h — asynchronous DNS for outbound mail (issue 5) and for the
 * authentication checks of inbound mail (issue 7): MX, address (AAAA + A),
 * TLSA and TXT lookups, and A, AAAA or PTR alone through libunbound, driven by a libuv
 * loop.  libunbound resolves in its own thread (ub_ctx_async(ctx, 1)); its
 * answers come back through a pipe that a uv_poll_t watches, and every
 * callback runs on the loop thread, always after the query function has
 * returned.  The record data is decoded by src/dns/dns-rdata.h (pure).
 *
 * DNSSEC: with a trust anchor file, libunbound validates and each result
 * says `secure` (validated) or DNS_BOGUS (validation failed: treat as
 * DNS_TEMPFAIL, `why` says why).  Without one nothing is secure.
 *
 * Semantics the outbound driver relies on (RFC 5321 §5.1, RFC 7505):
 *  - MX: DNS_OK with the hosts sorted by preference, equal preferences
 *    shuffled; null_mx when the answer is exactly "MX 0 .", then n == 1
 *    and mx[0].host is "."; a "." host among other MX records is dropped
 *    (it names no host), and if only such records remain the result is
 *    DNS_TEMPFAIL.  An IP literal as an MX host comes back as a host name
 *    ("192.0.2.1"): refusing it is the caller's job.  DNS_NODATA: fall
 *    back to the domain's own addresses.  A CNAME chain is followed.
 *  - addr: AAAA and A asked together: DNS_OK (IPv6 first) if either has
 *    records (a BOGUS half makes the whole DNS_BOGUS); else DNS_NXDOMAIN if
 *    either says the name does not exist; else DNS_TEMPFAIL if either
 *    failed (a failed A next to an empty AAAA proves nothing); else
 *    DNS_NODATA.  `secure` only when both halves are.
 *  - records that do not decode (dns-rdata.h) are skipped; if none is
 *    left the result is DNS_TEMPFAIL ("malformed ..."), for TXT DNS_NODATA.
 *  - a query still running after timeout_ms is cancelled and reported as
 *    DNS_TEMPFAIL with why "timeout".
 *
 * Not thread-safe: every function is called on the loop's thread.
 */
#ifndef AMP_DNS_H
#define AMP_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

typedef struct dns_resolver dns_resolver;

typedef struct dns_settings {
	const char *forwarder;      /* "IP" or "IP@PORT" of a recursive/authoritative server to ask; NULL: /etc/resolv.conf */
	const char *trust_anchor;   /* a file of DS or DNSKEY records (zone-file form) for DNSSEC validation; NULL: none -> nothing is secure */
	unsigned timeout_ms;        /* per query, overall; 0: 10000 */
} dns_settings;

#define DNS_TIMEOUT_DEFAULT_MS 10000u

typedef enum dns_status {
	DNS_OK = 0,       /* records (n > 0) */
	DNS_NODATA,       /* the name exists, no record of this type */
	DNS_NXDOMAIN,     /* the name does not exist */
	DNS_TEMPFAIL,     /* SERVFAIL, timeout, network error, refused: try later */
	DNS_BOGUS,        /* DNSSEC validation failed: treat as TEMPFAIL, but say why */
} dns_status;

/* "OK", "NODATA", "NXDOMAIN", "TEMPFAIL", "BOGUS" (for logs). */
const char *dns_status_name(dns_status s);

typedef struct dns_mx { unsigned pref; char host[256]; } dns_mx;   /* host without trailing dot, lower case */
typedef struct dns_mx_result {
	dns_status status; bool secure; const char *why;   /* why: short text for logs on failure */
	bool null_mx;          /* RFC 7505: exactly one MX, preference 0, host "." */
	const dns_mx *mx; size_t n;   /* sorted by preference; equal preferences in random order (RFC 5321 §5.1) */
} dns_mx_result;
typedef struct dns_addr_result {
	dns_status status; bool secure; const char *why;
	const struct sockaddr_storage *addr; size_t n;   /* AAAA and A together: IPv6 first, then IPv4; port 0 */
} dns_addr_result;
typedef struct dns_tlsa { uint8_t usage, selector, mtype; const uint8_t *data; size_t len; } dns_tlsa;
typedef struct dns_tlsa_result {
	dns_status status; bool secure; const char *why;
	const dns_tlsa *rr; size_t n;
} dns_tlsa_result;
/* One record type asked alone (SPF counts A and AAAA as separate
 * lookups and needs PTR, RFC 7208 §5): records that do not decode are
 * skipped, and if none is left the result is DNS_NODATA. */
typedef enum dns_rr_type { DNS_RR_A, DNS_RR_AAAA, DNS_RR_PTR } dns_rr_type;
typedef struct dns_rr_result {
	dns_status status; bool secure; const char *why;
	/* A: 4 octets; AAAA: 16; PTR: the name as text (dns_name_decode:
	 * lower case, no trailing dot), NUL-terminated, len without the NUL */
	const uint8_t *const *data; const size_t *len; size_t n;
} dns_rr_result;
typedef struct dns_txt_result {
	dns_status status; bool secure; const char *why;
	const char *const *txt; size_t n;   /* each record's strings joined (TXT > 255 split strings), NUL-terminated; records with NUL bytes skipped */
} dns_txt_result;

/* Results are valid only during the callback. */
typedef void dns_mx_cb(void *arg, const dns_mx_result *r);
typedef void dns_addr_cb(void *arg, const dns_addr_result *r);
typedef void dns_tlsa_cb(void *arg, const dns_tlsa_result *r);
typedef void dns_txt_cb(void *arg, const dns_txt_result *r);
typedef void dns_rr_cb(void *arg, const dns_rr_result *r);

/* A resolver on `loop`.  0, or -1 with a message in err (a bad forwarder,
 * an unreadable trust anchor file, libunbound failing to start).  The
 * settings' strings are copied.  Does not block beyond reading the trust
 * anchor file and /etc/resolv.conf. */
int dns_new(uv_loop_t *loop, const dns_settings *set, dns_resolver **r_r, char *err, size_t err_size) __attribute__((warn_unused_result));
/* Cancels every outstanding query WITHOUT calling its callback, closes the
 * handles (run the loop afterwards so they close).  NULL is fine.  May be
 * called from inside a callback. */
void dns_free(dns_resolver **r);

/* A query handle lets the caller cancel (no callback after dns_cancel). */
typedef struct dns_query dns_query;
/* 0 and *q_r set (callback later, always asynchronously, exactly once unless
 * cancelled), or -1 (bad name, out of memory) with no callback.  The name is
 * a domain without trailing dot; refuse names that are not valid hostnames
 * (labels 1..63 of LDH plus '_' for TLSA/TXT service labels, total <= 253).
 * The handle is gone once the callback has returned (or after dns_cancel);
 * q_r may be NULL. */
int dns_query_mx(dns_resolver *r, const char *domain, dns_mx_cb *cb, void *arg, dns_query **q_r) __attribute__((warn_unused_result));
int dns_query_addr(dns_resolver *r, const char *host, dns_addr_cb *cb, void *arg, dns_query **q_r) __attribute__((warn_unused_result));
int dns_query_tlsa(dns_resolver *r, unsigned port, const char *host, dns_tlsa_cb *cb, void *arg, dns_query **q_r) __attribute__((warn_unused_result));   /* asks _PORT._tcp.HOST */
int dns_query_txt(dns_resolver *r, const char *name, dns_txt_cb *cb, void *arg, dns_query **q_r) __attribute__((warn_unused_result));
/* PTR names are given as the caller builds them ("4.3.2.1.in-addr.arpa"). */
int dns_query_rr(dns_resolver *r, dns_rr_type type, const char *name, dns_rr_cb *cb, void *arg, dns_query **q_r) __attribute__((warn_unused_result));
void dns_cancel(dns_query *q);   /* before its callback has run; NULL fine */

#endif
