/* INFLIGHT_SHMFD: requests in flight when the daemon dies are resubmitted
 * by its successor, none lost, none completed twice. Killed daemons, and
 * hand-made regions for the cases a kill hits only by chance. */
#include <endian.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vu_test.h"

#define P_AVAIL (1u << VRING_PACKED_DESC_F_AVAIL)
#define P_USED	(1u << VRING_PACKED_DESC_F_USED)

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->nq)
		env_close(e);
	daemon_cleanup(&e->d);
	free(e);
	return 0;
}

/* GET_INFLIGHT_FD: the daemon's region for nq queues of qs entries. */
static int inflight_get(struct vuf_conn *f, uint16_t nq, uint16_t qs,
			size_t *size)
{
	struct vhost_user_inflight in;
	int fd;

	assert_int_equal(vuf_get_inflight_fd(f, nq, qs, &in, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(in.num_queues, nq);
	/* Room for at least the queue size asked for. */
	assert_true(in.queue_size >= qs);
	assert_int_equal(in.mmap_offset, 0);
	*size = in.mmap_size;
	return fd;
}

static void inflight_set(struct vuf_conn *f, int fd, size_t size, uint16_t nq,
			 uint16_t qs)
{
	struct vhost_user_inflight in = {size, 0, nq, qs};

	assert_int_equal(vuf_set_inflight_fd(f, &in, fd), 0);
}

/* What QEMU does on (re)connect before the rings: handshake, features,
 * the inflight region, the memory table. */
static void connect_device(struct env *e, bool packed, int ifd, size_t isize,
			   uint16_t qs)
{
	struct vuf_mem *mems[1] = {&e->m};

	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(packed));
	inflight_set(&e->f, ifd, isize, 1, qs);
	fe_set_mem_table(&e->f, mems, 1);
}

/* Heads marked in flight in a one-queue region of `size` bytes. */
static unsigned count_inflight(const void *region, bool packed, size_t size)
{
	size_t n =
		packed ? (size - sizeof(struct vhost_user_inflight_packed)) /
				 sizeof(struct vhost_user_inflight_desc_packed)
		       : (size - sizeof(struct vhost_user_inflight_split)) /
				 sizeof(struct vhost_user_inflight_desc_split);
	unsigned c = 0;

	for (size_t i = 0; i < n; i++)
		c += packed ? ((const struct vhost_user_inflight_packed *)
				       region)
				      ->desc[i]
				      .inflight
			    : ((const struct vhost_user_inflight_split *)region)
				      ->desc[i]
				      .inflight;
	return c;
}

#define KILL_REQS 60
#define KILL_LEN  (256u << 10)

/* One attempt: KILL_REQS writes, SIGKILL as soon as the first completes,
 * a new daemon on the same image and region; every request must complete
 * exactly once and its data be in the image. Returns how many were
 * recorded in flight at the kill. */
static unsigned kill_attempt(struct env *e, bool packed)
{
	const uint16_t qs = 256;
	/* Split asks for less than the ring, as QEMU 7.2 does over
	 * virtio-mmio (its queue-size 128, the driver's ring 1024). */
	const uint16_t asked = packed ? qs : 128;
	struct ring *r = &e->r[0];
	int seen[KILL_REQS] = {0}, tokens[KILL_REQS];
	unsigned in_flight, done = 0;
	size_t isize;
	void *region;
	int ifd;

	daemon_prepare(&e->d, 64);
	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(packed));
	ifd = inflight_get(&e->f, 1, asked, &isize);
	region = mmap(NULL, isize, PROT_READ | PROT_WRITE, MAP_SHARED, ifd, 0);
	assert_true(region != MAP_FAILED);
	inflight_set(&e->f, ifd, isize, 1, asked);
	gmem_new(&e->m, 64u << 20, 0x100000000ull);
	{
		struct vuf_mem *mems[1] = {&e->m};

		fe_set_mem_table(&e->f, mems, 1);
	}
	e->nq = 1;
	ring_init(r, &e->m, 0, qs, packed);
	fe_setup_ring(&e->f, r, packed ? 0x80008000u : 0, false, true);
	for (unsigned i = 0; i < KILL_REQS; i++) {
		struct blk_req q;
		uint64_t d = gmem_alloc(&e->m, KILL_LEN, 4096);

		fill_pattern(gmem_hva(&e->m, d), KILL_LEN, 1000 + i);
		blk_submit(r, &q, VIRTIO_BLK_T_OUT,
			   (uint64_t)i * (KILL_LEN / SECTOR), d, KILL_LEN);
		tokens[i] = q.token;
	}
	ring_kick(r);
	for (int spin = 0; spin < 2000000 && !ring_peek_used(r); spin++)
		;
	daemon_kill(&e->d);
	vuf_close(&e->f);
	in_flight = count_inflight(region, packed, isize);

	/* The successor, as QEMU's reconnect brings it: its SET_VRING_BASE
	 * is the used index (split) or a stale value (packed). */
	daemon_start(&e->d, NULL);
	connect_device(e, packed, ifd, isize, asked);
	fe_setup_ring(&e->f, r, packed ? 0x80008000u : ring_used_idx(r), false,
		      true);
	ring_kick(r);
	while (done < KILL_REQS) {
		uint16_t token;
		uint32_t len;
		unsigned i;

		if (!ring_get_used(r, &token, &len, 10000)) {
			daemon_dump_log(&e->d);
			fail_msg("%u of %u requests completed (lost ones)",
				 done, KILL_REQS);
		}
		for (i = 0; i < KILL_REQS && tokens[i] != token; i++)
			;
		assert_true(i < KILL_REQS);
		if (seen[i]++)
			fail_msg("request %u completed twice", i);
		done++;
	}
	{
		uint16_t token;
		uint32_t len;

		assert_false(ring_get_used(r, &token, &len, 300));
	}
	for (unsigned i = 0; i < KILL_REQS; i++)
		if (!image_has_pattern(&e->d, (uint64_t)i * (KILL_LEN / SECTOR),
				       KILL_LEN, 1000 + i))
			fail_msg("request %u's data is not in the image", i);
	/* Nothing is left in flight once all completed. */
	assert_int_equal(count_inflight(region, packed, isize), 0);
	munmap(region, isize);
	close(ifd);
	env_close(e);
	daemon_cleanup(&e->d);
	return in_flight;
}

