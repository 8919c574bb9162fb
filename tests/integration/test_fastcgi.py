"""tgq-webhook's request threads, seen from a FastCGI client of our own: a
request thread serves many connections, so idle kept connections (FCGI_KEEP_CONN,
what nginx's fastcgi_keep_conn sends) cost no thread and never keep a new
connection waiting, and are closed once idle for TGQ_IDLE_TIMEOUT; requests that
arrived together are answered after one COMMIT; a request is read only once all
of it has arrived, so a peer that stops halfway or trickles a large request holds
nobody up (and is closed 10 s after its first byte); what FastCGI does not allow
closes the connection, and a parameter whose length would overflow libfcgi
closes that connection only; management records get the specification's
answers; SIGTERM ends a process with idle kept connections.

nginx cannot be made to hold a given number of idle connections or to send half a
request, so these cases talk FastCGI to the socket themselves (tests/harness.py
runs nginx with the shipped keepalive upstream in every other group)."""

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import harness as h


Skip = h.Skip


FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 1, 3, 4, 5, 6
FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE = 9, 10, 11
FCGI_RESPONDER, FCGI_AUTHORIZER, FCGI_KEEP_CONN = 1, 2, 1


check = h.check


def _record(rtype, content, request_id=1):
    return struct.pack(">BBHHBB", 1, rtype, request_id, len(content), 0, 0) + content


