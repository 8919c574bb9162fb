"""Integration cases for the tgq command's Bot API side: set-webhook,
webhook-info, delete-webhook, me, poll and doctor, run as the real program against
the fake Bot API (tests/fake_botapi.py) on 127.0.0.1.  Checked: the exact request
each command sends, how answers (and errors) are shown, every validation error,
exit codes, and that no secret is ever printed.  Outputs that do not depend on the
clock are compared with golden files in tests/golden/cli/."""

import difflib
import hashlib
import json
import os
import signal
import subprocess
import time

import harness as h
from fake_botapi import FakeBotAPI

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
URL = "https://bot.example.org/telegram/webhook"
GOLDEN = os.path.join(h.ROOT, "tests", "golden", "cli")


Skip = h.Skip
check = h.check


class Stack(h.TempStack):
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-cli-")
        self.tgq = os.path.join(ctx.bindir, "tgq")
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.token_file = self.write("bot-token", TOKEN + "\n")
        self.secret_file = self.write("webhook-secret", self.secret + "\n")
        self.api = FakeBotAPI(tokens={TOKEN: "default"})
        self.outputs = []

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmpdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
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
            env.update(h.sanitizer_options(self.tmpdir, leaks=True))
        env.update(over)
        return h.base_env({k: v for k, v in env.items() if v is not None})

    def run(self, *args, user=None, timeout=60, **env):
        kw = {}
        if user is not None:
            kw = {"user": user[0], "group": user[1], "extra_groups": []}
        r = subprocess.run([self.tgq] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout,
                           env=self.env(**env), cwd=self.tmpdir, **kw)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def make_queue(self):
        """The queue as tgq-webhook creates it, with two updates."""
        binary = self.ctx.binary
        for uid in (1, 2):
            body = ('{"update_id":%d,"message":{"chat":{"id":42},"text":"hi"}}'
                    % uid).encode()
            r = subprocess.run([binary], input=body, capture_output=True,
                               timeout=30, env=h.base_env({
                                   "TGQ_DATABASE": self.db,
                                   "TGQ_WEBHOOK_SECRET": self.secret,
                                   "REQUEST_METHOD": "POST",
                                   "SCRIPT_NAME": "/telegram/webhook",
                                   "CONTENT_TYPE": "application/json",
                                   "CONTENT_LENGTH": str(len(body)),
                                   "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": self.secret}))
            check(b"Status: 200" in r.stdout, "webhook: %r" % r.stdout[:200])
        h.chown_run_user(self.db)

    def calls(self, method=None):
        return self.api.calls(method)

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(TOKEN, "$TOKEN")

    def logs(self):
        return ""

    def stop(self):
        self.api.stop()


def golden(name, text):
    path = os.path.join(GOLDEN, name)
    with open(path) as f:
        want = f.read()
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            "golden/" + name, "got"))
        raise AssertionError("output differs from %s:\n%s" % (path, diff))


def no_call(stack, before, what):
    check(len(stack.calls()) == before, "%r: Telegram was called" % (what,))


# ------------------------------------------------------------------ cases

def case_me(stack):
    r = stack.run("me")
    check(r.returncode == 0, "me: exit %d: %s" % (r.returncode, r.stderr))
    golden("me.txt", r.stdout)
    r = stack.run("--json", "me")
    out = json.loads(r.stdout)
    check(list(out)[0] == "ok" and out["ok"] is True and
          out["username"] == "default_bot", "me --json: %s" % r.stdout)
    check(stack.calls("getMe")[-1]["bot"] == "default", "getMe went to another bot")


def case_set_webhook_request(stack):
    r = stack.run("set-webhook")
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    golden("set-webhook.txt", r.stdout)
    call = stack.calls("setWebhook")[-1]
    check(call["body_kind"] == "json", "body kind %s" % call["body_kind"])
    check(call["params"] == {"url": URL, "secret_token": stack.secret},
          "params %r" % stack.redact(call["params"]))
    r = stack.run("set-webhook", "--url", "https://other.example.org:8443/tg/webhook",
                  "--allowed-updates", "message,callback_query",
                  "--max-connections", "10", "--drop-pending-updates",
                  "--ip-address", "2001:db8::1")
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    call = stack.calls("setWebhook")[-1]
    check(call["params"] == {"url": "https://other.example.org:8443/tg/webhook",
                             "secret_token": stack.secret,
                             "allowed_updates": ["message", "callback_query"],
                             "max_connections": 10, "drop_pending_updates": True,
                             "ip_address": "2001:db8::1"},
          "params %r" % stack.redact(call["params"]))
    check(stack.api.webhook()["secret_token"] == stack.secret,
          "Telegram did not get the configured secret")


