// An echo bot with telegraf, long polling: a bot as its author wrote it, with one
// setting changed: telegram.apiRoot points at tgq's local Bot API.
//   BOT_TOKEN=... BOT_REPORT=FILE node telegraf_poll.js API_ROOT
// launch() calls deleteWebhook first, which tgq answers itself.  The token comes
// from the environment, never the command line.
"use strict";
const { Telegraf } = require("telegraf");
const { message } = require("telegraf/filters");
const { report } = require("./common");

const apiRoot = process.argv[2];
const bot = new Telegraf(process.env.BOT_TOKEN, { telegram: { apiRoot } });
bot.on(message("text"), (ctx) => ctx.reply(ctx.message.text));
bot.catch((err) => report({ event: "handler_error", message: String(err) }));

for (const sig of ["SIGTERM", "SIGINT"])
    process.once(sig, () => bot.stop(sig));
bot.launch({ polling: { timeout: 10 } }, () => report({ event: "started" })).then(
    () => process.exit(0),
    (e) => { report({ event: "poll_error", message: String(e) }); process.exit(3); });
