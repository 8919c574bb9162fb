/*
 * Configuration: an INI file (parsed by inih) with the environment on top, so that a
 * single bot needs no file at all.  Secrets are read from files or the environment,
 * never from argv, and no error message ever quotes a configuration line: a line may
 * hold a secret.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "tgq.h"

#define SECRET_FILE_MAX 4096

struct parse_state {
	struct config	*cfg;
	FILE		*fp;
	const char	*path;
	int		 lineno;	/* the line inih is working on */
	int		 error_line;	/* first line our handler refused, 0 when none */
	int		 long_line;	/* first line longer than inih reads */
	int		 nul_line;	/* first line with a NUL byte */
	char		 reason[256];
	/* Relative secret files are found beside the configuration file. */
	char		 dir[PATH_MAX];
	/* What each [tgq] key and bot key was set on, to refuse repeats. */
	unsigned	 seen_tgq;
	unsigned	 seen_bot[CONFIG_MAX_BOTS];
	char		*token_file[CONFIG_MAX_BOTS];
	char		*secret_file[CONFIG_MAX_BOTS];
};

static int
set_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

static int
bot_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len < 1 || len > BOT_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		    c == '-'))
			return 0;
	}
	return 1;
}

const struct bot_config *
config_bot(const struct config *cfg, const char *name, size_t namelen)
{
	size_t i;

	for (i = 0; i < cfg->nbots; i++)
		if (strlen(cfg->bots[i].name) == namelen &&
		    memcmp(cfg->bots[i].name, name, namelen) == 0)
			return &cfg->bots[i];
	return NULL;
}

/* Finds or adds the bot; -1 when the table is full. */
static int
bot_index(struct config *cfg, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < cfg->nbots; i++)
		if (strcmp(cfg->bots[i].name, name) == 0)
			return (int)i;
	if (cfg->nbots == CONFIG_MAX_BOTS)
		return -1;
	memcpy(cfg->bots[cfg->nbots].name, name, len + 1);
	/* Telegram's published limits: about 30 messages a second, one a second to a
	 * chat, 20 a minute to a group. */
	cfg->bots[cfg->nbots].rate_global = 30;
	cfg->bots[cfg->nbots].rate_chat = 1;
	cfg->bots[cfg->nbots].rate_group = 20;
	return (int)cfg->nbots++;
}

/* The keys of [tgq]; the order gives each its bit in seen_tgq. */
enum tgq_key { K_DATABASE, K_DURABILITY, K_MAX_BODY, K_API_URL, K_BUSY_TIMEOUT,
	K_RETRY_AFTER, K_THREADS, K_LOG_LEVEL, K_MAX_ATTEMPTS, K_HANDLER_TIMEOUT,
	K_MAX_OUTPUT, K_SEND_TIMEOUT, K_LEASE, K_RETAIN, K_MAX_IN_FLIGHT, K_HANDLERS,
	K_ALLOWED_IPS, K_TRUSTED_PROXIES, K_NTGQ };
static const char *const tgq_keys[K_NTGQ] = { "database", "durability",
	"max_body", "api_url", "busy_timeout", "retry_after", "threads", "log_level",
	"max_attempts", "handler_timeout", "max_output", "send_timeout", "lease",
	"retain", "max_in_flight", "handlers", "allowed_ips", "trusted_proxies" };

enum bot_key { B_TOKEN_FILE, B_SECRET_FILE, B_WEBHOOK_URL, B_HANDLER,
	B_RATE_GLOBAL, B_RATE_CHAT, B_RATE_GROUP, B_NBOT };
static const char *const bot_keys[B_NBOT] = { "token_file", "secret_file",
	"webhook_url", "handler", "rate_global", "rate_chat", "rate_group" };

