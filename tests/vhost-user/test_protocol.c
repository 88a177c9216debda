/* Protocol tests: the daemon driven through its socket like QEMU drives it
 * (handshake, blk I/O on split and packed rings, config, status, reconnect,
 * SIGTERM). Memory and rings have suites of their own. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vu_test.h"

/* ------------------------------------------------------------- handshake */

static void handshake_offers_features_and_limits(void **state)
{
	struct env *e = *state;
	uint64_t feat, pf;
	uint32_t st[2] = {1, 0};
	struct vhost_user_hdr h;

	daemon_start(&e->d, "--num-queues", "2", NULL);
	fe_connect(&e->f, e->d.sock);
	feat = fe_get_u64(&e->f, VHOST_USER_GET_FEATURES);
	assert_true(feat & (1ull << VIRTIO_F_VERSION_1));
	assert_true(feat & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
	assert_true(feat & (1ull << VHOST_F_LOG_ALL));
	assert_true(feat & (1ull << VIRTIO_F_RING_PACKED));
	/* GET_PROTOCOL_FEATURES is legal before SET_FEATURES. */
	pf = fe_get_u64(&e->f, VHOST_USER_GET_PROTOCOL_FEATURES);
	assert_int_equal(pf, EXPECTED_PROTOCOL_FEATURES);
	fe_set_u64(&e->f, VHOST_USER_SET_PROTOCOL_FEATURES, pf);
	e->f.protocol = pf;
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_QUEUE_NUM), 2);
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_MAX_MEM_SLOTS), 509);
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0);
	fe_set_features(&e->f, blk_features(false));
	/* A ring never started reports the base it was given. */
	st[1] = 77;
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_BASE, st, 8, NULL, 0), 0);
	assert_int_equal(vuf_send(&e->f, VHOST_USER_GET_VRING_BASE,
				  VHOST_USER_VERSION, st, 8, NULL, 0),
			 0);
	assert_int_equal(vuf_recv(&e->f, &h, st, sizeof(st), NULL, 5000), 8);
	assert_int_equal(st[0], 1);
	assert_int_equal(st[1], 77);
	vuf_close(&e->f);
}

/* ------------------------------------------------------------------ I/O */

static void blk_io(struct env *e, bool packed)
{
	struct ring *r = &e->r[0];
	struct blk_req q[32];
	bool done[32] = {false};
	uint64_t data, id;
	char serial[21] = "";

	daemon_start(&e->d, NULL);
	env_open(e, 1, packed, 128);
	io_roundtrip(e, r, 8, 1);
	/* GET_ID: a serial, NUL-padded to 20 bytes. */
	id = gmem_alloc(&e->m, 20, 16);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_GET_ID, 0, id, 20),
			 VIRTIO_BLK_S_OK);
	memcpy(serial, gmem_hva(&e->m, id), 20);
	assert_true(strlen(serial) > 0);
	/* A read past the end of the disk fails, the device goes on. */
	data = gmem_alloc(&e->m, 4096, 4096);
	assert_int_equal(
		blk_do(r, VIRTIO_BLK_T_IN, e->d.img_size / SECTOR, data, 4096),
		VIRTIO_BLK_S_IOERR);
	/* Many requests in flight, one kick, completions in any order. */
	for (unsigned i = 0; i < 32; i++) {
		uint64_t d = gmem_alloc(&e->m, 4096, 4096);

		fill_pattern(gmem_hva(&e->m, d), 4096, 100 + i);
		blk_submit(r, &q[i], VIRTIO_BLK_T_OUT, 1024 + 8 * i, d, 4096);
	}
	ring_kick(r);
	for (unsigned n = 0; n < 32; n++) {
		uint16_t token;
		uint32_t len;
		unsigned i;

		assert_true(ring_get_used(r, &token, &len, 5000));
		for (i = 0; i < 32 && q[i].token != token; i++)
			;
		assert_true(i < 32);
		assert_false(done[i]);
		done[i] = true;
		assert_int_equal(*(uint8_t *)gmem_hva(&e->m, q[i].status_gpa),
				 VIRTIO_BLK_S_OK);
	}
	for (unsigned i = 0; i < 32; i++)
		assert_true(
			image_has_pattern(&e->d, 1024 + 8 * i, 4096, 100 + i));
	io_roundtrip(e, r, 4096, 2); /* across the ring's index wrap */
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
				 VIRTIO_BLK_S_OK);
}

static void blk_io_split_ring(void **state)
{
	blk_io(*state, false);
}

static void blk_io_packed_ring(void **state)
{
	blk_io(*state, true);
}

