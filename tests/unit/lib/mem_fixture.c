/* The guest-memory fixture (mem_fixture.h). Test-only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mem_fixture.h"

atomic_int mf_releases;

void mf_count_release(struct vd_mem_region *r)
{
	(void)r;
	atomic_fetch_add(&mf_releases, 1);
}

void mf_init(struct mem_fixture *f, bool with_gap_region)
{
	static const uint64_t gpa[4] = {0x1000, 0x2000, 0x3000, 0x6000};
	static const uint64_t size[4] = {0x1000, 0x1000, 0x2000, 0x1000};
	unsigned n = with_gap_region ? 4 : 3;

	atomic_store(&mf_releases, 0);
	f->mem = vd_mem_new_table(4);
	assert_non_null(f->mem);
	for (unsigned i = 0; i < 4; i++) {
		f->buf[i] = malloc(size[i]);
		assert_non_null(f->buf[i]);
		memset(f->buf[i], 0x10 + i, size[i]);
		f->r[i] = (struct vd_mem_region){
			.gpa = gpa[i],
			.size = size[i],
			.hva = f->buf[i],
			.uaddr = 0x7f0000000000ULL + gpa[i],
			.release = mf_count_release,
			.fd = -1,
		};
	}
	assert_int_equal(vd_mem_set_regions(f->mem, f->r, n), 0);
	assert_int_equal(vd_mem_region_count(f->mem), n);
}

void mf_fini(struct mem_fixture *f)
{
	vd_mem_free(f->mem);
	for (unsigned i = 0; i < 4; i++)
		free(f->buf[i]);
}
