/* Notification suppression both ways: the device's "notify the driver?"
 * answer checked against the spec's rules (split EVENT_IDX over the index
 * wrap, NO_INTERRUPT, packed ENABLE/DISABLE/DESC), and what
 * enable/disable_notify leave in the ring for the driver's kick decision. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "vq_harness.h"

/* Adds n one-buffer requests; returns how many the driver took. */
static unsigned add_n(struct vqh *h, uint64_t buf, unsigned n)
{
	unsigned k;

	for (k = 0; k < n; k++) {
		struct td_buf b = {buf, 8, true};

		if (td_vq_add(h->q, &b, 1, false, NULL))
			break;
	}
	return k;
}

static unsigned pop_push_all(struct vqh *h)
{
	struct vd_vq_elem *e;
	unsigned n = 0;

	while (vd_vq_pop(h->vq, &e) == 1) {
		vd_vq_push(h->vq, e, 1);
		n++;
	}
	assert_false(vd_vq_broken(h->vq));
	return n;
}

static void collect_all(struct vqh *h)
{
	void *tok;
	uint32_t len;

	while (td_vq_get_used(h->q, &tok, &len) == 1)
		;
	assert_int_equal(td_vq_inflight(h->q), 0);
}

static void split_event_idx_notify_follows_vring_need_event(void **state)
{
	struct vqh h;
	uint64_t rng = 5, buf;
	unsigned checked = 0, notified = 0;

	(void)state;
	vqh_init(&h, VD_VQ_SPLIT, 64, true, false);
	td_vq_split_set_start(h.q, 65000);
	h.cfg.avail_idx = h.cfg.used_idx = 65000;
	vqh_start(&h);
	buf = td_mem_alloc(h.m, 64, 8);
	/* The driver leaves used_event alone; the test sets it. */
	td_vq_disable_cb(h.q);
	while (checked < 3000) {
		unsigned k = 1 + vqh_rand(&rng) % 12;
		uint16_t old = td_vq_split_used_idx(h.q), ev, new;
		bool got;

		assert_int_equal(add_n(&h, buf, k), k);
		assert_int_equal(pop_push_all(&h), k);
		/* Mostly near the batch (both edges), sometimes anywhere. */
		if (vqh_rand(&rng) % 8)
			ev = (uint16_t)(old - 3 + vqh_rand(&rng) % (k + 7));
		else
			ev = (uint16_t)vqh_rand(&rng);
		td_vq_set_used_event(h.q, ev);
		got = vd_vq_flush(h.vq);
		new = td_vq_split_used_idx(h.q);
		assert_int_equal(new, (uint16_t)(old + k));
		assert_int_equal(got, td_need_event(ev, new, old));
		/* Nothing new: never a notification. */
		td_vq_set_used_event(h.q, new);
		assert_false(vd_vq_flush(h.vq));
		notified += got;
		checked++;
		collect_all(&h);
	}
	/* The run crossed 2^16 and saw both answers often. */
	assert_true(td_vq_split_used_idx(h.q) < 65000);
	assert_true(notified > 300 && notified < 2700);
	vqh_fini(&h);
}

static void split_event_idx_notify_at_wrap_hand_checked(void **state)
{
	static const struct {
		uint16_t ev;
		bool notify;
	} cases[] = {
		/* Used entries 65534, 65535, 0, 1 are published. */
		{65534, true}, {65535, true},  {0, true},    {1, true},
		{2, false},    {65533, false}, {100, false}, {32768, false},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vqh h;
		uint64_t buf;

		vqh_init(&h, VD_VQ_SPLIT, 8, true, false);
		td_vq_split_set_start(h.q, 65534);
		h.cfg.avail_idx = h.cfg.used_idx = 65534;
		vqh_start(&h);
		buf = td_mem_alloc(h.m, 64, 8);
		td_vq_disable_cb(h.q);
		add_n(&h, buf, 4);
		pop_push_all(&h);
		td_vq_set_used_event(h.q, cases[i].ev);
		assert_int_equal(vd_vq_flush(h.vq), cases[i].notify);
		assert_int_equal(td_vq_split_used_idx(h.q), 2);
		vqh_fini(&h);
	}
}

