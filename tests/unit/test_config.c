/* Unit tests for lib/config.c: files, environment, secrets and every bad input. */
#include <limits.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tgq.h"

#define SECRET "Sec_ret-123"
#define TOKEN "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"

static char dir[] = "/tmp/tgq-config-XXXXXX";

static const char *const env_names[] = { "TGQ_CONFIG", "TGQ_DATABASE",
	"TGQ_DURABILITY", "TGQ_MAX_BODY", "TGQ_API_URL", "TGQ_BUSY_TIMEOUT",
	"TGQ_RETRY_AFTER", "TGQ_THREADS", "TGQ_LOG_LEVEL", "TGQ_BOT_TOKEN",
	"TGQ_BOT_TOKEN_FILE", "TGQ_WEBHOOK_SECRET", "TGQ_WEBHOOK_SECRET_FILE",
	"TGQ_WEBHOOK_URL", "TGQ_HANDLER", "TGQ_ALLOWED_USERS", "TGQ_DENY_TEXT",
	"TGQ_ALLOWED_UPDATES", "TGQ_MAX_CONNECTIONS", "TGQ_IP_ADDRESS",
	"TGQ_LISTEN", "TGQ_HOLD_LIMIT", "TGQ_FORWARD_SECRET_FILE",
	"CREDENTIALS_DIRECTORY" };

static void
clear_env(void)
{
	size_t i;

	for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
		unsetenv(env_names[i]);
}

static const char *
write_file(const char *name, const char *text)
{
	static char	 path[PATH_MAX];
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL || fputs(text, fp) == EOF ||
	    fclose(fp) != 0) {
		perror(path);
		exit(2);
	}
	return path;
}

/* Loads text as the configuration file; returns the result and fills err. */
static int
load_text(const char *text, struct config *cfg, char *err, size_t errlen)
{
	const char *path = write_file("tgq.conf", text);

	return config_load(path, cfg, err, errlen);
}

/* The load must fail with an error containing want, and never quoting secret. */
static void
expect_error(const char *name, const char *text, const char *want)
{
	struct config	 cfg;
	char		 err[512] = "", label[128];
	int		 rc = load_text(text, &cfg, err, sizeof(err));

	snprintf(label, sizeof(label), "config_rejects_%s", name);
	CHECK(label, rc == -1 && strstr(err, want) != NULL &&
	    strstr(err, "hunter2") == NULL);
	if (rc == -1 && strstr(err, want) == NULL)
		printf("  (got: %s)\n", err);
	if (rc == 0)
		config_free(&cfg);
}

static void
test_defaults(void)
{
	struct config	 cfg;
	char		 err[256];

	clear_env();
	setenv("TGQ_CONFIG", write_file("empty.conf", ""), 1);
	CHECK("config_empty_file_loads", config_load(NULL, &cfg, err, sizeof(err)) == 0);
	CHECK("config_default_database", strcmp(cfg.database,
	    "/var/lib/tgq/queue.db") == 0);
	CHECK("config_default_durability_full", cfg.durability == DURABILITY_FULL);
	CHECK("config_default_max_body", cfg.max_body == 1048576);
	CHECK("config_default_api_url", strcmp(cfg.api_url,
	    "https://api.telegram.org") == 0);
	CHECK("config_no_bots_without_settings", cfg.nbots == 0);
	CHECK("config_default_drain", cfg.max_attempts == 5 &&
	    cfg.handler_timeout_s == 10 && cfg.max_output == 1048576 &&
	    cfg.send_timeout_s == 30 && cfg.lease_s == 60 &&
	    cfg.retain_s == 7 * 86400 && cfg.max_in_flight == 16 && cfg.handlers == 4);
	config_free(&cfg);
	setenv("TGQ_CONFIG", "/nonexistent/tgq.conf", 1);
	CHECK("config_missing_named_file_fails", config_load(NULL, &cfg, err,
	    sizeof(err)) == -1 && strstr(err, "/nonexistent/tgq.conf") != NULL);
	clear_env();
}

