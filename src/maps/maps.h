/*
 * maps.h — the mapping engine of the legacy bridge (issue 4): Postfix-style
 * lookup tables with Postfix's key forms and search order, our own code.
 * docs/maps.md is the operator's description (syntax, search order, every
 * result, a table of examples that test-maps checks line by line).
 *
 * Tables (maps_kind):
 *   access_map      client IP / network, client host name, sender and
 *                   recipient addresses -> OK / REJECT / DEFER / DISCARD /
 *                   HOLD / DUNNO / 4NN text / 5NN text (maps_access)
 *   relay_domains   domains this node relays for (keys only)
 *   virtual_alias_maps  user@domain or @domain -> addresses and DIDs,
 *                   expanded recursively (maps_virtual_expand)
 *   canonical_maps  user@domain or @domain -> one address or DID, and back
 *                   (maps_canonical_forward / _reverse)
 *   transport_maps  domain (or user@domain, *) -> transport:nexthop
 *
 * File syntax (all tables): "KEY VALUE" per logical line; lines whose
 * first non-blank character is '#' and blank lines are ignored (a '#'
 * later in a line is text, as in Postfix); a line starting with a blank
 * continues the previous logical line (joined with one space).  Keys are
 * ASCII-lower-cased.  A bad line fails the whole load with "NAME, line N:
 * reason" (N: the first line of the logical line): parse the new table,
 * then replace the old one only on success (maps_table_reload does that).
 *
 * Pure: no sockets, no database, no logging.  maps_table_load and
 * maps_table_reload read one file (blocking); everything else works on
 * memory.  A table is immutable once built: lookups on one table from
 * several threads are safe; replacing a table under readers is the
 * caller's business (a lock or reference count around the pointer).
 *
 * Out of memory aborts (STYLE.md).
 */
#ifndef AMP_MAPS_H
#define AMP_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define MAPS_WUR __attribute__((warn_unused_result))
#else
#define MAPS_WUR
#endif

/* ---------------------------------------------------------------- limits
 * Every input has a ceiling; docs/maps.md lists them with their reasons. */
#define MAPS_FILE_MAX       (64u * 1024u * 1024u) /* bytes of a table file */
#define MAPS_LINE_MAX       4096u   /* a logical line, continuations joined */
#define MAPS_ENTRIES_MAX    1000000u /* entries of one table */
#define MAPS_KEY_MAX        512u    /* a key; longer lookups match nothing */
#define MAPS_ADDR_MAX       512u    /* an address or DID in a result */
#define MAPS_TEXT_MAX       400u    /* reply / log text of an action: one
				     * SMTP reply line with code and DSN */
#define MAPS_HOST_MAX       255u    /* transport nexthop host */
#define MAPS_CANONICAL_DEPTH 10u    /* canonical rewrites applied in a row
				     * (Postfix: 10) */
#define MAPS_ALIAS_FANOUT_DEFAULT 1000u /* final recipients of one address
					 * (Postfix virtual_alias_expansion_limit) */
#define MAPS_ALIAS_FANOUT_MAX 100000u
#define MAPS_ALIAS_DEPTH_DEFAULT 100u /* nesting of aliases */
#define MAPS_ALIAS_DEPTH_MAX 1000u  /* Postfix virtual_alias_recursion_limit */
#define MAPS_ALIAS_VISITS_PER_FANOUT 10u /* addresses looked up during one
					  * expansion: 10 x the fan-out limit */
#define MAPS_ERROR_TEXT     320u

/* Reply codes of REJECT and DEFER without a code of their own (Postfix
 * access_map_reject_code, access_map_defer_code), and the enhanced status
 * used when the text does not start with one: <class>.7.1. */
#define MAPS_REJECT_CODE    554u
#define MAPS_DEFER_CODE     450u

/* ------------------------------------------------------------ tables */
typedef enum maps_kind {
	MAPS_ACCESS = 0,
	MAPS_RELAY_DOMAINS,
	MAPS_VIRTUAL,
	MAPS_CANONICAL,
	MAPS_TRANSPORT,
} maps_kind;
#define MAPS_KIND_COUNT 5

/* "access_map", "relay_domains", "virtual_alias_maps", "canonical_maps",
 * "transport_maps". */
const char *maps_kind_name(maps_kind kind);
/* Accepts those names and the short ones: access, relay, virtual,
 * canonical, transport. */
bool maps_kind_from_name(const char *name, maps_kind *kind_r) MAPS_WUR;

