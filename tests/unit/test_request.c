/*
 * Unit tests for cgi/request.c: the README's request table, row by row, with a
 * fake server in front and a real queue behind.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "check.h"
#include "webhook.h"

#define SECRET "T0p_s3cret-x"

static char dir[] = "/tmp/tgq-request-XXXXXX";

struct fake {
	const char	*params[16][2];
	const char	*body;
	size_t		 body_len, body_pos;
	char		 out[4096];
	size_t		 out_len;
};

static const char *
fake_param(void *ctx, const char *name)
{
	struct fake	*f = ctx;
	int		 i;

	for (i = 0; i < 16 && f->params[i][0] != NULL; i++)
		if (strcmp(f->params[i][0], name) == 0)
			return f->params[i][1];
	return NULL;
}

static ssize_t
fake_read(void *ctx, char *buf, size_t len)
{
	struct fake	*f = ctx;
	size_t		 n = f->body_len - f->body_pos;

	/* Hand out at most 7 bytes at a time: callers must loop. */
	n = n < len ? n : len;
	n = n < 7 ? n : 7;
	memcpy(buf, f->body + f->body_pos, n);
	f->body_pos += n;
	return (ssize_t)n;
}

static int
fake_write(void *ctx, const char *buf, size_t len)
{
	struct fake *f = ctx;

	if (len > sizeof(f->out) - 1 - f->out_len)
		return -1;
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
	f->out[f->out_len] = '\0';
	return 0;
}

struct row {
	const char	*name;
	const char	*method;
	const char	*script_name;
	const char	*request_uri;
	const char	*secret;	/* header value, NULL for none */
	const char	*content_type;
	const char	*content_length;	/* NULL: the body's length */
	const char	*body;
	const char	*want_status;
	const char	*want_in_output;	/* NULL: nothing more to check */
	int		 want_new_rows;
};

#define UPD(id) "{\"update_id\":" #id ",\"message\":{\"chat\":{\"id\":5},\"text\":\"hi\"}}"

