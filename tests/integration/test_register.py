"""Registration from the configuration: a bot's allowed_updates, max_connections
and ip_address reach setWebhook (the command line's flags over them) and
getUpdates; `tgq set-webhook --if-changed` registers only when something differs
from getWebhookInfo or the secret changed since the last registration (which tgq
records as a keyed fingerprint, never the secret), so it is safe at every start;
`tgq doctor` names each difference and the fix; and switching between polling
and the webhook is one command each way.  Against the fake Bot API on 127.0.0.1."""

import json
import os

import harness as h
from test_cli import Stack, TOKEN, URL, poll_until

check = h.check
Skip = h.Skip

OTHER_URL = "https://bot.example.org:8443/telegram/webhook"


def set_calls(stack):
    return stack.calls("setWebhook")


def registered(stack, *args, **env):
    """Runs set-webhook --if-changed; returns (output, whether it called
    setWebhook)."""
    before = len(set_calls(stack))
    r = stack.run("set-webhook", "--if-changed", *args, **env)
    check(r.returncode == 0, "--if-changed: exit %d: %s%s" % (
        r.returncode, r.stdout, r.stderr))
    return r.stdout, len(set_calls(stack)) > before


def rewrite_secret(stack, secret):
    with open(stack.secret_file, "w") as f:
        f.write(secret + "\n")
    stack.secrets.append(secret)


def stack_secrets(stack):
    if not hasattr(stack, "secrets"):
        stack.secrets = []
    return stack.secrets


# ------------------------------------------------------------------ the keys

def case_keys_reach_set_webhook(stack):
    """The configuration's keys are sent; the command line's flags win."""
    conf = stack.write("tgq.conf", "[bot default]\nallowed_updates = message, "
                       "callback_query\nmax_connections = 7\nip_address = "
                       "192.0.2.7\n", 0o644)
    r = stack.run("set-webhook", TGQ_CONFIG=conf)
    check(r.returncode == 0, "set-webhook: %s" % r.stderr)
    params = set_calls(stack)[-1]["params"]
    check(params == {"url": URL, "secret_token": stack.secret,
                     "allowed_updates": ["message", "callback_query"],
                     "max_connections": 7, "ip_address": "192.0.2.7"},
          "from the file: %r" % stack.redact(params))
    # The environment over the file, the flags over both.
    r = stack.run("set-webhook", "--max-connections", "3", "--allowed-updates",
                  "poll", TGQ_CONFIG=conf, TGQ_IP_ADDRESS="2001:db8::1")
    check(r.returncode == 0, "set-webhook with flags: %s" % r.stderr)
    params = set_calls(stack)[-1]["params"]
    check(params["allowed_updates"] == ["poll"] and params["max_connections"] == 3
          and params["ip_address"] == "2001:db8::1", "flags: %r" %
          stack.redact(params))
    info = stack.api.webhook()
    check(info["allowed_updates"] == ["poll"] and info["max_connections"] == 3,
          "Telegram has %r" % stack.redact(info))
    # Checked before Telegram is called, naming the key, never the value.
    before = len(stack.calls())
    for env, want in ((dict(TGQ_ALLOWED_UPDATES="message,mesage"),
                       "allowed_updates: entry 2 is not an update type"),
                      (dict(TGQ_MAX_CONNECTIONS="101"),
                       "max_connections: too large (1 to 100)"),
                      (dict(TGQ_IP_ADDRESS="192.0.2"),
                       "ip_address: must be an IPv4 or IPv6 address")):
        r = stack.run("set-webhook", **env)
        check(r.returncode == 1 and want in r.stderr, "%r: exit %d: %s" % (
            env, r.returncode, r.stderr))
    check(len(stack.calls()) == before, "Telegram was called with a bad key")


