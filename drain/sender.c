/*
 * Bot API calls on the network: one libcurl multi handle, so several calls are in
 * flight at once over kept-alive connections, driven by the drain's event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "drain.h"

struct transfer {
	struct sender_rider	 rider;		/* done NULL: a call of ours */
	int64_t			 id;
	CURL			*easy;
	char			*url;		/* holds the token: wiped when done */
	char			*body;
	struct botapi_buffer	 answer;
	char			 errbuf[CURL_ERROR_SIZE];
	struct transfer		*next;
};

struct sender {
	const struct config	*cfg;
	CURLM			*multi;
	struct curl_slist	*headers;
	struct botapi_parser	*parser;
	struct transfer		*spare;		/* finished transfers, handles kept */
	size_t			 in_flight;
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
	/* Keep one connection per call in flight, and no more; and one per
	 * handler for the riders (an http handler's forwards, to its own host). */
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)(cfg->max_in_flight > cfg->handlers ? cfg->max_in_flight :
	    cfg->handlers));
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
	    (long)(cfg->max_in_flight + cfg->handlers));
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

int
sender_start(struct sender *s, int64_t id, const char *token, const char *method,
    const char *params, char *err, size_t errlen)
{
	struct transfer	*t = s->spare;
	size_t		 urllen;

	if (t != NULL)
		s->spare = t->next;
	else if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->easy = curl_easy_init()) == NULL) {
		free(t);
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
	wipe_free(t->url);
	free(t->body);
	t->url = t->body = NULL;
	t->next = s->spare;
	s->spare = t;
	return -1;
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
		if (msg->data.result != CURLE_OK && t->answer.overflow)
			snprintf(t->errbuf, sizeof(t->errbuf), "answer larger than 1 MiB");
		else if (msg->data.result != CURLE_OK && t->errbuf[0] == '\0')
			snprintf(t->errbuf, sizeof(t->errbuf), "%s",
			    curl_easy_strerror(msg->data.result));
		botapi_classify(s->parser, msg->data.result == CURLE_OK, t->errbuf,
		    status, t->answer.data ? t->answer.data : "", t->answer.len,
		    &out->answer);
		curl_multi_remove_handle(s->multi, t->easy);
		s->in_flight--;
		wipe_free(t->url);
		free(t->body);
		t->url = t->body = NULL;
		t->next = s->spare;
		s->spare = t;
		return 1;
	}
	return 0;
}
