"""The shipped deploy files as a machine would take them: the systemd units pass
`systemd-analyze verify` and rate well in `systemd-analyze security --offline`.
(The nginx and lighttpd snippets are checked with `nginx -t` and `lighttpd -tt`
each time the other groups start a server with them.)"""

import glob
import os
import re
import shutil
import subprocess

import harness as h


Skip = h.Skip


UNITS = os.path.join(h.ROOT, "deploy", "systemd")


class Stack(h.TempStack):
    def __init__(self, ctx):
        if not shutil.which("systemd-analyze", path=h.SEARCH_PATH):
            raise Skip("systemd-analyze is not installed")
        super().__init__(ctx, "tgq-units-")
        # The units name the installed programs; point them at this build.
        for path in sorted(glob.glob(os.path.join(UNITS, "*.service")) +
                           glob.glob(os.path.join(UNITS, "*.socket")) +
                           glob.glob(os.path.join(UNITS, "*.timer"))):
            with open(path) as f:
                text = f.read().replace("/usr/local/sbin", ctx.bindir)
            with open(os.path.join(self.tmpdir, os.path.basename(path)), "w") as f:
                f.write(text)

    def units(self, suffix):
        return sorted(glob.glob(os.path.join(self.tmpdir, "*" + suffix)))


def case_verify(stack):
    units = stack.units(".service") + stack.units(".timer") + stack.units(".socket")
    assert units, "no units in deploy/systemd"
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                       capture_output=True, text=True, timeout=60, cwd=stack.tmpdir)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and not out, "systemd-analyze verify: %s" % out


def case_security(stack):
    for unit in stack.units(".service"):
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        assert m, "no exposure level for %s: %s" % (unit, r.stderr.strip())
        score = float(m.group(1))
        stack.notes.append("%s: exposure %.1f" % (os.path.basename(unit), score))
        assert score <= 2.0, "%s: exposure %.1f, more than 2.0" % (unit, score)


def groups(ctx):
    return [("deploy-systemd", lambda: Stack(ctx),
             [("verify", case_verify), ("security_score", case_security)])]
