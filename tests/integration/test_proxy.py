"""Integration cases for tgq behind a tunnel or reverse proxy, with the files
deploy/README.md shows (deploy/proxy/): a front nginx (nginx-front.conf, standing
for cloudflared or an edge proxy) forwards to the origin nginx
(nginx-origin.conf) that passes FastCGI to tgq-webhook, with `allowed_ips =
telegram` (tgq-proxy.conf).  Two proxy hops, all on 127.0.0.0/8: the test client
connects from 127.0.0.1 (a trusted proxy, as cloudflared is) or from 127.0.0.3 (an
untrusted one), and writes the visitor's address in X-Forwarded-For as the
tunnel's edge would.  Once with tgq's trusted_proxies, once with nginx's realip
module resolving the client instead."""

import http.client
import os
import re
import shutil
import signal
import subprocess

import harness as h

check = h.check
Skip = h.Skip

PROXY = os.path.join(h.ROOT, "deploy", "proxy")
ORIGIN_CONF = os.path.join(PROXY, "nginx-origin.conf")
FRONT_CONF = os.path.join(PROXY, "nginx-front.conf")
TGQ_CONF = os.path.join(PROXY, "tgq-proxy.conf")
CLOUDFLARED = os.path.join(PROXY, "cloudflared.yml")
SHIPPED_ORIGIN = "127.0.0.1:8080"
SNIPPET_INCLUDE = "include /etc/nginx/snippets/tgq.conf;"
REALIP_LINES = ("#set_real_ip_from 127.0.0.1;", "#real_ip_header X-Forwarded-For;",
                "#real_ip_recursive on;")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TELEGRAM = "149.154.167.220"        # in Telegram's published 149.154.160.0/20
OUTSIDER = "198.51.100.7"           # documentation range, not Telegram's
UNTRUSTED = "127.0.0.3"             # a loopback peer that is no trusted proxy


def shipped(path, *needles):
    with open(path) as f:
        text = f.read()
    for needle in needles:
        if needle not in text:
            raise h.HarnessError("%s does not hold %r" % (path, needle))
    return text


