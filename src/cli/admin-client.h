/*
 * admin-client.h — the `amp` side of the node's admin channel, shared by
 * `amp map` (cmd-map.c) and `amp queue` (cmd-queue.c): find the socket
 * from the node's configuration, connect, send one request, and read the
 * answer line by line (the wire format is src/daemon/admin-proto.h).
 *
 * Blocking: every read and write has the timeout given at connect.
 * Errors are reported on standard error through cli_err (the command's
 * name first) and returned as CLI_FAIL / -1; nothing here exits.
 * Memory: one admin_client holds one reply line of at most
 * ADMIN_REPLY_LINE_MAX bytes; a longer line is an error.
 */
#ifndef AMP_CLI_ADMIN_CLIENT_H
#define AMP_CLI_ADMIN_CLIENT_H

#include "cli.h"

#include <limits.h>
#include <stddef.h>

/* aftersmtpd's default configuration file (aftersmtpd.c) */
#define ADMIN_CLIENT_DEFAULT_CONFIG "/etc/aftersmtp/aftersmtpd.conf"
/* The socket's name in the node's data_dir. */
#define ADMIN_CLIENT_SOCKET_NAME "admin.sock"

typedef struct admin_client admin_client;

/* <data_dir>/admin.sock into out, with data_dir read from the node's
 * configuration file `config` (NULL: ADMIN_CLIENT_DEFAULT_CONFIG, and the
 * built-in default when that file does not exist) with the node's own
 * schema, so a configuration aftersmtpd refuses is refused here too (its
 * errors printed).  CLI_OK or CLI_FAIL (reported). */
int admin_client_socket_path(const cli_env *env, const char *config,
			     char out[PATH_MAX])
	__attribute__((warn_unused_result));

/* Connect to the Unix socket at path (one too long for sun_path is
 * reached through its directory's descriptor, /proc/self/fd/N/NAME) and
 * send the request req[0..len) (admin_format_request's output).  Every
 * later read and write times out after timeout_s seconds.  CLI_OK with
 * *ac_r set, or CLI_FAIL (reported: "is aftersmtpd running?" when nothing
 * listens, "permission denied (run as root or as the node's user)"). */
int admin_client_open(const cli_env *env, const char *path,
		      unsigned timeout_s, const char *req, size_t len,
		      admin_client **ac_r)
	__attribute__((warn_unused_result));

/* The next line of the answer without its LF, NUL-terminated, in the
 * client's buffer (valid until the next call; the caller may change its
 * bytes): 0, or -1 (reported) when the node closed the connection, a read
 * failed or timed out, or the line is too long. */
int admin_client_next_line(admin_client *ac, char **line_r)
	__attribute__((warn_unused_result));

/* Split an answer line "a TAB b TAB ..." in place into at most max
 * fields (the last keeps any further tabs); returns how many. */
size_t admin_client_split(char *s, char **f, size_t max);

/* Close the connection and free; NULL is fine. */
void admin_client_close(admin_client **ac);

#endif
