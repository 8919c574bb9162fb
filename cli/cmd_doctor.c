/*
 * tgq doctor: looks at everything a working setup needs, in the order it is
 * needed, and says for each what is wrong and how to fix it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"

#define STALE_PENDING_S 300

#define MAX_GROUPS 64

enum verdict { V_OK, V_WARNING, V_ERROR };

/* The user tgq-webhook runs as: what the queue's permissions are checked for. */
struct service_user {
	char	 name[64];
	char	 group[64];
	uid_t	 uid;
	gid_t	 groups[MAX_GROUPS];
	int	 ngroups;
	const char *how;	/* how it was found, for the messages */
};

/* A running tgq-webhook of this queue: the oldest one, found in /proc. */
struct webhook_proc {
	pid_t	 pid;		/* 0 when none runs */
	uid_t	 uid;
	int64_t	 started;	/* unix time */
};

/* What doctor could not read of the secrets (empty when all was read). */
struct secret_errors {
	char	 token[1024];
	char	 secret[1024];
};

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
	/* A message may quote Telegram (a username, a URL, an error): clean. */
	printf("%-8s %-14s ", words[v], name);
	cli_put_clean(stdout, msg, 0);
	fputc('\n', stdout);
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

/*
 * tgq loaded the configuration without secrets; read them now, each on its own,
 * so that one that cannot be read is reported as its check, not as a broken
 * configuration.  Replaces c->cfg with the configuration holding what was read.
 */
static void
load_secrets(struct cli *c, struct secret_errors *se)
{
	struct config	 probe, full;
	unsigned	 need = 0;
	char		 err[1024];

	memset(se, 0, sizeof(*se));
	if (config_load_for(c->config_path, CONFIG_NEED_TOKENS, &probe,
	    se->token, sizeof(se->token)) == 0) {
		need |= CONFIG_NEED_TOKENS;
		config_free(&probe);
	}
	if (config_load_for(c->config_path, CONFIG_NEED_SECRETS, &probe,
	    se->secret, sizeof(se->secret)) == 0) {
		need |= CONFIG_NEED_SECRETS;
		config_free(&probe);
	}
	if (need == 0 || config_load_for(c->config_path, need, &full, err,
	    sizeof(err)) == -1)
		return;
	config_free(&c->cfg);
	c->cfg = full;
	if (cli_select_bot(c, c->bot_name) == -1)
		c->bot = NULL;
}

static void
check_bot(struct cli *c, struct report *r, const struct secret_errors *se)
{
	char err[1024];

	if (c->bot == NULL) {
		check(r, "bot", V_ERROR, "set TGQ_BOT_TOKEN_FILE and "
		    "TGQ_WEBHOOK_SECRET_FILE, or add a [bot NAME] section",
		    "no bot is configured");
		return;
	}
	if (se->token[0] != '\0')
		check(r, "bot", V_ERROR, "run tgq doctor as root, or make token_file "
		    "readable (the services get it through LoadCredential=)", "bot %s: "
		    "the token cannot be read: %s", c->bot->name, se->token);
	else if (c->bot->token == NULL)
		check(r, "bot", V_ERROR, "set token_file (or TGQ_BOT_TOKEN_FILE)",
		    "bot %s has no token", c->bot->name);
	else
		check(r, "bot", V_OK, NULL, "bot %s has a token", c->bot->name);
	if (se->secret[0] != '\0')
		check(r, "secret", V_ERROR, "run tgq doctor as root, or make "
		    "secret_file readable (tgq-webhook gets it through "
		    "LoadCredential=)", "bot %s: the webhook secret cannot be read: %s",
		    c->bot->name, se->secret);
	else if (c->bot->secret == NULL && c->bot->webhook_url == NULL)
		check(r, "secret", V_OK, NULL, "no webhook secret, and none needed: "
		    "no webhook_url is configured (tgq poll)");
	else if (c->bot->secret == NULL)
		check(r, "secret", V_ERROR, "set secret_file (or "
		    "TGQ_WEBHOOK_SECRET_FILE), then tgq set-webhook", "bot %s has no "
		    "webhook secret: tgq-webhook refuses its updates", c->bot->name);
	else if (c->bot->secret_prev != NULL)
		check(r, "secret", V_OK, NULL, "a webhook secret of %zu characters, "
		    "and the one before it, accepted until tgq rotate-secret --finish",
		    c->bot->secret_len);
	else
		check(r, "secret", V_OK, NULL, "a webhook secret of %zu characters",
		    c->bot->secret_len);
	if (config_check_handler(c->bot, err, sizeof(err)) == -1)
		check(r, "handler", V_ERROR, "install the program, or correct the "
		    "bot's handler; tgq-drain refuses to start until then", "%s", err);
	else
		check(r, "handler", V_OK, NULL, "%s", c->bot->handler != NULL &&
		    strncmp(c->bot->handler, "exec:", 5) == 0 ? "the exec: program "
		    "is there and executable" : "echo");
}

