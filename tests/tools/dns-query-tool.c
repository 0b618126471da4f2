/*
 * dns-query-tool.c — a test tool (not installed) over src/dns/dns.h,
 * driven by tests/e2e/test_dns.py against a loopback DNS server
 * (tests/tools/dnsserver.py or a private unbound).
 *
 *   dns-query-tool [--forwarder IP[@PORT]] [--ta FILE] [--timeout MS]
 *                  [--repeat N] [--cancel-after MS] [--free-after MS]
 *                  [--free-in-callback] [--follow] mx|addr|tlsa|txt NAME
 *                  [PORT]
 *
 * One query (tlsa asks _PORT._tcp.NAME, PORT 25 by default), its result
 * printed one item a line, in this order:
 *   status OK|NODATA|NXDOMAIN|TEMPFAIL|BOGUS
 *   secure yes|no
 *   why TEXT                       ("-" when there is none)
 *   null_mx yes|no                 (mx only)
 *   mx PREF HOST                   (in the order given)
 *   addr IP                        (in the order given)
 *   tlsa USAGE SELECTOR MTYPE HEX  (upper-case hex)
 *   txt "TEXT"                     (\" \\ and \DDD for other bytes)
 *   elapsed MS                     (from the query to its result)
 * Fault and lifetime modes (for the sanitizer runs):
 *   --repeat N          N identical queries at once; the first result is
 *                       printed, then "repeat N same" when all N agree
 *                       on status and record count, else "repeat N differ";
 *   --cancel-after MS   cancel every query still running after MS, print
 *                       "cancelled K";
 *   --free-after MS     free the resolver after MS with its queries
 *                       outstanding, print "freed K outstanding";
 *   --free-in-callback  free the resolver inside the first callback
 *                       (others still outstanding), print
 *                       "freed in callback";
 *   --follow            (mx) from inside the MX callback, ask the
 *                       addresses of every host; each result is printed
 *                       as it comes: "follow HOST STATUS [IP...]" (or
 *                       "follow HOST refused").
 * After each mode the loop runs until every handle is closed.
 *
 * Exit 0 when a result (any status) was obtained or a mode ran as asked,
 * 1 when the query was refused (bad name) or dns_new failed, 2 on a usage
 * error.
 */
#include "dns.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_REPEAT_MAX 1000u

enum kind { K_MX, K_ADDR, K_TLSA, K_TXT };

static struct tool {
	uv_loop_t loop;
	dns_resolver *r;
	dns_query *q[TOOL_REPEAT_MAX];
	unsigned n, answered;
	bool printed, differ, free_in_cb, follow;
	dns_status first_status;
	size_t first_n;
	uint64_t started;
	uv_timer_t mode_timer;
	int mode;               /* 0 none, 1 cancel-after, 2 free-after */
} T;

static int usage(void)
{
	fprintf(stderr,
		"usage: dns-query-tool [--forwarder IP[@PORT]] [--ta FILE] "
		"[--timeout MS]\n"
		"         [--repeat N] [--cancel-after MS] [--free-after MS] "
		"[--free-in-callback] [--follow]\n"
		"         mx|addr|tlsa|txt NAME [PORT]\n");
	return 2;
}

static void print_head(dns_status st, bool secure, const char *why)
{
	printf("status %s\n", dns_status_name(st));
	printf("secure %s\n", secure ? "yes" : "no");
	printf("why ");
	if (why == NULL) {
		printf("-");
	} else {
		for (const char *p = why; *p != '\0'; p++)
			putchar(*p >= 32 && *p < 127 ? *p : '?');
	}
	putchar('\n');
}

static void print_tail(void)
{
	printf("elapsed %llu\n",
	       (unsigned long long)(uv_now(&T.loop) - T.started));
}

/* Note one result; true when it is the one to print. */
static bool note(dns_status st, size_t n)
{
	unsigned i = T.answered++;
	if (i == 0) {
		T.first_status = st;
		T.first_n = n;
	} else if (st != T.first_status || n != T.first_n) {
		T.differ = true;
	}
	return i == 0;
}

static void after_result(void)
{
	if (T.free_in_cb && T.r != NULL) {
		dns_free(&T.r);
		printf("freed in callback\n");
	}
	if (T.n > 1 && T.answered == T.n)
		printf("repeat %u %s\n", T.n, T.differ ? "differ" : "same");
	/* every query answered: the mode has nothing left to do */
	if (T.answered == T.n && T.mode != 0 &&
	    !uv_is_closing((uv_handle_t *)&T.mode_timer))
		uv_close((uv_handle_t *)&T.mode_timer, NULL);
	fflush(stdout);
}

