/*
 * Bot API calls on the network: one libcurl multi handle, so several calls are in
 * flight at once over kept-alive connections, driven by the drain's event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "drain.h"
#include "localapi.h"	/* struct raw_stream */

struct transfer {
	struct sender_rider	 rider;		/* done NULL: a call of ours */
	int64_t			 id;
	CURL			*easy;
	char			*url;		/* holds the token: wiped when done */
	char			*body;
	struct botapi_buffer	 answer;
	char			 errbuf[CURL_ERROR_SIZE];
	struct transfer		*next;
	/* A call passed through: the caller's answer buffers, its body's file
	 * (read from read_at) and the headers it was sent with. */
	const struct raw_call	*raw;
	int			 raw_body_fd;
	int64_t			 read_at;
	struct curl_slist	*raw_headers;
	struct raw_stream	*stream;	/* a download passed on as it comes */
};

struct sender {
	const struct config	*cfg;
	CURLM			*multi;
	struct curl_slist	*headers;
	struct botapi_parser	*parser;
	struct transfer		*spare;		/* finished transfers, handles kept */
	size_t			 in_flight;
	size_t			 streams;	/* downloads, not counted as calls */
};

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void
transfer_free(struct transfer *t)
{
	if (t == NULL)
		return;
	if (t->easy != NULL)
		curl_easy_cleanup(t->easy);
	wipe_free(t->url);
	free(t->body);
	botapi_buffer_free(&t->answer);
	curl_slist_free_all(t->raw_headers);
	free(t);
}

int
sender_new(const struct config *cfg, struct sender **out, char *err, size_t errlen)
{
	struct sender *s;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl cannot start");
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->multi = curl_multi_init()) == NULL ||
	    (s->headers = botapi_json_headers()) == NULL) {
		snprintf(err, errlen, "out of memory");
		sender_free(s);
		return -1;
	}
	s->cfg = cfg;
	if (botapi_parser_new(&s->parser, err, errlen) == -1) {
		sender_free(s);
		return -1;
	}
	/* Keep one connection per call in flight, and no more, and as many for
	 * the downloads beside them; and one per handler for the riders (an
	 * http handler's forwards, to its own host). */
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)(2 * cfg->max_in_flight > cfg->handlers ? 2 * cfg->max_in_flight :
	    cfg->handlers));
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
	    (long)(2 * cfg->max_in_flight + cfg->handlers));
	*out = s;
	return 0;
}

void
sender_free(struct sender *s)
{
	if (s == NULL)
		return;
	while (s->spare != NULL) {
		struct transfer *t = s->spare;

		s->spare = t->next;
		transfer_free(t);
	}
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->headers);
	botapi_parser_free(s->parser);
	free(s);
	curl_global_cleanup();
}

/* A spare transfer, or a new one; NULL without memory. */
static struct transfer *
transfer_take(struct sender *s)
{
	struct transfer *t = s->spare;

	if (t != NULL) {
		s->spare = t->next;
		return t;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->easy = curl_easy_init()) == NULL) {
		free(t);
		return NULL;
	}
	return t;
}

/* Back among the spares, holding nothing of its call; a spare handle starts
 * clean: none of a raw call's options may stay for the next call. */
static void
transfer_recycle(struct sender *s, struct transfer *t)
{
	if (t->raw != NULL) {
		curl_easy_reset(t->easy);
		curl_slist_free_all(t->raw_headers);
		t->raw_headers = NULL;
		t->raw = NULL;
	}
	t->stream = NULL;
	wipe_free(t->url);
	free(t->body);
	t->url = t->body = NULL;
	t->next = s->spare;
	s->spare = t;
}

int
sender_start(struct sender *s, int64_t id, const char *token, const char *method,
    const char *params, char *err, size_t errlen)
{
	struct transfer	*t = transfer_take(s);
	size_t		 urllen;

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->id = id;
	t->next = NULL;
	urllen = strlen(s->cfg->api_url) + strlen(token) + strlen(method) + 8;
	if ((t->url = malloc(urllen)) == NULL || (t->body = strdup(params)) == NULL ||
	    botapi_url(t->url, urllen, s->cfg->api_url, token, method) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (botapi_easy_setup(t->easy, s->cfg->api_url, s->cfg->send_timeout_s,
	    s->headers, &t->answer, t->errbuf) == -1 ||
	    curl_easy_setopt(t->easy, CURLOPT_URL, t->url) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(t->body)) !=
	    CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t) != CURLE_OK ||
	    curl_multi_add_handle(s->multi, t->easy) != CURLM_OK) {
		snprintf(err, errlen, "libcurl refused the call's options");
		goto fail;
	}
	s->in_flight++;
	return 0;
fail:
	transfer_recycle(s, t);
	return -1;
}

/* The buffer a transfer's answer went to: the caller's for a raw call. */
static struct botapi_buffer *
answer_of(struct transfer *t)
{
	if (t->raw != NULL && t->raw->answer != NULL)
		return t->raw->answer;
	return &t->answer;
}

