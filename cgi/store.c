/*
 * The one writer of a tgq-webhook process.  Request threads hand their update to a
 * writer thread and sleep; the writer stores everything that arrived meanwhile in
 * one transaction (group commit), so one fsync acknowledges many requests, and only
 * after the COMMIT wakes each request thread to answer 200.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

#define STORE_MAX_BATCH 512
#define STORE_REOPEN_INTERVAL_MS 1000
#define STORE_FAILURE_LOG_INTERVAL_MS 10000
/* A request is one row: the writer's inserts touch the ends of a few b-trees and
 * one leaf of the chat index, which the OS's page cache holds anyway.  More cache
 * would be resident memory for nothing. */
#define STORE_SQLITE_MEMORY (512 * 1024)

enum job_type { JOB_PUT, JOB_HEALTH };

struct job {
	enum job_type		 type;
	struct queue_item	*item;
	struct queue_health	*health;
	enum queue_status	 status;
	sem_t			 done;	/* posted by the writer: wakes this job's thread only */
	struct job		*next;
};

struct store {
	const struct config	*cfg;
	struct queue		*queue;		/* NULL until opened */
	int64_t			 last_open_ms;
	/* Failures are logged when they start, end, and every few seconds between. */
	int			 failing;
	int64_t			 last_failure_log_ms;
	uint64_t		 failures_unlogged;

	int			 threaded;
	pthread_t		 writer;
	pthread_mutex_t		 mu;
	pthread_cond_t		 work_cv;
	struct job		*head, **tail;
	int			 stopping;
};

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
		log_err("%s (answering 503; %llu similar failures since the last line)",
		    err, (unsigned long long)s->failures_unlogged);
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
	return QUEUE_OK;
}

/* Runs a batch of jobs against the database; called by one thread at a time. */
static void
run_jobs(struct store *s, struct job **jobs, size_t n)
{
	struct queue_item	 items[STORE_MAX_BATCH];
	enum queue_status	 status;
	char			 err[512] = "";
	size_t			 i, nitems = 0;

	status = ensure_open(s, err, sizeof(err));
	for (i = 0; i < n; i++)
		if (jobs[i]->type == JOB_PUT)
			items[nitems++] = *jobs[i]->item;
	if (status == QUEUE_OK && nitems > 0)
		status = queue_put_batch(s->queue, items, nitems, err, sizeof(err));
	nitems = 0;
	for (i = 0; i < n; i++) {
		if (jobs[i]->type == JOB_PUT) {
			jobs[i]->item->duplicate = items[nitems++].duplicate;
			jobs[i]->status = status;
		}
	}
	if (nitems > 0)
		note_result(s, status, err);
	for (i = 0; i < n; i++) {
		if (jobs[i]->type != JOB_HEALTH)
			continue;
		jobs[i]->status = ensure_open(s, err, sizeof(err));
		if (jobs[i]->status == QUEUE_OK)
			jobs[i]->status = queue_health(s->queue, jobs[i]->health, err,
			    sizeof(err));
		if (jobs[i]->status != QUEUE_OK)
			log_warnx("health check: %s", err);
	}
}

static void *
writer_main(void *arg)
{
	struct store	*s = arg;
	struct job	*batch[STORE_MAX_BATCH];
	size_t		 i, n;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->work_cv, &s->mu);
		if (s->head == NULL)
			break;
		for (n = 0; s->head != NULL && n < STORE_MAX_BATCH; n++) {
			batch[n] = s->head;
			s->head = s->head->next;
		}
		if (s->head == NULL)
			s->tail = &s->head;
		pthread_mutex_unlock(&s->mu);
		run_jobs(s, batch, n);
		/* A job lives on its thread's stack: once posted, it may be gone. */
		for (i = 0; i < n; i++)
			sem_post(&batch[i]->done);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static enum queue_status
submit(struct store *s, struct job *job)
{
	if (!s->threaded) {
		run_jobs(s, &job, 1);
		return job->status;
	}
	sem_init(&job->done, 0, 0);
	pthread_mutex_lock(&s->mu);
	job->next = NULL;
	*s->tail = job;
	s->tail = &job->next;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	while (sem_wait(&job->done) == -1)
		continue;	/* EINTR: the shutdown signal; the answer still comes */
	sem_destroy(&job->done);
	return job->status;
}

enum queue_status
store_put(struct store *s, struct queue_item *item)
{
	struct job job = { .type = JOB_PUT, .item = item };

	return submit(s, &job);
}

enum queue_status
store_health(struct store *s, struct queue_health *h)
{
	struct job job = { .type = JOB_HEALTH, .health = h };

	return submit(s, &job);
}

static void
destroy(struct store *s)
{
	if (s->threaded) {
		pthread_cond_destroy(&s->work_cv);
		pthread_mutex_destroy(&s->mu);
	}
	queue_close(s->queue);
	free(s);
}

int
store_start(const struct config *cfg, int threaded, struct store **out, char *err,
    size_t errlen)
{
	struct store	*s;
	char		 openerr[512];
	sigset_t	 all, old;
	int		 rc;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->cfg = cfg;
	s->threaded = threaded;
	s->tail = &s->head;
	if (threaded) {
		queue_limit_memory(STORE_SQLITE_MEMORY);
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->work_cv, NULL);
	}
	/* Opening now reports a wrong path at start-up; failing is not fatal: the
	 * database may come back, and meanwhile Telegram gets 503s and retries. */
	if (ensure_open(s, openerr, sizeof(openerr)) != QUEUE_OK)
		note_result(s, QUEUE_UNAVAILABLE, openerr);
	if (!threaded) {
		*out = s;
		return 0;
	}
	/* Signals are for the main thread, which decides how to stop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if ((rc = pthread_create(&s->writer, NULL, writer_main, s)) != 0)
		snprintf(err, errlen, "writer thread: %s", strerror(rc));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		destroy(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* Stores what was submitted before the call, then closes the database. */
void
store_stop(struct store *s)
{
	if (s == NULL)
		return;
	if (s->threaded) {
		pthread_mutex_lock(&s->mu);
		s->stopping = 1;
		pthread_cond_signal(&s->work_cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->writer, NULL);
	}
	destroy(s);
}