/* The numeric keys: where each goes, its parser and its range. */
enum number_kind { NUM_INT, NUM_SIZE, NUM_DURATION };
struct number_key {
	int		 key;
	enum number_kind kind;
	int64_t		 min, max;
	const char	*range;		/* for the error message */
};
static const struct number_key tgq_numbers[] = {
	{ K_MAX_BODY, NUM_SIZE, 1024, 64 * 1024 * 1024, "1K to 64M" },
	{ K_BUSY_TIMEOUT, NUM_INT, 0, 60000, "0 to 60000 ms" },
	{ K_RETRY_AFTER, NUM_DURATION, 1, 3600, "1 s to 1 h" },
	{ K_THREADS, NUM_INT, 1, 64, "1 to 64" },
	{ K_MAX_ATTEMPTS, NUM_INT, 1, 1000, "1 to 1000" },
	{ K_HANDLER_TIMEOUT, NUM_DURATION, 1, 3600, "1 s to 1 h" },
	{ K_MAX_OUTPUT, NUM_SIZE, 1024, 64 * 1024 * 1024, "1K to 64M" },
	{ K_SEND_TIMEOUT, NUM_DURATION, 1, 600, "1 s to 10 m" },
	{ K_LEASE, NUM_DURATION, 2, 86400, "2 s to 1 d" },
	{ K_RETAIN, NUM_DURATION, 60, 3650 * 86400, "1 m to 10 years" },
	{ K_MAX_IN_FLIGHT, NUM_INT, 1, 1000, "1 to 1000" },
	{ K_HANDLERS, NUM_INT, 1, 256, "1 to 256" },
};
static const struct number_key bot_numbers[] = {
	{ B_RATE_GLOBAL, NUM_INT, 0, 100000, "0 (off) to 100000 per second" },
	{ B_RATE_CHAT, NUM_INT, 0, 100000, "0 (off) to 100000 per second" },
	{ B_RATE_GROUP, NUM_INT, 0, 100000, "0 (off) to 100000 per minute" },
};

static int64_t *
tgq_number_slot(struct config *cfg, int key)
{
	switch (key) {
	case K_MAX_BODY: return &cfg->max_body;
	case K_BUSY_TIMEOUT: return &cfg->busy_timeout_ms;
	case K_RETRY_AFTER: return &cfg->retry_after_s;
	case K_THREADS: return &cfg->threads;
	case K_MAX_ATTEMPTS: return &cfg->max_attempts;
	case K_HANDLER_TIMEOUT: return &cfg->handler_timeout_s;
	case K_MAX_OUTPUT: return &cfg->max_output;
	case K_SEND_TIMEOUT: return &cfg->send_timeout_s;
	case K_LEASE: return &cfg->lease_s;
	case K_RETAIN: return &cfg->retain_s;
	case K_MAX_IN_FLIGHT: return &cfg->max_in_flight;
	case K_HANDLERS: return &cfg->handlers;
	default: return NULL;
	}
}

static int64_t *
bot_number_slot(struct bot_config *b, int key)
{
	switch (key) {
	case B_RATE_GLOBAL: return &b->rate_global;
	case B_RATE_CHAT: return &b->rate_chat;
	case B_RATE_GROUP: return &b->rate_group;
	default: return NULL;
	}
}

/* Parses a numeric key into slot; 1 when key is numeric (0 when not), -1 on error. */
static int
apply_number(const struct number_key *table, size_t n, int key, const char *name,
    const char *value, int64_t *slot, char *why, size_t whylen)
{
	const char	*errstr = NULL;
	int64_t		 v;
	size_t		 i;
	int		 rc;

	for (i = 0; i < n && table[i].key != key; i++)
		continue;
	if (i == n)
		return 0;
	switch (table[i].kind) {
	case NUM_SIZE:
		rc = parse_size(value, table[i].min, table[i].max, &v, &errstr);
		break;
	case NUM_DURATION:
		rc = parse_duration(value, table[i].min, table[i].max, &v, &errstr);
		break;
	default:
		rc = parse_int(value, table[i].min, table[i].max, &v, &errstr);
		break;
	}
	if (rc == -1) {
		snprintf(why, whylen, "%s: %s (%s)", name, errstr, table[i].range);
		return -1;
	}
	*slot = v;
	return 1;
}

