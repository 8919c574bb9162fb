/*
 * Fuzz target: calls_parse() (drain/calls.c), which reads what a bot's handler
 * printed: one JSON object per line.  The input is the handler's output as is; one
 * in-memory SQLite connection (for its JSON functions) serves every input.
 *
 * Invariants: on success at most CALLS_MAX calls, each with a method of 1 to
 * BOTAPI_METHOD_MAX letters, params non-NULL and a JSON object, chat
 * NUL-terminated (the decimal chat_int when chat_is_int); on failure an empty
 * list and an err that is one of calls.c's reasons, never quoting the line (the
 * canary "CANARY_SECRET_1234567890" of the seeds must not reach it).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fuzz.h"
#include "drain.h"

#define CANARY "CANARY_SECRET_1234567890"

static sqlite3 *db;

static const char *const reasons[] = {
	"handler output line #: not a JSON object",
	"handler output line #: \"method\" must be a name of letters",
	"handler output line #: \"chat_id\" must be an integer or a short string",
	"handler output line #: contains a NUL byte",
	"handler output line #: not valid UTF-#",	/* digits become # */
	"handler output: more than # calls",
	"out of memory",
};

static void
close_db(void)
{
	sqlite3_close(db);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		abort();
	atexit(close_db);
	return 0;
}

static int
known_reason(const char *err)
{
	char	 norm[256];
	size_t	 i, n = 0;

	for (; *err != '\0' && n + 1 < sizeof(norm);) {
		if (isdigit((unsigned char)*err)) {
			while (isdigit((unsigned char)*err))
				err++;
			norm[n++] = '#';
		} else
			norm[n++] = *err++;
	}
	norm[n] = '\0';
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(reasons[i], norm) == 0)
			return 1;
	return 0;
}

static int
letters_only(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct call_list	 list;
	char			 err[256], num[32];
	size_t			 i;

	if (size > INT32_MAX)
		return 0;
	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if (calls_parse(db, (const char *)data, size, &list, err, sizeof(err)) == -1) {
		FUZZ_CHECK(list.n == 0 && list.calls == NULL);
		FUZZ_CHECK(strstr(err, CANARY) == NULL);
		FUZZ_CHECK(known_reason(err));
		return 0;
	}
	FUZZ_CHECK(list.n <= CALLS_MAX && (list.n == 0 || list.calls != NULL));
	for (i = 0; i < list.n; i++) {
		const struct call *c = &list.calls[i];

		FUZZ_CHECK(memchr(c->method, '\0', sizeof(c->method)) != NULL);
		FUZZ_CHECK(letters_only(c->method));
		FUZZ_CHECK(botapi_method_valid(c->method));
		FUZZ_CHECK(c->params != NULL && c->params[0] == '{');
		/* What is sent is UTF-8 with no unpaired surrogate left. */
		FUZZ_CHECK(utf8_valid(c->params, strlen(c->params)));
		FUZZ_CHECK(json_replace_lone_surrogates(c->params,
		    strlen(c->params)) == 0);
		FUZZ_CHECK(memchr(c->chat, '\0', sizeof(c->chat)) != NULL);
		if (c->chat_is_int) {
			snprintf(num, sizeof(num), "%lld", (long long)c->chat_int);
			FUZZ_CHECK(strcmp(num, c->chat) == 0);
		}
	}
	calls_free(&list);
	return 0;
}
