/*
 * mapset.c — the node's lookup tables at run time (mapset.h).
 *
 * A table's text is its configured part followed by its run-time entries:
 *   - the configured part: the table file named by the config key of the
 *     same name (read whole, a final LF added when missing), or for
 *     relay_domains an inline list (a value not starting with '/'), one
 *     item per line; none when the key is empty;
 *   - then one "KEY VALUE" line per row of maps.db for that table, in the
 *     order they were added.
 * One parse (maps_table_parse) of the whole text makes the table, so the
 * file's line numbers stay those of the file, duplicates between the file
 * and the database are found like any other, and an error on line N
 * beyond the file is reported as "TABLE: run-time entry KEY: reason".
 * smtp_relay_networks (a config list of CIDRs) becomes an access_map
 * table of "NETWORK OK" lines; an item that is not a network is refused.
 *
 * Lifetimes: a snapshot holds one reference on each of its tables (a
 * table is shared by the snapshots an add or del did not change); both
 * are counted with C11 atomics and freed by the last put, on whatever
 * thread that is.  The current snapshot is swapped under a mutex held for
 * a pointer copy and an increment.  The configured parts (the file texts)
 * are kept by the mapset, so an add or del rebuilds one table without
 * reading its file again: a file edited but not yet reloaded is not
 * picked up by `amp map add`.
 *
 * The database: SQLite, rollback journal, synchronous=FULL, created 0600
 * (its journal takes the same mode); prepared statements only.  Open,
 * reload, add and del run on the loop and block on file I/O and on the
 * database's fsync: they are operator actions, not per-message work.
 *
 * Limits: a table's whole text (file and run-time entries) is at most
 * MAPS_FILE_MAX bytes and MAPS_ENTRIES_MAX entries (src/maps); a run-time
 * entry at most MAPS_LINE_MAX bytes (maps_entry_check).
 */
#include "mapset.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DB_VERSION 1

/* A table as snapshots hold it. */
typedef struct mtab {
	atomic_uint refs;
	maps_table *t;
	mapset_origin base;   /* what lines 1..base_lines are: FILE or CONFIG */
	unsigned base_lines;  /* lines of the file, items of a list */
	char *source;         /* file path, setting name, or "" */
} mtab;

typedef struct snap {
	mapset_snap pub;      /* what readers see */
	atomic_uint refs;
	mtab *tab[MAPS_KIND_COUNT];
	mtab *nets;
} snap;

/* The configured part of one table, as last read (loop only). */
typedef struct base {
	maps_options opt;
	mapset_origin origin;
	char *source;         /* the file, "relay_domains" for a list, "" */
	char *name;           /* in parse errors: the file, or the table */
	char *text;           /* ends with a LF unless empty */
	size_t len;
	unsigned lines;
} base;

struct mapset {
	pthread_mutex_t mu;   /* guards cur */
	snap *cur;
	base b[MAPS_KIND_COUNT];
	bool loaded;
	sqlite3 *db;
	sqlite3_stmt *sel, *ins, *del;
};

