/*
 * Unit tests for lib/metrics.c's histograms: which bucket a duration lands in,
 * one series per bot when several processes (here: several mappings of one file,
 * and a child process) observe it, and a file of the older layout (counters
 * only) extended without losing its counters.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "tgq.h"

static char dir[] = "/tmp/tgq-test-metrics-XXXXXX";

static size_t
read_bot(struct metrics *m, enum histogram h, const char *bot,
    struct histogram_counts *out)
{
	struct histogram_counts	 all[METRICS_HISTOGRAM_BOTS];
	size_t			 i, n = metrics_histograms(m, h, all,
				    METRICS_HISTOGRAM_BOTS), found = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++)
		if (strcmp(all[i].bot, bot) == 0) {
			*out = all[i];
			found++;
		}
	return found;
}

static uint64_t
total(const struct histogram_counts *c)
{
	uint64_t	 t = 0;
	size_t		 k;

	for (k = 0; k <= HISTOGRAM_BOUNDS; k++)
		t += c->buckets[k];
	return t;
}

static void
test_buckets(const char *db)
{
	struct histogram_counts	 c;
	struct metrics		*m = metrics_open(db);
	size_t			 k;
	int			 ascending = 1;

	for (k = 1; k < HISTOGRAM_BOUNDS; k++)
		ascending &= histogram_bounds_us[k] > histogram_bounds_us[k - 1];
	CHECK("histogram_bounds_ascending", ascending);
	metrics_observe(m, H_INGEST, "alpha", 0);
	metrics_observe(m, H_INGEST, "alpha", 500);	/* le = 0.0005 holds it */
	metrics_observe(m, H_INGEST, "alpha", 501);
	metrics_observe(m, H_INGEST, "alpha", 60000000);
	metrics_observe(m, H_INGEST, "alpha", 60000001);	/* +Inf */
	metrics_observe(m, H_INGEST, "alpha", -5);	/* a clock step: 0 */
	CHECK("histogram_one_series", read_bot(m, H_INGEST, "alpha", &c) == 1);
	CHECK("histogram_le_inclusive", c.buckets[0] == 3 && c.buckets[1] == 1);
	CHECK("histogram_last_bound", c.buckets[HISTOGRAM_BOUNDS - 1] == 1);
	CHECK("histogram_inf", c.buckets[HISTOGRAM_BOUNDS] == 1);
	CHECK("histogram_sum", c.sum_us == 500 + 501 + 60000000 + 60000001);
	CHECK("histogram_kinds_apart", read_bot(m, H_HANDLER, "alpha", &c) == 1 &&
	    total(&c) == 0);
	CHECK("histogram_unknown_bot_none", read_bot(m, H_INGEST, "beta", &c) == 0);
	metrics_observe(m, H_INGEST, "", 1);
	metrics_observe(m, H_INGEST, "a-name-that-is-longer-than-32-characters", 1);
	{
		struct histogram_counts all[METRICS_HISTOGRAM_BOTS];

		CHECK("histogram_bad_names_ignored", metrics_histograms(m, H_INGEST,
		    all, METRICS_HISTOGRAM_BOTS) == 1);
	}
	metrics_close(m);
}

/* Two mappings in this process and one in a child: one series, every count. */
static void
test_shared(const char *db)
{
	struct histogram_counts	 c;
	struct metrics		*a = metrics_open(db), *b = metrics_open(db);
	pid_t			 pid;
	int			 status = -1, i;

	for (i = 0; i < 100; i++) {
		metrics_observe(a, H_HANDLER, "beta", 3000);
		metrics_observe(b, H_HANDLER, "beta", 3000);
	}
	if ((pid = fork()) == 0) {
		struct metrics *child = metrics_open(db);

		metrics_close(a);	/* the parent's, copied by fork */
		metrics_close(b);

		for (i = 0; i < 1000; i++)
			metrics_observe(child, H_HANDLER, "beta", 20000);
		metrics_observe(child, H_CALL, "gamma", 1);
		metrics_add_bot(child, BM_CALLS_429, "beta", 5);
		metrics_close(child);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CHECK("histogram_child_exited", status == 0);
	CHECK("histogram_shared_one_series", read_bot(a, H_HANDLER, "beta", &c) == 1);
	CHECK("histogram_shared_counts", total(&c) == 1200 && c.buckets[3] == 200 &&
	    c.buckets[5] == 1000);
	CHECK("histogram_shared_sum", c.sum_us == 200 * 3000 + 1000 * 20000);
	CHECK("histogram_child_bot_seen", read_bot(b, H_CALL, "gamma", &c) == 1 &&
	    total(&c) == 1);
	metrics_add_bot(a, BM_CALLS_429, "beta", 2);
	metrics_add_bot(b, BM_CALLS_SENT, "gamma", 1);
	{
		struct bot_count	 counts[METRICS_HISTOGRAM_BOTS];
		size_t			 n = metrics_bot_counts(b, BM_CALLS_429, counts,
					    METRICS_HISTOGRAM_BOTS);

		CHECK("bot_counter_shared", n == 2 && strcmp(counts[0].bot,
		    "beta") == 0 && counts[0].value == 7 && strcmp(counts[1].bot,
		    "gamma") == 0 && counts[1].value == 0);
	}
	metrics_close(a);
	metrics_close(b);
}

/* The layout before the histograms: magic, slots, 64 counters. */
static void
test_old_layout(const char *db)
{
	char		 path[4096];
	uint64_t	 old[2 + 64] = { 0x74677131746d6574ull, 64 };
	struct histogram_counts c;
	struct metrics	*m;
	struct stat	 st;
	FILE		*f;

	old[2 + M_RECEIVED] = 41;
	snprintf(path, sizeof(path), "%s-metrics", db);
	f = fopen(path, "w");
	CHECK("old_layout_written", f != NULL && fwrite(old, sizeof(old), 1, f) == 1);
	if (f != NULL)
		fclose(f);
	m = metrics_open(db);
	CHECK("old_layout_counters_kept", metrics_get(m, M_RECEIVED) == 41);
	metrics_observe(m, H_INGEST, "delta", 7000);
	CHECK("old_layout_histograms", read_bot(m, H_INGEST, "delta", &c) == 1 &&
	    c.buckets[4] == 1);
	CHECK("old_layout_extended", stat(path, &st) == 0 &&
	    (size_t)st.st_size > sizeof(old));
	metrics_close(m);
}

int
main(void)
{
	/* Each test on a queue of its own, whose metrics file is removed after. */
	static const struct {
		const char	*name;
		void		(*run)(const char *db);
	} tests[] = {
		{ "one", test_buckets }, { "two", test_shared },
		{ "three", test_old_layout },
	};
	char	 db[sizeof(dir) + 32], path[sizeof(db) + 16];
	size_t	 i;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_init("test_metrics", LOG_LVL_ERR);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		snprintf(db, sizeof(db), "%s/%s.db", dir, tests[i].name);
		tests[i].run(db);
		snprintf(path, sizeof(path), "%s-metrics", db);
		unlink(path);
	}
	rmdir(dir);
	return check_exit();
}
