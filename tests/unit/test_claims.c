/*
 * Unit tests for drain/jobs.c and the queue's chat heads (lib/queue.c, schema
 * version 5) against real SQLite files: what a claim, a look for due calls and a
 * retention pass cost does not grow with one chat's backlog, and next_update /
 * next_call always name each chat's first waiting row, whoever changed the queue.
 *
 * Cost is counted in SQLite VM steps (sqlite3_stmt_status), summed over every
 * statement of the drain's connection: the same work on a backlog of 1,000 and of
 * 20,000 rows in one chat must take about the same number of steps.  No timing.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "drain.h"

#define SMALL_BACKLOG 1000
#define BIG_BACKLOG 20000
#define HOT_CHAT 7
#define NOW 1800000000LL

static char dir[] = "/tmp/tgq-claims-XXXXXX";
static struct config cfg;

static const char *
db_path(const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void
set_up_config(void)
{
	static char token[] = "unit-test-token";

	memset(&cfg, 0, sizeof(cfg));
	cfg.nbots = 1;
	snprintf(cfg.bots[0].name, sizeof(cfg.bots[0].name), "default");
	cfg.bots[0].token = token;
	cfg.bots[0].token_len = strlen(token);
	cfg.max_attempts = 5;
	cfg.lease_s = 60;
	cfg.retain_s = 7 * 86400;
}

static int
open_jobs(const char *name, struct queue **q, struct jobs **j)
{
	char err[512];

	*q = NULL;
	*j = NULL;
	if (queue_open(db_path(name), DURABILITY_NORMAL, 1000, q, err,
	    sizeof(err)) == -1 || jobs_open(*q, &cfg, j, err, sizeof(err)) == -1) {
		printf("# %s: %s\n", name, err);
		queue_close(*q);
		*q = NULL;
		return -1;
	}
	return 0;
}

static void
close_jobs(struct queue *q, struct jobs *j)
{
	jobs_close(j);
	queue_close(q);
}

static int
sql(struct queue *q, const char *text)
{
	char *msg = NULL;

	if (sqlite3_exec(queue_db(q), text, NULL, NULL, &msg) != SQLITE_OK) {
		printf("# %.60s...: %s\n", text, msg ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int64_t
sql_int(struct queue *q, const char *text)
{
	sqlite3_stmt	*st;
	int64_t		 v = -1;

	if (sqlite3_prepare_v2(queue_db(q), text, -1, &st, NULL) != SQLITE_OK) {
		printf("# %.60s...: %s\n", text, sqlite3_errmsg(queue_db(q)));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* VM steps of every statement on the connection since the last call. */
static int64_t
vm_steps(struct queue *q)
{
	sqlite3_stmt	*st = NULL;
	int64_t		 n = 0;

	while ((st = sqlite3_next_stmt(queue_db(q), st)) != NULL)
		n += sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
	return n;
}

/* n updates of one chat, update_ids first .. first + n - 1, in one transaction. */
static int
add_updates(struct queue *q, int64_t chat, int64_t first, int64_t n, int64_t step)
{
	char text[1024];

	snprintf(text, sizeof(text),
	    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k"
	    " WHERE i + 1 < %lld)"
	    " INSERT INTO updates (bot, update_id, received_at, kind, chat_id, body)"
	    " SELECT 'default', %lld + i * %lld, %lld, 'message', %lld,"
	    " '{\"update_id\":' || (%lld + i * %lld) || ',\"message\":{\"chat\":"
	    "{\"id\":%lld},\"text\":\"hi\"}}' FROM k",
	    (long long)n, (long long)first, (long long)step, NOW, (long long)chat,
	    (long long)first, (long long)step, (long long)chat);
	return sql(q, text);
}

/* The rows next_update should hold, from their definition, and those it holds. */
static int64_t
heads_wrong(struct queue *q)
{
	return sql_int(q,
	    "WITH want AS (SELECT id FROM updates u"
	    "  WHERE state IN ('new', 'leased') AND (chat_id IS NULL OR NOT EXISTS"
	    "   (SELECT 1 FROM updates v WHERE v.bot = u.bot AND v.chat_id = u.chat_id"
	    "    AND v.state IN ('new', 'leased') AND (v.update_id < u.update_id"
	    "     OR (v.update_id = u.update_id AND v.id < u.id)))))"
	    " SELECT (SELECT count(*) FROM (SELECT id FROM want"
	    "   EXCEPT SELECT update_row FROM next_update))"
	    " + (SELECT count(*) FROM (SELECT update_row FROM next_update"
	    "   EXCEPT SELECT id FROM want))"
	    " + (SELECT count(*) FROM next_update n JOIN updates u"
	    "   ON u.id = n.update_row WHERE n.bot IS NOT u.bot"
	    "   OR n.chat_id IS NOT u.chat_id)");
}

