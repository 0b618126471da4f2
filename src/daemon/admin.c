/*
 * admin.c — the admin channel's driver on libuv (admin.h): the listening
 * socket, connections, the command table and its handlers.  The bytes are
 * parsed by admin-proto.c; this file only moves them.
 *
 * A connection answers one request at a time: while a response is being
 * written it does not read (the bytes already read wait in its input
 * buffer), so a client cannot make it queue output, and `map list`, which
 * can be as long as a 64 MiB table, is written in chunks of about
 * OUT_CHUNK bytes from a snapshot held until the listing ends; `queue
 * list` and `queue show` likewise from the rows read for them.
 *
 * Handles: the listener, and per connection its pipe and its idle timer.
 * admin_stop closes them all; the struct is freed by the last close
 * callback.
 */
#define _GNU_SOURCE /* accept4 flags, struct ucred */
#include "admin.h"

#include "log.h"
#include "util.h"

#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define OUT_CHUNK (64u * 1024u)
#define OUT_CAP (OUT_CHUNK + ADMIN_REPLY_LINE_MAX)
#define IN_CHUNK 4096u

typedef struct aconn aconn;

struct admin {
	uv_loop_t *loop;
	uv_pipe_t listener;
	int dirfd;               /* data_dir, for the socket's name */
	char path[PATH_MAX];     /* for messages */
	dev_t dev;               /* the socket file we made */
	ino_t ino;
	mapset *maps;
	const cfg *(*conf)(void *arg);
	void *arg;
	store *st;
	void (*queue_changed)(void *arg);
	void (*log_stats)(void *arg, tlog_stats *st);
	void (*log_sign)(void *arg);
	aconn *conns;
	size_t n_conns;          /* served (not refused) connections */
	size_t handles;          /* open handles, the listener included */
	bool stopping;
	unsigned long next_id;
};

struct aconn {
	admin *a;
	aconn *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer;
	unsigned long id;
	unsigned long uid, pid;
	unsigned open_handles;   /* the pipe and the timer until closed */
	bool refused;            /* over the limit or not allowed: close */
	bool closing;
	bool busy;               /* a response is being written */
	bool close_after;        /* close once the response is written */
	admin_reader rd;
	uint8_t in[IN_CHUNK];    /* read, not yet parsed */
	size_t in_off, in_len;
	char *out;               /* OUT_CAP bytes */
	size_t out_len;
	uv_write_t wr;
	/* `map list` in progress */
	const mapset_snap *snap;
	maps_kind kind;
	struct lent *order;
	size_t n_order, pos, n_file, n_config, n_run;
	/* `queue list` / `queue show` in progress (q_more != NULL) */
	void (*q_more)(aconn *c);
	mailq_item *q_items;     /* list: the rows; show: the entry */
	size_t q_n, q_pos;
	size_t q_shown;          /* list: the rows to write (<= q_n) */
	bool q_cut;              /* list: the limit was reached */
	int q_phase;             /* show: metadata, recipients, headers */
	char *q_hdr;             /* show: the header section (wiped) */
	size_t q_hdr_len, q_hdr_pos;
	bool q_hdr_cut;
	size_t q_body_len;
};

typedef struct lent {
	unsigned line;
	size_t idx;
} lent;

static void conn_close(aconn *c);
static void conn_process(aconn *c);
static void resume_reading(aconn *c);
static void queue_end(aconn *c);

/* ------------------------------------------------------------ output */

static void out_line(aconn *c, const char *prefix, const char *text,
		     bool tabs_ok)
{
	if (c->out == NULL) {
		c->out = malloc(OUT_CAP);
		if (c->out == NULL) {
			log_msg(LOG_CRIT, "msg=\"admin: out of memory\"");
			abort();
		}
	}
	if (OUT_CAP - c->out_len < ADMIN_REPLY_LINE_MAX + 1) {
		/* a bug: callers stop at OUT_CHUNK */
		log_msg(LOG_CRIT, "msg=\"admin: output overflow\"");
		abort();
	}
	c->out_len += admin_format_reply(c->out + c->out_len,
					 OUT_CAP - c->out_len, prefix, text,
					 tabs_ok);
}

