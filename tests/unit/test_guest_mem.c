/* Guest memory: translation across regions and its refusals, table edits,
 * the mapper pass-through, and region removal racing a reader thread
 * (release only after the reader left; never a torn table). */
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

#include "virtiod/guest_mem.h"

/* Three adjacent regions with unrelated host buffers, so a translation
 * that assumed contiguous host memory would show. */
struct fixture {
	struct vd_mem *mem;
	uint8_t *buf[4];
	struct vd_mem_region r[4];
};

static atomic_int releases;

static void count_release(struct vd_mem_region *r)
{
	(void)r;
	atomic_fetch_add(&releases, 1);
}

static void fixture_init(struct fixture *f, bool with_gap_region)
{
	static const uint64_t gpa[4] = {0x1000, 0x2000, 0x3000, 0x6000};
	static const uint64_t size[4] = {0x1000, 0x1000, 0x2000, 0x1000};
	unsigned n = with_gap_region ? 4 : 3;

	atomic_store(&releases, 0);
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
			.release = count_release,
			.fd = -1,
		};
	}
	assert_int_equal(vd_mem_set_regions(f->mem, f->r, n), 0);
	assert_int_equal(vd_mem_region_count(f->mem), n);
}

static void fixture_fini(struct fixture *f)
{
	vd_mem_free(f->mem);
	for (unsigned i = 0; i < 4; i++)
		free(f->buf[i]);
}

static void translate_within_one_region_gives_one_iovec(void **state)
{
	struct fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, false);
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
	fixture_fini(&f);
}

static void translate_across_regions_gives_one_iovec_each(void **state)
{
	struct fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, false);
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
	fixture_fini(&f);
}

/* The hint is a shortcut, never a different answer: a hit, a miss, a
 * range running past the hinted region, a hint left stale (or out of
 * range) by a table change, and the budget all behave as without it. */
static void translate_hint_gives_the_same_answers(void **state)
{
	struct fixture f;
	struct vd_mem_hint h = {0};
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, true);
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
	fixture_fini(&f);
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
	struct fixture f;
	struct iovec iov[8];

	(void)state;
	fixture_init(&f, true);
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
	fixture_fini(&f);

	/* An empty table has no memory at all. */
	struct vd_mem *empty = vd_mem_new_table(1);
	n = 0;
	assert_int_equal(vd_mem_translate(empty, 0, 1, VD_MEM_READ, iov, 8, &n),
			 -EFAULT);
	vd_mem_free(empty);
}

static void translate_wrapping_2_64_is_eoverflow(void **state)
{
	struct fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, false);
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
	fixture_fini(&f);
}

static void translate_over_budget_is_enobufs_and_keeps_count(void **state)
{
	struct fixture f;
	struct iovec iov[4];
	unsigned n;

	(void)state;
	fixture_init(&f, false);
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
	fixture_fini(&f);
}

static void translate_zero_length_yields_nothing(void **state)
{
	struct fixture f;
	struct iovec iov[1];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, false);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x1000, 0, VD_MEM_READ, iov, 1, &n), 0);
	assert_int_equal(n, 0);
	fixture_fini(&f);
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
	struct fixture f;
	struct vd_mem_region r;
	uint8_t b[0x1000];

	(void)state;
	fixture_init(&f, false);
	r = (struct vd_mem_region){.gpa = 0x4800,
				   .size = 0x1000,
				   .hva = b,
				   .release = count_release};
	assert_int_equal(vd_mem_add_region(f.mem, &r), -EEXIST);
	r.gpa = 0x800;
	assert_int_equal(vd_mem_add_region(f.mem, &r), -EEXIST);
	r.size = 0;
	assert_int_equal(vd_mem_add_region(f.mem, &r), -EINVAL);
	assert_int_equal(vd_mem_region_count(f.mem), 3);
	assert_int_equal(atomic_load(&releases), 0);
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
	fixture_fini(&f);
	/* vd_mem_free released all four. */
	assert_int_equal(atomic_load(&releases), 4);
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
	struct fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, false);
	assert_int_equal(vd_mem_remove_region(f.mem, 0x2000, 0x800), -ENOENT);
	assert_int_equal(vd_mem_remove_region(f.mem, 0x2800, 0x800), -ENOENT);
	assert_int_equal(atomic_load(&releases), 0);
	assert_int_equal(vd_mem_remove_region(f.mem, 0x2000, 0x1000), 0);
	assert_int_equal(atomic_load(&releases), 1);
	assert_int_equal(vd_mem_region_count(f.mem), 2);
	/* A hole now: crossing it fails, the neighbours still work. */
	assert_int_equal(
		vd_mem_translate(f.mem, 0x1f00, 0x200, VD_MEM_READ, iov, 4, &n),
		-EFAULT);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x3000, 0x10, VD_MEM_READ, iov, 4, &n),
		0);
	assert_ptr_equal(iov[0].iov_base, f.buf[2]);
	fixture_fini(&f);
	assert_int_equal(atomic_load(&releases), 3);
}

