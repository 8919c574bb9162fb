/*
 * The webhook secrets of a running tgq-webhook: the secret files are reread when
 * they change, so that a rotation (tgq rotate-secret, or any rewrite of a file)
 * needs no restart.
 *
 * A check costs a stat() per bot read from a file, and is made at most once a
 * second per process, by whichever request thread comes first; and at once when a
 * request's secret matched no bot, so that a secret registered with Telegram right
 * after its file was written is never refused while the check waits for its
 * second.  A file is reread only when its inode, size or times differ from those
 * of the version in use.  A file that cannot be read, or whose text is not one or
 * two valid secrets, leaves the secrets read before in force, and is logged once
 * per version (never its text).
 *
 * The secrets live where the configuration put them (each bot's secret and
 * secret_prev), and this file is their one writer after the start: request
 * threads read them between secrets_read_begin() and secrets_read_end() (a read
 * lock), a reread swaps them under the write lock and frees the old ones after.
 * Environment secrets are never reread: nothing can change them.
 */
#define _GNU_SOURCE	/* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "webhook.h"

#define CHECK_EVERY_MS 1000

/* What tells one version of a file from another. */
struct file_version {
	int		 err;		/* stat()'s errno; 0: the fields below */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime, ctime;
};

struct watched {
	struct file_version	 in_use;	/* of the secrets in force */
	struct file_version	 refused;	/* the last version logged as wrong */
	int			 has_refused;
};

struct secrets {
	struct config		*cfg;
	pthread_rwlock_t	 lock;		/* the bots' secret fields */
	pthread_mutex_t		 reread;	/* one check at a time */
	atomic_llong		 next_check_ms;
	struct watched		 bots[CONFIG_MAX_BOTS];
};

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
version_of(const char *path, struct file_version *v)
{
	struct stat st;

	memset(v, 0, sizeof(*v));
	if (stat(path, &st) == -1) {
		v->err = errno ? errno : EIO;
		return;
	}
	v->dev = st.st_dev;
	v->ino = st.st_ino;
	v->size = st.st_size;
	v->mtime = st.st_mtim;
	v->ctime = st.st_ctim;
}

