/*
 * What a handler asks for: each output line a JSON object {"method": ..., params},
 * read with SQLite's JSON functions.  And the built-in echo handler, which is the
 * same thing written in SQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "drain.h"

#define LINE_ERR(err, errlen, line, why) \
	snprintf((err), (errlen), "handler output line %zu: %s", (line), (why))

/*
 * Every call leaves as UTF-8 JSON that any parser takes: an escaped unpaired
 * surrogate, which RFC 8259's grammar allows and the webhook therefore stores,
 * is not a character, and strict parsers refuse it.  It becomes U+FFFD here.
 */
static int
push_call(struct call_list *list, const struct call *c)
{
	struct call *grown;

	json_replace_lone_surrogates(c->params, strlen(c->params));
	grown = realloc(list->calls, (list->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	list->calls = grown;
	list->calls[list->n++] = *c;
	return 0;
}

/* Fills the call's chat from the value of its chat_id, as SQLite returned it. */
static int
set_chat(struct call *c, sqlite3_stmt *st, int col)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER:
		c->chat_is_int = 1;
		c->chat_int = sqlite3_column_int64(st, col);
		snprintf(c->chat, sizeof(c->chat), "%lld", (long long)c->chat_int);
		return 0;
	case SQLITE_TEXT:
		if ((size_t)sqlite3_column_bytes(st, col) >= sizeof(c->chat))
			return -1;
		snprintf(c->chat, sizeof(c->chat), "%s", sqlite3_column_text(st, col));
		return 0;
	case SQLITE_NULL:
		return 0;
	default:
		return -1;	/* a float or an object is no chat */
	}
}

/* The columns of the statements below, in their order. */
enum line_column { LINE_IS_OBJECT, LINE_METHOD, LINE_PARAMS, LINE_CHAT };
enum echo_column { ECHO_METHOD, ECHO_PARAMS, ECHO_CHAT };

static int
parse_line(sqlite3_stmt *st, const char *line, size_t len, size_t lineno,
    struct call_list *list, char *err, size_t errlen)
{
	struct call	 c;
	const char	*method, *params;
	int		 rc = -1;

