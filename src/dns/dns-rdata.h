/*
 * dns-rdata.h — pure, bounded decoders of the DNS record data that
 * libunbound hands over in wire form (issue 5): domain names, MX, TLSA,
 * TXT, A and AAAA; and the check of the names we agree to ask about.
 * No I/O, no allocation, no logging (STYLE.md: protocol code never does
 * I/O); src/dns/dns.c is the libuv driver that uses them.
 *
 * What they refuse (each with a short reason in *why_r):
 *  - names: a compression pointer (libunbound expands names in rdata, so
 *    one here is an error and a pointer loop cannot happen), the reserved
 *    label types 01/10, a name longer than 255 octets in wire form (253 in
 *    text), a name running past the rdata, and label octets other than
 *    letters, digits, '-' and '_' (anything else could not be written back
 *    as an unambiguous host name);
 *  - MX: fewer than 3 octets, bytes after the name;
 *  - TLSA: fewer than 4 octets, association data over DNS_TLSA_DATA_MAX;
 *  - TXT: an empty rdata, a string running past the rdata, a NUL octet
 *    (the caller skips such records);
 *  - A / AAAA: a length other than 4 / 16.
 */
#ifndef AMP_DNS_RDATA_H
#define AMP_DNS_RDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_NAME_MAX 253u         /* text form, without the trailing dot */
#define DNS_NAME_BUF 256u         /* a buffer for one name in text form */
#define DNS_NAME_WIRE_MAX 255u    /* wire form, with the root label */
#define DNS_LABEL_MAX 63u
#define DNS_TLSA_DATA_MAX 1024u   /* association data we accept */

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_PTR 12
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_TLSA 52

/* Is `name` a host name we ask about: labels of 1..63 letters, digits and
 * '-' (not first or last in a label), and also '_' when `service` (the
 * _25._tcp. and _domainkey. labels of TLSA and TXT names); at most 253
 * characters, no trailing dot, not empty.  *why_r says why not. */
bool dns_name_ok(const char *name, bool service, const char **why_r);

/* The name in wire form at wire[0..len): its text form, lower case,
 * without the trailing dot ("." for the root), in out (>= DNS_NAME_BUF
 * bytes, NUL-terminated), and the octets it took in *used_r.  0, or -1
 * with *why_r (out is then an empty string). */
int dns_name_decode(const uint8_t *wire, size_t len, size_t *used_r,
		    char out[DNS_NAME_BUF], const char **why_r)
	__attribute__((warn_unused_result));

/* MX rdata: preference, then the exchange as dns_name_decode gives it
 * ("." for a null MX, RFC 7505), filling the rdata exactly. */
int dns_mx_decode(const uint8_t *rd, size_t len, unsigned *pref_r,
		  char host[DNS_NAME_BUF], const char **why_r)
	__attribute__((warn_unused_result));

/* TLSA rdata (RFC 6698 §2.1): usage, selector, matching type and the
 * association data (1..DNS_TLSA_DATA_MAX octets; *data_r points into rd).
 * The field values are not judged here: DANE decides what is usable. */
int dns_tlsa_decode(const uint8_t *rd, size_t len, uint8_t *usage_r,
		    uint8_t *selector_r, uint8_t *mtype_r,
		    const uint8_t **data_r, size_t *data_len_r,
		    const char **why_r) __attribute__((warn_unused_result));

/* TXT rdata: the length-prefixed strings joined into out (out_size >= len
 * always suffices), NUL-terminated, length in *out_len_r.  A record with
 * a NUL octet in it is refused; on refusal out is an empty string (when
 * out_size > 0). */
int dns_txt_decode(const uint8_t *rd, size_t len, char *out, size_t out_size,
		   size_t *out_len_r, const char **why_r)
	__attribute__((warn_unused_result));

/* A (type DNS_TYPE_A, 4 octets) or AAAA (DNS_TYPE_AAAA, 16 octets) rdata
 * as a sockaddr_in / sockaddr_in6 with port 0 in *ss_r. */
int dns_addr_decode(int type, const uint8_t *rd, size_t len,
		    struct sockaddr_storage *ss_r, const char **why_r)
	__attribute__((warn_unused_result));

#endif
