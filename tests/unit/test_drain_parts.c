/* Unit tests for drain/ratelimit.c and drain/calls.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "check.h"
#include "drain.h"

/* A call to chat sent and answered at t. */
static void
call_at(struct ratelimit *rl, const char *chat, int64_t t)
{
	ratelimit_answered(rl, chat, ratelimit_sent(rl, t), t);
}

static void
test_ratelimit(void)
{
	struct ratelimit	*rl = ratelimit_new(3, 1, 2);
	int64_t			 t = 1000000;
	int			 i;

	CHECK("ratelimit_new", rl != NULL);
	if (rl == NULL)
		return;
	CHECK("ratelimit_first_free", ratelimit_wait(rl, "42", t) == 0);
	call_at(rl, "42", t);
	CHECK("ratelimit_chat_waits_a_second", ratelimit_wait(rl, "42", t) == 1000);
	CHECK("ratelimit_chat_partly_waited", ratelimit_wait(rl, "42", t + 400) == 600);
	CHECK("ratelimit_chat_free_after_window", ratelimit_wait(rl, "42", t + 1000) == 0);
	CHECK("ratelimit_other_chat_free", ratelimit_wait(rl, "43", t) == 0);
	call_at(rl, "43", t + 10);
	call_at(rl, "44", t + 20);
	/* Three calls within the second: the bot's window is full. */
	CHECK("ratelimit_global_full", ratelimit_wait(rl, "45", t + 30) == 970);
	CHECK("ratelimit_global_slides", ratelimit_wait(rl, "45", t + 1000) == 0 &&
	    ratelimit_wait(rl, "45", t + 1005) == 0);
	/* A call counts from its answer, however long it took; while it is on its
	 * way it holds its place. */
	{
		int64_t slot = ratelimit_sent(rl, t + 1100);
		int64_t s2 = ratelimit_sent(rl, t + 1101);
		int64_t s3 = ratelimit_sent(rl, t + 1102);

		/* Three on their way fill the window of three, however long ago
		 * they left. */
		CHECK("ratelimit_in_flight_holds_place", ratelimit_wait(rl, "47",
		    t + 2300) == RATELIMIT_UNTIL_ANSWER);
		ratelimit_answered(rl, "46", slot, t + 1900);
		ratelimit_answered(rl, NULL, s2, t + 1900);
		ratelimit_answered(rl, NULL, s3, t + 1900);
		CHECK("ratelimit_answer_frees_place_a_second_later",
		    ratelimit_wait(rl, "47", t + 2300) == 600);
	}
	CHECK("ratelimit_chat_counts_from_answer", ratelimit_wait(rl, "46", t + 2100) ==
	    800);
	/* A group (negative id): 2 a minute, and 1 a second. */
	call_at(rl, "-100", t + 3000);
	call_at(rl, "-100", t + 4000);
	CHECK("ratelimit_group_minute", ratelimit_wait(rl, "-100", t + 5000) ==
	    60000 - 2000);
	call_at(rl, "7", t + 6000);
	call_at(rl, "7", t + 7000);
	call_at(rl, "7", t + 8000);
	CHECK("ratelimit_private_chat_no_minute_limit",
	    ratelimit_wait(rl, "7", t + 9100) == 0);
	ratelimit_pause(rl, "8", t + 19000);
	CHECK("ratelimit_pause_chat", ratelimit_wait(rl, "8", t + 14000) == 5000 &&
	    ratelimit_wait(rl, "9", t + 14000) == 0);
	ratelimit_pause(rl, NULL, t + 30000);
	CHECK("ratelimit_pause_bot", ratelimit_wait(rl, "9", t + 20000) == 10000 &&
	    ratelimit_wait(rl, NULL, t + 20000) == 10000);
	CHECK("ratelimit_no_chat_global_only", ratelimit_wait(rl, "", t + 30000) == 0);
	/* Idle chats are forgotten: memory follows the active chats. */
	for (i = 0; i < 5000; i++) {
		char key[32];

		snprintf(key, sizeof(key), "%d", 100000 + i);
		call_at(rl, key, t + 40000);
	}
	CHECK("ratelimit_remembers_active", ratelimit_chats(rl) >= 5000);
	call_at(rl, "1", t + 200000);
	CHECK("ratelimit_forgets_idle", ratelimit_chats(rl) < 10);
	ratelimit_free(rl);

	rl = ratelimit_new(0, 0, 0);
	for (i = 0; i < 100; i++)
		call_at(rl, "42", t);
	CHECK("ratelimit_off", ratelimit_wait(rl, "42", t) == 0);
	ratelimit_free(rl);
}

