/* virtiod serving NBD exports from nbdkit (file and memory plugins; the
 * error and delay filters inject failures): bytes checked on the store
 * with nbdcopy, timeouts measured, reconnects after the server died. */
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "st.h"

/* Multi-buffer and single writes land at their offsets: read back through
 * virtiod, then on the store itself (nbdcopy of the export, and the file
 * nbdkit serves). */
static void nbd_file_export_bytes_reach_the_store(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256], out[160];
	const uint32_t len[3] = {4096, 512, 8192};
	uint64_t gpa[3], cap, off;

	nbdkit_start(&s, e->d.dir, "file", e->d.img, NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), NULL);
	cap = cfg_capacity(e);
	assert_int_equal(cap, e->d.img_size / SECTOR);
	for (unsigned i = 0; i < 3; i++) {
		gpa[i] = gmem_alloc(&e->m, len[i], 4096);
		fill_pattern(gmem_hva(&e->m, gpa[i]), len[i], 10 + i);
	}
	assert_int_equal(
		blk_do_segs(&e->r[0], VIRTIO_BLK_T_OUT, 8, gpa, len, 3),
		VIRTIO_BLK_S_OK);
	assert_int_equal(write_pattern(e, 0, 4096, 1), VIRTIO_BLK_S_OK);
	assert_int_equal(write_pattern(e, cap / 2 + 8, 65536, 2),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(write_pattern(e, cap - 8, 4096, 3), VIRTIO_BLK_S_OK);
	assert_true(read_has_pattern(e, cap / 2 + 8, 65536, 2));
	assert_true(read_has_pattern(e, cap - 8, 4096, 3));
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	/* Past the end of the export. */
	assert_int_equal(write_pattern(e, cap - 4, 4096, 4),
			 VIRTIO_BLK_S_IOERR);
	env_close(e);
	assert_int_equal(daemon_stop(&e->d), 0);

	snprintf(out, sizeof(out), "%s/copy.img", e->d.dir);
	nbd_export_to(uri, out);
	off = 8 * SECTOR;
	for (unsigned i = 0; i < 3; i++) {
		assert_true(file_has_pattern(out, off, len[i], 10 + i));
		assert_true(file_has_pattern(e->d.img, off, len[i], 10 + i));
		off += len[i];
	}
	assert_true(file_has_pattern(out, 0, 4096, 1));
	assert_true(file_has_pattern(out, (cap / 2 + 8) * SECTOR, 65536, 2));
	assert_true(file_has_pattern(out, (cap - 8) * SECTOR, 4096, 3));
	/* Nothing written there. */
	assert_true(file_is_zero(out, 65536, 4096));
}

/* nbd://HOST:PORT/ over TCP: bytes written through virtiod are in the
 * export (nbdcopy over TCP). Two queues need a server with multi-conn
 * (nbdkit's memory plugin has it); without (the multi-conn filter), the
 * daemon refuses to start and says what to do. */
static void nbd_tcp_export_two_queues(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256], out[160], err[4096];

	nbdkit_start_tcp(&s, e->d.dir, "--filter=multi-conn", "memory",
			 "size=16M", "multi-conn-mode=disable", NULL);
	assert_int_not_equal(serve_fails(nbd_uri(&s, uri, sizeof(uri)), err,
					 sizeof(err), "--num-queues", "2",
					 NULL),
			     0);
	assert_non_null(strstr(err, "does not advertise multi-conn"));
	srv_signal(&s, SIGTERM);

	nbdkit_start_tcp(&s, e->d.dir, "memory", "size=16M", NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), "--num-queues", "2", NULL);
	assert_int_equal(cfg_capacity(e), (16ull << 20) / SECTOR);
	assert_int_equal(write_pattern(e, 2048, 65536, 7), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	snprintf(out, sizeof(out), "%s/copy.img", e->d.dir);
	nbd_export_to(uri, out);
	assert_true(file_has_pattern(out, 2048 * SECTOR, 65536, 7));
	assert_true(file_is_zero(out, 0, 65536));
}

/* Capacity and features follow the export: a 48 MiB memory export that
 * trims and zeroes gives DISCARD and WRITE_ZEROES, writable, and no
 * CONFIG_WCE (docs/storage.md: a network store stays writeback). */
static void nbd_capacity_and_features_come_from_the_export(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256];
	uint64_t f;

	nbdkit_start(&s, e->d.dir, "memory", "size=48M", NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), NULL);
	assert_int_equal(cfg_capacity(e), (48ull << 20) / SECTOR);
	f = dev_features(e);
	assert_true(f & 1ull << VIRTIO_BLK_F_FLUSH);
	assert_true(f & 1ull << VIRTIO_BLK_F_DISCARD);
	assert_true(f & 1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	assert_false(f & 1ull << VIRTIO_BLK_F_RO);
	assert_false(f & 1ull << VIRTIO_BLK_F_CONFIG_WCE);
}

