# tgq: Telegram webhook endpoint, queue and admin tools.
#   make            build everything into build/
#   make test       install what is missing, build, run every test (also under ASan)
#   make demo       install what is missing, build, run the pipeline on loopback
#   make asan       the ASan+UBSan build, into build-asan/
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SBINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
UNITDIR	?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
EXAMPLEDIR ?= $(PREFIX)/share/doc/tgq/examples
UNITS	 = deploy/systemd/tgq-webhook.socket deploy/systemd/tgq-webhook.service \
	   deploy/systemd/tgq-drain.service deploy/systemd/tgq-drain.timer \
	   deploy/systemd/tgq-drain-follow.service deploy/systemd/tgq-register.service
MAN1	 = man/tgq.1
MAN5	 = man/tgq.conf.5
MAN8	 = man/tgq-webhook.8 man/tgq-drain.8
DESTDIR	?=
PYTHON	?= /usr/bin/python3
B	?= build

CC	?= cc
PKGS	 = fcgi libcurl sqlite3 inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lfcgi -lcurl -lsqlite3 -linih)
# tgq-drain's local Bot API (and the unit tests, which link the drain's parts).
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS   := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wformat=2 -Werror
CFLAGS	?= -O2 -g
HARDEN	?= -fstack-protector-strong -D_FORTIFY_SOURCE=2
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE $(WARN) -Ilib -Icgi -Idrain -Icli $(PKG_CFLAGS) $(MHD_CFLAGS) $(HARDEN) \
	     $(CFLAGS) -pthread
LDLIBS	 = $(PKG_LIBS) -pthread

LIB_SRC	 = lib/util.c lib/log.c lib/secret.c lib/json.c lib/config.c lib/queue.c \
	   lib/botapi.c lib/metrics.c lib/cidr.c lib/users.c lib/sha256.c \
	   lib/update_types.c lib/listen.c lib/handler_kinds.c
CGI_SRC	 = cgi/fastcgi.c cgi/fcgi_adapter.c cgi/fcgi_frame.c cgi/request.c \
	   cgi/secrets.c cgi/store.c cgi/metrics_page.c cgi/metrics_bots.c
# Every drain/handler_*.c is built: a new handler kind needs no line here.
DRAIN_SRC = drain/handler.c $(sort $(wildcard drain/handler_*.c)) drain/backoff.c \
	   drain/ratelimit.c drain/calls.c drain/gate.c drain/jobs.c drain/sender.c \
	   drain/localapi.c drain/localapi_updates.c drain/localapi_pass.c \
	   drain/bot_down.c drain/loop.c
CLI_SRC	 = cli/cli.c cli/jsonw.c cli/cmd_webhook.c cli/cmd_queue.c cli/cmd_poll.c \
	   cli/cmd_doctor.c cli/cmd_rotate.c
TEST_SRC = $(wildcard tests/unit/test_*.c)
HEADERS	 = lib/tgq.h lib/config_keys.h lib/handler_kinds.h cgi/webhook.h drain/drain.h drain/handler.h drain/localapi.h cli/cli.h \
	   tests/unit/check.h

LIB_OBJ	 = $(LIB_SRC:%.c=$(B)/%.o)
CGI_OBJ	 = $(CGI_SRC:%.c=$(B)/%.o)
DRAIN_OBJ = $(DRAIN_SRC:%.c=$(B)/%.o)
CLI_OBJ	 = $(CLI_SRC:%.c=$(B)/%.o)
# Everything but the programs' main(): what the unit tests link against.
PARTS	 = $(CGI_OBJ) $(DRAIN_OBJ) $(B)/libtgq.a
TESTS	 = $(TEST_SRC:tests/unit/%.c=$(B)/tests/%)
PROGS	 = $(B)/tgq-webhook $(B)/tgq-drain $(B)/tgq

# Suites with targets of their own (make fuzz, make bench, make test-faults); each
# may add programs that make test needs to EXTRA_TESTS.  Their rules come first
# in the file, so the default goal is named.
.DEFAULT_GOAL := all
EXTRA_TESTS =
-include tests/fuzz/fuzz.mk
-include tests/bench/bench.mk
-include tests/faults/faults.mk

.PHONY: all test demo asan install uninstall clean lint deps
all: $(PROGS) $(TESTS) $(EXTRA_TESTS)

