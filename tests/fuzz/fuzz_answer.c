/*
 * Fuzz target: botapi_classify() (lib/botapi.c), which reads the Bot API's answer
 * to a call.  One parser (its in-memory SQLite) serves every input.
 *
 * Input layout:
 *   byte 0      bit 0 clear: the transfer failed (transport_ok 0)
 *   bytes 1-2   the HTTP status, big-endian, modulo 1000
 *   then        the answer's body
 *
 * Invariants: the outcome is one of the enum; a failed transfer is TRANSIENT;
 * result is set (non-empty) for BOTAPI_OK only; retry_after_s is
 * 1..3600 for RETRY_AFTER; description is NUL-terminated; http_status is kept.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tgq.h"

static struct botapi_parser *parser;

static void
free_parser(void)
{
	botapi_parser_free(parser);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	if (botapi_parser_new(&parser, err, sizeof(err)) == -1) {
		fprintf(stderr, "botapi_parser_new: %s\n", err);
		abort();
	}
	atexit(free_parser);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct botapi_answer	 a;
	long			 status;
	int			 transport_ok;

	if (size < 3 || size > INT32_MAX)
		return 0;
	transport_ok = data[0] & 1;
	status = (long)(((unsigned)data[1] << 8 | data[2]) % 1000);
	botapi_classify(parser, transport_ok, "Connection refused", status,
	    (const char *)data + 3, size - 3, &a);
	FUZZ_CHECK(a.outcome == BOTAPI_OK || a.outcome == BOTAPI_RETRY_AFTER ||
	    a.outcome == BOTAPI_MIGRATE || a.outcome == BOTAPI_REJECTED ||
	    a.outcome == BOTAPI_TRANSIENT);
	FUZZ_CHECK(a.http_status == status);
	FUZZ_CHECK(memchr(a.description, '\0', sizeof(a.description)) != NULL);
	if (!transport_ok)
		FUZZ_CHECK(a.outcome == BOTAPI_TRANSIENT);
	FUZZ_CHECK((a.result != NULL) == (a.outcome == BOTAPI_OK));
	FUZZ_CHECK(a.result == NULL || a.result[0] != '\0');
	if (a.outcome == BOTAPI_RETRY_AFTER) {
		FUZZ_CHECK(a.retry_after_s >= 1 && a.retry_after_s <= 3600);
		FUZZ_CHECK(a.error_code == 429);
	}
	if (a.outcome == BOTAPI_REJECTED)
		FUZZ_CHECK(a.error_code >= 400 && a.error_code < 500);
	botapi_answer_free(&a);
	FUZZ_CHECK(a.result == NULL);
	return 0;
}
