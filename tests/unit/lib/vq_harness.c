/* The virtqueue test harness (vq_harness.h): a test driver and a vd_vq on
 * one test memory, hook recorders, raw malicious chains and the request
 * stress loops. Test-only. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "vq_harness.h"

void vqh_on_broken(void *ctx, struct vd_vq *vq, enum vd_vq_error err,
		   const char *reason)
{
	struct vqh *h = ctx;

	(void)vq;
	h->broken_calls++;
	h->broken_err = err;
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
}

void vqh_on_pop(void *ctx, const struct vd_vq_elem *e)
{
	(void)e;
	((struct vqh *)ctx)->pops++;
}

void vqh_on_push(void *ctx, const struct vd_vq_elem *e)
{
	(void)e;
	((struct vqh *)ctx)->pushes++;
}

void vqh_on_publish(void *ctx, uint16_t idx, bool wrap)
{
	struct vqh *h = ctx;

	h->publishes++;
	h->last_pub_idx = idx;
	h->last_pub_wrap = wrap;
}

void vqh_log_write(void *ctx, uint64_t gpa, uint64_t len)
{
	struct vqh *h = ctx;

	assert_true(h->n_log < VQH_MAX_LOG);
	h->log[h->n_log].gpa = gpa;
	h->log[h->n_log].len = len;
	h->n_log++;
}

/* Driver + config; the test may edit h->cfg before vqh_start. */
void vqh_init_mem(struct vqh *h, enum vd_vq_layout layout, uint16_t num,
		  bool event_idx, bool indirect, size_t mem_size,
		  unsigned nregions)
{
	memset(h, 0, sizeof(*h));
	h->m = td_mem_new(mem_size, nregions);
	h->q = td_vq_new(h->m, layout, num, event_idx, indirect);
	td_vq_fill_config(h->q, &h->cfg);
	h->hooks = (struct vd_vq_hooks){
		.ctx = h,
		.on_broken = vqh_on_broken,
		.on_pop = vqh_on_pop,
		.on_push = vqh_on_push,
		.on_publish = vqh_on_publish,
		.log_write = vqh_log_write,
	};
}

void vqh_init(struct vqh *h, enum vd_vq_layout layout, uint16_t num,
	      bool event_idx, bool indirect)
{
	vqh_init_mem(h, layout, num, event_idx, indirect, VQH_MEM_SIZE,
		     VQH_MEM_REGIONS);
}

void vqh_start(struct vqh *h)
{
	assert_int_equal(vd_vq_new(&h->cfg, td_mem_vd(h->m), &h->hooks,
				   "test q0", &h->vq),
			 0);
}

void vqh_new(struct vqh *h, enum vd_vq_layout layout, uint16_t num,
	     bool event_idx, bool indirect)
{
	vqh_init(h, layout, num, event_idx, indirect);
	vqh_start(h);
}

void vqh_fini(struct vqh *h)
{
	assert_true(td_mem_canary_ok(h->m));
	vd_vq_free(h->vq);
	td_vq_free(h->q);
	td_mem_free(h->m);
}

/* Every iovec of e lies inside test guest memory. */
void vqh_check_elem_in_memory(struct vqh *h, const struct vd_vq_elem *e)
{
	for (unsigned i = 0; i < e->n_read; i++)
		assert_true(td_mem_contains_hva(h->m, e->read_iov[i].iov_base,
						e->read_iov[i].iov_len));
	for (unsigned i = 0; i < e->n_write; i++)
		assert_true(td_mem_contains_hva(h->m, e->write_iov[i].iov_base,
						e->write_iov[i].iov_len));
}

/* The queue must be broken by the next pop, with err, reported once, and
 * memory outside the guest untouched. */
void vqh_expect_broken(struct vqh *h, enum vd_vq_error err)
{
	struct vd_vq_elem *e = NULL;
	unsigned inflight = vd_vq_inflight(h->vq);

	assert_int_equal(vd_vq_pop(h->vq, &e), 0);
	assert_true(vd_vq_broken(h->vq));
	assert_int_equal(vd_vq_last_error(h->vq), err);
	assert_int_equal(h->broken_calls, 1);
	assert_int_equal(h->broken_err, err);
	assert_true(h->reason[0] != '\0');
	assert_int_equal(vd_vq_inflight(h->vq), inflight);
	/* Broken stays broken and quiet. */
	assert_int_equal(vd_vq_pop(h->vq, &e), 0);
	assert_false(vd_vq_flush(h->vq));
	assert_int_equal(h->broken_calls, 1);
	assert_true(td_mem_canary_ok(h->m));
}

/* Writes descriptors and makes the chain starting at d[0] available. For
 * split, d[i] goes to descriptor index `first + i`. */
