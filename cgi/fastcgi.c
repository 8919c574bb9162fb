/*
 * The FastCGI side of tgq-webhook: request threads in libfcgi's accept loop.
 *
 * nginx may keep its FastCGI connections open (fastcgi_keep_conn on, an upstream
 * keepalive pool), which saves a connect, an accept and a close per request: more
 * than the whole SQLite write costs.  libfcgi serves a kept connection with the
 * thread that accepted it, and that thread then waits on it for the next request.
 * A fixed number of threads would let idle kept connections hold every thread while
 * new connections wait in the listen queue; so the pool grows whenever fewer than
 * POOL_MIN_SPARE threads wait for a new connection (up to `threads`), and a thread
 * whose connection closed leaves when POOL_MAX_SPARE others already wait.  When
 * every thread is taken, a connection idle for POOL_FULL_IDLE_MS is closed (nginx
 * drops it from its pool), so that a new connection is never kept waiting for long.
 */
#define _GNU_SOURCE	/* pthread_tryjoin_np */
#include <sys/socket.h>

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "webhook.h"

#define WORKER_STACK_SIZE (256 * 1024)
#define SHUTDOWN_GRACE_MS 10000
#define POOL_START 4
#define POOL_MIN_SPARE 2
#define POOL_MAX_SPARE 16
#define POOL_FULL_IDLE_MS 1000

struct pool {
	const struct webhook	*wh;
	pthread_attr_t		 attr;
	pthread_mutex_t		 mu;
	int			 max;		/* the configured `threads` */
	int			 live;		/* threads started and not yet gone */
	int			 waiting;	/* of those, waiting for a new connection */
	int			 peak;
	int			 spawn_failing;	/* logged once until a start works */
	pthread_t		*slots;		/* max entries; a thread owns its slot */
	unsigned char		*used;
};

struct worker {
	struct pool	*pool;
	int		 slot;
};

static atomic_int shutting_down;

static const char *
fcgi_param(void *ctx, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)ctx)->envp);
}

static ssize_t
fcgi_read(void *ctx, char *buf, size_t len)
{
	int n = FCGX_GetStr(buf, len > 65536 ? 65536 : (int)len,
	    ((FCGX_Request *)ctx)->in);

	return n < 0 ? -1 : n;
}

static int
fcgi_write(void *ctx, const char *buf, size_t len)
{
	return FCGX_PutStr(buf, (int)len, ((FCGX_Request *)ctx)->out) == (int)len ?
	    0 : -1;
}

static void
wake_handler(int sig)
{
	(void)sig;	/* only there to make accept(), read() and poll() return EINTR */
}

static int pool_spawn_locked(struct pool *p);

static int
pool_full(struct pool *p)
{
	int full;

	pthread_mutex_lock(&p->mu);
	full = p->live >= p->max && p->waiting == 0;
	pthread_mutex_unlock(&p->mu);
	return full;
}

/*
 * Waits until a kept connection brings its next request (1), or until it is to
 * be closed (0): the web server closed it, the process stops, or it sat idle
 * while every thread was taken.  libfcgi would notice a close only inside
 * FCGX_Accept_r and then go on to accept a new connection there, unseen by the
 * pool's count of waiters.
 */
static int
kept_connection_ready(struct pool *p, int fd)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	char		 c;
	ssize_t		 n;
	int		 rc;

	while ((rc = poll(&pfd, 1, POOL_FULL_IDLE_MS)) <= 0) {
		if (atomic_load(&shutting_down) || (rc == -1 && errno != EINTR))
			return 0;
		if (rc == 0 && pool_full(p))
			return 0;
	}
	while ((n = recv(fd, &c, 1, MSG_PEEK)) == -1 && errno == EINTR &&
	    !atomic_load(&shutting_down))
		continue;
	return n > 0;
}

/* Counts a thread in or out of the waiters; starts one more when too few are left.
 * Returns -1 when the thread should leave instead of waiting. */
