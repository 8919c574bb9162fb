/*
 * The series of GET /metrics that are by bot, in Prometheus' text format: the
 * latency histograms (for each bot, cumulative _bucket{le=...} series, _sum and
 * _count) and the drain's calls by outcome.  The counts come from the shared
 * metrics file (lib/metrics.c), where every webhook process and drain adds its
 * own; a bot of the configuration that has none yet is shown with zeros, so
 * that its series exist before its first update.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook.h"

static const struct {
	enum histogram	 h;
	const char	*name;
	const char	*help;
} histograms[] = {
	{ H_INGEST, "tgq_ingest_duration_seconds", "Time from a webhook request's "
	    "arrival in tgq-webhook to the COMMIT that stored its update, for each "
	    "update answered 200, by bot." },
	{ H_HANDLER, "tgq_handler_duration_seconds", "Time of each handler run in "
	    "tgq-drain, whatever its result, by bot." },
	{ H_CALL, "tgq_call_duration_seconds", "Time from sending a Bot API call to "
	    "Telegram's answer (or the failure), by bot." },
	{ H_FORWARD, "tgq_forward_duration_seconds", "Time from POSTing an update "
	    "to a bot's webhook server (an http handler) to its answer, by bot." },
};

static const struct {
	enum bot_metric	 k;
	const char	*outcome;
} call_outcomes[] = {
	{ BM_CALLS_SENT, "sent" }, { BM_CALLS_429, "429" },
	{ BM_CALLS_RETRIED, "retried" }, { BM_CALLS_DEAD, "dead" },
	{ BM_CALLS_MIGRATED, "migrated" },
};

/*
 * Adds the configured bots that are not among out[0..n) yet, with zeros;
 * entries are size bytes and begin with their bot's name.
 */
static size_t
add_configured(const struct config *cfg, void *out, size_t size, size_t n,
    size_t max)
{
	char	*p;
	size_t	 i, j;

	for (i = 0; i < cfg->nbots && n < max; i++) {
		for (j = 0, p = out; j < n && strcmp(p, cfg->bots[i].name) != 0;
		    j++, p += size)
			continue;
		if (j < n)
			continue;
		memset(p, 0, size);
		snprintf(p, BOT_NAME_MAX + 1, "%s", cfg->bots[i].name);
		n++;
	}
	return n;
}

/* Bot names are [a-z0-9_-]: nothing in a label needs escaping. */
static void
write_one(FILE *f, const char *name, const struct histogram_counts *c)
{
	uint64_t	 cumulative = 0;
	size_t		 k;

	for (k = 0; k <= HISTOGRAM_BOUNDS; k++) {
		cumulative += c->buckets[k];
		if (k < HISTOGRAM_BOUNDS)
			fprintf(f, "%s_bucket{bot=\"%s\",le=\"%g\"} %llu\n", name,
			    c->bot, (double)histogram_bounds_us[k] / 1e6,
			    (unsigned long long)cumulative);
		else
			fprintf(f, "%s_bucket{bot=\"%s\",le=\"+Inf\"} %llu\n", name,
			    c->bot, (unsigned long long)cumulative);
	}
	fprintf(f, "%s_sum{bot=\"%s\"} %.6f\n%s_count{bot=\"%s\"} %llu\n", name,
	    c->bot, (double)c->sum_us / 1e6, name, c->bot,
	    (unsigned long long)cumulative);
}

static void
write_calls(FILE *f, const struct webhook *wh, struct bot_count *c)
{
	size_t i, j, n;

	fprintf(f, "# HELP tgq_bot_calls_total Bot API calls answered, by bot and "
	    "outcome (sent, 429, retried, dead, migrated).\n"
	    "# TYPE tgq_bot_calls_total counter\n");
	for (i = 0; i < sizeof(call_outcomes) / sizeof(call_outcomes[0]); i++) {
		n = metrics_bot_counts(wh->metrics, call_outcomes[i].k, c,
		    METRICS_HISTOGRAM_BOTS);
		n = add_configured(wh->cfg, c, sizeof(*c), n, METRICS_HISTOGRAM_BOTS);
		for (j = 0; j < n; j++)
			fprintf(f, "tgq_bot_calls_total{bot=\"%s\",outcome=\"%s\"} "
			    "%llu\n", c[j].bot, call_outcomes[i].outcome,
			    (unsigned long long)c[j].value);
	}
}

int
metrics_write_bots(FILE *f, const struct webhook *wh)
{
	struct histogram_counts	*c;
	struct bot_count	*counts;
	size_t			 i, j, n;

	c = calloc(METRICS_HISTOGRAM_BOTS, sizeof(*c));
	counts = calloc(METRICS_HISTOGRAM_BOTS, sizeof(*counts));
	if (c == NULL || counts == NULL) {
		free(c);
		free(counts);
		return -1;
	}
	for (i = 0; i < sizeof(histograms) / sizeof(histograms[0]); i++) {
		n = metrics_histograms(wh->metrics, histograms[i].h, c,
		    METRICS_HISTOGRAM_BOTS);
		n = add_configured(wh->cfg, c, sizeof(*c), n, METRICS_HISTOGRAM_BOTS);
		fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", histograms[i].name,
		    histograms[i].help, histograms[i].name);
		for (j = 0; j < n; j++)
			write_one(f, histograms[i].name, &c[j]);
	}
	write_calls(f, wh, counts);
	free(c);
	free(counts);
	return 0;
}
