"""Integration cases for operating tgq: /metrics across several worker processes,
the IP allowlist and trusted proxies (IPv4 and IPv6), systemd socket activation,
two bots through one endpoint, and what `make install` puts where."""

import os
import re
import shutil
import subprocess
import threading
import time

import harness as h
from fake_botapi import FakeBotAPI

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
JSON = {"Content-Type": "application/json"}


Skip = h.Skip
check = h.check


def update(uid, chat=42, text="hi"):
    return ('{"update_id":%d,"message":{"chat":{"id":%d,"type":"private"},'
            '"text":"%s"}}' % (uid, chat, text)).encode()


def parse_metrics(text):
    """Prometheus text format: {(name, labels): value}; checks HELP/TYPE come
    before each family's series, that counters end in _total, and that each
    histogram's buckets are cumulative, in ascending le, and end in +Inf equal
    to its _count."""
    values, typed = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            check(name not in typed, "HELP after TYPE for %s" % name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            typed[name] = kind
            check(kind in ("counter", "gauge", "histogram"), "type %s" % kind)
            check(kind == "histogram" or
                  (kind == "counter") == name.endswith("_total"),
                  "%s is a %s" % (name, kind))
        elif line:
            m = re.match(r'^([a-z0-9_]+)(\{[^}]*\})? (\d+(?:\.\d+)?)$', line)
            check(m is not None, "not a sample line: %r" % line)
            family = m.group(1)
            if family not in typed:
                family = re.sub(r"_(bucket|sum|count)$", "", family)
                check(typed.get(family) == "histogram", "%s has no # TYPE "
                      "before it" % m.group(1))
            else:
                check(typed[family] != "histogram", "%s: a histogram's sample "
                      "without a suffix" % family)
            text_value = m.group(3)
            values[(m.group(1), m.group(2) or "")] = (
                float(text_value) if "." in text_value else int(text_value))
    for name in (n for n, kind in typed.items() if kind == "histogram"):
        for (series, labels), count in list(values.items()):
            if series != name + "_count":
                continue
            inner = labels[1:-1]
            buckets = [(le, v) for (n, l), v in values.items()
                       if n == name + "_bucket" and
                       re.sub(r',le="[^"]*"', "", l)[1:-1] == inner
                       for le in re.findall(r'le="([^"]*)"', l)]
            check(buckets and buckets[-1][0] == "+Inf", "%s%s: no +Inf bucket "
                  "last" % (name, labels))
            bounds = [float(le) for le, _ in buckets[:-1]]
            check(bounds == sorted(bounds) and len(set(bounds)) == len(bounds),
                  "%s%s: le not ascending: %r" % (name, labels, bounds))
            counts = [v for _, v in buckets]
            check(counts == sorted(counts), "%s%s: buckets not cumulative: %r"
                  % (name, labels, counts))
            check(counts[-1] == count, "%s%s: +Inf %d, _count %d" % (
                name, labels, counts[-1], count))
            check((name + "_sum", labels) in values, "%s%s: no _sum" %
                  (name, labels))
    return values


def hist_count(m, name, bot):
    return m.get(("%s_count" % name, '{bot="%s"}' % bot))


class Stack(h.TempStack):
    """nginx with several tgq-webhook backends, one location each."""

    def __init__(self, ctx, backends, procs=4):
        super().__init__(ctx, "tgq-ops-")
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        self.backends = backends      # {location prefix: extra environment}
        self.procs = procs
        self.webhooks = []
        self.server = None

    def env(self, **over):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret}
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        env.update(over)
        return env

    def start(self):
        locations = []
        # /telegram/ first: the shipped snippet serves it, with the first backend.
        order = sorted(self.backends.items(), key=lambda kv: kv[0] != "/telegram/")
        for i, (prefix, extra) in enumerate(order):
            w = h.Webhook(self.ctx.binary, self.tmpdir, self.env(**extra),
                          self.procs if i == 0 else 1, "webhook%d" % i).start()
            self.webhooks.append(w)
            if prefix != "/telegram/":
                locations.append("location %s { include fastcgi_params; "
                                 "fastcgi_pass unix:%s; }" % (prefix, w.socket))
        self.port6 = h.free_port()
        extra = "\n".join(locations)
        self.server = h.Nginx(self.tmpdir, self.webhooks[0].socket, extra,
                              listen6=self.port6).start()
        return self

    def req(self, method, path, headers=None, body=None, host="127.0.0.1"):
        port = self.server.port if host == "127.0.0.1" else self.port6
        return h.request(port, method, path, headers, body, host=host)

    def post(self, path, uid, secret=None, extra=None, **kw):
        headers = dict(JSON)
        headers[SECRET_HEADER] = secret or self.secret
        headers.update(extra or {})
        return self.req("POST", path, headers, update(uid), **kw)

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET")

    def logs(self):
        return "".join(w.log_text() for w in self.webhooks)

    def stop(self):
        if self.server:
            self.server.stop()
        for w in self.webhooks:
            w.stop()


