/*
 * tgq-drain's own interface: the rate limiter (ratelimit.c), handler output and
 * the built-in echo (calls.c), the kinds of handler (handler_kinds.c and one
 * handler_KIND.c each), the retry backoff (backoff.c), the drain's statements on
 * the queue (jobs.c), libcurl transfers (sender.c) and the event loop that ties
 * them (loop.c).  Running exec: handlers' processes is handler.c's (handler.h).
 */
#ifndef DRAIN_H
#define DRAIN_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "tgq.h"
#include "handler.h"

#define CHAT_KEY_MAX 64

struct sender;

/* ratelimit.c */
/*
 * Telegram's limits as sliding windows: at most global_per_s calls a second for
 * the bot, chat_per_s a second for one chat, group_per_min a minute for a group
 * (a chat whose id is negative); 0 turns a limit off.  A 429 pauses a chat, or
 * the bot, until Telegram's retry_after has passed.
 */
struct ratelimit;
struct ratelimit *ratelimit_new(int64_t global_per_s, int64_t chat_per_s,
	    int64_t group_per_min);
void	 ratelimit_free(struct ratelimit *rl);
/* 0 when a call to chat (NULL: no chat) may leave at now_ms, else ms to wait. */
int64_t	 ratelimit_wait(struct ratelimit *rl, const char *chat, int64_t now_ms);
/* ratelimit_wait's answer when only an answer to a call in flight frees a place. */
#define RATELIMIT_UNTIL_ANSWER 1000
/* Counts a call that leaves now; returns its place in the bot's window, to give
 * back to ratelimit_answered. */
int64_t	 ratelimit_sent(struct ratelimit *rl, int64_t now_ms);
/* The call's answer came now: it counts from now for the bot and its chat;
 * -1 when out of memory. */
int	 ratelimit_answered(struct ratelimit *rl, const char *chat, int64_t slot,
	    int64_t now_ms);
/* Holds back calls to chat (NULL: every call of the bot) until until_ms. */
int	 ratelimit_pause(struct ratelimit *rl, const char *chat, int64_t until_ms);
/* Chats the limiter remembers (for tests and memory checks). */
size_t	 ratelimit_chats(const struct ratelimit *rl);

/* calls.c */
struct sqlite3_stmt;
/* One Bot API call a handler asked for. */
struct call {
	char	 method[BOTAPI_METHOD_MAX + 1];
	char	*params;		/* JSON object without "method" */
	char	 chat[CHAT_KEY_MAX];	/* chat_id as text, "" when none */
	int	 chat_is_int;
	int64_t	 chat_int;
};
struct call_list {
	struct call	*calls;
	size_t		 n;
};
#define CALLS_MAX 100
/*
 * Reads a handler's output: one JSON object per line with a "method" of letters,
 * blank lines ignored, at most CALLS_MAX calls.  On failure err says which line
 * and why (never quoting it).  db is any SQLite connection (its JSON functions).
 */
int	 calls_parse(struct sqlite3 *db, const char *out, size_t len,
	    struct call_list *list, char *err, size_t errlen);
/* The built-in echo handler: a text message gets its text back.  *st is the
 * caller's: prepared on db by the first call and reused by the next ones (the
 * caller finalizes it). */
int	 calls_echo(struct sqlite3 *db, struct sqlite3_stmt **st, const char *body,
	    size_t len, struct call_list *list, char *err, size_t errlen);
/* Adds to list a sendMessage to the chat in column chat_col of st's row, with
 * the JSON params in column params_col: the answer of echo and of deny_text.
 * -1 without memory (or for a chat column that holds no chat). */
int	 calls_add_message(struct call_list *list, struct sqlite3_stmt *st,
	    int params_col, int chat_col);
/* An http handler's answer: a body that is a JSON object with a "method" (a
 * webhook reply) is one call, checked as calls_parse checks a line (its line
 * breaks are JSON blanks); any other body asks for nothing. */
int	 calls_reply(struct sqlite3 *db, const char *body, size_t len,
	    struct call_list *list, char *err, size_t errlen);