static int
key_lookup(const char *const *keys, int nkeys, const char *name)
{
	int i;

	for (i = 0; i < nkeys; i++)
		if (strcmp(keys[i], name) == 0)
			return i;
	return -1;
}

/* Applies one [tgq] setting; "what" names its source in errors. */
static int
apply_tgq(struct config *cfg, enum tgq_key key, const char *value, char *why,
    size_t whylen)
{
	int rc = apply_number(tgq_numbers, sizeof(tgq_numbers) /
	    sizeof(tgq_numbers[0]), key, tgq_keys[key], value,
	    tgq_number_slot(cfg, key), why, whylen);

	if (rc != 0)
		return rc == 1 ? 0 : -1;
	switch (key) {
	case K_DATABASE:
		if (*value == '\0') {
			snprintf(why, whylen, "database: empty path");
			return -1;
		}
		return set_string(&cfg->database, value);
	case K_DURABILITY:
		if (strcmp(value, "full") == 0)
			cfg->durability = DURABILITY_FULL;
		else if (strcmp(value, "normal") == 0)
			cfg->durability = DURABILITY_NORMAL;
		else {
			snprintf(why, whylen, "durability: must be full or normal");
			return -1;
		}
		return 0;
	case K_API_URL:
		if (strncmp(value, "https://", 8) != 0 &&
		    strncmp(value, "http://", 7) != 0) {
			snprintf(why, whylen, "api_url: must start with https:// or http://");
			return -1;
		}
		return set_string(&cfg->api_url, value);
	case K_ALLOWED_IPS:
	case K_TRUSTED_PROXIES: {
		struct cidr_list *list = key == K_ALLOWED_IPS ? &cfg->allowed_ips :
		    &cfg->trusted_proxies;
		char reason[160];

		if (cidr_parse(value, list, reason, sizeof(reason)) == -1) {
			snprintf(why, whylen, "%s: %s", tgq_keys[key], reason);
			return -1;
		}
		return 0;
	}
	case K_LOG_LEVEL:
		if (log_level_parse(value, &cfg->log_level) == -1) {
			snprintf(why, whylen,
			    "log_level: must be err, warning, info or debug");
			return -1;
		}
		return 0;
	default:
		break;
	}
	return -1;
}

/*
 * The program of an "exec:PROGRAM [args]" handler, into prog; 0 for echo, 1 for
 * exec:, -1 (with why) for anything else.  No shell: words are split on blanks.
 */
static int
handler_program(const char *botname, const char *handler, char *prog,
    size_t proglen, char *why, size_t whylen)
{
	const char	*p;
	size_t		 n;

	prog[0] = '\0';
	if (strcmp(handler, "echo") == 0)
		return 0;
	if (strncmp(handler, "exec:", 5) != 0) {
		snprintf(why, whylen, "bot %s: handler must be echo or exec:PROGRAM",
		    botname);
		return -1;
	}
	p = handler + 5;
	p += strspn(p, " \t");
	n = strcspn(p, " \t");
	if (n == 0 || p[0] != '/') {
		snprintf(why, whylen, "bot %s: handler exec: needs an absolute program "
		    "path", botname);
		return -1;
	}
	if (n >= proglen) {
		snprintf(why, whylen, "bot %s: handler program path too long", botname);
		return -1;
	}
	memcpy(prog, p, n);
	prog[n] = '\0';
	return 1;
}