static int
pool_wait_for_connection(struct pool *p, int starting_to_wait)
{
	int rc = 0;

	pthread_mutex_lock(&p->mu);
	if (starting_to_wait) {
		if (p->waiting >= POOL_MAX_SPARE)
			rc = -1;
		else
			p->waiting++;
	} else {
		p->waiting--;
		if (p->waiting < POOL_MIN_SPARE && p->live < p->max &&
		    !atomic_load(&shutting_down))
			(void)pool_spawn_locked(p);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static void *
worker_main(void *arg)
{
	struct worker		*w = arg;
	struct pool		*p = w->pool;
	FCGX_Request		 req;
	struct request_io	 io = { fcgi_param, fcgi_read, fcgi_write, &req };
	sigset_t		 wake;
	int			 warned = 0, fresh, rc;

	sigemptyset(&wake);
	sigaddset(&wake, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	/* FCGI_FAIL_ACCEPT_ON_INTR: the shutdown signal ends a waiting accept(). */
	FCGX_InitRequest(&req, 0, FCGI_FAIL_ACCEPT_ON_INTR);
	while (!atomic_load(&shutting_down)) {
		if (req.ipcFd >= 0 && !kept_connection_ready(p, req.ipcFd)) {
			/* Idle, or closed by the peer: nothing unread to linger for
			 * (FCGX_Free would wait up to 2 s for the peer's close). */
			close(req.ipcFd);
			req.ipcFd = -1;
		}
		fresh = req.ipcFd < 0;
		if (fresh && pool_wait_for_connection(p, 1) == -1)
			break;
		rc = FCGX_Accept_r(&req);
		if (fresh)
			(void)pool_wait_for_connection(p, 0);
		if (rc < 0) {
			/* Interrupted for shutdown, or the socket failed: do not spin. */
			if (!atomic_load(&shutting_down)) {
				struct timespec pause = { 0, 10 * 1000 * 1000 };

				if (!warned)
					log_warnx("accept on the FastCGI socket failed");
				warned = 1;
				nanosleep(&pause, NULL);
			}
			continue;
		}
		request_handle(&io, p->wh);
		FCGX_Finish_r(&req);
	}
	FCGX_Free(&req, 1);
	pthread_mutex_lock(&p->mu);
	p->live--;
	p->used[w->slot] = 0;
	/* Once stopping has begun, stop_workers() joins the thread; before, nobody
	 * will, and its slot is free for the next one. */
	if (!atomic_load(&shutting_down)) {
		pthread_detach(pthread_self());
		memset(&p->slots[w->slot], 0, sizeof(p->slots[w->slot]));
	}
	pthread_mutex_unlock(&p->mu);
	free(w);
	return NULL;
}

static int
pool_spawn_locked(struct pool *p)
{
	struct worker	*w;
	int		 slot, rc;

	for (slot = 0; slot < p->max && p->used[slot]; slot++)
		continue;
	if (slot == p->max || (w = malloc(sizeof(*w))) == NULL)
		return -1;
	w->pool = p;
	w->slot = slot;
	if ((rc = pthread_create(&p->slots[slot], &p->attr, worker_main, w)) != 0) {
		if (!p->spawn_failing)
			log_err("starting a request thread: %s (%d threads run)",
			    strerror(rc), p->live);
		p->spawn_failing = 1;
		free(w);
		return -1;
	}
	p->spawn_failing = 0;
	p->used[slot] = 1;
	if (++p->live > p->peak)
		p->peak = p->live;
	return 0;
}

/* Wakes the request threads until each has finished its request and returned;
 * returns how many did not, in SHUTDOWN_GRACE_MS. */
static int
stop_workers(struct pool *p)
{
	struct timespec	 tick = { 0, 10 * 1000 * 1000 };
	int		 i, running = 0, waited_ms;

	pthread_mutex_lock(&p->mu);
	atomic_store(&shutting_down, 1);
	pthread_mutex_unlock(&p->mu);
	FCGX_ShutdownPending();
	for (waited_ms = 0; waited_ms < SHUTDOWN_GRACE_MS; waited_ms += 10) {
		pthread_mutex_lock(&p->mu);
		running = 0;
		for (i = 0; i < p->max; i++) {
			if (p->slots[i] == 0)
				continue;
			if (!p->used[i] && pthread_tryjoin_np(p->slots[i], NULL) == 0) {
				p->slots[i] = 0;
				continue;
			}
			running++;
			if (p->used[i])
				pthread_kill(p->slots[i], SIGUSR2);
		}
		pthread_mutex_unlock(&p->mu);
		if (running == 0)
			return 0;
		nanosleep(&tick, NULL);
	}
	log_warnx("%d request threads did not finish in time", running);
	return running;
}

int
serve_fastcgi(const struct webhook *wh)
{
	/* static: threads that outlive a timed-out stop still use it until the
	 * process exits. */
	static struct pool p;
	struct sigaction sa;
	sigset_t	 stop, all;
	int		 i, sig, started = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;	/* no SA_RESTART: accept() must return */
	sigaction(SIGUSR2, &sa, NULL);
	/* Only this thread takes the stop signals; SIGUSR1 is libfcgi's "finish and
	 * exit" convention, so it means what SIGTERM means. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);
	sigaddset(&stop, SIGHUP);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	/* Each thread mallocs a little per request (libfcgi's buffers); an arena per
	 * thread would keep its free memory resident, many times over. */
	mallopt(M_ARENA_MAX, 1);
	memset(&p, 0, sizeof(p));
	p.wh = wh;
	p.max = (int)wh->cfg->threads;
	p.slots = calloc((size_t)p.max, sizeof(*p.slots));
	p.used = calloc((size_t)p.max, sizeof(*p.used));
	if (p.slots == NULL || p.used == NULL) {
		log_err("out of memory");
		goto out;
	}
	pthread_mutex_init(&p.mu, NULL);
	pthread_attr_init(&p.attr);
	pthread_attr_setstacksize(&p.attr, WORKER_STACK_SIZE);
	pthread_mutex_lock(&p.mu);
	for (i = 0; i < POOL_START && i < p.max; i++)
		if (pool_spawn_locked(&p) == 0)
			started++;
	pthread_mutex_unlock(&p.mu);
	if (started > 0) {
		log_info("serving FastCGI with up to %d threads, database %s", p.max,
		    wh->cfg->database);
		do {
			if (sigwait(&stop, &sig) != 0)
				sig = SIGTERM;
		} while (sig == SIGHUP);	/* configuration is read once */
		log_info("signal %d: finishing the requests in progress", sig);
		if (stop_workers(&p) > 0)
			return 1;	/* the process exits; the pool stays */
		log_info("stopped; at most %d request threads ran at once", p.peak);
	}
	pthread_attr_destroy(&p.attr);
	pthread_mutex_destroy(&p.mu);
out:
	free(p.slots);
	free(p.used);
	return started > 0 ? 0 : 1;
}
