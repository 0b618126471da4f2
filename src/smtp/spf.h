/*
 * spf.h — Sender Policy Framework (RFC 7208), the pure part: a resumable
 * check_host() evaluator.  No I/O, no DNS, no clock, no threads: the
 * caller creates an evaluator, calls spf_step() until it says SPF_DONE
 * and answers each query it asks for with spf_answer().  The driver that
 * sends the queries (libunbound, src/dns) is elsewhere.
 *
 *     spf_eval *ev = spf_new(&ip, domain, local, helo, host, now, NULL,
 *                            &err);
 *     spf_query q;
 *     while (spf_step(ev, &q) == SPF_NEED_DNS)
 *             if (spf_answer(ev, status, rr, n) < 0) ... (a caller bug)
 *     const spf_outcome *o = spf_outcome_get(ev);
 *     spf_free(&ev);
 *
 * What is implemented: record selection (§4.5: records beginning
 * "v=spf1" then SP or the end, compared without case as ABNF does; none
 * -> none, more than one -> permerror); the whole record is checked
 * before any term is evaluated (§4.6: a syntax error anywhere is a
 * permerror); mechanisms all, include, a, mx, ptr, ip4, ip6, exists with
 * qualifiers and dual CIDR lengths (§5); modifiers redirect and exp, each
 * at most once, unknown modifiers checked and ignored (§6); macros (§7):
 * letters s l o d i p v h (and c r t in explanations), upper case letters
 * URL-escaped, transformers (digits, r), delimiters . - + , / _ =, and
 * %% %_ %-.  %{i} of an IPv6 address is its 32 nibbles, dotted; %{p} is
 * always "unknown" (§7.3 allows it; the PTR lookup it would need is
 * discouraged).  An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is taken as
 * the IPv4 address.
 *
 * Results (§2.6): none, neutral, pass, fail, softfail, temperror,
 * permerror.  An include maps pass to a match, fail / softfail / neutral
 * to no match, and temperror, permerror and none (of the included
 * domain) end the evaluation with temperror / permerror (§5.2).  A DNS
 * answer SERVFAIL or TIMEOUT is temperror, except for ptr (§5.5: the
 * mechanism does not match, or the name is skipped) and exp (no
 * explanation).  With a fail result, the outermost record's exp= (after
 * redirects; never an included record's, §6.2) is looked up and its one
 * TXT record macro-expanded into the explanation; any problem there only
 * leaves the explanation empty.
 *
 * Limits (RFC 7208 §4.6.4 unless said; spf_limits may lower them):
 *  - SPF_LOOKUP_LIMIT (10) terms that query DNS: include, a, mx, ptr,
 *    exists, redirect; the 11th is a permerror.  This also bounds
 *    include loops and the include depth (SPF_LOOKUP_LIMIT + 1 records).
 *  - SPF_VOID_LIMIT (2) void lookups (NXDOMAIN, or no records) of those
 *    terms; the 3rd is a permerror.
 *  - SPF_MX_LIMIT (10) MX names per mx mechanism, more is a permerror;
 *    SPF_PTR_LIMIT (10) PTR names per ptr mechanism, the rest ignored.
 *    Each name costs one A/AAAA query, so an evaluation asks at most
 *    SPF_QUERY_MAX queries in all.
 *  - SPF_RECORD_MAX (4096) octets of a selected SPF record (ours: a
 *    longer record is a permerror).
 *  - A macro-expanded domain over SPF_NAME_MAX (253) octets loses labels
 *    on the left until it fits (§7.3).  Expansion writes into a buffer of
 *    SPF_EXPAND_MAX octets that keeps the rightmost part, so however many
 *    macros a term holds, nothing overflows (libspf2's CVE-2021-20314).
 *    An explanation is cut at SPF_EXP_MAX octets.
 *  - Inputs to spf_new: a local part up to SPF_LOCAL_MAX octets without
 *    control bytes, HELO and host name up to SPF_NAME_MAX octets.
 *
 * Names asked for: lower case as written by the record or the caller
 * (DNS compares without case), no trailing dot, 1..253 octets in labels of
 * 1..63 octets of %x21-7E other than '\\'.  A macro-expanded name that is
 * not such a name (an empty label from "%{l}" of "a..b", a space, an
 * 8-bit byte) is never asked for: for include and redirect that is a
 * permerror (the target has no record), for a, mx, ptr and exists the
 * mechanism does not match.  An exp= name like that gives no
 * explanation.  The initial domain (§4.3) must be a multi-label name with
 * labels of 1..63 letters, digits, '-' and '_' (one final dot ignored;
 * no address literal), else the result is none and nothing is asked.
 */
