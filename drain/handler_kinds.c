/*
 * A bot's handler set up from its configured value: lib/handler_kinds.c names
 * the kind and checks its argument, this table gives the kind's operations.
 */
#include <stdio.h>
#include <string.h>

#include "drain.h"

static const struct handler_ops *const kinds[HANDLER_KIND_COUNT] = {
#define HANDLER_KIND_ROW(KIND, ops, value, shape, usage)	\
	[HANDLER_KIND_##KIND] = &handler_##ops,
	HANDLER_KINDS(HANDLER_KIND_ROW)
#undef HANDLER_KIND_ROW
};

int
bot_handler_setup(struct bot_handler *h, const char *bot, const char *value,
    char *err, size_t errlen)
{
	const char *arg;

	memset(h, 0, sizeof(*h));
	if (handler_kind_parse(bot, value, &h->kind, &arg, err, errlen) == -1)
		return -1;
	h->ops = kinds[h->kind];
	return h->ops->setup(bot, value != NULL ? value : "echo", arg, &h->state,
	    err, errlen);
}

void
bot_handler_release(struct bot_handler *h)
{
	if (h->ops != NULL)
		h->ops->release(h->state);
	h->ops = NULL;
	h->state = NULL;
}
