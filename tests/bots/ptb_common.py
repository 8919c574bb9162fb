"""What the two python-telegram-bot 13 test bots share: the report file and the
commands a test sends as message texts besides plain text (which is echoed).

  "upload N"          send_document with N bytes of pattern() (multipart)
  "download FILE_ID"  get_file, then File.download_as_bytearray() (base_file_url)
  "nochat"            sendMessage without chat_id: the error comes back

Every outcome of a command is one JSON line appended to $BOT_REPORT.
"""

import hashlib
import io
import json
import os
import re
import threading

from telegram.error import TelegramError

from upload_pattern import pattern

_lock = threading.Lock()


def report(**obj):
    path = os.environ.get("BOT_REPORT")
    if path:
        with _lock, open(path, "a") as f:
            f.write(json.dumps(obj) + "\n")


def error_fields(e):
    return {"error_type": type(e).__name__, "message": getattr(e, "message", str(e))}


def echo(update, context):
    """The one handler: plain python-telegram-bot code."""
    msg = update.effective_message
    text = msg.text
    uid = update.update_id
    m = re.match(r"^upload (\d+)$", text)
    if m:
        data = pattern(int(m.group(1)))
        try:
            sent = context.bot.send_document(msg.chat_id, io.BytesIO(data),
                                             filename="upload.bin", timeout=60)
            report(event="upload", update_id=uid, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest(),
                   file_id=sent.document.file_id)
        except TelegramError as e:
            report(event="upload_error", update_id=uid, **error_fields(e))
        return
    m = re.match(r"^download (\S+)$", text)
    if m:
        try:
            f = context.bot.get_file(m.group(1))
            data = bytes(f.download_as_bytearray())
            report(event="download", update_id=uid, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest(), file_size=f.file_size)
        except TelegramError as e:
            report(event="download_error", update_id=uid, **error_fields(e))
        return
    if text == "nochat":
        try:
            context.bot._post("sendMessage", {"text": "to nobody"})
            report(event="nochat_sent", update_id=uid)
        except TelegramError as e:
            report(event="error", update_id=uid, **error_fields(e))
        return
    context.bot.send_message(msg.chat_id, text)


def on_error(update, context):
    report(event="error_handler", **error_fields(context.error))
