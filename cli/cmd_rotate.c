/*
 * rotate-secret: a new webhook secret without a refused update.  The secret file
 * gets the new secret on its first line and the one before on its second;
 * tgq-webhook accepts both and rereads the file when it changes, so it takes the
 * new one before Telegram is told (set-webhook's own registration, called as it
 * is).  --finish drops the second line once Telegram sends the new one.  The
 * file is replaced whole (a new file renamed over it, with its owner and mode),
 * so a reader never sees half of it.  No secret is ever printed.
 */
#define _GNU_SOURCE	/* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* 32 random bytes, 43 characters of base64url: within Telegram's 1-256 of
 * A-Z a-z 0-9 _ -. */
#define NEW_SECRET_BYTES 32
#define NEW_SECRET_LEN 43

static int
new_secret(char *out, size_t outlen)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	unsigned char	 raw[NEW_SECRET_BYTES + 2];
	size_t		 got = 0, i, o = 0;
	ssize_t		 n;

	if (outlen < NEW_SECRET_LEN + 1)
		return -1;
	while (got < NEW_SECRET_BYTES) {
		n = getrandom(raw + got, NEW_SECRET_BYTES - got, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	raw[NEW_SECRET_BYTES] = raw[NEW_SECRET_BYTES + 1] = 0;
	for (i = 0; i < NEW_SECRET_BYTES; i += 3) {
		unsigned long v = (unsigned long)raw[i] << 16 |
		    (unsigned long)raw[i + 1] << 8 | raw[i + 2];

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		if (o < NEW_SECRET_LEN)
			out[o++] = alphabet[v >> 6 & 63];
		if (o < NEW_SECRET_LEN)
			out[o++] = alphabet[v & 63];
	}
	out[NEW_SECRET_LEN] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Replaces the file at path (a link's target, not the link) with cur and, when
 * given, prev on a second line: a new file beside it, with the old one's owner and
 * mode, synced, then renamed over it.  -1 after saying why; the old file is then
 * as it was.
 */
static int
replace_secret_file(struct cli *c, const char *path, const char *cur,
    size_t curlen, const char *prev, size_t prevlen)
{
	char		 real[PATH_MAX], dircopy[PATH_MAX], basecopy[PATH_MAX],
			 tmp[PATH_MAX + 16], text[2 * 256 + 4], user[64];
	struct stat	 st, mine;
	size_t		 len = 0;
	int		 fd = -1, dirfd = -1, rc = -1;
	const char	*dir, *base;

	tmp[0] = '\0';
	if (curlen > 256 || prevlen > 256) {
		cli_fail(c, "a secret is longer than 256 characters");
		goto done;
	}
	if (realpath(path, real) == NULL || stat(real, &st) == -1) {
		cli_fail(c, "%s: %s", path, strerror(errno));
		goto done;
	}
	snprintf(dircopy, sizeof(dircopy), "%s", real);
	snprintf(basecopy, sizeof(basecopy), "%s", real);
	dir = dirname(dircopy);
	base = basename(basecopy);
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base) >=
	    (int)sizeof(tmp)) {
		tmp[0] = '\0';
		cli_fail(c, "%s: path too long", real);
		goto done;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		tmp[0] = '\0';
		cli_fail(c, "cannot write beside %s: %s (running as user %s)", real,
		    strerror(errno), running_user(user, sizeof(user)));
		goto done;
	}
	if (fstat(fd, &mine) == -1 || ((mine.st_uid != st.st_uid ||
	    mine.st_gid != st.st_gid) && fchown(fd, st.st_uid, st.st_gid) == -1)) {
		cli_fail(c, "cannot give the new %s the owner of the old one (uid %lu, "
		    "gid %lu): %s; run tgq as root or as the file's owner", real,
		    (unsigned long)st.st_uid, (unsigned long)st.st_gid,
		    strerror(errno));
		goto done;
	}
	if (fchmod(fd, st.st_mode & 07777) == -1) {
		cli_fail(c, "%s: chmod: %s", tmp, strerror(errno));
		goto done;
	}
	memcpy(text, cur, curlen);
	len = curlen;
	text[len++] = '\n';
	if (prev != NULL) {
		memcpy(text + len, prev, prevlen);
		len += prevlen;
		text[len++] = '\n';
	}
	if (write_all(fd, text, len) == -1 || fsync(fd) == -1) {
		cli_fail(c, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if (close(fd) == -1) {
		fd = -1;
		cli_fail(c, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, real) == -1) {
		cli_fail(c, "cannot replace %s: %s", real, strerror(errno));
		goto done;
	}
	tmp[0] = '\0';
	/* The rename itself reaches the disk with the folder. */
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dirfd);
		close(dirfd);
	}
	rc = 0;
done:
	explicit_bzero(text, sizeof(text));
	if (fd != -1)
		close(fd);
	if (tmp[0] != '\0')
		unlink(tmp);
	return rc;
}

/* Only a file that tgq reads itself can be rotated. */
static int
check_rotatable(struct cli *c, const struct bot_config *b)
{
	switch (b->secret_from) {
	case SECRET_FROM_FILE:
		return 0;
	case SECRET_FROM_ENV:
		cli_fail(c, "bot %s: the webhook secret comes from TGQ_WEBHOOK_SECRET, "
		    "which tgq cannot rewrite: keep it in a file (secret_file, or "
		    "TGQ_WEBHOOK_SECRET_FILE) to rotate it", b->name);
		return -1;
	case SECRET_FROM_CREDENTIAL:
		cli_fail(c, "bot %s: the webhook secret is the systemd credential %s, "
		    "a copy tgq cannot rewrite: run tgq rotate-secret outside the unit, "
		    "where secret_file is read itself (as root, without "
		    "CREDENTIALS_DIRECTORY)", b->name, b->secret_path);
		return -1;
	case SECRET_FROM_NONE:
		break;
	}
	cli_fail(c, "bot %s has no webhook secret file to rotate: set secret_file "
	    "(or TGQ_WEBHOOK_SECRET_FILE)", b->name);
	return -1;
}

/* set-webhook as it is, with the secret now in the configuration. */
static int
register_secret(struct cli *c)
{
	char	 name[] = "set-webhook";
	char	*args[] = { name, NULL };

	optind = 0;	/* glibc: getopt starts afresh */
	return cmd_set_webhook(c, 1, args);
}

static void
say(struct cli *c, const char *text)
{
	if (!c->json)
		printf("%s\n", text);
}

/* The state for a program: which file, how many secrets it holds now. */
static void
json_state(const struct bot_config *b, int registered)
{
	struct jsonw w;

	cli_json_begin(&w, 1);
	jw_key(&w, "bot");
	jw_string(&w, b->name);
	jw_key(&w, "secret_file");
	jw_string(&w, b->secret_path);
	jw_key(&w, "secrets");
	jw_int(&w, b->secret_prev != NULL ? 2 : 1);
	jw_key(&w, "registered");
	jw_bool(&w, registered);
	cli_json_end(&w);
}

static int
finish(struct cli *c, struct bot_config *b)
{
	char line[PATH_MAX + 200];

	if (b->secret_prev == NULL) {
		snprintf(line, sizeof(line), "bot %s: nothing to finish: %s holds one "
		    "secret", b->name, b->secret_path);
		say(c, line);
	} else {
		if (replace_secret_file(c, b->secret_path, b->secret, b->secret_len,
		    NULL, 0) == -1)
			return EXIT_FAILED;
		explicit_bzero(b->secret_prev, b->secret_prev_len);
		free(b->secret_prev);
		b->secret_prev = NULL;
		b->secret_prev_len = 0;
		snprintf(line, sizeof(line), "bot %s: the previous webhook secret is "
		    "removed from %s: tgq-webhook refuses it within a second", b->name,
		    b->secret_path);
		say(c, line);
	}
	if (c->json)
		json_state(b, 0);
	return EXIT_OK;
}

/* Writes a new secret before the current one, which becomes the previous. */
static int
rotate(struct cli *c, struct bot_config *b)
{
	char	 secret[NEW_SECRET_LEN + 1], *copy, line[PATH_MAX + 200];

	if (new_secret(secret, sizeof(secret)) == -1)
		return cli_fail(c, "getrandom: %s", strerror(errno));
	if (replace_secret_file(c, b->secret_path, secret, NEW_SECRET_LEN, b->secret,
	    b->secret_len) == -1) {
		explicit_bzero(secret, sizeof(secret));
		return EXIT_FAILED;
	}
	copy = strdup(secret);
	explicit_bzero(secret, sizeof(secret));
	if (copy == NULL)
		return cli_fail(c, "out of memory");
	b->secret_prev = b->secret;
	b->secret_prev_len = b->secret_len;
	b->secret = copy;
	b->secret_len = NEW_SECRET_LEN;
	snprintf(line, sizeof(line), "bot %s: a new webhook secret is written to %s; "
	    "the one before stays accepted on its second line", b->name,
	    b->secret_path);
	say(c, line);
	return EXIT_OK;
}

int
cmd_rotate_secret(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "finish", no_argument, NULL, 'f' },
		{ "no-register", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command	*cmd = cli_command("rotate-secret");
	struct bot_config	*b;
	char			 line[PATH_MAX + 200];
	int			 opt, rc, finishing = 0, no_register = 0;

	for (;;) {
		if (cli_getopt(cmd, argc, argv, "h", longopts, &opt, &rc))
			return rc;
		if (opt == -1)
			break;
		if (opt == 'f')
			finishing = 1;
		else
			no_register = 1;
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
	if (finishing && no_register)
		return cli_usage_error(cmd, "--finish registers nothing: give it alone");
	if (c->bot == NULL)
		return cli_fail(c, "no bot is configured");
	b = &c->cfg.bots[c->bot - c->cfg.bots];
	if (check_rotatable(c, b) == -1)
		return EXIT_FAILED;
	if (finishing)
		return finish(c, b);
	/* What registration needs is checked before the file is touched. */
	if (!no_register && b->webhook_url == NULL)
		return cli_fail(c, "bot %s has no webhook_url to register the new secret "
		    "with: set it (TGQ_WEBHOOK_URL), or give --no-register", b->name);
	if (!no_register && cli_token(c) == NULL)
		return EXIT_FAILED;
	if (b->secret_prev != NULL) {
		/* Making another would drop the secret Telegram may still send. */
		snprintf(line, sizeof(line), "bot %s: %s holds two secrets already (a "
		    "rotation not finished): its new one is kept%s", b->name,
		    b->secret_path, no_register ? "" : " and registered again");
		say(c, line);
	} else if ((rc = rotate(c, b)) != EXIT_OK)
		return rc;
	if (no_register) {
		say(c, "not registered: when tgq-webhook accepts both (it rereads the "
		    "file by itself; a LoadCredential= copy after systemctl restart "
		    "tgq-webhook), run tgq set-webhook");
		if (c->json)
			json_state(b, 0);
		return EXIT_OK;
	}
	if ((rc = register_secret(c)) != EXIT_OK) {
		fprintf(stderr, "tgq: bot %s: the new secret is in %s but Telegram was "
		    "not told: it still sends the previous one, which tgq-webhook "
		    "accepts too, so no update is refused.  Run tgq rotate-secret again "
		    "to register it (it makes no other).\n", b->name, b->secret_path);
		return rc;
	}
	say(c, "Telegram sends the new secret from now on; both are accepted until "
	    "tgq rotate-secret --finish (a few minutes later, when the deliveries "
	    "begun before have ended)");
	return EXIT_OK;
}
