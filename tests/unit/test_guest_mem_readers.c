/* Guest memory, continued: the mapper pass-through and its piece bound,
 * reader slots, and region removal racing reader threads (released only
 * after the reader left; never a torn table). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mem_fixture.h"
#include "virtiod/guest_mem.h"

struct fake_mapper {
	uint8_t page[2][4096];
	int translates, releases, maps, unmaps;
	unsigned released_n;
};

static int fake_translate(void *ctx, uint64_t gpa, uint64_t len,
			  enum vd_mem_access access, struct iovec *iov,
			  unsigned max_iov, unsigned *n_iov)
{
	struct fake_mapper *m = ctx;

	(void)access;
	m->translates++;
	if (gpa < 0x10000 || gpa + len > 0x12000) {
		*n_iov += 1; /* misbehave: the caller must restore it */
		return -EFAULT;
	}
	while (len) {
		uint64_t off = gpa - 0x10000, pg = off / 4096, in = off % 4096;
		uint64_t l = 4096 - in < len ? 4096 - in : len;

		if (*n_iov >= max_iov)
			return -ENOBUFS;
		iov[*n_iov].iov_base = &m->page[pg][in];
		iov[*n_iov].iov_len = l;
		(*n_iov)++;
		gpa += l;
		len -= l;
	}
	return 0;
}

static void fake_release(void *ctx, const struct iovec *iov, unsigned n)
{
	struct fake_mapper *m = ctx;

	(void)iov;
	m->releases++;
	m->released_n += n;
}

static void *fake_map(void *ctx, uint64_t gpa, uint64_t len,
		      enum vd_mem_access access)
{
	struct fake_mapper *m = ctx;

	(void)len;
	(void)access;
	m->maps++;
	return gpa == 0x10000 ? m->page[0] : NULL;
}

static void fake_unmap(void *ctx, void *hva, uint64_t len)
{
	(void)hva;
	(void)len;
	((struct fake_mapper *)ctx)->unmaps++;
}

/* vd_mem_max_pieces is what translation really gives at worst: checked
 * against every placement of every length the fake's two pages hold. */
static void max_pieces_bounds_every_placement_and_is_reached(void **state)
{
	static const struct vd_mem_ops ops = {.translate = fake_translate,
					      .split_unit = 4096};
	struct fake_mapper fm = {0};
	struct vd_mem *mem = vd_mem_new_mapper(&ops, &fm);
	struct vd_mem *table = vd_mem_new_table(1);

	(void)state;
	assert_non_null(mem);
	for (uint64_t len = 1; len <= 4097; len++) {
		unsigned bound = vd_mem_max_pieces(mem, len), worst = 0;

		for (uint64_t off = 0; off + len <= 8192; off++) {
			struct iovec iov[4];
			unsigned n = 0;

			assert_int_equal(vd_mem_translate(mem, 0x10000 + off,
							  len, VD_MEM_READ, iov,
							  4, &n),
					 0);
			assert_true(n <= bound);
			worst = n > worst ? n : worst;
		}
		assert_int_equal(worst, bound);
	}
	assert_int_equal(vd_mem_max_pieces(mem, 4098), 3);
	assert_int_equal(vd_mem_max_pieces(mem, 1 << 20), 257);
	/* A table splits only across regions: no bound, 1. */
	assert_int_equal(vd_mem_max_pieces(table, 1 << 20), 1);
	vd_mem_free(mem);
	vd_mem_free(table);
}

