"""Hostile input for tgq-webhook, through real nginx with the shipped snippet
(deploy/nginx/tgq.conf) and 2 tgq-webhook processes under spawn-fcgi, and, where
nginx would mask a case (it refuses large headers, never passes a body shorter
than its Content-Length), through the binary run directly as a CGI program.

Groups:
  hostile       bodies (NUL bytes, invalid UTF-8, 100,000 levels of nesting, huge
                numbers, duplicate keys, update_id of every wrong type and beyond 64
                bits, 1 MiB of whitespace), 64 KiB headers, a Content-Length larger
                than the body, the CGI cases, and wrong secrets timed for an early
                exit (a Mann-Whitney U test over alternating tries)
  hostile-slow  slowloris: 50 clients trickling a body at one byte a second while
                normal requests are answered

After every case: the webhook processes are alive (run.py checks), no row was
added for a rejected request, no 410; at the end, the secret is not in a log.

The statistical timing test cannot see a few nanoseconds behind nginx and FastCGI;
it only rules out a gross early exit.  The decisive check of the comparison is the
C unit test (tests/unit/test_util.c: secret_equal_*), and lib/secret.c's loop has
no data-dependent branch.
"""

import json
import math
import os
import random
import re
import socket
import subprocess
import threading
import time
import http.client

import harness as h

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
KiB, MiB = 1 << 10, 1 << 20


Skip = h.Skip
check = h.check


def message(uid, text="hello"):
    return json.dumps({"update_id": uid, "message": {
        "message_id": 1, "date": 1700000000, "chat": {"id": 77, "type": "private"},
        "text": text}}).encode()


class Stack(h.TempStack):
    """nginx + the shipped snippet + tgq-webhook (2 processes); and the binary
    run as CGI against the same queue."""

    def __init__(self, ctx, name="hostile"):
        super().__init__(ctx, "tgq-%s-" % name)
        self.name = name
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        self.statuses = []
        self.webhooks = []
        self.server = None
        self.uid = 3_000_000

    def env(self):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret,
               "TGQ_LOG_LEVEL": "info"}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        return env

    def start(self):
        w = h.Webhook(self.ctx.binary, self.tmpdir, self.env(), 2, "webhook").start()
        self.webhooks = [w]
        self.server = h.Nginx(self.tmpdir, w.socket).start()
        return self

    def stop(self):
        if self.server:
            self.server.stop()
        for w in self.webhooks:
            w.stop()

    @property
    def port(self):
        return self.server.port

    def next_uid(self):
        self.uid += 1
        return self.uid

    def post(self, body, headers=None, path="/telegram/webhook", timeout=60.0,
             conn=None):
        hdrs = {SECRET_HEADER: self.secret, "Content-Type": "application/json"}
        hdrs.update(headers or {})
        r = h.request(self.port, "POST", path, hdrs, body, timeout=timeout, conn=conn)
        self.statuses.append(r.status)
        return r

    def direct(self, env, body=b""):
        """The binary as a plain CGI program (stdin a pipe), as www-data when root."""
        full = self.env()
        full.update({"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
                     "REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST",
                     "REQUEST_URI": "/telegram/webhook",
                     "CONTENT_TYPE": "application/json",
                     "CONTENT_LENGTH": str(len(body)),
                     "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": self.secret})
        full.update(env)
        full = {k: v for k, v in full.items() if v is not None}
        kw = {}
        if h.IS_ROOT:
            kw = {"user": h.RUN_USER, "group": h.RUN_USER, "extra_groups": []}
        r = subprocess.run([self.ctx.binary], input=body, capture_output=True,
                           env=h.base_env(full), timeout=60, cwd=self.tmpdir, **kw)
        with open(os.path.join(self.tmpdir, "direct.log"), "ab") as f:
            f.write(r.stderr)
        check(r.returncode >= 0, "the CGI program died of signal %d" % -r.returncode)
        resp = h.parse_http_response(r.stdout, cgi=True)
        self.statuses.append(resp.status)
        return resp

    def logs(self):
        text = "".join(w.log_text() for w in self.webhooks)
        try:
            with open(os.path.join(self.tmpdir, "direct.log"), errors="replace") as f:
                text += f.read()
        except OSError:
            pass
        return text

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET")


