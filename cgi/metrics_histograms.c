/*
 * The latency histograms of GET /metrics, in Prometheus' text format: for each
 * bot, cumulative _bucket{le=...} series, _sum and _count.  The counts come from
 * the shared metrics file (lib/metrics.c), where every webhook process and drain
 * adds its observations; a bot of the configuration that has none yet is shown
 * with zeros, so that its series exist before its first update.
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
};

/* Adds the configured bots that have no counts yet, with zeros. */
static size_t
add_configured(const struct config *cfg, struct histogram_counts *c, size_t n,
    size_t max)
{
	size_t i, j;

	for (i = 0; i < cfg->nbots && n < max; i++) {
		for (j = 0; j < n && strcmp(c[j].bot, cfg->bots[i].name) != 0; j++)
			continue;
		if (j < n)
			continue;
		memset(&c[n], 0, sizeof(c[n]));
		snprintf(c[n].bot, sizeof(c[n].bot), "%s", cfg->bots[i].name);
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

int
metrics_write_histograms(FILE *f, const struct webhook *wh)
{
	struct histogram_counts	*c;
	size_t			 i, j, n;

	if ((c = calloc(METRICS_HISTOGRAM_BOTS, sizeof(*c))) == NULL)
		return -1;
	for (i = 0; i < sizeof(histograms) / sizeof(histograms[0]); i++) {
		n = metrics_histograms(wh->metrics, histograms[i].h, c,
		    METRICS_HISTOGRAM_BOTS);
		n = add_configured(wh->cfg, c, n, METRICS_HISTOGRAM_BOTS);
		fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", histograms[i].name,
		    histograms[i].help, histograms[i].name);
		for (j = 0; j < n; j++)
			write_one(f, histograms[i].name, &c[j]);
	}
	free(c);
	return 0;
}
