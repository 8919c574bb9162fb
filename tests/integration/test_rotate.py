"""Secret rotation without a refused update: real nginx in front of two
tgq-webhook processes of two request threads each (one under /telegram/, one
under /second/, so that every check reaches both), the fake Bot API behind
`tgq rotate-secret`.

A running webhook takes a rewritten secret file without a restart (its PIDs stay
the same throughout), accepts the previous secret on the file's second line,
header and path alike, refuses it once `--finish` dropped it; rotate-secret
registers the new secret through setWebhook, keeps the file's owner and mode,
explains a failed registration, and refuses secrets it cannot rewrite (the
environment, a systemd credential); a malformed second line is refused with its
line named.  No secret appears in any output or log.

The cases run in order on one stack: each starts from the state the one before
left (the file's secrets are in stack.current / stack.previous)."""

import json
import os
import stat
import subprocess
import time

import harness as h
from fake_botapi import FakeBotAPI

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
URL = "https://bot.example.org/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Requests per check, to each process.
TRIES = 4
# A webhook process looks at the secret file at most once a second (and at once
# for a secret it does not know): a secret dropped from the file is refused
# after that second.
CHECK_INTERVAL = 1.2

Skip = h.Skip
check = h.check


class LoggedWebhook:
    """procs tgq-webhook processes sharing one listening unix socket (fd 0, as
    spawn-fcgi hands it over), their stderr in <tmpdir>/webhook.log: spawn-fcgi's
    fork mode would drop the log lines checked here."""

    def __init__(self, binary, tmpdir, env, procs, name):
        self.binary = binary
        self.env = h.base_env(env)
        self.procs = procs
        self.name = name
        self.socket = os.path.join(tmpdir, name + ".sock")
        self.log = os.path.join(tmpdir, name + ".log")
        self.popens = []
        self.pids = []

    def start(self):
        listener = h.unix_listener(self.socket)
        kw = h.run_user_popen_args()
        try:
            with open(self.log, "ab") as log:
                for _ in range(self.procs):
                    self.popens.append(subprocess.Popen(
                        [self.binary], stdin=listener.fileno(), stdout=log,
                        stderr=log, env=self.env, **kw))
        finally:
            listener.close()
        self.pids = [p.pid for p in self.popens]
        deadline = time.monotonic() + h.START_TIMEOUT
        while self.log_text().count("serving FastCGI") < self.procs:
            if any(p.poll() is not None for p in self.popens) or \
                    time.monotonic() > deadline:
                raise h.HarnessError("tgq-webhook did not start: %s" %
                                     self.log_text()[-300:])
            time.sleep(0.02)
        return self

    def alive(self):
        return [p.pid for p in self.popens if p.poll() is None]

    def stop(self):
        for p in self.popens:
            h.stop_popen(p)
        self.pids = []

    def log_text(self):
        return h.read_text(self.log)


