/* One owner per image (OFD locks in QEMU's layout): a second writer is
 * refused (exit 1, the image named, the first still serving), readers
 * share, --share-rw lets writers share (and is refused for network stores,
 * which have no such lock), and QEMU's own locks are honoured
 * both ways (qemu-storage-daemon holding the image, qemu-io's writes beside
 * a running virtiod). */
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

static void expect_in_use(int status, const char *img)
{
	char want[200];

	snprintf(want, sizeof(want), "virtiod: --disk %s: in use", img);
	assert_int_equal(status, 1);
	if (!strstr(err, want))
		fail_msg("stderr \"%s\" lacks \"%s\"", err, want);
}

static void second_writer_is_refused_naming_the_image(void **state)
{
	struct daemon a;
	char sock2[160];

	(void)state;
	daemon_prepare(&a, 4);
	daemon_start(&a, NULL);
	snprintf(sock2, sizeof(sock2), "%s/s2", a.dir);
	expect_in_use(RUN_BLK(sock2, a.img, (const char *)NULL), a.img);
	assert_non_null(strstr(err, "--share-rw"));
	assert_int_equal(access(sock2, F_OK), -1); /* never listened */
	/* Read-only beside a writer is refused too (it would read data
	 * changing under it), as QEMU does. */
	expect_in_use(RUN_BLK(sock2, a.img, "--readonly", (const char *)NULL),
		      a.img);
	daemon_serves_io(&a);
	assert_int_equal(daemon_stop(&a), 0);
	/* With the first gone, the image is free. */
	daemon_start(&a, NULL);
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&a);
}

static void readers_share_and_a_writer_is_refused_beside_them(void **state)
{
	struct daemon a, b;
	char sock3[160];

	(void)state;
	daemon_prepare(&a, 4);
	daemon_prepare(&b, 1);
	daemon_start(&a, "--readonly", NULL);
	daemon_start(&b, "--disk", a.img, "--readonly", NULL);
	assert_true(daemon_alive(&a) && daemon_alive(&b));
	snprintf(sock3, sizeof(sock3), "%s/s3", a.dir);
	expect_in_use(RUN_BLK(sock3, a.img, (const char *)NULL), a.img);
	assert_int_equal(daemon_stop(&b), 0);
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&b);
	daemon_cleanup(&a);
}

static void share_rw_lets_writers_share_and_no_one_else(void **state)
{
	struct daemon a, b;
	char sock3[160];

	(void)state;
	daemon_prepare(&a, 4);
	daemon_prepare(&b, 1);
	daemon_start(&a, "--share-rw", NULL);
	daemon_start(&b, "--disk", a.img, "--share-rw", NULL);
	daemon_serves_io(&a);
	/* A writer that does not share is refused beside them. */
	snprintf(sock3, sizeof(sock3), "%s/s3", a.dir);
	expect_in_use(RUN_BLK(sock3, a.img, (const char *)NULL), a.img);
	assert_int_equal(daemon_stop(&b), 0);
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&b);
	daemon_cleanup(&a);
}

/* QEMU's own locks, both ways: qemu-storage-daemon exporting the image
 * writable keeps virtiod out; a running virtiod keeps qemu-io's writes
 * out, as a running QEMU would. */
static void qemu_and_virtiod_respect_each_others_locks(void **state)
{
	struct daemon a;
	char blockdev[300], nbd[300], sock2[160], nbd_sock[160];
	const char *qsd[] = {"/usr/bin/qemu-storage-daemon",
			     "--blockdev",
			     blockdev,
			     "--nbd-server",
			     nbd,
			     "--export",
			     "type=nbd,id=e0,node-name=d0,writable=on",
			     NULL};
	pid_t pid;
	int st;

	(void)state;
	daemon_prepare(&a, 4);
	snprintf(blockdev, sizeof(blockdev),
		 "driver=file,node-name=d0,filename=%s", a.img);
	snprintf(nbd_sock, sizeof(nbd_sock), "%s/nbd", a.dir);
	snprintf(nbd, sizeof(nbd), "addr.type=unix,addr.path=%s", nbd_sock);
	snprintf(sock2, sizeof(sock2), "%s/s2", a.dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		execv(qsd[0], (char *const *)qsd);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(nbd_sock, F_OK) != 0; i++)
		nap_ms(10);
	assert_int_equal(access(nbd_sock, F_OK), 0);
	expect_in_use(RUN_BLK(sock2, a.img, (const char *)NULL), a.img);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	unlink(nbd_sock);

	daemon_start(&a, NULL);
	{
		const char *io[] = {"/usr/bin/qemu-io", "-f",  "raw", "-c",
				    "write 0 512",	a.img, NULL};

		assert_int_not_equal(
			run_cmd(io, out, sizeof(out), err, sizeof(err)), 0);
		assert_non_null(strstr(err, "Failed to get \"write\" lock"));
	}
	daemon_serves_io(&a);
	assert_int_equal(daemon_stop(&a), 0);
	daemon_cleanup(&a);
}

/* A network store has no OFD lock to share: --share-rw is refused before
 * anything is reached (the stores below need not exist), naming the disk. */
static void share_rw_is_refused_for_network_stores(void **state)
{
	static const char *const disks[] = {
		"nbd://127.0.0.1:1/vm42",
		"nbd+unix:///vm42?socket=/nonexistent/nbd.sock",
		"rbd:vms/vm42:conf=/nonexistent/ceph.conf",
	};
	char sock[160], want[200];
	struct daemon a;

	(void)state;
	daemon_prepare(&a, 1);
	snprintf(sock, sizeof(sock), "%s/s", a.dir);
	for (unsigned i = 0; i < sizeof(disks) / sizeof(disks[0]); i++) {
		int st = RUN_BLK(sock, disks[i], "--share-rw",
				 (const char *)NULL);

		snprintf(want, sizeof(want),
			 "--share-rw: %s is a network store", disks[i]);
		assert_int_equal(st, 2); /* a usage error */
		if (!strstr(err, want))
			fail_msg("stderr \"%s\" lacks \"%s\"", err, want);
		assert_int_equal(access(sock, F_OK), -1);
	}
	daemon_cleanup(&a);
}

int run_image_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(second_writer_is_refused_naming_the_image),
		cmocka_unit_test(
			readers_share_and_a_writer_is_refused_beside_them),
		cmocka_unit_test(share_rw_lets_writers_share_and_no_one_else),
		cmocka_unit_test(qemu_and_virtiod_respect_each_others_locks),
		cmocka_unit_test(share_rw_is_refused_for_network_stores),
	};

	return cmocka_run_group_tests_name("ownership of images", tests, NULL,
					   NULL);
}
