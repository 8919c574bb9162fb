/*
 * Where tgq-drain serves its local Bot API: a loopback address and port, or a
 * unix socket.  Only loopback is accepted, so that the bot tokens in its paths
 * never cross a network: whoever can reach the port could use any bot.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tgq.h"

static int
parse_port(const char *text, int *port, char *err, size_t errlen)
{
	const char	*errstr;
	int64_t		 n;

	if (parse_int(text, 1, 65535, &n, &errstr) == -1) {
		snprintf(err, errlen, "the port is %s (1 to 65535)", errstr);
		return -1;
	}
	*port = (int)n;
	return 0;
}

int
listen_parse(const char *text, struct listen_addr *out, char *err, size_t errlen)
{
	struct sockaddr_un	 un;
	const char		*colon, *port;
	unsigned char		 addr[16];
	size_t			 hostlen;

	memset(out, 0, sizeof(*out));
	if (text[0] == '/') {
		if (strlen(text) >= sizeof(un.sun_path) ||
		    strlen(text) >= sizeof(out->path)) {
			snprintf(err, errlen, "the socket path is longer than %zu bytes",
			    sizeof(un.sun_path) - 1);
			return -1;
		}
		out->family = AF_UNIX;
		snprintf(out->path, sizeof(out->path), "%s", text);
		return 0;
	}
	if (text[0] == '[') {
		if ((colon = strstr(text, "]:")) == NULL) {
			snprintf(err, errlen, "must be [::1]:PORT");
			return -1;
		}
		hostlen = (size_t)(colon - text - 1);
		port = colon + 2;
		out->family = AF_INET6;
	} else {
		if ((colon = strrchr(text, ':')) == NULL) {
			snprintf(err, errlen, "must be 127.0.0.1:PORT, [::1]:PORT, "
			    "localhost:PORT or an absolute unix socket path");
			return -1;
		}
		hostlen = (size_t)(colon - text);
		port = colon + 1;
		out->family = AF_INET;
	}
	if (hostlen == 0 || hostlen >= sizeof(out->host)) {
		snprintf(err, errlen, "the address is missing or too long");
		return -1;
	}
	memcpy(out->host, text + (out->family == AF_INET6), hostlen);
	out->host[hostlen] = '\0';
	if (parse_port(port, &out->port, err, errlen) == -1)
		return -1;
	if (out->family == AF_INET && strcmp(out->host, "localhost") == 0)
		snprintf(out->host, sizeof(out->host), "127.0.0.1");
	/* Loopback only: 127.0.0.0/8 and ::1. */
	if (inet_pton(out->family, out->host, addr) != 1) {
		snprintf(err, errlen, "the address is not numeric (only localhost is "
		    "looked up)");
		return -1;
	}
	if ((out->family == AF_INET && addr[0] != 127) ||
	    (out->family == AF_INET6 &&
	    !IN6_IS_ADDR_LOOPBACK((struct in6_addr *)(void *)addr))) {
		snprintf(err, errlen, "only a loopback address (127.0.0.0/8, ::1) or "
		    "a unix socket is accepted");
		return -1;
	}
	return 0;
}