static void
test_file(void)
{
	struct config		 cfg;
	const struct bot_config	*b;
	char			 err[256], text[1024];

	clear_env();
	write_file("secret", SECRET "\n");
	write_file("token", TOKEN "\n");
	snprintf(text, sizeof(text),
	    "; comment\n# another\n[tgq]\ndatabase = %s/q.db\ndurability = normal\n"
	    "max_body = 512K\nbusy_timeout = 250\nretry_after = 2m\nthreads = 4\n"
	    "log_level = debug\napi_url = http://127.0.0.1:9/\n\n"
	    "[bot alpha]\nsecret_file = secret\ntoken_file = %s/token\n"
	    "webhook_url = https://example.org/tg/webhook\nhandler = echo\n", dir, dir);
	CHECK("config_full_file_loads", load_text(text, &cfg, err, sizeof(err)) == 0);
	CHECK("config_file_values", cfg.durability == DURABILITY_NORMAL &&
	    cfg.max_body == 512 * 1024 && cfg.busy_timeout_ms == 250 &&
	    cfg.retry_after_s == 120 && cfg.threads == 4 &&
	    cfg.log_level == LOG_LVL_DEBUG && strstr(cfg.database, "/q.db") != NULL);
	b = config_bot(&cfg, "alpha", 5);
	CHECK("config_bot_found", b != NULL && cfg.nbots == 1);
	CHECK("config_secret_relative_to_file", b != NULL && b->secret_len ==
	    strlen(SECRET) && memcmp(b->secret, SECRET, b->secret_len) == 0);
	CHECK("config_token_absolute", b != NULL && b->token != NULL &&
	    strcmp(b->token, TOKEN) == 0);
	CHECK("config_bot_strings", b != NULL && strcmp(b->handler, "echo") == 0 &&
	    strcmp(b->webhook_url, "https://example.org/tg/webhook") == 0);
	CHECK("config_bot_lookup_exact", config_bot(&cfg, "alph", 4) == NULL);
	CHECK("config_bot_default_rates", b != NULL && b->rate_global == 30 &&
	    b->rate_chat == 1 && b->rate_group == 20);
	CHECK("config_secret_no_previous", b != NULL && b->secret_prev == NULL &&
	    b->secret_from == SECRET_FROM_FILE);
	config_free(&cfg);

	/* A rotation under way: the secret, then the previous one. */
	write_file("secret", SECRET "\nOld_secret-9\n");
	CHECK("config_previous_secret_loads", load_text(text, &cfg, err,
	    sizeof(err)) == 0 && (b = config_bot(&cfg, "alpha", 5)) != NULL &&
	    b->secret_len == strlen(SECRET) && memcmp(b->secret, SECRET,
	    b->secret_len) == 0 && b->secret_prev != NULL &&
	    strcmp(b->secret_prev, "Old_secret-9") == 0 && b->secret_prev_len == 12);
	config_free(&cfg);
	write_file("secret", SECRET "\n");

	/* The environment goes on top of the file, and describes bot "default". */
	setenv("TGQ_DATABASE", "/tmp/env.db", 1);
	setenv("TGQ_WEBHOOK_SECRET", "envsecret\n", 1);
	CHECK("config_env_over_file", load_text(text, &cfg, err, sizeof(err)) == 0 &&
	    strcmp(cfg.database, "/tmp/env.db") == 0 && cfg.nbots == 2);
	b = config_bot(&cfg, "default", 7);
	CHECK("config_env_secret_chomped", b != NULL && b->secret_len == 9 &&
	    memcmp(b->secret, "envsecret", 9) == 0);
	config_free(&cfg);
	clear_env();
}

static void
test_credentials(void)
{
	struct config		 cfg;
	const struct bot_config	*b;
	char			 err[256], creds[PATH_MAX];

	clear_env();
	snprintf(creds, sizeof(creds), "%s/creds", dir);
	mkdir(creds, 0700);
	write_file("creds/webhook-secret", SECRET);
	write_file("creds/webhook-secret-beta", "betasecret");
	write_file("creds/mine", "minesecret");
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	setenv("TGQ_WEBHOOK_URL", "https://example.org/x", 1);
	CHECK("config_credentials_load", load_text("[bot beta]\nhandler = echo\n"
	    "[bot gamma]\nsecret_file = mine\n", &cfg, err, sizeof(err)) == 0);
	b = config_bot(&cfg, "default", 7);
	CHECK("config_credential_default_name", b != NULL && b->secret != NULL &&
	    strcmp(b->secret, SECRET) == 0);
	b = config_bot(&cfg, "beta", 4);
	CHECK("config_credential_bot_name", b != NULL && b->secret != NULL &&
	    strcmp(b->secret, "betasecret") == 0);
	b = config_bot(&cfg, "gamma", 5);
	CHECK("config_credential_relative_file", b != NULL && b->secret != NULL &&
	    strcmp(b->secret, "minesecret") == 0);
	config_free(&cfg);
	clear_env();

	/* Each program reads only its own secret: the webhook's unit passes no
	 * token, the drain's no webhook secret. */
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	CHECK("config_need_secrets_only", config_load_for(write_file("partial.conf",
	    "[bot default]\ntoken_file = absent-token\nsecret_file = webhook-secret\n"),
	    CONFIG_NEED_SECRETS, &cfg, err, sizeof(err)) == 0 &&
	    cfg.bots[0].token == NULL && cfg.bots[0].secret != NULL);
	config_free(&cfg);
	CHECK("config_need_tokens_only", config_load_for(write_file("partial.conf",
	    "[bot default]\ntoken_file = absent-token\nsecret_file = webhook-secret\n"),
	    CONFIG_NEED_TOKENS, &cfg, err, sizeof(err)) == -1 &&
	    strstr(err, "absent-token") != NULL);
	clear_env();

	/* A unit's LoadCredential= alone makes the bot "default". */
	setenv("CREDENTIALS_DIRECTORY", creds, 1);
	CHECK("config_credentials_alone", load_text("", &cfg, err, sizeof(err)) == 0 &&
	    cfg.nbots == 1 && (b = config_bot(&cfg, "default", 7)) != NULL &&
	    b->secret != NULL && strcmp(b->secret, SECRET) == 0);
	config_free(&cfg);
	clear_env();
}

