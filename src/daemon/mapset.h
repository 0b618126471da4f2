/*
 * mapset.h — the node's lookup tables at run time (issue 4): the five
 * tables of src/maps (access_map, relay_domains, virtual_alias_maps,
 * canonical_maps, transport_maps), each built from its table file (the
 * config key of the same name) followed by the entries added at run time
 * with `amp map add`, which live in SQLite (<data_dir>/maps.db).
 *
 * Readers take an immutable snapshot (mapset_get) and release it
 * (mapset_put); snapshots are reference counted atomically, so a reader
 * on a worker thread keeps its tables while the loop swaps in new ones.
 * Everything else (open, reload, add, del) runs on the node's loop.
 *
 * A reload (SIGHUP) or an add/del builds all the new tables first and
 * swaps them in only if every one built: a bad file line is reported as
 * "FILE, line N: reason" and the old tables stay in force.
 */
#ifndef AMP_MAPSET_H
#define AMP_MAPSET_H

#include "config.h"
#include "maps.h"

#include <stdbool.h>
#include <stddef.h>

#define MAPSET_ERROR_MAX 400u

typedef struct mapset mapset;

/* An immutable set of tables.  t[kind] is never NULL (an empty table when
 * nothing is configured).  relay_networks: the smtp_relay_networks list as
 * an access-style table of networks (maps_cidr_lookup), never NULL. */
typedef struct mapset_snap {
	const maps_table *t[MAPS_KIND_COUNT];
	const maps_table *relay_networks;
} mapset_snap;

/* Build the tables from conf (the table-file keys, the alias limits,
 * smtp_relay_networks) and db_path (created 0600 if missing).  0, or -1
 * with err filled. */
int mapset_open(const cfg *conf, const char *db_path, mapset **m_r,
		char err[MAPSET_ERROR_MAX]) __attribute__((warn_unused_result));
void mapset_close(mapset **m);

/* SIGHUP: rebuild every table from conf (the new configuration) and the
 * database.  0 and the new tables in force, or -1 with err filled and the
 * old tables kept. */
int mapset_reload(mapset *m, const cfg *conf, char err[MAPSET_ERROR_MAX])
	__attribute__((warn_unused_result));

/* The current tables (reference taken); any thread may call mapset_put. */
const mapset_snap *mapset_get(mapset *m);
void mapset_put(const mapset_snap *s);

/* Run-time entries (the `amp map` commands).  add: the entry is checked
 * as a file line would be (maps_entry_check), must not duplicate a key of
 * the table file or the database, is stored, and the table rebuilt.
 * del: removes a run-time entry (entries of the file are edited in the
 * file).  0, or -1 with err filled and nothing changed. */
int mapset_add(mapset *m, maps_kind kind, const char *key, const char *value,
	       char err[MAPSET_ERROR_MAX]) __attribute__((warn_unused_result));
int mapset_del(mapset *m, maps_kind kind, const char *key,
	       char err[MAPSET_ERROR_MAX]) __attribute__((warn_unused_result));

/* Two-step opening, for a component that must hold the mapset before the
 * tables can be read (the SMTP listener is started as root, before the
 * privilege drop; the tables are read after it, as the node's user, as
 * on every reload).  mapset_create: every table empty, no database;
 * never fails (aborts when out of memory).  mapset_load: once, on a set
 * made by mapset_create; as mapset_open, and on an error the set stays
 * empty.  mapset_open is the two in one. */
mapset *mapset_create(void);
int mapset_load(mapset *m, const cfg *conf, const char *db_path,
		char err[MAPSET_ERROR_MAX]) __attribute__((warn_unused_result));

/* Where an entry came from (`amp map list`): the table file (the entry's
 * line is its first line in the file), an item of a list in the
 * configuration (relay_domains written inline, smtp_relay_networks; the
 * line is the item's number), or a run-time entry (maps.db). */
typedef enum mapset_origin {
	MAPSET_ORIGIN_FILE = 0,
	MAPSET_ORIGIN_CONFIG,
	MAPSET_ORIGIN_RUNTIME,
} mapset_origin;

/* The origin of m, an entry of s->t[kind] (maps_table_entry, or what a
 * lookup matched). */
mapset_origin mapset_entry_origin(const mapset_snap *s, maps_kind kind,
				  const maps_match *m);
/* The configured source of s->t[kind]: the file's path, the name of the
 * setting holding an inline list ("relay_domains"), or "" when there is
 * none (only run-time entries).  Valid while s is held. */
const char *mapset_source(const mapset_snap *s, maps_kind kind);

#endif
