"""Bring your own bot, push: tgq-drain hands each update to a real bot's own
webhook server (handler = http://127.0.0.1:PORT/PATH), as Telegram would.  Updates
come in through real nginx and tgq-webhook; the bots are grammY's webhookCallback
on node's http server (its calls straight to the fake Bot API) and
python-telegram-bot 13's start_webhook (its calls, setWebhook among them, to tgq's
local Bot API).  Each case starts its own drain and bot and stops them.

Group byob-push:
  grammy_echo_once_in_order    every text one reply, per-chat order, each update
                               posted to the bot once, with the webhook secret
  grammy_webhook_reply         the bot answers with a webhook reply: tgq records it
                               in the outbox and sends it
  telegraf_echo_once_in_order  telegraf's webhookCallback, webhookReply off as the
                               README says: every text one reply, in order
  grammy_forward_secret        with forward_secret_file, grammY's own secretToken
                               check passes with that value, not the webhook secret
  grammy_killed_restarted_500  the bot SIGKILLed and restarted during 500 updates:
                               none lost, none dead, none answered twice but the
                               ones in flight at the kill
  grammy_500_only_that_dead    an update the bot answers 500 ends dead; the rest of
                               its chat and the other chats go on
  grammy_slow_retried          a bot slower than handler_timeout: the update is
                               posted again and ends done, not dead
  ptb_webhook_echo             python-telegram-bot 13 in webhook mode, base_url at
                               tgq's local Bot API: its setWebhook never reaches the
                               fake, every text one reply in order
  grammy_stopped_2_minutes     the bot down for 2 minutes: the queue waits, nothing
                               goes dead, everything is answered when it is back
"""

import os
import threading
import time

import byob
import harness as h
from byob import Bot, check, wait_until

Skip = h.Skip
PATH = "/hook"


class PushStack(byob.Stack):
    def __init__(self, ctx):
        # The grammY bot calls the fake straight, without tgq's limits.
        super().__init__(ctx, "push", limits=False)
        self.drain_now = None
        self.bot_now = None

    def start_pair(self, script="grammy_webhook.js", api_root=None, listen=False,
                   bot_env=None, start_bot=True, bot_secret=None, **drain_env):
        """A bot on a free port and a drain whose handler is that bot.  The pair
        of a case that failed half-way is stopped first."""
        if self.drain_now is not None:
            self.drain_now.stop()
        if self.bot_now is not None:
            self.bot_now.stop()
        port = h.free_port()
        self.bot_port = port
        env = dict(TGQ_HANDLER="http://127.0.0.1:%d%s" % (port, PATH), TGQ_HANDLERS=4)
        if listen:
            self.listen_port = h.free_port()
            env["TGQ_LISTEN"] = "127.0.0.1:%d" % self.listen_port
        env.update(drain_env)
        self.bot_args = (script, [port, PATH, api_root or self.api.url],
                         dict(bot_env or {}, WEBHOOK_SECRET=bot_secret or self.secret))
        if start_bot:
            self.start_bot("bot%d" % len(self.bots))
        self.drain_now = self.drain(**env)
        if listen:
            h.wait_port(self.listen_port, proc=self.drain_now.proc)
        return self.bot_now

    def start_bot(self, name):
        script, args, env = self.bot_args
        self.bot_now = Bot(self, script, args, name, **env)
        self.bot_now.wait_started()
        return self.bot_now

    def end_pair(self, uids):
        """Every update of the case left the queue; the drain and the bot stop."""
        def left():
            self.check_drains()
            return sum(self.states(uids).get(s, 0) for s in ("done", "dead")) == \
                len(uids)
        wait_until(left, 60, "the case's updates done or dead")
        rc = self.drain_now.stop()
        check(rc == 0, "tgq-drain exited %r" % rc)
        self.bot_now.stop()


def seen_counts(bot):
    counts = {}
    for r in bot.reports("seen"):
        counts[r["update_id"]] = counts.get(r["update_id"], 0) + 1
    return counts


def echo_each_once(stack, bot, chats, per_chat, prefix):
    """per_chat texts to each of chats: every text one reply, in per-chat order,
    each update posted to the bot once.  The uids posted."""
    posted = stack.post_texts(stack.chats(chats), per_chat, prefix)
    stack.wait_replies([t for _, _, t in posted], 60)
    time.sleep(1.0)
    stack.check_once_in_order(posted)
    uids = [u for u, _, _ in posted]
    seen = seen_counts(bot)
    check(all(seen.get(u) == 1 for u in uids),
          "updates posted to the bot other than once: %r" %
          {u: seen.get(u) for u in uids if seen.get(u) != 1})
    return uids


def case_echo(stack):
    byob.need_grammy()
    bot = stack.start_pair()
    uids = echo_each_once(stack, bot, 10, 5, "push")
    stack.end_pair(uids)
    check(stack.states(uids) == {"done": len(uids)}, "states: %r" % stack.states(uids))


