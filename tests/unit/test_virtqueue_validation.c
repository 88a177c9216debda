/* Malformed chains common to both layouts: each breaks the queue with the
 * right error, reports it once and writes nothing outside guest memory.
 * Also the well-formed edge cases those checks must let through. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "log_capture.h"
#include "vq_harness.h"

static enum vd_vq_layout split_layout = VD_VQ_SPLIT;
static enum vd_vq_layout packed_layout = VD_VQ_PACKED;

#define LAYOUT(state) (*(enum vd_vq_layout *)*(state))
#define END	      (TD_GPA_BASE + VQH_MEM_SIZE)

static void one_desc(struct vqh *h, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct vqh_raw d = {.addr = addr, .len = len, .flags = flags};

	vqh_raw_chain(h, 0, &d, 1);
}

/* Each case on a fresh queue: one descriptor, expected error. */
static void expect_one_desc_error(enum vd_vq_layout l, bool indirect,
				  uint64_t addr, uint32_t len, uint16_t flags,
				  enum vd_vq_error err)
{
	struct vqh h;

	vqh_new(&h, l, 16, false, indirect);
	one_desc(&h, addr, len, flags);
	vqh_expect_broken(&h, err);
	vqh_fini(&h);
}

static void desc_outside_memory_marks_broken(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);

	expect_one_desc_error(l, false, 0, 16, 0, VD_VQ_ERR_ADDR);
	expect_one_desc_error(l, false, TD_GPA_BASE - 8, 16, 0, VD_VQ_ERR_ADDR);
	expect_one_desc_error(l, false, END - 8, 16, VRING_DESC_F_WRITE,
			      VD_VQ_ERR_ADDR);
	expect_one_desc_error(l, false, END, 1, VRING_DESC_F_WRITE,
			      VD_VQ_ERR_ADDR);
	/* 32-bit truncation of the address would land inside memory. */
	expect_one_desc_error(l, false, (TD_GPA_BASE << 1) + 64, 16, 0,
			      VD_VQ_ERR_ADDR);
}

static void desc_addr_wrap_marks_broken(void **state)
{
	expect_one_desc_error(LAYOUT(state), false, UINT64_MAX - 10, 100, 0,
			      VD_VQ_ERR_ADDR_WRAP);
	expect_one_desc_error(LAYOUT(state), false, UINT64_MAX, 1,
			      VRING_DESC_F_WRITE, VD_VQ_ERR_ADDR_WRAP);
}

static void readable_after_writable_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d[] = {
		{a, 16, VRING_DESC_F_NEXT, 1, 0},
		{a + 16, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2, 0},
		{a + 32, 16, 0, 0, 0},
	};
	vqh_raw_chain(&h, 0, d, 3);
	vqh_expect_broken(&h, VD_VQ_ERR_READ_AFTER_WRITE);
	vqh_fini(&h);
}

static void chain_over_4g_marks_broken(void **state)
{
	struct vqh h;

	vqh_new(&h, LAYOUT(state), 16, false, false);
	/* The whole memory, then a length that takes the total over 2^32:
	 * refused before the second buffer is even translated. */
	struct vqh_raw d[] = {
		{TD_GPA_BASE, VQH_MEM_SIZE, VRING_DESC_F_NEXT, 1, 0},
		{TD_GPA_BASE, UINT32_MAX, 0, 0, 0},
	};
	vqh_raw_chain(&h, 0, d, 2);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_LEN);
	vqh_fini(&h);
}

/* An indirect table of 1024 whole-memory buffers (one region, so one
 * iovec each), the last `last_len` long. */
static void big_chain(struct vqh *h, uint32_t last_len)
{
	static struct vqh_raw e[1024];

	for (unsigned i = 0; i < 1024; i++)
		e[i] = (struct vqh_raw){
			TD_GPA_BASE, i < 1023 ? VQH_MEM_SIZE : last_len,
			i < 1023 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1), 0};
	one_desc(h, vqh_table(h, e, 1024), 16 * 1024, VRING_DESC_F_INDIRECT);
}