def rejected(stack, r, statuses, what, before):
    check(r.status != 410, "%s: got 410" % what)
    check(r.status in statuses, "%s: expected %s, got %d %r" % (
        what, "/".join(map(str, statuses)), r.status, stack.redact(r.body[:100])))
    after = stack.queue.count()
    check(after == before, "%s: rejected, yet %d row(s) added" % (what, after - before))


def accepted(stack, r, uid, body, what, before):
    check(r.status == 200, "%s: expected 200, got %d %r" % (what, r.status,
                                                           r.body[:100]))
    got = stack.queue.body_bytes(uid)
    check(got == [body], "%s: stored %d row(s), body %s" % (
        what, len(got), "equal" if got and got[0] == body else "different"))
    check(stack.queue.count() == before + 1, "%s: row count" % what)


# ------------------------------------------------------------------ bodies

def body_case(name, make, statuses=(400,)):
    """make(uid) -> body; rejected with one of statuses and no row, through nginx
    and through CGI."""
    def run(stack):
        for via in ("nginx", "cgi"):
            uid = stack.next_uid()
            body = make(uid)
            before = stack.queue.count()
            r = stack.post(body) if via == "nginx" else stack.direct({}, body)
            rejected(stack, r, statuses, "%s via %s" % (name, via), before)
            if r.status == 400:
                check(r.body.startswith(b"bad request: "), "%s: body %r" %
                      (name, r.body[:80]))
    return name, run


def ok_case(name, make):
    """A body that is valid JSON and a valid update: 200, stored byte for byte."""
    def run(stack):
        for via in ("nginx", "cgi"):
            uid = stack.next_uid()
            body = make(uid)
            before = stack.queue.count()
            r = stack.post(body) if via == "nginx" else stack.direct({}, body)
            accepted(stack, r, uid, body, "%s via %s" % (name, via), before)
    return name, run


def either_case(name, make):
    """Valid JSON whose meaning is the parser's choice: 200 with the row under this
    update_id, or 400 without a row; noted."""
    def run(stack):
        uid = stack.next_uid()
        body = make(uid)
        before = stack.queue.count()
        r = stack.post(body)
        check(r.status in (200, 400), "%s: %d" % (name, r.status))
        if r.status == 200:
            accepted(stack, r, uid, body, name, before)
        else:
            rejected(stack, r, (400,), name, before)
        stack.notes.append("%s: %d %s" % (name, r.status, r.body.strip()[:60]))
    return name, run


def obj(uid, member):
    return b'{"update_id": %d, "message": {"chat": {"id": 1}, "text": "x"}, %s}' % (
        uid, member)


def string_with(raw):
    return lambda uid: obj(uid, b'"t": "a' + raw + b'b"')