typedef struct maps_options {
	/* "example.com" also matches every subdomain of example.com (Postfix
	 * parent_domain_matches_subdomains).  ".example.com" matches the
	 * subdomains either way.  Default: on for access_map and
	 * relay_domains, off for transport_maps; virtual and canonical maps
	 * look up addresses only. */
	bool subdomains;
	/* virtual_alias_maps: at most this many final recipients
	 * (1..MAPS_ALIAS_FANOUT_MAX) and this much nesting
	 * (1..MAPS_ALIAS_DEPTH_MAX). */
	unsigned alias_fanout;
	unsigned alias_depth;
} maps_options;

/* The defaults of a table kind (see above). */
void maps_options_default(maps_kind kind, maps_options *opt_r);

typedef struct maps_error {
	unsigned line;                /* 0: not tied to a line */
	char text[MAPS_ERROR_TEXT];   /* "NAME, line N: reason" or "NAME: reason" */
} maps_error;

typedef struct maps_table maps_table;

/* Build a table from the text of a table file (len bytes, NUL bytes are
 * errors).  name appears in error messages (the file name).  opt NULL:
 * maps_options_default(kind).  0, or -1 with *err filled and *t_r
 * untouched.  The result is owned by the caller (maps_table_destroy). */
int maps_table_parse(maps_kind kind, const maps_options *opt, const char *name,
		     const char *text, size_t len, maps_table **t_r,
		     maps_error *err) MAPS_WUR;

/* As maps_table_parse on the contents of the file at path (at most
 * MAPS_FILE_MAX bytes).  Blocks on file I/O. */
int maps_table_load(maps_kind kind, const maps_options *opt, const char *path,
		    maps_table **t_r, maps_error *err) MAPS_WUR;

/* Re-read the file *t was loaded from, with the same kind and options.
 * On success *t is replaced (the old table destroyed) and 0 returned; on
 * any error *t stays as it was and -1 is returned with *err filled.
 * A table made by maps_table_parse has no file: -1. */
int maps_table_reload(maps_table **t, maps_error *err) MAPS_WUR;

/* A relay_domains table from a configuration list: domains separated by
 * commas and/or blanks ("example.com, .example.net"). */
int maps_relay_list_parse(const maps_options *opt, const char *name,
			  const char *list, maps_table **t_r,
			  maps_error *err) MAPS_WUR;

/* Check one entry as a line of a file of that kind would be checked
 * (for `amp map add`): 0, or -1 with the reason in *err. */
int maps_entry_check(maps_kind kind, const char *key, const char *value,
		     maps_error *err) MAPS_WUR;

void maps_table_destroy(maps_table **t);

maps_kind maps_table_kind(const maps_table *t);
const char *maps_table_name(const maps_table *t);
const maps_options *maps_table_options(const maps_table *t);
/* Number of entries (all kinds of key). */
size_t maps_table_count(const maps_table *t);

/* ------------------------------------------------------------ matches */
/* Which form of the lookup key matched (docs/maps.md "Key forms"). */
typedef enum maps_form {
	MAPS_FORM_NONE = 0,
	MAPS_FORM_ADDRESS,     /* user@domain */
	MAPS_FORM_DOMAIN,      /* the domain or host name itself */
	MAPS_FORM_PARENT,      /* example.com for a.example.com (subdomains on) */
	MAPS_FORM_DOT_PARENT,  /* .example.com for a.example.com */
	MAPS_FORM_LOCALPART,   /* user@ */
	MAPS_FORM_CATCHALL,    /* @domain */
	MAPS_FORM_NETWORK,     /* an IP address or network (CIDR) */
	MAPS_FORM_WILDCARD,    /* * (transport_maps) */
	MAPS_FORM_NULL_SENDER, /* <> */
	MAPS_FORM_REVERSE,     /* canonical reverse: the entry naming the value */
} maps_form;

/* "user@domain", "domain", "parent domain", ".domain", "user@", "@domain",
 * "network", "*", "<>", "reverse". */
const char *maps_form_name(maps_form form);

/* The entry a lookup found.  key and value point into the table: valid
 * until the table is destroyed. */
typedef struct maps_match {
	maps_form form;
	const char *key;    /* as stored: lower case; a network as written */
	const char *value;  /* as stored (blanks normalised) */
	unsigned line;      /* first line of the entry in its file */
} maps_match;

/* Entry i (0 <= i < maps_table_count) in a stable order: keys sorted,
 * then networks (longest prefix first).  form: MAPS_FORM_NETWORK for a
 * network, else MAPS_FORM_NONE. */