def _pair(name, value):
    def size(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return size(len(name)) + size(len(value)) + name + value


def _pairs(content):
    """{name: value} of FastCGI name-value pairs."""
    out, at = {}, 0

    def size():
        nonlocal at
        n = content[at]
        if n & 0x80:
            n = struct.unpack(">I", content[at:at + 4])[0] & 0x7fffffff
            at += 4
        else:
            at += 1
        return n
    while at < len(content):
        n, v = size(), size()
        out[content[at:at + n].decode()] = content[at + n:at + n + v].decode()
        at += n + v
    return out


def _begin(keep=True):
    return _record(FCGI_BEGIN_REQUEST, struct.pack(
        ">HB5x", FCGI_RESPONDER, FCGI_KEEP_CONN if keep else 0))


# Name and value lengths that libfcgi adds up in an int (nameLen + valueLen + 2):
# 2^31 - 2 and 1, and 2^30 and 2^30.
OVERFLOWING_PAIRS = {
    "2^31-2 + 1": b"\xff\xff\xff\xfe\x01" + b"A" * 19,
    "2^30 + 2^30": b"\xc0\x00\x00\x00\xc0\x00\x00\x00" + b"B" * 16,
}


class FcgiConnection:
    """One FastCGI connection to a unix socket, one request at a time."""

    def __init__(self, path, keep=True, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.keep = keep

    def request(self, params, body, role=FCGI_RESPONDER):
        """The bytes of one request, the way nginx sends it."""
        flags = FCGI_KEEP_CONN if self.keep else 0
        out = _record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", role, flags))
        pairs = b"".join(_pair(k, v) for k, v in params.items())
        out += _record(FCGI_PARAMS, pairs) + _record(FCGI_PARAMS, b"")
        for i in range(0, len(body), 65535):
            out += _record(FCGI_STDIN, body[i:i + 65535])
        return out + _record(FCGI_STDIN, b"")

    def send(self, params, body):
        self.sock.sendall(self.request(params, body))

    def closed(self, timeout):
        """Whether the server closes the connection within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def record(self):
        """The next record: (type, request id, content)."""
        _, rtype, rid, length, padding, _ = struct.unpack(">BBHHBB", self._read(8))
        return rtype, rid, self._read(length + padding)[:length]

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf

    def answer(self):
        """The status code of the response, once its END_REQUEST arrived."""
        stdout = b""
        while True:
            _, rtype, _, length, padding, _ = struct.unpack(">BBHHBB", self._read(8))
            content = self._read(length + padding)[:length]
            if rtype == FCGI_STDOUT:
                stdout += content
            elif rtype == FCGI_END_REQUEST:
                break
        head = stdout.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n"):
            if line.lower().startswith("status:"):
                return int(line.split()[1])
        return 200

    def close(self):
        self.sock.close()


class DirectWebhook:
    """One tgq-webhook process on a listening unix socket this test makes (fd 0,
    as spawn-fcgi hands it over), with its stderr in <tmpdir>/webhook.log;
    spawn-fcgi's fork mode would drop the log lines checked here."""

    def __init__(self, binary, tmpdir, env):
        self.binary = binary
        self.tmpdir = tmpdir
        self.env = h.base_env(env)
        self.socket = os.path.join(tmpdir, "webhook.sock")
        self.log = os.path.join(tmpdir, "webhook.log")
        self.proc = None
        self.pids = []

    def start(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        listener = h.unix_listener(self.socket)
        kw = h.run_user_popen_args()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary], stdin=listener.fileno(),
                                         stdout=log, stderr=log, env=self.env,
                                         cwd=self.tmpdir, **kw)
        listener.close()
        self.pids = [self.proc.pid]
        deadline = time.monotonic() + 10
        while "serving FastCGI" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise h.HarnessError("tgq-webhook did not start: %s" %
                                     self.log_text()[-300:])
            time.sleep(0.02)
        return self

    def stop(self):
        h.stop_popen(self.proc)
        self.pids = []

    def log_text(self):
        return h.read_text(self.log)


class Stack(h.TempStack):
    def __init__(self, ctx, threads, extra_env=None):
        super().__init__(ctx, "tgq-fastcgi-")
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_THREADS": threads}     # None: the default
        env.update(extra_env or {})
        if ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        self.webhook = DirectWebhook(ctx.binary, self.tmpdir, env)
        self.next_id = 1000
        self.open = []

    def start(self):
        self.webhook.start()
        return self

    def redact(self, text):
        return str(text).replace(self.secret, "<secret>")

    def logs(self):
        return self.webhook.log_text()

    def stop(self):
        for c in self.open:
            c.close()
        self.open = []
        self.webhook.stop()

    def connect(self, keep=True, timeout=10):
        c = FcgiConnection(self.webhook.socket, keep, timeout)
        self.open.append(c)
        return c

    def update_request(self, conn, text="hi", role=FCGI_RESPONDER):
        """The bytes of a request carrying a new update, for conn; returns
        (bytes, update_id)."""
        self.next_id += 1
        body = json.dumps({"update_id": self.next_id, "message": {
            "message_id": 1, "date": 1718000000, "text": text,
            "chat": {"id": 42, "type": "private"}}}).encode()
        params = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/telegram/webhook",
                  "REQUEST_URI": "/telegram/webhook", "CONTENT_TYPE": "application/json",
                  "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
                  "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": self.secret}
        return conn.request(params, body, role), self.next_id

    def post(self, conn, text="hi"):
        """Sends one update on conn; returns its update_id."""
        data, uid = self.update_request(conn, text)
        conn.sock.sendall(data)
        return uid

    def stored(self, uid):
        return self.queue.query("SELECT count(*) FROM updates WHERE update_id = ?",
                                (uid,))[0][0] == 1

    def kept_connections(self, n):
        """n kept connections, each with one update answered 200 and then idle;
        returns (connections, update_ids)."""
        kept, ids = [], []
        for _ in range(n):
            c = self.connect()
            ids.append(self.post(c))
            check(c.answer() == 200, "a kept connection's first update not 200")
            kept.append(c)
        return kept, ids

    def rows(self):
        return self.queue.query("SELECT count(*) FROM updates")[0][0]

    def threads(self):
        with open("/proc/%d/status" % self.webhook.pids[0]) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return 0


def case_kept_connection_serves_many(stack):
    """50 updates one after another on one kept connection: fifty 200s, 50 rows."""
    before = stack.rows()
    c = stack.connect()
    codes = []
    for _ in range(50):
        stack.post(c)
        codes.append(c.answer())
    check(codes == [200] * 50, "answers %r" % sorted(set(codes)))
    check(stack.rows() - before == 50, "%d rows for 50 200s" % (stack.rows() - before))


