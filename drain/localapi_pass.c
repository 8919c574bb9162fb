/*
 * Calls a bot makes through the local Bot API, passed on to api_url by the
 * drain's own sender: in order per chat, within the same rate limits as the
 * outbox's calls (the bot's one budget), a 429 waited out and sent again (a 429
 * was not executed), and Telegram's answer given back unchanged, status and
 * body, so the bot gets its message_id.  A call the limits would hold longer
 * than hold_limit is answered 429 with retry_after, as Telegram would; a
 * network error is answered 502 and never sent again here: the call may have
 * been executed.  Downloads (/file/bot<token>/<path>, GET or HEAD) go the same
 * way without the limits, and reach the bot as they come: its answer starts
 * with Telegram's status and headers, and the body passes through a buffer of
 * STREAM_BUFFER bytes, so memory stays bounded whatever the file's size and
 * the first bytes do not wait for the last.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "localapi.h"

#define METRIC_SERIES_MAX 1000	/* methods are the bots' words: bounded */
#define STREAM_BUFFER (256 * 1024)	/* a download's bytes between both sides */

/*
 * A download on its way: Telegram's bytes wait here for the bot.  When the
 * buffer is full the transfer is paused (libcurl reads no more, TCP holds
 * Telegram back); when it is empty the bot's connection is suspended until
 * more come, rather than asked again and again.  Held by its call while the
 * transfer runs and by the bot's answer while that is sent; freed when both
 * are done with it.
 */
struct stream {
	int			 refs;
	struct localapi		*api;
	struct pass_call	*call;		/* NULL once the call is gone */
	struct MHD_Connection	*conn;		/* NULL once the bot went away */
	struct raw_stream	 rs;
	int64_t			 length;	/* Content-Length; -1: not given */
	char			 type[128];	/* Content-Type */
	int			 answered;	/* the bot has the status */
	int			 ended;		/* the transfer finished */
	int			 failed;	/* ... before the whole body */
	int			 paused;	/* the transfer waits for room */
	size_t			 need;		/* the room it waits for */
	int			 waiting;	/* the bot's connection waits for bytes */
	char			*buf;		/* a ring of STREAM_BUFFER bytes */
	size_t			 head, len;
	uint64_t		 received;
};

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
	struct stream		*stream;	/* a download */
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
stream_release(void *cls)
{
	struct stream *st = cls;

	if (--st->refs > 0)
		return;
	free(st->buf);
	free(st);
}

static void
call_free(struct pass_call *pc)
{
	if (pc->stream != NULL) {
		pc->stream->call = NULL;
		stream_release(pc->stream);
	}
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

/* ---- downloads, as they come ---------------------------------------------- */

/* A connection waiting for bytes has some now (or the end). */
static void
stream_wake(struct stream *st)
{
	if (st->waiting && st->conn != NULL) {
		st->waiting = 0;
		MHD_resume_connection(st->conn);
		st->api->resumed = 1;
	}
}

/* libmicrohttpd's reader of the bot's answer. */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream	*st = cls;
	size_t		 n, first;

	(void)pos;
	if (st->len > 0) {
		n = st->len < max ? st->len : max;
		first = STREAM_BUFFER - st->head < n ? STREAM_BUFFER - st->head : n;
		memcpy(buf, st->buf + st->head, first);
		memcpy(buf + first, st->buf, n - first);
		st->head = (st->head + n) % STREAM_BUFFER;
		st->len -= n;
		return (ssize_t)n;	/* pass_continue() lets a paused transfer go */
	}
	if (st->ended)
		return st->failed ? MHD_CONTENT_READER_END_WITH_ERROR :
		    MHD_CONTENT_READER_END_OF_STREAM;
	if (st->conn == NULL)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	st->waiting = 1;
	MHD_suspend_connection(st->conn);
	return 0;
}

/* Telegram's status and headers are in: the bot's answer starts. */
static int
stream_answer(struct stream *st, long status)
{
	struct pass_call	*pc = st->call;
	struct request		*req = pc != NULL ? pc->req : NULL;

	st->answered = 1;
	if (pc != NULL)
		count(st->api, pc, status);
	if (req == NULL)
		return -1;
	st->conn = req->conn;
	st->refs++;	/* the answer's */
	if (api_answer_reader(req, (unsigned)status, st->length, st->type,
	    stream_read, st, stream_release) == -1) {
		st->refs--;
		st->conn = NULL;
		api_error(req, 500, "Internal Server Error: out of memory");
		return -1;
	}
	return 0;
}

/* A header line's value when it is name's, without the spaces around it. */
static const char *
header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
	    line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*vlen = len;
	return line;
}

static size_t
stream_header(void *arg, const char *line, size_t len)
{
	struct stream	*st = arg;
	const char	*v;
	size_t		 vlen, i;
	int64_t		 n;
	long		 status = 0;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		st->length = -1;	/* a new block of headers */
		st->type[0] = '\0';
	} else if ((v = header_value(line, len, "Content-Length", &vlen)) != NULL) {
		for (i = 0, n = 0; i < vlen && v[i] >= '0' && v[i] <= '9' &&
		    n < INT64_MAX / 10 - 10; i++)
			n = n * 10 + (v[i] - '0');
		st->length = i == vlen && vlen > 0 ? n : -1;
	} else if ((v = header_value(line, len, "Content-Type", &vlen)) != NULL) {
		for (i = 0; i < vlen && (unsigned char)v[i] >= 0x20 && v[i] != 0x7f; i++)
			continue;
		if (i == vlen && vlen < sizeof(st->type)) {
			memcpy(st->type, v, vlen);
			st->type[vlen] = '\0';
		}
	} else if (len <= 2 && (line[0] == '\r' || line[0] == '\n')) {
		/* The block's end: the answer's, unless it was a 1xx. */
		curl_easy_getinfo(st->rs.easy, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && !st->answered && stream_answer(st, status) == -1)
			return 0;	/* the transfer ends */
	}
	return len;
}

