/* Unit tests for lib/sha256.c (the standards' vectors), secret_fingerprint()
 * and update_types_json(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tgq.h"

static void
hex(const unsigned char *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int
sha256_is(const char *data, size_t len, const char *want)
{
	unsigned char	 d[SHA256_LEN];
	char		 got[2 * SHA256_LEN + 1];

	sha256(data, len, d);
	hex(d, sizeof(d), got);
	return strcmp(got, want) == 0;
}

static int
hmac_is(const char *key, size_t keylen, const char *data, size_t len,
    const char *want)
{
	unsigned char	 d[SHA256_LEN];
	char		 got[2 * SHA256_LEN + 1];

	hmac_sha256(key, keylen, data, len, d);
	hex(d, sizeof(d), got);
	return strcmp(got, want) == 0;
}

static void
test_sha256(void)
{
	char	*million;
	char	 key[131];

	/* FIPS 180-4 examples (NIST CSRC). */
	CHECK("sha256_empty", sha256_is("", 0, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855"));
	CHECK("sha256_abc", sha256_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad"));
	CHECK("sha256_two_blocks", sha256_is("abcdbcdecdefdefgefghfghighijhijkijkl"
	    "jklmklmnlmnomnopnopq", 56, "248d6a61d20638b8e5c026930c3e6039a33ce459"
	    "64ff2167f6ecedd419db06c1"));
	if ((million = malloc(1000000)) != NULL) {
		memset(million, 'a', 1000000);
		CHECK("sha256_million_a", sha256_is(million, 1000000,
		    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
		free(million);
	}
	/* RFC 4231 test cases 2 and 6 (a key longer than a block). */
	CHECK("hmac_rfc4231_2", hmac_is("Jefe", 4, "what do ya want for nothing?", 28,
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
	memset(key, 0xaa, sizeof(key));
	CHECK("hmac_rfc4231_6", hmac_is(key, sizeof(key), "Test Using Larger Than "
	    "Block-Size Key - Hash Key First", 54, "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54"));
}

static void
test_fingerprint(void)
{
	char a[SECRET_FINGERPRINT_LEN + 1], b[SECRET_FINGERPRINT_LEN + 1];

	secret_fingerprint("1:tok", 5, "secret", 6, a);
	secret_fingerprint("1:tok", 5, "secret", 6, b);
	CHECK("fingerprint_stable", strcmp(a, b) == 0 && strlen(a) == 64);
	CHECK("fingerprint_is_the_hmac", hmac_is("1:tok", 5, "secret", 6, a));
	secret_fingerprint("1:tok", 5, "secreT", 6, b);
	CHECK("fingerprint_secret_changed", strcmp(a, b) != 0);
	secret_fingerprint("2:tok", 5, "secret", 6, b);
	CHECK("fingerprint_keyed_by_token", strcmp(a, b) != 0);
	CHECK("fingerprint_hides_secret", strstr(a, "secret") == NULL);
}

static int
types_are(const char *text, const char *want)
{
	char	*json = NULL, err[256];
	int	 ok;

	ok = update_types_json(text, &json, err, sizeof(err)) == 0 &&
	    strcmp(json, want) == 0;
	free(json);
	return ok;
}

static int
types_fail(const char *text, const char *why)
{
	char	*json = NULL, err[256] = "";

	return update_types_json(text, &json, err, sizeof(err)) == -1 &&
	    json == NULL && strstr(err, why) != NULL;
}

static void
test_update_types(void)
{
	CHECK("types_one", types_are("message", "[\"message\"]"));
	CHECK("types_list", types_are("message, callback_query\tpoll",
	    "[\"message\",\"callback_query\",\"poll\"]"));
	CHECK("types_repeat_dropped", types_are("message,message,,poll",
	    "[\"message\",\"poll\"]"));
	CHECK("types_every_known", types_are("chat_member message_reaction "
	    "message_reaction_count deleted_business_messages removed_chat_boost",
	    "[\"chat_member\",\"message_reaction\",\"message_reaction_count\","
	    "\"deleted_business_messages\",\"removed_chat_boost\"]"));
	CHECK("types_unknown", types_fail("message,mesage", "entry 2 is not"));
	CHECK("types_case", types_fail("Message", "entry 1 is not"));
	CHECK("types_quote", types_fail("message\"]", "entry 1 is not"));
	CHECK("types_too_long", types_fail("message, " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaa", "entry 2"));
	CHECK("types_empty", types_fail(" , ", "an empty list"));
}

int
main(void)
{
	test_sha256();
	test_fingerprint();
	test_update_types();
	return check_exit();
}
