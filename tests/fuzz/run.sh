#!/bin/sh
# Runs the fuzzers built by `make fuzz-build`, one after the other (make fuzz).
#   FUZZ_B=build-fuzz FUZZ_SECONDS=60 sh tests/fuzz/run.sh request json ...
# Each runs FUZZ_SECONDS on tests/fuzz/corpus/<target> (read only), writing new
# inputs to $FUZZ_B/corpus/<target> and crashes to $FUZZ_B/crashes/<target>/,
# at nice 10, and ends with one line: execs, coverage, crashes.  Exits 1 when a
# target crashed (its log is $FUZZ_B/logs/<target>.log).  FUZZ_FLAGS adds libFuzzer
# flags, e.g. FUZZ_FLAGS="-fork=1 -ignore_crashes=1" to go on after a crash.
B=${FUZZ_B:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
SRC=tests/fuzz
status=0
for t in "$@"; do
	mkdir -p "$B/corpus/$t" "$B/crashes/$t" "$B/logs"
	dict=
	[ -f "$SRC/$t.dict" ] && dict="-dict=$SRC/$t.dict"
	log="$B/logs/$t.log"
	before=$(ls "$B/crashes/$t" | wc -l)
	start=$(date +%s)
	nice -n 10 "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 $dict ${FUZZ_FLAGS:-} \
	    -artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" "$SRC/corpus/$t" \
	    </dev/null >"$log" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	after=$(ls "$B/crashes/$t" | wc -l)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	# -fork=1 prints no final stats: the last "#N" line counts the runs.
	[ -n "$execs" ] || execs=$(grep -E '^#[0-9]+' "$log" | tail -n 1 |
	    sed 's/^#\([0-9]*\).*/\1/')
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p')
	crashes=$((after - before))
	echo "fuzz_$t: ${took}s, ${execs:-?} execs, ${cov:-cov ?}, $crashes crash(es), exit $rc"
	if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
		status=1
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant violated|    #[0-9])' "$log" | head -n 20
	fi
done
exit $status