static void outf(aconn *c, const char *prefix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void outf(aconn *c, const char *prefix, const char *fmt, ...)
{
	char text[ADMIN_REPLY_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		text[0] = '\0';
	out_line(c, prefix, text, true);
}

static void idle_restart(aconn *c);

static void list_more(aconn *c);

static void write_cb(uv_write_t *w, int status)
{
	aconn *c = w->data;
	c->out_len = 0;
	if (status != 0 || c->closing) {
		if (!c->closing)
			conn_close(c);
		return;
	}
	idle_restart(c);
	if (c->snap != NULL) {
		list_more(c);
		return;
	}
	if (c->q_more != NULL) {
		c->q_more(c);
		return;
	}
	c->busy = false;
	if (c->close_after || c->refused) {
		conn_close(c);
		return;
	}
	conn_process(c);
}

/* Write what out holds; the connection stays busy until it is written. */
static void flush(aconn *c)
{
	c->busy = true;
	uv_buf_t b = uv_buf_init(c->out, (unsigned)c->out_len);
	c->wr.data = c;
	int r = uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
	if (r != 0) {
		log_msg(LOG_DEBUG, "msg=\"admin: write failed\" conn=%lu "
			"error=\"%s\"", c->id, uv_strerror(r));
		conn_close(c);
	}
}

/* ------------------------------------------------------------ commands */

static bool table_arg(aconn *c, const char *name, maps_kind *k)
{
	if (maps_kind_from_name(name, k))
		return true;
	outf(c, "error", "unknown table '%.100s' (access, relay, virtual, "
	     "canonical, transport)", name);
	return false;
}

static const char *origin_name(mapset_origin o)
{
	switch (o) {
	case MAPSET_ORIGIN_FILE: return "file";
	case MAPSET_ORIGIN_CONFIG: return "config";
	case MAPSET_ORIGIN_RUNTIME: return "run-time";
	}
	return "?";
}

static void cmd_help(aconn *c, const admin_req *r, size_t a0);

static void cmd_map_add(aconn *c, const admin_req *r, size_t a0)
{
	maps_kind k;
	char err[MAPSET_ERROR_MAX], q[LOG_QUOTE_MAX];
	if (!table_arg(c, r->f[a0], &k))
		return;
	const char *value = r->n > a0 + 2 ? r->f[a0 + 2] : "";
	if (mapset_add(c->a->maps, k, r->f[a0 + 1], value, err) != 0) {
		out_line(c, "error", err, false);
		return;
	}
	log_msg(LOG_NOTICE, "msg=\"map entry added\" table=%s key=%s uid=%lu",
		maps_kind_name(k),
		log_quote(r->f[a0 + 1], r->len[a0 + 1], q), c->uid);
	outf(c, "ok", "added to %s", maps_kind_name(k));
}

static void cmd_map_del(aconn *c, const admin_req *r, size_t a0)
{
	maps_kind k;
	char err[MAPSET_ERROR_MAX], q[LOG_QUOTE_MAX];
	if (!table_arg(c, r->f[a0], &k))
		return;
	if (mapset_del(c->a->maps, k, r->f[a0 + 1], err) != 0) {
		out_line(c, "error", err, false);
		return;
	}
	log_msg(LOG_NOTICE, "msg=\"map entry deleted\" table=%s key=%s "
		"uid=%lu", maps_kind_name(k),
		log_quote(r->f[a0 + 1], r->len[a0 + 1], q), c->uid);
	outf(c, "ok", "deleted from %s", maps_kind_name(k));
}

static int lent_cmp(const void *pa, const void *pb)
{
	const lent *a = pa, *b = pb;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void list_end(aconn *c)
{
	mapset_put(c->snap);
	c->snap = NULL;
	free(c->order);
	c->order = NULL;
	c->n_order = c->pos = 0;
}

/* The next chunk of a listing (and, at its end, the final line). */
static void list_more(aconn *c)
{
	const maps_table *t = c->snap->t[c->kind];
	while (c->pos < c->n_order && c->out_len < OUT_CHUNK) {
		maps_match m;
		if (!maps_table_entry(t, c->order[c->pos++].idx, &m))
			continue;
		mapset_origin o = mapset_entry_origin(c->snap, c->kind, &m);
		char line[16] = "-";
		if (o != MAPSET_ORIGIN_RUNTIME)
			snprintf(line, sizeof(line), "%u", m.line);
		outf(c, "*", "%s\t%s\t%s\t%s", origin_name(o), line, m.key,
		     m.value);
	}
	if (c->pos == c->n_order) {
		const char *src = mapset_source(c->snap, c->kind);
		outf(c, "ok", "%s: %zu entries: %zu from %s, %zu run-time",
		     maps_kind_name(c->kind), c->n_order,
		     c->n_file + c->n_config,
		     src[0] != '\0' ? src : "no file", c->n_run);
		list_end(c);
	}
	flush(c);
}

static void cmd_map_list(aconn *c, const admin_req *r, size_t a0)
{
	maps_kind k;
	if (!table_arg(c, r->f[a0], &k))
		return;
	c->snap = mapset_get(c->a->maps);
	c->kind = k;
	const maps_table *t = c->snap->t[k];
	size_t n = maps_table_count(t);
	c->order = calloc(n == 0 ? 1 : n, sizeof(*c->order));
	if (c->order == NULL) {
		log_msg(LOG_CRIT, "msg=\"admin: out of memory\"");
		abort();
	}
	c->n_file = c->n_config = c->n_run = 0;
	for (size_t i = 0; i < n; i++) {
		maps_match m;
		if (!maps_table_entry(t, i, &m))
			break;
		mapset_origin o = mapset_entry_origin(c->snap, k, &m);
		*(o == MAPSET_ORIGIN_RUNTIME ? &c->n_run
		  : o == MAPSET_ORIGIN_CONFIG ? &c->n_config : &c->n_file) += 1;
		c->order[c->n_order++] = (lent){ .line = m.line, .idx = i };
	}
	qsort(c->order, c->n_order, sizeof(*c->order), lent_cmp);
	c->pos = 0;
	/* list_more writes; the dispatcher must not */
}

static void cmd_map_test(aconn *c, const admin_req *r, size_t a0)
{
	maps_kind k;
	if (!table_arg(c, r->f[a0], &k))
		return;
	const mapset_snap *s = mapset_get(c->a->maps);
	maps_test_result *res = calloc(1, sizeof(*res));
	if (res == NULL) {
		log_msg(LOG_CRIT, "msg=\"admin: out of memory\"");
		abort();
	}
	if (maps_test(s->t[k], r->f[a0 + 1], res) != 0) {
		out_line(c, "error", "the query is too long", false);
	} else {
		if (res->found) {
			mapset_origin o = mapset_entry_origin(s, k, &res->match);
			const char *src = mapset_source(s, k);
			char where[PATH_MAX + 40];
			if (o == MAPSET_ORIGIN_RUNTIME)
				snprintf(where, sizeof(where), "run-time entry");
			else if (o == MAPSET_ORIGIN_CONFIG)
				snprintf(where, sizeof(where), "%s, item %u", src,
					 res->match.line);
			else
				snprintf(where, sizeof(where), "%s, line %u", src,
					 res->match.line);
			outf(c, "*", "match\t%s\t%s\t%s\t%s", res->match.key,
			     maps_form_name(res->match.form), origin_name(o),
			     where);
		}
		out_line(c, "ok", res->result, false);
	}
	free(res);
	mapset_put(s);
}

static void cmd_map_reload(aconn *c, const admin_req *r, size_t a0)
{
	(void)r;
	(void)a0;
	char err[MAPSET_ERROR_MAX];
	if (mapset_reload(c->a->maps, c->a->conf(c->a->arg), err) != 0) {
		log_msg(LOG_ERR, "msg=\"map reload refused; the old tables stay\" "
			"error=\"%s\" uid=%lu", err, c->uid);
		out_line(c, "error", err, false);
		return;
	}
	log_msg(LOG_NOTICE, "msg=\"maps reloaded\" uid=%lu", c->uid);
	out_line(c, "ok", "tables reloaded", false);
}

/* ------------------------------------------------------------ queue */

static const char *const lane_names[MAILQ_LANES] = { "critical", "normal",
						     "bulk" };
static const char *const state_names[] = { "active", "deferred", "hold",
					   "bounced" };

static const char *lane_name(unsigned lane)
{
	return lane < MAILQ_LANES ? lane_names[lane] : "?";
}

static const char *state_name(mailq_state st)
{
	return (unsigned)st < 4 ? state_names[st] : "?";
}

/* One data line of fields joined by TAB (a TAB inside a field becomes a
 * space; NULL is empty). */
static void out_fields(aconn *c, const char *const *f, size_t n)
{
	char line[ADMIN_REPLY_LINE_MAX];
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && o + 1 < sizeof(line))
			line[o++] = '\t';
		for (const char *p = f[i] != NULL ? f[i] : "";
		     *p != '\0' && o + 1 < sizeof(line); p++)
			line[o++] = *p == '\t' ? ' ' : *p;
	}
	line[o] = '\0';
	out_line(c, "*", line, true);
}

static void out_kv(aconn *c, const char *key, const char *value)
{
	const char *f[2] = { key, value };
	out_fields(c, f, 2);
}

static void out_kv_u64(aconn *c, const char *key, uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%" PRIu64, v);
	out_kv(c, key, b);
}

static bool queue_ready(aconn *c)
{
	if (c->a->st != NULL)
		return true;
	out_line(c, "error", "this node has no mail queue", false);
	return false;
}

/* "all" (0) or 1..16 hex digits, not 0, below 2^63. */
static bool queue_id_arg(aconn *c, const char *s, bool all_ok, uint64_t *id)
{
	size_t n = strlen(s);
	if (all_ok && strcmp(s, "all") == 0) {
		*id = 0;
		return true;
	}
	uint64_t v = 0;
	bool ok = n >= 1 && n <= 16;
	for (size_t i = 0; ok && i < n; i++) {
		char ch = s[i];
		unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0')
			     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
			     : ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10)
						      : 16u;
		ok = d < 16;
		v = v << 4 | d;
	}
	if (!ok || v == 0 || v > INT64_MAX) {
		outf(c, "error", "bad queue ID '%.40s' (16 hex digits%s)", s,
		     all_ok ? ", or all" : "");
		return false;
	}
	*id = v;
	return true;
}

