/*
 * The FastCGI side of tgq-webhook: a few request threads, each serving many
 * connections.
 *
 * nginx keeps its FastCGI connections open (fastcgi_keep_conn on, an upstream
 * keepalive pool), which saves a connect, an accept and a close per request: more
 * than the whole SQLite write costs.  libfcgi's own model, a thread per connection,
 * then runs a hundred threads at c = 100, each woken twice per request (its request
 * arrives; its COMMIT is done), and on two cores the p99 was the scheduler's.
 *
 * Here an acceptor thread hands each new connection to one of `threads` request
 * threads.  A request thread waits in epoll on all of its connections and lets
 * libfcgi read a request only once all of it has arrived (fcgi_frame.c), so that
 * libfcgi's blocking reads never wait on a slow peer: a request of up to PEEK_MAX
 * bytes waits in the socket, a larger one is taken off it as it arrives, into a
 * buffer of the connection's, and libfcgi reads it from memory.  How libfcgi is
 * made to do that is fcgi_adapter.c's business alone.  The thread reads
 * every request that has arrived, stores their updates in one transaction
 * (store.c: group commit), and answers them all after the COMMIT; what arrives
 * meanwhile makes the next batch.  No request changes threads on its way, and an
 * idle kept connection costs a file descriptor and a few hundred bytes, never a
 * thread.  Management records are answered here (fcgi_frame.c), never by libfcgi.
 */
#define _GNU_SOURCE	/* accept4, pthread_timedjoin_np */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>	/* FCGI_LISTENSOCK_FILENO */

#include "webhook.h"

/* A request up to this size waits whole in the socket before libfcgi reads it; a
 * larger one is taken off the socket as it arrives. */
#define PEEK_MAX (64 * 1024)
/* libfcgi's blocking writes give up after this (its reads never wait: each
 * request it reads has arrived whole). */
#define IO_TIMEOUT_S 5
/* A connection whose request has begun but not ended in this time is closed. */
#define PARTIAL_TIMEOUT_MS 10000
/* Descriptors kept for the process itself when FCGI_MAX_CONNS is answered. */
#define RESERVED_FDS 32
#define SHUTDOWN_GRACE_MS 10000
#define TICK_MS 1000
#define MAX_EVENTS 64

struct worker;

struct conn {
	struct fcgi_link	*link;	/* libfcgi's side; owns the socket */
	int			 fd;	/* the socket, closed by fcgi_link_free() */
	struct request_io	 io;
	struct worker		*w;
	struct fcgi_scan	 scan;	/* of the bytes arrived: peeked, or in `in` */
	unsigned char		*in;	/* taken off the socket, when buffering */
	size_t			 inlen, incap;
	int			 buffering;
	int			 deferred;	/* its update is in the batch */
	int			 hangup;	/* the peer closed its side */
	int64_t			 partial_since_ms;	/* 0: no request begun */
	int64_t			 idle_since_ms;	/* since the last answer */
	struct store_job	 job;
	struct queue_item	 item;
	char			 kind[JSON_KIND_MAX];
	char			*body;
	struct conn		*prev, *next;	/* the worker's connections */
	struct conn		*queued;	/* the incoming list */
};

struct worker {
	const struct webhook	*wh;
	size_t			 limit;		/* the largest request, in bytes */
	int64_t			 idle_timeout_ms;
	struct fcgi_values	 values;	/* FCGI_GET_VALUES' answers */
	pthread_t		 thread;
	int			 epfd, wakefd;
	unsigned char		*peek;
	struct conn		*conns;
	struct conn		*batch[STORE_MAX_BATCH];	/* to store */
	size_t			 nbatch;
	pthread_mutex_t		 mu;		/* guards incoming */
	int			 mu_ready;
	struct conn		*incoming;	/* accepted, not yet watched */
};

struct server {
	const struct webhook	*wh;
	struct worker		*workers;
	int			 nworkers, started;
	pthread_t		 acceptor;
	const char		*web_servers;	/* FCGI_WEB_SERVER_ADDRS */
};

static atomic_int stopping;
static atomic_int open_conns, peak_conns;

static const char *
fcgi_param(void *ctx, const char *name)
{
	return fcgi_link_param(((struct conn *)ctx)->link, name);
}

static ssize_t
fcgi_read(void *ctx, char *buf, size_t len)
{
	return fcgi_link_read(((struct conn *)ctx)->link, buf, len);
}