def case_idle_kept_connections_do_not_block(stack):
    """200 kept connections each send an update and then stay open, idle; a new
    connection is still answered at once, the kept ones answer again afterwards,
    and the process runs no more threads for them (main, acceptor, one request
    thread)."""
    kept, _ = stack.kept_connections(200)
    threads = stack.threads()
    fresh = stack.connect(keep=False, timeout=5)
    t0 = time.monotonic()
    stack.post(fresh)
    try:
        code = fresh.answer()
    except socket.timeout:
        raise AssertionError("a new connection waited over 5 s behind 200 idle ones")
    waited = time.monotonic() - t0
    check(code == 200, "new connection answered %d" % code)
    for c in kept:
        stack.post(c)
        check(c.answer() == 200, "a kept connection's second update not 200")
    check(threads == 3, "%d threads with 200 open connections (want 3)" % threads)
    stack.notes.append("200 idle kept connections: %d threads; a new connection "
                       "answered in %.1f ms" % (threads, waited * 1000))


def case_requests_sent_together(stack):
    """60 connections send an update each at the same moment: sixty 200s, sixty
    rows, and the connections stay open for more."""
    conns = [stack.connect() for _ in range(60)]
    sent = [stack.update_request(c) for c in conns]
    for c, (data, _) in zip(conns, sent):
        c.sock.sendall(data)
    codes = [c.answer() for c in conns]
    check(codes == [200] * 60, "answers %r" % sorted(set(codes)))
    missing = [uid for _, uid in sent if not stack.stored(uid)]
    check(not missing, "%d of 60 answered updates not stored" % len(missing))
    for c in conns[:5]:
        stack.post(c)
        check(c.answer() == 200, "a connection did not serve its next update")


def case_half_a_request_holds_nobody(stack):
    """A connection sends the first half of a request and stops: another
    connection's update is still answered at once, and the first is answered
    once its second half arrives."""
    slow = stack.connect()
    data, uid = stack.update_request(slow)
    half = len(data) // 2
    slow.sock.sendall(data[:half])
    time.sleep(0.3)
    other = stack.connect(timeout=3)
    stack.post(other)
    check(other.answer() == 200, "the other connection not answered")
    check(not stack.stored(uid), "half an update stored")
    slow.sock.sendall(data[half:])
    check(slow.answer() == 200, "the completed request not answered")
    check(stack.stored(uid), "the completed update not stored")