static void queue_end(aconn *c)
{
	mailq_items_free(c->q_items, c->q_n);
	c->q_items = NULL;
	c->q_n = c->q_pos = c->q_shown = 0;
	if (c->q_hdr != NULL) {
		memset(c->q_hdr, 0, c->q_hdr_len);
		free(c->q_hdr);
		c->q_hdr = NULL;
	}
	c->q_hdr_len = c->q_hdr_pos = 0;
	c->q_more = NULL;
}

/* The entry's last reply, else its first recipient's. */
static const char *item_reply(const mailq_item *it)
{
	if (it->last_reply != NULL)
		return it->last_reply;
	for (size_t i = 0; i < it->n_rcpts; i++) {
		if (it->rcpts[i].last_reply != NULL)
			return it->rcpts[i].last_reply;
	}
	return "";
}

static void queue_list_more(aconn *c)
{
	while (c->q_pos < c->q_shown && c->out_len < OUT_CHUNK) {
		const mailq_item *it = &c->q_items[c->q_pos++];
		char id[17], att[12], next[24], cre[24], exp[24], nr[24];
		snprintf(id, sizeof(id), "%016" PRIx64, it->id);
		snprintf(att, sizeof(att), "%u", it->attempts);
		snprintf(next, sizeof(next), "%" PRIu64, it->next_attempt);
		snprintf(cre, sizeof(cre), "%" PRIu64, it->created);
		snprintf(exp, sizeof(exp), "%" PRIu64, it->expires);
		snprintf(nr, sizeof(nr), "%zu", it->n_rcpts);
		const char *f[] = {
			id, lane_name(it->lane), state_name(it->state), att,
			next, cre, exp, it->domain,
			it->sender != NULL && it->sender[0] != '\0' ? it->sender
								    : "<>",
			nr, item_reply(it),
		};
		out_fields(c, f, sizeof(f) / sizeof(f[0]));
	}
	if (c->q_pos == c->q_shown) {
		outf(c, "ok", "%zu %s%s", c->q_shown,
		     c->q_shown == 1 ? "entry" : "entries",
		     c->q_cut ? " (limit reached)" : "");
		queue_end(c);
	}
	flush(c);
}

