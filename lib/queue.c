/*
 * The queue: one SQLite file in WAL mode.  This file owns the schema (a user
 * interface: operators read it with the sqlite3 shell), its migrations, and the
 * statements that write updates into it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tgq.h"

/* The column of a statement that selects one value. */
enum { ONE_VALUE };

/* 'tgq!': lets `file` and tgq itself tell a queue from any other SQLite file. */
#define QUEUE_APPLICATION_ID 0x74677121

struct queue {
	char		*path;
	enum durability	 durability;
	int64_t		 busy_timeout_ms;
	sqlite3		*db;
	sqlite3_stmt	*insert;
	sqlite3_stmt	*retire;
	sqlite3_stmt	*health;
	/* flock()ed around every write transaction, so that several processes queue
	 * on a kernel lock instead of SQLite's sleeping busy handler; -1 without. */
	int		 lockfd;
	int		 needs_reconnect;
	int		 checkpoint_pages;	/* 0: SQLite's default */
	int		 read_only;		/* queue_open_read(): never writes */
	/* Write transactions nest: only the outermost begins and ends one, and a
	 * rollback inside dooms it. */
	int		 depth;
	int		 doomed;
	sqlite3_stmt	*purge[QUEUE_PURGE_N];	/* prepared when first used */
};

static const char schema_v1[] =
	"CREATE TABLE updates (\n"
	"    id              INTEGER PRIMARY KEY,  -- arrival order\n"
	"    bot             TEXT    NOT NULL,     -- [bot NAME] of tgq.conf\n"
	"    update_id       INTEGER NOT NULL,\n"
	"    received_at     INTEGER NOT NULL,     -- unix seconds\n"
	"    kind            TEXT,                 -- message, callback_query, ...\n"
	"    chat_id         INTEGER,\n"
	"    body            TEXT    NOT NULL,     -- the update exactly as received\n"
	"    state           TEXT    NOT NULL DEFAULT 'new'\n"
	"                    CHECK (state IN ('new', 'leased', 'done', 'dead')),\n"
	"    attempts        INTEGER NOT NULL DEFAULT 0,\n"
	"    lease_until     INTEGER,              -- unix seconds, while leased\n"
	"    next_attempt_at INTEGER,              -- unix seconds, after a failure\n"
	"    last_error      TEXT,\n"
	"    handled_at      INTEGER,              -- unix seconds\n"
	"    replaced_at     INTEGER               -- Telegram reused the update_id\n"
	") STRICT;\n"
	/* A redelivery within the dedupe window finds its row here; a row whose
	 * update_id Telegram reused after the window is set aside with replaced_at. */
	"CREATE UNIQUE INDEX updates_identity ON updates(bot, update_id)\n"
	"    WHERE replaced_at IS NULL;\n"
	"CREATE INDEX updates_by_state ON updates(state, id);\n"
	"CREATE VIEW pending AS\n"
	"    SELECT id, bot, update_id, kind, chat_id, state, attempts,\n"
	"           datetime(received_at, 'unixepoch') AS received, last_error\n"
	"    FROM updates WHERE state IN ('new', 'leased') ORDER BY id;\n"
	"CREATE VIEW dead AS\n"
	"    SELECT id, bot, update_id, kind, chat_id, attempts,\n"
	"           datetime(received_at, 'unixepoch') AS received, last_error\n"
	"    FROM updates WHERE state = 'dead' ORDER BY id;\n"
	"CREATE VIEW stats AS\n"
	"    SELECT bot, state, count(*) AS count,\n"
	"           datetime(min(received_at), 'unixepoch') AS oldest\n"
	"    FROM updates WHERE replaced_at IS NULL GROUP BY bot, state;\n";

/* Version 2: what the handlers asked for, in the order it is sent (the outbox),
 * and the indexes that keep each chat's updates and calls in order. */
static const char schema_v2[] =
	"CREATE TABLE outbox (\n"
	"    id              INTEGER PRIMARY KEY,  -- the order calls are sent in\n"
	"    bot             TEXT    NOT NULL,\n"
	"    update_row      INTEGER,              -- updates.id of the update handled\n"
	"    update_id       INTEGER,\n"
	"    chat_id         ANY,                  -- the call's chat_id, NULL if none\n"
	"    method          TEXT    NOT NULL,     -- sendMessage, ...\n"
	"    params          TEXT    NOT NULL,     -- JSON object, as sent\n"
	"    state           TEXT    NOT NULL DEFAULT 'new'\n"
	"                    CHECK (state IN ('new', 'sending', 'sent', 'dead')),\n"
	"    attempts        INTEGER NOT NULL DEFAULT 0,  -- failed sends\n"
	"    created_at      INTEGER NOT NULL,     -- unix seconds\n"
	"    next_attempt_at INTEGER NOT NULL DEFAULT 0,  -- unix seconds\n"
	"    lease_until     INTEGER,              -- unix seconds, while sending\n"
	"    last_error      TEXT,\n"
	"    sent_at         INTEGER,              -- unix seconds\n"
	"    result          TEXT                  -- Telegram's result, JSON\n"
	") STRICT;\n"
	"CREATE INDEX outbox_by_state ON outbox(state, id);\n"
	"CREATE INDEX outbox_by_chat ON outbox(bot, chat_id, id)\n"
	"    WHERE state IN ('new', 'sending');\n"
	"CREATE INDEX outbox_by_update ON outbox(update_row);\n"
	"CREATE INDEX updates_by_chat ON updates(bot, chat_id, id)\n"
	"    WHERE state IN ('new', 'leased');\n"
	"CREATE VIEW unsent AS\n"
	"    SELECT id, bot, update_id, chat_id, method, state, attempts,\n"
	"           datetime(created_at, 'unixepoch') AS created, last_error\n"
	"    FROM outbox WHERE state IN ('new', 'sending') ORDER BY id;\n"
	"DROP VIEW dead;\n"
	"CREATE VIEW dead AS\n"
	"    SELECT 'update' AS what, id, bot, update_id, chat_id, kind AS detail,\n"
	"           attempts, datetime(received_at, 'unixepoch') AS at, last_error\n"
	"    FROM updates WHERE state = 'dead'\n"
	"    UNION ALL\n"
	"    SELECT 'call', id, bot, update_id, chat_id, method, attempts,\n"
	"           datetime(created_at, 'unixepoch'), last_error\n"
	"    FROM outbox WHERE state = 'dead';\n"
	"DROP VIEW stats;\n"
	"CREATE VIEW stats AS\n"
	"    SELECT 'updates' AS tbl, bot, state, count(*) AS count,\n"
	"           datetime(min(received_at), 'unixepoch') AS oldest\n"
	"    FROM updates WHERE replaced_at IS NULL GROUP BY bot, state\n"
	"    UNION ALL\n"
	"    SELECT 'outbox', bot, state, count(*), datetime(min(created_at), 'unixepoch')\n"
	"    FROM outbox GROUP BY bot, state;\n";

