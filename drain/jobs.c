/*
 * The drain's statements on the queue.  Every change is a short transaction under
 * the queue's cross-process lock, so the webhook's group commits are never kept
 * waiting for long; no transaction is open while a handler runs or a call is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "drain.h"

#define RETAIN_BATCH 500
#define JOBS_LOCK_WAIT_MS 100	/* for the lock, and in SQLite's busy handler */
#define RETAIN_BATCHES_PER_CALL 20

enum stmt_id {
	S_CLAIM, S_CLAIM_EXPIRED, S_LEASE, S_FINISH, S_INSERT_CALL, S_FAIL, S_DUE_CALLS,
	S_TAKE_CALL, S_SENT, S_RETRY_CALL, S_WAIT_CALL, S_MIGRATE_CALL, S_REJECT_CALL,
	S_RECOVER, S_NEXT_DUE, S_DATA_VERSION, S_RELEASE, S_MARK_DOWN, S_MARK_UP,
	S_DOWN_SINCE, S_FORGET_DOWN, S_NSTMT
};

/*
 * What both claim statements read, and their filter: ?1 now, ?2 how many, ?3 the
 * bots with a token (",a,b,").  CLAIM_COLUMNS lists the columns of enum claim_col.
 */
#define CLAIM_COLUMNS \
	"SELECT u.id, u.bot, u.update_id, u.attempts + 1, u.body"
enum claim_col { CL_ID, CL_BOT, CL_UPDATE_ID, CL_ATTEMPTS, CL_BODY };
#define CLAIM_OF_OUR_BOTS \
	"   AND instr(?3, ',' || u.bot || ',') > 0"
/* S_DUE_CALLS's columns. */
enum due_col { DC_ID, DC_BOT, DC_CHAT, DC_METHOD, DC_PARAMS, DC_ATTEMPTS };
/* S_NEXT_DUE and S_DATA_VERSION read one column each. */
enum { ONE_VALUE };

