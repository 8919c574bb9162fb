/*
 * Webhook registration: set-webhook, webhook-info, delete-webhook and me.  The URL
 * and the secret come from the same configuration tgq-webhook reads, so the two
 * cannot disagree; everything is checked before Telegram is called.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "cli.h"

#define CERT_MAX (64 * 1024)

/* Telegram delivers webhooks to these ports only. */
static int
webhook_url_valid(const char *url, char *why, size_t whylen)
{
	CURLU	*u = curl_url();
	char	*scheme = NULL, *host = NULL, *port = NULL;
	int	 ok = 0;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(why, whylen, "the URL cannot be parsed");
		goto done;
	}
	if (strcmp(scheme, "https") != 0) {
		snprintf(why, whylen, "the URL must be https:// (Telegram calls "
		    "webhooks over TLS only)");
		goto done;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK &&
	    strcmp(port, "443") != 0 && strcmp(port, "80") != 0 &&
	    strcmp(port, "88") != 0 && strcmp(port, "8443") != 0) {
		snprintf(why, whylen, "port %s: Telegram calls webhooks on ports 443, "
		    "80, 88 and 8443 only", port);
		goto done;
	}
	ok = 1;
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ok;
}

static int
ip_valid(const char *ip, unsigned char addr[16])
{
	memset(addr, 0, 16);
	return inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1;
}

/* What Telegram said, for a person; exit status 1 unless it was ok. */
static int
report_answer(struct cli *c, const char *method, struct botapi_answer *a,
    const char *done_text, const char *detail)
{
	if (a->outcome != BOTAPI_OK)
		return cli_fail(c, "%s: Telegram answered %s%s", method,
		    a->outcome == BOTAPI_TRANSIENT ? "" : "with an error: ",
		    a->description);
	if (c->json) {
		struct jsonw w;

		cli_json_begin(&w, 1);
		jw_key(&w, "description");
		jw_string(&w, a->description);
		if (detail != NULL) {
			jw_key(&w, "url");
			jw_string(&w, detail);
		}
		cli_json_end(&w);
	} else {
		printf("%s%s%s (Telegram: ", done_text, detail ? ": " : "",
		    detail ? detail : "");
		cli_put_clean(stdout, *a->description ? a->description : "ok", 0);
		printf(")\n");
	}
	return EXIT_OK;
}

void
webhook_settings_configured(struct cli *c, struct webhook_settings *s)
{
	memset(s, 0, sizeof(*s));
	if (c->bot == NULL)
		return;
	s->url = c->bot->webhook_url;
	s->allowed_json = c->bot->allowed_updates;
	s->max_connections = c->bot->max_connections;
	s->ip = c->bot->ip_address;
}

struct set_options {
	struct webhook_settings	 s;
	char			*allowed_owned;	/* --allowed-updates as JSON */
	int			 if_changed;
};

/* The command line on top of the configuration's settings. */
static int
parse_set_options(struct cli *c, int argc, char **argv, struct set_options *o,
    int *exit_code)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "allowed-updates", required_argument, NULL, 'a' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "drop-pending-updates", no_argument, NULL, 'd' },
		{ "ip-address", required_argument, NULL, 'i' },
		{ "certificate", required_argument, NULL, 'C' },
		{ "if-changed", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("set-webhook");
	const char		*errstr;
	char			 why[256];
	int			 opt;

	webhook_settings_configured(c, &o->s);
	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, exit_code))
			return -1;
		if (opt == -1)
			break;
		switch (opt) {
		case 'u':
			o->s.url = optarg;
			break;
		case 'a':
			free(o->allowed_owned);
			if (update_types_json(optarg, &o->allowed_owned, why,
			    sizeof(why)) == -1) {
				*exit_code = cli_usage_error(cmd, "--allowed-updates: %s",
				    why);
				return -1;
			}
			o->s.allowed_json = o->allowed_owned;
			break;
		case 'm':
			if (parse_int(optarg, 1, 100, &o->s.max_connections,
			    &errstr) == -1) {
				*exit_code = cli_usage_error(cmd, "--max-connections: %s "
				    "(1 to 100)", errstr);
				return -1;
			}
			break;
		case 'd':
			o->s.drop_pending = 1;
			break;
		case 'i':
			o->s.ip = optarg;
			break;
		case 'C':
			o->s.certificate = optarg;
			break;
		case 'I':
			o->if_changed = 1;
			break;
		}
	}
	if (optind < argc) {
		*exit_code = cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
		return -1;
	}
	return 0;
}

