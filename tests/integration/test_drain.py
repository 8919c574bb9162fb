"""Integration cases for tgq-drain: updates posted through real nginx and
tgq-webhook, drained by the real tgq-drain, sent with libcurl to the fake Bot API
(tests/fake_botapi.py) on 127.0.0.1, which records every call and enforces
Telegram's rate limits.

Groups:
  answers    every Bot API answer and the end state it leaves in the outbox
  handlers   exec: handlers that crash, hang, print garbage or 10 MB, and one that
             works, all in one run; the handler's environment
  order      50 chats x 20 messages posted at once: order per chat, once each, no 429
  crash      SIGKILL of the drain in the middle, then a restart: handled once
  two        two drains at once on one queue: nothing handled twice
  follow     --follow takes new rows as they come; SIGTERM ends it cleanly
  retention  old done updates and sent calls go, the rest stays
  hotchat    300 updates of one chat, some arriving out of order, and a dead one
             handed back: handled in update_id order, once each
  allowed    allowed_users with echo and exec:: others' updates never reach the
             handler, end done with the reason, and deny_text answers once
"""

import os
import random
import re
import signal
import subprocess
import threading
import time

import harness as h
from fake_botapi import FakeBotAPI

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


Skip = h.Skip
check = h.check


def update(uid, chat_id, text):
    return ('{"update_id":%d,"message":{"message_id":%d,"date":1700000000,'
            '"chat":{"id":%d,"type":"private"},"from":{"id":%d,"is_bot":false,'
            '"first_name":"T"},"text":"%s"}}' % (uid, uid, chat_id, abs(chat_id),
                                                text)).encode()


HANDLER = r"""#!/bin/sh
# A test handler: what it does depends on the message's text.
body=$(cat)
chat=$(printf '%s' "$body" | sed -n 's/.*"chat":{"id":\(-\{0,1\}[0-9]*\).*/\1/p')
text=$(printf '%s' "$body" | sed -n 's/.*"text":"\([^"]*\)".*/\1/p')
case "$text" in
crash) kill -SEGV $$ ;;
hang) sleep 30 ;;
garbage) echo 'this is not a call' ;;
big) head -c 10000000 /dev/zero ;;
exit3) echo 'to stderr' >&2; exit 3 ;;
traceback) printf 'Traceback (most recent call last):\n  File "/h.py", line 5, in <module>\n    print(u["text"])\nKeyError: \047text\047 \\ \303\251\001\n\n' >&2
	exit 1 ;;
env) printf '{"method":"sendMessage","chat_id":%s,"text":"%s %s token=%s"}\n' \
	"$chat" "$TGQ_BOT" "$TGQ_UPDATE_ID" "${TGQ_BOT_TOKEN:-none}" ;;
slow*) sleep 0.2
	printf '{"method":"sendMessage","chat_id":%s,"text":"re %s"}\n' "$chat" "$text" ;;
*) printf '{"method":"sendMessage","chat_id":%s,"text":"re %s"}\n' "$chat" "$text"
	printf '\n{"method":"sendChatAction","chat_id":%s,"action":"typing"}\n' "$chat" ;;
esac
"""


