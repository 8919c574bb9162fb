/*
 * tgq internal interface: everything lib/ offers the programs, sectioned by the file
 * that defines it.  Functions return 0 on success and -1 on failure (or a small enum),
 * and fill a caller-owned error buffer; only main() exits.
 */
#ifndef TGQ_H
#define TGQ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define TGQ_VERSION "0.1.0"

#define TGQ_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* util.c */
/*
 * One bounded parser for every number in tgq.  The text must be all digits (an optional
 * leading '-'), within [min, max]; on failure *errstr says why ("not a number",
 * "too small", "too large").  parse_size also accepts a K, M or G suffix (powers of
 * 1024), parse_duration an s, m, h or d suffix (seconds when none).
 */
int	 parse_int(const char *text, int64_t min, int64_t max, int64_t *out,
	    const char **errstr);
int	 parse_size(const char *text, int64_t min, int64_t max, int64_t *out,
	    const char **errstr);
int	 parse_duration(const char *text, int64_t min, int64_t max, int64_t *out,
	    const char **errstr);
int64_t	 now_unix(void);
int64_t	 now_unix_ms(void);
/* Reads a whole small file (at most max bytes) into a new NUL-terminated buffer. */
int	 read_small_file(const char *path, size_t max, char **out, size_t *outlen,
	    char *err, size_t errlen);
/* The name of the user this process runs as ("uid 1234" when it has none), for
 * errors that a permission decides: the fix depends on who is asking. */
const char *running_user(char *buf, size_t len);
/* Every program calls this first: files it creates (the queue, its -wal and -shm,
 * the metrics file) are 0640, for the service's group, whoever started it. */
#define TGQ_UMASK 027
void	 tgq_umask(void);
/*
 * Opens /dev/null on each of the descriptors 0, 1 and 2 that is closed, so that a
 * file the program opens later (the queue) never becomes its standard output or
 * error, where a log line would be written into it; an open one is left alone
 * (tgq-webhook's fd 0 may be its FastCGI socket).  -1 when it cannot.
 */
int	 check_std_fds(void);
/*
 * The next entry of a list separated by commas or blanks, copied into entry and
 * NUL-terminated, *p moved past it: 1, or 0 at the end, or -1 when the entry does
 * not fit in entrylen bytes.
 */
int	 list_next(const char **p, char *entry, size_t entrylen);

/* log.c */
enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7 };
void	 log_init(const char *progname, enum log_level max_level);
void	 log_err(const char *fmt, ...) TGQ_PRINTF(1, 2);
void	 log_warnx(const char *fmt, ...) TGQ_PRINTF(1, 2);
void	 log_info(const char *fmt, ...) TGQ_PRINTF(1, 2);
void	 log_debug(const char *fmt, ...) TGQ_PRINTF(1, 2);
/*
 * Copies request-derived bytes into dst for a log line: printable ASCII stays, every
 * other byte becomes \xNN; the result is cut at dstlen - 1 with "..." when it is longer.
 */
const char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/* secret.c */
/* Constant-time comparison: the time depends on the lengths only, never on contents. */
int	 secret_equal(const char *a, size_t alen, const char *b, size_t blen);
/* Telegram's rule for webhook secrets: 1-256 characters of A-Z a-z 0-9 _ -. */
int	 secret_valid(const char *s, size_t len);
/* A bot token: digits, ':', then 30-100 characters of A-Z a-z 0-9 _ -. */
int	 token_valid(const char *s, size_t len);

/* json.c */
#define JSON_MAX_DEPTH 100
#define JSON_KIND_MAX 48
struct update_info {
	int64_t	 update_id;
	/* The update's kind: its first top-level key, other than update_id, whose value
	 * is an object ("message", "callback_query", ...); "" when there is none. */
	char	 kind[JSON_KIND_MAX];
	/* <kind>.chat.id, or <kind>.message.chat.id (callback queries); has_chat_id is 0
	 * when the update carries neither. */
	int	 has_chat_id;
	int64_t	 chat_id;
};
/*
 * Rewrites each escaped unpaired surrogate (\ud800 with no low half after it, or a
 * low half alone) in the JSON text buf[0..len) as \ufffd, in place: the same six
 * bytes.  Returns how many it replaced.
 */
