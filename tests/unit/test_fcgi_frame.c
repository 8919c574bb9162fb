/*
 * fcgi_frame.c: when a request thread hands a FastCGI connection's bytes to
 * libfcgi (fcgi_scan, fcgi_whole_request), the walk over name-value pairs that
 * keeps lengths libfcgi would overflow on from reaching it (fcgi_pairs_*), and
 * the answers to management records.  Each case builds the records the way nginx
 * sends them.
 */
#include <fastcgi.h>
#include <string.h>

#include "check.h"
#include "webhook.h"

/* tgq-webhook's limit with the default max_body: 1 MiB and 64 KiB. */
#define LIMIT (1024 * 1024 + 64 * 1024)

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
	static const char more[] = "\x0e\x02" "CONTENT_LENGTH27";

	begin(w, id, FCGI_RESPONDER);
	record(w, FCGI_PARAMS, id, pairs, sizeof(pairs) - 1, 0);
	record(w, FCGI_PARAMS, id, more, sizeof(more) - 1, 6);
	record(w, FCGI_PARAMS, id, "", 0, 0);
	record(w, FCGI_STDIN, id, "{\"update_id\":", 13, 0);
	record(w, FCGI_STDIN, id, "1,\"x\":{}}    ", 14, 2);
	record(w, FCGI_STDIN, id, "", 0, 0);
}

/* Takes len bytes at at out of the wire, as a request thread takes out a
 * management record it answered.  Through a copy: valgrind takes a fortified
 * memmove for a memcpy of overlapping bytes. */
static void
take_out(struct wire *w, size_t at, size_t len)
{
	static unsigned char rest[sizeof(w->buf)];

	memcpy(rest, w->buf + at + len, w->len - at - len);
	memcpy(w->buf + at, rest, w->len - at - len);
	w->len -= len;
}

static enum fcgi_frame
check_wire(const struct wire *w)
{
	return fcgi_whole_request(w->buf, w->len, LIMIT);
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
		if (fcgi_whole_request(w.buf, cut, LIMIT) != FCGI_FRAME_PARTIAL)
			partial = 0;
	CHECK("frame_every_prefix_partial", partial);
}

/* Management records are found wherever they are, for the caller to answer and
 * take out; the scan then goes on from the same place. */
static void
test_management_records(void)
{
	static const char query[] = "\x0e\x00" "FCGI_MAX_CONNS";
	struct wire	 w = { .len = 0 };
	struct fcgi_scan s;
	size_t		 rec = FCGI_HEADER_LEN + sizeof(query) - 1, at;

	record(&w, FCGI_GET_VALUES, FCGI_NULL_REQUEST_ID, query, sizeof(query) - 1, 0);
	CHECK("frame_management_alone", check_wire(&w) == FCGI_FRAME_MANAGEMENT);
	CHECK("frame_management_half_partial", fcgi_whole_request(w.buf, rec - 1,
	    LIMIT) == FCGI_FRAME_PARTIAL);
	whole_request(&w, 3);
	fcgi_scan_begin(&s, LIMIT);
	CHECK("frame_management_first", fcgi_scan(&s, w.buf, w.len) ==
	    FCGI_FRAME_MANAGEMENT && s.at == 0 && s.management_len == rec);
	take_out(&w, 0, rec);
	CHECK("frame_management_taken_out_whole", fcgi_scan(&s, w.buf, w.len) ==
	    FCGI_FRAME_WHOLE);

	/* Within a request: after its BEGIN_REQUEST. */
	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	at = w.len;
	record(&w, 42, FCGI_NULL_REQUEST_ID, "ab", 2, 6);
	record(&w, FCGI_PARAMS, 1, "\x01\x01xy", 4, 4);
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	record(&w, FCGI_STDIN, 1, "", 0, 0);
	fcgi_scan_begin(&s, LIMIT);
	CHECK("frame_management_within", fcgi_scan(&s, w.buf, w.len) ==
	    FCGI_FRAME_MANAGEMENT && s.at == at && s.management_len == 16);
	take_out(&w, at, 16);
	CHECK("frame_management_within_taken_out", fcgi_scan(&s, w.buf, w.len) ==
	    FCGI_FRAME_WHOLE);
}

/* The scan keeps its place: bytes arriving one at a time give what all at once
 * give, and never a whole request early. */
static void
test_scan_goes_on(void)
{
	struct wire	 w = { .len = 0 };
	struct fcgi_scan s;
	size_t		 n;
	int		 early = 0;
	enum fcgi_frame	 got = FCGI_FRAME_PARTIAL;

	whole_request(&w, 7);
	fcgi_scan_begin(&s, LIMIT);
	for (n = 0; n <= w.len; n++) {
		got = fcgi_scan(&s, w.buf, n);
		if (n < w.len && got != FCGI_FRAME_PARTIAL)
			early = 1;
	}
	CHECK("frame_scan_byte_by_byte", !early && got == FCGI_FRAME_WHOLE);
}

