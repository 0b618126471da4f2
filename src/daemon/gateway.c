/*
 * gateway.c — see gateway.h.
 *
 * The AMP-DID-Signature (PROTOCOL.md §12, AMP-R-064 onwards): the
 * gateway identity signs for the envelope's sender DID, whose signature
 * amp_envelope_open has verified; after egress_prepare (which removes
 * every AMP-* field the user wrote, AMP-R-064) and before DKIM, so that a
 * DKIM signature may cover it.  A sender of another of our domains than
 * the gateway's own cannot be vouched for (AMP-R-065): that mail leaves
 * without the field (logged).  The secret key stays in the gateway
 * identity (libamp's guarded memory); didsig_sign only borrows it.
 */
#include "gateway.h"

#include "didsig.h"
#include "egress.h"
#include "log.h"
#include "mail-header.h"
#include "maps.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gateway {
	gateway_params p;
	amp_ctx *ctx;
	char *doc;
};

int gateway_new(const gateway_params *p, gateway **g_r, const char **error_r)
{
	gateway *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	g->p = *p;
	if (amp_ctx_create(1024, &g->ctx) != AMP_OK ||
	    amp_did_document_export(&p->id->pub, &g->doc, error_r) != AMP_OK) {
		if (*error_r == NULL)
			*error_r = "out of memory";
		gateway_free(&g);
		return -1;
	}
	*g_r = g;
	return 0;
}

void gateway_free(gateway **gp)
{
	gateway *g = *gp;
	if (g == NULL)
		return;
	amp_ctx_destroy(&g->ctx);
	amp_free(g->doc);
	free(g);
	*gp = NULL;
}

const amp_public_identity *gateway_pub(const gateway *g)
{
	return &g->p.id->pub;
}

const char *gateway_document(const gateway *g)
{
	return g->doc;
}

/* egress_map_fn: the DID's canonical_maps reverse entry, or NULL. */
static const char *map_did(void *arg, const char *did, char *buf, size_t cap)
{
	gateway *g = arg;
	const mapset_snap *snap = mapset_get(g->p.maps);
	int r = maps_canonical_reverse(snap->t[MAPS_CANONICAL], did, buf, cap,
				       NULL);
	mapset_put(snap);
	return r == 1 ? buf : NULL;
}

int gateway_address(gateway *g, const char *did, char *out, size_t out_size)
{
	amp_did d;
	if (amp_did_parse(did, strlen(did), &d, NULL) != AMP_OK)
		return -1;
	if (map_did(g, did, out, out_size) != NULL)
		return 0;
	int n = snprintf(out, out_size, "%s@%s", d.local, d.domain);
	return n > 0 && (size_t)n < out_size ? 0 : -1;
}

void gateway_msg_free(gateway_msg *m)
{
	if (m->rcpts != NULL) {
		for (size_t i = 0; i < m->q.n_rcpts; i++)
			free((char *)m->rcpts[i].addr);
		free(m->rcpts);
	}
	if (m->body != NULL) {
		sodium_memzero(m->body, m->body_len);
		free(m->body);
	}
	free(m->sender);
	free(m->sender_did);
	free(m->msgid);
	memset(m, 0, sizeof(*m));
}

/* The Message-ID field's value (for logs), or NULL. */
static char *find_msgid(const uint8_t *msg, size_t len)
{
	mail_header_iter it;
	mail_field f;
	mail_header_iter_init(&it, msg, len);
	while (mail_header_next(&it, &f) == 1) {
		if (!mail_field_is(msg, &f, "Message-ID"))
			continue;
		char buf[256];
		size_t n = mail_field_unfold(msg, &f, buf, sizeof(buf));
		if (n == 0 || n >= sizeof(buf) || strlen(buf) != n)
			return NULL;
		return strdup(buf);
	}
	return NULL;
}

/* The DID's domain part (after the second ':'), or NULL. */
static const char *did_domain(const char *did, size_t *len_r)
{
	const char *p = strchr(did, ':');
	p = p != NULL ? strchr(p + 1, ':') : NULL;
	const char *e = p != NULL ? strchr(p + 1, ':') : NULL;
	if (e == NULL)
		return NULL;
	*len_r = (size_t)(e - p - 1);
	return p + 1;
}

/* Put the gateway's AMP-DID-Signature on top of m->body: 1 added, 0 not
 * ours to sign (another domain; logged), -1 refused (*why_r). */
