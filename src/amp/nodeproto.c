/*
 * nodeproto.c — signing inputs of PROTOCOL.md §9–10 and invite tokens.
 * See nodeproto.h.  Every input is a concatenation of fixed labels, lp()
 * fields and fixed-size keys (amp_wbuf from libamp's private header), so
 * each has exactly one byte form.
 */
#include "nodeproto.h"

#include "amp-private.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>

#define SMALL_INPUT_MAX 1024u

typedef struct budget {
	ProtobufCAllocator a;
	size_t left;
} budget;

static void *budget_alloc(void *data, size_t n)
{
	budget *b = data;
	if (n > b->left)
		return NULL;
	b->left -= n;
	return malloc(n);
}

static void budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

Amp__V1__Frame *np_frame_unpack(const uint8_t *buf, size_t len)
{
	budget b = { .a = { budget_alloc, budget_free, NULL },
		     .left = len + NP_DECODE_SLACK };
	b.a.allocator_data = &b;
	return amp__v1__frame__unpack(&b.a, len, buf);
}

static size_t hello_input(const amp_public_identity *node,
			  const uint8_t x[NP_X_BYTES],
			  const uint8_t challenge[NP_CHALLENGE_BYTES],
			  uint64_t time, uint8_t out[SMALL_INPUT_MAX])
{
	amp_wbuf w;
	amp_wbuf_init(&w, out, SMALL_INPUT_MAX);
	amp_wbuf_str(&w, "AMPv1-hello");
	amp_wbuf_lp(&w, x, NP_X_BYTES);
	amp_wbuf_lp(&w, challenge, NP_CHALLENGE_BYTES);
	amp_wbuf_lp(&w, node->did, strlen(node->did));
	amp_wbuf_put(&w, node->sign_pk, 32);
	amp_wbuf_put(&w, node->enc_pk, 32);
	amp_wbuf_u64(&w, time);
	return w.overflow ? 0 : w.len;
}

void np_hello_sign(const amp_identity *node, const uint8_t x[NP_X_BYTES],
		   const uint8_t challenge[NP_CHALLENGE_BYTES], uint64_t time,
		   uint8_t sig[AMP_SIG_BYTES])
{
	uint8_t in[SMALL_INPUT_MAX];
	size_t n = hello_input(&node->pub, x, challenge, time, in);
	crypto_sign_detached(sig, NULL, in, n, node->sign_sk);
}

bool np_hello_verify(const amp_public_identity *node,
		     const uint8_t x[NP_X_BYTES],
		     const uint8_t challenge[NP_CHALLENGE_BYTES], uint64_t time,
		     const uint8_t sig[AMP_SIG_BYTES])
{
	uint8_t in[SMALL_INPUT_MAX];
	size_t n = hello_input(node, x, challenge, time, in);
	return n > 0 && crypto_sign_verify_detached(sig, in, n, node->sign_pk) == 0;
}

static size_t auth_input(const uint8_t x[NP_X_BYTES],
			 const uint8_t challenge[NP_CHALLENGE_BYTES],
			 const char *did, const char *node_did,
			 uint8_t out[SMALL_INPUT_MAX])
{
	amp_wbuf w;
	amp_wbuf_init(&w, out, SMALL_INPUT_MAX);
	amp_wbuf_str(&w, "AMPv1-auth");
	amp_wbuf_lp(&w, x, NP_X_BYTES);
	amp_wbuf_lp(&w, challenge, NP_CHALLENGE_BYTES);
	amp_wbuf_lp(&w, did, strlen(did));
	amp_wbuf_lp(&w, node_did, strlen(node_did));
	return w.overflow ? 0 : w.len;
}

void np_auth_sign(const amp_identity *id, const uint8_t x[NP_X_BYTES],
		  const uint8_t challenge[NP_CHALLENGE_BYTES],
		  const char *node_did, uint8_t sig[AMP_SIG_BYTES])
{
	uint8_t in[SMALL_INPUT_MAX];
	size_t n = auth_input(x, challenge, id->pub.did, node_did, in);
	crypto_sign_detached(sig, NULL, in, n, id->sign_sk);
}

bool np_auth_verify(const amp_public_identity *id, const uint8_t x[NP_X_BYTES],
		    const uint8_t challenge[NP_CHALLENGE_BYTES],
		    const char *node_did, const uint8_t sig[AMP_SIG_BYTES])
{
	uint8_t in[SMALL_INPUT_MAX];
	size_t n = auth_input(x, challenge, id->did, node_did, in);
	return n > 0 && crypto_sign_verify_detached(sig, in, n, id->sign_pk) == 0;
}

void np_enc_proof(const uint8_t dh[32],
		  const uint8_t challenge[NP_CHALLENGE_BYTES], const char *did,
		  uint8_t out[NP_ENC_PROOF_BYTES])
{
	uint8_t in[SMALL_INPUT_MAX];
	amp_wbuf w;
	amp_wbuf_init(&w, in, sizeof(in));
	amp_wbuf_str(&w, "AMPv1-register");
	amp_wbuf_lp(&w, challenge, NP_CHALLENGE_BYTES);
	amp_wbuf_lp(&w, did, strlen(did));
	crypto_generichash(out, NP_ENC_PROOF_BYTES, in, w.len, dh, 32);
}

