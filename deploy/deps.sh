#!/bin/sh
# Installs the Debian packages that building, testing and the demo need, and only
# those that are missing.  Called first by `make test` and `make demo`, so each is one
# command on a fresh machine.  Usage: deploy/deps.sh [build|test|demo|bench]
# For test and bench it then installs grammY and telegraf (the frameworks the bot
# tests and the bench run) from tests/bots/package-lock.json into
# tests/bots/node_modules with `npm ci`, unless the locked versions are there.
set -eu

build="gcc make pkg-config libfcgi-dev libcurl4-openssl-dev libsqlite3-dev libinih-dev
libmicrohttpd-dev"
runtime="sqlite3 nginx lighttpd spawn-fcgi curl python3 ca-certificates"
# promtool (in prometheus) checks the shipped alert rules; real bot frameworks
# for the "bring your own bot" tests: python-telegram-bot 13
# from Debian, grammY and telegraf from npm (below).
test_extra="clang libclang-rt-14-dev procps mandoc valgrind
prometheus python3-python-telegram-bot nodejs npm"
bench_extra="wrk"

case "${1:-test}" in
build) want="$build" ;;
demo)  want="$build $runtime" ;;
test)  want="$build $runtime $test_extra" ;;
bench) want="$build $runtime $test_extra $bench_extra" ;;
*) echo "usage: $0 [build|test|demo|bench]" >&2; exit 2 ;;
esac

bots_dir=$(cd "$(dirname "$0")/../tests/bots" && pwd)

# grammY and telegraf, pinned by tests/bots/package-lock.json.  `npm ci` starts
# from an empty node_modules, so it runs only when a package.json dependency is
# not installed at its exact (pinned) version.
install_bots() {
	case "$mode" in test|bench) ;; *) return 0 ;; esac
	stale=""
	for dep in $(sed -n '/"dependencies"/,/}/s/^ *"\([^"]*\)": *"\([^"]*\)".*/\1@\2/p' \
	    "$bots_dir/package.json"); do
		name=${dep%@*}
		have_v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
			"$bots_dir/node_modules/$name/package.json" 2>/dev/null | head -n 1)
		[ "$have_v" = "${dep##*@}" ] || stale="$stale $dep"
	done
	[ -z "$stale" ] && return 0
	echo "deps.sh: npm ci in tests/bots (for$stale)"
	(cd "$bots_dir" && npm ci --no-audit --no-fund --loglevel=error)
}

mode="${1:-test}"
missing=""
for pkg in $want; do
	# A nodejs that is not Debian's (NodeSource's) brings its own npm and conflicts
	# with Debian's npm package: an npm on the PATH is enough.
	if [ "$pkg" = npm ] && command -v npm >/dev/null 2>&1; then
		continue
	fi
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	case "$status" in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
if [ -z "$missing" ]; then
	install_bots
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	as_root="sudo -n"
else
	echo "deps.sh: these Debian packages are missing:$missing" >&2
	echo "deps.sh: install them as root: apt-get install$missing" >&2
	exit 1
fi

echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty or stale: refresh them once.
$as_root apt-get update -qq
# shellcheck disable=SC2086
$as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
# nginx and lighttpd start their default sites when installed; the tests start their
# own instances on free ports, so the packaged services are not needed.  prometheus
# is there for promtool (the shipped alert rules are checked with it) and would
# start scraping on :9090.  Stopping them is best effort: on a machine without a
# running init there is nothing to stop.
for svc in nginx lighttpd prometheus; do
	$as_root service "$svc" stop >/dev/null 2>&1 || true
done
install_bots
