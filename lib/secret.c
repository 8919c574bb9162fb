/*
 * Secrets: comparison that does not leak where two strings differ, and the shapes
 * Telegram accepts, checked before a secret is used or sent anywhere.
 */
#include <stddef.h>

#include "tgq.h"

/*
 * Constant time: every byte of both strings is looked at whatever they contain, so
 * the time taken tells an attacker nothing about how much of a guess was right.  The
 * length is not secret (the caller may learn it by other means), so a length mismatch
 * still walks the candidate to keep the work the same.
 */
int
secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char	 diff = 0;
	size_t			 i;

	diff |= (unsigned char)(alen != blen);
	for (i = 0; i < alen; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[blen ? i % blen : 0];
	if (blen == 0)
		diff |= 1;
	return diff == 0;
}

static int
is_secret_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int
secret_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > 256)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_secret_char((unsigned char)s[i]))
			return 0;
	return 1;
}

int
token_valid(const char *s, size_t len)
{
	size_t i = 0, tail;

	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == 0 || i > 20 || i >= len || s[i] != ':')
		return 0;
	tail = len - i - 1;
	if (tail < 30 || tail > 100)
		return 0;
	for (i++; i < len; i++)
		if (!is_secret_char((unsigned char)s[i]))
			return 0;
	return 1;
}