static int
check_set_options(struct cli *c, struct webhook_settings *s, int *exit_code)
{
	const struct command	*cmd = cli_command("set-webhook");
	struct stat		 st;
	unsigned char		 addr[16];
	char			 why[256];

	if (s->url == NULL) {
		*exit_code = cli_usage_error(cmd, "no URL: give --url, or webhook_url "
		    "in [bot %s] (TGQ_WEBHOOK_URL)", c->bot ? c->bot->name : "NAME");
		return -1;
	}
	if (!webhook_url_valid(s->url, why, sizeof(why))) {
		*exit_code = cli_usage_error(cmd, "%s", why);
		return -1;
	}
	if (c->bot == NULL || c->bot->secret == NULL ||
	    !secret_valid(c->bot->secret, c->bot->secret_len)) {
		*exit_code = cli_usage_error(cmd, "the bot needs a webhook secret of 1-256 "
		    "characters of A-Z a-z 0-9 _ - (TGQ_WEBHOOK_SECRET_FILE or "
		    "secret_file)");
		return -1;
	}
	if (s->ip != NULL && !ip_valid(s->ip, addr)) {
		*exit_code = cli_usage_error(cmd, "--ip-address: not an IPv4 or IPv6 "
		    "address");
		return -1;
	}
	if (s->certificate != NULL && (stat(s->certificate, &st) == -1 ||
	    !S_ISREG(st.st_mode) || st.st_size > CERT_MAX ||
	    access(s->certificate, R_OK) != 0)) {
		*exit_code = cli_usage_error(cmd, "--certificate: %s is not a readable "
		    "file of at most 64 KiB", s->certificate);
		return -1;
	}
	return 0;
}

/* The parameters as a JSON object, written with the escaping JSON writer. */
static char *
set_params_json(const struct webhook_settings *s, const char *secret)
{
	struct jsonw	 w;
	char		*buf = NULL;
	size_t		 len = 0;
	FILE		*f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	jw_init(&w, f);
	jw_object(&w);
	jw_key(&w, "url");
	jw_string(&w, s->url);
	jw_key(&w, "secret_token");
	jw_string(&w, secret);
	if (s->allowed_json != NULL) {
		jw_key(&w, "allowed_updates");
		jw_raw(&w, s->allowed_json);
	}
	if (s->max_connections > 0) {
		jw_key(&w, "max_connections");
		jw_int(&w, s->max_connections);
	}
	if (s->drop_pending) {
		jw_key(&w, "drop_pending_updates");
		jw_bool(&w, 1);
	}
	if (s->ip != NULL) {
		jw_key(&w, "ip_address");
		jw_string(&w, s->ip);
	}
	jw_end(&w);
	fclose(f);
	return buf;
}

static int
mime_field(curl_mime *mime, const char *name, const char *value)
{
	curl_mimepart *part = curl_mime_addpart(mime);

	return part != NULL && curl_mime_name(part, name) == CURLE_OK &&
	    curl_mime_data(part, value, CURL_ZERO_TERMINATED) == CURLE_OK ? 0 : -1;
}

/* With a certificate the call is a multipart form, every parameter a field. */
static curl_mime *
set_params_mime(struct cli *c, const struct webhook_settings *s, const char *secret)
{
	curl_mime	*mime;
	curl_mimepart	*part;
	char		 num[32];

	if ((c->easy == NULL && (c->easy = curl_easy_init()) == NULL) ||
	    (mime = curl_mime_init(c->easy)) == NULL)
		return NULL;
	snprintf(num, sizeof(num), "%lld", (long long)s->max_connections);
	if (mime_field(mime, "url", s->url) == -1 ||
	    mime_field(mime, "secret_token", secret) == -1 ||
	    (s->allowed_json && mime_field(mime, "allowed_updates",
	    s->allowed_json) == -1) ||
	    (s->max_connections && mime_field(mime, "max_connections", num) == -1) ||
	    (s->drop_pending && mime_field(mime, "drop_pending_updates", "true") == -1) ||
	    (s->ip && mime_field(mime, "ip_address", s->ip) == -1) ||
	    (part = curl_mime_addpart(mime)) == NULL ||
	    curl_mime_name(part, "certificate") != CURLE_OK ||
	    curl_mime_filedata(part, s->certificate) != CURLE_OK ||
	    curl_mime_type(part, "application/x-pem-file") != CURLE_OK) {
		curl_mime_free(mime);
		return NULL;
	}
	return mime;
}

/* A note on stderr that does not fail the command (and stays off a --json
 * answer on stdout). */
