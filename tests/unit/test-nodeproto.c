/*
 * test-nodeproto.c — src/amp/nodeproto: the signed inputs of PROTOCOL.md
 * §9.1 (hello), §9.2 (auth), §10.1 (register, enc_proof) and the invite
 * tokens of §10.2.
 *
 * Each input is also built here from the protocol text (lp(), u32(),
 * u64(), big-endian), independently of nodeproto.c: Ed25519 is
 * deterministic, so np_*_sign must give exactly Sign(sk, input), and the
 * invite MAC must be KH(key, "AMPv1-invite" ‖ u64(expires) ‖ nonce, 16).
 * Then every field is changed in turn and the verification must fail.
 */
#include "test-common.h"

#include "nodeproto.h"

#define NODE_DID "did:aftersmtp:example.org:node"
#define ALICE_DID "did:aftersmtp:example.org:alice"

/* A spec-side byte writer (deliberately not amp_wbuf). */
typedef struct sbuf {
	uint8_t b[70000 + 3 * 1024];
	size_t n;
} sbuf;

static void s_put(sbuf *s, const void *p, size_t n)
{
	assert_true(s->n + n <= sizeof(s->b));
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void s_u32(sbuf *s, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
			 (uint8_t)v };
	s_put(s, b, 4);
}

static void s_u64(sbuf *s, uint64_t v)
{
	s_u32(s, (uint32_t)(v >> 32));
	s_u32(s, (uint32_t)v);
}

static void s_lp(sbuf *s, const void *p, size_t n)
{
	s_u32(s, (uint32_t)n);
	s_put(s, p, n);
}

static void s_str(sbuf *s, const char *str)
{
	s_put(s, str, strlen(str));
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + 13 * i);
}

/* ------------------------------------------------------------- hello */

static void test_hello(void **state)
{
	(void)state;
	amp_identity *node = t_identity(NODE_DID);
	amp_identity *other = t_identity("did:aftersmtp:example.net:node");
	uint8_t x[NP_X_BYTES], ch[NP_CHALLENGE_BYTES], sig[AMP_SIG_BYTES],
		want[AMP_SIG_BYTES];
	fill(x, sizeof(x), 1);
	fill(ch, sizeof(ch), 2);
	const uint64_t t = T_NOW;

	np_hello_sign(node, x, ch, t, sig);
	sbuf *s = calloc(1, sizeof(*s));
	s_str(s, "AMPv1-hello");
	s_lp(s, x, sizeof(x));
	s_lp(s, ch, sizeof(ch));
	s_lp(s, NODE_DID, strlen(NODE_DID));
	s_put(s, node->pub.sign_pk, 32);
	s_put(s, node->pub.enc_pk, 32);
	s_u64(s, t);
	crypto_sign_detached(want, NULL, s->b, s->n, node->sign_sk);
	assert_memory_equal(sig, want, sizeof(sig));
	assert_true(np_hello_verify(&node->pub, x, ch, t, sig));

	/* each input changed */
	uint8_t x2[NP_X_BYTES], ch2[NP_CHALLENGE_BYTES], sig2[AMP_SIG_BYTES];
	for (size_t i = 0; i < NP_X_BYTES; i++) {
		memcpy(x2, x, sizeof(x));
		x2[i] ^= 0x01;
		assert_false(np_hello_verify(&node->pub, x2, ch, t, sig));
	}
	for (size_t i = 0; i < NP_CHALLENGE_BYTES; i++) {
		memcpy(ch2, ch, sizeof(ch));
		ch2[i] ^= 0x80;
		assert_false(np_hello_verify(&node->pub, x, ch2, t, sig));
	}
	assert_false(np_hello_verify(&node->pub, x, ch, t + 1, sig));
	assert_false(np_hello_verify(&node->pub, x, ch, t - 1, sig));
	assert_false(np_hello_verify(&node->pub, x, ch, t ^ (1ull << 63), sig));
	amp_public_identity p = node->pub;
	memcpy(p.did, "did:aftersmtp:example.net:node", 31);
	assert_false(np_hello_verify(&p, x, ch, t, sig));     /* node_did */
	p = node->pub;
	p.enc_pk[0] ^= 1;
	assert_false(np_hello_verify(&p, x, ch, t, sig));     /* node_enc_pk */
	p = node->pub;
	memcpy(p.sign_pk, other->pub.sign_pk, 32);
	assert_false(np_hello_verify(&p, x, ch, t, sig));     /* another key */
	for (size_t i = 0; i < AMP_SIG_BYTES; i += 7) {
		memcpy(sig2, sig, sizeof(sig));
		sig2[i] ^= 0x04;
		assert_false(np_hello_verify(&node->pub, x, ch, t, sig2));
	}
	/* signed by another node with this node's public identity claimed */
	np_hello_sign(other, x, ch, t, sig2);
	assert_false(np_hello_verify(&node->pub, x, ch, t, sig2));
	free(s);
	amp_identity_destroy(&node);
	amp_identity_destroy(&other);
}

