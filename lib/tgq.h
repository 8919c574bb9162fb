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

#include "config_keys.h"
#include "handler_kinds.h"

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
/* For durations (the latency histograms): never jumps with the wall clock. */
int64_t	 now_monotonic_us(void);
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
/* Wipes a secret's len bytes, so that no later core dump shows them, and frees
 * it; NULL does nothing. */
void	 secret_free(char *s, size_t len);
/* A bot token: digits, ':', then 30-100 characters of A-Z a-z 0-9 _ -. */
int	 token_valid(const char *s, size_t len);
/* The largest secret file read (a token's or a webhook secret's). */
#define SECRET_FILE_MAX 4096
/* A secret file's lines: the secret, then (during a rotation) the previous one. */
#define SECRET_LINES_MAX 2
struct secret_lines {
	const char	*line[SECRET_LINES_MAX];	/* into the text parsed */
	size_t		 len[SECRET_LINES_MAX];
	size_t		 n;
};
/* Splits text[0..len) into one or two valid secrets; -1 with the line that is
 * wrong (1-based) and why, a fixed text that quotes nothing. */
int	 secret_lines_parse(const char *text, size_t len, struct secret_lines *out,
	    int *bad_line, const char **why);
/* 1 when cand is cur or prev (NULL: none); both compared in constant time
 * whichever matches.  cur NULL: 0. */
int	 secret_pair_equal(const char *cand, size_t len, const char *cur,
	    size_t curlen, const char *prev, size_t prevlen);

/*
 * What tells a changed webhook secret without showing it: HMAC-SHA-256 of the
 * secret keyed with the bot token, as 64 hex digits and a NUL in hex.
 */
#define SECRET_FINGERPRINT_LEN 64
void	 secret_fingerprint(const char *token, size_t token_len, const char *secret,
	    size_t secret_len, char hex[SECRET_FINGERPRINT_LEN + 1]);

/* sha256.c: FIPS 180-4 SHA-256 and RFC 2104 HMAC, for secret_fingerprint(). */
#define SHA256_LEN 32
void	 sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
void	 hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
	    unsigned char out[SHA256_LEN]);

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
/* A list of Telegram user ids (users.c). */
struct user_list {
	int64_t	*ids;
	size_t	 n;
};
/* Telegram's limit on a message's text, in characters. */
#define DENY_TEXT_MAX 4096
struct bot_config {
	char	 name[BOT_NAME_MAX + 1];
	char	*token;		/* NULL when not configured */
	size_t	 token_len;
	char	*secret;	/* NULL when not configured */
	size_t	 secret_len;
	/* The secret before it, accepted too until a rotation ends (the secret
	 * file's second line); NULL when none. */
	char	*secret_prev;
	size_t	 secret_prev_len;
	char	*secret_path;	/* the file it was read from; NULL: the environment */
	enum secret_from { SECRET_FROM_NONE, SECRET_FROM_ENV, SECRET_FROM_FILE,
		SECRET_FROM_CREDENTIAL } secret_from;
	/* An http handler's X-Telegram-Bot-Api-Secret-Token when it is not the
	 * webhook secret: what forward_secret_file holds (NULL: none). */
	char	*forward_secret;
	size_t	 forward_secret_len;
	/* The keys of a [bot NAME] section, from their rows in config_keys.h. */
	CONFIG_BOT_KEYS(CONFIG_FIELD)
};
/* update_types.c */
#define UPDATE_TYPE_MAX 32
/* "message, callback_query" (commas or blanks between) as the JSON array
 * ["message","callback_query"] in a new string, each name checked against
 * Telegram's update types, repeats dropped; -1 with why, which names an entry
 * by its place. */
