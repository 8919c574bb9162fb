#!/usr/bin/python3
"""A fake Telegram Bot API server for tgq's tests, demo and bench.  Stdlib only.

It listens on 127.0.0.1 only, answers like api.telegram.org (same request and
answer shapes), records every call, misbehaves on command and enforces
Telegram's published rate limits, so a test can prove a client never gets a 429.

As a module:

    from fake_botapi import FakeBotAPI
    with FakeBotAPI(tokens={"123456789:AA...": "default"}) as api:
        ...  # api.url == "http://127.0.0.1:PORT"; api.calls(); api.script([...])

As a script:

    python3 tests/fake_botapi.py --port 0 --token-file F [--token-file F2 --name N]
                                 [--no-limits] [--ready-file PATH]

prints "listening on http://127.0.0.1:PORT" and runs until SIGTERM/SIGINT.  A
control API on the same port (paths under /_fake/) steers it from another
process:

    GET  /_fake/calls[?method=M&bot=B&since=SEQ]  recorded calls (JSON list)
    POST /_fake/script[?method=M&chat_id=C&bot=B] body: list of scripted answers,
                                    or {"answers":[...],"method":..,"chat_id":..,"bot":..}
    POST /_fake/reset                forget calls, scripts, stats, windows, updates,
                                    webhooks and message ids (limits config is kept)
    GET  /_fake/stats                counters, incl. "429": {"global","chat","group","scripted"}
    POST /_fake/updates[?bot=B]      body: list of updates, or {"bot":..,"updates":[...]}
    GET|POST /_fake/limits           body: {"enabled":bool,"global_per_s":..,"chat_per_s":..,
                                    "group_per_min":..,"slack":..}; answers the current ones
    GET  /_fake/webhook[?bot=B]      the stored webhook of a bot (including its secret)
    POST /_fake/webhook_error        body: {"bot":..,"message":..,"date":..} (message null clears)
    GET  /_fake/health               {"ok":true}
    POST /_fake/files[?bot=B&name=N] body: a file's bytes, made downloadable; answers
                                    its File ({"file_id","file_path",...})
    GET  /_fake/files[?bot=B]        every stored file (uploads and added ones),
                                    without the bytes: file_id, file_name, size,
                                    sha256, method, chat_id
    GET  /_fake/file?file_id=F[&bot=B]  the stored bytes of one file

Files: a file uploaded with multipart/form-data (sendDocument, sendPhoto, ...) is
kept byte for byte; its Message carries its real file_id and size, getFile answers
its file_path, and GET /file/bot<token>/<file_path> downloads it, as Telegram's file
server does (an unknown file_id is Telegram's 400 "invalid file_id").

A path the fake did not hand out is a file it makes up: GET
/file/bot<token>/<path> answers file_content(path), and a path under missing/ is
Telegram's 404.

A download can be held (module only): hold_download(path, at) sends the
headers (the whole Content-Length) and the first `at` bytes of the next GET of
that path, then waits until the test releases it (or a bounded timeout) before
the rest; with cut=True it closes the connection after the first part instead.
The DownloadHold it answers tells what happened (the client going away while
the fake waits is seen and recorded).

Tokens are never printed, logged or recorded: calls carry the bot's NAME.
"""

import argparse
import bisect
import collections
import email.parser
import email.utils
import hashlib
import json
import math
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate

__all__ = ["FakeBotAPI", "DEFAULT_LIMITS"]

# Telegram's published limits: 30 messages/s per bot, 1 message/s per chat,
# 20 messages/min per group.
DEFAULT_LIMITS = {
    "global_per_s": 30,
    "chat_per_s": 1,
    "group_per_min": 20,
    # Every window is shortened by `slack` seconds.  A client that spaces its calls
    # exactly 1/rate apart (e.g. one message per 1.000 s to a private chat) sees its
    # requests arrive here with loopback/scheduler jitter of a few ms, so the second
    # one may be observed 0.995 s after the first.  Without slack that client would
    # be flagged although Telegram (whose own measurement is coarser) would not.
    # A client that really sends faster than the limit is still caught.
    "slack": 0.02,
}

MAX_BODY = 64 * 1024 * 1024          # Telegram accepts uploads up to 50 MB
MAX_LINE = 65536
MAX_HEADERS = 200
STORED_PREFIX = "documents/up_"      # file_path of the files the fake holds
MESSAGE_STORE = 100000               # remembered message texts per bot (for edits)

REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    411: "Length Required", 413: "Request Entity Too Large", 420: "Flood",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Time-out",
}

NGINX_HTML = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{code} {reason}</h1></center>\r\n"
              "<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n")

# --- the Bot API's methods ------------------------------------------------------

# Methods whose result is a Message (or True for inline messages, for edits).
_MESSAGE_METHODS = """sendMessage sendPhoto sendAudio sendDocument sendVideo
sendAnimation sendVoice sendVideoNote sendPaidMedia sendLocation sendVenue sendContact
sendPoll sendDice sendSticker sendInvoice sendGame sendChecklist forwardMessage
editMessageText editMessageCaption editMessageMedia editMessageLiveLocation
stopMessageLiveLocation editMessageReplyMarkup editMessageChecklist setGameScore""".split()

# Methods with some other specific result.
_OTHER_RESULT_METHODS = """sendMediaGroup copyMessage copyMessages forwardMessages stopPoll
getChat getFile getChatMemberCount getChatMember getChatAdministrators getMyCommands
getMyName getMyDescription getMyShortDescription getChatMenuButton
getMyDefaultAdministratorRights getUserProfilePhotos createChatInviteLink
editChatInviteLink revokeChatInviteLink exportChatInviteLink
createChatSubscriptionInviteLink editChatSubscriptionInviteLink getStickerSet
uploadStickerFile getForumTopicIconStickers createForumTopic getCustomEmojiStickers
getGameHighScores getStarTransactions createInvoiceLink answerWebAppQuery
getBusinessConnection getUserChatBoosts getAvailableGifts savePreparedInlineMessage
getMe getUpdates setWebhook deleteWebhook getWebhookInfo""".split()

# Methods answering plain `true`.
_TRUE_METHODS = """logOut close sendChatAction setMessageReaction banChatMember
unbanChatMember restrictChatMember promoteChatMember setChatAdministratorCustomTitle
banChatSenderChat unbanChatSenderChat setChatPermissions approveChatJoinRequest
declineChatJoinRequest setChatPhoto deleteChatPhoto setChatTitle setChatDescription
pinChatMessage unpinChatMessage unpinAllChatMessages leaveChat setChatStickerSet
deleteChatStickerSet editForumTopic closeForumTopic reopenForumTopic deleteForumTopic
unpinAllForumTopicMessages editGeneralForumTopic closeGeneralForumTopic
reopenGeneralForumTopic hideGeneralForumTopic unhideGeneralForumTopic
unpinAllGeneralForumTopicMessages answerCallbackQuery setMyCommands deleteMyCommands
setMyName setMyDescription setMyShortDescription setChatMenuButton
setMyDefaultAdministratorRights deleteMessage deleteMessages createNewStickerSet
addStickerToSet setStickerPositionInSet deleteStickerFromSet replaceStickerInSet
setStickerEmojiList setStickerKeywords setStickerMaskPosition setStickerSetTitle
setStickerSetThumbnail setCustomEmojiStickerSetThumbnail deleteStickerSet
answerInlineQuery answerShippingQuery answerPreCheckoutQuery refundStarPayment
editUserStarSubscription setPassportDataErrors setUserEmojiStatus sendGift
giftPremiumSubscription verifyUser verifyChat removeUserVerification
removeChatVerification readBusinessMessage deleteBusinessMessages
setBusinessAccountName setBusinessAccountUsername setBusinessAccountBio
setBusinessAccountProfilePhoto removeBusinessAccountProfilePhoto
setBusinessAccountGiftSettings deleteStory""".split()

KNOWN_METHODS = {m.lower(): m for m in _MESSAGE_METHODS + _OTHER_RESULT_METHODS + _TRUE_METHODS}


