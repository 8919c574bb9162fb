/*
 * The ceiling of the FastCGI hop for `make bench`: one process, one thread, epoll,
 * connections kept as nginx asks (FCGI_KEEP_CONN), every request answered with a
 * 200 as soon as its body has arrived, nothing stored.  No FastCGI responder can
 * answer nginx faster on this machine, so tgq's rate divided by this one is the
 * share of the hop tgq's work leaves.  Started by spawn-fcgi: fd 0 is the
 * listening socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER_LEN	 8
#define BEGIN_REQUEST	 1
#define END_REQUEST	 3
#define STDIN		 5
#define STDOUT		 6
#define KEEP_CONN	 1
#define IN_CAP		 (1 << 17)
#define OUT_CAP		 (1 << 16)

struct conn {
	int		 fd;
	int		 keep;
	size_t		 in_len, out_len, out_off;
	unsigned char	 in[IN_CAP];
	unsigned char	 out[OUT_CAP];
};

static const char answer[] = "Status: 200 OK\r\nContent-Type: text/plain\r\n"
    "Content-Length: 3\r\n\r\nok\n";

static void
put_record(struct conn *c, int type, unsigned id, const void *body, size_t len)
{
	unsigned char	*p = c->out + c->out_len;

	p[0] = 1;
	p[1] = type;
	p[2] = id >> 8;
	p[3] = id & 0xff;
	p[4] = len >> 8;
	p[5] = len & 0xff;
	p[6] = 0;
	p[7] = 0;
	memcpy(p + HEADER_LEN, body, len);
	c->out_len += HEADER_LEN + len;
}

static void
answer_request(struct conn *c, unsigned id)
{
	static const unsigned char end[8];	/* appStatus 0, REQUEST_COMPLETE */

	if (c->out_len + 3 * HEADER_LEN + sizeof(answer) + sizeof(end) > OUT_CAP)
		return;		/* cannot happen with nginx's one request at a time */
	put_record(c, STDOUT, id, answer, sizeof(answer) - 1);
	put_record(c, STDOUT, id, "", 0);
	put_record(c, END_REQUEST, id, end, sizeof(end));
}

/* Consumes the whole records in c->in; returns -1 on a malformed stream. */
static int
parse_records(struct conn *c)
{
	size_t	 off = 0;

	while (c->in_len - off >= HEADER_LEN) {
		unsigned char	*p = c->in + off;
		unsigned	 id = (p[2] << 8) | p[3];
		size_t		 len = (p[4] << 8) | p[5];
		size_t		 whole = HEADER_LEN + len + p[6];

		if (p[0] != 1)
			return -1;
		if (c->in_len - off < whole)
			break;
		if (p[1] == BEGIN_REQUEST && len >= 3)
			c->keep = p[HEADER_LEN + 2] & KEEP_CONN;
		else if (p[1] == STDIN && len == 0)
			answer_request(c, id);
		off += whole;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

/* Returns 1 while the connection stays open. */
static int
flush_out(int ep, struct conn *c)
{
	struct epoll_event	 ev = { .data.ptr = c };

	while (c->out_off < c->out_len) {
		ssize_t	 n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EAGAIN) {
			ev.events = EPOLLIN | EPOLLOUT;
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			return 1;
		}
		if (n <= 0)
			return 0;
		c->out_off += n;
	}
	if (c->out_len > 0 && !c->keep)
		return 0;
	c->out_len = c->out_off = 0;
	ev.events = EPOLLIN;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	return 1;
}

static int
serve(int ep, struct conn *c)
{
	for (;;) {
		ssize_t	 n;

		if (c->in_len == IN_CAP)
			return 0;
		n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return 0;
		c->in_len += n;
		if (parse_records(c) < 0)
			return 0;
	}
	return flush_out(ep, c);
}

int
main(void)
{
	struct epoll_event	 ev, evs[64];
	int			 ep, i, n;

	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(0);
	if (ep < 0 || fcntl(0, F_SETFL, O_NONBLOCK) < 0)
		return 1;
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0)
		return 1;
	for (;;) {
		n = epoll_wait(ep, evs, 64, -1);
		for (i = 0; i < n; i++) {
			struct conn	*c = evs[i].data.ptr;

			if (c == NULL) {
				int	 fd;

				while ((fd = accept4(0, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					if ((c = calloc(1, sizeof(*c))) == NULL) {
						close(fd);
						continue;
					}
					c->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (((evs[i].events & EPOLLOUT) ? flush_out(ep, c) : 1) &&
			    serve(ep, c))
				continue;
			close(c->fd);
			free(c);
		}
	}
}
