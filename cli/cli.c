/*
 * What every tgq command shares: option parsing and usage, errors, the selected
 * bot's token, the queue, synchronous Bot API calls, and reading JSON answers.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "cli.h"

void
cli_usage(FILE *out, const struct command *cmd)
{
	fprintf(out, "usage: tgq [-c config] [--bot NAME] [--json] %s%s%s\n%s\n",
	    cmd->name, *cmd->usage ? " " : "", cmd->usage, cmd->summary);
}

int
cli_usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tgq %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_usage(stderr, cmd);
	return EXIT_USAGE;
}

int
cli_getopt(const struct command *cmd, int argc, char **argv, const char *shortopts,
    const struct option *longopts, int *opt, int *exit_code)
{
	char	spec[64];
	int	o;

	/* "+": stop at the first operand; ":" reports a missing argument apart. */
	snprintf(spec, sizeof(spec), "+:%s", shortopts);
	o = getopt_long(argc, argv, spec, longopts, NULL);
	if (o == 'h') {
		cli_usage(stdout, cmd);
		*exit_code = EXIT_OK;
		return 1;
	}
	if (o == '?' || o == ':') {
		*exit_code = cli_usage_error(cmd, o == ':' ? "%s needs a value" :
		    "unknown option %s", argv[optind - 1]);
		return 1;
	}
	*opt = o;
	return 0;
}

void
cli_json_begin(struct jsonw *w, int ok)
{
	jw_init(w, stdout);
	jw_object(w);
	jw_key(w, "ok");
	jw_bool(w, ok);
}

void
cli_json_end(struct jsonw *w)
{
	jw_end(w);
	jw_finish(w);
}

size_t
cli_char(const char *p, size_t avail, int *printable)
{
	const unsigned char	*u = (const unsigned char *)p;
	size_t			 n = utf8_char_len(p, avail);

	/* C0 controls, DEL, and the C1 controls U+0080-U+009F (0xc2 0x80-0x9f). */
	*printable = !(n == 1 && (u[0] < 0x20 || u[0] == 0x7f)) &&
	    !(n == 2 && u[0] == 0xc2 && u[1] < 0xa0);
	return n;
}

size_t
cli_put_clean(FILE *out, const char *s, size_t maxchars)
{
	size_t	 left, n, chars = 0;
	int	 printable;

	if (s == NULL) {
		fputc('-', out);
		return 1;
	}
	for (left = strlen(s); left > 0; s += n, left -= n) {
		if (maxchars > 0 && chars == maxchars) {
			fputs("...", out);
			return chars + 3;
		}
		if ((n = cli_char(s, left, &printable)) == 0) {
			fputc('?', out);
			n = 1;
		} else if (printable)
			fwrite(s, 1, n, out);
		else
			fputc(' ', out);
		chars++;
	}
	return chars;
}

int
cli_fail(struct cli *c, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->json) {
		struct jsonw w;

		cli_json_begin(&w, 0);
		jw_key(&w, "error");
		jw_string(&w, msg);
		cli_json_end(&w);
	} else {
		/* Telegram's descriptions end up in these: printed clean. */
		fputs("tgq: ", stderr);
		cli_put_clean(stderr, msg, 0);
		fputc('\n', stderr);
	}
	return EXIT_FAILED;
}

const char *
cli_token(struct cli *c)
{
	if (c->bot == NULL || c->bot->token == NULL) {
		cli_fail(c, "bot %s has no token: set TGQ_BOT_TOKEN_FILE, or token_file "
		    "in [bot %s] of the configuration", c->bot ? c->bot->name : "?",
		    c->bot ? c->bot->name : "NAME");
		return NULL;
	}
	return c->bot->token;
}

static struct queue *
open_queue(struct cli *c, int read_only)
{
	char err[1024];

	if (c->queue != NULL)
		return c->queue;
	if (access(c->cfg.database, F_OK) != 0) {
		cli_fail(c, "%s: no queue there (tgq-webhook creates it; check "
		    "database in the configuration)", c->cfg.database);
		return NULL;
	}
	if ((read_only ? queue_open_read(c->cfg.database, c->cfg.busy_timeout_ms,
	    &c->queue, err, sizeof(err)) : queue_open(c->cfg.database,
	    c->cfg.durability, c->cfg.busy_timeout_ms, &c->queue, err,
	    sizeof(err))) == -1) {
		cli_fail(c, "%s", err);
		return NULL;
	}
	return c->queue;
}

struct queue *
cli_queue(struct cli *c)
{
	return open_queue(c, 0);
}

struct queue *
cli_queue_read(struct cli *c)
{
	return open_queue(c, 1);
}

static int
progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	volatile sig_atomic_t *interrupt = p;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return interrupt != NULL && *interrupt;	/* non-zero aborts the transfer */
}