bool maps_table_entry(const maps_table *t, size_t i, maps_match *m_r);

/* The keys a lookup of query tries, in order, each passed to fn with its
 * form; fn returns true to stop.  query is an address (contains '@'; ""
 * is the null sender for access_map) or a domain / host name.  Networks
 * are not keys: an IP address is matched against the table's networks
 * (maps_access_client).  Keys longer than MAPS_KEY_MAX are skipped. */
typedef bool (*maps_key_fn)(const char *key, size_t len, maps_form form,
			    void *ctx);
void maps_keys(maps_kind kind, const maps_options *opt, const char *query,
	       maps_key_fn fn, void *ctx);

/* ------------------------------------------------------------ access_map */
typedef enum maps_action {
	MAPS_ACT_NONE = 0,    /* no entry matched */
	MAPS_ACT_OK,          /* OK, or an all-numerical value */
	MAPS_ACT_REJECT,      /* REJECT [text], 5NN text */
	MAPS_ACT_DEFER,       /* DEFER [text], 4NN text */
	MAPS_ACT_DISCARD,     /* DISCARD [text] */
	MAPS_ACT_HOLD,        /* HOLD [text] */
	MAPS_ACT_DUNNO,       /* DUNNO: stop searching this table, go on */
} maps_action;

typedef struct maps_access {
	maps_action action;
	unsigned code;                 /* REJECT/DEFER: 4NN/5NN; else 0.
					* 421 and 521 mean: reply, then close */
	char dsn[12];                  /* REJECT/DEFER: "5.7.1" etc.; else "" */
	bool dsn_given;                /* the dsn came from the table text */
	char text[MAPS_TEXT_MAX + 1];  /* optional text, without the dsn */
} maps_access;

/* "OK", "REJECT", ... */
const char *maps_action_name(maps_action a);

/* Parse an access_map value.  0, or -1 with a static reason in *why_r. */
int maps_access_parse(const char *value, maps_access *r, const char **why_r)
	MAPS_WUR;

/* Sender or recipient address (check_sender_access /
 * check_recipient_access): user@domain, then domain and its parents, then
 * user@; "" (the null sender) looks up <>.  '%' and '!' are ordinary
 * local-part characters.  True when an entry matched (DUNNO included):
 * *r and (if m is not NULL) *m filled; false: r->action = MAPS_ACT_NONE. */
bool maps_access_address(const maps_table *t, const char *addr,
			 maps_access *r, maps_match *m);

/* A host or domain name (client host name, HELO name): the name, then its
 * parents. */
bool maps_access_domain(const maps_table *t, const char *name, maps_access *r,
			maps_match *m);

/* A client (check_client_access): its host name as maps_access_domain
 * (skipped when name is NULL, "" or "unknown"), then its IP address in
 * the table's networks, the longest prefix first.  ip: "192.0.2.1",
 * "2001:db8::1", optionally in brackets; an IPv4-mapped IPv6 address is
 * looked up as IPv4.  An entry found for the name (DUNNO included) ends
 * the search. */
bool maps_access_client(const maps_table *t, const char *name, const char *ip,
			maps_access *r, maps_match *m);

/* Parse an IP address as the lookups do: 4 or 16 bytes into addr,
 * *family_r 4 or 6. */
bool maps_ip_parse(const char *s, uint8_t addr[16], int *family_r) MAPS_WUR;

/* The longest-prefix network entry containing ip (any table kind that has
 * networks: access_map). */
bool maps_cidr_lookup(const maps_table *t, const char *ip, maps_match *m);

/* ------------------------------------------------------------ relay_domains */
/* domain (or the domain of an address) is a relay domain: the domain
 * itself, ".parent" keys, and with subdomains on "parent" keys. */
bool maps_relay_domain(const maps_table *t, const char *domain, maps_match *m);

/* ------------------------------------------------------------ virtual */
typedef enum maps_status {
	MAPS_OK = 0,
	MAPS_ERR_LOOP = -1,     /* an alias leads back to itself */
	MAPS_ERR_FANOUT = -2,   /* more final recipients (or lookups) than allowed */
	MAPS_ERR_DEPTH = -3,    /* nested deeper than allowed */
	MAPS_ERR_TOO_LONG = -4, /* an address longer than MAPS_ADDR_MAX */
	MAPS_ERR_INVALID = -5,  /* empty input, wrong table kind */
} maps_status;

const char *maps_status_name(maps_status s);