def case_set_webhook_certificate(stack):
    pem = ("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUtest\n"
           "-----END CERTIFICATE-----\n")
    path = stack.write("cert.pem", pem, 0o644)
    r = stack.run("set-webhook", "--certificate", path, "--max-connections", "5")
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    call = stack.calls("setWebhook")[-1]
    check(call["body_kind"] == "multipart", "body kind %s" % call["body_kind"])
    cert = call["params"].get("certificate")
    check(isinstance(cert, dict) and cert["sha256"] ==
          hashlib.sha256(pem.encode()).hexdigest() and cert["filename"] == "cert.pem",
          "certificate field %r" % (cert,))
    check(call["params"]["url"] == URL and call["params"]["secret_token"] ==
          stack.secret and str(call["params"]["max_connections"]) == "5",
          "fields %r" % stack.redact(call["params"]))
    check(stack.api.webhook()["has_custom_certificate"],
          "Telegram does not have the certificate")


INVALID = [
    (("--url", "http://bot.example.org/webhook"), "must be https://"),
    (("--url", "https://bot.example.org:8080/webhook"), "port 8080"),
    (("--url", "not a url"), "cannot be parsed"),
    (("--max-connections", "0"), "--max-connections: too small"),
    (("--max-connections", "101"), "--max-connections: too large"),
    (("--max-connections", "ten"), "--max-connections: not a number"),
    (("--allowed-updates", "message,mesage"), "--allowed-updates: entry 2 is not"),
    (("--allowed-updates", "Message"), "--allowed-updates"),
    (("--ip-address", "300.1.1.1"), "--ip-address"),
    (("--certificate", "/nonexistent/cert.pem"), "--certificate"),
    (("--frobnicate",), "unknown option"),
    (("extra",), "unexpected argument"),
]


def case_set_webhook_validation(stack):
    for args, want in INVALID:
        before = len(stack.calls())
        r = stack.run("set-webhook", *args)
        check(r.returncode == 2, "%r: exit %d" % (args, r.returncode))
        check(want in r.stderr, "%r: %r" % (args, r.stderr))
        no_call(stack, before, args)
    before = len(stack.calls())
    r = stack.run("set-webhook", TGQ_WEBHOOK_URL=None)
    check(r.returncode == 2, "no URL: exit %d %s" % (r.returncode, r.stderr))
    bad = stack.write("bad-secret", "has spaces\n")
    r = stack.run("set-webhook", TGQ_WEBHOOK_SECRET_FILE=bad)
    check(r.returncode == 1 and "webhook secret" in r.stderr and
          "has spaces" not in r.stderr, "bad secret: %d %s" % (r.returncode, r.stderr))
    r = stack.run("set-webhook", TGQ_WEBHOOK_SECRET_FILE=None)
    check(r.returncode == 2 and "secret" in r.stderr, "no secret: %d %s" %
          (r.returncode, r.stderr))
    no_call(stack, before, "bad configuration")


def case_telegram_errors(stack):
    stack.api.script([{"status": 400, "description": "Bad Request: bad webhook: "
                       "Failed to resolve host: Name or service not known"}],
                     method="setWebhook")
    r = stack.run("set-webhook")
    check(r.returncode == 1, "exit %d" % r.returncode)
    golden("set-webhook-error.txt", r.stderr)
    r = stack.run("me", TGQ_BOT_TOKEN_FILE=stack.write("other-token",
                                                        "987654321:" + "x" * 35))
    check(r.returncode == 1 and "Unauthorized" in r.stderr, "unknown token: %d %s" %
          (r.returncode, r.stderr))
    stack.api.script([{"status": 502}], method="getMe")
    r = stack.run("--json", "me")
    out = json.loads(r.stdout)
    check(r.returncode == 1 and out["ok"] is False and "502" in out["error"],
          "502 --json: %d %s" % (r.returncode, r.stdout))


