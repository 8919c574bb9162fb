"""Integration cases for tgq-webhook behind three front ends:

  nginx     real nginx with deploy/nginx/tgq.conf + spawn-fcgi (2 processes)
  lighttpd  real lighttpd with deploy/lighttpd/tgq.conf + spawn-fcgi (1 process)
  cgi       real lighttpd with mod_cgi running a copy of the binary per request
            (plus a few requests that run the binary directly with a CGI
            environment, for what no server lets through: a bad Content-Length,
            routing by REQUEST_URI alone)

Each front end serves the same paths:
  /telegram/...  the shipped snippet (cgi: an alias to the binary)
  /a/b/...       a deeper prefix, same backend
  /tight/...     a second backend with TGQ_MAX_BODY=1K, TGQ_BUSY_TIMEOUT=300 and
                 TGQ_STALL_AFTER=1s (the first has TGQ_STALL_AFTER=1h)

Most cases are rows of TABLE: request -> expected answer -> expected rows.
"""

import json
import os
import random
import shutil
import subprocess
import threading
import time
import http.client

import harness as h

MiB = 1 << 20
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


Skip = h.Skip
check = h.check


# ---------------------------------------------------------------- update bodies

def message(uid, chat_id=1001, text="hello", msg_id=None):
    return json.dumps({
        "update_id": uid,
        "message": {
            "message_id": msg_id or uid % 100000,
            "from": {"id": 42, "is_bot": False, "first_name": "Ada"},
            "chat": {"id": chat_id, "type": "private", "first_name": "Ada"},
            "date": 1700000000,
            "text": text,
        },
    }, ensure_ascii=False).encode()


def callback_query(uid, chat_id=-1002003004005):
    return json.dumps({
        "update_id": uid,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 42, "is_bot": False, "first_name": "Ada"},
            "message": {"message_id": 7, "date": 1700000000,
                        "chat": {"id": chat_id, "type": "supergroup",
                                 "title": "tgq"},
                        "text": "pick one"},
            "chat_instance": "-123",
            "data": "yes",
        },
    }).encode()


def padded(uid, size):
    """A message update of exactly size bytes."""
    base = message(uid, text="")
    pad = size - len(base)
    assert pad >= 0
    return message(uid, text="x" * pad)


# ---------------------------------------------------------------- front ends

class Stack(h.TempStack):
    """One front end with its backends, temp folder and queue file."""
    name = "?"

    def __init__(self, ctx, procs=1, db_dir=None):
        super().__init__(ctx, "tgq-%s-" % self.name)
        self.procs = procs
        self.secret = h.new_secret()
        self.db_dir = db_dir or self.tmpdir
        self.db = os.path.join(self.db_dir, "queue.db")
        self.queue = h.Queue(self.db)
        self.statuses = []
        self.webhooks = []
        self.server = None
        self.prefix, self.deep, self.tight = "/telegram", "/a/b", "/tight"

    def env(self, **over):
        # stall_after: an hour, so that the rows the cases leave pending (no drain
        # runs here) do not make …/ready answer 503; /tight has 1 s.
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_LOG_LEVEL": "info", "TGQ_STALL_AFTER": "1h"}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        env.update(over)
        return env

    def tight_env(self):
        return self.env(TGQ_MAX_BODY="1K", TGQ_BUSY_TIMEOUT="300",
                        TGQ_RETRY_AFTER="7", TGQ_STALL_AFTER="1s")

    @property
    def port(self):
        return self.server.port

    def req(self, method, path, headers=None, body=None, timeout=30.0):
        r = h.request(self.port, method, path, headers, body, timeout=timeout)
        self.statuses.append(r.status)
        return r

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET")

    def start_webhooks(self):
        main = h.Webhook(self.ctx.binary, self.tmpdir, self.env(), self.procs, "webhook")
        tight = h.Webhook(self.ctx.binary, self.tmpdir, self.tight_env(), 1, "tight")
        self.webhooks = [main, tight]
        for w in self.webhooks:
            w.start()
        return main, tight

    def stop_webhooks(self):
        for w in self.webhooks:
            w.stop()

    def stop(self):
        if self.server:
            self.server.stop()
        self.stop_webhooks()

    def logs(self):
        return "".join(w.log_text() for w in self.webhooks)


class NginxStack(Stack):
    name = "nginx"

    def start(self):
        main, tight = self.start_webhooks()
        extra = """
        location /a/b/ {
            include fastcgi_params;
            fastcgi_pass unix:%s;
        }
        location /tight/ {
            include fastcgi_params;
            fastcgi_pass unix:%s;
        }""" % (main.socket, tight.socket)
        self.server = h.Nginx(self.tmpdir, main.socket, extra).start()
        return self


class LighttpdStack(Stack):
    name = "lighttpd"

    def start(self):
        main, tight = self.start_webhooks()
        snippet = os.path.join(self.tmpdir, "tgq.conf")
        body = """include "%s"
fastcgi.server += (
    "/a/b/" => (( "socket" => "%s", "check-local" => "disable" )),
    "/tight/" => (( "socket" => "%s", "check-local" => "disable" )),
)
""" % (snippet, main.socket, tight.socket)
        self.server = h.Lighttpd(self.tmpdir, body)
        self.server.write_snippet(main.socket)
        self.server.start()
        return self


class LighttpdSpawnStack(Stack):
    """lighttpd starting tgq-webhook itself: the shipped deploy/lighttpd/tgq-spawn.conf
    with its paths pointed at the test's; the secret reaches the program through
    lighttpd's environment and "bin-copy-environment", as that file says."""
    name = "lighttpd-spawn"

    def start(self):
        self.deep = self.tight = None
        with open(os.path.join(h.ROOT, "deploy", "lighttpd", "tgq-spawn.conf")) as f:
            text = f.read()
        subst = {"/run/lighttpd/tgq-webhook.sock": os.path.join(self.tmpdir, "spawn.sock"),
                 "/usr/local/sbin/tgq-webhook": self.ctx.binary,
                 "/var/lib/tgq/queue.db": self.db}
        for old, new in subst.items():
            if old not in text:
                raise h.HarnessError("tgq-spawn.conf does not name %s" % old)
            text = text.replace(old, new)
        if self.ctx.asan:
            text = text.replace('"bin-copy-environment" => (',
                                '"bin-copy-environment" => ( "ASAN_OPTIONS", '
                                '"UBSAN_OPTIONS",')
        snippet = os.path.join(self.tmpdir, "tgq.conf")
        with open(snippet, "w") as f:
            f.write(text)
        self.server = h.Lighttpd(self.tmpdir, 'include "%s"\n' % snippet)
        env = {"TGQ_WEBHOOK_SECRET": self.secret}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        self.server.start(env)
        return self

    def logs(self):
        return h.read_text(os.path.join(self.tmpdir, "lighttpd-error.log"))