/* Version 3: where `tgq poll` is in each bot's getUpdates stream. */
static const char schema_v3[] =
	"CREATE TABLE poll_state (\n"
	"    bot             TEXT    PRIMARY KEY,\n"
	"    next_offset     INTEGER NOT NULL,     -- getUpdates offset to ask for next\n"
	"    updated_at      INTEGER NOT NULL      -- unix seconds\n"
	") STRICT;\n";

/* Version 4: a chat's waiting updates indexed in update_id order, so that "is
 * this the first of its chat?" is one index probe, not a walk of the chat's
 * backlog (the drain asks it for every row it considers). */
static const char schema_v4[] =
	"DROP INDEX updates_by_chat;\n"
	"CREATE INDEX updates_by_chat ON updates(bot, chat_id, update_id)\n"
	"    WHERE state IN ('new', 'leased');\n";

/*
 * Version 5: the head of each chat's line, kept by triggers.  The drain takes the
 * update (or call) each chat handles next straight from these tables, in arrival
 * order, so a claim reads about as many rows as it takes, however long one chat's
 * backlog is; before, it walked every waiting row and asked of each whether an
 * earlier one of its chat still waited.  Triggers keep them right whoever writes
 * (the webhook, the drain, tgq, or an operator in the sqlite3 shell); the first
 * of a chat is the lowest update_id for updates and the lowest id for calls, and
 * a row without a chat is a line of its own.  The two partial indexes by time
 * let retention find what is old enough without reading what is not.
 */
