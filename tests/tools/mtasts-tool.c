/*
 * mtasts-tool.c — a test tool (not installed) over
 * src/daemon/mtasts-fetch.h, driven by tests/e2e/test_mtasts.py against a
 * loopback DNS server (tests/tools/dnsserver.py) and a loopback HTTPS
 * server with a private CA.
 *
 *   mtasts-tool [--forwarder IP[@PORT]] [--ca FILE] [--port PORT]
 *               [--data-dir DIR] [--timeout MS] [--dns-timeout MS]
 *               [--retry S] [--cache-max N] [--together]
 *               [--free-after MS] DOMAIN...
 *
 * The domains are asked one after the other, each from inside the
 * previous one's callback (--together: all at once).  One line per
 * answer, in the order the answers come:
 *   DOMAIN policy mode=MODE id=ID max_age=N ttl=S mx=P1,P2 why="TEXT"
 *   DOMAIN nopolicy why="TEXT"
 * (ttl: seconds until the policy expires), then
 *   stats requests=N fetches=N failures=N cache_hits=N cached=N
 * --data-dir DIR keeps the cache in DIR/mtasts.db (else memory only).
 * --free-after MS frees the fetcher after MS with its requests still
 * outstanding and prints "freed K outstanding" (lifetime check for the
 * sanitizer build); the loop then runs until everything is closed.
 *
 * Exit 0 when every domain was answered (or --free-after ran), 1 when a
 * domain was refused or the fetcher could not start, 2 on a usage error.
 */
#include "dns.h"
#include "mtasts-fetch.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOOL_DOMAINS_MAX 64u

static struct tool {
	uv_loop_t loop;
	dns_resolver *dns;
	mtasts_fetcher *f;
	char **domains;
	unsigned n, next, answered;
	bool together, refused;
	mtasts_fetch_req *req[TOOL_DOMAINS_MAX];
	uv_timer_t timer;
	bool timer_open;
} T;

static int usage(void)
{
	fprintf(stderr,
		"usage: mtasts-tool [--forwarder IP[@PORT]] [--ca FILE] "
		"[--port PORT]\n"
		"         [--data-dir DIR] [--timeout MS] [--dns-timeout MS] "
		"[--retry S]\n"
		"         [--cache-max N] [--together] [--free-after MS] "
		"DOMAIN...\n");
	return 2;
}

static void print_text(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s >= 32 && *s < 127 ? *s : '?');
	}
	putchar('"');
}

static void start_next(void);

static void on_policy(void *arg, const mtasts_policy *p, const char *why)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	T.req[i] = NULL;
	T.answered++;
	if (p == NULL) {
		printf("%s nopolicy why=", T.domains[i]);
	} else {
		uint64_t now = (uint64_t)time(NULL);
		printf("%s policy mode=%s id=%s max_age=%u ttl=%lld mx=",
		       T.domains[i], mtasts_mode_name(p->mode), p->id,
		       (unsigned)p->max_age,
		       (long long)p->expires - (long long)now);
		for (size_t k = 0; k < p->n_mx; k++)
			printf("%s%s", k > 0 ? "," : "", p->mx[k]);
		printf(" why=");
	}
	print_text(why);
	putchar('\n');
	fflush(stdout);
	if (!T.together)
		start_next();
	if (T.answered == T.n && T.timer_open) {
		uv_close((uv_handle_t *)&T.timer, NULL);
		T.timer_open = false;
	}
}

static bool ask(unsigned i)
{
	if (mtasts_fetch_get(T.f, T.domains[i], on_policy,
			     (void *)(uintptr_t)i, &T.req[i]) != 0) {
		printf("%s refused\n", T.domains[i]);
		T.refused = true;
		T.answered++;
		return false;
	}
	return true;
}

static void start_next(void)
{
	while (T.next < T.n && T.f != NULL) {
		if (ask(T.next++))
			return;
	}
}

static void on_free_timer(uv_timer_t *t)
{
	(void)t;
	unsigned left = T.n - T.answered;
	mtasts_fetch_free(&T.f);
	printf("freed %u outstanding\n", left);
	fflush(stdout);
	uv_close((uv_handle_t *)&T.timer, NULL);
	T.timer_open = false;
}

