/*
 * The queue commands: status, ls, show, retry, purge.  They read and repair the
 * SQLite file directly, with the same statements an operator would type into the
 * sqlite3 shell (README, "sqlite3 recipes"), so what tgq shows is what is there.
 *
 * Which bot: with several bots configured, the rows of the selected bot (--bot,
 * else "default"); with one bot (or none), every row.  A queue shared by one bot
 * only can still hold rows of a bot since renamed, and hiding those would hide
 * work the operator has to see.
 *
 * Times: ls and show print absolute UTC times ("2024-05-01 12:00:00"), which can
 * be compared with logs and the sqlite3 shell's datetime(); status prints ages
 * ("5 min ago"), which is what one wants to know at a glance.
 *
 * Text taken from updates (message texts, kinds, Telegram's descriptions) is
 * printed with control characters replaced, so that a message cannot move the
 * cursor or retitle the operator's terminal.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cli.h"

#define LS_DEFAULT_LIMIT	20
#define LS_MAX_LIMIT		10000
#define PREVIEW_CHARS		40
/* Rows deleted per transaction: short enough that the webhook, which waits for
 * the same lock, never waits long. */
#define PURGE_BATCH		500
/* Ten years: a larger duration is a typo, not a plan. */
#define PURGE_MAX_AGE_S		(3650LL * 86400)
#define INDENT_MAX		64

/* ------------------------------------------------------------------ helpers */

/* The bot whose rows to look at, NULL for all (see the top of this file).  The
 * statements take it as a bound parameter: "(?N IS NULL OR bot = ?N)". */
static const char *
bot_filter(const struct cli *c)
{
	if (c->bot != NULL && c->cfg.nbots > 1)
		return c->bot->name;
	return NULL;
}

static const char *
plural(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static sqlite3_stmt *
prepare(struct cli *c, sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		cli_fail(c, "queue: %s", sqlite3_errmsg(db));
		return NULL;
	}
	return st;
}

static void
bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static int
col_null(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL;
}

/* "YYYY-MM-DD HH:MM:SS" in UTC, as SQLite's datetime(t, 'unixepoch') prints it. */
static const char *
utc(char *buf, size_t len, int64_t t)
{
	struct tm	tm;
	time_t		tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
	return buf;
}

static void
put_padded(FILE *out, const char *s, size_t width)
{
	size_t n = cli_put_clean(out, s, 0);

	for (; n < width; n++)
		fputc(' ', out);
}

static void
newline_indent(FILE *out, int indent, int depth)
{
	int i;

	if (depth > INDENT_MAX)
		depth = INDENT_MAX;
	fputc('\n', out);
	for (i = 0; i < indent + 2 * depth; i++)
		fputc(' ', out);
}

/*
 * Pretty-prints a JSON text (SQLite 3.40 has no json_pretty), every line indented
 * by indent spaces.  The text was validated when it was stored, so this only
 * re-lays it out: whitespace outside strings is dropped, and a line break follows
 * every '{', '[' and ','.  It keeps no stack, so any depth is safe.  Inside
 * strings, controls are replaced as cli_put_clean() does.
 */
static void
put_pretty(FILE *out, const char *json, int indent)
{
	const unsigned char	*p = (const unsigned char *)json;
	const unsigned char	*end = p + strlen(json);
	const unsigned char	*q;
	int			 depth = 0, in_str = 0, esc = 0, printable;
	size_t			 n;

	for (; *p != '\0'; p += n) {
		n = cli_char((const char *)p, (size_t)(end - p), &printable);
		if (n == 0) {
			fputc('?', out);
			n = 1;
			continue;
		}
		if (in_str) {
			if (!printable)
				fputc(' ', out);
			else
				fwrite(p, 1, n, out);
			if (esc)
				esc = 0;
			else if (*p == '\\')
				esc = 1;
			else if (*p == '"')
				in_str = 0;
			continue;
		}
		switch (*p) {
		case ' ':
		case '\t':
		case '\n':
		case '\r':
			break;
		case '"':
			in_str = 1;
			fputc('"', out);
			break;
		case '{':
		case '[':
			fputc(*p, out);
			/* An empty object or array stays on its line. */
			for (q = p + 1; *q == ' ' || *q == '\t' || *q == '\n' ||
			    *q == '\r'; q++)
				continue;
			if (*q == (*p == '{' ? '}' : ']')) {
				fputc(*q, out);
				n = (size_t)(q - p) + 1;
				break;
			}
			newline_indent(out, indent, ++depth);
			break;
		case '}':
		case ']':
			if (depth > 0)
				depth--;
			newline_indent(out, indent, depth);
			fputc(*p, out);
			break;
		case ',':
			fputc(',', out);
			newline_indent(out, indent, depth);
			break;
		case ':':
			fputs(": ", out);
			break;
		default:
			if (printable)
				fwrite(p, 1, n, out);
			else
				fputc(' ', out);
		}
	}
}

/* A unix time column as UTC text, "-" when NULL (or 0, "no time" in outbox). */
static const char *
time_column(char *buf, size_t len, sqlite3_stmt *st, int col)
{
	if (col_null(st, col) || sqlite3_column_int64(st, col) == 0)
		return "-";
	return utc(buf, len, sqlite3_column_int64(st, col));
}

