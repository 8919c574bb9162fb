/*
 * The FastCGI framing, read before libfcgi sees a byte: whether a connection's
 * bytes hold a whole request yet, whether its name-value pairs are sound, and the
 * answers to management records.
 *
 * A request thread serves many connections, and libfcgi reads blocking: it is only
 * handed a request once all of it is there, so that a slow or silent peer never
 * holds the thread.  libfcgi also trusts what it parses: a pair whose name length
 * is 2^31 - 2 makes it compute a negative size and abort, and it answers
 * FCGI_GET_VALUES into a fixed buffer, with the values of a server of one
 * connection.  So the pairs are walked here first, and management records are
 * answered here and taken out of the stream: libfcgi never sees one.
 */
#include <fastcgi.h>
#include <stdio.h>
#include <string.h>

#include "webhook.h"

void
fcgi_pairs_begin(struct fcgi_pairs *p, size_t limit)
{
	memset(p, 0, sizeof(*p));
	p->limit = limit;
}

/*
 * Each pair is a name length, a value length (one byte below 128, else four with
 * the top bit set), the name and the value.  A pair may be cut anywhere by the
 * end of a record, so the walk keeps its place between calls.
 */
int
fcgi_pairs_feed(struct fcgi_pairs *p, const unsigned char *buf, size_t len)
{
	size_t	 at = 0, n, room;

	if (len > p->limit - p->total)
		return -1;
	while (at < len) {
		if (p->skip > 0) {
			n = len - at < p->skip ? len - at : p->skip;
			p->skip -= n;
			at += n;
			continue;
		}
		if (p->len_bytes == 0) {
			p->len = buf[at] & 0x7f;
			p->len_bytes = buf[at++] & 0x80 ? 3 : 0;
			if (p->len_bytes > 0)
				continue;
		} else {
			p->len = p->len << 8 | buf[at++];
			if (--p->len_bytes > 0)
				continue;
		}
		/* A length is complete: it must fit in what the limit leaves. */
		room = p->limit - p->total - at;
		if (!p->value_next) {
			if (p->len > room)
				return -1;
			p->name_len = p->len;
			p->value_next = 1;
		} else {
			if (p->len > room || p->name_len > room - p->len)
				return -1;
			p->skip = p->name_len + p->len;
			p->value_next = 0;
			p->pairs++;
		}
	}
	p->total += len;
	return 0;
}

int
fcgi_pairs_end(const struct fcgi_pairs *p)
{
	return p->skip == 0 && p->len_bytes == 0 && !p->value_next ? 0 : -1;
}

int
fcgi_pairs_check(const unsigned char *buf, size_t len, size_t limit)
{
	struct fcgi_pairs p;

	fcgi_pairs_begin(&p, limit);
	if (fcgi_pairs_feed(&p, buf, len) == -1)
		return -1;
	return fcgi_pairs_end(&p);
}

void
fcgi_scan_begin(struct fcgi_scan *s, size_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
	s->id = -1;
	fcgi_pairs_begin(&s->pairs, limit);
}

/*
 * Walks the records of buf[0..len), all that the connection has sent, from s->at:
 * management records (request id 0), then one responder request: BEGIN_REQUEST,
 * PARAMS up to its empty record, STDIN up to its empty record, and nothing after
 * it; none of BEGIN_REQUEST and the two empty records padded.  Anything else (another role, a second request before the answer, an abort,
 * a record out of order) is not ours.  s->at moves past each record accepted, so
 * a call with more bytes goes on where the last one stopped.
 */
enum fcgi_frame
fcgi_scan(struct fcgi_scan *s, const unsigned char *buf, size_t len)
{
	size_t	 content, end;
	int	 type, rid;

	while (len >= s->at && len - s->at >= FCGI_HEADER_LEN) {
		const unsigned char *h = buf + s->at;

		if (h[0] != FCGI_VERSION_1)
			return FCGI_FRAME_NOT_OURS;
		type = h[1];
		rid = (h[2] << 8) | h[3];
		content = ((size_t)h[4] << 8) | h[5];
		end = s->at + FCGI_HEADER_LEN + content + h[6];
		if (rid == FCGI_NULL_REQUEST_ID && (type == FCGI_BEGIN_REQUEST ||
		    type == FCGI_PARAMS || type == FCGI_STDIN ||
		    type == FCGI_ABORT_REQUEST))
			return FCGI_FRAME_NOT_OURS;
		if (end > s->limit)
			return FCGI_FRAME_TOO_LARGE;
		/* libfcgi forgets the padding of these three records and reads it
		 * as the next record's header: it would see records not seen here. */
		if (h[6] != 0 && rid != FCGI_NULL_REQUEST_ID &&
		    (type == FCGI_BEGIN_REQUEST || content == 0))
			return FCGI_FRAME_NOT_OURS;
		if (len < end)
			return FCGI_FRAME_PARTIAL;
		if (rid == FCGI_NULL_REQUEST_ID) {
			s->management_len = end - s->at;
			return FCGI_FRAME_MANAGEMENT;
		} else if (type == FCGI_BEGIN_REQUEST) {
			const unsigned char *body = h + FCGI_HEADER_LEN;

			if (s->id != -1 || content != 8 ||
			    ((body[0] << 8) | body[1]) != FCGI_RESPONDER)
				return FCGI_FRAME_NOT_OURS;
			s->id = rid;
		} else if (rid != s->id) {
			return FCGI_FRAME_NOT_OURS;
		} else if (type == FCGI_PARAMS && !s->params_done) {
			if (content == 0) {
				if (fcgi_pairs_end(&s->pairs) == -1)
					return FCGI_FRAME_BAD_PARAMS;
				s->params_done = 1;
			} else if (fcgi_pairs_feed(&s->pairs, h + FCGI_HEADER_LEN,
			    content) == -1)
				return FCGI_FRAME_BAD_PARAMS;
		} else if (type == FCGI_STDIN && s->params_done) {
			/* Nothing may follow before the answer: without multiplexing,
			 * the web server waits for it. */
			if (content == 0)
				return end == len ? FCGI_FRAME_WHOLE : FCGI_FRAME_NOT_OURS;
		} else {
			return FCGI_FRAME_NOT_OURS;
		}
		s->at = end;
	}
	return FCGI_FRAME_PARTIAL;
}

