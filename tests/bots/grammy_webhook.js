// An echo bot with grammY's webhookCallback on node's http module, as its author
// would run it behind a reverse proxy; tgq-drain posts the updates here.
//   BOT_TOKEN=... WEBHOOK_SECRET=... BOT_REPORT=FILE node grammy_webhook.js PORT PATH API_ROOT
// API_ROOT: where the bot's own calls go (the Bot API, or tgq's local one).
// WEBHOOK_REPLY=1: the bot answers with a webhook reply (canUseWebhookReply)
// instead of calling sendMessage itself.  Besides the commands of common.js:
//   "boom"    the handler throws: webhookCallback's request ends with 500
//   "slow MS" the first time an update comes, the handler takes MS ms
// Every update that arrives is reported as {"event":"seen","update_id":N}.
"use strict";
const http = require("http");
const { Bot, webhookCallback } = require("grammy");
const { install, report } = require("./common");

const [portStr, path, apiRoot] = process.argv.slice(2);
const token = process.env.BOT_TOKEN;
const client = { apiRoot };
if (process.env.WEBHOOK_REPLY === "1") client.canUseWebhookReply = () => true;
const bot = new Bot(token, { client });
const slowSeen = new Set();

bot.use(async (ctx, next) => {
    report({ event: "seen", update_id: ctx.update.update_id });
    const text = (ctx.message && ctx.message.text) || "";
    if (text === "boom") throw new Error("boom");
    const m = /^slow (\d+)$/.exec(text);
    if (m && !slowSeen.has(ctx.update.update_id)) {
        slowSeen.add(ctx.update.update_id);
        await new Promise((r) => setTimeout(r, Number(m[1])));
    }
    await next();
});
install(bot, apiRoot, token);

const handle = webhookCallback(bot, "http", { secretToken: process.env.WEBHOOK_SECRET });
const server = http.createServer((req, res) => {
    if (req.url !== path) {
        res.writeHead(404);
        res.end();
        return;
    }
    handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
    });
});
// bot.init() (getMe) before the first update, as webhookCallback would do.
bot.init().then(() => {
    server.listen(Number(portStr), "127.0.0.1", () => report({ event: "started" }));
}, (e) => { report({ event: "init_error", message: String(e) }); process.exit(3); });
for (const sig of ["SIGTERM", "SIGINT"])
    process.once(sig, () => { server.close(); process.exit(0); });