static int64_t
call_heads_wrong(struct queue *q)
{
	return sql_int(q,
	    "WITH want AS (SELECT id FROM outbox o"
	    "  WHERE state IN ('new', 'sending') AND (chat_id IS NULL OR NOT EXISTS"
	    "   (SELECT 1 FROM outbox p WHERE p.bot = o.bot AND p.chat_id = o.chat_id"
	    "    AND p.state IN ('new', 'sending') AND p.id < o.id)))"
	    " SELECT (SELECT count(*) FROM (SELECT id FROM want"
	    "   EXCEPT SELECT call_row FROM next_call))"
	    " + (SELECT count(*) FROM (SELECT call_row FROM next_call"
	    "   EXCEPT SELECT id FROM want))"
	    " + (SELECT count(*) FROM next_call n JOIN outbox o"
	    "   ON o.id = n.call_row WHERE n.bot IS NOT o.bot"
	    "   OR n.chat_id IS NOT o.chat_id)");
}

static void
free_claimed(struct claimed *c, size_t n)
{
	while (n > 0)
		claimed_free(&c[--n]);
}

/*
 * One chat with a backlog of n whose first update is in progress (leased), then
 * five other chats with two updates each and one update without a chat.  Returns
 * the VM steps of the next claim, which must take the other chats' first updates
 * and the chatless one, in arrival order, and nothing of the busy chat.
 */
static int64_t
claim_cost(int64_t n, int *right)
{
	struct queue	*q;
	struct jobs	*j;
	struct claimed	 c[64];
	size_t		 got = 0, i;
	int64_t		 steps = -1, chat;
	char		 name[64];

	*right = 0;
	snprintf(name, sizeof(name), "claim-%lld.db", (long long)n);
	if (open_jobs(name, &q, &j) == -1)
		return -1;
	if (add_updates(q, HOT_CHAT, 1, n, 1) == -1 ||
	    jobs_claim(j, NOW, 1, c, &got) == -1 || got != 1 ||
	    c[0].update_id != 1) {
		printf("# the busy chat's first update was not claimed\n");
		goto out;
	}
	free_claimed(c, got);
	for (chat = 100; chat < 105; chat++)
		if (add_updates(q, chat, n + 1 + (chat - 100), 2, 5) == -1)
			goto out;
	if (sql(q, "INSERT INTO updates (bot, update_id, received_at, kind, body)"
	    " VALUES ('default', 1000000, 1800000000, 'inline_query', '{}')") == -1)
		goto out;
	vm_steps(q);
	if (jobs_claim(j, NOW, 64, c, &got) == -1)
		goto out;
	steps = vm_steps(q);
	*right = got == 6;
	for (i = 0; i < got && i < 5; i++)
		*right = *right && c[i].update_id == n + 1 + (int64_t)i;
	*right = *right && got == 6 && c[5].update_id == 1000000;
	free_claimed(c, got);
	/* A second claim finds nothing: every chat has its first in progress. */
	vm_steps(q);
	if (jobs_claim(j, NOW, 64, c, &got) == -1 || got != 0)
		*right = 0;
	free_claimed(c, got);
	printf("# backlog %lld: claim %lld VM steps, empty claim %lld\n", (long long)n,
	    (long long)steps, (long long)vm_steps(q));
out:
	close_jobs(q, j);
	return steps;
}

static int
want_all(void *arg, const char *bot, const char *chat)
{
	(void)arg;
	(void)bot;
	(void)chat;
	return 1;
}

/*
 * The same for calls: one chat's first call is being sent and n wait behind it;
 * five other chats have one call each.  Returns the VM steps of one look for due
 * calls, which must find the five.
 */