static void addr_text(const struct sockaddr_storage *ss, char *text,
		      size_t size)
{
	const void *a;
	if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	else
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	if (inet_ntop(ss->ss_family, a, text, (socklen_t)size) == NULL)
		snprintf(text, size, "?");
}

/* --follow: the addresses of one MX host, asked from the MX callback. */
static void on_follow(void *arg, const dns_addr_result *r)
{
	char *host = arg;
	printf("follow %s %s", host, dns_status_name(r->status));
	for (size_t i = 0; i < r->n; i++) {
		char text[INET6_ADDRSTRLEN];
		addr_text(&r->addr[i], text, sizeof(text));
		printf(" %s", text);
	}
	putchar('\n');
	fflush(stdout);
	free(host);
}

static void follow(const dns_mx_result *r)
{
	for (size_t i = 0; i < r->n && !r->null_mx; i++) {
		char *host = strdup(r->mx[i].host);
		if (host == NULL)
			abort();
		if (dns_query_addr(T.r, host, on_follow, host, NULL) != 0) {
			printf("follow %s refused\n", host);
			free(host);
		}
	}
}

static void on_mx(void *arg, const dns_mx_result *r)
{
	(void)arg;
	if (note(r->status, r->n)) {
		print_head(r->status, r->secure, r->why);
		printf("null_mx %s\n", r->null_mx ? "yes" : "no");
		for (size_t i = 0; i < r->n; i++)
			printf("mx %u %s\n", r->mx[i].pref, r->mx[i].host);
		print_tail();
		if (T.follow && T.r != NULL)
			follow(r);
	}
	after_result();
}

static void on_addr(void *arg, const dns_addr_result *r)
{
	(void)arg;
	if (note(r->status, r->n)) {
		print_head(r->status, r->secure, r->why);
		for (size_t i = 0; i < r->n; i++) {
			char text[INET6_ADDRSTRLEN];
			addr_text(&r->addr[i], text, sizeof(text));
			printf("addr %s\n", text);
		}
		print_tail();
	}
	after_result();
}

static void on_tlsa(void *arg, const dns_tlsa_result *r)
{
	(void)arg;
	if (note(r->status, r->n)) {
		print_head(r->status, r->secure, r->why);
		for (size_t i = 0; i < r->n; i++) {
			const dns_tlsa *t = &r->rr[i];
			printf("tlsa %u %u %u ", t->usage, t->selector, t->mtype);
			for (size_t k = 0; k < t->len; k++)
				printf("%02X", t->data[k]);
			putchar('\n');
		}
		print_tail();
	}
	after_result();
}

static void on_txt(void *arg, const dns_txt_result *r)
{
	(void)arg;
	if (note(r->status, r->n)) {
		print_head(r->status, r->secure, r->why);
		for (size_t i = 0; i < r->n; i++) {
			printf("txt \"");
			for (const unsigned char *p =
				     (const unsigned char *)r->txt[i];
			     *p != '\0'; p++) {
				if (*p == '"' || *p == '\\')
					printf("\\%c", *p);
				else if (*p < 32 || *p >= 127)
					printf("\\%03u", *p);
				else
					putchar(*p);
			}
			printf("\"\n");
		}
		print_tail();
	}
	after_result();
}

static void on_mode_timer(uv_timer_t *t)
{
	unsigned k = T.n - T.answered;
	(void)t;
	if (T.mode == 1) {
		for (unsigned i = 0; i < T.n && T.r != NULL; i++)
			dns_cancel(T.q[i]); /* answered ones are skipped below */
		printf("cancelled %u\n", k);
	} else if (T.r != NULL) {
		dns_free(&T.r);
		printf("freed %u outstanding\n", k);
	}
	fflush(stdout);
	uv_close((uv_handle_t *)&T.mode_timer, NULL);
}

static bool parse_ms(const char *s, uint64_t max, unsigned *v_r)
{
	uint64_t v;
	if (!util_parse_u64(s, 0, max, &v))
		return false;
	*v_r = (unsigned)v;
	return true;
}

/* The callback of a cancelled query must not run: q[i] is cleared when
 * its result arrives so that --cancel-after does not cancel a handle
 * that is gone. */