void vqh_raw_chain(struct vqh *h, uint16_t first, const struct vqh_raw *d,
		   unsigned n)
{
	if (td_vq_layout(h->q) == VD_VQ_SPLIT) {
		struct vring_desc *t = td_vq_split_desc(h->q);

		for (unsigned i = 0; i < n; i++) {
			struct vring_desc *x =
				&t[(first + i) % td_vq_num(h->q)];

			x->addr = htole64(d[i].addr);
			x->len = htole32(d[i].len);
			x->flags = htole16(d[i].flags);
			x->next = htole16(d[i].next);
		}
		td_vq_split_publish_raw(h->q, first);
	} else {
		struct vring_packed_desc p[64];

		assert_true(n <= 64);
		for (unsigned i = 0; i < n; i++) {
			p[i].addr = htole64(d[i].addr);
			p[i].len = htole32(d[i].len);
			p[i].flags = htole16(d[i].flags);
			p[i].id = htole16(d[i].id);
		}
		td_vq_packed_publish_raw(h->q, p, n);
	}
}

/* Writes an indirect table in the layout's descriptor format. */
uint64_t vqh_table(struct vqh *h, const struct vqh_raw *d, unsigned n)
{
	uint64_t gpa = td_mem_alloc(h->m, 16u * n + 16, 16);
	uint8_t *p = td_mem_hva(h->m, gpa);

	for (unsigned i = 0; i < n; i++) {
		if (td_vq_layout(h->q) == VD_VQ_SPLIT) {
			struct vring_desc x = {
				htole64(d[i].addr), htole32(d[i].len),
				htole16(d[i].flags), htole16(d[i].next)};
			memcpy(p + 16 * i, &x, 16);
		} else {
			struct vring_packed_desc x = {
				htole64(d[i].addr), htole32(d[i].len),
				htole16(d[i].id), htole16(d[i].flags)};
			memcpy(p + 16 * i, &x, 16);
		}
	}
	return gpa;
}

uint32_t vqh_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

/* Builds request `no` in slot memory at slot_gpa: the number in the first
 * 4 bytes, then readable pattern bytes, then writable buffers. */
void vqh_req_build(struct td_mem *m, struct vqh_req *r, uint32_t no,
		   uint64_t slot_gpa, uint64_t *rng, unsigned max_bufs)
{
	unsigned nr = 1 + vqh_rand(rng) % 3, nw = vqh_rand(rng) % 4;
	uint64_t at = slot_gpa;
	uint32_t off = 0;

	if (nr + nw > max_bufs)
		nw = max_bufs - nr;
	r->no = no;
	r->n = nr + nw;
	r->read_len = r->write_len = 0;
	for (unsigned i = 0; i < r->n; i++) {
		uint32_t len = 1 + vqh_rand(rng) % 500;

		if (i == 0 && len < 8)
			len = 8;
		r->bufs[i] = (struct td_buf){at, len, i >= nr};
		if (i < nr) {
			uint8_t *p = td_mem_hva(m, at);

			for (uint32_t k = 0; k < len; k++, off++)
				p[k] = off < 4 ? (uint8_t)(no >> (8 * off))
					       : td_pattern(no, off);
			r->read_len += len;
		} else {
			memset(td_mem_hva(m, at), 0, len);
			r->write_len += len;
		}
		at += len + (vqh_rand(rng) % 16);
	}
	/* Partial writes for some requests. */
	r->expect_written = no % 3 == 0 && r->write_len > 5 ? r->write_len - 5
							    : r->write_len;
	r->busy = true;
}

/* Device side of the stress: check the readable stream, write the reply.
 * Returns bytes written. */
uint32_t vqh_serve(const struct vd_vq_elem *e)
{
	uint32_t no = 0, off = 0, wlen, want;

	for (unsigned i = 0; i < e->n_read; i++) {
		const uint8_t *p = e->read_iov[i].iov_base;

		for (size_t k = 0; k < e->read_iov[i].iov_len; k++, off++) {
			if (off < 4)
				no |= (uint32_t)p[k] << (8 * off);
			else if (p[k] != td_pattern(no, off))
				return UINT32_MAX; /* caller fails */
		}
	}
	if (off != e->read_len)
		return UINT32_MAX;
	wlen = (uint32_t)e->write_len;
	want = no % 3 == 0 && wlen > 5 ? wlen - 5 : wlen;
	off = 0;
	for (unsigned i = 0; i < e->n_write && off < want; i++) {
		uint8_t *p = e->write_iov[i].iov_base;

		for (size_t k = 0; k < e->write_iov[i].iov_len && off < want;
		     k++, off++)
			p[k] = td_pattern(~no, off);
	}
	return want;
}

