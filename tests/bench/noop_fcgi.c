/*
 * The no-op libfcgi responder of `make bench`: reads the request body and answers
 * 200, doing nothing else.  One request at a time per process, like a classic
 * libfcgi program; the bench runs 4 of them under spawn-fcgi, and nginx opens a
 * FastCGI connection per request (libfcgi without threads cannot keep one).  Not
 * a ceiling: tests/bench/ceiling_fcgi.c, with kept connections, is.
 */
#include <stdlib.h>

#include <fcgiapp.h>

int
main(void)
{
	FCGX_Stream	*in, *out, *err;
	FCGX_ParamArray	 envp;
	char		 buf[8192];

	/* fd 0 is libfcgi's listening socket: leave it alone. */
	while (FCGX_Accept(&in, &out, &err, &envp) >= 0) {
		/* Read the whole body, as any real responder has to. */
		while (FCGX_GetStr(buf, sizeof(buf), in) > 0)
			;
		FCGX_FPrintF(out, "Status: 200 OK\r\n"
		    "Content-Type: text/plain\r\n"
		    "Content-Length: 3\r\n\r\nok\n");
	}
	return 0;
}
