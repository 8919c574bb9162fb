/*
 * Who may reach a bot's handler: with allowed_users set, only updates whose
 * sender is listed.  The sender is the user behind the update's one object
 * (message, callback_query, inline_query, ...): its "from", or its "user" where
 * Telegram names it so (poll_answer, message_reaction).  An update with no user
 * behind it (a channel post, a poll's new state, an anonymous vote or reaction,
 * a boost) is not let through either: a list of users lets in only them.  The
 * check runs when an update is claimed, before any kind of handler sees it.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "drain.h"

enum gate_column { GATE_KIND, GATE_SENDER, GATE_DENY_PARAMS, GATE_DENY_CHAT };

/* The update's kind as a reason may name it: Telegram's names are short
 * lower-case words; anything else is "an update". */
static const char *
kind_name(sqlite3_stmt *st)
{
	const char	*kind = (const char *)sqlite3_column_text(st, GATE_KIND);
	size_t		 len;

	if (kind == NULL)
		return "an update";
	len = strspn(kind, "abcdefghijklmnopqrstuvwxyz_");
	if (len == 0 || len > 40 || kind[len] != '\0')
		return "an update";
	return kind;
}

int
gate_check(sqlite3 *db, sqlite3_stmt **cached, const struct bot_config *bot,
    const struct claimed *c, struct call_list *deny, char *why, size_t whylen)
{
	sqlite3_stmt	*st;
	int		 rc = -1;

	memset(deny, 0, sizeof(*deny));
	if (bot->allowed_users.n == 0)
		return 1;
	/* An update holds update_id and one object, named after its kind. */
	if (*cached == NULL && sqlite3_prepare_v3(db,
	    "SELECT u.key,"
	    "  CASE WHEN json_type(u.value, '$.from.id') = 'integer'"
	    "    THEN json_extract(u.value, '$.from.id')"
	    "  WHEN json_type(u.value, '$.user.id') = 'integer'"
	    "    THEN json_extract(u.value, '$.user.id') END,"
	    "  json_object('chat_id', json_extract(u.value, '$.chat.id'),"
	    "    'text', ?2),"
	    "  CASE WHEN ?2 IS NOT NULL AND u.key = 'message'"
	    "    AND json_type(u.value, '$.chat.id') = 'integer'"
	    "    THEN json_extract(u.value, '$.chat.id') END"
	    " FROM json_each(CASE WHEN json_valid(?1) THEN ?1 ELSE '{}' END) u"
	    " WHERE u.key <> 'update_id' AND u.type = 'object' LIMIT 1",
	    -1, SQLITE_PREPARE_PERSISTENT, cached, NULL) != SQLITE_OK) {
		snprintf(why, whylen, "allowed_users: %s", sqlite3_errmsg(db));
		return -1;
	}
	st = *cached;
	sqlite3_bind_text(st, 1, c->body, (int)c->body_len, SQLITE_STATIC);
	if (bot->deny_text != NULL)
		sqlite3_bind_text(st, 2, bot->deny_text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		if (sqlite3_column_type(st, GATE_SENDER) != SQLITE_INTEGER) {
			snprintf(why, whylen, "skipped: %s has no sender, and only the "
			    "users of allowed_users are let in", kind_name(st));
			rc = 0;
			break;
		}
		if (user_list_allows(&bot->allowed_users, sqlite3_column_int64(st,
		    GATE_SENDER))) {
			rc = 1;
			break;
		}
		snprintf(why, whylen, "skipped: user %lld is not allowed",
		    (long long)sqlite3_column_int64(st, GATE_SENDER));
		rc = 0;
		/* The answer to a refused message: one sendMessage to its chat. */
		if (sqlite3_column_type(st, GATE_DENY_CHAT) == SQLITE_INTEGER &&
		    calls_add_message(deny, st, GATE_DENY_PARAMS,
		    GATE_DENY_CHAT) == -1) {
			snprintf(why, whylen, "out of memory");
			rc = -1;
		}
		break;
	case SQLITE_DONE:
		snprintf(why, whylen, "skipped: an update with no sender, and only the "
		    "users of allowed_users are let in");
		rc = 0;
		break;
	default:
		snprintf(why, whylen, "allowed_users: %s", sqlite3_errmsg(db));
		break;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}