static void
test_errors(void)
{
	struct config	cfg;
	char		err[256];

	clear_env();
	expect_error("unknown_key", "[tgq]\ndatabse = /x\n", "tgq.conf:2: unknown key");
	expect_error("unknown_section", "[tgqq]\ndatabase = /x\n",
	    "tgq.conf:2: unknown section");
	expect_error("key_outside_section", "database = /x\n",
	    "tgq.conf:1: key \"database\" outside a section");
	expect_error("syntax", "[tgq]\nthis line has no equals sign hunter2\n",
	    "tgq.conf:2: syntax error");
	expect_error("unclosed_section", "[tgq\n", "tgq.conf:1: syntax error");
	expect_error("twice", "[tgq]\nthreads = 2\nthreads = 3\n",
	    "tgq.conf:3: threads: given twice");
	expect_error("durability", "[tgq]\ndurability = sometimes\n",
	    "tgq.conf:2: durability: must be full or normal");
	expect_error("max_body_suffix", "[tgq]\nmax_body = 1MB\n",
	    "tgq.conf:2: max_body: not a number");
	expect_error("max_body_small", "[tgq]\nmax_body = 10\n",
	    "max_body: too small");
	expect_error("threads_zero", "[tgq]\nthreads = 0\n", "threads: too small");
	expect_error("threads_65", "[tgq]\nthreads = 65\n", "threads: too large");
	expect_error("threads_words", "[tgq]\nthreads = four\n",
	    "threads: not a number");
	expect_error("busy_timeout", "[tgq]\nbusy_timeout = -5\n",
	    "busy_timeout: too small");
	expect_error("api_url", "[tgq]\napi_url = ftp://x\n", "api_url: must start");
	expect_error("log_level", "[tgq]\nlog_level = loud\n", "log_level: must be");
	expect_error("inline_token", "[bot a]\ntoken = 1:hunter2\n",
	    "tgq.conf:2: token: secrets are not written here; use token_file");
	expect_error("inline_secret", "[bot a]\nsecret = hunter2\n",
	    "secret: secrets are not written here");
	expect_error("bot_name", "[bot Bad Name]\nhandler = echo\n",
	    "tgq.conf:2: bot names are");
	expect_error("webhook_url_http", "[bot a]\nwebhook_url = http://x/\n",
	    "webhook_url: must start with https://");
	expect_error("empty_value", "[bot a]\nhandler =\n", "handler: empty value");
	expect_error("missing_secret_file", "[bot a]\nsecret_file = /nonexistent/s\n",
	    "/nonexistent/s: No such file");
	write_file("badsecret", "hunter2 has spaces");
	expect_error("bad_secret_chars", "[bot a]\nsecret_file = badsecret\n",
	    "bot a: the webhook secret must be");
	write_file("badprevious", SECRET "\nhunter2 has spaces\n");
	expect_error("bad_previous_secret", "[bot a]\nsecret_file = badprevious\n",
	    "bot a: the previous webhook secret (the second line) must be 1-256 "
	    "characters of A-Z a-z 0-9 _ - (");
	expect_error("bad_previous_secret_names_line", "[bot a]\nsecret_file = "
	    "badprevious\n", "badprevious, line 2)");
	write_file("threelines", SECRET "\nold\nolder\n");
	expect_error("secret_three_lines", "[bot a]\nsecret_file = threelines\n",
	    "line 3)");
	write_file("badtoken", "hunter2");
	expect_error("bad_token", "[bot a]\ntoken_file = badtoken\n",
	    "bot a: the bot token is not of the form");
	{
		char long_line[400];

		memset(long_line, 'x', sizeof(long_line));
		memcpy(long_line, "[tgq]\ndatabase = ", 17);
		memcpy(long_line + sizeof(long_line) - 2, "\n", 2);
		expect_error("long_line", long_line, "tgq.conf:2: line too long");
	}
	/* A NUL byte in a long line: the line is refused as a whole, and no part of
	 * it becomes a "line" of its own (the config fuzzer's find). */
	{
		static const char nul_text[] = "[tgq]\n  \"\0api_url = "
		    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
		    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
		    "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvhunter2=1\n";
		struct config	 c4;
		char		 e4[256], path[PATH_MAX];
		FILE		*fp;

		snprintf(path, sizeof(path), "%s/nul.conf", dir);
		fp = fopen(path, "w");
		fwrite(nul_text, 1, sizeof(nul_text) - 1, fp);
		fclose(fp);
		CHECK("config_rejects_nul_in_long_line", config_load(path, &c4, e4,
		    sizeof(e4)) == -1 && strstr(e4, "nul.conf:2: contains a NUL byte") !=
		    NULL && strstr(e4, "hunter2") == NULL);
		fp = fopen(path, "w");
		fwrite("[tgq]\nthreads = 4\0\n", 1, 20, fp);
		fclose(fp);
		CHECK("config_rejects_nul", config_load(path, &c4, e4, sizeof(e4)) == -1 &&
		    strstr(e4, "nul.conf:2: contains a NUL byte") != NULL);
	}
	/* A value continued on an indented line is refused rather than joined. */
	expect_error("allowed_ips", "[tgq]\nallowed_ips = 10.0.0.0/8, 300.1.1.1\n",
	    "tgq.conf:2: allowed_ips: entry 2 is not an address");
	expect_error("trusted_proxies_prefix", "[tgq]\ntrusted_proxies = ::1/129\n",
	    "trusted_proxies: entry 1 is not");
	{
		struct config c3;
		char e3[256];

		CHECK("config_allowed_ips", load_text("[tgq]\nallowed_ips = telegram, "
		    "2001:db8::/32\ntrusted_proxies = 127.0.0.1\n", &c3, e3,
		    sizeof(e3)) == 0 && c3.allowed_ips.n == 3 &&
		    c3.trusted_proxies.n == 1 &&
		    cidr_match(&c3.allowed_ips, "149.154.167.99") &&
		    cidr_match(&c3.allowed_ips, "91.108.7.1") &&
		    !cidr_match(&c3.allowed_ips, "91.108.8.1") &&
		    cidr_match(&c3.allowed_ips, "2001:db8:1::5") &&
		    !cidr_match(&c3.allowed_ips, "2001:db9::5") &&
		    cidr_match(&c3.allowed_ips, "::ffff:149.154.160.1") &&
		    !cidr_match(&c3.allowed_ips, "not an address") &&
		    cidr_match(&c3.trusted_proxies, "127.0.0.1") &&
		    !cidr_match(&c3.trusted_proxies, "127.0.0.2"));
		if (c3.database != NULL)
			config_free(&c3);
	}
	expect_error("rate", "[bot a]\nrate_chat = fast\n",
	    "tgq.conf:2: rate_chat: not a number");
	expect_error("retain_small", "[tgq]\nretain = 10s\n", "retain: too small");
	expect_error("lease_shorter_than_handler",
	    "[tgq]\nhandler_timeout = 30s\nlease = 20s\n",
	    "lease (20s) must be longer than handler_timeout (30s)");
	{
		struct config c2;
		char e2[256];

		CHECK("config_drain_keys", load_text("[tgq]\nmax_attempts = 3\n"
		    "handler_timeout = 2m\nmax_output = 64K\nsend_timeout = 5\n"
		    "lease = 3m\nretain = 1d\nmax_in_flight = 50\nhandlers = 8\n"
		    "[bot a]\nrate_global = 0\nrate_chat = 2\nrate_group = 10\n", &c2,
		    e2, sizeof(e2)) == 0 && c2.max_attempts == 3 &&
		    c2.handler_timeout_s == 120 && c2.max_output == 65536 &&
		    c2.send_timeout_s == 5 && c2.lease_s == 180 && c2.retain_s == 86400 &&
		    c2.max_in_flight == 50 && c2.handlers == 8 &&
		    c2.bots[0].rate_global == 0 && c2.bots[0].rate_chat == 2 &&
		    c2.bots[0].rate_group == 10);
		if (c2.database != NULL)
			config_free(&c2);
	}
	expect_error("continuation", "[tgq]\ndatabase = /a\n  /b\n", "tgq.conf:3:");
	/* Repeats are counted per bot: a second [bot a] part cannot set a key again. */
	expect_error("twice_per_bot", "[bot a]\nrate_chat = 2\n[bot b]\n"
	    "rate_chat = 3\n[bot a]\nrate_chat = 4\n",
	    "tgq.conf:6: rate_chat: given twice");
	/* log_level's names match in any case, durability's only in lower case. */
	expect_error("durability_case", "[tgq]\ndurability = FULL\n",
	    "tgq.conf:2: durability: must be full or normal");
	CHECK("config_log_level_any_case", load_text("[tgq]\nlog_level = Warn\n",
	    &cfg, err, sizeof(err)) == 0 && cfg.log_level == LOG_LVL_WARNING);
	if (cfg.database != NULL)
		config_free(&cfg);
	expect_error("handler_relative", "[bot a]\nhandler = exec:bot.sh hunter2\n",
	    "tgq.conf:2: bot a: handler exec: needs an absolute program path");
	setenv("TGQ_HANDLER", "exec:", 1);
	CHECK("config_rejects_bad_env_handler", config_load(write_file("ok.conf", ""),
	    &cfg, err, sizeof(err)) == -1 && strstr(err, "TGQ_HANDLER: bot default: "
	    "handler exec: needs an absolute program path") != NULL);
	unsetenv("TGQ_HANDLER");
	setenv("TGQ_THREADS", "lots", 1);
	CHECK("config_rejects_bad_env", config_load(write_file("ok.conf", ""), &cfg,
	    err, sizeof(err)) == -1 && strstr(err, "TGQ_THREADS: threads: not a number")
	    != NULL);
	unsetenv("TGQ_THREADS");
	setenv("TGQ_WEBHOOK_SECRET", "hunter2 hunter2", 1);
	CHECK("config_rejects_bad_env_secret_quietly", config_load(write_file("ok.conf",
	    ""), &cfg, err, sizeof(err)) == -1 && strstr(err, "hunter2") == NULL &&
	    strstr(err, "webhook secret") != NULL);
	clear_env();
}