class Drain:
    """tgq-drain as the unprivileged user, its stderr in <tmpdir>/<name>.log."""

    def __init__(self, stack, mode, name="drain", **env):
        self.stack = stack
        self.log = os.path.join(stack.tmpdir, name + ".log")
        self.env = h.base_env(stack.drain_env(**env))
        if mode == "once" and stack.ctx.asan:
            # --once ends by itself: LeakSanitizer checks it at exit.
            self.env.update(h.sanitizer_options(stack.tmpdir, leaks=True))
        kw = {}
        if h.IS_ROOT:
            uid, gid = h.run_ids()
            kw = {"user": uid, "group": gid, "extra_groups": []}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(stack.ctx.bindir, "tgq-drain"), "--" + mode],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                cwd=stack.tmpdir, **kw)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("tgq-drain did not finish within %d s" % timeout)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class Stack(h.TempStack):
    """nginx + tgq-webhook (2 processes) + the fake Bot API, one queue."""

    def __init__(self, ctx, name, limits=True, prefix="tgq-drain-"):
        super().__init__(ctx, "%s%s-" % (prefix, name))
        self.name = name
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        self.token_file = h.write_token_file(self.tmpdir, TOKEN)
        self.handler = os.path.join(self.tmpdir, "handler.sh")
        with open(self.handler, "w") as f:
            f.write(HANDLER)
        os.chmod(self.handler, 0o755)
        self.api = FakeBotAPI(tokens={TOKEN: "default"}, limits=limits)
        self.webhook = None
        self.server = None
        self.drains = []
        self.next_uid = 1000

    def env(self):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        return env

    def drain_env(self, **over):
        env = self.env()
        env.update({"TGQ_BOT_TOKEN_FILE": self.token_file,
                    "TGQ_API_URL": self.api.url, "TGQ_LOG_LEVEL": "info"})
        env.update({k: str(v) for k, v in over.items()})
        return env

    def start(self):
        self.api.start()
        self.webhook = h.Webhook(self.ctx.binary, self.tmpdir, self.env(), 2,
                                 "webhook").start()
        self.server = h.Nginx(self.tmpdir, self.webhook.socket).start()
        return self

    def drain(self, mode="once", **env):
        d = Drain(self, mode, "drain%d" % len(self.drains), **env)
        self.drains.append(d)
        return d

    def run_once(self, timeout=60, **env):
        d = self.drain("once", **env)
        rc = d.wait(timeout)
        check(rc == 0, "tgq-drain --once exited %d: %s" % (rc, d.text()[-800:]))
        return d

    def post(self, uid, chat_id, text, conn=None):
        r = h.request(self.server.port, "POST", "/telegram/webhook",
                      {SECRET_HEADER: self.secret,
                       "Content-Type": "application/json"},
                      update(uid, chat_id, text), conn=conn)
        check(r.status == 200, "posting update %d: HTTP %d" % (uid, r.status))

    def post_body(self, body):
        r = h.request(self.server.port, "POST", "/telegram/webhook",
                      {SECRET_HEADER: self.secret,
                       "Content-Type": "application/json"}, body.encode())
        check(r.status == 200, "posting %r: HTTP %d" % (body[:60], r.status))

    def tgq(self, *args):
        r = subprocess.run([os.path.join(self.ctx.bindir, "tgq")] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=h.base_env(self.env()), timeout=60, cwd=self.tmpdir)
        check(r.returncode == 0, "tgq %s: exit %d: %r" % (
            " ".join(args), r.returncode, r.stderr[-300:]))
        return r.stdout.decode()

    def uids(self, n):
        first = self.next_uid
        self.next_uid += n
        return list(range(first, first + n))

    def calls_to(self, chat_id, method="sendMessage"):
        return [c for c in self.api.calls(method)
                if c["params"].get("chat_id") == chat_id]

    def outbox(self, where, args=()):
        return self.queue.query("SELECT id, state, attempts, last_error, chat_id, "
                                "result, method FROM outbox WHERE " + where, args)

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(TOKEN, "$TOKEN")

    def logs(self):
        text = self.webhook.log_text() if self.webhook else ""
        return text + "".join(d.text() for d in self.drains)

    def stop(self):
        for d in self.drains:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(10)
        if self.server:
            self.server.stop()
        if self.webhook:
            self.webhook.stop()
        self.api.stop()


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("%s: not within %d s" % (what, timeout))


def token_not_logged(stack):
    h.check_not_logged(stack.logs(), [TOKEN, TOKEN.split(":")[1], stack.secret],
                       "the webhook's and the drains' logs")


# ------------------------------------------------------------------ answers

def answer_case(script, want_state, want_calls, check_row=None, **env):
    """Posts one update to a fresh chat, scripts the fake's answers for it, runs
    --once and checks the call's end state and how often the fake was called."""
    def run(stack):
        chat = random.randrange(10**6, 10**9)
        (uid,) = stack.uids(1)
        if script:
            stack.api.script(script, method="sendMessage", chat_id=chat)
        stack.post(uid, chat, "hello %d" % uid)
        stack.run_once(**env)
        # A call the fake held past the client's timeout is recorded when it
        # answers, which can be after the drain's retry.
        wait_until(lambda: len([c for c in stack.api.calls("sendMessage")
                                if c["params"].get("text") == "hello %d" % uid])
                   >= want_calls, 10, "the fake's record")
        rows = stack.outbox("update_id = ?", (uid,))
        check(len(rows) == 1, "expected one outbox row, got %d" % len(rows))
        _id, state, attempts, last_error, chat_id, result, _m = rows[0]
        check(state == want_state, "state %s, expected %s (last_error %s)" %
              (state, want_state, last_error))
        calls = [c for c in stack.api.calls("sendMessage")
                 if c["params"].get("text") == "hello %d" % uid]
        check(len(calls) == want_calls, "the fake saw %d calls, expected %d" %
              (len(calls), want_calls))
        check(stack.queue.query("SELECT state FROM updates WHERE update_id = ?",
                                (uid,)) == [("done",)], "the update is not done")
        if check_row:
            check_row(stack, rows[0], calls, chat)
    return run


def sent_with_result(stack, row, calls, chat):
    check(row[5] and '"message_id"' in row[5], "no result stored: %r" % (row[5],))
    check(row[3] is None, "last_error left on a sent call: %r" % (row[3],))