# ------------------------------------------------------------------ metrics

def reads_of(pid):
    """The read calls a process made so far (/proc/PID/io, all its threads)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("syscr:"):
                return int(line.split()[1])
    raise AssertionError("no syscr in /proc/%d/io" % pid)


def case_metrics(stack):
    """Counters through nginx and 4 webhook processes, each request counted once
    whichever process served it; the queue's depth; and the drain's counters."""
    sent = {"received": 0, "duplicate": 0, "secret": 0, "size": 0, "type": 0,
            "body": 0, "route": 0, "method": 0}
    # From 8 connections at once, so that nginx opens several upstream connections
    # and more than one process serves: the sum across processes is the point.
    # Which process accepts is the kernel's choice, and on a busy machine one may
    # take a whole batch: then another batch is sent (at most 3).
    pids = stack.webhooks[0].pids
    reads_before = {p: reads_of(p) for p in pids}
    batches = 0
    serving = []
    while batches < 3 and len(serving) < 2:
        first = 1 + 120 * batches
        statuses = {}

        def poster(start):
            for uid in range(start, first + 120, 8):
                statuses[uid] = stack.post("/telegram/webhook", uid).status
        threads = [threading.Thread(target=poster, args=(first + i,), daemon=True)
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(sorted(statuses) == list(range(first, first + 120)) and
              set(statuses.values()) == {200}, "posts: %r" % sorted(
                  set(statuses.values())))
        batches += 1
        sent["received"] += 120
        # A process that served requests made read calls; an idle one sits in
        # accept.
        serving = [p for p in pids if reads_of(p) - reads_before[p] >= 10]
    check(len(serving) >= 2, "only %d of the %d webhook processes served %d "
          "batches of 120 concurrent posts: the sum across processes is not "
          "tested" % (len(serving), len(pids), batches))
    for uid in range(1, 31):
        check(stack.post("/telegram/webhook", uid).status == 200, "duplicate")
        sent["duplicate"] += 1
    for uid in range(25):
        check(stack.post("/telegram/webhook", 1000 + uid, secret="wrong").status ==
              401, "401")
        sent["secret"] += 1
    big = b'{"update_id":5000,"pad":"' + b"x" * 3000 + b'"}'
    for _ in range(7):
        r = stack.req("POST", "/telegram/webhook", dict(JSON, **{
            SECRET_HEADER: stack.secret}), big)
        check(r.status == 413, "413: %d" % r.status)
        sent["size"] += 1
    for _ in range(5):
        r = stack.req("POST", "/telegram/webhook", {SECRET_HEADER: stack.secret,
                                                   "Content-Type": "text/plain"},
                      update(6000))
        check(r.status == 415, "415")
        sent["type"] += 1
    for _ in range(9):
        r = stack.req("POST", "/telegram/webhook", dict(JSON, **{
            SECRET_HEADER: stack.secret}), b'{"no":"update_id"}')
        check(r.status == 400, "400")
        sent["body"] += 1
    for _ in range(4):
        check(stack.req("GET", "/telegram/nothing").status == 404, "404")
        sent["route"] += 1
    for _ in range(3):
        check(stack.req("GET", "/telegram/webhook").status == 405, "405")
        sent["method"] += 1
    r = stack.req("GET", "/telegram/metrics")
    check(r.status == 200 and r.header("Content-Type").startswith("text/plain; "
          "version=0.0.4"), "metrics: %d %s" % (r.status, r.header("Content-Type")))
    m = parse_metrics(r.body.decode())
    want = {("tgq_updates_received_total", ""): sent["received"],
            ("tgq_updates_duplicate_total", ""): sent["duplicate"],
            ("tgq_queue_updates", '{bot="default",state="new"}'): 120 * batches,
            ("tgq_queue_up", ""): 1}
    for reason in ("secret", "size", "type", "body", "route", "method"):
        want[("tgq_requests_rejected_total", '{reason="%s"}' % reason)] = sent[reason]
    want[("tgq_requests_rejected_total", '{reason="ip"}')] = 0
    for key, value in want.items():
        check(m.get(key) == value, "%s%s = %r, expected %d" % (key[0], key[1],
                                                              m.get(key), value))
    age = m.get(("tgq_oldest_pending_age_seconds", '{bot="default"}'))
    check(age is not None and 0 <= age <= 3600 and
          ("tgq_oldest_pending_age_seconds", "") not in m,
          "oldest age by bot: %r" % age)
    # Every update answered 200 (stored or a duplicate) is timed once, by
    # whichever process served it; the refused ones are not.
    answered = sent["received"] + sent["duplicate"]
    ingest = hist_count(m, "tgq_ingest_duration_seconds", "default")
    check(ingest == answered, "ingest histogram counts %r, expected %d" %
          (ingest, answered))
    check(m[("tgq_ingest_duration_seconds_sum", '{bot="default"}')] > 0,
          "ingest histogram's sum")
    check(hist_count(m, "tgq_handler_duration_seconds", "default") == 0,
          "handler runs before any drain")
    stack.notes.append("metrics: %d requests counted, by a webhook of %d processes "
                       "(%d of them served the concurrent posts, in %d batches)"
                       % (sum(sent.values()), len(pids), len(serving), batches))

    # The drain adds to the same counters.
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
    tfile = os.path.join(stack.tmpdir, "bot-token")
    with open(tfile, "w") as f:
        f.write(token)
    h.chown_run_user(tfile)
    with FakeBotAPI(tokens={token: "default"}, limits=False) as api:
        api.script([{"status": 429, "retry_after": 1}], method="sendMessage")
        api.script([{"status": 403, "description": "Forbidden: bot was blocked by "
                     "the user"}], method="sendMessage", chat_id=42)
        drain(stack, tfile, api.url, TGQ_RATE_GLOBAL=0, TGQ_RATE_CHAT=0)
        calls_made = len(api.calls("sendMessage"))
    m = parse_metrics(stack.req("GET", "/telegram/metrics").body.decode())
    # One handler run per update (echo: no failures), one call timed per
    # request the Bot API answered (the 429 and the 403 included).
    runs = hist_count(m, "tgq_handler_duration_seconds", "default")
    check(runs == 120 * batches, "handler histogram counts %r, expected %d" %
          (runs, 120 * batches))
    timed = hist_count(m, "tgq_call_duration_seconds", "default")
    check(timed == calls_made, "call histogram counts %r, the Bot API answered "
          "%d" % (timed, calls_made))
    # The same outcomes by bot (one bot here: its series equal the totals).
    for outcome, total in (("sent", "tgq_calls_sent_total"), ("429",
                           "tgq_calls_429_total"), ("dead", "tgq_calls_dead_total"),
                           ("retried", "tgq_calls_retried_total")):
        got = m.get(("tgq_bot_calls_total", '{bot="default",outcome="%s"}' %
                     outcome))
        check(got == m[(total, "")], "tgq_bot_calls_total %s: %r, %s %d" % (
            outcome, got, total, m[(total, "")]))
    check(m[("tgq_updates_handled_total", "")] == 120 * batches, "handled %r" %
          m[("tgq_updates_handled_total", "")])
    check(m[("tgq_calls_sent_total", "")] + m[("tgq_calls_dead_total", "")] ==
          120 * batches and
          m[("tgq_calls_dead_total", "")] >= 1 and m[("tgq_calls_429_total", "")] == 1,
          "sent %d dead %d 429 %d" % (m[("tgq_calls_sent_total", "")],
                                      m[("tgq_calls_dead_total", "")],
                                      m[("tgq_calls_429_total", "")]))
    check(("tgq_queue_updates", '{bot="default",state="new"}') not in m,
          "updates still new after the drain")


def drain(stack, token_file, api_url, **env):
    kw = {}
    if h.IS_ROOT:
        uid, gid = h.run_ids()
        kw = {"user": uid, "group": gid, "extra_groups": []}
    e = stack.env(TGQ_BOT_TOKEN_FILE=token_file, TGQ_API_URL=api_url, **env)
    if stack.ctx.asan:
        e.update(h.sanitizer_options(stack.tmpdir, leaks=True))  # --once ends
    r = subprocess.run([os.path.join(stack.ctx.bindir, "tgq-drain"), "--once"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120, env=h.base_env(e), cwd=stack.tmpdir, **kw)
    check(r.returncode == 0, "drain: %d %s" % (r.returncode, r.stderr[-500:]))
    return r


def case_rejections_write_nothing(stack):
    """A flood of refused requests changes nothing in the database files."""
    check(stack.post("/telegram/webhook", 1).status == 200, "first post")
    files = [stack.db, stack.db + "-wal"]
    before = [(os.path.getsize(f), os.stat(f).st_mtime_ns) for f in files
              if os.path.exists(f)]
    for uid in range(500):
        check(stack.post("/telegram/webhook", 10 + uid, secret="nope").status == 401,
              "401")
    after = [(os.path.getsize(f), os.stat(f).st_mtime_ns) for f in files
             if os.path.exists(f)]
    check(before == after, "the database files changed: %r -> %r" % (before, after))
    m = parse_metrics(stack.req("GET", "/telegram/metrics").body.decode())
    check(m[("tgq_requests_rejected_total", '{reason="secret"}')] == 500,
          "secret rejections %r" % m[("tgq_requests_rejected_total",
                                      '{reason="secret"}')])


# ------------------------------------------------------------------ allowlist

ALLOW = {
    "/telegram/": {"TGQ_ALLOWED_IPS": "127.0.0.1/32"},
    "/refuse/": {"TGQ_ALLOWED_IPS": "10.0.0.0/8, 2001:db8::/32"},
    "/proxied/": {"TGQ_ALLOWED_IPS": "203.0.113.0/24", "TGQ_TRUSTED_PROXIES":
                  "127.0.0.1, ::1"},
    "/spoof/": {"TGQ_ALLOWED_IPS": "203.0.113.0/24"},
    "/six/": {"TGQ_ALLOWED_IPS": "::1/128"},
    "/preset/": {"TGQ_ALLOWED_IPS": "telegram", "TGQ_TRUSTED_PROXIES": "127.0.0.1"},
}


def case_allowlist(stack):
    uid = iter(range(100, 1000))
    cases = [
        ("/telegram/webhook", {}, "127.0.0.1", 200, "allowed"),
        ("/refuse/webhook", {}, "127.0.0.1", 403, "not in the list"),
        ("/refuse/webhook", {}, "::1", 403, "IPv6 not in the list"),
        ("/six/webhook", {}, "::1", 200, "IPv6 allowed"),
        ("/six/webhook", {}, "127.0.0.1", 403, "IPv4 against an IPv6 list"),
        ("/proxied/webhook", {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1", 200,
         "client behind a trusted proxy"),
        ("/proxied/webhook", {"X-Forwarded-For": "203.0.113.7"}, "::1", 200,
         "trusted IPv6 proxy"),
        ("/proxied/webhook", {"X-Forwarded-For": "198.51.100.1"}, "127.0.0.1", 403,
         "client not allowed behind a trusted proxy"),
        ("/proxied/webhook", {"X-Forwarded-For": "203.0.113.7, 198.51.100.1"},
         "127.0.0.1", 403, "the rightmost untrusted address counts"),
        ("/proxied/webhook", {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"},
         "127.0.0.1", 200, "what the client wrote on the left is ignored"),
        ("/proxied/webhook", {}, "127.0.0.1", 403, "a trusted proxy without the "
         "header is the client"),
        ("/spoof/webhook", {"X-Forwarded-For": "203.0.113.7"}, "127.0.0.1", 403,
         "a spoofed header from an untrusted peer"),
        ("/preset/webhook", {"X-Forwarded-For": "149.154.167.220"}, "127.0.0.1",
         200, "Telegram's published range"),
        ("/preset/webhook", {"X-Forwarded-For": "91.108.8.1"}, "127.0.0.1", 403,
         "just outside Telegram's range"),
    ]
    refused = 0
    for path, headers, host, status, what in cases:
        u = next(uid)
        before = stack.queue.count("update_id = ?", (u,)) if os.path.exists(
            stack.db) else 0
        r = stack.post(path, u, extra=headers, host=host)
        check(r.status == status, "%s: %s from %s: %d, expected %d" %
              (what, path, host, r.status, status))
        if status == 403:
            refused += 1
            check(r.body == b"forbidden\n", "%s: body %r" % (what, r.body))
            check(stack.queue.count("update_id = ?", (u,)) == before,
                  "%s: stored" % what)
    # Refused before the secret is looked at: a wrong secret from a refused
    # address is a 403, not a 401.
    r = stack.post("/refuse/webhook", 999, secret="wrong")
    check(r.status == 403, "wrong secret from a refused address: %d" % r.status)
    m = parse_metrics(stack.req("GET", "/telegram/metrics").body.decode())
    check(m[("tgq_requests_rejected_total", '{reason="ip"}')] == refused + 1,
          "ip rejections %r, expected %d" % (m[("tgq_requests_rejected_total",
                                                '{reason="ip"}')], refused + 1))


# ------------------------------------------------------------------ socket activation

class ActivationStack(Stack):
    """tgq-webhook started by systemd-socket-activate, the way systemd starts it
    from tgq-webhook.socket: the listening socket arrives as fd 3 (LISTEN_FDS)."""

    def start(self):
        if not shutil.which("systemd-socket-activate", path=h.SEARCH_PATH):
            raise Skip("systemd-socket-activate is not installed")
        self.sock = os.path.join(self.tmpdir, "activated.sock")
        env = ["-E%s=%s" % kv for kv in self.env().items()]
        kw = {}
        if h.IS_ROOT:
            uid, gid = h.run_ids()
            kw = {"user": uid, "group": gid, "extra_groups": []}
        self.log = open(os.path.join(self.tmpdir, "activate.log"), "ab")
        self.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", self.sock] + env + [self.ctx.binary],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            cwd=self.tmpdir, env=h.base_env({}), **kw)
        h.wait_path(self.sock)
        self.port6 = h.free_port()
        self.server = h.Nginx(self.tmpdir, self.sock, "", listen6=self.port6).start()
        return self

    def stop(self):
        if self.server:
            self.server.stop()
        if getattr(self, "proc", None):
            h.stop_popen(self.proc)
            self.log.close()

    def logs(self):
        with open(os.path.join(self.tmpdir, "activate.log"), errors="replace") as f:
            return f.read()


def case_socket_activation(stack):
    for uid in range(1, 21):
        r = stack.post("/telegram/webhook", uid)
        check(r.status == 200, "post %d through the activated socket: %d" %
              (uid, r.status))
    check(stack.queue.count() == 20, "rows: %d" % stack.queue.count())
    check("serving FastCGI" in stack.logs(), "log: %s" % stack.logs()[-300:])


# ------------------------------------------------------------------ two bots

def case_two_bots(stack):
    """Two bots, one endpoint: each update lands under its bot, and each reply
    leaves with its bot's token."""
    tokens = {"alpha": "111111111:AAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
              "beta": "222222222:BBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}
    secrets = {"alpha": h.new_secret(), "beta": h.new_secret()}
    conf = os.path.join(stack.tmpdir, "bots.conf")
    lines = ["[tgq]", "database = %s" % stack.db]
    for bot in ("alpha", "beta"):
        for kind, value in (("token", tokens[bot]), ("secret", secrets[bot])):
            path = os.path.join(stack.tmpdir, "%s-%s" % (bot, kind))
            with open(path, "w") as f:
                f.write(value + "\n")
            os.chmod(path, 0o600)
            h.chown_run_user(path)
        lines += ["[bot %s]" % bot, "token_file = %s-token" % bot,
                  "secret_file = %s-secret" % bot, "handler = echo"]
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    h.chown_run_user(conf)
    w = h.Webhook(stack.ctx.binary, stack.tmpdir, {"TGQ_CONFIG": conf}, 2,
                  "twobots").start()
    stack.webhooks.append(w)
    n = h.Nginx(stack.tmpdir, w.socket, port=None)
    n.start()
    try:
        def post(path, secret, uid, chat):
            return h.request(n.port, "POST", path, dict(JSON, **{SECRET_HEADER: secret}),
                             update(uid, chat, "to %s" % path))
        # By name in the path (header must hold that bot's secret) or by secret.
        check(post("/telegram/webhook/alpha", secrets["alpha"], 1, 11).status == 200,
              "alpha by name")
        check(post("/telegram/webhook", secrets["beta"], 1, 22).status == 200,
              "beta by its secret (the same update_id: another bot's space)")
        check(post("/telegram/webhook/" + secrets["alpha"], secrets["alpha"], 2,
                   11).status == 200, "alpha by the secret in the path")
        check(post("/telegram/webhook/alpha", secrets["beta"], 3, 11).status == 401,
              "alpha's path with beta's secret")
        rows = sorted(stack.queue.query("SELECT bot, update_id FROM updates"))
        check(rows == [("alpha", 1), ("alpha", 2), ("beta", 1)], "rows %r" % rows)
        with FakeBotAPI(tokens={tokens["alpha"]: "alpha", tokens["beta"]: "beta"},
                        limits=False) as api:
            kw = {}
            if h.IS_ROOT:
                uid, gid = h.run_ids()
                kw = {"user": uid, "group": gid, "extra_groups": []}
            env = {"TGQ_CONFIG": conf, "TGQ_API_URL": api.url}
            if stack.ctx.asan:
                env.update(h.sanitizer_options(stack.tmpdir, leaks=True))
            r = subprocess.run([os.path.join(stack.ctx.bindir, "tgq-drain"),
                                "--once"], capture_output=True, text=True,
                               timeout=60, env=h.base_env(env), cwd=stack.tmpdir,
                               stdin=subprocess.DEVNULL, **kw)
            check(r.returncode == 0, "drain: %s" % r.stderr[-400:])
            calls = sorted((c["bot"], c["params"]["chat_id"]) for c in
                           api.calls("sendMessage"))
            check(calls == [("alpha", 11), ("alpha", 11), ("beta", 22)],
                  "calls by bot: %r" % calls)
            # Each bot's histograms count its own: 2 updates of alpha's, 1 of
            # beta's, through two webhook processes and the drain.
            m = parse_metrics(h.request(n.port, "GET", "/telegram/metrics")
                              .body.decode())
            for name in ("tgq_ingest_duration_seconds",
                         "tgq_handler_duration_seconds",
                         "tgq_call_duration_seconds"):
                got = (hist_count(m, name, "alpha"), hist_count(m, name, "beta"))
                check(got == (2, 1), "%s by bot (alpha, beta): %r" % (name, got))
            sent = tuple(m.get(("tgq_bot_calls_total", '{bot="%s",outcome="sent"}'
                                % bot)) for bot in ("alpha", "beta"))
            check(sent == (2, 1), "calls sent by bot (alpha, beta): %r" % (sent,))
            logs = r.stderr + w.log_text()
            h.check_not_logged(logs, list(tokens.values()) + list(secrets.values()),
                               "the drain's and the webhook's logs")
    finally:
        n.stop()


# ------------------------------------------------------------------ install

def case_install(stack):
    dest = os.path.join(stack.tmpdir, "dest")
    r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr",
                        "B=" + stack.ctx.build], cwd=h.ROOT, capture_output=True,
                       text=True, timeout=300)
    check(r.returncode == 0, "make install: %s" % (r.stdout + r.stderr)[-800:])
    got = sorted(os.path.relpath(os.path.join(d, f), dest)
                 for d, _, fs in os.walk(dest) for f in fs)
    want = sorted([
        "usr/bin/tgq", "usr/sbin/tgq-webhook", "usr/sbin/tgq-drain",
        "usr/share/man/man1/tgq.1", "usr/share/man/man5/tgq.conf.5",
        "usr/share/man/man8/tgq-webhook.8", "usr/share/man/man8/tgq-drain.8",
        "usr/lib/systemd/system/tgq-webhook.socket",
        "usr/lib/systemd/system/tgq-webhook.service",
        "usr/lib/systemd/system/tgq-drain.service",
        "usr/lib/systemd/system/tgq-drain.timer",
        "usr/lib/systemd/system/tgq-drain-follow.service",
        "usr/lib/systemd/system/tgq-register.service",
        "usr/lib/sysusers.d/tgq.conf", "usr/lib/tmpfiles.d/tgq.conf",
        "usr/share/doc/tgq/examples/nginx-tgq.conf",
        "usr/share/doc/tgq/examples/nginx-tgq-upstream.conf",
        "usr/share/doc/tgq/examples/lighttpd-tgq.conf",
        "usr/share/doc/tgq/examples/lighttpd-tgq-spawn.conf",
        "usr/share/doc/tgq/examples/README.md",
        "usr/share/doc/tgq/examples/nginx-tgq-origin.conf",
        "usr/share/doc/tgq/examples/nginx-tgq-front.conf",
        "usr/share/doc/tgq/examples/cloudflared.yml",
        "usr/share/doc/tgq/examples/tgq-proxy.conf",
        "usr/share/doc/tgq/examples/tgq-rules.yml",
        "usr/share/doc/tgq/examples/tgq-dashboard.json"])
    check(got == want, "installed %r; missing %r; extra %r" %
          (len(got), sorted(set(want) - set(got)), sorted(set(got) - set(want))))
    with open(os.path.join(dest, "usr/lib/systemd/system/tgq-webhook.service")) as f:
        check("ExecStart=/usr/sbin/tgq-webhook" in f.read(), "ExecStart not /usr/sbin")
    # tgq lives in bin/, the daemons in sbin/: each unit names its own.
    with open(os.path.join(dest, "usr/lib/systemd/system/tgq-register.service")) as f:
        check("ExecStart=/usr/bin/tgq set-webhook --if-changed" in f.read(),
              "tgq-register.service's ExecStart not /usr/bin/tgq")
    for prog in ("usr/bin/tgq", "usr/sbin/tgq-webhook", "usr/sbin/tgq-drain"):
        check(os.access(os.path.join(dest, prog), os.X_OK), "%s not executable" % prog)
    r = subprocess.run(["make", "-s", "uninstall", "DESTDIR=" + dest, "PREFIX=/usr"],
                       cwd=h.ROOT, capture_output=True, text=True, timeout=60)
    left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    check(r.returncode == 0 and not left, "uninstall left %r" % left)


