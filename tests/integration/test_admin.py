"""What an administrator meets: the queue commands without the bot token, the
fixes `tgq doctor` gives (a secret rotated under a running tgq-webhook, a queue or
folder the webhook's user cannot write, an exec: handler that cannot run, a
polling set-up), the modes of the files each program creates, an empty
TGQ_CONFIG, and a drain that refuses a configuration before it creates anything.

Run as root, the programs run as www-data (the harness's unprivileged user) where
a permission matters; run as another user, the cases that need two users skip."""

import os
import signal
import stat
import subprocess
import time

import harness as h
from fake_botapi import FakeBotAPI

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
URL = "https://bot.example.org/telegram/webhook"

Skip = h.Skip
check = h.check


def need_root():
    if not h.IS_ROOT:
        raise Skip("needs root, to run the programs as another user")


class Stack(h.TempStack):
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-admin-")
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.token_file = self.write("bot-token", TOKEN + "\n")
        self.secret_file = self.write("webhook-secret", self.secret + "\n")
        self.api = FakeBotAPI(tokens={TOKEN: "default"})
        self.webhooks = []
        self.outputs = []

    def write(self, name, text, mode=0o600, owner_run_user=True):
        path = os.path.join(self.tmpdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        if owner_run_user:
            h.chown_run_user(path)
        return path

    def start(self):
        self.api.start()
        return self

    def env(self, **over):
        env = {"TGQ_DATABASE": self.db, "TGQ_BOT_TOKEN_FILE": self.token_file,
               "TGQ_WEBHOOK_SECRET_FILE": self.secret_file,
               "TGQ_API_URL": self.api.url, "TGQ_WEBHOOK_URL": URL}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        env.update(over)
        return {k: v for k, v in env.items() if v is not None}

    def run(self, prog, *args, user=False, umask=None, timeout=60, **env):
        """Runs one of the programs; user=True: as the unprivileged user."""
        kw = {}
        if user:
            uid, gid = h.run_ids()
            kw = {"user": uid, "group": gid, "extra_groups": []}
        if umask is not None:
            kw["umask"] = umask
        r = subprocess.run([os.path.join(self.ctx.bindir, prog)] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, env=h.base_env(self.env(**env)),
                           cwd=self.tmpdir, **kw)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def make_queue(self, n=2):
        """The queue as tgq-webhook (CGI) creates it, with n updates."""
        for uid in range(1, n + 1):
            body = ('{"update_id":%d,"message":{"chat":{"id":42},"text":"hi"}}'
                    % uid).encode()
            r = subprocess.run([self.ctx.binary], input=body, capture_output=True,
                               timeout=30, env=h.base_env({
                                   "TGQ_DATABASE": self.db,
                                   "TGQ_WEBHOOK_SECRET": self.secret,
                                   "REQUEST_METHOD": "POST",
                                   "SCRIPT_NAME": "/telegram/webhook",
                                   "CONTENT_TYPE": "application/json",
                                   "CONTENT_LENGTH": str(len(body)),
                                   "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": self.secret}))
            check(b"Status: 200" in r.stdout, "webhook: %r" % r.stdout[:200])
        for suffix in ("", "-metrics", "-lock"):
            if os.path.exists(self.db + suffix):
                h.chown_run_user(self.db + suffix)

    def webhook(self, **env):
        """tgq-webhook under spawn-fcgi (as www-data when root), holding the queue
        open; stopped with the stack."""
        w = h.Webhook(self.ctx.binary, self.tmpdir, self.env(**env)).start()
        self.webhooks.append(w)
        # It opens the queue at start; a WAL queue has its -shm while open.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not os.path.exists(self.db + "-shm"):
            time.sleep(0.05)
        return w

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(TOKEN, "$TOKEN")

    def logs(self):
        return "".join(w.log_text() for w in self.webhooks)

    def stop(self):
        for w in self.webhooks:
            w.stop()
        self.api.stop()


def no_secret_printed(stack):
    for text in stack.outputs + [stack.logs()]:
        check(stack.secret not in text and TOKEN.split(":")[1] not in text,
              "a secret was printed: %s" % stack.redact(text)[:300])


# ------------------------------------------------------------ the queue commands

def case_queue_commands_without_token(stack):
    """An operator who may read the queue but not the token runs status, ls, show,
    retry and purge; the commands that call Telegram say the token is unreadable."""
    need_root()
    stack.make_queue()
    # The secrets as the deploy docs leave them: root's, 0600.
    for path in (stack.token_file, stack.secret_file):
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)
    for args in (("status",), ("ls",), ("show", "1"), ("retry", "--dead"),
                 ("purge", "--older-than", "7d")):
        r = stack.run("tgq", *args, user=True)
        check(r.returncode in (0, 1) and "bot-token" not in r.stderr and
              "Permission denied" not in r.stderr and "configuration" not in r.stderr,
              "tgq %s as www-data: exit %d: %s" % (" ".join(args), r.returncode,
                                                    r.stdout + r.stderr))
    r = stack.run("tgq", "ls", user=True)
    check(r.returncode == 0 and r.stdout.count("\n") >= 2, "ls: %s" % r.stdout)
    r = stack.run("tgq", "show", "2", user=True)
    check(r.returncode == 0 and r.stdout.strip(), "show: %s" % r.stderr)
    for args in (("me",), ("webhook-info",), ("set-webhook",), ("delete-webhook",)):
        r = stack.run("tgq", *args, user=True)
        check(r.returncode == 1 and "%s: Permission denied (running as user %s)" %
              (stack.token_file, h.RUN_USER) in r.stderr,
              "tgq %s: exit %d: %s" % (args[0], r.returncode, r.stderr))
    check(not stack.api.calls(), "a call went out: %r" % stack.api.calls())
    no_secret_printed(stack)


