/* Unit tests for lib/queue.c and cgi/store.c against real SQLite files. */
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "webhook.h"

static char dir[] = "/tmp/tgq-queue-XXXXXX";

static const char *
db_path(const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static int64_t
query_int(const char *path, const char *sql)
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	int64_t		 v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static int
exec_on(const char *path, const char *sql)
{
	sqlite3	*db;
	int	 rc;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static struct queue_item
item(int64_t update_id, const char *body, int64_t received_at)
{
	struct queue_item it;

	memset(&it, 0, sizeof(it));
	it.bot = "default";
	it.update_id = update_id;
	it.body = body;
	it.body_len = strlen(body);
	it.kind = "message";
	it.has_chat_id = 1;
	it.chat_id = -100;
	it.received_at = received_at;
	return it;
}

static void
test_schema(void)
{
	struct queue	*q = NULL;
	char		 err[512];
	const char	*path = db_path("schema.db");

	CHECK("queue_open_creates", queue_open(path, DURABILITY_FULL, 1000, &q, err,
	    sizeof(err)) == 0);
	CHECK("queue_schema_version", query_int(path, "PRAGMA user_version") ==
	    QUEUE_SCHEMA_VERSION);
	CHECK("queue_wal_mode", query_int(path,
	    "SELECT journal_mode = 'wal' FROM pragma_journal_mode") == 1);
	CHECK("queue_views_exist", query_int(path, "SELECT count(*) FROM sqlite_schema"
	    " WHERE type = 'view' AND name IN ('pending', 'dead', 'stats', 'unsent')") ==
	    4);
	queue_close(q);
	q = NULL;
	CHECK("queue_reopen_keeps_schema", queue_open(path, DURABILITY_NORMAL, 1000, &q,
	    err, sizeof(err)) == 0);
	queue_close(q);
	q = NULL;

	/* A file of the first release is migrated in place, rows and all. */
	{
		char	*sql = NULL;
		size_t	 len;

		if (read_small_file("tests/fixtures/queue-v1.sql", 65536, &sql, &len, err,
		    sizeof(err)) == 0)
			exec_on(db_path("v1.db"), sql);
		free(sql);
		CHECK("queue_migrates_v1", queue_open(db_path("v1.db"), DURABILITY_FULL,
		    1000, &q, err, sizeof(err)) == 0);
		queue_close(q);
		q = NULL;
		CHECK("queue_migrated_v1_version", query_int(db_path("v1.db"),
		    "PRAGMA user_version") == QUEUE_SCHEMA_VERSION);
		CHECK("queue_migrated_v1_rows_kept", query_int(db_path("v1.db"),
		    "SELECT count(*) FROM updates WHERE update_id IN (100, 101)") == 2);
		CHECK("queue_migrated_v1_outbox", query_int(db_path("v1.db"),
		    "SELECT count(*) FROM outbox") == 0);
		CHECK("queue_migrated_v1_views", query_int(db_path("v1.db"),
		    "SELECT count(*) FROM dead") == 0 && query_int(db_path("v1.db"),
		    "SELECT sum(count) FROM stats") == 2);
	}

	exec_on(path, "PRAGMA user_version = 99");
	CHECK("queue_refuses_newer_schema", queue_open(path, DURABILITY_FULL, 1000, &q,
	    err, sizeof(err)) == -1 && strstr(err, "version 99 is newer") != NULL);
	exec_on(db_path("other.db"), "CREATE TABLE accounts (id INTEGER)");
	CHECK("queue_refuses_foreign_file", queue_open(db_path("other.db"),
	    DURABILITY_FULL, 1000, &q, err, sizeof(err)) == -1 &&
	    strstr(err, "not a tgq queue") != NULL);
	CHECK("queue_refuses_missing_dir", queue_open("/nonexistent/dir/q.db",
	    DURABILITY_FULL, 1000, &q, err, sizeof(err)) == -1 &&
	    strstr(err, "/nonexistent/dir/q.db") != NULL);
	{
		FILE *fp = fopen(db_path("garbage.db"), "w");

		fputs("this is not a database, but long enough to look like one......"
		    "................................................................",
		    fp);
		fclose(fp);
	}
	CHECK("queue_refuses_garbage", queue_open(db_path("garbage.db"),
	    DURABILITY_FULL, 1000, &q, err, sizeof(err)) == -1);
}

static void
test_put(void)
{
	struct queue		*q = NULL;
	struct queue_item	 batch[3];
	struct queue_health	 h;
	char			 err[512];
	const char		*path = db_path("put.db");
	int64_t			 now = now_unix();

	if (queue_open(path, DURABILITY_FULL, 1000, &q, err, sizeof(err)) == -1) {
		CHECK("queue_put_open", 0);
		return;
	}
	batch[0] = item(1, "{\"update_id\":1}", now);
	batch[1] = item(2, "{\"update_id\":2}", now);
	batch[2] = item(1, "{\"update_id\":1,\"again\":true}", now);
	CHECK("queue_put_batch_ok", queue_put_batch(q, batch, 3, err, sizeof(err)) ==
	    QUEUE_OK);
	CHECK("queue_put_flags_duplicate_in_batch", !batch[0].duplicate &&
	    !batch[1].duplicate && batch[2].duplicate);
	CHECK("queue_put_rows", query_int(path, "SELECT count(*) FROM updates") == 2);
	CHECK("queue_put_first_body_kept", query_int(path, "SELECT count(*) FROM "
	    "updates WHERE update_id = 1 AND body = '{\"update_id\":1}'") == 1);
	CHECK("queue_put_columns", query_int(path, "SELECT count(*) FROM updates WHERE "
	    "kind = 'message' AND chat_id = -100 AND state = 'new' AND bot = "
	    "'default'") == 2);

	/* Within the dedupe window a redelivery is a duplicate... */
	batch[0] = item(2, "{\"update_id\":2,\"later\":1}", now + 3600);
	CHECK("queue_put_duplicate_within_window", queue_put_batch(q, batch, 1, err,
	    sizeof(err)) == QUEUE_OK && batch[0].duplicate);
	/* ...after it, the same id is a new update and the old row is set aside. */
	batch[0] = item(2, "{\"update_id\":2,\"new\":1}", now + QUEUE_DEDUPE_WINDOW_S + 1);
	CHECK("queue_put_after_window_stored", queue_put_batch(q, batch, 1, err,
	    sizeof(err)) == QUEUE_OK && !batch[0].duplicate);
	CHECK("queue_put_after_window_rows", query_int(path, "SELECT count(*) FROM "
	    "updates WHERE update_id = 2") == 2 && query_int(path, "SELECT count(*) "
	    "FROM updates WHERE update_id = 2 AND replaced_at IS NULL AND body LIKE "
	    "'%new%'") == 1);
	/* Another bot has its own update_id space. */
	batch[0] = item(1, "{\"update_id\":1}", now);
	batch[0].bot = "other";
	CHECK("queue_put_other_bot", queue_put_batch(q, batch, 1, err, sizeof(err)) ==
	    QUEUE_OK && !batch[0].duplicate);

	CHECK("queue_health_ok", queue_health(q, &h, err, sizeof(err)) == QUEUE_OK &&
	    h.pending == 4 && h.dead == 0);
	exec_on(path, "UPDATE updates SET state = 'dead' WHERE update_id = 1 AND "
	    "bot = 'other'");
	CHECK("queue_health_dead", queue_health(q, &h, err, sizeof(err)) == QUEUE_OK &&
	    h.pending == 3 && h.dead == 1);

	/* A write lock held past busy_timeout is QUEUE_BUSY, and nothing is stored. */
	{
		sqlite3 *holder;

		queue_close(q);
		q = NULL;
		queue_open(path, DURABILITY_FULL, 100, &q, err, sizeof(err));
		sqlite3_open(path, &holder);
		sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		batch[0] = item(77, "{\"update_id\":77}", now);
		CHECK("queue_put_busy", queue_put_batch(q, batch, 1, err, sizeof(err)) ==
		    QUEUE_BUSY && strstr(err, "locked") != NULL);
		sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(holder);
		CHECK("queue_put_after_busy", queue_put_batch(q, batch, 1, err,
		    sizeof(err)) == QUEUE_OK && query_int(path, "SELECT count(*) FROM "
		    "updates WHERE update_id = 77") == 1);
	}
	queue_close(q);
}

struct putter {
	struct store	*store;
	int		 first;
	int		 ok;
	int		 duplicates;
	unsigned char	 fresh[200];	/* answered "not a duplicate", per id */
};

/* Each thread stores ids first..first+199; neighbours overlap by half. */
static void *
putter_main(void *arg)
{
	struct putter	*p = arg;
	char		 body[64];
	int		 i;

	for (i = p->first; i < p->first + 200; i++) {
		struct queue_item it;

		snprintf(body, sizeof(body), "{\"update_id\":%d}", i);
		it = item(i, body, now_unix());
		if (store_put(p->store, &it) == QUEUE_OK) {
			p->ok++;
			p->duplicates += it.duplicate;
			p->fresh[i - p->first] = !it.duplicate;
		}
	}
	return NULL;
}

static void
test_store_threads(void)
{
	struct config	 cfg;
	struct store	*s = NULL;
	struct putter	 putters[16];
	pthread_t	 threads[16];
	char		 err[256];
	int		 i, j, ok = 0, dups = 0, fresh[1700], not_once = 0;

	memset(fresh, 0, sizeof(fresh));
	memset(&cfg, 0, sizeof(cfg));
	cfg.database = (char *)db_path("store.db");
	cfg.durability = DURABILITY_FULL;
	cfg.busy_timeout_ms = 5000;
	if (store_start(&cfg, &s, err, sizeof(err)) == -1) {
		CHECK("store_start", 0);
		return;
	}
	for (i = 0; i < 16; i++) {
		putters[i] = (struct putter){ s, i * 100, 0, 0, { 0 } };
		pthread_create(&threads[i], NULL, putter_main, &putters[i]);
	}
	for (i = 0; i < 16; i++) {
		pthread_join(threads[i], NULL);
		ok += putters[i].ok;
		dups += putters[i].duplicates;
		for (j = 0; j < 200; j++)
			fresh[putters[i].first + j] += putters[i].fresh[j];
	}
	store_stop(s);
	/* The totals could hide one id stored as new twice and another never: each
	 * id must have exactly one answer that is not a duplicate. */
	for (i = 0; i < 1700; i++)
		not_once += fresh[i] != 1;
	CHECK("store_group_commit_each_id_new_once", not_once == 0);
	/* ids 0..1699: 3200 puts, 1700 distinct. */
	CHECK("store_group_commit_all_ok", ok == 3200);
	CHECK("store_group_commit_duplicates", dups == 3200 - 1700);
	CHECK("store_group_commit_rows", query_int(db_path("store.db"),
	    "SELECT count(*) FROM updates") == 1700 && query_int(db_path("store.db"),
	    "SELECT count(DISTINCT update_id) FROM updates") == 1700);
}

static void
test_store_unavailable(void)
{
	struct config		 cfg;
	struct store		*s = NULL;
	struct queue_item	 it = item(1, "{\"update_id\":1}", now_unix());
	struct queue_health	 h;
	char			 err[256];

	memset(&cfg, 0, sizeof(cfg));
	cfg.database = "/nonexistent/dir/q.db";
	cfg.busy_timeout_ms = 100;
	CHECK("store_starts_without_database", store_start(&cfg, &s, err,
	    sizeof(err)) == 0);
	if (s == NULL)
		return;
	CHECK("store_put_unavailable", store_put(s, &it) == QUEUE_UNAVAILABLE);
	CHECK("store_health_unavailable", store_health(s, &h) == QUEUE_UNAVAILABLE);
	store_stop(s);
}

/*
 * Two processes (tgq-webhook workers started together by spawn-fcgi or lighttpd)
 * open a new queue file at the same moment: both must succeed.  Switching to WAL
 * made SQLite answer "locked" at once to one of them (111 of 150 pairs of
 * tgq-webhook --check under ASan).
 */
static void
test_open_together(void)
{
	char		 path[PATH_MAX];
	struct queue	*q;
	char		 err[256];
	int		 i, status, failed = 0, tries = 100;

	for (i = 0; i < tries; i++) {
		pid_t	child;
		int	ok, go[2];
		char	c = 0;

		snprintf(path, sizeof(path), "%s/together%d.db", dir, i);
		if (pipe(go) == -1)
			break;
		if ((child = fork()) == -1)
			break;
		/* Both start at once: the child when the parent says so. */
		if (child == 0)
			ok = read(go[0], &c, 1) == 1;
		else
			ok = write(go[1], &c, 1) == 1;
		close(go[0]);
		close(go[1]);
		ok = ok && queue_open(path, DURABILITY_FULL, 2000, &q, err, sizeof(err)) == 0;
		if (ok)
			queue_close(q);
		if (child == 0)
			_exit(ok ? 0 : 1);
		if (waitpid(child, &status, 0) == -1 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			ok = 0;
		failed += !ok;
	}
	CHECK("open_together_both_succeed", i == tries && failed == 0);
	if (failed > 0)
		fprintf(stderr, "# %d of %d pairs had a failed open\n", failed, tries);
}

static int
autocheckpoint_of(struct queue *q)
{
	sqlite3_stmt	*st;
	int		 pages = -1;

	if (sqlite3_prepare_v2(queue_db(q), "PRAGMA wal_autocheckpoint", -1, &st,
	    NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		pages = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return pages;
}

/* The checkpoint interval the webhook sets holds on its connection, and the
 * other programs keep SQLite's default. */
static void
test_checkpoint_pages(void)
{
	struct queue	*q = NULL;
	char		 err[256];

	if (queue_open(db_path("ckpt.db"), DURABILITY_FULL, 1000, &q, err,
	    sizeof(err)) == -1) {
		CHECK("checkpoint_open", 0);
		return;
	}
	CHECK("checkpoint_default_1000", autocheckpoint_of(q) == 1000);
	CHECK("checkpoint_set", queue_set_checkpoint(q, 200, err, sizeof(err)) == 0);
	CHECK("checkpoint_200", autocheckpoint_of(q) == 200);
	queue_close(q);
}

/*
 * The one write transaction: nesting counts, a rollback inside dooms the outer
 * commit, another process's lock is QUEUE_BUSY within max_wait_ms, and the purge
 * rule keeps a done update whose call still waits, for the bot named only.
 */
static void
test_transactions(void)
{
	const char		*path = db_path("tx.db");
	struct queue		*q = NULL;
	struct queue_item	 one[1];
	struct queue_purge	 p = { .what = QUEUE_PURGE_DONE_UPDATES,
	    .before = 1000, .bot = "a", .batch = 1, .max_batches = 0,
	    .max_wait_ms = QUEUE_WAIT_FOREVER };
	char			 err[512];
	int64_t			 deleted = -1;
	pid_t			 pid;
	int			 fds[2], status;
	char			 c;

	CHECK("tx_open", queue_open(path, DURABILITY_FULL, 100, &q, err,
	    sizeof(err)) == 0);
	if (q == NULL)
		return;
	CHECK("tx_nested", queue_begin(q, QUEUE_WAIT_FOREVER, err, sizeof(err)) ==
	    QUEUE_OK && queue_begin(q, 0, err, sizeof(err)) == QUEUE_OK &&
	    sqlite3_exec(queue_db(q), "INSERT INTO poll_state VALUES ('x', 1, 1)",
	    NULL, NULL, NULL) == SQLITE_OK &&
	    queue_commit(q, err, sizeof(err)) == QUEUE_OK &&
	    queue_commit(q, err, sizeof(err)) == QUEUE_OK &&
	    query_int(path, "SELECT count(*) FROM poll_state") == 1);
	queue_begin(q, QUEUE_WAIT_FOREVER, err, sizeof(err));
	queue_begin(q, QUEUE_WAIT_FOREVER, err, sizeof(err));
	sqlite3_exec(queue_db(q), "DELETE FROM poll_state", NULL, NULL, NULL);
	queue_rollback(q);
	CHECK("tx_doomed", queue_commit(q, err, sizeof(err)) == QUEUE_UNAVAILABLE &&
	    sqlite3_get_autocommit(queue_db(q)) &&
	    query_int(path, "SELECT count(*) FROM poll_state") == 1);

	/* A child holds the lock until told to go. */
	if (pipe(fds) == -1 || (pid = fork()) == -1)
		return;
	if (pid == 0) {
		struct queue *held;

		close(fds[1]);
		if (queue_open(path, DURABILITY_FULL, 100, &held, err,
		    sizeof(err)) == -1 || queue_begin(held, QUEUE_WAIT_FOREVER, err,
		    sizeof(err)) != QUEUE_OK)
			_exit(1);
		if (read(fds[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[0]);
	{
		struct timespec	 pause = { 0, 10 * 1000 * 1000 };
		int		 i;

		/* Until the child holds it (at most 5 s). */
		for (i = 0; i < 500 && queue_begin(q, 0, err, sizeof(err)) ==
		    QUEUE_OK; i++) {
			queue_rollback(q);
			nanosleep(&pause, NULL);
		}
	}
	CHECK("tx_busy", queue_begin(q, 20, err, sizeof(err)) == QUEUE_BUSY &&
	    sqlite3_get_autocommit(queue_db(q)));
	c = 'x';
	if (write(fds[1], &c, 1) != 1)
		perror("write");
	close(fds[1]);
	waitpid(pid, &status, 0);
	CHECK("tx_after_busy", queue_begin(q, 1000, err, sizeof(err)) == QUEUE_OK &&
	    queue_commit(q, err, sizeof(err)) == QUEUE_OK);

	/* Done long ago: bot a's update 1 (a call waits), 2 (its call was sent)
	 * and bot b's update 3. */
	one[0] = item(1, "{\"update_id\":1}", 10);
	one[0].bot = "a";
	queue_put_batch(q, one, 1, err, sizeof(err));
	one[0] = item(2, "{\"update_id\":2}", 10);
	one[0].bot = "a";
	queue_put_batch(q, one, 1, err, sizeof(err));
	one[0] = item(3, "{\"update_id\":3}", 10);
	one[0].bot = "b";
	queue_put_batch(q, one, 1, err, sizeof(err));
	exec_on(path, "UPDATE updates SET state = 'done', handled_at = 20;"
	    "INSERT INTO outbox (bot, update_row, method, params, created_at, state)"
	    " SELECT 'a', id, 'sendMessage', '{}', 20, 'new' FROM updates"
	    " WHERE update_id = 1;"
	    "INSERT INTO outbox (bot, update_row, method, params, created_at, state,"
	    " sent_at) SELECT 'a', id, 'sendMessage', '{}', 20, 'sent', 20"
	    " FROM updates WHERE update_id = 2");
	CHECK("purge_rule", queue_purge(q, &p, &deleted, err, sizeof(err)) ==
	    QUEUE_OK && deleted == 1 && query_int(path, "SELECT count(*) FROM updates WHERE update_id IN "
	    "(1, 3)") == 2 && query_int(path, "SELECT count(*) FROM next_call") == 1);
	p.what = QUEUE_PURGE_SENT_CALLS;
	p.bot = NULL;
	CHECK("purge_sent_calls", queue_purge(q, &p, &deleted, err, sizeof(err)) ==
	    QUEUE_OK && deleted == 1 && query_int(path, "SELECT count(*) FROM "
	    "outbox") == 1);
	queue_close(q);
}

/*
 * A migration is a write like any other: it waits for the lock on <db>-lock
 * that every writer takes, so it never writes while a writer of another process
 * holds it (the drain's trylock counts on that).
 */
static void
test_migration_takes_lock(void)
{
	struct queue	*q = NULL;
	char		 err[512], lockpath[PATH_MAX];
	const char	*path = db_path("migrate-locked.db");
	int		 fd;

	exec_on(path, "PRAGMA user_version = 0");
	snprintf(lockpath, sizeof(lockpath), "%s-lock", path);
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK("queue_migration_lock_held", fd != -1 && flock(fd, LOCK_EX) == 0);
	CHECK("queue_migration_waits_for_lock", queue_open(path, DURABILITY_FULL, 100,
	    &q, err, sizeof(err)) == -1 && strstr(err, "another writer") != NULL);
	queue_close(q);
	q = NULL;
	CHECK("queue_migration_wrote_nothing_locked", query_int(path,
	    "PRAGMA user_version") == 0);
	if (fd != -1)
		close(fd);
	CHECK("queue_migration_after_unlock", queue_open(path, DURABILITY_FULL, 100,
	    &q, err, sizeof(err)) == 0 && query_int(path, "PRAGMA user_version") ==
	    QUEUE_SCHEMA_VERSION);
	queue_close(q);
}

/*
 * tgq-drain --follow wakes on changes in the queue's folder and then asks SQLite
 * whether anything was committed.  SQLite's own writes there all come before
 * its commit is visible, so a stored batch must end with an event of its own,
 * after the commit: the last thing a put changes in the folder is <db>-lock.
 */
static void
test_put_announced(void)
{
	struct queue		*q = NULL;
	struct queue_item	 it;
	char			 err[512], folder[PATH_MAX], path[PATH_MAX + 16];
	char			 last[NAME_MAX + 1] = "", buf[8192];
	ssize_t			 got;
	int			 fd, events = 0;

	snprintf(folder, sizeof(folder), "%s/announce", dir);
	snprintf(path, sizeof(path), "%s/q.db", folder);
	if (mkdir(folder, 0700) == -1 ||
	    queue_open(path, DURABILITY_FULL, 1000, &q, err, sizeof(err)) == -1) {
		CHECK("queue_announce_open", 0);
		return;
	}
	it = item(1, "{\"update_id\":1}", now_unix());
	CHECK("queue_announce_first_put", queue_put_batch(q, &it, 1, err,
	    sizeof(err)) == QUEUE_OK);
	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(fd, folder, IN_MODIFY | IN_CLOSE_WRITE |
	    IN_MOVED_TO | IN_CREATE) == -1) {
		CHECK("queue_announce_inotify", 0);
		queue_close(q);
		return;
	}
	it = item(2, "{\"update_id\":2}", now_unix());
	CHECK("queue_announce_put", queue_put_batch(q, &it, 1, err, sizeof(err)) ==
	    QUEUE_OK);
	while ((got = read(fd, buf, sizeof(buf))) > 0) {
		char *at = buf;

		while (at < buf + got) {
			struct inotify_event *ev = (struct inotify_event *)at;

			if (ev->len > 0)
				snprintf(last, sizeof(last), "%s", ev->name);
			events++;
			at += sizeof(*ev) + ev->len;
		}
	}
	CHECK("queue_announce_after_commit", events > 0 &&
	    strcmp(last, "q.db-lock") == 0);
	close(fd);
	queue_close(q);
}

int
main(void)
{
	char cmd[PATH_MAX + 16];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	log_init("test_queue", LOG_LVL_ERR - 1);	/* the tests provoke errors */
	test_schema();
	test_put();
	test_put_announced();
	test_store_threads();
	test_store_unavailable();
	test_open_together();
	test_checkpoint_pages();
	test_transactions();
	test_migration_takes_lock();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_exit();
}
