"""What the "bring your own bot" tests share (test_byob_pull.py, test_byob_push.py):
a stack of real nginx + tgq-webhook + tgq-drain + the fake Bot API on 127.0.0.1,
and real bots from tests/bots/ (grammY from npm, python-telegram-bot 13 from
Debian) started and stopped by their PIDs.

A bot reports what it did besides echoing (uploads, downloads, errors, the updates
it saw) as JSON lines in a file of its own; tests/bots/common.js and ptb_common.py
say which.
"""

import collections
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import harness as h
import test_drain

TOKEN = test_drain.TOKEN
WRONG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOTS_DIR = os.path.join(h.ROOT, "tests", "bots")
# python-telegram-bot 13 is Debian's package: Debian's python3 imports it.
PTB_PYTHON = "/usr/bin/python3"

Skip = h.Skip
check = h.check

# The bytes the bots upload for "upload N": one definition, the bots' own.
sys.path.append(BOTS_DIR)
from upload_pattern import pattern  # noqa: E402


def need_node_package(package):
    if not shutil.which("node"):
        raise Skip("node is not installed (deploy/deps.sh test installs it)")
    if not os.path.exists(os.path.join(BOTS_DIR, "node_modules", package,
                                       "package.json")):
        raise Skip("%s is not installed in tests/bots/node_modules "
                   "(deploy/deps.sh test runs npm ci there)" % package)


def need_grammy():
    need_node_package("grammy")


def need_telegraf():
    need_node_package("telegraf")