static int did_sign(gateway *g, gateway_msg *m, const char *sender_did,
		    uint64_t now, const char **why_r)
{
	const char *node = g->p.id->pub.did;
	size_t sl, nl;
	const char *sd = did_domain(sender_did, &sl);
	const char *nd = did_domain(node, &nl);
	if (sd == NULL || nd == NULL || sl != nl || memcmp(sd, nd, sl) != 0) {
		log_msg(LOG_INFO, "msg=\"gateway: no AMP-DID-Signature: the "
			"sender is not of the gateway's domain\" sender=%s "
			"gateway=%s", sender_did, node);
		return 0;
	}
	char *field = NULL;
	if (didsig_sign(g->p.id->sign_sk, sender_did, node, m->body,
			m->body_len, now, &field, why_r) != 0)
		return -1;
	size_t fl = strlen(field);
	uint8_t *nb = malloc(fl + m->body_len);
	if (nb == NULL) {
		free(field);
		*why_r = "out of memory";
		return -1;
	}
	memcpy(nb, field, fl);
	memcpy(nb + fl, m->body, m->body_len);
	free(field);
	sodium_memzero(m->body, m->body_len);
	free(m->body);
	m->body = nb;
	m->body_len += fl;
	return 1;
}

static unsigned lane_of(amp_lane lane)
{
	switch (lane) {
	case AMP_LANE_CRITICAL:
		return MAILQ_CRITICAL;
	case AMP_LANE_BULK:
		return MAILQ_BULK;
	default:
		return MAILQ_NORMAL;
	}
}

int gateway_prepare(gateway *g, const amp_envelope *env,
		    const amp_public_identity *sender, uint64_t now,
		    uint64_t lifetime, gateway_msg *m, char *why, size_t why_size)
{
	const char *why_c = NULL;
	amp_envelope_info info;
	uint8_t *plain = NULL, rnd[16];
	size_t plain_len = 0;
	egress_result er;
	char addr[320];
	memset(m, 0, sizeof(*m));
	memset(&er, 0, sizeof(er));
	amp_envelope_get_info(env, &info);
	if (strcmp(info.content_type, "message/rfc822") != 0) {
		snprintf(why, why_size, "the gateway sends only message/rfc822 "
			 "content");
		return -1;
	}
	if (amp_envelope_open(g->ctx, env, g->p.id, sender, now, &plain,
			      &plain_len, &why_c) != AMP_OK) {
		snprintf(why, why_size, "%s", why_c);
		return -1;
	}
	randombytes_buf(rnd, sizeof(rnd));
	int r = egress_prepare(plain, plain_len, info.sender, map_did, g,
			       g->p.hostname, rnd, now, &er, &why_c);
	sodium_memzero(plain, plain_len);
	amp_free(plain);
	if (r != 0)
		goto fail; /* the reason may point into er: copied at fail */
	if (gateway_address(g, info.sender, addr, sizeof(addr)) != 0) {
		why_c = "the sender has no mail address";
		goto fail;
	}
	m->body = er.msg;
	m->body_len = er.len;
	er.msg = NULL;
	if (g->p.didsig_sign) {
		int d = did_sign(g, m, info.sender, now, &why_c);
		if (d < 0)
			goto fail;
		m->did_signed = d == 1;
	}
	if (er.from_domain != NULL) {
		uint8_t *sig = NULL;
		size_t sig_len = 0;
		int s = dkimkeys_sign(g->p.dkim, er.from_domain, m->body,
				      m->body_len, now, &sig, &sig_len, &why_c);
		if (s < 0)
			goto fail;
		if (s == 1) {
			sodium_memzero(m->body, m->body_len);
			free(m->body);
			m->body = sig;
			m->body_len = sig_len;
			m->signed_ = true;
		}
	}
	m->rcpts = calloc(er.n_rcpts, sizeof(*m->rcpts));
	m->sender = strdup(addr);
	m->sender_did = strdup(info.sender);
	if (m->rcpts == NULL || m->sender == NULL || m->sender_did == NULL) {
		why_c = "out of memory";
		goto fail;
	}
	for (size_t i = 0; i < er.n_rcpts; i++) {
		m->rcpts[i].addr = er.rcpts[i];
		er.rcpts[i] = NULL;
		m->q.n_rcpts++;
	}
	m->msgid = find_msgid(m->body, m->body_len);
	m->q.sender = m->sender;
	m->q.sender_did = m->sender_did;
	m->q.msgid = m->msgid;
	m->q.rcpts = m->rcpts;
	m->q.body = m->body;
	m->q.body_len = m->body_len;
	int cl = lanes_for_sender(g->p.lanes, m->sender);
	m->q.lane = cl >= 0 ? (unsigned)cl : lane_of(info.lane);
	m->q.created = now;
	m->q.expires = now + lifetime;
	egress_result_free(&er);
	return 0;
fail:
	snprintf(why, why_size, "%s", why_c != NULL ? why_c : "refused");
	egress_result_free(&er);
	gateway_msg_free(m);
	return -1;
}