static int64_t
due_calls_cost(int64_t n, int *right)
{
	struct queue	*q;
	struct jobs	*j;
	struct outcall	 c[64];
	size_t		 got = 0, i;
	int64_t		 steps = -1, id = 1;
	int		 taken = 0;
	char		 name[64], text[512];

	*right = 0;
	snprintf(name, sizeof(name), "calls-%lld.db", (long long)n);
	if (open_jobs(name, &q, &j) == -1)
		return -1;
	snprintf(text, sizeof(text),
	    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k"
	    " WHERE i + 1 < %lld)"
	    " INSERT INTO outbox (bot, update_row, update_id, chat_id, method, params,"
	    " created_at) SELECT 'default', NULL, i, %d, 'sendMessage',"
	    " '{\"chat_id\":%d,\"text\":\"x\"}', %lld FROM k;"
	    " INSERT INTO outbox (bot, chat_id, method, params, created_at)"
	    " SELECT 'default', column1, 'sendMessage', '{}', %lld"
	    " FROM (VALUES (200), (201), (202), (203), (204))", (long long)n + 1,
	    HOT_CHAT, HOT_CHAT, NOW, NOW);
	if (sql(q, text) == -1 || jobs_take_calls(j, &id, 1, NOW, &taken) == -1 ||
	    !taken)
		goto out;
	vm_steps(q);
	if (jobs_due_calls(j, NOW, 64, 64, want_all, NULL, c, &got) == -1)
		goto out;
	steps = vm_steps(q);
	*right = got == 5;
	for (i = 0; i < got; i++) {
		char want[16];

		snprintf(want, sizeof(want), "%d", 200 + (int)i);
		*right = *right && strcmp(c[i].chat, want) == 0;
		outcall_free(&c[i]);
	}
	printf("# backlog %lld: due calls %lld VM steps\n", (long long)n,
	    (long long)steps);
out:
	close_jobs(q, j);
	return steps;
}

/* Retention with n recent done updates and sent calls and 3 old ones of each:
 * the old go, and the recent are not read. */
static int64_t
retain_cost(int64_t n, int *right)
{
	struct queue	*q;
	struct jobs	*j;
	int64_t		 steps = -1, deleted;
	char		 name[64], text[1024];

	*right = 0;
	snprintf(name, sizeof(name), "retain-%lld.db", (long long)n);
	if (open_jobs(name, &q, &j) == -1)
		return -1;
	snprintf(text, sizeof(text),
	    "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k"
	    " WHERE i + 1 < %lld)"
	    " INSERT INTO updates (bot, update_id, received_at, kind, chat_id, body,"
	    " state, handled_at) SELECT 'default', i, %lld, 'message', i %% 50, '{}',"
	    " 'done', CASE WHEN i < 3 THEN %lld ELSE %lld END FROM k;"
	    " INSERT INTO outbox (bot, update_row, chat_id, method, params, created_at,"
	    " state, sent_at) SELECT 'default', id, chat_id, 'sendMessage', '{}',"
	    " handled_at, 'sent', handled_at FROM updates;",
	    (long long)n + 3, NOW - 10 * 86400, NOW - 10 * 86400, NOW - 60);
	if (sql(q, text) == -1)
		goto out;
	vm_steps(q);
	deleted = jobs_retain(j, NOW);
	steps = vm_steps(q);
	*right = deleted == 6 && sql_int(q, "SELECT count(*) FROM updates") == n &&
	    sql_int(q, "SELECT count(*) FROM outbox") == n;
	printf("# %lld recent rows: retention %lld VM steps\n", (long long)n,
	    (long long)steps);
out:
	close_jobs(q, j);
	return steps;
}

static void
test_costs(void)
{
	int64_t	small, big;
	int	right_small, right_big;

	small = claim_cost(SMALL_BACKLOG, &right_small);
	big = claim_cost(BIG_BACKLOG, &right_big);
	CHECK("claim_takes_other_chats_heads_in_order", right_small && right_big);
	CHECK("claim_cost_independent_of_backlog", small > 0 && big > 0 &&
	    big <= small * 3 / 2);

	small = due_calls_cost(SMALL_BACKLOG, &right_small);
	big = due_calls_cost(BIG_BACKLOG, &right_big);
	CHECK("due_calls_find_other_chats", right_small && right_big);
	CHECK("due_calls_cost_independent_of_backlog", small > 0 && big > 0 &&
	    big <= small * 3 / 2);

	small = retain_cost(SMALL_BACKLOG, &right_small);
	big = retain_cost(BIG_BACKLOG, &right_big);
	CHECK("retention_deletes_only_old_rows", right_small && right_big);
	CHECK("retention_cost_independent_of_recent_rows", small > 0 && big > 0 &&
	    big <= small * 3 / 2);
}

