/*
 * tgq, the operator's command: its shared parts (cli.c: options, output, the Bot
 * API, the queue) and one function per command, grouped by file.
 */
#ifndef CLI_H
#define CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "tgq.h"

/* Exit codes, as tgq(1) documents them. */
#define EXIT_OK		0
#define EXIT_FAILED	1	/* a call, a check or a lookup failed */
#define EXIT_USAGE	2	/* the command line is wrong */

/* The column of a statement that selects one value. */
enum { ONE_VALUE };

struct cli {
	struct config		 cfg;
	const char		*config_path;	/* -c, NULL when not given */
	const char		*bot_name;	/* --bot, NULL when not given */
	const struct bot_config	*bot;	/* --bot, or the only / "default" bot */
	int			 json;	/* --json: machine-readable output */
	struct queue		*queue;	/* opened by cli_queue() */
	struct sqlite3		*mem;	/* in-memory, for SQLite's JSON functions */
	struct botapi_parser	*parser;
	CURL			*easy;
	struct curl_slist	*headers;
};

struct command {
	const char	*name;
	const char	*usage;		/* the arguments, after the name */
	const char	*summary;	/* one line */
	int		 (*run)(struct cli *c, int argc, char **argv);
	/* The secrets it reads (CONFIG_NEED_*): the queue commands read none, so an
	 * operator who may read the queue but not the bot token can run them. */
	unsigned	 need;
};

/* cli.c */
/*
 * Parses a command's options with getopt_long; "--help" is handled (prints usage,
 * returns 1 with *exit_code EXIT_OK); an unknown option prints usage and returns 1
 * with EXIT_USAGE.  Returns 0 to go on, optind past the options.
 */
struct option;
int	 cli_getopt(const struct command *cmd, int argc, char **argv,
	    const char *shortopts, const struct option *longopts, int *opt,
	    int *exit_code);
const struct command *cli_command(const char *name);
void	 cli_usage(FILE *out, const struct command *cmd);
int	 cli_usage_error(const struct command *cmd, const char *fmt, ...)
	    TGQ_PRINTF(2, 3);
/* Prints "tgq: <message>" to stderr (or, with --json, {"error": ...} to stdout)
 * and returns EXIT_FAILED. */
int	 cli_fail(struct cli *c, const char *fmt, ...) TGQ_PRINTF(2, 3);
/* --json answers are objects that start with "ok" (but the lists, ls and
 * doctor, which are arrays, and poll, which writes an object a line as updates
 * come): begin writes up to there on stdout, end closes the object and the line. */
struct jsonw;
void	 cli_json_begin(struct jsonw *w, int ok);
void	 cli_json_end(struct jsonw *w);
/* The answer for a Bot API result that is an object: {"ok":true} and its keys
 * (any other result under "result"). */
void	 cli_json_result(struct cli *c, const char *result);
/* Selects --bot NAME (NULL: the only bot, else "default") as c->bot; -1 after
 * saying why when there is no such bot. */
int	 cli_select_bot(struct cli *c, const char *name);
/* The selected bot's token, or NULL after saying how to configure it. */
const char *cli_token(struct cli *c);
/* Opens the configured queue, which must exist; NULL after saying why.
 * cli_queue_read() opens it only to read, which an operator in the queue's
 * group may do (the commands that only look use it). */
struct queue *cli_queue(struct cli *c);
struct queue *cli_queue_read(struct cli *c);
/*
 * Calls method with params (a JSON object; NULL for none) or a multipart form
 * (mime, NULL for JSON), waiting at most timeout_s.  Returns 0 with *a filled (its
 * outcome says what Telegram answered), -1 when the call could not be made.
 * Long polls are cut short when *interrupt becomes non-zero (NULL: never).
 */
struct curl_mime;
int	 cli_api(struct cli *c, const char *method, const char *params,
	    struct curl_mime *mime, int64_t timeout_s, volatile sig_atomic_t *interrupt,
	    struct botapi_answer *a);
/* SQLite's JSON functions on a JSON text: the value at path as text (NULL when
 * missing; objects and arrays as JSON), or as an integer (def when missing). */
char	*cli_json_text(struct cli *c, const char *json, const char *path);
int64_t	 cli_json_int(struct cli *c, const char *json, const char *path, int64_t def);
/*
 * Text from outside (Telegram's answers, updates, the queue's rows) goes to a
 * terminal through these, so that it cannot move the cursor or retitle the
 * window.  cli_char(): the length of the character at p (lib's strict UTF-8 rules;
 * 0 when broken), *printable 0 for C0 controls, DEL and C1 controls.
 * cli_put_clean(): s on one line, controls (newlines too) as spaces, broken UTF-8
 * as '?', at most maxchars characters (0: all) and then "..."; NULL prints "-".
 * Returns the characters printed, for padding columns.
 */
