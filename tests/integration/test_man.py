"""The manual pages: they pass `mandoc -T lint -W warning`, render, document every
command of cli/main.c and every key and variable of the configuration (as
`tgq-webhook --print-keys` lists them; the README's table has every key too, with
its variable and default), and `make install` puts them (and the programs) where
man(1) finds them."""

import os
import re
import shutil
import subprocess
import tempfile

import harness as h


Skip = h.Skip


MANDIR = os.path.join(h.ROOT, "man")
# page -> its NAME line as `mandoc -T ascii` renders it (after col -b).
PAGES = {
    "tgq.1": "tgq - register a Telegram webhook",
    "tgq.conf.5": "tgq.conf - configuration of the tgq Telegram webhook queue",
    "tgq-webhook.8": "tgq-webhook - Telegram webhook endpoint",
    "tgq-drain.8": "tgq-drain - handle queued Telegram updates",
}
INSTALLED = [
    "usr/bin/tgq",
    "usr/sbin/tgq-webhook",
    "usr/sbin/tgq-drain",
    "usr/share/man/man1/tgq.1",
    "usr/share/man/man5/tgq.conf.5",
    "usr/share/man/man8/tgq-webhook.8",
    "usr/share/man/man8/tgq-drain.8",
]


class Stack(h.TempStack):
    def __init__(self, ctx):
        super().__init__(ctx, "tgq-man-")
        self.mandoc = shutil.which("mandoc", path=h.SEARCH_PATH)

    def page(self, name):
        return os.path.join(MANDIR, name)

    def source(self, name):
        with open(self.page(name), encoding="utf-8") as f:
            return f.read()

    def need_mandoc(self):
        if not self.mandoc:
            raise Skip("mandoc is not installed (deploy/deps.sh test installs it)")
        return self.mandoc


def read_root(path):
    with open(os.path.join(h.ROOT, path), encoding="utf-8") as f:
        return f.read()


def c_array(text, name):
    """The body of `... name[...] = { ... };` in a C file."""
    m = re.search(r"\b%s\s*\[[^\]]*\]\s*=\s*\{(.*?)\n?\};" % re.escape(name), text,
                  re.S)
    assert m, "no array %s[] found" % name
    return m.group(1)


def documented_items(source):
    """The words that start `.It` lines, macros (Cm, Ic, Ev, Fl, ...) skipped."""
    words = set()
    for line in source.splitlines():
        if not line.startswith(".It "):
            continue
        for word in line.split()[1:]:
            word = word.rstrip(",")
            if re.fullmatch(r"[A-Z][a-z][a-z]?", word):
                continue    # a macro name
            words.add(word)
    return words


