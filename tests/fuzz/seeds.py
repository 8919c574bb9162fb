#!/usr/bin/python3
"""Writes the hand-made seeds of tests/fuzz/corpus/<target>/ (seed-*): real
Telegram updates, Bot API answers, handler outputs, tgq.conf files and requests,
in each target's input layout (see the fuzz_<target>.c headers).  The rest of each
corpus is what the fuzzers found, minimized with -merge=1.

    /usr/bin/python3 tests/fuzz/seeds.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CANARY = "CANARY_SECRET_1234567890"
SECRET = "s3cr3t_Default-0123456789abcdef"
SECRET_SHOP = "Shop_secret-9876543210zyxw"

USER = {"id": 123456789, "is_bot": False, "first_name": "Zoë", "last_name": "Ω",
        "username": "zoe_t", "language_code": "de", "is_premium": True}
CHAT = {"id": 123456789, "first_name": "Zoë", "username": "zoe_t", "type": "private"}
GROUP = {"id": -1001234567890, "title": "Fuzz \u2603 group", "type": "supergroup"}


def msg(mid, text, chat=CHAT, **extra):
    m = {"message_id": mid, "from": USER, "chat": chat, "date": 1700000000,
         "text": text}
    m.update(extra)
    return m


def deep_reply(depth):
    m = msg(1, "root")
    for i in range(depth):
        m = msg(i + 2, "re %d" % i, reply_to_message=m)
    return m


UPDATES = {
    "message": {"update_id": 815000001, "message": msg(
        17, "/start hello 👋 @zoe_t https://t.me/x", entities=[
            {"offset": 0, "length": 6, "type": "bot_command"},
            {"offset": 16, "length": 6, "type": "mention"},
            {"offset": 23, "length": 12, "type": "url"}])},
    "emoji": {"update_id": 815000002, "message": msg(
        18, "🇩🇪 😀 \u200d e\u0301 \\\"quoted\\\" \t tab", chat=GROUP,
        entities=[{"offset": 0, "length": 4, "type": "custom_emoji",
                   "custom_emoji_id": "5368324170671202286"}])},
    "callback_query": {"update_id": 815000003, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "from": USER, "chat_instance": "-8827362",
        "data": "vote:42", "message": msg(19, "Pick one", reply_markup={
            "inline_keyboard": [[{"text": "A", "callback_data": "vote:42"}]]})}},
    "inline_query": {"update_id": 815000004, "inline_query": {
        "id": "1234567890", "from": USER, "query": "cats", "offset": "",
        "chat_type": "sender"}},
    "edited_message": {"update_id": 815000005, "edited_message": msg(
        20, "edited text", edit_date=1700000100)},
    "my_chat_member": {"update_id": 815000006, "my_chat_member": {
        "chat": GROUP, "from": USER, "date": 1700000200,
        "old_chat_member": {"user": USER, "status": "member"},
        "new_chat_member": {"user": USER, "status": "kicked",
                            "until_date": 0}}},
    "channel_post": {"update_id": 815000007, "channel_post": {
        "message_id": 5, "sender_chat": {"id": -100987, "title": "ch",
                                         "type": "channel"},
        "chat": {"id": -100987, "title": "ch", "type": "channel"},
        "date": 1700000300, "text": "post"}},
    "photo": {"update_id": 815000008, "message": msg(21, None, photo=[
        {"file_id": "AgACAgIAAxkBAAI", "file_unique_id": "AQAD", "width": 90,
         "height": 67, "file_size": 1234}], caption="pic")},
    "reply_deep": {"update_id": 815000009, "message": deep_reply(12)},
    "no_kind": {"update_id": 0},
    "negative_id": {"update_id": -9223372036854775808, "poll": {
        "id": "5", "question": "?", "options": [], "is_closed": True}},
    "max_id": {"update_id": 9223372036854775807, "message": msg(1, "x")},
}
RAW_JSON = {
    "escaped_key": b'{"update_id":1,"mess\\u0061ge":{"chat":{"id":-5},"text":"\\ud83d\\ude00"}}',
    "bad_dup_id": b'{"update_id":1,"update_id":2}',
    "bad_float_id": b'{"update_id":1.5,"message":{}}',
    "bad_exp_id": b'{"update_id":1e3}',
    "bad_big_id": b'{"update_id":9223372036854775808}',
    "bad_utf8": b'{"update_id":1,"message":{"text":"\xc3\x28 \xed\xa0\x80"}}',
    "bad_lone_surrogate": b'{"update_id":1,"message":{"text":"\\ud800"}}',
    "bad_trailing": b'{"update_id":1} x',
    "bad_array": b'[{"update_id":1}]',
    "bad_nesting": b'{"update_id":1,"a":' + b'[' * 120 + b']' * 120 + b'}',
    "nested_99": b'{"update_id":1,"a":' + b'[' * 98 + b']' * 98 + b'}',
    "bad_control": b'{"update_id":1,"message":{"text":"a\x01b"}}',
    "bad_leading_zero": b'{"update_id":01}',
    "ws": b' \r\n\t{ "update_id" : 7 , "message" : { "chat" : { "id" : 3 } } } \n',
    "empty": b'',
}


def update_bytes():
    out = {}
    for name, u in UPDATES.items():
        out[name] = json.dumps(u, ensure_ascii=False, separators=(",", ":")).encode()
    out.update(RAW_JSON)
    return out


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def json_seeds():
    for name, body in update_bytes().items():
        write("json", name, bytes([100 + 4, 127]) + body)
    write("json", "depth5_short_err", bytes([5 + 4, 9]) + RAW_JSON["nested_99"])
    write("json", "depth0", bytes([4, 127]) + b'{"update_id":1}')


def request(flags, params, body=b"", flags2=0x3f):
    out = bytes([flags, flags2])
    for k, v in params:
        out += ("%s=%s" % (k, v)).encode() + b"\0"
    return out + b"\0" + body


def post(path, body, secret=SECRET, ctype="application/json", length=None,
         extra=(), via="PATH_INFO"):
    p = [("REQUEST_METHOD", "POST")]
    if via == "PATH_INFO":
        p += [("SCRIPT_NAME", "/tg"), ("PATH_INFO", path)]
    else:
        p += [("REQUEST_URI", path + "?x=1")]
    if secret is not None:
        p.append(("HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN", secret))
    if ctype is not None:
        p.append(("CONTENT_TYPE", ctype))
    if length != "none":
        p.append(("CONTENT_LENGTH", str(len(body)) if length is None else length))
    p.append(("REMOTE_ADDR", "149.154.167.197"))
    p += list(extra)
    return p


def request_seeds():
    ups = update_bytes()
    good = ups["message"]
    for name in ("message", "callback_query", "edited_message", "my_chat_member",
                 "reply_deep", "escaped_key"):
        write("request", "ok_" + name, request(0, post("/webhook", ups[name]), ups[name]))
    write("request", "ok_uri_only", request(0, post("/tg/webhook", good, via="uri"), good))
    write("request", "ok_shop_header", request(4, post("/webhook", good, secret=SECRET_SHOP), good))
    write("request", "path_secret", request(0, post("/webhook/" + SECRET, good, secret=None), good))
    write("request", "path_bot_name", request(0, post("/webhook/shop", good, secret=SECRET_SHOP), good))
    write("request", "path_nosecret_bot", request(0, post("/webhook/nosecret", good, secret="x"), good))
    write("request", "path_and_header_disagree", request(0, post("/webhook/" + SECRET, good, secret=SECRET_SHOP), good))
    write("request", "wrong_secret", request(0, post("/webhook", good, secret=SECRET[:-1] + "X"), good))
    write("request", "no_secret", request(0, post("/webhook", good, secret=None), good))
    write("request", "bad_length", request(0, post("/webhook", good, length="12x"), good))
    write("request", "length_huge", request(0, post("/webhook", good, length="99999999999999999999"), good))
    write("request", "length_over", request(0, post("/webhook", good, length="65537"), good))
    write("request", "chunked_no_length", request(0, post("/webhook", good, length="none",
          extra=[("HTTP_TRANSFER_ENCODING", "chunked")]), b"5\r\nhello\r\n0\r\n\r\n"))
    write("request", "short_body", request(0x40, post("/webhook", good, length=str(len(good) + 10)), good, flags2=0x43))
    write("request", "bad_type", request(0, post("/webhook", good, ctype="text/plain"), good))
    write("request", "type_params", request(0, post("/webhook", good, ctype=" Application/JSON ; charset=utf-8"), good))
    write("request", "bad_json", request(0, post("/webhook", RAW_JSON["bad_dup_id"]), RAW_JSON["bad_dup_id"]))
    write("request", "busy", request(2, post("/webhook", good), good, flags2=0x01))
    write("request", "unavailable", request(3, post("/webhook", good), good))
    write("request", "ips_allowed", request(0x20, post("/webhook", good), good))
    write("request", "ips_xff", request(0x20, post("/webhook", good, extra=[]) [:-1] + [
        ("REMOTE_ADDR", "127.0.0.1"), ("HTTP_X_FORWARDED_FOR", "1.2.3.4, 91.108.6.1 , 10.0.0.7")], good))
    write("request", "ips_denied", request(0x20, post("/webhook", good)[:-1] + [("REMOTE_ADDR", "::ffff:8.8.8.8")], good))
    write("request", "ips_v6", request(0x20, post("/webhook", good)[:-1] + [("REMOTE_ADDR", "2001:db8::1")], good))
    for m, flags in (("GET", 0), ("HEAD", 0), ("GET", 0x18), ("POST", 0)):
        write("request", "health_%s_%d" % (m, flags), request(flags, [
            ("REQUEST_METHOD", m), ("REQUEST_URI", "/tg/health")]))
    write("request", "metrics_get", request(0, [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/metrics")]))
    write("request", "metrics_fail_head", request(0x40, [("REQUEST_METHOD", "HEAD"), ("PATH_INFO", "/x/metrics/")]))
    write("request", "get_webhook", request(0, [("REQUEST_METHOD", "GET"), ("PATH_INFO", "//webhook//")]))
    write("request", "not_found", request(0, [("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/webhookx")]))
    write("request", "no_params", request(0, []))


def answer(status, body, ok=1):
    return bytes([ok]) + struct.pack(">H", status) + body


MESSAGE = {"message_id": 42, "from": {"id": 777, "is_bot": True, "first_name": "tgq",
           "username": "tgq_bot"}, "chat": CHAT, "date": 1700000000, "text": "hi 👋"}


def answer_seeds():
    j = lambda o: json.dumps(o, ensure_ascii=False).encode()
    write("answer", "ok_message", answer(200, j({"ok": True, "result": MESSAGE})))
    write("answer", "ok_true", answer(200, j({"ok": True, "result": True, "description": "Webhook was set"})))
    write("answer", "ok_no_result", answer(200, b'{"ok":true}'))
    write("answer", "429", answer(429, j({"ok": False, "error_code": 429,
          "description": "Too Many Requests: retry after 35", "parameters": {"retry_after": 35}})))
    write("answer", "429_huge", answer(429, b'{"ok":false,"error_code":429,"parameters":{"retry_after":99999999999}}'))
    write("answer", "429_negative", answer(429, b'{"ok":false,"error_code":429,"parameters":{"retry_after":-3}}'))
    write("answer", "migrate", answer(400, j({"ok": False, "error_code": 400,
          "description": "Bad Request: group chat was upgraded to a supergroup chat",
          "parameters": {"migrate_to_chat_id": -1001234567890}})))
    write("answer", "403_blocked", answer(403, j({"ok": False, "error_code": 403,
          "description": "Forbidden: bot was blocked by the user"})))
    write("answer", "400_not_found", answer(400, j({"ok": False, "error_code": 400,
          "description": "Bad Request: chat not found"})))
    write("answer", "401", answer(401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}'))
    write("answer", "502_html", answer(502, b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
          b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"))
    write("answer", "500_json", answer(500, b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'))
    write("answer", "no_code", answer(409, b'{"ok":false,"description":"Conflict: terminated by other getUpdates request"}'))
    write("answer", "ok_string", answer(200, b'{"ok":"true","result":1}'))
    write("answer", "transport_fail", answer(0, b"", ok=0))
    write("answer", "array", answer(200, b'[{"ok":true}]'))
    write("answer", "empty", answer(200, b""))


def calls_seeds():
    lines = [
        {"method": "sendMessage", "chat_id": 123456789, "text": "hi 👋 " + CANARY},
        {"method": "sendMessage", "chat_id": "@channel", "text": "x", "parse_mode": "HTML",
         "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}},
        {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"},
        {"method": "sendChatAction", "chat_id": -1001234567890, "action": "typing"},
        {"method": "getMe"},
    ]
    j = lambda o: json.dumps(o, ensure_ascii=False).encode()
    write("calls", "several", b"\n".join(j(x) for x in lines) + b"\n")
    write("calls", "crlf_blank", b"\r\n  \t\n" + j(lines[0]) + b"\r\n\n")
    write("calls", "empty", b"")
    write("calls", "bad_method_digits", j({"method": "send1", "chat_id": 1, "text": CANARY}) + b"\n")
    write("calls", "bad_method_path", j({"method": "../x", "text": CANARY}))
    write("calls", "bad_not_json", b"sendMessage " + CANARY.encode() + b"\n")
    write("calls", "bad_array", b'[{"method":"getMe"}]')
    write("calls", "bad_chat_float", b'{"method":"sendMessage","chat_id":1.5,"text":"' + CANARY.encode() + b'"}')
    write("calls", "bad_chat_long", j({"method": "sendMessage", "chat_id": "@" + "c" * 70}))
    write("calls", "bad_nul", b'{"method":"getMe","x":"a\0' + CANARY.encode() + b'"}')
    write("calls", "dup_method", b'{"method":"getMe","method":"sendMessage","chat_id":5}')
    write("calls", "too_many", b'{"method":"getMe"}\n' * 101)
    write("calls", "method_long", j({"method": "a" * 70}))


CONFIGS = {
    "readme": """[tgq]