static void set_regions_replaces_table_and_releases_old(void **state)
{
	struct fixture f;
	struct iovec iov[4];
	unsigned n = 0;

	(void)state;
	fixture_init(&f, false);
	/* Overlapping input: refused, nothing released, table unchanged. */
	struct vd_mem_region bad[2] = {f.r[3], f.r[3]};
	assert_int_equal(vd_mem_set_regions(f.mem, bad, 2), -EEXIST);
	assert_int_equal(atomic_load(&releases), 0);
	assert_int_equal(vd_mem_region_count(f.mem), 3);
	/* Unsorted input is sorted. */
	struct vd_mem_region two[2] = {f.r[3], f.r[0]};
	assert_int_equal(vd_mem_set_regions(f.mem, two, 2), 0);
	assert_int_equal(atomic_load(&releases), 3);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x2000, 1, VD_MEM_READ, iov, 4, &n),
		-EFAULT);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x6000, 1, VD_MEM_READ, iov, 4, &n), 0);
	assert_int_equal(
		vd_mem_translate(f.mem, 0x1000, 1, VD_MEM_READ, iov, 4, &n), 0);
	assert_ptr_equal(iov[0].iov_base, f.buf[3]);
	assert_ptr_equal(iov[1].iov_base, f.buf[0]);
	fixture_fini(&f);
	assert_int_equal(atomic_load(&releases), 5);
}

static void map_contig_only_inside_one_region(void **state)
{
	struct fixture f;

	(void)state;
	fixture_init(&f, false);
	assert_ptr_equal(vd_mem_map_contig(f.mem, 0x3800, 0x800, VD_MEM_READ),
			 f.buf[2] + 0x800);
	assert_ptr_equal(vd_mem_map_contig(f.mem, 0x3000, 0x2000, VD_MEM_READ),
			 f.buf[2]);
	assert_null(vd_mem_map_contig(f.mem, 0x3000, 0x2001, VD_MEM_READ));
	assert_null(vd_mem_map_contig(f.mem, 0x1ff0, 0x20, VD_MEM_READ));
	assert_null(vd_mem_map_contig(f.mem, 0x0, 0x10, VD_MEM_READ));
	assert_null(vd_mem_map_contig(f.mem, 0x1000, 0, VD_MEM_READ));
	vd_mem_unmap_contig(f.mem, f.buf[2], 0x800);
	fixture_fini(&f);
}

static void uaddr_to_hva_finds_frontend_addresses(void **state)
{
	struct fixture f;
	uint64_t gpa = 0;
	const uint64_t u = 0x7f0000000000ULL;

	(void)state;
	fixture_init(&f, false);
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
	fixture_fini(&f);
}

static void read_and_write_cross_regions(void **state)
{
	struct fixture f;
	uint8_t in[300], out[300];

	(void)state;
	fixture_init(&f, false);
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
	fixture_fini(&f);
}

/* A fake mapper: maps [0x10000, 0x10000 + 4096) to a buffer, one page per
 * iovec, and counts calls. */
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
	struct fixture f;
	struct hold_reader r;
	struct remover w;
	pthread_t rt, wt;

	(void)state;
	fixture_init(&f, false);
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
	assert_int_equal(atomic_load(&releases), 0);
	atomic_store(&r.phase, 2);
	pthread_join(wt, NULL);
	pthread_join(rt, NULL);
	assert_true(atomic_load(&w.done));
	assert_int_equal(atomic_load(&releases), 1);
	assert_false(vd_mem_grace_pending(f.mem));
	fixture_fini(&f);
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
	atomic_fetch_add(&releases, 1);
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
	atomic_store(&releases, 0);
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
	assert_int_equal(atomic_load(&releases), gens);
	/* Both states were seen, so the race was actually run. */
	assert_true(r.seen > 0);
	assert_true(r.missing > 0);
	vd_mem_free(mem);
}

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
		cmocka_unit_test(mapper_backend_is_delegated_to),
		cmocka_unit_test(
			max_pieces_bounds_every_placement_and_is_reached),
		cmocka_unit_test(reader_slots_are_limited),
		cmocka_unit_test(
			removed_region_released_only_after_reader_leaves),
		cmocka_unit_test(hotplug_with_concurrent_reader_never_tears),
	};

	return cmocka_run_group_tests_name("guest memory", tests, NULL, NULL);
}
