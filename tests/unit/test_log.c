/* Logging: level names, the line format on stderr, one write per line under
 * concurrency, and the rate limit. stderr is captured into a memfd. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtiod/log.h"

#define CAPTURE_MAX (1 << 20)

static int saved_stderr = -1;
static int pipe_rd = -1;
static pthread_t reader;
static char captured[CAPTURE_MAX];
static size_t captured_len;

/* stderr becomes a pipe, as under a supervisor: one write() of at most
 * PIPE_BUF bytes is atomic there, which is what keeps lines whole. */
static void *read_pipe(void *arg)
{
	ssize_t n;

	(void)arg;
	while ((n = read(pipe_rd, captured + captured_len,
			 sizeof(captured) - 1 - captured_len)) > 0)
		captured_len += (size_t)n;
	return NULL;
}

static void capture_begin(void)
{
	int p[2];

	fflush(stderr);
	assert_int_equal(pipe(p), 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	close(p[1]);
	pipe_rd = p[0];
	captured_len = 0;
	assert_int_equal(pthread_create(&reader, NULL, read_pipe, NULL), 0);
}

/* Restores stderr first, so a failing assertion is seen. */
static const char *capture_end(void)
{
	dup2(saved_stderr, STDERR_FILENO); /* last write end: reader sees EOF */
	close(saved_stderr);
	pthread_join(reader, NULL);
	close(pipe_rd);
	assert_true(captured_len < CAPTURE_MAX - 1); /* nothing cut off */
	captured[captured_len] = '\0';
	return captured;
}

static int setup(void **state)
{
	(void)state;
	vd_log_init(VD_LOG_INFO, false);
	vd_log_set_timestamps(false);
	return 0;
}

static void level_parse_accepts_names_and_numbers(void **state)
{
	static const struct {
		const char *s;
		enum vd_log_level level;
	} ok[] = {
		{"err", VD_LOG_ERR},	 {"error", VD_LOG_ERR},
		{"warn", VD_LOG_WARN},	 {"warning", VD_LOG_WARN},
		{"info", VD_LOG_INFO},	 {"debug", VD_LOG_DEBUG},
		{"DEBUG", VD_LOG_DEBUG}, {"0", VD_LOG_ERR},
		{"1", VD_LOG_WARN},	 {"2", VD_LOG_INFO},
		{"3", VD_LOG_DEBUG},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		enum vd_log_level l = (enum vd_log_level)99;

		assert_int_equal(vd_log_level_parse(ok[i].s, &l), 0);
		assert_int_equal(l, ok[i].level);
	}
}

static void level_parse_rejects_unknown_names(void **state)
{
	static const char *const bad[] = {"",	 "4",	 "-1",	 "verbose",
					  "inf", "errr", "info "};
	enum vd_log_level l = VD_LOG_WARN;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vd_log_level_parse(bad[i], &l), -EINVAL);
	assert_int_equal(vd_log_level_parse(NULL, &l), -EINVAL);
	assert_int_equal(l, VD_LOG_WARN);
}

static void line_names_who_and_ends_in_newline(void **state)
{
	(void)state;
	capture_begin();
	vd_err("blk0 q1", "chain loop at desc %d", 17);
	vd_warn(NULL, "listening on %s", "/tmp/s");
	assert_string_equal(capture_end(),
			    "virtiod[blk0 q1]: chain loop at desc 17\n"
			    "virtiod: listening on /tmp/s\n");
}

static void lines_above_the_level_are_dropped(void **state)
{
	(void)state;
	vd_log_set_level(VD_LOG_WARN);
	assert_int_equal(vd_log_get_level(), VD_LOG_WARN);
	capture_begin();
	vd_info("x", "info line");
	vd_debug("x", "debug line");
	vd_warn("x", "warn line");
	vd_err("x", "err line");
	vd_log_set_level(VD_LOG_INFO);
	assert_string_equal(capture_end(),
			    "virtiod[x]: warn line\nvirtiod[x]: err line\n");
}

static void timestamps_prefix_each_line(void **state)
{
	regex_t re;

	(void)state;
	assert_int_equal(
		regcomp(&re,
			"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
			"[0-9]{2}\\.[0-9]{3}Z virtiod\\[d\\]: hello\n$",
			REG_EXTENDED),
		0);
	vd_log_set_timestamps(true);
	capture_begin();
	vd_info("d", "hello");
	vd_log_set_timestamps(false);
	assert_int_equal(regexec(&re, capture_end(), 0, NULL, 0), 0);
	regfree(&re);
}

