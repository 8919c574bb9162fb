/*
 * tgq doctor: looks at everything a working setup needs, in the order it is
 * needed, and says for each what is wrong and how to fix it.
 */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"

#define STALE_PENDING_S 300

enum verdict { V_OK, V_WARNING, V_ERROR };

struct report {
	struct jsonw	 w;
	int		 json;
	int		 errors, warnings;
};

static void	 check(struct report *, const char *, enum verdict, const char *,
		    const char *, ...) TGQ_PRINTF(5, 6);

/* One check's line: "ok  database  /var/lib/tgq/queue.db is writable". */
static void
check(struct report *r, const char *name, enum verdict v, const char *fix,
    const char *fmt, ...)
{
	static const char *const words[] = { "ok", "warning", "error" };
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->errors += v == V_ERROR;
	r->warnings += v == V_WARNING;
	if (r->json) {
		jw_object(&r->w);
		jw_key(&r->w, "check");
		jw_string(&r->w, name);
		jw_key(&r->w, "status");
		jw_string(&r->w, words[v]);
		jw_key(&r->w, "message");
		jw_string(&r->w, msg);
		jw_key(&r->w, "fix");
		jw_string(&r->w, v == V_OK ? NULL : fix);
		jw_end(&r->w);
		return;
	}
	printf("%-8s %-14s %s\n", words[v], name, msg);
	if (v != V_OK && fix != NULL)
		printf("%-8s %-14s fix: %s\n", "", "", fix);
}

static void
report_begin(struct report *r, int json)
{
	memset(r, 0, sizeof(*r));
	r->json = json;
	jw_init(&r->w, stdout);
	if (json)
		jw_array(&r->w);
}

static int
report_end(struct report *r)
{
	if (r->json) {
		jw_end(&r->w);
		jw_finish(&r->w);
	} else
		printf("\nerrors: %d, warnings: %d\n", r->errors, r->warnings);
	return r->errors > 0 ? EXIT_FAILED : EXIT_OK;
}

int
cmd_doctor_broken_config(struct cli *c, const char *err)
{
	struct report r;

	report_begin(&r, c->json);
	check(&r, "configuration", V_ERROR, "correct it; see tgq.conf(5)", "%s", err);
	return report_end(&r);
}

static void
check_bot(struct cli *c, struct report *r)
{
	if (c->bot == NULL) {
		check(r, "bot", V_ERROR, "set TGQ_BOT_TOKEN_FILE and "
		    "TGQ_WEBHOOK_SECRET_FILE, or add a [bot NAME] section",
		    "no bot is configured");
		return;
	}
	if (c->bot->token == NULL)
		check(r, "bot", V_ERROR, "set token_file (or TGQ_BOT_TOKEN_FILE)",
		    "bot %s has no token", c->bot->name);
	else
		check(r, "bot", V_OK, NULL, "bot %s has a token", c->bot->name);
	if (c->bot->secret == NULL)
		check(r, "secret", V_ERROR, "set secret_file (or "
		    "TGQ_WEBHOOK_SECRET_FILE), then tgq set-webhook", "bot %s has no "
		    "webhook secret: tgq-webhook refuses its updates", c->bot->name);
	else
		check(r, "secret", V_OK, NULL, "a webhook secret of %zu characters",
		    c->bot->secret_len);
}