/* ------------------------------------------------------------ helpers */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
	if (p == NULL) {
		fprintf(stderr, "mapset: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = xcalloc(n, 1);
	memcpy(d, s, n);
	return d;
}

static void seterr(char err[MAPSET_ERROR_MAX], const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void seterr(char err[MAPSET_ERROR_MAX], const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, MAPSET_ERROR_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
	/* a cut message keeps its start, which names the file and line */
}

static char lc(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* A growable text with a hard maximum (MAPS_FILE_MAX). */
typedef struct tbuf {
	char *p;
	size_t len, cap;
} tbuf;

static bool tbuf_add(tbuf *b, const char *s, size_t n)
{
	if (n > MAPS_FILE_MAX || b->len + n > MAPS_FILE_MAX)
		return false;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 4096 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > (size_t)MAPS_FILE_MAX + 1)
			cap = (size_t)MAPS_FILE_MAX + 1;
		char *q = realloc(b->p, cap);
		if (q == NULL) {
			fprintf(stderr, "mapset: out of memory\n");
			abort();
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

/* The reason of a maps error, without its "NAME, line N: " prefix. */
static const char *reason_of(const maps_error *e)
{
	char mark[40];
	snprintf(mark, sizeof(mark), ", line %u: ", e->line);
	const char *p = e->line > 0 ? strstr(e->text, mark) : NULL;
	return p != NULL ? p + strlen(mark) : e->text;
}

/* ------------------------------------------------------------ tables */

static void mtab_unref(mtab *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	maps_table_destroy(&t->t);
	free(t->source);
	free(t);
}

static void mtab_ref(mtab *t)
{
	atomic_fetch_add(&t->refs, 1);
}

static mtab *mtab_new(maps_table *t, mapset_origin origin, unsigned lines,
		      const char *source)
{
	mtab *x = xcalloc(1, sizeof(*x));
	atomic_init(&x->refs, 1);
	x->t = t;
	x->base = origin;
	x->base_lines = lines;
	x->source = xstrdup(source);
	return x;
}

static void snap_unref(snap *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++)
		mtab_unref(s->tab[k]);
	mtab_unref(s->nets);
	free(s);
}

/* A snapshot of these tables; takes over one reference of each. */
static snap *snap_new(mtab *tab[MAPS_KIND_COUNT], mtab *nets)
{
	snap *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++) {
		s->tab[k] = tab[k];
		s->pub.t[k] = tab[k]->t;
	}
	s->nets = nets;
	s->pub.relay_networks = nets->t;
	return s;
}

static snap *snap_of(const mapset_snap *p)
{
	return (snap *)((uintptr_t)p - offsetof(snap, pub));
}

/* Make s current; the mapset takes over the caller's reference. */
static void swap_in(mapset *m, snap *s)
{
	pthread_mutex_lock(&m->mu);
	snap *old = m->cur;
	m->cur = s;
	pthread_mutex_unlock(&m->mu);
	snap_unref(old);
}

const mapset_snap *mapset_get(mapset *m)
{
	pthread_mutex_lock(&m->mu);
	snap *s = m->cur;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&m->mu);
	return &s->pub;
}

void mapset_put(const mapset_snap *s)
{
	if (s != NULL)
		snap_unref(snap_of(s));
}

mapset_origin mapset_entry_origin(const mapset_snap *s, maps_kind kind,
				  const maps_match *m)
{
	const mtab *t = snap_of(s)->tab[kind];
	return m->line > t->base_lines ? MAPSET_ORIGIN_RUNTIME : t->base;
}

const char *mapset_source(const mapset_snap *s, maps_kind kind)
{
	return snap_of(s)->tab[kind]->source;
}

/* ------------------------------------------------------------ bases */

static void base_free(base *b)
{
	free(b->source);
	free(b->name);
	free(b->text);
	memset(b, 0, sizeof(*b));
}

static void base_empty(maps_kind kind, base *b)
{
	maps_options_default(kind, &b->opt);
	b->origin = MAPSET_ORIGIN_FILE;
	b->source = xstrdup("");
	b->name = xstrdup(maps_kind_name(kind));
	b->text = xstrdup("");
	b->len = 0;
	b->lines = 0;
}

static unsigned count_lines(const char *s, size_t len)
{
	unsigned n = 0;
	for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + len - p)));
	     p++)
		n++;
	return n;
}