static int
parse(sqlite3 *db, const char *out, struct call_list *l, char *err, size_t errlen)
{
	return calls_parse(db, out, strlen(out), l, err, errlen);
}

static void
test_calls(sqlite3 *db)
{
	struct call_list	 l;
	sqlite3_stmt		*echo = NULL;
	char			 err[256], *many;
	const char		*big;
	size_t			 i;

	CHECK("calls_two_lines", parse(db, "{\"method\":\"sendMessage\",\"chat_id\":5,"
	    "\"text\":\"a\"}\n\n  \r\n{\"method\":\"sendPhoto\",\"chat_id\":\"@chan\","
	    "\"photo\":\"x\"}\r\n", &l, err, sizeof(err)) == 0 && l.n == 2 &&
	    strcmp(l.calls[0].method, "sendMessage") == 0 &&
	    l.calls[0].chat_is_int && l.calls[0].chat_int == 5 &&
	    strcmp(l.calls[0].params, "{\"chat_id\":5,\"text\":\"a\"}") == 0 &&
	    !l.calls[1].chat_is_int && strcmp(l.calls[1].chat, "@chan") == 0);
	calls_free(&l);
	CHECK("calls_empty_output", parse(db, "", &l, err, sizeof(err)) == 0 &&
	    l.n == 0);
	/* A last line of blanks with no newline and nothing after it (the fuzzer's
	 * find: the blank check read past the output). */
	many = malloc(2);
	memcpy(many, " \t", 2);
	CHECK("calls_blank_last_line_exact", calls_parse(db, many, 2, &l, err,
	    sizeof(err)) == 0 && l.n == 0);
	free(many);
	CHECK("calls_no_chat", parse(db, "{\"method\":\"answerCallbackQuery\","
	    "\"callback_query_id\":\"1\"}", &l, err, sizeof(err)) == 0 && l.n == 1 &&
	    l.calls[0].chat[0] == '\0');
	calls_free(&l);
	CHECK("calls_rejects_garbage", parse(db, "{\"method\":\"sendMessage\"}\n"
	    "hello\n", &l, err, sizeof(err)) == -1 &&
	    strcmp(err, "handler output line 2: not a JSON object") == 0);
	CHECK("calls_rejects_array", parse(db, "[1]", &l, err, sizeof(err)) == -1);
	CHECK("calls_rejects_no_method", parse(db, "{\"chat_id\":1}", &l, err,
	    sizeof(err)) == -1 && strstr(err, "method") != NULL);
	CHECK("calls_rejects_method_path", parse(db,
	    "{\"method\":\"../getMe\",\"chat_id\":1}", &l, err, sizeof(err)) == -1);
	CHECK("calls_rejects_method_number", parse(db, "{\"method\":5}", &l, err,
	    sizeof(err)) == -1);
	CHECK("calls_rejects_float_chat", parse(db,
	    "{\"method\":\"sendMessage\",\"chat_id\":1.5}", &l, err, sizeof(err)) == -1);
	CHECK("calls_rejects_broken_utf8", parse(db, "{\"method\":\"sendMessage\","
	    "\"chat_id\":1,\"text\":\"a\xed\xa0\x80\"}", &l, err,
	    sizeof(err)) == -1 && strcmp(err,
	    "handler output line 1: not valid UTF-8") == 0);
	CHECK("calls_replace_lone_surrogate", parse(db,
	    "{\"method\":\"sendMessage\",\"chat_id\":1,\"text\":\"\\ud800\"}", &l,
	    err, sizeof(err)) == 0 && l.n == 1 &&
	    strcmp(l.calls[0].params, "{\"chat_id\":1,\"text\":\"\\ufffd\"}") == 0);
	calls_free(&l);
	CHECK("calls_rejects_nul", calls_parse(db, "{\"method\":\"a\"}\0x", 16, &l, err,
	    sizeof(err)) == -1 && strstr(err, "NUL") != NULL);
	many = malloc(200 * 40);
	many[0] = '\0';
	for (i = 0; i < 101; i++)
		strncat(many, "{\"method\":\"sendMessage\",\"chat_id\":1}\n", 40);
	CHECK("calls_rejects_too_many", parse(db, many, &l, err, sizeof(err)) == -1 &&
	    strstr(err, "more than 100") != NULL);
	free(many);

	big = "{\"update_id\":1,\"message\":{\"chat\":{\"id\":-77},\"text\":"
	    "\"hi \\\"there\\\" \xf0\x9f\x98\x80\"}}";
	CHECK("echo_text", calls_echo(db, &echo, big, strlen(big), &l, err,
	    sizeof(err)) == 0 && l.n == 1 &&
	    strcmp(l.calls[0].method, "sendMessage") == 0 && l.calls[0].chat_int == -77 &&
	    strcmp(l.calls[0].params, "{\"chat_id\":-77,\"text\":\"hi \\\"there\\\" "
	    "\xf0\x9f\x98\x80\"}") == 0);
	calls_free(&l);
	/* A lone surrogate is sent as U+FFFD, escaped: decoded, it is not UTF-8. */
	big = "{\"update_id\":1,\"message\":{\"chat\":{\"id\":3},\"text\":"
	    "\"a\\ud800b\\u00e9\"}}";
	CHECK("echo_lone_surrogate_replaced", calls_echo(db, &echo, big,
	    strlen(big), &l, err, sizeof(err)) == 0 && l.n == 1 &&
	    utf8_valid(l.calls[0].params, strlen(l.calls[0].params)) &&
	    strcmp(l.calls[0].params,
	    "{\"chat_id\":3,\"text\":\"a\\ufffdb\\u00e9\"}") == 0);
	calls_free(&l);
	big = "{\"update_id\":1,\"message\":{\"chat\":{\"id\":1},\"sticker\":{}}}";
	CHECK("echo_not_text", calls_echo(db, &echo, big, strlen(big), &l, err,
	    sizeof(err)) == 0 && l.n == 0);
	big = "{\"update_id\":1,\"callback_query\":{\"id\":\"x\"}}";
	CHECK("echo_callback_query", calls_echo(db, &echo, big, strlen(big), &l, err,
	    sizeof(err)) == 0 && l.n == 0);
	sqlite3_finalize(echo);
}