static bool word_is(const char *s, const char *key, const char **v)
{
	size_t k = strlen(key);
	if (strncmp(s, key, k) != 0 || s[k] != '=')
		return false;
	*v = s + k + 1;
	return true;
}

static int name_index(const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	}
	return -1;
}

static void cmd_queue_list(aconn *c, const admin_req *r, size_t a0)
{
	if (!queue_ready(c))
		return;
	mailq_filter f = { .state = -1, .lane = -1, .domain = NULL,
			   .limit = ADMIN_QUEUE_LIST_DEFAULT };
	for (size_t i = a0; i < r->n; i++) {
		const char *v;
		uint64_t lim;
		if (word_is(r->f[i], "state", &v)) {
			f.state = name_index(v, state_names, 4);
			if (f.state < 0) {
				outf(c, "error", "unknown state '%.40s' (active, "
				     "deferred, hold, bounced)", v);
				return;
			}
		} else if (word_is(r->f[i], "lane", &v)) {
			f.lane = name_index(v, lane_names, MAILQ_LANES);
			if (f.lane < 0) {
				outf(c, "error", "unknown lane '%.40s' (critical, "
				     "normal, bulk)", v);
				return;
			}
		} else if (word_is(r->f[i], "domain", &v)) {
			if (v[0] == '\0' || strlen(v) > 255) {
				out_line(c, "error", "bad domain", false);
				return;
			}
			f.domain = v;
		} else if (word_is(r->f[i], "limit", &v)) {
			if (!util_parse_u64(v, 1, ADMIN_QUEUE_LIST_MAX, &lim)) {
				outf(c, "error", "limit: a number from 1 to %u",
				     ADMIN_QUEUE_LIST_MAX);
				return;
			}
			f.limit = (size_t)lim;
		} else {
			outf(c, "error", "unknown filter '%.60s' (state=, lane=, "
			     "domain=, limit=)", r->f[i]);
			return;
		}
	}
	/* one more than shown, to know whether the limit cut the list */
	size_t want = f.limit;
	f.limit = want + 1;
	mailq_item *items;
	size_t n;
	if (store_mailq_list(c->a->st, &f, &items, &n) != 0) {
		out_line(c, "error", "the mail queue cannot be read (see the "
			 "node's log)", false);
		return;
	}
	c->q_cut = n > want;
	c->q_items = items;
	c->q_n = n;
	c->q_shown = c->q_cut ? want : n;
	c->q_pos = 0;
	c->q_more = queue_list_more;
	/* queue_list_more writes; the dispatcher must not */
}

static void notify_str(unsigned nt, char *b, size_t bs)
{
	static const struct {
		unsigned bit;
		const char *name;
	} bits[] = { { MAILQ_NOTIFY_NEVER, "never" },
		     { MAILQ_NOTIFY_SUCCESS, "success" },
		     { MAILQ_NOTIFY_FAILURE, "failure" },
		     { MAILQ_NOTIFY_DELAY, "delay" } };
	size_t o = 0;
	b[0] = '\0';
	if (nt == 0) {
		snprintf(b, bs, "-");
		return;
	}
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if ((nt & bits[i].bit) == 0)
			continue;
		int k = snprintf(b + o, bs - o, "%s%s", o > 0 ? "," : "",
				 bits[i].name);
		if (k < 0 || (size_t)k >= bs - o)
			break;
		o += (size_t)k;
	}
}

/* The next line of the header section (CR before LF dropped): false at
 * its end. */
static bool next_header(aconn *c, char *line, size_t size)
{
	if (c->q_hdr_pos >= c->q_hdr_len)
		return false;
	const char *p = c->q_hdr + c->q_hdr_pos;
	size_t left = c->q_hdr_len - c->q_hdr_pos;
	const char *nl = memchr(p, '\n', left);
	size_t n = nl != NULL ? (size_t)(nl - p) : left;
	c->q_hdr_pos += nl != NULL ? n + 1 : n;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n >= size)
		n = size - 1;
	memcpy(line, p, n);
	line[n] = '\0';
	return true;
}

static void queue_show_more(aconn *c)
{
	const mailq_item *it = &c->q_items[0];
	char b[64];
	if (c->q_phase == 0) {
		snprintf(b, sizeof(b), "%016" PRIx64, it->id);
		out_kv(c, "id", b);
		out_kv(c, "domain", it->domain);
		out_kv(c, "lane", lane_name(it->lane));
		out_kv(c, "state", state_name(it->state));
		out_kv_u64(c, "attempts", it->attempts);
		out_kv(c, "warned", it->warned ? "yes" : "no");
		out_kv_u64(c, "created", it->created);
		out_kv_u64(c, "expires", it->expires);
		out_kv_u64(c, "next_attempt", it->next_attempt);
		out_kv(c, "sender", it->sender != NULL && it->sender[0] != '\0'
					    ? it->sender : "<>");
		out_kv(c, "sender_did", it->sender_did);
		out_kv(c, "envid", it->envid);
		out_kv(c, "ret", it->ret == 1 ? "full" : it->ret == 2 ? "hdrs"
								       : "-");
		out_kv(c, "msgid", it->msgid);
		out_kv(c, "last_reply", it->last_reply);
		out_kv_u64(c, "body_bytes", c->q_body_len);
		c->q_phase = 1;
		c->q_pos = 0;
	}
	while (c->q_phase == 1 && c->out_len < OUT_CHUNK) {
		if (c->q_pos == it->n_rcpts) {
			c->q_phase = 2;
			break;
		}
		const struct mailq_item_rcpt *rc = &it->rcpts[c->q_pos++];
		notify_str(rc->notify, b, sizeof(b));
		const char *f[] = { "rcpt", rc->addr, rc->orcpt, b,
				    rc->last_reply };
		out_fields(c, f, sizeof(f) / sizeof(f[0]));
	}
	while (c->q_phase == 2 && c->out_len < OUT_CHUNK) {
		static char line[ADMIN_REPLY_LINE_MAX];
		if (!next_header(c, line, sizeof(line))) {
			c->q_phase = 3;
			break;
		}
		out_kv(c, "header", line);
	}
	if (c->q_phase == 3) {
		if (c->q_hdr_cut)
			out_kv_u64(c, "header-cut", ADMIN_QUEUE_HEADER_MAX);
		snprintf(b, sizeof(b), "%016" PRIx64, it->id);
		out_line(c, "ok", b, false);
		queue_end(c);
	}
	flush(c);
}