int
config_check_handler(const struct bot_config *b, char *err, size_t errlen)
{
	struct stat	 st;
	char		 prog[PATH_MAX], user[64];

	if (b->handler == NULL || handler_program(b->name, b->handler, prog,
	    sizeof(prog), err, errlen) == 0)
		return 0;
	if (prog[0] == '\0')
		return -1;	/* handler_program said why */
	if (stat(prog, &st) == -1) {
		const char *why = strerror(errno);

		snprintf(err, errlen, "bot %s: handler program %s: %s (running as user "
		    "%s)", b->name, prog, why, running_user(user, sizeof(user)));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "bot %s: handler program %s is not a regular file",
		    b->name, prog);
		return -1;
	}
	if (access(prog, X_OK) == -1) {
		snprintf(err, errlen, "bot %s: handler program %s is not executable by "
		    "user %s (chmod 0755 it)", b->name, prog,
		    running_user(user, sizeof(user)));
		return -1;
	}
	return 0;
}

static int
apply_bot(struct parse_state *ps, int bot, enum bot_key key, const char *value,
    char *why, size_t whylen)
{
	struct bot_config	*b = &ps->cfg->bots[bot];
	int			 rc;

	if (*value == '\0') {
		snprintf(why, whylen, "%s: empty value", bot_keys[key]);
		return -1;
	}
	rc = apply_number(bot_numbers, sizeof(bot_numbers) / sizeof(bot_numbers[0]),
	    key, bot_keys[key], value, bot_number_slot(b, key), why, whylen);
	if (rc != 0)
		return rc == 1 ? 0 : -1;
	switch (key) {
	case B_TOKEN_FILE:
		return set_string(&ps->token_file[bot], value);
	case B_SECRET_FILE:
		return set_string(&ps->secret_file[bot], value);
	case B_WEBHOOK_URL:
		if (strncmp(value, "https://", 8) != 0) {
			snprintf(why, whylen, "webhook_url: must start with https://");
			return -1;
		}
		return set_string(&b->webhook_url, value);
	case B_HANDLER: {
		char prog[PATH_MAX];

		if (handler_program(b->name, value, prog, sizeof(prog), why,
		    whylen) == -1)
			return -1;
		return set_string(&b->handler, value);
	}
	default:
		break;
	}
	return -1;
}

static int
ini_handler_fn(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state	*ps = user;
	char			*why = ps->reason;
	size_t			 whylen = sizeof(ps->reason);
	int			 key, bot;

	if (ps->error_line != 0)
		return 1;	/* report the first error only */
	if (strcmp(section, "tgq") == 0) {
		if ((key = key_lookup(tgq_keys, K_NTGQ, name)) == -1) {
			snprintf(why, whylen, "unknown key \"%s\" in [tgq]", name);
			goto fail;
		}
		if (ps->seen_tgq & (1u << key)) {
			snprintf(why, whylen, "%s: given twice", name);
			goto fail;
		}
		ps->seen_tgq |= 1u << key;
		if (apply_tgq(ps->cfg, (enum tgq_key)key, value, why, whylen) == -1)
			goto fail_oom;
		return 1;
	}
	if (strncmp(section, "bot ", 4) == 0) {
		const char *botname = section + 4;

		if (!bot_name_valid(botname, strlen(botname))) {
			snprintf(why, whylen,
			    "bot names are 1-%d characters of a-z 0-9 _ -", BOT_NAME_MAX);
			goto fail;
		}
		if ((bot = bot_index(ps->cfg, botname)) == -1) {
			snprintf(why, whylen, "more than %d bots", CONFIG_MAX_BOTS);
			goto fail;
		}
		if (strcmp(name, "token") == 0 || strcmp(name, "secret") == 0) {
			snprintf(why, whylen, "%s: secrets are not written here; "
			    "use %s_file", name, name);
			goto fail;
		}
		if ((key = key_lookup(bot_keys, B_NBOT, name)) == -1) {
			snprintf(why, whylen, "unknown key \"%s\" in [bot %s]", name,
			    botname);
			goto fail;
		}
		if (ps->seen_bot[bot] & (1u << key)) {
			snprintf(why, whylen, "%s: given twice", name);
			goto fail;
		}
		ps->seen_bot[bot] |= 1u << key;
		if (apply_bot(ps, bot, (enum bot_key)key, value, why, whylen) == -1)
			goto fail_oom;
		return 1;
	}
	if (*section == '\0')
		snprintf(why, whylen, "key \"%s\" outside a section", name);
	else
		snprintf(why, whylen, "unknown section; use [tgq] or [bot NAME]");
	goto fail;
fail_oom:
	if (*why == '\0')
		snprintf(why, whylen, "out of memory");
fail:
	ps->error_line = ps->lineno;
	return 0;
}

