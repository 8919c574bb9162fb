"""The fuzz targets of tests/fuzz/ replayed without libFuzzer: each target's
replay program (BUILD/tests/fuzz_replay_<target>, built by `make all`) runs the
target on every input of tests/fuzz/corpus/<target> and tests/fuzz/crashes/<target>
(every crash ever found stays there as a regression case).  Under --asan it is the
ASan/UBSan build's program, so a memory error fails the case too.

Group:
  fuzz-replay   one case per target: request, json, config, calls, answer, frame,
                fcgi
"""

import os
import re
import subprocess

import harness as h

TARGETS = ["request", "json", "config", "calls", "answer", "frame", "fcgi"]
FUZZ = os.path.join(h.ROOT, "tests", "fuzz")
TIMEOUT = 300
KEY_LINE = re.compile(r"invariant violated|ERROR: AddressSanitizer|ERROR: LeakSanitizer"
                      r"|runtime error:|^SUMMARY:|FAIL")


Skip = h.Skip


class Stack(h.TempStack):
    # Reports go to the program's stderr, which a failing case shows; nothing
    # lands in tmpdir for run.py's sanitizer_reports.
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-fuzz-replay-")

    def program(self, target):
        return os.path.join(self.ctx.build, "tests", "fuzz_replay_" + target)

    def env(self):
        env = dict(os.environ)
        env.pop("TGQ_CONFIG", None)
        if self.ctx.asan:
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
            env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        return env


def failure(rc, out):
    """One line: the exit, the input being replayed and what went wrong."""
    what = "killed by signal %d" % -rc if rc < 0 else "exit status %d" % rc
    replaying = [l for l in out.splitlines() if ": replaying " in l]
    where = replaying[-1].split(": replaying ", 1)[1] if replaying else "?"
    keys = [l.strip() for l in out.splitlines() if KEY_LINE.search(l)][:4]
    frames = [l.strip() for l in out.splitlines()
              if re.match(r"\s+#\d+ .* in (?!__|fuzzer::)", l)][:4]
    return "%s on %s: %s | %s" % (what, where, " | ".join(keys) or out[-600:],
                                  " | ".join(frames))


def make_case(target):
    def case(stack):
        prog = stack.program(target)
        if not os.access(prog, os.X_OK):
            raise AssertionError("%s is missing: run make all" % prog)
        dirs = [os.path.join(FUZZ, "corpus", target),
                os.path.join(FUZZ, "crashes", target)]
        r = subprocess.run([prog] + dirs, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=TIMEOUT, cwd=h.ROOT,
                           env=stack.env())
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        if r.returncode != 0:
            raise AssertionError(failure(r.returncode, out))
        lines = [l for l in r.stdout.decode(errors="replace").splitlines()
                 if l.startswith("fuzz_")]
        if len(lines) != len(dirs) or any(": ok" not in l for l in lines):
            raise AssertionError("unexpected output: %s" % out[-600:])
        # The corpus must hold inputs: a replay of none would test nothing.  (The
        # crashes folder may be empty: nothing was ever found there.)
        m = re.search(r"\((\d+) inputs\)", lines[0])
        if not m or int(m.group(1)) < 1:
            raise AssertionError("replayed no input from %s: %s" % (dirs[0], lines[0]))
        stack.notes.append("; ".join(lines))
    return case


def groups(ctx):
    return [("fuzz-replay", lambda: Stack(ctx),
             [(t, make_case(t)) for t in TARGETS])]
