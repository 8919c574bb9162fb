#!/usr/bin/python3
"""tgq's test runner: `make test` runs  /usr/bin/python3 tests/run.py --build build

1. every executable BUILD/tests/test_* (unit programs: one line per case,
   "name: ok" or "name: FAIL detail", non-zero exit on failure);
2. the integration cases of tests/integration/test_*.py against real nginx,
   real lighttpd and CGI, started here on 127.0.0.1 in temp folders.

Prints one line per case ("name: ok", "name: FAIL reason", "name: skipped reason")
and ends with "N passed, N failed[, N skipped]"; exits 1 when anything failed.

  --build DIR   where tgq-webhook and tests/test_* are (default: build)
  --asan        the build uses ASan/UBSan: collect their reports per server
  --asan-build DIR
                run everything again with DIR (an ASan/UBSan build), as --asan,
                at the same time as the first build, in a second process (the
                machine has two cores and most cases wait on servers); its case
                names start with "asan/" and its lines follow the first build's
  --serial      run the --asan-build pass after the first, in this process
  -k TEXT       only the cases whose name contains TEXT
  --keep        keep the temp folders (they hold the generated secret)

The fake Bot API's own self-test (tests/test_fake_botapi_selftest.py) runs once,
with the first build; its cases are named fake_*.

No silent passes:
  - with CI=true (what CI sets), a skip that is not on EXPECTED_SKIPS below fails
    the run (each entry names the cases, the reason and when it may happen);
  - a program the suite needs that is missing from the build is a failure, not a
    group that quietly disappears;
  - TGQ_UPDATE_GOLDEN (rewrite the golden files) makes the run fail: a run that
    wrote the expected output has compared nothing.
"""

import argparse
import fnmatch
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))

import harness as h  # noqa: E402

UNIT_TIMEOUT = 120
SELFTEST_TIMEOUT = 300
# The programs every build must have: a missing one fails the run.
PROGRAMS = ["tgq-webhook", "tgq-drain", "tgq"]

# The skips a CI run accepts: (case names matching this pattern, with or without
# "asan/"; the skip's reason starts with this; whether it may skip on this
# machine).  CI runs as root (.ci/run), so a case that needs root must run there,
# and a case that can only run as a non-root user would be listed here.
EXPECTED_SKIPS = [
    ("nginx-ro/*", "needs root", not h.IS_ROOT),
    ("faults-quick/disk-full", "needs root", not h.IS_ROOT),
]
CASE_LINE = re.compile(r"^(\S[^:]*): (ok|FAIL|skipped)(?:\s+(.*))?$")


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def ok(self, name):
        self.passed += 1
        print("%s: ok" % name, flush=True)

    def fail(self, name, reason, details=""):
        self.failed += 1
        reason = " ".join(str(reason).split()) or "failed"
        print("%s: FAIL %s" % (name, reason), flush=True)
        for line in details.splitlines()[-20:]:
            print("    " + line, flush=True)

    def skip(self, name, reason):
        reason = " ".join(str(reason).split())
        if os.environ.get("CI", "").lower() == "true" and not expected_skip(name,
                                                                           reason):
            self.fail(name, "skipped (%s), and this skip is not on run.py's "
                      "EXPECTED_SKIPS: under CI=true it is a failure" % reason)
            return
        self.skipped += 1
        print("%s: skipped %s" % (name, reason), flush=True)

    def summary(self):
        s = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            s += ", %d skipped" % self.skipped
        return s


def expected_skip(name, reason):
    bare = name[len("asan/"):] if name.startswith("asan/") else name
    return any(fnmatch.fnmatchcase(bare, pat) and reason.startswith(why) and when
               for pat, why, when in EXPECTED_SKIPS)


