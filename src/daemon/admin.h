/*
 * admin.h — the node's admin channel: a Unix stream socket,
 * <data_dir>/admin.sock, served on the node's loop (libuv).  The wire
 * format is admin-proto.h; docs/ARCHITECTURE.md "The admin channel" and
 * docs/node.md "The admin socket" describe it.  `amp map` is its client.
 *
 * Who may talk: the socket is made after the privilege drop, mode 0600,
 * in data_dir (0700), and each connection's peer (SO_PEERCRED) must be
 * root or the node's own user.  Limits: ADMIN_CONNS_MAX connections at
 * once (more are answered "error" and closed), ADMIN_IDLE_S seconds
 * without a request, a request line of ADMIN_LINE_MAX bytes (a longer
 * one is answered "error" and skipped to its LF).
 *
 * Commands (a table in admin.c: name, arity, handler):
 *   help
 *   map add TABLE KEY [VALUE]   mapset_add
 *   map del TABLE KEY           mapset_del
 *   map list TABLE              every entry: "* ORIGIN TAB LINE TAB KEY
 *                               TAB VALUE", ORIGIN file, config or
 *                               run-time, in file order then run-time
 *   map test TABLE QUERY        maps_test on the current tables: "* match
 *                               TAB KEY TAB FORM TAB ORIGIN TAB WHERE"
 *                               when an entry matched; "ok RESULT"
 *   map reload                  mapset_reload with the running
 *                               configuration (the maps part of SIGHUP,
 *                               without re-reading the configuration file)
 * TABLE: access_map, relay_domains, virtual_alias_maps, canonical_maps,
 * transport_maps, or access, relay, virtual, canonical, transport.
 */
#ifndef AMP_ADMIN_H
#define AMP_ADMIN_H

#include "admin-proto.h"
#include "config.h"
#include "mapset.h"

#include <stddef.h>
#include <uv.h>

#define ADMIN_SOCKET_NAME "admin.sock"
#define ADMIN_CONNS_MAX 16u
#define ADMIN_IDLE_S 30u

typedef struct admin admin;

typedef struct admin_params {
	uv_loop_t *loop;
	const char *data_dir;    /* the socket is <data_dir>/admin.sock */
	mapset *maps;
	/* the running configuration (for `map reload`), read on the loop */
	const cfg *(*conf)(void *arg);
	void *arg;
} admin_params;

/* Make the socket (a stale one, with nobody listening, is removed; one
 * another node answers on is an error) and listen on it.  0, or -1 with
 * err filled.  Runs on the loop thread; blocks on a few system calls. */
int admin_start(const admin_params *p, admin **a_r, char *err,
		size_t err_size) __attribute__((warn_unused_result));

/* Close the listener and every connection and remove the socket file.
 * The memory is freed once the handles have closed (run the loop).
 * NULL is fine; *a is set to NULL. */
void admin_stop(admin **a);

#endif
