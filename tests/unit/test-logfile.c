/*
 * test-logfile.c — src/cli/logfile.c, the transparency log's client
 * files (the seen head, the monitor state, the receipt) and the offline
 * check of a receipt.
 *  - fixtures: files written by `amp` before logfile.c existed (a real
 *    node, `amp log monitor --once`, `amp receipt get`) parse, their
 *    fields are what that run saw, and formatting them again gives the
 *    same bytes;
 *  - every truncation of each fixture is refused (a receipt without only
 *    its final LF is the same JSON document, and parses to the same
 *    receipt);
 *  - tables of refused files, each with its reason;
 *  - round trips of generated values at their limits (longest DIDs,
 *    sizes 0..2^64-1, a full frontier, 512-byte leaves, 65-hash paths);
 *  - receipts: every single-byte change of each field, and every
 *    one-character change of the fixture's text that still parses to
 *    another receipt, is refused by logfile_receipt_check; each of its
 *    refusals on receipts signed here with a test key.
 * tests/fuzz/fuzz-logfile.c is the third way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "logfile.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ fixtures
 * Written by the `amp` of commit aa1e6f1 (before logfile.c) against a
 * node of alpha.test: alice and bob registered, four messages from alice
 * to bob, alice's key rotated, a receipt fetched, alice's key revoked;
 * bob's monitor state of nobody (absent), of alice at sizes 2 (version
 * 0), 7 (version 1) and 8 (revoked), and his seen head at size 8. */
static const char fx_head[] =
	"log did:aftersmtp:alpha.test:node\n"
	"size 8\n"
	"root 9e94a2992817310ed4c0de6f490082421fb554fbe84d53d2515340d932b"
	"a9482\n"
	"time 1795395670\n"
	"sig 1891a395cb92f5976e8b4a4f3cf90cac4c5162352ca3c919ffd3dd2aaee2"
	"2317293fcd0bcab8176c5b90826ef59e1724d3e652ffdd6dd829582a53d9b54fe50b\n";

static const char fx_mon_absent[] =
	"# amp log monitor: the last round's state\n"
	"log did:aftersmtp:alpha.test:node\n"
	"did did:aftersmtp:alpha.test:nobody\n"
	"size 2\n"
	"exists 0\n"
	"revoked 0\n"
	"version 0\n"
	"subject 00000000000000000000000000000000000000000000000000000000"
	"00000000\n"
	"sign_pk 00000000000000000000000000000000000000000000000000000000"
	"00000000\n"
	"enc_pk 000000000000000000000000000000000000000000000000000000000"
	"0000000\n"
	"since 0\n"
	"changed 0\n"
	"index 0\n"
	"frontier 1 eca0a8045facc992b9eba306755c70e3fadaec0aa4eb2c50ca051"
	"18b21c47ef3\n";

static const char fx_mon_v0[] =
	"# amp log monitor: the last round's state\n"
	"log did:aftersmtp:alpha.test:node\n"
	"did did:aftersmtp:alpha.test:alice\n"
	"size 2\n"
	"exists 1\n"
	"revoked 0\n"
	"version 0\n"
	"subject f06b1f7d1a4cefd6c7a4407afa1b955d87710033a36e4c90e3537ace"
	"1b13ac3c\n"
	"sign_pk 1d91d204523c5080f726f68bb386c1dd5d1f6107cedad3f5c1c54271"
	"0e487a3a\n"
	"enc_pk bead8951a6b37e2958e81ab7cd5b133dade2abf8f224e62f621dc990a"
	"1c6bd3f\n"
	"since 1795395665\n"
	"changed 1795395665\n"
	"index 0\n"
	"frontier 1 eca0a8045facc992b9eba306755c70e3fadaec0aa4eb2c50ca051"
	"18b21c47ef3\n";

static const char fx_mon_v1[] =
	"# amp log monitor: the last round's state\n"
	"log did:aftersmtp:alpha.test:node\n"
	"did did:aftersmtp:alpha.test:alice\n"
	"size 7\n"
	"exists 1\n"
	"revoked 0\n"
	"version 1\n"
	"subject f06b1f7d1a4cefd6c7a4407afa1b955d87710033a36e4c90e3537ace"
	"1b13ac3c\n"
	"sign_pk 77b3c4656cf3b4d9ec5192f9d7534799bde06fae1bd670176a2d11a9"
	"72b670ed\n"
	"enc_pk e67d97d6bb010eab87a6a34c1ea34963fea9cf19434ceaa45ca22082e"
	"5703a13\n"
	"since 1795395668\n"
	"changed 1795395668\n"
	"index 6\n"
	"frontier 0 01b2b5a067ee52ab8ed85847e3686db59e04c76487ac41be94a22"
	"4d35237e640\n"
	"frontier 1 16228e98ae225b950605fb195921e6b2590c0c764f4ef7e7d0ed7"
	"d4049921565\n"
	"frontier 2 4675eab5f319d9b1db067b5bcf1fecc1eb9a4c7e325c4f0dfdc69"
	"85bc57fa5ac\n";

static const char fx_mon_revoked[] =
	"# amp log monitor: the last round's state\n"
	"log did:aftersmtp:alpha.test:node\n"
	"did did:aftersmtp:alpha.test:alice\n"
	"size 8\n"
	"exists 1\n"
	"revoked 1\n"
	"version 1\n"
	"subject f06b1f7d1a4cefd6c7a4407afa1b955d87710033a36e4c90e3537ace"
	"1b13ac3c\n"
	"sign_pk 77b3c4656cf3b4d9ec5192f9d7534799bde06fae1bd670176a2d11a9"
	"72b670ed\n"
	"enc_pk e67d97d6bb010eab87a6a34c1ea34963fea9cf19434ceaa45ca22082e"
	"5703a13\n"
	"since 1795395668\n"
	"changed 1795395669\n"
	"index 7\n"
	"frontier 3 9e94a2992817310ed4c0de6f490082421fb554fbe84d53d251534"
	"0d932ba9482\n";

