"""Integration cases for the queue commands of tgq (status, ls, show, retry,
purge): a queue made by the real tgq-webhook (run as CGI, the body on stdin),
its rows then shaped with sqlite3 into every state, and the real tgq run on it.

Groups:
  cli-queue        every command on a fresh copy of one fixture queue: counts,
                   filters, exit codes, --json, and the human output compared
                   with the golden files in tests/golden/cli-queue/
                   (TGQ_UPDATE_GOLDEN=1 rewrites them)
  cli-queue-drain  a dead update handed back with tgq retry, then sent by the real
                   tgq-drain --once to the fake Bot API

The fixture (row ids in the order posted; times are B + offsets, B a fixed time
for the golden ls/show output, or now - 4 h where ages are printed):
  row  update_id  kind            chat  state   calls (outbox id: state)
  1    1001       message         501   done    1: sent (Telegram's result)
  2    1002       message         502   dead    2: dead (chat not found)
  3    1003       message         501   new     (a text longer than 40 chars)
  4    1004       message         503   leased
  5    1005       callback_query  502   new
  6    1006       edited_message  504   dead
  7    1007       message         505   done    3: new, 4: sending
  8    1008       message         506   done    (replaced_at set: update_id reused)
  9    1008       message         506   new     (the current row)
"""

import difflib
import json
import os
import subprocess
import time

import harness as h

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "golden", "cli-queue")
FIXED_BASE = 1700000000          # 2023-11-14 22:13:20 UTC
SPAN = 4 * 3600                  # the fixture's last times are B + SPAN - ...
COMMANDS = ["status", "ls", "show", "retry", "purge"]


Skip = h.Skip
check = h.check


def message(uid, chat, text, kind="message"):
    return {"update_id": uid, kind: {
        "message_id": uid, "date": 1700000000,
        "chat": {"id": chat, "type": "private"},
        "from": {"id": chat, "is_bot": False, "first_name": "T"}, "text": text}}


def callback(uid, chat, data):
    return {"update_id": uid, "callback_query": {
        "id": "cb%d" % uid, "from": {"id": chat, "is_bot": False, "first_name": "T"},
        "message": {"message_id": 5, "date": 1700000000,
                    "chat": {"id": chat, "type": "private"}, "text": "pick"},
        "chat_instance": "1", "data": data}}


