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
                then run everything again with DIR (an ASan/UBSan build), as
                --asan; its case names start with "asan/"
  -k TEXT       only the cases whose name contains TEXT
  --keep        keep the temp folders (they hold the generated secret)
"""

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))

import harness as h  # noqa: E402

UNIT_TIMEOUT = 120
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
        self.skipped += 1
        print("%s: skipped %s" % (name, " ".join(str(reason).split())), flush=True)

    def summary(self):
        s = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            s += ", %d skipped" % self.skipped
        return s


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


class Ctx:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--asan", action="store_true")
    ap.add_argument("--asan-build", default="")
    ap.add_argument("-k", dest="pattern", default="")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", dest="verbose", action="store_true")
    args = ap.parse_args()

    h.become_subreaper()
    tally = Tally()
    staged = []
    runs = [(args.build, args.asan, "")]
    if args.asan_build:
        runs.append((args.asan_build, True, "asan/"))
    try:
        for build, asan, prefix in runs:
            ctx = Ctx()
            ctx.build = os.path.abspath(build)
            ctx.bindir = h.stage_binaries(ctx.build)
            staged.append(ctx.bindir)
            ctx.binary = os.path.join(ctx.bindir, "tgq-webhook")
            ctx.asan = asan
            ctx.keep = args.keep
            ctx.verbose = args.verbose
            ctx.prefix = prefix
            run_unit(ctx, args.pattern, tally)
            for mod in load_modules():
                if not hasattr(mod, "groups"):
                    tally.fail(prefix + mod.__name__, "has no groups(ctx) function")
                    continue
                for gname, make, cases in mod.groups(ctx):
                    run_group(mod, prefix + gname, make, cases, ctx, args.pattern,
                              tally)
    except KeyboardInterrupt:
        print("interrupted")
        tally.failed += 1
    finally:
        for path in staged:
            shutil.rmtree(path, ignore_errors=True)
    print(tally.summary())
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
