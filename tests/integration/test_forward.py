"""Integration cases for the http handler (handler = http://HOST:PORT/PATH):
updates posted through real nginx and tgq-webhook, forwarded by the real
tgq-drain to small http.server bots on 127.0.0.1, whose webhook replies go to
the fake Bot API (tests/fake_botapi.py).

Groups:
  forward        the body byte for byte and the secret header; forward_secret_file;
                 per-chat order with chats in parallel; a webhook reply sent by tgq;
                 a 500 for one update makes only it dead; a bot slower than
                 handler_timeout is retried, not dead
  forward-down   a refused connection charges no attempt, the bot is marked down in
                 tgq status, /metrics and /ready, and resumes when it answers; a
                 bot stopped for 2 minutes: the queue waits, nothing goes dead
"""

import http.server
import json
import os
import socket
import socketserver
import threading
import time

import harness as h
from test_drain import Stack, TOKEN, wait_until, token_not_logged

check = h.check
BOT = "default"


def update(uid, chat_id, text, spacing=""):
    """An update as Telegram might format it; spacing goes between the tokens, so
    that a forward that re-encoded it would show."""
    s = spacing
    return ('{%s"update_id":%s%d,"message":{"message_id":%d,"date":1700000000,'
            '"chat":{"id":%d,"type":"private"},"from":{"id":%d,"is_bot":false,'
            '"first_name":"T\\u00e9"},"text":%s"%s"}%s}' % (
                s, s, uid, uid, chat_id, abs(chat_id), s, text, s)).encode()


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that left (the drain timed out, a connection closed under a
    stopped bot) is expected here, not a traceback."""
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


class QuietUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class Bot:
    """A webhook server of a bot: records every POST (path, headers, body, when)
    and answers with answer(record) -> (status, headers, body).  Keeps
    connections alive (HTTP/1.1).  Stopped, its port refuses connections.
    With unix_path it listens on that unix socket instead of a port."""

    def __init__(self, answer=None, port=None, unix_path=None):
        self.answer = answer or (lambda rec: (200, {}, b""))
        self.unix_path = unix_path
        self.port = None if unix_path else port or h.free_port()
        self.lock = threading.Lock()
        self.records = []
        self.in_flight = {}       # chat -> requests in progress
        self.max_parallel = 0     # most requests in progress at once
        self.chat_overlap = 0     # times a chat had two in progress
        self.server = None
        self.thread = None
        self.conns = set()

    def start(self):
        bot = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                http.server.BaseHTTPRequestHandler.setup(self)
                with bot.lock:
                    bot.conns.add(self.connection)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                try:
                    chat = json.loads(body)["message"]["chat"]["id"]
                except (ValueError, KeyError, TypeError):
                    chat = None
                rec = {"path": self.path, "headers": dict(self.headers.items()),
                       "body": body, "t": time.monotonic(), "chat": chat,
                       "peer": self.client_address}
                with bot.lock:
                    bot.records.append(rec)
                    bot.in_flight[chat] = bot.in_flight.get(chat, 0) + 1
                    if bot.in_flight[chat] > 1:
                        bot.chat_overlap += 1
                    bot.max_parallel = max(bot.max_parallel,
                                           sum(bot.in_flight.values()))
                try:
                    status, headers, out = bot.answer(rec)
                finally:
                    with bot.lock:
                        bot.in_flight[chat] -= 1
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        if self.unix_path:
            self.server = QuietUnixServer(self.unix_path, Handler)
            # the drain may run as the unprivileged worker user
            os.chmod(self.unix_path, 0o666)
        else:
            self.server = QuietServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """As when its process dies: the port closed, kept-alive connections too."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns, self.conns = self.conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def url(self):
        return "http://127.0.0.1:%d/bot/hook" % self.port

    def texts(self, chat=None):
        with self.lock:
            return [json.loads(r["body"])["message"]["text"] for r in self.records
                    if chat is None or r["chat"] == chat]

    def count(self):
        with self.lock:
            return len(self.records)


def text_of(rec):
    return json.loads(rec["body"])["message"]["text"]