def case_queue_commands_as_group_reader(stack):
    """An operator in the queue's group, who may read the queue and its folder but
    write neither: status, ls and show work, while a process holds the queue open
    (its -wal and -shm there) and while none does; retry says it cannot write."""
    need_root()
    import sqlite3
    stack.make_queue()
    folder = os.path.join(stack.tmpdir, "ro")
    os.mkdir(folder)
    db = os.path.join(folder, "queue.db")
    os.rename(stack.db, db)
    _uid, gid = h.run_ids()

    def lock_down():
        for path in [folder] + [db + s for s in ("", "-wal", "-shm", "-lock")]:
            if os.path.exists(path):
                os.chown(path, 0, gid)
                os.chmod(path, 0o750 if path == folder else 0o640)

    def looks(when):
        lock_down()
        for args, want in ((("status",), "new"), (("ls",), "hi"),
                           (("show", "2"), "update_id")):
            r = stack.run("tgq", *args, user=True, TGQ_DATABASE=db)
            check(r.returncode == 0 and want in r.stdout,
                  "tgq %s as a group reader, %s: exit %d: %s" % (
                      " ".join(args), when, r.returncode, r.stdout + r.stderr))

    holder = sqlite3.connect(db)
    try:
        holder.execute("SELECT count(*) FROM updates").fetchall()
        check(os.path.exists(db + "-shm"), "the holder left no -shm")
        looks("the queue held open")
    finally:
        holder.close()
    check(not os.path.exists(db + "-wal"), "the -wal outlived its last connection")
    looks("nobody has the queue open")
    r = stack.run("tgq", "retry", "--dead", user=True, TGQ_DATABASE=db)
    check(r.returncode == 1 and "readonly" in r.stderr.replace("read-only",
                                                               "readonly"),
          "retry as a group reader: exit %d: %s" % (r.returncode, r.stderr))


# ------------------------------------------------------------ tgq doctor