static void note(const char *fmt, ...) TGQ_PRINTF(1, 2);
static void
note(const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fputs("tgq: ", stderr);
	cli_put_clean(stderr, msg, 0);
	fputc('\n', stderr);
}

/*
 * The queue, where the record of a registration is kept; NULL when there is
 * none (why in err).  A missing queue is created, as tgq poll does, except by
 * root: the queue would then be root's and tgq-webhook could not write it.
 */
static struct queue *
record_queue(struct cli *c, char *err, size_t errlen)
{
	if (c->queue != NULL)
		return c->queue;
	if (access(c->cfg.database, F_OK) != 0 && geteuid() == 0) {
		snprintf(err, errlen, "%s does not exist yet (tgq-webhook creates it; "
		    "root would make it root's)", c->cfg.database);
		return NULL;
	}
	if (queue_open(c->cfg.database, c->cfg.durability, c->cfg.busy_timeout_ms,
	    &c->queue, err, errlen) == -1)
		return NULL;
	return c->queue;
}

int
webhook_secret_registered(struct cli *c, struct queue *q, const char *secret,
    size_t secret_len, int64_t *registered_at)
{
	char	recorded[SECRET_FINGERPRINT_LEN + 1], now[SECRET_FINGERPRINT_LEN + 1];
	char	err[512];
	int	found;

	*registered_at = 0;
	if (q == NULL || c->bot == NULL || c->bot->token == NULL ||
	    (found = queue_registration(q, c->bot->name, recorded, registered_at,
	    err, sizeof(err))) != 1)
		return -1;
	secret_fingerprint(c->bot->token, c->bot->token_len, secret, secret_len, now);
	/* Fingerprints are not secrets; strcmp is fine. */
	return strcmp(recorded, now) == 0;
}

/* After Telegram took it: the secret's fingerprint, for the next --if-changed.
 * A record that cannot be written costs one registration more, later. */
static void
record_registration(struct cli *c, const char *url, const char *secret,
    size_t secret_len)
{
	struct queue	*q;
	char		 fp[SECRET_FINGERPRINT_LEN + 1], err[1024];

	secret_fingerprint(c->bot->token, c->bot->token_len, secret, secret_len, fp);
	if ((q = record_queue(c, err, sizeof(err))) == NULL ||
	    queue_record_registration(q, c->bot->name, url, fp, err,
	    sizeof(err)) != QUEUE_OK)
		note("registered, but not recorded: %s; the next set-webhook "
		    "--if-changed registers again", err);
}

int
webhook_register(struct cli *c, const struct webhook_settings *s,
    const char *secret, size_t secret_len, struct botapi_answer *a)
{
	curl_mime	*mime = NULL;
	char		*params = NULL;
	int		 rc;

	memset(a, 0, sizeof(*a));
	if (s->certificate != NULL ? (mime = set_params_mime(c, s, secret)) == NULL :
	    (params = set_params_json(s, secret)) == NULL) {
		cli_fail(c, "out of memory");
		return -1;
	}
	rc = cli_api(c, "setWebhook", params, mime, 30, NULL, a);
	if (params != NULL) {
		explicit_bzero(params, strlen(params));	/* it holds the secret */
		free(params);
	}
	curl_mime_free(mime);
	if (rc == 0 && a->outcome == BOTAPI_OK)
		record_registration(c, s->url, secret, secret_len);
	return rc;
}

/* ["message","callback_query"] as "message, callback_query". */
static const char *
list_text(const char *json, char *buf, size_t len)
{
	size_t i, o = 0;

	if (json == NULL)
		return "default (all but chat_member, message_reaction, "
		    "message_reaction_count)";
	for (i = 0; json[i] != '\0' && o + 3 < len; i++) {
		if (json[i] == ',') {
			buf[o++] = ',';
			buf[o++] = ' ';
		} else if (json[i] != '[' && json[i] != ']' && json[i] != '"')
			buf[o++] = json[i];
	}
	buf[o] = '\0';
	return o > 0 ? buf : "none";
}