static const char fx_receipt[] =
	"{\n"
	"  \"format\": \"aftersmtp-receipt-1\",\n"
	"  \"log\": \"did:aftersmtp:alpha.test:node\",\n"
	"  \"node_key\": \"yMaCP35UysBorfsHqyrZqAKA_Y0XzSBuAc2E8iYIuG4\",\n"
	"  \"digest\": \"27098f6acd2db1f27909acd59da91826fc050a1915fcbc3a"
	"0e042ea1fc8b6d87\",\n"
	"  \"head\": {\n"
	"    \"size\": 7,\n"
	"    \"root\": \"a32f00a80fe0d73a981d5a810cf6afaf72792afbc28727d5"
	"ebddee293fe25041\",\n"
	"    \"time\": 1795395669,\n"
	"    \"sig\": \"8a7920994edf93a018481d8aae26bf12ed80f63e8da7c0f01"
	"68f549601f6eae8f1c4017247129cbbe615c3632e7ecf0be9debde264e55ff7f"
	"cc38787fd5e6805\"\n"
	"  },\n"
	"  \"index\": 3,\n"
	"  \"leaf\": \"0104000000006b03905327098f6acd2db1f27909acd59da918"
	"26fc050a1915fcbc3a0e042ea1fc8b6d870000001d6469643a6166746572736d"
	"74703a616c7068612e746573743a6e6f6465\",\n"
	"  \"path\": [\n"
	"    \"d5eba29c991ff48a3b13e24568a62355e2ecb1b232e9653376eb2cf390"
	"8019b8\",\n"
	"    \"eca0a8045facc992b9eba306755c70e3fadaec0aa4eb2c50ca05118b21"
	"c47ef3\",\n"
	"    \"0dba55bb87f9df50041b0f1d3cf95ce7b901f78582b2f0d7af4d1222b9"
	"a5759a\"\n"
	"  ]\n"
	"}\n";

static const char fx_node_key[] =
	"yMaCP35UysBorfsHqyrZqAKA_Y0XzSBuAc2E8iYIuG4";
static const char fx_digest[] =
	"27098f6acd2db1f27909acd59da91826fc050a1915fcbc3a0e042ea1fc8b6d87";

/* ------------------------------------------------------------- helpers */

#define HEAD_BUF LOGFILE_HEAD_MAX
#define MON_BUF LOGFILE_MONITOR_MAX
#define RECEIPT_BUF LOGFILE_RECEIPT_MAX

static bool is_zero32(const uint8_t b[32])
{
	static const uint8_t zero[32];
	return memcmp(b, zero, 32) == 0;
}

static void unhex(const char *s, uint8_t *out, size_t n)
{
	size_t len = 0;
	assert_int_equal(sodium_hex2bin(out, n, s, strlen(s), NULL, &len, NULL),
			 0);
	assert_int_equal(len, n);
}

/* base with the first occurrence of from replaced by to (malloc). */
static char *with(const char *base, const char *from, const char *to)
{
	const char *at = strstr(base, from);
	if (at == NULL)
		fail_msg("'%s' is not in the text", from);
	size_t a = (size_t)(at - base), f = strlen(from), t = strlen(to);
	size_t n = strlen(base) - f + t;
	char *s = malloc(n + 1);
	assert_non_null(s);
	memcpy(s, base, a);
	memcpy(s + a, to, t);
	memcpy(s + a + t, at + f, strlen(at + f) + 1);
	return s;
}

static bool head_eq(const amp_log_head *a, const amp_log_head *b)
{
	return strcmp(a->log, b->log) == 0 && a->size == b->size &&
	       memcmp(a->root, b->root, 32) == 0 && a->time == b->time &&
	       memcmp(a->sig, b->sig, 64) == 0;
}

static bool mon_eq(const logfile_monitor *a, const logfile_monitor *b)
{
	const amp_log_identity *x = &a->id, *y = &b->id;
	if (strcmp(a->log, b->log) != 0 || strcmp(a->did, b->did) != 0 ||
	    a->f.size != b->f.size || x->exists != y->exists ||
	    x->revoked != y->revoked || x->version != y->version ||
	    memcmp(x->subject, y->subject, 32) != 0 ||
	    memcmp(x->sign_pk, y->sign_pk, 32) != 0 ||
	    memcmp(x->enc_pk, y->enc_pk, 32) != 0 || x->since != y->since ||
	    a->changed != b->changed || a->index != b->index)
		return false;
	for (unsigned l = 0; l < AMP_LOG_LEVELS; l++)
		if ((a->f.size >> l & 1) &&
		    memcmp(a->f.hash[l], b->f.hash[l], 32) != 0)
			return false;
	return true;
}

static bool receipt_eq(const logfile_receipt *a, const logfile_receipt *b)
{
	return memcmp(a->node_key, b->node_key, 32) == 0 &&
	       memcmp(a->digest, b->digest, 32) == 0 &&
	       head_eq(&a->head, &b->head) && a->index == b->index &&
	       a->leaf_len == b->leaf_len &&
	       memcmp(a->leaf, b->leaf, a->leaf_len) == 0 &&
	       a->n_path == b->n_path &&
	       memcmp(a->path, b->path, a->n_path * 32) == 0;
}

/* Parse text, format it again: the same bytes. */
static void head_same(const char *text, amp_log_head *h)
{
	char out[HEAD_BUF];
	size_t n = 0;
	const char *why = NULL;
	if (logfile_head_parse(text, strlen(text), h, &why) != 0)
		fail_msg("a head fixture is refused: %s", why);
	assert_int_equal(logfile_head_format(h, out, sizeof(out), &n), 0);
	assert_int_equal(n, strlen(text));
	assert_memory_equal(out, text, n);
}

static void mon_same(const char *text, logfile_monitor *m)
{
	char out[MON_BUF];
	size_t n = 0;
	const char *why = NULL;
	if (logfile_monitor_parse(text, strlen(text), m, &why) != 0)
		fail_msg("a monitor fixture is refused: %s", why);
	assert_int_equal(logfile_monitor_format(m, out, sizeof(out), &n), 0);
	assert_int_equal(n, strlen(text));
	assert_memory_equal(out, text, n);
}