void	 calls_free(struct call_list *list);

/* jobs.c */
struct jobs;
struct claimed {
	int64_t	 row;		/* updates.id */
	char	 bot[BOT_NAME_MAX + 1];
	int64_t	 update_id;
	int64_t	 attempts;	/* including this one */
	int64_t	 lease_until;
	char	*body;
	size_t	 body_len;
};
struct outcall {
	int64_t	 id;
	char	 bot[BOT_NAME_MAX + 1];
	char	 chat[CHAT_KEY_MAX];
	char	 method[BOTAPI_METHOD_MAX + 1];
	char	*params;
	int64_t	 attempts;
};
enum send_outcome { SENT, RETRY_LATER, WAIT_RETRY_AFTER, MIGRATED, REJECTED };
struct send_result {
	int64_t			 id;
	enum send_outcome	 outcome;
	int64_t			 next_attempt_at;	/* unix s */
	int64_t			 migrate_to;
	char			*error;		/* owned by the result */
	char			*result;	/* owned by the result */
};
int	 jobs_open(struct queue *q, const struct config *cfg, struct jobs **out,
	    char *err, size_t errlen);
void	 jobs_close(struct jobs *j);
/* The claim no longer takes the bot's updates (its handler runs nothing); its
 * calls are still sent. */
void	 jobs_leave_alone(struct jobs *j, const char *bot);
/* Leases up to max updates that are due and first in their chat's line. */
/*
 * Several of the calls below in one transaction (one COMMIT, one fsync): they
 * nest inside jobs_begin() ... jobs_commit(); a failure inside any of them makes
 * the whole transaction fail at jobs_commit() (or end it with jobs_rollback()).
 * Nothing they did may be acted on before jobs_commit() returned 0.
 */
int	 jobs_begin(struct jobs *j);
int	 jobs_commit(struct jobs *j);
void	 jobs_rollback(struct jobs *j);
int	 jobs_claim(struct jobs *j, int64_t now, size_t max, struct claimed *out,
	    size_t *n);
void	 claimed_free(struct claimed *c);
/* The update is done and its calls are in the outbox, in one transaction;
 * returns 0, 1 when the lease was lost (nothing recorded), -1 on error. */
int	 jobs_finish(struct jobs *j, const struct claimed *c,
	    const struct call_list *calls, int64_t now);
/* The same for many updates in one transaction (the built-in handler's
 * batches); lost[i] is 1 when c[i]'s lease was lost. */
int	 jobs_finish_many(struct jobs *j, struct claimed *const *c,
	    const struct call_list *calls, int *lost, size_t n, int64_t now);
/* The same for an update no handler saw: done, with why in last_error. */
int	 jobs_skip(struct jobs *j, const struct claimed *c,
	    const struct call_list *calls, const char *why, int64_t now);
/* The handler failed: the update is retried after a backoff, or dead. */
int	 jobs_fail(struct jobs *j, const struct claimed *c, const char *reason,
	    int dead, int64_t now);
/* The handler could not be reached: the update goes back to its chat's line
 * uncharged (the claim's attempt is taken back), due at not_before. */
int	 jobs_release(struct jobs *j, const struct claimed *c, const char *reason,
	    int64_t not_before);
/* Whether the claim takes a bot's updates: a held bot's stay where they are
 * (its calls are still sent). */
void	 jobs_hold(struct jobs *j, const char *bot, int held);
/* The bot_down table, which other processes read: a row while the bot is
 * down (written again at each failed probe), none once it answers. */
int	 jobs_mark_down(struct jobs *j, const char *bot, int64_t since,
	    int64_t probes, int64_t next_probe_at, const char *why);
int	 jobs_mark_up(struct jobs *j, const char *bot);
/* Deletes the marks of bots not in keep (",a,b,"): a bot whose handler is no
 * longer http, or that is gone from the configuration, is not down. */
int	 jobs_forget_down(struct jobs *j, const char *keep);
/* When the bot was marked down and how often probed, from the table: 1, or 0
 * when it is not down, -1 on error. */