def case_doctor_secret_changed_under_webhook(stack):
    """The secret file rewritten after tgq-webhook started (a new secret above
    the old one) and registered with Telegram: tgq-webhook rereads the file, so
    doctor never says to restart it; a 401 is fixed by registering the
    configured secret, and the rotation under way is reported."""
    stack.make_queue()
    stack.webhook()
    time.sleep(2.2)   # the process's start time is known to the second
    new = h.new_secret()
    with open(stack.secret_file, "w") as f:
        f.write("%s\n%s\n" % (new, stack.secret))
    r = stack.run("tgq", "set-webhook")
    check(r.returncode == 0, "set-webhook: %s" % r.stderr)
    stack.api.set_webhook_error("Wrong response from the webhook: 401 Unauthorized",
                                date=int(time.time()) - 30)
    r = stack.run("tgq", "doctor")
    out = stack.redact(r.stdout.replace(new, "$NEW"))
    check(r.returncode == 1, "doctor exit %d:\n%s" % (r.returncode, out))
    check("restart" not in out and "changed after tgq-webhook" not in out and
          "fix: tgq set-webhook (registers the configured secret" in out and
          "and the one before it, accepted until tgq rotate-secret --finish" in out,
          out)
    check(new not in r.stdout + r.stderr, "the new secret was printed")
    no_secret_printed(stack)


def case_doctor_queue_owned_by_root(stack):
    """A queue file root owns, which tgq-webhook's user cannot write: every update
    gets 503, so doctor says error, names the user and the chown."""
    need_root()
    stack.make_queue()
    stack.webhook()
    os.chown(stack.db, 0, 0)
    os.chmod(stack.db, 0o644)
    r = stack.run("tgq", "doctor")
    check(r.returncode == 1, "doctor exit %d:\n%s" % (r.returncode, r.stdout))
    check(("error    database       %s (root:root 0644) is not writable by %s, the "
           "user tgq-webhook runs as: every update is answered 503" %
           (stack.db, h.RUN_USER)) in r.stdout and
          "fix: give the queue's files to %s: chown %s:%s %s*" %
          (h.RUN_USER, h.RUN_USER, h.RUN_USER, stack.db) in r.stdout, r.stdout)


def case_doctor_folder_not_writable(stack):
    """A queue folder the webhook's user cannot write: the fix is its ownership,
    not "start tgq-webhook once"."""
    need_root()
    folder = os.path.join(stack.tmpdir, "root-only")
    os.mkdir(folder, 0o755)     # root's
    db = os.path.join(folder, "queue.db")
    r = stack.run("tgq", "doctor", user=True, TGQ_DATABASE=db)
    check(r.returncode == 1, "doctor exit %d:\n%s" % (r.returncode, r.stdout))
    check("start tgq-webhook once" not in r.stdout and
          "the folder %s (root:root 0755) is not writable by %s" % (folder, h.RUN_USER)
          in r.stdout and "fix: give the folder to %s: chown %s:%s %s && chmod 0750 %s"
          % (h.RUN_USER, h.RUN_USER, h.RUN_USER, folder, folder) in r.stdout, r.stdout)


def handler_cases(stack):
    """(handler value, what each program must say): missing, not executable, a
    folder; relative paths are refused while the file is read."""
    script = stack.write("bot.sh", "#!/bin/sh\ncat >/dev/null\n", mode=0o644)
    missing = os.path.join(stack.tmpdir, "no-such-bot")
    return [("exec:%s --flag" % missing, "handler program %s: No such file or "
             "directory" % missing),
            ("exec:%s" % script, "handler program %s is not executable" % script),
            ("exec:%s" % stack.tmpdir, "handler program %s is not a regular file" %
             stack.tmpdir),
            ("exec:bot.sh", "handler exec: needs an absolute program path"),
            ("exec:", "handler exec: needs an absolute program path")]