class Stack(h.TempStack):
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-rotate-")
        self.current = h.new_secret()
        self.previous = None
        self.seen = [self.current]      # every secret the file ever held
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        self.token_file = h.write_token_file(self.tmpdir, TOKEN)
        self.secret_file = os.path.join(self.tmpdir, "webhook-secret")
        self.write_secret(self.current + "\n", mode=0o640)
        self.api = FakeBotAPI(tokens={TOKEN: "default"})
        self.webhooks = []
        self.server = None
        self.outputs = []
        self.next_id = 1000

    def write_secret(self, text, mode=None):
        """The file as an operator's editor leaves it: rewritten in place."""
        with open(self.secret_file, "w") as f:
            f.write(text)
        if mode is not None:
            os.chmod(self.secret_file, mode)
        h.chown_run_user(self.secret_file)

    def env(self, **over):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET_FILE": self.secret_file,
               "TGQ_BOT_TOKEN_FILE": self.token_file, "TGQ_API_URL": self.api.url,
               "TGQ_WEBHOOK_URL": URL, "TGQ_THREADS": "2", "TGQ_LOG_LEVEL": "info"}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        env.update(over)
        return {k: v for k, v in env.items() if v is not None}

    def start(self):
        self.api.start()
        for name in ("webhook", "webhook2"):
            self.webhooks.append(LoggedWebhook(self.ctx.binary, self.tmpdir,
                                               self.env(), 1, name).start())
        self.pids = self.alive()
        extra = """
        location /second/ {
            include fastcgi_params;
            fastcgi_pass unix:%s;
        }""" % self.webhooks[1].socket
        self.server = h.Nginx(self.tmpdir, self.webhooks[0].socket, extra).start()
        return self

    def alive(self):
        return sorted(p for w in self.webhooks for p in w.alive())

    def tgq(self, *args, **env):
        cmd_env = self.env(**env)
        if self.ctx.asan:
            cmd_env.update(h.sanitizer_options(self.tmpdir, leaks=True))
        r = subprocess.run([os.path.join(self.ctx.bindir, "tgq")] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60, env=h.base_env(cmd_env), cwd=self.tmpdir)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def post(self, secret=None, path_secret=None, prefix="/telegram"):
        """One update, signed with secret in the header and/or the path; the
        answer's status."""
        self.next_id += 1
        body = json.dumps({"update_id": self.next_id, "message": {
            "message_id": 1, "date": 1700000000, "text": "hi",
            "chat": {"id": 42, "type": "private"}}}).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        path = prefix + "/webhook" + ("/" + path_secret if path_secret else "")
        return h.request(self.server.port, "POST", path, headers, body).status

    def statuses(self, **kw):
        """The answers of both webhook processes, TRIES requests each."""
        return {self.post(prefix=prefix, **kw) for _ in range(TRIES)
                for prefix in ("/telegram", "/second")}

    def file_lines(self):
        with open(self.secret_file) as f:
            return f.read().split("\n")

    def redact(self, text):
        text = str(text).replace(TOKEN, "$TOKEN")
        for i, s in enumerate(self.seen):
            text = text.replace(s, "$SECRET%d" % i)
        return text

    def logs(self):
        text = "".join(w.log_text() for w in self.webhooks)
        if self.server is not None:
            text += h.read_text(self.server.error_log)
        return text

    def stop(self):
        if self.server is not None:
            self.server.stop()
        for w in self.webhooks:
            w.stop()
        self.api.stop()


def same_processes(stack):
    check(stack.alive() == stack.pids, "the webhook processes changed: %s then "
          "%s" % (stack.pids, stack.alive()))


def registered(stack):
    hook = stack.api.webhook()
    return hook["secret_token"] if hook else None


# ------------------------------------------------------------ the cases, in order

def case_start_one_secret(stack):
    """The start: one secret, accepted; a wrong one refused."""
    check(stack.statuses(secret=stack.current) == {200}, "the secret was refused")
    check(stack.statuses(secret=h.new_secret()) == {401}, "a wrong secret passed")


def case_file_rewritten_by_hand(stack):
    """An operator writes a new secret above the old one: the running webhook
    takes both at once (no restart, no wait), in the header and the path."""
    new = h.new_secret()
    stack.seen.append(new)
    tmp = stack.secret_file + ".new"
    with open(tmp, "w") as f:
        f.write("%s\n%s\n" % (new, stack.current))
    os.chmod(tmp, 0o640)
    h.chown_run_user(tmp)
    os.rename(tmp, stack.secret_file)
    stack.previous, stack.current = stack.current, new
    check(stack.statuses(secret=stack.current) == {200},
          "the new secret was refused by the running webhook")
    check(stack.statuses(secret=stack.previous) == {200},
          "the previous secret (second line) was refused")
    check(stack.statuses(path_secret=stack.previous) == {200},
          "the previous secret in the path was refused")
    check(stack.statuses(secret=h.new_secret()) == {401}, "a wrong secret passed")
    same_processes(stack)