/* The configured part of kind's table from conf. */
static int base_read(maps_kind kind, const cfg *conf, base *b,
		     char err[MAPSET_ERROR_MAX])
{
	const char *key = maps_kind_name(kind);
	const char *v = cfg_str(conf, key);
	base_empty(kind, b);
	b->opt.alias_fanout =
		(unsigned)cfg_int(conf, "virtual_alias_expansion_limit");
	b->opt.alias_depth =
		(unsigned)cfg_int(conf, "virtual_alias_recursion_limit");
	if (v[0] == '\0')
		return 0;
	if (kind == MAPS_RELAY_DOMAINS && v[0] != '/') {
		/* an inline list: checked as such (errors name items),
		 * then one item per line */
		maps_table *t = NULL;
		maps_error e;
		if (maps_relay_list_parse(&b->opt, key, v, &t, &e) != 0) {
			seterr(err, "%s", e.text);
			base_free(b);
			return -1;
		}
		maps_table_destroy(&t);
		tbuf tb = { 0 };
		unsigned items = 0;
		for (const char *p = v; *p != '\0';) {
			size_t n = strcspn(p, ", \t\r\n");
			if (n > 0) {
				if (!tbuf_add(&tb, p, n) || !tbuf_add(&tb, "\n", 1)) {
					free(tb.p);
					seterr(err, "%s: the list is too long", key);
					base_free(b);
					return -1;
				}
				items++;
			}
			p += n;
			if (*p != '\0')
				p++;
		}
		free(b->text);
		b->text = tb.p != NULL ? tb.p : xstrdup("");
		b->len = tb.len;
		b->lines = items;
		b->origin = MAPSET_ORIGIN_CONFIG;
		free(b->source);
		b->source = xstrdup(key);
		return 0;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	if (util_read_file(v, MAPS_FILE_MAX, &buf, &len) != 0) {
		seterr(err, "%s: %s", v,
		       errno == EFBIG ? "larger than 64 MiB" : strerror(errno));
		base_free(b);
		return -1;
	}
	if (len > 0 && buf[len - 1] != '\n') {
		/* util_read_file leaves room for a NUL after the data */
		uint8_t *nb = realloc(buf, len + 2);
		if (nb == NULL) {
			fprintf(stderr, "mapset: out of memory\n");
			abort();
		}
		buf = nb;
		buf[len++] = '\n';
		buf[len] = '\0';
	}
	free(b->text);
	b->text = (char *)buf;
	b->len = len;
	b->lines = count_lines(b->text, len);
	free(b->source);
	free(b->name);
	b->source = xstrdup(v);
	b->name = xstrdup(v);
	return 0;
}

/* A row of maps.db must stay one "KEY VALUE" line: a key of printable
 * non-blank bytes not starting with '#', a value without line breaks
 * (the table's parse checks the rest). */
static bool row_ok(const char *k, size_t kl, const char *v, size_t vl)
{
	if (kl == 0 || k[0] == '#')
		return false;
	for (size_t i = 0; i < kl; i++)
		if ((unsigned char)k[i] <= ' ' || k[i] == 0x7f)
			return false;
	for (size_t i = 0; i < vl; i++)
		if (v[i] == '\n' || v[i] == '\r' || v[i] == '\0')
			return false;
	return true;
}

/* kind's table: b's text and the run-time entries of the database (if
 * open), in one parse. */
static int tab_build(mapset *m, maps_kind kind, const base *b, mtab **r,
		     char err[MAPSET_ERROR_MAX])
{
	const char *tname = maps_kind_name(kind);
	tbuf tb = { 0 };
	size_t *row = NULL, n_rows = 0, cap_rows = 0;
	int rc = -1;
	if (!tbuf_add(&tb, b->text, b->len)) {
		seterr(err, "%s: larger than 64 MiB", b->name);
		goto out;
	}
	if (m->db != NULL) {
		sqlite3_reset(m->sel);
		if (sqlite3_bind_text(m->sel, 1, tname, -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
			seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
			goto out;
		}
		int s;
		while ((s = sqlite3_step(m->sel)) == SQLITE_ROW) {
			const char *k = (const char *)sqlite3_column_text(m->sel, 0);
			size_t kl = (size_t)sqlite3_column_bytes(m->sel, 0);
			const char *v = (const char *)sqlite3_column_text(m->sel, 1);
			size_t vl = (size_t)sqlite3_column_bytes(m->sel, 1);
			if (k == NULL || v == NULL || !row_ok(k, kl, v, vl)) {
				seterr(err, "%s: run-time entry %.80s: not one "
				       "line of a table (maps.db edited?)", tname,
				       k != NULL ? k : "(null)");
				goto out;
			}
			if (n_rows == cap_rows) {
				cap_rows = cap_rows == 0 ? 64 : cap_rows * 2;
				size_t *nr = realloc(row, cap_rows * sizeof(*row));
				if (nr == NULL) {
					fprintf(stderr, "mapset: out of memory\n");
					abort();
				}
				row = nr;
			}
			row[n_rows++] = tb.len;
			if (!tbuf_add(&tb, k, kl) || !tbuf_add(&tb, " ", 1) ||
			    !tbuf_add(&tb, v, vl) || !tbuf_add(&tb, "\n", 1)) {
				seterr(err, "%s: with its run-time entries "
				       "larger than 64 MiB", tname);
				goto out;
			}
		}
		if (s != SQLITE_DONE) {
			seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
			goto out;
		}
	}
	maps_table *t = NULL;
	maps_error e;
	if (maps_table_parse(kind, &b->opt, b->name, tb.p != NULL ? tb.p : "",
			     tb.len, &t, &e) != 0) {
		if (e.line > b->lines && e.line - b->lines - 1 < n_rows) {
			const char *k = tb.p + row[e.line - b->lines - 1];
			int kl = (int)strcspn(k, " ");
			seterr(err, "%s: run-time entry %.*s: %s", tname,
			       kl > 200 ? 200 : kl, k, reason_of(&e));
		} else {
			seterr(err, "%s", e.text);
		}
		goto out;
	}
	*r = mtab_new(t, b->origin, b->lines, b->source);
	rc = 0;
out:
	if (m->db != NULL)
		sqlite3_reset(m->sel);
	free(tb.p);
	free(row);
	return rc;
}

/* smtp_relay_networks: "NETWORK OK" per item, networks only. */
static int nets_build(const cfg *conf, mtab **r, char err[MAPSET_ERROR_MAX])
{
	static const char key[] = "smtp_relay_networks";
	size_t n = cfg_list_len(conf, key);
	tbuf tb = { 0 };
	for (size_t i = 0; i < n; i++) {
		const char *it = cfg_list_item(conf, key, i);
		if (it[0] == '#' || !tbuf_add(&tb, it, strlen(it)) ||
		    !tbuf_add(&tb, " OK\n", 4)) {
			seterr(err, "%s: %.200s: not an IP address or network",
			       key, it);
			free(tb.p);
			return -1;
		}
	}
	maps_table *t = NULL;
	maps_error e;
	if (maps_table_parse(MAPS_ACCESS, NULL, key, tb.p != NULL ? tb.p : "",
			     tb.len, &t, &e) != 0) {
		if (e.line >= 1 && e.line <= n)
			seterr(err, "%s: %.200s: %s", key,
			       cfg_list_item(conf, key, e.line - 1),
			       reason_of(&e));
		else
			seterr(err, "%s", e.text);
		free(tb.p);
		return -1;
	}
	free(tb.p);
	maps_match mm;
	for (size_t i = 0; maps_table_entry(t, i, &mm); i++) {
		if (mm.form != MAPS_FORM_NETWORK) {
			seterr(err, "%s: %.200s: not an IP address or network "
			       "(CIDR)", key, mm.key);
			maps_table_destroy(&t);
			return -1;
		}
	}
	*r = mtab_new(t, MAPSET_ORIGIN_CONFIG, (unsigned)n, key);
	return 0;
}

/* ------------------------------------------------------------ database */

static bool db_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

static int db_open(mapset *m, const char *path, char err[MAPSET_ERROR_MAX])
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		seterr(err, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* never readable by others, also when an older copy was */
	if ((st.st_mode & 077) != 0 && st.st_uid == geteuid() &&
	    fchmod(fd, 0600) != 0) {
		seterr(err, "%s: chmod: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (sqlite3_open_v2(path, &m->db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		seterr(err, "%s: %s", path,
		       m->db != NULL ? sqlite3_errmsg(m->db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(m->db, 2000);
	sqlite3_stmt *v = NULL;
	int version = -1;
	if (!db_exec(m->db, "PRAGMA journal_mode=DELETE; "
			    "PRAGMA synchronous=FULL;") ||
	    sqlite3_prepare_v2(m->db, "PRAGMA user_version", -1, &v, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(v) != SQLITE_ROW) {
		sqlite3_finalize(v);
		seterr(err, "%s: %s", path, sqlite3_errmsg(m->db));
		return -1;
	}
	version = sqlite3_column_int(v, 0);
	sqlite3_finalize(v);
	if (version == 0 &&
	    !db_exec(m->db, "BEGIN IMMEDIATE;"
			    "CREATE TABLE IF NOT EXISTS entries("
			    " kind TEXT NOT NULL, key TEXT NOT NULL,"
			    " value TEXT NOT NULL, added INTEGER NOT NULL,"
			    " PRIMARY KEY(kind, key));"
			    "PRAGMA user_version=1;"
			    "COMMIT;")) {
		seterr(err, "%s: cannot create the table: %s", path,
		       sqlite3_errmsg(m->db));
		db_exec(m->db, "ROLLBACK");
		return -1;
	}
	if (version != 0 && version != DB_VERSION) {
		seterr(err, "%s: unknown format (user_version %d)", path,
		       version);
		return -1;
	}
	if (sqlite3_prepare_v2(m->db,
			       "SELECT key, value FROM entries WHERE kind = ?1 "
			       "ORDER BY added, rowid",
			       -1, &m->sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db,
			       "INSERT INTO entries(kind, key, value, added) "
			       "VALUES (?1, ?2, ?3, ?4)",
			       -1, &m->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(m->db,
			       "DELETE FROM entries WHERE kind = ?1 AND key = ?2",
			       -1, &m->del, NULL) != SQLITE_OK) {
		seterr(err, "%s: %s", path, sqlite3_errmsg(m->db));
		return -1;
	}
	return 0;
}

static void db_close(mapset *m)
{
	sqlite3_finalize(m->sel);
	sqlite3_finalize(m->ins);
	sqlite3_finalize(m->del);
	m->sel = m->ins = m->del = NULL;
	if (m->db != NULL)
		sqlite3_close(m->db);
	m->db = NULL;
}

/* ------------------------------------------------------------ life */

mapset *mapset_create(void)
{
	mapset *m = xcalloc(1, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	mtab *tab[MAPS_KIND_COUNT], *nets;
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++) {
		maps_table *t = NULL;
		base_empty((maps_kind)k, &m->b[k]);
		if (maps_table_parse((maps_kind)k, NULL, NULL, "", 0, &t,
				     NULL) != 0)
			abort(); /* an empty text always parses */
		tab[k] = mtab_new(t, MAPSET_ORIGIN_FILE, 0, "");
	}
	maps_table *t = NULL;
	if (maps_table_parse(MAPS_ACCESS, NULL, "smtp_relay_networks", "", 0,
			     &t, NULL) != 0)
		abort();
	nets = mtab_new(t, MAPSET_ORIGIN_CONFIG, 0, "smtp_relay_networks");
	m->cur = snap_new(tab, nets);
	return m;
}

int mapset_load(mapset *m, const cfg *conf, const char *db_path,
		char err[MAPSET_ERROR_MAX])
{
	if (m->loaded || m->db != NULL) {
		seterr(err, "the tables are loaded already");
		return -1;
	}
	if (db_open(m, db_path, err) != 0) {
		db_close(m);
		return -1;
	}
	m->loaded = true;
	if (mapset_reload(m, conf, err) != 0) {
		m->loaded = false;
		db_close(m);
		return -1;
	}
	return 0;
}

int mapset_open(const cfg *conf, const char *db_path, mapset **m_r,
		char err[MAPSET_ERROR_MAX])
{
	mapset *m = mapset_create();
	if (mapset_load(m, conf, db_path, err) != 0) {
		mapset_close(&m);
		return -1;
	}
	*m_r = m;
	return 0;
}

void mapset_close(mapset **mp)
{
	if (mp == NULL || *mp == NULL)
		return;
	mapset *m = *mp;
	db_close(m);
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++)
		base_free(&m->b[k]);
	snap_unref(m->cur); /* readers keep theirs until they put them */
	pthread_mutex_destroy(&m->mu);
	free(m);
	*mp = NULL;
}

/* Append "; more" to err while it fits. */
static void err_append(char err[MAPSET_ERROR_MAX], const char *more)
{
	size_t n = strlen(err);
	if (n == 0) {
		seterr(err, "%s", more);
		return;
	}
	if (n + 2 + strlen(more) < MAPSET_ERROR_MAX &&
	    snprintf(err + n, MAPSET_ERROR_MAX - n, "; %s", more) < 0)
		err[n] = '\0';
}

int mapset_reload(mapset *m, const cfg *conf, char err[MAPSET_ERROR_MAX])
{
	base nb[MAPS_KIND_COUNT];
	mtab *tab[MAPS_KIND_COUNT] = { 0 }, *nets = NULL;
	char one[MAPSET_ERROR_MAX];
	bool ok = true;
	err[0] = '\0';
	memset(nb, 0, sizeof(nb));
	if (!m->loaded) {
		seterr(err, "the tables are not loaded");
		return -1;
	}
	/* every table is built, so that every bad file is reported */
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++) {
		if (base_read((maps_kind)k, conf, &nb[k], one) != 0 ||
		    tab_build(m, (maps_kind)k, &nb[k], &tab[k], one) != 0) {
			err_append(err, one);
			ok = false;
		}
	}
	if (nets_build(conf, &nets, one) != 0) {
		err_append(err, one);
		ok = false;
	}
	if (!ok) {
		for (size_t k = 0; k < MAPS_KIND_COUNT; k++) {
			base_free(&nb[k]);
			mtab_unref(tab[k]);
		}
		mtab_unref(nets);
		return -1;
	}
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++) {
		base_free(&m->b[k]);
		m->b[k] = nb[k];
	}
	swap_in(m, snap_new(tab, nets));
	return 0;
}

/* ------------------------------------------------------------ entries */

/* A copy of the current snapshot with kind's table replaced by t. */
static snap *snap_with(mapset *m, maps_kind kind, mtab *t)
{
	snap *cur = m->cur; /* the loop is the only writer of cur */
	mtab *tab[MAPS_KIND_COUNT];
	for (size_t k = 0; k < MAPS_KIND_COUNT; k++) {
		tab[k] = k == (size_t)kind ? t : cur->tab[k];
		if (k != (size_t)kind)
			mtab_ref(tab[k]);
	}
	mtab_ref(cur->nets);
	return snap_new(tab, cur->nets);
}

/* The entry whose key is key (folded), in the current table of kind. */
static bool find_key(const mapset *m, maps_kind kind, const char *key,
		     maps_match *mm_r)
{
	const maps_table *t = m->cur->tab[kind]->t;
	for (size_t i = 0; maps_table_entry(t, i, mm_r); i++)
		if (strcmp(mm_r->key, key) == 0)
			return true;
	return false;
}

/* Where a key of the current table is, for messages. */
static void where(const mapset *m, maps_kind kind, const maps_match *mm,
		  char *out, size_t size)
{
	const mtab *t = m->cur->tab[kind];
	if (mm->line > t->base_lines)
		snprintf(out, size, "a run-time entry");
	else if (t->base == MAPSET_ORIGIN_CONFIG)
		snprintf(out, size, "in the %s setting", t->source);
	else
		snprintf(out, size, "in %.200s, line %u", t->source, mm->line);
}

static bool kind_ok(maps_kind kind, char err[MAPSET_ERROR_MAX])
{
	if ((unsigned)kind >= MAPS_KIND_COUNT) {
		seterr(err, "unknown table");
		return false;
	}
	return true;
}

/* key, ASCII-folded as the tables fold keys, into out. */
static bool fold_key(const char *key, char out[MAPS_KEY_MAX + 1])
{
	size_t n = strlen(key);
	if (n == 0 || n > MAPS_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = lc(key[i]);
	out[n] = '\0';
	return true;
}

/* Inside the open transaction of an add or del: build the kind's table
 * anew, commit, and swap it in; on any failure roll back and keep the
 * tables in force. */
static int rebuild_commit(mapset *m, maps_kind kind, char err[MAPSET_ERROR_MAX])
{
	mtab *t = NULL;
	if (tab_build(m, kind, &m->b[kind], &t, err) != 0) {
		db_exec(m->db, "ROLLBACK");
		return -1;
	}
	if (!db_exec(m->db, "COMMIT")) {
		seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
		db_exec(m->db, "ROLLBACK");
		mtab_unref(t);
		return -1;
	}
	swap_in(m, snap_with(m, kind, t));
	return 0;
}

int mapset_add(mapset *m, maps_kind kind, const char *key, const char *value,
	       char err[MAPSET_ERROR_MAX])
{
	char k[MAPS_KEY_MAX + 1], v[MAPS_LINE_MAX + 1], at[300];
	maps_error e;
	maps_match mm;
	err[0] = '\0';
	if (!kind_ok(kind, err))
		return -1;
	if (!m->loaded) {
		seterr(err, "the tables are not loaded");
		return -1;
	}
	const char *tname = maps_kind_name(kind);
	if (key == NULL)
		key = "";
	if (value == NULL)
		value = "";
	/* the value as a file line would give it: blanks at both ends off */
	while (*value == ' ' || *value == '\t')
		value++;
	size_t vl = strlen(value);
	while (vl > 0 && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
		vl--;
	if (vl > MAPS_LINE_MAX) {
		seterr(err, "%s: the value is longer than %u bytes", tname,
		       MAPS_LINE_MAX);
		return -1;
	}
	memcpy(v, value, vl);
	v[vl] = '\0';
	if (maps_entry_check(kind, key, v, &e) != 0) {
		const char *why = strncmp(e.text, "entry: ", 7) == 0 ? e.text + 7
								     : e.text;
		seterr(err, "%s: %s", tname, why);
		return -1;
	}
	if (!fold_key(key, k)) {
		seterr(err, "%s: no key, or longer than %u bytes", tname,
		       MAPS_KEY_MAX);
		return -1;
	}
	if (find_key(m, kind, k, &mm)) {
		const mtab *ct = m->cur->tab[kind];
		where(m, kind, &mm, at, sizeof(at));
		seterr(err, "%s: %.200s is already %s (%s)", tname, k, at,
		       mm.line > ct->base_lines ? "delete it first"
		       : ct->base == MAPSET_ORIGIN_CONFIG
			       ? "edit the configuration, then reload"
			       : "edit the file, then reload");
		return -1;
	}
	if (!db_exec(m->db, "BEGIN IMMEDIATE")) {
		seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
		return -1;
	}
	sqlite3_reset(m->ins);
	sqlite3_bind_text(m->ins, 1, tname, -1, SQLITE_STATIC);
	sqlite3_bind_text(m->ins, 2, k, -1, SQLITE_STATIC);
	sqlite3_bind_text(m->ins, 3, v, -1, SQLITE_STATIC);
	sqlite3_bind_int64(m->ins, 4, (sqlite3_int64)time(NULL));
	int s = sqlite3_step(m->ins);
	sqlite3_reset(m->ins);
	sqlite3_clear_bindings(m->ins);
	if (s != SQLITE_DONE) {
		if (s == SQLITE_CONSTRAINT)
			seterr(err, "%s: %.200s is already a run-time entry",
			       tname, k);
		else
			seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
		db_exec(m->db, "ROLLBACK");
		return -1;
	}
	return rebuild_commit(m, kind, err);
}

int mapset_del(mapset *m, maps_kind kind, const char *key,
	       char err[MAPSET_ERROR_MAX])
{
	char k[MAPS_KEY_MAX + 1], at[300];
	maps_match mm;
	err[0] = '\0';
	if (!kind_ok(kind, err))
		return -1;
	if (!m->loaded) {
		seterr(err, "the tables are not loaded");
		return -1;
	}
	const char *tname = maps_kind_name(kind);
	if (key == NULL || !fold_key(key, k)) {
		seterr(err, "%s: no key, or longer than %u bytes", tname,
		       MAPS_KEY_MAX);
		return -1;
	}
	if (!db_exec(m->db, "BEGIN IMMEDIATE")) {
		seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
		return -1;
	}
	sqlite3_reset(m->del);
	sqlite3_bind_text(m->del, 1, tname, -1, SQLITE_STATIC);
	sqlite3_bind_text(m->del, 2, k, -1, SQLITE_STATIC);
	int s = sqlite3_step(m->del);
	sqlite3_reset(m->del);
	sqlite3_clear_bindings(m->del);
	if (s != SQLITE_DONE) {
		seterr(err, "maps.db: %s", sqlite3_errmsg(m->db));
		db_exec(m->db, "ROLLBACK");
		return -1;
	}
	if (sqlite3_changes(m->db) == 0) {
		db_exec(m->db, "ROLLBACK");
		if (find_key(m, kind, k, &mm)) {
			where(m, kind, &mm, at, sizeof(at));
			seterr(err, "%s: %.200s is not a run-time entry: it is "
			       "%s (edit %s, then reload)", tname, k, at,
			       m->cur->tab[kind]->base == MAPSET_ORIGIN_CONFIG
				       ? "the configuration"
				       : "the file");
		} else {
			seterr(err, "%s: no run-time entry %.200s", tname, k);
		}
		return -1;
	}
	return rebuild_commit(m, kind, err);
}
