/* consumer.c — a program outside the tree, built against the installed
 * libamp via pkg-config: seals a message to itself and opens it. */
#include <amp/amp.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	amp_identity *me = NULL;
	uint8_t *env, *body;
	size_t len, blen;
	amp_envelope *e;
	const char *err = "";
	static const char msg[] = "installed libamp works";

	if (amp_init() != AMP_OK ||
	    amp_identity_generate("did:aftersmtp:example.org:consumer", &me, &err) != AMP_OK ||
	    amp_seal(NULL, me, &me->pub, 1, NULL, (const uint8_t *)msg,
		     sizeof(msg) - 1, &env, &len, &err) != AMP_OK ||
	    amp_envelope_decode(env, len, &e, &err) != AMP_OK ||
	    amp_envelope_open(NULL, e, me, &me->pub, 0, &body, &blen, &err) != AMP_OK) {
		fprintf(stderr, "consumer: %s\n", err);
		return 1;
	}
	printf("%.*s\n", (int)blen, (const char *)body);
	amp_free(body);
	amp_free(env);
	amp_envelope_free(&e);
	amp_identity_destroy(&me);
	return 0;
}
