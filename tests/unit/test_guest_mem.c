/* Guest memory: translation across regions and its refusals (outside
 * memory, wrapping, over budget), the translation hint, and table edits
 * (checks, overlaps, removal, replacement, contiguous maps, frontend
 * addresses, reads and writes across regions). */
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

static void translate_within_one_region_gives_one_iovec(void **state)
{
	struct mem_fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	mf_init(&f, false);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x3010, 0x100, VD_MEM_READ, iov, 4, &n),
		0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, f.buf[2] + 0x10);
	assert_int_equal(iov[0].iov_len, 0x100);
	/* A whole region, first and last byte. */
	n = 0;
	assert_int_equal(vd_mem_translate(f.mem, 0x1000, 0x1000, VD_MEM_WRITE,
					  iov, 4, &n),
			 0);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(
		vd_mem_translate(f.mem, 0x4fff, 1, VD_MEM_READ, iov, 4, &n), 0);
	assert_ptr_equal(iov[0].iov_base, f.buf[2] + 0x1fff);
	mf_fini(&f);
}

static void translate_across_regions_gives_one_iovec_each(void **state)
{
	struct mem_fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	mf_init(&f, false);
	assert_int_equal(vd_mem_translate(f.mem, 0x1f00, 0x1200, VD_MEM_READ,
					  iov, 4, &n),
			 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[0].iov_base, f.buf[0] + 0xf00);
	assert_int_equal(iov[0].iov_len, 0x100);
	assert_ptr_equal(iov[1].iov_base, f.buf[1]);
	assert_int_equal(iov[1].iov_len, 0x1000);
	assert_ptr_equal(iov[2].iov_base, f.buf[2]);
	assert_int_equal(iov[2].iov_len, 0x100);
	mf_fini(&f);
}

/* The hint is a shortcut, never a different answer: a hit, a miss, a
 * range running past the hinted region, a hint left stale (or out of
 * range) by a table change, and the budget all behave as without it. */
static void translate_hint_gives_the_same_answers(void **state)
{
	struct mem_fixture f;
	struct vd_mem_hint h = {0};
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	mf_init(&f, true);
	/* miss (hint 0), then the hint follows the hit */
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x3010, 0x100,
						 VD_MEM_READ, iov, 4, &n),
			 0);
	assert_int_equal(h.region, 2);
	assert_ptr_equal(iov[0].iov_base, f.buf[2] + 0x10);
	n = 0;
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x4f00, 0x100,
						 VD_MEM_WRITE, iov, 4, &n),
			 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, f.buf[2] + 0x1f00);
	/* past the end of the hinted region into a gap: refused */
	n = 0;
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x4f00, 0x200,
						 VD_MEM_READ, iov, 4, &n),
			 -EFAULT);
	assert_int_equal(n, 0);
	/* before the hinted region: crosses two regions */
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x1f00, 0x1200,
						 VD_MEM_READ, iov, 4, &n),
			 0);
	assert_int_equal(n, 3);
	/* budget: a hit with no room left */
	h.region = 0;
	n = 4;
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x1000, 16,
						 VD_MEM_READ, iov, 4, &n),
			 -ENOBUFS);
	assert_int_equal(n, 4);
	/* wrapping 2^64 from inside the hinted region */
	n = 0;
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x1000, ~0ull,
						 VD_MEM_READ, iov, 4, &n),
			 -EOVERFLOW);
	/* the table shrinks under a hint that names a region now gone */
	h.region = 3;
	assert_int_equal(vd_mem_set_regions(f.mem, &f.r[0], 1), 0);
	n = 0;
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x6000, 1,
						 VD_MEM_READ, iov, 4, &n),
			 -EFAULT);
	assert_int_equal(vd_mem_translate_hinted(f.mem, &h, 0x1010, 1,
						 VD_MEM_READ, iov, 4, &n),
			 0);
	assert_ptr_equal(iov[0].iov_base, f.buf[0] + 0x10);
	assert_int_equal(h.region, 0);
	mf_fini(&f);
}