def retried_once(stack, row, calls, chat):
    check(row[2] == 1, "attempts %d, expected 1" % row[2])


def waited_not_counted(stack, row, calls, chat):
    check(row[2] == 0, "a 429 counted as a failed attempt (%d)" % row[2])
    check(calls[1]["t"] - calls[0]["t"] >= 0.9,
          "resent %.2f s after a 429 with retry_after 1" %
          (calls[1]["t"] - calls[0]["t"]))
    check(stack.api.count_429() == 0, "the fake's limits answered 429")


def dead_with(description):
    def run(stack, row, calls, chat):
        check(description in (row[3] or ""), "last_error %r, expected %r" %
              (row[3], description))
    return run


def migrated(stack, row, calls, chat):
    check(row[4] == -100777, "outbox chat_id %r, expected -100777" % (row[4],))
    check(calls[0]["params"]["chat_id"] == chat and
          calls[1]["params"]["chat_id"] == -100777,
          "resent to %r" % (calls[1]["params"]["chat_id"],))


ANSWERS = [
    ("ok_sent", answer_case([], "sent", 1, sent_with_result)),
    ("429_waits_retry_after", answer_case(
        [{"status": 429, "retry_after": 1}], "sent", 2, waited_not_counted)),
    ("500_retried", answer_case([{"status": 500}], "sent", 2, retried_once)),
    ("502_html_retried", answer_case([{"status": 502}], "sent", 2, retried_once)),
    ("slow_answer_timeout_retried", answer_case(
        [{"hang": 3}], "sent", 2, retried_once, TGQ_SEND_TIMEOUT=1)),
    ("dropped_connection_retried", answer_case([{"drop": True}], "sent", 2,
                                               retried_once)),
    ("chat_not_found_dead", answer_case(
        [{"status": 400, "description": "Bad Request: chat not found"}], "dead", 1,
        dead_with("Bad Request: chat not found"))),
    ("blocked_dead", answer_case(
        [{"status": 403, "description": "Forbidden: bot was blocked by the user"}],
        "dead", 1, dead_with("bot was blocked by the user"))),
    ("migrate_followed", answer_case(
        [{"status": 400, "description": "Bad Request: group chat was upgraded to a "
          "supergroup chat", "migrate_to_chat_id": -100777}], "sent", 2, migrated)),
    ("max_attempts_dead", answer_case(
        [{"status": 500}, {"status": 500}], "dead", 2,
        dead_with("Internal Server Error"),
        TGQ_MAX_ATTEMPTS=2)),
]


def case_token_not_logged(stack):
    token_not_logged(stack)


def case_echo_lone_surrogate(stack):
    """The webhook accepts an escaped lone surrogate (RFC 8259's grammar allows
    it); echo sends it as U+FFFD, in UTF-8 JSON that a strict parser (the fake's
    too) takes."""
    chat = random.randrange(10**6, 10**9)
    (uid,) = stack.uids(1)
    stack.post(uid, chat, "a\\ud800b")
    stack.run_once()
    rows = stack.outbox("update_id = ?", (uid,))
    check(len(rows) == 1 and rows[0][1] == "sent",
          "the echo of a lone surrogate: %r" % (rows,))
    sent = [c["params"].get("text") for c in stack.calls_to(chat)]
    check(sent == ["a\ufffdb"], "the fake got %r" % (sent,))


# ------------------------------------------------------------------ handlers