static logfile_receipt *receipt_new(void)
{
	logfile_receipt *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	return r;
}

static logfile_receipt *fx_receipt_parsed(void)
{
	logfile_receipt *r = receipt_new();
	const char *why = NULL;
	if (logfile_receipt_parse(fx_receipt, strlen(fx_receipt), r, &why) != 0)
		fail_msg("the receipt fixture is refused: %s", why);
	return r;
}

/* ------------------------------------------------------------ fixtures */

static void test_fixtures(void **state)
{
	(void)state;
	amp_log_head h;
	logfile_monitor absent, v0, v1, rev;
	uint8_t root8[32], hash[32];

	head_same(fx_head, &h);
	assert_string_equal(h.log, "did:aftersmtp:alpha.test:node");
	assert_int_equal(h.size, 8);
	assert_int_equal(h.time, 1795395670u);
	unhex("9e94a2992817310ed4c0de6f490082421fb554fbe84d53d2515340d932ba9482",
	      root8, 32);
	assert_memory_equal(h.root, root8, 32);

	mon_same(fx_mon_absent, &absent);
	assert_string_equal(absent.did, "did:aftersmtp:alpha.test:nobody");
	assert_false(absent.id.exists);
	assert_int_equal(absent.f.size, 2);
	mon_same(fx_mon_v0, &v0);
	assert_true(v0.id.exists && !v0.id.revoked);
	assert_int_equal(v0.id.version, 0);
	assert_int_equal(v0.index, 0);
	amp_log_did_hash("did:aftersmtp:alpha.test:alice", hash);
	assert_memory_equal(v0.id.subject, hash, 32);
	/* one log seen at size 2 by both states */
	assert_memory_equal(absent.f.hash[1], v0.f.hash[1], 32);
	mon_same(fx_mon_v1, &v1);
	assert_int_equal(v1.f.size, 7);
	assert_int_equal(v1.id.version, 1);
	assert_int_equal(v1.index, 6);
	mon_same(fx_mon_revoked, &rev);
	assert_true(rev.id.exists && rev.id.revoked);
	assert_int_equal(rev.index, 7);
	/* the frontier of 8 leaves is the root of the head of size 8 */
	assert_memory_equal(rev.f.hash[3], root8, 32);

	/* the receipt: its fields, the same bytes again, and the check */
	logfile_receipt *r = fx_receipt_parsed();
	char *out = malloc(RECEIPT_BUF);
	size_t n = 0;
	uint8_t key[32], digest[32], other[32];
	amp_log_leaf l;
	const char *why = NULL, *detail = NULL;
	assert_non_null(out);
	assert_string_equal(r->head.log, "did:aftersmtp:alpha.test:node");
	assert_int_equal(r->head.size, 7);
	assert_int_equal(r->index, 3);
	assert_int_equal(r->n_path, 3);
	unhex(fx_digest, digest, 32);
	assert_memory_equal(r->digest, digest, 32);
	assert_int_equal(sodium_base642bin(key, 32, fx_node_key,
					   strlen(fx_node_key), NULL, &n, NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
			 0);
	assert_memory_equal(r->node_key, key, 32);
	assert_int_equal(logfile_receipt_format(r, out, RECEIPT_BUF, &n), 0);
	assert_int_equal(n, strlen(fx_receipt));
	assert_memory_equal(out, fx_receipt, n);
	if (logfile_receipt_check(r, NULL, &l, &why, &detail) != 0)
		fail_msg("the receipt fixture does not check: %s", why);
	assert_null(detail);
	assert_int_equal(l.type, AMP_LOG_RECEIPT);
	assert_string_equal(l.node, r->head.log);
	assert_memory_equal(l.subject, digest, 32);
	assert_int_equal(logfile_receipt_check(r, key, NULL, &why, NULL), 0);
	memcpy(other, key, 32);
	other[31] ^= 1;
	assert_int_equal(logfile_receipt_check(r, other, NULL, &why, NULL), -1);
	assert_string_equal(why, "it carries another node key than the one "
			    "given");
	free(out);
	free(r);
}

/* ---------------------------------------------------------- truncations */

static void test_truncations(void **state)
{
	(void)state;
	static const char *const lines[] = { fx_head, fx_mon_absent, fx_mon_v0,
					     fx_mon_v1, fx_mon_revoked };
	amp_log_head h;
	logfile_monitor m;
	const char *why;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		const char *t = lines[i];
		for (size_t n = 0; n < strlen(t); n++) {
			why = NULL;
			int k = i == 0 ? logfile_head_parse(t, n, &h, &why)
				       : logfile_monitor_parse(t, n, &m, &why);
			if (k == 0)
				fail_msg("fixture %zu cut at %zu parses", i, n);
			assert_non_null(why);
		}
	}
	/* JSON: every cut into the document is refused; without its final
	 * LF it is the same document */
	logfile_receipt *r = receipt_new(), *full = fx_receipt_parsed();
	size_t len = strlen(fx_receipt);
	for (size_t n = 0; n < len - 1; n++) {
		why = NULL;
		if (logfile_receipt_parse(fx_receipt, n, r, &why) == 0)
			fail_msg("the receipt cut at %zu parses", n);
		assert_non_null(why);
	}
	assert_int_equal(logfile_receipt_parse(fx_receipt, len - 1, r, &why), 0);
	assert_true(receipt_eq(r, full));
	free(r);
	free(full);
}

/* ------------------------------------------------------- refused files */

typedef struct bad {
	const char *from, *to;  /* in the fixture, replaced */
	const char *why;
} bad;