/* Claims one update and returns its update_id (-1: none). */
static int64_t
claim_one(struct jobs *j, struct claimed *c)
{
	size_t got = 0;

	if (jobs_claim(j, NOW, 1, c, &got) == -1 || got != 1)
		return -1;
	return c->update_id;
}

/* Every way a row enters, leaves or moves in its chat's line keeps the heads
 * right: arrival out of order, claim, finish, failure, dead and back, delete. */
static void
test_heads(void)
{
	struct queue		*q;
	struct jobs		*j;
	struct claimed		 c;
	struct call_list	 none = { 0 };
	int64_t			 uid;
	int			 ok = 1;

	if (open_jobs("heads.db", &q, &j) == -1) {
		CHECK("heads_open", 0);
		return;
	}
	add_updates(q, 9, 50, 3, 10);		/* 50, 60, 70 */
	add_updates(q, 9, 40, 1, 1);		/* arrives late, goes first */
	add_updates(q, 8, 1, 2, 1);
	CHECK("heads_late_arrival_goes_first", heads_wrong(q) == 0 &&
	    sql_int(q, "SELECT u.update_id FROM next_update n JOIN updates u"
	    " ON u.id = n.update_row WHERE n.chat_id = 9") == 40);
	uid = claim_one(j, &c);
	ok = uid == 40 && heads_wrong(q) == 0;
	ok = ok && jobs_finish(j, &c, &none, NOW) == 0 && heads_wrong(q) == 0;
	claimed_free(&c);
	CHECK("heads_claim_then_finish", ok);
	uid = claim_one(j, &c);		/* chat 8's update 1 (arrived before 50) */
	ok = uid == 50 || uid == 1;
	ok = ok && jobs_fail(j, &c, "test", 1, NOW) == 0 && heads_wrong(q) == 0;
	claimed_free(&c);
	CHECK("heads_dead_lets_the_next_go", ok && sql_int(q,
	    "SELECT count(*) FROM updates WHERE state = 'dead'") == 1);
	/* The README's recipe, run in the sqlite3 shell. */
	CHECK("heads_back_from_dead", sql(q, "UPDATE updates SET state = 'new',"
	    " attempts = 0, last_error = NULL WHERE state = 'dead'") == 0 &&
	    heads_wrong(q) == 0);
	uid = claim_one(j, &c);
	ok = uid > 0 && jobs_fail(j, &c, "again", 0, NOW) == 0 &&
	    heads_wrong(q) == 0 && sql_int(q, "SELECT count(*) FROM updates"
	    " WHERE state = 'new' AND next_attempt_at > 0") == 1;
	claimed_free(&c);
	CHECK("heads_retry_keeps_its_place", ok);
	CHECK("heads_delete", sql(q, "DELETE FROM updates WHERE chat_id = 9"
	    " AND update_id = 60") == 0 && heads_wrong(q) == 0 &&
	    sql(q, "DELETE FROM updates WHERE state = 'new'") == 0 &&
	    heads_wrong(q) == 0 && sql_int(q, "SELECT count(*) FROM next_update") ==
	    0);
	CHECK("heads_chatless_each_own", sql(q, "INSERT INTO updates (bot,"
	    " update_id, received_at, body) VALUES ('default', 500, 1, '{}'),"
	    " ('default', 501, 1, '{}')") == 0 && sql_int(q,
	    "SELECT count(*) FROM next_update WHERE chat_id IS NULL") == 2 &&
	    heads_wrong(q) == 0);
	CHECK("heads_moved_to_other_chat", sql(q, "UPDATE updates SET chat_id = 77"
	    " WHERE update_id = 500") == 0 && heads_wrong(q) == 0);

	/* Calls: sent, dead, back, and moved to a supergroup. */
	ok = sql(q, "INSERT INTO outbox (bot, chat_id, method, params, created_at)"
	    " VALUES ('default', 5, 'a', '{}', 1), ('default', 5, 'b', '{}', 1),"
	    " ('default', 6, 'c', '{}', 1), ('default', '@chan', 'd', '{}', 1),"
	    " ('default', NULL, 'e', '{}', 1), ('default', 5, 'f', '{}', 1)") == 0 &&
	    call_heads_wrong(q) == 0;
	{
		int64_t			 ids[2] = { 1, 3 };
		int			 taken[2];
		struct send_result	 r[2];

		memset(r, 0, sizeof(r));
		r[0].id = 1;
		r[0].outcome = SENT;
		r[0].result = "true";
		r[1].id = 3;
		r[1].outcome = MIGRATED;
		r[1].migrate_to = 5;
		r[1].error = "migrated";
		ok = ok && jobs_take_calls(j, ids, 2, NOW, taken) == 0 &&
		    call_heads_wrong(q) == 0 && jobs_record(j, r, 2, NOW) == 0 &&
		    call_heads_wrong(q) == 0;
		/* Call 3 moved into chat 5 ahead of 6: it goes first there now. */
		ok = ok && sql_int(q, "SELECT call_row FROM next_call"
		    " WHERE chat_id = 5") == 2 && sql_int(q, "SELECT count(*) FROM"
		    " next_call WHERE chat_id = 6") == 0;
		r[0].id = 2;
		r[0].outcome = REJECTED;
		r[0].error = "chat not found";
		ids[0] = 2;
		ok = ok && jobs_take_calls(j, ids, 1, NOW, taken) == 0 &&
		    jobs_record(j, r, 1, NOW) == 0 && call_heads_wrong(q) == 0 &&
		    sql_int(q, "SELECT call_row FROM next_call WHERE chat_id = 5") == 3;
	}
	CHECK("call_heads_sent_dead_migrated", ok);
	CHECK("call_heads_back_from_dead", sql(q, "UPDATE outbox SET state = 'new',"
	    " attempts = 0, next_attempt_at = 0 WHERE id = 2") == 0 &&
	    call_heads_wrong(q) == 0 && sql_int(q, "SELECT call_row FROM next_call"
	    " WHERE chat_id = 5") == 2);
	CHECK("call_heads_delete", sql(q, "DELETE FROM outbox WHERE id = 2") == 0 &&
	    call_heads_wrong(q) == 0);
	close_jobs(q, j);
}