def need_ptb():
    r = subprocess.run([PTB_PYTHON, "-c", "import telegram.ext"],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise Skip("python-telegram-bot is not installed (deploy/deps.sh test "
                   "installs python3-python-telegram-bot)")


def update(uid, chat_id, text):
    return json.dumps({"update_id": uid, "message": {
        "message_id": uid, "date": 1700000000,
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
        "from": {"id": abs(chat_id), "is_bot": False, "first_name": "T"},
        "text": text}}, separators=(",", ":")).encode()


def wait_until(cond, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("%s: not within %d s" % (what, timeout))


class Bot:
    """One bot process from tests/bots/, as the test user, its output in
    <tmpdir>/<name>.log and its reports in <tmpdir>/<name>.report."""

    def __init__(self, stack, script, args, name, token=TOKEN, **env):
        self.stack = stack
        self.name = name
        self.log = os.path.join(stack.tmpdir, name + ".log")
        self.report_path = os.path.join(stack.tmpdir, name + ".report")
        if script.endswith(".js"):
            cmd = [shutil.which("node"), script]
        else:
            cmd = [PTB_PYTHON, script]
        e = h.base_env({"BOT_TOKEN": token, "BOT_REPORT": self.report_path,
                        "PYTHONDONTWRITEBYTECODE": "1",
                        "PYTHONWARNINGS": "ignore"})
        e.update({k: str(v) for k, v in env.items()})
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd + [str(a) for a in args],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=e, cwd=BOTS_DIR)
        stack.bots.append(self)

    def reports(self, event=None):
        out = []
        for line in h.read_text(self.report_path).splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue        # a line cut by a kill
            if event is None or r.get("event") == event:
                out.append(r)
        return out

    def wait_report(self, event, timeout=30, pred=lambda r: True):
        def find():
            if self.proc.poll() is not None and not [
                    r for r in self.reports(event) if pred(r)]:
                raise AssertionError("%s exited (%d) before reporting %s: %s" % (
                    self.name, self.proc.returncode, event, self.text()[-600:]))
            return [r for r in self.reports(event) if pred(r)]
        return wait_until(find, timeout, "%s: report %s" % (self.name, event))[0]

    def wait_started(self, timeout=30):
        return self.wait_report("started", timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout=15):
        h.stop_popen(self.proc, signal.SIGTERM, timeout)

    def text(self):
        return h.read_text(self.log)


class Drain(test_drain.Drain):
    """tgq-drain --follow (test_drain's, as the unprivileged user); running is
    False once it was stopped or seen to exit."""

    def __init__(self, stack, name, **over):
        super().__init__(stack, "follow", name, **over)
        self.running = True

    def stop(self, timeout=20):
        self.running = False
        h.stop_popen(self.proc, signal.SIGTERM, timeout)
        return self.proc.returncode


class Stack(test_drain.Stack):
    """nginx + tgq-webhook (2 processes) + the fake Bot API (in this process,
    Telegram's rate limits on unless limits=False), one queue; drains and bots are
    started by the cases.  The fixture is test_drain's; the drains here follow
    (Drain above), and the cases post texts to chats and wait for replies."""

    def __init__(self, ctx, name, limits=True):
        super().__init__(ctx, name, limits, prefix="tgq-byob-")
        self.bots = []
        self.next_chat = 5000
        self.conn = None

    def drain(self, **over):
        """tgq-drain --follow with these TGQ_* settings on top of the stack's."""
        d = Drain(self, "drain%d" % len(self.drains), **over)
        self.drains.append(d)
        return d

    def chats(self, n):
        first = self.next_chat
        self.next_chat += n
        return list(range(first, first + n))

    def post(self, uid, chat_id, text):
        for attempt in range(2):
            if self.conn is None:
                import http.client
                self.conn = http.client.HTTPConnection("127.0.0.1", self.server.port,
                                                       timeout=30)
            try:
                r = h.request(self.server.port, "POST", "/telegram/webhook",
                              {SECRET_HEADER: self.secret,
                               "Content-Type": "application/json"},
                              update(uid, chat_id, text), conn=self.conn)
                break
            except OSError:
                # nginx closed the kept connection (keepalive_requests): a new one
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        check(r.status == 200, "posting update %d: HTTP %d" % (uid, r.status))

    def post_texts(self, chats, per_chat, prefix):
        """per_chat texts to each chat, round-robin (update_ids rising across the
        chats, as Telegram's do); returns [(uid, chat, text)] in posting order."""
        out = []
        uids = self.uids(len(chats) * per_chat)
        k = 0
        for i in range(per_chat):
            for c in chats:
                uid = uids[k]
                k += 1
                text = "%s %d %d" % (prefix, c, i)
                self.post(uid, c, text)
                out.append((uid, c, text))
        return out

    def replies(self, texts):
        """{text: [calls]} of the sendMessage calls the fake answered 200, for
        these texts, in the order they arrived."""
        want = set(texts)
        got = collections.defaultdict(list)
        for c in self.api.calls("sendMessage"):
            t = c["params"].get("text")
            if c["status"] == 200 and t in want:
                got[t].append(c)
        return got

    def count_replied(self, texts):
        """How many of these texts have a reply."""
        return sum(1 for v in self.replies(texts).values() if v)

    def wait_replied(self, texts, n, timeout):
        """Waits until n of these texts have a reply (a bot to kill has done some
        of its work); a drain that exits meanwhile fails the case."""
        def enough():
            self.check_drains()
            return self.count_replied(texts) >= n
        wait_until(enough, timeout, "the first %d replies" % n)

    def check_drains(self):
        """A drain that should be running and exited fails the case at once."""
        for d in self.drains:
            if d.running and d.proc.poll() is not None:
                d.running = False
                raise AssertionError("tgq-drain exited with status %d: %s" % (
                    d.proc.returncode, self.redact(d.text()[-600:])))

    def wait_replies(self, texts, timeout, at_least=1):
        def done():
            self.check_drains()
            got = self.replies(texts)
            return all(len(got.get(t, [])) >= at_least for t in texts)
        try:
            wait_until(done, timeout, "replies", step=0.2)
        except AssertionError:
            got = self.replies(texts)
            missing = [t for t in texts if not got.get(t)]
            raise AssertionError("%d of %d texts got no reply within %d s (first: %r)"
                                 % (len(missing), len(texts), timeout, missing[:3]))

    def check_once_in_order(self, posted):
        """Every posted text got exactly one reply, to its chat, and each chat's
        replies came in the order its texts were posted."""
        got = self.replies([t for _, _, t in posted])
        twice = [t for t, cs in got.items() if len(cs) > 1]
        check(not twice, "%d texts got more than one reply (first: %r)" %
              (len(twice), twice[:3]))
        missing = [t for _, _, t in posted if t not in got]
        check(not missing, "%d texts got no reply (first: %r)" % (len(missing),
                                                                   missing[:3]))
        wrong = [t for _, c, t in posted if got[t][0]["params"].get("chat_id")
                 not in (c, str(c))]
        check(not wrong, "replies sent to another chat: %r" % wrong[:3])
        by_chat = collections.defaultdict(list)
        for _, c, t in posted:
            by_chat[c].append(t)
        for c, texts in by_chat.items():
            arrived = sorted(texts, key=lambda t: got[t][0]["seq"])
            check(arrived == texts, "chat %d: replies in the order %r, posted %r" % (
                c, arrived, texts))

    def states(self, uids):
        rows = self.queue.query(
            "SELECT update_id, state FROM updates WHERE update_id BETWEEN ? AND ?",
            (min(uids), max(uids)))
        want = set(uids)
        return collections.Counter(s for u, s in rows if u in want)

    def wait_all_done(self, uids, timeout):
        def done():
            self.check_drains()
            return self.states(uids).get("done", 0) == len(uids)
        wait_until(done, timeout,
                   "all %d updates done (now %r)" % (len(uids), dict(self.states(uids))),
                   step=0.2)

    def tgq(self, *args):
        r = subprocess.run([os.path.join(self.ctx.bindir, "tgq")] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=h.base_env(self.env()), timeout=60, cwd=self.tmpdir)
        return r.returncode, r.stdout.decode(errors="replace"), \
            r.stderr.decode(errors="replace")

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(
            TOKEN, "$TOKEN").replace(TOKEN.split(":")[1], "$TOKEN")

    def logs(self):
        text = self.webhook.log_text() if self.webhook else ""
        return text + "".join(d.text() for d in self.drains) + \
            "".join(b.text() for b in self.bots)

    def drain_logs(self):
        return "".join(d.text() for d in self.drains)

    def stop_bots(self):
        for b in self.bots:
            b.stop()

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        self.stop_bots()
        for d in self.drains:
            h.stop_popen(d.proc, signal.SIGTERM, 20)
        if self.server:
            self.server.stop()
        if self.webhook:
            self.webhook.stop()
        self.api.stop()


def sha256(data):
    return hashlib.sha256(data).hexdigest()
