/*
 * Unit tests for json_scan_update.  Every input is copied into a heap buffer of
 * exactly its length, with no NUL after it, so a sanitizer or valgrind catches any
 * read past the end.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tgq.h"

/* A string literal and its length, NUL bytes inside it included. */
#define LIT(s) (s), (sizeof(s) - 1)

static int failures;

static void	fail_case(const char *, const char *, ...) TGQ_PRINTF(2, 3);

static void
fail_case(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("json_%s: FAIL ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failures++;
}

static void
pass_case(const char *name)
{
	printf("json_%s: ok\n", name);
}

static int
scan_copy(const char *text, size_t len, int max_depth, struct update_info *info,
    char *err, size_t errlen)
{
	char	*copy = malloc(len > 0 ? len : 1);
	int	 rc;

	if (copy == NULL) {
		perror("malloc");
		exit(2);
	}
	if (len > 0)
		memcpy(copy, text, len);
	rc = json_scan_update(copy, len, max_depth, info, err, errlen);
	free(copy);
	return rc;
}

static void
expect_update(const char *name, const char *text, size_t len, int max_depth,
    int64_t update_id, const char *kind, int has_chat_id, int64_t chat_id)
{
	struct update_info	 info;
	char			 err[128];

	if (scan_copy(text, len, max_depth, &info, err, sizeof(err)) != 0) {
		fail_case(name, "rejected: %s", err);
		return;
	}
	if (info.update_id != update_id)
		fail_case(name, "update_id %lld, want %lld",
		    (long long)info.update_id, (long long)update_id);
	else if (strcmp(info.kind, kind) != 0)
		fail_case(name, "kind \"%s\", want \"%s\"", info.kind, kind);
	else if (info.has_chat_id != has_chat_id)
		fail_case(name, "has_chat_id %d, want %d", info.has_chat_id,
		    has_chat_id);
	else if (has_chat_id && info.chat_id != chat_id)
		fail_case(name, "chat_id %lld, want %lld",
		    (long long)info.chat_id, (long long)chat_id);
	else
		pass_case(name);
}

static void
expect_valid(const char *name, const char *text, size_t len)
{
	expect_update(name, text, len, JSON_MAX_DEPTH, 1, "", 0, 0);
}

/* The reason must contain want and nothing of the input beyond it. */
static void
expect_reject_depth(const char *name, const char *text, size_t len,
    int max_depth, const char *want)
{
	struct update_info	 info;
	char			 err[128];

	memset(err, 'x', sizeof(err));
	if (scan_copy(text, len, max_depth, &info, err, sizeof(err)) == 0)
		fail_case(name, "accepted, want \"%s\"", want);
	else if (memchr(err, '\0', sizeof(err)) == NULL)
		fail_case(name, "reason not NUL-terminated");
	else if (strstr(err, want) == NULL)
		fail_case(name, "reason \"%s\", want \"%s\"", err, want);
	else if (strstr(err, "SECRET") != NULL)
		fail_case(name, "reason quotes the input: \"%s\"", err);
	else
		pass_case(name);
}

static void
expect_reject(const char *name, const char *text, size_t len, const char *want)
{
	expect_reject_depth(name, text, len, JSON_MAX_DEPTH, want);
}

static void
test_real_updates(void)
{
	expect_update("real_message", LIT("{\"update_id\":10000,\"message\":{"
	    "\"date\":1441645532,\"chat\":{\"last_name\":\"Test\","
	    "\"id\":-1001234567890,\"type\":\"private\",\"first_name\":\"Test\"},"
	    "\"message_id\":1365,\"from\":{\"last_name\":\"Test\",\"id\":1111111,"
	    "\"first_name\":\"Test\",\"username\":\"Test\"},"
	    "\"text\":\"/start \xf0\x9f\x98\x80\"}}"), JSON_MAX_DEPTH,
	    10000, "message", 1, -1001234567890LL);
	expect_update("real_callback_query", LIT("{\"update_id\":7,"
	    "\"callback_query\":{\"id\":\"4382\",\"from\":{\"id\":1},"
	    "\"message\":{\"message_id\":9,\"chat\":{\"id\":42,"
	    "\"type\":\"private\"},\"date\":1},\"data\":\"x\"}}"), JSON_MAX_DEPTH,
	    7, "callback_query", 1, 42);
	expect_update("real_inline_query", LIT("{\"update_id\":8,"
	    "\"inline_query\":{\"id\":\"1\",\"from\":{\"id\":5,\"is_bot\":false},"
	    "\"query\":\"q\",\"offset\":\"\"}}"), JSON_MAX_DEPTH,
	    8, "inline_query", 0, 0);
	expect_update("update_id_only", LIT(" {\"update_id\":3} \r\n\t"),
	    JSON_MAX_DEPTH, 3, "", 0, 0);
	expect_update("update_id_after_message", LIT("{\"message\":"
	    "{\"chat\":{\"id\":9}},\"update_id\":11}"), JSON_MAX_DEPTH,
	    11, "message", 1, 9);
}

static void
test_kind_and_chat(void)
{
	expect_update("kind_skips_non_objects", LIT("{\"update_id\":1,\"a\":[],"
	    "\"b\":\"s\",\"c\":null,\"edited_message\":{\"chat\":{\"id\":5}}}"),
	    JSON_MAX_DEPTH, 1, "edited_message", 1, 5);
	expect_update("kind_first_object_only", LIT("{\"update_id\":1,"
	    "\"Message\":{\"chat\":{\"id\":5}},\"message\":{\"chat\":{\"id\":6}}}"),
	    JSON_MAX_DEPTH, 1, "", 0, 0);
	expect_update("kind_bad_chars", LIT("{\"update_id\":1,"
	    "\"my-kind\":{}}"), JSON_MAX_DEPTH, 1, "", 0, 0);
	expect_update("kind_non_ascii", LIT("{\"update_id\":1,"
	    "\"m\xc3\xa9ssage\":{}}"), JSON_MAX_DEPTH, 1, "", 0, 0);
	expect_update("kind_escaped_nul", LIT("{\"update_id\":1,"
	    "\"message\\u0000\":{\"chat\":{\"id\":3}}}"), JSON_MAX_DEPTH,
	    1, "", 0, 0);
	expect_update("kind_unescaped", LIT("{\"update_id\":1,"
	    "\"mess\\u0061ge\":{\"chat\":{\"id\":3}}}"), JSON_MAX_DEPTH,
	    1, "message", 1, 3);
	expect_update("kind_longest", LIT("{\"update_id\":1,"
	    "\"a23456789_123456789_123456789_123456789_1234567\":{}}"),
	    JSON_MAX_DEPTH, 1, "a23456789_123456789_123456789_123456789_1234567",
	    0, 0);
	expect_update("kind_too_long", LIT("{\"update_id\":1,"
	    "\"a23456789_123456789_123456789_123456789_12345678\":{}}"),
	    JSON_MAX_DEPTH, 1, "", 0, 0);
	expect_update("kind_empty_key", LIT("{\"update_id\":1,\"\":{}}"),
	    JSON_MAX_DEPTH, 1, "", 0, 0);
	expect_update("chat_beats_message_chat", LIT("{\"update_id\":1,"
	    "\"k\":{\"message\":{\"chat\":{\"id\":2}},\"chat\":{\"id\":3}}}"),
	    JSON_MAX_DEPTH, 1, "k", 1, 3);
	expect_update("chat_first_occurrence", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":3,\"id\":4},\"chat\":{\"id\":5}}}"),
	    JSON_MAX_DEPTH, 1, "k", 1, 3);
	expect_update("chat_first_key_not_object", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":7,\"chat\":{\"id\":5}}}"),
	    JSON_MAX_DEPTH, 1, "k", 0, 0);
	expect_update("chat_id_float", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":1.5}}}"), JSON_MAX_DEPTH, 1, "k", 0, 0);
	expect_update("chat_id_string", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":\"5\"}}}"), JSON_MAX_DEPTH, 1, "k", 0, 0);
	expect_update("chat_id_out_of_range", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":99999999999999999999}}}"), JSON_MAX_DEPTH,
	    1, "k", 0, 0);
	expect_update("chat_id_float_falls_back", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":1e2},\"message\":{\"chat\":{\"id\":8}}}}"),
	    JSON_MAX_DEPTH, 1, "k", 1, 8);
	expect_update("chat_id_min", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":-9223372036854775808}}}"), JSON_MAX_DEPTH,
	    1, "k", 1, INT64_MIN);
	expect_update("chat_only_in_kind", LIT("{\"update_id\":1,"
	    "\"k\":{\"x\":{\"chat\":{\"id\":4}}},\"chat\":{\"id\":5}}"),
	    JSON_MAX_DEPTH, 1, "k", 0, 0);
	expect_update("chat_at_top_level_is_kind", LIT("{\"update_id\":1,"
	    "\"chat\":{\"id\":5}}"), JSON_MAX_DEPTH, 1, "chat", 0, 0);
}

