/* Guest memory through the protocol: memory slots (ADD/REM_MEM_REG), a
 * changed memory table under running rings, sealing shared memory against
 * shrinking, and the dirty log marking exactly the pages written. */
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

/* -------------------------------------------------------- memory slots */

static void add_region(struct vuf_conn *f, struct vuf_mem *m)
{
	struct {
		uint64_t padding;
		struct vhost_user_memory_region r;
	} msg = {0, gmem_region(m)};

	assert_int_equal(fe_acked(f, VHOST_USER_ADD_MEM_REG, &msg, sizeof(msg),
				  &m->fd, 1),
			 0);
}

static uint64_t rem_region(struct vuf_conn *f, struct vuf_mem *m, bool with_fd)
{
	struct {
		uint64_t padding;
		struct vhost_user_memory_region r;
	} msg = {0, gmem_region(m)};

	return fe_acked(f, VHOST_USER_REM_MEM_REG, &msg, sizeof(msg), &m->fd,
			with_fd ? 1 : 0);
}

static void memory_slots_add_and_remove(void **state)
{
	struct env *e = *state;
	struct vuf_mem b, c;
	struct ring *r = &e->r[0];
	struct blk_req q;
	uint64_t db, dc, s;
	uint16_t token;
	uint32_t len;

	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(false));
	gmem_new(&e->m, 4u << 20, 0x100000000ull);
	gmem_new(&b, 2u << 20, 0x200000000ull);
	gmem_new(&c, 2u << 20, 0x300000000ull);
	add_region(&e->f, &e->m);
	add_region(&e->f, &b);
	add_region(&e->f, &c);
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, false);
	fe_setup_ring(&e->f, r, 0, false, true);
	db = gmem_alloc(&b, 8192, 4096);
	dc = gmem_alloc(&c, 8192, 4096);
	fill_pattern(gmem_hva(&b, db), 8192, 7);
	fill_pattern(gmem_hva(&c, dc), 8192, 8);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_OUT, 0, db, 8192),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_OUT, 16, dc, 8192),
			 VIRTIO_BLK_S_OK);
	assert_true(image_has_pattern(&e->d, 0, 8192, 7));
	assert_true(image_has_pattern(&e->d, 16, 8192, 8));
	/* Removing C leaves A (rings) and B working. */
	assert_int_equal(rem_region(&e->f, &c, false), 0);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 16, db, 8192),
			 VIRTIO_BLK_S_OK);
	assert_true(check_pattern(gmem_hva(&b, db), 8192, 8));
	/* Re-add C; removing with an fd attached is accepted (the spec's
	 * compatibility rule) and the fd is closed. */
	add_region(&e->f, &c);
	assert_int_equal(rem_region(&e->f, &c, true), 0);
	/* A buffer in removed memory breaks the device, never the daemon. */
	blk_submit(r, &q, VIRTIO_BLK_T_IN, 0, dc, 4096);
	ring_kick(r);
	assert_false(ring_get_used(r, &token, &len, 300));
	s = fe_get_u64(&e->f, VHOST_USER_GET_STATUS);
	assert_true(s & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(daemon_log_has(&e->d, "device needs reset", NULL));
	gmem_free(&b);
	gmem_free(&c);
}

/* A changed SET_MEM_TABLE stops the running rings before their mappings
 * go and restarts them where they stood on the new ones (QEMU resends its
 * table whenever guest memory changes, rings running). */
static void memory_table_change_restarts_running_rings(void **state)
{
	struct env *e = *state;
	struct vuf_mem b, *mems[2] = {&e->m, &b};
	struct ring *r = &e->r[0];
	uint64_t da, db;

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	da = gmem_alloc(&e->m, 8192, 4096);
	fill_pattern(gmem_hva(&e->m, da), 8192, 21);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_OUT, 0, da, 8192),
			 VIRTIO_BLK_S_OK);
	/* The same memory plus a second region: a changed table. */
	gmem_new(&b, 2u << 20, 0x200000000ull);
	fe_set_mem_table(&e->f, mems, 2);
	db = gmem_alloc(&b, 8192, 4096);
	fill_pattern(gmem_hva(&b, db), 8192, 22);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_OUT, 16, db, 8192),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 0, db, 8192),
			 VIRTIO_BLK_S_OK);
	assert_true(check_pattern(gmem_hva(&b, db), 8192, 21));
	assert_true(image_has_pattern(&e->d, 16, 8192, 22));
	/* Back to the first table: the ring again survives the swap. */
	fe_set_mem_table(&e->f, mems, 1);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 16, da, 8192),
			 VIRTIO_BLK_S_OK);
	assert_true(check_pattern(gmem_hva(&e->m, da), 8192, 22));
	assert_int_equal(ring_used_idx(r), 4);
	assert_true(
		daemon_log_has(&e->d, "q0", "stopped at avail 1 used 1", NULL));
	gmem_free(&b);
}

