/* Rings through the protocol: GET_VRING_BASE stops a ring where it
 * stands, SET_VRING_ENABLE pauses and resumes it, call and kick fds change
 * under a running ring, and a broken ring is reported on every channel. */
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

/* ------------------------------------------------------------ ring base */

static uint32_t get_vring_base(struct vuf_conn *f, uint32_t index)
{
	uint32_t st[2] = {index, 0};
	struct vhost_user_hdr h;

	assert_int_equal(vuf_send(f, VHOST_USER_GET_VRING_BASE,
				  VHOST_USER_VERSION, st, 8, NULL, 0),
			 0);
	assert_int_equal(vuf_recv(f, &h, st, sizeof(st), NULL, 5000), 8);
	assert_int_equal(h.request, VHOST_USER_GET_VRING_BASE);
	assert_int_equal(st[0], index);
	return st[1];
}

static void get_vring_base_stops_the_ring(struct env *e, bool packed)
{
	struct ring *r = &e->r[0];
	struct blk_req q;
	uint32_t base, want;
	uint16_t token;
	uint32_t len;

	daemon_start(&e->d, NULL);
	env_open(e, 1, packed, 16);
	for (int i = 0; i < 21; i++)
		assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
				 VIRTIO_BLK_S_OK);
	base = get_vring_base(&e->f, 0);
	if (packed) {
		/* 21 chains of 2 descriptors in a ring of 16: 42 slots, so
		 * position 10 after two wraps (counter back to 1); bit 15
		 * the wrap counter, the used half equal (all completed). */
		want = (10u | 0x8000u) | (10u | 0x8000u) << 16;
	} else {
		want = 21;
	}
	assert_int_equal(base, want);
	/* Stopped: a new request is not served... */
	blk_submit(r, &q, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_kick(r);
	assert_false(ring_get_used(r, &token, &len, 300));
	/* ...until the ring is started again at that base. */
	fe_setup_ring(&e->f, r, base, false, true);
	assert_int_equal(blk_wait(r, &q), VIRTIO_BLK_S_OK);
	io_roundtrip(e, r, 0, 9);
}

static void get_vring_base_split(void **state)
{
	get_vring_base_stops_the_ring(*state, false);
}

static void get_vring_base_packed(void **state)
{
	get_vring_base_stops_the_ring(*state, true);
}

/* A disabled ring keeps its place; enabling it serves what waited. */
static void vring_enable_pauses_and_resumes(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	uint32_t st[2] = {0, 0};
	struct blk_req q;
	uint16_t token;
	uint32_t len;

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	io_roundtrip(e, r, 0, 10);
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_ENABLE, st, 8, NULL, 0),
		0);
	blk_submit(r, &q, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_kick(r);
	assert_false(ring_get_used(r, &token, &len, 300));
	st[1] = 1;
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_ENABLE, st, 8, NULL, 0),
		0);
	assert_int_equal(blk_wait(r, &q), VIRTIO_BLK_S_OK);
}

/* QEMU swaps call fds of running rings (interrupt masking) and may send
 * a new kick fd: both take effect without a lost request. */
static void event_fds_replaced_while_running(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	int call2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int kick2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t idx = 0, v;
	struct pollfd p;

	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	/* No EVENT_IDX: every completion notifies. */
	fe_set_features(&e->f, blk_features(false) &
				       ~(1ull << VIRTIO_RING_F_EVENT_IDX));
	gmem_new(&e->m, 16u << 20, 0x100000000ull);
	{
		struct vuf_mem *mems[1] = {&e->m};

		fe_set_mem_table(&e->f, mems, 1);
	}
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, false);
	fe_setup_ring(&e->f, r, 0, false, true);
	io_roundtrip(e, r, 0, 14);
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_CALL, &idx, 8, &call2, 1),
		0);
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_KICK, &idx, 8, &kick2, 1),
		0);
	while (read(r->call, &v, 8) == 8)
		;
	/* Kick through the new fd; the interrupt comes on the new call. */
	close(r->kick);
	r->kick = kick2;
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	p = (struct pollfd){call2, POLLIN, 0};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(read(r->call, &v, 8), -1);
	/* And with no call fd at all the ring still works (polled). */
	idx |= 1u << 8;
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_CALL, &idx, 8, NULL, 0),
		0);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	close(call2);
}

/* ------------------------------------------------------------- broken */

static void broken_ring_signals_error_and_config_change(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	uint64_t idx = 0, v;
	int sp[2], err = eventfd(0, EFD_CLOEXEC);
	struct vhost_user_hdr h;
	struct pollfd p;
	struct buf b = {0x7000000000ull, 512, true}; /* outside memory */

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp),
			 0);
	assert_int_equal(fe_acked(&e->f, VHOST_USER_SET_BACKEND_REQ_FD, NULL, 0,
				  &sp[1], 1),
			 0);
	close(sp[1]);
	assert_int_equal(
		fe_acked(&e->f, VHOST_USER_SET_VRING_ERR, &idx, 8, &err, 1), 0);
	ring_add(r, &b, 1);
	ring_kick(r);
	p = (struct pollfd){sp[0], POLLIN, 0};
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(sp[0], &h, sizeof(h)), sizeof(h));
	assert_int_equal(h.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG);
	assert_int_equal(h.flags & VHOST_USER_VERSION_MASK, VHOST_USER_VERSION);
	p = (struct pollfd){err, POLLIN, 0};
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(err, &v, 8), 8);
	assert_true(fe_get_u64(&e->f, VHOST_USER_GET_STATUS) &
		    VIRTIO_CONFIG_S_NEEDS_RESET);
	close(sp[0]);
	close(err);
}

int run_ring_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
		T(get_vring_base_split),
		T(get_vring_base_packed),
		T(vring_enable_pauses_and_resumes),
		T(event_fds_replaced_while_running),
		T(broken_ring_signals_error_and_config_change),
#undef T
	};

	return cmocka_run_group_tests_name("vhost-user rings", tests, NULL,
					   NULL);
}