database = /nonexistent/queue.db
durability = full

[bot default]
secret_file = webhook-secret      ; relative: beside this file
token_file = bot-token
""",
    "full": """# tgq.conf(5)
[tgq]
database = /nonexistent/tgq/queue.db
durability = normal
max_body = 512K
busy_timeout = 5000
retry_after = 1m
threads = 4
log_level = debug
api_url = https://api.telegram.org
handlers = 4
handler_timeout = 10s
max_output = 1M
max_attempts = 5
max_in_flight = 16
send_timeout = 30s
lease = 60s
retain = 7d
allowed_ips = telegram, 192.0.2.0/24
trusted_proxies = 127.0.0.1 ::1

[bot default]
secret_file = webhook-secret
token_file = bot-token
webhook_url = https://bot.example.org/tg/webhook
handler = exec:/nonexistent/bin/handler --flag
rate_global = 30
rate_chat = 1
rate_group = 20

[bot shop]
secret_file = webhook-secret-shop
handler = echo
""",
    "secret_inline": "[bot default]\nsecret = %s\n" % CANARY,
    "token_inline": "[bot default]\ntoken: 123:%s\n" % CANARY,
    "bad_number": "[tgq]\nthreads = %s\n" % CANARY,
    "bad_durability": "[tgq]\ndurability = %s\n" % CANARY,
    "bad_log_level": "[tgq]\nlog_level = %s\n" % CANARY,
    "bad_url": "[bot default]\nwebhook_url = %s\n" % CANARY,
    "bad_secret_file": "[bot default]\nsecret_file = bad-secret\n",
    "bad_token_file": "[bot default]\ntoken_file = bad-token\n",
    "missing_file": "[bot x]\nsecret_file = /nonexistent/secret\n",
    "unknown_key": "[tgq]\nthreads = 4\nfoo = %s\n" % CANARY,
    "repeated": "[tgq]\nthreads = 4\nthreads = %s\n" % CANARY,
    "continuation": "[tgq]\ndatabase = /nonexistent/q.db\n  %s\n" % CANARY,
    "long_line": "[tgq]\napi_url = https://%s/%s\n" % (CANARY, "a" * 200),
    "bad_section": "[nope]\nx = %s\n" % CANARY,
    "bad_bot_name": "[bot Big]\nhandler = echo %s\n" % CANARY,
    "outside": "threads = %s\n" % CANARY,
    "lease_short": "[tgq]\nlease = 5s\nhandler_timeout = %s\n" % "10s",
    "bad_ips": "[tgq]\nallowed_ips = 10.0.0.0/33 %s\n" % CANARY,
    "empty_value": "[bot default]\nhandler =\n",
    "empty": "",
    "crlf_bom": "\ufeff[tgq]\r\nthreads = 2\r\n",
}


def config_seeds():
    for name, text in CONFIGS.items():
        write("config", name, text.encode())


def fcgi_record(rtype, content, request_id=1, padding=0):
    return struct.pack(">BBHHBB", 1, rtype, request_id, len(content), padding, 0) + \
        content + b"\0" * padding


def fcgi_request(request_id=1, role=1, body=b'{"update_id":1}'):
    """BEGIN_REQUEST, PARAMS, STDIN, each ended by its empty record (frame)."""
    pairs = b"\x0e\x04REQUEST_METHODPOST\x0e\x02CONTENT_LENGTH%02d" % len(body)
    return (fcgi_record(1, struct.pack(">HB5x", role, 1), request_id) +
            fcgi_record(4, pairs, request_id, padding=3) + fcgi_record(4, b"", request_id) +
            fcgi_record(5, body, request_id) + fcgi_record(5, b"", request_id))


def frame_seeds():
    whole = fcgi_request()
    write("frame", "whole", whole)
    write("frame", "half", whole[:len(whole) // 2])
    write("frame", "two_at_once", whole + fcgi_request(2))
    write("frame", "get_values_first",
          fcgi_record(9, b"\x0e\x00FCGI_MAX_CONNS", 0) + whole)
    write("frame", "authorizer", fcgi_request(role=2))
    write("frame", "abort", whole[:-8] + fcgi_record(2, b""))
    for name, data in overflowing_params().items():
        write("frame", name, data)


def fcgi_params_request(params, body=b'{"update_id":1}'):
    """BEGIN_REQUEST, the given PARAMS contents, STDIN: params is a list of
    record contents, sent as they are (a pair may be cut between two)."""
    out = fcgi_record(1, struct.pack(">HB5x", 1, 1))
    for content in params:
        out += fcgi_record(4, content)
    return (out + fcgi_record(4, b"") + fcgi_record(5, body) + fcgi_record(5, b""))


def overflowing_params():
    """Pairs whose lengths make libfcgi's nameLen + valueLen + 2 overflow an int:
    2^31 - 2 and 1, and 2^30 and 2^30; each alone, cut across two records, and
    in FCGI_GET_VALUES."""
    big = b"\xff\xff\xff\xfe\x01" + b"A" * 16
    halves = b"\xc0\x00\x00\x00\xc0\x00\x00\x00" + b"B" * 16
    return {
        "params_len_2p31_minus_2_plus_1": fcgi_params_request([big]),
        "params_len_2p30_plus_2p30": fcgi_params_request([halves]),
        "params_len_cut_across_records": fcgi_params_request(
            [b"\x0e\x04REQUEST_METHODPOST\xff\xff", b"\xff\xfe\x01xyz"]),
        "get_values_len_2p30_plus_2p30": fcgi_record(9, halves, 0),
    }


def fcgi_seeds():
    """Connections' bytes: requests as nginx sends them, management records
    before and within a request, and pairs whose lengths overflow (fcgi)."""
    whole = fcgi_request()
    query = b"".join(struct.pack(">BB", len(n), 0) + n for n in (
        b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS", b"FCGI_MAX_CONNS",
        b"OTHER"))
    write("fcgi", "whole", whole)
    write("fcgi", "half", whole[:len(whole) // 2])
    write("fcgi", "two_at_once", whole + fcgi_request(2))
    write("fcgi", "get_values_alone", fcgi_record(9, query, 0, padding=3))
    write("fcgi", "get_values_first", fcgi_record(9, query, 0) + whole)
    write("fcgi", "get_values_within", whole[:40] + fcgi_record(9, query, 0) +
          whole[40:])
    write("fcgi", "unknown_type", fcgi_record(42, b"\x01\x02", 0) + whole)
    write("fcgi", "get_values_result_sent", fcgi_record(10, query, 0))
    write("fcgi", "pair_cut_across_records", fcgi_params_request(
        [b"\x0e\x04REQUEST_", b"METHODPOST\x0e\x02CONT", b"ENT_LENGTH15"]))
    write("fcgi", "long_pair", fcgi_params_request(
        [b"\x80\x00\x00\x05\x80\x00\x01\x00HTTP_" + b"v" * 256]))
    write("fcgi", "body_in_records", fcgi_record(1, struct.pack(">HB5x", 1, 0)) +
          fcgi_record(4, b"\x01\x01ab", padding=4) + fcgi_record(4, b"") +
          fcgi_record(5, b"x" * 100, padding=4) + fcgi_record(5, b"y" * 900) +
          fcgi_record(5, b""))
    write("fcgi", "abort", whole[:-8] + fcgi_record(2, b""))
    write("fcgi", "too_large", fcgi_params_request([b"\x01\x7f" + b"z" * 128] * 30))
    for name, data in overflowing_params().items():
        write("fcgi", name, data)


def main():
    frame_seeds()
    fcgi_seeds()
    json_seeds()
    request_seeds()
    answer_seeds()
    calls_seeds()
    config_seeds()


if __name__ == "__main__":
    main()