enum fcgi_frame
fcgi_whole_request(const unsigned char *buf, size_t len, size_t limit)
{
	struct fcgi_scan s;

	fcgi_scan_begin(&s, limit);
	return fcgi_scan(&s, buf, len);
}

/* The length of the pair's name or value at buf[*at], which fcgi_pairs_check()
 * has found sound. */
static size_t
pair_len(const unsigned char *buf, size_t *at)
{
	size_t n = buf[(*at)++];

	if (n & 0x80) {
		n = (n & 0x7f) << 24 | (size_t)buf[*at] << 16 |
		    (size_t)buf[*at + 1] << 8 | buf[*at + 2];
		*at += 3;
	}
	return n;
}

static void
header(unsigned char *out, int type, size_t content, size_t padding)
{
	out[0] = FCGI_VERSION_1;
	out[1] = (unsigned char)type;
	out[2] = out[3] = 0;	/* FCGI_NULL_REQUEST_ID */
	out[4] = (unsigned char)(content >> 8);
	out[5] = (unsigned char)content;
	out[6] = (unsigned char)padding;
	out[7] = 0;
}

/*
 * FCGI_GET_VALUES asks for variables by name (the values are empty); the answer
 * gives those it knows, each once, in the order asked.  There are three, so the
 * answer is short whatever the query holds.
 */
static size_t
get_values_result(const unsigned char *query, size_t len,
    const struct fcgi_values *v, unsigned char *out, size_t outlen)
{
	static const char *const names[] = {
		FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS
	};
	unsigned char	 content[3 * (2 + 15 + 20)];
	char		 value[21];
	size_t		 at = 0, n = 0, name_len, value_len, padding, i, k;
	unsigned	 given = 0;

	if (fcgi_pairs_check(query, len, len) == -1)
		return 0;
	while (at < len) {
		name_len = pair_len(query, &at);
		value_len = pair_len(query, &at);
		for (i = 0; i < 3; i++)
			if (strlen(names[i]) == name_len &&
			    memcmp(names[i], query + at, name_len) == 0)
				break;
		at += name_len + value_len;
		if (i == 3 || (given & (1u << i)) != 0)
			continue;
		given |= (1u << i);
		snprintf(value, sizeof(value), "%lu", i == 0 ? v->max_conns :
		    i == 1 ? v->max_reqs : 0UL);
		k = strlen(value);
		content[n++] = (unsigned char)name_len;
		content[n++] = (unsigned char)k;
		memcpy(content + n, names[i], name_len);
		memcpy(content + n + name_len, value, k);
		n += name_len + k;
	}
	padding = (8 - n % 8) % 8;
	if (outlen < FCGI_HEADER_LEN + n + padding)
		return 0;
	header(out, FCGI_GET_VALUES_RESULT, n, padding);
	memcpy(out + FCGI_HEADER_LEN, content, n);
	memset(out + FCGI_HEADER_LEN + n, 0, padding);
	return FCGI_HEADER_LEN + n + padding;
}

size_t
fcgi_management_answer(const unsigned char *rec, size_t len,
    const struct fcgi_values *v, unsigned char *out, size_t outlen)
{
	size_t content;

	if (len < FCGI_HEADER_LEN)
		return 0;
	content = ((size_t)rec[4] << 8) | rec[5];
	if (len < FCGI_HEADER_LEN + content + rec[6])
		return 0;
	if (rec[1] == FCGI_GET_VALUES)
		return get_values_result(rec + FCGI_HEADER_LEN, content, v, out,
		    outlen);
	if (outlen < FCGI_HEADER_LEN + sizeof(FCGI_UnknownTypeBody))
		return 0;
	header(out, FCGI_UNKNOWN_TYPE, sizeof(FCGI_UnknownTypeBody), 0);
	memset(out + FCGI_HEADER_LEN, 0, sizeof(FCGI_UnknownTypeBody));
	out[FCGI_HEADER_LEN] = rec[1];
	return FCGI_HEADER_LEN + sizeof(FCGI_UnknownTypeBody);
}