def case_webhook_reply(stack):
    byob.need_grammy()
    stack.start_pair(bot_env={"WEBHOOK_REPLY": "1"})
    posted = stack.post_texts(stack.chats(3), 3, "wreply")
    stack.wait_replies([t for _, _, t in posted], 60)
    time.sleep(1.0)
    stack.check_once_in_order(posted)
    uids = [u for u, _, _ in posted]
    rows = stack.queue.query(
        "SELECT update_id, method, state FROM outbox WHERE update_id BETWEEN ? AND ?",
        (min(uids), max(uids)))
    check(sorted(r[0] for r in rows) == sorted(uids) and
          all(r[1] == "sendMessage" and r[2] == "sent" for r in rows),
          "the webhook replies in tgq's outbox: %r" % rows[:5])
    stack.end_pair(uids)


def case_telegraf_echo(stack):
    """telegraf's webhookCallback as the README's recipe has it (webhookReply
    off): every text one reply, in per-chat order, each update posted once;
    the bot's calls (a "typing" action, then the echo) are its own."""
    byob.need_telegraf()
    bot = stack.start_pair(script="telegraf_webhook.js")
    uids = echo_each_once(stack, bot, 5, 4, "telegraf")
    actions = stack.api.count("sendChatAction")
    check(actions >= len(uids), "the fake got %d sendChatAction for %d updates" %
          (actions, len(uids)))
    stack.end_pair(uids)
    check(stack.states(uids) == {"done": len(uids)}, "states: %r" % stack.states(uids))


def case_forward_secret(stack):
    byob.need_grammy()
    forward = h.new_secret()
    path = os.path.join(stack.tmpdir, "forward-secret")
    with open(path, "w") as f:
        f.write(forward + "\n")
    os.chmod(path, 0o600)
    h.chown_run_user(path)
    bot = stack.start_pair(bot_secret=forward, TGQ_FORWARD_SECRET_FILE=path)
    posted = stack.post_texts(stack.chats(2), 2, "fwd")
    stack.wait_replies([t for _, _, t in posted], 60)
    time.sleep(1.0)
    stack.check_once_in_order(posted)
    uids = [u for u, _, _ in posted]
    stack.end_pair(uids)
    check(stack.states(uids) == {"done": len(uids)}, "states: %r" % stack.states(uids))
    check(all(n == 1 for n in seen_counts(bot).values()),
          "an update was posted again: %r" % seen_counts(bot))
    h.check_not_logged(stack.drain_logs(), [forward, stack.secret], "the drain's log")


