/* Protocol tests: the daemon driven through its socket like QEMU drives it
 * (handshake, memory table and slots, split and packed rings, blk I/O,
 * config, status, dirty log, ring base, reconnect, SIGTERM). */
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

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	daemon_prepare(&e->d, 64);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	if (e->nq)
		env_close(e);
	if (e->d.pid > 0 && !daemon_alive(&e->d))
		daemon_dump_log(&e->d);
	daemon_cleanup(&e->d);
	free(e);
	return 0;
}

/* ------------------------------------------------------------- handshake */

static void handshake_offers_features_and_limits(void **state)
{
	struct env *e = *state;
	uint64_t feat, pf;
	uint32_t st[2] = {1, 0};
	struct wire_hdr h;

	daemon_start(&e->d, "--num-queues", "2", NULL);
	fe_connect(&e->f, e->d.sock);
	feat = fe_get_u64(&e->f, REQ_GET_FEATURES);
	assert_true(feat & (1ull << VIRTIO_F_VERSION_1));
	assert_true(feat & (1ull << PROTOCOL_FEATURES_BIT));
	assert_true(feat & (1ull << VHOST_F_LOG_ALL));
	assert_true(feat & (1ull << VIRTIO_F_RING_PACKED));
	/* GET_PROTOCOL_FEATURES is legal before SET_FEATURES. */
	pf = fe_get_u64(&e->f, REQ_GET_PROTOCOL_FEATURES);
	assert_int_equal(pf, EXPECTED_PROTOCOL_FEATURES);
	fe_set_u64(&e->f, REQ_SET_PROTOCOL_FEATURES, pf);
	e->f.protocol = pf;
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_QUEUE_NUM), 2);
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_MAX_MEM_SLOTS), 509);
	assert_int_equal(fe_acked(&e->f, REQ_SET_OWNER, NULL, 0, NULL, 0), 0);
	fe_set_features(&e->f, blk_features(false));
	/* A ring never started reports the base it was given. */
	st[1] = 77;
	assert_int_equal(fe_acked(&e->f, REQ_SET_VRING_BASE, st, 8, NULL, 0),
			 0);
	assert_int_equal(
		fe_send(&e->f, REQ_GET_VRING_BASE, F_VERSION, st, 8, NULL, 0),
		0);
	assert_int_equal(fe_recv(&e->f, &h, st, sizeof(st), NULL, 5000), 8);
	assert_int_equal(st[0], 1);
	assert_int_equal(st[1], 77);
	fe_close(&e->f);
}

/* ------------------------------------------------------------------ I/O */

static void io_roundtrip(struct env *e, struct ring *r, uint64_t sector,
			 uint32_t seed)
{
	const uint32_t len = 16384;
	uint64_t data = gmem_alloc(&e->m, len, 4096);

	fill_pattern(gmem_hva(&e->m, data), len, seed);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_OUT, sector, data, len),
			 VIRTIO_BLK_S_OK);
	memset(gmem_hva(&e->m, data), 0, len);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_IN, sector, data, len),
			 VIRTIO_BLK_S_OK);
	assert_true(check_pattern(gmem_hva(&e->m, data), len, seed));
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	assert_true(image_has_pattern(&e->d, sector, len, seed));
}

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

static int get_config(struct fe *f, uint32_t off, uint32_t size, void *out)
{
	struct {
		uint32_t off, size, flags;
		uint8_t data[256];
	} c = {off, size, 0, {0}};
	struct wire_hdr h;
	int n;

	assert_int_equal(
		fe_send(f, REQ_GET_CONFIG, F_VERSION, &c, 12 + size, NULL, 0),
		0);
	n = fe_recv(f, &h, &c, sizeof(c), NULL, 5000);
	assert_true(n >= 0);
	assert_int_equal(h.request, REQ_GET_CONFIG);
	if (n)
		memcpy(out, c.data, size);
	return n;
}

static uint64_t set_config(struct fe *f, uint32_t off, const void *data,
			   uint32_t size)
{
	struct {
		uint32_t off, size, flags;
		uint8_t data[256];
	} c = {off, size, 0, {0}};

	memcpy(c.data, data, size);
	return fe_acked(f, REQ_SET_CONFIG, &c, 12 + size, NULL, 0);
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
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_QUEUE_NUM), 2);
	fe_close(&e->f);
}

/* --------------------------------------------------------------- status */

