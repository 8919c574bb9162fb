#!/usr/bin/python3
"""tgq demo (`make demo`): the whole pipeline on loopback.

Starts nginx on a free 127.0.0.1 port with the shipped snippet
(deploy/nginx/tgq.conf), tgq-webhook under spawn-fcgi, a fake Bot API
(tests/fake_botapi.py, standing in for api.telegram.org) and tgq-drain --follow
with the built-in echo handler, all in a temp folder.  Sends updates from several
chats with curl as Telegram would, then shows the replies the fake Bot API
received, in order, and the queue with sqlite3.  Everything it started is stopped
at the end, also on Ctrl-C or an error.

  --build DIR   where tgq-webhook and tgq-drain are (default: build)
  --keep        keep the temp folder with the queue file
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from fake_botapi import FakeBotAPI  # noqa: E402

# A made-up token for the fake Bot API: it never leaves this machine.
DEMO_TOKEN = "123456789:DEMOdemoDEMOdemoDEMOdemoDEMOdemo00"

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def update(uid, chat_id, first_name, text):
    return {"update_id": uid, "message": {
        "message_id": uid - 800000000, "date": 1718000000 + uid % 1000,
        "from": {"id": chat_id, "is_bot": False, "first_name": first_name,
                 "language_code": "en"},
        "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
        "text": text}}


def callback(uid, chat_id):
    return {"update_id": uid, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "chat_instance": "-5469113711",
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ada"},
        "message": {"message_id": 11, "date": 1718000100,
                    "chat": {"id": chat_id, "first_name": "Ada", "type": "private"},
                    "text": "Shall I remind you tomorrow?"},
        "data": "remind:yes"}}


def title(text):
    print("\n== %s" % text, flush=True)


def main():
    ap = argparse.ArgumentParser(description="tgq demo")
    ap.add_argument("--build", default="build")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    for prog in ("tgq-webhook", "tgq-drain"):
        if not os.access(os.path.join(build, prog), os.X_OK):
            sys.exit("demo: %s/%s is missing; run `make` first" % (build, prog))
    for prog in ("nginx", "spawn-fcgi", "curl", "sqlite3"):
        if not shutil.which(prog, path=h.SEARCH_PATH):
            sys.exit("demo: %s is not installed (deploy/deps.sh demo)" % prog)

    h.become_subreaper()
    secret = h.new_secret()
    tmpdir = h.make_tmpdir("tgq-demo-")
    db = os.path.join(tmpdir, "queue.db")
    bindir = h.stage_binaries(build)
    binary = os.path.join(bindir, "tgq-webhook")
    webhook = nginx = drain = api = None
    # Secrets go in files, never on a command line.
    header_file = os.path.join(tmpdir, "secret-header")
    with open(header_file, "w") as f:
        f.write("%s: %s\n" % (SECRET_HEADER, secret))
    wrong_header_file = os.path.join(tmpdir, "wrong-secret-header")
    with open(wrong_header_file, "w") as f:
        f.write("%s: wrong-secret\n" % SECRET_HEADER)
    token_file = os.path.join(tmpdir, "bot-token")
    with open(token_file, "w") as f:
        f.write(DEMO_TOKEN + "\n")
    for path in (header_file, wrong_header_file, token_file):
        os.chmod(path, 0o600)
    h.chown_run_user(token_file)
    try:
        title("Starting tgq-webhook (2 processes, spawn-fcgi), nginx, a fake Bot API "
              "and tgq-drain in %s" % tmpdir)
        api = FakeBotAPI(tokens={DEMO_TOKEN: "default"}).start()
        drain_log = open(os.path.join(tmpdir, "drain.log"), "ab")
        kw = {}
        if h.IS_ROOT:
            uid, gid = h.run_ids()
            kw = {"user": uid, "group": gid, "extra_groups": []}
        drain = subprocess.Popen(
            [os.path.join(bindir, "tgq-drain"), "--follow"], stdin=subprocess.DEVNULL,
            stdout=drain_log, stderr=drain_log, cwd=tmpdir, env=h.base_env({
                "TGQ_DATABASE": db, "TGQ_BOT_TOKEN_FILE": token_file,
                "TGQ_API_URL": api.url, "TGQ_HANDLER": "echo"}), **kw)
        print("The fake Bot API listens on %s; tgq-drain --follow (echo handler) "
              "sends there." % api.url)
        webhook = h.Webhook(binary, tmpdir, {"TGQ_DATABASE": db,
                                             "TGQ_WEBHOOK_SECRET": secret,
                                             "TGQ_LOG_LEVEL": "info"}, procs=2)
        webhook.start()
        nginx = h.Nginx(tmpdir, webhook.socket).start()
        url = "http://127.0.0.1:%d/telegram/webhook" % nginx.port
        print("nginx listens on 127.0.0.1:%d and includes deploy/nginx/tgq.conf" %
              nginx.port)
        print("The webhook URL is %s; the secret is generated and shown as $SECRET."
              % url)

        good, wrong = header_file, wrong_header_file
        posts = [
            ("A text message from Ada", update(800000001, 1001, "Ada", "Hello, tgq!"),
             good),
            ("A message with emoji from Linus, another chat",
             update(800000002, 2002, "Linus", "Grüße aus Helsinki 🇫🇮 👋"), good),
            ("Ada again", update(800000003, 1001, "Ada", "How are you?"), good),
            ("A button press (callback_query): echo has nothing to say",
             callback(800000004, 1001), good),
            ("Telegram retries the first update: a duplicate", update(
                800000001, 1001, "Ada", "Hello, tgq!"), good),
            ("Grace, a third chat", update(800000005, 3003, "Grace", "Bonjour"), good),
            ("Ada, third message", update(800000006, 1001, "Ada", "Bye!"), good),
            ("A request with the wrong secret", update(800000007, 6666, "Mallory",
                                                       "let me in"), wrong),
            ("A malformed body (no update_id)", {"message": {"text": "oops"}}, good),
        ]
        title("Sending updates as Telegram would")
        print("(the secret header is read from a file: curl -H @FILE)")
        for what, body, hfile in posts:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "HTTP %{http_code}\\n",
                   "--max-time", "10", "-H", "Content-Type: application/json",
                   "-H", "@" + hfile, "--data-binary", data, url]
            shown = " ".join(shlex.quote(c) for c in cmd).replace(tmpdir, "$TMP")
            print("\n# %s" % what)
            print("$ " + shown, flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            print((r.stdout + r.stderr).strip().replace(secret, "$SECRET"), flush=True)

        title("What the Bot API received (the replies tgq-drain sent)")
        deadline = time.monotonic() + 15
        while len(api.calls("sendMessage")) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in api.calls():
            print("%-12s chat %-5s %s" % (c["method"], c["params"].get("chat_id"),
                                         json.dumps(c["params"].get("text"),
                                                    ensure_ascii=False)))
        print("Each chat's replies left in the order its messages came, Ada's one "
              "second apart (Telegram allows one message a second per chat).")

        title("The health check")
        hurl = "http://127.0.0.1:%d/telegram/health" % nginx.port
        print("$ curl -sS %s" % hurl, flush=True)
        r = subprocess.run(["curl", "-sS", "--max-time", "10", hurl],
                           capture_output=True, text=True, timeout=20)
        print((r.stdout + r.stderr).strip())

        title("The queue")
        for sql in ("SELECT id, update_id, kind, chat_id, state, "
                    "json_extract(body,'$.message.text') AS text FROM updates "
                    "ORDER BY id",
                    "SELECT id, update_id, chat_id, method, state, attempts, "
                    "datetime(sent_at,'unixepoch') AS sent FROM outbox ORDER BY id",
                    "SELECT * FROM stats"):
            print('\n$ sqlite3 -header -column $TMP/queue.db "%s"' % sql, flush=True)
            r = subprocess.run(["sqlite3", "-readonly", "-header", "-column", db, sql],
                               capture_output=True, text=True, timeout=20)
            print((r.stdout + r.stderr).rstrip())
        print("\nThe duplicate, the wrong secret (401) and the malformed body (400) "
              "added no rows.")

        title("tgq-drain's log, after SIGTERM")
        drain.send_signal(signal.SIGTERM)
        drain.wait(20)
        with open(os.path.join(tmpdir, "drain.log"), errors="replace") as f:
            print(f.read().rstrip())
    except KeyboardInterrupt:
        print("\ninterrupted")
    except h.HarnessError as e:
        print("demo: %s" % str(e).replace(secret, "$SECRET"), file=sys.stderr)
        if webhook:
            print(webhook.log_tail(10).replace(secret, "$SECRET"), file=sys.stderr)
        return 1
    finally:
        if drain and drain.poll() is None:
            drain.kill()
            drain.wait(10)
        if nginx:
            nginx.stop()
        if webhook:
            webhook.stop()
        if api:
            api.stop()
        shutil.rmtree(bindir, ignore_errors=True)
        if args.keep:
            print("\nThe queue file is %s (kept; remove %s when done)." % (db, tmpdir))
        else:
            print("\nThe queue file was %s (deleted with its folder; --keep keeps it)."
                  % db)
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