static void mapper_backend_is_delegated_to(void **state)
{
	static const struct vd_mem_ops ops = {fake_translate, fake_release,
					      fake_map, fake_unmap, 4096};
	struct fake_mapper fm = {0};
	struct vd_mem *mem = vd_mem_new_mapper(&ops, &fm);
	struct iovec iov[4];
	unsigned n = 0;
	uint8_t buf[100];

	(void)state;
	assert_non_null(mem);
	assert_null(vd_mem_new_mapper(NULL, NULL));
	assert_int_equal(
		vd_mem_translate(mem, 0x10ff0, 0x20, VD_MEM_WRITE, iov, 4, &n),
		0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[1].iov_base, fm.page[1]);
	vd_mem_release(mem, iov, n);
	assert_int_equal(fm.releases, 1);
	assert_int_equal(fm.released_n, 2);
	/* Errors restore the count even if the back end moved it. */
	n = 1;
	assert_int_equal(
		vd_mem_translate(mem, 0x20000, 1, VD_MEM_READ, iov, 4, &n),
		-EFAULT);
	assert_int_equal(n, 1);
	/* Wrap is refused before the back end sees it. */
	int before = fm.translates;
	assert_int_equal(
		vd_mem_translate(mem, UINT64_MAX, 2, VD_MEM_READ, iov, 4, &n),
		-EOVERFLOW);
	assert_int_equal(fm.translates, before);
	assert_ptr_equal(vd_mem_map_contig(mem, 0x10000, 16, VD_MEM_READ),
			 fm.page[0]);
	vd_mem_unmap_contig(mem, fm.page[0], 16);
	assert_int_equal(fm.maps, 1);
	assert_int_equal(fm.unmaps, 1);
	/* Copy helpers translate, copy and release. */
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(vd_mem_write(mem, 0x10fd0, buf, sizeof(buf)), 0);
	assert_int_equal(fm.page[1][0x33], 0xab);
	assert_int_equal(fm.releases, 2);
	/* Table-only calls are refused on a mapper. */
	struct vd_mem_region r = {.gpa = 0, .size = 16, .hva = buf};
	assert_int_equal(vd_mem_add_region(mem, &r), -EINVAL);
	assert_null(vd_mem_uaddr_to_hva(mem, 0, 1, NULL));
	assert_int_equal(vd_mem_region_count(mem), 0);
	assert_false(vd_mem_grace_pending(mem));
	vd_mem_free(mem);
}

static void reader_slots_are_limited(void **state)
{
	struct vd_mem *mem = vd_mem_new_table(2);

	(void)state;
	assert_int_equal(vd_mem_reader_register(mem), 0);
	assert_int_equal(vd_mem_reader_register(mem), 1);
	assert_int_equal(vd_mem_reader_register(mem), -ENOSPC);
	vd_mem_reader_unregister(mem, 0);
	assert_int_equal(vd_mem_reader_register(mem), 0);
	vd_mem_free(mem);
}

/* ------------------------------------------------------------ threads */

static void nap_us(long us)
{
	struct timespec ts = {.tv_sec = us / 1000000,
			      .tv_nsec = (us % 1000000) * 1000};
	nanosleep(&ts, NULL);
}

struct hold_reader {
	struct vd_mem *mem;
	atomic_int phase; /* 0 start, 1 inside, 2 may leave, 3 left */
};

static void *hold_reader_main(void *arg)
{
	struct hold_reader *r = arg;
	int slot = vd_mem_reader_register(r->mem);

	vd_mem_reader_enter(r->mem, slot);
	atomic_store(&r->phase, 1);
	while (atomic_load(&r->phase) != 2)
		nap_us(100);
	vd_mem_reader_leave(r->mem, slot);
	atomic_store(&r->phase, 3);
	vd_mem_reader_unregister(r->mem, slot);
	return NULL;
}

struct remover {
	struct vd_mem *mem;
	atomic_bool done;
};

static void *remover_main(void *arg)
{
	struct remover *w = arg;

	vd_mem_remove_region(w->mem, 0x2000, 0x1000);
	atomic_store(&w->done, true);
	return NULL;
}

static void removed_region_released_only_after_reader_leaves(void **state)
{
	struct mem_fixture f;
	struct hold_reader r;
	struct remover w;
	pthread_t rt, wt;

	(void)state;
	mf_init(&f, false);
	r.mem = w.mem = f.mem;
	atomic_init(&r.phase, 0);
	atomic_init(&w.done, false);
	assert_int_equal(pthread_create(&rt, NULL, hold_reader_main, &r), 0);
	while (atomic_load(&r.phase) != 1)
		nap_us(100);
	assert_int_equal(pthread_create(&wt, NULL, remover_main, &w), 0);
	/* The writer waits for the reader, saying so. */
	for (int i = 0; i < 200 && !vd_mem_grace_pending(f.mem); i++)
		nap_us(500);
	assert_true(vd_mem_grace_pending(f.mem));
	nap_us(20000);
	assert_false(atomic_load(&w.done));
	assert_int_equal(atomic_load(&mf_releases), 0);
	atomic_store(&r.phase, 2);
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	assert_true(atomic_load(&w.done));
	assert_int_equal(atomic_load(&mf_releases), 1);
	assert_false(vd_mem_grace_pending(f.mem));
	mf_fini(&f);
}