/* 1 when the link (or maps line's path) names path, path-wal or path-shm. */
static int
names_queue(const char *text, const char *path, size_t pathlen)
{
	return strncmp(text, path, pathlen) == 0 && (text[pathlen] == '\0' ||
	    strcmp(text + pathlen, "-wal") == 0 || strcmp(text + pathlen, "-shm") == 0 ||
	    strcmp(text + pathlen, "-metrics") == 0);
}

/* 1 when process pid has the queue (or its metrics file, which it maps even
 * when it could not open the queue) open. */
static int
proc_uses_queue(const char *pid, const char *real)
{
	char		 path[PATH_MAX], link[PATH_MAX], line[PATH_MAX + 256];
	size_t		 reallen = strlen(real);
	struct dirent	*de;
	DIR		*d;
	FILE		*fp;
	ssize_t		 n;
	int		 found = 0;

	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	if ((d = opendir(path)) != NULL) {
		while (!found && (de = readdir(d)) != NULL) {
			snprintf(path, sizeof(path), "/proc/%s/fd/%s", pid, de->d_name);
			if ((n = readlink(path, link, sizeof(link) - 1)) > 0) {
				link[n] = '\0';
				found = names_queue(link, real, reallen);
			}
		}
		closedir(d);
	}
	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	if (!found && (fp = fopen(path, "re")) != NULL) {
		while (!found && fgets(line, sizeof(line), fp) != NULL) {
			char *slash = strchr(line, '/');

			line[strcspn(line, "\n")] = '\0';
			found = slash != NULL && names_queue(slash, real, reallen);
		}
		fclose(fp);
	}
	return found;
}

/* The decimal number at text, up to the first blank or newline; -1 on none. */
static int64_t
leading_number(const char *text)
{
	char		 word[32];
	const char	*errstr;
	size_t		 n = strcspn(text, " \n");
	int64_t		 v;

	if (n == 0 || n >= sizeof(word))
		return -1;
	memcpy(word, text, n);
	word[n] = '\0';
	return parse_int(word, 0, INT64_MAX, &v, &errstr) == 0 ? v : -1;
}

/* When process pid started, in unix time; -1 when unknown. */
static int64_t
proc_started(const char *pid)
{
	char		 path[PATH_MAX], buf[1024], *p;
	int64_t		 btime = -1, ticks;
	long		 hz = sysconf(_SC_CLK_TCK);
	FILE		*fp;
	int		 field;

	if ((fp = fopen("/proc/stat", "re")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), fp) != NULL)
		if (strncmp(buf, "btime ", 6) == 0) {
			btime = leading_number(buf + 6);
			break;
		}
	fclose(fp);
	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if (btime == -1 || hz <= 0 || (fp = fopen(path, "re")) == NULL)
		return -1;
	p = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	/* The name, in parentheses, may hold blanks: count fields after it. */
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return -1;
	for (field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || (ticks = leading_number(p + 1)) == -1)
		return -1;
	return btime + ticks / hz;
}