static int
fcgi_write(void *ctx, const char *buf, size_t len)
{
	return fcgi_link_write(((struct conn *)ctx)->link, buf, len);
}

static void
wake_handler(int sig)
{
	(void)sig;	/* only there to make the acceptor's accept() return EINTR */
}

static void
wake(struct worker *w)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so the worker wakes anyway. */
	while (write(w->wakefd, &one, sizeof(one)) == -1 && errno == EINTR)
		continue;
}

static void
conn_close(struct worker *w, struct conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (w->conns == c)
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	fcgi_link_free(c->link);	/* closing the socket takes it out of epoll */
	free(c->in);
	free(c->body);
	free(c);
	atomic_fetch_sub(&open_conns, 1);
}

static void
defer_update(void *ctx, const struct queue_item *item, char *body)
{
	struct conn *c = ctx;

	c->item = *item;
	snprintf(c->kind, sizeof(c->kind), "%s", item->kind);
	c->item.kind = c->kind;
	c->body = body;
	memset(&c->job, 0, sizeof(c->job));
	c->job.type = STORE_PUT;
	c->job.item = &c->item;
	c->deferred = 1;
	c->w->batch[c->w->nbatch++] = c;
}

/*
 * Ends the request: sends the answer and keeps or closes the connection as the
 * web server asked.  Returns -1 when the connection is closed (and freed).
 */
static int
conn_finish(struct worker *w, struct conn *c)
{
	int keep;

	keep = !c->hangup && !atomic_load(&stopping);
	keep = fcgi_link_finish(c->link, w->limit) && keep;
	c->deferred = 0;
	free(c->body);
	c->body = NULL;
	c->idle_since_ms = now_unix_ms();
	if (!keep) {
		conn_close(w, c);
		return -1;
	}
	return 0;
}

/* Takes what has arrived off the socket into c->in, up to the request limit.
 * Returns -1 when the socket failed. */
static int
conn_fill(struct worker *w, struct conn *c)
{
	unsigned char	*grown;
	size_t		 cap;
	ssize_t		 n;

	for (;;) {
		if (c->inlen == c->incap) {
			if (c->incap >= w->limit)
				return 0;	/* full: the request is too large */
			cap = c->incap == 0 ? 2 * PEEK_MAX : 2 * c->incap;
			if (cap > w->limit)
				cap = w->limit;
			if ((grown = realloc(c->in, cap)) == NULL) {
				log_err("buffering a FastCGI request: out of memory");
				return -1;
			}
			c->in = grown;
			c->incap = cap;
		}
		n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, MSG_DONTWAIT);
		if (n > 0)
			c->inlen += (size_t)n;
		else if (n == 0) {
			c->hangup = 1;
			return 0;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		else if (errno != EINTR)
			return -1;
	}
}

/* Forgets what was taken off the socket: the next request is peeked at again. */
static void
conn_drop_buffer(struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->inlen = c->incap = 0;
	c->buffering = 0;
}

/* Answers the management record at c->scan.at in c->in and takes it out.
 * Returns -1 when the connection is to be closed. */
