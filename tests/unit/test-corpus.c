/*
 * test-corpus.c — every message of the shared mail corpus
 * (../shared/corpus/{ham,spam}, real 2002 mail, 8-bit content included)
 * sealed to two recipients and opened by each, byte-identical.
 * The corpus path comes from AMP_TEST_CORPUS.  A missing corpus fails the
 * test when CI is set, and skips it otherwise.
 */
#include "test-common.h"
#include "util.h"

#include <dirent.h>
#include <unistd.h>

static size_t run_dir(const char *dir, amp_ctx *ctx, amp_identity *from,
		      amp_identity **to, size_t *bytes)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		uint8_t *msg, *env, *body;
		size_t len, elen, blen;
		if (util_read_file(path, AMP_BODY_MAX, &msg, &len) != 0)
			fail_msg("%s: cannot read", path);
		t_seal(ctx, from, to, 2, msg, len, 0, &env, &elen);
		for (int k = 0; k < 2; k++) {
			amp_err e = t_open(ctx, env, elen, to[k], &from->pub,
					   T_NOW, &body, &blen);
			if (e != AMP_OK)
				fail_msg("%s: open: %s", path, amp_err_name(e));
			if (blen != len || memcmp(body, msg, len) != 0)
				fail_msg("%s: not byte-identical", path);
			free(body);
		}
		*bytes += len;
		amp_free(env);
		free(msg);
		n++;
	}
	closedir(d);
	return n;
}

static void test_corpus_roundtrip(void **state)
{
	(void)state;
	const char *root = getenv("AMP_TEST_CORPUS");
	char ham[4096], spam[4096];
	if (root == NULL || snprintf(ham, sizeof(ham), "%s/ham", root) < 0 ||
	    snprintf(spam, sizeof(spam), "%s/spam", root) < 0 ||
	    access(ham, R_OK) != 0) {
		if (getenv("CI") != NULL)
			fail_msg("mail corpus not found at %s", root ? root : "(unset)");
		skip();
	}
	amp_identity *alice = t_identity("did:aftersmtp:example.org:alice");
	amp_identity *to[2] = { t_identity("did:aftersmtp:example.net:bob"),
				t_identity("did:aftersmtp:example.com:carol") };
	amp_ctx *ctx;
	assert_int_equal(amp_ctx_create(16, &ctx), AMP_OK);
	size_t bytes = 0;
	size_t n = run_dir(ham, ctx, alice, to, &bytes);
	n += run_dir(spam, ctx, alice, to, &bytes);
	print_message("corpus: %zu messages, %zu bytes, all byte-identical\n", n,
		      bytes);
	assert_true(n >= 3000);
	amp_ctx_destroy(&ctx);
	amp_identity_destroy(&alice);
	amp_identity_destroy(&to[0]);
	amp_identity_destroy(&to[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_roundtrip),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