class Fixture:
    """One queue file in its own folder, and tgq run on it."""

    def __init__(self, stack, name):
        self.stack = stack
        self.dir = h.make_subdir(stack.tmpdir, name)
        self.db = os.path.join(self.dir, "queue.db")
        self.queue = h.Queue(self.db)
        # An empty configuration file: nothing of /etc/tgq leaks into the tests.
        self.conf = os.path.join(self.dir, "tgq.conf")
        open(self.conf, "w").close()

    def env(self, **over):
        env = {"TGQ_CONFIG": self.conf, "TGQ_DATABASE": self.db,
               "TGQ_WEBHOOK_SECRET": self.stack.secret}
        if self.stack.ctx.asan:
            env.update(h.sanitizer_options(self.stack.tmpdir, leaks=True))
        env.update({k: str(v) for k, v in over.items()})
        return h.base_env(env)

    def post(self, update):
        """Runs tgq-webhook as a CGI program with the update on stdin."""
        body = json.dumps(update, separators=(",", ":")).encode()
        env = self.env(REQUEST_METHOD="POST", CONTENT_TYPE="application/json",
                       CONTENT_LENGTH=len(body), REQUEST_URI="/telegram/webhook",
                       GATEWAY_INTERFACE="CGI/1.1", SERVER_PROTOCOL="HTTP/1.1",
                       REMOTE_ADDR="127.0.0.1",
                       HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=self.stack.secret)
        r = subprocess.run([os.path.join(self.stack.ctx.bindir, "tgq-webhook")],
                           input=body, capture_output=True, env=env, timeout=30,
                           cwd=self.dir)
        self.stack.log(r.stderr)
        resp = h.parse_http_response(r.stdout, cgi=True)
        check(resp.status == 200, "posting %d: %r" % (update["update_id"], resp))

    def tgq(self, *args, env=None, want=None):
        """Runs tgq; returns (exit status, stdout, stderr)."""
        r = subprocess.run([os.path.join(self.stack.ctx.bindir, "tgq")] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           env=env or self.env(), timeout=60, cwd=self.dir)
        out, err = r.stdout.decode(), r.stderr.decode()
        self.stack.log(r.stderr)
        if want is not None:
            check(r.returncode == want, "tgq %s: exit %d, expected %d; stderr %r; "
                  "stdout %r" % (" ".join(args), r.returncode, want, err[-300:],
                                 out[-300:]))
        return r.returncode, out, err

    def json(self, *args, want=0):
        _, out, _ = self.tgq("--json", *args, want=want)
        try:
            return json.loads(out)
        except ValueError:
            raise AssertionError("tgq --json %s: not JSON: %r" %
                                 (" ".join(args), out[:300]))

    def sql(self, sql, args=()):
        self.queue.execute(sql, args)

    def rows(self, sql, args=()):
        return self.queue.query(sql, args)

    def populate(self, base):
        """The rows of the module's docstring, times from base."""
        posts = [
            message(1001, 501, "hello one"),
            message(1002, 502, "second message"),
            message(1003, 501, "this is a rather long message that goes well "
                    "beyond forty characters"),
            message(1004, 503, "leased one"),
            callback(1005, 502, "btn:1"),
            message(1006, 504, "edited text", kind="edited_message"),
            message(1007, 505, "two replies"),
            message(1008, 506, "first life"),
        ]
        for u in posts:
            self.post(u)
        # Telegram reused update_id 1008 after the dedupe window: the old row is
        # set aside (as the webhook does) and the new one stored beside it.
        self.sql("UPDATE updates SET replaced_at = ? WHERE update_id = 1008",
                 (base + 540,))
        self.post(message(1008, 506, "second life"))
        end = base + SPAN
        shape = [
            # update_id, received, state, attempts, last_error, handled, lease,
            # next_attempt
            (1001, 0, "done", 1, None, end - 725, None, None),
            (1002, 60, "dead", 5, "exited with status 3", None, None, base + 300),
            (1003, 120, "new", 0, None, None, None, None),
            (1004, 180, "leased", 1, None, None, end + 600, None),
            (1005, 240, "new", 0, None, None, None, None),
            (1006, 300, "dead", 2, "timed out after 10 s", None, None, base + 900),
            (1007, 360, "done", 1, None, end - 800, None, None),
        ]
        for uid, rec, state, att, err, handled, lease, nxt in shape:
            self.sql("UPDATE updates SET received_at = ?, state = ?, attempts = ?, "
                     "last_error = ?, handled_at = ?, lease_until = ?, "
                     "next_attempt_at = ? WHERE update_id = ?",
                     (base + rec, state, att, err, handled, lease, nxt, uid))
        self.sql("UPDATE updates SET received_at = ?, state = 'done', attempts = 1, "
                 "handled_at = ? WHERE update_id = 1008 AND replaced_at IS NOT NULL",
                 (base + 420, base + 480))
        self.sql("UPDATE updates SET received_at = ? WHERE update_id = 1008 AND "
                 "replaced_at IS NULL", (base + 540,))
        result = json.dumps({"message_id": 77, "from": {"id": 123456789,
                             "is_bot": True, "first_name": "Bot"}, "chat": {
                             "id": 501, "type": "private"}, "date": end - 605,
                             "text": "re hello one"}, separators=(",", ":"))
        calls = [
            # id, row, update_id, chat, method, params, state, attempts, created,
            # next_attempt_at, lease, last_error, sent_at, result
            (1, 1, 1001, 501, "sendMessage",
             '{"chat_id":501,"text":"re hello one"}', "sent", 0, end - 726, 0, None,
             None, end - 605, result),
            (2, 2, 1002, 502, "sendMessage", '{"chat_id":502,"text":"re second"}',
             "dead", 1, base + 90, base + 95, None, "Bad Request: chat not found",
             None, None),
            (3, 7, 1007, 505, "sendMessage", '{"chat_id":505,"text":"re two"}',
             "new", 2, end - 801, end + 30, None,
             "Internal Server Error", None, None),
            (4, 7, 1007, 505, "sendChatAction",
             '{"chat_id":505,"action":"typing"}', "sending", 0, end - 801, 0,
             end + 60, None, None, None),
        ]
        for c in calls:
            self.sql("INSERT INTO outbox (id, bot, update_row, update_id, chat_id, "
                     "method, params, state, attempts, created_at, next_attempt_at, "
                     "lease_until, last_error, sent_at, result) VALUES "
                     "(?, 'default', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", c)
        return self

    def state(self, update_id):
        return self.rows("SELECT state, attempts, last_error, next_attempt_at FROM "
                         "updates WHERE update_id = ? AND replaced_at IS NULL",
                         (update_id,))[0]

    def call(self, id_):
        return self.rows("SELECT state, attempts, next_attempt_at FROM outbox "
                         "WHERE id = ?", (id_,))[0]


