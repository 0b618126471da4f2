/*
 * imap-session.c — one IMAP4rev1 connection as a pure state machine (see
 * imap-session.h for the driver API).  Owns: the command parser, the
 * output buffer, the session's view of the selected mailbox (sequence
 * numbers <-> UIDs and the flags last shown to the client) and the state
 * of a long answer (FETCH / STORE over many messages) produced in pieces.
 * Calls: imap-parse.h for the bytes, the store through imap_mbox_ops
 * (imap-mbox.h), imap-msg.h for BODY[section] and SEARCH text.  No I/O.
 *
 * Commands are dispatched through one table (name, handler, states); the
 * state is checked before any handler runs.  After every command, before
 * its tagged answer, the selected mailbox is re-read (ops->view) and the
 * differences are sent: EXPUNGE (descending), EXISTS, FETCH (FLAGS).
 * During FETCH, STORE and SEARCH (not their UID forms) no EXPUNGE may be
 * sent (RFC 3501 §7.4.1): when the store expunged something, the whole
 * resync waits for the next command that allows it.  An IDLE session
 * sends the changes as soon as imap_session_changed() is called.
 *
 * Limits: the parser's, in two sizes: before login a small one (8 KiB
 * lines, literal_max_pre_auth, one level of list, 64 arguments: I1, I2),
 * after login 64 KiB lines, literal_max, 32768 arguments (I8); at most
 * IMAP_OUT_CHUNK of pending output before more commands are read or a
 * long answer continues (one message's FETCH response is the unit: a
 * single huge BODY[] can exceed the chunk, bounded by OUT_MAX); search
 * programs as large as the parser's argument cap, evaluated without
 * recursion; LIST patterns matched by a non-backtracking automaton;
 * sequence sets resolved with a difference array (no per-range walk).
 */
#include "imap-session.h"

#include "imap-msg.h"
#include "imap-parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TAG_MAX 256u
#define ARGS_MAX 32768u              /* parser argument nodes (I8: ORs) */
#define LINE_MAX_SESSION 65536u      /* long sequence sets (I8) */
#define PRE_AUTH_ARGS_MAX 64u
#define OUT_EXTRA (4u * 1024u * 1024u)
#define AUTH_USER_MAX 256u
#define AUTH_PASS_MAX 1024u

enum state { ST_NOAUTH = 1, ST_AUTH = 2, ST_SELECTED = 4, ST_LOGOUT = 8 };
enum sasl { SASL_NONE, SASL_PLAIN, SASL_LOGIN_USER, SASL_LOGIN_PASS };
enum job_kind { JOB_NONE, JOB_FETCH, JOB_STORE };

enum fetch_kind {
	F_FLAGS, F_UID, F_INTERNALDATE, F_SIZE, F_ENVELOPE, F_BODY,
	F_BODYSTRUCTURE, F_SECTION,
};

typedef struct fetch_item {
	enum fetch_kind kind;
	bool peek;
	bool partial;
	uint64_t off, len;
	char *section;          /* F_SECTION: what is between [ and ] */
	size_t section_len;
	char *name;             /* F_SECTION: "BODY[HEADER]<0>" / "RFC822" */
} fetch_item;

typedef struct job {
	enum job_kind kind;
	char tag[TAG_MAX];
	const char *cmd_name;
	bool uid;
	uint32_t *idx;          /* view indexes, ascending */
	size_t n, pos;
	fetch_item *items;
	size_t nitems;
	bool need_cached, need_msg, sets_seen, has_flags;
	bool missing;           /* a message vanished under us */
	uint64_t *flags;        /* JOB_STORE: new flags per idx */
} job;

struct imap_session {
	imap_session_settings set;
	imap_session_callbacks cb;
	void *arg;
	imap_parser *p;
	int state;
	bool closing, idling, login_pending, tls_pending, changed;
	bool parser_upgrade;        /* logged in: the larger parser next */
	char tag[TAG_MAX];          /* the command being answered */
	const char *cmd_name;       /* its name, for the log callback */
	bool sync_tag;              /* resync before its tagged answer */
	char idle_tag[TAG_MAX];
	unsigned auth_fails;
	/* SASL exchange */
	enum sasl sasl;
	char sasl_user[AUTH_USER_MAX + 1];
	/* the store */
	const imap_mbox_ops *ops;
	void *st;
	/* the selected mailbox */
	char sel[IMAP_MBOX_NAME_MAX + 1];
	bool readonly;
	imap_mbox_view view;
	/* output */
	uint8_t *out;
	size_t out_len, out_off, out_cap, out_max;
	job job;
};

/* ------------------------------------------------------------- helpers */

static void wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	size_t bl = strlen(b);
	return alen == bl && strncasecmp(a, b, bl) == 0;
}

static bool arg_is(const imap_arg *a, const char *w)
{
	return a != NULL && (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED) &&
	       ieq(a->str, a->len, w);
}

void imap_mbox_view_free(imap_mbox_view *v)
{
	if (v == NULL)
		return;
	free(v->uids);
	free(v->flags);
	memset(v, 0, sizeof(*v));
}

/* -------------------------------------------------------------- output */

static void out_add(imap_session *s, const void *data, size_t n)
{
	if (s->out_off > 0 && s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (n > s->out_max - s->out_len) {
		/* an answer beyond every bound: give up on the connection */
		s->closing = true;
		s->state = ST_LOGOUT;
		return;
	}
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap > 0 ? s->out_cap : 4096;
		while (cap < s->out_len + n)
			cap = cap > s->out_max / 2 ? s->out_max : cap * 2;
		uint8_t *p = realloc(s->out, cap);
		if (p == NULL)
			abort();
		s->out = p;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, data, n);
	s->out_len += n;
}

static void out_str(imap_session *s, const char *t)
{
	out_add(s, t, strlen(t));
}

__attribute__((format(printf, 2, 3)))
static void out_fmt(imap_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;   /* callers keep texts short */
	out_add(s, buf, (size_t)n);
}

static size_t pending_out(const imap_session *s)
{
	return s->out_len - s->out_off;
}

/* A string as quoted when it can be, else a literal. */
static void out_astring(imap_session *s, const char *t, size_t n)
{
	bool quote = n < 1024;
	for (size_t i = 0; i < n && quote; i++) {
		uint8_t c = (uint8_t)t[i];
		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			quote = false;
	}
	if (!quote) {
		out_fmt(s, "{%zu}\r\n", n);
		out_add(s, t, n);
		return;
	}
	out_add(s, "\"", 1);
	size_t st = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '"' || t[i] == '\\') {
			out_add(s, t + st, i - st);
			out_add(s, "\\", 1);
			st = i;
		}
	}
	out_add(s, t + st, n - st);
	out_add(s, "\"", 1);
}

static void out_caps(imap_session *s)
{
	out_str(s, "IMAP4rev1 SASL-IR LITERAL+ IDLE UIDPLUS MOVE NAMESPACE SPECIAL-USE");
	if (s->state != ST_NOAUTH)
		return;
	if (s->set.starttls && !s->set.tls_active)
		out_str(s, " STARTTLS");
	if (s->set.login_needs_tls && !s->set.tls_active)
		out_str(s, " LOGINDISABLED");
	else
		out_str(s, " AUTH=PLAIN AUTH=LOGIN");
}

static void resync(imap_session *s, bool expunge_ok);

/* Before a tagged answer: the mailbox changes, when the command allows. */
static void pre_tag(imap_session *s)
{
	if (s->sync_tag) {
		s->sync_tag = false;
		resync(s, true);
	}
}

static void log_cmd(imap_session *s, const char *tag, const char *result)
{
	if (s->cb.command != NULL)
		s->cb.command(s->arg, tag, s->cmd_name != NULL ? s->cmd_name : "", result);
}

static void tagged(imap_session *s, const char *tag, const char *result,
		   const char *text)
{
	pre_tag(s);
	out_str(s, tag);
	out_add(s, " ", 1);
	out_str(s, result);
	out_add(s, " ", 1);
	out_str(s, text);
	out_add(s, "\r\n", 2);
	log_cmd(s, tag, result);
}

__attribute__((format(printf, 4, 5)))
static void taggedf(imap_session *s, const char *tag, const char *result,
		    const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		buf[0] = '\0';
	tagged(s, tag, result, buf);
}

static void bye(imap_session *s, const char *text)
{
	out_fmt(s, "* BYE %s\r\n", text);
	s->closing = true;
	s->state = ST_LOGOUT;
	s->idling = false;
}

/* ------------------------------------------------------------- flags */

static const struct {
	uint64_t bit;
	const char *name;
} sysflags[] = {
	{ IMAP_FLAG_ANSWERED, "\\Answered" }, { IMAP_FLAG_FLAGGED, "\\Flagged" },
	{ IMAP_FLAG_DELETED, "\\Deleted" }, { IMAP_FLAG_SEEN, "\\Seen" },
	{ IMAP_FLAG_DRAFT, "\\Draft" },
};

static void keyword_table(imap_session *s, const char *const **names_r, size_t *n_r)
{
	*names_r = NULL;
	*n_r = 0;
	if (s->ops != NULL && s->ops->keywords != NULL &&
	    s->ops->keywords(s->st, names_r, n_r) != 0) {
		*names_r = NULL;
		*n_r = 0;
	}
	if (*n_r > IMAP_KEYWORDS_MAX)
		*n_r = IMAP_KEYWORDS_MAX;
}

static void out_flags(imap_session *s, uint64_t f)
{
	const char *const *kw;
	size_t nkw;
	bool first = true;
	out_add(s, "(", 1);
	for (size_t i = 0; i < sizeof(sysflags) / sizeof(sysflags[0]); i++) {
		if (f & sysflags[i].bit) {
			if (!first)
				out_add(s, " ", 1);
			out_str(s, sysflags[i].name);
			first = false;
		}
	}
	if (f >> 8) {
		keyword_table(s, &kw, &nkw);
		for (size_t i = 0; i < nkw; i++) {
			if (f & IMAP_FLAG_KEYWORD(i)) {
				if (!first)
					out_add(s, " ", 1);
				out_str(s, kw[i]);
				first = false;
			}
		}
	}
	out_add(s, ")", 1);
}