/* A frontend that shrinks a memory file under the daemon's mapping would
 * crash it (SIGBUS on the next access). A memfd that allows sealing but is
 * not sealed gets F_SEAL_SHRINK when shared; growing stays possible. */
static void sealable_guest_memory_is_sealed_against_shrinking(void **state)
{
	struct env *e = *state;
	struct vuf_mem *mems[1] = {&e->m};
	struct ring *r = &e->r[0];
	uint64_t d;

	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(false));
	assert_int_equal(vuf_mem_new(&e->m, "vu-test-sealable", 4u << 20,
				     0x100000000ull, MFD_ALLOW_SEALING),
			 0);
	assert_int_equal(fcntl(e->m.fd, F_GET_SEALS), 0);
	fe_set_mem_table(&e->f, mems, 1);
	assert_int_equal(fcntl(e->m.fd, F_GET_SEALS), F_SEAL_SHRINK);
	assert_int_equal(ftruncate(e->m.fd, 1u << 20), -1);
	assert_int_equal(errno, EPERM);
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, false);
	fe_setup_ring(&e->f, r, 0, false, true);
	d = gmem_alloc(&e->m, 4096, 4096);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, 0, d, 4096),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(ftruncate(e->m.fd, 8u << 20), 0);
	assert_int_equal(daemon_log_count(&e->d, "not sealed"), 0);
}

/* Memory that cannot be sealed (here a memfd without MFD_ALLOW_SEALING;
 * QEMU's memory-backend-file in practice) is served, with one warning per
 * connection naming the risk. */
static void unsealable_guest_memory_is_warned_about_once(void **state)
{
	struct env *e = *state;
	struct vuf_mem b, *mems[2] = {&e->m, &b};

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	gmem_new(&b, 2u << 20, 0x200000000ull);
	fe_set_mem_table(&e->f, mems, 2);
	io_roundtrip(e, &e->r[0], 0, 31);
	assert_true(daemon_log_has(&e->d, "guest memory",
				   "not sealed against shrinking", NULL));
	assert_int_equal(daemon_log_count(&e->d, "not sealed"), 1);
	env_close(e);
	env_open(e, 1, false, 64);
	io_roundtrip(e, &e->r[0], 0, 32);
	assert_int_equal(daemon_log_count(&e->d, "not sealed"), 2);
	gmem_free(&b);
}

/* ------------------------------------------------------------ dirty log */

static uint8_t *log_setup(struct vuf_conn *f, size_t covered, int *fd,
			  size_t *len)
{
	struct {
		uint64_t size, offset;
	} l;
	struct vhost_user_hdr h;
	uint64_t v;
	uint8_t *bits;

	*len = ((covered / 4096 + 7) / 8 + 4095) & ~(size_t)4095;
	*fd = memfd_create("vu-test-log", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, (off_t)*len), 0);
	bits = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	assert_true(bits != MAP_FAILED);
	l.size = *len;
	l.offset = 0;
	/* "SET_LOG_BASE (if LOG_SHMFD)" is answered. */
	assert_int_equal(vuf_send(f, VHOST_USER_SET_LOG_BASE,
				  VHOST_USER_VERSION, &l, sizeof(l), fd, 1),
			 0);
	assert_true(vuf_recv(f, &h, &v, sizeof(v), NULL, 5000) >= 0);
	assert_int_equal(h.request, VHOST_USER_SET_LOG_BASE);
	return bits;
}

/* Exactly the pages in want[] are marked. */
static void check_log(const uint8_t *bits, size_t len, const uint64_t *want,
		      unsigned n)
{
	for (uint64_t page = 0; page < len * 8; page++) {
		bool set = bits[page / 8] & (1u << (page % 8)), expect = false;

		for (unsigned i = 0; i < n; i++)
			expect |= want[i] / 4096 == page;
		if (set != expect)
			fail_msg("page 0x%llx (gpa 0x%llx) is %s dirty",
				 (unsigned long long)page,
				 (unsigned long long)page * 4096,
				 set ? "wrongly" : "not");
	}
}

/* A device with memory at gpa 0 (so the bitmap stays small), a dirty log,
 * LOG_ALL and one ring with VHOST_VRING_F_LOG. */