static void
test_answers(void)
{
	struct botapi_parser	*p;
	struct botapi_answer	 a;
	char			 err[128];

#define ANSWER(s) botapi_classify(p, 1, "", 200, (s), strlen(s), &a)
	if (botapi_parser_new(&p, err, sizeof(err)) == -1) {
		CHECK("botapi_parser_new", 0);
		return;
	}
	ANSWER("{\"ok\":true,\"result\":{\"message_id\":5}}");
	CHECK("answer_ok", a.outcome == BOTAPI_OK &&
	    strcmp(a.result, "{\"message_id\":5}") == 0);
	botapi_answer_free(&a);
	ANSWER("{\"ok\":true,\"result\":true}");
	CHECK("answer_ok_true", a.outcome == BOTAPI_OK && strcmp(a.result, "true") == 0);
	botapi_answer_free(&a);
	ANSWER("{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: "
	    "retry after 7\",\"parameters\":{\"retry_after\":7}}");
	CHECK("answer_429", a.outcome == BOTAPI_RETRY_AFTER && a.retry_after_s == 7);
	ANSWER("{\"ok\":false,\"error_code\":429,\"description\":\"x\"}");
	CHECK("answer_429_without_retry_after", a.outcome == BOTAPI_RETRY_AFTER &&
	    a.retry_after_s == 1);
	ANSWER("{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: group "
	    "chat was upgraded to a supergroup chat\",\"parameters\":"
	    "{\"migrate_to_chat_id\":-1001234}}");
	CHECK("answer_migrate", a.outcome == BOTAPI_MIGRATE &&
	    a.migrate_to_chat_id == -1001234);
	ANSWER("{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was "
	    "blocked by the user\"}");
	CHECK("answer_403_rejected", a.outcome == BOTAPI_REJECTED &&
	    strcmp(a.description, "Forbidden: bot was blocked by the user") == 0);
	ANSWER("{\"ok\":false,\"error_code\":500,\"description\":\"Internal\"}");
	CHECK("answer_500_transient", a.outcome == BOTAPI_TRANSIENT);
	botapi_classify(p, 1, "", 502, "<html>bad gateway</html>", 24, &a);
	CHECK("answer_html_transient", a.outcome == BOTAPI_TRANSIENT &&
	    strstr(a.description, "502") != NULL);
	ANSWER("{\"ok\":\"yes\"}");
	CHECK("answer_ok_not_bool", a.outcome == BOTAPI_TRANSIENT);
	ANSWER("[]");
	CHECK("answer_array", a.outcome == BOTAPI_TRANSIENT);
	botapi_classify(p, 0, "Connection refused", 0, "", 0, &a);
	CHECK("answer_network", a.outcome == BOTAPI_TRANSIENT &&
	    strcmp(a.description, "network: Connection refused") == 0);
	botapi_parser_free(p);
}