size_t	 cli_char(const char *p, size_t avail, int *printable);
size_t	 cli_put_clean(FILE *out, const char *s, size_t maxchars);
/* "3 s", "5 min", "2 h", "4 d": how long ago a unix time was, for people. */
const char *cli_ago(char *buf, size_t len, int64_t then, int64_t now);

/* jsonw.c: a JSON writer for --json, escaping every string it is given. */
struct jsonw {
	FILE	*out;
	int	 depth;
	int	 need_comma[32];
	char	 closer[32];
};
void	 jw_init(struct jsonw *w, FILE *out);
void	 jw_object(struct jsonw *w);
void	 jw_array(struct jsonw *w);
void	 jw_end(struct jsonw *w);	/* closes the innermost object or array */
void	 jw_key(struct jsonw *w, const char *key);
void	 jw_string(struct jsonw *w, const char *s);	/* NULL: null */
void	 jw_int(struct jsonw *w, int64_t v);
void	 jw_bool(struct jsonw *w, int v);
void	 jw_null(struct jsonw *w);
void	 jw_raw(struct jsonw *w, const char *json);	/* valid JSON; NULL: null */
void	 jw_finish(struct jsonw *w);	/* newline after the top-level value */

/* cmd_webhook.c */
/* What set-webhook registers besides the secret (NULL or 0: not sent). */
struct webhook_settings {
	const char	*url;
	const char	*allowed_json;	/* a JSON array of update types */
	int64_t		 max_connections;
	const char	*ip;
	const char	*certificate;	/* a PEM file to upload */
	int		 drop_pending;
};
/* The selected bot's settings, as configured (c->bot's; url NULL when none). */
void	 webhook_settings_configured(struct cli *c, struct webhook_settings *s);
/*
 * The one registration: setWebhook with s and secret (the configured one, or a
 * rotation's new one), then, when Telegram took it, the secret's fingerprint
 * recorded in the queue for set-webhook --if-changed and doctor.  0 with *a
 * filled (its outcome says what Telegram answered; botapi_answer_free() it), -1
 * after saying why the call could not be made.  Prints nothing on success but
 * a note when the record cannot be written.  s->url must be set and checked as
 * set-webhook checks it; the secret must be secret_valid().
 */
int	 webhook_register(struct cli *c, const struct webhook_settings *s,
	    const char *secret, size_t secret_len, struct botapi_answer *a);
/* What differs between s and getWebhookInfo's result (info): the URL, and the
 * settings s sets; "no webhook" is one difference, the URL's. */
#define WEBHOOK_DIFFERENCES_MAX 5
struct webhook_difference {
	const char	*what;		/* url, allowed_updates, max_connections, ... */
	char		 telegram[512];	/* each for a person */
	char		 configured[512];
};
size_t	 webhook_differences(struct cli *c, const struct webhook_settings *s,
	    const char *info, struct webhook_difference *d);
/* Whether secret is the one last registered for the bot, by the record in q: 1
 * yes, 0 it changed since (or the token did), -1 no record to tell (q NULL, no
 * token, or never recorded); *registered_at when it was. */
int	 webhook_secret_registered(struct cli *c, struct queue *q, const char *secret,
	    size_t secret_len, int64_t *registered_at);
int	 cmd_set_webhook(struct cli *c, int argc, char **argv);
int	 cmd_webhook_info(struct cli *c, int argc, char **argv);
int	 cmd_delete_webhook(struct cli *c, int argc, char **argv);
int	 cmd_me(struct cli *c, int argc, char **argv);

/* cmd_rotate.c */
int	 cmd_rotate_secret(struct cli *c, int argc, char **argv);

/* cmd_queue.c */
int	 cmd_status(struct cli *c, int argc, char **argv);
int	 cmd_ls(struct cli *c, int argc, char **argv);
int	 cmd_show(struct cli *c, int argc, char **argv);
int	 cmd_retry(struct cli *c, int argc, char **argv);
int	 cmd_purge(struct cli *c, int argc, char **argv);

/* cmd_poll.c */
int	 cmd_poll(struct cli *c, int argc, char **argv);

/* cmd_doctor.c */
int	 cmd_doctor(struct cli *c, int argc, char **argv);
/* doctor when the configuration does not load: reports it and exits 1. */
int	 cmd_doctor_broken_config(struct cli *c, const char *err);

#endif
