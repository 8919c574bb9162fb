"""deploy/README.md followed to the letter, as root on a scratch copy of the
machine: each case runs in a private mount namespace with overlays on /etc, /usr,
/var and /run (what it writes there vanishes with it; nothing outside changes),
runs the README's shell blocks as written (`make install PREFIX=/usr`,
systemd-sysusers, systemd-tmpfiles, the secrets and tgq.conf, and the commands
without systemd), then the installed programs as the user `tgq` they create.

  systemd:    the units' view (the user tgq, each unit's credential as systemd
              passes it): tgq-webhook --check, the drain and doctor use
              /etc/tgq/tgq.conf and its handler; tgq-register.service's
              command registers the webhook once, then finds nothing changed; an operator's `tgq status` needs
              no token; a user who cannot enter /etc/tgq gets an error naming the
              path and the user, not the defaults.
  no_systemd: the "Without systemd" block as written: spawn-fcgi and the drain
              under runuser, the shipped nginx files on 127.0.0.1; an update goes
              in through nginx, the drain answers it, and the queue's files are
              0640 without a unit's UMask=.
  docs_agree: README.md, tgq-webhook(8) and deploy/README.md give the same
              spawn-fcgi line, and the man page's nginx example keeps connections
              open as deploy/nginx/tgq-upstream.conf does.

The Bot API is the fake on 127.0.0.1; TGQ_API_URL points every program there."""

import grp
import json
import os
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(HERE))

import harness as h  # noqa: E402

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_"
DEPLOY_README = os.path.join(h.ROOT, "deploy", "README.md")
BOT_SCRIPT = """#!/bin/sh
body=$(cat)
chat=$(printf '%s' "$body" | sed -n 's/.*"chat":{"id":\\(-\\{0,1\\}[0-9]*\\).*/\\1/p')
printf '{"method":"sendMessage","chat_id":%s,"text":"from my-bot"}\\n' "$chat"
"""
UPDATE = b'{"update_id":1001,"message":{"chat":{"id":42,"type":"private"},"text":"hi"}}'

Skip = h.Skip
check = h.check


# ------------------------------------------------------------ the README

def sh_blocks(section):
    """The ```sh blocks of the deploy/README.md section whose title starts with
    section."""
    with open(DEPLOY_README) as f:
        text = f.read()
    m = re.search(r"^## %s[^\n]*\n(.*?)(?=^## |\Z)" % re.escape(section), text,
                  re.M | re.S)
    if not m:
        raise AssertionError("deploy/README.md has no section %r" % section)
    return re.findall(r"^```sh\n(.*?)^```", m.group(1), re.M | re.S)


def spawn_fcgi_lines(text, markdown=False):
    """Every spawn-fcgi command line (one with -s) in text: continuation lines
    joined (roff's \\e, the shell's backslash, markdown's wrapped code spans)."""
    text = text.replace("\\e\n", " \\\n").replace("\\-", "-")
    text = re.sub(r"\\\n\s*", " ", text)
    if markdown:
        text = re.sub(r"`[^`]*`", lambda m: " ".join(m.group(0).split()), text)
    return [" ".join(m.split()) for m in re.findall(r"spawn-fcgi [^\n`]*", text)
            if " -s " in m]


# ------------------------------------------------------------ inside the namespace

def sh(script, stdin="", env=None, timeout=120):
    r = subprocess.run(["/bin/sh", "-e", "-c", script], input=stdin, text=True,
                       capture_output=True, timeout=timeout, cwd=h.ROOT,
                       env=h.base_env(env))
    if r.returncode != 0:
        raise AssertionError("%s\nexit %d: %s" % (script.strip()[:300], r.returncode,
                                                 (r.stdout + r.stderr)[-1500:]))
    return r


def as_user(user, argv, env=None, stdin=None, timeout=120):
    """argv as user (its groups as /etc/group gives them), as a unit runs it."""
    gid = str(pwd.getpwnam(user).pw_gid)
    r = subprocess.run(["setpriv", "--reuid", user, "--regid", gid, "--init-groups",
                        "--"] + argv, input=stdin, capture_output=True,
                       timeout=timeout, cwd="/", env=h.base_env(env))
    return {"rc": r.returncode, "out": r.stdout.decode(errors="replace"),
            "err": r.stderr.decode(errors="replace")}


def overlay(tmp):
    """The scratch machine: /etc, /usr, /var and /run as overlays whose changes
    land in tmp."""
    for top in ("/etc", "/usr", "/var", "/run"):
        upper = os.path.join(tmp, "overlay", top.strip("/"), "upper")
        work = os.path.join(tmp, "overlay", top.strip("/"), "work")
        os.makedirs(upper)
        os.makedirs(work)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s,workdir=%s" % (top, upper, work), top],
                       check=True, capture_output=True, timeout=30)