static void split_no_interrupt_suppresses_without_event_idx(void **state)
{
	struct vqh h;
	uint64_t buf;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	buf = td_mem_alloc(h.m, 64, 8);
	td_vq_disable_cb(h.q); /* NO_INTERRUPT */
	add_n(&h, buf, 2);
	pop_push_all(&h);
	assert_false(vd_vq_flush(h.vq));
	collect_all(&h);
	td_vq_enable_cb(h.q);
	add_n(&h, buf, 2);
	pop_push_all(&h);
	assert_true(vd_vq_flush(h.vq));
	vqh_fini(&h);
}

static void split_event_idx_ignores_no_interrupt(void **state)
{
	struct vqh h;
	uint64_t buf;

	(void)state;
	/* §2.7.7.2: with EVENT_IDX the device ignores the flag. */
	vqh_new(&h, VD_VQ_SPLIT, 8, true, false);
	buf = td_mem_alloc(h.m, 64, 8);
	td_vq_set_avail_flags(h.q, VRING_AVAIL_F_NO_INTERRUPT);
	td_vq_set_used_event(h.q, 0);
	add_n(&h, buf, 1);
	pop_push_all(&h);
	assert_true(vd_vq_flush(h.vq));
	vqh_fini(&h);
}

static void split_disable_notify_sets_no_notify(void **state)
{
	struct vqh h;
	uint64_t buf;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 8, false, false);
	buf = td_mem_alloc(h.m, 64, 8);
	assert_int_equal(td_vq_used_flags(h.q), 0);
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	vd_vq_disable_notify(h.vq);
	assert_int_equal(td_vq_used_flags(h.q), VRING_USED_F_NO_NOTIFY);
	add_n(&h, buf, 1);
	assert_false(td_vq_kick_needed(h.q));
	/* Buffers arrived while disabled: enable says pop again. */
	assert_true(vd_vq_enable_notify(h.vq));
	assert_int_equal(td_vq_used_flags(h.q), 0);
	assert_int_equal(pop_push_all(&h), 2);
	assert_false(vd_vq_enable_notify(h.vq));
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	vqh_fini(&h);
}

static void split_event_idx_asks_kick_once_ring_is_drained(void **state)
{
	struct vqh h;
	struct vd_vq_elem *e;
	uint64_t buf;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 8, true, false);
	buf = td_mem_alloc(h.m, 64, 8);
	assert_int_equal(td_vq_avail_event(h.q), 0);
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	/* Device busy (not yet drained): more entries need no kick. */
	add_n(&h, buf, 1);
	assert_false(td_vq_kick_needed(h.q));
	assert_int_equal(pop_push_all(&h), 2);
	/* The pop that found the ring empty asked for entry 2. */
	assert_int_equal(td_vq_avail_event(h.q), 2);
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	/* Popping without draining leaves avail_event behind. */
	add_n(&h, buf, 1);
	assert_false(td_vq_kick_needed(h.q));
	assert_int_equal(vd_vq_pop(h.vq, &e), 1);
	vd_vq_push(h.vq, e, 0);
	add_n(&h, buf, 1);
	assert_false(td_vq_kick_needed(h.q));
	assert_int_equal(pop_push_all(&h), 2);
	assert_int_equal(td_vq_avail_event(h.q), 5);
	vqh_fini(&h);
}

static void split_event_idx_disable_and_enable_notify(void **state)
{
	struct vqh h;
	uint64_t buf;

	(void)state;
	vqh_new(&h, VD_VQ_SPLIT, 8, true, false);
	buf = td_mem_alloc(h.m, 64, 8);
	vd_vq_disable_notify(h.vq);
	for (int i = 0; i < 5; i++) {
		add_n(&h, buf, 1);
		assert_false(td_vq_kick_needed(h.q));
		/* Polling: the device drains but asks for no kick. */
		pop_push_all(&h);
		vd_vq_flush(h.vq);
		collect_all(&h);
	}
	assert_false(vd_vq_enable_notify(h.vq));
	assert_int_equal(td_vq_avail_event(h.q), 5);
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	vd_vq_disable_notify(h.vq);
	assert_true(vd_vq_enable_notify(h.vq));
	vqh_fini(&h);
}

