#!/usr/bin/python3
"""An echo bot with python-telegram-bot 13 (Debian's) in webhook mode: its own
webhook server on 127.0.0.1:PORT/PATH, where tgq-drain posts the updates.
start_webhook calls setWebhook at start; base_url points at tgq's local Bot API,
which answers that call itself, so it never takes the webhook away from tgq.

    BOT_TOKEN=... BOT_REPORT=FILE /usr/bin/python3 ptb_webhook.py PORT PATH API_ROOT
"""

import os
import signal
import sys

from telegram.ext import Filters, MessageHandler, Updater

import ptb_common


def main():
    port, path, root = int(sys.argv[1]), sys.argv[2].lstrip("/"), sys.argv[3].rstrip("/")
    updater = Updater(os.environ["BOT_TOKEN"], base_url=root + "/bot",
                      base_file_url=root + "/file/bot")
    updater.dispatcher.add_handler(MessageHandler(Filters.text, ptb_common.echo))
    updater.dispatcher.add_error_handler(ptb_common.on_error)
    updater.start_webhook(listen="127.0.0.1", port=port, url_path=path,
                          webhook_url="https://127.0.0.1:8443/" + path)
    ptb_common.report(event="started")
    updater.idle(stop_signals=(signal.SIGINT, signal.SIGTERM))
    return 0


if __name__ == "__main__":
    sys.exit(main())