/* A value each type accepts, for the keys that have no default. */
static const char *
sample_value(const char *type)
{
	if (strcmp(type, "url") == 0)
		return "https://example.org/x";
	if (strcmp(type, "cidr-list") == 0)
		return "127.0.0.1";
	if (strcmp(type, "user-list") == 0)
		return "11111, 22222";
	if (strcmp(type, "update-list") == 0)
		return "message, callback_query";
	if (strcmp(type, "ip") == 0)
		return "192.0.2.1";
	if (strcmp(type, "integer") == 0)
		return "1";
	if (strcmp(type, "listen") == 0)
		return "127.0.0.1:8081";
	return "/x";	/* a path (handler_socket's must be absolute) */
}

/* Splits a line of config_print_keys at its tabs; the number of columns. */
static int
split_row(char *line, char *cols[], int max)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	while (n < max) {
		cols[n++] = line;
		if ((line = strchr(line, '\t')) == NULL)
			break;
		*line++ = '\0';
	}
	return n;
}

#define TABLE_MAX 64
struct table_row {
	char	 name[32], env[40], value[64];
	int	 in_tgq;
};

/* Appends "name = value" to a section's text. */
static void
append_key(char *text, size_t size, const struct table_row *r)
{
	size_t	len = strlen(text);
	int	n = snprintf(text + len, size - len, "%s = %s\n", r->name, r->value);

	if (n < 0 || (size_t)n >= size - len) {
		fprintf(stderr, "test_config: a table text is too long\n");
		exit(2);
	}
}