def lighttpd_env_array(env):
    return "(\n%s\n)" % ",\n".join('    "%s" => "%s"' % (k, v) for k, v in env.items())


class CgiStack(Stack):
    """lighttpd + mod_cgi: /telegram, /a/b and /tight are aliases of a copy of the
    binary, so SCRIPT_NAME is the prefix and PATH_INFO the rest."""
    name = "cgi"

    def start(self):
        cgibin = h.make_subdir(self.tmpdir, "cgi-bin")
        self.cgi_binary = os.path.join(cgibin, "tgq-webhook")
        shutil.copy(self.ctx.binary, self.cgi_binary)
        os.chmod(self.cgi_binary, 0o755)
        b = self.cgi_binary
        body = """server.modules += ( "mod_alias", "mod_setenv", "mod_cgi" )
server.max-request-size = 1024
alias.url = ( "/telegram" => "%s", "/a/b" => "%s", "/tight" => "%s" )
cgi.assign = ( "/tgq-webhook" => "" )
setenv.set-environment = %s
$HTTP["url"] =~ "^/tight/" {
    setenv.set-environment = %s
}
""" % (b, b, b, lighttpd_env_array(self.env()), lighttpd_env_array(self.tight_env()))
        self.server = h.Lighttpd(self.tmpdir, body)
        os.chmod(self.server.conf, 0o600)
        self.server.start()
        return self

    def logs(self):
        # mod_cgi sends the CGI's stderr to lighttpd's error log; direct runs
        # append theirs to direct.log.
        text = ""
        for name in ("lighttpd-error.log", "direct.log"):
            try:
                with open(os.path.join(self.tmpdir, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def direct(self, env, body=b""):
        """Runs the binary as plain CGI, without a server (stdin is a pipe)."""
        full = self.env()
        full.update({"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
                     "REMOTE_ADDR": "127.0.0.1"})
        full.update({k: v if v is None else
                     v.format(p=self.prefix, s=self.secret) for k, v in env.items()})
        full = {k: v for k, v in full.items() if v is not None}
        kw = {}
        if h.IS_ROOT:
            kw = {"user": h.RUN_USER, "group": h.RUN_USER, "extra_groups": []}
        r = subprocess.run([self.cgi_binary], input=body, capture_output=True,
                           env=h.base_env(full), timeout=30, cwd=self.tmpdir, **kw)
        with open(os.path.join(self.tmpdir, "direct.log"), "ab") as f:
            f.write(r.stderr)
        resp = h.parse_http_response(r.stdout, cgi=True)
        self.statuses.append(resp.status)
        return resp


# ---------------------------------------------------------------- the table

# Paths: {p} the shipped prefix, {deep} a deeper one, {tight} the small-limit
# backend, {s} the secret.  Headers: S = the right secret header, J = JSON type.
S = {SECRET_HEADER: "{s}"}
J = {"Content-Type": "application/json"}
SJ = dict(S, **J)
WRONG = {SECRET_HEADER: "not-the-secret", "Content-Type": "application/json"}
U = object()  # placeholder: a valid update with this case's update_id

NOT_FOUND, NOT_ALLOWED = b"not found\n", b"method not allowed\n"
UNAUTH, TOO_LARGE = b"unauthorized\n", b"payload too large\n"
UNSUPPORTED, OK = b"unsupported media type\n", b"ok\n"
BAD = b"bad request: "  # a prefix: the reason follows

# (name, method, path, headers, body, status, answer body, answer headers, rows)
# rows: how many rows this case's update_id has afterwards (and the total grows by
# as much).  An answer body ending in ": " is a prefix.
TABLE = [
    # 1. routes
    ("route_prefix_only_404", "GET", "{p}/", {}, None, 404, NOT_FOUND, {}, 0),
    ("route_webhookx_404", "POST", "{p}/webhookx", SJ, U, 404, NOT_FOUND, {}, 0),
    ("route_other_404", "GET", "{p}/status", {}, None, 404, NOT_FOUND, {}, 0),
    ("route_extra_segments_404", "POST", "{p}/webhook/{s}/x", SJ, U, 404, NOT_FOUND,
     {}, 0),
    ("route_under_health_404", "GET", "{p}/health/x", {}, None, 404, NOT_FOUND, {}, 0),
    ("route_under_ready_404", "GET", "{p}/ready/x", {}, None, 404, NOT_FOUND, {}, 0),
    ("route_deep_prefix_200", "POST", "{deep}/webhook", SJ, U, 200, OK, {}, 1),
    ("route_deep_prefix_path_secret_200", "POST", "{deep}/webhook/{s}", J, U, 200,
     OK, {}, 1),
    ("route_query_string_ignored_200", "POST", "{p}/webhook?x=1", SJ, U, 200, OK,
     {}, 1),
    # 2. methods (before the secret is looked at)
    ("method_get_webhook_405", "GET", "{p}/webhook", {}, None, 405, NOT_ALLOWED,
     {"Allow": "POST"}, 0),
    ("method_put_webhook_405", "PUT", "{p}/webhook", SJ, U, 405, NOT_ALLOWED,
     {"Allow": "POST"}, 0),
    ("method_post_health_405", "POST", "{p}/health", J, U, 405, NOT_ALLOWED,
     {"Allow": "GET, HEAD"}, 0),
    ("method_delete_health_405", "DELETE", "{p}/health", {}, None, 405, NOT_ALLOWED,
     {"Allow": "GET, HEAD"}, 0),
    ("method_post_ready_405", "POST", "{p}/ready", J, U, 405, NOT_ALLOWED,
     {"Allow": "GET, HEAD"}, 0),
    ("method_delete_ready_405", "DELETE", "{p}/ready", {}, None, 405, NOT_ALLOWED,
     {"Allow": "GET, HEAD"}, 0),
    # 3. secret
    ("secret_missing_401", "POST", "{p}/webhook", J, U, 401, UNAUTH, {}, 0),
    ("secret_wrong_header_401", "POST", "{p}/webhook", WRONG, U, 401, UNAUTH, {}, 0),
    ("secret_wrong_path_401", "POST", "{p}/webhook/not-the-secret", J, U, 401, UNAUTH,
     {}, 0),
    ("secret_empty_header_401", "POST", "{p}/webhook", dict(J, **{SECRET_HEADER: ""}),
     U, 401, UNAUTH, {}, 0),
    ("secret_prefix_of_secret_401", "POST", "{p}/webhook",
     dict(J, **{SECRET_HEADER: "{s5}"}), U, 401, UNAUTH, {}, 0),
    ("secret_path_alone_200", "POST", "{p}/webhook/{s}", J, U, 200, OK, {}, 1),
    ("secret_header_and_default_200", "POST", "{p}/webhook/default", SJ, U, 200, OK,
     {}, 1),
    ("secret_header_and_same_path_200", "POST", "{p}/webhook/{s}", SJ, U, 200, OK,
     {}, 1),
    ("secret_header_path_disagree_401", "POST", "{p}/webhook/not-the-secret", SJ, U,
     401, UNAUTH, {}, 0),
    ("secret_path_right_header_wrong_401", "POST", "{p}/webhook/{s}", WRONG, U, 401,
     UNAUTH, {}, 0),
    ("secret_default_without_header_401", "POST", "{p}/webhook/default", J, U, 401,
     UNAUTH, {}, 0),
    ("secret_checked_before_type_401", "POST", "{p}/webhook", {}, b"x", 401, UNAUTH,
     {}, 0),
    # 4. length (411 and the server's own 413 are special cases below)
    ("length_over_max_body_413", "POST", "{tight}/webhook", SJ, ("pad", 2048), 413,
     TOO_LARGE, {}, 0),
    ("length_checked_before_type_413", "POST", "{tight}/webhook",
     dict(S, **{"Content-Type": "text/plain"}), ("pad", 2048), 413, TOO_LARGE, {}, 0),
    ("length_at_max_body_200", "POST", "{tight}/webhook", SJ, ("pad", 1024), 200, OK,
     {}, 1),
    # 5. content type
    ("type_missing_415", "POST", "{p}/webhook", S, U, 415, UNSUPPORTED, {}, 0),
    ("type_text_plain_415", "POST", "{p}/webhook",
     dict(S, **{"Content-Type": "text/plain"}), U, 415, UNSUPPORTED, {}, 0),
    ("type_jsonx_415", "POST", "{p}/webhook",
     dict(S, **{"Content-Type": "application/jsonx"}), U, 415, UNSUPPORTED, {}, 0),
    ("type_form_415", "POST", "{p}/webhook",
     dict(S, **{"Content-Type": "application/x-www-form-urlencoded"}), U, 415,
     UNSUPPORTED, {}, 0),
    ("type_charset_200", "POST", "{p}/webhook",
     dict(S, **{"Content-Type": "application/json; charset=utf-8"}), U, 200, OK, {}, 1),
    ("type_upper_case_200", "POST", "{p}/webhook",
     dict(S, **{"Content-Type": "Application/JSON"}), U, 200, OK, {}, 1),
    # 6. body
    ("body_invalid_json_400", "POST", "{p}/webhook", SJ, b'{"update_id": 1,', 400,
     BAD, {}, 0),
    ("body_array_400", "POST", "{p}/webhook", SJ, b'[{"update_id": 1}]', 400, BAD,
     {}, 0),
    ("body_missing_update_id_400", "POST", "{p}/webhook", SJ,
     b'{"message": {"text": "hi"}}', 400, BAD, {}, 0),
    ("body_string_update_id_400", "POST", "{p}/webhook", SJ, b'{"update_id": "5"}',
     400, BAD, {}, 0),
    ("body_float_update_id_400", "POST", "{p}/webhook", SJ, b'{"update_id": 1.5}',
     400, BAD, {}, 0),
    ("body_2_pow_63_400", "POST", "{p}/webhook", SJ,
     b'{"update_id": 9223372036854775808}', 400, BAD, {}, 0),
    ("body_two_update_ids_400", "POST", "{p}/webhook", SJ,
     b'{"update_id": 1, "update_id": 2}', 400, BAD, {}, 0),
    ("body_leading_zero_400", "POST", "{p}/webhook", SJ, b'{"update_id": 01}', 400,
     BAD, {}, 0),
    ("body_trailing_garbage_400", "POST", "{p}/webhook", SJ, b'{"update_id": 1} x',
     400, BAD, {}, 0),
    ("body_invalid_utf8_400", "POST", "{p}/webhook", SJ,
     b'{"update_id": 1, "t": "\xff\xfe"}', 400, BAD, {}, 0),
    ("body_empty_400", "POST", "{p}/webhook", SJ, b"", 400, BAD, {}, 0),
    ("body_too_deep_400", "POST", "{p}/webhook", SJ,
     b'{"update_id": 1, "a": ' + b"[" * 150 + b"]" * 150 + b"}", 400, BAD, {}, 0),
    ("body_nested_50_200", "POST", "{p}/webhook", SJ, ("deep", 50), 200, OK, {}, 1),
    ("body_int64_max_200", "POST", "{p}/webhook", SJ,
     b'{"update_id": 9223372036854775807}', 200, OK, {}, ("id", 9223372036854775807)),
    ("body_negative_update_id_200", "POST", "{p}/webhook", SJ, b'{"update_id": -17}',
     200, OK, {}, ("id", -17)),
]


def next_uid(stack):
    stack.uid = getattr(stack, "uid", 100000) + 1
    return stack.uid


def make_body(spec, uid):
    if spec is U:
        return message(uid)
    if isinstance(spec, tuple) and spec[0] == "pad":
        return padded(uid, spec[1])
    if isinstance(spec, tuple) and spec[0] == "deep":
        n = spec[1]
        return b'{"update_id": %d, "a": %s%s}' % (uid, b"[" * n, b"]" * n)
    return spec


def fmt(stack, text):
    return text.format(p=stack.prefix, deep=stack.deep, tight=stack.tight,
                       s=stack.secret, s5=stack.secret[:5])


def expect_answer(stack, r, status, body, headers, what):
    name = stack.redact(what)
    check(r.status != 410, "%s: got 410" % name)
    check(r.status == status, "%s: expected %d, got %d %r" %
          (name, status, r.status, stack.redact(r.body[:120])))
    if body is not None:
        if body.endswith(b": "):
            check(r.body.startswith(body) and r.body.endswith(b"\n"),
                  "%s: expected body %r..., got %r" % (name, body, r.body[:120]))
        else:
            check(r.body == body, "%s: expected body %r, got %r" %
                  (name, body, r.body[:120]))
        ctype = r.header("Content-Type") or ""
        check(ctype.split(";")[0].strip().lower() == "text/plain",
              "%s: Content-Type %r, expected text/plain" % (name, ctype))
    for k, v in headers.items():
        got = r.header(k)
        check(got == v, "%s: header %s: expected %r, got %r" % (name, k, v, got))


def table_case(row):
    name, method, path, headers, body, status, rbody, rheaders, rows = row

    def run(stack):
        uid = next_uid(stack)
        data = make_body(body, uid)
        if isinstance(rows, tuple):
            uid, want_rows = rows[1], 1
        else:
            want_rows = rows
        hdrs = {k: fmt(stack, v) for k, v in headers.items()}
        url = fmt(stack, path)
        before = stack.queue.count()
        r = stack.req(method, url, hdrs, data)
        expect_answer(stack, r, status, rbody, rheaders, "%s %s" % (method, url))
        got = stack.queue.count("update_id = ?", (uid,))
        check(got == want_rows, "%s %s: update %d has %d rows, expected %d" %
              (method, stack.redact(url), uid, got, want_rows))
        after = stack.queue.count()
        check(after - before == want_rows, "row count went from %d to %d, expected +%d"
              % (before, after, want_rows))
    return name, run


# ---------------------------------------------------------------- special cases

def post(stack, uid=None, body=None, path="{p}/webhook", headers=SJ, timeout=30.0):
    if body is None:
        body = message(uid)
    hdrs = {k: fmt(stack, v) for k, v in headers.items()}
    return stack.req("POST", fmt(stack, path), hdrs, body, timeout=timeout)


def case_length_missing_411(stack):
    """A POST with neither Content-Length nor a body, sent byte by byte as written:
    the answer must be 411 (from tgq, or from the server itself) and add no row."""
    before = stack.queue.count()
    raw = ("POST %s/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n"
           "Content-Type: application/json\r\nConnection: close\r\n\r\n" %
           (stack.prefix, SECRET_HEADER, stack.secret)).encode()
    r = h.raw_request(stack.port, raw)
    stack.statuses.append(r.status)
    check(r.status == 411, "POST without Content-Length: expected 411, got %d %r" %
          (r.status, stack.redact(r.body[:120])))
    check(stack.queue.count() == before, "a row was added")
    if r.body != b"length required\n":
        stack.notes.append("411 without Content-Length came from the server itself "
                           "(body %r)" % r.body[:40])


def case_length_chunked(stack):
    """A chunked POST (no Content-Length): nginx and lighttpd read the whole body
    and pass its length on, so it is accepted; no server may turn it into a 200
    without a row."""
    uid = next_uid(stack)
    body = message(uid)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    raw = ("POST %s/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n"
           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           "Connection: close\r\n\r\n" % (stack.prefix, SECRET_HEADER,
                                          stack.secret)).encode() + chunked
    r = h.raw_request(stack.port, raw)
    stack.statuses.append(r.status)
    check(r.status in (200, 411), "chunked POST: expected 200 or 411, got %d %r" %
          (r.status, stack.redact(r.body[:120])))
    rows = stack.queue.count("update_id = ?", (uid,))
    check(rows == (1 if r.status == 200 else 0), "chunked POST: %d answered, %d rows"
          % (r.status, rows))
    if r.status == 411:
        stack.notes.append("chunked POST answered 411")


def case_server_limit_413(stack):
    """1 MiB + 1 byte: refused with 413 (by the server, whose limit the shipped
    snippet sets to 1 MiB, or by tgq) and no row."""
    uid = next_uid(stack)
    before = stack.queue.count()
    try:
        r = post(stack, body=padded(uid, MiB + 1))
        status = r.status
    except (ConnectionError, http.client.HTTPException) as e:
        # A server may answer 413 and close before it has read the whole body.
        raise AssertionError("1 MiB + 1: connection failed before an answer: %s" % e)
    check(status == 413, "1 MiB + 1: expected 413, got %d" % status)
    check(stack.queue.count() == before, "1 MiB + 1: a row was added")


def case_900k_byte_exact(stack):
    uid = next_uid(stack)
    body = padded(uid, 900 * 1024)
    r = post(stack, body=body)
    expect_answer(stack, r, 200, OK, {}, "900 KiB update")
    got = stack.queue.body_bytes(uid)
    check(len(got) == 1, "900 KiB update: %d rows" % len(got))
    check(got[0] == body, "900 KiB update: stored body differs (%d vs %d bytes)" %
          (len(got[0]), len(body)))


def case_unicode_byte_exact(stack):
    uid = next_uid(stack)
    # Raw UTF-8 (Cyrillic, CJK, a 4-byte emoji, a ZWJ sequence), escapes that must
    # stay escapes, and unusual but valid whitespace: stored as sent.
    body = ('{ "update_id" : %d ,\n\t"message": {"message_id": 5, "date": 1700000000,'
            ' "chat": {"id": 77, "type": "private"},'
            ' "text": "Привет 👋 日本語 é 👩‍💻 \\ud83d\\ude00 \\u00e9 \\" \\\\ \\n"}'
            '  }\n' % uid).encode("utf-8")
    r = post(stack, body=body)
    expect_answer(stack, r, 200, OK, {}, "unicode update")
    got = stack.queue.body_bytes(uid)
    check(got == [body], "unicode update: stored body differs: %r" %
          (got[0][:200] if got else None))


def case_duplicate(stack):
    uid = next_uid(stack)
    first, second = message(uid, text="first"), message(uid, text="second")
    for body in (first, second, first):
        r = post(stack, body=body)
        expect_answer(stack, r, 200, OK, {}, "duplicate update")
    got = stack.queue.body_bytes(uid)
    check(got == [first], "duplicate: expected one row with the first body, got %d "
          "rows" % len(got))


def case_dedupe_window(stack):
    """A row older than 24 h no longer dedupes: the re-post is a new row and the old
    one is marked replaced_at; within 24 h a re-post is a duplicate."""
    uid = next_uid(stack)
    old, new, newer = (message(uid, text=t) for t in ("old", "new", "newer"))
    expect_answer(stack, post(stack, body=old), 200, OK, {}, "first post")
    stack.queue.execute("UPDATE updates SET received_at = CAST(strftime('%s','now') "
                        "AS INTEGER) - 25*3600 WHERE update_id = ?", (uid,))
    expect_answer(stack, post(stack, body=new), 200, OK, {}, "re-post after 25 h")
    rows = stack.queue.query("SELECT CAST(body AS BLOB), replaced_at FROM updates "
                             "WHERE update_id = ? ORDER BY id", (uid,))
    check(len(rows) == 2, "after 25 h: expected 2 rows, got %d" % len(rows))
    check(rows[0][0] == old and rows[0][1] is not None,
          "after 25 h: old row not kept with replaced_at set (%r)" % (rows[0][1],))
    check(rows[1][0] == new and rows[1][1] is None,
          "after 25 h: new row does not hold the new body with replaced_at NULL")
    expect_answer(stack, post(stack, body=newer), 200, OK, {}, "re-post within 24 h")
    got = stack.queue.body_bytes(uid)
    check(got == [old, new], "within 24 h: expected the 2 rows unchanged, got %d" %
          len(got))


def case_kind_chat_id(stack):
    cases = [
        (message(next_uid(stack), chat_id=-1001234567890), "message", -1001234567890),
        (callback_query(next_uid(stack), chat_id=-1002003004005), "callback_query",
         -1002003004005),
        (json.dumps({"update_id": next_uid(stack),
                     "edited_message": {"message_id": 1, "date": 1,
                                        "chat": {"id": 99, "type": "private"},
                                        "text": "edit"}}).encode(),
         "edited_message", 99),
        (json.dumps({"update_id": next_uid(stack),
                     "poll": {"id": "1", "question": "?", "options": []}}).encode(),
         "poll", None),
    ]
    for body, kind, chat in cases:
        uid = json.loads(body)["update_id"]
        expect_answer(stack, post(stack, body=body), 200, OK, {}, kind)
        rows = stack.queue.rows(uid, "bot, kind, chat_id, state")
        check(rows == [("default", kind, chat, "new")],
              "%s: expected (bot, kind, chat_id, state) = %r, got %r" %
              (kind, ("default", kind, chat, "new"), rows))


def case_received_at(stack):
    uid = next_uid(stack)
    t0 = int(time.time())
    expect_answer(stack, post(stack, uid), 200, OK, {}, "post")
    t1 = int(time.time())
    (got,), = stack.queue.rows(uid, "received_at")
    check(t0 - 1 <= got <= t1 + 1, "received_at %r not in [%d, %d]" % (got, t0, t1))


def health(stack, method="GET", path="{p}/health"):
    return stack.req(method, fmt(stack, path))


def case_health(stack):
    expect_answer(stack, post(stack, next_uid(stack)), 200, OK, {}, "a pending update")
    r = health(stack)
    check(r.status == 200, "health: expected 200, got %d %r" % (r.status, r.body))
    ctype = (r.header("Content-Type") or "").split(";")[0].strip()
    check(ctype == "application/json", "health: Content-Type %r" % ctype)
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise AssertionError("health: not JSON: %r" % r.body[:200])
    check(isinstance(doc, dict) and doc.get("status") == "ok",
          "health: %r" % (doc,))
    for k in ("pending", "dead", "oldest_pending_age_s"):
        check(isinstance(doc.get(k), int) and doc[k] >= 0,
              "health: %s is %r" % (k, doc.get(k)))
    new = stack.queue.count("state = 'new'")
    dead = stack.queue.count("state = 'dead'")
    check(doc["pending"] == new, "health: pending %d, %d rows in state new" %
          (doc["pending"], new))
    check(doc["dead"] == dead, "health: dead %d, %d rows in state dead" %
          (doc["dead"], dead))
    check(new > 0, "health: no pending rows to count (cases before did not run?)")
    if stack.deep:
        r2 = health(stack, path="{deep}/health")
        check(r2.status == 200, "health under %s: %d" % (stack.deep, r2.status))


def case_health_head(stack):
    r = health(stack, "HEAD")
    check(r.status == 200, "HEAD health: expected 200, got %d" % r.status)
    check(r.body == b"", "HEAD health: a body came back")
    ctype = (r.header("Content-Type") or "").split(";")[0].strip()
    check(ctype == "application/json", "HEAD health: Content-Type %r" % ctype)


def ready(stack, method="GET", path="{p}/ready"):
    return stack.req(method, fmt(stack, path))


def ready_doc(r, what):
    ctype = (r.header("Content-Type") or "").split(";")[0].strip()
    check(ctype == "application/json", "%s: Content-Type %r" % (what, ctype))
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise AssertionError("%s: not JSON: %r" % (what, r.body[:200]))
    check(isinstance(doc, dict), "%s: %r" % (what, doc))
    return doc


def expect_unready(r, reason, what):
    check(r.status == 503, "%s: expected 503, got %d %r" % (what, r.status,
                                                              r.body[:200]))
    check(r.header("Retry-After") is not None, "%s: 503 without Retry-After" % what)
    doc = ready_doc(r, what)
    check(doc.get("status") == "unready" and doc.get("reason") == reason,
          "%s: expected reason %r, got %r" % (what, reason, doc))
    return doc


def settle_backdated(stack):
    """Marks done the pending rows that cases before backdated (the dedupe window's
    rows are a day old), as a drain would have: they are not what a case of …/ready
    looks at."""
    stack.queue.execute("UPDATE updates SET state = 'done' WHERE state IN "
                        "('new', 'leased') AND received_at < ?",
                        (int(time.time()) - 1800,))


def case_ready(stack):
    """…/ready with pending rows younger than stall_after (1 h here): 200 and its
    JSON, under every prefix; HEAD: the same without a body."""
    settle_backdated(stack)
    expect_answer(stack, post(stack, next_uid(stack)), 200, OK, {}, "a pending update")
    r = ready(stack)
    check(r.status == 200, "ready: expected 200, got %d %r" % (r.status, r.body))
    doc = ready_doc(r, "ready")
    check(doc.get("status") == "ready" and "reason" not in doc, "ready: %r" % (doc,))
    # 3600 from TGQ_STALL_AFTER=1h; 60, the default, where the shipped
    # tgq-spawn.conf starts the backend with an environment of its own.
    check(doc.get("stall_after_s") in (3600, 60), "ready: stall_after_s %r" %
          doc.get("stall_after_s"))
    new = stack.queue.count("state IN ('new', 'leased')")
    check(doc.get("pending") == new, "ready: pending %r, %d rows pending" %
          (doc.get("pending"), new))
    check(isinstance(doc.get("oldest_pending_age_s"), int) and
          0 <= doc["oldest_pending_age_s"] <= doc["stall_after_s"], "ready: %r" %
          (doc,))
    hr = ready(stack, "HEAD")
    check(hr.status == 200, "HEAD ready: expected 200, got %d" % hr.status)
    check(hr.body == b"", "HEAD ready: a body came back")
    ctype = (hr.header("Content-Type") or "").split(";")[0].strip()
    check(ctype == "application/json", "HEAD ready: Content-Type %r" % ctype)
    if stack.deep:
        r2 = ready(stack, path="{deep}/ready")
        check(r2.status == 200, "ready under %s: %d" % (stack.deep, r2.status))


def case_ready_stalled(stack):
    """The oldest pending update is older than stall_after: 503 "stalled" (GET and
    HEAD); once it is handled (done), 200 again.  /tight has stall_after 1s."""
    settle_backdated(stack)
    uid = next_uid(stack)
    expect_answer(stack, post(stack, uid), 200, OK, {}, "the update to age")
    stack.queue.execute("UPDATE updates SET received_at = received_at - 7200 "
                        "WHERE update_id = ?", (uid,))
    try:
        doc = expect_unready(ready(stack), "stalled", "ready with a 2 h old update")
        check(doc.get("oldest_pending_age_s", 0) >= 7200 and
              doc.get("stall_after_s") == 3600, "stalled: %r" % (doc,))
        hr = ready(stack, "HEAD")
        check(hr.status == 503 and hr.body == b"", "HEAD stalled: %d %r" %
              (hr.status, hr.body[:80]))
        h2 = health(stack)
        check(h2.status == 200, "health while stalled: expected 200 (liveness), "
              "got %d" % h2.status)
    finally:
        stack.queue.execute("UPDATE updates SET state = 'done' WHERE update_id = ?",
                            (uid,))
    r = ready(stack)
    check(r.status == 200, "ready after the old update was done: %d %r" %
          (r.status, r.body))
    if stack.tight:
        expect_answer(stack, post(stack, next_uid(stack), path="{tight}/webhook"), 200,
                      OK, {}, "a pending update for /tight")
        time.sleep(2.1)  # older than TGQ_STALL_AFTER=1s, in whole seconds
        doc = expect_unready(ready(stack, path="{tight}/ready"), "stalled",
                             "ready with stall_after 1s")
        check(doc.get("stall_after_s") == 1, "tight: %r" % (doc,))


def case_ready_busy(stack):
    """Another writer holds the queue longer than TGQ_BUSY_TIMEOUT=300 ms (/tight):
    503 "queue_busy"."""
    expect_answer(stack, post(stack, next_uid(stack), path="{tight}/webhook"), 200, OK,
                  {}, "warm-up")
    con = stack.queue.lock()
    try:
        expect_unready(ready(stack, path="{tight}/ready"), "queue_busy",
                       "ready while locked")
    finally:
        stack.queue.unlock(con)


def case_busy(stack):
    """The test holds the write lock longer than TGQ_BUSY_TIMEOUT=300 ms (the
    /tight backend): 503 + Retry-After and no row; after the release, 200."""
    uid = next_uid(stack)
    # Let the backend open the file (and create its schema) before the lock.
    expect_answer(stack, post(stack, next_uid(stack), path="{tight}/webhook"), 200, OK,
                  {}, "warm-up")
    con = stack.queue.lock()
    try:
        r = post(stack, uid, path="{tight}/webhook")
        expect_answer(stack, r, 503, b"service unavailable\n", {"Retry-After": "7"},
                      "POST while locked")
        check(stack.queue_count_nolock(con, uid) == 0, "a row appeared while locked")
    finally:
        stack.queue.unlock(con)
    check(stack.queue.count("update_id = ?", (uid,)) == 0, "a row appeared")
    expect_answer(stack, post(stack, uid, path="{tight}/webhook"), 200, OK, {},
                  "POST after release")
    check(stack.queue.count("update_id = ?", (uid,)) == 1, "no row after the 200")


def queue_count_nolock(con, uid):
    return con.execute("SELECT count(*) FROM updates WHERE update_id = ?",
                       (uid,)).fetchone()[0]


Stack.queue_count_nolock = staticmethod(queue_count_nolock)


def case_secret_not_logged(stack):
    h.check_not_logged(stack.logs(), [stack.secret, stack.secret[:12]],
                       "the webhook's log")


def case_never_410(stack):
    check(stack.statuses, "no requests were made")
    check(410 not in stack.statuses, "a 410 was answered")


# ------------------------------------------------------------- CGI run directly

def direct_case(name, env, body, status, rbody, rows=0):
    def run(stack):
        uid = next_uid(stack)
        data = message(uid) if body is U else body
        e = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
             "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": stack.secret}
        e.update({k: v if v is None else fmt(stack, v) for k, v in env.items()})
        if e.get("CONTENT_LENGTH") == "auto":
            e["CONTENT_LENGTH"] = str(len(data))
        e = {k: v for k, v in e.items() if v is not None}
        before = stack.queue.count()
        r = stack.direct(e, data)
        expect_answer(stack, r, status, rbody, {}, name)
        check(stack.queue.count("update_id = ?", (uid,)) == rows,
              "%s: expected %d rows" % (name, rows))
        check(stack.queue.count() - before == rows, "%s: row count changed" % name)
    return "direct_" + name, run


DIRECT = [
    direct_case("content_length_not_a_number_400",
                {"REQUEST_URI": "{p}/webhook", "CONTENT_LENGTH": "12abc"}, U, 400,
                b"bad request: invalid Content-Length\n"),
    direct_case("content_length_negative_400",
                {"REQUEST_URI": "{p}/webhook", "CONTENT_LENGTH": "-5"}, U, 400,
                b"bad request: invalid Content-Length\n"),
    direct_case("content_length_missing_411", {"REQUEST_URI": "{p}/webhook"}, b"",
                411, b"length required\n"),
    direct_case("content_length_empty_411",
                {"REQUEST_URI": "{p}/webhook", "CONTENT_LENGTH": ""}, b"", 411,
                b"length required\n"),
    direct_case("request_uri_route_200",
                {"REQUEST_URI": "/x/y/z/webhook?a=/b", "CONTENT_LENGTH": "auto"}, U,
                200, OK, rows=1),
    direct_case("request_uri_path_secret_200",
                {"REQUEST_URI": "/webhook/{s}", "CONTENT_LENGTH": "auto",
                 "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": None}, U, 200, OK, rows=1),
    direct_case("request_uri_other_404",
                {"REQUEST_URI": "/webhook/{s}/more", "CONTENT_LENGTH": "auto"}, U,
                404, NOT_FOUND),
    direct_case("script_name_wins_over_request_uri_404",
                {"SCRIPT_NAME": "/telegram", "PATH_INFO": "/other",
                 "REQUEST_URI": "/telegram/webhook", "CONTENT_LENGTH": "auto"}, U,
                404, NOT_FOUND),
]


# ---------------------------------------------------------------- load

def case_load(stack):
    """100 connections, 6,000 POSTs of 5,000 distinct update_ids (1,000 sent twice)
    in shuffled order: one row per distinct id; every 200 has its row."""
    base = 50_000_000
    ids = list(range(base, base + 5000))
    rng = random.Random(20240601)
    work = ids + rng.sample(ids, 1000)
    rng.shuffle(work)
    lock = threading.Lock()
    deadline = time.monotonic() + 120
    results = {}  # uid -> list of final statuses
    counters = {"503": 0, "errors": 0, "other": {}}
    headers = {SECRET_HEADER: stack.secret, "Content-Type": "application/json"}
    path = stack.prefix + "/webhook"
    queue = list(work)

    def worker():
        conn = None
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    break
                uid = queue.pop()
            body = message(uid, text="load %d" % uid)
            status = None
            for attempt in range(20):
                if time.monotonic() > deadline:
                    break
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", stack.port,
                                                          timeout=30)
                    r = h.request(stack.port, "POST", path, headers, body, conn=conn)
                    status = r.status
                    if r.header("Connection") == "close":
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException):
                    with lock:
                        counters["errors"] += 1
                    if conn:
                        conn.close()
                    conn = None
                    status = None
                    time.sleep(0.05)
                    continue
                if status == 503:
                    with lock:
                        counters["503"] += 1
                    time.sleep(0.05 * (attempt + 1))
                    continue
                break
            with lock:
                results.setdefault(uid, []).append(status)
        if conn:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 5))
    check(not any(t.is_alive() for t in threads), "load: threads still running at "
          "the deadline")
    sent = sum(len(v) for v in results.values())
    check(sent == len(work), "load: %d of %d requests finished by the deadline" %
          (sent, len(work)))
    non200 = sorted(s for v in results.values() for s in v if s != 200)
    check(410 not in non200, "load: a 410 was answered")
    stack.statuses.extend(s for v in results.values() for s in v if s)
    rows = dict(stack.queue.query(
        "SELECT update_id, count(*) FROM updates WHERE update_id BETWEEN ? AND ? "
        "GROUP BY update_id", (base, base + 4999)))
    dup = [u for u, n in rows.items() if n != 1]
    check(not dup, "load: %d update_ids have more than one row" % len(dup))
    missing = [u for u, v in results.items() if 200 in v and u not in rows]
    check(not missing, "load: %d update_ids got 200 but have no row (e.g. %d)" %
          (len(missing), missing[0] if missing else 0))
    check(not non200, "load: %d requests did not end in 200 after retries (%s); "
          "%d 503s retried, %d connection errors" %
          (len(non200), sorted(set(map(str, non200))), counters["503"],
           counters["errors"]))
    check(len(rows) == 5000, "load: %d distinct rows, expected 5000" % len(rows))
    stack.notes.append("load: 6000 requests, %d 503s retried, %d connection errors" %
                       (counters["503"], counters["errors"]))


