/* Unit tests for lib/util.c, lib/secret.c and lib/log.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "tgq.h"

static int
int_is(const char *text, int64_t min, int64_t max, int64_t want)
{
	const char	*errstr = NULL;
	int64_t		 got = -12345;

	return parse_int(text, min, max, &got, &errstr) == 0 && got == want;
}

static int
int_fails(const char *text, int64_t min, int64_t max, const char *why)
{
	const char	*errstr = NULL;
	int64_t		 got = 0;

	return parse_int(text, min, max, &got, &errstr) == -1 &&
	    strcmp(errstr, why) == 0;
}

static void
test_parse(void)
{
	const char	*errstr;
	int64_t		 v = 0;

	CHECK("parse_int_plain", int_is("42", 0, 100, 42));
	CHECK("parse_int_negative", int_is("-7", -10, 10, -7));
	CHECK("parse_int_max", int_is("9223372036854775807", 0, INT64_MAX, INT64_MAX));
	CHECK("parse_int_overflow", int_fails("9223372036854775808", 0, INT64_MAX,
	    "too large"));
	CHECK("parse_int_empty", int_fails("", 0, 10, "empty"));
	CHECK("parse_int_space", int_fails(" 1", 0, 10, "not a number"));
	CHECK("parse_int_plus", int_fails("+1", 0, 10, "not a number"));
	CHECK("parse_int_trailing", int_fails("12abc", 0, 100, "not a number"));
	CHECK("parse_int_suffix_refused", int_fails("1K", 0, 10000, "not a number"));
	CHECK("parse_int_too_small", int_fails("-1", 0, 10, "too small"));
	CHECK("parse_int_too_large", int_fails("11", 0, 10, "too large"));
	CHECK("parse_int_minus_alone", int_fails("-", 0, 10, "not a number"));
	CHECK("parse_size_k", parse_size("512K", 0, INT64_MAX, &v, &errstr) == 0 &&
	    v == 512 * 1024);
	CHECK("parse_size_m", parse_size("1M", 0, INT64_MAX, &v, &errstr) == 0 &&
	    v == 1048576);
	CHECK("parse_size_bytes", parse_size("1000", 0, INT64_MAX, &v, &errstr) == 0 &&
	    v == 1000);
	CHECK("parse_size_bad_suffix", parse_size("1MB", 0, INT64_MAX, &v,
	    &errstr) == -1);
	CHECK("parse_size_overflow", parse_size("9000000000000G", 0, INT64_MAX, &v,
	    &errstr) == -1 && strcmp(errstr, "too large") == 0);
	CHECK("parse_duration_days", parse_duration("7d", 0, INT64_MAX, &v,
	    &errstr) == 0 && v == 7 * 86400);
	CHECK("parse_duration_plain_seconds", parse_duration("90", 0, INT64_MAX, &v,
	    &errstr) == 0 && v == 90);
	CHECK("parse_duration_minutes", parse_duration("2m", 0, INT64_MAX, &v,
	    &errstr) == 0 && v == 120);
}

static void
test_secret(void)
{
	static const char token[] = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_";
	char big[300];

	CHECK("secret_equal_same", secret_equal("abc", 3, "abc", 3));
	CHECK("secret_equal_differs_last", !secret_equal("abd", 3, "abc", 3));
	CHECK("secret_equal_differs_first", !secret_equal("xbc", 3, "abc", 3));
	CHECK("secret_equal_prefix", !secret_equal("ab", 2, "abc", 3));
	CHECK("secret_equal_longer", !secret_equal("abcd", 4, "abc", 3));
	CHECK("secret_equal_repeat_of_shorter", !secret_equal("abcabc", 6, "abc", 3));
	CHECK("secret_equal_empty_candidate", !secret_equal("", 0, "abc", 3));
	CHECK("secret_equal_empty_both", !secret_equal("", 0, "", 0));
	CHECK("secret_equal_nul_inside", !secret_equal("a\0c", 3, "abc", 3));
	CHECK("secret_valid_ok", secret_valid("Abc_09-x", 8));
	CHECK("secret_valid_empty", !secret_valid("", 0));
	CHECK("secret_valid_space", !secret_valid("a b", 3));
	CHECK("secret_valid_colon", !secret_valid("a:b", 3));
	memset(big, 'a', sizeof(big));
	CHECK("secret_valid_256", secret_valid(big, 256));
	CHECK("secret_valid_257", !secret_valid(big, 257));
	CHECK("token_valid_ok", token_valid(token, strlen(token)));
	CHECK("token_valid_no_colon", !token_valid("123456789", 9));
	CHECK("token_valid_short_tail", !token_valid("1:abc", 5));
	CHECK("token_valid_slash", !token_valid("123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALD/aw",
	    38));
	CHECK("token_valid_no_digits", !token_valid(":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
	    35));
}

/* The lines of a secret file: the secret, then at most the previous one. */
static void
test_secret_lines(void)
{
	struct secret_lines	 l;
	const char		*why;
	int			 line = 0;

#define PARSE(text) secret_lines_parse(text, sizeof(text) - 1, &l, &line, &why)
	CHECK("secret_lines_one", PARSE("abc\n") == 0 && l.n == 1 && l.len[0] == 3 &&
	    memcmp(l.line[0], "abc", 3) == 0);
	CHECK("secret_lines_one_no_newline", PARSE("abc") == 0 && l.n == 1 &&
	    l.len[0] == 3);
	CHECK("secret_lines_crlf", PARSE("abc\r\ndef\r\n") == 0 && l.n == 2 &&
	    l.len[0] == 3 && l.len[1] == 3 && memcmp(l.line[1], "def", 3) == 0);
	CHECK("secret_lines_two", PARSE("new\nold\n") == 0 && l.n == 2 &&
	    memcmp(l.line[0], "new", 3) == 0 && memcmp(l.line[1], "old", 3) == 0);
	CHECK("secret_lines_empty", PARSE("") == -1 && line == 1);
	CHECK("secret_lines_bad_first", PARSE("a b\nold\n") == -1 && line == 1);
	CHECK("secret_lines_bad_second", PARSE("new\nnot a secret!\n") == -1 &&
	    line == 2 && strstr(why, "previous") != NULL &&
	    strstr(why, "not a secret") == NULL);
	CHECK("secret_lines_blank_second", PARSE("new\n\n") == -1 && line == 2);
	CHECK("secret_lines_three", PARSE("a\nb\nc\n") == -1 && line == 3);
#undef PARSE
	CHECK("secret_pair_current", secret_pair_equal("new", 3, "new", 3, "old", 3));
	CHECK("secret_pair_previous", secret_pair_equal("old", 3, "new", 3, "old", 3));
	CHECK("secret_pair_neither", !secret_pair_equal("odd", 3, "new", 3, "old", 3));
	CHECK("secret_pair_no_previous", secret_pair_equal("new", 3, "new", 3, NULL,
	    0) && !secret_pair_equal("old", 3, "new", 3, NULL, 0));
	CHECK("secret_pair_no_secret", !secret_pair_equal("", 0, NULL, 0, NULL, 0));
}

