/*
 * Configuration: an INI file (parsed by inih) with the environment on top, so that a
 * single bot needs no file at all.  Secrets are read from files or the environment,
 * never from argv, and no error message ever quotes a configuration line: a line may
 * hold a secret.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include "tgq.h"

/*
 * Every key, one row each (config_keys.h): the file, the environment and the
 * defaults are all applied by walking this table (key_apply), and
 * `tgq-webhook --print-keys` prints it.  A key touches three files: its row in
 * lib/config_keys.h, which also declares its field in struct config or struct
 * bot_config, tgq.conf(5) and the README's table.
 */
enum key_section { SECTION_TGQ, SECTION_BOT };
enum key_type {
	KEY_PATH,	/* a file name, not empty */
	KEY_URL,	/* starts with one of the choices' names */
	KEY_INT,	/* an int64_t within [min, max] */
	KEY_SIZE,	/* the same, with a K, M or G suffix */
	KEY_DURATION,	/* the same in seconds, with an s, m, h or d suffix */
	KEY_ENUM,	/* one of the choices' names, stored as its value (an enum) */
	KEY_CIDRS,	/* a struct cidr_list */
	KEY_HANDLER,	/* echo, pull, exec:/absolute/program [args] or http(s)://URL */
	KEY_USERS,	/* a struct user_list; empty is an empty list */
	KEY_TEXT,	/* any text of 1 to max characters */
	KEY_UPDATES,	/* update types, stored as a JSON array (update_types.c) */
	KEY_IP,		/* one IPv4 or IPv6 address */
	KEY_LISTEN,	/* a loopback address:port or a unix socket path */
};
static const char *const key_type_names[] = { [KEY_PATH] = "path",
	[KEY_URL] = "url", [KEY_INT] = "integer", [KEY_SIZE] = "size",
	[KEY_DURATION] = "duration", [KEY_ENUM] = "enum", [KEY_CIDRS] = "cidr-list",
	[KEY_HANDLER] = "handler", [KEY_USERS] = "user-list",
	[KEY_TEXT] = "text", [KEY_UPDATES] = "update-list", [KEY_IP] = "ip",
	[KEY_LISTEN] = "listen" };
struct key_choice {
	const char	*name;
	int		 value;
};
#define KEY_ANY_CASE	0x1	/* an enum's names match in any case */
struct config_key {
	enum key_section	 section;
	const char		*name;
	const char		*env;	/* the variable that overrides it */
	enum key_type		 type;
	size_t			 offset; /* in struct config, or struct bot_config */
	int64_t			 min, max;
	const struct key_choice	*choices; /* ends with a NULL name */
	const char		*rule;	/* what an error says the value must be */
	const char		*def;	/* the default, as written in the file */
	unsigned		 flags;
};

static const struct key_choice durabilities[] = { { "full", DURABILITY_FULL },
	{ "normal", DURABILITY_NORMAL }, { NULL, 0 } };
static const struct key_choice log_levels[] = { { "err", LOG_LVL_ERR },
	{ "error", LOG_LVL_ERR }, { "warning", LOG_LVL_WARNING },
	{ "warn", LOG_LVL_WARNING }, { "info", LOG_LVL_INFO },
	{ "debug", LOG_LVL_DEBUG }, { NULL, 0 } };
static const struct key_choice http_urls[] = { { "https://", 0 }, { "http://", 0 },
	{ NULL, 0 } };
static const struct key_choice https_urls[] = { { "https://", 0 }, { NULL, 0 } };
/*
 * The rows of config_keys.h as table entries.  Each shape's field is declared from
 * the same row, so what is checked at compile time is the other half: that the
 * row's key type is one that key_apply writes into that shape's C type (an
 * int64_t for a number, a char * for a string, an int for an enum).
 */
#define KEY_WRITES_INT64(t)	((t) == KEY_INT || (t) == KEY_SIZE || \
	(t) == KEY_DURATION)