/*
 * The table as config_print_keys prints it: every key can be given once in its
 * section, a second time is refused on its own line whatever its row, and every
 * variable is applied.
 */
static void
test_table(void)
{
	static struct table_row rows[TABLE_MAX];
	struct config	 cfg;
	char		 line[256], tgq[2048] = "[tgq]\n", bot[1024] = "[bot a]\n";
	char		 text[4096], err[256], want[128], *c[6];
	size_t		 n = 0, i, ntgq = 0;
	int		 threads_row = 0, handler_row = 0, all_twice = 1, rc;
	FILE		*fp = tmpfile();

	clear_env();
	if (fp == NULL) {
		perror("tmpfile");
		exit(2);
	}
	config_print_keys(fp);
	rewind(fp);
	while (fgets(line, sizeof(line), fp) != NULL && n < TABLE_MAX) {
		if (split_row(line, c, 6) != 5 || strcmp(c[1], "-") == 0)
			continue;
		threads_row |= strcmp(c[0], "[tgq]") == 0 &&
		    strcmp(c[1], "threads") == 0 && strcmp(c[2], "TGQ_THREADS") == 0 &&
		    strcmp(c[3], "integer") == 0 && strcmp(c[4], "1") == 0;
		handler_row |= strcmp(c[0], "[bot NAME]") == 0 &&
		    strcmp(c[1], "handler") == 0 && strcmp(c[2], "TGQ_HANDLER") == 0 &&
		    strcmp(c[4], "echo") == 0;
		rows[n].in_tgq = strcmp(c[0], "[tgq]") == 0;
		snprintf(rows[n].name, sizeof(rows[n].name), "%s", c[1]);
		snprintf(rows[n].env, sizeof(rows[n].env), "%s", c[2]);
		snprintf(rows[n].value, sizeof(rows[n].value), "%s",
		    strcmp(c[4], "-") != 0 ? c[4] : sample_value(c[3]));
		/* handler_socket is only for an http handler: all keys at once
		 * need one. */
		if (strcmp(c[1], "handler") == 0)
			snprintf(rows[n].value, sizeof(rows[n].value),
			    "http://localhost/hook");
		if (rows[n].in_tgq)
			append_key(tgq, sizeof(tgq), &rows[n]);
		else
			append_key(bot, sizeof(bot), &rows[n]);
		ntgq += rows[n].in_tgq;
		n++;
	}
	fclose(fp);
	CHECK("config_print_keys_rows", n >= 25 && threads_row && handler_row);

	/* Every variable at once: each applies (the [bot] ones to "default"). */
	for (i = 0; i < n; i++)
		setenv(rows[i].env, rows[i].value, 1);
	rc = config_load_for(write_file("ok.conf", ""), 0, &cfg, err, sizeof(err));
	CHECK("config_every_variable_applies", rc == 0 && cfg.nbots == 1 &&
	    strcmp(cfg.bots[0].name, "default") == 0 &&
	    cfg.bots[0].webhook_url != NULL && strcmp(cfg.bots[0].webhook_url,
	    "https://example.org/x") == 0 && cfg.allowed_ips.n == 1 &&
	    cfg.trusted_proxies.n == 1);
	if (rc == 0)
		config_free(&cfg);
	for (i = 0; i < n; i++)
		unsetenv(rows[i].env);

	/* Every key once, in one file. */
	snprintf(text, sizeof(text), "%s%s", tgq, bot);
	rc = config_load_for(write_file("all.conf", text), 0, &cfg, err, sizeof(err));
	CHECK("config_every_key_once", rc == 0 && cfg.nbots == 1 &&
	    cfg.allowed_ips.n == 1 && cfg.bots[0].token_file != NULL);
	if (rc == 0)
		config_free(&cfg);

	/* Each key given twice: refused on the second one's line, whatever its row. */
	for (i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "%s", rows[i].in_tgq ? tgq : bot);
		append_key(text, sizeof(text), &rows[i]);
		if (snprintf(want, sizeof(want), "all.conf:%zu: %s: given twice",
		    (rows[i].in_tgq ? ntgq : n - ntgq) + 2, rows[i].name) < 0)
			exit(2);
		rc = config_load_for(write_file("all.conf", text), 0, &cfg, err,
		    sizeof(err));
		if (rc == 0)
			config_free(&cfg);
		if (rc == 0 || strstr(err, want) == NULL) {
			printf("  (want %s, got %s)\n", want, rc == 0 ? "success" : err);
			all_twice = 0;
		}
	}
	CHECK("config_every_key_given_twice", all_twice);
	clear_env();
}

