/*
 * dmarc.h — DMARC (RFC 7489), the pure part: the policy record (§6.3,
 * §6.4), the organisational domain (§3.2, through libpsl's built-in
 * Public Suffix List or a caller's), the DNS names to ask in the order of
 * §6.6.3, and the evaluation of one message (§6.6.2, §6.6.4, §6.6.1) to a
 * result and a disposition.  No I/O, no DNS, no clock, no randomness, no
 * allocation, no logging: the caller does the TXT lookups (src/dns) and
 * hands over the answers and a random number.
 *
 * Record (one TXT record, DNS strings already joined), a DKIM-style tag
 * list (RFC 6376 §3.2) that must begin with the version:
 *     record = "v" *WSP "=" *WSP %s"DMARC1" *(sep tag) [sep]
 *     sep    = *WSP ";" *WSP
 *     tag    = ALPHA *(ALPHA / DIGIT / "_") *WSP "=" *WSP value *WSP
 *     value  = tval *(1*WSP tval); tval = 1*(%x21-3A / %x3C-7E)
 * (WSP here also covers a CRLF followed by WSP, folding.)  Tag names are
 * case-sensitive, keyword values (none, quarantine, reject, r, s) are not.
 * Known tags and what a bad value does (§6.3: "syntax errors in the
 * remainder of the record SHOULD be discarded in favor of default values"):
 *     p      none|quarantine|reject   required; see below
 *     sp     none|quarantine|reject   default p; bad: like a bad p
 *     pct    0..100                   default 100; bad: default, warned
 *     adkim  r|s                      default r; bad: default, warned
 *     aspf   r|s                      default r; bad: default, warned
 *     rua    URI list, kept as text   a valid one: scheme ":" ...
 *     ruf    URI list, kept as text
 *     fo     0|1|d|s joined by ':'    default "0"; bad: default, warned
 *     rf     keywords joined by ':'   default "afrf"; bad: default, warned
 *     ri     0..4294967295            default 86400; bad: default, warned
 * A missing or bad p (or a bad sp) with at least one syntactically valid
 * rua URI is read as p=none (sp=none) (§6.6.3 step 6, DMARC_REC_P_DEFAULTED
 * in warnings); without one the record is refused.  Unknown tags are
 * ignored.  Refused: a record over DMARC_RECORD_MAX bytes, not beginning
 * with v=DMARC1, a tag list that does not parse (an empty tag, no '=', an
 * empty value, a byte outside the grammar: NUL, controls, 8-bit), a tag
 * given twice, rua or ruf over DMARC_URIS_MAX bytes.
 *
 * Domains given to the functions below: ASCII (A-labels: the caller turns
 * U-labels into A-labels first, as it must for DNS), 1..253 bytes, one
 * trailing dot ignored, labels of 1..63 bytes of any printable byte but
 * '.'; compared case-insensitively.  Anything else is refused with a
 * reason.
 *
 * Organisational domain (§3.2): the public suffix plus one label, found
 * with libpsl (psl_registrable_domain).  A public suffix itself ("com",
 * "co.uk") has none.  psl may be NULL: libpsl's built-in list (Debian 12:
 * compiled in from publicsuffix 2023-02, 9498 rules) is used; a driver that
 * wants a newer list loads one (psl_latest) and passes it.
 */
#ifndef AMP_DMARC_H
#define AMP_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct psl_ctx_st;      /* libpsl's psl_ctx_t; NULL: the built-in list */

#define DMARC_RECORD_MAX 2048u  /* bytes of one TXT record */
#define DMARC_URIS_MAX 1024u    /* bytes of rua or ruf, as written */
#define DMARC_FO_MAX 16u        /* bytes of fo */
#define DMARC_RF_MAX 64u        /* bytes of rf */
#define DMARC_DOMAIN_MAX 253u   /* a domain, without trailing dot */
#define DMARC_NAME_MAX (DMARC_DOMAIN_MAX + 7u) /* "_dmarc." + domain */
#define DMARC_DKIM_MAX 16u      /* DKIM results looked at per message */

typedef enum dmarc_policy {
	DMARC_POLICY_NONE = 0,
	DMARC_POLICY_QUARANTINE = 1,
	DMARC_POLICY_REJECT = 2,
} dmarc_policy;

