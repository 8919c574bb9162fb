/*
 * tgq: the operator's command.  Registers the webhook with Telegram, looks into
 * the queue and repairs it, polls during development, and checks a setup.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "cli.h"

static const struct command commands[] = {
	{ "set-webhook", "[--if-changed] [--url URL] [--allowed-updates a,b] "
	    "[--max-connections N] [--drop-pending-updates] [--ip-address ADDR] "
	    "[--certificate FILE]",
	    "Register the webhook (URL, secret and settings from the configuration) "
	    "with Telegram; with --if-changed only when they differ.", cmd_set_webhook,
	    CONFIG_NEED_TOKENS | CONFIG_NEED_SECRETS },
	{ "rotate-secret", "[--finish] [--no-register]", "Write a new webhook "
	    "secret, keeping the old one accepted, and register it; --finish drops "
	    "the old one.", cmd_rotate_secret, CONFIG_NEED_TOKENS |
	    CONFIG_NEED_SECRETS },
	{ "webhook-info", "", "Show what Telegram knows of the webhook.",
	    cmd_webhook_info, CONFIG_NEED_TOKENS },
	{ "delete-webhook", "[--drop-pending-updates]", "Remove the webhook.",
	    cmd_delete_webhook, CONFIG_NEED_TOKENS },
	{ "me", "", "Show the bot (getMe).", cmd_me, CONFIG_NEED_TOKENS },
	{ "status", "", "Count the queue's updates and calls by state.", cmd_status,
	    0 },
	{ "ls", "[--calls] [--state S] [--kind K] [--chat C] [--limit N]",
	    "List updates (or with --calls, calls), newest first.", cmd_ls, 0 },
	{ "show", "UPDATE_ID", "Show an update, what its handler asked for, and "
	    "Telegram's answers.", cmd_show, 0 },
	{ "retry", "UPDATE_ID | --dead", "Hand dead updates and calls back to the "
	    "drain.", cmd_retry, 0 },
	{ "purge", "--older-than DURATION [--state done|dead]",
	    "Delete old finished rows.", cmd_purge, 0 },
	{ "poll", "[--timeout SECONDS]", "Fetch updates with getUpdates into the "
	    "queue (development without a public URL).", cmd_poll,
	    CONFIG_NEED_TOKENS },
	/* doctor reads the secrets itself, reporting each that cannot be read. */
	{ "doctor", "", "Check the configuration, the queue, the token and the "
	    "webhook.", cmd_doctor, 0 },
};

const struct command *
cli_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: tgq [-c config] [--bot NAME] [--json] COMMAND [ARGS]\n"
	    "       tgq COMMAND --help\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nExit status: 0 ok, 1 a call or check failed, 2 usage.  "
	    "See tgq(1).\n");
}

/* --bot NAME, else the only bot, else the one called "default". */
int
cli_select_bot(struct cli *c, const char *name)
{
	if (name != NULL)
		c->bot = config_bot(&c->cfg, name, strlen(name));
	else if (c->cfg.nbots == 1)
		c->bot = &c->cfg.bots[0];
	else
		c->bot = config_bot(&c->cfg, "default", 7);
	if (c->bot != NULL || (name == NULL && c->cfg.nbots == 0))
		return 0;
	if (name != NULL)
		fprintf(stderr, "tgq: no bot %s in the configuration\n", name);
	else
		fprintf(stderr, "tgq: %zu bots are configured: choose one with --bot\n",
		    c->cfg.nbots);
	return -1;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "bot", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli		 c;
	const struct command	*cmd;
	const char		*config_path = NULL, *bot = NULL;
	char			 err[1024];
	int			 o, rc;

	if (check_std_fds() == -1)
		return 1;
	tgq_umask();
	memset(&c, 0, sizeof(c));
	log_init("tgq", LOG_LVL_WARNING);
	while ((o = getopt_long(argc, argv, "+c:b:jh", longopts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config_path = optarg;
			break;
		case 'b':
			bot = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("tgq %s\n", TGQ_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((cmd = cli_command(argv[optind])) == NULL) {
		fprintf(stderr, "tgq: no command %s\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (config_load_for(config_path, cmd->need, &c.cfg, err, sizeof(err)) == -1) {
		/* doctor reports a broken configuration as one of its checks. */
		if (cmd->run == cmd_doctor)
			return cmd_doctor_broken_config(&c, err);
		fprintf(stderr, "tgq: configuration: %s\n", err);
		return EXIT_FAILED;
	}
	c.config_path = config_path;
	c.bot_name = bot;
	if (cli_select_bot(&c, bot) == -1) {
		config_free(&c.cfg);
		return EXIT_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	argc -= optind;
	argv += optind;
	optind = 0;	/* glibc: start getopt afresh for the command's options */
	rc = cmd->run(&c, argc, argv);
	if (c.easy != NULL)
		curl_easy_cleanup(c.easy);
	curl_slist_free_all(c.headers);
	botapi_parser_free(c.parser);
	sqlite3_close(c.mem);
	queue_close(c.queue);
	config_free(&c.cfg);
	curl_global_cleanup();
	return rc;
}