def case_allowed_updates_reach_get_updates(stack):
    """tgq poll asks getUpdates for the bot's allowed_updates, and for none when
    the key is not set."""
    stack.api.add_updates([{"message": {"message_id": 1, "chat": {
        "id": 11, "type": "private"}, "text": "one"}}])
    rc, out, err, _ = poll_until(stack, 1, TGQ_ALLOWED_UPDATES="message "
                                 "edited_message")
    check(rc == 0, "poll: exit %d: %s" % (rc, err))
    calls = stack.calls("getUpdates")
    check(calls and all(c["params"].get("allowed_updates") ==
                        ["message", "edited_message"] for c in calls),
          "getUpdates params: %r" % [c["params"] for c in calls])
    stack.api.add_updates([{"message": {"message_id": 2, "chat": {
        "id": 11, "type": "private"}, "text": "two"}}])
    rc, out, err, _ = poll_until(stack, 2)
    check(rc == 0, "second poll: exit %d: %s" % (rc, err))
    # The second poll's calls: after its deleteWebhook (by arrival: the first
    # poll's last long poll may end later).
    started = stack.calls("deleteWebhook")[-1]["t"]
    later = [c for c in stack.calls("getUpdates") if c["t"] > started]
    check(later and all("allowed_updates" not in c["params"] for c in later),
          "without the key: %r" % [c["params"] for c in later])


# ------------------------------------------------------------------ --if-changed

def case_if_changed(stack):
    """Registers the first time, then nothing until the URL, a key or the secret
    changes; order and spelling that mean the same are no change."""
    secrets = stack_secrets(stack)
    stack.make_queue()
    env = dict(TGQ_ALLOWED_UPDATES="message, callback_query",
               TGQ_IP_ADDRESS="2001:db8::1")
    out, did = registered(stack, **env)
    check(did and out.startswith("registered: url changed, no record of the secret "
                                 "registered: %s (Telegram: Webhook was set)" % URL),
          "first run: %s" % out)
    out, did = registered(stack, **env)
    check(not did and out == "unchanged: %s (Telegram has the configured settings "
          "and secret)\n" % URL, "second run: %r" % out)
    # The same list in another order, the same address written longer.
    out, did = registered(stack, TGQ_ALLOWED_UPDATES="callback_query message",
                          TGQ_IP_ADDRESS="2001:0db8:0::1")
    check(not did and out.startswith("unchanged"), "same meaning: %s" % out)
    # A key not set is not compared: Telegram keeps what it has.
    out, did = registered(stack)
    check(not did, "keys not set: %s" % out)

    out, did = registered(stack, TGQ_WEBHOOK_URL=OTHER_URL, **env)
    check(did and out.startswith("registered: url changed: %s" % OTHER_URL) and
          stack.api.webhook()["url"] == OTHER_URL, "url: %s" % out)
    out, did = registered(stack, TGQ_WEBHOOK_URL=OTHER_URL, **env)
    check(not did, "url, again: %s" % out)

    out, did = registered(stack, TGQ_MAX_CONNECTIONS="5", TGQ_WEBHOOK_URL=OTHER_URL,
                          **env)
    check(did and out.startswith("registered: max_connections changed:") and
          set_calls(stack)[-1]["params"]["max_connections"] == 5,
          "max_connections: %s" % out)
    out, did = registered(stack, TGQ_ALLOWED_UPDATES="message",
                          TGQ_WEBHOOK_URL=OTHER_URL)
    check(did and out.startswith("registered: allowed_updates changed:"),
          "allowed_updates: %s" % out)
    out, did = registered(stack, TGQ_IP_ADDRESS="192.0.2.9", TGQ_WEBHOOK_URL=OTHER_URL)
    check(did and out.startswith("registered: ip_address changed:"),
          "ip_address: %s" % out)

    # The secret file: rewritten with the same secret, nothing; a new one, again.
    rewrite_secret(stack, stack.secret)
    out, did = registered(stack, TGQ_WEBHOOK_URL=OTHER_URL)
    check(not did, "the same secret written again: %s" % out)
    new = h.new_secret()
    rewrite_secret(stack, new)
    out, did = registered(stack, TGQ_WEBHOOK_URL=OTHER_URL)
    check(did and out.startswith("registered: secret changed: %s" % OTHER_URL) and
          stack.api.webhook()["secret_token"] == new, "secret: %s" %
          out.replace(new, "$NEW"))
    out, did = registered(stack, TGQ_WEBHOOK_URL=OTHER_URL)
    check(not did, "secret, again: %s" % out)

    # What is recorded: the fingerprint, never the secret.
    q = h.Queue(stack.db)
    rows = q.query("SELECT bot, url, secret_fingerprint FROM registrations")
    check(len(rows) == 1 and rows[0][:2] == ("default", OTHER_URL) and
          len(rows[0][2]) == 64, "registrations: %r" % (rows,))
    with open(stack.db, "rb") as f:
        data = f.read()
    for path in (stack.db + "-wal",):
        if os.path.exists(path):
            with open(path, "rb") as f:
                data += f.read()
    for s in [stack.secret, new]:
        check(s.encode() not in data, "a secret is in the queue's files")
    for s in secrets:
        check(all(s not in o for o in stack.outputs), "a secret was printed")


