#!/usr/bin/python3
"""An echo bot with python-telegram-bot 13 (Debian's), long polling: a bot as its
author wrote it, with one setting changed: base_url (and base_file_url) point at
tgq's local Bot API.

    BOT_TOKEN=... BOT_REPORT=FILE /usr/bin/python3 ptb_poll.py API_ROOT

The token comes from the environment, never the command line.
"""

import os
import signal
import sys

from telegram.ext import Filters, MessageHandler, Updater

import ptb_common


def main():
    root = sys.argv[1].rstrip("/")
    updater = Updater(os.environ["BOT_TOKEN"], base_url=root + "/bot",
                      base_file_url=root + "/file/bot")
    updater.dispatcher.add_handler(MessageHandler(Filters.text, ptb_common.echo))
    updater.dispatcher.add_error_handler(ptb_common.on_error)
    updater.start_polling(timeout=10)
    ptb_common.report(event="started")
    updater.idle(stop_signals=(signal.SIGINT, signal.SIGTERM))
    return 0


if __name__ == "__main__":
    sys.exit(main())
