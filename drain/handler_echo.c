/*
 * The "echo" handler, the default: a text message gets its text back.  It needs
 * no process, so a whole claimed batch is handled inside the claim's
 * transaction (calls_echo() does the work).
 */
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "drain.h"

struct echo {
	sqlite3_stmt	*st;	/* prepared on the queue by the first update */
};

static int
echo_setup(const char *bot, const char *value, const char *arg, void **state,
    char *err, size_t errlen)
{
	(void)bot;
	(void)value;
	(void)arg;
	if ((*state = calloc(1, sizeof(struct echo))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void
echo_release(void *state)
{
	struct echo *e = state;

	if (e != NULL)
		sqlite3_finalize(e->st);
	free(e);
}

static int
echo_handle(void *state, sqlite3 *db, const struct claimed *c,
    struct call_list *calls, char *err, size_t errlen)
{
	struct echo *e = state;

	return calls_echo(db, &e->st, c->body, c->body_len, calls, err, errlen);
}

const struct handler_ops handler_echo = {
	.setup = echo_setup,
	.release = echo_release,
	.handle = echo_handle,
};
