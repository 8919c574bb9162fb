#!/usr/bin/python3
"""tgq's fault suite: load through real nginx while one fault at a time is injected,
then a ledger of what was acknowledged, stored, handled and delivered.

    /usr/bin/python3 tests/faults/faults.py --build build [--quick] [-k NAME] [--keep]

Per scenario, with a fresh queue in a temp folder:
  - tgq-webhook, 4 FastCGI worker processes on one unix socket, behind real nginx
    with the shipped snippet (deploy/nginx/tgq.conf);
  - tgq-drain --follow with the builtin echo handler (one sendMessage per text
    update), sending to the fake Bot API (tests/fake_botapi.py, rate limits off, so
    the ledger is about loss, not rate) with the drain's own limits off too;
  - a sender: a bounded stream of distinct updates, paced over the load phase, from
    many keep-alive connections (Python threads), retrying every non-200 the way
    Telegram does (backoff; Retry-After honoured up to a cap);
  - one fault, repeated during the load phase (see SCENARIOS).
Then the faults stop, the drain gets a bounded time to catch up, and the ledger
compares: the update_ids the sender got a 200 for, the rows in `updates` (every
row, replaced ones too), the outbox rows (exactly one sendMessage per update for
echo, to the update's chat) and the calls the fake received.  Like Telegram, the
sender sends a chat's next update only once the one before it was acknowledged,
and each chat gets several updates, so the order of a chat's replies can be
checked.  One line per scenario:

  scenario NAME: sent N, acked N, stored N, lost 0, handled twice 0, replies
  delivered N, dead N (reasons), duplicate sends N (in flight at a crash), order
  kept in N chats

A scenario passes when nothing acknowledged is lost or stored twice, nothing is
handled twice, every update is handled and its reply is a call the fake answered
200 with the update's text AND chat_id (delivered, not only stored), no reply or
update is dead (except in botapi-errors, which makes calls fail on purpose: there
at most one dead reply per max_attempts failed answers it injected), each chat's
accepted replies follow its updates' order, every update sent was eventually
acknowledged (the endpoint recovers by itself), no 410 was ever answered, neither
secret nor token is in a log, duplicate sends occur only when the drain is
SIGKILLed (at most max_in_flight per kill, as the README says), the drain exits
"gave up" only where the scenario expects it (disk-full), and the scenario shows
its fault happened (workers or drain killed, 503s answered while the disk was full
or the lock held, every scripted Bot API answer used by a call, nginx's log showing
the reloads).  Exit status 1 when a scenario fails.

--mutation NAME runs a broken set-up (MUTATIONS) under which every scenario must
fail; `make test` runs two of them (tests/integration/test_faults_quick.py).

Why the webhook workers are started by this script and not by spawn-fcgi: after a
SIGKILL the worker must be replaced, but a second `spawn-fcgi -s SOCK` on the path
of a socket that still answers refuses ("socket is already in use, can't spawn"),
and unlinking the path first would leave the surviving workers listening on a
socket nginx can no longer reach.  So this script binds the socket itself and
starts each worker with it as fd 0, exactly what spawn-fcgi does with -F N; a
replacement is one more process on the same listening socket.
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import harness as h  # noqa: E402
from fake_botapi import FakeBotAPI, chat_key  # noqa: E402

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PATH = "/telegram/webhook"
MAX_IN_FLIGHT = 16

# updates: distinct updates per scenario, spread over `chats` chats (each
# chat's in turn, so a chat gets several and their order can be checked); conns: sender threads (connections);
# load_s: the load phase (the faults run during it); retry_s: how long after the
# load phase the sender keeps retrying what is not yet acknowledged; catchup_s: how
# long the drain may take to finish afterwards.
SIZES = {
    "full": {"updates": 3000, "chats": 300, "conns": 100, "load_s": 40,
             "retry_s": 40, "catchup_s": 90},
    "quick": {"updates": 300, "chats": 30, "conns": 16, "load_s": 6, "retry_s": 25,
              "catchup_s": 40},
    # make test's replay under ASan+UBSan, where every program is slower, and the
    # broken set-ups make test runs to see the ledger fail.
    "tiny": {"updates": 150, "chats": 30, "conns": 8, "load_s": 4, "retry_s": 25,
             "catchup_s": 40},
}

RETRY_AFTER_CAP = 2.0     # Telegram honours Retry-After; the suite caps the wait
HTTP_TIMEOUT = 40.0       # nginx's fastcgi_read_timeout is 30 s


class Fail(AssertionError):
    pass


def log_note(out, text):
    if out is not None:
        out(text)


# ------------------------------------------------------------------ processes

class Workers:
    """tgq-webhook FastCGI workers sharing one listening unix socket held here."""

    def __init__(self, binary, tmpdir, env, procs=4, name="webhook"):
        self.binary = binary
        self.env = h.base_env(env)
        self.procs = procs
        self.socket_path = os.path.join(tmpdir, name + ".sock")
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.sock = None
        self.children = []           # Popen, including dead ones (reaped)
        self.kills = 0

    def start(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.socket_path)
        os.chmod(self.socket_path, 0o666)
        h.chown_run_user(self.socket_path)
        s.listen(1024)
        self.sock = s
        for _ in range(self.procs):
            self.spawn_one()
        return self

    def spawn_one(self):
        kw = {}
        if h.IS_ROOT:
            uid, gid = h.run_ids()
            kw = {"user": uid, "group": gid, "extra_groups": []}
        with open(self.log_path, "ab") as log:
            p = subprocess.Popen([self.binary], stdin=self.sock.fileno(),
                                 stdout=log, stderr=log, env=self.env,
                                 close_fds=True, **kw)
        self.children.append(p)
        return p

    def running(self):
        return [p for p in self.children if p.poll() is None]

    def kill_one(self, rng):
        live = self.running()
        if not live:
            return None
        p = rng.choice(live)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        self.kills += 1
        return p.pid

    def crashed(self):
        """Workers that ended by themselves (not killed here, not stopped)."""
        return [p for p in self.children
                if p.returncode is not None and p.returncode != -signal.SIGKILL
                and not getattr(p, "stopped", False)]

    def stop(self):
        live = self.running()
        for p in live:
            p.stopped = True
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in live:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def log_text(self):
        return h.read_text(self.log_path)


class Drain:
    """tgq-drain --follow (as www-data when root), restartable; one log file.
    watch() plays systemd's Restart=on-failure, RestartSec=2s of the shipped
    tgq-drain-follow.service: a drain that exits with status 1 (it gives up after
    30 queue errors in a row) is started again 2 s later."""

    RESTART_SEC = 2.0

    def __init__(self, binary, tmpdir, env):
        self.binary = binary
        self.tmpdir = tmpdir
        self.env = h.base_env(env)
        self.log_path = os.path.join(tmpdir, "drain.log")
        self.proc = None
        self.kills = 0
        self.gave_up = 0             # exits with status 1, restarted
        self.exits = []              # other exits by itself: failures
        self.exited_at = None
        self.lock = threading.RLock()

    def start(self):
        kw = {}
        if h.IS_ROOT:
            uid, gid = h.run_ids()
            kw = {"user": uid, "group": gid, "extra_groups": []}
        with self.lock, open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "--follow"],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=self.env, cwd=self.tmpdir,
                                         **kw)
            self.exited_at = None
        return self

    def watch(self):
        with self.lock:
            if self.proc is None or self.proc.poll() is None:
                return
            if self.exited_at is None:
                self.exited_at = time.monotonic()
                if self.proc.returncode == 1:
                    self.gave_up += 1
                else:
                    self.exits.append(self.proc.returncode)
            if time.monotonic() - self.exited_at >= self.RESTART_SEC:
                self.start()

    def kill_and_restart(self):
        with self.lock:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)
                self.kills += 1
            self.start()

    def stop(self):
        with self.lock:
            if self.proc is None:
                return None
            if self.proc.poll() is not None:
                return self.proc.returncode
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return "did not stop within 30 s of SIGTERM"

    def log_text(self):
        return h.read_text(self.log_path)


# ------------------------------------------------------------------ the sender

def update_body(uid, chat, text):
    return ('{"update_id":%d,"message":{"message_id":%d,"date":1700000000,'
            '"chat":{"id":%d,"type":"private"},"from":{"id":%d,"is_bot":false,'
            '"first_name":"F"},"text":"%s"}}' % (uid, uid % 1000000, chat, chat,
                                                text)).encode()


class Sender:
    """Posts every update once it is due (paced over load_s), each until a 200:
    like Telegram, it retries errors with backoff and honours Retry-After (capped).
    Stops retrying at the deadline."""

    def __init__(self, port, secret, items, conns, load_s, retry_s, seed):
        self.port = port
        self.headers = {SECRET_HEADER: secret, "Content-Type": "application/json"}
        self.items = items            # [(uid, chat, text)]
        # Like Telegram, a chat's next update is sent only once the one before it
        # was acknowledged: so each chat's updates are stored in update_id order,
        # and the replies must leave in that order too.
        self.acked_ev = {uid: threading.Event() for uid, _, _ in items}
        self.before = {}
        last = {}
        for uid, chat, _ in items:
            if chat in last:
                self.before[uid] = last[chat]
            last[chat] = uid
        self.conns = conns
        self.load_s = load_s
        self.retry_s = retry_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.next = 0
        self.acked = set()
        self.statuses = collections.Counter()
        self.errors = 0
        self.retries = 0
        self.inflight = 0
        self.stop_ev = threading.Event()
        self.done_ev = threading.Event()
        self.t0 = None

    def run(self):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.load_s + self.retry_s
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                   for i in range(self.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, self.deadline - time.monotonic() + HTTP_TIMEOUT + 5))
        self.done_ev.set()
        return not any(t.is_alive() for t in threads)

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def load_over(self):
        """True once every update was sent at least once."""
        with self.lock:
            return self.next >= len(self.items)

    def worker(self, n):
        rng = random.Random(self.rng.random() + n)
        conn = None
        per = self.load_s / max(1, len(self.items))
        while not self.stop_ev.is_set():
            with self.lock:
                if self.next >= len(self.items):
                    break
                i = self.next
                self.next += 1
            due = self.t0 + i * per
            wait = due - time.monotonic()
            if wait > 0 and self.stop_ev.wait(wait):
                break
            uid, chat, text = self.items[i]
            body = update_body(uid, chat, text)
            prev = self.before.get(uid)
            while prev is not None and not self.acked_ev[prev].wait(0.1):
                if self.stop_ev.is_set() or time.monotonic() >= self.deadline:
                    break
            attempt = 0
            while time.monotonic() < self.deadline and not self.stop_ev.is_set():
                attempt += 1
                if attempt > 1:
                    with self.lock:
                        self.retries += 1
                status, retry_after = None, None
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                          timeout=HTTP_TIMEOUT)
                    with self.lock:
                        self.inflight += 1
                    try:
                        r = h.request(self.port, "POST", PATH, self.headers, body,
                                      conn=conn)
                    finally:
                        with self.lock:
                            self.inflight -= 1
                    status = r.status
                    retry_after = r.header("Retry-After")
                    if (r.header("Connection") or "").lower() == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException):
                    with self.lock:
                        self.errors += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                with self.lock:
                    self.statuses[status if status is not None else "error"] += 1
                    if status == 200:
                        self.acked.add(uid)
                        self.acked_ev[uid].set()
                if status == 200:
                    break
                # Telegram's way: back off, more each time; honour Retry-After.
                delay = min(2.0, 0.05 * (2 ** min(attempt, 6)))
                if retry_after:
                    try:
                        delay = max(delay, min(RETRY_AFTER_CAP, float(retry_after)))
                    except ValueError:
                        pass
                delay *= rng.uniform(0.75, 1.25)
                if self.stop_ev.wait(delay):
                    break
        if conn is not None:
            conn.close()


# ------------------------------------------------------------------ the rig

class Rig:
    """One scenario's world: temp folder, queue, webhook workers, nginx, the fake
    Bot API and the drain."""

    def __init__(self, bindir, parent, name, asan=False, drain_env=None,
                 webhook_env=None, db_on_tmpfs=False):
        self.bindir = bindir
        self.name = name
        self.tmpdir = h.make_tmpdir("tgq-fault-%s-" % name) if parent is None else \
            h.make_subdir(parent, "fault-" + name)
        self.secret = h.new_secret()
        self.asan_dir = parent or self.tmpdir
        self.asan = asan
        self.mnt = None
        db_dir = self.tmpdir
        if db_on_tmpfs:
            db_dir = h.make_subdir(self.tmpdir, "db")
            r = h.mount("-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", db_dir)
            if r.returncode != 0:
                raise Fail("cannot mount a tmpfs: %s" % r.stderr.strip())
            self.mnt = db_dir
            h.chown_run_user(db_dir)
        self.db_dir = db_dir
        self.db = os.path.join(db_dir, "queue.db")
        self.queue = h.Queue(self.db)
        self.token_file = h.write_token_file(self.tmpdir, TOKEN)
        self.api = FakeBotAPI(tokens={TOKEN: "default"}, limits=False)
        env = self.base_env()
        env.update(webhook_env or {})
        self.workers = Workers(os.path.join(bindir, "tgq-webhook"), self.tmpdir, env)
        self.webhook_env = env
        self.drain_env_extra = drain_env or {}
        self.nginx = None
        self.drain = None

    def base_env(self):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_LOG_LEVEL": "info"}
        if self.asan:
            env.update(h.sanitizer_options(self.asan_dir))
        return env

    def start(self):
        self.api.start()
        self.workers.start()
        self.nginx = h.Nginx(self.tmpdir, self.workers.socket_path).start()
        env = self.base_env()
        env.update({"TGQ_BOT_TOKEN_FILE": self.token_file, "TGQ_API_URL": self.api.url,
                    "TGQ_RATE_GLOBAL": "0", "TGQ_RATE_CHAT": "0", "TGQ_RATE_GROUP": "0",
                    "TGQ_SEND_TIMEOUT": "2", "TGQ_HANDLER_TIMEOUT": "2",
                    "TGQ_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT)})
        env.update(self.drain_env_extra)
        self.drain = Drain(os.path.join(self.bindir, "tgq-drain"), self.tmpdir,
                           env).start()
        return self

    def stop(self):
        rc = None
        if self.drain is not None:
            rc = self.drain.stop()
        if self.nginx is not None:
            self.nginx.stop()
        self.workers.stop()
        self.api.stop()
        return rc

    def cleanup(self, keep=False):
        if self.mnt:
            h.mount(self.mnt, cmd="umount", tries=50)
        if not keep:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def logs(self):
        return self.workers.log_text() + (self.drain.log_text() if self.drain else "")

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(TOKEN, "$TOKEN")

    def caught_up(self):
        rows = self.queue.query(
            "SELECT (SELECT count(*) FROM updates WHERE state IN ('new', 'leased')), "
            "(SELECT count(*) FROM outbox WHERE state IN ('new', 'sending'))")
        return bool(rows) and rows[0] == (0, 0)


# ------------------------------------------------------------------ the faults

def fault_kill_webhook(rig, stop, rng, stats):
    """SIGKILL a random worker every 0.3-1 s, at a moment a request is in flight
    (waited for up to 0.5 s); a replacement starts on the same socket right
    away."""
    for _ in range(10000):
        if stop.wait(rng.uniform(0.3, 1.0)):
            break
        for _ in range(500):
            if rig.sender.inflight > 0:
                break
            time.sleep(0.001)
        if rig.workers.kill_one(rng) is not None:
            rig.workers.spawn_one()
    stats["webhook workers killed"] = rig.workers.kills


def fault_kill_drain(rig, stop, rng, stats):
    """SIGKILL the drain every 1.5-3 s and start it again."""
    for _ in range(10000):
        if stop.wait(rng.uniform(1.5, 3.0)):
            break
        rig.drain.kill_and_restart()
    stats["drain killed"] = rig.drain.kills


def fault_disk_full(rig, stop, rng, stats):
    """Fills the queue's tmpfs with a ballast file, keeps it full for 2-3 s, frees
    it, waits 1-2 s, again."""
    ballast = os.path.join(rig.db_dir, "ballast")
    fills = 0
    try:
        for _ in range(10000):
            if stop.wait(rng.uniform(1.0, 2.0)):
                break
            with open(ballast, "wb", buffering=0) as f:
                for size in (1 << 20, 4096, 512):
                    for _ in range(64):
                        try:
                            f.write(b"\0" * size)
                        except OSError:
                            break
            fills += 1
            stop.wait(rng.uniform(2.0, 3.0))
            os.unlink(ballast)
    finally:
        if os.path.exists(ballast):
            os.unlink(ballast)
    stats["filled"] = fills


LOCKER = r"""
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute("BEGIN IMMEDIATE")
sys.stdout.write("locked\n"); sys.stdout.flush()
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
con.close()
"""


def fault_write_lock(rig, stop, rng, stats):
    """Another process holds BEGIN IMMEDIATE for 4.5 s (the webhook's busy_timeout
    is 2 s here), lets go for 1-2 s, again."""
    held = 0
    kw = {}
    if h.IS_ROOT:
        uid, gid = h.run_ids()
        kw = {"user": uid, "group": gid, "extra_groups": []}
    for _ in range(10000):
        if stop.wait(rng.uniform(1.0, 2.0)):
            break
        # The system's python3: sys.executable may live where the run user
        # cannot read it (a pyenv under /root), and a locker that cannot start
        # would leave this scenario without its fault.
        r = subprocess.run([h.tool("python3"), "-c", LOCKER, rig.db, "4.5"],
                           capture_output=True, text=True, timeout=60, **kw)
        if "locked" in r.stdout:
            held += 1
    stats["lock held"] = held


BOTAPI_FAULTS = [("429", {"status": 429, "retry_after": 1}), ("500", {"status": 500}),
                 ("502", {"status": 502}), ("hang", {"hang": 3, "status": 504}),
                 ("drop", {"drop": True})]


def fault_botapi(rig, stop, rng, stats):
    """Every 0.05-0.25 s one of the next sendMessage calls gets a bad answer: 429
    with retry_after 1, 500, 502 (nginx's HTML), a hang past send_timeout that
    ends in 504, or a dropped connection; the kinds in turn (shuffled each round),
    so each occurs once five answers are scripted."""
    n = collections.Counter()
    turn = []
    for _ in range(100000):
        if stop.wait(rng.uniform(0.05, 0.25)):
            break
        if not turn:
            turn = list(BOTAPI_FAULTS)
            rng.shuffle(turn)
        k, a = turn.pop()
        rig.api.script([a], method="sendMessage")
        n[k] += 1
    stats["scripted"] = dict(n)


def fault_nginx_reload(rig, stop, rng, stats):
    """SIGHUP to nginx's master (a reload) every 0.5-1.5 s."""
    n = 0
    for _ in range(10000):
        if stop.wait(rng.uniform(0.5, 1.5)):
            break
        os.kill(rig.nginx.proc.pid, signal.SIGHUP)
        n += 1
    stats["reloads"] = n
    # Let the last reload finish before the workers are counted.
    time.sleep(0.5)


# ------------------------------------------------------------------ proofs
# Each scenario proves its fault happened: a scenario whose fault silently did
# nothing would pass every other check.

def proof_kill_webhook(rig, sender, stats):
    if stats.get("webhook workers killed", 0) < 1:
        return ["no webhook worker was killed"]
    return []


def proof_kill_drain(rig, sender, stats):
    if stats.get("drain killed", 0) < 1:
        return ["the drain was never killed"]
    return []


def proof_503(done, key, during):
    def proof(rig, sender, stats):
        problems = []
        if stats.get(key, 0) < 1:
            problems.append("%s 0 times" % done)
        if sender.statuses.get(503, 0) < 1:
            problems.append("no 503 was answered %s" % during)
        return problems
    return proof


def proof_botapi(rig, sender, stats):
    problems = []
    scripted = stats.get("scripted", {})
    missing = [k for k, _ in BOTAPI_FAULTS if scripted.get(k, 0) < 1]
    if missing:
        problems.append("Bot API faults never scripted: %s" % ", ".join(missing))
    left = stats.get("scripted answers left unused", 0)
    if left:
        problems.append("%d scripted Bot API answers were never used by a call" % left)
    return problems


def proof_reload(rig, sender, stats):
    problems = []
    if stats.get("reloads", 0) < 1:
        problems.append("nginx was never reloaded")
    elif stats.get("reloads seen by nginx", 0) != stats["reloads"]:
        problems.append("nginx's log shows %d of the %d reloads" % (
            stats.get("reloads seen by nginx", 0), stats["reloads"]))
    return problems


# (name, fault, needs root for, rig options, what the ledger expects):
#   proof: the fault happened (problems, or []);
#   may_give_up: the drain may exit "gave up" (status 1) and be restarted;
#   call_failures: the scenario makes Bot API calls fail on purpose, so replies may
#     be dead, a call dying only after max_attempts failed sends.
SCENARIOS = [
    ("kill-webhook", fault_kill_webhook, None, {}, {"proof": proof_kill_webhook}),
    ("kill-drain", fault_kill_drain, None, {"drain_env": {"TGQ_LEASE": "4"}},
     {"proof": proof_kill_drain}),
    # A drain that gives up while the disk is full leaves its leases behind: a short
    # lease lets the restarted drain take them within the catch-up.
    ("disk-full", fault_disk_full, "mount a tmpfs",
     {"db_on_tmpfs": True, "drain_env": {"TGQ_LEASE": "5"}},
     {"proof": proof_503("the disk was filled", "filled", "while the disk was full"),
      "may_give_up": True}),
    ("write-lock", fault_write_lock, None,
     {"webhook_env": {"TGQ_BUSY_TIMEOUT": "2000", "TGQ_RETRY_AFTER": "1"}},
     {"proof": proof_503("another process held the write lock", "lock held",
                         "while the write lock was held")}),
    ("botapi-errors", fault_botapi, None, {},
     {"proof": proof_botapi, "call_failures": True}),
    ("nginx-reload", fault_nginx_reload, None, {}, {"proof": proof_reload}),
]
SCENARIO_NAMES = [s[0] for s in SCENARIOS]
MAX_ATTEMPTS = 5          # the drain's default max_attempts, which the rig keeps

# Broken set-ups the ledger must catch (make test runs each and expects a FAIL):
#   403-every-send: the fake answers 403 to every sendMessage (replies all dead);
#   one-attempt: TGQ_MAX_ATTEMPTS=1, standing in for retries that stopped working.
MUTATIONS = {
    "403-every-send": {"script_403": True},
    "one-attempt": {"drain_env": {"TGQ_MAX_ATTEMPTS": "1"}},
}


class Skipped(Exception):
    pass


# ------------------------------------------------------------------ the ledger

def chat_order_problems(calls, order_of):
    """Per chat, the texts the fake accepted (answered 200), in the order it
    answered them, must follow the updates' order.  A text accepted again later (a
    resend after a drain crash) is only counted where it first appeared.  Returns
    (chats checked with 2+ replies, [problems])."""
    per_chat = collections.defaultdict(list)
    for c in sorted(calls, key=lambda c: c["seq"]):
        if c["status"] != 200:
            continue
        key = order_of.get((c["params"].get("text"), chat_key(c["params"].get("chat_id"))))
        if key is not None:
            per_chat[key[0]].append(key[1])
    checked, problems = 0, []
    for chat, seq in per_chat.items():
        firsts, seen = [], set()
        for i in seq:
            if i not in seen:
                seen.add(i)
                firsts.append(i)
        if len(firsts) > 1:
            checked += 1
        for x, y in zip(firsts, firsts[1:]):
            if y < x:
                problems.append("chat %d: the reply to update #%d was accepted "
                                "before the one to #%d" % (chat, y, x))
                break
    return checked, problems


def ledger(rig, name, items, sender, stats, expect):
    """Compares sender, updates, outbox and the fake's record.  Returns
    (ok, line, problems, extra)."""
    ids = {uid for uid, _, _ in items}
    text_of = {uid: text for uid, _, text in items}
    chat_of = {uid: chat for uid, chat, _ in items}
    # (text, chat) -> (chat, position of the update within its chat)
    order_of, per_chat_n = {}, collections.Counter()
    for uid, chat, text in items:
        order_of[(text, chat)] = (chat, per_chat_n[chat])
        per_chat_n[chat] += 1
    acked = set(sender.acked)
    # Every row of an update_id counts, replaced ones too: the sender never reuses
    # an update_id, so a second row is a second store.
    all_rows = rig.queue.query("SELECT update_id, count(*) FROM updates "
                               "GROUP BY update_id")
    stored_twice = [r[0] for r in all_rows if r[1] > 1]
    rows = rig.queue.query("SELECT update_id, max(state), max(last_error) "
                           "FROM updates WHERE replaced_at IS NULL GROUP BY update_id")
    stored = {r[0] for r in all_rows}
    state = {r[0]: (r[1], r[2]) for r in rows}
    lost = sorted(acked - stored)
    phantom = sorted(stored - ids)
    unacked = sorted(ids - acked)
    pending = sorted(u for u, (s, _) in state.items() if s in ("new", "leased"))
    dead_updates = {u: e for u, (s, e) in state.items() if s == "dead"}
    out = rig.queue.query("SELECT update_id, state, last_error, "
                          "json_extract(params, '$.text'), method, "
                          "json_extract(params, '$.chat_id') FROM outbox")
    per_update = collections.defaultdict(list)
    for uid, st, err, text, method, chat in out:
        per_update[uid].append((st, err, text, method, chat))
    twice = sorted(u for u, v in per_update.items() if len(v) > 1)
    no_reply = sorted(u for u, (s, _) in state.items()
                      if s == "done" and u not in per_update)
    wrong_reply = sorted(u for u, v in per_update.items()
                         if any(t != text_of.get(u) or m != "sendMessage" or
                                chat_key(c) != chat_of.get(u)
                                for _, _, t, m, c in v))
    calls = rig.api.calls("sendMessage")
    received = collections.Counter(c["params"].get("text") for c in calls)
    # Delivered means the fake answered 200 to a call with the update's text AND
    # its chat_id.
    accepted = collections.Counter(
        (c["params"].get("text"), chat_key(c["params"].get("chat_id")))
        for c in calls if c["status"] == 200)
    delivered, unsent, sent_not_seen, dead_replies = 0, 0, [], set()
    reasons = collections.Counter()
    for uid, v in per_update.items():
        for st, err, text, _m, chat in v:
            if st == "sent":
                if accepted[(text, chat_key(chat))] >= 1:
                    delivered += 1
                else:
                    sent_not_seen.append(uid)
            elif st == "dead":
                dead_replies.add(uid)
                reasons[(err or "no reason")[:60]] += 1
            else:
                unsent += 1
    for uid, err in dead_updates.items():
        reasons["update: " + (err or "no reason")[:50]] += 1
    dead = sum(1 for v in per_update.values() for r in v if r[0] == "dead")
    dead_no_reason = reasons.get("no reason", 0) + reasons.get("update: no reason", 0)
    # Every update acknowledged (or stored) should get its echo: a call the fake
    # answered 200, unless the reply is dead where the scenario allows it.
    undelivered = sorted(u for u in (acked | stored) & ids
                         if accepted[(text_of[u], chat_of[u])] < 1 and
                         not (expect.get("call_failures") and u in dead_replies))
    injected_failures = sum(v for k, v in stats.get("scripted", {}).items()
                            if k != "429")
    allowed_dead = injected_failures // MAX_ATTEMPTS if expect.get("call_failures") \
        else 0
    dup_sends = sum(n - 1 for n in accepted.values() if n > 1)
    strays = sorted(t for t in received if t not in set(text_of.values()))
    kills = stats.get("drain killed", 0)
    allowed_dups = MAX_IN_FLIGHT * kills
    chats_checked, order_problems = chat_order_problems(calls, order_of)

    problems = []
    if lost:
        problems.append("%d acknowledged updates have no row (e.g. %s)" %
                        (len(lost), lost[:5]))
    if stored_twice:
        problems.append("%d update_ids stored twice" % len(stored_twice))
    if phantom:
        problems.append("%d rows for update_ids never sent" % len(phantom))
    if unacked:
        problems.append("%d updates never got a 200 within %d s of the load's end "
                        "(e.g. %s)" % (len(unacked), sender.retry_s, unacked[:5]))
    if twice:
        problems.append("%d updates handled twice (e.g. %s)" % (len(twice), twice[:5]))
    if pending:
        problems.append("%d updates still pending after the catch-up" % len(pending))
    if no_reply:
        problems.append("%d updates done without their echo reply" % len(no_reply))
    if wrong_reply:
        problems.append("%d outbox rows not the update's echo" % len(wrong_reply))
    if unsent:
        problems.append("%d replies neither sent nor dead after the catch-up" % unsent)
    if sent_not_seen:
        problems.append("%d replies marked sent that the fake never accepted" %
                        len(sent_not_seen))
    if undelivered:
        problems.append("%d updates without a reply the Bot API accepted (text and "
                        "chat_id; e.g. %s)" % (len(undelivered), undelivered[:5]))
    if dead_updates:
        problems.append("%d updates dead" % len(dead_updates))
    if dead > allowed_dead:
        problems.append("%d replies dead, %d allowed (%s)" % (
            dead, allowed_dead, "%d failed answers injected / max_attempts %d" %
            (injected_failures, MAX_ATTEMPTS) if expect.get("call_failures") else
            "no call fails on purpose here"))
    if dead_no_reason:
        problems.append("%d dead without a reason" % dead_no_reason)
    if strays:
        problems.append("%d calls with texts no update had" % len(strays))
    if dup_sends > allowed_dups:
        problems.append("%d duplicate sends, %d allowed (%s)" % (
            dup_sends, allowed_dups, "%d drain kills x max_in_flight %d" %
            (kills, MAX_IN_FLIGHT) if kills else "the drain was not killed"))
    if chats_checked < 1:
        problems.append("no chat got two replies: order was not checked")
    problems += order_problems[:5]
    if 410 in sender.statuses:
        problems.append("a 410 was answered")
    problems += expect["proof"](rig, sender, stats)
    logs = rig.logs()
    if not logs.strip():
        problems.append("the webhook's and the drain's logs are empty: nothing to "
                        "search for a secret")
    if rig.secret in logs or TOKEN in logs or TOKEN.split(":")[1] in logs:
        problems.append("the secret or the token appears in a log")

    why = ", ".join("%s: %d" % (k, n) for k, n in reasons.most_common(4))
    line = ("scenario %s: sent %d, acked %d, stored %d, lost %d, handled twice %d, "
            "replies delivered %d, dead %d%s, duplicate sends %d%s, "
            "order kept in %d chats" % (
                name, len(ids), len(acked & ids), len(stored & ids), len(lost),
                len(twice), delivered, dead + len(dead_updates),
                " (%s)" % why if why else "", dup_sends,
                " (in flight at a crash; %d allowed)" % allowed_dups if kills else "",
                chats_checked - len(order_problems)))
    st = dict(sender.statuses)
    extra = ("answers %s, %d retries, %d connection errors; faults: %s" % (
        ", ".join("%s: %d" % (k, st[k]) for k in sorted(st, key=str)),
        sender.retries, sender.errors,
        ", ".join("%s %s" % (k, v) for k, v in stats.items()) or "-"))
    return not problems, line, problems, extra


# ------------------------------------------------------------------ a scenario

def run_scenario(name, bindir, size="quick", parent=None, asan=False, keep=False,
                 seed=None, out=print, mutation=None):
    """Runs one scenario; returns (ok, ledger line, problems, extra).  Raises
    Skipped when it cannot run here.  mutation: a name from MUTATIONS, a broken
    set-up the ledger must catch."""
    spec = {s[0]: s for s in SCENARIOS}[name]
    _, fault, needs_root, opts, expect = spec
    opts = dict(opts)
    mut = MUTATIONS[mutation] if mutation else {}
    if mut.get("drain_env"):
        opts["drain_env"] = dict(opts.get("drain_env") or {}, **mut["drain_env"])
    if needs_root and not h.IS_ROOT:
        raise Skipped("needs root (%s)" % needs_root)
    sz = SIZES[size]
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    base = 10_000_000 + SCENARIO_NAMES.index(name) * 1_000_000
    n = sz["updates"]
    items = [(base + i, 20000 + (i % sz["chats"]), "%s %d" % (name, base + i))
             for i in range(n)]
    rig = Rig(bindir, parent, name + ("-" + mutation if mutation else ""),
              asan=asan, **opts)
    stats = collections.OrderedDict()
    problems = []
    try:
        rig.start()
        if mut.get("script_403"):
            rig.api.script([{"status": 403, "description":
                             "Forbidden: bot was blocked by the user"}] * (2 * n),
                           method="sendMessage")
        sender = Sender(rig.nginx.port, rig.secret, items, sz["conns"], sz["load_s"],
                        sz["retry_s"], rng.random())
        rig.sender = sender
        stop = threading.Event()
        injector_errors = []

        def inject():
            try:
                fault(rig, stop, rng, stats)
            except Exception as e:  # noqa: BLE001 - a fault that broke is a failure
                injector_errors.append("%s: %s" % (type(e).__name__, e))

        injector = threading.Thread(target=inject, daemon=True)
        sender.start()
        injector.start()
        # The faults run for the load phase, until every update was sent once.
        deadline = time.monotonic() + sz["load_s"] + 10
        while time.monotonic() < deadline and not sender.load_over():
            rig.drain.watch()
            time.sleep(0.1)
        stop.set()
        injector.join(90)
        if injector.is_alive():
            problems.append("the fault injector did not stop")
        for e in injector_errors:
            problems.append("the fault injector failed: %s" % e)
        # The sender retries what is left; then the drain catches up.
        deadline = time.monotonic() + sz["retry_s"] + HTTP_TIMEOUT + 10
        while time.monotonic() < deadline and not sender.done_ev.wait(0.25):
            rig.drain.watch()
        sender.stop_ev.set()
        deadline = time.monotonic() + sz["catchup_s"]
        while time.monotonic() < deadline:
            rig.drain.watch()
            if rig.caught_up() and rig.drain.proc.poll() is None:
                break
            time.sleep(0.25)
        # Calls that were hung by the fake are recorded when they end.
        time.sleep(0.5)
        crashed = rig.workers.crashed()
        if crashed:
            problems.append("%d webhook workers exited by themselves (status %s)" %
                            (len(crashed), sorted({p.returncode for p in crashed})))
        if rig.drain.exits:
            problems.append("the drain exited by itself: %s" % rig.drain.exits)
        if rig.drain.gave_up:
            stats["drain gave up (status 1) and was restarted"] = rig.drain.gave_up
            if not expect.get("may_give_up"):
                problems.append("the drain gave up (exit status 1) %d times" %
                                rig.drain.gave_up)
        if fault is fault_botapi:
            stats["scripted answers left unused"] = rig.api.pending_scripts()
        if fault is fault_nginx_reload:
            stats["reloads seen by nginx"] = len(re.findall(
                r"^\S+ \S+ \[notice\] \d+#\d+: reconfiguring$",
                h.read_text(rig.nginx.error_log), re.M))
        rc = rig.stop()
        if rc != 0:
            problems.append("tgq-drain after SIGTERM: %s" % rc)
        ok, line, lproblems, extra = ledger(rig, name, items, sender, stats, expect)
        problems = lproblems + problems
        extra += ", seed %d" % seed
        return not problems, line, [rig.redact(p) for p in problems], extra
    finally:
        rig.stop()
        if problems and not keep:
            tail = rig.redact(rig.logs()[-1500:])
            log_note(out, "  # last log lines of %s:\n%s" % (name, "\n".join(
                "  #   " + x for x in tail.splitlines()[-12:])))
        rig.cleanup(keep=keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--asan", action="store_true", help="the build uses ASan/UBSan")
    ap.add_argument("-k", dest="only", default="", help="scenarios whose name "
                    "contains this")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--mutation", choices=sorted(MUTATIONS), default=None,
                    help="run a broken set-up: every scenario should then FAIL")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    h.become_subreaper()
    bindir = h.stage_binaries(os.path.abspath(args.build))
    parent = h.make_tmpdir("tgq-faults-")
    size = "quick" if args.quick else "full"
    failed = 0
    t0 = time.monotonic()
    try:
        for name in SCENARIO_NAMES:
            if args.only and args.only not in name:
                continue
            t1 = time.monotonic()
            try:
                ok, line, problems, extra = run_scenario(
                    name, bindir, size, parent=parent, asan=args.asan,
                    keep=args.keep, seed=args.seed, mutation=args.mutation)
            except Skipped as e:
                print("scenario %s: skipped %s" % (name, e), flush=True)
                continue
            except Exception as e:  # noqa: BLE001 - reported as a failure
                failed += 1
                print("scenario %s: FAIL %s: %s" % (name, type(e).__name__, e),
                      flush=True)
                continue
            print(line, flush=True)
            print("  # %s; %.0f s" % (extra, time.monotonic() - t1), flush=True)
            if not ok:
                failed += 1
                for p in problems:
                    print("  FAIL %s" % p, flush=True)
            h.reap_orphans()
        if args.asan:
            for fname, text in h.sanitizer_reports(parent):
                failed += 1
                print("sanitizer report %s:\n%s" % (fname, text))
    finally:
        shutil.rmtree(bindir, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
        else:
            print("# kept %s" % parent)
    print("fault suite: %s in %.0f s" % ("%d scenario(s) failed" % failed if failed
                                         else "every scenario passed",
                                         time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
