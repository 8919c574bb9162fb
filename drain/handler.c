/*
 * The runner for "exec:" handlers.  See handler.h for the life of a run.
 *
 * Why fork and not posix_spawn: posix_spawn reports an exec failure only because its
 * child shares the parent's memory (CLONE_VM); under valgrind that clone becomes a
 * plain fork and a missing program looks like "exited with status 127".  fork with a
 * close-on-exec pipe that carries exec's errno works everywhere.  Everything the child
 * needs (argv, the environment, the descriptors) is ready before fork; between fork
 * and exec the child makes async-signal-safe system calls only.
 *
 * Why the exit is noticed with waitid(WNOWAIT) and the child reaped only at the end:
 * a zombie keeps its pid, so the process group cannot disappear and its number cannot
 * be reused while we may still send it SIGKILL.
 */
#define _GNU_SOURCE		/* pipe2(), close_range() */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgq.h"
#include "handler.h"

extern char **environ;

#define READS_PER_STEP	16		/* reads per descriptor per step: no livelock */
#define READ_CHUNK	65536
#define LINE_LOG_MAX	1000		/* stderr bytes per log line */
/* The newest stderr bytes kept for the result's stderr_tail: more than it can
 * hold, since trailing line breaks are dropped before it is cut. */
#define TAIL_RING	1024
#define RECHECK_MS	1000		/* after a kill, with a pidfd to wake us */
#define POLL_EXIT_MS	50		/* without a pidfd, how often to look */

struct handler_run {
	pid_t		 pid;		/* also the process group */
	int		 in_fd;		/* -1 once closed */
	int		 out_fd;
	int		 err_fd;
	int		 exec_fd;	/* exec's errno, or EOF when exec succeeded */
	int		 pidfd;		/* -1 when unavailable or once the exit is seen */
	int		 has_pidfd;	/* pidfd_open worked at the start */

	char		*bot;
	char		*program;
	int64_t		 update_id;

	char		*body;
	size_t		 body_len;
	size_t		 body_off;

	char		*out;
	size_t		 out_len;
	size_t		 out_cap;
	size_t		 max_output;

	char		 line[LINE_LOG_MAX];
	size_t		 line_len;
	int		 line_cut;
	size_t		 err_logged;
	size_t		 max_stderr_logged;
	int		 err_truncated;
	char		 tail[TAIL_RING];	/* a ring: byte i at i % TAIL_RING */
	size_t		 tail_total;	/* stderr bytes ever read */

	int64_t		 timeout_ms;
	int64_t		 deadline;	/* when to kill */
	int64_t		 next_check;	/* handler_deadline() after a kill */

	int		 exited;	/* exit seen (still a zombie until reaped) */
	int		 exit_code;	/* CLD_EXITED, CLD_KILLED or CLD_DUMPED */
	int		 exit_status;	/* exit status or signal */
	int		 wait_errno;	/* waitid failed: the child is lost */
	int		 reaped;
	int		 killed;
	int		 timed_out;
	int		 too_large;
	int		 exec_errno;
	int		 done;
};

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * Moves a new descriptor above 2 (keeping close-on-exec), so that the child's dup2 onto
 * 0, 1 and 2 can never overwrite one of the others, even when the drain runs with a
 * standard descriptor closed.
 */
static int
fd_above_stdio(int *fd)
{
	int nfd;

	if (*fd > 2)
		return 0;
	if ((nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3)) == -1)
		return -1;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int
env_is(const char *entry, const char *name)
{
	size_t len = strlen(name);

	return strncmp(entry, name, len) == 0 && entry[len] == '=';
}

/*
 * The child's environment: ours without the secrets and without a stale TGQ_BOT or
 * TGQ_UPDATE_ID, plus the two for this update.  The array points into environ (valid
 * until the exec, as nothing changes it in between) and to *botvar and *idvar, which
 * the caller frees.
 */
