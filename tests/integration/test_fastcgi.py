"""tgq-webhook's request threads, seen from a FastCGI client of our own: kept
connections (FCGI_KEEP_CONN, what nginx's fastcgi_keep_conn sends) serve request
after request; idle kept connections never keep a new connection waiting, up to the
`threads` limit; the pool shrinks again when they close; SIGTERM ends a process
whose threads wait on idle kept connections.

nginx cannot be made to hold a given number of idle connections, so these cases
talk FastCGI to the socket themselves (tests/harness.py runs nginx with the shipped
keepalive upstream in every other group)."""

import json
import os
import signal
import socket
import struct
import time

import harness as h


Skip = h.Skip


FCGI_BEGIN_REQUEST, FCGI_END_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT = 1, 3, 4, 5, 6
FCGI_RESPONDER, FCGI_KEEP_CONN = 1, 1


check = h.check


def _record(rtype, content, request_id=1):
    return struct.pack(">BBHHBB", 1, rtype, request_id, len(content), 0, 0) + content


def _pair(name, value):
    def size(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode()
    return size(len(name)) + size(len(value)) + name + value


class FcgiConnection:
    """One FastCGI connection to a unix socket, one request at a time."""

    def __init__(self, path, keep=True, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.keep = keep

    def send(self, params, body):
        flags = FCGI_KEEP_CONN if self.keep else 0
        out = _record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", FCGI_RESPONDER, flags))
        pairs = b"".join(_pair(k, v) for k, v in params.items())
        out += _record(FCGI_PARAMS, pairs) + _record(FCGI_PARAMS, b"")
        if body:
            out += _record(FCGI_STDIN, body)
        out += _record(FCGI_STDIN, b"")
        self.sock.sendall(out)

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


class Stack(h.TempStack):
    def __init__(self, ctx, threads):
        super().__init__(ctx, "tgq-fastcgi-")
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_THREADS": threads}     # None: the default
        if ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        self.webhook = h.Webhook(ctx.binary, self.tmpdir, env, 1, "webhook")
        self.webhooks = [self.webhook]
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

    def post(self, conn):
        """Sends one update on conn; returns its update_id."""
        self.next_id += 1
        body = json.dumps({"update_id": self.next_id, "message": {
            "message_id": 1, "date": 1718000000, "text": "hi",
            "chat": {"id": 42, "type": "private"}}}).encode()
        conn.send({"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/telegram/webhook",
                   "REQUEST_URI": "/telegram/webhook", "CONTENT_TYPE": "application/json",
                   "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
                   "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": self.secret}, body)
        return self.next_id

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
    """40 kept connections each send an update and then stay open, idle (more than
    the pool starts with, and than the 16 fixed threads of old); a new connection
    is still answered at once, and the kept ones answer again afterwards."""
    kept, _ = stack.kept_connections(40)
    peak = stack.threads()
    fresh = stack.connect(keep=False, timeout=5)
    t0 = time.monotonic()
    stack.post(fresh)
    try:
        code = fresh.answer()
    except socket.timeout:
        raise AssertionError("a new connection waited over 5 s behind 40 idle ones")
    waited = time.monotonic() - t0
    check(code == 200, "new connection answered %d" % code)
    for c in kept:
        stack.post(c)
        check(c.answer() == 200, "a kept connection's second update not 200")
    check(peak >= 40, "%d threads for 40 open connections" % peak)
    stack.notes.append("40 idle kept connections: %d threads; a new connection "
                       "answered in %.1f ms" % (peak, waited * 1000))


def case_pool_shrinks(stack):
    """Once the kept connections close, the threads that served them leave: at
    most 16 stay waiting for new connections (plus the main and writer threads)."""
    for c in stack.open:
        c.close()
    stack.open = []
    deadline = time.monotonic() + 10
    while stack.threads() > 16 + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    check(stack.threads() <= 16 + 2, "%d threads 10 s after every connection "
          "closed" % stack.threads())
    # and it still serves
    c = stack.connect()
    stack.post(c)
    check(c.answer() == 200, "no 200 after the pool shrank")


def case_sigterm_with_idle_kept_connections(stack):
    """SIGTERM while threads wait on idle kept connections: the process exits
    within the grace period, the updates it answered are stored."""
    kept, ids = stack.kept_connections(8)
    pid = stack.webhook.pids[0]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 8
    while not h._pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(h._pid_gone(pid), "still running 8 s after SIGTERM")
    for c in kept:
        got = c.sock.recv(1)
        check(got == b"", "a kept connection not closed by the exit")
    stored = stack.queue.query("SELECT count(*) FROM updates WHERE update_id "
                               "BETWEEN ? AND ?", (ids[0], ids[-1]))[0][0]
    check(stored == 8, "%d of the 8 answered updates stored" % stored)
    stack.webhook.pids = []
    stack.webhook.start()


def case_thread_limit_holds(stack):
    """threads = 4: four idle kept connections take every thread, and no fifth
    thread starts; a fifth connection is served once one of the four has been
    idle for a second (tgq-webhook closes it: nginx drops a closed connection
    from its pool), not after nginx's keepalive_timeout."""
    kept, _ = stack.kept_connections(4)
    check(stack.threads() <= 4 + 2, "%d threads with threads = 4" % stack.threads())
    fifth = stack.connect(keep=False, timeout=0.3)
    t0 = time.monotonic()
    stack.post(fifth)
    try:
        fifth.answer()
        raise AssertionError("a fifth connection was served at once with 4 "
                             "threads, all held")
    except socket.timeout:
        pass
    fifth.sock.settimeout(5)
    check(fifth.answer() == 200, "the fifth connection not served")
    waited = time.monotonic() - t0
    check(waited < 3, "the fifth connection waited %.1f s" % waited)
    check(stack.threads() <= 4 + 2, "%d threads with threads = 4" % stack.threads())
    closed = 0
    for c in kept:
        c.sock.settimeout(0.5)
        try:
            closed += c.sock.recv(1) == b""
        except socket.timeout:
            pass
    check(closed >= 1, "no idle kept connection was closed")
    stack.notes.append("threads = 4, all held by idle kept connections: a fifth "
                       "connection served after %.2f s; %d idle ones closed" %
                       (waited, closed))


def case_idle_kept_connections_stay_open(stack):
    """While threads are left, an idle kept connection stays open (3 s here) and
    serves its next update."""
    c = stack.connect()
    stack.post(c)
    check(c.answer() == 200, "update not 200")
    time.sleep(3)
    stack.post(c)
    check(c.answer() == 200, "the kept connection did not serve after 3 s idle")


def groups(ctx):
    return [
        ("fastcgi-pool", lambda: Stack(ctx, None),
         [("kept_connection_serves_many", case_kept_connection_serves_many),
          ("idle_kept_connections_do_not_block", case_idle_kept_connections_do_not_block),
          ("pool_shrinks", case_pool_shrinks),
          ("idle_kept_connections_stay_open", case_idle_kept_connections_stay_open),
          ("sigterm_with_idle_kept_connections", case_sigterm_with_idle_kept_connections)]),
        ("fastcgi-limit", lambda: Stack(ctx, 4),
         [("thread_limit_holds", case_thread_limit_holds)]),
    ]
