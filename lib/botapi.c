/*
 * The Bot API client's shared parts: building a call, libcurl set up per its
 * security checklist, and reading Telegram's answer into one of a few outcomes.
 * The token lives only in the URL in memory: it is never logged and never part of
 * an error message (libcurl's messages do not quote URLs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "tgq.h"

#define BOTAPI_MAX_ANSWER (1024 * 1024)

struct botapi_parser {
	sqlite3		*db;
	sqlite3_stmt	*answer;
};

int
botapi_method_valid(const char *method)
{
	size_t i, len = strlen(method);

	if (len < 1 || len > BOTAPI_METHOD_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!((method[i] >= 'a' && method[i] <= 'z') ||
		    (method[i] >= 'A' && method[i] <= 'Z')))
			return 0;
	return 1;
}

int
botapi_url(char *buf, size_t buflen, const char *api_url, const char *token,
    const char *method)
{
	size_t	 base = strlen(api_url);
	int	 n;

	while (base > 0 && api_url[base - 1] == '/')
		base--;
	n = snprintf(buf, buflen, "%.*s/bot%s/%s", (int)base, api_url, token, method);
	return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct botapi_buffer	*b = userdata;
	size_t			 n = size * nmemb;
	char			*grown;

	/* A hostile or broken server cannot make us hold more than max bytes:
	 * returning short makes libcurl fail the transfer (CURLE_WRITE_ERROR). */
	if (n > b->max - b->len) {
		b->overflow = 1;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((grown = realloc(b->data, cap)) == NULL)
			return 0;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

void
botapi_buffer_reset(struct botapi_buffer *b)
{
	b->len = 0;
	b->overflow = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
	b->max = BOTAPI_MAX_ANSWER;
}

void
botapi_buffer_free(struct botapi_buffer *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int
botapi_easy_setup(CURL *easy, const char *api_url, int64_t timeout_s,
    struct curl_slist *headers, struct botapi_buffer *answer, char *errbuf)
{
	const char *scheme = strncmp(api_url, "https://", 8) == 0 ? "https" : "http";

	botapi_buffer_reset(answer);
	errbuf[0] = '\0';
	/* Only the scheme of api_url, no redirects: a redirect would carry the token
	 * in its URL to wherever it points. */
	if (curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, scheme) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(timeout_s < 10 ? timeout_s * 1000 : 10000)) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000)) !=
	    CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_USERAGENT, "tgq/" TGQ_VERSION) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_WRITEDATA, answer) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK)
		return -1;
	return 0;
}

struct curl_slist *
botapi_json_headers(void)
{
	struct curl_slist *h, *next;

	/* No "Expect: 100-continue": it costs a round trip on every larger call. */
	if ((h = curl_slist_append(NULL, "Content-Type: application/json")) == NULL)
		return NULL;
	if ((next = curl_slist_append(h, "Expect:")) == NULL) {
		curl_slist_free_all(h);
		return NULL;
	}
	return next;
}

