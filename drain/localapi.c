/*
 * The local Bot API's server: libmicrohttpd inside the drain's own event loop
 * (epoll, no thread of its own: the loop waits on its descriptor with the
 * network and the handlers), a request's routing by its path, its body read in
 * memory or spooled to an unlinked file, the few parameters tgq itself reads,
 * and webhook management answered here.  getUpdates is localapi_updates.c's,
 * the calls passed on are localapi_pass.c's.  A well-kept HTTP parser does the
 * hostile part: this file sees a request only once libmicrohttpd parsed it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sqlite3.h>

#include "localapi.h"

#define CONNECTIONS_MAX 256
#define CONNECTION_TIMEOUT_S 120	/* idle keep-alive connections */
#define SMALL_BODY_MAX (64 * 1024)	/* getUpdates and webhook methods */
#define UPLOAD_MAX (52 * 1024 * 1024)	/* Telegram's 50 MB and the form around it */
#define POST_BUFFER 16384
#define READER_BLOCK (32 * 1024)	/* what an answer's reader is asked for */
#define RESUME_RUNS_MAX 8	/* runs for resumed connections in one turn */

/* Telegram's own words for the errors the local API answers itself. */
#define E_NOT_FOUND	"Not Found"
#define E_UNAUTHORIZED	"Unauthorized"

/* ---- answers ---------------------------------------------------------------- */

static void
queue_response(struct request *req, unsigned status, struct MHD_Response *r,
    const char *content_type)
{
	if (r == NULL) {
		log_err("local API: out of memory for an answer");
		return;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    content_type != NULL && *content_type != '\0' ? content_type :
	    "application/json");
	if (MHD_queue_response(req->conn, status, r) == MHD_NO)
		log_warnx("local API: an answer could not be queued");
	MHD_destroy_response(r);
	req->answered = 1;
	if (req->suspended) {
		req->suspended = 0;
		MHD_resume_connection(req->conn);
		req->api->resumed = 1;
	}
}

void
api_answer_owned(struct request *req, unsigned status, char *body, size_t len,
    const char *content_type)
{
	queue_response(req, status, MHD_create_response_from_buffer(len, body,
	    MHD_RESPMEM_MUST_FREE), content_type);
}

void
api_answer(struct request *req, unsigned status, const char *body, size_t len)
{
	queue_response(req, status, MHD_create_response_from_buffer(len,
	    (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY), NULL);
}

int
api_answer_reader(struct request *req, unsigned status, int64_t size,
    const char *content_type, ssize_t (*read)(void *cls, uint64_t pos,
    char *buf, size_t max), void *cls, void (*release)(void *cls))
{
	struct MHD_Response *r;

	r = MHD_create_response_from_callback(size < 0 ? MHD_SIZE_UNKNOWN :
	    (uint64_t)size, READER_BLOCK, read, cls, release);
	if (r == NULL)
		return -1;
	queue_response(req, status, r, content_type);
	return 0;
}

void
api_error(struct request *req, unsigned status, const char *description)
{
	char	 buf[512];
	int	 n;

	/* description is ours or Telegram-shaped: letters, digits, spaces and
	 * punctuation without quotes or backslashes. */
	n = snprintf(buf, sizeof(buf), "{\"ok\":false,\"error_code\":%u,"
	    "\"description\":\"%s\"}", status, description);
	api_answer(req, status, buf, n > 0 && (size_t)n < sizeof(buf) ?
	    (size_t)n : strlen(buf));
}

void
api_suspend(struct request *req)
{
	if (!req->suspended && !req->answered) {
		req->suspended = 1;
		MHD_suspend_connection(req->conn);
	}
}

/* ---- the body ----------------------------------------------------------------- */

int
api_spool_open(void)
{
	const char	*dir = getenv("TMPDIR");
	char		 path[PATH_MAX];
	int		 fd;

	if (dir == NULL || *dir != '/' || strlen(dir) > sizeof(path) - 16)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/tgq-XXXXXX", dir);
	/* Unlinked at once: nothing is left behind by a crash. */
	if ((fd = mkstemp(path)) == -1) {
		log_err("local API: a temporary file in %s: %s", dir, strerror(errno));
		return -1;
	}
	unlink(path);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);	/* handlers do not inherit it */
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Appends a piece of the body: in memory while it is small, then spooled. */
static int
body_add(struct body *b, const char *data, size_t len)
{
	char *grown;

	if (b->fd == -1 && b->len + len > BODY_SPOOL_AT) {
		if ((b->fd = api_spool_open()) == -1 ||
		    write_all(b->fd, b->mem != NULL ? b->mem : "", b->len) == -1)
			return -1;
		free(b->mem);
		b->mem = NULL;
		b->len = b->cap = 0;
	}
	b->size += (off_t)len;
	if (b->fd != -1)
		return write_all(b->fd, data, len);
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + len + 1)
			cap *= 2;
		if ((grown = realloc(b->mem, cap)) == NULL)
			return -1;
		b->mem = grown;
		b->cap = cap;
	}
	memcpy(b->mem + b->len, data, len);
	b->len += len;
	b->mem[b->len] = '\0';
	return 0;
}

