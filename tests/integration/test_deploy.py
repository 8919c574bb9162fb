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
        # The units name the installed programs (tgq in bin/, the daemons in
        # sbin/); point them at this build.
        for path in sorted(glob.glob(os.path.join(UNITS, "*.service")) +
                           glob.glob(os.path.join(UNITS, "*.socket")) +
                           glob.glob(os.path.join(UNITS, "*.timer"))):
            with open(path) as f:
                text = (f.read().replace("/usr/local/sbin", ctx.bindir)
                        .replace("/usr/local/bin", ctx.bindir))
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


def unit_settings(path):
    """{(section, key): [values]} of a unit file."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif "=" in line and not line.startswith(("#", ";")):
                key, value = line.split("=", 1)
                out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def case_register_wiring(stack):
    """`systemctl enable --now tgq-webhook.socket tgq-drain.timer` brings a bot
    online: the socket wants tgq-register.service, a oneshot after the network
    that runs set-webhook --if-changed with both secrets as credentials."""
    sock = unit_settings(os.path.join(UNITS, "tgq-webhook.socket"))
    assert "tgq-register.service" in " ".join(sock.get(("Unit", "Wants"), [])), \
        "tgq-webhook.socket does not want tgq-register.service: %r" % sock
    reg = unit_settings(os.path.join(UNITS, "tgq-register.service"))
    want = {("Service", "Type"): ["oneshot"],
            ("Service", "ExecStart"): ["/usr/local/bin/tgq set-webhook --if-changed"],
            ("Unit", "After"): ["network-online.target"],
            ("Unit", "Wants"): ["network-online.target"],
            ("Service", "User"): ["tgq"],
            ("Service", "ReadWritePaths"): ["/var/lib/tgq"]}
    wrong = {k: reg.get(k) for k, v in want.items() if reg.get(k) != v}
    assert not wrong, "tgq-register.service: %r" % wrong
    creds = sorted(v.split(":")[0] for v in reg.get(("Service", "LoadCredential"), []))
    assert creds == ["bot-token", "webhook-secret"], "credentials %r" % creds
    with open(os.path.join(h.ROOT, "Makefile")) as f:
        assert "deploy/systemd/tgq-register.service" in f.read(), \
            "make install does not install tgq-register.service"


def groups(ctx):
    return [("deploy-systemd", lambda: Stack(ctx),
             [("verify", case_verify), ("security_score", case_security),
              ("register_wiring", case_register_wiring)])]
