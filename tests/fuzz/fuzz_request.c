/*
 * Fuzz target: one request through request_handle() (cgi/request.c), with a fake
 * server in front and a fake, in-memory store behind (this file defines store_put,
 * store_health, store_ready and metrics_render, so no SQLite I/O happens per input; cgi/store.c
 * and cgi/metrics_page.c are not linked).
 *
 * Input layout:
 *   byte 0   the store: bits 0-1 store_put's answer (0, 1: QUEUE_OK, 2: QUEUE_BUSY,
 *            3: QUEUE_UNAVAILABLE), bit 2 set: the row was a duplicate, bits 3-4
 *            store_health's answer (the same coding as bits 0-1), bit 5 set: the
 *            config with allowed_ips and trusted_proxies, bit 6 set: /metrics
 *            fails (metrics_render, also defined here, returns NULL)
 *   byte 1   the body stream: bits 0-5 + 1 the most bytes one read() hands out,
 *            bit 6 set: read() fails (-1) at the end instead of returning 0
 *   then     parameters, each "NAME=VALUE" and NUL-terminated (the first of a name
 *            wins); an empty one (a NUL right after the previous) ends them
 *   then     the body, every byte up to the end of the input
 * For example "\0\x3fREQUEST_METHOD=POST\0PATH_INFO=/webhook\0\0{...}".
 *
 * Invariants: the answer starts "Status: NNN " and has a Content-Length that
 * matches; never 410; a 503 carries Retry-After and a 405 Allow; no bot's secret
 * appears in the answer; a 200 comes only from a health check the store answered
 * or from a store_put that succeeded, of a body json_scan_update accepts, for a bot
 * whose secret the request carried, read in full and as sent, from a client that
 * allowed_ips allows (REMOTE_ADDR, or an X-Forwarded-For entry when REMOTE_ADDR is
 * a trusted proxy).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "webhook.h"

#define MAX_PARAMS 32
#define OUT_MAX 8192

static const char secret_default[] = "s3cr3t_Default-0123456789abcdef";
static const char secret_shop[] = "Shop_secret-9876543210zyxw";

/* cfg: no address checks; cfg_ips: allowed_ips and trusted_proxies. */
static struct config	 cfg, cfg_ips;
static struct webhook	 wh, wh_ips;

struct fake {
	const char	*names[MAX_PARAMS], *values[MAX_PARAMS];
	size_t		 nparams;
	const char	*body;
	size_t		 body_len, body_pos;
	size_t		 chunk;
	int		 fail_at_end;
	enum queue_status put_answer, health_answer;
	int		 duplicate, metrics_fail, use_ips;
	/* What happened. */
	int		 put_calls, health_calls, metrics_calls;
	struct queue_item put_item;
	char		*put_copy;
	char		 put_kind[JSON_KIND_MAX];	/* item->kind lives on request.c's stack */
	char		 out[OUT_MAX];
	size_t		 out_len;
	int		 out_overflow;
};

static struct fake *current;

static const char *
fake_param(void *ctx, const char *name)
{
	struct fake	*f = ctx;
	size_t		 i;

	for (i = 0; i < f->nparams; i++)
		if (strcmp(f->names[i], name) == 0)
			return f->values[i];
	return NULL;
}

static ssize_t
fake_read(void *ctx, char *buf, size_t len)
{
	struct fake	*f = ctx;
	size_t		 n = f->body_len - f->body_pos;

	if (n == 0)
		return f->fail_at_end ? -1 : 0;
	n = n < len ? n : len;
	n = n < f->chunk ? n : f->chunk;
	memcpy(buf, f->body + f->body_pos, n);
	f->body_pos += n;
	return (ssize_t)n;
}

static int
fake_write(void *ctx, const char *buf, size_t len)
{
	struct fake	*f = ctx;

	if (len > sizeof(f->out) - 1 - f->out_len) {
		f->out_overflow = 1;
		return -1;
	}
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
	f->out[f->out_len] = '\0';
	return 0;
}