def is_limited_method(lname):
    """Message-like calls that count toward the rate limits: every send* (except
    sendChatAction, which sends no message and which Telegram does not limit like
    messages: counting it would flag a legitimate "typing..." + message pair),
    copyMessage(s), forwardMessage(s) and every edit*."""
    if lname == "sendchataction":
        return False
    return (lname.startswith("send") or lname.startswith("edit")
            or lname in ("copymessage", "copymessages", "forwardmessage",
                         "forwardmessages"))


_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TRUE_STRINGS = ("true", "1", "yes", "on")


def _truthy(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        return v.strip().lower() in _TRUE_STRINGS
    return False


def _to_int(v, default=None):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return default
    return default


def chat_key(v):
    """chat_id as the Bot API sees it: an integer, or "@username" (a channel or a
    public supergroup).  None when absent."""
    if v is None or v == "":
        return None
    i = _to_int(v)
    if i is not None:
        return i
    return str(v)


def chat_numeric_id(key):
    if isinstance(key, int):
        return key
    digest = hashlib.sha256(key.encode()).digest()
    return -(1000000000000 + int.from_bytes(digest[:4], "big"))


def is_group_chat(key):
    return not (isinstance(key, int) and key > 0)


class _Bot:
    """Per-bot state."""

    def __init__(self, name, token):
        self.name = name
        head = token.split(":", 1)[0]
        self.id = int(head) if head.isdigit() else 1000 + abs(hash(name)) % 100000
        self.user = {"id": self.id, "is_bot": True, "first_name": name,
                     "username": "%s_bot" % name}
        self.reset()

    def reset(self):
        self.msg_ids = collections.defaultdict(int)
        self.texts = collections.OrderedDict()
        self.webhook = None              # dict when set
        self.webhook_error = None        # (date, message)
        self.updates = []                # queued updates, update_id ascending
        self.next_update_id = 100000001
        self.poll_gen = 0
        self.poll_allowed_updates = None
        self.w_global = collections.deque()
        self.w_chat = {}                 # chat key -> deque (1 s window)
        self.w_group = {}                # chat key -> deque (60 s window)
        self.file_seq = 0
        self.files = collections.OrderedDict()   # file_id -> _File
        self.file_paths = {}                     # file_path -> file_id


class _File:
    """A file the fake holds: its bytes and how it came."""

    def __init__(self, file_id, unique_id, path, data, name, ctype, method, chat):
        self.file_id = file_id
        self.unique_id = unique_id
        self.path = path
        self.data = data
        self.name = name
        self.ctype = ctype
        self.method = method
        self.chat = chat

    def info(self):
        return {"file_id": self.file_id, "file_unique_id": self.unique_id,
                "file_path": self.path, "file_name": self.name,
                "mime_type": self.ctype, "size": len(self.data),
                "sha256": hashlib.sha256(self.data).hexdigest(),
                "method": self.method, "chat_id": self.chat}


class _RawBody:
    """A control answer that is bytes, not JSON."""

    def __init__(self, data):
        self.data = data


class _ApiError(Exception):
    def __init__(self, code, description, parameters=None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class _Drop(Exception):
    pass


class DownloadHold:
    """A download sent in two parts (see hold_download).  outcome, once done:
    "sent" (released, the rest sent), "timed_out" (the rest sent after the
    timeout), "cut" (closed after the first part), "peer_closed" (the client
    went away while the fake waited) or "broken" (sending the rest failed)."""

    def __init__(self, at, cut, timeout):
        self.at = at
        self.cut = cut
        self.timeout = timeout
        self.first_sent = threading.Event()
        self.released = threading.Event()
        self.peer_closed = threading.Event()
        self.done = threading.Event()
        self.outcome = None

    def release(self):
        self.released.set()

    def waiting(self):
        """True until the rest goes out (or the fake gives up): a client that
        has bytes of the first part while this holds got them before the
        rest was sent.  (first_sent is set once sendall() of the first part
        returned, which may be after the client read it.)"""
        return not self.released.is_set() and not self.done.is_set()


class _HeldBody:
    """A download's bytes with its hold, from _download to _serve_one."""

    def __init__(self, data, hold):
        self.data = data
        self.hold = hold


class _BadRequest(Exception):
    """An HTTP-level error: answer `code` with a plain body and close."""

    def __init__(self, code, text=""):
        super().__init__(text)
        self.code = code
        self.text = text


class FakeBotAPI:
    """The fake server.  tokens: {token: bot name}.  host must be a 127.x address.
    port 0 picks a free one.  limits=False disables the rate limits.  max_calls
    bounds the recorded-call list (oldest dropped; None keeps all)."""

    def __init__(self, tokens, host="127.0.0.1", port=0, limits=True, max_calls=None):
        if not tokens:
            raise ValueError("at least one bot token is needed")
        if host == "localhost":
            host = "127.0.0.1"
        if not re.match(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$", str(host)):
            raise ValueError("the fake Bot API listens on 127.0.0.1 only")
        self.host = host
        self._want_port = int(port)
        self.port = None
        self.url = None
        self._tokens = {}
        self._bots = {}
        for token, name in tokens.items():
            token = token.strip()
            if name in self._bots:
                raise ValueError("two tokens for the bot name %r" % name)
            self._tokens[token] = name
            self._bots[name] = _Bot(name, token)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._limits = dict(DEFAULT_LIMITS)
        self._limits["enabled"] = bool(limits)
        self._max_calls = max_calls
        self._stop_ev = threading.Event()
        self._started = False
        self._stopped = False
        self._lsock = None
        self._accept_thread = None
        self._conns = {}                 # conn id -> (socket, thread)
        self._conn_seq = 0
        self._reset_records()

    # --- lifecycle ----------------------------------------------------------------

    def start(self):
        if self._started:
            return self
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self._want_port))
        s.listen(256)
        s.settimeout(0.25)
        self._lsock = s
        self.port = s.getsockname()[1]
        self.url = "http://%s:%d" % (self.host, self.port)
        self._started = True
        self._accept_thread = threading.Thread(target=self._accept_loop,
                                               name="fake-botapi-accept", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self):
        """Close every connection and join the threads.  Idempotent, quick."""
        with self._lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
            self._stop_ev.set()
            self._cond.notify_all()
            conns = list(self._conns.values())
        try:
            self._lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for sock, _t in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 1.5
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self._lsock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns.values())
        for sock, t in conns:
            t.join(max(0.0, deadline - time.monotonic()))
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def bot_names(self):
        return list(self._bots)

    # --- recording and stats ---------------------------------------------------

    def _reset_records(self):
        self._calls = []
        self._downloads = []             # file paths asked for under /file/
        self._holds = {}                 # (bot, file path) -> DownloadHold
        self._seq = 0
        self._scripts = []               # [(filter dict, answer)]
        self._stats = {"requests": 0, "control_requests": 0, "calls": 0,
                       "by_method": collections.Counter(), "by_status": collections.Counter(),
                       "429": {"global": 0, "chat": 0, "group": 0, "scripted": 0},
                       "dropped": 0, "hung": 0, "connections": 0}

    def reset(self):
        """Forget calls, scripts, stats, rate windows, queued updates, webhooks and
        message ids.  Keeps the limits configuration."""
        with self._lock:
            self._reset_records()
            for b in self._bots.values():
                b.reset()
            self._cond.notify_all()

    def calls(self, method=None, bot=None, since=0):
        """Copies of the recorded calls, optionally filtered (method is matched
        case-insensitively; since: only calls with seq > since)."""
        lm = method.lower() if method else None
        with self._lock:
            out = []
            for c in self._calls:
                if c["seq"] <= since:
                    continue
                if lm is not None and (c["method"] or "").lower() != lm:
                    continue
                if bot is not None and c["bot"] != bot:
                    continue
                out.append(json.loads(json.dumps(c)))
            return out

    def count_429(self, reason=None):
        """429 answers.  reason None: the ones the rate limits gave (global + chat +
        group: what a well-behaved client must never trigger); "global", "chat",
        "group" or "scripted": that kind only; "all": every 429."""
        with self._lock:
            st = self._stats["429"]
            if reason is None:
                return st["global"] + st["chat"] + st["group"]
            if reason == "all":
                return sum(st.values())
            return st[reason]

    def stats(self):
        with self._lock:
            st = dict(self._stats)
            st["by_method"] = dict(st["by_method"])
            st["by_status"] = {str(k): v for k, v in st["by_status"].items()}
            st["429"] = dict(st["429"])
            st["429_total"] = sum(st["429"].values())
            st["open_connections"] = len(self._conns)
            st["limits"] = dict(self._limits)
            st["bots"] = {}
            for name, b in self._bots.items():
                st["bots"][name] = {"pending_update_count": len(b.updates),
                                    "webhook_set": bool(b.webhook)}
            return st

    # --- steering ---------------------------------------------------------------

    def script(self, answers, method=None, chat_id=None, bot=None):
        """Queue scripted answers (FIFO) for the next calls matching method
        (case-insensitive), chat_id and bot, when given."""
        if isinstance(answers, dict):
            answers = [answers]
        flt = {"method": method.lower() if method else None,
               "chat_id": chat_key(chat_id), "bot": bot}
        for a in answers:
            if not isinstance(a, dict):
                raise ValueError("a scripted answer is a dict")
        with self._lock:
            for a in answers:
                self._scripts.append((flt, dict(a)))

    def pending_scripts(self):
        with self._lock:
            return len(self._scripts)

    def set_limits(self, enabled=None, global_per_s=None, chat_per_s=None,
                   group_per_min=None, slack=None):
        with self._lock:
            if enabled is not None:
                self._limits["enabled"] = bool(enabled)
            for k, v in (("global_per_s", global_per_s), ("chat_per_s", chat_per_s),
                         ("group_per_min", group_per_min)):
                if v is not None:
                    v = int(v)
                    if v < 1:
                        raise ValueError("%s must be >= 1" % k)
                    self._limits[k] = v
            if slack is not None:
                slack = float(slack)
                if not 0 <= slack < 0.5:
                    raise ValueError("slack must be in [0, 0.5)")
                self._limits["slack"] = slack
            return dict(self._limits)

    def limits(self):
        with self._lock:
            return dict(self._limits)

    def add_updates(self, updates, bot="default"):
        """Queue updates for getUpdates.  An update without update_id gets the next
        one.  Returns the update_ids."""
        if isinstance(updates, dict):
            updates = [updates]
        b = self._bot(bot)
        ids = []
        with self._lock:
            for u in updates:
                u = dict(u)
                uid = _to_int(u.get("update_id"))
                if uid is None:
                    uid = b.next_update_id
                u["update_id"] = uid
                b.next_update_id = max(b.next_update_id, uid + 1)
                b.updates.append(u)
                ids.append(uid)
            b.updates.sort(key=lambda x: x["update_id"])
            self._cond.notify_all()
        return ids

    def set_webhook_error(self, message, date=None, bot="default"):
        """What getWebhookInfo reports as last_error_*; message None clears."""
        b = self._bot(bot)
        with self._lock:
            if message is None:
                b.webhook_error = None
            else:
                b.webhook_error = (int(date if date is not None else time.time()),
                                   str(message))

    def webhook(self, bot="default"):
        """The stored webhook (with its secret_token) or None."""
        b = self._bot(bot)
        with self._lock:
            return json.loads(json.dumps(b.webhook)) if b.webhook else None

    def pending_updates(self, bot="default"):
        b = self._bot(bot)
        with self._lock:
            return [dict(u) for u in b.updates]

    def add_file(self, data, bot="default", name="file.bin",
                 ctype="application/octet-stream"):
        """Makes bytes a file of the bot (as if a user had sent it): returns its
        File object, with the file_path getFile would answer."""
        b = self._bot(bot)
        with self._lock:
            f = self._store_file(b, bytes(data), name, ctype, None, None)
            return {"file_id": f.file_id, "file_unique_id": f.unique_id,
                    "file_size": len(f.data), "file_path": f.path}

    def files(self, bot="default"):
        """Every file the bot holds, oldest first (uploads and added files):
        file_id, file_name, size, sha256, method (None for added), chat_id."""
        b = self._bot(bot)
        with self._lock:
            return [f.info() for f in b.files.values()]

    def file_bytes(self, file_id, bot="default"):
        """The stored bytes of a file (None when unknown)."""
        b = self._bot(bot)
        with self._lock:
            f = b.files.get(file_id)
            return f.data if f else None

    def hold_download(self, file_path, at, cut=False, timeout=30.0, bot="default"):
        """The next GET of file_path sends its headers and `at` bytes, then
        waits for release() (timeout seconds at most) before the rest; with cut
        it closes the connection after those bytes.  Answers the DownloadHold."""
        hold = DownloadHold(int(at), bool(cut), float(timeout))
        self._bot(bot)
        with self._lock:
            self._holds[(bot, file_path)] = hold
        return hold

    def count(self, method, bot=None):
        """How many calls of a method (case-insensitive) arrived, whatever their
        answer: a client that must never call it checks for 0."""
        lm = method.lower()
        with self._lock:
            return sum(1 for c in self._calls
                       if (c["method"] or "").lower() == lm and
                       (bot is None or c["bot"] == bot))

    def _store_file(self, b, data, name, ctype, method, chat):
        """Called with the lock held."""
        b.file_seq += 1
        h = hashlib.sha256(b"%s:%d" % (b.name.encode(), b.file_seq)).hexdigest()
        fid = "BQACAgIAAx" + h[:40]
        ext = os.path.splitext(name or "")[1][:8] or ".bin"
        path = "%s%d%s" % (STORED_PREFIX, b.file_seq, ext)
        f = _File(fid, "AgAD" + h[40:52], path, data, name, ctype, method, chat)
        b.files[fid] = f
        b.file_paths[path] = fid
        return f

    def _bot(self, name):
        try:
            return self._bots[name]
        except KeyError:
            raise KeyError("no bot named %r" % (name,)) from None

    # --- the server ---------------------------------------------------------------

    def _accept_loop(self):
        while not self._stop_ev.is_set():
            try:
                sock, _addr = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop_ev.is_set():
                    break
                time.sleep(0.01)
                continue
            sock.settimeout(None)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            with self._lock:
                if self._stopped:
                    sock.close()
                    break
                self._conn_seq += 1
                cid = self._conn_seq
                self._stats["connections"] += 1
                t = threading.Thread(target=self._serve_conn, args=(sock, cid),
                                     name="fake-botapi-conn-%d" % cid, daemon=True)
                self._conns[cid] = (sock, t)
            t.start()

    def _serve_conn(self, sock, cid):
        rfile = sock.makefile("rb", buffering=65536)
        try:
            while not self._stop_ev.is_set():
                if not self._serve_one(sock, rfile, cid):
                    break
        except (OSError, ValueError):
            pass
        except Exception as e:  # never echo the request (its path holds the token)
            sys.stderr.write("fake_botapi: connection %d: internal error %s\n"
                             % (cid, type(e).__name__))
        finally:
            with self._lock:
                self._conns.pop(cid, None)
            try:
                rfile.close()
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    _date_cache = (0, "")

    def _date(self):
        now = int(time.time())
        c = self._date_cache
        if c[0] != now:
            c = (now, formatdate(now, usegmt=True))
            self._date_cache = c
        return c[1]

    def _send(self, sock, code, body, ctype="application/json", keep=True, extra=(),
              head_only=False, length=None):
        head = ["HTTP/1.1 %d %s" % (code, REASONS.get(code, "Unknown")),
                "Server: nginx/1.18.0",
                "Date: " + self._date(),
                "Content-Type: " + ctype,
                "Content-Length: %d" % (len(body) if length is None else length),
                "Connection: " + ("keep-alive" if keep else "close")]
        if ctype == "application/json":
            head.append("Strict-Transport-Security: max-age=31536000; "
                        "includeSubDomains; preload")
            head.append("Access-Control-Allow-Origin: *")
            head.append("Access-Control-Expose-Headers: "
                        "Content-Length,Content-Type,Date,Server,Connection")
        head.extend(extra)
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
                     + (b"" if head_only else body))

    def _read_head(self, rfile):
        line = rfile.readline(MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(MAX_LINE + 1)
        if not line:
            return None
        if len(line) > MAX_LINE:
            raise _BadRequest(414)
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest(400)
        headers = {}
        n = 0
        while True:
            h = rfile.readline(MAX_LINE + 1)
            if not h:
                return None
            if h in (b"\r\n", b"\n"):
                break
            n += 1
            if n > MAX_HEADERS or len(h) > MAX_LINE:
                raise _BadRequest(431)
            k, sep, v = h.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(400)
            k = k.strip().lower()
            v = v.strip()
            if k in headers:
                headers[k] = headers[k] + ", " + v
            else:
                headers[k] = v
        return parts[0], parts[1], parts[2], headers

    def _read_body(self, sock, rfile, version, headers):
        te = headers.get("transfer-encoding", "").lower()
        cl = headers.get("content-length")
        chunked = "chunked" in te
        if not chunked and cl is None:
            return b"", False
        if cl is not None and not chunked:
            try:
                n = int(cl)
            except ValueError:
                raise _BadRequest(400)
            if n < 0:
                raise _BadRequest(400)
            if n > MAX_BODY:
                raise _BadRequest(413)
        expect = headers.get("expect", "").lower() == "100-continue"
        if expect and version == "HTTP/1.1":
            # libcurl waits up to 1 s for this before sending a body > 1 KiB.
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not chunked:
            body = rfile.read(n) if n else b""
            if len(body) != n:
                raise _BadRequest(400)
            return body, expect
        chunks = []
        total = 0
        while True:
            line = rfile.readline(MAX_LINE + 1)
            if not line:
                raise _BadRequest(400)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest(400)
            if size == 0:
                while True:     # trailers
                    t = rfile.readline(MAX_LINE + 1)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                break
            total += size
            if total > MAX_BODY:
                raise _BadRequest(413)
            data = rfile.read(size)
            if len(data) != size:
                raise _BadRequest(400)
            chunks.append(data)
            rfile.readline(MAX_LINE + 1)    # the CRLF after the chunk
        return b"".join(chunks), expect

    def _serve_one(self, sock, rfile, cid):
        """One request on a connection; False to close it."""
        try:
            head = self._read_head(rfile)
            if head is None:
                return False
            verb, target, version, headers = head
            conn_hdr = headers.get("connection", "").lower()
            if version == "HTTP/1.1":
                keep = "close" not in conn_hdr
            else:
                keep = "keep-alive" in conn_hdr
            body, expect = self._read_body(sock, rfile, version, headers)
        except _BadRequest as e:
            code = e.code
            self._send(sock, code, NGINX_HTML.format(code=code,
                                                     reason=REASONS.get(code, "")).encode(),
                       ctype="text/html", keep=False)
            return False
        t_recv = time.monotonic()
        path, _, query = target.partition("?")
        if path.startswith("http://") or path.startswith("https://"):
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
        with self._lock:
            self._stats["requests"] += 1
        if path.startswith("/_fake/") or path == "/_fake":
            code, obj = self._control(verb, path, query, headers, body)
            if isinstance(obj, _RawBody):
                self._send(sock, code, obj.data, ctype="application/octet-stream",
                           keep=keep)
            else:
                self._send(sock, code, json.dumps(obj).encode(), keep=keep)
            return keep
        try:
            code, payload, ctype = self._api(verb, path, query, headers, body, cid,
                                             t_recv, expect)
        except _Drop:
            return False
        if isinstance(payload, _HeldBody):
            return self._send_held(sock, code, payload, ctype, keep)
        self._send(sock, code, payload, ctype=ctype, keep=keep, head_only=verb == "HEAD")
        return keep

    def _send_held(self, sock, code, held, ctype, keep):
        """A held download: the headers and the first part, a wait, the rest."""
        hold, data = held.hold, held.data
        try:
            self._send(sock, code, data[:hold.at], ctype=ctype, keep=keep,
                       extra=(), head_only=False, length=len(data))
        except OSError:
            hold.outcome = "broken"
            hold.done.set()
            return False
        hold.first_sent.set()
        if hold.cut:
            hold.outcome = "cut"
            hold.done.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return False
        deadline = time.monotonic() + hold.timeout
        while not hold.released.is_set() and not self._stop_ev.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([sock], [], [], min(left, 0.05))
            if not readable:
                continue
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                peek = b""
            if peek == b"":
                hold.outcome = "peer_closed"
                hold.peer_closed.set()
                hold.done.set()
                return False
            time.sleep(0.05)    # a next request already: it waits its turn
        released = hold.released.is_set()
        try:
            sock.sendall(data[hold.at:])
        except OSError:
            hold.outcome = "broken"
            hold.done.set()
            return False
        hold.outcome = "sent" if released else "timed_out"
        hold.done.set()
        return keep

    # --- the Bot API ---------------------------------------------------------------

    def downloads(self):
        """The file paths asked for under /file/bot<token>/, in order."""
        with self._lock:
            return list(self._downloads)

    def _api(self, verb, path, query, headers, body, cid, t_recv, expect):
        rec = {"seq": 0, "bot": None, "method": None, "params": {}, "t": t_recv,
               "status": None, "ok": False, "error_code": None, "connection": cid,
               "limit": None, "scripted": False, "http_method": verb,
               "body_kind": None, "expect_continue": expect}
        m = re.match(r"^/file/bot([^/]*)/(.+)$", path)
        if m:
            return self._download(rec, verb, urllib.parse.unquote(m.group(1)),
                                  urllib.parse.unquote(m.group(2)))
        m = re.match(r"^/bot([^/]*)/([^/]*)$", path)
        if not m:
            return self._finish(rec, 404, err=(404, "Not Found", None))
        token = urllib.parse.unquote(m.group(1))
        method = urllib.parse.unquote(m.group(2))
        rec["method"] = method
        name = self._tokens.get(token)
        if name is None:
            return self._finish(rec, 401, err=(401, "Unauthorized", None))
        rec["bot"] = name
        bot = self._bots[name]
        try:
            params, kind, uploads = self._parse_params(query, headers, body)
        except _ApiError as e:
            return self._finish(rec, e.code, err=(e.code, e.description, e.parameters))
        rec["params"] = params
        rec["body_kind"] = kind
        lname = method.lower()
        canon = KNOWN_METHODS.get(lname)
        if canon is None:
            return self._finish(rec, 404, err=(404, "Not Found", None))
        ckey = chat_key(params.get("chat_id"))

        answer = None
        with self._lock:
            for i, (flt, a) in enumerate(self._scripts):
                if flt["method"] is not None and flt["method"] != lname:
                    continue
                if flt["bot"] is not None and flt["bot"] != name:
                    continue
                if flt["chat_id"] is not None and flt["chat_id"] != ckey:
                    continue
                answer = a
                del self._scripts[i]
                break
        if answer is not None:
            rec["scripted"] = True
            rec["script"] = answer
            r = self._scripted(rec, answer, bot, canon, params, ckey)
            if r is not None:
                return r
        try:
            result, desc = self._dispatch(bot, canon, lname, params, ckey, rec,
                                          uploads)
        except _ApiError as e:
            return self._finish(rec, e.code, err=(e.code, e.description, e.parameters))
        return self._finish(rec, 200, result=result, desc=desc)

    def _download(self, rec, verb, token, file_path):
        """GET /file/bot<token>/<file_path>: the stored bytes, as Telegram's file
        server sends them.  Recorded as a call of the method "file"."""
        rec["method"] = "file"
        rec["params"] = {"file_path": file_path}
        name = self._tokens.get(token)
        if name is None:
            return self._finish(rec, 401, err=(401, "Unauthorized", None))
        rec["bot"] = name
        if verb not in ("GET", "HEAD"):
            return self._finish(rec, 405, err=(405, "Method Not Allowed", None))
        bot = self._bots[name]
        with self._lock:
            self._downloads.append(file_path)
            fid = bot.file_paths.get(file_path)
            f = bot.files.get(fid) if fid else None
            hold = self._holds.pop((name, file_path), None) if verb == "GET" else None
        if f is None and file_path.startswith(("missing/", STORED_PREFIX)):
            return self._finish(rec, 404, err=(404, "Not Found", None))
        data = f.data if f is not None else file_content(file_path)
        if hold is not None:
            data = _HeldBody(data, hold)
        return self._finish(rec, 200, raw=(data, "application/octet-stream"))

    def _scripted(self, rec, a, bot, canon, params, ckey):
        """Apply a scripted answer; None means "go on normally" (after a hang)."""
        if a.get("drop"):
            with self._lock:
                self._stats["dropped"] += 1
            rec["dropped"] = True
            self._finish(rec, None)
            raise _Drop()
        if "hang" in a:
            with self._lock:
                self._stats["hung"] += 1
            rec["hang"] = float(a["hang"])
            self._stop_ev.wait(max(0.0, float(a["hang"])))
            rec["t_answer"] = time.monotonic()     # limits see the call after its hang
            if self._stop_ev.is_set():
                self._finish(rec, None)
                raise _Drop()
            if "status" not in a and "ok" not in a:
                return None
        if a.get("ok") is True or ("result" in a and "status" not in a):
            result = a.get("result", True)
            if is_limited_method(canon.lower()):
                with self._lock:
                    self._count_windows(bot, ckey, time.monotonic())
            return self._finish(rec, 200, result=result, desc=a.get("description"))
        status = int(a.get("status", 500))
        html = a.get("html")
        if html is None:
            html = status in (502, 504) and "description" not in a
        if html:
            body = NGINX_HTML.format(code=status, reason=REASONS.get(status, "Error"))
            return self._finish(rec, status, raw=(body.encode(), "text/html"))
        if status == 429:
            ra = int(a.get("retry_after", 1))
            desc = a.get("description", "Too Many Requests: retry after %d" % ra)
            params_ = {"retry_after": ra}
            with self._lock:
                self._stats["429"]["scripted"] += 1
            rec["limit"] = "scripted"
            return self._finish(rec, 429, err=(429, desc, params_))
        desc = a.get("description") or {
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}.get(
                status, REASONS.get(status, "Error"))
        p = {}
        if "migrate_to_chat_id" in a:
            p["migrate_to_chat_id"] = int(a["migrate_to_chat_id"])
        if "retry_after" in a:
            p["retry_after"] = int(a["retry_after"])
        return self._finish(rec, status, err=(status, desc, p or None))

    def _finish(self, rec, status, result=None, desc=None, err=None, raw=None):
        rec["status"] = status
        if err is not None:
            code, description, parameters = err
            obj = {"ok": False, "error_code": code, "description": description}
            if parameters:
                obj["parameters"] = parameters
            rec["ok"] = False
            rec["error_code"] = code
            rec["description"] = description
            if parameters:
                rec["parameters"] = parameters
            payload, ctype = _json_bytes(obj), "application/json"
        elif raw is not None:
            payload, ctype = raw
            rec["ok"] = status == 200
            rec["error_code"] = None if status == 200 else status
        elif status is None:
            payload, ctype = b"", None
        else:
            obj = {"ok": True, "result": result}
            if desc:
                obj["description"] = desc
            rec["ok"] = True
            payload, ctype = _json_bytes(obj), "application/json"
        with self._lock:
            self._seq += 1
            rec["seq"] = self._seq
            self._calls.append(rec)
            if self._max_calls is not None and len(self._calls) > self._max_calls:
                del self._calls[:len(self._calls) - self._max_calls]
            self._stats["calls"] += 1
            if rec["method"]:
                self._stats["by_method"][rec["method"]] += 1
            self._stats["by_status"][status if status is not None else "none"] += 1
        return status, payload, ctype

    def _parse_params(self, query, headers, body):
        params = {}
        kind = None
        uploads = {}
        if query:
            kind = "query"
            for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
                params[k] = v
        ctype_full = headers.get("content-type", "")
        ctype = ctype_full.split(";", 1)[0].strip().lower()
        if body:
            if ctype == "application/json":
                kind = "json"
                try:
                    obj = json.loads(body.decode("utf-8"))
                    # An escaped unpaired surrogate (\ud800) is no character:
                    # strict parsers refuse it, and so does this one.
                    json.dumps(obj, ensure_ascii=False).encode("utf-8")
                except (UnicodeDecodeError, UnicodeEncodeError, ValueError):
                    raise _ApiError(400, "Bad Request: can't parse JSON object")
                if not isinstance(obj, dict):
                    raise _ApiError(400, "Bad Request: can't parse JSON object")
                params.update(obj)
            elif ctype == "application/x-www-form-urlencoded":
                kind = "form"
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise _ApiError(400, "Bad Request: can't parse parameters")
                for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
                    params[k] = v
            elif ctype == "multipart/form-data":
                kind = "multipart"
                params.update(_parse_multipart(body, ctype_full, uploads))
        return params, kind, uploads

    # --- rate limits -----------------------------------------------------------------

    def _check_limits(self, bot, ckey, now):
        """(reason, retry_after) when the call is over a limit, else None.  On
        success the call is counted in its windows.  Called with the lock held."""
        L = self._limits
        if not L["enabled"]:
            return None
        slack = L["slack"]
        w1 = 1.0 - slack
        w60 = 60.0 - slack
        checks = [("global", bot.w_global, L["global_per_s"], w1)]
        if ckey is not None:
            dq = bot.w_chat.get(ckey)
            if dq is None:
                dq = bot.w_chat[ckey] = collections.deque()
            checks.insert(0, ("chat", dq, L["chat_per_s"], w1))
            if is_group_chat(ckey):
                gq = bot.w_group.get(ckey)
                if gq is None:
                    gq = bot.w_group[ckey] = collections.deque()
                checks.insert(1, ("group", gq, L["group_per_min"], w60))
        reason = None
        retry = 0.0
        for name, dq, limit, win in checks:
            while dq and dq[0] <= now - win:
                dq.popleft()
            if len(dq) >= limit:
                wait = dq[len(dq) - limit] + win - now
                if reason is None:
                    reason = name
                retry = max(retry, wait)
        if reason is not None:
            return reason, max(1, int(math.ceil(retry)))
        for _name, dq, _limit, _win in checks:
            _add_sorted(dq, now)
        return None

    def _count_windows(self, bot, ckey, now):
        _add_sorted(bot.w_global, now)
        if ckey is not None:
            _add_sorted(bot.w_chat.setdefault(ckey, collections.deque()), now)
            if is_group_chat(ckey):
                _add_sorted(bot.w_group.setdefault(ckey, collections.deque()), now)

    # --- methods -----------------------------------------------------------------

    def _chat(self, ckey):
        cid = chat_numeric_id(ckey)
        if cid > 0:
            return {"id": cid, "first_name": "User%d" % cid, "type": "private"}
        chat = {"id": cid, "title": "Group %d" % cid, "type": "supergroup"}
        if isinstance(ckey, str) and ckey.startswith("@"):
            chat["username"] = ckey[1:]
            chat["type"] = "channel"
        return chat

    def _new_message(self, bot, ckey, params, kind, uploads=None):
        cid = chat_numeric_id(ckey)
        bot.msg_ids[cid] += 1
        msg = {"message_id": bot.msg_ids[cid], "from": dict(bot.user),
               "chat": self._chat(ckey), "date": int(time.time())}
        if kind == "sendmessage":
            msg["text"] = str(params.get("text", ""))
            bot.texts[(cid, msg["message_id"])] = msg["text"]
            if len(bot.texts) > MESSAGE_STORE:
                bot.texts.popitem(last=False)
        else:
            if params.get("caption"):
                msg["caption"] = str(params["caption"])
            self._media_fields(bot, msg, kind, params, uploads or {})
        if params.get("reply_markup") not in (None, ""):
            rm = params["reply_markup"]
            if isinstance(rm, str):
                try:
                    rm = json.loads(rm)
                except ValueError:
                    raise _ApiError(400, "Bad Request: can't parse reply keyboard markup "
                                         "JSON object")
            if isinstance(rm, dict) and "inline_keyboard" in rm:
                msg["reply_markup"] = rm
        if params.get("message_thread_id") not in (None, ""):
            msg["message_thread_id"] = _to_int(params["message_thread_id"])
        return msg

    def _file_obj(self, bot, extra=None):
        bot.file_seq += 1
        h = hashlib.sha256(b"%s:%d" % (bot.name.encode(), bot.file_seq)).hexdigest()
        f = {"file_id": "BQACAgIAAx" + h[:40], "file_unique_id": "AgAD" + h[40:52],
             "file_size": 1024}
        if extra:
            f.update(extra)
        return f

    def _uploaded(self, bot, field, params, uploads, kind, ckey, extra=None):
        """The File object of an uploaded file field (kept byte for byte), or
        None when the field names a file_id or a URL."""
        meta = params.get(field)
        part = field
        # "attach://NAME": the file is the multipart field NAME (grammY sends
        # every upload this way)
        if isinstance(meta, str) and meta.startswith("attach://"):
            part = meta[len("attach://"):]
            meta = params.get(part)
        if part not in uploads or not isinstance(meta, dict):
            return None
        f = self._store_file(bot, uploads[part], meta.get("filename"),
                             meta.get("content_type"), kind, ckey)
        obj = {"file_id": f.file_id, "file_unique_id": f.unique_id,
               "file_size": len(f.data)}
        if field not in ("photo", "sticker", "video_note") and f.name:
            obj["file_name"] = f.name
        if f.ctype and field not in ("photo", "sticker"):
            obj["mime_type"] = f.ctype
        if extra:
            obj.update(extra)
        return obj

    def _media_fields(self, bot, msg, kind, params, uploads):
        field = kind[4:] if kind.startswith("send") else None
        ckey = chat_key(params.get("chat_id"))
        if field == "videonote":
            up = self._uploaded(bot, "video_note", params, uploads, kind, ckey,
                                {"length": 240, "duration": 1})
        elif field:
            up = self._uploaded(bot, field, params, uploads, kind, ckey,
                                {"width": 800, "height": 800} if field == "photo"
                                else None)
        else:
            up = None
        if up is not None:
            msg["video_note" if field == "videonote" else field] = \
                [up] if field == "photo" else up
            return
        if field == "photo":
            msg["photo"] = [self._file_obj(bot, {"width": 90, "height": 90}),
                            self._file_obj(bot, {"width": 800, "height": 800})]
        elif field in ("document", "audio", "video", "animation", "voice", "sticker"):
            msg[field] = self._file_obj(bot)
        elif field == "videonote":
            msg["video_note"] = self._file_obj(bot, {"length": 240, "duration": 1})
        elif field == "location":
            msg["location"] = {"latitude": float(params.get("latitude", 0) or 0),
                               "longitude": float(params.get("longitude", 0) or 0)}
        elif field == "contact":
            msg["contact"] = {"phone_number": str(params.get("phone_number", "")),
                              "first_name": str(params.get("first_name", ""))}
        elif field == "dice":
            msg["dice"] = {"emoji": str(params.get("emoji") or "\U0001F3B2"), "value": 4}
        elif field == "poll":
            opts = params.get("options", [])
            if isinstance(opts, str):
                try:
                    opts = json.loads(opts)
                except ValueError:
                    opts = []
            msg["poll"] = {"id": str(5000000000000000000 + msg["message_id"]),
                           "question": str(params.get("question", "")),
                           "options": [{"text": o if isinstance(o, str) else
                                        str((o or {}).get("text", "")),
                                        "voter_count": 0} for o in opts],
                           "total_voter_count": 0, "is_closed": False,
                           "is_anonymous": True, "type": "regular",
                           "allows_multiple_answers": False}

    def _need_chat(self, ckey):
        if ckey is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")

    def _dispatch(self, bot, canon, lname, params, ckey, rec, uploads=None):
        """(result, description) of a normal answer, or raises _ApiError."""
        if lname == "getme":
            return dict(bot.user, can_join_groups=True, can_read_all_group_messages=False,
                        supports_inline_queries=False, can_connect_to_business=False,
                        has_main_web_app=False), None
        if lname == "getupdates":
            return self._get_updates(bot, params), None
        if lname == "setwebhook":
            return self._set_webhook(bot, params)
        if lname == "deletewebhook":
            return self._delete_webhook(bot, params)
        if lname == "getwebhookinfo":
            return self._webhook_info(bot), None

        limited = is_limited_method(lname)
        inline = params.get("inline_message_id") not in (None, "")
        # validation first, like Telegram: a rejected request is not a message
        if limited and not (lname.startswith("edit") and inline) \
                and lname != "stopmessagelivelocation":
            self._need_chat(ckey)
        if lname == "sendmessage":
            text = params.get("text")
            if text is None or str(text).strip() == "":
                raise _ApiError(400, "Bad Request: message text is empty")
            if len(str(text)) > 4096:
                raise _ApiError(400, "Bad Request: message is too long")
        if lname == "editmessagetext":
            text = params.get("text")
            if text is None or str(text).strip() == "":
                raise _ApiError(400, "Bad Request: message text is empty")
        if limited:
            with self._lock:
                hit = self._check_limits(bot, None if inline else ckey,
                                         rec.get("t_answer", rec["t"]))
                if hit is not None:
                    reason, ra = hit
                    self._stats["429"][reason] += 1
                    rec["limit"] = reason
            if hit is not None:
                raise _ApiError(429, "Too Many Requests: retry after %d" % ra,
                                {"retry_after": ra})
        with self._lock:
            return self._result(bot, canon, lname, params, ckey, inline,
                                uploads or {}), None

    def _result(self, bot, canon, lname, params, ckey, inline, uploads):
        if lname == "sendmediagroup":
            media = params.get("media", [])
            if isinstance(media, str):
                try:
                    media = json.loads(media)
                except ValueError:
                    raise _ApiError(400, "Bad Request: can't parse media JSON object")
            if not isinstance(media, list) or not 2 <= len(media) <= 10:
                raise _ApiError(400, "Bad Request: wrong number of media specified")
            out = []
            for item in media:
                t = (item or {}).get("type", "document") if isinstance(item, dict) \
                    else "document"
                m = self._new_message(bot, ckey, {}, "send" + str(t).lower())
                m["media_group_id"] = "13%015d" % bot.msg_ids[chat_numeric_id(ckey)]
                out.append(m)
            return out
        if lname in ("copymessage",):
            cid = chat_numeric_id(ckey)
            bot.msg_ids[cid] += 1
            return {"message_id": bot.msg_ids[cid]}
        if lname in ("copymessages", "forwardmessages"):
            ids = params.get("message_ids", [])
            if isinstance(ids, str):
                try:
                    ids = json.loads(ids)
                except ValueError:
                    ids = []
            cid = chat_numeric_id(ckey)
            out = []
            for _ in ids if isinstance(ids, list) else []:
                bot.msg_ids[cid] += 1
                out.append({"message_id": bot.msg_ids[cid]})
            return out
        if lname.startswith("editmessage") or \
                lname in ("stopmessagelivelocation", "setgamescore"):
            if inline or ckey is None:
                return True
            cid = chat_numeric_id(ckey)
            mid = _to_int(params.get("message_id"), 0)
            msg = {"message_id": mid, "from": dict(bot.user), "chat": self._chat(ckey),
                   "date": int(time.time()) - 1, "edit_date": int(time.time())}
            if lname == "editmessagetext":
                new = str(params.get("text"))
                if bot.texts.get((cid, mid)) == new and \
                        params.get("reply_markup") in (None, ""):
                    raise _ApiError(400, "Bad Request: message is not modified: "
                                    "specified new message content and reply markup "
                                    "are exactly the same as a current content and "
                                    "reply markup of the message")
                if (cid, mid) in bot.texts:
                    bot.texts[(cid, mid)] = new
                msg["text"] = new
            elif params.get("caption") is not None:
                msg["caption"] = str(params.get("caption"))
            return msg
        if canon in _MESSAGE_METHODS:
            return self._new_message(bot, ckey, params, lname, uploads)
        if lname == "stoppoll":
            return {"id": "5000000000000000000", "question": "", "options": [],
                    "total_voter_count": 0, "is_closed": True, "is_anonymous": True,
                    "type": "regular", "allows_multiple_answers": False}
        if lname == "getchat":
            self._need_chat(ckey)
            c = self._chat(ckey)
            c.update({"accent_color_id": 0, "max_reaction_count": 11,
                      "accepted_gift_types": {"unlimited_gifts": False,
                                              "limited_gifts": False,
                                              "unique_gifts": False,
                                              "premium_subscription": False}})
            return c
        if lname == "getfile":
            f = bot.files.get(str(params.get("file_id", "")))
            if f is None:
                raise _ApiError(400, "Bad Request: invalid file_id")
            return {"file_id": f.file_id, "file_unique_id": f.unique_id,
                    "file_size": len(f.data), "file_path": f.path}
        if lname == "getchatmembercount":
            return 2
        if lname == "getchatmember":
            uid = _to_int(params.get("user_id"), 1)
            return {"status": "member", "user": {"id": uid, "is_bot": False,
                                                 "first_name": "User%d" % uid}}
        if lname in ("getchatadministrators", "getmycommands", "getforumtopiciconstickers",
                     "getcustomemojistickers", "getgamehighscores"):
            return []
        if lname == "getmyname":
            return {"name": bot.name}
        if lname == "getmydescription":
            return {"description": ""}
        if lname == "getmyshortdescription":
            return {"short_description": ""}
        if lname == "getchatmenubutton":
            return {"type": "default"}
        if lname == "getmydefaultadministratorrights":
            return {k: False for k in (
                "is_anonymous", "can_manage_chat", "can_delete_messages",
                "can_manage_video_chats", "can_restrict_members", "can_promote_members",
                "can_change_info", "can_invite_users", "can_post_stories",
                "can_edit_stories", "can_delete_stories")}
        if lname == "getuserprofilephotos":
            return {"total_count": 0, "photos": []}
        if lname in ("createchatinvitelink", "editchatinvitelink", "revokechatinvitelink",
                     "createchatsubscriptioninvitelink", "editchatsubscriptioninvitelink"):
            return {"invite_link": "https://t.me/+AAAAAAAAAAAAAAAA",
                    "creator": dict(bot.user), "creates_join_request": False,
                    "is_primary": False, "is_revoked": lname == "revokechatinvitelink"}
        if lname == "exportchatinvitelink":
            return "https://t.me/+AAAAAAAAAAAAAAAA"
        if lname == "createinvoicelink":
            return "https://t.me/$AAAAAAAAAAAAAAAA"
        if lname == "getstickerset":
            return {"name": str(params.get("name", "")), "title": "", "sticker_type":
                    "regular", "stickers": []}
        if lname == "uploadstickerfile":
            return self._file_obj(bot)
        if lname == "createforumtopic":
            return {"message_thread_id": 2, "name": str(params.get("name", "")),
                    "icon_color": 7322096}
        if lname == "getstartransactions":
            return {"transactions": []}
        if lname == "answerwebappquery":
            return {"inline_message_id": "AAAAAAAAAAAAAAAAAAAA"}
        if lname == "getbusinessconnection":
            return {"id": str(params.get("business_connection_id", "")),
                    "user": {"id": 1, "is_bot": False, "first_name": "User1"},
                    "user_chat_id": 1, "date": int(time.time()), "is_enabled": True}
        if lname == "getuserchatboosts":
            return {"boosts": []}
        if lname == "getavailablegifts":
            return {"gifts": []}
        if lname == "savepreparedinlinemessage":
            return {"id": "prepared1", "expiration_date": int(time.time()) + 86400}
        return True

    def _get_updates(self, bot, params):
        offset = _to_int(params.get("offset"))
        limit = _to_int(params.get("limit"), 100)
        limit = 100 if limit is None or limit < 1 or limit > 100 else limit
        timeout = _to_int(params.get("timeout"), 0) or 0
        timeout = max(0, timeout)
        au = params.get("allowed_updates")
        with self._lock:
            if bot.webhook is not None:
                raise _ApiError(409, "Conflict: can't use getUpdates method while webhook "
                                "is active; use deleteWebhook to delete the webhook first")
            if au not in (None, ""):
                bot.poll_allowed_updates = _allowed_updates(au)
            bot.poll_gen += 1
            gen = bot.poll_gen
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while True:
                if offset is not None:
                    if offset < 0:
                        keep = -offset
                        if len(bot.updates) > keep:
                            bot.updates = bot.updates[len(bot.updates) - keep:]
                        offset = bot.updates[0]["update_id"] if bot.updates else None
                    else:
                        bot.updates = [u for u in bot.updates
                                       if u["update_id"] >= offset]
                ups = bot.updates[:limit]
                if ups or self._stop_ev.is_set():
                    return [dict(u) for u in ups]
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(min(left, 0.5))
                if bot.poll_gen != gen:
                    raise _ApiError(409, "Conflict: terminated by other getUpdates "
                                    "request; make sure that only one bot instance "
                                    "is running")

    def _delete_webhook(self, bot, params):
        """deleteWebhook, and setWebhook with an empty url, as Telegram answers them."""
        with self._lock:
            was = bot.webhook is not None
            bot.webhook = None
            if _truthy(params.get("drop_pending_updates")):
                bot.updates = []
        return True, ("Webhook was deleted" if was else "Webhook is already deleted")

    def _set_webhook(self, bot, params):
        url = str(params.get("url", "") or "").strip()
        if url == "":
            return self._delete_webhook(bot, params)
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme.lower() != "https":
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided "
                            "for webhook")
        if not parsed.hostname:
            raise _ApiError(400, "Bad Request: bad webhook: Wrong HTTP URL specified")
        try:
            port = parsed.port
        except ValueError:
            raise _ApiError(400, "Bad Request: bad webhook: Wrong port number specified "
                            "in the URL")
        if port is not None and port not in (80, 88, 443, 8443):
            raise _ApiError(400, "Bad Request: bad webhook: Webhook can be set up only on "
                            "ports 80, 88, 443 or 8443")
        secret = params.get("secret_token")
        secret = None if secret in (None, "") else str(secret)
        if secret is not None and not _SECRET_RE.match(secret):
            if len(secret) > 256:
                raise _ApiError(400, "Bad Request: secret token is too long")
            raise _ApiError(400, "Bad Request: secret token contains unallowed "
                            "characters")
        mc = params.get("max_connections")
        if mc in (None, ""):
            mc = 40
        else:
            mc = _to_int(mc)
            if mc is None or not 1 <= mc <= 100:
                raise _ApiError(400, "Bad Request: bad webhook: max_connections must be "
                                "between 1 and 100")
        au = params.get("allowed_updates")
        au = None if au in (None, "") else _allowed_updates(au)
        ip = params.get("ip_address")
        ip = None if ip in (None, "") else str(ip)
        cert = params.get("certificate")
        has_cert = isinstance(cert, dict) and "sha256" in cert
        new = {"url": url, "secret_token": secret, "max_connections": mc,
               "allowed_updates": au, "ip_address": ip, "has_custom_certificate": has_cert,
               "drop_pending_updates": _truthy(params.get("drop_pending_updates"))}
        with self._lock:
            old = bot.webhook
            same = old is not None and all(old.get(k) == new[k] for k in (
                "url", "secret_token", "max_connections", "allowed_updates",
                "ip_address", "has_custom_certificate"))
            if new["drop_pending_updates"]:
                bot.updates = []
            new["set_at"] = time.time()
            bot.webhook = new
            bot.webhook_error = None if not same else bot.webhook_error
            self._cond.notify_all()     # a waiting getUpdates gets its 409 next time
        return True, ("Webhook is already set" if same else "Webhook was set")

    def _webhook_info(self, bot):
        with self._lock:
            w = bot.webhook
            info = {"url": w["url"] if w else "",
                    "has_custom_certificate": bool(w and w["has_custom_certificate"]),
                    "pending_update_count": len(bot.updates)}
            if w:
                if w["ip_address"]:
                    info["ip_address"] = w["ip_address"]
                if bot.webhook_error:
                    info["last_error_date"] = bot.webhook_error[0]
                    info["last_error_message"] = bot.webhook_error[1]
                info["max_connections"] = w["max_connections"]
                if w["allowed_updates"] is not None:
                    info["allowed_updates"] = list(w["allowed_updates"])
            elif bot.webhook_error:
                info["last_error_date"] = bot.webhook_error[0]
                info["last_error_message"] = bot.webhook_error[1]
            return info

    # --- the control API ---------------------------------------------------------

    def _control(self, verb, path, query, headers, body):
        with self._lock:
            self._stats["control_requests"] += 1
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        what = path[len("/_fake/"):].strip("/")
        try:
            if what == "files" and verb == "POST":
                return 200, self.add_file(body, bot=q.get("bot", "default"),
                                          name=q.get("name") or "file.bin")
            if what == "files" and verb == "GET":
                return 200, self.files(bot=q.get("bot", "default"))
            if what == "file" and verb == "GET":
                data = self.file_bytes(q.get("file_id", ""),
                                       bot=q.get("bot", "default"))
                if data is None:
                    return 404, {"ok": False, "error": "no such file"}
                return 200, _RawBody(data)
        except KeyError as e:
            return 400, {"ok": False, "error": str(e)}
        data = None
        if body:
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return 400, {"ok": False, "error": "body is not JSON"}
        try:
            if what == "health":
                return 200, {"ok": True, "bots": self.bot_names()}
            if what == "calls" and verb == "GET":
                return 200, self.calls(method=q.get("method") or None,
                                       bot=q.get("bot") or None,
                                       since=int(q.get("since", 0) or 0))
            if what == "stats" and verb == "GET":
                return 200, self.stats()
            if what == "reset" and verb == "POST":
                self.reset()
                return 200, {"ok": True}
            if what == "script" and verb == "POST":
                method, chat, bot = q.get("method"), q.get("chat_id"), q.get("bot")
                answers = data
                if isinstance(data, dict) and "answers" in data:
                    answers = data["answers"]
                    method = data.get("method", method)
                    chat = data.get("chat_id", chat)
                    bot = data.get("bot", bot)
                if not isinstance(answers, (list, dict)):
                    return 400, {"ok": False, "error": "a list of answers is needed"}
                self.script(answers, method=method or None, chat_id=chat, bot=bot or None)
                return 200, {"ok": True, "pending": self.pending_scripts()}
            if what == "updates" and verb == "POST":
                bot = q.get("bot", "default")
                ups = data
                if isinstance(data, dict) and "updates" in data:
                    ups = data["updates"]
                    bot = data.get("bot", bot)
                ids = self.add_updates(ups or [], bot=bot)
                return 200, {"ok": True, "update_ids": ids}
            if what == "limits":
                if verb == "POST":
                    d = data or {}
                    self.set_limits(**{k: d[k] for k in (
                        "enabled", "global_per_s", "chat_per_s", "group_per_min",
                        "slack") if k in d})
                return 200, self.limits()
            if what == "webhook" and verb == "GET":
                return 200, {"ok": True, "webhook": self.webhook(q.get("bot", "default"))}
            if what == "webhook_error" and verb == "POST":
                d = data or {}
                self.set_webhook_error(d.get("message"), d.get("date"),
                                       bot=d.get("bot", q.get("bot", "default")))
                return 200, {"ok": True}
        except (KeyError, ValueError, TypeError) as e:
            return 400, {"ok": False, "error": str(e)}
        return 404, {"ok": False, "error": "unknown control call %s %s" % (verb, path)}


