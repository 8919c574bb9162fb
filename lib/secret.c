/*
 * Secrets: comparison that does not leak where two strings differ, and the shapes
 * Telegram accepts, checked before a secret is used or sent anywhere.
 */
#include <stddef.h>
#include <stdlib.h>
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
 * A secret file holds the secret and, while a rotation is under way, the previous
 * one on a second line.  Each line may end in "\n" or "\r\n" (editors and echo
 * leave one); nothing may follow the second.  The reasons are fixed text: a
 * secret never reaches one.
 */
int
secret_lines_parse(const char *text, size_t len, struct secret_lines *out,
    int *bad_line, const char **why)
{
	const char	*p = text, *end = text + len, *nl;
	size_t		 n;

	memset(out, 0, sizeof(*out));
	while (p < end || out->n == 0) {
		if (out->n == SECRET_LINES_MAX) {
			*bad_line = SECRET_LINES_MAX + 1;
			*why = "more than two lines: a secret file holds the secret, "
			    "then at most the previous one";
			return -1;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl != NULL ? nl : end) - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (!secret_valid(p, n)) {
			*bad_line = (int)out->n + 1;
			*why = out->n == 0 ? "the webhook secret must be 1-256 "
			    "characters of A-Z a-z 0-9 _ -" : "the previous webhook "
			    "secret (the second line) must be 1-256 characters of "
			    "A-Z a-z 0-9 _ -";
			return -1;
		}
		out->line[out->n] = p;
		out->len[out->n++] = n;
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}

/*
 * Both are compared, whichever matches and whether there is a previous one at
 * all (then the current one is compared twice), so that the time tells nothing
 * of which secret a request carried.
 */
int
secret_pair_equal(const char *cand, size_t len, const char *cur, size_t curlen,
    const char *prev, size_t prevlen)
{
	int a, b;

	if (cur == NULL)
		return 0;
	a = secret_equal(cand, len, cur, curlen);
	b = prev != NULL ? secret_equal(cand, len, prev, prevlen) :
	    secret_equal(cand, len, cur, curlen);
	return a | b;
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

void
secret_free(char *s, size_t len)
{
	if (s == NULL)
		return;
	explicit_bzero(s, len);
	free(s);
}