def case_webhook_info(stack):
    stack.run("set-webhook", "--allowed-updates", "message", "--max-connections", "7")
    stack.api.set_webhook_error("Connection timed out", date=int(time.time()) - 300)
    r = stack.run("webhook-info")
    check(r.returncode == 0, "exit %d" % r.returncode)
    golden("webhook-info.txt", r.stdout)
    r = stack.run("webhook-info", TGQ_WEBHOOK_URL="https://elsewhere.example.org/wh")
    check(r.returncode == 0 and "warning: Telegram has %s but the configuration says "
          "https://elsewhere.example.org/wh" % URL in r.stdout, "mismatch: %s" %
          r.stdout)
    r = stack.run("--json", "webhook-info", TGQ_WEBHOOK_URL="https://x.example.org/")
    out = json.loads(r.stdout)
    check(out["url_matches"] is False and out["webhook"]["url"] == URL and
          out["webhook"]["max_connections"] == 7, "json: %s" % r.stdout)
    check("secret" not in json.dumps(out["webhook"]), "the secret came back")


def case_telegram_text_cleaned(stack):
    """Text that comes from Telegram (the bot's name, a delivery error) reaches
    the terminal with its controls replaced: it cannot retitle the window or
    clear the screen.  --json still carries it exactly."""
    hostile = "evil\x1b]0;pwned\x07\x1b[2Jname\u0085end"
    stack.make_queue()
    stack.run("set-webhook")
    user = stack.api._bot("default").user
    name = user["first_name"]
    user["first_name"] = hostile
    stack.api.set_webhook_error("failed: " + hostile, date=int(time.time()) - 60)
    try:
        for args in (("me",), ("webhook-info",), ("doctor",)):
            r = stack.run(*args)
            for ch in ("\x1b", "\x07", "\u0085"):
                check(ch not in r.stdout and ch not in r.stderr,
                      "%s printed %r raw: %r" % (args[0], ch, r.stdout))
            check("pwned" in r.stdout and "end" in r.stdout,
                  "%s: the text is gone: %r" % (args[0], r.stdout))
        r = stack.run("--json", "me")
        check(json.loads(r.stdout)["first_name"] == hostile,
              "me --json changed the name: %r" % r.stdout)
    finally:
        user["first_name"] = name
        stack.api.set_webhook_error(None)


def case_delete_webhook(stack):
    stack.run("set-webhook")
    r = stack.run("delete-webhook", "--drop-pending-updates")
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    golden("delete-webhook.txt", r.stdout)
    check(stack.calls("deleteWebhook")[-1]["params"] == {"drop_pending_updates": True},
          "params %r" % stack.calls("deleteWebhook")[-1]["params"])
    check(not (stack.api.webhook() or {}).get("url"), "the webhook is still set")
    r = stack.run("webhook-info")
    check("none (no webhook is set)" in r.stdout, "after delete: %s" % r.stdout)


def poll_until(stack, n, timeout=20, **env):
    """Runs tgq poll until the queue has n rows, then stops it with SIGINT."""
    p = subprocess.Popen([stack.tgq, "poll", "--timeout", "1"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=stack.env(**env), cwd=stack.tmpdir)
    q = h.Queue(stack.db)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.path.exists(stack.db) and q.count() >= n:
                break
        except Exception:  # noqa: BLE001 - the file may be in creation
            pass
        if p.poll() is not None:
            break
        time.sleep(0.05)
    t0 = time.monotonic()
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=15)
    stack.outputs.append(out + err)
    return p.returncode, out, err, time.monotonic() - t0