size_t	 json_replace_lone_surrogates(char *buf, size_t len);
/* 1 when buf[0..len) is well-formed UTF-8 (no surrogates, no overlong forms). */
int	 utf8_valid(const char *buf, size_t len);
/* The length of the character at p by the same rules: 1 for ASCII, 2-4 for a
 * well-formed sequence, 0 for a byte that starts none (or avail 0). */
size_t	 utf8_char_len(const char *p, size_t avail);
/*
 * Validates buf[0..len) as strict RFC 8259 JSON in UTF-8, nested at most max_depth
 * deep, whose top level is an object with exactly one "update_id" key holding an
 * integer that fits in 64 bits.  Fills *info.  On failure returns -1 and writes a
 * short reason without any of the input to err.
 */
int	 json_scan_update(const char *buf, size_t len, int max_depth,
	    struct update_info *info, char *err, size_t errlen);

/* cidr.c */
#define CIDR_MAX 64
struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];
	int		 prefix;
};
struct cidr_list {
	size_t		 n;
	struct cidr	 nets[CIDR_MAX];
};
/* "149.154.160.0/20, 2001:db8::/32, 10.1.2.3, telegram": comma- or blank-separated;
 * "telegram" stands for Telegram's published webhook ranges.  On failure err
 * names the entry that is wrong. */
int	 cidr_parse(const char *text, struct cidr_list *list, char *err, size_t errlen);
/* 1 when the address (text, IPv4 or IPv6, IPv4-mapped IPv6 included) is in list. */
int	 cidr_match(const struct cidr_list *list, const char *addr);

/* listen.c */
/* Where tgq-drain serves the local Bot API: "127.0.0.1:PORT" (any of
 * 127.0.0.0/8), "[::1]:PORT", "localhost:PORT" or an absolute unix socket path;
 * nothing else, so that the tokens in its requests never leave the machine. */
struct listen_addr {
	int	 family;	/* AF_INET, AF_INET6 or AF_UNIX */
	char	 host[48];	/* numeric */
	int	 port;
	char	 path[108];	/* AF_UNIX */
};
int	 listen_parse(const char *text, struct listen_addr *out, char *err,
	    size_t errlen);

/* config.c */
#define CONFIG_DEFAULT_PATH "/etc/tgq/tgq.conf"
#define CONFIG_ENV "TGQ_CONFIG"	/* names another file */
#define CONFIG_MAX_BOTS 64
#define BOT_NAME_MAX 32
enum durability { DURABILITY_FULL, DURABILITY_NORMAL };
struct bot_config {
	char	 name[BOT_NAME_MAX + 1];
	char	*token;		/* NULL when not configured */
	size_t	 token_len;
	char	*secret;	/* NULL when not configured */
	size_t	 secret_len;
	char	*secret_path;	/* the file it was read from; NULL: the environment */
	char	*token_file;	/* as configured (NULL: none), read when needed */
	char	*secret_file;
	char	*webhook_url;
	char	*handler;
	/* An http handler's X-Telegram-Bot-Api-Secret-Token when it is not the
	 * webhook secret: the file as configured, and what it holds (NULL: none). */
	char	*forward_secret_file;
	char	*forward_secret;
	size_t	 forward_secret_len;
	/* Telegram's limits, which the drain keeps to: calls per second for the bot,
	 * per second for one chat, per minute for one group; 0 turns one off. */
	int64_t	 rate_global;
	int64_t	 rate_chat;
	int64_t	 rate_group;
	/* Whose updates reach the handler: n 0 means everyone's. */
	struct user_list {
		int64_t	*ids;
		size_t	 n;
	} allowed_users;
	char	*deny_text;	/* the answer to a message refused; NULL: none */
};
/* users.c */
/* Parses "11111, 22222" (positive ids, commas or blanks between them; none is
 * an empty list) into list, replacing what it held; -1 with why, which names the
 * entry by its place, never its text. */
#define USER_LIST_MAX 10000
int	 user_list_parse(const char *text, struct user_list *list, char *err,
	    size_t errlen);