class ForwardStack(Stack):
    """The drain stack with a bot beside it; stop() stops the bot too."""

    def __init__(self, ctx, name):
        Stack.__init__(self, ctx, name, limits=False)
        self.bots = []

    def bot(self, answer=None, port=None, unix_path=None):
        b = Bot(answer, port, unix_path)
        self.bots.append(b)
        return b

    def follow(self, bot_url, **env):
        env.setdefault("TGQ_HANDLER", bot_url)
        env.setdefault("TGQ_RATE_CHAT", "0")
        env.setdefault("TGQ_RATE_GLOBAL", "0")
        return self.drain("follow", **env)

    def get(self, path):
        return h.request(self.server.port, "GET", "/telegram/" + path)

    def stop(self):
        for b in self.bots:
            b.stop()
        Stack.stop(self)


def states(stack, uids):
    rows = stack.queue.query(
        "SELECT update_id, state, attempts, last_error FROM updates WHERE "
        "update_id BETWEEN ? AND ?", (min(uids), max(uids)))
    return {r[0]: r[1:] for r in rows if r[0] in uids}


def all_done(stack, uids):
    s = states(stack, uids)
    return len(s) == len(uids) and all(v[0] == "done" for v in s.values())


def stop_drain(d):
    check(d.stop() == 0, "tgq-drain --follow did not stop cleanly: %s" %
          d.text()[-600:])


# ------------------------------------------------------------------ forward

def case_body_and_secret(stack):
    """The bot gets the stored body byte for byte (spacing, escapes and all), as a
    POST with Content-Type application/json and the webhook's secret."""
    bot = stack.bot().start()
    uids = stack.uids(3)
    bodies = [update(uids[0], 501, "plain"),
              update(uids[1], 502, "sp\\u00e0ced \\ud83d\\ude00", spacing="  "),
              update(uids[2], 503, "\\\"quoted\\\"\\n", spacing="\n")]
    for b in bodies:
        stack.post_body(b.decode())
    d = stack.follow(bot.url)
    wait_until(lambda: all_done(stack, uids), 20, "the three updates handled")
    stop_drain(d)
    got = {json.loads(r["body"])["update_id"]: r for r in bot.records}
    for uid, body in zip(uids, bodies):
        rec = got.get(uid)
        check(rec is not None, "update %d never reached the bot" % uid)
        check(rec["body"] == body, "update %d: the bot got %r, posted %r" %
              (uid, rec["body"][:80], body[:80]))
        check(rec["path"] == "/bot/hook", "path %r" % rec["path"])
        hd = {k.lower(): v for k, v in rec["headers"].items()}
        check(hd.get("content-type") == "application/json",
              "content-type %r" % hd.get("content-type"))
        check(hd.get("x-telegram-bot-api-secret-token") == stack.secret,
              "the secret header is not the webhook's secret")
    check(len(bot.records) == 3, "the bot got %d requests for 3 updates" %
          len(bot.records))
    token_not_logged(stack)


def case_forward_secret_file(stack):
    """forward_secret_file: its value goes in the header instead of the webhook's
    secret, which the bot never sees."""
    bot = stack.bot().start()
    path = os.path.join(stack.tmpdir, "forward.secret")
    with open(path, "w") as f:
        f.write("Fwd_secret-123\n")
    os.chmod(path, 0o644)
    (uid,) = stack.uids(1)
    stack.post(uid, 504, "with forward secret")
    d = stack.follow(bot.url, TGQ_FORWARD_SECRET_FILE=path)
    wait_until(lambda: all_done(stack, [uid]), 20, "the update handled")
    stop_drain(d)
    hd = {k.lower(): v for k, v in bot.records[-1]["headers"].items()}
    check(hd.get("x-telegram-bot-api-secret-token") == "Fwd_secret-123",
          "the header does not hold forward_secret_file's value")
    check("Fwd_secret-123" not in stack.logs(), "the forward secret was logged")