def case_poll_restart(stack):
    stack.run("set-webhook")
    first = stack.api.add_updates([
        {"message": {"message_id": 1, "chat": {"id": 11, "type": "private"},
                     "text": "one"}},
        {"message": {"message_id": 2, "chat": {"id": 12, "type": "private"},
                     "text": "two"}}])
    rc, out, err, stop_s = poll_until(stack, 2)
    check(rc == 0, "poll exit %d: %s" % (rc, err))
    check(stop_s < 5, "SIGINT took %.1f s to stop poll" % stop_s)
    check("update %d (message, chat 11) queued" % first[0] in out, "output: %s" % out)
    calls = [c["method"] for c in stack.calls()]
    check(calls.index("deleteWebhook") < calls.index("getUpdates"),
          "getUpdates before deleteWebhook: %r" % calls)
    # More updates while nothing polls; the restarted poll takes exactly these.
    second = stack.api.add_updates([
        {"callback_query": {"id": "q", "data": "x", "message": {
            "message_id": 3, "chat": {"id": 11, "type": "private"}}}},
        {"message": {"message_id": 4, "chat": {"id": 13, "type": "private"},
                     "text": "four"}}])
    rc, out, err, _ = poll_until(stack, 4)
    check(rc == 0, "second poll exit %d: %s" % (rc, err))
    q = h.Queue(stack.db)
    ids = [u for (u,) in q.query("SELECT update_id FROM updates ORDER BY id")]
    check(ids == first + second, "queue has %r, expected %r" % (ids, first + second))
    offsets = [c["params"].get("offset") for c in stack.calls("getUpdates")]
    check(second[-1] + 1 in offsets or stack.api.pending_updates() == [],
          "Telegram never got the offset past the last update: %r" % offsets)
    check(q.query("SELECT next_offset FROM poll_state WHERE bot = 'default'") ==
          [(second[-1] + 1,)], "poll_state: %r" % q.query("SELECT * FROM poll_state"))
    check(q.query("SELECT kind, chat_id FROM updates WHERE update_id = ?",
                  (second[0],)) == [("callback_query", 11)], "kind/chat of polled")


def case_poll_conflict(stack):
    """Another client keeps long-polling: Telegram's 409 ends poll with exit 1."""
    stack.api.script([{"status": 409, "description": "Conflict: terminated by other "
                       "getUpdates request; make sure that only one bot instance is "
                       "running"}], method="getUpdates")
    rc, out, err, _ = poll_until(stack, 10**9, timeout=10)
    check(rc == 1 and "Conflict" in err, "exit %d: %s" % (rc, err))


def case_doctor_green(stack):
    stack.make_queue()
    stack.run("set-webhook")
    user = h.run_ids() if h.IS_ROOT else None
    r = stack.run("doctor", user=user)
    check(r.returncode == 0, "doctor exit %d:\n%s" % (r.returncode, r.stdout))
    check(r.stdout.count("\nok ") + r.stdout.startswith("ok ") >= 8,
          "not all ok:\n%s" % r.stdout)
    check("errors: 0, warnings: 0" in r.stdout, r.stdout)
    r = stack.run("--json", "doctor", user=user)
    checks = json.loads(r.stdout)
    check(all(c["status"] == "ok" for c in checks) and
          {"configuration", "bot", "secret", "database", "schema", "token",
           "webhook", "queue"} <= {c["check"] for c in checks}, r.stdout)


def case_doctor_secret_mismatch(stack):
    stack.make_queue()
    stack.run("set-webhook")
    # What Telegram reports when tgq-webhook refuses its secret.
    stack.api.set_webhook_error("Wrong response from the webhook: 401 Unauthorized",
                                date=int(time.time()) - 60)
    r = stack.run("doctor")
    check(r.returncode == 1, "doctor exit %d" % r.returncode)
    check("error    webhook        Telegram's deliveries are refused with 401" in
          r.stdout and "fix: tgq set-webhook" in r.stdout, r.stdout)


def case_doctor_url_mismatch(stack):
    stack.make_queue()
    stack.run("set-webhook", "--url", "https://old.example.org/telegram/webhook")
    r = stack.run("doctor")
    check(r.returncode == 1 and "Telegram calls https://old.example.org/telegram/"
          "webhook but the configuration says %s" % URL in r.stdout, r.stdout)


