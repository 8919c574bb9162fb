"""Bring your own bot, pull: real polling bots, unchanged but for their API root,
against tgq-drain's local Bot API (handler = pull, listen = 127.0.0.1:PORT).
Updates come in through real nginx and tgq-webhook; the bots' calls go through
tgq's sender to the fake Bot API (tests/fake_botapi.py, Telegram's rate limits on).

Group byob-pull (one drain for every case, a bot started per case):
  ptb_echo_once_in_order      python-telegram-bot 13 (Updater(base_url=...),
                              start_polling): every text one reply, per-chat order,
                              no 429 at the fake, deleteWebhook and getUpdates never
                              reach it
  grammy_echo_once_in_order   the same with grammY (client.apiRoot, bot.start())
  telegraf_echo_once_in_order the same with telegraf (telegram.apiRoot, launch(),
                              which calls deleteWebhook first)
  grammy_killed_restarted_500 the bot SIGKILLed and restarted during a stream of 500
                              updates: every one answered, twice only in the batch
                              that was in flight
  grammy_upload_download      a 5 MB sendDocument arrives byte-exact at the fake, a
                              file download passes through, the bot gets the fake's
                              own answers (file_id)
  ptb_upload_download         the same with python-telegram-bot (base_file_url)
  two_pollers_409             a second getUpdates ends the parked one with 409: the
                              grammY bot stops with Telegram's Conflict
  wrong_token_401             an unknown token gets the Bot API's 401, from tgq, and
                              grammY gives up on it; nothing reaches the fake
  refused_call_400            a call Telegram refuses (no chat_id) comes back to each
                              bot as Telegram's own 400
  token_not_logged            the drain's log holds no token
"""

import json
import os
import threading
import time
import urllib.error
import urllib.request

import byob
import harness as h
from byob import Bot, TOKEN, WRONG_TOKEN, check, wait_until

Skip = h.Skip


