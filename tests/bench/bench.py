#!/usr/bin/python3
"""make bench: tgq against its ceilings and its peers, on this machine, in one run.

    /usr/bin/python3 tests/bench/bench.py --build build [--duration 5] [--rounds 3]

1. Ingest, wrk at c = 1, 10, 100, the systems alternated round by round (medians
   over the rounds): nginx `return 200`; a no-op libfcgi responder (4 processes
   under spawn-fcgi, no FastCGI keepalive); tgq-webhook at durability full and
   normal, 1 and 2 processes, behind the shipped nginx snippet; grammY's
   webhookCallback behind the same nginx (proxy_pass).  Every tgq run starts from an
   empty queue and ends with a count: every 200 must have its row.
2. The drain: sendMessage calls/s with the rate limits off against nginx answering
   a canned Message, vs. grammY's bot.api.sendMessage with the same concurrency;
   50 chats x 20 messages with Telegram's limits against the enforcing fake
   (tests/fake_botapi.py); end-to-end latency (webhook 200 -> call at the fake) in
   --follow mode at 100 updates/s.
3. Memory and scale: peak RSS (VmHWM) of the webhook processes during the c = 100
   runs, of the drain with a 100,000-row backlog, of grammY's process; ingest at
   c = 100 into a queue of 1,000,000 done + 100,000 pending rows vs. an empty one.
4. A hot chat (--only hotchat): how fast `tgq-drain --follow` (echo, limits off)
   handles a 50,000-update backlog in one chat, beside the same number over 1,000
   chats; and ingest at c = 50 (wrk, all in the one chat) while the drain works
   that backlog vs. while it works the spread one vs. with no drain, alternated
   round by round.

Human tables first; the last lines are `name: value` pairs, then one
`target <name>: met|NOT MET (...)` line per performance target.  Everything runs on
127.0.0.1 in temp folders, every load run is bounded in time, and every process
started here is stopped here, by its PID.
"""

import argparse
import http.client
import json
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

    def run(self, port, conns, duration, base=None):
        Wrk.seq += 1
        if base is None:
            base = 20000000000 + Wrk.seq * 300000000
        env = h.base_env({"BENCH_BASE": base, "BENCH_PRE": self.pre,
                          "BENCH_POST": self.post, "BENCH_PATH": PATH,
                          "BENCH_SECRET": self.secret})
        cmd = [h.tool("wrk"), "-t%d" % min(2, conns), "-c%d" % conns,
               "-d%ds" % duration, "--timeout", "10s", "--latency", "-s", self.lua,
               "http://127.0.0.1:%d%s" % (port, PATH)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                               timeout=duration + 30)
            out = p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            out = "wrk timed out: %s" % e
        r = parse_wrk(out)
        r["ok200"] = r["requests"] - r["non2xx"]
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
    """The issue's FastCGI ceiling: the shipped location's limits, one FastCGI
    connection per request (a libfcgi responder without threads cannot keep one)."""
    _, location = h.nginx_snippets(socket_path)
    location = location.replace("fastcgi_keep_conn on;", "fastcgi_keep_conn off;")
    return location.replace("fastcgi_pass %s;" % h.SHIPPED_UPSTREAM,
                            "fastcgi_pass unix:%s;" % socket_path)


