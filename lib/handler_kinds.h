/*
 * The kinds of handler a bot can have, one row each.  The configured value's
 * start names the kind; what follows it is the kind's argument, checked by the
 * row's shape.  Two sides read the one table:
 *   - the configuration (lib/), which checks a value when it loads, so that
 *     `tgq-webhook --check` and `tgq doctor` refuse a bad handler without
 *     linking the drain;
 *   - tgq-drain, whose handler_NAME (its operations, drain/handler_NAME.c) each
 *     row names.
 * A new kind is a row here, its drain/handler_NAME.c and its documentation.
 *
 * X(KIND, ops, value, shape, usage):
 *   KIND	enum handler_kind's HANDLER_KIND_KIND
 *   ops	the drain's handler_ops, handler_ops (rows may share one)
 *   value	the whole value, or, ending in ':', its start before an argument
 *   shape	how the argument is checked (enum handler_shape)
 *   usage	the form the error message shows
 */
#ifndef HANDLER_KINDS_H
#define HANDLER_KINDS_H

#include <stddef.h>

#define HANDLER_KINDS(X)						\
	X(ECHO,  echo, "echo",   HANDLER_SHAPE_NONE,    "echo")		\
	X(EXEC,  exec, "exec:",  HANDLER_SHAPE_PROGRAM, "exec:PROGRAM [ARGS]") \
	X(PULL,  pull, "pull",   HANDLER_SHAPE_NONE,    "pull")		\
	X(HTTP,  http, "http:",  HANDLER_SHAPE_URL,     "http://HOST[:PORT]/PATH") \
	X(HTTPS, http, "https:", HANDLER_SHAPE_URL,     "https://HOST[:PORT]/PATH")

enum handler_kind {
#define HANDLER_KIND_ENUM(KIND, ops, value, shape, usage)	HANDLER_KIND_##KIND,
	HANDLER_KINDS(HANDLER_KIND_ENUM)
#undef HANDLER_KIND_ENUM
	HANDLER_KIND_COUNT
};

enum handler_shape {
	HANDLER_SHAPE_NONE,	/* the value is the whole of it */
	HANDLER_SHAPE_PROGRAM,	/* an absolute program path, then words (no shell) */
	HANDLER_SHAPE_URL,	/* the whole value is a URL the update is POSTed to */
};

/* The kind of value (NULL is echo, the default); *arg is what follows its start,
 * NULL for a kind that takes none.  Checks the argument's form (not whether a
 * program exists: config_check_handler).  0, or -1 with why, which names the bot
 * and never quotes the value (it may hold a secret). */
int	 handler_kind_parse(const char *bot, const char *value,
	    enum handler_kind *kind, const char **arg, char *why, size_t whylen);
enum handler_shape handler_kind_shape(enum handler_kind kind);
/* The program of a HANDLER_SHAPE_PROGRAM argument, into prog; 0, or -1 with why. */
int	 handler_program(const char *bot, const char *arg, char *prog,
	    size_t proglen, char *why, size_t whylen);

#endif
