/*
 * util.h — generic helpers for AfterSMTP programs (nothing about mail):
 * bounded file reading, atomic file writing, checked number parsing.
 * They block (plain file I/O); they are for commands, not the event loop.
 */
#ifndef AMP_UTIL_H
#define AMP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define UTIL_WUR __attribute__((warn_unused_result))
#else
#define UTIL_WUR
#endif

/* Read a whole file ("-" is standard input) of at most max bytes into a new
 * NUL-terminated buffer (free with free()).  Returns 0, or -1 with errno set
 * (EFBIG when the file exceeds max). */
int util_read_file(const char *path, size_t max, uint8_t **buf_r,
		   size_t *len_r) UTIL_WUR;

/* Write data to path atomically: a temporary file in the same directory,
 * written, fsync()ed, given `mode` (less the umask), renamed over path, and
 * the directory fsync()ed.  Nothing is left half-written.
 *  - "-" writes to standard output;
 *  - an existing FIFO, device or socket is written into, not replaced;
 *  - a symbolic link is followed: its target is replaced, not the link;
 *  - with UTIL_NO_REPLACE an existing path is never replaced: the call fails
 *    with EEXIST, even if the path appears while the data is written.
 * Returns 0, or -1 with errno set. */
#define UTIL_NO_REPLACE 1
int util_write_file_atomic(const char *path, const void *data, size_t len,
			   mode_t mode, int flags) UTIL_WUR;

/* Write all of data to fd, retrying on EINTR and short writes. */
int util_write_all(int fd, const void *data, size_t len) UTIL_WUR;

/* Parse a decimal unsigned integer filling all of s, within [min, max]. */
bool util_parse_u64(const char *s, uint64_t min, uint64_t max,
		    uint64_t *v_r) UTIL_WUR;

/* mkdir -p with mode for each created component. Returns 0 or -1/errno. */
int util_mkdirs(const char *path, mode_t mode) UTIL_WUR;

/* The well-formed UTF-8 sequence at s[0..len) (len >= 1): its length
 * (1..4) and code point in *cp_r, or 0 when it is truncated, overlong, a
 * surrogate or beyond U+10FFFF.  The one UTF-8 check of the tree. */
size_t util_utf8_seq(const uint8_t *s, size_t len, uint32_t *cp_r);

#endif
