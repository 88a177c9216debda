/* virtiod serving Ceph RBD images from the suite's one-node cluster
 * (tests/storage/ceph.sh): bytes checked with rbd export, snapshots served
 * read-only, a resize seen by the guest, a stopped OSD answered IOERR
 * within --io-timeout. */
#include <linux/virtio_blk.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st.h"

#define IMG_MB	    "64"
#define IMG_SECTORS ((64ull << 20) / SECTOR)

static void new_image(char *img, size_t len, const char *tag)
{
	rbd_image_name(img, len, tag);
	rbd_cmd("create", "--size", IMG_MB "M", img, NULL);
}

static void rbd_bytes_reach_the_image(void **state)
{
	struct env *e = *state;
	char img[96], disk[512], out[160];
	const uint32_t len[3] = {4096, 1024, 65536};
	uint64_t gpa[3], off;

	new_image(img, sizeof(img), "bytes");
	rbd_disk(disk, sizeof(disk), img);
	serve(e, disk, NULL);
	assert_int_equal(cfg_capacity(e), IMG_SECTORS);
	for (unsigned i = 0; i < 3; i++) {
		gpa[i] = gmem_alloc(&e->m, len[i], 4096);
		fill_pattern(gmem_hva(&e->m, gpa[i]), len[i], 70 + i);
	}
	/* Across an object boundary (4 MiB objects). */
	off = (4u << 20) / SECTOR - 8;
	assert_int_equal(
		blk_do_segs(&e->r[0], VIRTIO_BLK_T_OUT, off, gpa, len, 3),
		VIRTIO_BLK_S_OK);
	assert_int_equal(write_pattern(e, 0, 4096, 73), VIRTIO_BLK_S_OK);
	assert_int_equal(write_pattern(e, IMG_SECTORS - 8, 4096, 74),
			 VIRTIO_BLK_S_OK);
	assert_true(read_has_pattern(e, IMG_SECTORS - 8, 4096, 74));
	assert_int_equal(write_pattern(e, IMG_SECTORS - 4, 4096, 75),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);

	snprintf(out, sizeof(out), "%s/export.img", e->d.dir);
	rbd_export_to(img, out);
	off *= SECTOR;
	for (unsigned i = 0; i < 3; i++) {
		assert_true(file_has_pattern(out, off, len[i], 70 + i));
		off += len[i];
	}
	assert_true(file_has_pattern(out, 0, 4096, 73));
	assert_true(
		file_has_pattern(out, (IMG_SECTORS - 8) * SECTOR, 4096, 74));
	assert_true(file_is_zero(out, 4096, 4096));
	rbd_cmd("rm", "--no-progress", img, NULL);
}

/* WRITE_ZEROES with and without UNMAP read back as zeros, in virtiod and
 * in the exported image; DISCARD is answered OK; the rest is untouched. */
static void rbd_discard_and_write_zeroes(void **state)
{
	struct env *e = *state;
	char img[96], disk[512], out[160];

	new_image(img, sizeof(img), "dwz");
	rbd_disk(disk, sizeof(disk), img);
	serve(e, disk, NULL);
	assert_true(dev_features(e) & 1ull << VIRTIO_BLK_F_DISCARD);
	assert_true(dev_features(e) & 1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(write_pattern(e, i * 256, 65536, 80 + i),
				 VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(e, VIRTIO_BLK_T_WRITE_ZEROES, 0, 128, true),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(e, VIRTIO_BLK_T_WRITE_ZEROES, 256, 128, false),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(e, VIRTIO_BLK_T_DISCARD, 512, 128, false),
			 VIRTIO_BLK_S_OK);
	assert_true(read_is_zero(e, 0, 65536));
	assert_true(read_is_zero(e, 256, 65536));
	assert_true(read_has_pattern(e, 768, 65536, 83));
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);
	snprintf(out, sizeof(out), "%s/export.img", e->d.dir);
	rbd_export_to(img, out);
	assert_true(file_is_zero(out, 0, 65536));
	assert_true(file_is_zero(out, 256 * SECTOR, 65536));
	assert_true(file_has_pattern(out, 768 * SECTOR, 65536, 83));
	rbd_cmd("rm", "--no-progress", img, NULL);
}

/* rbd:POOL/IMAGE@SNAP is served read-only with the snapshot's bytes, even
 * after the image changed; writes fail. */
static void rbd_snapshot_served_read_only(void **state)
{
	struct env *e = *state;
	char img[96], snap[128], disk[512];

	new_image(img, sizeof(img), "snap");
	rbd_disk(disk, sizeof(disk), img);
	serve(e, disk, NULL);
	assert_int_equal(write_pattern(e, 16, 8192, 90), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);
	snprintf(snap, sizeof(snap), "%s@s1", img);
	rbd_cmd("snap", "create", "--no-progress", snap, NULL);

	serve(e, disk, NULL);
	assert_int_equal(write_pattern(e, 16, 8192, 91), VIRTIO_BLK_S_OK);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);

	rbd_disk(disk, sizeof(disk), snap);
	serve(e, disk, NULL);
	assert_true(dev_features(e) & 1ull << VIRTIO_BLK_F_RO);
	assert_true(read_has_pattern(e, 16, 8192, 90));
	assert_int_equal(write_pattern(e, 16, 8192, 92), VIRTIO_BLK_S_IOERR);
	assert_true(daemon_log_has(&e->d, "read-only", NULL));
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);
	rbd_cmd("snap", "purge", "--no-progress", img, NULL);
	rbd_cmd("rm", "--no-progress", img, NULL);
}