def case_kill_restart(stack):
    byob.need_grammy()
    bot = stack.start_pair(TGQ_HANDLER_TIMEOUT=5)
    chats = stack.chats(50)
    texts = ["k5 %d %d" % (c, i) for i in range(10) for c in chats]
    posted, errors = [], []

    def post_all():
        try:
            posted.extend(stack.post_texts(chats, 10, "k5"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    poster = threading.Thread(target=post_all, daemon=True)
    poster.start()
    stack.wait_replied(texts, 100, 60)
    bot.kill()
    before = stack.count_replied(texts)
    time.sleep(1.0)
    bot2 = stack.start_bot("bot_restarted")
    poster.join(120)
    check(not errors and len(posted) == 500, "posting: %r" % errors[:1])
    stack.wait_replies(texts, 120)
    uids = [u for u, _, _ in posted]
    stack.wait_all_done(uids, 60)
    time.sleep(1.0)
    got = stack.replies(texts)
    twice = [t for t, cs in got.items() if len(cs) > 1]
    # At most one update per chat is at the bot at once, at most TGQ_HANDLERS (4)
    # chats at once: only those can be handled twice.
    check(len(twice) <= 4, "%d texts answered twice: %r" % (len(twice), twice[:5]))
    check(stack.states(uids) == {"done": 500}, "states: %r" % stack.states(uids))
    for c in chats:
        mine = [t for _, ch, t in posted if ch == c]
        arrived = sorted(mine, key=lambda t: got[t][0]["seq"])
        check(arrived == mine, "chat %d out of order across the kill: %r" % (c, arrived))
    seen = seen_counts(bot)
    seen2 = seen_counts(bot2)
    both = [u for u in uids if seen.get(u, 0) + seen2.get(u, 0) > 1]
    check(len(both) <= 4, "%d updates posted to the bot more than once" % len(both))
    stack.notes.append("push kill: %d of 500 answered before the SIGKILL, %d twice"
                       % (before, len(twice)))
    stack.end_pair(uids)


def case_500_dead(stack):
    byob.need_grammy()
    stack.start_pair(TGQ_MAX_ATTEMPTS=2)
    a, b = stack.chats(2)
    u = stack.uids(5)
    stack.post(u[0], a, "before %d" % u[0])
    stack.post(u[1], a, "boom")
    stack.post(u[2], b, "other %d" % u[2])
    stack.post(u[3], a, "after %d" % u[3])
    stack.post(u[4], b, "other %d" % u[4])
    want = ["before %d" % u[0], "other %d" % u[2], "after %d" % u[3], "other %d" % u[4]]
    stack.wait_replies(want, 90)
    wait_until(lambda: stack.queue.query(
        "SELECT state FROM updates WHERE update_id = ?", (u[1],)) == [("dead",)], 60,
        "the update answered 500 dead")
    rows = dict((r[0], r[1:]) for r in stack.queue.query(
        "SELECT update_id, state, attempts, last_error FROM updates "
        "WHERE update_id BETWEEN ? AND ?", (u[0], u[4])))
    check(all(rows[x][0] == "done" for x in u if x != u[1]),
          "the others: %r" % rows)
    check(rows[u[1]][1] == 2 and "500" in (rows[u[1]][2] or ""),
          "the dead update: attempts %r, last_error %r" % rows[u[1]][1:])
    got = stack.replies(want)
    check(got["before %d" % u[0]][0]["seq"] < got["after %d" % u[3]][0]["seq"],
          "chat order around the dead update")
    check(stack.replies(["boom"]) == {}, "the failed update was answered")
    stack.end_pair(u)


def case_slow(stack):
    byob.need_grammy()
    bot = stack.start_pair(TGQ_HANDLER_TIMEOUT=2, TGQ_MAX_ATTEMPTS=1)
    (chat,) = stack.chats(1)
    (uid,) = stack.uids(1)
    stack.post(uid, chat, "slow 3500")
    stack.wait_replies(["slow 3500"], 60)
    stack.wait_all_done([uid], 60)
    seen = seen_counts(bot)
    check(seen.get(uid, 0) >= 2, "the slow update was posted %d time(s), not "
          "retried" % seen.get(uid, 0))
    rows = stack.queue.query("SELECT state, attempts FROM updates WHERE update_id = ?",
                             (uid,))
    # max_attempts 1: had the timeout been charged, the update would be dead;
    # attempts counts the run that handled it
    check(rows == [("done", 1)], "the slow update: %r" % rows)
    stack.end_pair([uid])


def case_ptb_webhook(stack):
    byob.need_ptb()
    stack.start_pair("ptb_webhook.py", listen=True, start_bot=False)
    # the bot's API root is the drain's local Bot API, known once it listens
    script, args, env = stack.bot_args
    stack.bot_args = (script, [args[0], args[1], "http://127.0.0.1:%d" %
                               stack.listen_port], env)
    bot = stack.start_bot("ptb_webhook")
    posted = stack.post_texts(stack.chats(5), 4, "ptbhook")
    stack.wait_replies([t for _, _, t in posted], 60)
    time.sleep(1.0)
    stack.check_once_in_order(posted)
    for m in ("setWebhook", "deleteWebhook", "getWebhookInfo"):
        check(stack.api.count(m) == 0, "%s reached the fake Bot API" % m)
    check("Failed bootstrap" not in bot.text() and not bot.reports("error_handler"),
          "python-telegram-bot's start-up failed: %s" % bot.text()[-500:])
    stack.end_pair([u for u, _, _ in posted])


def case_stopped_2_minutes(stack):
    byob.need_grammy()
    stack.start_pair(start_bot=False, TGQ_MAX_ATTEMPTS=2)
    posted = stack.post_texts(stack.chats(4), 3, "down")
    uids = [u for u, _, _ in posted]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack.check_drains()
        st = stack.states(uids)
        check(st.get("dead", 0) == 0 and st.get("done", 0) == 0,
              "with the bot down: %r" % dict(st))
        time.sleep(2)
    rc, out, err = stack.tgq("status")
    stack.notes.append("tgq status with the bot down: %s" % " ".join(
        (out + err).split())[:300])
    stack.start_bot("bot_back")
    stack.wait_replies([t for _, _, t in posted], 90)
    stack.wait_all_done(uids, 60)
    time.sleep(1.0)
    stack.check_once_in_order(posted)
    stack.end_pair(uids)


def groups(ctx):
    if not os.path.exists(os.path.join(ctx.build, "tgq-drain")):
        return []
    return [("byob-push", lambda: PushStack(ctx), [
        ("grammy_echo_once_in_order", case_echo),
        ("grammy_webhook_reply", case_webhook_reply),
        ("telegraf_echo_once_in_order", case_telegraf_echo),
        ("grammy_forward_secret", case_forward_secret),
        ("grammy_killed_restarted_500", case_kill_restart),
        ("grammy_500_only_that_dead", case_500_dead),
        ("grammy_slow_retried", case_slow),
        ("ptb_webhook_echo", case_ptb_webhook),
        ("grammy_stopped_2_minutes", case_stopped_2_minutes),
    ])]
