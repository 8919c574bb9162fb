"""Helpers for tgq's integration tests and demo: free ports, temp folders, the
webhook under spawn-fcgi, real nginx and lighttpd with the shipped snippets, an HTTP
client, and the queue file.  Standard library only.

Every server runs on 127.0.0.1 in its own temp folder and is stopped by the code
that started it, by the PIDs it started.  When run as root the servers drop to
www-data, so the folders they write to belong to www-data.
"""

import ctypes
import glob
import http.client
import os
import pwd
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX_SNIPPET = os.path.join(ROOT, "deploy", "nginx", "tgq.conf")
NGINX_UPSTREAM = os.path.join(ROOT, "deploy", "nginx", "tgq-upstream.conf")
LIGHTTPD_SNIPPET = os.path.join(ROOT, "deploy", "lighttpd", "tgq.conf")
SHIPPED_SOCKET = "/run/tgq/webhook.sock"
SHIPPED_UPSTREAM = "tgq_webhook"
RUN_USER = "www-data"
IS_ROOT = os.geteuid() == 0

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class HarnessError(Exception):
    pass


def become_subreaper():
    """spawn-fcgi forks the webhook processes and exits; make them our children
    once orphaned, so we can reap them (PID 1 here may not)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap_orphans():
    """Reaps exited processes that became ours as the subreaper (e.g. programs a
    server spawned and killed on its way out).  Call only when no Popen of ours
    is still running."""
    for _ in range(1000):
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def new_secret():
    return secrets.token_urlsafe(24)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ids():
    pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


def chown_run_user(path):
    if IS_ROOT:
        uid, gid = run_ids()
        os.chown(path, uid, gid)


def run_user_popen_args():
    """Popen's keyword arguments that run a server as the run user when the tests
    run as root (as deploy runs it), none otherwise."""
    if not IS_ROOT:
        return {}
    uid, gid = run_ids()
    return {"user": uid, "group": gid, "extra_groups": []}


def unix_listener(path):
    """A listening unix socket at path that anyone may connect to: what spawn-fcgi
    hands a FastCGI program as fd 0."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o666)
    listener.listen(128)
    return listener


def make_tmpdir(prefix="tgq-test-"):
    """A fresh folder the servers (www-data when root) can traverse and write."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    chown_run_user(path)
    return path


def stage_binaries(build):
    """Copies the programs of a build folder where the unprivileged servers can run
    them: a clone made in a 0700 temp folder is out of www-data's reach."""
    path = tempfile.mkdtemp(prefix="tgq-bin-")
    os.chmod(path, 0o755)
    for name in sorted(os.listdir(build)):
        src = os.path.join(build, name)
        if os.path.isfile(src) and os.access(src, os.X_OK):
            shutil.copy2(src, os.path.join(path, name))
            os.chmod(os.path.join(path, name), 0o755)
    return path


def make_subdir(parent, name, mode=0o755):
    path = os.path.join(parent, name)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    chown_run_user(path)
    return path