/* libfcgi forgets the padding of BEGIN_REQUEST and of the empty records and
 * reads it as a header: such padding is refused. */
static void
test_padding_libfcgi_misreads(void)
{
	struct wire w;

	w.len = 0;
	record(&w, FCGI_BEGIN_REQUEST, 1, "\0\1\1\0\0\0\0\0", 8, 8);
	CHECK("frame_padded_begin", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "", 0, 4);
	CHECK("frame_padded_params_end", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	record(&w, FCGI_STDIN, 1, "", 0, 8);
	CHECK("frame_padded_stdin_end", check_wire(&w) == FCGI_FRAME_NOT_OURS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "\x01\x01xy", 4, 4);
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	record(&w, FCGI_STDIN, 1, "{}", 2, 6);
	record(&w, FCGI_STDIN, 1, "", 0, 0);
	CHECK("frame_padded_content_whole", check_wire(&w) == FCGI_FRAME_WHOLE);
}

/* PARAMS whose pairs' lengths libfcgi would add up in an int, or that run past
 * the pairs sent: refused before libfcgi reads them. */
static void
test_params_lengths(void)
{
	static const char ok[] = "\x0e\x04REQUEST_METHODPOST";
	struct wire w;

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "\xff\xff\xff\xfe\x01" "AAAA", 9, 7);
	CHECK("frame_params_2p31_minus_2_plus_1", check_wire(&w) ==
	    FCGI_FRAME_BAD_PARAMS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "\xc0\0\0\0\xc0\0\0\0BBBB", 12, 4);
	CHECK("frame_params_2p30_plus_2p30", check_wire(&w) == FCGI_FRAME_BAD_PARAMS);

	/* The four bytes of a length cut by the end of a record. */
	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "\x0e\x04REQUEST_METHODPOST\xff\xff", 22, 2);
	record(&w, FCGI_PARAMS, 1, "\xff\xfe\x01xyz", 6, 2);
	CHECK("frame_params_length_cut_by_record", check_wire(&w) ==
	    FCGI_FRAME_BAD_PARAMS);

	/* A pair longer than the pairs sent, within the limit. */
	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "\x05\x05" "abc", 5, 3);
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	CHECK("frame_params_pair_cut_short", check_wire(&w) == FCGI_FRAME_BAD_PARAMS);

	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, "\x0e", 1, 7);
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	CHECK("frame_params_value_length_missing", check_wire(&w) ==
	    FCGI_FRAME_BAD_PARAMS);

	/* A pair cut anywhere between records is fine. */
	w.len = 0;
	begin(&w, 1, FCGI_RESPONDER);
	record(&w, FCGI_PARAMS, 1, ok, 9, 7);
	record(&w, FCGI_PARAMS, 1, ok + 9, sizeof(ok) - 1 - 9, 0);
	record(&w, FCGI_PARAMS, 1, "", 0, 0);
	record(&w, FCGI_STDIN, 1, "", 0, 0);
	CHECK("frame_params_pair_across_records", check_wire(&w) == FCGI_FRAME_WHOLE);
}

static void
test_pairs(void)
{
	static const unsigned char four[] = "\x80\0\0\x03\x80\0\0\x02" "abcde";
	static const unsigned char two[] = "\x01\x02" "abc\x02\x00" "de";
	struct fcgi_pairs p;
	size_t		 i;
	int		 fed = 0;

	CHECK("pairs_empty", fcgi_pairs_check(two, 0, 10) == 0);
	CHECK("pairs_two", fcgi_pairs_check(two, 9, 9) == 0);
	CHECK("pairs_four_byte_lengths", fcgi_pairs_check(four, 13, 13) == 0);
	CHECK("pairs_cut_in_value", fcgi_pairs_check(two, 8, 100) == -1);
	CHECK("pairs_cut_in_length", fcgi_pairs_check(four, 3, 100) == -1);
	CHECK("pairs_over_limit", fcgi_pairs_check(two, 9, 8) == -1);
	CHECK("pairs_length_over_limit", fcgi_pairs_check(
	    (const unsigned char *)"\x01\x09" "ab", 4, 10) == -1);
	CHECK("pairs_2p31_minus_1", fcgi_pairs_check(
	    (const unsigned char *)"\xff\xff\xff\xff\x01", 5, 0x7fffffff) == -1);
	fcgi_pairs_begin(&p, 13);
	for (i = 0; i < 13; i++)
		fed |= fcgi_pairs_feed(&p, four + i, 1);
	CHECK("pairs_fed_byte_by_byte", fed == 0 && fcgi_pairs_end(&p) == 0 &&
	    p.pairs == 1);
}

