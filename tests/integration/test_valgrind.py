"""The C unit tests once more under valgrind's memcheck (the plain build; the
ASan build is checked by its own sanitizers): zero errors, zero leaks."""

import glob
import os
import shutil
import subprocess

import harness as h


Skip = h.Skip


class Stack(h.TempStack):
    def __init__(self, ctx):
        if not shutil.which("valgrind", path=h.SEARCH_PATH):
            raise Skip("valgrind is not installed")
        super().__init__(ctx, "tgq-valgrind-")


def unit_case(prog):
    def run(stack):
        log = os.path.join(stack.tmpdir, os.path.basename(prog) + ".valgrind")
        # valgrind 3.19 does not know pidfd_open (the handler runner falls back
        # without it): that warning is no error of ours.
        r = subprocess.run(["valgrind", "-q", "--error-exitcode=99",
                            "--leak-check=full", "--errors-for-leak-kinds=definite",
                            "--log-file=" + log, prog],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=600, cwd=h.ROOT)
        with open(log, errors="replace") as f:
            report = "".join(line for line in f
                             if "unhandled amd64-linux syscall" not in line and
                             "You may be able to write your own handler" not in line
                             and "Read the file README_MISSING_SYSCALL" not in line
                             and "Nevertheless we consider this a bug" not in line
                             and "ensure that the syscall is" not in line)
        assert r.returncode != 99, "valgrind reports:\n%s" % report[-3000:]
        assert r.returncode == 0, "%s exited %d: %s" % (prog, r.returncode,
                                                        r.stdout[-500:])
        stack.notes.append("%s: clean" % os.path.basename(prog))
    return run


def groups(ctx):
    # The ASan build is checked by its own sanitizers, by design not under
    # valgrind: no group at all rather than a skip.
    if ctx.asan:
        return []
    progs = sorted(p for p in glob.glob(os.path.join(ctx.build, "tests", "test_*"))
                   if os.access(p, os.X_OK))
    return [("valgrind", lambda: Stack(ctx),
             [(os.path.basename(p), unit_case(p)) for p in progs])]
