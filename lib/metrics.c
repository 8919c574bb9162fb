/*
 * Counters shared by every tgq process of one queue: a small file beside the
 * database, mapped into each process and updated with atomic additions.  So a
 * webhook run as several processes reports one total, the drain adds its own, and
 * a flood of rejected requests costs memory writes, never database writes.
 *
 * The latency histograms live in the same file, for the same reasons and one
 * more: an ingest latency is known only after the COMMIT that stored the update,
 * so it could only reach the queue in a later transaction; in the file it costs
 * two atomic additions, and no request waits for it.  Each bot has a slot,
 * claimed by the first process that observes one of its durations: the slot's
 * state goes free -> naming (a compare-and-swap: one process wins) -> named
 * (after its name is written).  The file outlives the processes (restarting
 * them does not reset the counters, which Prometheus handles either way), and a
 * file of the older, shorter layout is extended: its counters stay where they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tgq.h"

#define METRICS_MAGIC 0x74677131746d6574ull	/* "temt1qgt" */
#define METRICS_SLOTS 64
#define METRICS_HISTOGRAMS_MAX 4	/* room for enum histogram to grow */
#define METRICS_BOT_NAME_ROOM 40	/* BOT_NAME_MAX + 1, rounded up to 8 */

/* A bot slot's state; only ever moves forward. */
enum { SLOT_FREE, SLOT_NAMING, SLOT_NAMED };
/* How long a process waits for another to finish naming a slot (a few memory
 * writes); a process killed in between leaves the slot to nobody. */
#define SLOT_NAMING_SPINS 10000

/* 0.5 ms to 60 s: an ingest is a COMMIT (an fsync) away, a handler or a call
 * a network round trip or a program's run, bounded by handler_timeout. */
