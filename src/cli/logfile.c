/*
 * logfile.c — the transparency log's client files: the seen head
 * (HOME/heads/<log DID>), the monitor state (HOME/monitor/<DID>) and the
 * receipt file, each formatted and parsed strictly, and a receipt checked
 * offline (PROTOCOL.md §11; the formats, what is refused and what is
 * tolerated are in logfile.h).
 *
 * Pure: no I/O, no clock, no globals.  The line formats are read a line
 * at a time into a LOGFILE_LINE_MAX buffer on the stack; a receipt goes
 * through jansson, bounded by LOGFILE_RECEIPT_MAX before it is handed
 * over.  Parsers fill a local copy and write their result only on
 * success.  Formatters refuse what the parsers would refuse, so a file
 * this module writes always reads back to the same value.
 */
#include "logfile.h"

#include "amp-private.h"
#include "util.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* s (read up to AMP_DID_MAX + 1 bytes) is a canonical DID. */
static bool is_did(const char *s)
{
	size_t n = strnlen(s, AMP_DID_MAX + 1);
	return n <= AMP_DID_MAX &&
	       amp_did_parse(s, n, &(amp_did){ 0 }, NULL) == AMP_OK;
}

/* Exactly 2n hex digits (either case) into out[n]. */
static bool hex_decode(const char *s, uint8_t *out, size_t n)
{
	size_t len = 0;
	return strlen(s) == 2 * n &&
	       sodium_hex2bin(out, n, s, 2 * n, NULL, &len, NULL) == 0 &&
	       len == n;
}