/*
 * fgets for inih, one byte at a time so that nothing hides from it: counts
 * lines, notices lines longer than inih reads (and skips their rest, which
 * inih would take for a line of its own) and NUL bytes (which would hide the
 * rest of a line from strlen()).  Either is reported as an error of its line.
 */
static char *
ini_reader_fn(char *str, int num, void *stream)
{
	struct parse_state	*ps = stream;
	size_t			 i = 0, max = num > 2 ? (size_t)num - 2 : 0;
	int			 c, read_any = 0, nul = 0, overflow = 0;

	while ((c = fgetc(ps->fp)) != EOF) {
		read_any = 1;
		if (c == '\n')
			break;
		if (c == '\0') {
			nul = 1;
			c = ' ';
		}
		if (i < max)
			str[i++] = (char)c;
		else
			overflow = 1;
	}
	if (!read_any)
		return NULL;
	if (c == '\n')
		str[i++] = '\n';
	str[i] = '\0';
	ps->lineno++;
	if (overflow && ps->long_line == 0)
		ps->long_line = ps->lineno;
	if (nul && ps->nul_line == 0)
		ps->nul_line = ps->lineno;
	return str;
}

static int
parse_file(struct parse_state *ps, char *err, size_t errlen)
{
	const char	*slash;
	int		 rc;

	if ((ps->fp = fopen(ps->path, "re")) == NULL) {
		const char	*why = strerror(errno);
		char		 user[64];

		snprintf(err, errlen, "%s: %s (running as user %s)", ps->path, why,
		    running_user(user, sizeof(user)));
		return -1;
	}
	if ((slash = strrchr(ps->path, '/')) != NULL &&
	    (size_t)(slash - ps->path) < sizeof(ps->dir))
		memcpy(ps->dir, ps->path, (size_t)(slash - ps->path));
	else
		snprintf(ps->dir, sizeof(ps->dir), ".");
	/* A value continued on an indented line is a typo more often than intended. */
	ini_allow_multiline = false;
	rc = ini_parse_stream(ini_reader_fn, ps, ini_handler_fn, ps);
	fclose(ps->fp);
	ps->fp = NULL;
	if (ps->nul_line != 0 && (rc == 0 || ps->nul_line <= rc) &&
	    (ps->long_line == 0 || ps->nul_line <= ps->long_line)) {
		snprintf(err, errlen, "%s:%d: contains a NUL byte", ps->path,
		    ps->nul_line);
		return -1;
	}
	if (ps->long_line != 0 && (rc == 0 || ps->long_line <= rc)) {
		snprintf(err, errlen, "%s:%d: line too long", ps->path, ps->long_line);
		return -1;
	}
	if (rc == 0)
		return 0;
	if (rc > 0 && rc == ps->error_line)
		snprintf(err, errlen, "%s:%d: %s", ps->path, rc, ps->reason);
	else if (rc > 0)
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or "
		    "key = value)", ps->path, rc);
	else
		snprintf(err, errlen, "%s: cannot be read", ps->path);
	return -1;
}

static int
credential_exists(const char *name)
{
	const char	*creds = getenv("CREDENTIALS_DIRECTORY");
	char		 path[PATH_MAX];
	int		 n;

	if (creds == NULL)
		return 0;
	n = snprintf(path, sizeof(path), "%s/%s", creds, name);
	return n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0;
}

