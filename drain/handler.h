/*
 * The runner for "exec:" handlers: starts one program per update and drives it
 * without ever blocking, so that the drain's single event loop (curl_multi_poll with
 * extra descriptors) can run several handlers while it talks HTTP.
 *
 * The life of a run:
 *	handler_start()				fork + exec, nothing waited for
 *	loop:	handler_pollfds(), handler_deadline()	what to poll, and until when
 *		(poll)
 *		handler_step()			I/O, limits, reaping; 1 = finished
 *	handler_finish()			the result; the run is freed
 * or handler_abort() at any time to kill and free it.
 *
 * What the caller must provide: SIGPIPE ignored (a handler that exits without reading
 * its stdin makes our write fail with EPIPE, which is then "stdin done"), and SIGCHLD
 * neither ignored nor SA_NOCLDWAIT and no waitpid(-1) elsewhere (the run reaps its own
 * child by pid).  argv is built by the caller (no shell, no PATH search: argv[0] is the
 * path executed).
 */
#ifndef HANDLER_H
#define HANDLER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* handler_pollfds() never fills more entries than this. */
#define HANDLER_MAX_POLLFDS 4
/* How much of a failed handler's stderr its last_error carries. */
#define HANDLER_TAIL_LINES	3
#define HANDLER_TAIL_MAX	500

struct handler_run;			/* one running child; opaque */

/*
 * How a run ended.  The last two are for kinds whose handler is a server of the
 * bot's own (http): UNREACHABLE, it did not answer (refused, reset, 502-504, a
 * timeout), and WAIT, it asked for time (429); neither is the update's fault, so
 * neither charges it an attempt.
 */
enum handler_status { HANDLER_OK, HANDLER_FAILED, HANDLER_INVALID,
	HANDLER_UNREACHABLE, HANDLER_WAIT };

struct handler_result {
	enum handler_status	 status;
	/* stdout, malloc'd and NUL-terminated (it may hold NULs: use output_len); the
	 * caller frees it; NULL unless HANDLER_OK ("" when the handler printed nothing). */
	char			*output;
	size_t			 output_len;
	/* Why FAILED or INVALID: "exited with status 3", "killed by signal 11", "timed
	 * out after 10000 ms", "output larger than 1048576 bytes", "cannot run /x: No
	 * such file or directory"; "" for HANDLER_OK. */
	char			 reason[256];
	/* The last lines of the handler's stderr (at most HANDLER_TAIL_LINES lines and
	 * HANDLER_TAIL_MAX bytes, the newest kept), escaped like the log: controls,
	 * backslashes and bytes that are not UTF-8 as \xNN, lines joined by " | ", a
	 * leading "..." when earlier output was left out; "" when it printed nothing.
	 * Only what the handler wrote: its environment holds neither the bot token nor
	 * the webhook secret. */
	char			 stderr_tail[HANDLER_TAIL_MAX + 1];
	/* HANDLER_OK of an http handler: output is the body of its answer, a
	 * webhook reply when it is a JSON object with a "method" (calls_reply). */
	int			 webhook_reply;
	int64_t			 wait_s;	/* HANDLER_WAIT: how long */
	/* HANDLER_UNREACHABLE of an http handler: the bot took the request but
	 * gave no answer within the timeout (not refused, reset or a 502-504). */
	int			 timed_out;
	int64_t			 elapsed_us;	/* http: until the answer; 0 unknown */
};

struct handler_limits {
	int64_t	 timeout_ms;		/* from the start to the SIGKILL */
	size_t	 max_output;		/* stdout bytes; one more is HANDLER_INVALID */
	size_t	 max_stderr_logged;	/* stderr bytes logged per run; the rest dropped */
};

/*
 * Starts argv (argv[0] a path; no shell) in its own process group with body on its
 * stdin, TGQ_BOT and TGQ_UPDATE_ID in its environment and TGQ_BOT_TOKEN and
 * TGQ_WEBHOOK_SECRET removed from it.  body is copied.  Returns -1 with err when the
 * run cannot start (pipe, fork or memory failure).  A program that cannot be
 * executed is not a start failure: that run finishes as HANDLER_FAILED "cannot run
 * ...".
 */
int	 handler_start(char *const argv[], const char *bot, int64_t update_id,
	    const char *body, size_t body_len, const struct handler_limits *limits,
	    struct handler_run **out, char *err, size_t errlen);
/*
 * Fills up to max entries (fd, events POLLIN or POLLOUT, revents 0) this run waits on
 * and returns how many; at most HANDLER_MAX_POLLFDS.  Among them is a pidfd that turns
 * readable when the child exits (when the kernel offers pidfd_open), so a run whose
 * pipes are closed still wakes the loop.  0 means: only the deadline is waited for.
 */
int	 handler_pollfds(const struct handler_run *run, struct pollfd *fds, int max);
/*
 * The absolute time (now_unix_ms() clock) by which handler_step() must be called even
 * when no descriptor is ready: the timeout until the run is killed; after a kill (or
 * without a pidfd) the time of the next check for the child's exit.
 */
int64_t	 handler_deadline(const struct handler_run *run);
/*
 * Does whatever non-blocking I/O is possible, enforces the deadline and the output
 * limit (SIGKILL to the process group), and notices the child's exit.  Safe to call
 * at any time, any number of times.  Returns 1 once the run is finished (the child
 * reaped and its stdout and stderr at EOF, or the child killed), 0 while it runs.
 */
int	 handler_step(struct handler_run *run, int64_t now_ms);
/*
 * After handler_step() returned 1: moves the result into *res and frees the run.
 * (Called earlier, it aborts the run and reports HANDLER_FAILED "aborted".)
 */
void	 handler_finish(struct handler_run *run, struct handler_result *res);
/* Kills the process group, reaps the child (this one blocks) and frees the run. */
void	 handler_abort(struct handler_run *run);

#endif