static bool is_zero(const uint8_t *b, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

/* out[cap] at *at: append what fmt gives; false (and *at = cap) once it
 * does not fit. */
static bool put(char *out, size_t cap, size_t *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool put(char *out, size_t cap, size_t *at, const char *fmt, ...)
{
	va_list ap;
	if (*at >= cap)
		return false;
	va_start(ap, fmt);
	int n = vsnprintf(out + *at, cap - *at, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *at) {
		*at = cap;
		return false;
	}
	*at += (size_t)n;
	return true;
}

/* The next line of text[*at..len) into line (NUL-terminated, without its
 * LF): 1, 0 at the end, or -1 with *error_r. */
static int next_line(const char *text, size_t len, size_t *at,
		     char line[LOGFILE_LINE_MAX], const char **error_r)
{
	if (*at >= len)
		return 0;
	const char *p = text + *at;
	size_t left = len - *at;
	const char *nl = memchr(p, '\n', left);
	size_t n = nl != NULL ? (size_t)(nl - p) : left;
	if (nl == NULL) {
		*error_r = "the last line has no line end (a truncated file)";
		return -1;
	}
	if (n + 1 > LOGFILE_LINE_MAX) {
		*error_r = "a line is too long";
		return -1;
	}
	if (memchr(p, '\0', n) != NULL) {
		*error_r = "a NUL byte";
		return -1;
	}
	memcpy(line, p, n);
	line[n] = '\0';
	*at += n + 1;
	return 1;
}

/* Split "key value" at its first space. */
static bool split(char *line, const char **k, char **v)
{
	char *sp = strchr(line, ' ');
	if (sp == NULL)
		return false;
	*sp = '\0';
	*k = line;
	*v = sp + 1;
	return true;
}

/* The index of k in keys[n], or n. */
static size_t key_index(const char *k, const char *const *keys, size_t n)
{
	size_t i = 0;
	while (i < n && strcmp(k, keys[i]) != 0)
		i++;
	return i;
}

/* ------------------------------------------------------------ seen head */

int logfile_head_format(const amp_log_head *h, char *out, size_t cap,
			size_t *len_r)
{
	char root[65], sig[129];
	size_t at = 0;
	if (!is_did(h->log))
		return -1;
	sodium_bin2hex(root, sizeof(root), h->root, 32);
	sodium_bin2hex(sig, sizeof(sig), h->sig, 64);
	if (!put(out, cap, &at, "log %s\nsize %" PRIu64 "\nroot %s\n"
		 "time %" PRIu64 "\nsig %s\n", h->log, h->size, root, h->time,
		 sig))
		return -1;
	*len_r = at;
	return 0;
}

int logfile_head_parse(const char *text, size_t len, amp_log_head *h_r,
		       const char **error_r)
{
	static const char *const keys[] = { "log", "size", "root", "time",
					    "sig" };
	const size_t n_keys = sizeof(keys) / sizeof(keys[0]);
	char line[LOGFILE_LINE_MAX];
	amp_log_head h;
	unsigned have = 0;
	size_t at = 0;
	int k;
	if (len > LOGFILE_HEAD_MAX) {
		*error_r = "larger than a tree head file can be";
		return -1;
	}
	memset(&h, 0, sizeof(h));
	while ((k = next_line(text, len, &at, line, error_r)) == 1) {
		const char *key;
		char *v;
		if (!split(line, &key, &v)) {
			*error_r = "a line is not \"key value\"";
			return -1;
		}
		size_t i = key_index(key, keys, n_keys);
		if (i == n_keys) {
			*error_r = "an unknown key";
			return -1;
		}
		if (have >> i & 1) {
			*error_r = "a key is repeated";
			return -1;
		}
		have |= 1u << i;
		bool ok;
		switch (i) {
		case 0:
			if ((ok = is_did(v)))
				memcpy(h.log, v, strlen(v) + 1);
			break;
		case 1: ok = util_parse_u64(v, 0, UINT64_MAX, &h.size); break;
		case 2: ok = hex_decode(v, h.root, 32); break;
		case 3: ok = util_parse_u64(v, 0, UINT64_MAX, &h.time); break;
		default: ok = hex_decode(v, h.sig, 64); break;
		}
		if (!ok) {
			static const char *const why[] = {
				"log is not a canonical DID",
				"size is not a number",
				"root is not 64 hex digits",
				"time is not a number",
				"sig is not 128 hex digits",
			};
			*error_r = why[i];
			return -1;
		}
	}
	if (k < 0)
		return -1;
	if (have != (1u << n_keys) - 1) {
		*error_r = "a key is missing (log, size, root, time, sig)";
		return -1;
	}
	*h_r = h;
	return 0;
}

/* -------------------------------------------------------- monitor state */

/* What the parser checks once every line is read; the formatter checks
 * it too.  levels: the frontier levels given. */
static bool mon_valid(const logfile_monitor *m, uint64_t levels,
		      const char **error_r)
{
	const amp_log_identity *id = &m->id;
	if (m->f.size > INT64_MAX) {
		*error_r = "size is out of range";
		return false;
	}
	if (levels != m->f.size) {
		*error_r = "the frontier does not have one hash per set bit "
			   "of size";
		return false;
	}
	if (id->revoked && !id->exists) {
		*error_r = "revoked, but the identity does not exist";
		return false;
	}
	if (id->exists) {
		uint8_t subject[32];
		amp_log_did_hash(m->did, subject);
		if (memcmp(subject, id->subject, 32) != 0) {
			*error_r = "subject is not the hash of did";
			return false;
		}
		if (m->index >= m->f.size) {
			*error_r = "index is not below size";
			return false;
		}
		return true;
	}
	if (id->version != 0 || !is_zero(id->subject, 32) ||
	    !is_zero(id->sign_pk, 32) || !is_zero(id->enc_pk, 32) ||
	    id->since != 0 || m->changed != 0 || m->index != 0) {
		*error_r = "an identity that does not exist has keys or times";
		return false;
	}
	return true;
}

int logfile_monitor_format(const logfile_monitor *m, char *out, size_t cap,
			   size_t *len_r)
{
	char sp[65], ep[65], sj[65];
	const char *err = NULL;
	size_t at = 0;
	if (!is_did(m->log) || !is_did(m->did) || !mon_valid(m, m->f.size, &err))
		return -1;
	sodium_bin2hex(sp, sizeof(sp), m->id.sign_pk, 32);
	sodium_bin2hex(ep, sizeof(ep), m->id.enc_pk, 32);
	sodium_bin2hex(sj, sizeof(sj), m->id.subject, 32);
	if (!put(out, cap, &at, "# amp log monitor: the last round's state\n"
		 "log %s\ndid %s\nsize %" PRIu64 "\nexists %d\n"
		 "revoked %d\nversion %" PRIu32 "\nsubject %s\n"
		 "sign_pk %s\nenc_pk %s\nsince %" PRIu64 "\n"
		 "changed %" PRIu64 "\nindex %" PRIu64 "\n",
		 m->log, m->did, m->f.size, m->id.exists, m->id.revoked,
		 m->id.version, sj, sp, ep, m->id.since, m->changed,
		 m->index))
		return -1;
	for (unsigned l = 0; l < AMP_LOG_LEVELS; l++) {
		char hx[65];
		if (!(m->f.size >> l & 1))
			continue;
		sodium_bin2hex(hx, sizeof(hx), m->f.hash[l], 32);
		if (!put(out, cap, &at, "frontier %u %s\n", l, hx))
			return -1;
	}
	*len_r = at;
	return 0;
}

static const char *const mon_keys[] = {
	"log", "did", "size", "exists", "revoked", "version", "subject",
	"sign_pk", "enc_pk", "since", "changed", "index",
};
#define MON_KEYS (sizeof(mon_keys) / sizeof(mon_keys[0]))

/* "frontier L HEX" (v: "L HEX") into m; levels: those seen. */
static bool mon_frontier(char *v, logfile_monitor *m, uint64_t *levels,
			 const char **error_r)
{
	char *sp = strchr(v, ' ');
	uint64_t l;
	if (sp != NULL)
		*sp = '\0';
	if (sp == NULL || !util_parse_u64(v, 0, AMP_LOG_LEVELS - 1, &l)) {
		*error_r = "a frontier line is not \"frontier LEVEL HEX\"";
		return false;
	}
	if (*levels >> l & 1) {
		*error_r = "a frontier level is repeated";
		return false;
	}
	if (!hex_decode(sp + 1, m->f.hash[l], 32)) {
		*error_r = "a frontier hash is not 64 hex digits";
		return false;
	}
	*levels |= (uint64_t)1 << l;
	return true;
}

/* Key i's value v into m. */
static bool mon_value(size_t i, const char *v, logfile_monitor *m)
{
	uint64_t u;
	switch (i) {
	case 0:
	case 1:
		if (!is_did(v))
			return false;
		memcpy(i == 0 ? m->log : m->did, v, strlen(v) + 1);
		return true;
	case 2: return util_parse_u64(v, 0, INT64_MAX, &m->f.size);
	case 3:
	case 4:
		if (!util_parse_u64(v, 0, 1, &u))
			return false;
		*(i == 3 ? &m->id.exists : &m->id.revoked) = u == 1;
		return true;
	case 5:
		if (!util_parse_u64(v, 0, UINT32_MAX, &u))
			return false;
		m->id.version = (uint32_t)u;
		return true;
	case 6: return hex_decode(v, m->id.subject, 32);
	case 7: return hex_decode(v, m->id.sign_pk, 32);
	case 8: return hex_decode(v, m->id.enc_pk, 32);
	case 9: return util_parse_u64(v, 0, UINT64_MAX, &m->id.since);
	case 10: return util_parse_u64(v, 0, UINT64_MAX, &m->changed);
	default: return util_parse_u64(v, 0, UINT64_MAX, &m->index);
	}
}

int logfile_monitor_parse(const char *text, size_t len, logfile_monitor *m_r,
			  const char **error_r)
{
	static const char *const why[MON_KEYS] = {
		"log is not a canonical DID", "did is not a canonical DID",
		"size is not a number below 2^63", "exists is not 0 or 1",
		"revoked is not 0 or 1", "version is not a 32-bit number",
		"subject is not 64 hex digits", "sign_pk is not 64 hex digits",
		"enc_pk is not 64 hex digits", "since is not a number",
		"changed is not a number", "index is not a number",
	};
	char line[LOGFILE_LINE_MAX];
	logfile_monitor m;
	unsigned have = 0;
	uint64_t levels = 0;
	size_t at = 0;
	int k;
	if (len > LOGFILE_MONITOR_MAX) {
		*error_r = "larger than a monitor state can be";
		return -1;
	}
	memset(&m, 0, sizeof(m));
	while ((k = next_line(text, len, &at, line, error_r)) == 1) {
		const char *key;
		char *v;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!split(line, &key, &v)) {
			*error_r = "a line is not \"key value\"";
			return -1;
		}
		if (strcmp(key, "frontier") == 0) {
			if (!mon_frontier(v, &m, &levels, error_r))
				return -1;
			continue;
		}
		size_t i = key_index(key, mon_keys, MON_KEYS);
		if (i == MON_KEYS) {
			*error_r = "an unknown key";
			return -1;
		}
		if (have >> i & 1) {
			*error_r = "a key is repeated";
			return -1;
		}
		have |= 1u << i;
		if (!mon_value(i, v, &m)) {
			*error_r = why[i];
			return -1;
		}
	}
	if (k < 0)
		return -1;
	if (have != (1u << MON_KEYS) - 1) {
		*error_r = "a key is missing";
		return -1;
	}
	if (!mon_valid(&m, levels, error_r))
		return -1;
	*m_r = m;
	return 0;
}

/* -------------------------------------------------------------- receipt */

json_t *logfile_json_hex(const uint8_t *b, size_t n)
{
	char buf[2 * AMP_LOG_LEAF_MAX + 1];
	if (n > AMP_LOG_LEAF_MAX)
		return NULL;
	sodium_bin2hex(buf, sizeof(buf), b, n);
	return json_string(buf);
}

json_t *logfile_json_u64(uint64_t v)
{
	return v <= INT64_MAX ? json_integer((json_int_t)v) : NULL;
}

/* o[k] = v, consuming v; false when o or v is NULL or the set fails. */
static bool jset(json_t *o, const char *k, json_t *v)
{
	if (o == NULL || v == NULL) {
		json_decref(v);
		return false;
	}
	return json_object_set_new(o, k, v) == 0;
}

json_t *logfile_json_head(const amp_log_head *h, bool with_log)
{
	json_t *o = json_object();
	if ((with_log && !jset(o, "log", json_string(h->log))) ||
	    !jset(o, "size", logfile_json_u64(h->size)) ||
	    !jset(o, "root", logfile_json_hex(h->root, 32)) ||
	    !jset(o, "time", logfile_json_u64(h->time)) ||
	    !jset(o, "sig", logfile_json_hex(h->sig, 64))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *logfile_json_path(const uint8_t (*path)[32], size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && i < n; i++) {
		if (json_array_append_new(a, logfile_json_hex(path[i], 32)) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int logfile_receipt_format(const logfile_receipt *r, char *out, size_t cap,
			   size_t *len_r)
{
	char key[64];
	if (!is_did(r->head.log) || r->leaf_len == 0 ||
	    r->leaf_len > AMP_LOG_LEAF_MAX || r->n_path > AMP_LOG_PROOF_MAX)
		return -1;
	sodium_bin2base64(key, sizeof(key), r->node_key, 32,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	json_t *j = json_object();
	if (!jset(j, "format", json_string(LOGFILE_RECEIPT_FORMAT)) ||
	    !jset(j, "log", json_string(r->head.log)) ||
	    !jset(j, "node_key", json_string(key)) ||
	    !jset(j, "digest", logfile_json_hex(r->digest, 32)) ||
	    !jset(j, "head", logfile_json_head(&r->head, false)) ||
	    !jset(j, "index", logfile_json_u64(r->index)) ||
	    !jset(j, "leaf", logfile_json_hex(r->leaf, r->leaf_len)) ||
	    !jset(j, "path", logfile_json_path((const uint8_t (*)[32])r->path,
					       r->n_path))) {
		json_decref(j);
		return -1;
	}
	size_t n = json_dumpb(j, out, cap, JSON_INDENT(2));
	json_decref(j);
	if (n == 0 || n + 2 > cap)
		return -1;
	out[n] = '\n';
	out[n + 1] = '\0';
	*len_r = n + 1;
	return 0;
}

/* Members of a receipt. */
static const char *jstr(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jhexval(const json_t *o, const char *k, uint8_t *out, size_t n)
{
	const char *s = jstr(o, k);
	return s != NULL && hex_decode(s, out, n);
}

static bool jnum(const json_t *o, const char *k, uint64_t *v)
{
	const json_t *x = json_object_get(o, k);
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return false;
	*v = (uint64_t)json_integer_value(x);
	return true;
}

/* The members of j into r; NULL, or why not. */
static const char *receipt_members(const json_t *j, logfile_receipt *r)
{
	const json_t *jh = json_object_get(j, "head");
	const json_t *jp = json_object_get(j, "path");
	const char *fmt = jstr(j, "format"), *log = jstr(j, "log");
	const char *key = jstr(j, "node_key"), *lx = jstr(j, "leaf");
	amp_log_head *h = &r->head;
	if (!json_is_object(j))
		return "it is not a JSON object";
	if (fmt == NULL || strcmp(fmt, LOGFILE_RECEIPT_FORMAT) != 0)
		return "its format is not " LOGFILE_RECEIPT_FORMAT;
	if (log == NULL || !is_did(log))
		return "log is not a DID";
	memcpy(h->log, log, strlen(log) + 1);
	if (key == NULL || !amp_b64u_decode_exact(key, r->node_key, 32))
		return "node_key is not a base64url Ed25519 key";
	if (!jhexval(j, "digest", r->digest, 32))
		return "digest is not 64 hex digits";
	if (!json_is_object(jh) || !jnum(jh, "size", &h->size) ||
	    !jnum(jh, "time", &h->time) || !jhexval(jh, "root", h->root, 32) ||
	    !jhexval(jh, "sig", h->sig, 64))
		return "head is not {size, root, time, sig}";
	if (!jnum(j, "index", &r->index))
		return "index is not a number";
	size_t ll = lx != NULL ? strlen(lx) : 0;
	if (ll == 0 || ll % 2 != 0 || ll > 2 * AMP_LOG_LEAF_MAX ||
	    !hex_decode(lx, r->leaf, ll / 2))
		return "leaf is not hex of at most 512 bytes";
	r->leaf_len = ll / 2;
	if (!json_is_array(jp) || json_array_size(jp) > AMP_LOG_PROOF_MAX)
		return "path is not a list of at most 65 hashes";
	r->n_path = json_array_size(jp);
	for (size_t i = 0; i < r->n_path; i++) {
		const json_t *x = json_array_get(jp, i);
		if (!json_is_string(x) ||
		    !hex_decode(json_string_value(x), r->path[i], 32))
			return "path is not a list of 64-hex-digit hashes";
	}
	return NULL;
}

int logfile_receipt_parse(const char *text, size_t len, logfile_receipt *r_r,
			  const char **error_r)
{
	json_error_t jerr;
	if (len > LOGFILE_RECEIPT_MAX) {
		*error_r = "larger than a receipt can be";
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		*error_r = "a NUL byte";
		return -1;
	}
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		/* which: not JSON at all, or a key given twice */
		j = json_loadb(text, len, 0, &jerr);
		*error_r = j != NULL ? "a key is repeated" : "it is not JSON";
		json_decref(j);
		return -1;
	}
	logfile_receipt *r = malloc(sizeof(*r));
	if (r == NULL) {
		json_decref(j);
		*error_r = "out of memory";
		return -1;
	}
	memset(r, 0, sizeof(*r));
	const char *bad = receipt_members(j, r);
	json_decref(j);
	if (bad == NULL)
		*r_r = *r;
	else
		*error_r = bad;
	free(r);
	return bad == NULL ? 0 : -1;
}

int logfile_receipt_check(const logfile_receipt *r, const uint8_t *key,
			  amp_log_leaf *leaf_r, const char **error_r,
			  const char **detail_r)
{
	const amp_log_head *h = &r->head;
	const char *why = NULL;
	amp_log_leaf l;
	uint8_t lh[32];
	if (detail_r != NULL)
		*detail_r = NULL;
	if (key != NULL && sodium_memcmp(key, r->node_key, 32) != 0) {
		*error_r = "it carries another node key than the one given";
		return -1;
	}
	if (!amp_log_head_verify(h, r->node_key)) {
		*error_r = "the tree head's signature does not verify with the "
			   "node key";
		return -1;
	}
	if (r->leaf_len == 0 || r->leaf_len > AMP_LOG_LEAF_MAX ||
	    amp_log_leaf_decode(r->leaf, r->leaf_len, &l, &why) != AMP_OK) {
		*error_r = "the leaf does not decode";
		if (detail_r != NULL)
			*detail_r = why;
		return -1;
	}
	if (l.type != AMP_LOG_RECEIPT) {
		*error_r = "the leaf is not a receipt";
		return -1;
	}
	if (memcmp(l.subject, r->digest, 32) != 0) {
		*error_r = "the leaf is the receipt of another envelope";
		return -1;
	}
	if (strcmp(l.node, h->log) != 0) {
		*error_r = "the receipt names another node than the log's";
		return -1;
	}
	amp_log_leaf_hash(r->leaf, r->leaf_len, lh);
	if (r->index >= h->size || r->n_path > AMP_LOG_PROOF_MAX ||
	    amp_log_verify_inclusion(r->index, h->size, lh,
				     (const uint8_t (*)[32])r->path, r->n_path,
				     h->root) != AMP_OK) {
		*error_r = "the inclusion proof does not verify against the "
			   "signed tree head";
		return -1;
	}
	if (leaf_r != NULL)
		*leaf_r = l;
	return 0;
}