def case_malformed_second_line(stack):
    """A second line that is no secret: tgq refuses the file naming its line; the
    running webhook keeps the secrets it had and says why once."""
    calls = len(stack.api.calls(method="setWebhook"))
    before = stack.logs().count("line 2")
    stack.write_secret("%s\nnot a secret!\n" % stack.current)
    time.sleep(CHECK_INTERVAL)      # the next request of each process looks
    r = stack.tgq("rotate-secret")
    check(r.returncode == 1 and "line 2" in r.stderr and stack.secret_file in
          r.stderr and "previous webhook secret" in r.stderr,
          "rotate-secret on a bad second line: exit %d: %s" % (r.returncode,
                                                              r.stderr))
    check("not a secret" not in r.stdout + r.stderr, "the line's text was printed")
    check(len(stack.api.calls(method="setWebhook")) == calls,
          "setWebhook was called with a malformed file")
    # The webhook keeps what it had: both secrets.
    check(stack.statuses(secret=stack.current) == {200}, "current refused")
    check(stack.statuses(secret=stack.previous) == {200}, "previous refused")
    logged = stack.logs().count("line 2") - before
    check(logged == 2, "the bad file was logged %d times (once per process "
          "expected)" % logged)
    check("not a secret" not in stack.logs(), "the line's text was logged")
    # Back to the two good lines.
    stack.write_secret("%s\n%s\n" % (stack.current, stack.previous))
    same_processes(stack)


def case_finish_by_hand_refuses_previous(stack):
    """tgq rotate-secret --finish drops the second line: the previous secret gets
    401 at once, the current one 200."""
    r = stack.tgq("rotate-secret", "--finish")
    check(r.returncode == 0, "--finish: exit %d: %s" % (r.returncode, r.stderr))
    check(stack.file_lines() == [stack.current, ""], "the file after --finish: "
          "%d lines" % len(stack.file_lines()))
    time.sleep(CHECK_INTERVAL)
    check(stack.statuses(secret=stack.previous) == {401},
          "the previous secret passed after --finish")
    check(stack.statuses(path_secret=stack.previous) == {401},
          "the previous secret in the path passed after --finish")
    check(stack.statuses(secret=stack.current) == {200}, "current refused")
    stack.previous = None
    same_processes(stack)


def case_rotate_secret(stack):
    """tgq rotate-secret: a new secret first, the old second, the file's owner
    and mode kept; setWebhook got the new one; the running webhook accepts both."""
    st0 = os.stat(stack.secret_file)
    r = stack.tgq("rotate-secret")
    check(r.returncode == 0, "rotate-secret: exit %d: %s" % (r.returncode,
                                                           r.stdout + r.stderr))
    lines = stack.file_lines()
    check(len(lines) == 3 and lines[2] == "" and lines[1] == stack.current and
          lines[0] != stack.current, "the file: %d lines" % len(lines))
    new = lines[0]
    stack.seen.append(new)
    check(registered(stack) == new, "setWebhook did not get the new secret")
    check(stack.api.webhook()["url"] == URL, "setWebhook got another URL")
    check(len(new) >= 32 and all(c.isalnum() or c in "_-" for c in new),
          "the new secret's form: %d characters" % len(new))
    st1 = os.stat(stack.secret_file)
    check(stat.S_IMODE(st1.st_mode) == stat.S_IMODE(st0.st_mode) == 0o640,
          "mode %o, was %o" % (stat.S_IMODE(st1.st_mode), stat.S_IMODE(st0.st_mode)))
    check((st1.st_uid, st1.st_gid) == (st0.st_uid, st0.st_gid),
          "owner %d:%d, was %d:%d" % (st1.st_uid, st1.st_gid, st0.st_uid,
                                      st0.st_gid))
    check(st1.st_ino != st0.st_ino, "the file was not replaced whole")
    stack.previous, stack.current = stack.current, new
    # Telegram switches to the new secret as soon as setWebhook answers; the
    # deliveries begun before still carry the old one.
    check(stack.statuses(secret=stack.current) == {200}, "the new secret was "
          "refused right after rotate-secret")
    check(stack.statuses(secret=stack.previous) == {200}, "the old secret was "
          "refused during the rotation")
    check(stack.statuses(path_secret=stack.current) == {200}, "the new secret in "
          "the path was refused")
    same_processes(stack)