# ---------------------------------------------------------------- read-only

def post_until_taken(post_one, uids, what):
    """Sends each refused update again, in order, until it is taken (200); 503 is
    the only other answer allowed, and 30 s the limit."""
    deadline = time.monotonic() + 30
    left = list(uids)
    while left and time.monotonic() < deadline:
        r = post_one(left[0])
        if r.status == 200:
            left.pop(0)
        else:
            check(r.status == 503, "%s: %d" % (what, r.status))
            time.sleep(0.2)
    check(not left, "%s: %d updates still refused after 30 s" % (what, len(left)))


class ReadOnlyStack(NginxStack):
    """nginx + webhook with the queue file on a small tmpfs of its own."""
    name = "nginx-ro"

    def __init__(self, ctx):
        self.mnt = None
        tmp = h.make_tmpdir("tgq-ro-mnt-")
        r = h.mount("-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", tmp)
        if r.returncode != 0:
            os.rmdir(tmp)
            raise Skip("cannot mount a tmpfs: %s" % r.stderr.strip())
        self.mnt = tmp
        h.chown_run_user(tmp)
        super().__init__(ctx, procs=2, db_dir=tmp)

    def cleanup(self):
        if self.mnt:
            h.mount("-o", "remount,rw", self.mnt)
            r = h.mount(self.mnt, cmd="umount", tries=50)
            if r.returncode == 0:
                os.rmdir(self.mnt)
            else:
                print("# could not unmount %s: %s" % (self.mnt, r.stderr.strip()))
        super().cleanup()


