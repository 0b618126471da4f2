/*
 * dns.c — see dns.h.  The libuv driver around libunbound.
 *
 * libunbound runs its resolver in a thread of its own (ub_ctx_async(ctx,
 * 1)) and writes each answer into a pipe; a uv_poll_t on that pipe
 * (ub_fd) calls ub_process, which runs our per-part callbacks on the loop
 * thread.  The poll handle is unreferenced: what keeps the loop alive is
 * each query's timer, so a loop with no query outstanding can end.
 *
 * A query has one or two parts (the address query asks AAAA and A), each a
 * libunbound query with its own async id.  When every part has answered,
 * or the timer fires first (running parts are cancelled with ub_cancel),
 * the query is unlinked, the caller's callback runs with the result built
 * from the parts (record data decoded by dns-rdata.c, valid only during
 * the callback), then the parts' ub_results are freed and the timer is
 * closed; its close callback frees the query.  After ub_cancel libunbound
 * never calls a part's callback, so a cancelled query can go at once.
 *
 * dns_free may be called from inside a callback, that is from inside
 * ub_process: the context is then deleted only when ub_process has
 * returned (r->in_process, r->dead).  The resolver itself is freed in the
 * poll handle's close callback, after the context (and its pipe) is gone.
 *
 * Limits: at most DNS_RR_MAX records of one answer are looked at (the
 * first ones in answer order); a TXT record is at most the 64 KiB of an
 * answer; TLSA data at most DNS_TLSA_DATA_MAX.
 */
#include "dns.h"
#include "dns-rdata.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <unbound.h>

#define DNS_RR_MAX 256u

enum q_kind { Q_MX, Q_ADDR, Q_TLSA, Q_TXT, Q_RR };

struct dns_query;

union query_cb {
	dns_mx_cb *mx;
	dns_addr_cb *addr;
	dns_tlsa_cb *tlsa;
	dns_txt_cb *txt;
	dns_rr_cb *rr;
};

struct dns_part {
	struct dns_query *q;
	int id;                   /* libunbound's async id */
	int type;                 /* DNS_TYPE_* asked */
	bool running;
	int err;                  /* ub error code of the answer, 0: none */
	struct ub_result *res;    /* NULL: not answered (error or timeout) */
};

struct dns_query {
	dns_resolver *r;
	struct dns_query *prev, *next;
	enum q_kind kind;
	union query_cb cb;
	void *arg;
	struct dns_part part[2];
	unsigned nparts;
	unsigned pending;         /* parts still running */
	bool done;                /* finished or cancelled: no more callbacks */
	bool timed_out;
	uv_timer_t timer;
};

struct dns_resolver {
	uv_loop_t *loop;
	struct ub_ctx *ctx;
	uv_poll_t poll;
	struct dns_query *head;   /* outstanding queries */
	unsigned timeout_ms;
	uint64_t rng;             /* shuffles equal MX preferences */
	bool in_process;          /* ub_process is on the stack */
	bool dead;                /* dns_free was called inside ub_process */
};

const char *dns_status_name(dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "OK";
	case DNS_NODATA:
		return "NODATA";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_TEMPFAIL:
		return "TEMPFAIL";
	case DNS_BOGUS:
		return "BOGUS";
	}
	return "?";
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
	if (p == NULL)
		abort();
	return p;
}

static uint64_t rng_next(dns_resolver *r)
{
	/* xorshift64*: plenty for shuffling equal preferences */
	uint64_t x = r->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rng = x;
	return x * UINT64_C(2685821657736338717);
}

/* ------------------------------------------------------------ lifecycle */

static void set_err(char *err, size_t err_size, const char *what, int ub)
{
	if (err == NULL || err_size == 0)
		return;
	int n = snprintf(err, err_size, "%s: %s", what, ub_strerror(ub));
	if (n < 0)
		err[0] = '\0';
}

static void on_poll(uv_poll_t *h, int status, int events);

/* "IP" or "IP@PORT": an IPv4 or IPv6 address and a port 1..65535
 * (libunbound itself takes @99999 and then never gets an answer). */
static bool forwarder_ok(const char *fwd)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *at = strchr(fwd, '@');
	size_t n = at != NULL ? (size_t)(at - fwd) : strlen(fwd);
	if (n == 0 || n >= sizeof(ip))
		return false;
	memcpy(ip, fwd, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
		return false;
	if (at == NULL)
		return true;
	unsigned long port = 0;
	const char *p = at + 1;
	if (*p == '\0' || strlen(p) > 5)
		return false;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	return port >= 1 && port <= 65535;
}