static void out_all_flags(imap_session *s, bool star)
{
	const char *const *kw;
	size_t nkw;
	out_str(s, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	keyword_table(s, &kw, &nkw);
	for (size_t i = 0; i < nkw; i++) {
		out_add(s, " ", 1);
		out_str(s, kw[i]);
	}
	if (star)
		out_str(s, " \\*");
	out_add(s, ")", 1);
}

static bool keyword_ok(const char *k, size_t n)
{
	if (n == 0 || n > IMAP_KEYWORD_LEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)k[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* Flags of STORE / APPEND: 0 or -1 BAD (*bad_r) / -2 NO (*error_r). */
static int parse_flags(imap_session *s, const imap_arg *a, bool list,
		       uint64_t *flags_r, const char **error_r)
{
	uint64_t f = 0;
	const imap_arg *i = list ? a->child : a;
	for (; i != NULL; i = i->next) {
		if (i->type != IMAP_ARG_ATOM) {
			*error_r = "Invalid flag";
			return -1;
		}
		if (i->len > 0 && i->str[0] == '\\') {
			size_t k;
			for (k = 0; k < sizeof(sysflags) / sizeof(sysflags[0]); k++)
				if (ieq(i->str, i->len, sysflags[k].name))
					break;
			if (k == sizeof(sysflags) / sizeof(sysflags[0])) {
				*error_r = ieq(i->str, i->len, "\\Recent") ?
					   "Invalid system flag \\RECENT" : "Invalid system flag";
				return -1;
			}
			f |= sysflags[k].bit;
			continue;
		}
		if (!keyword_ok(i->str, i->len)) {
			*error_r = "Invalid keyword";
			return -1;
		}
		int k = s->ops->keyword_add != NULL ?
			s->ops->keyword_add(s->st, i->str, error_r) : -1;
		if (k < 0 || (unsigned)k >= IMAP_KEYWORDS_MAX) {
			*error_r = "Too many keywords";
			return -2;
		}
		f |= IMAP_FLAG_KEYWORD((unsigned)k);
	}
	*flags_r = f;
	return 0;
}

/* --------------------------------------------------------- dates */

static const char *const months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static void out_internaldate(imap_session *s, int64_t t, int32_t tz)
{
	if (tz < -1440 || tz > 1440)
		tz = 0;
	int64_t lt = t + (int64_t)tz * 60;
	int64_t days = floor_div(lt, 86400);
	int64_t sec = lt - days * 86400;
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	int32_t az = tz < 0 ? -tz : tz;
	out_fmt(s, "\"%2u-%s-%04lld %02u:%02u:%02u %c%02d%02d\"", d, months[m - 1],
		(long long)y, (unsigned)(sec / 3600), (unsigned)(sec / 60 % 60),
		(unsigned)(sec % 60), tz < 0 ? '-' : '+', (int)(az / 60), (int)(az % 60));
}

static bool parse_uint(const char *s, size_t n, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
		if (x > max)
			return false;
	}
	*v = x;
	return true;
}

static int month_of(const char *s)
{
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i + 1;
	return 0;
}

/* date = date-day "-" date-month "-" date-year; the day number. */
static bool parse_date(const char *s, size_t n, int64_t *day_r)
{
	const char *d1 = memchr(s, '-', n);
	if (d1 == NULL || d1 - s < 1 || d1 - s > 2 || n - (size_t)(d1 - s) != 9 || d1[4] != '-')
		return false;
	uint64_t d, y;
	int m = month_of(d1 + 1);
	if (!parse_uint(s, (size_t)(d1 - s), 31, &d) || d == 0 || m == 0 ||
	    !parse_uint(d1 + 5, 4, 9999, &y))
		return false;
	*day_r = days_from_civil((int64_t)y, (unsigned)m, (unsigned)d);
	return true;
}

/* date-time = DQUOTE date-day-fixed "-" month "-" year SP time SP zone */
static bool parse_datetime(const char *s, size_t n, int64_t *t_r, int32_t *tz_r)
{
	if (n != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' ||
	    s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
		return false;
	uint64_t d, y, hh, mm, ss, zh, zm;
	const char *dd = s[0] == ' ' ? s + 1 : s;
	int m = month_of(s + 3);
	if (!parse_uint(dd, (size_t)(s + 2 - dd), 31, &d) || d == 0 || m == 0 ||
	    !parse_uint(s + 7, 4, 9999, &y) || !parse_uint(s + 12, 2, 23, &hh) ||
	    !parse_uint(s + 15, 2, 59, &mm) || !parse_uint(s + 18, 2, 60, &ss) ||
	    !parse_uint(s + 22, 2, 23, &zh) || !parse_uint(s + 24, 2, 59, &zm))
		return false;
	int32_t tz = (int32_t)(zh * 60 + zm);
	if (s[21] == '-')
		tz = -tz;
	int64_t days = days_from_civil((int64_t)y, (unsigned)m, (unsigned)d);
	*t_r = days * 86400 + (int64_t)(hh * 3600 + mm * 60 + ss) - (int64_t)tz * 60;
	*tz_r = tz;
	return true;
}

/* -------------------------------------------------------- mailbox names */

static int b64val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* Modified UTF-7 (RFC 3501 §5.1.3), strictly: printable US-ASCII except
 * '&' as itself, "&-" for '&', shifted runs of modified base64 of UTF-16
 * that encode no printable ASCII, pair their surrogates, end with '-' and
 * leave no non-zero bits. */
static bool mutf7_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = (uint8_t)s[i];
		if (c < 0x20 || c > 0x7e)
			return false;
		i++;
		if (c != '&')
			continue;
		if (i < n && s[i] == '-') {
			i++;
			continue;
		}
		uint32_t bits = 0;
		unsigned nbits = 0, count = 0;
		bool high = false;
		while (i < n && s[i] != '-') {
			int v = b64val((uint8_t)s[i]);
			if (v < 0)
				return false;
			bits = ((bits << 6) | (uint32_t)v) & 0xffffffu;
			nbits += 6;
			count++;
			if (nbits >= 16) {
				nbits -= 16;
				uint32_t u = (bits >> nbits) & 0xffffu;
				if (high) {
					if (u < 0xdc00 || u > 0xdfff)
						return false;
					high = false;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = true;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return false;
				} else if (u >= 0x20 && u <= 0x7e) {
					return false;
				}
			}
			i++;
		}
		if (i >= n || count == 0 || high || nbits >= 6 ||
		    (bits & ((1u << nbits) - 1)) != 0)
			return false;
		i++;                    /* '-' */
	}
	return true;
}

/* I9: the rules of imap-mbox.h.  create: one trailing '/' is dropped. */
static bool name_check(const imap_arg *a, bool create, char *out,
		       const char **error_r)
{
	const char *s = a->str;
	size_t n = a->len;
	if (create && n > 1 && s[n - 1] == '/')
		n--;
	if (n == 0) {
		*error_r = "Invalid mailbox name: Empty name";
		return false;
	}
	if (n > IMAP_MBOX_NAME_MAX) {
		*error_r = "Invalid mailbox name: Name is too long";
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n' || s[i] == '*' ||
		    s[i] == '%') {
			*error_r = "Invalid mailbox name: Invalid characters";
			return false;
		}
	}
	if (!mutf7_valid(s, n)) {
		*error_r = "Mailbox name is not valid mUTF-7";
		return false;
	}
	if (s[0] == '/' || s[n - 1] == '/') {
		*error_r = "Invalid mailbox name: Begins or ends with '/'";
		return false;
	}
	size_t st = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		size_t l = i - st;
		if (l == 0 || (l == 1 && s[st] == '.') ||
		    (l == 2 && s[st] == '.' && s[st + 1] == '.')) {
			*error_r = "Invalid mailbox name: Empty, '.' or '..' level";
			return false;
		}
		st = i + 1;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	if (ieq(out, n, "INBOX"))
		memcpy(out, "INBOX", 5);
	return true;
}

/* ---------------------------------------------------------- the view */

static bool selected_at(const imap_session *s, const char *name)
{
	return s->state == ST_SELECTED && strcmp(s->sel, name) == 0;
}

static size_t uid_lower(const imap_mbox_view *v, uint64_t uid)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void unselect(imap_session *s)
{
	imap_mbox_view_free(&s->view);
	s->sel[0] = '\0';
	s->state = ST_AUTH;
	s->readonly = false;
}

/* Bring the client's view up to date.  expunge_ok: EXPUNGE may be sent
 * now; when not and something was expunged, nothing is sent. */
static void resync(imap_session *s, bool expunge_ok)
{
	if (s->state != ST_SELECTED || s->ops == NULL)
		return;
	imap_mbox_view nv;
	const char *err = NULL;
	memset(&nv, 0, sizeof(nv));
	int r = s->ops->view(s->st, s->sel, &nv, &err);
	if (r != 0) {
		imap_mbox_view_free(&nv);
		if (r == IMAP_MBOX_NONEXISTENT && expunge_ok) {
			/* the mailbox went away under us (DELETE elsewhere) */
			bye(s, "Selected mailbox was deleted, have to disconnect.");
		}
		return;
	}
	imap_mbox_view *v = &s->view;
	if (nv.uidvalidity != v->uidvalidity) {
		/* the client's UIDs mean nothing any more (RFC 3501 §2.3.1.1) */
		imap_mbox_view_free(&nv);
		if (expunge_ok)
			bye(s, "UIDVALIDITY of the selected mailbox changed.");
		return;
	}
	/* UIDs only ever leave a view or join it at the end */
	size_t kept = 0;
	for (size_t i = 0; i < v->n; i++) {
		size_t m = uid_lower(&nv, v->uids[i]);
		if (m < nv.n && nv.uids[m] == v->uids[i])
			kept++;
	}
	if (kept < v->n && !expunge_ok) {
		imap_mbox_view_free(&nv);
		s->changed = true;
		return;
	}
	/* descending: the earlier sequence numbers stay valid */
	for (size_t i = v->n; kept < v->n && i-- > 0;) {
		size_t m = uid_lower(&nv, v->uids[i]);
		if (m >= nv.n || nv.uids[m] != v->uids[i])
			out_fmt(s, "* %zu EXPUNGE\r\n", i + 1);
	}
	if (nv.n != kept)
		out_fmt(s, "* %zu EXISTS\r\n", nv.n);
	for (size_t i = 0; i < v->n; i++) {
		size_t m = uid_lower(&nv, v->uids[i]);
		if (m >= nv.n || nv.uids[m] != v->uids[i] || nv.flags[m] == v->flags[i])
			continue;
		out_fmt(s, "* %zu FETCH (FLAGS ", m + 1);
		out_flags(s, nv.flags[m]);
		out_str(s, ")\r\n");
	}
	imap_mbox_view_free(v);
	*v = nv;
	s->changed = false;
}

/* ---------------------------------------------------- sequence sets */

/* The view indexes a set names, ascending, each once.  -1: BAD
 * (*error_r), out of memory aborts. */
static int resolve_set(imap_session *s, const imap_arg *a, bool uid,
		       uint32_t **idx_r, size_t *n_r, const char **error_r)
{
	const imap_mbox_view *v = &s->view;
	size_t nr;
	*idx_r = NULL;
	*n_r = 0;
	if (a == NULL || a->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->str, a->len, NULL, 0, &nr, error_r) != 0) {
		*error_r = "Invalid messageset";
		return -1;
	}
	imap_seq_range *r = calloc(nr, sizeof(*r));
	int32_t *diff = calloc(v->n + 1, sizeof(*diff));
	if (r == NULL || diff == NULL)
		abort();
	if (imap_seqset_parse(a->str, a->len, r, nr, &nr, error_r) != 0) {
		free(r);
		free(diff);
		return -1;
	}
	for (size_t i = 0; i < nr; i++) {
		uint64_t lo = r[i].lo, hi = r[i].hi;
		if (uid) {
			if (v->n == 0)
				continue;
			uint64_t max = v->uids[v->n - 1];
			if (lo == IMAP_SEQ_STAR)
				lo = max;
			if (hi == IMAP_SEQ_STAR)
				hi = max;
			if (lo > hi) {
				uint64_t t = lo;
				lo = hi;
				hi = t;
			}
			size_t b = uid_lower(v, lo), e = uid_lower(v, hi + 1);
			if (b < e) {
				diff[b]++;
				diff[e]--;
			}
			continue;
		}
		if (lo == IMAP_SEQ_STAR)
			lo = v->n;
		if (hi == IMAP_SEQ_STAR)
			hi = v->n;
		if (lo > hi) {
			uint64_t t = lo;
			lo = hi;
			hi = t;
		}
		if (lo == 0 || hi > v->n) {
			free(r);
			free(diff);
			*error_r = "Invalid messageset";
			return -1;
		}
		diff[lo - 1]++;
		diff[hi]--;
	}
	free(r);
	size_t cnt = 0;
	int64_t run = 0;
	for (size_t i = 0; i < v->n; i++) {
		run += diff[i];
		if (run > 0)
			cnt++;
	}
	uint32_t *idx = malloc((cnt > 0 ? cnt : 1) * sizeof(*idx));
	if (idx == NULL)
		abort();
	run = 0;
	cnt = 0;
	for (size_t i = 0; i < v->n; i++) {
		run += diff[i];
		if (run > 0)
			idx[cnt++] = (uint32_t)i;
	}
	free(diff);
	*idx_r = idx;
	*n_r = cnt;
	return 0;
}