def case_readonly(stack):
    """Posts while the queue's filesystem is read-only: 503 + Retry-After (never 200)
    and no new rows; once writable again, the same updates are taken exactly once.

    Linux refuses `mount -o remount,ro` while a process holds a file open for writing
    (EBUSY), which tgq-webhook does with its queue file; so the webhook is stopped
    for the remount and started again on the read-only filesystem (it must then
    answer 503, not fail to start), and restarted after the remount rw."""
    ok_ids = [next_uid(stack) for _ in range(5)]
    for uid in ok_ids:
        expect_answer(stack, post(stack, uid), 200, OK, {}, "before remount")
    live = h.mount("-o", "remount,ro", stack.mnt)
    if live.returncode == 0:
        stack.notes.append("remount ro succeeded with the webhook running")
    else:
        stack.stop_webhooks()
        r = h.mount("-o", "remount,ro", stack.mnt, tries=50)
        check(r.returncode == 0, "remount ro failed: %s" % r.stderr.strip())
        for w in stack.webhooks:
            w.start()
    ro_ids = [next_uid(stack) for _ in range(5)]
    try:
        for uid in ro_ids:
            r = post(stack, uid)
            check(r.status != 200, "read-only: got 200 for an update it cannot store")
            expect_answer(stack, r, 503, b"service unavailable\n", {}, "read-only")
            check(r.header("Retry-After") is not None, "read-only: no Retry-After")
        hr = health(stack)
        check(hr.status in (200, 503), "read-only health: %d" % hr.status)
        expect_unready(ready(stack), "queue_unavailable", "ready, read-only")
        rh = ready(stack, "HEAD")
        check(rh.status == 503 and rh.body == b"", "HEAD ready, read-only: %d %r" %
              (rh.status, rh.body[:80]))
        check(stack.queue.count() == 5, "read-only: rows changed (%d)" %
              stack.queue.count())
    finally:
        if live.returncode == 0:
            h.mount("-o", "remount,rw", stack.mnt)
        else:
            stack.stop_webhooks()
            h.mount("-o", "remount,rw", stack.mnt, tries=50)
            for w in stack.webhooks:
                w.start()
    post_until_taken(lambda uid: post(stack, uid), ro_ids, "after remount rw")
    for uid in ok_ids + ro_ids:
        check(stack.queue.count("update_id = ?", (uid,)) == 1,
              "update %d: not exactly one row" % uid)
    check(stack.queue.count() == 10, "expected 10 rows, got %d" % stack.queue.count())
    r = ready(stack)
    check(r.status == 200, "ready after remount rw: %d %r" % (r.status, r.body[:80]))