static const bad bad_heads[] = {
	{ "log did:aftersmtp:alpha.test:node\n",
	  "log did:aftersmtp:Alpha.test:node\n", "log is not a canonical DID" },
	{ "log did:aftersmtp:alpha.test:node\n", "log node\n",
	  "log is not a canonical DID" },
	{ "log did", "log  did", "log is not a canonical DID" },
	{ "size 8\n", "size -8\n", "size is not a number" },
	{ "size 8\n", "size 18446744073709551616\n", "size is not a number" },
	{ "size 8\n", "size 8 \n", "size is not a number" },
	{ "size 8\n", "size 8\r\n", "size is not a number" },
	{ "size 8\n", "size \n", "size is not a number" },
	{ "root 9e", "root 9", "root is not 64 hex digits" },
	{ "root 9e", "root 9e0", "root is not 64 hex digits" },
	{ "root 9e", "root 9g", "root is not 64 hex digits" },
	{ "time 1795395670\n", "time 1.5\n", "time is not a number" },
	{ "sig 18", "sig 1", "sig is not 128 hex digits" },
	{ "size 8\n", "size 8\nsize 8\n", "a key is repeated" },
	{ "size 8\n", "", "a key is missing (log, size, root, time, sig)" },
	{ "size 8\n", "Size 8\n", "an unknown key" },
	{ "size 8\n", "size 8\ncomment x\n", "an unknown key" },
	{ "size 8\n", "size 8\n\n", "a line is not \"key value\"" },
	{ "size 8\n", "# a comment\nsize 8\n", "an unknown key" },
	{ "size 8\n", "size\n", "a line is not \"key value\"" },
};

static const bad bad_monitors[] = {
	{ "size 7\n", "size 6\n",
	  "the frontier does not have one hash per set bit of size" },
	{ "size 7\n", "size 15\n",
	  "the frontier does not have one hash per set bit of size" },
	{ "size 7\n", "size 9223372036854775808\n",
	  "size is not a number below 2^63" },
	{ "version 1\n", "version 7\nversion 1\n", "a key is repeated" },
	{ "version 1\n", "version 4294967296\n",
	  "version is not a 32-bit number" },
	{ "exists 1\n", "exists 2\n", "exists is not 0 or 1" },
	{ "revoked 0\n", "revoked true\n", "revoked is not 0 or 1" },
	{ "did did:aftersmtp:alpha.test:alice\n",
	  "did did:aftersmtp:alpha.test:Alice\n", "did is not a canonical DID" },
	{ "did did:aftersmtp:alpha.test:alice\n",
	  "did did:aftersmtp:alpha.test:bob\n", "subject is not the hash of did" },
	{ "log did:aftersmtp:alpha.test:node\n", "log alpha.test\n",
	  "log is not a canonical DID" },
	{ "subject f0", "subject f1", "subject is not the hash of did" },
	{ "subject f0", "subject f", "subject is not 64 hex digits" },
	{ "sign_pk 77", "sign_pk 7", "sign_pk is not 64 hex digits" },
	{ "enc_pk e6", "enc_pk e6e6", "enc_pk is not 64 hex digits" },
	{ "since 1795395668\n", "since x\n", "since is not a number" },
	{ "changed 1795395668\n", "changed -1\n", "changed is not a number" },
	{ "index 6\n", "index 7\n", "index is not below size" },
	{ "index 6\n", "index 0x6\n", "index is not a number" },
	{ "since 1795395668\n", "", "a key is missing" },
	{ "since", "sinc", "an unknown key" },
	{ "index 6\n", "index 6\nfrontier\n", "a line is not \"key value\"" },
	{ "frontier 0 ", "frontier 3 ",
	  "the frontier does not have one hash per set bit of size" },
	{ "frontier 1 ", "frontier 0 ", "a frontier level is repeated" },
	{ "frontier 0 ", "frontier 64 ",
	  "a frontier line is not \"frontier LEVEL HEX\"" },
	{ "frontier 0 ", "frontier 0x",
	  "a frontier line is not \"frontier LEVEL HEX\"" },
	{ "frontier 0 01", "frontier 0 1",
	  "a frontier hash is not 64 hex digits" },
	{ "index 6\n", "index 6\nfrontier 5 "
	  "01b2b5a067ee52ab8ed85847e3686db59e04c76487ac41be94a224d35237e640\n",
	  "the frontier does not have one hash per set bit of size" },
	{ "exists 1\n", "exists 0\n",
	  "an identity that does not exist has keys or times" },
};

/* Applied to the revoked state or the absent one. */
static const bad bad_revoked[] = {
	{ "exists 1\n", "exists 0\n", "revoked, but the identity does not exist" },
};

static const bad bad_absent[] = {
	{ "version 0\n", "version 1\n",
	  "an identity that does not exist has keys or times" },
	{ "since 0\n", "since 1\n",
	  "an identity that does not exist has keys or times" },
	{ "changed 0\n", "changed 1\n",
	  "an identity that does not exist has keys or times" },
	{ "index 0\n", "index 1\n",
	  "an identity that does not exist has keys or times" },
	{ "enc_pk 00", "enc_pk 01",
	  "an identity that does not exist has keys or times" },
	{ "exists 0\n", "exists 1\n", "subject is not the hash of did" },
};