/* -------------------------------------------------------------- auth */

static void test_auth(void **state)
{
	(void)state;
	amp_identity *alice = t_identity(ALICE_DID);
	amp_identity *bob = t_identity("did:aftersmtp:example.org:bob");
	uint8_t x[NP_X_BYTES], ch[NP_CHALLENGE_BYTES], sig[AMP_SIG_BYTES],
		want[AMP_SIG_BYTES];
	fill(x, sizeof(x), 3);
	fill(ch, sizeof(ch), 4);

	np_auth_sign(alice, x, ch, NODE_DID, sig);
	sbuf *s = calloc(1, sizeof(*s));
	s_str(s, "AMPv1-auth");
	s_lp(s, x, sizeof(x));
	s_lp(s, ch, sizeof(ch));
	s_lp(s, ALICE_DID, strlen(ALICE_DID));
	s_lp(s, NODE_DID, strlen(NODE_DID));
	crypto_sign_detached(want, NULL, s->b, s->n, alice->sign_sk);
	assert_memory_equal(sig, want, sizeof(sig));
	assert_true(np_auth_verify(&alice->pub, x, ch, NODE_DID, sig));

	uint8_t x2[NP_X_BYTES], ch2[NP_CHALLENGE_BYTES], sig2[AMP_SIG_BYTES];
	for (size_t i = 0; i < NP_X_BYTES; i++) {
		memcpy(x2, x, sizeof(x));
		x2[i] ^= 0x10;
		assert_false(np_auth_verify(&alice->pub, x2, ch, NODE_DID, sig));
	}
	for (size_t i = 0; i < NP_CHALLENGE_BYTES; i++) {
		memcpy(ch2, ch, sizeof(ch));
		ch2[i] ^= 0x02;
		assert_false(np_auth_verify(&alice->pub, x, ch2, NODE_DID, sig));
	}
	/* another node, a node DID one byte longer or shorter */
	assert_false(np_auth_verify(&alice->pub, x, ch,
				    "did:aftersmtp:example.net:node", sig));
	assert_false(np_auth_verify(&alice->pub, x, ch, NODE_DID "s", sig));
	assert_false(np_auth_verify(&alice->pub, x, ch,
				    "did:aftersmtp:example.org:nod", sig));
	assert_false(np_auth_verify(&alice->pub, x, ch, "", sig));
	/* the DID is signed: alice's keys under bob's DID do not verify */
	amp_public_identity p = alice->pub;
	memcpy(p.did, bob->pub.did, strlen(bob->pub.did) + 1);
	assert_false(np_auth_verify(&p, x, ch, NODE_DID, sig));
	/* bob's signature is not alice's */
	np_auth_sign(bob, x, ch, NODE_DID, sig2);
	assert_false(np_auth_verify(&alice->pub, x, ch, NODE_DID, sig2));
	assert_true(np_auth_verify(&bob->pub, x, ch, NODE_DID, sig2));
	for (size_t i = 0; i < AMP_SIG_BYTES; i += 5) {
		memcpy(sig2, sig, sizeof(sig));
		sig2[i] ^= 0x20;
		assert_false(np_auth_verify(&alice->pub, x, ch, NODE_DID, sig2));
	}
	/* lp() keeps did and node_did apart: moving a byte across fails */
	amp_public_identity q = alice->pub;
	memcpy(q.did, ALICE_DID "d", sizeof(ALICE_DID "d"));
	assert_false(np_auth_verify(&q, x, ch, "id:aftersmtp:example.org:node",
				    sig));
	/* a node DID too long for the input buffer is refused, not cut */
	char *big = malloc(4096);
	memset(big, 'n', 4095);
	big[4095] = '\0';
	assert_false(np_auth_verify(&alice->pub, x, ch, big, sig));
	free(big);
	free(s);
	amp_identity_destroy(&alice);
	amp_identity_destroy(&bob);
}