/* "1:3,5" of a sorted list of UIDs (COPYUID). */
static void out_uidset(imap_session *s, const uint32_t *u, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && u[j + 1] == u[j] + 1)
			j++;
		if (i > 0)
			out_add(s, ",", 1);
		if (j > i)
			out_fmt(s, "%u:%u", u[i], u[j]);
		else
			out_fmt(s, "%u", u[i]);
		i = j + 1;
	}
}

/* ------------------------------------------------------ the handlers */

typedef void (*cmd_fn)(imap_session *s, const imap_command *c);

static void store_error(imap_session *s, int r, const char *name, const char *err,
			bool trycreate)
{
	if (r == IMAP_MBOX_NONEXISTENT)
		taggedf(s, s->tag, "NO", "[%s] Mailbox doesn't exist: %.600s",
			trycreate ? "TRYCREATE" : "NONEXISTENT", name);
	else if (r == IMAP_MBOX_EXISTS)
		tagged(s, s->tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
	else
		taggedf(s, s->tag, "NO", "%.600s", err != NULL ? err : "Internal error");
}

static void cmd_capability(imap_session *s, const imap_command *c)
{
	(void)c;
	out_str(s, "* CAPABILITY ");
	out_caps(s);
	out_str(s, "\r\n");
	tagged(s, s->tag, "OK", "Capability completed.");
}

static void cmd_noop(imap_session *s, const imap_command *c)
{
	(void)c;
	tagged(s, s->tag, "OK", "NOOP completed.");
}

static void cmd_check(imap_session *s, const imap_command *c)
{
	(void)c;
	tagged(s, s->tag, "OK", "Check completed.");
}

static void cmd_logout(imap_session *s, const imap_command *c)
{
	(void)c;
	out_str(s, "* BYE Logging out\r\n");
	tagged(s, s->tag, "OK", "Logout completed.");
	s->closing = true;
	s->state = ST_LOGOUT;
}

static void cmd_starttls(imap_session *s, const imap_command *c)
{
	(void)c;
	if (!s->set.starttls) {
		tagged(s, s->tag, "BAD", "TLS support isn't enabled.");
		return;
	}
	if (s->set.tls_active) {
		tagged(s, s->tag, "BAD", "TLS is already active.");
		return;
	}
	tagged(s, s->tag, "OK", "Begin TLS negotiation now.");
	/* I6: nothing after this command is read as plaintext */
	imap_parser_reset(s->p);
	s->tls_pending = true;
	if (s->cb.starttls != NULL)
		s->cb.starttls(s->arg);
}

static bool login_allowed(imap_session *s)
{
	if (s->set.login_needs_tls && !s->set.tls_active) {
		tagged(s, s->tag, "NO", "[PRIVACYREQUIRED] Plaintext authentication "
		       "disallowed on non-secure (SSL/TLS) connections.");
		return false;
	}
	return true;
}

static void auth_failed(imap_session *s, const char *text)
{
	s->auth_fails++;
	tagged(s, s->tag, "NO", text);
	if (s->auth_fails >= s->set.auth_fail_max)
		bye(s, "Too many invalid authentication attempts.");
}

static void start_login(imap_session *s, const char *user, size_t ulen,
			const char *pass, size_t plen)
{
	char u[AUTH_USER_MAX + 1];
	char *pw;
	if (ulen == 0 || ulen > AUTH_USER_MAX || plen > AUTH_PASS_MAX ||
	    memchr(user, '\0', ulen) != NULL) {
		auth_failed(s, "[AUTHENTICATIONFAILED] Authentication failed.");
		return;
	}
	memcpy(u, user, ulen);
	u[ulen] = '\0';
	pw = malloc(plen + 1);
	if (pw == NULL)
		abort();
	memcpy(pw, pass, plen);
	pw[plen] = '\0';
	s->login_pending = true;
	if (s->cb.login != NULL)
		s->cb.login(s->arg, u, pw, plen);
	else
		imap_session_login_done(s, false, NULL, NULL);
	wipe(pw, plen + 1);
	free(pw);
}

static void cmd_login(imap_session *s, const imap_command *c)
{
	if (!login_allowed(s))
		return;
	const imap_arg *u = c->args, *p = u->next;
	start_login(s, u->str, u->len, p->str, p->len);
	/* the password is in the parser's buffer too */
	wipe((char *)p->str, p->len);
}

static int b64_decode(const char *in, size_t n, uint8_t *out, size_t max, size_t *len_r)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0, pad = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)in[i];
		int v;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return -1;
		if (c == '/')
			v = 63;
		else if (c == ',')
			return -1;
		else
			v = b64val(c);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= max)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (pad > 2 || (n % 4) != 0)
		return -1;
	*len_r = o;
	return 0;
}

static void b64_encode_str(imap_session *s, const char *t)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(t);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)t[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)t[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)t[i + 2];
		char q[4] = { tab[v >> 18], tab[(v >> 12) & 63],
			      i + 1 < n ? tab[(v >> 6) & 63] : '=',
			      i + 2 < n ? tab[v & 63] : '=' };
		out_add(s, q, 4);
	}
}

/* One SASL response (base64 text, "*" to abort). */
static void sasl_step(imap_session *s, const char *line, size_t len)
{
	uint8_t buf[AUTH_USER_MAX + AUTH_PASS_MAX + 8];
	size_t n = 0;
	enum sasl m = s->sasl;
	s->sasl = SASL_NONE;
	if (len == 1 && line[0] == '*') {
		tagged(s, s->tag, "BAD", "Authentication aborted by client.");
		goto out;
	}
	if (!(len == 1 && line[0] == '=') &&
	    b64_decode(line, len, buf, sizeof(buf), &n) != 0) {
		tagged(s, s->tag, "BAD", "Invalid base64 data in continued response");
		goto out;
	}
	if (m == SASL_PLAIN) {
		/* authzid NUL authcid NUL passwd */
		uint8_t *z1 = memchr(buf, 0, n);
		uint8_t *z2 = z1 != NULL ? memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - buf)) : NULL;
		if (z1 == NULL || z2 == NULL) {
			auth_failed(s, "[AUTHENTICATIONFAILED] Invalid PLAIN response.");
			goto out;
		}
		const char *authz = (const char *)buf, *user = (const char *)z1 + 1;
		size_t authz_len = (size_t)(z1 - buf), ulen = (size_t)(z2 - z1 - 1);
		if (authz_len > 0 && (authz_len != ulen || memcmp(authz, user, ulen) != 0)) {
			auth_failed(s, "[AUTHORIZATIONFAILED] Authorization failed.");
			goto out;
		}
		start_login(s, user, ulen, (const char *)z2 + 1, n - (size_t)(z2 + 1 - buf));
	} else if (m == SASL_LOGIN_USER) {
		if (n == 0 || n > AUTH_USER_MAX || memchr(buf, 0, n) != NULL) {
			auth_failed(s, "[AUTHENTICATIONFAILED] Authentication failed.");
			goto out;
		}
		memcpy(s->sasl_user, buf, n);
		s->sasl_user[n] = '\0';
		s->sasl = SASL_LOGIN_PASS;
		out_str(s, "+ ");
		b64_encode_str(s, "Password:");
		out_str(s, "\r\n");
		imap_parser_expect_line(s->p);
	} else if (m == SASL_LOGIN_PASS) {
		start_login(s, s->sasl_user, strlen(s->sasl_user), (const char *)buf, n);
		wipe(s->sasl_user, sizeof(s->sasl_user));
	}
out:
	wipe(buf, sizeof(buf));
}

static void cmd_authenticate(imap_session *s, const imap_command *c)
{
	const imap_arg *mech = c->args, *ir = mech->next;
	if (!login_allowed(s))
		return;
	if (ieq(mech->str, mech->len, "PLAIN")) {
		s->sasl = SASL_PLAIN;
		if (ir != NULL) {
			sasl_step(s, ir->str, ir->len);
			wipe((char *)ir->str, ir->len);
			return;
		}
		out_str(s, "+ \r\n");
	} else if (ieq(mech->str, mech->len, "LOGIN")) {
		s->sasl = SASL_LOGIN_USER;
		if (ir != NULL) {
			sasl_step(s, ir->str, ir->len);
			return;
		}
		out_str(s, "+ ");
		b64_encode_str(s, "Username:");
		out_str(s, "\r\n");
	} else {
		tagged(s, s->tag, "NO", "Unsupported authentication mechanism.");
		return;
	}
	imap_parser_expect_line(s->p);
}

