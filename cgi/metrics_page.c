/*
 * GET /metrics: Prometheus' text exposition format.  Counters come from the
 * shared metrics file (every webhook process and the drain add to it); the
 * queue's depth is read on a read-only connection opened for the scrape, so a
 * scrape never waits behind, or holds up, the group commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "webhook.h"

struct family {
	const char	*name;
	const char	*help;
	const char	*label;		/* "reason" etc.; NULL for a plain counter */
	struct {
		enum metric	 m;
		const char	*value;	/* the label's value */
	} series[8];
};

static const struct family counters[] = {
	{ "tgq_updates_received_total", "Updates stored by tgq-webhook.", NULL,
	    { { M_RECEIVED, NULL } } },
	{ "tgq_updates_duplicate_total", "Redeliveries of updates already stored.",
	    NULL, { { M_DUPLICATES, NULL } } },
	{ "tgq_requests_rejected_total", "Requests refused, by reason.", "reason",
	    { { M_REJECTED_SECRET, "secret" }, { M_REJECTED_SIZE, "size" },
	      { M_REJECTED_TYPE, "type" }, { M_REJECTED_BODY, "body" },
	      { M_REJECTED_IP, "ip" }, { M_REJECTED_LENGTH, "length" },
	      { M_REJECTED_METHOD, "method" }, { M_REJECTED_ROUTE, "route" } } },
	{ "tgq_requests_unavailable_total", "Requests answered 503: the queue could "
	    "not store them.", NULL, { { M_UNAVAILABLE, NULL } } },
	{ "tgq_updates_handled_total", "Updates the drain's handler finished.", NULL,
	    { { M_HANDLED, NULL } } },
	{ "tgq_handler_failures_total", "Handler runs that failed and will be "
	    "retried.", NULL, { { M_HANDLER_FAILED, NULL } } },
	{ "tgq_updates_dead_total", "Updates that ended dead.", NULL,
	    { { M_UPDATES_DEAD, NULL } } },
	{ "tgq_calls_sent_total", "Bot API calls Telegram accepted.", NULL,
	    { { M_SENT, NULL } } },
	{ "tgq_calls_retried_total", "Bot API calls that failed and will be retried.",
	    NULL, { { M_RETRIED, NULL } } },
	{ "tgq_calls_dead_total", "Bot API calls that ended dead.", NULL,
	    { { M_CALLS_DEAD, NULL } } },
	{ "tgq_calls_429_total", "Bot API answers 429 Too Many Requests.", NULL,
	    { { M_429, NULL } } },
	{ "tgq_calls_migrated_total", "Calls resent to a group's new supergroup id.",
	    NULL, { { M_MIGRATED, NULL } } },
};

static void
write_counters(FILE *f, const struct webhook *wh)
{
	size_t i, j;

	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		const struct family *fam = &counters[i];

		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", fam->name, fam->help,
		    fam->name);
		for (j = 0; j < 8 && (j == 0 || fam->series[j].value != NULL); j++) {
			if (fam->label != NULL)
				fprintf(f, "%s{%s=\"%s\"} %llu\n", fam->name, fam->label,
				    fam->series[j].value, (unsigned long long)
				    metrics_get(wh->metrics, fam->series[j].m));
			else
				fprintf(f, "%s %llu\n", fam->name, (unsigned long long)
				    metrics_get(wh->metrics, fam->series[j].m));
		}
	}
}

/* One bot's oldest update not yet handled. */
struct pending_age {
	char	 bot[BOT_NAME_MAX + 1];
	int64_t	 age_s;
};

/* The entry of bot in ages[0..*n), added when there is room; NULL when none. */
static struct pending_age *
age_of(struct pending_age *ages, size_t *n, size_t max, const char *bot)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp(ages[i].bot, bot) == 0)
			return &ages[i];
	if (*n == max)
		return NULL;
	snprintf(ages[*n].bot, sizeof(ages[*n].bot), "%s", bot);
	ages[*n].age_s = 0;
	return &ages[(*n)++];
}

/* Bot names are [a-z0-9_-] and states fixed words: nothing in a label needs
 * escaping.  The oldest pending update's age is by bot, every configured bot
 * (0: none pending), so an alert names the bot that is stuck. */