/* Driver side: the reply is what vqh_serve wrote. */
bool vqh_req_check(struct td_mem *m, const struct vqh_req *r, uint32_t len)
{
	uint32_t off = 0;

	if (len != r->expect_written)
		return false;
	for (unsigned i = 0; i < r->n; i++) {
		const uint8_t *p = td_mem_hva(m, r->bufs[i].gpa);

		if (!r->bufs[i].write)
			continue;
		for (uint32_t k = 0; k < r->bufs[i].len; k++, off++) {
			uint8_t want = off < len ? td_pattern(~r->no, off) : 0;

			if (p[k] != want)
				return false;
		}
	}
	return true;
}

/* Single-threaded stress: `total` requests through the queue, device
 * completing in order or in a random order, flushing at random points.
 * Checks data both ways and that every completion comes back once. */
void vqh_stress(struct vqh *h, uint32_t total, bool out_of_order,
		bool use_indirect, uint64_t seed)
{
	uint16_t num = td_vq_num(h->q);
	struct vqh_req *reqs = calloc(num, sizeof(*reqs));
	struct vd_vq_elem **held = calloc(num, sizeof(*held));
	uint64_t slots = td_mem_alloc(h->m, (size_t)num * VQH_SLOT_BYTES, 64);
	uint64_t rng = seed;
	uint32_t issued = 0, done = 0;
	unsigned n_held = 0, free_slot = 0;

	assert_non_null(reqs);
	assert_non_null(held);
	assert_true(slots != 0);
	uint32_t last_done = 0, stalled = 0;

	while (done < total) {
		/* Driver: add a few. */
		unsigned adds = vqh_rand(&rng) % 8;

		/* Every round has a fair chance to complete something: many
		 * rounds without progress mean completions are lost. */
		stalled = done == last_done ? stalled + 1 : 0;
		last_done = done;
		if (stalled > 10000)
			fail_msg("no completion for 10000 rounds (%u of %u "
				 "done)",
				 done, total);

		for (unsigned a = 0; a < adds && issued < total; a++) {
			struct vqh_req *r = NULL;
			unsigned s;
			bool ind;

			for (unsigned k = 0; k < num; k++) {
				s = (free_slot + k) % num;
				if (!reqs[s].busy) {
					r = &reqs[s];
					break;
				}
			}
			if (!r)
				break;
			vqh_req_build(h->m, r, issued,
				      slots + s * VQH_SLOT_BYTES, &rng, 7);
			ind = use_indirect && vqh_rand(&rng) % 2;
			int rc = td_vq_add(h->q, r->bufs, r->n, ind, r);
			if (rc == -ENOSPC) {
				r->busy = false;
				break;
			}
			assert_int_equal(rc, 0);
			free_slot = s + 1;
			issued++;
		}
		td_vq_kick_needed(h->q);

		/* Device: pop some. */
		unsigned pops = vqh_rand(&rng) % 8;
		for (unsigned p = 0; p < pops && n_held < num; p++) {
			struct vd_vq_elem *e;

			if (vd_vq_pop(h->vq, &e) != 1)
				break;
			vqh_check_elem_in_memory(h, e);
			held[n_held++] = e;
		}
		assert_false(vd_vq_broken(h->vq));

		/* Device: complete some, in order or not. */
		unsigned comps = vqh_rand(&rng) % 8;
		for (unsigned c = 0; c < comps && n_held; c++) {
			unsigned k = out_of_order ? vqh_rand(&rng) % n_held : 0;
			struct vd_vq_elem *e = held[k];
			uint32_t w = vqh_serve(e);

			assert_int_not_equal(w, UINT32_MAX);
			memmove(&held[k], &held[k + 1],
				(n_held - k - 1) * sizeof(*held));
			n_held--;
			vd_vq_push(h->vq, e, w);
			if (vqh_rand(&rng) % 3 == 0)
				vd_vq_flush(h->vq);
		}
		if (vqh_rand(&rng) % 2)
			vd_vq_flush(h->vq);

		/* Driver: collect. */
		for (;;) {
			void *tok;
			uint32_t len;
			int rc = td_vq_get_used(h->q, &tok, &len);

			assert_true(rc >= 0);
			if (rc == 0)
				break;
			struct vqh_req *r = tok;
			assert_true(r->busy);
			assert_true(vqh_req_check(h->m, r, len));
			r->busy = false;
			done++;
		}
	}
	assert_int_equal(n_held, 0);
	assert_int_equal(vd_vq_inflight(h->vq), 0);
	assert_int_equal(td_vq_inflight(h->q), 0);
	assert_int_equal(td_vq_num_free(h->q), num);
	assert_false(vd_vq_broken(h->vq));
	assert_true(td_mem_canary_ok(h->m));
	free(reqs);
	free(held);
}