def run_selftest(pattern, tally):
    """tests/test_fake_botapi_selftest.py: one "fake_NAME: ok|FAIL" line per case."""
    prog = os.path.join(HERE, "test_fake_botapi_selftest.py")
    try:
        r = subprocess.run([sys.executable, prog], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=SELFTEST_TIMEOUT,
                           cwd=os.path.dirname(HERE))
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = e.stdout or b"", e.stderr or b"", None
    out = out.decode(errors="replace")
    err = err.decode(errors="replace")
    seen = 0
    for line in out.splitlines():
        m = CASE_LINE.match(line)
        if not m or (pattern and pattern not in m.group(1)):
            continue
        seen += 1
        if m.group(2) == "ok":
            tally.ok(m.group(1))
        else:
            tally.fail(m.group(1), m.group(3) or "failed")
    if (rc != 0 or not seen) and (not pattern or pattern in "fake_botapi_selftest"):
        why = "timed out after %d s" % SELFTEST_TIMEOUT if rc is None else \
            "exited with status %d after %d cases" % (rc, seen)
        tally.fail("fake_botapi_selftest", why, (out + err)[-3000:])


def run_unit(ctx, pattern, tally):
    build, prefix = ctx.build, ctx.prefix
    env = dict(os.environ)
    if ctx.asan:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    progs = sorted(p for p in glob.glob(os.path.join(build, "tests", "test_*"))
                   if os.path.isfile(p) and os.access(p, os.X_OK))
    for prog in progs:
        pname = os.path.basename(prog)
        try:
            r = subprocess.run([prog], stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=UNIT_TIMEOUT, cwd=os.path.dirname(HERE),
                               env=env)
            out, err, rc = r.stdout, r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            out, err, rc = e.stdout or b"", e.stderr or b"", None
        out = out.decode(errors="replace")
        err = err.decode(errors="replace")
        saw_fail = False
        for line in out.splitlines():
            m = CASE_LINE.match(line)
            if not m:
                continue
            name, verdict, rest = m.group(1), m.group(2), m.group(3) or ""
            name = prefix + name
            if pattern and pattern not in name and pattern not in pname:
                continue
            if verdict == "ok":
                tally.ok(name)
            elif verdict == "skipped":
                tally.skip(name, rest)
            else:
                saw_fail = True
                tally.fail(name, rest)
        if rc != 0 and not saw_fail and (not pattern or pattern in pname):
            why = "timed out after %d s" % UNIT_TIMEOUT if rc is None else \
                "exited with status %d" % rc
            tally.fail(prefix + pname, why, (out + err)[-3000:])