static int
conn_management(struct worker *w, struct conn *c)
{
	unsigned char	 answer[FCGI_ANSWER_MAX];
	size_t		 at = c->scan.at, len = c->scan.management_len, n;
	ssize_t		 sent;

	n = fcgi_management_answer(c->in + at, len, &w->values, answer,
	    sizeof(answer));
	if (n == 0) {
		log_warnx("closing a FastCGI connection whose FCGI_GET_VALUES "
		    "record's names run past it");
		return -1;
	}
	/* A peer that does not read its answers is not waited for. */
	sent = send(c->fd, answer, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (sent != (ssize_t)n)
		return -1;
	memmove(c->in + at, c->in + at + len, c->inlen - at - len);
	c->inlen -= len;
	c->idle_since_ms = now_unix_ms();
	if (c->inlen == 0)
		conn_drop_buffer(c);	/* nothing begun */
	return 0;
}

/*
 * What has arrived on the connection: looked at in the socket (MSG_PEEK), or,
 * when buffering, taken off it into c->in.  Returns 1 with *buf and *len set,
 * 0 when nothing more has arrived, -1 when the connection is to be closed.
 */
static int
conn_arrived(struct worker *w, struct conn *c, const unsigned char **buf,
    size_t *len)
{
	ssize_t n;

	if (c->buffering) {
		if (conn_fill(w, c) == -1)
			return -1;
		*buf = c->in;
		*len = c->inlen;
		return 1;
	}
	n = recv(c->fd, w->peek, PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;	/* closed by the peer, or failed */
	*buf = w->peek;
	*len = (size_t)n;
	return 1;
}

/* Why the connection is closed, for the log; NULL when it is not. */
static const char *
frame_refusal(enum fcgi_frame got)
{
	switch (got) {
	case FCGI_FRAME_NOT_OURS:
		return "sent something other than one responder request at a time";
	case FCGI_FRAME_BAD_PARAMS:
		return "sent a parameter whose length runs past the parameters";
	case FCGI_FRAME_TOO_LARGE:
		return "sent a request larger than max_body plus 64 KiB";
	default:
		return NULL;
	}
}

/*
 * Has libfcgi read the whole request at hand, from the socket or from c->in, and
 * handles it.  Returns 1 when it is answered and the connection kept, 0 when its
 * update joined the batch, -1 when the connection was closed.
 */
static int
conn_request(struct worker *w, struct conn *c)
{
	int rc;

	c->partial_since_ms = 0;
	fcgi_scan_begin(&c->scan, w->limit);
	rc = fcgi_link_accept(c->link, c->buffering ? c->in : NULL, c->inlen);
	conn_drop_buffer(c);
	if (rc == -1) {
		conn_close(w, c);
		return -1;
	}
	request_handle(&c->io, w->wh);
	if (c->deferred)
		return 0;
	return conn_finish(w, c) == -1 ? -1 : 1;
}

/*
 * Serves what the connection has sent: each whole request in turn (nginx sends
 * one at a time, and the next only after the answer).  Returns when an update
 * joined the batch, when nothing whole is left, or when the connection closed.
 * A request is looked at in the socket while it fits in PEEK_MAX and holds no
 * management record; else it is taken off the socket, into c->in.
 */
static void
conn_serve(struct worker *w, struct conn *c)
{
	const unsigned char	*buf;
	const char		*why;
	enum fcgi_frame		 got;
	size_t			 len;
	int			 rc;

	while ((rc = conn_arrived(w, c, &buf, &len)) == 1) {
		got = fcgi_scan(&c->scan, buf, len);
		if (!c->buffering && (got == FCGI_FRAME_MANAGEMENT ||
		    (got == FCGI_FRAME_PARTIAL && len == PEEK_MAX))) {
			c->buffering = 1;	/* the scan goes on in c->in */
			continue;
		}
		if (got == FCGI_FRAME_PARTIAL && c->buffering && c->inlen >= w->limit)
			got = FCGI_FRAME_TOO_LARGE;
		if ((why = frame_refusal(got)) != NULL) {
			log_warnx("closing a FastCGI connection that %s", why);
			break;
		}
		if (got == FCGI_FRAME_MANAGEMENT) {
			if (conn_management(w, c) == -1)
				break;
		} else if (got == FCGI_FRAME_PARTIAL) {
			if (c->hangup)
				break;	/* the rest never comes */
			if (len > 0 && c->partial_since_ms == 0)
				c->partial_since_ms = now_unix_ms();
			return;
		} else if (conn_request(w, c) != 1) {	/* FCGI_FRAME_WHOLE */
			return;
		}
	}
	if (rc != 0)
		conn_close(w, c);
}

static void
conn_event(struct worker *w, struct conn *c, uint32_t events)
{
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->hangup = 1;
	if (c->deferred)
		return;	/* closed after its answer if the peer left */
	if (atomic_load(&stopping))
		conn_close(w, c);
	else
		conn_serve(w, c);
}

static struct conn *
take_list(struct worker *w, struct conn **list)
{
	struct conn *head, *fifo = NULL, *next;

	pthread_mutex_lock(&w->mu);
	head = *list;
	*list = NULL;
	pthread_mutex_unlock(&w->mu);
	for (; head != NULL; head = next) {	/* pushed last first */
		next = head->queued;
		head->queued = fifo;
		fifo = head;
	}
	return fifo;
}

/* Stores the batch in one transaction, then answers each of its requests. */
static void
commit_batch(struct worker *w)
{
	struct store_job	*jobs[STORE_MAX_BATCH];
	size_t			 i, n = w->nbatch;

	for (i = 0; i < n; i++)
		jobs[i] = &w->batch[i]->job;
	store_run(w->wh->store, jobs, n);
	w->nbatch = 0;
	for (i = 0; i < n; i++) {
		struct conn *c = w->batch[i];

		request_answer_stored(&c->io, w->wh, &c->item, c->job.status);
		(void)conn_finish(w, c);
	}
}

static void
watch_incoming(struct worker *w)
{
	struct epoll_event	 ev;
	struct conn		*c, *next;

	for (c = take_list(w, &w->incoming); c != NULL; c = next) {
		next = c->queued;
		c->prev = NULL;
		c->next = w->conns;
		if (w->conns != NULL)
			w->conns->prev = c;
		w->conns = c;
		if (atomic_load(&stopping)) {
			conn_close(w, c);
			continue;
		}
		/* Edge-triggered: an event per arrival.  A request is read whole
		 * when it is there, and nothing may arrive before its answer. */
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = c;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) == -1) {
			log_err("watching a FastCGI connection: %s", strerror(errno));
			conn_close(w, c);
		}
	}
}