static int
apply_environment(struct parse_state *ps, char *err, size_t errlen)
{
	static const struct {
		const char	*var;
		enum tgq_key	 key;
	} tgq_env[] = {
		{ "TGQ_DATABASE", K_DATABASE }, { "TGQ_DURABILITY", K_DURABILITY },
		{ "TGQ_MAX_BODY", K_MAX_BODY }, { "TGQ_API_URL", K_API_URL },
		{ "TGQ_BUSY_TIMEOUT", K_BUSY_TIMEOUT },
		{ "TGQ_RETRY_AFTER", K_RETRY_AFTER }, { "TGQ_THREADS", K_THREADS },
		{ "TGQ_LOG_LEVEL", K_LOG_LEVEL }, { "TGQ_MAX_ATTEMPTS", K_MAX_ATTEMPTS },
		{ "TGQ_HANDLER_TIMEOUT", K_HANDLER_TIMEOUT },
		{ "TGQ_MAX_OUTPUT", K_MAX_OUTPUT }, { "TGQ_SEND_TIMEOUT", K_SEND_TIMEOUT },
		{ "TGQ_LEASE", K_LEASE }, { "TGQ_RETAIN", K_RETAIN },
		{ "TGQ_MAX_IN_FLIGHT", K_MAX_IN_FLIGHT }, { "TGQ_HANDLERS", K_HANDLERS },
		{ "TGQ_ALLOWED_IPS", K_ALLOWED_IPS },
		{ "TGQ_TRUSTED_PROXIES", K_TRUSTED_PROXIES },
	};
	static const struct {
		const char	*var;
		enum bot_key	 key;
	} bot_env[] = {
		{ "TGQ_BOT_TOKEN_FILE", B_TOKEN_FILE },
		{ "TGQ_WEBHOOK_SECRET_FILE", B_SECRET_FILE },
		{ "TGQ_WEBHOOK_URL", B_WEBHOOK_URL }, { "TGQ_HANDLER", B_HANDLER },
		{ "TGQ_RATE_GLOBAL", B_RATE_GLOBAL }, { "TGQ_RATE_CHAT", B_RATE_CHAT },
		{ "TGQ_RATE_GROUP", B_RATE_GROUP },
	};
	char		 why[256];
	const char	*value;
	size_t		 i;
	int		 bot = -1;

	for (i = 0; i < sizeof(tgq_env) / sizeof(tgq_env[0]); i++) {
		if ((value = getenv(tgq_env[i].var)) == NULL)
			continue;
		why[0] = '\0';
		if (apply_tgq(ps->cfg, tgq_env[i].key, value, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "%s: %s", tgq_env[i].var,
			    *why ? why : "out of memory");
			return -1;
		}
	}
	for (i = 0; i < sizeof(bot_env) / sizeof(bot_env[0]); i++) {
		if ((value = getenv(bot_env[i].var)) == NULL)
			continue;
		if (bot == -1 && (bot = bot_index(ps->cfg, "default")) == -1)
			goto full;
		why[0] = '\0';
		if (apply_bot(ps, bot, bot_env[i].key, value, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "%s: %s", bot_env[i].var,
			    *why ? why : "out of memory");
			return -1;
		}
	}
	/* The values themselves: these variables hold the secrets. */
	if (getenv("TGQ_BOT_TOKEN") != NULL || getenv("TGQ_WEBHOOK_SECRET") != NULL) {
		if (bot == -1 && (bot = bot_index(ps->cfg, "default")) == -1)
			goto full;
	}
	/* A systemd unit's LoadCredential= alone describes the bot "default" too,
	 * when nothing else names a bot. */
	if (ps->cfg->nbots == 0 && credential_exists("bot-token") +
	    credential_exists("webhook-secret") > 0 &&
	    bot_index(ps->cfg, "default") == -1)
		goto full;
	return 0;
full:
	snprintf(err, errlen, "more than %d bots", CONFIG_MAX_BOTS);
	return -1;
}