/* Hotplug region right after a fixed one, re-added with a new buffer each
 * generation and poisoned + freed by its release. */
#define HOT_GPA	 0x200000ULL
#define HOT_SIZE 4096
#define POISON	 0xdd

static void poison_release(struct vd_mem_region *r)
{
	memset(r->hva, POISON, r->size);
	free(r->hva);
	atomic_fetch_add(&mf_releases, 1);
}

struct churn_reader {
	struct vd_mem *mem;
	atomic_bool stop;
	unsigned seen, missing;
	const char *fail;
};

static void *churn_reader_main(void *arg)
{
	struct churn_reader *r = arg;
	int slot = vd_mem_reader_register(r->mem);
	unsigned round = 0;

	while (!atomic_load(&r->stop) && !r->fail) {
		vd_mem_reader_enter(r->mem, slot);
		/* Stay inside for a while now and then, so writers wait. */
		unsigned inner = round++ % 16 == 0 ? 200 : 1;
		for (unsigned k = 0; k < inner && !r->fail; k++) {
			struct iovec iov[4];
			unsigned n = 0;
			int rc = vd_mem_translate(r->mem, HOT_GPA - 16,
						  HOT_SIZE + 16, VD_MEM_READ,
						  iov, 4, &n);

			if (rc == -EFAULT) {
				r->missing++;
				continue;
			}
			if (rc || n != 2 || iov[0].iov_len != 16 ||
			    iov[1].iov_len != HOT_SIZE) {
				r->fail = "torn translation";
				break;
			}
			/* The whole buffer carries one generation byte. */
			const uint8_t *p = iov[1].iov_base;
			for (unsigned i = 0; i < HOT_SIZE; i++) {
				if (p[i] == POISON || p[i] != p[0]) {
					r->fail = "region released while read";
					break;
				}
			}
			r->seen++;
		}
		vd_mem_reader_leave(r->mem, slot);
	}
	vd_mem_reader_unregister(r->mem, slot);
	return NULL;
}

static void hotplug_with_concurrent_reader_never_tears(void **state)
{
	static uint8_t fixed[0x1000];
	struct vd_mem *mem = vd_mem_new_table(2);
	struct vd_mem_region base = {.gpa = HOT_GPA - sizeof(fixed),
				     .size = sizeof(fixed),
				     .hva = fixed};
	struct churn_reader r = {.mem = mem};
	const int gens = 1000;
	pthread_t rt;

	(void)state;
	atomic_store(&mf_releases, 0);
	assert_int_equal(vd_mem_add_region(mem, &base), 0);
	assert_int_equal(pthread_create(&rt, NULL, churn_reader_main, &r), 0);
	for (int g = 0; g < gens; g++) {
		uint8_t *b = malloc(HOT_SIZE);
		struct vd_mem_region hot = {.gpa = HOT_GPA,
					    .size = HOT_SIZE,
					    .hva = b,
					    .release = poison_release};

		assert_non_null(b);
		memset(b, 1 + g % 200, HOT_SIZE);
		assert_int_equal(vd_mem_add_region(mem, &hot), 0);
		nap_us(50);
		assert_int_equal(vd_mem_remove_region(mem, HOT_GPA, HOT_SIZE),
				 0);
		nap_us(50);
	}
	atomic_store(&r.stop, true);
	pthread_join(rt, NULL);
	assert_null(r.fail);
	assert_int_equal(atomic_load(&mf_releases), gens);
	/* Both states were seen, so the race was actually run. */
	assert_true(r.seen > 0);
	assert_true(r.missing > 0);
	vd_mem_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mapper_backend_is_delegated_to),
		cmocka_unit_test(
			max_pieces_bounds_every_placement_and_is_reached),
		cmocka_unit_test(reader_slots_are_limited),
		cmocka_unit_test(
			removed_region_released_only_after_reader_leaves),
		cmocka_unit_test(hotplug_with_concurrent_reader_never_tears),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
