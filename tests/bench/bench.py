#!/usr/bin/python3
"""make bench: tgq against its ceilings and its peers, on this machine, in one run.

    /usr/bin/python3 tests/bench/bench.py --build build [--duration 10] [--rounds 5]

A ratio is always taken round by round: both runs of a pair come from the same
round, the ratio printed is the median of the rounds' ratios with their min-max, and
each round runs the systems in a shuffled order (--seed repeats an order).  A run
that failed (no rate, non-2xx answers, socket errors, 200s without rows) gives its
round no ratio and is named, FAILED, beside the ratio; a target with a failed round
is not met.  Every run also reports the whole machine's busy and steal shares (from
/proc/stat) over it, since other load on the machine moves every figure.

0. The preamble: the machine, the tools, and fsync's latency in the queues' folder.
1. Ingest, wrk at c = 100 (--duration s, every system) and c = 1, 10
   (--short-duration s, a few): nginx `return 200`; the ceiling of the FastCGI hop
   (tests/bench/ceiling_fcgi.c: one epoll process, kept connections, answers at
   once, stores nothing); a no-op libfcgi responder (4 processes under spawn-fcgi,
   a connection per request, since libfcgi without threads cannot keep one);
   tgq-webhook at durability full and normal, 1 and 2 processes, behind the shipped
   nginx snippet; grammY's webhookCallback behind the same nginx (proxy_pass, with
   and without an upstream keepalive pool).  CPU-seconds per request of the server
   processes (utime + stime from /proc/PID/stat: the app's, nginx's).  Every tgq run
   starts from an empty queue and ends with a count: every 200 must have its row.
2. The drain: sendMessage calls/s with the rate limits off against nginx answering
   a canned Message, vs. grammY's bot.api.sendMessage with the same concurrency;
   50 chats (5 of them groups) x 20 messages with Telegram's limits against the
   enforcing fake (tests/fake_botapi.py); end-to-end latency (webhook 200 -> call at
   the fake, the fake in a process of its own) in --follow mode at 100 updates/s.
3. Memory and scale: peak RSS (VmHWM) of the webhook processes during the c = 100
   runs, of the drain with a 100,000-row backlog (and its calls/s there vs. grammY's
   client on 100,000 calls), the whole bot (webhook + drain) vs. grammY's process;
   ingest at c = 100 into a queue of 1,000,000 done + 100,000 pending rows vs. an
   empty one.
4. A hot chat (--only hotchat): how fast `tgq-drain --follow` (echo, limits off)
   handles a 50,000-update backlog in one chat, beside the same number over 1,000
   chats; and ingest at c = 50 (wrk, all in the one chat) while the drain works
   that backlog vs. while it works the spread one vs. with no drain.
5. Bring your own bot, pull (--only pull): getUpdates served from a 100,000-row
   backlog in batches of 100; the wake-up of a parked poll after the webhook's 200
   at 100 updates/s; sendMessage passed through the local Bot API by grammY's
   client vs. the same client straight at nginx's canned answer (paired rounds);
   the drain's peak RSS with a 20 MB upload in flight.
6. Bring your own bot, push (--only push): updates/s through handler = http:// to
   nginx `return 200` and to the grammY echo bot (tests/bots/grammy_webhook.js),
   beside echo and exec: (sh), in the same shuffled rounds; the latency tgq adds
   at 100 updates/s (webhook's 200 -> the bot has the update) vs. posting straight
   to the bot; the drain's peak RSS.

Human tables first; the last lines are `name: value` pairs, then one
`target <name>: met|NOT MET (...)` line per performance target, with the rounds
that met it ("k of n rounds").  Everything runs on 127.0.0.1 in temp folders, every
load run is bounded in time, and every process started here is stopped here, by
its PID.
"""

import argparse
import http.client
import http.server
import json
import random
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import harness as h  # noqa: E402
from fake_botapi import FakeBotAPI  # noqa: E402

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/telegram/webhook"
BODY_LEN = 625
CONCURRENCY = (1, 10, 100)
KIB = 1024

# ---------------------------------------------------------------- bookkeeping

CLEANUP = []        # callables, run in reverse order at the end (or on a signal)
SUMMARY = []        # (name, value) for the final lines
TARGETS = []        # (name, met, measured, target)
NOTES = []


def log(msg=""):
    print(msg, flush=True)


def fig(name, value):
    SUMMARY.append((name, value))


def target(name, met, measured, want):
    TARGETS.append((name, met, measured, want))


def at_exit(fn):
    CLEANUP.append(fn)
    return fn


def cleanup_all():
    while CLEANUP:
        fn = CLEANUP.pop()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - keep stopping the rest
            log("# cleanup: %s" % e)


def on_signal(sig, _frame):
    raise SystemExit("bench: signal %d" % sig)


