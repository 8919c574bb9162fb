/*
 * Lists of Telegram user ids (a bot's allowed_users): positive numbers separated
 * by commas or blanks.  Errors name the entry by its place, never its text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgq.h"

/* Telegram's user ids fit in 52 bits; anything longer is a mistake. */
#define USER_ID_MAX ((INT64_C(1) << 52) - 1)

int
user_list_parse(const char *text, struct user_list *list, char *err, size_t errlen)
{
	struct user_list new = { NULL, 0 };
	const char	*p = text, *errstr = NULL;
	char		 entry[32];
	int64_t		*grown;
	size_t		 cap = 0;
	int		 index = 0, rc;

	while ((rc = list_next(&p, entry, sizeof(entry))) != 0) {
		index++;
		if (rc == -1) {
			snprintf(err, errlen, "entry %d is not a user id (too long)",
			    index);
			goto fail;
		}
		if (new.n == USER_LIST_MAX) {
			snprintf(err, errlen, "more than %d users", USER_LIST_MAX);
			goto fail;
		}
		if (new.n == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((grown = realloc(new.ids, cap * sizeof(*grown))) == NULL) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			new.ids = grown;
		}
		if (parse_int(entry, 1, USER_ID_MAX, &new.ids[new.n], &errstr) == -1) {
			snprintf(err, errlen, "entry %d is not a user id (%s; a "
			    "positive number)", index, errstr);
			goto fail;
		}
		new.n++;
	}
	user_list_free(list);
	*list = new;
	return 0;
fail:
	free(new.ids);
	return -1;
}

int
user_list_allows(const struct user_list *list, int64_t user)
{
	size_t i;

	if (list->n == 0)
		return 1;
	for (i = 0; i < list->n; i++)
		if (list->ids[i] == user)
			return 1;
	return 0;
}

void
user_list_free(struct user_list *list)
{
	free(list->ids);
	list->ids = NULL;
	list->n = 0;
}