/* 1 when the two JSON arrays hold the same names, in any order. */
static int
same_types(struct cli *c, const char *a, const char *b)
{
	sqlite3_stmt	*st;
	int		 same = 0;

	if (c->mem == NULL && sqlite3_open(":memory:", (sqlite3 **)&c->mem) !=
	    SQLITE_OK)
		return 0;
	if (sqlite3_prepare_v2(c->mem, "WITH a AS (SELECT DISTINCT value AS v FROM "
	    "json_each(?1)), b AS (SELECT DISTINCT value AS v FROM json_each(?2)) "
	    "SELECT json_valid(?1) AND json_valid(?2) AND (SELECT count(*) FROM a) = "
	    "(SELECT count(*) FROM b) AND (SELECT count(*) FROM a) = (SELECT "
	    "count(*) FROM a WHERE v IN (SELECT v FROM b))", -1, &st, NULL) !=
	    SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		same = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return same;
}

static void
differs(struct webhook_difference *d, size_t *n, const char *what,
    const char *telegram, const char *configured)
{
	if (*n == WEBHOOK_DIFFERENCES_MAX)
		return;
	d[*n].what = what;
	snprintf(d[*n].telegram, sizeof(d[*n].telegram), "%s", telegram);
	snprintf(d[*n].configured, sizeof(d[*n].configured), "%s", configured);
	(*n)++;
}

size_t
webhook_differences(struct cli *c, const struct webhook_settings *s,
    const char *info, struct webhook_difference *d)
{
	unsigned char	 want[16], have[16];
	char		*url = cli_json_text(c, info, "$.url");
	char		*allowed = cli_json_text(c, info, "$.allowed_updates");
	char		*ip = cli_json_text(c, info, "$.ip_address");
	char		 a[512], b[512];
	int64_t		 max = cli_json_int(c, info, "$.max_connections", 40);
	size_t		 n = 0;

	if (url == NULL || *url == '\0') {
		differs(d, &n, "url", "none (no webhook is set)", s->url);
		goto done;	/* nothing else is set either */
	}
	if (strcmp(url, s->url) != 0)
		differs(d, &n, "url", url, s->url);
	if (s->allowed_json != NULL && (allowed == NULL ||
	    !same_types(c, allowed, s->allowed_json)))
		differs(d, &n, "allowed_updates", list_text(allowed, a, sizeof(a)),
		    list_text(s->allowed_json, b, sizeof(b)));
	if (s->max_connections > 0 && max != s->max_connections) {
		snprintf(a, sizeof(a), "%lld", (long long)max);
		snprintf(b, sizeof(b), "%lld", (long long)s->max_connections);
		differs(d, &n, "max_connections", a, b);
	}
	/* Compared as addresses: 2001:db8::1 is 2001:0db8:0:0:0:0:0:1. */
	if (s->ip != NULL && (ip == NULL || !ip_valid(ip, have) ||
	    !ip_valid(s->ip, want) || memcmp(have, want, sizeof(have)) != 0))
		differs(d, &n, "ip_address", ip ? ip : "none", s->ip);
	if (s->certificate != NULL && !cli_json_int(c, info,
	    "$.has_custom_certificate", 0))
		differs(d, &n, "certificate", "none", s->certificate);
done:
	free(url);
	free(allowed);
	free(ip);
	return n;
}

/* --if-changed: what makes a registration needed (n 0: nothing), by name
 * for --json and as text for a person. */
struct changes {
	const char	*names[WEBHOOK_DIFFERENCES_MAX + 1];
	size_t		 n;
	char		 text[512];
};

static void
changed(struct changes *ch, const char *name, const char *text)
{
	size_t used = strlen(ch->text);

	ch->names[ch->n++] = name;
	snprintf(ch->text + used, sizeof(ch->text) - used, "%s%s", used ? ", " : "",
	    text);
}

static int
find_changes(struct cli *c, const struct webhook_settings *s, struct changes *ch)
{
	struct webhook_difference	 d[WEBHOOK_DIFFERENCES_MAX];
	struct botapi_answer		 a;
	struct queue			*q;
	char				 err[1024], text[64];
	int64_t				 when;
	size_t				 n, i;

	memset(ch, 0, sizeof(*ch));
	if (cli_api(c, "getWebhookInfo", NULL, NULL, 30, NULL, &a) == -1)
		return -1;
	if (a.outcome != BOTAPI_OK) {
		cli_fail(c, "getWebhookInfo: Telegram answered: %s", a.description);
		botapi_answer_free(&a);
		return -1;
	}
	n = webhook_differences(c, s, a.result, d);
	botapi_answer_free(&a);
	for (i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "%s changed", d[i].what);
		changed(ch, d[i].what, text);
	}
	if ((q = record_queue(c, err, sizeof(err))) == NULL)
		note("%s: cannot tell whether the secret changed", err);
	/* A new token reads as a new secret: one registration more. */
	switch (webhook_secret_registered(c, q, c->bot->secret, c->bot->secret_len,
	    &when)) {
	case 0:
		changed(ch, "secret", "secret changed");
		break;
	case -1:
		changed(ch, "secret", "no record of the secret registered");
		break;
	}
	return 0;
}

