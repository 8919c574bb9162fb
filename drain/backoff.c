/*
 * How long a failed attempt waits before the next one: the same rule for a
 * handler that failed and for a Bot API call that failed.
 */
#include <stdint.h>
#include <stdlib.h>

#include "drain.h"

#define BACKOFF_CAP_S 300

/* Exponential backoff with jitter: about 1, 2, 4 ... s after each failure, capped,
 * spread over +-25% so that many failures do not come back at the same second. */
int64_t
retry_backoff_s(int64_t failures)
{
	int64_t base = 1;

	while (failures-- > 1 && base < BACKOFF_CAP_S)
		base *= 2;
	if (base > BACKOFF_CAP_S)
		base = BACKOFF_CAP_S;
	return base * 3 / 4 + (int64_t)(random() % (base / 2 + 1));
}