static void chain_of_4g_minus_1_is_accepted_and_4g_is_not(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;

	/* §2.7.5.2: a chain carries at most 2^32 - 1 bytes... */
	vqh_init_mem(&h, LAYOUT(state), 16, false, true, VQH_MEM_SIZE, 1);
	h.cfg.max_iov = 1024;
	vqh_start(&h);
	big_chain(&h, VQH_MEM_SIZE - 1);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->read_len, UINT32_MAX);
	assert_int_equal(e->n_read, 1024);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);

	/* ...and one byte more breaks the queue. */
	vqh_init_mem(&h, LAYOUT(state), 16, false, true, VQH_MEM_SIZE, 1);
	h.cfg.max_iov = 1024;
	vqh_start(&h);
	big_chain(&h, VQH_MEM_SIZE);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_LEN);
	vqh_fini(&h);
}

/* The model's largest request (virtio-blk: seg_max x size_max) bounds a
 * chain: at the limit it pops, one byte over it breaks the queue, before
 * anything past the limit is translated. */
static void chain_over_max_chain_len_marks_broken(void **state)
{
	struct vqh_raw d[3] = {
		{TD_GPA_BASE, 4096, VRING_DESC_F_NEXT, 1, 0},
		{TD_GPA_BASE + 8192, 4096, VRING_DESC_F_NEXT, 2, 0},
		{TD_GPA_BASE + 16384, 4096, 0, 0, 0},
	};
	struct vd_vq_elem *e;
	struct vqh h;

	vqh_init_mem(&h, LAYOUT(state), 16, false, false, VQH_MEM_SIZE, 1);
	h.cfg.max_chain_len = 3 * 4096;
	vqh_start(&h);
	vqh_raw_chain(&h, 0, d, 3);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->read_len, 3 * 4096);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);

	vqh_init_mem(&h, LAYOUT(state), 16, false, false, VQH_MEM_SIZE, 1);
	h.cfg.max_chain_len = 3 * 4096 - 1;
	vqh_start(&h);
	vqh_raw_chain(&h, 0, d, 3);
	vqh_expect_broken(&h, VD_VQ_ERR_CHAIN_MAX);
	vqh_fini(&h);
}

static void segments_over_max_iov_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	vqh_init(&h, LAYOUT(state), 16, false, false);
	h.cfg.max_iov = 4;
	vqh_start(&h);
	a = td_mem_alloc(h.m, 256, 8);
	struct vqh_raw d[5];
	for (unsigned i = 0; i < 5; i++)
		d[i] = (struct vqh_raw){a + 16 * i, 16,
					i < 4 ? VRING_DESC_F_NEXT : 0,
					(uint16_t)(i + 1), 0};
	vqh_raw_chain(&h, 0, d, 5);
	vqh_expect_broken(&h, VD_VQ_ERR_IOV_BUDGET);
	vqh_fini(&h);
}

static void buffer_split_by_regions_over_max_iov_marks_broken(void **state)
{
	struct vqh h;

	vqh_init(&h, LAYOUT(state), 16, false, false);
	h.cfg.max_iov = 4;
	vqh_start(&h);
	/* One descriptor over all 5 regions needs 5 iovecs. */
	one_desc(&h, TD_GPA_BASE, VQH_MEM_SIZE, VRING_DESC_F_WRITE);
	vqh_expect_broken(&h, VD_VQ_ERR_IOV_BUDGET);
	vqh_fini(&h);
}