static int64_t
db_int(sqlite3 *db, const char *sql, int64_t def)
{
	sqlite3_stmt	*st;
	int64_t		 v = def;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return def;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Returns 1 when the queue can be looked into. */
static int
check_database(struct cli *c, struct report *r)
{
	const char	*path = c->cfg.database;
	char		 copy[PATH_MAX], dir[PATH_MAX], fix[PATH_MAX + 128];
	struct stat	 st;
	sqlite3		*db = NULL;
	int64_t		 version;
	int		 ok;

	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(copy));	/* points into copy */
	if (stat(path, &st) == -1) {
		check(r, "database", V_ERROR, "start tgq-webhook once (it creates the "
		    "file), or check database in the configuration", "%s does not "
		    "exist", path);
		return 0;
	}
	/* SQLite writes the -wal and -shm files beside the queue. */
	snprintf(fix, sizeof(fix), "give the queue's folder and file to the user "
	    "tgq-webhook runs as: chown -R tgq:tgq %s", dir);
	if (access(dir, W_OK | X_OK) != 0)
		check(r, "database", V_ERROR, fix, "the folder %s is not writable by "
		    "this user", dir);
	else if (access(path, R_OK | W_OK) != 0)
		check(r, "database", V_ERROR, fix, "%s is not writable by this user",
		    path);
	else if (geteuid() == 0 && st.st_uid == 0)
		check(r, "database", V_WARNING, fix, "%s belongs to root: tgq-webhook "
		    "and tgq-drain, running as their own user, cannot write it", path);
	else
		check(r, "database", V_OK, NULL, "%s is writable", path);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		check(r, "schema", V_ERROR, "restore the queue from a backup",
		    "%s cannot be opened: %s", path, db ? sqlite3_errmsg(db) : "");
		sqlite3_close(db);
		return 0;
	}
	version = db_int(db, "PRAGMA user_version", -1);
	ok = version == QUEUE_SCHEMA_VERSION;
	if (version > QUEUE_SCHEMA_VERSION)
		check(r, "schema", V_ERROR, "upgrade tgq", "version %lld, newer than "
		    "this tgq (%d)", (long long)version, QUEUE_SCHEMA_VERSION);
	else if (version < QUEUE_SCHEMA_VERSION)
		check(r, "schema", V_WARNING, "nothing: the next program to open it "
		    "migrates it", "version %lld, older than this tgq (%d)",
		    (long long)version, QUEUE_SCHEMA_VERSION);
	else
		check(r, "schema", V_OK, NULL, "version %lld", (long long)version);
	if (db_int(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode", 0))
		check(r, "wal", V_OK, NULL, "journal_mode is wal");
	else
		check(r, "wal", V_WARNING, "nothing: tgq switches it on when it "
		    "opens the queue for writing", "journal_mode is not wal");
	sqlite3_close(db);
	return ok;
}

static void
check_token(struct cli *c, struct report *r)
{
	struct botapi_answer	 a;
	char			*username;

	if (c->bot == NULL || c->bot->token == NULL)
		return;
	if (cli_api(c, "getMe", NULL, NULL, 15, NULL, &a) == -1)
		return;
	if (a.outcome != BOTAPI_OK) {
		check(r, "token", V_ERROR, a.error_code == 401 ? "the token is wrong "
		    "or revoked: get it from @BotFather and update token_file" :
		    "check the network and api_url", "getMe: %s", a.description);
		botapi_answer_free(&a);
		return;
	}
	username = cli_json_text(c, a.result, "$.username");
	check(r, "token", V_OK, NULL, "Telegram knows the bot as @%s",
	    username ? username : "?");
	free(username);
	botapi_answer_free(&a);
}

static void
check_webhook(struct cli *c, struct report *r)
{
	struct botapi_answer	 a;
	const char		*configured;
	char			*url, *last_error, ago[32];
	int64_t			 when;

	if (c->bot == NULL || c->bot->token == NULL)
		return;
	if (cli_api(c, "getWebhookInfo", NULL, NULL, 15, NULL, &a) == -1)
		return;
	if (a.outcome != BOTAPI_OK) {
		check(r, "webhook", V_ERROR, "check the network and api_url",
		    "getWebhookInfo: %s", a.description);
		botapi_answer_free(&a);
		return;
	}
	configured = c->bot->webhook_url;
	url = cli_json_text(c, a.result, "$.url");
	last_error = cli_json_text(c, a.result, "$.last_error_message");
	when = cli_json_int(c, a.result, "$.last_error_date", 0);
	if (url == NULL || *url == '\0')
		check(r, "webhook", configured ? V_ERROR : V_WARNING, "tgq set-webhook "
		    "(or tgq poll while developing)", "no webhook is registered with "
		    "Telegram");
	else if (configured == NULL)
		check(r, "webhook", V_WARNING, "set webhook_url (TGQ_WEBHOOK_URL) to "
		    "the URL Telegram should call", "Telegram calls %s; no webhook_url "
		    "is configured to compare", url);
	else if (strcmp(url, configured) != 0)
		check(r, "webhook", V_ERROR, "tgq set-webhook", "Telegram calls %s but "
		    "the configuration says %s", url, configured);
	else
		check(r, "webhook", V_OK, NULL, "Telegram calls %s", url);
	/* Telegram never tells the secret back; a 401 from tgq-webhook is how a
	 * secret that differs from the configured one shows. */
	if (last_error != NULL && strstr(last_error, "401") != NULL)
		check(r, "webhook", V_ERROR, "tgq set-webhook (registers the configured "
		    "secret)", "Telegram's deliveries are refused with 401 (%s ago): the "
		    "secret Telegram sends differs from the configured one",
		    cli_ago(ago, sizeof(ago), when, now_unix()));
	else if (last_error != NULL && now_unix() - when < 3600)
		check(r, "webhook", V_WARNING, "check the web server and tgq-webhook's "
		    "log", "Telegram's last delivery failed %s ago: %s",
		    cli_ago(ago, sizeof(ago), when, now_unix()), last_error);
	free(url);
	free(last_error);
	botapi_answer_free(&a);
}

static void
check_queue(struct cli *c, struct report *r)
{
	struct queue_health	 h;
	struct queue		*q;
	char			 err[512], ago[32];

	if ((q = cli_queue(c)) == NULL)
		return;
	if (queue_health(q, &h, err, sizeof(err)) != QUEUE_OK) {
		check(r, "queue", V_ERROR, "see the message", "%s", err);
		return;
	}
	if (h.pending > 0 && h.oldest_pending_age_s > STALE_PENDING_S)
		check(r, "queue", V_WARNING, "is tgq-drain running? systemctl status "
		    "tgq-drain.timer tgq-drain-follow.service", "%lld pending, the "
		    "oldest for %s", (long long)h.pending, cli_ago(ago, sizeof(ago),
		    now_unix() - h.oldest_pending_age_s, now_unix()));
	else
		check(r, "queue", V_OK, NULL, "%lld pending", (long long)h.pending);
	if (h.dead > 0)
		check(r, "dead", V_WARNING, "tgq ls --state dead; tgq show UPDATE_ID; "
		    "tgq retry --dead", "%lld dead updates", (long long)h.dead);
}

int
cmd_doctor(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("doctor");
	struct report		 r;
	int			 opt, rc;

	if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, &rc))
		return rc;
	if (opt != -1 || optind < argc)
		return cli_usage_error(cmd, "takes no arguments");
	report_begin(&r, c->json);
	check(&r, "configuration", V_OK, NULL, "%s", c->cfg.path ? c->cfg.path :
	    "no file; the environment alone");
	check_bot(c, &r);
	if (check_database(c, &r))
		check_queue(c, &r);
	check_token(c, &r);
	check_webhook(c, &r);
	return report_end(&r);
}
