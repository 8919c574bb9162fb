/*
 * tgq poll: getUpdates long polling into the same queue, for development without
 * a public URL.  Each batch and the offset after it are stored in one transaction,
 * and Telegram forgets a batch only when the next getUpdates carries that offset,
 * so a restart neither loses nor repeats an update.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cli.h"

#define POLL_BATCH 100

static volatile sig_atomic_t stop_requested;

static void
on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;	/* no SA_RESTART: a wait ends at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static void
pause_s(int s)
{
	struct timespec ts = { s, 0 };

	if (!stop_requested)
		nanosleep(&ts, NULL);	/* a signal ends it early */
}

struct polled {
	struct queue_item	 items[POLL_BATCH];
	struct update_info	 info[POLL_BATCH];
	char			*bodies[POLL_BATCH];
	size_t			 n;
	int64_t			 next_offset;
};

static void
polled_free(struct polled *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->bodies[i]);
	p->n = 0;
}

/* Splits getUpdates' result into queue items, checked as the webhook checks. */
static int
read_batch(struct cli *c, const char *result, struct polled *p)
{
	sqlite3_stmt	*st;
	char		 err[128];
	int		 rc;

	if (c->mem == NULL && sqlite3_open(":memory:", (sqlite3 **)&c->mem) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(c->mem, "SELECT value FROM json_each(?1) WHERE "
	    "json_valid(?1) AND json_type(?1) = 'array'", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, result, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && p->n < POLL_BATCH) {
		const char		*body = (const char *)sqlite3_column_text(st,
					    ONE_VALUE);
		size_t			 len = (size_t)sqlite3_column_bytes(st,
					    ONE_VALUE);
		struct update_info	*info = &p->info[p->n];
		struct queue_item	*it = &p->items[p->n];

		if (json_scan_update(body, len, JSON_MAX_DEPTH, info, err,
		    sizeof(err)) == -1) {
			/* Telegram sent it, so it is skipped rather than asked for
			 * forever; the offset cannot be advanced past it otherwise. */
			fprintf(stderr, "tgq: skipping an update Telegram sent: %s\n", err);
			continue;
		}
		if ((p->bodies[p->n] = strdup(body)) == NULL)
			break;
		memset(it, 0, sizeof(*it));
		it->bot = c->bot->name;
		it->update_id = info->update_id;
		it->body = p->bodies[p->n];
		it->body_len = len;
		it->kind = info->kind;
		it->has_chat_id = info->has_chat_id;
		it->chat_id = info->chat_id;
		it->received_at = now_unix();
		if (info->update_id >= p->next_offset)
			p->next_offset = info->update_id + 1;
		p->n++;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static void
print_stored(struct cli *c, const struct polled *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct queue_item *it = &p->items[i];

		if (c->json) {
			struct jsonw w;

			jw_init(&w, stdout);
			jw_object(&w);
			jw_key(&w, "update_id");
			jw_int(&w, it->update_id);
			jw_key(&w, "kind");
			jw_string(&w, it->kind);
			jw_key(&w, "duplicate");
			jw_bool(&w, it->duplicate);
			jw_end(&w);
			jw_finish(&w);
			continue;
		}
		printf("update %lld (", (long long)it->update_id);
		cli_put_clean(stdout, *it->kind ? it->kind : "-", 0);
		if (it->has_chat_id)
			printf(", chat %lld", (long long)it->chat_id);
		printf(") %s\n", it->duplicate ? "was already queued" : "queued");
	}
	fflush(stdout);
}

static int
poll_loop(struct cli *c, struct queue *q, int64_t timeout_s)
{
	struct botapi_answer	 a;
	struct polled		 p;
	char			 params[2048], err[512];
	int64_t			 offset;
	int			 n;

	if (queue_poll_offset(q, c->bot->name, &offset, err, sizeof(err)) == -1)
		return cli_fail(c, "%s", err);
	memset(&p, 0, sizeof(p));
	while (!stop_requested) {
		/* The bot's allowed_updates, as the webhook would get them. */
		n = snprintf(params, sizeof(params), "{\"offset\":%lld,\"timeout\":%lld"
		    "%s%s}", (long long)offset, (long long)timeout_s,
		    c->bot->allowed_updates ? ",\"allowed_updates\":" : "",
		    c->bot->allowed_updates ? c->bot->allowed_updates : "");
		if (n < 0 || (size_t)n >= sizeof(params))
			return cli_fail(c, "getUpdates: allowed_updates is too long");
		if (cli_api(c, "getUpdates", params, NULL, timeout_s + 15,
		    &stop_requested, &a) == -1)
			return EXIT_FAILED;
		if (stop_requested)
			break;
		if (a.outcome == BOTAPI_REJECTED) {
			int rc = cli_fail(c, "getUpdates: %s%s", a.description,
			    a.error_code == 409 ? " (another tgq poll, or a webhook set "
			    "again?)" : "");

			botapi_answer_free(&a);
			return rc;
		}
		if (a.outcome != BOTAPI_OK) {
			fputs("tgq: getUpdates: ", stderr);
			cli_put_clean(stderr, a.description, 0);
			fputs("; trying again\n", stderr);
			botapi_answer_free(&a);
			pause_s(a.outcome == BOTAPI_RETRY_AFTER ? (int)a.retry_after_s : 2);
			continue;
		}
		p.next_offset = offset;
		if (read_batch(c, a.result, &p) == -1) {
			botapi_answer_free(&a);
			polled_free(&p);
			return cli_fail(c, "getUpdates: the answer could not be read");
		}
		botapi_answer_free(&a);
		if (p.next_offset == offset) {
			polled_free(&p);
			continue;
		}
		/* Stored with the offset, or not at all: then the same batch comes
		 * again, and nothing was lost. */
		if (queue_put_polled(q, p.items, p.n, c->bot->name, p.next_offset, err,
		    sizeof(err)) != QUEUE_OK) {
			fprintf(stderr, "tgq: %s; trying again\n", err);
			polled_free(&p);
			pause_s(2);
			continue;
		}
		offset = p.next_offset;
		print_stored(c, &p);
		polled_free(&p);
	}
	if (!c->json)
		printf("stopped; the next poll goes on from update %lld\n",
		    (long long)offset);
	return EXIT_OK;
}

int
cmd_poll(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("poll");
	struct botapi_answer	 a;
	struct queue		*q;
	const char		*errstr;
	char			 err[1024];
	int64_t			 timeout_s = 30;
	int			 opt, rc;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, &rc))
			return rc;
		if (opt == -1)
			break;
		if (parse_int(optarg, 0, 50, &timeout_s, &errstr) == -1)
			return cli_usage_error(cmd, "--timeout: %s (0 to 50 s)", errstr);
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
	if (cli_token(c) == NULL)
		return EXIT_FAILED;
	/* Polling is for a first try too: the queue is created when missing. */
	if (queue_open(c->cfg.database, c->cfg.durability, c->cfg.busy_timeout_ms,
	    &c->queue, err, sizeof(err)) == -1)
		return cli_fail(c, "%s", err);
	q = c->queue;
	/* Telegram answers getUpdates with 409 while a webhook is set. */
	if (cli_api(c, "deleteWebhook", "{}", NULL, 30, NULL, &a) == -1)
		return EXIT_FAILED;
	if (a.outcome != BOTAPI_OK) {
		rc = cli_fail(c, "deleteWebhook: %s", a.description);
		botapi_answer_free(&a);
		return rc;
	}
	botapi_answer_free(&a);
	catch_stop_signals();
	if (!c->json) {
		printf("webhook deleted; polling getUpdates into %s (Ctrl-C stops)\n",
		    c->cfg.database);
		fflush(stdout);
	}
	return poll_loop(c, q, timeout_s);
}