class Stack(h.TempStack):
    """A temp folder for the fixtures; no servers."""

    def __init__(self, ctx, name):
        super().__init__(ctx, "tgq-cli-%s-" % name)
        self.secret = h.new_secret()
        self.n = 0
        self.logbuf = []
        self.api = None

    def start(self):
        return self

    def fixture(self, base=FIXED_BASE, populate=True):
        self.n += 1
        f = Fixture(self, "q%d" % self.n)
        return f.populate(base) if populate else f

    def log(self, data):
        if data:
            self.logbuf.append(data.decode(errors="replace"))

    def logs(self):
        return "".join(self.logbuf)

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET").replace(TOKEN, "$TOKEN")

    def stop(self):
        if self.api:
            self.api.stop()


def golden(name, text):
    """Compares text with tests/golden/cli-queue/<name>; prints a unified diff
    (the runner folds an assertion message onto one line) and fails when they
    differ.  TGQ_UPDATE_GOLDEN=1 writes the file instead."""
    path = os.path.join(GOLDEN, name)
    if os.environ.get("TGQ_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        # Written, not compared: never a pass.
        raise AssertionError("golden %s written (TGQ_UPDATE_GOLDEN is set); run "
                             "again without it to compare" % name)
    try:
        with open(path) as f:
            want = f.read()
    except OSError as e:
        raise AssertionError("golden %s: %s (TGQ_UPDATE_GOLDEN=1 writes it)" %
                             (name, e))
    if text != want:
        diff = difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                    "golden/cli-queue/" + name, "tgq output")
        for line in diff:
            print("    " + line.rstrip("\n"), flush=True)
        raise AssertionError("output differs from golden/cli-queue/%s (diff above)"
                             % name)


def ids(items):
    return [i["update_id"] for i in items]


# ------------------------------------------------------------------ status

def case_status_golden(stack):
    f = stack.fixture(base=int(time.time()) - SPAN)
    _, out, err = f.tgq("status", want=0)
    check(err == "", "stderr: %r" % err)
    golden("status.txt", out.replace(f.db, "$DB"))


def case_status_json(stack):
    f = stack.fixture(base=int(time.time()) - SPAN)
    s = f.json("status")
    check(s["updates"] == {"new": 3, "leased": 1, "done": 3, "dead": 2},
          "updates %r" % s["updates"])
    check(s["outbox"] == {"new": 1, "sending": 1, "sent": 1, "dead": 1},
          "outbox %r" % s["outbox"])
    check(s["dead"] == {"updates": 2, "calls": 1}, "dead %r" % s["dead"])
    check(s["pending"] == 4, "pending %r" % s["pending"])
    age = int(time.time()) - (f.rows("SELECT min(received_at) FROM updates WHERE "
                                     "state IN ('new', 'leased')")[0][0])
    check(abs(s["oldest_pending_age_s"] - age) <= 5,
          "oldest_pending_age_s %r, expected about %d" % (s["oldest_pending_age_s"],
                                                          age))
    check(s["last_handled_at"] == f.rows("SELECT max(handled_at) FROM updates")[0][0],
          "last_handled_at %r" % s["last_handled_at"])
    check(s["last_sent_at"] == f.rows("SELECT max(sent_at) FROM outbox")[0][0],
          "last_sent_at %r" % s["last_sent_at"])
    check(s["ok"] is True and s["database"] == f.db, "ok/database: %r" % s)


def case_status_empty(stack):
    f = stack.fixture(populate=False)
    f.post(message(1, 1, "x"))
    f.sql("DELETE FROM updates")
    _, out, _ = f.tgq("status", want=0)
    for line in ("nothing pending", "last handled    never", "last sent       never",
                 "dead            none"):
        check(line in out, "%r not in %r" % (line, out))


def case_status_bot_filter(stack):
    """Two bots configured: --bot counts its own rows only."""
    f = stack.fixture(base=int(time.time()) - SPAN)
    with open(f.conf, "w") as c:
        c.write("[bot alpha]\nhandler = echo\n[bot beta]\nhandler = echo\n")
    f.sql("UPDATE updates SET bot = CASE WHEN update_id IN (1002, 1003) THEN "
          "'beta' ELSE 'alpha' END")
    f.sql("UPDATE outbox SET bot = CASE id WHEN 2 THEN 'beta' ELSE 'alpha' END")
    env = f.env()
    del env["TGQ_WEBHOOK_SECRET"]   # it would configure a third bot, "default"
    rc, out, _ = f.tgq("--json", "--bot", "beta", "status", env=env, want=0)
    s = json.loads(out)
    check(s["bot"] == "beta" and s["updates"] == {"new": 1, "leased": 0, "done": 0,
                                                  "dead": 1} and
          s["outbox"]["dead"] == 1 and s["outbox"]["sent"] == 0,
          "beta: %r" % s)
    _, out, _ = f.tgq("--json", "--bot", "beta", "ls", env=env, want=0)
    check(sorted(ids(json.loads(out))) == [1002, 1003], "ls --bot beta: %s" % out)
    _, out, _ = f.tgq("--json", "--bot", "alpha", "retry", "--dead", env=env, want=0)
    check(json.loads(out)["updates"] == 1 and f.state(1002)[0] == "dead",
          "retry --dead of alpha touched beta: %s" % out)
    f.tgq("status", env=env, want=2)