def case_unix_socket(stack):
    """handler_socket: the bot listens on a unix socket; the drain connects
    there, sends the URL's host and path, and the update is done; a webhook
    reply comes back through it as through TCP."""
    path = os.path.join(stack.tmpdir, "bot.sock")

    def answer(rec):
        return 200, {"Content-Type": "application/json"}, (
            '{"method":"sendMessage","chat_id":%d,"text":"via socket"}' %
            rec["chat"]).encode()
    bot = stack.bot(answer, unix_path=path).start()
    uids = stack.uids(2)
    stack.post(uids[0], 511, "over a unix socket")
    stack.post(uids[1], 512, "and another")
    d = stack.follow("http://bot.local/bot/hook", TGQ_HANDLER_SOCKET=path)
    wait_until(lambda: all_done(stack, uids), 20, "both updates handled")
    wait_until(lambda: len(stack.calls_to(511)) == 1, 20, "the webhook reply sent")
    stop_drain(d)
    check(sorted(bot.texts()) == ["and another", "over a unix socket"],
          "the bot got %r" % bot.texts())
    hd = {k.lower(): v for k, v in bot.records[0]["headers"].items()}
    check(bot.records[0]["path"] == "/bot/hook" and hd.get("host") == "bot.local",
          "path %r, Host %r" % (bot.records[0]["path"], hd.get("host")))
    check(hd.get("x-telegram-bot-api-secret-token") == stack.secret,
          "the secret header is not the webhook's secret")


def case_order_parallel(stack):
    """8 chats x 6 updates, a bot taking 30 ms each: each chat's updates reach
    it one at a time and in order, different chats at once (up to handlers)."""
    def answer(rec):
        time.sleep(0.03)
        return 200, {}, b"ok"
    bot = stack.bot(answer).start()
    chats = [600 + i for i in range(8)]
    posted = {c: [] for c in chats}
    uids = []
    for n in range(6):
        for c in chats:
            (uid,) = stack.uids(1)
            uids.append(uid)
            posted[c].append("m%d" % uid)
            stack.post(uid, c, "m%d" % uid)
    d = stack.follow(bot.url, TGQ_HANDLERS=4)
    wait_until(lambda: all_done(stack, uids), 60, "48 updates handled")
    stop_drain(d)
    for c in chats:
        check(bot.texts(c) == posted[c], "chat %d got %r, posted %r" %
              (c, bot.texts(c), posted[c]))
    check(bot.chat_overlap == 0, "a chat had two updates at the bot at once "
          "(%d times)" % bot.chat_overlap)
    check(2 <= bot.max_parallel <= 4, "at most %d updates at the bot at once; "
          "expected 2 to 4 with handlers = 4" % bot.max_parallel)
    peers = set(r["peer"] for r in bot.records)
    check(len(peers) <= 8, "48 updates came over %d connections: not kept alive" %
          len(peers))


def case_webhook_reply(stack):
    """A 2xx whose body is a JSON object with a method is a call tgq sends (here
    spread over lines, as frameworks print it); a body without one asks nothing."""
    def answer(rec):
        text = text_of(rec)
        if text == "reply":
            return 200, {"Content-Type": "application/json"}, (
                '{\n  "method": "sendMessage",\n  "chat_id": %d,\n'
                '  "text": "webhook reply"\n}\n' % rec["chat"]).encode()
        return 200, {"Content-Type": "application/json"}, b'{"ok":true}'
    bot = stack.bot(answer).start()
    (u1, u2) = stack.uids(2)
    stack.post(u1, 701, "reply")
    stack.post(u2, 702, "no reply")
    d = stack.follow(bot.url)
    wait_until(lambda: stack.calls_to(701), 20, "the webhook reply sent")
    wait_until(lambda: all_done(stack, [u1, u2]), 20, "both handled")
    time.sleep(0.3)
    stop_drain(d)
    calls = stack.calls_to(701)
    check(len(calls) == 1 and calls[0]["params"].get("text") == "webhook reply",
          "the fake got %r" % calls)
    check(not stack.calls_to(702), "a body without a method was sent as a call")
    rows = stack.outbox("update_id = ?", (u1,))
    check(len(rows) == 1 and rows[0][1] == "sent",
          "outbox rows of the reply: %r" % rows)


def case_500_one_dead(stack):
    """A bot answering 500 for one update: after max_attempts only that update is
    dead, with the status and the body's first bytes; the rest of its chat and
    the other chats go on."""
    def answer(rec):
        if text_of(rec) == "poison":
            return 500, {}, b"Traceback: KeyError 'text'" + b"x" * 500
        return 200, {}, b""
    bot = stack.bot(answer).start()
    uids = stack.uids(4)
    stack.post(uids[0], 801, "first")
    stack.post(uids[1], 801, "poison")
    stack.post(uids[2], 801, "after")
    stack.post(uids[3], 802, "other chat")
    d = stack.follow(bot.url, TGQ_MAX_ATTEMPTS=2)
    wait_until(lambda: states(stack, uids).get(uids[2], ("",))[0] == "done", 30,
               "the chat's update after the dead one handled")
    stop_drain(d)
    s = states(stack, uids)
    check(s[uids[1]][0] == "dead" and s[uids[1]][1] == 2,
          "the 500 update: %r" % (s[uids[1]],))
    err = s[uids[1]][2] or ""
    check(err.startswith("HTTP 500: Traceback: KeyError 'text'") and len(err) < 400,
          "last_error %r" % err[:120])
    for u in (uids[0], uids[2], uids[3]):
        check(s[u][0] == "done", "update %d: %r" % (u, s[u]))
    check(bot.texts().count("poison") == 2, "poison sent %d times" %
          bot.texts().count("poison"))


