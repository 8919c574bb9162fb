/*
 * Logging: one line per event on stderr, prefixed with a syslog priority in the
 * "<N>" form that journald (and sd-daemon(3)) understands.  Nothing here knows a
 * secret; callers pass request-derived bytes through log_escape().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tgq.h"

static const char	*log_progname = "tgq";
static enum log_level	 log_max = LOG_LVL_INFO;

void
log_init(const char *progname, enum log_level max_level)
{
	log_progname = progname;
	log_max = max_level;
}

/* One fprintf per line: stderr is unbuffered, so concurrent threads and processes
 * sharing the stream do not interleave within a line (each write is one syscall). */
static void	log_emit(enum log_level, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));

static void
log_emit(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	if (level > log_max)
		return;
	n = snprintf(line, sizeof(line), "<%d>%s: ", (int)level, log_progname);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
}

#define LOG_FUNCTION(name, level)			\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
							\
	va_start(ap, fmt);				\
	log_emit(level, fmt, ap);			\
	va_end(ap);					\
}

LOG_FUNCTION(log_err, LOG_LVL_ERR)
LOG_FUNCTION(log_warnx, LOG_LVL_WARNING)
LOG_FUNCTION(log_info, LOG_LVL_INFO)
LOG_FUNCTION(log_debug, LOG_LVL_DEBUG)

const char *
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i, o = 0;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;

		/* Keep room for "..." and the NUL whenever more input follows. */
		if (o + need + 4 > dstlen) {
			if (dstlen >= 4) {
				o = o + 4 > dstlen ? dstlen - 4 : o;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 1) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
	return dst;
}
