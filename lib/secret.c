/*
 * Secrets: comparison that does not leak where two strings differ, and the shapes
 * Telegram accepts, checked before a secret is used or sent anywhere.
 */
#include <stddef.h>
#include <string.h>

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

/*
 * set-webhook records this of the secret it registered, so that a later run can
 * tell the secret changed; Telegram never tells it back.  A plain hash of a short
 * secret could be guessed offline by anyone who may read the queue (the group
 * tgq, while the secret file is root's alone); keyed with the bot token, which
 * such a reader does not have, it cannot.  A new token gives a new fingerprint,
 * and so one registration more, which does no harm.  The file's size, mtime and
 * inode would say "changed" for a file rewritten with the same secret and miss
 * a secret from the environment; the content is what matters.
 */
void
secret_fingerprint(const char *token, size_t token_len, const char *secret,
    size_t secret_len, char hex[SECRET_FINGERPRINT_LEN + 1])
{
	static const char	 digits[] = "0123456789abcdef";
	unsigned char		 mac[SHA256_LEN];
	size_t			 i;

	hmac_sha256(token, token_len, secret, secret_len, mac);
	for (i = 0; i < SHA256_LEN; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0xf];
	}
	hex[SECRET_FINGERPRINT_LEN] = '\0';
	explicit_bzero(mac, sizeof(mac));
}