/* allowed_users: positive ids; empty or unset is everyone.  deny_text: 1 to 4096
 * characters, counted as Telegram counts them. */
static void
test_allowed_users(void)
{
	struct config	 cfg;
	char		 err[512], text[16384];
	size_t		 i;
	int		 rc;

	clear_env();
	rc = load_text("[bot a]\nallowed_users = 11111, 22222 33333\n"
	    "deny_text = \xe2\x9b\x94 You are not authorized to use this bot.\n"
	    "[bot b]\nhandler = echo\n", &cfg, err, sizeof(err));
	CHECK("config_allowed_users_list", rc == 0 && cfg.nbots == 2 &&
	    cfg.bots[0].allowed_users.n == 3 &&
	    cfg.bots[0].allowed_users.ids[2] == 33333 &&
	    user_list_allows(&cfg.bots[0].allowed_users, 22222) &&
	    !user_list_allows(&cfg.bots[0].allowed_users, 44444) &&
	    cfg.bots[0].deny_text != NULL &&
	    strncmp(cfg.bots[0].deny_text, "\xe2\x9b\x94 You", 7) == 0);
	CHECK("config_allowed_users_unset_is_everyone", rc == 0 &&
	    cfg.bots[1].allowed_users.n == 0 && cfg.bots[1].deny_text == NULL &&
	    user_list_allows(&cfg.bots[1].allowed_users, 44444));
	if (rc == 0)
		config_free(&cfg);

	/* The variable describes the bot "default"; empty lifts the list. */
	setenv("TGQ_ALLOWED_USERS", "5", 1);
	rc = load_text("[bot default]\nallowed_users = 1, 2\n", &cfg, err,
	    sizeof(err));
	CHECK("config_allowed_users_env", rc == 0 &&
	    cfg.bots[0].allowed_users.n == 1 && cfg.bots[0].allowed_users.ids[0] == 5);
	if (rc == 0)
		config_free(&cfg);
	setenv("TGQ_ALLOWED_USERS", "", 1);
	rc = load_text("[bot default]\nallowed_users = 1, 2\n", &cfg, err,
	    sizeof(err));
	CHECK("config_allowed_users_env_empty", rc == 0 &&
	    cfg.bots[0].allowed_users.n == 0);
	if (rc == 0)
		config_free(&cfg);
	setenv("TGQ_ALLOWED_USERS", "12, -3", 1);
	rc = load_text("", &cfg, err, sizeof(err));
	CHECK("config_rejects_allowed_users_env_negative", rc == -1 &&
	    strstr(err, "TGQ_ALLOWED_USERS: allowed_users: entry 2 is not a user id")
	    != NULL);
	if (rc == 0)
		config_free(&cfg);
	clear_env();

	expect_error("allowed_users_word", "[bot a]\nallowed_users = 1, hunter2\n",
	    "tgq.conf:2: allowed_users: entry 2 is not a user id (not a number");
	expect_error("allowed_users_negative", "[bot a]\nallowed_users = -5\n",
	    "tgq.conf:2: allowed_users: entry 1 is not a user id (too small");
	expect_error("allowed_users_zero", "[bot a]\nallowed_users = 7 0\n",
	    "allowed_users: entry 2 is not a user id (too small");
	expect_error("allowed_users_huge", "[bot a]\nallowed_users = "
	    "99999999999999999999\n", "allowed_users: entry 1 is not a user id");
	expect_error("allowed_users_twice", "[bot a]\nallowed_users = 1\n"
	    "allowed_users = 2\n", "tgq.conf:3: allowed_users: given twice");
	expect_error("deny_text_empty", "[bot a]\ndeny_text =\n",
	    "tgq.conf:2: deny_text: empty value");
	/* 4096 three-byte characters are within Telegram's limit; 4097 are not
	 * (through the variable: a file's lines are shorter). */
	text[0] = '\0';
	for (i = 0; i < 4096; i++)
		memcpy(text + 3 * i, "\xe2\x9b\x94", 4);
	setenv("TGQ_DENY_TEXT", text, 1);
	rc = load_text("", &cfg, err, sizeof(err));
	CHECK("config_deny_text_4096_characters", rc == 0 && cfg.nbots == 1 &&
	    strlen(cfg.bots[0].deny_text) == 3 * 4096);
	if (rc == 0)
		config_free(&cfg);
	memcpy(text + 3 * 4096, "x", 2);
	setenv("TGQ_DENY_TEXT", text, 1);
	rc = load_text("", &cfg, err, sizeof(err));
	CHECK("config_rejects_deny_text_long", rc == -1 && strstr(err,
	    "TGQ_DENY_TEXT: deny_text: must be 1 to 4096 characters") != NULL);
	if (rc == 0)
		config_free(&cfg);
	clear_env();
}

