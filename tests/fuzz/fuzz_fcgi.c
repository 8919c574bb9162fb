/*
 * Fuzz target: the FastCGI framing layer as a request thread runs it, in
 * process: the bytes a connection sent go through fcgi_scan() (cgi/fcgi_frame.c),
 * whose name-value walk guards libfcgi; each management record is answered with
 * fcgi_management_answer() and taken out; a whole request is then handed to
 * libfcgi from memory through cgi/fcgi_adapter.c, as tgq-webhook hands it a
 * request it buffered, and libfcgi parses it and reads its body to the end.
 *
 * Input layout: the bytes as they arrived on one connection.  The limit on a
 * request is LIMIT bytes, so that inputs of libFuzzer's sizes reach it.
 *
 * Invariants: scanning the bytes in two steps, as they may arrive, gives what one
 * scan of all of them gives (unless the first step held a whole request); every management answer is one well-formed record
 * (its pairs sound); a request found whole is accepted by libfcgi, which finds as
 * many parameters as the walk counted pairs (and its FCGI_ROLE), and exactly the
 * body bytes the STDIN records carried, then the end of the stream; nothing
 * aborts or reads out of bounds (ASan), whatever the lengths say.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fastcgi.h>

#include "fuzz.h"
#include "webhook.h"

#define LIMIT 3000

static int	 devnull = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (fcgi_library_init() != 0 || (devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		abort();
	return 0;
}

static void
check_answer(const unsigned char *out, size_t n)
{
	size_t content;

	FUZZ_CHECK(n >= FCGI_HEADER_LEN && n % 8 == 0 && n <= FCGI_ANSWER_MAX);
	content = ((size_t)out[4] << 8) | out[5];
	FUZZ_CHECK(out[0] == FCGI_VERSION_1 && out[2] == 0 && out[3] == 0);
	FUZZ_CHECK(FCGI_HEADER_LEN + content + out[6] == n);
	if (out[1] == FCGI_GET_VALUES_RESULT)
		FUZZ_CHECK(fcgi_pairs_check(out + FCGI_HEADER_LEN, content, content) == 0);
	else
		FUZZ_CHECK(out[1] == FCGI_UNKNOWN_TYPE && content == 8);
}

/* Answers and takes out the management records, as fastcgi.c does; returns the
 * scan's last word. */
static enum fcgi_frame
scan_all(struct fcgi_scan *s, unsigned char *buf, size_t *len)
{
	unsigned char	 answer[FCGI_ANSWER_MAX];
	struct fcgi_values v = { 1024, 1024 };
	enum fcgi_frame	 got;
	size_t		 n;

	while ((got = fcgi_scan(s, buf, *len)) == FCGI_FRAME_MANAGEMENT) {
		FUZZ_CHECK(s->at + s->management_len <= *len);
		n = fcgi_management_answer(buf + s->at, s->management_len, &v, answer,
		    sizeof(answer));
		if (n == 0)
			return FCGI_FRAME_BAD_PARAMS;	/* the connection is closed */
		check_answer(answer, n);
		memmove(buf + s->at, buf + s->at + s->management_len,
		    *len - s->at - s->management_len);
		*len -= s->management_len;
	}
	return got;
}

/* The body bytes that the STDIN records of a whole request carry. */
static size_t
stdin_bytes(const unsigned char *buf, size_t len)
{
	size_t at = 0, content, total = 0;

	while (at + FCGI_HEADER_LEN <= len) {
		content = ((size_t)buf[at + 4] << 8) | buf[at + 5];
		if (buf[at + 1] == FCGI_STDIN)
			total += content;
		at += FCGI_HEADER_LEN + content + buf[at + 6];
	}
	return total;
}

/* libfcgi reads the request from memory, as tgq-webhook hands it a buffered one;
 * the answer goes to /dev/null, as tgq-webhook's goes to the socket. */
static void
libfcgi_parse(const unsigned char *buf, size_t len, size_t pairs)
{
	struct fcgi_link	*l;
	const char		*role;
	char			 sink[4096];
	size_t			 body = 0;
	ssize_t			 n;
	int			 answer_fd;

	if ((answer_fd = dup(devnull)) == -1 || (l = fcgi_link_new(answer_fd)) == NULL)
		abort();
	FUZZ_CHECK(fcgi_link_accept(l, buf, len) == 0);
	role = fcgi_link_param(l, "FCGI_ROLE");
	FUZZ_CHECK(role != NULL && strcmp(role, "RESPONDER") == 0);
	FUZZ_CHECK(fcgi_link_param_count(l) == pairs + 1);	/* and FCGI_ROLE */
	while ((n = fcgi_link_read(l, sink, sizeof(sink))) > 0)
		body += (size_t)n;
	FUZZ_CHECK(n == 0 && fcgi_link_body_ended(l));
	FUZZ_CHECK(body == stdin_bytes(buf, len));
	(void)fcgi_link_finish(l, 0);
	fcgi_link_free(l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fcgi_scan s, once;
	unsigned char	*buf, *copy;
	enum fcgi_frame	 got, all;
	size_t		 len = size, len_once = size;

	if ((buf = malloc(size + 1)) == NULL || (copy = malloc(size + 1)) == NULL)
		abort();
	memcpy(buf, data, size);
	memcpy(copy, data, size);
	fcgi_scan_begin(&once, LIMIT);
	all = scan_all(&once, copy, &len_once);
	FUZZ_CHECK(all >= FCGI_FRAME_NOT_OURS && all <= FCGI_FRAME_TOO_LARGE);
	/* The first third arrives, then the rest: the same word, unless the first
	 * third was a whole request (what follows it is then the next one's). */
	fcgi_scan_begin(&s, LIMIT);
	len = size / 3;
	got = scan_all(&s, buf, &len);
	if (got == FCGI_FRAME_PARTIAL) {
		/* What was taken out of the first third is not there any more. */
		memmove(buf + len, data + size / 3, size - size / 3);
		len += size - size / 3;
		got = scan_all(&s, buf, &len);
		FUZZ_CHECK(got == all);
		if (got == FCGI_FRAME_WHOLE)
			FUZZ_CHECK(len == len_once && memcmp(buf, copy, len) == 0);
	} else if (got != FCGI_FRAME_WHOLE) {
		FUZZ_CHECK(got == all);	/* more bytes never mend a refusal */
	}
	if (got == FCGI_FRAME_WHOLE)
		libfcgi_parse(buf, len, s.pairs.pairs);
	free(buf);
	free(copy);
	return 0;
}
