/*
 * The "pull" handler: the bot polls tgq-drain's local Bot API with getUpdates
 * (localapi_updates.c), so the drain runs nothing for its updates.  A kind with
 * neither handle() nor start(): the claim leaves its bot's updates alone.
 */
#include <stddef.h>

#include "drain.h"

static int
pull_setup(const char *bot, const char *value, const char *arg, void **state,
    char *err, size_t errlen)
{
	(void)bot;
	(void)value;
	(void)arg;
	(void)err;
	(void)errlen;
	*state = NULL;
	return 0;
}

static void
pull_release(void *state)
{
	(void)state;
}

const struct handler_ops handler_pull = {
	.setup = pull_setup,
	.release = pull_release,
};