static void
test_update_id(void)
{
	expect_update("update_id_max", LIT("{\"update_id\":9223372036854775807}"),
	    JSON_MAX_DEPTH, INT64_MAX, "", 0, 0);
	expect_update("update_id_min",
	    LIT("{\"update_id\":-9223372036854775808}"), JSON_MAX_DEPTH,
	    INT64_MIN, "", 0, 0);
	expect_update("update_id_negative", LIT("{\"update_id\":-5}"),
	    JSON_MAX_DEPTH, -5, "", 0, 0);
	expect_update("update_id_zero", LIT("{\"update_id\":0}"),
	    JSON_MAX_DEPTH, 0, "", 0, 0);
	expect_update("update_id_minus_zero", LIT("{\"update_id\":-0}"),
	    JSON_MAX_DEPTH, 0, "", 0, 0);
	expect_update("update_id_escaped_key", LIT("{\"update\\u005fid\":4}"),
	    JSON_MAX_DEPTH, 4, "", 0, 0);
	expect_reject("update_id_too_large",
	    LIT("{\"update_id\":9223372036854775808}"), "update_id out of range");
	expect_reject("update_id_too_small",
	    LIT("{\"update_id\":-9223372036854775809}"),
	    "update_id out of range");
	expect_reject("update_id_huge",
	    LIT("{\"update_id\":184467440737095516160000}"),
	    "update_id out of range");
	expect_reject("update_id_missing", LIT("{\"message\":{}}"),
	    "update_id missing");
	expect_reject("update_id_empty_object", LIT("{}"), "update_id missing");
	expect_reject("update_id_nested_only",
	    LIT("{\"message\":{\"update_id\":1}}"), "update_id missing");
	expect_reject("update_id_near_miss", LIT("{\"update_id\\u0000\":1}"),
	    "update_id missing");
	expect_reject("update_id_string", LIT("{\"update_id\":\"5\"}"),
	    "update_id is not an integer");
	expect_reject("update_id_float", LIT("{\"update_id\":1.0}"),
	    "update_id is not an integer");
	expect_reject("update_id_exponent", LIT("{\"update_id\":1e3}"),
	    "update_id is not an integer");
	expect_reject("update_id_true", LIT("{\"update_id\":true}"),
	    "update_id is not an integer");
	expect_reject("update_id_null", LIT("{\"update_id\":null}"),
	    "update_id is not an integer");
	expect_reject("update_id_object", LIT("{\"update_id\":{}}"),
	    "update_id is not an integer");
	expect_reject("update_id_array", LIT("{\"update_id\":[1]}"),
	    "update_id is not an integer");
	expect_reject("update_id_twice", LIT("{\"update_id\":1,\"update_id\":1}"),
	    "update_id given twice");
	expect_reject("update_id_twice_escaped",
	    LIT("{\"update_id\":1,\"a\":{},\"update\\u005Fid\":2}"),
	    "update_id given twice");
	expect_reject("top_level_array", LIT("[{\"update_id\":1}]"),
	    "top level is not an object");
	expect_reject("top_level_string", LIT("\"update_id\""),
	    "top level is not an object");
	expect_reject("top_level_number", LIT("1"), "top level is not an object");
}