int	 jobs_down_since(struct jobs *j, const char *bot, int64_t *since,
	    int64_t *probes);
/*
 * Calls that are due and first in their chat's line, in order: each is offered to
 * want(arg, bot, chat), and only those it wants (1) are read into out, up to max.
 * At most scan rows are offered; the rest of the queue is not read at all.
 */
int	 jobs_due_calls(struct jobs *j, int64_t now, size_t scan, size_t max,
	    int (*want)(void *arg, const char *bot, const char *chat), void *arg,
	    struct outcall *out, size_t *n);
void	 outcall_free(struct outcall *c);
/* Marks calls as being sent, in one transaction; taken[i] is 1 when this drain
 * got ids[i], 0 when another drain did. */
int	 jobs_take_calls(struct jobs *j, const int64_t *ids, size_t n, int64_t now,
	    int *taken);
int	 jobs_record(struct jobs *j, const struct send_result *r, size_t n,
	    int64_t now);
/* Calls whose drain died while sending go back to the line (they may be sent
 * twice: only those that were in flight). */
int	 jobs_recover(struct jobs *j, int64_t now);
/* Deletes done updates and sent calls older than retain, a batch at a time;
 * returns how many rows went. */
int64_t	 jobs_retain(struct jobs *j, int64_t now);
/* The earliest next_attempt_at after now of anything waiting, or 0. */
int64_t	 jobs_next_due(struct jobs *j, int64_t now);
/* 1 when another connection committed since the last call. */
int	 jobs_changed(struct jobs *j);
/* 1 when this connection put calls in the outbox (or back in line) since the
 * last call: the outbox may have calls due that the last look did not see. */
int	 jobs_calls_added(struct jobs *j);
/* 1 when the last failure was only another writer holding the queue. */
int	 jobs_busy(const struct jobs *j);

/* gate.c */
/*
 * Whether the bot's allowed_users lets a claimed update reach its handler: 1
 * when it does (always, when the list is empty); 0 when it does not, with the
 * reason for its last_error in why and, when the bot has a deny_text and the
 * update is a message, the answer to record in *deny (calls_free it); -1 with
 * why.  *cached is the caller's, as for calls_echo.
 */
int	 gate_check(struct sqlite3 *db, struct sqlite3_stmt **cached,
	    const struct bot_config *bot, const struct claimed *c,
	    struct call_list *deny, char *why, size_t whylen);

/* bot_down.c */
/*
 * A bot whose http handler does not answer is marked down: none of its updates
 * is claimed until a probe (its next updates, after a capped backoff) gets an
 * answer.  A 429 holds the bot the same way for the time it asked, without
 * marking it down.  The mark is kept in the queue (bot_down) for tgq-webhook's
 * /ready and /metrics and for `tgq status`.
 */
struct bot_down {
	int	 down;
	int	 held;		/* the claim leaves its updates */
	int64_t	 since;		/* unix s */
	int64_t	 probes;	/* probes that failed since */
	int64_t	 resume_ms;	/* while held: when to let updates go again */
	int64_t	 answered_us;	/* monotonic: its last answer of any kind */
};
/* At start: a bot the table says is down is probed at once. */
int	 bot_down_load(struct bot_down *b, struct jobs *j, const char *bot);
/* The handler did not answer, or asked to wait wait_s (0: it did not answer). */
void	 bot_down_failed(struct bot_down *b, struct jobs *j, const char *bot,
	    const char *why, int64_t wait_s, int64_t now_ms);
/* The handler answered (any answer but those). */
void	 bot_down_answered(struct bot_down *b, struct jobs *j, const char *bot);
/* 1 when the handler answered something (any update, any answer) after
 * since_us (monotonic). */
int	 bot_down_answered_since(const struct bot_down *b, int64_t since_us);
/* Lets a held bot's updates go once it is time; returns the ms until then
 * (INT64_MAX when it is not held), 0 when released now. */
int64_t	 bot_down_tick(struct bot_down *b, struct jobs *j, const char *bot,
	    int64_t now_ms);

