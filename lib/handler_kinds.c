/*
 * Which kind of handler a configured value names, and whether its argument has
 * the kind's shape: the one place both the configuration and tgq-drain learn
 * it from (handler_kinds.h holds the table).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tgq.h"

struct kind_row {
	const char		*value;
	enum handler_shape	 shape;
	const char		*usage;
};

static const struct kind_row kinds[HANDLER_KIND_COUNT] = {
#define HANDLER_KIND_ROW(KIND, ops, value, shape, usage)	\
	[HANDLER_KIND_##KIND] = { value, shape, usage },
	HANDLER_KINDS(HANDLER_KIND_ROW)
#undef HANDLER_KIND_ROW
};

/*
 * An http handler's URL: http:// or https://, a host (a name, an IPv4 address
 * or [an IPv6 one]), an optional :port, then a path; printable ASCII without
 * blanks or a fragment.  No user or password: the URL is in the configuration
 * and the logs, and the bot's secret goes in a header (forward_secret_file).
 * 0, or -1 with why, which never quotes the URL.
 */
static int
url_check(const char *botname, const char *url, char *why, size_t whylen)
{
	const char	*p, *host, *end;
	const char	*errstr;
	char		 port[8];
	int64_t		 n;

	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		snprintf(why, whylen, "bot %s: handler URL must start with http:// "
		    "or https://", botname);
		return -1;
	}
	p = url + (strncmp(url, "https://", 8) == 0 ? 8 : 7);
	end = p + strcspn(p, "/?");
	for (host = url; *host != '\0'; host++)
		if ((unsigned char)*host <= 0x20 || (unsigned char)*host >= 0x7f ||
		    *host == '#') {
			snprintf(why, whylen, "bot %s: handler URL has a blank, a "
			    "control character, a non-ASCII byte or a #fragment",
			    botname);
			return -1;
		}
	if (memchr(p, '@', (size_t)(end - p)) != NULL) {
		snprintf(why, whylen, "bot %s: handler URL must not hold a user or "
		    "password (the bot's secret goes in forward_secret_file)", botname);
		return -1;
	}
	host = p;
	if (*p == '[') {
		p++;
		while (p < end && (isxdigit((unsigned char)*p) || *p == ':' ||
		    *p == '.'))
			p++;
		if (p == end || *p != ']' || p - host < 3) {
			snprintf(why, whylen, "bot %s: handler URL has a bad IPv6 address",
			    botname);
			return -1;
		}
		p++;
	} else {
		while (p < end && (isalnum((unsigned char)*p) || *p == '-' ||
		    *p == '.' || *p == '_'))
			p++;
		if (p == host) {
			snprintf(why, whylen, "bot %s: handler URL has no host", botname);
			return -1;
		}
	}
	if (p < end && *p == ':') {
		if ((size_t)(end - p - 1) >= sizeof(port)) {
			snprintf(why, whylen, "bot %s: handler URL port must be 1 to 65535",
			    botname);
			return -1;
		}
		memcpy(port, p + 1, (size_t)(end - p - 1));
		port[end - p - 1] = '\0';
		if (parse_int(port, 1, 65535, &n, &errstr) == -1) {
			snprintf(why, whylen, "bot %s: handler URL port must be 1 to 65535",
			    botname);
			return -1;
		}
		p = end;
	}
	if (p != end) {
		snprintf(why, whylen, "bot %s: handler URL host has a character a host "
		    "name cannot have", botname);
		return -1;
	}
	return 0;
}

int
handler_program(const char *botname, const char *arg, char *prog,
    size_t proglen, char *why, size_t whylen)
{
	const char	*p;
	size_t		 n;

	p = arg + strspn(arg, " \t");
	n = strcspn(p, " \t");
	if (n == 0 || p[0] != '/') {
		snprintf(why, whylen, "bot %s: handler exec: needs an absolute program "
		    "path", botname);
		return -1;
	}
	if (n >= proglen) {
		snprintf(why, whylen, "bot %s: handler program path too long", botname);
		return -1;
	}
	memcpy(prog, p, n);
	prog[n] = '\0';
	return 0;
}

/* "bot B: handler must be echo, exec:PROGRAM [ARGS], ... or https://...". */
static void
say_kinds(const char *botname, char *why, size_t whylen)
{
	size_t i, used;

	used = (size_t)snprintf(why, whylen, "bot %s: handler must be", botname);
	for (i = 0; i < HANDLER_KIND_COUNT && used < whylen; i++)
		used += (size_t)snprintf(why + used, whylen - used, "%s %s",
		    i == 0 ? "" : i + 1 == HANDLER_KIND_COUNT ? " or" : ",",
		    kinds[i].usage);
}

int
handler_kind_parse(const char *botname, const char *value,
    enum handler_kind *kind, const char **arg, char *why, size_t whylen)
{
	char	 prog[4096];
	size_t	 i, n;

	if (value == NULL)
		value = "echo";
	for (i = 0; i < HANDLER_KIND_COUNT; i++) {
		n = strlen(kinds[i].value);
		if (kinds[i].value[n - 1] == ':' ?
		    strncmp(value, kinds[i].value, n) == 0 :
		    strcmp(value, kinds[i].value) == 0)
			break;
	}
	if (i == HANDLER_KIND_COUNT) {
		say_kinds(botname, why, whylen);
		return -1;
	}
	*kind = (enum handler_kind)i;
	*arg = kinds[i].value[n - 1] == ':' ? value + n : NULL;
	switch (kinds[i].shape) {
	case HANDLER_SHAPE_NONE:
		return 0;
	case HANDLER_SHAPE_PROGRAM:
		return handler_program(botname, *arg, prog, sizeof(prog), why, whylen);
	case HANDLER_SHAPE_URL:
		return url_check(botname, value, why, whylen);
	}
	return -1;
}

enum handler_shape
handler_kind_shape(enum handler_kind kind)
{
	return kinds[kind].shape;
}