static void
test_invalid_json(void)
{
	expect_reject("empty", "", 0, "invalid JSON");
	expect_reject("whitespace_only", LIT(" \t\r\n"), "invalid JSON");
	expect_reject("trailing_comma_object", LIT("{\"update_id\":1,}"),
	    "invalid JSON at byte 15");
	expect_reject("trailing_comma_array", LIT("{\"update_id\":1,\"a\":[1,]}"),
	    "invalid JSON");
	expect_reject("leading_comma_array", LIT("{\"update_id\":1,\"a\":[,1]}"),
	    "invalid JSON");
	expect_reject("single_quotes", LIT("{'update_id':1}"), "invalid JSON");
	expect_reject("single_quoted_value",
	    LIT("{\"update_id\":1,\"a\":'SECRET'}"), "invalid JSON");
	expect_reject("leading_zero", LIT("{\"update_id\":01}"), "invalid JSON");
	expect_reject("leading_zero_negative", LIT("{\"update_id\":-01}"),
	    "invalid JSON");
	expect_reject("plus_sign", LIT("{\"update_id\":+1}"), "invalid JSON");
	expect_reject("bare_minus", LIT("{\"update_id\":-}"), "invalid JSON");
	expect_reject("trailing_dot", LIT("{\"update_id\":1,\"a\":1.}"),
	    "invalid JSON");
	expect_reject("leading_dot", LIT("{\"update_id\":1,\"a\":.5}"),
	    "invalid JSON");
	expect_reject("empty_exponent", LIT("{\"update_id\":1,\"a\":1e}"),
	    "invalid JSON");
	expect_reject("signed_empty_exponent", LIT("{\"update_id\":1,\"a\":1e+}"),
	    "invalid JSON");
	expect_reject("hex_number", LIT("{\"update_id\":0x10}"), "invalid JSON");
	expect_reject("nan", LIT("{\"update_id\":1,\"a\":NaN}"), "invalid JSON");
	expect_reject("infinity", LIT("{\"update_id\":1,\"a\":-Infinity}"),
	    "invalid JSON");
	expect_reject("bad_literal", LIT("{\"update_id\":1,\"a\":tru}"),
	    "invalid JSON");
	expect_reject("literal_case", LIT("{\"update_id\":1,\"a\":True}"),
	    "invalid JSON");
	expect_reject("truncated_literal", LIT("{\"update_id\":1,\"a\":nul"),
	    "invalid JSON");
	expect_reject("unterminated_string", LIT("{\"update_id\":1,\"a\":\"abc"),
	    "invalid JSON: unexpected end");
	expect_reject("unterminated_key", LIT("{\"update_id"), "invalid JSON");
	expect_reject("unterminated_escape", LIT("{\"update_id\":1,\"a\":\"\\"),
	    "invalid JSON");
	expect_reject("unterminated_object", LIT("{\"update_id\":1"),
	    "invalid JSON: unexpected end at byte 14");
	expect_reject("unterminated_array", LIT("{\"update_id\":1,\"a\":[1,2"),
	    "invalid JSON");
	expect_reject("mismatched_close", LIT("{\"update_id\":1,\"a\":[1}]"),
	    "invalid JSON");
	expect_reject("missing_colon", LIT("{\"update_id\" 1}"), "invalid JSON");
	expect_reject("missing_value", LIT("{\"update_id\":}"), "invalid JSON");
	expect_reject("missing_comma", LIT("{\"update_id\":1 \"a\":2}"),
	    "invalid JSON");
	expect_reject("unquoted_key", LIT("{update_id:1}"), "invalid JSON");
	expect_reject("trailing_garbage", LIT("{\"update_id\":1}x"),
	    "invalid JSON at byte 15");
	expect_reject("two_values", LIT("{\"update_id\":1} {\"update_id\":2}"),
	    "invalid JSON");
	expect_reject("trailing_nul", LIT("{\"update_id\":1}\0"),
	    "invalid JSON at byte 15");
	expect_reject("raw_nul_outside", LIT("{\"update_id\":1,\0\"a\":1}"),
	    "invalid JSON");
	expect_reject("raw_nul_in_string", LIT("{\"update_id\":1,\"a\":\"x\0y\"}"),
	    "invalid JSON at byte 21");
	expect_reject("raw_control_char", LIT("{\"update_id\":1,\"a\":\"x\ny\"}"),
	    "invalid JSON");
	expect_reject("raw_unit_separator_in_string",
	    LIT("{\"update_id\":1,\"a\":\"\x1f\"}"), "invalid JSON at byte 20");
	expect_reject("raw_tab_in_string", LIT("{\"update_id\":1,\"a\":\"\t\"}"),
	    "invalid JSON");
	expect_reject("raw_del_is_fine_but_form_feed_not",
	    LIT("{\"update_id\":1,\"a\":\"\x7f\",\f\"b\":1}"), "invalid JSON");
	expect_reject("bad_escape", LIT("{\"update_id\":1,\"a\":\"\\x41\"}"),
	    "invalid JSON");
	expect_reject("bad_escape_apostrophe",
	    LIT("{\"update_id\":1,\"a\":\"\\'\"}"), "invalid JSON");
	expect_reject("short_unicode_escape",
	    LIT("{\"update_id\":1,\"a\":\"\\u12\"}"), "invalid JSON");
	expect_reject("bad_hex_unicode_escape",
	    LIT("{\"update_id\":1,\"a\":\"\\u12g4\"}"), "invalid JSON");
	expect_reject("truncated_unicode_escape",
	    LIT("{\"update_id\":1,\"a\":\"\\u00"), "invalid JSON");
	expect_reject("comment", LIT("{\"update_id\":1 /* c */}"), "invalid JSON");
	expect_reject("non_ascii_outside_string",
	    LIT("{\"update_id\":1,\"a\":\xc3\xa9}"), "invalid JSON");
	expect_reject("bom", LIT("\xef\xbb\xbf{\"update_id\":1}"), "invalid JSON");
	expect_reject("vertical_tab_whitespace", LIT("{\"update_id\":1}\v"),
	    "invalid JSON");
	expect_reject("nbsp_whitespace", LIT("{\"update_id\":1}\xc2\xa0"),
	    "invalid JSON");
}

