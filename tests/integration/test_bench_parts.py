"""The pieces `make bench` trusts, checked without timing anything.

Group bench:
  ceiling_keeps_connections   the ceiling of the FastCGI hop (tests/bench/ceiling_fcgi.c)
                              behind real nginx and the shipped snippet answers 200
                              requests on one HTTP connection with 200 "ok", and
                              still holds nginx's FastCGI connection afterwards
  ceiling_reads_large_body    a 300 KB body (many FastCGI records) is read and answered
  paired_ratio_per_round      a ratio is the median of the rounds' own ratios, and a
                              failed run is named and makes its target not met
"""

import http.client
import importlib.util
import os
import shutil
import stat
import subprocess

import harness as h

Skip = h.Skip
check = h.check

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.join(os.path.dirname(HERE), "bench")
PATH = "/telegram/webhook"


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "tgq_bench", os.path.join(BENCH_DIR, "bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Stack:
    def __init__(self, ctx):
        self.ctx = ctx
        self.tmpdir = h.make_tmpdir("tgq-bench-parts-")
        self.notes = []
        self.webhooks = []
        self.nginx = None

    def start(self):
        # Built here: the suite needs it whether or not `make bench` ran.
        binary = os.path.join(self.tmpdir, "ceiling_fcgi")
        r = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-Wall",
                            "-Wextra", "-Werror", "-o", binary,
                            os.path.join(BENCH_DIR, "ceiling_fcgi.c")],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise h.HarnessError("cc ceiling_fcgi.c: %s" % r.stderr[-800:])
        os.chmod(binary, 0o755)
        self.ceiling = h.Webhook(binary, self.tmpdir, {}, 1, "ceiling").start()
        self.nginx = h.Nginx(self.tmpdir, self.ceiling.socket).start()
        self.port = self.nginx.port

    def stop(self):
        if self.nginx:
            self.nginx.stop()
        if getattr(self, "ceiling", None):
            self.ceiling.stop()

    def cleanup(self):
        if not self.ctx.keep:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def logs(self):
        return h.read_text(os.path.join(self.tmpdir, "nginx-error.log"))

    def redact(self, text):
        return str(text)


def open_sockets(pid):
    """The sockets a process holds besides fd 0 (its listening socket)."""
    n = 0
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        if fd == "0":
            continue
        try:
            if stat.S_ISSOCK(os.stat(os.path.join(fd_dir, fd)).st_mode):
                n += 1
        except OSError:
            pass
    return n


def case_kept(stack):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    try:
        for i in range(200):
            r = h.request(stack.port, "POST", PATH,
                          {"Content-Type": "application/json"},
                          b'{"update_id":%d}' % i, conn=conn)
            check(r.status == 200 and r.body == b"ok\n",
                  "request %d: %d %r" % (i, r.status, r.body[:80]))
    finally:
        conn.close()
    held = open_sockets(stack.ceiling.pids[0])
    check(held >= 1, "after 200 requests the ceiling holds no FastCGI connection: "
          "it closed nginx's kept one")
    stack.notes.append("ceiling: 200 requests, %d FastCGI connection(s) kept" % held)


def case_large(stack):
    body = b'{"update_id":1,"pad":"' + b"x" * 300000 + b'"}'
    r = h.request(stack.port, "POST", PATH, {"Content-Type": "application/json"}, body)
    check(r.status == 200 and r.body == b"ok\n", "300 KB body: %d %r" % (
        r.status, r.body[:80]))


def case_paired(_stack):
    bench = load_bench()

    def run(rps, **kw):
        r = {"rps": rps, "ok200": 100, "non2xx": 0, "errors": 0}
        r.update(kw)
        return r

    # Per round: 3.0, 0.5, 0.8, median 0.8; the ratio of the medians would be 2 / 2.
    p = bench.Paired([(run(3.0), run(1.0)), (run(1.0), run(2.0)),
                      (run(2.0), run(2.5))])
    check(p.rounds == [3.0, 0.5, 0.8], "per-round ratios: %r" % p.rounds)
    check(abs(p.median - 0.8) < 1e-9, "median of the rounds' ratios: %r" % p.median)
    check(p.text() == "0.80 (0.50-3.00 over 3 rounds)", "text: %r" % p.text())
    check(p.met(lambda x: x >= 0.75) == (True, 2), "met: %r" %
          (p.met(lambda x: x >= 0.75),))
    check(p.met(lambda x: x >= 1.0) == (False, 1), "met: %r" %
          (p.met(lambda x: x >= 1.0),))

    q = bench.Paired([(run(2.0), run(1.0)), (run(3.0, non2xx=5), run(1.0)),
                      (run(None), run(1.0)), (run(1.8), run(1.0))])
    check(q.rounds == [2.0, None, None, 1.8], "rounds with failures: %r" % q.rounds)
    check("FAILED in rounds 2 (5 non-2xx), 3 (no rate)" in q.text(),
          "the failed rounds are not named: %r" % q.text())
    met, k = q.met(lambda x: x >= 1.0)
    check(not met and k == 2, "a target with failed rounds counts as met: %r" %
          ((met, k),))


def groups(ctx):
    return [("bench", lambda: Stack(ctx),
             [("ceiling_keeps_connections", case_kept),
              ("ceiling_reads_large_body", case_large),
              ("paired_ratio_per_round", case_paired)])]