/* ---------------------------------------------------------- register */

typedef struct reg {
	uint8_t x[NP_X_BYTES], ch[NP_CHALLENGE_BYTES];
	char *doc;
	const char *stamp, *invite;
	uint8_t proof[NP_ENC_PROOF_BYTES];
} reg;

static bool reg_verify(const amp_public_identity *pub, const reg *r,
		       const uint8_t sig[AMP_SIG_BYTES])
{
	return np_register_verify(pub, r->x, r->ch, r->doc, r->stamp, r->invite,
				  r->proof, sig);
}

static void test_register(void **state)
{
	(void)state;
	amp_identity *alice = t_identity(ALICE_DID);
	amp_identity *node = t_identity(NODE_DID);
	reg r = { .stamp = "amp-pow-v1:20:1767225600:00000000000abcde",
		  .invite = "" };
	uint8_t sig[AMP_SIG_BYTES], want[AMP_SIG_BYTES], dh[32];
	fill(r.x, sizeof(r.x), 5);
	fill(r.ch, sizeof(r.ch), 6);
	assert_int_equal(amp_did_document_export(&alice->pub, &r.doc, NULL), AMP_OK);
	assert_int_equal(crypto_scalarmult(dh, alice->enc_sk, node->pub.enc_pk), 0);
	np_enc_proof(dh, r.ch, ALICE_DID, r.proof);

	assert_int_equal(np_register_sign(alice, r.x, r.ch, r.doc, r.stamp,
					  r.invite, r.proof, sig), 0);
	sbuf *s = calloc(1, sizeof(*s));
	s_str(s, "AMPv1-register");
	s_lp(s, r.x, sizeof(r.x));
	s_lp(s, r.ch, sizeof(r.ch));
	s_lp(s, r.doc, strlen(r.doc));
	s_lp(s, r.stamp, strlen(r.stamp));
	s_u32(s, 0); /* lp("") */
	s_put(s, r.proof, sizeof(r.proof));
	crypto_sign_detached(want, NULL, s->b, s->n, alice->sign_sk);
	assert_memory_equal(sig, want, sizeof(sig));
	assert_true(reg_verify(&alice->pub, &r, sig));

	/* each input changed */
	reg c = r;
	c.x[31] ^= 1;
	assert_false(reg_verify(&alice->pub, &c, sig));
	c = r;
	c.ch[0] ^= 1;
	assert_false(reg_verify(&alice->pub, &c, sig));
	c = r;
	c.proof[17] ^= 0x40;
	assert_false(reg_verify(&alice->pub, &c, sig));
	c = r;
	c.stamp = "amp-pow-v1:20:1767225600:00000000000abcdf";
	assert_false(reg_verify(&alice->pub, &c, sig));
	c = r;
	c.stamp = "";
	c.invite = r.stamp; /* the same text in the other field */
	assert_false(reg_verify(&alice->pub, &c, sig));
	c = r;
	c.invite = "x";
	assert_false(reg_verify(&alice->pub, &c, sig));
	size_t dl = strlen(r.doc);
	c = r;
	c.doc = malloc(dl + 2);
	memcpy(c.doc, r.doc, dl + 1);
	c.doc[dl] = ' ';
	c.doc[dl + 1] = '\0';
	assert_false(reg_verify(&alice->pub, &c, sig));      /* doc + " " */
	c.doc[dl - 1] = '\0';
	assert_false(reg_verify(&alice->pub, &c, sig));      /* doc cut */
	free(c.doc);
	amp_identity *bob = t_identity("did:aftersmtp:example.org:bob");
	assert_false(reg_verify(&bob->pub, &r, sig));        /* another key */
	uint8_t sig2[AMP_SIG_BYTES];
	for (size_t i = 0; i < AMP_SIG_BYTES; i += 3) {
		memcpy(sig2, sig, sizeof(sig));
		sig2[i] ^= 0x08;
		assert_false(reg_verify(&alice->pub, &r, sig2));
	}
	/* lp() keeps stamp and invite apart: "ab"+"" is not "a"+"b" */
	reg ab = r, a_b = r;
	ab.stamp = "ab";
	ab.invite = "";
	a_b.stamp = "a";
	a_b.invite = "b";
	assert_int_equal(np_register_sign(alice, ab.x, ab.ch, ab.doc, ab.stamp,
					  ab.invite, ab.proof, sig2), 0);
	assert_true(reg_verify(&alice->pub, &ab, sig2));
	assert_false(reg_verify(&alice->pub, &a_b, sig2));

	/* bounds: a document over AMP_DIDDOC_MAX, a stamp or an invite over
	 * 1024 bytes is refused by both sides */
	char *big = malloc(AMP_DIDDOC_MAX + 2);
	memset(big, ' ', AMP_DIDDOC_MAX + 1);
	big[AMP_DIDDOC_MAX + 1] = '\0';
	assert_int_equal(np_register_sign(alice, r.x, r.ch, big, "", "i", r.proof,
					  sig2), -1);
	assert_false(np_register_verify(&alice->pub, r.x, r.ch, big, "", "i",
					r.proof, sig2));
	big[AMP_DIDDOC_MAX] = '\0'; /* exactly the maximum is fine */
	assert_int_equal(np_register_sign(alice, r.x, r.ch, big, "", "i", r.proof,
					  sig2), 0);
	assert_true(np_register_verify(&alice->pub, r.x, r.ch, big, "", "i",
				       r.proof, sig2));
	big[1025] = '\0';
	assert_int_equal(np_register_sign(alice, r.x, r.ch, r.doc, big, "", r.proof,
					  sig2), -1);
	assert_int_equal(np_register_sign(alice, r.x, r.ch, r.doc, "", big, r.proof,
					  sig2), -1);
	assert_false(np_register_verify(&alice->pub, r.x, r.ch, r.doc, "", big,
					r.proof, sig2));
	big[1024] = '\0';
	assert_int_equal(np_register_sign(alice, r.x, r.ch, r.doc, "", big, r.proof,
					  sig2), 0);
	assert_true(np_register_verify(&alice->pub, r.x, r.ch, r.doc, "", big,
				       r.proof, sig2));
	free(big);
	free(s);
	amp_free(r.doc);
	amp_identity_destroy(&alice);
	amp_identity_destroy(&bob);
	amp_identity_destroy(&node);
}

