/*
 * Webhook registration: set-webhook, webhook-info, delete-webhook and me.  The URL
 * and the secret come from the same configuration tgq-webhook reads, so the two
 * cannot disagree; everything is checked before Telegram is called.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

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

/* "message,callback_query" as a JSON array; names of a-z and _ only. */
static int
allowed_updates_json(const char *list, char *out, size_t outlen)
{
	size_t	 o = 0, i;
	int	 first = 1, in_name = 0;

	if (outlen < 3)
		return -1;
	out[o++] = '[';
	for (i = 0; list[i] != '\0'; i++) {
		char ch = list[i];

		if (ch == ',') {
			if (!in_name)
				return -1;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '"';
			in_name = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || ch == '_'))
			return -1;
		if (o + 4 >= outlen)
			return -1;
		if (!in_name) {
			if (!first)
				out[o++] = ',';
			out[o++] = '"';
			first = 0;
			in_name = 1;
		}
		out[o++] = ch;
	}
	if (!in_name && !first)
		return -1;	/* a trailing comma */
	if (in_name)
		out[o++] = '"';
	if (o + 2 > outlen)
		return -1;
	out[o++] = ']';
	out[o] = '\0';
	return 0;
}

static int
ip_valid(const char *ip)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
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

struct webhook_options {
	const char	*url, *allowed, *ip, *certificate;
	int64_t		 max_connections;	/* 0: not given */
	int		 drop_pending;
	char		 allowed_json[1024];
};

static int
parse_set_options(struct cli *c, int argc, char **argv, struct webhook_options *o,
    int *exit_code)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "allowed-updates", required_argument, NULL, 'a' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "drop-pending-updates", no_argument, NULL, 'd' },
		{ "ip-address", required_argument, NULL, 'i' },
		{ "certificate", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("set-webhook");
	const char		*errstr;
	int			 opt;

	memset(o, 0, sizeof(*o));
	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, exit_code))
			return -1;
		if (opt == -1)
			break;
		switch (opt) {
		case 'u':
			o->url = optarg;
			break;
		case 'a':
			o->allowed = optarg;
			break;
		case 'm':
			if (parse_int(optarg, 1, 100, &o->max_connections, &errstr) == -1) {
				*exit_code = cli_usage_error(cmd, "--max-connections: %s "
				    "(1 to 100)", errstr);
				return -1;
			}
			break;
		case 'd':
			o->drop_pending = 1;
			break;
		case 'i':
			o->ip = optarg;
			break;
		case 'C':
			o->certificate = optarg;
			break;
		}
	}
	if (optind < argc) {
		*exit_code = cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
		return -1;
	}
	(void)c;
	return 0;
}

