// An echo bot with telegraf's webhookCallback on node's http module, as its
// author would run it behind a reverse proxy; tgq-drain posts the updates here.
//   BOT_TOKEN=... WEBHOOK_SECRET=... BOT_REPORT=FILE node telegraf_webhook.js PORT PATH API_ROOT
// Each text gets a "typing" action, then its echo.  As the README's recipe says:
// webhookReply off.  On (telegraf's default), the sendChatAction would end the
// answer to tgq's POST before the echo is sent, and tgq would post the chat's
// next update while this one is still being handled: replies out of order.
"use strict";
const http = require("http");
const { Telegraf } = require("telegraf");
const { message } = require("telegraf/filters");
const { report } = require("./common");

const [portStr, path, apiRoot] = process.argv.slice(2);
const bot = new Telegraf(process.env.BOT_TOKEN,
                         { telegram: { apiRoot, webhookReply: false } });
bot.use((ctx, next) => {
    report({ event: "seen", update_id: ctx.update.update_id });
    return next();
});
bot.on(message("text"), async (ctx) => {
    await ctx.sendChatAction("typing");
    await ctx.reply(ctx.message.text);
});

const handle = bot.webhookCallback(path, { secretToken: process.env.WEBHOOK_SECRET });
const server = http.createServer(handle);
server.listen(Number(portStr), "127.0.0.1", () => report({ event: "started" }));
for (const sig of ["SIGTERM", "SIGINT"])
    process.once(sig, () => { server.close(); process.exit(0); });
