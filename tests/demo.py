#!/usr/bin/python3
"""tgq demo (`make demo`): the webhook behind a real nginx on loopback.

Starts nginx on a free 127.0.0.1 port with the shipped snippet
(deploy/nginx/tgq.conf) and tgq-webhook under spawn-fcgi in a temp folder, sends
a few updates with curl as Telegram would, and shows the queue with sqlite3.
Everything it started is stopped at the end, also on Ctrl-C or an error.

  --build DIR   where tgq-webhook is (default: build)
  --keep        keep the temp folder with the queue file
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

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
    binary = os.path.abspath(os.path.join(args.build, "tgq-webhook"))
    if not os.access(binary, os.X_OK):
        sys.exit("demo: %s is missing; run `make` first" % binary)
    for prog in ("nginx", "spawn-fcgi", "curl", "sqlite3"):
        if not shutil.which(prog, path=h.SEARCH_PATH):
            sys.exit("demo: %s is not installed (deploy/deps.sh demo)" % prog)

    h.become_subreaper()
    secret = h.new_secret()
    tmpdir = h.make_tmpdir("tgq-demo-")
    db = os.path.join(tmpdir, "queue.db")
    webhook = nginx = None
    try:
        title("Starting tgq-webhook (2 processes, spawn-fcgi) and nginx in %s" % tmpdir)
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

        posts = [
            ("A text message from Ada", update(800000001, 1001, "Ada", "Hello, tgq!"),
             secret),
            ("A message with emoji from Linus, another chat",
             update(800000002, 2002, "Linus", "Grüße aus Helsinki 🇫🇮 👋"), secret),
            ("A button press (callback_query)", callback(800000003, 1001), secret),
            ("Telegram retries the first update: a duplicate", update(
                800000001, 1001, "Ada", "Hello, tgq!"), secret),
            ("A request with the wrong secret", update(800000004, 6666, "Mallory",
                                                       "let me in"), "wrong-secret"),
            ("A malformed body (no update_id)", {"message": {"text": "oops"}}, secret),
        ]
        title("Sending updates as Telegram would")
        for what, body, sec in posts:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "HTTP %{http_code}\\n",
                   "--max-time", "10", "-H", "Content-Type: application/json",
                   "-H", "%s: %s" % (SECRET_HEADER, sec), "--data-binary", data, url]
            shown = " ".join(shlex.quote(c) for c in cmd).replace(secret, "$SECRET")
            print("\n# %s" % what)
            print("$ " + shown, flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            print((r.stdout + r.stderr).strip().replace(secret, "$SECRET"), flush=True)

        title("The health check")
        hurl = "http://127.0.0.1:%d/telegram/health" % nginx.port
        print("$ curl -sS %s" % hurl, flush=True)
        r = subprocess.run(["curl", "-sS", "--max-time", "10", hurl],
                           capture_output=True, text=True, timeout=20)
        print((r.stdout + r.stderr).strip())

        title("The queue (what tgq-drain will work through)")
        sql = ("SELECT id, update_id, kind, chat_id, state, "
               "json_extract(body,'$.message.text') AS text FROM updates ORDER BY id")
        print('$ sqlite3 -header -column %s "%s"' % (db, sql), flush=True)
        r = subprocess.run(["sqlite3", "-header", "-column", db, sql],
                           capture_output=True, text=True, timeout=20)
        print((r.stdout + r.stderr).rstrip())
        print("\nThe duplicate, the wrong secret (401) and the malformed body (400) "
              "added no rows.")
    except KeyboardInterrupt:
        print("\ninterrupted")
    except h.HarnessError as e:
        print("demo: %s" % str(e).replace(secret, "$SECRET"), file=sys.stderr)
        if webhook:
            print(webhook.log_tail(10).replace(secret, "$SECRET"), file=sys.stderr)
        return 1
    finally:
        if nginx:
            nginx.stop()
        if webhook:
            webhook.stop()
        if args.keep:
            print("\nThe queue file is %s (kept; remove %s when done)." % (db, tmpdir))
        else:
            print("\nThe queue file was %s (deleted with its folder; --keep keeps it)."
                  % db)
            shutil.rmtree(tmpdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