static void
body_free(struct body *b)
{
	free(b->mem);
	if (b->fd != -1)
		close(b->fd);
	memset(b, 0, sizeof(*b));
	b->fd = -1;
}

/* ---- the parameters tgq reads ---------------------------------------------- */

/* Where a parameter goes, when it is one of those tgq reads. */
static char *
field_slot(struct api_fields *f, const char *key, size_t *len)
{
	static const struct {
		const char	*name;
		size_t		 offset, size;
	} names[] = {
#define F(n) { #n, offsetof(struct api_fields, n), sizeof(((struct api_fields *)0)->n) }
		F(chat_id), F(offset), F(limit), F(timeout), F(allowed_updates),
		F(drop_pending_updates),
#undef F
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(key, names[i].name) == 0) {
			*len = names[i].size;
			return (char *)f + names[i].offset;
		}
	return NULL;
}

/* A value at offset off of the parameter key; one too long is cut (and is then
 * refused by its parser). */
static void
field_set(struct api_fields *f, const char *key, const char *data, uint64_t off,
    size_t size)
{
	size_t	 len, have;
	char	*slot;

	if (key == NULL || (slot = field_slot(f, key, &len)) == NULL)
		return;
	if (off == 0)
		slot[0] = '\0';
	have = strlen(slot);
	if (off != have || have + 1 >= len)
		return;
	if (size > len - 1 - have)
		size = len - 1 - have;
	memcpy(slot + have, data, size);
	slot[have + size] = '\0';
}

static enum MHD_Result
post_field(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *filename, const char *content_type, const char *encoding,
    const char *data, uint64_t off, size_t size)
{
	struct request *req = cls;

	(void)kind;
	(void)content_type;
	(void)encoding;
	if (filename == NULL)
		field_set(&req->fields, key, data, off, size);
	return MHD_YES;
}

/* Appends key=value, percent-encoded, to the query being rebuilt. */
static int
query_add(struct request *req, const char *key, size_t klen, const char *value,
    size_t vlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 have = req->query != NULL ? strlen(req->query) : 0, i, n;
	char		*q;

	if ((q = realloc(req->query, have + 3 * (klen + vlen) + 3)) == NULL)
		return -1;
	req->query = q;
	n = have;
	if (n > 0)
		q[n++] = '&';
	for (i = 0; i < klen + 1 + vlen; i++) {
		unsigned char c;

		if (i == klen) {
			q[n++] = '=';
			continue;
		}
		c = (unsigned char)(i < klen ? key[i] : value[i - klen - 1]);
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		    c == '~') {
			q[n++] = (char)c;
		} else {
			q[n++] = '%';
			q[n++] = hex[c >> 4];
			q[n++] = hex[c & 15];
		}
	}
	q[n] = '\0';
	return 0;
}

