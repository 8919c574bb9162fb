"""The WAL checkpoint interval, seen through the real programs: tgq-webhook (under
spawn-fcgi and nginx) sets 200 pages on the connection it opens to store updates;
tgq-drain keeps SQLite's 1000.  The setting lives on a connection and cannot be
read from outside it, so its effect is measured: the size of queue.db-wal, which
a checkpoint lets the next write start over from its beginning.

Group checkpoint:
  webhook_checkpoints_at_200   400 updates write over a thousand WAL frames
                               through the webhook: the WAL stays near 200 frames
  drain_keeps_1000             tgq-drain --once handling them writes several
                               hundred frames more without a checkpoint
"""

import os
import subprocess

import harness as h
from fake_botapi import FakeBotAPI

Skip = h.Skip
check = h.check

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
UPDATES = 400
# The webhook checkpoints every 200 frames; a commit adds a few frames past the
# mark before it checkpoints.  Without the setting the same updates leave 1000.
WEBHOOK_MAX_FRAMES = 300
# Past 200 (where the webhook's setting would have checkpointed) and below 1000.
DRAIN_MIN_FRAMES = 350


def update(uid):
    return ('{"update_id":%d,"message":{"message_id":%d,"date":1700000000,'
            '"chat":{"id":%d,"type":"private"},"text":"wal %d"}}' % (
                uid, uid, 5000 + uid % 20, uid)).encode()


class Stack(h.TempStack):
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-checkpoint-")
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        self.token_file = h.write_token_file(self.tmpdir, TOKEN)
        self.api = FakeBotAPI(tokens={TOKEN: "default"}, limits=False)
        self.webhooks = []
        self.server = None

    def env(self, leaks=False):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_LOG_LEVEL": "info"}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir, leaks=leaks))
        return env

    def start(self):
        self.api.start()
        self.webhooks = [h.Webhook(self.ctx.binary, self.tmpdir, self.env(), 1,
                                   "webhook").start()]
        self.server = h.Nginx(self.tmpdir, self.webhooks[0].socket).start()
        return self

    def post(self, uid, conn=None):
        r = h.request(self.server.port, "POST", "/telegram/webhook",
                      {SECRET_HEADER: self.secret, "Content-Type": "application/json"},
                      update(uid), conn=conn)
        check(r.status == 200, "update %d: HTTP %d" % (uid, r.status))

    def wal_frames(self):
        """Frames the WAL file has room for: its high-water mark since the last
        truncation (a checkpoint does not shrink it; the next write starts over)."""
        page = self.queue.query("PRAGMA page_size")[0][0]
        try:
            size = os.path.getsize(self.db + "-wal")
        except OSError:
            return 0
        return max(0, size - 32) // (page + 24)

    def logs(self):
        return "".join(w.log_text() for w in self.webhooks)

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(TOKEN, "$TOKEN")

    def stop(self):
        if self.server:
            self.server.stop()
        for w in self.webhooks:
            w.stop()
        self.api.stop()


def case_webhook(stack):
    stack.post(1)
    # Start from an empty WAL: the test's connection checkpoints and truncates it
    # (the webhook is idle, holding no snapshot).
    stack.queue.query("PRAGMA wal_checkpoint(TRUNCATE)")
    check(stack.wal_frames() == 0, "the WAL was not truncated: %d frames" %
          stack.wal_frames())
    for uid in range(2, UPDATES + 2):
        stack.post(uid)
    frames = stack.wal_frames()
    check(0 < frames <= WEBHOOK_MAX_FRAMES, "after %d updates through the webhook "
          "the WAL holds %d frames: it did not checkpoint every 200 pages" % (
              UPDATES, frames))
    stack.notes.append("webhook: %d updates, WAL at most %d frames" % (UPDATES,
                                                                        frames))


def case_drain(stack):
    pending = stack.queue.query("SELECT count(*) FROM updates WHERE state = 'new'")
    check(pending and pending[0][0] >= UPDATES, "pending updates: %r" % pending)
    stack.queue.query("PRAGMA wal_checkpoint(TRUNCATE)")
    check(stack.wal_frames() == 0, "the WAL was not truncated")
    env = stack.env(leaks=True)       # --once ends by itself: LeakSanitizer too
    env.update({"TGQ_BOT_TOKEN_FILE": stack.token_file, "TGQ_API_URL": stack.api.url,
                "TGQ_RATE_GLOBAL": "0", "TGQ_RATE_CHAT": "0", "TGQ_RATE_GROUP": "0"})
    kw = {}
    if h.IS_ROOT:
        uid, gid = h.run_ids()
        kw = {"user": uid, "group": gid, "extra_groups": []}
    # The webhook keeps its connection open, so the drain's close is not the last
    # one and leaves the WAL file as the drain's commits made it.
    r = subprocess.run([os.path.join(stack.ctx.bindir, "tgq-drain"), "--once"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120, env=h.base_env(env), cwd=stack.tmpdir, **kw)
    check(r.returncode == 0, "tgq-drain --once: %d %s" % (r.returncode,
                                                          r.stderr[-500:]))
    left = stack.queue.query("SELECT count(*) FROM updates WHERE state = 'new'")
    check(left == [(0,)], "the drain left %r updates new" % left)
    frames = stack.wal_frames()
    check(frames >= DRAIN_MIN_FRAMES, "tgq-drain --once handled %d updates and the "
          "WAL holds %d frames: it checkpointed before 1000 pages" % (
              pending[0][0], frames))
    stack.notes.append("drain: %d updates handled, WAL %d frames, no checkpoint" % (
        pending[0][0], frames))


def groups(ctx):
    return [("checkpoint", lambda: Stack(ctx),
             [("webhook_checkpoints_at_200", case_webhook),
              ("drain_keeps_1000", case_drain)])]