/* The header section of body: up to (not including) the empty line that
 * ends it, at most ADMIN_QUEUE_HEADER_MAX bytes (*cut_r when longer). */
static size_t header_len(const uint8_t *body, size_t len, bool *cut_r)
{
	size_t max = len < ADMIN_QUEUE_HEADER_MAX ? len : ADMIN_QUEUE_HEADER_MAX;
	size_t line = 0;
	for (size_t i = 0; i < max; i++) {
		if (body[i] != '\n')
			continue;
		size_t ll = i - line; /* the line without its LF */
		if (ll == 0 || (ll == 1 && body[line] == '\r')) {
			*cut_r = false;
			return line;
		}
		line = i + 1;
	}
	*cut_r = len > max;
	return max;
}

static void cmd_queue_show(aconn *c, const admin_req *r, size_t a0)
{
	uint64_t id;
	if (!queue_ready(c) || !queue_id_arg(c, r->f[a0], false, &id))
		return;
	mailq_item *it;
	int g = store_mailq_get(c->a->st, id, true, &it);
	if (g != 0) {
		outf(c, "error", g > 0 ? "no queue entry %016" PRIx64
				       : "the mail queue cannot be read (entry "
					 "%016" PRIx64 ")", id);
		return;
	}
	c->q_items = it;
	c->q_n = 1;
	c->q_phase = 0;
	c->q_body_len = it->body_len;
	if (it->body != NULL) {
		size_t n = header_len(it->body, it->body_len, &c->q_hdr_cut);
		c->q_hdr = malloc(n + 1);
		if (c->q_hdr == NULL) {
			log_msg(LOG_CRIT, "msg=\"admin: out of memory\"");
			abort();
		}
		memcpy(c->q_hdr, it->body, n);
		c->q_hdr_len = n;
		c->q_hdr_pos = 0;
		/* the rest of the body is not kept */
		sodium_memzero(it->body, it->body_len);
		free(it->body);
		it->body = NULL;
		it->body_len = 0;
	}
	c->q_more = queue_show_more;
}

static void queue_log(aconn *c, const char *what, uint64_t id, int n)
{
	if (id != 0)
		log_msg(LOG_NOTICE, "msg=\"mail queue: %s\" id=%016" PRIx64
			" changed=%d uid=%lu", what, id, n, c->uid);
	else
		log_msg(LOG_NOTICE, "msg=\"mail queue: %s\" id=all changed=%d "
			"uid=%lu", what, n, c->uid);
}

/* hold, release, delete: one entry or all */
static void queue_change(aconn *c, const admin_req *r, size_t a0,
			 const char *verb)
{
	uint64_t id;
	if (!queue_ready(c) || !queue_id_arg(c, r->f[a0], true, &id))
		return;
	store *st = c->a->st;
	int n;
	if (strcmp(verb, "held") == 0)
		n = store_mailq_hold(st, id);
	else if (strcmp(verb, "released") == 0)
		n = store_mailq_release(st, id, (uint64_t)time(NULL));
	else
		n = store_mailq_delete(st, id);
	if (n < 0) {
		out_line(c, "error", "the mail queue cannot be changed (see the "
			 "node's log)", false);
		return;
	}
	queue_log(c, verb, id, n);
	if (n > 0 && strcmp(verb, "released") == 0 &&
	    c->a->queue_changed != NULL)
		c->a->queue_changed(c->a->arg);
	if (n == 0 && id != 0) {
		mailq_item *it;
		int g = store_mailq_get(st, id, false, &it);
		if (g == 1) {
			outf(c, "error", "no queue entry %016" PRIx64, id);
			return;
		}
		if (g == 0) {
			outf(c, "ok", "0 entries %s (%016" PRIx64 " is %s)", verb,
			     id, state_name(it->state));
			mailq_items_free(it, 1);
			return;
		}
	}
	outf(c, "ok", "%d %s %s", n, n == 1 ? "entry" : "entries", verb);
}

static void cmd_queue_hold(aconn *c, const admin_req *r, size_t a0)
{
	queue_change(c, r, a0, "held");
}

static void cmd_queue_release(aconn *c, const admin_req *r, size_t a0)
{
	queue_change(c, r, a0, "released");
}

static void cmd_queue_delete(aconn *c, const admin_req *r, size_t a0)
{
	queue_change(c, r, a0, "deleted");
}

static void cmd_queue_flush(aconn *c, const admin_req *r, size_t a0)
{
	(void)r;
	(void)a0;
	if (!queue_ready(c))
		return;
	int n = store_mailq_flush(c->a->st, (uint64_t)time(NULL));
	if (n < 0) {
		out_line(c, "error", "the mail queue cannot be changed (see the "
			 "node's log)", false);
		return;
	}
	queue_log(c, "flushed", 0, n);
	if (c->a->queue_changed != NULL)
		c->a->queue_changed(c->a->arg);
	outf(c, "ok", "%d deferred %s due now", n, n == 1 ? "entry" : "entries");
}