/* Closes connections whose request began long ago and has not arrived whole, and
 * kept connections idle for long. */
static void
close_stale(struct worker *w, int64_t now)
{
	struct conn *c, *next;

	for (c = w->conns; c != NULL; c = next) {
		next = c->next;
		if (c->deferred)
			continue;
		if (c->partial_since_ms != 0) {
			if (now - c->partial_since_ms < PARTIAL_TIMEOUT_MS)
				continue;
			log_warnx("closing a FastCGI connection whose request did not "
			    "arrive whole in %d s", PARTIAL_TIMEOUT_MS / 1000);
			conn_close(w, c);
		} else if (now - c->idle_since_ms >= w->idle_timeout_ms) {
			log_debug("closing a FastCGI connection idle for %lld s",
			    (long long)(w->idle_timeout_ms / 1000));
			conn_close(w, c);
		}
	}
}

/* Resets the eventfd that wake() wrote. */
static void
take_wakeups(struct worker *w)
{
	uint64_t count;

	while (read(w->wakefd, &count, sizeof(count)) == -1 && errno == EINTR)
		continue;
}

static void *
worker_main(void *arg)
{
	struct worker		*w = arg;
	struct epoll_event	 ev[MAX_EVENTS];
	int64_t			 now, last_check = now_unix_ms();
	int			 i, n;

	while (!atomic_load(&stopping)) {
		n = epoll_wait(w->epfd, ev, MAX_EVENTS, TICK_MS);
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == NULL) {
				take_wakeups(w);	/* for incoming, or to stop */
				continue;
			}
			conn_event(w, ev[i].data.ptr, ev[i].events);
			if (w->nbatch == STORE_MAX_BATCH)
				commit_batch(w);
		}
		if (w->nbatch > 0)
			commit_batch(w);
		watch_incoming(w);
		now = now_unix_ms();
		if (now - last_check >= TICK_MS) {
			close_stale(w, now);
			last_check = now;
		}
	}
	/* Between two turns no request is in progress: every one was answered. */
	while (w->conns != NULL)
		conn_close(w, w->conns);
	return NULL;
}

/* libfcgi's rule, kept: over TCP, FCGI_WEB_SERVER_ADDRS (addresses separated by
 * commas) lists the web servers that may connect. */
static int
peer_allowed(const struct sockaddr_storage *sa, const char *allowed)
{
	char		 addr[INET6_ADDRSTRLEN];
	const void	*raw;
	const char	*p, *end;
	size_t		 len;

	if (allowed == NULL)
		return 1;
	if (sa->ss_family == AF_INET)
		raw = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->ss_family == AF_INET6)
		raw = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return 1;
	if (inet_ntop(sa->ss_family, raw, addr, sizeof(addr)) == NULL)
		return 0;
	len = strlen(addr);
	for (p = allowed; *p != '\0'; p = *end ? end + 1 : end) {
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(end - p) >= len && memcmp(p, addr, len) == 0 &&
		    strspn(p + len, " \t") == (size_t)(end - p) - len)
			return 1;
	}
	return 0;
}