static void killed_daemon(void **state, bool packed)
{
	struct env *e = *state;
	unsigned caught = 0;

	/* A kill lands at a different point each time; repeat until one
	 * caught requests in flight (each attempt checks exactly-once). */
	for (int attempt = 0; attempt < 6 && caught == 0; attempt++) {
		caught = kill_attempt(e, packed);
		print_message("kill %d: %u requests were in flight\n",
			      attempt + 1, caught);
	}
	if (!caught)
		fail_msg("no kill caught a request in flight in 6 attempts");
}

static void split_requests_survive_sigkill(void **state)
{
	killed_daemon(state, false);
}

static void packed_requests_survive_sigkill(void **state)
{
	killed_daemon(state, true);
}

/* For hand-made regions: a daemon hands out its region and goes; the test
 * maps it to write what a dead daemon left. Guest memory, an unstarted ring
 * of 64 and two 4 KiB writes, A to sector 0 and B to sector 64 (packed:
 * slots 0-2 and 3-5), made available. Returns the mapped region. */
static void *crafted_start(struct env *e, bool packed, int *ifd, size_t *isize,
			   struct blk_req *a, struct blk_req *b, uint32_t seed)
{
	struct ring *r = &e->r[0];
	uint64_t da, dbuf;
	void *region;

	daemon_prepare(&e->d, 16);
	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(packed));
	*ifd = inflight_get(&e->f, 1, 64, isize);
	vuf_close(&e->f);
	/* The predecessor is dead, as after a crash: its successor would
	 * find the image locked by a live one. */
	daemon_kill(&e->d);
	region =
		mmap(NULL, *isize, PROT_READ | PROT_WRITE, MAP_SHARED, *ifd, 0);
	assert_true(region != MAP_FAILED);
	gmem_new(&e->m, 16u << 20, 0x100000000ull);
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, packed);
	da = gmem_alloc(&e->m, 4096, 4096);
	dbuf = gmem_alloc(&e->m, 4096, 4096);
	fill_pattern(gmem_hva(&e->m, da), 4096, seed);
	fill_pattern(gmem_hva(&e->m, dbuf), 4096, seed + 1);
	blk_submit(r, a, VIRTIO_BLK_T_OUT, 0, da, 4096);
	blk_submit(r, b, VIRTIO_BLK_T_OUT, 64, dbuf, 4096);
	return region;
}

/* A batch that reached the used ring before the crash, with its entries
 * still marked: the spec's "used_idx does not match" case. A (published)
 * must not run again; B (in flight) must. */