/* `rbd resize` while a guest is attached: the header update reaches the
 * queue thread (rbd_update_watch), the guest gets a config change and the
 * new capacity, and I/O past the old end works. */
static void rbd_resize_reaches_the_guest(void **state)
{
	struct env *e = *state;
	char img[96], disk[512];
	int ch;

	new_image(img, sizeof(img), "resize");
	rbd_disk(disk, sizeof(disk), img);
	serve(e, disk, NULL);
	ch = backend_channel(e);
	assert_int_equal(write_pattern(e, 0, 4096, 95), VIRTIO_BLK_S_OK);
	assert_int_equal(cfg_capacity(e), IMG_SECTORS);
	assert_int_equal(write_pattern(e, IMG_SECTORS, 4096, 96),
			 VIRTIO_BLK_S_IOERR);
	rbd_cmd("resize", "--no-progress", "--size", "96M", img, NULL);
	assert_true(wait_config_change(ch, 5000));
	assert_int_equal(cfg_capacity(e), (96ull << 20) / SECTOR);
	assert_int_equal(write_pattern(e, IMG_SECTORS, 4096, 96),
			 VIRTIO_BLK_S_OK);
	assert_true(read_has_pattern(e, IMG_SECTORS, 4096, 96));
	assert_true(daemon_log_has(&e->d, "store resized", NULL));
	close(ch);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);
	rbd_cmd("rm", "--no-progress", img, NULL);
}

/* The OSD stops answering (SIGSTOP): a write is answered IOERR within
 * --io-timeout, never OK, the daemon stays up; once the OSD runs again
 * I/O works and reaches the image. */
static void rbd_stopped_osd_is_ioerr_within_timeout(void **state)
{
	struct env *e = *state;
	char img[96], disk[512], out[160];
	const char *p = getenv("ST_OSD_PID");
	pid_t osd = p ? (pid_t)atoi(p) : 0;
	unsigned ms;
	uint8_t st;

	assert_true(osd > 0);
	new_image(img, sizeof(img), "osd");
	rbd_disk(disk, sizeof(disk), img);
	serve(e, disk, "--io-timeout", "2", NULL);
	assert_int_equal(write_pattern(e, 0, 4096, 100), VIRTIO_BLK_S_OK);
	assert_int_equal(kill(osd, SIGSTOP), 0);
	st = timed_do(e, VIRTIO_BLK_T_OUT, 64, 4096, 15000, &ms);
	assert_int_equal(kill(osd, SIGCONT), 0);
	print_message("  write with the OSD stopped: status %u after %u ms\n",
		      st, ms);
	assert_int_equal(st, VIRTIO_BLK_S_IOERR);
	assert_in_range(ms, 1500, 8000);
	assert_true(daemon_alive(&e->d));
	assert_int_equal(write_pattern(e, 128, 4096, 101), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);
	snprintf(out, sizeof(out), "%s/export.img", e->d.dir);
	rbd_export_to(img, out);
	assert_true(file_has_pattern(out, 0, 4096, 100));
	assert_true(file_has_pattern(out, 128 * SECTOR, 4096, 101));
	rbd_cmd("rm", "--no-progress", img, NULL);
}

/* What a wrong rbd: spec gets: the pool, the image, the queue count named
 * with what to do. */
static void rbd_bad_specs_are_named(void **state)
{
	char img[96], disk[512], err[4096];

	(void)state;
	rbd_disk(disk, sizeof(disk), "nosuchpool/x");
	assert_int_not_equal(serve_fails(disk, err, sizeof(err), NULL), 0);
	assert_non_null(strstr(err, "pool nosuchpool"));
	rbd_disk(disk, sizeof(disk), "rbd/nosuchimage");
	assert_int_not_equal(serve_fails(disk, err, sizeof(err), NULL), 0);
	assert_non_null(strstr(err, "image nosuchimage"));
	new_image(img, sizeof(img), "mq");
	rbd_disk(disk, sizeof(disk), img);
	assert_int_not_equal(
		serve_fails(disk, err, sizeof(err), "--num-queues", "2", NULL),
		0);
	assert_non_null(strstr(err, "use --num-queues 1"));
	assert_int_not_equal(
		serve_fails("rbd:justapool", err, sizeof(err), NULL), 0);
	assert_non_null(strstr(err, "expected rbd:POOL/IMAGE"));
	rbd_cmd("rm", "--no-progress", img, NULL);
}

int run_rbd_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, st_teardown)
		T(rbd_bytes_reach_the_image),
		T(rbd_discard_and_write_zeroes),
		T(rbd_snapshot_served_read_only),
		T(rbd_resize_reaches_the_guest),
		T(rbd_stopped_osd_is_ioerr_within_timeout),
		T(rbd_bad_specs_are_named),
#undef T
	};

	return cmocka_run_group_tests_name("storage: rbd", tests, NULL, NULL);
}
