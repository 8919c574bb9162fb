/*
 * The update types a bot may ask Telegram for (allowed_updates of setWebhook and
 * getUpdates), by Telegram's names: a name Telegram does not know would make it
 * refuse the whole call, or, worse, be dropped quietly, so a typo is caught here,
 * when the configuration or the command line is read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgq.h"

/* The Update object's fields, as the Bot API documents them; a type Telegram
 * adds later is one line here. */
static const char *const update_types[] = {
	"message", "edited_message", "channel_post", "edited_channel_post",
	"business_connection", "business_message", "edited_business_message",
	"deleted_business_messages", "message_reaction", "message_reaction_count",
	"inline_query", "chosen_inline_result", "callback_query", "shipping_query",
	"pre_checkout_query", "purchased_paid_media", "poll", "poll_answer",
	"my_chat_member", "chat_member", "chat_join_request", "chat_boost",
	"removed_chat_boost", "managed_bot",
};
#define NTYPES (sizeof(update_types) / sizeof(update_types[0]))

static int
update_type_known(const char *name)
{
	size_t i;

	for (i = 0; i < NTYPES; i++)
		if (strcmp(update_types[i], name) == 0)
			return 1;
	return 0;
}

int
update_types_json(const char *text, char **out, char *err, size_t errlen)
{
	/* Each known name at most once, with its quotes and comma. */
	char		 json[NTYPES * (UPDATE_TYPE_MAX + 3) + 3], entry[UPDATE_TYPE_MAX + 1];
	unsigned char	 seen[NTYPES];
	const char	*p = text;
	size_t		 n = 0, used, i;
	int		 rc;

	*out = NULL;
	memset(seen, 0, sizeof(seen));
	used = (size_t)snprintf(json, sizeof(json), "[");
	while ((rc = list_next(&p, entry, sizeof(entry))) == 1) {
		n++;
		if (!update_type_known(entry)) {
			snprintf(err, errlen, "entry %zu is not an update type Telegram "
			    "knows (message, edited_message, callback_query, ...; see "
			    "tgq.conf(5))", n);
			return -1;
		}
		for (i = 0; strcmp(update_types[i], entry) != 0; i++)
			;
		if (seen[i]++)
			continue;	/* a repeat asks for nothing more */
		used += (size_t)snprintf(json + used, sizeof(json) - used, "%s\"%s\"",
		    used > 1 ? "," : "", entry);
	}
	if (rc == -1) {
		snprintf(err, errlen, "entry %zu is not an update type Telegram knows "
		    "(too long)", n + 1);
		return -1;
	}
	if (n == 0) {
		snprintf(err, errlen, "an empty list (name the update types, e.g. "
		    "message, callback_query)");
		return -1;
	}
	snprintf(json + used, sizeof(json) - used, "]");
	if ((*out = strdup(json)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
