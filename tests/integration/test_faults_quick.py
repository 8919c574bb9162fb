"""The fault suite (tests/faults/faults.py, `make test-faults`) replayed in its
--quick mode inside `make test`: each scenario is one case, with a fresh queue,
real nginx, 4 tgq-webhook workers, tgq-drain --follow and the fake Bot API; a case
fails on any ledger violation (an acknowledged update lost or stored twice, an
update handled twice, an update without a reply the fake answered 200 with its
text and chat_id, a dead reply the scenario does not allow, a chat's replies out of
order, a duplicate send without a drain crash, an update never acknowledged, a
410, a secret in a log, a drain that gave up where that is not expected) and when
the scenario cannot show its fault happened.  Under the ASan build the scenarios
run smaller ("tiny"), to keep the whole replay near two minutes.  The ledger lines
are printed as the group's notes.

Group faults-mutants: the ledger itself is tested.  Each case runs one scenario
(tiny) with a broken set-up and passes only when the ledger FAILS for the reason
the breakage causes: the fake answering 403 to every sendMessage (no reply is
delivered), and TGQ_MAX_ATTEMPTS=1 under the Bot API's errors (retries that no
longer work: replies die).
"""

import importlib.util
import os

import harness as h

_path = os.path.join(h.ROOT, "tests", "faults", "faults.py")
_spec = importlib.util.spec_from_file_location("tgq_faults", _path)
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)


Skip = h.Skip

# mutation -> (scenario it breaks, words one of the ledger's problems must hold)
MUTANTS = [
    ("403-every-send", "nginx-reload", "without a reply the Bot API accepted"),
    ("one-attempt", "botapi-errors", "replies dead"),
]


class FaultStack(h.TempStack):
    """No servers of its own: each case (scenario) starts and stops its world in a
    folder under tmpdir, where ASan reports land too."""

    def __init__(self, ctx):
        super().__init__(ctx, "tgq-faults-quick-")
        self.webhooks = []


def run(stack, name, size, mutation=None):
    # A mutant's failure is expected: its log tail would only be noise.
    try:
        return faults.run_scenario(
            name, stack.ctx.bindir, size, parent=stack.tmpdir, asan=stack.ctx.asan,
            keep=stack.ctx.keep, out=None if mutation else stack.notes.append,
            mutation=mutation)
    except faults.Skipped as e:
        raise Skip(str(e))


def scenario_case(name):
    def case(stack):
        size = "tiny" if stack.ctx.asan else "quick"
        ok, line, problems, extra = run(stack, name, size)
        stack.notes.append(line)
        stack.notes.append("  " + extra)
        if not ok:
            raise AssertionError("%s: %s" % (line, "; ".join(problems)))
    return name, case


def mutant_case(mutation, name, expected):
    def case(stack):
        ok, line, problems, extra = run(stack, name, "tiny", mutation)
        stack.notes.append("%s (mutation %s): %s" % (
            line, mutation, "; ".join(problems) if problems else "no problem found"))
        assert not ok, "the ledger passed a broken set-up (%s): %s" % (mutation, line)
        assert any(expected in p for p in problems), \
            "the ledger failed, but not with %r: %s" % (expected, "; ".join(problems))
    return "%s-%s" % (name, mutation), case


def groups(ctx):
    # A missing program is a failure of every case (run.py reports the setup
    # error), not a group that quietly disappears.
    def make():
        for prog in ("tgq-webhook", "tgq-drain"):
            if not os.path.exists(os.path.join(ctx.build, prog)):
                raise FileNotFoundError("%s is missing from %s" % (prog, ctx.build))
        return FaultStack(ctx)
    return [("faults-quick", make,
             [scenario_case(n) for n in faults.SCENARIO_NAMES]),
            ("faults-mutants", make,
             [mutant_case(m, n, e) for m, n, e in MUTANTS])]