	memset(&c, 0, sizeof(c));
	sqlite3_bind_text(st, 1, line, (int)len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, LINE_IS_OBJECT) == 0) {
		LINE_ERR(err, errlen, lineno, "not a JSON object");
		goto done;
	}
	method = (const char *)sqlite3_column_text(st, LINE_METHOD);
	if (method == NULL || !botapi_method_valid(method)) {
		LINE_ERR(err, errlen, lineno, "\"method\" must be a name of letters");
		goto done;
	}
	if (set_chat(&c, st, LINE_CHAT) == -1) {
		LINE_ERR(err, errlen, lineno,
		    "\"chat_id\" must be an integer or a short string");
		goto done;
	}
	params = (const char *)sqlite3_column_text(st, LINE_PARAMS);
	snprintf(c.method, sizeof(c.method), "%s", method);
	if (params == NULL || (c.params = strdup(params)) == NULL ||
	    push_call(list, &c) == -1) {
		free(c.params);
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	rc = 0;
done:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* Within the line's n bytes only: the output need not end in a NUL. */
static int
is_blank(const char *line, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return 0;
	return 1;
}

int
calls_parse(sqlite3 *db, const char *out, size_t len, struct call_list *list,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	size_t		 pos = 0, lineno = 0;

	memset(list, 0, sizeof(*list));
	if (sqlite3_prepare_v2(db,
	    "SELECT json_valid(?1) AND json_type(?1) = 'object',"
	    " CASE WHEN json_valid(?1) AND json_type(?1, '$.method') = 'text'"
	    "   THEN json_extract(?1, '$.method') END,"
	    " CASE WHEN json_valid(?1) THEN json_remove(?1, '$.method') END,"
	    " CASE WHEN json_valid(?1) THEN json_extract(?1, '$.chat_id') END",
	    -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "handler output: %s", sqlite3_errmsg(db));
		return -1;
	}
	while (pos < len) {
		const char	*line = out + pos;
		const char	*nl = memchr(line, '\n', len - pos);
		size_t		 n = nl ? (size_t)(nl - line) : len - pos;

		pos += n + (nl != NULL);
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (is_blank(line, n))
			continue;
		if (memchr(line, '\0', n) != NULL) {
			LINE_ERR(err, errlen, lineno, "contains a NUL byte");
			goto fail;
		}
		/* SQLite's JSON functions pass broken UTF-8 through, and
		 * Telegram refuses a call that holds it. */
		if (!utf8_valid(line, n)) {
			LINE_ERR(err, errlen, lineno, "not valid UTF-8");
			goto fail;
		}
		if (list->n == CALLS_MAX) {
			snprintf(err, errlen, "handler output: more than %d calls",
			    CALLS_MAX);
			goto fail;
		}
		if (parse_line(st, line, n, lineno, list, err, errlen) == -1)
			goto fail;
	}
	sqlite3_finalize(st);
	return 0;
fail:
	sqlite3_finalize(st);
	calls_free(list);
	return -1;
}

int
calls_echo(sqlite3 *db, sqlite3_stmt **cached, const char *body, size_t len,
    struct call_list *list, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc = -1;

	memset(list, 0, sizeof(*list));
	/* The text is copied as JSON (->), escapes and all: json_extract would
	 * decode a lone surrogate such as \ud800 into bytes that are not UTF-8,
	 * where push_call can no longer find it. */
	if (*cached == NULL && sqlite3_prepare_v3(db,
	    "SELECT 'sendMessage', json_object('chat_id', json_extract(?1,"
	    "   '$.message.chat.id'), 'text', json(?1 -> '$.message.text')),"
	    " json_extract(?1, '$.message.chat.id')"
	    " WHERE json_valid(?1)"
	    "   AND json_type(?1, '$.message.text') = 'text'"
	    "   AND json_type(?1, '$.message.chat.id') = 'integer'",
	    -1, SQLITE_PREPARE_PERSISTENT, cached, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "echo: %s", sqlite3_errmsg(db));
		return -1;
	}
	st = *cached;
	sqlite3_bind_text(st, 1, body, (int)len, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW: {
		struct call c;

		memset(&c, 0, sizeof(c));
		snprintf(c.method, sizeof(c.method), "sendMessage");
		set_chat(&c, st, ECHO_CHAT);
		c.params = strdup((const char *)sqlite3_column_text(st, ECHO_PARAMS));
		if (c.params == NULL || push_call(list, &c) == -1) {
			free(c.params);
			snprintf(err, errlen, "out of memory");
			break;
		}
		rc = 0;
		break;
	}
	case SQLITE_DONE:
		rc = 0;		/* not a text message: nothing to say */
		break;
	default:
		snprintf(err, errlen, "echo: %s", sqlite3_errmsg(db));
		break;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int
calls_reply(sqlite3 *db, const char *body, size_t len, struct call_list *list,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	char		*line;
	size_t		 i;
	int		 rc = -1, is_reply;

	memset(list, 0, sizeof(*list));
	/* Most answers are empty, or "ok": no object, nothing to parse. */
	for (i = 0; i < len && (body[i] == ' ' || body[i] == '\t' ||
	    body[i] == '\r' || body[i] == '\n'); i++)
		continue;
	if (i == len || body[i] != '{')
		return 0;
	if ((line = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Outside strings a line break is a JSON blank; inside one it is not
	 * JSON at all: either way a blank keeps the object one line. */
	for (i = 0; i < len; i++)
		line[i] = body[i] == '\n' || body[i] == '\r' ? ' ' : body[i];
	line[len] = '\0';
	if (sqlite3_prepare_v2(db,
	    "SELECT json_valid(?1) AND json_type(?1) = 'object'"
	    "   AND json_type(?1, '$.method') IS NOT NULL", -1, &st,
	    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "webhook reply: %s", sqlite3_errmsg(db));
		goto done;
	}
	sqlite3_bind_text(st, 1, line, (int)len, SQLITE_STATIC);
	is_reply = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
	sqlite3_finalize(st);
	rc = is_reply ? calls_parse(db, line, len, list, err, errlen) : 0;
done:
	free(line);
	return rc;
}

void
calls_free(struct call_list *list)
{
	size_t i;

	for (i = 0; i < list->n; i++)
		free(list->calls[i].params);
	free(list->calls);
	memset(list, 0, sizeof(*list));
}