static void
test_utf8(void)
{
	expect_valid("utf8_two_byte", LIT("{\"update_id\":1,\"a\":\"\xc3\xa9\"}"));
	expect_valid("utf8_three_byte",
	    LIT("{\"update_id\":1,\"a\":\"\xe2\x82\xac\xef\xbf\xbf\"}"));
	expect_valid("utf8_four_byte",
	    LIT("{\"update_id\":1,\"a\":\"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}"));
	expect_valid("utf8_edges", LIT("{\"update_id\":1,\"a\":\"\xc2\x80"
	    "\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\"}"));
	expect_valid("utf8_in_key", LIT("{\"update_id\":1,\"\xe2\x82\xac\":1}"));
	expect_valid("escapes", LIT("{\"update_id\":1,\"a\":\"\\\" \\\\ \\/ \\b "
	    "\\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 \\u0000 \\uFFFF\"}"));
	expect_valid("lone_surrogate_escape",
	    LIT("{\"update_id\":1,\"a\":\"\\ud800\"}"));
	expect_valid("del_in_string", LIT("{\"update_id\":1,\"a\":\"\x7f\"}"));
	expect_reject("utf8_overlong_slash",
	    LIT("{\"update_id\":1,\"a\":\"\xc0\xaf\"}"), "invalid UTF-8 at byte 20");
	expect_reject("utf8_overlong_c1",
	    LIT("{\"update_id\":1,\"a\":\"\xc1\xbf\"}"), "invalid UTF-8");
	expect_reject("utf8_overlong_three",
	    LIT("{\"update_id\":1,\"a\":\"\xe0\x80\xaf\"}"), "invalid UTF-8");
	expect_reject("utf8_overlong_four",
	    LIT("{\"update_id\":1,\"a\":\"\xf0\x80\x80\xaf\"}"), "invalid UTF-8");
	expect_reject("utf8_surrogate",
	    LIT("{\"update_id\":1,\"a\":\"\xed\xa0\x80\"}"), "invalid UTF-8");
	expect_reject("utf8_low_surrogate",
	    LIT("{\"update_id\":1,\"a\":\"\xed\xbf\xbf\"}"), "invalid UTF-8");
	expect_reject("utf8_above_max",
	    LIT("{\"update_id\":1,\"a\":\"\xf4\x90\x80\x80\"}"), "invalid UTF-8");
	expect_reject("utf8_f5", LIT("{\"update_id\":1,\"a\":\"\xf5\x80\x80\x80\"}"),
	    "invalid UTF-8");
	expect_reject("utf8_ff", LIT("{\"update_id\":1,\"a\":\"\xff\"}"),
	    "invalid UTF-8");
	expect_reject("utf8_truncated",
	    LIT("{\"update_id\":1,\"a\":\"\xe2\x82\"}"), "invalid UTF-8");
	expect_reject("utf8_truncated_at_end",
	    LIT("{\"update_id\":1,\"a\":\"\xf0\x9f\x98"), "invalid UTF-8");
	expect_reject("utf8_lone_continuation",
	    LIT("{\"update_id\":1,\"a\":\"\x80\"}"), "invalid UTF-8");
	expect_reject("utf8_bad_in_key",
	    LIT("{\"update_id\":1,\"\xc0\xaf\":1}"), "invalid UTF-8");
	expect_reject("utf8_latin1",
	    LIT("{\"update_id\":1,\"a\":\"caf\xe9\"}"), "invalid UTF-8");
}

