// grammY's webhookCallback on node's http module: the peer `make bench` measures
// tgq-webhook against.  The bot's handler does nothing and botInfo is given, so the
// process makes no network call of its own.
//   NODE_PATH=<npm prefix>/node_modules node grammy_server.js PORT
// The secret comes from the environment (BENCH_SECRET), never the command line.
"use strict";
const http = require("http");
const { Bot, webhookCallback } = require("grammy");

const port = Number(process.argv[2]);
const secret = process.env.BENCH_SECRET;
const botInfo = {
    id: 123456789, is_bot: true, first_name: "bench", username: "bench_bot",
    can_join_groups: true, can_read_all_group_messages: false,
    supports_inline_queries: false, can_connect_to_business: false,
    has_main_web_app: false,
};
const bot = new Bot("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_", { botInfo });
bot.on("message", () => {});
const handle = webhookCallback(bot, "http", { secretToken: secret });
const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
    });
});
// Longer than nginx's upstream keepalive_timeout, so nginx never reuses a
// connection node is closing.
server.keepAliveTimeout = 70000;
server.headersTimeout = 71000;
server.listen(port, "127.0.0.1", () => console.log("listening on " + port));
for (const sig of ["SIGTERM", "SIGINT"])
    process.on(sig, () => { server.close(); process.exit(0); });