CANNED_MESSAGE = json.dumps({
    "ok": True, "result": {
        "message_id": 4242, "from": {"id": 123456789, "is_bot": True,
                                     "first_name": "bench", "username": "bench_bot"},
        "chat": {"id": 1000, "first_name": "Alexandra", "username": "alexandra_k",
                 "type": "private"},
        "date": 1718000000, "text": "bench reply"}}, separators=(",", ":"))


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.tmp = h.make_tmpdir("tgq-bench-")
        at_exit(lambda: shutil.rmtree(self.tmp, ignore_errors=True)
                if not args.keep else log("# kept %s" % self.tmp))
        self.bindir = h.stage_binaries(self.build)
        at_exit(lambda: shutil.rmtree(self.bindir, ignore_errors=True))
        self.noop = self.find_noop()
        self.secret = h.new_secret()
        self.token_file = h.write_token_file(self.tmp, TOKEN)
        self.wrk = Wrk(self.tmp, self.secret)
        self.grammy_dir = None
        self.grammy_skip = None
        self.grammy_proc = None

    # ---------------------------------------------------------------- setup

    def find_noop(self):
        built = os.path.join(self.build, "bench", "noop_fcgi")
        if not os.access(built, os.X_OK):
            raise SystemExit("bench: %s is missing: run `make bench`" % built)
        dst = os.path.join(self.bindir, "noop_fcgi")
        shutil.copy2(built, dst)
        os.chmod(dst, 0o755)
        return dst

    def install_grammy(self):
        if not shutil.which("npm") or not shutil.which("node"):
            self.grammy_skip = "node or npm is not installed"
            return
        d = tempfile.mkdtemp(prefix="tgq-bench-grammy-")
        os.chmod(d, 0o755)
        at_exit(lambda: shutil.rmtree(d, ignore_errors=True))
        try:
            r = subprocess.run(["npm", "install", "--prefix", d, "grammy@1",
                                "--no-audit", "--no-fund", "--loglevel=error"],
                               capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            self.grammy_skip = "npm install grammy@1 took more than 180 s"
            return
        if r.returncode != 0:
            self.grammy_skip = "npm install grammy@1 failed: %s" % \
                (r.stderr.strip().splitlines() or ["?"])[-1]
            return
        try:
            with open(os.path.join(d, "node_modules", "grammy", "package.json")) as f:
                self.grammy_version = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            self.grammy_version = "?"
        for js in ("grammy_server.js", "grammy_client.js"):
            shutil.copy(os.path.join(HERE, js), os.path.join(d, js))
        h.chown_run_user(d)
        self.grammy_dir = d
        log("grammY %s installed with npm into a temp folder" % self.grammy_version)

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
        for name in ("full1", "normal1", "full2", "normal2"):
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
            # The same with an upstream keepalive pool (what the reference
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
                   "            return 200 '%s';\n        }" % CANNED_MESSAGE)
        self.nginx = NginxMulti(self.tmp, servers, http_extra).start()
        at_exit(self.nginx.stop)
        self.noop_srv = h.Webhook(self.noop, self.tmp, {}, 4, "noop").start()
        at_exit(self.noop_srv.stop)
        if self.grammy_dir:
            self.start_grammy(self.grammy_port)

    def tgq_run(self, name, conns, db=None, base=None):
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
            r = self.wrk.run(self.port[sock_name], conns, self.args.duration, base)
            r["rss"] = [vmhwm_kib(p) for p in wh.pids]
        finally:
            wh.stop()
            CLEANUP.remove(wh.stop)
        r["rows"] = self.count_rows(db) - before
        r["mismatch"] = r["rows"] < r["ok200"]
        if fresh:
            remove_db(db)
        return r

    def ingest(self):
        log("\n== 1. Ingest: wrk -t2 -c C -d %ds --latency, %d-byte update, %d rounds "
            "alternating the systems ==" % (self.args.duration, BODY_LEN,
                                            self.args.rounds))
        systems = ["nginx200", "noop", "full1", "normal1", "full2", "normal2"]
        if self.grammy_dir:
            systems += ["grammy", "grammy_ka"]
        self.systems = systems
        res = {(s, c): [] for s in systems for c in CONCURRENCY}
        self.grammy_rss = []
        for rnd in range(1, self.args.rounds + 1):
            for c in CONCURRENCY:
                for s in systems:
                    if s in ("nginx200", "noop", "grammy", "grammy_ka"):
                        r = self.wrk.run(self.port[s], c, self.args.duration)
                        if s.startswith("grammy"):
                            r["rss"] = [vmhwm_kib(self.grammy_proc.pid)]
                            self.grammy_rss.append(r["rss"][0])
                    else:
                        r = self.tgq_run(s, c)
                    res[(s, c)].append(r)
                    extra = ""
                    if "rows" in r:
                        extra = "  rows %d / 200s %d%s" % (
                            r["rows"], r["ok200"],
                            "  MISMATCH: %d 200s without a row" %
                            (r["ok200"] - r["rows"]) if r["mismatch"] else "")
                    if r.get("raw"):
                        extra += "  wrk said: %r" % r["raw"]
                    log("  round %d c=%-3d %-9s %8s req/s  p50 %7s ms  p99 %7s ms  "
                        "non-2xx %d  errors %d%s" % (
                            rnd, c, s, fmt(r["rps"]), fmt(r["p50"], "%.2f"),
                            fmt(r["p99"], "%.2f"), r["non2xx"], r["errors"], extra))
        self.ingest_res = res

        log("\n-- Ingest, medians over %d rounds --" % self.args.rounds)
        log("| system | c | req/s | p50 ms | p99 ms | non-2xx | socket errors | "
            "rows / 200s | peak RSS KiB |")
        log("|---|---|---|---|---|---|---|---|---|")
        label = {"nginx200": "nginx `return 200`",
                 "noop": "no-op libfcgi, 4 procs",
                 "full1": "tgq full, 1 proc", "normal1": "tgq normal, 1 proc",
                 "full2": "tgq full, 2 procs", "normal2": "tgq normal, 2 procs",
                 "grammy": "grammY webhookCallback (proxy_pass)",
                 "grammy_ka": "grammY, proxy_pass + upstream keepalive"}
        mismatches = 0
        for s in systems:
            for c in CONCURRENCY:
                rs = res[(s, c)]
                rows = ""
                if s.startswith(("full", "normal")):
                    rows = "%d / %d" % (sum(r["rows"] for r in rs),
                                        sum(r["ok200"] for r in rs))
                    bad = sum(1 for r in rs if r["mismatch"])
                    mismatches += bad
                    if bad:
                        rows += " MISMATCH"
                rss = [x for r in rs for x in r.get("rss", []) if x]
                log("| %s | %d | %s | %s | %s | %d | %d | %s | %s |" % (
                    label[s], c, fmt(med([r["rps"] for r in rs])),
                    fmt(med([r["p50"] for r in rs]), "%.2f"),
                    fmt(med([r["p99"] for r in rs]), "%.2f"),
                    sum(r["non2xx"] for r in rs), sum(r["errors"] for r in rs),
                    rows or "-", fmt(max(rss) if rss else None)))
        if mismatches:
            log("\n!!! MISMATCH: %d tgq runs answered 200 for updates that have no "
                "row !!!" % mismatches)

        def m(s, c, k="rps"):
            if (s, c) not in res:
                return None
            return med([r[k] for r in res[(s, c)]])

        for s in systems:
            for c in CONCURRENCY:
                fig("ingest_%s_c%d_rps" % (s, c), fmt(m(s, c)))
        for s in systems:
            for c in CONCURRENCY:
                fig("p99_%s_c%d_ms" % (s, c), fmt(m(s, c, "p99"), "%.2f"))
        for s in ("full1", "full2", "normal1", "normal2"):
            noop, ref = m("noop", 100), m(s, 100)
            fig("ratio_%s_vs_noop_c100" % s, fmt(ref / noop if noop and ref else None,
                                                  "%.2f"))
            if self.grammy_dir:
                g = max(m("grammy", 100) or 0, m("grammy_ka", 100) or 0)
                fig("ratio_%s_vs_grammy_c100" % s,
                    fmt(ref / g if g and ref else None, "%.2f"))
        full, noop = m("full1", 100), m("noop", 100)
        r_noop = full / noop if full and noop else None
        fig("ratio_full_vs_noop_c100", fmt(r_noop, "%.2f"))
        target("ingest_vs_noop_c100", r_noop is not None and r_noop >= 0.85,
               fmt(r_noop, "%.2f"), ">= 0.85 x no-op FastCGI")
        if self.grammy_dir:
            # Against the faster of the two grammY set-ups.
            g_plain, g_ka = m("grammy", 100), m("grammy_ka", 100)
            g = max(g_plain or 0, g_ka or 0)
            r_g = full / g if full and g else None
            fig("ratio_full_vs_grammy_plain_c100",
                fmt(full / g_plain if full and g_plain else None, "%.2f"))
            fig("ratio_full_vs_grammy_keepalive_c100",
                fmt(full / g_ka if full and g_ka else None, "%.2f"))
            fig("ratio_full_vs_grammy_c100", fmt(r_g, "%.2f"))
            target("ingest_vs_grammy_c100", r_g is not None and r_g >= 1.0,
                   fmt(r_g, "%.2f"), ">= 1.0 x grammY (the faster of its two "
                   "nginx set-ups)")
        else:
            fig("ratio_full_vs_grammy_c100", "skipped")
            target("ingest_vs_grammy_c100", False, "skipped: " + self.grammy_skip,
                   ">= 1.0 x grammY")
        for c in (10, 100):
            p99 = m("full1", c, "p99")
            fig("p99_full_c%d_ms" % c, fmt(p99, "%.2f"))
            target("p99_full_c%d" % c, p99 is not None and p99 <= 10.0,
                   fmt(p99, "%.2f ms"), "<= 10 ms")
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
        fig("rss_webhook_max_kib", fmt(self.rss_webhook))
        target("rss_webhook", self.rss_webhook is not None and
               self.rss_webhook <= 8 * KIB,
               fmt(self.rss_webhook, "%.0f KiB"), "<= 8192 KiB per process")
        g_rss = max([x for x in self.grammy_rss if x], default=None)
        fig("rss_grammy_kib", fmt(g_rss) if self.grammy_dir else "skipped")

    # ---------------------------------------------------------------- 2. drain

    def drain_throughput(self):
        n, chats = self.args.drain_n, 1000
        api = "http://127.0.0.1:%d" % self.port["api"]
        log("\n== 2a. Drain, rate limits off, TGQ_MAX_IN_FLIGHT=16, echo handler: "
            "%d updates over %d chats, `tgq-drain --once` against nginx answering a "
            "canned Message; grammY bot.api.sendMessage, 16 promises at once, same "
            "nginx ==" % (n, chats))
        tgq, gr, small = [], [], []
        for rnd in range(1, self.args.rounds + 1):
            cps, sent, took = self.tgq_drain_run(api, n, chats, "a%d" % rnd)
            tgq.append(cps)
            if sent != n:
                NOTES.append("drain round %d: %d of %d calls sent within the %d s "
                             "bound; calls/s is over that time" %
                             (rnd, sent, n, self.args.drain_timeout))
            cps2, _s, _t = self.tgq_drain_run(api, self.args.drain_small, 1000,
                                              "small%d" % rnd)
            small.append(cps2)
            if self.grammy_dir:
                r = subprocess.run(
                    [shutil.which("node"),
                     os.path.join(self.grammy_dir, "grammy_client.js"), api, str(n),
                     "16", str(chats)], capture_output=True, text=True,
                    env=self.node_env(), cwd=self.grammy_dir,
                    timeout=120, **as_run_user())
                try:
                    o = json.loads(r.stdout.strip().splitlines()[-1])
                    cps = (o["calls"] - o["errors"]) / o["seconds"]
                    gr.append(cps)
                    log("  round %d grammY: %d calls (%d errors) in %.2f s: %.0f calls/s"
                        % (rnd, o["calls"], o["errors"], o["seconds"], cps))
                except (ValueError, IndexError, KeyError):
                    log("  round %d grammY client failed: %s" %
                        (rnd, (r.stderr or r.stdout)[-300:]))
        d, g = med(tgq), med(gr)
        fig("drain_calls_per_s", fmt(d))
        fig("drain_calls_per_s_n%d" % self.args.drain_small, fmt(med(small)))
        target("drain_calls_per_s", d is not None and d >= 5000, fmt(d, "%.0f calls/s"),
               ">= 5000 calls/s")
        fig("grammy_calls_per_s", fmt(g) if self.grammy_dir else "skipped")
        ratio = d / g if d and g else None
        fig("ratio_drain_vs_grammy", fmt(ratio, "%.2f") if self.grammy_dir
            else "skipped")
        target("drain_vs_grammy", ratio is not None and ratio >= 1.5,
               fmt(ratio, "%.2f") if self.grammy_dir else "skipped: %s" %
               self.grammy_skip, ">= 1.5 x grammY's client")

    def tgq_drain_run(self, api, n, chats, name):
        """n updates over `chats` chats, then `tgq-drain --once` (bounded by
        --drain-timeout); returns (calls/s, calls sent, seconds)."""
        db = self.new_db("drain-" + name)
        self.preload(db, n, chats)
        env = self.drain_env(db, api, TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0,
                             TGQ_RATE_GROUP=0, TGQ_MAX_IN_FLIGHT=16)
        t0 = time.monotonic()
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
        log("  %-7s tgq-drain: %d of %d calls sent in %.2f s (exit %s): %.0f calls/s"
            % (name, sent, n, took, rc, cps))
        return cps, sent, took

    def drain_limits(self):
        chats, per = 50, 20
        floor = max(per - 1, (chats * per - 1) / 30.0)
        log("\n== 2c. %d chats x %d messages, Telegram's default limits, "
            "tests/fake_botapi.py enforcing them; `tgq-drain --follow` ==" %
            (chats, per))
        db = self.new_db("limits")
        # update_ids rise across all chats, as Telegram's do.
        now = int(time.time())
        rows = []
        uid = 5000000
        for k in range(per):
            for c in range(chats):
                uid += 1
                chat = 7000 + c
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
        allcalls = api.calls("sendMessage")
        api.stop()
        CLEANUP.remove(api.stop)
        ratio = took / floor if took else None
        log("  %d of %d replies in %s s from the drain's start (first to last call "
            "%s s); theoretical minimum %.1f s; 429s from the fake's limits: %d "
            "(%d calls in all)" % (len(calls), chats * per, fmt(took, "%.1f"),
                                   fmt(span, "%.1f"), floor, n429, len(allcalls)))
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
            "the fake; latency = call at the fake - the webhook's 200 ==" % (rate, secs))
        db = self.new_db("e2e")
        api = FakeBotAPI(tokens={TOKEN: "default"}, limits=False).start()
        at_exit(api.stop)
        wh = h.Webhook(os.path.join(self.bindir, "tgq-webhook"), self.tmp,
                       {"TGQ_DATABASE": db, "TGQ_WEBHOOK_SECRET": self.secret,
                        "TGQ_DURABILITY": "full"}, 1, "full1").start()
        at_exit(wh.stop)
        d = self.start_drain("follow", self.drain_env(
            db, api.url, TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0,
            TGQ_MAX_IN_FLIGHT=16), "drain-e2e")
        time.sleep(0.5)
        port = self.port["full1"]
        t200 = {}
        failed = []
        lock = threading.Lock()
        t0 = time.monotonic() + 0.2
        workers = 8

        def worker(w):
            conn = None
            for i in range(w, n, workers):
                when = t0 + i / float(rate)
                delay = when - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                uid = 9000000 + i
                text = "e2e %d" % uid
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    r = h.request(port, "POST", PATH,
                                  {SECRET_HEADER: self.secret,
                                   "Content-Type": "application/json"},
                                  update_body(uid, 50000 + i, text), conn=conn)
                    t = time.monotonic()
                    with lock:
                        if r.status == 200:
                            t200[text] = t
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
            t.join(secs + 30)
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
        for rnd in range(1, self.args.rounds + 1):
            for name in ("big", "empty"):
                r = self.tgq_run("%s-full1" % name, 100,
                                 db=db if name == "big" else None,
                                 base=90000000000 + rnd * 300000000
                                 if name == "big" else None)
                (big if name == "big" else empty).append(r)
                log("  round %d %-5s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %d  "
                    "rows %d / 200s %d%s" % (
                        rnd, name, fmt(r["rps"]), fmt(r["p50"], "%.2f"),
                        fmt(r["p99"], "%.2f"), r["non2xx"], r["rows"], r["ok200"],
                        "  MISMATCH" if r["mismatch"] else ""))
        remove_db(db)
        b, e = med([r["rps"] for r in big]), med([r["rps"] for r in empty])
        ratio = b / e if b and e else None
        fig("ingest_big_c100_rps", fmt(b))
        fig("ingest_empty_c100_rps", fmt(e))
        fig("ratio_ingest_big_vs_empty", fmt(ratio, "%.2f"))
        target("ingest_big_vs_empty", ratio is not None and ratio >= 0.9,
               fmt(ratio, "%.2f"), ">= 0.9")


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
        for rnd in range(1, self.args.rounds + 1):
            for kind in ("hot", "spread", "none"):
                db = self.new_db("hot-ingest-" + kind)
                self.preload(db, n, 1 if kind == "hot" else chats,
                             chat0=hot if kind == "hot" else 100000)
                wh = h.Webhook(os.path.join(self.bindir, "tgq-webhook"), self.tmp,
                               {"TGQ_DATABASE": db, "TGQ_WEBHOOK_SECRET": self.secret,
                                "TGQ_DURABILITY": "full"}, 1, "full1").start()
                at_exit(wh.stop)
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
                    "errors %d  rows %d / 200s %d  handled meanwhile %d" % (
                        rnd, kind, fmt(r["rps"]), fmt(r["p50"], "%.2f"),
                        fmt(r["p99"], "%.2f"), r["non2xx"], r["errors"], rows,
                        r["ok200"], done))
        m = {k: med([r["rps"] for r in v]) for k, v in res.items()}
        handled = {k: med([r["done"] for r in v]) for k, v in res.items()}
        ratio = m["hot"] / m["spread"] if m["hot"] and m["spread"] else None
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
        fig("ratio_ingest_hot_vs_spread", fmt(ratio, "%.2f"))
        fig("ratio_ingest_hot_vs_no_drain",
            fmt(m["hot"] / m["none"] if m["hot"] and m["none"] else None, "%.2f"))
        target("ingest_hot_vs_spread", ratio is not None and ratio >= 0.9,
               fmt(ratio, "%.2f"), ">= 0.9")


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
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--drain-n", type=int, default=20000)
    ap.add_argument("--drain-timeout", type=int, default=20,
                    help="seconds one tgq-drain --once run may take")
    ap.add_argument("--drain-small", type=int, default=2000,
                    help="a smaller backlog, drained completely, for comparison")
    ap.add_argument("--e2e-seconds", type=int, default=10)
    ap.add_argument("--backlog-seconds", type=int, default=30)
    ap.add_argument("--hot-n", type=int, default=50000,
                    help="the hot chat's backlog")
    ap.add_argument("--hot-timeout", type=int, default=120,
                    help="seconds the drain may take on that backlog")
    ap.add_argument("--only", default="ingest,drain,limits,e2e,memory,big,hotchat",
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
        "absolute figures move from run to run; the ratios are taken side by side.")
    sampler = LoadSampler().start()
    b = Bench(args)
    try:
        b.setup_ingest(with_grammy=bool(only & {"ingest", "drain"}))
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