/* Strips one trailing newline, as editors and `echo` leave one. */
static void
chomp(char *s, size_t *len)
{
	if (*len > 0 && s[*len - 1] == '\n')
		s[--*len] = '\0';
	if (*len > 0 && s[*len - 1] == '\r')
		s[--*len] = '\0';
}

/*
 * Reads one secret: the environment variable (bot "default" only), else the named
 * file (relative names in $CREDENTIALS_DIRECTORY when set, else beside the
 * configuration file), else the credential a systemd unit may pass by default.
 */
static int
load_secret(struct parse_state *ps, const char *botname, const char *envvar,
    const char *file, const char *credential, char **out, size_t *outlen,
    char **path_out, char *err, size_t errlen)
{
	const char	*creds = getenv("CREDENTIALS_DIRECTORY");
	const char	*value;
	char		 path[PATH_MAX], default_name[BOT_NAME_MAX + 32];
	int		 n;

	if (strcmp(botname, "default") == 0 && (value = getenv(envvar)) != NULL) {
		if ((*out = strdup(value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		*outlen = strlen(value);
		chomp(*out, outlen);
		return 0;
	}
	if (file == NULL && creds != NULL) {
		if (strcmp(botname, "default") == 0)
			snprintf(default_name, sizeof(default_name), "%s", credential);
		else
			snprintf(default_name, sizeof(default_name), "%s-%s", credential,
			    botname);
		n = snprintf(path, sizeof(path), "%s/%s", creds, default_name);
		if (n < 0 || (size_t)n >= sizeof(path) || access(path, F_OK) != 0)
			return 0;
		file = default_name;
	}
	if (file == NULL)
		return 0;
	if (file[0] == '/')
		n = snprintf(path, sizeof(path), "%s", file);
	else
		n = snprintf(path, sizeof(path), "%s/%s", creds != NULL ? creds :
		    ps->dir, file);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "bot %s: secret file path too long", botname);
		return -1;
	}
	if (read_small_file(path, SECRET_FILE_MAX, out, outlen, err, errlen) == -1) {
		char	user[64];
		size_t	used = strlen(err);

		if (access(path, R_OK) == -1 && errno == EACCES && used < errlen)
			snprintf(err + used, errlen - used, " (running as user %s)",
			    running_user(user, sizeof(user)));
		return -1;
	}
	chomp(*out, outlen);
	if (path_out != NULL && set_string(path_out, path) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
load_bot_secrets(struct parse_state *ps, unsigned need, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < ps->cfg->nbots; i++) {
		struct bot_config *b = &ps->cfg->bots[i];

		if ((need & CONFIG_NEED_TOKENS) && load_secret(ps, b->name,
		    "TGQ_BOT_TOKEN", ps->token_file[i], "bot-token", &b->token,
		    &b->token_len, NULL, err, errlen) == -1)
			return -1;
		if ((need & CONFIG_NEED_SECRETS) && load_secret(ps, b->name,
		    "TGQ_WEBHOOK_SECRET", ps->secret_file[i], "webhook-secret",
		    &b->secret, &b->secret_len, &b->secret_path, err, errlen) == -1)
			return -1;
		if ((need & CONFIG_NEED_HANDLERS) &&
		    config_check_handler(b, err, errlen) == -1)
			return -1;
		if (b->token != NULL && !token_valid(b->token, b->token_len)) {
			snprintf(err, errlen, "bot %s: the bot token is not of the form "
			    "123456:ABC... (digits, a colon, 30-100 of A-Z a-z 0-9 _ -)",
			    b->name);
			return -1;
		}
		if (b->secret != NULL && !secret_valid(b->secret, b->secret_len)) {
			snprintf(err, errlen, "bot %s: the webhook secret must be 1-256 "
			    "characters of A-Z a-z 0-9 _ -", b->name);
			return -1;
		}
	}
	return 0;
}

static int
set_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->durability = DURABILITY_FULL;
	cfg->max_body = 1024 * 1024;
	cfg->busy_timeout_ms = 5000;
	cfg->retry_after_s = 5;
	cfg->threads = 1;
	cfg->log_level = LOG_LVL_INFO;
	cfg->max_attempts = 5;
	cfg->handler_timeout_s = 10;
	cfg->max_output = 1024 * 1024;
	cfg->send_timeout_s = 30;
	cfg->lease_s = 60;
	cfg->retain_s = 7 * 86400;
	cfg->max_in_flight = 16;
	cfg->handlers = 4;
	if (set_string(&cfg->database, "/var/lib/tgq/queue.db") == -1 ||
	    set_string(&cfg->api_url, "https://api.telegram.org") == -1)
		return -1;
	return 0;
}

int
config_load(const char *path_override, struct config *cfg, char *err, size_t errlen)
{
	return config_load_for(path_override, CONFIG_NEED_TOKENS | CONFIG_NEED_SECRETS,
	    cfg, err, errlen);
}

int
config_load_for(const char *path_override, unsigned need, struct config *cfg,
    char *err, size_t errlen)
{
	struct parse_state	*ps;
	const char		*path = path_override;
	size_t			 i;
	int			 rc = -1;

	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ps->cfg = cfg;
	snprintf(ps->dir, sizeof(ps->dir), ".");
	if (set_defaults(cfg) == -1) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (path != NULL && *path == '\0') {
		snprintf(err, errlen, "the configuration path given with -c is empty");
		goto done;
	}
	if (path == NULL && (path = getenv("TGQ_CONFIG")) != NULL && *path == '\0') {
		snprintf(err, errlen, "TGQ_CONFIG is set but empty: name the file, or "
		    "unset it for %s", CONFIG_DEFAULT_PATH);
		goto done;
	}
	/* Only a file that is not there means "no file": a folder this user cannot
	 * enter must not quietly leave the defaults in force. */
	if (path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	else if (path == NULL && errno != ENOENT) {
		const char	*why = strerror(errno);
		char		 user[64];

		snprintf(err, errlen, "%s: %s (running as user %s)", CONFIG_DEFAULT_PATH,
		    why, running_user(user, sizeof(user)));
		goto done;
	}
	if (path != NULL) {
		if (set_string(&cfg->path, path) == -1) {
			snprintf(err, errlen, "out of memory");
			goto done;
		}
		ps->path = cfg->path;
		if (parse_file(ps, err, errlen) == -1)
			goto done;
	}
	if (apply_environment(ps, err, errlen) == -1 ||
	    load_bot_secrets(ps, need, err, errlen) == -1)
		goto done;
	/* A claim must outlive the work it covers, or a second drain takes it over. */
	if (cfg->lease_s < cfg->handler_timeout_s + 1 ||
	    cfg->lease_s < cfg->send_timeout_s + 1) {
		snprintf(err, errlen, "lease (%llds) must be longer than handler_timeout "
		    "(%llds) and send_timeout (%llds)", (long long)cfg->lease_s,
		    (long long)cfg->handler_timeout_s, (long long)cfg->send_timeout_s);
		goto done;
	}
	rc = 0;
done:
	for (i = 0; i < CONFIG_MAX_BOTS; i++) {
		free(ps->token_file[i]);
		free(ps->secret_file[i]);
	}
	free(ps);
	if (rc == -1)
		config_free(cfg);
	return rc;
}

static void
free_secret(char *s, size_t len)
{
	if (s == NULL)
		return;
	/* Do not leave secrets in freed memory for a later core dump to show. */
	explicit_bzero(s, len);
	free(s);
}

void
config_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nbots; i++) {
		free_secret(cfg->bots[i].token, cfg->bots[i].token_len);
		free_secret(cfg->bots[i].secret, cfg->bots[i].secret_len);
		free(cfg->bots[i].secret_path);
		free(cfg->bots[i].webhook_url);
		free(cfg->bots[i].handler);
	}
	free(cfg->path);
	free(cfg->database);
	free(cfg->api_url);
	memset(cfg, 0, sizeof(*cfg));
}