def case_handlers(stack):
    env = dict(TGQ_HANDLER="exec:" + stack.handler, TGQ_HANDLER_TIMEOUT=1,
               TGQ_MAX_ATTEMPTS=2, TGQ_MAX_OUTPUT="1M", TGQ_HANDLERS=4)
    texts = ["crash", "hang", "garbage", "big", "exit3", "fine1", "env", "fine2",
             "traceback"]
    uids = stack.uids(len(texts))
    for i, (uid, text) in enumerate(zip(uids, texts)):
        stack.post(uid, 5000 + i, text)
    t0 = time.monotonic()
    stack.run_once(timeout=90, **env)
    stack.notes.append("handlers: --once took %.1f s" % (time.monotonic() - t0))
    state = dict(stack.queue.query(
        "SELECT update_id, state || ' ' || coalesce(last_error, '') FROM updates "
        "WHERE update_id BETWEEN ? AND ?", (uids[0], uids[-1])))
    want = {"crash": "dead killed by signal 11", "hang": "dead timed out",
            "garbage": "dead handler output line 1: not a JSON object",
            "big": "dead output larger than",
            "exit3": "dead exited with status 3: to stderr",
            "fine1": "done", "env": "done", "fine2": "done",
            # The last three lines of its stderr, escaped as the log escapes them
            # (a backslash and a control as \xNN), UTF-8 kept.
            "traceback": "dead exited with status 1: ...  File \"/h.py\", line 5, "
                         "in <module> |     print(u[\"text\"]) | KeyError: 'text' "
                         "\\x5c \u00e9\\x01"}
    for uid, text in zip(uids, texts):
        check(state.get(uid, "").startswith(want[text]),
              "%s: %r, expected %r" % (text, state.get(uid), want[text]))
    for text in ("crash", "hang", "exit3"):
        uid = uids[texts.index(text)]
        attempts = stack.queue.query("SELECT attempts FROM updates WHERE "
                                     "update_id = ?", (uid,))[0][0]
        check(attempts == 2, "%s: %d attempts, expected 2" % (text, attempts))
    for text in ("fine1", "fine2"):
        i = texts.index(text)
        sends = stack.calls_to(5000 + i)
        actions = stack.calls_to(5000 + i, "sendChatAction")
        check([c["params"]["text"] for c in sends] == ["re " + text],
              "%s: sent %r" % (text, [c["params"] for c in sends]))
        check(len(actions) == 1 and actions[0]["seq"] > sends[0]["seq"],
              "%s: the second call was not sent after the first" % text)
    env_call = stack.calls_to(5000 + texts.index("env"))
    check(len(env_call) == 1 and env_call[0]["params"]["text"] ==
          "default %d token=none" % uids[texts.index("env")],
          "env: handler saw %r" % (env_call[0]["params"]["text"] if env_call else
                                   None))
    check(state.get(uids[texts.index("traceback")]) == want["traceback"],
          "traceback: %r" % (state.get(uids[texts.index("traceback")]),))
    # A handler's stderr is what it says, logged at info (<6>); that it failed is
    # the warning (<4>).
    said = [line for line in stack.logs().splitlines() if "to stderr" in line]
    check(said and all(line.startswith("<6>") for line in said),
          "the handler's stderr is not logged at info: %r" % (said,))
    said = [line for line in stack.logs().splitlines() if "KeyError" in line]
    check(len(said) == 2 and all(line.startswith("<6>") and "update %d:" %
                                 uids[texts.index("traceback")] in line
                                 for line in said),
          "the traceback's last line, once per attempt: %r" % (said,))
    check(stack.queue.query("SELECT count(*) FROM outbox WHERE update_id IN (%s)" %
                            ",".join(str(u) for u in uids))[0][0] == 5,
          "outbox rows for the dead updates")
    token_not_logged(stack)


# ------------------------------------------------------------------ order

def post_many(stack, lines, deadline_s=120):
    """Posts each list of (uid, chat, text) in order from its own connection, all
    lists at once: as Telegram does, which sends a chat's next update only after
    the webhook answered the previous one, and different chats in parallel."""
    lock = threading.Lock()
    errors = []
    left = [len(line) for line in lines]
    deadline = time.monotonic() + deadline_s

    def worker(n):
        import http.client
        conn = None
        items = list(lines[n])
        while items and time.monotonic() < deadline:
            uid, chat, text = items.pop(0)
            with lock:
                left[n] -= 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port,
                                                      timeout=30)
                stack.post(uid, chat, text, conn=conn)
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(str(e))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    ts = [threading.Thread(target=worker, args=(n,), daemon=True)
          for n in range(len(lines))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(1, deadline - time.monotonic() + 5))
    check(not errors, "%d posts failed, e.g. %s" % (len(errors), errors[:1]))
    check(not sum(left), "%d posts not sent by the deadline" % sum(left))


def case_order(stack):
    """50 chats x 20 messages, posted from 50 connections at once while a --follow
    drain runs with Telegram's default limits."""
    chats = [7000 + i for i in range(50)]
    uids = iter(stack.uids(1000))
    # update_ids rise across all chats, as Telegram's do.
    work = [(next(uids), chat, "m%02d" % k) for k in range(20) for chat in chats]
    lines = [[w for w in work if w[1] == chat] for chat in chats]
    d = stack.drain("follow")
    t0 = time.monotonic()
    post_many(stack, lines)
    wait_until(lambda: len(stack.api.calls("sendMessage")) >= 1000, 120,
               "1000 replies")
    took = time.monotonic() - t0
    rc = d.stop()
    check(rc == 0, "tgq-drain --follow exited %d after SIGTERM" % rc)
    calls = stack.api.calls("sendMessage")
    odd = [(c["status"], c.get("limit"), c["params"]) for c in calls
           if c["status"] != 200]
    check(len(calls) == 1000, "%d replies, expected 1000; not 200: %r" %
          (len(calls), odd[:5]))
    for chat in chats:
        texts = [c["params"]["text"] for c in calls if c["params"]["chat_id"] == chat]
        check(texts == ["m%02d" % k for k in range(20)],
              "chat %d got %r" % (chat, texts))
    check(stack.api.count_429() == 0, "the fake answered %d 429s for exceeded "
          "limits" % stack.api.count_429())
    conns = len(set(c["connection"] for c in calls))
    check(conns <= 16, "1000 calls used %d connections: not kept alive" % conns)
    check(stack.queue.query("SELECT count(*) FROM outbox WHERE state = 'sent'")[0][0]
          == 1000, "not every outbox row is sent")
    # The floor: 20 messages a chat at 1/s, and 1000 at 30/s.
    stack.notes.append("order: 1000 replies in %.1f s over %d connections (Telegram's "
                       "limits allow no less than %.1f s)" %
                       (took, conns, max(19, 999 / 30.0)))


