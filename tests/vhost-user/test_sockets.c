/* One owner per socket: a live one is never replaced, a stale one is; the
 * socket is 0600 (0660 and the group's with --socket-group); the frontend's
 * pid and uid are logged. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vu_test.h"

static char out[16384], err[16384];

#define RUN_BLK(sock, img, ...)                                                \
	run_blk_cmd(out, sizeof(out), err, sizeof(err), sock, img, __VA_ARGS__)

static void live_socket_is_never_replaced(void **state)
{
	struct daemon a;
	struct stat before, after;
	char img2[160];
	int fd;

	(void)state;
	daemon_prepare(&a, 4);
	daemon_start(&a, NULL);
	assert_int_equal(stat(a.sock, &before), 0);
	/* Another image, so only the socket is contended. */
	snprintf(img2, sizeof(img2), "%s/other", a.dir);
	fd = open(img2, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(RUN_BLK(a.sock, img2, (const char *)NULL), 1);
	if (!strstr(err, "--socket-path") || !strstr(err, a.sock) ||
	    !strstr(err, "in use"))
		fail_msg("stderr \"%s\" does not say the socket is in use",
			 err);
	assert_int_equal(stat(a.sock, &after), 0);
	assert_true(before.st_ino == after.st_ino);
	daemon_serves_io(&a);
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&a);
}

static void stale_socket_is_replaced(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct daemon a;
	int ls;

	(void)state;
	daemon_prepare(&a, 4);
	/* A socket whose process is gone: bound, then closed. */
	strcpy(sa.sun_path, a.sock);
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(ls);
	assert_int_equal(access(a.sock, F_OK), 0);
	{
		/* daemon_start unlinks first; start by hand instead. */
		const char *argv[] = {virtiod_path(), "blk",	"--socket-path",
				      a.sock,	      "--disk", a.img,
				      "--log-level",  "debug",	NULL};

		a.pid = fork();
		assert_true(a.pid >= 0);
		if (a.pid == 0) {
			int logfd = open(a.log, O_CREAT | O_WRONLY, 0600);

			dup2(logfd, 2);
			execv(argv[0], (char *const *)argv);
			_exit(127);
		}
	}
	/* Listening again (the daemon's start-up may be slow under load). */
	for (int i = 0; i < 500; i++) {
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool up = connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		close(c);
		if (up || !daemon_alive(&a))
			break;
		nap_ms(10);
	}
	if (!daemon_log_has(&a, "replacing a stale socket", NULL)) {
		daemon_dump_log(&a);
		fail_msg("the stale socket was not replaced");
	}
	assert_true(daemon_log_has(&a, "listening on", NULL));
	daemon_serves_io(&a);
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&a);
}

static void socket_is_0600_and_socket_group_makes_it_0660(void **state)
{
	struct daemon a;
	struct stat st;
	struct group *g;
	char gname[64];

	(void)state;
	daemon_prepare(&a, 4);
	umask(0); /* the daemon must not depend on its umask */
	daemon_start(&a, NULL);
	assert_int_equal(stat(a.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(daemon_stop(&a), 0);
	umask(022);

	/* A group this process may give files to: its own. */
	g = getgrgid(getegid());
	assert_non_null(g);
	snprintf(gname, sizeof(gname), "%s", g->gr_name);
	daemon_start(&a, "--socket-group", gname, NULL);
	assert_int_equal(stat(a.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_int_equal(st.st_gid, getegid());
	assert_int_equal(daemon_stop(&a), 0);
	assert_int_equal(RUN_BLK(a.sock, a.img, "--socket-group",
				 "no-such-group-vd", (const char *)NULL),
			 2);
	assert_non_null(strstr(err, "--socket-group no-such-group-vd: no such "
				    "group"));
	daemon_cleanup(&a);
}

static void frontend_pid_and_uid_are_logged(void **state)
{
	struct daemon a;
	char pid[32], uid[32];

	(void)state;
	daemon_prepare(&a, 4);
	daemon_start(&a, NULL);
	daemon_serves_io(&a);
	snprintf(pid, sizeof(pid), "pid %d ", (int)getpid());
	snprintf(uid, sizeof(uid), "uid %u ", (unsigned)getuid());
	if (!daemon_log_has(&a, "frontend connected (", pid, uid, NULL)) {
		daemon_dump_log(&a);
		fail_msg("no \"frontend connected\" line with %s and %s", pid,
			 uid);
	}
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&a);
}

int run_socket_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(live_socket_is_never_replaced),
		cmocka_unit_test(stale_socket_is_replaced),
		cmocka_unit_test(socket_is_0600_and_socket_group_makes_it_0660),
		cmocka_unit_test(frontend_pid_and_uid_are_logged),
	};

	return cmocka_run_group_tests_name("ownership of sockets", tests, NULL,
					   NULL);
}