static void
test_log_escape(void)
{
	char out[16];

	CHECK("log_escape_printable", strcmp(log_escape(out, sizeof(out), "abc", 3),
	    "abc") == 0);
	CHECK("log_escape_control", strcmp(log_escape(out, sizeof(out), "a\nb", 3),
	    "a\\x0ab") == 0);
	CHECK("log_escape_backslash", strcmp(log_escape(out, sizeof(out), "\\", 1),
	    "\\x5c") == 0);
	CHECK("log_escape_nul", strcmp(log_escape(out, sizeof(out), "\0", 1),
	    "\\x00") == 0);
	log_escape(out, sizeof(out), "0123456789abcdefghij", 20);
	CHECK("log_escape_truncates", strlen(out) < sizeof(out) &&
	    strcmp(out + strlen(out) - 3, "...") == 0);
	log_escape(out, sizeof(out), "\xff\xff\xff\xff\xff\xff", 6);
	CHECK("log_escape_truncates_escapes", strlen(out) < sizeof(out) &&
	    strcmp(out + strlen(out) - 3, "...") == 0);
}

static void
test_read_small_file(void)
{
	char	 path[] = "/tmp/tgq-test-XXXXXX", err[256], *buf = NULL;
	size_t	 len = 0;
	int	 fd = mkstemp(path);

	if (fd == -1 || write(fd, "secret\n", 7) != 7) {
		CHECK("read_small_file_setup", 0);
		return;
	}
	close(fd);
	CHECK("read_small_file_ok", read_small_file(path, 100, &buf, &len, err,
	    sizeof(err)) == 0 && len == 7 && memcmp(buf, "secret\n", 8) == 0);
	free(buf);
	buf = NULL;
	CHECK("read_small_file_too_large", read_small_file(path, 6, &buf, &len, err,
	    sizeof(err)) == -1 && strstr(err, "larger than") != NULL &&
	    strstr(err, "secret") == NULL);
	unlink(path);
	CHECK("read_small_file_missing", read_small_file(path, 100, &buf, &len, err,
	    sizeof(err)) == -1 && strstr(err, "No such file") != NULL);
	CHECK("read_small_file_directory", read_small_file("/tmp", 100, &buf, &len,
	    err, sizeof(err)) == -1);
}

/*
 * In a child (this process keeps its own 0-2): with 0, 1 and 2 closed, and then
 * with only 2 closed, check_std_fds() fills exactly the closed ones, so the next
 * file opened lands above 2.  The child's exit status is the verdict.
 */
static int
std_fds_filled(int close_all)
{
	pid_t	 pid;
	int	 status, fd, first = close_all ? 0 : 2;

	if ((pid = fork()) == -1)
		return 0;
	if (pid == 0) {
		for (fd = first; fd <= 2; fd++)
			close(fd);
		if (check_std_fds() == -1)
			_exit(1);
		for (fd = 0; fd <= 2; fd++)
			if (fcntl(fd, F_GETFD) == -1)
				_exit(2);
		fd = open("/dev/null", O_RDONLY);
		_exit(fd > 2 ? 0 : 3);
	}
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0;
}

int
main(void)
{
	test_parse();
	test_secret();
	test_secret_lines();
	test_log_escape();
	test_read_small_file();
	{
		const char	*p = " 12,,\t34 ,";
		char		 e[3];

		CHECK("list_next_entries", list_next(&p, e, sizeof(e)) == 1 &&
		    strcmp(e, "12") == 0 && list_next(&p, e, sizeof(e)) == 1 &&
		    strcmp(e, "34") == 0 && list_next(&p, e, sizeof(e)) == 0);
		p = "123";
		CHECK("list_next_too_long", list_next(&p, e, sizeof(e)) == -1);
	}
	CHECK("std_fds_all_closed", std_fds_filled(1));
	CHECK("std_fds_stderr_closed", std_fds_filled(0));
	return check_exit();
}