static const char *const stmt_sql[S_NSTMT] = {
	/* S_CLAIM: the oldest due new updates that are each the first of their chat
	 * still waiting by update_id (Telegram's order), so one chat's updates are
	 * handled one at a time and in order.  next_update holds that first update of
	 * every chat (its triggers keep it); read in arrival order, it takes the
	 * claim straight to each chat's head, so a chat's backlog behind an update
	 * in progress is never read.  CROSS JOIN keeps that order of the loops.  S_LEASE
	 * then leases each row read, in the same transaction (a plain SELECT and
	 * UPDATEs by id build no temporary tables, which UPDATE ... IN (SELECT ...)
	 * RETURNING did: a chat with a backlog is claimed once per update). */
	CLAIM_COLUMNS
	" FROM next_update n CROSS JOIN updates u ON u.id = n.update_row"
	" WHERE u.state = 'new' AND coalesce(u.next_attempt_at, 0) <= ?1"
	CLAIM_OF_OUR_BOTS
	" ORDER BY n.update_row LIMIT ?2",
	/* S_CLAIM_EXPIRED: leases of drains that died, taken over in the same
	 * order (rare: a query of its own keeps the common one simple). */
	CLAIM_COLUMNS " FROM updates u"
	" WHERE u.state = 'leased' AND u.lease_until < ?1"
	CLAIM_OF_OUR_BOTS
	"   AND EXISTS (SELECT 1 FROM next_update n WHERE n.update_row = u.id)"
	" ORDER BY u.id LIMIT ?2",
	/* S_LEASE */
	"UPDATE updates SET state = 'leased', lease_until = ?2,"
	"  attempts = attempts + 1 WHERE id = ?1",
	/* S_FINISH: only while the lease is still ours. */
	"UPDATE updates SET state = 'done', handled_at = ?3, lease_until = NULL,"
	"  last_error = ?4 WHERE id = ?1 AND state = 'leased' AND lease_until = ?2",
	/* S_INSERT_CALL */
	"INSERT INTO outbox (bot, update_row, update_id, chat_id, method, params,"
	"  created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	/* S_FAIL: ?4 is 1 for dead now, else dead once attempts reach the limit. */
	"UPDATE updates SET state = CASE WHEN ?4 OR attempts >= ?5 THEN 'dead'"
	"  ELSE 'new' END, next_attempt_at = ?6, lease_until = NULL, last_error = ?3"
	" WHERE id = ?1 AND state = 'leased' AND lease_until = ?2",
	/* S_DUE_CALLS: each chat's first call still waiting, if it is due, read
	 * from next_call the way S_CLAIM reads next_update. */
	"SELECT o.id, o.bot, o.chat_id, o.method, o.params, o.attempts"
	" FROM next_call n CROSS JOIN outbox o ON o.id = n.call_row"
	" WHERE o.state = 'new' AND o.next_attempt_at <= ?1"
	"   AND instr(?3, ',' || o.bot || ',') > 0"
	" ORDER BY n.call_row LIMIT ?2",
	/* S_TAKE_CALL */
	"UPDATE outbox SET state = 'sending', lease_until = ?2"
	" WHERE id = ?1 AND state = 'new'",
	/* S_SENT */
	"UPDATE outbox SET state = 'sent', sent_at = ?2, result = ?3,"
	"  lease_until = NULL, last_error = NULL WHERE id = ?1",
	/* S_RETRY_CALL: a failed send; dead when attempts reach the limit. */
	"UPDATE outbox SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ?4"
	"  THEN 'dead' ELSE 'new' END, next_attempt_at = ?2, last_error = ?3,"
	"  lease_until = NULL WHERE id = ?1",
	/* S_WAIT_CALL: Telegram asked us to wait; not a failure. */
	"UPDATE outbox SET state = 'new', next_attempt_at = ?2, last_error = ?3,"
	"  lease_until = NULL WHERE id = ?1",
	/* S_MIGRATE_CALL: the group is a supergroup now; send there. */
	"UPDATE outbox SET state = 'new', chat_id = ?2,"
	"  params = json_set(params, '$.chat_id', ?2), last_error = ?3,"
	"  lease_until = NULL WHERE id = ?1",
	/* S_REJECT_CALL */
	"UPDATE outbox SET state = 'dead', last_error = ?2, lease_until = NULL"
	" WHERE id = ?1",
	/* S_RECOVER */
	"UPDATE outbox SET state = 'new', lease_until = NULL,"
	"  last_error = 'the drain stopped while sending; sent again'"
	" WHERE state = 'sending' AND lease_until < ?1",
	/* S_NEXT_DUE: only the first of a chat can be due (those behind it wait
	 * for it), so only the heads are read. */
	"SELECT min(t) FROM (SELECT min(u.next_attempt_at) AS t"
	"  FROM next_update n CROSS JOIN updates u ON u.id = n.update_row"
	"  WHERE u.state = 'new' AND u.next_attempt_at > ?1"
	" UNION ALL SELECT min(o.next_attempt_at)"
	"  FROM next_call n CROSS JOIN outbox o ON o.id = n.call_row"
	"  WHERE o.state = 'new' AND o.next_attempt_at > ?1)",
	/* S_DATA_VERSION */
	"PRAGMA data_version",
	/* S_RELEASE: back in line as if never claimed: the attempt S_LEASE
	 * counted is taken back. */
	"UPDATE updates SET state = 'new', attempts = max(attempts - 1, 0),"
	"  next_attempt_at = ?3, lease_until = NULL, last_error = ?4"
	" WHERE id = ?1 AND state = 'leased' AND lease_until = ?2",
	/* S_MARK_DOWN */
	"INSERT INTO bot_down (bot, since, probes, next_probe_at, last_error)"
	" VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (bot) DO UPDATE SET"
	"  since = ?2, probes = ?3, next_probe_at = ?4, last_error = ?5",
	/* S_MARK_UP */
	"DELETE FROM bot_down WHERE bot = ?1",
	/* S_DOWN_SINCE */
	"SELECT since, probes FROM bot_down WHERE bot = ?1",
	/* S_FORGET_DOWN: marks of bots that no longer have an http handler */
	"DELETE FROM bot_down WHERE instr(?1, ',' || bot || ',') = 0",
};