static const char schema_v5[] =
	"CREATE TABLE next_update (\n"
	"    update_row      INTEGER PRIMARY KEY,  -- updates.id: the chat's first waiting\n"
	"    bot             TEXT    NOT NULL,\n"
	"    chat_id         INTEGER               -- NULL: an update without a chat\n"
	") STRICT;\n"
	"CREATE UNIQUE INDEX next_update_by_chat ON next_update(bot, chat_id);\n"
	"INSERT INTO next_update (update_row, bot, chat_id)\n"
	"    SELECT id, bot, chat_id FROM updates\n"
	"    WHERE state IN ('new', 'leased') AND chat_id IS NULL;\n"
	"INSERT INTO next_update (update_row, bot, chat_id)\n"
	"    SELECT (SELECT v.id FROM updates v WHERE v.bot = c.bot\n"
	"              AND v.chat_id = c.chat_id AND v.state IN ('new', 'leased')\n"
	"            ORDER BY v.update_id, v.id LIMIT 1), c.bot, c.chat_id\n"
	"    FROM (SELECT DISTINCT bot, chat_id FROM updates\n"
	"          WHERE state IN ('new', 'leased') AND chat_id IS NOT NULL) c;\n"
	/* An update arriving after a later one of its chat goes first. */
	"CREATE TRIGGER next_update_insert AFTER INSERT ON updates\n"
	"    WHEN NEW.state IN ('new', 'leased')\n"
	"BEGIN\n"
	"    INSERT INTO next_update (update_row, bot, chat_id)\n"
	"        VALUES (NEW.id, NEW.bot, NEW.chat_id)\n"
	"        ON CONFLICT (bot, chat_id) DO UPDATE SET update_row = NEW.id\n"
	"        WHERE (SELECT update_id FROM updates\n"
	"               WHERE id = next_update.update_row) > NEW.update_id;\n"
	"END;\n"
	/* Done, dead, back from dead, or moved: the chats it left and joined get
	 * their first waiting update again (new <-> leased changes nothing). */
	"CREATE TRIGGER next_update_change AFTER UPDATE OF state, bot, chat_id,\n"
	"    update_id ON updates\n"
	"    WHEN (OLD.state IN ('new', 'leased')) <> (NEW.state IN ('new', 'leased'))\n"
	"      OR OLD.bot IS NOT NEW.bot OR OLD.chat_id IS NOT NEW.chat_id\n"
	"      OR OLD.update_id <> NEW.update_id\n"
	"BEGIN\n"
	"    DELETE FROM next_update WHERE update_row = OLD.id\n"
	"        OR (bot = OLD.bot AND chat_id = OLD.chat_id)\n"
	"        OR (bot = NEW.bot AND chat_id = NEW.chat_id);\n"
	"    INSERT INTO next_update (update_row, bot, chat_id)\n"
	"        SELECT id, bot, chat_id FROM updates\n"
	"        WHERE bot = OLD.bot AND chat_id = OLD.chat_id\n"
	"          AND state IN ('new', 'leased')\n"
	"        ORDER BY update_id, id LIMIT 1;\n"
	"    INSERT INTO next_update (update_row, bot, chat_id)\n"
	"        SELECT id, bot, chat_id FROM updates\n"
	"        WHERE bot = NEW.bot AND chat_id = NEW.chat_id\n"
	"          AND state IN ('new', 'leased')\n"
	"          AND (OLD.bot IS NOT NEW.bot OR OLD.chat_id IS NOT NEW.chat_id)\n"
	"        ORDER BY update_id, id LIMIT 1;\n"
	"    INSERT INTO next_update (update_row, bot, chat_id)\n"
	"        SELECT NEW.id, NEW.bot, NULL\n"
	"        WHERE NEW.chat_id IS NULL AND NEW.state IN ('new', 'leased');\n"
	"END;\n"
	"CREATE TRIGGER next_update_delete AFTER DELETE ON updates\n"
	"    WHEN OLD.state IN ('new', 'leased')\n"
	"BEGIN\n"
	"    DELETE FROM next_update WHERE update_row = OLD.id;\n"
	"    INSERT INTO next_update (update_row, bot, chat_id)\n"
	"        SELECT id, bot, chat_id FROM updates\n"
	"        WHERE bot = OLD.bot AND chat_id = OLD.chat_id\n"
	"          AND state IN ('new', 'leased')\n"
	"          AND NOT EXISTS (SELECT 1 FROM next_update\n"
	"              WHERE bot = OLD.bot AND chat_id = OLD.chat_id)\n"
	"        ORDER BY update_id, id LIMIT 1;\n"
	"END;\n"
	"CREATE TABLE next_call (\n"
	"    call_row        INTEGER PRIMARY KEY,  -- outbox.id: the chat's first waiting\n"
	"    bot             TEXT    NOT NULL,\n"
	"    chat_id         ANY                   -- NULL: a call without a chat\n"
	") STRICT;\n"
	"CREATE UNIQUE INDEX next_call_by_chat ON next_call(bot, chat_id);\n"
	"INSERT INTO next_call (call_row, bot, chat_id)\n"
	"    SELECT id, bot, chat_id FROM outbox\n"
	"    WHERE state IN ('new', 'sending') AND chat_id IS NULL;\n"
	"INSERT INTO next_call (call_row, bot, chat_id)\n"
	"    SELECT min(id), bot, chat_id FROM outbox\n"
	"    WHERE state IN ('new', 'sending') AND chat_id IS NOT NULL\n"
	"    GROUP BY bot, chat_id;\n"
	"CREATE TRIGGER next_call_insert AFTER INSERT ON outbox\n"
	"    WHEN NEW.state IN ('new', 'sending')\n"
	"BEGIN\n"
	"    INSERT INTO next_call (call_row, bot, chat_id)\n"
	"        VALUES (NEW.id, NEW.bot, NEW.chat_id)\n"
	"        ON CONFLICT (bot, chat_id) DO UPDATE SET call_row = NEW.id\n"
	"        WHERE call_row > NEW.id;\n"
	"END;\n"
	"CREATE TRIGGER next_call_change AFTER UPDATE OF state, bot, chat_id ON outbox\n"
	"    WHEN (OLD.state IN ('new', 'sending')) <> (NEW.state IN ('new', 'sending'))\n"
	"      OR OLD.bot IS NOT NEW.bot OR OLD.chat_id IS NOT NEW.chat_id\n"
	"BEGIN\n"
	"    DELETE FROM next_call WHERE call_row = OLD.id\n"
	"        OR (bot = OLD.bot AND chat_id = OLD.chat_id)\n"
	"        OR (bot = NEW.bot AND chat_id = NEW.chat_id);\n"
	"    INSERT INTO next_call (call_row, bot, chat_id)\n"
	"        SELECT id, bot, chat_id FROM outbox\n"
	"        WHERE bot = OLD.bot AND chat_id = OLD.chat_id\n"
	"          AND state IN ('new', 'sending')\n"
	"        ORDER BY id LIMIT 1;\n"
	"    INSERT INTO next_call (call_row, bot, chat_id)\n"
	"        SELECT id, bot, chat_id FROM outbox\n"
	"        WHERE bot = NEW.bot AND chat_id = NEW.chat_id\n"
	"          AND state IN ('new', 'sending')\n"
	"          AND (OLD.bot IS NOT NEW.bot OR OLD.chat_id IS NOT NEW.chat_id)\n"
	"        ORDER BY id LIMIT 1;\n"
	"    INSERT INTO next_call (call_row, bot, chat_id)\n"
	"        SELECT NEW.id, NEW.bot, NULL\n"
	"        WHERE NEW.chat_id IS NULL AND NEW.state IN ('new', 'sending');\n"
	"END;\n"
	"CREATE TRIGGER next_call_delete AFTER DELETE ON outbox\n"
	"    WHEN OLD.state IN ('new', 'sending')\n"
	"BEGIN\n"
	"    DELETE FROM next_call WHERE call_row = OLD.id;\n"
	"    INSERT INTO next_call (call_row, bot, chat_id)\n"
	"        SELECT id, bot, chat_id FROM outbox\n"
	"        WHERE bot = OLD.bot AND chat_id = OLD.chat_id\n"
	"          AND state IN ('new', 'sending')\n"
	"          AND NOT EXISTS (SELECT 1 FROM next_call\n"
	"              WHERE bot = OLD.bot AND chat_id = OLD.chat_id)\n"
	"        ORDER BY id LIMIT 1;\n"
	"END;\n"
	"CREATE INDEX updates_done_by_time ON updates(handled_at) WHERE state = 'done';\n"
	"CREATE INDEX outbox_sent_by_time ON outbox(sent_at) WHERE state = 'sent';\n";

/* Version 6: updates that ended without reaching their handler (a bot's
 * allowed_users): done, and why. */
static const char schema_v6[] =
	"CREATE VIEW skipped AS\n"
	"    SELECT id, bot, update_id, chat_id, kind,\n"
	"           datetime(handled_at, 'unixepoch') AS handled, last_error\n"
	"    FROM updates WHERE state = 'done' AND last_error IS NOT NULL;\n";

/* Version 7: what tgq set-webhook last registered with Telegram, per bot, so
 * that a later run can tell the secret changed: Telegram never tells it back.
 * The secret itself is never stored, only its fingerprint (secret.c). */
static const char schema_v7[] =
	"CREATE TABLE registrations (\n"
	"    bot                TEXT    PRIMARY KEY,\n"
	"    url                TEXT    NOT NULL,\n"
	"    secret_fingerprint TEXT    NOT NULL,  -- HMAC-SHA-256, keyed with the token\n"
	"    registered_at      INTEGER NOT NULL   -- unix seconds\n"
	") STRICT;\n";

/* Version 8: the bots whose http handler does not answer.  The drain writes a
 * row when it marks a bot down and deletes it when the bot answers again; the
 * webhook's /ready and /metrics and `tgq status`, other processes, read it. */
static const char schema_v8[] =
	"CREATE TABLE bot_down (\n"
	"    bot             TEXT    PRIMARY KEY,  -- [bot NAME] of tgq.conf\n"
	"    since           INTEGER NOT NULL,     -- unix seconds, marked down\n"
	"    probes          INTEGER NOT NULL DEFAULT 0,  -- tries since, none answered\n"
	"    next_probe_at   INTEGER,              -- unix seconds\n"
	"    last_error      TEXT                  -- why the last try failed\n"
	") STRICT;\n";