# ------------------------------------------------------------------ crash

def case_sigkill_restart(stack):
    """SIGKILL in the middle of handling and sending; the restarted drain finishes:
    every update has its calls once in the outbox, every call is sent, and the
    only calls the fake saw twice are ones that were in flight."""
    env = dict(TGQ_HANDLER="exec:" + stack.handler, TGQ_HANDLER_TIMEOUT=2,
               TGQ_SEND_TIMEOUT=2, TGQ_LEASE=3, TGQ_HANDLERS=4,
               TGQ_MAX_IN_FLIGHT=8)
    uids = stack.uids(60)
    for i, uid in enumerate(uids):
        stack.post(uid, 8000 + i % 12, "slow%d" % uid)
    # Slow answers, so that calls are in flight when the drain dies.
    stack.api.script([{"hang": 0.3}] * 200, method="sendMessage")
    d = stack.drain("follow", **env)
    wait_until(lambda: len(stack.api.calls("sendMessage")) >= 10, 60,
               "first replies")
    d.proc.kill()
    d.proc.wait(10)
    before = len(stack.api.calls("sendMessage"))
    d2 = stack.drain("follow", **env)
    wait_until(lambda: stack.queue.query(
        "SELECT count(*) FROM outbox WHERE state = 'sent'")[0][0] >= 60 and
        stack.queue.query("SELECT count(*) FROM updates WHERE state = 'done' AND "
                          "update_id BETWEEN ? AND ?", (uids[0], uids[-1]))[0][0]
        == 60, 90, "all 60 updates handled and sent")
    check(d2.stop() == 0, "restarted drain did not exit 0")
    per_update = stack.queue.query(
        "SELECT update_id, count(*) FROM outbox WHERE update_id BETWEEN ? AND ? "
        "GROUP BY update_id", (uids[0], uids[-1]))
    check(len(per_update) == 60 and all(n == 1 for _, n in per_update),
          "outbox rows per update: %r" % [r for r in per_update if r[1] != 1][:5])
    # Only the calls the fake answered 200 count as arrived.
    accepted = [c for c in stack.api.calls("sendMessage") if c["status"] == 200]
    texts = [c["params"]["text"] for c in accepted]
    missing = [u for u in uids if "re slow%d" % u not in texts]
    check(not missing, "%d replies never arrived" % len(missing))
    twice = [t for t in set(texts) if texts.count(t) > 1]
    check(len(twice) <= 8, "%d replies arrived twice (more than the 8 that can be "
          "in flight)" % len(twice))
    # Each chat's replies in update order, across the crash: a resent reply counts
    # where it first arrived.
    for chat in range(8000, 8012):
        got = []
        for c in sorted(accepted, key=lambda c: c["seq"]):
            u = int(c["params"]["text"][len("re slow"):])
            if c["params"]["chat_id"] == chat and u not in got:
                got.append(u)
        check(got == sorted(got), "chat %d out of order after the crash: %r" %
              (chat, got))
    stack.notes.append("sigkill: %d replies before the kill, %d sent twice" %
                       (before, len(twice)))


# ------------------------------------------------------------------ two drains