struct jobs {
	struct queue		*q;
	sqlite3			*db;
	const struct config	*cfg;
	sqlite3_stmt		*st[S_NSTMT];
	char			*bots;		/* the bots with a token: ",a,b," */
	char			*claim_bots;	/* those of them the claim takes: not left
					 * alone (pull), not held (down) */
	int64_t			 data_version;
	int			 busy;		/* the last failure was another writer */
	int			 calls_added;	/* see jobs_calls_added() */
};

/* Another writer is not an error of ours: the loop tries again soon. */
static int
note_status(struct jobs *j, enum queue_status status, const char *err)
{
	j->busy = status == QUEUE_BUSY;
	if (status == QUEUE_OK)
		return 0;
	if (!j->busy)
		log_err("%s", err);
	return -1;
}

/*
 * The queue's write transaction; end with commit() or rollback().  The wait for
 * another writer is short: this thread also drives the calls in flight, whose
 * timeouts run on while it waits (a late answer would make a call go twice).
 */
static int
begin(struct jobs *j)
{
	char err[512];

	return note_status(j, queue_begin(j->q, JOBS_LOCK_WAIT_MS, err,
	    sizeof(err)), err);
}

static int
commit(struct jobs *j)
{
	char err[512];

	return note_status(j, queue_commit(j->q, err, sizeof(err)), err);
}

static void
rollback(struct jobs *j)
{
	queue_rollback(j->q);
}

int
jobs_busy(const struct jobs *j)
{
	return j->busy;
}

int
jobs_begin(struct jobs *j)
{
	return begin(j);
}

int
jobs_commit(struct jobs *j)
{
	return commit(j);
}

void
jobs_rollback(struct jobs *j)
{
	rollback(j);
}