/* Index i holds the SQL that takes a version-i file to version i + 1. */
static const char *const migrations[QUEUE_SCHEMA_VERSION] = { schema_v1, schema_v2,
	schema_v3, schema_v4, schema_v5, schema_v6, schema_v7, schema_v8 };

/* The one place that decides what "another writer holds the queue" is. */
enum queue_status
queue_status_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return QUEUE_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return QUEUE_BUSY;
	default:
		return QUEUE_UNAVAILABLE;
	}
}

static int
fail_db(struct queue *q, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s", q->path, what, sqlite3_errmsg(q->db));
	return -1;
}

static int
pragma_int(struct queue *q, const char *sql, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return fail_db(q, sql, err, errlen);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, ONE_VALUE);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return fail_db(q, sql, err, errlen);
	return 0;
}

static int
exec_sql(struct queue *q, const char *sql, char *err, size_t errlen)
{
	if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return fail_db(q, "schema", err, errlen);
	return 0;
}

/*
 * Brings the file to QUEUE_SCHEMA_VERSION in a write transaction like any other
 * (queue_begin: the lock on <database>-lock, then BEGIN IMMEDIATE), so that two
 * programs opening a new file at once do not both create the schema, and no
 * migration writes while another process's writer holds the lock.
 */
static int
migrate(struct queue *q, char *err, size_t errlen)
{
	int64_t	 version, tables, appid;
	char	 sql[128];

	if (pragma_int(q, "PRAGMA user_version", &version, err, errlen) == -1)
		return -1;
	if (version == QUEUE_SCHEMA_VERSION)
		return 0;
	if (queue_begin(q, q->busy_timeout_ms, err, errlen) != QUEUE_OK)
		return -1;
	if (pragma_int(q, "PRAGMA user_version", &version, err, errlen) == -1 ||
	    pragma_int(q, "PRAGMA application_id", &appid, err, errlen) == -1 ||
	    pragma_int(q, "SELECT count(*) FROM sqlite_schema", &tables, err,
	    errlen) == -1)
		goto fail;
	if (version > QUEUE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: queue schema version %lld is newer than this "
		    "tgq understands (%d): upgrade tgq", q->path, (long long)version,
		    QUEUE_SCHEMA_VERSION);
		goto fail;
	}
	if ((version == 0 && tables > 0) ||
	    (version > 0 && appid != QUEUE_APPLICATION_ID)) {
		snprintf(err, errlen, "%s: not a tgq queue (a SQLite file of another "
		    "program?)", q->path);
		goto fail;
	}
	for (; version < QUEUE_SCHEMA_VERSION; version++) {
		if (exec_sql(q, migrations[version], err, errlen) == -1)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld",
		    (long long)version + 1);
		if (exec_sql(q, sql, err, errlen) == -1)
			goto fail;
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", QUEUE_APPLICATION_ID);
	if (exec_sql(q, sql, err, errlen) == -1)
		goto fail;
	if (queue_commit(q, err, errlen) != QUEUE_OK)
		return -1;
	log_info("%s: queue schema now at version %d", q->path, QUEUE_SCHEMA_VERSION);
	return 0;
fail:
	queue_rollback(q);
	return -1;
}

/* journal_mode answers with the mode in force, which is "wal" unless it failed
 * (on a read-only file, for one). */
static int
switch_to_wal(struct queue *q, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 ok;

	if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK)
		return fail_db(q, "journal_mode", err, errlen);
	ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, ONE_VALUE) != NULL &&
	    strcmp((const char *)sqlite3_column_text(st, ONE_VALUE), "wal") == 0;
	sqlite3_finalize(st);
	if (!ok) {
		snprintf(err, errlen, "%s: cannot switch to WAL mode: %s", q->path,
		    sqlite3_errmsg(q->db));
		return -1;
	}
	return 0;
}

static int
prepare(struct queue *q, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
	    NULL) != SQLITE_OK)
		return fail_db(q, "prepare", err, errlen);
	return 0;
}

static void
disconnect(struct queue *q)
{
	int i;

	for (i = 0; i < QUEUE_PURGE_N; i++) {
		sqlite3_finalize(q->purge[i]);
		q->purge[i] = NULL;
	}
	sqlite3_finalize(q->insert);
	sqlite3_finalize(q->retire);
	sqlite3_finalize(q->health);
	q->insert = q->retire = q->health = NULL;
	sqlite3_close(q->db);
	q->db = NULL;
}

#define QUEUE_SETUP_RETRY_MS 10

/* The connection's own checkpoint interval, when one was set. */
static int
set_checkpoint(struct queue *q, char *err, size_t errlen)
{
	char sql[64];

	if (q->checkpoint_pages <= 0)
		return 0;
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %d",
	    q->checkpoint_pages);
	return exec_sql(q, sql, err, errlen);
}

/*
 * WAL mode, the pragmas and the schema.  Two processes opening a new file at the
 * same moment both want the exclusive lock that switching to WAL takes, and
 * SQLite answers "locked" to one of them at once (its busy handler does not wait
 * there), so that step is tried again, for busy_timeout at most.
 */
static int
set_up(struct queue *q, char *err, size_t errlen)
{
	struct timespec	 pause = { 0, QUEUE_SETUP_RETRY_MS * 1000 * 1000 };
	char		 sql[64];
	int64_t		 waited_ms;
	int		 code;

	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s",
	    q->durability == DURABILITY_FULL ? "FULL" : "NORMAL");
	for (waited_ms = 0;; waited_ms += QUEUE_SETUP_RETRY_MS) {
		if (switch_to_wal(q, err, errlen) == 0 &&
		    exec_sql(q, sql, err, errlen) == 0 &&
		    set_checkpoint(q, err, errlen) == 0 &&
		    exec_sql(q, "PRAGMA foreign_keys = ON", err, errlen) == 0 &&
		    migrate(q, err, errlen) == 0)
			return 0;
		code = sqlite3_errcode(q->db);
		if (queue_status_of(code) != QUEUE_BUSY ||
		    waited_ms >= q->busy_timeout_ms)
			return -1;
		nanosleep(&pause, NULL);
	}
}

/* HEALTH_SQL's columns. */
enum { HEALTH_PENDING, HEALTH_DEAD, HEALTH_OLDEST, HEALTH_BOTS_DOWN };
#define HEALTH_SQL \
	"SELECT (SELECT count(*) FROM updates WHERE state IN ('new', 'leased')),"\
	" (SELECT count(*) FROM updates WHERE state = 'dead'),"\
	" (SELECT min(received_at) FROM updates WHERE state IN ('new', 'leased')),"\
	" (SELECT count(*) FROM bot_down)"