class PullStack(byob.Stack):
    def start(self):
        super().start()
        self.listen_port = h.free_port()
        self.api_root = "http://127.0.0.1:%d" % self.listen_port
        self.drain_proc = self.drain(TGQ_HANDLER="pull",
                                     TGQ_LISTEN="127.0.0.1:%d" % self.listen_port)
        h.wait_port(self.listen_port, proc=self.drain_proc.proc)
        return self

    def local(self, method, params=None, token=TOKEN, timeout=20):
        """One call to tgq's local Bot API: (HTTP status, parsed answer)."""
        req = urllib.request.Request(
            "%s/bot%s/%s" % (self.api_root, token, method),
            data=json.dumps(params or {}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def finish(self, bot, uids):
        """The bot confirmed every update (done), then it stops."""
        self.wait_all_done(uids, 30)
        bot.stop()


def never_at_fake(stack, methods=("deleteWebhook", "setWebhook", "getUpdates",
                                  "getWebhookInfo", "logOut", "close")):
    seen = {m: stack.api.count(m) for m in methods}
    check(not any(seen.values()), "these reached the fake Bot API: %r" %
          {m: n for m, n in seen.items() if n})


def echo_case(script, name):
    def run(stack):
        if script.startswith("telegraf"):
            byob.need_telegraf()
        else:
            (byob.need_grammy if script.endswith(".js") else byob.need_ptb)()
        bot = Bot(stack, script, [stack.api_root], name)
        bot.wait_started()
        posted = stack.post_texts(stack.chats(10), 5, name)
        stack.wait_replies([t for _, _, t in posted], 90)
        time.sleep(1.0)     # a second reply, if one were coming
        stack.check_once_in_order(posted)
        check(stack.api.count_429() == 0, "the fake's limits answered %d 429s" %
              stack.api.count_429())
        never_at_fake(stack)
        stack.finish(bot, [u for u, _, _ in posted])
    return run


def case_grammy_kill_restart(stack):
    byob.need_grammy()
    chats = stack.chats(50)
    posted = []
    errors = []

    def post_all():
        try:
            posted.extend(stack.post_texts(chats, 10, "kill"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    bot = Bot(stack, "grammy_poll.js", [stack.api_root], "grammy_kill1")
    bot.wait_started()
    poster = threading.Thread(target=post_all, daemon=True)
    poster.start()
    texts = ["kill %d %d" % (c, i) for i in range(10) for c in chats]
    stack.wait_replied(texts, 100, 60)
    bot.kill()
    before = stack.count_replied(texts)
    bot2 = Bot(stack, "grammy_poll.js", [stack.api_root], "grammy_kill2")
    poster.join(120)
    check(not errors and len(posted) == 500, "posting: %r" % errors[:1])
    stack.wait_replies(texts, 120)
    time.sleep(1.0)
    got = stack.replies(texts)
    twice = [t for t, cs in got.items() if len(cs) > 1]
    # What the killed bot had been served but not confirmed comes again: at most
    # one batch of getUpdates (100).
    check(len(twice) <= 100, "%d texts answered twice, more than one batch" %
          len(twice))
    for c in chats:
        mine = [t for _, ch, t in posted if ch == c]
        arrived = sorted(mine, key=lambda t: got[t][0]["seq"])
        check(arrived == mine, "chat %d out of order across the kill: %r" % (c, arrived))
    check(stack.api.count_429() == 0, "the fake's limits answered %d 429s" %
          stack.api.count_429())
    never_at_fake(stack)
    stack.notes.append("kill: %d of 500 answered before the SIGKILL, %d answered twice"
                       % (before, len(twice)))
    stack.finish(bot2, [u for u, _, _ in posted])


def upload_download_case(script, name):
    def run(stack):
        (byob.need_grammy if script.endswith(".js") else byob.need_ptb)()
        size = 5 * 1024 * 1024
        data = os.urandom(3 * 1024 * 1024 + 17)
        f = stack.api.add_file(data, name="in.bin")
        bot = Bot(stack, script, [stack.api_root], name)
        bot.wait_started()
        (chat,) = stack.chats(1)
        uids = stack.uids(2)
        stack.post(uids[0], chat, "upload %d" % size)
        stack.post(uids[1], chat, "download %s" % f["file_id"])
        up = bot.wait_report("upload", 90)
        down = bot.wait_report("download", 90)
        check(not bot.reports("upload_error") and not bot.reports("download_error"),
              "the bot reported errors: %r" % (bot.reports("upload_error") +
                                              bot.reports("download_error")))
        want = byob.pattern(size)
        check(up["sha256"] == byob.sha256(want), "the bot uploaded other bytes")
        got = stack.api.file_bytes(up["file_id"])
        check(got is not None, "the file_id the bot got (%r) is not the fake's: %r" %
              (up["file_id"], [(x["file_id"], x["size"]) for x in stack.api.files()]))
        check(len(got) == size and got == want,
              "the fake stored %d bytes, not the 5 MB the bot sent byte for byte" %
              len(got))
        ups = [x for x in stack.api.files() if x["chat_id"] == chat]
        check(len(ups) == 1 and ups[0]["method"] == "senddocument",
              "uploads at the fake from this chat: %r" % ups)
        check((down["size"], down["sha256"]) == (len(data), byob.sha256(data)),
              "the download: %d bytes %s, expected %d" % (down["size"], down["sha256"],
                                                          len(data)))
        check(down.get("file_size") == len(data), "getFile's file_size: %r" % down)
        check(stack.api.count("file") >= 1, "the download did not come from the fake")
        check(stack.api.count_429() == 0, "429s at the fake")
        stack.finish(bot, uids)
    return run


def case_two_pollers(stack):
    byob.need_grammy()
    bot = Bot(stack, "grammy_poll.js", [stack.api_root], "grammy_409")
    bot.wait_started()
    posted = stack.post_texts(stack.chats(1), 1, "first")
    stack.wait_replies([posted[0][2]], 30)
    stack.wait_all_done([posted[0][0]], 30)
    # grammY is parked in a long poll now (timeout 10 s); a second poller:
    time.sleep(0.5)
    st, obj = stack.local("getUpdates", {"timeout": 1})
    check(st == 200 and obj.get("ok") is True, "the second getUpdates: %d %r" %
          (st, obj))
    err = bot.wait_report("poll_error", 20)
    check(err.get("error_code") == 409 and err.get("description", "").startswith(
        "Conflict: terminated by other getUpdates request"),
        "the first poller got %r" % err)
    wait_until(lambda: bot.proc.poll() is not None, 20, "grammY's exit")
    check(bot.proc.returncode == 3, "grammY exited %d" % bot.proc.returncode)
    never_at_fake(stack)


def case_wrong_token(stack):
    byob.need_grammy()
    before = len(stack.api.calls())
    for method in ("getMe", "getUpdates", "sendMessage"):
        st, obj = stack.local(method, {"chat_id": 1, "text": "x"}, token=WRONG_TOKEN)
        check((st, obj) == (401, {"ok": False, "error_code": 401,
                                  "description": "Unauthorized"}),
              "%s with a wrong token: %d %r" % (method, st, obj))
    bot = Bot(stack, "grammy_poll.js", [stack.api_root], "grammy_401",
              token=WRONG_TOKEN)
    err = bot.wait_report("poll_error", 30)
    check(err.get("error_code") == 401, "grammY with a wrong token got %r" % err)
    wait_until(lambda: bot.proc.poll() is not None, 20, "grammY's exit")
    check(len(stack.api.calls()) == before, "a call with a wrong token reached the "
          "fake: %r" % stack.api.calls()[before:][:2])


def case_refused(stack):
    byob.need_grammy()
    byob.need_ptb()
    for script, name, want in (
            ("grammy_poll.js", "grammy_400",
             lambda r: r.get("error_code") == 400 and
             r.get("description") == "Bad Request: chat_id is empty"),
            # python-telegram-bot 13 turns Telegram's "Bad Request: chat_id is
            # empty" into BadRequest("Chat_id is empty")
            ("ptb_poll.py", "ptb_400",
             lambda r: r.get("error_type") == "BadRequest" and
             r.get("message") == "Chat_id is empty")):
        bot = Bot(stack, script, [stack.api_root], name)
        bot.wait_started()
        n0 = len([c for c in stack.api.calls("sendMessage") if c["status"] == 400])
        (chat,) = stack.chats(1)
        (uid,) = stack.uids(1)
        stack.post(uid, chat, "nochat")
        r = bot.wait_report("error", 30)
        check(want(r), "%s got %r, not Telegram's 400" % (name, r))
        refused = [c for c in stack.api.calls("sendMessage") if c["status"] == 400]
        check(len(refused) == n0 + 1 and "chat_id" not in refused[-1]["params"],
              "the fake did not answer the call itself: %r" % refused[n0:])
        stack.finish(bot, [uid])


def case_token_not_logged(stack):
    h.check_not_logged(stack.drain_logs(), [TOKEN, TOKEN.split(":")[1],
                                            WRONG_TOKEN.split(":")[1], stack.secret],
                       "the drain's log")


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.build, "tgq-drain")):
        return []
    return [("byob-pull", lambda: PullStack(ctx, "pull"), [
        ("ptb_echo_once_in_order", echo_case("ptb_poll.py", "ptb")),
        ("grammy_echo_once_in_order", echo_case("grammy_poll.js", "grammy")),
        ("telegraf_echo_once_in_order", echo_case("telegraf_poll.js", "telegraf")),
        ("grammy_killed_restarted_500", case_grammy_kill_restart),
        ("grammy_upload_download", upload_download_case("grammy_poll.js",
                                                        "grammy_files")),
        ("ptb_upload_download", upload_download_case("ptb_poll.py", "ptb_files")),
        ("two_pollers_409", case_two_pollers),
        ("wrong_token_401", case_wrong_token),
        ("refused_call_400", case_refused),
        ("token_not_logged", case_token_not_logged),
    ])]