def case_doctor_unwritable_database(stack):
    stack.make_queue()
    stack.run("set-webhook")
    if h.IS_ROOT:
        # The queue belongs to root, read-only for others: the service user
        # cannot write it.
        os.chown(stack.db, 0, 0)
        os.chmod(stack.db, 0o644)
        r = stack.run("doctor", user=h.run_ids())
    else:
        os.chmod(stack.db, 0o444)
        r = stack.run("doctor")
    check(r.returncode == 1, "doctor exit %d:\n%s" % (r.returncode, r.stdout))
    check("error    database       %s (root:root 0644) is not writable by " % stack.db
          in r.stdout and "every update is answered 503" in r.stdout and
          "fix: give the queue's files to " in r.stdout, r.stdout)


def case_doctor_missing_everything(stack):
    r = stack.run("doctor", TGQ_BOT_TOKEN_FILE=None, TGQ_WEBHOOK_SECRET_FILE=None,
                  TGQ_WEBHOOK_URL=None, TGQ_DATABASE=os.path.join(stack.tmpdir, "no.db"))
    check(r.returncode == 1, "exit %d" % r.returncode)
    check("error    bot            no bot is configured" in r.stdout and
          "does not exist" in r.stdout, r.stdout)
    bad = stack.write("broken.conf", "[tgq]\nthreads = many\n")
    r = stack.run("doctor", TGQ_CONFIG=bad)
    check(r.returncode == 1 and "error    configuration  %s:2: threads: not a "
          "number" % bad in r.stdout, r.stdout)


def case_usage(stack):
    for args in ((), ("frobnicate",), ("--frobnicate", "me"), ("me", "extra"),
                 ("webhook-info", "--x"), ("poll", "--timeout", "99"),
                 ("delete-webhook", "now")):
        r = stack.run(*args)
        check(r.returncode == 2, "%r: exit %d" % (args, r.returncode))
        check("usage: tgq" in r.stderr, "%r: no usage: %s" % (args, r.stderr))
    for cmd in ("set-webhook", "webhook-info", "delete-webhook", "me", "status", "ls",
                "show", "retry", "purge", "poll", "doctor"):
        r = stack.run(cmd, "--help")
        check(r.returncode == 0 and r.stdout.startswith("usage: tgq") and cmd in
              r.stdout, "%s --help: %d %s" % (cmd, r.returncode, r.stdout))
    r = stack.run("--help")
    check(r.returncode == 0 and "commands:" in r.stdout, "--help")
    r = stack.run("--version")
    check(r.returncode == 0 and r.stdout.startswith("tgq "), "--version")
    r = stack.run("--bot", "nobody", "me")
    check(r.returncode == 2 and "no bot nobody" in r.stderr, "--bot nobody")


def case_no_secret_printed(stack):
    check(any(t.strip() for t in stack.outputs), "the CLI printed nothing: nothing "
          "to search for a secret")
    for text in stack.outputs:
        check(stack.secret not in text and TOKEN not in text and
              TOKEN.split(":")[1] not in text, "a secret was printed: %s" %
              stack.redact(text)[:300])


CASES = [("me", case_me), ("set_webhook_request", case_set_webhook_request),
         ("set_webhook_certificate_multipart", case_set_webhook_certificate),
         ("set_webhook_validation", case_set_webhook_validation),
         ("telegram_errors", case_telegram_errors),
         ("webhook_info", case_webhook_info),
         ("telegram_text_cleaned", case_telegram_text_cleaned),
         ("delete_webhook", case_delete_webhook),
         ("poll_restart_no_loss_no_repeat", case_poll_restart),
         ("poll_conflict_409", case_poll_conflict),
         ("doctor_green", case_doctor_green),
         ("doctor_secret_mismatch", case_doctor_secret_mismatch),
         ("doctor_url_mismatch", case_doctor_url_mismatch),
         ("doctor_unwritable_database", case_doctor_unwritable_database),
         ("doctor_missing_everything", case_doctor_missing_everything),
         ("usage_and_exit_codes", case_usage)]


def groups(ctx):
    # A fresh fake and temp folder per case: each starts from nothing.
    return h.stack_per_case(ctx, "cli/", CASES, lambda: Stack(ctx), case_no_secret_printed)