def case_finish_after_rotate(stack):
    """After --finish the old secret gets 401 and the new 200; mode kept."""
    mode0 = stat.S_IMODE(os.stat(stack.secret_file).st_mode)
    r = stack.tgq("rotate-secret", "--finish")
    check(r.returncode == 0, "--finish: exit %d: %s" % (r.returncode, r.stderr))
    check(stack.file_lines() == [stack.current, ""], "the file after --finish")
    check(stat.S_IMODE(os.stat(stack.secret_file).st_mode) == mode0, "mode changed")
    time.sleep(CHECK_INTERVAL)
    check(stack.statuses(secret=stack.previous) == {401}, "the old secret passed")
    check(stack.statuses(secret=stack.current) == {200}, "the new secret refused")
    r = stack.tgq("rotate-secret", "--finish")
    check(r.returncode == 0 and "nothing to finish" in r.stdout,
          "a second --finish: exit %d: %s" % (r.returncode, r.stdout + r.stderr))
    stack.previous = None
    same_processes(stack)


def case_registration_fails(stack):
    """setWebhook fails: the file holds both, the webhook accepts both, the
    error says so and to run it again; the rerun registers the same new secret."""
    stack.api.script([{"status": 500}], method="setWebhook")
    old = stack.current
    r = stack.tgq("rotate-secret")
    check(r.returncode == 1 and "Run tgq rotate-secret again" in r.stderr and
          "no update is refused" in r.stderr, "a failed registration: exit %d: %s"
          % (r.returncode, r.stderr))
    lines = stack.file_lines()
    check(len(lines) == 3 and lines[1] == old and lines[0] != old, "the file")
    new = lines[0]
    stack.seen.append(new)
    check(registered(stack) == old, "Telegram's secret changed on a failed call")
    check(stack.statuses(secret=old) == {200} and
          stack.statuses(secret=new) == {200}, "a secret refused mid-rotation")
    r = stack.tgq("rotate-secret")
    check(r.returncode == 0 and "holds two secrets already" in r.stdout,
          "the rerun: exit %d: %s" % (r.returncode, r.stdout + r.stderr))
    check(stack.file_lines()[:2] == [new, old], "the rerun changed the file")
    check(registered(stack) == new, "the rerun did not register the new secret")
    stack.previous, stack.current = old, new
    r = stack.tgq("rotate-secret", "--finish")
    check(r.returncode == 0, "--finish: %s" % r.stderr)
    stack.previous = None


def case_no_register(stack):
    """--no-register (a webhook that gets the secret as a credential, restarted
    before registering): the file is written, Telegram is not called, and
    set-webhook then registers the new secret; --json answers say the state."""
    calls = len(stack.api.calls(method="setWebhook"))
    old = stack.current
    r = stack.tgq("rotate-secret", "--no-register")
    check(r.returncode == 0 and "run tgq set-webhook" in r.stdout,
          "--no-register: exit %d: %s" % (r.returncode, r.stdout + r.stderr))
    lines = stack.file_lines()
    check(len(lines) == 3 and lines[1] == old and lines[0] != old, "the file")
    new = lines[0]
    stack.seen.append(new)
    check(len(stack.api.calls(method="setWebhook")) == calls and
          registered(stack) == old, "--no-register called setWebhook")
    check(stack.statuses(secret=new) == {200} and
          stack.statuses(secret=old) == {200}, "a secret refused")
    r = stack.tgq("set-webhook")
    check(r.returncode == 0 and registered(stack) == new,
          "set-webhook after --no-register: %s" % r.stderr)
    r = stack.tgq("--json", "rotate-secret", "--finish")
    check(r.returncode == 0, "--json --finish: %s" % r.stderr)
    answer = json.loads(r.stdout)
    check(answer.get("ok") is True and answer.get("secrets") == 1 and
          answer.get("secret_file") == stack.secret_file, "--json: %r" % answer)
    stack.current, stack.previous = new, None


