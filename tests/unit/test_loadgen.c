/* The load generator's own logic (bench/loadgen): latency buckets, the
 * seeded data pattern, and the driver side of the split ring it drives
 * (the vhost-user frontend library's, tests/lib/vhost-user-frontend).
 * Linked from their objects: vd-loadgen links nothing from the core. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "histogram.h"
#include "pattern.h"
#include "vuf_vq.h"

#define RING_ALIGN 4096u /* as vd-loadgen lays its rings out */

static void hist_buckets_tile_the_range_without_gaps(void **state)
{
	(void)state;
	for (unsigned b = 0; b + 1 < LG_HIST_BUCKETS; b++)
		assert_int_equal(lg_hist_bucket_low(b) +
					 lg_hist_bucket_width(b),
				 lg_hist_bucket_low(b + 1));
	uint64_t vals[] = {0,	      1,    63,	  64,	     65,
			   1000,      4095, 4096, 123456789, UINT64_MAX / 3,
			   UINT64_MAX};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		unsigned b = lg_hist_bucket(vals[i]);
		assert_true(b < LG_HIST_BUCKETS);
		assert_true(vals[i] >= lg_hist_bucket_low(b));
		assert_true(vals[i] - lg_hist_bucket_low(b) <
			    lg_hist_bucket_width(b));
	}
}

static void hist_percentiles_are_within_bucket_resolution(void **state)
{
	(void)state;
	static struct lg_hist h;
	memset(&h, 0, sizeof(h));
	assert_int_equal(lg_hist_percentile(&h, 50), 0);
	/* 1..100000 ns, uniform: p50 = 50000, p99 = 99000, p99.9 = 99900 */
	for (uint64_t v = 1; v <= 100000; v++)
		lg_hist_add(&h, v);
	double want[][2] = {{50, 50000}, {99, 99000}, {99.9, 99900}};
	for (int i = 0; i < 3; i++) {
		double got = (double)lg_hist_percentile(&h, want[i][0]);
		assert_true(got > want[i][1] * 0.97 && got < want[i][1] * 1.03);
	}
	assert_int_equal(h.max_ns, 100000);

	static struct lg_hist m;
	memset(&m, 0, sizeof(m));
	lg_hist_merge(&m, &h);
	lg_hist_merge(&m, &h);
	assert_int_equal(m.total, 200000);
	assert_int_equal(lg_hist_percentile(&m, 50),
			 lg_hist_percentile(&h, 50));
}

static void pattern_depends_only_on_position_and_seed(void **state)
{
	(void)state;
	static uint64_t big[8192 / 8], small[1024 / 8];
	lg_pattern_fill(big, 4096, sizeof(big), 7);
	/* The sectors at 4096+2048 look the same however they were filled. */
	lg_pattern_fill(small, 4096 + 2048, sizeof(small), 7);
	assert_memory_equal(small, (char *)big + 2048, sizeof(small));
	uint64_t bad = 0;
	assert_int_equal(lg_pattern_check(big, 4096, sizeof(big), 7, &bad), 0);
	/* The same bytes are wrong for another seed or another place. */
	assert_int_equal(lg_pattern_check(big, 4096, sizeof(big), 8, &bad), -1);
	assert_int_equal(lg_pattern_check(big, 4608, sizeof(big), 7, &bad), -1);
	assert_int_equal(bad, 4608);
}

static void pattern_check_names_the_first_wrong_word(void **state)
{
	(void)state;
	static uint64_t buf[4096 / 8];
	lg_pattern_fill(buf, 1 << 20, sizeof(buf), 1);
	((uint8_t *)buf)[1000] ^= 0x10;
	uint64_t bad = 0;
	assert_int_equal(lg_pattern_check(buf, 1 << 20, sizeof(buf), 1, &bad),
			 -1);
	assert_int_equal(bad, (1 << 20) + 1000 / 8 * 8);
	assert_true(buf[1000 / 8] != lg_pattern_word(bad, 1));
	/* A zeroed sector (a backend that returned nothing) is caught too. */
	lg_pattern_fill(buf, 0, sizeof(buf), 1);
	memset(&buf[0], 0, LG_SECTOR);
	assert_int_equal(lg_pattern_check(buf, 0, sizeof(buf), 1, &bad), -1);
	assert_int_equal(bad, 0);
}