static int
check_set_options(struct cli *c, struct webhook_options *o, int *exit_code)
{
	const struct command	*cmd = cli_command("set-webhook");
	struct stat		 st;
	char			 why[256];

	if (o->url == NULL && (o->url = c->bot ? c->bot->webhook_url : NULL) == NULL) {
		*exit_code = cli_usage_error(cmd, "no URL: give --url, or webhook_url "
		    "in [bot %s] (TGQ_WEBHOOK_URL)", c->bot ? c->bot->name : "NAME");
		return -1;
	}
	if (!webhook_url_valid(o->url, why, sizeof(why))) {
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
	if (o->allowed != NULL && allowed_updates_json(o->allowed, o->allowed_json,
	    sizeof(o->allowed_json)) == -1) {
		*exit_code = cli_usage_error(cmd, "--allowed-updates: a comma-separated "
		    "list of update kinds (message,callback_query,...)");
		return -1;
	}
	if (o->ip != NULL && !ip_valid(o->ip)) {
		*exit_code = cli_usage_error(cmd, "--ip-address: not an IPv4 or IPv6 "
		    "address");
		return -1;
	}
	if (o->certificate != NULL && (stat(o->certificate, &st) == -1 ||
	    !S_ISREG(st.st_mode) || st.st_size > CERT_MAX ||
	    access(o->certificate, R_OK) != 0)) {
		*exit_code = cli_usage_error(cmd, "--certificate: %s is not a readable "
		    "file of at most 64 KiB", o->certificate);
		return -1;
	}
	return 0;
}

/* The parameters as a JSON object, written with the escaping JSON writer. */
static char *
set_params_json(struct cli *c, const struct webhook_options *o)
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
	jw_string(&w, o->url);
	jw_key(&w, "secret_token");
	jw_string(&w, c->bot->secret);
	if (o->allowed != NULL) {
		jw_key(&w, "allowed_updates");
		jw_raw(&w, o->allowed_json);
	}
	if (o->max_connections > 0) {
		jw_key(&w, "max_connections");
		jw_int(&w, o->max_connections);
	}
	if (o->drop_pending) {
		jw_key(&w, "drop_pending_updates");
		jw_bool(&w, 1);
	}
	if (o->ip != NULL) {
		jw_key(&w, "ip_address");
		jw_string(&w, o->ip);
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
set_params_mime(struct cli *c, const struct webhook_options *o)
{
	curl_mime	*mime;
	curl_mimepart	*part;
	char		 num[32];

	if ((c->easy == NULL && (c->easy = curl_easy_init()) == NULL) ||
	    (mime = curl_mime_init(c->easy)) == NULL)
		return NULL;
	snprintf(num, sizeof(num), "%lld", (long long)o->max_connections);
	if (mime_field(mime, "url", o->url) == -1 ||
	    mime_field(mime, "secret_token", c->bot->secret) == -1 ||
	    (o->allowed && mime_field(mime, "allowed_updates", o->allowed_json) == -1) ||
	    (o->max_connections && mime_field(mime, "max_connections", num) == -1) ||
	    (o->drop_pending && mime_field(mime, "drop_pending_updates", "true") == -1) ||
	    (o->ip && mime_field(mime, "ip_address", o->ip) == -1) ||
	    (part = curl_mime_addpart(mime)) == NULL ||
	    curl_mime_name(part, "certificate") != CURLE_OK ||
	    curl_mime_filedata(part, o->certificate) != CURLE_OK ||
	    curl_mime_type(part, "application/x-pem-file") != CURLE_OK) {
		curl_mime_free(mime);
		return NULL;
	}
	return mime;
}

int
cmd_set_webhook(struct cli *c, int argc, char **argv)
{
	struct webhook_options	 o;
	struct botapi_answer	 a;
	curl_mime		*mime = NULL;
	char			*params = NULL;
	int			 rc;

	if (parse_set_options(c, argc, argv, &o, &rc) == -1 ||
	    check_set_options(c, &o, &rc) == -1)
		return rc;
	if (cli_token(c) == NULL)
		return EXIT_FAILED;
	if (o.certificate != NULL ? (mime = set_params_mime(c, &o)) == NULL :
	    (params = set_params_json(c, &o)) == NULL)
		return cli_fail(c, "out of memory");
	rc = cli_api(c, "setWebhook", params, mime, 30, NULL, &a) == -1 ? EXIT_FAILED :
	    report_answer(c, "setWebhook", &a, "webhook set", o.url);
	if (params != NULL) {
		explicit_bzero(params, strlen(params));	/* it holds the secret */
		free(params);
	}
	curl_mime_free(mime);
	botapi_answer_free(&a);
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
	if (allowed != NULL) {
		/* ["message","callback_query"] as message, callback_query */
		size_t i, o = 0;

		for (i = 0; allowed[i] != '\0' && o + 2 < sizeof(buf); i++) {
			if (allowed[i] == ',') {
				buf[o++] = ',';
				buf[o++] = ' ';
			} else if (allowed[i] != '[' && allowed[i] != ']' &&
			    allowed[i] != '"')
				buf[o++] = allowed[i];
		}
		buf[o] = '\0';
	}
	print_field("allowed updates:", allowed ? buf : "default (all but "
	    "chat_member, message_reaction, message_reaction_count)");
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