static void
test_lone_surrogates(void)
{
	static const struct {
		const char	*name, *in, *out;
		size_t		 replaced;
	} cases[] = {
		{ "surrogate_pair_kept", "\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"", 0 },
		{ "surrogate_high_alone", "\"a\\ud800b\"", "\"a\\ufffdb\"", 1 },
		{ "surrogate_low_alone", "\"\\uDC00\"", "\"\\ufffd\"", 1 },
		{ "surrogate_high_at_end", "\\ud800", "\\ufffd", 1 },
		{ "surrogate_two_highs", "\"\\ud800\\ud800\\udc00\"",
		    "\"\\ufffd\\ud800\\udc00\"", 1 },
		{ "surrogate_escaped_backslash", "\"\\\\ud800\"", "\"\\\\ud800\"", 0 },
		{ "surrogate_other_escapes", "\"\\u00e9\\n\\\"\\u0000\"",
		    "\"\\u00e9\\n\\\"\\u0000\"", 0 },
		{ "surrogate_cut_escape", "\\ud8", "\\ud8", 0 },
	};
	char	 buf[64];
	size_t	 i, n, replaced;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = strlen(cases[i].in);
		memcpy(buf, cases[i].in, n + 1);
		replaced = json_replace_lone_surrogates(buf, n);
		if (replaced == cases[i].replaced && strcmp(buf, cases[i].out) == 0)
			pass_case(cases[i].name);
		else
			fail_case(cases[i].name, "got %s (%zu replaced)", buf, replaced);
	}
}

