// grammY's client, bot.api.sendMessage, as the peer of tgq-drain's sender:
// N calls over `concurrency` promises at once against a fake Bot API on loopback.
//   NODE_PATH=<npm prefix>/node_modules node grammy_client.js API_ROOT N CONCURRENCY CHATS
// Prints one JSON line: {"calls":N,"errors":E,"seconds":S}.
"use strict";
const { Bot } = require("grammy");

const [apiRoot, nStr, concStr, chatsStr] = process.argv.slice(2);
const n = Number(nStr), conc = Number(concStr), chats = Number(chatsStr);
const botInfo = {
    id: 123456789, is_bot: true, first_name: "bench", username: "bench_bot",
    can_join_groups: true, can_read_all_group_messages: false,
    supports_inline_queries: false, can_connect_to_business: false,
    has_main_web_app: false,
};
const bot = new Bot("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_",
    { botInfo, client: { apiRoot } });

async function main() {
    let next = 0, errors = 0;
    const t0 = process.hrtime.bigint();
    async function worker() {
        for (;;) {
            const i = next++;
            if (i >= n) return;
            try {
                await bot.api.sendMessage(1000 + (i % chats), "bench reply " + i);
            } catch (e) {
                errors++;
            }
        }
    }
    await Promise.all(Array.from({ length: conc }, worker));
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ calls: n, errors, seconds: s }));
}
main().then(() => process.exit(0), (e) => { console.error(String(e)); process.exit(1); });