def case_snippets_check(stack):
    """The shipped snippets pass nginx -t and lighttpd -tt as shipped."""
    conf = os.path.join(stack.tmpdir, "nginx-check.conf")
    shutil.copy("/etc/nginx/fastcgi_params", stack.tmpdir)
    with open(conf, "w") as f:
        f.write("pid %s/check.pid; error_log stderr; events {}\nhttp { "
                "client_body_temp_path %s; fastcgi_temp_path %s; include %s; "
                "server { listen 127.0.0.1:%d; include %s; } }\n" % (
                    stack.tmpdir, stack.tmpdir, stack.tmpdir, h.NGINX_UPSTREAM,
                    h.free_port(), h.NGINX_SNIPPET))
    r = subprocess.run([h.tool("nginx"), "-t", "-c", conf, "-p", stack.tmpdir],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "nginx -t: %s" % r.stderr)
    for snippet in ("tgq.conf", "tgq-spawn.conf"):
        conf = os.path.join(stack.tmpdir, "lighttpd-" + snippet)
        with open(conf, "w") as f:
            f.write('server.document-root = "%s"\nserver.port = %d\n'
                    'server.bind = "127.0.0.1"\ninclude "%s"\n' % (
                        stack.tmpdir, h.free_port(),
                        os.path.join(h.ROOT, "deploy", "lighttpd", snippet)))
        r = subprocess.run([h.tool("lighttpd"), "-tt", "-f", conf],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "lighttpd -tt %s: %s" % (snippet, r.stderr))


class PlainStack(Stack):
    def start(self):
        return self


def groups(ctx):
    return [
        ("ops-metrics", lambda: Stack(ctx, {"/telegram/": {"TGQ_MAX_BODY": "2K"}}),
         [("counted_across_4_processes", case_metrics)]),
        ("ops-metrics-flood", lambda: Stack(ctx, {"/telegram/": {}}, procs=2),
         [("rejections_write_nothing", case_rejections_write_nothing)]),
        ("ops-allowlist", lambda: Stack(ctx, ALLOW, procs=1),
         [("allowed_refused_ipv6_proxies", case_allowlist)]),
        ("ops-activation", lambda: ActivationStack(ctx, {}),
         [("systemd_socket", case_socket_activation)]),
        ("ops-bots", lambda: PlainStack(ctx, {}),
         [("two_bots_one_endpoint", case_two_bots)]),
        ("ops-install", lambda: PlainStack(ctx, {}),
         [("make_install_destdir", case_install),
          ("snippets_check", case_snippets_check)]) if not ctx.asan else
        ("ops-install", lambda: PlainStack(ctx, {}),
         [("snippets_check", case_snippets_check)]),
    ]
