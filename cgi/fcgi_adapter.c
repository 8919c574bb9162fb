/*
 * The one file that drives libfcgi.  Nothing else in tgq-webhook includes
 * fcgiapp.h or knows what an FCGX_Request holds.
 *
 * libfcgi serves a connection with a thread that blocks on it, and opens and
 * closes its connections itself.  tgq-webhook serves many connections per thread
 * (fastcgi.c), answers management records itself and hands libfcgi a request
 * only once all of it has arrived (fcgi_frame.c).  To do that this file drives
 * libfcgi through two fields of FCGX_Request that fcgiapp.h puts under "Don't use
 * anything below here":
 *
 *   ipcFd           where libfcgi reads the request and writes the answer.  It is
 *                   set before each call: the connection's socket, or a memfd
 *                   that holds a request taken off the socket (libfcgi reads
 *                   only from descriptors).  The answer is always written to the
 *                   socket: fcgi_link_write() points ipcFd there for the write
 *                   and back after it.  After FCGX_Finish_r, ipcFd < 0 means
 *                   libfcgi closed the socket (writing the answer failed).
 *   keepConnection  after FCGX_Accept_r, the web server's FCGI_KEEP_CONN flag.
 *                   It is set to 1 before FCGX_Finish_r, so that libfcgi leaves
 *                   the connection open: whether it is kept is decided by the
 *                   caller, which also knows whether the peer left or the process
 *                   is stopping.
 *
 * What this file assumes of libfcgi (Debian's libfcgi0ldbl / libfcgi-dev 2.4.x,
 * whose fcgiapp.h declares the layout mirrored in struct expected_request below):
 *   - FCGX_InitRequest(req, -1, 0) allocates nothing; FCGX_Accept_r reads from
 *     ipcFd when ipcFd >= 0 and, when it cannot read a request there, closes
 *     ipcFd and goes on to accept a connection of its own on listen_sock: -1, so
 *     that fails at once and FCGX_Accept_r returns < 0.
 *   - FCGX_Detach makes libfcgi's own closes a plain close(), not a shutdown and
 *     a wait of up to 2 s for the peer's close.
 *   - FCGX_Finish_r closes ipcFd, and sets it to -1, only when keepConnection is
 *     0 or a stream failed; FCGX_Free(req, 0) frees the streams and parameters
 *     and closes nothing.
 *   - Streams read and write ipcFd as it is at the time of each read or write.
 *   - FCGX_Accept_r refuses to run before FCGX_Init.
 * Why it is safe: libfcgi is only ever called with a request that fcgi_frame.c
 * found whole and sound, so its blocking reads return at once, and the fields
 * are only read and written between libfcgi's calls, by the one thread that
 * serves the connection.  The static assertions below stop the build when
 * libfcgi's FCGX_Request is not the layout this was written against; a libfcgi
 * whose behaviour changed under the same layout is caught by the FastCGI tests
 * (tests/integration/test_fastcgi.py) and the fcgi fuzz target.
 */
#define _GNU_SOURCE	/* memfd_create */
#include <sys/mman.h>

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "webhook.h"

/* FCGX_Request as libfcgi 2.4.x lays it out. */
struct expected_request {
	int		 requestId;
	int		 role;
	FCGX_Stream	*in;
	FCGX_Stream	*out;
	FCGX_Stream	*err;
	char		**envp;
	struct Params	*paramsPtr;
	int		 ipcFd;
	int		 isBeginProcessed;
	int		 keepConnection;
	int		 appStatus;
	int		 nWriters;
	int		 flags;
	int		 listen_sock;
	int		 detached;
};

#define SAME_FIELD(f) \
	(offsetof(FCGX_Request, f) == offsetof(struct expected_request, f) && \
	 sizeof(((FCGX_Request *)0)->f) == sizeof(((struct expected_request *)0)->f))
_Static_assert(sizeof(FCGX_Request) == sizeof(struct expected_request),
    "libfcgi's FCGX_Request is not the 2.4.x layout fcgi_adapter.c drives");
_Static_assert(SAME_FIELD(in) && SAME_FIELD(out) && SAME_FIELD(envp),
    "libfcgi's FCGX_Request streams are not where fcgi_adapter.c expects them");
_Static_assert(SAME_FIELD(ipcFd),
    "libfcgi's FCGX_Request.ipcFd is not where fcgi_adapter.c expects it");
_Static_assert(SAME_FIELD(keepConnection),
    "libfcgi's FCGX_Request.keepConnection is not where fcgi_adapter.c expects it");
_Static_assert(SAME_FIELD(listen_sock) && SAME_FIELD(detached),
    "libfcgi's FCGX_Request.listen_sock and .detached are not where "
    "fcgi_adapter.c expects them");

/* libfcgi takes at most this much per FCGX_GetStr (an int). */
#define READ_MAX 65536