#define KEY_WRITES_STRING(t)	((t) == KEY_PATH || (t) == KEY_URL || \
	(t) == KEY_HANDLER || (t) == KEY_UPDATES || (t) == KEY_IP || \
	(t) == KEY_LISTEN)
#define KEY_CHECKED(cond, name, what) (0 * sizeof(struct { \
	_Static_assert(cond, "key " name ": " what); int unused; }))
#define STRUCT_TGQ struct config
#define STRUCT_BOT struct bot_config
#define KEY_ROW(sec, shape, ...)	KEY_ROW_##shape(sec, __VA_ARGS__)
#define KEY_ROW_NUMBER(sec, name, env, type, f, min, max, range, def, doc) \
	{ SECTION_##sec, name, env, type, offsetof(STRUCT_##sec, f) + \
	KEY_CHECKED(KEY_WRITES_INT64(type), name, "a number's type"), min, max, \
	NULL, range, def, 0 },
#define KEY_ROW_STRING(sec, name, env, type, f, choices, rule, def, doc) \
	{ SECTION_##sec, name, env, type, offsetof(STRUCT_##sec, f) + \
	KEY_CHECKED(KEY_WRITES_STRING(type), name, "a string's type"), 0, 0, \
	choices, rule, def, 0 },
#define KEY_ROW_CHOICE(sec, name, env, ctype, f, choices, rule, def, flags, doc) \
	{ SECTION_##sec, name, env, KEY_ENUM, offsetof(STRUCT_##sec, f) + \
	KEY_CHECKED(sizeof(ctype) == sizeof(int), name, "an enum stored as an int"), \
	0, 0, choices, rule, def, flags },
#define KEY_ROW_TEXT(sec, name, env, f, min, max, rule, def, doc) \
	{ SECTION_##sec, name, env, KEY_TEXT, offsetof(STRUCT_##sec, f), min, max, \
	NULL, rule, def, 0 },
#define KEY_ROW_CIDRS(sec, name, env, f, doc) \
	{ SECTION_##sec, name, env, KEY_CIDRS, offsetof(STRUCT_##sec, f), 0, 0, \
	NULL, NULL, NULL, 0 },
#define KEY_ROW_USERS(sec, name, env, f, doc) \
	{ SECTION_##sec, name, env, KEY_USERS, offsetof(STRUCT_##sec, f), 0, 0, \
	NULL, NULL, NULL, 0 },
#define KEY_ROW_TGQ(...)	KEY_ROW(TGQ, __VA_ARGS__)
#define KEY_ROW_BOT(...)	KEY_ROW(BOT, __VA_ARGS__)

static const struct config_key config_keys[] = {
	CONFIG_TGQ_KEYS(KEY_ROW_TGQ)
	CONFIG_BOT_KEYS(KEY_ROW_BOT)
};
#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/*
 * The secrets, which are no keys: the file keys above name where they are; these
 * variables hold the values themselves (for the bot "default"), and a systemd
 * unit's credential of this name is read when nothing else is given.
 */
enum { SECRET_TOKEN, SECRET_WEBHOOK };
static const struct secret_source {
	const char	*env;
	const char	*credential;
} secret_sources[] = {
	[SECRET_TOKEN] = { "TGQ_BOT_TOKEN", "bot-token" },
	[SECRET_WEBHOOK] = { "TGQ_WEBHOOK_SECRET", "webhook-secret" },
};

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
	/* Which keys the file set already, per row of config_keys, to refuse repeats. */
	bool		 seen_tgq[NKEYS];
	bool		 seen_bot[CONFIG_MAX_BOTS][NKEYS];
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

/* Characters, not bytes, as Telegram counts a message's length. */
static size_t
utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static const struct key_choice *
key_choice(const struct config_key *k, const char *value)
{
	const struct key_choice *c;

	for (c = k->choices; c->name != NULL; c++) {
		if (k->type == KEY_URL && strncmp(value, c->name, strlen(c->name)) == 0)
			return c;
		if (k->type == KEY_ENUM && ((k->flags & KEY_ANY_CASE) ?
		    strcasecmp(value, c->name) : strcmp(value, c->name)) == 0)
			return c;
	}
	return NULL;
}