static void
find_webhook(const char *database, struct webhook_proc *w)
{
	char		 real[PATH_MAX * 2 + 2], path[PATH_MAX], comm[64];
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	FILE		*fp;
	int64_t		 started;

	memset(w, 0, sizeof(*w));
	/* The queue may not exist yet: its folder's real path and its name. */
	{
		char copy[PATH_MAX], dirreal[PATH_MAX], base[PATH_MAX];

		snprintf(copy, sizeof(copy), "%s", database);
		snprintf(base, sizeof(base), "%s", basename(copy));
		snprintf(copy, sizeof(copy), "%s", database);
		if (realpath(dirname(copy), dirreal) == NULL)
			return;
		snprintf(real, sizeof(real), "%s/%s", strcmp(dirreal, "/") == 0 ? "" :
		    dirreal, base);
	}
	if ((d = opendir("/proc")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		if ((fp = fopen(path, "re")) == NULL)
			continue;
		if (fgets(comm, sizeof(comm), fp) == NULL)
			comm[0] = '\0';
		fclose(fp);
		if (strcmp(comm, "tgq-webhook\n") != 0 ||
		    !proc_uses_queue(de->d_name, real))
			continue;
		snprintf(path, sizeof(path), "/proc/%s", de->d_name);
		if (stat(path, &st) == -1 || (started = proc_started(de->d_name)) == -1)
			continue;
		if (w->pid == 0 || started < w->started) {
			w->pid = (pid_t)strtol(de->d_name, NULL, 10);
			w->uid = st.st_uid;
			w->started = started;
		}
	}
	closedir(d);
}

/* The running webhook's user, else the user tgq the shipped units name, else
 * the user running doctor. */
static void
service_user(const struct webhook_proc *w, struct service_user *u)
{
	struct passwd	*pw = NULL;
	struct group	*gr;

	memset(u, 0, sizeof(*u));
	if (w->pid != 0 && (pw = getpwuid(w->uid)) != NULL)
		u->how = "the user tgq-webhook runs as";
	else if ((pw = getpwnam("tgq")) != NULL)
		u->how = "the user the tgq units run as";
	else if ((pw = getpwuid(geteuid())) != NULL)
		u->how = "this user";
	if (pw == NULL) {
		u->uid = w->pid != 0 ? w->uid : geteuid();
		snprintf(u->name, sizeof(u->name), "%lu", (unsigned long)u->uid);
		snprintf(u->group, sizeof(u->group), "%lu", (unsigned long)getegid());
		u->groups[0] = getegid();
		u->ngroups = 1;
		u->how = "this user";
		return;
	}
	u->uid = pw->pw_uid;
	snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	if ((gr = getgrgid(pw->pw_gid)) != NULL)
		snprintf(u->group, sizeof(u->group), "%s", gr->gr_name);
	else
		snprintf(u->group, sizeof(u->group), "%lu", (unsigned long)pw->pw_gid);
	u->ngroups = MAX_GROUPS;
	if (getgrouplist(pw->pw_name, pw->pw_gid, u->groups, &u->ngroups) == -1) {
		u->groups[0] = pw->pw_gid;
		u->ngroups = 1;
	}
}

/* 1 when the user may do all of want (S_IROTH, S_IWOTH, S_IXOTH bits) to st. */
static int
user_may(const struct service_user *u, const struct stat *st, mode_t want)
{
	int i;

	if (u->uid == 0)
		return 1;
	if (st->st_uid == u->uid)
		return ((st->st_mode >> 6) & want) == want;
	for (i = 0; i < u->ngroups; i++)
		if (st->st_gid == u->groups[i])
			return ((st->st_mode >> 3) & want) == want;
	return (st->st_mode & want) == want;
}

static const char *
owner_text(const struct stat *st, char *buf, size_t len)
{
	struct passwd	*pw = getpwuid(st->st_uid);
	struct group	*gr = getgrgid(st->st_gid);
	char		 u[32], g[32];

	snprintf(u, sizeof(u), "%lu", (unsigned long)st->st_uid);
	snprintf(g, sizeof(g), "%lu", (unsigned long)st->st_gid);
	snprintf(buf, len, "%s:%s %04o", pw ? pw->pw_name : u, gr ? gr->gr_name : g,
	    (unsigned)(st->st_mode & 07777));
	return buf;
}

static int64_t
db_int(sqlite3 *db, const char *sql, int64_t def)
{
	sqlite3_stmt	*st;
	int64_t		 v = def;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return def;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, ONE_VALUE) != SQLITE_NULL)
		v = sqlite3_column_int64(st, ONE_VALUE);
	sqlite3_finalize(st);
	return v;
}

