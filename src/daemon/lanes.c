/*
 * lanes.c — see lanes.h.
 */
#include "lanes.h"

#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LANES_ENTRY_MAX 1000u

typedef struct entry {
	char *pattern;               /* "user@domain" or "@domain" */
	int lane;
} entry;

struct lanes {
	entry *e;
	size_t n;
};

void lanes_free(lanes **lp)
{
	lanes *l = *lp;
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].pattern);
	free(l->e);
	free(l);
	*lp = NULL;
}

static int add(lanes *l, const cfg *conf, const char *key, int lane, char *err,
	       size_t err_size)
{
	for (size_t i = 0; i < cfg_list_len(conf, key); i++) {
		const char *v = cfg_list_item(conf, key, i);
		const char *at = strchr(v, '@');
		if (at == NULL || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
		    strlen(v) > 254 || l->n >= LANES_ENTRY_MAX) {
			snprintf(err, err_size, "%s: '%.100s' is neither user@domain "
				 "nor @domain (at most %u entries)", key, v,
				 LANES_ENTRY_MAX);
			return -1;
		}
		if ((l->e[l->n].pattern = strdup(v)) == NULL) {
			snprintf(err, err_size, "out of memory");
			return -1;
		}
		l->e[l->n++].lane = lane;
	}
	return 0;
}

int lanes_new(const cfg *conf, lanes **l_r, char *err, size_t err_size)
{
	size_t n = cfg_list_len(conf, "smtp_out_critical_senders") +
		   cfg_list_len(conf, "smtp_out_bulk_senders");
	lanes *l = calloc(1, sizeof(*l));
	if (l == NULL || (l->e = calloc(n + 1, sizeof(*l->e))) == NULL) {
		free(l);
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	if (add(l, conf, "smtp_out_critical_senders", MAILQ_CRITICAL, err,
		err_size) != 0 ||
	    add(l, conf, "smtp_out_bulk_senders", MAILQ_BULK, err, err_size) != 0) {
		lanes_free(&l);
		return -1;
	}
	*l_r = l;
	return 0;
}

int lanes_for_sender(const lanes *l, const char *sender)
{
	const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
	if (l == NULL || at == NULL)
		return -1;
	/* an exact address first, then its domain */
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].pattern[0] != '@' &&
		    strcasecmp(l->e[i].pattern, sender) == 0)
			return l->e[i].lane;
	for (size_t i = 0; i < l->n; i++)
		if (l->e[i].pattern[0] == '@' && strcasecmp(l->e[i].pattern, at) == 0)
			return l->e[i].lane;
	return -1;
}
