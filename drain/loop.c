/*
 * The drain's event loop: one thread that claims updates, runs their handlers,
 * and sends what they asked for, waiting in one place (curl_multi_poll) for the
 * network, the handlers' pipes, signals and, in follow mode, new rows.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <sqlite3.h>

#include "drain.h"

#define CANDIDATES_MAX 512
#define ONCE_WAIT_S 10		/* --once also waits for retries due this soon */
#define FOLLOW_TICK_MS 1000	/* follow mode looks again at least this often */
#define RECOVER_EVERY_MS 5000
#define RETAIN_EVERY_MS 60000
#define BUSY_RETRY_MS 50
#define CLAIM_MAX 64
#define GIVE_UP_FAILURES 30
#define GATHER_MS 1		/* longest wait for more answers before recording */
#define FINISH_BATCH_MAX 256	/* runs recorded in one transaction */

struct bot_ctx {
	const struct bot_config	*cfg;
	struct bot_handler	 handler;
	struct ratelimit	*rl;
	struct bot_down		 down;		/* its handler's server answers? */
};

/* An update whose handler runs. */
struct running {
	void			*run;
	struct claimed		 upd;
	struct bot_ctx		*bot;
	int64_t			 started_us;	/* for the handler histogram */
};

/* What a call in flight was about, for its answer. */
struct flight {
	int64_t		 id;
	struct bot_ctx	*bot;
	char		 chat[CHAT_KEY_MAX];
	int64_t		 attempts;
	int64_t		 rate_slot;	/* its place in the bot's rate window */
	int64_t		 started_us;	/* for the call histogram */
};

/*
 * Whether the loop takes new work: not while another writer holds the queue, and
 * after queue errors only one try a second; what is under way goes on.
 */
struct admission {
	int	 failures;		/* queue errors in a row */
	int64_t	 next_probe_ms;		/* after failures, the next try */
	int64_t	 busy_until_ms;		/* another writer holds the queue */
};

/* Whether a claim may find something. */
struct claiming {
	int	 all_in_transaction;	/* no bot's handler runs as a process */
	int	 again;
	int64_t	 last_ms;
};

/* Answers not yet recorded; each result owns its text. */
struct answers {
	struct send_result	*r;
	size_t			 n;
	int64_t			 first_ms;	/* when r[0] came */
};

/* What a signal asked for: stop once what is under way has finished. */
struct stopping {
	int	 sigfd;
	int	 requested;
};

/*
 * Whether to look for due calls: an empty look is a write transaction (the
 * calls it finds are taken in it), so it is not repeated in follow mode until
 * something may have changed: calls added by this drain or another process,
 * answers to record, a call held by a limit, or a second gone by (a retry's
 * time may have come).
 */
struct calling {
	int	 dirty;
	int64_t	 last_ms;	/* the last look */
	int64_t	 last_wait;	/* what it said about calls held by a limit */
};

/* Upkeep on a timer. */
struct chores {
	int64_t	 last_recover_ms;
	int64_t	 last_retain_ms;
};

/* The next wake-up, as one turn of the loop decides it. */
struct wakeup {
	int64_t	 wait_ms;
	int64_t	 rate_wait;	/* ms until a call held back by a limit may go */
	int	 progress;	/* something was claimed or sent: look again now */
};

struct drain {
	const struct config	*cfg;
	enum drain_mode		 mode;
	struct queue		*q;
	struct jobs		*jobs;
	struct sender		*sender;
	struct metrics		*metrics;	/* shared with the webhook's /metrics */
	struct bot_ctx		 bots[CONFIG_MAX_BOTS];
	size_t			 nbots;
	struct running		*runs;
	size_t			 nruns;
	struct flight		*flights;	/* the outbox's calls in flight */
	size_t			 nflights;
	struct answers		 answers;
	struct admission	 admission;
	struct claiming		 claiming;
	struct stopping		 stopping;
	struct chores		 chores;
	struct calling		 calling;
	int			 inofd;		/* follow mode: the queue's folder */
	sqlite3_stmt		*gate_st;	/* gate_check's, on the queue */
	struct localapi		*api;		/* follow mode with listen set */
	int64_t			 api_wait_ms;	/* when it must run again */
	uint64_t		 handled, sent;
};

static struct bot_ctx *
find_bot(struct drain *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nbots; i++)
		if (strcmp(d->bots[i].cfg->name, name) == 0)
			return &d->bots[i];
	return NULL;
}

