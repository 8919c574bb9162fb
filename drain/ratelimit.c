/*
 * Telegram's rate limits, kept on our side so that the Bot API never has to
 * answer 429.  Each limit is a sliding window: the times of the last N calls in a
 * ring; a call may leave when fewer than N left within the window.  Unlike a token
 * bucket this never lets 2N calls through across a window boundary, which is what
 * Telegram counts.
 *
 * Telegram counts a call when it receives it, some time between our sending and
 * its answer.  So every window counts a call from its answer, which is never
 * before Telegram's count, and a call still in flight holds its place in the
 * bot's window until it is answered: however long calls spend on the way, no
 * window of Telegram's ever sees more than the limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drain.h"

#define CHAT_IDLE_MS (61 * 1000)	/* longer than the longest window */
#define IN_FLIGHT INT64_MAX		/* a window's place taken by a call on its way */

struct window {
	int64_t	*times;		/* ring of the last n call times, ms */
	int64_t	 n, head, count;
	int64_t	 span_ms;
};

struct chat_state {
	char		 key[CHAT_KEY_MAX];
	int64_t		 last_ms;	/* last call, for forgetting idle chats */
	int64_t		 paused_until;
	struct window	 per_chat;
	struct window	 per_group;
	struct chat_state *next;
};

#define BUCKETS 1024

struct ratelimit {
	int64_t		 chat_per_s, group_per_min;
	struct window	 global;
	int64_t		 paused_until;
	struct chat_state *buckets[BUCKETS];
	size_t		 nchats;
	int64_t		 last_sweep_ms;
};

static int
window_init(struct window *w, int64_t n, int64_t span_ms)
{
	memset(w, 0, sizeof(*w));
	w->n = n;
	w->span_ms = span_ms;
	if (n > 0 && (w->times = calloc((size_t)n, sizeof(*w->times))) == NULL)
		return -1;
	return 0;
}

static int64_t
window_wait(const struct window *w, int64_t now)
{
	int64_t oldest;

	if (w->n == 0 || w->count < w->n)
		return 0;
	oldest = w->times[w->head];	/* the head is the oldest when full */
	if (oldest == IN_FLIGHT)
		return RATELIMIT_UNTIL_ANSWER;
	return oldest + w->span_ms > now ? oldest + w->span_ms - now : 0;
}

/* Takes the oldest place (callers check window_wait first); returns it. */
static int64_t
window_take(struct window *w, int64_t time)
{
	int64_t slot = w->head;

	if (w->n == 0)
		return -1;
	w->times[w->head] = time;
	w->head = (w->head + 1) % w->n;
	if (w->count < w->n)
		w->count++;
	return slot;
}

static uint64_t
hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int
is_group(const char *chat)
{
	return chat[0] == '-' || chat[0] == '@';
}

static void
chat_free(struct chat_state *c)
{
	free(c->per_chat.times);
	free(c->per_group.times);
	free(c);
}

static struct chat_state *
chat_find(struct ratelimit *rl, const char *chat)
{
	struct chat_state *c;

	for (c = rl->buckets[hash_key(chat) % BUCKETS]; c != NULL; c = c->next)
		if (strcmp(c->key, chat) == 0)
			return c;
	return NULL;
}

static struct chat_state *
chat_add(struct ratelimit *rl, const char *chat)
{
	struct chat_state	*c;
	size_t			 b = hash_key(chat) % BUCKETS;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	snprintf(c->key, sizeof(c->key), "%s", chat);
	if (window_init(&c->per_chat, rl->chat_per_s, 1000) == -1 ||
	    window_init(&c->per_group, is_group(chat) ? rl->group_per_min : 0,
	    60000) == -1) {
		chat_free(c);
		return NULL;
	}
	c->next = rl->buckets[b];
	rl->buckets[b] = c;
	rl->nchats++;
	return c;
}

/* Forgets chats whose windows are empty by now, so memory follows the number of
 * chats active in the last minute, not all chats ever seen. */
static void
sweep(struct ratelimit *rl, int64_t now)
{
	size_t b;

	if (now - rl->last_sweep_ms < CHAT_IDLE_MS)
		return;
	rl->last_sweep_ms = now;
	for (b = 0; b < BUCKETS; b++) {
		struct chat_state **p = &rl->buckets[b];

		while (*p != NULL) {
			struct chat_state *c = *p;

			if (now - c->last_ms > CHAT_IDLE_MS && c->paused_until <= now) {
				*p = c->next;
				chat_free(c);
				rl->nchats--;
			} else
				p = &c->next;
		}
	}
}

struct ratelimit *
ratelimit_new(int64_t global_per_s, int64_t chat_per_s, int64_t group_per_min)
{
	struct ratelimit *rl;

	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	rl->chat_per_s = chat_per_s;
	rl->group_per_min = group_per_min;
	if (window_init(&rl->global, global_per_s, 1000) == -1) {
		free(rl);
		return NULL;
	}
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	size_t b;

	if (rl == NULL)
		return;
	for (b = 0; b < BUCKETS; b++) {
		while (rl->buckets[b] != NULL) {
			struct chat_state *c = rl->buckets[b];

			rl->buckets[b] = c->next;
			chat_free(c);
		}
	}
	free(rl->global.times);
	free(rl);
}

static int64_t
max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

int64_t
ratelimit_wait(struct ratelimit *rl, const char *chat, int64_t now)
{
	struct chat_state	*c;
	int64_t			 wait = window_wait(&rl->global, now);

	if (rl->paused_until > now)
		wait = max64(wait, rl->paused_until - now);
	if (chat == NULL || *chat == '\0' || (c = chat_find(rl, chat)) == NULL)
		return wait;
	wait = max64(wait, window_wait(&c->per_chat, now));
	wait = max64(wait, window_wait(&c->per_group, now));
	if (c->paused_until > now)
		wait = max64(wait, c->paused_until - now);
	return wait;
}

int64_t
ratelimit_sent(struct ratelimit *rl, int64_t now)
{
	sweep(rl, now);
	return window_take(&rl->global, IN_FLIGHT);
}

int
ratelimit_answered(struct ratelimit *rl, const char *chat, int64_t slot,
    int64_t now)
{
	struct chat_state *c;

	if (slot >= 0 && slot < rl->global.n && rl->global.times[slot] == IN_FLIGHT)
		rl->global.times[slot] = now;
	if (chat == NULL || *chat == '\0')
		return 0;
	if ((c = chat_find(rl, chat)) == NULL && (c = chat_add(rl, chat)) == NULL)
		return -1;
	window_take(&c->per_chat, now);
	window_take(&c->per_group, now);
	c->last_ms = now;
	return 0;
}

int
ratelimit_pause(struct ratelimit *rl, const char *chat, int64_t until_ms)
{
	struct chat_state *c;

	if (chat == NULL || *chat == '\0') {
		rl->paused_until = max64(rl->paused_until, until_ms);
		return 0;
	}
	if ((c = chat_find(rl, chat)) == NULL && (c = chat_add(rl, chat)) == NULL)
		return -1;
	c->paused_until = max64(c->paused_until, until_ms);
	return 0;
}

size_t
ratelimit_chats(const struct ratelimit *rl)
{
	return rl->nchats;
}