def documented_install(args):
    """Sections 1 and 2 of deploy/README.md, as written but for the build folder
    make installs from."""
    first = sh_blocks("1.")[0]
    check("make && make install PREFIX=/usr" in first, "section 1 changed: %s" % first)
    # The programs of this test run's build (plain or sanitizer), already built.
    sh(first.replace("make && make install PREFIX=/usr",
                     "make -s install PREFIX=/usr B=%s PROGS=" % args["build"]))
    sh(sh_blocks("2.")[0], stdin=TOKEN + "\n")


def set_in_config(handler=None):
    """Edits /etc/tgq/tgq.conf in place (its owner and mode stay), as an admin
    with an editor would."""
    with open("/etc/tgq/tgq.conf", "r+") as f:
        text = f.read()
        if handler:
            text, n = re.subn(r"^handler = \S+", "handler = " + handler, text, flags=re.M)
            check(n == 1, "no handler line in tgq.conf")
        f.seek(0)
        f.truncate()
        f.write(text)


def credentials(unit, name):
    """What LoadCredential=NAME:/etc/tgq/NAME does: systemd, as root, copies the
    file into a folder only the unit's user can read."""
    folder = "/run/credentials/" + unit
    os.makedirs(folder, exist_ok=True)
    shutil.copy("/etc/tgq/" + name, os.path.join(folder, name))
    sh("chown -R tgq:tgq %s && chmod 0500 %s && chmod 0400 %s/%s" %
       (folder, folder, folder, name))
    return folder


def cgi_post(env):
    """One update through tgq-webhook as CGI, as the user tgq."""
    with open("/etc/tgq/webhook-secret") as f:
        secret = f.read().strip()
    e = dict(env, REQUEST_METHOD="POST", SCRIPT_NAME="/telegram/webhook",
             CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(UPDATE)),
             HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret)
    r = as_user("tgq", ["/usr/sbin/tgq-webhook"], env=e, stdin=UPDATE)
    r["out"] = r["out"].replace(secret, "$SECRET")
    r["err"] = r["err"].replace(secret, "$SECRET")
    return r


def inner_systemd(args):
    documented_install(args)
    # The README's other handler: a program of the admin's.
    with open("/usr/local/bin/my-bot", "w") as f:
        f.write(BOT_SCRIPT)
    os.chmod("/usr/local/bin/my-bot", 0o755)
    set_in_config(handler="exec:/usr/local/bin/my-bot")
    env = dict(args["env"], TGQ_API_URL=args["api_url"])
    webhook_creds = credentials("tgq-webhook.service", "webhook-secret")
    drain_creds = credentials("tgq-drain.service", "bot-token")
    out = {}
    out["check"] = as_user("tgq", ["/usr/sbin/tgq-webhook", "--check"],
                           env=dict(env, CREDENTIALS_DIRECTORY=webhook_creds))
    out["post"] = cgi_post(dict(env, CREDENTIALS_DIRECTORY=webhook_creds))
    out["drain"] = as_user("tgq", ["/usr/sbin/tgq-drain", "--once"],
                           env=dict(env, CREDENTIALS_DIRECTORY=drain_creds))
    # tgq-register.service's command, as the installed unit gives it, with
    # both its credentials: registers once, then finds nothing changed.
    credentials("tgq-register.service", "bot-token")
    register_creds = credentials("tgq-register.service", "webhook-secret")
    with open("/usr/lib/systemd/system/tgq-register.service") as f:
        argv = re.search(r"^ExecStart=(.*)$", f.read(), re.M).group(1).split()
    for key in ("register", "register_again"):
        out[key] = as_user("tgq", argv, env=dict(env,
                                                 CREDENTIALS_DIRECTORY=register_creds))
    out["status"] = as_user("tgq", ["/usr/bin/tgq", "status"], env=env)
    out["doctor"] = as_user("tgq", ["/usr/bin/tgq", "doctor"], env=env)
    out["nobody_check"] = as_user("nobody", ["/usr/sbin/tgq-webhook", "--check"],
                                  env=env)
    out["nobody_drain"] = as_user("nobody", ["/usr/sbin/tgq-drain", "--once"], env=env)
    out["etc_modes"] = {p: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in
                        ("/etc/tgq", "/etc/tgq/tgq.conf", "/etc/tgq/bot-token",
                         "/etc/tgq/webhook-secret")}
    return out