static uint8_t *logged_env(struct env *e, bool packed, uint16_t num, int *fd,
			   size_t *len)
{
	struct vuf_mem *mems[1] = {&e->m};
	uint8_t *bits;

	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	gmem_new(&e->m, 8u << 20, 0);
	fe_set_mem_table(&e->f, mems, 1);
	bits = log_setup(&e->f, e->m.size, fd, len);
	fe_set_features(&e->f, blk_features(packed) | 1ull << VHOST_F_LOG_ALL);
	e->nq = 1;
	ring_init(&e->r[0], &e->m, 0, num, packed);
	fe_setup_ring(&e->f, &e->r[0], packed ? 0x80008000u : 0, true, true);
	return bits;
}

static void dirty_log_marks_exactly_the_written_pages(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	struct blk_req q;
	uint64_t data, hdr, status, data2;
	size_t len;
	uint8_t *bits;
	int fd;

	bits = logged_env(e, false, 128, &fd, &len);
	data = gmem_alloc(&e->m, 8192, 4096);
	hdr = gmem_alloc(&e->m, 16, 4096);
	status = gmem_alloc(&e->m, 1, 4096);
	data2 = gmem_alloc(&e->m, 8192, 4096);
	memset(bits, 0, len);
	/* A read writes the data pages, the status byte and the used ring;
	 * never the header, the descriptors or the available ring. */
	blk_submit_at(r, &q, VIRTIO_BLK_T_IN, 0, data, 8192, hdr, status);
	ring_kick(r);
	assert_int_equal(blk_wait(r, &q), VIRTIO_BLK_S_OK);
	{
		const uint64_t want[] = {data, data + 4096, status,
					 r->used_gpa};

		check_log(bits, len, want, 4);
	}
	/* A write: only the status byte and the used ring. */
	memset(bits, 0, len);
	blk_submit_at(r, &q, VIRTIO_BLK_T_OUT, 0, data2, 8192, hdr, status);
	ring_kick(r);
	assert_int_equal(blk_wait(r, &q), VIRTIO_BLK_S_OK);
	{
		const uint64_t want[] = {status, r->used_gpa};

		check_log(bits, len, want, 2);
	}
	/* LOG_ALL off: nothing is marked any more. */
	fe_set_features(&e->f, blk_features(false));
	memset(bits, 0, len);
	blk_submit_at(r, &q, VIRTIO_BLK_T_IN, 0, data, 8192, hdr, status);
	ring_kick(r);
	assert_int_equal(blk_wait(r, &q), VIRTIO_BLK_S_OK);
	check_log(bits, len, NULL, 0);
	munmap(bits, len);
	close(fd);
}

static void dirty_log_packed_ring(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	struct blk_req q;
	uint64_t data, hdr, status;
	size_t len;
	uint8_t *bits;
	int fd;

	bits = logged_env(e, true, 64, &fd, &len);
	data = gmem_alloc(&e->m, 8192, 4096);
	hdr = gmem_alloc(&e->m, 16, 4096);
	status = gmem_alloc(&e->m, 1, 4096);
	memset(bits, 0, len);
	blk_submit_at(r, &q, VIRTIO_BLK_T_IN, 0, data, 8192, hdr, status);
	ring_kick(r);
	assert_int_equal(blk_wait(r, &q), VIRTIO_BLK_S_OK);
	/* The used descriptor goes into the descriptor ring. */
	for (uint64_t p = 0; p < len * 8; p++) {
		bool set = bits[p / 8] & (1u << (p % 8));
		uint64_t gpa = p * 4096;

		if (gpa == data || gpa == data + 4096 || gpa == status ||
		    gpa == r->desc_gpa)
			assert_true(set);
		else if (gpa == hdr || gpa == r->avail_gpa)
			assert_false(set);
		else if (gpa != r->used_gpa && set)
			fail_msg("page 0x%llx wrongly dirty",
				 (unsigned long long)gpa);
	}
	munmap(bits, len);
	close(fd);
}

int run_memory_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
		T(memory_slots_add_and_remove),
		T(memory_table_change_restarts_running_rings),
		T(sealable_guest_memory_is_sealed_against_shrinking),
		T(unsealable_guest_memory_is_warned_about_once),
		T(dirty_log_marks_exactly_the_written_pages),
		T(dirty_log_packed_ring),
#undef T
	};

	return cmocka_run_group_tests_name("vhost-user memory", tests, NULL,
					   NULL);
}