def case_if_changed_json_and_errors(stack):
    """--json says whether it registered and why; a failed getWebhookInfo is exit
    1 with no registration."""
    stack.make_queue()
    r = stack.run("--json", "set-webhook", "--if-changed")
    out = json.loads(r.stdout)
    check(r.returncode == 0 and out["ok"] is True and out["changed"] is True and
          out["reasons"] == ["url", "secret"] and out["url"] == URL,
          "first: %s" % r.stdout)
    r = stack.run("--json", "set-webhook", "--if-changed")
    out = json.loads(r.stdout)
    check(r.returncode == 0 and out == {"ok": True, "changed": False, "url": URL},
          "second: %s" % r.stdout)
    before = len(set_calls(stack))
    stack.api.script([{"status": 502}], method="getWebhookInfo")
    r = stack.run("set-webhook", "--if-changed", TGQ_WEBHOOK_URL=OTHER_URL)
    check(r.returncode == 1 and "getWebhookInfo" in r.stderr, "502: exit %d: %s" %
          (r.returncode, r.stderr))
    check(len(set_calls(stack)) == before, "registered without knowing")
    # A webhook someone deleted is registered again.
    stack.run("delete-webhook")
    _out, did = registered(stack)
    check(did and stack.api.webhook()["url"] == URL, "after delete-webhook")


def case_if_changed_without_queue(stack):
    """No queue yet: tgq-register.service's user creates it and records there;
    root leaves it alone (the file would be root's), says so, and registers."""
    if h.IS_ROOT:
        r = stack.run("set-webhook", "--if-changed")
        check(r.returncode == 0 and "not recorded: %s does not exist yet" % stack.db
              in r.stderr and not os.path.exists(stack.db), "root: %s" % r.stderr)
        check(r.stdout.startswith("registered:"), "root: %s" % r.stdout)
        user = h.run_ids()
    else:
        user = None
    os.chmod(stack.tmpdir, 0o755)
    h.chown_run_user(stack.tmpdir)
    r = stack.run("set-webhook", "--if-changed", user=user)
    check(r.returncode == 0 and os.path.exists(stack.db) and "not recorded" not in
          r.stderr, "service user: exit %d: %s" % (r.returncode, r.stderr))
    before = len(set_calls(stack))
    r = stack.run("set-webhook", "--if-changed", user=user)
    check(r.stdout.startswith("unchanged") and len(set_calls(stack)) == before,
          "service user, again: %s %s" % (r.stdout, r.stderr))


def case_root_leaves_queue_files_to_owner(stack):
    """set-webhook run as root (as the docs say, to read the secrets) writes the
    record into the service's queue: the files it creates there (-wal, -shm,
    the -lock) go to the queue's owner, or tgq-webhook could not use them."""
    if not h.IS_ROOT:
        raise Skip("needs root")
    uid, gid = h.run_ids()
    os.chmod(stack.tmpdir, 0o755)
    h.chown_run_user(stack.tmpdir)
    r = stack.run("set-webhook", user=(uid, gid))
    check(r.returncode == 0 and os.stat(stack.db).st_uid == uid,
          "as the service user: %s" % r.stderr)
    for suffix in ("-wal", "-shm", "-lock"):
        if os.path.exists(stack.db + suffix):
            os.unlink(stack.db + suffix)
    r = stack.run("set-webhook", "--if-changed", TGQ_WEBHOOK_URL=OTHER_URL)
    check(r.returncode == 0 and "not recorded" not in r.stderr, "as root: %s" %
          r.stderr)
    owners = {s: (os.stat(stack.db + s).st_uid, os.stat(stack.db + s).st_gid)
              for s in ("", "-lock") if os.path.exists(stack.db + s)}
    check(owners == {"": (uid, gid), "-lock": (uid, gid)},
          "owners after root's set-webhook: %r" % owners)


