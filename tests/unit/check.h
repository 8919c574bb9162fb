/*
 * A minimal unit-test harness: each CHECK prints one line, "name: ok" or
 * "name: FAIL detail", and check_exit() makes the exit status say whether any failed.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(name, cond) do {						\
	if (cond)							\
		printf("%s: ok\n", (name));				\
	else {								\
		printf("%s: FAIL %s:%d: %s\n", (name), __FILE__,	\
		    __LINE__, #cond);					\
		check_failures++;					\
	}								\
} while (0)

static inline int
check_exit(void)
{
	return check_failures == 0 ? 0 : 1;
}

#endif
