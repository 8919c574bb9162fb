// An echo bot with grammY, long polling: a bot as its author wrote it, with one
// setting changed: client.apiRoot points at tgq's local Bot API.
//   BOT_TOKEN=... BOT_REPORT=FILE node grammy_poll.js API_ROOT
// The token comes from the environment, never the command line.  A polling
// error grammY gives up on (401, 409) is reported and ends the process (exit 3).
"use strict";
const { Bot } = require("grammy");
const { install, report, errorFields } = require("./common");

const apiRoot = process.argv[2];
const token = process.env.BOT_TOKEN;
const bot = new Bot(token, { client: { apiRoot } });
install(bot, apiRoot, token);
bot.catch((err) => report({ event: "handler_error", message: String(err.error) }));

for (const sig of ["SIGTERM", "SIGINT"])
    process.once(sig, () => bot.stop());
bot.start({ timeout: 10, onStart: () => report({ event: "started" }) }).then(
    () => process.exit(0),
    (e) => { report({ event: "poll_error", ...errorFields(e) }); process.exit(3); });
