/*
 * Small shared helpers: the one bounded number parser every flag and key goes
 * through, clocks, and reading a secret file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "tgq.h"

/*
 * Digits only, optional leading '-': strtoll alone would accept " 12", "+12" and
 * "12abc" (partially), and atoi would accept anything.
 */
static int
parse_with_suffix(const char *text, int64_t min, int64_t max, int64_t *out,
    const char **errstr, const char *suffixes, const int64_t *scales)
{
	const char	*p = text, *digits;
	int64_t		 value = 0, scale = 1;
	int		 negative = 0;

	if (text == NULL || *text == '\0') {
		*errstr = "empty";
		return -1;
	}
	if (*p == '-') {
		negative = 1;
		p++;
	}
	digits = p;
	for (; *p >= '0' && *p <= '9'; p++) {
		int digit = *p - '0';

		if (value > (INT64_MAX - digit) / 10) {
			*errstr = "too large";
			return -1;
		}
		value = value * 10 + digit;
	}
	if (p == digits) {
		*errstr = "not a number";
		return -1;
	}
	if (*p != '\0') {
		const char *s = suffixes != NULL ? strchr(suffixes, *p) : NULL;

		if (s == NULL || p[1] != '\0') {
			*errstr = "not a number";
			return -1;
		}
		scale = scales[s - suffixes];
	}
	if (value > INT64_MAX / scale) {
		*errstr = "too large";
		return -1;
	}
	value *= scale;
	if (negative)
		value = -value;
	if (value < min) {
		*errstr = "too small";
		return -1;
	}
	if (value > max) {
		*errstr = "too large";
		return -1;
	}
	*out = value;
	return 0;
}

int
parse_int(const char *text, int64_t min, int64_t max, int64_t *out,
    const char **errstr)
{
	return parse_with_suffix(text, min, max, out, errstr, NULL, NULL);
}

int
parse_size(const char *text, int64_t min, int64_t max, int64_t *out,
    const char **errstr)
{
	static const int64_t scales[] = { 1024, 1024 * 1024, 1024 * 1024 * 1024 };

	return parse_with_suffix(text, min, max, out, errstr, "KMG", scales);
}

int
parse_duration(const char *text, int64_t min, int64_t max, int64_t *out,
    const char **errstr)
{
	static const int64_t scales[] = { 1, 60, 3600, 86400 };

	return parse_with_suffix(text, min, max, out, errstr, "smhd", scales);
}

int64_t
now_unix(void)
{
	return (int64_t)time(NULL);
}

int64_t
now_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
now_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
read_small_file(const char *path, size_t max, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* Read one byte past max so that a file that is too large is noticed. */
	while (len <= max) {
		n = read(fd, buf + len, max + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
		goto fail;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

const char *
running_user(char *buf, size_t len)
{
	struct passwd *pw = getpwuid(geteuid());

	if (pw != NULL && pw->pw_name != NULL)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "uid %lu", (unsigned long)geteuid());
	return buf;
}

void
tgq_umask(void)
{
	umask(TGQ_UMASK);
}

int
check_std_fds(void)
{
	int fd, null;

	for (fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		if ((null = open("/dev/null", O_RDWR)) == -1)
			return -1;
		if (null != fd) {	/* cannot be: the lower ones are open */
			close(null);
			return -1;
		}
	}
	return 0;
}

int
list_next(const char **p, char *entry, size_t entrylen)
{
	size_t len;

	*p += strspn(*p, " \t,");
	if ((len = strcspn(*p, " \t,")) == 0)
		return 0;
	if (len >= entrylen)
		return -1;
	memcpy(entry, *p, len);
	entry[len] = '\0';
	*p += len;
	return 1;
}