static void translate_outside_memory_is_efault(void **state)
{
	static const struct {
		uint64_t gpa, len;
	} bad[] = {
		{0, 1},		  {0xfff, 2},	    {0x5000, 1},
		{0x4ff0, 0x20},	  {0x5800, 0x100},  {0x4ff0, 0x1020},
		{0x6ff0, 0x20},	  {0x1000, 0x6000}, {0x7000, 1},
		{0x100001000, 1}, /* truncated to 32 bits it would be inside */
	};
	static uint8_t scratch[0x8000];
	struct mem_fixture f;
	struct iovec iov[8];

	(void)state;
	mf_init(&f, true);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned n = 1;

		assert_int_equal(vd_mem_translate(f.mem, bad[i].gpa, bad[i].len,
						  VD_MEM_READ, iov, 8, &n),
				 -EFAULT);
		assert_int_equal(n, 1);
		assert_int_equal(
			vd_mem_read(f.mem, bad[i].gpa, scratch, bad[i].len),
			-EFAULT);
	}
	/* The gap region itself is fine. */
	unsigned n = 0;
	assert_int_equal(vd_mem_translate(f.mem, 0x6000, 0x1000, VD_MEM_READ,
					  iov, 8, &n),
			 0);
	mf_fini(&f);

	/* An empty table has no memory at all. */
	struct vd_mem *empty = vd_mem_new_table(1);
	n = 0;
	assert_int_equal(vd_mem_translate(empty, 0, 1, VD_MEM_READ, iov, 8, &n),
			 -EFAULT);
	vd_mem_free(empty);
}

static void translate_wrapping_2_64_is_eoverflow(void **state)
{
	struct mem_fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	mf_init(&f, false);
	assert_int_equal(
		vd_mem_translate(f.mem, UINT64_MAX, 2, VD_MEM_READ, iov, 4, &n),
		-EOVERFLOW);
	assert_int_equal(vd_mem_translate(f.mem, 0x1000, UINT64_MAX,
					  VD_MEM_READ, iov, 4, &n),
			 -EOVERFLOW);
	/* Ending exactly at 2^64 is past every region too. */
	assert_int_equal(
		vd_mem_translate(f.mem, UINT64_MAX, 1, VD_MEM_READ, iov, 4, &n),
		-EOVERFLOW);
	assert_int_equal(n, 0);
	assert_null(vd_mem_map_contig(f.mem, 0x1000, UINT64_MAX, VD_MEM_READ));
	mf_fini(&f);
}

static void translate_over_budget_is_enobufs_and_keeps_count(void **state)
{
	struct mem_fixture f;
	struct iovec iov[4];
	unsigned n;

	(void)state;
	mf_init(&f, false);
	n = 0;
	assert_int_equal(vd_mem_translate(f.mem, 0x1f00, 0x1200, VD_MEM_READ,
					  iov, 2, &n),
			 -ENOBUFS);
	assert_int_equal(n, 0);
	n = 1;
	assert_int_equal(vd_mem_translate(f.mem, 0x1f00, 0x1200, VD_MEM_READ,
					  iov, 3, &n),
			 -ENOBUFS);
	assert_int_equal(n, 1);
	/* Exactly enough. */
	assert_int_equal(vd_mem_translate(f.mem, 0x1f00, 0x1200, VD_MEM_READ,
					  iov, 4, &n),
			 0);
	assert_int_equal(n, 4);
	assert_ptr_equal(iov[1].iov_base, f.buf[0] + 0xf00);
	mf_fini(&f);
}

static void translate_zero_length_yields_nothing(void **state)
{
	struct mem_fixture f;
	struct iovec iov[1];
	unsigned n = 0;

	(void)state;
	mf_init(&f, false);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x1000, 0, VD_MEM_READ, iov, 1, &n), 0);
	assert_int_equal(n, 0);
	mf_fini(&f);
}

static void region_check_rejects_bad_regions(void **state)
{
	uint8_t b[16];
	struct vd_mem_region ok = {.gpa = 0x1000, .size = 16, .hva = b};
	struct vd_mem_region r;

	(void)state;
	assert_int_equal(vd_mem_region_check(&ok), 0);
	r = ok;
	r.size = 0;
	assert_int_equal(vd_mem_region_check(&r), -EINVAL);
	r = ok;
	r.gpa = UINT64_MAX - 8;
	assert_int_equal(vd_mem_region_check(&r), -EINVAL);
	r = ok;
	r.gpa = UINT64_MAX - 15; /* ends exactly at 2^64 */
	assert_int_equal(vd_mem_region_check(&r), -EINVAL);
	r = ok;
	r.uaddr = UINT64_MAX - 8;
	assert_int_equal(vd_mem_region_check(&r), -EINVAL);
	r = ok;
	r.hva = NULL;
	assert_int_equal(vd_mem_region_check(&r), -EINVAL);
}