/* Warnings: tags whose bad value was replaced by the default. */
#define DMARC_REC_P_DEFAULTED 0x01u  /* p (or sp) bad or missing: none */
#define DMARC_REC_BAD_PCT 0x02u
#define DMARC_REC_BAD_ADKIM 0x04u
#define DMARC_REC_BAD_ASPF 0x08u
#define DMARC_REC_BAD_FO 0x10u
#define DMARC_REC_BAD_RF 0x20u
#define DMARC_REC_BAD_RI 0x40u

typedef struct dmarc_record {
	dmarc_policy p;
	dmarc_policy sp;         /* p when the record has no sp */
	bool sp_given;
	uint8_t pct;             /* 0..100 */
	bool adkim_strict, aspf_strict;
	uint32_t ri;             /* seconds */
	char rua[DMARC_URIS_MAX + 1]; /* "" when absent; as written */
	char ruf[DMARC_URIS_MAX + 1];
	char fo[DMARC_FO_MAX + 1];    /* "0" when absent or bad */
	char rf[DMARC_RF_MAX + 1];    /* "afrf" when absent or bad */
	unsigned warnings;       /* DMARC_REC_* */
} dmarc_record;

/* Parse one record.  0 and *rec_r filled, or -1 with *error_r a static
 * sentence (*rec_r then holds the defaults, p=none). */
int dmarc_record_parse(const uint8_t *txt, size_t len, dmarc_record *rec_r,
		       const char **error_r) __attribute__((warn_unused_result));

typedef enum dmarc_txt_status {
	DMARC_TXT_OK = 0,        /* exactly one record, parsed: *rec_r */
	DMARC_TXT_NONE,          /* no TXT record begins with v=DMARC1 */
	DMARC_TXT_INVALID,       /* several, or the one is refused */
} dmarc_txt_status;

/* Among the TXT records found at one _dmarc name (NUL-terminated, as
 * dns.h gives them; NULL entries skipped), keep those beginning with
 * "v" *WSP "=" *WSP "DMARC1" followed by *WSP and ';' or the end (§6.6.3
 * step 3); exactly one must be left and parse.  *error_r is a static
 * sentence unless DMARC_TXT_OK.  §6.6.3 step 4 reads NONE and "several"
 * as "no policy here"; a refused single record is a permerror. */
dmarc_txt_status dmarc_txt_select(const char *const *txt, size_t n,
				  dmarc_record *rec_r, const char **error_r)
	__attribute__((warn_unused_result));

/* The organisational domain of domain, lower case and without a trailing
 * dot, into org_r.  1: found; 0: domain is a public suffix ("com",
 * "co.uk", "github.io": the list's private section counts too), org_r "";
 * -1: domain refused, *error_r says why, org_r "".  An unlisted top-level
 * label is a suffix by the list's implicit "*" rule ("a.b.example.invalid"
 * -> "example.invalid"). */
int dmarc_org_domain(const struct psl_ctx_st *psl, const char *domain,
		     char org_r[DMARC_DOMAIN_MAX + 1], const char **error_r)
	__attribute__((warn_unused_result));

/* The names to ask, in order (§6.6.3): "_dmarc.FROM", then, when it
 * differs from FROM and exists, "_dmarc.ORG".  Lower case, no trailing
 * dot.  Ask the second only when the first has no DMARC record (NXDOMAIN
 * or DMARC_TXT_NONE); a DNS temporary failure on either ends discovery
 * with temperror.  Returns 1 or 2, or -1 with *error_r (a bad domain). */
int dmarc_query_names(const struct psl_ctx_st *psl, const char *from_domain,
		      char names_r[2][DMARC_NAME_MAX + 1],
		      const char **error_r) __attribute__((warn_unused_result));

/* Alignment (§3.1): strict is equality (case-insensitive, trailing dot
 * ignored); relaxed is equality, or equal organisational domains (two
 * names under a public suffix but not on it).  False for a refused name. */
bool dmarc_aligned(const struct psl_ctx_st *psl, const char *a,
		   const char *b, bool strict) __attribute__((warn_unused_result));

typedef enum dmarc_spf {
	DMARC_SPF_NONE = 0, DMARC_SPF_NEUTRAL, DMARC_SPF_PASS, DMARC_SPF_FAIL,
	DMARC_SPF_SOFTFAIL, DMARC_SPF_TEMPERROR, DMARC_SPF_PERMERROR,
} dmarc_spf;

