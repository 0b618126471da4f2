/*
 * bsend.c — see bsend.h.  Resolve every recipient (a DID, an AMP user's
 * address through the home node's address lookup, PROTOCOL.md §10.3.1, or
 * a legacy address), take the Bcc and AMP- fields out of the message,
 * seal it once for the AMP recipients and once for the gateway with an
 * AMP-Egress-To field, deliver both on the caller's nclient and report
 * per recipient.  Blocking; no state of its own; the only writes are the
 * DID documents cli_resolve_via remembers in HOME/known.
 *
 * An address lookup that the node answers RETRY_LATER (the recipient's
 * domain runs AfterSMTP but its node cannot be reached) is a temporary
 * failure, never a fall-back to legacy mail (AMP-R-074).
 */
#include "bsend.h"

#include "cli.h"
#include "client.h"
#include "mail-header.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EGRESS_FIELD "AMP-Egress-To: "
#define EGRESS_FOLD 900u   /* start another field before a line this long */
#define ADDR_MAX 254u      /* RFC 5321 path limit less the brackets */

static bool status_temporary(int status)
{
	return status < 0 || status == AMP__V1__STATUS__STATUS_RATE_LIMITED ||
	       status == AMP__V1__STATUS__STATUS_RETRY_LATER ||
	       status == AMP__V1__STATUS__STATUS_INTERNAL;
}

