/*
 * The queue side of tgq-webhook: runs batches of updates in one transaction (group
 * commit), so that one fsync acknowledges many requests.  Each request thread
 * gathers the requests that arrived together and stores them with one
 * store_run(); the database connection is shared, one batch at a time.  The
 * database is opened lazily and reopened after failures, so a process outlives a
 * broken disk.
 */
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "webhook.h"

#define STORE_REOPEN_INTERVAL_MS 1000
#define STORE_FAILURE_LOG_INTERVAL_MS 10000
/* A request is one row: the inserts touch the ends of a few b-trees and one leaf
 * of the chat index, which the OS's page cache holds anyway.  More cache would be
 * resident memory for nothing. */
#define STORE_SQLITE_MEMORY (512 * 1024)
/*
 * WAL pages after which a COMMIT also checkpoints (SQLite's default is 1000).  The
 * checkpoint runs inside the COMMIT of the batch that crosses the mark, and that
 * batch and the next wait for it.  The bench's ingest at c = 100, p99 medians of
 * alternated rounds: 10.6-11.2 ms with 1000, 8.0-8.3 ms with no checkpoint at
 * all, 7.5-9.4 ms with 200-300; 100 cost 12 % of the rate.
 */
#define STORE_CHECKPOINT_PAGES 200

struct store {
	const struct config	*cfg;
	pthread_mutex_t		 mu;		/* one batch at a time */
	struct queue		*queue;		/* NULL until opened */
	int64_t			 last_open_ms;
	/* Failures are logged when they start, end, and every few seconds between. */
	int			 failing;
	int64_t			 last_failure_log_ms;
	uint64_t		 failures_unlogged;
};

/*
 * What the operator changes when the queue cannot be written for want of
 * permission (the usual cause when a failure is there from the first update):
 * names the path, the user this process runs as and the fix.  Empty otherwise.
 */
static void
access_hint(const char *database, char *hint, size_t len)
{
	char	copy[PATH_MAX], user[64];
	const char *dir;

	hint[0] = '\0';
	snprintf(copy, sizeof(copy), "%s", database);
	dir = dirname(copy);
	if (access(dir, W_OK | X_OK) == -1)
		snprintf(hint, len, "; user %s cannot write the folder %s: give it to "
		    "that user (chown %s %s; chmod 0750 %s)", running_user(user,
		    sizeof(user)), dir, user, dir, dir);
	else if (access(database, F_OK) == 0 && access(database, R_OK | W_OK) == -1)
		snprintf(hint, len, "; user %s cannot write %s: give the queue's files "
		    "to that user (chown %s %s*)", running_user(user, sizeof(user)),
		    database, user, database);
}

static void
note_result(struct store *s, enum queue_status status, const char *err)
{
	int64_t now = now_unix_ms();

	if (status == QUEUE_OK) {
		if (s->failing)
			log_info("database writable again after %llu more failures",
			    (unsigned long long)s->failures_unlogged);
		s->failing = 0;
		s->failures_unlogged = 0;
		return;
	}
	if (!s->failing || now - s->last_failure_log_ms >= STORE_FAILURE_LOG_INTERVAL_MS) {
		char hint[PATH_MAX * 3 + 256];

		access_hint(s->cfg->database, hint, sizeof(hint));
		log_err("%s (answering 503; %llu similar failures since the last "
		    "line)%s", err, (unsigned long long)s->failures_unlogged, hint);
		s->last_failure_log_ms = now;
		s->failures_unlogged = 0;
	} else {
		s->failures_unlogged++;
	}
	s->failing = 1;
}

static enum queue_status
ensure_open(struct store *s, char *err, size_t errlen)
{
	int64_t now;

	if (s->queue != NULL)
		return QUEUE_OK;
	now = now_unix_ms();
	if (s->last_open_ms != 0 && now - s->last_open_ms < STORE_REOPEN_INTERVAL_MS) {
		snprintf(err, errlen, "%s: database not open", s->cfg->database);
		return QUEUE_UNAVAILABLE;
	}
	s->last_open_ms = now;
	if (queue_open(s->cfg->database, s->cfg->durability, s->cfg->busy_timeout_ms,
	    &s->queue, err, errlen) == -1)
		return QUEUE_UNAVAILABLE;
	if (queue_set_checkpoint(s->queue, STORE_CHECKPOINT_PAGES, err, errlen) == -1) {
		queue_close(s->queue);
		s->queue = NULL;
		return QUEUE_UNAVAILABLE;
	}
	return QUEUE_OK;
}