# ------------------------------------------------------------------ ls

def case_ls_golden(stack):
    f = stack.fixture()
    _, out, err = f.tgq("ls", want=0)
    check(err == "", "stderr: %r" % err)
    golden("ls.txt", out)
    _, out, _ = f.tgq("ls", "--state", "dead", want=0)
    golden("ls-dead.txt", out)


def case_ls_filters(stack):
    f = stack.fixture()
    want = {"new": [1008, 1005, 1003], "leased": [1004],
            "done": [1008, 1007, 1001], "dead": [1006, 1002]}
    for state, uids in want.items():
        got = ids(f.json("ls", "--state", state))
        check(got == uids, "--state %s: %r, expected %r" % (state, got, uids))
    check(ids(f.json("ls")) == [1008, 1008, 1007, 1006, 1005, 1004, 1003, 1002,
                                1001], "ls: not every row newest first")
    check(ids(f.json("ls", "--kind", "callback_query")) == [1005], "--kind")
    check(ids(f.json("ls", "--kind", "edited_message")) == [1006], "--kind edited")
    check(ids(f.json("ls", "--chat", "501")) == [1003, 1001], "--chat 501")
    check(ids(f.json("ls", "--chat", "502", "--state", "dead")) == [1002],
          "--chat with --state")
    check(ids(f.json("ls", "--limit", "2")) == [1008, 1008], "--limit 2")
    check(ids(f.json("ls", "--limit", "1", "--state", "done")) == [1008],
          "--limit with --state")
    check(len(f.json("ls", "--limit", "10000")) == 9, "--limit 10000")
    _, out, _ = f.tgq("ls", "--limit", "3", want=0)
    check(len(out.splitlines()) == 4, "--limit 3 text: %r" % out)


def case_ls_calls(stack):
    """Dead calls are found by ls too, not only by show or the dead view."""
    f = stack.fixture()
    _, out, _ = f.tgq("ls", "--calls", want=0)
    golden("ls-calls.txt", out)
    _, out, err = f.tgq("ls", "--calls", "--state", "dead", want=0)
    check(err == "", "stderr: %r" % err)
    golden("ls-calls-dead.txt", out)
    rows = f.json("ls", "--calls", "--state", "dead")
    check(len(rows) == 1 and rows[0] == dict(
        rows[0], what="call", id=2, update_row=2, update_id=1002, chat_id=502,
        method="sendMessage", state="dead", attempts=1, text="re second",
        last_error="Bad Request: chat not found", sent_at=None),
          "--calls --state dead: %r" % rows)
    check([r["id"] for r in f.json("ls", "--calls")] == [4, 3, 2, 1],
          "--calls: not every call newest first")
    check([r["id"] for r in f.json("ls", "--state", "sending", "--calls")] == [4],
          "--state before --calls")
    check([r["id"] for r in f.json("ls", "--calls", "--kind", "sendChatAction")]
          == [4], "--calls --kind matches the method")
    check([r["id"] for r in f.json("ls", "--calls", "--chat", "505",
                                   "--limit", "1")] == [4], "--calls --chat --limit")
    _, out, err = f.tgq("ls", "--calls", "--chat", "999", want=1)
    check(out == "" and "no calls match" in err, "%r %r" % (out, err))
    for args in (["--state", "leased"], ["--state", "done"], ["--state", "bogus"]):
        _, _, err = f.tgq("ls", "--calls", *args, want=2)
        check("usage: tgq" in err, "ls --calls %r: no usage: %r" % (args, err))


def case_ls_bad_arguments(stack):
    f = stack.fixture()
    for args in (["--state", "bogus"], ["--state", "sending"], ["--limit", "0"],
                 ["--limit", "10001"], ["--limit", "x"], ["--limit", "5k"],
                 ["--limit", ""], ["--chat", "abc"], ["--limit"], ["--nope"],
                 ["extra"]):
        rc, out, err = f.tgq("ls", *args, want=2)
        check("usage: tgq" in err, "ls %r: no usage: %r" % (args, err))


def case_ls_nothing(stack):
    f = stack.fixture()
    _, out, err = f.tgq("ls", "--chat", "999", want=1)
    check(out == "" and "no updates match" in err, "%r %r" % (out, err))
    e = f.json("ls", "--kind", "poll", want=1)
    check(e == [], "--json: %r" % e)