static enum MHD_Result
query_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t klen,
    const char *value, size_t vlen)
{
	struct request	*req = cls;
	char		 name[32];

	(void)kind;
	if (value == NULL) {
		value = "";
		vlen = 0;
	}
	if (klen < sizeof(name)) {
		memcpy(name, key, klen);
		name[klen] = '\0';
		field_set(&req->fields, name, value, 0, vlen);
	}
	if (query_add(req, key, klen, value, vlen) == -1) {
		req->out_of_memory = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

static void
text_of(sqlite3_stmt *st, int col, char *out, size_t len)
{
	const unsigned char *v = sqlite3_column_text(st, col);

	if (v != NULL && sqlite3_column_type(st, col) != SQLITE_NULL)
		snprintf(out, len, "%s", v);
}

/* A JSON body's parameters; -1 when it is no JSON object. */
static int
json_fields(struct localapi *a, struct request *req)
{
	sqlite3	*db = queue_db(a->q);
	int	 rc = -1;

	if (req->body.fd != -1)
		return 0;	/* a large JSON body: passed on as it is */
	if (a->json_st == NULL && sqlite3_prepare_v3(db,
	    "SELECT json_extract(?1, '$.chat_id'), json_extract(?1, '$.offset'),"
	    "  json_extract(?1, '$.limit'), json_extract(?1, '$.timeout'),"
	    "  json_extract(?1, '$.allowed_updates'),"
	    "  json_extract(?1, '$.drop_pending_updates')"
	    " WHERE json_valid(?1) AND json_type(?1) = 'object'", -1,
	    SQLITE_PREPARE_PERSISTENT, &a->json_st, NULL) != SQLITE_OK) {
		log_err("local API: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_text(a->json_st, 1, req->body.mem != NULL ? req->body.mem :
	    "", (int)req->body.len, SQLITE_STATIC);
	if (sqlite3_step(a->json_st) == SQLITE_ROW) {
		struct api_fields *f = &req->fields;

		text_of(a->json_st, 0, f->chat_id, sizeof(f->chat_id));
		text_of(a->json_st, 1, f->offset, sizeof(f->offset));
		text_of(a->json_st, 2, f->limit, sizeof(f->limit));
		text_of(a->json_st, 3, f->timeout, sizeof(f->timeout));
		text_of(a->json_st, 4, f->allowed_updates,
		    sizeof(f->allowed_updates));
		text_of(a->json_st, 5, f->drop_pending_updates,
		    sizeof(f->drop_pending_updates));
		rc = 0;
	}
	sqlite3_reset(a->json_st);
	sqlite3_clear_bindings(a->json_st);
	return rc;
}

static int
is_json(const char *content_type)
{
	size_t n = strlen("application/json");

	return content_type != NULL && strncasecmp(content_type,
	    "application/json", n) == 0 && (content_type[n] == '\0' ||
	    content_type[n] == ';' || content_type[n] == ' ');
}

/* ---- routing ------------------------------------------------------------------ */

/* The bot whose token this is, compared in constant time with every bot's
 * (all of them, whichever matches). */
static int
find_bot(struct localapi *a, const char *token, size_t len, size_t *bot)
{
	size_t	 i;
	int	 found = 0;

	for (i = 0; i < a->nbots; i++) {
		const struct bot_config *b = a->bots[i].cfg;

		if (b->token != NULL && secret_equal(token, len, b->token,
		    b->token_len)) {
			*bot = i;
			found = 1;
		}
	}
	return found;
}

/* A file's path as Telegram gives it in getFile: no way up, no oddities. */
static int
file_path_valid(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > 256 || p[0] == '/' || strstr(p, "..") != NULL)
		return 0;
	return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-./") == n;
}

static int
is_local_method(const char *m)
{
	static const char *const local[] = { "setWebhook", "deleteWebhook",
	    "getWebhookInfo", "logOut", "close" };
	size_t i;

	for (i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (strcasecmp(m, local[i]) == 0)
			return 1;
	return 0;
}

/* What the request is, from its path; its token is never kept or logged. */
static void
route(struct localapi *a, struct request *req, const char *url)
{
	const char	*token, *slash;
	int		 file = 0;

	req->kind = REQ_ERROR;
	if (strcmp(url, "/metrics") == 0) {
		req->kind = REQ_METRICS;
		return;
	}
	if (strncmp(url, "/file/bot", 9) == 0) {
		file = 1;
		token = url + 9;
	} else if (strncmp(url, "/bot", 4) == 0)
		token = url + 4;
	else
		return;
	if ((slash = strchr(token, '/')) == NULL)
		return;
	if (!find_bot(a, token, (size_t)(slash - token), &req->bot)) {
		req->kind = REQ_ERROR;
		req->bot = SIZE_MAX;	/* 401, not 404 */
		return;
	}
	if (file) {
		if (file_path_valid(slash + 1) &&
		    (req->path = strdup(slash + 1)) != NULL)
			req->kind = REQ_FILE;
		return;
	}
	if (!botapi_method_valid(slash + 1))
		return;
	snprintf(req->method, sizeof(req->method), "%s", slash + 1);
	if (strcasecmp(req->method, "getUpdates") == 0)
		req->kind = REQ_GET_UPDATES;
	else if (is_local_method(req->method))
		req->kind = REQ_LOCAL;
	else
		req->kind = REQ_PASS;
}

static struct request *
request_new(struct localapi *a, struct MHD_Connection *conn, const char *url,
    const char *method)
{
	struct request	*req;
	const char	*type;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	req->api = a;
	req->conn = conn;
	req->body.fd = -1;
	req->bot = 0;
	route(a, req, url);
	req->is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	req->is_head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	/* A file is read with GET or HEAD, a method called with GET or POST. */
	if (req->kind == REQ_FILE ? !req->is_head &&
	    strcmp(method, MHD_HTTP_METHOD_GET) != 0 : !req->is_post &&
	    strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		req->kind = REQ_ERROR;
	req->body_max = req->kind == REQ_PASS ? UPLOAD_MAX : SMALL_BODY_MAX;
	type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	if (req->is_post && type != NULL && (req->content_type = strdup(type)) == NULL)
		goto fail;
	(void)MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, query_field,
	    req);
	/* Form bodies are read by libmicrohttpd's own parser as they come; it
	 * takes url-encoded and multipart bodies and refuses anything else. */
	if (req->is_post && req->kind != REQ_ERROR && !is_json(type))
		req->pp = MHD_create_post_processor(conn, POST_BUFFER, post_field, req);
	return req;
fail:
	free(req->query);
	free(req->content_type);
	free(req->path);
	free(req);
	return NULL;
}

static void
request_free(struct request *req)
{
	if (req->pp != NULL)
		MHD_destroy_post_processor(req->pp);
	body_free(&req->body);
	free(req->query);
	free(req->content_type);
	free(req->path);
	free(req);
}

/* ---- webhook management, answered here --------------------------------------- */

static int
truthy(const char *v)
{
	return strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0;
}

static void
answer_local(struct localapi *a, struct request *req)
{
	struct api_bot	*b = &a->bots[req->bot];
	char		 buf[256];
	int64_t		 pending;
	int		 n;

	if (strcasecmp(req->method, "getWebhookInfo") == 0) {
		if ((pending = updates_pending(a, b)) < 0) {
			api_error(req, 500, "Internal Server Error: the queue failed");
			return;
		}
		n = snprintf(buf, sizeof(buf), "{\"ok\":true,\"result\":{\"url\":\"\","
		    "\"has_custom_certificate\":false,\"pending_update_count\":%lld}}",
		    (long long)pending);
		api_answer(req, 200, buf, (size_t)n);
		return;
	}
	/* tgq holds the webhook: a framework's start-up must not take it away, nor
	 * empty the queue. */
	if (strcasecmp(req->method, "deleteWebhook") == 0 &&
	    truthy(req->fields.drop_pending_updates))
		log_info("bot %s: deleteWebhook's drop_pending_updates ignored: the "
		    "queue keeps its updates", b->cfg->name);
	else
		log_info("bot %s: %s answered by tgq, not passed on", b->cfg->name,
		    req->method);
	if (strcasecmp(req->method, "setWebhook") == 0)
		n = snprintf(buf, sizeof(buf), "{\"ok\":true,\"result\":true,"
		    "\"description\":\"Webhook was set\"}");
	else if (strcasecmp(req->method, "deleteWebhook") == 0)
		n = snprintf(buf, sizeof(buf), "{\"ok\":true,\"result\":true,"
		    "\"description\":\"Webhook was deleted\"}");
	else
		n = snprintf(buf, sizeof(buf), "{\"ok\":true,\"result\":true}");
	api_answer(req, 200, buf, (size_t)n);
}

/* ---- metrics -------------------------------------------------------------------- */

static int
append(char **out, size_t *len, size_t *cap, const char *fmt, ...)
    TGQ_PRINTF(4, 5);

static int
append(char **out, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	char	*grown;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*out != NULL ? *out + *len : NULL, *out != NULL ?
		    *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if (*out != NULL && (size_t)n < *cap - *len) {
			*len += (size_t)n;
			return 0;
		}
		if ((grown = realloc(*out, *cap * 2 + (size_t)n + 1024)) == NULL)
			return -1;
		*out = grown;
		*cap = *cap * 2 + (size_t)n + 1024;
	}
}

static void
answer_metrics(struct localapi *a, struct request *req)
{
	char	*out = NULL;
	size_t	 len = 0, cap = 0, i;
	int	 rc;

	rc = append(&out, &len, &cap, "# HELP tgq_getupdates_served_total getUpdates "
	    "answered by the local Bot API.\n"
	    "# TYPE tgq_getupdates_served_total counter\n");
	for (i = 0; rc == 0 && i < a->nbots; i++)
		if (a->bots[i].pull)
			rc = append(&out, &len, &cap,
			    "tgq_getupdates_served_total{bot=\"%s\"} %llu\n",
			    a->bots[i].cfg->name,
			    (unsigned long long)a->counters[i].served);
	if (rc == 0)
		rc = append(&out, &len, &cap, "# HELP tgq_passthrough_held_total Calls "
		    "answered 429 after hold_limit.\n"
		    "# TYPE tgq_passthrough_held_total counter\n");
	for (i = 0; rc == 0 && i < a->nbots; i++)
		if (a->bots[i].cfg->token != NULL)
			rc = append(&out, &len, &cap,
			    "tgq_passthrough_held_total{bot=\"%s\"} %llu\n",
			    a->bots[i].cfg->name,
			    (unsigned long long)a->counters[i].held);
	if (rc == 0)
		rc = pass_metrics(a, &out, &len, &cap);
	if (rc == -1) {
		free(out);
		api_error(req, 500, "Internal Server Error: out of memory");
		return;
	}
	api_answer_owned(req, 200, out, len, "text/plain; version=0.0.4");
}

/* ---- the request's life -------------------------------------------------------- */

static void
dispatch(struct localapi *a, struct request *req)
{
	if (req->kind == REQ_ERROR) {
		if (req->bot == SIZE_MAX)
			api_error(req, 401, E_UNAUTHORIZED);
		else
			api_error(req, 404, E_NOT_FOUND);
		return;
	}
	if (req->too_large) {
		api_error(req, 413, "Request Entity Too Large");
		return;
	}
	if (req->out_of_memory) {
		api_error(req, 500, "Internal Server Error: out of memory");
		return;
	}
	if (req->kind == REQ_METRICS) {
		answer_metrics(a, req);
		return;
	}
	if (req->is_post && is_json(req->content_type) && json_fields(a, req) == -1 &&
	    req->kind != REQ_PASS) {
		api_error(req, 400, "Bad Request: can't parse JSON object");
		return;
	}
	switch (req->kind) {
	case REQ_GET_UPDATES:
		updates_serve(a, req);
		break;
	case REQ_LOCAL:
		answer_local(a, req);
		break;
	default:
		pass_submit(a, req);
		break;
	}
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct localapi	*a = cls;
	struct request	*req = *con_cls;

	(void)version;
	if (req == NULL) {
		if ((req = request_new(a, conn, url, method)) == NULL)
			return MHD_NO;
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (req->kind == REQ_ERROR || req->too_large || req->out_of_memory)
			return MHD_YES;		/* read and dropped */
		if ((size_t)req->body.size + n > req->body_max) {
			req->too_large = 1;
			body_free(&req->body);
			return MHD_YES;
		}
		if (body_add(&req->body, upload_data, n) == -1) {
			req->out_of_memory = 1;	/* or no room to spool */
			body_free(&req->body);
			return MHD_YES;
		}
		if (req->pp != NULL)
			(void)MHD_post_process(req->pp, upload_data, n);
		return MHD_YES;
	}
	if (!req->answered && !req->suspended && req->pass == NULL &&
	    req->poll_deadline_ms == 0)
		dispatch(a, req);
	return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct localapi	*a = cls;
	struct request	*req = *con_cls;

	(void)conn;
	(void)toe;
	if (req == NULL)
		return;
	updates_forget(a, req);
	pass_forget(a, req);
	request_free(req);
	*con_cls = NULL;
}

/* ---- the listening socket -------------------------------------------------- */

static int
listen_socket(struct localapi *a, const struct listen_addr *la, char *err,
    size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct stat		 st;
	int			 fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (la->family == AF_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", la->path);
		sslen = sizeof(*un);
		/* A socket left by a drain that died is taken over; anything
		 * else at the path is not ours to remove. */
		if (lstat(la->path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(la->path);
	} else if (la->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)la->port);
		inet_pton(AF_INET6, la->host, &in6->sin6_addr);
		sslen = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)la->port);
		inet_pton(AF_INET, la->host, &in->sin_addr);
		sslen = sizeof(*in);
	}
	if ((fd = socket(la->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		goto fail;
	if (la->family != AF_UNIX)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1)
		goto fail;
	/* The socket's group may call the bots: the service's group. */
	if (la->family == AF_UNIX) {
		snprintf(a->unix_path, sizeof(a->unix_path), "%s", la->path);
		if (chmod(la->path, 0660) == -1)
			goto fail;
	}
	if (listen(fd, 128) == -1)
		goto fail;
	a->listen_fd = fd;
	return 0;
fail:
	snprintf(err, errlen, "listen %s: %s", a->cfg->listen, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

int
localapi_open(const struct localapi_env *env, struct localapi **out, char *err,
    size_t errlen)
{
	struct listen_addr	 la;
	struct localapi		*a;
	size_t			 i;

	if (listen_parse(env->cfg->listen, &la, err, errlen) == -1)
		return -1;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->cfg = env->cfg;
	a->q = env->q;
	a->jobs = env->jobs;
	a->sender = env->sender;
	a->listen_fd = -1;
	for (i = 0; i < env->cfg->nbots; i++) {
		a->bots[i].cfg = &env->cfg->bots[i];
		a->bots[i].rl = env->rl[i];
		a->bots[i].pull = env->cfg->bots[i].handler != NULL &&
		    strcmp(env->cfg->bots[i].handler, "pull") == 0;
	}
	a->nbots = env->cfg->nbots;
	if (updates_open(a, err, errlen) == -1 || pass_open(a, err, errlen) == -1 ||
	    listen_socket(a, &la, err, errlen) == -1)
		goto fail;
	a->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL,
	    NULL, on_request, a,
	    MHD_OPTION_LISTEN_SOCKET, a->listen_fd,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
	    MHD_OPTION_END);
	if (a->mhd == NULL) {
		snprintf(err, errlen, "listen %s: libmicrohttpd did not start",
		    env->cfg->listen);
		goto fail;
	}
	log_info("local Bot API on %s", env->cfg->listen);
	*out = a;
	return 0;
fail:
	localapi_close(a);
	return -1;
}

void
localapi_close(struct localapi *a)
{
	int i;

	if (a == NULL)
		return;
	if (a->mhd != NULL) {
		localapi_stop(a);
		/* Nothing may stay suspended when the daemon stops. */
		pass_flush(a, 1);
		/* The answers just queued go out before the connections close:
		 * resuming takes a run, writing another. */
		for (i = 0; i < 3; i++)
			MHD_run(a->mhd);
		MHD_stop_daemon(a->mhd);
	}
	if (a->listen_fd != -1)
		close(a->listen_fd);
	if (a->unix_path[0] != '\0')
		unlink(a->unix_path);
	pass_close(a);
	updates_close(a);
	sqlite3_finalize(a->json_st);
	free(a);
}

int
localapi_fd(const struct localapi *a)
{
	const union MHD_DaemonInfo *info;

	info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return info != NULL ? info->epoll_fd : -1;
}

static int64_t
min64(int64_t x, int64_t y)
{
	return x < y ? x : y;
}

int64_t
localapi_work(struct localapi *a, int64_t now_ms)
{
	MHD_UNSIGNED_LONG_LONG	 t;
	int64_t			 wait;
	int			 runs;

	MHD_run(a->mhd);
	wait = updates_wake(a, now_ms);
	wait = min64(wait, pass_start(a, now_ms));
	/* A run may have read a download's buffer empty enough for its transfer
	 * to go on, and that may bring bytes for a connection waiting for them. */
	for (runs = 0;; runs++) {
		pass_continue(a);
		if (!a->resumed)
			break;
		if (runs == RESUME_RUNS_MAX) {
			wait = 0;
			break;
		}
		a->resumed = 0;
		MHD_run(a->mhd);
	}
	/* A bot gone in those runs may have freed a download's place. */
	wait = min64(wait, pass_start(a, now_ms));
	if (MHD_get_timeout(a->mhd, &t) == MHD_YES)
		wait = min64(wait, t > INT64_MAX ? INT64_MAX : (int64_t)t);
	return wait;
}

int
localapi_answered(struct localapi *a, struct sent *s)
{
	return pass_answered(a, s);
}

void
localapi_stop(struct localapi *a)
{
	a->stopping = 1;
	updates_flush(a);
	pass_flush(a, 0);
}
