"""The fault suite (tests/faults/faults.py, `make test-faults`) replayed in its
--quick mode inside `make test`: each scenario is one case, with a fresh queue,
real nginx, 4 tgq-webhook workers, tgq-drain --follow and the fake Bot API; a case
fails on any ledger violation (an acknowledged update lost, an update handled
twice, a reply neither delivered nor dead with a reason, a duplicate send without a
drain crash, an update never acknowledged, a 410, a secret in a log).  Under the
ASan build the scenarios run smaller ("tiny"), to keep the whole replay near two
minutes.  The ledger lines are printed as the group's notes.
"""

import importlib.util
import os
import shutil

import harness as h

_path = os.path.join(h.ROOT, "tests", "faults", "faults.py")
_spec = importlib.util.spec_from_file_location("tgq_faults", _path)
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)


Skip = h.Skip


class FaultStack:
    """No servers of its own: each case (scenario) starts and stops its world in a
    folder under tmpdir, where ASan reports land too."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.tmpdir = h.make_tmpdir("tgq-faults-quick-")
        self.notes = []
        self.webhooks = []

    def start(self):
        return self

    def stop(self):
        pass

    def logs(self):
        return ""

    def redact(self, text):
        return str(text)

    def cleanup(self):
        if self.ctx.keep:
            print("# kept %s" % self.tmpdir)
        else:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def scenario_case(name):
    def run(stack):
        size = "tiny" if stack.ctx.asan else "quick"
        try:
            ok, line, problems, extra = faults.run_scenario(
                name, stack.ctx.bindir, size, parent=stack.tmpdir,
                asan=stack.ctx.asan, keep=stack.ctx.keep, out=stack.notes.append)
        except faults.Skipped as e:
            raise Skip(str(e))
        stack.notes.append(line)
        stack.notes.append("  " + extra)
        if not ok:
            raise AssertionError("%s: %s" % (line, "; ".join(problems)))
    return name, run


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.build, "tgq-drain")):
        return []
    return [("faults-quick", lambda: FaultStack(ctx),
             [scenario_case(n) for n in faults.SCENARIO_NAMES])]