def case_ls_json_fields(stack):
    f = stack.fixture()
    rows = {(r["update_id"], r["replaced_at"] is None): r for r in f.json("ls")}
    r = rows[(1003, True)]
    check(set(r) == {"id", "bot", "update_id", "received_at", "received", "kind",
                     "chat_id", "state", "attempts", "text", "last_error",
                     "replaced_at"}, "fields %r" % sorted(r))
    check(r["text"] == "this is a rather long message that goes well beyond forty "
          "characters", "full text not kept: %r" % r["text"])
    check(r == dict(r, id=3, bot="default", received_at=FIXED_BASE + 120,
                    received="2023-11-14 22:15:20", kind="message", chat_id=501,
                    state="new", attempts=0, last_error=None), "row %r" % r)
    check(rows[(1002, True)]["last_error"] == "exited with status 3",
          "dead row: %r" % rows[(1002, True)])
    check(rows[(1005, True)]["text"] == "btn:1" and
          rows[(1005, True)]["kind"] == "callback_query", "callback %r" %
          rows[(1005, True)])
    check(rows[(1008, False)]["replaced_at"] == FIXED_BASE + 540, "replaced row")


# ------------------------------------------------------------------ show

def case_show_golden(stack):
    f = stack.fixture()
    for uid, name in ((1001, "show-sent.txt"), (1002, "show-dead.txt"),
                      (1007, "show-waiting.txt"), (1008, "show-replaced.txt")):
        _, out, err = f.tgq("show", str(uid), want=0)
        check(err == "", "stderr: %r" % err)
        golden(name, out)


def case_show_contents(stack):
    """Not only the golden file: the body, the calls and Telegram's answers."""
    f = stack.fixture()
    _, out, _ = f.tgq("show", "1001", want=0)
    for text in ('"text": "hello one"', "call 1: sendMessage", "sent",
                 '"text":"re hello one"', '"message_id":77'):
        check(text in out, "%r not in show 1001" % text)
    _, out, _ = f.tgq("show", "1002", want=0)
    for text in ("Bad Request: chat not found", "exited with status 3", "dead"):
        check(text in out, "%r not in show 1002" % text)


def case_show_not_found(stack):
    f = stack.fixture()
    _, out, err = f.tgq("show", "4242", want=1)
    check("no update 4242" in err and out == "", "%r %r" % (out, err))
    e = f.json("show", "4242", want=1)
    check(e["ok"] is False and "no update 4242" in e["error"], "--json %r" % e)
    for args in ([], ["x"], ["1", "2"], ["1.5"]):
        _, _, err = f.tgq("show", *args, want=2)
        check("usage: tgq" in err, "show %r: %r" % (args, err))


def case_show_json(stack):
    f = stack.fixture()
    s = f.json("show", "1001")
    check(list(s)[0] == "ok" and s["ok"] is True, "show answers without ok: %r" %
          list(s))
    u = s["update"]
    check(u["update_id"] == 1001 and u["state"] == "done" and
          u["body"]["message"]["text"] == "hello one" and
          u["received_at"] == FIXED_BASE, "update %r" % u)
    check(len(s["calls"]) == 1, "calls %r" % s["calls"])
    c = s["calls"][0]
    check(c["params"] == {"chat_id": 501, "text": "re hello one"} and
          c["result"]["message_id"] == 77 and c["state"] == "sent" and
          c["sent_at"] == FIXED_BASE + SPAN - 605, "call %r" % c)
    check(s["other_rows"] == [], "other rows %r" % s["other_rows"])
    s = f.json("show", "1007")
    check([(c["id"], c["method"], c["state"]) for c in s["calls"]] ==
          [(3, "sendMessage", "new"), (4, "sendChatAction", "sending")],
          "1007 calls %r" % s["calls"])
    check(s["calls"][0]["last_error"] == "Internal Server Error" and
          s["calls"][0]["result"] is None, "call 3 %r" % s["calls"][0])


def case_show_replaced(stack):
    f = stack.fixture()
    s = f.json("show", "1008")
    check(s["update"]["id"] == 9 and s["update"]["replaced_at"] is None and
          s["update"]["body"]["message"]["text"] == "second life",
          "not the current row: %r" % s["update"])
    check([(r["id"], r["replaced_at"]) for r in s["other_rows"]] ==
          [(8, FIXED_BASE + 540)], "other rows %r" % s["other_rows"])
    _, out, _ = f.tgq("show", "1008", want=0)
    check("second life" in out and "row 8" in out and "replaced 2023-11-14" in out,
          "text: %r" % out)


# ------------------------------------------------------------------ retry

