/*
 * util.c — see util.h.  Bounded reads, atomic writes, checked numbers.
 */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int util_read_file(const char *path, size_t max, uint8_t **buf_r,
		   size_t *len_r)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t cap = 64 * 1024, len = 0;
	uint8_t *buf = malloc(cap + 1);
	if (buf == NULL)
		goto fail_nomem;
	for (;;) {
		if (len == cap) {
			if (cap > max)
				break;
			/* Grown by hand so the old copy (it may be a message
			 * about to be sealed) is wiped, not left in the heap. */
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			uint8_t *n = malloc(ncap + 1);
			if (n == NULL)
				goto fail_nomem;
			memcpy(n, buf, len);
			explicit_bzero(buf, cap + 1);
			free(buf);
			buf = n;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int saved = errno;
			free(buf);
			if (!is_stdin)
				close(fd);
			errno = saved;
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max)
			break;
	}
	if (!is_stdin)
		close(fd);
	if (len > max) {
		free(buf);
		errno = EFBIG;
		return -1;
	}
	buf[len] = '\0';
	*buf_r = buf;
	*len_r = len;
	return 0;
fail_nomem:
	free(buf);
	if (!is_stdin)
		close(fd);
	errno = ENOMEM;
	return -1;
}

int util_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == NULL || slash == path) {
		memcpy(dir, slash == NULL ? "." : "/", 2);
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

/* Write into an existing non-regular file (FIFO, device, socket). */
static int write_into(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (util_write_all(fd, data, len) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int util_write_file_atomic(const char *path, const void *data, size_t len,
			   mode_t mode, int flags)
{
	char tmp[PATH_MAX], real[PATH_MAX];
	struct stat st;
	const char *target = path;

	if (strcmp(path, "-") == 0)
		return util_write_all(STDOUT_FILENO, data, len);
	if (lstat(path, &st) == 0) {
		if (flags & UTIL_NO_REPLACE) {
			errno = EEXIST;
			return -1;
		}
		if (S_ISLNK(st.st_mode)) {
			if (realpath(path, real) == NULL) {
				if (errno != ENOENT)
					return -1;
				/* dangling link: replace the link itself */
			} else {
				target = real;
			}
		}
		if (stat(target, &st) == 0 && !S_ISREG(st.st_mode))
			return write_into(target, data, len);
	}
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", target);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	mode_t um = umask(0);
	umask(um);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode & ~um) != 0 || util_write_all(fd, data, len) != 0 ||
	    fsync(fd) != 0) {
		int saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	int r = close(fd);
	if (r == 0) {
		if (flags & UTIL_NO_REPLACE) {
			/* link() fails with EEXIST if the name appeared meanwhile */
			r = link(tmp, target);
			if (r == 0)
				unlink(tmp);
		} else {
			r = rename(tmp, target);
		}
	}
	if (r != 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return fsync_dir_of(target);
}

bool util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return false;
	*v_r = v;
	return true;
}

int util_mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -1;
		buf[i] = c;
	}
	return 0;
}

size_t util_utf8_seq(const uint8_t *s, size_t len, uint32_t *cp_r)
{
	uint8_t c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1fu, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0fu, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07u, min = 0x10000;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}