static int
bot_setup(struct bot_ctx *b, const struct bot_config *cfg, char *err, size_t errlen)
{
	b->cfg = cfg;
	if ((b->rl = ratelimit_new(cfg->rate_global, cfg->rate_chat,
	    cfg->rate_group)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return bot_handler_setup(&b->handler, cfg->name, cfg->handler, err, errlen);
}

static const struct handler_ops *
handler_of(struct drain *d, const struct claimed *c)
{
	return find_bot(d, c->bot)->handler.ops;
}

/* A queue that is only busy (another writer) is tried again shortly; real
 * errors count towards giving up. */
static void
note_queue_result(struct drain *d, int rc)
{
	if (rc != -1)
		d->admission.failures = 0;
	else if (jobs_busy(d->jobs))
		d->admission.busy_until_ms = now_unix_ms() + BUSY_RETRY_MS;
	else
		d->admission.failures++;
}

/* The handler's answer goes into the queue: its calls and "done" together.
 * An http handler's answer is a body, which may be a webhook reply. */
static void
record_handled(struct drain *d, struct claimed *c, const char *out, size_t len,
    int webhook_reply)
{
	struct call_list	 calls;
	char			 err[256];
	int			 rc;

	d->claiming.again = 1;	/* its chat's next update may be due now */
	if (webhook_reply)
		rc = calls_reply(queue_db(d->q), out, len, &calls, err, sizeof(err));
	else
		rc = calls_parse(queue_db(d->q), out, len, &calls, err, sizeof(err));
	if (rc == -1) {
		log_warnx("bot %s update %lld: %s: dead", c->bot,
		    (long long)c->update_id, err);
		metrics_add(d->metrics, M_UPDATES_DEAD, 1);
		note_queue_result(d, jobs_fail(d->jobs, c, err, 1, now_unix()));
		return;
	}
	rc = jobs_finish(d->jobs, c, &calls, now_unix());
	note_queue_result(d, rc);
	if (rc == 1)
		log_warnx("bot %s update %lld: the lease ran out before the handler "
		    "finished; another drain's result counts", c->bot,
		    (long long)c->update_id);
	else if (rc == 0) {
		d->handled++;
		metrics_add(d->metrics, M_HANDLED, 1);
		log_debug("bot %s update %lld: handled, %zu calls", c->bot,
		    (long long)c->update_id, calls.n);
	}
	calls_free(&calls);
}

static void
start_one(struct drain *d, struct claimed *c)
{
	struct handler_limits	 limits;
	struct bot_ctx		*bot = find_bot(d, c->bot);
	struct running		*r;
	char			 err[256];

	limits.timeout_ms = d->cfg->handler_timeout_s * 1000;
	limits.max_output = (size_t)d->cfg->max_output;
	limits.max_stderr_logged = 64 * 1024;
	r = &d->runs[d->nruns];
	if (bot->handler.ops->start(bot->handler.state, c, &limits, &r->run, err,
	    sizeof(err)) == -1) {
		log_err("bot %s update %lld: %s", c->bot, (long long)c->update_id, err);
		note_queue_result(d, jobs_fail(d->jobs, c, err, 0, now_unix()));
		claimed_free(c);
		return;
	}
	r->upd = *c;
	r->bot = bot;
	r->started_us = now_monotonic_us();
	d->nruns++;
}

/*
 * Handlers that need no process: a whole batch is handled inside the
 * transaction that claimed it.  Returns how many were handled, for counting once
 * that transaction committed.
 */
static size_t
handle_in_transaction(struct drain *d, struct claimed **batch, size_t n)
{
	struct call_list	 calls[CLAIM_MAX];
	struct claimed		*ok[CLAIM_MAX];
	int			 lost[CLAIM_MAX];
	size_t			 i, nok = 0, handled = 0;
	char			 err[256];
	int			 rc;

	for (i = 0; i < n; i++) {
		struct bot_handler	*h = &find_bot(d, batch[i]->bot)->handler;
		int64_t			 started_us = now_monotonic_us();

		rc = h->ops->handle(h->state, queue_db(d->q), batch[i], &calls[nok],
		    err, sizeof(err));
		metrics_observe(d->metrics, H_HANDLER, batch[i]->bot,
		    now_monotonic_us() - started_us);
		if (rc == -1) {
			log_warnx("bot %s update %lld: %s: dead", batch[i]->bot,
			    (long long)batch[i]->update_id, err);
			metrics_add(d->metrics, M_UPDATES_DEAD, 1);
			(void)jobs_fail(d->jobs, batch[i], err, 1, now_unix());
			continue;
		}
		ok[nok++] = batch[i];
	}
	rc = jobs_finish_many(d->jobs, ok, calls, lost, nok, now_unix());
	for (i = 0; i < nok; i++) {
		if (rc == 0 && lost[i])
			log_warnx("bot %s update %lld: the lease ran out before it was "
			    "handled; another drain's result counts", ok[i]->bot,
			    (long long)ok[i]->update_id);
		else if (rc == 0)
			handled++;
		calls_free(&calls[i]);
	}
	return handled;
}

/*
 * Keeps from claimed[0..n) the updates whose bot's allowed_users lets them reach
 * a handler, moved to the front, and returns how many; the others end here,
 * inside the claim's transaction, before any kind of handler sees them: done,
 * with the reason in last_error and deny_text's answer in the outbox.
 */
static size_t
gate_claimed(struct drain *d, struct claimed *claimed, size_t n)
{
	struct call_list	 deny;
	char			 why[256];
	size_t			 i, kept = 0;
	int			 rc;

	for (i = 0; i < n; i++) {
		struct claimed *c = &claimed[i];

		rc = gate_check(queue_db(d->q), &d->gate_st, find_bot(d, c->bot)->cfg,
		    c, &deny, why, sizeof(why));
		if (rc == 1) {
			claimed[kept++] = *c;
			continue;
		}
		if (rc == 0) {
			log_info("bot %s update %lld: %s%s", c->bot,
			    (long long)c->update_id, why, deny.n > 0 ?
			    "; deny_text answers it" : "");
			(void)jobs_skip(d->jobs, c, &deny, why, now_unix());
			calls_free(&deny);
		} else {
			log_err("bot %s update %lld: %s", c->bot,
			    (long long)c->update_id, why);
			(void)jobs_fail(d->jobs, c, why, 0, now_unix());
		}
		claimed_free(c);
	}
	return kept;
}

/*
 * Claims what can be handled now: as many as the free handler slots take, or,
 * when no bot's handler runs as a process, a batch.  The claim and what the
 * handlers that need no process made of it are one transaction; handler
 * processes start only once it committed.  A claim that found fewer than it asked for is not repeated
 * until the queue changes or a second passes (a backoff may have ended).
 */
static size_t
claim_updates(struct drain *d, int64_t now_ms)
{
	struct claimed	 claimed[CLAIM_MAX];
	struct claimed	*inside[CLAIM_MAX];
	size_t		 i, n = 0, ninside = 0, room, handled = 0, taken = 0;

	if (jobs_changed(d->jobs))
		d->claiming.again = d->calling.dirty = 1;
	if (now_ms - d->claiming.last_ms >= FOLLOW_TICK_MS)
		d->claiming.again = 1;
	if (!d->claiming.again)
		return 0;
	room = d->claiming.all_in_transaction ? CLAIM_MAX :
	    (size_t)d->cfg->handlers - d->nruns;
	if (room == 0)
		return 0;
	if (room > CLAIM_MAX)
		room = CLAIM_MAX;
	d->claiming.last_ms = now_ms;
	if (jobs_begin(d->jobs) == -1) {
		note_queue_result(d, -1);
		return 0;
	}
	/* What was handled inside the transaction lets its chats' next updates go:
	 * claimed again in the same transaction, so a chat with a backlog moves
	 * a batch per COMMIT, not one update (at most `room` in all). */
	for (;;) {
		size_t got, kept, first = ninside;

		if (jobs_claim(d->jobs, now_unix(), room - taken, claimed + n,
		    &got) == -1) {
			jobs_rollback(d->jobs);
			note_queue_result(d, -1);
			for (i = 0; i < n; i++)
				claimed_free(&claimed[i]);
			return 0;
		}
		taken += got;
		kept = gate_claimed(d, claimed + n, got);
		for (i = n; i < n + kept; i++)
			if (handler_of(d, &claimed[i])->handle != NULL)
				inside[ninside++] = &claimed[i];
		n += kept;
		if (ninside > first)
			handled += handle_in_transaction(d, inside + first,
			    ninside - first);
		/* What ended in this transaction lets its chat's next update go. */
		if (got == 0 || (ninside == first && kept == got) || taken == room)
			break;
	}
	if (jobs_commit(d->jobs) == -1) {
		note_queue_result(d, -1);
		for (i = 0; i < n; i++)
			claimed_free(&claimed[i]);
		return 0;
	}
	note_queue_result(d, 0);
	/* their chats may go on */
	d->claiming.again = taken == room || ninside > 0 || taken > n;
	d->handled += handled;
	metrics_add(d->metrics, M_HANDLED, handled);
	for (i = 0; i < n; i++) {
		if (handler_of(d, &claimed[i])->start != NULL)
			start_one(d, &claimed[i]);
		else
			claimed_free(&claimed[i]);
	}
	return taken;	/* those that ended here are progress too */
}

static void
finish_run(struct drain *d, size_t i)
{
	struct running		*r = &d->runs[i];
	struct handler_result	 res;
	char			 last_error[sizeof(res.reason) +
				    sizeof(res.stderr_tail) + 2];

	r->bot->handler.ops->finish(r->run, &res);
	/* No answer in time while the bot answered other updates is this
	 * update's doing (it hangs the bot's handler), not the bot being down:
	 * charged, so that it ends dead instead of holding its bot forever. */
	if (res.status == HANDLER_UNREACHABLE && res.timed_out &&
	    bot_down_answered_since(&r->bot->down, r->started_us)) {
		res.status = HANDLER_FAILED;
		snprintf(res.reason + strlen(res.reason), sizeof(res.reason) -
		    strlen(res.reason), ", while the bot answered other updates");
	}
	metrics_observe(d->metrics, H_HANDLER, r->upd.bot, now_monotonic_us() -
	    r->started_us);
	/* The log has every stderr line already (at info); the row keeps the last
	 * ones, which usually say why ("KeyError: 'text'"). */
	snprintf(last_error, sizeof(last_error), "%s%s%s", res.reason,
	    res.stderr_tail[0] != '\0' ? ": " : "", res.stderr_tail);
	d->claiming.again = 1;	/* a slot is free, and its chat may go on */
	if (res.elapsed_us > 0)
		metrics_observe(d->metrics, H_FORWARD, r->upd.bot, res.elapsed_us);
	if (res.status == HANDLER_UNREACHABLE || res.status == HANDLER_WAIT)
		bot_down_failed(&r->bot->down, d->jobs, r->upd.bot, res.reason,
		    res.wait_s, now_unix_ms());
	else
		bot_down_answered(&r->bot->down, d->jobs, r->upd.bot);
	switch (res.status) {
	case HANDLER_OK:
		record_handled(d, &r->upd, res.output, res.output_len,
		    res.webhook_reply);
		break;
	case HANDLER_UNREACHABLE:
	case HANDLER_WAIT:
		/* Not the update's fault: back in its chat's line, uncharged,
		 * while its bot is held. */
		log_info("bot %s update %lld: %s: not charged, waits for its bot",
		    r->upd.bot, (long long)r->upd.update_id, res.reason);
		note_queue_result(d, jobs_release(d->jobs, &r->upd, res.reason,
		    now_unix() + res.wait_s));
		break;
	case HANDLER_INVALID:
		log_warnx("bot %s update %lld: %s: dead", r->upd.bot,
		    (long long)r->upd.update_id, res.reason);
		metrics_add(d->metrics, M_UPDATES_DEAD, 1);
		note_queue_result(d, jobs_fail(d->jobs, &r->upd, last_error, 1,
		    now_unix()));
		break;
	default:
		log_warnx("bot %s update %lld: handler %s (attempt %lld of %lld)",
		    r->upd.bot, (long long)r->upd.update_id, res.reason,
		    (long long)r->upd.attempts, (long long)d->cfg->max_attempts);
		metrics_add(d->metrics, r->upd.attempts >= d->cfg->max_attempts ?
		    M_UPDATES_DEAD : M_HANDLER_FAILED, 1);
		note_queue_result(d, jobs_fail(d->jobs, &r->upd, last_error, 0,
		    now_unix()));
		break;
	}
	free(res.output);
	claimed_free(&r->upd);
	d->runs[i] = d->runs[--d->nruns];
}

/*
 * Runs that finished together are recorded in one transaction: one COMMIT (one
 * fsync) for a handful of forwards the bot answered at once, where one each
 * would cap the drain at the disk's syncs a second.  Should that COMMIT fail,
 * the updates stay leased and are taken again when their lease ends.
 */
static void
step_runs(struct drain *d, int64_t now_ms)
{
	size_t	 done[FINISH_BATCH_MAX], ndone = 0, i;
	int	 batch;

	for (i = 0; i < d->nruns && ndone < FINISH_BATCH_MAX; i++)
		if (d->runs[i].bot->handler.ops->step(d->runs[i].run, now_ms))
			done[ndone++] = i;
	batch = ndone > 1 && jobs_begin(d->jobs) == 0;
	/* Backwards: finish_run() moves the last run into the slot it frees, and
	 * every finished run after this one is gone by then. */
	while (ndone > 0)
		finish_run(d, done[--ndone]);
	if (batch)
		note_queue_result(d, jobs_commit(d->jobs));
}

/* The calls start_calls() picked, each with its place in its bot's rate window. */
struct picking {
	struct drain	*d;
	int64_t		 now_ms;
	int64_t		 wait_min;	/* ms until a held-back call may go */
	struct bot_ctx	*bots[CANDIDATES_MAX];
	int64_t		 slots[CANDIDATES_MAX];
	size_t		 chosen;
};

/* jobs_due_calls() asks, call by call in the queue's order: may it go now?  A yes
 * is counted in the rate windows at once, so the next candidate sees this one. */
static int
want_call(void *arg, const char *bot_name, const char *chat)
{
	struct picking	*p = arg;
	struct bot_ctx	*bot = find_bot(p->d, bot_name);
	int64_t		 wait = ratelimit_wait(bot->rl, chat, p->now_ms);

	if (wait > 0) {
		if (wait < p->wait_min)
			p->wait_min = wait;
		return 0;
	}
	p->bots[p->chosen] = bot;
	p->slots[p->chosen++] = ratelimit_sent(bot->rl, p->now_ms);
	return 1;
}

/* Not sent after all: the places in the windows are free again at once. */
static void
unpick(struct picking *p, size_t from)
{
	size_t i;

	for (i = from; i < p->chosen; i++)
		ratelimit_answered(p->bots[i]->rl, NULL, p->slots[i], p->now_ms - 1000);
	p->chosen = from;
}

/* What the error of a result says when its text could not be copied. */
static char out_of_memory[] = "out of memory";

static void
forget_answers(struct answers *a)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		free(a->r[i].result);
		if (a->r[i].error != out_of_memory)
			free(a->r[i].error);
	}
	a->n = 0;
}