static void split_published_batch_is_not_resubmitted(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	struct vring_used *used;
	struct blk_req a, b;
	struct vhost_user_inflight_split *s;
	uint16_t token;
	uint32_t len;
	size_t isize;
	uint8_t zero[4096] = {0}, got[4096];
	int ifd, fd;

	s = crafted_start(e, false, &ifd, &isize, &a, &b, 31);
	/* The dead daemon's work: A completed and published... */
	used = r->vq.used;
	used->ring[0].id = htole32((uint32_t)a.token);
	used->ring[0].len = htole32(1);
	used->idx = htole16(1);
	*(uint8_t *)gmem_hva(&e->m, a.status_gpa) = VIRTIO_BLK_S_OK;
	/* ...but its region still says A and B are in flight. */
	s->version = 1;
	s->desc_num = 64;
	s->used_idx = 0;
	s->last_batch_head = (uint16_t)a.token;
	s->desc[a.token] = (struct vhost_user_inflight_desc_split){
		.inflight = 1, .counter = 7};
	s->desc[b.token] = (struct vhost_user_inflight_desc_split){
		.inflight = 1, .counter = 8};

	daemon_start(&e->d, NULL);
	connect_device(e, false, ifd, isize, 64);
	fe_setup_ring(&e->f, r, 1, false, true);
	ring_kick(r);
	assert_true(ring_get_used(r, &token, &len, 1000)); /* A, as crafted */
	assert_int_equal(token, a.token);
	assert_int_equal(blk_wait(r, &b), VIRTIO_BLK_S_OK);
	assert_false(ring_get_used(r, &token, &len, 300));
	assert_int_equal(ring_used_idx(r), 2);
	assert_true(image_has_pattern(&e->d, 64, 4096, 32));
	fd = open(e->d.img, O_RDONLY);
	assert_int_equal(pread(fd, got, sizeof(got), 0), sizeof(got));
	close(fd);
	assert_memory_equal(got, zero, sizeof(got)); /* A did not run again */
	assert_int_equal(s->desc[a.token].inflight, 0);
	assert_int_equal(s->desc[b.token].inflight, 0);
	assert_int_equal(s->used_idx, 2);
	assert_true(daemon_log_has(&e->d, "resubmitting 1 requests", NULL));
	munmap(s, isize);
	close(ifd);
}

/* Packed: B completed out of order and its used element overwrote A's
 * head descriptor; A must run from the region's copy, B not again. */
static void packed_overwritten_chain_is_resubmitted(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	struct vring_packed_desc *ring, copy[3];
	struct blk_req a, b;
	struct vhost_user_inflight_packed *p;
	uint64_t dbuf;
	uint16_t token;
	uint32_t len;
	size_t isize;
	int ifd, fd;

	p = crafted_start(e, true, &ifd, &isize, &a, &b, 41);
	ring = r->vq.pdesc;
	dbuf = b.data_gpa;
	memcpy(copy, ring, sizeof(copy));
	/* The dead daemon ran B: its data is in the image, its used element
	 * sits in slot 0 (over A's head), the driver took it and reused
	 * B's buffer. */
	fd = open(e->d.img, O_WRONLY);
	assert_int_equal(pwrite(fd, gmem_hva(&e->m, dbuf), 4096, 64 * SECTOR),
			 4096);
	close(fd);
	ring[0].id = htole16((uint16_t)b.token);
	ring[0].len = htole32(1);
	ring[0].flags = htole16(P_AVAIL | P_USED);
	r->vq.used_pos = 3;
	r->vq.busy[b.token] = false;
	fill_pattern(gmem_hva(&e->m, dbuf), 4096, 99);
	/* The region: A's three descriptors in entries 0-2, in flight; the
	 * free list from entry 3; used position 3, wrap counter 1. */
	memset(p->desc, 0, 64 * sizeof(p->desc[0]));
	for (uint16_t i = 0; i < 64; i++)
		p->desc[i].next = (uint16_t)(i + 1);
	for (int i = 0; i < 3; i++) {
		p->desc[i].addr = le64toh(copy[i].addr);
		p->desc[i].len = le32toh(copy[i].len);
		p->desc[i].id = le16toh(copy[i].id);
		p->desc[i].flags = le16toh(copy[i].flags);
	}
	p->desc[0].inflight = 1;
	p->desc[0].num = 3;
	p->desc[0].last = 2;
	p->desc[0].counter = 5;
	p->free_head = p->old_free_head = 3;
	p->used_idx = p->old_used_idx = 3;
	p->used_wrap_counter = p->old_used_wrap_counter = 1;
	p->desc_num = 64;
	p->version = 1;

	daemon_start(&e->d, NULL);
	connect_device(e, true, ifd, isize, 64);
	fe_setup_ring(&e->f, r, 0x80008000u, false, true); /* stale base */
	ring_kick(r);
	assert_true(ring_get_used(r, &token, &len, 5000));
	assert_int_equal(token, a.token);
	assert_int_equal(*(uint8_t *)gmem_hva(&e->m, a.status_gpa),
			 VIRTIO_BLK_S_OK);
	assert_false(ring_get_used(r, &token, &len, 300));
	assert_true(image_has_pattern(&e->d, 0, 4096, 41));
	assert_true(image_has_pattern(&e->d, 64, 4096, 42)); /* B not rerun */
	assert_true(daemon_log_has(&e->d, "resubmitting 1 requests", NULL));
	munmap(p, isize);
	close(ifd);
}

