/*
 * Whether a FastCGI connection's unread bytes hold a whole request yet.  A request
 * thread serves many connections, and libfcgi reads blocking: it is only handed a
 * request once all of it is there, so that a slow or silent peer never holds the
 * thread.  Only the record headers are read here; libfcgi parses the rest.
 */
#include <fastcgi.h>

#include "webhook.h"

/*
 * Walks the records in buf[0..len), which is all the connection has sent:
 * management records (request id 0, answered by libfcgi), then one responder
 * request: BEGIN_REQUEST, PARAMS up to its empty record, STDIN up to its empty
 * record, and nothing after it.  Anything else (another role, a second request
 * before the answer, an abort, a record out of order) is not ours.
 */
enum fcgi_frame
fcgi_whole_request(const unsigned char *buf, size_t len)
{
	size_t	 at = 0, content, padding;
	int	 id = -1, params_done = 0, type, rid;

	while (len - at >= FCGI_HEADER_LEN) {
		const unsigned char *h = buf + at;

		if (h[0] != FCGI_VERSION_1)
			return FCGI_FRAME_NOT_OURS;
		type = h[1];
		rid = (h[2] << 8) | h[3];
		content = ((size_t)h[4] << 8) | h[5];
		padding = h[6];
		if (len - at - FCGI_HEADER_LEN < content + padding)
			return FCGI_FRAME_PARTIAL;
		if (rid == FCGI_NULL_REQUEST_ID) {
			if (type == FCGI_BEGIN_REQUEST || type == FCGI_PARAMS ||
			    type == FCGI_STDIN || type == FCGI_ABORT_REQUEST)
				return FCGI_FRAME_NOT_OURS;
		} else if (type == FCGI_BEGIN_REQUEST) {
			const unsigned char *body = h + FCGI_HEADER_LEN;

			if (id != -1 || content != 8 ||
			    ((body[0] << 8) | body[1]) != FCGI_RESPONDER)
				return FCGI_FRAME_NOT_OURS;
			id = rid;
		} else if (rid != id) {
			return FCGI_FRAME_NOT_OURS;
		} else if (type == FCGI_PARAMS && !params_done) {
			params_done = content == 0;
		} else if (type == FCGI_STDIN && params_done) {
			/* Nothing may follow before the answer: without multiplexing,
			 * the web server waits for it. */
			if (content == 0)
				return at + FCGI_HEADER_LEN + padding == len ?
				    FCGI_FRAME_WHOLE : FCGI_FRAME_NOT_OURS;
		} else {
			return FCGI_FRAME_NOT_OURS;
		}
		at += FCGI_HEADER_LEN + content + padding;
	}
	return FCGI_FRAME_PARTIAL;
}