/* The store of cgi/store.c, replaced: records the call, answers as the input says. */
enum queue_status
store_put(struct store *s, struct queue_item *item)
{
	struct fake *f = current;

	(void)s;
	FUZZ_CHECK(f != NULL && f->put_calls == 0);
	f->put_calls++;
	f->put_item = *item;
	snprintf(f->put_kind, sizeof(f->put_kind), "%s", item->kind);
	f->put_item.kind = f->put_kind;
	/* request.c frees the body after answering: keep a copy to check it. */
	if ((f->put_copy = malloc(item->body_len + 1)) != NULL)
		memcpy(f->put_copy, item->body, item->body_len);
	if (f->put_answer == QUEUE_OK)
		item->duplicate = f->duplicate;
	return f->put_answer;
}

enum queue_status
store_health(struct store *s, struct queue_health *h)
{
	struct fake *f = current;

	(void)s;
	FUZZ_CHECK(f != NULL);
	f->health_calls++;
	if (f->health_answer != QUEUE_OK)
		return f->health_answer;
	h->pending = 3;
	h->dead = 1;
	h->oldest_pending_age_s = 42;
	return QUEUE_OK;
}

/* …/ready: the same fake as the health check (its pending update is younger than
 * the config's stall_after, so an answered check is ready). */
enum queue_status
store_ready(struct store *s, struct queue_health *h)
{
	return store_health(s, h);
}

char *
metrics_render(const struct webhook *w, size_t *len)
{
	static const char	 page[] = "# TYPE tgq_updates_received_total counter\n"
	    "tgq_updates_received_total 7\n";
	struct fake		*f = current;
	char			*text;

	(void)w;
	FUZZ_CHECK(f != NULL);
	f->metrics_calls++;
	if (f->metrics_fail || (text = strdup(page)) == NULL)
		return NULL;
	*len = sizeof(page) - 1;
	return text;
}

static int
add_bot(struct config *c, const char *name, const char *secret)
{
	struct bot_config *b = &c->bots[c->nbots++];

	snprintf(b->name, sizeof(b->name), "%s", name);
	if (secret != NULL) {
		if ((b->secret = strdup(secret)) == NULL)
			return -1;
		b->secret_len = strlen(secret);
	}
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	/* Rejections are logged at info: keep the fuzzer's output readable. */
	log_init("fuzz_request", LOG_LVL_ERR);
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_body = 64 * 1024;
	cfg.retry_after_s = 5;
	cfg.stall_after_s = 60;
	cfg.durability = DURABILITY_FULL;
	/* Two bots with secrets, and one without: a name that selects nothing. */
	if (add_bot(&cfg, "default", secret_default) == -1 ||
	    add_bot(&cfg, "shop", secret_shop) == -1 ||
	    add_bot(&cfg, "nosecret", NULL) == -1)
		abort();
	cfg_ips = cfg;	/* shares the bots' strings: both live until exit */
	if (cidr_parse("telegram, 192.0.2.0/24, 2001:db8::/32", &cfg_ips.allowed_ips,
	    err, sizeof(err)) == -1 || cidr_parse("127.0.0.1 10.0.0.0/8 ::1",
	    &cfg_ips.trusted_proxies, err, sizeof(err)) == -1) {
		fprintf(stderr, "cidr_parse: %s\n", err);
		abort();
	}
	wh.cfg = &cfg;
	wh_ips.cfg = &cfg_ips;
	return 0;
}

static enum queue_status
status_from_bits(unsigned bits)
{
	switch (bits & 3) {
	case 2:
		return QUEUE_BUSY;
	case 3:
		return QUEUE_UNAVAILABLE;
	default:
		return QUEUE_OK;
	}
}