def file_content(file_path, size=3 * 1024 * 1024 + 17):
    """The bytes the fake serves for a file path: deterministic, not repetitive
    within a block, and larger than any buffer a proxy would hold whole."""
    block = b"".join(hashlib.sha256(b"%s:%d" % (file_path.encode(), i)).digest()
                     for i in range(2048))
    return (block * (size // len(block) + 1))[:size]


def _json_bytes(obj):
    """Compact UTF-8 JSON, as api.telegram.org answers."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _add_sorted(dq, t):
    """Windows stay sorted: a thread that received its request a little earlier may
    take the lock a little later than another."""
    if dq and dq[-1] > t:
        bisect.insort(dq, t)
    else:
        dq.append(t)


def _allowed_updates(v):
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise _ApiError(400, "Bad Request: can't parse allowed updates")
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _ApiError(400, "Bad Request: can't parse allowed updates")
    return v


def _parse_multipart(body, ctype_full, uploads=None):
    """The fields of a multipart/form-data body: text fields as strings, file
    fields as {filename, content_type, size, sha256}; the files' bytes go to
    uploads[name] when a dict is given."""
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', ctype_full, re.I)
    if not m:
        raise _ApiError(400, "Bad Request: can't parse multipart/form-data: "
                             "no boundary")
    boundary = (m.group(1) or m.group(2)).encode("latin-1")
    out = {}
    parts = (b"\r\n" + body).split(b"\r\n--" + boundary)
    if len(parts) < 2:
        raise _ApiError(400, "Bad Request: can't parse multipart/form-data")
    hp = email.parser.HeaderParser()
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        nl = part.find(b"\r\n")
        if nl < 0:
            continue
        part = part[nl + 2:]
        if part.startswith(b"\r\n"):
            hdrs, content = b"", part[2:]
        else:
            end = part.find(b"\r\n\r\n")
            if end < 0:
                continue
            hdrs, content = part[:end], part[end + 4:]
        msg = hp.parsestr(hdrs.decode("utf-8", "replace") + "\r\n\r\n")
        name = msg.get_param("name", header="content-disposition")
        if name is None:
            continue
        name = email.utils.collapse_rfc2231_value(name)
        filename = msg.get_filename()
        text = None
        if filename is None:
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is not None:
            out[name] = text
        else:
            out[name] = {"filename": filename,
                         "content_type": msg.get("content-type",
                                                 "application/octet-stream")
                         .split(";")[0].strip(),
                         "size": len(content),
                         "sha256": hashlib.sha256(content).hexdigest()}
            if uploads is not None:
                uploads[name] = content
    return out


# --- script mode ------------------------------------------------------------------

def _read_token(path):
    with open(path, "r", encoding="utf-8") as f:
        tok = f.read().strip()
    if not tok or any(c.isspace() for c in tok):
        raise SystemExit("fake_botapi: the token file %s does not hold one token" % path)
    return tok


class _BotAction(argparse.Action):
    def __call__(self, parser, ns, value, option_string=None):
        bots = getattr(ns, "bots", None) or []
        if option_string == "--token-file":
            bots.append([value, None])
        else:
            if not bots or bots[-1][1] is not None:
                parser.error("--name names the --token-file before it")
            bots[-1][1] = value
        ns.bots = bots


def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake Telegram Bot API on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token-file", action=_BotAction, dest="bots", metavar="F",
                    help="a file holding a bot token; repeatable")
    ap.add_argument("--name", action=_BotAction, dest="bots", metavar="NAME",
                    help="the name of the bot of the preceding --token-file "
                         "(default: 'default' for the first, botN after)")
    ap.add_argument("--no-limits", action="store_true")
    ap.add_argument("--ready-file")
    ap.add_argument("--max-calls", type=int, default=None)
    args = ap.parse_args(argv)
    if not args.bots:
        ap.error("at least one --token-file is needed")
    tokens = {}
    for i, (path, name) in enumerate(args.bots):
        name = name or ("default" if i == 0 else "bot%d" % (i + 1))
        tok = _read_token(path)
        if tok in tokens:
            ap.error("two bots share one token")
        tokens[tok] = name
    api = FakeBotAPI(tokens, host=args.host, port=args.port, limits=not args.no_limits,
                     max_calls=args.max_calls)
    done = threading.Event()

    def on_signal(_sig, _frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    api.start()
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % api.port)
        os.replace(tmp, args.ready_file)
    print("listening on %s" % api.url, flush=True)
    print("bots: %s" % ", ".join(sorted(api.bot_names())), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
