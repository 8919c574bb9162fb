/*
 * Replays fuzz inputs without libFuzzer, for `make test`: a main() that runs
 * LLVMFuzzerInitialize (when the target has one) and then LLVMFuzzerTestOneInput
 * on every regular file of each directory named on the command line, in name order.
 * Prints one line per directory, "fuzz_<target>_<dirname>: ok (N inputs)" (the
 * parent's name when the directory is named after the target); a
 * violated invariant traps, so a failing input shows as a crash, after a line
 * "fuzz_<target>: replaying <file>" on stderr that names it.
 *
 *   fuzz_replay_json tests/fuzz/corpus/json tests/fuzz/crashes/json
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* The target's name, from the program's: fuzz_replay_<target>. */
static const char	*target = "unknown";

/* Weak: the targets that need no setup do not define it. */
extern int	 LLVMFuzzerInitialize(int *, char ***) __attribute__((weak));

#define INPUT_MAX (16 * 1024 * 1024)

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
replay_file(const char *path)
{
	FILE		*fp;
	struct stat	 st;
	uint8_t		*buf;
	size_t		 len;

	if ((fp = fopen(path, "rb")) == NULL)
		return -1;
	if (fstat(fileno(fp), &st) == -1 || st.st_size < 0 || st.st_size > INPUT_MAX ||
	    (buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
		fclose(fp);
		return -1;
	}
	len = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	if (len != (size_t)st.st_size) {
		free(buf);
		return -1;
	}
	fprintf(stderr, "fuzz_%s: replaying %s\n", target, path);
	/* A copy of exactly len bytes, as libFuzzer gives: ASan sees reads past it. */
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

/* Returns the number of inputs replayed, or -1 when the directory is unreadable. */
static long
replay_dir(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		**names = NULL, **grown, path[4096];
	size_t		 n = 0, i;
	long		 count = 0;
	struct stat	 st;
	int		 len;

	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;	/* ., .. and .gitkeep */
		if ((grown = realloc(names, (n + 1) * sizeof(*names))) == NULL ||
		    (grown[n] = strdup(de->d_name)) == NULL) {
			names = grown != NULL ? grown : names;
			count = -1;
			break;
		}
		names = grown;
		n++;
	}
	closedir(d);
	if (names != NULL)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n && count != -1; i++) {
		len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (len < 0 || (size_t)len >= sizeof(path) || stat(path, &st) == -1) {
			count = -1;
			break;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (replay_file(path) == -1) {
			count = -1;
			break;
		}
		count++;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return count;
}

/* The directory's name, or its parent's when it is named after the target
 * (corpus/json -> "corpus", crashes/json -> "crashes"). */
static const char *
dir_label(const char *dir)
{
	static char	 label[256];
	const char	*slash = strrchr(dir, '/'), *base, *parent;
	size_t		 n;

	base = slash != NULL ? slash + 1 : dir;
	if (slash == NULL || strcmp(base, target) != 0)
		return base;
	for (parent = slash; parent > dir && parent[-1] != '/'; parent--)
		continue;
	n = (size_t)(slash - parent);
	if (n == 0 || n >= sizeof(label))
		return base;
	memcpy(label, parent, n);
	label[n] = '\0';
	return label;
}

int
main(int argc, char *argv[])
{
	const char	*base;
	long		 count;
	int		 i, failed = 0;

	base = strrchr(argv[0], '/');
	base = base != NULL ? base + 1 : argv[0];
	if (strncmp(base, "fuzz_replay_", 12) == 0)
		target = base + 12;
	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		size_t len = strlen(argv[i]);

		while (len > 1 && argv[i][len - 1] == '/')
			argv[i][--len] = '\0';
		base = dir_label(argv[i]);
		if ((count = replay_dir(argv[i])) == -1) {
			printf("fuzz_%s_%s: FAIL cannot read %s\n", target, base,
			    argv[i]);
			failed = 1;
		} else
			printf("fuzz_%s_%s: ok (%ld inputs)\n", target, base, count);
		fflush(stdout);
	}
	return failed;
}
