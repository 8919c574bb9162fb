/*
 * The "http://URL" and "https://URL" handlers: each update is POSTed to the bot's
 * own webhook server as Telegram would (the stored body byte for byte,
 * Content-Type application/json, X-Telegram-Bot-Api-Secret-Token), and its answer
 * is the run's result.  The transfers ride on the sender's libcurl multi, so the
 * loop waits for them where it waits for Bot API calls, and connections to the
 * bot are kept alive between updates.
 *
 * What an answer means:
 *	2xx			handled; a body that is a webhook reply is its call
 *	no answer		refused, reset, closed, timed out, 502, 503, 504:
 *				UNREACHABLE, the bot is down, nothing is charged
 *	429			WAIT for its Retry-After, nothing is charged
 *	anything else		FAILED: 500, other 4xx, 3xx (never followed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "drain.h"

#define SECRET_HEADER "X-Telegram-Bot-Api-Secret-Token: "
#define BODY_SHOWN 200		/* bytes of a failed answer kept in last_error */
#define WAIT_DEFAULT_S 5	/* a 429 without Retry-After */
#define WAIT_MAX_S 3600
#define DEADLINE_SLACK_MS 2000	/* libcurl times the transfer out before this */
#define SPARE_MAX 256		/* finished forwards kept for reuse: handlers' max */

struct forward;

struct http {
	char			*url;
	const char		*socket;	/* the configuration's; NULL: TCP */
	struct curl_slist	*headers;	/* one holds the secret: wiped */
	struct sender		*sender;
	struct forward		*spare;		/* finished, easy handles set up */
	size_t			 nspare;
};

struct forward {
	struct sender_rider	 rider;		/* first: CURLOPT_PRIVATE */
	struct http		*h;
	CURL			*easy;
	struct botapi_buffer	 answer;
	size_t			 max_output;
	char			 errbuf[CURL_ERROR_SIZE];
	int64_t			 timeout_ms;
	int64_t			 started_us;
	int64_t			 elapsed_us;
	int64_t			 deadline;
	int			 done;
	int			 result;	/* CURLcode */
	struct forward		*next;		/* in the spare list */
};

static void forward_free(struct forward *f);

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
headers_free(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
}

static void
http_release(void *state)
{
	struct http *h = state;

	if (h == NULL)
		return;
	while (h->spare != NULL) {
		struct forward *f = h->spare;

		h->spare = f->next;
		forward_free(f);
	}
	headers_free(h->headers);
	free(h->url);
	free(h);
}