static int
report_unchanged(struct cli *c, const char *url)
{
	struct jsonw w;

	if (c->json) {
		cli_json_begin(&w, 1);
		jw_key(&w, "changed");
		jw_bool(&w, 0);
		jw_key(&w, "url");
		jw_string(&w, url);
		cli_json_end(&w);
	} else {
		printf("unchanged: ");
		cli_put_clean(stdout, url, 0);
		printf(" (Telegram has the configured settings and secret)\n");
	}
	return EXIT_OK;
}

static int
report_registered(struct cli *c, const char *url, const struct changes *ch,
    struct botapi_answer *a)
{
	struct jsonw	 w;
	char		 done_text[600];
	size_t		 i;

	if (a->outcome != BOTAPI_OK || !c->json) {
		snprintf(done_text, sizeof(done_text), "registered: %s", ch->text);
		return report_answer(c, "setWebhook", a, done_text, url);
	}
	cli_json_begin(&w, 1);
	jw_key(&w, "changed");
	jw_bool(&w, 1);
	jw_key(&w, "reasons");
	jw_array(&w);
	for (i = 0; i < ch->n; i++)
		jw_string(&w, ch->names[i]);
	jw_end(&w);
	jw_key(&w, "description");
	jw_string(&w, a->description);
	jw_key(&w, "url");
	jw_string(&w, url);
	cli_json_end(&w);
	return EXIT_OK;
}

int
cmd_set_webhook(struct cli *c, int argc, char **argv)
{
	struct set_options	 o;
	struct botapi_answer	 a;
	struct changes		 ch;
	int			 rc;

	memset(&o, 0, sizeof(o));
	if (parse_set_options(c, argc, argv, &o, &rc) == -1 ||
	    check_set_options(c, &o.s, &rc) == -1)
		goto done;
	rc = EXIT_FAILED;
	if (cli_token(c) == NULL)
		goto done;
	if (o.if_changed && find_changes(c, &o.s, &ch) == -1)
		goto done;
	if (o.if_changed && ch.n == 0) {
		rc = report_unchanged(c, o.s.url);
		goto done;
	}
	if (webhook_register(c, &o.s, c->bot->secret, c->bot->secret_len, &a) == 0)
		rc = o.if_changed ? report_registered(c, o.s.url, &ch, &a) :
		    report_answer(c, "setWebhook", &a, "webhook set", o.s.url);
	botapi_answer_free(&a);
done:
	free(o.allowed_owned);
	return rc;
}

static int
no_operands(int argc, char **argv, const char *name, int *exit_code)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command(name);
	int			 opt;

	if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, exit_code))
		return -1;
	if (opt != -1 || optind < argc) {
		*exit_code = cli_usage_error(cmd, "takes no arguments");
		return -1;
	}
	return 0;
}

/* The values are Telegram's text (URLs, error messages, names): printed clean. */
static void
print_field(const char *label, const char *value)
{
	printf("%-20s ", label);
	cli_put_clean(stdout, value, 0);
	fputc('\n', stdout);
}

/* getWebhookInfo's result for a person. */
static void
print_webhook_info(struct cli *c, const char *info)
{
	char	*url = cli_json_text(c, info, "$.url");
	char	*allowed = cli_json_text(c, info, "$.allowed_updates");
	char	*ip = cli_json_text(c, info, "$.ip_address");
	char	*last_error = cli_json_text(c, info, "$.last_error_message");
	char	*sync_error = cli_json_text(c, info, "$.last_synchronization_error_date");
	char	 buf[512], ago[32];
	int64_t	 now = now_unix(), when;

	print_field("url:", url && *url ? url : "none (no webhook is set)");
	print_field("custom certificate:", cli_json_int(c, info,
	    "$.has_custom_certificate", 0) ? "yes" : "no");
	snprintf(buf, sizeof(buf), "%lld", (long long)cli_json_int(c, info,
	    "$.pending_update_count", 0));
	print_field("pending updates:", buf);
	when = cli_json_int(c, info, "$.last_error_date", 0);
	if (last_error != NULL) {
		snprintf(buf, sizeof(buf), "%s (%s ago)", last_error,
		    cli_ago(ago, sizeof(ago), when, now));
		print_field("last error:", buf);
	} else
		print_field("last error:", "none");
	if (sync_error != NULL) {
		snprintf(buf, sizeof(buf), "%s ago", cli_ago(ago, sizeof(ago),
		    cli_json_int(c, info, "$.last_synchronization_error_date", 0), now));
		print_field("last sync error:", buf);
	}
	snprintf(buf, sizeof(buf), "%lld", (long long)cli_json_int(c, info,
	    "$.max_connections", 40));
	print_field("max connections:", buf);
	print_field("allowed updates:", list_text(allowed, buf, sizeof(buf)));
	if (ip != NULL)
		print_field("ip address:", ip);
	free(url);
	free(allowed);
	free(ip);
	free(last_error);
	free(sync_error);
}

