/*
 * The "exec:PROGRAM ARGS" handler: one process per update, run by handler.c.
 * The value is split on blanks (no shell, no PATH search: PROGRAM is an absolute
 * path); the configuration checked the program when it loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drain.h"

#define MAX_ARGS 32
#define BLANKS " \t"

struct exec {
	char	*words;			/* argv points into it */
	char	*argv[MAX_ARGS + 1];
};

static void
exec_release(void *state)
{
	struct exec *x = state;

	if (x != NULL)
		free(x->words);
	free(x);
}

static int
exec_setup(const char *bot, const char *value, const char *arg, void **state,
    char *err, size_t errlen)
{
	struct exec	*x;
	char		*p;
	size_t		 n = 0;

	(void)value;
	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (x->words = strdup(arg)) == NULL) {
		free(x);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*state = x;
	for (p = x->words + strspn(x->words, BLANKS); *p != '\0';
	    p += strspn(p, BLANKS)) {
		if (n == MAX_ARGS) {
			snprintf(err, errlen, "bot %s: handler has more than %d words",
			    bot, MAX_ARGS);
			return -1;
		}
		x->argv[n++] = p;
		p += strcspn(p, BLANKS);
		if (*p != '\0')
			*p++ = '\0';
	}
	if (n == 0 || x->argv[0][0] != '/') {
		snprintf(err, errlen, "bot %s: exec: needs an absolute program path",
		    bot);
		return -1;
	}
	return 0;
}

static int
exec_start(void *state, const struct claimed *c,
    const struct handler_limits *limits, void **run, char *err, size_t errlen)
{
	struct exec		*x = state;
	struct handler_run	*r;

	if (handler_start(x->argv, c->bot, c->update_id, c->body, c->body_len,
	    limits, &r, err, errlen) == -1)
		return -1;
	*run = r;
	return 0;
}

static int
exec_pollfds(const void *run, struct pollfd *fds, int max)
{
	return handler_pollfds(run, fds, max);
}

static int64_t
exec_deadline(const void *run)
{
	return handler_deadline(run);
}

static int
exec_step(void *run, int64_t now_ms)
{
	return handler_step(run, now_ms);
}

static void
exec_finish(void *run, struct handler_result *res)
{
	handler_finish(run, res);
}

static void
exec_abort(void *run)
{
	handler_abort(run);
}

const struct handler_ops handler_exec = { HANDLER_RUN_OPS(exec) };