static char **
env_build(const char *bot, int64_t update_id, char **botvar, char **idvar)
{
	static const char *const drop[] = { "TGQ_BOT_TOKEN", "TGQ_WEBHOOK_SECRET",
	    "TGQ_BOT", "TGQ_UPDATE_ID" };
	char	**env = NULL;
	size_t	  n = 0, i, j, k = 0, len;

	*botvar = *idvar = NULL;
	while (environ != NULL && environ[n] != NULL)
		n++;
	if ((env = calloc(n + 3, sizeof(*env))) == NULL)
		goto fail;
	len = strlen("TGQ_BOT=") + strlen(bot) + 1;
	if ((*botvar = malloc(len)) == NULL)
		goto fail;
	snprintf(*botvar, len, "TGQ_BOT=%s", bot);
	len = strlen("TGQ_UPDATE_ID=") + 21;
	if ((*idvar = malloc(len)) == NULL)
		goto fail;
	snprintf(*idvar, len, "TGQ_UPDATE_ID=%lld", (long long)update_id);
	for (i = 0; i < n; i++) {
		for (j = 0; j < sizeof(drop) / sizeof(drop[0]); j++)
			if (env_is(environ[i], drop[j]))
				break;
		if (j == sizeof(drop) / sizeof(drop[0]))
			env[k++] = environ[i];
	}
	env[k++] = *botvar;
	env[k++] = *idvar;
	env[k] = NULL;
	return env;
fail:
	free(*botvar);
	free(*idvar);
	*botvar = *idvar = NULL;
	free(env);
	return NULL;
}

/* Closes every descriptor from lo up; async-signal-safe. */
static void
child_close_from(int lo, int hi, long maxfd)
{
	int fd;

	if (close_range((unsigned)lo, (unsigned)hi, 0) == 0)
		return;
	/* close_range is missing (Linux < 5.9): the slow way. */
	for (fd = lo; fd <= hi && fd < maxfd; fd++)
		close(fd);
}

/*
 * In the child, between fork and exec: async-signal-safe calls only, no malloc, no
 * stdio, and _exit.  The four descriptors are the child's pipe ends, all above 2.
 */
static void __attribute__((noreturn))
child_exec(char *const argv[], char **env, int in_fd, int out_fd, int err_fd,
    int exec_fd, long maxfd)
{
	struct sigaction	 sa;
	sigset_t		 none;
	int			 sig, e;

	/* Its own group, so that a timeout kills what it started too. */
	setpgid(0, 0);
	if (dup2(in_fd, 0) == -1 || dup2(out_fd, 1) == -1 || dup2(err_fd, 2) == -1)
		goto fail;
	/* Nothing of the drain (database, sockets) may leak: keep only 0-2 and exec_fd,
	 * which is close-on-exec. */
	if (exec_fd > 3)
		child_close_from(3, exec_fd - 1, maxfd);
	child_close_from(exec_fd + 1, INT_MAX, maxfd);
	/* Ignored signals survive exec and the mask is inherited: restore the defaults
	 * (the drain ignores SIGPIPE and blocks SIGTERM).  All signals are blocked since
	 * before fork, so none of the drain's handlers can run here. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);	/* EINVAL for some */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, env);
fail:
	e = errno;
	while (write(exec_fd, &e, sizeof(e)) == -1 && errno == EINTR)
		;
	_exit(127);
}