static void max_iov_segments_exactly_is_accepted(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	vqh_init(&h, LAYOUT(state), 16, false, false);
	h.cfg.max_iov = 4;
	vqh_start(&h);
	a = td_mem_alloc(h.m, 256, 8);
	struct vqh_raw d[4];
	for (unsigned i = 0; i < 4; i++)
		d[i] = (struct vqh_raw){
			a + 16 * i, 16,
			(i < 3 ? VRING_DESC_F_NEXT : 0) |
				(i >= 2 ? VRING_DESC_F_WRITE : 0),
			(uint16_t)(i + 1), 0};
	vqh_raw_chain(&h, 0, d, 4);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->n_read, 2);
	assert_int_equal(e->n_write, 2);
	assert_ptr_equal(e->write_iov[1].iov_base, td_mem_hva(h.m, a + 48));
	assert_int_equal(e->n_write_gpa, 2);
	assert_int_equal(e->write_gpa[0].gpa, a + 32);
	vd_vq_push(h.vq, e, 32);
	vqh_fini(&h);
}

static void indirect_table_bad_size_marks_broken(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);
	uint64_t t = TD_GPA_BASE + 4096;

	expect_one_desc_error(l, true, t, 0, VRING_DESC_F_INDIRECT,
			      VD_VQ_ERR_INDIRECT_SIZE);
	expect_one_desc_error(l, true, t, 24, VRING_DESC_F_INDIRECT,
			      VD_VQ_ERR_INDIRECT_SIZE);
	expect_one_desc_error(l, true, t, 8, VRING_DESC_F_INDIRECT,
			      VD_VQ_ERR_INDIRECT_SIZE);
	expect_one_desc_error(l, true, t, 16u * (VD_VQ_MAX_SIZE + 1),
			      VRING_DESC_F_INDIRECT, VD_VQ_ERR_INDIRECT_SIZE);
}

static void indirect_with_next_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw entry = {a, 16, 0, 0, 0};
	uint64_t t = vqh_table(&h, &entry, 1);
	struct vqh_raw d[] = {
		{t, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1, 0},
		{a + 16, 16, 0, 0, 0},
	};
	vqh_raw_chain(&h, 0, d, 2);
	vqh_expect_broken(&h, VD_VQ_ERR_INDIRECT_SIZE);
	vqh_fini(&h);
}

static void indirect_without_feature_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw entry = {a, 16, 0, 0, 0};
	one_desc(&h, vqh_table(&h, &entry, 1), 16, VRING_DESC_F_INDIRECT);
	vqh_expect_broken(&h, VD_VQ_ERR_INDIRECT_FEATURE);
	vqh_fini(&h);
}

static void indirect_table_outside_memory_marks_broken(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);

	expect_one_desc_error(l, true, 0, 32, VRING_DESC_F_INDIRECT,
			      VD_VQ_ERR_ADDR);
	expect_one_desc_error(l, true, END - 16, 32, VRING_DESC_F_INDIRECT,
			      VD_VQ_ERR_ADDR);
	expect_one_desc_error(l, true, UINT64_MAX - 15, 32,
			      VRING_DESC_F_INDIRECT, VD_VQ_ERR_ADDR_WRAP);
}

static void indirect_entry_outside_memory_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw entries[] = {
		{a, 16, VRING_DESC_F_NEXT, 1, 0},
		{END - 4, 16, VRING_DESC_F_WRITE, 0, 0},
	};
	one_desc(&h, vqh_table(&h, entries, 2), 32, VRING_DESC_F_INDIRECT);
	vqh_expect_broken(&h, VD_VQ_ERR_ADDR);
	vqh_fini(&h);
}

static void indirect_entry_readable_after_writable_marks_broken(void **state)
{
	struct vqh h;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, true);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw entries[] = {
		{a, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1, 0},
		{a + 16, 16, 0, 0, 0},
	};
	one_desc(&h, vqh_table(&h, entries, 2), 32, VRING_DESC_F_INDIRECT);
	vqh_expect_broken(&h, VD_VQ_ERR_READ_AFTER_WRITE);
	vqh_fini(&h);
}