/* The URL is the whole value (its form checked when the configuration loaded). */
static int
http_setup(const char *bot, const char *value, const char *arg, void **state,
    char *err, size_t errlen)
{
	struct http *h;

	(void)bot;
	(void)arg;
	if ((h = calloc(1, sizeof(*h))) == NULL || (h->url = strdup(value)) == NULL) {
		free(h);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*state = h;
	return 0;
}

/* The secret is the one the configuration read for this bot: its
 * forward_secret_file, else its webhook secret; none, no header (as Telegram
 * sends none for a webhook set without one). */
static int
http_attach(void *state, const struct bot_config *b, struct sender *s, char *err,
    size_t errlen)
{
	struct http		*h = state;
	struct curl_slist	*l;
	const char		*secret = NULL;
	size_t			 secret_len = 0, len;
	char			*line = NULL;

	h->sender = s;
	h->socket = b->handler_socket;
	if (b->forward_secret != NULL) {
		secret = b->forward_secret;
		secret_len = b->forward_secret_len;
	} else if (b->secret != NULL) {
		secret = b->secret;
		secret_len = b->secret_len;
	}
	if ((h->headers = botapi_json_headers()) == NULL)
		goto nomem;
	if (secret != NULL) {
		len = strlen(SECRET_HEADER) + secret_len + 1;
		if ((line = malloc(len)) == NULL)
			goto nomem;
		snprintf(line, len, "%s%.*s", SECRET_HEADER, (int)secret_len, secret);
		l = curl_slist_append(h->headers, line);
		explicit_bzero(line, len);
		free(line);
		if (l == NULL)
			goto nomem;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void
forward_done(struct sender_rider *r, int curl_result)
{
	struct forward *f = (struct forward *)r;

	f->done = 1;
	f->result = curl_result;
	f->elapsed_us = now_us() - f->started_us;
}

static void
forward_free(struct forward *f)
{
	if (f->easy != NULL)
		curl_easy_cleanup(f->easy);
	botapi_buffer_free(&f->answer);
	free(f);
}

/* A finished forward keeps its easy handle, set up, for the next update. */
static void
forward_recycle(struct forward *f)
{
	struct http *h = f->h;

	if (h->nspare == SPARE_MAX) {
		forward_free(f);
		return;
	}
	/* A large answer's buffer is not kept for the next one. */
	if (f->answer.cap > 65536)
		botapi_buffer_free(&f->answer);
	f->next = h->spare;
	h->spare = f;
	h->nspare++;
}

/* A new forward, its easy handle set up with what every update shares. */
static struct forward *
forward_new(struct http *h, const struct handler_limits *limits)
{
	struct forward	*f;
	int64_t		 timeout_s = (limits->timeout_ms + 999) / 1000;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->easy = curl_easy_init()) == NULL) {
		free(f);
		return NULL;
	}
	f->rider.done = forward_done;
	f->h = h;
	if (botapi_easy_setup(f->easy, h->url, timeout_s, h->headers, &f->answer,
	    f->errbuf) == -1 ||
	    curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, (long)limits->timeout_ms) !=
	    CURLE_OK ||
	    curl_easy_setopt(f->easy, CURLOPT_URL, h->url) != CURLE_OK ||
	    curl_easy_setopt(f->easy, CURLOPT_UNIX_SOCKET_PATH, h->socket) !=
	    CURLE_OK ||
	    curl_easy_setopt(f->easy, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(f->easy, CURLOPT_PRIVATE, &f->rider) != CURLE_OK) {
		forward_free(f);
		return NULL;
	}
	return f;
}

/* The body is the claimed update's, which outlives the run: libcurl reads it
 * from there (CURLOPT_POSTFIELDS copies nothing). */
static int
http_start(void *state, const struct claimed *c,
    const struct handler_limits *limits, void **run, char *err, size_t errlen)
{
	struct http	*h = state;
	struct forward	*f;

	if (h->sender == NULL) {
		snprintf(err, errlen, "http handler not attached");
		return -1;
	}
	if ((f = h->spare) != NULL) {
		h->spare = f->next;
		h->nspare--;
	} else if ((f = forward_new(h, limits)) == NULL) {
		snprintf(err, errlen, "out of memory, or libcurl refused the "
		    "forward's options");
		return -1;
	}
	f->next = NULL;
	f->done = 0;
	f->result = CURLE_OK;
	f->elapsed_us = 0;
	f->errbuf[0] = '\0';
	f->timeout_ms = limits->timeout_ms;
	f->max_output = limits->max_output;
	botapi_buffer_reset(&f->answer);
	if (curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, c->body) != CURLE_OK ||
	    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)c->body_len) != CURLE_OK) {
		forward_free(f);
		snprintf(err, errlen, "libcurl refused the forward's options");
		return -1;
	}
	/* A webhook reply is handler output: the same limit. */
	f->answer.max = limits->max_output;
	f->started_us = now_us();
	f->deadline = now_unix_ms() + limits->timeout_ms + DEADLINE_SLACK_MS;
	if (sender_ride(h->sender, f->easy) == -1) {
		forward_free(f);
		snprintf(err, errlen, "libcurl refused the forward");
		return -1;
	}
	*run = f;
	return 0;
}

static int
http_pollfds(const void *run, struct pollfd *fds, int max)
{
	/* The sender's poll covers the transfer. */
	(void)run;
	(void)fds;
	(void)max;
	return 0;
}