static uint8_t *register_input(const uint8_t x[NP_X_BYTES],
			       const uint8_t challenge[NP_CHALLENGE_BYTES],
			       const char *doc, const char *stamp,
			       const char *invite,
			       const uint8_t enc_proof[NP_ENC_PROOF_BYTES],
			       size_t *len_r)
{
	size_t dl = strlen(doc), sl = strlen(stamp), il = strlen(invite);
	if (dl > AMP_DIDDOC_MAX || sl > 1024 || il > 1024)
		return NULL;
	size_t cap = 14 + 4 * 5 + NP_X_BYTES + NP_CHALLENGE_BYTES + dl + sl +
		     il + NP_ENC_PROOF_BYTES;
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return NULL;
	amp_wbuf w;
	amp_wbuf_init(&w, buf, cap);
	amp_wbuf_str(&w, "AMPv1-register");
	amp_wbuf_lp(&w, x, NP_X_BYTES);
	amp_wbuf_lp(&w, challenge, NP_CHALLENGE_BYTES);
	amp_wbuf_lp(&w, doc, dl);
	amp_wbuf_lp(&w, stamp, sl);
	amp_wbuf_lp(&w, invite, il);
	amp_wbuf_put(&w, enc_proof, NP_ENC_PROOF_BYTES);
	if (w.overflow) {
		free(buf);
		return NULL;
	}
	*len_r = w.len;
	return buf;
}

int np_register_sign(const amp_identity *id, const uint8_t x[NP_X_BYTES],
		     const uint8_t challenge[NP_CHALLENGE_BYTES],
		     const char *doc, const char *stamp, const char *invite,
		     const uint8_t enc_proof[NP_ENC_PROOF_BYTES],
		     uint8_t sig[AMP_SIG_BYTES])
{
	size_t n;
	uint8_t *in = register_input(x, challenge, doc, stamp, invite,
				     enc_proof, &n);
	if (in == NULL)
		return -1;
	crypto_sign_detached(sig, NULL, in, n, id->sign_sk);
	free(in);
	return 0;
}

bool np_register_verify(const amp_public_identity *id,
			const uint8_t x[NP_X_BYTES],
			const uint8_t challenge[NP_CHALLENGE_BYTES],
			const char *doc, const char *stamp, const char *invite,
			const uint8_t enc_proof[NP_ENC_PROOF_BYTES],
			const uint8_t sig[AMP_SIG_BYTES])
{
	size_t n;
	uint8_t *in = register_input(x, challenge, doc, stamp, invite,
				     enc_proof, &n);
	if (in == NULL)
		return false;
	bool ok = crypto_sign_verify_detached(sig, in, n, id->sign_pk) == 0;
	free(in);
	return ok;
}

static void invite_mac(const uint8_t key[32], uint64_t expires,
		       const uint8_t nonce[16], uint8_t mac[16])
{
	uint8_t in[64];
	amp_wbuf w;
	amp_wbuf_init(&w, in, sizeof(in));
	amp_wbuf_str(&w, "AMPv1-invite");
	amp_wbuf_u64(&w, expires);
	amp_wbuf_put(&w, nonce, 16);
	crypto_generichash(mac, 16, in, w.len, key, 32);
}

int np_invite_make(const uint8_t key[32], uint64_t expires,
		   char out[NP_INVITE_MAX])
{
	uint8_t nonce[16], mac[16];
	char n64[32], m64[32];
	randombytes_buf(nonce, sizeof(nonce));
	invite_mac(key, expires, nonce, mac);
	sodium_bin2base64(n64, sizeof(n64), nonce, 16,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(m64, sizeof(m64), mac, 16,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	int n = snprintf(out, NP_INVITE_MAX, NP_INVITE_PREFIX "%llu:%s:%s",
			 (unsigned long long)expires, n64, m64);
	return n > 0 && (size_t)n < NP_INVITE_MAX ? 0 : -1;
}

int np_invite_check(const uint8_t key[32], const char *token, uint64_t now,
		    uint64_t *expires_r, const char **error_r)
{
	const size_t plen = sizeof(NP_INVITE_PREFIX) - 1;
	char buf[NP_INVITE_MAX];
	size_t len = strnlen(token, NP_INVITE_MAX);
	if (len >= NP_INVITE_MAX || strncmp(token, NP_INVITE_PREFIX, plen) != 0)
		AMP_FAIL(-1, "not an invite token");
	memcpy(buf, token + plen, len - plen + 1);
	char *c1 = strchr(buf, ':');
	char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
	if (c2 == NULL)
		AMP_FAIL(-1, "not an invite token");
	*c1 = *c2 = '\0';
	uint64_t expires;
	uint8_t nonce[16], mac[16], want[16];
	if (!util_parse_u64(buf, 0, UINT64_MAX, &expires) ||
	    !amp_b64u_decode_exact(c1 + 1, nonce, 16) ||
	    !amp_b64u_decode_exact(c2 + 1, mac, 16))
		AMP_FAIL(-1, "not an invite token");
	/* One spelling per token (the node remembers used tokens by their
	 * text): the decimal without leading zeros. */
	char canon[32];
	snprintf(canon, sizeof(canon), "%llu", (unsigned long long)expires);
	if (strcmp(canon, buf) != 0)
		AMP_FAIL(-1, "not an invite token");
	invite_mac(key, expires, nonce, want);
	if (sodium_memcmp(mac, want, 16) != 0)
		AMP_FAIL(-1, "the invite was not issued by this node");
	if (now >= expires)
		AMP_FAIL(-1, "the invite has expired");
	*expires_r = expires;
	return 0;
}