/*
 * "file:PATH?immutable=1", the path escaped as a URI: SQLite reads the file as
 * it is, without the -shm a reader of a WAL database otherwise needs.
 */
static int
immutable_uri(const char *path, char *uri, size_t urilen)
{
	size_t	 n = 0;
	int	 w;

	if ((w = snprintf(uri, urilen, "file:")) < 0 || (size_t)w >= urilen)
		return -1;
	n = (size_t)w;
	for (; *path != '\0'; path++) {
		const char *out = NULL;

		if (*path == '%')
			out = "%25";
		else if (*path == '?')
			out = "%3f";
		else if (*path == '#')
			out = "%23";
		w = out ? snprintf(uri + n, urilen - n, "%s", out) :
		    snprintf(uri + n, urilen - n, "%c", *path);
		if (w < 0 || (size_t)w >= urilen - n)
			return -1;
		n += (size_t)w;
	}
	w = snprintf(uri + n, urilen - n, "?immutable=1");
	return w < 0 || (size_t)w >= urilen - n ? -1 : 0;
}

/*
 * A reader that may not write the queue's folder (an operator in the queue's
 * group): with the -shm there (a process has the queue open), SQLite reads it
 * without writing; without it, and with no -wal either, the main file holds the
 * whole queue and is read as immutable.  Refuses a schema it does not know
 * rather than migrating it.
 */
static int
connect_read_only(struct queue *q, char *err, size_t errlen)
{
	char	 wal[4096], uri[8192];
	int64_t	 version = -1;
	int	 rc;

	rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(q->db, (int)q->busy_timeout_ms);
		rc = pragma_int(q, "PRAGMA user_version", &version, err, errlen);
	}
	if (rc != SQLITE_OK && q->db != NULL &&
	    (sqlite3_errcode(q->db) & 0xff) == SQLITE_READONLY &&
	    snprintf(wal, sizeof(wal), "%s-wal", q->path) < (int)sizeof(wal) &&
	    access(wal, F_OK) == -1 && errno == ENOENT &&
	    immutable_uri(q->path, uri, sizeof(uri)) == 0) {
		sqlite3_close(q->db);
		rc = sqlite3_open_v2(uri, &q->db, SQLITE_OPEN_READONLY |
		    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
		if (rc == SQLITE_OK)
			rc = pragma_int(q, "PRAGMA user_version", &version, err,
			    errlen);
	}
	if (q->db == NULL) {
		snprintf(err, errlen, "%s: out of memory", q->path);
		return -1;
	}
	if (rc != SQLITE_OK)
		return fail_db(q, "open to read", err, errlen);
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if (version != QUEUE_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld, this tgq reads %d: %s",
		    q->path, (long long)version, QUEUE_SCHEMA_VERSION,
		    version < QUEUE_SCHEMA_VERSION ? "run tgq-webhook --check as the "
		    "queue's owner to migrate it" : "the queue is newer than this tgq");
		return -1;
	}
	return 0;
}

static int
connect_db(struct queue *q, char *err, size_t errlen)
{
	int rc;

	if (q->read_only) {
		if (connect_read_only(q, err, errlen) == -1 ||
		    prepare(q, HEALTH_SQL, &q->health, err, errlen) == -1)
			goto fail;
		q->needs_reconnect = 0;
		return 0;
	}

	/* NOMUTEX: a struct queue is used by one thread at a time (the webhook's
	 * batches take turns on a mutex, the drain has one loop), so SQLite need not
	 * lock around every call. */
	rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (q->db == NULL) {
			snprintf(err, errlen, "%s: out of memory", q->path);
			return -1;
		}
		fail_db(q, "open", err, errlen);
		goto fail;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_busy_timeout(q->db, (int)q->busy_timeout_ms);
	if (set_up(q, err, errlen) == -1)
		goto fail;
	if (prepare(q, "INSERT INTO updates (bot, update_id, received_at, kind, "
	    "chat_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
	    &q->insert, err, errlen) == -1 ||
	    prepare(q, "UPDATE updates SET replaced_at = ?3 WHERE bot = ?1 AND "
	    "update_id = ?2 AND replaced_at IS NULL AND received_at < ?4",
	    &q->retire, err, errlen) == -1 ||
	    prepare(q, HEALTH_SQL, &q->health, err, errlen) == -1)
		goto fail;
	q->needs_reconnect = 0;
	return 0;
fail:
	disconnect(q);
	return -1;
}

/* Opened before the first connection, whose migration is a write; 0, or the
 * errno that open_queue reports once the queue itself opened. */
static int
open_lock(struct queue *q)
{
	struct stat	 db, st;
	char		 path[4096];
	int		 n;

	n = snprintf(path, sizeof(path), "%s-lock", q->path);
	if (n < 0 || (size_t)n >= sizeof(path))
		return ENAMETOOLONG;
	q->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (q->lockfd == -1)
		return errno;
	/* Root (tgq set-webhook, tgq retry run by hand) gives a lock file it
	 * created to the queue's owner, as SQLite does with the -wal and -shm:
	 * the service could not open a root's 0600 file. */
	if (geteuid() == 0 && stat(q->path, &db) == 0 && fstat(q->lockfd, &st) == 0 &&
	    (st.st_uid != db.st_uid || st.st_gid != db.st_gid) &&
	    fchown(q->lockfd, db.st_uid, db.st_gid) == -1)
		log_warnx("%s: cannot give it to the queue's owner: %s", path,
		    strerror(errno));
	return 0;
}

