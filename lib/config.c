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
	return (int)cfg->nbots++;
}

/* The keys of [tgq]; the order gives each its bit in seen_tgq. */
enum tgq_key { K_DATABASE, K_DURABILITY, K_MAX_BODY, K_API_URL, K_BUSY_TIMEOUT,
	K_RETRY_AFTER, K_THREADS, K_LOG_LEVEL, K_NTGQ };
static const char *const tgq_keys[K_NTGQ] = { "database", "durability",
	"max_body", "api_url", "busy_timeout", "retry_after", "threads", "log_level" };

enum bot_key { B_TOKEN_FILE, B_SECRET_FILE, B_WEBHOOK_URL, B_HANDLER, B_NBOT };
static const char *const bot_keys[B_NBOT] = { "token_file", "secret_file",
	"webhook_url", "handler" };

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
	const char	*errstr = NULL;
	int64_t		 n;

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
	case K_MAX_BODY:
		if (parse_size(value, 1024, 64 * 1024 * 1024, &n, &errstr) == -1) {
			snprintf(why, whylen, "max_body: %s (1K to 64M)", errstr);
			return -1;
		}
		cfg->max_body = n;
		return 0;
	case K_API_URL:
		if (strncmp(value, "https://", 8) != 0 &&
		    strncmp(value, "http://", 7) != 0) {
			snprintf(why, whylen, "api_url: must start with https:// or http://");
			return -1;
		}
		return set_string(&cfg->api_url, value);
	case K_BUSY_TIMEOUT:
		if (parse_int(value, 0, 60000, &n, &errstr) == -1) {
			snprintf(why, whylen, "busy_timeout: %s (0 to 60000 ms)", errstr);
			return -1;
		}
		cfg->busy_timeout_ms = n;
		return 0;
	case K_RETRY_AFTER:
		if (parse_duration(value, 1, 3600, &n, &errstr) == -1) {
			snprintf(why, whylen, "retry_after: %s (1 s to 1 h)", errstr);
			return -1;
		}
		cfg->retry_after_s = n;
		return 0;
	case K_THREADS:
		if (parse_int(value, 1, 256, &n, &errstr) == -1) {
			snprintf(why, whylen, "threads: %s (1 to 256)", errstr);
			return -1;
		}
		cfg->threads = n;
		return 0;
	case K_LOG_LEVEL:
		if (log_level_parse(value, &cfg->log_level) == -1) {
			snprintf(why, whylen,
			    "log_level: must be err, warning, info or debug");
			return -1;
		}
		return 0;
	case K_NTGQ:
		break;
	}
	return -1;
}

static int
apply_bot(struct parse_state *ps, int bot, enum bot_key key, const char *value,
    char *why, size_t whylen)
{
	struct bot_config *b = &ps->cfg->bots[bot];

	if (*value == '\0') {
		snprintf(why, whylen, "%s: empty value", bot_keys[key]);
		return -1;
	}
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
	case B_HANDLER:
		return set_string(&b->handler, value);
	case B_NBOT:
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

/* fgets for inih that counts lines, and notices lines longer than inih reads. */
static char *
ini_reader_fn(char *str, int num, void *stream)
{
	struct parse_state	*ps = stream;
	char			*line;
	size_t			 len;

	if ((line = fgets(str, num, ps->fp)) == NULL)
		return NULL;
	ps->lineno++;
	len = strlen(line);
	if (len > 0 && line[len - 1] != '\n' && !feof(ps->fp)) {
		int c;

		if (ps->long_line == 0)
			ps->long_line = ps->lineno;
		while ((c = fgetc(ps->fp)) != EOF && c != '\n')
			continue;
	}
	return line;
}

static int
parse_file(struct parse_state *ps, char *err, size_t errlen)
{
	const char	*slash;
	int		 rc;

	if ((ps->fp = fopen(ps->path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", ps->path, strerror(errno));
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
		{ "TGQ_LOG_LEVEL", K_LOG_LEVEL },
	};
	static const struct {
		const char	*var;
		enum bot_key	 key;
	} bot_env[] = {
		{ "TGQ_BOT_TOKEN_FILE", B_TOKEN_FILE },
		{ "TGQ_WEBHOOK_SECRET_FILE", B_SECRET_FILE },
		{ "TGQ_WEBHOOK_URL", B_WEBHOOK_URL }, { "TGQ_HANDLER", B_HANDLER },
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
    char *err, size_t errlen)
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
	if (read_small_file(path, SECRET_FILE_MAX, out, outlen, err, errlen) == -1)
		return -1;
	chomp(*out, outlen);
	return 0;
}

static int
load_bot_secrets(struct parse_state *ps, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < ps->cfg->nbots; i++) {
		struct bot_config *b = &ps->cfg->bots[i];

		if (load_secret(ps, b->name, "TGQ_BOT_TOKEN", ps->token_file[i],
		    "bot-token", &b->token, &b->token_len, err, errlen) == -1)
			return -1;
		if (load_secret(ps, b->name, "TGQ_WEBHOOK_SECRET", ps->secret_file[i],
		    "webhook-secret", &b->secret, &b->secret_len, err, errlen) == -1)
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
	cfg->threads = 16;
	cfg->log_level = LOG_LVL_INFO;
	if (set_string(&cfg->database, "/var/lib/tgq/queue.db") == -1 ||
	    set_string(&cfg->api_url, "https://api.telegram.org") == -1)
		return -1;
	return 0;
}

int
config_load(const char *path_override, struct config *cfg, char *err, size_t errlen)
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
	if (path == NULL)
		path = getenv("TGQ_CONFIG");
	if (path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
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
	    load_bot_secrets(ps, err, errlen) == -1)
		goto done;
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
		free(cfg->bots[i].webhook_url);
		free(cfg->bots[i].handler);
	}
	free(cfg->path);
	free(cfg->database);
	free(cfg->api_url);
	memset(cfg, 0, sizeof(*cfg));
}
