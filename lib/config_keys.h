/*
 * Every configuration key, one row each: the only place a key is declared.  Each
 * list is expanded twice: into the fields of struct config or struct bot_config
 * (tgq.h), and into lib/config.c's config_keys[], the table that the file, the
 * environment, the defaults and `tgq-webhook --print-keys` all walk.  A new key is
 * a row here, its entry in tgq.conf(5) and its row in the README's table.
 *
 * The first column is the row's shape, which decides the field's C type and the
 * columns that follow:
 *	NUMBER(name, variable, type, field, min, max, range, default, doc)
 *		int64_t; type KEY_INT, KEY_SIZE or KEY_DURATION
 *	STRING(name, variable, type, field, prefixes, rule, default, doc)
 *		char *; type KEY_PATH, KEY_URL, KEY_HANDLER, KEY_UPDATES, KEY_IP or KEY_LISTEN
 *	CHOICE(name, variable, C enum type, field, choices, rule, default, flags, doc)
 *		the enum, stored as an int
 *	TEXT(name, variable, field, min, max, rule, default, doc)
 *		char *, min to max characters
 *	CIDRS(name, variable, field, doc)	struct cidr_list
 *	USERS(name, variable, field, doc)	struct user_list
 * name and variable are the key in the file and in the environment; range or rule
 * is what an error says the value must be; default is as written in the file
 * (NULL: none); choices and prefixes are tables in lib/config.c; doc says what the
 * field is for, for the reader (nothing prints it).  The rows keep the order of
 * --print-keys.  lib/config.c refuses at compile time a type that its shape
 * cannot store.
 */
#ifndef CONFIG_KEYS_H
#define CONFIG_KEYS_H

/* [tgq]: struct config */
#define CONFIG_TGQ_KEYS(X) \
	X(STRING, "database", "TGQ_DATABASE", KEY_PATH, database, NULL, NULL, \
	    "/var/lib/tgq/queue.db", "the queue's SQLite file") \
	X(CHOICE, "durability", "TGQ_DURABILITY", enum durability, durability, \
	    durabilities, "must be full or normal", "full", 0, \
	    "how a commit is synced: whether a 200 survives power loss") \
	X(NUMBER, "max_body", "TGQ_MAX_BODY", KEY_SIZE, max_body, 1024, \
	    64 * 1024 * 1024, "1K to 64M", "1M", "bytes of an update's body") \
	X(STRING, "api_url", "TGQ_API_URL", KEY_URL, api_url, http_urls, \
	    "must start with https:// or http://", "https://api.telegram.org", \
	    "the Bot API's base URL") \
	X(NUMBER, "busy_timeout", "TGQ_BUSY_TIMEOUT", KEY_INT, busy_timeout_ms, 0, \
	    60000, "0 to 60000 ms", "5000", "how long to wait for the queue's lock") \
	X(NUMBER, "retry_after", "TGQ_RETRY_AFTER", KEY_DURATION, retry_after_s, 1, \
	    3600, "1 s to 1 h", "5", "what a 503 tells Telegram") \
	X(NUMBER, "threads", "TGQ_THREADS", KEY_INT, threads, 1, 64, "1 to 64", "1", \
	    "FastCGI request threads per process") \
	X(NUMBER, "idle_timeout", "TGQ_IDLE_TIMEOUT", KEY_DURATION, idle_timeout_s, \
	    1, 86400, "1 s to 1 d", "65s", "a kept FastCGI connection with no " \
	    "request for this long is closed") \
	X(CHOICE, "log_level", "TGQ_LOG_LEVEL", enum log_level, log_level, \
	    log_levels, "must be err, warning, info or debug", "info", KEY_ANY_CASE, \
	    "the least severe level logged") \
	X(NUMBER, "max_attempts", "TGQ_MAX_ATTEMPTS", KEY_INT, max_attempts, 1, \
	    1000, "1 to 1000", "5", "failed handler runs or sends before dead") \
	X(NUMBER, "handler_timeout", "TGQ_HANDLER_TIMEOUT", KEY_DURATION, \
	    handler_timeout_s, 1, 3600, "1 s to 1 h", "10s", \
	    "a handler running longer is killed") \
	X(NUMBER, "max_output", "TGQ_MAX_OUTPUT", KEY_SIZE, max_output, 1024, \
	    64 * 1024 * 1024, "1K to 64M", "1M", "bytes a handler may print") \
	X(NUMBER, "send_timeout", "TGQ_SEND_TIMEOUT", KEY_DURATION, send_timeout_s, \
	    1, 600, "1 s to 10 m", "30s", "one Bot API call's whole time") \
	X(NUMBER, "lease", "TGQ_LEASE", KEY_DURATION, lease_s, 2, 86400, \
	    "2 s to 1 d", "60s", "how long a claim holds when its drain dies") \
	X(NUMBER, "retain", "TGQ_RETAIN", KEY_DURATION, retain_s, 60, \
	    3650 * 86400, "1 m to 10 years", "7d", \
	    "done updates and sent calls are kept this long") \
	X(NUMBER, "max_in_flight", "TGQ_MAX_IN_FLIGHT", KEY_INT, max_in_flight, 1, \
	    1000, "1 to 1000", "16", "Bot API calls at once") \
	X(NUMBER, "handlers", "TGQ_HANDLERS", KEY_INT, handlers, 1, 256, \
	    "1 to 256", "4", "handler processes at once") \
	X(CIDRS, "allowed_ips", "TGQ_ALLOWED_IPS", allowed_ips, \
	    "who may call the webhook (none: anyone with the secret)") \
	X(CIDRS, "trusted_proxies", "TGQ_TRUSTED_PROXIES", trusted_proxies, \
	    "the peers whose X-Forwarded-For is believed") \
	X(NUMBER, "stall_after", "TGQ_STALL_AFTER", KEY_DURATION, stall_after_s, \
	    1, 7 * 86400, "1 s to 7 d", "60s", \
	    "…/ready answers 503 once the oldest pending update is older") \
	X(STRING, "listen", "TGQ_LISTEN", KEY_LISTEN, listen, NULL, NULL, NULL, \
	    "tgq-drain --follow's local Bot API: a loopback address:port or a " \
	    "unix socket; NULL: none") \
	X(NUMBER, "hold_limit", "TGQ_HOLD_LIMIT", KEY_DURATION, hold_limit_s, 1, \
	    600, "1 s to 10 m", "5s", "a call passed through that the limits " \
	    "hold longer is answered 429")