/* The answer's Content-Type, into the caller's buffer. */
static void
raw_done(struct transfer *t)
{
	const struct raw_call	*rc = t->raw;
	char			*type = NULL;

	if (rc->answer_type_len == 0)
		return;
	if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type) != CURLE_OK ||
	    type == NULL)
		type = "";
	snprintf(rc->answer_type, rc->answer_type_len, "%s", type);
}

/* A spooled body, read where libcurl is. */
static size_t
read_spooled(char *buf, size_t size, size_t nitems, void *arg)
{
	struct transfer	*t = arg;
	ssize_t		 n;

	n = pread(t->raw_body_fd, buf, size * nitems, (off_t)t->read_at);
	if (n < 0)
		return CURL_READFUNC_ABORT;
	t->read_at += n;
	return (size_t)n;
}

static int
seek_spooled(void *arg, curl_off_t offset, int origin)
{
	struct transfer *t = arg;

	if (origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	t->read_at = offset;
	return CURL_SEEKFUNC_OK;
}

/* The URL of a raw call: api_url, /bot<token>/ or /file/bot<token>/, the path
 * and the query, exactly as the bot asked (the path was checked by the caller). */
static char *
raw_url(const char *api_url, const struct raw_call *rc)
{
	size_t	 base = strlen(api_url), len;
	char	*url;

	while (base > 0 && api_url[base - 1] == '/')
		base--;
	len = base + strlen(rc->token) + strlen(rc->path) +
	    (rc->query != NULL ? strlen(rc->query) : 0) + 16;
	if ((url = malloc(len)) == NULL)
		return NULL;
	snprintf(url, len, "%.*s/%sbot%s/%s%s%s", (int)base, api_url,
	    rc->file ? "file/" : "", rc->token, rc->path,
	    rc->query != NULL ? "?" : "", rc->query != NULL ? rc->query : "");
	return url;
}

static int
raw_headers(struct transfer *t, const struct raw_call *rc)
{
	struct curl_slist	*h = NULL, *next;
	char			 line[512];

	/* No "Expect: 100-continue": the body goes at once, as for JSON calls. */
	if ((h = curl_slist_append(NULL, "Expect:")) == NULL)
		return -1;
	if (rc->content_type != NULL) {
		if (snprintf(line, sizeof(line), "Content-Type: %s", rc->content_type) >=
		    (int)sizeof(line) || (next = curl_slist_append(h, line)) == NULL) {
			curl_slist_free_all(h);
			return -1;
		}
		h = next;
	}
	t->raw_headers = h;
	return 0;
}

static size_t
stream_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct raw_stream *st = arg;

	return st->header(st->arg, line, size * nitems);
}

static size_t
stream_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct raw_stream *st = arg;

	return st->body(st->arg, data, size * nmemb);
}

/* A stream's options: its bytes go to the caller as they come; it may last as
 * long as the bot reads, so what ends it is a stall of send_timeout (a paused
 * transfer is not one), not a whole time. */
static int
stream_setup(struct sender *s, struct transfer *t, struct raw_stream *st)
{
	CURL *e = t->easy;

	t->stream = st;
	st->easy = e;
	st->transport_failed = 0;
	return curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, stream_header) ==
	    CURLE_OK && curl_easy_setopt(e, CURLOPT_HEADERDATA, st) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, stream_body) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, st) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
	    (long)(s->cfg->send_timeout_s > 0 ? s->cfg->send_timeout_s : 1)) ==
	    CURLE_OK && (!st->head ||
	    curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK) ? 0 : -1;
}

static int
start_raw(struct sender *s, int64_t id, const struct raw_call *rc,
    struct raw_stream *st, char *err, size_t errlen)
{
	struct transfer	*t = transfer_take(s);
	CURL		*e;
	int		 ok;

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e = t->easy;
	curl_easy_reset(e);
	t->id = id;
	t->next = NULL;
	t->raw = rc;
	t->raw_body_fd = rc->body_fd;
	t->read_at = 0;
	if ((t->url = raw_url(s->cfg->api_url, rc)) == NULL ||
	    raw_headers(t, rc) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (rc->answer != NULL)
		botapi_buffer_reset(rc->answer);
	ok = botapi_easy_setup(e, s->cfg->api_url, s->cfg->send_timeout_s,
	    t->raw_headers, rc->answer != NULL ? rc->answer : &t->answer,
	    t->errbuf) == 0 &&
	    curl_easy_setopt(e, CURLOPT_URL, t->url) == CURLE_OK &&
	    curl_easy_setopt(e, CURLOPT_PRIVATE, t) == CURLE_OK;
	if (ok && st != NULL)
		ok = stream_setup(s, t, st) == 0;
	if (ok && rc->content_type == NULL && st != NULL && st->head)
		;	/* CURLOPT_NOBODY: a HEAD */
	else if (ok && rc->content_type == NULL)
		ok = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
	else if (ok && rc->body_fd != -1)
		ok = curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_spooled) ==
		    CURLE_OK && curl_easy_setopt(e, CURLOPT_READDATA, t) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_spooled) ==
		    CURLE_OK && curl_easy_setopt(e, CURLOPT_SEEKDATA, t) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)rc->body_size) == CURLE_OK;
	else if (ok)
		ok = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)rc->body_len) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rc->body != NULL ?
		    rc->body : "") == CURLE_OK;
	if (!ok || curl_multi_add_handle(s->multi, e) != CURLM_OK) {
		snprintf(err, errlen, "libcurl refused the call's options");
		goto fail;
	}
	if (st != NULL)
		s->streams++;
	else
		s->in_flight++;
	return 0;