/*
 * Sets key k of base (the struct config, or the struct bot_config of the bot
 * botname) from the text value; -1 with why, which never quotes the value.
 */
static int
key_apply(const struct config_key *k, void *base, const char *botname,
    const char *value, char *why, size_t whylen)
{
	char		*field = (char *)base + k->offset;
	const struct key_choice *choice;
	const char	*errstr = NULL;
	char		 reason[160], *json;
	enum handler_kind kind;
	const char	*arg;
	unsigned char	 ip[16];
	struct listen_addr addr;
	int64_t		 n;
	int		 rc;

	/* No other [bot] key has a meaning when empty: an empty one is a mistake.
	 * An empty list of users is everyone, as when the key is not given, so
	 * that TGQ_ALLOWED_USERS= can lift a file's list. */
	if (k->section == SECTION_BOT && *value == '\0' && k->type != KEY_USERS) {
		snprintf(why, whylen, "%s: empty value", k->name);
		return -1;
	}
	switch (k->type) {
	case KEY_INT:
	case KEY_SIZE:
	case KEY_DURATION:
		if (k->type == KEY_SIZE)
			rc = parse_size(value, k->min, k->max, &n, &errstr);
		else if (k->type == KEY_DURATION)
			rc = parse_duration(value, k->min, k->max, &n, &errstr);
		else
			rc = parse_int(value, k->min, k->max, &n, &errstr);
		if (rc == -1) {
			snprintf(why, whylen, "%s: %s (%s)", k->name, errstr, k->rule);
			return -1;
		}
		*(int64_t *)(void *)field = n;
		return 0;
	case KEY_ENUM:
		if ((choice = key_choice(k, value)) == NULL)
			break;
		*(int *)(void *)field = choice->value;
		return 0;
	case KEY_CIDRS:
	case KEY_USERS:
		if ((k->type == KEY_CIDRS ? cidr_parse(value,
		    (struct cidr_list *)(void *)field, reason, sizeof(reason)) :
		    user_list_parse(value, (struct user_list *)(void *)field, reason,
		    sizeof(reason))) == -1) {
			snprintf(why, whylen, "%s: %s", k->name, reason);
			return -1;
		}
		return 0;
	case KEY_TEXT:
		if (utf8_chars(value) < (size_t)k->min ||
		    utf8_chars(value) > (size_t)k->max) {
			snprintf(why, whylen, "%s: must be %s", k->name, k->rule);
			return -1;
		}
		goto string;
	case KEY_PATH:
		if (*value == '\0') {
			snprintf(why, whylen, "%s: empty path", k->name);
			return -1;
		}
		goto string;
	case KEY_URL:
		if (key_choice(k, value) == NULL)
			break;
		goto string;
	case KEY_LISTEN:
		if (*value == '\0')
			goto string;	/* TGQ_LISTEN= turns a file's off */
		if (listen_parse(value, &addr, reason, sizeof(reason)) == -1) {
			snprintf(why, whylen, "%s: %s", k->name, reason);
			return -1;
		}
		goto string;
	case KEY_HANDLER:
		if (handler_kind_parse(botname, value, &kind, &arg, why, whylen) == -1)
			return -1;
		goto string;
	case KEY_UPDATES:
		if (update_types_json(value, &json, reason, sizeof(reason)) == -1) {
			snprintf(why, whylen, "%s: %s", k->name, reason);
			return -1;
		}
		free(*(char **)(void *)field);
		*(char **)(void *)field = json;
		return 0;
	case KEY_IP:
		if (inet_pton(AF_INET, value, ip) != 1 &&
		    inet_pton(AF_INET6, value, ip) != 1)
			break;
		goto string;
	}
	snprintf(why, whylen, "%s: %s", k->name, k->rule);
	return -1;
string:
	if (set_string((char **)(void *)field, value) == -1) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* Applies the defaults of a section's keys to base (see key_apply). */
static int
apply_defaults(enum key_section section, void *base, const char *botname,
    char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (config_keys[i].section == section && config_keys[i].def != NULL &&
		    key_apply(&config_keys[i], base, botname, config_keys[i].def, why,
		    whylen) == -1)
			return -1;
	return 0;
}

static const struct config_key *
key_find(enum key_section section, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (config_keys[i].section == section &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

void
config_print_keys(FILE *out)
{
	const struct key_choice	*c;
	size_t			 i;

	for (i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];

		fprintf(out, "%s\t%s\t%s\t%s", k->section == SECTION_TGQ ? "[tgq]" :
		    "[bot NAME]", k->name, k->env, key_type_names[k->type]);
		for (c = k->type == KEY_ENUM ? k->choices : NULL; c != NULL &&
		    c->name != NULL; c++)
			fprintf(out, "%c%s", c == k->choices ? ':' : ',', c->name);
		fprintf(out, "\t%s\n", k->def != NULL ? k->def : "-");
	}
	/* The variables that stand for no key. */
	fprintf(out, "-\t-\t%s\tpath\t%s\n", CONFIG_ENV, CONFIG_DEFAULT_PATH);
	for (i = 0; i < sizeof(secret_sources) / sizeof(secret_sources[0]); i++)
		fprintf(out, "[bot default]\t-\t%s\tsecret\t-\n", secret_sources[i].env);
	fprintf(out, "-\t-\tCREDENTIALS_DIRECTORY\tpath\t-\n");
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

/* Finds or adds the bot (with its keys' defaults); -1 with why when the table
 * is full. */
static int
bot_index(struct config *cfg, const char *name, char *why, size_t whylen)
{
	struct bot_config	*b;
	size_t			 i, len = strlen(name);

	for (i = 0; i < cfg->nbots; i++)
		if (strcmp(cfg->bots[i].name, name) == 0)
			return (int)i;
	if (cfg->nbots == CONFIG_MAX_BOTS) {
		snprintf(why, whylen, "more than %d bots", CONFIG_MAX_BOTS);
		return -1;
	}
	b = &cfg->bots[cfg->nbots++];
	memcpy(b->name, name, len + 1);
	if (apply_defaults(SECTION_BOT, b, b->name, why, whylen) == -1)
		return -1;
	return (int)(cfg->nbots - 1);
}

int
config_check_handler(const struct bot_config *b, char *err, size_t errlen)
{
	struct stat		 st;
	enum handler_kind	 kind;
	const char		*arg;
	char			 prog[PATH_MAX], user[64];

	if (handler_kind_parse(b->name, b->handler, &kind, &arg, err, errlen) == -1)
		return -1;
	if (handler_kind_shape(kind) != HANDLER_SHAPE_PROGRAM)
		return 0;
	if (handler_program(b->name, arg, prog, sizeof(prog), err, errlen) == -1)
		return -1;
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

int
config_handler_is_http(const char *handler)
{
	enum handler_kind	 kind;
	const char		*arg;
	char			 why[256];

	return handler != NULL && handler_kind_parse("", handler, &kind, &arg,
	    why, sizeof(why)) == 0 && handler_kind_shape(kind) == HANDLER_SHAPE_URL;
}

/* One [bot NAME] line; 0 when applied, -1 with why. */
static int
ini_bot_line(struct parse_state *ps, const char *botname, const char *name,
    const char *value, char *why, size_t whylen)
{
	const struct config_key	*k;
	int			 bot;

	if (!bot_name_valid(botname, strlen(botname))) {
		snprintf(why, whylen, "bot names are 1-%d characters of a-z 0-9 _ -",
		    BOT_NAME_MAX);
		return -1;
	}
	if ((bot = bot_index(ps->cfg, botname, why, whylen)) == -1)
		return -1;
	if (strcmp(name, "token") == 0 || strcmp(name, "secret") == 0) {
		snprintf(why, whylen, "%s: secrets are not written here; use %s_file",
		    name, name);
		return -1;
	}
	if ((k = key_find(SECTION_BOT, name)) == NULL) {
		snprintf(why, whylen, "unknown key \"%s\" in [bot %s]", name, botname);
		return -1;
	}
	if (ps->seen_bot[bot][k - config_keys]) {
		snprintf(why, whylen, "%s: given twice", name);
		return -1;
	}
	ps->seen_bot[bot][k - config_keys] = true;
	return key_apply(k, &ps->cfg->bots[bot], botname, value, why, whylen);
}

static int
ini_handler_fn(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state	*ps = user;
	const struct config_key	*k;
	char			*why = ps->reason;
	size_t			 whylen = sizeof(ps->reason);

	if (ps->error_line != 0)
		return 1;	/* report the first error only */
	if (strcmp(section, "tgq") == 0) {
		if ((k = key_find(SECTION_TGQ, name)) == NULL) {
			snprintf(why, whylen, "unknown key \"%s\" in [tgq]", name);
			goto fail;
		}
		if (ps->seen_tgq[k - config_keys]) {
			snprintf(why, whylen, "%s: given twice", name);
			goto fail;
		}
		ps->seen_tgq[k - config_keys] = true;
		if (key_apply(k, ps->cfg, NULL, value, why, whylen) == -1)
			goto fail;
		return 1;
	}
	if (strncmp(section, "bot ", 4) == 0) {
		if (ini_bot_line(ps, section + 4, name, value, why, whylen) == -1)
			goto fail;
		return 1;
	}
	if (*section == '\0')
		snprintf(why, whylen, "key \"%s\" outside a section", name);
	else
		snprintf(why, whylen, "unknown section; use [tgq] or [bot NAME]");
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

/* The environment on top of the file: [bot] keys' variables describe the bot
 * "default". */
static int
apply_environment(struct parse_state *ps, char *err, size_t errlen)
{
	struct config	*cfg = ps->cfg;
	char		 why[256];
	const char	*value;
	size_t		 i;
	int		 bot = -1, credentials = 0;

	for (i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];

		if ((value = getenv(k->env)) == NULL)
			continue;
		if (k->section == SECTION_TGQ) {
			if (key_apply(k, cfg, NULL, value, why, sizeof(why)) == -1)
				goto fail;
			continue;
		}
		if (bot == -1 && (bot = bot_index(cfg, "default", why,
		    sizeof(why))) == -1)
			goto fail_bot;
		if (key_apply(k, &cfg->bots[bot], cfg->bots[bot].name, value, why,
		    sizeof(why)) == -1)
			goto fail;
	}
	for (i = 0; i < sizeof(secret_sources) / sizeof(secret_sources[0]); i++) {
		/* The values themselves: these variables hold the secrets. */
		if (getenv(secret_sources[i].env) != NULL && bot == -1 &&
		    (bot = bot_index(cfg, "default", why, sizeof(why))) == -1)
			goto fail_bot;
		credentials += credential_exists(secret_sources[i].credential);
	}
	/* A systemd unit's LoadCredential= alone describes the bot "default" too,
	 * when nothing else names a bot. */
	if (cfg->nbots == 0 && credentials > 0 &&
	    bot_index(cfg, "default", why, sizeof(why)) == -1)
		goto fail_bot;
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", config_keys[i].env, why);
	return -1;
fail_bot:
	snprintf(err, errlen, "%s", why);
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
load_secret(struct parse_state *ps, const char *botname,
    const struct secret_source *source, const char *file, char **out,
    size_t *outlen, char **path_out, enum secret_from *from, char *err,
    size_t errlen)
{
	const char	*creds = getenv("CREDENTIALS_DIRECTORY");
	const char	*value;
	char		 path[PATH_MAX], default_name[BOT_NAME_MAX + 32];
	int		 n;

	if (source->env != NULL && strcmp(botname, "default") == 0 &&
	    (value = getenv(source->env)) != NULL) {
		if ((*out = strdup(value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		*outlen = strlen(value);
		chomp(*out, outlen);
		*from = SECRET_FROM_ENV;
		return 0;
	}
	if (file == NULL && creds != NULL && source->credential != NULL) {
		if (strcmp(botname, "default") == 0)
			snprintf(default_name, sizeof(default_name), "%s",
			    source->credential);
		else
			snprintf(default_name, sizeof(default_name), "%s-%s",
			    source->credential, botname);
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
	/* A credential is systemd's copy, made when the unit starts. */
	*from = file[0] != '/' && creds != NULL ? SECRET_FROM_CREDENTIAL :
	    SECRET_FROM_FILE;
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
	/* The webhook secret's lines are split by split_webhook_secret(). */
	if (source != &secret_sources[SECRET_WEBHOOK])
		chomp(*out, outlen);
	if (path_out != NULL && set_string(path_out, path) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * The webhook secret as read (b->secret: a file's text, or the variable's) split
 * into the secret and the previous one, each checked; the error names the file
 * (or the variable) and the line, never its text.
 */
static int
split_webhook_secret(struct bot_config *b, char *err, size_t errlen)
{
	struct secret_lines	 lines;
	const char		*why;
	char			*text = b->secret;
	size_t			 textlen = b->secret_len;
	int			 line;

	if (text == NULL)
		return 0;
	b->secret = NULL;
	b->secret_len = 0;
	if (secret_lines_parse(text, textlen, &lines, &line, &why) == -1) {
		snprintf(err, errlen, "bot %s: %s (%s, line %d)", b->name, why,
		    b->secret_path != NULL ? b->secret_path :
		    secret_sources[SECRET_WEBHOOK].env, line);
		goto fail;
	}
	if ((b->secret = strndup(lines.line[0], lines.len[0])) == NULL ||
	    (lines.n > 1 && (b->secret_prev = strndup(lines.line[1],
	    lines.len[1])) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	b->secret_len = lines.len[0];
	b->secret_prev_len = lines.n > 1 ? lines.len[1] : 0;
	explicit_bzero(text, textlen);
	free(text);
	return 0;
fail:
	explicit_bzero(text, textlen);
	free(text);
	return -1;
}

/* forward_secret_file is the only place the value forwarded to an http
 * handler comes from: no variable holds it, no credential stands for it. */
static const struct secret_source forward_source = { NULL, NULL };

/*
 * What an http handler sends in X-Telegram-Bot-Api-Secret-Token: its own
 * forward_secret_file, else the webhook secret (the one Telegram would send, so
 * that the bot's framework checks it unchanged).
 */
static int
load_forward_secret(struct parse_state *ps, unsigned need, struct bot_config *b,
    char *err, size_t errlen)
{
	enum secret_from from;

	if (!config_handler_is_http(b->handler))
		return 0;
	if (b->forward_secret_file != NULL) {
		if (load_secret(ps, b->name, &forward_source, b->forward_secret_file,
		    &b->forward_secret, &b->forward_secret_len, NULL, &from, err,
		    errlen) == -1)
			return -1;
		if (!secret_valid(b->forward_secret, b->forward_secret_len)) {
			snprintf(err, errlen, "bot %s: the forward secret must be 1-256 "
			    "characters of A-Z a-z 0-9 _ -", b->name);
			return -1;
		}
		return 0;
	}
	if ((need & CONFIG_NEED_SECRETS) || b->secret != NULL)
		return 0;
	/* The first line of a file in rotation: the secret Telegram now sends. */
	if (load_secret(ps, b->name, &secret_sources[SECRET_WEBHOOK],
	    b->secret_file, &b->secret, &b->secret_len, &b->secret_path,
	    &b->secret_from, err, errlen) == -1)
		return -1;
	return split_webhook_secret(b, err, errlen);
}

static int
load_bot_secrets(struct parse_state *ps, unsigned need, char *err, size_t errlen)
{
	enum secret_from	 from;
	size_t			 i;

	for (i = 0; i < ps->cfg->nbots; i++) {
		struct bot_config *b = &ps->cfg->bots[i];

		if ((need & CONFIG_NEED_TOKENS) && load_secret(ps, b->name,
		    &secret_sources[SECRET_TOKEN], b->token_file, &b->token,
		    &b->token_len, NULL, &from, err, errlen) == -1)
			return -1;
		if ((need & CONFIG_NEED_SECRETS) && (load_secret(ps, b->name,
		    &secret_sources[SECRET_WEBHOOK], b->secret_file, &b->secret,
		    &b->secret_len, &b->secret_path, &b->secret_from, err,
		    errlen) == -1 || split_webhook_secret(b, err, errlen) == -1))
			return -1;
		if ((need & CONFIG_NEED_FORWARD_SECRETS) &&
		    load_forward_secret(ps, need, b, err, errlen) == -1)
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
	}
	return 0;
}

/* A socket is where an http handler's connections go, so no other kind has one;
 * an absolute path, as the drain's working folder is not the operator's. */
static int
check_handler_sockets(const struct config *cfg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < cfg->nbots; i++) {
		const struct bot_config *b = &cfg->bots[i];

		if (b->handler_socket == NULL)
			continue;
		if (!config_handler_is_http(b->handler)) {
			snprintf(err, errlen, "bot %s: handler_socket is for an http:// "
			    "or https:// handler", b->name);
			return -1;
		}
		if (b->handler_socket[0] != '/' || strlen(b->handler_socket) >=
		    sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
			snprintf(err, errlen, "bot %s: handler_socket must be an absolute "
			    "path shorter than 108 bytes", b->name);
			return -1;
		}
	}
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
	int			 rc = -1;

	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ps->cfg = cfg;
	snprintf(ps->dir, sizeof(ps->dir), ".");
	memset(cfg, 0, sizeof(*cfg));
	if (apply_defaults(SECTION_TGQ, cfg, NULL, err, errlen) == -1)
		goto done;
	if (path != NULL && *path == '\0') {
		snprintf(err, errlen, "the configuration path given with -c is empty");
		goto done;
	}
	if (path == NULL && (path = getenv(CONFIG_ENV)) != NULL && *path == '\0') {
		snprintf(err, errlen, "%s is set but empty: name the file, or unset it "
		    "for %s", CONFIG_ENV, CONFIG_DEFAULT_PATH);
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
	    check_handler_sockets(cfg, err, errlen) == -1 ||
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
	free(ps);
	if (rc == -1)
		config_free(cfg);
	return rc;
}

/* Frees the string keys of a section in base. */
static void
free_strings(enum key_section section, void *base)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (config_keys[i].section == section &&
		    (config_keys[i].type == KEY_PATH || config_keys[i].type == KEY_URL ||
		    config_keys[i].type == KEY_HANDLER || config_keys[i].type == KEY_TEXT ||
		    config_keys[i].type == KEY_UPDATES || config_keys[i].type == KEY_IP ||
		    config_keys[i].type == KEY_LISTEN))
			free(*(char **)(void *)((char *)base + config_keys[i].offset));
		else if (config_keys[i].section == section &&
		    config_keys[i].type == KEY_USERS)
			user_list_free((struct user_list *)(void *)((char *)base +
			    config_keys[i].offset));
}

void
config_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nbots; i++) {
		secret_free(cfg->bots[i].token, cfg->bots[i].token_len);
		secret_free(cfg->bots[i].secret, cfg->bots[i].secret_len);
		secret_free(cfg->bots[i].secret_prev, cfg->bots[i].secret_prev_len);
		secret_free(cfg->bots[i].forward_secret,
		    cfg->bots[i].forward_secret_len);
		free(cfg->bots[i].secret_path);
		free_strings(SECTION_BOT, &cfg->bots[i]);
	}
	free(cfg->path);
	free_strings(SECTION_TGQ, cfg);
	memset(cfg, 0, sizeof(*cfg));
}