static void cmd_select(imap_session *s, const imap_command *c)
{
	char name[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	bool examine = c->cmd == IMAP_CMD_EXAMINE;
	if (s->state == ST_SELECTED) {
		unselect(s);
		out_str(s, "* OK [CLOSED] Previous mailbox closed.\r\n");
	}
	if (!name_check(c->args, false, name, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	imap_mbox_view v;
	memset(&v, 0, sizeof(v));
	int r = s->ops->view(s->st, name, &v, &err);
	if (r != 0) {
		imap_mbox_view_free(&v);
		store_error(s, r, name, err, false);
		return;
	}
	s->view = v;
	memcpy(s->sel, name, strlen(name) + 1);
	s->state = ST_SELECTED;
	s->readonly = examine;
	s->changed = false;
	out_str(s, "* FLAGS ");
	out_all_flags(s, false);
	out_str(s, "\r\n* OK [PERMANENTFLAGS ");
	if (examine)
		out_str(s, "()] Read-only mailbox.\r\n");
	else {
		out_all_flags(s, true);
		out_str(s, "] Flags permitted.\r\n");
	}
	out_fmt(s, "* %zu EXISTS\r\n* 0 RECENT\r\n", v.n);
	for (size_t i = 0; i < v.n; i++) {
		if (!(v.flags[i] & IMAP_FLAG_SEEN)) {
			out_fmt(s, "* OK [UNSEEN %zu] First unseen.\r\n", i + 1);
			break;
		}
	}
	out_fmt(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n", v.uidvalidity);
	out_fmt(s, "* OK [UIDNEXT %u] Predicted next UID\r\n", v.uidnext);
	if (examine)
		tagged(s, s->tag, "OK", "[READ-ONLY] Examine completed.");
	else
		tagged(s, s->tag, "OK", "[READ-WRITE] Select completed.");
}

static void cmd_create(imap_session *s, const imap_command *c)
{
	char name[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	if (!name_check(c->args, true, name, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		tagged(s, s->tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
		return;
	}
	int r = s->ops->create(s->st, name, &err);
	if (r != 0)
		store_error(s, r, name, err, false);
	else
		tagged(s, s->tag, "OK", "Create completed.");
}

static void cmd_delete(imap_session *s, const imap_command *c)
{
	char name[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	if (!name_check(c->args, false, name, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		tagged(s, s->tag, "NO", "INBOX can't be deleted.");
		return;
	}
	int r = s->ops->delete(s->st, name, &err);
	if (r != 0) {
		store_error(s, r, name, err, false);
		return;
	}
	if (selected_at(s, name))
		unselect(s);
	tagged(s, s->tag, "OK", "Delete completed.");
}

static void cmd_rename(imap_session *s, const imap_command *c)
{
	char from[IMAP_MBOX_NAME_MAX + 1], to[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	if (!name_check(c->args, false, from, &err) ||
	    !name_check(c->args->next, false, to, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	if (strcmp(to, "INBOX") == 0) {
		tagged(s, s->tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
		return;
	}
	int r = s->ops->rename(s->st, from, to, &err);
	if (r != 0) {
		store_error(s, r, from, err, false);
		return;
	}
	if (selected_at(s, from) && strcmp(from, "INBOX") != 0)
		memcpy(s->sel, to, strlen(to) + 1);
	tagged(s, s->tag, "OK", "Rename completed.");
}

static void cmd_subscribe(imap_session *s, const imap_command *c)
{
	char name[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	bool on = c->cmd == IMAP_CMD_SUBSCRIBE;
	if (!name_check(c->args, false, name, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	int r = s->ops->subscribe(s->st, name, on, &err);
	if (r != 0)
		store_error(s, r, name, err, false);
	else
		tagged(s, s->tag, "OK", on ? "Subscribe completed." : "Unsubscribe completed.");
}

/* ---------------------------------------------------------------- LIST */

/* A LIST pattern compiled for a non-backtracking match: runs of
 * wildcards collapse to one ('*' if the run has one, else '%'), so a
 * pattern that could match a name has at most 2 * IMAP_MBOX_NAME_MAX + 1
 * positions, and a match costs (name length) x (positions). */
typedef struct list_pat {
	char p[2 * IMAP_MBOX_NAME_MAX + 2];
	size_t n;
	size_t literals;
	bool impossible;
} list_pat;

static void pat_compile(list_pat *lp, const char *ref, size_t rlen,
			const char *pat, size_t plen)
{
	memset(lp, 0, sizeof(*lp));
	for (size_t k = 0; k < 2; k++) {
		const char *s = k == 0 ? ref : pat;
		size_t n = k == 0 ? rlen : plen;
		for (size_t i = 0; i < n; i++) {
			char c = s[i];
			bool wild = c == '*' || c == '%';
			if (wild && lp->n > 0 && (lp->p[lp->n - 1] == '*' || lp->p[lp->n - 1] == '%')) {
				if (c == '*')
					lp->p[lp->n - 1] = '*';
				continue;
			}
			if (!wild && ++lp->literals > IMAP_MBOX_NAME_MAX) {
				lp->impossible = true;
				return;
			}
			lp->p[lp->n++] = c;
		}
	}
	/* "inbox" at the start names INBOX whatever its case */
	if (lp->n >= 5 && strncasecmp(lp->p, "INBOX", 5) == 0 &&
	    (lp->n == 5 || lp->p[5] == '/' || lp->p[5] == '*' || lp->p[5] == '%'))
		memcpy(lp->p, "INBOX", 5);
}

static bool pat_match(const list_pat *lp, const char *name)
{
	bool a[2 * IMAP_MBOX_NAME_MAX + 3], b[2 * IMAP_MBOX_NAME_MAX + 3];
	bool *cur = a, *nxt = b;
	size_t m = lp->n;
	if (lp->impossible)
		return false;
	memset(cur, 0, m + 1);
	cur[0] = true;
	for (size_t j = 0; j < m; j++)
		if (cur[j] && (lp->p[j] == '*' || lp->p[j] == '%'))
			cur[j + 1] = true;
	for (const char *q = name; *q != '\0'; q++) {
		bool any = false;
		memset(nxt, 0, m + 1);
		for (size_t j = 0; j < m; j++) {
			if (!cur[j])
				continue;
			char pc = lp->p[j];
			if (pc == '*' || (pc == '%' && *q != '/'))
				nxt[j] = any = true;
			else if (pc == *q)
				nxt[j + 1] = any = true;
		}
		if (!any)
			return false;
		for (size_t j = 0; j < m; j++)
			if (nxt[j] && (lp->p[j] == '*' || lp->p[j] == '%'))
				nxt[j + 1] = true;
		bool *t = cur;
		cur = nxt;
		nxt = t;
	}
	return cur[m];
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool has_children(const char *const *sorted, size_t n, const char *name)
{
	size_t len = strlen(name), lo = 0, hi = n;
	/* the first name >= "name/" */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(sorted[mid], name, len);
		if (c < 0 || (c == 0 && (unsigned char)sorted[mid][len] < '/'))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strncmp(sorted[lo], name, len) == 0 && sorted[lo][len] == '/';
}

static const char *special_name(imap_special sp)
{
	switch (sp) {
	case IMAP_SPECIAL_SENT: return "\\Sent";
	case IMAP_SPECIAL_JUNK: return "\\Junk";
	case IMAP_SPECIAL_TRASH: return "\\Trash";
	case IMAP_SPECIAL_DRAFTS: return "\\Drafts";
	case IMAP_SPECIAL_ARCHIVE: return "\\Archive";
	case IMAP_SPECIAL_NONE: break;
	}
	return NULL;
}

static void cmd_list(imap_session *s, const imap_command *c)
{
	bool lsub = c->cmd == IMAP_CMD_LSUB;
	const imap_arg *ref = c->args;
	if (ref->type == IMAP_ARG_LIST)       /* RFC 5258 selection: ignored */
		ref = ref->next;
	const imap_arg *pat = ref->next;
	const char *word = lsub ? "LSUB" : "LIST";
	if (pat->type == IMAP_ARG_LIST) {
		tagged(s, s->tag, "BAD", "Multiple patterns not supported");
		return;
	}
	if (pat->len == 0) {
		out_fmt(s, "* %s (\\Noselect) \"/\" \"\"\r\n", word);
		taggedf(s, s->tag, "OK", "%s completed.", lsub ? "Lsub" : "List");
		return;
	}
	if (ref->len + pat->len > 2 * IMAP_LINE_MAX_LIMIT) {
		tagged(s, s->tag, "BAD", "Pattern too long");
		return;
	}
	list_pat *lp = malloc(sizeof(*lp));
	if (lp == NULL)
		abort();
	pat_compile(lp, ref->str, ref->len, pat->str, pat->len);
	imap_mbox_info *list = NULL;
	size_t n = 0;
	const char *err = NULL;
	if (s->ops->list(s->st, &list, &n, &err) != 0) {
		free(lp);
		taggedf(s, s->tag, "NO", "%.600s", err != NULL ? err : "List failed");
		return;
	}
	const char **sorted = malloc((n > 0 ? n : 1) * sizeof(*sorted));
	if (sorted == NULL)
		abort();
	for (size_t i = 0; i < n; i++) {
		list[i].name[IMAP_MBOX_NAME_MAX] = '\0';
		sorted[i] = list[i].name;
	}
	qsort(sorted, n, sizeof(*sorted), cmp_strp);
	for (size_t i = 0; i < n; i++) {
		const imap_mbox_info *m = &list[i];
		if (lsub && !m->subscribed)
			continue;
		if (!pat_match(lp, m->name))
			continue;
		out_fmt(s, "* %s (", word);
		bool first = true;
		if (m->noselect) {
			out_str(s, "\\Noselect");
			first = false;
		}
		if (!lsub) {
			out_str(s, first ? "" : " ");
			out_str(s, has_children(sorted, n, m->name) ?
				   "\\HasChildren" : "\\HasNoChildren");
			first = false;
			const char *sp = special_name(m->special);
			if (sp != NULL) {
				out_add(s, " ", 1);
				out_str(s, sp);
			}
		}
		out_str(s, ") \"/\" ");
		out_astring(s, m->name, strlen(m->name));
		out_str(s, "\r\n");
		if (pending_out(s) > s->out_max / 2)
			break;      /* bounded: a store with absurdly many names */
	}
	free(sorted);
	free(list);
	free(lp);
	taggedf(s, s->tag, "OK", "%s completed.", lsub ? "Lsub" : "List");
}

static void cmd_namespace(imap_session *s, const imap_command *c)
{
	(void)c;
	out_str(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	tagged(s, s->tag, "OK", "Namespace completed.");
}

static void cmd_status(imap_session *s, const imap_command *c)
{
	char name[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	const imap_arg *items = c->args->next;
	for (const imap_arg *i = items->child; i != NULL; i = i->next) {
		if (!arg_is(i, "MESSAGES") && !arg_is(i, "RECENT") && !arg_is(i, "UIDNEXT") &&
		    !arg_is(i, "UIDVALIDITY") && !arg_is(i, "UNSEEN")) {
			tagged(s, s->tag, "BAD", "Invalid status item");
			return;
		}
	}
	if (!name_check(c->args, false, name, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	imap_mbox_status st;
	memset(&st, 0, sizeof(st));
	int r = s->ops->status(s->st, name, &st, &err);
	if (r != 0) {
		store_error(s, r, name, err, false);
		return;
	}
	out_str(s, "* STATUS ");
	out_astring(s, name, strlen(name));
	out_str(s, " (");
	for (const imap_arg *i = items->child; i != NULL; i = i->next) {
		if (i != items->child)
			out_add(s, " ", 1);
		if (arg_is(i, "MESSAGES"))
			out_fmt(s, "MESSAGES %u", st.messages);
		else if (arg_is(i, "RECENT"))
			out_str(s, "RECENT 0");
		else if (arg_is(i, "UIDNEXT"))
			out_fmt(s, "UIDNEXT %u", st.uidnext);
		else if (arg_is(i, "UIDVALIDITY"))
			out_fmt(s, "UIDVALIDITY %u", st.uidvalidity);
		else
			out_fmt(s, "UNSEEN %u", st.unseen);
	}
	out_str(s, ")\r\n");
	tagged(s, s->tag, "OK", "Status completed.");
}

static void cmd_append(imap_session *s, const imap_command *c)
{
	char name[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	const imap_arg *a = c->args->next;
	uint64_t flags = 0;
	int64_t t = -1;
	int32_t tz = 0;
	if (!name_check(c->args, false, name, &err)) {
		tagged(s, s->tag, "NO", err);
		return;
	}
	if (a->type == IMAP_ARG_LIST) {
		int r = parse_flags(s, a, true, &flags, &err);
		if (r != 0) {
			tagged(s, s->tag, r == -1 ? "BAD" : "NO", err);
			return;
		}
		a = a->next;
	}
	if (a->type == IMAP_ARG_QUOTED) {
		if (!parse_datetime(a->str, a->len, &t, &tz)) {
			tagged(s, s->tag, "BAD", "Invalid date-time");
			return;
		}
		a = a->next;
	}
	if (a->len == 0) {
		tagged(s, s->tag, "NO", "Can't save a zero byte message.");
		return;
	}
	uint32_t uid = 0, uidv = 0;
	int r = s->ops->append(s->st, name, (const uint8_t *)a->str, a->len, flags, t,
			       tz, &uid, &uidv, &err);
	if (r != 0) {
		store_error(s, r, name, err, true);
		return;
	}
	taggedf(s, s->tag, "OK", "[APPENDUID %u %u] Append completed.", uidv, uid);
}

static void cmd_close(imap_session *s, const imap_command *c)
{
	(void)c;
	if (!s->readonly) {
		size_t n = 0;
		uint32_t *u = malloc((s->view.n > 0 ? s->view.n : 1) * sizeof(*u));
		if (u == NULL)
			abort();
		for (size_t i = 0; i < s->view.n; i++)
			if (s->view.flags[i] & IMAP_FLAG_DELETED)
				u[n++] = s->view.uids[i];
		const char *err = NULL;
		if (n > 0 && s->ops->expunge(s->st, s->sel, u, n, &err) != 0) {
			free(u);
			taggedf(s, s->tag, "NO", "%.600s", err != NULL ? err : "Expunge failed");
			return;
		}
		free(u);
	}
	unselect(s);
	tagged(s, s->tag, "OK", "Close completed.");
}

static void cmd_expunge(imap_session *s, const imap_command *c)
{
	uint32_t *idx = NULL;
	size_t nidx = 0;
	const char *err = NULL;
	if (c->uid && resolve_set(s, c->args, true, &idx, &nidx, &err) != 0) {
		taggedf(s, s->tag, "BAD", "Error in IMAP command %s: %s", c->name, err);
		return;
	}
	if (s->readonly) {
		free(idx);
		tagged(s, s->tag, "OK", "Expunge completed.");
		return;
	}
	uint32_t *u = malloc((s->view.n > 0 ? s->view.n : 1) * sizeof(*u));
	if (u == NULL)
		abort();
	size_t n = 0;
	if (c->uid) {
		for (size_t i = 0; i < nidx; i++)
			if (s->view.flags[idx[i]] & IMAP_FLAG_DELETED)
				u[n++] = s->view.uids[idx[i]];
	} else {
		for (size_t i = 0; i < s->view.n; i++)
			if (s->view.flags[i] & IMAP_FLAG_DELETED)
				u[n++] = s->view.uids[i];
	}
	free(idx);
	if (n > 0 && s->ops->expunge(s->st, s->sel, u, n, &err) != 0) {
		free(u);
		taggedf(s, s->tag, "NO", "%.600s", err != NULL ? err : "Expunge failed");
		return;
	}
	free(u);
	resync(s, true);
	tagged(s, s->tag, "OK", "Expunge completed.");
}

static void cmd_copy(imap_session *s, const imap_command *c)
{
	char dest[IMAP_MBOX_NAME_MAX + 1];
	const char *err = NULL;
	bool move = c->cmd == IMAP_CMD_MOVE;
	uint32_t *idx;
	size_t n;
	if (resolve_set(s, c->args, c->uid, &idx, &n, &err) != 0) {
		taggedf(s, s->tag, "BAD", "Error in IMAP command %s: %s", c->name, err);
		return;
	}
	if (!name_check(c->args->next, false, dest, &err)) {
		free(idx);
		tagged(s, s->tag, "NO", err);
		return;
	}
	if (move && s->readonly) {
		free(idx);
		tagged(s, s->tag, "NO", "Mailbox is read-only.");
		return;
	}
	if (n == 0) {
		free(idx);
		tagged(s, s->tag, "OK", move ? "No messages found." : "No messages found.");
		return;
	}
	uint32_t *uids = malloc(n * sizeof(*uids)), *nu = calloc(n, sizeof(*nu));
	if (uids == NULL || nu == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		uids[i] = s->view.uids[idx[i]];
	uint32_t uidv = 0;
	int r = s->ops->copy(s->st, s->sel, uids, n, dest, move, nu, &uidv, &err);
	if (r != 0) {
		free(idx);
		free(uids);
		free(nu);
		store_error(s, r, dest, err, true);
		return;
	}
	/* COPYUID: the pairs that were copied (UIDs ascending in both) */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (nu[i] != 0) {
			uids[k] = uids[i];
			nu[k] = nu[i];
			k++;
		}
	}
	bool sorted = true;
	for (size_t i = 1; i < k; i++)
		if (nu[i] <= nu[i - 1])
			sorted = false;
	bool missing = k < n;
	if (move) {
		if (k > 0 && sorted) {
			out_fmt(s, "* OK [COPYUID %u ", uidv);
			out_uidset(s, uids, k);
			out_add(s, " ", 1);
			out_uidset(s, nu, k);
			out_str(s, "] Moved UIDs.\r\n");
		}
		resync(s, true);
		tagged(s, s->tag, missing ? "NO" : "OK", missing ?
		       "Some of the requested messages no longer exist." : "Move completed.");
	} else {
		if (k > 0 && sorted) {
			pre_tag(s);
			out_str(s, s->tag);
			out_str(s, missing ? " NO " : " OK ");
			out_fmt(s, "[COPYUID %u ", uidv);
			out_uidset(s, uids, k);
			out_add(s, " ", 1);
			out_uidset(s, nu, k);
			out_str(s, missing ? "] Some of the requested messages no longer exist.\r\n" :
				   "] Copy completed.\r\n");
			log_cmd(s, s->tag, missing ? "NO" : "OK");
		} else {
			tagged(s, s->tag, missing ? "NO" : "OK", missing ?
			       "Some of the requested messages no longer exist." : "Copy completed.");
		}
	}
	free(idx);
	free(uids);
	free(nu);
}

/* -------------------------------------------------------------- SEARCH */

enum snode {
	SN_AND, SN_OR, SN_NOT, SN_ALL, SN_NONE, SN_FLAG, SN_UNFLAG, SN_HEADER,
	SN_BODY, SN_TEXT, SN_LARGER, SN_SMALLER, SN_BEFORE, SN_ON, SN_SINCE,
	SN_SENTBEFORE, SN_SENTON, SN_SENTSINCE, SN_SEQ, SN_UID,
};

typedef struct search_node {
	enum snode k;
	uint32_t count;         /* SN_AND: operands */
	uint64_t mask;          /* SN_FLAG / SN_UNFLAG */
	uint64_t num;           /* sizes */
	int64_t day;
	const char *field;      /* SN_HEADER */
	const char *needle;
	size_t needle_len;
	imap_seq_range *r;      /* SN_SEQ / SN_UID: sorted, merged */
	size_t nr;
} search_node;

typedef struct search_prog {
	search_node *n;
	size_t len, cap;
	bool need_cached, need_msg;
	const char *error;
	bool no;                /* error is a NO, not a BAD */
} search_prog;

static search_node *sp_add(search_prog *p, enum snode k)
{
	if (p->len == p->cap) {
		size_t cap = p->cap == 0 ? 64 : p->cap * 2;
		search_node *n = realloc(p->n, cap * sizeof(*n));
		if (n == NULL)
			abort();
		p->n = n;
		p->cap = cap;
	}
	search_node *x = &p->n[p->len++];
	memset(x, 0, sizeof(*x));
	x->k = k;
	return x;
}

static void sp_free(search_prog *p)
{
	for (size_t i = 0; i < p->len; i++)
		free(p->n[i].r);
	free(p->n);
	memset(p, 0, sizeof(*p));
}

static int cmp_range(const void *a, const void *b)
{
	const imap_seq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool sp_set(imap_session *s, search_node *x, const imap_arg *a, bool uid)
{
	size_t nr;
	const char *e;
	if (imap_seqset_parse(a->str, a->len, NULL, 0, &nr, &e) != 0)
		return false;
	imap_seq_range *r = calloc(nr, sizeof(*r));
	if (r == NULL)
		abort();
	if (imap_seqset_parse(a->str, a->len, r, nr, &nr, &e) != 0) {
		free(r);
		return false;
	}
	uint64_t star = uid ? (s->view.n > 0 ? s->view.uids[s->view.n - 1] : 0) : s->view.n;
	for (size_t i = 0; i < nr; i++) {
		if (r[i].lo == IMAP_SEQ_STAR)
			r[i].lo = star;
		if (r[i].hi == IMAP_SEQ_STAR)
			r[i].hi = star;
		if (r[i].lo > r[i].hi) {
			uint64_t t = r[i].lo;
			r[i].lo = r[i].hi;
			r[i].hi = t;
		}
	}
	qsort(r, nr, sizeof(*r), cmp_range);
	size_t m = 0;
	for (size_t i = 0; i < nr; i++) {
		if (m > 0 && r[i].lo <= r[m - 1].hi + 1) {
			if (r[i].hi > r[m - 1].hi)
				r[m - 1].hi = r[i].hi;
		} else {
			r[m++] = r[i];
		}
	}
	x->r = r;
	x->nr = m;
	return true;
}

static bool in_ranges(const search_node *x, uint64_t v)
{
	size_t lo = 0, hi = x->nr;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->r[mid].hi < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->nr && x->r[lo].lo <= v;
}

static bool is_seqset_atom(const imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM || a->len == 0)
		return false;
	char c = a->str[0];
	return c == '*' || (c >= '0' && c <= '9');
}

static const char *astr(const imap_arg *a)
{
	return a != NULL && a->type != IMAP_ARG_LIST ? a->str : NULL;
}

/* Compile a sequence of keys (the top level or a parenthesised list) as
 * one AND node.  Prefix notation is kept as read: an operator's operands
 * follow it; "owed" counts the keys still needed, without recursion. */
static void sp_compile(imap_session *s, search_prog *p, const imap_arg *a)
{
	size_t and_at = p->len;
	sp_add(p, SN_AND);
	uint32_t count = 0;
	unsigned owed = 0;
	while (a != NULL && p->error == NULL) {
		if (owed == 0) {
			owed = 1;
			count++;
		}
		owed--;
		if (a->type == IMAP_ARG_LIST) {
			sp_compile(s, p, a->child);
			a = a->next;
			continue;
		}
		const char *w = a->str;
		size_t wl = a->len;
		const imap_arg *v = a->next;
		search_node *x;
		static const struct {
			const char *name;
			enum snode k;
			uint64_t mask;
		} simple[] = {
			{ "ALL", SN_ALL, 0 }, { "ANSWERED", SN_FLAG, IMAP_FLAG_ANSWERED },
			{ "DELETED", SN_FLAG, IMAP_FLAG_DELETED }, { "DRAFT", SN_FLAG, IMAP_FLAG_DRAFT },
			{ "FLAGGED", SN_FLAG, IMAP_FLAG_FLAGGED }, { "SEEN", SN_FLAG, IMAP_FLAG_SEEN },
			{ "UNANSWERED", SN_UNFLAG, IMAP_FLAG_ANSWERED },
			{ "UNDELETED", SN_UNFLAG, IMAP_FLAG_DELETED },
			{ "UNDRAFT", SN_UNFLAG, IMAP_FLAG_DRAFT },
			{ "UNFLAGGED", SN_UNFLAG, IMAP_FLAG_FLAGGED },
			{ "UNSEEN", SN_UNFLAG, IMAP_FLAG_SEEN },
			/* \Recent is never set (imap-mbox.h) */
			{ "NEW", SN_NONE, 0 }, { "RECENT", SN_NONE, 0 }, { "OLD", SN_ALL, 0 },
		};
		bool done = false;
		for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
			if (ieq(w, wl, simple[i].name)) {
				x = sp_add(p, simple[i].k);
				x->mask = simple[i].mask;
				a = v;
				done = true;
				break;
			}
		}
		if (done)
			continue;
		if (ieq(w, wl, "NOT")) {
			sp_add(p, SN_NOT);
			owed += 1;
			a = v;
			continue;
		}
		if (ieq(w, wl, "OR")) {
			sp_add(p, SN_OR);
			owed += 2;
			a = v;
			continue;
		}
		if (is_seqset_atom(a)) {
			x = sp_add(p, SN_SEQ);
			if (!sp_set(s, x, a, false))
				p->error = "Invalid messageset";
			a = v;
			continue;
		}
		/* keys with one argument */
		if (v == NULL || v->type == IMAP_ARG_LIST) {
			p->error = "Missing search parameters";
			break;
		}
		a = v->next;
		static const struct {
			const char *name;
			const char *field;
		} hdr[] = {
			{ "BCC", "Bcc" }, { "CC", "Cc" }, { "FROM", "From" },
			{ "SUBJECT", "Subject" }, { "TO", "To" },
		};
		for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++) {
			if (ieq(w, wl, hdr[i].name)) {
				x = sp_add(p, SN_HEADER);
				x->field = hdr[i].field;
				x->needle = v->str;
				x->needle_len = v->len;
				p->need_msg = true;
				done = true;
				break;
			}
		}
		if (done)
			continue;
		static const struct {
			const char *name;
			enum snode k;
			bool sent;
		} dates[] = {
			{ "BEFORE", SN_BEFORE, false }, { "ON", SN_ON, false },
			{ "SINCE", SN_SINCE, false }, { "SENTBEFORE", SN_SENTBEFORE, true },
			{ "SENTON", SN_SENTON, true }, { "SENTSINCE", SN_SENTSINCE, true },
		};
		for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
			if (ieq(w, wl, dates[i].name)) {
				x = sp_add(p, dates[i].k);
				if (!parse_date(v->str, v->len, &x->day))
					p->error = "Invalid search date parameter";
				p->need_cached = true;
				done = true;
				break;
			}
		}
		if (done)
			continue;
		if (ieq(w, wl, "BODY") || ieq(w, wl, "TEXT")) {
			x = sp_add(p, ieq(w, wl, "BODY") ? SN_BODY : SN_TEXT);
			x->needle = v->str;
			x->needle_len = v->len;
			p->need_msg = true;
		} else if (ieq(w, wl, "LARGER") || ieq(w, wl, "SMALLER")) {
			x = sp_add(p, ieq(w, wl, "LARGER") ? SN_LARGER : SN_SMALLER);
			if (v->type != IMAP_ARG_ATOM ||
			    !parse_uint(v->str, v->len, UINT32_MAX, &x->num))
				p->error = "Invalid search size parameter";
			p->need_cached = true;
		} else if (ieq(w, wl, "UID")) {
			x = sp_add(p, SN_UID);
			if (v->type != IMAP_ARG_ATOM || !sp_set(s, x, v, true))
				p->error = "Invalid UID messageset";
		} else if (ieq(w, wl, "KEYWORD") || ieq(w, wl, "UNKEYWORD")) {
			bool un = ieq(w, wl, "UNKEYWORD");
			const char *const *kw;
			size_t nkw, i;
			keyword_table(s, &kw, &nkw);
			for (i = 0; i < nkw; i++)
				if (ieq(v->str, v->len, kw[i]))
					break;
			if (i < nkw) {
				x = sp_add(p, un ? SN_UNFLAG : SN_FLAG);
				x->mask = IMAP_FLAG_KEYWORD(i);
			} else {
				sp_add(p, un ? SN_ALL : SN_NONE);
			}
		} else if (ieq(w, wl, "HEADER")) {
			const imap_arg *nd = v->next;
			if (nd == NULL || nd->type == IMAP_ARG_LIST || astr(v) == NULL) {
				p->error = "Missing search parameters";
				break;
			}
			x = sp_add(p, SN_HEADER);
			x->field = v->str;
			x->needle = nd->str;
			x->needle_len = nd->len;
			p->need_msg = true;
			a = nd->next;
		} else {
			p->error = "Unknown search key";
		}
	}
	if (p->error == NULL && owed > 0)
		p->error = "Missing search parameters";
	if (p->error == NULL && count == 0)
		p->error = "Empty search list";
	p->n[and_at].count = count;
}

static int64_t day_of(int64_t t, int32_t tz)
{
	return floor_div(t + (int64_t)tz * 60, 86400);
}

/* The day of the Date: field in its own zone (SENTBEFORE... disregard
 * the time and the zone): the zone is read from ENVELOPE's date string,
 * the last "+hhmm" / "-hhmm" in it; UTC when there is none. */
static int64_t sent_day(const imap_mbox_cached *c)
{
	int32_t tz = 0;
	const char *e = c->envelope;
	if (e != NULL && e[0] == '(' && e[1] == '"') {
		const char *end = strchr(e + 2, '"');
		for (const char *q = e + 2; end != NULL && q + 5 <= end; q++) {
			if ((*q == '+' || *q == '-') && q[1] >= '0' && q[1] <= '9' &&
			    q[2] >= '0' && q[2] <= '9' && q[3] >= '0' && q[3] <= '5' &&
			    q[4] >= '0' && q[4] <= '9') {
				tz = (int32_t)((q[1] - '0') * 600 + (q[2] - '0') * 60 +
					       (q[3] - '0') * 10 + (q[4] - '0'));
				if (*q == '-')
					tz = -tz;
			}
		}
	}
	return day_of(c->sent, tz);
}

/* Evaluate the program for one message: right to left with a stack. */
static bool sp_eval(const search_prog *p, uint8_t *stack, uint32_t seq,
		    uint32_t uid, uint64_t flags, const imap_mbox_cached *c,
		    const uint8_t *msg, size_t len)
{
	size_t sp = 0;
	for (size_t i = p->len; i-- > 0;) {
		const search_node *x = &p->n[i];
		bool v = false;
		switch (x->k) {
		case SN_AND:
			v = true;
			for (uint32_t k = 0; k < x->count; k++)
				v = stack[--sp] && v;
			break;
		case SN_OR:
			v = stack[sp - 1] || stack[sp - 2];
			sp -= 2;
			break;
		case SN_NOT:
			v = !stack[--sp];
			break;
		case SN_ALL: v = true; break;
		case SN_NONE: v = false; break;
		case SN_FLAG: v = (flags & x->mask) != 0; break;
		case SN_UNFLAG: v = (flags & x->mask) == 0; break;
		case SN_HEADER:
			v = msg != NULL && imap_msg_header_has(msg, len, x->field, x->needle,
							       x->needle_len);
			break;
		case SN_BODY:
		case SN_TEXT:
			v = msg != NULL && imap_msg_text_has(msg, len, x->k == SN_TEXT,
							     x->needle, x->needle_len);
			break;
		case SN_LARGER: v = c != NULL && c->size > x->num; break;
		case SN_SMALLER: v = c != NULL && c->size < x->num; break;
		case SN_BEFORE:
			v = c != NULL && day_of(c->internaldate, c->tz_minutes) < x->day;
			break;
		case SN_ON:
			v = c != NULL && day_of(c->internaldate, c->tz_minutes) == x->day;
			break;
		case SN_SINCE:
			v = c != NULL && day_of(c->internaldate, c->tz_minutes) >= x->day;
			break;
		case SN_SENTBEFORE:
			v = c != NULL && c->sent != INT64_MIN && sent_day(c) < x->day;
			break;
		case SN_SENTON:
			v = c != NULL && c->sent != INT64_MIN && sent_day(c) == x->day;
			break;
		case SN_SENTSINCE:
			v = c != NULL && c->sent != INT64_MIN && sent_day(c) >= x->day;
			break;
		case SN_SEQ: v = in_ranges(x, seq); break;
		case SN_UID: v = in_ranges(x, uid); break;
		}
		stack[sp++] = v;
	}
	return sp == 1 && stack[0];
}

static void cmd_search(imap_session *s, const imap_command *c)
{
	const imap_arg *a = c->args;
	if (arg_is(a, "CHARSET")) {
		if (!arg_is(a->next, "UTF-8") && !arg_is(a->next, "US-ASCII")) {
			tagged(s, s->tag, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
			return;
		}
		a = a->next->next;
	}
	search_prog p;
	memset(&p, 0, sizeof(p));
	sp_compile(s, &p, a);
	if (p.error != NULL) {
		const char *e = p.error;
		sp_free(&p);
		taggedf(s, s->tag, "BAD", "Error in IMAP command SEARCH: %s", e);
		return;
	}
	uint8_t *stack = malloc(p.len + 1);
	if (stack == NULL)
		abort();
	bool missing = false;
	out_str(s, "* SEARCH");
	for (size_t i = 0; i < s->view.n && !s->closing; i++) {
		uint32_t uid = s->view.uids[i];
		uint8_t *msg = NULL;
		size_t len = 0;
		imap_mbox_cached cd, *cp = NULL;
		const char *err;
		if (p.need_msg) {
			if (s->ops->read(s->st, s->sel, uid, &msg, &len, &err) != 0) {
				missing = true;
				continue;
			}
		}
		if (p.need_cached) {
			memset(&cd, 0, sizeof(cd));
			if (s->ops->cached(s->st, s->sel, uid, &cd, &err) != 0) {
				if (msg != NULL)
					s->ops->release(s->st, msg, len);
				missing = true;
				continue;
			}
			cp = &cd;
		}
		if (sp_eval(&p, stack, (uint32_t)(i + 1), uid, s->view.flags[i], cp, msg, len))
			out_fmt(s, " %u", c->uid ? uid : (uint32_t)(i + 1));
		if (msg != NULL)
			s->ops->release(s->st, msg, len);
	}
	out_str(s, "\r\n");
	free(stack);
	sp_free(&p);
	(void)missing;  /* a vanished message simply does not match */
	resync(s, c->uid);
	tagged(s, s->tag, "OK", "Search completed.");
}

/* --------------------------------------------------------------- FETCH */

static void job_clear(job *j)
{
	for (size_t i = 0; i < j->nitems; i++) {
		free(j->items[i].section);
		free(j->items[i].name);
	}
	free(j->items);
	free(j->idx);
	free(j->flags);
	memset(j, 0, sizeof(*j));
}

static char *dup_upper(const char *t, size_t n)
{
	char *d = malloc(n + 1);
	if (d == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		d[i] = (t[i] >= 'a' && t[i] <= 'z') ? (char)(t[i] - 32) : t[i];
	d[n] = '\0';
	return d;
}

static fetch_item *item_add(job *j, enum fetch_kind k)
{
	for (size_t i = 0; i < j->nitems; i++)
		if (k != F_SECTION && j->items[i].kind == k)
			return NULL;   /* once is enough */
	fetch_item *n = realloc(j->items, (j->nitems + 1) * sizeof(*n));
	if (n == NULL)
		abort();
	j->items = n;
	fetch_item *x = &j->items[j->nitems++];
	memset(x, 0, sizeof(*x));
	x->kind = k;
	if (k == F_FLAGS)
		j->has_flags = true;
	if (k == F_INTERNALDATE || k == F_SIZE || k == F_ENVELOPE || k == F_BODY ||
	    k == F_BODYSTRUCTURE)
		j->need_cached = true;
	return x;
}

static void item_section(job *j, const char *sec, size_t n, const char *name,
			 bool peek)
{
	fetch_item *x = item_add(j, F_SECTION);
	x->section = dup_upper(sec, n);
	x->section_len = n;
	x->name = dup_upper(name, strlen(name));
	x->peek = peek;
	j->need_msg = true;
	if (!peek)
		j->sets_seen = true;
}

/* One FETCH att (syntax checked by the parser). */
static int fetch_att(job *j, const char *t, size_t n, const char **error_r)
{
	static const struct {
		const char *name;
		enum fetch_kind k;
	} plain[] = {
		{ "FLAGS", F_FLAGS }, { "UID", F_UID }, { "INTERNALDATE", F_INTERNALDATE },
		{ "RFC822.SIZE", F_SIZE }, { "ENVELOPE", F_ENVELOPE }, { "BODY", F_BODY },
		{ "BODYSTRUCTURE", F_BODYSTRUCTURE },
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (ieq(t, n, plain[i].name)) {
			item_add(j, plain[i].k);
			return 0;
		}
	}
	if (ieq(t, n, "RFC822")) {
		item_section(j, "", 0, "RFC822", false);
		return 0;
	}
	if (ieq(t, n, "RFC822.HEADER")) {
		item_section(j, "HEADER", 6, "RFC822.HEADER", true);
		return 0;
	}
	if (ieq(t, n, "RFC822.TEXT")) {
		item_section(j, "TEXT", 4, "RFC822.TEXT", false);
		return 0;
	}
	if (ieq(t, n, "MODSEQ")) {
		*error_r = "FETCH MODSEQ needs CONDSTORE, which is not supported";
		return -1;
	}
	bool peek = n > 10 && strncasecmp(t, "BODY.PEEK[", 10) == 0;
	const char *sec = t + (peek ? 10 : 5);
	const char *close = NULL;
	for (const char *q = t + n; q > sec; q--) {
		if (q[-1] == ']') {
			close = q - 1;
			break;
		}
	}
	if (close == NULL) {
		*error_r = "Invalid BODY[section]";
		return -1;
	}
	char name[64 + 2 * IMAP_LINE_MAX_DEFAULT];
	size_t sl = (size_t)(close - sec);
	if (sl > 2 * IMAP_LINE_MAX_DEFAULT) {
		*error_r = "Section too long";
		return -1;
	}
	uint64_t off = 0, len = 0;
	bool partial = close + 1 < t + n;
	if (partial) {
		const char *p0 = close + 2, *dot = memchr(p0, '.', (size_t)(t + n - p0));
		if (dot == NULL || !parse_uint(p0, (size_t)(dot - p0), UINT32_MAX, &off) ||
		    !parse_uint(dot + 1, (size_t)(t + n - 1 - dot - 1), UINT32_MAX, &len)) {
			*error_r = "Invalid partial <n.m>";
			return -1;
		}
	}
	int w = partial ? snprintf(name, sizeof(name), "BODY[%.*s]<%llu>", (int)sl, sec,
				   (unsigned long long)off)
			: snprintf(name, sizeof(name), "BODY[%.*s]", (int)sl, sec);
	if (w < 0 || (size_t)w >= sizeof(name)) {
		*error_r = "Section too long";
		return -1;
	}
	item_section(j, sec, sl, name, peek);
	fetch_item *x = &j->items[j->nitems - 1];
	x->partial = partial;
	x->off = off;
	x->len = len;
	return 0;
}

static void job_finish(imap_session *s);

/* One message's FETCH response: false when it is gone. */
static bool fetch_one(imap_session *s, job *j, uint32_t i)
{
	uint32_t uid = s->view.uids[i];
	const char *err = NULL;
	uint8_t *msg = NULL;
	size_t len = 0;
	bool flags_changed = false;
	if (j->sets_seen && !s->readonly && !(s->view.flags[i] & IMAP_FLAG_SEEN)) {
		uint64_t nf = 0;
		if (s->ops->store(s->st, s->sel, &uid, 1, IMAP_STORE_ADD, IMAP_FLAG_SEEN,
				  &nf, &err) == 0 && nf != 0) {
			s->view.flags[i] = nf;
			flags_changed = true;
		}
	}
	if (j->need_msg && s->ops->read(s->st, s->sel, uid, &msg, &len, &err) != 0)
		return false;
	imap_mbox_cached cd;
	memset(&cd, 0, sizeof(cd));
	if (j->need_cached && s->ops->cached(s->st, s->sel, uid, &cd, &err) != 0) {
		if (msg != NULL)
			s->ops->release(s->st, msg, len);
		return false;
	}
	out_fmt(s, "* %u FETCH (", i + 1);
	bool first = true;
	if (j->uid) {
		out_fmt(s, "UID %u", uid);
		first = false;
	}
	if (flags_changed && !j->has_flags) {
		/* \Seen was set: FLAGS first, as Dovecot */
		out_str(s, first ? "FLAGS " : " FLAGS ");
		out_flags(s, s->view.flags[i]);
		first = false;
	}
	for (size_t k = 0; k < j->nitems && !s->closing; k++) {
		const fetch_item *x = &j->items[k];
		if (x->kind == F_UID && j->uid)
			continue;
		if (!first)
			out_add(s, " ", 1);
		first = false;
		switch (x->kind) {
		case F_FLAGS:
			out_str(s, "FLAGS ");
			out_flags(s, s->view.flags[i]);
			break;
		case F_UID:
			out_fmt(s, "UID %u", uid);
			break;
		case F_INTERNALDATE:
			out_str(s, "INTERNALDATE ");
			out_internaldate(s, cd.internaldate, cd.tz_minutes);
			break;
		case F_SIZE:
			out_fmt(s, "RFC822.SIZE %llu", (unsigned long long)cd.size);
			break;
		case F_ENVELOPE:
			out_str(s, "ENVELOPE ");
			out_str(s, cd.envelope != NULL ? cd.envelope : "NIL");
			break;
		case F_BODY:
			out_str(s, "BODY ");
			out_str(s, cd.body != NULL ? cd.body : "NIL");
			break;
		case F_BODYSTRUCTURE:
			out_str(s, "BODYSTRUCTURE ");
			out_str(s, cd.bodystructure != NULL ? cd.bodystructure : "NIL");
			break;
		case F_SECTION: {
			const uint8_t *b = NULL;
			size_t bn = 0;
			uint8_t *alloc = NULL;
			if (imap_msg_section(msg, len, x->section, x->section_len, &b, &bn,
					     &alloc, &err) != 0) {
				b = NULL;
				bn = 0;
			}
			if (x->partial) {
				if (x->off >= bn) {
					bn = 0;
				} else {
					b += x->off;
					bn -= (size_t)x->off;
					if (bn > x->len)
						bn = (size_t)x->len;
				}
			}
			out_str(s, x->name);
			out_fmt(s, " {%zu}\r\n", bn);
			if (bn > 0)
				out_add(s, b, bn);
			free(alloc);
			break;
		}
		}
	}
	out_str(s, ")\r\n");
	if (msg != NULL)
		s->ops->release(s->st, msg, len);
	return true;
}

/* Produce the long answer until a chunk is full or it is done. */
static void job_run(imap_session *s)
{
	job *j = &s->job;
	while (j->kind != JOB_NONE && j->pos < j->n && !s->closing) {
		if (pending_out(s) >= IMAP_OUT_CHUNK)
			return;
		uint32_t i = j->idx[j->pos];
		if (j->kind == JOB_FETCH) {
			if (!fetch_one(s, j, i))
				j->missing = true;
		} else {
			out_fmt(s, "* %u FETCH (", i + 1);
			if (j->uid)
				out_fmt(s, "UID %u ", s->view.uids[i]);
			out_str(s, "FLAGS ");
			out_flags(s, j->flags[j->pos]);
			out_str(s, ")\r\n");
		}
		j->pos++;
	}
	if (j->kind != JOB_NONE)
		job_finish(s);
}

static void job_finish(imap_session *s)
{
	job *j = &s->job;
	char tag[TAG_MAX];
	bool missing = j->missing, uid = j->uid;
	enum job_kind k = j->kind;
	memcpy(tag, j->tag, sizeof(tag));
	job_clear(j);
	if (s->closing)
		return;
	resync(s, uid);
	if (missing)
		tagged(s, tag, "NO", "Some of the requested messages no longer exist.");
	else
		tagged(s, tag, "OK", k == JOB_FETCH ? "Fetch completed." : "Store completed.");
}

static void job_start(imap_session *s, enum job_kind k, bool uid, uint32_t *idx, size_t n)
{
	job *j = &s->job;
	j->kind = k;
	j->uid = uid;
	j->idx = idx;
	j->n = n;
	j->pos = 0;
	memcpy(j->tag, s->tag, sizeof(j->tag));
}

/* The items answered first, then the body sections (literals), each in
 * the order asked, as Dovecot does (its "buffered" handlers first). */
static void fetch_order(job *j)
{
	size_t k = 0;
	for (size_t i = 0; i < j->nitems; i++) {
		if (j->items[i].kind == F_SECTION)
			continue;
		fetch_item x = j->items[i];
		memmove(&j->items[k + 1], &j->items[k], (i - k) * sizeof(x));
		j->items[k++] = x;
	}
}

static void cmd_fetch(imap_session *s, const imap_command *c)
{
	uint32_t *idx;
	size_t n;
	const char *err = NULL;
	if (resolve_set(s, c->args, c->uid, &idx, &n, &err) != 0) {
		taggedf(s, s->tag, "BAD", "Error in IMAP command FETCH: %s", err);
		return;
	}
	job *j = &s->job;
	memset(j, 0, sizeof(*j));
	const imap_arg *a = c->args->next;
	int r = 0;
	if (a->type == IMAP_ARG_LIST) {
		for (const imap_arg *i = a->child; i != NULL && r == 0; i = i->next)
			r = fetch_att(j, i->str, i->len, &err);
	} else if (arg_is(a, "ALL") || arg_is(a, "FAST") || arg_is(a, "FULL")) {
		item_add(j, F_FLAGS);
		item_add(j, F_INTERNALDATE);
		item_add(j, F_SIZE);
		if (!arg_is(a, "FAST"))
			item_add(j, F_ENVELOPE);
		if (arg_is(a, "FULL"))
			item_add(j, F_BODY);
	} else {
		r = fetch_att(j, a->str, a->len, &err);
	}
	if (r == 0 && c->argc == 3) {
		r = -1;
		err = "FETCH modifiers are not supported";
	}
	if (r != 0) {
		job_clear(j);
		free(idx);
		taggedf(s, s->tag, "BAD", "Error in IMAP command FETCH: %s", err);
		return;
	}
	fetch_order(j);
	job_start(s, JOB_FETCH, c->uid, idx, n);
	job_run(s);
}

static void cmd_store(imap_session *s, const imap_command *c)
{
	uint32_t *idx;
	size_t n;
	const char *err = NULL;
	const imap_arg *a = c->args->next;
	if (a->type == IMAP_ARG_LIST) {
		tagged(s, s->tag, "BAD", "STORE modifiers are not supported");
		return;
	}
	const char *w = a->str;
	size_t wl = a->len;
	imap_store_mode mode = IMAP_STORE_SET;
	if (wl > 0 && (w[0] == '+' || w[0] == '-')) {
		mode = w[0] == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
		w++;
		wl--;
	}
	bool silent = ieq(w, wl, "FLAGS.SILENT");
	a = a->next;
	uint64_t flags = 0;
	const char *const *kw;
	size_t nkw_before, nkw_after;
	keyword_table(s, &kw, &nkw_before);
	int r = parse_flags(s, a, a->type == IMAP_ARG_LIST, &flags, &err);
	keyword_table(s, &kw, &nkw_after);
	if (nkw_after != nkw_before && !s->readonly) {
		/* a new keyword: the client's list of flags grows (§7.2.6) */
		out_str(s, "* FLAGS ");
		out_all_flags(s, false);
		out_str(s, "\r\n* OK [PERMANENTFLAGS ");
		out_all_flags(s, true);
		out_str(s, "] Flags permitted.\r\n");
	}
	if (r != 0) {
		taggedf(s, s->tag, r == -1 ? "BAD" : "NO", "%s%s",
			r == -1 ? "Error in IMAP command STORE: " : "", err);
		return;
	}
	if (resolve_set(s, c->args, c->uid, &idx, &n, &err) != 0) {
		taggedf(s, s->tag, "BAD", "Error in IMAP command STORE: %s", err);
		return;
	}
	if (s->readonly) {
		free(idx);
		tagged(s, s->tag, "OK", "Store ignored with read-only mailbox.");
		return;
	}
	uint32_t *uids = malloc((n > 0 ? n : 1) * sizeof(*uids));
	uint64_t *nf = calloc(n > 0 ? n : 1, sizeof(*nf));
	if (uids == NULL || nf == NULL)
		abort();
	for (size_t i = 0; i < n; i++)
		uids[i] = s->view.uids[idx[i]];
	if (n > 0 && s->ops->store(s->st, s->sel, uids, n, mode, flags, nf, &err) != 0) {
		free(uids);
		free(nf);
		free(idx);
		taggedf(s, s->tag, "NO", "%.600s", err != NULL ? err : "Store failed");
		return;
	}
	free(uids);
	for (size_t i = 0; i < n; i++)
		s->view.flags[idx[i]] = nf[i];
	if (silent) {
		free(nf);
		free(idx);
		resync(s, c->uid);
		tagged(s, s->tag, "OK", "Store completed.");
		return;
	}
	job *j = &s->job;
	memset(j, 0, sizeof(*j));
	j->flags = nf;
	job_start(s, JOB_STORE, c->uid, idx, n);
	job_run(s);
}

static void cmd_idle(imap_session *s, const imap_command *c)
{
	(void)c;
	s->idling = true;
	memcpy(s->idle_tag, s->tag, sizeof(s->idle_tag));
	imap_parser_idle(s->p);
	out_str(s, "+ idling\r\n");
	resync(s, true);
}

/* ------------------------------------------------------ the command table */

static const struct cmd_def {
	cmd_fn fn;
	int states;
	bool resync;            /* resync before the tagged answer (the
				   others do it themselves, or must not) */
} cmd_table[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = { cmd_capability, ST_NOAUTH | ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_NOOP] = { cmd_noop, ST_NOAUTH | ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_LOGOUT] = { cmd_logout, ST_NOAUTH | ST_AUTH | ST_SELECTED, false },
	[IMAP_CMD_STARTTLS] = { cmd_starttls, ST_NOAUTH, false },
	[IMAP_CMD_AUTHENTICATE] = { cmd_authenticate, ST_NOAUTH, false },
	[IMAP_CMD_LOGIN] = { cmd_login, ST_NOAUTH, false },
	[IMAP_CMD_SELECT] = { cmd_select, ST_AUTH | ST_SELECTED, false },
	[IMAP_CMD_EXAMINE] = { cmd_select, ST_AUTH | ST_SELECTED, false },
	[IMAP_CMD_CREATE] = { cmd_create, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_DELETE] = { cmd_delete, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_RENAME] = { cmd_rename, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_SUBSCRIBE] = { cmd_subscribe, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_UNSUBSCRIBE] = { cmd_subscribe, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_LIST] = { cmd_list, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_LSUB] = { cmd_list, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_STATUS] = { cmd_status, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_APPEND] = { cmd_append, ST_AUTH | ST_SELECTED, true },
	[IMAP_CMD_CHECK] = { cmd_check, ST_SELECTED, true },
	[IMAP_CMD_CLOSE] = { cmd_close, ST_SELECTED, false },
	[IMAP_CMD_EXPUNGE] = { cmd_expunge, ST_SELECTED, false },
	[IMAP_CMD_SEARCH] = { cmd_search, ST_SELECTED, false },
	[IMAP_CMD_FETCH] = { cmd_fetch, ST_SELECTED, false },
	[IMAP_CMD_STORE] = { cmd_store, ST_SELECTED, false },
	[IMAP_CMD_COPY] = { cmd_copy, ST_SELECTED, true },
	[IMAP_CMD_MOVE] = { cmd_copy, ST_SELECTED, false },
	[IMAP_CMD_IDLE] = { cmd_idle, ST_AUTH | ST_SELECTED, false },
	[IMAP_CMD_NAMESPACE] = { cmd_namespace, ST_AUTH | ST_SELECTED, true },
};

static void dispatch(imap_session *s, const imap_command *c)
{
	const struct cmd_def *d = &cmd_table[c->cmd];
	s->cmd_name = c->name;
	s->sync_tag = false;
	if (c->tag_len >= TAG_MAX) {
		out_str(s, "* BAD Tag too long\r\n");
		return;
	}
	memcpy(s->tag, c->tag, c->tag_len + 1);
	if (!(d->states & s->state)) {
		if (s->state == ST_NOAUTH)
			tagged(s, s->tag, "BAD", "Please log in first.");
		else if (d->states == ST_NOAUTH)
			tagged(s, s->tag, "BAD", "Already logged in.");
		else
			tagged(s, s->tag, "BAD", "No mailbox selected.");
		return;
	}
	s->sync_tag = d->resync;
	d->fn(s, c);
	s->sync_tag = false;
}

/* ------------------------------------------------------------- the API */

/* The parser before login is small (LOGIN, AUTHENTICATE and the like:
 * one level of list, a few arguments, literal_max_pre_auth, I1/I2);
 * after login it takes APPEND's literals, long sets and 10,000 ORs (I8).
 * It is replaced between commands, never while one is being read. */
static int parser_for(imap_session *s, bool authed, imap_parser **p_r)
{
	imap_parser_settings ps = {
		.line_max = IMAP_LINE_MAX_DEFAULT,
		.literal_max = s->set.literal_max_pre_auth,
		.cmd_max = s->set.literal_max_pre_auth + IMAP_LINE_MAX_DEFAULT,
		.depth_max = 1,
		.args_max = PRE_AUTH_ARGS_MAX,
	};
	if (authed) {
		ps.line_max = LINE_MAX_SESSION;
		ps.literal_max = s->set.literal_max;
		ps.cmd_max = s->set.literal_max + LINE_MAX_SESSION;
		ps.depth_max = 0;       /* the parser's default, 16 */
		ps.args_max = ARGS_MAX;
	}
	return imap_parser_new(&ps, p_r);
}

int imap_session_new(const imap_session_settings *set,
		     const imap_session_callbacks *cb, void *arg,
		     imap_session **s_r)
{
	*s_r = NULL;
	imap_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	if (set != NULL)
		s->set = *set;
	if (cb != NULL)
		s->cb = *cb;
	s->arg = arg;
	if (s->set.auth_fail_max == 0)
		s->set.auth_fail_max = 3;
	if (s->set.literal_max_pre_auth == 0)
		s->set.literal_max_pre_auth = 8192;
	if (s->set.literal_max == 0)
		s->set.literal_max = 64u * 1024u * 1024u;
	if (s->set.literal_max > IMAP_CMD_MAX_LIMIT - LINE_MAX_SESSION)
		s->set.literal_max = IMAP_CMD_MAX_LIMIT - LINE_MAX_SESSION;
	if (s->set.literal_max_pre_auth > s->set.literal_max)
		s->set.literal_max_pre_auth = s->set.literal_max;
	if (parser_for(s, false, &s->p) != 0) {
		free(s);
		return -1;
	}
	s->state = ST_NOAUTH;
	s->out_max = s->set.literal_max + 2 * IMAP_OUT_CHUNK + OUT_EXTRA;
	*s_r = s;
	return 0;
}

void imap_session_free(imap_session **sp)
{
	if (sp == NULL || *sp == NULL)
		return;
	imap_session *s = *sp;
	job_clear(&s->job);
	imap_mbox_view_free(&s->view);
	imap_parser_free(&s->p);
	wipe(s->sasl_user, sizeof(s->sasl_user));
	free(s->out);
	free(s);
	*sp = NULL;
}

void imap_session_greet(imap_session *s)
{
	out_str(s, "* OK [CAPABILITY ");
	out_caps(s);
	out_str(s, "] ");
	out_str(s, s->set.greeting != NULL ? s->set.greeting : "AfterSMTP bridge ready.");
	out_str(s, "\r\n");
}

static bool blocked(const imap_session *s)
{
	return s->closing || s->login_pending || s->tls_pending ||
	       s->job.kind != JOB_NONE || pending_out(s) >= IMAP_OUT_CHUNK;
}

size_t imap_session_feed(imap_session *s, const uint8_t *data, size_t len)
{
	size_t off = 0;
	if (s->closing)
		return len;             /* nothing more is read */
	while (off < len && !blocked(s)) {
		size_t used = 0;
		if (s->parser_upgrade) {
			imap_parser *np;
			s->parser_upgrade = false;
			if (parser_for(s, true, &np) != 0) {
				bye(s, "Out of memory");
				return len;
			}
			imap_parser_free(&s->p);
			s->p = np;
		}
		imap_parse_status r = imap_parser_feed(s->p, data + off, len - off, &used);
		off += used;
		switch (r) {
		case IMAP_PARSE_MORE:
			break;
		case IMAP_PARSE_CONTINUE:
			out_str(s, "+ OK\r\n");
			break;
		case IMAP_PARSE_COMMAND:
			dispatch(s, imap_parser_command(s->p));
			break;
		case IMAP_PARSE_ERROR: {
			const char *tag = imap_parser_error_tag(s->p);
			if (s->sasl == SASL_NONE && !s->idling)
				s->cmd_name = "";       /* the command was not read */
			if (s->sasl != SASL_NONE) {
				/* a bad AUTHENTICATE response line */
				s->sasl = SASL_NONE;
				tagged(s, s->tag, "BAD", imap_parser_error(s->p));
			} else if (s->idling) {
				s->idling = false;
				tagged(s, s->idle_tag, "BAD", imap_parser_error(s->p));
			} else if (tag != NULL) {
				taggedf(s, tag, "BAD", "Error in IMAP command: %s",
					imap_parser_error(s->p));
			} else {
				out_fmt(s, "* BAD %s\r\n", imap_parser_error(s->p));
			}
			break;
		}
		case IMAP_PARSE_FATAL:
			bye(s, imap_parser_error(s->p));
			return len;
		case IMAP_PARSE_DONE:
			s->idling = false;
			resync(s, true);
			tagged(s, s->idle_tag, "OK", "Idle completed.");
			break;
		case IMAP_PARSE_LINE: {
			size_t ll;
			const char *line = imap_parser_line(s->p, &ll);
			sasl_step(s, line, ll);
			wipe((char *)line, ll);
			break;
		}
		}
		if (used == 0 && r == IMAP_PARSE_MORE)
			break;
	}
	return s->closing ? len : off;
}

void imap_session_login_done(imap_session *s, bool ok,
			     const imap_mbox_ops *store, void *st)
{
	if (!s->login_pending)
		return;
	s->login_pending = false;
	if (s->closing)
		return;
	if (ok && store != NULL) {
		s->ops = store;
		s->st = st;
		s->state = ST_AUTH;
		s->auth_fails = 0;
		s->parser_upgrade = true;       /* before the next command */
		out_str(s, s->tag);
		out_str(s, " OK [CAPABILITY ");
		out_caps(s);
		out_str(s, "] Logged in\r\n");
		log_cmd(s, s->tag, "OK");
		return;
	}
	auth_failed(s, "[AUTHENTICATIONFAILED] Authentication failed.");
}

void imap_session_tls_started(imap_session *s)
{
	s->tls_pending = false;
	s->set.tls_active = true;
	imap_parser_reset(s->p);
}

void imap_session_changed(imap_session *s)
{
	s->changed = true;
	if (s->idling && !s->closing && s->job.kind == JOB_NONE)
		resync(s, true);
}

void imap_session_timeout(imap_session *s)
{
	if (s->closing)
		return;
	bye(s, "Disconnected for inactivity.");
}

size_t imap_session_output(imap_session *s, const uint8_t **out_r)
{
	if (pending_out(s) == 0 && s->job.kind != JOB_NONE)
		job_run(s);
	*out_r = s->out + s->out_off;
	return pending_out(s);
}

void imap_session_output_consumed(imap_session *s, size_t n)
{
	if (n > pending_out(s))
		n = pending_out(s);
	s->out_off += n;
	if (s->out_off == s->out_len) {
		s->out_off = s->out_len = 0;
		/* keep memory near a chunk once a big answer is gone */
		if (s->out_cap > 2 * IMAP_OUT_CHUNK) {
			free(s->out);
			s->out = NULL;
			s->out_cap = 0;
		}
	}
}

bool imap_session_closing(const imap_session *s)
{
	return s->closing;
}

bool imap_session_idling(const imap_session *s)
{
	return s->idling;
}

const char *imap_session_selected(const imap_session *s)
{
	return s->state == ST_SELECTED ? s->sel : NULL;
}
