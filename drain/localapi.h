/*
 * The local Bot API's own interface, shared by its files: the server and its
 * routing (localapi.c), getUpdates from the queue (localapi_updates.c) and the
 * calls passed through to Telegram (localapi_pass.c).  The drain sees only
 * drain.h's localapi_* functions.
 */
#ifndef LOCALAPI_H
#define LOCALAPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "drain.h"

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_PostProcessor;

/* A request's body: in memory up to BODY_SPOOL_AT, then in an unlinked file. */
#define BODY_SPOOL_AT	(64 * 1024)
struct body {
	char	*mem;
	size_t	 len, cap;
	int	 fd;		/* -1 while in memory */
	off_t	 size;		/* the whole body's length */
};

/* The parameters the local API itself reads, as text, "" when not given. */
#define FIELD_MAX 512
struct api_fields {
	char	 chat_id[CHAT_KEY_MAX];
	char	 offset[24];
	char	 limit[24];
	char	 timeout[24];
	char	 allowed_updates[FIELD_MAX];
	char	 drop_pending_updates[8];
};

enum request_kind {
	REQ_ERROR,		/* answered at once with a Bot API error */
	REQ_GET_UPDATES,
	REQ_LOCAL,		/* webhook management: answered here */
	REQ_PASS,		/* passed through to api_url */
	REQ_FILE,		/* a download passed through */
	REQ_METRICS,
};

/* One HTTP request, from its first byte until MHD reports it completed. */
struct request {
	struct localapi		*api;
	struct MHD_Connection	*conn;
	enum request_kind	 kind;
	size_t			 bot;		/* index in cfg->bots */
	char			 method[BOTAPI_METHOD_MAX + 1];
	char			*path;		/* REQ_FILE: what follows the token */
	char			*query;		/* the raw query string, or NULL */
	char			*content_type;	/* NULL: none (a GET) */
	int			 is_post;
	int			 is_head;	/* REQ_FILE only */
	struct body		 body;
	size_t			 body_max;
	int			 too_large;
	int			 out_of_memory;	/* or no file to spool to */
	struct MHD_PostProcessor *pp;
	struct api_fields	 fields;
	int			 suspended;
	int			 answered;
	struct pass_call	*pass;		/* while passed through */
	struct request		*next_parked;	/* a parked getUpdates */
	int64_t			 poll_deadline_ms;
};

/* What the local API holds per configured bot. */
struct api_bot {
	const struct bot_config	*cfg;
	struct ratelimit	*rl;		/* the drain's, shared with outbox calls */
	int			 pull;		/* handler = pull */
	struct request		*poll;		/* its parked getUpdates, or NULL */
	int64_t			 poll_offset;
	int64_t			 poll_limit;
	char			 kinds[FIELD_MAX];	/* allowed_updates: ",a,b," or "" */
};

struct localapi {
	const struct config	*cfg;
	struct queue		*q;
	struct jobs		*jobs;
	struct sender		*sender;
	struct MHD_Daemon	*mhd;
	int			 listen_fd;
	struct sqlite3_stmt	*json_st;	/* a JSON body's parameters */
	char			 unix_path[108];	/* unlinked at close */
	struct api_bot		 bots[CONFIG_MAX_BOTS];
	size_t			 nbots;
	/* localapi_updates.c's */
	struct updates_state	*updates;
	/* localapi_pass.c's */
	struct pass_state	*pass;
	int			 resumed;	/* a connection was resumed: run MHD */
	int			 stopping;	/* no poll parks, no call starts */
	struct localapi_counters {
		uint64_t	 served;	/* getUpdates answered */
		uint64_t	 held;		/* answered 429 for hold_limit */
	} counters[CONFIG_MAX_BOTS];
};