static int64_t
http_deadline(const void *run)
{
	return ((const struct forward *)run)->deadline;
}

static int
http_step(void *run, int64_t now_ms)
{
	struct forward *f = run;

	if (!f->done && now_ms >= f->deadline) {
		/* libcurl's own timeout should have ended it: end it here. */
		sender_drop(f->h->sender, f->easy);
		forward_done(&f->rider, CURLE_OPERATION_TIMEDOUT);
	}
	return f->done;
}

/* The first bytes of an answer, escaped, for last_error. */
static void
body_start(const struct forward *f, char *dst, size_t dstlen)
{
	size_t len = f->answer.len < BODY_SHOWN ? f->answer.len : BODY_SHOWN;

	dst[0] = '\0';
	if (len > 0)
		log_escape(dst, dstlen, f->answer.data, len);
}

static void
classify(struct forward *f, struct handler_result *res)
{
	long		status = 0;
	curl_off_t	retry_after = 0;

	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
	if (f->result != CURLE_OK) {
		if (f->answer.overflow) {
			res->status = HANDLER_INVALID;
			snprintf(res->reason, sizeof(res->reason),
			    "answer larger than %zu bytes", f->max_output);
			return;
		}
		res->status = HANDLER_UNREACHABLE;
		if (f->result == CURLE_OPERATION_TIMEDOUT) {
			res->timed_out = 1;
			snprintf(res->reason, sizeof(res->reason),
			    "no answer within %lld ms", (long long)f->timeout_ms);
		} else
			snprintf(res->reason, sizeof(res->reason), "%s",
			    f->errbuf[0] != '\0' ? f->errbuf :
			    curl_easy_strerror((CURLcode)f->result));
		return;
	}
	/* An answer came: its time counts in tgq_forward_duration_seconds. */
	res->elapsed_us = f->elapsed_us > 0 ? f->elapsed_us : 1;
	if (status >= 200 && status <= 299) {
		res->status = HANDLER_OK;
		res->webhook_reply = 1;
		return;
	}
	snprintf(res->reason, sizeof(res->reason), "HTTP %ld", status);
	if (status == 502 || status == 503 || status == 504) {
		res->status = HANDLER_UNREACHABLE;
		return;
	}
	if (status == 429) {
		res->status = HANDLER_WAIT;
		if (curl_easy_getinfo(f->easy, CURLINFO_RETRY_AFTER, &retry_after) !=
		    CURLE_OK || retry_after <= 0)
			retry_after = WAIT_DEFAULT_S;
		res->wait_s = retry_after > WAIT_MAX_S ? WAIT_MAX_S : retry_after;
		return;
	}
	res->status = HANDLER_FAILED;
	body_start(f, res->stderr_tail, sizeof(res->stderr_tail));
}

static void
http_finish(void *run, struct handler_result *res)
{
	struct forward *f = run;

	memset(res, 0, sizeof(*res));
	if (!f->done) {
		res->status = HANDLER_FAILED;
		snprintf(res->reason, sizeof(res->reason), "aborted");
		sender_drop(f->h->sender, f->easy);
		forward_recycle(f);
		return;
	}
	classify(f, res);
	if (res->status == HANDLER_OK) {
		/* The answer's buffer becomes the output: NUL-terminated. */
		if (f->answer.data == NULL && (f->answer.data = strdup("")) == NULL) {
			res->status = HANDLER_FAILED;
			snprintf(res->reason, sizeof(res->reason), "out of memory");
		} else {
			res->output = f->answer.data;
			res->output_len = f->answer.len;
			f->answer.data = NULL;
			f->answer.cap = 0;
		}
	}
	forward_recycle(f);
}

static void
http_abort(void *run)
{
	struct forward *f = run;

	if (f == NULL)
		return;
	if (!f->done)
		sender_drop(f->h->sender, f->easy);
	forward_recycle(f);
}

/* http: and https: both; libcurl tells the schemes apart. */
const struct handler_ops handler_http = {
	HANDLER_RUN_OPS(http),
	.attach = http_attach,
};