fail:
	transfer_recycle(s, t);
	return -1;
}

int
sender_start_raw(struct sender *s, int64_t id, const struct raw_call *rc,
    char *err, size_t errlen)
{
	return start_raw(s, id, rc, NULL, err, errlen);
}

int
sender_start_stream(struct sender *s, int64_t id, const struct raw_call *rc,
    struct raw_stream *st, char *err, size_t errlen)
{
	return start_raw(s, id, rc, st, err, errlen);
}

void
sender_continue(struct sender *s, struct raw_stream *st)
{
	(void)s;
	(void)curl_easy_pause(st->easy, CURLPAUSE_CONT);
}

void
sender_abort(struct sender *s, struct raw_stream *st)
{
	struct transfer *t = NULL;

	curl_easy_getinfo(st->easy, CURLINFO_PRIVATE, (char **)&t);
	curl_multi_remove_handle(s->multi, st->easy);
	st->easy = NULL;
	s->streams--;
	transfer_recycle(s, t);
}

size_t
sender_streams(const struct sender *s)
{
	return s->streams;
}

int
sender_ride(struct sender *s, CURL *easy)
{
	return curl_multi_add_handle(s->multi, easy) == CURLM_OK ? 0 : -1;
}

void
sender_drop(struct sender *s, CURL *easy)
{
	curl_multi_remove_handle(s->multi, easy);
}

size_t
sender_in_flight(const struct sender *s)
{
	return s->in_flight;
}

int
sender_wait(struct sender *s, struct pollfd *extra, unsigned nextra, int timeout_ms)
{
	struct curl_waitfd	 wfd[64];
	unsigned		 i;
	int			 running;

	if (nextra > sizeof(wfd) / sizeof(wfd[0]))
		nextra = sizeof(wfd) / sizeof(wfd[0]);
	for (i = 0; i < nextra; i++) {
		wfd[i].fd = extra[i].fd;
		wfd[i].events = (short)(((extra[i].events & POLLIN) ? CURL_WAIT_POLLIN : 0) |
		    ((extra[i].events & POLLOUT) ? CURL_WAIT_POLLOUT : 0));
		wfd[i].revents = 0;
	}
	if (curl_multi_poll(s->multi, wfd, nextra, timeout_ms, NULL) != CURLM_OK)
		return -1;
	for (i = 0; i < nextra; i++)
		extra[i].revents = (short)(((wfd[i].revents & CURL_WAIT_POLLIN) ?
		    POLLIN : 0) | ((wfd[i].revents & CURL_WAIT_POLLOUT) ? POLLOUT : 0));
	if (curl_multi_perform(s->multi, &running) != CURLM_OK)
		return -1;
	return 0;
}

int
sender_next_done(struct sender *s, struct sent *out)
{
	struct transfer		*t;
	struct sender_rider	*r;
	CURLMsg			*msg;
	CURL			*easy;
	CURLcode		 result;
	long			 status = 0;
	int			 left;

	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r->done != NULL) {
			/* msg is invalid once the handle left the multi. */
			easy = msg->easy_handle;
			result = msg->data.result;
			curl_multi_remove_handle(s->multi, easy);
			r->done(r, (int)result);
			continue;
		}
		t = (struct transfer *)r;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		memset(out, 0, sizeof(*out));
		out->id = t->id;
		if (msg->data.result != CURLE_OK && answer_of(t)->overflow)
			snprintf(t->errbuf, sizeof(t->errbuf), "answer larger than 1 MiB");
		else if (msg->data.result != CURLE_OK && t->errbuf[0] == '\0')
			snprintf(t->errbuf, sizeof(t->errbuf), "%s",
			    curl_easy_strerror(msg->data.result));
		if (t->raw != NULL)
			raw_done(t);
		if (t->stream != NULL) {
			t->stream->transport_failed = msg->data.result != CURLE_OK;
			t->stream->easy = NULL;
		}
		botapi_classify(s->parser, msg->data.result == CURLE_OK, t->errbuf,
		    status, answer_of(t)->data ? answer_of(t)->data : "",
		    answer_of(t)->len, &out->answer);
		curl_multi_remove_handle(s->multi, t->easy);
		if (t->stream != NULL)
			s->streams--;
		else
			s->in_flight--;
		transfer_recycle(s, t);
		return 1;
	}
	return 0;
}