/*
 * sender.c's downloads passed on as they come: the header lines and the body
 * go to the caller's functions while the transfer runs.  body() answers n when
 * it took the bytes, or CURL_WRITEFUNC_PAUSE when it has no room for them: the
 * transfer then waits, and the same bytes come again after sender_continue().
 * sender_abort() ends a transfer that has not finished (it is then never seen
 * by sender_next_done()).  A download may last as long as its bot reads: it
 * is not one of sender_in_flight()'s calls (max_in_flight calls go beside
 * max_in_flight downloads, and a stopping drain does not wait for one);
 * sender_streams() counts them.
 */
struct raw_stream {
	size_t	 (*header)(void *arg, const char *line, size_t len);
	size_t	 (*body)(void *arg, const char *data, size_t len);
	void	*arg;
	int	 head;			/* a HEAD: no body asked for */
	/* the sender's */
	void	*easy;			/* the transfer, while it runs */
	int	 transport_failed;	/* set when it finished */
};
int	 sender_start_stream(struct sender *s, int64_t id,
	    const struct raw_call *rc, struct raw_stream *st, char *err,
	    size_t errlen);
void	 sender_continue(struct sender *s, struct raw_stream *st);
void	 sender_abort(struct sender *s, struct raw_stream *st);
size_t	 sender_streams(const struct sender *s);

/* localapi.c */
/* Answers req with this body (copied), as application/json; resumes it. */
void	 api_answer(struct request *req, unsigned status, const char *body,
	    size_t len);
/* The same, the body taken over (free()d by MHD). */
void	 api_answer_owned(struct request *req, unsigned status, char *body,
	    size_t len, const char *content_type);
/* {"ok":false,"error_code":status,"description":description} */
void	 api_error(struct request *req, unsigned status, const char *description);
/* Answers with a body read(cls, ...) gives as it comes (size -1: not known
 * ahead), libmicrohttpd's content reader; release(cls) when the answer is
 * done with it.  -1 when no answer could be made (release is not called). */
int	 api_answer_reader(struct request *req, unsigned status, int64_t size,
	    const char *content_type, ssize_t (*read)(void *cls, uint64_t pos,
	    char *buf, size_t max), void *cls, void (*release)(void *cls));
/* An unlinked temporary file, for a large body; -1 (logged) when none. */
int	 api_spool_open(void);
/* Keeps the request waiting for an answer that comes later. */
void	 api_suspend(struct request *req);

/* localapi_updates.c */
int	 updates_open(struct localapi *a, char *err, size_t errlen);
void	 updates_close(struct localapi *a);
void	 updates_serve(struct localapi *a, struct request *req);
/* Parked polls: answered when the queue changed and has something, or at
 * their timeout; the ms until the next timeout (INT64_MAX: none). */
int64_t	 updates_wake(struct localapi *a, int64_t now_ms);
/* A parked request went away (completed): forget it. */
void	 updates_forget(struct localapi *a, struct request *req);
/* Every parked poll is answered (empty), for a stop. */
void	 updates_flush(struct localapi *a);
/* getWebhookInfo's pending_update_count; -1 when the queue failed. */
int64_t	 updates_pending(struct localapi *a, const struct api_bot *b);

/* localapi_pass.c */
int	 pass_open(struct localapi *a, char *err, size_t errlen);
void	 pass_close(struct localapi *a);
void	 pass_submit(struct localapi *a, struct request *req);
/* Starts what the limits let go; the ms until a held call may go. */
int64_t	 pass_start(struct localapi *a, int64_t now_ms);
/* Downloads waiting for room go on where the bots have read enough. */
void	 pass_continue(struct localapi *a);
/* 1 when s was one of ours (it is then handled), else 0. */
int	 pass_answered(struct localapi *a, struct sent *s);
/* A request went away (completed) while waiting: forget it. */
void	 pass_forget(struct localapi *a, struct request *req);
/* Calls not started yet (all: and those in flight) are answered with an
 * error, for a stop. */
void	 pass_flush(struct localapi *a, int all);
size_t	 pass_in_flight(const struct localapi *a);
/* The metrics text of the pass-through counters, appended to out. */
int	 pass_metrics(struct localapi *a, char **out, size_t *len, size_t *cap);

#endif