static int
pidfd_get(pid_t pid)
{
#ifdef SYS_pidfd_open
	/* pidfds are always close-on-exec. */
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

int
handler_start(char *const argv[], const char *bot, int64_t update_id,
    const char *body, size_t body_len, const struct handler_limits *limits,
    struct handler_run **out, char *err, size_t errlen)
{
	struct handler_run	*run = NULL;
	char			**env = NULL, *botvar = NULL, *idvar = NULL;
	int			 in[2] = { -1, -1 }, outp[2] = { -1, -1 };
	int			 errp[2] = { -1, -1 }, execp[2] = { -1, -1 };
	int			 i, *all[8];
	sigset_t		 allsigs, old;
	long			 maxfd;
	pid_t			 pid;

	*out = NULL;
	if (argv == NULL || argv[0] == NULL) {
		snprintf(err, errlen, "no program to run");
		return -1;
	}
	if ((run = calloc(1, sizeof(*run))) == NULL)
		goto nomem;
	run->pid = -1;
	run->in_fd = run->out_fd = run->err_fd = run->exec_fd = run->pidfd = -1;
	run->update_id = update_id;
	run->body_len = body_len;
	run->max_output = limits->max_output;
	run->max_stderr_logged = limits->max_stderr_logged;
	run->timeout_ms = limits->timeout_ms;
	if ((run->bot = strdup(bot)) == NULL ||
	    (run->program = strdup(argv[0])) == NULL ||
	    (run->body = malloc(body_len > 0 ? body_len : 1)) == NULL)
		goto nomem;
	if (body_len > 0)
		memcpy(run->body, body, body_len);
	if ((env = env_build(bot, update_id, &botvar, &idvar)) == NULL)
		goto nomem;

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(outp, O_CLOEXEC) == -1 ||
	    pipe2(errp, O_CLOEXEC) == -1 || pipe2(execp, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	all[0] = &in[0]; all[1] = &in[1]; all[2] = &outp[0]; all[3] = &outp[1];
	all[4] = &errp[0]; all[5] = &errp[1]; all[6] = &execp[0]; all[7] = &execp[1];
	for (i = 0; i < 8; i++) {
		if (fd_above_stdio(all[i]) == -1) {
			snprintf(err, errlen, "fcntl: %s", strerror(errno));
			goto fail;
		}
	}
	/* Our ends never block. */
	if (fcntl(in[1], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(outp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(errp[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(execp[0], F_SETFL, O_NONBLOCK) == -1) {
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		goto fail;
	}
	if ((maxfd = sysconf(_SC_OPEN_MAX)) <= 0 || maxfd > INT_MAX)
		maxfd = 65536;

	/* Block every signal across fork: the child must not run the drain's handlers
	 * before it has reset them. */
	sigfillset(&allsigs);
	sigprocmask(SIG_SETMASK, &allsigs, &old);
	pid = fork();
	if (pid == 0)
		child_exec(argv, env, in[0], outp[1], errp[1], execp[1], maxfd);
	i = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		snprintf(err, errlen, "fork: %s", strerror(i));
		goto fail;
	}
	/* Also from this side, so that a kill right away reaches the group; EACCES when
	 * the child has already exec'd (and so set it itself). */
	(void)setpgid(pid, pid);
	run->pid = pid;
	run->deadline = now_unix_ms();
	if (limits->timeout_ms > 0)
		run->deadline = limits->timeout_ms > INT64_MAX - run->deadline ?
		    INT64_MAX : run->deadline + limits->timeout_ms;
	run->next_check = run->deadline;
	if ((run->pidfd = pidfd_get(pid)) != -1)
		run->has_pidfd = 1;

	close_fd(&in[0]);
	close_fd(&outp[1]);
	close_fd(&errp[1]);
	close_fd(&execp[1]);
	run->in_fd = in[1];
	run->out_fd = outp[0];
	run->err_fd = errp[0];
	run->exec_fd = execp[0];
	if (body_len == 0)
		close_fd(&run->in_fd);
	free(env);
	free(botvar);
	free(idvar);
	*out = run;
	return 0;

nomem:
	snprintf(err, errlen, "out of memory");
fail:
	for (i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&outp[i]);
		close_fd(&errp[i]);
		close_fd(&execp[i]);
	}
	free(env);
	free(botvar);
	free(idvar);
	if (run != NULL) {
		free(run->bot);
		free(run->program);
		free(run->body);
		free(run);
	}
	return -1;
}

/* Adds fd (when open and there is room) to the max entries of fds. */
static void
add_pollfd(struct pollfd *fds, int *n, int max, int fd, short events)
{
	if (fd == -1 || *n >= max)
		return;
	fds[*n].fd = fd;
	fds[*n].events = events;
	fds[(*n)++].revents = 0;
}

int
handler_pollfds(const struct handler_run *run, struct pollfd *fds, int max)
{
	int n = 0;

	if (run->done)
		return 0;
	add_pollfd(fds, &n, max, run->in_fd, POLLOUT);
	add_pollfd(fds, &n, max, run->out_fd, POLLIN);
	add_pollfd(fds, &n, max, run->err_fd, POLLIN);
	/* Readable from the exit on, so dropped once the exit is seen. */
	add_pollfd(fds, &n, max, run->pidfd, POLLIN);
	return n;
}

int64_t
handler_deadline(const struct handler_run *run)
{
	if (run->killed)
		return run->next_check;
	if (!run->has_pidfd && run->next_check < run->deadline)
		return run->next_check;
	return run->deadline;
}

static void
kill_group(struct handler_run *run)
{
	/* The child is not reaped yet (at worst a zombie), so the group is ours. */
	if (!run->reaped)
		(void)kill(-run->pid, SIGKILL);
	run->killed = 1;
	close_fd(&run->in_fd);
}

static void
stderr_emit(struct handler_run *run)
{
	char	esc[1024];
	size_t	len;

	if (run->line_len == 0 && !run->line_cut)
		return;
	/* Leave room to mark a line cut here (log_escape marks its own cuts). */
	log_escape(esc, sizeof(esc) - 3, run->line, run->line_len);
	len = strlen(esc);
	if (run->line_cut && (len < 3 || memcmp(esc + len - 3, "...", 3) != 0))
		memcpy(esc + len, "...", 4);
	/* Handlers print progress and tracebacks there alike: what it says is
	 * information; the failure, if any, is logged as a warning by the caller. */
	log_info("handler %s update %lld: %s", run->bot, (long long)run->update_id,
	    esc);
	run->line_len = 0;
	run->line_cut = 0;
}

/* Splits stderr into log lines, within the per-run budget. */
static void
stderr_take(struct handler_run *run, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && !run->err_truncated; i++) {
		if (run->err_logged == run->max_stderr_logged) {
			stderr_emit(run);
			log_warnx("handler %s update %lld: stderr truncated", run->bot,
			    (long long)run->update_id);
			run->err_truncated = 1;
			break;
		}
		run->err_logged++;
		if (buf[i] == '\n')
			stderr_emit(run);
		else if (run->line_len < sizeof(run->line))
			run->line[run->line_len++] = buf[i];
		else
			run->line_cut = 1;
	}
}

static void
stdin_write(struct handler_run *run)
{
	ssize_t n;

	while (run->in_fd != -1 && run->body_off < run->body_len) {
		n = write(run->in_fd, run->body + run->body_off,
		    run->body_len - run->body_off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: the handler does not want (the rest of) it. */
			if (errno != EPIPE)
				log_warnx("handler %s update %lld: stdin: %s",
				    run->bot, (long long)run->update_id,
				    strerror(errno));
			break;
		}
		run->body_off += (size_t)n;
	}
	close_fd(&run->in_fd);
}

/* Grows the stdout buffer, to one byte more than max_output at most. */
static int
stdout_room(struct handler_run *run)
{
	size_t	 want, limit;
	char	*p;

	if (run->out_len < run->out_cap)
		return 0;
	/* Here out_len == out_cap <= max_output, so want > out_cap. */
	limit = run->max_output < SIZE_MAX ? run->max_output + 1 : SIZE_MAX;
	if (run->out_cap == 0)
		want = READ_CHUNK;
	else
		want = run->out_cap > limit / 2 ? limit : run->out_cap * 2;
	if (want > limit)
		want = limit;
	if ((p = realloc(run->out, want)) == NULL)
		return -1;
	run->out = p;
	run->out_cap = want;
	return 0;
}

static void
stdout_read(struct handler_run *run)
{
	ssize_t	n;
	int	reads;

	for (reads = 0; run->out_fd != -1 && reads < READS_PER_STEP; reads++) {
		if (stdout_room(run) == -1) {
			log_warnx("handler %s update %lld: stdout: out of memory",
			    run->bot, (long long)run->update_id);
			run->too_large = 1;
			kill_group(run);
			close_fd(&run->out_fd);
			return;
		}
		n = read(run->out_fd, run->out + run->out_len,
		    run->out_cap - run->out_len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (n == -1)
				log_warnx("handler %s update %lld: stdout: %s",
				    run->bot, (long long)run->update_id,
				    strerror(errno));
			close_fd(&run->out_fd);
			return;
		}
		run->out_len += (size_t)n;
		if (run->out_len > run->max_output) {
			run->too_large = 1;
			kill_group(run);
			close_fd(&run->out_fd);
			return;
		}
	}
}

/* Keeps the newest TAIL_RING bytes of stderr, whatever the log budget dropped. */
static void
tail_keep(struct handler_run *run, const char *buf, size_t len)
{
	size_t i;

	if (len > TAIL_RING) {
		run->tail_total += len - TAIL_RING;
		buf += len - TAIL_RING;
		len = TAIL_RING;
	}
	for (i = 0; i < len; i++)
		run->tail[run->tail_total++ % TAIL_RING] = buf[i];
}

/*
 * Escapes like log_escape(), except that valid UTF-8 outside the C1 controls is
 * kept as it is and a line break becomes " | ".  Returns the length it needs,
 * writing only when it fits (dst holds dstlen bytes with the NUL).
 */
static size_t
tail_escape(char *dst, size_t dstlen, const char *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*u = (const unsigned char *)src;
	size_t			 i, n, o = 0;

	for (i = 0; i < len; i += n) {
		n = utf8_char_len(src + i, len - i);
		if (u[i] == '\n') {
			if (o + 3 < dstlen)
				memcpy(dst + o, " | ", 3);
			o += 3;
		} else if ((n == 1 && u[i] >= 0x20 && u[i] < 0x7f && u[i] != '\\') ||
		    (n > 1 && !(u[i] == 0xc2 && u[i + 1] < 0xa0))) {
			if (o + n < dstlen)
				memcpy(dst + o, src + i, n);
			o += n;
		} else {
			n = 1;
			if (o + 4 < dstlen) {
				dst[o] = '\\';
				dst[o + 1] = 'x';
				dst[o + 2] = hex[u[i] >> 4];
				dst[o + 3] = hex[u[i] & 0xf];
			}
			o += 4;
		}
	}
	if (o < dstlen)
		dst[o] = '\0';
	return o;
}

/* The last lines of stderr, escaped, for the result (see handler.h). */
static void
tail_render(const struct handler_run *run, char *dst, size_t dstlen)
{
	char	raw[TAIL_RING];
	size_t	len, start, i, lines = 0, n;
	int	cut;

	dst[0] = '\0';
	len = run->tail_total < TAIL_RING ? run->tail_total : TAIL_RING;
	for (i = 0; i < len; i++)
		raw[i] = run->tail[(run->tail_total - len + i) % TAIL_RING];
	while (len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
		len--;
	/* Back to the start of the HANDLER_TAIL_LINES-th line from the end. */
	for (start = len; start > 0; start--)
		if (raw[start - 1] == '\n' && ++lines == HANDLER_TAIL_LINES)
			break;
	cut = start > 0 || run->tail_total > TAIL_RING;
	/* Every byte escapes to one or more: more than dstlen cannot fit. */
	if (len - start >= dstlen) {
		start = len - (dstlen - 1);
		cut = 1;
	}
	/* Never begin inside a UTF-8 sequence. */
	while (start < len && ((unsigned char)raw[start] & 0xc0) == 0x80) {
		start++;
		cut = 1;
	}
	/* The newest bytes win: drop whole characters from the front until the
	 * escaped text and its "..." fit. */
	while (start < len && tail_escape(dst, dstlen, raw + start, len - start) +
	    (cut ? 3 : 0) >= dstlen) {
		n = utf8_char_len(raw + start, len - start);
		start += n > 0 ? n : 1;
		cut = 1;
	}
	if (start == len) {
		dst[0] = '\0';
		return;
	}
	if (cut) {
		memmove(dst + 3, dst, strlen(dst) + 1);
		memcpy(dst, "...", 3);
	}
}

static void
stderr_read(struct handler_run *run)
{
	char	buf[16384];
	ssize_t	n;
	int	reads;

	for (reads = 0; run->err_fd != -1 && reads < READS_PER_STEP; reads++) {
		n = read(run->err_fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(&run->err_fd);
			return;
		}
		tail_keep(run, buf, (size_t)n);
		stderr_take(run, buf, (size_t)n);
	}
}

/* Notices the exit without reaping: the zombie keeps the group's number ours. */
static void
exit_check(struct handler_run *run)
{
	siginfo_t	si;
	ssize_t		n;

	if (run->exited)
		return;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)run->pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1) {
		if (errno == EINTR)
			return;
		/* ECHILD: someone else reaped it (SIGCHLD ignored?). */
		run->wait_errno = errno;
		run->reaped = 1;
	} else if (si.si_pid != run->pid)
		return;
	run->exited = 1;
	run->exit_code = si.si_code;
	run->exit_status = si.si_status;
	close_fd(&run->pidfd);
	close_fd(&run->in_fd);
	/* The child is gone, so exec's errno (if any) is in the pipe. */
	while (run->exec_fd != -1) {
		n = read(run->exec_fd, &run->exec_errno, sizeof(run->exec_errno));
		if (n == -1 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(run->exec_errno))
			run->exec_errno = 0;
		close_fd(&run->exec_fd);
	}
}

int
handler_step(struct handler_run *run, int64_t now_ms)
{
	int finished;

	if (run->done)
		return 1;
	stdin_write(run);
	stdout_read(run);
	stderr_read(run);
	exit_check(run);
	/* Once killed, EOF is not waited for: an escaped grandchild may hold the pipes. */
	finished = run->exited && (run->killed ||
	    (run->out_fd == -1 && run->err_fd == -1));
	if (!finished && !run->killed && now_ms >= run->deadline) {
		run->timed_out = 1;
		kill_group(run);
		finished = run->exited;
	}
	if (!finished) {
		/* When to look again without a descriptor saying so: after a kill,
		 * and without a pidfd while the exit is not seen yet. */
		if (run->killed)
			run->next_check = now_ms + (run->has_pidfd ? RECHECK_MS :
			    POLL_EXIT_MS);
		else if (!run->has_pidfd && !run->exited)
			run->next_check = now_ms + POLL_EXIT_MS;
		else
			run->next_check = run->deadline;
		return 0;
	}
	/* Finished.  Whatever the handler left behind in its group goes too: nothing it
	 * started outlives it (setsid escapes this, knowingly). */
	kill_group(run);
	if (!run->reaped) {
		while (waitpid(run->pid, NULL, WNOHANG) == -1 && errno == EINTR)
			;
		run->reaped = 1;
	}
	stdout_read(run);	/* what was already there, unless killed */
	stderr_read(run);
	if (!run->err_truncated)
		stderr_emit(run);
	close_fd(&run->out_fd);
	close_fd(&run->err_fd);
	close_fd(&run->exec_fd);
	run->done = 1;
	return 1;
}

static void
run_free(struct handler_run *run)
{
	close_fd(&run->in_fd);
	close_fd(&run->out_fd);
	close_fd(&run->err_fd);
	close_fd(&run->exec_fd);
	close_fd(&run->pidfd);
	free(run->bot);
	free(run->program);
	free(run->body);
	free(run->out);
	free(run);
}

void
handler_finish(struct handler_run *run, struct handler_result *res)
{
	memset(res, 0, sizeof(*res));
	res->status = HANDLER_FAILED;
	if (!run->done) {
		snprintf(res->reason, sizeof(res->reason), "aborted");
		handler_abort(run);
		return;
	}
	tail_render(run, res->stderr_tail, sizeof(res->stderr_tail));
	if (run->exec_errno != 0)
		snprintf(res->reason, sizeof(res->reason), "cannot run %s: %s",
		    run->program, strerror(run->exec_errno));
	else if (run->too_large) {
		res->status = HANDLER_INVALID;
		snprintf(res->reason, sizeof(res->reason),
		    "output larger than %zu bytes", run->max_output);
	} else if (run->timed_out)
		snprintf(res->reason, sizeof(res->reason), "timed out after %lld ms",
		    (long long)run->timeout_ms);
	else if (run->wait_errno != 0)
		snprintf(res->reason, sizeof(res->reason), "cannot wait: %s",
		    strerror(run->wait_errno));
	else if (run->exit_code == CLD_EXITED && run->exit_status != 0)
		snprintf(res->reason, sizeof(res->reason), "exited with status %d",
		    run->exit_status);
	else if (run->exit_code != CLD_EXITED)
		snprintf(res->reason, sizeof(res->reason), "killed by signal %d",
		    run->exit_status);
	else {
		res->status = HANDLER_OK;
		if (run->out == NULL || run->out_len == run->out_cap) {
			char *p = realloc(run->out, run->out_len + 1);

			if (p == NULL) {
				snprintf(res->reason, sizeof(res->reason),
				    "out of memory");
				res->status = HANDLER_FAILED;
				goto out;
			}
			run->out = p;
		}
		run->out[run->out_len] = '\0';
		res->output = run->out;
		res->output_len = run->out_len;
		run->out = NULL;
	}
out:
	run_free(run);
}

void
handler_abort(struct handler_run *run)
{
	if (run == NULL)
		return;
	if (!run->reaped) {
		(void)kill(-run->pid, SIGKILL);
		while (waitpid(run->pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	run_free(run);
}