static int
open_queue(const char *path, enum durability durability, int64_t busy_timeout_ms,
    int read_only, struct queue **out, char *err, size_t errlen)
{
	struct queue	*q;
	int		 lock_errno;

	if ((q = calloc(1, sizeof(*q))) == NULL || (q->path = strdup(path)) == NULL) {
		free(q);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	q->durability = durability;
	q->busy_timeout_ms = busy_timeout_ms;
	q->lockfd = -1;
	q->read_only = read_only;
	lock_errno = read_only ? 0 : open_lock(q);
	if (connect_db(q, err, errlen) == -1) {
		if (q->lockfd != -1)
			close(q->lockfd);
		free(q->path);
		free(q);
		return -1;
	}
	if (lock_errno != 0)
		log_warnx("%s-lock: %s; writers from several processes will wait in "
		    "SQLite's busy handler instead", path, strerror(lock_errno));
	*out = q;
	return 0;
}

int
queue_open(const char *path, enum durability durability, int64_t busy_timeout_ms,
    struct queue **out, char *err, size_t errlen)
{
	return open_queue(path, durability, busy_timeout_ms, 0, out, err, errlen);
}

int
queue_open_read(const char *path, int64_t busy_timeout_ms, struct queue **out,
    char *err, size_t errlen)
{
	return open_queue(path, DURABILITY_FULL, busy_timeout_ms, 1, out, err,
	    errlen);
}

int
queue_set_checkpoint(struct queue *q, int pages, char *err, size_t errlen)
{
	q->checkpoint_pages = pages;
	if (q->db == NULL)
		return 0;	/* set_up() applies it when it reconnects */
	return set_checkpoint(q, err, errlen);
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	disconnect(q);
	if (q->lockfd != -1)
		close(q->lockfd);
	free(q->path);
	free(q);
}

/* After an error that is not a lock, the file may have been replaced, remounted or
 * repaired: a fresh connection sees it as it is now. */
static enum queue_status
ensure_connected(struct queue *q, char *err, size_t errlen)
{
	if (q->db != NULL && !q->needs_reconnect)
		return QUEUE_OK;
	disconnect(q);
	if (connect_db(q, err, errlen) == -1) {
		q->needs_reconnect = 1;
		return QUEUE_UNAVAILABLE;
	}
	return QUEUE_OK;
}

static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int
insert_item(struct queue *q, struct queue_item *it)
{
	sqlite3_stmt *st = q->insert;

	sqlite3_bind_text(st, 1, it->bot, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, it->update_id);
	sqlite3_bind_int64(st, 3, it->received_at);
	if (it->kind != NULL && *it->kind != '\0')
		sqlite3_bind_text(st, 4, it->kind, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	if (it->has_chat_id)
		sqlite3_bind_int64(st, 5, it->chat_id);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_text(st, 6, it->body, (int)it->body_len, SQLITE_STATIC);
	return step_done(st);
}

/* Sets aside a row with the same update_id older than the dedupe window. */
static int
retire_stale(struct queue *q, const struct queue_item *it)
{
	sqlite3_stmt *st = q->retire;

	sqlite3_bind_text(st, 1, it->bot, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, it->update_id);
	sqlite3_bind_int64(st, 3, it->received_at);
	sqlite3_bind_int64(st, 4, it->received_at - QUEUE_DEDUPE_WINDOW_S);
	return step_done(st);
}

static int
put_item(struct queue *q, struct queue_item *it)
{
	int rc;

	it->duplicate = 0;
	if ((rc = insert_item(q, it)) != SQLITE_OK || sqlite3_changes(q->db) == 1)
		return rc;
	if ((rc = retire_stale(q, it)) != SQLITE_OK)
		return rc;
	if (sqlite3_changes(q->db) == 0) {
		it->duplicate = 1;
		return SQLITE_OK;
	}
	if ((rc = insert_item(q, it)) == SQLITE_OK && sqlite3_changes(q->db) != 1)
		rc = SQLITE_CONSTRAINT;
	return rc;
}

sqlite3 *
queue_db(struct queue *q)
{
	return q->db;
}

/* Blocks until no other tgq process is in a write transaction on this queue. */
void
queue_lock(struct queue *q)
{
	if (q->lockfd == -1)
		return;
	while (flock(q->lockfd, LOCK_EX) == -1 && errno == EINTR)
		continue;
}

/*
 * For the drain, whose one thread also drives the network: waits max_wait_ms
 * rather than as long as another writer takes.  The wait is counted as the
 * pauses asked for (a loaded machine stretches each), so that a writer that
 * was descheduled is not given up on sooner than that.  The pauses are short
 * (25 us, doubling to 200 us): a writer usually lets go within a fraction of a
 * millisecond (tgq-webhook's commit is visible to a woken drain just before its
 * lock is released), and a millisecond's sleep would add that much to the
 * drain's claim of the rows just committed.
 */
int
queue_trylock(struct queue *q, int64_t max_wait_ms)
{
	struct timespec	 step;
	int64_t		 pause_us = 25, waited_us = 0;

	if (q->lockfd == -1)
		return 0;
	while (flock(q->lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return 0;	/* no usable lock: SQLite's own still guards */
		if (waited_us >= max_wait_ms * 1000)
			return -1;
		step.tv_sec = 0;
		step.tv_nsec = (long)pause_us * 1000;
		nanosleep(&step, NULL);
		waited_us += pause_us;
		if (pause_us < 200)
			pause_us *= 2;
	}
	return 0;
}

void
queue_unlock(struct queue *q)
{
	if (q->lockfd != -1)
		flock(q->lockfd, LOCK_UN);
}

/*
 * The one write transaction: the cross-process lock, then BEGIN IMMEDIATE.  SQLite's
 * busy handler also waits, but the kernel lock queues writers in order instead of
 * waking them to poll.  Nested calls only count, and a rollback inside dooms the
 * outermost transaction, so that what a caller groups is kept whole or not at all.
 */
enum queue_status
queue_begin(struct queue *q, int64_t max_wait_ms, char *err, size_t errlen)
{
	int rc;

	if (q->depth > 0) {
		q->depth++;
		return QUEUE_OK;
	}
	if (max_wait_ms < 0)
		queue_lock(q);
	else if (queue_trylock(q, max_wait_ms) == -1) {
		snprintf(err, errlen, "%s: another writer holds the queue", q->path);
		return QUEUE_BUSY;
	}
	if ((rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: BEGIN: %s", q->path, sqlite3_errmsg(q->db));
		queue_unlock(q);
		return queue_status_of(rc);
	}
	q->depth = 1;
	q->doomed = 0;
	return QUEUE_OK;
}

void
queue_rollback(struct queue *q)
{
	if (q->depth > 1) {
		q->depth--;
		q->doomed = 1;
		return;
	}
	q->depth = 0;
	if (!sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	queue_unlock(q);
}

enum queue_status
queue_commit(struct queue *q, char *err, size_t errlen)
{
	int rc;

	if (q->depth > 1) {
		q->depth--;
		return QUEUE_OK;
	}
	if (q->doomed) {
		snprintf(err, errlen, "%s: rolled back: a part of the transaction "
		    "failed", q->path);
		queue_rollback(q);
		return QUEUE_UNAVAILABLE;
	}
	if ((rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL)) == SQLITE_OK) {
		q->depth = 0;
		queue_unlock(q);
		return QUEUE_OK;
	}
	snprintf(err, errlen, "%s: COMMIT: %s", q->path, sqlite3_errmsg(q->db));
	queue_rollback(q);
	return queue_status_of(rc);
}

/*
 * What may be deleted, written once for the drain's retention and `tgq purge`.
 * ?1: older than this (unix s); ?2: the bot, NULL for all; ?3: rows at most.
 * The partial indexes by time read only what is old enough.
 */
static const char *const purge_sql[QUEUE_PURGE_N] = {
	/* QUEUE_PURGE_SENT_CALLS */
	"DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
	" INDEXED BY outbox_sent_by_time WHERE state = 'sent' AND sent_at < ?1"
	" AND (?2 IS NULL OR bot = ?2) LIMIT ?3)",
	/* QUEUE_PURGE_DONE_UPDATES: done, and none of its calls still waiting
	 * to be sent, so that `tgq show` keeps what is in flight. */
	"DELETE FROM updates WHERE id IN (SELECT u.id FROM updates u"
	" INDEXED BY updates_done_by_time"
	" WHERE u.state = 'done' AND u.handled_at < ?1"
	"   AND (?2 IS NULL OR u.bot = ?2) AND NOT EXISTS (SELECT 1 FROM outbox o"
	"     WHERE o.update_row = u.id AND o.state IN ('new', 'sending'))"
	" LIMIT ?3)",
	/* QUEUE_PURGE_DEAD_CALLS */
	"DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
	" WHERE state = 'dead' AND created_at < ?1 AND (?2 IS NULL OR bot = ?2)"
	" LIMIT ?3)",
	/* QUEUE_PURGE_DEAD_UPDATES */
	"DELETE FROM updates WHERE id IN (SELECT id FROM updates"
	" WHERE state = 'dead' AND received_at < ?1 AND (?2 IS NULL OR bot = ?2)"
	" LIMIT ?3)",
};

/* One batch, inside the caller's transaction. */
static enum queue_status
purge_batch(struct queue *q, const struct queue_purge *p, int64_t *deleted,
    char *err, size_t errlen)
{
	sqlite3_stmt	**st = &q->purge[p->what];
	int		  rc;

	if (*st == NULL && sqlite3_prepare_v3(q->db, purge_sql[p->what], -1,
	    SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: purge: %s", q->path, sqlite3_errmsg(q->db));
		return QUEUE_UNAVAILABLE;
	}
	sqlite3_bind_int64(*st, 1, p->before);
	if (p->bot != NULL)
		sqlite3_bind_text(*st, 2, p->bot, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(*st, 2);
	sqlite3_bind_int64(*st, 3, p->batch);
	rc = sqlite3_step(*st);
	sqlite3_reset(*st);
	sqlite3_clear_bindings(*st);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s: purge: %s", q->path, sqlite3_errstr(rc));
		return queue_status_of(rc);
	}
	*deleted = sqlite3_changes(q->db);
	return QUEUE_OK;
}

enum queue_status
queue_purge(struct queue *q, const struct queue_purge *p, int64_t *deleted,
    char *err, size_t errlen)
{
	enum queue_status	 status;
	int64_t			 n = 0;
	int			 batches;

	*deleted = 0;
	for (batches = 0; p->max_batches == 0 || batches < p->max_batches;
	    batches++) {
		if ((status = queue_begin(q, p->max_wait_ms, err, errlen)) != QUEUE_OK)
			return status;
		if ((status = purge_batch(q, p, &n, err, errlen)) != QUEUE_OK) {
			queue_rollback(q);
			return status;
		}
		if ((status = queue_commit(q, err, errlen)) != QUEUE_OK)
			return status;
		*deleted += n;
		if (n < p->batch)
			break;
	}
	return QUEUE_OK;
}

static int
save_offset(struct queue *q, const char *bot, int64_t next_offset)
{
	sqlite3_stmt	*st;
	int		 rc;

	rc = sqlite3_prepare_v2(q->db, "INSERT INTO poll_state (bot, next_offset, "
	    "updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (bot) DO UPDATE SET "
	    "next_offset = excluded.next_offset, updated_at = excluded.updated_at",
	    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, next_offset);
	sqlite3_bind_int64(st, 3, now_unix());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum queue_status put_batch(struct queue *, struct queue_item *, size_t,
    const char *, int64_t, char *, size_t);

enum queue_status
queue_put_batch(struct queue *q, struct queue_item *items, size_t n, char *err,
    size_t errlen)
{
	return put_batch(q, items, n, NULL, 0, err, errlen);
}

enum queue_status
queue_put_polled(struct queue *q, struct queue_item *items, size_t n,
    const char *bot, int64_t next_offset, char *err, size_t errlen)
{
	return put_batch(q, items, n, bot, next_offset, err, errlen);
}

int
queue_poll_offset(struct queue *q, const char *bot, int64_t *offset, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	*offset = 0;
	if (ensure_connected(q, err, errlen) != QUEUE_OK)
		return -1;
	if (sqlite3_prepare_v2(q->db, "SELECT next_offset FROM poll_state WHERE "
	    "bot = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail_db(q, "poll_state", err, errlen);
	sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*offset = sqlite3_column_int64(st, ONE_VALUE);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail_db(q, "poll_state", err, errlen);
	return 0;
}

int
queue_registration(struct queue *q, const char *bot,
    char fingerprint[SECRET_FINGERPRINT_LEN + 1], int64_t *registered_at,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	const char	*fp;
	int		 rc, found = 0;

	if (ensure_connected(q, err, errlen) != QUEUE_OK)
		return -1;
	if (sqlite3_prepare_v2(q->db, "SELECT secret_fingerprint, registered_at "
	    "FROM registrations WHERE bot = ?1", -1, &st, NULL) != SQLITE_OK)
		return fail_db(q, "registrations", err, errlen);
	sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	    (fp = (const char *)sqlite3_column_text(st, 0)) != NULL &&
	    strlen(fp) == SECRET_FINGERPRINT_LEN) {
		memcpy(fingerprint, fp, SECRET_FINGERPRINT_LEN + 1);
		*registered_at = sqlite3_column_int64(st, 1);
		found = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail_db(q, "registrations", err, errlen);
	return found;
}

enum queue_status
queue_record_registration(struct queue *q, const char *bot, const char *url,
    const char *fingerprint, char *err, size_t errlen)
{
	enum queue_status	 status;
	sqlite3_stmt		*st;
	int			 rc;

	if ((status = ensure_connected(q, err, errlen)) != QUEUE_OK ||
	    (status = queue_begin(q, q->busy_timeout_ms, err, errlen)) != QUEUE_OK)
		return status;
	rc = sqlite3_prepare_v2(q->db, "INSERT INTO registrations (bot, url, "
	    "secret_fingerprint, registered_at) VALUES (?1, ?2, ?3, ?4) "
	    "ON CONFLICT (bot) DO UPDATE SET url = excluded.url, "
	    "secret_fingerprint = excluded.secret_fingerprint, "
	    "registered_at = excluded.registered_at", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, url, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now_unix());
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE) {
		status = queue_status_of(rc);
		fail_db(q, "registrations", err, errlen);
		queue_rollback(q);
		return status == QUEUE_OK ? QUEUE_UNAVAILABLE : status;
	}
	return queue_commit(q, err, errlen);
}

/*
 * Tells a tgq-drain --follow that new updates are committed: it watches the
 * queue's folder, but SQLite's writes there (to the WAL) all come before the
 * commit is visible to other connections (the WAL index is shared memory, whose
 * changes inotify does not see), so a drain woken by them finds nothing new
 * and would wait for the next write or its one-second tick.  A byte written to
 * <database>-lock once the transaction is over (and its lock released, so that
 * the drain's claim does not wait for it) is an event after the commit.  Not
 * being able to write it only delays the drain to that tick.
 */
static void
announce_commit(struct queue *q)
{
	if (q->lockfd != -1 && q->depth == 0)
		(void)!pwrite(q->lockfd, "", 1, 0);
}

/* The updates, and where getUpdates goes on (when poll_bot is set), in one
 * transaction: a crash between the two would lose or repeat updates. */
static enum queue_status
put_batch(struct queue *q, struct queue_item *items, size_t n, const char *poll_bot,
    int64_t next_offset, char *err, size_t errlen)
{
	enum queue_status	 status;
	const char		*what = "INSERT";
	size_t			 i;
	int			 rc = SQLITE_OK;

	if ((status = ensure_connected(q, err, errlen)) != QUEUE_OK)
		return status;
	if ((status = queue_begin(q, QUEUE_WAIT_FOREVER, err, errlen)) == QUEUE_OK) {
		for (i = 0; rc == SQLITE_OK && i < n; i++)
			rc = put_item(q, &items[i]);
		if (rc == SQLITE_OK && poll_bot != NULL) {
			what = "poll_state";
			rc = save_offset(q, poll_bot, next_offset);
		}
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s: %s", q->path, what,
			    sqlite3_errstr(rc));
			queue_rollback(q);
			status = queue_status_of(rc);
		} else if ((status = queue_commit(q, err, errlen)) == QUEUE_OK)
			announce_commit(q);
	}
	if (status == QUEUE_UNAVAILABLE)
		q->needs_reconnect = 1;
	return status;
}

void
queue_limit_memory(int64_t bytes)
{
	/* No bulk allocation per page cache.  Every UPDATE of a row checks its
	 * state against the CHECK list, which SQLite does with a temporary b-tree,
	 * and each one of those allocated room for 20 pages at once (about 90 KiB)
	 * and freed it again: a fifth of the drain's time went to growing and
	 * trimming the heap.  Only takes effect before SQLite is initialized, which
	 * the soft limit below does. */
	(void)sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	(void)sqlite3_soft_heap_limit64(bytes);
}

enum queue_status
queue_health(struct queue *q, struct queue_health *h, char *err, size_t errlen)
{
	enum queue_status	 status;
	sqlite3_stmt		*st;
	int			 rc;

	if ((status = ensure_connected(q, err, errlen)) != QUEUE_OK)
		return status;
	st = q->health;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		h->pending = sqlite3_column_int64(st, HEALTH_PENDING);
		h->dead = sqlite3_column_int64(st, HEALTH_DEAD);
		h->bots_down = sqlite3_column_int64(st, HEALTH_BOTS_DOWN);
		h->oldest_pending_age_s = sqlite3_column_type(st, HEALTH_OLDEST) ==
		    SQLITE_NULL ? 0 : now_unix() - sqlite3_column_int64(st,
		    HEALTH_OLDEST);
		if (h->oldest_pending_age_s < 0)
			h->oldest_pending_age_s = 0;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return QUEUE_OK;
	snprintf(err, errlen, "%s: health: %s", q->path, sqlite3_errstr(rc));
	status = queue_status_of(rc);
	if (status == QUEUE_UNAVAILABLE)
		q->needs_reconnect = 1;
	return status;
}

enum queue_status
queue_writable(struct queue *q, int64_t max_wait_ms, int64_t min_free, char *err,
    size_t errlen)
{
	enum queue_status	 status;
	struct statvfs		 fs;
	int64_t			 avail;

	if ((status = ensure_connected(q, err, errlen)) != QUEUE_OK)
		return status;
	/* SQLite opens a file it may not write read-only, without an error. */
	if (sqlite3_db_readonly(q->db, "main") == 1) {
		snprintf(err, errlen, "%s: read-only", q->path);
		q->needs_reconnect = 1;
		return QUEUE_UNAVAILABLE;
	}
	if ((status = queue_begin(q, max_wait_ms, err, errlen)) != QUEUE_OK) {
		if (status == QUEUE_UNAVAILABLE)
			q->needs_reconnect = 1;
		return status;
	}
	queue_rollback(q);
	/* f_bavail: what an unprivileged writer may use (root may use a little more,
	 * so root is told "full" slightly early). */
	if (statvfs(q->path, &fs) == 0) {
		avail = (int64_t)fs.f_bavail * (int64_t)fs.f_frsize;
		if (avail < min_free) {
			snprintf(err, errlen, "%s: %lld bytes free, less than %lld",
			    q->path, (long long)avail, (long long)min_free);
			return QUEUE_UNAVAILABLE;
		}
	}
	return QUEUE_OK;
}
