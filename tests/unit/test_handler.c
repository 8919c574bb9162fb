/*
 * Unit tests for drain/handler.c: real children (/bin/sh scripts) driven by a small
 * poll() loop like the drain's.  One line per case: "handler_<name>: ok" or
 * "handler_<name>: FAIL detail".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgq.h"
#include "handler.h"

#define MIB		(1024 * 1024)
#define MAX_RUNS	8

static int	failures;
static char	tmpdir[] = "/tmp/tgq-handler-XXXXXX";

static void	report(const char *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
report(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("handler_%s: ok\n", name);
		return;
	}
	failures++;
	printf("handler_%s: FAIL ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static const char *
tmp_path(const char *name)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static const char *
status_name(enum handler_status s)
{
	return s == HANDLER_OK ? "OK" : s == HANDLER_FAILED ? "FAILED" : "INVALID";
}

static struct handler_limits
limits(int64_t timeout_ms, size_t max_output, size_t max_stderr)
{
	struct handler_limits l;

	l.timeout_ms = timeout_ms;
	l.max_output = max_output;
	l.max_stderr_logged = max_stderr;
	return l;
}

/*
 * The drain's loop in small: poll every unfinished run's descriptors until the
 * earliest deadline, then step them all.  Returns -1 when the loop took over 20 s.
 */
static int
drive(struct handler_run **runs, struct handler_result *res, int n)
{
	struct pollfd	 fds[MAX_RUNS * HANDLER_MAX_POLLFDS];
	int64_t		 now, next, giveup = now_unix_ms() + 20000;
	int		 i, nfds, left = n, timeout;

	while (left > 0) {
		now = now_unix_ms();
		if (now > giveup)
			return -1;
		nfds = 0;
		next = now + 1000;
		for (i = 0; i < n; i++) {
			if (runs[i] == NULL)
				continue;
			nfds += handler_pollfds(runs[i], fds + nfds,
			    HANDLER_MAX_POLLFDS);
			if (handler_deadline(runs[i]) < next)
				next = handler_deadline(runs[i]);
		}
		timeout = next > now ? (int)(next - now) : 0;
		if (poll(fds, (nfds_t)nfds, timeout) == -1 && errno != EINTR)
			return -1;
		now = now_unix_ms();
		for (i = 0; i < n; i++) {
			if (runs[i] != NULL && handler_step(runs[i], now)) {
				handler_finish(runs[i], &res[i]);
				runs[i] = NULL;
				left--;
			}
		}
	}
	return 0;
}

/* Runs one handler to the end; *ms is how long it took. */
static int
run1(char *const argv[], int64_t update_id, const char *body, size_t len,
    const struct handler_limits *lim, struct handler_result *res, int64_t *ms)
{
	struct handler_run	*run;
	char			 err[200];
	int64_t			 start = now_unix_ms();
	int			 rc;

	memset(res, 0, sizeof(*res));
	if (handler_start(argv, "testbot", update_id, body, len, lim, &run, err,
	    sizeof(err)) == -1) {
		snprintf(res->reason, sizeof(res->reason), "start: %s", err);
		return -1;
	}
	if ((rc = drive(&run, res, 1)) == -1) {
		handler_abort(run);
		snprintf(res->reason, sizeof(res->reason), "loop gave up");
	}
	if (ms != NULL)
		*ms = now_unix_ms() - start;
	return rc;
}

static int
run_sh(const char *script, const char *body, size_t len,
    const struct handler_limits *lim, struct handler_result *res, int64_t *ms)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };

	return run1(argv, 42, body, len, lim, res, ms);
}

static int
output_is(const struct handler_result *res, const char *want)
{
	return res->status == HANDLER_OK && res->output != NULL &&
	    res->output_len == strlen(want) && memcmp(res->output, want,
	    res->output_len) == 0 && res->output[res->output_len] == '\0';
}