/* --------------------------------------------------------- enc_proof */

static void test_enc_proof(void **state)
{
	(void)state;
	uint8_t usk[32], upk[32], nsk[32], npk[32], dh1[32], dh2[32];
	uint8_t ch[NP_CHALLENGE_BYTES], p1[32], p2[32], want[32];
	randombytes_buf(usk, sizeof(usk));
	randombytes_buf(nsk, sizeof(nsk));
	crypto_scalarmult_base(upk, usk);
	crypto_scalarmult_base(npk, nsk);
	fill(ch, sizeof(ch), 7);
	/* the client's side and the node's side agree */
	assert_int_equal(crypto_scalarmult(dh1, usk, npk), 0);
	assert_int_equal(crypto_scalarmult(dh2, nsk, upk), 0);
	assert_memory_equal(dh1, dh2, 32);
	np_enc_proof(dh1, ch, ALICE_DID, p1);
	np_enc_proof(dh2, ch, ALICE_DID, p2);
	assert_memory_equal(p1, p2, 32);
	/* KH(dh, "AMPv1-register" ‖ lp(challenge) ‖ lp(did), 32) */
	sbuf *s = calloc(1, sizeof(*s));
	s_str(s, "AMPv1-register");
	s_lp(s, ch, sizeof(ch));
	s_lp(s, ALICE_DID, strlen(ALICE_DID));
	crypto_generichash(want, 32, s->b, s->n, dh1, 32);
	assert_memory_equal(p1, want, 32);
	/* another challenge, DID or shared secret gives another proof */
	ch[9] ^= 1;
	np_enc_proof(dh1, ch, ALICE_DID, p2);
	assert_memory_not_equal(p1, p2, 32);
	ch[9] ^= 1;
	np_enc_proof(dh1, ch, "did:aftersmtp:example.org:bob", p2);
	assert_memory_not_equal(p1, p2, 32);
	uint8_t osk[32], dh3[32];
	randombytes_buf(osk, sizeof(osk));
	assert_int_equal(crypto_scalarmult(dh3, osk, npk), 0);
	np_enc_proof(dh3, ch, ALICE_DID, p2);
	assert_memory_not_equal(p1, p2, 32);
	/* the longest DID fits */
	char did[AMP_DID_MAX + 1];
	memset(did, 'a', AMP_DID_MAX);
	did[AMP_DID_MAX] = '\0';
	np_enc_proof(dh1, ch, did, p2);
	free(s);
}