typedef struct maps_rcpts {
	size_t n;
	char **v;          /* addresses and DIDs, deduplicated (case-folded) */
	bool changed;      /* some entry matched: the list is not just the input */
} maps_rcpts;

/* Expand addr through a virtual_alias_maps table: user@domain, then
 * @domain; each result (addresses and DIDs separated by commas or blanks)
 * is expanded again, depth first in table order; "@other" as the first
 * result means the same user at other.  DIDs are final.  An address that
 * lists itself is final (Postfix: "alias an address to itself to stop
 * recursion").  A way back to an address being expanded that passes no
 * such address is MAPS_ERR_LOOP.  An address with no entry is final (it
 * is its own result).  Limits: opt.alias_fanout final recipients, 10 x
 * that many addresses looked up (MAPS_ERR_FANOUT), opt.alias_depth
 * nesting (MAPS_ERR_DEPTH).  Does not block.  MAPS_OK with *r_r (the
 * caller's; free with maps_rcpts_destroy), or an error with *err filled
 * and *r_r NULL. */
maps_status maps_virtual_expand(const maps_table *t, const char *addr,
				maps_rcpts **r_r, maps_error *err) MAPS_WUR;
void maps_rcpts_destroy(maps_rcpts **r);

/* One lookup without recursion: user@domain, then @domain. */
bool maps_virtual_lookup(const maps_table *t, const char *addr, maps_match *m);

/* domain is a virtual alias domain: the table has the bare key domain
 * (Postfix's "example.com  anything" line). */
bool maps_virtual_domain(const maps_table *t, const char *domain,
			 maps_match *m);

/* ------------------------------------------------------------ canonical */
/* Rewrite addr: user@domain, then @domain ("@other" keeps the user part);
 * applied again to the result until nothing matches, the result is a DID
 * or maps to itself, at most MAPS_CANONICAL_DEPTH times.  Writes the
 * result (addr itself when nothing matched) into out.  1 when an entry
 * matched (out may still equal addr: an entry mapping it to itself), 0
 * when none did, or a negative maps_status (loop, depth, too long for
 * out) with *err filled.  *m (may be NULL): the first entry used. */
int maps_canonical_forward(const maps_table *t, const char *addr, char *out,
			   size_t out_size, maps_match *m,
			   maps_error *err) MAPS_WUR;

/* The address for a DID (or address) from the same table: the first line
 * whose value is exactly it (user@domain keys only); for an address
 * user@d2, an "@d1  @d2" line gives user@d1.  1 found (out written),
 * 0 not found, MAPS_ERR_TOO_LONG when out is too small. */
int maps_canonical_reverse(const maps_table *t, const char *value, char *out,
			   size_t out_size, maps_match *m) MAPS_WUR;

/* ------------------------------------------------------------ transport */
typedef struct maps_transport {
	char transport[16];           /* "amp", "smtp", "error"; "" default */
	char host[MAPS_HOST_MAX + 1]; /* nexthop host, lower case; "" none */
	uint16_t port;                /* 0: the transport's default */
	bool brackets;                /* [host]: no MX / SRV lookup */
	char text[MAPS_TEXT_MAX + 1]; /* error: the text */
} maps_transport;

/* Parse a transport_maps value.  0, or -1 with a static reason. */
int maps_transport_parse(const char *value, maps_transport *r,
			 const char **why_r) MAPS_WUR;

/* Where mail for an address or a domain goes: user@domain (if an address),
 * domain, then .parent (and parent with subdomains on), then *. */
bool maps_transport_lookup(const maps_table *t, const char *addr_or_domain,
			   maps_transport *r, maps_match *m);

/* ------------------------------------------------------------ test */
typedef struct maps_test_result {
	bool found;
	maps_match match;               /* the (first) entry that matched */
	char result[MAPS_LINE_MAX + 64]; /* what `amp map test` prints */
} maps_test_result;

/* Look query up as `amp map test TABLE QUERY` does (docs/maps.md
 * "Testing"): access_map: an address (has '@'; "" or "<>" is the null
 * sender), "name[ip]" (a client), an IP address, else a host name;
 * relay_domains: a domain; virtual_alias_maps: an address, expanded (the
 * result lists the final recipients or the error), or a domain (is it a
 * virtual alias domain); canonical_maps: an address (forward) or a DID
 * (reverse); transport_maps: an address or a domain.  Not found: result
 * "not found".  0, or -1 when query is NULL or longer than MAPS_LINE_MAX. */
int maps_test(const maps_table *t, const char *query, maps_test_result *r)
	MAPS_WUR;

#endif