int
cli_api(struct cli *c, const char *method, const char *params,
    struct curl_mime *mime, int64_t timeout_s, volatile sig_atomic_t *interrupt,
    struct botapi_answer *a)
{
	struct botapi_buffer	 answer = { 0 };
	const char		*token;
	char			 url[1024], errbuf[CURL_ERROR_SIZE], err[256];
	long			 status = 0;
	CURLcode		 rc;

	memset(a, 0, sizeof(*a));
	if ((token = cli_token(c)) == NULL)
		return -1;
	if (c->easy == NULL && ((c->easy = curl_easy_init()) == NULL ||
	    (c->headers = botapi_json_headers()) == NULL)) {
		cli_fail(c, "libcurl cannot start");
		return -1;
	}
	if (c->parser == NULL && botapi_parser_new(&c->parser, err, sizeof(err)) == -1) {
		cli_fail(c, "%s", err);
		return -1;
	}
	curl_easy_reset(c->easy);
	if (botapi_url(url, sizeof(url), c->cfg.api_url, token, method) == -1 ||
	    botapi_easy_setup(c->easy, c->cfg.api_url, timeout_s,
	    mime != NULL ? NULL : c->headers, &answer, errbuf) == -1 ||
	    curl_easy_setopt(c->easy, CURLOPT_URL, url) != CURLE_OK ||
	    (mime != NULL ? curl_easy_setopt(c->easy, CURLOPT_MIMEPOST,
	    mime) : curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS,
	    params != NULL ? params : "{}")) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_XFERINFOFUNCTION, progress) != CURLE_OK ||
	    curl_easy_setopt(c->easy, CURLOPT_XFERINFODATA, interrupt) != CURLE_OK) {
		explicit_bzero(url, sizeof(url));
		cli_fail(c, "%s: libcurl refused the call's options", method);
		return -1;
	}
	rc = curl_easy_perform(c->easy);
	explicit_bzero(url, sizeof(url));
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK && errbuf[0] == '\0')
		snprintf(errbuf, sizeof(errbuf), "%s", curl_easy_strerror(rc));
	botapi_classify(c->parser, rc == CURLE_OK, errbuf, status,
	    answer.data ? answer.data : "", answer.len, a);
	botapi_buffer_free(&answer);
	return 0;
}

static sqlite3_stmt *
json_query(struct cli *c, const char *sql, const char *json, const char *path)
{
	sqlite3_stmt *st;

	if (c->mem == NULL && sqlite3_open(":memory:", (sqlite3 **)&c->mem) !=
	    SQLITE_OK)
		return NULL;
	if (sqlite3_prepare_v2(c->mem, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_type(st, ONE_VALUE) == SQLITE_NULL) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

char *
cli_json_text(struct cli *c, const char *json, const char *path)
{
	sqlite3_stmt	*st;
	char		*out;

	if (json == NULL || (st = json_query(c, "SELECT CASE WHEN json_valid(?1) THEN "
	    "CASE json_type(?1, ?2) WHEN 'object' THEN ?1 -> ?2 WHEN 'array' THEN "
	    "?1 -> ?2 ELSE json_extract(?1, ?2) END END", json, path)) == NULL)
		return NULL;
	out = strdup((const char *)sqlite3_column_text(st, ONE_VALUE));
	sqlite3_finalize(st);
	return out;
}

void
cli_json_result(struct cli *c, const char *result)
{
	sqlite3_stmt	*st;
	struct jsonw	 w;

	/* json_patch keeps the target's keys first: "ok" leads, as in every answer. */
	if (result != NULL && (st = json_query(c, "SELECT CASE WHEN json_valid(?1) "
	    "AND json_type(?1) = 'object' THEN json_patch('{\"ok\":true}', ?1) END",
	    result, NULL)) != NULL) {
		printf("%s\n", (const char *)sqlite3_column_text(st, ONE_VALUE));
		sqlite3_finalize(st);
		return;
	}
	cli_json_begin(&w, 1);
	jw_key(&w, "result");
	jw_raw(&w, result);
	cli_json_end(&w);
}

int64_t
cli_json_int(struct cli *c, const char *json, const char *path, int64_t def)
{
	sqlite3_stmt	*st;
	int64_t		 v = def;

	if (json == NULL || (st = json_query(c, "SELECT CASE WHEN json_valid(?1) AND "
	    "json_type(?1, ?2) IN ('integer', 'true', 'false') THEN json_extract(?1, ?2) "
	    "END", json, path)) == NULL)
		return def;
	v = sqlite3_column_int64(st, ONE_VALUE);
	sqlite3_finalize(st);
	return v;
}

const char *
cli_ago(char *buf, size_t len, int64_t then, int64_t now)
{
	int64_t d = now - then;

	if (d < 0)
		d = 0;
	if (d < 120)
		snprintf(buf, len, "%lld s", (long long)d);
	else if (d < 7200)
		snprintf(buf, len, "%lld min", (long long)(d / 60));
	else if (d < 2 * 86400)
		snprintf(buf, len, "%lld h", (long long)(d / 3600));
	else
		snprintf(buf, len, "%lld d", (long long)(d / 86400));
	return buf;
}