/* [bot NAME]: struct bot_config.  Telegram's published rate limits are about 30
 * messages a second, one a second to a chat, 20 a minute to a group. */
#define CONFIG_BOT_KEYS(X) \
	X(STRING, "token_file", "TGQ_BOT_TOKEN_FILE", KEY_PATH, token_file, NULL, \
	    NULL, NULL, "as configured (NULL: none), read when needed") \
	X(STRING, "secret_file", "TGQ_WEBHOOK_SECRET_FILE", KEY_PATH, secret_file, \
	    NULL, NULL, NULL, "as configured (NULL: none), read when needed") \
	X(STRING, "webhook_url", "TGQ_WEBHOOK_URL", KEY_URL, webhook_url, \
	    https_urls, "must start with https://", NULL, \
	    "the URL registered with Telegram") \
	X(STRING, "handler", "TGQ_HANDLER", KEY_HANDLER, handler, NULL, NULL, \
	    "echo", "echo, exec:PROGRAM [args], http(s)://URL or pull, checked " \
	    "when loaded") \
	X(STRING, "forward_secret_file", "TGQ_FORWARD_SECRET_FILE", KEY_PATH, \
	    forward_secret_file, NULL, NULL, NULL, "what an http handler sends as " \
	    "the secret header instead of the webhook secret; NULL: none") \
	X(STRING, "handler_socket", "TGQ_HANDLER_SOCKET", KEY_PATH, \
	    handler_socket, NULL, NULL, NULL, "an http handler's unix socket, " \
	    "absolute; NULL: TCP to the URL's host") \
	X(NUMBER, "rate_global", "TGQ_RATE_GLOBAL", KEY_INT, rate_global, 0, \
	    100000, "0 (off) to 100000 per second", "30", "calls a second, the bot") \
	X(NUMBER, "rate_chat", "TGQ_RATE_CHAT", KEY_INT, rate_chat, 0, 100000, \
	    "0 (off) to 100000 per second", "1", "calls a second to one chat") \
	X(NUMBER, "rate_group", "TGQ_RATE_GROUP", KEY_INT, rate_group, 0, 100000, \
	    "0 (off) to 100000 per minute", "20", "calls a minute to one group") \
	X(USERS, "allowed_users", "TGQ_ALLOWED_USERS", allowed_users, \
	    "whose updates reach the handler: n 0 means everyone's") \
	X(TEXT, "deny_text", "TGQ_DENY_TEXT", deny_text, 1, DENY_TEXT_MAX, \
	    "1 to 4096 characters", NULL, \
	    "the answer to a message refused; NULL: none") \
	X(STRING, "allowed_updates", "TGQ_ALLOWED_UPDATES", KEY_UPDATES, \
	    allowed_updates, NULL, NULL, NULL, "what set-webhook registers and " \
	    "poll asks for: a JSON array of update types; NULL: not sent") \
	X(NUMBER, "max_connections", "TGQ_MAX_CONNECTIONS", KEY_INT, \
	    max_connections, 1, 100, "1 to 100", NULL, \
	    "what set-webhook registers; 0: not set, Telegram keeps its own") \
	X(STRING, "ip_address", "TGQ_IP_ADDRESS", KEY_IP, ip_address, NULL, \
	    "must be an IPv4 or IPv6 address", NULL, \
	    "what set-webhook registers, as written; NULL: not sent")

/* A field of struct config or struct bot_config, from its row. */
#define CONFIG_FIELD(shape, ...)	CONFIG_FIELD_##shape(__VA_ARGS__)
#define CONFIG_FIELD_NUMBER(name, env, type, f, ...)	int64_t f;
#define CONFIG_FIELD_STRING(name, env, type, f, ...)	char *f;
#define CONFIG_FIELD_CHOICE(name, env, ctype, f, ...)	ctype f;
#define CONFIG_FIELD_TEXT(name, env, f, ...)		char *f;
#define CONFIG_FIELD_CIDRS(name, env, f, ...)		struct cidr_list f;
#define CONFIG_FIELD_USERS(name, env, f, ...)		struct user_list f;

#endif