/* Splits the input (a NUL-terminated copy) into the fake's parameters and body. */
static void
decode(struct fake *f, char *buf, size_t len)
{
	size_t	 pos = 2;

	f->put_answer = status_from_bits(buf[0]);
	f->duplicate = (buf[0] >> 2) & 1;
	f->health_answer = status_from_bits((unsigned char)buf[0] >> 3);
	f->use_ips = (buf[0] >> 5) & 1;
	f->metrics_fail = (buf[0] >> 6) & 1;
	f->chunk = ((unsigned char)buf[1] & 0x3f) + 1;
	f->fail_at_end = (buf[1] >> 6) & 1;
	while (pos < len && buf[pos] != '\0') {
		char	*entry = buf + pos, *eq;
		size_t	 n = strlen(entry);

		pos += n + 1;
		if (f->nparams == MAX_PARAMS)
			continue;
		if ((eq = strchr(entry, '=')) == NULL)
			continue;
		*eq = '\0';
		f->names[f->nparams] = entry;
		f->values[f->nparams] = eq + 1;
		f->nparams++;
	}
	if (pos < len) {
		f->body = buf + pos + 1;
		f->body_len = len - pos - 1;
	} else {
		f->body = buf + len;
		f->body_len = 0;
	}
}

/* The status code, after checking that the answer starts "Status: NNN ". */
static int
status_code(const struct fake *f)
{
	const char *s = f->out;

	FUZZ_CHECK(f->out_len >= 12 && memcmp(s, "Status: ", 8) == 0);
	FUZZ_CHECK(s[8] >= '1' && s[8] <= '5' && s[9] >= '0' && s[9] <= '9' &&
	    s[10] >= '0' && s[10] <= '9' && s[11] == ' ');
	return (s[8] - '0') * 100 + (s[9] - '0') * 10 + (s[10] - '0');
}

/* Content-Length says how long the body after the blank line is (0 for HEAD). */
static void
check_length(const struct fake *f, int head_only)
{
	const char	*cl = strstr(f->out, "\r\nContent-Length: ");
	const char	*end = strstr(f->out, "\r\n\r\n");
	size_t		 body_len;
	char		*stop;
	unsigned long	 n;

	FUZZ_CHECK(cl != NULL && end != NULL && cl < end);
	n = strtoul(cl + 18, &stop, 10);
	FUZZ_CHECK(stop != cl + 18 && *stop == '\r');
	body_len = f->out_len - (size_t)(end + 4 - f->out);
	FUZZ_CHECK(head_only ? body_len == 0 : body_len == n);
}

static int
has_segment_secret(const struct fake *f, const char *secret)
{
	const char	*keys[] = { "PATH_INFO", "SCRIPT_NAME", "REQUEST_URI" };
	size_t		 i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = fake_param((void *)(uintptr_t)f, keys[i]);

		if (v != NULL && strstr(v, secret) != NULL)
			return 1;
	}
	return 0;
}

/* The client is one allowed_ips allows: REMOTE_ADDR, or when that is a trusted
 * proxy, one of the X-Forwarded-For entries (trimmed of blanks). */
static int
client_allowed(const struct fake *f)
{
	const char	*remote = fake_param((void *)(uintptr_t)f, "REMOTE_ADDR");
	const char	*xff = fake_param((void *)(uintptr_t)f, "HTTP_X_FORWARDED_FOR");
	char		 entry[128];

	if (cidr_match(&cfg_ips.allowed_ips, remote))
		return 1;
	if (xff == NULL || !cidr_match(&cfg_ips.trusted_proxies, remote))
		return 0;
	while (*xff != '\0') {
		size_t n = strcspn(xff, ",");

		while (n > 0 && (*xff == ' ' || *xff == '\t')) {
			xff++;
			n--;
		}
		if (n < sizeof(entry)) {
			memcpy(entry, xff, n);
			while (n > 0 && (entry[n - 1] == ' ' || entry[n - 1] == '\t'))
				n--;
			entry[n] = '\0';
			if (cidr_match(&cfg_ips.allowed_ips, entry))
				return 1;
		}
		xff += strcspn(xff, ",");
		if (*xff == ',')
			xff++;
	}
	return 0;
}