def case_retry_one(stack):
    f = stack.fixture()
    _, out, _ = f.tgq("retry", "1002", want=0)
    check(out == "1 update and 1 call handed back to the drain\n", "out %r" % out)
    check(f.state(1002) == ("new", 0, None, None), "update %r" % (f.state(1002),))
    check(f.call(2) == ("new", 0, 0), "call %r" % (f.call(2),))
    check(f.state(1006)[0] == "dead", "1006 was retried too")
    check(f.rows("SELECT last_error FROM outbox WHERE id = 2")[0][0] ==
          "Bad Request: chat not found", "the call's last_error was lost")
    # Again: nothing is dead now.
    _, out, err = f.tgq("retry", "1002", want=1)
    check("update 1002 is new and has no dead calls" in err, "again: %r" % err)


def case_retry_dead_call_only(stack):
    """A done update with a dead call: the call comes back, the update stays."""
    f = stack.fixture()
    f.sql("UPDATE outbox SET state = 'dead', attempts = 5 WHERE id = 1")
    r = f.json("retry", "1001")
    check(r == {"ok": True, "updates": 0, "calls": 1}, "%r" % r)
    check(f.state(1001)[0] == "done" and f.call(1) == ("new", 0, 0),
          "%r %r" % (f.state(1001), f.call(1)))


def case_retry_all_dead(stack):
    f = stack.fixture()
    _, out, _ = f.tgq("retry", "--dead", want=0)
    check(out == "2 updates and 1 call handed back to the drain\n", "out %r" % out)
    check(f.rows("SELECT count(*) FROM updates WHERE state = 'dead'")[0][0] == 0 and
          f.rows("SELECT count(*) FROM outbox WHERE state = 'dead'")[0][0] == 0,
          "dead rows left")
    check(f.state(1006) == ("new", 0, None, None), "1006 %r" % (f.state(1006),))
    _, _, err = f.tgq("retry", "--dead", want=1)
    check("nothing is dead" in err, "again: %r" % err)
    e = f.json("retry", "--dead", want=1)
    check(e["ok"] is False and "nothing is dead" in e["error"], "%r" % e)
    g = stack.fixture()
    r = g.json("retry", "--dead")
    check(r == {"ok": True, "updates": 2, "calls": 1}, "--json %r" % r)


def case_retry_nothing(stack):
    f = stack.fixture()
    _, _, err = f.tgq("retry", "1001", want=1)
    check("update 1001 is done and has no dead calls" in err, "%r" % err)
    _, _, err = f.tgq("retry", "9999", want=1)
    check("no update 9999" in err, "%r" % err)
    for args in ([], ["1002", "--dead"], ["--dead", "1002"], ["x"], ["1", "2"]):
        _, _, err = f.tgq("retry", *args, want=2)
        check("usage: tgq" in err, "retry %r: %r" % (args, err))
    check(f.state(1002)[0] == "dead", "a usage error changed the queue")


# ------------------------------------------------------------------ purge

def shape_for_purge(f):
    """Times relative to now: 'old' is two hours ago, 'recent' a minute ago."""
    now = int(time.time())
    old, recent = now - 7200, now - 60
    f.sql("UPDATE updates SET received_at = ?", (old,))
    f.sql("UPDATE outbox SET created_at = ?", (old,))
    # 1001: done long ago, its call sent long ago: both go.
    f.sql("UPDATE updates SET handled_at = ? WHERE update_id = 1001", (old,))
    f.sql("UPDATE outbox SET sent_at = ? WHERE id = 1", (old,))
    # 1007: done long ago, but its calls still wait (new, sending): stays.
    f.sql("UPDATE updates SET handled_at = ? WHERE update_id = 1007", (old,))
    # 1008 (replaced row): done recently: stays.
    f.sql("UPDATE updates SET handled_at = ? WHERE update_id = 1008 AND "
          "state = 'done'", (recent,))
    # 1006: dead, but received recently: stays under --state dead.
    f.sql("UPDATE updates SET received_at = ? WHERE update_id = 1006", (recent,))
    # A recently sent call of 1007's chat: stays.
    f.sql("INSERT INTO outbox (id, bot, update_row, update_id, chat_id, method, "
          "params, state, created_at, sent_at) VALUES (5, 'default', 7, 1007, 505, "
          "'sendMessage', '{}', 'sent', ?, ?)", (recent, recent))


def left(f):
    return (sorted(f.rows("SELECT id FROM updates")),
            sorted(f.rows("SELECT id FROM outbox")))


def case_purge_done(stack):
    f = stack.fixture()
    shape_for_purge(f)
    _, out, _ = f.tgq("purge", "--older-than", "1h", want=0)
    check(out == "purged 1 done update and 1 sent call, older than 1h\n",
          "out %r" % out)
    upd, calls = left(f)
    check(upd == [(i,) for i in (2, 3, 4, 5, 6, 7, 8, 9)], "updates left %r" % upd)
    check(calls == [(2,), (3,), (4,), (5,)], "calls left %r" % calls)
    r = f.json("purge", "--older-than", "1h")
    check(r["updates"] == 0 and r["calls"] == 0 and r["state"] == "done",
          "second purge %r" % r)
    # With a shorter age the recent ones go too, never new/leased/sending rows.
    r = f.json("purge", "--older-than", "30s")
    check(r["updates"] == 1 and r["calls"] == 1, "30s: %r" % r)
    upd, calls = left(f)
    check(upd == [(i,) for i in (2, 3, 4, 5, 6, 7, 9)] and
          calls == [(2,), (3,), (4,)], "after 30s: %r %r" % (upd, calls))