def case_half_a_request_is_closed(stack):
    """A connection that stops halfway through a request is closed after 10 s,
    with a log line; nothing of it is stored."""
    slow = stack.connect()
    data, uid = stack.update_request(slow)
    slow.sock.sendall(data[:len(data) // 2])
    t0 = time.monotonic()
    check(slow.closed(14), "not closed 14 s after half a request")
    waited = time.monotonic() - t0
    check(9 <= waited, "closed after %.1f s, before the 10 s" % waited)
    check("did not arrive whole" in stack.logs(), "no log line for the close")
    check(not stack.stored(uid), "half an update stored")


def case_large_request_on_kept_connection(stack):
    """An update of 300 KiB (larger than what is waited for whole) is read as it
    arrives and stored; the kept connection then serves a small one."""
    c = stack.connect()
    data, uid = stack.update_request(c, text="x" * (300 * 1024))
    c.sock.sendall(data)
    check(c.answer() == 200, "the large update not answered 200")
    length = stack.queue.query("SELECT length(body) FROM updates WHERE update_id = ?",
                               (uid,))
    check(length and length[0][0] > 300 * 1024, "the large update not stored whole")
    stack.post(c)
    check(c.answer() == 200, "no 200 after the large update")


def case_not_fastcgi_allowed_closes(stack):
    """What FastCGI without multiplexing does not allow closes the connection,
    with a log line, before anything is stored: two requests sent at once, and a
    role other than responder.  Other connections are served meanwhile."""
    two = stack.connect()
    first, uid1 = stack.update_request(two)
    second, uid2 = stack.update_request(two)
    two.sock.sendall(first + second)
    check(two.closed(5), "two requests at once: connection not closed")
    authorizer = stack.connect()
    data, uid3 = stack.update_request(authorizer, role=FCGI_AUTHORIZER)
    authorizer.sock.sendall(data)
    check(authorizer.closed(5), "an authorizer request: connection not closed")
    for uid in (uid1, uid2, uid3):
        check(not stack.stored(uid), "update %d stored" % uid)
    check("other than one responder request at a time" in stack.logs(),
          "no log line for the close")
    c = stack.connect()
    stack.post(c)
    check(c.answer() == 200, "no 200 afterwards")


def case_unkept_connection_closed_after_answer(stack):
    """Without FCGI_KEEP_CONN (lighttpd, nginx without keepalive) the connection
    is closed right after the answer."""
    c = stack.connect(keep=False)
    stack.post(c)
    check(c.answer() == 200, "update not 200")
    check(c.closed(2), "connection still open 2 s after the answer")


def case_sigterm_with_idle_kept_connections(stack):
    """SIGTERM with idle kept connections: the process exits at once, closing
    them, and the updates it answered are stored."""
    kept, ids = stack.kept_connections(8)
    proc = stack.webhook.proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        raise AssertionError("still running 8 s after SIGTERM")
    check(proc.returncode == 0, "exit status %d after SIGTERM" % proc.returncode)
    check("stopped; at most" in stack.logs(), "no log line for the stop")
    for c in kept:
        check(c.closed(2), "a kept connection not closed by the exit")
    stored = stack.queue.query("SELECT count(*) FROM updates WHERE update_id "
                               "BETWEEN ? AND ?", (ids[0], ids[-1]))[0][0]
    check(stored == 8, "%d of the 8 answered updates stored" % stored)
    stack.webhook.start()


def case_idle_kept_connections_stay_open(stack):
    """An idle kept connection stays open (3 s here) and serves its next update."""
    c = stack.connect()
    stack.post(c)
    check(c.answer() == 200, "update not 200")
    time.sleep(3)
    stack.post(c)
    check(c.answer() == 200, "the kept connection did not serve after 3 s idle")


def case_three_request_threads(stack):
    """threads = 3: 90 connections spread over three request threads, each
    sending two updates at once with the others; all answered and stored, and
    the process runs five threads (main, acceptor, three request threads)."""
    conns = [stack.connect() for _ in range(90)]
    uids = []
    for _ in range(2):
        sent = [stack.update_request(c) for c in conns]
        for c, (data, _) in zip(conns, sent):
            c.sock.sendall(data)
        codes = [c.answer() for c in conns]
        check(codes == [200] * 90, "answers %r" % sorted(set(codes)))
        uids += [uid for _, uid in sent]
    missing = [uid for uid in uids if not stack.stored(uid)]
    check(not missing, "%d of 180 answered updates not stored" % len(missing))
    check(stack.threads() == 5, "%d threads with threads = 3" % stack.threads())


def alive_and_answering(stack, what):
    """The process still runs and a new connection's update gets its 200."""
    proc = stack.webhook.proc
    check(proc.poll() is None, "tgq-webhook died (exit %r) after %s" %
          (proc.returncode, what))
    c = stack.connect(timeout=5)
    stack.post(c)
    check(c.answer() == 200, "no 200 on a new connection after %s" % what)


def case_params_overflow_closes_that_connection(stack):
    """A PARAMS record whose pair lengths make libfcgi's int overflow (2^31 - 2
    and 1; 2^30 and 2^30), alone or in a request begun on a kept connection:
    that connection is closed with one log line, nothing is stored, and the
    process answers the next connection (it used to abort in libfcgi)."""
    before = stack.rows()
    sent = 0
    for name, pair in OVERFLOWING_PAIRS.items():
        c = stack.connect()
        c.sock.sendall(_begin() + _record(FCGI_PARAMS, pair) +
                       _record(FCGI_PARAMS, b"") + _record(FCGI_STDIN, b""))
        sent += 1
        check(c.closed(5), "%s: connection not closed" % name)
        alive_and_answering(stack, "a pair of %s" % name)
        # A kept connection that served an update first, then the record cut
        # in two, the length's four bytes across two records.
        k = stack.connect()
        stack.post(k)
        check(k.answer() == 200, "%s: the first update not 200" % name)
        k.sock.sendall(_begin() + _record(FCGI_PARAMS, pair[:2]))
        time.sleep(0.2)
        k.sock.sendall(_record(FCGI_PARAMS, pair[2:]))
        sent += 1
        check(k.closed(5), "%s across records: connection not closed" % name)
        alive_and_answering(stack, "a pair of %s across records" % name)
    check(stack.rows() - before == 2 * len(OVERFLOWING_PAIRS) + 2,
          "%d rows" % (stack.rows() - before))
    lines = stack.logs().count("parameter whose length runs past")
    check(lines == sent, "%d log lines for %d closed connections" % (lines, sent))


def case_get_values_answered(stack):
    """FCGI_GET_VALUES alone on a connection is answered at once with
    FCGI_GET_VALUES_RESULT: FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS 0,
    only those asked for, each once; the connection then serves an update."""
    c = stack.connect(timeout=3)
    query = b"".join(_pair(n, "") for n in (
        "FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "FCGI_MAX_CONNS",
        "NOT_A_VARIABLE"))
    c.sock.sendall(_record(FCGI_GET_VALUES, query, 0))
    try:
        rtype, rid, content = c.record()
    except socket.timeout:
        raise AssertionError("FCGI_GET_VALUES not answered in 3 s")
    check((rtype, rid) == (FCGI_GET_VALUES_RESULT, 0),
          "answered type %d, request id %d" % (rtype, rid))
    values = _pairs(content)
    check(sorted(values) == ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"],
          "variables %r" % sorted(values))
    check(values["FCGI_MPXS_CONNS"] == "0", "FCGI_MPXS_CONNS %r" %
          values["FCGI_MPXS_CONNS"])
    for name in ("FCGI_MAX_CONNS", "FCGI_MAX_REQS"):
        check(values[name].isdigit() and int(values[name]) >= 100,
              "%s %r" % (name, values[name]))
    c.sock.sendall(_record(FCGI_GET_VALUES, _pair("FCGI_MPXS_CONNS", ""), 0))
    rtype, _, content = c.record()
    check(rtype == FCGI_GET_VALUES_RESULT and _pairs(content) ==
          {"FCGI_MPXS_CONNS": "0"}, "asked one, got %r" % content)
    stack.post(c)
    check(c.answer() == 200, "no 200 after the management records")
    stack.notes.append("FCGI_GET_VALUES_RESULT: %r" % values)


def case_unknown_management_type(stack):
    """A management record of a type FastCGI 1.0 does not define, before and in
    the middle of a request: FCGI_UNKNOWN_TYPE naming it, and the request is
    answered."""
    c = stack.connect(timeout=3)
    c.sock.sendall(_record(42, b"xyz", 0))
    try:
        rtype, rid, content = c.record()
    except socket.timeout:
        raise AssertionError("an unknown management type not answered in 3 s")
    check((rtype, rid) == (FCGI_UNKNOWN_TYPE, 0) and content[:1] == b"\x2a" and
          len(content) == 8, "answered %d, %r" % (rtype, content))
    data, uid = stack.update_request(c)
    c.sock.sendall(data[:16] + _record(43, b"", 0) +
                   _record(FCGI_GET_VALUES, _pair("FCGI_MAX_REQS", ""), 0) + data[16:])
    rtype, _, content = c.record()
    check(rtype == FCGI_UNKNOWN_TYPE and content[:1] == b"\x2b",
          "within a request: answered %d, %r" % (rtype, content))
    rtype, _, content = c.record()
    check(rtype == FCGI_GET_VALUES_RESULT and list(_pairs(content)) ==
          ["FCGI_MAX_REQS"], "within a request: answered %d, %r" % (rtype, content))
    check(c.answer() == 200, "the request around them not 200")
    check(stack.stored(uid), "its update not stored")


def case_trickled_large_request_holds_nobody(stack):
    """A request larger than what waits whole in the socket (100 KiB sent at
    once) whose rest then trickles in, a byte every 0.5 s: another connection's
    update is answered while the trickler is still sending, and the trickler is
    closed 10 s after its first byte, with a log line; nothing of it is stored.
    (It used to hold the request thread for as long as the bytes kept coming.)"""
    slow = stack.connect()
    data, uid = stack.update_request(slow, text="t" * (200 * 1024))
    state = {"closed_after": None, "sent": 0}
    start = time.monotonic()
    slow.sock.sendall(data[:100 * 1024])

    def trickle():
        # Bounded: 60 bytes, 30 s; the rest of the request would take hours.
        for i in range(60):
            time.sleep(0.5)
            try:
                slow.sock.send(data[100 * 1024 + i:100 * 1024 + i + 1])
                state["sent"] += 1
            except OSError:
                state["closed_after"] = time.monotonic() - start
                return
    t = threading.Thread(target=trickle)
    t.start()
    try:
        time.sleep(1.5)
        other = stack.connect(timeout=5)
        stack.post(other)
        try:
            code = other.answer()
        except socket.timeout:
            raise AssertionError("another connection not answered in 5 s while "
                                 "a large request trickles in")
        check(code == 200, "the other connection answered %d" % code)
        check(t.is_alive() and state["closed_after"] is None,
              "the trickler was no longer sending when the other was answered")
    finally:
        t.join(35)
    closed = state["closed_after"]
    check(closed is not None, "the trickler not closed after %d bytes" % state["sent"])
    check(9 <= closed <= 14, "the trickler closed %.1f s after its first byte" % closed)
    check("did not arrive whole in 10 s" in stack.logs(), "no log line for the close")
    check(not stack.stored(uid), "part of the trickled update stored")
    stack.notes.append("trickler closed %.1f s after its first byte" % closed)


def case_too_large_request_closes(stack):
    """A request larger than max_body and 64 KiB (the limit of what is taken off
    the socket): closed with a log line, nothing stored; the next is answered."""
    c = stack.connect()
    data, uid = stack.update_request(c, text="L" * (1024 * 1024 + 100 * 1024))
    try:
        c.sock.sendall(data)
    except OSError:
        pass    # closed while sending
    check(c.closed(10), "a request of 1.1 MiB: connection not closed")
    check("larger than max_body" in stack.logs(), "no log line for the close")
    check(not stack.stored(uid), "the too large update stored")
    alive_and_answering(stack, "a too large request")


def case_idle_kept_connection_closed(stack):
    """TGQ_IDLE_TIMEOUT=2: a kept connection idle after its answer, and one that
    never sent anything, are closed after 2 s (not before); one that sends an
    update every second stays open."""
    kept, _ = stack.kept_connections(1)
    silent = stack.connect()
    busy = stack.connect()
    t0 = time.monotonic()
    for _ in range(4):
        stack.post(busy)
        check(busy.answer() == 200, "the busy connection not answered")
        time.sleep(0.8)
    check(kept[0].closed(4), "the idle kept connection not closed")
    waited = time.monotonic() - t0
    check(waited >= 1.5, "the idle kept connection closed after %.1f s" % waited)
    check(silent.closed(2), "the silent connection not closed")
    stack.post(busy)
    check(busy.answer() == 200, "the busy connection closed while in use")


def groups(ctx):
    return [
        ("fastcgi-conns", lambda: Stack(ctx, None),
         [("kept_connection_serves_many", case_kept_connection_serves_many),
          ("idle_kept_connections_do_not_block", case_idle_kept_connections_do_not_block),
          ("requests_sent_together", case_requests_sent_together),
          ("half_a_request_holds_nobody", case_half_a_request_holds_nobody),
          ("half_a_request_is_closed", case_half_a_request_is_closed),
          ("large_request_on_kept_connection", case_large_request_on_kept_connection),
          ("not_fastcgi_allowed_closes", case_not_fastcgi_allowed_closes),
          ("unkept_connection_closed_after_answer",
           case_unkept_connection_closed_after_answer),
          ("idle_kept_connections_stay_open", case_idle_kept_connections_stay_open),
          ("sigterm_with_idle_kept_connections", case_sigterm_with_idle_kept_connections)]),
        ("fastcgi-threads", lambda: Stack(ctx, 3),
         [("three_request_threads", case_three_request_threads)]),
        ("fastcgi-records", lambda: Stack(ctx, None),
         [("params_overflow_closes_that_connection",
           case_params_overflow_closes_that_connection),
          ("get_values_answered", case_get_values_answered),
          ("unknown_management_type", case_unknown_management_type),
          ("trickled_large_request_holds_nobody",
           case_trickled_large_request_holds_nobody),
          ("too_large_request_closes", case_too_large_request_closes)]),
        ("fastcgi-idle", lambda: Stack(ctx, None, {"TGQ_IDLE_TIMEOUT": "2"}),
         [("idle_kept_connection_closed", case_idle_kept_connection_closed)]),
    ]