static void cmd_queue_stats(aconn *c, const admin_req *r, size_t a0)
{
	(void)r;
	(void)a0;
	if (!queue_ready(c))
		return;
	mailq_stats st;
	if (store_mailq_stats(c->a->st, &st) != 0) {
		out_line(c, "error", "the mail queue cannot be read (see the "
			 "node's log)", false);
		return;
	}
	for (unsigned l = 0; l < MAILQ_LANES; l++)
		outf(c, "*", "%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
		     "\t%" PRIu64, lane_names[l], st.count[l][MAILQ_ACTIVE],
		     st.count[l][MAILQ_DEFERRED], st.count[l][MAILQ_HOLD],
		     st.count[l][MAILQ_BOUNCED], st.oldest[l]);
	outf(c, "*", "bytes\t%" PRIu64, st.bytes);
	out_line(c, "ok", "", false);
}

/* ---------------------------------------------------------------- log */

static void hex32(const uint8_t h[32], char out[65])
{
	sodium_bin2hex(out, 65, h, 32);
}

static void cmd_log_status(aconn *c, const admin_req *r, size_t a0)
{
	(void)r;
	(void)a0;
	uint64_t size;
	uint8_t root[32];
	amp_log_head h;
	char hex[65];
	if (c->a->st == NULL || c->a->log_stats == NULL ||
	    store_log_state(c->a->st, &size, root) != 0) {
		out_line(c, "error", "the log cannot be read (see the node's "
			 "log)", false);
		return;
	}
	outf(c, "*", "size\t%" PRIu64, size);
	int f = store_log_head_latest(c->a->st, &h);
	if (f == 1) {
		store_cosig cs[STORE_COSIG_MAX];
		size_t n = 0;
		hex32(h.root, hex);
		outf(c, "*", "head\t%" PRIu64 "\t%" PRIu64 "\t%s", h.size,
		     h.time, hex);
		if (store_log_cosigs(c->a->st, h.size, cs, STORE_COSIG_MAX,
				     &n) == 0)
			for (size_t i = 0; i < n; i++)
				outf(c, "*", "cosigned\t%s\t%" PRIu64,
				     cs[i].witness, cs[i].time);
	}
	tlog_stats ts;
	c->a->log_stats(c->a->arg, &ts);
	outf(c, "*", "heads_signed\t%" PRIu64, ts.heads_signed);
	outf(c, "*", "witness_cosigned\t%" PRIu64, ts.cosigned);
	outf(c, "*", "witness_failures\t%" PRIu64, ts.witness_failures);
	outf(c, "*", "witness_alarms\t%" PRIu64, ts.alarms);
	out_line(c, "ok", "", false);
}

static void cmd_log_alarms(aconn *c, const admin_req *r, size_t a0)
{
	uint64_t max = 100;
	if (r->n > a0 && !util_parse_u64(r->f[a0], 1, 10000, &max)) {
		out_line(c, "error", "N is 1 to 10000", false);
		return;
	}
	store_alarm *al = calloc((size_t)max, sizeof(*al));
	size_t n = 0;
	if (c->a->st == NULL || al == NULL ||
	    store_log_alarms(c->a->st, al, (size_t)max, &n) != 0) {
		free(al);
		out_line(c, "error", "the alarms cannot be read", false);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char hr[65], gr[65];
		hex32(al[i].had.root, hr);
		hex32(al[i].got.root, gr);
		outf(c, "*", "%" PRIu64 "\t%" PRIu64 "\t%s\t%s\t%" PRIu64 "\t%s"
		     "\t%" PRIu64 "\t%s", al[i].id, al[i].at, al[i].got.log,
		     al[i].reason, al[i].had.size, hr, al[i].got.size, gr);
	}
	free(al);
	out_line(c, "ok", "", false);
}

static void cmd_log_sign(aconn *c, const admin_req *r, size_t a0)
{
	(void)r;
	(void)a0;
	if (c->a->log_sign == NULL) {
		out_line(c, "error", "no transparency log here", false);
		return;
	}
	c->a->log_sign(c->a->arg);
	out_line(c, "ok", "", false);
}

typedef struct admin_cmd {
	const char *group;     /* first word */
	const char *name;      /* second word, or NULL */
	size_t min_args, max_args;
	const char *usage;
	void (*fn)(aconn *c, const admin_req *r, size_t a0);
} admin_cmd;

static const admin_cmd cmds[] = {
	{ "help", NULL, 0, 0, "help", cmd_help },
	{ "map", "add", 2, 3, "map add TABLE KEY [VALUE]", cmd_map_add },
	{ "map", "del", 2, 2, "map del TABLE KEY", cmd_map_del },
	{ "map", "list", 1, 1, "map list TABLE", cmd_map_list },
	{ "map", "test", 2, 2, "map test TABLE QUERY", cmd_map_test },
	{ "map", "reload", 0, 0, "map reload", cmd_map_reload },
	{ "queue", "list", 0, 4,
	  "queue list [state=S] [lane=L] [domain=D] [limit=N]", cmd_queue_list },
	{ "queue", "show", 1, 1, "queue show ID", cmd_queue_show },
	{ "log", "status", 0, 0, "log status", cmd_log_status },
	{ "log", "alarms", 0, 1, "log alarms [N]", cmd_log_alarms },
	{ "log", "sign", 0, 0, "log sign", cmd_log_sign },
	{ "queue", "flush", 0, 0, "queue flush", cmd_queue_flush },
	{ "queue", "hold", 1, 1, "queue hold ID|all", cmd_queue_hold },
	{ "queue", "release", 1, 1, "queue release ID|all", cmd_queue_release },
	{ "queue", "delete", 1, 1, "queue delete ID|all", cmd_queue_delete },
	{ "queue", "stats", 0, 0, "queue stats", cmd_queue_stats },
};

