/*
 * fcgi_whole_request(): when a request thread hands a FastCGI connection's bytes
 * to libfcgi.  Each case builds the records the way nginx sends them.
 */
#include <fastcgi.h>
#include <string.h>

#include "check.h"
#include "webhook.h"

struct wire {
	unsigned char	 buf[4096];
	size_t		 len;
};

static void
record(struct wire *w, int type, int id, const void *content, size_t len,
    size_t padding)
{
	unsigned char *h = w->buf + w->len;

	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = (unsigned char)padding;
	h[7] = 0;
	memcpy(h + FCGI_HEADER_LEN, content, len);
	memset(h + FCGI_HEADER_LEN + len, 0, padding);
	w->len += FCGI_HEADER_LEN + len + padding;
}

static void
begin(struct wire *w, int id, int role)
{
	unsigned char body[8] = { (unsigned char)(role >> 8), (unsigned char)role,
	    FCGI_KEEP_CONN, 0, 0, 0, 0, 0 };

	record(w, FCGI_BEGIN_REQUEST, id, body, sizeof(body), 0);
}

/* BEGIN_REQUEST, two PARAMS records, the empty one, a body in two STDIN records
 * (the second padded), the empty one: what nginx sends for a POST. */
static void
whole_request(struct wire *w, int id)
{
	static const char pairs[] = "\x0e\x04REQUEST_METHODPOST";
	static const char more[] = "\x0e\x02CONTENT_LENGTH27";

	begin(w, id, FCGI_RESPONDER);
	record(w, FCGI_PARAMS, id, pairs, sizeof(pairs) - 1, 0);
	record(w, FCGI_PARAMS, id, more, sizeof(more) - 1, 6);
	record(w, FCGI_PARAMS, id, "", 0, 0);
	record(w, FCGI_STDIN, id, "{\"update_id\":", 13, 0);
	record(w, FCGI_STDIN, id, "1,\"x\":{}}    ", 14, 2);
	record(w, FCGI_STDIN, id, "", 0, 0);
}

static enum fcgi_frame
check_wire(const struct wire *w)
{
	return fcgi_whole_request(w->buf, w->len);
}

static void
test_whole_and_every_prefix(void)
{
	struct wire	 w = { .len = 0 };
	size_t		 cut;
	int		 partial = 1;

	whole_request(&w, 1);
	CHECK("frame_whole", check_wire(&w) == FCGI_FRAME_WHOLE);
	for (cut = 0; cut < w.len; cut++)
		if (fcgi_whole_request(w.buf, cut) != FCGI_FRAME_PARTIAL)
			partial = 0;
	CHECK("frame_every_prefix_partial", partial);
}

static void
test_management_records(void)
{
	static const char query[] = "\x0e\x00" "FCGI_MAX_CONNS";
	struct wire w = { .len = 0 };

	record(&w, FCGI_GET_VALUES, FCGI_NULL_REQUEST_ID, query, sizeof(query) - 1, 0);
	CHECK("frame_management_alone_partial", check_wire(&w) == FCGI_FRAME_PARTIAL);
	whole_request(&w, 3);
	CHECK("frame_management_then_request_whole", check_wire(&w) ==
	    FCGI_FRAME_WHOLE);
}

static void
test_not_ours(void)
{
	struct wire w;

	w.len = 0;
	whole_request(&w, 1);
	whole_request(&w, 2);
	CHECK("frame_two_requests_at_once", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	whole_request(&w, 1);
	record(&w, FCGI_GET_VALUES, FCGI_NULL_REQUEST_ID, "", 0, 0);
	CHECK("frame_bytes_after_the_request", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_AUTHORIZER);
	CHECK("frame_authorizer", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	begin(&w, 2, FCGI_RESPONDER);
	CHECK("frame_second_begin", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_STDIN, 1, "x", 1, 0);
	CHECK("frame_stdin_before_params_end", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 2, "", 0, 0);
	CHECK("frame_other_request_id", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_ABORT_REQUEST, 1, "", 0, 0);
	CHECK("frame_abort", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	CHECK("frame_params_before_begin", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	record(&w, FCGI_BEGIN_REQUEST, 1, "\0\1\1\0\0\0", 6, 0);
	CHECK("frame_short_begin", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	whole_request(&w, 1);
	w.buf[0] = 2;
	CHECK("frame_version_2", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	record(&w, FCGI_BEGIN_REQUEST, FCGI_NULL_REQUEST_ID, "\0\1\1\0\0\0\0\0", 8, 0);
	CHECK("frame_begin_with_id_0", check_wire(&w) == FCGI_FRAME_NOT_OURS);
}

/* Record lengths near the 16-bit limit, and padding, must not run past len. */
static void
test_lengths(void)
{
	static unsigned char	 big[FCGI_HEADER_LEN + 0xffff + 255];
	struct wire		 w = { .len = 0 };

	begin(&w, 1, FCGI_RESPONDER);
	memcpy(big, w.buf, w.len);
	big[w.len] = FCGI_VERSION_1;
	big[w.len + 1] = FCGI_PARAMS;
	big[w.len + 3] = 1;
	big[w.len + 4] = 0xff;
	big[w.len + 5] = 0xff;
	big[w.len + 6] = 0xff;
	CHECK("frame_long_record_partial", fcgi_whole_request(big, sizeof(big)) ==
	    FCGI_FRAME_PARTIAL);
	CHECK("frame_empty_partial", fcgi_whole_request(big, 0) == FCGI_FRAME_PARTIAL);
}

int
main(void)
{
	test_whole_and_every_prefix();
	test_management_records();
	test_not_ours();
	test_lengths();
	return check_exit();
}