void
store_run(struct store *s, struct store_job **jobs, size_t n)
{
	struct queue_item	 items[STORE_MAX_BATCH];
	enum queue_status	 status;
	char			 err[512] = "";
	size_t			 i, nitems = 0;

	for (; n > STORE_MAX_BATCH; jobs += STORE_MAX_BATCH, n -= STORE_MAX_BATCH)
		store_run(s, jobs, STORE_MAX_BATCH);
	pthread_mutex_lock(&s->mu);
	status = ensure_open(s, err, sizeof(err));
	for (i = 0; i < n; i++)
		if (jobs[i]->type == STORE_PUT)
			items[nitems++] = *jobs[i]->item;
	if (status == QUEUE_OK && nitems > 0)
		status = queue_put_batch(s->queue, items, nitems, err, sizeof(err));
	nitems = 0;
	for (i = 0; i < n; i++) {
		if (jobs[i]->type == STORE_PUT) {
			jobs[i]->item->duplicate = items[nitems++].duplicate;
			jobs[i]->status = status;
		}
	}
	if (nitems > 0)
		note_result(s, status, err);
	for (i = 0; i < n; i++) {
		if (jobs[i]->type != STORE_HEALTH)
			continue;
		jobs[i]->status = ensure_open(s, err, sizeof(err));
		if (jobs[i]->status == QUEUE_OK)
			jobs[i]->status = queue_health(s->queue, jobs[i]->health, err,
			    sizeof(err));
		if (jobs[i]->status != QUEUE_OK)
			log_warnx("health check: %s", err);
	}
	pthread_mutex_unlock(&s->mu);
}

/* A batch of one job, for the requests that store or ask alone. */
static enum queue_status
store_one(struct store *s, struct store_job job)
{
	struct store_job *one = &job;

	store_run(s, &one, 1);
	return job.status;
}

enum queue_status
store_put(struct store *s, struct queue_item *item)
{
	return store_one(s, (struct store_job){ .type = STORE_PUT, .item = item });
}

enum queue_status
store_health(struct store *s, struct queue_health *h)
{
	return store_one(s, (struct store_job){ .type = STORE_HEALTH, .health = h });
}

/*
 * The health check's counts, then whether a write could begin now (see
 * queue_writable(): the lock taken and given back, and room for the largest
 * update).  The lock is waited for as long as a write would wait, busy_timeout.
 */
enum queue_status
store_ready(struct store *s, struct queue_health *h)
{
	enum queue_status	 status;
	char			 err[512] = "";

	pthread_mutex_lock(&s->mu);
	status = ensure_open(s, err, sizeof(err));
	if (status == QUEUE_OK)
		status = queue_health(s->queue, h, err, sizeof(err));
	if (status == QUEUE_OK)
		status = queue_writable(s->queue, s->cfg->busy_timeout_ms,
		    s->cfg->max_body, err, sizeof(err));
	pthread_mutex_unlock(&s->mu);
	if (status != QUEUE_OK)
		log_warnx("readiness check: %s", err);
	return status;
}

int
store_start(const struct config *cfg, struct store **out, char *err, size_t errlen)
{
	struct store	*s;
	char		 openerr[512];

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->cfg = cfg;
	pthread_mutex_init(&s->mu, NULL);
	queue_limit_memory(STORE_SQLITE_MEMORY);
	/* Opening now reports a wrong path at start-up; failing is not fatal: the
	 * database may come back, and meanwhile Telegram gets 503s and retries. */
	if (ensure_open(s, openerr, sizeof(openerr)) != QUEUE_OK)
		note_result(s, QUEUE_UNAVAILABLE, openerr);
	*out = s;
	return 0;
}

/* Closes the database; left open when a request thread that did not stop in
 * time is still inside a batch (the process is about to exit). */
void
store_stop(struct store *s)
{
	if (s == NULL || pthread_mutex_trylock(&s->mu) != 0)
		return;
	queue_close(s->queue);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