class Server:
    """A real nginx on 127.0.0.1:port whose http block holds `http_text`."""

    def __init__(self, tmpdir, name, http_text, port):
        self.dir = h.make_subdir(tmpdir, name)
        shutil.copy("/etc/nginx/fastcgi_params", self.dir)
        self.port = port
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.proc = self.log = None
        d = self.dir
        user = "user %s %s;\n" % (h.RUN_USER, h.RUN_USER) if h.IS_ROOT else ""
        with open(self.conf, "w") as f:
            f.write(f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi_temp;
    proxy_temp_path {d}/proxy_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
{http_text}
}}
""")

    def start(self):
        r = subprocess.run([h.tool("nginx"), "-t", "-q", "-c", self.conf, "-p",
                            self.dir, "-e", self.error_log], capture_output=True,
                           text=True, timeout=h.START_TIMEOUT)
        if r.returncode != 0:
            raise h.HarnessError("nginx -t: %s" % r.stderr.strip()[-500:])
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([h.tool("nginx"), "-c", self.conf, "-p",
                                      self.dir, "-e", self.error_log],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        h.wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            h.stop_popen(self.proc, signal.SIGQUIT)
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


class ProxyStack(h.TempStack):
    """tgq-webhook <- origin nginx <- front nginx, from the shipped files."""

    def __init__(self, ctx, realip):
        super().__init__(ctx, "tgq-proxy-")
        self.realip = realip
        self.secret = h.new_secret()
        self.db = os.path.join(self.tmpdir, "queue.db")
        self.queue = h.Queue(self.db)
        self.webhook = None
        self.servers = []

    def start(self):
        env = {"TGQ_DATABASE": self.db, "TGQ_WEBHOOK_SECRET": self.secret}
        if self.realip:
            # nginx resolves the client: tgq trusts no proxy.
            env["TGQ_ALLOWED_IPS"] = "telegram"
        else:
            conf = os.path.join(self.tmpdir, "tgq.conf")
            shutil.copy(TGQ_CONF, conf)
            h.chown_run_user(conf)
            env["TGQ_CONFIG"] = conf
        if self.ctx.asan:
            env.update(h.sanitizer_options(self.tmpdir))
        self.webhook = h.Webhook(self.ctx.binary, self.tmpdir, env, 1).start()

        origin_port, front_port = h.free_port(), h.free_port()
        upstream, location = h.nginx_snippets(self.webhook.socket)
        snippet = os.path.join(self.tmpdir, "tgq-location.conf")
        with open(snippet, "w") as f:
            f.write(location)
        origin = shipped(ORIGIN_CONF, "listen %s;" % SHIPPED_ORIGIN, SNIPPET_INCLUDE,
                         *REALIP_LINES)
        origin = origin.replace("listen %s;" % SHIPPED_ORIGIN,
                                "listen 127.0.0.1:%d;" % origin_port)
        origin = origin.replace(SNIPPET_INCLUDE, "include %s;" % snippet)
        if self.realip:
            for line in REALIP_LINES:
                origin = origin.replace(line, line[1:])
        self.origin = Server(self.tmpdir, "origin", upstream + "\n" + origin,
                             origin_port)
        front_location = shipped(FRONT_CONF, "proxy_pass http://%s;" %
                                 SHIPPED_ORIGIN)
        front_location = front_location.replace(
            "proxy_pass http://%s;" % SHIPPED_ORIGIN,
            "proxy_pass http://127.0.0.1:%d;" % origin_port)
        front = ("server {\n    listen 127.0.0.1:%d;\n    server_name localhost;\n"
                 "%s\n}\n" % (front_port, front_location))
        self.front = Server(self.tmpdir, "front", front, front_port)
        for s in (self.origin, self.front):
            s.start()
            self.servers.append(s)
        return self

    def post(self, server, uid, source="127.0.0.1", forwarded=None, secret=None):
        headers = {"Content-Type": "application/json",
                   SECRET_HEADER: secret or self.secret}
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded
        body = ('{"update_id":%d,"message":{"chat":{"id":42,"type":"private"},'
                '"text":"hi"}}' % uid).encode()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                          source_address=(source, 0))
        try:
            return h.request(server.port, "POST", "/telegram/webhook", headers,
                             body, conn=conn)
        finally:
            conn.close()

    def redact(self, text):
        return str(text).replace(self.secret, "$SECRET")

    def logs(self):
        return self.webhook.log_text() if self.webhook else ""

    def stop(self):
        for s in self.servers:
            s.stop()
        if self.webhook:
            self.webhook.stop()


def case_two_hops(stack):
    front, origin = stack.front, stack.origin
    cases = [
        # (server, source, X-Forwarded-For sent, status, what)
        (front, "127.0.0.1", TELEGRAM, 200,
         "Telegram's address through both hops"),
        (front, "127.0.0.1", OUTSIDER, 403, "a client outside Telegram's ranges"),
        (front, "127.0.0.1", "%s, %s" % (OUTSIDER, TELEGRAM), 200,
         "what a client wrote to the left is not read"),
        (front, "127.0.0.1", "%s, %s" % (TELEGRAM, OUTSIDER), 403,
         "the last untrusted address counts"),
        (front, UNTRUSTED, TELEGRAM, 403,
         "a forged header through the front, from an untrusted peer"),
        (front, UNTRUSTED, None, 403, "an untrusted peer without the header"),
        (origin, UNTRUSTED, TELEGRAM, 403,
         "a forged header sent straight to the origin by an untrusted peer"),
        (origin, "127.0.0.1", TELEGRAM, 200,
         "one hop: the trusted tunnel straight to the origin"),
    ]
    stored = []
    for uid, (server, source, xff, status, what) in enumerate(cases, 1):
        r = stack.post(server, uid, source, xff)
        check(r.status == status, "%s: %d, expected %d (%s)" % (
            what, r.status, status, r.body[:60]))
        if status == 200:
            stored.append(uid)
    r = stack.post(front, 100, "127.0.0.1", TELEGRAM, secret="wrong")
    check(r.status == 401, "Telegram's address with a wrong secret: %d" % r.status)
    rows = [u for (u,) in stack.queue.query("SELECT update_id FROM updates "
                                             "ORDER BY update_id")]
    check(rows == stored, "stored %r, expected %r" % (rows, stored))


def case_files_agree(stack):
    """cloudflared's ingress sends to the address the origin listens on, and
    the shipped files pass nginx -t as they are (with the snippet in place)."""
    with open(CLOUDFLARED) as f:
        text = f.read()
    services = re.findall(r"^\s*(?:-\s*)?service:\s*(\S+)\s*$", text, re.M)
    check(services and services[-1] == "http_status:404",
          "cloudflared.yml: the last ingress rule is not the catch-all: %r" %
          services)
    check(services[:-1] == ["http://%s" % SHIPPED_ORIGIN],
          "cloudflared.yml sends to %r, the origin listens on %s" % (
              services[:-1], SHIPPED_ORIGIN))
    check(re.search(r"^\s*path:\s*\^/telegram/webhook", text, re.M),
          "cloudflared.yml publishes more than the webhook")
    shipped(FRONT_CONF, "proxy_pass http://%s;" % SHIPPED_ORIGIN,
            "$proxy_add_x_forwarded_for")
    with open(TGQ_CONF) as f:
        tgq = f.read()
    check(re.search(r"^trusted_proxies\s*=\s*127\.0\.0\.1, ::1$", tgq, re.M) and
          re.search(r"^allowed_ips\s*=\s*telegram$", tgq, re.M),
          "tgq-proxy.conf: %r" % tgq)
    r = subprocess.run([os.path.join(stack.ctx.bindir, "tgq-webhook"), "--check"],
                       capture_output=True, text=True, timeout=30,
                       env=h.base_env({"TGQ_CONFIG": TGQ_CONF, "TGQ_DATABASE":
                                       stack.db, "TGQ_WEBHOOK_SECRET":
                                       stack.secret}))
    check(r.returncode == 0, "tgq-webhook --check with tgq-proxy.conf: %s" %
          stack.redact(r.stderr)[-400:])


def groups(ctx):
    return [
        ("proxy-trusted", lambda: ProxyStack(ctx, realip=False),
         [("two_hops_allowed_ips_telegram", case_two_hops),
          ("shipped_files_agree", case_files_agree)]),
        ("proxy-realip", lambda: ProxyStack(ctx, realip=True),
         [("two_hops_nginx_realip", case_two_hops)]),
    ]