int
botapi_parser_new(struct botapi_parser **out, char *err, size_t errlen)
{
	struct botapi_parser *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* SQLite's JSON functions read the answers: one well-tested parser for the
	 * queue and the network alike.  The columns are NULL for a body that is not
	 * JSON, so a broken answer is not an SQL error. */
	if (sqlite3_open_v2(":memory:", &p->db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK || sqlite3_prepare_v3(p->db,
	    "SELECT json_valid(?1) AND json_type(?1) = 'object',"
	    " CASE WHEN json_valid(?1) THEN json_type(?1, '$.ok') END,"
	    " CASE WHEN json_valid(?1) THEN json_extract(?1, '$.error_code') END,"
	    " CASE WHEN json_valid(?1) THEN json_extract(?1, '$.description') END,"
	    " CASE WHEN json_valid(?1) THEN json_extract(?1,"
	    "   '$.parameters.retry_after') END,"
	    " CASE WHEN json_valid(?1) THEN json_extract(?1,"
	    "   '$.parameters.migrate_to_chat_id') END,"
	    " CASE WHEN json_valid(?1) THEN ?1 -> '$.result' END",
	    -1, SQLITE_PREPARE_PERSISTENT, &p->answer, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "answer parser: %s", p->db ?
		    sqlite3_errmsg(p->db) : "out of memory");
		botapi_parser_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void
botapi_parser_free(struct botapi_parser *p)
{
	if (p == NULL)
		return;
	sqlite3_finalize(p->answer);
	sqlite3_close(p->db);
	free(p);
}

/* Telegram's description, or "error N" when it gave none. */
static void
set_description(struct botapi_answer *a, const char *text, int64_t code)
{
	if (text != NULL && *text != '\0')
		snprintf(a->description, sizeof(a->description), "%s", text);
	else
		snprintf(a->description, sizeof(a->description), "error %lld",
		    (long long)code);
}

/* The columns of the answer statement, in its order. */
enum answer_column {
	ANS_IS_OBJECT, ANS_OK_TYPE, ANS_ERROR_CODE, ANS_DESCRIPTION, ANS_RETRY_AFTER,
	ANS_MIGRATE_TO, ANS_RESULT
};

static int
column_integer(sqlite3_stmt *st, int col, int64_t *out)
{
	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return 0;
	*out = sqlite3_column_int64(st, col);
	return 1;
}

void
botapi_classify(struct botapi_parser *p, int transport_ok, const char *transport_error,
    long http_status, const char *body, size_t len, struct botapi_answer *a)
{
	sqlite3_stmt	*st = p->answer;
	const char	*ok, *description;
	int64_t		 code;

	memset(a, 0, sizeof(*a));
	a->http_status = http_status;
	if (!transport_ok) {
		a->outcome = BOTAPI_TRANSIENT;
		snprintf(a->description, sizeof(a->description), "network: %s",
		    transport_error);
		return;
	}
	sqlite3_bind_text(st, 1, body, (int)len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, ANS_IS_OBJECT) == 0 ||
	    (ok = (const char *)sqlite3_column_text(st, ANS_OK_TYPE)) == NULL ||
	    (strcmp(ok, "true") != 0 && strcmp(ok, "false") != 0)) {
		a->outcome = BOTAPI_TRANSIENT;
		snprintf(a->description, sizeof(a->description),
		    "HTTP %ld without a Bot API answer", http_status);
		goto done;
	}
	description = (const char *)sqlite3_column_text(st,
	    ANS_DESCRIPTION);
	if (strcmp(ok, "true") == 0) {
		const char *result = (const char *)sqlite3_column_text(st,
		    ANS_RESULT);

		a->outcome = BOTAPI_OK;
		/* Some calls say what they did ("Webhook was set"). */
		if (description != NULL)
			snprintf(a->description, sizeof(a->description), "%s", description);
		a->result = strdup(result != NULL ? result : "null");
		goto done;
	}
	if (!column_integer(st, ANS_ERROR_CODE, &code))
		code = http_status;
	a->error_code = code;
	if (code == 429) {
		a->outcome = BOTAPI_RETRY_AFTER;
		if (!column_integer(st, ANS_RETRY_AFTER, &a->retry_after_s) ||
		    a->retry_after_s < 1)
			a->retry_after_s = 1;
		if (a->retry_after_s > 3600)
			a->retry_after_s = 3600;
		set_description(a, description, code);
	} else if (column_integer(st, ANS_MIGRATE_TO, &a->migrate_to_chat_id)) {
		a->outcome = BOTAPI_MIGRATE;
		set_description(a, description, code);
	} else if (code >= 400 && code < 500) {
		a->outcome = BOTAPI_REJECTED;
		set_description(a, description, code);
	} else {
		a->outcome = BOTAPI_TRANSIENT;
		set_description(a, description, code);
	}
done:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

void
botapi_answer_free(struct botapi_answer *a)
{
	free(a->result);
	a->result = NULL;
}