static bool arg_uint(const char *s, uint64_t max, unsigned *v)
{
	uint64_t x;
	if (!util_parse_u64(s, 0, max, &x))
		return false;
	*v = (unsigned)x;
	return true;
}

int main(int argc, char **argv)
{
	dns_settings ds = { 0 };
	mtasts_fetch_settings ms = { 0 };
	const char *data_dir = NULL;
	unsigned free_after = 0;
	bool free_mode = false;
	char db[PATH_MAX], err[300];
	int i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *o = argv[i];
		if (strcmp(o, "--together") == 0) {
			T.together = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage();
		const char *v = argv[++i];
		if (strcmp(o, "--forwarder") == 0)
			ds.forwarder = v;
		else if (strcmp(o, "--ca") == 0)
			ms.ca_file = v;
		else if (strcmp(o, "--data-dir") == 0)
			data_dir = v;
		else if (strcmp(o, "--port") == 0) {
			if (!arg_uint(v, 65535, &ms.port))
				return usage();
		} else if (strcmp(o, "--timeout") == 0) {
			if (!arg_uint(v, 600000, &ms.timeout_ms))
				return usage();
		} else if (strcmp(o, "--dns-timeout") == 0) {
			if (!arg_uint(v, 600000, &ds.timeout_ms))
				return usage();
		} else if (strcmp(o, "--retry") == 0) {
			if (!arg_uint(v, 86400, &ms.retry_s))
				return usage();
		} else if (strcmp(o, "--cache-max") == 0) {
			unsigned cm;
			if (!arg_uint(v, 1000000, &cm))
				return usage();
			ms.cache_max = cm;
		} else if (strcmp(o, "--free-after") == 0) {
			if (!arg_uint(v, 600000, &free_after))
				return usage();
			free_mode = true;
		} else {
			return usage();
		}
	}
	if (i >= argc || (unsigned)(argc - i) > TOOL_DOMAINS_MAX)
		return usage();
	T.domains = argv + i;
	T.n = (unsigned)(argc - i);
	if (data_dir != NULL) {
		int n = snprintf(db, sizeof(db), "%s/mtasts.db", data_dir);
		if (n < 0 || (size_t)n >= sizeof(db))
			return usage();
		ms.db_path = db;
	}

	if (uv_loop_init(&T.loop) != 0)
		return 1;
	int rc = 1;
	if (dns_new(&T.loop, &ds, &T.dns, err, sizeof(err)) != 0) {
		fprintf(stderr, "mtasts-tool: %s\n", err);
		goto out;
	}
	ms.loop = &T.loop;
	ms.dns = T.dns;
	if (mtasts_fetch_new(&ms, &T.f, err, sizeof(err)) != 0) {
		fprintf(stderr, "mtasts-tool: %s\n", err);
		goto out;
	}
	if (free_mode) {
		uv_timer_init(&T.loop, &T.timer);
		T.timer_open = true;
		uv_timer_start(&T.timer, on_free_timer, free_after, 0);
	}
	if (T.together) {
		for (unsigned k = 0; k < T.n; k++)
			ask(k);
		T.next = T.n;
	} else {
		start_next();
	}
	if (T.answered == T.n && T.timer_open) {
		uv_close((uv_handle_t *)&T.timer, NULL);
		T.timer_open = false;
	}
	uv_run(&T.loop, UV_RUN_DEFAULT);
	if (T.f != NULL) {
		mtasts_fetch_stats st;
		mtasts_fetch_get_stats(T.f, &st);
		printf("stats requests=%llu fetches=%llu failures=%llu "
		       "cache_hits=%llu cached=%zu\n",
		       (unsigned long long)st.requests,
		       (unsigned long long)st.fetches,
		       (unsigned long long)st.fetch_failures,
		       (unsigned long long)st.cache_hits, st.cached);
	}
	rc = T.refused ? 1 : 0;
out:
	mtasts_fetch_free(&T.f);
	dns_free(&T.dns);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&T.loop) != 0) {
		fprintf(stderr, "mtasts-tool: handles left open\n");
		rc = 1;
	}
	return rc;
}