static void blk_io_on_two_queues(void **state)
{
	struct env *e = *state;

	daemon_start(&e->d, "--num-queues", "2", NULL);
	env_open(e, 2, false, 64);
	io_roundtrip(e, &e->r[1], 64, 3);
	io_roundtrip(e, &e->r[0], 128, 4);
	io_roundtrip(e, &e->r[1], 256, 5);
}

/* --------------------------------------------------------------- config */

static int get_config(struct vuf_conn *f, uint32_t off, uint32_t size,
		      void *out)
{
	struct {
		uint32_t off, size, flags;
		uint8_t data[256];
	} c = {off, size, 0, {0}};
	struct vhost_user_hdr h;
	int n;

	assert_int_equal(vuf_send(f, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION,
				  &c, 12 + size, NULL, 0),
			 0);
	n = vuf_recv(f, &h, &c, sizeof(c), NULL, 5000);
	assert_true(n >= 0);
	assert_int_equal(h.request, VHOST_USER_GET_CONFIG);
	if (n)
		memcpy(out, c.data, size);
	return n;
}

static uint64_t set_config(struct vuf_conn *f, uint32_t off, const void *data,
			   uint32_t size)
{
	struct {
		uint32_t off, size, flags;
		uint8_t data[256];
	} c = {off, size, 0, {0}};

	memcpy(c.data, data, size);
	return fe_acked(f, VHOST_USER_SET_CONFIG, &c, 12 + size, NULL, 0);
}

static void config_space_reads_and_writes(void **state)
{
	struct env *e = *state;
	struct virtio_blk_config c;
	uint8_t v = 0, big[256];
	uint64_t cap = 1;

	daemon_start(&e->d, "--num-queues", "2", NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(false));
	assert_int_equal(get_config(&e->f, 0, sizeof(c), &c), 12 + sizeof(c));
	assert_int_equal(le64toh(c.capacity), e->d.img_size / SECTOR);
	assert_int_equal(le16toh(c.num_queues), 2);
	assert_int_equal(le32toh(c.blk_size), 512);
	assert_int_equal(c.wce, 1);
	/* CONFIG_WCE: the driver may switch to writethrough and back. */
	assert_int_equal(set_config(&e->f,
				    offsetof(struct virtio_blk_config, wce), &v,
				    1),
			 0);
	assert_int_equal(get_config(&e->f, 0, sizeof(c), &c), 12 + sizeof(c));
	assert_int_equal(c.wce, 0);
	v = 1;
	assert_int_equal(set_config(&e->f,
				    offsetof(struct virtio_blk_config, wce), &v,
				    1),
			 0);
	/* A read-only field: refused with an error reply, connection kept. */
	assert_int_not_equal(set_config(&e->f, 0, &cap, 8), 0);
	assert_int_equal(get_config(&e->f, 0, 8, &cap), 12 + 8);
	assert_int_equal(le64toh(cap), e->d.img_size / SECTOR);
	/* Fields beyond ours read as zero; an offset beyond is an error. */
	assert_int_equal(get_config(&e->f, sizeof(c) - 4, 16, &c), 12 + 16);
	assert_int_equal(get_config(&e->f, 4096, 4, &v), 0);
	/* So is a range inside ours at its start but past the 256 bytes any
	 * config space has. */
	assert_int_equal(get_config(&e->f, 8, 256, big), 0);
	assert_true(daemon_log_has(&e->d, "GET_CONFIG",
				   "config range 8+256 ends past 256", NULL));
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_QUEUE_NUM), 2);
	vuf_close(&e->f);
}

/* --------------------------------------------------------------- status */

static void status_follows_qemu_sequence(void **state)
{
	struct env *e = *state;
	uint64_t s;

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_STATUS), 0);
	/* QEMU: SET_FEATURES, then FEATURES_OK alone, then ACKNOWLEDGE |
	 * DRIVER | DRIVER_OK added to what GET_STATUS returned. */
	s = VIRTIO_CONFIG_S_FEATURES_OK;
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_STATUS, &s, 8, NULL, 0),
			 0);
	s = fe_get_u64(&e->f, VHOST_USER_GET_STATUS);
	assert_true(s & VIRTIO_CONFIG_S_FEATURES_OK);
	s |= VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	     VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_STATUS, &s, 8, NULL, 0),
			 0);
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_STATUS),
			 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				 VIRTIO_CONFIG_S_FEATURES_OK |
				 VIRTIO_CONFIG_S_DRIVER_OK);
	io_roundtrip(e, &e->r[0], 0, 6);
	/* Clearing a bit other than by writing 0 is refused. */
	s = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	assert_int_not_equal(
		fe_acked(&e->f, VHOST_USER_SET_STATUS, &s, 8, NULL, 0), 0);
	s = 0;
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_STATUS, &s, 8, NULL, 0),
			 0);
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_STATUS), 0);
}