static void
check_stored(const struct fake *f)
{
	const struct queue_item	*it = &f->put_item;
	const struct bot_config	*bot = NULL;
	const char		*header;
	struct update_info	 info;
	char			 err[128];
	size_t			 i;

	FUZZ_CHECK(f->put_copy != NULL);
	/* The body stored is the body sent, from its start. */
	FUZZ_CHECK(it->body_len <= f->body_len &&
	    memcmp(f->put_copy, f->body, it->body_len) == 0);
	FUZZ_CHECK(json_scan_update(f->put_copy, it->body_len, JSON_MAX_DEPTH, &info,
	    err, sizeof(err)) == 0);
	FUZZ_CHECK(info.update_id == it->update_id);
	FUZZ_CHECK(strcmp(info.kind, it->kind) == 0);
	FUZZ_CHECK(info.has_chat_id == it->has_chat_id &&
	    (!info.has_chat_id || info.chat_id == it->chat_id));
	/* For a bot that has a secret, which the request carried. */
	for (i = 0; i < cfg.nbots; i++)
		if (strcmp(cfg.bots[i].name, it->bot) == 0)
			bot = &cfg.bots[i];
	FUZZ_CHECK(bot != NULL && bot->secret != NULL);
	header = fake_param((void *)(uintptr_t)f, "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN");
	FUZZ_CHECK((header != NULL && strcmp(header, bot->secret) == 0) ||
	    has_segment_secret(f, bot->secret));
	/* A header that is there must be the right one. */
	FUZZ_CHECK(header == NULL || strcmp(header, bot->secret) == 0);
	if (f->use_ips)
		FUZZ_CHECK(client_allowed(f));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fake		*f;
	struct request_io	 io;
	char			*buf;
	const char		*method;
	size_t			 i;
	int			 code;

	if (size < 2)
		return 0;
	if ((f = calloc(1, sizeof(*f))) == NULL || (buf = malloc(size + 1)) == NULL) {
		free(f);
		return 0;
	}
	memcpy(buf, data, size);
	buf[size] = '\0';
	decode(f, buf, size);
	io.param = fake_param;
	io.read = fake_read;
	io.write = fake_write;
	io.ctx = f;
	io.defer = NULL;
	current = f;

	request_handle(&io, f->use_ips ? &wh_ips : &wh);

	current = NULL;
	FUZZ_CHECK(!f->out_overflow);
	code = status_code(f);
	FUZZ_CHECK(code != 410);
	method = fake_param(f, "REQUEST_METHOD");
	check_length(f, method != NULL && strcmp(method, "HEAD") == 0 &&
	    f->health_calls + f->metrics_calls > 0);
	for (i = 0; i < cfg.nbots; i++)
		FUZZ_CHECK(cfg.bots[i].secret == NULL ||
		    strstr(f->out, cfg.bots[i].secret) == NULL);
	if (code == 503)
		FUZZ_CHECK(strstr(f->out, "\r\nRetry-After: 5\r\n") != NULL);
	if (code == 405)
		FUZZ_CHECK(strstr(f->out, "\r\nAllow: ") != NULL);
	FUZZ_CHECK(f->put_calls + f->health_calls + f->metrics_calls <= 1);
	if (code == 200) {
		if (f->health_calls == 1)
			FUZZ_CHECK(f->health_answer == QUEUE_OK);
		else if (f->metrics_calls == 1)
			FUZZ_CHECK(!f->metrics_fail);
		else
			FUZZ_CHECK(f->put_calls == 1 && f->put_answer == QUEUE_OK);
	}
	if (f->metrics_calls == 1)
		FUZZ_CHECK(code == (f->metrics_fail ? 503 : 200));
	if (f->put_calls == 1) {
		check_stored(f);
		FUZZ_CHECK(code == (f->put_answer == QUEUE_OK ? 200 : 503));
	}
	if (f->health_calls == 1)
		FUZZ_CHECK(code == (f->health_answer == QUEUE_OK ? 200 : 503));
	free(f->put_copy);
	free(f);
	free(buf);
	return 0;
}