/* 1 when the list is empty (everyone) or holds user. */
int	 user_list_allows(const struct user_list *list, int64_t user);
void	 user_list_free(struct user_list *list);
/* Telegram's limit on a message's text, in characters. */
#define DENY_TEXT_MAX 4096
struct config {
	char		*path;		/* the file read, NULL when none */
	char		*database;
	enum durability	 durability;
	int64_t		 max_body;
	char		*api_url;
	int64_t		 busy_timeout_ms;
	int64_t		 retry_after_s;	/* what a 503 tells Telegram */
	int64_t		 threads;	/* FastCGI request threads per process */
	/* Who may call the webhook (none: anyone with the secret), and which
	 * peers' X-Forwarded-For is believed. */
	struct cidr_list allowed_ips;
	struct cidr_list trusted_proxies;
	enum log_level	 log_level;
	/* …/ready answers 503 once the oldest pending update is older than this. */
	int64_t		 stall_after_s;
	/* tgq-drain */
	int64_t		 max_attempts;	/* failed handler runs or sends before dead */
	int64_t		 handler_timeout_s;
	int64_t		 max_output;	/* bytes a handler may print */
	int64_t		 send_timeout_s;
	int64_t		 lease_s;	/* how long a claim holds when its drain dies */
	int64_t		 retain_s;	/* done updates and sent calls are kept this long */
	int64_t		 max_in_flight;	/* Bot API calls at once */
	int64_t		 handlers;	/* handler processes at once */
	/* tgq-drain --follow's local Bot API: where (NULL: none), and how long a
	 * call passed through may wait for the rate limits before it is answered
	 * 429. */
	char		*listen;
	int64_t		 hold_limit_s;
	size_t		 nbots;
	struct bot_config bots[CONFIG_MAX_BOTS];
};
/*
 * Reads the configuration: the file named by TGQ_CONFIG (an error when it is missing
 * or empty), else /etc/tgq/tgq.conf when it exists (any error but "no such file", a
 * folder this user cannot enter for one, is an error), then the environment on top:
 * each key's variable (config_print_keys lists them; the [bot] keys' describe the
 * bot "default"), and TGQ_BOT_TOKEN and TGQ_WEBHOOK_SECRET, the secrets themselves.
 * Secret files that are relative paths are looked up in $CREDENTIALS_DIRECTORY when
 * it is set.  Errors say "file:line: reason" and never quote the line.
 * config_free() releases what it holds.
 */
int	 config_load(const char *path_override, struct config *cfg, char *err,
	    size_t errlen);
/* The same, reading only the secrets a program uses: tgq-webhook needs no token
 * and tgq-drain no webhook secret, so each unit passes only its own. */
#define CONFIG_NEED_TOKENS	0x1
#define CONFIG_NEED_SECRETS	0x2
/* Every exec: handler's program exists, is a regular file and executable by this
 * user (its form, "exec:" and an absolute path, is always checked). */
#define CONFIG_NEED_HANDLERS	0x4
/* The secret each http(s):// handler forwards: forward_secret_file, else the
 * webhook secret (read for those bots only). */
#define CONFIG_NEED_FORWARD_SECRETS	0x8
int	 config_load_for(const char *path_override, unsigned need,
	    struct config *cfg, char *err, size_t errlen);
void	 config_free(struct config *cfg);
/* Checks an exec: handler's program as CONFIG_NEED_HANDLERS does: 0 when the
 * handler is echo or the program runs, else -1 with why (naming the program, never
 * the handler's arguments, which may hold a secret). */
int	 config_check_handler(const struct bot_config *b, char *err, size_t errlen);
/* 1 when the handler is an http:// or https:// URL (the drain forwards each
 * update there); its form was checked when the configuration loaded. */
int	 config_handler_is_http(const char *handler);
const struct bot_config *config_bot(const struct config *cfg, const char *name,
	    size_t namelen);
/* One line per key, tab-separated: section, name, environment variable, type,
 * default ("-": none); then the variables that stand for no key. */
void	 config_print_keys(FILE *out);

/* queue.c */
#define QUEUE_SCHEMA_VERSION 7
/* A retried delivery within this window is a duplicate; after it, Telegram may have
 * started update_id afresh, so the same id is a new update. */