def case_slow_retried(stack):
    """A bot slower than handler_timeout: the update is not charged, the bot is
    probed, and the update is delivered once the bot answers in time."""
    seen = {"slow": 0}

    def answer(rec):
        if text_of(rec) == "slow":
            seen["slow"] += 1
            if seen["slow"] == 1:
                time.sleep(2.5)
        return 200, {}, b""
    bot = stack.bot(answer).start()
    (uid,) = stack.uids(1)
    stack.post(uid, 901, "slow")
    d = stack.follow(bot.url, TGQ_HANDLER_TIMEOUT=1, TGQ_MAX_ATTEMPTS=1)
    wait_until(lambda: all_done(stack, [uid]), 30, "the slow update handled")
    stop_drain(d)
    s = states(stack, [uid])[uid]
    check(s[0] == "done" and s[1] == 1, "the slow update: %r" % (s,))
    check(seen["slow"] >= 2, "sent %d times" % seen["slow"])
    check("no answer within 1000 ms" in d.text(), "the drain's log does not say "
          "why: %r" % d.text()[-500:])


def case_hanging_update_dead(stack):
    """An update the bot never answers in time while it answers others (its
    handler hangs on that one) is charged: retried, then dead; the bot's other
    updates go on and the bot is not left marked down."""
    release = threading.Event()

    def answer(rec):
        if text_of(rec) == "hang":
            release.wait(3)     # longer than handler_timeout
        return 200, {}, b""
    bot = stack.bot(answer).start()
    (hang,) = stack.uids(1)
    stack.post(hang, 961, "hang")
    d = stack.follow(bot.url, TGQ_HANDLER_TIMEOUT=1, TGQ_MAX_ATTEMPTS=2,
                     TGQ_HANDLERS=4)
    others = []
    deadline = time.monotonic() + 60
    # other chats keep the bot busy (and answering) until the hang ends dead
    while time.monotonic() < deadline and len(others) < 300:
        if states(stack, [hang])[hang][0] == "dead":
            break
        (u,) = stack.uids(1)
        stack.post(u, 962 + len(others) % 5, "other %d" % len(others))
        others.append(u)
        time.sleep(0.2)
    release.set()
    wait_until(lambda: all_done(stack, others), 30, "the other updates handled")
    stop_drain(d)
    s = states(stack, [hang])[hang]
    check(s[0] == "dead" and s[1] == 2,
          "the update the bot hangs on: %r after %d others" % (s, len(others)))
    check("no answer within 1000 ms, while the bot answered other updates" in
          (s[2] or ""), "its last_error: %r" % (s[2],))
    check(stack.queue.query("SELECT count(*) FROM bot_down") == [(0,)],
          "the bot was left marked down: %r" %
          stack.queue.query("SELECT * FROM bot_down"))