static void add_region_overlap_is_refused_and_changes_nothing(void **state)
{
	struct mem_fixture f;
	struct vd_mem_region r;
	uint8_t b[0x1000];

	(void)state;
	mf_init(&f, false);
	r = (struct vd_mem_region){.gpa = 0x4800,
				   .size = 0x1000,
				   .hva = b,
				   .release = mf_count_release};
	assert_int_equal(vd_mem_add_region(f.mem, &r), -EEXIST);
	r.gpa = 0x800;
	assert_int_equal(vd_mem_add_region(f.mem, &r), -EEXIST);
	r.size = 0;
	assert_int_equal(vd_mem_add_region(f.mem, &r), -EINVAL);
	assert_int_equal(vd_mem_region_count(f.mem), 3);
	assert_int_equal(atomic_load(&mf_releases), 0);
	/* Adjacent, below the first: fine, and lookups still sorted. */
	r.size = 0x800;
	assert_int_equal(vd_mem_add_region(f.mem, &r), 0);
	struct iovec iov[4];
	unsigned n = 0;
	assert_int_equal(
		vd_mem_translate(f.mem, 0xff0, 0x20, VD_MEM_READ, iov, 4, &n),
		0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, b + 0x7f0);
	assert_ptr_equal(iov[1].iov_base, f.buf[0]);
	mf_fini(&f);
	/* vd_mem_free released all four. */
	assert_int_equal(atomic_load(&mf_releases), 4);
}

static void add_region_past_table_size_is_enospc(void **state)
{
	struct vd_mem *mem = vd_mem_new_table(1);
	static uint8_t b[16];

	(void)state;
	for (unsigned i = 0; i < VD_MEM_MAX_REGIONS; i++) {
		struct vd_mem_region r = {.gpa = 0x10000 + 32 * (uint64_t)i,
					  .size = 16,
					  .hva = b};
		assert_int_equal(vd_mem_add_region(mem, &r), 0);
	}
	struct vd_mem_region r = {.gpa = 0, .size = 16, .hva = b};
	assert_int_equal(vd_mem_add_region(mem, &r), -ENOSPC);
	assert_int_equal(vd_mem_region_count(mem), VD_MEM_MAX_REGIONS);
	/* The last one added is found by the binary search. */
	struct iovec iov;
	unsigned n = 0;
	assert_int_equal(
		vd_mem_translate(mem, 0x10000 + 32 * (VD_MEM_MAX_REGIONS - 1),
				 16, VD_MEM_READ, &iov, 1, &n),
		0);
	n = 0;
	assert_int_equal(vd_mem_translate(mem, 0x10000 + 16, 1, VD_MEM_READ,
					  &iov, 1, &n),
			 -EFAULT);
	vd_mem_free(mem);
}

static void remove_region_needs_exact_match_and_releases_once(void **state)
{
	struct mem_fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	mf_init(&f, false);
	assert_int_equal(vd_mem_remove_region(f.mem, 0x2000, 0x800), -ENOENT);
	assert_int_equal(vd_mem_remove_region(f.mem, 0x2800, 0x800), -ENOENT);
	assert_int_equal(atomic_load(&mf_releases), 0);
	assert_int_equal(vd_mem_remove_region(f.mem, 0x2000, 0x1000), 0);
	assert_int_equal(atomic_load(&mf_releases), 1);
	assert_int_equal(vd_mem_region_count(f.mem), 2);
	/* A hole now: crossing it fails, the neighbours still work. */
	assert_int_equal(
		vd_mem_translate(f.mem, 0x1f00, 0x200, VD_MEM_READ, iov, 4, &n),
		-EFAULT);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x3000, 0x10, VD_MEM_READ, iov, 4, &n),
		0);
	assert_ptr_equal(iov[0].iov_base, f.buf[2]);
	mf_fini(&f);
	assert_int_equal(atomic_load(&mf_releases), 3);
}

static void set_regions_replaces_table_and_releases_old(void **state)
{
	struct mem_fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	mf_init(&f, false);
	/* Overlapping input: refused, nothing released, table unchanged. */
	struct vd_mem_region bad[2] = {f.r[3], f.r[3]};
	assert_int_equal(vd_mem_set_regions(f.mem, bad, 2), -EEXIST);
	assert_int_equal(atomic_load(&mf_releases), 0);
	assert_int_equal(vd_mem_region_count(f.mem), 3);
	/* Unsorted input is sorted. */
	struct vd_mem_region two[2] = {f.r[3], f.r[0]};
	assert_int_equal(vd_mem_set_regions(f.mem, two, 2), 0);
	assert_int_equal(atomic_load(&mf_releases), 3);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x2000, 1, VD_MEM_READ, iov, 4, &n),
		-EFAULT);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x6000, 1, VD_MEM_READ, iov, 4, &n), 0);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x1000, 1, VD_MEM_READ, iov, 4, &n), 0);
	assert_ptr_equal(iov[0].iov_base, f.buf[3]);
	assert_ptr_equal(iov[1].iov_base, f.buf[0]);
	mf_fini(&f);
	assert_int_equal(atomic_load(&mf_releases), 5);
}