def inner_no_systemd(args):
    h.become_subreaper()
    documented_install(args)
    block = sh_blocks("Without systemd")[0]
    check(block.rstrip().endswith("&"), "the drain's line is not last")
    pidfile = os.path.join(args["tmp"], "drain.pid")
    # The block as written, in a shell whose umask is the usual 022; the drain it
    # leaves running is stopped by its PID.
    env = dict(args["env"], TGQ_API_URL=args["api_url"])
    sh("umask 022\n" + block + "\necho $! > %s\n" % pidfile, env=env)
    out = {"pids": []}
    with open(pidfile) as f:
        drain_pid = int(f.read())
    with open("/run/tgq/webhook.pid") as f:
        webhook_pids = [int(x) for x in f.read().split()]
    nginx = None
    try:
        nginx_dir = h.make_tmpdir("tgq-install-nginx-")
        nginx = h.Nginx(nginx_dir, "/run/tgq/webhook.sock").start()
        with open("/etc/tgq/webhook-secret") as f:
            secret = f.read().strip()
        r = h.request(nginx.port, "POST", "/telegram/webhook",
                      {"Content-Type": "application/json",
                       "X-Telegram-Bot-Api-Secret-Token": secret}, UPDATE)
        out["post_status"] = r.status
        deadline = time.monotonic() + 20
        state = None
        while time.monotonic() < deadline:
            # Read-only, as root: the queue's files keep the owner tgq gave them.
            con = sqlite3.connect("file:/var/lib/tgq/queue.db?mode=ro", uri=True,
                                  timeout=5)
            try:
                rows = con.execute("SELECT state FROM updates WHERE update_id = 1001"
                                   ).fetchall()
            finally:
                con.close()
            state = rows[0][0] if rows else None
            if state == "done":
                break
            time.sleep(0.1)
        out["state"] = state
        out["modes"] = {}
        for suffix in ("", "-wal", "-shm"):
            path = "/var/lib/tgq/queue.db" + suffix
            if os.path.exists(path):
                st = os.stat(path)
                out["modes"][suffix] = [oct(stat.S_IMODE(st.st_mode)),
                                        pwd.getpwuid(st.st_uid).pw_name]
        socket_st = os.stat("/run/tgq/webhook.sock")
        out["socket"] = [oct(stat.S_IMODE(socket_st.st_mode)),
                         pwd.getpwuid(socket_st.st_uid).pw_name,
                         grp.getgrgid(socket_st.st_gid).gr_name]
        # Stopped as the README says.
        sh("kill $(cat /run/tgq/webhook.pid)")
    finally:
        if nginx:
            nginx.stop()
        h.kill_pids(webhook_pids + [drain_pid])
        h.reap_orphans()
    out["drain_log"] = h.read_text("/var/log/tgq-drain.log")[-2000:]
    return out


def inner(argv):
    args = json.loads(argv[0])
    try:
        overlay(args["tmp"])
        result = {"systemd": inner_systemd, "no_systemd": inner_no_systemd}[
            args["case"]](args)
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - reported by the outer case
        result = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(result))


# ------------------------------------------------------------ the cases

class Stack(h.TempStack):
    def __init__(self, ctx):
        if not h.IS_ROOT:
            raise Skip("needs root: mounts a scratch /etc, /usr, /var and /run")
        for tool in ("unshare", "setpriv", "systemd-sysusers", "systemd-tmpfiles",
                     "spawn-fcgi", "runuser", "nginx"):
            if not shutil.which(tool, path=h.SEARCH_PATH):
                raise Skip("%s is not installed" % tool)
        super().__init__(ctx, "tgq-install-")
        probe = os.path.join(self.tmpdir, "probe")
        os.makedirs(os.path.join(probe, "u"))
        os.makedirs(os.path.join(probe, "w"))
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount",
                            "-t", "overlay", "overlay", "-o",
                            "lowerdir=/etc,upperdir=%s/u,workdir=%s/w" % (probe, probe),
                            "/etc"], capture_output=True, text=True, timeout=30)
        shutil.rmtree(probe, ignore_errors=True)
        if r.returncode != 0:
            raise Skip("no overlay mount in a private namespace here: %s" %
                       r.stderr.strip())
        from fake_botapi import FakeBotAPI
        self.api = FakeBotAPI(tokens={TOKEN: "default"}, limits=False)
        self.outputs = []

    def start(self):
        self.api.start()
        return self

    def stop(self):
        self.api.stop()

    def redact(self, text):
        return str(text).replace(TOKEN, "$TOKEN")

    def run_inner(self, case):
        tmp = os.path.join(self.tmpdir, case)
        os.makedirs(tmp)
        env = h.sanitizer_options(self.tmpdir) if self.ctx.asan else {}
        if self.ctx.asan:
            os.chmod(self.tmpdir, 0o1777)     # the user tgq writes its reports
        args = {"case": case, "tmp": tmp, "build": self.ctx.build,
                "api_url": self.api.url, "env": env}
        r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                            sys.executable, os.path.abspath(__file__), "inner",
                            json.dumps(args)], capture_output=True, text=True,
                           timeout=300, env=h.base_env())
        lines = r.stdout.strip().splitlines()
        check(lines, "no result: exit %d: %s" % (r.returncode, r.stderr[-1500:]))
        result = json.loads(lines[-1])
        self.outputs.append(json.dumps(result))
        check(result["ok"], result.get("error", "?"))
        return result


