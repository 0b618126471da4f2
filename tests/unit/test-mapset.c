/*
 * test-mapset.c — src/daemon/mapset.c: the node's tables from their
 * files, an inline relay_domains list and smtp_relay_networks, plus the
 * run-time entries in maps.db.  Loading; a bad line keeps the old tables
 * with "FILE, line N" in the error; add / del and what they refuse
 * (duplicates of file keys, entries of the file, bad entries); the
 * entries kept in maps.db across a reopen; a file key that meets a
 * run-time entry on reload; a snapshot that outlives reloads; readers on
 * other threads while the loop swaps tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapset.h"
#include "node.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void path_of(const char *name, char out[512])
{
	snprintf(out, 512, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
	char p[512];
	path_of(name, p);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* A node configuration: the map keys given as "key = value" lines. */
static cfg *conf_of(const char *extra)
{
	char text[4096];
	cfg *c = NULL;
	cfg_errors errs;
	snprintf(text, sizeof(text), "data_dir = %s\n%s", dir, extra);
	if (cfg_parse(&node_schema, text, strlen(text), &c, &errs) != 0)
		fail_msg("config: %s", errs.n > 0 ? errs.e[0].text : "?");
	return c;
}

static mapset *open_with(const char *extra)
{
	char db[512], err[MAPSET_ERROR_MAX] = "";
	mapset *m = NULL;
	cfg *c = conf_of(extra);
	path_of("maps.db", db);
	if (mapset_open(c, db, &m, err) != 0)
		fail_msg("mapset_open: %s", err);
	cfg_free(&c);
	return m;
}

static int reload_with(mapset *m, const char *extra, char err[MAPSET_ERROR_MAX])
{
	cfg *c = conf_of(extra);
	int r = mapset_reload(m, c, err);
	cfg_free(&c);
	return r;
}

static const char *access_result(const mapset_snap *s, const char *q,
				 maps_test_result *r)
{
	assert_int_equal(maps_test(s->t[MAPS_ACCESS], q, r), 0);
	return r->result;
}