/* Push of something the device never popped: nothing in the ring moves. */
static void push_of_element_not_popped_marks_broken(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);

	for (int variant = 0; variant < 3; variant++) {
		struct vqh h;
		struct vd_vq_elem *e, fake;
		uint8_t before[16 * 16 + 16];
		uint64_t a;
		void *tok;
		uint32_t len;

		vqh_new(&h, l, 16, false, false);
		a = td_mem_alloc(h.m, 64, 8);
		struct td_buf b = {a, 64, true};
		assert_int_equal(td_vq_add(h.q, &b, 1, false, &b), 0);
		assert_int_equal(vd_vq_pop(h.vq, &e), 1);
		if (variant == 2) {
			/* Double push: the first is fine. */
			vd_vq_push(h.vq, e, 4);
			vd_vq_flush(h.vq);
			assert_int_equal(td_vq_get_used(h.q, &tok, &len), 1);
		}
		/* Snapshot the rings the device writes. */
		memcpy(before,
		       l == VD_VQ_SPLIT ? (void *)td_vq_split_used(h.q)
					: (void *)td_vq_packed_desc(h.q),
		       sizeof(before));
		memset(&fake, 0, sizeof(fake));
		if (variant == 0)
			vd_vq_push(h.vq, &fake, 4);
		else if (variant == 1)
			vd_vq_push(h.vq, (struct vd_vq_elem *)((char *)e + 8),
				   4);
		else
			vd_vq_push(h.vq, e, 4);
		assert_true(vd_vq_broken(h.vq));
		assert_int_equal(vd_vq_last_error(h.vq), VD_VQ_ERR_PUSH);
		assert_int_equal(h.broken_calls, 1);
		assert_false(vd_vq_flush(h.vq));
		assert_memory_equal(before,
				    l == VD_VQ_SPLIT
					    ? (void *)td_vq_split_used(h.q)
					    : (void *)td_vq_packed_desc(h.q),
				    sizeof(before));
		assert_int_equal(td_vq_get_used(h.q, &tok, &len), 0);
		if (variant < 2) {
			/* The real element can still be given back. */
			assert_int_equal(vd_vq_inflight(h.vq), 1);
			vd_vq_push(h.vq, e, 4);
			assert_int_equal(vd_vq_inflight(h.vq), 0);
			assert_memory_equal(
				before,
				l == VD_VQ_SPLIT
					? (void *)td_vq_split_used(h.q)
					: (void *)td_vq_packed_desc(h.q),
				sizeof(before));
		}
		vqh_fini(&h);
	}
}

static void pop_on_broken_queue_returns_nothing(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, false);
	one_desc(&h, 0, 16, 0);
	vqh_expect_broken(&h, VD_VQ_ERR_ADDR);
	/* A good chain after the bad one is not served either. */
	a = td_mem_alloc(h.m, 64, 8);
	struct td_buf b = {a, 64, true};
	td_vq_add(h.q, &b, 1, false, NULL);
	assert_int_equal(vd_vq_pop(h.vq, &e), 0);
	assert_false(vd_vq_enable_notify(h.vq));
	vqh_fini(&h);
}

static void zero_length_descriptor_takes_no_iovec(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a;

	vqh_new(&h, LAYOUT(state), 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct vqh_raw d[] = {
		{a, 16, VRING_DESC_F_NEXT, 1, 0},
		{0, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2, 0},
		{a + 16, 8, VRING_DESC_F_WRITE, 0, 0},
	};
	vqh_raw_chain(&h, 0, d, 3);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->n_read, 1);
	assert_int_equal(e->n_write, 1);
	assert_int_equal(e->n_write_gpa, 1);
	assert_int_equal(e->write_len, 8);
	vd_vq_push(h.vq, e, 8);
	assert_false(vd_vq_broken(h.vq));
	vqh_fini(&h);
}