/* The configured value chooses the kind, and each kind handles an update one
 * of the two ways (in the claim's transaction, or as a run). */
static void
test_handler_kinds(sqlite3 *db)
{
	struct bot_handler	 h;
	struct call_list	 calls;
	struct claimed		 c;
	char			 err[256], body[] = "{\"update_id\":7,\"message\":"
	    "{\"chat\":{\"id\":42},\"text\":\"hi\"}}";

	CHECK("kind_default_echo", bot_handler_setup(&h, "b", NULL, err,
	    sizeof(err)) == 0 && h.kind == HANDLER_KIND_ECHO &&
	    h.ops->handle != NULL && h.ops->start == NULL);
	memset(&c, 0, sizeof(c));
	c.body = body;
	c.body_len = strlen(body);
	CHECK("kind_echo_handles", h.ops->handle(h.state, db, &c, &calls, err,
	    sizeof(err)) == 0 && calls.n == 1 &&
	    strcmp(calls.calls[0].method, "sendMessage") == 0);
	calls_free(&calls);
	bot_handler_release(&h);
	CHECK("kind_echo_exact", bot_handler_setup(&h, "b", "echoes", err,
	    sizeof(err)) == -1 && strstr(err, "handler must be echo,") != NULL);
	bot_handler_release(&h);
	CHECK("kind_exec", bot_handler_setup(&h, "b", "exec: /bin/cat  -u\t-", err,
	    sizeof(err)) == 0 && h.kind == HANDLER_KIND_EXEC &&
	    h.ops->handle == NULL && h.ops->start != NULL);
	bot_handler_release(&h);
	CHECK("kind_exec_relative", bot_handler_setup(&h, "b", "exec:cat", err,
	    sizeof(err)) == -1 && strstr(err, "absolute") != NULL);
	bot_handler_release(&h);
	CHECK("kind_exec_empty", bot_handler_setup(&h, "b", "exec: ", err,
	    sizeof(err)) == -1 && strstr(err, "absolute") != NULL);
	bot_handler_release(&h);
	CHECK("kind_http", bot_handler_setup(&h, "b", "http://127.0.0.1:8080/hook",
	    err, sizeof(err)) == 0 && h.kind == HANDLER_KIND_HTTP &&
	    h.ops->handle == NULL && h.ops->start != NULL && h.ops->attach != NULL);
	bot_handler_release(&h);
	CHECK("kind_https", bot_handler_setup(&h, "b", "https://bot.example/hook",
	    err, sizeof(err)) == 0 && h.kind == HANDLER_KIND_HTTPS);
	bot_handler_release(&h);
	CHECK("kind_unknown", bot_handler_setup(&h, "b", "ftp:x", err,
	    sizeof(err)) == -1 && h.ops == NULL);
}

/* Every backoff stays within +-25% of 1, 2, 4 ... s, capped at 300 s. */
static void
test_backoff(void)
{
	int64_t	 failures, base, b;
	int	 i, inside = 1, zero_first = 1;

	for (failures = 1, base = 1; failures <= 20; failures++) {
		for (i = 0; i < 200; i++) {
			b = retry_backoff_s(failures);
			if (b < base * 3 / 4 || b > base * 3 / 4 + base / 2)
				inside = 0;
			if (failures == 1 && b != 0)
				zero_first = 0;
		}
		base = base * 2 > 300 ? 300 : base * 2;
	}
	CHECK("backoff_bounds", inside);
	CHECK("backoff_first_at_once", zero_first);
}