/* ----------------------------------------------------------- invites */

static const uint8_t ikey[32] = "invite key for the unit tests..";

/* A token written from §10.2 with a chosen nonce. */
static void spec_token(const uint8_t key[32], uint64_t expires,
		       const uint8_t nonce[16], char out[NP_INVITE_MAX])
{
	sbuf s = { .n = 0 };
	uint8_t mac[16];
	char n64[32], m64[32];
	s_str(&s, "AMPv1-invite");
	s_u64(&s, expires);
	s_put(&s, nonce, 16);
	crypto_generichash(mac, 16, s.b, s.n, key, 32);
	sodium_bin2base64(n64, sizeof(n64), nonce, 16,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_bin2base64(m64, sizeof(m64), mac, 16,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	int n = snprintf(out, NP_INVITE_MAX, "amp-invite-v1:%llu:%s:%s",
			 (unsigned long long)expires, n64, m64);
	assert_true(n > 0 && n < (int)NP_INVITE_MAX);
}

static int chk(const char *tok, uint64_t now, uint64_t *exp_r,
	       const char **err_r)
{
	uint64_t e = 0;
	const char *err = NULL;
	int r = np_invite_check(ikey, tok, now, &e, &err);
	if (r == 0) {
		assert_null(err);
	} else {
		assert_int_equal(r, -1);
		assert_non_null(err);
	}
	if (exp_r != NULL)
		*exp_r = e;
	if (err_r != NULL)
		*err_r = err;
	return r;
}

static void test_invite_good(void **state)
{
	(void)state;
	const uint64_t exp = T_NOW + 7 * 86400;
	char tok[NP_INVITE_MAX], tok2[NP_INVITE_MAX], want[NP_INVITE_MAX];
	assert_int_equal(np_invite_make(ikey, exp, tok), 0);
	assert_true(strlen(tok) < NP_INVITE_MAX);
	assert_true(strncmp(tok, NP_INVITE_PREFIX, strlen(NP_INVITE_PREFIX)) == 0);
	/* it is the §10.2 token of its own nonce */
	const char *c2 = strrchr(tok, ':');
	uint8_t nonce[16];
	size_t nl;
	assert_non_null(c2);
	assert_int_equal(sodium_base642bin(nonce, 16, c2 - 22, 22, NULL, &nl, NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	assert_int_equal(nl, 16);
	spec_token(ikey, exp, nonce, want);
	assert_string_equal(tok, want);
	uint64_t e = 0;
	assert_int_equal(chk(tok, T_NOW, &e, NULL), 0);
	assert_int_equal(e, exp);
	assert_int_equal(chk(tok, 0, NULL, NULL), 0);
	assert_int_equal(chk(tok, exp - 1, NULL, NULL), 0);
	/* two invites differ (random nonce) and are both good */
	assert_int_equal(np_invite_make(ikey, exp, tok2), 0);
	assert_string_not_equal(tok, tok2);
	assert_int_equal(chk(tok2, T_NOW, NULL, NULL), 0);
	/* a hand-made token with a chosen nonce is good too */
	memset(nonce, 0, sizeof(nonce));
	spec_token(ikey, exp, nonce, want);
	assert_int_equal(chk(want, T_NOW, &e, NULL), 0);
	assert_int_equal(e, exp);
	/* the longest token (expires = UINT64_MAX) fits in NP_INVITE_MAX */
	assert_int_equal(np_invite_make(ikey, UINT64_MAX, tok), 0);
	assert_int_equal(strlen(tok), 14 + 20 + 1 + 22 + 1 + 22);
	assert_int_equal(chk(tok, UINT64_MAX - 1, &e, NULL), 0);
	assert_int_equal(e, UINT64_MAX);
}

static void test_invite_expired(void **state)
{
	(void)state;
	char tok[NP_INVITE_MAX];
	const char *err;
	assert_int_equal(np_invite_make(ikey, T_NOW, tok), 0);
	assert_int_equal(chk(tok, T_NOW, NULL, &err), -1);     /* now == expires */
	assert_string_equal(err, "the invite has expired");
	assert_int_equal(chk(tok, T_NOW + 1, NULL, &err), -1);
	assert_int_equal(chk(tok, UINT64_MAX, NULL, &err), -1);
	assert_int_equal(chk(tok, T_NOW - 1, NULL, NULL), 0);
	assert_int_equal(np_invite_make(ikey, 0, tok), 0);      /* never valid */
	assert_int_equal(chk(tok, 0, NULL, &err), -1);
	assert_string_equal(err, "the invite has expired");
}

static void test_invite_wrong_key(void **state)
{
	(void)state;
	char tok[NP_INVITE_MAX];
	uint8_t other[32];
	const char *err = NULL;
	uint64_t e = 0;
	memcpy(other, ikey, 32);
	other[31] ^= 1;
	assert_int_equal(np_invite_make(other, T_NOW + 60, tok), 0);
	assert_int_equal(np_invite_check(other, tok, T_NOW, &e, &err), 0);
	assert_int_equal(chk(tok, T_NOW, NULL, &err), -1);
	assert_string_equal(err, "the invite was not issued by this node");
	/* authenticity comes before expiry: a forged expired one says forged */
	assert_int_equal(np_invite_make(other, T_NOW - 60, tok), 0);
	assert_int_equal(chk(tok, T_NOW, NULL, &err), -1);
	assert_string_equal(err, "the invite was not issued by this node");
}

/* Change one character at i to every other base64url character (and a
 * few others): the token must never be accepted. */
static void tamper_at(const char *tok, size_t i)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789-_:+/= .";
	char t[NP_INVITE_MAX];
	for (const char *a = alphabet; *a != '\0'; a++) {
		if (*a == tok[i])
			continue;
		memcpy(t, tok, strlen(tok) + 1);
		t[i] = *a;
		assert_int_equal(chk(t, T_NOW, NULL, NULL), -1);
	}
}

static void test_invite_tampered(void **state)
{
	(void)state;
	char tok[NP_INVITE_MAX], t[NP_INVITE_MAX + 2];
	const char *err;
	uint8_t nonce[16];
	fill(nonce, sizeof(nonce), 9);
	spec_token(ikey, T_NOW + 86400, nonce, tok);
	assert_int_equal(chk(tok, T_NOW, NULL, NULL), 0);
	size_t len = strlen(tok), plen = strlen(NP_INVITE_PREFIX);
	const char *c1 = strchr(tok + plen, ':'), *c2 = strrchr(tok, ':');
	size_t nonce_at = (size_t)(c1 - tok) + 1, mac_at = (size_t)(c2 - tok) + 1;

	/* every character of the MAC, the nonce and the expiry */
	for (size_t i = mac_at; i < len; i++)
		tamper_at(tok, i);
	for (size_t i = nonce_at; i < mac_at - 1; i++)
		tamper_at(tok, i);
	for (size_t i = plen; i < nonce_at - 1; i++)
		tamper_at(tok, i);
	/* the MAC of another expiry: a later expiry under the old MAC */
	spec_token(ikey, T_NOW + 86400 + 1, nonce, t);
	memcpy(t + (c2 - tok), c2, strlen(c2) + 1); /* new expiry, old mac: same length */
	assert_int_equal(chk(t, T_NOW, NULL, &err), -1);
	assert_string_equal(err, "the invite was not issued by this node");
	/* the prefix */
	for (size_t i = 0; i < plen; i++)
		tamper_at(tok, i);
	/* nonce and MAC swapped */
	snprintf(t, sizeof(t), "%.*s%s:%.22s", (int)nonce_at, tok, c2 + 1,
		 tok + nonce_at);
	assert_int_equal(chk(t, T_NOW, NULL, NULL), -1);
}

static void test_invite_truncated_overlong(void **state)
{
	(void)state;
	char tok[NP_INVITE_MAX], t[512];
	assert_int_equal(np_invite_make(ikey, T_NOW + 3600, tok), 0);
	size_t len = strlen(tok);
	/* every proper prefix */
	for (size_t n = 0; n < len; n++) {
		memcpy(t, tok, n);
		t[n] = '\0';
		assert_int_equal(chk(t, T_NOW, NULL, NULL), -1);
	}
	/* anything after it */
	static const char *const tails[] = { "A", "=", "==", ":", ":x", " ", "\n",
					     "\r\n", "\t", "AAAA" };
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		snprintf(t, sizeof(t), "%s%s", tok, tails[i]);
		assert_int_equal(chk(t, T_NOW, NULL, NULL), -1);
	}
	/* leading or inner whitespace */
	snprintf(t, sizeof(t), " %s", tok);
	assert_int_equal(chk(t, T_NOW, NULL, NULL), -1);
	/* 127, 128 and 500 bytes, with a plausible start */
	const size_t lens[] = { NP_INVITE_MAX - 1, NP_INVITE_MAX, sizeof(t) - 1 };
	for (size_t i = 0; i < 3; i++) {
		memset(t, 'A', lens[i]);
		memcpy(t, tok, len);
		t[lens[i]] = '\0';
		assert_int_equal(chk(t, T_NOW, NULL, NULL), -1);
	}
	/* a 1 MB string is refused after reading at most NP_INVITE_MAX bytes */
	size_t big_n = 1024 * 1024;
	char *big = malloc(big_n + 1);
	memset(big, '1', big_n);
	memcpy(big, NP_INVITE_PREFIX, strlen(NP_INVITE_PREFIX));
	big[big_n] = '\0';
	const char *err;
	assert_int_equal(chk(big, T_NOW, NULL, &err), -1);
	assert_string_equal(err, "not an invite token");
	free(big);
}

static void test_invite_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"amp-invite-v1:",
		"amp-invite-v1:1",
		"amp-invite-v1:1:",
		"amp-invite-v1:1::",
		"amp-invite-v1:::",
		"amp-invite-v1:1:AAAAAAAAAAAAAAAAAAAAAA:",
		"amp-invite-v1::AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:-1:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:+1:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:1e9:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:0x10:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:18446744073709551616:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:1:AAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:1:AAAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:1:AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:1:AAAAAAAAAAAAAAAAAAAA+/:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1:1:AAAAAAAAAAAAAAAAAAAAAB:AAAAAAAAAAAAAAAAAAAAAA",
		"AMP-INVITE-V1:1:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v2:1:AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA",
		"amp-invite-v1 1 AAAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAA",
		"amp-pow-v1:8:1767225600:0000000000000000",
		"did:aftersmtp:example.org:alice",
		":::::::",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = NULL;
		assert_int_equal(chk(bad[i], T_NOW, NULL, &err), -1);
	}
	/* a well-formed token with a zero MAC: not issued here */
	const char *err = NULL;
	assert_int_equal(chk("amp-invite-v1:1767312000:AAAAAAAAAAAAAAAAAAAAAA:"
			     "AAAAAAAAAAAAAAAAAAAAAA", T_NOW, NULL, &err), -1);
	assert_string_equal(err, "the invite was not issued by this node");
	/* NUL inside: the token ends there */
	char tok[NP_INVITE_MAX + 8];
	assert_int_equal(np_invite_make(ikey, T_NOW + 60, tok), 0);
	tok[20] = '\0';
	assert_int_equal(chk(tok, T_NOW, NULL, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_enc_proof),
		cmocka_unit_test(test_invite_good),
		cmocka_unit_test(test_invite_expired),
		cmocka_unit_test(test_invite_wrong_key),
		cmocka_unit_test(test_invite_tampered),
		cmocka_unit_test(test_invite_truncated_overlong),
		cmocka_unit_test(test_invite_garbage),
	};
	if (amp_init() != AMP_OK)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