/* What policy discovery found (the caller's DNS, then dmarc_txt_select). */
typedef enum dmarc_found {
	DMARC_FOUND_NONE = 0,     /* no record at either name */
	DMARC_FOUND_FROM,         /* a record at _dmarc.FROM */
	DMARC_FOUND_ORG,          /* a record at _dmarc.ORG */
	DMARC_FOUND_TEMPERROR,    /* a DNS temporary failure */
	DMARC_FOUND_PERMERROR,    /* DMARC_TXT_INVALID for the one answering */
} dmarc_found;

typedef struct dmarc_dkim {
	const char *d;           /* the d= of a signature that verified */
	bool partial;            /* its l= did not cover the whole body:
				    ignored (TESTING.md D3) */
} dmarc_dkim;

typedef struct dmarc_input {
	size_t from_fields;      /* From fields in the header section */
	size_t from_mailboxes;   /* addresses in the one From field */
	const char *from_domain; /* the one address's domain (RFC5322.From) */
	dmarc_spf spf;
	const char *spf_domain;  /* the domain SPF checked (MAIL FROM's, or
				    HELO's for a null sender); NULL: none */
	const dmarc_dkim *dkim;  /* passing signatures; the first
				    DMARC_DKIM_MAX are looked at */
	size_t n_dkim;
	dmarc_found found;
	const dmarc_record *rec; /* with DMARC_FOUND_FROM / _ORG */
	unsigned random;         /* 0..99 from the caller, for pct */
} dmarc_input;

typedef enum dmarc_result {
	DMARC_NONE = 0, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR,
	DMARC_PERMERROR,
} dmarc_result;

typedef struct dmarc_verdict {
	dmarc_result result;
	bool spf_aligned;        /* SPF passed for an aligned domain */
	bool dkim_aligned;       /* some whole-body DKIM pass is aligned */
	size_t dkim_index;       /* the first aligned one (if dkim_aligned) */
	dmarc_policy policy;     /* the record's p or sp that applies (none
				    without a record) */
	bool subdomain_policy;   /* it was sp (record at ORG, FROM != ORG) */
	bool sampled_out;        /* pct spared the message: one step down */
	dmarc_policy disposition; /* what the record asks for this message:
				     none unless result == DMARC_FAIL */
	const char *reason;      /* static sentence */
} dmarc_verdict;

/* What DMARC needs from the message's From fields (RFC 7489 §6.6.1). */
typedef struct dmarc_from {
	size_t fields;           /* From fields in the header section */
	size_t mailboxes;        /* addresses in the first one (0: it does
				    not read as a mailbox-list) */
	char domain[DMARC_DOMAIN_MAX + 1]; /* with exactly one field of one
				    mailbox: its domain, lower case, without
				    a trailing dot; "" otherwise, and when it
				    has a blank, a control byte or an empty
				    label */
} dmarc_from;

/* Read the From fields of msg (header section and body; only the header
 * is looked at, at most DMARC_FROM_FIELDS_MAX fields).  Never fails. */
#define DMARC_FROM_FIELDS_MAX 4096u
void dmarc_from_get(const uint8_t *msg, size_t len, dmarc_from *from_r);

/* Evaluate one message.  Always fills *v (never fails: a bad input is
 * a result with a reason).  Several From fields, a From with no or
 * several addresses, or no usable From domain: DMARC_FAIL with
 * disposition reject and no record looked at (§6.6.1; TESTING.md D4).
 * Otherwise: a temperror/permerror/none discovery gives that result and
 * disposition none; else pass when SPF passed for an aligned domain
 * (aspf) or a whole-body DKIM signature of an aligned d= (adkim) verified,
 * else fail with the applicable policy (sp for a record found at ORG when
 * FROM is below ORG, p otherwise), stepped down one level (reject ->
 * quarantine -> none) when random >= pct (§6.6.4). */
void dmarc_evaluate(const struct psl_ctx_st *psl, const dmarc_input *in,
		    dmarc_verdict *v);

/* "none", "quarantine", "reject"; "pass", "fail", "temperror", ...; NULL
 * outside the enums. */
const char *dmarc_policy_name(dmarc_policy p);
const char *dmarc_result_name(dmarc_result r);

#endif