#define QUEUE_DEDUPE_WINDOW_S (24 * 60 * 60)
/* A queue is used by one thread at a time (its connection is opened NOMUTEX). */
struct queue;
enum queue_status {
	QUEUE_OK = 0,
	QUEUE_BUSY,		/* locked past busy_timeout */
	QUEUE_UNAVAILABLE,	/* read-only, full, I/O error, corrupt, cannot open */
};
struct queue_item {
	const char	*bot;
	int64_t		 update_id;
	const char	*body;
	size_t		 body_len;
	const char	*kind;		/* "" for none */
	int		 has_chat_id;
	int64_t		 chat_id;
	int64_t		 received_at;
	int		 duplicate;	/* out: 1 when the update was already queued */
};
struct queue_health {
	int64_t	 pending;		/* new + leased */
	int64_t	 dead;
	int64_t	 oldest_pending_age_s;	/* 0 when nothing is pending */
	int64_t	 bots_down;		/* rows of bot_down */
};
int	 queue_open(const char *path, enum durability durability,
	    int64_t busy_timeout_ms, struct queue **out, char *err, size_t errlen);
/* For readers that may not write the queue or its folder (queue commands run by
 * an operator in its group): no lock, no migration, statements that read only. */
int	 queue_open_read(const char *path, int64_t busy_timeout_ms,
	    struct queue **out, char *err, size_t errlen);
void	 queue_close(struct queue *q);
/* Stores all items in one transaction; on failure nothing of the batch is stored. */
enum queue_status queue_put_batch(struct queue *q, struct queue_item *items, size_t n,
	    char *err, size_t errlen);
enum queue_status queue_health(struct queue *q, struct queue_health *h, char *err,
	    size_t errlen);
/*
 * Whether a write could begin now: the write lock, taken within max_wait_ms and
 * given back (BEGIN IMMEDIATE, then ROLLBACK: nothing is written, nothing
 * synced), and at least min_free bytes free beside the file (a lock is granted on
 * a full disk; the first page written is not).  QUEUE_BUSY: another writer kept
 * the queue; QUEUE_UNAVAILABLE: read-only, full, I/O error, cannot open.
 */
enum queue_status queue_writable(struct queue *q, int64_t max_wait_ms,
	    int64_t min_free, char *err, size_t errlen);
/* WAL pages after which a COMMIT also checkpoints (SQLite's default: 1000); kept
 * across reconnects.  0 on success, -1 with err. */
int	 queue_set_checkpoint(struct queue *q, int pages, char *err, size_t errlen);
/* Caps what SQLite keeps in memory in this process (page caches), all
 * connections together; a soft limit: SQLite frees cache pages to stay below. */
void	 queue_limit_memory(int64_t bytes);
/* `tgq poll`: stores polled updates and the bot's next getUpdates offset in one
 * transaction, and reads that offset back (0 when the bot never polled). */
enum queue_status queue_put_polled(struct queue *q, struct queue_item *items,
	    size_t n, const char *bot, int64_t next_offset, char *err, size_t errlen);
int	 queue_poll_offset(struct queue *q, const char *bot, int64_t *offset,
	    char *err, size_t errlen);
/* For the programs that run their own statements on the queue (drain, CLI). */
struct sqlite3 *queue_db(struct queue *q);
/*
 * Every write to the queue is one of these: the lock on <database>-lock, then
 * BEGIN IMMEDIATE.  max_wait_ms is how long to wait for another writer's lock
 * (QUEUE_WAIT_FOREVER: as long as it takes; the drain, whose thread also drives
 * the network, waits briefly).  They nest: only the outermost begins and ends the
 * transaction, and a queue_rollback() inside makes the outermost queue_commit()
 * roll back and fail.  QUEUE_BUSY: another writer kept the queue.
 */
#define QUEUE_WAIT_FOREVER (-1)
enum queue_status queue_begin(struct queue *q, int64_t max_wait_ms, char *err,
	    size_t errlen);
enum queue_status queue_commit(struct queue *q, char *err, size_t errlen);
void	 queue_rollback(struct queue *q);
/* What a SQLite result code means for the queue: the one busy classification. */
enum queue_status queue_status_of(int sqlite_rc);
/* Retention (the drain) and `tgq purge`: which rows may go. */
enum queue_purge_what {
	QUEUE_PURGE_SENT_CALLS,
	QUEUE_PURGE_DONE_UPDATES,	/* none of whose calls still waits */
	QUEUE_PURGE_DEAD_CALLS,
	QUEUE_PURGE_DEAD_UPDATES,
	QUEUE_PURGE_N
};
struct queue_purge {
	enum queue_purge_what	 what;
	int64_t			 before;	/* older than this, unix s */
	const char		*bot;		/* NULL: every bot */
	int64_t			 batch;		/* rows per write transaction */
	int			 max_batches;	/* 0: until done */
	int64_t			 max_wait_ms;	/* as queue_begin() */
};
/* Deletes in batches until less than a batch is left; *deleted counts what went,
 * also when a later batch failed. */