static int
step_error(struct cli *c, sqlite3_stmt *st)
{
	sqlite3 *db = sqlite3_db_handle(st);

	cli_fail(c, "queue: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return EXIT_FAILED;
}

/* Runs a write statement already bound; its changes in *changes. */
static int
run_write(struct cli *c, sqlite3_stmt *st, int64_t *changes)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		cli_fail(c, "queue: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
		return -1;
	}
	*changes = sqlite3_changes(sqlite3_db_handle(st));
	return 0;
}

/* No operands: every queue command but show and retry takes options only. */
static int
no_operands(const struct command *cmd, int argc, char **argv)
{
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ status */

/* The counts use updates_by_state and outbox_by_state (state, id). */
static const char status_sql[] =
	"SELECT"
	" (SELECT count(*) FROM updates WHERE state = 'new'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM updates WHERE state = 'leased'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM updates WHERE state = 'done'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM updates WHERE state = 'dead'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM outbox WHERE state = 'new'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM outbox WHERE state = 'sending'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM outbox WHERE state = 'sent'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT count(*) FROM outbox WHERE state = 'dead'"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT min(received_at) FROM updates WHERE state IN ('new', 'leased')"
	"   AND (?1 IS NULL OR bot = ?1)),"
	" (SELECT max(handled_at) FROM updates WHERE (?1 IS NULL OR bot = ?1)),"
	" (SELECT max(sent_at) FROM outbox WHERE (?1 IS NULL OR bot = ?1))";

enum { ST_U_NEW, ST_U_LEASED, ST_U_DONE, ST_U_DEAD, ST_O_NEW, ST_O_SENDING,
	ST_O_SENT, ST_O_DEAD, ST_OLDEST, ST_HANDLED, ST_SENT_AT, ST_NCOL };

/* The bots tgq-drain has marked down: their http handler does not answer. */
static const char bots_down_sql[] =
	"SELECT bot, since, probes, last_error FROM bot_down"
	" WHERE (?1 IS NULL OR bot = ?1) ORDER BY bot";
enum { BD_BOT, BD_SINCE, BD_PROBES, BD_ERROR };

static const char *const status_keys[ST_NCOL] = { "new", "leased", "done", "dead",
	"new", "sending", "sent", "dead" };

static void
status_json(struct cli *c, const int64_t *v, const int *has, int64_t now,
    sqlite3_stmt *down)
{
	struct jsonw	w;
	int		i;

	cli_json_begin(&w, 1);
	jw_key(&w, "database");
	jw_string(&w, c->cfg.database);
	jw_key(&w, "bot");
	jw_string(&w, bot_filter(c));
	jw_key(&w, "updates");
	jw_object(&w);
	for (i = ST_U_NEW; i <= ST_U_DEAD; i++) {
		jw_key(&w, status_keys[i]);
		jw_int(&w, v[i]);
	}
	jw_end(&w);
	jw_key(&w, "outbox");
	jw_object(&w);
	for (i = ST_O_NEW; i <= ST_O_DEAD; i++) {
		jw_key(&w, status_keys[i]);
		jw_int(&w, v[i]);
	}
	jw_end(&w);
	jw_key(&w, "pending");
	jw_int(&w, v[ST_U_NEW] + v[ST_U_LEASED]);
	jw_key(&w, "oldest_pending_at");
	if (has[ST_OLDEST])
		jw_int(&w, v[ST_OLDEST]);
	else
		jw_null(&w);
	jw_key(&w, "oldest_pending_age_s");
	if (has[ST_OLDEST])
		jw_int(&w, now > v[ST_OLDEST] ? now - v[ST_OLDEST] : 0);
	else
		jw_null(&w);
	jw_key(&w, "dead");
	jw_object(&w);
	jw_key(&w, "updates");
	jw_int(&w, v[ST_U_DEAD]);
	jw_key(&w, "calls");
	jw_int(&w, v[ST_O_DEAD]);
	jw_end(&w);
	jw_key(&w, "last_handled_at");
	if (has[ST_HANDLED])
		jw_int(&w, v[ST_HANDLED]);
	else
		jw_null(&w);
	jw_key(&w, "last_sent_at");
	if (has[ST_SENT_AT])
		jw_int(&w, v[ST_SENT_AT]);
	else
		jw_null(&w);
	jw_key(&w, "bots_down");
	jw_array(&w);
	while (sqlite3_step(down) == SQLITE_ROW) {
		jw_object(&w);
		jw_key(&w, "bot");
		jw_string(&w, col_text(down, BD_BOT));
		jw_key(&w, "since");
		jw_int(&w, sqlite3_column_int64(down, BD_SINCE));
		jw_key(&w, "probes");
		jw_int(&w, sqlite3_column_int64(down, BD_PROBES));
		jw_key(&w, "last_error");
		jw_string(&w, col_text(down, BD_ERROR));
		jw_end(&w);
	}
	jw_end(&w);
	cli_json_end(&w);
}

static void
status_line_ago(const char *label, int has, int64_t then, int64_t now)
{
	char ago[32];

	if (has)
		printf("%-16s%s ago\n", label, cli_ago(ago, sizeof(ago), then, now));
	else
		printf("%-16snever\n", label);
}

static void
status_text(struct cli *c, const int64_t *v, const int *has, int64_t now,
    sqlite3_stmt *down)
{
	char ago[32];
	const char *bot = bot_filter(c);

	printf("%-16s%s (%s%s)\n", "queue", c->cfg.database, bot ? "bot " : "all bots",
	    bot ? bot : "");
	printf("%-16snew %lld, leased %lld, done %lld, dead %lld\n", "updates",
	    (long long)v[ST_U_NEW], (long long)v[ST_U_LEASED],
	    (long long)v[ST_U_DONE], (long long)v[ST_U_DEAD]);
	printf("%-16snew %lld, sending %lld, sent %lld, dead %lld\n", "calls",
	    (long long)v[ST_O_NEW], (long long)v[ST_O_SENDING],
	    (long long)v[ST_O_SENT], (long long)v[ST_O_DEAD]);
	if (has[ST_OLDEST])
		status_line_ago("oldest pending", 1, v[ST_OLDEST], now);
	else
		printf("%-16snothing pending\n", "oldest pending");
	if (v[ST_U_DEAD] + v[ST_O_DEAD] > 0)
		printf("%-16s%lld %s, %lld %s (see tgq ls [--calls] --state dead; "
		    "tgq retry --dead)\n", "dead", (long long)v[ST_U_DEAD],
		    plural(v[ST_U_DEAD], "update", "updates"), (long long)v[ST_O_DEAD],
		    plural(v[ST_O_DEAD], "call", "calls"));
	else
		printf("%-16snone\n", "dead");
	status_line_ago("last handled", has[ST_HANDLED], v[ST_HANDLED], now);
	status_line_ago("last sent", has[ST_SENT_AT], v[ST_SENT_AT], now);
	/* Only a bot that is down gets a line: its updates wait for it. */
	while (sqlite3_step(down) == SQLITE_ROW)
		printf("%-16s%s, since %s ago, %lld probes: %s (its updates wait)\n",
		    "bot down", col_text(down, BD_BOT), cli_ago(ago, sizeof(ago),
		    sqlite3_column_int64(down, BD_SINCE), now),
		    (long long)sqlite3_column_int64(down, BD_PROBES),
		    col_null(down, BD_ERROR) ? "-" : col_text(down, BD_ERROR));
}

int
cmd_status(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("status");
	struct queue		*q;
	sqlite3_stmt		*st, *down;
	int64_t			 v[ST_NCOL], now;
	int			 has[ST_NCOL], o, rc, i;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &o, &rc))
			return rc;
		if (o == -1)
			break;
	}
	if ((rc = no_operands(cmd, argc, argv)) != EXIT_OK)
		return rc;
	if ((q = cli_queue_read(c)) == NULL)
		return EXIT_FAILED;
	if ((st = prepare(c, queue_db(q), status_sql)) == NULL)
		return EXIT_FAILED;
	bind_text_or_null(st, 1, bot_filter(c));
	/* One statement, so every number comes from the same snapshot. */
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return step_error(c, st);
	for (i = 0; i < ST_NCOL; i++) {
		has[i] = !col_null(st, i);
		v[i] = sqlite3_column_int64(st, i);
	}
	sqlite3_finalize(st);
	if ((down = prepare(c, queue_db(q), bots_down_sql)) == NULL)
		return EXIT_FAILED;
	bind_text_or_null(down, 1, bot_filter(c));
	now = now_unix();
	if (c->json)
		status_json(c, v, has, now, down);
	else
		status_text(c, v, has, now, down);
	sqlite3_finalize(down);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ ls */

