/*
 * Fuzz target: config_load() (lib/config.c) on a tgq.conf that is the input.
 *
 * LLVMFuzzerInitialize makes a private temp dir, clears the TGQ_* environment and
 * CREDENTIALS_DIRECTORY, and puts secret files beside the config file that inputs
 * may name (relative secret_file and token_file names resolve there):
 *   webhook-secret, webhook-secret-shop   valid secrets holding the canary
 *   bot-token                             a valid token holding the canary
 *   bad-secret, bad-token                 invalid ones holding the canary
 * Each input is written to <dir>/tgq.conf and loaded.
 *
 * Invariant: an error never quotes a secret or a value.  The canary
 * "CANARY_SECRET_1234567890" is in the seeds and the dictionary as a value and in
 * every secret file; err must not contain it, unless the input also has it where
 * config.c may legitimately quote (a key name, a section, a *_file path, an entry
 * of allowed_ips or trusted_proxies: cidr_parse names the wrong one).  Also:
 * err is NUL-terminated; on success the bots have valid names and secrets,
 * config_free releases everything (LeakSanitizer checks).
 *
 * Inputs that could reach files outside the dir ('/' other than in
 * "/nonexistent/", or "..") are skipped: a FIFO or /proc/kmsg would block.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "tgq.h"

#define CANARY "CANARY_SECRET_1234567890"

extern char **environ;

static char	 dir[] = "/tmp/tgq-fuzz-config-XXXXXX";
static char	 conf_path[sizeof(dir) + 16];

static void
cleanup(void)
{
	static const char *const names[] = { "tgq.conf", "webhook-secret",
	    "webhook-secret-shop", "bot-token", "bad-secret", "bad-token" };
	char	 path[sizeof(dir) + 32];
	size_t	 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int
write_file(const char *path, const void *data, size_t len)
{
	int	 fd;
	ssize_t	 n;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		return -1;
	n = len > 0 ? write(fd, data, len) : 0;
	if (close(fd) == -1 || n < 0 || (size_t)n != len)
		return -1;
	return 0;
}

static int
put_secret_file(const char *name, const char *text)
{
	char path[sizeof(dir) + 32];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return write_file(path, text, strlen(text));
}

/* Takes out every TGQ_* variable: the input alone must decide. */
static void
clear_environment(void)
{
	char	 name[256];
	size_t	 i, n;

	for (i = 0; environ[i] != NULL;) {
		if (strncmp(environ[i], "TGQ_", 4) != 0) {
			i++;
			continue;
		}
		n = strcspn(environ[i], "=");
		if (n >= sizeof(name))
			abort();
		memcpy(name, environ[i], n);
		name[n] = '\0';
		if (unsetenv(name) == -1)
			abort();
	}
	unsetenv("CREDENTIALS_DIRECTORY");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	clear_environment();
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(cleanup);
	snprintf(conf_path, sizeof(conf_path), "%s/tgq.conf", dir);
	if (put_secret_file("webhook-secret", CANARY "\n") == -1 ||
	    put_secret_file("webhook-secret-shop", "x" CANARY "y") == -1 ||
	    put_secret_file("bot-token",
	    "123456789:" CANARY "_abcdefghijklmno\n") == -1 ||
	    put_secret_file("bad-secret", CANARY "!not valid") == -1 ||
	    put_secret_file("bad-token", "12:" CANARY) == -1)
		abort();
	return 0;
}

/* Paths that leave the dir: skipped (see above). */
static int
escapes_dir(const uint8_t *data, size_t size)
{
	static const char	 ok[] = "/nonexistent/";
	size_t			 i;

	for (i = 0; i < size; i++) {
		if (data[i] == '.' && i + 1 < size && data[i + 1] == '.')
			return 1;
		if (data[i] != '/')
			continue;
		if (size - i < sizeof(ok) - 1 || memcmp(data + i, ok, sizeof(ok) - 1) != 0)
			return 1;
		i += sizeof(ok) - 2;
	}
	return 0;
}

/* memmem(3), which _DEFAULT_SOURCE does not declare. */
static int
contains(const char *hay, size_t haylen, const char *needle, size_t len)
{
	size_t i;

	for (i = 0; len <= haylen && i <= haylen - len; i++)
		if (memcmp(hay + i, needle, len) == 0)
			return 1;
	return 0;
}

/* inih trims with isspace(): blank, \t, \n, \v, \f, \r. */
static int
is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static const char *
skip_space(const char *s, const char *end)
{
	while (s < end && is_space(*s))
		s++;
	return s;
}

/*
 * 1 when the canary is somewhere config.c may quote: in a line's key (before the
 * first '=' or ':', as inih splits), in a section header, in a line inih does not
 * take apart, or in the value of a *_file key (a path, quoted when unreadable) or
 * of allowed_ips or trusted_proxies (not secrets; the wrong entry is named).
 */
static int
canary_quotable(const char *text, size_t len)
{
	const char	*line = text, *end = text + len;

	while (line < end) {
		const char	*nl = memchr(line, '\n', (size_t)(end - line));
		const char	*eol = nl != NULL ? nl : end;
		const char	*s = skip_space(line, eol), *delim, *p, *kend;

		if (contains(s, (size_t)(eol - s), CANARY, sizeof(CANARY) - 1)) {
			for (delim = s; delim < eol && *delim != '=' && *delim != ':';
			    delim++)
				continue;
			if (*s == '[' || delim == eol)
				return 1;
			if (contains(s, (size_t)(delim - s), CANARY,
			    sizeof(CANARY) - 1))
				return 1;
			for (kend = delim; kend > s && is_space(kend[-1]); kend--)
				continue;
			p = kend - 5;
			if (kend - s >= 5 && memcmp(p, "_file", 5) == 0)
				return 1;
			if ((kend - s == 11 && memcmp(s, "allowed_ips", 11) == 0) ||
			    (kend - s == 15 && memcmp(s, "trusted_proxies", 15) == 0))
				return 1;
		}
		line = eol + 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	 cfg;
	char		 err[512];
	size_t		 i;

	if (escapes_dir(data, size))
		return 0;
	if (write_file(conf_path, data, size) == -1)
		abort();
	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if (config_load(conf_path, &cfg, err, sizeof(err)) == -1) {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(strncmp(err, "XXXX", 4) != 0);	/* says why */
		if (strstr(err, CANARY) != NULL &&
		    !canary_quotable((const char *)data, size)) {
			fprintf(stderr, "err: %s\n", err);
			FUZZ_CHECK(!"the canary reached err");
		}
		return 0;
	}
	FUZZ_CHECK(cfg.nbots <= CONFIG_MAX_BOTS);
	FUZZ_CHECK(cfg.database != NULL && cfg.api_url != NULL);
	FUZZ_CHECK(cfg.lease_s > cfg.handler_timeout_s &&
	    cfg.lease_s > cfg.send_timeout_s);
	for (i = 0; i < cfg.nbots; i++) {
		const struct bot_config *b = &cfg.bots[i];

		FUZZ_CHECK(b->name[0] != '\0' &&
		    memchr(b->name, '\0', sizeof(b->name)) != NULL);
		FUZZ_CHECK(config_bot(&cfg, b->name, strlen(b->name)) == b);
		FUZZ_CHECK(b->secret == NULL || secret_valid(b->secret, b->secret_len));
		FUZZ_CHECK(b->token == NULL || token_valid(b->token, b->token_len));
	}
	config_free(&cfg);
	return 0;
}
