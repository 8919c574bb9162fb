/*
 * Calls a bot makes through the local Bot API, passed on to api_url by the
 * drain's own sender: in order per chat, within the same rate limits as the
 * outbox's calls (the bot's one budget), a 429 waited out and sent again (a 429
 * was not executed), and Telegram's answer given back unchanged, status and
 * body, so the bot gets its message_id.  A call the limits would hold longer
 * than hold_limit is answered 429 with retry_after, as Telegram would; a
 * network error is answered 502 and never sent again here: the call may have
 * been executed.  Downloads (/file/bot<token>/<path>) go the same way without
 * the limits, into an unlinked file, so memory stays bounded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "localapi.h"

#define METRIC_SERIES_MAX 1000	/* methods are the bots' words: bounded */

struct pass_call {
	struct pass_call	*next;
	struct request		*req;		/* NULL once the bot went away */
	size_t			 bot;
	char			 chat[CHAT_KEY_MAX];	/* "" when none */
	int64_t			 id;		/* the sender's: negative */
	int64_t			 arrived_ms;
	int			 in_flight;
	int64_t			 slot;		/* in the rate window; -1: none */
	struct raw_call		 rc;
	struct botapi_buffer	 answer;
	char			 answer_type[128];
};

struct pass_series {
	size_t	 bot;
	char	 method[BOTAPI_METHOD_MAX + 1];
	long	 status;
	uint64_t count;
};

struct pass_state {
	struct pass_call	*head;
	int64_t			 next_id;
	size_t			 in_flight;
	struct pass_series	*series;
	size_t			 nseries;
};