/* backoff.c */
/* Seconds to wait after the failures-th failed attempt: doubling from 1 s, at most
 * 300 s, +-25% at random (random(): the caller seeds it). */
int64_t	 retry_backoff_s(int64_t failures);

/* handler_kinds.c */
/*
 * A bot's handler is of one kind (lib/handler_kinds.h: the table of kinds, the
 * value that names each and the shape of its argument).  A kind is one file,
 * handler_NAME.c, defining handler_NAME (its operations), and one row of
 * HANDLER_KINDS.  A kind handles an update in one of two ways:
 *   - inside the transaction that claimed it, without a process: handle() (echo);
 *   - as a run the loop drives: start(); then pollfds() and deadline() say what
 *     to wait for and step() until it returns 1; then finish() gives the result
 *     (exec:).  abort() ends a run at any time.
 * "http:" and "https:" (POST each update to the bot's webhook server) are
 * runs like exec:, whose transfers ride on the sender (attach()).  "pull" (the
 * local Bot API serves getUpdates) runs nothing: a kind with neither handle()
 * nor start(), whose bot's updates the claim leaves alone (jobs_leave_alone).
 * No kind sees an update the bot's allowed_users keeps
 * out: the claim ends those first (gate.c); whatever serves "pull" is to ask
 * gate_check() the same before it hands an update out.
 */
struct handler_ops {
	/* Reads the configured value (already checked by its row's shape; arg is
	 * what follows the kind's start, NULL for none) into the kind's own
	 * state, at start; release() frees that state. */
	int	 (*setup)(const char *bot, const char *value, const char *arg,
		    void **state, char *err, size_t errlen);
	void	 (*release)(void *state);
	/* Kinds that handle an update inside the claim's transaction: its calls
	 * into *calls; -1 with err makes the update dead.  db is the queue's. */
	int	 (*handle)(void *state, struct sqlite3 *db, const struct claimed *c,
		    struct call_list *calls, char *err, size_t errlen);
	/* Kinds that run: the life of a run, as handler.h describes it. */
	int	 (*start)(void *state, const struct claimed *c,
		    const struct handler_limits *limits, void **run, char *err,
		    size_t errlen);
	int	 (*pollfds)(const void *run, struct pollfd *fds, int max);
	int64_t	 (*deadline)(const void *run);
	int	 (*step)(void *run, int64_t now_ms);
	void	 (*finish)(void *run, struct handler_result *res);
	void	 (*abort)(void *run);
	/* Kinds whose runs are transfers on the sender's multi: given it and
	 * the bot's configuration (its secrets) once, before the first start(). */
	int	 (*attach)(void *state, const struct bot_config *bot,
		    struct sender *s, char *err, size_t errlen);
};

/* The operations of a kind that runs, named PREFIX_setup, PREFIX_start, ... */
#define HANDLER_RUN_OPS(prefix)						\
	.setup = prefix##_setup, .release = prefix##_release,		\
	.start = prefix##_start, .pollfds = prefix##_pollfds,		\
	.deadline = prefix##_deadline, .step = prefix##_step,		\
	.finish = prefix##_finish, .abort = prefix##_abort

#define HANDLER_KIND_OPS(KIND, ops, value, shape, usage)	\
	extern const struct handler_ops handler_##ops;
HANDLER_KINDS(HANDLER_KIND_OPS)
#undef HANDLER_KIND_OPS

/* One bot's handler, set up from its configured value. */
struct bot_handler {
	enum handler_kind		 kind;
	const struct handler_ops	*ops;
	void				*state;
};
/* value NULL is echo, the default.  -1 with err when no kind takes the value or
 * its argument is wrong. */
int	 bot_handler_setup(struct bot_handler *h, const char *bot, const char *value,
	    char *err, size_t errlen);
void	 bot_handler_release(struct bot_handler *h);

/* sender.c */
struct sent {
	int64_t			 id;
	struct botapi_answer	 answer;
};
int	 sender_new(const struct config *cfg, struct sender **out, char *err,
	    size_t errlen);