/* A version 4 file with waiting updates and calls gets its heads when it is
 * migrated. */
static void
test_migration(void)
{
	struct queue	*q;
	struct jobs	*j;
	int		 ok;

	if (open_jobs("v4.db", &q, &j) == -1) {
		CHECK("migrate_v4_open", 0);
		return;
	}
	ok = sql(q, "DROP TRIGGER next_update_insert; DROP TRIGGER next_update_change;"
	    " DROP TRIGGER next_update_delete; DROP TRIGGER next_call_insert;"
	    " DROP TRIGGER next_call_change; DROP TRIGGER next_call_delete;"
	    " DROP TABLE next_update; DROP TABLE next_call;"
	    " DROP INDEX updates_done_by_time; DROP INDEX outbox_sent_by_time;"
	    " DROP VIEW skipped; DROP TABLE registrations; DROP TABLE bot_down;"
	    " PRAGMA user_version = 4") == 0 &&
	    add_updates(q, 3, 30, 4, -1) == 0 && add_updates(q, 4, 1, 3, 1) == 0 &&
	    sql(q, "UPDATE updates SET state = 'leased' WHERE update_id = 1;"
	    " UPDATE updates SET state = 'done' WHERE update_id = 27;"
	    " INSERT INTO updates (bot, update_id, received_at, body)"
	    " VALUES ('default', 900, 1, '{}');"
	    " INSERT INTO outbox (bot, chat_id, method, params, created_at, state)"
	    " VALUES ('default', 5, 'a', '{}', 1, 'sent'),"
	    " ('default', 5, 'b', '{}', 1, 'new'), ('default', 5, 'c', '{}', 1, 'new'),"
	    " ('default', NULL, 'd', '{}', 1, 'new')") == 0;
	close_jobs(q, j);
	CHECK("migrate_v4_prepared", ok);
	if (open_jobs("v4.db", &q, &j) == -1) {
		CHECK("migrate_v4_reopen", 0);
		return;
	}
	CHECK("migrate_v4_version", sql_int(q, "PRAGMA user_version") ==
	    QUEUE_SCHEMA_VERSION);
	CHECK("migrate_v4_heads", heads_wrong(q) == 0 &&
	    sql_int(q, "SELECT count(*) FROM next_update") == 3 &&
	    sql_int(q, "SELECT u.update_id FROM next_update n JOIN updates u"
	    " ON u.id = n.update_row WHERE n.chat_id = 3") == 28);
	CHECK("migrate_v4_call_heads", call_heads_wrong(q) == 0 &&
	    sql_int(q, "SELECT count(*) FROM next_call") == 2);
	close_jobs(q, j);
}

