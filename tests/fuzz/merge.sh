#!/bin/sh
# Minimizes what the fuzzers found into the corpus kept in the source tree
# (make fuzz-merge): for each target, a fresh dir gets the hand-made seeds
# (seed-*, written by seeds.py) and then, by libFuzzer's -merge=1, only those
# inputs of $FUZZ_B/corpus/<target> and tests/fuzz/corpus/<target> that add
# coverage; it then replaces tests/fuzz/corpus/<target>.  Coverage here is edges
# only (-use_counters=0), not hit counts, so the kept corpus stays small (a few
# hundred KiB); the fuzzers grow the rest back in build-fuzz/corpus.
#   FUZZ_B=build-fuzz sh tests/fuzz/merge.sh request json ...
B=${FUZZ_B:-build-fuzz}
SRC=tests/fuzz
status=0
for t in "$@"; do
	fresh="$B/merged/$t"
	rm -rf "$fresh"
	mkdir -p "$fresh" "$B/corpus/$t" "$B/logs"
	cp "$SRC/corpus/$t"/seed-* "$fresh/" 2>/dev/null
	if ! nice -n 10 "$B/fuzz_$t" -merge=1 -use_counters=0 -timeout=10 "$fresh" "$B/corpus/$t" \
	    "$SRC/corpus/$t" </dev/null >"$B/logs/$t-merge.log" 2>&1; then
		echo "fuzz_$t: merge failed, see $B/logs/$t-merge.log"
		status=1
		continue
	fi
	rm -rf "$SRC/corpus/$t"
	cp -r "$fresh" "$SRC/corpus/$t"
	echo "fuzz_$t: $(ls "$SRC/corpus/$t" | wc -l) inputs," \
	    "$(cat "$SRC/corpus/$t"/* | wc -c) bytes in $SRC/corpus/$t"
done
exit $status