static void on_mx_w(void *arg, const dns_mx_result *r)
{
	T.q[(size_t)(uintptr_t)arg] = NULL;
	on_mx(arg, r);
}

static void on_addr_w(void *arg, const dns_addr_result *r)
{
	T.q[(size_t)(uintptr_t)arg] = NULL;
	on_addr(arg, r);
}

static void on_tlsa_w(void *arg, const dns_tlsa_result *r)
{
	T.q[(size_t)(uintptr_t)arg] = NULL;
	on_tlsa(arg, r);
}

static void on_txt_w(void *arg, const dns_txt_result *r)
{
	T.q[(size_t)(uintptr_t)arg] = NULL;
	on_txt(arg, r);
}

int main(int argc, char **argv)
{
	dns_settings set = { 0 };
	unsigned repeat = 1, cancel_after = 0, free_after = 0, port = 25;
	bool have_cancel = false, have_free = false;
	int i = 1;
	char err[256];

	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];
		if (strcmp(o, "--free-in-callback") == 0) {
			T.free_in_cb = true;
			continue;
		}
		if (strcmp(o, "--follow") == 0) {
			T.follow = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		const char *v = argv[++i];
		if (strcmp(o, "--forwarder") == 0)
			set.forwarder = v;
		else if (strcmp(o, "--ta") == 0)
			set.trust_anchor = v;
		else if (strcmp(o, "--timeout") == 0) {
			if (!parse_ms(v, 3600000, &set.timeout_ms))
				return usage();
		} else if (strcmp(o, "--repeat") == 0) {
			if (!parse_ms(v, TOOL_REPEAT_MAX, &repeat) || repeat == 0)
				return usage();
		} else if (strcmp(o, "--cancel-after") == 0) {
			if (!parse_ms(v, 3600000, &cancel_after))
				return usage();
			have_cancel = true;
		} else if (strcmp(o, "--free-after") == 0) {
			if (!parse_ms(v, 3600000, &free_after))
				return usage();
			have_free = true;
		} else {
			return usage();
		}
	}
	if (argc - i < 2 || argc - i > 3 || (have_cancel && have_free))
		return usage();
	const char *what = argv[i], *name = argv[i + 1];
	enum kind kind;
	if (strcmp(what, "mx") == 0)
		kind = K_MX;
	else if (strcmp(what, "addr") == 0)
		kind = K_ADDR;
	else if (strcmp(what, "tlsa") == 0)
		kind = K_TLSA;
	else if (strcmp(what, "txt") == 0)
		kind = K_TXT;
	else
		return usage();
	if (argc - i == 3) {
		if (kind != K_TLSA || !parse_ms(argv[i + 2], 65535, &port) ||
		    port == 0)
			return usage();
	}

	if (uv_loop_init(&T.loop) != 0)
		return 1;
	if (dns_new(&T.loop, &set, &T.r, err, sizeof(err)) != 0) {
		fprintf(stderr, "dns-query-tool: %s\n", err);
		uv_loop_close(&T.loop);
		return 1;
	}
	T.started = uv_now(&T.loop);
	int rc = 0;
	for (unsigned k = 0; k < repeat; k++) {
		void *arg = (void *)(uintptr_t)k;
		switch (kind) {
		case K_MX:
			rc = dns_query_mx(T.r, name, on_mx_w, arg, &T.q[k]);
			break;
		case K_ADDR:
			rc = dns_query_addr(T.r, name, on_addr_w, arg, &T.q[k]);
			break;
		case K_TLSA:
			rc = dns_query_tlsa(T.r, port, name, on_tlsa_w, arg,
					    &T.q[k]);
			break;
		case K_TXT:
			rc = dns_query_txt(T.r, name, on_txt_w, arg, &T.q[k]);
			break;
		}
		if (rc != 0)
			break;
		T.n++;
	}
	if (rc != 0) {
		printf("refused\n");
		dns_free(&T.r);
	} else if (have_cancel || have_free) {
		T.mode = have_cancel ? 1 : 2;
		if (uv_timer_init(&T.loop, &T.mode_timer) != 0 ||
		    uv_timer_start(&T.mode_timer, on_mode_timer,
				   have_cancel ? cancel_after : free_after, 0) != 0)
			abort();
	}
	uv_run(&T.loop, UV_RUN_DEFAULT);
	dns_free(&T.r);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&T.loop) != 0) {
		fprintf(stderr, "dns-query-tool: handles left open\n");
		return 1;
	}
	fflush(stdout);
	return rc != 0 ? 1 : 0;
}
