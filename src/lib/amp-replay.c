/*
 * amp-replay.c — amp_replay_guard: remembers accepted envelope ids so a
 * second envelope with the same id is refused (PROTOCOL.md §5.7,
 * AMP-R-019).
 *
 * Bounded: at most `capacity` ids in an open-addressing table of
 * 2*capacity buckets (SipHash under a random key).  An entry is keyed by
 * the sender's DID and the envelope id together (BLAKE2b-128), so one
 * sender cannot block another's envelope by reusing its id; callers check
 * replays only after amp_envelope_verify.  An id is remembered until the
 * envelope expires or, when it never expires, `window` seconds after the
 * later of its creation and its first sighting.  When the table is full, forgotten ids are swept out
 * and, if none, the id due to be forgotten soonest is dropped (O(capacity)
 * only in that case).  One mutex guards the table.
 */
#include "amp-private.h"

#include <pthread.h>
#include <sodium.h>

typedef struct replay_slot {
	uint8_t id[16];       /* BLAKE2b-128(lp(sender) || envelope_id) */
	uint64_t forget_at; /* 0: empty bucket */
} replay_slot;

struct amp_replay_guard {
	pthread_mutex_t lock;
	size_t capacity, n_buckets, entries;
	uint64_t window;
	replay_slot *slots;
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

amp_err amp_replay_guard_create(size_t capacity, uint64_t window,
				amp_replay_guard **guard_r)
{
	if (guard_r == NULL || capacity == 0 || capacity > (1u << 26))
		return AMP_E_INVALID_ARG;
	amp_replay_guard *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return AMP_E_NOMEM;
	g->capacity = capacity;
	g->n_buckets = capacity * 2;
	g->window = window;
	g->slots = calloc(g->n_buckets, sizeof(replay_slot));
	if (g->slots == NULL || pthread_mutex_init(&g->lock, NULL) != 0) {
		free(g->slots);
		free(g);
		return AMP_E_NOMEM;
	}
	randombytes_buf(g->hash_key, sizeof(g->hash_key));
	*guard_r = g;
	return AMP_OK;
}

void amp_replay_guard_destroy(amp_replay_guard **guard)
{
	if (guard == NULL || *guard == NULL)
		return;
	pthread_mutex_destroy(&(*guard)->lock);
	free((*guard)->slots);
	free(*guard);
	*guard = NULL;
}

static size_t home_of(const amp_replay_guard *g, const uint8_t *id)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;
	crypto_shorthash(h, id, 16, g->hash_key);
	for (size_t i = 0; i < sizeof(h); i++)
		v = (v << 8) | h[i];
	return (size_t)(v % g->n_buckets);
}

/* Bucket holding id, or the first empty bucket of its probe sequence. */
static size_t find(const amp_replay_guard *g, const uint8_t *id)
{
	size_t b = home_of(g, id);
	while (g->slots[b].forget_at != 0 &&
	       memcmp(g->slots[b].id, id, 16) != 0)
		b = (b + 1) % g->n_buckets;
	return b;
}

/* Empty bucket b and re-seat the cluster after it. */
static void remove_at(amp_replay_guard *g, size_t b)
{
	g->slots[b].forget_at = 0;
	g->entries--;
	for (size_t j = (b + 1) % g->n_buckets; g->slots[j].forget_at != 0;
	     j = (j + 1) % g->n_buckets) {
		replay_slot s = g->slots[j];
		g->slots[j].forget_at = 0;
		g->slots[find(g, s.id)] = s;
	}
}

/* Make room: drop every forgotten id; if none, the one forgotten soonest. */
static void make_room(amp_replay_guard *g, uint64_t now)
{
	size_t oldest = SIZE_MAX;
	bool removed = false;
	for (size_t b = 0; b < g->n_buckets; b++) {
		if (g->slots[b].forget_at == 0)
			continue;
		if (g->slots[b].forget_at <= now) {
			remove_at(g, b);
			removed = true;
			b--; /* a shifted entry may now sit in b */
			continue;
		}
		if (oldest == SIZE_MAX ||
		    g->slots[b].forget_at < g->slots[oldest].forget_at)
			oldest = b;
	}
	if (!removed && oldest != SIZE_MAX)
		remove_at(g, oldest);
}

amp_err amp_replay_guard_check(amp_replay_guard *g, const amp_envelope *env,
			       uint64_t now, const char **error_r)
{
	amp_envelope_info info;

	if (g == NULL || env == NULL)
		AMP_FAIL(AMP_E_INVALID_ARG, "no guard or envelope given");
	if (now == 0)
		now = amp_now();
	amp_envelope_get_info(env, &info);
	/* forget_at is never 0 (0 marks an empty bucket) and saturates. */
	uint64_t forget_at = info.expires;
	if (forget_at == 0) {
		/* Never expires: the window runs from the later of creation
		 * and now, so an old envelope is not forgotten at once. */
		uint64_t base = info.created > now ? info.created : now;
		forget_at = base > UINT64_MAX - g->window ? UINT64_MAX
							  : base + g->window;
	}
	if (forget_at <= now)
		forget_at = now == UINT64_MAX ? UINT64_MAX : now + 1;

	uint8_t key[16], in[4 + AMP_DID_MAX + AMP_ENVELOPE_ID_BYTES];
	amp_wbuf w;
	amp_wbuf_init(&w, in, sizeof(in));
	amp_wbuf_lp(&w, info.sender, strlen(info.sender));
	amp_wbuf_put(&w, info.envelope_id, AMP_ENVELOPE_ID_BYTES);
	crypto_generichash(key, sizeof(key), in, w.len, NULL, 0);

	pthread_mutex_lock(&g->lock);
	size_t b = find(g, key);
	if (g->slots[b].forget_at != 0 && g->slots[b].forget_at > now) {
		pthread_mutex_unlock(&g->lock);
		AMP_FAIL(AMP_E_REPLAY, "this envelope id was already accepted");
	}
	if (g->slots[b].forget_at != 0) {
		g->slots[b].forget_at = forget_at; /* stale entry: refresh */
	} else {
		if (g->entries == g->capacity) {
			make_room(g, now);
			b = find(g, key);
		}
		memcpy(g->slots[b].id, key, sizeof(key));
		g->slots[b].forget_at = forget_at;
		g->entries++;
	}
	pthread_mutex_unlock(&g->lock);
	return AMP_OK;
}