int
pass_open(struct localapi *a, char *err, size_t errlen)
{
	if ((a->pass = calloc(1, sizeof(*a->pass))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->pass->next_id = -1;
	return 0;
}

static void
call_free(struct pass_call *pc)
{
	if (pc->rc.answer_fd != -1)
		close(pc->rc.answer_fd);
	botapi_buffer_free(&pc->answer);
	free(pc);
}

void
pass_close(struct localapi *a)
{
	struct pass_call *pc;

	if (a->pass == NULL)
		return;
	while ((pc = a->pass->head) != NULL) {
		a->pass->head = pc->next;
		call_free(pc);
	}
	free(a->pass->series);
	free(a->pass);
	a->pass = NULL;
}

static void
unlink_call(struct localapi *a, struct pass_call *pc)
{
	struct pass_call **pp;

	for (pp = &a->pass->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == pc) {
			*pp = pc->next;
			break;
		}
	if (pc->req != NULL)
		pc->req->pass = NULL;
	call_free(pc);
}

/* Counts an answer for tgq_passthrough_calls_total{bot,method,status}. */
static void
count(struct localapi *a, const struct pass_call *pc, long status)
{
	struct pass_state	*p = a->pass;
	const char		*method = pc->rc.file ? "file" : pc->rc.path;
	struct pass_series	*s, *grown;
	size_t			 i;

	if (p->nseries >= METRIC_SERIES_MAX)
		method = "other";
	for (i = 0; i < p->nseries; i++) {
		s = &p->series[i];
		if (s->bot == pc->bot && s->status == status &&
		    strcmp(s->method, method) == 0) {
			s->count++;
			return;
		}
	}
	if ((grown = realloc(p->series, (p->nseries + 1) * sizeof(*grown))) == NULL)
		return;
	p->series = grown;
	s = &p->series[p->nseries++];
	s->bot = pc->bot;
	snprintf(s->method, sizeof(s->method), "%s", method);
	s->status = status;
	s->count = 1;
}

int
pass_metrics(struct localapi *a, char **out, size_t *len, size_t *cap)
{
	struct pass_state	*p = a->pass;
	size_t			 i, need = 256;
	char			*grown;
	int			 n;

	for (i = 0; i < p->nseries; i++)
		need += 128 + BOTAPI_METHOD_MAX;
	if (*cap - *len < need) {
		if ((grown = realloc(*out, *len + need)) == NULL)
			return -1;
		*out = grown;
		*cap = *len + need;
	}
	n = snprintf(*out + *len, *cap - *len, "# HELP tgq_passthrough_calls_total "
	    "Calls passed through to the Bot API, by answer.\n"
	    "# TYPE tgq_passthrough_calls_total counter\n");
	*len += (size_t)n;
	for (i = 0; i < p->nseries; i++) {
		const struct pass_series *s = &p->series[i];

		n = snprintf(*out + *len, *cap - *len,
		    "tgq_passthrough_calls_total{bot=\"%s\",method=\"%s\","
		    "status=\"%ld\"} %llu\n", a->bots[s->bot].cfg->name, s->method,
		    s->status, (unsigned long long)s->count);
		*len += (size_t)n;
	}
	return 0;
}

void
pass_submit(struct localapi *a, struct request *req)
{
	struct pass_call	*pc, **tail;
	int			 get = !req->is_post || req->content_type == NULL;

	if (a->stopping) {
		api_error(req, 503, "Service Unavailable: tgq-drain is stopping");
		return;
	}
	/* It goes into a header line of ours: one line, printable. */
	if (req->content_type != NULL && (strlen(req->content_type) > 256 ||
	    strpbrk(req->content_type, "\r\n") != NULL)) {
		api_error(req, 400, "Bad Request: wrong Content-Type");
		return;
	}
	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		api_error(req, 500, "Internal Server Error: out of memory");
		return;
	}
	pc->req = req;
	pc->bot = req->bot;
	pc->id = a->pass->next_id--;
	pc->arrived_ms = now_unix_ms();
	pc->slot = -1;
	if (req->kind == REQ_PASS)
		snprintf(pc->chat, sizeof(pc->chat), "%s", req->fields.chat_id);
	pc->rc.token = a->bots[req->bot].cfg->token;
	pc->rc.file = req->kind == REQ_FILE;
	pc->rc.path = pc->rc.file ? req->path : req->method;
	pc->rc.query = req->query;
	pc->rc.content_type = get ? NULL : req->content_type;
	pc->rc.body = req->body.mem;
	pc->rc.body_len = req->body.len;
	pc->rc.body_fd = req->body.fd;
	pc->rc.body_size = (int64_t)req->body.size;
	pc->rc.answer_fd = -1;
	pc->rc.answer_type = pc->answer_type;
	pc->rc.answer_type_len = sizeof(pc->answer_type);
	if (pc->rc.file) {
		if ((pc->rc.answer_fd = api_spool_open()) == -1) {
			free(pc);
			api_error(req, 500, "Internal Server Error: no temporary file");
			return;
		}
	} else
		pc->rc.answer = &pc->answer;
	for (tail = &a->pass->head; *tail != NULL; tail = &(*tail)->next)
		continue;
	*tail = pc;
	req->pass = pc;
	api_suspend(req);
}

/* 1 when an earlier call of the same bot to the same chat still waits or is
 * in flight: a chat's calls go one at a time, in the order they came. */
static int
chat_busy(struct localapi *a, const struct pass_call *pc)
{
	const struct pass_call *q;

	if (pc->chat[0] == '\0')
		return 0;
	for (q = a->pass->head; q != pc; q = q->next)
		if (q->bot == pc->bot && strcmp(q->chat, pc->chat) == 0)
			return 1;
	return 0;
}

/* Held past hold_limit: answered as Telegram answers a flood. */
static void
answer_held(struct localapi *a, struct pass_call *pc, int64_t wait_ms)
{
	char	 buf[256];
	int64_t	 s = (wait_ms + 999) / 1000;
	int	 n;

	if (s < 1)
		s = 1;
	a->counters[pc->bot].held++;
	count(a, pc, 429);
	if (pc->req != NULL) {
		n = snprintf(buf, sizeof(buf), "{\"ok\":false,\"error_code\":429,"
		    "\"description\":\"Too Many Requests: retry after %lld\","
		    "\"parameters\":{\"retry_after\":%lld}}", (long long)s,
		    (long long)s);
		api_answer(pc->req, 429, buf, (size_t)n);
	}
	log_info("bot %s: a %s call held by the rate limits past hold_limit: "
	    "answered 429, retry after %llds", a->bots[pc->bot].cfg->name,
	    pc->rc.path, (long long)s);
}

int64_t
pass_start(struct localapi *a, int64_t now_ms)
{
	struct pass_call	*pc, *next;
	int64_t			 wait = INT64_MAX, w;
	char			 err[256];

	for (pc = a->pass->head; pc != NULL; pc = next) {
		struct ratelimit *rl = a->bots[pc->bot].rl;

		next = pc->next;
		if (pc->in_flight || chat_busy(a, pc))
			continue;
		if (pc->req == NULL) {
			unlink_call(a, pc);
			continue;
		}
		if (sender_in_flight(a->sender) >= (size_t)a->cfg->max_in_flight)
			break;	/* an answer frees a place, and wakes the loop */
		w = pc->rc.file ? 0 : ratelimit_wait(rl, pc->chat[0] != '\0' ?
		    pc->chat : NULL, now_ms);
		if (w > 0) {
			if (now_ms + w - pc->arrived_ms > a->cfg->hold_limit_s * 1000) {
				answer_held(a, pc, w);
				unlink_call(a, pc);
			} else if (w < wait)
				wait = w;
			continue;
		}
		if (!pc->rc.file)
			pc->slot = ratelimit_sent(rl, now_ms);
		if (sender_start_raw(a->sender, pc->id, &pc->rc, err,
		    sizeof(err)) == -1) {
			log_err("bot %s: %s", a->bots[pc->bot].cfg->name, err);
			if (pc->slot >= 0)
				ratelimit_answered(rl, NULL, pc->slot, now_ms - 1000);
			api_error(pc->req, 500, "Internal Server Error: the call "
			    "could not start");
			unlink_call(a, pc);
			continue;
		}
		pc->in_flight = 1;
		a->pass->in_flight++;
	}
	return wait;
}

static struct pass_call *
find_call(struct localapi *a, int64_t id)
{
	struct pass_call *pc;

	for (pc = a->pass->head; pc != NULL; pc = pc->next)
		if (pc->id == id && pc->in_flight)
			return pc;
	return NULL;
}

/* Telegram's answer, unchanged: its status, its body, its Content-Type. */
static void
answer_unchanged(struct localapi *a, struct pass_call *pc, long status)
{
	struct request	*req = pc->req;
	off_t		 size;

	count(a, pc, status);
	if (req == NULL)
		return;
	if (pc->rc.file) {
		if ((size = lseek(pc->rc.answer_fd, 0, SEEK_END)) == -1 ||
		    lseek(pc->rc.answer_fd, 0, SEEK_SET) == -1) {
			api_error(req, 500, "Internal Server Error: the download's file");
			return;
		}
		api_answer_fd(req, (unsigned)status, pc->rc.answer_fd, size,
		    pc->answer_type);
		pc->rc.answer_fd = -1;	/* the answer owns it */
		return;
	}
	if (pc->answer.data == NULL) {
		api_answer(req, (unsigned)status, "", 0);
		return;
	}
	api_answer_owned(req, (unsigned)status, pc->answer.data, pc->answer.len,
	    pc->answer_type);
	memset(&pc->answer, 0, sizeof(pc->answer));
}

int
pass_answered(struct localapi *a, struct sent *s)
{
	struct pass_call	*pc;
	struct ratelimit	*rl;
	struct botapi_answer	*ans = &s->answer;
	int64_t			 now = now_unix_ms(), until;
	const char		*chat;
	char			 esc[160];

	if (s->id >= 0 || (pc = find_call(a, s->id)) == NULL)
		return 0;
	rl = a->bots[pc->bot].rl;
	chat = pc->chat[0] != '\0' ? pc->chat : NULL;
	pc->in_flight = 0;
	a->pass->in_flight--;
	if (pc->slot >= 0 && ratelimit_answered(rl, chat, pc->slot, now) == -1)
		log_warnx("out of memory for the rate limits of a chat");
	pc->slot = -1;
	if (ans->http_status == 0) {
		/* No answer: it may have been executed, so it is not sent again. */
		log_warnx("bot %s: a %s call passed through failed: %s",
		    a->bots[pc->bot].cfg->name, pc->rc.path, log_escape(esc,
		    sizeof(esc), ans->description, strlen(ans->description)));
		count(a, pc, 502);
		if (pc->req != NULL)
			api_error(pc->req, 502, "Bad Gateway: the Bot API did not "
			    "answer; the call may have been executed");
		unlink_call(a, pc);
		return 1;
	}
	if (ans->outcome == BOTAPI_RETRY_AFTER && !pc->rc.file) {
		until = now + ans->retry_after_s * 1000;
		ratelimit_pause(rl, chat, until);
		if (pc->req != NULL && until - pc->arrived_ms <=
		    a->cfg->hold_limit_s * 1000) {
			/* Not executed: it goes again once the pause is over,
			 * still first of its chat. */
			log_info("bot %s: a %s call got 429: sent again in %llds",
			    a->bots[pc->bot].cfg->name, pc->rc.path,
			    (long long)ans->retry_after_s);
			return 1;
		}
		a->counters[pc->bot].held++;
	}
	answer_unchanged(a, pc, ans->http_status);
	unlink_call(a, pc);
	return 1;
}

void
pass_forget(struct localapi *a, struct request *req)
{
	struct pass_call *pc = req->pass;

	if (pc == NULL)
		return;
	req->pass = NULL;
	pc->req = NULL;
	if (!pc->in_flight)
		unlink_call(a, pc);
}

void
pass_flush(struct localapi *a, int all)
{
	struct pass_call *pc, *next;

	for (pc = a->pass->head; pc != NULL; pc = next) {
		next = pc->next;
		if (pc->in_flight && !all)
			continue;
		if (pc->req != NULL)
			api_error(pc->req, 503, "Service Unavailable: tgq-drain is "
			    "stopping");
		if (pc->in_flight) {
			/* Its transfer is never driven again: only forgotten. */
			pc->req->pass = NULL;
			pc->req = NULL;
			continue;
		}
		unlink_call(a, pc);
	}
}

size_t
pass_in_flight(const struct localapi *a)
{
	return a->pass->in_flight;
}