/*
 * The preview: the text of a message-like update, a caption, a callback's data or
 * an inline query.  Kinds come from the update's own keys; only [a-z_] names are
 * used as a JSON key here, since "->" reads any other text as a JSON path.
 */
static const char ls_sql[] =
	"SELECT id, bot, update_id, received_at, kind, chat_id, state, attempts,"
	" last_error, replaced_at, text,"
	" json_object('id', id, 'bot', bot, 'update_id', update_id,"
	"   'received_at', received_at, 'received', datetime(received_at, 'unixepoch'),"
	"   'kind', kind, 'chat_id', chat_id, 'state', state, 'attempts', attempts,"
	"   'text', text, 'last_error', last_error, 'replaced_at', replaced_at)"
	" FROM (SELECT *, CASE WHEN kind GLOB '[a-z_]*' AND NOT kind GLOB '*[^a-z_]*'"
	"   AND json_valid(body) THEN coalesce(body -> kind ->> 'text',"
	"   body -> kind ->> 'caption', body -> kind ->> 'data',"
	"   body -> kind ->> 'query') END AS text"
	" FROM updates"
	" WHERE (?1 IS NULL OR bot = ?1) AND (?2 IS NULL OR state = ?2)"
	"   AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR chat_id = ?4)"
	" ORDER BY id DESC LIMIT ?5) ORDER BY id DESC";

