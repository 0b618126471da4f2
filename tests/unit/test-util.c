/*
 * test-util.c — src/util: checked number parsing, bounded file reading,
 * atomic writing (mode, no temporary left behind), mkdirs.
 */
#include "test-common.h"
#include "util.h"

#include <errno.h>
#include <sys/stat.h>
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
	assert_int_equal(util_write_file_atomic(path, "hello", 5, 0600), 0);
	assert_int_equal(util_write_file_atomic(path, "bye", 3, 0600), 0);
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
	assert_int_equal(util_write_file_atomic(path, data, big, 0644), 0);
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
	assert_int_equal(util_write_file_atomic(path, "x", 1, 0600), -1);
	assert_int_equal(util_read_file(path, 10, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