static void status_follows_qemu_sequence(void **state)
{
	struct env *e = *state;
	uint64_t s;

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_STATUS), 0);
	/* QEMU: SET_FEATURES, then FEATURES_OK alone, then ACKNOWLEDGE |
	 * DRIVER | DRIVER_OK added to what GET_STATUS returned. */
	s = VIRTIO_CONFIG_S_FEATURES_OK;
	assert_int_equal(fe_acked(&e->f, REQ_SET_STATUS, &s, 8, NULL, 0), 0);
	s = fe_get_u64(&e->f, REQ_GET_STATUS);
	assert_true(s & VIRTIO_CONFIG_S_FEATURES_OK);
	s |= VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	     VIRTIO_CONFIG_S_DRIVER_OK;
	assert_int_equal(fe_acked(&e->f, REQ_SET_STATUS, &s, 8, NULL, 0), 0);
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_STATUS),
			 VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				 VIRTIO_CONFIG_S_FEATURES_OK |
				 VIRTIO_CONFIG_S_DRIVER_OK);
	io_roundtrip(e, &e->r[0], 0, 6);
	/* Clearing a bit other than by writing 0 is refused. */
	s = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	assert_int_not_equal(fe_acked(&e->f, REQ_SET_STATUS, &s, 8, NULL, 0),
			     0);
	s = 0;
	assert_int_equal(fe_acked(&e->f, REQ_SET_STATUS, &s, 8, NULL, 0), 0);
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_STATUS), 0);
}

/* -------------------------------------------------------- memory slots */

static void add_region(struct fe *f, struct gmem *m)
{
	struct {
		uint64_t padding;
		struct wire_region r;
	} msg = {0, gmem_region(m)};

	assert_int_equal(
		fe_acked(f, REQ_ADD_MEM_REG, &msg, sizeof(msg), &m->fd, 1), 0);
}

static uint64_t rem_region(struct fe *f, struct gmem *m, bool with_fd)
{
	struct {
		uint64_t padding;
		struct wire_region r;
	} msg = {0, gmem_region(m)};

	return fe_acked(f, REQ_REM_MEM_REG, &msg, sizeof(msg), &m->fd,
			with_fd ? 1 : 0);
}