/* Runs a statement that returns no rows, then resets it. */
static int
run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		log_err("%s: %s", sqlite3_sql(st), sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

/* A statement the caller bound, run as a transaction of its own (or a step of
 * the one it is nested in). */
static int
run_alone(struct jobs *j, sqlite3_stmt *st)
{
	if (begin(j) == -1) {
		sqlite3_clear_bindings(st);
		return -1;
	}
	if (run(st) == -1) {
		rollback(j);
		return -1;
	}
	return commit(j);
}

static int
bots_list(const struct config *cfg, char **out)
{
	size_t	 i, len = 2;
	char	*s;

	for (i = 0; i < cfg->nbots; i++)
		len += strlen(cfg->bots[i].name) + 1;
	/* Only the bots with a token: the others' updates wait for one. */
	if ((s = malloc(len)) == NULL)
		return -1;
	/* Bot names are [a-z0-9_-]: no comma in one. */
	snprintf(s, len, ",");
	for (i = 0; i < cfg->nbots; i++) {
		size_t used = strlen(s);

		if (cfg->bots[i].token != NULL)
			snprintf(s + used, len - used, "%s,", cfg->bots[i].name);
	}
	*out = s;
	return 0;
}

int
jobs_open(struct queue *q, const struct config *cfg, struct jobs **out, char *err,
    size_t errlen)
{
	struct jobs	*j;
	int		 i;

	if ((j = calloc(1, sizeof(*j))) == NULL || bots_list(cfg, &j->bots) == -1 ||
	    (j->claim_bots = strdup(j->bots)) == NULL) {
		if (j != NULL)
			free(j->bots);
		free(j);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	j->q = q;
	j->db = queue_db(q);
	j->cfg = cfg;
	sqlite3_busy_timeout(j->db, JOBS_LOCK_WAIT_MS);
	for (i = 0; i < S_NSTMT; i++) {
		if (sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		    &j->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "preparing the drain's statements: %s",
			    sqlite3_errmsg(j->db));
			jobs_close(j);
			return -1;
		}
	}
	jobs_changed(j);
	*out = j;
	return 0;
}

void
jobs_close(struct jobs *j)
{
	int i;

	if (j == NULL)
		return;
	for (i = 0; i < S_NSTMT; i++)
		sqlite3_finalize(j->st[i]);
	free(j->bots);
	free(j->claim_bots);
	free(j);
}

void
jobs_leave_alone(struct jobs *j, const char *bot)
{
	char	 entry[BOT_NAME_MAX + 3];
	char	*at;
	size_t	 n;

	snprintf(entry, sizeof(entry), ",%s,", bot);
	if ((at = strstr(j->claim_bots, entry)) == NULL)
		return;
	/* Keeps the comma before it, drops the name and the comma after it. */
	n = strlen(entry) - 1;
	memmove(at + 1, at + n + 1, strlen(at + n + 1) + 1);
}

/* Runs one claim statement and leases what it read, appending it to out. */
static int
claim_with(struct jobs *j, sqlite3_stmt *st, int64_t now, int64_t lease_until,
    size_t max, struct claimed *out, size_t *n)
{
	size_t	 first = *n, i;
	int	 rc = SQLITE_DONE;

	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (int64_t)(max - *n));
	sqlite3_bind_text(st, 3, j->claim_bots, -1, SQLITE_STATIC);
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct claimed	*c = &out[*n];
		const void	*body = sqlite3_column_text(st, CL_BODY);
		size_t		 len = (size_t)sqlite3_column_bytes(st, CL_BODY);

		memset(c, 0, sizeof(*c));
		c->row = sqlite3_column_int64(st, CL_ID);
		snprintf(c->bot, sizeof(c->bot), "%s", sqlite3_column_text(st, CL_BOT));
		c->update_id = sqlite3_column_int64(st, CL_UPDATE_ID);
		c->attempts = sqlite3_column_int64(st, CL_ATTEMPTS);
		c->lease_until = lease_until;
		if ((c->body = malloc(len + 1)) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		memcpy(c->body, body, len);
		c->body[len] = '\0';
		c->body_len = len;
		(*n)++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (*n < max && rc != SQLITE_DONE) {
		log_err("claiming updates: %s", sqlite3_errstr(rc));
		return -1;
	}
	st = j->st[S_LEASE];
	for (i = first; i < *n; i++) {
		sqlite3_bind_int64(st, 1, out[i].row);
		sqlite3_bind_int64(st, 2, lease_until);
		if (run(st) == -1)
			return -1;
	}
	return 0;
}

int
jobs_claim(struct jobs *j, int64_t now, size_t max, struct claimed *out, size_t *n)
{
	int64_t lease_until = now + j->cfg->lease_s;

	*n = 0;
	if (strcmp(j->claim_bots, ",") == 0)
		return 0;	/* every bot pulls: nothing to walk the queue for */
	if (begin(j) == -1)
		return -1;
	if (claim_with(j, j->st[S_CLAIM_EXPIRED], now, lease_until, max, out,
	    n) == -1 || (*n < max && claim_with(j, j->st[S_CLAIM], now,
	    lease_until, max, out, n) == -1))
		goto fail;
	if (commit(j) == -1)
		goto fail_unlocked;
	return 0;
fail:
	rollback(j);
fail_unlocked:
	while (*n > 0)
		claimed_free(&out[--*n]);
	return -1;
}

void
claimed_free(struct claimed *c)
{
	free(c->body);
	c->body = NULL;
}

static void
bind_chat(sqlite3_stmt *st, int col, const struct call *c)
{
	if (c->chat_is_int)
		sqlite3_bind_int64(st, col, c->chat_int);
	else if (c->chat[0] != '\0')
		sqlite3_bind_text(st, col, c->chat, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, col);
}

/* Marks one update done and writes its calls, inside an open transaction;
 * *lost is 1 when the lease was no longer ours (nothing written then). */
static int
finish_one(struct jobs *j, const struct claimed *c, const struct call_list *calls,
    const char *why, int64_t now, int *lost)
{
	sqlite3_stmt	*st = j->st[S_FINISH];
	size_t		 i;

	sqlite3_bind_int64(st, 1, c->row);
	sqlite3_bind_int64(st, 2, c->lease_until);
	sqlite3_bind_int64(st, 3, now);
	if (why != NULL)
		sqlite3_bind_text(st, 4, why, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	if (run(st) == -1)
		return -1;
	/* Our lease ran out and another drain took the update: its result
	 * counts, ours is dropped, so the update is recorded once. */
	*lost = sqlite3_changes(j->db) == 0;
	if (*lost)
		return 0;
	st = j->st[S_INSERT_CALL];
	if (calls->n > 0)
		j->calls_added = 1;
	for (i = 0; i < calls->n; i++) {
		const struct call *call = &calls->calls[i];

		sqlite3_bind_text(st, 1, c->bot, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, c->row);
		sqlite3_bind_int64(st, 3, c->update_id);
		bind_chat(st, 4, call);
		sqlite3_bind_text(st, 5, call->method, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, call->params, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, now);
		if (run(st) == -1)
			return -1;
	}
	return 0;
}

int
jobs_finish_many(struct jobs *j, struct claimed *const *c,
    const struct call_list *calls, int *lost, size_t n, int64_t now)
{
	size_t i;

	if (n == 0)
		return 0;
	if (begin(j) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (finish_one(j, c[i], &calls[i], NULL, now, &lost[i]) == -1) {
			rollback(j);
			return -1;
		}
	}
	return commit(j);
}

/* One update's end as a transaction of its own: 1 when its lease was lost (and
 * nothing written), else 0 or -1.  A lost lease still commits, so that a
 * transaction this one is nested in (the claim's) goes on. */
static int
finish_alone(struct jobs *j, const struct claimed *c,
    const struct call_list *calls, const char *why, int64_t now)
{
	int lost = 0;

	if (begin(j) == -1)
		return -1;
	if (finish_one(j, c, calls, why, now, &lost) == -1) {
		rollback(j);
		return -1;
	}
	if (commit(j) == -1)
		return -1;
	return lost;
}

int
jobs_finish(struct jobs *j, const struct claimed *c, const struct call_list *calls,
    int64_t now)
{
	return finish_alone(j, c, calls, NULL, now);
}

int
jobs_skip(struct jobs *j, const struct claimed *c, const struct call_list *calls,
    const char *why, int64_t now)
{
	return finish_alone(j, c, calls, why, now);
}

int
jobs_fail(struct jobs *j, const struct claimed *c, const char *reason, int dead,
    int64_t now)
{
	sqlite3_stmt *st = j->st[S_FAIL];

	sqlite3_bind_int64(st, 1, c->row);
	sqlite3_bind_int64(st, 2, c->lease_until);
	sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, dead);
	sqlite3_bind_int64(st, 5, j->cfg->max_attempts);
	sqlite3_bind_int64(st, 6, now + retry_backoff_s(c->attempts));
	return run_alone(j, st);
}

int
jobs_release(struct jobs *j, const struct claimed *c, const char *reason,
    int64_t not_before)
{
	sqlite3_stmt *st = j->st[S_RELEASE];

	sqlite3_bind_int64(st, 1, c->row);
	sqlite3_bind_int64(st, 2, c->lease_until);
	sqlite3_bind_int64(st, 3, not_before);
	sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
	return run_alone(j, st);
}

/* Bot names are [a-z0-9_-]: ",name," finds exactly one entry of a list. */
void
jobs_hold(struct jobs *j, const char *bot, int held)
{
	char	 entry[BOT_NAME_MAX + 3];
	char	*at;
	size_t	 len, used = strlen(j->claim_bots);

	snprintf(entry, sizeof(entry), ",%s,", bot);
	len = strlen(entry);
	at = strstr(j->claim_bots, entry);
	if (held && at != NULL)
		memmove(at, at + len - 1, strlen(at + len - 1) + 1);
	else if (!held && at == NULL && strstr(j->bots, entry) != NULL)
		/* claim_bots came from bots and only ever loses entries, so the
		 * room for this one is there. */
		memcpy(j->claim_bots + used, entry + 1, len);
}

int
jobs_mark_down(struct jobs *j, const char *bot, int64_t since, int64_t probes,
    int64_t next_probe_at, const char *why)
{
	sqlite3_stmt *st = j->st[S_MARK_DOWN];

	sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_int64(st, 3, probes);
	sqlite3_bind_int64(st, 4, next_probe_at);
	sqlite3_bind_text(st, 5, why, -1, SQLITE_STATIC);
	return run_alone(j, st);
}

int
jobs_mark_up(struct jobs *j, const char *bot)
{
	sqlite3_stmt *st = j->st[S_MARK_UP];

	sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
	return run_alone(j, st);
}

int
jobs_forget_down(struct jobs *j, const char *keep)
{
	sqlite3_stmt *st = j->st[S_FORGET_DOWN];

	sqlite3_bind_text(st, 1, keep, -1, SQLITE_STATIC);
	if (run_alone(j, st) == -1)
		return -1;
	if (sqlite3_changes(j->db) > 0)
		log_info("forgot %d bots marked down that have no http handler now",
		    sqlite3_changes(j->db));
	return 0;
}

int
jobs_down_since(struct jobs *j, const char *bot, int64_t *since, int64_t *probes)
{
	sqlite3_stmt	*st = j->st[S_DOWN_SINCE];
	int		 rc;

	sqlite3_bind_text(st, 1, bot, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*since = sqlite3_column_int64(st, 0);
		*probes = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	log_err("reading bot_down: %s", sqlite3_errstr(rc));
	return -1;
}

int
jobs_due_calls(struct jobs *j, int64_t now, size_t scan, size_t max,
    int (*want)(void *arg, const char *bot, const char *chat), void *arg,
    struct outcall *out, size_t *n)
{
	sqlite3_stmt	*st = j->st[S_DUE_CALLS];
	int		 rc = SQLITE_DONE;

	*n = 0;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (int64_t)scan);
	sqlite3_bind_text(st, 3, j->bots, -1, SQLITE_STATIC);
	while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct outcall *c = &out[*n];

		memset(c, 0, sizeof(*c));
		snprintf(c->bot, sizeof(c->bot), "%s", sqlite3_column_text(st, DC_BOT));
		if (sqlite3_column_type(st, DC_CHAT) != SQLITE_NULL)
			snprintf(c->chat, sizeof(c->chat), "%s",
			    sqlite3_column_text(st, DC_CHAT));
		if (!want(arg, c->bot, c->chat))
			continue;
		c->id = sqlite3_column_int64(st, DC_ID);
		snprintf(c->method, sizeof(c->method), "%s",
		    sqlite3_column_text(st, DC_METHOD));
		if ((c->params = strdup((const char *)sqlite3_column_text(st,
		    DC_PARAMS))) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		c->attempts = sqlite3_column_int64(st, DC_ATTEMPTS);
		(*n)++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_err("reading the outbox: %s", sqlite3_errstr(rc));
		while (*n > 0)
			outcall_free(&out[--*n]);
		return -1;
	}
	return 0;
}

void
outcall_free(struct outcall *c)
{
	free(c->params);
	c->params = NULL;
}

int
jobs_take_calls(struct jobs *j, const int64_t *ids, size_t n, int64_t now,
    int *taken)
{
	sqlite3_stmt	*st = j->st[S_TAKE_CALL];
	size_t		 i;

	if (begin(j) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_int64(st, 2, now + j->cfg->lease_s);
		if (run(st) == -1) {
			rollback(j);
			return -1;
		}
		/* 0 when another drain took it between our read and now. */
		taken[i] = sqlite3_changes(j->db) == 1;
	}
	return commit(j);
}

static int
record_one(struct jobs *j, const struct send_result *r)
{
	sqlite3_stmt *st;

	switch (r->outcome) {
	case SENT:
		st = j->st[S_SENT];
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_int64(st, 2, now_unix());
		sqlite3_bind_text(st, 3, r->result, -1, SQLITE_STATIC);
		break;
	case RETRY_LATER:
		st = j->st[S_RETRY_CALL];
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_int64(st, 2, r->next_attempt_at);
		sqlite3_bind_text(st, 3, r->error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, j->cfg->max_attempts);
		break;
	case WAIT_RETRY_AFTER:
		st = j->st[S_WAIT_CALL];
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_int64(st, 2, r->next_attempt_at);
		sqlite3_bind_text(st, 3, r->error, -1, SQLITE_STATIC);
		break;
	case MIGRATED:
		st = j->st[S_MIGRATE_CALL];
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_int64(st, 2, r->migrate_to);
		sqlite3_bind_text(st, 3, r->error, -1, SQLITE_STATIC);
		break;
	default:
		st = j->st[S_REJECT_CALL];
		sqlite3_bind_int64(st, 1, r->id);
		sqlite3_bind_text(st, 2, r->error, -1, SQLITE_STATIC);
		break;
	}
	return run(st);
}

int
jobs_record(struct jobs *j, const struct send_result *r, size_t n, int64_t now)
{
	size_t i;

	(void)now;
	if (n == 0)
		return 0;
	if (begin(j) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (record_one(j, &r[i]) == -1) {
			rollback(j);
			return -1;
		}
	}
	return commit(j);
}

int
jobs_recover(struct jobs *j, int64_t now)
{
	sqlite3_stmt *st = j->st[S_RECOVER];

	sqlite3_bind_int64(st, 1, now);
	if (run_alone(j, st) == -1)
		return -1;
	if (sqlite3_changes(j->db) > 0) {
		j->calls_added = 1;
		log_warnx("%d calls were being sent by a drain that stopped: sending "
		    "them again", sqlite3_changes(j->db));
	}
	return 0;
}

/* Deletes what retention lets go, a batch per transaction, a bounded number of
 * batches per call (the loop comes back for the rest). */
static int64_t
retain(struct jobs *j, enum queue_purge_what what, int64_t before)
{
	struct queue_purge	 p = { .what = what, .before = before, .bot = NULL,
	    .batch = RETAIN_BATCH, .max_batches = RETAIN_BATCHES_PER_CALL,
	    .max_wait_ms = JOBS_LOCK_WAIT_MS };
	char			 err[512];
	int64_t			 deleted;

	if (note_status(j, queue_purge(j->q, &p, &deleted, err, sizeof(err)),
	    err) == -1)
		return -1;
	return deleted;
}

int64_t
jobs_retain(struct jobs *j, int64_t now)
{
	int64_t calls, updates;

	if ((calls = retain(j, QUEUE_PURGE_SENT_CALLS, now - j->cfg->retain_s)) ==
	    -1 || (updates = retain(j, QUEUE_PURGE_DONE_UPDATES,
	    now - j->cfg->retain_s)) == -1)
		return -1;
	if (calls + updates > 0)
		log_info("retention: deleted %lld sent calls and %lld done updates",
		    (long long)calls, (long long)updates);
	return calls + updates;
}

int64_t
jobs_next_due(struct jobs *j, int64_t now)
{
	sqlite3_stmt	*st = j->st[S_NEXT_DUE];
	int64_t		 when = 0;

	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, ONE_VALUE) != SQLITE_NULL)
		when = sqlite3_column_int64(st, ONE_VALUE);
	sqlite3_reset(st);
	return when;
}

int
jobs_calls_added(struct jobs *j)
{
	int added = j->calls_added;

	j->calls_added = 0;
	return added;
}

int
jobs_changed(struct jobs *j)
{
	sqlite3_stmt	*st = j->st[S_DATA_VERSION];
	int64_t		 v = j->data_version;

	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, ONE_VALUE);
	sqlite3_reset(st);
	if (v == j->data_version)
		return 0;
	j->data_version = v;
	return 1;
}