def case_disk_full(stack):
    """The queue's filesystem is full: answers are 200 (row stored) or 503 with
    Retry-After (no row), never 200 without a row; once space is free again the
    refused updates are taken, each exactly once."""
    filler = os.path.join(stack.mnt, "filler")
    chunk = b"\0" * MiB
    try:
        with open(filler, "wb") as f:
            for _ in range(256):  # the tmpfs is 64 MiB
                try:
                    f.write(chunk)
                    f.flush()
                except OSError:
                    break
            # Fill the last partial MiB too.
            for _ in range(1024):
                try:
                    f.write(b"\0" * 1024)
                    f.flush()
                except OSError:
                    break
    except OSError:
        pass
    ids = [next_uid(stack) for _ in range(8)]
    before = stack.queue.count()
    refused, taken = [], []
    try:
        for uid in ids:
            r = post(stack, body=padded(uid, 300 * 1024))
            check(r.status in (200, 503), "disk full: answered %d" % r.status)
            if r.status == 503:
                check(r.header("Retry-After") is not None, "disk full: 503 without "
                      "Retry-After")
                refused.append(uid)
            else:
                taken.append(uid)
        for uid in taken:
            check(stack.queue.count("update_id = ?", (uid,)) == 1,
                  "disk full: update %d got 200 but has no row" % uid)
        for uid in refused:
            check(stack.queue.count("update_id = ?", (uid,)) == 0,
                  "disk full: update %d got 503 but has a row" % uid)
        check(refused, "disk full: every update was taken (the disk was not full?)")
        expect_unready(ready(stack), "queue_unavailable", "ready, disk full")
    finally:
        os.unlink(filler)
    post_until_taken(lambda uid: post(stack, body=padded(uid, 300 * 1024)), refused,
                     "after freeing space")
    for uid in ids:
        check(stack.queue.count("update_id = ?", (uid,)) == 1,
              "update %d: not exactly one row" % uid)
    check(stack.queue.count() == before + len(refused),
          "row count: %d, expected %d" % (stack.queue.count(), before + len(refused)))
    stack.notes.append("disk full: %d of %d updates refused with 503, then taken" %
                       (len(refused), len(ids)))