/*
 * One transaction: the answers that came back, then the calls that are due and
 * allowed by the rate limits, taken; after its COMMIT those calls start.  (An
 * answer goes in before its chat's next call is looked for, and a call is marked
 * as being sent before it goes.)  Returns the ms until a held-back call may go
 * (INT64_MAX when none waits on a limit).
 */
static int64_t
record_and_start_calls(struct drain *d, int64_t now_ms, int *progress)
{
	struct outcall	 cand[CANDIDATES_MAX];
	int64_t		 ids[CANDIDATES_MAX];
	struct picking	 p = { d, now_ms, INT64_MAX, { NULL }, { 0 }, 0 };
	size_t		 room, n = 0, i;
	int		 taken[CANDIDATES_MAX];
	char		 err[256];

	room = (size_t)d->cfg->max_in_flight - sender_in_flight(d->sender);
	if (room > CANDIDATES_MAX)
		room = CANDIDATES_MAX;
	if (room == 0 && d->answers.n == 0)
		return p.wait_min;
	if (jobs_calls_added(d->jobs))
		d->calling.dirty = 1;
	if (d->mode == DRAIN_FOLLOW && d->answers.n == 0 && !d->calling.dirty &&
	    d->calling.last_wait == INT64_MAX &&
	    now_ms - d->calling.last_ms < FOLLOW_TICK_MS)
		return p.wait_min;	/* nothing new since the last look */
	if (jobs_begin(d->jobs) == -1) {
		note_queue_result(d, -1);
		return p.wait_min;
	}
	if ((d->answers.n > 0 && jobs_record(d->jobs, d->answers.r, d->answers.n,
	    now_unix()) == -1) || (room > 0 && jobs_due_calls(d->jobs, now_ms / 1000,
	    CANDIDATES_MAX, room, want_call, &p, cand, &n) == -1)) {
		jobs_rollback(d->jobs);
		goto fail;
	}
	for (i = 0; i < n; i++)
		ids[i] = cand[i].id;
	if (n > 0 && jobs_take_calls(d->jobs, ids, n, now_ms / 1000, taken) == -1) {
		jobs_rollback(d->jobs);
		goto fail;
	}
	if (jobs_commit(d->jobs) == -1)
		goto fail;
	note_queue_result(d, 0);
	forget_answers(&d->answers);
	/* A full look may have left more behind. */
	d->calling.dirty = n == room;
	d->calling.last_ms = now_ms;
	d->calling.last_wait = p.wait_min;
	for (i = 0; i < n; i++) {
		struct outcall	*c = &cand[i];
		struct bot_ctx	*bot = p.bots[i];
		struct flight	*f = &d->flights[d->nflights];

		if (!taken[i] || sender_start(d->sender, c->id, bot->cfg->token,
		    c->method, c->params, err, sizeof(err)) == -1) {
			if (taken[i])
				log_err("call %lld: %s", (long long)c->id, err);
			ratelimit_answered(bot->rl, NULL, p.slots[i], now_ms - 1000);
			continue;
		}
		d->nflights++;
		f->id = c->id;
		f->bot = bot;
		f->attempts = c->attempts;
		f->rate_slot = p.slots[i];
		f->started_us = now_monotonic_us();
		snprintf(f->chat, sizeof(f->chat), "%s", c->chat);
		*progress = 1;
	}
	for (i = 0; i < n; i++)
		outcall_free(&cand[i]);
	return p.wait_min;
fail:
	/* Nothing of it happened: the answers wait, the calls stay queued. */
	note_queue_result(d, -1);
	d->calling.dirty = 1;
	unpick(&p, 0);
	for (i = 0; i < n; i++)
		outcall_free(&cand[i]);
	return p.wait_min;
}

