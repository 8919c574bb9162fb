# tgq: Telegram webhook endpoint, queue and admin tools.
#   make            build everything into build/
#   make test       install what is missing, build, run every test (also under ASan)
#   make demo       install what is missing, build, run the pipeline on loopback
#   make asan       the ASan+UBSan build, into build-asan/
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SBINDIR	?= $(PREFIX)/sbin
DESTDIR	?=
PYTHON	?= /usr/bin/python3
B	?= build

CC	?= cc
PKGS	 = fcgi libcurl sqlite3 inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lfcgi -lcurl -lsqlite3 -linih)
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wformat=2 -Werror
CFLAGS	?= -O2 -g
HARDEN	?= -fstack-protector-strong -D_FORTIFY_SOURCE=2
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE $(WARN) -Ilib -Icgi -Idrain $(PKG_CFLAGS) $(HARDEN) \
	     $(CFLAGS) -pthread
LDLIBS	 = $(PKG_LIBS) -pthread

LIB_SRC	 = lib/util.c lib/log.c lib/secret.c lib/json.c lib/config.c lib/queue.c \
	   lib/botapi.c
CGI_SRC	 = cgi/request.c cgi/store.c
DRAIN_SRC = drain/handler.c drain/ratelimit.c drain/calls.c drain/jobs.c \
	   drain/sender.c drain/loop.c
TEST_SRC = $(wildcard tests/unit/test_*.c)
HEADERS	 = lib/tgq.h cgi/webhook.h drain/drain.h drain/handler.h tests/unit/check.h

LIB_OBJ	 = $(LIB_SRC:%.c=$(B)/%.o)
CGI_OBJ	 = $(CGI_SRC:%.c=$(B)/%.o)
DRAIN_OBJ = $(DRAIN_SRC:%.c=$(B)/%.o)
# Everything but the programs' main(): what the unit tests link against.
PARTS	 = $(CGI_OBJ) $(DRAIN_OBJ) $(B)/libtgq.a
TESTS	 = $(TEST_SRC:tests/unit/%.c=$(B)/tests/%)
PROGS	 = $(B)/tgq-webhook $(B)/tgq-drain

.PHONY: all test demo asan install uninstall clean lint deps
all: $(PROGS) $(TESTS)

$(B)/%.o: %.c $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $<"; $(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libtgq.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(B)/tgq-webhook: $(B)/cgi/main.o $(CGI_OBJ) $(B)/libtgq.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tgq-drain: $(B)/drain/main.o $(DRAIN_OBJ) $(B)/libtgq.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(PARTS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@sh deploy/deps.sh test

asan:
	$(MAKE) B=build-asan CC=clang \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    HARDEN= \
	    LDFLAGS="-fsanitize=address,undefined" all

test: deps
	$(MAKE) all
	$(MAKE) asan
	$(PYTHON) tests/run.py --build build --asan-build build-asan

demo:
	@sh deploy/deps.sh demo
	$(MAKE) all
	$(PYTHON) tests/demo.py --build build

lint:
	@! grep -nE '\b(sprintf|strcpy|strcat|strtok|atoi|gets|vsprintf)\(' \
	    $(LIB_SRC) cgi/*.c drain/*.c || { echo "lint: banned call above"; exit 1; }

install: $(PROGS)
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 $(B)/tgq-webhook $(DESTDIR)$(SBINDIR)/tgq-webhook
	install -m 0755 $(B)/tgq-drain $(DESTDIR)$(SBINDIR)/tgq-drain

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/tgq-webhook $(DESTDIR)$(SBINDIR)/tgq-drain

clean:
	rm -rf build build-asan
