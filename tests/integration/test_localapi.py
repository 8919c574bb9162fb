"""Integration cases for tgq-drain's local Bot API (listen): updates posted
through real nginx and tgq-webhook, served by the real tgq-drain --follow to a
plain HTTP client, and calls passed through to the fake Bot API on 127.0.0.1.

Groups:
  localapi-updates  getUpdates with Telegram's semantics: bodies byte for byte,
                    an offset confirms, a negative offset, limit, a parked poll
                    woken by a webhook POST, 409 for a second poller, 401 for
                    a wrong token, allowed_users keeps updates out
  localapi-calls    webhook methods answered locally; calls passed through and
                    Telegram's answer (a 400 too) returned unchanged; a 429
                    waited out, or past hold_limit answered 429; a 5 MB upload
                    byte-exact at the fake; a download passed through as it
                    comes (first bytes before Telegram sent the rest, HEAD,
                    a bot that leaves, Telegram cutting it, bounded memory);
                    metrics
"""

import hashlib
import http.client
import json
import os
import socket
import stat
import threading
import time
import urllib.parse

import harness as h
import test_drain as td
from fake_botapi import file_content

TOKEN = td.TOKEN
SEND_TIMEOUT_S = 4
WRONG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_x"
Skip = h.Skip
check = h.check


class ApiStack(td.Stack):
    """The drain stack, with one tgq-drain --follow serving the local API."""

    def __init__(self, ctx, name, limits=True, **env):
        super().__init__(ctx, name, limits=limits)
        self.port = h.free_port()
        self.drain_over = dict(TGQ_HANDLER="pull",
                               TGQ_LISTEN="127.0.0.1:%d" % self.port, **env)
        self.follower = None

    def start(self):
        super().start()
        self.restart()
        return self

    def restart(self, **env):
        if self.follower is not None:
            rc = self.follower.stop()
            check(rc == 0, "tgq-drain --follow exited %d" % rc)
        over = dict(self.drain_over)
        over.update(env)
        self.follower = self.drain("follow", **over)
        if over["TGQ_LISTEN"].startswith("/"):
            h.wait_path(over["TGQ_LISTEN"])
        else:
            h.wait_port(self.port, proc=self.follower.proc)

    def stop(self):
        try:
            if self.follower is not None and self.follower.proc.poll() is None:
                self.follower.stop()
        finally:
            super().stop()

    def call(self, method, params=None, how="json", token=TOKEN, timeout=30):
        """One call to the local API: (status, raw body bytes)."""
        path = "/bot%s/%s" % (token, method)
        params = params or {}
        if how == "get":
            q = urllib.parse.urlencode(params)
            r = h.request(self.port, "GET", path + ("?" + q if q else ""),
                          timeout=timeout)
        elif how == "form":
            r = h.request(self.port, "POST", path, {
                "Content-Type": "application/x-www-form-urlencoded"},
                urllib.parse.urlencode(params).encode(), timeout=timeout)
        else:
            r = h.request(self.port, "POST", path, {
                "Content-Type": "application/json"},
                json.dumps(params).encode(), timeout=timeout)
        return r.status, r.body

    def jcall(self, method, params=None, **kw):
        status, body = self.call(method, params, **kw)
        return status, json.loads(body.decode())

    def states(self, uids):
        return {u: s for u, s in self.queue.query(
            "SELECT update_id, state FROM updates WHERE update_id IN (%s)" %
            ",".join(str(u) for u in uids))}


def posted(stack, n, chat=5001, text="hi"):
    uids = stack.uids(n)
    for u in uids:
        stack.post(u, chat, text)
    return uids


def drain_all(stack):
    """Confirms whatever waits, so that a case starts from an empty line."""
    status, ans = stack.jcall("getUpdates", {"offset": -1})
    if ans["result"]:
        stack.jcall("getUpdates", {"offset": ans["result"][-1]["update_id"] + 1})


# ---- localapi-updates -------------------------------------------------------------