def case_broken_database(stack):
    """TGQ_DATABASE names a file that is not a database: health answers 503
    {"status":"unavailable"} with Retry-After, a POST 503, and the file is left
    as it was."""
    path = os.path.join(stack.tmpdir, "broken.db")
    junk = b"this is not an SQLite database\n" * 200
    with open(path, "wb") as f:
        f.write(junk)
    h.chown_run_user(path)
    base = {"TGQ_DATABASE": path, "REQUEST_URI": "{p}/health"}
    r = stack.direct(dict(base, REQUEST_METHOD="GET", CONTENT_TYPE=None,
                          HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=None))
    check(r.status == 503, "health on a broken file: expected 503, got %d %r" %
          (r.status, r.body[:80]))
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise AssertionError("health on a broken file: not JSON: %r" % r.body[:80])
    check(doc == {"status": "unavailable"}, "health on a broken file: %r" % (doc,))
    check(r.header("Retry-After") is not None, "health 503 without Retry-After")
    uid = next_uid(stack)
    body = message(uid)
    r = stack.direct(dict(base, REQUEST_URI="{p}/webhook", REQUEST_METHOD="POST",
                          CONTENT_TYPE="application/json",
                          CONTENT_LENGTH=str(len(body)),
                          HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN="{s}"), body)
    expect_answer(stack, r, 503, b"service unavailable\n", {}, "POST to a broken file")
    check(r.header("Retry-After") is not None, "POST 503 without Retry-After")
    with open(path, "rb") as f:
        check(f.read() == junk, "the broken file was changed")