static void map_contig_only_inside_one_region(void **state)
{
	struct mem_fixture f;

	(void)state;
	mf_init(&f, false);
	assert_ptr_equal(vd_mem_map_contig(f.mem, 0x3800, 0x800, VD_MEM_READ),
			 f.buf[2] + 0x800);
	assert_ptr_equal(vd_mem_map_contig(f.mem, 0x3000, 0x2000, VD_MEM_READ),
			 f.buf[2]);
	assert_null(vd_mem_map_contig(f.mem, 0x3000, 0x2001, VD_MEM_READ));
	assert_null(vd_mem_map_contig(f.mem, 0x1ff0, 0x20, VD_MEM_READ));
	assert_null(vd_mem_map_contig(f.mem, 0x0, 0x10, VD_MEM_READ));
	assert_null(vd_mem_map_contig(f.mem, 0x1000, 0, VD_MEM_READ));
	vd_mem_unmap_contig(f.mem, f.buf[2], 0x800);
	mf_fini(&f);
}

static void uaddr_to_hva_finds_frontend_addresses(void **state)
{
	struct mem_fixture f;
	uint64_t gpa = 0;
	const uint64_t u = 0x7f0000000000ULL;

	(void)state;
	mf_init(&f, false);
	assert_ptr_equal(vd_mem_uaddr_to_hva(f.mem, u + 0x3100, 0x100, &gpa),
			 f.buf[2] + 0x100);
	assert_int_equal(gpa, 0x3100);
	assert_ptr_equal(vd_mem_uaddr_to_hva(f.mem, u + 0x1000, 0x1000, NULL),
			 f.buf[0]);
	/* Past a region's end, even into the next one's uaddr range. */
	assert_null(vd_mem_uaddr_to_hva(f.mem, u + 0x1800, 0x1000, NULL));
	assert_null(vd_mem_uaddr_to_hva(f.mem, u + 0x5000, 1, NULL));
	assert_null(vd_mem_uaddr_to_hva(f.mem, u - 1, 1, NULL));
	assert_null(vd_mem_uaddr_to_hva(f.mem, UINT64_MAX, 2, NULL));
	mf_fini(&f);
}

static void read_and_write_cross_regions(void **state)
{
	struct mem_fixture f;
	uint8_t in[300], out[300];

	(void)state;
	mf_init(&f, false);
	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7);
	assert_int_equal(vd_mem_write(f.mem, 0x1f80, in, sizeof(in)), 0);
	assert_memory_equal(f.buf[0] + 0xf80, in, 0x80);
	assert_memory_equal(f.buf[1], in + 0x80, sizeof(in) - 0x80);
	assert_int_equal(vd_mem_read(f.mem, 0x1f80, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(vd_mem_write(f.mem, 0x4f80, in, sizeof(in)), -EFAULT);
	assert_int_equal(vd_mem_read(f.mem, UINT64_MAX - 4, out, 8),
			 -EOVERFLOW);
	mf_fini(&f);
}

/* A fake mapper: maps [0x10000, 0x10000 + 4096) to a buffer, one page per
 * iovec, and counts calls. */
int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(translate_within_one_region_gives_one_iovec),
		cmocka_unit_test(translate_across_regions_gives_one_iovec_each),
		cmocka_unit_test(translate_outside_memory_is_efault),
		cmocka_unit_test(translate_hint_gives_the_same_answers),
		cmocka_unit_test(translate_wrapping_2_64_is_eoverflow),
		cmocka_unit_test(
			translate_over_budget_is_enobufs_and_keeps_count),
		cmocka_unit_test(translate_zero_length_yields_nothing),
		cmocka_unit_test(region_check_rejects_bad_regions),
		cmocka_unit_test(
			add_region_overlap_is_refused_and_changes_nothing),
		cmocka_unit_test(add_region_past_table_size_is_enospc),
		cmocka_unit_test(
			remove_region_needs_exact_match_and_releases_once),
		cmocka_unit_test(set_regions_replaces_table_and_releases_old),
		cmocka_unit_test(map_contig_only_inside_one_region),
		cmocka_unit_test(uaddr_to_hva_finds_frontend_addresses),
		cmocka_unit_test(read_and_write_cross_regions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
