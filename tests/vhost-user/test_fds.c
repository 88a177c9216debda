/* The fds a frontend hands over: call, err and kick fds must be eventfds and
 * the backend request channel a socket, or the connection is closed (even
 * with NEED_REPLY) and the daemon goes on serving; a call fd whose counter
 * the frontend saturated never blocks a queue thread, so SIGTERM still
 * stops the daemon. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu_test.h"

/* Sends req for ring 0 with fd attached (NEED_REPLY asked for); expects the
 * connection closed and the log to name the request and what fd was. */
static void expect_fd_refused(struct env *e, uint32_t req, int fd,
			      const char *name, const char *what)
{
	uint64_t idx = 0;
	/* The backend channel's request has no payload. */
	uint32_t size = req == VHOST_USER_SET_BACKEND_REQ_FD ? 0 : sizeof(idx);

	assert_int_equal(
		vuf_send(&e->f, req,
			 VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, &idx,
			 size, &fd, 1),
		0);
	assert_true(fe_closed_by_peer(&e->f, 3000));
	if (!daemon_log_has(&e->d, name, what, "closing the connection",
			    NULL)) {
		daemon_dump_log(&e->d);
		fail_msg("no log line with \"%s\" and \"%s\"", name, what);
	}
	env_close(e);
}

/* The case: a pipe as the call fd would fill after ~8,000
 * completions and block the queue thread in write(). */
static void pipe_as_call_fd_is_refused_and_sigterm_still_stops(void **state)
{
	struct env *e = *state;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 256);
	expect_fd_refused(e, VHOST_USER_SET_VRING_CALL, p[1], "SET_VRING_CALL",
			  "fd 0 is a pipe, expected an eventfd");
	close(p[0]);
	close(p[1]);
	/* The next frontend is served, and the daemon stops on request. */
	env_open(e, 1, false, 256);
	io_roundtrip(e, &e->r[0], 8, 1);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);
}

static void kick_err_and_backend_fds_of_the_wrong_kind_are_refused(void **s)
{
	struct env *e = *s;
	int file = open("/dev/null", O_RDWR | O_CLOEXEC), sv[2];
	int efd = eventfd(0, EFD_CLOEXEC);

	assert_true(file >= 0 && efd >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 256);
	expect_fd_refused(e, VHOST_USER_SET_VRING_KICK, file, "SET_VRING_KICK",
			  "fd 0 is a character device, expected an eventfd");
	env_open(e, 1, false, 256);
	expect_fd_refused(e, VHOST_USER_SET_VRING_ERR, sv[0], "SET_VRING_ERR",
			  "fd 0 is a socket, expected an eventfd");
	env_open(e, 1, false, 256);
	expect_fd_refused(e, VHOST_USER_SET_BACKEND_REQ_FD, efd,
			  "SET_BACKEND_REQ_FD",
			  "fd 0 is an eventfd, expected a socket");
	env_open(e, 1, false, 256);
	io_roundtrip(e, &e->r[0], 16, 2);
	env_close(e);
	close(file);
	close(efd);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(daemon_stop(&e->d), 0);
}

/* A blocking eventfd whose counter the frontend filled to its maximum: a
 * blocking write(1) would wait forever. The daemon makes the fd
 * non-blocking, completes every request, and stops on SIGTERM. */
static void saturated_call_fd_never_blocks_the_queue_thread(void **state)
{
	struct env *e = *state;
	uint64_t full = UINT64_C(0xfffffffffffffffe);
	int sat = eventfd(0, EFD_CLOEXEC);

	assert_true(sat >= 0);
	assert_int_equal(write(sat, &full, sizeof(full)), sizeof(full));
	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 256);
	/* The test keeps polling the used ring (and its own call fd, now
	 * silent); the daemon writes the saturated one. */
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_VRING_CALL,
				  &(uint64_t){0}, sizeof(uint64_t), &sat, 1),
			 0);
	assert_true(fcntl(sat, F_GETFL) & O_NONBLOCK);
	for (uint32_t i = 0; i < 8; i++)
		io_roundtrip(e, &e->r[0], 32 * i, 10 + i);
	env_close(e);
	close(sat);
	assert_int_equal(daemon_stop(&e->d), 0);
}

/* Without /proc (a sandbox may hide it) the kind of an fd is told by
 * fstat alone: eventfds (anonymous inodes) pass, a pipe is still refused.
 * The daemon runs in a mount namespace with an empty tmpfs on /proc. */
static void fd_kinds_are_checked_without_proc(void **state)
{
	struct env *e = *state;
	char script[400];
	int p[2], logfd;

	if (geteuid() != 0) {
		/* A mount namespace needs root; CI and make check run as it. */
		fail_msg("this test needs root (a mount namespace)");
	}
	snprintf(script, sizeof(script),
		 "mount -t tmpfs none /proc && exec %s blk --socket-path %s "
		 "--disk %s --log-level debug",
		 virtiod_path(), e->d.sock, e->d.img);
	logfd = open(e->d.log, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
	assert_true(logfd >= 0);
	e->d.pid = fork();
	assert_true(e->d.pid >= 0);
	if (e->d.pid == 0) {
		dup2(logfd, 1);
		dup2(logfd, 2);
		execl("/usr/bin/unshare", "unshare", "--mount", "--propagation",
		      "private", "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(logfd);
	for (int i = 0; i < 500 && access(e->d.sock, F_OK) != 0; i++)
		nap_ms(10);
	env_open(e, 1, false, 256);
	io_roundtrip(e, &e->r[0], 8, 4);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	expect_fd_refused(e, VHOST_USER_SET_VRING_CALL, p[1], "SET_VRING_CALL",
			  "fd 0 is a pipe, expected an eventfd");
	close(p[0]);
	close(p[1]);
	assert_int_equal(daemon_stop(&e->d), 0);
}

int run_fd_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
		T(pipe_as_call_fd_is_refused_and_sigterm_still_stops),
		T(kick_err_and_backend_fds_of_the_wrong_kind_are_refused),
		T(saturated_call_fd_never_blocks_the_queue_thread),
		T(fd_kinds_are_checked_without_proc),
#undef T
	};

	return cmocka_run_group_tests_name("vhost-user: the kinds of fds",
					   tests, NULL, NULL);
}