static void packed_enable_and_disable_modes_decide_notify(void **state)
{
	struct vqh h;
	uint64_t buf;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 8, false, false);
	buf = td_mem_alloc(h.m, 64, 8);
	td_vq_set_driver_event(h.q, VRING_PACKED_EVENT_FLAG_DISABLE, 0, true);
	add_n(&h, buf, 2);
	pop_push_all(&h);
	assert_false(vd_vq_flush(h.vq));
	collect_all(&h);
	td_vq_set_driver_event(h.q, VRING_PACKED_EVENT_FLAG_ENABLE, 5, false);
	add_n(&h, buf, 2);
	pop_push_all(&h);
	assert_true(vd_vq_flush(h.vq));
	collect_all(&h);
	/* DESC without EVENT_IDX is not valid (§2.8.10): treated as ENABLE,
	 * even with an event offset that is not reached. */
	td_vq_set_driver_event(h.q, VRING_PACKED_EVENT_FLAG_DESC, 7, false);
	add_n(&h, buf, 1);
	pop_push_all(&h);
	assert_true(vd_vq_flush(h.vq));
	/* Nothing new: no notification whatever the mode. */
	td_vq_set_driver_event(h.q, VRING_PACKED_EVENT_FLAG_ENABLE, 0, false);
	assert_false(vd_vq_flush(h.vq));
	vqh_fini(&h);
}

/* Positions (pos, wrap) the used descriptors of the next flush cover. */
struct span {
	uint16_t pos[64];
	bool wrap[64];
	unsigned n;
};

static void packed_desc_mode_notifies_when_event_slot_is_used(void **state)
{
	struct vqh h;
	uint64_t rng = 9, buf;
	unsigned checked = 0, notified = 0;
	const uint16_t num = 10;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, num, true, false);
	buf = td_mem_alloc(h.m, 64, 8);
	td_vq_disable_cb(h.q); /* the test writes the event structure */
	while (checked < 3000) {
		struct span s = {.n = 0};
		uint16_t pos, na;
		bool wrap, naw, ev_wrap, expect, got;
		unsigned chains = 1 + vqh_rand(&rng) % 3, ev_off;

		td_vq_driver_pos(h.q, &na, &naw, &pos, &wrap);
		/* Chains of 1-3 descriptors: the device skips their slots. */
		for (unsigned c = 0; c < chains; c++) {
			unsigned len = 1 + vqh_rand(&rng) % 3;
			struct td_buf b[3] = {{buf, 8, false},
					      {buf + 8, 8, true},
					      {buf + 16, 8, true}};

			if (td_vq_add(h.q, b, len, false, NULL))
				break;
			for (unsigned k = 0; k < len; k++) {
				s.pos[s.n] = pos;
				s.wrap[s.n++] = wrap;
				if (++pos == num) {
					pos = 0;
					wrap = !wrap;
				}
			}
		}
		pop_push_all(&h);
		ev_off = vqh_rand(&rng) % num;
		ev_wrap = vqh_rand(&rng) % 2;
		expect = false;
		for (unsigned k = 0; k < s.n; k++)
			expect |= s.pos[k] == ev_off && s.wrap[k] == ev_wrap;
		td_vq_set_driver_event(h.q, VRING_PACKED_EVENT_FLAG_DESC,
				       (uint16_t)ev_off, ev_wrap);
		got = vd_vq_flush(h.vq);
		assert_int_equal(got, expect);
		notified += got;
		checked++;
		collect_all(&h);
	}
	assert_true(notified > 200 && notified < 2800);
	vqh_fini(&h);
}

static void packed_driver_enable_cb_gets_next_used_notified(void **state)
{
	struct vqh h;
	uint64_t buf;

	(void)state;
	/* Linux's driver: DESC at its next used position. */
	vqh_new(&h, VD_VQ_PACKED, 6, true, false);
	buf = td_mem_alloc(h.m, 64, 8);
	for (int i = 0; i < 20; i++) {
		td_vq_enable_cb(h.q);
		add_n(&h, buf, 1 + i % 4);
		pop_push_all(&h);
		assert_true(vd_vq_flush(h.vq));
		collect_all(&h);
	}
	vqh_fini(&h);
}

static void packed_disable_notify_writes_device_event(void **state)
{
	struct vqh h;
	struct vring_packed_desc_event *ev;
	uint64_t buf;

	(void)state;
	vqh_new(&h, VD_VQ_PACKED, 8, true, false);
	ev = td_vq_packed_device_event(h.q);
	buf = td_mem_alloc(h.m, 64, 8);
	assert_int_equal(le16toh(ev->flags), VRING_PACKED_EVENT_FLAG_ENABLE);
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	vd_vq_disable_notify(h.vq);
	assert_int_equal(le16toh(ev->flags), VRING_PACKED_EVENT_FLAG_DISABLE);
	add_n(&h, buf, 1);
	assert_false(td_vq_kick_needed(h.q));
	assert_true(vd_vq_enable_notify(h.vq));
	assert_int_equal(le16toh(ev->flags), VRING_PACKED_EVENT_FLAG_ENABLE);
	assert_int_equal(pop_push_all(&h), 2);
	assert_false(vd_vq_enable_notify(h.vq));
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	vqh_fini(&h);
}