$(B)/%.o: %.c $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $<"; $(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libtgq.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(B)/tgq-webhook: $(B)/cgi/main.o $(CGI_OBJ) $(B)/libtgq.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tgq-drain: $(B)/drain/main.o $(DRAIN_OBJ) $(B)/libtgq.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(MHD_LIBS) $(LDLIBS)

$(B)/tgq: $(B)/cli/main.o $(CLI_OBJ) $(B)/libtgq.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(PARTS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(MHD_LIBS) $(LDLIBS)

deps:
	@sh deploy/deps.sh test

asan:
	$(MAKE) B=build-asan CC=clang \
	    CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    HARDEN= \
	    LDFLAGS="-fsanitize=address,undefined" all

test: deps lint
	$(MAKE) all
	$(MAKE) asan
	$(PYTHON) tests/run.py --build build --asan-build build-asan

demo:
	@sh deploy/deps.sh demo
	$(MAKE) all
	$(PYTHON) tests/demo.py --build build

# Calls with no length, that write past a buffer or silently truncate, or that
# parse numbers without reporting overflow: each has a bounded replacement here
# (snprintf, parse_int, strspn/strcspn).
BANNED	 = sprintf|vsprintf|strcpy|strcat|strncpy|strtok|strtok_r|atoi|atol|gets|sscanf
lint:
	@! grep -nE '\b($(BANNED))\(' \
	    $(LIB_SRC) cgi/*.c drain/*.c cli/*.c || { echo "lint: banned call above"; exit 1; }

install: $(PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(B)/tgq $(DESTDIR)$(BINDIR)/tgq
	install -m 0755 $(B)/tgq-webhook $(DESTDIR)$(SBINDIR)/tgq-webhook
	install -m 0755 $(B)/tgq-drain $(DESTDIR)$(SBINDIR)/tgq-drain
	install -m 0644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(EXAMPLEDIR)
	# The units name the programs where this install puts them.
	for u in $(UNITS); do \
	    sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/usr/local/bin/|$(BINDIR)/|g' \
	        $$u > $(DESTDIR)$(UNITDIR)/$${u##*/} && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 deploy/systemd/tgq.sysusers $(DESTDIR)$(SYSUSERSDIR)/tgq.conf
	install -m 0644 deploy/systemd/tgq.tmpfiles $(DESTDIR)$(TMPFILESDIR)/tgq.conf
	install -m 0644 deploy/nginx/tgq.conf $(DESTDIR)$(EXAMPLEDIR)/nginx-tgq.conf
	install -m 0644 deploy/nginx/tgq-upstream.conf \
	    $(DESTDIR)$(EXAMPLEDIR)/nginx-tgq-upstream.conf
	install -m 0644 deploy/lighttpd/tgq.conf $(DESTDIR)$(EXAMPLEDIR)/lighttpd-tgq.conf
	sed 's|/usr/local/sbin/|$(SBINDIR)/|g' deploy/lighttpd/tgq-spawn.conf \
	    > $(DESTDIR)$(EXAMPLEDIR)/lighttpd-tgq-spawn.conf
	install -m 0644 deploy/README.md $(DESTDIR)$(EXAMPLEDIR)/README.md
	install -m 0644 deploy/proxy/nginx-origin.conf \
	    $(DESTDIR)$(EXAMPLEDIR)/nginx-tgq-origin.conf
	install -m 0644 deploy/proxy/nginx-front.conf \
	    $(DESTDIR)$(EXAMPLEDIR)/nginx-tgq-front.conf
	install -m 0644 deploy/proxy/cloudflared.yml deploy/proxy/tgq-proxy.conf \
	    deploy/prometheus/tgq-rules.yml deploy/grafana/tgq-dashboard.json \
	    $(DESTDIR)$(EXAMPLEDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tgq $(DESTDIR)$(SBINDIR)/tgq-webhook \
	    $(DESTDIR)$(SBINDIR)/tgq-drain $(DESTDIR)$(MANDIR)/man1/tgq.1 \
	    $(DESTDIR)$(MANDIR)/man5/tgq.conf.5 $(DESTDIR)$(MANDIR)/man8/tgq-webhook.8 \
	    $(DESTDIR)$(MANDIR)/man8/tgq-drain.8 $(DESTDIR)$(SYSUSERSDIR)/tgq.conf \
	    $(DESTDIR)$(TMPFILESDIR)/tgq.conf
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	rm -rf $(DESTDIR)$(EXAMPLEDIR)

clean:
	rm -rf build build-asan