def case_429_and_503_not_charged(stack):
    """429 with Retry-After: the bot gets nothing until then, nothing charged,
    not marked down; 503 (a proxy in front of a bot that is down): not charged,
    marked down until a probe gets an answer."""
    seen = {}

    def answer(rec):
        text = text_of(rec)
        seen.setdefault(text, []).append(time.monotonic())
        if len(seen[text]) == 1 and text == "busy":
            return 429, {"Retry-After": "2"}, b"slow down"
        if len(seen[text]) == 1 and text == "proxied":
            return 503, {}, b"<html>502 Bad Gateway</html>"
        return 200, {}, b""
    bot = stack.bot(answer).start()
    (u1, u2) = stack.uids(2)
    stack.post(u1, 961, "busy")
    d = stack.follow(bot.url, TGQ_MAX_ATTEMPTS=1)
    wait_until(lambda: all_done(stack, [u1]), 20, "the update after the 429")
    check(seen["busy"][1] - seen["busy"][0] >= 1.9, "sent again %.2f s after "
          "Retry-After: 2" % (seen["busy"][1] - seen["busy"][0]))
    check(states(stack, [u1])[u1][1] == 1, "a 429 was charged: %r" %
          (states(stack, [u1])[u1],))
    check("asked to wait 2 s" in d.text() and "marked down" not in d.text(),
          "the drain's log after a 429: %r" % d.text()[-400:])
    stack.post(u2, 962, "proxied")
    wait_until(lambda: all_done(stack, [u2]), 20, "the update after the 503")
    stop_drain(d)
    check(states(stack, [u2])[u2][1] == 1, "a 503 was charged: %r" %
          (states(stack, [u2])[u2],))
    check("HTTP 503): marked down" in d.text() and "resumed" in d.text(),
          "the drain's log after a 503: %r" % d.text()[-400:])
    check(stack.queue.query("SELECT count(*) FROM bot_down") == [(0,)],
          "still marked down")


def case_once_mode(stack):
    """--once forwards what is due and exits (under ASan its leaks are checked
    at exit); with the bot down it exits too, leaving the update uncharged."""
    def answer(rec):
        return 200, {}, ('{"method":"sendMessage","chat_id":%d,"text":"once"}' %
                         rec["chat"]).encode()
    bot = stack.bot(answer).start()
    (u1, u2) = stack.uids(2)
    stack.post(u1, 951, "once")
    stack.run_once(TGQ_HANDLER=bot.url, TGQ_RATE_CHAT=0)
    check(all_done(stack, [u1]) and len(stack.calls_to(951)) == 1,
          "--once: %r, calls %r" % (states(stack, [u1]), stack.calls_to(951)))
    bot.stop()
    stack.post(u2, 952, "once down")
    t0 = time.monotonic()
    stack.run_once(TGQ_HANDLER=bot.url, TGQ_MAX_ATTEMPTS=1)
    s = states(stack, [u2])[u2]
    check(s[0] == "new" and s[1] == 0, "--once with the bot down: %r" % (s,))
    check(time.monotonic() - t0 < 45, "--once with the bot down took %.0f s" %
          (time.monotonic() - t0))
    check(stack.queue.query("SELECT bot FROM bot_down") == [(BOT,)],
          "bot_down after --once: %r" % stack.queue.query("SELECT * FROM bot_down"))
    bot2 = stack.bot(port=bot.port).start()
    stack.run_once(TGQ_HANDLER=bot.url)
    check(all_done(stack, [u2]) and bot2.texts() == ["once down"],
          "--once after the bot came back: %r" % (states(stack, [u2]),))
    check(stack.queue.query("SELECT count(*) FROM bot_down") == [(0,)],
          "the mark stayed after the bot answered")


# ------------------------------------------------------------------ down