/* A bot whose handler runs nothing (pull): the claim leaves its updates
 * alone, without reading the queue for them. */
static void
test_leave_alone(void)
{
	struct queue	*q;
	struct jobs	*j;
	struct claimed	 c[8];
	size_t		 got = 1;

	if (open_jobs("leave-alone.db", &q, &j) == -1) {
		CHECK("claim_leaves_pull_bot_alone", 0);
		return;
	}
	jobs_leave_alone(j, "default");
	if (add_updates(q, 5, 1, 3, 1) == -1 || jobs_claim(j, NOW, 8, c,
	    &got) == -1)
		got = 1;
	free_claimed(c, got);
	CHECK("claim_leaves_pull_bot_alone", got == 0 && sql_int(q,
	    "SELECT count(*) FROM updates WHERE state = 'new'") == 3);
	vm_steps(q);
	(void)jobs_claim(j, NOW, 8, c, &got);
	CHECK("claim_of_pull_bots_only_reads_nothing", got == 0 &&
	    vm_steps(q) == 0);
	close_jobs(q, j);
}

static void
remove_dir(void)
{
	char	 cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

/*
 * An http handler's bot that does not answer: its update goes back uncharged
 * and stays its chat's head; a held bot's updates are not claimed, and are
 * again once it is let go; bot_down keeps the mark other processes read.
 */
static void
test_release_and_hold(void)
{
	struct queue	*q;
	struct jobs	*j;
	struct claimed	 c[8];
	size_t		 got = 0;
	int64_t		 since = 0, probes = 0;
	int		 ok;

	if (open_jobs("hold.db", &q, &j) == -1) {
		CHECK("release_open", 0);
		return;
	}
	ok = add_updates(q, 5, 1, 2, 1) == 0 &&
	    jobs_claim(j, NOW, 8, c, &got) == 0 && got == 1 && c[0].update_id == 1 &&
	    c[0].attempts == 1;
	CHECK("release_claimed", ok);
	if (!ok) {
		close_jobs(q, j);
		return;
	}
	CHECK("release_uncharged", jobs_release(j, &c[0], "refused", NOW) == 0 &&
	    sql_int(q, "SELECT attempts FROM updates WHERE update_id = 1") == 0 &&
	    sql_int(q, "SELECT state = 'new' AND last_error = 'refused' FROM updates"
	    " WHERE update_id = 1") == 1 && heads_wrong(q) == 0);
	free_claimed(c, got);
	jobs_hold(j, "default", 1);
	jobs_hold(j, "default", 1);
	CHECK("hold_claims_nothing", jobs_claim(j, NOW, 8, c, &got) == 0 && got == 0);
	jobs_hold(j, "default", 0);
	jobs_hold(j, "default", 0);
	CHECK("unhold_claims_head", jobs_claim(j, NOW, 8, c, &got) == 0 && got == 1 &&
	    c[0].update_id == 1 && c[0].attempts == 1);
	free_claimed(c, got);
	CHECK("bot_down_marked", jobs_mark_down(j, "default", NOW, 0, NOW + 1,
	    "refused") == 0 && jobs_mark_down(j, "default", NOW, 2, NOW + 4,
	    "reset") == 0 && jobs_down_since(j, "default", &since, &probes) == 1 &&
	    since == NOW && probes == 2 && sql_int(q, "SELECT count(*) FROM bot_down"
	    " WHERE last_error = 'reset'") == 1);
	CHECK("bot_down_forgotten", jobs_mark_down(j, "gone", NOW, 0, NOW, "x") == 0 &&
	    jobs_forget_down(j, ",default,") == 0 &&
	    sql_int(q, "SELECT group_concat(bot) = 'default' FROM bot_down") == 1);
	CHECK("bot_down_cleared", jobs_mark_up(j, "default") == 0 &&
	    jobs_down_since(j, "default", &since, &probes) == 0);
	close_jobs(q, j);
}

int
main(void)
{
	log_init("test_claims", LOG_LVL_ERR);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	set_up_config();
	test_costs();
	test_heads();
	test_migration();
	test_release_and_hold();
	test_leave_alone();
	remove_dir();
	return check_exit();
}