def case_two_drains(stack):
    env = dict(TGQ_HANDLER="exec:" + stack.handler, TGQ_HANDLERS=4)
    uids = stack.uids(200)
    for i, uid in enumerate(uids):
        stack.post(uid, 9000 + i % 40, "two%d" % uid)
    a = stack.drain("once", **env)
    b = stack.drain("once", **env)
    check(a.wait(120) == 0 and b.wait(120) == 0, "a drain failed")
    # Both did work: a second drain that only waited on the lock would pass every
    # check below.
    for name, d in (("first", a), ("second", b)):
        m = re.search(r"stopped: (\d+) updates handled, (\d+) calls sent", d.text())
        check(m and int(m.group(1)) >= 1 and int(m.group(2)) >= 1,
              "the %s drain handled or sent nothing: %s" % (
                  name, m.group(0) if m else d.text()[-300:]))
    stack.run_once(**env)
    per_update = stack.queue.query(
        "SELECT update_id, count(*) FROM outbox WHERE update_id BETWEEN ? AND ? "
        "AND method = 'sendMessage' GROUP BY update_id", (uids[0], uids[-1]))
    check(len(per_update) == 200 and all(n == 1 for _, n in per_update),
          "%d updates with calls, some more than once: %r" %
          (len(per_update), [r for r in per_update if r[1] != 1][:5]))
    # Each drain keeps the rate limits on its own, so together they can exceed
    # them: the fake's 429s are waited out and sent again, and only the calls it
    # accepted count.
    accepted = [c for c in stack.api.calls("sendMessage") if c["status"] == 200 and
                c["params"]["text"].startswith("re two")]
    texts = [c["params"]["text"] for c in accepted]
    check(len(texts) == 200 and len(set(texts)) == 200,
          "%d replies accepted, %d distinct" % (len(texts), len(set(texts))))
    for chat in range(9000, 9040):
        got = [int(c["params"]["text"][6:]) for c in accepted
               if c["params"]["chat_id"] == chat]
        check(got == sorted(got), "chat %d out of order: %r" % (chat, got))
    stack.notes.append("two drains: %d 429s from the fake's limits, all resent" %
                       stack.api.count_429())


# ------------------------------------------------------------------ follow

def case_follow(stack):
    d = stack.drain("follow")
    time.sleep(0.3)
    (uid,) = stack.uids(1)
    t0 = time.monotonic()
    stack.post(uid, 4242, "follow me")
    wait_until(lambda: stack.calls_to(4242), 10, "the reply in follow mode")
    stack.notes.append("follow: reply %.0f ms after the webhook's 200" %
                       ((time.monotonic() - t0) * 1000))
    rc = d.stop(signal.SIGINT)
    check(rc == 0, "SIGINT: exit %d" % rc)
    check("stopped: 1 updates handled, 1 calls sent" in d.text(),
          "the drain's closing line: %r" % d.text()[-300:])
    token_not_logged(stack)


def case_follow_idle_cpu(stack):
    """An idle --follow drain sleeps: it uses almost no CPU for a second."""
    d = stack.drain("follow")
    time.sleep(0.5)
    with open("/proc/%d/stat" % d.proc.pid) as f:
        before = sum(int(x) for x in f.read().split(")")[1].split()[11:13])
    time.sleep(2)
    with open("/proc/%d/stat" % d.proc.pid) as f:
        after = sum(int(x) for x in f.read().split(")")[1].split()[11:13])
    check(d.stop() == 0, "SIGTERM: bad exit")
    ticks = os.sysconf("SC_CLK_TCK")
    check(after - before <= ticks // 10, "idle drain used %d ticks of CPU in 2 s" %
          (after - before))


# ------------------------------------------------------------------ retention

def case_retention(stack):
    (old, recent, dead) = stack.uids(3)
    for uid in (old, recent, dead):
        stack.post(uid, 3000, "keep %d" % uid)
    stack.run_once()
    now = int(time.time())
    stack.queue.execute("UPDATE updates SET handled_at = ? WHERE update_id = ?",
                        (now - 7200, old))
    stack.queue.execute("UPDATE outbox SET sent_at = ? WHERE update_id = ?",
                        (now - 7200, old))
    stack.queue.execute("UPDATE updates SET handled_at = ?, state = 'dead' WHERE "
                        "update_id = ?", (now - 7200, dead))
    stack.run_once(TGQ_RETAIN="1h")
    left = [u for (u,) in stack.queue.query("SELECT update_id FROM updates WHERE "
                                            "update_id IN (?, ?, ?)",
                                            (old, recent, dead))]
    check(sorted(left) == sorted([recent, dead]), "updates left: %r" % left)
    check(stack.queue.query("SELECT count(*) FROM outbox WHERE update_id = ?",
                            (old,))[0][0] == 0, "the old sent call was kept")
    check(stack.queue.query("SELECT count(*) FROM outbox WHERE update_id = ?",
                            (recent,))[0][0] == 1, "the recent call was deleted")


# ------------------------------------------------------------------ hot chat