def metric(stack, name):
    body = stack.get("metrics").body.decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def case_refused_marked_down(stack):
    """Nothing listens at the bot's port: no attempt is charged, nothing goes
    dead, and the bot is shown down by tgq status, /metrics and /ready; once it
    listens, everything is delivered and the mark goes."""
    port = h.free_port()
    uids = stack.uids(3)
    for n, u in enumerate(uids):
        stack.post(u, 1001 + n, "while down %d" % n)
    d = stack.follow("http://127.0.0.1:%d/hook" % port, TGQ_MAX_ATTEMPTS=1)
    wait_until(lambda: stack.queue.query("SELECT count(*) FROM bot_down")[0][0]
               == 1, 20, "the bot marked down")
    time.sleep(2)     # a few probes
    s = states(stack, uids)
    check(all(v[0] == "new" and v[1] == 0 for v in s.values()),
          "updates while the bot is down: %r" % s)
    status = stack.tgq("status")
    check("bot down        default" in status and "its updates wait" in status,
          "tgq status: %r" % status)
    js = json.loads(stack.tgq("--json", "status"))
    check(len(js["bots_down"]) == 1 and js["bots_down"][0]["bot"] == BOT and
          "onnect" in js["bots_down"][0]["last_error"],
          "tgq --json status: %r" % js.get("bots_down"))
    check(metric(stack, 'tgq_bot_down{bot="%s"}' % BOT) == 1,
          "/metrics tgq_bot_down is not 1")
    r = stack.get("ready")
    check(r.status == 503 and b'"bot_down"' in r.body, "/ready: %r" % r)
    # Waiting for long makes the queue stalled too: the down bot is the why.
    stack.queue.execute("UPDATE updates SET received_at = received_at - 3600 "
                        "WHERE state = 'new'")
    r = stack.get("ready")
    check(r.status == 503 and b'"bot_down"' in r.body, "/ready, stalled too: %r" % r)
    bot = stack.bot(port=port).start()
    wait_until(lambda: all_done(stack, uids), 60, "the updates after the bot came")
    wait_until(lambda: stack.queue.query("SELECT count(*) FROM bot_down")[0][0]
               == 0, 10, "the mark gone")
    stop_drain(d)
    check(sorted(bot.texts()) == ["while down 0", "while down 1", "while down 2"],
          "the bot got %r" % bot.texts())
    check(metric(stack, 'tgq_bot_down{bot="%s"}' % BOT) == 0,
          "/metrics tgq_bot_down is not 0 after")
    r = stack.get("ready")
    check(r.status == 200, "/ready after: %r" % r)
    check("not charged" in d.text() and "resumed" in d.text(),
          "the drain's log: %r" % d.text()[-600:])
    name = "tgq_forward_duration_seconds"
    count = metric(stack, '%s_count{bot="%s"}' % (name, BOT))
    check(count is not None and count >= 3, "%s_count %r" % (name, count))
    body = stack.get("metrics").body.decode()
    check("# TYPE %s histogram" % name in body, "no histogram TYPE line")
    buckets = [float(line.split()[1]) for line in body.splitlines()
               if line.startswith('%s_bucket{bot="%s",' % (name, BOT))]
    check(len(buckets) == 17 and buckets == sorted(buckets) and
          buckets[-1] == count, "%s buckets %r, count %r" % (name, buckets, count))


def case_stopped_two_minutes(stack):
    """The bot stops for 2 minutes while updates keep coming: the queue waits,
    none is charged or dead (max_attempts = 1), all arrive once it is back, each
    chat in order."""
    bot = stack.bot().start()
    d = stack.follow(bot.url, TGQ_MAX_ATTEMPTS=1, TGQ_HANDLERS=2)
    first = stack.uids(4)
    for n, u in enumerate(first):
        stack.post(u, 1101 + n % 2, "before %d" % u)
    wait_until(lambda: all_done(stack, first), 20, "the first updates")
    bot.stop()
    during = []
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end:
        (u,) = stack.uids(1)
        during.append(u)
        stack.post(u, 1101 + u % 2, "during %d" % u)
        time.sleep(10)
    s = states(stack, during)
    check(all(v[0] in ("new", "leased") and v[1] <= 1 for v in s.values()),
          "updates while the bot was stopped: %r" % s)
    check(stack.queue.count("state = 'dead'") == 0, "dead updates while stopped")
    bot2 = stack.bot(port=bot.port).start()
    wait_until(lambda: all_done(stack, during), 60, "the updates after the restart")
    stop_drain(d)
    check(stack.queue.count("state = 'dead'") == 0, "dead updates")
    for chat in (1101, 1102):
        want = ["during %d" % u for u in during if 1101 + u % 2 == chat]
        check(bot2.texts(chat) == want, "chat %d got %r, posted %r" %
              (chat, bot2.texts(chat), want))


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.build, "tgq-drain")):
        return []
    return [
        ("forward", lambda: ForwardStack(ctx, "forward"),
         [("body_byte_exact_secret", case_body_and_secret),
          ("forward_secret_file", case_forward_secret_file),
          ("unix_socket", case_unix_socket),
          ("order_per_chat_parallel", case_order_parallel),
          ("webhook_reply_sent", case_webhook_reply),
          ("500_only_that_update_dead", case_500_one_dead),
          ("slower_than_timeout_retried", case_slow_retried),
          ("hanging_update_dead", case_hanging_update_dead),
          ("429_and_503_not_charged", case_429_and_503_not_charged),
          ("once_mode", case_once_mode)]),
        ("forward-down", lambda: ForwardStack(ctx, "fwdown"),
         [("refused_not_charged_marked_down", case_refused_marked_down),
          ("stopped_two_minutes_waits", case_stopped_two_minutes)]),
    ]