int dns_new(uv_loop_t *loop, const dns_settings *set, dns_resolver **r_r,
	    char *err, size_t err_size)
{
	struct ub_ctx *ctx;
	int ub;

	*r_r = NULL;
	if (err != NULL && err_size > 0)
		err[0] = '\0';
	ctx = ub_ctx_create();
	if (ctx == NULL) {
		if (err != NULL && err_size > 0)
			snprintf(err, err_size, "ub_ctx_create failed");
		return -1;
	}
	/* a thread, not a fork: the answers come back on our loop */
	if ((ub = ub_ctx_async(ctx, 1)) != 0) {
		set_err(err, err_size, "ub_ctx_async", ub);
		goto fail;
	}
	/* 127.0.0.1 is where a local resolver (or our test server) is */
	if ((ub = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) != 0) {
		set_err(err, err_size, "do-not-query-localhost", ub);
		goto fail;
	}
	/* the reason of a validation failure, for result->why_bogus */
	if ((ub = ub_ctx_set_option(ctx, "val-log-level:", "2")) != 0) {
		set_err(err, err_size, "val-log-level", ub);
		goto fail;
	}
	if (set->forwarder != NULL) {
		if (!forwarder_ok(set->forwarder)) {
			if (err != NULL && err_size > 0)
				snprintf(err, err_size, "forwarder: not IP or "
					 "IP@PORT");
			goto fail;
		}
		/* every question to that server, never to the root servers */
		if ((ub = ub_ctx_set_fwd(ctx, set->forwarder)) != 0) {
			set_err(err, err_size, "forwarder", ub);
			goto fail;
		}
		if ((ub = ub_ctx_set_option(ctx, "qname-minimisation:", "no")) != 0) {
			set_err(err, err_size, "qname-minimisation", ub);
			goto fail;
		}
	} else {
		if ((ub = ub_ctx_resolvconf(ctx, NULL)) != 0) {
			set_err(err, err_size, "/etc/resolv.conf", ub);
			goto fail;
		}
		if ((ub = ub_ctx_hosts(ctx, NULL)) != 0) {
			set_err(err, err_size, "/etc/hosts", ub);
			goto fail;
		}
	}
	if (set->trust_anchor != NULL) {
		if (access(set->trust_anchor, R_OK) != 0) {
			if (err != NULL && err_size > 0)
				snprintf(err, err_size, "trust anchor %s: %s",
					 set->trust_anchor, strerror(errno));
			goto fail;
		}
		if ((ub = ub_ctx_add_ta_file(ctx, set->trust_anchor)) != 0) {
			set_err(err, err_size, "trust anchor", ub);
			goto fail;
		}
	}
	/* Finalise the configuration now rather than at the first query, so
	 * a trust anchor file that does not parse fails here.  Removing the
	 * local data of a name that has none is the one public call that
	 * finalises without side effects. */
	if ((ub = ub_ctx_data_remove(ctx, "amp-dns-finalize.invalid")) != 0) {
		set_err(err, err_size,
			"libunbound refused the configuration (trust anchor?)", ub);
		goto fail;
	}

	dns_resolver *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->ctx = ctx;
	r->timeout_ms = set->timeout_ms != 0 ? set->timeout_ms
					     : DNS_TIMEOUT_DEFAULT_MS;
	if (getrandom(&r->rng, sizeof(r->rng), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(r->rng))
		r->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	r->rng |= 1; /* xorshift must not start at 0 */
	if (uv_poll_init(loop, &r->poll, ub_fd(ctx)) != 0) {
		if (err != NULL && err_size > 0)
			snprintf(err, err_size, "uv_poll_init failed");
		free(r);
		goto fail;
	}
	r->poll.data = r;
	if (uv_poll_start(&r->poll, UV_READABLE, on_poll) != 0)
		abort(); /* a pipe that could be watched at init */
	uv_unref((uv_handle_t *)&r->poll);
	*r_r = r;
	return 0;
fail:
	ub_ctx_delete(ctx);
	return -1;
}

static void on_poll_close(uv_handle_t *h)
{
	free(h->data);
}

static void on_timer_close(uv_handle_t *h)
{
	free(h->data);
}

static void unlink_query(struct dns_query *q)
{
	dns_resolver *r = q->r;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

/* Stop everything of q, free its results, close its timer (which frees
 * it).  No callback. */
static void drop_query(struct dns_query *q)
{
	q->done = true;
	for (unsigned i = 0; i < q->nparts; i++) {
		struct dns_part *p = &q->part[i];
		if (p->running) {
			(void)ub_cancel(q->r->ctx, p->id);
			p->running = false;
		}
		ub_resolve_free(p->res);
		p->res = NULL;
	}
	uv_timer_stop(&q->timer);
	uv_close((uv_handle_t *)&q->timer, on_timer_close);
}

static void destroy(dns_resolver *r)
{
	uv_close((uv_handle_t *)&r->poll, on_poll_close);
	/* the poll handle no longer watches the pipe: it may be closed */
	ub_ctx_delete(r->ctx);
	r->ctx = NULL;
}

void dns_free(dns_resolver **rp)
{
	dns_resolver *r = rp != NULL ? *rp : NULL;
	if (r == NULL)
		return;
	*rp = NULL;
	while (r->head != NULL) {
		struct dns_query *q = r->head;
		unlink_query(q);
		drop_query(q);
	}
	if (r->in_process)
		r->dead = true; /* on_poll finishes when ub_process returns */
	else
		destroy(r);
}

void dns_cancel(dns_query *q)
{
	if (q == NULL || q->done)
		return;
	unlink_query(q);
	drop_query(q);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	dns_resolver *r = h->data;
	(void)status;
	(void)events;
	if (r->dead)
		return;
	r->in_process = true;
	/* An error here is a broken pipe to libunbound's thread; the queries
	 * it strands end at their timeout. */
	(void)ub_process(r->ctx);
	r->in_process = false;
	if (r->dead)
		destroy(r);
}

/* ------------------------------------------------------------- results */

/* The status of one part, its security and a reason. */
static dns_status part_status(const struct dns_part *p, bool *secure_r,
			      const char **why_r)
{
	const struct ub_result *res = p->res;
	*secure_r = false;
	*why_r = NULL;
	if (p->err != 0) {
		*why_r = ub_strerror(p->err);
		return DNS_TEMPFAIL;
	}
	if (res == NULL) {
		*why_r = "timeout";
		return DNS_TEMPFAIL;
	}
	if (res->bogus) {
		*why_r = res->why_bogus != NULL ? res->why_bogus
						: "DNSSEC validation failed";
		return DNS_BOGUS;
	}
	*secure_r = res->secure != 0;
	switch (res->rcode) {
	case 0:
		if (res->havedata && res->data != NULL && res->data[0] != NULL)
			return DNS_OK;
		if (res->nxdomain)
			return DNS_NXDOMAIN;
		return DNS_NODATA;
	case 3:
		return DNS_NXDOMAIN;
	case 1:
		*why_r = "FORMERR";
		break;
	case 2:
		*why_r = "SERVFAIL";
		break;
	case 4:
		*why_r = "NOTIMP";
		break;
	case 5:
		*why_r = "REFUSED";
		break;
	default:
		*why_r = "error rcode";
		break;
	}
	*secure_r = false;
	return DNS_TEMPFAIL;
}

/* The number of records in res (at most DNS_RR_MAX). */
static size_t rr_count(const struct ub_result *res)
{
	size_t n = 0;
	while (n < DNS_RR_MAX && res->data[n] != NULL)
		n++;
	return n;
}

static int cmp_mx(const void *a, const void *b)
{
	const dns_mx *x = a, *y = b;
	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

static void finish_mx(struct dns_query *q)
{
	dns_mx_result out = { 0 };
	dns_mx *mx = NULL;
	const struct ub_result *res = q->part[0].res;

	out.status = part_status(&q->part[0], &out.secure, &out.why);
	if (out.status == DNS_OK) {
		size_t total = rr_count(res), n = 0;
		bool dot_only = false;
		mx = xcalloc(total, sizeof(*mx));
		for (size_t i = 0; i < total; i++) {
			const char *why;
			if (dns_mx_decode((const uint8_t *)res->data[i],
					  (size_t)res->len[i], &mx[n].pref,
					  mx[n].host, &why) != 0)
				continue;
			n++;
		}
		if (total == 1 && n == 1 && mx[0].pref == 0 &&
		    strcmp(mx[0].host, ".") == 0) {
			out.null_mx = true;
		} else {
			/* "." names no host: drop it from a longer list */
			size_t k = 0;
			for (size_t i = 0; i < n; i++) {
				if (strcmp(mx[i].host, ".") == 0) {
					dot_only = true;
					continue;
				}
				if (k != i)
					mx[k] = mx[i];
				k++;
			}
			dot_only = dot_only && k == 0;
			n = k;
		}
		qsort(mx, n, sizeof(*mx), cmp_mx);
		/* RFC 5321 §5.1: equal preferences in random order */
		for (size_t i = 0; i < n;) {
			size_t j = i + 1;
			while (j < n && mx[j].pref == mx[i].pref)
				j++;
			for (size_t k = j - 1; k > i; k--) {
				size_t m = i + (size_t)(rng_next(q->r) %
							(k - i + 1));
				dns_mx t = mx[k];
				mx[k] = mx[m];
				mx[m] = t;
			}
			i = j;
		}
		if (n == 0) {
			out.status = DNS_TEMPFAIL;
			out.secure = false;
			out.why = dot_only ? "MX hosts are all '.'"
					   : "malformed MX records";
		}
		out.mx = mx;
		out.n = n;
	}
	q->cb.mx(q->arg, &out);
	free(mx);
}

static void finish_addr(struct dns_query *q)
{
	dns_addr_result out = { 0 };
	struct sockaddr_storage *addr = NULL;
	dns_status st[2];
	bool sec[2];
	const char *why[2];
	size_t total = 0, n = 0;

	for (unsigned i = 0; i < 2; i++) {
		st[i] = part_status(&q->part[i], &sec[i], &why[i]);
		if (st[i] == DNS_OK)
			total += rr_count(q->part[i].res);
	}
	if (total > 0) {
		addr = xcalloc(total, sizeof(*addr));
		/* part 0 is AAAA, part 1 is A: IPv6 first */
		for (unsigned i = 0; i < 2; i++) {
			if (st[i] != DNS_OK)
				continue;
			const struct ub_result *res = q->part[i].res;
			size_t c = rr_count(res);
			for (size_t k = 0; k < c; k++) {
				const char *w;
				if (dns_addr_decode(q->part[i].type,
						    (const uint8_t *)res->data[k],
						    (size_t)res->len[k],
						    &addr[n], &w) == 0)
					n++;
			}
		}
	}
	out.secure = sec[0] && sec[1];
	if (st[0] == DNS_BOGUS || st[1] == DNS_BOGUS) {
		unsigned b = st[0] == DNS_BOGUS ? 0 : 1;
		out.status = DNS_BOGUS;
		out.why = why[b];
		out.secure = false;
	} else if (n > 0) {
		out.status = DNS_OK;
		out.addr = addr;
		out.n = n;
	} else if (total > 0) {
		out.status = DNS_TEMPFAIL;
		out.why = "malformed address records";
		out.secure = false;
	} else if (st[0] == DNS_NXDOMAIN || st[1] == DNS_NXDOMAIN) {
		unsigned x = st[0] == DNS_NXDOMAIN ? 0 : 1;
		out.status = DNS_NXDOMAIN;
		out.secure = sec[x];
	} else if (st[0] == DNS_TEMPFAIL || st[1] == DNS_TEMPFAIL) {
		unsigned t = st[0] == DNS_TEMPFAIL ? 0 : 1;
		out.status = DNS_TEMPFAIL;
		out.why = why[t];
		out.secure = false;
	} else {
		out.status = DNS_NODATA;
	}
	q->cb.addr(q->arg, &out);
	free(addr);
}

static void finish_tlsa(struct dns_query *q)
{
	dns_tlsa_result out = { 0 };
	dns_tlsa *rr = NULL;
	const struct ub_result *res = q->part[0].res;

	out.status = part_status(&q->part[0], &out.secure, &out.why);
	if (out.status == DNS_OK) {
		size_t total = rr_count(res), n = 0;
		rr = xcalloc(total, sizeof(*rr));
		for (size_t i = 0; i < total; i++) {
			const char *why;
			dns_tlsa *t = &rr[n];
			if (dns_tlsa_decode((const uint8_t *)res->data[i],
					    (size_t)res->len[i], &t->usage,
					    &t->selector, &t->mtype, &t->data,
					    &t->len, &why) == 0)
				n++;
		}
		if (n == 0) {
			out.status = DNS_TEMPFAIL;
			out.secure = false;
			out.why = "malformed TLSA records";
		}
		out.rr = rr;
		out.n = n;
	}
	q->cb.tlsa(q->arg, &out);
	free(rr);
}

static void finish_txt(struct dns_query *q)
{
	dns_txt_result out = { 0 };
	const char **txt = NULL;
	char *buf = NULL;
	const struct ub_result *res = q->part[0].res;

	out.status = part_status(&q->part[0], &out.secure, &out.why);
	if (out.status == DNS_OK) {
		size_t total = rr_count(res), n = 0, size = 0, off = 0;
		for (size_t i = 0; i < total; i++)
			size += (size_t)res->len[i] + 1;
		txt = xcalloc(total, sizeof(*txt));
		buf = xcalloc(size, 1);
		for (size_t i = 0; i < total; i++) {
			const char *why;
			size_t len;
			if (dns_txt_decode((const uint8_t *)res->data[i],
					   (size_t)res->len[i], buf + off,
					   size - off, &len, &why) != 0)
				continue;
			txt[n++] = buf + off;
			off += len + 1;
		}
		if (n == 0) {
			out.status = DNS_NODATA;
			out.why = "no usable TXT record (NUL bytes or "
				  "malformed)";
		}
		out.txt = txt;
		out.n = n;
	}
	q->cb.txt(q->arg, &out);
	free(txt);
	free(buf);
}

static void finish_rr(struct dns_query *q)
{
	dns_rr_result out = { 0 };
	const struct dns_part *p = &q->part[0];
	const uint8_t **data = NULL;
	size_t *len = NULL;
	char *names = NULL;

	out.status = part_status(p, &out.secure, &out.why);
	if (out.status == DNS_OK) {
		size_t total = rr_count(p->res), n = 0;
		data = xcalloc(total, sizeof(*data));
		len = xcalloc(total, sizeof(*len));
		if (p->type == DNS_TYPE_PTR)
			names = xcalloc(total, DNS_NAME_BUF);
		for (size_t i = 0; i < total; i++) {
			const uint8_t *rd = (const uint8_t *)p->res->data[i];
			size_t rl = (size_t)p->res->len[i], used;
			const char *why;
			if (p->type == DNS_TYPE_PTR) {
				char *nm = names + n * DNS_NAME_BUF;
				if (dns_name_decode(rd, rl, &used, nm, &why) != 0 ||
				    used != rl)
					continue;
				data[n] = (const uint8_t *)nm;
				len[n++] = strlen(nm);
			} else if (rl == (p->type == DNS_TYPE_A ? 4u : 16u)) {
				data[n] = rd;
				len[n++] = rl;
			}
		}
		if (n == 0) {
			out.status = DNS_NODATA;
			out.why = "no usable record (malformed)";
		}
		out.data = data;
		out.len = len;
		out.n = n;
	}
	q->cb.rr(q->arg, &out);
	free(data);
	free(len);
	free(names);
}

/* Every part has answered, or the timer fired: report, then free. */
static void finish(struct dns_query *q)
{
	unlink_query(q);
	q->done = true;
	for (unsigned i = 0; i < q->nparts; i++) {
		struct dns_part *p = &q->part[i];
		if (p->running) {
			(void)ub_cancel(q->r->ctx, p->id);
			p->running = false;
		}
	}
	uv_timer_stop(&q->timer);
	/* the callback may free the resolver: q->r is not used after it */
	switch (q->kind) {
	case Q_MX:
		finish_mx(q);
		break;
	case Q_ADDR:
		finish_addr(q);
		break;
	case Q_TLSA:
		finish_tlsa(q);
		break;
	case Q_TXT:
		finish_txt(q);
		break;
	case Q_RR:
		finish_rr(q);
		break;
	}
	for (unsigned i = 0; i < q->nparts; i++) {
		ub_resolve_free(q->part[i].res);
		q->part[i].res = NULL;
	}
	uv_close((uv_handle_t *)&q->timer, on_timer_close);
}

static void on_answer(void *mydata, int err, struct ub_result *res)
{
	struct dns_part *p = mydata;
	struct dns_query *q = p->q;
	if (q->done || !p->running) {
		ub_resolve_free(res); /* cannot happen: cancelled parts are quiet */
		return;
	}
	p->running = false;
	p->err = err;
	p->res = res;
	if (--q->pending == 0)
		finish(q);
}

static void on_timeout(uv_timer_t *t)
{
	struct dns_query *q = t->data;
	q->timed_out = true;
	finish(q); /* running parts are cancelled and report "timeout" */
}

/* --------------------------------------------------------------- start */

static int start(dns_resolver *r, enum q_kind kind, const char *name,
		 const int *types, unsigned ntypes, union query_cb cb,
		 void *arg, dns_query **q_r)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	q->nparts = ntypes;
	for (unsigned i = 0; i < ntypes; i++) {
		struct dns_part *p = &q->part[i];
		p->q = q;
		p->type = types[i];
		if (ub_resolve_async(r->ctx, name, types[i], 1 /* IN */, p,
				     on_answer, &p->id) != 0) {
			for (unsigned k = 0; k < i; k++)
				(void)ub_cancel(r->ctx, q->part[k].id);
			free(q);
			return -1;
		}
		p->running = true;
		q->pending++;
	}
	if (uv_timer_init(r->loop, &q->timer) != 0)
		abort(); /* cannot fail on Linux */
	q->timer.data = q;
	if (uv_timer_start(&q->timer, on_timeout, r->timeout_ms, 0) != 0)
		abort();
	q->next = r->head;
	if (r->head != NULL)
		r->head->prev = q;
	r->head = q;
	if (q_r != NULL)
		*q_r = q;
	return 0;
}

int dns_query_mx(dns_resolver *r, const char *domain, dns_mx_cb *cb,
		 void *arg, dns_query **q_r)
{
	static const int types[] = { DNS_TYPE_MX };
	if (r == NULL || r->dead || cb == NULL || !dns_name_ok(domain, false, NULL))
		return -1;
	return start(r, Q_MX, domain, types, 1, (union query_cb){ .mx = cb },
		     arg, q_r);
}

int dns_query_addr(dns_resolver *r, const char *host, dns_addr_cb *cb,
		   void *arg, dns_query **q_r)
{
	static const int types[] = { DNS_TYPE_AAAA, DNS_TYPE_A };
	if (r == NULL || r->dead || cb == NULL || !dns_name_ok(host, false, NULL))
		return -1;
	return start(r, Q_ADDR, host, types, 2,
		     (union query_cb){ .addr = cb }, arg, q_r);
}

int dns_query_tlsa(dns_resolver *r, unsigned port, const char *host,
		   dns_tlsa_cb *cb, void *arg, dns_query **q_r)
{
	static const int types[] = { DNS_TYPE_TLSA };
	char name[DNS_NAME_BUF];
	if (r == NULL || r->dead || cb == NULL || host == NULL || port == 0 ||
	    port > 65535)
		return -1;
	int n = snprintf(name, sizeof(name), "_%u._tcp.%s", port, host);
	if (n < 0 || (size_t)n >= sizeof(name) || !dns_name_ok(name, true, NULL))
		return -1;
	return start(r, Q_TLSA, name, types, 1,
		     (union query_cb){ .tlsa = cb }, arg, q_r);
}

int dns_query_txt(dns_resolver *r, const char *name, dns_txt_cb *cb,
		  void *arg, dns_query **q_r)
{
	static const int types[] = { DNS_TYPE_TXT };
	if (r == NULL || r->dead || cb == NULL || !dns_name_ok(name, true, NULL))
		return -1;
	return start(r, Q_TXT, name, types, 1, (union query_cb){ .txt = cb },
		     arg, q_r);
}

int dns_query_rr(dns_resolver *r, dns_rr_type type, const char *name,
		 dns_rr_cb *cb, void *arg, dns_query **q_r)
{
	int types[1];
	switch (type) {
	case DNS_RR_A:
		types[0] = DNS_TYPE_A;
		break;
	case DNS_RR_AAAA:
		types[0] = DNS_TYPE_AAAA;
		break;
	case DNS_RR_PTR:
		types[0] = DNS_TYPE_PTR;
		break;
	default:
		return -1;
	}
	if (r == NULL || r->dead || cb == NULL || !dns_name_ok(name, true, NULL))
		return -1;
	return start(r, Q_RR, name, types, 1, (union query_cb){ .rr = cb }, arg,
		     q_r);
}