/* A device stand-in: publishes a used entry the way a backend would. */
static void device_push_used(struct vuf_vq *vr, uint32_t id, uint32_t len)
{
	uint16_t idx = vr->used->idx;
	vr->used->ring[idx & (vr->num - 1)] =
		(struct vring_used_elem){.id = id, .len = len};
	__atomic_store_n(&vr->used->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

/* A zeroed ring of num laid out as vd-loadgen does, without chain
 * bookkeeping (the load generator keeps its own chains). */
static void *ring_mem(struct vuf_vq *vr, unsigned num, bool event_idx)
{
	struct vuf_vq_layout l = vuf_vq_layout(false, num, RING_ALIGN);
	char *m = aligned_alloc(RING_ALIGN, l.bytes);
	assert_non_null(m);
	memset(m, 0, l.bytes);
	assert_int_equal(vuf_vq_init(vr, false, num, m + l.desc, m + l.driver,
				     m + l.device, event_idx, false),
			 0);
	return m;
}

static void vring_kicks_only_when_event_idx_is_crossed(void **state)
{
	(void)state;
	struct vuf_vq vr;
	void *m = ring_mem(&vr, 16, true);
	assert_false(vuf_vq_publish(&vr)); /* nothing new: no kick */
	vuf_vq_add_head(&vr, 0);
	assert_true(vuf_vq_publish(&vr)); /* avail_event 0, idx 0 -> 1 */
	assert_int_equal(vr.avail->idx, 1);
	assert_int_equal(vr.avail->ring[0], 0);
	/* Device asks to be kicked once avail idx passes 3. */
	*vuf_vq_avail_event(&vr) = 3;
	vuf_vq_add_head(&vr, 3);
	assert_false(vuf_vq_publish(&vr)); /* 1 -> 2 */
	vuf_vq_add_head(&vr, 6);
	vuf_vq_add_head(&vr, 9);
	assert_true(vuf_vq_publish(&vr)); /* 2 -> 4 crosses 3 */
	free(m);
}

static void vring_without_event_idx_obeys_no_notify(void **state)
{
	(void)state;
	struct vuf_vq vr;
	void *m = ring_mem(&vr, 8, false);
	vr.used->flags = VRING_USED_F_NO_NOTIFY;
	vuf_vq_add_head(&vr, 0);
	assert_false(vuf_vq_publish(&vr));
	vr.used->flags = 0;
	vuf_vq_add_head(&vr, 3);
	assert_true(vuf_vq_publish(&vr));
	free(m);
}

static void vring_reaps_in_order_and_arm_sees_pending_entries(void **state)
{
	(void)state;
	struct vuf_vq vr;
	uint32_t id = 0, len = 0; /* gcc 12 for aarch64 warns otherwise */
	void *m = ring_mem(&vr, 4, true);
	assert_int_equal(vuf_vq_reap(&vr, &id, &len), 0);
	assert_true(vuf_vq_arm(&vr)); /* empty: safe to sleep */
	/* Wrap the 16-bit index space inside a 4-entry ring. */
	for (unsigned i = 0; i < 70000; i++) {
		device_push_used(&vr, i % 4 * 3, i);
		assert_false(vuf_vq_arm(&vr)); /* pending: do not sleep */
		assert_int_equal(vuf_vq_reap(&vr, &id, &len), 1);
		assert_int_equal(id, i % 4 * 3);
		assert_int_equal(len, i);
	}
	assert_true(vuf_vq_arm(&vr));
	/* used_event tells the device where we stand. */
	assert_int_equal(vr.avail->ring[4], (uint16_t)70000);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hist_buckets_tile_the_range_without_gaps),
		cmocka_unit_test(hist_percentiles_are_within_bucket_resolution),
		cmocka_unit_test(pattern_depends_only_on_position_and_seed),
		cmocka_unit_test(pattern_check_names_the_first_wrong_word),
		cmocka_unit_test(vring_kicks_only_when_event_idx_is_crossed),
		cmocka_unit_test(vring_without_event_idx_obeys_no_notify),
		cmocka_unit_test(
			vring_reaps_in_order_and_arm_sees_pending_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
