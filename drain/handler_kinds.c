/*
 * Which kind of handler a bot has: the table of kinds, and the choice made from
 * the configured value.  Adding a kind is a row of HANDLER_KINDS (drain.h) and
 * its own handler_NAME.c.
 */
#include <stdio.h>
#include <string.h>

#include "drain.h"

static const struct handler_ops *const kinds[HANDLER_KIND_COUNT] = {
#define HANDLER_KIND_ROW(NAME, name)	[HANDLER_KIND_##NAME] = &handler_##name,
	HANDLER_KINDS(HANDLER_KIND_ROW)
#undef HANDLER_KIND_ROW
};

/* The kind whose value is value, or the start of it; *arg is what follows. */
static int
find_kind(const char *value, enum handler_kind *kind, const char **arg)
{
	size_t i, n;

	for (i = 0; i < HANDLER_KIND_COUNT; i++) {
		n = strlen(kinds[i]->value);
		if (n > 0 && kinds[i]->value[n - 1] == ':' ?
		    strncmp(value, kinds[i]->value, n) == 0 :
		    strcmp(value, kinds[i]->value) == 0) {
			*kind = (enum handler_kind)i;
			*arg = kinds[i]->value[n - 1] == ':' ? value + n : NULL;
			return 0;
		}
	}
	return -1;
}

int
bot_handler_setup(struct bot_handler *h, const char *bot, const char *value,
    char *err, size_t errlen)
{
	const char *arg;

	memset(h, 0, sizeof(*h));
	if (find_kind(value != NULL ? value : "echo", &h->kind, &arg) == -1) {
		snprintf(err, errlen, "bot %s: handler must be echo, exec:PROGRAM "
		    "or http://HOST[:PORT]/PATH, or pull", bot);
		return -1;
	}
	h->ops = kinds[h->kind];
	return h->ops->setup(bot, arg, &h->state, err, errlen);
}

void
bot_handler_release(struct bot_handler *h)
{
	if (h->ops != NULL)
		h->ops->release(h->state);
	h->ops = NULL;
	h->state = NULL;
}