/* WRITE_ZEROES (with and without UNMAP) and DISCARD reach the server as
 * NBD_CMD_WRITE_ZEROES / NBD_CMD_TRIM; zeroed ranges read back as zeros
 * through virtiod and on the store, the rest is untouched. */
static void nbd_discard_and_write_zeroes_reach_the_store(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256], out[160];

	nbdkit_start(&s, e->d.dir, "memory", "size=16M", NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), NULL);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(write_pattern(e, i * 256, 65536, 20 + i),
				 VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(e, VIRTIO_BLK_T_WRITE_ZEROES, 0, 128, true),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(e, VIRTIO_BLK_T_WRITE_ZEROES, 256, 128, false),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(dwz(e, VIRTIO_BLK_T_DISCARD, 512, 128, false),
			 VIRTIO_BLK_S_OK);
	/* A segment past the end is refused, not sent. */
	assert_int_equal(dwz(e, VIRTIO_BLK_T_WRITE_ZEROES,
			     (16u << 20) / SECTOR - 8, 16, false),
			 VIRTIO_BLK_S_IOERR);
	assert_true(read_is_zero(e, 0, 65536));
	assert_true(read_is_zero(e, 256, 65536));
	assert_true(read_has_pattern(e, 768, 65536, 23));
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	snprintf(out, sizeof(out), "%s/copy.img", e->d.dir);
	nbd_export_to(uri, out);
	assert_true(file_is_zero(out, 0, 65536));
	assert_true(file_is_zero(out, 256 * SECTOR, 65536));
	assert_true(file_has_pattern(out, 768 * SECTOR, 65536, 23));
}

/* A read-only export is refused for a writable disk, with what to do; with
 * --readonly the driver sees VIRTIO_BLK_F_RO and writes fail. */
static void nbd_readonly_export_needs_readonly(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256], err[4096];

	nbdkit_start(&s, e->d.dir, "-r", "memory", "size=16M", NULL);
	nbd_uri(&s, uri, sizeof(uri));
	assert_int_not_equal(serve_fails(uri, err, sizeof(err), NULL), 0);
	assert_non_null(strstr(err, "read-only; add --readonly"));
	serve(e, uri, "--readonly", NULL);
	assert_true(dev_features(e) & 1ull << VIRTIO_BLK_F_RO);
	assert_int_equal(write_pattern(e, 0, 4096, 5), VIRTIO_BLK_S_IOERR);
	assert_true(read_is_zero(e, 0, 4096));
}

/* The server fails writes (error filter, while the trigger file exists):
 * each is answered IOERR, never OK, and the store is unchanged; once the
 * trigger is gone the same write succeeds and is on the store. */
static void nbd_store_error_is_ioerr_never_ok(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256], trig[160], pf[200];
	int fd;

	snprintf(trig, sizeof(trig), "%s/inject", e->d.dir);
	snprintf(pf, sizeof(pf), "error-pwrite-file=%s", trig);
	fd = open(trig, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	nbdkit_start(&s, e->d.dir, "--filter=error", "file", e->d.img,
		     "error-pwrite=EIO", "error-pwrite-rate=100%", pf, NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), NULL);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(write_pattern(e, 64 + i * 8, 4096, 30 + i),
				 VIRTIO_BLK_S_IOERR);
	assert_true(file_is_zero(e->d.img, 64 * SECTOR, 3 * 4096));
	assert_true(daemon_alive(&e->d));
	unlink(trig);
	assert_int_equal(write_pattern(e, 64, 4096, 30), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	assert_true(file_has_pattern(e->d.img, 64 * SECTOR, 4096, 30));
	assert_true(daemon_log_has(&e->d, "write at byte 32768",
				   "answered IOERR", NULL));
}

/* A server that holds a read (delay filter, 4 s) past --io-timeout 1:
 * IOERR after about a second, the daemon stays up, drops the connection,
 * makes a new one, and a write (not delayed) then succeeds. */
static void nbd_unanswered_request_times_out_then_reconnects(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256];
	unsigned ms;

	nbdkit_start(&s, e->d.dir, "--filter=delay", "memory", "size=16M",
		     "delay-read=4", NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), "--io-timeout", "1", NULL);
	assert_int_equal(timed_do(e, VIRTIO_BLK_T_IN, 0, 4096, 6000, &ms),
			 VIRTIO_BLK_S_IOERR);
	print_message("  read held by the server: IOERR after %u ms\n", ms);
	assert_in_range(ms, 900, 3000);
	assert_true(daemon_alive(&e->d));
	assert_int_equal(timed_do(e, VIRTIO_BLK_T_OUT, 8, 4096, 3000, &ms),
			 VIRTIO_BLK_S_OK);
	assert_true(
		daemon_log_has(&e->d, "did not answer within 1000 ms", NULL));
	assert_true(daemon_log_has(&e->d, "NBD connection back", NULL));
}