def case_hot_chat(stack):
    """One chat's backlog, posted out of order in places: the drain takes the
    chat's first waiting update each time (next_update), so the replies come in
    update_id order, once each; an update killed and handed back to the drain in
    the sqlite3 shell's way goes first again."""
    uids = stack.uids(300)
    order = list(uids)
    for i in range(0, 300, 30):         # every 30, the next 5 arrive reversed
        order[i:i + 5] = reversed(order[i:i + 5])
    for uid in order:
        stack.post(uid, 5555, "hot %d" % uid)
    first = stack.queue.query(
        "SELECT u.update_id FROM next_update n JOIN updates u ON u.id = n.update_row"
        " WHERE n.chat_id = 5555")
    check(first == [(uids[0],)], "next_update for the chat: %r, want %d" %
          (first, uids[0]))
    env = dict(TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0, TGQ_RATE_GROUP=0)
    stack.run_once(**env)
    texts = [c["params"]["text"] for c in stack.api.calls("sendMessage")
             if c["params"]["chat_id"] == 5555 and c["status"] == 200]
    check(texts == ["hot %d" % u for u in uids],
          "%d replies, first out of order at %r" % (len(texts), next(
              (t for t, u in zip(texts, uids) if t != "hot %d" % u), None)))
    # Kill one, hand it back: it goes again, alone, and the heads stay empty.
    stack.queue.execute("UPDATE updates SET state = 'dead' WHERE update_id = ?",
                        (uids[7],))
    stack.queue.execute("UPDATE updates SET state = 'new', attempts = 0 WHERE "
                        "update_id = ?", (uids[7],))
    check(stack.queue.query("SELECT update_row FROM next_update") ==
          stack.queue.query("SELECT id FROM updates WHERE update_id = ?",
                            (uids[7],)), "the update handed back is not next")
    stack.run_once(**env)
    again = [c["params"]["text"] for c in stack.api.calls("sendMessage")
             if c["params"]["chat_id"] == 5555 and c["status"] == 200]
    check(again[300:] == ["hot %d" % uids[7]], "after the hand-back: %r" %
          again[300:])
    check(stack.queue.query("SELECT count(*) FROM next_update")[0][0] == 0 and
          stack.queue.query("SELECT count(*) FROM next_call")[0][0] == 0,
          "heads left with nothing waiting")


# ------------------------------------------------------------------ allowed

DENY = "\u26d4 You are not authorized to use this bot."
MARKER_HANDLER = r"""#!/bin/sh
# Records each update it is given, then answers it.
body=$(cat)
echo "$TGQ_UPDATE_ID" >> "$0.seen"
chat=$(printf '%s' "$body" | sed -n 's/.*"chat":{"id":\(-\{0,1\}[0-9]*\).*/\1/p')
printf '{"method":"sendMessage","chat_id":%s,"text":"seen"}\n' "$chat"
"""


def callback_query(uid, user):
    return ('{"update_id":%d,"callback_query":{"id":"cb%d","from":{"id":%d,'
            '"is_bot":false,"first_name":"C"},"chat_instance":"1","data":"x"}}' %
            (uid, uid, user))


def channel_post(uid, chat):
    return ('{"update_id":%d,"channel_post":{"message_id":%d,"date":1700000000,'
            '"chat":{"id":%d,"type":"channel","title":"C"},"text":"news"}}' %
            (uid, uid, chat))


def update_rows(stack, uids):
    return {u: (s, e) for u, s, e in stack.queue.query(
        "SELECT update_id, state, last_error FROM updates WHERE update_id IN (%s)"
        % ",".join(str(u) for u in uids))}


def case_allowed_echo(stack):
    """echo answers the listed user only; another user's message gets
    deny_text once, a callback query nothing, and a channel post (no sender)
    is skipped while allowed_users is set."""
    me, other, clicker, channel = 424242, 777001, 777002, -1001234567
    env = dict(TGQ_ALLOWED_USERS="11111, %d" % me, TGQ_DENY_TEXT=DENY)
    mine, theirs, click, post = stack.uids(4)
    stack.post(mine, me, "hi")
    stack.post(theirs, other, "let me in")
    stack.post_body(callback_query(click, clicker))
    stack.post_body(channel_post(post, channel))
    stack.run_once(**env)
    rows = update_rows(stack, [mine, theirs, click, post])
    want = {mine: ("done", None),
            theirs: ("done", "skipped: user %d is not allowed" % other),
            click: ("done", "skipped: user %d is not allowed" % clicker),
            post: ("done", "skipped: channel_post has no sender, and only the "
                   "users of allowed_users are let in")}
    check(rows == want, "updates: %r, expected %r" % (rows, want))
    check([c["params"]["text"] for c in stack.calls_to(me)] == ["hi"],
          "the listed user's echo: %r" % stack.calls_to(me))
    check([c["params"]["text"] for c in stack.calls_to(other)] == [DENY],
          "deny_text: %r" % stack.calls_to(other))
    check(stack.calls_to(clicker) == [] and stack.calls_to(channel) == [] and
          stack.outbox("update_id IN (?, ?)", (click, post)) == [],
          "a callback query or a channel post got an answer")
    # Once: another run sends nothing more.
    stack.run_once(**env)
    check(len(stack.calls_to(other)) == 1, "deny_text sent %d times" %
          len(stack.calls_to(other)))
    skipped = stack.queue.query("SELECT update_id, last_error FROM skipped "
                                "ORDER BY update_id")
    check([u for u, _ in skipped] == [theirs, click, post],
          "the skipped view: %r" % skipped)
    ls = stack.tgq("ls")
    check("skipped: user %d is not allowed" % other in ls and
          "skipped: channel_post has no sender" in ls, "tgq ls: %r" % ls)
    show = stack.tgq("show", str(theirs))
    check("skipped: user %d is not allowed" % other in show, "tgq show: %r" % show)
    check("update %d: skipped: user %d is not allowed; deny_text answers it" %
          (theirs, other) in stack.logs(), "the log does not say why")
    # A run that finds only refused messages still sends their answers.
    (again,) = stack.uids(1)
    stack.post(again, other, "please")
    stack.run_once(**env)
    # (a new drain does not know when the last one wrote to the chat: the
    # fake's limit may answer 429 first, and the call is sent again)
    check([c["params"]["text"] for c in stack.calls_to(other)
           if c["status"] == 200] == [DENY, DENY],
          "a run with only a refused message sent %r" % stack.calls_to(other))