def pct(values, p):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def vmhwm_kib(pid):
    """Peak resident set size of a live process, KiB (None when gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- CPU accounting

HZ = os.sysconf("SC_CLK_TCK")


def proc_ticks(pid):
    """utime + stime of a process, clock ticks (None when gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def proc_table():
    """{pid: (command, parent pid, utime + stime ticks)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        rest = st[st.rindex(")") + 2:].split()
        out[int(d)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))
    return out


def children_of(ppid):
    return [pid for pid, (_c, parent, _t) in proc_table().items() if parent == ppid]


def machine_ticks():
    """(busy, steal, total) jiffies of the whole machine from /proc/stat; busy
    excludes idle, iowait and steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    total = sum(v)
    idle, iowait, steal = v[3], v[4], v[7]
    return total - idle - iowait - steal, steal, total


class CpuWatch:
    """CPU used by given processes (utime + stime) and the machine's busy and
    steal shares, between start() and stop()."""

    def __init__(self, groups):
        self.groups = groups            # name -> list of pids
        self.t0 = {k: [proc_ticks(p) for p in v] for k, v in groups.items()}
        self.m0 = machine_ticks()

    def stop(self):
        out = {}
        for k, pids in self.groups.items():
            used = 0
            for p, before in zip(pids, self.t0[k]):
                after = proc_ticks(p)
                if before is not None and after is not None:
                    used += after - before
            out[k] = used / float(HZ)
        m1 = machine_ticks()
        dt = max(1, m1[2] - self.m0[2])
        out["busy"] = 100.0 * (m1[0] - self.m0[0]) / dt
        out["steal"] = 100.0 * (m1[1] - self.m0[1]) / dt
        return out


def failure(r):
    """Why a load run does not count (None when it does): no rate, nothing
    answered, answers other than 2xx, socket errors, or 200s without rows."""
    if r.get("why"):
        return r["why"]
    if r.get("rps") is None:
        return "no rate"
    if r.get("ok200", 1) <= 0:
        return "no 200s"
    if r.get("non2xx"):
        return "%d non-2xx" % r["non2xx"]
    if r.get("errors"):
        return "%d socket errors" % r["errors"]
    if r.get("mismatch"):
        return "200s without rows"
    return None


class Paired:
    """A ratio taken round by round: a / b of the two runs of one round.  A round
    where either run failed has no ratio and is counted as failed, never dropped
    silently."""

    def __init__(self, pairs):
        self.rounds = []                # ratio or None, per round
        self.failed = []                # (round, reason)
        for i, (a, b) in enumerate(pairs, 1):
            why = failure(a) or failure(b)
            if why:
                self.rounds.append(None)
                self.failed.append((i, why))
            else:
                self.rounds.append(a["rps"] / b["rps"])
        self.ok = [x for x in self.rounds if x is not None]
        self.median = statistics.median(self.ok) if self.ok else None

    def text(self):
        if not self.rounds:
            return "-"
        if not self.ok:
            return "FAILED in all %d rounds: %s" % (
                len(self.rounds), ", ".join("%d (%s)" % f for f in self.failed))
        t = "%.2f (%.2f-%.2f over %d rounds" % (self.median, min(self.ok), max(self.ok),
                                               len(self.ok))
        if self.failed:
            t += "; FAILED in round%s %s" % (
                "s" if len(self.failed) > 1 else "",
                ", ".join("%d (%s)" % f for f in self.failed))
        return t + ")"

    def rounds_text(self):
        return " ".join("-" if x is None else "%.2f" % x for x in self.rounds)

    def met(self, fn):
        """(met, k rounds meeting it): met needs the median to meet it and no
        failed round."""
        k = sum(1 for x in self.ok if fn(x))
        return (self.median is not None and fn(self.median) and not self.failed), k


def rng_text(vals, spec="%.0f"):
    """median (min-max) of the values that are there."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    return "%s (%s-%s)" % (spec % statistics.median(vals), spec % min(vals),
                           spec % max(vals))


def paired_target(name, p, fn, want):
    met, k = p.met(fn)
    target(name, met, "%s; rounds %s; %d of %d rounds meet it" % (
        p.text(), p.rounds_text(), k, len(p.rounds)), want)


def fsync_latency(folder, n=200):
    """Median and p99 of write(4 KiB) + fsync on a file in `folder`, ms."""
    path = os.path.join(folder, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat = []
    try:
        for i in range(n):
            os.pwrite(fd, os.urandom(4096), (i % 16) * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            lat.append((time.perf_counter() - t) * 1000.0)
    finally:
        os.close(fd)
        os.unlink(path)
    return pct(lat, 50), pct(lat, 99)


def as_run_user():
    if not h.IS_ROOT:
        return {}
    uid, gid = h.run_ids()
    return {"user": uid, "group": gid, "extra_groups": []}


def chown_db(path):
    for p in (path, path + "-wal", path + "-shm", path + "-journal", path + "-lock"):
        if os.path.exists(p):
            h.chown_run_user(p)


def remove_db(path):
    for p in (path, path + "-wal", path + "-shm", path + "-journal", path + "-lock"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- the update

def update_body(uid, chat, text):
    """A realistic private-chat message update of exactly BODY_LEN bytes (the
    sender's last name is the padding)."""
    def build(pad1, pad2):
        return ('{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,'
                '"is_bot":false,"first_name":"Alexandra","last_name":"%s",'
                '"username":"alexandra_k","language_code":"en","is_premium":true},'
                '"chat":{"id":%d,"first_name":"Alexandra","last_name":"%s",'
                '"username":"alexandra_k","type":"private"},"date":1718000000,'
                '"text":"%s","entities":[{"offset":0,"length":6,'
                '"type":"bot_command"}],"link_preview_options":{"is_disabled":true},'
                '"reply_markup":{"inline_keyboard":[[{"text":"Yes","callback_data":'
                '"vote:yes"},{"text":"No","callback_data":"vote:no"}]]}}}'
                % (uid, uid % 1000000 + 1, chat, pad1, chat, pad2, text))
    room = max(0, BODY_LEN - len(build("", "")))
    body = build("K" * (room - room // 2), "K" * (room // 2))
    return body.encode()


def lua_parts(secret):
    """The body around the update_id, for post.lua (11-digit ids)."""
    probe = 20000000000
    body = update_body(probe, 424242, "/start bench").decode()
    pre, post = body.split(str(probe), 1)
    return pre, post


POST_LUA = r"""
-- wrk script: POST a realistic update with the secret header; every request
-- carries a distinct update_id: BENCH_BASE + thread number * 1e8 + a counter.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  base = tonumber(os.getenv("BENCH_BASE")) + tid * 100000000
  n = 0
  pre = os.getenv("BENCH_PRE")
  post = os.getenv("BENCH_POST")
  path = os.getenv("BENCH_PATH")
  hdrs = {["Content-Type"] = "application/json",
          ["X-Telegram-Bot-Api-Secret-Token"] = os.getenv("BENCH_SECRET")}
end
function request()
  n = n + 1
  return wrk.format("POST", path, hdrs, pre .. string.format("%.0f", base + n) .. post)
end
"""


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "requests": 0, "non2xx": 0,
         "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                  out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    for p in ("50", "99"):
        m = re.search(r"^\s*%s%%\s+(\S+)" % p, out, re.M)
        if m:
            r["p" + p] = _ms(m.group(1))
    return r


class Wrk:
    seq = 0

    def __init__(self, tmpdir, secret):
        self.lua = os.path.join(tmpdir, "post.lua")
        with open(self.lua, "w") as f:
            f.write(POST_LUA)
        self.pre, self.post = lua_parts(secret)
        self.secret = secret

    def run(self, port, conns, duration, base=None, pids=None):
        """One wrk run; pids ({"app": [...], "nginx": [...]}) are the server
        processes whose CPU is counted per request."""
        Wrk.seq += 1
        if base is None:
            base = 20000000000 + Wrk.seq * 300000000
        env = h.base_env({"BENCH_BASE": base, "BENCH_PRE": self.pre,
                          "BENCH_POST": self.post, "BENCH_PATH": PATH,
                          "BENCH_SECRET": self.secret})
        cmd = [h.tool("wrk"), "-t%d" % min(2, conns), "-c%d" % conns,
               "-d%ds" % duration, "--timeout", "10s", "--latency", "-s", self.lua,
               "http://127.0.0.1:%d%s" % (port, PATH)]
        watch = CpuWatch(pids or {})
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=duration + 30)
            out = p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            out = "wrk timed out: %s" % e
        cpu = watch.stop()
        r = parse_wrk(out)
        r["ok200"] = r["requests"] - r["non2xx"]
        r["busy"], r["steal"] = cpu.pop("busy"), cpu.pop("steal")
        for k, v in cpu.items():
            r["cpu_us_" + k] = 1e6 * v / r["requests"] if r["requests"] else None
        if r["rps"] is None:
            r["raw"] = out[-400:]
        return r


# ---------------------------------------------------------------- servers

def nginx_conf(tmpdir, servers, http_extra=""):
    """One nginx (worker_processes auto) with one server block per system:
    servers is [(port, location text)]; http_extra goes in the http block."""
    t = tmpdir
    user = "user %s %s;\n" % (h.RUN_USER, h.RUN_USER) if h.IS_ROOT else ""
    blocks = "".join("""    server {
        listen 127.0.0.1:%d;
        server_name localhost;
%s
    }
""" % (port, body) for port, body in servers)
    return f"""{user}daemon off;
master_process on;
worker_processes auto;
pid {t}/nginx.pid;
error_log {t}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {t}/client_body;
    fastcgi_temp_path {t}/fastcgi_temp;
    proxy_temp_path {t}/proxy_temp;
    uwsgi_temp_path {t}/uwsgi_temp;
    scgi_temp_path {t}/scgi_temp;
{http_extra}
{blocks}}}
"""


class NginxMulti:
    def __init__(self, tmpdir, servers, http_extra=""):
        self.tmpdir = tmpdir
        self.conf = os.path.join(tmpdir, "nginx.conf")
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(tmpdir, "fastcgi_params"))
        with open(self.conf, "w") as f:
            f.write(nginx_conf(tmpdir, servers, http_extra))
        self.ports = [p for p, _ in servers]
        self.proc = None

    def start(self):
        err = os.path.join(self.tmpdir, "nginx-error.log")
        r = subprocess.run([h.tool("nginx"), "-t", "-q", "-c", self.conf, "-p",
                            self.tmpdir, "-e", err], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise h.HarnessError("nginx -t: %s" % r.stderr.strip()[-600:])
        self.log = open(os.path.join(self.tmpdir, "nginx-stderr.log"), "ab")
        self.proc = subprocess.Popen([h.tool("nginx"), "-c", self.conf, "-p",
                                      self.tmpdir, "-e", err],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        for p in self.ports:
            h.wait_port(p, proc=self.proc)
        return self

    def stop(self):
        h.stop_popen(self.proc, signal.SIGQUIT)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None


def snippet_for(socket_path, tmpdir, name):
    """The shipped location and upstream with the socket path replaced and the
    upstream named after the system (as tests/harness.py does), written beside
    nginx.conf; returns (the location's include line, the upstream's include line)."""
    upstream, location = h.nginx_snippets(socket_path, "tgq_" + name)
    paths = [os.path.join(tmpdir, "%s-%s.conf" % (what, name))
             for what in ("location", "upstream")]
    for path, text in zip(paths, (location, upstream)):
        with open(path, "w") as f:
            f.write(text)
    return ("        include %s;" % paths[0], "    include %s;\n" % paths[1])


def noop_location(socket_path):
    """The no-op libfcgi responder's location: the shipped location's limits, one
    FastCGI connection per request (a libfcgi responder without threads cannot keep one)."""
    _, location = h.nginx_snippets(socket_path)
    location = location.replace("fastcgi_keep_conn on;", "fastcgi_keep_conn off;")
    return location.replace("fastcgi_pass %s;" % h.SHIPPED_UPSTREAM,
                            "fastcgi_pass unix:%s;" % socket_path)


CANNED_ME = json.dumps({"ok": True, "result": {
    "id": 123456789, "is_bot": True, "first_name": "bench", "username": "bench_bot",
    "can_join_groups": True, "can_read_all_group_messages": False,
    "supports_inline_queries": False}}, separators=(",", ":"))
CANNED_MESSAGE = json.dumps({
    "ok": True, "result": {
        "message_id": 4242, "from": {"id": 123456789, "is_bot": True,
                                     "first_name": "bench", "username": "bench_bot"},
        "chat": {"id": 1000, "first_name": "Alexandra", "username": "alexandra_k",
                 "type": "private"},
        "date": 1718000000, "text": "bench reply"}}, separators=(",", ":"))


class FakeProcess:
    """tests/fake_botapi.py in a process of its own (so the bench's own threads do
    not share its interpreter), steered through its /_fake/ control API.  The
    times it records are time.monotonic(), the same clock in every process."""

    def __init__(self, tmpdir, token_file, limits=False):
        self.ready = os.path.join(tmpdir, "fake-ready")
        try:
            os.unlink(self.ready)
        except FileNotFoundError:
            pass
        cmd = [sys.executable, os.path.join(os.path.dirname(HERE), "fake_botapi.py"),
               "--port", "0", "--token-file", token_file, "--ready-file", self.ready]
        if not limits:
            cmd.append("--no-limits")
        self.logf = open(os.path.join(tmpdir, "fake.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.ready):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("bench: the fake Bot API did not start")
            time.sleep(0.05)
        with open(self.ready) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def calls(self, method):
        return self.control("/_fake/calls?method=%s" % method)

    def files(self):
        """The files it holds (uploads among them), without their bytes."""
        return self.control("/_fake/files")

    def control(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stop(self):
        if self.proc is not None:
            h.stop_popen(self.proc)
            self.proc = None
            self.logf.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.tmp = h.make_tmpdir("tgq-bench-")
        at_exit(lambda: shutil.rmtree(self.tmp, ignore_errors=True)
                if not args.keep else log("# kept %s" % self.tmp))
        self.bindir = h.stage_binaries(self.build)
        at_exit(lambda: shutil.rmtree(self.bindir, ignore_errors=True))
        self.noop = self.find_built("noop_fcgi")
        self.ceiling = self.find_built("ceiling_fcgi")
        self.secret = h.new_secret()
        self.token_file = h.write_token_file(self.tmp, TOKEN)
        self.wrk = Wrk(self.tmp, self.secret)
        self.grammy_dir = None
        self.grammy_skip = None
        self.grammy_proc = None

    # ---------------------------------------------------------------- setup

    def find_built(self, name):
        built = os.path.join(self.build, "bench", name)
        if not os.access(built, os.X_OK):
            raise SystemExit("bench: %s is missing: run `make bench`" % built)
        dst = os.path.join(self.bindir, name)
        shutil.copy2(built, dst)
        os.chmod(dst, 0o755)
        return dst

    def install_grammy(self):
        """grammY as deploy/deps.sh installed it (npm ci into tests/bots/node_modules,
        pinned by tests/bots/package-lock.json), copied with the bench's and the
        tests' grammY programs into a temp folder the unprivileged user can read."""
        bots = os.path.join(os.path.dirname(HERE), "bots")
        modules = os.path.join(bots, "node_modules")
        if not shutil.which("node"):
            self.grammy_skip = "node is not installed"
            return
        if not os.path.exists(os.path.join(modules, "grammy", "package.json")):
            self.grammy_skip = ("grammY is not in tests/bots/node_modules (deploy/deps.sh "
                                "bench runs npm ci there)")
            return
        d = tempfile.mkdtemp(prefix="tgq-bench-grammy-")
        os.chmod(d, 0o755)
        at_exit(lambda: shutil.rmtree(d, ignore_errors=True))
        shutil.copytree(modules, os.path.join(d, "node_modules"), symlinks=True)
        try:
            with open(os.path.join(d, "node_modules", "grammy", "package.json")) as f:
                self.grammy_version = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            self.grammy_version = "?"
        for js in ("grammy_server.js", "grammy_client.js"):
            shutil.copy(os.path.join(HERE, js), os.path.join(d, js))
        for js in ("grammy_webhook.js", "common.js"):
            shutil.copy(os.path.join(bots, js), os.path.join(d, js))
        for root, dirs, files in os.walk(d):
            for x in dirs + files:
                h.chown_run_user(os.path.join(root, x))
        h.chown_run_user(d)
        self.grammy_dir = d
        log("grammY %s from tests/bots/node_modules (npm ci of its package-lock.json)"
            % self.grammy_version)

    def node_env(self, **extra):
        env = h.base_env({"NODE_PATH": os.path.join(self.grammy_dir, "node_modules")})
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start_grammy(self, port):
        log_path = os.path.join(self.tmp, "grammy.log")
        logf = open(log_path, "ab")
        self.grammy_proc = subprocess.Popen(
            [shutil.which("node"), os.path.join(self.grammy_dir, "grammy_server.js"),
             str(port)], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            env=self.node_env(BENCH_SECRET=self.secret), cwd=self.grammy_dir,
            **as_run_user())
        proc = self.grammy_proc
        at_exit(lambda: (h.stop_popen(proc), logf.close()))
        h.wait_port(port, proc=proc)

    def new_db(self, name):
        """A fresh queue with tgq's own schema (tgq-webhook --check creates it)."""
        db = os.path.join(self.tmp, name + ".db")
        remove_db(db)
        env = h.base_env({"TGQ_DATABASE": db, "TGQ_WEBHOOK_SECRET": self.secret})
        r = subprocess.run([os.path.join(self.bindir, "tgq-webhook"), "--check"],
                           capture_output=True, text=True, env=env, timeout=30,
                           cwd=self.tmp, **as_run_user())
        if r.returncode != 0:
            raise SystemExit("bench: tgq-webhook --check: %s" % r.stderr.strip())
        chown_db(db)
        return db

    def count_rows(self, db, where="1"):
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute("SELECT count(*) FROM updates WHERE " + where).fetchone()[0]
        finally:
            con.close()
            chown_db(db)

    def preload(self, db, n, chats, state="new", first_uid=1, chat0=100000,
                text="echo %d", batch=200000):
        """n valid updates, update_ids rising, spread round-robin over `chats`
        chats, inserted in large transactions the way the webhook stores them
        (kind and chat_id filled in)."""
        now = int(time.time())
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA synchronous = OFF")
            con.execute("PRAGMA cache_size = -262144")
            done = 0
            while done < n:
                k = min(batch, n - done)
                rows = []
                for i in range(done, done + k):
                    uid = first_uid + i
                    chat = chat0 + i % chats
                    rows.append((uid, now, chat,
                                 update_body(uid, chat, text % uid).decode(), state,
                                 now if state == "done" else None))
                con.execute("BEGIN")
                con.executemany(
                    "INSERT INTO updates (bot, update_id, received_at, kind, chat_id, "
                    "body, state, handled_at) VALUES ('default', ?, ?, 'message', ?, "
                    "?, ?, ?)", rows)
                con.execute("COMMIT")
                done += k
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
            chown_db(db)

    def drain_env(self, db, api_url, **over):
        env = {"TGQ_DATABASE": db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_BOT_TOKEN_FILE": self.token_file, "TGQ_API_URL": api_url}
        env.update(over)
        return h.base_env(env)

    def start_full1(self, db):
        """tgq-webhook, durability full, 1 process (nginx's "full1" upstream), on
        db; stopped at exit unless stopped before."""
        wh = h.Webhook(os.path.join(self.bindir, "tgq-webhook"), self.tmp,
                       {"TGQ_DATABASE": db, "TGQ_WEBHOOK_SECRET": self.secret,
                        "TGQ_DURABILITY": "full"}, 1, "full1").start()
        at_exit(wh.stop)
        return wh

    def start_drain(self, mode, env, name):
        logf = open(os.path.join(self.tmp, name + ".log"), "ab")
        p = subprocess.Popen([os.path.join(self.bindir, "tgq-drain"), "--" + mode],
                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                             env=env, cwd=self.tmp, **as_run_user())
        at_exit(lambda: (h.stop_popen(p), logf.close()))
        return p

    # ---------------------------------------------------------------- 1. ingest

    def setup_ingest(self, with_grammy=True):
        if with_grammy:
            self.install_grammy()
        else:
            self.grammy_skip = "not needed by the parts run"
        if self.grammy_skip and with_grammy:
            log("grammY: SKIPPED: %s" % self.grammy_skip)
            NOTES.append("grammY skipped: %s" % self.grammy_skip)
        self.sockets = {}
        servers = []
        http_extra = ""
        self.port = {}

        def add(name, body):
            p = h.free_port()
            # free_port() closes its probe socket: two calls can return one port.
            while p in self.port.values():
                p = h.free_port()
            self.port[name] = p
            servers.append((p, body))

        add("nginx200", "        location /telegram/ {\n"
                        "            client_max_body_size 1m;\n"
                        "            client_body_buffer_size 1m;\n"
                        "            return 200 \"ok\\n\";\n        }")
        self.sockets["noop"] = os.path.join(self.tmp, "noop.sock")
        add("noop", noop_location(self.sockets["noop"]))
        for name in ("ceiling", "full1", "normal1", "full2", "normal2"):
            self.sockets[name] = os.path.join(self.tmp, name + ".sock")
            location, upstream = snippet_for(self.sockets[name], self.tmp, name)
            add(name, location)
            http_extra += upstream
        if self.grammy_dir:
            self.grammy_port = h.free_port()
            while self.grammy_port in self.port.values():
                self.grammy_port = h.free_port()
            add("grammy", "        location /telegram/ {\n"
                          "            client_max_body_size 1m;\n"
                          "            client_body_buffer_size 1m;\n"
                          "            proxy_pass http://127.0.0.1:%d;\n        }"
                % self.grammy_port)
            # The same with an upstream keepalive pool (what a published reference
            # figure for grammY most likely used): nginx reuses its connections to
            # node instead of opening one per request.
            add("grammy_ka", "        location /telegram/ {\n"
                             "            client_max_body_size 1m;\n"
                             "            client_body_buffer_size 1m;\n"
                             "            proxy_http_version 1.1;\n"
                             "            proxy_set_header Connection \"\";\n"
                             "            proxy_pass http://grammy_pool;\n        }")
            http_extra += ("    upstream grammy_pool {\n"
                          "        server 127.0.0.1:%d;\n"
                          "        keepalive 64;\n"
                          "        keepalive_timeout 60s;\n    }\n" % self.grammy_port)
        add("api", "        location ~ ^/bot[^/]+/sendMessage$ {\n"
                   "            default_type application/json;\n"
                   "            return 200 '%s';\n        }\n"
                   "        location ~ ^/bot[^/]+/getMe$ {\n"
                   "            default_type application/json;\n"
                   "            return 200 '%s';\n        }" % (CANNED_MESSAGE, CANNED_ME))
        self.nginx = NginxMulti(self.tmp, servers, http_extra).start()
        at_exit(self.nginx.stop)
        self.nginx_pids = [self.nginx.proc.pid] + children_of(self.nginx.proc.pid)
        self.noop_srv = h.Webhook(self.noop, self.tmp, {}, 4, "noop").start()
        at_exit(self.noop_srv.stop)
        self.ceiling_srv = h.Webhook(self.ceiling, self.tmp, {}, 1, "ceiling").start()
        at_exit(self.ceiling_srv.stop)
        if self.grammy_dir:
            self.start_grammy(self.grammy_port)

    def tgq_run(self, name, conns, db=None, base=None, duration=None):
        """One wrk run against a tgq-webhook started for it, on a fresh queue
        unless db is given; returns the wrk figures plus rows and peak RSS."""
        durability = "normal" if "normal" in name else "full"
        procs = int(name[-1])
        fresh = db is None
        if fresh:
            db = self.new_db("ingest-" + name)
        before = self.count_rows(db)
        env = {"TGQ_DATABASE": db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_DURABILITY": durability}
        sock_name = "full1" if name.startswith("big") or name.startswith("empty") \
            else name
        wh = h.Webhook(os.path.join(self.bindir, "tgq-webhook"), self.tmp, env, procs,
                       sock_name)
        wh.start()
        at_exit(wh.stop)
        try:
            time.sleep(0.2)
            r = self.wrk.run(self.port[sock_name], conns, duration or self.args.duration,
                             base, pids={"app": wh.pids, "nginx": self.nginx_pids})
            r["rss"] = [vmhwm_kib(p) for p in wh.pids]
        finally:
            wh.stop()
            CLEANUP.remove(wh.stop)
        r["rows"] = self.count_rows(db) - before
        r["mismatch"] = r["rows"] < r["ok200"]
        if fresh:
            remove_db(db)
        return r

    def ingest_systems(self, c):
        """Every system at c = 100 (the ratios); at c = 1 and 10, shorter runs of
        the few the p99 targets and the table need."""
        if c == 100:
            return list(self.systems)
        keep = ("nginx200", "ceiling", "full1", "grammy_ka") if c == 10 else \
            ("ceiling", "full1")
        return [x for x in self.systems if x in keep]

    def ingest_run(self, s, c):
        duration = self.args.duration if c == 100 else self.args.short_duration
        if s.startswith(("full", "normal")):
            return self.tgq_run(s, c, duration=duration)
        app = {"nginx200": [], "noop": self.noop_srv.pids,
               "ceiling": self.ceiling_srv.pids}.get(s)
        if app is None:
            app = [self.grammy_proc.pid]
        r = self.wrk.run(self.port[s], c, duration,
                         pids={"app": app, "nginx": self.nginx_pids})
        if s.startswith("grammy"):
            r["rss"] = [vmhwm_kib(self.grammy_proc.pid)]
            self.grammy_rss.append(r["rss"][0])
        return r

    def ingest(self):
        log("\n== 1. Ingest: wrk -t2 -c C --latency, %d-byte update, %d rounds, the "
            "systems in a shuffled order each round; c=100 runs %d s (every system), "
            "c=1 and c=10 %d s (a few); CPU is utime+stime of the server processes "
            "per request (app / nginx), busy and steal the whole machine's ==" % (
                BODY_LEN, self.args.rounds, self.args.duration,
                self.args.short_duration))
        systems = ["nginx200", "noop", "ceiling", "full1", "normal1", "full2", "normal2"]
        if self.grammy_dir:
            systems += ["grammy", "grammy_ka"]
        self.systems = systems
        res = {(s, c): [] for s in systems for c in CONCURRENCY}
        self.grammy_rss = []
        rng = random.Random(self.args.seed)
        log("  shuffle seed %d" % self.args.seed)
        for rnd in range(1, self.args.rounds + 1):
            for c in CONCURRENCY:
                order = self.ingest_systems(c)
                rng.shuffle(order)
                for s in order:
                    r = self.ingest_run(s, c)
                    res[(s, c)].append(r)
                    extra = ""
                    if "rows" in r:
                        extra = "  rows %d / 200s %d" % (r["rows"], r["ok200"])
                    why = failure(r)
                    if why:
                        extra += "  FAILED: %s" % why
                    if r.get("raw"):
                        extra += "  wrk said: %r" % r["raw"]
                    log("  round %d c=%-3d %-9s %8s req/s  p50 %7s ms  p99 %7s ms  "
                        "non-2xx %d  errors %d  cpu us/req %s / %s  busy %.0f%% "
                        "steal %.1f%%%s" % (
                            rnd, c, s, fmt(r["rps"]), fmt(r["p50"], "%.2f"),
                            fmt(r["p99"], "%.2f"), r["non2xx"], r["errors"],
                            fmt(r.get("cpu_us_app"), "%.1f"),
                            fmt(r.get("cpu_us_nginx"), "%.1f"), r["busy"], r["steal"],
                            extra))
        self.ingest_res = res

        log("\n-- Ingest: medians over the rounds (min-max) --")
        log("| system | c | req/s | p99 ms | failed runs | rows / 200s | app CPU us/req "
            "| nginx CPU us/req | machine busy / steal % | peak RSS KiB |")
        log("|---|---|---|---|---|---|---|---|---|---|")
        label = {"nginx200": "nginx `return 200`",
                 "noop": "no-op libfcgi, 4 procs, a connection per request",
                 "ceiling": "ceiling: epoll responder, kept connections, 1 proc",
                 "full1": "tgq full, 1 proc", "normal1": "tgq normal, 1 proc",
                 "full2": "tgq full, 2 procs", "normal2": "tgq normal, 2 procs",
                 "grammy": "grammY webhookCallback (proxy_pass)",
                 "grammy_ka": "grammY, proxy_pass + upstream keepalive"}

        mismatches = 0
        for s in systems:
            for c in CONCURRENCY:
                rs = res[(s, c)]
                if not rs:
                    continue
                rows = "-"
                if s.startswith(("full", "normal")):
                    rows = "%d / %d" % (sum(r["rows"] for r in rs),
                                        sum(r["ok200"] for r in rs))
                    bad = sum(1 for r in rs if r["mismatch"])
                    mismatches += bad
                    if bad:
                        rows += " MISMATCH"
                rss = [x for r in rs for x in r.get("rss", []) if x]
                nfail = sum(1 for r in rs if failure(r))
                log("| %s | %d | %s | %s | %s | %s | %s | %s | %s / %s | %s |" % (
                    label[s], c, rng_text([r["rps"] for r in rs]),
                    rng_text([r["p99"] for r in rs], "%.1f"),
                    "%d of %d" % (nfail, len(rs)) if nfail else "0",
                    rows, fmt(med([r.get("cpu_us_app") for r in rs]), "%.1f"),
                    fmt(med([r.get("cpu_us_nginx") for r in rs]), "%.1f"),
                    fmt(med([r["busy"] for r in rs])),
                    fmt(med([r["steal"] for r in rs]), "%.1f"),
                    fmt(max(rss) if rss else None)))
        if mismatches:
            log("\n!!! MISMATCH: %d tgq runs answered 200 for updates that have no "
                "row !!!" % mismatches)

        def m(s, c, k="rps"):
            if not res.get((s, c)):
                return None
            return med([r[k] for r in res[(s, c)]])

        def best_grammy(i):
            """Round i's faster grammY set-up (a run that failed does not count)."""
            runs = [res[(g, 100)][i] for g in ("grammy", "grammy_ka")]
            ok = [r for r in runs if not failure(r)]
            return max(ok, key=lambda r: r["rps"]) if ok else runs[0]

        for s in systems:
            for c in CONCURRENCY:
                if res[(s, c)]:
                    fig("ingest_%s_c%d_rps" % (s, c), fmt(m(s, c)))
        for s in systems:
            fig("cpu_us_per_req_%s_c100" % s, "%s app, %s nginx" % (
                fmt(m(s, 100, "cpu_us_app"), "%.1f"),
                fmt(m(s, 100, "cpu_us_nginx"), "%.1f")))
        log("\n-- Ratios at c=100, round by round (each pair from the same round): "
            "median (min-max) --")
        paired = {}
        refs = [("ceiling", "ceiling"), ("noop", "noop")]
        for s in ("full1", "normal1", "full2", "normal2"):
            for ref, name in refs:
                p = Paired(zip(res[(s, 100)], res[(ref, 100)]))
                paired[(s, name)] = p
                log("  %-7s / %-7s %s   rounds: %s" % (s, name, p.text(),
                                                        p.rounds_text()))
                fig("ratio_%s_vs_%s_c100" % (s, name), p.text())
            if self.grammy_dir:
                p = Paired((res[(s, 100)][i], best_grammy(i))
                           for i in range(len(res[(s, 100)])))
                paired[(s, "grammy")] = p
                log("  %-7s / %-7s %s   rounds: %s" % (s, "grammY", p.text(),
                                                        p.rounds_text()))
                fig("ratio_%s_vs_grammy_c100" % s, p.text())
        for ref in ("noop", "nginx200"):
            p = Paired(zip(res[("ceiling", 100)], res[(ref, 100)]))
            log("  ceiling / %-7s %s   rounds: %s" % (ref, p.text(), p.rounds_text()))
            fig("ratio_ceiling_vs_%s_c100" % ref, p.text())
        paired_target("ingest_vs_noop_c100", paired[("full1", "noop")],
                      lambda x: x >= 0.85, ">= 0.85 x the no-op libfcgi responder")
        if self.grammy_dir:
            paired_target("ingest_vs_grammy_c100", paired[("full1", "grammy")],
                          lambda x: x >= 1.0, ">= 1.0 x grammY (the faster of its two "
                          "nginx set-ups in each round)")
        else:
            fig("ratio_full_vs_grammy_c100", "skipped")
            target("ingest_vs_grammy_c100", False, "skipped: " + self.grammy_skip,
                   ">= 1.0 x grammY")
        for c in (10, 100):
            rs = res[("full1", c)]
            p99s = [r["p99"] for r in rs if not failure(r)]
            p99 = med(p99s)
            k = sum(1 for x in p99s if x <= 10.0)
            fig("p99_full_c%d_ms" % c, rng_text([r["p99"] for r in rs], "%.2f"))
            target("p99_full_c%d" % c, p99 is not None and p99 <= 10.0 and
                   len(p99s) == len(rs),
                   "%s ms; %d of %d rounds <= 10 ms%s" % (
                       rng_text(p99s, "%.2f"), k, len(rs),
                       "; %d runs FAILED" % (len(rs) - len(p99s))
                       if len(p99s) < len(rs) else ""), "<= 10 ms")
        non2xx = sum(r["non2xx"] + r["errors"] for c in CONCURRENCY
                     for r in res[("full1", c)])
        fig("non2xx_full", non2xx)
        target("zero_non2xx_full", non2xx == 0, "%d non-2xx or socket errors" % non2xx,
               "0")
        fig("mismatch_runs", mismatches)
        target("every_200_has_row", mismatches == 0,
               "%d runs with 200s missing rows" % mismatches, "0")
        rss = [x for s in systems if s.startswith(("full", "normal"))
               for r in res[(s, 100)] for x in r.get("rss", []) if x]
        self.rss_webhook = max(rss) if rss else None
        rss1 = [x for r in res[("full1", 100)] for x in r.get("rss", []) if x]
        self.rss_webhook1 = max(rss1) if rss1 else None
        fig("rss_webhook_max_kib", fmt(self.rss_webhook))
        target("rss_webhook", self.rss_webhook is not None and
               self.rss_webhook <= 8 * KIB,
               fmt(self.rss_webhook, "%.0f KiB"), "<= 8192 KiB per process")
        self.rss_grammy = max([x for x in self.grammy_rss if x], default=None)
        fig("rss_grammy_kib", fmt(self.rss_grammy) if self.grammy_dir else "skipped")

    # ---------------------------------------------------------------- 2. drain

    def drain_throughput(self):
        n, chats = self.args.drain_n, 1000
        api = "http://127.0.0.1:%d" % self.port["api"]
        log("\n== 2a. Drain, rate limits off, TGQ_MAX_IN_FLIGHT=16, echo handler: "
            "%d updates over %d chats, `tgq-drain --once` against nginx answering a "
            "canned Message; grammY bot.api.sendMessage, 16 promises at once, same "
            "nginx ==" % (n, chats))
        tgq, gr, small = [], [], []
        rng = random.Random(self.args.seed + 1)
        for rnd in range(1, self.args.rounds + 1):
            order = ["tgq", "grammy"] if self.grammy_dir else ["tgq"]
            rng.shuffle(order)
            for who in order:
                if who == "tgq":
                    cps, sent, took = self.tgq_drain_run(api, n, chats, "a%d" % rnd)
                    tgq.append({"rps": cps, "ok200": sent, "non2xx": 0, "errors": 0,
                                "why": None if sent == n else
                                "%d of %d calls sent within %d s" % (
                                    sent, n, self.args.drain_timeout)})
                    if sent != n:
                        NOTES.append("drain round %d: %d of %d calls sent within the "
                                     "%d s bound; FAILED" %
                                     (rnd, sent, n, self.args.drain_timeout))
                else:
                    gr.append(self.grammy_client_run(api, n, chats, rnd))
            cps2, _s, _t = self.tgq_drain_run(api, self.args.drain_small, 1000,
                                              "small%d" % rnd)
            small.append(cps2)
        d = med([r["rps"] for r in tgq if not failure(r)])
        g = med([r["rps"] for r in gr if not failure(r)])
        fig("drain_calls_per_s", rng_text([r["rps"] for r in tgq]))
        fig("drain_calls_per_s_n%d" % self.args.drain_small, rng_text(small))
        ok = [r["rps"] for r in tgq if not failure(r)]
        target("drain_calls_per_s", d is not None and d >= 5000 and len(ok) == len(tgq),
               "%s calls/s; %d of %d rounds >= 5000%s" % (
                   rng_text([r["rps"] for r in tgq]),
                   sum(1 for x in ok if x >= 5000), len(tgq),
                   "; %d FAILED" % (len(tgq) - len(ok)) if len(ok) < len(tgq) else ""),
               ">= 5000 calls/s")
        fig("grammy_calls_per_s", rng_text([r["rps"] for r in gr]) if self.grammy_dir
            else "skipped")
        if self.grammy_dir:
            p = Paired(zip(tgq, gr))
            log("  tgq-drain / grammY: %s   rounds: %s" % (p.text(), p.rounds_text()))
            fig("ratio_drain_vs_grammy", p.text())
            paired_target("drain_vs_grammy", p, lambda x: x >= 1.5,
                          ">= 1.5 x grammY's client")
        else:
            fig("ratio_drain_vs_grammy", "skipped")
            target("drain_vs_grammy", False, "skipped: %s" % self.grammy_skip,
                   ">= 1.5 x grammY's client")

    def grammy_client_run(self, api, n, chats, rnd):
        """grammY's bot.api.sendMessage, 16 promises at once, n calls; a run dict
        (rps = calls answered without an error per second)."""
        watch = CpuWatch({})
        bound = 60 + n // 1000
        try:
            r = subprocess.run(
                [shutil.which("node"), os.path.join(self.grammy_dir, "grammy_client.js"),
                 api, str(n), "16", str(chats)], capture_output=True, text=True,
                env=self.node_env(), cwd=self.grammy_dir, timeout=bound,
                **as_run_user())
        except subprocess.TimeoutExpired:
            log("  round %d grammY client FAILED: not done within %d s" % (rnd, bound))
            return {"rps": None, "ok200": 0, "non2xx": 0, "errors": 0}
        try:
            o = json.loads(r.stdout.strip().splitlines()[-1])
            cps = (o["calls"] - o["errors"]) / o["seconds"]
            m = watch.stop()
            log("  round %d grammY: %d calls (%d errors) in %.2f s: %.0f calls/s  "
                "busy %.0f%% steal %.1f%%" % (rnd, o["calls"], o["errors"],
                                              o["seconds"], cps, m["busy"], m["steal"]))
            return {"rps": cps, "ok200": o["calls"] - o["errors"], "non2xx": 0,
                    "errors": o["errors"]}
        except (ValueError, IndexError, KeyError):
            log("  round %d grammY client FAILED: %s" %
                (rnd, (r.stderr or r.stdout)[-300:]))
            return {"rps": None, "ok200": 0, "non2xx": 0, "errors": 0}

    def tgq_drain_run(self, api, n, chats, name):
        """n updates over `chats` chats, then `tgq-drain --once` (bounded by
        --drain-timeout); returns (calls/s, calls sent, seconds)."""
        db = self.new_db("drain-" + name)
        self.preload(db, n, chats)
        env = self.drain_env(db, api, TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0,
                             TGQ_RATE_GROUP=0, TGQ_MAX_IN_FLIGHT=16)
        t0 = time.monotonic()
        watch = CpuWatch({})
        p = self.start_drain("once", env, "drain-" + name)
        # wait(timeout=) polls, sleeping up to 50 ms between looks, which put
        # up to 50 ms on a 2.6 s run; a blocking wait() and a timer for the
        # bound measure the exit itself.
        bound = threading.Timer(self.args.drain_timeout, h.stop_popen, (p,))
        bound.start()
        rc = p.wait()
        took = time.monotonic() - t0
        bound.cancel()
        if took >= self.args.drain_timeout:
            rc = "stopped at the time bound"
        con = sqlite3.connect(db, timeout=30)
        sent = con.execute("SELECT count(*) FROM outbox WHERE state = 'sent'"
                           ).fetchone()[0]
        con.close()
        remove_db(db)
        cps = sent / took
        m = watch.stop()
        log("  %-7s tgq-drain: %d of %d calls sent in %.2f s (exit %s): %.0f calls/s  "
            "busy %.0f%% steal %.1f%%" % (name, sent, n, took, rc, cps, m["busy"],
                                          m["steal"]))
        return cps, sent, took

    def drain_limits(self):
        chats, per, groups = 50, 20, 5
        # Each group's 20 messages fit one minute's 20 at 1 per second, so the
        # floor stays the global 30 per second's or the chat's 1 per second's.
        floor = max(per - 1, (chats * per - 1) / 30.0)
        log("\n== 2c. %d chats (%d of them groups) x %d messages, Telegram's default "
            "limits, tests/fake_botapi.py enforcing them; `tgq-drain --follow` ==" %
            (chats, groups, per))
        db = self.new_db("limits")
        # update_ids rise across all chats, as Telegram's do.
        now = int(time.time())
        rows = []
        uid = 5000000
        for k in range(per):
            for c in range(chats):
                uid += 1
                chat = 7000 + c if c >= groups else -1001000007000 - c
                rows.append((uid, now, chat,
                             update_body(uid, chat, "m%02d" % k).decode()))
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        con.execute("BEGIN")
        con.executemany("INSERT INTO updates (bot, update_id, received_at, kind, "
                        "chat_id, body) VALUES ('default', ?, ?, 'message', ?, ?)", rows)
        con.execute("COMMIT")
        con.close()
        chown_db(db)
        api = FakeBotAPI(tokens={TOKEN: "default"}, limits=True).start()
        at_exit(api.stop)
        env = self.drain_env(db, api.url)
        t0 = time.monotonic()
        p = self.start_drain("follow", env, "drain-limits")
        deadline = t0 + max(90, floor * 3)
        calls = []
        while time.monotonic() < deadline:
            calls = [c for c in api.calls("sendMessage") if c["status"] == 200]
            if len(calls) >= chats * per or p.poll() is not None:
                break
            time.sleep(0.2)
        h.stop_popen(p)
        took = (max(c["t"] for c in calls) - t0) if calls else None
        span = (max(c["t"] for c in calls) - min(c["t"] for c in calls)) if calls \
            else None
        n429 = api.count_429()
        n429_group = api.count_429("group")
        group_replies = sum(1 for c in calls
                            if str(c["params"].get("chat_id", "")).startswith("-"))
        allcalls = api.calls("sendMessage")
        api.stop()
        CLEANUP.remove(api.stop)
        ratio = took / floor if took else None
        log("  %d of %d replies in %s s from the drain's start (first to last call "
            "%s s); theoretical minimum %.1f s; 429s from the fake's limits: %d "
            "(%d calls in all)" % (len(calls), chats * per, fmt(took, "%.1f"),
                                   fmt(span, "%.1f"), floor, n429, len(allcalls)))
        log("  of them to the %d groups: %d of %d replies; 429s for a group's limit: %d"
            % (groups, group_replies, groups * per, n429_group))
        fig("limits_group_replies", "%d of %d" % (group_replies, groups * per))
        if len(calls) < chats * per:
            NOTES.append("limits: only %d of %d replies within the time bound" %
                         (len(calls), chats * per))
            ratio = None
        fig("limits_time_s", fmt(took, "%.1f"))
        fig("limits_min_s", "%.1f" % floor)
        fig("limits_time_ratio", fmt(ratio, "%.2f"))
        fig("limits_429", n429)
        target("limits_429", n429 == 0, str(n429), "0")
        target("limits_time", ratio is not None and ratio <= 1.1,
               "%s x the minimum (%s s vs %.1f s)" % (fmt(ratio, "%.2f"),
                                                      fmt(took, "%.1f"), floor),
               "<= 1.1 x")
        remove_db(db)

    def drain_e2e(self):
        rate, secs = 100, self.args.e2e_seconds
        n = rate * secs
        log("\n== 2d. End to end: POST at %d updates/s for %d s through nginx + "
            "tgq-webhook (full, 1 proc) + `tgq-drain --follow` (rate limits off) to "
            "the fake (in a process of its own); latency = call at the fake - the "
            "webhook's 200 ==" % (rate, secs))
        db = self.new_db("e2e")
        api = FakeProcess(self.tmp, self.token_file)
        at_exit(api.stop)
        wh = self.start_full1(db)
        d = self.start_drain("follow", self.drain_env(
            db, api.url, TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0,
            TGQ_MAX_IN_FLIGHT=16), "drain-e2e")
        time.sleep(0.5)
        by_uid, failed = self.post_at_rate(self.port["full1"], rate, n, 50000,
                                           9000000, text="e2e %d")
        t200 = {"e2e %d" % uid: t for uid, t in by_uid.items()}
        deadline = time.monotonic() + 20
        seen = {}
        while time.monotonic() < deadline:
            seen = {c["params"].get("text"): c["t"] for c in api.calls("sendMessage")
                    if c["status"] == 200}
            if all(k in seen for k in t200):
                break
            time.sleep(0.1)
        lat = [(seen[k] - t200[k]) * 1000.0 for k in t200 if k in seen]
        h.stop_popen(d)
        wh.stop()
        api.stop()
        for fn in (api.stop, wh.stop):
            CLEANUP.remove(fn)
        p50, p99 = pct(lat, 50), pct(lat, 99)
        log("  %d posted, %d answered 200, %d failed, %d replies matched; latency "
            "p50 %s ms, p99 %s ms, max %s ms" % (
                n, len(t200), len(failed), len(lat), fmt(p50, "%.2f"),
                fmt(p99, "%.2f"), fmt(max(lat) if lat else None, "%.2f")))
        fig("e2e_p50_ms", fmt(p50, "%.2f"))
        fig("e2e_p99_ms", fmt(p99, "%.2f"))
        target("e2e_p50", p50 is not None and p50 <= 5, fmt(p50, "%.2f ms"), "<= 5 ms")
        target("e2e_p99", p99 is not None and p99 <= 25, fmt(p99, "%.2f ms"),
               "<= 25 ms")
        remove_db(db)

    # ---------------------------------------------------------------- 3. memory, scale

    def drain_memory(self):
        n = 100000
        api = "http://127.0.0.1:%d" % self.port["api"]
        log("\n== 3a. Drain peak RSS with a %d-row backlog (1000 chats, rate limits "
            "off, nginx canned answers), `tgq-drain --once`, at most %d s ==" %
            (n, self.args.backlog_seconds))
        db = self.new_db("backlog")
        t = time.monotonic()
        self.preload(db, n, 1000)
        log("  preloaded in %.1f s" % (time.monotonic() - t))
        env = self.drain_env(db, api, TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0,
                             TGQ_RATE_GROUP=0, TGQ_MAX_IN_FLIGHT=16)
        t0 = time.monotonic()
        p = self.start_drain("once", env, "drain-backlog")
        peak = None
        while p.poll() is None and time.monotonic() - t0 < self.args.backlog_seconds:
            v = vmhwm_kib(p.pid)
            if v:
                peak = v if peak is None else max(peak, v)
            time.sleep(0.1)
        v = vmhwm_kib(p.pid)
        if v:
            peak = v if peak is None else max(peak, v)
        took = time.monotonic() - t0
        h.stop_popen(p)
        con = sqlite3.connect(db, timeout=30)
        sent = con.execute("SELECT count(*) FROM outbox WHERE state = 'sent'").fetchone()[0]
        con.close()
        log("  peak RSS %s KiB; %d calls sent in %.1f s (%.0f calls/s)" % (
            fmt(peak), sent, took, sent / took))
        fig("rss_drain_kib", fmt(peak))
        fig("drain_backlog_calls_per_s", "%.0f" % (sent / took))
        target("rss_drain", peak is not None and peak <= 16 * KIB,
               fmt(peak, "%.0f KiB"), "<= 16384 KiB")
        remove_db(db)
        # The whole bot: one webhook process at c=100 plus the drain, against
        # grammY's one process (measured during its ingest runs).
        wh1 = getattr(self, "rss_webhook1", None)
        g_rss = getattr(self, "rss_grammy", None)
        bot = wh1 + peak if wh1 and peak else None
        log("  the whole bot: webhook %s KiB + drain %s KiB = %s KiB; grammY's process "
            "%s KiB" % (fmt(wh1), fmt(peak), fmt(bot), fmt(g_rss)))
        fig("rss_bot_kib", fmt(bot))
        fig("ratio_rss_bot_vs_grammy", fmt(bot / g_rss if bot and g_rss else None,
                                           "%.3f"))
        if not self.grammy_dir:
            return
        # The same 100,000 calls from grammY's client: one pair, tgq's run above
        # first (five rounds of these would take five minutes).
        tgq = {"rps": sent / took, "ok200": sent, "non2xx": 0, "errors": 0}
        if sent < n:
            tgq["why"] = "tgq-drain sent %d of %d calls within %d s" % (
                sent, n, self.args.backlog_seconds)
        g = self.grammy_client_run(api, n, 1000, 1)
        p = Paired([(tgq, g)])
        log("  tgq-drain %.0f calls/s, grammY %s calls/s; tgq-drain / grammY on %d "
            "calls: %s" % (tgq["rps"], fmt(g["rps"]), n, p.text()))
        fig("ratio_drain_vs_grammy_n%d" % n, p.text())

    def big_queue(self):
        done_n, new_n = 1000000, 100000
        log("\n== 3b. Ingest at c=100 (tgq full, 1 proc) into a queue of %d done + "
            "%d pending rows vs. an empty queue, alternated, %d rounds ==" %
            (done_n, new_n, self.args.rounds))
        db = self.new_db("big")
        t = time.monotonic()
        # One connection, journal_mode DELETE while it builds (no 700 MB WAL to
        # checkpoint), WAL again afterwards as tgq left it.
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode = DELETE")
        con.close()
        self.preload(db, done_n, 1000, state="done", first_uid=1)
        self.preload(db, new_n, 1000, state="new", first_uid=done_n + 1)
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode = WAL")
        con.close()
        chown_db(db)
        size = os.path.getsize(db) / 1e6
        log("  built in %.1f s (%.0f MB)" % (time.monotonic() - t, size))
        big, empty = [], []
        rng = random.Random(self.args.seed + 2)
        for rnd in range(1, self.args.rounds + 1):
            order = ["big", "empty"]
            rng.shuffle(order)
            for name in order:
                r = self.tgq_run("%s-full1" % name, 100,
                                 db=db if name == "big" else None,
                                 base=90000000000 + rnd * 300000000
                                 if name == "big" else None)
                (big if name == "big" else empty).append(r)
                log("  round %d %-5s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %d  "
                    "rows %d / 200s %d  busy %.0f%% steal %.1f%%%s" % (
                        rnd, name, fmt(r["rps"]), fmt(r["p50"], "%.2f"),
                        fmt(r["p99"], "%.2f"), r["non2xx"], r["rows"], r["ok200"],
                        r["busy"], r["steal"],
                        "  FAILED: %s" % failure(r) if failure(r) else ""))
        remove_db(db)
        fig("ingest_big_c100_rps", rng_text([r["rps"] for r in big]))
        fig("ingest_empty_c100_rps", rng_text([r["rps"] for r in empty]))
        p = Paired(zip(big, empty))
        log("  big / empty: %s   rounds: %s" % (p.text(), p.rounds_text()))
        fig("ratio_ingest_big_vs_empty", p.text())
        paired_target("ingest_big_vs_empty", p, lambda x: x >= 0.9, ">= 0.9")


    # ---------------------------------------------------------------- 4. hot chat

    def drain_rate(self, db, env, n, name):
        """Starts `tgq-drain --follow` on a preloaded queue and watches its
        updates become done; returns (updates/s, done, seconds, calls sent)."""
        bound = self.args.hot_timeout
        t0 = time.monotonic()
        p = self.start_drain("follow", env, "drain-" + name)
        con = sqlite3.connect(db, timeout=30)
        done = 0
        try:
            while time.monotonic() - t0 < bound and p.poll() is None:
                done = con.execute("SELECT count(*) FROM updates WHERE state = "
                                   "'done'").fetchone()[0]
                if done >= n:
                    break
                time.sleep(0.1)
            took = time.monotonic() - t0
            sent = con.execute("SELECT count(*) FROM outbox WHERE state = 'sent'"
                               ).fetchone()[0]
        finally:
            con.close()
            h.stop_popen(p)
        return done / took, done, took, sent

    def hot_chat(self):
        n, chats = self.args.hot_n, 1000
        hot = 424242            # the chat wrk's updates are in
        api = "http://127.0.0.1:%d" % self.port["api"]
        env = dict(TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0,
                   TGQ_MAX_IN_FLIGHT=16)
        log("\n== 4a. A hot chat: `tgq-drain --follow` (echo, rate limits off, nginx "
            "canned answers) on %d updates in one chat vs. over %d chats; updates "
            "done per second, at most %d s each ==" % (n, chats, self.args.hot_timeout))
        rates = {}
        for kind, nchats in (("one", 1), ("spread", chats)):
            db = self.new_db("hot-rate-" + kind)
            self.preload(db, n, nchats, chat0=hot if nchats == 1 else 100000)
            ups, done, took, sent = self.drain_rate(
                db, self.drain_env(db, api, **env), n, "hot-rate-" + kind)
            rates[kind] = ups
            log("  %-6s %d of %d updates done in %.1f s: %.0f updates/s (%d calls "
                "sent meanwhile)" % (kind, done, n, took, ups, sent))
            if done < n:
                NOTES.append("hot chat (%s): %d of %d updates done within %d s" %
                             (kind, done, n, self.args.hot_timeout))
            remove_db(db)
        fig("hot_chat_updates_per_s", fmt(rates["one"]))
        fig("spread_updates_per_s", fmt(rates["spread"]))
        target("hot_chat_rate", rates["one"] >= 1000, fmt(rates["one"],
               "%.0f updates/s"), ">= 1000 updates/s")

        log("\n== 4b. Ingest at c=50 (tgq full, 1 proc; wrk's updates all in chat "
            "%d) while `tgq-drain --follow` works %d updates in that chat, vs. the "
            "same over %d chats, vs. no drain; %d rounds alternated ==" % (
                hot, n, chats, self.args.rounds))
        res = {"hot": [], "spread": [], "none": []}
        rng = random.Random(self.args.seed + 3)
        for rnd in range(1, self.args.rounds + 1):
            order = ["hot", "spread", "none"]
            rng.shuffle(order)
            for kind in order:
                db = self.new_db("hot-ingest-" + kind)
                self.preload(db, n, 1 if kind == "hot" else chats,
                             chat0=hot if kind == "hot" else 100000)
                wh = self.start_full1(db)
                d = None
                if kind != "none":
                    d = self.start_drain("follow", self.drain_env(db, api, **env),
                                         "hot-ingest-%s-%d" % (kind, rnd))
                try:
                    time.sleep(0.5)
                    r = self.wrk.run(self.port["full1"], 50, self.args.duration)
                finally:
                    if d is not None:
                        h.stop_popen(d)
                    wh.stop()
                    CLEANUP.remove(wh.stop)
                done = self.count_rows(db, "state = 'done'")
                rows = self.count_rows(db) - n
                remove_db(db)
                r["done"] = done
                res[kind].append(r)
                log("  round %d %-6s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %d  "
                    "errors %d  rows %d / 200s %d  busy %.0f%% steal %.1f%%%s  "
                    "handled meanwhile %d" % (
                        rnd, kind, fmt(r["rps"]), fmt(r["p50"], "%.2f"),
                        fmt(r["p99"], "%.2f"), r["non2xx"], r["errors"], rows,
                        r["ok200"], r["busy"], r["steal"],
                        "  FAILED: %s" % failure(r) if failure(r) else "", done))
        m = {k: med([r["rps"] for r in v]) for k, v in res.items()}
        handled = {k: med([r["done"] for r in v]) for k, v in res.items()}
        p_spread = Paired(zip(res["hot"], res["spread"]))
        p_none = Paired(zip(res["hot"], res["none"]))
        log("  hot / spread:   %s   rounds: %s" % (p_spread.text(),
                                                   p_spread.rounds_text()))
        log("  hot / no drain: %s   rounds: %s" % (p_none.text(), p_none.rounds_text()))
        log("\n| drain works | ingest req/s (median) | p99 ms | updates handled "
            "during the %d s run |" % self.args.duration)
        log("|---|---|---|---|")
        for k, label in (("hot", "%d in one chat" % n),
                         ("spread", "%d over %d chats" % (n, chats)),
                         ("none", "no drain")):
            log("| %s | %s | %s | %s |" % (label, fmt(m[k]),
                fmt(med([r["p99"] for r in res[k]]), "%.2f"), fmt(handled[k])))
        fig("ingest_hot_chat_c50_rps", fmt(m["hot"]))
        fig("ingest_spread_c50_rps", fmt(m["spread"]))
        fig("ingest_no_drain_c50_rps", fmt(m["none"]))
        fig("ratio_ingest_hot_vs_spread", p_spread.text())
        fig("ratio_ingest_hot_vs_no_drain", p_none.text())
        paired_target("ingest_hot_vs_spread", p_spread, lambda x: x >= 0.9, ">= 0.9")

    # ---------------------------------------------------------------- 5. bring your own bot

    def local_call(self, conn, method, params, timeout=None):
        """One POST to tgq's local Bot API on a kept connection: (status, body)."""
        body = json.dumps(params).encode()
        if timeout is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        conn.request("POST", "/bot%s/%s" % (TOKEN, method), body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()

    def pull_drain(self, db, api, name):
        """tgq-drain --follow with handler = pull and listen on a free port, the
        rate limits off; returns (process, port)."""
        port = h.free_port()
        while port in self.port.values():
            port = h.free_port()
        env = self.drain_env(db, api, TGQ_HANDLER="pull",
                             TGQ_LISTEN="127.0.0.1:%d" % port, TGQ_RATE_GLOBAL=0,
                             TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0, TGQ_MAX_IN_FLIGHT=16)
        p = self.start_drain("follow", env, name)
        h.wait_port(port, proc=p)
        return p, port

    def pull_bench(self):
        n, chats = self.args.pull_n, 1000
        api = "http://127.0.0.1:%d" % self.port["api"]
        log("\n== 5a. Pull: getUpdates from a %d-row backlog (%d chats), batches of "
            "100, timeout 0, each batch confirmed by the next offset, one kept "
            "connection; the client parses every answer (json.loads) ==" % (n, chats))
        db = self.new_db("pull")
        self.preload(db, n, chats)
        p, port = self.pull_drain(db, api, "drain-pull")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        served, offset, batches, bad = 0, None, 0, None
        bound = time.monotonic() + self.args.drain_timeout * 3
        t0 = time.monotonic()
        while served < n and time.monotonic() < bound:
            params = {"limit": 100, "timeout": 0}
            if offset is not None:
                params["offset"] = offset
            st, body = self.local_call(conn, "getUpdates", params)
            res = json.loads(body)
            if st != 200 or not res.get("ok"):
                bad = "%d %s" % (st, body[:120])
                break
            if not res["result"]:
                break
            batches += 1
            served += len(res["result"])
            offset = res["result"][-1]["update_id"] + 1
        took = time.monotonic() - t0
        self.local_call(conn, "getUpdates", {"offset": offset or 0, "timeout": 0})
        done = self.count_rows(db, "state = 'done'")
        ups = served / took if took > 0 else None
        log("  %d updates in %d batches in %.2f s: %s updates/s; %d rows done after "
            "the last confirm%s" % (served, batches, took, fmt(ups), done,
                                    "; FAILED: %s" % bad if bad else ""))
        fig("pull_getupdates_per_s", fmt(ups))
        target("pull_getupdates", bad is None and served == n and ups is not None and
               ups >= 10000, "%s updates/s (%d of %d served)" % (fmt(ups), served, n),
               ">= 10000 updates/s")
        self.pull_wakeup(db, port, n)
        conn.close()
        self.pull_passthrough(port, api)
        rss = vmhwm_kib(p.pid)
        log("  the pull drain's peak RSS after 5a-5c: %s KiB" % fmt(rss))
        fig("pull_drain_rss_kib", fmt(rss))
        h.stop_popen(p)
        remove_db(db)
        self.pull_upload_rss()

    def pull_wakeup(self, db, port, first):
        rate, secs = 100, self.args.e2e_seconds
        n = rate * secs
        log("\n== 5b. Pull wake-up: POST at %d updates/s for %d s through nginx + "
            "tgq-webhook (full, 1 proc); a parked getUpdates (timeout 30) answers; "
            "latency = the poll's answer at the client - the webhook's 200 at the "
            "client ==" % (rate, secs))
        wh = self.start_full1(db)
        got = {}
        stop = threading.Event()
        poll_err = []

        def poller():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            offset = first + 1
            try:
                while not stop.is_set():
                    st, body = self.local_call(c, "getUpdates",
                                               {"offset": offset, "timeout": 30})
                    t = time.monotonic()
                    res = json.loads(body)
                    if st != 200:
                        poll_err.append("%d %s" % (st, body[:120]))
                        return
                    for u in res["result"]:
                        got[u["update_id"]] = t
                    if res["result"]:
                        offset = res["result"][-1]["update_id"] + 1
            except (OSError, ValueError) as e:
                if not stop.is_set():
                    poll_err.append(str(e))
            finally:
                c.close()

        pt = threading.Thread(target=poller, daemon=True)
        pt.start()
        time.sleep(0.5)
        watch = CpuWatch({})
        t200, failed = self.post_at_rate(self.port["full1"], rate, n, 20000000,
                                         first_uid=first + 1)
        m = watch.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(u in got for u in t200):
            time.sleep(0.05)
        stop.set()
        wh.stop()
        CLEANUP.remove(wh.stop)
        lat = [(got[u] - t200[u]) * 1000.0 for u in t200 if u in got]
        p50, p99 = pct(lat, 50), pct(lat, 99)
        log("  %d posted, %d answered 200, %d failed, %d seen by the poller%s; "
            "latency p50 %s ms, p99 %s ms, max %s ms; busy %.0f%% steal %.1f%%" % (
                n, len(t200), len(failed), len(lat),
                "; poller FAILED: %s" % poll_err[0] if poll_err else "",
                fmt(p50, "%.2f"), fmt(p99, "%.2f"), fmt(max(lat) if lat else None,
                                                         "%.2f"),
                m["busy"], m["steal"]))
        fig("pull_wakeup_p50_ms", fmt(p50, "%.2f"))
        fig("pull_wakeup_p99_ms", fmt(p99, "%.2f"))
        complete = len(lat) == n and not poll_err
        target("pull_wakeup_p50", complete and p50 is not None and p50 <= 2,
               fmt(p50, "%.2f ms"), "<= 2 ms")
        target("pull_wakeup_p99", complete and p99 is not None and p99 <= 10,
               fmt(p99, "%.2f ms"), "<= 10 ms")

    def post_at_rate(self, port, rate, n, chat0, first_uid, path=PATH, secret=True,
                     text="wake %d"):
        """n updates at `rate` a second over 8 connections, update i to chat
        chat0 + i with the text `text % update_id`; returns ({update_id: the time
        its 200 arrived}, [failures]).  t_sent[update_id] is kept in self.t_sent
        (the time the request was about to go)."""
        t200, failed, lock = {}, [], threading.Lock()
        self.t_sent = {}
        t0 = time.monotonic() + 0.2
        workers = 8
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[SECRET_HEADER] = self.secret

        def worker(w):
            conn = None
            for i in range(w, n, workers):
                delay = t0 + i / float(rate) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                uid = first_uid + i
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    self.t_sent[uid] = time.monotonic()
                    r = h.request(port, "POST", path, headers,
                                  update_body(uid, chat0 + i, text % uid),
                                  conn=conn)
                    t = time.monotonic()
                    with lock:
                        if r.status == 200:
                            t200[uid] = t
                        else:
                            failed.append(r.status)
                except Exception as e:  # noqa: BLE001 - counted
                    with lock:
                        failed.append(str(e))
                    if conn:
                        conn.close()
                    conn = None
            if conn:
                conn.close()

        ts = [threading.Thread(target=worker, args=(w,), daemon=True)
              for w in range(workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(n / float(rate) + 30)
        return t200, failed

    def pull_passthrough(self, port, api):
        n = self.args.pull_calls
        log("\n== 5c. Pass-through: grammY's client (bot.api.sendMessage, 16 promises "
            "at once, %d calls over 1000 chats) with apiRoot at tgq's local Bot API "
            "(rate limits off; tgq sends to nginx's canned Message) vs. the same "
            "client straight at that nginx; %d rounds, shuffled ==" %
            (n, self.args.rounds))
        if not self.grammy_dir:
            log("  SKIPPED: %s" % self.grammy_skip)
            fig("ratio_passthrough_vs_grammy", "skipped")
            target("passthrough_vs_grammy", False, "skipped: %s" % self.grammy_skip,
                   ">= 0.8 x grammY's client straight")
            return
        via, direct = [], []
        rng = random.Random(self.args.seed + 5)
        local = "http://127.0.0.1:%d" % port
        for rnd in range(1, self.args.rounds + 1):
            order = ["tgq", "direct"]
            rng.shuffle(order)
            for who in order:
                log("  round %d %s:" % (rnd, who))
                r = self.grammy_client_run(local if who == "tgq" else api, n, 1000,
                                           rnd)
                (via if who == "tgq" else direct).append(r)
        p = Paired(zip(via, direct))
        log("  through tgq / straight: %s   rounds: %s" % (p.text(), p.rounds_text()))
        fig("passthrough_calls_per_s", rng_text([r["rps"] for r in via]))
        fig("grammy_direct_calls_per_s", rng_text([r["rps"] for r in direct]))
        fig("ratio_passthrough_vs_grammy", p.text())
        paired_target("passthrough_vs_grammy", p, lambda x: x >= 0.8,
                      ">= 0.8 x grammY's client straight")

    def pull_upload_rss(self):
        size = self.args.upload_mb * 1000 * 1000
        log("\n== 5d. Drain peak RSS with a %d MB sendDocument in flight through the "
            "local Bot API (a fresh drain; the fake Bot API in a process of its own "
            "keeps the file) ==" % self.args.upload_mb)
        fake = FakeProcess(self.tmp, self.token_file)
        at_exit(fake.stop)
        db = self.new_db("upload")
        p, port = self.pull_drain(db, fake.url, "drain-upload")
        before = vmhwm_kib(p.pid)
        data = os.urandom(size)
        boundary = "----tgqbench%d" % os.getpid()
        body = (("--%s\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n"
                 "4242\r\n--%s\r\nContent-Disposition: form-data; name=\"document\"; "
                 "filename=\"big.bin\"\r\nContent-Type: application/octet-stream"
                 "\r\n\r\n") % (boundary, boundary)).encode() + data + \
            ("\r\n--%s--\r\n" % boundary).encode()
        peak = [before]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                v = vmhwm_kib(p.pid)
                if v:
                    peak[0] = max(peak[0] or 0, v)
                time.sleep(0.02)

        st = threading.Thread(target=sample, daemon=True)
        st.start()
        t0 = time.monotonic()
        try:
            r = h.request(port, "POST", "/bot%s/sendDocument" % TOKEN,
                          {"Content-Type": "multipart/form-data; boundary=%s" %
                           boundary}, body, timeout=120)
            status = r.status
        except OSError as e:
            status = str(e)
        took = time.monotonic() - t0
        stop.set()
        st.join(2)
        after = vmhwm_kib(p.pid)
        peak_kib = max(v for v in (peak[0], after) if v)
        h.stop_popen(p)
        stored = fake.files()
        ok = status == 200 and any(f["size"] == len(data) + 0 for f in stored)
        fake.stop()
        CLEANUP.remove(fake.stop)
        remove_db(db)
        log("  answer %s in %.2f s; the fake stored %s; drain peak RSS %s KiB (%s "
            "KiB before the upload)" % (status, took, [f["size"] for f in stored],
                                        fmt(peak_kib), fmt(before)))
        fig("pull_upload_drain_rss_kib", fmt(peak_kib))
        target("pull_upload_rss", ok and peak_kib <= 16 * KIB,
               "%s KiB%s" % (fmt(peak_kib), "" if ok else "; the upload FAILED"),
               "<= 16384 KiB")

    # push

    def push_systems(self):
        """name -> (TGQ_HANDLER, how many updates) of the push comparison."""
        n = self.args.push_n
        script = os.path.join(self.tmp, "push-exec.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n# prints the echo of the update it reads\n"
                    "body=$(cat)\n"
                    "chat=$(printf '%s' \"$body\" | sed -n "
                    "'s/.*\"chat\":{\"id\":\\(-\\{0,1\\}[0-9]*\\).*/\\1/p')\n"
                    "printf '{\"method\":\"sendMessage\",\"chat_id\":%s,\"text\":"
                    "\"echo\"}\\n' \"$chat\"\n")
        os.chmod(script, 0o755)
        systems = {
            "http_nginx200": ("http://127.0.0.1:%d%s" % (self.port["nginx200"], PATH),
                              n),
            "echo": ("echo", n),
            "exec_sh": ("exec:" + script, max(100, n // 20)),
        }
        if self.grammy_dir:
            systems["http_grammy"] = ("http://127.0.0.1:%d/hook" % self.push_bot_port,
                                      max(100, n // 4))
        return systems

    def start_push_bot(self):
        """tests/bots/grammy_webhook.js, the echo bot, its calls to nginx's canned
        answers."""
        self.push_bot_port = h.free_port()
        while self.push_bot_port in self.port.values():
            self.push_bot_port = h.free_port()
        logf = open(os.path.join(self.tmp, "grammy-push.log"), "ab")
        proc = subprocess.Popen(
            [shutil.which("node"), os.path.join(self.grammy_dir, "grammy_webhook.js"),
             str(self.push_bot_port), "/hook", "http://127.0.0.1:%d" % self.port["api"]],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            env=self.node_env(BOT_TOKEN=TOKEN, WEBHOOK_SECRET=self.secret),
            cwd=self.grammy_dir, **as_run_user())
        at_exit(lambda: (h.stop_popen(proc), logf.close()))
        h.wait_port(self.push_bot_port, proc=proc)
        self.push_bot = proc

    def push_run(self, name, handler, n):
        """n updates over 1000 chats, `tgq-drain --once` with this handler (rate
        limits off, 16 at once); a run dict, rps = updates done a second."""
        db = self.new_db("push-" + name)
        self.preload(db, n, 1000)
        env = self.drain_env(db, "http://127.0.0.1:%d" % self.port["api"],
                             TGQ_HANDLER=handler, TGQ_HANDLERS=16,
                             TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0,
                             TGQ_MAX_IN_FLIGHT=16)
        watch = CpuWatch({})
        t0 = time.monotonic()
        p = self.start_drain("once", env, "drain-push-" + name)
        peak = None
        bound = time.monotonic() + self.args.drain_timeout * 3
        while p.poll() is None and time.monotonic() < bound:
            v = vmhwm_kib(p.pid)
            peak = v if v and (peak is None or v > peak) else peak
            time.sleep(0.05)
        took = time.monotonic() - t0
        timed_out = p.poll() is None
        h.stop_popen(p)
        done = self.count_rows(db, "state = 'done'")
        dead = self.count_rows(db, "state = 'dead'")
        remove_db(db)
        m = watch.stop()
        r = {"rps": done / took, "ok200": done, "non2xx": 0, "errors": 0, "rss": peak,
             "why": None if done == n else "%d of %d done (%d dead)%s" % (
                 done, n, dead, ", stopped at the time bound" if timed_out else "")}
        log("  %-14s %6d of %6d updates done in %6.2f s: %7.0f updates/s  peak RSS "
            "%s KiB  busy %.0f%% steal %.1f%%%s" % (
                name, done, n, took, r["rps"], fmt(peak), m["busy"], m["steal"],
                "  FAILED: %s" % r["why"] if r["why"] else ""))
        return r

    def push_bench(self):
        if self.grammy_dir:
            self.start_push_bot()
        systems = self.push_systems()
        log("\n== 6a. Push: updates/s through `tgq-drain --once` (handlers 16, rate "
            "limits off, 1000 chats) with handler = http:// to nginx `return 200` "
            "and to the grammY echo bot (webhookCallback; its calls to nginx's "
            "canned Message), beside echo and exec: (sh) in the same rounds; "
            "sizes: %s; %d rounds, shuffled ==" % (
                ", ".join("%s %d" % (k, v[1]) for k, v in sorted(systems.items())),
                self.args.rounds))
        if not self.grammy_dir:
            log("  grammY SKIPPED: %s" % self.grammy_skip)
        res = {k: [] for k in systems}
        rng = random.Random(self.args.seed + 6)
        for rnd in range(1, self.args.rounds + 1):
            order = sorted(systems)
            rng.shuffle(order)
            log("  round %d:" % rnd)
            for name in order:
                handler, n = systems[name]
                res[name].append(self.push_run(name, handler, n))
        for name in sorted(res):
            fig("push_%s_updates_per_s" % name, rng_text([r["rps"] for r in res[name]]))
        for other in ("echo", "exec_sh", "http_grammy"):
            if other in res:
                p = Paired(zip(res["http_nginx200"], res[other]))
                log("  http to nginx / %s: %s   rounds: %s" % (other, p.text(),
                                                              p.rounds_text()))
                fig("ratio_push_nginx_vs_%s" % other, p.text())
        ok = [r["rps"] for r in res["http_nginx200"] if not failure(r)]
        target("push_http_nginx", len(ok) == len(res["http_nginx200"]) and
               med(ok) is not None and med(ok) >= 5000,
               "%s updates/s; %d of %d rounds >= 5000" % (
                   rng_text([r["rps"] for r in res["http_nginx200"]]),
                   sum(1 for x in ok if x >= 5000), len(res["http_nginx200"])),
               ">= 5000 updates/s")
        peaks = [r["rss"] for name in ("http_nginx200", "http_grammy")
                 for r in res.get(name, []) if r["rss"]]
        peak = max(peaks) if peaks else None
        fig("push_drain_rss_kib", fmt(peak))
        target("push_drain_rss", peak is not None and peak <= 16 * KIB,
               fmt(peak, "%.0f KiB"), "<= 16384 KiB")
        self.push_latency()

    def push_latency(self):
        rate, secs = 100, self.args.e2e_seconds
        n = rate * secs
        log("\n== 6b. Push latency: POST at %d updates/s for %d s through nginx + "
            "tgq-webhook (full, 1 proc) + `tgq-drain --follow` (handler = http://) "
            "to a bot that notes when each update arrives (a Python http server in "
            "the bench's process), vs. posting straight to that bot; latency = "
            "arrival - the webhook's 200 (straight: arrival - the request's start) =="
            % (rate, secs))
        arrived = {}

        class Bot(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                t = time.monotonic()
                m = re.match(rb'\{"update_id":(\d+)', body)
                if m:
                    arrived[int(m.group(1))] = t
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bot)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        at_exit(srv.shutdown)
        bport = srv.server_address[1]
        db = self.new_db("push-latency")
        wh = self.start_full1(db)
        d = self.start_drain("follow", self.drain_env(
            db, "http://127.0.0.1:%d" % self.port["api"],
            TGQ_HANDLER="http://127.0.0.1:%d/hook" % bport, TGQ_HANDLERS=16,
            TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0), "drain-push-e2e")
        time.sleep(0.5)
        watch = CpuWatch({})
        t200, failed = self.post_at_rate(self.port["full1"], rate, n, 30000000,
                                         first_uid=40000000)
        m = watch.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(u in arrived for u in t200):
            time.sleep(0.05)
        via = [(arrived[u] - t200[u]) * 1000.0 for u in t200 if u in arrived]
        rss = vmhwm_kib(d.pid)
        h.stop_popen(d)
        wh.stop()
        CLEANUP.remove(wh.stop)
        remove_db(db)
        # straight to the bot, the same rate and bodies
        watch = CpuWatch({})
        t_ok, failed2 = self.post_at_rate(bport, rate, n, 30000000,
                                          first_uid=50000000, path="/hook")
        m2 = watch.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(u in arrived for u in t_ok):
            time.sleep(0.05)
        straight = [(arrived[u] - self.t_sent[u]) * 1000.0 for u in t_ok
                    if u in arrived]
        srv.shutdown()
        CLEANUP.remove(srv.shutdown)
        srv.server_close()
        p50, p99 = pct(via, 50), pct(via, 99)
        s50, s99 = pct(straight, 50), pct(straight, 99)
        log("  through tgq: %d posted, %d answered 200, %d failed, %d arrived; "
            "p50 %s ms, p99 %s ms, max %s ms; the drain's peak RSS %s KiB; busy "
            "%.0f%% steal %.1f%%" % (
                n, len(t200), len(failed), len(via), fmt(p50, "%.2f"),
                fmt(p99, "%.2f"), fmt(max(via) if via else None, "%.2f"), fmt(rss),
                m["busy"], m["steal"]))
        log("  straight:    %d posted, %d arrived; p50 %s ms, p99 %s ms; busy %.0f%% "
            "steal %.1f%%" % (n, len(straight), fmt(s50, "%.2f"), fmt(s99, "%.2f"),
                              m2["busy"], m2["steal"]))
        fig("push_latency_p50_ms", fmt(p50, "%.2f"))
        fig("push_latency_p99_ms", fmt(p99, "%.2f"))
        fig("push_straight_p50_ms", fmt(s50, "%.2f"))
        fig("push_straight_p99_ms", fmt(s99, "%.2f"))
        complete = len(via) == n
        target("push_latency_p50", complete and p50 is not None and p50 <= 2,
               fmt(p50, "%.2f ms"), "<= 2 ms")
        target("push_latency_p99", complete and p99 is not None and p99 <= 10,
               fmt(p99, "%.2f ms"), "<= 10 ms")



# ---------------------------------------------------------------- other load

class LoadSampler:
    """Every `every` seconds, the CPU each process NOT started by this bench used
    since the last look (from /proc/PID/stat), so the output can say what else
    ran on the machine meanwhile."""

    def __init__(self, every=10.0):
        self.every = every
        self.seen = {}          # command -> [samples, max %, sum %]
        self.stop_ev = threading.Event()
        self.me = os.getpid()
        self.hz = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def snapshot(self):
        return proc_table()

    def ours(self, pid, snap):
        for _ in range(64):
            if pid == self.me:
                return True
            if pid not in snap or pid <= 1:
                return False
            pid = snap[pid][1]
        return False

    def loop(self):
        prev, t_prev = self.snapshot(), time.monotonic()
        while not self.stop_ev.wait(self.every):
            snap, t = self.snapshot(), time.monotonic()
            dt = t - t_prev
            for pid, (comm, _ppid, ticks) in snap.items():
                if pid in prev and prev[pid][0] == comm and not self.ours(pid, snap):
                    p = 100.0 * (ticks - prev[pid][2]) / self.hz / dt
                    if p >= 10:
                        e = self.seen.setdefault(comm, [0, 0.0, 0.0])
                        e[0] += 1
                        e[1] = max(e[1], p)
                        e[2] += p
            prev, t_prev = snap, t
            self.samples = getattr(self, "samples", 0) + 1

    def start(self):
        self.thread.start()
        return self

    def report(self):
        self.stop_ev.set()
        self.thread.join(self.every + 2)
        n = getattr(self, "samples", 0)
        log("\n# other load during the run (processes not started by the bench, "
            ">= 10%% of a core in a %.0f s sample; %d samples):" % (self.every, n))
        if not self.seen:
            log("    none")
        for comm, (k, mx, tot) in sorted(self.seen.items(), key=lambda x: -x[1][2]):
            log("    %-20s in %3d of %d samples, mean %3.0f%%, max %3.0f%% of a core"
                % (comm, k, n, tot / k, mx))
            NOTES.append("other load: %s used %.0f%% of a core on average in %d of %d "
                         "samples" % (comm, tot / k, k, n))


# ---------------------------------------------------------------- main

def machine_state():
    log("date: %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    log("nproc: %d" % os.cpu_count())
    try:
        with open("/proc/loadavg") as f:
            log("loadavg: %s" % f.read().strip())
    except OSError:
        pass
    r = subprocess.run(["ps", "-eo", "pid,pcpu,etime,comm", "--sort=-pcpu"],
                       capture_output=True, text=True)
    me = str(os.getpid())
    lines = [ln for ln in r.stdout.splitlines()[1:7] if ln.split()[0] != me][:5]
    log("busiest processes before the bench (pid %cpu-over-lifetime elapsed command):")
    for ln in lines:
        log("    " + ln.strip())
    for name in ("wrk", "nginx", "node"):
        r = subprocess.run([h.tool(name), "-v" if name != "node" else "--version"],
                           capture_output=True, text=True)
        v = (r.stdout + r.stderr).strip().splitlines()
        log("%s: %s" % (name, v[0] if v else "?"))
    log("sqlite (python's): %s" % sqlite3.sqlite_version)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds per wrk run that a ratio is taken from")
    ap.add_argument("--short-duration", type=int, default=5,
                    help="seconds per wrk run at c = 1 and 10 (no ratio taken)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=int(time.time()),
                    help="seed of the order the systems run in each round")
    ap.add_argument("--drain-n", type=int, default=20000)
    ap.add_argument("--drain-timeout", type=int, default=20,
                    help="seconds one tgq-drain --once run may take")
    ap.add_argument("--drain-small", type=int, default=2000,
                    help="a smaller backlog, drained completely, for comparison")
    ap.add_argument("--e2e-seconds", type=int, default=10)
    ap.add_argument("--backlog-seconds", type=int, default=45)
    ap.add_argument("--hot-n", type=int, default=50000,
                    help="the hot chat's backlog")
    ap.add_argument("--hot-timeout", type=int, default=120,
                    help="seconds the drain may take on that backlog")
    ap.add_argument("--pull-n", type=int, default=100000,
                    help="the backlog getUpdates serves (5a)")
    ap.add_argument("--pull-calls", type=int, default=20000,
                    help="sendMessage calls per pass-through run (5c)")
    ap.add_argument("--upload-mb", type=int, default=20,
                    help="the upload in flight while the drain's RSS is read (5d)")
    ap.add_argument("--push-n", type=int, default=20000,
                    help="updates per push run to nginx and echo (6a; exec: gets "
                         "1/20, grammY 1/4)")
    ap.add_argument("--only",
                    default="ingest,drain,limits,e2e,memory,big,hotchat,pull,push",
                    help="comma-separated parts to run")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    only = set(args.only.split(","))
    for tool in ("wrk", "nginx", "spawn-fcgi"):
        if not shutil.which(h.tool(tool)):
            raise SystemExit("bench: %s is not installed (make bench installs it)" % tool)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    h.become_subreaper()
    t_start = time.monotonic()
    log("# tgq bench")
    machine_state()
    log("note: nginx runs worker_processes auto; wrk, nginx, the servers and the "
        "fake share this machine's cores (and any other load listed above), so "
        "absolute figures move from run to run; each ratio is taken within a round, "
        "and every run says how busy the whole machine was.")
    sampler = LoadSampler().start()
    b = Bench(args)
    f50, f99 = fsync_latency(b.tmp)
    log("fsync latency (4 KiB write + fsync, 200 times, in the queues' folder): "
        "p50 %.3f ms, p99 %.3f ms" % (f50, f99))
    fig("fsync_p50_ms", "%.3f" % f50)
    log("note: where an fsync costs this little, durability=full (an fsync per "
        "commit) and normal cost about the same; on a disk that really flushes "
        "(milliseconds per fsync) full is much slower.")
    try:
        b.setup_ingest(with_grammy=bool(only & {"ingest", "drain", "pull", "push"}))
        if "ingest" in only:
            b.ingest()
        if "drain" in only:
            b.drain_throughput()
        if "limits" in only:
            b.drain_limits()
        if "e2e" in only:
            b.drain_e2e()
        if "memory" in only:
            b.drain_memory()
        if "big" in only:
            b.big_queue()
        if "hotchat" in only:
            b.hot_chat()
        if "pull" in only:
            b.pull_bench()
        if "push" in only:
            b.push_bench()
    finally:
        cleanup_all()
        h.reap_orphans()
    sampler.report()
    if NOTES:
        log("\nnotes:")
        for n in NOTES:
            log("  - " + n)
    log("\nbench took %.0f s" % (time.monotonic() - t_start))
    log("")
    for name, value in SUMMARY:
        log("%s: %s" % (name, value))
    for name, met, measured, want in TARGETS:
        log("target %s: %s (measured %s, target %s)" % (
            name, "met" if met else "NOT MET", measured, want))
    return 0


if __name__ == "__main__":
    sys.exit(main())