static const bad bad_receipts[] = {
	{ "receipt-1", "receipt-2", "its format is not aftersmtp-receipt-1" },
	{ "\"format\": \"aftersmtp-receipt-1\"", "\"format\": 1",
	  "its format is not aftersmtp-receipt-1" },
	{ "\"format\"", "\"Format\"", "its format is not aftersmtp-receipt-1" },
	{ "alpha.test", "ALPHA.test", "log is not a DID" },
	{ "\"log\": \"did:aftersmtp:alpha.test:node\"", "\"log\": null",
	  "log is not a DID" },
	{ "uG4\"", "uG4=\"", "node_key is not a base64url Ed25519 key" },
	{ "uG4\"", "uG5\"", "node_key is not a base64url Ed25519 key" },
	{ "yMaCP35Uys", "yMaCP35U+s", "node_key is not a base64url Ed25519 key" },
	{ "\"digest\": \"27", "\"digest\": \"2", "digest is not 64 hex digits" },
	{ "\"size\": 7", "\"size\": -7", "head is not {size, root, time, sig}" },
	{ "\"size\": 7", "\"size\": 7.0", "head is not {size, root, time, sig}" },
	{ "\"size\": 7", "\"size\": \"7\"", "head is not {size, root, time, sig}" },
	{ "\"size\": 7", "\"size\": 9223372036854775808", "it is not JSON" },
	{ "\"time\"", "\"tim\"", "head is not {size, root, time, sig}" },
	{ "\"root\": \"a3", "\"root\": \"a", "head is not {size, root, time, sig}" },
	{ "\"sig\": \"8a", "\"sig\": \"8", "head is not {size, root, time, sig}" },
	{ "\"index\": 3", "\"index\": \"3\"", "index is not a number" },
	{ "\"index\": 3", "\"index\": -1", "index is not a number" },
	{ "\"leaf\": \"01", "\"leaf\": \"1", "leaf is not hex of at most 512 bytes" },
	{ "\"leaf\": \"01", "\"leaf\": \"0x", "leaf is not hex of at most 512 bytes" },
	{ "\"path\": [", "\"path\": 1, \"x\": [",
	  "path is not a list of at most 65 hashes" },
	{ "\"path\"", "\"paths\"", "path is not a list of at most 65 hashes" },
	{ "\"path\": [\n    \"d5", "\"path\": [\n    \"d",
	  "path is not a list of 64-hex-digit hashes" },
	{ "\"path\": [\n", "\"path\": [\n    7,\n",
	  "path is not a list of 64-hex-digit hashes" },
	{ "\"index\": 3", "\"index\": 3, \"index\": 3", "a key is repeated" },
	{ "\"time\"", "\"size\": 7, \"time\"", "a key is repeated" },
	{ "{", "[{", "it is not JSON" },
	{ "{", "[", "it is not JSON" },
	{ "\"format\"", "\"form\\u0000at\"", "it is not JSON" },
	{ "\n}", ",\n}", "it is not JSON" },
	{ "\n}\n", "\n}\n{}", "it is not JSON" },
};

static void test_refused(void **state)
{
	(void)state;
	amp_log_head h;
	logfile_monitor m;
	logfile_receipt *r = receipt_new();
	const char *why;
	char *t;
#define RUN(table, base, parse, out)                                        \
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {     \
		t = with(base, table[i].from, table[i].to);                 \
		why = NULL;                                                 \
		if (parse(t, strlen(t), out, &why) == 0)                    \
			fail_msg(#table "[%zu] parses", i);                 \
		if (why == NULL || strcmp(why, table[i].why) != 0)          \
			fail_msg(#table "[%zu]: '%s', want '%s'", i, why,   \
				 table[i].why);                             \
		free(t);                                                    \
	}
	RUN(bad_heads, fx_head, logfile_head_parse, &h);
	RUN(bad_monitors, fx_mon_v1, logfile_monitor_parse, &m);
	RUN(bad_revoked, fx_mon_revoked, logfile_monitor_parse, &m);
	RUN(bad_absent, fx_mon_absent, logfile_monitor_parse, &m);
	RUN(bad_receipts, fx_receipt, logfile_receipt_parse, r);
#undef RUN

	/* NUL bytes, sizes, long lines */
	char buf[RECEIPT_BUF + 2];
	size_t n = strlen(fx_head);
	memcpy(buf, fx_head, n);
	buf[4] = '\0';
	assert_int_equal(logfile_head_parse(buf, n, &h, &why), -1);
	assert_string_equal(why, "a NUL byte");
	n = strlen(fx_mon_v1);
	memcpy(buf, fx_mon_v1, n);
	buf[3] = '\0';                  /* in the comment */
	assert_int_equal(logfile_monitor_parse(buf, n, &m, &why), -1);
	assert_string_equal(why, "a NUL byte");
	n = strlen(fx_receipt);
	memcpy(buf, fx_receipt, n);
	buf[n - 1] = '\0';              /* after the document */
	assert_int_equal(logfile_receipt_parse(buf, n, r, &why), -1);
	assert_string_equal(why, "a NUL byte");

	memset(buf, '#', sizeof(buf));
	buf[LOGFILE_LINE_MAX - 1] = '\n';
	memcpy(buf + LOGFILE_LINE_MAX, fx_mon_v1, strlen(fx_mon_v1));
	n = LOGFILE_LINE_MAX + strlen(fx_mon_v1);
	assert_int_equal(logfile_monitor_parse(buf, n, &m, &why), 0);
	buf[LOGFILE_LINE_MAX - 1] = '#';
	buf[LOGFILE_LINE_MAX] = '\n';
	assert_int_equal(logfile_monitor_parse(buf, n, &m, &why), -1);
	assert_string_equal(why, "a line is too long");
	/* comments and empty lines, lines in another order: as before */
	t = with(fx_mon_v1, "frontier 0", "\n# x\nfrontier 0");
	char *u = with(t, "log did:aftersmtp:alpha.test:node\n", "");
	free(t);
	t = with(u, "index 6\n", "index 6\nlog did:aftersmtp:alpha.test:node\n");
	assert_int_equal(logfile_monitor_parse(t, strlen(t), &m, &why), 0);
	free(t);
	free(u);

	memset(buf, ' ', sizeof(buf));
	assert_int_equal(logfile_head_parse(buf, LOGFILE_HEAD_MAX + 1, &h,
					    &why), -1);
	assert_string_equal(why, "larger than a tree head file can be");
	assert_int_equal(logfile_monitor_parse(buf, LOGFILE_MONITOR_MAX + 1, &m,
					       &why), -1);
	assert_string_equal(why, "larger than a monitor state can be");
	assert_int_equal(logfile_receipt_parse(buf, LOGFILE_RECEIPT_MAX + 1, r,
					       &why), -1);
	assert_string_equal(why, "larger than a receipt can be");
	/* JSON spacing is free up to the limit */
	n = strlen(fx_receipt);
	memcpy(buf + LOGFILE_RECEIPT_MAX - n, fx_receipt, n);
	assert_int_equal(logfile_receipt_parse(buf, LOGFILE_RECEIPT_MAX, r,
					       &why), 0);
	/* members it does not know are left alone */
	t = with(fx_receipt, "\"index\"", "\"note\": {\"a\": [1]}, \"index\"");
	assert_int_equal(logfile_receipt_parse(t, strlen(t), r, &why), 0);
	free(t);

	/* a refusal leaves the output alone */
	memset(&h, 0x5a, sizeof(h));
	amp_log_head h0 = h;
	assert_int_equal(logfile_head_parse("size 1\n", 7, &h, &why), -1);
	assert_memory_equal(&h, &h0, sizeof(h));
	free(r);
}

/* --------------------------------------------------------- round trips */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1du;
}