# ------------------------------------------------------------------ doctor

def doctor(stack, **env):
    user = h.run_ids() if h.IS_ROOT else None
    return stack.run("doctor", user=user, **env)


def case_doctor_reports_differences(stack):
    """doctor names what Telegram has and the configuration says, with the fix;
    after --if-changed it is green."""
    stack.make_queue()
    r = stack.run("set-webhook", "--max-connections", "7", "--allowed-updates",
                  "message", TGQ_IP_ADDRESS="192.0.2.7")
    check(r.returncode == 0, "set-webhook: %s" % r.stderr)
    env = dict(TGQ_MAX_CONNECTIONS="9", TGQ_ALLOWED_UPDATES="message,poll",
               TGQ_IP_ADDRESS="192.0.2.8")
    r = doctor(stack, **env)
    for line in ("error    registration   Telegram has max_connections 7, the "
                 "configuration says 9",
                 "error    registration   Telegram has allowed_updates message, the "
                 "configuration says message, poll",
                 "error    registration   Telegram has ip_address 192.0.2.7, the "
                 "configuration says 192.0.2.8",
                 "fix: tgq set-webhook --if-changed"):
        check(line in r.stdout, "doctor lacks %r:\n%s" % (line, r.stdout))
    check(r.returncode == 1, "doctor exit %d" % r.returncode)
    # The secret file changed since the registration.
    new = h.new_secret()
    with open(stack.secret_file, "w") as f:
        f.write(new + "\n")
    r = doctor(stack, **env)
    check("error    registration   the secret changed after it was registered" in
          r.stdout and new not in r.stdout, "secret:\n%s" % r.stdout.replace(
              new, "$NEW"))
    out, did = registered(stack, **env)
    check(did, "--if-changed: %s" % out)
    r = doctor(stack, **env)
    check(r.returncode == 0 and "errors: 0, warnings: 0" in r.stdout and
          "ok       registration   the secret registered" in r.stdout,
          "after --if-changed:\n%s" % r.stdout)
    # No record (registered by an older tgq, or by hand): a warning.
    h.Queue(stack.db).execute("DELETE FROM registrations")
    r = doctor(stack, **env)
    check("warning  registration   no record of the secret registered" in r.stdout,
          "no record:\n%s" % r.stdout)


# ------------------------------------------------------------------ switching

def case_switch_poll_and_webhook(stack):
    """Development: `tgq poll` takes the webhook away and polls; back to the
    webhook: `tgq set-webhook --if-changed` (what tgq-register.service runs)."""
    stack.make_queue()
    _out, did = registered(stack)
    check(did, "first registration")
    stack.api.add_updates([{"message": {"message_id": 1, "chat": {
        "id": 11, "type": "private"}, "text": "one"}}])
    rc, out, err, _ = poll_until(stack, 3)
    check(rc == 0 and not (stack.api.webhook() or {}).get("url"),
          "poll: exit %d: %s" % (rc, err))
    out, did = registered(stack)
    check(did and out.startswith("registered: url changed: %s" % URL) and
          stack.api.webhook()["url"] == URL and
          stack.api.webhook()["secret_token"] == stack.secret, "back: %s" % out)


CASES = [("keys_reach_set_webhook", case_keys_reach_set_webhook),
         ("allowed_updates_reach_get_updates", case_allowed_updates_reach_get_updates),
         ("if_changed", case_if_changed),
         ("if_changed_json_and_errors", case_if_changed_json_and_errors),
         ("if_changed_without_queue", case_if_changed_without_queue),
         ("root_leaves_queue_files_to_owner", case_root_leaves_queue_files_to_owner),
         ("doctor_reports_differences", case_doctor_reports_differences),
         ("switch_poll_and_webhook", case_switch_poll_and_webhook)]


def no_secret_printed(stack):
    secrets = [stack.secret] + getattr(stack, "secrets", [])
    for text in stack.outputs:
        for s in secrets + [TOKEN.split(":")[1]]:
            check(s not in text, "a secret was printed: %s" % stack.redact(text)[:300])


def groups(ctx):
    return h.stack_per_case(ctx, "register/", CASES, lambda: Stack(ctx), no_secret_printed)