static struct conn *
conn_new(struct worker *w, int fd)
{
	struct timeval	 timeout = { IO_TIMEOUT_S, 0 };
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->link = fcgi_link_new(fd)) == NULL) {
		free(c);
		return NULL;	/* the caller still owns fd */
	}
	c->fd = fd;
	fcgi_scan_begin(&c->scan, w->limit);
	c->idle_since_ms = now_unix_ms();
	c->io.param = fcgi_param;
	c->io.read = fcgi_read;
	c->io.write = fcgi_write;
	c->io.defer = defer_update;
	c->io.ctx = c;
	c->w = w;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
	return c;
}

/* The next connection on the listening socket, or -1 when there is none to
 * take (a signal, a peer gone before it was accepted, a failure). */
static int
accept_next(struct sockaddr_storage *sa, int *warned)
{
	struct timespec	 pause = { 0, 100 * 1000 * 1000 };
	socklen_t	 salen = sizeof(*sa);
	int		 fd;

	fd = accept4(FCGI_LISTENSOCK_FILENO, (struct sockaddr *)sa, &salen,
	    SOCK_CLOEXEC);
	if (fd >= 0) {
		*warned = 0;
		return fd;
	}
	if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
		return -1;
	/* Out of descriptors, or the socket failed: do not spin. */
	if (!*warned)
		log_err("accepting a FastCGI connection: %s", strerror(errno));
	*warned = 1;
	nanosleep(&pause, NULL);
	return -1;
}

/* Gives the connection to its request thread, which watches it from its next
 * turn on. */
static void
hand_to_worker(struct worker *w, struct conn *c)
{
	int n;

	n = atomic_fetch_add(&open_conns, 1) + 1;
	if (n > atomic_load(&peak_conns))
		atomic_store(&peak_conns, n);
	pthread_mutex_lock(&w->mu);
	c->queued = w->incoming;
	w->incoming = c;
	pthread_mutex_unlock(&w->mu);
	wake(w);
}

static void *
acceptor_main(void *arg)
{
	struct server		*sv = arg;
	struct sockaddr_storage	 sa;
	struct conn		*c;
	struct worker		*w;
	sigset_t		 wakeup;
	unsigned		 next = 0;
	int			 fd, warned = 0;

	sigemptyset(&wakeup);
	sigaddset(&wakeup, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &wakeup, NULL);
	while (!atomic_load(&stopping)) {
		if ((fd = accept_next(&sa, &warned)) == -1)
			continue;
		w = &sv->workers[next++ % (unsigned)sv->nworkers];
		if (!peer_allowed(&sa, sv->web_servers) || (c = conn_new(w, fd)) == NULL)
			close(fd);
		else
			hand_to_worker(w, c);
	}
	return NULL;
}

static void
worker_free(struct worker *w)
{
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->wakefd >= 0)
		close(w->wakefd);
	free(w->peek);
	if (w->mu_ready)
		pthread_mutex_destroy(&w->mu);
}

/* What FCGI_MAX_CONNS is answered: as many connections as descriptors. */
static unsigned long
max_conns(void)
{
	struct rlimit files;

	if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur <= RESERVED_FDS)
		return 1024;
	if (files.rlim_cur == RLIM_INFINITY || files.rlim_cur > 1000000)
		return 1000000;
	return (unsigned long)(files.rlim_cur - RESERVED_FDS);
}