/* Runs gate_check on one update body for a bot with the given list. */
static int
gate(sqlite3 *db, sqlite3_stmt **st, struct bot_config *bot, const char *body,
    struct call_list *deny, char *why, size_t whylen)
{
	struct claimed c;

	memset(&c, 0, sizeof(c));
	snprintf(c.bot, sizeof(c.bot), "a");
	c.body = (char *)body;
	c.body_len = strlen(body);
	return gate_check(db, st, bot, &c, deny, why, whylen);
}

/* The sender of every kind of update, and what a refused one gets. */
static void
test_gate(sqlite3 *db)
{
	static const struct {
		const char	*name, *body;
		int		 want;
		const char	*why;
	} cases[] = {
		{ "message", "{\"update_id\":1,\"message\":{\"chat\":{\"id\":5},"
		    "\"from\":{\"id\":42},\"text\":\"hi\"}}", 1, NULL },
		{ "message_other", "{\"update_id\":1,\"message\":{\"chat\":{\"id\":"
		    "-5},\"from\":{\"id\":43},\"text\":\"hi\"}}", 0,
		    "skipped: user 43 is not allowed" },
		{ "edited_message", "{\"update_id\":1,\"edited_message\":{\"chat\":"
		    "{\"id\":5},\"from\":{\"id\":43}}}", 0,
		    "skipped: user 43 is not allowed" },
		{ "callback_query", "{\"callback_query\":{\"id\":\"x\",\"from\":"
		    "{\"id\":42},\"message\":{\"chat\":{\"id\":5},\"from\":"
		    "{\"id\":99}}},\"update_id\":1}", 1, NULL },
		{ "inline_query", "{\"update_id\":1,\"inline_query\":{\"id\":\"q\","
		    "\"from\":{\"id\":44},\"query\":\"\"}}", 0,
		    "skipped: user 44 is not allowed" },
		{ "poll_answer_user", "{\"update_id\":1,\"poll_answer\":{\"poll_id\":"
		    "\"p\",\"user\":{\"id\":42},\"option_ids\":[0]}}", 1, NULL },
		{ "poll_answer_anonymous", "{\"update_id\":1,\"poll_answer\":{"
		    "\"poll_id\":\"p\",\"voter_chat\":{\"id\":-7},"
		    "\"option_ids\":[0]}}", 0, "skipped: poll_answer has no sender" },
		{ "message_reaction", "{\"update_id\":1,\"message_reaction\":{"
		    "\"chat\":{\"id\":5},\"user\":{\"id\":45}}}", 0,
		    "skipped: user 45 is not allowed" },
		{ "chat_member", "{\"update_id\":1,\"chat_member\":{\"chat\":"
		    "{\"id\":-5},\"from\":{\"id\":42},\"new_chat_member\":"
		    "{\"user\":{\"id\":46}}}}", 1, NULL },
		{ "channel_post", "{\"update_id\":1,\"channel_post\":{\"chat\":"
		    "{\"id\":-100},\"sender_chat\":{\"id\":-100},\"text\":\"n\"}}",
		    0, "skipped: channel_post has no sender" },
		{ "from_not_a_number", "{\"update_id\":1,\"message\":{\"chat\":"
		    "{\"id\":5},\"from\":{\"id\":\"42\"}}}", 0,
		    "skipped: message has no sender" },
		{ "odd_kind_name", "{\"update_id\":1,\"Odd Kind\":{\"from\":{}}}", 0,
		    "skipped: an update has no sender" },
		{ "no_object", "{\"update_id\":1}", 0,
		    "skipped: an update with no sender" },
		{ "not_json", "{\"update_id\":1,", 0,
		    "skipped: an update with no sender" },
	};
	struct bot_config	 bot;
	struct call_list	 deny;
	sqlite3_stmt		*st = NULL;
	char			 why[256], label[64];
	size_t			 i;
	int			 rc;

	memset(&bot, 0, sizeof(bot));
	CHECK("gate_everyone", gate(db, &st, &bot, "{\"update_id\":1}", &deny, why,
	    sizeof(why)) == 1 && deny.n == 0);
	CHECK("gate_list_parses", user_list_parse("42, 7", &bot.allowed_users, why,
	    sizeof(why)) == 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		rc = gate(db, &st, &bot, cases[i].body, &deny, why, sizeof(why));
		snprintf(label, sizeof(label), "gate_%s", cases[i].name);
		CHECK(label, rc == cases[i].want && deny.n == 0 && (cases[i].why ==
		    NULL || strncmp(why, cases[i].why, strlen(cases[i].why)) == 0));
		if (rc != cases[i].want || (cases[i].why != NULL && strncmp(why,
		    cases[i].why, strlen(cases[i].why)) != 0))
			printf("  (got %d: %s)\n", rc, why);
		calls_free(&deny);
	}
	/* deny_text answers a message, in its chat, escaped as JSON; nothing else. */
	bot.deny_text = "no \"entry\" \xe2\x9b\x94";
	rc = gate(db, &st, &bot, cases[1].body, &deny, why, sizeof(why));
	CHECK("gate_deny_text_message", rc == 0 && deny.n == 1 &&
	    strcmp(deny.calls[0].method, "sendMessage") == 0 &&
	    deny.calls[0].chat_is_int && deny.calls[0].chat_int == -5 &&
	    strcmp(deny.calls[0].params, "{\"chat_id\":-5,\"text\":"
	    "\"no \\\"entry\\\" \xe2\x9b\x94\"}") == 0);
	calls_free(&deny);
	rc = gate(db, &st, &bot, cases[2].body, &deny, why, sizeof(why));
	CHECK("gate_deny_text_not_edited_message", rc == 0 && deny.n == 0);
	calls_free(&deny);
	rc = gate(db, &st, &bot, cases[0].body, &deny, why, sizeof(why));
	CHECK("gate_deny_text_listed_user", rc == 1 && deny.n == 0);
	user_list_free(&bot.allowed_users);
	sqlite3_finalize(st);
}