static void buffer_across_regions_gives_one_iovec_per_region(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	vqh_new(&h, LAYOUT(state), 16, false, false);
	uint64_t r1 = td_mem_region_gpa(h.m, 1), r2 = td_mem_region_gpa(h.m, 2);
	uint64_t start = r1 - 100;
	uint32_t len = (uint32_t)(r2 - r1) + 200;

	td_mem_fill(h.m, start, len, 7);
	one_desc(&h, start, len, 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->n_read, 3);
	assert_ptr_equal(e->read_iov[0].iov_base, td_mem_hva(h.m, start));
	assert_int_equal(e->read_iov[0].iov_len, 100);
	assert_ptr_equal(e->read_iov[1].iov_base, td_mem_hva(h.m, r1));
	assert_int_equal(e->read_iov[1].iov_len, r2 - r1);
	assert_ptr_equal(e->read_iov[2].iov_base, td_mem_hva(h.m, r2));
	assert_int_equal(e->read_iov[2].iov_len, 100);
	assert_int_equal(e->read_len, len);
	vd_vq_push(h.vq, e, 0);
	vqh_fini(&h);
}

static void indirect_table_across_regions_is_read_whole(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t r1, t, a;
	uint8_t *p;

	vqh_new(&h, LAYOUT(state), 16, false, true);
	a = td_mem_alloc(h.m, 256, 8);
	/* Table starting 24 bytes before a region boundary: entry 1 is
	 * split 8/8 across it. */
	r1 = td_mem_region_gpa(h.m, 1);
	t = r1 - 24;
	p = td_mem_hva(h.m, t);
	for (unsigned i = 0; i < 3; i++) {
		struct vqh_raw x = {a + 32 * i, 20 + i,
				    (uint16_t)(i < 2 ? VRING_DESC_F_NEXT : 0) |
					    (i == 2 ? VRING_DESC_F_WRITE : 0),
				    (uint16_t)(i + 1), 0};
		if (LAYOUT(state) == VD_VQ_SPLIT) {
			struct vring_desc d = {htole64(x.addr), htole32(x.len),
					       htole16(x.flags),
					       htole16(x.next)};
			memcpy(p + 16 * i, &d, 16);
		} else {
			struct vring_packed_desc d = {htole64(x.addr),
						      htole32(x.len), 0,
						      htole16(x.flags)};
			memcpy(p + 16 * i, &d, 16);
		}
	}
	one_desc(&h, t, 48, VRING_DESC_F_INDIRECT);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	assert_int_equal(e->n_read, 2);
	assert_int_equal(e->n_write, 1);
	assert_ptr_equal(e->read_iov[1].iov_base, td_mem_hva(h.m, a + 32));
	assert_int_equal(e->read_iov[1].iov_len, 21);
	assert_ptr_equal(e->write_iov[0].iov_base, td_mem_hva(h.m, a + 64));
	assert_int_equal(e->write_len, 22);
	assert_int_equal(e->ndescs, 1);
	vd_vq_push(h.vq, e, 22);
	vqh_fini(&h);
}