static char conf_text[2048];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-mapset.XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file("access",
		   "# access\n"
		   "192.0.2.0/24     REJECT\n"
		   "example.com      OK\n"
		   "\n"
		   "spam@example.net REJECT no\n"
		   "                 thanks\n");
	write_file("virtual", "info@example.org  joe@example.org, "
			      "did:aftersmtp:example.org:jane\n"
			      "example.org  virtual");
	snprintf(conf_text, sizeof(conf_text),
		 "access_map = %s/access\n"
		 "virtual_alias_maps = %s/virtual\n"
		 "relay_domains = example.net, .example.info\n"
		 "smtp_relay_networks = 10.0.0.0/8 2001:db8::/32\n"
		 "virtual_alias_expansion_limit = 5\n",
		 dir, dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_load(void **state)
{
	(void)state;
	maps_test_result r;
	maps_match m;
	mapset *ms = open_with(conf_text);
	const mapset_snap *s = mapset_get(ms);
	char p[512];
	path_of("access", p);

	assert_string_equal(access_result(s, "192.0.2.9", &r),
			    "REJECT 554 5.7.1");
	assert_int_equal(r.match.line, 2);
	assert_int_equal(mapset_entry_origin(s, MAPS_ACCESS, &r.match),
			 MAPSET_ORIGIN_FILE);
	assert_string_equal(mapset_source(s, MAPS_ACCESS), p);
	assert_string_equal(access_result(s, "spam@example.net", &r),
			    "REJECT 554 5.7.1 no thanks");
	assert_int_equal(r.match.line, 5);
	assert_string_equal(access_result(s, "a@mx.example.com", &r), "OK");
	assert_string_equal(access_result(s, "198.51.100.1", &r), "not found");

	assert_true(maps_relay_domain(s->t[MAPS_RELAY_DOMAINS], "example.net",
				      &m));
	assert_int_equal(mapset_entry_origin(s, MAPS_RELAY_DOMAINS, &m),
			 MAPSET_ORIGIN_CONFIG);
	assert_int_equal(m.line, 1);
	assert_true(maps_relay_domain(s->t[MAPS_RELAY_DOMAINS], "a.example.info",
				      &m));
	assert_int_equal(m.line, 2);
	assert_string_equal(mapset_source(s, MAPS_RELAY_DOMAINS),
			    "relay_domains");
	assert_false(maps_relay_domain(s->t[MAPS_RELAY_DOMAINS], "example.org",
				       NULL));

	assert_true(maps_cidr_lookup(s->relay_networks, "10.1.2.3", &m));
	assert_string_equal(m.key, "10.0.0.0/8");
	assert_true(maps_cidr_lookup(s->relay_networks, "2001:db8::25", &m));
	assert_false(maps_cidr_lookup(s->relay_networks, "192.0.2.1", &m));

	/* the alias limits come from the configuration */
	assert_int_equal(maps_table_options(s->t[MAPS_VIRTUAL])->alias_fanout,
			 5);
	maps_rcpts *rc = NULL;
	maps_error e;
	assert_int_equal(maps_virtual_expand(s->t[MAPS_VIRTUAL],
					     "info@example.org", &rc, &e),
			 MAPS_OK);
	assert_int_equal(rc->n, 2);
	maps_rcpts_destroy(&rc);
	/* a file without a final LF: its last line counts */
	assert_true(maps_virtual_domain(s->t[MAPS_VIRTUAL], "example.org", &m));
	assert_int_equal(m.line, 2);

	/* tables that are not configured are empty, never NULL */
	assert_non_null(s->t[MAPS_TRANSPORT]);
	assert_int_equal(maps_table_count(s->t[MAPS_TRANSPORT]), 0);
	assert_string_equal(mapset_source(s, MAPS_TRANSPORT), "");
	mapset_put(s);

	/* maps.db is 0600 */
	struct stat st;
	path_of("maps.db", p);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	mapset_close(&ms);
	assert_null(ms);
	mapset_close(&ms); /* NULL is fine */
}

static void test_bad_line_keeps_old(void **state)
{
	(void)state;
	char err[MAPSET_ERROR_MAX], want[600], p[512];
	maps_test_result r;
	mapset *ms = open_with(conf_text);
	path_of("access", p);

	write_file("access", "# access\n"
			     "192.0.2.0/24     REJECT\n"
			     "192.0.2.1/24     OK\n");
	assert_int_equal(reload_with(ms, conf_text, err), -1);
	snprintf(want, sizeof(want), "%s, line 3: ", p);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error '%s' does not start with '%s'", err, want);
	const mapset_snap *s = mapset_get(ms);
	assert_string_equal(access_result(s, "a@example.com", &r), "OK");
	mapset_put(s);

	/* every bad file is reported, and a missing one too */
	write_file("virtual", "info@example.org\n");
	char c2[2600];
	snprintf(c2, sizeof(c2), "%scanonical_maps = %s/nothing\n", conf_text,
		 dir);
	assert_int_equal(reload_with(ms, c2, err), -1);
	assert_non_null(strstr(err, "access, line 3: "));
	assert_non_null(strstr(err, "virtual, line 1: "));
	assert_non_null(strstr(err, "nothing: No such file or directory"));

	/* a bad network in smtp_relay_networks is refused as well */
	write_file("access", "example.com OK\n");
	write_file("virtual", "");
	snprintf(c2, sizeof(c2), "access_map = %s/access\n"
		 "smtp_relay_networks = 10.0.0.0/8, 192.0.2.1/24\n", dir);
	assert_int_equal(reload_with(ms, c2, err), -1);
	assert_non_null(strstr(err, "smtp_relay_networks: 192.0.2.1/24: "));
	snprintf(c2, sizeof(c2), "smtp_relay_networks = example.com\n");
	assert_int_equal(reload_with(ms, c2, err), -1);
	assert_string_equal(err, "smtp_relay_networks: example.com: not an IP "
				 "address or network (CIDR)");
	/* and a bad inline relay_domains list */
	assert_int_equal(reload_with(ms, "relay_domains = a.example, b@c\n",
				     err), -1);
	assert_non_null(strstr(err, "relay_domains: item 2: "));

	/* fixed: the new tables are in force */
	snprintf(c2, sizeof(c2), "access_map = %s/access\n", dir);
	assert_int_equal(reload_with(ms, c2, err), 0);
	s = mapset_get(ms);
	assert_string_equal(access_result(s, "192.0.2.1", &r), "not found");
	assert_string_equal(access_result(s, "a@example.com", &r), "OK");
	assert_int_equal(maps_table_count(s->relay_networks), 0);
	mapset_put(s);
	mapset_close(&ms);
	teardown(NULL);
	setup(NULL); /* the files as they were, in a new directory */
}

static void test_add_del(void **state)
{
	(void)state;
	char err[MAPSET_ERROR_MAX], p[512], want[700];
	maps_test_result r;
	mapset *ms = open_with(conf_text);
	path_of("access", p);

	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "198.51.100.7",
				    "  REJECT go away ", err), 0);
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "Bad@Example.ORG", "DISCARD",
				    err), 0);
	const mapset_snap *s = mapset_get(ms);
	assert_string_equal(access_result(s, "198.51.100.7", &r),
			    "REJECT 554 5.7.1 go away");
	assert_int_equal(mapset_entry_origin(s, MAPS_ACCESS, &r.match),
			 MAPSET_ORIGIN_RUNTIME);
	assert_string_equal(access_result(s, "bad@example.org", &r), "DISCARD");
	assert_string_equal(r.match.key, "bad@example.org");
	/* the file's entries keep their line numbers */
	assert_string_equal(access_result(s, "spam@example.net", &r),
			    "REJECT 554 5.7.1 no thanks");
	assert_int_equal(r.match.line, 5);
	assert_int_equal(mapset_entry_origin(s, MAPS_ACCESS, &r.match),
			 MAPSET_ORIGIN_FILE);
	mapset_put(s);

	/* refused: a key of the file, a run-time key again, bad entries */
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "Example.com", "REJECT",
				    err), -1);
	snprintf(want, sizeof(want), "access_map: example.com is already in "
		 "%s, line 3 (edit the file, then reload)", p);
	assert_string_equal(err, want);
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "198.51.100.7", "OK", err),
			 -1);
	assert_string_equal(err, "access_map: 198.51.100.7 is already a "
				 "run-time entry (delete it first)");
	/* the same network written another way: found by the table */
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "192.0.2", "OK", err), -1);
	assert_non_null(strstr(err, "run-time entry 192.0.2: "));
	assert_non_null(strstr(err, "the same network as 192.0.2.0/24"));
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "a.example", "MAYBE", err),
			 -1);
	assert_non_null(strstr(err, "access_map: "));
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "a b", "OK", err), -1);
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "x.example", "OK\nb OK",
				    err), -1);
	assert_int_equal(mapset_add(ms, MAPS_VIRTUAL, "x@example.org", "", err),
			 -1);
	assert_int_equal(mapset_add(ms, MAPS_RELAY_DOMAINS, "example.net", "",
				    err), -1);
	assert_string_equal(err, "relay_domains: example.net is already in the "
				 "relay_domains setting (edit the "
				 "configuration, then reload)");
	assert_int_equal(mapset_add(ms, (maps_kind)7, "a", "b", err), -1);
	/* relay_domains: the value is optional */
	assert_int_equal(mapset_add(ms, MAPS_RELAY_DOMAINS, "relay.example",
				    NULL, err), 0);
	assert_int_equal(mapset_add(ms, MAPS_TRANSPORT, "example.org",
				    "smtp:[192.0.2.25]:587", err), 0);

	/* del: entries of the file are refused, unknown keys too */
	assert_int_equal(mapset_del(ms, MAPS_ACCESS, "example.com", err), -1);
	snprintf(want, sizeof(want), "access_map: example.com is not a run-time "
		 "entry: it is in %s, line 3 (edit the file, then reload)", p);
	assert_string_equal(err, want);
	assert_int_equal(mapset_del(ms, MAPS_ACCESS, "nothing.example", err),
			 -1);
	assert_string_equal(err, "access_map: no run-time entry nothing.example");

	/* kept in maps.db: a reopened set has them */
	mapset_close(&ms);
	ms = open_with(conf_text);
	s = mapset_get(ms);
	assert_string_equal(access_result(s, "198.51.100.7", &r),
			    "REJECT 554 5.7.1 go away");
	assert_true(maps_relay_domain(s->t[MAPS_RELAY_DOMAINS], "relay.example",
				      NULL));
	maps_transport tr;
	assert_true(maps_transport_lookup(s->t[MAPS_TRANSPORT], "a@example.org",
					  &tr, NULL));
	assert_int_equal(tr.port, 587);
	mapset_put(s);

	assert_int_equal(mapset_del(ms, MAPS_ACCESS, "198.51.100.7", err), 0);
	assert_int_equal(mapset_del(ms, MAPS_ACCESS, "198.51.100.7", err), -1);
	s = mapset_get(ms);
	assert_string_equal(access_result(s, "198.51.100.7", &r), "not found");
	assert_string_equal(access_result(s, "bad@example.org", &r), "DISCARD");
	mapset_put(s);

	/* the file gains a key that is a run-time entry: the reload is
	 * refused, naming the entry */
	write_file("access", "bad@example.org OK\n");
	assert_int_equal(reload_with(ms, conf_text, err), -1);
	assert_non_null(strstr(err, "access_map: run-time entry bad@example.org: "
				    "duplicate key"));
	assert_int_equal(mapset_del(ms, MAPS_ACCESS, "BAD@example.org", err), 0);
	assert_int_equal(reload_with(ms, conf_text, err), 0);
	s = mapset_get(ms);
	assert_string_equal(access_result(s, "bad@example.org", &r), "OK");
	assert_int_equal(mapset_entry_origin(s, MAPS_ACCESS, &r.match),
			 MAPSET_ORIGIN_FILE);
	mapset_put(s);
	mapset_close(&ms);
	teardown(NULL);
	setup(NULL);
}