/* The keys set-webhook registers: read from the file, the environment over it,
 * each checked; none set is none sent. */
static void
test_registration(void)
{
	const struct bot_config	*b;
	struct config		 cfg;
	char			 err[512];

	clear_env();
	CHECK("config_registration_file", load_text("[bot a]\nallowed_updates = "
	    "message, callback_query message\nmax_connections = 7\n"
	    "ip_address = 2001:db8::1\n", &cfg, err, sizeof(err)) == 0 &&
	    (b = config_bot(&cfg, "a", 1)) != NULL &&
	    strcmp(b->allowed_updates, "[\"message\",\"callback_query\"]") == 0 &&
	    b->max_connections == 7 && strcmp(b->ip_address, "2001:db8::1") == 0);
	config_free(&cfg);
	setenv("TGQ_ALLOWED_UPDATES", "poll", 1);
	setenv("TGQ_MAX_CONNECTIONS", "100", 1);
	setenv("TGQ_IP_ADDRESS", "192.0.2.7", 1);
	CHECK("config_registration_env", load_text("[bot default]\nallowed_updates = "
	    "message\nmax_connections = 1\n", &cfg, err, sizeof(err)) == 0 &&
	    (b = config_bot(&cfg, "default", 7)) != NULL &&
	    strcmp(b->allowed_updates, "[\"poll\"]") == 0 &&
	    b->max_connections == 100 && strcmp(b->ip_address, "192.0.2.7") == 0);
	config_free(&cfg);
	clear_env();
	CHECK("config_registration_unset", load_text("[bot a]\nhandler = echo\n",
	    &cfg, err, sizeof(err)) == 0 && (b = config_bot(&cfg, "a", 1)) != NULL &&
	    b->allowed_updates == NULL && b->max_connections == 0 &&
	    b->ip_address == NULL);
	config_free(&cfg);
	expect_error("unknown_update_type", "[bot a]\nallowed_updates = message, "
	    "hunter2\n", "tgq.conf:2: allowed_updates: entry 2 is not an update type");
	expect_error("max_connections_zero", "[bot a]\nmax_connections = 0\n",
	    "tgq.conf:2: max_connections: too small (1 to 100)");
	expect_error("max_connections_large", "[bot a]\nmax_connections = 101\n",
	    "max_connections: too large (1 to 100)");
	expect_error("ip_address", "[bot a]\nip_address = 10.0.0.hunter2\n",
	    "tgq.conf:2: ip_address: must be an IPv4 or IPv6 address");
	expect_error("empty_allowed_updates", "[bot a]\nallowed_updates =\n",
	    "allowed_updates: empty value");
}

/* listen: loopback addresses and unix sockets only; hold_limit's default. */
static void
test_listen(void)
{
	struct listen_addr	 la;
	struct config		 cfg;
	char			 err[256];

	CHECK("listen_v4", listen_parse("127.0.0.1:8081", &la, err,
	    sizeof(err)) == 0 && la.family == AF_INET && la.port == 8081 &&
	    strcmp(la.host, "127.0.0.1") == 0);
	CHECK("listen_localhost", listen_parse("localhost:80", &la, err,
	    sizeof(err)) == 0 && strcmp(la.host, "127.0.0.1") == 0);
	CHECK("listen_v6", listen_parse("[::1]:9", &la, err, sizeof(err)) == 0 &&
	    la.family == AF_INET6 && strcmp(la.host, "::1") == 0);
	CHECK("listen_unix", listen_parse("/run/tgq/api.sock", &la, err,
	    sizeof(err)) == 0 && la.family == AF_UNIX);
	CHECK("listen_refuses_any", listen_parse("0.0.0.0:8081", &la, err,
	    sizeof(err)) == -1 && strstr(err, "loopback") != NULL);
	CHECK("listen_refuses_public_v6", listen_parse("[2001:db8::1]:80", &la,
	    err, sizeof(err)) == -1);
	CHECK("listen_refuses_name", listen_parse("example.org:80", &la, err,
	    sizeof(err)) == -1);
	CHECK("listen_refuses_port", listen_parse("127.0.0.1:0", &la, err,
	    sizeof(err)) == -1 && listen_parse("127.0.0.1:65536", &la, err,
	    sizeof(err)) == -1 && listen_parse("127.0.0.1", &la, err,
	    sizeof(err)) == -1);
	CHECK("listen_refuses_relative", listen_parse("api.sock", &la, err,
	    sizeof(err)) == -1);
	expect_error("listen_public", "[tgq]\nlisten = 10.0.0.1:8081\n",
	    "tgq.conf:2: listen: only a loopback address");
	CHECK("config_listen_and_hold_limit", load_text("[tgq]\nlisten = "
	    "[::1]:8081\n[bot a]\nhandler = pull\n", &cfg, err,
	    sizeof(err)) == 0 && strcmp(cfg.listen, "[::1]:8081") == 0 &&
	    cfg.hold_limit_s == 5 && strcmp(cfg.bots[0].handler, "pull") == 0);
	config_free(&cfg);
}