double vqh_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The device on its own thread: pops, serves and pushes in a random order,
 * flushes; no cmocka asserts here (not thread-safe), failures recorded. */
void *vqh_device_thread(void *arg)
{
	struct vqh_thread *t = arg;
	struct vqh *h = t->h;
	uint16_t num = td_vq_num(h->q);
	struct vd_vq_elem **held = calloc(num, sizeof(*held));
	uint64_t rng = t->seed;
	uint32_t done = 0;
	unsigned n_held = 0;

	while (done < t->total && !atomic_load(&t->stop) && held) {
		struct vd_vq_elem *e;
		bool idle = true;

		while (n_held < num && vd_vq_pop(h->vq, &e) == 1) {
			held[n_held++] = e;
			idle = false;
			if (vqh_rand(&rng) % 4 == 0)
				break;
		}
		if (vd_vq_broken(h->vq)) {
			t->fail = "queue broke";
			atomic_store(&t->stop, true);
			break;
		}
		unsigned comps = n_held ? 1 + vqh_rand(&rng) % n_held : 0;
		for (unsigned c = 0; c < comps; c++) {
			unsigned k = vqh_rand(&rng) % n_held;
			uint32_t w;

			e = held[k];
			held[k] = held[--n_held];
			w = vqh_serve(e);
			if (w == UINT32_MAX) {
				t->fail = "device saw wrong request data";
				atomic_store(&t->stop, true);
				break;
			}
			vd_vq_push(h->vq, e, w);
			done++;
			idle = false;
		}
		vd_vq_flush(h->vq);
		if (idle)
			sched_yield();
	}
	free(held);
	return NULL;
}

/* Driver on the calling thread, device on another: `total` requests with
 * data checked both ways. Fails after 5 s without progress, not hang. */
void vqh_stress_threaded(struct vqh *h, uint32_t total, bool use_indirect,
			 uint64_t seed)
{
	uint16_t num = td_vq_num(h->q);
	struct vqh_req *reqs = calloc(num, sizeof(*reqs));
	uint64_t slots = td_mem_alloc(h->m, (size_t)num * VQH_SLOT_BYTES, 64);
	struct vqh_thread t = {.h = h, .total = total, .seed = seed ^ 0x9e37};
	uint64_t rng = seed;
	uint32_t issued = 0, done = 0;
	unsigned next_slot = 0;
	double last_progress = vqh_now();
	pthread_t th;

	assert_non_null(reqs);
	assert_true(slots != 0);
	assert_int_equal(pthread_create(&th, NULL, vqh_device_thread, &t), 0);
	const char *fail = NULL;

	while (!fail && done < total && !atomic_load(&t.stop)) {
		bool idle = true;

		if (vqh_now() - last_progress > 5) {
			fail = "no completion for 5 s";
			break;
		}

		while (issued < total && td_vq_inflight(h->q) < num) {
			struct vqh_req *r = &reqs[next_slot];
			int rc;

			/* Slots are reused in order: the driver has room
			 * only once the oldest one came back. */
			if (r->busy)
				break;
			vqh_req_build(h->m, r, issued,
				      slots + (uint64_t)next_slot *
						      VQH_SLOT_BYTES,
				      &rng, 7);
			rc = td_vq_add(h->q, r->bufs, r->n,
				       use_indirect && vqh_rand(&rng) % 2, r);
			if (rc) {
				r->busy = false;
				if (rc != -ENOSPC)
					fail = "driver could not add";
				break;
			}
			next_slot = (next_slot + 1) % num;
			issued++;
			idle = false;
		}
		for (;;) {
			void *tok;
			uint32_t len;
			int rc = td_vq_get_used(h->q, &tok, &len);

			if (rc <= 0) {
				if (rc)
					fail = "device returned a bad id";
				break;
			}
			struct vqh_req *r = tok;
			if (!r->busy || !vqh_req_check(h->m, r, len)) {
				fail = "wrong completion";
				break;
			}
			r->busy = false;
			done++;
			idle = false;
			last_progress = vqh_now();
		}
		if (idle)
			sched_yield();
	}
	/* Asserts only once the device thread is gone. */
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	if (fail || t.fail)
		fail_msg("driver: %s; device: %s (%u of %u done, %u issued)",
			 fail ? fail : "ok", t.fail ? t.fail : "ok", done,
			 total, issued);
	assert_int_equal(done, total);
	assert_int_equal(vd_vq_inflight(h->vq), 0);
	assert_true(td_mem_canary_ok(h->m));
	free(reqs);
}