static void rcpt_fail(bsend_rcpt *r, bool temporary, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rcpt_fail(bsend_rcpt *r, bool temporary, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	r->ok = false;
	r->temporary = temporary;
}

/* ------------------------------------------------------ shared with send */

int bsend_egress_wrap(const char *const *addrs, size_t n, const uint8_t *body,
		      size_t len, uint8_t **out_r, size_t *out_len_r)
{
	const size_t fl = sizeof(EGRESS_FIELD) - 1;
	size_t hl = 0;
	if (n == 0 || n > AMP_RECIPIENTS_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t a = strlen(addrs[i]);
		if (a == 0 || a > ADDR_MAX || strpbrk(addrs[i], " \t\r\n<>,") != NULL)
			return -1;
		hl += fl + a + 4; /* at worst a field of its own */
	}
	if (len > AMP_BODY_MAX || hl > AMP_BODY_MAX)
		return -1;
	uint8_t *nb = malloc(hl + len);
	if (nb == NULL)
		return -1;
	size_t o = 0, line = 0;
	for (size_t i = 0; i < n; i++) {
		size_t a = strlen(addrs[i]);
		if (line > 0 && line + 2 + a > EGRESS_FOLD) {
			memcpy(nb + o, "\r\n", 2);
			o += 2;
			line = 0;
		}
		if (line == 0) {
			memcpy(nb + o, EGRESS_FIELD, fl);
			o += fl;
			line = fl;
		} else {
			memcpy(nb + o, ", ", 2);
			o += 2;
			line += 2;
		}
		memcpy(nb + o, addrs[i], a);
		o += a;
		line += a;
	}
	memcpy(nb + o, "\r\n", 2);
	o += 2;
	memcpy(nb + o, body, len);
	*out_r = nb;
	*out_len_r = o + len;
	return 0;
}

int bsend_gateway(cli_env *env, nclient *c, const amp_identity *id,
		  amp_public_identity *pub_r)
{
	amp_did me;
	char gw[AMP_DID_MAX + 1];
	const char *err = NULL;
	if (amp_did_parse(id->pub.did, strlen(id->pub.did), &me, &err) != AMP_OK ||
	    amp_did_format(me.domain, "gateway", gw, sizeof(gw), &err) != AMP_OK) {
		cli_err(env, "gateway of %s: %s", id->pub.did, err);
		return -1;
	}
	return cli_resolve_via(env, c, gw, &id->pub, pub_r) == CLI_OK ? 0 : -1;
}

int bsend_seal_deliver(const amp_identity *id, nclient *c,
		       const amp_public_identity *rcpts, size_t n,
		       const bsend_opts *o, const uint8_t *body, size_t len,
		       Amp__V1__Response **resp_r, uint8_t **env_r,
		       size_t *env_len_r, int *status_r, const char **error_r)
{
	amp_seal_params sp = {
		.content_type = o->content_type,
		.expires = o->expires,
		.lane = o->lane,
	};
	*resp_r = NULL;
	*env_r = NULL;
	*env_len_r = 0;
	*status_r = -1;
	amp_err e = amp_seal(NULL, id, rcpts, n, &sp, body, len, env_r,
			     env_len_r, error_r);
	if (e != AMP_OK)
		return -1;
	if (nclient_deliver(c, *env_r, *env_len_r, resp_r, status_r, error_r) != 0 &&
	    *resp_r == NULL)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ the bridge */

/* msg without its Bcc and AMP-* fields: the envelope names the
 * recipients, not the text.  *out_r malloc'ed (same size at most). */
static int strip_fields(const uint8_t *msg, size_t len, uint8_t **out_r,
			size_t *out_len_r)
{
	uint8_t *out = malloc(len > 0 ? len : 1);
	if (out == NULL)
		return -1;
	mail_header_iter it;
	mail_field f;
	size_t o = 0, end = 0;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		end = f.off + f.len;
		if (mail_field_is(msg, &f, "Bcc") ||
		    (f.name_len >= 4 && strncasecmp((const char *)msg + f.off, "AMP-", 4) == 0))
			continue;
		memcpy(out + o, msg + f.off, f.len);
		o += f.len;
	}
	memcpy(out + o, msg + end, len - end); /* the empty line and the body */
	*out_r = out;
	*out_len_r = o + len - end;
	return 0;
}

/* One envelope's per-recipient results into out[] for the recipients
 * whose sealed-to DID is did. */
static void take_results(const Amp__V1__Response *resp, int status,
			 const char *err, const char *did, bsend_rcpt *out,
			 size_t n)
{
	const Amp__V1__RecipientResult *rr = NULL;
	for (size_t k = 0; resp != NULL && resp->deliver != NULL &&
			   k < resp->deliver->n_recipients; k++)
		if (strcmp(resp->deliver->recipients[k]->did, did) == 0)
			rr = resp->deliver->recipients[k];
	for (size_t i = 0; i < n; i++) {
		if (out[i].text[0] != '\0' || strcmp(out[i].did, did) != 0)
			continue; /* failed earlier, or another envelope's */
		if (rr == NULL) {
			rcpt_fail(&out[i], status_temporary(status), "%s",
				  err != NULL ? err : "the node gave no result");
		} else if (rr->status == AMP__V1__STATUS__STATUS_OK) {
			out[i].ok = true;
		} else {
			rcpt_fail(&out[i], status_temporary((int)rr->status), "%s%s%s",
				  nclient_status_name((int)rr->status),
				  rr->error[0] != '\0' ? ": " : "", rr->error);
		}
	}
}

/* Seal body to pubs[0..k), deliver, and fill the results. */
static void send_one(const amp_identity *id, nclient *c, const bsend_opts *o,
		     const amp_public_identity *pubs, size_t k,
		     const uint8_t *body, size_t len, bsend_rcpt *out, size_t n)
{
	Amp__V1__Response *resp = NULL;
	uint8_t *env = NULL;
	size_t env_len = 0;
	int status = -1;
	const char *err = NULL;
	if (bsend_seal_deliver(id, c, pubs, k, o, body, len, &resp, &env,
			       &env_len, &status, &err) != 0 && err == NULL)
		err = "not sent";
	for (size_t j = 0; j < k; j++)
		take_results(resp, status, err, pubs[j].did, out, n);
	if (resp != NULL)
		amp__v1__response__free_unpacked(resp, NULL);
	amp_free(env);
}

/* An address: an AMP identity (1, *pub_r), legacy (0), or a failure
 * written into r (-1). */
static int resolve_address(cli_env *env, nclient *c, const amp_identity *id,
			   const char *addr, amp_public_identity *pub_r,
			   bsend_rcpt *r)
{
	char *doc = NULL, *maddr = NULL;
	int status = -1, k = -1;
	const char *err = NULL;
	amp_public_identity found;
	if (strlen(addr) > ADDR_MAX || strchr(addr, '@') == NULL ||
	    strpbrk(addr, " \t\r\n<>,") != NULL) {
		rcpt_fail(r, false, "not a mail address");
		return -1;
	}
	if (nclient_lookup_address(c, addr, &doc, &maddr, &status, &err) != 0) {
		if (status == AMP__V1__STATUS__STATUS_NOT_FOUND)
			k = 0;
		else
			rcpt_fail(r, status_temporary(status), "lookup: %s",
				  err != NULL ? err : "failed");
	} else if (amp_did_document_parse(doc, strlen(doc), &found, &err) != AMP_OK) {
		rcpt_fail(r, true, "lookup: the node answered with an invalid document");
	} else if (cli_resolve_via(env, c, found.did, &id->pub, pub_r) != CLI_OK) {
		/* HOME/known or --doc wins over the node's answer */
		rcpt_fail(r, true, "cannot resolve %s", found.did);
	} else {
		k = 1;
	}
	free(doc);
	free(maddr);
	return k;
}

int bsend_message(cli_env *env, nclient *c, const amp_identity *id,
		  const bsend_opts *o, const char *const *rcpts, size_t n,
		  const uint8_t *msg, size_t len, bsend_rcpt *out,
		  const char **error_r)
{
	amp_public_identity *pubs = NULL;
	const char **legacy = NULL;
	uint8_t *body = NULL, *wrapped = NULL;
	size_t nb = 0, nw = 0, np = 0, nl = 0;
	bsend_opts so = *o;
	int r = -1;
	*error_r = NULL;
	for (size_t i = 0; i < n; i++)
		memset(&out[i], 0, sizeof(out[i]));
	if (n == 0 || n > AMP_RECIPIENTS_MAX || len > AMP_BODY_MAX) {
		*error_r = n == 0 ? "no recipient" : "too many recipients or too large";
		goto out;
	}
	pubs = calloc(n, sizeof(*pubs));
	legacy = calloc(n, sizeof(*legacy));
	if (pubs == NULL || legacy == NULL || strip_fields(msg, len, &body, &nb) != 0) {
		*error_r = "out of memory";
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		amp_public_identity pub;
		const char *err = NULL;
		int k;
		if (strncmp(rcpts[i], "did:", 4) == 0) {
			char canon[AMP_DID_MAX + 1];
			if (amp_did_normalize(rcpts[i], canon, sizeof(canon), &err) != AMP_OK) {
				rcpt_fail(&out[i], false, "%s", err);
				continue;
			}
			if (cli_resolve_via(env, c, canon, &id->pub, &pub) != CLI_OK) {
				rcpt_fail(&out[i], false, "no such identity, or its node "
					  "cannot be reached");
				continue;
			}
			k = 1;
		} else if ((k = resolve_address(env, c, id, rcpts[i], &pub, &out[i])) < 0) {
			continue;
		}
		if (k == 0) {
			out[i].legacy = true;
			legacy[nl++] = rcpts[i];
			continue;
		}
		memcpy(out[i].did, pub.did, sizeof(out[i].did));
		size_t j = 0;
		while (j < np && strcmp(pubs[j].did, pub.did) != 0)
			j++;
		if (j == np)
			pubs[np++] = pub; /* sealed once per identity */
	}
	so.content_type = o->content_type != NULL ? o->content_type : "message/rfc822";
	if (np > 0)
		send_one(id, c, &so, pubs, np, body, nb, out, n);
	if (nl > 0) {
		amp_public_identity gw;
		if (bsend_gateway(env, c, id, &gw) != 0) {
			for (size_t i = 0; i < n; i++)
				if (out[i].legacy)
					rcpt_fail(&out[i], true, "our gateway cannot be resolved");
		} else if (bsend_egress_wrap(legacy, nl, body, nb, &wrapped, &nw) != 0) {
			for (size_t i = 0; i < n; i++)
				if (out[i].legacy)
					rcpt_fail(&out[i], false, "too large for the gateway");
		} else {
			for (size_t i = 0; i < n; i++)
				if (out[i].legacy)
					memcpy(out[i].did, gw.did, sizeof(out[i].did));
			send_one(id, c, &so, &gw, 1, wrapped, nw, out, n);
		}
	}
	r = 0;
	for (size_t i = 0; i < n; i++)
		if (!out[i].ok)
			r = 1;
out:
	if (r < 0)
		for (size_t i = 0; i < n; i++)
			rcpt_fail(&out[i], true, "%s", *error_r);
	if (body != NULL)
		sodium_memzero(body, nb);
	if (wrapped != NULL)
		sodium_memzero(wrapped, nw);
	free(body);
	free(wrapped);
	free(pubs);
	free(legacy);
	return r;
}

bool bsend_summary(const char *const *rcpts, const bsend_rcpt *out, size_t n,
		   bool *temporary_r, char *text, size_t size)
{
	bool all = true, temp = true;
	size_t o = 0;
	if (size > 0)
		text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (out[i].ok)
			continue;
		all = false;
		if (!out[i].temporary)
			temp = false;
		if (size > o) {
			int k = snprintf(text + o, size - o, "%s%s: %s", o > 0 ? "; " : "",
					 rcpts[i], out[i].text);
			if (k > 0)
				o = (size_t)k < size - o ? o + (size_t)k : size - 1;
		}
	}
	*temporary_r = !all && temp;
	return all;
}