#ifndef AMP_SPF_H
#define AMP_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPF_NAME_MAX 253u       /* octets of a domain name, no final dot */
#define SPF_LOCAL_MAX 256u      /* octets of the sender's local part */
#define SPF_RECORD_MAX 4096u    /* octets of one SPF record */
#define SPF_EXPAND_MAX 1024u    /* octets of macro expansion kept */
#define SPF_EXP_MAX 512u        /* octets of an explanation */
#define SPF_TERM_MAX 255u       /* octets of a term shown in the outcome */
#define SPF_LOOKUP_LIMIT 10u    /* DNS terms (§4.6.4) */
#define SPF_VOID_LIMIT 2u       /* void lookups (§4.6.4) */
#define SPF_MX_LIMIT 10u        /* names of one mx mechanism (§4.6.4) */
#define SPF_PTR_LIMIT 10u       /* names of one ptr mechanism (§4.6.4) */
/* The most queries one evaluation asks: the first TXT, each DNS term's
 * own query and up to 10 address queries for mx or ptr, the exp TXT. */
#define SPF_QUERY_MAX (2u + SPF_LOOKUP_LIMIT * (1u + SPF_MX_LIMIT))

typedef enum spf_result {
	SPF_RESULT_NONE = 0,
	SPF_RESULT_NEUTRAL,
	SPF_RESULT_PASS,
	SPF_RESULT_FAIL,
	SPF_RESULT_SOFTFAIL,
	SPF_RESULT_TEMPERROR,
	SPF_RESULT_PERMERROR,
} spf_result;

typedef enum spf_status {
	SPF_DONE = 0,           /* spf_outcome_get() has the result */
	SPF_NEED_DNS = 1,       /* answer *q_r with spf_answer() */
} spf_status;

typedef enum spf_qtype {
	SPF_Q_TXT = 0,
	SPF_Q_A,
	SPF_Q_AAAA,
	SPF_Q_MX,
	SPF_Q_PTR,
} spf_qtype;

typedef enum spf_dns_status {
	SPF_DNS_OK = 0,         /* records follow (none is taken as NODATA) */
	SPF_DNS_NXDOMAIN,       /* RCODE 3 */
	SPF_DNS_NODATA,         /* the name exists, no record of the type */
	SPF_DNS_SERVFAIL,       /* any other error */
	SPF_DNS_TIMEOUT,
} spf_dns_status;

typedef struct spf_ip {
	int family;             /* AF_INET or AF_INET6 */
	uint8_t addr[16];       /* 4 or 16 octets, network order */
} spf_ip;

/* One record of an answer, borrowed for the spf_answer() call only.
 *   TXT   the record's character-strings joined (bytes, any value)
 *   A     4 octets;  AAAA  16 octets (others are ignored)
 *   MX    the exchange name as text ("mx.example.com", a final dot is
 *         fine; the preference is not needed); "." is a null MX
 *   PTR   the name as text */
typedef struct spf_rr {
	const uint8_t *data;
	size_t len;
} spf_rr;

typedef struct spf_query {
	spf_qtype type;
	char name[SPF_NAME_MAX + 1];    /* NUL-terminated, see above */
} spf_query;

/* Each 1..its RFC value (void: 0..SPF_VOID_LIMIT). */
typedef struct spf_limits {
	unsigned lookups;       /* SPF_LOOKUP_LIMIT */
	unsigned voids;         /* SPF_VOID_LIMIT */
	unsigned mx_names;      /* SPF_MX_LIMIT */
	unsigned ptr_names;     /* SPF_PTR_LIMIT */
} spf_limits;