static struct flight *
find_flight(struct drain *d, int64_t id, size_t *index)
{
	size_t i;

	for (i = 0; i < d->nflights; i++) {
		if (d->flights[i].id == id) {
			*index = i;
			return &d->flights[i];
		}
	}
	return NULL;
}

static void
add_result(struct drain *d, const struct flight *f, struct sent *s)
{
	struct botapi_answer	*a = &s->answer;
	struct send_result	*r = &d->answers.r[d->answers.n];
	int64_t			 now = now_unix();
	char			 esc[160];

	memset(r, 0, sizeof(*r));
	r->id = s->id;
	metrics_observe(d->metrics, H_CALL, f->bot->cfg->name, now_monotonic_us() -
	    f->started_us);
	if (ratelimit_answered(f->bot->rl, f->chat, f->rate_slot, now_unix_ms()) == -1)
		log_warnx("out of memory for the rate limits of a chat");
	switch (a->outcome) {
	case BOTAPI_OK:
		r->outcome = SENT;
		r->result = a->result;
		a->result = NULL;
		d->sent++;
		metrics_add(d->metrics, M_SENT, 1);
		metrics_add_bot(d->metrics, BM_CALLS_SENT, f->bot->cfg->name, 1);
		break;
	case BOTAPI_RETRY_AFTER:
		/* Not a failure: Telegram says when; until then nothing goes to the
		 * chat (or, for calls without one, from the bot). */
		r->outcome = WAIT_RETRY_AFTER;
		r->next_attempt_at = now + a->retry_after_s;
		metrics_add(d->metrics, M_429, 1);
		metrics_add_bot(d->metrics, BM_CALLS_429, f->bot->cfg->name, 1);
		ratelimit_pause(f->bot->rl, f->chat, now_unix_ms() +
		    a->retry_after_s * 1000);
		log_warnx("call %lld: 429, waiting %lld s", (long long)r->id,
		    (long long)a->retry_after_s);
		break;
	case BOTAPI_MIGRATE:
		r->outcome = MIGRATED;
		r->migrate_to = a->migrate_to_chat_id;
		metrics_add(d->metrics, M_MIGRATED, 1);
		metrics_add_bot(d->metrics, BM_CALLS_MIGRATED, f->bot->cfg->name, 1);
		log_info("call %lld: chat migrated to %lld", (long long)r->id,
		    (long long)a->migrate_to_chat_id);
		break;
	case BOTAPI_REJECTED:
		r->outcome = REJECTED;
		metrics_add(d->metrics, M_CALLS_DEAD, 1);
		metrics_add_bot(d->metrics, BM_CALLS_DEAD, f->bot->cfg->name, 1);
		log_warnx("call %lld: rejected by Telegram (%lld): dead",
		    (long long)r->id, (long long)a->error_code);
		break;
	default:
		r->outcome = RETRY_LATER;
		metrics_add(d->metrics, f->attempts + 1 >= d->cfg->max_attempts ?
		    M_CALLS_DEAD : M_RETRIED, 1);
		metrics_add_bot(d->metrics, f->attempts + 1 >= d->cfg->max_attempts ?
		    BM_CALLS_DEAD : BM_CALLS_RETRIED, f->bot->cfg->name, 1);
		r->next_attempt_at = now + retry_backoff_s(f->attempts + 1);
		log_warnx("call %lld: attempt %lld failed (HTTP %ld): %s",
		    (long long)r->id, (long long)f->attempts + 1, a->http_status,
		    log_escape(esc, sizeof(esc), a->description,
		    strlen(a->description)));
		break;
	}
	if (a->outcome != BOTAPI_OK) {
		/* Telegram's description, kept as the call's last_error. */
		if ((r->error = strdup(a->description)) == NULL)
			r->error = out_of_memory;
	}
	if (d->answers.n++ == 0)
		d->answers.first_ms = now_unix_ms();
}

