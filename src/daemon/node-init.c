/*
 * node-init.c — first start of a node: create what is missing in the data
 * directory (see node.h for the layout).  Never replaces an existing file
 * (UTIL_NO_REPLACE), so running it again is harmless and a concurrent
 * second run cannot overwrite keys.  Secrets are written 0600.
 */
#include "node.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int path_in(const cfg *c, const char *name, char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/%s", cfg_str(c, "data_dir"), name);
	if (n < 0 || n >= PATH_MAX) {
		fprintf(stderr, "aftersmtpd: data_dir is too long\n");
		return -1;
	}
	return 0;
}

static int passphrase_path(const cfg *c, char out[PATH_MAX])
{
	const char *p = cfg_str(c, "node_key_passphrase_file");
	if (*p == '\0')
		return path_in(c, "node.pass", out);
	int n = snprintf(out, PATH_MAX, "%s", p);
	return n < 0 || n >= PATH_MAX ? -1 : 0;
}

/* Write a new file; a file that exists already is kept. */
static int create(const char *path, const void *data, size_t len, mode_t mode,
		  bool quiet)
{
	if (util_write_file_atomic(path, data, len, mode, UTIL_NO_REPLACE) == 0) {
		if (!quiet)
			printf("created %s\n", path);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	fprintf(stderr, "aftersmtpd: %s: %s\n", path, strerror(errno));
	return -1;
}

static int read_passphrase(const char *path, char **pass_r, size_t *len_r)
{
	uint8_t *buf;
	size_t len;
	if (util_read_file(path, 1024, &buf, &len) != 0) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0) {
		fprintf(stderr, "aftersmtpd: %s: the passphrase is empty\n", path);
		free(buf);
		return -1;
	}
	*pass_r = (char *)buf;
	*len_r = len;
	return 0;
}

/* did:aftersmtp:<first domain>:<local> (node, gateway). */
static int own_did(const cfg *c, const char *local, char out[AMP_DID_MAX + 1])
{
	const char *err = NULL;
	if (cfg_list_len(c, "domains") == 0) {
		fprintf(stderr, "aftersmtpd: `domains` is empty: name at least one\n");
		return -1;
	}
	const char *domain = cfg_list_item(c, "domains", 0);
	if (amp_did_format(domain, local, out, AMP_DID_MAX + 1, &err) != AMP_OK) {
		fprintf(stderr, "aftersmtpd: domain %s: %s\n", domain, err);
		return -1;
	}
	return 0;
}

/* <data_dir>/<local>.key: a new identity for own_did(local), wrapped with
 * the node key's passphrase, unless the file exists. */
static int make_identity(const cfg *c, const char *local,
			 const char *pass_path, bool quiet)
{
	char path[PATH_MAX], name[32], did[AMP_DID_MAX + 1];
	snprintf(name, sizeof(name), "%s.key", local);
	if (own_did(c, local, did) != 0 || path_in(c, name, path) != 0)
		return -1;
	if (access(path, F_OK) == 0)
		return 0;
	char *pass;
	size_t plen;
	amp_identity *id = NULL;
	char *text = NULL;
	const char *err = NULL;
	if (read_passphrase(pass_path, &pass, &plen) != 0)
		return -1;
	amp_err e = amp_identity_generate(did, &id, &err);
	if (e == AMP_OK)
		e = amp_keystore_seal(id, pass, plen, AMP_KDF_INTERACTIVE, &text,
				      &err);
	sodium_memzero(pass, plen);
	free(pass);
	amp_identity_destroy(&id);
	if (e != AMP_OK) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", name, err);
		return -1;
	}
	int r = create(path, text, strlen(text), 0600, quiet);
	amp_free(text);
	return r;
}