/* A device short of buffers (a receive queue below its largest frame)
 * pops what there is, finds no more, gives it all back and waits: only a
 * buffer added after that may wake it, and the driver must kick for it.
 * Plain enable_notify asks for a kick at the entries given back, which
 * the driver has kicked for already: no kick would come, and its "pop
 * again" would have the device spin on the same too-few buffers. */
static void short_of_buffers(enum vd_vq_layout layout, bool event_idx)
{
	struct vd_vq_elem *e[4];
	struct vqh h;
	uint64_t buf;

	vqh_new(&h, layout, 8, event_idx, false);
	buf = td_mem_alloc(h.m, 64, 8);
	add_n(&h, buf, 3);
	for (int round = 0; round < 2; round++) {
		unsigned n = 3 + (unsigned)round;

		vd_vq_disable_notify(h.vq);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(vd_vq_pop(h.vq, &e[i]), 1);
		assert_int_equal(vd_vq_pop(h.vq, &e[3 + round]), 0);
		for (unsigned i = n; i-- > 0;)
			assert_int_equal(vd_vq_unpop(h.vq, e[i]), 0);
		assert_true(vd_vq_avail_pending(h.vq));
		if (round == 0) {
			assert_false(vd_vq_avail_more(h.vq));
			assert_false(vd_vq_enable_notify_more(h.vq));
			/* The next buffer is kicked for, and counts. */
			add_n(&h, buf, 1);
			assert_true(td_vq_kick_needed(h.q));
		} else {
			/* Added before notifications came back on. */
			add_n(&h, buf, 1);
			assert_false(td_vq_kick_needed(h.q));
			assert_true(vd_vq_enable_notify_more(h.vq));
		}
		assert_true(vd_vq_avail_more(h.vq));
	}
	/* Taking the chain past the frontier forgets it. */
	assert_int_equal(pop_push_all(&h), 5);
	assert_false(vd_vq_avail_more(h.vq));
	assert_false(vd_vq_enable_notify_more(h.vq));
	add_n(&h, buf, 1);
	assert_true(td_vq_kick_needed(h.q));
	vqh_fini(&h);
}

static void split_event_idx_short_of_buffers_asks_for_the_next(void **state)
{
	(void)state;
	short_of_buffers(VD_VQ_SPLIT, true);
}

static void split_short_of_buffers_asks_for_the_next(void **state)
{
	(void)state;
	short_of_buffers(VD_VQ_SPLIT, false);
}

static void packed_short_of_buffers_asks_for_the_next(void **state)
{
	(void)state;
	short_of_buffers(VD_VQ_PACKED, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			split_event_idx_notify_follows_vring_need_event),
		cmocka_unit_test(split_event_idx_notify_at_wrap_hand_checked),
		cmocka_unit_test(
			split_no_interrupt_suppresses_without_event_idx),
		cmocka_unit_test(split_event_idx_ignores_no_interrupt),
		cmocka_unit_test(split_disable_notify_sets_no_notify),
		cmocka_unit_test(
			split_event_idx_asks_kick_once_ring_is_drained),
		cmocka_unit_test(split_event_idx_disable_and_enable_notify),
		cmocka_unit_test(packed_enable_and_disable_modes_decide_notify),
		cmocka_unit_test(
			packed_desc_mode_notifies_when_event_slot_is_used),
		cmocka_unit_test(
			packed_driver_enable_cb_gets_next_used_notified),
		cmocka_unit_test(packed_disable_notify_writes_device_event),
		cmocka_unit_test(
			split_event_idx_short_of_buffers_asks_for_the_next),
		cmocka_unit_test(split_short_of_buffers_asks_for_the_next),
		cmocka_unit_test(packed_short_of_buffers_asks_for_the_next),
	};

	return cmocka_run_group_tests_name("virtqueue notify", tests, NULL,
					   NULL);
}