/*
 * The queue's folder and files as tgq-webhook's user sees them: a file it cannot
 * write answers 503 to every update, so it is an error whoever runs doctor.
 */
static int
check_queue_access(struct report *r, const char *path, const char *dir,
    const struct service_user *u)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char		 file[PATH_MAX + 8], owner[160], fix[PATH_MAX * 3 + 256];
	struct stat	 st;
	size_t		 i;

	if (stat(dir, &st) == -1) {
		check(r, "database", V_ERROR, "create it, or check database in the "
		    "configuration", "the folder %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!user_may(u, &st, S_IWOTH | S_IXOTH)) {
		snprintf(fix, sizeof(fix), "give the folder to %s: chown %s:%s %s && "
		    "chmod 0750 %s", u->name, u->name, u->group, dir, dir);
		check(r, "database", V_ERROR, fix, "the folder %s (%s) is not writable "
		    "by %s, %s: it cannot create the queue, its -wal and -shm there",
		    dir, owner_text(&st, owner, sizeof(owner)), u->name, u->how);
		return -1;
	}
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
		if (stat(file, &st) == -1 || user_may(u, &st, S_IROTH | S_IWOTH))
			continue;
		snprintf(fix, sizeof(fix), "give the queue's files to %s: chown %s:%s "
		    "%s*", u->name, u->name, u->group, path);
		check(r, "database", V_ERROR, fix, "%s (%s) is not writable by %s, %s: "
		    "every update is answered 503", file, owner_text(&st, owner,
		    sizeof(owner)), u->name, u->how);
		return -1;
	}
	return 0;
}

/* Returns 1 when the queue can be looked into. */
static int
check_database(struct cli *c, struct report *r, const struct service_user *u)
{
	const char	*path = c->cfg.database;
	char		 copy[PATH_MAX], dir[PATH_MAX];
	struct stat	 st;
	sqlite3		*db = NULL;
	int64_t		 version;
	int		 ok, access_ok;

	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(copy));	/* points into copy */
	access_ok = check_queue_access(r, path, dir, u) == 0;
	if (stat(path, &st) == -1) {
		if (access_ok)
			check(r, "database", V_ERROR, "start tgq-webhook once (it creates "
			    "the file), or check database in the configuration", "%s does "
			    "not exist", path);
		return 0;
	}
	if (access_ok)
		check(r, "database", V_OK, NULL, "%s is writable by %s, %s", path,
		    u->name, u->how);
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

/*
 * What else set-webhook registers (allowed_updates, max_connections,
 * ip_address, as configured), and whether the secret changed since it was
 * registered: tgq keeps its fingerprint, as Telegram never tells it back.
 */