static void dirty_log_covers_written_bytes_and_used_entry(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t a, b;
	bool saw_used = false, saw_idx = false;

	vqh_new(&h, l, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	b = td_mem_alloc(h.m, 64, 8);
	struct td_buf bufs[] = {
		{a, 10, false}, {a + 16, 8, true}, {b, 40, true}};

	/* Logging off: nothing logged. */
	assert_int_equal(td_vq_add(h.q, bufs, 3, false, NULL), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 20);
	vd_vq_flush(h.vq);
	assert_int_equal(h.n_log, 0);

	vd_vq_set_logging(h.vq, true);
	assert_int_equal(td_vq_add(h.q, bufs, 3, false, NULL), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 20);
	vd_vq_flush(h.vq);
	/* Written: 8 bytes of the first writable buffer, 12 of the second,
	 * never the readable one; plus the used entry (and split: idx). */
	bool saw_a = false, saw_b = false;
	uint64_t used = td_vq_device_gpa(h.q);

	assert_int_equal(h.n_log, l == VD_VQ_SPLIT ? 4 : 3);
	for (unsigned i = 0; i < h.n_log; i++) {
		uint64_t g = h.log[i].gpa, n = h.log[i].len;

		saw_a |= g == a + 16 && n == 8;
		saw_b |= g == b && n == 12;
		if (l == VD_VQ_SPLIT) {
			/* Entry 1 of the used ring, then used->idx. */
			saw_used |= g == used + 4 + 8 && n == 8;
			saw_idx |= g == used + 2 && n == 2;
		} else {
			/* The first chain took ring slots 0-2, so the used
			 * descriptor is at position 3. */
			saw_used |= g == td_vq_desc_gpa(h.q) + 48 && n == 16;
			saw_idx = true;
		}
	}
	assert_true(saw_a);
	assert_true(saw_b);
	assert_true(saw_used);
	assert_true(saw_idx);

	/* Off again. */
	vd_vq_set_logging(h.vq, false);
	h.n_log = 0;
	assert_int_equal(td_vq_add(h.q, bufs, 3, false, NULL), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 20);
	vd_vq_flush(h.vq);
	assert_int_equal(h.n_log, 0);
	vqh_fini(&h);
}

static void hooks_see_pop_push_and_publish(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);
	struct vqh h;
	struct vd_vq_elem *e1, *e2;
	uint64_t a;

	vqh_new(&h, l, 16, false, false);
	a = td_mem_alloc(h.m, 64, 8);
	struct td_buf b[] = {{a, 8, false}, {a + 8, 8, true}};
	assert_int_equal(td_vq_add(h.q, b, 2, false, NULL), 0);
	assert_int_equal(td_vq_add(h.q, b, 1, false, NULL), 0);
	assert_int_equal(vd_vq_pop(h.vq, &e1), 1);
	assert_int_equal(vd_vq_pop(h.vq, &e2), 1);
	assert_int_equal(h.pops, 2);
	assert_int_not_equal(e1->slot, e2->slot);
	assert_true(e1->slot < 16 && e2->slot < 16);
	vd_vq_push(h.vq, e2, 0);
	vd_vq_push(h.vq, e1, 8);
	assert_int_equal(h.pushes, 2);
	assert_int_equal(h.publishes, 0);
	vd_vq_flush(h.vq);
	assert_int_equal(h.publishes, 1);
	/* split: used idx 2; packed: 3 ring slots used, position 3. */
	assert_int_equal(h.last_pub_idx, l == VD_VQ_SPLIT ? 2 : 3);
	if (l == VD_VQ_PACKED)
		assert_true(h.last_pub_wrap);
	/* Nothing new: no publish. */
	vd_vq_flush(h.vq);
	assert_int_equal(h.publishes, 1);
	vqh_fini(&h);
}

static void new_rejects_bad_config(void **state)
{
	enum vd_vq_layout l = LAYOUT(state);
	struct vqh h;
	struct vd_vq *vq = NULL;
	struct vd_vq_config c;

	vqh_init(&h, l, 16, false, false);
	c = h.cfg;
	c.num = 0;
	assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
			 -EINVAL);
	c = h.cfg;
	c.max_iov = 1;
	assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
			 -EINVAL);
	c = h.cfg;
	c.desc = (char *)c.desc + 8;
	assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
			 -EINVAL);
	c = h.cfg;
	c.device = (char *)c.device + 2;
	assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
			 -EINVAL);
	c = h.cfg;
	c.driver = NULL;
	assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
			 -EINVAL);
	if (l == VD_VQ_SPLIT) {
		c = h.cfg;
		c.num = 12; /* §2.7: power of two */
		assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
				 -EINVAL);
	} else {
		c = h.cfg;
		c.avail_idx = 16;
		assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
				 -EINVAL);
		c = h.cfg;
		c.num = 12; /* packed sizes need not be powers of two */
		assert_int_equal(vd_vq_new(&c, td_mem_vd(h.m), NULL, "t", &vq),
				 0);
		vd_vq_free(vq);
	}
	h.vq = NULL;
	vqh_fini(&h);
}

/* A driver that breaks a queue, resets the device and breaks the next one
 * as fast as it can: every break still reaches on_broken (the device goes
 * NEEDS_RESET), but the host's log gets the first few lines, not one per
 * break. */