/* The answer record's content, after checking its header. */
static const unsigned char *
answer_content(const unsigned char *out, size_t n, int type, size_t *len)
{
	*len = ((size_t)out[4] << 8) | out[5];
	if (n < FCGI_HEADER_LEN || n % 8 != 0 || out[0] != FCGI_VERSION_1 ||
	    out[1] != type || out[2] != 0 || out[3] != 0 ||
	    FCGI_HEADER_LEN + *len + out[6] != n)
		return NULL;
	return out + FCGI_HEADER_LEN;
}

static void
test_management_answers(void)
{
	static const char all[] = "\x0f\x00" "FCGI_MPXS_CONNS" "\x0e\x00" "FCGI_MAX_CONNS"
	    "\x05\x00" "OTHER" "\x0e\x00" "FCGI_MAX_CONNS" "\x0d\x00" "FCGI_MAX_REQS";
	static const char want[] = "\x0f\x01" "FCGI_MPXS_CONNS" "0" "\x0e\x03"
	    "FCGI_MAX_CONNS" "500" "\x0d\x03" "FCGI_MAX_REQS" "400";
	struct fcgi_values v = { 500, 400 };
	unsigned char	 out[FCGI_ANSWER_MAX];
	const unsigned char *content;
	struct wire	 w = { .len = 0 };
	size_t		 n, len;

	record(&w, FCGI_GET_VALUES, 0, all, sizeof(all) - 1, 0);
	n = fcgi_management_answer(w.buf, w.len, &v, out, sizeof(out));
	content = answer_content(out, n, FCGI_GET_VALUES_RESULT, &len);
	CHECK("management_get_values_asked_once_each", content != NULL &&
	    len == sizeof(want) - 1 && memcmp(content, want, len) == 0);

	w.len = 0;
	record(&w, FCGI_GET_VALUES, 0, "\x0f\x00" "FCGI_MPXS_CONNS", 17, 7);
	n = fcgi_management_answer(w.buf, w.len, &v, out, sizeof(out));
	content = answer_content(out, n, FCGI_GET_VALUES_RESULT, &len);
	CHECK("management_get_values_only_asked", content != NULL && len == 18 &&
	    memcmp(content, "\x0f\x01" "FCGI_MPXS_CONNS" "0", 18) == 0);

	w.len = 0;
	record(&w, FCGI_GET_VALUES, 0, "", 0, 0);
	n = fcgi_management_answer(w.buf, w.len, &v, out, sizeof(out));
	content = answer_content(out, n, FCGI_GET_VALUES_RESULT, &len);
	CHECK("management_get_values_none", content != NULL && len == 0);

	w.len = 0;
	record(&w, FCGI_GET_VALUES, 0, "\xc0\0\0\0\xc0\0\0\0BBBB", 12, 4);
	CHECK("management_get_values_overflow", fcgi_management_answer(w.buf,
	    w.len, &v, out, sizeof(out)) == 0);

	w.len = 0;
	record(&w, 42, 0, "ab", 2, 6);
	n = fcgi_management_answer(w.buf, w.len, &v, out, sizeof(out));
	content = answer_content(out, n, FCGI_UNKNOWN_TYPE, &len);
	CHECK("management_unknown_type", content != NULL && len == 8 &&
	    memcmp(content, "\x2a\0\0\0\0\0\0\0", 8) == 0);
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
	CHECK("frame_long_record_partial", fcgi_whole_request(big, sizeof(big),
	    LIMIT) == FCGI_FRAME_PARTIAL);
	CHECK("frame_empty_partial", fcgi_whole_request(big, 0, LIMIT) ==
	    FCGI_FRAME_PARTIAL);
	CHECK("frame_record_beyond_limit", fcgi_whole_request(big, w.len + 8,
	    w.len + FCGI_HEADER_LEN + 0xffff + 254) == FCGI_FRAME_TOO_LARGE);
	CHECK("frame_record_at_limit", fcgi_whole_request(big, w.len + 8,
	    w.len + FCGI_HEADER_LEN + 0xffff + 255) == FCGI_FRAME_PARTIAL);
}

int
main(void)
{
	test_whole_and_every_prefix();
	test_management_records();
	test_scan_goes_on();
	test_not_ours();
	test_padding_libfcgi_misreads();
	test_lengths();
	test_params_lengths();
	test_pairs();
	test_management_answers();
	return check_exit();
}