/* utf8_valid is the same table 3-7 check, on bytes that need not be JSON. */
static void
test_utf8_valid(void)
{
	static const struct {
		const char	*name, *bytes;
		size_t		 len;
		int		 valid;
	} cases[] = {
		{ "utf8_valid_ascii", LIT("plain \x01 text"), 1 },
		{ "utf8_valid_empty", LIT(""), 1 },
		{ "utf8_valid_nul_inside", LIT("a\0b"), 1 },
		{ "utf8_valid_mixed", LIT("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), 1 },
		{ "utf8_valid_surrogate", LIT("a\xed\xa0\x80" "b"), 0 },
		{ "utf8_valid_overlong", LIT("\xc0\xaf"), 0 },
		{ "utf8_valid_cut_at_end", LIT("ok\xe2\x82"), 0 },
		{ "utf8_valid_lone_continuation", LIT("\x80"), 0 },
		{ "utf8_valid_above_max", LIT("\xf4\x90\x80\x80"), 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (utf8_valid(cases[i].bytes, cases[i].len) == cases[i].valid)
			pass_case(cases[i].name);
		else
			fail_case(cases[i].name, "want %d", cases[i].valid);
	}
}

/* {"update_id":1,"a": then levels-1 arrays: the object makes `levels` in all. */
static char *
nested(int levels, size_t *len)
{
	static const char	 head[] = "{\"update_id\":1,\"a\":";
	size_t			 n = (size_t)(levels - 1), hl = sizeof(head) - 1;
	char			*s = malloc(hl + 2 * n + 4);

	if (s == NULL) {
		perror("malloc");
		exit(2);
	}
	memcpy(s, head, hl);
	memset(s + hl, '[', n);
	memcpy(s + hl + n, "0", 1);
	memset(s + hl + n + 1, ']', n);
	s[hl + 2 * n + 1] = '}';
	*len = hl + 2 * n + 2;
	return s;
}

static double
seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void
test_depth(void)
{
	struct timespec	 start;
	size_t		 len, deep = 100000;
	char		*s;
	int		 depth;

	s = nested(JSON_MAX_DEPTH, &len);
	expect_update("depth_max_ok", s, len, JSON_MAX_DEPTH, 1, "", 0, 0);
	free(s);
	s = nested(JSON_MAX_DEPTH + 1, &len);
	expect_reject("depth_max_plus_one", s, len, "nested deeper than 100");
	free(s);
	for (depth = 1; depth <= 3; depth++) {
		s = nested(depth, &len);
		expect_update(depth == 1 ? "depth_1_ok" : depth == 2 ? "depth_2_ok" :
		    "depth_3_ok", s, len, depth, 1, "", 0, 0);
		free(s);
		s = nested(depth + 1, &len);
		expect_reject_depth(depth == 1 ? "depth_1_exceeded" :
		    depth == 2 ? "depth_2_exceeded" : "depth_3_exceeded", s, len,
		    depth, "nested deeper than");
		free(s);
	}
	expect_update("depth_objects_ok", LIT("{\"update_id\":1,\"k\":{\"chat\":"
	    "{\"id\":2}}}"), 3, 1, "k", 1, 2);
	expect_reject_depth("depth_objects_exceeded", LIT("{\"update_id\":1,"
	    "\"k\":{\"chat\":{\"id\":2}}}"), 2, "nested deeper than 2");

	if ((s = malloc(deep)) == NULL) {
		perror("malloc");
		exit(2);
	}
	memset(s, '[', deep);
	clock_gettime(CLOCK_MONOTONIC, &start);
	expect_reject("deep_100000_arrays", s, deep, "nested deeper than 100");
	if (seconds_since(&start) > 0.5)
		fail_case("deep_100000_arrays_fast", "took %.3f s",
		    seconds_since(&start));
	else
		pass_case("deep_100000_arrays_fast");
	for (len = 0; len + 5 <= deep; len += 5)
		memcpy(s + len, "{\"a\":", 5);
	expect_reject("deep_100000_objects", s, len, "nested deeper than 100");
	free(s);
}

static void
test_caller_errors(void)
{
	struct update_info	 info;
	char			 err[64];

	expect_reject_depth("max_depth_zero", LIT("{\"update_id\":1}"), 0,
	    "max_depth");
	expect_reject_depth("max_depth_negative", LIT("{\"update_id\":1}"), -1,
	    "max_depth");
	expect_reject_depth("max_depth_too_large", LIT("{\"update_id\":1}"),
	    JSON_MAX_DEPTH + 1, "max_depth");
	if (json_scan_update("{}", 2, JSON_MAX_DEPTH, &info, NULL, 0) != -1)
		fail_case("null_err_buffer", "accepted");
	else
		pass_case("null_err_buffer");
	if (json_scan_update(NULL, 0, JSON_MAX_DEPTH, &info, err,
	    sizeof(err)) != -1 || strstr(err, "invalid JSON") == NULL)
		fail_case("null_empty_buffer", "got \"%s\"", err);
	else
		pass_case("null_empty_buffer");
	memset(err, 'x', sizeof(err));
	if (json_scan_update("{\"update_id\":1}x", 16, JSON_MAX_DEPTH, &info,
	    err, 8) != -1 || strlen(err) != 7)
		fail_case("short_err_buffer", "not cut to the buffer");
	else
		pass_case("short_err_buffer");
}

/* A big body (long strings, many members) scans in a blink: the work is linear. */
static void
test_large_body(void)
{
	static const char	 head[] = "{\"update_id\":5,\"message\":"
				    "{\"chat\":{\"id\":6},\"a\":[";
	static const char	 item[] = "\"\\u00e9\xc3\xa9x\",{\"k\":-1.5e-3},";
	static const char	 tail[] = "0]}}";
	struct timespec		 start;
	size_t			 size = 4 << 20, len;
	char			*s = malloc(size);

	if (s == NULL) {
		perror("malloc");
		exit(2);
	}
	memcpy(s, head, sizeof(head) - 1);
	len = sizeof(head) - 1;
	while (len + sizeof(item) + sizeof(tail) < size) {
		memcpy(s + len, item, sizeof(item) - 1);
		len += sizeof(item) - 1;
	}
	memcpy(s + len, tail, sizeof(tail) - 1);
	len += sizeof(tail) - 1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	expect_update("large_body", s, len, JSON_MAX_DEPTH, 5, "message", 1, 6);
	if (seconds_since(&start) > 5.0)
		fail_case("large_body_fast", "took %.3f s", seconds_since(&start));
	else
		pass_case("large_body_fast");
	free(s);
}

int
main(void)
{
	test_real_updates();
	test_kind_and_chat();
	test_update_id();
	test_invalid_json();
	test_utf8();
	test_utf8_valid();
	test_lone_surrogates();
	test_depth();
	test_caller_errors();
	test_large_body();
	if (failures > 0) {
		printf("%d json case(s) failed\n", failures);
		return 1;
	}
	return 0;
}