def case_bodies_offset_limit(stack):
    """Bodies byte for byte inside {"ok":true,"result":[...]}; served again until
    an offset confirms them (then done); limit; query, form and JSON alike."""
    drain_all(stack)
    uids = posted(stack, 3)
    status, raw = stack.call("getUpdates")
    want = b'{"ok":true,"result":[' + b",".join(
        td.update(u, 5001, "hi") for u in uids) + b"]}"
    check(status == 200 and raw == want, "getUpdates answered %d %r, expected %r"
          % (status, raw[:300], want[:300]))
    status, raw2 = stack.call("getUpdates", how="get")
    check(raw2 == want, "unconfirmed updates not served again: %r" % raw2[:200])
    status, ans = stack.jcall("getUpdates", {"limit": "1", "offset": str(uids[1])},
                              how="form")
    check([u["update_id"] for u in ans["result"]] == [uids[1]],
          "offset %d limit 1 gave %r" % (uids[1], ans))
    check(stack.states(uids) == {uids[0]: "done", uids[1]: "new", uids[2]: "new"},
          "after offset %d: %r" % (uids[1], stack.states(uids)))
    status, ans = stack.jcall("getUpdates", {"offset": uids[2] + 1}, how="get")
    check(ans == {"ok": True, "result": []}, "after confirming all: %r" % ans)
    check(set(stack.states(uids).values()) == {"done"}, "rows: %r" %
          stack.states(uids))
    check(stack.api.calls() == [], "getUpdates reached the fake: %r" %
          stack.api.calls()[:3])


def case_negative_offset(stack):
    """offset -1: only the last update; the ones before it are forgotten."""
    drain_all(stack)
    uids = posted(stack, 3, chat=5002)
    status, ans = stack.jcall("getUpdates", {"offset": -1})
    check([u["update_id"] for u in ans["result"]] == [uids[2]],
          "offset -1 gave %r" % ans)
    check(stack.states(uids) == {uids[0]: "done", uids[1]: "done", uids[2]: "new"},
          "after offset -1: %r" % stack.states(uids))
    stack.jcall("getUpdates", {"offset": uids[2] + 1})


def case_late_arrival_not_lost(stack):
    """An update committed after a later one was handed out is not confirmed
    by the offset that follows the later one: it is handed out next."""
    drain_all(stack)
    early, late = stack.uids(2)
    stack.post(late, 5004, "second")
    status, ans = stack.jcall("getUpdates")
    check([u["update_id"] for u in ans["result"]] == [late], "first: %r" % ans)
    stack.post(early, 5005, "first, late")
    status, ans = stack.jcall("getUpdates", {"offset": late + 1})
    check([u["update_id"] for u in ans["result"]] == [early],
          "after offset %d: %r" % (late + 1, ans))
    check(stack.states([early, late]) == {early: "new", late: "done"},
          "rows: %r" % stack.states([early, late]))
    stack.jcall("getUpdates", {"offset": late + 1})
    check(stack.states([early]) == {early: "done"}, "not confirmed: %r" %
          stack.states([early]))


def background_poll(stack, params, out):
    def run():
        try:
            out.append(stack.jcall("getUpdates", params, timeout=60))
        except Exception as e:  # noqa: BLE001 - reported by the case
            out.append(e)
    t = threading.Thread(target=run)
    t.start()
    return t


def wait_parked(stack):
    """Until the drain has the poll (nothing observable but time: bounded)."""
    time.sleep(0.5)


def case_long_poll_wakes(stack):
    """A parked poll (timeout 20) answers with an update tgq-webhook committed
    after it was parked, long before its timeout."""
    drain_all(stack)
    out = []
    t = background_poll(stack, {"timeout": 20}, out)
    wait_parked(stack)
    check(not out, "the poll answered before anything came: %r" % out)
    (uid,) = posted(stack, 1, chat=5003)
    t0 = time.monotonic()
    t.join(15)
    stack.notes.append("long poll: answered %.1f ms after the webhook's 200"
                       % ((time.monotonic() - t0) * 1000))
    check(not t.is_alive(), "the parked poll did not wake within 15 s")
    status, ans = out[0]
    check(status == 200 and [u["update_id"] for u in ans["result"]] == [uid],
          "the woken poll answered %d %r" % (status, ans))
    stack.jcall("getUpdates", {"offset": uid + 1})


def case_second_poller_409(stack):
    """A second getUpdates ends the parked one with 409 Conflict."""
    drain_all(stack)
    out = []
    t = background_poll(stack, {"timeout": 20}, out)
    wait_parked(stack)
    status, ans = stack.jcall("getUpdates", {"timeout": 0})
    t.join(15)
    check(status == 200 and ans == {"ok": True, "result": []},
          "the second poller got %d %r" % (status, ans))
    check(out and out[0] == (409, {
        "ok": False, "error_code": 409, "description":
        "Conflict: terminated by other getUpdates request; make sure that only "
        "one bot instance is running"}), "the first poller got %r" % out)