def case_allowed_exec(stack):
    """An exec: handler never runs for an update allowed_users keeps out (its
    marker file says whom it saw); with no list everyone's reaches it again."""
    me, other, channel = 424243, 777003, -1007654321
    script = os.path.join(stack.tmpdir, "marker.sh")
    with open(script, "w") as f:
        f.write(MARKER_HANDLER)
    os.chmod(script, 0o755)
    seen = script + ".seen"
    env = dict(TGQ_HANDLER="exec:" + script, TGQ_ALLOWED_USERS=str(me))
    mine, theirs, post = stack.uids(3)
    stack.post(mine, me, "hi")
    stack.post(theirs, other, "let me in")
    stack.post_body(channel_post(post, channel))
    stack.run_once(**env)
    with open(seen) as f:
        ran = f.read().split()
    check(ran == [str(mine)], "the handler ran for %r, expected only %d" %
          (ran, mine))
    rows = update_rows(stack, [mine, theirs, post])
    check(rows[mine] == ("done", None) and rows[theirs] ==
          ("done", "skipped: user %d is not allowed" % other) and
          rows[post][1].startswith("skipped: channel_post has no sender"),
          "updates: %r" % rows)
    check(stack.calls_to(other) == [], "no deny_text, yet %r" %
          stack.calls_to(other))
    # No list: everyone, and updates without a sender too.
    later_theirs, later_post = stack.uids(2)
    stack.post(later_theirs, other, "now?")
    stack.post_body(channel_post(later_post, channel))
    stack.run_once(TGQ_HANDLER="exec:" + script)
    with open(seen) as f:
        ran = f.read().split()
    # (in parallel: the two may run in either order)
    check(ran[0] == str(mine) and sorted(ran[1:]) ==
          sorted([str(later_theirs), str(later_post)]),
          "without allowed_users the handler ran for %r" % ran)
    rows = update_rows(stack, [later_theirs, later_post])
    check(rows == {later_theirs: ("done", None), later_post: ("done", None)},
          "updates without allowed_users: %r" % rows)


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.build, "tgq-drain")):
        return []
    return [
        ("drain-answers", lambda: Stack(ctx, "answers"),
         ANSWERS + [("token_not_logged", case_token_not_logged),
                    ("echo_lone_surrogate", case_echo_lone_surrogate)]),
        ("drain-handlers", lambda: Stack(ctx, "handlers"),
         [("exec_outcomes", case_handlers)]),
        ("drain-order", lambda: Stack(ctx, "order"),
         [("50_chats_x_20_in_order_no_429", case_order)]),
        ("drain-crash", lambda: Stack(ctx, "crash"),
         [("sigkill_restart_once", case_sigkill_restart)]),
        ("drain-two", lambda: Stack(ctx, "two"), [("two_drains_once", case_two_drains)]),
        ("drain-follow", lambda: Stack(ctx, "follow"),
         [("follow_and_sigint", case_follow), ("idle_cpu", case_follow_idle_cpu),
          ("retention", case_retention)]),
        ("drain-hotchat", lambda: Stack(ctx, "hotchat", limits=False),
         [("one_chat_in_update_id_order", case_hot_chat)]),
        ("drain-allowed", lambda: Stack(ctx, "allowed"),
         [("echo_deny_text_once", case_allowed_echo),
          ("exec_never_runs", case_allowed_exec)]),
    ]