/* ls_sql's columns: what the text view prints, then the --json row (LS_JSON). */
enum { LS_ID, LS_BOT, LS_UPDATE_ID, LS_RECEIVED, LS_KIND, LS_CHAT, LS_STATE,
	LS_ATTEMPTS, LS_ERROR, LS_REPLACED, LS_TEXT, LS_JSON };

/*
 * With --calls: what the handlers asked for (the outbox), newest first; --kind
 * matches the method.  The preview is the message's text, or why a dead call died.
 */
static const char ls_calls_sql[] =
	"SELECT id, bot, update_id, created_at, method, chat_id, state, attempts,"
	" last_error, NULL, text,"
	" json_object('what', 'call', 'id', id, 'bot', bot,"
	"   'update_row', update_row, 'update_id', update_id,"
	"   'created_at', created_at, 'created', datetime(created_at, 'unixepoch'),"
	"   'method', method, 'chat_id', chat_id, 'state', state,"
	"   'attempts', attempts, 'text', text, 'last_error', last_error,"
	"   'sent_at', sent_at)"
	" FROM (SELECT *, CASE WHEN json_valid(params) THEN params ->> '$.text'"
	"   END AS text"
	" FROM outbox"
	" WHERE (?1 IS NULL OR bot = ?1) AND (?2 IS NULL OR state = ?2)"
	"   AND (?3 IS NULL OR method = ?3) AND (?4 IS NULL OR chat_id = ?4)"
	" ORDER BY id DESC LIMIT ?5) ORDER BY id DESC";

static int
valid_call_state(const char *s)
{
	return strcmp(s, "new") == 0 || strcmp(s, "sending") == 0 ||
	    strcmp(s, "sent") == 0 || strcmp(s, "dead") == 0;
}

static int
valid_update_state(const char *s)
{
	return strcmp(s, "new") == 0 || strcmp(s, "leased") == 0 ||
	    strcmp(s, "done") == 0 || strcmp(s, "dead") == 0;
}

static void
ls_text_row(sqlite3_stmt *st, int state_width)
{
	char		 when[32];
	const char	*preview;

	printf("%6lld %11lld  %-19s  ", (long long)sqlite3_column_int64(st, LS_ID),
	    (long long)sqlite3_column_int64(st, LS_UPDATE_ID),
	    utc(when, sizeof(when), sqlite3_column_int64(st, LS_RECEIVED)));
	put_padded(stdout, col_text(st, LS_KIND), 16);
	if (col_null(st, LS_CHAT))
		printf(" %14s", "-");
	else if (sqlite3_column_type(st, LS_CHAT) == SQLITE_TEXT) {
		/* A call's chat_id may be a "@channelusername". */
		fputc(' ', stdout);
		put_padded(stdout, col_text(st, LS_CHAT), 14);
	} else
		printf(" %14lld", (long long)sqlite3_column_int64(st, LS_CHAT));
	printf("  %-*s %5lld  ", state_width, col_text(st, LS_STATE),
	    (long long)sqlite3_column_int64(st, LS_ATTEMPTS));
	/* A dead update, or one done without its handler (allowed_users): why
	 * says more than what it said. */
	preview = (strcmp(col_text(st, LS_STATE), "dead") == 0 ||
	    strcmp(col_text(st, LS_STATE), "done") == 0) &&
	    !col_null(st, LS_ERROR) ? col_text(st, LS_ERROR) : col_text(st, LS_TEXT);
	if (preview != NULL)
		cli_put_clean(stdout, preview, PREVIEW_CHARS);
	fputc('\n', stdout);
}

