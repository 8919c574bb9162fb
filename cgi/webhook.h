/*
 * tgq-webhook's own interface: the request checks (request.c), the one writer of a
 * process (store.c) and the two ways requests arrive (fastcgi.c, main.c).
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
};

struct store;

struct webhook {
	const struct config	*cfg;
	struct store		*store;
	struct metrics		*metrics;	/* NULL: not counted */
};

/* fcgi_frame.c */
enum fcgi_frame { FCGI_FRAME_NOT_OURS = -1, FCGI_FRAME_PARTIAL, FCGI_FRAME_WHOLE };
/* Whether buf[0..len) starts with a whole FastCGI responder request. */
enum fcgi_frame fcgi_whole_request(const unsigned char *buf, size_t len);

/* fastcgi.c */
/* Serves FastCGI requests on fd 0 until SIGTERM, SIGINT or SIGUSR1; 0 or 1. */
int	 serve_fastcgi(const struct webhook *wh);

/* request.c */
/* Answers one request: routes, checks, and stores the update before the 200. */
void	 request_handle(const struct request_io *io, const struct webhook *wh);

/* metrics_page.c */
/* GET /metrics in Prometheus' text format: the shared counters, and the queue's
 * depth read on a connection of its own (never the writer's). */
char	*metrics_render(const struct webhook *wh, size_t *len);

/* store.c */
/*
 * With threaded set, a writer thread commits the updates of all request threads in
 * shared transactions (group commit) and each caller waits for the COMMIT that holds
 * its row; without, every call writes in the caller's thread.  The database is
 * opened lazily and reopened after failures, so a process outlives a broken disk.
 */
int	 store_start(const struct config *cfg, int threaded, struct store **out,
	    char *err, size_t errlen);
void	 store_stop(struct store *s);
enum queue_status store_put(struct store *s, struct queue_item *item);
enum queue_status store_health(struct store *s, struct queue_health *h);

#endif
