/* The daemon's command line: help, version, --print-capabilities, every
 * kind of bad option (exit 2, the option named), missing files (exit 1),
 * --fd with an inherited socket. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vu_test.h"

static char out[16384], err[16384];

/* Runs the daemon with the arguments up to NULL; captures out and err. */
static int run(const char *first, ...)
{
	const char *argv[16] = {virtiod_path(), first};
	unsigned n = 2;
	va_list ap;

	va_start(ap, first);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_cmd(argv, out, sizeof(out), err, sizeof(err));
}

#define RUN(...) run(__VA_ARGS__, (const char *)NULL)

static void help_mentions_every_option(void **state)
{
	static const char *const opts[] = {
		"--socket-path",
		"--socket-group",
		"--fd",
		"--disk",
		"--readonly",
		"--direct",
		"--share-rw",
		"--num-queues",
		"--queue-size",
		"--serial",
		"--io-engine",
		"--logical-block-size",
		"--print-capabilities",
		"--log-level",
		"--syslog",
		"--help",
		"--version",
		"--xen-domid",
		"--mmio-base",
		"--mmio-size",
		"--irq",
		"--grant",
		"--map-cache-size",
		"--config",
		"xen-watch",
	};

	(void)state;
	assert_int_equal(RUN("--help"), 0);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!strstr(out, opts[i]))
			fail_msg("--help does not mention %s", opts[i]);
	/* Also after a device type, and with -h. */
	assert_int_equal(RUN("blk", "-h"), 0);
	assert_non_null(strstr(out, "--disk"));
}

static void version_prints_the_version(void **state)
{
	(void)state;
	assert_int_equal(RUN("--version"), 0);
	assert_true(strncmp(out, "virtiod ", 8) == 0);
}

/* vhost-user.json: a block backend reports "read-only" and "blk-file"
 * exactly when it has the --read-only and --blk-file options. */
static void print_capabilities_follows_the_conventions(void **state)
{
	static const char *const feats[] = {"read-only", "blk-file"};
	static const char head[] =
		"{\n  \"type\": \"block\",\n  \"features\": [";
	char help[sizeof(out)], caps[sizeof(out)];
	size_t len;

	(void)state;
	assert_int_equal(RUN("--help"), 0);
	strcpy(help, out);
	assert_int_equal(RUN("--print-capabilities"), 0);
	strcpy(caps, out);
	assert_true(strncmp(caps, head, sizeof(head) - 1) == 0);
	len = strlen(caps);
	assert_true(len > 4 && strcmp(caps + len - 3, "]\n}") != 0 &&
		    strcmp(caps + len - 4, "]\n}\n") == 0);
	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
		char opt[64], q[64];

		snprintf(opt, sizeof(opt), "  --%s ", feats[i]);
		snprintf(q, sizeof(q), "\"%s\"", feats[i]);
		assert_int_equal(strstr(help, opt) != NULL,
				 strstr(caps, q) != NULL);
	}
	/* "Other options and arguments should be ignored" */
	assert_int_equal(RUN("blk", "--print-capabilities", "--bogus", "--disk",
			     "/nonexistent"),
			 0);
	assert_string_equal(out, caps);
	assert_string_equal(err, "");
}

static void expect_usage_error(int status, const char *msg)
{
	assert_int_equal(status, 2);
	if (!strstr(err, msg))
		fail_msg("stderr \"%s\" lacks \"%s\"", err, msg);
	assert_true(strncmp(err, "virtiod: ", 9) == 0);
}

static void unknown_option_is_a_usage_error(void **state)
{
	(void)state;
	expect_usage_error(RUN("blk", "--socket-path", "/tmp/x", "--bogus"),
			   "--bogus: unknown option");
}

static void missing_value_is_a_usage_error(void **state)
{
	(void)state;
	expect_usage_error(RUN("blk", "--socket-path"),
			   "--socket-path needs a value");
	expect_usage_error(RUN("blk", "--readonly=yes"),
			   "--readonly takes no value");
}