static void rnd_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd();
}

/* 0, max, a small number or random bits of max. */
static uint64_t rnd_num(uint64_t max)
{
	switch (rnd() % 4) {
	case 0: return 0;
	case 1: return max;
	case 2: return (rnd() % 1000) & max;
	default: return rnd() & max;
	}
}

static char longest_did[AMP_DID_MAX + 1];

static void make_longest_did(void)
{
	char *p = longest_did;
	memcpy(p, "did:aftersmtp:", 14);
	p += 14;
	for (int l = 0; l < 4; l++) {
		size_t n = l < 3 ? 63 : 61;
		memset(p, 'a' + l, n);
		p += n;
		*p++ = l < 3 ? '.' : ':';
	}
	memset(p, 'z', AMP_DID_LOCAL_MAX);
	p[AMP_DID_LOCAL_MAX] = '\0';
	assert_int_equal(strlen(longest_did), AMP_DID_MAX);
}

static void set_did(char out[AMP_DID_MAX + 1], bool largest)
{
	static const char *const dids[] = {
		"did:aftersmtp:alpha.test:node", "did:aftersmtp:a.b:c",
		"did:aftersmtp:example.org:alice", longest_did,
		"did:aftersmtp:mail.example.net:carol.c-d_e",
	};
	const char *d = largest ? longest_did
				: dids[rnd() % (sizeof(dids) / sizeof(dids[0]))];
	memcpy(out, d, strlen(d) + 1);
}

static void rnd_head(amp_log_head *h, bool largest)
{
	memset(h, 0, sizeof(*h));
	set_did(h->log, largest);
	h->size = largest ? UINT64_MAX : rnd_num(UINT64_MAX);
	h->time = largest ? UINT64_MAX : rnd_num(UINT64_MAX);
	rnd_bytes(h->root, 32);
	rnd_bytes(h->sig, 64);
}

static void rnd_monitor(logfile_monitor *m, bool largest)
{
	memset(m, 0, sizeof(*m));
	set_did(m->log, largest);
	set_did(m->did, largest);
	m->f.size = largest ? INT64_MAX : rnd_num(INT64_MAX);
	rnd_bytes(&m->f.hash[0][0], sizeof(m->f.hash));
	if (m->f.size > 0 && (largest || rnd() % 3 != 0)) {
		m->id.exists = true;
		m->id.revoked = rnd() % 2;
		m->id.version = (uint32_t)rnd_num(UINT32_MAX);
		amp_log_did_hash(m->did, m->id.subject);
		rnd_bytes(m->id.sign_pk, 32);
		rnd_bytes(m->id.enc_pk, 32);
		m->id.since = largest ? UINT64_MAX : rnd_num(UINT64_MAX);
		m->changed = largest ? UINT64_MAX : rnd_num(UINT64_MAX);
		m->index = largest ? m->f.size - 1 : rnd() % m->f.size;
	}
}

static void rnd_receipt(logfile_receipt *r, bool largest)
{
	memset(r, 0, sizeof(*r));
	rnd_head(&r->head, largest);
	r->head.size = largest ? INT64_MAX : rnd_num(INT64_MAX);
	r->head.time = largest ? INT64_MAX : rnd_num(INT64_MAX);
	rnd_bytes(r->node_key, 32);
	rnd_bytes(r->digest, 32);
	r->index = largest ? INT64_MAX : rnd_num(INT64_MAX);
	r->leaf_len = largest ? AMP_LOG_LEAF_MAX : 1 + rnd() % AMP_LOG_LEAF_MAX;
	rnd_bytes(r->leaf, r->leaf_len);
	r->n_path = largest ? AMP_LOG_PROOF_MAX
			    : rnd() % (AMP_LOG_PROOF_MAX + 1);
	rnd_bytes(&r->path[0][0], r->n_path * 32);
}