def case_purge_dead(stack):
    f = stack.fixture()
    shape_for_purge(f)
    _, out, _ = f.tgq("purge", "--older-than", "3600", "--state", "dead", want=0)
    check(out == "purged 1 dead update and 1 dead call, older than 3600\n",
          "out %r" % out)
    upd, calls = left(f)
    check(upd == [(i,) for i in (1, 3, 4, 5, 6, 7, 8, 9)], "updates left %r" % upd)
    check(calls == [(1,), (3,), (4,), (5,)], "calls left %r" % calls)


def case_purge_batches(stack):
    """More than one batch of 500: all of them go, in several transactions."""
    f = stack.fixture(base=int(time.time()) - SPAN)
    old = int(time.time()) - 86400 - 600
    f.sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE "
          "i < 1203) INSERT INTO updates (bot, update_id, received_at, kind, "
          "chat_id, body, state, handled_at) SELECT 'default', 50000 + i, ?, "
          "'message', 9, '{\"update_id\":' || (50000 + i) || '}', 'done', ? "
          "FROM n", (old, old))
    r = f.json("purge", "--older-than", "1d")
    check(r["updates"] == 1203, "purged %r" % r)


def case_purge_bad_arguments(stack):
    f = stack.fixture()
    for args in (["--older-than", "1x"], ["--older-than", "-5"],
                 ["--older-than", ""], ["--older-than", "1h", "--state", "new"],
                 ["--older-than", "1h", "--state", "leased"], ["--state", "done"],
                 [], ["--older-than"], ["--older-than", "99999d"],
                 ["--older-than", "1h", "extra"]):
        _, _, err = f.tgq("purge", *args, want=2)
        check("usage: tgq" in err, "purge %r: %r" % (args, err))
    check(left(f)[0] == [(i,) for i in range(1, 10)], "a usage error deleted rows")


# ------------------------------------------------------------------ the rest

def case_no_queue(stack):
    f = stack.fixture(populate=False)
    for args in (["status"], ["ls"], ["show", "1"], ["retry", "--dead"],
                 ["retry", "1"], ["purge", "--older-than", "1h"]):
        _, out, err = f.tgq(*args, want=1)
        check("no queue there" in err and out == "", "%r: %r" % (args, err))
        e = f.json(*args, want=1)
        check(e["ok"] is False and "no queue there" in e["error"], "%r" % e)
    check(not os.path.exists(f.db), "tgq created the queue file")


def case_help(stack):
    f = stack.fixture(populate=False)
    for cmd in COMMANDS:
        for flag in ("--help", "-h"):
            _, out, err = f.tgq(cmd, flag, want=0)
            check(out.startswith("usage: tgq [-c config] [--bot NAME] [--json] " +
                                 cmd) and err == "", "%s %s: %r" % (cmd, flag, out))
    check(not os.path.exists(f.db), "--help opened the queue")


# ------------------------------------------------------------------ retry + drain

class DrainStack(Stack):
    """A fixture queue and the fake Bot API, for tgq-drain --once."""

    def start(self):
        from fake_botapi import FakeBotAPI
        self.api = FakeBotAPI(tokens={TOKEN: "default"}, limits=False)
        self.api.start()
        return self

    def drain(self, f, **env):
        token_file = os.path.join(f.dir, "bot-token")
        with open(token_file, "w") as t:
            t.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        e = f.env(TGQ_BOT_TOKEN_FILE=token_file, TGQ_API_URL=self.api.url,
                  TGQ_LOG_LEVEL="info", **env)
        r = subprocess.run([os.path.join(self.ctx.bindir, "tgq-drain"), "--once"],
                           stdin=subprocess.DEVNULL, capture_output=True, env=e,
                           timeout=60, cwd=f.dir)
        self.log(r.stdout + r.stderr)
        check(r.returncode == 0, "tgq-drain --once exited %d: %s" %
              (r.returncode, self.redact(r.stderr.decode(errors="replace")[-800:])))


HANDLER = """#!/bin/sh
# Fails while the flag file exists, else answers like the echo handler.
[ -e "$0.broken" ] && { echo 'handler broken' >&2; exit 3; }
body=$(cat)
chat=$(printf '%s' "$body" | sed -n 's/.*"chat":{"id":\\(-\\{0,1\\}[0-9]*\\).*/\\1/p')
printf '{"method":"sendMessage","chat_id":%s,"text":"fixed"}\\n' "$chat"
"""