static const struct row rows[] = {
	{ "route_unknown", "POST", "/tg/other", NULL, SECRET, "application/json",
	    NULL, UPD(1), "404", "not found", 0 },
	{ "route_webhookx", "POST", "/tg/webhookx", NULL, SECRET, "application/json",
	    NULL, UPD(1), "404", NULL, 0 },
	{ "route_root", "GET", "/", NULL, NULL, NULL, NULL, "", "404", NULL, 0 },
	{ "route_no_path", "GET", NULL, NULL, NULL, NULL, NULL, "", "404", NULL, 0 },
	{ "webhook_get_405", "GET", "/tg/webhook", NULL, SECRET, NULL, NULL, "",
	    "405", "Allow: POST\r\n", 0 },
	{ "webhook_put_405", "PUT", "/tg/webhook", NULL, SECRET, "application/json",
	    NULL, UPD(1), "405", "Allow: POST\r\n", 0 },
	{ "health_post_405", "POST", "/tg/health", NULL, NULL, "application/json",
	    NULL, "{}", "405", "Allow: GET, HEAD\r\n", 0 },
	{ "secret_missing", "POST", "/tg/webhook", NULL, NULL, "application/json",
	    NULL, UPD(1), "401", "unauthorized", 0 },
	{ "secret_wrong", "POST", "/tg/webhook", NULL, SECRET "x", "application/json",
	    NULL, UPD(1), "401", NULL, 0 },
	{ "secret_prefix", "POST", "/tg/webhook", NULL, "T0p", "application/json",
	    NULL, UPD(1), "401", NULL, 0 },
	{ "secret_empty", "POST", "/tg/webhook", NULL, "", "application/json",
	    NULL, UPD(1), "401", NULL, 0 },
	{ "secret_path_wrong", "POST", "/tg/webhook/nope", NULL, NULL,
	    "application/json", NULL, UPD(1), "401", NULL, 0 },
	{ "secret_path_and_header_disagree", "POST", "/tg/webhook/" SECRET, NULL,
	    "other", "application/json", NULL, UPD(1), "401", NULL, 0 },
	{ "secret_bot_name_without_header", "POST", "/tg/webhook/default", NULL,
	    NULL, "application/json", NULL, UPD(1), "401", NULL, 0 },
	{ "length_missing_411", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", "", UPD(1), "411", "length required", 0 },
	{ "length_invalid_400", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", "12x", UPD(1), "400", "invalid Content-Length", 0 },
	{ "length_negative_400", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", "-1", UPD(1), "400", NULL, 0 },
	{ "length_over_limit_413", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", "1048577", UPD(1), "413", "payload too large", 0 },
	{ "length_huge_413", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", "99999999999999999999", UPD(1), "413", NULL, 0 },
	{ "type_missing_415", "POST", "/tg/webhook", NULL, SECRET, NULL, NULL, UPD(1),
	    "415", "unsupported media type", 0 },
	{ "type_text_415", "POST", "/tg/webhook", NULL, SECRET, "text/plain", NULL,
	    UPD(1), "415", NULL, 0 },
	{ "type_prefix_415", "POST", "/tg/webhook", NULL, SECRET,
	    "application/jsonx", NULL, UPD(1), "415", NULL, 0 },
	{ "body_short_400", "POST", "/tg/webhook", NULL, SECRET, "application/json",
	    "500", UPD(1), "400", "shorter than Content-Length", 0 },
	{ "body_invalid_400", "POST", "/tg/webhook", NULL, SECRET, "application/json",
	    NULL, "{\"update_id\":1,", "400", "bad request: invalid JSON", 0 },
	{ "body_array_400", "POST", "/tg/webhook", NULL, SECRET, "application/json",
	    NULL, "[1]", "400", NULL, 0 },
	{ "body_no_update_id_400", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", NULL, "{\"message\":{}}", "400", "update_id missing",
	    0 },
	{ "body_empty_400", "POST", "/tg/webhook", NULL, SECRET, "application/json",
	    NULL, "", "400", NULL, 0 },
	{ "stored_header_secret", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", NULL, UPD(1), "200", "\r\n\r\nok\n", 1 },
	{ "duplicate_200_no_row", "POST", "/tg/webhook", NULL, SECRET,
	    "application/json", NULL, UPD(1), "200", NULL, 0 },
	{ "stored_path_secret", "POST", "/x/y/webhook/" SECRET, NULL, NULL,
	    "application/json", NULL, UPD(2), "200", NULL, 1 },
	{ "stored_path_and_header", "POST", "/webhook/" SECRET, NULL, SECRET,
	    "application/json", NULL, UPD(3), "200", NULL, 1 },
	{ "stored_bot_name_and_header", "POST", "/webhook/default/", NULL, SECRET,
	    "APPLICATION/JSON; charset=utf-8", NULL, UPD(4), "200", NULL, 1 },
	{ "stored_request_uri_only", "POST", NULL, "/deep/prefix//webhook?x=/health",
	    SECRET, "application/json", NULL, UPD(5), "200", NULL, 1 },
	{ "health_get", "GET", "/tg/health", NULL, NULL, NULL, NULL, "", "200",
	    "{\"status\":\"ok\",\"pending\":5,\"dead\":0,", 0 },
	{ "health_head_no_body", "HEAD", NULL, "/health", NULL, NULL, NULL, "", "200",
	    "Content-Type: application/json\r\n", 0 },
};

static int64_t
count_rows(const char *path)
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	int64_t		 n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM updates", -1, &st,
	    NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

static void
run_row(const struct row *r, const struct webhook *wh)
{
	struct fake		 f;
	struct request_io	 io = { fake_param, fake_read, fake_write, &f, NULL };
	char			 len_text[32], name[96], status_line[32];
	int			 i = 0;
	int64_t			 before = count_rows(wh->cfg->database);
	int			 ok;

	memset(&f, 0, sizeof(f));
	f.body = r->body;
	f.body_len = strlen(r->body);
	snprintf(len_text, sizeof(len_text), "%zu", f.body_len);
	f.params[i][0] = "REQUEST_METHOD";
	f.params[i++][1] = r->method;
	if (r->script_name) {
		f.params[i][0] = "SCRIPT_NAME";
		f.params[i++][1] = r->script_name;
	}
	if (r->request_uri) {
		f.params[i][0] = "REQUEST_URI";
		f.params[i++][1] = r->request_uri;
	}
	if (r->secret) {
		f.params[i][0] = "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN";
		f.params[i++][1] = r->secret;
	}
	if (r->content_type) {
		f.params[i][0] = "CONTENT_TYPE";
		f.params[i++][1] = r->content_type;
	}
	f.params[i][0] = "CONTENT_LENGTH";
	f.params[i++][1] = r->content_length ? r->content_length : len_text;
	request_handle(&io, wh);

	snprintf(name, sizeof(name), "request_%s", r->name);
	snprintf(status_line, sizeof(status_line), "Status: %s ", r->want_status);
	ok = strncmp(f.out, status_line, strlen(status_line)) == 0 &&
	    (r->want_in_output == NULL || strstr(f.out, r->want_in_output) != NULL) &&
	    count_rows(wh->cfg->database) - before == r->want_new_rows &&
	    strstr(f.out, SECRET) == NULL;
	if (strcmp(r->method, "HEAD") == 0)
		ok = ok && strstr(f.out, "\r\n\r\n")[4] == '\0';
	CHECK(name, ok);
	if (!ok)
		printf("  got: %.200s\n", f.out);
}

int
main(void)
{
	struct config	 cfg;
	struct webhook	 wh = { &cfg, NULL, NULL, NULL };
	char		 err[256], db[PATH_MAX], cmd[PATH_MAX + 16];
	size_t		 i;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	log_init("test_request", LOG_LVL_WARNING);
	snprintf(db, sizeof(db), "%s/q.db", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.database = db;
	cfg.max_body = 1048576;
	cfg.busy_timeout_ms = 1000;
	cfg.retry_after_s = 5;
	cfg.nbots = 1;
	snprintf(cfg.bots[0].name, sizeof(cfg.bots[0].name), "default");
	cfg.bots[0].secret = SECRET;
	cfg.bots[0].secret_len = strlen(SECRET);
	if (store_start(&cfg, &wh.store, err, sizeof(err)) == -1) {
		printf("request_setup: FAIL %s\n", err);
		return 1;
	}
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i], &wh);
	store_stop(wh.store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_exit();
}