/* Calls a method that takes no parameters: 0 when Telegram answered ok (free
 * *a), else -1 with the exit status, having said why. */
static int
ask(struct cli *c, const char *method, struct botapi_answer *a, int *exit_code)
{
	if (cli_api(c, method, NULL, NULL, 30, NULL, a) == -1) {
		*exit_code = EXIT_FAILED;
		return -1;
	}
	if (a->outcome != BOTAPI_OK) {
		*exit_code = cli_fail(c, "%s: Telegram answered: %s", method,
		    a->description);
		botapi_answer_free(a);
		return -1;
	}
	return 0;
}

int
cmd_webhook_info(struct cli *c, int argc, char **argv)
{
	struct botapi_answer	 a;
	const char		*configured;
	char			*url;
	int			 rc, matches;

	if (no_operands(argc, argv, "webhook-info", &rc) == -1 ||
	    ask(c, "getWebhookInfo", &a, &rc) == -1)
		return rc;
	configured = c->bot ? c->bot->webhook_url : NULL;
	url = cli_json_text(c, a.result, "$.url");
	matches = configured == NULL || (url != NULL && strcmp(url, configured) == 0);
	if (c->json) {
		struct jsonw w;

		cli_json_begin(&w, 1);
		jw_key(&w, "webhook");
		jw_raw(&w, a.result);
		jw_key(&w, "configured_url");
		jw_string(&w, configured);
		jw_key(&w, "url_matches");
		jw_bool(&w, matches);
		cli_json_end(&w);
	} else {
		print_webhook_info(c, a.result);
		if (!matches) {
			fputs("warning: Telegram has ", stdout);
			cli_put_clean(stdout, url && *url ? url : "no webhook", 0);
			printf(" but the configuration says %s: run tgq set-webhook\n",
			    configured);
		}
	}
	free(url);
	botapi_answer_free(&a);
	return EXIT_OK;
}

int
cmd_delete_webhook(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "drop-pending-updates", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("delete-webhook");
	struct botapi_answer	 a;
	int			 opt, drop = 0, rc;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, &rc))
			return rc;
		if (opt == -1)
			break;
		drop = 1;
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
	if (cli_api(c, "deleteWebhook", drop ? "{\"drop_pending_updates\":true}" : "{}",
	    NULL, 30, NULL, &a) == -1)
		return EXIT_FAILED;
	rc = report_answer(c, "deleteWebhook", &a, "webhook deleted", NULL);
	botapi_answer_free(&a);
	return rc;
}

int
cmd_me(struct cli *c, int argc, char **argv)
{
	struct botapi_answer	 a;
	char			*username, *first_name;
	int			 rc;

	if (no_operands(argc, argv, "me", &rc) == -1 ||
	    ask(c, "getMe", &a, &rc) == -1)
		return rc;
	if (c->json) {
		cli_json_result(c, a.result);
		botapi_answer_free(&a);
		return EXIT_OK;
	}
	username = cli_json_text(c, a.result, "$.username");
	first_name = cli_json_text(c, a.result, "$.first_name");
	fputc('@', stdout);
	cli_put_clean(stdout, username ? username : "?", 0);
	printf(" (id %lld), \"", (long long)cli_json_int(c, a.result, "$.id", 0));
	cli_put_clean(stdout, first_name ? first_name : "", 0);
	printf("\"\n");
	print_field("can join groups:", cli_json_int(c, a.result,
	    "$.can_join_groups", 0) ? "yes" : "no");
	print_field("reads all messages:", cli_json_int(c, a.result,
	    "$.can_read_all_group_messages", 0) ? "yes" : "no");
	print_field("inline queries:", cli_json_int(c, a.result,
	    "$.supports_inline_queries", 0) ? "yes" : "no");
	free(username);
	free(first_name);
	botapi_answer_free(&a);
	return EXIT_OK;
}