static int
version_same(const struct file_version *a, const struct file_version *b)
{
	if (a->err != 0 || b->err != 0)
		return a->err == b->err;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	    a->mtime.tv_sec == b->mtime.tv_sec &&
	    a->mtime.tv_nsec == b->mtime.tv_nsec &&
	    a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Whether one of the secrets equals one of another bot's: the secret then could
 * not tell the bots apart. */
static const struct bot_config *
clashing_bot(const struct config *cfg, size_t self, const struct secret_lines *l)
{
	size_t i, j;

	for (i = 0; i < cfg->nbots; i++) {
		const struct bot_config *b = &cfg->bots[i];

		for (j = 0; i != self && b->secret != NULL && j < l->n; j++)
			if (secret_pair_equal(l->line[j], l->len[j], b->secret,
			    b->secret_len, b->secret_prev, b->secret_prev_len))
				return b;
	}
	return NULL;
}

/* Logs why a version of bot i's file is refused, once per version. */
static void
refuse(struct secrets *s, size_t i, const struct file_version *v, const char *why)
{
	struct watched *w = &s->bots[i];

	if (w->has_refused && version_same(&w->refused, v))
		return;
	w->refused = *v;
	w->has_refused = 1;
	log_warnx("bot %s: %s; still accepting the secrets read before",
	    s->cfg->bots[i].name, why);
}

/* Rereads bot i's file when it changed; 1 when its secrets were replaced.
 * Called with s->reread held. */
static int
reread_bot(struct secrets *s, size_t i)
{
	struct bot_config	*b = &s->cfg->bots[i];
	struct watched		*w = &s->bots[i];
	struct file_version	 v;
	struct secret_lines	 lines;
	const struct bot_config	*other;
	const char		*why;
	char			*text = NULL, *cur = NULL, *prev = NULL, *old_cur,
				*old_prev, err[PATH_MAX + 256];
	size_t			 len = 0, old_cur_len, old_prev_len;
	int			 line, changed;

	version_of(b->secret_path, &v);
	if (version_same(&v, &w->in_use) ||
	    (w->has_refused && version_same(&v, &w->refused)))
		return 0;
	if (v.err != 0) {
		snprintf(err, sizeof(err), "%s: %s", b->secret_path, strerror(v.err));
		refuse(s, i, &v, err);
		return 0;
	}
	if (read_small_file(b->secret_path, SECRET_FILE_MAX, &text, &len, err,
	    sizeof(err)) == -1) {
		refuse(s, i, &v, err);
		return 0;
	}
	changed = 0;
	if (secret_lines_parse(text, len, &lines, &line, &why) == -1) {
		snprintf(err, sizeof(err), "%s, line %d: %s", b->secret_path, line, why);
		refuse(s, i, &v, err);
		goto done;
	}
	if ((other = clashing_bot(s->cfg, i, &lines)) != NULL) {
		snprintf(err, sizeof(err), "%s holds a secret of bot %s (each bot needs "
		    "its own)", b->secret_path, other->name);
		refuse(s, i, &v, err);
		goto done;
	}
	if ((cur = strndup(lines.line[0], lines.len[0])) == NULL ||
	    (lines.n > 1 && (prev = strndup(lines.line[1], lines.len[1])) == NULL)) {
		log_err("bot %s: rereading %s: out of memory", b->name, b->secret_path);
		secret_free(cur, lines.len[0]);
		goto done;	/* tried again at the next check */
	}
	changed = b->secret == NULL ||
	    !secret_equal(cur, lines.len[0], b->secret, b->secret_len) ||
	    (prev == NULL) != (b->secret_prev == NULL) || (prev != NULL &&
	    !secret_equal(prev, lines.len[1], b->secret_prev, b->secret_prev_len));
	pthread_rwlock_wrlock(&s->lock);
	old_cur = b->secret;
	old_cur_len = b->secret_len;
	old_prev = b->secret_prev;
	old_prev_len = b->secret_prev_len;
	b->secret = cur;
	b->secret_len = lines.len[0];
	b->secret_prev = prev;
	b->secret_prev_len = prev != NULL ? lines.len[1] : 0;
	pthread_rwlock_unlock(&s->lock);
	secret_free(old_cur, old_cur_len);
	secret_free(old_prev, old_prev_len);
	w->in_use = v;
	w->has_refused = 0;
	if (changed)
		log_info("bot %s: %s reread: %s", b->name, b->secret_path,
		    prev != NULL ? "the secret and the previous one are accepted" :
		    "one secret is accepted");
done:
	if (text != NULL)
		explicit_bzero(text, len);
	free(text);
	return changed;
}

int
secrets_refresh(struct secrets *s, int force)
{
	int64_t		 now;
	long long	 expected;
	size_t		 i;
	int		 changed = 0;

	if (s == NULL)
		return 0;
	now = monotonic_ms();
	if (!force) {
		expected = atomic_load(&s->next_check_ms);
		if (now < expected || !atomic_compare_exchange_strong(
		    &s->next_check_ms, &expected, now + CHECK_EVERY_MS))
			return 0;
	}
	pthread_mutex_lock(&s->reread);
	for (i = 0; i < s->cfg->nbots; i++)
		if (s->cfg->bots[i].secret_path != NULL)
			changed |= reread_bot(s, i);
	pthread_mutex_unlock(&s->reread);
	return changed;
}

void
secrets_read_begin(struct secrets *s)
{
	if (s != NULL)
		pthread_rwlock_rdlock(&s->lock);
}

void
secrets_read_end(struct secrets *s)
{
	if (s != NULL)
		pthread_rwlock_unlock(&s->lock);
}

int
secrets_start(struct config *cfg, struct secrets **out, char *err, size_t errlen)
{
	pthread_rwlockattr_t	 attr;
	struct secrets		*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->cfg = cfg;
	/* Readers hold the lock for a few compares, but many threads read: a
	 * swap must not wait for a moment when none does. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&s->reread, NULL);
	/* The versions in use are unknown (zero): the first check reads each file
	 * again, so that a file changed since the configuration was read is not
	 * taken for the one read then. */
	atomic_store(&s->next_check_ms, 0);
	(void)secrets_refresh(s, 1);
	*out = s;
	return 0;
}

void
secrets_stop(struct secrets *s)
{
	if (s == NULL)
		return;
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->reread);
	free(s);
}
