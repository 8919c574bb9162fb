/*
 * Fuzz target: fcgi_whole_request() (cgi/fcgi_frame.c), which decides from the
 * bytes a FastCGI connection has sent whether libfcgi may read a request now.
 *
 * Input layout: the bytes as they arrived.
 *
 * Invariants: the answer is one of the six; it never reads past len (ASan);
 * a whole request has no whole proper prefix, and one more byte after it is not
 * ours (nothing may follow a request before its answer); any other answer but
 * "partial" stays so whatever follows, since more bytes never make a broken
 * start good (nor take away a management record found).  The limit is LIMIT
 * bytes, so that inputs of libFuzzer's sizes reach it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "webhook.h"

#define LIMIT 3000

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum fcgi_frame	 got = fcgi_whole_request(data, size, LIMIT);
	unsigned char	*longer;
	size_t		 cut;

	FUZZ_CHECK(got >= FCGI_FRAME_NOT_OURS && got <= FCGI_FRAME_TOO_LARGE);
	if (got == FCGI_FRAME_WHOLE)
		for (cut = 0; cut < size; cut += 1 + cut / 8)
			FUZZ_CHECK(fcgi_whole_request(data, cut, LIMIT) !=
			    FCGI_FRAME_WHOLE);
	if (got == FCGI_FRAME_PARTIAL || (longer = malloc(size + 8)) == NULL)
		return 0;
	memcpy(longer, data, size);
	memset(longer + size, 1, 8);
	FUZZ_CHECK(fcgi_whole_request(longer, size + 8, LIMIT) ==
	    (got == FCGI_FRAME_WHOLE ? FCGI_FRAME_NOT_OURS : got));
	free(longer);
	return 0;
}