void	 sender_free(struct sender *s);
/* Starts a call; the sender copies what it needs. */
int	 sender_start(struct sender *s, int64_t id, const char *token,
	    const char *method, const char *params, char *err, size_t errlen);
/*
 * A call passed through as a bot made it (the local Bot API): its body and
 * Content-Type forwarded unchanged, and Telegram's answer kept whole for the
 * bot, in the caller's buffers, which must live until sender_next_done()
 * reported the call (its answer is then also classified in struct sent).
 */
struct raw_call {
	const char		*token;
	const char		*path;		/* the method, or a file's path */
	int			 file;		/* 1: /file/bot<token>/<path> */
	const char		*query;		/* NULL: none */
	const char		*content_type;	/* NULL: a GET */
	const char		*body;		/* in memory, body_len bytes; or */
	size_t			 body_len;
	int			 body_fd;	/* -1, or body_size bytes from 0 */
	int64_t			 body_size;
	struct botapi_buffer	*answer;	/* the answer's body; or */
	char			*answer_type;	/* its Content-Type, "" if none */
	size_t			 answer_type_len;
};
int	 sender_start_raw(struct sender *s, int64_t id, const struct raw_call *rc,
	    char *err, size_t errlen);
size_t	 sender_in_flight(const struct sender *s);
/* Waits for the network, the extra descriptors or the timeout. */
int	 sender_wait(struct sender *s, struct pollfd *extra, unsigned nextra,
	    int timeout_ms);
/* Moves out one finished call; 0 when there is none. */
int	 sender_next_done(struct sender *s, struct sent *out);
/*
 * Transfers of other parts of the drain (the http handler's forwards) ride on
 * the sender's multi: one poll for everything, connections kept alive.  The
 * easy handle's CURLOPT_PRIVATE must point to its struct sender_rider;
 * sender_next_done() takes the handle out of the multi and calls done() with
 * its CURLcode.  sender_drop() takes out a rider that has not finished.
 */
struct sender_rider {
	void	 (*done)(struct sender_rider *r, int curl_result);
};
int	 sender_ride(struct sender *s, CURL *easy);
void	 sender_drop(struct sender *s, CURL *easy);

/* localapi.c */
/*
 * The local Bot API of tgq-drain --follow with listen set: /bot<token>/<method>
 * and /file/bot<token>/<path> on loopback or a unix socket, served by
 * libmicrohttpd inside the drain's loop.  getUpdates comes from the queue for
 * bots with handler = pull; webhook management is answered here; every other
 * call goes through the drain's sender and rate limits.
 */
struct localapi;
struct localapi_env {
	const struct config	*cfg;
	struct queue		*q;
	struct jobs		*jobs;
	struct sender		*sender;
	struct ratelimit	*rl[CONFIG_MAX_BOTS];	/* per cfg->bots[i]; NULL: no token */
};
int	 localapi_open(const struct localapi_env *env, struct localapi **out,
	    char *err, size_t errlen);
void	 localapi_close(struct localapi *a);
/* The descriptor to wait on for it (POLLIN). */
int	 localapi_fd(const struct localapi *a);
/* Serves what arrived, wakes parked polls, starts calls; returns the ms until
 * it must run again without an event (INT64_MAX: not before one). */
int64_t	 localapi_work(struct localapi *a, int64_t now_ms);
/* 1 when the finished call s was the local API's (it is then handled). */
int	 localapi_answered(struct localapi *a, struct sent *s);
/* Stopping: parked polls and calls not yet started are answered now. */
void	 localapi_stop(struct localapi *a);

/* loop.c */
enum drain_mode { DRAIN_ONCE, DRAIN_FOLLOW };
int	 drain_run(const struct config *cfg, struct queue *q, enum drain_mode mode);
/* 0 when the drain has work it can do (a bot with a token), else -1 with why:
 * checked before the queue is opened, so a useless run creates nothing. */
int	 drain_check(const struct config *cfg, char *err, size_t errlen);

#endif
