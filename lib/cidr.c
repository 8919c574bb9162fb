/*
 * Address lists for the webhook's allowlist and its trusted proxies: CIDR
 * networks, IPv4 and IPv6, parsed once at start and matched per request.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "tgq.h"

/* Where Telegram's webhook requests come from, as its documentation lists them. */
static const char telegram_ranges[] = "149.154.160.0/20, 91.108.4.0/22";

static int
parse_addr(const char *text, int *family, unsigned char *addr)
{
	if (inet_pton(AF_INET, text, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

static int
parse_one(const char *entry, struct cidr *net)
{
	char		 addr[64];
	const char	*slash = strchr(entry, '/'), *errstr;
	size_t		 len = slash ? (size_t)(slash - entry) : strlen(entry);
	int64_t		 prefix;
	int		 bits;

	if (len == 0 || len >= sizeof(addr))
		return -1;
	memcpy(addr, entry, len);
	addr[len] = '\0';
	memset(net, 0, sizeof(*net));
	if (parse_addr(addr, &net->family, net->addr) == -1)
		return -1;
	bits = net->family == AF_INET ? 32 : 128;
	if (slash == NULL)
		prefix = bits;
	else if (parse_int(slash + 1, 0, bits, &prefix, &errstr) == -1)
		return -1;
	net->prefix = (int)prefix;
	return 0;
}

static int
add_list(const char *text, struct cidr_list *list, char *err, size_t errlen,
    int depth)
{
	char		 entry[64];
	const char	*p = text;
	int		 index = 0, rc;

	while ((rc = list_next(&p, entry, sizeof(entry))) != 0) {
		if (rc == -1) {
			snprintf(err, errlen, "an address entry is too long");
			return -1;
		}
		index++;
		if (strcmp(entry, "telegram") == 0 && depth == 0) {
			if (add_list(telegram_ranges, list, err, errlen, 1) == -1)
				return -1;
			continue;
		}
		if (list->n == CIDR_MAX) {
			snprintf(err, errlen, "more than %d networks", CIDR_MAX);
			return -1;
		}
		/* Which entry, not its text: configuration errors quote nothing. */
		if (parse_one(entry, &list->nets[list->n]) == -1) {
			snprintf(err, errlen, "entry %d is not an address or a network "
			    "(a.b.c.d/n, x:y::/n, or telegram)", index);
			return -1;
		}
		list->n++;
	}
	return 0;
}

int
cidr_parse(const char *text, struct cidr_list *list, char *err, size_t errlen)
{
	memset(list, 0, sizeof(*list));
	return add_list(text, list, err, errlen, 0);
}

static int
prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

int
cidr_match(const struct cidr_list *list, const char *text)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff };
	unsigned char	 addr[16];
	int		 family;
	size_t		 i;

	if (text == NULL || parse_addr(text, &family, addr) == -1)
		return 0;
	/* ::ffff:a.b.c.d is the IPv4 address a.b.c.d (dual-stack listeners). */
	if (family == AF_INET6 && memcmp(addr, mapped, sizeof(mapped)) == 0) {
		memmove(addr, addr + 12, 4);
		family = AF_INET;
	}
	for (i = 0; i < list->n; i++)
		if (list->nets[i].family == family &&
		    prefix_equal(addr, list->nets[i].addr, list->nets[i].prefix))
			return 1;
	return 0;
}