/* Packed: the daemon died while publishing a batch (A pushed: used
 * position moved on in the region, old_used_idx not yet). If the driver
 * can see A's used element the batch is committed and A must not run
 * again; if not, it is rolled back and A runs again. B, in flight, runs
 * once either way. */
static void packed_interrupted_publish(struct env *e, bool published)
{
	struct ring *r = &e->r[0];
	struct vring_packed_desc *ring;
	struct blk_req a, b;
	struct vhost_user_inflight_packed *p;
	uint64_t da;
	uint16_t token;
	uint32_t len;
	size_t isize;
	int ifd, fd;

	p = crafted_start(e, true, &ifd, &isize, &a, &b, 51);
	ring = r->vq.pdesc;
	da = a.data_gpa;
	memset(p->desc, 0, 64 * sizeof(p->desc[0]));
	for (uint16_t i = 0; i < 64; i++) {
		p->desc[i].next = (uint16_t)(i + 1);
		if (i < 6) {
			p->desc[i].addr = le64toh(ring[i].addr);
			p->desc[i].len = le32toh(ring[i].len);
			p->desc[i].id = le16toh(ring[i].id);
			p->desc[i].flags = le16toh(ring[i].flags);
		}
	}
	p->desc[0] = (struct vhost_user_inflight_desc_packed){
		.inflight = 1,
		.next = 1,
		.last = 2,
		.num = 3,
		.counter = 1,
		.id = p->desc[0].id,
		.flags = p->desc[0].flags,
		.len = p->desc[0].len,
		.addr = p->desc[0].addr};
	p->desc[3].inflight = 1;
	p->desc[3].num = 3;
	p->desc[3].last = 5;
	p->desc[3].counter = 2;
	/* A was pushed: its entries lead the list at free_head and join the
	 * free list at old_free_head (6); the used position moved to 3. */
	p->desc[2].next = 6;
	p->free_head = 0;
	p->old_free_head = 6;
	p->used_idx = 3;
	p->old_used_idx = 0;
	p->used_wrap_counter = p->old_used_wrap_counter = 1;
	p->desc_num = 64;
	p->version = 1;
	/* A ran; its used element is in slot 0, flags stored or not. */
	fd = open(e->d.img, O_WRONLY);
	assert_int_equal(pwrite(fd, gmem_hva(&e->m, da), 4096, 0), 4096);
	close(fd);
	ring[0].id = htole16((uint16_t)a.token);
	ring[0].len = htole32(1);
	if (published) {
		ring[0].flags = htole16(P_AVAIL | P_USED);
		*(uint8_t *)gmem_hva(&e->m, a.status_gpa) = VIRTIO_BLK_S_OK;
		/* The driver took A while no daemon ran, and reused its
		 * buffer: running A again would write 99 to the disk. */
		assert_true(ring_get_used(r, &token, &len, 100));
		assert_int_equal(token, a.token);
		fill_pattern(gmem_hva(&e->m, da), 4096, 99);
	}

	daemon_start(&e->d, NULL);
	connect_device(e, true, ifd, isize, 64);
	fe_setup_ring(&e->f, r, 0x80008000u, false, true);
	ring_kick(r);
	if (!published)
		assert_int_equal(blk_wait(r, &a), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_wait(r, &b), VIRTIO_BLK_S_OK);
	assert_false(ring_get_used(r, &token, &len, 300));
	assert_true(image_has_pattern(&e->d, 0, 4096, 51));
	assert_true(image_has_pattern(&e->d, 64, 4096, 52));
	munmap(p, isize);
	close(ifd);
}