static void repeated_breaks_are_rate_limited_in_the_log(void **state)
{
	struct vqh h;
	const char *log;

	vqh_init(&h, LAYOUT(state), 16, false, false);
	one_desc(&h, 0, 16, 0); /* outside guest memory */
	lc_begin();
	for (unsigned i = 0; i < 200; i++) {
		struct vd_vq_elem *e;

		vqh_start(&h);
		assert_int_equal(vd_vq_pop(h.vq, &e), 0);
		assert_true(vd_vq_broken(h.vq));
		vd_vq_free(h.vq);
		h.vq = NULL;
	}
	log = lc_end();
	assert_int_equal(h.broken_calls, 200);
	/* At most two 5-second windows' bursts; without the limit, 200. */
	assert_true(lc_count(log, "queue disabled") <= 20);
	vqh_fini(&h);
}

#define VALIDATION_TESTS(S)                                                    \
	cmocka_unit_test_prestate(desc_outside_memory_marks_broken, S),        \
		cmocka_unit_test_prestate(desc_addr_wrap_marks_broken, S),     \
		cmocka_unit_test_prestate(                                     \
			readable_after_writable_marks_broken, S),              \
		cmocka_unit_test_prestate(chain_over_4g_marks_broken, S),      \
		cmocka_unit_test_prestate(                                     \
			chain_of_4g_minus_1_is_accepted_and_4g_is_not, S),     \
		cmocka_unit_test_prestate(                                     \
			chain_over_max_chain_len_marks_broken, S),             \
		cmocka_unit_test_prestate(segments_over_max_iov_marks_broken,  \
					  S),                                  \
		cmocka_unit_test_prestate(                                     \
			buffer_split_by_regions_over_max_iov_marks_broken, S), \
		cmocka_unit_test_prestate(                                     \
			max_iov_segments_exactly_is_accepted, S),              \
		cmocka_unit_test_prestate(                                     \
			indirect_table_bad_size_marks_broken, S),              \
		cmocka_unit_test_prestate(indirect_with_next_marks_broken, S), \
		cmocka_unit_test_prestate(                                     \
			indirect_without_feature_marks_broken, S),             \
		cmocka_unit_test_prestate(                                     \
			indirect_table_outside_memory_marks_broken, S),        \
		cmocka_unit_test_prestate(                                     \
			indirect_entry_outside_memory_marks_broken, S),        \
		cmocka_unit_test_prestate(                                     \
			indirect_entry_readable_after_writable_marks_broken,   \
			S),                                                    \
		cmocka_unit_test_prestate(                                     \
			push_of_element_not_popped_marks_broken, S),           \
		cmocka_unit_test_prestate(pop_on_broken_queue_returns_nothing, \
					  S),                                  \
		cmocka_unit_test_prestate(                                     \
			zero_length_descriptor_takes_no_iovec, S),             \
		cmocka_unit_test_prestate(                                     \
			buffer_across_regions_gives_one_iovec_per_region, S),  \
		cmocka_unit_test_prestate(                                     \
			indirect_table_across_regions_is_read_whole, S),       \
		cmocka_unit_test_prestate(                                     \
			dirty_log_covers_written_bytes_and_used_entry, S),     \
		cmocka_unit_test_prestate(hooks_see_pop_push_and_publish, S),  \
		cmocka_unit_test_prestate(new_rejects_bad_config, S),          \
		cmocka_unit_test_prestate(                                     \
			repeated_breaks_are_rate_limited_in_the_log, S)

int main(void)
{
	const struct CMUnitTest split_tests[] = {
		VALIDATION_TESTS(&split_layout)};
	const struct CMUnitTest packed_tests[] = {
		VALIDATION_TESTS(&packed_layout)};
	int rc = cmocka_run_group_tests_name("virtqueue split", split_tests,
					     NULL, NULL);

	return rc | cmocka_run_group_tests_name("virtqueue packed",
						packed_tests, NULL, NULL);
}