typedef struct spf_outcome {
	spf_result result;
	/* A static sentence: why (for every result, e.g. "matched",
	 * "no SPF record", "more than 10 DNS lookups"). */
	const char *reason;
	/* The term of the outermost record (after redirects) that gave the
	 * result, as written there, cut at SPF_TERM_MAX ("" when none
	 * matched: default neutral, none, or an error before one). */
	char mechanism[SPF_TERM_MAX + 1];
	/* The domain whose record that was ("" for none before a record). */
	char domain[SPF_NAME_MAX + 1];
	/* With fail: the expanded exp= text, printable ASCII, or "". */
	char explanation[SPF_EXP_MAX + 1];
	unsigned lookups;       /* DNS terms counted */
	unsigned voids;         /* void lookups counted */
	unsigned queries;       /* queries asked in all */
} spf_outcome;

typedef struct spf_eval spf_eval;

/* A new evaluation of check_host(ip, domain, sender) (§4).  domain is the
 * MAIL FROM domain, or the HELO name when the reverse path is null (then
 * local should be NULL or "postmaster").  local: the sender's local part;
 * NULL or "" means "postmaster" (§4.3).  helo: the HELO/EHLO argument
 * (NULL: ""), host: our host name for %{r} (NULL: "unknown"), now: unix
 * seconds for %{t}, lim: NULL for the RFC's limits.  Returns the
 * evaluator (one bounded allocation, owned by the caller; aborts when out
 * of memory), or NULL with *error_r a static sentence when an argument is
 * out of bounds (see the header comment) or ip's family is unknown.  A
 * malformed domain is not an error: the evaluation says none. */
spf_eval *spf_new(const spf_ip *ip, const char *domain, const char *local,
		  const char *helo, const char *host, uint64_t now,
		  const spf_limits *lim, const char **error_r)
	__attribute__((warn_unused_result));

/* NULL is fine; *ev becomes NULL. */
void spf_free(spf_eval **ev);

/* Run until a DNS answer is needed (SPF_NEED_DNS, *q_r says which; asking
 * again before answering gives the same query) or the result is known
 * (SPF_DONE).  Never blocks. */
spf_status spf_step(spf_eval *ev, spf_query *q_r)
	__attribute__((warn_unused_result));

/* The answer to the query spf_step() gave: status and, with SPF_DNS_OK,
 * n records (borrowed).  0, or -1 when no query is waiting (a caller
 * bug; nothing changes). */
int spf_answer(spf_eval *ev, spf_dns_status status, const spf_rr *rr,
	       size_t n) __attribute__((warn_unused_result));

/* The outcome once spf_step() said SPF_DONE; NULL before. */
const spf_outcome *spf_outcome_get(const spf_eval *ev);

/* "none", "neutral", "pass", "fail", "softfail", "temperror",
 * "permerror" (RFC 8601 result names); NULL outside the enum. */
const char *spf_result_name(spf_result r);

typedef enum spf_expand_kind {
	SPF_EXPAND_DOMAIN = 0,  /* a domain-spec: syntax checked (§7.1), c r t
				   refused, a domain-end required, labels cut
				   on the left to 253 octets, a name as above */
	SPF_EXPAND_EXP,         /* an explanation: all letters, SP allowed,
				   cut at SPF_EXP_MAX, non-ASCII made '?' */
} spf_expand_kind;

/* Macro-expand s[0..len) for ev's inputs with <domain> = domain (NULL:
 * ev's domain).  out gets the NUL-terminated result (out_size >= 1; a
 * result that does not fit is cut, so give SPF_NAME_MAX + 1 or
 * SPF_EXP_MAX + 1).  Returns its length, or -1 with *error_r a static
 * sentence (syntax error, or not a name) and out "".  Exposed for the
 * tests; the evaluator uses it for every domain-spec and explanation. */
int spf_expand(const spf_eval *ev, const char *domain, const uint8_t *s,
	       size_t len, spf_expand_kind kind, char *out, size_t out_size,
	       const char **error_r) __attribute__((warn_unused_result));

#endif