/* ------------------------------------------------------------ lifecycle */

static void reconnect_resets_the_device(void **state)
{
	struct env *e = *state;
	uint64_t s = VIRTIO_CONFIG_S_FEATURES_OK;
	int idle;

	daemon_start(&e->d, NULL);
	idle = daemon_idle_fd_count(&e->d);
	env_open(e, 1, false, 64);
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_STATUS, &s, 8, NULL, 0),
			 0);
	io_roundtrip(e, &e->r[0], 0, 11);
	env_close(e);
	/* Everything the connection held is released... */
	assert_int_equal(daemon_wait_fd_count(&e->d, idle), idle);
	assert_true(daemon_log_has(&e->d, "frontend disconnected", NULL));
	/* ...and a new frontend finds a reset device that works. */
	env_open(e, 1, true, 64);
	assert_int_equal(fe_get_u64(&e->f, VHOST_USER_GET_STATUS), 0);
	io_roundtrip(e, &e->r[0], 0, 12);
	/* RESET_DEVICE: rings stop and must be set up again. */
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0), 0);
	fe_set_features(&e->f, blk_features(false));
	ring_free(&e->r[0]);
	ring_init(&e->r[0], &e->m, 0, 64, false);
	fe_setup_ring(&e->f, &e->r[0], 0, false, true);
	io_roundtrip(e, &e->r[0], 0, 13);
}

static void sigterm_stops_promptly_after_inflight_io(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	struct blk_req q[16];
	struct stat st;

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	for (unsigned i = 0; i < 16; i++) {
		uint64_t d = gmem_alloc(&e->m, 65536, 4096);

		blk_submit(r, &q[i], VIRTIO_BLK_T_OUT, 128 * i, d, 65536);
	}
	ring_kick(r);
	assert_int_equal(daemon_stop(&e->d), 0);
	/* Whatever was taken from the ring was completed before exit. */
	for (uint16_t n = ring_used_idx(r), i = 0; i < n; i++) {
		uint16_t token;
		uint32_t len;

		assert_true(ring_get_used(r, &token, &len, 100));
	}
	assert_int_not_equal(stat(e->d.sock, &st), 0);
	assert_true(daemon_log_has(&e->d, "frontend disconnected", "stopping",
				   NULL));
	/* Stopping, the socket is gone: it does not listen again. */
	assert_false(daemon_log_has(&e->d, "stopping", "listening", NULL));
}

/* A frontend that sends a header, then one payload byte every 200 ms, never
 * lets any single read wait long: only a deadline for the whole message
 * lets SIGTERM (blocked outside the daemon's ppoll) take effect. */
static void sigterm_stops_while_a_frontend_drips_a_message(void **state)
{
	struct env *e = *state;
	struct vhost_user_hdr h = {VHOST_USER_SET_CONFIG, VHOST_USER_VERSION,
				   12 + 256};
	struct vuf_conn f;
	pid_t child;
	int st;

	daemon_start(&e->d, NULL);
	fe_connect(&f, e->d.sock);
	fe_handshake(&f);
	assert_int_equal(send(f.sock, &h, sizeof(h), MSG_NOSIGNAL), sizeof(h));
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		const struct timespec ts = {0, 200 * 1000 * 1000};
		char c = 0;

		for (int i = 0; i < 100; i++) {
			nanosleep(&ts, NULL);
			if (send(f.sock, &c, 1, MSG_NOSIGNAL) != 1)
				break;
		}
		_exit(0);
	}
	/* Let the drip begin, so the daemon is inside the message. */
	nanosleep(&(struct timespec){0, 300 * 1000 * 1000}, NULL);
	assert_int_equal(daemon_stop(&e->d), 0);
	kill(child, SIGKILL);
	waitpid(child, &st, 0);
	vuf_close(&f);
	assert_true(
		daemon_log_has(&e->d, "truncated message (timed out)", NULL));
}

/* A broken ring: NEEDS_RESET, the error fd signalled and a config-change
 * message on the backend request channel. */
int run_protocol_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
		T(handshake_offers_features_and_limits),
		T(blk_io_split_ring),
		T(blk_io_packed_ring),
		T(blk_io_on_two_queues),
		T(config_space_reads_and_writes),
		T(status_follows_qemu_sequence),
		T(reconnect_resets_the_device),
		T(sigterm_stops_promptly_after_inflight_io),
		T(sigterm_stops_while_a_frontend_drips_a_message),
#undef T
	};

	return cmocka_run_group_tests_name("vhost-user protocol", tests, NULL,
					   NULL);
}
