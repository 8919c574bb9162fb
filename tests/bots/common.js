// What the two grammY test bots share: the report file and the commands a test
// sends as message texts besides plain text (which is echoed).
//   "upload N"         sendDocument with N bytes of pattern() (multipart)
//   "download FILE_ID" getFile, then GET <apiRoot>/file/bot<token>/<file_path>
//   "nochat"           sendMessage without chat_id: the error comes back
// Every outcome of a command is one JSON line appended to $BOT_REPORT.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const http = require("http");
const { InputFile } = require("grammy");

function report(obj) {
    if (process.env.BOT_REPORT)
        fs.appendFileSync(process.env.BOT_REPORT, JSON.stringify(obj) + "\n");
}

// Deterministic bytes a test can rebuild: byte i = (i * 31 + (i >> 8)) & 255.
function pattern(n) {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 255;
    return b;
}

function sha256(buf) {
    return crypto.createHash("sha256").update(buf).digest("hex");
}

function errorFields(e) {
    return { error_code: e.error_code, description: e.description,
             method: e.method, message: String(e.message || e) };
}

function download(url) {
    return new Promise((resolve, reject) => {
        http.get(url, (res) => {
            const parts = [];
            res.on("data", (c) => parts.push(c));
            res.on("end", () => resolve({ status: res.statusCode,
                                          body: Buffer.concat(parts) }));
            res.on("error", reject);
        }).on("error", reject);
    });
}

// The bot's handlers: plain grammY code; apiRoot and token are the bot's own.
function install(bot, apiRoot, token) {
    bot.on("message:text", async (ctx) => {
        const text = ctx.message.text;
        const chat = ctx.chat.id;
        const uid = ctx.update.update_id;
        let m;
        if ((m = /^upload (\d+)$/.exec(text))) {
            const data = pattern(Number(m[1]));
            try {
                const msg = await ctx.replyWithDocument(new InputFile(data, "upload.bin"));
                report({ event: "upload", update_id: uid, size: data.length,
                         sha256: sha256(data), file_id: msg.document.file_id });
            } catch (e) {
                report({ event: "upload_error", update_id: uid, ...errorFields(e) });
            }
        } else if ((m = /^download (\S+)$/.exec(text))) {
            try {
                const f = await ctx.api.getFile(m[1]);
                const r = await download(apiRoot + "/file/bot" + token + "/" + f.file_path);
                report({ event: "download", update_id: uid, status: r.status,
                         size: r.body.length, sha256: sha256(r.body),
                         file_size: f.file_size });
            } catch (e) {
                report({ event: "download_error", update_id: uid, ...errorFields(e) });
            }
        } else if (text === "nochat") {
            try {
                await ctx.api.raw.sendMessage({ text: "to nobody" });
                report({ event: "nochat_sent", update_id: uid });
            } catch (e) {
                report({ event: "error", update_id: uid, ...errorFields(e) });
            }
        } else {
            await ctx.api.sendMessage(chat, text);
        }
    });
}

module.exports = { report, pattern, sha256, install, errorFields };
