/*
 * Counters shared by every tgq process of one queue: a small file beside the
 * database, mapped into each process and updated with atomic additions.  So a
 * webhook run as several processes reports one total, the drain adds its own, and
 * a flood of rejected requests costs memory writes, never database writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tgq.h"

#define METRICS_MAGIC 0x74677131746d6574ull	/* "temt1qgt" */
#define METRICS_SLOTS 64

struct metrics_file {
	uint64_t	 magic;
	uint64_t	 slots;
	uint64_t	 counters[METRICS_SLOTS];
};

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

void
metrics_forward(struct metrics *m, int64_t us)
{
	static const int64_t	 bounds_ms[FORWARD_NBUCKETS] = FORWARD_BUCKETS_MS;
	int			 i;

	_Static_assert(M_FORWARD_BUCKET + FORWARD_NBUCKETS + 1 == M_FORWARD_SUM_US,
	    "a counter per bucket and one for the rest");
	for (i = 0; i < FORWARD_NBUCKETS && us > bounds_ms[i] * 1000; i++)
		continue;
	metrics_add(m, (enum metric)(M_FORWARD_BUCKET + i), 1);
	metrics_add(m, M_FORWARD_SUM_US, us > 0 ? (uint64_t)us : 0);
}