struct fcgi_link {
	/* req.ipcFd: where libfcgi reads the request, memfd or else sock (see the
	 * head comment). */
	FCGX_Request	 req;
	int		 sock;	/* the connection's; -1 once libfcgi closed it */
	int		 memfd;	/* the request taken off the socket; -1: none */
};

int
fcgi_library_init(void)
{
	/* libfcgi mallocs its stream buffers per request, in several threads; an
	 * arena per thread would keep their free memory resident. */
	mallopt(M_ARENA_MAX, 1);
	if (FCGX_Init() != 0) {
		log_err("libfcgi failed to start");
		return -1;
	}
	return 0;
}

int
fcgi_started_as_cgi(void)
{
	return FCGX_IsCGI();
}

struct fcgi_link *
fcgi_link_new(int sock)
{
	struct fcgi_link *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	/* listen_sock -1: a request libfcgi fails to read ends FCGX_Accept_r. */
	FCGX_InitRequest(&l->req, -1, 0);
	l->req.ipcFd = l->sock = sock;
	l->memfd = -1;
	/* libfcgi closes an unkept connection at the end of its request; the
	 * caller does that itself, so libfcgi is told to keep every one.  When it
	 * still closes one (a stream failed), detached makes that a plain close(). */
	l->req.keepConnection = 1;
	(void)FCGX_Detach(&l->req);
	return l;
}

void
fcgi_link_free(struct fcgi_link *l)
{
	if (l->sock >= 0)
		close(l->sock);
	if (l->memfd >= 0)
		close(l->memfd);
	l->req.ipcFd = -1;	/* closed above */
	FCGX_Free(&l->req, 0);
	free(l);
}

/* Puts buf[0..len) in a memfd and points libfcgi at it: it reads the request as
 * from a socket that holds all of it. */
static int
read_from_memory(struct fcgi_link *l, const unsigned char *buf, size_t len)
{
	size_t	 at = 0;
	ssize_t	 n;

	if ((l->memfd = memfd_create("tgq-request", MFD_CLOEXEC)) == -1)
		goto fail;
	while (at < len) {
		n = write(l->memfd, buf + at, len - at);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		at += (size_t)n;
	}
	if (lseek(l->memfd, 0, SEEK_SET) != 0)
		goto fail;
	l->req.ipcFd = l->memfd;
	return 0;
fail:
	log_err("buffering a FastCGI request: %s", strerror(errno));
	return -1;
}

int
fcgi_link_accept(struct fcgi_link *l, const unsigned char *buf, size_t len)
{
	if (buf != NULL && read_from_memory(l, buf, len) == -1)
		return -1;
	if (FCGX_Accept_r(&l->req) < 0) {
		/* libfcgi refused it, and closed what it read from. */
		if (l->memfd >= 0)
			l->memfd = -1;
		else
			l->sock = -1;
		return -1;
	}
	return 0;
}

const char *
fcgi_link_param(const struct fcgi_link *l, const char *name)
{
	return FCGX_GetParam(name, l->req.envp);
}

size_t
fcgi_link_param_count(const struct fcgi_link *l)
{
	size_t n = 0;

	while (l->req.envp[n] != NULL)
		n++;
	return n;
}

ssize_t
fcgi_link_read(struct fcgi_link *l, char *buf, size_t len)
{
	int n = FCGX_GetStr(buf, len > READ_MAX ? READ_MAX : (int)len, l->req.in);

	return n < 0 ? -1 : n;
}

int
fcgi_link_body_ended(const struct fcgi_link *l)
{
	return FCGX_HasSeenEOF(l->req.in) && FCGX_GetError(l->req.in) == 0;
}

int
fcgi_link_write(struct fcgi_link *l, const char *buf, size_t len)
{
	int n;

	/* libfcgi writes on req.ipcFd whenever its buffer fills. */
	l->req.ipcFd = l->sock;
	n = FCGX_PutStr(buf, (int)len, l->req.out);
	l->req.ipcFd = l->memfd >= 0 ? l->memfd : l->sock;
	return n == (int)len ? 0 : -1;
}

int
fcgi_link_finish(struct fcgi_link *l, size_t budget)
{
	char	 sink[1024];
	int	 keep, n;

	keep = l->req.keepConnection;	/* FCGI_KEEP_CONN, as FCGX_Accept_r read it */
	/* What is left of the body would be read as the next request's start. */
	while (budget > 0 && (n = FCGX_GetStr(sink, sizeof(sink), l->req.in)) > 0)
		budget -= (size_t)n < budget ? (size_t)n : budget;
	if (!FCGX_HasSeenEOF(l->req.in))
		keep = 0;
	l->req.keepConnection = 1;	/* see fcgi_link_new() */
	l->req.ipcFd = l->sock;
	FCGX_Finish_r(&l->req);
	if (l->req.ipcFd < 0)
		l->sock = -1;	/* libfcgi closed it: writing the answer failed */
	if (l->memfd >= 0) {
		close(l->memfd);
		l->memfd = -1;
	}
	return keep && l->sock >= 0;
}