def case_handler_checked_at_start(stack):
    """An exec: handler that cannot run is reported by tgq doctor, tgq-webhook
    --check and tgq-drain at start, and the drain then creates no queue."""
    stack.make_queue()
    for handler, want in handler_cases(stack):
        r = stack.run("tgq", "doctor", TGQ_HANDLER=handler)
        check(r.returncode == 1 and want in r.stdout, "doctor, %s:\n%s" %
              (handler, r.stdout))
        r = stack.run("tgq-webhook", "--check", TGQ_HANDLER=handler)
        check(r.returncode == 1 and want in r.stderr, "webhook --check, %s: %s" %
              (handler, r.stderr))
        fresh = os.path.join(stack.tmpdir, "fresh.db")
        r = stack.run("tgq-drain", "--once", TGQ_HANDLER=handler, TGQ_DATABASE=fresh)
        check(r.returncode == 1 and want in r.stderr, "drain, %s: %s" %
              (handler, r.stderr))
        check(not os.path.exists(fresh), "the drain created %s" % fresh)
    # The serving webhook stores updates whatever the handler: it runs none.
    body = b'{"update_id":9,"message":{"chat":{"id":42},"text":"hi"}}'
    r = subprocess.run([stack.ctx.binary], input=body, capture_output=True, timeout=30,
                       env=h.base_env(stack.env(
                           TGQ_HANDLER="exec:/no/such/bot", REQUEST_METHOD="POST",
                           SCRIPT_NAME="/telegram/webhook",
                           CONTENT_TYPE="application/json",
                           CONTENT_LENGTH=str(len(body)),
                           HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=stack.secret)))
    check(b"Status: 200" in r.stdout, "webhook with a missing handler: %r" %
          r.stdout[:200])


def case_doctor_polling_needs_no_secret(stack):
    """tgq poll set-ups: no webhook_url, no secret, no webhook registered: doctor
    passes."""
    stack.make_queue()
    r = stack.run("tgq", "doctor", TGQ_WEBHOOK_SECRET_FILE=None, TGQ_WEBHOOK_URL=None)
    check(r.returncode == 0 and "errors: 0" in r.stdout, "doctor exit %d:\n%s" %
          (r.returncode, r.stdout))
    check("none needed" in r.stdout, r.stdout)


def case_doctor_unreadable_token(stack):
    """doctor run by an operator who cannot read the token reports it as the bot
    check, and still checks the queue."""
    need_root()
    stack.make_queue()
    os.chown(stack.token_file, 0, 0)
    r = stack.run("tgq", "doctor", user=True)
    check(r.returncode == 1 and "the token cannot be read: %s: Permission denied" %
          stack.token_file in r.stdout and "ok       queue          2 pending" in
          r.stdout, r.stdout)


# ------------------------------------------------------------ the webhook's 503

def case_webhook_503_names_the_fix(stack):
    """A queue tgq-webhook cannot write: its log line names the queue, its user
    and the chown.  (As CGI: spawn-fcgi's fork mode drops the log.)"""
    need_root()
    stack.make_queue()
    os.chown(stack.db, 0, 0)
    os.chmod(stack.db, 0o644)
    uid, gid = h.run_ids()
    body = b'{"update_id":77,"message":{"chat":{"id":1},"text":"x"}}'
    r = subprocess.run([stack.ctx.binary], input=body, capture_output=True, timeout=60,
                       user=uid, group=gid, extra_groups=[], cwd=stack.tmpdir,
                       env=h.base_env(stack.env(
                           REQUEST_METHOD="POST", SCRIPT_NAME="/telegram/webhook",
                           CONTENT_TYPE="application/json",
                           CONTENT_LENGTH=str(len(body)),
                           HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=stack.secret)))
    log = r.stderr.decode(errors="replace")
    stack.outputs.append(log)
    check(b"Status: 503" in r.stdout, "answer: %r" % r.stdout[:200])
    check("%s" % stack.db in log and "answering 503" in log and
          "user %s cannot write %s: give the queue's files to that user (chown %s %s*)"
          % (h.RUN_USER, stack.db, h.RUN_USER, stack.db) in log, log[-1500:])


# ------------------------------------------------------------ umask, TGQ_CONFIG=

