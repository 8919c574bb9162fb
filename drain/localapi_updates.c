/*
 * getUpdates from the queue, with Telegram's semantics, for bots whose handler
 * is "pull".  An update is handed out as long as it is 'new'; an offset
 * confirms what was handed out below it ('done', in one transaction); a poll
 * with nothing to hand out is parked until tgq-webhook (another process)
 * commits, which the drain notices at once (inotify on the queue's folder,
 * then PRAGMA data_version here), or until its timeout.  Updates are read in
 * arrival order, each batch answered in update_id order, so an update that
 * reaches the queue after a later one was confirmed is still handed out: an
 * offset confirms only updates that were handed out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "localapi.h"

#define LIMIT_MAX 100
#define TIMEOUT_MAX_S 600
#define GATE_ROUNDS 4		/* reads refilling a batch the gate thinned */

enum updates_stmt { U_READ, U_CONFIRM, U_CONFIRM_BELOW, U_NTH_LAST, U_LEASE,
	U_PENDING, U_KINDS, U_DATA_VERSION, U_N };

static const char *const updates_sql[U_N] = {
	/* U_READ: the bot's waiting updates in arrival order (?3: the kinds it
	 * asked for, ",a,b,", or "" for all), then answered in update_id order. */
	"SELECT id, update_id, body FROM (SELECT id, update_id, body"
	"  FROM updates INDEXED BY updates_by_state"
	"  WHERE state = 'new' AND bot = ?1 AND replaced_at IS NULL"
	"    AND (?3 = '' OR instr(?3, ',' || coalesce(kind, '') || ',') > 0)"
	"  ORDER BY id LIMIT ?2) ORDER BY update_id",
	/* U_CONFIRM: an offset confirms what was handed out below it: rows up to
	 * ?3, the last handed out (every row, when this drain handed out none
	 * yet: a drain before it did). */
	"UPDATE updates INDEXED BY updates_by_state SET state = 'done',"
	"  handled_at = ?4, lease_until = NULL"
	" WHERE state = 'new' AND bot = ?1 AND replaced_at IS NULL"
	"   AND update_id < ?2 AND id <= ?3",
	/* U_CONFIRM_BELOW: a negative offset forgets every update before row ?2. */
	"UPDATE updates INDEXED BY updates_by_state SET state = 'done',"
	"  handled_at = ?3, lease_until = NULL"
	" WHERE state = 'new' AND bot = ?1 AND replaced_at IS NULL AND id < ?2",
	/* U_NTH_LAST: the ?2-th waiting update from the end (0: the last). */
	"SELECT id FROM updates INDEXED BY updates_by_state"
	" WHERE state = 'new' AND bot = ?1 AND replaced_at IS NULL"
	" ORDER BY id DESC LIMIT 1 OFFSET ?2",
	/* U_LEASE: an update allowed_users keeps out is leased, then ended by
	 * jobs_skip() as a claim would. */
	"UPDATE updates SET state = 'leased', lease_until = ?2,"
	"  attempts = attempts + 1 WHERE id = ?1 AND state = 'new'",
	/* U_PENDING */
	"SELECT count(*) FROM updates"
	" WHERE bot = ?1 AND state IN ('new', 'leased') AND replaced_at IS NULL",
	/* U_KINDS: allowed_updates, a JSON array of names, as "a,b"; NULL when
	 * it is not an array of strings. */
	"SELECT CASE WHEN json_valid(?1) AND json_type(?1) = 'array'"
	"  AND NOT EXISTS (SELECT 1 FROM json_each(?1) WHERE type <> 'text')"
	"  THEN coalesce((SELECT group_concat(value, ',') FROM json_each(?1)), '')"
	"  END",
	/* U_DATA_VERSION */
	"PRAGMA data_version",
};

struct updates_state {
	sqlite3_stmt	*st[U_N];
	sqlite3_stmt	*gate_st;
	int64_t		 data_version;
	int64_t		 served_row[CONFIG_MAX_BOTS];	/* the last handed out */
};

/* One update read for a poll. */
struct read_row {
	int64_t	 row;
	int64_t	 update_id;
	char	*body;
	size_t	 len;
};

