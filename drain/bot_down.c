/*
 * Bots whose http handler does not answer.  A bot that is down is not a bad
 * update: its updates wait, uncharged, and nothing goes dead however long it
 * stays down.  The drain probes it with its next updates after a backoff that
 * doubles up to a cap, and lets everything go the moment it answers.
 */
#include <stdint.h>

#include "drain.h"

/* The first probe comes this soon: a bot restarting is back within seconds. */
#define FIRST_PROBE_MS 500
/* Probes are cheap (a refused connection, mostly), and a bot back after a long
 * outage should not wait for the handler retries' five minutes. */
#define PROBE_CAP_S 30

int
bot_down_load(struct bot_down *b, struct jobs *j, const char *bot)
{
	int rc;

	if ((rc = jobs_down_since(j, bot, &b->since, &b->probes)) != 1)
		return rc;
	b->down = 1;
	b->held = 0;	/* probed at once */
	log_warnx("bot %s: marked down since a previous run; probing it", bot);
	return 0;
}

void
bot_down_failed(struct bot_down *b, struct jobs *j, const char *bot,
    const char *why, int64_t wait_s, int64_t now_ms)
{
	int64_t delay_ms;

	if (wait_s > 0) {
		b->answered_us = now_monotonic_us();
		/* It answered, only later: not down.  Whatever else it had in
		 * flight may come back the same way; the latest wait counts. */
		jobs_hold(j, bot, 1);
		b->held = 1;
		b->resume_ms = now_ms + wait_s * 1000;
		log_info("bot %s: handler asked to wait %lld s", bot,
		    (long long)wait_s);
		return;
	}
	/* The other updates in flight when it went down fail the same way: one
	 * failed probe, not one per update. */
	if (b->down && b->held) {
		(void)jobs_mark_down(j, bot, b->since, b->probes,
		    b->resume_ms / 1000, why);
		return;
	}
	if (!b->down) {
		b->down = 1;
		b->since = now_ms / 1000;
		b->probes = 0;
		log_warnx("bot %s: handler does not answer (%s): marked down; its "
		    "updates wait", bot, why);
	} else
		b->probes++;
	delay_ms = b->probes == 0 ? FIRST_PROBE_MS : retry_backoff_s(b->probes) * 1000;
	if (delay_ms > PROBE_CAP_S * 1000)
		delay_ms = PROBE_CAP_S * 1000;
	b->held = 1;
	b->resume_ms = now_ms + delay_ms;
	jobs_hold(j, bot, 1);
	if (jobs_mark_down(j, bot, b->since, b->probes, b->resume_ms / 1000,
	    why) == -1)
		log_warnx("bot %s: cannot record that it is down", bot);
	log_debug("bot %s: probing again in %lld ms", bot, (long long)delay_ms);
}

void
bot_down_answered(struct bot_down *b, struct jobs *j, const char *bot)
{
	b->answered_us = now_monotonic_us();
	if (!b->down)
		return;
	if (jobs_mark_up(j, bot) == -1)
		return;		/* tried again at its next answer */
	log_info("bot %s: handler answers again after %lld s: resumed", bot,
	    (long long)(now_unix() - b->since));
	b->down = 0;
	b->probes = 0;
	if (b->held)
		jobs_hold(j, bot, 0);
	b->held = 0;
}

int64_t
bot_down_tick(struct bot_down *b, struct jobs *j, const char *bot, int64_t now_ms)
{
	if (!b->held)
		return INT64_MAX;
	if (now_ms < b->resume_ms)
		return b->resume_ms - now_ms;
	b->held = 0;
	jobs_hold(j, bot, 0);
	return 0;
}

int
bot_down_answered_since(const struct bot_down *b, int64_t since_us)
{
	return b->answered_us > since_us;
}
