/*
 * tgq-drain: takes the updates tgq-webhook queued, runs the bot's handler for each,
 * and sends what the handler asked for to the Bot API, in order per chat and within
 * Telegram's rate limits.  --once (a systemd timer) or --follow (a service).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "drain.h"

/* SQLite's caches (its default is 2 MiB per connection): the drain's statements
 * walk indexes in order, and the OS's page cache holds the rest. */
#define DRAIN_SQLITE_MEMORY (1024 * 1024)

static void
usage(FILE *out)
{
	fprintf(out, "usage: tgq-drain [-c config] (--once | --follow) [--help] "
	    "[--version]\n"
	    "  --once     drain what is due, then exit (what the systemd timer runs)\n"
	    "  --follow   stay up and take new updates as they arrive\n"
	    "Configuration: TGQ_CONFIG or " CONFIG_DEFAULT_PATH ", and TGQ_* "
	    "variables; see tgq-drain(8).\n");
}

/* -1 when the arguments say to run, else the exit status (--help, --version, a
 * usage error). */
static int
parse_args(int argc, char *argv[], const char **config_path,
    enum drain_mode *mode)
{
	enum { OPT_ONCE = 256, OPT_FOLLOW, OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "follow", no_argument, NULL, OPT_FOLLOW },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	int ch, modes = 0;

	opterr = 0;	/* usage() says it all */
	while ((ch = getopt_long(argc, argv, "+c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*config_path = optarg;
			break;
		case OPT_ONCE:
		case OPT_FOLLOW:
			*mode = ch == OPT_ONCE ? DRAIN_ONCE : DRAIN_FOLLOW;
			modes++;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("tgq-drain %s\n", TGQ_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || modes != 1) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* A configuration that cannot work is refused before the queue is created or
 * migrated: nothing is left behind by a run that does nothing. */
static int
load_config(const char *config_path, struct config *cfg, char *err,
    size_t errlen)
{
	if (config_load_for(config_path, CONFIG_NEED_TOKENS | CONFIG_NEED_HANDLERS |
	    CONFIG_NEED_FORWARD_SECRETS, cfg, err, errlen) == -1)
		return -1;
	log_init("tgq-drain", cfg->log_level);
	if (drain_check(cfg, err, errlen) == -1) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	struct config	 cfg;
	struct queue	*q = NULL;
	const char	*config_path = NULL;
	enum drain_mode	 mode = DRAIN_ONCE;
	char		 err[1024];
	int		 rc;

	if (check_std_fds() == -1)
		return 1;
	tgq_umask();
	log_init("tgq-drain", LOG_LVL_INFO);
	if ((rc = parse_args(argc, argv, &config_path, &mode)) != -1)
		return rc;
	if (load_config(config_path, &cfg, err, sizeof(err)) == -1) {
		log_err("configuration: %s", err);
		return 1;
	}
	queue_limit_memory(DRAIN_SQLITE_MEMORY);
	if (queue_open(cfg.database, cfg.durability, cfg.busy_timeout_ms, &q, err,
	    sizeof(err)) == -1) {
		log_err("%s", err);
		config_free(&cfg);
		return 1;
	}
	rc = drain_run(&cfg, q, mode);
	queue_close(q);
	config_free(&cfg);
	return rc;
}