static int
reply(sqlite3 *db, const char *body, struct call_list *l, char *err, size_t errlen)
{
	return calls_reply(db, body, strlen(body), l, err, errlen);
}

/* An http handler's answer: a webhook reply is one call, whatever its layout;
 * any other body asks for nothing; a reply with a bad method is an error. */
static void
test_calls_reply(sqlite3 *db)
{
	struct call_list	 l;
	char			 err[256];

	CHECK("reply_multiline", reply(db, "{\r\n  \"method\": \"sendMessage\",\n"
	    "  \"chat_id\": 7,\n  \"text\": \"a\\nb\"\n}\n", &l, err,
	    sizeof(err)) == 0 && l.n == 1 &&
	    strcmp(l.calls[0].method, "sendMessage") == 0 && l.calls[0].chat_int == 7 &&
	    strcmp(l.calls[0].params, "{\"chat_id\":7,\"text\":\"a\\nb\"}") == 0);
	calls_free(&l);
	CHECK("reply_empty_body", reply(db, "", &l, err, sizeof(err)) == 0 &&
	    l.n == 0);
	CHECK("reply_not_json", reply(db, "OK", &l, err, sizeof(err)) == 0 &&
	    l.n == 0);
	CHECK("reply_no_method", reply(db, "{\"ok\":true,\"note\":\"method\"}", &l,
	    err, sizeof(err)) == 0 && l.n == 0);
	CHECK("reply_array", reply(db, "[{\"method\":\"sendMessage\"}]", &l, err,
	    sizeof(err)) == 0 && l.n == 0);
	CHECK("reply_bad_method", reply(db, "{\"method\":\"send message\"}", &l, err,
	    sizeof(err)) == -1 && strstr(err, "name of letters") != NULL);
	CHECK("reply_method_not_text", reply(db, "{\"method\":5}", &l, err,
	    sizeof(err)) == -1);
}

int
main(void)
{
	sqlite3 *db;

	log_init("test_drain_parts", LOG_LVL_ERR);
	test_ratelimit();
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		return 2;
	test_calls(db);
	test_calls_reply(db);
	test_handler_kinds(db);
	test_gate(db);
	sqlite3_close(db);
	test_backoff();
	test_answers();
	return check_exit();
}
