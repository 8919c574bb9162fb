/*
 * tgq-webhook's own interface: the request checks (request.c), group commit
 * (store.c), the FastCGI framing read before libfcgi (fcgi_frame.c), the one
 * file that drives libfcgi (fcgi_adapter.c) and the two ways requests arrive
 * (fastcgi.c, main.c).
 */
#ifndef WEBHOOK_H
#define WEBHOOK_H

#include <stdio.h>
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

struct secrets;

struct webhook {
	const struct config	*cfg;
	struct store		*store;
	struct metrics		*metrics;	/* NULL: not counted */
	/* Rereads the bots' secret files when they change (secrets.c); NULL: the
	 * secrets read at the start are the ones checked. */
	struct secrets		*secrets;
};

/* fcgi_frame.c */
enum fcgi_frame {
	FCGI_FRAME_NOT_OURS = -1,	/* not one responder request at a time */
	FCGI_FRAME_PARTIAL,		/* more is to come */
	FCGI_FRAME_WHOLE,		/* one whole request, and nothing after it */
	FCGI_FRAME_MANAGEMENT,		/* a whole management record, at s->at */
	FCGI_FRAME_BAD_PARAMS,		/* a pair's length runs past the pairs */
	FCGI_FRAME_TOO_LARGE		/* a record ends beyond the limit */
};

/* A walk over FastCGI name-value pairs that arrive in pieces (see fcgi_frame.c). */
struct fcgi_pairs {
	size_t		 limit;		/* the most bytes all pairs may hold */
	size_t		 total;		/* bytes walked */
	size_t		 skip;		/* of the current name and value, to come */
	size_t		 len;		/* the length being read */
	size_t		 name_len;
	size_t		 pairs;		/* pairs begun */
	int		 len_bytes;	/* of the length being read, to come */
	int		 value_next;	/* the value's length is next */
};
void	 fcgi_pairs_begin(struct fcgi_pairs *p, size_t limit);
/* 0, or -1 when a name or value would end beyond the limit. */
int	 fcgi_pairs_feed(struct fcgi_pairs *p, const unsigned char *buf, size_t len);
/* 0 when the bytes fed end between two pairs, else -1. */
int	 fcgi_pairs_end(const struct fcgi_pairs *p);
/* Whether buf[0..len) is whole pairs, all of them within limit bytes: 0 or -1. */
int	 fcgi_pairs_check(const unsigned char *buf, size_t len, size_t limit);

/* Where the walk over a connection's records is (see fcgi_frame.c). */
struct fcgi_scan {
	size_t			 limit;	/* no record may end beyond it */
	size_t			 at;	/* the first record not yet accepted */
	size_t			 management_len;	/* FCGI_FRAME_MANAGEMENT */
	int			 id;	/* the request's; -1 before it begins */
	int			 params_done;
	struct fcgi_pairs	 pairs;
};
void	 fcgi_scan_begin(struct fcgi_scan *s, size_t limit);
/*
 * Walks buf[0..len), all that a FastCGI connection has sent, from where the last
 * call stopped.  After FCGI_FRAME_MANAGEMENT the caller answers the record at
 * s->at (management_len bytes), takes it out of buf and calls again; after
 * anything but that and FCGI_FRAME_PARTIAL, the walk is over.
 */
enum fcgi_frame fcgi_scan(struct fcgi_scan *s, const unsigned char *buf, size_t len);
/* fcgi_scan() of buf[0..len) from its start. */
enum fcgi_frame fcgi_whole_request(const unsigned char *buf, size_t len,
	    size_t limit);

/* What FCGI_GET_VALUES is answered; FCGI_MPXS_CONNS is always 0. */
struct fcgi_values {
	unsigned long	 max_conns, max_reqs;
};
#define FCGI_ANSWER_MAX 128
/* The answer to the management record rec[0..len): FCGI_GET_VALUES_RESULT, or
 * FCGI_UNKNOWN_TYPE for any other type.  Returns its length in out, or 0 when the
 * record's pairs are not sound (or out is shorter than FCGI_ANSWER_MAX). */
size_t	 fcgi_management_answer(const unsigned char *rec, size_t len,
	    const struct fcgi_values *v, unsigned char *out, size_t outlen);

/* fcgi_adapter.c: the one file that drives libfcgi (its head comment states what
 * it assumes of libfcgi). */
/* Readies libfcgi for this process; 0, or -1 (logged). */
int	 fcgi_library_init(void);
/* Whether the process was started as a CGI program: fd 0 is not a socket. */
int	 fcgi_started_as_cgi(void);
/* One FastCGI connection's requests as libfcgi reads them and answers them. */
struct fcgi_link;
/* A link for the connected socket sock, which it owns from then on (it is
 * closed by fcgi_link_free()); NULL when out of memory. */
struct fcgi_link *fcgi_link_new(int sock);
void	 fcgi_link_free(struct fcgi_link *l);
/*
 * Has libfcgi read the next request and its parameters: from the socket, where
 * all of it has arrived and nothing after it (buf NULL), or from buf[0..len), the
 * request taken off the socket (copied: buf may be freed on return).  0, or -1
 * when the connection is to be closed (libfcgi refused the request).
 */
int	 fcgi_link_accept(struct fcgi_link *l, const unsigned char *buf, size_t len);
/* The request's parameter, or NULL; valid until fcgi_link_finish(). */
const char *fcgi_link_param(const struct fcgi_link *l, const char *name);
/* How many parameters libfcgi found, FCGI_ROLE included. */
size_t	 fcgi_link_param_count(const struct fcgi_link *l);
/* Reads up to len bytes of the body: how many, 0 at the end, -1 on error. */
ssize_t	 fcgi_link_read(struct fcgi_link *l, char *buf, size_t len);
/* Whether the body was read to its end, without a stream error. */
int	 fcgi_link_body_ended(const struct fcgi_link *l);
/* Adds buf[0..len) to the answer, which goes to the socket; 0, or -1. */
int	 fcgi_link_write(struct fcgi_link *l, const char *buf, size_t len);
/*
 * Ends the request: reads what is left of its body (at most budget bytes), sends
 * the rest of the answer and frees libfcgi's buffers.  Returns 1 when the
 * connection may serve another request (the web server asked to keep it, the
 * body was read to its end and the answer sent), else 0.  Either way the link
 * stays for fcgi_link_free().
 */
int	 fcgi_link_finish(struct fcgi_link *l, size_t budget);

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

/* secrets.c */
/*
 * Keeps the bots' webhook secrets (each bot's secret and secret_prev in cfg)
 * as their files say: secrets_refresh() rereads the files that changed, at most
 * once a second unless force, and returns 1 when a bot's secrets changed.  The
 * secrets are read between secrets_read_begin() and secrets_read_end(), which
 * any number of threads may do at once.  A NULL s does nothing.
 */
int	 secrets_start(struct config *cfg, struct secrets **out, char *err,
	    size_t errlen);
void	 secrets_stop(struct secrets *s);
int	 secrets_refresh(struct secrets *s, int force);
void	 secrets_read_begin(struct secrets *s);
void	 secrets_read_end(struct secrets *s);
/* metrics_bots.c */
/* The series by bot (latency histograms, calls by outcome) from the shared
 * file; -1 without memory. */
int	 metrics_write_bots(FILE *f, const struct webhook *wh);

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
/* For …/ready: store_health(), then whether the queue can be written now
 * (costs a lock taken and given back, no write; a failure is logged). */
enum queue_status store_ready(struct store *s, struct queue_health *h);

#endif
