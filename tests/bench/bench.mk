# make bench: tgq against its ceilings and its peers, in one run on this machine
# (tests/bench/bench.py says what is measured).  Included by the Makefile.

BENCH_NOOP = $(B)/bench/noop_fcgi
BENCH_CEILING = $(B)/bench/ceiling_fcgi

$(BENCH_CEILING): tests/bench/ceiling_fcgi.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $<

$(BENCH_NOOP): tests/bench/noop_fcgi.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

.PHONY: bench
bench:
	@sh deploy/deps.sh bench
	$(MAKE) all
	$(MAKE) $(BENCH_NOOP) $(BENCH_CEILING)
	$(PYTHON) tests/bench/bench.py --build $(B)
