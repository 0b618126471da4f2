/*
 * mtasts.h — SMTP MTA Strict Transport Security (RFC 8461), the pure part:
 * the `_mta-sts` TXT record (§3.1), the policy file (§3.2) and the MX
 * pattern match (§4.1).  No I/O, no clock, no logging: bytes in, a result
 * or a refusal with a static reason out.  The fetcher that looks the
 * record up, downloads the policy over HTTPS and caches it is
 * src/daemon/mtasts-fetch.h.
 *
 * TXT record (§3.1), one record (DNS strings already joined):
 *     record = "v=STSv1" 1*(delim field) [delim] *WSP
 *     delim  = *WSP ";" *WSP
 *     field  = "id=" 1*32(ALPHA / DIGIT)
 *            / name "=" 1*(%x21-3A / %x3C / %x3E-7E)     ; ignored
 *     name   = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 * Names and "STSv1" are case-sensitive (RFC 7405 %s).  The id is
 * required; a second id is ignored (§3.2: all entries of a non-repeated
 * field but the first are ignored).  Refused: anything else, e.g. an
 * empty field (";;"), a field named "id" whose value is not 1..32
 * alphanumerics, a NUL.  Lenient: trailing blanks after the last field.
 * Among all TXT records at _mta-sts.DOMAIN, those that do not begin with
 * "v=STSv1" followed by *WSP and ";" or the end are not MTA-STS records
 * and are dropped; exactly one must be left (mtasts_txt_select).
 *
 * Policy file (§3.2): lines ending in LF or CRLF, each
 *     name ":" *WSP value *WSP
 * with name as in the TXT record.  Known fields (case-sensitive names):
 *     version  "STSv1"                                   required
 *     mode     "enforce" / "testing" / "none"            required
 *     max_age  1*10DIGIT, capped at MTASTS_MAX_AGE_MAX   required
 *     mx       ["*."] Domain (RFC 5321 LDH labels)       1..MTASTS_MX_MAX,
 *                                                        none needed
 *                                                        with mode none
 * A repeated version, mode or max_age: the first counts and the others
 * are ignored, whatever their value.  Unknown fields are ignored.
 * Refused: a policy over MTASTS_POLICY_MAX bytes; a line without ':' or
 * with a malformed name; a control character (C0 other than HTAB and the
 * line ends, DEL, C1) or invalid UTF-8 anywhere; a bad value of a known field;
 * more than MTASTS_MX_MAX mx lines; a missing required field.
 * Lenient: empty (or blank) lines are skipped, and the last line may lack
 * its line end.
 *
 * MX match (§4.1, RFC 6125 §6.4.3): case-insensitive; "*.example.net"
 * matches exactly one more label on the left ("mx1.example.net", not
 * "example.net" nor "a.b.example.net"); a pattern without "*." matches
 * only the same name.  One trailing dot of the host is ignored.
 */
#ifndef AMP_MTASTS_H
#define AMP_MTASTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTASTS_POLICY_MAX 65536u        /* bytes of a policy file (§3.3) */
#define MTASTS_MX_MAX 100u              /* mx lines of one policy */
#define MTASTS_MAX_AGE_MAX 31557600u    /* seconds, about a year (§3.2) */
#define MTASTS_ID_MAX 32u               /* characters of a TXT id */
#define MTASTS_DOMAIN_MAX 253u          /* a name, without trailing dot */

typedef enum mtasts_mode {
	MTASTS_MODE_NONE = 0,           /* treat as no policy (§5) */
	MTASTS_MODE_TESTING = 1,        /* apply, but only report failures */
	MTASTS_MODE_ENFORCE = 2,        /* MX must match, TLS + PKIX */
} mtasts_mode;

/* A parsed policy: one allocation (free with mtasts_policy_free). */
typedef struct mtasts_policy {
	mtasts_mode mode;
	uint32_t max_age;               /* seconds, <= MTASTS_MAX_AGE_MAX */
	size_t n_mx;                    /* 0 only with MTASTS_MODE_NONE */
	const char *mx[MTASTS_MX_MAX];  /* patterns in file order, lower case,
					   "*.example.net" or a host name;
					   they point into this allocation */
	/* Filled by the fetcher (mtasts-fetch.h); "" and 0 from the parser. */
	char id[MTASTS_ID_MAX + 1];     /* the TXT id it was fetched under */
	uint64_t fetched;               /* unix seconds */
	uint64_t expires;               /* fetched + max_age */
	size_t alloc_size;              /* bytes of the allocation */
} mtasts_policy;

/* Parse a policy file.  0 and *p_r (owned by the caller), or -1 with
 * *p_r NULL and *error_r a static sentence. */
int mtasts_policy_parse(const uint8_t *text, size_t len, mtasts_policy **p_r,
			const char **error_r) __attribute__((warn_unused_result));
/* A copy of p (one allocation, like the original); aborts when out of
 * memory. */
mtasts_policy *mtasts_policy_dup(const mtasts_policy *p);
/* NULL is fine; *p becomes NULL. */
void mtasts_policy_free(mtasts_policy **p);

/* "none", "testing", "enforce"; NULL outside the enum. */
const char *mtasts_mode_name(mtasts_mode m);

/* One TXT record.  0 and id_r set (NUL-terminated), or -1 with
 * *error_r a static sentence and id_r "". */
int mtasts_txt_parse(const uint8_t *rec, size_t len,
		     char id_r[MTASTS_ID_MAX + 1], const char **error_r)
	__attribute__((warn_unused_result));

typedef enum mtasts_txt_status {
	MTASTS_TXT_OK = 0,              /* exactly one valid record: id_r */
	MTASTS_TXT_NONE,                /* no record begins "v=STSv1;" */
	MTASTS_TXT_INVALID,             /* several, or the one is invalid */
} mtasts_txt_status;

/* The records found at _mta-sts.DOMAIN (NUL-terminated, as dns.h gives
 * them).  *error_r is a static sentence unless MTASTS_TXT_OK. */
mtasts_txt_status mtasts_txt_select(const char *const *txt, size_t n,
				    char id_r[MTASTS_ID_MAX + 1],
				    const char **error_r);

/* Whether the MX host name matches one of the policy's mx patterns
 * (whatever the mode: applying it is the caller's business).  False for a
 * NULL policy or host, an empty host, or a host with an empty label or a
 * '*'. */
bool mtasts_mx_match(const mtasts_policy *p, const char *host);
/* The same test for one pattern. */
bool mtasts_pattern_match(const char *pattern, const char *host);

#endif
