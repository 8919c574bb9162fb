/*
 * tgq-webhook's own interface: the request checks (request.c), group commit
 * (store.c), when a FastCGI request has arrived whole (fcgi_frame.c) and the two
 * ways requests arrive (fastcgi.c, main.c).
 */
#ifndef WEBHOOK_H
#define WEBHOOK_H

#include <sys/types.h>

#include "tgq.h"

/* How one request reaches request_handle(), whatever carried it (FastCGI or CGI). */
struct request_io {
	const char	*(*param)(void *ctx, const char *name);
	/* Reads up to len bytes; returns how many, 0 at the end, -1 on error. */
	ssize_t		 (*read)(void *ctx, char *buf, size_t len);
	int		 (*write)(void *ctx, const char *buf, size_t len);
	void		*ctx;
	/*
	 * Optional.  Takes an update to store, with its body (malloc'd; the callee
	 * frees it), and returns at once; the caller then answers the request with
	 * request_answer_stored() once store_run() has stored it with others.
	 * NULL: the request stores its update alone, in place.
	 */
	void		 (*defer)(void *ctx, const struct queue_item *item, char *body);
};

struct store;

struct webhook {
	const struct config	*cfg;
	struct store		*store;
	struct metrics		*metrics;	/* NULL: not counted */
};

/* fcgi_frame.c */
enum fcgi_frame { FCGI_FRAME_NOT_OURS = -1, FCGI_FRAME_PARTIAL, FCGI_FRAME_WHOLE };
/* Whether buf[0..len), all that a FastCGI connection has sent, is one whole
 * responder request (see fcgi_frame.c). */
enum fcgi_frame fcgi_whole_request(const unsigned char *buf, size_t len);

/* fastcgi.c */
/* Serves FastCGI requests on fd 0 until SIGTERM, SIGINT or SIGUSR1; 0 or 1. */
int	 serve_fastcgi(const struct webhook *wh);

/* request.c */
/* Answers one request: routes, checks, and stores the update before the 200. */
void	 request_handle(const struct request_io *io, const struct webhook *wh);
/* The answer to a deferred update: 200 once stored, else 503. */
void	 request_answer_stored(const struct request_io *io, const struct webhook *wh,
	    const struct queue_item *item, enum queue_status status);

/* metrics_page.c */
/* GET /metrics in Prometheus' text format: the shared counters, and the queue's
 * depth read on a connection of its own (never the one that stores updates). */
char	*metrics_render(const struct webhook *wh, size_t *len);

/* store.c */
/*
 * The process's one database connection: store_run() stores the updates of a
 * batch in one transaction (group commit), callers in several threads taking
 * turns.  The database is opened lazily and reopened after failures, so a
 * process outlives a broken disk.
 */
#define STORE_MAX_BATCH 512

enum store_job_type { STORE_PUT, STORE_HEALTH };

struct store_job {
	enum store_job_type	 type;
	struct queue_item	*item;		/* STORE_PUT: in, and out: duplicate */
	struct queue_health	*health;	/* STORE_HEALTH: out */
	enum queue_status	 status;	/* out */
};

int	 store_start(const struct config *cfg, struct store **out, char *err,
	    size_t errlen);
void	 store_stop(struct store *s);
/* Stores the updates of the jobs, in one transaction per STORE_MAX_BATCH, and
 * answers the health checks among them; sets each job's status. */
void	 store_run(struct store *s, struct store_job **jobs, size_t n);
enum queue_status store_put(struct store *s, struct queue_item *item);
enum queue_status store_health(struct store *s, struct queue_health *h);

#endif
