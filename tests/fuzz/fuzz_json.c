/*
 * Fuzz target: json_scan_update() (lib/json.c), the strict scanner every update
 * goes through before it is stored.
 *
 * Input layout:
 *   byte 0   max_depth: (byte % 128) - 4, so -4..123 (valid is 1..JSON_MAX_DEPTH)
 *   byte 1   errlen: 1 + byte % 128
 *   then     the JSON text
 *
 * Invariants: on success the info is sane (kind NUL-terminated, has_chat_id 0 or
 * 1) and one more level of max_depth still accepts it, with the same info; on
 * failure err is NUL-terminated within errlen and is one of json.c's fixed reasons
 * (numbers aside), cut at errlen: never any of the input.
 */
#include <ctype.h>
#include <string.h>

#include "fuzz.h"
#include "tgq.h"

/* json.c's reasons, with every number written as '#'. */
static const char *const reasons[] = {
	"invalid JSON: unexpected end at byte #",
	"invalid JSON at byte #",
	"invalid UTF-# at byte #",	/* the 8 is a number too */
	"nested deeper than #",
	"top level is not an object",
	"update_id missing",
	"update_id given twice",
	"update_id is not an integer",
	"update_id out of range",
	"max_depth must be #-#",
	"no buffer given",
};

/* Writes err with each run of digits replaced by one '#'. */
static void
normalize(const char *err, char *out, size_t outlen)
{
	size_t n = 0;

	while (*err != '\0' && n + 1 < outlen) {
		if (isdigit((unsigned char)*err)) {
			while (isdigit((unsigned char)*err))
				err++;
			out[n++] = '#';
		} else
			out[n++] = *err++;
	}
	out[n] = '\0';
}

static int
known_reason(const char *err, int cut)
{
	char	 norm[256];
	size_t	 i, n;

	normalize(err, norm, sizeof(norm));
	n = strlen(norm);
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (cut ? strncmp(reasons[i], norm, n) == 0 :
		    strcmp(reasons[i], norm) == 0)
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct update_info	 info, again;
	char			 err[130], err2[130];
	const char		*json;
	size_t			 len, errlen;
	int			 depth, rc;

	if (size < 2)
		return 0;
	depth = (int)(data[0] % 128) - 4;
	errlen = 1 + (size_t)(data[1] % 128);
	json = (const char *)data + 2;
	len = size - 2;

	memset(err, 'X', sizeof(err));
	rc = json_scan_update(json, len, depth, &info, err, errlen);
	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	FUZZ_CHECK(err[errlen] == 'X');		/* nothing written past errlen */
	if (rc == -1) {
		if (!known_reason(err, strlen(err) == errlen - 1))
			fprintf(stderr, "unknown reason: \"%s\"\n", err);
		FUZZ_CHECK(known_reason(err, strlen(err) == errlen - 1));
		if (depth < 1 || depth > JSON_MAX_DEPTH)
			FUZZ_CHECK(known_reason(err, 1));
		return 0;
	}
	FUZZ_CHECK(depth >= 1 && depth <= JSON_MAX_DEPTH);
	FUZZ_CHECK(memchr(info.kind, '\0', sizeof(info.kind)) != NULL);
	FUZZ_CHECK(info.has_chat_id == 0 || info.has_chat_id == 1);
	if (depth < JSON_MAX_DEPTH) {
		FUZZ_CHECK(json_scan_update(json, len, depth + 1, &again, err2,
		    sizeof(err2)) == 0);
		FUZZ_CHECK(again.update_id == info.update_id);
		FUZZ_CHECK(strcmp(again.kind, info.kind) == 0);
		FUZZ_CHECK(again.has_chat_id == info.has_chat_id &&
		    again.chat_id == info.chat_id);
	}
	return 0;
}
