"""tests/run.py itself: the ways a run could pass without testing fail it.

Group runner (once, with the first build; it runs no program of the build):
  ci_unexpected_skip_fails   under CI=true a skip not on EXPECTED_SKIPS is a failure
  ci_listed_skip_allowed     ... and a listed one, where allowed, stays a skip
  missing_program_fails      a build without tgq-webhook, tgq-drain, tgq fails
  update_golden_fails        a run with TGQ_UPDATE_GOLDEN set fails
"""

import contextlib
import importlib.util
import io
import os
import subprocess
import sys

import harness as h

Skip = h.Skip

_spec = importlib.util.spec_from_file_location(
    "tgq_run", os.path.join(h.ROOT, "tests", "run.py"))
run_py = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_py)

NO_CASE = "zz-matches-no-case"


@contextlib.contextmanager
def environ(**kv):
    old = {k: os.environ.get(k) for k in kv}
    os.environ.update({k: v for k, v in kv.items() if v is not None})
    for k, v in kv.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tally_of(skips):
    t = run_py.Tally()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        for name, reason in skips:
            t.skip(name, reason)
    return t, out.getvalue()


def case_ci_unexpected_skip(stack):
    with environ(CI="true"):
        t, out = tally_of([("asan/cgi/some_case", "valgrind is not installed")])
    assert t.failed == 1 and t.skipped == 0, out
    assert "not on run.py's EXPECTED_SKIPS" in out, out
    with environ(CI=None):
        t, out = tally_of([("cgi/some_case", "valgrind is not installed")])
    assert t.failed == 0 and t.skipped == 1, out


def case_ci_listed_skip(stack):
    # Each listed skip is allowed exactly where its condition holds.
    for pat, why, when in run_py.EXPECTED_SKIPS:
        name = pat.replace("*", "a_case")
        with environ(CI="true"):
            t, out = tally_of([(name, why + " (x)"), ("asan/" + name, why)])
        if when:
            assert t.skipped == 2 and t.failed == 0, out
        else:
            assert t.failed == 2 and t.skipped == 0, out
    stack.notes.append("%d expected skips listed" % len(run_py.EXPECTED_SKIPS))


def runner(stack, build, **env):
    r = subprocess.run([sys.executable, os.path.join(h.ROOT, "tests", "run.py"),
                        "--build", build, "-k", NO_CASE], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **env), cwd=h.ROOT)
    return r.returncode, r.stdout + r.stderr


def case_missing_program(stack):
    empty = h.make_subdir(stack.tmpdir, "empty-build")
    rc, out = runner(stack, empty)
    assert rc == 1, "exit %d: %s" % (rc, out[-600:])
    assert "build: FAIL missing from %s: tgq-webhook, tgq-drain, tgq" % empty in out, \
        out[-600:]


def case_update_golden(stack):
    # An empty build keeps this quick (no unit program runs); it fails for the
    # missing programs too, so the golden line itself is what is looked for.
    empty = h.make_subdir(stack.tmpdir, "empty-build-golden")
    rc, out = runner(stack, empty, TGQ_UPDATE_GOLDEN="1")
    assert rc == 1 and "golden: FAIL TGQ_UPDATE_GOLDEN is set" in out, \
        "exit %d: %s" % (rc, out[-600:])
    rc, out = runner(stack, empty)
    assert "golden: FAIL" not in out, out[-600:]


def groups(ctx):
    if ctx.prefix:
        return []      # nothing here depends on the build: once is enough
    return [("runner", lambda: h.TempStack(ctx, "tgq-runner-"), [
        ("ci_unexpected_skip_fails", case_ci_unexpected_skip),
        ("ci_listed_skip_allowed", case_ci_listed_skip),
        ("missing_program_fails", case_missing_program),
        ("update_golden_fails", case_update_golden),
    ])]