static int
worker_start(struct worker *w, const struct webhook *wh, int64_t idle_timeout_s)
{
	struct epoll_event	 ev;
	int			 rc;

	w->wh = wh;
	w->limit = (size_t)wh->cfg->max_body + PEEK_MAX;
	w->idle_timeout_ms = idle_timeout_s * 1000;
	/* One request per connection. */
	w->values.max_conns = w->values.max_reqs = max_conns();
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->peek = malloc(PEEK_MAX);
	if (w->epfd == -1 || w->wakefd == -1 || w->peek == NULL) {
		log_err("starting a request thread: %s", strerror(errno));
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) == -1) {
		log_err("starting a request thread: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_init(&w->mu, NULL);
	w->mu_ready = 1;
	if ((rc = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
		log_err("starting a request thread: %s", strerror(rc));
		return -1;
	}
	return 0;
}

/* Stops accepting, lets each request thread finish its turn; returns how many
 * threads did not stop in SHUTDOWN_GRACE_MS. */
static int
stop_server(struct server *sv, int acceptor_running)
{
	struct timespec	 tick = { 0, 10 * 1000 * 1000 }, deadline;
	int		 i, waited_ms, late = 0;

	atomic_store(&stopping, 1);
	for (waited_ms = 0; acceptor_running; waited_ms += 10) {
		/* A signal before accept() is entered is lost: send it again. */
		pthread_kill(sv->acceptor, SIGUSR2);
		if (pthread_tryjoin_np(sv->acceptor, NULL) == 0)
			break;
		if (waited_ms >= SHUTDOWN_GRACE_MS) {
			log_warnx("the acceptor thread did not stop in time");
			late++;
			break;
		}
		nanosleep(&tick, NULL);
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += SHUTDOWN_GRACE_MS / 1000 + 1;
	for (i = 0; i < sv->started; i++)
		wake(&sv->workers[i]);
	for (i = 0; i < sv->started; i++)
		if (pthread_timedjoin_np(sv->workers[i].thread, NULL, &deadline) != 0)
			late++;
	return late;
}

/* Blocks every signal in this thread, and so in the threads it starts; *stop is
 * what wait_for_stop() takes.  SIGUSR2 only wakes the acceptor. */
static void
block_signals(sigset_t *stop)
{
	struct sigaction sa;
	sigset_t	 all;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;	/* no SA_RESTART: accept() must return */
	sigaction(SIGUSR2, &sa, NULL);
	/* SIGUSR1 is libfcgi's "finish and exit" convention, so it means what
	 * SIGTERM means. */
	sigemptyset(stop);
	sigaddset(stop, SIGTERM);
	sigaddset(stop, SIGINT);
	sigaddset(stop, SIGUSR1);
	sigaddset(stop, SIGHUP);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* Starts the request threads, then the acceptor; 0, or -1 (logged) with
 * sv->started the threads that run. */
static int
start_server(struct server *sv, const struct webhook *wh, int64_t idle_timeout_s)
{
	int i, rc;

	sv->wh = wh;
	sv->web_servers = getenv("FCGI_WEB_SERVER_ADDRS");
	sv->nworkers = (int)wh->cfg->threads;
	if ((sv->workers = calloc((size_t)sv->nworkers, sizeof(*sv->workers))) == NULL) {
		log_err("out of memory");
		sv->nworkers = 0;
		return -1;
	}
	for (i = 0; i < sv->nworkers; i++)
		sv->workers[i].epfd = sv->workers[i].wakefd = -1;
	for (i = 0; i < sv->nworkers &&
	    worker_start(&sv->workers[i], wh, idle_timeout_s) == 0; i++)
		sv->started++;
	if (sv->started < sv->nworkers)
		return -1;
	if ((rc = pthread_create(&sv->acceptor, NULL, acceptor_main, sv)) != 0) {
		log_err("starting the acceptor thread: %s", strerror(rc));
		return -1;
	}
	return 0;
}

/* The stop signal that ends the server; configuration is read once, so SIGHUP
 * does not. */
static int
wait_for_stop(const sigset_t *stop)
{
	int sig;

	do {
		if (sigwait(stop, &sig) != 0)
			sig = SIGTERM;
	} while (sig == SIGHUP);
	return sig;
}

int
serve_fastcgi(const struct webhook *wh)
{
	/* static: a request thread that outlives a timed-out stop (its COMMIT held
	 * up by a failing disk) still uses it until the process exits. */
	static struct server sv;
	sigset_t	 stop;
	int		 i, running;

	if (fcgi_library_init() == -1)
		return 1;
	block_signals(&stop);
	memset(&sv, 0, sizeof(sv));
	/* idle_timeout (65 s by default) is a little longer than the shipped
	 * nginx upstream keeps a connection (keepalive_timeout 60s), so that
	 * nginx, which does not know when tgq-webhook closes, closes first. */
	running = start_server(&sv, wh, wh->cfg->idle_timeout_s) == 0;
	if (running) {
		log_info("serving FastCGI with %d request threads, database %s",
		    sv.nworkers, wh->cfg->database);
		log_info("signal %d: finishing the requests in progress",
		    wait_for_stop(&stop));
	}
	if (stop_server(&sv, running) > 0)
		return 1;	/* the process exits; the threads stay */
	if (running)
		log_info("stopped; at most %d FastCGI connections were open at once",
		    atomic_load(&peak_conns));
	for (i = 0; i < sv.nworkers; i++)
		worker_free(&sv.workers[i]);
	free(sv.workers);
	return running ? 0 : 1;
}
