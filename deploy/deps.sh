#!/bin/sh
# Installs the Debian packages that building, testing and the demo need, and only
# those that are missing.  Called first by `make test` and `make demo`, so each is one
# command on a fresh machine.  Usage: deploy/deps.sh [build|test|demo|bench]
set -eu

build="gcc make pkg-config libfcgi-dev libcurl4-openssl-dev libsqlite3-dev libinih-dev"
runtime="sqlite3 nginx lighttpd spawn-fcgi curl python3 ca-certificates"
test_extra="clang libclang-rt-14-dev procps mandoc valgrind prometheus"
bench_extra="wrk"

case "${1:-test}" in
build) want="$build" ;;
demo)  want="$build $runtime" ;;
test)  want="$build $runtime $test_extra" ;;
bench) want="$build $runtime $test_extra $bench_extra" ;;
*) echo "usage: $0 [build|test|demo|bench]" >&2; exit 2 ;;
esac

missing=""
for pkg in $want; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	case "$status" in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
[ -z "$missing" ] && exit 0

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