/* nbdkit is killed while a write is in flight (held by the delay filter)
 * and started again: the write is sent again on the new connection and
 * completes OK, and the bytes are in the file. */
static void nbd_server_killed_mid_write_reconnects(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256], out[160];
	struct blk_req q;
	uint64_t data;
	uint16_t token;
	uint32_t used;

	nbdkit_start(&s, e->d.dir, "--filter=delay", "file", e->d.img,
		     "delay-write=2", NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), "--io-timeout", "10", NULL);
	data = gmem_alloc(&e->m, 8192, 4096);
	fill_pattern(gmem_hva(&e->m, data), 8192, 40);
	blk_submit(&e->r[0], &q, VIRTIO_BLK_T_OUT, 200, data, 8192);
	ring_kick(&e->r[0]);
	nap_ms(300);
	assert_false(ring_peek_used(&e->r[0]));
	srv_signal(&s, SIGKILL);
	nap_ms(300);
	assert_false(ring_peek_used(&e->r[0]));
	nbdkit_start(&s, e->d.dir, "file", e->d.img, NULL);
	assert_true(ring_get_used(&e->r[0], &token, &used, 8000));
	assert_int_equal(token, q.token);
	assert_int_equal(*(uint8_t *)gmem_hva(&e->m, q.status_gpa),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	snprintf(out, sizeof(out), "%s/copy.img", e->d.dir);
	nbd_export_to(uri, out);
	assert_true(file_has_pattern(out, 200 * SECTOR, 8192, 40));
	assert_true(file_has_pattern(e->d.img, 200 * SECTOR, 8192, 40));
	assert_true(daemon_log_has(&e->d, "NBD connection lost", NULL));
}

/* The server is gone and stays gone: requests are answered IOERR within
 * --io-timeout (never OK), the daemon stays up; when it is back, I/O
 * works again without restarting anything. */
static void nbd_server_gone_is_ioerr_then_back(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256];
	unsigned ms;

	nbdkit_start(&s, e->d.dir, "file", e->d.img, NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), "--io-timeout", "1", NULL);
	assert_int_equal(write_pattern(e, 300, 4096, 50), VIRTIO_BLK_S_OK);
	srv_signal(&s, SIGKILL);
	assert_int_equal(timed_do(e, VIRTIO_BLK_T_OUT, 400, 4096, 6000, &ms),
			 VIRTIO_BLK_S_IOERR);
	print_message("  write with the server gone: IOERR after %u ms\n", ms);
	assert_in_range(ms, 900, 3000);
	assert_int_equal(timed_do(e, VIRTIO_BLK_T_FLUSH, 0, 0, 6000, &ms),
			 VIRTIO_BLK_S_IOERR);
	assert_true(daemon_alive(&e->d));
	nbdkit_start(&s, e->d.dir, "file", e->d.img, NULL);
	assert_int_equal(write_pattern(e, 400, 4096, 51), VIRTIO_BLK_S_OK);
	assert_true(read_has_pattern(e, 300, 4096, 50));
	assert_int_equal(blk_do(&e->r[0], VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	assert_true(file_has_pattern(e->d.img, 400 * SECTOR, 4096, 51));
}

/* NBD cannot announce a resize; a new size is seen when the connection is
 * made again, and the guest gets a config change with the new capacity. */
static void nbd_resize_seen_at_reconnect(void **state)
{
	struct env *e = *state;
	struct srv s = {0};
	char uri[256];
	int ch;

	nbdkit_start(&s, e->d.dir, "memory", "size=32M", NULL);
	serve(e, nbd_uri(&s, uri, sizeof(uri)), "--io-timeout", "5", NULL);
	ch = backend_channel(e);
	assert_int_equal(cfg_capacity(e), (32ull << 20) / SECTOR);
	srv_signal(&s, SIGKILL);
	nbdkit_start(&s, e->d.dir, "memory", "size=64M", NULL);
	assert_true(read_is_zero(e, 0, 4096));
	assert_true(wait_config_change(ch, 3000));
	assert_int_equal(cfg_capacity(e), (64ull << 20) / SECTOR);
	assert_int_equal(write_pattern(e, (48u << 20) / SECTOR, 4096, 60),
			 VIRTIO_BLK_S_OK);
	close(ch);
}

int run_nbd_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, st_teardown)
		T(nbd_file_export_bytes_reach_the_store),
		T(nbd_tcp_export_two_queues),
		T(nbd_capacity_and_features_come_from_the_export),
		T(nbd_discard_and_write_zeroes_reach_the_store),
		T(nbd_readonly_export_needs_readonly),
		T(nbd_store_error_is_ioerr_never_ok),
		T(nbd_unanswered_request_times_out_then_reconnects),
		T(nbd_server_killed_mid_write_reconnects),
		T(nbd_server_gone_is_ioerr_then_back),
		T(nbd_resize_seen_at_reconnect),
#undef T
	};

	return cmocka_run_group_tests_name("storage: nbd", tests, NULL, NULL);
}