static size_t
stream_body(void *arg, const char *data, size_t n)
{
	struct stream	*st = arg;
	size_t		 at, first;
	long		 status = 0;

	if (!st->answered) {
		curl_easy_getinfo(st->rs.easy, CURLINFO_RESPONSE_CODE, &status);
		if (stream_answer(st, status) == -1)
			return 0;
	}
	if (st->conn == NULL)
		return 0;	/* nobody to give it to: the transfer ends */
	if (st->buf == NULL && (st->buf = malloc(STREAM_BUFFER)) == NULL) {
		log_err("local API: out of memory for a download");
		return 0;
	}
	if (n > STREAM_BUFFER - st->len) {
		if (n > STREAM_BUFFER)
			return 0;	/* libcurl's pieces are far smaller */
		st->paused = 1;
		st->need = n;
		return CURL_WRITEFUNC_PAUSE;
	}
	at = (st->head + st->len) % STREAM_BUFFER;
	first = STREAM_BUFFER - at < n ? STREAM_BUFFER - at : n;
	memcpy(st->buf + at, data, first);
	memcpy(st->buf, data + first, n - first);
	st->len += n;
	st->received += n;
	stream_wake(st);
	return n;
}

static struct stream *
stream_new(struct localapi *a, struct pass_call *pc, int head)
{
	struct stream *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->refs = 1;	/* the call's */
	st->api = a;
	st->call = pc;
	st->length = -1;
	st->rs.header = stream_header;
	st->rs.body = stream_body;
	st->rs.arg = st;
	st->rs.head = head;
	return st;
}

void
pass_continue(struct localapi *a)
{
	struct pass_call *pc;

	for (pc = a->pass->head; pc != NULL; pc = pc->next) {
		struct stream *st = pc->stream;

		if (st == NULL || !pc->in_flight || !st->paused ||
		    STREAM_BUFFER - st->len < st->need)
			continue;
		st->paused = 0;
		sender_continue(a->sender, &st->rs);
	}
}

/* The transfer of a download ends before its time: the bot went away, or the
 * drain stops. */
static void
stream_abort(struct localapi *a, struct pass_call *pc)
{
	sender_abort(a->sender, &pc->stream->rs);
	pc->in_flight = 0;
	a->pass->in_flight--;
}

/* A download's transfer finished: the bot gets the rest of it, or the end of
 * what came. */
static void
stream_done(struct localapi *a, struct pass_call *pc,
    const struct botapi_answer *ans)
{
	struct stream	*st = pc->stream;
	char		 esc[160];

	if (!st->answered && !st->rs.transport_failed)
		(void)stream_answer(st, ans->http_status);
	if (!st->answered) {
		/* Nothing came: as for any call passed through. */
		log_warnx("bot %s: a download passed through failed: %s",
		    a->bots[pc->bot].cfg->name, log_escape(esc, sizeof(esc),
		    ans->description, strlen(ans->description)));
		count(a, pc, 502);
		if (pc->req != NULL)
			api_error(pc->req, 502, "Bad Gateway: the Bot API did not "
			    "answer");
		return;
	}
	st->ended = 1;
	if (st->rs.transport_failed) {
		/* The bot's answer ends short: its connection is closed. */
		st->failed = 1;
		log_warnx("bot %s: a download passed through failed after %llu "
		    "bytes: %s", a->bots[pc->bot].cfg->name,
		    (unsigned long long)st->received, log_escape(esc, sizeof(esc),
		    ans->description, strlen(ans->description)));
	}
	stream_wake(st);
}

/* ---- calls ---------------------------------------------------------------- */

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
	pc->rc.answer_type = pc->answer_type;
	pc->rc.answer_type_len = sizeof(pc->answer_type);
	if (pc->rc.file) {
		if ((pc->stream = stream_new(a, pc, req->is_head)) == NULL) {
			free(pc);
			api_error(req, 500, "Internal Server Error: out of memory");
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
		/* An answer frees a place, and wakes the loop. */
		if ((pc->stream != NULL ? sender_streams(a->sender) :
		    sender_in_flight(a->sender)) >= (size_t)a->cfg->max_in_flight)
			continue;
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
		if ((pc->stream != NULL ? sender_start_stream(a->sender, pc->id,
		    &pc->rc, &pc->stream->rs, err, sizeof(err)) :
		    sender_start_raw(a->sender, pc->id, &pc->rc, err,
		    sizeof(err))) == -1) {
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

	count(a, pc, status);
	if (req == NULL)
		return;
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
	if (pc->stream != NULL) {
		stream_done(a, pc, ans);
		unlink_call(a, pc);
		return 1;
	}
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
	if (pc->stream != NULL) {
		/* Nobody reads it any more: its transfer ends now. */
		pc->stream->conn = NULL;
		pc->stream->waiting = 0;
		if (pc->in_flight)
			stream_abort(a, pc);
	}
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
		if (pc->stream != NULL && pc->stream->answered) {
			/* Its answer ends short: its connection is closed. */
			pc->stream->ended = pc->stream->failed = 1;
			stream_wake(pc->stream);
			pc->stream->conn = NULL;
		} else if (pc->req != NULL)
			api_error(pc->req, 503, "Service Unavailable: tgq-drain is "
			    "stopping");
		if (pc->in_flight && pc->stream != NULL)
			stream_abort(a, pc);
		else if (pc->in_flight) {
			/* Its transfer is never driven again: only forgotten. */
			if (pc->req != NULL)
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