int	 update_types_json(const char *text, char **json, char *err, size_t errlen);
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
struct config {
	char		*path;		/* the file read, NULL when none */
	/* The keys of [tgq], from their rows in config_keys.h. */
	CONFIG_TGQ_KEYS(CONFIG_FIELD)
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
/* 1 when the handler's kind forwards each update to a URL (http://, https://);
 * its form was checked when the configuration loaded. */
int	 config_handler_is_http(const char *handler);
const struct bot_config *config_bot(const struct config *cfg, const char *name,
	    size_t namelen);
/* One line per key, tab-separated: section, name, environment variable, type,
 * default ("-": none); then the variables that stand for no key. */
void	 config_print_keys(FILE *out);

/* queue.c */
#define QUEUE_SCHEMA_VERSION 8
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
	int64_t		 arrived_us;	/* tgq-webhook: now_monotonic_us() when its
					 * request arrived; 0 when not timed */
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
/* set-webhook's record of what it registered for a bot: the secret's
 * fingerprint (secret_fingerprint()) and when.  queue_registration() returns 1
 * and fills them, 0 when the bot has none, -1 with err. */
int	 queue_registration(struct queue *q, const char *bot,
	    char fingerprint[SECRET_FINGERPRINT_LEN + 1], int64_t *registered_at,
	    char *err, size_t errlen);
enum queue_status queue_record_registration(struct queue *q, const char *bot,
	    const char *url, const char *fingerprint, char *err, size_t errlen);
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
	M_COUNT
};
struct metrics;
/* Maps <database>-metrics (created when missing); never fails for want of the
 * file: the counters are then this process's own.  NULL only without memory. */
struct metrics *metrics_open(const char *database);
void	 metrics_close(struct metrics *m);
void	 metrics_add(struct metrics *m, enum metric k, uint64_t n);
uint64_t metrics_get(const struct metrics *m, enum metric k);
/*
 * Latency histograms, per bot, in the same shared file: a process adds each
 * observation to its bucket with an atomic addition, so several webhook
 * processes and the drains report one histogram.  The order is the file's
 * layout: append only (the file has room for four).
 */
enum histogram {
	H_INGEST,	/* request arrived in tgq-webhook -> its COMMIT */
	H_HANDLER,	/* one handler run in tgq-drain */
	H_CALL,		/* one Bot API call: sent -> Telegram's answer */
	H_FORWARD,	/* an http handler: update POSTed -> the bot's answer */
	H_COUNT
};
/* The buckets' upper bounds (inclusive), in microseconds; +Inf follows.  Fixed:
 * other bounds would be another layout of the file. */
#define HISTOGRAM_BOUNDS 16
extern const int64_t histogram_bounds_us[HISTOGRAM_BOUNDS];
/* Counts one duration of bot's: a configured bot's name, never bytes of a
 * request (each new name takes one of METRICS_HISTOGRAM_BOTS slots for good;
 * once all are taken, new names are not counted). */
void	 metrics_observe(struct metrics *m, enum histogram h, const char *bot,
	    int64_t us);
/* Counters by bot, in the same slots: the drain's calls by outcome.  The order
 * is the file's layout: append only (room for METRICS_BOT_COUNTERS). */
enum bot_metric {
	BM_CALLS_SENT, BM_CALLS_429, BM_CALLS_RETRIED, BM_CALLS_DEAD,
	BM_CALLS_MIGRATED,
	BM_COUNT
};
#define METRICS_BOT_COUNTERS 16
void	 metrics_add_bot(struct metrics *m, enum bot_metric k, const char *bot,
	    uint64_t n);
struct histogram_counts {
	char		 bot[BOT_NAME_MAX + 1];
	uint64_t	 buckets[HISTOGRAM_BOUNDS + 1];	/* each its own, not cumulative */
	uint64_t	 sum_us;
};
#define METRICS_HISTOGRAM_BOTS 64
/* One entry per bot that has one (at most max, in the order the bots first
 * appeared); returns how many. */
size_t	 metrics_histograms(const struct metrics *m, enum histogram h,
	    struct histogram_counts *out, size_t max);
struct bot_count {
	char		 bot[BOT_NAME_MAX + 1];
	uint64_t	 value;
};
/* The same for one counter by bot. */
size_t	 metrics_bot_counts(const struct metrics *m, enum bot_metric k,
	    struct bot_count *out, size_t max);

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
