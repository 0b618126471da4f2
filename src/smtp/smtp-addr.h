/*
 * smtp-addr.h — RFC 5321 paths and ESMTP parameters (issue 4), pure:
 * bytes in, a parsed value or an error code out.  No I/O, no allocation
 * beyond the caller's buffers.
 *
 * Paths (RFC 5321 §4.1.2): "<" [ A-d-l ":" ] Mailbox ">" or "<>" (MAIL
 * only).  Mailbox = Local-part "@" ( Domain / address-literal ).  Also
 * "<Postmaster>" (any case) when !allow_null (RCPT, §4.1.1.3 MUST): it
 * comes back with local "Postmaster" as given and an empty domain.
 *  - Local-part: Dot-string or Quoted-string; the canonical form keeps a
 *    quoted local part quoted only when it needs quoting.
 *  - Limits (§4.5.3.1): local part 64 octets, domain 255, path 256.
 *  - 8-bit (UTF-8) only with smtputf8 (RFC 6531), and it must be valid
 *    UTF-8; NUL and other control characters never.
 *  - A source route (A-d-l) is refused (TESTING.md S8 allows refusing).
 *  - '%' and '!' in a local part are ordinary characters here: they never
 *    route (S18); the relay decision looks at the domain only.
 *  - Domain: LDH labels (or U-labels with smtputf8), 1..63 octets each,
 *    case kept as given; address literals [IPv4] and [IPv6:...] checked
 *    strictly (no [1.2.3.321], no [1..2.3.4]).
 *
 * ESMTP parameters (RFC 5321 §4.1.2 Mail-parameters): space-separated
 * keyword[=value]; keywords case-insensitive; at most SMTP_PARAMS_MAX; a
 * duplicate keyword is an error.  Which keywords a command accepts, and
 * their values (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT) are
 * checked by smtp_params_check_mail / _rcpt.
 */
#ifndef AMP_SMTP_ADDR_H
#define AMP_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCAL_MAX 64u
#define SMTP_DOMAIN_MAX 255u
#define SMTP_PATH_MAX 256u
#define SMTP_PARAMS_MAX 16u
#define SMTP_PARAM_VALUE_MAX 512u

typedef enum smtp_addr_err {
	SMTP_ADDR_OK = 0,
	SMTP_ADDR_SYNTAX,        /* 501 5.1.3 / 5.1.7 */
	SMTP_ADDR_TOO_LONG,      /* 501 5.1.3 (path), 553 5.1.3 */
	SMTP_ADDR_8BIT,          /* 8-bit without SMTPUTF8: 553 5.6.7 */
	SMTP_ADDR_ROUTE,         /* source route: 501 5.1.3 */
} smtp_addr_err;

typedef struct smtp_path {
	bool null;                               /* "<>" */
	char local[SMTP_LOCAL_MAX * 2 + 3];      /* canonical, NUL-terminated */
	char domain[SMTP_DOMAIN_MAX + 1];        /* as given; lower-case copy: */
	char domain_lc[SMTP_DOMAIN_MAX + 1];     /* ASCII lower-cased */
	bool literal;                            /* [address literal] */
	bool utf8;                               /* contains 8-bit */
} smtp_path;

/* Parse a path at s[0..len) (starting at '<').  *used_r: bytes consumed
 * (up to and including '>').  allow_null: MAIL FROM.  *why_r: a static
 * sentence for the reply. */
smtp_addr_err smtp_path_parse(const char *s, size_t len, bool allow_null,
			      bool smtputf8, smtp_path *path_r, size_t *used_r,
			      const char **why_r);

/* s[0..len) is a domain or an address literal as in a path (EHLO/HELO
 * arguments): at most SMTP_DOMAIN_MAX octets; 8-bit only with smtputf8. */
bool smtp_domain_check(const char *s, size_t len, bool smtputf8);

/* "local@domain" (canonical local part) into out; false if it does not
 * fit. */
bool smtp_path_format(const smtp_path *p, char *out, size_t out_size);

typedef struct smtp_param {
	char key[32];                            /* upper-cased */
	char value[SMTP_PARAM_VALUE_MAX + 1];    /* "" when no '=' */
	bool has_value;
} smtp_param;

typedef struct smtp_params {
	smtp_param p[SMTP_PARAMS_MAX];
	size_t n;
} smtp_params;

typedef enum smtp_param_err {
	SMTP_PARAM_OK = 0,
	SMTP_PARAM_SYNTAX,       /* 501 5.5.4 */
	SMTP_PARAM_UNKNOWN,      /* 555 5.5.4 */
	SMTP_PARAM_DUPLICATE,    /* 501 5.5.4 */
	SMTP_PARAM_TOO_MANY,     /* 501 5.5.4 */
	SMTP_PARAM_BAD_VALUE,    /* 501 5.5.4 */
	SMTP_PARAM_TOO_BIG,      /* SIZE over the limit: 552 5.3.4 */
} smtp_param_err;

/* Split s[0..len) (after the path) into parameters. */
smtp_param_err smtp_params_parse(const char *s, size_t len, smtp_params *out,
				 const char **why_r);

/* What the server offers (EHLO keywords). */
typedef struct smtp_offer {
	uint64_t size_max;       /* SIZE limit in octets (0: no limit) */
	bool chunking, smtputf8, dsn, eightbit;
} smtp_offer;

/* The values MAIL FROM parameters carry, after checking. */
typedef struct smtp_mail_params {
	uint64_t size;           /* 0: not given */
	enum { SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME } body;
	bool smtputf8;
	enum { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS } ret;
	char envid[101];         /* xtext-decoded, RFC 3461 */
} smtp_mail_params;

typedef struct smtp_rcpt_params {
	unsigned notify;         /* bits: 1 NEVER, 2 SUCCESS, 4 FAILURE, 8 DELAY */
	char orcpt[SMTP_PATH_MAX + 16]; /* "rfc822;addr" decoded, or "" */
} smtp_rcpt_params;

smtp_param_err smtp_params_check_mail(const smtp_params *ps,
				      const smtp_offer *offer,
				      smtp_mail_params *out, const char **why_r);
smtp_param_err smtp_params_check_rcpt(const smtp_params *ps,
				      const smtp_offer *offer,
				      smtp_rcpt_params *out, const char **why_r);

#endif
