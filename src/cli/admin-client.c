/*
 * admin-client.c — see admin-client.h.  One Unix stream socket, blocking,
 * with SO_RCVTIMEO/SO_SNDTIMEO; one bounded line buffer.
 */
#include "admin-client.h"

#include "admin-proto.h"
#include "config.h"
#include "node.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

struct admin_client {
	const cli_env *env;
	int fd;
	size_t len, start;             /* bytes in buf; where the next line
					  starts */
	char buf[ADMIN_REPLY_LINE_MAX + 1];
};

int admin_client_socket_path(const cli_env *env, const char *config,
			     char out[PATH_MAX])
{
	cfg *c = NULL;
	cfg_errors errs;
	const char *path = config != NULL ? config : ADMIN_CLIENT_DEFAULT_CONFIG;
	if (config == NULL && access(path, F_OK) != 0) {
		if (cfg_defaults(&node_schema, &c, &errs) != 0)
			return CLI_FAIL;
	} else {
		uint8_t *text;
		size_t len;
		if (util_read_file(path, CFG_FILE_MAX, &text, &len) != 0) {
			cli_err(env, "%s: %s", path,
				errno == EFBIG ? "larger than 1 MiB"
					       : strerror(errno));
			return CLI_FAIL;
		}
		int r = cfg_parse(&node_schema, (const char *)text, len, &c,
				  &errs);
		free(text);
		if (r != 0) {
			cfg_print_errors(&errs, path, stderr);
			return CLI_FAIL;
		}
	}
	int n = snprintf(out, PATH_MAX, "%s/%s", cfg_str(c, "data_dir"),
			 ADMIN_CLIENT_SOCKET_NAME);
	cfg_free(&c);
	if (n < 0 || n >= PATH_MAX) {
		cli_err(env, "data_dir is too long");
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* sa for path; a path too long for sun_path goes through its directory's
 * descriptor, left open in *dirfd_r (-1 when none) until connect. */
static int address(const cli_env *env, const char *path,
		   struct sockaddr_un *sa, int *dirfd_r)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	*dirfd_r = -1;
	size_t pl = strlen(path);
	if (pl < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, pl + 1);
		return CLI_OK;
	}
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t dl = slash != NULL ? (size_t)(slash - path) : 0;
	if (slash == NULL || dl == 0 || dl >= sizeof(dir)) {
		cli_err(env, "cannot connect to %s: path too long", path);
		return CLI_FAIL;
	}
	memcpy(dir, path, dl);
	dir[dl] = '\0';
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int n = dirfd < 0 ? -1
			  : snprintf(sa->sun_path, sizeof(sa->sun_path),
				     "/proc/self/fd/%d/%s", dirfd, slash + 1);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
		cli_err(env, "cannot connect to %s: %s", path,
			dirfd < 0 ? strerror(errno) : "path too long");
		if (dirfd >= 0)
			close(dirfd);
		return CLI_FAIL;
	}
	*dirfd_r = dirfd;
	return CLI_OK;
}

int admin_client_open(const cli_env *env, const char *path,
		      unsigned timeout_s, const char *req, size_t len,
		      admin_client **ac_r)
{
	struct sockaddr_un sa;
	int dirfd;
	*ac_r = NULL;
	if (address(env, path, &sa, &dirfd) != CLI_OK)
		return CLI_FAIL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = -1, e = errno;
	if (fd >= 0) {
		struct timeval tv = { .tv_sec = (time_t)timeout_s };
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		r = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
		e = errno;
	}
	if (dirfd >= 0)
		close(dirfd);
	if (r != 0) {
		if (fd >= 0)
			close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			cli_err(env, "cannot connect to %s: is aftersmtpd "
				"running?", path);
		else if (e == EACCES || e == EPERM)
			cli_err(env, "cannot connect to %s: permission denied "
				"(run as root or as the node's user)", path);
		else
			cli_err(env, "cannot connect to %s: %s", path,
				strerror(e));
		return CLI_FAIL;
	}
	if (util_write_all(fd, req, len) != 0) {
		cli_err(env, "cannot send to %s: %s", path, strerror(errno));
		close(fd);
		return CLI_FAIL;
	}
	admin_client *ac = calloc(1, sizeof(*ac));
	if (ac == NULL) {
		cli_err(env, "out of memory");
		close(fd);
		return CLI_FAIL;
	}
	ac->env = env;
	ac->fd = fd;
	*ac_r = ac;
	return CLI_OK;
}

int admin_client_next_line(admin_client *ac, char **line_r)
{
	for (;;) {
		char *nl = memchr(ac->buf + ac->start, '\n', ac->len - ac->start);
		if (nl != NULL) {
			*nl = '\0';
			*line_r = ac->buf + ac->start;
			ac->start = (size_t)(nl - ac->buf) + 1;
			return 0;
		}
		if (ac->start > 0) {
			memmove(ac->buf, ac->buf + ac->start, ac->len - ac->start);
			ac->len -= ac->start;
			ac->start = 0;
		}
		if (ac->len == sizeof(ac->buf) - 1) {
			cli_err(ac->env, "the node's answer has a line longer "
				"than %u bytes", ADMIN_REPLY_LINE_MAX);
			return -1;
		}
		ssize_t n = read(ac->fd, ac->buf + ac->len,
				 sizeof(ac->buf) - 1 - ac->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cli_err(ac->env, "%s", n == 0
				? "the node closed the connection without an "
				  "answer"
				: errno == EAGAIN || errno == EWOULDBLOCK
					? "no answer from the node (timed out)"
					: strerror(errno));
			return -1;
		}
		ac->len += (size_t)n;
	}
}

void admin_client_close(admin_client **acp)
{
	admin_client *ac = *acp;
	if (ac == NULL)
		return;
	close(ac->fd);
	free(ac);
	*acp = NULL;
}

size_t admin_client_split(char *s, char **f, size_t max)
{
	size_t n = 0;
	f[n++] = s;
	while (n < max) {
		char *t = strchr(s, '\t');
		if (t == NULL)
			break;
		*t = '\0';
		s = t + 1;
		f[n++] = s;
	}
	return n;
}