static void cmd_help(aconn *c, const admin_req *r, size_t a0)
{
	(void)r;
	(void)a0;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		out_line(c, "*", cmds[i].usage, false);
	out_line(c, "ok", "fields are separated by TAB; TABLE: access, relay, "
		 "virtual, canonical, transport; ID: 16 hex digits", false);
}

static void dispatch(aconn *c, const admin_req *r)
{
	const admin_cmd *cmd = NULL;
	bool group_known = false;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const admin_cmd *x = &cmds[i];
		if (strcmp(r->f[0], x->group) != 0)
			continue;
		group_known = true;
		if (x->name == NULL ||
		    (r->n > 1 && strcmp(r->f[1], x->name) == 0)) {
			cmd = x;
			break;
		}
	}
	if (cmd == NULL) {
		char q[LOG_QUOTE_MAX];
		const char *w = group_known && r->n > 1 ? r->f[1] : r->f[0];
		size_t wl = group_known && r->n > 1 ? r->len[1] : r->len[0];
		log_msg(LOG_INFO, "msg=\"admin: unknown command\" conn=%lu "
			"command=%s", c->id, log_quote(w, wl, q));
		outf(c, "error", "unknown command '%.100s' (try help)", w);
		flush(c);
		return;
	}
	size_t a0 = cmd->name != NULL ? 2 : 1;
	size_t nargs = r->n - a0;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		outf(c, "error", "usage: %s", cmd->usage);
		flush(c);
		return;
	}
	log_msg(LOG_DEBUG, "msg=\"admin request\" conn=%lu command=\"%s%s%s\"",
		c->id, cmd->group, cmd->name != NULL ? " " : "",
		cmd->name != NULL ? cmd->name : "");
	cmd->fn(c, r, a0);
	if (c->snap != NULL)
		list_more(c); /* writes, and goes on from write_cb */
	else if (c->q_more != NULL)
		c->q_more(c); /* likewise */
	else
		flush(c);
}

/* ------------------------------------------------------------ connections */

static void conn_process(aconn *c)
{
	while (!c->busy && !c->closing && c->in_len > 0) {
		admin_req r;
		const char *why = NULL;
		const uint8_t *p = c->in + c->in_off;
		size_t n = c->in_len;
		int k = admin_reader_next(&c->rd, &p, &n, &r, &why);
		c->in_off += c->in_len - n;
		c->in_len = n;
		if (k == ADMIN_REQ) {
			dispatch(c, &r);
		} else if (k == ADMIN_BAD) {
			log_msg(LOG_INFO, "msg=\"admin: request refused\" conn=%lu "
				"error=\"%s\"", c->id, why);
			out_line(c, "error", why, false);
			flush(c);
		}
	}
	if (c->in_len == 0)
		c->in_off = 0;
	if (!c->busy && !c->closing && c->in_len == 0)
		resume_reading(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	aconn *c = h->data;
	/* reading happens only when everything read before was parsed */
	*buf = uv_buf_init((char *)c->in, (unsigned)sizeof(c->in));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	aconn *c = s->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_msg(LOG_DEBUG, "msg=\"admin: read failed\" conn=%lu "
				"error=\"%s\"", c->id, uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	uv_read_stop(s);
	idle_restart(c);
	c->in_off = 0;
	c->in_len = (size_t)nread;
	conn_process(c);
}

static void resume_reading(aconn *c)
{
	if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) != 0)
		conn_close(c);
}

static void admin_free_if_done(admin *a)
{
	if (!a->stopping || a->handles > 0)
		return;
	if (a->dirfd >= 0)
		close(a->dirfd);
	free(a);
}

static void conn_handle_closed(uv_handle_t *h)
{
	aconn *c = h->data;
	admin *a = c->a;
	a->handles--;
	if (--c->open_handles == 0) {
		if (c->prev != NULL)
			c->prev->next = c->next;
		else
			a->conns = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		if (!c->refused)
			a->n_conns--;
		list_end(c);
		queue_end(c);
		free(c->out);
		free(c);
		admin_free_if_done(a);
	}
}

static void conn_close(aconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
}

static void idle_cb(uv_timer_t *t)
{
	aconn *c = t->data;
	log_msg(LOG_INFO, "msg=\"admin: idle connection closed\" conn=%lu",
		c->id);
	if (c->busy) {
		conn_close(c); /* a client that does not read its answers */
		return;
	}
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->close_after = true;
	out_line(c, "error", "idle for too long", false);
	flush(c);
}

static void idle_restart(aconn *c)
{
	if (!c->closing)
		uv_timer_start(&c->timer, idle_cb, ADMIN_IDLE_S * 1000u, 0);
}