def case_retry_then_drain(stack):
    f = stack.fixture(populate=False)
    handler = os.path.join(f.dir, "handler.sh")
    with open(handler, "w") as hf:
        hf.write(HANDLER)
    os.chmod(handler, 0o755)
    open(handler + ".broken", "w").close()
    env = dict(TGQ_HANDLER="exec:" + handler, TGQ_MAX_ATTEMPTS=1)
    f.post(message(3001, 7301, "please answer"))
    stack.drain(f, **env)
    st = f.state(3001)
    check(st[0] == "dead" and "exited with status 3" in (st[2] or ""),
          "after the broken handler: %r" % (st,))
    check(not stack.api.calls("sendMessage"), "something was sent")
    os.unlink(handler + ".broken")      # the operator fixes the handler
    _, out, _ = f.tgq("retry", "3001", want=0)
    check(out == "1 update and 0 calls handed back to the drain\n", "%r" % out)
    stack.drain(f, **env)
    check(f.state(3001)[0] == "done", "update %r" % (f.state(3001),))
    rows = f.rows("SELECT state, method, json_extract(params, '$.text'), "
                  "json_extract(result, '$.chat.id') FROM outbox WHERE "
                  "update_id = 3001")
    check(rows == [("sent", "sendMessage", "fixed", 7301)], "outbox %r" % rows)
    calls = [c for c in stack.api.calls("sendMessage")
             if c["params"].get("chat_id") == 7301]
    check(len(calls) == 1 and calls[0]["params"]["text"] == "fixed",
          "the fake saw %r" % calls)
    # And show tells the story: the call sent, with Telegram's answer.
    s = f.json("show", "3001")
    check(s["calls"][0]["state"] == "sent" and
          s["calls"][0]["result"]["chat"]["id"] == 7301, "show %r" % s["calls"])


def case_retry_dead_call_then_drain(stack):
    """A call Telegram rejected (dead), retried, sent by the next drain."""
    f = stack.fixture(populate=False)
    f.post(message(3002, 7302, "echo me"))
    stack.api.script([{"status": 400, "description": "Bad Request: chat not found"}],
                     method="sendMessage", chat_id=7302)
    stack.drain(f)
    check(f.rows("SELECT state, last_error FROM outbox WHERE update_id = 3002") ==
          [("dead", "Bad Request: chat not found")], "not dead: %r" %
          f.rows("SELECT state, last_error FROM outbox WHERE update_id = 3002"))
    _, out, _ = f.tgq("retry", "3002", want=0)
    check(out == "0 updates and 1 call handed back to the drain\n", "%r" % out)
    stack.drain(f)
    check(f.rows("SELECT state FROM outbox WHERE update_id = 3002") == [("sent",)],
          "not sent: %r" % f.rows("SELECT state, last_error FROM outbox"))


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.bindir, "tgq")):
        return []
    cases = [
        ("status_golden", case_status_golden),
        ("status_json_counts", case_status_json),
        ("status_empty", case_status_empty),
        ("status_bot_filter", case_status_bot_filter),
        ("ls_golden", case_ls_golden),
        ("ls_filters_and_limit", case_ls_filters),
        ("ls_bad_arguments_exit_2", case_ls_bad_arguments),
        ("ls_nothing_matches_exit_1", case_ls_nothing),
        ("ls_json_fields", case_ls_json_fields),
        ("ls_calls_dead_and_all", case_ls_calls),
        ("show_golden", case_show_golden),
        ("show_contents", case_show_contents),
        ("show_not_found_exit_1", case_show_not_found),
        ("show_json", case_show_json),
        ("show_replaced_update_id", case_show_replaced),
        ("retry_one_update", case_retry_one),
        ("retry_dead_call_only", case_retry_dead_call_only),
        ("retry_all_dead", case_retry_all_dead),
        ("retry_nothing_exit_1", case_retry_nothing),
        ("purge_done_older_than", case_purge_done),
        ("purge_dead", case_purge_dead),
        ("purge_batches", case_purge_batches),
        ("purge_bad_arguments_exit_2", case_purge_bad_arguments),
        ("no_queue_exit_1", case_no_queue),
        ("help_exit_0", case_help),
    ]
    out = [("cli-queue", lambda: Stack(ctx, "queue"), cases)]
    if os.path.exists(os.path.join(ctx.bindir, "tgq-drain")):
        out.append(("cli-queue-drain", lambda: DrainStack(ctx, "drain"),
                    [("retry_then_drain_sends", case_retry_then_drain),
                     ("retry_dead_call_then_drain", case_retry_dead_call_then_drain)]))
    return out