def case_systemd(stack):
    res = stack.run_inner("systemd")
    check(res["etc_modes"] == {"/etc/tgq": "0o750", "/etc/tgq/tgq.conf": "0o640",
                               "/etc/tgq/bot-token": "0o600",
                               "/etc/tgq/webhook-secret": "0o600"},
          "modes: %r" % res["etc_modes"])
    c = res["check"]
    check(c["rc"] == 0 and "configuration /etc/tgq/tgq.conf and database "
          "/var/lib/tgq/queue.db ok" in c["out"], "tgq-webhook --check as tgq: %r" % c)
    check("Status: 200" in res["post"]["out"], "webhook as tgq: %r" % res["post"])
    d = res["drain"]
    check(d["rc"] == 0, "drain as tgq: %r" % d)
    sent = json.dumps(stack.api.calls("sendMessage"))
    check("from my-bot" in sent, "the drain did not run the configured handler: "
          "calls %s, log %s" % (sent[:500], d["err"][-800:]))
    reg, again = res["register"], res["register_again"]
    check(reg["rc"] == 0 and reg["out"].startswith("registered: ") and
          again["rc"] == 0 and again["out"].startswith("unchanged: ") and
          len(stack.api.calls("setWebhook")) == 1,
          "tgq-register.service's command as tgq: %r, then %r" % (reg, again))
    s = res["status"]
    check(s["rc"] == 0 and "updates" in s["out"], "tgq status as tgq: %r" % s)
    doc = res["doctor"]["out"]
    check("ok       configuration  /etc/tgq/tgq.conf" in doc and
          "ok       handler" in doc and "bot-token: Permission denied" in doc,
          "doctor as tgq:\n%s" % doc)
    for key in ("nobody_check", "nobody_drain"):
        n = res[key]
        check(n["rc"] == 1 and "/etc/tgq/tgq.conf: Permission denied (running as "
              "user nobody)" in n["err"], "%s: %r" % (key, n))


def case_no_systemd(stack):
    res = stack.run_inner("no_systemd")
    check(res["post_status"] == 200, "POST through nginx: %r" % res["post_status"])
    check(res["socket"] == ["0o660", "tgq", "www-data"], "socket %r" % res["socket"])
    check(res["state"] == "done", "the update is %r; drain log: %s" %
          (res["state"], res["drain_log"]))
    sent = json.dumps(stack.api.calls("sendMessage"))
    check('"text": "hi"' in sent, "no echo reached the Bot API: %s" % sent[:500])
    modes = res["modes"]
    check(set(modes) == {"", "-wal", "-shm"} and
          all(m == ["0o640", "tgq"] for m in modes.values()),
          "queue files under umask 022: %r" % modes)


def case_docs_agree(stack):
    with open(DEPLOY_README) as f:
        deploy = spawn_fcgi_lines(f.read())
    with open(os.path.join(h.ROOT, "README.md")) as f:
        readme = spawn_fcgi_lines(f.read(), markdown=True)
    with open(os.path.join(h.ROOT, "man", "tgq-webhook.8")) as f:
        man_text = f.read()
    man = spawn_fcgi_lines(man_text)
    check(len(deploy) == 1, "deploy/README.md: %r" % deploy)
    check(readme == deploy, "README.md %r, deploy/README.md %r" % (readme, deploy))
    check(man and all(m.replace(" -F 2", "") == deploy[0] for m in man), "tgq-webhook(8) %r, deploy/README.md %r" %
          (man, deploy))
    # The man page's nginx example: the shipped upstream, kept-alive connections.
    with open(h.NGINX_UPSTREAM) as f:
        upstream = [line.strip() for line in f if line.strip() and
                    not line.strip().startswith("#")]
    for line in upstream:
        check(line in man_text, "tgq-webhook(8) lacks %r of tgq-upstream.conf" % line)
    check("fastcgi_keep_conn on;" in man_text and "fastcgi_pass tgq_webhook;" in
          man_text, "tgq-webhook(8)'s location does not use the upstream")


def groups(ctx):
    out = []
    for name, fn in (("systemd", case_systemd), ("no_systemd", case_no_systemd)):
        out.append(("install-docs/" + name, lambda: Stack(ctx), [("run", fn)]))
    out.append(("install-docs/docs_agree", lambda: h.TempStack(ctx, "tgq-docs-"),
                [("run", case_docs_agree)]))
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["inner"]:
    inner(sys.argv[2:])