int
updates_open(struct localapi *a, char *err, size_t errlen)
{
	struct updates_state	*u;
	sqlite3			*db = queue_db(a->q);
	int			 i;

	if ((u = calloc(1, sizeof(*u))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->updates = u;
	for (i = 0; i < U_N; i++)
		if (sqlite3_prepare_v3(db, updates_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &u->st[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "preparing getUpdates: %s",
			    sqlite3_errmsg(db));
			return -1;
		}
	(void)updates_wake(a, 0);
	return 0;
}

void
updates_close(struct localapi *a)
{
	struct updates_state	*u = a->updates;
	int			 i;

	if (u == NULL)
		return;
	for (i = 0; i < U_N; i++)
		sqlite3_finalize(u->st[i]);
	sqlite3_finalize(u->gate_st);
	free(u);
	a->updates = NULL;
}

static void
done_with(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	done_with(st);
	if (rc != SQLITE_DONE) {
		log_err("getUpdates: %s", sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}

int64_t
updates_pending(struct localapi *a, const struct api_bot *b)
{
	sqlite3_stmt	*st = a->updates->st[U_PENDING];
	int64_t		 n = -1;

	sqlite3_bind_text(st, 1, b->cfg->name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	done_with(st);
	return n;
}

/* What an offset confirms, in one transaction.  A failure is logged and left:
 * confirming again later is the same. */
static void
confirm(struct localapi *a, size_t bot, int64_t offset)
{
	struct updates_state	*u = a->updates;
	const char		*name = a->bots[bot].cfg->name;
	sqlite3_stmt		*st;
	int64_t			 below = 0;
	int			 rc;

	if (offset < 0) {
		/* Telegram: -N serves the last N updates and forgets the rest. */
		st = u->st[U_NTH_LAST];
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, offset == INT64_MIN ? INT64_MAX :
		    -offset - 1);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			below = sqlite3_column_int64(st, 0);
		done_with(st);
		if (rc != SQLITE_ROW)
			return;		/* fewer than N wait: nothing to forget */
	}
	if (jobs_begin(a->jobs) == -1)
		return;
	if (offset < 0) {
		st = u->st[U_CONFIRM_BELOW];
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, below);
		sqlite3_bind_int64(st, 3, now_unix());
	} else {
		st = u->st[U_CONFIRM];
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, offset);
		sqlite3_bind_int64(st, 3, u->served_row[bot] != 0 ?
		    u->served_row[bot] : INT64_MAX);
		sqlite3_bind_int64(st, 4, now_unix());
	}
	if (step_done(st) == -1) {
		jobs_rollback(a->jobs);
		return;
	}
	if (jobs_commit(a->jobs) == -1)
		log_warnx("bot %s: getUpdates' offset not recorded yet", name);
}

static void
rows_free(struct read_row *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(rows[i].body);
}

/* Ends the updates allowed_users keeps out, as a claim would: done, with why,
 * and deny_text's answer in the outbox. */
static int
skip_refused(struct localapi *a, size_t bot, struct claimed *refused,
    char (*why)[256], struct call_list *deny, size_t n)
{
	sqlite3_stmt	*st = a->updates->st[U_LEASE];
	int64_t		 now = now_unix();
	size_t		 i;
	int		 rc = 0;

	if (jobs_begin(a->jobs) == -1)
		return -1;
	for (i = 0; i < n && rc == 0; i++) {
		refused[i].lease_until = now + a->cfg->lease_s;
		sqlite3_bind_int64(st, 1, refused[i].row);
		sqlite3_bind_int64(st, 2, refused[i].lease_until);
		if (step_done(st) == -1 || jobs_skip(a->jobs, &refused[i], &deny[i],
		    why[i], now) == -1)
			rc = -1;
		else
			log_info("bot %s update %lld: %s%s", a->bots[bot].cfg->name,
			    (long long)refused[i].update_id, why[i], deny[i].n > 0 ?
			    "; deny_text answers it" : "");
	}
	if (rc == -1) {
		jobs_rollback(a->jobs);
		return -1;
	}
	return jobs_commit(a->jobs);
}

/*
 * Reads up to limit updates the bot may have into rows; those allowed_users
 * keeps out are ended here and the batch read again.  Returns how many, or -1.
 */
static int
read_updates(struct localapi *a, size_t bot, int64_t limit, struct read_row *rows)
{
	struct updates_state	*u = a->updates;
	struct api_bot		*b = &a->bots[bot];
	sqlite3_stmt		*st = u->st[U_READ];
	struct claimed		 refused[LIMIT_MAX];
	struct call_list	 deny[LIMIT_MAX];
	char			 why[LIMIT_MAX][256];
	size_t			 n, nref, i;
	int			 round, rc, g;

	for (round = 0; round < GATE_ROUNDS; round++) {
		n = nref = 0;
		sqlite3_bind_text(st, 1, b->cfg->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, limit);
		sqlite3_bind_text(st, 3, b->kinds, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct claimed c;

			memset(&c, 0, sizeof(c));
			c.row = sqlite3_column_int64(st, 0);
			c.update_id = sqlite3_column_int64(st, 1);
			c.body_len = (size_t)sqlite3_column_bytes(st, 2);
			if ((c.body = malloc(c.body_len + 1)) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			memcpy(c.body, sqlite3_column_blob(st, 2), c.body_len);
			c.body[c.body_len] = '\0';
			snprintf(c.bot, sizeof(c.bot), "%s", b->cfg->name);
			g = gate_check(queue_db(a->q), &u->gate_st, b->cfg, &c,
			    &deny[nref], why[nref], sizeof(why[nref]));
			if (g == 1) {
				rows[n++] = (struct read_row){ c.row, c.update_id, c.body,
				    c.body_len };
				continue;
			}
			if (g == 0) {
				refused[nref++] = c;
				continue;
			}
			log_err("bot %s update %lld: %s", b->cfg->name,
			    (long long)c.update_id, why[nref]);
			free(c.body);
			rc = SQLITE_ERROR;
			break;
		}
		done_with(st);
		if (rc != SQLITE_DONE) {
			if (rc != SQLITE_ERROR)
				log_err("getUpdates: %s", sqlite3_errstr(rc));
			rows_free(rows, n);
			n = 0;
		}
		if (nref > 0 && rc == SQLITE_DONE &&
		    skip_refused(a, bot, refused, why, deny, nref) == -1)
			rc = SQLITE_ERROR;
		for (i = 0; i < nref; i++) {
			claimed_free(&refused[i]);
			calls_free(&deny[i]);
		}
		if (rc != SQLITE_DONE) {
			rows_free(rows, n);
			return -1;
		}
		if (nref == 0 || (int64_t)n == limit)
			return (int)n;
		rows_free(rows, n);	/* read again, without the refused ones */
	}
	return 0;
}

/* {"ok":true,"result":[...]} with each update's body as stored, byte for byte. */
static void
answer_rows(struct localapi *a, struct request *req, size_t bot,
    struct read_row *rows, size_t n)
{
	static const char head[] = "{\"ok\":true,\"result\":[", tail[] = "]}";
	size_t	 len = sizeof(head) - 1 + sizeof(tail), i, at;
	char	*out;

	for (i = 0; i < n; i++)
		len += rows[i].len + 1;
	if ((out = malloc(len)) == NULL) {
		api_error(req, 500, "Internal Server Error: out of memory");
		return;
	}
	memcpy(out, head, sizeof(head) - 1);
	at = sizeof(head) - 1;
	for (i = 0; i < n; i++) {
		if (i > 0)
			out[at++] = ',';
		memcpy(out + at, rows[i].body, rows[i].len);
		at += rows[i].len;
		if (rows[i].row > a->updates->served_row[bot])
			a->updates->served_row[bot] = rows[i].row;
	}
	memcpy(out + at, tail, sizeof(tail) - 1);
	at += sizeof(tail) - 1;
	a->counters[bot].served += n;
	api_answer_owned(req, 200, out, at, NULL);
}

/* Answers the poll when it has something, or when must; 1 when answered. */
static int
try_answer(struct localapi *a, struct request *req, size_t bot, int64_t limit,
    int must)
{
	struct read_row	 rows[LIMIT_MAX];
	int		 n;

	if ((n = read_updates(a, bot, limit, rows)) == -1) {
		if (!must)
			return 0;	/* a busy queue: the poll waits on */
		api_error(req, 500, "Internal Server Error: the queue failed");
		return 1;
	}
	if (n == 0 && !must)
		return 0;
	answer_rows(a, req, bot, rows, (size_t)n);
	rows_free(rows, (size_t)n);
	return 1;
}

static int
parse_kinds(struct localapi *a, const char *json, char *kinds, size_t len)
{
	sqlite3_stmt	*st = a->updates->st[U_KINDS];
	const char	*list;
	int		 rc = -1;

	sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    (list = (const char *)sqlite3_column_text(st, 0)) != NULL &&
	    strspn(list, "abcdefghijklmnopqrstuvwxyz_,") == strlen(list) &&
	    strlen(list) + 3 <= len) {
		/* An empty list is every kind the webhook receives. */
		if (*list == '\0')
			kinds[0] = '\0';
		else
			snprintf(kinds, len, ",%s,", list);
		rc = 0;
	}
	done_with(st);
	return rc;
}

/* A number parameter; def when not given, -1 when not a number. */
static int
number(const char *text, int64_t def, int64_t *out)
{
	const char *errstr;

	if (*text == '\0') {
		*out = def;
		return 0;
	}
	return parse_int(text, INT64_MIN, INT64_MAX, out, &errstr);
}

void
updates_serve(struct localapi *a, struct request *req)
{
	struct api_bot	*b = &a->bots[req->bot];
	int64_t		 offset, limit, timeout;

	if (!b->pull) {
		api_error(req, 409, "Conflict: can't use getUpdates method while "
		    "webhook is active; use deleteWebhook to delete the webhook first");
		return;
	}
	if (number(req->fields.offset, 0, &offset) == -1 ||
	    number(req->fields.limit, LIMIT_MAX, &limit) == -1 ||
	    number(req->fields.timeout, 0, &timeout) == -1) {
		api_error(req, 400, "Bad Request: wrong parameter value");
		return;
	}
	if (req->fields.allowed_updates[0] != '\0' && parse_kinds(a,
	    req->fields.allowed_updates, b->kinds, sizeof(b->kinds)) == -1) {
		api_error(req, 400, "Bad Request: can't parse allowed updates");
		return;
	}
	/* Telegram's ranges: limit 1-100, a timeout of 0 or more. */
	limit = limit < 1 ? 1 : limit > LIMIT_MAX ? LIMIT_MAX : limit;
	timeout = timeout < 0 ? 0 : timeout > TIMEOUT_MAX_S ? TIMEOUT_MAX_S : timeout;
	if (b->poll != NULL) {
		struct request *old = b->poll;

		b->poll = NULL;
		old->poll_deadline_ms = 0;
		api_error(old, 409, "Conflict: terminated by other getUpdates "
		    "request; make sure that only one bot instance is running");
	}
	if (offset != 0)
		confirm(a, req->bot, offset);
	if (try_answer(a, req, req->bot, limit, timeout == 0 || a->stopping))
		return;
	b->poll = req;
	b->poll_limit = limit;
	req->poll_deadline_ms = now_unix_ms() + timeout * 1000;
	api_suspend(req);
}

int64_t
updates_wake(struct localapi *a, int64_t now_ms)
{
	struct updates_state	*u = a->updates;
	sqlite3_stmt		*st = u->st[U_DATA_VERSION];
	int64_t			 v = u->data_version, wait = INT64_MAX;
	int			 changed;
	size_t			 i;

	for (i = 0; i < a->nbots && a->bots[i].poll == NULL; i++)
		continue;
	if (i == a->nbots)
		return wait;	/* no poll parked: nothing to look for */
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	changed = v != u->data_version;
	u->data_version = v;
	for (i = 0; i < a->nbots; i++) {
		struct api_bot	*b = &a->bots[i];
		struct request	*req = b->poll;
		int		 due;

		if (req == NULL)
			continue;
		due = now_ms >= req->poll_deadline_ms;
		if ((changed || due) && try_answer(a, req, i, b->poll_limit, due)) {
			b->poll = NULL;
			req->poll_deadline_ms = 0;
			continue;
		}
		if (req->poll_deadline_ms - now_ms < wait)
			wait = req->poll_deadline_ms - now_ms;
	}
	return wait;
}

void
updates_forget(struct localapi *a, struct request *req)
{
	size_t i;

	for (i = 0; i < a->nbots; i++)
		if (a->bots[i].poll == req)
			a->bots[i].poll = NULL;
}

void
updates_flush(struct localapi *a)
{
	size_t i;

	for (i = 0; i < a->nbots; i++) {
		struct request *req = a->bots[i].poll;

		if (req == NULL)
			continue;
		a->bots[i].poll = NULL;
		req->poll_deadline_ms = 0;
		api_answer(req, 200, "{\"ok\":true,\"result\":[]}", 23);
	}
}