static void test_round_trips(void **state)
{
	(void)state;
	char *out = malloc(RECEIPT_BUF);
	logfile_receipt *r = receipt_new(), *r2 = receipt_new();
	amp_log_head h, h2;
	logfile_monitor m, m2;
	const char *why = NULL;
	size_t n = 0, max_head = 0, max_mon = 0, max_receipt = 0;
	assert_non_null(out);
	for (int i = 0; i < 600; i++) {
		bool largest = i == 0;
		rnd_head(&h, largest);
		assert_int_equal(logfile_head_format(&h, out, HEAD_BUF, &n), 0);
		if (logfile_head_parse(out, n, &h2, &why) != 0)
			fail_msg("head %d: %s", i, why);
		assert_true(head_eq(&h, &h2));
		assert_int_equal(logfile_head_format(&h, out, n, &n), -1);
		max_head = n > max_head ? n : max_head;

		rnd_monitor(&m, largest);
		assert_int_equal(logfile_monitor_format(&m, out, MON_BUF, &n), 0);
		if (logfile_monitor_parse(out, n, &m2, &why) != 0)
			fail_msg("monitor %d: %s", i, why);
		assert_true(mon_eq(&m, &m2));
		for (unsigned l = 0; l < AMP_LOG_LEVELS; l++)
			if (!(m.f.size >> l & 1))
				assert_true(is_zero32(m2.f.hash[l]));
		assert_int_equal(logfile_monitor_format(&m, out, n, &n), -1);
		max_mon = n > max_mon ? n : max_mon;

		rnd_receipt(r, largest);
		assert_int_equal(logfile_receipt_format(r, out, RECEIPT_BUF, &n),
				 0);
		if (logfile_receipt_parse(out, n, r2, &why) != 0)
			fail_msg("receipt %d: %s", i, why);
		assert_true(receipt_eq(r, r2));
		assert_int_equal(out[n - 1], '\n');
		assert_int_equal(logfile_receipt_format(r, out, n, &n), -1);
		max_receipt = n > max_receipt ? n : max_receipt;
	}
	/* the largest of each fits far below its limit */
	assert_true(max_head < LOGFILE_HEAD_MAX);
	assert_true(max_mon < LOGFILE_MONITOR_MAX);
	assert_true(max_receipt < LOGFILE_RECEIPT_MAX / 8);

	/* what the parsers would refuse is not written */
	rnd_head(&h, false);
	memcpy(h.log, "did:aftersmtp:Alpha.test:node", 30);
	assert_int_equal(logfile_head_format(&h, out, HEAD_BUF, &n), -1);
	rnd_monitor(&m, true);
	m.id.exists = false;
	assert_int_equal(logfile_monitor_format(&m, out, MON_BUF, &n), -1);
	rnd_monitor(&m, true);
	m.id.subject[0] ^= 1;
	assert_int_equal(logfile_monitor_format(&m, out, MON_BUF, &n), -1);
	rnd_monitor(&m, true);
	m.index = m.f.size;
	assert_int_equal(logfile_monitor_format(&m, out, MON_BUF, &n), -1);
	rnd_monitor(&m, true);
	m.f.size = (uint64_t)INT64_MAX + 1;
	assert_int_equal(logfile_monitor_format(&m, out, MON_BUF, &n), -1);
	rnd_monitor(&m, true);
	m.did[0] = 'D';
	assert_int_equal(logfile_monitor_format(&m, out, MON_BUF, &n), -1);
	for (int what = 0; what < 7; what++) {
		rnd_receipt(r, true);
		switch (what) {
		case 0: r->head.size = (uint64_t)INT64_MAX + 1; break;
		case 1: r->head.time = UINT64_MAX; break;
		case 2: r->index = (uint64_t)INT64_MAX + 1; break;
		case 3: r->leaf_len = 0; break;
		case 4: r->leaf_len = AMP_LOG_LEAF_MAX + 1; break;
		case 5: r->n_path = AMP_LOG_PROOF_MAX + 1; break;
		default: r->head.log[3] = '\0'; break;
		}
		assert_int_equal(logfile_receipt_format(r, out, RECEIPT_BUF, &n),
				 -1);
	}
	uint8_t big[AMP_LOG_LEAF_MAX + 1] = { 0 };
	json_t *j = logfile_json_hex(big, AMP_LOG_LEAF_MAX);
	assert_non_null(j);
	json_decref(j);
	assert_null(logfile_json_hex(big, AMP_LOG_LEAF_MAX + 1));
	assert_null(logfile_json_u64((uint64_t)INT64_MAX + 1));
	j = logfile_json_u64(INT64_MAX);
	assert_non_null(j);
	json_decref(j);
	free(out);
	free(r);
	free(r2);
}

/* ------------------------------------------------ the receipt's check */

/* The single-byte changes of r that must fail the check: every bit of
 * every byte of each field, and one more or one less leaf byte or path
 * hash.  Returns how many were tried. */
static size_t mutate_all(const logfile_receipt *good)
{
	logfile_receipt *r = receipt_new();
	const char *why = NULL;
	size_t tried = 0;
#define MUST_FAIL(what)                                                     \
	do {                                                                \
		tried++;                                                    \
		if (logfile_receipt_check(r, NULL, NULL, &why, NULL) == 0)  \
			fail_msg("a receipt with %s changed checks", what); \
		*r = *good;                                                 \
	} while (0)
#define FLIP_BYTES(field, n, what)                                          \
	for (size_t i = 0; i < (n); i++)                                    \
		for (unsigned b = 0; b < 8; b++) {                          \
			((uint8_t *)(field))[i] ^= (uint8_t)(1u << b);       \
			MUST_FAIL(what);                                    \
		}
	*r = *good;
	FLIP_BYTES(r->node_key, 32, "node_key");
	FLIP_BYTES(r->digest, 32, "digest");
	FLIP_BYTES(r->head.root, 32, "root");
	FLIP_BYTES(r->head.sig, 64, "sig");
	FLIP_BYTES(r->head.log, strlen(good->head.log), "log");
	FLIP_BYTES(r->leaf, good->leaf_len, "leaf");
	FLIP_BYTES(r->path, good->n_path * 32, "path");
	FLIP_BYTES(&r->head.size, sizeof(r->head.size), "size");
	FLIP_BYTES(&r->head.time, sizeof(r->head.time), "time");
	FLIP_BYTES(&r->index, sizeof(r->index), "index");
	r->leaf_len--;
	MUST_FAIL("a leaf byte less");
	r->leaf_len++;
	MUST_FAIL("a leaf byte more");
	if (r->n_path > 0) {
		r->n_path--;
		MUST_FAIL("a path hash less");
	}
	if (r->n_path < AMP_LOG_PROOF_MAX) {
		r->n_path++;
		MUST_FAIL("a path hash more");
	}
#undef FLIP_BYTES
#undef MUST_FAIL
	free(r);
	return tried;
}

static void test_receipt_mutations(void **state)
{
	(void)state;
	logfile_receipt *good = fx_receipt_parsed(), *r = receipt_new();
	const char *why = NULL;
	size_t tried = mutate_all(good);
	assert_true(tried > 2000);

	/* one character of the file changed: refused by the parser, the
	 * same receipt (blanks, hex case), or refused by the check */
	static const char subst[] = "019afAF-_ x\"";
	size_t len = strlen(fx_receipt), checked = 0;
	char *t = malloc(len + 1);
	assert_non_null(t);
	for (size_t at = 0; at < len; at++) {
		for (const char *c = subst; *c != '\0'; c++) {
			if (fx_receipt[at] == *c)
				continue;
			memcpy(t, fx_receipt, len + 1);
			t[at] = *c;
			if (logfile_receipt_parse(t, len, r, &why) != 0 ||
			    receipt_eq(r, good))
				continue;
			checked++;
			if (logfile_receipt_check(r, NULL, NULL, &why, NULL) == 0)
				fail_msg("the receipt with '%c' at %zu checks",
					 *c, at);
		}
	}
	assert_true(checked > 3000);
	free(t);
	free(r);
	free(good);
}

