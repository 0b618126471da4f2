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

#endif