def wait_port(port, timeout=START_TIMEOUT, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise HarnessError("server exited with status %d" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise HarnessError("port %d did not answer within %.0f s" % (port, timeout))


def wait_path(path, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise HarnessError("%s did not appear" % os.path.basename(path))


def _pid_gone(pid):
    """True once pid is reaped or a zombie that is not ours to reap."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state == "Z"
    except (OSError, IndexError):
        return True


def kill_pids(pids, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Signal exactly these PIDs, wait for them, SIGKILL the ones left."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if not _pid_gone(p)]
        if left:
            time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        left = [p for p in left if not _pid_gone(p)]
        if left:
            time.sleep(0.05)
    return left


def stop_popen(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def sanitizer_options(tmpdir, leaks=False):
    """The environment that makes ASan/UBSan reports land in tmpdir.  leaks: run
    LeakSanitizer at exit, for programs that end by themselves (tgq-drain --once,
    the CLI); the servers are stopped by a signal and keep theirs off."""
    return {
        "ASAN_OPTIONS": "log_path=%s/asan:detect_leaks=%d:abort_on_error=1" % (
            tmpdir, 1 if leaks else 0),
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:log_path=%s/ubsan"
                         % tmpdir,
    }


def sanitizer_reports(tmpdir, lines=15):
    """[(file name, first lines)] of every ASan/UBSan report under tmpdir."""
    out = []
    for path in sorted(glob.glob(os.path.join(tmpdir, "asan*")) +
                       glob.glob(os.path.join(tmpdir, "ubsan*"))):
        try:
            with open(path, errors="replace") as f:
                head = [next(f, "") for _ in range(lines)]
        except OSError as e:
            head = [str(e)]
        out.append((os.path.basename(path), "".join(head)))
    return out


SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tool(name):
    """The absolute path of a program (servers live in /usr/sbin)."""
    return shutil.which(name, path=SEARCH_PATH) or name


def mount(*args, cmd="mount", tries=1):
    """Runs mount (or umount); retried while the kernel still releases the files
    of processes that just exited (EBUSY for a moment)."""
    r = None
    for _ in range(tries):
        r = subprocess.run([tool(cmd)] + list(args), capture_output=True,
                           text=True, timeout=30)
        if r.returncode == 0 or "busy" not in r.stderr:
            break
        time.sleep(0.1)
    return r


def base_env(extra=None):
    env = {"PATH": SEARCH_PATH, "LANG": "C.UTF-8"}
    if extra:
        env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def write_token_file(folder, token):
    """<folder>/bot-token holding the token, readable by the user the servers run
    as and nobody else (as the drain wants a token file); returns its path."""
    path = os.path.join(folder, "bot-token")
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    chown_run_user(path)
    return path


def read_text(path):
    """A log file's text so far ("" when it does not exist yet)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def check_not_logged(logs, secrets, what="the logs"):
    """None of secrets (each non-empty) is in logs, and logs are not empty: a check
    on nothing (a log that went elsewhere, a path that changed) proves nothing."""
    check(logs.strip() != "", "%s: empty, nothing to search for a secret" % what)
    for s in secrets:
        check(s and s not in logs, "a secret (or a part of one) appears in %s" % what)


class Skip(Exception):
    """A group or case that cannot run here: tests/run.py counts it as skipped
    (each test module names it as its Skip)."""


def check(cond, msg):
    """A case's assertion: tests/run.py reports msg as the failure."""
    if not cond:
        raise AssertionError(msg)


class TempStack:
    """A group's stack with no server of its own: a temp folder, notes, and the
    hooks tests/run.py calls.  Subclasses add what they check."""

    def __init__(self, ctx, prefix="tgq-test-"):
        self.ctx = ctx
        self.tmpdir = make_tmpdir(prefix)
        self.notes = []

    def start(self):
        return self

    def redact(self, text):
        return str(text)

    def logs(self):
        return ""

    def stop(self):
        pass

    def cleanup(self):
        if self.ctx.keep:
            print("# kept %s" % self.tmpdir)
        else:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def stack_per_case(ctx, prefix, cases, make_stack, then, needs="tgq"):
    """The groups of a module whose cases each start from nothing: one group per
    (name, fn) in cases, named prefix + name, on a fresh make_stack(); then(stack)
    checks what the case left (e.g. that no secret was printed).  None when the
    build has no `needs` program."""
    if not os.path.exists(os.path.join(ctx.build, needs)):
        return []
    out = []
    for name, fn in cases:
        def run(stack, fn=fn):
            fn(stack)
            then(stack)
        out.append((prefix + name, make_stack, [("run", run)]))
    return out


class Webhook:
    """tgq-webhook under spawn-fcgi (fork mode, -P pidfile), listening on a unix
    socket in tmpdir; its stderr goes to <tmpdir>/<name>.log."""

    def __init__(self, binary, tmpdir, env, procs=1, name="webhook"):
        self.binary = binary
        self.tmpdir = tmpdir
        self.env = base_env(env)
        self.procs = procs
        self.name = name
        self.socket = os.path.join(tmpdir, name + ".sock")
        self.pidfile = os.path.join(tmpdir, name + ".pid")
        self.log = os.path.join(tmpdir, name + ".log")
        self.pids = []

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise HarnessError("no executable %s" % self.binary)
        cmd = [tool("spawn-fcgi"), "-s", self.socket, "-M", "0666", "-F", str(self.procs),
               "-P", self.pidfile]
        if IS_ROOT:
            cmd += ["-u", RUN_USER, "-g", RUN_USER, "-U", RUN_USER, "-G", RUN_USER]
        cmd += ["--", self.binary]
        with open(self.log, "ab") as log:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               env=self.env, timeout=START_TIMEOUT)
        if r.returncode != 0:
            raise HarnessError("spawn-fcgi failed (%d): %s" %
                               (r.returncode, self.log_tail(5)))
        with open(self.pidfile) as f:
            self.pids = [int(x) for x in f.read().split()]
        if len(self.pids) != self.procs:
            raise HarnessError("spawn-fcgi started %d of %d processes" %
                               (len(self.pids), self.procs))
        return self

    def alive(self):
        return [p for p in self.pids if not _pid_gone(p)]

    def stop(self):
        left = kill_pids(self.pids)
        self.pids = []
        return left

    def log_text(self):
        return read_text(self.log)

    def log_tail(self, n=10):
        return "".join(self.log_text().splitlines(True)[-n:])


def _snippet(path, socket_path):
    with open(path) as f:
        text = f.read()
    if SHIPPED_SOCKET not in text:
        raise HarnessError("%s does not name %s" % (path, SHIPPED_SOCKET))
    return text.replace(SHIPPED_SOCKET, socket_path)


def nginx_snippets(socket_path, upstream=SHIPPED_UPSTREAM):
    """The shipped nginx files for a socket: (the upstream block for the http
    context, the location block), the upstream renamed when several share one nginx."""
    with open(NGINX_SNIPPET) as f:
        location = f.read()
    if "fastcgi_pass %s;" % SHIPPED_UPSTREAM not in location:
        raise HarnessError("%s does not pass to %s" % (NGINX_SNIPPET, SHIPPED_UPSTREAM))
    upstream_text = _snippet(NGINX_UPSTREAM, socket_path)
    if "upstream %s " % SHIPPED_UPSTREAM not in upstream_text:
        raise HarnessError("%s does not define %s" % (NGINX_UPSTREAM, SHIPPED_UPSTREAM))
    return (upstream_text.replace("upstream %s " % SHIPPED_UPSTREAM, "upstream %s " % upstream),
            location.replace("fastcgi_pass %s;" % SHIPPED_UPSTREAM, "fastcgi_pass %s;" % upstream))


class Nginx:
    """Real nginx on 127.0.0.1:port, in the foreground (daemon off), with the
    shipped snippet included in its one server block.  extra: more text for the
    server block (more locations)."""

    def __init__(self, tmpdir, socket_path, extra="", port=None, listen6=None):
        """listen6: also listen on [::1] at this port."""
        self.tmpdir = tmpdir
        self.port = port or free_port()
        six = "listen [::1]:%d;" % listen6 if listen6 else ""
        self.conf = os.path.join(tmpdir, "nginx.conf")
        self.pidfile = os.path.join(tmpdir, "nginx.pid")
        self.error_log = os.path.join(tmpdir, "nginx-error.log")
        self.proc = None
        upstream, location = nginx_snippets(socket_path)
        with open(os.path.join(tmpdir, "tgq-upstream.conf"), "w") as f:
            f.write(upstream)
        with open(os.path.join(tmpdir, "tgq.conf"), "w") as f:
            f.write(location)
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(tmpdir, "fastcgi_params"))
        t = tmpdir
        user = "user %s %s;\n" % (RUN_USER, RUN_USER) if IS_ROOT else ""
        with open(self.conf, "w") as f:
            f.write(f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {t}/client_body;
    fastcgi_temp_path {t}/fastcgi_temp;
    proxy_temp_path {t}/proxy_temp;
    uwsgi_temp_path {t}/uwsgi_temp;
    scgi_temp_path {t}/scgi_temp;
    include {t}/tgq-upstream.conf;
    server {{
        listen 127.0.0.1:{self.port};
        {six}
        server_name localhost;
        include {t}/tgq.conf;
{extra}
    }}
}}
""")

    def check(self):
        return subprocess.run([tool("nginx"), "-t", "-q", "-c", self.conf, "-p", self.tmpdir,
                               "-e", self.error_log], capture_output=True,
                              text=True, timeout=START_TIMEOUT)

    def start(self):
        r = self.check()
        if r.returncode != 0:
            raise HarnessError("nginx -t failed: %s" % r.stderr.strip()[-500:])
        self.log = open(os.path.join(self.tmpdir, "nginx-stderr.log"), "ab")
        self.proc = subprocess.Popen(
            [tool("nginx"), "-c", self.conf, "-p", self.tmpdir, "-e", self.error_log],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        # SIGQUIT: graceful shutdown, the master waits for its workers.
        stop_popen(self.proc, signal.SIGQUIT)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None


class Lighttpd:
    """Real lighttpd on 127.0.0.1:port in the foreground (-D).  body: config text
    after the basics (e.g. the shipped snippet's include, or mod_cgi settings)."""

    def __init__(self, tmpdir, body, port=None):
        self.tmpdir = tmpdir
        self.port = port or free_port()
        self.conf = os.path.join(tmpdir, "lighttpd.conf")
        self.error_log = os.path.join(tmpdir, "lighttpd-error.log")
        self.proc = None
        docroot = make_subdir(tmpdir, "htdocs")
        uploads = make_subdir(tmpdir, "uploads")
        user = ('server.username = "%s"\nserver.groupname = "%s"\n' %
                (RUN_USER, RUN_USER)) if IS_ROOT else ""
        with open(self.conf, "w") as f:
            f.write(f"""server.document-root = "{docroot}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{self.error_log}"
server.upload-dirs = ( "{uploads}" )
{user}
{body}
""")

    def write_snippet(self, socket_path):
        path = os.path.join(self.tmpdir, "tgq.conf")
        with open(path, "w") as f:
            f.write(_snippet(LIGHTTPD_SNIPPET, socket_path))
        return path

    def check(self):
        return subprocess.run([tool("lighttpd"), "-tt", "-f", self.conf], capture_output=True,
                              text=True, timeout=START_TIMEOUT)

    def start(self, env=None):
        r = self.check()
        if r.returncode != 0:
            raise HarnessError("lighttpd -tt failed: %s" %
                               (r.stderr + r.stdout).strip()[-500:])
        self.log = open(os.path.join(self.tmpdir, "lighttpd-stderr.log"), "ab")
        self.proc = subprocess.Popen([tool("lighttpd"), "-D", "-f", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=base_env(env))
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        stop_popen(self.proc, signal.SIGTERM)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # {lower-case name: value}
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "%d %r" % (self.status, self.body[:80])


def request(port, method, path, headers=None, body=None, timeout=30.0, conn=None,
            host="127.0.0.1"):
    """One HTTP/1.1 request to host:port (127.0.0.1, or ::1).  Sends exactly the
    given headers (plus Host, and Content-Length when a body is given and none is
    named).  Returns a Response; header names are lower-cased."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        headers = dict(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in headers):
            headers["Content-Length"] = str(len(body))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, hdrs, data)
    finally:
        if own:
            conn.close()


def raw_request(port, data, timeout=10.0, limit=1 << 20):
    """Sends bytes as they are, reads until the server closes; returns a Response
    parsed from the raw answer (status 0 when nothing came back)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks, total = [], 0
        deadline = time.monotonic() + timeout
        while total < limit and time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
            total += len(c)
    raw = b"".join(chunks)
    return parse_http_response(raw)


def parse_http_response(raw, cgi=False):
    head, _, body = raw.partition(b"\r\n\r\n")
    if not _ and b"\n\n" in raw:
        head, _, body = raw.partition(b"\n\n")
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    headers = {}
    status = 0
    start = 0
    if not cgi:
        if not lines or not lines[0].startswith("HTTP/"):
            return Response(0, {}, raw)
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return Response(0, {}, raw)
        start = 1
    for line in lines[start:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if cgi:
        try:
            status = int(headers.get("status", "200").split()[0])
        except (IndexError, ValueError):
            status = 0
    if "content-length" in headers and not cgi:
        try:
            body = body[:int(headers["content-length"])]
        except ValueError:
            pass
    return Response(status, headers, body)


class Queue:
    """The queue file, seen from the tests.  Connections are short-lived; as root the
    files they may create (-wal, -shm) are handed back to www-data."""

    def __init__(self, path):
        self.path = path

    def _fix_owner(self):
        if not IS_ROOT:
            return
        for p in (self.path, self.path + "-wal", self.path + "-shm",
                  self.path + "-journal"):
            try:
                chown_run_user(p)
            except OSError:
                pass

    def query(self, sql, args=()):
        if not os.path.exists(self.path):
            return []
        con = sqlite3.connect(self.path, timeout=10)
        try:
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            con.close()
            # A read-only filesystem: a WAL file cannot be opened for writing even
            # to read it (no -shm); read it as an immutable file instead.
            con = sqlite3.connect("file:%s?mode=ro&immutable=1" % self.path,
                                  uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            # Before the webhook has created its schema there are no rows.
            if "no such table: updates" in str(e):
                return []
            raise
        finally:
            con.close()
            self._fix_owner()

    def execute(self, sql, args=()):
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            con.execute(sql, args)
        finally:
            con.close()
            self._fix_owner()

    def count(self, where="1", args=()):
        rows = self.query("SELECT count(*) FROM updates WHERE " + where, args)
        return rows[0][0] if rows else 0

    def rows(self, update_id, columns="*"):
        return self.query("SELECT %s FROM updates WHERE update_id = ? ORDER BY id" %
                          columns, (update_id,))

    def body_bytes(self, update_id):
        """The body column's bytes, exactly as stored (TEXT or BLOB)."""
        return [r[0] for r in self.query(
            "SELECT CAST(body AS BLOB) FROM updates WHERE update_id = ? ORDER BY id",
            (update_id,))]

    def lock(self):
        """Holds the write lock (BEGIN IMMEDIATE) until the returned connection's
        rollback()/close()."""
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        return con

    def unlock(self, con):
        try:
            con.execute("ROLLBACK")
        finally:
            con.close()
            self._fix_owner()