# ---------------------------------------------------------------- the groups

def common_cases():
    cases = [table_case(row) for row in TABLE]
    cases += [
        ("length_missing_411", case_length_missing_411),
        ("length_chunked", case_length_chunked),
        ("length_1mib_plus_1_413", case_server_limit_413),
        ("body_900kib_byte_exact", case_900k_byte_exact),
        ("body_unicode_byte_exact", case_unicode_byte_exact),
        ("duplicate_first_body_kept", case_duplicate),
        ("dedupe_window_24h", case_dedupe_window),
        ("kind_and_chat_id", case_kind_chat_id),
        ("received_at_now", case_received_at),
        ("busy_503", case_busy),
        ("health_json", case_health),
        ("health_head", case_health_head),
        ("ready_200", case_ready),
        ("ready_stalled_503", case_ready_stalled),
        ("ready_busy_503", case_ready_busy),
    ]
    return cases


SPAWN_ROWS = ("route_webhookx_404", "method_get_webhook_405", "secret_missing_401",
              "secret_path_alone_200", "type_text_plain_415", "body_array_400",
              "type_charset_200")

FINAL = [("secret_not_logged", case_secret_not_logged), ("never_410", case_never_410)]


def groups(ctx):
    """[(group name, make stack, [(case name, fn)])] for run.py."""
    return [
        ("nginx", lambda: NginxStack(ctx, procs=2),
         common_cases() + [("load_6000_requests", case_load)] + FINAL),
        ("lighttpd", lambda: LighttpdStack(ctx, procs=1), common_cases() + FINAL),
        ("cgi", lambda: CgiStack(ctx), common_cases() + DIRECT +
         [("broken_database_503", case_broken_database)] + FINAL),
        ("lighttpd-spawn", lambda: LighttpdSpawnStack(ctx),
         [table_case(r) for r in TABLE if r[0] in SPAWN_ROWS] +
         [("duplicate_first_body_kept", case_duplicate),
          ("kind_and_chat_id", case_kind_chat_id),
          ("health_json", case_health), ("ready_200", case_ready)] + FINAL),
        ("nginx-ro", lambda: ReadOnlyStack(ctx) if h.IS_ROOT else
         _skip("needs root (mount)"), [("readonly_fs_503", case_readonly), ("disk_full_503", case_disk_full)]),
    ]


def _skip(reason):
    raise Skip(reason)
