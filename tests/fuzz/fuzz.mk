# Fuzzing: libFuzzer targets in tests/fuzz/fuzz_<target>.c.
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="json calls"]
#       builds each target with clang -fsanitize=fuzzer,address,undefined into
#       build-fuzz/ and runs them one after the other, FUZZ_SECONDS each, on
#       tests/fuzz/corpus/<target> (read only; new inputs go to
#       build-fuzz/corpus/<target>, crashes to build-fuzz/crashes/<target>/).
#   make fuzz-build      only builds them
#   make fuzz-merge      minimizes build-fuzz/corpus into tests/fuzz/corpus (merge.sh)
#   make fuzz-clean      removes build-fuzz/
# A crash that is fixed stays as a regression case: copy it from
# build-fuzz/crashes/<target>/ to tests/fuzz/crashes/<target>/ under a name that
# says what it is (not crash-*, which .gitignore hides).
# `make all` (so `make test` and `make asan`) also builds a replay program per
# target, $(B)/tests/fuzz_replay_<target>, with the build's own compiler and flags:
# it runs the target on every file of the directories it is given, which
# tests/integration/test_fuzz_replay.py does for the corpus and the crashes.

FUZZ_TARGETS	?= request json config calls answer frame fcgi
FUZZ_SECONDS	?= 60
FUZZ_B		 = build-fuzz
FUZZ_CC		 = clang
FUZZ_SAN	 = -fsanitize=address,undefined -fno-sanitize-recover=all
# The project's flags (warnings, -Werror, includes) without its optimisation and
# hardening: -O1 and the sanitizers instead.
FUZZ_CFLAGS	 = $(filter-out $(CFLAGS) $(HARDEN),$(ALL_CFLAGS)) -O1 -g \
		   -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_HEADERS	 = $(HEADERS) tests/fuzz/fuzz.h

# The product's sources each target needs besides lib/ (request: not store.c nor
# metrics_page.c; the target defines store_put, store_health, store_ready and
# metrics_render).
FUZZ_SRC_request = cgi/request.c cgi/secrets.c
FUZZ_SRC_calls	 = drain/calls.c
FUZZ_SRC_frame	 = cgi/fcgi_frame.c
FUZZ_SRC_fcgi	 = cgi/fcgi_frame.c cgi/fcgi_adapter.c

FUZZ_LIB_OBJ	 = $(LIB_SRC:%.c=$(FUZZ_B)/obj/%.o)
FUZZ_BINS	 = $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)
FUZZ_REPLAYS	 = $(FUZZ_TARGETS:%=$(B)/tests/fuzz_replay_%)

EXTRA_TESTS	+= $(FUZZ_REPLAYS)

.PHONY: fuzz fuzz-build fuzz-merge fuzz-clean
fuzz: fuzz-build
	@FUZZ_B=$(FUZZ_B) FUZZ_SECONDS=$(FUZZ_SECONDS) \
	    sh tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-merge: fuzz-build
	@FUZZ_B=$(FUZZ_B) sh tests/fuzz/merge.sh $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf $(FUZZ_B)

fuzz-build: $(FUZZ_BINS)

$(FUZZ_B)/obj/%.o: %.c $(FUZZ_HEADERS)
	@mkdir -p $(@D)
	@echo "  CC(fuzz) $<"; $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
	    -c -o $@ $<

$(FUZZ_B)/libtgq.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $(FUZZ_LIB_OBJ)

# One link rule per target, for the fuzzer and for the replay program; explicit
# rules, so that the unit tests' $(B)/tests/% pattern rule is never tried for them.
define FUZZ_RULES
$(FUZZ_B)/fuzz_$(1): $(FUZZ_B)/obj/tests/fuzz/fuzz_$(1).o \
    $(FUZZ_SRC_$(1):%.c=$(FUZZ_B)/obj/%.o) $(FUZZ_B)/libtgq.a
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(LDLIBS)

$(B)/tests/fuzz_replay_$(1): $(B)/tests/fuzz/fuzz_$(1).o \
    $(B)/tests/fuzz/replay_main.o $(FUZZ_SRC_$(1):%.c=$(B)/%.o) $(B)/libtgq.a
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULES,$(t))))

$(FUZZ_TARGETS:%=$(B)/tests/fuzz/fuzz_%.o) $(B)/tests/fuzz/replay_main.o: \
    tests/fuzz/fuzz.h
