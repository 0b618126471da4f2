/*
 * test-util.c — src/util: checked number parsing, bounded file reading,
 * atomic writing (mode, no temporary left behind), mkdirs.
 */
#include "test-common.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_parse_u64(void **state)
{
	(void)state;
	uint64_t v;
	assert_true(util_parse_u64("0", 0, 10, &v) && v == 0);
	assert_true(util_parse_u64("18446744073709551615", 0, UINT64_MAX, &v) &&
		    v == UINT64_MAX);
	assert_false(util_parse_u64("18446744073709551616", 0, UINT64_MAX, &v));
	assert_false(util_parse_u64("", 0, 10, &v));
	assert_false(util_parse_u64("-1", 0, 10, &v));
	assert_false(util_parse_u64("1x", 0, 10, &v));
	assert_false(util_parse_u64(" 1", 0, 10, &v));
	assert_false(util_parse_u64("11", 0, 10, &v));
	assert_false(util_parse_u64("4", 5, 10, &v));
	assert_false(util_parse_u64(NULL, 0, 10, &v));
}

static void test_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/amp-test-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char sub[256], path[300];
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	assert_int_equal(util_mkdirs(sub, 0700), 0);
	assert_int_equal(util_mkdirs(sub, 0700), 0); /* idempotent */
	snprintf(path, sizeof(path), "%s/file", sub);
	assert_int_equal(util_write_file_atomic(path, "hello", 5, 0600, 0), 0);
	assert_int_equal(util_write_file_atomic(path, "bye", 3, 0600, 0), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	uint8_t *buf;
	size_t len;
	assert_int_equal(util_read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "bye", 3);
	assert_int_equal(buf[3], '\0');
	free(buf);
	/* Bounded: one byte over the maximum is refused with EFBIG. */
	assert_int_equal(util_read_file(path, 2, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(util_read_file(path, 3, &buf, &len), 0);
	free(buf);
	/* A large file with a large limit reads fully (buffer growth). */
	size_t big = 300 * 1024 + 17;
	uint8_t *data = malloc(big);
	randombytes_buf(data, big);
	assert_int_equal(util_write_file_atomic(path, data, big, 0644, 0), 0);
	assert_int_equal(util_read_file(path, big, &buf, &len), 0);
	assert_int_equal(len, big);
	assert_memory_equal(buf, data, big);
	free(buf);
	assert_int_equal(util_read_file(path, big - 1, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	free(data);
	/* No temporary file left behind. */
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", sub);
	assert_int_equal(system(cmd), 0);
	/* Writing into a missing directory fails cleanly. */
	snprintf(path, sizeof(path), "%s/missing/file", dir);
	assert_int_equal(util_write_file_atomic(path, "x", 1, 0600, 0), -1);
	assert_int_equal(util_read_file(path, 10, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Review findings: FIFOs and devices are written into, not replaced;
 * symlinks are followed; NO_REPLACE never replaces; the umask applies. */
static void test_special_targets(void **state)
{
	(void)state;
	char dir[] = "/tmp/amp-test-util2-XXXXXX";
	char fifo[300], file[300], link_[300], cmd[400];
	struct stat st;
	assert_non_null(mkdtemp(dir));

	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	pid_t pid = fork();
	if (pid == 0) { /* reader */
		char buf[16] = { 0 };
		int fd = open(fifo, O_RDONLY);
		ssize_t n = read(fd, buf, sizeof(buf));
		_exit(n == 5 && memcmp(buf, "pipe!", 5) == 0 ? 0 : 1);
	}
	assert_int_equal(util_write_file_atomic(fifo, "pipe!", 5, 0600, 0), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(lstat(fifo, &st), 0);
	assert_true(S_ISFIFO(st.st_mode)); /* still a FIFO */

	/* /dev/null is written into, never replaced. */
	assert_int_equal(util_write_file_atomic("/dev/null", "x", 1, 0644, 0), 0);
	assert_int_equal(stat("/dev/null", &st), 0);
	assert_true(S_ISCHR(st.st_mode));

	snprintf(file, sizeof(file), "%s/real", dir);
	snprintf(link_, sizeof(link_), "%s/link", dir);
	assert_int_equal(util_write_file_atomic(file, "one", 3, 0644, 0), 0);
	assert_int_equal(symlink(file, link_), 0);
	assert_int_equal(util_write_file_atomic(link_, "two", 3, 0644, 0), 0);
	assert_int_equal(lstat(link_, &st), 0);
	assert_true(S_ISLNK(st.st_mode)); /* the link stays a link */
	uint8_t *buf;
	size_t len;
	assert_int_equal(util_read_file(file, 10, &buf, &len), 0);
	assert_memory_equal(buf, "two", 3);
	free(buf);

	/* NO_REPLACE */
	assert_int_equal(util_write_file_atomic(file, "three", 5, 0644,
						UTIL_NO_REPLACE), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(util_read_file(file, 10, &buf, &len), 0);
	assert_memory_equal(buf, "two", 3);
	free(buf);
	snprintf(file, sizeof(file), "%s/new", dir);
	assert_int_equal(util_write_file_atomic(file, "n", 1, 0644,
						UTIL_NO_REPLACE), 0);

	/* umask */
	mode_t old = umask(077);
	snprintf(file, sizeof(file), "%s/masked", dir);
	assert_int_equal(util_write_file_atomic(file, "m", 1, 0644, 0), 0);
	umask(old);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | grep -c tmp) -eq 0 && rm -rf %s",
		 dir, dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_special_targets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