int
cmd_ls(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "calls", no_argument, NULL, 'c' },
		{ "kind", required_argument, NULL, 'k' },
		{ "chat", required_argument, NULL, 'C' },
		{ "limit", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("ls");
	const char		*state = NULL, *kind = NULL, *errstr;
	struct queue		*q;
	struct jsonw		 w;
	sqlite3_stmt		*st;
	int64_t			 chat = 0, limit = LS_DEFAULT_LIMIT, rows = 0;
	int			 has_chat = 0, calls = 0, o, rc;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "hs:ck:C:n:", longopts, &o, &rc))
			return rc;
		if (o == -1)
			break;
		switch (o) {
		case 's':
			state = optarg;
			break;
		case 'c':
			calls = 1;
			break;
		case 'k':
			kind = optarg;
			break;
		case 'C':
			if (parse_int(optarg, INT64_MIN + 1, INT64_MAX, &chat,
			    &errstr) == -1)
				return cli_usage_error(cmd, "--chat %s: %s", optarg,
				    errstr);
			has_chat = 1;
			break;
		case 'n':
			if (parse_int(optarg, 1, LS_MAX_LIMIT, &limit, &errstr) == -1)
				return cli_usage_error(cmd, "--limit %s: %s (1-%d)",
				    optarg, errstr, LS_MAX_LIMIT);
			break;
		}
	}
	if ((rc = no_operands(cmd, argc, argv)) != EXIT_OK)
		return rc;
	/* Checked once every option is read: --calls may follow --state. */
	if (state != NULL && calls && !valid_call_state(state))
		return cli_usage_error(cmd, "--state %s: not one of new, sending, "
		    "sent, dead (calls)", state);
	if (state != NULL && !calls && !valid_update_state(state))
		return cli_usage_error(cmd, "--state %s: not one of new, leased, "
		    "done, dead", state);
	if ((q = cli_queue_read(c)) == NULL)
		return EXIT_FAILED;
	if ((st = prepare(c, queue_db(q), calls ? ls_calls_sql : ls_sql)) == NULL)
		return EXIT_FAILED;
	bind_text_or_null(st, 1, bot_filter(c));
	bind_text_or_null(st, 2, state);
	bind_text_or_null(st, 3, kind);
	if (has_chat)
		sqlite3_bind_int64(st, 4, chat);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_int64(st, 5, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rows++ == 0) {
			if (c->json) {
				jw_init(&w, stdout);
				jw_array(&w);
			} else
				printf("%6s %11s  %-19s  %-16s %14s  %-*s %5s  %s\n",
				    "ID", "UPDATE_ID", calls ? "CREATED (UTC)" :
				    "RECEIVED (UTC)", calls ? "METHOD" : "KIND",
				    "CHAT_ID", calls ? 7 : 6, "STATE", "TRIES",
				    "PREVIEW");
		}
		if (c->json)
			jw_raw(&w, col_text(st, LS_JSON));
		else
			ls_text_row(st, calls ? 7 : 6);
	}
	if (rc != SQLITE_DONE)
		return step_error(c, st);
	sqlite3_finalize(st);
	/* Nothing matched is exit 1, as tgq(1) says (like grep); --json still
	 * prints a list, the empty one, so a script reads the same shape. */
	if (rows == 0 && c->json) {
		printf("[]\n");
		return EXIT_FAILED;
	}
	if (rows == 0) {
		fprintf(stderr, "tgq: no %s%s\n", calls ? "calls" : "updates",
		    state || kind || has_chat ?
		    " match" : " in the queue");
		return EXIT_FAILED;
	}
	if (c->json) {
		cli_json_end(&w);
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------------ show */

/* The row Telegram's update_id now names first (replaced_at NULL), then the
 * rows it named before, newest first. */
/* A JSON column as JSON when it is valid (it always should be), else as a
 * string, so that a --json row stays one valid JSON value. */
#define AS_JSON(col) \
	"CASE WHEN json_valid(" col ") THEN json(" col ") ELSE " col " END"

static const char show_sql[] =
	"SELECT id, bot, update_id, received_at, kind, chat_id, body, state, attempts,"
	" lease_until, next_attempt_at, last_error, handled_at, replaced_at,"
	" json_object('id', id, 'bot', bot, 'update_id', update_id,"
	"   'received_at', received_at, 'kind', kind, 'chat_id', chat_id,"
	"   'state', state, 'attempts', attempts, 'lease_until', lease_until,"
	"   'next_attempt_at', next_attempt_at, 'last_error', last_error,"
	"   'handled_at', handled_at, 'replaced_at', replaced_at,"
	"   'body', " AS_JSON("body") ")"
	" FROM updates WHERE update_id = ?1 AND (?2 IS NULL OR bot = ?2)"
	" ORDER BY replaced_at IS NOT NULL, id DESC";

/* show_sql's columns: the text view's, then the --json row (SH_JSON). */
enum { SH_ID, SH_BOT, SH_UPDATE_ID, SH_RECEIVED, SH_KIND, SH_CHAT, SH_BODY,
	SH_STATE, SH_ATTEMPTS, SH_LEASE, SH_NEXT, SH_ERROR, SH_HANDLED, SH_REPLACED,
	SH_JSON };

static const char calls_sql[] =
	"SELECT id, method, chat_id, params, state, attempts, created_at,"
	" next_attempt_at, lease_until, last_error, sent_at, result,"
	" json_object('id', id, 'method', method, 'chat_id', chat_id,"
	"   'params', " AS_JSON("params") ", 'state', state, 'attempts', attempts,"
	"   'created_at', created_at, 'next_attempt_at', next_attempt_at,"
	"   'lease_until', lease_until, 'last_error', last_error, 'sent_at', sent_at,"
	"   'result', " AS_JSON("result") ")"
	" FROM outbox WHERE update_row = ?1 ORDER BY id";

/* calls_sql's columns, the same way. */
enum { CA_ID, CA_METHOD, CA_CHAT, CA_PARAMS, CA_STATE, CA_ATTEMPTS, CA_CREATED,
	CA_NEXT, CA_LEASE, CA_ERROR, CA_SENT, CA_RESULT, CA_JSON };

static void
show_update_text(sqlite3_stmt *st)
{
	char when[32];

	printf("update %lld (row %lld, bot ",
	    (long long)sqlite3_column_int64(st, SH_UPDATE_ID),
	    (long long)sqlite3_column_int64(st, SH_ID));
	cli_put_clean(stdout, col_text(st, SH_BOT), 0);
	printf("), times in UTC\n%-14s%s\n", "received",
	    time_column(when, sizeof(when), st, SH_RECEIVED));
	printf("%-14s", "kind");
	cli_put_clean(stdout, col_text(st, SH_KIND), 0);
	if (col_null(st, SH_CHAT))
		printf("\n%-14s-\n", "chat_id");
	else
		printf("\n%-14s%lld\n", "chat_id",
		    (long long)sqlite3_column_int64(st, SH_CHAT));
	printf("%-14s%s\n", "state", col_text(st, SH_STATE));
	printf("%-14s%lld\n", "attempts",
	    (long long)sqlite3_column_int64(st, SH_ATTEMPTS));
	printf("%-14s%s\n", "lease until", time_column(when, sizeof(when), st,
	    SH_LEASE));
	printf("%-14s%s\n", "next attempt", time_column(when, sizeof(when), st,
	    SH_NEXT));
	printf("%-14s%s\n", "handled", time_column(when, sizeof(when), st,
	    SH_HANDLED));
	printf("%-14s", "last error");
	cli_put_clean(stdout, col_text(st, SH_ERROR), 0);
	printf("\n%-14s%s\n", "replaced", time_column(when, sizeof(when), st,
	    SH_REPLACED));
	printf("body\n  ");
	put_pretty(stdout, col_text(st, SH_BODY), 2);
	fputc('\n', stdout);
}

static void
show_call_text(sqlite3_stmt *st)
{
	char when[32];

	printf("\ncall %lld: ", (long long)sqlite3_column_int64(st, CA_ID));
	cli_put_clean(stdout, col_text(st, CA_METHOD), 0);
	printf("\n  %-14s", "chat_id");
	if (sqlite3_column_type(st, CA_CHAT) == SQLITE_INTEGER)
		printf("%lld", (long long)sqlite3_column_int64(st, CA_CHAT));
	else
		cli_put_clean(stdout, col_text(st, CA_CHAT), 0);
	printf("\n  %-14s%s\n", "state", col_text(st, CA_STATE));
	printf("  %-14s%lld\n", "attempts",
	    (long long)sqlite3_column_int64(st, CA_ATTEMPTS));
	printf("  %-14s%s\n", "created", time_column(when, sizeof(when), st,
	    CA_CREATED));
	printf("  %-14s%s\n", "next attempt", time_column(when, sizeof(when), st,
	    CA_NEXT));
	printf("  %-14s%s\n", "lease until", time_column(when, sizeof(when), st,
	    CA_LEASE));
	printf("  %-14s%s\n", "sent", time_column(when, sizeof(when), st, CA_SENT));
	printf("  %-14s", "last error");
	cli_put_clean(stdout, col_text(st, CA_ERROR), 0);
	/* Telegram's answer and what was sent: compact, one line each. */
	printf("\n  %-14s", "result");
	cli_put_clean(stdout, col_text(st, CA_RESULT), 0);
	printf("\n  %-14s", "params");
	cli_put_clean(stdout, col_text(st, CA_PARAMS), 0);
	fputc('\n', stdout);
}

/* The calls the update's handler asked for. */
static int
show_calls(struct cli *c, struct jsonw *w, sqlite3 *db, int64_t row)
{
	sqlite3_stmt	*st;
	int64_t		 n = 0;
	int		 rc;

	if ((st = prepare(c, db, calls_sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, row);
	if (c->json)
		jw_array(w);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (c->json)
			jw_raw(w, col_text(st, CA_JSON));
		else
			show_call_text(st);
	}
	if (rc != SQLITE_DONE) {
		step_error(c, st);
		return -1;
	}
	sqlite3_finalize(st);
	if (c->json)
		jw_end(w);
	else if (n == 0)
		printf("\nno calls\n");
	return 0;
}

static void
show_other_row(struct cli *c, struct jsonw *w, sqlite3_stmt *st, int first)
{
	char when[32];

	if (c->json) {
		jw_raw(w, col_text(st, SH_JSON));
		return;
	}
	if (first)
		printf("\nother rows with this update_id (tgq ls shows them all):\n");
	printf("  row %lld, bot ", (long long)sqlite3_column_int64(st, SH_ID));
	cli_put_clean(stdout, col_text(st, SH_BOT), 0);
	printf(", received %s, %s", utc(when, sizeof(when),
	    sqlite3_column_int64(st, SH_RECEIVED)), col_text(st, SH_STATE));
	if (!col_null(st, SH_REPLACED))
		printf(", replaced %s", utc(when, sizeof(when),
		    sqlite3_column_int64(st, SH_REPLACED)));
	fputc('\n', stdout);
}

int
cmd_show(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("show");
	const char		*errstr;
	struct queue		*q;
	struct jsonw		 w;
	sqlite3_stmt		*st;
	int64_t			 update_id, others = 0;
	int			 o, rc;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &o, &rc))
			return rc;
		if (o == -1)
			break;
	}
	if (optind != argc - 1)
		return cli_usage_error(cmd, optind == argc ? "UPDATE_ID is missing" :
		    "one UPDATE_ID only");
	if (parse_int(argv[optind], INT64_MIN + 1, INT64_MAX, &update_id,
	    &errstr) == -1)
		return cli_usage_error(cmd, "UPDATE_ID %s: %s", argv[optind], errstr);
	if ((q = cli_queue_read(c)) == NULL)
		return EXIT_FAILED;
	if ((st = prepare(c, queue_db(q), show_sql)) == NULL)
		return EXIT_FAILED;
	sqlite3_bind_int64(st, 1, update_id);
	bind_text_or_null(st, 2, bot_filter(c));
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		sqlite3_finalize(st);
		return cli_fail(c, "no update %lld in the queue", (long long)update_id);
	}
	if (rc != SQLITE_ROW)
		return step_error(c, st);
	if (c->json) {
		cli_json_begin(&w, 1);
		jw_key(&w, "update");
		jw_raw(&w, col_text(st, SH_JSON));
		jw_key(&w, "calls");
	} else
		show_update_text(st);
	if (show_calls(c, &w, queue_db(q), sqlite3_column_int64(st, SH_ID)) == -1) {
		sqlite3_finalize(st);
		return EXIT_FAILED;
	}
	if (c->json) {
		jw_key(&w, "other_rows");
		jw_array(&w);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		show_other_row(c, &w, st, others++ == 0);
	if (rc != SQLITE_DONE)
		return step_error(c, st);
	sqlite3_finalize(st);
	if (c->json) {
		jw_end(&w);
		cli_json_end(&w);
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------------ retry */

/* What the README's recipe does, for the rows of one update_id (the current row:
 * a replaced one was answered long ago) or for every dead row (?1 NULL). */
static const char retry_updates_sql[] =
	"UPDATE updates SET state = 'new', attempts = 0, last_error = NULL,"
	" next_attempt_at = NULL, lease_until = NULL"
	" WHERE state = 'dead' AND (?2 IS NULL OR bot = ?2)"
	"   AND (?1 IS NULL OR (update_id = ?1 AND replaced_at IS NULL))";

/* A call keeps its last_error, which says why it died until it is sent. */
static const char retry_calls_sql[] =
	"UPDATE outbox SET state = 'new', attempts = 0, next_attempt_at = 0,"
	" lease_until = NULL"
	" WHERE state = 'dead' AND (?2 IS NULL OR bot = ?2)"
	"   AND (?1 IS NULL OR update_row IN (SELECT id FROM updates"
	"     WHERE update_id = ?1 AND replaced_at IS NULL"
	"     AND (?2 IS NULL OR bot = ?2)))";

/* exists_sql's one column. */
enum { EX_STATE };
static const char exists_sql[] =
	"SELECT state FROM updates WHERE update_id = ?1 AND replaced_at IS NULL"
	" AND (?2 IS NULL OR bot = ?2) ORDER BY id DESC LIMIT 1";

/* Whether update_id names a current row: 1 yes (its state in state), 0 no,
 * -1 error. */
static int
update_exists(struct cli *c, sqlite3 *db, int64_t update_id, char *state,
    size_t len)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = prepare(c, db, exists_sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, update_id);
	bind_text_or_null(st, 2, bot_filter(c));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(state, len, "%s", col_text(st, EX_STATE));
	else if (rc != SQLITE_DONE) {
		step_error(c, st);
		return -1;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW;
}

static int
retry_rows(struct cli *c, struct queue *q, int all, int64_t update_id,
    int64_t *nupdates, int64_t *ncalls)
{
	sqlite3_stmt	*su = NULL, *sc = NULL;
	char		 err[512];
	int		 ok = 0, i;

	if ((su = prepare(c, queue_db(q), retry_updates_sql)) == NULL ||
	    (sc = prepare(c, queue_db(q), retry_calls_sql)) == NULL) {
		sqlite3_finalize(su);
		return -1;
	}
	for (i = 0; i < 2; i++) {
		sqlite3_stmt *st = i == 0 ? su : sc;

		if (all)
			sqlite3_bind_null(st, 1);
		else
			sqlite3_bind_int64(st, 1, update_id);
		bind_text_or_null(st, 2, bot_filter(c));
	}
	/* One transaction: the update and its calls come back together.  The
	 * lock waits as long as another writer takes: an operator's command. */
	if (queue_begin(q, QUEUE_WAIT_FOREVER, err, sizeof(err)) != QUEUE_OK)
		cli_fail(c, "queue: %s", err);
	else if (run_write(c, sc, ncalls) == 0 && run_write(c, su, nupdates) == 0) {
		if (queue_commit(q, err, sizeof(err)) == QUEUE_OK)
			ok = 1;
		else
			cli_fail(c, "queue: %s", err);
	} else
		queue_rollback(q);
	sqlite3_finalize(su);
	sqlite3_finalize(sc);
	return ok ? 0 : -1;
}

int
cmd_retry(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dead", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("retry");
	const char		*errstr;
	struct queue		*q;
	struct jsonw		 w;
	char			 state[16];
	int64_t			 update_id = 0, nupdates = 0, ncalls = 0;
	int			 all = 0, o, rc;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "hd", longopts, &o, &rc))
			return rc;
		if (o == -1)
			break;
		if (o == 'd')
			all = 1;
	}
	if (all && optind < argc)
		return cli_usage_error(cmd, "either UPDATE_ID or --dead");
	if (!all && optind != argc - 1)
		return cli_usage_error(cmd, optind == argc ? "UPDATE_ID or --dead is "
		    "missing" : "one UPDATE_ID only");
	if (!all && parse_int(argv[optind], INT64_MIN + 1, INT64_MAX, &update_id,
	    &errstr) == -1)
		return cli_usage_error(cmd, "UPDATE_ID %s: %s", argv[optind], errstr);
	if ((q = cli_queue(c)) == NULL)
		return EXIT_FAILED;
	if (!all) {
		if ((rc = update_exists(c, queue_db(q), update_id, state,
		    sizeof(state))) == -1)
			return EXIT_FAILED;
		if (rc == 0)
			return cli_fail(c, "no update %lld in the queue",
			    (long long)update_id);
	}
	if (retry_rows(c, q, all, update_id, &nupdates, &ncalls) == -1)
		return EXIT_FAILED;
	if (nupdates + ncalls == 0) {
		if (all)
			return cli_fail(c, "nothing is dead");
		return cli_fail(c, "update %lld is %s and has no dead calls: nothing "
		    "to retry", (long long)update_id, state);
	}
	if (c->json) {
		cli_json_begin(&w, 1);
		jw_key(&w, "updates");
		jw_int(&w, nupdates);
		jw_key(&w, "calls");
		jw_int(&w, ncalls);
		cli_json_end(&w);
	} else
		printf("%lld %s and %lld %s handed back to the drain\n",
		    (long long)nupdates, plural(nupdates, "update", "updates"),
		    (long long)ncalls, plural(ncalls, "call", "calls"));
	return EXIT_OK;
}