static void
check_registration(struct cli *c, struct report *r, const char *info)
{
	struct webhook_difference	 d[WEBHOOK_DIFFERENCES_MAX];
	struct webhook_settings		 s;
	struct queue			*q = NULL;
	char				 err[512], ago[32];
	int64_t				 when;
	size_t				 n, i, shown = 0;
	int				 same;

	webhook_settings_configured(c, &s);
	n = webhook_differences(c, &s, info, d);
	for (i = 0; i < n; i++) {
		if (strcmp(d[i].what, "url") == 0)
			continue;	/* check_webhook said it */
		check(r, "registration", V_ERROR, "tgq set-webhook --if-changed",
		    "Telegram has %s %s, the configuration says %s", d[i].what,
		    d[i].telegram, d[i].configured);
		shown++;
	}
	if (shown == 0 && (s.allowed_json || s.max_connections || s.ip))
		check(r, "registration", V_OK, NULL, "Telegram has the configured "
		    "allowed_updates, max_connections and ip_address");
	if (c->bot->secret == NULL || access(c->cfg.database, F_OK) != 0 ||
	    queue_open_read(c->cfg.database, c->cfg.busy_timeout_ms, &q, err,
	    sizeof(err)) == -1)
		return;	/* the secret and database checks said why */
	same = webhook_secret_registered(c, q, c->bot->secret, c->bot->secret_len,
	    &when);
	queue_close(q);
	if (same == 1)
		check(r, "registration", V_OK, NULL, "the secret registered %s ago is "
		    "the configured one", cli_ago(ago, sizeof(ago), when, now_unix()));
	else if (same == 0)
		check(r, "registration", V_ERROR, "tgq set-webhook --if-changed",
		    "the secret changed after it was registered (%s ago): Telegram "
		    "still sends the old one", cli_ago(ago, sizeof(ago), when,
		    now_unix()));
	else
		check(r, "registration", V_WARNING, "tgq set-webhook --if-changed "
		    "(registers, and records the secret's fingerprint)", "no record "
		    "of the secret registered: whether Telegram has the configured "
		    "one cannot be told");
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
	if ((url == NULL || *url == '\0') && configured == NULL)
		check(r, "webhook", V_OK, NULL, "no webhook is registered and none is "
		    "configured (tgq poll fetches the updates)");
	else if (url == NULL || *url == '\0')
		check(r, "webhook", V_ERROR, "tgq set-webhook", "no webhook is "
		    "registered with Telegram");
	else if (configured == NULL)
		check(r, "webhook", V_WARNING, "set webhook_url (TGQ_WEBHOOK_URL) to "
		    "the URL Telegram should call", "Telegram calls %s; no webhook_url "
		    "is configured to compare", url);
	else if (strcmp(url, configured) != 0)
		check(r, "webhook", V_ERROR, "tgq set-webhook", "Telegram calls %s but "
		    "the configuration says %s", url, configured);
	else
		check(r, "webhook", V_OK, NULL, "Telegram calls %s", url);
	if (url != NULL && *url != '\0' && configured != NULL)
		check_registration(c, r, a.result);
	/* Telegram never tells the secret back; a 401 from tgq-webhook is how a
	 * secret that differs from the configured one shows.  tgq-webhook rereads
	 * a secret file that changed; a LoadCredential= copy is made when its unit
	 * starts, so that is the one case left where the file it checks lags. */
	if (last_error != NULL && strstr(last_error, "401") != NULL)
		check(r, "webhook", V_ERROR, "tgq set-webhook (registers the configured "
		    "secret; tgq-webhook rereads a secret file that changes, a "
		    "LoadCredential= copy when its unit starts)", "Telegram's deliveries "
		    "are refused with 401 "
		    "(%s ago): the secret Telegram sends differs from the one tgq-webhook "
		    "checks", cli_ago(ago, sizeof(ago), when, now_unix()));
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

	if ((q = cli_queue_read(c)) == NULL)
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
	struct secret_errors	 se;
	struct webhook_proc	 w;
	struct service_user	 u;
	struct report		 r;
	int			 opt, rc;

	if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, &rc))
		return rc;
	if (opt != -1 || optind < argc)
		return cli_usage_error(cmd, "takes no arguments");
	load_secrets(c, &se);
	find_webhook(c->cfg.database, &w);
	service_user(&w, &u);
	report_begin(&r, c->json);
	check(&r, "configuration", V_OK, NULL, "%s", c->cfg.path ? c->cfg.path :
	    "no file; the environment alone");
	check_bot(c, &r, &se);
	if (check_database(c, &r, &u))
		check_queue(c, &r);
	check_token(c, &r);
	check_webhook(c, &r);
	return report_end(&r);
}