def case_mandoc_lint(stack):
    mandoc = stack.need_mandoc()
    for name in PAGES:
        r = subprocess.run([mandoc, "-T", "lint", "-W", "warning", stack.page(name)],
                           capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        assert r.returncode == 0 and not out, \
            "mandoc -T lint -W warning %s: exit %d: %s" % (name, r.returncode, out)


def case_renders(stack):
    mandoc = stack.need_mandoc()
    for name, name_line in PAGES.items():
        r = subprocess.run([mandoc, "-T", "ascii", stack.page(name)],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, "mandoc -T ascii %s: exit %d: %s" % (
            name, r.returncode, r.stderr.decode(errors="replace").strip())
        # Undo the overstriking of bold and underlined text, as col -b does.
        text = re.sub(r".\x08", "", r.stdout.decode(errors="replace"))
        text = " ".join(text.split())
        assert "NAME " + name_line in text, \
            "%s: the NAME section does not read %r" % (name, name_line)
        for section in ("DESCRIPTION", "SEE ALSO"):
            assert section in text, "%s has no %s section" % (name, section)


def case_every_command_documented(stack):
    table = c_array(read_root("cli/main.c"), "commands")
    commands = re.findall(r'^\s*\{\s*"([a-z][a-z-]*)",', table, re.M)
    assert len(commands) >= 5, "found only %d commands in cli/main.c: %s" % (
        len(commands), commands)
    items = documented_items(stack.source("tgq.1"))
    missing = [c for c in commands if c not in items]
    assert not missing, "tgq.1 has no .It for the command(s) %s" % ", ".join(missing)
    stack.notes.append("tgq.1 documents the %d commands of cli/main.c" %
                       len(commands))


def config_keys(stack):
    """The rows of `tgq-webhook --print-keys`: (section, key, variable, type,
    default), key and default "-" when there is none."""
    prog = os.path.join(stack.ctx.build, "tgq-webhook")
    r = subprocess.run([prog, "--print-keys"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "tgq-webhook --print-keys: exit %d: %s" % (
        r.returncode, r.stderr.strip())
    rows = [tuple(line.split("\t")) for line in r.stdout.splitlines()]
    bad = [row for row in rows if len(row) != 5]
    assert not bad, "tgq-webhook --print-keys: not 5 columns: %r" % bad[:3]
    return rows


def case_every_key_documented(stack):
    rows = config_keys(stack)
    keys = [key for _, key, _, _, _ in rows if key != "-"]
    variables = [var for _, _, var, _, _ in rows]
    assert len(keys) >= 10 and len(variables) >= 10, \
        "tgq-webhook --print-keys lists only %d keys and %d variables" % (
            len(keys), len(variables))
    items = documented_items(stack.source("tgq.conf.5"))
    missing = [k for k in keys + variables if k not in items]
    assert not missing, "tgq.conf.5 has no .It for %s" % ", ".join(missing)
    stack.notes.append("tgq.conf.5 documents %d keys and %d variables" % (
        len(keys), len(variables)))


def case_readme_table_lists_keys(stack):
    """Each key has its row in the README's configuration table, which names
    its section, its variable and its default."""
    readme = read_root("README.md")
    problems = []
    for section, key, var, _, default in config_keys(stack):
        if key == "-":
            continue
        start = "| `%s` (`%s`) |" % (key, section)
        lines = [l for l in readme.splitlines() if l.startswith(start)]
        if len(lines) != 1:
            problems.append("%d rows for %s" % (len(lines), start))
            continue
        cells = [c.strip() for c in lines[0].split("|")[1:-1]]
        if "`%s`" % var not in cells[1]:
            problems.append("%s: no `%s` in %r" % (key, var, cells[1]))
        if default != "-" and not cells[2].startswith("`%s`" % default):
            problems.append("%s: default %r, the README says %r" % (
                key, default, cells[2]))
    assert not problems, "README.md's configuration table: " + "; ".join(problems)


def case_install_lists_pages(stack):
    if not shutil.which("make", path=h.SEARCH_PATH):
        raise Skip("make is not installed")
    dest = tempfile.mkdtemp(prefix="install-", dir=stack.tmpdir)
    r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr",
                        "B=" + stack.ctx.build], cwd=h.ROOT, capture_output=True,
                       text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0, "make install failed (exit %d): %s" % (
        r.returncode, out[-1500:])
    missing = [p for p in INSTALLED if not os.path.isfile(os.path.join(dest, p))]
    assert not missing, "make install did not install %s" % ", ".join(missing)
    for page in INSTALLED[3:]:
        with open(os.path.join(dest, page), "rb") as f, \
                open(os.path.join(MANDIR, os.path.basename(page)), "rb") as g:
            assert f.read() == g.read(), "%s differs from man/" % page


def groups(ctx):
    # The pages do not depend on the build: check them once, not again for the
    # sanitizer build (whose make install would rebuild it without sanitizers).
    if ctx.prefix:
        return []
    return [("man", lambda: Stack(ctx), [
        ("mandoc_lint", case_mandoc_lint),
        ("renders", case_renders),
        ("every_command_documented", case_every_command_documented),
        ("every_key_documented", case_every_key_documented),
        ("readme_table_lists_keys", case_readme_table_lists_keys),
    ] + ([] if ctx.asan else [
        # A sanitizer build's make install would rebuild it without sanitizers.
        ("install_lists_pages", case_install_lists_pages)]))]