static int
write_depth(FILE *f, sqlite3 *db, const struct config *cfg)
{
	static const char sql[] =
	    "SELECT 'updates', bot, state, count(*), NULL FROM updates"
	    " WHERE state IN ('new', 'leased', 'dead') GROUP BY bot, state"
	    " UNION ALL SELECT 'calls', bot, state, count(*), NULL FROM outbox"
	    " WHERE state IN ('new', 'sending', 'dead') GROUP BY bot, state"
	    " UNION ALL SELECT 'oldest', bot, NULL, NULL, min(received_at)"
	    " FROM updates WHERE state IN ('new', 'leased') GROUP BY bot";
	enum { D_WHAT, D_BOT, D_STATE, D_COUNT, D_OLDEST };
	struct pending_age	 ages[2 * CONFIG_MAX_BOTS], *age;
	sqlite3_stmt		*st;
	size_t			 i, nages = 0;
	int			 rc, wrote_updates = 0, wrote_calls = 0;

	for (i = 0; i < cfg->nbots; i++)
		(void)age_of(ages, &nages, sizeof(ages) / sizeof(ages[0]),
		    cfg->bots[i].name);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *what = (const char *)sqlite3_column_text(st, D_WHAT);
		const char *bot = (const char *)sqlite3_column_text(st, D_BOT);

		if (strcmp(what, "oldest") == 0) {
			if (bot != NULL && (age = age_of(ages, &nages,
			    sizeof(ages) / sizeof(ages[0]), bot)) != NULL)
				age->age_s = now_unix() -
				    sqlite3_column_int64(st, D_OLDEST);
			continue;
		}
		if (strcmp(what, "updates") == 0 && !wrote_updates++)
			fprintf(f, "# HELP tgq_queue_updates Updates waiting or dead, by "
			    "bot and state.\n# TYPE tgq_queue_updates gauge\n");
		if (strcmp(what, "calls") == 0 && !wrote_calls++)
			fprintf(f, "# HELP tgq_queue_calls Calls waiting or dead, by bot and "
			    "state.\n# TYPE tgq_queue_calls gauge\n");
		fprintf(f, "tgq_queue_%s{bot=\"%s\",state=\"%s\"} %lld\n", what, bot,
		    sqlite3_column_text(st, D_STATE),
		    (long long)sqlite3_column_int64(st, D_COUNT));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	fprintf(f, "# HELP tgq_oldest_pending_age_seconds Age of the bot's oldest "
	    "update not yet handled (0: none).\n"
	    "# TYPE tgq_oldest_pending_age_seconds gauge\n");
	for (i = 0; i < nages; i++)
		fprintf(f, "tgq_oldest_pending_age_seconds{bot=\"%s\"} %lld\n",
		    ages[i].bot, (long long)(ages[i].age_s > 0 ? ages[i].age_s : 0));
	return 0;
}

/* tgq_bot_down: every configured bot, 1 while tgq-drain has it marked down
 * (its http handler does not answer). */
static int
write_bots_down(FILE *f, sqlite3 *db, const struct config *cfg)
{
	sqlite3_stmt	*st;
	size_t		 i;
	int		 down, rc = 0;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM bot_down WHERE bot = ?1", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	fprintf(f, "# HELP tgq_bot_down Whether the drain has the bot marked down: "
	    "its http handler does not answer.\n# TYPE tgq_bot_down gauge\n");
	for (i = 0; i < cfg->nbots && rc == 0; i++) {
		sqlite3_bind_text(st, 1, cfg->bots[i].name, -1, SQLITE_STATIC);
		down = sqlite3_step(st);
		if (down != SQLITE_ROW && down != SQLITE_DONE)
			rc = -1;
		else
			fprintf(f, "tgq_bot_down{bot=\"%s\"} %d\n", cfg->bots[i].name,
			    down == SQLITE_ROW);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return rc;
}

char *
metrics_render(const struct webhook *wh, size_t *len)
{
	sqlite3	*db = NULL;
	char	*buf = NULL;
	FILE	*f;
	int	 up;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	write_counters(f, wh);
	if (metrics_write_bots(f, wh) == -1) {
		fclose(f);
		free(buf);
		return NULL;
	}
	up = sqlite3_open_v2(wh->cfg->database, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK;
	if (up) {
		sqlite3_busy_timeout(db, 1000);
		up = write_depth(f, db, wh->cfg) == 0 && write_bots_down(f, db, wh->cfg) == 0;
	}
	sqlite3_close(db);
	fprintf(f, "# HELP tgq_queue_up Whether the queue could be read for this "
	    "scrape.\n# TYPE tgq_queue_up gauge\ntgq_queue_up %d\n", up);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