def load_modules():
    mods = []
    for path in sorted(glob.glob(os.path.join(HERE, "integration", "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def run_group(mod, gname, make, cases, ctx, pattern, tally):
    cases = [(gname + "/" + n, fn) for n, fn in cases
             if not pattern or pattern in gname + "/" + n]
    if not cases:
        return
    Skip = getattr(mod, "Skip", ())
    try:
        stack = make()
    except Skip as e:
        for name, _ in cases:
            tally.skip(name, e)
        return
    except Exception as e:  # noqa: BLE001 - reported per case
        for name, _ in cases:
            tally.fail(name, "setup: %s: %s" % (type(e).__name__, e))
        return
    try:
        try:
            stack.start()
        except Exception as e:  # noqa: BLE001
            try:
                detail = stack.redact(stack.logs()[-2000:])
            except Exception:  # noqa: BLE001
                detail = ""
            for name, _ in cases:
                tally.fail(name, stack.redact("%s did not start: %s" % (gname, e)),
                           detail)
                detail = ""
            return
        for name, fn in cases:
            t0 = time.monotonic()
            try:
                fn(stack)
            except Skip as e:
                tally.skip(name, e)
                continue
            except AssertionError as e:
                tally.fail(name, stack.redact(e))
                continue
            except Exception as e:  # noqa: BLE001
                tally.fail(name, stack.redact("%s: %s" % (type(e).__name__, e)))
                continue
            dead = [w.name for w in getattr(stack, "webhooks", []) if
                    len(w.alive()) != w.procs and w.pids]
            if dead:
                tally.fail(name, "a tgq-webhook process (%s) died" % ", ".join(dead),
                           stack.redact(stack.logs()[-2000:]))
                continue
            tally.ok(name)
            if ctx.verbose:
                print("    # %.2f s" % (time.monotonic() - t0))
    finally:
        try:
            stack.stop()
            h.reap_orphans()
        finally:
            for note in getattr(stack, "notes", []):
                print("# %s: %s" % (gname, stack.redact(note)))
            if ctx.asan:
                reports = h.sanitizer_reports(stack.tmpdir)
                name = gname + "/sanitizer_reports"
                if reports:
                    tally.fail(name, "%d report(s): %s" % (
                        len(reports), ", ".join(r[0] for r in reports)),
                        stack.redact("\n".join(t for _, t in reports)))
                else:
                    tally.ok(name)
            stack.cleanup()


def run_build(build, asan, prefix, args, tally, staged):
    """Every unit program and integration group against one build."""
    ctx = Ctx()
    ctx.build = os.path.abspath(build)
    ctx.bindir = h.stage_binaries(ctx.build)
    staged.append(ctx.bindir)
    ctx.binary = os.path.join(ctx.bindir, "tgq-webhook")
    ctx.asan = asan
    ctx.keep = args.keep
    ctx.verbose = args.verbose
    ctx.prefix = prefix
    missing = [p for p in PROGRAMS
               if not os.access(os.path.join(ctx.build, p), os.X_OK)]
    if missing:
        tally.fail(prefix + "build", "missing from %s: %s" % (
            ctx.build, ", ".join(missing)))
    pat = args.pattern
    if not prefix and (not pat or "fake" in pat or pat in "fake_botapi_selftest"):
        run_selftest(pat, tally)
    run_unit(ctx, args.pattern, tally)
    for mod in load_modules():
        if not hasattr(mod, "groups"):
            tally.fail(prefix + mod.__name__, "has no groups(ctx) function")
            continue
        for gname, make, cases in mod.groups(ctx):
            run_group(mod, prefix + gname, make, cases, ctx, args.pattern, tally)


def start_second_pass(args):
    """The --asan-build pass as a child run.py, its output kept in a file."""
    out = open(os.path.join(tempfile.gettempdir(), "tgq-run-asan-%d.log" %
                            os.getpid()), "w+")
    cmd = [sys.executable, os.path.abspath(__file__), "--build", args.asan_build,
           "--asan", "--prefix", "asan/", "-k", args.pattern]
    cmd += ["--keep"] if args.keep else []
    cmd += ["-v"] if args.verbose else []
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out


def finish_second_pass(child, out, tally):
    """Prints the child's lines and adds its counts to tally."""
    rc = child.wait()
    out.seek(0)
    last = ""
    for line in out:
        line = line.rstrip("\n")
        m = re.match(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", line)
        if m:
            last = m
            continue
        print(line, flush=True)
    out.close()
    os.unlink(out.name)
    if not last:
        tally.fail("asan/run", "the ASan pass ended (exit %d) without its summary"
                   % rc)
        return
    tally.passed += int(last.group(1))
    tally.failed += int(last.group(2))
    tally.skipped += int(last.group(3) or 0)
    if rc != 0 and int(last.group(2)) == 0:
        tally.fail("asan/run", "the ASan pass exited %d with nothing failed" % rc)


class Ctx:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--asan", action="store_true")
    ap.add_argument("--asan-build", default="")
    ap.add_argument("--serial", action="store_true")
    ap.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    ap.add_argument("-k", dest="pattern", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", dest="verbose", action="store_true")
    args = ap.parse_args()

    h.become_subreaper()
    tally = Tally()
    staged = []
    child = out = None
    try:
        if args.asan_build and not args.serial:
            child, out = start_second_pass(args)
        run_build(args.build, args.asan, args.prefix, args, tally, staged)
        if args.asan_build and args.serial:
            run_build(args.asan_build, True, "asan/", args, tally, staged)
        if child is not None:
            finish_second_pass(child, out, tally)
            child = None
    except KeyboardInterrupt:
        print("interrupted")
        tally.failed += 1
    finally:
        if child is not None:
            child.terminate()
            child.wait()
        for path in staged:
            shutil.rmtree(path, ignore_errors=True)
    if os.environ.get("TGQ_UPDATE_GOLDEN"):
        tally.fail("golden", "TGQ_UPDATE_GOLDEN is set: the golden files were "
                   "written, not compared; run again without it")
    print(tally.summary())
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
