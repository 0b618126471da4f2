/*
 * dkimkeys.c — see dkimkeys.h.
 */
#include "dkimkeys.h"

#include "arc.h"
#include "dkim-sign.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DKIM_KEYS_MAX 256u
#define DKIM_PEM_MAX (64u * 1024u)

typedef struct dkey {
	char domain[254];
	char selector[64];
	dkim_key *key;
	pthread_mutex_t lock;
} dkey;

struct dkimkeys {
	dkey *keys;
	size_t n;
};

size_t dkimkeys_count(const dkimkeys *k)
{
	return k == NULL ? 0 : k->n;
}

void dkimkeys_free(dkimkeys **kp)
{
	dkimkeys *k = *kp;
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->n; i++) {
		dkim_key_free(&k->keys[i].key);
		pthread_mutex_destroy(&k->keys[i].lock);
	}
	free(k->keys);
	free(k);
	*kp = NULL;
}

/* "domain:selector:/path" into its three parts. */
static int parse_entry(const char *item, dkey *d, const char **path_r,
		       const char **why)
{
	const char *c1 = strchr(item, ':');
	const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	if (c1 == NULL || c2 == NULL) {
		*why = "expected domain:selector:/path/key.pem";
		return -1;
	}
	size_t dl = (size_t)(c1 - item), sl = (size_t)(c2 - c1 - 1);
	if (dl == 0 || dl >= sizeof(d->domain) || sl == 0 ||
	    sl >= sizeof(d->selector)) {
		*why = "the domain or the selector is empty or too long";
		return -1;
	}
	memcpy(d->domain, item, dl);
	d->domain[dl] = '\0';
	memcpy(d->selector, c1 + 1, sl);
	d->selector[sl] = '\0';
	for (char *p = d->domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (!dkim_name_ok(d->domain) || !dkim_name_ok(d->selector)) {
		*why = "the domain or the selector has a byte outside "
		       "[A-Za-z0-9._-]";
		return -1;
	}
	if (c2[1] != '/') {
		*why = "the key file must be an absolute path";
		return -1;
	}
	*path_r = c2 + 1;
	return 0;
}

int dkimkeys_load(const cfg *conf, dkimkeys **k_r, char *err, size_t err_size)
{
	size_t n = cfg_list_len(conf, "dkim_keys");
	*k_r = NULL;
	if (n > DKIM_KEYS_MAX) {
		snprintf(err, err_size, "dkim_keys: more than %u keys",
			 DKIM_KEYS_MAX);
		return -1;
	}
	dkimkeys *k = calloc(1, sizeof(*k));
	if (k == NULL || (n > 0 && (k->keys = calloc(n, sizeof(dkey))) == NULL)) {
		free(k);
		snprintf(err, err_size, "dkim_keys: out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *item = cfg_list_item(conf, "dkim_keys", i);
		dkey *d = &k->keys[k->n];
		const char *path = NULL, *why = NULL;
		uint8_t *pem = NULL;
		size_t len = 0;
		if (parse_entry(item, d, &path, &why) != 0) {
			snprintf(err, err_size, "dkim_keys: %.200s: %s", item, why);
			goto fail;
		}
		for (size_t j = 0; j < k->n; j++) {
			if (strcmp(k->keys[j].domain, d->domain) == 0) {
				snprintf(err, err_size,
					 "dkim_keys: %s has two keys", d->domain);
				goto fail;
			}
		}
		if (util_read_file(path, DKIM_PEM_MAX, &pem, &len) != 0) {
			snprintf(err, err_size, "dkim_keys: %.200s: %s", path,
				 strerror(errno));
			goto fail;
		}
		int r = dkim_key_load_pem((const char *)pem, len, &d->key, &why);
		sodium_memzero(pem, len);
		free(pem);
		if (r != 0) {
			snprintf(err, err_size, "dkim_keys: %.200s: %s", path, why);
			goto fail;
		}
		pthread_mutex_init(&d->lock, NULL);
		k->n++;
	}
	*k_r = k;
	return 0;
fail:
	dkimkeys_free(&k);
	return -1;
}

static dkey *find(const dkimkeys *k, const char *domain)
{
	for (size_t i = 0; k != NULL && i < k->n; i++)
		if (strcasecmp(k->keys[i].domain, domain) == 0)
			return &k->keys[i];
	return NULL;
}

bool dkimkeys_has(const dkimkeys *k, const char *domain)
{
	return find(k, domain) != NULL;
}

int dkimkeys_arc_seal(dkimkeys *k, const char *domain, const uint8_t *msg,
		      size_t len, const char *authres_payload, arc_cv cv,
		      uint64_t now, char **fields_r, const char **why_r)
{
	dkey *d = find(k, domain);
	*fields_r = NULL;
	if (d == NULL)
		return 0;
	pthread_mutex_lock(&d->lock);
	int r = arc_seal(msg, len, d->key, d->domain, d->selector,
			 authres_payload, cv, now, fields_r, why_r);
	pthread_mutex_unlock(&d->lock);
	return r == 0 ? 1 : -1;
}

int dkimkeys_sign(dkimkeys *k, const char *domain, const uint8_t *msg,
		  size_t len, uint64_t now, uint8_t **out_r, size_t *out_len_r,
		  const char **why_r)
{
	dkey *d = find(k, domain);
	if (d == NULL)
		return 0;
	char *hdr = NULL;
	pthread_mutex_lock(&d->lock);
	int r = dkim_sign(d->key, d->domain, d->selector, msg, len, now, &hdr,
			  why_r);
	pthread_mutex_unlock(&d->lock);
	if (r != 0)
		return -1;
	size_t hl = strlen(hdr);
	uint8_t *out = malloc(hl + len);
	if (out == NULL) {
		free(hdr);
		*why_r = "out of memory";
		return -1;
	}
	memcpy(out, hdr, hl);
	memcpy(out + hl, msg, len);
	free(hdr);
	*out_r = out;
	*out_len_r = hl + len;
	return 1;
}