static void test_snapshot_survives(void **state)
{
	(void)state;
	char err[MAPSET_ERROR_MAX];
	maps_test_result r;
	mapset *ms = open_with(conf_text);
	const mapset_snap *old = mapset_get(ms);
	write_file("access", "example.com REJECT\n");
	assert_int_equal(reload_with(ms, conf_text, err), 0);
	assert_int_equal(mapset_add(ms, MAPS_VIRTUAL, "x@example.org",
				    "y@example.org", err), 0);
	const mapset_snap *now = mapset_get(ms);
	assert_string_equal(access_result(old, "a@example.com", &r), "OK");
	assert_string_equal(access_result(now, "a@example.com", &r),
			    "REJECT 554 5.7.1");
	assert_false(maps_virtual_lookup(old->t[MAPS_VIRTUAL], "x@example.org",
					 NULL));
	assert_true(maps_virtual_lookup(now->t[MAPS_VIRTUAL], "x@example.org",
					NULL));
	/* the set can even go before its snapshots */
	mapset_close(&ms);
	assert_string_equal(access_result(old, "a@example.com", &r), "OK");
	mapset_put(old);
	assert_string_equal(access_result(now, "a@example.com", &r),
			    "REJECT 554 5.7.1");
	mapset_put(now);
	teardown(NULL);
	setup(NULL);
}