static void overlong_line_is_cut_and_marked(void **state)
{
	static char big[5000];
	const char *out;
	size_t len;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	capture_begin();
	vd_info("d", "%s", big);
	out = capture_end();
	len = strlen(out);
	assert_true(len <= 1024);
	assert_true(len > 1000);
	assert_memory_equal(out + len - 4, "...\n", 4);
	assert_ptr_equal(strchr(out, '\n'), out + len - 1);
}

/* Even when the write itself fails (stderr read-only here). */
static void logging_keeps_errno(void **state)
{
	int ro = open("/dev/null", O_RDONLY);
	int saved = dup(STDERR_FILENO);
	int err;

	(void)state;
	assert_true(ro >= 0 && saved >= 0);
	fflush(stderr);
	dup2(ro, STDERR_FILENO);
	errno = ENOSPC;
	vd_err("d", "x");
	err = errno;
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(ro);
	assert_int_equal(err, ENOSPC);
}

#define WRITERS		 4
#define LINES_PER_WRITER 300

static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < LINES_PER_WRITER; i++)
		vd_info("w",
			"writer %d line %04d "
			"................................................"
			"................................................",
			id, i);
	return NULL;
}

static void concurrent_lines_never_interleave(void **state)
{
	pthread_t t[WRITERS];
	int seen[WRITERS] = {0};
	char *line, *save = NULL;
	const char *out;
	char *copy;

	(void)state;
	capture_begin();
	for (int i = 0; i < WRITERS; i++)
		pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	out = capture_end();
	copy = strdup(out);
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int id, n, end = 0;

		assert_int_equal(sscanf(line,
					"virtiod[w]: writer %d line %d %*[.]%n",
					&id, &n, &end),
				 2);
		assert_int_equal((size_t)end, strlen(line));
		assert_true(id >= 0 && id < WRITERS);
		assert_int_equal(n,
				 seen[id]); /* each writer's lines in order */
		seen[id]++;
	}
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(seen[i], LINES_PER_WRITER);
	free(copy);
}

static void ratelimit_passes_burst_then_counts_refusals(void **state)
{
	struct vd_ratelimit rl = {.burst = 3, .interval_ms = 60000};

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_true(vd_ratelimit_ok(&rl));
	assert_false(vd_ratelimit_ok(&rl));
	assert_false(vd_ratelimit_ok(&rl));
	assert_int_equal(rl.suppressed, 2);
}

static void ratelimit_opens_a_new_window_after_the_interval(void **state)
{
	struct vd_ratelimit rl = {.burst = 1, .interval_ms = 60000};

	(void)state;
	assert_true(vd_ratelimit_ok(&rl));
	assert_false(vd_ratelimit_ok(&rl));
	/* Pretend the interval has passed (monotonic clock). */
	rl.window_start_ns -= 60000ull * 1000000ull;
	assert_true(vd_ratelimit_ok(&rl));
	assert_false(vd_ratelimit_ok(&rl));
	/* Just short of the interval is still the same window. */
	rl.window_start_ns -= 59000ull * 1000000ull;
	assert_false(vd_ratelimit_ok(&rl));
}

static void ratelimited_line_reports_suppressed_count(void **state)
{
	struct vd_ratelimit rl = {.burst = 1, .interval_ms = 60000};

	(void)state;
	capture_begin();
	for (int i = 0; i < 4; i++)
		vd_log_ratelimited(&rl, VD_LOG_WARN, "blk0 q0", "bad chain %d",
				   i);
	rl.window_start_ns -= 60000ull * 1000000ull;
	vd_log_ratelimited(&rl, VD_LOG_WARN, "blk0 q0", "bad chain %d", 4);
	rl.window_start_ns -= 60000ull * 1000000ull;
	vd_log_ratelimited(&rl, VD_LOG_WARN, "blk0 q0", "bad chain %d", 5);
	assert_string_equal(capture_end(), "virtiod[blk0 q0]: bad chain 0\n"
					   "virtiod[blk0 q0]: bad chain 4 (3 "
					   "similar messages suppressed)\n"
					   "virtiod[blk0 q0]: bad chain 5\n");
	assert_int_equal(rl.suppressed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(level_parse_accepts_names_and_numbers),
		cmocka_unit_test(level_parse_rejects_unknown_names),
		cmocka_unit_test(line_names_who_and_ends_in_newline),
		cmocka_unit_test(lines_above_the_level_are_dropped),
		cmocka_unit_test(timestamps_prefix_each_line),
		cmocka_unit_test(overlong_line_is_cut_and_marked),
		cmocka_unit_test(logging_keeps_errno),
		cmocka_unit_test(concurrent_lines_never_interleave),
		cmocka_unit_test(ratelimit_passes_burst_then_counts_refusals),
		cmocka_unit_test(
			ratelimit_opens_a_new_window_after_the_interval),
		cmocka_unit_test(ratelimited_line_reports_suppressed_count),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