def case_rate_limits_kept(stack):
    """Calls passed through keep the bot's limits: three at once to one chat
    (1 a second) all succeed, and the fake, which enforces Telegram's limits,
    answered no 429."""
    before = stack.api.count_429()
    out = []

    def send(i):
        out.append(stack.jcall("sendMessage", {"chat_id": 5100, "text": "r%d" % i}))
    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check(len(out) == 3 and all(st == 200 and a["ok"] for st, a in out),
          "answers: %r" % out)
    check(stack.api.count_429() == before, "the fake answered %d 429s" %
          (stack.api.count_429() - before))
    times = sorted(c["t"] for c in stack.calls_to(5100))
    check(len(times) == 3 and times[2] - times[0] >= 1.9,
          "three calls to one chat within %.2f s" % (times[-1] - times[0]))


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def case_unix_socket(stack):
    """listen as a unix socket path: 0660, and the API answers there."""
    path = os.path.join(stack.tmpdir, "api.sock")
    stack.restart(TGQ_LISTEN=path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        check(stat.S_ISSOCK(os.stat(path).st_mode) and mode == 0o660,
              "the socket's mode is %o" % mode)
        conn = UnixConnection(path)
        try:
            conn.request("GET", "/bot%s/getWebhookInfo" % TOKEN)
            r = conn.getresponse()
            ans = json.loads(r.read())
        finally:
            conn.close()
        check(r.status == 200 and ans["result"]["url"] == "",
              "getWebhookInfo over the socket: %d %r" % (r.status, ans))
    finally:
        stack.restart()
    check(not os.path.exists(path), "the socket was left behind")


def case_sigterm_answers_parked(stack):
    """SIGTERM: a parked poll is answered (empty), and the drain exits 0."""
    drain_all(stack)
    out = []
    t = background_poll(stack, {"timeout": 30}, out)
    wait_parked(stack)
    rc = stack.follower.stop()
    t.join(15)
    try:
        check(rc == 0, "tgq-drain --follow exited %d" % rc)
        check(out and out[0] == (200, {"ok": True, "result": []}),
              "the parked poll got %r" % out)
    finally:
        stack.follower = None
        stack.restart()


def case_wrong_token_401(stack):
    seq = len(stack.api.calls())
    for method in ("getUpdates", "sendMessage", "deleteWebhook"):
        status, ans = stack.jcall(method, {"chat_id": 1, "text": "x"},
                                  token=WRONG_TOKEN)
        check(status == 401 and ans == {"ok": False, "error_code": 401,
                                        "description": "Unauthorized"},
              "%s with a wrong token: %d %r" % (method, status, ans))
    status, ans = stack.jcall("nosuchpath/x")
    check(status == 404 and ans["error_code"] == 404, "a bad path: %d %r" %
          (status, ans))
    check(stack.api.calls(since=seq) == [], "a refused call reached the fake")


def case_allowed_users(stack):
    """With allowed_users the poller never sees another user's update; that one
    ends done with the reason, as with any handler."""
    me, other = 424242, 777001
    stack.restart(TGQ_ALLOWED_USERS=str(me), TGQ_DENY_TEXT="not for you")
    try:
        drain_all(stack)
        mine, theirs, mine2 = stack.uids(3)
        stack.post(mine, me, "hi")
        stack.post(theirs, other, "let me in")
        stack.post(mine2, me, "again")
        status, ans = stack.jcall("getUpdates")
        check([u["update_id"] for u in ans["result"]] == [mine, mine2],
              "served %r" % ans)
        rows = {u: (s, e) for u, s, e in stack.queue.query(
            "SELECT update_id, state, last_error FROM updates WHERE update_id "
            "IN (?, ?)", (theirs, mine))}
        check(rows == {theirs: ("done", "skipped: user %d is not allowed" % other),
                       mine: ("new", None)}, "rows: %r" % rows)
        # deny_text goes out through the outbox, as with any handler.
        td.wait_until(lambda: stack.calls_to(other), 15, "deny_text's answer")
        check([c["params"]["text"] for c in stack.calls_to(other)] ==
              ["not for you"], "deny_text: %r" % stack.calls_to(other))
        stack.jcall("getUpdates", {"offset": mine2 + 1})
    finally:
        stack.restart()


# ---- localapi-calls ------------------------------------------------------------------

def case_webhook_methods_local(stack):
    """setWebhook, deleteWebhook (drop_pending_updates ignored), getWebhookInfo,
    logOut and close are answered here and never reach the fake."""
    uids = posted(stack, 2, chat=6001)
    for method, params in (("setWebhook", {"url": "https://example.org/x"}),
                           ("deleteWebhook", {"drop_pending_updates": True}),
                           ("logOut", {}), ("close", {})):
        status, ans = stack.jcall(method, params)
        check(status == 200 and ans["ok"] is True and ans["result"] is True,
              "%s: %d %r" % (method, status, ans))
    check(stack.states(uids) == {u: "new" for u in uids},
          "deleteWebhook dropped updates: %r" % stack.states(uids))
    pending = stack.queue.count("state IN ('new', 'leased')")
    status, ans = stack.jcall("getWebhookInfo", how="get")
    check(ans == {"ok": True, "result": {"url": "", "has_custom_certificate": False,
                                          "pending_update_count": pending}},
          "getWebhookInfo: %r (pending %d)" % (ans, pending))
    check(stack.api.calls() == [], "webhook methods reached the fake: %r" %
          [c["method"] for c in stack.api.calls()])
    check("drop_pending_updates ignored" in stack.follower.text(),
          "the ignored drop_pending_updates is not logged")


def case_pass_through_unchanged(stack):
    """sendMessage (JSON, form, query) reaches the fake and its answer comes
    back unchanged; a call Telegram refuses comes back as its 400."""
    for i, how in enumerate(("json", "form", "get")):
        seq = len(stack.api.calls())
        status, raw = stack.call("sendMessage", {"chat_id": 7001 + i,
                                                 "text": "hello %s" % how}, how=how)
        calls = stack.api.calls(since=seq)
        check(len(calls) == 1 and calls[0]["method"] == "sendMessage" and
              str(calls[0]["params"].get("chat_id")) == str(7001 + i) and
              calls[0]["params"].get("text") == "hello %s" % how,
              "%s: the fake got %r" % (how, calls))
        ans = json.loads(raw)
        check(status == 200 and ans["ok"] is True and
              ans["result"]["text"] == "hello %s" % how and
              "message_id" in ans["result"], "%s: answered %d %r" % (how, status, raw))
    status, ans = stack.jcall("sendMessage", {"text": "no chat"})
    rec = stack.api.calls()[-1]
    check(status == 400 and ans == {"ok": False, "error_code": 400,
                                    "description": rec["description"]},
          "a refused call: %d %r (the fake said %r)" % (status, ans,
                                                         rec.get("description")))
    status, ans = stack.jcall("getMe", how="get")
    check(status == 200 and ans["ok"] is True and ans["result"]["is_bot"] is True,
          "getMe: %d %r" % (status, ans))


def case_429_waited_then_held(stack):
    """A 429 with a short retry_after is waited out and sent again (the bot
    sees only the 200); a long one comes back as the 429; a call to that chat
    the limits would hold past hold_limit is answered 429 by tgq itself."""
    stack.api.script([{"status": 429, "retry_after": 1}], method="sendmessage",
                     chat_id="8001")
    seq = len(stack.api.calls())
    status, ans = stack.jcall("sendMessage", {"chat_id": 8001, "text": "a"})
    calls = stack.api.calls(since=seq)
    check(status == 200 and ans["ok"] is True, "after a 429 of 1 s: %d %r" %
          (status, ans))
    check([c["status"] for c in calls] == [429, 200], "the fake saw %r" %
          [c["status"] for c in calls])
    stack.api.script([{"status": 429, "retry_after": 30}], method="sendmessage",
                     chat_id="8002")
    status, ans = stack.jcall("sendMessage", {"chat_id": 8002, "text": "b"})
    check(status == 429 and ans["parameters"]["retry_after"] == 30,
          "a 429 of 30 s: %d %r" % (status, ans))
    seq = len(stack.api.calls())
    status, ans = stack.jcall("sendMessage", {"chat_id": 8002, "text": "c"})
    check(status == 429 and ans["error_code"] == 429 and
          25 <= ans["parameters"]["retry_after"] <= 30,
          "a call held past hold_limit: %d %r" % (status, ans))
    check(stack.api.calls(since=seq) == [], "the held call reached the fake")


def case_5xx_and_network_error_once(stack):
    """A 5xx comes back as Telegram sent it, and an answer that does not come
    within send_timeout as 502: neither is sent again (the late one was
    executed after all).  (A connection dropped without an answer is not
    tested: libcurl itself sends again once on a kept-alive connection that
    died, which it cannot tell from one the server closed while idle.)"""
    stack.api.script([{"status": 500}], method="sendmessage", chat_id="8101")
    seq = len(stack.api.calls())
    status, ans = stack.jcall("sendMessage", {"chat_id": 8101, "text": "a"})
    check(status == 500 and ans == {"ok": False, "error_code": 500,
                                    "description": "Internal Server Error"},
          "a 500: %d %r" % (status, ans))
    stack.api.script([{"hang": SEND_TIMEOUT_S + 2}], method="sendmessage",
                     chat_id="8102")
    status, ans = stack.jcall("sendMessage", {"chat_id": 8102, "text": "b"})
    check(status == 502 and ans["error_code"] == 502 and
          ans["description"].startswith("Bad Gateway"),
          "no answer within send_timeout: %d %r" % (status, ans))
    time.sleep(3)   # the hung call ends at the fake
    calls = stack.api.calls(since=seq)
    check([c["params"]["text"] for c in calls] == ["a", "b"],
          "sent again: %r" % [c["params"]["text"] for c in calls])


def multipart(fields, files, boundary="tgqboundary7d3f"):
    out = []
    for k, v in fields.items():
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s"
                   b"\r\n" % (boundary.encode(), k.encode(), str(v).encode()))
    for k, (name, data) in files.items():
        out.append(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                   b"filename=\"%s\"\r\nContent-Type: application/octet-stream"
                   b"\r\n\r\n" % (boundary.encode(), k.encode(), name.encode()) +
                   data + b"\r\n")
    out.append(b"--%s--\r\n" % boundary.encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def case_upload_5mb(stack):
    """A 5 MB sendDocument arrives byte-exact at the fake, with its chat_id."""
    data = os.urandom(5 * 1024 * 1024)
    body, ctype = multipart({"chat_id": 9001, "caption": "five"},
                            {"document": ("five.bin", data)})
    seq = len(stack.api.calls())
    r = h.request(stack.port, "POST", "/bot%s/sendDocument" % TOKEN,
                  {"Content-Type": ctype}, body, timeout=60)
    calls = stack.api.calls(since=seq)
    check(r.status == 200 and json.loads(r.body)["ok"] is True,
          "sendDocument: %d %r" % (r.status, r.body[:200]))
    doc = calls[0]["params"].get("document") if calls else None
    check(len(calls) == 1 and calls[0]["params"].get("chat_id") == "9001" and
          isinstance(doc, dict) and doc["size"] == len(data) and
          doc["sha256"] == hashlib.sha256(data).hexdigest(),
          "the fake got %r" % [(c["method"], c["params"]) for c in calls])


def case_download(stack):
    """/file/bot<token>/<path> streams the file through, byte for byte; a
    missing one is Telegram's 404."""
    r = h.request(stack.port, "GET", "/file/bot%s/documents/file_1.bin" % TOKEN,
                  timeout=60)
    want = file_content("documents/file_1.bin")
    check(r.status == 200 and r.body == want, "download: %d, %d bytes, equal %s"
          % (r.status, len(r.body), r.body == want))
    r = h.request(stack.port, "GET", "/file/bot%s/missing/x.bin" % TOKEN)
    check(r.status == 404 and json.loads(r.body)["error_code"] == 404,
          "a missing file: %d %r" % (r.status, r.body[:200]))
    check(stack.api.downloads() == ["documents/file_1.bin", "missing/x.bin"],
          "the fake saw %r" % stack.api.downloads())


MIB = 1024 * 1024


def spooled_files(stack):
    """The unlinked temporary files the drain holds open now."""
    fd_dir = "/proc/%d/fd" % stack.follower.proc.pid
    out = []
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if "/tgq-" in target and target.endswith("(deleted)"):
            out.append(target)
    return out


def peak_rss_kib(stack):
    with open("/proc/%d/status" % stack.follower.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for the drain")


def case_download_streams(stack):
    """A download's first bytes reach the bot while Telegram is still sending
    the rest (nothing spooled), and the whole arrives byte for byte with its
    Content-Length."""
    data = os.urandom(4 * MIB)
    half = 2 * MIB
    f = stack.api.add_file(data, name="big.bin")
    hold = stack.api.hold_download(f["file_path"], at=half, timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    try:
        conn.request("GET", "/file/bot%s/%s" % (TOKEN, f["file_path"]))
        r, first = None, None
        try:
            r = conn.getresponse()
            first = r.read(half)
        except OSError as e:    # a timeout: nothing came while the fake waited
            first = e
        waiting = hold.waiting()
        spooled = spooled_files(stack)
        hold.release()
        check(r is not None and r.status == 200 and first == data[:half] and
              waiting, "while the fake held the rest: %s, %s; the fake %s" % (
                  r.status if r is not None else "no answer",
                  "%d bytes" % len(first) if isinstance(first, bytes) else
                  repr(first), "waited" if waiting else "had stopped waiting (%s)"
                  % hold.outcome))
        check(not spooled, "the download was spooled: %r" % spooled)
        rest = r.read()
        check(first + rest == data and r.getheader("Content-Length") ==
              str(len(data)), "the download: %d bytes of %d, Content-Length %s"
              % (len(first) + len(rest), len(data), r.getheader("Content-Length")))
        check(hold.done.wait(10) and hold.outcome == "sent",
              "the fake's hold: %s" % hold.outcome)
    finally:
        hold.release()
        conn.close()


def case_download_slow_reader(stack):
    """A bot that stops reading for longer than send_timeout still gets the
    whole file: a transfer paused for lack of room is not a stalled one."""
    data = os.urandom(6 * MIB)
    f = stack.api.add_file(data, name="slow.bin")
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request("GET", "/file/bot%s/%s" % (TOKEN, f["file_path"]))
        r = conn.getresponse()
        first = r.read(MIB)
        time.sleep(SEND_TIMEOUT_S + 2)
        rest = r.read()
    finally:
        conn.close()
    check(r.status == 200 and first + rest == data, "after a pause: %d, %d bytes "
          "of %d" % (r.status, len(first) + len(rest), len(data)))


def case_download_not_a_call(stack):
    """A download the bot reads slowly does not take a call's place: with
    max_in_flight = 1, a call goes through while a download waits."""
    stack.restart(TGQ_MAX_IN_FLIGHT=1)
    data = os.urandom(4 * MIB)
    f = stack.api.add_file(data, name="place.bin")
    hold = stack.api.hold_download(f["file_path"], at=MIB, timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request("GET", "/file/bot%s/%s" % (TOKEN, f["file_path"]))
        r = conn.getresponse()
        first = r.read(MIB)
        status, ans = stack.call("sendMessage", {"chat_id": 9400, "text": "beside"},
                                 timeout=10)
        waiting = hold.waiting()
        hold.release()
        rest = r.read()
        check(status == 200 and waiting, "sendMessage while a download was in "
              "flight: %d, the download %s" % (status, "still in flight" if
                                              waiting else hold.outcome))
        check(first + rest == data, "the download: %d bytes of %d" %
              (len(first) + len(rest), len(data)))
    finally:
        hold.release()
        conn.close()
        stack.restart()


def case_download_cut_by_stop(stack):
    """Stopping the drain does not wait for a download (a bot's reading speed is
    no reason to keep running): with a bot that stopped reading, the drain
    exits and the bot's answer ends short."""
    data = os.urandom(20 * MIB)
    f = stack.api.add_file(data, name="stop.bin")
    hold = stack.api.hold_download(f["file_path"], at=16 * MIB, timeout=60)
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.request("GET", "/file/bot%s/%s" % (TOKEN, f["file_path"]))
        r = conn.getresponse()
        first = r.read(256 * 1024)
        rc = stack.follower.stop(timeout=15)
        try:
            rest = r.read()
        except http.client.IncompleteRead as e:
            rest = e.partial
        check(rc == 0 and len(first + rest) < len(data) and
              first + rest == data[:len(first + rest)],
              "stopped: exit %d, %d bytes of %d" % (rc, len(first + rest),
                                                   len(data)))
    finally:
        hold.release()
        conn.close()
        stack.restart()


def case_download_head(stack):
    """HEAD of a file answers its status and length, no body; other verbs 404."""
    r = h.request(stack.port, "HEAD", "/file/bot%s/documents/file_1.bin" % TOKEN)
    check(r.status == 200 and r.body == b"" and r.headers.get("content-length") ==
          str(len(file_content("documents/file_1.bin"))),
          "HEAD: %d %r %r" % (r.status, r.headers, r.body[:100]))
    r = h.request(stack.port, "PUT", "/file/bot%s/documents/file_1.bin" % TOKEN,
                  body=b"x")
    check(r.status == 404, "PUT: %d %r" % (r.status, r.body[:200]))


def case_download_client_gone(stack):
    """A bot that goes away mid-download ends the transfer from Telegram (the
    fake sees its connection closed), and the drain serves the next requests."""
    data = os.urandom(20 * MIB)
    f = stack.api.add_file(data, name="gone.bin")
    hold = stack.api.hold_download(f["file_path"], at=16 * MIB, timeout=30)
    got = 0
    try:
        with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as s:
            s.sendall(b"GET /file/bot%s/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                      % (TOKEN.encode(), f["file_path"].encode()))
            try:
                while got < 256 * 1024:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += len(chunk)
            except OSError:
                pass
            sending = not hold.done.is_set()
            # Gone with bytes unread: the drain's next write is refused.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        check(got >= 256 * 1024 and sending, "%d bytes came before the client "
              "left, %s" % (got, "the fake still sending" if sending else
                            "after the fake's transfer ended (%s)" % hold.outcome))
        check(hold.done.wait(10) and hold.outcome in ("broken", "peer_closed"),
              "the transfer from the fake went on: %s" % hold.outcome)
    finally:
        hold.release()
    r = h.request(stack.port, "GET", "/file/bot%s/documents/file_2.bin" % TOKEN,
                  timeout=60)
    check(r.status == 200 and r.body == file_content("documents/file_2.bin"),
          "the next download: %d, %d bytes" % (r.status, len(r.body)))
    status, _ = stack.call("sendMessage", {"chat_id": 9300, "text": "still here"})
    check(status == 200, "sendMessage after: %d" % status)


def case_download_cut(stack):
    """Telegram cutting a download mid-body gives the bot a truncated answer at
    once, not a hang, and the drain logs it once."""
    data = os.urandom(3 * MIB)
    f = stack.api.add_file(data, name="cut.bin")
    hold = stack.api.hold_download(f["file_path"], at=1 * MIB, cut=True)
    log_at = len(stack.logs())
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=20)
    try:
        conn.request("GET", "/file/bot%s/%s" % (TOKEN, f["file_path"]))
        r = conn.getresponse()
        status = r.status
        try:
            body = r.read()
        except http.client.IncompleteRead as e:
            body = e.partial
    finally:
        conn.close()
    check(status == 200 and len(body) < len(data) and body == data[:len(body)],
          "a cut download: %d, %d bytes of %d" % (status, len(body), len(data)))
    td.wait_until(lambda: "a download passed through failed" in
                  stack.logs()[log_at:], 10, "the log line")
    lines = [ln for ln in stack.logs()[log_at:].splitlines()
             if "download" in ln and "failed" in ln]
    check(len(lines) == 1, "logged: %r" % lines)
    r = h.request(stack.port, "GET", "/file/bot%s/documents/file_3.bin" % TOKEN,
                  timeout=60)
    check(r.status == 200 and r.body == file_content("documents/file_3.bin"),
          "the next download: %d, %d bytes" % (r.status, len(r.body)))


def case_download_memory(stack):
    """A 20 MB download leaves the drain's peak RSS where it was, give or take
    its buffers: the file goes through, it is not held."""
    data = os.urandom(20 * MIB)
    f = stack.api.add_file(data, name="twenty.bin")
    before = peak_rss_kib(stack)
    r = h.request(stack.port, "GET", "/file/bot%s/%s" % (TOKEN, f["file_path"]),
                  timeout=120)
    after = peak_rss_kib(stack)
    check(r.status == 200 and r.body == data, "the download: %d, %d bytes" %
          (r.status, len(r.body)))
    # ASan keeps freed blocks in its quarantine (libcurl's copy of a piece
    # held while a transfer waits for room is one): no measure there.
    if not stack.ctx.asan:
        check(after - before < 8 * 1024, "peak RSS %d KiB before, %d KiB after"
              % (before, after))
    stack.notes.append("a 20 MB download: the drain's peak RSS %d KiB before, "
                       "%d KiB after" % (before, after))


API_HANDLER = r"""#!/bin/sh
# Calls the Bot API through $TGQ_API_URL and keeps the answer.
cat >/dev/null
printf '%%s' "$TGQ_API_URL" > %(out)s.url
curl -s -X POST -H 'Content-Type: application/json' \
    -d '{"chat_id":9100,"text":"via the local API"}' \
    "$TGQ_API_URL/bot%(token)s/sendMessage" > %(out)s.$$
mv %(out)s.$$ %(out)s
"""


def case_exec_handler_api_url(stack):
    """An exec: handler gets TGQ_API_URL pointing at the local API, and its
    call there reaches the fake and its answer the handler."""
    out = os.path.join(stack.tmpdir, "handler-answer")
    script = os.path.join(stack.tmpdir, "api-handler.sh")
    with open(script, "w") as f:
        f.write(API_HANDLER % {"out": out, "token": TOKEN})
    os.chmod(script, 0o755)
    drain_all(stack)    # only this case's update runs the handler
    stack.restart(TGQ_HANDLER="exec:" + script)
    try:
        posted(stack, 1, chat=9100, text="call out")
        td.wait_until(lambda: os.path.exists(out), 30, "the handler's answer")
        with open(out) as f:
            ans = json.load(f)
        with open(out + ".url") as f:
            url = f.read()
        check(url == "http://127.0.0.1:%d" % stack.port, "TGQ_API_URL=%r" % url)
        check(ans["ok"] is True and ans["result"]["text"] == "via the local API",
              "the handler got %r" % ans)
        check([c["params"]["text"] for c in stack.calls_to(9100)] ==
              ["via the local API"], "the fake got %r" % stack.calls_to(9100))
        # A bot whose updates a handler takes cannot poll them too.
        status, ans = stack.jcall("getUpdates")
        check(status == 409 and ans["description"].startswith(
            "Conflict: can't use getUpdates method while webhook is active"),
            "getUpdates with an exec: handler: %d %r" % (status, ans))
    finally:
        stack.restart()


def case_metrics(stack):
    """/metrics counts the calls passed through (since the drain started)."""
    status, _ = stack.call("sendMessage", {"chat_id": 9200, "text": "count me"})
    check(status == 200, "sendMessage: %d" % status)
    r = h.request(stack.port, "GET", "/metrics")
    text = r.body.decode()
    check(r.status == 200 and 'tgq_passthrough_calls_total{bot="default",'
          'method="sendMessage",status="200"} 1\n' in text and
          'tgq_getupdates_served_total{bot="default"}' in text and
          'tgq_passthrough_held_total{bot="default"} ' in text,
          "metrics: %r" % text[:1500])


def case_token_not_logged(stack):
    h.check_not_logged(stack.logs(), [TOKEN], "the drain's log")


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.build, "tgq-drain")):
        return []
    return [
        ("localapi-updates", lambda: ApiStack(ctx, "lapi-upd"),
         [("bodies_offset_limit", case_bodies_offset_limit),
          ("negative_offset", case_negative_offset),
          ("late_arrival_not_lost", case_late_arrival_not_lost),
          ("long_poll_wakes", case_long_poll_wakes),
          ("second_poller_409", case_second_poller_409),
          ("rate_limits_kept", case_rate_limits_kept),
          ("unix_socket", case_unix_socket),
          ("sigterm_answers_parked", case_sigterm_answers_parked),
          ("wrong_token_401", case_wrong_token_401),
          ("allowed_users", case_allowed_users),
          ("token_not_logged", case_token_not_logged)]),
        ("localapi-calls", lambda: ApiStack(ctx, "lapi-calls", limits=False,
                                            TGQ_SEND_TIMEOUT=SEND_TIMEOUT_S),
         [("webhook_methods_local", case_webhook_methods_local),
          ("pass_through_unchanged", case_pass_through_unchanged),
          ("429_waited_then_held", case_429_waited_then_held),
          ("5xx_and_network_error_once", case_5xx_and_network_error_once),
          ("upload_5mb", case_upload_5mb),
          ("download", case_download),
          ("download_streams", case_download_streams),
          ("download_slow_reader", case_download_slow_reader),
          ("download_head", case_download_head),
          ("download_client_gone", case_download_client_gone),
          ("download_cut", case_download_cut),
          ("download_memory", case_download_memory),
          ("download_not_a_call", case_download_not_a_call),
          ("download_cut_by_stop", case_download_cut_by_stop),
          ("exec_handler_api_url", case_exec_handler_api_url),
          ("metrics", case_metrics),
          ("token_not_logged", case_token_not_logged)]),
    ]
