"""libfcgi has one adapter: only cgi/fcgi_adapter.c includes fcgiapp.h or touches an
FCGX_Request, and its compile-time check stops the build when libfcgi's
FCGX_Request is not laid out as the adapter expects."""

import glob
import os
import re
import shutil
import subprocess

import harness as h


Skip = h.Skip

ADAPTER = "cgi/fcgi_adapter.c"
# libfcgi's API, and the FCGX_Request fields fcgiapp.h puts under "Don't use
# anything below here".
LIBFCGI_WORDS = re.compile(
    r"fcgiapp\.h|\bFCGX_|\bFCGI_Accept|\b(?:ipcFd|isBeginProcessed|keepConnection|"
    r"appStatus|nWriters|listen_sock|paramsPtr|detached)\b")
EXPECTS = "not where fcgi_adapter.c expects"


class Stack(h.TempStack):
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-fcgi-adapter-")
        self.cc = shutil.which("cc", path=h.SEARCH_PATH)

    def compile_adapter(self, include_first):
        """`cc -fsyntax-only` of the adapter with include_first searched before
        the system's headers: (exit status, output)."""
        cmd = [self.cc, "-std=c11", "-D_DEFAULT_SOURCE", "-fsyntax-only",
               "-I", include_first, "-Ilib", "-Icgi", ADAPTER]
        p = subprocess.run(cmd, cwd=h.ROOT, capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout + p.stderr

    def copy_fcgiapp_h(self, edit):
        """fcgiapp.h as the compiler finds it, passed through edit(), in a folder
        of its own; returns the folder."""
        if not self.cc:
            raise Skip("no C compiler (cc) on PATH")
        p = subprocess.run([self.cc, "-M", "-x", "c", "-"], input=
                           "#include <fcgiapp.h>\n", capture_output=True,
                           text=True, timeout=60)
        found = [w for w in p.stdout.replace("\\\n", " ").split()
                 if w.endswith("/fcgiapp.h")]
        if p.returncode != 0 or not found:
            raise Skip("fcgiapp.h not found (deploy/deps.sh installs libfcgi-dev)")
        with open(found[0], encoding="utf-8", errors="replace") as f:
            text = f.read()
        folder = os.path.join(self.tmpdir, "include")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "fcgiapp.h"), "w", encoding="utf-8") as f:
            f.write(edit(text))
        return folder


def case_only_the_adapter_drives_libfcgi(stack):
    files = sorted(glob.glob(os.path.join(h.ROOT, "cgi", "*.[ch]")))
    assert os.path.join(h.ROOT, ADAPTER) in files, "%s is missing" % ADAPTER
    offenders = []
    for path in files:
        rel = os.path.relpath(path, h.ROOT)
        if rel == ADAPTER:
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if LIBFCGI_WORDS.search(line):
                    offenders.append("%s:%d: %s" % (rel, n, line.strip()))
    assert not offenders, "libfcgi driven outside %s:\n%s" % (
        ADAPTER, "\n".join(offenders))


def case_layout_check_passes(stack):
    rc, out = stack.compile_adapter(stack.copy_fcgiapp_h(lambda t: t))
    assert rc == 0, "the adapter does not compile against fcgiapp.h: %s" % out


def case_layout_check_fires(stack):
    # A field added before ipcFd moves every field the adapter touches.
    def moved(text):
        field = re.compile(r"^(\s*)int ipcFd;", re.M)
        assert field.search(text), "fcgiapp.h has no `int ipcFd;` line"
        return field.sub(r"\1int added_by_the_test;\n\1int ipcFd;", text, count=1)
    rc, out = stack.compile_adapter(stack.copy_fcgiapp_h(moved))
    assert rc != 0, "the adapter compiled against an FCGX_Request it does not know"
    assert EXPECTS in out or "is not the 2.4.x layout" in out, \
        "the build failed, but not on the layout check: %s" % out[-1500:]


def groups(ctx):
    # The sources do not depend on the build: check them once.
    if ctx.prefix:
        return []
    return [("fcgi_adapter", lambda: Stack(ctx), [
        ("only_the_adapter_drives_libfcgi", case_only_the_adapter_drives_libfcgi),
        ("layout_check_passes", case_layout_check_passes),
        ("layout_check_fires", case_layout_check_fires),
    ])]