static void bad_device_option_values_are_usage_errors(void **state)
{
	(void)state;
	expect_usage_error(RUN("blk", "--socket-path", "/tmp/x", "--disk",
			       "/tmp/x.img", "--num-queues=0"),
			   "--num-queues 0");
	expect_usage_error(RUN("blk", "--queue-size", "100"),
			   "--queue-size 100");
	expect_usage_error(RUN("blk", "--io-engine", "aio"), "--io-engine aio");
	expect_usage_error(RUN("blk", "--fd", "-3"), "--fd -3: not a number");
	expect_usage_error(RUN("blk", "--log-level", "loud"),
			   "--log-level loud");
}

static void conflicting_or_missing_modes_are_usage_errors(void **state)
{
	(void)state;
	expect_usage_error(RUN("blk", "--socket-path", "/tmp/x", "--fd", "3"),
			   "--socket-path and --fd exclude each other");
	expect_usage_error(RUN("blk", "--disk", "/tmp/x.img"),
			   "need --socket-path PATH or --fd N");
	expect_usage_error(RUN("blk", "--socket-path", "/tmp/x", "--irq", "5"),
			   "exclude --socket-path");
	expect_usage_error(RUN("floppy", "--socket-path", "/tmp/x"),
			   "floppy: unknown device type");
	expect_usage_error(RUN("--socket-path", "/tmp/x"),
			   "no device type given");
	expect_usage_error(RUN("--disk", "/tmp/x.img"),
			   "--disk: a device option");
	expect_usage_error(RUN("blk", "--socket-path", "/tmp/x"),
			   "--disk is required");
}

static void missing_disk_file_is_reported(void **state)
{
	(void)state;
	assert_int_equal(RUN("blk", "--socket-path", "/tmp/vu-test-cli.sock",
			     "--disk", "/nonexistent/x.img"),
			 1);
	assert_non_null(strstr(err, "virtiod: --disk /nonexistent/x.img: No "
				    "such file or directory"));
}

static void socket_path_on_a_regular_file_is_refused(void **state)
{
	struct daemon d;
	char path[160];
	int fd;

	(void)state;
	daemon_prepare(&d, 1);
	snprintf(path, sizeof(path), "%s/other", d.dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(RUN("blk", "--socket-path", path, "--disk", d.img), 1);
	assert_non_null(strstr(err, "exists and is not a socket"));
	assert_int_equal(access(path, F_OK), 0); /* not removed */
	daemon_cleanup(&d);
}

static void bad_fd_is_reported(void **state)
{
	struct daemon d;

	(void)state;
	daemon_prepare(&d, 1);
	assert_int_equal(RUN("blk", "--fd", "77", "--disk", d.img), 2);
	assert_non_null(strstr(err, "--fd 77: Bad file descriptor"));
	daemon_cleanup(&d);
}

/* --fd: the listening socket is inherited ("Backend program
 * conventions"); SIGTERM ends the daemon with status 0. */
static void fd_mode_serves_an_inherited_socket(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct daemon d;
	struct vuf_conn f;
	pid_t pid;
	int ls, st;

	(void)state;
	daemon_prepare(&d, 1);
	strcpy(sa.sun_path, d.sock);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int logfd = open(d.log, O_CREAT | O_WRONLY, 0600);

		dup2(logfd, 2);
		dup2(ls, 5);
		execl(virtiod_path(), virtiod_path(), "blk", "--fd", "5",
		      "--disk", d.img, (char *)NULL);
		_exit(127);
	}
	close(ls);
	fe_connect(&f, d.sock);
	fe_handshake(&f);
	assert_int_equal(fe_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 1);
	vuf_close(&f);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	daemon_cleanup(&d);
}

int run_cli_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help_mentions_every_option),
		cmocka_unit_test(version_prints_the_version),
		cmocka_unit_test(print_capabilities_follows_the_conventions),
		cmocka_unit_test(unknown_option_is_a_usage_error),
		cmocka_unit_test(missing_value_is_a_usage_error),
		cmocka_unit_test(bad_device_option_values_are_usage_errors),
		cmocka_unit_test(conflicting_or_missing_modes_are_usage_errors),
		cmocka_unit_test(missing_disk_file_is_reported),
		cmocka_unit_test(socket_path_on_a_regular_file_is_refused),
		cmocka_unit_test(bad_fd_is_reported),
		cmocka_unit_test(fd_mode_serves_an_inherited_socket),
	};

	return cmocka_run_group_tests_name("virtiod command line", tests, NULL,
					   NULL);
}