const int64_t histogram_bounds_us[HISTOGRAM_BOUNDS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

struct metrics_histogram {
	uint64_t	 buckets[HISTOGRAM_BOUNDS + 1];	/* the last: +Inf */
	uint64_t	 sum_us;
};

struct metrics_bot {
	uint64_t		 state;
	char			 name[METRICS_BOT_NAME_ROOM];
	uint64_t		 counters[METRICS_BOT_COUNTERS];
	struct metrics_histogram h[METRICS_HISTOGRAMS_MAX];
};

struct metrics_file {
	uint64_t		 magic;
	uint64_t		 slots;
	uint64_t		 counters[METRICS_SLOTS];
	/* Appended after the counters: an older file grows into it. */
	struct metrics_bot	 bots[METRICS_HISTOGRAM_BOTS];
};

_Static_assert(H_COUNT <= METRICS_HISTOGRAMS_MAX, "the file has no room");
_Static_assert(BM_COUNT <= METRICS_BOT_COUNTERS, "the file has no room");
/* bot_entry() finds the entries of both kinds by the name they begin with. */
_Static_assert(offsetof(struct histogram_counts, bot) == 0, "name first");
_Static_assert(offsetof(struct bot_count, bot) == 0, "name first");
_Static_assert(BOT_NAME_MAX + 1 <= METRICS_BOT_NAME_ROOM, "bot names fit");

struct metrics {
	struct metrics_file	*file;
	int			 shared;	/* mapped, not private memory */
};

static int
map_file(const char *path, struct metrics *m, char *err, size_t errlen)
{
	struct stat	 st;
	void		*p;
	int		 fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || (st.st_size < (off_t)sizeof(*m->file) &&
	    ftruncate(fd, sizeof(*m->file)) == -1)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	p = mmap(NULL, sizeof(*m->file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	m->file = p;
	m->shared = 1;
	/* A new file is all zeros; two processes writing the same header is fine. */
	if (m->file->magic == 0) {
		m->file->slots = METRICS_SLOTS;
		__atomic_store_n(&m->file->magic, METRICS_MAGIC, __ATOMIC_RELEASE);
	} else if (m->file->magic != METRICS_MAGIC) {
		snprintf(err, errlen, "%s: not a tgq metrics file", path);
		munmap(p, sizeof(*m->file));
		m->file = NULL;
		return -1;
	}
	return 0;
}

struct metrics *
metrics_open(const char *database)
{
	struct metrics	*m;
	char		 path[4096], err[4096 + 128];

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s-metrics", database);
	if (map_file(path, m, err, sizeof(err)) == 0)
		return m;
	/* Counting on in this process alone beats not counting. */
	log_warnx("%s; metrics are this process's own", err);
	if ((m->file = calloc(1, sizeof(*m->file))) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->shared)
		munmap(m->file, sizeof(*m->file));
	else
		free(m->file);
	free(m);
}

void
metrics_add(struct metrics *m, enum metric k, uint64_t n)
{
	if (m != NULL && (unsigned)k < METRICS_SLOTS)
		__atomic_fetch_add(&m->file->counters[k], n, __ATOMIC_RELAXED);
}

uint64_t
metrics_get(const struct metrics *m, enum metric k)
{
	if (m == NULL || (unsigned)k >= METRICS_SLOTS)
		return 0;
	return __atomic_load_n(&m->file->counters[k], __ATOMIC_RELAXED);
}

static uint64_t
slot_state(struct metrics_bot *b)
{
	uint64_t	 state;
	int		 spins;

	state = __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
	for (spins = 0; state == SLOT_NAMING && spins < SLOT_NAMING_SPINS; spins++) {
		sched_yield();
		state = __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
	}
	return state;
}

/* The bot's slot: found, or claimed when it has none; NULL when all are taken. */
static struct metrics_bot *
bot_slot(struct metrics_file *f, const char *bot)
{
	size_t	 i, len = strlen(bot);

	if (len == 0 || len > BOT_NAME_MAX)
		return NULL;
	for (i = 0; i < METRICS_HISTOGRAM_BOTS; i++) {
		struct metrics_bot	*b = &f->bots[i];
		uint64_t		 expected = SLOT_FREE;

		if (__atomic_load_n(&b->state, __ATOMIC_ACQUIRE) == SLOT_FREE &&
		    __atomic_compare_exchange_n(&b->state, &expected, SLOT_NAMING, 0,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			memset(b->name, 0, sizeof(b->name));
			memcpy(b->name, bot, len);
			__atomic_store_n(&b->state, SLOT_NAMED, __ATOMIC_RELEASE);
			return b;
		}
		/* Taken, perhaps just now by another process for this very bot. */
		if (slot_state(b) == SLOT_NAMED && strncmp(b->name, bot,
		    sizeof(b->name)) == 0)
			return b;
	}
	return NULL;
}

void
metrics_observe(struct metrics *m, enum histogram h, const char *bot, int64_t us)
{
	struct metrics_bot	*b;
	size_t			 i;

	if (m == NULL || (unsigned)h >= H_COUNT || bot == NULL ||
	    (b = bot_slot(m->file, bot)) == NULL)
		return;
	if (us < 0)
		us = 0;
	for (i = 0; i < HISTOGRAM_BOUNDS && us > histogram_bounds_us[i]; i++)
		continue;
	__atomic_fetch_add(&b->h[h].buckets[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&b->h[h].sum_us, (uint64_t)us, __ATOMIC_RELAXED);
}

void
metrics_add_bot(struct metrics *m, enum bot_metric k, const char *bot, uint64_t n)
{
	struct metrics_bot *b;

	if (m == NULL || (unsigned)k >= BM_COUNT || bot == NULL ||
	    (b = bot_slot(m->file, bot)) == NULL)
		return;
	__atomic_fetch_add(&b->counters[k], n, __ATOMIC_RELAXED);
}

/* Where a bot's entry is in out[0..*n): found, or added when there is room;
 * NULL when there is none. */
static void *
bot_entry(void *out, size_t size, size_t *n, size_t max, const char *name)
{
	char	*p = out;
	size_t	 j;

	/* Each entry begins with its bot's name. */
	for (j = 0; j < *n; j++, p += size)
		if (strncmp(p, name, METRICS_BOT_NAME_ROOM) == 0)
			return p;
	if (*n == max)
		return NULL;
	memset(p, 0, size);
	memcpy(p, name, strnlen(name, BOT_NAME_MAX));
	(*n)++;
	return p;
}

/* Adds what slot b holds of metric `which` to a bot's entry. */
typedef void slot_reader(void *entry, const struct metrics_bot *b, unsigned which);

/*
 * One entry per bot in out[0..max) (entries of size bytes, each beginning with
 * its bot's name), each read from its named slots: slots of the same name (only
 * after a process died while naming one) are added together, so a bot is one
 * series.
 */
static size_t
sum_by_bot(const struct metrics *m, void *out, size_t size, size_t max,
    slot_reader *read, unsigned which)
{
	void	*e;
	size_t	 i, n = 0;

	for (i = 0; i < METRICS_HISTOGRAM_BOTS; i++) {
		const struct metrics_bot *b = &m->file->bots[i];

		if (__atomic_load_n(&b->state, __ATOMIC_ACQUIRE) == SLOT_NAMED &&
		    (e = bot_entry(out, size, &n, max, b->name)) != NULL)
			read(e, b, which);
	}
	return n;
}

static void
read_count(void *entry, const struct metrics_bot *b, unsigned k)
{
	struct bot_count *e = entry;

	e->value += __atomic_load_n(&b->counters[k], __ATOMIC_RELAXED);
}

/* Each bucket is read once: the caller makes _count and +Inf of the same reads,
 * whatever is added meanwhile. */
static void
read_histogram(void *entry, const struct metrics_bot *b, unsigned h)
{
	struct histogram_counts	*e = entry;
	size_t			 k;

	for (k = 0; k <= HISTOGRAM_BOUNDS; k++)
		e->buckets[k] += __atomic_load_n(&b->h[h].buckets[k],
		    __ATOMIC_RELAXED);
	e->sum_us += __atomic_load_n(&b->h[h].sum_us, __ATOMIC_RELAXED);
}

size_t
metrics_bot_counts(const struct metrics *m, enum bot_metric k,
    struct bot_count *out, size_t max)
{
	if (m == NULL || (unsigned)k >= BM_COUNT)
		return 0;
	return sum_by_bot(m, out, sizeof(*out), max, read_count, (unsigned)k);
}

size_t
metrics_histograms(const struct metrics *m, enum histogram h,
    struct histogram_counts *out, size_t max)
{
	if (m == NULL || (unsigned)h >= H_COUNT)
		return 0;
	return sum_by_bot(m, out, sizeof(*out), max, read_histogram, (unsigned)h);
}
