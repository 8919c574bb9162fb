/*
 * tgq-webhook: Telegram POSTs each update here.  A FastCGI responder (request
 * threads serving the connections accepted on the socket on fd 0: fastcgi.c) or,
 * when fd 0 is not a socket, a plain CGI program answering one request.  See
 * request.c for what a request does.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "webhook.h"

static void
usage(FILE *out)
{
	fprintf(out, "usage: tgq-webhook [-c config] [--check] [--print-keys] [--help] "
	    "[--version]\n"
	    "Runs as a FastCGI responder when its standard input is a listening "
	    "socket,\nelse as a CGI program.  Configuration: TGQ_CONFIG or "
	    CONFIG_DEFAULT_PATH ",\nand TGQ_* variables; see tgq-webhook(8).\n");
}

/* CGI: the environment, standard input and standard output. */
static const char *
cgi_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

static ssize_t
cgi_read(void *ctx, char *buf, size_t len)
{
	ssize_t n;

	(void)ctx;
	while ((n = read(STDIN_FILENO, buf, len)) == -1 && errno == EINTR)
		continue;
	return n;
}

static int
cgi_write(void *ctx, const char *buf, size_t len)
{
	(void)ctx;
	return fwrite(buf, 1, len, stdout) == len ? 0 : -1;
}

static int
serve_cgi(const struct webhook *wh)
{
	struct request_io io = { cgi_param, cgi_read, cgi_write, NULL, NULL };

	request_handle(&io, wh);
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * Socket activation: systemd hands over its listening socket as fd 3 (with
 * LISTEN_PID and LISTEN_FDS); libfcgi takes requests on fd 0.
 */
static int
adopt_systemd_socket(void)
{
	const char	*pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char	*errstr;
	int64_t		 n, owner;

	if (pid == NULL || fds == NULL ||
	    parse_int(pid, 1, INT32_MAX, &owner, &errstr) == -1 || owner != getpid())
		return 0;
	if (parse_int(fds, 0, 64, &n, &errstr) == -1 || n != 1) {
		log_err("systemd passed %s sockets; tgq-webhook takes exactly one", fds);
		return -1;
	}
	if (dup2(3, 0) == -1) {
		log_err("taking systemd's socket: %s", strerror(errno));
		return -1;
	}
	close(3);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return 0;
}

/* Whether bots a and b share a secret, current or previous. */
static int
share_secret(const struct bot_config *a, const struct bot_config *b)
{
	return secret_pair_equal(a->secret, a->secret_len, b->secret, b->secret_len,
	    b->secret_prev, b->secret_prev_len) || (a->secret_prev != NULL &&
	    secret_pair_equal(a->secret_prev, a->secret_prev_len, b->secret,
	    b->secret_len, b->secret_prev, b->secret_prev_len));
}

/* A bot without a secret cannot be told from an attacker, and two bots with one
 * secret cannot be told apart: refuse both before serving anything. */
static int
check_bots(const struct config *cfg)
{
	size_t i, j, with_secret = 0;

	for (i = 0; i < cfg->nbots; i++) {
		if (cfg->bots[i].secret == NULL) {
			log_warnx("bot %s has no webhook secret: its updates are refused",
			    cfg->bots[i].name);
			continue;
		}
		with_secret++;
		for (j = 0; j < i; j++)
			if (cfg->bots[j].secret != NULL &&
			    share_secret(&cfg->bots[i], &cfg->bots[j])) {
				log_err("bots %s and %s have the same webhook secret",
				    cfg->bots[j].name, cfg->bots[i].name);
				return -1;
			}
	}
	if (with_secret == 0) {
		log_err("no bot has a webhook secret: set TGQ_WEBHOOK_SECRET, "
		    "TGQ_WEBHOOK_SECRET_FILE or secret_file in [bot NAME]");
		return -1;
	}
	return 0;
}

/* -1 when the arguments say to run, else the exit status (--help, --version,
 * --print-keys, a usage error). */
static int
parse_args(int argc, char *argv[], const char **config_path, int *check_only)
{
	enum { OPT_CHECK = 256, OPT_PRINT_KEYS, OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "print-keys", no_argument, NULL, OPT_PRINT_KEYS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	opterr = 0;	/* usage() says it all */
	while ((ch = getopt_long(argc, argv, "+c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*config_path = optarg;
			break;
		case OPT_CHECK:
			*check_only = 1;
			break;
		case OPT_PRINT_KEYS:
			config_print_keys(stdout);
			return 0;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("tgq-webhook %s\n", TGQ_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

int
main(int argc, char *argv[])
{
	struct config	 cfg;
	struct webhook	 wh = { &cfg, NULL, NULL, NULL };
	const char	*config_path = NULL;
	char		 err[1024];
	int		 check_only = 0, cgi, rc;

	if (check_std_fds() == -1)
		return 1;
	tgq_umask();
	log_init("tgq-webhook", LOG_LVL_INFO);
	if ((rc = parse_args(argc, argv, &config_path, &check_only)) != -1)
		return rc;
	/* The webhook runs no handler: a missing program must not stop updates being
	 * stored; --check reports it, as the drain would refuse it. */
	if (config_load_for(config_path, CONFIG_NEED_SECRETS |
	    (check_only ? CONFIG_NEED_HANDLERS : 0), &cfg, err, sizeof(err)) == -1) {
		log_err("configuration: %s", err);
		return 1;
	}
	log_init("tgq-webhook", cfg.log_level);
	if (check_bots(&cfg) == -1)
		goto fail;
	if (adopt_systemd_socket() == -1)
		goto fail;
	cgi = fcgi_started_as_cgi() || check_only;
	if (store_start(&cfg, &wh.store, err, sizeof(err)) == -1) {
		log_err("%s", err);
		goto fail;
	}
	wh.metrics = metrics_open(cfg.database);
	/* A FastCGI process lives on: it rereads the secret files that change.  A
	 * CGI process reads them for its one request. */
	if (!cgi && secrets_start(&cfg, &wh.secrets, err, sizeof(err)) == -1) {
		log_err("%s", err);
		store_stop(wh.store);
		metrics_close(wh.metrics);
		goto fail;
	}
	if (check_only) {
		struct queue_health h;

		rc = store_health(wh.store, &h) == QUEUE_OK ? 0 : 1;
		if (rc == 0)
			printf("configuration %s and database %s ok: %lld pending\n",
			    cfg.path != NULL ? cfg.path : "(none: the environment)",
			    cfg.database, (long long)h.pending);
	} else
		rc = cgi ? serve_cgi(&wh) : serve_fastcgi(&wh);
	store_stop(wh.store);
	metrics_close(wh.metrics);
	secrets_stop(wh.secrets);
	config_free(&cfg);
	return rc;
fail:
	config_free(&cfg);
	return 1;
}