static char *
make_body(size_t len, unsigned seed)
{
	char	*b;
	size_t	 i;

	if ((b = malloc(len)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (char)(seed >> 16);	/* NULs and newlines included */
	}
	return b;
}

static void
test_echo(void)
{
	struct handler_limits	 l = limits(10000, 2 * MIB, 4096);
	struct handler_result	 r;
	char			*body = make_body(MIB, 1);

	if (body == NULL || run_sh("exec cat", body, MIB, &l, &r, NULL) == -1) {
		report("echo_1mib", 0, "%s", body == NULL ? "malloc" : r.reason);
		free(body);
		return;
	}
	report("echo_1mib", r.status == HANDLER_OK && r.output_len == MIB &&
	    memcmp(r.output, body, MIB) == 0 && r.output[MIB] == '\0',
	    "status %s len %zu reason %s", status_name(r.status), r.output_len,
	    r.reason);
	free(r.output);
	free(body);

	l = limits(10000, 1000, 4096);
	run_sh("true", NULL, 0, &l, &r, NULL);
	report("empty_output_ok", output_is(&r, ""), "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);
}

static void
test_env(void)
{
	struct handler_limits	 l = limits(10000, 65536, 4096);
	struct handler_result	 r;
	const char		*o;

	/* The secrets, and stale values that must be replaced, not duplicated. */
	setenv("TGQ_BOT_TOKEN", "123456:secret-token-value", 1);
	setenv("TGQ_WEBHOOK_SECRET", "secret-webhook-value", 1);
	setenv("TGQ_BOT", "stale", 1);
	setenv("TGQ_UPDATE_ID", "999", 1);
	setenv("TGQ_KEEP_ME", "kept", 1);
	run_sh("env", NULL, 0, &l, &r, NULL);
	o = r.output != NULL ? r.output : "";
	report("env", r.status == HANDLER_OK &&
	    strstr(o, "TGQ_BOT=testbot\n") != NULL &&
	    strstr(o, "TGQ_UPDATE_ID=42\n") != NULL &&
	    strstr(o, "TGQ_KEEP_ME=kept\n") != NULL &&
	    strstr(o, "TGQ_BOT=stale") == NULL && strstr(o, "=999") == NULL &&
	    strstr(o, "secret") == NULL && strstr(o, "TGQ_BOT_TOKEN") == NULL &&
	    strstr(o, "TGQ_WEBHOOK_SECRET") == NULL,
	    "status %s reason %s output %.300s", status_name(r.status), r.reason, o);
	free(r.output);
	unsetenv("TGQ_BOT_TOKEN");
	unsetenv("TGQ_WEBHOOK_SECRET");
	unsetenv("TGQ_BOT");
	unsetenv("TGQ_UPDATE_ID");
	unsetenv("TGQ_KEEP_ME");
}

static void
test_exit(void)
{
	struct handler_limits	l = limits(10000, 65536, 4096);
	struct handler_result	r;

	run_sh("echo partial; exit 3", NULL, 0, &l, &r, NULL);
	report("exit_status", r.status == HANDLER_FAILED && r.output == NULL &&
	    strcmp(r.reason, "exited with status 3") == 0, "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);

	run_sh("printf 'one\\ntwo\\nthree\\r\\nfour\\n\\n' >&2; exit 2", NULL, 0,
	    &l, &r, NULL);
	report("stderr_tail_lines", r.status == HANDLER_FAILED &&
	    strcmp(r.stderr_tail, "...two | three\\x0d | four") == 0,
	    "tail %s", r.stderr_tail);
	free(r.output);

	/* 2000 bytes of one line: the newest HANDLER_TAIL_MAX at most, whole
	 * characters (a two-byte one at every step), "..." in front. */
	run_sh("i=0; while [ $i -lt 400 ]; do printf 'ab\\303\\251' >&2; "
	    "i=$((i+1)); done; exit 2", NULL, 0, &l, &r, NULL);
	report("stderr_tail_bounded", r.status == HANDLER_FAILED &&
	    strlen(r.stderr_tail) <= HANDLER_TAIL_MAX &&
	    strlen(r.stderr_tail) > HANDLER_TAIL_MAX - 8 &&
	    strncmp(r.stderr_tail, "...", 3) == 0 &&
	    utf8_valid(r.stderr_tail, strlen(r.stderr_tail)) &&
	    strcmp(r.stderr_tail + strlen(r.stderr_tail) - 4, "ab\xc3\xa9") == 0,
	    "tail of %zu bytes: %.20s", strlen(r.stderr_tail), r.stderr_tail);
	free(r.output);

	run_sh("exit 4", NULL, 0, &l, &r, NULL);
	report("stderr_tail_empty", r.status == HANDLER_FAILED &&
	    r.stderr_tail[0] == '\0', "tail %s", r.stderr_tail);
	free(r.output);

	run_sh("kill -SEGV $$", NULL, 0, &l, &r, NULL);
	report("signal", r.status == HANDLER_FAILED && r.output == NULL &&
	    strcmp(r.reason, "killed by signal 11") == 0, "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);
}

/* 1 when pid is gone or a zombie (reaped by init later). */
static int
process_dead(pid_t pid)
{
	char	 path[64], *stat = NULL, err[128], *p;
	size_t	 len;
	int	 dead;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (read_small_file(path, 4096, &stat, &len, err, sizeof(err)) == -1)
		return 1;
	p = strrchr(stat, ')');
	dead = p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	free(stat);
	return dead;
}

static pid_t
read_pid(const char *path)
{
	char		*text = NULL, err[128];
	size_t		 len;
	int64_t		 v = -1;
	const char	*errstr;

	if (read_small_file(path, 64, &text, &len, err, sizeof(err)) == -1)
		return -1;
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (parse_int(text, 1, INT_MAX, &v, &errstr) == -1)
		v = -1;
	free(text);
	return (pid_t)v;
}

static int
wait_dead(pid_t pid)
{
	int i;

	for (i = 0; i < 100 && !process_dead(pid); i++)
		usleep(10000);
	return process_dead(pid);
}

static void
test_timeout(void)
{
	struct handler_limits	l = limits(300, 65536, 4096);
	struct handler_result	r;
	char			script[512];
	int64_t			ms = 0;
	pid_t			gc;

	/* A grandchild in the group holds stdout: it dies with the group.  Each
	 * case starts without gc.pid: one whose grandchild never wrote it must not
	 * read the previous case's (long dead) pid. */
	unlink(tmp_path("gc.pid"));
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; sleep 30",
	    tmp_path("gc.pid"));
	run_sh(script, NULL, 0, &l, &r, &ms);
	gc = read_pid(tmp_path("gc.pid"));
	report("timeout", r.status == HANDLER_FAILED && r.output == NULL &&
	    strcmp(r.reason, "timed out after 300 ms") == 0 && ms < 1000,
	    "status %s reason %s after %lld ms", status_name(r.status), r.reason,
	    (long long)ms);
	report("timeout_kills_grandchild", gc > 0 && wait_dead(gc),
	    "grandchild %ld still alive", (long)gc);
	free(r.output);

	/* The child exits at once; the grandchild holding stdout is killed at the
	 * deadline, and the run is not OK: its output may be incomplete. */
	unlink(tmp_path("gc.pid"));
	snprintf(script, sizeof(script), "sleep 30 & echo $! > %s; exit 0",
	    tmp_path("gc.pid"));
	run_sh(script, NULL, 0, &l, &r, &ms);
	gc = read_pid(tmp_path("gc.pid"));
	report("timeout_grandchild_holds_stdout", r.status == HANDLER_FAILED &&
	    strcmp(r.reason, "timed out after 300 ms") == 0 && ms < 1000 &&
	    gc > 0 && wait_dead(gc), "status %s reason %s after %lld ms",
	    status_name(r.status), r.reason, (long long)ms);
	free(r.output);

	/* A grandchild that left the group keeps stdout open for good: the result is
	 * still reported once the child is reaped and the group killed. */
	unlink(tmp_path("gc.pid"));
	snprintf(script, sizeof(script), "setsid sleep 30 & echo $! > %s; sleep 30",
	    tmp_path("gc.pid"));
	run_sh(script, NULL, 0, &l, &r, &ms);
	gc = read_pid(tmp_path("gc.pid"));
	report("timeout_escaped_grandchild", r.status == HANDLER_FAILED &&
	    strcmp(r.reason, "timed out after 300 ms") == 0 && ms < 1000,
	    "status %s reason %s after %lld ms", status_name(r.status), r.reason,
	    (long long)ms);
	if (gc > 0)
		kill(gc, SIGKILL);
	free(r.output);
}

static void
test_output_limit(void)
{
	struct handler_limits	l = limits(10000, MIB, 4096);
	struct handler_result	r;
	int64_t			ms = 0;

	run_sh("head -c 10000000 /dev/zero", NULL, 0, &l, &r, &ms);
	report("output_too_large", r.status == HANDLER_INVALID && r.output == NULL &&
	    strcmp(r.reason, "output larger than 1048576 bytes") == 0 && ms < 2000,
	    "status %s reason %s after %lld ms", status_name(r.status), r.reason,
	    (long long)ms);
	free(r.output);

	/* Exactly the limit is fine. */
	l = limits(10000, 1000, 4096);
	run_sh("head -c 1000 /dev/zero", NULL, 0, &l, &r, NULL);
	report("output_at_limit", r.status == HANDLER_OK && r.output_len == 1000,
	    "status %s len %zu reason %s", status_name(r.status), r.output_len,
	    r.reason);
	free(r.output);
	run_sh("head -c 1001 /dev/zero", NULL, 0, &l, &r, NULL);
	report("output_one_over", r.status == HANDLER_INVALID &&
	    strcmp(r.reason, "output larger than 1000 bytes") == 0,
	    "status %s reason %s", status_name(r.status), r.reason);
	free(r.output);
}

static void
test_stdin(void)
{
	struct handler_limits	 l = limits(10000, 4 * MIB, 4096);
	struct handler_result	 r;
	char			*body = make_body(MIB, 2);

	if (body == NULL) {
		report("stdin_unread", 0, "malloc");
		return;
	}
	run_sh("sleep 0.2; printf ok", body, MIB, &l, &r, NULL);
	report("stdin_unread", output_is(&r, "ok"), "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);

	run_sh("exec <&-; printf closed", body, MIB, &l, &r, NULL);
	report("stdin_closed_early", output_is(&r, "closed"), "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);

	run_sh("head -c 2097152 /dev/zero; cat > /dev/null", body, MIB, &l, &r,
	    NULL);
	report("write_before_read", r.status == HANDLER_OK &&
	    r.output_len == 2 * MIB, "status %s len %zu reason %s",
	    status_name(r.status), r.output_len, r.reason);
	free(r.output);
	free(body);
}

static void
test_cannot_run(void)
{
	struct handler_limits	 l = limits(10000, 65536, 4096);
	struct handler_result	 r;
	char			*missing[] = { "/nonexistent/tgq-handler", NULL };
	char			*noexec[] = { NULL, NULL };
	int			 fd;

	run1(missing, 1, "{}", 2, &l, &r, NULL);
	report("nonexistent", r.status == HANDLER_FAILED && r.output == NULL &&
	    strcmp(r.reason, "cannot run /nonexistent/tgq-handler: "
	    "No such file or directory") == 0, "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);

	noexec[0] = (char *)tmp_path("noexec");
	if ((fd = open(noexec[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644))
	    == -1 || write(fd, "#!/bin/sh\nexit 0\n", 17) != 17) {
		report("not_executable", 0, "cannot create %s", noexec[0]);
		if (fd != -1)
			close(fd);
		return;
	}
	close(fd);
	run1(noexec, 1, "{}", 2, &l, &r, NULL);
	report("not_executable", r.status == HANDLER_FAILED &&
	    strstr(r.reason, "Permission denied") != NULL &&
	    strncmp(r.reason, "cannot run ", 11) == 0, "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);
}

/* Runs script with our stderr (the log) in a file; returns what was logged. */
static char *
run_logged(const char *script, size_t max_stderr, struct handler_result *r)
{
	struct handler_limits	 l = limits(10000, 65536, max_stderr);
	char			*text = NULL, err[128];
	size_t			 len;
	int			 fd, saved;

	memset(r, 0, sizeof(*r));
	fflush(stderr);
	if ((fd = open(tmp_path("log"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return NULL;
	if ((saved = fcntl(2, F_DUPFD_CLOEXEC, 3)) == -1) {
		close(fd);
		return NULL;
	}
	dup2(fd, 2);
	close(fd);
	run_sh(script, NULL, 0, &l, r, NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if (read_small_file(tmp_path("log"), 4 * MIB, &text, &len, err,
	    sizeof(err)) == -1)
		return NULL;
	return text;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

static size_t
longest_line(const char *s)
{
	size_t		 best = 0, len;
	const char	*nl;

	for (; *s != '\0'; s = nl + 1) {
		if ((nl = strchr(s, '\n')) == NULL)
			nl = s + strlen(s);
		len = (size_t)(nl - s);
		if (len > best)
			best = len;
		if (*nl == '\0')
			break;
	}
	return best;
}

static void
test_stderr(void)
{
	struct handler_result	 r;
	char			*log;

	log = run_logged("echo first >&2; printf 'bad\\001byte\\n' >&2; "
	    "head -c 5000 /dev/zero | tr '\\0' x >&2; echo >&2; "
	    "printf 'no newline' >&2; printf out", 65536, &r);
	report("stderr_lines", log != NULL && output_is(&r, "out") &&
	    strstr(log, "handler testbot update 42: first\n") != NULL &&
	    strstr(log, "handler testbot update 42: bad\\x01byte\n") != NULL &&
	    strstr(log, "handler testbot update 42: no newline\n") != NULL &&
	    strstr(log, "xxx...\n") != NULL && longest_line(log) < 1100 &&
	    count(log, "handler testbot update 42:") == 4,
	    "status %s reason %s log %.400s", status_name(r.status), r.reason,
	    log != NULL ? log : "(none)");
	free(r.output);
	free(log);

	/* 1 MB of stderr, 100 bytes logged: the child is not blocked, the rest goes. */
	log = run_logged("i=0; while [ $i -lt 20 ]; do echo line-$i >&2; "
	    "i=$((i+1)); done; head -c 1000000 /dev/zero >&2; printf done", 100, &r);
	report("stderr_cap", log != NULL && output_is(&r, "done") &&
	    strstr(log, ": line-0\n") != NULL &&
	    strstr(log, ": line-19\n") == NULL &&
	    count(log, "handler testbot update 42: stderr truncated\n") == 1 &&
	    strlen(log) < 2000, "status %s reason %s log %.400s",
	    status_name(r.status), r.reason, log != NULL ? log : "(none)");
	free(r.output);
	free(log);
}

static void
test_fds(void)
{
	struct handler_limits	l = limits(10000, 65536, 4096);
	struct handler_result	r;
	int			fds[7], i;

	/* Open descriptors the child must not inherit, close-on-exec or not, low and
	 * high.  (A glob of /proc/$$/fd would list the shell's own directory fd.) */
	for (i = 0; i < 6; i++)
		fds[i] = open("/dev/null", (i % 2 ? O_CLOEXEC : 0) | O_RDONLY);
	fds[6] = fds[0] != -1 ? dup2(fds[0], 200) : -1;
	run_sh("fd=0; while [ $fd -lt 256 ]; do "
	    "[ -e /proc/$$/fd/$fd ] && printf '%s ' $fd; fd=$((fd+1)); done; true",
	    NULL, 0, &l, &r, NULL);
	report("fds_only_stdio", output_is(&r, "0 1 2 "), "status %s reason %s "
	    "fds %s", status_name(r.status), r.reason,
	    r.output != NULL ? r.output : "");
	free(r.output);
	for (i = 0; i < 7; i++)
		if (fds[i] != -1)
			close(fds[i]);
}

static void
test_signals(void)
{
	struct handler_limits	 l = limits(10000, 65536, 4096);
	struct handler_result	 r;
	char			 want[128];

	/* What the drain does: SIGPIPE ignored and SIGTERM blocked (set in main). */
	/* Builtins only: while dash waits for a child it blocks every signal outside
	 * sigsuspend(), so a grep forked from it could see a full mask. */
	run_sh("while read -r k v; do case $k in SigBlk:|SigIgn:) echo $k $v;; "
	    "esac; done < /proc/$$/status", NULL, 0, &l, &r, NULL);
	snprintf(want, sizeof(want), "SigBlk: 0000000000000000\n"
	    "SigIgn: 0000000000000000\n");
	/* Signals 32 and 33 are glibc's own (thread cancellation, setxid): its
	 * sigaction() refuses to touch them, so a disposition inherited from the
	 * caller (GNU make ignores them) stays; glibc sets them up anew in the
	 * handler's process.  Everything else must be the default. */
	if (r.output != NULL) {
		char *ign = strstr(r.output, "SigIgn: ");

		if (ign != NULL) {
			unsigned long long mask = strtoull(ign + 8, NULL, 16);

			mask &= ~((1ULL << 31) | (1ULL << 32));
			snprintf(ign + 8, strlen(ign + 8) + 1, "%016llx\n", mask);
		}
	}
	report("signals_default", output_is(&r, want),
	    "status %s reason %s output %s", status_name(r.status), r.reason,
	    r.output != NULL ? r.output : "");
	free(r.output);

	/* Its own process group: pgrp is its own pid. */
	run_sh("set -- $(cat /proc/$$/stat); [ \"$1\" = \"$5\" ] && printf own",
	    NULL, 0, &l, &r, NULL);
	report("own_process_group", output_is(&r, "own"), "status %s reason %s",
	    status_name(r.status), r.reason);
	free(r.output);
}

static void
test_concurrent(void)
{
	struct handler_limits	 l = limits(5000, 2 * MIB, 4096);
	struct handler_run	*runs[4];
	struct handler_result	 res[4];
	char			*body = make_body(300000, 3), err[256];
	char			*a0[] = { "/bin/sh", "-c", "exec cat", NULL };
	char			*a1[] = { "/bin/sh", "-c", "sleep 0.1; exit 5", NULL };
	char			*a2[] = { "/bin/sh", "-c",
	    "sleep 0.2; printf two; cat > /dev/null", NULL };
	char			*a3[] = { "/bin/sh", "-c",
	    "head -c 500000 /dev/zero; exec cat", NULL };
	char *const		*argvs[4] = { a0, a1, a2, a3 };
	int			 i, started = 1;

	memset(res, 0, sizeof(res));
	for (i = 0; i < 4; i++) {
		runs[i] = NULL;
		if (body == NULL || handler_start(argvs[i], "testbot", 100 + i, body,
		    300000, &l, &runs[i], err, sizeof(err)) == -1)
			started = 0;
	}
	if (!started || drive(runs, res, 4) == -1) {
		report("concurrent", 0, "start or loop failed");
		for (i = 0; i < 4; i++)
			handler_abort(runs[i]);
	} else
		report("concurrent", res[0].status == HANDLER_OK &&
		    res[0].output_len == 300000 &&
		    memcmp(res[0].output, body, 300000) == 0 &&
		    res[1].status == HANDLER_FAILED &&
		    strcmp(res[1].reason, "exited with status 5") == 0 &&
		    output_is(&res[2], "two") &&
		    res[3].status == HANDLER_OK && res[3].output_len == 800000 &&
		    memcmp(res[3].output + 500000, body, 300000) == 0,
		    "%s/%s/%s/%s", status_name(res[0].status),
		    status_name(res[1].status), status_name(res[2].status),
		    status_name(res[3].status));
	for (i = 0; i < 4; i++)
		free(res[i].output);
	free(body);
}

static void
test_abort(void)
{
	struct handler_limits	 l = limits(30000, 65536, 4096);
	struct handler_run	*run = NULL;
	struct pollfd		 fds[HANDLER_MAX_POLLFDS];
	char			 err[256];
	int64_t			 start = now_unix_ms(), ms;
	char			*argv[] = { "/bin/sh", "-c", "sleep 30", NULL };
	pid_t			 w;

	if (handler_start(argv, "testbot", 7, "{}", 2, &l, &run, err,
	    sizeof(err)) == -1) {
		report("abort", 0, "start: %s", err);
		return;
	}
	poll(fds, (nfds_t)handler_pollfds(run, fds, HANDLER_MAX_POLLFDS), 50);
	handler_step(run, now_unix_ms());
	handler_abort(run);
	ms = now_unix_ms() - start;
	/* No child left at all: no zombie, nothing running. */
	w = waitpid(-1, NULL, WNOHANG);
	report("abort", ms < 1000 && w == -1 && errno == ECHILD,
	    "took %lld ms, waitpid %ld", (long long)ms, (long)w);
}

int
main(void)
{
	struct sigaction	sa;
	sigset_t		term;
	int64_t			start = now_unix_ms();

	log_init("test_handler", LOG_LVL_DEBUG);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	/* Like the drain: SIGPIPE ignored, SIGTERM blocked. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);

	test_echo();
	test_env();
	test_exit();
	test_timeout();
	test_output_limit();
	test_stdin();
	test_cannot_run();
	test_stderr();
	test_fds();
	test_signals();
	test_concurrent();
	test_abort();

	unlink(tmp_path("gc.pid"));
	unlink(tmp_path("noexec"));
	unlink(tmp_path("log"));
	rmdir(tmpdir);
	report("total_time", now_unix_ms() - start < 15000, "%lld ms",
	    (long long)(now_unix_ms() - start));
	return failures == 0 ? 0 : 1;
}