static void
collect_answers(struct drain *d)
{
	struct sent	 s;
	struct flight	*f;
	size_t		 i, last;

	while (sender_next_done(d->sender, &s)) {
		if (d->api != NULL && localapi_answered(d->api, &s))
			;	/* a call a bot made through the local API */
		else if ((f = find_flight(d, s.id, &i)) != NULL) {
			add_result(d, f, &s);
			/* The flight table is as long as the outbox's calls in
			 * flight. */
			last = --d->nflights;
			d->flights[i] = d->flights[last];
			memset(&d->flights[last], 0, sizeof(d->flights[last]));
		}
		botapi_answer_free(&s.answer);
	}
}

/* Answers are kept until the queue has them: losing one would send it twice.
 * (While the drain works, record_and_start_calls() records them.) */
static void
record_answers(struct drain *d)
{
	if (d->answers.n == 0)
		return;
	if (jobs_record(d->jobs, d->answers.r, d->answers.n, now_unix()) == -1) {
		note_queue_result(d, -1);
		return;
	}
	note_queue_result(d, 0);
	forget_answers(&d->answers);
}

static int
open_signals(struct drain *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (d->stopping.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		return -1;
	/* Handlers that close their stdin early must not kill the drain. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Follow mode wakes when the queue's folder changes.  SQLite's writes to the WAL
 * there come before their commit is visible here, so tgq's writers end a stored
 * batch with a write to <database>-lock, after the commit.  Without inotify, the
 * tick alone finds new rows. */
static void
open_watch(struct drain *d)
{
	char	 dir[PATH_MAX];
	char	*slash;

	d->inofd = -1;
	if (d->mode != DRAIN_FOLLOW)
		return;
	snprintf(dir, sizeof(dir), "%s", d->cfg->database);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((d->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(d->inofd, dir, IN_MODIFY | IN_CLOSE_WRITE |
	    IN_MOVED_TO | IN_CREATE) == -1) {
		log_warnx("%s: cannot watch (%s); looking for new rows every %d ms",
		    dir, strerror(errno), FOLLOW_TICK_MS);
		if (d->inofd != -1)
			close(d->inofd);
		d->inofd = -1;
	}
}

static void
read_signals(struct drain *d)
{
	struct signalfd_siginfo si;

	while (read(d->stopping.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			continue;	/* configuration is read at start only */
		if (!d->stopping.requested)
			log_info("signal %u: finishing the handlers and calls in "
			    "progress", si.ssi_signo);
		if (!d->stopping.requested && d->api != NULL)
			localapi_stop(d->api);
		d->stopping.requested = 1;
	}
}

static void
drain_watch(struct drain *d)
{
	char buf[4096];

	if (d->inofd != -1)
		while (read(d->inofd, buf, sizeof(buf)) > 0)
			continue;
}

int
drain_check(const struct config *cfg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < cfg->nbots; i++)
		if (cfg->bots[i].token != NULL)
			return 0;
	snprintf(err, errlen, "no bot has a token: set TGQ_BOT_TOKEN, "
	    "TGQ_BOT_TOKEN_FILE or token_file in [bot NAME]");
	return -1;
}

static int
setup(struct drain *d, char *err, size_t errlen)
{
	size_t i;

	d->stopping.sigfd = d->inofd = -1;
	if (drain_check(d->cfg, err, errlen) == -1)
		return -1;
	for (i = 0; i < d->cfg->nbots; i++) {
		const struct bot_config *b = &d->cfg->bots[i];

		if (b->token == NULL) {
			log_warnx("bot %s has no token: its updates wait", b->name);
			continue;
		}
		if (bot_setup(&d->bots[d->nbots++], b, err, errlen) == -1)
			return -1;
	}
	d->claiming.all_in_transaction = 1;
	d->claiming.again = 1;
	for (i = 0; i < d->nbots; i++)
		if (d->bots[i].handler.ops->start != NULL)
			d->claiming.all_in_transaction = 0;
	if ((d->runs = calloc((size_t)d->cfg->handlers, sizeof(*d->runs))) == NULL ||
	    (d->flights = calloc((size_t)d->cfg->max_in_flight + 1,
	    sizeof(*d->flights))) == NULL ||
	    (d->answers.r = calloc((size_t)d->cfg->max_in_flight,
	    sizeof(*d->answers.r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (open_signals(d) == -1) {
		snprintf(err, errlen, "signals: %s", strerror(errno));
		return -1;
	}
	open_watch(d);
	return 0;
}

/* Bots whose handler runs nothing: the claim leaves their updates to whoever
 * serves them (the local Bot API), and says so when nothing will. */
static void
leave_alone_pulled(struct drain *d)
{
	size_t i;

	for (i = 0; i < d->nbots; i++) {
		const struct handler_ops *ops = d->bots[i].handler.ops;

		if (ops->handle != NULL || ops->start != NULL)
			continue;
		jobs_leave_alone(d->jobs, d->bots[i].cfg->name);
		if (d->mode != DRAIN_FOLLOW || d->cfg->listen == NULL ||
		    d->cfg->listen[0] == '\0')
			log_info("bot %s: handler = pull, served by tgq-drain --follow "
			    "with listen set; its updates wait here",
			    d->bots[i].cfg->name);
	}
}

/* The local Bot API: requests, parked polls the queue may answer now, calls
 * passed through; when it must run again. */
static void
serve_api(struct drain *d)
{
	int64_t now_ms = now_unix_ms(), wait;

	if (d->api == NULL)
		return;
	wait = localapi_work(d->api, now_ms);
	d->api_wait_ms = wait == INT64_MAX ? INT64_MAX : now_ms + wait;
}

/* The local Bot API, in follow mode when listen is set: it shares the queue,
 * the sender and each bot's rate limits with the rest of the drain. */
static int
open_api(struct drain *d, char *err, size_t errlen)
{
	struct localapi_env	 env;
	size_t			 i;

	if (d->mode != DRAIN_FOLLOW || d->cfg->listen == NULL ||
	    d->cfg->listen[0] == '\0')
		return 0;
	memset(&env, 0, sizeof(env));
	env.cfg = d->cfg;
	env.q = d->q;
	env.jobs = d->jobs;
	env.sender = d->sender;
	for (i = 0; i < d->cfg->nbots; i++) {
		struct bot_ctx *b = find_bot(d, d->cfg->bots[i].name);

		env.rl[i] = b != NULL ? b->rl : NULL;
	}
	if (localapi_open(&env, &d->api, err, errlen) == -1)
		return -1;
	/* exec: handlers inherit it, so that their calls go through here too,
	 * within the limits, and they see the answers. */
	if (d->cfg->listen[0] != '/') {
		char url[256];

		snprintf(url, sizeof(url), "http://%s", d->cfg->listen);
		if (setenv("TGQ_API_URL", url, 1) == -1)
			log_warnx("TGQ_API_URL for the handlers: %s", strerror(errno));
	}
	serve_api(d);
	return 0;
}

/* The kinds that ride on the sender get it, and a bot marked down by an
 * earlier run is probed first. */
static int
attach_bots(struct drain *d, char *err, size_t errlen)
{
	char	keep[CONFIG_MAX_BOTS * (BOT_NAME_MAX + 1) + 2] = ",";
	size_t	i, used;

	for (i = 0; i < d->nbots; i++) {
		struct bot_ctx *b = &d->bots[i];

		if (b->handler.ops->attach == NULL)
			continue;
		if (b->handler.ops->attach(b->handler.state, b->cfg, d->sender, err,
		    errlen) == -1 || bot_down_load(&b->down, d->jobs,
		    b->cfg->name) == -1)
			return -1;
		used = strlen(keep);
		snprintf(keep + used, sizeof(keep) - used, "%s,", b->cfg->name);
	}
	/* Not fatal: a stale mark only keeps /ready at 503 until the next run. */
	(void)jobs_forget_down(d->jobs, keep);
	return 0;
}

static void
teardown(struct drain *d)
{
	size_t i;

	localapi_close(d->api);
	for (i = 0; i < d->nruns; i++) {
		d->runs[i].bot->handler.ops->abort(d->runs[i].run);
		claimed_free(&d->runs[i].upd);
	}
	if (d->answers.r != NULL)
		forget_answers(&d->answers);
	for (i = 0; i < d->nbots; i++) {
		ratelimit_free(d->bots[i].rl);
		bot_handler_release(&d->bots[i].handler);
	}
	sqlite3_finalize(d->gate_st);
	free(d->runs);
	free(d->flights);
	free(d->answers.r);
	if (d->stopping.sigfd != -1)
		close(d->stopping.sigfd);
	if (d->inofd != -1)
		close(d->inofd);
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Nothing is under way: no handler runs, no call is in flight, no answer waits. */
static int
idle(struct drain *d)
{
	return d->nruns == 0 && sender_in_flight(d->sender) == 0 &&
	    d->answers.n == 0;
}

/* In --once mode: 1 when nothing is left to do now or within ONCE_WAIT_S. */
static int
once_done(struct drain *d, struct wakeup *w)
{
	int64_t now = now_unix(), next;

	if (w->progress || !idle(d) || w->rate_wait != INT64_MAX)
		return 0;
	next = jobs_next_due(d->jobs, now);
	if (next == 0 || next > now + ONCE_WAIT_S)
		return 1;
	w->wait_ms = min64(w->wait_ms, (next - now) * 1000);
	return 0;
}

static int
wait_for_events(struct drain *d, int64_t wait_ms)
{
	struct pollfd	 fds[64];
	unsigned	 n = 0;
	size_t		 i;

	fds[n].fd = d->stopping.sigfd;
	fds[n++].events = POLLIN;
	if (d->inofd != -1) {
		fds[n].fd = d->inofd;
		fds[n++].events = POLLIN;
	}
	if (d->api != NULL) {
		fds[n].fd = localapi_fd(d->api);
		fds[n++].events = POLLIN;
		wait_ms = min64(wait_ms, d->api_wait_ms - now_unix_ms());
	}
	for (i = 0; i < d->nruns; i++) {
		const struct handler_ops *ops = d->runs[i].bot->handler.ops;

		wait_ms = min64(wait_ms, ops->deadline(d->runs[i].run) - now_unix_ms());
		n += (unsigned)ops->pollfds(d->runs[i].run, fds + n,
		    (int)(sizeof(fds) / sizeof(fds[0]) - n));
	}
	if (wait_ms < 0)
		wait_ms = 0;
	return sender_wait(d->sender, fds, n, (int)min64(wait_ms, INT_MAX));
}

/*
 * Answers that arrive close together are recorded together: while fewer have
 * come than are still in flight, the loop waits for the others, GATHER_MS at
 * most.  One transaction then records them and starts as many new calls, where
 * recording each as it came would cost a COMMIT (an fsync) per answer or two.
 */
static int
gathering(struct drain *d, int64_t now_ms)
{
	return d->answers.n > 0 && d->answers.n < sender_in_flight(d->sender) &&
	    now_ms - d->answers.first_ms < GATHER_MS;
}

/* Give up on a queue that keeps failing (systemd starts us again), but never
 * with answers not yet recorded: they would go twice. */
static int
given_up(struct drain *d)
{
	if (d->admission.failures < GIVE_UP_FAILURES || !idle(d))
		return 0;
	log_err("the queue failed %d times in a row: stopping", d->admission.failures);
	return 1;
}

/* While the queue fails or is held by another writer, take no new work, but for
 * one try a second; what is under way finishes and its answers wait. */
static int
admitted(struct drain *d, int64_t now_ms)
{
	struct admission	*a = &d->admission;
	int			 yes;

	yes = !d->stopping.requested && now_ms >= a->busy_until_ms &&
	    (a->failures == 0 || now_ms >= a->next_probe_ms);
	if (yes && a->failures > 0)
		a->next_probe_ms = now_ms + 1000;
	return yes;
}

static void
do_chores(struct drain *d, int64_t now_ms)
{
	if (now_ms - d->chores.last_recover_ms >= RECOVER_EVERY_MS) {
		note_queue_result(d, jobs_recover(d->jobs, now_ms / 1000));
		d->chores.last_recover_ms = now_ms;
	}
	if (d->mode == DRAIN_FOLLOW &&
	    now_ms - d->chores.last_retain_ms >= RETAIN_EVERY_MS) {
		jobs_retain(d->jobs, now_ms / 1000);
		d->chores.last_retain_ms = now_ms;
	}
}

/* Bots held because their handler did not answer, or asked to wait: each is
 * let go (probed) when its time comes. */
static void
release_held_bots(struct drain *d, int64_t now_ms, struct wakeup *w)
{
	int64_t	 t;
	size_t	 i;

	for (i = 0; i < d->nbots; i++) {
		struct bot_ctx *b = &d->bots[i];

		if ((t = bot_down_tick(&b->down, d->jobs, b->cfg->name, now_ms)) == 0)
			d->claiming.again = 1;
		w->wait_ms = min64(w->wait_ms, t);
	}
}

/* Updates claimed and handled, answers recorded, calls started. */
static void
work(struct drain *d, int64_t now_ms, struct wakeup *w)
{
	do_chores(d, now_ms);
	release_held_bots(d, now_ms, w);
	w->progress |= claim_updates(d, now_ms) > 0;
	if (gathering(d, now_ms))
		w->wait_ms = min64(w->wait_ms, GATHER_MS);
	else {
		w->rate_wait = record_and_start_calls(d, now_unix_ms(), &w->progress);
		w->wait_ms = min64(w->wait_ms, w->rate_wait);
	}
}

/* A failing queue is tried again within a second, a busy one when its writer is
 * expected to be done; answers not gathering more are recorded at once. */
static void
plan_wakeup(struct drain *d, int64_t now_ms, struct wakeup *w)
{
	if (d->admission.failures > 0)
		w->wait_ms = min64(w->wait_ms, 1000);
	else if (d->admission.busy_until_ms > now_ms)
		w->wait_ms = min64(w->wait_ms, d->admission.busy_until_ms - now_ms);
	else if (d->answers.n > 0 && !gathering(d, now_ms))
		w->wait_ms = 0;
	if (w->progress)
		w->wait_ms = 0;
}

/* Stopping ends once what is under way has finished; --once ends when nothing
 * is due soon (not while the queue fails or is busy: it may hide work). */
static int
finished(struct drain *d, int64_t now_ms, struct wakeup *w)
{
	if (d->stopping.requested)
		return idle(d);
	if (d->mode != DRAIN_ONCE || d->admission.failures > 0 ||
	    d->admission.busy_until_ms > now_ms)
		return 0;
	return once_done(d, w);
}

/* What woke the loop: signals, new rows, handlers' output and exits, answers. */
static void
take_events(struct drain *d)
{
	read_signals(d);
	drain_watch(d);
	/* First: it also ends the transfers of runs that ride on the sender. */
	collect_answers(d);
	step_runs(d, now_unix_ms());
	serve_api(d);
}

static int
run_loop(struct drain *d)
{
	struct wakeup	 w;
	int64_t		 now_ms;

	note_queue_result(d, jobs_recover(d->jobs, now_unix()));
	for (;;) {
		now_ms = now_unix_ms();
		w = (struct wakeup){ FOLLOW_TICK_MS, INT64_MAX, 0 };
		if (given_up(d))
			return -1;
		if (admitted(d, now_ms))
			work(d, now_ms, &w);
		else if (d->stopping.requested || d->admission.failures > 0)
			record_answers(d);
		plan_wakeup(d, now_ms, &w);
		if (finished(d, now_ms, &w))
			break;
		if (wait_for_events(d, w.wait_ms) == -1) {
			log_err("waiting for the network failed");
			return -1;
		}
		take_events(d);
	}
	if (d->mode == DRAIN_ONCE)
		jobs_retain(d->jobs, now_unix());
	return 0;
}

int
drain_run(const struct config *cfg, struct queue *q, enum drain_mode mode)
{
	struct drain	 d;
	char		 err[512];
	int		 rc = 1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.mode = mode;
	d.q = q;
	srandom((unsigned)now_unix_ms() ^ (unsigned)getpid());
	if (setup(&d, err, sizeof(err)) == -1 ||
	    jobs_open(q, cfg, &d.jobs, err, sizeof(err)) == -1 ||
	    sender_new(cfg, &d.sender, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto done;
	}
	leave_alone_pulled(&d);
	if (attach_bots(&d, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto done;
	}
	if (open_api(&d, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto done;
	}
	d.metrics = metrics_open(cfg->database);
	log_info("draining %s (%s mode, %zu bots)", cfg->database,
	    mode == DRAIN_ONCE ? "once" : "follow", d.nbots);
	if (run_loop(&d) == 0)
		rc = 0;
	log_info("stopped: %llu updates handled, %llu calls sent",
	    (unsigned long long)d.handled, (unsigned long long)d.sent);
done:
	teardown(&d);
	metrics_close(d.metrics);
	sender_free(d.sender);
	jobs_close(d.jobs);
	return rc;
}