def case_swaps_under_load(stack):
    """The file rewritten 20 times while 4 clients send 40 updates each, signed
    with either secret, and a wrong one in between (each makes the webhook look
    at the file at once, so swaps happen while other threads compare): every
    signed update is stored, every wrong one refused (under ASan: no use after
    free)."""
    import threading
    a, b, wrong = stack.current, h.new_secret(), h.new_secret()
    stack.seen.append(b)
    tmp = stack.secret_file + ".swap"
    answers, refused, stop = [], [], threading.Event()

    def client(n):
        prefix = ("/telegram", "/second")[n % 2]
        for i in range(40):
            answers.append(stack.post(secret=(a, b)[(i + n) % 2], prefix=prefix))
            if i % 4 == 0:
                refused.append(stack.post(secret=wrong, prefix=prefix))

    def write(first, second):
        with open(tmp, "w") as f:
            f.write("%s\n%s\n" % (first, second))
        os.chmod(tmp, 0o640)
        h.chown_run_user(tmp)
        os.rename(tmp, stack.secret_file)

    write(a, b)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        write(*((a, b) if i % 2 else (b, a)))
        stop.wait(0.05)
    for t in threads:
        t.join(timeout=60)
    check(not any(t.is_alive() for t in threads), "a client did not finish")
    check(len(answers) == 160 and set(answers) == {200}, "answers: %s" % sorted(
        (x, answers.count(x)) for x in set(answers)))
    check(len(refused) == 40 and set(refused) == {401}, "wrong secret: %s" %
          sorted((x, refused.count(x)) for x in set(refused)))
    stack.current, stack.previous = a, None
    stack.write_secret(a + "\n")
    time.sleep(CHECK_INTERVAL)
    check(stack.statuses(secret=b) == {401}, "the dropped secret passed")
    same_processes(stack)


def case_refuses_what_it_cannot_rewrite(stack):
    """A secret from the environment or a systemd credential: a clear error, and
    nothing written or registered."""
    calls = len(stack.api.calls(method="setWebhook"))
    r = stack.tgq("rotate-secret", TGQ_WEBHOOK_SECRET_FILE=None,
                  TGQ_WEBHOOK_SECRET=stack.current)
    check(r.returncode == 1 and "TGQ_WEBHOOK_SECRET" in r.stderr and
          "cannot rewrite" in r.stderr, "from the environment: exit %d: %s" %
          (r.returncode, r.stderr))
    creds = h.make_subdir(stack.tmpdir, "credentials")
    with open(os.path.join(creds, "webhook-secret"), "w") as f:
        f.write(stack.current + "\n")
    r = stack.tgq("rotate-secret", TGQ_WEBHOOK_SECRET_FILE=None,
                  CREDENTIALS_DIRECTORY=creds)
    check(r.returncode == 1 and "systemd credential" in r.stderr and
          "cannot rewrite" in r.stderr, "a credential: exit %d: %s" %
          (r.returncode, r.stderr))
    with open(os.path.join(creds, "webhook-secret")) as f:
        check(f.read() == stack.current + "\n", "the credential was rewritten")
    check(len(stack.api.calls(method="setWebhook")) == calls, "setWebhook called")


def case_nothing_printed(stack):
    """No secret, old or new, in the programs' output, the webhook's log or
    nginx's."""
    h.check_not_logged(stack.logs(), stack.seen, "the webhook's and nginx's logs")
    h.check_not_logged("".join(stack.outputs), stack.seen, "tgq's output")
    check("reread" in stack.logs(), "the rereads were not logged")


CASES = [
    ("start_one_secret", case_start_one_secret),
    ("file_rewritten_by_hand", case_file_rewritten_by_hand),
    ("malformed_second_line", case_malformed_second_line),
    ("finish_by_hand_refuses_previous", case_finish_by_hand_refuses_previous),
    ("rotate_secret", case_rotate_secret),
    ("finish_after_rotate", case_finish_after_rotate),
    ("registration_fails", case_registration_fails),
    ("no_register", case_no_register),
    ("swaps_under_load", case_swaps_under_load),
    ("refuses_env_and_credential", case_refuses_what_it_cannot_rewrite),
    ("nothing_printed", case_nothing_printed),
]


def groups(ctx):
    return [("rotate", lambda: Stack(ctx), CASES)]