enum queue_status queue_purge(struct queue *q, const struct queue_purge *p,
	    int64_t *deleted, char *err, size_t errlen);
void	 queue_lock(struct queue *q);
/* 0 when locked within max_wait_ms, -1 when another writer kept it. */
int	 queue_trylock(struct queue *q, int64_t max_wait_ms);
void	 queue_unlock(struct queue *q);

/* metrics.c */
/* The counters of /metrics; the order is the file's layout: append only. */
enum metric {
	M_RECEIVED, M_DUPLICATES, M_UNAVAILABLE,
	M_REJECTED_ROUTE, M_REJECTED_METHOD, M_REJECTED_IP, M_REJECTED_SECRET,
	M_REJECTED_LENGTH, M_REJECTED_SIZE, M_REJECTED_TYPE, M_REJECTED_BODY,
	M_HANDLED, M_HANDLER_FAILED, M_UPDATES_DEAD,
	M_SENT, M_RETRIED, M_CALLS_DEAD, M_429, M_MIGRATED,
	/* tgq_forward_seconds: one counter per bucket of FORWARD_BUCKETS_MS
	 * (each answer counts in its own bucket only), the last for the slower
	 * ones; then their sum in microseconds. */
	M_FORWARD_BUCKET,
	M_FORWARD_SUM_US = M_FORWARD_BUCKET + 10,
	M_COUNT
};
/* The http handler's answer times, upper bounds of the buckets in ms. */
#define FORWARD_BUCKETS_MS { 1, 2, 5, 10, 25, 100, 500, 2500, 10000 }
#define FORWARD_NBUCKETS 9
struct metrics;
/* Maps <database>-metrics (created when missing); never fails for want of the
 * file: the counters are then this process's own.  NULL only without memory. */
struct metrics *metrics_open(const char *database);
void	 metrics_close(struct metrics *m);
void	 metrics_add(struct metrics *m, enum metric k, uint64_t n);
uint64_t metrics_get(const struct metrics *m, enum metric k);
/* One answer of an http handler, after us microseconds. */
void	 metrics_forward(struct metrics *m, int64_t us);

/* botapi.c */
#define BOTAPI_METHOD_MAX 64
struct botapi_buffer {
	char	*data;		/* NUL-terminated; may hold NULs */
	size_t	 len, cap, max;
	int	 overflow;	/* the answer was larger than max */
};
enum botapi_outcome {
	BOTAPI_OK,		/* ok: true */
	BOTAPI_RETRY_AFTER,	/* 429: wait retry_after_s, not a failure */
	BOTAPI_MIGRATE,		/* the group became a supergroup: resend there */
	BOTAPI_REJECTED,	/* other 4xx: sending again cannot help */
	BOTAPI_TRANSIENT,	/* 5xx, network, timeouts, answers that are not JSON */
};
struct botapi_answer {
	enum botapi_outcome	 outcome;
	long			 http_status;
	int64_t			 error_code;
	int64_t			 retry_after_s;
	int64_t			 migrate_to_chat_id;
	char			 description[256];
	char			*result;	/* JSON text, BOTAPI_OK only */
};
struct botapi_parser;
typedef void CURL;
struct curl_slist;
/* Method names go into the URL: letters only. */
int	 botapi_method_valid(const char *method);
int	 botapi_url(char *buf, size_t buflen, const char *api_url, const char *token,
	    const char *method);
struct curl_slist *botapi_json_headers(void);
int	 botapi_easy_setup(CURL *easy, const char *api_url, int64_t timeout_s,
	    struct curl_slist *headers, struct botapi_buffer *answer, char *errbuf);
void	 botapi_buffer_reset(struct botapi_buffer *b);
void	 botapi_buffer_free(struct botapi_buffer *b);
int	 botapi_parser_new(struct botapi_parser **out, char *err, size_t errlen);
void	 botapi_parser_free(struct botapi_parser *p);
/* Reads one answer (transport_ok 0: the transfer failed with transport_error). */
void	 botapi_classify(struct botapi_parser *p, int transport_ok,
	    const char *transport_error, long http_status, const char *body,
	    size_t len, struct botapi_answer *a);
void	 botapi_answer_free(struct botapi_answer *a);

#endif