static void memory_slots_add_and_remove(void **state)
{
	struct env *e = *state;
	struct gmem b, c;
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
	s = fe_get_u64(&e->f, REQ_GET_STATUS);
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
	struct gmem b, *mems[2] = {&e->m, &b};
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
	struct gmem *mems[1] = {&e->m};
	struct ring *r = &e->r[0];
	uint64_t d;

	daemon_start(&e->d, NULL);
	fe_connect(&e->f, e->d.sock);
	fe_handshake(&e->f);
	fe_set_features(&e->f, blk_features(false));
	memset(&e->m, 0, sizeof(e->m));
	e->m.fd = memfd_create("vu-test-sealable",
			       MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(e->m.fd >= 0);
	e->m.size = 4u << 20;
	e->m.gpa = 0x100000000ull;
	assert_int_equal(ftruncate(e->m.fd, (off_t)e->m.size), 0);
	e->m.hva = mmap(NULL, e->m.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			e->m.fd, 0);
	assert_true(e->m.hva != MAP_FAILED);
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
	struct gmem b, *mems[2] = {&e->m, &b};

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

static uint8_t *log_setup(struct fe *f, size_t covered, int *fd, size_t *len)
{
	struct {
		uint64_t size, offset;
	} l;
	struct wire_hdr h;
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
	assert_int_equal(
		fe_send(f, REQ_SET_LOG_BASE, F_VERSION, &l, sizeof(l), fd, 1),
		0);
	assert_true(fe_recv(f, &h, &v, sizeof(v), NULL, 5000) >= 0);
	assert_int_equal(h.request, REQ_SET_LOG_BASE);
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
	struct gmem *mems[1] = {&e->m};
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

/* ------------------------------------------------------------ ring base */

static uint32_t get_vring_base(struct fe *f, uint32_t index)
{
	uint32_t st[2] = {index, 0};
	struct wire_hdr h;

	assert_int_equal(
		fe_send(f, REQ_GET_VRING_BASE, F_VERSION, st, 8, NULL, 0), 0);
	assert_int_equal(fe_recv(f, &h, st, sizeof(st), NULL, 5000), 8);
	assert_int_equal(h.request, REQ_GET_VRING_BASE);
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
	assert_int_equal(fe_acked(&e->f, REQ_SET_VRING_ENABLE, st, 8, NULL, 0),
			 0);
	blk_submit(r, &q, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_kick(r);
	assert_false(ring_get_used(r, &token, &len, 300));
	st[1] = 1;
	assert_int_equal(fe_acked(&e->f, REQ_SET_VRING_ENABLE, st, 8, NULL, 0),
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
		struct gmem *mems[1] = {&e->m};

		fe_set_mem_table(&e->f, mems, 1);
	}
	e->nq = 1;
	ring_init(r, &e->m, 0, 64, false);
	fe_setup_ring(&e->f, r, 0, false, true);
	io_roundtrip(e, r, 0, 14);
	assert_int_equal(
		fe_acked(&e->f, REQ_SET_VRING_CALL, &idx, 8, &call2, 1), 0);
	assert_int_equal(
		fe_acked(&e->f, REQ_SET_VRING_KICK, &idx, 8, &kick2, 1), 0);
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
	assert_int_equal(fe_acked(&e->f, REQ_SET_VRING_CALL, &idx, 8, NULL, 0),
			 0);
	assert_int_equal(blk_do(r, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
			 VIRTIO_BLK_S_OK);
	close(call2);
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
	assert_int_equal(fe_acked(&e->f, REQ_SET_STATUS, &s, 8, NULL, 0), 0);
	io_roundtrip(e, &e->r[0], 0, 11);
	env_close(e);
	/* Everything the connection held is released... */
	assert_int_equal(daemon_wait_fd_count(&e->d, idle), idle);
	assert_true(daemon_log_has(&e->d, "frontend disconnected", NULL));
	/* ...and a new frontend finds a reset device that works. */
	env_open(e, 1, true, 64);
	assert_int_equal(fe_get_u64(&e->f, REQ_GET_STATUS), 0);
	io_roundtrip(e, &e->r[0], 0, 12);
	/* RESET_DEVICE: rings stop and must be set up again. */
	assert_int_equal(fe_acked(&e->f, REQ_RESET_DEVICE, NULL, 0, NULL, 0),
			 0);
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
	struct wire_hdr h = {REQ_SET_CONFIG, F_VERSION, 12 + 256};
	struct fe f;
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
	fe_close(&f);
	assert_true(
		daemon_log_has(&e->d, "truncated message (timed out)", NULL));
}

/* A broken ring: NEEDS_RESET, the error fd signalled and a config-change
 * message on the backend request channel. */
static void broken_ring_signals_error_and_config_change(void **state)
{
	struct env *e = *state;
	struct ring *r = &e->r[0];
	uint64_t idx = 0, v;
	int sp[2], err = eventfd(0, EFD_CLOEXEC);
	struct wire_hdr h;
	struct pollfd p;
	struct buf b = {0x7000000000ull, 512, true}; /* outside memory */

	daemon_start(&e->d, NULL);
	env_open(e, 1, false, 64);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp),
			 0);
	assert_int_equal(
		fe_acked(&e->f, REQ_SET_BACKEND_REQ_FD, NULL, 0, &sp[1], 1), 0);
	close(sp[1]);
	assert_int_equal(fe_acked(&e->f, REQ_SET_VRING_ERR, &idx, 8, &err, 1),
			 0);
	ring_add(r, &b, 1);
	ring_kick(r);
	p = (struct pollfd){sp[0], POLLIN, 0};
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(sp[0], &h, sizeof(h)), sizeof(h));
	assert_int_equal(h.request, 2); /* BACKEND_CONFIG_CHANGE_MSG */
	assert_int_equal(h.flags & 3, 1);
	p = (struct pollfd){err, POLLIN, 0};
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(err, &v, 8), 8);
	assert_true(fe_get_u64(&e->f, REQ_GET_STATUS) &
		    VIRTIO_CONFIG_S_NEEDS_RESET);
	close(sp[0]);
	close(err);
}

int run_protocol_tests(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(handshake_offers_features_and_limits),
		T(blk_io_split_ring),
		T(blk_io_packed_ring),
		T(blk_io_on_two_queues),
		T(config_space_reads_and_writes),
		T(status_follows_qemu_sequence),
		T(memory_slots_add_and_remove),
		T(memory_table_change_restarts_running_rings),
		T(sealable_guest_memory_is_sealed_against_shrinking),
		T(unsealable_guest_memory_is_warned_about_once),
		T(dirty_log_marks_exactly_the_written_pages),
		T(dirty_log_packed_ring),
		T(get_vring_base_split),
		T(get_vring_base_packed),
		T(vring_enable_pauses_and_resumes),
		T(event_fds_replaced_while_running),
		T(reconnect_resets_the_device),
		T(sigterm_stops_promptly_after_inflight_io),
		T(sigterm_stops_while_a_frontend_drips_a_message),
		T(broken_ring_signals_error_and_config_change),
#undef T
	};

	return cmocka_run_group_tests_name("vhost-user protocol", tests, NULL,
					   NULL);
}