/* ------------------------------------------------------------------ purge */

/* Deletes one kind of row in batches (the rule is the queue's, shared with the
 * drain's retention). */
static int
purge_rows(struct cli *c, struct queue *q, enum queue_purge_what what,
    int64_t cutoff, int64_t *total)
{
	struct queue_purge	 p = { .what = what, .before = cutoff,
	    .bot = bot_filter(c), .batch = PURGE_BATCH, .max_batches = 0,
	    .max_wait_ms = QUEUE_WAIT_FOREVER };
	char			 err[512];

	if (queue_purge(q, &p, total, err, sizeof(err)) != QUEUE_OK) {
		cli_fail(c, "queue: %s", err);
		return -1;
	}
	return 0;
}

int
cmd_purge(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "state", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("purge");
	const char		*errstr, *age_text = NULL;
	struct queue		*q;
	struct jsonw		 w;
	int64_t			 age = -1, cutoff, nupdates = 0, ncalls = 0;
	int			 dead = 0, o, rc, failed;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "ho:s:", longopts, &o, &rc))
			return rc;
		if (o == -1)
			break;
		switch (o) {
		case 'o':
			if (parse_duration(optarg, 0, PURGE_MAX_AGE_S, &age,
			    &errstr) == -1)
				return cli_usage_error(cmd, "--older-than %s: %s (a "
				    "duration like 7d, 12h, 30m or 3600)", optarg,
				    errstr);
			age_text = optarg;
			break;
		case 's':
			if (strcmp(optarg, "done") == 0)
				dead = 0;
			else if (strcmp(optarg, "dead") == 0)
				dead = 1;
			else
				return cli_usage_error(cmd, "--state %s: not done or "
				    "dead", optarg);
			break;
		}
	}
	if ((rc = no_operands(cmd, argc, argv)) != EXIT_OK)
		return rc;
	/* No default age: deleting is for the operator to decide. */
	if (age_text == NULL)
		return cli_usage_error(cmd, "--older-than is missing");
	if ((q = cli_queue(c)) == NULL)
		return EXIT_FAILED;
	cutoff = now_unix() - age;
	failed = purge_rows(c, q, dead ? QUEUE_PURGE_DEAD_CALLS :
	    QUEUE_PURGE_SENT_CALLS, cutoff, &ncalls) == -1 || purge_rows(c, q,
	    dead ? QUEUE_PURGE_DEAD_UPDATES : QUEUE_PURGE_DONE_UPDATES, cutoff,
	    &nupdates) == -1;
	/* What was deleted before a failure is gone: say so either way. */
	if (failed) {
		if (nupdates + ncalls > 0 && !c->json)
			fprintf(stderr, "tgq: purged %lld %s and %lld %s before the "
			    "error\n", (long long)nupdates,
			    plural(nupdates, "update", "updates"), (long long)ncalls,
			    plural(ncalls, "call", "calls"));
		return EXIT_FAILED;
	}
	/* Nothing old enough is a normal outcome for a cron job: exit 0. */
	if (c->json) {
		cli_json_begin(&w, 1);
		jw_key(&w, "state");
		jw_string(&w, dead ? "dead" : "done");
		jw_key(&w, "older_than_s");
		jw_int(&w, age);
		jw_key(&w, "updates");
		jw_int(&w, nupdates);
		jw_key(&w, "calls");
		jw_int(&w, ncalls);
		cli_json_end(&w);
	} else
		printf("purged %lld %s %s and %lld %s %s, older than %s\n",
		    (long long)nupdates, dead ? "dead" : "done",
		    plural(nupdates, "update", "updates"), (long long)ncalls,
		    dead ? "dead" : "sent", plural(ncalls, "call", "calls"), age_text);
	return EXIT_OK;
}