int node_init_data_dir(const cfg *c, bool quiet)
{
	char path[PATH_MAX], pass_path[PATH_MAX], did[AMP_DID_MAX + 1];
	const char *dir = cfg_str(c, "data_dir");
	struct stat st;

	if (own_did(c, "node", did) != 0)
		return -1;
	if (util_mkdirs(dir, 0700) != 0) {
		fprintf(stderr, "aftersmtpd: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == 0 && (st.st_mode & 077) != 0)
		fprintf(stderr, "aftersmtpd: warning: %s is accessible to other "
				"users (mode %03o); 0700 is recommended\n",
			dir, (unsigned)(st.st_mode & 0777));

	/* Storage key. */
	uint8_t key[32];
	randombytes_buf(key, sizeof(key));
	int r = path_in(c, "storage.key", path);
	if (r == 0)
		r = create(path, key, sizeof(key), 0600, quiet);
	sodium_memzero(key, sizeof(key));
	if (r != 0)
		return -1;

	/* Node key passphrase (only the default location is generated). */
	if (passphrase_path(c, pass_path) != 0)
		return -1;
	if (*cfg_str(c, "node_key_passphrase_file") == '\0') {
		uint8_t rnd[24];
		char b64[sodium_base64_ENCODED_LEN(24, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2base64(b64, sizeof(b64), rnd, sizeof(rnd),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		sodium_memzero(rnd, sizeof(rnd));
		size_t bl = strlen(b64);
		b64[bl] = '\n';
		r = create(pass_path, b64, bl + 1, 0600, quiet);
		sodium_memzero(b64, sizeof(b64));
		if (r != 0)
			return -1;
	}

	/* The node identity, and the gateway identity that mail for legacy
	 * addresses is sealed to (PROTOCOL.md §10.9). */
	if (make_identity(c, "node", pass_path, quiet) != 0 ||
	    make_identity(c, "gateway", pass_path, quiet) != 0)
		return -1;

	/* TLS certificate. */
	char crt_path[PATH_MAX];
	if (path_in(c, "tls.key", path) != 0 || path_in(c, "tls.crt", crt_path) != 0)
		return -1;
	if (access(path, F_OK) != 0 || access(crt_path, F_OK) != 0) {
		char *crt, *kpem;
		const char *err = NULL;
		if (tls_creds_generate(cfg_list_item(c, "domains", 0),
				       (unsigned)cfg_int(c, "tls_cert_days"), &crt,
				       &kpem, &err) != 0) {
			fprintf(stderr, "aftersmtpd: TLS certificate: %s\n", err);
			return -1;
		}
		r = create(path, kpem, strlen(kpem), 0600, quiet);
		if (r == 0)
			r = create(crt_path, crt, strlen(crt), 0644, quiet);
		sodium_memzero(kpem, strlen(kpem));
		free(kpem);
		free(crt);
		if (r != 0)
			return -1;
	}
	return 0;
}

int node_load_identity(const cfg *c, amp_identity **id_r)
{
	return node_load_key(c, "node.key", id_r);
}

int node_load_key(const cfg *c, const char *name, amp_identity **id_r)
{
	char path[PATH_MAX], pass_path[PATH_MAX];
	uint8_t *text;
	size_t len, plen;
	char *pass;
	const char *err = NULL;
	if (path_in(c, name, path) != 0 || passphrase_path(c, pass_path) != 0)
		return -1;
	if (util_read_file(path, 64 * 1024, &text, &len) != 0) {
		fprintf(stderr, "aftersmtpd: %s: %s (run `aftersmtpd init`)\n",
			path, strerror(errno));
		return -1;
	}
	if (read_passphrase(pass_path, &pass, &plen) != 0) {
		free(text);
		return -1;
	}
	amp_err e = amp_keystore_open((const char *)text, len, pass, plen, id_r,
				      &err);
	sodium_memzero(pass, plen);
	free(pass);
	free(text);
	if (e != AMP_OK) {
		fprintf(stderr, "aftersmtpd: %s: %s: %s\n", path, amp_err_name(e),
			err);
		return -1;
	}
	return 0;
}

int node_load_storage_key(const cfg *c, uint8_t key[32])
{
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	if (path_in(c, "storage.key", path) != 0)
		return -1;
	if (util_read_file(path, 64, &buf, &len) != 0) {
		fprintf(stderr, "aftersmtpd: %s: %s (run `aftersmtpd init`)\n",
			path, strerror(errno));
		return -1;
	}
	if (len != 32) {
		fprintf(stderr, "aftersmtpd: %s: not a 32-byte key\n", path);
		sodium_memzero(buf, len);
		free(buf);
		return -1;
	}
	memcpy(key, buf, 32);
	sodium_memzero(buf, len);
	free(buf);
	return 0;
}

void node_subkey(const uint8_t storage_key[32], const char *label,
		 uint8_t out[32])
{
	crypto_generichash(out, 32, (const uint8_t *)label, strlen(label),
			   storage_key, 32);
}

int node_data_path(const cfg *c, const char *name, char out[PATH_MAX])
{
	return path_in(c, name, out);
}