static void on_connection(uv_stream_t *server, int status)
{
	admin *a = server->data;
	if (status != 0 || a->stopping)
		return;
	aconn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_msg(LOG_CRIT, "msg=\"admin: out of memory\"");
		abort();
	}
	c->a = a;
	c->id = ++a->next_id;
	admin_reader_init(&c->rd);
	uv_pipe_init(a->loop, &c->pipe, 0);
	uv_timer_init(a->loop, &c->timer);
	c->pipe.data = c->timer.data = c;
	c->open_handles = 2;
	a->handles += 2;
	c->next = a->conns;
	if (a->conns != NULL)
		a->conns->prev = c;
	a->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
		c->refused = true;
		conn_close(c);
		return;
	}
	uv_os_fd_t fd;
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	bool allowed = uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
		       getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0 &&
		       (cr.uid == 0 || cr.uid == geteuid());
	if (allowed) {
		c->uid = (unsigned long)cr.uid;
		c->pid = (unsigned long)cr.pid;
	}
	if (!allowed || a->n_conns >= ADMIN_CONNS_MAX) {
		c->refused = true;
		log_msg(LOG_WARN, "msg=\"admin connection refused\" conn=%lu "
			"reason=\"%s\"", c->id,
			allowed ? "too many connections" : "not root or the "
			"node's user");
		out_line(c, "error", allowed ? "too many admin connections"
					     : "permission denied", false);
		idle_restart(c);
		flush(c); /* write_cb closes it */
		return;
	}
	a->n_conns++;
	log_msg(LOG_DEBUG, "msg=\"admin connection\" conn=%lu uid=%lu pid=%lu",
		c->id, c->uid, c->pid);
	idle_restart(c);
	resume_reading(c);
}

/* ------------------------------------------------------------ life */

/* The socket address of the file `admin.sock` in a->dirfd: its path, or,
 * when that does not fit in sun_path, the same file through
 * /proc/self/fd. */
static bool sock_addr(const admin *a, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n;
	if (strlen(a->path) < sizeof(sa->sun_path))
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", a->path);
	else
		n = snprintf(sa->sun_path, sizeof(sa->sun_path),
			     "/proc/self/fd/%d/%s", a->dirfd, ADMIN_SOCKET_NAME);
	return n > 0 && (size_t)n < sizeof(sa->sun_path);
}

/* A socket file left by an earlier run: removed when nobody answers on
 * it.  0, or -1 with err. */
static int remove_stale(admin *a, const struct sockaddr_un *sa, char *err,
			size_t es)
{
	struct stat st;
	if (fstatat(a->dirfd, ADMIN_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : (snprintf(err, es, "%s: %s", a->path,
						       strerror(errno)), -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, es, "%s exists and is not a socket", a->path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, es, "socket: %s", strerror(errno));
		return -1;
	}
	int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0) {
		snprintf(err, es, "%s: another node answers on it (the same "
			 "data_dir?)", a->path);
		return -1;
	}
	if (unlinkat(a->dirfd, ADMIN_SOCKET_NAME, 0) != 0 && errno != ENOENT) {
		snprintf(err, es, "%s: cannot remove the old socket: %s",
			 a->path, strerror(errno));
		return -1;
	}
	return 0;
}

static void listener_closed(uv_handle_t *h)
{
	admin *a = h->data;
	a->handles--;
	admin_free_if_done(a);
}

int admin_start(const admin_params *p, admin **a_r, char *err,
		size_t err_size)
{
	struct sockaddr_un sa;
	struct stat st;
	admin *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	a->loop = p->loop;
	a->maps = p->maps;
	a->conf = p->conf;
	a->arg = p->arg;
	a->st = p->st;
	a->queue_changed = p->queue_changed;
	a->log_stats = p->log_stats;
	a->log_sign = p->log_sign;
	a->dirfd = open(p->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int n = snprintf(a->path, sizeof(a->path), "%s/%s", p->data_dir,
			 ADMIN_SOCKET_NAME);
	if (a->dirfd < 0 || n < 0 || (size_t)n >= sizeof(a->path)) {
		snprintf(err, err_size, "%s: %s", p->data_dir,
			 a->dirfd < 0 ? strerror(errno) : "path too long");
		goto fail;
	}
	if (!sock_addr(a, &sa)) {
		snprintf(err, err_size, "%s: path too long", a->path);
		goto fail;
	}
	if (remove_stale(a, &sa, err, err_size) != 0)
		goto fail;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, err_size, "socket: %s", strerror(errno));
		goto fail;
	}
	/* data_dir is 0700: nobody else can reach the file before the
	 * chmod makes it 0600 */
	if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    fchmodat(a->dirfd, ADMIN_SOCKET_NAME, 0600, 0) != 0 ||
	    fstatat(a->dirfd, ADMIN_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		snprintf(err, err_size, "%s: %s", a->path, strerror(errno));
		close(fd);
		(void)unlinkat(a->dirfd, ADMIN_SOCKET_NAME, 0);
		goto fail;
	}
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	uv_pipe_init(a->loop, &a->listener, 0);
	a->listener.data = a;
	a->handles = 1;
	int r = uv_pipe_open(&a->listener, fd);
	if (r != 0)
		close(fd);
	else
		r = uv_listen((uv_stream_t *)&a->listener, (int)ADMIN_CONNS_MAX,
			      on_connection);
	if (r != 0) {
		snprintf(err, err_size, "%s: %s", a->path, uv_strerror(r));
		admin_stop(&a); /* closes fd with the handle, removes the file */
		return -1;
	}
	*a_r = a;
	return 0;
fail:
	if (a->dirfd >= 0)
		close(a->dirfd);
	free(a);
	return -1;
}

void admin_stop(admin **ap)
{
	if (ap == NULL || *ap == NULL)
		return;
	admin *a = *ap;
	*ap = NULL;
	if (a->stopping)
		return;
	a->stopping = true;
	/* remove the file only if it is still the one we made */
	struct stat st;
	if (fstatat(a->dirfd, ADMIN_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == a->dev && st.st_ino == a->ino)
		(void)unlinkat(a->dirfd, ADMIN_SOCKET_NAME, 0);
	for (aconn *c = a->conns; c != NULL; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&a->listener, listener_closed);
}