/* handler = http(s)://HOST[:PORT]/PATH: the form is checked at load, a URL with
 * credentials refused without quoting it; the secret it forwards is
 * forward_secret_file, else the webhook secret, read only when asked for. */
static void
test_http_handler(void)
{
	struct config	 cfg;
	char		 err[512], text[1024];
	int		 rc;

	clear_env();
	rc = load_text("[bot a]\nhandler = http://127.0.0.1:8080/bot/hook\n"
	    "[bot b]\nhandler = https://[::1]/x?y=1\n[bot c]\n"
	    "handler = http://localhost\n", &cfg, err, sizeof(err));
	CHECK("config_http_handlers", rc == 0 && cfg.nbots == 3 &&
	    config_handler_is_http(cfg.bots[0].handler) &&
	    config_handler_is_http(cfg.bots[1].handler) &&
	    !config_handler_is_http("echo") && config_check_handler(&cfg.bots[0],
	    err, sizeof(err)) == 0);
	if (rc == 0)
		config_free(&cfg);
	expect_error("http_credentials", "[bot a]\nhandler = http://u:hunter2@h/x\n",
	    "tgq.conf:2: bot a: handler URL must not hold a user or password");
	expect_error("http_port", "[bot a]\nhandler = http://h:65536/hunter2\n",
	    "handler URL port must be 1 to 65535");
	expect_error("http_no_host", "[bot a]\nhandler = http:///hunter2\n",
	    "handler URL has no host");
	expect_error("http_blank", "[bot a]\nhandler = http://h/a hunter2\n",
	    "handler URL has a blank");
	expect_error("http_fragment", "[bot a]\nhandler = http://h/#hunter2\n",
	    "#fragment");
	expect_error("http_host_chars", "[bot a]\nhandler = http://h!hunter2/\n",
	    "handler URL host has a character");
	expect_error("ftp_handler", "[bot a]\nhandler = ftp://h/hunter2\n",
	    "handler must be echo, exec:PROGRAM [ARGS], pull, http://HOST[:PORT]/PATH "
	    "or https://");
	expect_error("socket_not_http", "[bot a]\nhandler_socket = /run/hunter2.sock\n",
	    "bot a: handler_socket is for an http:// or https:// handler");
	expect_error("socket_relative", "[bot a]\nhandler = http://h/x\n"
	    "handler_socket = run/hunter2.sock\n",
	    "bot a: handler_socket must be an absolute path");
	expect_error("http_no_slashes", "[bot a]\nhandler = http:hunter2/x\n",
	    "handler URL must start with http:// or https://");

	write_file("fwd.secret", "forward_1\n");
	write_file("hook.secret", "webhook_1\n");
	snprintf(text, sizeof(text), "[bot a]\nhandler = http://h/x\n"
	    "forward_secret_file = %s/fwd.secret\nsecret_file = %s/hook.secret\n"
	    "[bot b]\nhandler = http://h/y\nsecret_file = %s/hook.secret\n"
	    "[bot c]\nsecret_file = %s/hook.secret\n", dir, dir, dir, dir);
	rc = config_load_for(write_file("tgq.conf", text),
	    CONFIG_NEED_FORWARD_SECRETS, &cfg, err, sizeof(err));
	CHECK("config_forward_secrets", rc == 0 &&
	    cfg.bots[0].forward_secret != NULL &&
	    strcmp(cfg.bots[0].forward_secret, "forward_1") == 0 &&
	    cfg.bots[0].secret == NULL && cfg.bots[1].forward_secret == NULL &&
	    cfg.bots[1].secret != NULL &&
	    strcmp(cfg.bots[1].secret, "webhook_1") == 0 &&
	    cfg.bots[2].secret == NULL);
	if (rc == 0)
		config_free(&cfg);
	write_file("fwd.secret", "not valid\n");
	rc = config_load_for(write_file("tgq.conf", text),
	    CONFIG_NEED_FORWARD_SECRETS, &cfg, err, sizeof(err));
	CHECK("config_forward_secret_checked", rc == -1 &&
	    strstr(err, "bot a: the forward secret must be") != NULL);
}

int
main(void)
{
	char cmd[PATH_MAX + 16];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_defaults();
	test_file();
	test_credentials();
	test_errors();
	test_table();
	test_allowed_users();
	test_registration();
	test_listen();
	test_http_handler();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_exit();
}