def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def case_file_modes_under_umask_022(stack):
    """Started with umask 022 (no systemd to set one), each program creates the
    queue, its -wal, -shm and metrics file 0640."""
    files = ("", "-wal", "-shm", "-metrics")
    # tgq-webhook: the files of a running process.
    old = os.umask(0o022)
    try:
        w = h.Webhook(stack.ctx.binary, stack.tmpdir, stack.env(
            TGQ_DATABASE=os.path.join(stack.tmpdir, "w.db")), name="w022").start()
    finally:
        os.umask(old)
    stack.webhooks.append(w)
    wdb = os.path.join(stack.tmpdir, "w.db")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(wdb + "-shm"):
        time.sleep(0.05)
    got = {f: mode_of(wdb + f) for f in files if os.path.exists(wdb + f)}
    check(len(got) == 4 and set(got.values()) == {0o640}, "tgq-webhook: %r" %
          {f: oct(m) for f, m in got.items()})
    # tgq-drain --once: the queue and metrics file it leaves.
    ddb = os.path.join(stack.tmpdir, "d.db")
    r = stack.run("tgq-drain", "--once", umask=0o022, TGQ_DATABASE=ddb)
    check(r.returncode == 0, "drain: %s" % r.stderr)
    got = {f: mode_of(ddb + f) for f in files if os.path.exists(ddb + f)}
    check("" in got and set(got.values()) == {0o640}, "tgq-drain: %r" %
          {f: oct(m) for f, m in got.items()})
    # tgq poll: creates the queue, seen while it runs.
    pdb = os.path.join(stack.tmpdir, "p.db")
    p = subprocess.Popen([os.path.join(stack.ctx.bindir, "tgq"), "poll", "--timeout",
                          "1"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, umask=0o022,
                         env=h.base_env(stack.env(TGQ_DATABASE=pdb)))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(pdb + "-shm"):
            time.sleep(0.05)
        got = {f: mode_of(pdb + f) for f in files[:3] if os.path.exists(pdb + f)}
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=15)
        stack.outputs.append(out + err)
    check(len(got) == 3 and set(got.values()) == {0o640}, "tgq poll: %r" %
          {f: oct(m) for f, m in got.items()})


def case_empty_tgq_config(stack):
    """TGQ_CONFIG= (set, empty) is an error that says so, in every program."""
    want = "TGQ_CONFIG is set but empty"
    for prog, args in (("tgq", ("status",)), ("tgq-webhook", ("--check",)),
                       ("tgq-drain", ("--once",))):
        r = stack.run(prog, *args, TGQ_CONFIG="")
        check(r.returncode == 1 and want in r.stdout + r.stderr,
              "%s: exit %d: %s" % (prog, r.returncode, r.stdout + r.stderr))
    check(not os.path.exists(stack.db), "a queue was created")


def case_drain_refuses_before_creating_queue(stack):
    """A configuration the drain cannot work with leaves no queue behind."""
    fresh = os.path.join(stack.tmpdir, "fresh.db")
    r = stack.run("tgq-drain", "--once", TGQ_DATABASE=fresh, TGQ_BOT_TOKEN_FILE=None,
                  TGQ_WEBHOOK_SECRET_FILE=None)
    check(r.returncode == 1 and "no bot has a token" in r.stderr, r.stderr)
    check(not os.path.exists(fresh) and not os.path.exists(fresh + "-metrics"),
          "the drain created the queue: %r" % os.listdir(stack.tmpdir))


CASES = [("queue_commands_without_token", case_queue_commands_without_token),
         ("queue_commands_as_group_reader", case_queue_commands_as_group_reader),
         ("doctor_secret_changed_under_webhook", case_doctor_secret_changed_under_webhook),
         ("doctor_queue_owned_by_root", case_doctor_queue_owned_by_root),
         ("doctor_folder_not_writable", case_doctor_folder_not_writable),
         ("doctor_polling_needs_no_secret", case_doctor_polling_needs_no_secret),
         ("doctor_unreadable_token", case_doctor_unreadable_token),
         ("handler_checked_at_start", case_handler_checked_at_start),
         ("webhook_503_names_the_fix", case_webhook_503_names_the_fix),
         ("file_modes_under_umask_022", case_file_modes_under_umask_022),
         ("empty_tgq_config", case_empty_tgq_config),
         ("drain_refuses_before_creating_queue", case_drain_refuses_before_creating_queue)]


def groups(ctx):
    # A fresh fake and temp folder per case.
    return h.stack_per_case(ctx, "admin/", CASES, lambda: Stack(ctx), no_secret_printed)
