/*
 * One request, start to end, in the order of the README's request table: route,
 * method, secret, length, type, body, store; the first check that fails answers.
 * Nothing here runs bot logic, and nothing answers 200 before the update's COMMIT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "webhook.h"

/* Longer paths are not ours (404).  Request threads are many: their stacks stay
 * small, so no buffer here is larger than it needs to be. */
#define PATH_MAX_LEN 1024
#define SECRET_HEADER "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN"

enum route { ROUTE_NONE, ROUTE_WEBHOOK, ROUTE_HEALTH, ROUTE_READY, ROUTE_METRICS };

struct target {
	enum route	 route;
	/* The segment after "webhook": a bot's name or its secret; len 0 if none. */
	const char	*segment;
	size_t		 segment_len;
};

static void
respond(const struct request_io *io, const char *status, const char *headers,
    const char *content_type, const char *body, int head_only)
{
	char	 head[512];
	size_t	 len = strlen(body);
	int	 n;

	n = snprintf(head, sizeof(head), "Status: %s\r\n%sContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n\r\n", status,
	    headers, content_type, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return;
	if (io->write(io->ctx, head, (size_t)n) == 0 && !head_only)
		io->write(io->ctx, body, len);
}

static void
respond_text(const struct request_io *io, const char *status, const char *headers,
    const char *body)
{
	respond(io, status, headers, "text/plain; charset=utf-8", body, 0);
}

static void
respond_unavailable(const struct request_io *io, const struct webhook *wh,
    const char *content_type, const char *body, int head_only)
{
	char retry[64];

	/* Telegram honours Retry-After; never 410, which makes it delete the webhook. */
	snprintf(retry, sizeof(retry), "Retry-After: %lld\r\n",
	    (long long)wh->cfg->retry_after_s);
	respond(io, "503 Service Unavailable", retry, content_type, body, head_only);
}

/*
 * The path as the server decoded it (SCRIPT_NAME + PATH_INFO, which nginx and
 * lighttpd split differently), else REQUEST_URI without its query.
 */
static int
request_path(const struct request_io *io, char *buf, size_t buflen)
{
	const char	*script = io->param(io->ctx, "SCRIPT_NAME");
	const char	*info = io->param(io->ctx, "PATH_INFO");
	const char	*uri, *query;
	int		 n;

	if ((script != NULL && *script) || (info != NULL && *info)) {
		n = snprintf(buf, buflen, "%s%s", script ? script : "", info ? info : "");
		return n < 0 || (size_t)n >= buflen ? -1 : 0;
	}
	if ((uri = io->param(io->ctx, "REQUEST_URI")) == NULL)
		return -1;
	query = strchr(uri, '?');
	n = snprintf(buf, buflen, "%.*s", (int)(query ? (size_t)(query - uri) :
	    strlen(uri)), uri);
	return n < 0 || (size_t)n >= buflen ? -1 : 0;
}

static int
segment_is(const char *seg, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(seg, word, len) == 0;
}

/*
 * Routes are matched on the end of the path, so the endpoint works under any
 * prefix: .../health, .../ready, .../metrics, .../webhook and
 * .../webhook/<segment>.  Empty segments (from
 * "//" or a trailing "/") are ignored.
 */
static void
route_path(const char *path, struct target *t)
{
	const char	*end = path + strlen(path), *last, *prev;
	size_t		 last_len, prev_len;

	memset(t, 0, sizeof(*t));
	while (end > path && end[-1] == '/')
		end--;
	for (last = end; last > path && last[-1] != '/'; last--)
		continue;
	last_len = (size_t)(end - last);
	for (prev = last; prev > path && prev[-1] == '/'; prev--)
		continue;
	end = prev;
	for (; prev > path && prev[-1] != '/'; prev--)
		continue;
	prev_len = (size_t)(end - prev);

	if (segment_is(last, last_len, "health"))
		t->route = ROUTE_HEALTH;
	else if (segment_is(last, last_len, "ready"))
		t->route = ROUTE_READY;
	else if (segment_is(last, last_len, "metrics"))
		t->route = ROUTE_METRICS;
	else if (segment_is(last, last_len, "webhook"))
		t->route = ROUTE_WEBHOOK;
	else if (last_len > 0 && segment_is(prev, prev_len, "webhook")) {
		t->route = ROUTE_WEBHOOK;
		t->segment = last;
		t->segment_len = last_len;
	}
}

/* Whether candidate is the bot's secret or, during a rotation, its previous one. */
static int
bot_accepts(const struct bot_config *b, const char *candidate, size_t len)
{
	return secret_pair_equal(candidate, len, b->secret, b->secret_len,
	    b->secret_prev, b->secret_prev_len);
}

/* The bot whose secret equals candidate, looking at every bot whatever matches,
 * so the time does not tell which bot (or how many) there are. */
static const struct bot_config *
bot_by_secret(const struct config *cfg, const char *candidate, size_t len)
{
	const struct bot_config	*found = NULL;
	size_t			 i;

	for (i = 0; i < cfg->nbots; i++) {
		const struct bot_config *b = &cfg->bots[i];

		if (bot_accepts(b, candidate, len) && found == NULL)
			found = b;
	}
	return found;
}

/*
 * The secret may come in the header, in the path, or both (then they must agree);
 * a path segment that names a bot selects it, and the header must then hold its
 * secret.  Returns the bot, or NULL for 401.  Called between secrets_read_begin()
 * and secrets_read_end().
 */
static const struct bot_config *
match_secret(const struct request_io *io, const struct webhook *wh,
    const struct target *t)
{
	const char		*header = io->param(io->ctx, SECRET_HEADER);
	const struct bot_config	*bot;
	size_t			 header_len = header ? strlen(header) : 0;

	if (t->segment_len > 0 &&
	    (bot = config_bot(wh->cfg, t->segment, t->segment_len)) != NULL) {
		if (header == NULL || !bot_accepts(bot, header, header_len))
			return NULL;
		return bot;
	}
	if (t->segment_len > 0) {
		bot = bot_by_secret(wh->cfg, t->segment, t->segment_len);
		if (bot != NULL && header != NULL &&
		    !bot_accepts(bot, header, header_len))
			return NULL;
		return bot;
	}
	if (header == NULL)
		return NULL;
	return bot_by_secret(wh->cfg, header, header_len);
}

/*
 * The secret files are checked for changes once a second, and again at once when
 * no secret matched: a secret registered with Telegram just after its file was
 * written is then taken, never refused for the check's second.
 */
static const struct bot_config *
match_locked(const struct request_io *io, const struct webhook *wh,
    const struct target *t)
{
	const struct bot_config *bot;

	secrets_read_begin(wh->secrets);
	bot = match_secret(io, wh, t);
	secrets_read_end(wh->secrets);
	return bot;
}

static const struct bot_config *
authenticate(const struct request_io *io, const struct webhook *wh,
    const struct target *t)
{
	const struct bot_config *bot;

	(void)secrets_refresh(wh->secrets, 0);
	if ((bot = match_locked(io, wh, t)) != NULL)
		return bot;
	/* Matched again whether or not this thread reread anything: another
	 * thread may have taken the new file while this one waited for it. */
	(void)secrets_refresh(wh->secrets, 1);
	return match_locked(io, wh, t);
}

/* application/json, in any case, optionally followed by parameters. */
static int
content_type_ok(const char *ct)
{
	static const char	 json[] = "application/json";
	size_t			 n = sizeof(json) - 1;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, json, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static int
read_body(const struct request_io *io, char *buf, size_t len)
{
	size_t	 got = 0;
	ssize_t	 n;

	while (got < len) {
		if ((n = io->read(io->ctx, buf + got, len - got)) <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Reads what the client sent and was not used, so that the server in front is not
 * cut off while it still writes (nginx answers 502 then); bounded by the limit.
 */
static void
discard_input(const struct request_io *io, int64_t limit)
{
	char	 sink[1024];
	ssize_t	 n;

	while (limit > 0 && (n = io->read(io->ctx, sink, sizeof(sink))) > 0)
		limit -= n;
}

/*
 * Every refusal is counted (in shared memory, never in the database: a flood of
 * bad requests must not become a flood of writes), logged with the client's
 * address, and answered.
 */
static void
reject(const struct request_io *io, const struct webhook *wh, const char *client,
    enum metric m, const char *status, const char *headers, const char *body,
    const char *why)
{
	char esc[64];

	metrics_add(wh->metrics, m, 1);
	if (why != NULL)
		log_info("%s: rejected: %s", client ? log_escape(esc, sizeof(esc),
		    client, strlen(client)) : "-", why);
	respond_text(io, status, headers, body);
}

/*
 * The client: REMOTE_ADDR, unless that is a trusted proxy; then the last address
 * in X-Forwarded-For that is not a trusted proxy itself (the ones to its left
 * could be anything the client wrote).
 */
static const char *
client_address(const struct request_io *io, const struct config *cfg, char *buf,
    size_t buflen)
{
	const char	*remote = io->param(io->ctx, "REMOTE_ADDR");
	const char	*xff, *end, *start;

	if (remote == NULL || cfg->trusted_proxies.n == 0 ||
	    !cidr_match(&cfg->trusted_proxies, remote) ||
	    (xff = io->param(io->ctx, "HTTP_X_FORWARDED_FOR")) == NULL)
		return remote;
	for (end = xff + strlen(xff); end > xff; end = start) {
		size_t len;

		for (start = end; start > xff && start[-1] != ','; start--)
			continue;
		len = (size_t)(end - start);
		while (len > 0 && (*start == ' ' || *start == '\t')) {
			start++;
			len--;
		}
		while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		if (len > 0 && len < buflen) {
			memcpy(buf, start, len);
			buf[len] = '\0';
			if (!cidr_match(&cfg->trusted_proxies, buf))
				return buf;
		}
		if (start > xff)
			start--;	/* past the comma */
	}
	return remote;
}

static void
handle_health(const struct request_io *io, const struct webhook *wh, int head_only)
{
	struct queue_health	 h;
	char			 body[256];

	if (store_health(wh->store, &h) != QUEUE_OK) {
		respond_unavailable(io, wh, "application/json",
		    "{\"status\":\"unavailable\"}\n", head_only);
		return;
	}
	snprintf(body, sizeof(body), "{\"status\":\"ok\",\"pending\":%lld,"
	    "\"dead\":%lld,\"oldest_pending_age_s\":%lld}\n", (long long)h.pending,
	    (long long)h.dead, (long long)h.oldest_pending_age_s);
	respond(io, "200 OK", "", "application/json", body, head_only);
}

/*
 * Readiness, for load balancers: whether updates sent here now would be stored
 * and then handled.  Unready, in this order of the reasons:
 *   queue_busy         another writer held the queue past busy_timeout;
 *   queue_unavailable  the queue cannot be opened or written (read-only, full
 *                      disk, I/O error, not a queue);
 *   bot_down           a bot is marked down: tgq-drain found that its http
 *                      handler does not answer (the bot_down table); its
 *                      updates are kept, and wait for it (before stalled,
 *                      which a bot down for long causes: this says why);
 *   stalled            the oldest pending update waited longer than stall_after:
 *                      no drain takes updates, or it cannot keep up.
 * The cost: the health check's one read, and the write lock taken and given back
 * (BEGIN IMMEDIATE, ROLLBACK), which writes nothing.
 */
static void
handle_ready(const struct request_io *io, const struct webhook *wh, int head_only)
{
	struct queue_health	 h;
	enum queue_status	 status;
	char			 body[256];
	const char		*reason = NULL;

	memset(&h, 0, sizeof(h));
	status = store_ready(wh->store, &h);
	if (status == QUEUE_BUSY)
		reason = "queue_busy";
	else if (status != QUEUE_OK)
		reason = "queue_unavailable";
	else if (h.bots_down > 0)
		reason = "bot_down";
	else if (h.oldest_pending_age_s > wh->cfg->stall_after_s)
		reason = "stalled";
	if (status != QUEUE_OK)
		snprintf(body, sizeof(body), "{\"status\":\"unready\",\"reason\":"
		    "\"%s\"}\n", reason);
	else
		snprintf(body, sizeof(body), "{\"status\":\"%s\",%s%s%s\"pending\":"
		    "%lld,\"oldest_pending_age_s\":%lld,\"stall_after_s\":%lld}\n",
		    reason ? "unready" : "ready", reason ? "\"reason\":\"" : "",
		    reason ? reason : "", reason ? "\"," : "", (long long)h.pending,
		    (long long)h.oldest_pending_age_s,
		    (long long)wh->cfg->stall_after_s);
	if (reason != NULL)
		respond_unavailable(io, wh, "application/json", body, head_only);
	else
		respond(io, "200 OK", "", "application/json", body, head_only);
}

void
request_answer_stored(const struct request_io *io, const struct webhook *wh,
    const struct queue_item *item, enum queue_status status)
{
	if (status != QUEUE_OK) {
		/* The store logged why; Telegram keeps the update and retries. */
		metrics_add(wh->metrics, M_UNAVAILABLE, 1);
		respond_unavailable(io, wh, "text/plain; charset=utf-8",
		    "service unavailable\n", 0);
		return;
	}
	metrics_add(wh->metrics, item->duplicate ? M_DUPLICATES : M_RECEIVED, 1);
	if (item->arrived_us > 0)
		metrics_observe(wh->metrics, H_INGEST, item->bot, now_monotonic_us() -
		    item->arrived_us);
	log_debug("bot %s: update %lld (%s) %s", item->bot, (long long)item->update_id,
	    *item->kind ? item->kind : "-", item->duplicate ? "was a duplicate" :
	    "stored");
	respond_text(io, "200 OK", "", "ok\n");
}

/* Returns 1 when the body went to io->defer (which owns it now), else 0. */
static int
handle_update(const struct request_io *io, const struct webhook *wh,
    const char *client, const struct bot_config *bot, char *body, size_t len,
    int64_t arrived_us)
{
	struct update_info	 info;
	struct queue_item	 item;
	char			 reason[128], answer[192];

	if (json_scan_update(body, len, JSON_MAX_DEPTH, &info, reason,
	    sizeof(reason)) == -1) {
		snprintf(answer, sizeof(answer), "bad request: %s\n", reason);
		reject(io, wh, client, M_REJECTED_BODY, "400 Bad Request", "", answer,
		    reason);
		return 0;
	}
	memset(&item, 0, sizeof(item));
	item.bot = bot->name;
	item.update_id = info.update_id;
	item.body = body;
	item.body_len = len;
	item.kind = info.kind;
	item.has_chat_id = info.has_chat_id;
	item.chat_id = info.chat_id;
	item.received_at = now_unix();
	item.arrived_us = arrived_us;
	if (io->defer != NULL) {
		io->defer(io->ctx, &item, body);
		return 1;
	}
	request_answer_stored(io, wh, &item, store_put(wh->store, &item));
	return 0;
}

static void
handle_webhook(const struct request_io *io, const struct webhook *wh,
    const struct target *t)
{
	const struct bot_config	*bot;
	const char		*length_text, *errstr = NULL, *client;
	char			*body, addr[64];
	int64_t			 length, arrived_us = now_monotonic_us();

	client = client_address(io, wh->cfg, addr, sizeof(addr));
	if (wh->cfg->allowed_ips.n > 0 && !cidr_match(&wh->cfg->allowed_ips, client)) {
		discard_input(io, wh->cfg->max_body);
		reject(io, wh, client, M_REJECTED_IP, "403 Forbidden", "",
		    "forbidden\n", "address not in allowed_ips");
		return;
	}
	if ((bot = authenticate(io, wh, t)) == NULL) {
		discard_input(io, wh->cfg->max_body);
		reject(io, wh, client, M_REJECTED_SECRET, "401 Unauthorized", "",
		    "unauthorized\n", "wrong or missing secret");
		return;
	}
	length_text = io->param(io->ctx, "CONTENT_LENGTH");
	if (length_text == NULL || *length_text == '\0') {
		reject(io, wh, client, M_REJECTED_LENGTH, "411 Length Required", "",
		    "length required\n", "no Content-Length");
		return;
	}
	if (parse_int(length_text, 0, INT64_MAX, &length, &errstr) == -1 &&
	    strcmp(errstr, "too large") != 0) {
		reject(io, wh, client, M_REJECTED_LENGTH, "400 Bad Request", "",
		    "bad request: invalid Content-Length\n", "invalid Content-Length");
		return;
	}
	if (errstr != NULL || length > wh->cfg->max_body) {
		discard_input(io, wh->cfg->max_body);
		reject(io, wh, client, M_REJECTED_SIZE, "413 Payload Too Large", "",
		    "payload too large\n", "body larger than max_body");
		return;
	}
	if (!content_type_ok(io->param(io->ctx, "CONTENT_TYPE"))) {
		discard_input(io, length);
		reject(io, wh, client, M_REJECTED_TYPE, "415 Unsupported Media Type", "",
		    "unsupported media type\n", "Content-Type is not application/json");
		return;
	}
	if ((body = malloc(length > 0 ? (size_t)length : 1)) == NULL) {
		log_err("out of memory for a body of %lld bytes", (long long)length);
		metrics_add(wh->metrics, M_UNAVAILABLE, 1);
		respond_unavailable(io, wh, "text/plain; charset=utf-8",
		    "service unavailable\n", 0);
		return;
	}
	if (read_body(io, body, (size_t)length) == -1)
		reject(io, wh, client, M_REJECTED_LENGTH, "400 Bad Request", "",
		    "bad request: body shorter than Content-Length\n",
		    "body shorter than Content-Length");
	else if (handle_update(io, wh, client, bot, body, (size_t)length,
	    arrived_us))
		body = NULL;
	free(body);
}

static void
handle_metrics(const struct request_io *io, const struct webhook *wh, int head_only)
{
	size_t	 len;
	char	*text = metrics_render(wh, &len);

	if (text == NULL) {
		respond_unavailable(io, wh, "text/plain; charset=utf-8",
		    "service unavailable\n", head_only);
		return;
	}
	respond(io, "200 OK", "", "text/plain; version=0.0.4; charset=utf-8", text,
	    head_only);
	free(text);
}

void
request_handle(const struct request_io *io, const struct webhook *wh)
{
	const char	*method = io->param(io->ctx, "REQUEST_METHOD");
	char		 path[PATH_MAX_LEN];
	struct target	 t;
	int		 get;

	if (method == NULL)
		method = "";
	if (request_path(io, path, sizeof(path)) == -1)
		path[0] = '\0';
	route_path(path, &t);
	get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	switch (t.route) {
	case ROUTE_NONE:
		reject(io, wh, NULL, M_REJECTED_ROUTE, "404 Not Found", "",
		    "not found\n", NULL);
		return;
	case ROUTE_HEALTH:
	case ROUTE_READY:
	case ROUTE_METRICS:
		if (!get)
			reject(io, wh, NULL, M_REJECTED_METHOD, "405 Method Not Allowed",
			    "Allow: GET, HEAD\r\n", "method not allowed\n", NULL);
		else if (t.route == ROUTE_HEALTH)
			handle_health(io, wh, strcmp(method, "HEAD") == 0);
		else if (t.route == ROUTE_READY)
			handle_ready(io, wh, strcmp(method, "HEAD") == 0);
		else
			handle_metrics(io, wh, strcmp(method, "HEAD") == 0);
		return;
	case ROUTE_WEBHOOK:
		if (strcmp(method, "POST") == 0)
			handle_webhook(io, wh, &t);
		else
			reject(io, wh, NULL, M_REJECTED_METHOD, "405 Method Not Allowed",
			    "Allow: POST\r\n", "method not allowed\n", NULL);
		return;
	}
}