static void packed_published_batch_is_committed(void **state)
{
	packed_interrupted_publish(*state, true);
}

static void packed_unpublished_batch_is_rolled_back(void **state)
{
	packed_interrupted_publish(*state, false);
}

/* True if the region records a descriptor at gpa with buffer id `id`. */
static bool packed_recorded(const struct vhost_user_inflight_packed *p,
			    uint64_t gpa, uint16_t id)
{
	for (unsigned i = 0; i < p->desc_num; i++)
		if (p->desc[i].addr == gpa && p->desc[i].id == id)
			return true;
	return false;
}

/* Packed: the entries of a chain pushed but not yet published still hold
 * its record (a crash before the publish rolls back to it and resubmits
 * the chain), so a chain popped meanwhile must take other entries. Two
 * GET_IDs complete within one kick: pop A, push A, pop B, push B, publish.
 * Afterwards the region must hold both records apart, and every entry must
 * be back on the free list exactly once. */
static void packed_pushed_entries_are_not_reused_before_publish(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	struct vuf_mem *mems[1] = {&e->m};
	struct blk_req q[2];
	struct vhost_user_inflight_packed *p;
	uint8_t *seen;
	size_t isize;
	unsigned n = 0;
	uint16_t i;
	int ifd;

	daemon_prepare(&e->d, 16);
	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(true));
	ifd = inflight_get(&e->f, 1, 64, &isize);
	p = mmap(NULL, isize, PROT_READ | PROT_WRITE, MAP_SHARED, ifd, 0);
	assert_true(p != MAP_FAILED);
	inflight_set(&e->f, ifd, isize, 1, 64);
	gmem_new(&e->m, 16u << 20, 0x100000000ull);
	fe_set_mem_table(&e->f, mems, 1);
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, true);
	/* Both available before the ring starts: its first kick pops both.
	 * GET_ID completes as it is popped (no I/O), so A is pushed before
	 * B is popped and both are published together. */
	for (int k = 0; k < 2; k++)
		blk_submit(r, &q[k], VIRTIO_BLK_T_GET_ID, 0,
			   gmem_alloc(&e->m, VIRTIO_BLK_ID_BYTES, 16),
			   VIRTIO_BLK_ID_BYTES);
	fe_setup_ring(&e->f, r, 0x80008000u, false, true);
	assert_int_equal(blk_wait(r, &q[0]), VIRTIO_BLK_S_OK);
	assert_int_equal(blk_wait(r, &q[1]), VIRTIO_BLK_S_OK);

	assert_int_equal(p->version, 1);
	for (int k = 0; k < 2; k++) {
		uint16_t id = (uint16_t)q[k].token;

		if (!packed_recorded(p, q[k].hdr_gpa, id) ||
		    !packed_recorded(p, q[k].data_gpa, id) ||
		    !packed_recorded(p, q[k].status_gpa, id))
			fail_msg("request %c's record was overwritten",
				 'A' + k);
	}
	/* Nothing in flight: the free list from old_free_head holds every
	 * entry once and ends at desc_num. */
	assert_int_equal(count_inflight(p, true, isize), 0);
	assert_int_equal(p->free_head, p->old_free_head);
	seen = calloc(p->desc_num, 1);
	assert_non_null(seen);
	for (i = p->old_free_head; i < p->desc_num && n <= p->desc_num;
	     i = p->desc[i].next) {
		if (seen[i]++)
			fail_msg("free list loops back to entry %u", i);
		n++;
	}
	assert_int_equal(i, p->desc_num);
	assert_int_equal(n, p->desc_num);
	free(seen);
	munmap(p, isize);
	close(ifd);
}

int run_inflight_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(split_published_batch_is_not_resubmitted),
		T(packed_overwritten_chain_is_resubmitted),
		T(packed_published_batch_is_committed),
		T(packed_unpublished_batch_is_rolled_back),
		T(packed_pushed_entries_are_not_reused_before_publish),
		T(split_requests_survive_sigkill),
		T(packed_requests_survive_sigkill),
#undef T
	};

	return cmocka_run_group_tests_name("vhost-user inflight", tests, NULL,
					   NULL);
}