typedef struct signer {
	uint8_t pk[32], sk[64];
} signer;

/* r: a tree of two leaves, leaf (index 0) and another receipt, under a
 * head of log signed by s; r->node_key is s's. */
static void sign_receipt(logfile_receipt *r, const uint8_t *leaf, size_t len,
			 const uint8_t digest[32], const char *log,
			 const signer *s)
{
	amp_log_leaf other;
	uint8_t lh[32], buf[AMP_LOG_LEAF_MAX];
	size_t n = 0;
	memset(r, 0, sizeof(*r));
	memset(&other, 0, sizeof(other));
	other.type = AMP_LOG_RECEIPT;
	other.time = 7;
	memset(other.subject, 0x33, 32);
	memcpy(other.node, log, strlen(log) + 1);
	assert_int_equal(amp_log_leaf_encode(&other, buf, sizeof(buf), &n),
			 AMP_OK);
	amp_log_leaf_hash(buf, n, r->path[0]);
	r->n_path = 1;
	memcpy(r->leaf, leaf, len);
	r->leaf_len = len;
	amp_log_leaf_hash(leaf, len, lh);
	amp_log_node_hash(lh, r->path[0], r->head.root);
	memcpy(r->head.log, log, strlen(log) + 1);
	r->head.size = 2;
	r->head.time = 1767225600;
	assert_int_equal(amp_log_head_sign(&r->head, s->sk), AMP_OK);
	memcpy(r->node_key, s->pk, 32);
	memcpy(r->digest, digest, 32);
}

static size_t encode(const amp_log_leaf *l, uint8_t *out)
{
	size_t n = 0;
	assert_int_equal(amp_log_leaf_encode(l, out, AMP_LOG_LEAF_MAX, &n),
			 AMP_OK);
	return n;
}

static void test_receipt_check(void **state)
{
	(void)state;
	static const char node[] = "did:aftersmtp:example.org:node";
	signer s, t;
	uint8_t seed[32], digest[32], leaf[AMP_LOG_LEAF_MAX];
	logfile_receipt *r = receipt_new(), *r2 = receipt_new();
	char *out = malloc(RECEIPT_BUF);
	amp_log_leaf l, got;
	const char *why = NULL, *detail = NULL;
	size_t n;
	assert_non_null(out);
	memset(seed, 0x41, 32);
	crypto_sign_seed_keypair(s.pk, s.sk, seed);
	memset(seed, 0x42, 32);
	crypto_sign_seed_keypair(t.pk, t.sk, seed);
	memset(digest, 0xd1, 32);
	memset(&l, 0, sizeof(l));
	l.type = AMP_LOG_RECEIPT;
	l.time = 1767225601;
	memcpy(l.subject, digest, 32);
	memcpy(l.node, node, sizeof(node));

	/* a good one, through its file and back */
	sign_receipt(r, leaf, encode(&l, leaf), digest, node, &s);
	assert_int_equal(logfile_receipt_format(r, out, RECEIPT_BUF, &n), 0);
	assert_int_equal(logfile_receipt_parse(out, n, r2, &why), 0);
	assert_int_equal(logfile_receipt_check(r2, s.pk, &got, &why, &detail),
			 0);
	assert_null(detail);
	assert_int_equal(got.time, l.time);
	assert_true(mutate_all(r2) > 2000);

	/* each refusal, with its reason */
	assert_int_equal(logfile_receipt_check(r, t.pk, NULL, &why, NULL), -1);
	assert_string_equal(why, "it carries another node key than the one "
			    "given");
	memcpy(r2->node_key, t.pk, 32);
	assert_int_equal(logfile_receipt_check(r2, t.pk, NULL, &why, NULL), -1);
	assert_string_equal(why, "the tree head's signature does not verify "
			    "with the node key");

	static const uint8_t junk[] = { 0x01, 0x09, 0x00 };
	sign_receipt(r, junk, sizeof(junk), digest, node, &s);
	assert_int_equal(logfile_receipt_check(r, NULL, NULL, &why, &detail),
			 -1);
	assert_string_equal(why, "the leaf does not decode");
	assert_non_null(detail);

	amp_log_leaf reg = l;
	reg.type = AMP_LOG_REGISTER;
	reg.version = 0;
	memset(reg.sign_pk, 0x11, 32);
	memset(reg.enc_pk, 0x22, 32);
	sign_receipt(r, leaf, encode(&reg, leaf), digest, node, &s);
	assert_int_equal(logfile_receipt_check(r, NULL, NULL, &why, NULL), -1);
	assert_string_equal(why, "the leaf is not a receipt");

	amp_log_leaf x = l;
	x.subject[5] ^= 1;
	sign_receipt(r, leaf, encode(&x, leaf), digest, node, &s);
	assert_int_equal(logfile_receipt_check(r, NULL, NULL, &why, NULL), -1);
	assert_string_equal(why, "the leaf is the receipt of another envelope");

	x = l;
	memcpy(x.node, "did:aftersmtp:example.org:nodf", sizeof(node));
	sign_receipt(r, leaf, encode(&x, leaf), digest, node, &s);
	assert_int_equal(logfile_receipt_check(r, NULL, NULL, &why, NULL), -1);
	assert_string_equal(why, "the receipt names another node than the "
			    "log's");

	sign_receipt(r, leaf, encode(&l, leaf), digest, node, &s);
	assert_int_equal(logfile_receipt_check(r, NULL, NULL, &why, NULL), 0);
	for (uint64_t idx = 1; idx < 4; idx++) {
		r->index = idx;
		assert_int_equal(logfile_receipt_check(r, NULL, NULL, &why,
						       NULL), -1);
		assert_string_equal(why, "the inclusion proof does not verify "
				    "against the signed tree head");
	}
	free(out);
	free(r);
	free(r2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_receipt_mutations),
		cmocka_unit_test(test_receipt_check),
	};
	if (amp_init() != AMP_OK)
		return 1;
	make_longest_did();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