BODY_CASES = [
    # NUL bytes
    body_case("nul_raw_in_string", string_with(b"\x00")),
    body_case("nul_raw_between_tokens", lambda u: b'{"update_id": %d,\x00 "x": 1}' % u),
    body_case("nul_before_document", lambda u: b"\x00" + message(u)),
    body_case("nul_after_document", lambda u: message(u) + b"\x00"),
    body_case("nul_in_key", lambda u: obj(u, b'"k\x00": 1')),
    body_case("nul_in_number", lambda u: b'{"update_id": 1\x002}'),
    ok_case("nul_escaped_200", string_with(b"\\u0000")),
    # invalid UTF-8
    body_case("utf8_overlong_2", string_with(b"\xc0\xaf")),
    body_case("utf8_overlong_2_c1", string_with(b"\xc1\xbf")),
    body_case("utf8_overlong_3", string_with(b"\xe0\x80\xaf")),
    body_case("utf8_overlong_4", string_with(b"\xf0\x80\x80\xaf")),
    body_case("utf8_surrogate_high", string_with(b"\xed\xa0\x80")),
    body_case("utf8_surrogate_low", string_with(b"\xed\xbf\xbf")),
    body_case("utf8_above_10ffff", string_with(b"\xf4\x90\x80\x80")),
    body_case("utf8_f5_lead", string_with(b"\xf5\x80\x80\x80")),
    body_case("utf8_lone_continuation", string_with(b"\x80")),
    body_case("utf8_truncated_in_string", string_with(b"\xe2\x82")),
    body_case("utf8_truncated_at_end", lambda u: b'{"update_id": %d, "t": "\xf0\x9f\x98'
              % u),
    body_case("utf8_invalid_in_key", lambda u: obj(u, b'"\xc0\xaf": 1')),
    body_case("utf8_invalid_outside_string", lambda u: b'{"update_id": %d}\xc3' % u),
    body_case("utf8_bom", lambda u: b"\xef\xbb\xbf" + message(u)),
    ok_case("utf8_valid_4_byte_200", string_with("\U0010ffff😀".encode())),
    either_case("escaped_lone_surrogate", string_with(b"\\ud800")),
    # nesting: 100,000 levels
    body_case("nested_100000_arrays", lambda u: b"[" * 100000),
    body_case("nested_100000_arrays_in_update",
              lambda u: b'{"update_id": %d, "a": ' % u + b"[" * 100000 + b"]" * 100000
              + b"}"),
    body_case("nested_100000_objects", lambda u: b'{"a":' * 100000),
    body_case("nested_100000_objects_closed",
              lambda u: b'{"update_id": %d, "b": ' % u + b'{"a":' * 100000 + b"1" +
              b"}" * 100000 + b"}"),
    body_case("nested_101_levels", lambda u: b'{"update_id": %d, "a": ' % u +
              b"[" * 100 + b"]" * 100 + b"}"),
    # huge numbers
    body_case("update_id_1e999999", lambda u: b'{"update_id": 1e999999}'),
    body_case("update_id_10_pow_400", lambda u: b'{"update_id": 1%s}' % (b"0" * 400)),
    body_case("update_id_minus_10_pow_400",
              lambda u: b'{"update_id": -1%s}' % (b"0" * 400)),
    ok_case("huge_number_elsewhere_200", lambda u: obj(u, b'"n": 1e999999, "m": -1e-999999, '
            b'"k": 1' + b"0" * 1000)),
    # duplicate keys
    body_case("update_id_twice_same", lambda u: b'{"update_id": %d, "update_id": %d}' %
              (u, u)),
    body_case("update_id_twice_apart", lambda u: obj(u, b'"update_id": %d' % (u + 1))),
    body_case("update_id_twice_escaped", lambda u: b'{"update_id": %d, '
              b'"update\\u005fid": %d}' % (u, u)),
    either_case("update_id_escaped_key", lambda u: b'{"update\\u005fid": %d}' % u),
    # update_id types and ranges
    body_case("update_id_string", lambda u: b'{"update_id": "%d"}' % u),
    body_case("update_id_float", lambda u: b'{"update_id": %d.5}' % u),
    body_case("update_id_float_dot_zero", lambda u: b'{"update_id": %d.0}' % u),
    body_case("update_id_exponent", lambda u: b'{"update_id": 1e3}'),
    body_case("update_id_exponent_plus", lambda u: b'{"update_id": 12E+2}'),
    body_case("update_id_true", lambda u: b'{"update_id": true}'),
    body_case("update_id_null", lambda u: b'{"update_id": null}'),
    body_case("update_id_array", lambda u: b'{"update_id": [%d]}' % u),
    body_case("update_id_object", lambda u: b'{"update_id": {"id": %d}}' % u),
    body_case("update_id_plus_sign", lambda u: b'{"update_id": +%d}' % u),
    body_case("update_id_hex", lambda u: b'{"update_id": 0x10}'),
    body_case("update_id_nan", lambda u: b'{"update_id": NaN}'),
    body_case("update_id_infinity", lambda u: b'{"update_id": -Infinity}'),
    body_case("update_id_2_pow_63", lambda u: b'{"update_id": 9223372036854775808}'),
    body_case("update_id_minus_2_pow_63_minus_1",
              lambda u: b'{"update_id": -9223372036854775809}'),
    body_case("update_id_2_pow_64", lambda u: b'{"update_id": 18446744073709551616}'),
    body_case("update_id_2_pow_64_plus_5",
              lambda u: b'{"update_id": 18446744073709551621}'),
    # whitespace and emptiness
    body_case("whitespace_1mib", lambda u: b" \t\r\n" * (MiB // 4)),
    body_case("whitespace_only_small", lambda u: b"   "),
]


def case_int64_min_200(stack):
    uid = -9223372036854775808
    body = b'{"update_id": -9223372036854775808}'
    before = stack.queue.count()
    accepted(stack, stack.post(body), uid, body, "update_id -2^63", before)


def case_whitespace_padded_1mib_200(stack):
    """A valid update padded with whitespace to exactly 1 MiB (max_body and the
    snippet's client_max_body_size): 200, stored byte for byte."""
    uid = stack.next_uid()
    core = message(uid)
    half = (MiB - len(core)) // 2
    body = b" " * half + core + b"\n" * (MiB - len(core) - half)
    check(len(body) == MiB, "size")
    before = stack.queue.count()
    accepted(stack, stack.post(body), uid, body, "1 MiB padded", before)


# ------------------------------------------------------------------ headers

def case_header_64k_secret_nginx(stack):
    """A 64 KiB secret header: nginx refuses it itself (400/431/494) or closes;
    nothing stored."""
    uid = stack.next_uid()
    before = stack.queue.count()
    raw = ("POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n" % (SECRET_HEADER, "A" * (64 * KiB),
                                          len(message(uid)))).encode() + message(uid)
    r = h.raw_request(stack.port, raw)
    stack.statuses.append(r.status)
    rejected(stack, r, (0, 400, 431, 494), "64 KiB secret header", before)


def case_headers_64k_many_nginx(stack):
    """64 KiB of headers (64 of 1 KiB) with the right secret: nginx refuses them
    (400/431/494) or passes them; either way the answer and the rows agree."""
    uid = stack.next_uid()
    body = message(uid)
    before = stack.queue.count()
    junk = "".join("X-Junk-%d: %s\r\n" % (i, "j" * 1000) for i in range(64))
    raw = ("POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n%s"
           "Content-Type: application/json\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n" % (SECRET_HEADER, stack.secret, junk,
                                          len(body))).encode() + body
    r = h.raw_request(stack.port, raw)
    stack.statuses.append(r.status)
    if r.status == 200:
        accepted(stack, r, uid, body, "64 KiB of headers", before)
    else:
        rejected(stack, r, (0, 400, 431, 494), "64 KiB of headers", before)
    stack.notes.append("64 x 1 KiB headers through nginx: %d" % r.status)


def case_url_64k_nginx(stack):
    before = stack.queue.count()
    raw = ("POST /telegram/%s/webhook HTTP/1.1\r\nHost: localhost\r\n"
           "Connection: close\r\nContent-Length: 0\r\n\r\n" % ("u" * 64 * KiB)).encode()
    r = h.raw_request(stack.port, raw)
    stack.statuses.append(r.status)
    rejected(stack, r, (0, 400, 414, 494), "64 KiB URL", before)


def case_nul_in_path_nginx(stack):
    uid = stack.next_uid()
    before = stack.queue.count()
    r = stack.post(message(uid), path="/telegram/webhook/%00")
    rejected(stack, r, (400, 401, 404), "%00 in the path", before)
    r = stack.post(message(uid), path="/telegram/webhook%00/x")
    rejected(stack, r, (400, 401, 404), "%00 in the path", before)


def cgi_case(name, env, body, statuses):
    def run(stack):
        before = stack.queue.count()
        e = {k: (v.replace("{s}", stack.secret) if isinstance(v, str) else v)
             for k, v in env.items()}
        r = stack.direct(e, body)
        rejected(stack, r, statuses, name, before)
    return name, run


CGI_CASES = [
    cgi_case("cgi_secret_header_64k_401",
             {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": "A" * (64 * KiB)}, message(1),
             (401,)),
    cgi_case("cgi_secret_header_64k_starting_with_secret_401",
             {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": "{s}" + "A" * (64 * KiB)},
             message(1), (401,)),
    cgi_case("cgi_secret_header_non_ascii_401",
             {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": "\u00e9" * 40}, message(1),
             (401,)),
    cgi_case("cgi_path_segment_64k",
             {"REQUEST_URI": "/telegram/webhook/" + "s" * (64 * KiB)}, message(1),
             (401, 404)),
    cgi_case("cgi_request_uri_64k",
             {"REQUEST_URI": "/" + "p" * (64 * KiB) + "/webhook"}, message(1),
             (404,)),
    cgi_case("cgi_other_header_64k",
             {"HTTP_X_JUNK": "j" * (64 * KiB), "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN":
              "wrong"}, message(1), (401,)),
    cgi_case("cgi_content_type_64k",
             {"CONTENT_TYPE": "application/json;" + "x" * (64 * KiB),
              "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": "wrong"}, message(1), (401,)),
    cgi_case("cgi_content_length_1mib_short_body_400", {"CONTENT_LENGTH": str(MiB)},
             message(1), (400,)),
    cgi_case("cgi_content_length_2_pow_63_413",
             {"CONTENT_LENGTH": "9223372036854775808"}, message(1), (413,)),
    cgi_case("cgi_content_length_400_digits_413", {"CONTENT_LENGTH": "9" * 400},
             message(1), (413,)),
    cgi_case("cgi_content_length_int64_max_413",
             {"CONTENT_LENGTH": "9223372036854775807"}, message(1), (413,)),
    cgi_case("cgi_content_length_hex_400", {"CONTENT_LENGTH": "0x10"}, message(1),
             (400,)),
    cgi_case("cgi_content_length_spaces_400", {"CONTENT_LENGTH": " 12"}, message(1),
             (400,)),
    cgi_case("cgi_body_nul_400", {}, b"\x00" * 1000, (400,)),
]


def case_cgi_content_type_64k_right_secret(stack):
    """A 64 KiB Content-Type that is not JSON, with the right secret: 415."""
    uid = stack.next_uid()
    before = stack.queue.count()
    r = stack.direct({"CONTENT_TYPE": "text/plain;" + "x" * (64 * KiB)}, message(uid))
    rejected(stack, r, (415,), "64 KiB Content-Type", before)


def case_short_body_nginx(stack):
    """Content-Length 1,000,000 and 200 bytes, then the client's half-close: nginx
    never passes a short body on (400 or a close); nothing stored.  Then a
    Content-Length of 20 digits: refused (400/413)."""
    uid = stack.next_uid()
    before = stack.queue.count()
    head = ("POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n" %
            (SECRET_HEADER, stack.secret)).encode()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as s:
        s.sendall(head + message(uid)[:200])
        s.shutdown(socket.SHUT_WR)
        data = b""
        for _ in range(1000):
            c = s.recv(65536)
            if not c:
                break
            data += c
    r = h.parse_http_response(data)
    stack.statuses.append(r.status)
    rejected(stack, r, (0, 400), "Content-Length larger than the body", before)
    for cl in ("99999999999999999999", "1048577", "-1"):
        raw = ("POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %s\r\n"
               "Connection: close\r\n\r\n" % (SECRET_HEADER, stack.secret,
                                              cl)).encode() + message(uid)
        r = h.raw_request(stack.port, raw)
        stack.statuses.append(r.status)
        rejected(stack, r, (0, 400, 413), "Content-Length %s" % cl, before)


# ------------------------------------------------------------------ timing

def mann_whitney_p(a, b):
    """Two-sided p value of the Mann-Whitney U test (normal approximation with
    the tie correction; fine for samples of hundreds)."""
    n1, n2 = len(a), len(b)
    allv = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(allv)
    ties = 0.0
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        r = (i + j) / 2.0 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, allv) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (abs(u1 - mu) - 0.5) / sigma
    return math.erfc(max(0.0, z) / math.sqrt(2))


def case_secret_timing(stack):
    """Wrong secrets of the right length, differing from it in the first or in the
    last byte, alternating in random order over one keep-alive connection: the two
    distributions of answer times must not be told apart (Mann-Whitney U, two-sided
    p > 0.001).  No absolute time is asserted.  Telling them apart would take a
    gross early exit; the comparison itself is checked in C (secret_equal_*)."""
    s = stack.secret

    def flip(c):
        return "B" if c != "B" else "C"

    first = flip(s[0]) + s[1:]
    last = s[:-1] + flip(s[-1])
    check(len(first) == len(last) == len(s), "lengths")
    body = message(stack.next_uid())
    hdr = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    times = {0: [], 1: []}
    rng = random.Random(7)
    before = stack.queue.count()
    n = 1500
    try:
        for i in range(100 + n):
            order = [0, 1] if rng.random() < 0.5 else [1, 0]
            for which in order:
                hdr[SECRET_HEADER] = first if which == 0 else last
                t0 = time.perf_counter()
                r = h.request(stack.port, "POST", "/telegram/webhook", hdr, body,
                              conn=conn)
                dt = time.perf_counter() - t0
                check(r.status == 401, "wrong secret: %d" % r.status)
                if i >= 100:
                    times[which].append(dt)
    finally:
        conn.close()
    stack.statuses.append(401)
    check(stack.queue.count() == before, "rows added by wrong secrets")
    p = mann_whitney_p(times[0], times[1])
    med = [sorted(times[k])[len(times[k]) // 2] * 1e6 for k in (0, 1)]
    stack.notes.append("secret timing: %d x 2 tries, median %.0f us (first byte "
                       "wrong) vs %.0f us (last byte wrong), Mann-Whitney p = %.3f" %
                       (n, med[0], med[1], p))
    check(p > 0.001, "the answer times differ with where the secret differs "
          "(Mann-Whitney p = %.2g, medians %.0f vs %.0f us)" % (p, med[0], med[1]))


# ------------------------------------------------------------------ slowloris

def snippet_seconds(key):
    with open(h.NGINX_SNIPPET) as f:
        m = re.search(r"^\s*%s\s+(\d+)s?;" % key, f.read(), re.M)
    return int(m.group(1)) if m else 60


def case_slowloris(stack):
    """50 clients send their headers, then the body one byte a second for 8 s,
    then nothing.  While they are connected, 20 normal updates get 200 (nginx
    buffers bodies: a slow client holds an nginx connection, not a tgq-webhook
    thread).  Once they stall, each ends (408 or a close) within the snippet's
    client_body_timeout + 10 s; nothing of theirs is stored.

    client_body_timeout is a timeout between two reads, so a client that keeps
    trickling is never ended by it (only by client_max_body_size at 1 byte/s): the
    test bounds its clients itself."""
    timeout_s = snippet_seconds("client_body_timeout")
    trickle_s, n_slow = 8, 50
    before = stack.queue.count()
    lock = threading.Lock()
    ends = []           # (status, seconds from the last byte to the end)
    errors = []
    open_now = [0]
    ready = threading.Barrier(n_slow + 1, timeout=30)

    def slow(k):
        uid = 8_000_000 + k
        body = message(uid, text="s" * 500)
        head = ("POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n%s: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
                (SECRET_HEADER, stack.secret, len(body))).encode()
        try:
            with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as s:
                s.sendall(head)
                with lock:
                    open_now[0] += 1
                try:
                    ready.wait()
                except threading.BrokenBarrierError:
                    pass
                closed = False
                for i in range(trickle_s):
                    try:
                        s.sendall(body[i:i + 1])
                    except OSError:
                        closed = True
                        break
                    time.sleep(1.0)
                last = time.monotonic()
                s.settimeout(timeout_s + 10)
                data = b""
                try:
                    for _ in range(100):
                        c = s.recv(4096)
                        if not c:
                            break
                        data += c
                except socket.timeout:
                    with lock:
                        errors.append("slow client %d still open %d s after its "
                                      "last byte" % (k, timeout_s + 10))
                    return
                except OSError:
                    pass
                r = h.parse_http_response(data)
                with lock:
                    ends.append((r.status, time.monotonic() - last, closed))
        except OSError as e:
            with lock:
                errors.append("slow client %d: %s" % (k, e))
        finally:
            with lock:
                open_now[0] -= 1

    threads = [threading.Thread(target=slow, args=(k,), daemon=True)
               for k in range(n_slow)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    # The slow clients are connected and trickling: normal traffic goes through.
    ok = 0
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=15)
    uids = [stack.next_uid() for _ in range(20)]
    try:
        for uid in uids:
            r = stack.post(message(uid), conn=conn, timeout=15)
            check(r.status == 200, "a normal update during slowloris: %d" % r.status)
            ok += 1
    finally:
        conn.close()
    with lock:
        still = open_now[0]
    check(still == n_slow, "only %d of %d slow clients were still connected when the "
          "normal requests were done" % (still, n_slow))
    for t in threads:
        t.join(trickle_s + timeout_s + 30)
    check(not any(t.is_alive() for t in threads), "slow clients still running")
    check(not errors, "; ".join(errors[:3]))
    check(len(ends) == n_slow, "%d of %d slow clients ended" % (len(ends), n_slow))
    bad = [e for e in ends if e[0] not in (0, 408)]
    check(not bad, "slow clients answered %r" % sorted({e[0] for e in bad}))
    late = [e for e in ends if e[1] > timeout_s + 10]
    check(not late, "%d slow clients ended later than %d s after their last byte" %
          (len(late), timeout_s + 10))
    for uid in uids:
        check(stack.queue.count("update_id = ?", (uid,)) == 1, "update %d: no row" %
              uid)
    check(stack.queue.count() == before + len(uids),
          "rows: %d added, expected %d (a slow client's update was stored?)" %
          (stack.queue.count() - before, len(uids)))
    stack.notes.append("slowloris: %d normal updates answered 200 while %d slow "
                       "clients trickled; the slow ones ended %.1f-%.1f s after their "
                       "last byte (%s)" % (
                           ok, n_slow, min(e[1] for e in ends), max(e[1] for e in ends),
                           ", ".join("%s: %d" % (s or "closed", n) for s, n in sorted(
                               {e[0]: sum(1 for x in ends if x[0] == e[0])
                                for e in ends}.items()))))


# ------------------------------------------------------------------ final

def case_secret_not_logged(stack):
    h.check_not_logged(stack.logs(), [stack.secret, stack.secret[:12]],
                       "the webhook's log")
    try:
        with open(os.path.join(stack.tmpdir, "nginx-error.log"), errors="replace") as f:
            if stack.secret in f.read():
                stack.notes.append("nginx's error log holds the secret (nginx "
                                   "logged a refused header)")
    except OSError:
        pass


def case_never_410(stack):
    check(stack.statuses, "no requests were made")
    check(410 not in stack.statuses, "a 410 was answered")


FINAL = [("secret_not_logged", case_secret_not_logged), ("never_410", case_never_410)]


def groups(ctx):
    cases = BODY_CASES + [
        ("update_id_int64_min_200", case_int64_min_200),
        ("whitespace_padded_1mib_200", case_whitespace_padded_1mib_200),
        ("header_64k_secret_nginx", case_header_64k_secret_nginx),
        ("headers_64k_many_nginx", case_headers_64k_many_nginx),
        ("url_64k_nginx", case_url_64k_nginx),
        ("nul_in_path_nginx", case_nul_in_path_nginx),
        ("short_body_nginx", case_short_body_nginx),
        ("cgi_content_type_64k_right_secret_415",
         case_cgi_content_type_64k_right_secret),
    ] + CGI_CASES + [("secret_timing_no_early_exit", case_secret_timing)] + FINAL
    return [
        ("hostile", lambda: Stack(ctx), cases),
        ("hostile-slow", lambda: Stack(ctx, "hostile-slow"),
         [("slowloris_50_clients", case_slowloris)] + FINAL),
    ]