/* ---- readers on other threads while the loop swaps tables */
static atomic_bool stop_readers;
static atomic_ulong lookups;

static void *reader(void *arg)
{
	mapset *ms = arg;
	maps_test_result *r = malloc(sizeof(*r));
	assert_non_null(r);
	while (!atomic_load(&stop_readers)) {
		const mapset_snap *s = mapset_get(ms);
		if (maps_test(s->t[MAPS_ACCESS], "192.0.2.1", r) != 0 ||
		    strcmp(r->result, "REJECT 554 5.7.1") != 0)
			abort();
		(void)maps_virtual_lookup(s->t[MAPS_VIRTUAL], "n7@example.org",
					  NULL);
		mapset_put(s);
		atomic_fetch_add(&lookups, 1);
	}
	free(r);
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	char err[MAPSET_ERROR_MAX], k[64];
	pthread_t th[3];
	mapset *ms = open_with(conf_text);
	atomic_store(&stop_readers, false);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, ms), 0);
	for (unsigned i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "n%u@example.org", i);
		assert_int_equal(mapset_add(ms, MAPS_VIRTUAL, k,
					    "did:aftersmtp:example.org:n", err),
				 0);
		if (i % 8 == 0)
			assert_int_equal(reload_with(ms, conf_text, err), 0);
		if (i % 3 == 0)
			assert_int_equal(mapset_del(ms, MAPS_VIRTUAL, k, err), 0);
	}
	atomic_store(&stop_readers, true);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_true(atomic_load(&lookups) > 0);
	mapset_close(&ms);
	teardown(NULL);
	setup(NULL);
}

static void test_create_load(void **state)
{
	(void)state;
	char db[512], err[MAPSET_ERROR_MAX];
	mapset *ms = mapset_create();
	const mapset_snap *s = mapset_get(ms);
	assert_int_equal(maps_table_count(s->t[MAPS_ACCESS]), 0);
	mapset_put(s);
	/* not loaded: nothing can change */
	assert_int_equal(mapset_add(ms, MAPS_ACCESS, "a.example", "OK", err), -1);
	cfg *c = conf_of(conf_text);
	assert_int_equal(mapset_reload(ms, c, err), -1);
	path_of("maps.db", db);
	assert_int_equal(mapset_load(ms, c, db, err), 0);
	assert_int_equal(mapset_load(ms, c, db, err), -1);
	cfg_free(&c);
	s = mapset_get(ms);
	assert_int_equal(maps_table_count(s->t[MAPS_ACCESS]), 3);
	mapset_put(s);
	mapset_close(&ms);

	/* a file that cannot be read fails the open */
	c = conf_of("access_map = /nonexistent/access\n");
	assert_int_equal(mapset_open(c, db, &ms, err), -1);
	assert_string_equal(err, "/nonexistent/access: No such file or "
				 "directory");
	assert_null(ms);
	cfg_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_bad_line_keeps_old),
		cmocka_unit_test(test_add_del),
		cmocka_unit_test(test_snapshot_survives),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_create_load),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
