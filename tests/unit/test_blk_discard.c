/* DISCARD on a block device (a loop device over a file, so the bytes can be
 * checked on the backing store): BLKDISCARD runs on worker threads, never
 * on the queue thread (io_uring has no opcode for it), completes through
 * the normal path beside reads, and the range reads back as zeros. Needs
 * root for losetup; skips with a visible SKIP line otherwise. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "blk_env.h"
#include "virtiod/log.h"

#define IMG_SIZE (8u << 20)

static struct blk_env env;
static char backing[128], loopdev[64];

static unsigned threads_of_this_process(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The image env_image made, behind a loop device; false if none can be
 * made here (not root, no loop devices). */
static bool loop_over_image(void)
{
	char cmd[200];
	FILE *p;
	size_t n;

	snprintf(backing, sizeof(backing), "%s", env.path);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", backing);
	p = popen(cmd, "r");
	if (!p)
		return false;
	if (!fgets(loopdev, sizeof(loopdev), p))
		loopdev[0] = '\0';
	if (pclose(p) != 0)
		loopdev[0] = '\0';
	n = strlen(loopdev);
	if (n && loopdev[n - 1] == '\n')
		loopdev[n - 1] = '\0';
	if (!loopdev[0])
		return false;
	snprintf(env.path, sizeof(env.path), "%s", loopdev);
	return true;
}

static int teardown(void **state)
{
	char cmd[120];

	(void)state;
	/* env_close unlinks env.path: the backing file, not the device. */
	snprintf(env.path, sizeof(env.path), "%s", backing);
	env_close(&env);
	if (loopdev[0]) {
		snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot detach %s\n", loopdev);
	}
	loopdev[0] = '\0';
	return 0;
}

static void discard_runs_on_workers_beside_reads(const char *engine)
{
	const char *opts[] = {"io-engine", engine, NULL};
	struct virtio_blk_discard_write_zeroes *seg;
	struct env_req disc, rd;
	unsigned before, seen = 0;
	uint8_t want[4096];

	memset(&env, 0, sizeof(env));
	env_image(&env, "/tmp", IMG_SIZE, false);
	if (geteuid() != 0 || !loop_over_image()) {
		printf("SKIP: no loop device (needs root and losetup); "
		       "BLKDISCARD not exercised\n");
		skip();
	}
	if (env_create(&env, opts) != 0)
		fail_msg("create: %s", env.err);
	assert_true(env.model->features & 1ULL << VIRTIO_BLK_F_DISCARD);
	env_start(&env, VD_VQ_SPLIT, 128, 0);
	/* A first read: the queue and its engine are up. */
	env_req_alloc(&env, &rd, 4096);
	assert_int_equal(
		env_do(&env, 0, VIRTIO_BLK_T_IN, 4096, rd.data, 4096, NULL),
		VIRTIO_BLK_S_OK);
	before = threads_of_this_process();
	/* 1 MiB at 1 MiB discarded, and a read of 4 MiB queued behind it in
	 * the same kick. */
	env_req_alloc(&env, &disc, sizeof(*seg));
	seg = env_hva(&env, disc.data);
	*seg = (struct virtio_blk_discard_write_zeroes){
		.sector = htole64((1u << 20) / 512),
		.num_sectors = htole32((1u << 20) / 512),
	};
	env_req_add(&env, 0, &disc, VIRTIO_BLK_T_DISCARD, 0, false, false);
	env_req_add(&env, 0, &rd, VIRTIO_BLK_T_IN, (4u << 20) / 512, true,
		    false);
	env_kick(&env, 0);
	for (int i = 0; i < 2; i++) {
		struct env_req *got = env_wait(&env, 0, NULL);

		assert_int_equal(env_status(&env, got), VIRTIO_BLK_S_OK);
		seen |= got == &disc ? 1 : 2;
	}
	assert_int_equal(seen, 3);
	for (unsigned i = 0; i < sizeof(want); i++)
		want[i] = env_pattern((4u << 20) + i);
	assert_memory_equal(env_hva(&env, rd.data), want, sizeof(want));
	/* The ioctl ran on threads of the engine's, not the queue thread
	 * (the uring engine made its workers for it). */
	if (strcmp(engine, "uring") == 0)
		assert_true(threads_of_this_process() > before);
	/* On the backing store: the range is zeros (punched), its
	 * neighbours untouched. */
	assert_true(env_img_zero(&env, 1u << 20, 1u << 20));
	assert_true(env_img_pattern(&env, (1u << 20) - 4096, 4096));
	assert_true(env_img_pattern(&env, 2u << 20, 4096));
}

static void discard_on_a_loop_device_with_uring(void **state)
{
	(void)state;
	discard_runs_on_workers_beside_reads("uring");
}

static void discard_on_a_loop_device_with_threads(void **state)
{
	(void)state;
	discard_runs_on_workers_beside_reads("threads");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(discard_on_a_loop_device_with_uring,
					  teardown),
		cmocka_unit_test_teardown(discard_on_a_loop_device_with_threads,
					  teardown),
	};

	vd_log_set_level(VD_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
